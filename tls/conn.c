#include "tls/conn.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "core/keyop_wire.h"
#include "core/mem.h"
#include "tls/keyop.h"

/* A TLS record carries at most 16 KiB of plaintext: room for one per read. */
enum { PLAIN_CHUNK = 16384, TLS_RECORD_HANDSHAKE = 0x16 };

struct stls_tls_conn {
	SSL *ssl;
	const struct stls_ticket_keys *keys;
	struct stls_span in; /* ciphertext not yet read by BoringSSL */
	struct stls_buf *wire;
	size_t wire_limit;
	bool ready;
	bool client;
	bool first_byte_seen;
	SSL_SESSION *new_session; /* client: the last session the server issued */
	bool wire_full;
	/* A signature handed to the key-op process (tls/keyop.h): its state and, once it came, the
	 * signature. Ciphertext BoringSSL did not read while it waited is kept in held. */
	enum stls_tls_keyop_state keyop;
	uint16_t sig_len;
	uint8_t *sig;
	uint64_t token;
	struct stls_buf held;
	char error[96];
};

static BIO_METHOD *g_bio_method;
static int g_ex_index = -1;

static int bio_read(BIO *bio, char *out, int len)
{
	struct stls_tls_conn *t = BIO_get_data(bio);
	BIO_clear_retry_flags(bio);
	if (t->in.len == 0) {
		BIO_set_retry_read(bio);
		return -1;
	}
	size_t n = (size_t)len < t->in.len ? (size_t)len : t->in.len;
	memcpy(out, t->in.ptr, n);
	t->in = stls_span_from(t->in, n);
	return (int)n;
}

static int bio_write(BIO *bio, const char *data, int len)
{
	struct stls_tls_conn *t = BIO_get_data(bio);
	BIO_clear_retry_flags(bio);
	if (stls_buf_append(t->wire, stls_span_make(data, (size_t)len), t->wire_limit) != STLS_OK) {
		t->wire_full = true;
		return -1;
	}
	return len;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	(void)bio;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

enum stls_err stls_tls_init(void)
{
	if (g_bio_method)
		return STLS_OK;
	g_bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "starttlsd");
	if (!g_bio_method || !BIO_meth_set_read(g_bio_method, bio_read) ||
	    !BIO_meth_set_write(g_bio_method, bio_write) || !BIO_meth_set_ctrl(g_bio_method, bio_ctrl))
		return STLS_ERR_TLS;
	g_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	return g_ex_index < 0 ? STLS_ERR_TLS : stls_tls_keyop_init();
}

struct stls_tls_conn *stls_tls_conn_new_server(SSL_CTX *ctx, const struct stls_ticket_keys *keys, struct stls_buf *wire,
					       size_t wire_limit)
{
	struct stls_tls_conn *t = stls_calloc(1, sizeof(*t));
	BIO *bio = BIO_new(g_bio_method);
	if (!t || !bio)
		goto fail;
	t->ssl = SSL_new(ctx);
	if (!t->ssl)
		goto fail;
	t->keys = keys;
	t->wire = wire;
	t->wire_limit = wire_limit;
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio); /* the SSL owns the BIO from here */
	SSL_set_ex_data(t->ssl, g_ex_index, t);
	SSL_set_accept_state(t->ssl);
	/* The handshake's configuration is not needed once it is done: less memory per session. */
	SSL_set_shed_handshake_config(t->ssl, 1);
	return t;
fail:
	BIO_free(bio);
	if (t)
		SSL_free(t->ssl);
	stls_free_ptr(&t);
	ERR_clear_error();
	return NULL;
}

static enum stls_err fail(struct stls_tls_conn *t, int ret);

static int client_new_session(SSL *ssl, SSL_SESSION *session)
{
	struct stls_tls_conn *t = SSL_get_ex_data(ssl, g_ex_index);
	if (!t)
		return 0;
	SSL_SESSION_free(t->new_session);
	t->new_session = session;
	return 1; /* we keep the reference */
}

void stls_tls_client_ctx_setup(SSL_CTX *ctx)
{
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	SSL_CTX_sess_set_new_cb(ctx, client_new_session);
}

