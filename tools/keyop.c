/* starttls-keyop: the private-key signatures of starttlsd's TLS handshakes, made with Debian's
 * OpenSSL 3 libcrypto, whose RSA and ECDSA signatures take half the time of BoringSSL's here.
 *
 * starttlsd starts it (--keyop-threads) with AF_UNIX SOCK_SEQPACKET channels already open: the
 * control channel on fd 3 (LOAD, DROP, PING from the daemon's main thread, answered by this
 * process's main thread) and worker i's signing channel on fd 4 + i, served by signer thread
 * i % T. The messages are core/keyop_wire.h's.
 *
 * This file links libcrypto only: the daemon's library pulls BoringSSL, whose symbols have the
 * same names. From the daemon it takes the wire header and the version string (core/flags.h,
 * which includes no TLS library). */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/flags.h"
#include "core/keyop_wire.h"

enum { EXIT_PROBLEM = 1, EXIT_USAGE = 2, MAX_THREADS = 256, BENCH_INPUT_LEN = 130 };

/* What a loaded key is, as far as choosing a signature scheme goes. */
enum key_kind {
	KEY_RSA = 0,
	KEY_P256,
	KEY_P384,
	KEY_P521,
	KEY_ED25519,
	KEY__COUNT,
};

enum digest {
	DIGEST_NONE = 0, /* Ed25519 hashes the message itself */
	DIGEST_SHA1,
	DIGEST_SHA256,
	DIGEST_SHA384,
	DIGEST_SHA512,
	DIGEST__COUNT,
};

/* The TLS SignatureSchemes this process signs with (RFC 8446 4.2.3). rsa_pkcs1_md5_sha1 (0xff01,
 * BoringSSL's TLS 1.0/1.1 signature) is not among them: the daemon speaks TLS 1.2 and 1.3 only. */
enum scheme {
	SCHEME_RSA_PKCS1_SHA1 = 0,
	SCHEME_RSA_PKCS1_SHA256,
	SCHEME_RSA_PKCS1_SHA384,
	SCHEME_RSA_PKCS1_SHA512,
	SCHEME_RSA_PSS_SHA256,
	SCHEME_RSA_PSS_SHA384,
	SCHEME_RSA_PSS_SHA512,
	SCHEME_ECDSA_SHA1,
	SCHEME_ECDSA_P256_SHA256,
	SCHEME_ECDSA_P384_SHA384,
	SCHEME_ECDSA_P521_SHA512,
	SCHEME_ED25519,
	SCHEME__COUNT,
};

struct scheme_info {
	uint16_t code;
	enum key_kind kind; /* the kind of key it signs with; for ECDSA see scheme_fits */
	enum digest digest;
	int padding; /* RSA only: RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
	const char *name;
};

static const struct scheme_info k_schemes[SCHEME__COUNT] = {
	/* A TLS 1.2 client that sends no signature_algorithms gets SHA-1 (RFC 5246 7.4.1.4.1). */
	[SCHEME_RSA_PKCS1_SHA1] = { 0x0201, KEY_RSA, DIGEST_SHA1, RSA_PKCS1_PADDING, "rsa_pkcs1_sha1" },
	[SCHEME_ECDSA_SHA1] = { 0x0203, KEY_P256, DIGEST_SHA1, 0, "ecdsa_sha1" },
	[SCHEME_RSA_PKCS1_SHA256] = { 0x0401, KEY_RSA, DIGEST_SHA256, RSA_PKCS1_PADDING, "rsa_pkcs1_sha256" },
	[SCHEME_RSA_PKCS1_SHA384] = { 0x0501, KEY_RSA, DIGEST_SHA384, RSA_PKCS1_PADDING, "rsa_pkcs1_sha384" },
	[SCHEME_RSA_PKCS1_SHA512] = { 0x0601, KEY_RSA, DIGEST_SHA512, RSA_PKCS1_PADDING, "rsa_pkcs1_sha512" },
	[SCHEME_RSA_PSS_SHA256] = { 0x0804, KEY_RSA, DIGEST_SHA256, RSA_PKCS1_PSS_PADDING, "rsa_pss_rsae_sha256" },
	[SCHEME_RSA_PSS_SHA384] = { 0x0805, KEY_RSA, DIGEST_SHA384, RSA_PKCS1_PSS_PADDING, "rsa_pss_rsae_sha384" },
	[SCHEME_RSA_PSS_SHA512] = { 0x0806, KEY_RSA, DIGEST_SHA512, RSA_PKCS1_PSS_PADDING, "rsa_pss_rsae_sha512" },
	[SCHEME_ECDSA_P256_SHA256] = { 0x0403, KEY_P256, DIGEST_SHA256, 0, "ecdsa_secp256r1_sha256" },
	[SCHEME_ECDSA_P384_SHA384] = { 0x0503, KEY_P384, DIGEST_SHA384, 0, "ecdsa_secp384r1_sha384" },
	[SCHEME_ECDSA_P521_SHA512] = { 0x0603, KEY_P521, DIGEST_SHA512, 0, "ecdsa_secp521r1_sha512" },
	[SCHEME_ED25519] = { 0x0807, KEY_ED25519, DIGEST_NONE, 0, "ed25519" },
};

static bool is_ec(enum key_kind kind)
{
	return kind == KEY_P256 || kind == KEY_P384 || kind == KEY_P521;
}

