#include "tls/tickets.h"

#include <errno.h>
#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "tls/conn.h"

enum stls_err stls_tickets_rotate(struct stls_ticket_keys *out, const struct stls_ticket_keys *prev)
{
	*out = (struct stls_ticket_keys){ .num = 1 };
	if (!RAND_bytes((uint8_t *)&out->keys[0], sizeof(out->keys[0])))
		return STLS_ERR_TLS;
	for (unsigned i = 0; prev && i < prev->num && out->num < STLS_TICKET_KEEP_RANDOM; i++)
		out->keys[out->num++] = prev->keys[i];
	return STLS_OK;
}

enum stls_err stls_tickets_load(struct stls_ticket_keys *out, const char *path, char *err, size_t err_len)
{
	*out = (struct stls_ticket_keys){ 0 };
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return STLS_ERR_CONFIG;
	}
	uint8_t data[STLS_TICKET_KEY_LEN * STLS_TICKET_MAX_KEYS + 1];
	size_t len = fread(data, 1, sizeof(data), fp);
	fclose(fp);
	if (len == 0 || len % STLS_TICKET_KEY_LEN != 0 || len > STLS_TICKET_KEY_LEN * STLS_TICKET_MAX_KEYS) {
		snprintf(err, err_len,
			 "%s: %zu bytes; expected 1 to %d keys of %d bytes (head -c 240 /dev/urandom > FILE)", path,
			 len, STLS_TICKET_MAX_KEYS, STLS_TICKET_KEY_LEN);
		stls_wipe(data, sizeof(data));
		return STLS_ERR_CONFIG;
	}
	out->num = (unsigned)(len / STLS_TICKET_KEY_LEN);
	memcpy(out->keys, data, len);
	stls_wipe(data, sizeof(data));
	return STLS_OK;
}

int stls_tickets_callback(SSL *ssl, uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *ctx, HMAC_CTX *hmac_ctx,
			  int encrypt)
{
	const struct stls_ticket_keys *keys = stls_tls_conn_ticket_keys(ssl);
	if (!keys || keys->num == 0)
		return encrypt ? -1 : 0;
	if (encrypt) {
		const struct stls_ticket_key *k = &keys->keys[0];
		if (!RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())))
			return -1;
		memcpy(key_name, k->name, sizeof(k->name));
		if (!EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k->aes, iv) ||
		    !HMAC_Init_ex(hmac_ctx, k->hmac, sizeof(k->hmac), EVP_sha256(), NULL))
			return -1;
		return 1;
	}
	for (unsigned i = 0; i < keys->num; i++) {
		const struct stls_ticket_key *k = &keys->keys[i];
		if (memcmp(key_name, k->name, sizeof(k->name)) != 0)
			continue;
		if (!HMAC_Init_ex(hmac_ctx, k->hmac, sizeof(k->hmac), EVP_sha256(), NULL) ||
		    !EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k->aes, iv))
			return -1;
		/* A ticket sealed with an older key is renewed with the current one. */
		return i == 0 ? 1 : 2;
	}
	return 0;
}
