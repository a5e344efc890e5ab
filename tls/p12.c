#include "tls/p12.h"

#include <openssl/bytestring.h>
#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <string.h>

/* The object identifiers the file is made of. */
static const char k_oid_data[] = "1.2.840.113549.1.7.1";
static const char k_oid_encrypted_data[] = "1.2.840.113549.1.7.6";
static const char k_oid_key_bag[] = "1.2.840.113549.1.12.10.1.2"; /* pkcs8ShroudedKeyBag */
static const char k_oid_cert_bag[] = "1.2.840.113549.1.12.10.1.3";
static const char k_oid_x509_cert[] = "1.2.840.113549.1.9.22.1";
static const char k_oid_friendly_name[] = "1.2.840.113549.1.9.20";
static const char k_oid_local_key_id[] = "1.2.840.113549.1.9.21";
static const char k_oid_pbes2[] = "1.2.840.113549.1.5.13";
static const char k_oid_pbkdf2[] = "1.2.840.113549.1.5.12";
static const char k_oid_hmac_sha256[] = "1.2.840.113549.2.9";
static const char k_oid_aes256_cbc[] = "2.16.840.1.101.3.4.1.42";
static const char k_oid_sha256[] = "2.16.840.1.101.3.4.2.1";

enum { SALT_LEN = 16, IV_LEN = 16, AES_KEY_LEN = 32, MAC_KEY_LEN = 32, SHA256_BLOCK = 64 };

/* An OBJECT IDENTIFIER, tag and all (CBB_add_asn1_oid_from_text writes only the contents). */
static bool add_oid(CBB *cbb, const char *oid)
{
	CBB child;
	return CBB_add_asn1(cbb, &child, CBS_ASN1_OBJECT) && CBB_add_asn1_oid_from_text(&child, oid, strlen(oid)) &&
	       CBB_flush(cbb);
}

/* The password as RFC 7292 B.1 asks for the MAC key: a BMPString (UTF-16BE) with a two-byte NUL
 * at the end. Returns false for a password that is not UTF-8. */
