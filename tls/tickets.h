/* Session-ticket keys, shared by every worker (and, through --ticket-key-file, by every node).
 *
 * A key set is immutable and lives in the snapshot: a new set (rotation, or the file changed)
 * arrives as a new snapshot, so the ticket callback reads its keys without a lock. The first key
 * encrypts new tickets; all of them decrypt, so tickets issued before a rotation still resume.
 * BoringSSL's own ticket keys are not used: it rotates them under a lock that every handshake on
 * every worker would take. */
#pragma once

#include <openssl/base.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum { STLS_TICKET_KEY_LEN = 80, STLS_TICKET_MAX_KEYS = 8, STLS_TICKET_KEEP_RANDOM = 3 };

/* The layout of one 80-byte key, the same as nginx's ssl_session_ticket_key files. */
struct stls_ticket_key {
	uint8_t name[16];
	uint8_t hmac[32];
	uint8_t aes[32];
};

struct stls_ticket_keys {
	unsigned num;
	struct stls_ticket_key keys[STLS_TICKET_MAX_KEYS];
};

/* A set whose first key is new and random, followed by up to STLS_TICKET_KEEP_RANDOM - 1 keys of
 * prev (which may be NULL). Returns STLS_OK or STLS_ERR_TLS. */
[[nodiscard]] enum stls_err stls_tickets_rotate(struct stls_ticket_keys *out, const struct stls_ticket_keys *prev);

/* Reads a key file: 80 bytes a key (16 name, 32 HMAC secret, 32 AES key), one to
 * STLS_TICKET_MAX_KEYS keys, the first encrypting. Make one with `head -c 240 /dev/urandom`.
 * Returns STLS_OK or STLS_ERR_CONFIG with a reason in err. */
[[nodiscard]] enum stls_err stls_tickets_load(struct stls_ticket_keys *out, const char *path, char *err,
					      size_t err_len);

/* The callback for SSL_CTX_set_tlsext_ticket_key_cb. It finds the connection's key set through
 * stls_tls_conn_ticket_keys. */
int stls_tickets_callback(SSL *ssl, uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *ctx, HMAC_CTX *hmac_ctx,
			  int encrypt);
