/* Certificates: loading a key, a leaf and its intermediates, and checking them the way a peer
 * will (spec S2, S3, S5, S9).
 *
 * The daemon runs these checks at start-up and on reload, and refuses a certificate that peers
 * would reject: a key that does not match, a leaf or intermediate outside its validity, an
 * intermediate that does not belong to the chain. Duplicate intermediates (the usual leftover of a
 * renewal) are dropped with a warning. The certificate tool uses the same functions. */
#pragma once

#include <openssl/base.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* A key and its certificates: leaf, then intermediates in issuing order (leaf's issuer first). */
struct stls_cert_bundle {
	EVP_PKEY *key;
	X509 *leaf;
	STACK_OF(X509) * chain;
};

enum stls_cert_severity {
	STLS_CERT_INFO = 0,
	STLS_CERT_WARNING,
	STLS_CERT_ERROR, /* peers will reject it: refuse to use it */
	STLS_CERT__COUNT,
};

enum { STLS_CERT_MAX_FINDINGS = 24 };

/* What the checks found, one sentence each, for logs and the tool's report. */
struct stls_cert_report {
	unsigned num;
	unsigned num_errors;
	unsigned num_warnings;
	struct {
		enum stls_cert_severity severity;
		char text[256];
	} findings[STLS_CERT_MAX_FINDINGS];
};

/* "info", "warning", "error". */
const char *stls_cert_severity_str(enum stls_cert_severity sev);

/* Adds a finding (printf-style). Findings past the limit are counted but not kept. */
void stls_cert_report_add(struct stls_cert_report *r, enum stls_cert_severity sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Loads an unencrypted PEM private key (PKCS#8, or the traditional RSA and EC forms) into *out_key,
 * which the caller frees with EVP_PKEY_free. Returns STLS_OK or STLS_ERR_CONFIG with a reason naming
 * the file in err. */
[[nodiscard]] enum stls_err stls_cert_load_key(EVP_PKEY **out_key, const char *path, char *err, size_t err_len);

/* Loads PEM files: the certificate file holds the leaf first and may hold intermediates after it;
 * chain_path (may be NULL) holds more intermediates; key_path the private key (unencrypted; NULL
 * loads no key, for checking a certificate alone).
 * The intermediates are kept in file order; stls_cert_check orders them. Returns STLS_OK or
 * STLS_ERR_CONFIG with a reason naming the file in err. */
[[nodiscard]] enum stls_err stls_cert_load_pem(struct stls_cert_bundle *out, const char *cert_path,
					       const char *key_path, const char *chain_path, char *err, size_t err_len);

/* Loads a PKCS#12 file protected by password (spec S3). The leaf is the certificate that matches
 * the key; the others become intermediates. Returns STLS_OK or STLS_ERR_CONFIG with a reason. */
[[nodiscard]] enum stls_err stls_cert_load_p12(struct stls_cert_bundle *out, const char *path, const char *password,
					       char *err, size_t err_len);

/* Reads a password file: its first line, without the line end. Returns STLS_OK or STLS_ERR_CONFIG. */
[[nodiscard]] enum stls_err stls_cert_read_password(char *out, size_t out_len, const char *path, char *err,
						    size_t err_len);

/* Checks the bundle and puts its intermediates in issuing order, dropping duplicates: the key
 * (when the bundle has one) matches the leaf (when it matches an intermediate instead, that one
 * becomes the leaf, with a warning); the leaf and every intermediate are within their validity (expiring within
 * 30 days is a warning); each intermediate issued the certificate before it and its signature
 * verifies; an intermediate that belongs nowhere in the chain is an error; a leaf that is not
 * self-signed but comes with no intermediate is a warning (peers that lack the issuer fail).
 * Returns STLS_OK when report->num_errors is 0, else STLS_ERR_CONFIG. */
[[nodiscard]] enum stls_err stls_cert_check(struct stls_cert_bundle *bundle, struct stls_cert_report *report);

/* Whether a peer that connects to name accepts cert's names (RFC 6125: subjectAltName DNS names,
 * one left-most wildcard label). */
bool stls_cert_covers(const X509 *cert, const char *name);

/* Spec S4's three names: reports whether leaf covers hostname (the listener's, may be NULL or
 * empty) and each of the num_mx MX host names, a name it does not cover with severity sev (the
 * daemon warns, the tool's check calls it an error), an MX name other than hostname as a warning,
 * and a covered name as info. */
void stls_cert_check_names(struct stls_cert_report *report, const X509 *leaf, enum stls_cert_severity sev,
			   const char *hostname, const char *const *mx, size_t num_mx);

/* Verifies the bundle's leaf and chain as a TLS client that trusts the PEM certificates in
 * ca_path would (purpose TLS server, and hostname when not NULL or empty), and reports the
 * outcome: info when it verifies, else an error with the reason and the certificate it failed at.
 * Returns STLS_OK when it verifies, else STLS_ERR_CONFIG. */
[[nodiscard]] enum stls_err stls_cert_check_trust(struct stls_cert_report *report,
						  const struct stls_cert_bundle *bundle, const char *ca_path,
						  const char *hostname);

/* The leaf's subject and expiry in one line, for the start-up log. */
void stls_cert_describe(const struct stls_cert_bundle *bundle, char *out, size_t out_len);

/* Writes a certificate's subject as one line ("CN=mx.example.com, O=Example"). */
void stls_cert_name(const X509 *cert, char *out, size_t out_len);

/* Frees everything the bundle holds and zeroes it; harmless on an all-zero bundle. */
void stls_cert_bundle_cleanup(struct stls_cert_bundle *bundle);
