/* Writing keys, certificates, requests and PKCS#12 files (spec S2-S5, S8), for starttls-cert.
 *
 * Every file is written whole or not at all: into a temporary file beside it, synced, then moved
 * into place. Without force an existing file is never replaced (the move fails instead); with it,
 * the old file is replaced in one step. Files that hold a private key get mode 0600, others 0644,
 * whatever the umask. */
#pragma once

#include <openssl/base.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "tls/cert.h"

/* Iterations of the PKCS#12 key derivation (and of its MAC key's). */
enum { STLS_CERT_P12_ITERATIONS = 200000 };

/* Checks, before anything is written, that path may be written: it does not exist, or force is
 * set and it is a regular file. Returns STLS_OK, or STLS_ERR_CONFIG with a reason in err. */
[[nodiscard]] enum stls_err stls_cert_write_check(const char *path, bool force, char *err, size_t err_len);

/* Writes len bytes to path with mode (see above). Returns STLS_OK, or STLS_ERR_CONFIG (the file
 * exists and force is false) or STLS_ERR_IO, with a reason in err. */
[[nodiscard]] enum stls_err stls_cert_write_file(const char *path, const void *data, size_t len, unsigned mode,
						 bool force, char *err, size_t err_len);

/* Writes key as an unencrypted PEM PKCS#8 private key ("BEGIN PRIVATE KEY"), mode 0600. The
 * encoded copy in memory is wiped. Returns as stls_cert_write_file. */
[[nodiscard]] enum stls_err stls_cert_write_key(const char *path, const EVP_PKEY *key, bool force, char *err,
						size_t err_len);

/* Writes the certificate leaf (may be NULL) then those of chain (may be NULL) in order, as PEM,
 * mode 0644. Writing nothing at all is refused (STLS_ERR_INTERNAL). Returns as
 * stls_cert_write_file. */
[[nodiscard]] enum stls_err stls_cert_write_certs(const char *path, X509 *leaf, const STACK_OF(X509) * chain,
						  bool force, char *err, size_t err_len);

/* Writes a certificate signing request as PEM ("BEGIN CERTIFICATE REQUEST"), mode 0644. Returns as
 * stls_cert_write_file. */
[[nodiscard]] enum stls_err stls_cert_write_csr(const char *path, X509_REQ *req, bool force, char *err, size_t err_len);

/* Writes bundle (key, leaf, chain in its order) as a DER PKCS#12 file protected by password, with
 * friendly name name (may be NULL), mode 0600, encoded by stls_p12_encode as OpenSSL 3 does by
 * default: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for the key and the certificates, an
 * HMAC-SHA256 MAC, STLS_CERT_P12_ITERATIONS iterations each. An empty password is refused, and
 * one that is not UTF-8 (STLS_ERR_CONFIG). Returns as stls_cert_write_file, STLS_ERR_TLS when the
 * file cannot be made. */
[[nodiscard]] enum stls_err stls_cert_write_p12(const char *path, const struct stls_cert_bundle *bundle,
						const char *password, const char *name, bool force, char *err,
						size_t err_len);
