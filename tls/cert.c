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
#include <openssl/x509v3.h>
#include <string.h>
#include <strings.h>
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

enum stls_err stls_cert_load_key(EVP_PKEY **out_key, const char *path, char *err, size_t err_len)
{
	BIO *bio = open_file(path, err, err_len);
	if (!bio)
		return STLS_ERR_CONFIG;
	*out_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!*out_key) {
		snprintf(err, err_len, "%s: no usable private key (%s; an encrypted key must be decrypted first)", path,
			 ssl_reason());
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
	ret = key_path ? stls_cert_load_key(&out->key, key_path, err, err_len) : STLS_OK;
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
	if (!b->leaf) {
		stls_cert_report_add(r, STLS_CERT_ERROR, "no certificate");
		return STLS_ERR_CONFIG;
	}
	/* A CA's bundle may come intermediates first: the key says which certificate is the leaf. */
	if (b->key && b->chain && !X509_check_private_key(b->leaf, b->key)) {
		for (size_t i = 0; i < sk_X509_num(b->chain); i++) {
			X509 *x = sk_X509_value(b->chain, i);
			if (X509_check_private_key(x, b->key)) {
				sk_X509_set(b->chain, i, b->leaf);
				b->leaf = x;
				stls_cert_name(x, name, sizeof(name));
				stls_cert_report_add(
					r, STLS_CERT_WARNING,
					"the certificate of the key, \"%s\", is not the first in its file; "
					"it is sent first",
					name);
				break;
			}
		}
	}
	ERR_clear_error();
	if (b->key && !X509_check_private_key(b->leaf, b->key))
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
		if (!sk_X509_push(ordered, next)) {
			X509_free(next);
			stls_cert_report_add(r, STLS_CERT_ERROR, "out of memory");
			break;
		}
		if (self_signed(next)) {
			stls_cert_name(next, name, sizeof(name));
			stls_cert_report_add(r, STLS_CERT_INFO,
					     "the chain holds the root \"%s\"; peers use their own copy of it", name);
		}
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
		stls_cert_report_add(r, STLS_CERT_WARNING,
				     "intermediates are out of order (each must follow the certificate it issued); "
				     "they are sent leaf first");
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
	/* Without the private key (the tool's check), the certificate's public key tells the same. */
	EVP_PKEY *pub = b->key ? NULL : b->leaf ? X509_get_pubkey(b->leaf) : NULL;
	const EVP_PKEY *key = b->key ? b->key : pub;
	if (key) {
		switch (EVP_PKEY_id(key)) {
		case EVP_PKEY_RSA: type = "RSA"; break;
		case EVP_PKEY_EC: type = "ECDSA"; break;
		case EVP_PKEY_ED25519: type = "Ed25519"; break;
		default: break;
		}
	}
	snprintf(out, out_len, "\"%s\" (%s %d bits, %zu intermediates, expires %s)", name, type,
		 key ? EVP_PKEY_bits(key) : 0, b->chain ? sk_X509_num(b->chain) : 0, expiry);
	EVP_PKEY_free(pub);
}

bool stls_cert_covers(const X509 *cert, const char *name)
{
	/* RFC 6125 6.4: DNS names from subjectAltName (the CN only when there is none), one wildcard
	 * label at the left; BoringSSL's matcher applies those rules. */
	bool ok = X509_check_host((X509 *)cert, name, strlen(name), 0, NULL) == 1;
	ERR_clear_error();
	return ok;
}

void stls_cert_check_names(struct stls_cert_report *r, const X509 *leaf, enum stls_cert_severity sev,
			   const char *hostname, const char *const *mx, size_t num_mx)
{
	/* Spec S4: for a verifiable inbound connection the MX record's name, the certificate's name and
	 * the listener's hostname must agree. A sender verifies the certificate against the MX name. */
	if (hostname && hostname[0]) {
		if (stls_cert_covers(leaf, hostname))
			stls_cert_report_add(r, STLS_CERT_INFO, "the certificate covers the listener hostname %s",
					     hostname);
		else
			stls_cert_report_add(r, sev,
					     "the certificate does not cover the listener hostname %s (spec S4: "
					     "the MX name, the certificate and the hostname must agree)",
					     hostname);
	}
	for (size_t i = 0; i < num_mx; i++) {
		if (!stls_cert_covers(leaf, mx[i]))
			stls_cert_report_add(r, sev,
					     "the certificate does not cover the MX host %s: senders that verify "
					     "will refuse it",
					     mx[i]);
		else if (hostname && hostname[0] && strcasecmp(mx[i], hostname) != 0)
			stls_cert_report_add(r, STLS_CERT_WARNING,
					     "the MX host %s differs from the listener hostname %s (spec S4): the "
					     "greeting names another host than the one senders looked up",
					     mx[i], hostname);
		else
			stls_cert_report_add(r, STLS_CERT_INFO, "the certificate covers the MX host %s", mx[i]);
	}
}

enum stls_err stls_cert_check_trust(struct stls_cert_report *r, const struct stls_cert_bundle *b, const char *ca_path,
				    const char *hostname)
{
	enum stls_err ret = STLS_ERR_CONFIG;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (!store || !ctx || !b->leaf) {
		stls_cert_report_add(r, STLS_CERT_ERROR, "out of memory");
		goto out;
	}
	if (!X509_STORE_load_locations(store, ca_path, NULL)) {
		stls_cert_report_add(r, STLS_CERT_ERROR, "%s: cannot be read as PEM certificates (%s)", ca_path,
				     ssl_reason());
		goto out;
	}
	if (!X509_STORE_CTX_init(ctx, store, b->leaf, b->chain) ||
	    !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER)) {
		stls_cert_report_add(r, STLS_CERT_ERROR, "cannot set up verification: %s", ssl_reason());
		goto out;
	}
	if (hostname && hostname[0])
		X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), hostname, strlen(hostname));
	if (X509_verify_cert(ctx) == 1) {
		stls_cert_report_add(r, STLS_CERT_INFO, "a peer that trusts %s verifies it%s%s (chain of %zu)", ca_path,
				     hostname && hostname[0] ? " for " : "", hostname ? hostname : "",
				     sk_X509_num(X509_STORE_CTX_get0_chain(ctx)));
		ret = STLS_OK;
		goto out;
	}
	int code = X509_STORE_CTX_get_error(ctx);
	char name[160] = "";
	X509 *at = X509_STORE_CTX_get_current_cert(ctx);
	if (at)
		stls_cert_name(at, name, sizeof(name));
	stls_cert_report_add(r, STLS_CERT_ERROR, "a peer that trusts %s cannot verify it: %s (at \"%s\", depth %d)",
			     ca_path, X509_verify_cert_error_string(code), name, X509_STORE_CTX_get_error_depth(ctx));
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ret;
}