/* Whether sc can sign with a key of this kind. An ECDSA scheme names its curve only in TLS 1.3;
 * in TLS 1.2 ecdsa_secp256r1_sha256 means ECDSA with SHA-256 on whatever curve the certificate
 * has, and BoringSSL asks for it so with a P-384 key (it enforces the curve itself in TLS 1.3). */
static bool scheme_fits(const struct scheme_info *sc, enum key_kind kind)
{
	return sc->kind == kind || (is_ec(sc->kind) && is_ec(kind));
}

/* What TLS 1.3 signs with for each kind of key: what --bench measures. */
static const enum scheme k_tls13_scheme[KEY__COUNT] = {
	[KEY_RSA] = SCHEME_RSA_PSS_SHA256,     [KEY_P256] = SCHEME_ECDSA_P256_SHA256,
	[KEY_P384] = SCHEME_ECDSA_P384_SHA384, [KEY_P521] = SCHEME_ECDSA_P521_SHA512,
	[KEY_ED25519] = SCHEME_ED25519,
};

static const char *const k_digest_names[DIGEST__COUNT] = {
	[DIGEST_SHA1] = "SHA1",
	[DIGEST_SHA256] = "SHA2-256",
	[DIGEST_SHA384] = "SHA2-384",
	[DIGEST_SHA512] = "SHA2-512",
};

struct key_slot {
	uint32_t id;
	uint64_t gen; /* unique per LOAD; 0: the slot is free */
	enum key_kind kind;
	EVP_PKEY *pkey;
};

/* The loaded keys. The control thread writes, the signers read; a signer takes what it needs
 * (a reference or the generation) under the read lock and signs outside it, so a DROP during a
 * signature only removes the table's reference. */
struct key_table {
	pthread_rwlock_t lock;
	uint64_t next_gen;
	struct key_slot slots[STLS_KEYOP_MAX_KEYS];
};

/* A signing context made ready for one key and one RSA or ECDSA scheme (padding, digest), kept by
 * the thread that made it: setting one up costs about 3 us, an eighth of a P-256 signature. It
 * holds its own reference to the key. */
struct prepared {
	uint64_t gen; /* the key's generation when it was made */
	EVP_PKEY_CTX *pctx;
};

/* What every thread shares: read-only after start-up, except the table behind its lock. */
struct keyop {
	struct key_table keys;
	EVP_MD *digests[DIGEST__COUNT]; /* fetched once: a fetch per signature costs a lookup */
	struct signer **signers;
	unsigned num_signers;
	unsigned num_threads, num_workers;
	bool signing;	  /* the signer threads run: after the first PING */
	atomic_bool quit; /* the control channel closed: the signers end */
};

/* One signer thread and its state. The buffers are the largest request and reply. */
struct signer {
	struct keyop *k;
	pthread_t thread;
	bool started;
	int wake_fd;	     /* eventfd: a key was dropped (free the contexts made for it), or quit */
	bool sweep_due;	     /* wake_fd was read: free what was kept for dropped keys */
	struct pollfd *pfds; /* [0]: wake_fd, then the channels still open */
	unsigned num_channels;
	EVP_MD_CTX *md_ctx; /* hashes what RSA and ECDSA sign */
	EVP_MD_CTX *ed_ctx; /* Ed25519's one-shot signatures: a context set up for signing cannot hash */
	struct prepared prepared[STLS_KEYOP_MAX_KEYS][SCHEME__COUNT];
	_Alignas(8) uint8_t in[sizeof(struct stls_keyop_req) + STLS_KEYOP_MAX_INPUT];
	_Alignas(8) uint8_t out[sizeof(struct stls_keyop_resp) + STLS_KEYOP_MAX_SIG];
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("starttls-keyop: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return EXIT_PROBLEM;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("starttls-keyop: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (see starttls-keyop --help)\n", stderr);
	va_end(ap);
	return EXIT_USAGE;
}

static void usage(FILE *out)
{
	fputs("Usage: starttls-keyop --threads T --workers W\n"
	      "       starttls-keyop --bench KEYFILE [--seconds S]\n"
	      "       starttls-keyop --help | --version\n"
	      "\n"
	      "Makes the private-key signatures of starttlsd's TLS handshakes with OpenSSL 3's libcrypto,\n"
	      "in a process of its own. starttlsd starts it itself when --keyop-threads is set, with the\n"
	      "channels already open; there is no reason to start it by hand, except to measure.\n"
	      "\n"
	      "  --threads T      signer threads (1-256; at most one per worker)\n"
	      "  --workers W      starttlsd's workers: worker i's signing channel is fd 4+i, the control\n"
	      "                   channel fd 3 (AF_UNIX SOCK_SEQPACKET sockets, core/keyop_wire.h)\n"
	      "  --bench KEYFILE  sign a 130-byte message with the PEM private key in KEYFILE, the way\n"
	      "                   TLS 1.3 would (RSA-PSS-SHA256, ECDSA with the curve's hash, Ed25519),\n"
	      "                   on one thread through the signer threads' code, and print the time\n"
	      "  --seconds S      how long --bench signs (default 2)\n"
	      "  --help           this text\n"
	      "  --version        the version, which is starttlsd's\n",
	      out);
}

/* Parses a whole decimal number in [min, max]. */
[[nodiscard]] static bool parse_uint(unsigned *out, const char *text, unsigned min, unsigned max)
{
	if (text[0] < '0' || text[0] > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the key table ---- */

[[nodiscard]] static bool keyop_init(struct keyop *k)
{
	memset(k, 0, sizeof(*k));
	if (pthread_rwlock_init(&k->keys.lock, NULL) != 0)
		return false;
	k->keys.next_gen = 1;
	for (unsigned d = DIGEST_NONE + 1; d < DIGEST__COUNT; d++) {
		k->digests[d] = EVP_MD_fetch(NULL, k_digest_names[d], NULL);
		if (!k->digests[d])
			return false;
	}
	return true;
}

static void keyop_cleanup(struct keyop *k)
{
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++)
		EVP_PKEY_free(k->keys.slots[i].pkey);
	for (unsigned d = 0; d < DIGEST__COUNT; d++)
		EVP_MD_free(k->digests[d]);
	pthread_rwlock_destroy(&k->keys.lock);
	memset(k, 0, sizeof(*k));
}

/* What kind of key pkey is; false with the reason in why when this process cannot sign with it. */
[[nodiscard]] static bool key_kind_of(enum key_kind *out, const EVP_PKEY *pkey, char *why, size_t why_len)
{
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (EVP_PKEY_get_size(pkey) > STLS_KEYOP_MAX_SIG) {
			snprintf(why, why_len, "RSA key too large (%d bits, at most %d)", EVP_PKEY_get_bits(pkey),
				 STLS_KEYOP_MAX_SIG * 8);
			return false;
		}
		*out = KEY_RSA;
		return true;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[64] = "";
		if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL)) {
			snprintf(why, why_len, "EC key without a named curve");
			return false;
		}
		int nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		switch (nid) {
		case NID_X9_62_prime256v1: *out = KEY_P256; return true;
		case NID_secp384r1: *out = KEY_P384; return true;
		case NID_secp521r1: *out = KEY_P521; return true;
		default: snprintf(why, why_len, "unsupported curve %s", group); return false;
		}
	}
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		*out = KEY_ED25519;
		return true;
	}
	const char *type = EVP_PKEY_get0_type_name(pkey);
	snprintf(why, why_len, "unsupported key type %s", type ? type : "(unnamed)");
	return false;
}