struct stls_tls_conn *stls_tls_conn_new_client(SSL_CTX *ctx, SSL_SESSION *resume, const char *server_name,
					       struct stls_buf *wire, size_t wire_limit)
{
	struct stls_tls_conn *t = stls_calloc(1, sizeof(*t));
	BIO *bio = BIO_new(g_bio_method);
	if (!t || !bio)
		goto fail;
	t->ssl = SSL_new(ctx);
	if (!t->ssl)
		goto fail;
	t->client = true;
	t->first_byte_seen = true; /* the server's first byte is checked by BoringSSL itself */
	t->wire = wire;
	t->wire_limit = wire_limit;
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio);
	bio = NULL;
	SSL_set_ex_data(t->ssl, g_ex_index, t);
	SSL_set_connect_state(t->ssl);
	if ((resume && !SSL_set_session(t->ssl, resume)) ||
	    (server_name && !SSL_set_tlsext_host_name(t->ssl, server_name)))
		goto fail;
	return t;
fail:
	BIO_free(bio);
	if (t)
		SSL_free(t->ssl);
	stls_free_ptr(&t);
	ERR_clear_error();
	return NULL;
}

enum stls_err stls_tls_conn_connect(struct stls_tls_conn *t)
{
	int ret = SSL_do_handshake(t->ssl);
	if (ret == 1) {
		t->ready = true;
		return STLS_OK;
	}
	if (SSL_get_error(t->ssl, ret) == SSL_ERROR_WANT_READ && !t->wire_full)
		return STLS_OK;
	return fail(t, ret);
}

enum stls_err stls_tls_conn_set_verify_name(struct stls_tls_conn *t, const char *name)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!X509_VERIFY_PARAM_set1_host(param, name, strlen(name))) {
		ERR_clear_error();
		return STLS_ERR_TLS;
	}
	return STLS_OK;
}

bool stls_tls_conn_verified(const struct stls_tls_conn *t, const char **out_why)
{
	long result = SSL_get_verify_result(t->ssl);
	if (out_why)
		*out_why = result == X509_V_OK ? "" : X509_verify_cert_error_string(result);
	return result == X509_V_OK && SSL_get0_peer_certificates(t->ssl) != NULL;
}

SSL_SESSION *stls_tls_conn_take_session(struct stls_tls_conn *t)
{
	SSL_SESSION *s = t->new_session;
	t->new_session = NULL;
	return s;
}

void stls_tls_conn_free(struct stls_tls_conn **pt)
{
	if (!*pt)
		return;
	SSL_SESSION_free((*pt)->new_session);
	SSL_free((*pt)->ssl);
	stls_free_ptr(&(*pt)->sig);
	stls_buf_cleanup(&(*pt)->held);
	stls_free_ptr(pt);
}

