#include "tls/selfsign.h"

#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const key_type_names[STLS_KEY__COUNT] = {
	[STLS_KEY_ECDSA_P256] = "ecdsa-p256", [STLS_KEY_ECDSA_P384] = "ecdsa-p384", [STLS_KEY_RSA2048] = "rsa2048",
	[STLS_KEY_RSA3072] = "rsa3072",	      [STLS_KEY_RSA4096] = "rsa4096",
};

const char *stls_key_type_str(enum stls_key_type type)
{
	return (unsigned)type < STLS_KEY__COUNT ? key_type_names[type] : "unknown";
}

enum stls_err stls_key_type_parse(enum stls_key_type *out, const char *name)
{
	for (unsigned t = 0; t < STLS_KEY__COUNT; t++) {
		if (strcmp(name, key_type_names[t]) == 0) {
			*out = (enum stls_key_type)t;
			return STLS_OK;
		}
	}
	return STLS_ERR_USAGE;
}

enum stls_err stls_key_generate(EVP_PKEY **out_key, enum stls_key_type type)
{
	enum stls_err ret = STLS_ERR_TLS;
	EVP_PKEY *pkey = EVP_PKEY_new();
	EC_KEY *ec = NULL;
	RSA *rsa = NULL;
	BIGNUM *e = NULL;
	if (!pkey)
		goto out;
	if (type == STLS_KEY_ECDSA_P256 || type == STLS_KEY_ECDSA_P384) {
		ec = EC_KEY_new_by_curve_name(type == STLS_KEY_ECDSA_P256 ? NID_X9_62_prime256v1 : NID_secp384r1);
		if (!ec || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pkey, ec))
			goto out;
		ec = NULL;
	} else {
		int bits = type == STLS_KEY_RSA2048 ? 2048 : type == STLS_KEY_RSA3072 ? 3072 : 4096;
		rsa = RSA_new();
		e = BN_new();
		if (!rsa || !e || !BN_set_word(e, RSA_F4) || !RSA_generate_key_ex(rsa, bits, e, NULL) ||
		    !EVP_PKEY_assign_RSA(pkey, rsa))
			goto out;
		rsa = NULL;
	}
	*out_key = pkey;
	pkey = NULL;
	ret = STLS_OK;
out:
	EVP_PKEY_free(pkey);
	EC_KEY_free(ec);
	RSA_free(rsa);
	BN_free(e);
	ERR_clear_error();
	return ret;
}

static bool add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	bool ok = ext && X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static bool valid_dns_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.' || (c == '*' && i == 0)))
			return false;
	}
	return true;
}

enum stls_err stls_selfsign_san(char *out, size_t out_len, const char *cn, const char *const *sans, size_t num_sans,
				char *err, size_t err_len)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i <= num_sans; i++) {
		const char *name = i == 0 ? cn : sans[i - 1];
		if (!valid_dns_name(name)) {
			snprintf(err, err_len, "\"%s\" is not a host name", name);
			return STLS_ERR_USAGE;
		}
		/* The CN is always the first subjectAltName; naming it again with --san adds nothing. */
		if (i > 0 && strcasecmp(name, cn) == 0)
			continue;
		int n = snprintf(out + used, out_len - used, "%sDNS:%s", used ? "," : "", name);
		if (n < 0 || (size_t)n >= out_len - used) {
			snprintf(err, err_len, "too many names");
			return STLS_ERR_USAGE;
		}
		used += (size_t)n;
	}
	return STLS_OK;
}

enum stls_err stls_selfsign(X509 **out_cert, EVP_PKEY *key, const char *cn, const char *const *sans, size_t num_sans,
			    unsigned days, char *err, size_t err_len)
{
	enum stls_err ret = STLS_ERR_TLS;
	X509 *cert = X509_new();
	char san[4096];
	if (!cert)
		goto fail;
	if (stls_selfsign_san(san, sizeof(san), cn, sans, num_sans, err, err_len) != STLS_OK) {
		ret = STLS_ERR_USAGE;
		goto out;
	}
	uint8_t serial_bytes[16];
	RAND_bytes(serial_bytes, sizeof(serial_bytes));
	serial_bytes[0] &= 0x7f; /* positive */
	BIGNUM *serial_bn = BN_bin2bn(serial_bytes, sizeof(serial_bytes), NULL);
	ASN1_INTEGER *serial = serial_bn ? BN_to_ASN1_INTEGER(serial_bn, NULL) : NULL;
	BN_free(serial_bn);
	bool ok = serial && X509_set_version(cert, X509_VERSION_3) && X509_set_serialNumber(cert, serial);
	ASN1_INTEGER_free(serial);
	X509_NAME *name = X509_get_subject_name(cert);
	ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0) &&
	     X509_set_issuer_name(cert, name) && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
	     X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400) && X509_set_pubkey(cert, key) &&
	     add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") &&
	     add_ext(cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
	     add_ext(cert, NID_ext_key_usage, "serverAuth,clientAuth") &&
	     add_ext(cert, NID_subject_key_identifier, "hash") && add_ext(cert, NID_subject_alt_name, san) &&
	     X509_sign(cert, key, EVP_sha256());
	if (!ok)
		goto fail;
	*out_cert = cert;
	cert = NULL;
	ret = STLS_OK;
	goto out;
fail:
	snprintf(err, err_len, "cannot make the certificate: %s", ERR_reason_error_string(ERR_peek_last_error()));
out:
	X509_free(cert);
	ERR_clear_error();
	return ret;
}

enum stls_err stls_selfsign_demo(struct stls_cert_bundle *out, const char *hostname, char *err, size_t err_len)
{
	*out = (struct stls_cert_bundle){ 0 };
	if (stls_key_generate(&out->key, STLS_KEY_ECDSA_P256) != STLS_OK) {
		snprintf(err, err_len, "cannot generate a key");
		return STLS_ERR_TLS;
	}
	out->chain = sk_X509_new_null();
	if (!out->chain || stls_selfsign(&out->leaf, out->key, hostname, NULL, 0, 365, err, err_len) != STLS_OK) {
		stls_cert_bundle_cleanup(out);
		return STLS_ERR_TLS;
	}
	return STLS_OK;
}
