/* Making keys and self-signed certificates on the box (spec S1 demo certificate, S4). */
#pragma once

#include <openssl/base.h>
#include <stddef.h>

#include "core/err.h"
#include "tls/cert.h"

enum stls_key_type {
	STLS_KEY_ECDSA_P256 = 0,
	STLS_KEY_ECDSA_P384,
	STLS_KEY_RSA2048,
	STLS_KEY_RSA3072,
	STLS_KEY_RSA4096,
	STLS_KEY__COUNT,
};

/* "ecdsa-p256", "rsa2048", ... */
const char *stls_key_type_str(enum stls_key_type type);

/* Parses a key type name. Returns STLS_OK or STLS_ERR_USAGE. */
[[nodiscard]] enum stls_err stls_key_type_parse(enum stls_key_type *out, const char *name);

/* Generates a new private key. Returns STLS_OK or STLS_ERR_TLS. */
[[nodiscard]] enum stls_err stls_key_generate(EVP_PKEY **out_key, enum stls_key_type type);

/* Writes the subjectAltName value for cn and the num_sans names in sans ("DNS:cn,DNS:a,...", cn
 * first, a repeat of cn left out) into out. Returns STLS_OK, or STLS_ERR_USAGE with a reason in err
 * when a name is not a host name (letters, digits, '-', '.', a leading '*') or out is too small. */
[[nodiscard]] enum stls_err stls_selfsign_san(char *out, size_t out_len, const char *cn, const char *const *sans,
					      size_t num_sans, char *err, size_t err_len);

/* Makes a self-signed certificate for key: subject CN=cn, subjectAltName DNS:cn plus the names
 * in sans (num_sans of them), valid from an hour ago for days days, for TLS servers and clients.
 * Returns STLS_OK, STLS_ERR_USAGE for a name that is not a host name, or STLS_ERR_TLS, with a
 * reason in err. */
[[nodiscard]] enum stls_err stls_selfsign(X509 **out_cert, EVP_PKEY *key, const char *cn, const char *const *sans,
					  size_t num_sans, unsigned days, char *err, size_t err_len);

/* The demo certificate (S1): a fresh ECDSA P-256 key and a self-signed certificate for hostname,
 * valid for a year. Nothing is written to disk; peers cannot verify it. */
[[nodiscard]] enum stls_err stls_selfsign_demo(struct stls_cert_bundle *out, const char *hostname, char *err,
					       size_t err_len);
