#include "tls/csr.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include "tls/selfsign.h"

enum stls_err stls_csr_new(X509_REQ **out_req, EVP_PKEY *key, const char *cn, const char *const *sans, size_t num_sans,
			   char *err, size_t err_len)
{
	char san[4096];
	X509_EXTENSION *ext = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_REQ *req = NULL;
	enum stls_err ret = stls_selfsign_san(san, sizeof(san), cn, sans, num_sans, err, err_len);
	if (ret != STLS_OK)
		goto out;
	req = X509_REQ_new();
	exts = sk_X509_EXTENSION_new_null();
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
	if (req && exts)
		ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_alt_name, san);
	bool ok = ext && sk_X509_EXTENSION_push(exts, ext);
	if (ok)
		ext = NULL;
	/* RFC 2986 4.1: version 0 (X509_REQ_VERSION_1) is the only one defined. */
	ok = ok && X509_REQ_set_version(req, X509_REQ_VERSION_1) &&
	     X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1,
					0) &&
	     X509_REQ_set_pubkey(req, key) && X509_REQ_add_extensions(req, exts) &&
	     X509_REQ_sign(req, key, EVP_sha256());
	if (!ok) {
		snprintf(err, err_len, "cannot make the request: %s", ERR_reason_error_string(ERR_peek_last_error()));
		ret = STLS_ERR_TLS;
		goto out;
	}
	*out_req = req;
	req = NULL;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	ERR_clear_error();
	return ret;
}

bool stls_csr_verify(X509_REQ *req)
{
	EVP_PKEY *pub = X509_REQ_get_pubkey(req);
	bool ok = pub && X509_REQ_verify(req, pub) == 1;
	EVP_PKEY_free(pub);
	ERR_clear_error();
	return ok;
}
