/* The server-side TLS context: one SSL_CTX per certificate set, shared read-only by every worker.
 *
 * TLS 1.2 and 1.3 only, forward-secret AEAD cipher suites only, X25519 and P-256, no
 * renegotiation (BoringSSL never renegotiates as a server), stateless resumption with tickets
 * whose keys come from the snapshot (tls/tickets.h) and no server-side session cache (spec S30). */
#pragma once

#include <openssl/base.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "tls/cert.h"

struct stls_tls_server {
	SSL_CTX *ctx;
	bool demo;	    /* the ephemeral self-signed certificate (S1) */
	unsigned refs;	    /* snapshots holding it; main thread only */
	uint32_t key_id;    /* with --keyop-threads: the key's id in the key-op process, else 0 */
	char describe[320]; /* the certificate, for the log */
	struct stls_cert_report report;
};

/* Builds the context from the configuration: --cert/--key/--chain, --p12 with its password file,
 * or the demo certificate for --hostname when neither is given. The certificate checks' findings
 * are in (*out)->report, or in *out_report when the build fails because of them. Returns STLS_OK,
 * or STLS_ERR_CONFIG with the reason in err. */
[[nodiscard]] enum stls_err stls_tls_server_new(struct stls_tls_server **out, struct stls_cert_report *out_report,
						const struct stls_config *cfg, char *err, size_t err_len);

/* Takes and drops a reference (main thread). The last put frees it. */
void stls_tls_server_get(struct stls_tls_server *srv);
void stls_tls_server_put(struct stls_tls_server *srv);