/* Parses PKCS#8 DER (what BoringSSL's EVP_marshal_private_key writes). Returns the key, or NULL
 * with the reason in why. The whole of der must be the one PrivateKeyInfo. */
static EVP_PKEY *key_parse(const uint8_t *der, size_t der_len, char *why, size_t why_len)
{
	EVP_PKEY *pkey = NULL;
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)der_len);
	if (!p8) {
		snprintf(why, why_len, "not a private key (PKCS#8 DER expected)");
		goto out;
	}
	if (p != der + der_len) {
		snprintf(why, why_len, "not a private key (%zu bytes after the PKCS#8 structure)",
			 der_len - (size_t)(p - der));
		goto out;
	}
	pkey = EVP_PKCS82PKEY(p8);
	if (!pkey)
		snprintf(why, why_len, "not a private key (OpenSSL cannot read this PKCS#8 key)");
out:
	PKCS8_PRIV_KEY_INFO_free(p8); /* its ASN.1 callback wipes the key bytes */
	ERR_clear_error();
	return pkey;
}

/* Adds a key under id. Returns STLS_KEYOP_OK, or STLS_KEYOP_FAILED with the reason in why. */
static enum stls_keyop_status keys_load(struct keyop *k, uint32_t id, const uint8_t *der, size_t der_len, char *why,
					size_t why_len)
{
	enum key_kind kind;
	EVP_PKEY *pkey = key_parse(der, der_len, why, why_len);
	if (!pkey)
		return STLS_KEYOP_FAILED;
	if (!key_kind_of(&kind, pkey, why, why_len)) {
		EVP_PKEY_free(pkey);
		return STLS_KEYOP_FAILED;
	}
	struct key_table *t = &k->keys;
	struct key_slot *free_slot = NULL;
	enum stls_keyop_status ret = STLS_KEYOP_OK;
	pthread_rwlock_wrlock(&t->lock);
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++) {
		struct key_slot *s = &t->slots[i];
		if (s->gen && s->id == id) {
			snprintf(why, why_len, "key id already loaded");
			ret = STLS_KEYOP_FAILED;
			goto out;
		}
		if (!s->gen && !free_slot)
			free_slot = s;
	}
	if (!free_slot) {
		snprintf(why, why_len, "table full (%d keys)", STLS_KEYOP_MAX_KEYS);
		ret = STLS_KEYOP_FAILED;
		goto out;
	}
	*free_slot = (struct key_slot){ .id = id, .gen = t->next_gen++, .kind = kind, .pkey = pkey };
	pkey = NULL;
out:
	pthread_rwlock_unlock(&t->lock);
	EVP_PKEY_free(pkey);
	return ret;
}

/* Wakes every signer thread: to free what it kept for a dropped key, or to end. */
static void wake_signers(struct keyop *k)
{
	for (unsigned i = 0; i < k->num_signers; i++) {
		uint64_t one = 1;
		if (write(k->signers[i]->wake_fd, &one, sizeof(one)) < 0) {
			/* An eventfd only refuses a write when its counter is full: it is awake already. */
		}
	}
}

