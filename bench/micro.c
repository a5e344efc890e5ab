/* starttls-micro: microbenchmarks, each printed beside the ceiling it is compared with, measured
 * in the same run:
 *   lexer      SMTP command lexing, bytes/s, beside memchr over the same bytes;
 *   reply      backend reply parsing, replies/s and bytes/s, beside memchr;
 *   data       DATA scanning, bytes/s, beside memchr;
 *   crypto     the handshake's crypto with the linked BoringSSL: one signature with the key
 *              (RSA-2048 or ECDSA P-256, or --key FILE), one X25519 key pair and one X25519
 *              agreement; their inverse is the handshakes/s one core allows (the ceiling
 *              bench/run compares the proxy with);
 *   policy     destination-policy lookups in a table of 10^6 random domains plus parent entries
 *              and "*", loaded from a file as --dest-policy would be: ns/op for exact hits,
 *              parent hits and misses falling to "*", beside one hash-and-probe of the stored
 *              key (stls_domain_table_get: no lowercasing, no validation, no parent walk) over a
 *              table of the same keys; then the same lookups in a 1,000-key table (in cache);
 *   clients    a session's admission: the sender-group lookup in a table of 10^5 networks, and
 *              taking and giving back a place under a group and a per-address limit in the
 *              table shared by the workers (core/admit), beside an uncontended lock and unlock
 *              of one cache line (the least such a shared count can cost).
 * Usage: starttls-micro [lexer|reply|data|crypto|policy|clients|all] [--key FILE] [--seconds S] [--json FILE] */
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
#include <unistd.h>

#include <arpa/inet.h>
#include <stdatomic.h>

#include "core/admit.h"
#include "core/domain_table.h"
#include "core/mem.h"
#include "proto/dest_policy.h"
#include "proto/sender_groups.h"
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

/* xorshift64*: the benchmark's reproducible randomness. */
static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* Writes a random label of 4 to 12 letters (with a digit at the end when digit is set: such
 * labels are never in the table) and returns its length. */
static size_t rnd_label(uint64_t *s, char *out, bool digit)
{
	size_t n = 4 + rnd_next(s) % 9;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)('a' + rnd_next(s) % 26);
	if (digit)
		out[n - 1] = (char)('0' + rnd_next(s) % 10);
	return n;
}

/* A random domain of 2 or 3 labels under a common top-level domain, into out (64 octets). With
 * unique set, the first label starts with 5 letters spelling the number unique, so no two such
 * domains are the same (the loader refuses duplicates); with digit set, every label but the last
 * ends in a digit, so the domain is never one of the former, nor under one of their parents. */
static size_t rnd_domain(uint64_t *s, char *out, bool digit, const size_t *unique)
{
	static const char *const tlds[] = { "com", "net", "org", "de", "io", "test" };
	size_t len = 0;
	if (unique) {
		for (size_t i = 0, u = *unique; i < 5; i++, u /= 26)
			out[len++] = (char)('a' + u % 26);
	}
	unsigned labels = 1 + (unsigned)(rnd_next(s) % 2);
	for (unsigned l = 0; l < labels; l++) {
		len += rnd_label(s, out + len, digit);
		out[len++] = '.';
	}
	return len + (size_t)snprintf(out + len, 64 - len, "%s", tlds[rnd_next(s) % 6]);
}

enum { POLICY_KEYS = 1000000, POLICY_QUERIES = 1 << 20, POLICY_SMALL = 1000 };

/* Query strings, each in a 64-octet cell, in the order they are asked. */
struct policy_queries {
	char (*cell)[64];
	struct stls_span *q;
};

static void policy_queries_alloc(struct policy_queries *pq)
{
	pq->cell = stls_malloc((size_t)POLICY_QUERIES * 64);
	pq->q = stls_malloc((size_t)POLICY_QUERIES * sizeof(*pq->q));
	if (!pq->cell || !pq->q) {
		fprintf(stderr, "starttls-micro: out of memory\n");
		exit(1);
	}
}

static void policy_queries_free(struct policy_queries *pq)
{
	stls_free_ptr(&pq->cell);
	stls_free_ptr(&pq->q);
}

/* Fills pq: exact keys (kind 0), a subdomain of a ".parent" key (kind 1) or a domain that is not
 * in the table (kind 2), drawn from the first num_keys domains. Domain i has a parent entry when
 * i % 4 == 0. */
static void policy_queries_fill(struct policy_queries *pq, uint64_t *s, char (*domains)[64], size_t num_keys, int kind)
{
	for (size_t i = 0; i < POLICY_QUERIES; i++) {
		char *c = pq->cell[i];
		size_t d = rnd_next(s) % num_keys, len;
		if (kind == 0) {
			len = (size_t)snprintf(c, 64, "%s", domains[d]);
		} else if (kind == 1) {
			d &= ~(size_t)3;
			len = (size_t)snprintf(c, 64, "www.%s", domains[d]);
		} else {
			len = rnd_domain(s, c, true, NULL);
		}
		pq->q[i] = stls_span_make(c, len);
	}
}

