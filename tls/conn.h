/* TLS on one connection, without a socket.
 *
 * BoringSSL never touches a socket: the worker hands it the ciphertext io_uring received (through
 * a BIO that reads the receive buffer in place) and collects the ciphertext it produces in the
 * connection's wire buffer, which the worker sends. Plaintext goes into and out of the session's
 * own buffers. BoringSSL releases its record buffers whenever they are empty, so an idle session
 * holds only the SSL object. */
#pragma once

#include <openssl/base.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/span.h"
#include "tls/tickets.h"

struct stls_tls_conn;

/* Where a signature handed to the key-op process stands. */
enum stls_tls_keyop_state {
	STLS_TLS_KEYOP_NONE = 0,
	STLS_TLS_KEYOP_PENDING,
	STLS_TLS_KEYOP_DONE,
	STLS_TLS_KEYOP_FAILED,
	STLS_TLS_KEYOP__COUNT,
};

/* Starts a server-side connection on ctx. Ciphertext to send is appended to wire (never past
 * wire_limit bytes queued). keys must outlive the connection (the session's snapshot holds them).
 * Returns NULL when out of memory. */
struct stls_tls_conn *stls_tls_conn_new_server(SSL_CTX *ctx, const struct stls_ticket_keys *keys, struct stls_buf *wire,
					       size_t wire_limit);

/* Starts a client-side connection on ctx, offering resume (may be NULL; the connection takes its
 * own reference) and server_name as SNI (may be NULL). Call stls_tls_conn_connect to send the
 * ClientHello. Returns NULL when out of memory. ctx must have been prepared with
 * stls_tls_client_ctx_setup so that new sessions are kept. */
struct stls_tls_conn *stls_tls_conn_new_client(SSL_CTX *ctx, SSL_SESSION *resume, const char *server_name,
					       struct stls_buf *wire, size_t wire_limit);

/* Client side: writes the ClientHello into the wire buffer. Returns STLS_OK or STLS_ERR_TLS. */
[[nodiscard]] enum stls_err stls_tls_conn_connect(struct stls_tls_conn *t);

/* Client side: the session the server issued (a TLS 1.3 ticket arrives after the handshake; NULL
 * until then). The caller owns the returned reference. */
SSL_SESSION *stls_tls_conn_take_session(struct stls_tls_conn *t);

/* Client side: checks the server's certificate against name (RFC 6125: a wildcard covers one
 * whole left-most label) as well as against the context's trust store. The handshake goes on
 * whatever the result; stls_tls_conn_verified says it afterwards. Call before connecting. */
[[nodiscard]] enum stls_err stls_tls_conn_set_verify_name(struct stls_tls_conn *t, const char *name);

/* Client side, after the handshake: whether the server's certificate chained to a trusted CA
 * and matched the name. *out_why (may be NULL) gets the verifier's reason when it did not. */
bool stls_tls_conn_verified(const struct stls_tls_conn *t, const char **out_why);

/* Makes a client context keep the sessions servers issue, for stls_tls_conn_take_session. */
void stls_tls_client_ctx_setup(SSL_CTX *ctx);

/* Frees the connection and sets *pt to NULL; harmless on NULL. */
void stls_tls_conn_free(struct stls_tls_conn **pt);

/* Feeds ciphertext (all of it is consumed), advances the handshake and appends any application
 * data to plain (never past plain_limit bytes there). Returns:
 *   STLS_AGAIN        the handshake needs more bytes, or waits for the key-op process (then
 *                     stls_tls_conn_keyop_pending; bytes it did not read yet are kept);
 *   STLS_OK           the handshake is done (plaintext may have been appended);
 *   STLS_DONE         the peer sent close_notify;
 *   STLS_ERR_TLS      the handshake or a record failed (stls_tls_conn_error says why);
 *   STLS_ERR_LIMIT    plain or wire would grow past its limit. */
[[nodiscard]] enum stls_err stls_tls_conn_input(struct stls_tls_conn *t, struct stls_buf *plain, size_t plain_limit,
						struct stls_span ciphertext);

/* Encrypts plain into the wire buffer. Returns STLS_OK, or STLS_ERR_TLS / STLS_ERR_LIMIT. */
[[nodiscard]] enum stls_err stls_tls_conn_write(struct stls_tls_conn *t, struct stls_span plain);

/* Queues close_notify (once the handshake is done; otherwise does nothing). */
void stls_tls_conn_shutdown(struct stls_tls_conn *t);

/* Whether the handshake completed. */
bool stls_tls_conn_ready(const struct stls_tls_conn *t);

/* Why the connection failed, for "TLS failed: <why>"; "" if it has not. */
const char *stls_tls_conn_error(const struct stls_tls_conn *t);

/* The negotiated protocol ("TLSv1.3") and cipher suite's IETF name ("TLS_AES_128_GCM_SHA256"):
 * static strings, valid forever. */
const char *stls_tls_conn_version(const struct stls_tls_conn *t);
const char *stls_tls_conn_cipher(const struct stls_tls_conn *t);

/* The name the client asked for with SNI, or NULL when it sent none. */
const char *stls_tls_conn_server_name(const struct stls_tls_conn *t);

/* Whether the handshake resumed a session. */
bool stls_tls_conn_resumed(const struct stls_tls_conn *t);

/* The key set of the connection that owns ssl (for the ticket callback). */
const struct stls_ticket_keys *stls_tls_conn_ticket_keys(const SSL *ssl);

/* Server side with --keyop-threads: the opaque token the signature request carries (the worker's
 * session address), set before the handshake. */
void stls_tls_conn_set_token(struct stls_tls_conn *t, uint64_t token);

/* Whether the handshake waits for a signature from the key-op process. */
bool stls_tls_conn_keyop_pending(const struct stls_tls_conn *t);

/* The key-op process answered: the signature, or why (not NULL) there is none. Call
 * stls_tls_conn_input with no ciphertext afterwards to resume the handshake; a failure ends it
 * with "key-op process: <why>". Ignored unless a signature is pending. */
void stls_tls_conn_keyop_done(struct stls_tls_conn *t, struct stls_span sig, const char *why);

/* Prepares the BIO method and the ex_data index; call once before any worker starts. Returns
 * STLS_OK or STLS_ERR_TLS. */
[[nodiscard]] enum stls_err stls_tls_init(void);