/* Removes the key under id. Returns STLS_KEYOP_OK or STLS_KEYOP_UNKNOWN_KEY. */
static enum stls_keyop_status keys_drop(struct keyop *k, uint32_t id)
{
	struct key_table *t = &k->keys;
	EVP_PKEY *pkey = NULL;
	pthread_rwlock_wrlock(&t->lock);
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++) {
		struct key_slot *s = &t->slots[i];
		if (s->gen && s->id == id) {
			pkey = s->pkey;
			*s = (struct key_slot){ 0 };
			break;
		}
	}
	pthread_rwlock_unlock(&t->lock);
	if (!pkey)
		return STLS_KEYOP_UNKNOWN_KEY;
	/* The signers may still hold references; the key is wiped when the last goes. */
	EVP_PKEY_free(pkey);
	wake_signers(k);
	return STLS_KEYOP_OK;
}

/* ---- signing ---- */

static const struct scheme_info *scheme_find(uint16_t code, enum scheme *out)
{
	for (unsigned i = 0; i < SCHEME__COUNT; i++) {
		if (k_schemes[i].code == code) {
			*out = (enum scheme)i;
			return &k_schemes[i];
		}
	}
	return NULL;
}

/* Sets up an RSA or ECDSA signing context over a digest. Returns NULL if OpenSSL refuses. */
static EVP_PKEY_CTX *prepare(struct keyop *k, EVP_PKEY *pkey, const struct scheme_info *sc)
{
	EVP_MD *md = k->digests[sc->digest];
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!pctx || EVP_PKEY_sign_init(pctx) <= 0)
		goto fail;
	if (sc->kind == KEY_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, sc->padding) <= 0)
		goto fail;
	if (EVP_PKEY_CTX_set_signature_md(pctx, md) <= 0)
		goto fail;
	/* RFC 8446 4.2.3: RSASSA-PSS with MGF1 on the same digest, and a salt as long as the digest. */
	if (sc->padding == RSA_PKCS1_PSS_PADDING &&
	    (EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
		goto fail;
	return pctx;
fail:
	EVP_PKEY_CTX_free(pctx);
	return NULL;
}

/* Frees the contexts this thread made for keys no longer in the table (after a DROP). */
static void signer_sweep(struct signer *s)
{
	struct key_table *t = &s->k->keys;
	pthread_rwlock_rdlock(&t->lock);
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++) {
		for (unsigned j = 0; j < SCHEME__COUNT; j++) {
			struct prepared *p = &s->prepared[i][j];
			if (p->pctx && p->gen != t->slots[i].gen) {
				EVP_PKEY_CTX_free(p->pctx);
				*p = (struct prepared){ 0 };
			}
		}
	}
	pthread_rwlock_unlock(&t->lock);
}

/* Signs the in_len bytes at in with the key loaded under key_id and the scheme sigalg. Returns the
 * status; on STLS_KEYOP_OK the signature is in out_sig (STLS_KEYOP_MAX_SIG bytes of room) and its
 * length in *out_sig_len. */
static enum stls_keyop_status sign(struct signer *s, uint8_t *out_sig, size_t *out_sig_len, uint32_t key_id,
				   uint16_t sigalg, const uint8_t *in, size_t in_len)
{
	struct keyop *k = s->k;
	enum scheme sc_index;
	const struct scheme_info *sc = scheme_find(sigalg, &sc_index);
	EVP_PKEY *pkey = NULL; /* a reference of our own, when one is needed */
	unsigned slot = STLS_KEYOP_MAX_KEYS;
	uint64_t gen = 0;
	enum key_kind kind = KEY__COUNT;

	pthread_rwlock_rdlock(&k->keys.lock);
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++) {
		const struct key_slot *ks = &k->keys.slots[i];
		if (ks->gen && ks->id == key_id) {
			slot = i;
			gen = ks->gen;
			kind = ks->kind;
			break;
		}
	}
	struct prepared *p = slot < STLS_KEYOP_MAX_KEYS && sc ? &s->prepared[slot][sc_index] : NULL;
	bool ready = p && p->pctx && p->gen == gen;
	if (slot < STLS_KEYOP_MAX_KEYS && sc && scheme_fits(sc, kind) && !ready) {
		pkey = k->keys.slots[slot].pkey;
		EVP_PKEY_up_ref(pkey);
	}
	pthread_rwlock_unlock(&k->keys.lock);

	if (slot == STLS_KEYOP_MAX_KEYS)
		return STLS_KEYOP_UNKNOWN_KEY;
	if (!sc || !scheme_fits(sc, kind))
		return STLS_KEYOP_BAD_ALG;

	enum stls_keyop_status ret = STLS_KEYOP_FAILED;
	size_t sig_len = STLS_KEYOP_MAX_SIG;
	if (sc->digest == DIGEST_NONE) {
		/* Ed25519 signs the message itself, in one call. */
		if (EVP_MD_CTX_reset(s->ed_ctx) <= 0 || EVP_DigestSignInit(s->ed_ctx, NULL, NULL, NULL, pkey) <= 0 ||
		    EVP_DigestSign(s->ed_ctx, out_sig, &sig_len, in, in_len) <= 0)
			goto out;
	} else {
		if (!ready) {
			EVP_PKEY_CTX_free(p->pctx);
			*p = (struct prepared){ .gen = gen, .pctx = prepare(k, pkey, sc) };
			if (!p->pctx)
				goto out;
		}
		uint8_t digest[EVP_MAX_MD_SIZE];
		unsigned digest_len = 0;
		if (EVP_DigestInit_ex(s->md_ctx, k->digests[sc->digest], NULL) <= 0 ||
		    EVP_DigestUpdate(s->md_ctx, in, in_len) <= 0 ||
		    EVP_DigestFinal_ex(s->md_ctx, digest, &digest_len) <= 0 ||
		    EVP_PKEY_sign(p->pctx, out_sig, &sig_len, digest, digest_len) <= 0)
			goto out;
	}
	*out_sig_len = sig_len;
	ret = STLS_KEYOP_OK;