/* ns per stls_dest_policy_lookup over the queries, for about seconds. */
static double policy_lookup_ns(const struct stls_dest_policy *p, const struct policy_queries *pq, double seconds)
{
	double t0 = now_s(), t;
	uint64_t n = 0;
	do {
		for (size_t i = 0; i < POLICY_QUERIES; i += 4096) {
			for (size_t j = i; j < i + 4096; j++) {
				enum stls_dest_mode mode;
				stls_dest_policy_lookup(p, pq->q[j], &mode, NULL);
				g_sink += mode;
			}
			n += 4096;
			if (now_s() - t0 >= seconds)
				break;
		}
		t = now_s();
	} while (t - t0 < seconds);
	return (t - t0) * 1e9 / (double)n;
}

/* The same with stls_domain_table_lookup (no policy around it) or, with get set,
 * stls_domain_table_get: one hash and one probe of the key as stored. */
static double table_lookup_ns(const struct stls_domain_table *t, const struct policy_queries *pq, double seconds,
			      bool get)
{
	double t0 = now_s(), t1;
	uint64_t n = 0;
	do {
		for (size_t i = 0; i < POLICY_QUERIES; i += 4096) {
			for (size_t j = i; j < i + 4096; j++) {
				uint32_t v = 0;
				if (get)
					g_sink += stls_domain_table_get(t, pq->q[j], &v);
				else
					g_sink += stls_domain_table_lookup(t, pq->q[j], &v, NULL);
				g_sink += v;
			}
			n += 4096;
			if (now_s() - t0 >= seconds)
				break;
		}
		t1 = now_s();
	} while (t1 - t0 < seconds);
	return (t1 - t0) * 1e9 / (double)n;
}

/* ns per dependent random read over len octets (a pointer chase through one random cycle of
 * its cache lines): what a lookup in a table beyond the caches waits for, per slot and per key. */
static double memory_latency_ns(size_t len, double seconds)
{
	size_t num = len / 64;
	uint32_t *lines = stls_calloc_aligned(num, 64, 64);
	if (!lines)
		return 0;
	uint64_t s = 0xfeed;
	for (size_t i = 0; i < num; i++)
		lines[i * 16] = (uint32_t)i;
	for (size_t i = num - 1; i > 0; i--) { /* Sattolo: one cycle through every line */
		size_t j = rnd_next(&s) % i;
		uint32_t tmp = lines[i * 16];
		lines[i * 16] = lines[j * 16];
		lines[j * 16] = tmp;
	}
	double t0 = now_s(), t;
	uint64_t n = 0;
	uint32_t at = 0;
	do {
		for (unsigned i = 0; i < 65536; i++)
			at = lines[(size_t)at * 16];
		n += 65536;
		t = now_s();
	} while (t - t0 < seconds);
	g_sink += at;
	stls_free_ptr(&lines);
	return (t - t0) * 1e9 / (double)n;
}

/* A domain table of domains[0..num) (and ".domain" for every fourth) and "*", as the policy
 * file would give; the values are modes. */
static struct stls_domain_table *policy_table(char (*domains)[64], size_t num, size_t *out_keys)
{
	struct stls_domain_table_builder *b = NULL;
	struct stls_domain_table *t = NULL;
	bool dup;
	if (stls_domain_table_builder_new(&b) != STLS_OK)
		goto fail;
	for (size_t i = 0; i < num; i++) {
		char parent[72];
		if (stls_domain_table_add(b, stls_span_cstr(domains[i]), (uint32_t)(i % STLS_DEST__COUNT), &dup) !=
		    STLS_OK)
			goto fail;
		snprintf(parent, sizeof(parent), ".%s", domains[i]);
		if (i % 4 == 0 && stls_domain_table_add(b, stls_span_cstr(parent), STLS_DEST_REQUIRED, &dup) != STLS_OK)
			goto fail;
	}
	if (stls_domain_table_add(b, STLS_SPAN_LIT("*"), STLS_DEST_PREFERRED, &dup) != STLS_OK)
		goto fail;
	if (stls_domain_table_build(&t, b) != STLS_OK)
		goto fail;
	*out_keys = stls_domain_table_count(t);
	return t;
fail:
	fprintf(stderr, "starttls-micro: cannot build a domain table\n");
	exit(1);
}

