#include "tls/cert.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"

enum { EXPIRY_WARNING_DAYS = 30 };

const char *stls_cert_severity_str(enum stls_cert_severity sev)
{
	static const char *const names[STLS_CERT__COUNT] = {
		[STLS_CERT_INFO] = "info",
		[STLS_CERT_WARNING] = "warning",
		[STLS_CERT_ERROR] = "error",
	};
	return (unsigned)sev < STLS_CERT__COUNT ? names[sev] : "unknown";
}

void stls_cert_report_add(struct stls_cert_report *r, enum stls_cert_severity sev, const char *fmt, ...)
{
	if (sev == STLS_CERT_ERROR)
		r->num_errors++;
	else if (sev == STLS_CERT_WARNING)
		r->num_warnings++;
	if (r->num >= STLS_CERT_MAX_FINDINGS)
		return;
	r->findings[r->num].severity = sev;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->findings[r->num].text, sizeof(r->findings[r->num].text), fmt, ap);
	va_end(ap);
	r->num++;
}

void stls_cert_name(const X509 *cert, char *out, size_t out_len)
{
	out[0] = '\0';
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio)
		return;
	X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
	const uint8_t *data;
	size_t len;
	if (BIO_mem_contents(bio, &data, &len)) {
		len = len < out_len - 1 ? len : out_len - 1;
		memcpy(out, data, len);
		out[len] = '\0';
	}
	BIO_free(bio);
}

void stls_cert_bundle_cleanup(struct stls_cert_bundle *bundle)
{
	EVP_PKEY_free(bundle->key);
	X509_free(bundle->leaf);
	sk_X509_pop_free(bundle->chain, X509_free);
	*bundle = (struct stls_cert_bundle){ 0 };
}

/* The first error BoringSSL queued, as text, and the queue emptied. */
static const char *ssl_reason(void)
{
	uint32_t e = ERR_get_error();
	ERR_clear_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "not in the expected format";
}

static BIO *open_file(const char *path, char *err, size_t err_len)
{
	BIO *bio = BIO_new_file(path, "r");
	if (!bio)
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
	ERR_clear_error();
	return bio;
}

/* Appends every certificate of a PEM file to chain; *out_first gets the first one when wanted. */
static enum stls_err read_certs(STACK_OF(X509) * chain, X509 **out_first, const char *path, char *err, size_t err_len)
{
	BIO *bio = open_file(path, err, err_len);
	if (!bio)
		return STLS_ERR_CONFIG;
	unsigned n = 0;
	X509 *x;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (out_first && n == 0)
			*out_first = x;
		else if (!sk_X509_push(chain, x)) {
			X509_free(x);
			BIO_free(bio);
			snprintf(err, err_len, "%s: out of memory", path);
			return STLS_ERR_CONFIG;
		}
		n++;
	}
	/* The loop ends on "no start line" at the end of the file; anything else is a real error. */
	uint32_t e = ERR_peek_last_error();
	bool eof = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
	ERR_clear_error();
	BIO_free(bio);
	if (n == 0) {
		snprintf(err, err_len, "%s: no PEM certificate in it", path);
		return STLS_ERR_CONFIG;
	}
	if (!eof && e) {
		snprintf(err, err_len, "%s: certificate %u cannot be read", path, n + 1);
		return STLS_ERR_CONFIG;
	}
	return STLS_OK;
}

enum stls_err stls_cert_load_pem(struct stls_cert_bundle *out, const char *cert_path, const char *key_path,
				 const char *chain_path, char *err, size_t err_len)
{
	*out = (struct stls_cert_bundle){ 0 };
	enum stls_err ret = STLS_ERR_CONFIG;
	out->chain = sk_X509_new_null();
	if (!out->chain) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	if (read_certs(out->chain, &out->leaf, cert_path, err, err_len) != STLS_OK)
		goto out;
	if (chain_path && read_certs(out->chain, NULL, chain_path, err, err_len) != STLS_OK)
		goto out;
	BIO *bio = open_file(key_path, err, err_len);
	if (!bio)
		goto out;
	out->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!out->key) {
		snprintf(err, err_len, "%s: no usable private key (%s; an encrypted key must be decrypted first)",
			 key_path, ssl_reason());
		goto out;
	}
	ret = STLS_OK;
