/* Private-key signatures done elsewhere: BoringSSL's asynchronous private-key method.
 *
 * With --keyop-threads the server context holds the certificate but no private key. When a
 * handshake needs a signature, BoringSSL calls the method, which hands the bytes to the worker's
 * submitter (the worker sends them to the key-op process, core/keyop_chan.c) and returns "retry";
 * the handshake pauses with STLS_AGAIN. The worker delivers the answer with
 * stls_tls_conn_keyop_done and feeds the connection again, and the handshake goes on.
 *
 * The key itself goes to the key-op process through a store (core/keyop.c) when the context is
 * built, under a key id; the context forgets it when it is freed. */
#pragma once

#include <openssl/base.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/span.h"

/* Hands one signature request on: token identifies the connection (stls_tls_conn_set_token),
 * key_id the key, sigalg the TLS SignatureScheme, in the bytes to sign. Returns STLS_OK when the
 * request is on its way (the answer will come through stls_tls_conn_keyop_done), anything else
 * when it cannot be sent (the handshake fails). */
typedef enum stls_err stls_tls_keyop_submit_fn(void *ctx, uint64_t token, uint32_t key_id, uint16_t sigalg,
					       struct stls_span in);

/* The calling thread's submitter (each worker sets its own; NULL clears it). */
void stls_tls_keyop_set_submitter(stls_tls_keyop_submit_fn *fn, void *ctx);

/* Where keys go: load gives the key-op process a PKCS#8 DER key under key_id (returns STLS_OK, or
 * a failure with the reason in err), drop takes it away. Main thread only. */
typedef enum stls_err stls_tls_keyop_load_fn(void *ctx, uint32_t key_id, struct stls_span der, char *err,
					     size_t err_len);
typedef void stls_tls_keyop_drop_fn(void *ctx, uint32_t key_id);

/* Sets the store (NULL load: none; contexts then keep their keys). Main thread, before building
 * any context. */
void stls_tls_keyop_set_store(stls_tls_keyop_load_fn *load, stls_tls_keyop_drop_fn *drop, void *ctx);

/* Whether a store is set. */
bool stls_tls_keyop_enabled(void);

/* Gives key to the store under a fresh key id and makes ctx sign through the method with it.
 * Returns STLS_OK with the id in *out_key_id, or STLS_ERR_CONFIG with the reason in err. */
[[nodiscard]] enum stls_err stls_tls_keyop_attach(SSL_CTX *ctx, uint32_t *out_key_id, EVP_PKEY *key, char *err,
						  size_t err_len);

/* Takes the key away from the store (the context is being freed). */
void stls_tls_keyop_detach(uint32_t key_id);

/* The method's two halves, for tls/conn.c: the key id a connection's context signs with, and
 * the thread's submitter. */
uint32_t stls_tls_keyop_key_id(const SSL *ssl);
enum stls_err stls_tls_keyop_submit(uint64_t token, uint32_t key_id, uint16_t sigalg, struct stls_span in);

/* The ex_data slot for the key id; call once from stls_tls_init. */
[[nodiscard]] enum stls_err stls_tls_keyop_init(void);

/* The method itself (defined in tls/conn.c, which owns the per-connection state). */
extern const SSL_PRIVATE_KEY_METHOD stls_tls_keyop_method;
