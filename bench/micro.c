/* starttls-micro: microbenchmarks, each printed beside the ceiling it is compared with, measured
 * in the same run:
 *   lexer      SMTP command lexing, bytes/s, beside memchr over the same bytes;
 *   reply      backend reply parsing, replies/s and bytes/s, beside memchr;
 *   data       DATA scanning, bytes/s, beside memchr;
 *   crypto     the handshake's crypto with the linked BoringSSL: one signature with the key
 *              (RSA-2048 or ECDSA P-256, or --key FILE), one X25519 key pair and one X25519
 *              agreement; their inverse is the handshakes/s one core allows (the ceiling
 *              bench/run compares the proxy with).
 * Usage: starttls-micro [lexer|reply|data|crypto|all] [--key FILE] [--seconds S] [--json FILE] */
#include <openssl/bn.h>
#include <openssl/curve25519.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "proto/smtp_data.h"
#include "proto/smtp_lex.h"
#include "proto/smtp_reply.h"
#include "tls/selfsign.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile size_t g_sink; /* keeps the compiler from dropping the work */

/* A buffer filled with copies of unit. */
static uint8_t *repeat(const char *unit, size_t total, size_t *out_len)
{
	size_t ulen = strlen(unit);
	size_t n = total / ulen;
	uint8_t *buf = stls_malloc(n * ulen);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * ulen, unit, ulen);
	*out_len = n * ulen;
	return buf;
}

static double memchr_rate(const uint8_t *buf, size_t len, double seconds)
{
	double t0 = now_s(), t;
	uint64_t bytes = 0;
	do {
		const uint8_t *p = buf, *end = buf + len;
		while (p < end) {
			const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));
			if (!lf)
				break;
			g_sink += (size_t)(lf - p);
			p = lf + 1;
		}
		bytes += len;
		t = now_s();
	} while (t - t0 < seconds);
	return (double)bytes / (t - t0);
}

static void bench_lexer(FILE *json, double seconds)
{
	size_t len;
	uint8_t *buf = repeat("MAIL FROM:<alice@example.com> SIZE=4096\r\nRCPT TO:<bob@example.org>\r\nNOOP\r\n",
			      1 << 20, &len);
	struct stls_smtp_lex lx;
	stls_smtp_lex_init(&lx, 512);
	double t0 = now_s(), t;
	uint64_t bytes = 0, cmds = 0;
	do {
		struct stls_span rest = stls_span_make(buf, len);
		while (rest.len > 0) {
			struct stls_smtp_cmd cmd;
			size_t used;
			if (stls_smtp_lex_next(&lx, &cmd, &used, rest) != STLS_OK)
				break;
			g_sink += cmd.verb;
			cmds++;
			rest = stls_span_from(rest, used);
		}
		bytes += len;
		t = now_s();
	} while (t - t0 < seconds);
	double rate = (double)bytes / (t - t0);
	double ceiling = memchr_rate(buf, len, seconds);
	printf("lexer      %8.1f MB/s  %10.0f commands/s   memchr over the same bytes %8.1f MB/s (%.0f %%)\n",
	       rate / 1e6, (double)cmds / (t - t0), ceiling / 1e6, 100 * rate / ceiling);
	if (json)
		fprintf(json, "  \"lexer_bytes_per_s\": %.0f, \"lexer_memchr_bytes_per_s\": %.0f,\n", rate, ceiling);
	stls_free_ptr(&buf);
}

static void bench_reply(FILE *json, double seconds)
{
	size_t len;
	uint8_t *buf = repeat("250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
			      "250 2.1.0 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
			      1 << 20, &len);
	struct stls_smtp_reply_parser rp;
	stls_smtp_reply_init(&rp, 512, 128);
	double t0 = now_s(), t;
	uint64_t bytes = 0, replies = 0;
	do {
		struct stls_span rest = stls_span_make(buf, len);
		while (rest.len > 0) {
			struct stls_smtp_reply reply;
			if (stls_smtp_reply_next(&rp, &reply, rest) != STLS_OK)
				break;
			g_sink += reply.code;
			replies++;
			rest = stls_span_from(rest, reply.text.len);
		}
		bytes += len;
		t = now_s();
	} while (t - t0 < seconds);
	double rate = (double)bytes / (t - t0);
	double ceiling = memchr_rate(buf, len, seconds);
	printf("reply      %8.1f MB/s  %10.0f replies/s    memchr over the same bytes %8.1f MB/s (%.0f %%)\n",
	       rate / 1e6, (double)replies / (t - t0), ceiling / 1e6, 100 * rate / ceiling);
	if (json)
		fprintf(json,
			"  \"reply_bytes_per_s\": %.0f, \"reply_replies_per_s\": %.0f, \"reply_memchr_bytes_per_s\": "
			"%.0f,\n",
			rate, (double)replies / (t - t0), ceiling);
	stls_free_ptr(&buf);
}