out:
	if (ret != STLS_OK)
		stls_cert_bundle_cleanup(out);
	return ret;
}

enum stls_err stls_cert_read_password(char *out, size_t out_len, const char *path, char *err, size_t err_len)
{
	FILE *fp = fopen(path, "r");
	if (!fp) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return STLS_ERR_CONFIG;
	}
	out[0] = '\0';
	if (!fgets(out, (int)out_len, fp))
		out[0] = '\0';
	fclose(fp);
	out[strcspn(out, "\r\n")] = '\0';
	return STLS_OK;
}

enum stls_err stls_cert_load_p12(struct stls_cert_bundle *out, const char *path, const char *password, char *err,
				 size_t err_len)
{
	*out = (struct stls_cert_bundle){ 0 };
	enum stls_err ret = STLS_ERR_CONFIG;
	uint8_t *data = NULL;
	size_t len = 0;
	STACK_OF(X509) *certs = sk_X509_new_null();
	BIO *bio = open_file(path, err, err_len);
	if (!bio || !certs)
		goto out;
	if (!BIO_read_asn1(bio, &data, &len, 1u << 24)) {
		snprintf(err, err_len, "%s: not a PKCS#12 file (DER)", path);
		goto out;
	}
	CBS cbs;
	CBS_init(&cbs, data, len);
	if (!PKCS12_get_key_and_certs(&out->key, certs, &cbs, password)) {
		snprintf(err, err_len, "%s: cannot open it (%s: wrong password?)", path, ssl_reason());
		goto out;
	}
	if (!out->key) {
		snprintf(err, err_len, "%s: holds no private key", path);
		goto out;
	}
	out->chain = sk_X509_new_null();
	if (!out->chain)
		goto out;
	/* PKCS#12 bags carry no order a tool must keep: the leaf is the one the key belongs to. */
	while (sk_X509_num(certs) > 0) {
		X509 *x = sk_X509_shift(certs);
		if (!out->leaf && X509_check_private_key(x, out->key))
			out->leaf = x;
		else if (!sk_X509_push(out->chain, x))
			X509_free(x);
	}
	ERR_clear_error();
	if (!out->leaf) {
		snprintf(err, err_len, "%s: no certificate in it matches its private key", path);
		goto out;
	}
	ret = STLS_OK;
out:
	OPENSSL_free(data);
	BIO_free(bio);
	sk_X509_pop_free(certs, X509_free);
	if (ret != STLS_OK)
		stls_cert_bundle_cleanup(out);
	return ret;
}

/* Whether issuer issued cert: names match and the signature verifies with issuer's key. */
static bool issued_by(X509 *cert, X509 *issuer)
{
	if (X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(issuer)) != 0)
		return false;
	EVP_PKEY *pub = X509_get_pubkey(issuer);
	bool ok = pub && X509_verify(cert, pub) == 1;
	EVP_PKEY_free(pub);
	ERR_clear_error();
	return ok;
}

static bool self_signed(X509 *cert)
{
	return issued_by(cert, cert);
}

static void check_validity(struct stls_cert_report *r, X509 *cert, const char *what)
{
	char name[160];
	stls_cert_name(cert, name, sizeof(name));
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
		stls_cert_report_add(r, STLS_CERT_ERROR, "%s \"%s\" is not valid yet", what, name);
		return;
	}
	int days = 0, secs = 0;
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
		stls_cert_report_add(r, STLS_CERT_ERROR, "%s \"%s\" has expired: renew it (spec S6)", what, name);
		return;
	}
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) && days < EXPIRY_WARNING_DAYS)
		stls_cert_report_add(r, STLS_CERT_WARNING, "%s \"%s\" expires in %d days", what, name, days);
}

enum stls_err stls_cert_check(struct stls_cert_bundle *b, struct stls_cert_report *r)
{
	*r = (struct stls_cert_report){ 0 };
	char name[160];
	if (!b->leaf || !b->key) {
		stls_cert_report_add(r, STLS_CERT_ERROR, "no certificate or no key");
		return STLS_ERR_CONFIG;
	}
	if (!X509_check_private_key(b->leaf, b->key))
		stls_cert_report_add(r, STLS_CERT_ERROR, "the private key does not match the certificate");
	ERR_clear_error();
	check_validity(r, b->leaf, "certificate");