static enum stls_err fail(struct stls_tls_conn *t, int ret)
{
	if (t->wire_full) {
		snprintf(t->error, sizeof(t->error), "output buffer full");
		ERR_clear_error();
		return STLS_ERR_LIMIT;
	}
	if (t->error[0]) {
		/* Already said why (the key-op process's answer): BoringSSL's "private key operation
		 * failed" says less. */
		ERR_clear_error();
		return STLS_ERR_TLS;
	}
	int e = SSL_get_error(t->ssl, ret);
	uint32_t packed = ERR_peek_error();
	const char *reason = packed ? ERR_reason_error_string(packed) : NULL;
	if (reason)
		snprintf(t->error, sizeof(t->error), "%s", reason);
	else if (e == SSL_ERROR_ZERO_RETURN)
		snprintf(t->error, sizeof(t->error), "peer sent close_notify");
	else
		snprintf(t->error, sizeof(t->error), "error %d", e);
	/* BoringSSL names errors in capitals with underscores; the log reads better in words. */
	for (char *p = t->error; *p; p++)
		*p = *p == '_' ? ' ' : (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
	ERR_clear_error();
	return STLS_ERR_TLS;
}

/* Keeps the ciphertext BoringSSL left unread while it waits for a signature, so that it is read
 * when the handshake resumes (the receive buffer it came in goes back to the ring). */
static enum stls_err keep_unread(struct stls_tls_conn *t, bool from_held, size_t src_len)
{
	struct stls_span rest = t->in;
	t->in = (struct stls_span){ 0 };
	if (from_held) {
		stls_buf_consume(&t->held, src_len - rest.len);
		stls_buf_release_if_empty(&t->held);
		return STLS_OK;
	}
	if (rest.len == 0)
		return STLS_OK;
	if (stls_buf_append(&t->held, rest, t->wire_limit) != STLS_OK) {
		snprintf(t->error, sizeof(t->error), "input buffer full");
		return STLS_ERR_LIMIT;
	}
	return STLS_OK;
}

enum stls_err stls_tls_conn_input(struct stls_tls_conn *t, struct stls_buf *plain, size_t plain_limit,
				  struct stls_span ciphertext)
{
	if (!t->first_byte_seen && ciphertext.len > 0) {
		t->first_byte_seen = true;
		/* After STARTTLS the client must speak TLS. Anything else (a command pipelined after
		 * STARTTLS, a client that ignored our 220) is refused before BoringSSL sees it. */
		if (ciphertext.ptr[0] != TLS_RECORD_HANDSHAKE) {
			snprintf(t->error, sizeof(t->error), "plaintext received instead of a TLS handshake");
			return STLS_ERR_PROTO;
		}
	}
	bool from_held = !stls_buf_empty(&t->held);
	if (from_held) {
		if (stls_buf_append(&t->held, ciphertext, t->wire_limit) != STLS_OK) {
			snprintf(t->error, sizeof(t->error), "input buffer full");
			return STLS_ERR_LIMIT;
		}
		ciphertext = stls_buf_span(&t->held);
	}
	t->in = ciphertext;
	if (!t->ready) {
		int ret = SSL_do_handshake(t->ssl);
		if (ret != 1) {
			int e = SSL_get_error(t->ssl, ret);
			if (e == SSL_ERROR_WANT_PRIVATE_KEY_OPERATION && !t->wire_full) {
				STLS_TRY(keep_unread(t, from_held, ciphertext.len));
				return STLS_AGAIN;
			}
			if (e == SSL_ERROR_WANT_READ && !t->wire_full) {
				t->in = (struct stls_span){ 0 };
				if (from_held)
					stls_buf_cleanup(&t->held);
				return STLS_AGAIN;
			}
			return fail(t, ret);
		}
		t->ready = true;
	}
	enum stls_err ret = STLS_OK;
	for (;;) {
		if (stls_buf_reserve(plain, PLAIN_CHUNK, plain_limit) != STLS_OK) {
			snprintf(t->error, sizeof(t->error), "input buffer full");
			ret = STLS_ERR_LIMIT;
			break;
		}
		int n = SSL_read(t->ssl, stls_buf_tail(plain), (int)stls_buf_tail_room(plain));
		if (n > 0) {
			stls_buf_commit(plain, (size_t)n);
			continue;
		}
		int e = SSL_get_error(t->ssl, n);
		if (e == SSL_ERROR_WANT_READ && !t->wire_full)
			break;
		if (e == SSL_ERROR_ZERO_RETURN) {
			ERR_clear_error();
			ret = STLS_DONE;
			break;
		}
		ret = fail(t, n);
		break;
	}
	t->in = (struct stls_span){ 0 };
	if (from_held)
		stls_buf_cleanup(&t->held);
	return ret;
}

enum stls_err stls_tls_conn_write(struct stls_tls_conn *t, struct stls_span plain)
{
	while (plain.len > 0) {
		int chunk = plain.len > (size_t)INT32_MAX ? INT32_MAX : (int)plain.len;
		int n = SSL_write(t->ssl, plain.ptr, chunk);
		if (n <= 0)
			return fail(t, n);
		plain = stls_span_from(plain, (size_t)n);
	}
	return STLS_OK;
}

void stls_tls_conn_shutdown(struct stls_tls_conn *t)
{
	if (t->ready)
		(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
}

bool stls_tls_conn_ready(const struct stls_tls_conn *t)
{
	return t->ready;
}

const char *stls_tls_conn_error(const struct stls_tls_conn *t)
{
	return t->error;
}

const char *stls_tls_conn_version(const struct stls_tls_conn *t)
{
	return SSL_get_version(t->ssl);
}

const char *stls_tls_conn_cipher(const struct stls_tls_conn *t)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
	return c ? SSL_CIPHER_standard_name(c) : "none";
}

const char *stls_tls_conn_server_name(const struct stls_tls_conn *t)
{
	return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

bool stls_tls_conn_resumed(const struct stls_tls_conn *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

const struct stls_ticket_keys *stls_tls_conn_ticket_keys(const SSL *ssl)
{
	const struct stls_tls_conn *t = SSL_get_ex_data(ssl, g_ex_index);
	return t ? t->keys : NULL;
}

void stls_tls_conn_set_token(struct stls_tls_conn *t, uint64_t token)
{
	t->token = token;
}

bool stls_tls_conn_keyop_pending(const struct stls_tls_conn *t)
{
	return t->keyop == STLS_TLS_KEYOP_PENDING;
}

void stls_tls_conn_keyop_done(struct stls_tls_conn *t, struct stls_span sig, const char *why)
{
	if (t->keyop != STLS_TLS_KEYOP_PENDING)
		return;
	if (why || sig.len == 0 || sig.len > STLS_KEYOP_MAX_SIG || !(t->sig = stls_malloc(sig.len))) {
		snprintf(t->error, sizeof(t->error), "key-op process: %s", why ? why : "no signature");
		t->keyop = STLS_TLS_KEYOP_FAILED;
		return;
	}
	memcpy(t->sig, sig.ptr, sig.len);
	t->sig_len = (uint16_t)sig.len;
	t->keyop = STLS_TLS_KEYOP_DONE;
}

/* ---- the private-key method (tls/keyop.h) ------------------------------------------------- */

static enum ssl_private_key_result_t keyop_sign(SSL *ssl, uint8_t *out, size_t *out_len, size_t max_out,
						uint16_t sigalg, const uint8_t *in, size_t in_len)
{
	(void)out;
	(void)out_len;
	(void)max_out;
	struct stls_tls_conn *t = SSL_get_ex_data(ssl, g_ex_index);
	if (!t)
		return ssl_private_key_failure;
	if (in_len > STLS_KEYOP_MAX_INPUT) {
		snprintf(t->error, sizeof(t->error), "key-op process: %zu bytes to sign", in_len);
		return ssl_private_key_failure;
	}
	if (stls_tls_keyop_submit(t->token, stls_tls_keyop_key_id(ssl), sigalg, stls_span_make(in, in_len)) !=
	    STLS_OK) {
		snprintf(t->error, sizeof(t->error), "key-op process: cannot send the request");
		return ssl_private_key_failure;
	}
	t->keyop = STLS_TLS_KEYOP_PENDING;
	return ssl_private_key_retry;
}

static enum ssl_private_key_result_t keyop_complete(SSL *ssl, uint8_t *out, size_t *out_len, size_t max_out)
{
	struct stls_tls_conn *t = SSL_get_ex_data(ssl, g_ex_index);
	if (!t || t->keyop == STLS_TLS_KEYOP_FAILED) {
		if (t)
			t->keyop = STLS_TLS_KEYOP_NONE;
		return ssl_private_key_failure;
	}
	if (t->keyop == STLS_TLS_KEYOP_PENDING)
		return ssl_private_key_retry;
	enum ssl_private_key_result_t ret = ssl_private_key_failure;
	if (t->keyop == STLS_TLS_KEYOP_DONE && t->sig_len <= max_out) {
		memcpy(out, t->sig, t->sig_len);
		*out_len = t->sig_len;
		ret = ssl_private_key_success;
	}
	t->keyop = STLS_TLS_KEYOP_NONE;
	stls_free_ptr(&t->sig);
	t->sig_len = 0;
	return ret;
}

static enum ssl_private_key_result_t keyop_decrypt(SSL *ssl, uint8_t *out, size_t *out_len, size_t max_out,
						   const uint8_t *in, size_t in_len)
{
	/* Only RSA key exchange decrypts, and the cipher list offers ECDHE only. */
	(void)ssl;
	(void)out;
	(void)out_len;
	(void)max_out;
	(void)in;
	(void)in_len;
	return ssl_private_key_failure;
}

const SSL_PRIVATE_KEY_METHOD stls_tls_keyop_method = {
	.sign = keyop_sign,
	.decrypt = keyop_decrypt,
	.complete = keyop_complete,
};
