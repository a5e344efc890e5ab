/* Unit tests for tls/cert.c: the checks the daemon and starttls-cert share (spec S4, S5, S9).
 *
 * Certificates are made in memory with tls/selfsign.c and re-signed here where a test needs an
 * issuer; PEM files go into a fresh folder each test removes. */
#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "tests/support/proc.h"
#include "tls/cert.h"
#include "tls/selfsign.h"

static char dir[128];

static void setup(void)
{
	cr_assert(stls_proc_tmpdir(dir, sizeof(dir), "cert-unit"));
}

static void teardown(void)
{
	stls_proc_rmtree(dir);
}

TestSuite(cert, .init = setup, .fini = teardown, .timeout = 30);

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = NULL;
	cr_assert_eq(stls_key_generate(&k, STLS_KEY_ECDSA_P256), STLS_OK);
	return k;
}

static X509 *selfsigned(EVP_PKEY *key, const char *cn, const char *const *sans, size_t num)
{
	X509 *x = NULL;
	char err[256];
	cr_assert_eq(stls_selfsign(&x, key, cn, sans, num, 30 * 12, err, sizeof(err)), STLS_OK, "%s", err);
	return x;
}

/* Makes cert look issued by issuer: its issuer name, signed with issuer_key. */
static void resign(X509 *cert, X509 *issuer, EVP_PKEY *issuer_key)
{
	cr_assert(X509_set_issuer_name(cert, X509_get_subject_name(issuer)));
	cr_assert(X509_sign(cert, issuer_key, EVP_sha256()));
}