out:
	if (ret != STLS_KEYOP_OK)
		ERR_clear_error();
	EVP_PKEY_free(pkey);
	return ret;
}

/* Answers one message from a signing channel: msg holds its first msg_len bytes, received_len is
 * how long it really was (MSG_TRUNC). Writes the reply into s->out and returns its length, or 0 when
 * the message is dropped: too short to carry a token, there is no one to answer. */
static size_t serve_request(struct signer *s, const uint8_t *msg, size_t msg_len, size_t received_len)
{
	struct stls_keyop_req req;
	struct stls_keyop_resp resp = { .status = STLS_KEYOP_MALFORMED };
	if (msg_len < sizeof(req.token))
		return 0;
	memcpy(&resp.token, msg, sizeof(resp.token));
	size_t sig_len = 0;
	if (msg_len >= sizeof(req)) {
		memcpy(&req, msg, sizeof(req));
		/* The sizes add up: the header, then exactly in_len bytes, all of them received. */
		if (req.in_len <= STLS_KEYOP_MAX_INPUT && received_len == sizeof(req) + req.in_len &&
		    msg_len == received_len)
			resp.status = (uint16_t)sign(s, s->out + sizeof(resp), &sig_len, req.key_id, req.sigalg,
						     msg + sizeof(req), req.in_len);
	}
	resp.sig_len = resp.status == STLS_KEYOP_OK ? (uint16_t)sig_len : 0;
	memcpy(s->out, &resp, sizeof(resp));
	return sizeof(resp) + resp.sig_len;
}

/* ---- channels ---- */

/* Sends one record, waiting for room if the socket is non-blocking. False if the peer is gone. */
[[nodiscard]] static bool send_record(int fd, const void *buf, size_t len)
{
	for (;;) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return (size_t)n == len; /* SOCK_SEQPACKET sends all of a record or none */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return false;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return false;
	}
}

/* Takes the wake-up; a sweep is due. */
static void signer_woken(struct signer *s)
{
	uint64_t count;
	if (read(s->wake_fd, &count, sizeof(count)) == (ssize_t)sizeof(count))
		s->sweep_due = true;
}

/* Sends a reply, waiting for room as long as it takes (a worker reads its replies when its loop
 * comes round), but not past the end: the wait also watches wake_fd. False if the worker's end
 * is gone or the process is ending. */
[[nodiscard]] static bool signer_send(struct signer *s, int fd, const void *buf, size_t len)
{
	for (;;) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			return (size_t)n == len;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return false;
		struct pollfd p[2] = { { .fd = fd, .events = POLLOUT }, { .fd = s->wake_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return false;
		if (p[1].revents)
			signer_woken(s);
		if (atomic_load_explicit(&s->k->quit, memory_order_relaxed))
			return false;
	}
}

/* recv() returns 0 both for a record of no bytes and at the end: only the end shows as a hang-up. */
static bool hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Serves every message queued on one channel. False when the channel is finished (the worker
 * closed it, or it failed): the caller stops polling it. */
enum served { SERVED, EMPTY, CLOSED };

/* Answers the next request waiting on a worker's channel, if there is one. */
static enum served serve_one(struct signer *s, int fd)
{
	for (;;) {
		ssize_t n = recv(fd, s->in, sizeof(s->in), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? EMPTY : CLOSED;
		}
		if (n == 0 && hung_up(fd))
			return CLOSED;
		size_t received = (size_t)n;
		size_t held = received < sizeof(s->in) ? received : sizeof(s->in);
		size_t reply_len = serve_request(s, s->in, held, received);
		if (reply_len && !signer_send(s, fd, s->out, reply_len))
			return CLOSED;
		return SERVED;
	}
}

static void *signer_main(void *arg)
{
	struct signer *s = arg;
	while (s->num_channels > 0 && !atomic_load_explicit(&s->k->quit, memory_order_relaxed)) {
		if (s->sweep_due) {
			s->sweep_due = false;
			signer_sweep(s);
		}
		if (poll(s->pfds, 1 + s->num_channels, -1) < 0) {
			if (errno == EINTR)
				continue;
			/* Its workers would wait for replies forever: better that starttlsd sees this
			 * process end. _exit, for exit's handlers would free what the others use. */
			fail("signer thread: poll: %s", strerror(errno));
			_exit(EXIT_PROBLEM);
		}
		if (s->pfds[0].revents)
			signer_woken(s);
		/* One request from each channel in turn until none has one left: a thread that serves
		 * several workers never keeps one worker's handshakes behind another's whole queue. */
		struct pollfd *ch = s->pfds + 1;
		for (bool more = true; more && !atomic_load_explicit(&s->k->quit, memory_order_relaxed);) {
			more = false;
			for (unsigned i = 0; i < s->num_channels; i++) {
				if (!ch[i].revents || ch[i].fd < 0)
					continue;
				switch (serve_one(s, ch[i].fd)) {
				case SERVED: more = true; break;
				case EMPTY: ch[i].revents = 0; break;
				case CLOSED: ch[i].fd = -1; break;
				}
			}
		}
		unsigned kept = 0;
		for (unsigned i = 0; i < s->num_channels; i++)
			if (ch[i].fd >= 0)
				ch[kept++] = (struct pollfd){ .fd = ch[i].fd, .events = POLLIN };
		s->num_channels = kept;
	}
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++)
		for (unsigned j = 0; j < SCHEME__COUNT; j++)
			EVP_PKEY_CTX_free(s->prepared[i][j].pctx);
	memset(s->prepared, 0, sizeof(s->prepared));
	return NULL;
}