static bool bmp_password(CBB *out, const char *password)
{
	CBS in;
	CBS_init(&in, (const uint8_t *)password, strlen(password));
	while (CBS_len(&in) > 0) {
		uint8_t c;
		if (!CBS_get_u8(&in, &c))
			return false;
		uint32_t cp;
		unsigned more;
		if (c < 0x80) {
			cp = c;
			more = 0;
		} else if ((c & 0xe0) == 0xc0) {
			cp = c & 0x1f;
			more = 1;
		} else if ((c & 0xf0) == 0xe0) {
			cp = c & 0x0f;
			more = 2;
		} else if ((c & 0xf8) == 0xf0) {
			cp = c & 0x07;
			more = 3;
		} else {
			return false;
		}
		for (unsigned i = 0; i < more; i++) {
			if (!CBS_get_u8(&in, &c) || (c & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (c & 0x3f);
		}
		static const uint32_t k_min[4] = { 0, 0x80, 0x800, 0x10000 };
		if (cp < k_min[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false; /* overlong, out of range, or a lone surrogate */
		if (cp >= 0x10000) {
			cp -= 0x10000;
			if (!CBB_add_u16(out, (uint16_t)(0xd800 | cp >> 10)) ||
			    !CBB_add_u16(out, (uint16_t)(0xdc00 | (cp & 0x3ff))))
				return false;
		} else if (!CBB_add_u16(out, (uint16_t)cp)) {
			return false;
		}
	}
	return CBB_add_u16(out, 0);
}

/* RFC 7292 B.2 with SHA-256 (u = 32, v = 64), ID 3 (MAC key), for a 32-byte key: one block, so
 * A = H^iterations(D || S || P) is the key and the B/I update of later blocks is never needed. */
static bool mac_key(uint8_t out[MAC_KEY_LEN], const uint8_t *bmp, size_t bmp_len, const uint8_t *salt, size_t salt_len,
		    unsigned iterations)
{
	uint8_t d[SHA256_BLOCK];
	memset(d, 3, sizeof(d));
	size_t s_len = SHA256_BLOCK * ((salt_len + SHA256_BLOCK - 1) / SHA256_BLOCK);
	size_t p_len = SHA256_BLOCK * ((bmp_len + SHA256_BLOCK - 1) / SHA256_BLOCK);
	uint8_t *i_buf = OPENSSL_malloc(s_len + p_len);
	if (!i_buf)
		return false;
	for (size_t k = 0; k < s_len; k++)
		i_buf[k] = salt[k % salt_len];
	for (size_t k = 0; k < p_len; k++)
		i_buf[s_len + k] = bmp[k % bmp_len];
	SHA256_CTX ctx;
	SHA256_Init(&ctx);
	SHA256_Update(&ctx, d, sizeof(d));
	SHA256_Update(&ctx, i_buf, s_len + p_len);
	SHA256_Final(out, &ctx);
	for (unsigned k = 1; k < iterations; k++)
		SHA256(out, MAC_KEY_LEN, out);
	OPENSSL_cleanse(i_buf, s_len + p_len);
	OPENSSL_free(i_buf);
	return true;
}

/* Writes a PBES2 AlgorithmIdentifier (PBKDF2-HMAC-SHA256, AES-256-CBC) and the ciphertext of in as
 * the contents of an OCTET STRING whose tag is tag (an OCTET STRING, or the [0] IMPLICIT of
 * EncryptedContentInfo). */
static bool add_pbes2(CBB *out, unsigned tag, const uint8_t *in, size_t in_len, const char *password,
		      unsigned iterations)
{
	uint8_t salt[SALT_LEN], iv[IV_LEN], key[AES_KEY_LEN];
	RAND_bytes(salt, sizeof(salt));
	RAND_bytes(iv, sizeof(iv));
	bool ok = false;
	EVP_CIPHER_CTX ctx;
	EVP_CIPHER_CTX_init(&ctx);
	CBB alg, params, kdf, kdf_params, prf, null, scheme, ct;
	uint8_t *buf;
	int n1 = 0, n2 = 0;
	/* PBES2 in PKCS#12 takes the password's bytes as they are (RFC 8018), unlike the MAC. */
	if (!PKCS5_PBKDF2_HMAC(password, strlen(password), salt, sizeof(salt), iterations, EVP_sha256(), sizeof(key),
			       key))
		goto out;
	if (!CBB_add_asn1(out, &alg, CBS_ASN1_SEQUENCE) || !add_oid(&alg, k_oid_pbes2) ||
	    !CBB_add_asn1(&alg, &params, CBS_ASN1_SEQUENCE) || !CBB_add_asn1(&params, &kdf, CBS_ASN1_SEQUENCE) ||
	    !add_oid(&kdf, k_oid_pbkdf2) || !CBB_add_asn1(&kdf, &kdf_params, CBS_ASN1_SEQUENCE) ||
	    !CBB_add_asn1_octet_string(&kdf_params, salt, sizeof(salt)) ||
	    !CBB_add_asn1_uint64(&kdf_params, iterations) || !CBB_add_asn1(&kdf_params, &prf, CBS_ASN1_SEQUENCE) ||
	    !add_oid(&prf, k_oid_hmac_sha256) || !CBB_add_asn1(&prf, &null, CBS_ASN1_NULL) ||
	    !CBB_add_asn1(&params, &scheme, CBS_ASN1_SEQUENCE) || !add_oid(&scheme, k_oid_aes256_cbc) ||
	    !CBB_add_asn1_octet_string(&scheme, iv, sizeof(iv)) || !CBB_flush(out))
		goto out;
	/* CBC adds up to one block of padding. */
	if (!EVP_EncryptInit_ex(&ctx, EVP_aes_256_cbc(), NULL, key, iv) || !CBB_add_asn1(out, &ct, tag) ||
	    !CBB_reserve(&ct, &buf, in_len + IV_LEN) || !EVP_EncryptUpdate(&ctx, buf, &n1, in, (int)in_len) ||
	    !EVP_EncryptFinal_ex(&ctx, buf + n1, &n2) || !CBB_did_write(&ct, (size_t)(n1 + n2)))
		goto out;
	ok = CBB_flush(out);
out:
	EVP_CIPHER_CTX_cleanup(&ctx);
	OPENSSL_cleanse(key, sizeof(key));
	return ok;
}

/* bagAttributes: friendlyName (when name is given) and localKeyID, which ties the key to its
 * certificate. */
static bool add_attributes(CBB *bag, const char *name, const uint8_t key_id[SHA_DIGEST_LENGTH])
{
	CBB set, attr, values, bmp;
	if (!CBB_add_asn1(bag, &set, CBS_ASN1_SET))
		return false;
	if (name && name[0]) {
		if (!CBB_add_asn1(&set, &attr, CBS_ASN1_SEQUENCE) || !add_oid(&attr, k_oid_friendly_name) ||
		    !CBB_add_asn1(&attr, &values, CBS_ASN1_SET) || !CBB_add_asn1(&values, &bmp, CBS_ASN1_BMPSTRING))
			return false;
		for (const char *c = name; *c; c++) {
			if (!CBB_add_u16(&bmp, (uint8_t)*c < 0x80 ? (uint8_t)*c : '?'))
				return false;
		}
		if (!CBB_flush(&set))
			return false;
	}
	return CBB_add_asn1(&set, &attr, CBS_ASN1_SEQUENCE) && add_oid(&attr, k_oid_local_key_id) &&
	       CBB_add_asn1(&attr, &values, CBS_ASN1_SET) &&
	       CBB_add_asn1_octet_string(&values, key_id, SHA_DIGEST_LENGTH) && CBB_flush_asn1_set_of(&set) &&
	       CBB_flush(bag);
}

static bool add_cert_bag(CBB *contents, X509 *cert, const char *name, const uint8_t *key_id)
{
	CBB bag, value, cert_bag, cert_value, der;
	uint8_t *buf;
	int len = i2d_X509(cert, NULL);
	if (len <= 0 || !CBB_add_asn1(contents, &bag, CBS_ASN1_SEQUENCE) || !add_oid(&bag, k_oid_cert_bag) ||
	    !CBB_add_asn1(&bag, &value, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
	    !CBB_add_asn1(&value, &cert_bag, CBS_ASN1_SEQUENCE) || !add_oid(&cert_bag, k_oid_x509_cert) ||
	    !CBB_add_asn1(&cert_bag, &cert_value, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
	    !CBB_add_asn1(&cert_value, &der, CBS_ASN1_OCTETSTRING) || !CBB_add_space(&der, &buf, (size_t)len) ||
	    i2d_X509(cert, &buf) != len || !CBB_flush(&bag))
		return false;
	return (!key_id || add_attributes(&bag, name, key_id)) && CBB_flush(contents);
}

/* ContentInfo { encryptedData, EncryptedData { 0, { data, PBES2, [0] ciphertext } } } holding
 * the certificates' SafeContents. */
static bool add_cert_safe(CBB *auth_safe, const struct stls_cert_bundle *b, const char *password, const char *name,
			  const uint8_t *key_id, unsigned iterations)
{
	bool ok = false;
	CBB plain, contents, info, explicit_, enc_data, enc_info;
	uint8_t *der = NULL;
	size_t der_len = 0;
	if (!CBB_init(&plain, 4096))
		return false;
	if (!CBB_add_asn1(&plain, &contents, CBS_ASN1_SEQUENCE) || !add_cert_bag(&contents, b->leaf, name, key_id))
		goto out;
	for (size_t i = 0; i < sk_X509_num(b->chain); i++) {
		if (!add_cert_bag(&contents, sk_X509_value(b->chain, i), NULL, NULL))
			goto out;
	}
	if (!CBB_finish(&plain, &der, &der_len))
		goto out;
	ok = CBB_add_asn1(auth_safe, &info, CBS_ASN1_SEQUENCE) && add_oid(&info, k_oid_encrypted_data) &&
	     CBB_add_asn1(&info, &explicit_, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) &&
	     CBB_add_asn1(&explicit_, &enc_data, CBS_ASN1_SEQUENCE) && CBB_add_asn1_uint64(&enc_data, 0) &&
	     CBB_add_asn1(&enc_data, &enc_info, CBS_ASN1_SEQUENCE) && add_oid(&enc_info, k_oid_data) &&
	     add_pbes2(&enc_info, CBS_ASN1_CONTEXT_SPECIFIC | 0, der, der_len, password, iterations) &&
	     CBB_flush(auth_safe);
out:
	CBB_cleanup(&plain);
	OPENSSL_free(der);
	return ok;
}

/* ContentInfo { data, OCTET STRING { SafeContents { pkcs8ShroudedKeyBag } } }. */
static bool add_key_safe(CBB *auth_safe, const struct stls_cert_bundle *b, const char *password, const char *name,
			 const uint8_t *key_id, unsigned iterations)
{
	bool ok = false;
	CBB pkcs8, info, explicit_, octets, contents, bag, value, epki;
	uint8_t *der = NULL;
	size_t der_len = 0;
	if (!CBB_init(&pkcs8, 2048))
		return false;
	if (!EVP_marshal_private_key(&pkcs8, b->key) || !CBB_finish(&pkcs8, &der, &der_len))
		goto out;
	ok = CBB_add_asn1(auth_safe, &info, CBS_ASN1_SEQUENCE) && add_oid(&info, k_oid_data) &&
	     CBB_add_asn1(&info, &explicit_, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) &&
	     CBB_add_asn1(&explicit_, &octets, CBS_ASN1_OCTETSTRING) &&
	     CBB_add_asn1(&octets, &contents, CBS_ASN1_SEQUENCE) && CBB_add_asn1(&contents, &bag, CBS_ASN1_SEQUENCE) &&
	     add_oid(&bag, k_oid_key_bag) &&
	     CBB_add_asn1(&bag, &value, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) &&
	     CBB_add_asn1(&value, &epki, CBS_ASN1_SEQUENCE) &&
	     add_pbes2(&epki, CBS_ASN1_OCTETSTRING, der, der_len, password, iterations) && CBB_flush(&bag) &&
	     add_attributes(&bag, name, key_id) && CBB_flush(auth_safe);
out:
	CBB_cleanup(&pkcs8);
	if (der)
		OPENSSL_cleanse(der, der_len);
	OPENSSL_free(der);
	return ok;
}

enum stls_err stls_p12_encode(uint8_t **out, size_t *out_len, const struct stls_cert_bundle *b, const char *password,
			      const char *name, unsigned iterations)
{
	enum stls_err ret = STLS_ERR_TLS;
	CBB safe, auth_safe, bmp, pfx, pfx_seq, info, explicit_, mac_data, digest_info, alg, null;
	uint8_t *safe_der = NULL, *bmp_der = NULL;
	size_t safe_len = 0, bmp_len = 0;
	uint8_t key_id[SHA_DIGEST_LENGTH], salt[SALT_LEN], key[MAC_KEY_LEN], mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	CBB_zero(&safe);
	CBB_zero(&bmp);
	CBB_zero(&pfx);
	*out = NULL;
	*out_len = 0;
	if (!password[0] || !CBB_init(&bmp, 64) || !bmp_password(&bmp, password) ||
	    !CBB_finish(&bmp, &bmp_der, &bmp_len)) {
		ret = STLS_ERR_CONFIG;
		goto out;
	}
	uint8_t *leaf_der = NULL;
	int leaf_len = i2d_X509(b->leaf, &leaf_der);
	if (leaf_len <= 0)
		goto out;
	SHA1(leaf_der, (size_t)leaf_len, key_id);
	OPENSSL_free(leaf_der);

	if (!CBB_init(&safe, 8192) || !CBB_add_asn1(&safe, &auth_safe, CBS_ASN1_SEQUENCE) ||
	    !add_cert_safe(&auth_safe, b, password, name, key_id, iterations) ||
	    !add_key_safe(&auth_safe, b, password, name, key_id, iterations) ||
	    !CBB_finish(&safe, &safe_der, &safe_len))
		goto out;
	/* RFC 7292 5.1: the MAC covers the AuthenticatedSafe's encoding, the authSafe's content octets. */
	RAND_bytes(salt, sizeof(salt));
	if (!mac_key(key, bmp_der, bmp_len, salt, sizeof(salt), iterations) ||
	    !HMAC(EVP_sha256(), key, sizeof(key), safe_der, safe_len, mac, &mac_len))
		goto out;
	if (!CBB_init(&pfx, safe_len + 256) || !CBB_add_asn1(&pfx, &pfx_seq, CBS_ASN1_SEQUENCE) ||
	    !CBB_add_asn1_uint64(&pfx_seq, 3) || !CBB_add_asn1(&pfx_seq, &info, CBS_ASN1_SEQUENCE) ||
	    !add_oid(&info, k_oid_data) ||
	    !CBB_add_asn1(&info, &explicit_, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
	    !CBB_add_asn1_octet_string(&explicit_, safe_der, safe_len) ||
	    !CBB_add_asn1(&pfx_seq, &mac_data, CBS_ASN1_SEQUENCE) ||
	    !CBB_add_asn1(&mac_data, &digest_info, CBS_ASN1_SEQUENCE) ||
	    !CBB_add_asn1(&digest_info, &alg, CBS_ASN1_SEQUENCE) || !add_oid(&alg, k_oid_sha256) ||
	    !CBB_add_asn1(&alg, &null, CBS_ASN1_NULL) || !CBB_add_asn1_octet_string(&digest_info, mac, mac_len) ||
	    !CBB_add_asn1_octet_string(&mac_data, salt, sizeof(salt)) || !CBB_add_asn1_uint64(&mac_data, iterations) ||
	    !CBB_finish(&pfx, out, out_len))
		goto out;
	ret = STLS_OK;
out:
	CBB_cleanup(&safe);
	CBB_cleanup(&bmp);
	CBB_cleanup(&pfx);
	if (safe_der)
		OPENSSL_cleanse(safe_der, safe_len);
	OPENSSL_free(safe_der);
	if (bmp_der)
		OPENSSL_cleanse(bmp_der, bmp_len);
	OPENSSL_free(bmp_der);
	OPENSSL_cleanse(key, sizeof(key));
	ERR_clear_error();
	return ret;
}
