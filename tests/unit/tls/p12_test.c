/* Unit tests for tls/p12.c: PKCS#12 written with PBES2 and an HMAC-SHA256 MAC, read back by
 * BoringSSL's parser (the one the daemon loads --p12 with). openssl's reading of it is the interop
 * suite cert_tool's. */
#include <criterion/criterion.h>
#include <openssl/bytestring.h>
#include <openssl/mem.h>
#include <openssl/pkcs8.h>
#include <openssl/x509.h>
#include <string.h>

#include "tls/cert.h"
#include "tls/p12.h"
#include "tls/selfsign.h"

TestSuite(p12, .timeout = 30);

static struct stls_cert_bundle bundle;

static void make_bundle(void)
{
	char err[256];
	bundle = (struct stls_cert_bundle){ .chain = sk_X509_new_null() };
	cr_assert_eq(stls_key_generate(&bundle.key, STLS_KEY_ECDSA_P256), STLS_OK);
	cr_assert_eq(stls_selfsign(&bundle.leaf, bundle.key, "mx.test", NULL, 0, 30, err, sizeof(err)), STLS_OK);
	EVP_PKEY *other = NULL;
	cr_assert_eq(stls_key_generate(&other, STLS_KEY_ECDSA_P256), STLS_OK);
	for (int i = 0; i < 2; i++) {
		X509 *x = NULL;
		cr_assert_eq(stls_selfsign(&x, other, i ? "b.test" : "a.test", NULL, 0, 30, err, sizeof(err)), STLS_OK);
		cr_assert(sk_X509_push(bundle.chain, x));
	}
	EVP_PKEY_free(other);
}

/* Parses der with password the way tls/cert.c does. Returns whether it opened, with the key and
 * certificates in out_key / certs. */
static bool parse(const uint8_t *der, size_t len, const char *password, EVP_PKEY **out_key, STACK_OF(X509) * certs)
{
	CBS cbs;
	CBS_init(&cbs, der, len);
	return PKCS12_get_key_and_certs(out_key, certs, &cbs, password) == 1;
}

Test(p12, reads_back_with_the_key_the_leaf_and_the_chain_in_order)
{
	make_bundle();
	uint8_t *der = NULL;
	size_t len = 0;
	cr_assert_eq(stls_p12_encode(&der, &len, &bundle, "secret", "mx.test", 1000), STLS_OK);
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *certs = sk_X509_new_null();
	cr_assert(parse(der, len, "secret", &key, certs));
	cr_assert_eq(EVP_PKEY_cmp(key, bundle.key), 1);
	cr_assert_eq(sk_X509_num(certs), 3);
	cr_assert_eq(X509_cmp(sk_X509_value(certs, 0), bundle.leaf), 0);
	cr_assert_eq(X509_cmp(sk_X509_value(certs, 1), sk_X509_value(bundle.chain, 0)), 0);
	cr_assert_eq(X509_cmp(sk_X509_value(certs, 2), sk_X509_value(bundle.chain, 1)), 0);
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	OPENSSL_free(der);
	stls_cert_bundle_cleanup(&bundle);
}

Test(p12, the_wrong_password_and_a_changed_byte_are_refused)
{
	make_bundle();
	uint8_t *der = NULL;
	size_t len = 0;
	cr_assert_eq(stls_p12_encode(&der, &len, &bundle, "secret", NULL, 1000), STLS_OK);
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *certs = sk_X509_new_null();
	cr_assert_not(parse(der, len, "Secret", &key, certs));
	cr_assert_not(parse(der, len, "", &key, certs));
	/* A byte of a certificate inside the MACed content: the MAC no longer matches. */
	der[len / 3] ^= 1;
	cr_assert_not(parse(der, len, "secret", &key, certs));
	cr_assert_null(key);
	sk_X509_pop_free(certs, X509_free);
	OPENSSL_free(der);
	stls_cert_bundle_cleanup(&bundle);
}

Test(p12, non_ascii_passwords_are_encoded_as_rfc_7292_asks)
{
	make_bundle();
	uint8_t *der = NULL;
	size_t len = 0;
	/* U+00E4 and U+00F6: UTF-8 in, BMPString for the MAC, the bytes as they are for PBKDF2. */
	cr_assert_eq(stls_p12_encode(&der, &len, &bundle, "p\xc3\xa4sswörd", NULL, 1000), STLS_OK);
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *certs = sk_X509_new_null();
	cr_assert(parse(der, len, "p\xc3\xa4sswörd", &key, certs));
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	OPENSSL_free(der);
	const char *bad[] = { "", "\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80" /* a lone surrogate */ };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		der = NULL;
		cr_assert_eq(stls_p12_encode(&der, &len, &bundle, bad[i], NULL, 1000), STLS_ERR_CONFIG, "case %zu", i);
		cr_assert_null(der);
	}
	stls_cert_bundle_cleanup(&bundle);
}