/* Frees a signer whose thread has ended (or never started). Accepts NULL. */
static void signer_free(struct signer *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++)
		for (unsigned j = 0; j < SCHEME__COUNT; j++)
			EVP_PKEY_CTX_free(s->prepared[i][j].pctx);
	EVP_MD_CTX_free(s->md_ctx);
	EVP_MD_CTX_free(s->ed_ctx);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s->pfds);
	free(s);
}

/* A signer for the channels first_fd + i, i = index, index + step, ... below num_workers; with
 * num_workers 0 (--bench) it serves none and signs through serve_request only. */
static struct signer *signer_new(struct keyop *k, unsigned index, unsigned step, unsigned num_workers)
{
	struct signer *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->k = k;
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->md_ctx = EVP_MD_CTX_new();
	s->ed_ctx = EVP_MD_CTX_new();
	s->pfds = calloc(1 + num_workers / step + 1, sizeof(*s->pfds));
	if (s->wake_fd < 0 || !s->md_ctx || !s->ed_ctx || !s->pfds) {
		signer_free(s);
		return NULL;
	}
	s->pfds[0] = (struct pollfd){ .fd = s->wake_fd, .events = POLLIN };
	for (unsigned i = index; i < num_workers; i += step)
		s->pfds[1 + s->num_channels++] =
			(struct pollfd){ .fd = STLS_KEYOP_FIRST_WORKER_FD + (int)i, .events = POLLIN };
	return s;
}

/* ---- the control channel ---- */

/* Answers one control message: msg holds its first msg_len bytes, received_len is how long it
 * really was. */
static void serve_control(struct keyop *k, struct stls_keyop_ctl_reply *out, const uint8_t *msg, size_t msg_len,
			  size_t received_len)
{
	struct stls_keyop_ctl ctl = { 0 };
	*out = (struct stls_keyop_ctl_reply){ .status = STLS_KEYOP_MALFORMED, .protocol = STLS_KEYOP_PROTOCOL };
	if (msg_len < sizeof(ctl)) {
		snprintf(out->why, sizeof(out->why), "message of %zu bytes, shorter than the header", received_len);
		return;
	}
	memcpy(&ctl, msg, sizeof(ctl));
	out->type = ctl.type;
	out->key_id = ctl.key_id;
	if (received_len != msg_len || ctl.der_len > STLS_KEYOP_MAX_KEY_DER ||
	    received_len != sizeof(ctl) + ctl.der_len) {
		snprintf(out->why, sizeof(out->why), "message of %zu bytes, the header says %zu", received_len,
			 sizeof(ctl) + (size_t)ctl.der_len);
		return;
	}
	switch (ctl.type) {
	case STLS_KEYOP_CTL_LOAD:
		if (ctl.der_len == 0) {
			snprintf(out->why, sizeof(out->why), "LOAD without a key");
			return;
		}
		out->status = keys_load(k, ctl.key_id, msg + sizeof(ctl), ctl.der_len, out->why, sizeof(out->why));
		return;
	case STLS_KEYOP_CTL_DROP:
	case STLS_KEYOP_CTL_PING:
		if (ctl.der_len != 0) {
			snprintf(out->why, sizeof(out->why), "key bytes after a %s",
				 ctl.type == STLS_KEYOP_CTL_DROP ? "DROP" : "PING");
			return;
		}
		out->status = ctl.type == STLS_KEYOP_CTL_DROP ? keys_drop(k, ctl.key_id) : STLS_KEYOP_OK;
		if (out->status == STLS_KEYOP_UNKNOWN_KEY)
			snprintf(out->why, sizeof(out->why), "no key with that id");
		return;
	default: snprintf(out->why, sizeof(out->why), "unknown message type %u", ctl.type); return;
	}
}

/* Starts the signer threads. Not before the first PING: starttlsd sends it after loading the keys,
 * so a process started after a crash does not refuse the requests queued in the channels for a
 * key it has not been given yet. Returns false after saying why. */
static bool start_signers(struct keyop *k)
{
	k->signing = true;
	for (unsigned t = 0; t < k->num_threads; t++) {
		struct signer *s = signer_new(k, t, k->num_threads, k->num_workers);
		if (!s) {
			fail("cannot set up signer thread %u", t);
			return false;
		}
		k->signers[k->num_signers++] = s;
		int err = pthread_create(&s->thread, NULL, signer_main, s);
		if (err != 0) {
			fail("cannot start signer thread %u: %s", t, strerror(err));
			return false;
		}
		s->started = true;
	}
	return true;
}

