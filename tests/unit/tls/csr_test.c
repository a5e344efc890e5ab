/* Unit tests for tls/csr.c: certificate signing requests (spec S4, S6). */
#include <criterion/criterion.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "tls/csr.h"
#include "tls/selfsign.h"

TestSuite(csr, .timeout = 30);

Test(csr, carries_the_name_the_sans_and_verifies)
{
	EVP_PKEY *k = NULL;
	cr_assert_eq(stls_key_generate(&k, STLS_KEY_ECDSA_P256), STLS_OK);
	const char *sans[] = { "mail.test", "mx.test" };
	X509_REQ *req = NULL;
	char err[256];
	cr_assert_eq(stls_csr_new(&req, k, "mx.test", sans, 2, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert(stls_csr_verify(req));
	char cn[64];
	cr_assert_gt(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn, sizeof(cn)), 0);
	cr_assert_str_eq(cn, "mx.test");
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	cr_assert_eq(sk_X509_EXTENSION_num(exts), 1);
	GENERAL_NAMES *names = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, 0));
	cr_assert_not_null(names);
	/* The CN first, the repeated mx.test left out. */
	cr_assert_eq(sk_GENERAL_NAME_num(names), 2);
	const char *want[] = { "mx.test", "mail.test" };
	for (size_t i = 0; i < 2; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		cr_assert_eq(gn->type, GEN_DNS);
		cr_assert_eq((size_t)ASN1_STRING_length(gn->d.dNSName), strlen(want[i]));
		cr_assert(memcmp(ASN1_STRING_get0_data(gn->d.dNSName), want[i], strlen(want[i])) == 0);
	}
	EVP_PKEY *pub = X509_REQ_get_pubkey(req);
	cr_assert_eq(EVP_PKEY_cmp(pub, k), 1, "the request carries the key's public half");
	EVP_PKEY_free(pub);
	GENERAL_NAMES_free(names);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
}

Test(csr, a_request_whose_key_was_swapped_does_not_verify)
{
	EVP_PKEY *k = NULL, *other = NULL;
	cr_assert_eq(stls_key_generate(&k, STLS_KEY_ECDSA_P256), STLS_OK);
	cr_assert_eq(stls_key_generate(&other, STLS_KEY_ECDSA_P256), STLS_OK);
	X509_REQ *req = NULL;
	char err[256];
	cr_assert_eq(stls_csr_new(&req, k, "mx.test", NULL, 0, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert(X509_REQ_set_pubkey(req, other));
	cr_assert_not(stls_csr_verify(req), "signed by k, claims other's key");
	X509_REQ_free(req);
	EVP_PKEY_free(other);
	EVP_PKEY_free(k);
}

Test(csr, refuses_what_is_not_a_host_name)
{
	EVP_PKEY *k = NULL;
	cr_assert_eq(stls_key_generate(&k, STLS_KEY_ECDSA_P256), STLS_OK);
	X509_REQ *req = NULL;
	char err[256];
	const char *sans[] = { "bad name" };
	cr_assert_eq(stls_csr_new(&req, k, "mx.test", sans, 1, err, sizeof(err)), STLS_ERR_USAGE);
	cr_assert(strstr(err, "\"bad name\" is not a host name"), "%s", err);
	cr_assert_eq(stls_csr_new(&req, k, "", NULL, 0, err, sizeof(err)), STLS_ERR_USAGE);
	cr_assert_null(req);
	EVP_PKEY_free(k);
}