static void bench_data(FILE *json, double seconds)
{
	size_t len;
	uint8_t *buf = repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\r\n",
			      1 << 22, &len);
	double t0 = now_s(), t;
	uint64_t bytes = 0;
	do {
		struct stls_smtp_data sd;
		stls_smtp_data_init(&sd, 1000);
		size_t n;
		if (stls_smtp_data_scan(&sd, &n, stls_span_make(buf, len)) == STLS_DONE || sd.fault != STLS_OK)
			g_sink++;
		bytes += n;
		t = now_s();
	} while (t - t0 < seconds);
	double rate = (double)bytes / (t - t0);
	double ceiling = memchr_rate(buf, len, seconds);
	printf("data       %8.1f MB/s                         memchr over the same bytes %8.1f MB/s (%.0f %%)\n",
	       rate / 1e6, ceiling / 1e6, 100 * rate / ceiling);
	if (json)
		fprintf(json, "  \"data_bytes_per_s\": %.0f, \"data_memchr_bytes_per_s\": %.0f,\n", rate, ceiling);
	stls_free_ptr(&buf);
}

/* Seconds per signature of a SHA-256 digest with key (the handshake's CertificateVerify). */
static double sign_cost(EVP_PKEY *key, double seconds)
{
	uint8_t msg[64] = { 1 }, sig[1024];
	EVP_MD_CTX ctx;
	EVP_MD_CTX_init(&ctx);
	double t0 = now_s(), t;
	uint64_t n = 0;
	do {
		size_t sig_len = sizeof(sig);
		EVP_PKEY_CTX *pctx;
		if (!EVP_DigestSignInit(&ctx, &pctx, EVP_sha256(), NULL, key))
			break;
		if (EVP_PKEY_id(key) == EVP_PKEY_RSA) /* TLS 1.3 signs with RSA-PSS */
			EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		if (!EVP_DigestSign(&ctx, sig, &sig_len, msg, sizeof(msg)))
			break;
		g_sink += sig_len;
		n++;
		t = now_s();
	} while (t - t0 < seconds);
	EVP_MD_CTX_cleanup(&ctx);
	return n ? (t - t0) / (double)n : 0;
}

static double x25519_cost(double seconds)
{
	uint8_t pub[32], priv[32], peer_pub[32], peer_priv[32], shared[32];
	X25519_keypair(peer_pub, peer_priv);
	double t0 = now_s(), t;
	uint64_t n = 0;
	do {
		X25519_keypair(pub, priv);
		if (!X25519(shared, priv, peer_pub))
			break;
		g_sink += shared[0];
		n++;
		t = now_s();
	} while (t - t0 < seconds);
	return n ? (t - t0) / (double)n : 0;
}

static void bench_crypto(FILE *json, const char *key_path, double seconds)
{
	struct {
		const char *name;
		EVP_PKEY *key;
	} keys[2] = { { "rsa2048", NULL }, { "ecdsa-p256", NULL } };
	unsigned num = 2;
	if (key_path) {
		BIO *bio = BIO_new_file(key_path, "r");
		keys[0].name = key_path;
		keys[0].key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (!keys[0].key) {
			fprintf(stderr, "starttls-micro: --key %s: no usable private key\n", key_path);
			exit(1);
		}
		num = 1;
	} else if (stls_key_generate(&keys[0].key, STLS_KEY_RSA2048) != STLS_OK ||
		   stls_key_generate(&keys[1].key, STLS_KEY_ECDSA_P256) != STLS_OK) {
		fprintf(stderr, "starttls-micro: cannot generate keys\n");
		exit(1);
	}
	double kx = x25519_cost(seconds);
	for (unsigned i = 0; i < num; i++) {
		double sign = sign_cost(keys[i].key, seconds);
		double total = sign + kx;
		printf("crypto     %-11s sign %7.1f us  X25519 pair+agree %6.1f us  ceiling %8.0f handshakes/s/core\n",
		       keys[i].name, sign * 1e6, kx * 1e6, total > 0 ? 1.0 / total : 0.0);
		if (json)
			fprintf(json,
				"  \"ceiling_%s\": {\"sign_us\": %.2f, \"x25519_us\": %.2f, \"handshakes_per_s\": "
				"%.1f},\n",
				i == 0 && !key_path ? "rsa2048"
				: i == 1	    ? "ecdsa_p256"
						    : "key",
				sign * 1e6, kx * 1e6, total > 0 ? 1.0 / total : 0.0);
		EVP_PKEY_free(keys[i].key);
	}
}

int main(int argc, char **argv)
{
	const char *what = "all", *key = NULL, *json_path = NULL;
	double seconds = 1.0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
			json_path = argv[++i];
		else if (argv[i][0] != '-')
			what = argv[i];
		else {
			fprintf(stderr,
				"usage: starttls-micro [lexer|reply|data|crypto|all] [--key FILE] [--seconds S] "
				"[--json FILE]\n");
			return 2;
		}
	}
	if (!(seconds > 0)) {
		fprintf(stderr, "starttls-micro: --seconds must be positive\n");
		return 2;
	}
	FILE *json = json_path ? fopen(json_path, "w") : NULL;
	if (json_path && !json) {
		perror(json_path);
		return 1;
	}
	if (json)
		fprintf(json, "{\n");
	bool all = strcmp(what, "all") == 0;
	if (all || strcmp(what, "lexer") == 0)
		bench_lexer(json, seconds);
	if (all || strcmp(what, "reply") == 0)
		bench_reply(json, seconds);
	if (all || strcmp(what, "data") == 0)
		bench_data(json, seconds);
	if (all || strcmp(what, "crypto") == 0)
		bench_crypto(json, key, seconds);
	if (json) {
		fprintf(json, "  \"seconds\": %.2f\n}\n", seconds);
		fclose(json);
	}
	return 0;
}
