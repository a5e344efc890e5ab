#include "tls/keyop.h"

#include <openssl/bytestring.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>

#include "core/mem.h"
#include "core/keyop_wire.h"

static _Thread_local stls_tls_keyop_submit_fn *t_submit;
static _Thread_local void *t_submit_ctx;

static stls_tls_keyop_load_fn *g_load;
static stls_tls_keyop_drop_fn *g_drop;
static void *g_store_ctx;
static uint32_t g_next_key_id = 1;
static int g_ctx_index = -1;

void stls_tls_keyop_set_submitter(stls_tls_keyop_submit_fn *fn, void *ctx)
{
	t_submit = fn;
	t_submit_ctx = ctx;
}

void stls_tls_keyop_set_store(stls_tls_keyop_load_fn *load, stls_tls_keyop_drop_fn *drop, void *ctx)
{
	g_load = load;
	g_drop = drop;
	g_store_ctx = ctx;
}

bool stls_tls_keyop_enabled(void)
{
	return g_load != NULL;
}

enum stls_err stls_tls_keyop_init(void)
{
	if (g_ctx_index < 0)
		g_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	return g_ctx_index < 0 ? STLS_ERR_TLS : STLS_OK;
}

enum stls_err stls_tls_keyop_attach(SSL_CTX *ctx, uint32_t *out_key_id, EVP_PKEY *key, char *err, size_t err_len)
{
	enum stls_err ret = STLS_ERR_CONFIG;
	CBB cbb;
	uint8_t *der = NULL;
	size_t der_len = 0;
	if (!g_load || g_ctx_index < 0) {
		snprintf(err, err_len, "no key-op process to sign with");
		return STLS_ERR_CONFIG;
	}
	if (!CBB_init(&cbb, 2048) || !EVP_marshal_private_key(&cbb, key) || !CBB_finish(&cbb, &der, &der_len)) {
		CBB_cleanup(&cbb);
		snprintf(err, err_len, "cannot encode the private key for the key-op process");
		return STLS_ERR_CONFIG;
	}
	if (der_len > STLS_KEYOP_MAX_KEY_DER) {
		snprintf(err, err_len, "private key too large for the key-op process (%zu bytes)", der_len);
		goto out;
	}
	uint32_t id = g_next_key_id++;
	if (g_load(g_store_ctx, id, stls_span_make(der, der_len), err, err_len) != STLS_OK)
		goto out;
	if (!SSL_CTX_set_ex_data(ctx, g_ctx_index, (void *)(uintptr_t)id)) {
		g_drop(g_store_ctx, id);
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	SSL_CTX_set_private_key_method(ctx, &stls_tls_keyop_method);
	*out_key_id = id;
	ret = STLS_OK;
out:
	/* BoringSSL's allocator wipes what it frees. */
	OPENSSL_free(der);
	return ret;
}

void stls_tls_keyop_detach(uint32_t key_id)
{
	if (key_id && g_drop)
		g_drop(g_store_ctx, key_id);
}

uint32_t stls_tls_keyop_key_id(const SSL *ssl)
{
	return (uint32_t)(uintptr_t)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_ctx_index);
}

enum stls_err stls_tls_keyop_submit(uint64_t token, uint32_t key_id, uint16_t sigalg, struct stls_span in)
{
	if (!t_submit)
		return STLS_ERR_INTERNAL;
	return t_submit(t_submit_ctx, token, key_id, sigalg, in);
}