/* Serves the control channel until starttlsd closes it (returns EXIT_SUCCESS) or it fails. */
static int control_loop(struct keyop *k, int fd)
{
	int ret = EXIT_PROBLEM;
	size_t cap = sizeof(struct stls_keyop_ctl) + STLS_KEYOP_MAX_KEY_DER;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return fail("out of memory");
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("control channel: poll: %s", strerror(errno));
			goto out;
		}
		ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			if (errno == ECONNRESET)
				break;
			fail("control channel: %s", strerror(errno));
			goto out;
		}
		if (n == 0 && hung_up(fd))
			break; /* starttlsd is gone */
		size_t held = (size_t)n < cap ? (size_t)n : cap;
		struct stls_keyop_ctl_reply reply;
		serve_control(k, &reply, buf, held, (size_t)n);
		OPENSSL_cleanse(buf, held);
		if (!send_record(fd, &reply, sizeof(reply))) {
			if (errno == EPIPE || errno == ECONNRESET)
				break;
			fail("control channel: %s", strerror(errno));
			goto out;
		}
		if (reply.type == STLS_KEYOP_CTL_PING && reply.status == STLS_KEYOP_OK && !k->signing &&
		    !start_signers(k))
			goto out;
	}
	ret = EXIT_SUCCESS;
out:
	free(buf);
	return ret;
}

/* ---- the two modes ---- */

static bool check_channel(int fd, const char *what)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
		fail("fd %d (%s): %s; starttlsd passes the channels itself (see --help)", fd, what,
		     errno == EBADF	 ? "not open"
		     : errno == ENOTSOCK ? "not a socket"
					 : strerror(errno));
		return false;
	}
	len = sizeof(domain);
	if (type != SOCK_SEQPACKET || getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) {
		fail("fd %d (%s): not an AF_UNIX SOCK_SEQPACKET socket", fd, what);
		return false;
	}
	return true;
}

