/* Certificate signing requests (spec S4, S6): what a CA signs to replace a self-signed
 * certificate, or to renew an expired one for the same key or a new one. */
#pragma once

#include <openssl/base.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* Makes a PKCS#10 request signed by key (SHA-256): subject CN=cn, and a requested subjectAltName
 * extension with DNS:cn and the num_sans names in sans (see stls_selfsign_san). The caller frees
 * *out_req with X509_REQ_free. Returns STLS_OK, STLS_ERR_USAGE for a name that is not a host name,
 * or STLS_ERR_TLS, with a reason in err. */
[[nodiscard]] enum stls_err stls_csr_new(X509_REQ **out_req, EVP_PKEY *key, const char *cn, const char *const *sans,
					 size_t num_sans, char *err, size_t err_len);

/* Whether req's signature verifies with the public key it carries (what `openssl req -verify`
 * checks). */
bool stls_csr_verify(X509_REQ *req);