static void bench_policy(FILE *json, double seconds)
{
	uint64_t s = 0x5eed;
	char(*domains)[64] = stls_malloc((size_t)POLICY_KEYS * 64);
	if (!domains) {
		fprintf(stderr, "starttls-micro: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < POLICY_KEYS; i++)
		rnd_domain(&s, domains[i], false, &i);

	/* The policy as the daemon gets it: a file, loaded and built. */
	char path[] = "/tmp/starttls-micro-policy-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		perror(path);
		exit(1);
	}
	size_t lines = 0;
	for (size_t i = 0; i < POLICY_KEYS; i++) {
		fprintf(f, "%s %s\n", domains[i], stls_dest_mode_str((enum stls_dest_mode)(i % STLS_DEST__COUNT)));
		if (i % 4 == 0)
			fprintf(f, ".%s required\n", domains[i]);
		lines += i % 4 == 0 ? 2 : 1;
	}
	fprintf(f, "* preferred\n");
	lines++;
	if (fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	struct stls_dest_policy *policy = NULL;
	char err[512];
	double t0 = now_s();
	enum stls_err ret = stls_dest_policy_load(&policy, path, err, sizeof(err));
	double load_s = now_s() - t0;
	unlink(path);
	if (ret != STLS_OK) {
		fprintf(stderr, "starttls-micro: %s\n", err);
		exit(1);
	}
	size_t keys = 0;
	t0 = now_s();
	struct stls_domain_table *table = policy_table(domains, POLICY_KEYS, &keys);
	double build_s = now_s() - t0;

	struct policy_queries pq;
	policy_queries_alloc(&pq);
	static const char *const kind_names[3] = { "exact hit", "parent hit", "miss -> *" };
	static const char *const json_names[3] = { "", "parent_", "miss_" };
	double ns[3], ceiling;
	printf("policy     %zu keys (%zu domains, every fourth with its .parent, and *): file of %zu lines loaded in "
	       "%.2f s, table built in %.2f s\n",
	       stls_dest_policy_count(policy), (size_t)POLICY_KEYS, lines, load_s, build_s);
	policy_queries_fill(&pq, &s, domains, POLICY_KEYS, 0);
	ceiling = table_lookup_ns(table, &pq, seconds, true);
	for (int kind = 0; kind < 3; kind++) {
		if (kind > 0)
			policy_queries_fill(&pq, &s, domains, POLICY_KEYS, kind);
		ns[kind] = policy_lookup_ns(policy, &pq, seconds);
		printf("policy     %-10s %6.1f ns/op %7.2f M lookups/s   ceiling: one hash+probe of the stored key "
		       "%5.1f ns/op (%3.0f %%)\n",
		       kind_names[kind], ns[kind], 1e3 / ns[kind], ceiling, 100 * ceiling / ns[kind]);
	}
	if (json) {
		for (int kind = 0; kind < 3; kind++)
			fprintf(json, "  \"policy_%sns_per_op\": %.2f, \"policy_%slookups_per_s\": %.0f,\n",
				json_names[kind], ns[kind], json_names[kind], 1e9 / ns[kind]);
		fprintf(json,
			"  \"policy_ceiling_ns_per_op\": %.2f, \"policy_keys\": %zu, \"policy_load_s\": %.3f, "
			"\"policy_build_s\": %.3f,\n",
			ceiling, keys, load_s, build_s);
	}
	stls_domain_table_free(&table);
	stls_dest_policy_free(&policy);
	double mem_ns = memory_latency_ns((size_t)64 << 20, seconds / 2);
	printf("policy     for scale: one dependent random read over 64 MiB takes %.1f ns here (a hit beyond the "
	       "caches "
	       "waits for two: slot, then key)\n",
	       mem_ns);
	if (json)
		fprintf(json, "  \"policy_memory_latency_ns\": %.2f,\n", mem_ns);

	/* A policy of the size operators write (here 1,000 domains): the table stays in cache. */
	table = policy_table(domains, POLICY_SMALL, &keys);
	double small[3];
	for (int kind = 0; kind < 3; kind++) {
		policy_queries_fill(&pq, &s, domains, POLICY_SMALL, kind);
		small[kind] = table_lookup_ns(table, &pq, seconds / 2, false);
	}
	policy_queries_fill(&pq, &s, domains, POLICY_SMALL, 0);
	ceiling = table_lookup_ns(table, &pq, seconds / 2, true);
	printf("policy     %zu keys: exact hit %.1f ns/op, parent hit %.1f, miss -> * %.1f   ceiling %.1f ns/op\n",
	       keys, small[0], small[1], small[2], ceiling);
	if (json)
		fprintf(json,
			"  \"policy_small_ns_per_op\": %.2f, \"policy_small_parent_ns_per_op\": %.2f, "
			"\"policy_small_miss_ns_per_op\": %.2f, \"policy_small_ceiling_ns_per_op\": %.2f,\n",
			small[0], small[1], small[2], ceiling);
	stls_domain_table_free(&table);
	policy_queries_free(&pq);
	stls_free_ptr(&domains);
}

/* ---- clients: sender groups and admission ---------------------------------------------- */

enum { CLIENT_NETS = 100000, CLIENT_QUERIES = 1 << 16 };

static void bench_clients(FILE *json, double seconds)
{
	/* 10^5 random /24 networks in 16 groups, as a --sender-groups file would give them (14
	 * networks a line, the file format's limit). */
	uint64_t seed = 0x5eed;
	size_t cap = (size_t)CLIENT_NETS * 24, len = 0;
	char *text = stls_malloc(cap);
	unsigned *nets = stls_calloc(CLIENT_NETS, sizeof(*nets));
	if (!text || !nets)
		return;
	for (unsigned i = 0; i < CLIENT_NETS; i++) {
		nets[i] = ((i * 2654435761u) & 0xffffffu) << 8; /* odd multiplier: all distinct */
		if (i % 14 == 0)
			len += (size_t)snprintf(text + len, cap - len, "%sG%u preferred", i ? "\n" : "", (i / 14) % 16);
		len += (size_t)snprintf(text + len, cap - len, " %u.%u.%u.0/24", nets[i] >> 24, (nets[i] >> 16) & 255,
					(nets[i] >> 8) & 255);
	}
	char err[256];
	struct stls_sender_groups *groups = NULL;
	if (stls_sender_groups_parse(&groups, stls_span_make(text, len), "bench", err, sizeof(err)) != STLS_OK) {
		printf("clients    sender-group table not built: %s\n", err);
		goto out;
	}
	static struct sockaddr_in q[CLIENT_QUERIES];
	for (unsigned i = 0; i < CLIENT_QUERIES; i++) {
		q[i].sin_family = AF_INET;
		unsigned a = i % 2 ? nets[rnd_next(&seed) % CLIENT_NETS] | (unsigned)(rnd_next(&seed) & 255)
				   : (unsigned)rnd_next(&seed);
		q[i].sin_addr.s_addr = htonl(a);
	}
	double t0 = now_s(), t;
	uint64_t ops = 0;
	do {
		for (unsigned i = 0; i < CLIENT_QUERIES; i++)
			g_sink += stls_sender_groups_lookup(groups, (const struct sockaddr *)&q[i], NULL) != NULL;
		ops += CLIENT_QUERIES;
		t = now_s();
	} while (t - t0 < seconds);
	double lookup_ns = (t - t0) * 1e9 / (double)ops;

	if (stls_admit_init(10000) != STLS_OK)
		goto out;
	t0 = now_s();
	ops = 0;
	do {
		for (unsigned i = 0; i < 4096; i++) {
			struct stls_admit_hold h;
			if (stls_admit_session(&h, "G1", 1000000, (const struct sockaddr *)&q[i % 1024], 1000000,
					       false) == STLS_ADMIT_OK)
				stls_admit_release(&h);
		}
		ops += 4096;
		t = now_s();
	} while (t - t0 < seconds);
	double admit_ns = (t - t0) * 1e9 / (double)ops;
	stls_admit_cleanup();

	/* The floor: the two stripe locks a place in a group and an address take, uncontended. */
	static _Alignas(64) atomic_uint lock;
	t0 = now_s();
	ops = 0;
	do {
		for (unsigned i = 0; i < 4096; i++) {
			for (int k = 0; k < 4; k++) { /* take and give back: two stripes each */
				while (atomic_exchange_explicit(&lock, 1, memory_order_acquire))
					;
				g_sink++;
				atomic_store_explicit(&lock, 0, memory_order_release);
			}
		}
		ops += 4096;
		t = now_s();
	} while (t - t0 < seconds);
	double lock_ns = (t - t0) * 1e9 / (double)ops;
	printf("clients    sender-group lookup (%u networks) %6.1f ns/op\n", CLIENT_NETS, lookup_ns);
	printf("clients    admit + release (group and address)  %6.1f ns/op   floor: 4 uncontended lock/unlock "
	       "%6.1f ns (%.0f %%)\n",
	       admit_ns, lock_ns, 100 * lock_ns / admit_ns);
	if (json)
		fprintf(json,
			"  \"sender_group_lookup_ns\": %.1f, \"admit_release_ns\": %.1f, \"admit_floor_ns\": %.1f,\n",
			lookup_ns, admit_ns, lock_ns);
out:
	stls_sender_groups_free(&groups);
	stls_free_ptr(&text);
	stls_free_ptr(&nets);
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
			fprintf(stderr, "usage: starttls-micro [lexer|reply|data|crypto|policy|clients|all] [--key "
					"FILE] [--seconds S] "
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
	if (all || strcmp(what, "policy") == 0)
		bench_policy(json, seconds);
	if (all || strcmp(what, "clients") == 0)
		bench_clients(json, seconds);
	if (json) {
		fprintf(json, "  \"seconds\": %.2f\n}\n", seconds);
		fclose(json);
	}
	return 0;
}