static int serve(unsigned num_threads, unsigned num_workers)
{
	/* starttlsd's death ends this process too; if it died before prctl, the parent is init now.
	 * The signal comes when the thread that started this process ends, so starttlsd starts it from
	 * its main thread. */
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		return fail("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	if (getppid() != parent)
		return fail("starttlsd ended before this process started");
	signal(SIGPIPE, SIG_IGN);
	/* The daemon ends this process by closing the control channel, after its last session. A
	 * signal meant for starttlsd reaches this process too when it goes to the whole group
	 * (Ctrl-C on a terminal, a service manager stopping the group): dying then would fail the
	 * handshakes of sessions the daemon is still letting finish. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	if (!check_channel(STLS_KEYOP_CONTROL_FD, "control channel"))
		return EXIT_PROBLEM;
	for (unsigned i = 0; i < num_workers; i++) {
		char what[48];
		snprintf(what, sizeof(what), "worker %u's channel", i);
		if (!check_channel(STLS_KEYOP_FIRST_WORKER_FD + (int)i, what))
			return EXIT_PROBLEM;
	}

	struct keyop k;
	int ret = EXIT_PROBLEM;
	if (!keyop_init(&k)) {
		fail("OpenSSL has no SHA-2 digests");
		goto out;
	}
	k.num_threads = num_threads;
	k.num_workers = num_workers;
	k.signers = calloc(num_threads, sizeof(*k.signers));
	if (!k.signers) {
		fail("out of memory");
		goto out;
	}
	ret = control_loop(&k, STLS_KEYOP_CONTROL_FD);
	/* Not shutdown() on the channels: starttlsd keeps this side's ends open for the process it
	 * starts next, and a shutdown would end the sockets for it too. Requests not yet taken stay
	 * queued for that process. */
	atomic_store(&k.quit, true);
	wake_signers(&k);
	for (unsigned i = 0; i < k.num_signers; i++) {
		if (k.signers[i]->started)
			pthread_join(k.signers[i]->thread, NULL);
		signer_free(k.signers[i]);
	}
	free(k.signers);
out:
	keyop_cleanup(&k);
	return ret;
}

static int no_password(char *buf, int size, int rwflag, void *arg)
{
	(void)buf, (void)size, (void)rwflag, (void)arg;
	return -1;
}

/* Checks a signature the way a TLS peer would, with the public half of pkey. */
static bool bench_verify(struct keyop *k, EVP_PKEY *pkey, const struct scheme_info *sc, const uint8_t *sig,
			 size_t sig_len, const uint8_t *in, size_t in_len)
{
	bool ok = false;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_MD *md = sc->digest == DIGEST_NONE ? NULL : k->digests[sc->digest];
	if (!ctx || EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) <= 0)
		goto out;
	if (sc->padding == RSA_PKCS1_PSS_PADDING &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
		goto out;
	ok = EVP_DigestVerify(ctx, sig, sig_len, in, in_len) == 1;
out:
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

static int bench(const char *path, double seconds)
{
	int ret = EXIT_PROBLEM;
	struct keyop k;
	struct signer *s = NULL;
	EVP_PKEY *pkey = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	unsigned char *der = NULL;
	int der_len = 0;
	char why[128] = "";

	if (!keyop_init(&k)) {
		fail("OpenSSL has no SHA-2 digests");
		goto out;
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		fail("%s: %s", path, strerror(errno));
		goto out;
	}
	pkey = PEM_read_PrivateKey(f, NULL, no_password, NULL);
	fclose(f);
	if (!pkey) {
		fail("%s: no PEM private key (encrypted keys are not read)", path);
		goto out;
	}
	/* The key goes in as starttlsd sends it, PKCS#8 DER, through LOAD's code. */
	p8 = EVP_PKEY2PKCS8(pkey);
	der_len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
	if (der_len <= 0 || keys_load(&k, 1, der, (size_t)der_len, why, sizeof(why)) != STLS_KEYOP_OK) {
		fail("%s: %s", path, why[0] ? why : "OpenSSL cannot write the key as PKCS#8");
		goto out;
	}
	s = signer_new(&k, 0, 1, 0);
	if (!s) {
		fail("out of memory");
		goto out;
	}

	const struct scheme_info *sc = &k_schemes[k_tls13_scheme[k.keys.slots[0].kind]];
	/* What TLS 1.3 signs (RFC 8446 4.4.3): 64 spaces, the context string, a zero byte, and the
	 * transcript hash: 130 bytes with SHA-256. */
	_Alignas(8) uint8_t msg[sizeof(struct stls_keyop_req) + BENCH_INPUT_LEN];
	struct stls_keyop_req req = { .token = 1, .key_id = 1, .sigalg = sc->code, .in_len = BENCH_INPUT_LEN };
	memcpy(msg, &req, sizeof(req));
	uint8_t *in = msg + sizeof(req);
	memset(in, ' ', 64);
	memcpy(in + 64, "TLS 1.3, server CertificateVerify", 33);
	in[97] = 0;
	for (unsigned i = 98; i < BENCH_INPUT_LEN; i++)
		in[i] = (uint8_t)(i * 37);

	struct stls_keyop_resp resp = { 0 };
	size_t reply_len = serve_request(s, msg, sizeof(msg), sizeof(msg));
	memcpy(&resp, s->out, sizeof(resp));
	if (reply_len < sizeof(resp) || resp.status != STLS_KEYOP_OK) {
		fail("%s: %s: signing failed (status %u)", path, sc->name, resp.status);
		goto out;
	}
	if (!bench_verify(&k, pkey, sc, s->out + sizeof(resp), resp.sig_len, in, BENCH_INPUT_LEN)) {
		fail("%s: %s: the signature does not verify", path, sc->name);
		goto out;
	}

	uint64_t count = 0;
	double start = now_s(), elapsed = 0;
	do {
		if (serve_request(s, msg, sizeof(msg), sizeof(msg)) <= sizeof(resp)) {
			fail("%s: %s: signing failed", path, sc->name);
			goto out;
		}
		count++;
		elapsed = now_s() - start;
	} while (elapsed < seconds);
	printf("keyop      %s sign %8.1f us  (OpenSSL %s)\n", path, elapsed * 1e6 / (double)count,
	       OpenSSL_version(OPENSSL_VERSION_STRING));
	ret = EXIT_SUCCESS;
out:
	signer_free(s);
	if (der) {
		OPENSSL_cleanse(der, (size_t)der_len);
		OPENSSL_free(der);
	}
	PKCS8_PRIV_KEY_INFO_free(p8);
	EVP_PKEY_free(pkey);
	keyop_cleanup(&k);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned num_threads = 0, num_workers = 0;
	const char *bench_path = NULL, *seconds_text = NULL;
	for (int i = 1; i < argc; i++) {
		const char *flag = argv[i];
		if (strcmp(flag, "--help") == 0) {
			usage(stdout);
			return EXIT_SUCCESS;
		}
		if (strcmp(flag, "--version") == 0) {
			printf("starttls-keyop %s\n", STLS_VERSION);
			return EXIT_SUCCESS;
		}
		bool known = strcmp(flag, "--threads") == 0 || strcmp(flag, "--workers") == 0 ||
			     strcmp(flag, "--bench") == 0 || strcmp(flag, "--seconds") == 0;
		if (!known)
			return usage_error("unknown argument %s", flag);
		if (i + 1 >= argc)
			return usage_error("%s needs a value", flag);
		const char *value = argv[++i];
		if (strcmp(flag, "--threads") == 0 && !parse_uint(&num_threads, value, 1, MAX_THREADS))
			return usage_error("--threads: expected a number from 1 to %d, got %s", MAX_THREADS, value);
		if (strcmp(flag, "--workers") == 0 && !parse_uint(&num_workers, value, 1, STLS_KEYOP_MAX_WORKERS))
			return usage_error("--workers: expected a number from 1 to %d, got %s", STLS_KEYOP_MAX_WORKERS,
					   value);
		if (strcmp(flag, "--bench") == 0)
			bench_path = value;
		if (strcmp(flag, "--seconds") == 0)
			seconds_text = value;
	}
	if (bench_path) {
		if (num_threads || num_workers)
			return usage_error("--bench takes no --threads or --workers");
		double seconds = 2;
		if (seconds_text) {
			char *end;
			seconds = strtod(seconds_text, &end);
			if (*end != '\0' || end == seconds_text || !(seconds > 0 && seconds <= 3600))
				return usage_error("--seconds: expected a number of seconds up to 3600, got %s",
						   seconds_text);
		}
		return bench(bench_path, seconds);
	}
	if (seconds_text)
		return usage_error("--seconds goes with --bench");
	if (!num_threads || !num_workers)
		return usage_error("--threads and --workers are needed");
	return serve(num_threads < num_workers ? num_threads : num_workers, num_workers);
}