/* A root CA certificate (CA:TRUE, keyCertSign) for key, which a verifier accepts as an issuer. */
static X509 *make_ca(EVP_PKEY *key, const char *cn)
{
	X509 *x = X509_new();
	cr_assert_not_null(x);
	X509_NAME *name = X509_get_subject_name(x);
	cr_assert(X509_set_version(x, X509_VERSION_3));
	cr_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 1));
	cr_assert(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0));
	cr_assert(X509_set_issuer_name(x, name));
	cr_assert(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	cr_assert(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	cr_assert(X509_set_pubkey(x, key));
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	const struct {
		int nid;
		const char *value;
	} exts[] = { { NID_basic_constraints, "critical,CA:TRUE" }, { NID_key_usage, "critical,keyCertSign" } };
	for (size_t i = 0; i < 2; i++) {
		X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
		cr_assert_not_null(e);
		cr_assert(X509_add_ext(x, e, -1));
		X509_EXTENSION_free(e);
	}
	cr_assert(X509_sign(x, key, EVP_sha256()));
	return x;
}

static const char *write_pem(const char *name, X509 *cert)
{
	static char paths[4][256];
	static unsigned next;
	char *p = paths[next++ % 4];
	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	cr_assert(PEM_write_X509(f, cert));
	fclose(f);
	return p;
}

static bool has_finding(const struct stls_cert_report *r, enum stls_cert_severity sev, const char *text)
{
	for (unsigned i = 0; i < r->num; i++) {
		if (r->findings[i].severity == sev && strstr(r->findings[i].text, text))
			return true;
	}
	return false;
}

Test(cert, covers_the_cn_the_sans_and_wildcards)
{
	EVP_PKEY *k = new_key();
	const char *sans[] = { "mail.example.test", "*.relay.example.test" };
	X509 *x = selfsigned(k, "mx.example.test", sans, 2);
	cr_assert(stls_cert_covers(x, "mx.example.test"));
	cr_assert(stls_cert_covers(x, "MX.Example.Test"));
	cr_assert(stls_cert_covers(x, "mail.example.test"));
	cr_assert(stls_cert_covers(x, "a.relay.example.test"));
	cr_assert_not(stls_cert_covers(x, "a.b.relay.example.test"), "a wildcard covers one label only");
	cr_assert_not(stls_cert_covers(x, "relay.example.test"));
	cr_assert_not(stls_cert_covers(x, "example.test"));
	cr_assert_not(stls_cert_covers(x, "mx.example.test.evil"));
	X509_free(x);
	EVP_PKEY_free(k);
}

Test(cert, names_report_each_of_the_three_names)
{
	EVP_PKEY *k = new_key();
	const char *sans[] = { "mail.example.test" };
	X509 *x = selfsigned(k, "mx.example.test", sans, 1);
	struct stls_cert_report r = { 0 };
	const char *mx[] = { "mx.example.test", "mail.example.test", "other.test" };
	stls_cert_check_names(&r, x, STLS_CERT_ERROR, "mx.example.test", mx, 3);
	cr_assert_eq(r.num_errors, 1);
	cr_assert(has_finding(&r, STLS_CERT_ERROR, "does not cover the MX host other.test"));
	/* Covered, but not the greeting's name: senders still verify, the names do not agree. */
	cr_assert_eq(r.num_warnings, 1);
	cr_assert(has_finding(&r, STLS_CERT_WARNING, "MX host mail.example.test differs from the listener hostname"));
	cr_assert(has_finding(&r, STLS_CERT_INFO, "covers the listener hostname mx.example.test"));
	cr_assert(has_finding(&r, STLS_CERT_INFO, "covers the MX host mx.example.test"));

	/* The daemon's call: a hostname it does not cover is a warning there. */
	r = (struct stls_cert_report){ 0 };
	stls_cert_check_names(&r, x, STLS_CERT_WARNING, "smtp.example.test", NULL, 0);
	cr_assert_eq(r.num_errors, 0);
	cr_assert(has_finding(&r, STLS_CERT_WARNING, "does not cover the listener hostname smtp.example.test"));
	/* No names given: nothing to say. */
	r = (struct stls_cert_report){ 0 };
	stls_cert_check_names(&r, x, STLS_CERT_ERROR, NULL, NULL, 0);
	cr_assert_eq(r.num, 0);
	X509_free(x);
	EVP_PKEY_free(k);
}

Test(cert, check_without_a_key_checks_the_rest)
{
	EVP_PKEY *k = new_key();
	struct stls_cert_bundle b = { .leaf = selfsigned(k, "mx.test", NULL, 0), .chain = sk_X509_new_null() };
	struct stls_cert_report r;
	cr_assert_eq(stls_cert_check(&b, &r), STLS_OK);
	cr_assert_eq(r.num_errors, 0);
	char desc[256];
	stls_cert_describe(&b, desc, sizeof(desc));
	cr_assert(strstr(desc, "ECDSA 256 bits"), "the public key stands in for the key: %s", desc);
	stls_cert_bundle_cleanup(&b);
	EVP_PKEY_free(k);
}

Test(cert, the_key_picks_the_leaf_out_of_a_bundle_that_starts_with_an_intermediate)
{
	EVP_PKEY *ca_key = new_key(), *leaf_key = new_key();
	X509 *ca = selfsigned(ca_key, "ca.test", NULL, 0);
	X509 *leaf = selfsigned(leaf_key, "mx.test", NULL, 0);
	resign(leaf, ca, ca_key);
	/* The file's order: the issuer first, then the certificate of the key. */
	struct stls_cert_bundle b = { .key = leaf_key, .leaf = ca, .chain = sk_X509_new_null() };
	cr_assert(sk_X509_push(b.chain, leaf));
	struct stls_cert_report r;
	cr_assert_eq(stls_cert_check(&b, &r), STLS_OK, "%s", r.findings[0].text);
	cr_assert_eq(b.leaf, leaf);
	cr_assert_eq(sk_X509_num(b.chain), 1);
	cr_assert_eq(sk_X509_value(b.chain, 0), ca);
	cr_assert(has_finding(&r, STLS_CERT_WARNING, "is not the first in its file"));
	stls_cert_bundle_cleanup(&b);
	EVP_PKEY_free(ca_key);
}

Test(cert, a_key_that_matches_nothing_is_an_error)
{
	EVP_PKEY *k = new_key(), *other = new_key();
	struct stls_cert_bundle b = { .key = other,
				      .leaf = selfsigned(k, "mx.test", NULL, 0),
				      .chain = sk_X509_new_null() };
	cr_assert(sk_X509_push(b.chain, selfsigned(k, "other.test", NULL, 0)));
	struct stls_cert_report r;
	cr_assert_eq(stls_cert_check(&b, &r), STLS_ERR_CONFIG);
	cr_assert(has_finding(&r, STLS_CERT_ERROR, "the private key does not match the certificate"));
	stls_cert_bundle_cleanup(&b);
	EVP_PKEY_free(k);
}

Test(cert, wrong_order_is_a_warning_and_is_fixed)
{
	EVP_PKEY *root_key = new_key(), *int_key = new_key(), *leaf_key = new_key();
	X509 *root = selfsigned(root_key, "root.test", NULL, 0);
	X509 *inter = selfsigned(int_key, "int.test", NULL, 0);
	resign(inter, root, root_key);
	X509 *leaf = selfsigned(leaf_key, "mx.test", NULL, 0);
	resign(leaf, inter, int_key);
	struct stls_cert_bundle b = { .key = leaf_key, .leaf = leaf, .chain = sk_X509_new_null() };
	cr_assert(sk_X509_push(b.chain, root));
	cr_assert(sk_X509_push(b.chain, inter));
	struct stls_cert_report r;
	cr_assert_eq(stls_cert_check(&b, &r), STLS_OK);
	cr_assert(has_finding(&r, STLS_CERT_WARNING, "intermediates are out of order"));
	cr_assert(has_finding(&r, STLS_CERT_INFO, "the chain holds the root \"CN = root.test\""));
	cr_assert_eq(sk_X509_value(b.chain, 0), inter);
	cr_assert_eq(sk_X509_value(b.chain, 1), root);
	stls_cert_bundle_cleanup(&b);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(int_key);
}

Test(cert, trust_is_what_a_peer_with_the_ca_file_concludes)
{
	EVP_PKEY *k = new_key(), *ca_key = new_key(), *other_key = new_key();
	X509 *ca = make_ca(ca_key, "Unit Root");
	struct stls_cert_bundle b = { .key = k, .leaf = selfsigned(k, "mx.test", NULL, 0) };
	resign(b.leaf, ca, ca_key);
	X509 *other = make_ca(other_key, "Unit Root");
	const char *own = write_pem("own.pem", ca);
	const char *wrong = write_pem("other.pem", other);
	struct stls_cert_report r = { 0 };
	cr_assert_eq(stls_cert_check_trust(&r, &b, own, "mx.test"), STLS_OK, "%s", r.findings[0].text);
	cr_assert(has_finding(&r, STLS_CERT_INFO, "verifies it for mx.test"));

	r = (struct stls_cert_report){ 0 };
	cr_assert_eq(stls_cert_check_trust(&r, &b, own, "smtp.test"), STLS_ERR_CONFIG);
	cr_assert(has_finding(&r, STLS_CERT_ERROR, "ostname mismatch"), "%s", r.findings[0].text);

	r = (struct stls_cert_report){ 0 };
	cr_assert_eq(stls_cert_check_trust(&r, &b, wrong, NULL), STLS_ERR_CONFIG);
	cr_assert(has_finding(&r, STLS_CERT_ERROR, "cannot verify it"), "%s", r.findings[0].text);

	r = (struct stls_cert_report){ 0 };
	char missing[256];
	snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
	cr_assert_eq(stls_cert_check_trust(&r, &b, missing, NULL), STLS_ERR_CONFIG);
	cr_assert(has_finding(&r, STLS_CERT_ERROR, "missing.pem"));
	X509_free(other);
	X509_free(ca);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(ca_key);
	stls_cert_bundle_cleanup(&b);
}

Test(cert, load_key_refuses_what_is_not_a_key)
{
	EVP_PKEY *k = new_key();
	X509 *x = selfsigned(k, "mx.test", NULL, 0);
	const char *path = write_pem("cert.pem", x);
	EVP_PKEY *got = NULL;
	char err[256];
	cr_assert_eq(stls_cert_load_key(&got, path, err, sizeof(err)), STLS_ERR_CONFIG);
	cr_assert(strstr(err, "no usable private key"), "%s", err);
	cr_assert_null(got);
	X509_free(x);
	EVP_PKEY_free(k);
}