	/* Drop exact duplicates (S9), then order the rest by following issuers from the leaf. */
	STACK_OF(X509) *pool = b->chain ? b->chain : sk_X509_new_null();
	for (size_t i = 0; i < sk_X509_num(pool); i++) {
		X509 *x = sk_X509_value(pool, i);
		bool dup = X509_cmp(x, b->leaf) == 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = X509_cmp(x, sk_X509_value(pool, j)) == 0;
		if (dup) {
			stls_cert_name(x, name, sizeof(name));
			stls_cert_report_add(r, STLS_CERT_WARNING, "duplicate certificate \"%s\" in the chain, dropped",
					     name);
			X509_free(sk_X509_delete(pool, i));
			i--;
		}
	}
	STACK_OF(X509) *ordered = sk_X509_new_null();
	if (!ordered) {
		stls_cert_report_add(r, STLS_CERT_ERROR, "out of memory");
		return STLS_ERR_CONFIG;
	}
	X509 *cur = b->leaf;
	bool reordered = false;
	size_t expected_index = 0;
	while (!self_signed(cur)) {
		X509 *next = NULL;
		for (size_t i = 0; i < sk_X509_num(pool); i++) {
			if (issued_by(cur, sk_X509_value(pool, i))) {
				if (i != expected_index)
					reordered = true;
				next = sk_X509_delete(pool, i);
				break;
			}
		}
		if (!next)
			break;
		sk_X509_push(ordered, next);
		check_validity(r, next, "intermediate");
		cur = next;
	}
	for (size_t i = 0; i < sk_X509_num(pool); i++) {
		stls_cert_name(sk_X509_value(pool, i), name, sizeof(name));
		stls_cert_report_add(r, STLS_CERT_ERROR,
				     "broken chain: \"%s\" did not issue any certificate of the chain (wrong or "
				     "left-over intermediate)",
				     name);
	}
	if (reordered)
		stls_cert_report_add(r, STLS_CERT_INFO, "intermediates were out of order; they are sent leaf first");
	if (sk_X509_num(ordered) == 0 && !self_signed(b->leaf)) {
		char issuer[160] = "";
		X509_NAME_oneline(X509_get_issuer_name(b->leaf), issuer, sizeof(issuer));
		stls_cert_report_add(r, STLS_CERT_WARNING,
				     "no intermediate certificate: peers that do not already have \"%s\" cannot "
				     "verify the certificate",
				     issuer);
	}
	sk_X509_pop_free(pool, X509_free);
	b->chain = ordered;
	return r->num_errors ? STLS_ERR_CONFIG : STLS_OK;
}

void stls_cert_describe(const struct stls_cert_bundle *b, char *out, size_t out_len)
{
	char name[160] = "";
	char expiry[64] = "";
	if (b->leaf) {
		stls_cert_name(b->leaf, name, sizeof(name));
		BIO *bio = BIO_new(BIO_s_mem());
		const uint8_t *data;
		size_t len;
		if (bio && ASN1_TIME_print(bio, X509_get0_notAfter(b->leaf)) && BIO_mem_contents(bio, &data, &len)) {
			len = len < sizeof(expiry) - 1 ? len : sizeof(expiry) - 1;
			memcpy(expiry, data, len);
			expiry[len] = '\0';
		}
		BIO_free(bio);
	}
	const char *type = "unknown";
	if (b->key) {
		switch (EVP_PKEY_id(b->key)) {
		case EVP_PKEY_RSA: type = "RSA"; break;
		case EVP_PKEY_EC: type = "ECDSA"; break;
		case EVP_PKEY_ED25519: type = "Ed25519"; break;
		default: break;
		}
	}
	snprintf(out, out_len, "\"%s\" (%s %d bits, %zu intermediates, expires %s)", name, type,
		 b->key ? EVP_PKEY_bits(b->key) : 0, b->chain ? sk_X509_num(b->chain) : 0, expiry);
}
