/* Unit tests for tools/keyop.c: starttls-keyop, driven over its channels the way starttlsd drives
 * it (core/keyop_wire.h). The suite is keyop_tool, as tools/cert_tool.c's is cert_tool, leaving
 * "keyop" to the daemon's side of the channels.
 *
 * The helper signs with OpenSSL 3; the keys are made and the signatures checked here with
 * BoringSSL, the daemon's library, so every test also checks that the two libraries agree on the
 * PKCS#8 key bytes and on the signature formats. Every wait is bounded. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/flags.h"
#include "core/keyop_wire.h"
#include "tests/support/proc.h"
#include "tests/support/tmpdir.h"
#include "tls/selfsign.h"

enum {
	WAIT_MS = 20000, /* one reply, even from a sanitizer build on a busy machine */
	MAX_CHANNELS = 4,
	MSG_LEN = 130, /* what TLS 1.3 signs with SHA-256 */
	QUEUED = 500,  /* requests in flight on each channel at once */
};

enum {
	RSA_PKCS1_SHA256 = 0x0401,
	RSA_PKCS1_SHA384 = 0x0501,
	RSA_PKCS1_SHA512 = 0x0601,
	RSA_PSS_SHA256 = 0x0804,
	RSA_PSS_SHA384 = 0x0805,
	RSA_PSS_SHA512 = 0x0806,
	ECDSA_P256_SHA256 = 0x0403,
	ECDSA_P384_SHA384 = 0x0503,
	ECDSA_P521_SHA512 = 0x0603,
	ED25519 = 0x0807,
	RSA_PKCS1_SHA1 = 0x0201,
	ECDSA_SHA1 = 0x0203,
	RSA_PKCS1_MD5_SHA1 = 0xff01,
};

/* A running starttls-keyop and this side of its channels. */
struct helper {
	struct stls_proc proc;
	int ctl;
	int work[MAX_CHANNELS];
	unsigned num_workers;
};

struct reply {
	uint64_t token;
	uint16_t status;
	size_t sig_len;
	uint8_t sig[STLS_KEYOP_MAX_SIG];
};

static struct helper g_helper = { .ctl = -1 };
static char g_dir[256];

static void stop_helper(void);

/* Starts the helper with a control channel on fd 3 and num_workers signing channels from fd 4,
 * the way starttlsd does. extra_fd3, when not -1, replaces the control channel (for the tests of
 * what the helper refuses). their_work, when not NULL, holds the helper's ends of signing channels
 * the caller made and keeps, as starttlsd keeps them for the process it starts after a crash;
 * h->work is then the caller's to fill. */
static pid_t spawn(struct helper *h, const char *threads, unsigned num_workers, int extra_fd3, const int *their_work)
{
	char path[4096];
	stls_proc_build_path("starttls-keyop", path, sizeof(path));
	int theirs[1 + MAX_CHANNELS];
	int pair[2];
	cr_assert_leq(num_workers, MAX_CHANNELS);
	*h = (struct helper){ .ctl = -1, .num_workers = num_workers };
	for (unsigned i = 0; i <= num_workers; i++) {
		if (i > 0 && their_work) {
			theirs[i] = their_work[i - 1];
			continue;
		}
		cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
		if (i == 0)
			h->ctl = pair[0];
		else
			h->work[i - 1] = pair[0];
		theirs[i] = pair[1];
	}
	char workers[16];
	snprintf(workers, sizeof(workers), "%u", num_workers);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Above every fd the targets could be, then onto 3, 4, ...; the rest is closed. */
		int high[1 + MAX_CHANNELS];
		for (unsigned i = 0; i <= num_workers; i++)
			high[i] = fcntl(i == 0 && extra_fd3 >= 0 ? extra_fd3 : theirs[i], F_DUPFD, 100);
		for (unsigned i = 0; i <= num_workers; i++)
			dup2(high[i], STLS_KEYOP_CONTROL_FD + (int)i);
		close_range(STLS_KEYOP_FIRST_WORKER_FD + num_workers, ~0u, 0);
		char *argv[] = { path, "--threads", (char *)threads, "--workers", workers, NULL };
		execv(path, argv);
		dprintf(2, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	for (unsigned i = 0; i <= (their_work ? 0 : num_workers); i++)
		close(theirs[i]);
	h->proc = (struct stls_proc){ .pid = pid };
	return pid;
}

static struct stls_keyop_ctl_reply ctl_call(uint32_t type, uint32_t key_id, const void *der, size_t der_len);

/* The first PING starts the signer threads (starttlsd sends it once the keys are loaded). */
static void go(void)
{
	struct stls_keyop_ctl_reply r = ctl_call(STLS_KEYOP_CTL_PING, 0, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_OK, "PING");
	cr_assert_eq(r.protocol, STLS_KEYOP_PROTOCOL, "the reply names the protocol");
}

static void start(const char *threads, unsigned num_workers)
{
	spawn(&g_helper, threads, num_workers, -1, NULL);
	go();
}

static void stop_helper(void)
{
	struct helper *h = &g_helper;
	if (h->ctl >= 0)
		close(h->ctl);
	for (unsigned i = 0; i < h->num_workers; i++)
		close(h->work[i]);
	h->ctl = -1;
	h->num_workers = 0;
	if (h->proc.pid > 0)
		stls_proc_stop(&h->proc, SIGKILL, 5000);
}

static void setup(void)
{
	stls_tmpdir_make(g_dir, sizeof(g_dir), "keyop");
}

static void teardown(void)
{
	stop_helper();
	stls_tmpdir_remove(g_dir);
}

TestSuite(keyop_tool, .init = setup, .fini = teardown, .timeout = 120);

/* ---- keys, made and checked with BoringSSL ---- */

static EVP_PKEY *make_key(int which)
{
	EVP_PKEY *pkey = NULL;
	switch (which) {
	case EVP_PKEY_RSA: cr_assert_eq(stls_key_generate(&pkey, STLS_KEY_RSA2048), STLS_OK); break;
	case NID_X9_62_prime256v1: cr_assert_eq(stls_key_generate(&pkey, STLS_KEY_ECDSA_P256), STLS_OK); break;
	case NID_secp384r1: cr_assert_eq(stls_key_generate(&pkey, STLS_KEY_ECDSA_P384), STLS_OK); break;
	case NID_secp521r1: {
		EC_KEY *ec = EC_KEY_new_by_curve_name(NID_secp521r1);
		pkey = EVP_PKEY_new();
		cr_assert(ec && pkey && EC_KEY_generate_key(ec) && EVP_PKEY_assign_EC_KEY(pkey, ec));
		break;
	}
	case EVP_PKEY_ED25519: {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
		cr_assert(ctx && EVP_PKEY_keygen_init(ctx) && EVP_PKEY_keygen(ctx, &pkey));
		EVP_PKEY_CTX_free(ctx);
		break;
	}
	default: cr_assert_fail("no such key type %d", which);
	}
	return pkey;
}

/* The key as starttlsd sends it: PKCS#8 DER from EVP_marshal_private_key. Free with OPENSSL_free. */
static uint8_t *marshal(const EVP_PKEY *pkey, size_t *out_len)
{
	CBB cbb;
	uint8_t *der = NULL;
	cr_assert(CBB_init(&cbb, 0));
	cr_assert(EVP_marshal_private_key(&cbb, pkey));
	cr_assert(CBB_finish(&cbb, &der, out_len));
	return der;
}

static const EVP_MD *scheme_md(uint16_t sigalg)
{
	switch (sigalg) {
	case RSA_PKCS1_SHA1:
	case ECDSA_SHA1: return EVP_sha1();
	case RSA_PKCS1_SHA256:
	case RSA_PSS_SHA256:
	case ECDSA_P256_SHA256: return EVP_sha256();
	case RSA_PKCS1_SHA384:
	case RSA_PSS_SHA384:
	case ECDSA_P384_SHA384: return EVP_sha384();
	case RSA_PKCS1_SHA512:
	case RSA_PSS_SHA512:
	case ECDSA_P521_SHA512: return EVP_sha512();
	default: return NULL;
	}
}

/* Checks a signature as a TLS peer would: RSASSA-PSS with MGF1 on the same digest and a salt as
 * long as the digest (RFC 8446 4.2.3), ECDSA as DER, Ed25519 over the message itself. */
static bool verify(EVP_PKEY *pkey, uint16_t sigalg, const uint8_t *sig, size_t sig_len, const uint8_t *in,
		   size_t in_len)
{
	EVP_MD_CTX ctx;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX_init(&ctx);
	bool ok = EVP_DigestVerifyInit(&ctx, &pctx, scheme_md(sigalg), NULL, pkey);
	if (ok && (sigalg == RSA_PSS_SHA256 || sigalg == RSA_PSS_SHA384 || sigalg == RSA_PSS_SHA512))
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1 /* the digest's length, exactly */);
	ok = ok && EVP_DigestVerify(&ctx, sig, sig_len, in, in_len);
	EVP_MD_CTX_cleanup(&ctx);
	return ok;
}

static void fill_message(uint8_t *msg, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		msg[i] = (uint8_t)((seed * 131 + i * 7) >> (i % 3));
}

/* ---- the channels ---- */

static bool wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	return poll(&p, 1, WAIT_MS) == 1;
}

static void send_raw(int fd, const void *buf, size_t len)
{
	cr_assert(wait_fd(fd, POLLOUT), "the channel stays full");
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
	cr_assert_eq(n, (ssize_t)len, "send: %s", n < 0 ? strerror(errno) : "short");
}

static struct stls_keyop_ctl_reply ctl_recv(void)
{
	struct stls_keyop_ctl_reply r;
	cr_assert(wait_fd(g_helper.ctl, POLLIN), "no control reply within %d ms", WAIT_MS);
	ssize_t n = recv(g_helper.ctl, &r, sizeof(r), MSG_TRUNC);
	cr_assert_eq(n, (ssize_t)sizeof(r), "control reply of %zd bytes", n);
	cr_assert_eq(memchr(r.why, '\0', sizeof(r.why)) != NULL, true, "why is NUL-terminated");
	return r;
}

static struct stls_keyop_ctl_reply ctl_call(uint32_t type, uint32_t key_id, const void *der, size_t der_len)
{
	uint8_t buf[sizeof(struct stls_keyop_ctl) + STLS_KEYOP_MAX_KEY_DER];
	struct stls_keyop_ctl ctl = { .type = type, .key_id = key_id, .der_len = (uint32_t)der_len };
	cr_assert_leq(der_len, STLS_KEYOP_MAX_KEY_DER);
	memcpy(buf, &ctl, sizeof(ctl));
	if (der_len)
		memcpy(buf + sizeof(ctl), der, der_len);
	send_raw(g_helper.ctl, buf, sizeof(ctl) + der_len);
	struct stls_keyop_ctl_reply r = ctl_recv();
	cr_assert_eq(r.type, type, "the reply names the request's type");
	cr_assert_eq(r.key_id, key_id, "the reply names the request's key");
	return r;
}

static void load(uint32_t key_id, const EVP_PKEY *pkey)
{
	size_t der_len;
	uint8_t *der = marshal(pkey, &der_len);
	struct stls_keyop_ctl_reply r = ctl_call(STLS_KEYOP_CTL_LOAD, key_id, der, der_len);
	cr_assert_eq(r.status, STLS_KEYOP_OK, "LOAD %u: status %u: %s", key_id, r.status, r.why);
	OPENSSL_free(der);
}

static void send_request(int fd, uint64_t token, uint32_t key_id, uint16_t sigalg, const uint8_t *in, size_t in_len)
{
	uint8_t buf[sizeof(struct stls_keyop_req) + STLS_KEYOP_MAX_INPUT];
	struct stls_keyop_req req = { .token = token, .key_id = key_id, .sigalg = sigalg, .in_len = (uint16_t)in_len };
	memcpy(buf, &req, sizeof(req));
	memcpy(buf + sizeof(req), in, in_len);
	send_raw(fd, buf, sizeof(req) + in_len);
}

/* Receives one reply (waits at most WAIT_MS) and checks its sizes add up. */
static void recv_reply(int fd, struct reply *out)
{
	uint8_t buf[sizeof(struct stls_keyop_resp) + STLS_KEYOP_MAX_SIG + 1];
	struct stls_keyop_resp resp;
	cr_assert(wait_fd(fd, POLLIN), "no signing reply within %d ms", WAIT_MS);
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	cr_assert_geq(n, (ssize_t)sizeof(resp), "reply of %zd bytes", n);
	memcpy(&resp, buf, sizeof(resp));
	cr_assert_eq((size_t)n, sizeof(resp) + resp.sig_len, "the reply's size is the header and sig_len");
	cr_assert_eq(resp.reserved, 0);
	if (resp.status != STLS_KEYOP_OK)
		cr_assert_eq(resp.sig_len, 0, "only a signature comes with bytes");
	out->token = resp.token;
	out->status = resp.status;
	out->sig_len = resp.sig_len;
	memcpy(out->sig, buf + sizeof(resp), resp.sig_len);
}

static struct reply sign_call(int fd, uint64_t token, uint32_t key_id, uint16_t sigalg, const uint8_t *in,
			      size_t in_len)
{
	struct reply r;
	send_request(fd, token, key_id, sigalg, in, in_len);
	recv_reply(fd, &r);
	cr_assert_eq(r.token, token, "the reply carries the request's token");
	return r;
}

static void assert_signs(int fd, EVP_PKEY *pkey, uint32_t key_id, uint16_t sigalg)
{
	uint8_t msg[MSG_LEN];
	fill_message(msg, sizeof(msg), sigalg);
	struct reply r = sign_call(fd, 0x5151000000000000ull | sigalg, key_id, sigalg, msg, sizeof(msg));
	cr_assert_eq(r.status, STLS_KEYOP_OK, "scheme %#06x, key %u: status %u", sigalg, key_id, r.status);
	cr_assert(verify(pkey, sigalg, r.sig, r.sig_len, msg, sizeof(msg)),
		  "scheme %#06x: BoringSSL does not accept the signature", sigalg);
	msg[0] ^= 1;
	cr_assert(!verify(pkey, sigalg, r.sig, r.sig_len, msg, sizeof(msg)), "scheme %#06x: it signs the message",
		  sigalg);
}

static uint16_t status_of(int fd, uint32_t key_id, uint16_t sigalg)
{
	uint8_t msg[MSG_LEN];
	fill_message(msg, sizeof(msg), 7);
	return sign_call(fd, 77, key_id, sigalg, msg, sizeof(msg)).status;
}

/* ---- signing ---- */

Test(keyop_tool, signs_every_scheme_so_that_boringssl_accepts_it)
{
	start("2", 2);
	EVP_PKEY *rsa = make_key(EVP_PKEY_RSA), *p256 = make_key(NID_X9_62_prime256v1);
	EVP_PKEY *p384 = make_key(NID_secp384r1), *p521 = make_key(NID_secp521r1), *ed = make_key(EVP_PKEY_ED25519);
	load(1, rsa);
	load(2, p256);
	load(3, p384);
	load(4, p521);
	load(5, ed);
	static const uint16_t rsa_schemes[] = { RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512,
						RSA_PSS_SHA256,	  RSA_PSS_SHA384,   RSA_PSS_SHA512 };
	for (unsigned ch = 0; ch < 2; ch++) {
		int fd = g_helper.work[ch];
		for (size_t i = 0; i < sizeof(rsa_schemes) / sizeof(rsa_schemes[0]); i++)
			assert_signs(fd, rsa, 1, rsa_schemes[i]);
		assert_signs(fd, p256, 2, ECDSA_P256_SHA256);
		assert_signs(fd, p384, 3, ECDSA_P384_SHA384);
		assert_signs(fd, p521, 4, ECDSA_P521_SHA512);
		assert_signs(fd, ed, 5, ED25519);
	}
	/* The same context serves again: a second RSA-PSS signature, with a fresh salt. */
	uint8_t msg[MSG_LEN];
	fill_message(msg, sizeof(msg), 1);
	struct reply a = sign_call(g_helper.work[0], 1, 1, RSA_PSS_SHA256, msg, sizeof(msg));
	struct reply b = sign_call(g_helper.work[0], 2, 1, RSA_PSS_SHA256, msg, sizeof(msg));
	cr_assert(a.status == STLS_KEYOP_OK && b.status == STLS_KEYOP_OK);
	cr_assert(a.sig_len == 256 && b.sig_len == 256 && memcmp(a.sig, b.sig, 256) != 0, "PSS salts are random");
	cr_assert(verify(rsa, RSA_PSS_SHA256, b.sig, b.sig_len, msg, sizeof(msg)));
	/* Empty and largest messages. */
	struct reply e = sign_call(g_helper.work[1], 3, 2, ECDSA_P256_SHA256, msg, 0);
	cr_assert_eq(e.status, STLS_KEYOP_OK);
	cr_assert(verify(p256, ECDSA_P256_SHA256, e.sig, e.sig_len, msg, 0));
	static uint8_t big[STLS_KEYOP_MAX_INPUT];
	fill_message(big, sizeof(big), 9);
	struct reply g = sign_call(g_helper.work[1], 4, 5, ED25519, big, sizeof(big));
	cr_assert_eq(g.status, STLS_KEYOP_OK);
	cr_assert(verify(ed, ED25519, g.sig, g.sig_len, big, sizeof(big)));
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(p521);
	EVP_PKEY_free(ed);
}

/* A worker queues requests faster than they are signed: all are answered, each once, with its
 * token, on the channel it came from. The test keeps sending while it can and reads as replies
 * come, as a worker does: a socket pair holds only so many records. */
Test(keyop_tool, answers_every_request_queued_on_both_channels)
{
	start("2", 2);
	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1), *ed = make_key(EVP_PKEY_ED25519);
	EVP_PKEY *rsa = make_key(EVP_PKEY_RSA);
	load(10, p256);
	load(11, ed);
	load(12, rsa);
	static bool answered[2][QUEUED];
	unsigned sent[2] = { 0 }, got[2] = { 0 }, most_waiting = 0;
	uint64_t end = stls_proc_now_ms() + 60000;
	while (got[0] + got[1] < 2 * QUEUED) {
		cr_assert_lt(stls_proc_now_ms(), end, "%u and %u of %u answered after 60 s", got[0], got[1], QUEUED);
		struct pollfd p[2];
		for (unsigned ch = 0; ch < 2; ch++)
			p[ch] = (struct pollfd){ .fd = g_helper.work[ch],
						 .events = (short)(POLLIN | (sent[ch] < QUEUED ? POLLOUT : 0)) };
		cr_assert_gt(poll(p, 2, WAIT_MS), 0, "no progress within %d ms", WAIT_MS);
		for (unsigned ch = 0; ch < 2; ch++) {
			int fd = g_helper.work[ch];
			/* Everything the socket takes now, so that many requests wait at once. */
			while (sent[ch] < QUEUED) {
				unsigned i = sent[ch];
				uint8_t buf[sizeof(struct stls_keyop_req) + MSG_LEN];
				uint16_t sigalg = i % 50 == 0 ? RSA_PKCS1_SHA256 : i % 2 ? ED25519 : ECDSA_P256_SHA256;
				struct stls_keyop_req req = {
					.token = ((uint64_t)ch << 32) | i,
					.key_id = sigalg == RSA_PKCS1_SHA256 ? 12
						  : sigalg == ED25519	     ? 11
									     : 10,
					.sigalg = sigalg,
					.in_len = MSG_LEN,
				};
				memcpy(buf, &req, sizeof(req));
				fill_message(buf + sizeof(req), MSG_LEN, req.token);
				if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) < 0) {
					cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
					break;
				}
				sent[ch]++;
			}
			if (sent[ch] - got[ch] > most_waiting)
				most_waiting = sent[ch] - got[ch];
			for (;;) {
				struct pollfd in = { .fd = fd, .events = POLLIN };
				if (poll(&in, 1, 0) != 1)
					break;
				struct reply r;
				recv_reply(fd, &r);
				cr_assert_eq(r.token >> 32, ch, "a reply on the channel its request came on");
				unsigned i = (unsigned)(r.token & 0xffffffffu);
				cr_assert_lt(i, sent[ch], "a reply to a request that was sent");
				cr_assert(!answered[ch][i], "request %u on channel %u answered twice", i, ch);
				cr_assert_eq(r.status, STLS_KEYOP_OK, "request %u: status %u", i, r.status);
				uint8_t msg[MSG_LEN];
				fill_message(msg, sizeof(msg), r.token);
				uint16_t sigalg = i % 50 == 0 ? RSA_PKCS1_SHA256 : i % 2 ? ED25519 : ECDSA_P256_SHA256;
				EVP_PKEY *key = sigalg == RSA_PKCS1_SHA256 ? rsa : sigalg == ED25519 ? ed : p256;
				cr_assert(verify(key, sigalg, r.sig, r.sig_len, msg, sizeof(msg)),
					  "request %u on channel %u: the signature does not verify", i, ch);
				answered[ch][i] = true;
				got[ch]++;
			}
		}
	}
	cr_log_info("at most %u requests waited on one channel", most_waiting);
	cr_assert_geq(most_waiting, 100, "only %u requests waited at once", most_waiting);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
}

Test(keyop_tool, refuses_a_scheme_that_does_not_fit_the_key_and_signs_what_tls12_asks)
{
	start("2", 2);
	EVP_PKEY *rsa = make_key(EVP_PKEY_RSA), *p256 = make_key(NID_X9_62_prime256v1),
		 *ed = make_key(EVP_PKEY_ED25519);
	load(1, rsa);
	load(2, p256);
	load(3, ed);
	int fd = g_helper.work[0];
	cr_assert_eq(status_of(fd, 1, ECDSA_P256_SHA256), STLS_KEYOP_BAD_ALG, "ECDSA with an RSA key");
	cr_assert_eq(status_of(fd, 1, ED25519), STLS_KEYOP_BAD_ALG, "Ed25519 with an RSA key");
	cr_assert_eq(status_of(fd, 1, RSA_PKCS1_MD5_SHA1), STLS_KEYOP_BAD_ALG, "TLS 1.0's MD5+SHA-1 is not signed");
	cr_assert_eq(status_of(fd, 1, 0x1234), STLS_KEYOP_BAD_ALG, "a scheme nobody defined");
	cr_assert_eq(status_of(fd, 2, RSA_PSS_SHA256), STLS_KEYOP_BAD_ALG, "RSA-PSS with a P-256 key");
	cr_assert_eq(status_of(fd, 3, ECDSA_P256_SHA256), STLS_KEYOP_BAD_ALG, "ECDSA with an Ed25519 key");
	cr_assert_eq(status_of(fd, 2, RSA_PKCS1_SHA1), STLS_KEYOP_BAD_ALG, "RSA's SHA-1 with a P-256 key");
	/* And the keys still sign with what fits them. */
	assert_signs(fd, rsa, 1, RSA_PSS_SHA256);
	assert_signs(fd, p256, 2, ECDSA_P256_SHA256);
	/* In TLS 1.2 an ECDSA scheme names only the digest, whatever the curve (BoringSSL holds TLS
	 * 1.3 to the curve itself), and a client that sends no signature_algorithms gets SHA-1. */
	assert_signs(fd, p256, 2, ECDSA_P384_SHA384);
	assert_signs(fd, p256, 2, ECDSA_SHA1);
	assert_signs(fd, rsa, 1, RSA_PKCS1_SHA1);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(ed);
}

/* After a DROP the id is unknown; loaded again with another key, the id signs with the new key,
 * not with a context the signer thread kept for the old one. */
Test(keyop_tool, forgets_a_dropped_key)
{
	start("1", 1);
	int fd = g_helper.work[0];
	cr_assert_eq(status_of(fd, 9, ECDSA_P256_SHA256), STLS_KEYOP_UNKNOWN_KEY, "nothing loaded yet");
	EVP_PKEY *old = make_key(NID_X9_62_prime256v1), *new = make_key(NID_X9_62_prime256v1);
	load(9, old);
	assert_signs(fd, old, 9, ECDSA_P256_SHA256);
	struct stls_keyop_ctl_reply r = ctl_call(STLS_KEYOP_CTL_DROP, 9, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_OK, "DROP: %u %s", r.status, r.why);
	cr_assert_eq(status_of(fd, 9, ECDSA_P256_SHA256), STLS_KEYOP_UNKNOWN_KEY, "dropped");
	r = ctl_call(STLS_KEYOP_CTL_DROP, 9, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_UNKNOWN_KEY, "a second DROP finds nothing");
	load(9, new);
	assert_signs(fd, new, 9, ECDSA_P256_SHA256);
	/* Twice more around, without a request in between: the signer frees what it kept. */
	for (int i = 0; i < 2; i++) {
		r = ctl_call(STLS_KEYOP_CTL_DROP, 9, NULL, 0);
		cr_assert_eq(r.status, STLS_KEYOP_OK);
		load(9, i ? new : old);
	}
	assert_signs(fd, new, 9, ECDSA_P256_SHA256);
	EVP_PKEY_free(old);
	EVP_PKEY_free(new);
}

/* DROP and LOAD while both signer threads sign with the key: each request is signed with the key
 * or answered UNKNOWN_KEY, never anything else, and the helper stays up. */
Test(keyop_tool, drops_and_loads_while_signing)
{
	start("2", 2);
	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1);
	load(1, p256);
	enum { ROUNDS = 20, PER_ROUND = 40 };
	uint8_t msg[MSG_LEN];
	fill_message(msg, sizeof(msg), 11);
	unsigned signed_ok = 0, unknown = 0;
	for (unsigned round = 0; round < ROUNDS; round++) {
		for (unsigned i = 0; i < PER_ROUND; i++)
			for (unsigned ch = 0; ch < 2; ch++)
				send_request(g_helper.work[ch], i, 1, ECDSA_P256_SHA256, msg, sizeof(msg));
		struct stls_keyop_ctl_reply r = ctl_call(STLS_KEYOP_CTL_DROP, 1, NULL, 0);
		cr_assert_eq(r.status, STLS_KEYOP_OK);
		load(1, p256);
		for (unsigned i = 0; i < PER_ROUND; i++) {
			for (unsigned ch = 0; ch < 2; ch++) {
				struct reply rep;
				recv_reply(g_helper.work[ch], &rep);
				cr_assert_eq(rep.token, i, "replies in order on one channel of one thread");
				if (rep.status == STLS_KEYOP_UNKNOWN_KEY) {
					unknown++;
					continue;
				}
				cr_assert_eq(rep.status, STLS_KEYOP_OK, "status %u", rep.status);
				cr_assert(verify(p256, ECDSA_P256_SHA256, rep.sig, rep.sig_len, msg, sizeof(msg)));
				signed_ok++;
			}
		}
	}
	cr_log_info("%u signed, %u found no key", signed_ok, unknown);
	cr_assert_gt(signed_ok, 0);
	EVP_PKEY_free(p256);
}

/* ---- what a channel may carry that is wrong ---- */

Test(keyop_tool, answers_malformed_requests_and_drops_what_has_no_token)
{
	start("1", 1);
	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1);
	load(1, p256);
	int fd = g_helper.work[0];
	uint8_t buf[sizeof(struct stls_keyop_req) + STLS_KEYOP_MAX_INPUT + 64] = { 0 };
	struct stls_keyop_req req = { .token = 41, .key_id = 1, .sigalg = ECDSA_P256_SHA256, .in_len = 100 };
	struct reply r;

	/* The header says 100 bytes follow, 50 do. */
	memcpy(buf, &req, sizeof(req));
	send_raw(fd, buf, sizeof(req) + 50);
	recv_reply(fd, &r);
	cr_assert(r.token == 41 && r.status == STLS_KEYOP_MALFORMED, "short: token %llu status %u",
		  (unsigned long long)r.token, r.status);
	/* 150 follow. */
	req.token = 42;
	memcpy(buf, &req, sizeof(req));
	send_raw(fd, buf, sizeof(req) + 150);
	recv_reply(fd, &r);
	cr_assert(r.token == 42 && r.status == STLS_KEYOP_MALFORMED);
	/* More than the largest input, saying so, and a record longer than any request. */
	req = (struct stls_keyop_req){ .token = 43, .key_id = 1, .sigalg = ECDSA_P256_SHA256, .in_len = 5000 };
	memcpy(buf, &req, sizeof(req));
	send_raw(fd, buf, sizeof(buf));
	recv_reply(fd, &r);
	cr_assert(r.token == 43 && r.status == STLS_KEYOP_MALFORMED);
	/* Part of a header: the token is there, the rest is not. */
	req.token = 44;
	memcpy(buf, &req, sizeof(req));
	send_raw(fd, buf, sizeof(req.token) + 2);
	recv_reply(fd, &r);
	cr_assert(r.token == 44 && r.status == STLS_KEYOP_MALFORMED);
	/* Not even a token, and a record of no bytes: nothing to answer. The next request is. */
	send_raw(fd, buf, 4);
	send_raw(fd, buf, 0);
	uint8_t msg[MSG_LEN];
	fill_message(msg, sizeof(msg), 3);
	struct reply ok = sign_call(fd, 45, 1, ECDSA_P256_SHA256, msg, sizeof(msg));
	cr_assert_eq(ok.status, STLS_KEYOP_OK, "the channel still serves");
	cr_assert(verify(p256, ECDSA_P256_SHA256, ok.sig, ok.sig_len, msg, sizeof(msg)));
	EVP_PKEY_free(p256);
}

Test(keyop_tool, control_refuses_what_it_cannot_load)
{
	start("1", 1);
	struct stls_keyop_ctl_reply r = ctl_call(STLS_KEYOP_CTL_PING, 0, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_OK, "PING");

	static const uint8_t garbage[] = "-----BEGIN PRIVATE KEY-----";
	r = ctl_call(STLS_KEYOP_CTL_LOAD, 1, garbage, sizeof(garbage));
	cr_assert_eq(r.status, STLS_KEYOP_FAILED);
	cr_assert(strstr(r.why, "not a private key"), "why: %s", r.why);

	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1);
	size_t der_len;
	uint8_t *der = marshal(p256, &der_len);
	uint8_t longer[1024];
	cr_assert_lt(der_len + 1, sizeof(longer));
	memcpy(longer, der, der_len);
	longer[der_len] = 0;
	r = ctl_call(STLS_KEYOP_CTL_LOAD, 1, longer, der_len + 1);
	cr_assert_eq(r.status, STLS_KEYOP_FAILED, "a byte after the key");
	cr_assert(strstr(r.why, "not a private key"), "why: %s", r.why);
	r = ctl_call(STLS_KEYOP_CTL_LOAD, 1, der, der_len - 1);
	cr_assert_eq(r.status, STLS_KEYOP_FAILED, "a byte short");

	CBB cbb;
	uint8_t *pub;
	size_t pub_len;
	cr_assert(CBB_init(&cbb, 0) && EVP_marshal_public_key(&cbb, p256) && CBB_finish(&cbb, &pub, &pub_len));
	r = ctl_call(STLS_KEYOP_CTL_LOAD, 1, pub, pub_len);
	cr_assert_eq(r.status, STLS_KEYOP_FAILED, "a public key");
	cr_assert(strstr(r.why, "not a private key"), "why: %s", r.why);
	OPENSSL_free(pub);

	/* The table: one id once, STLS_KEYOP_MAX_KEYS keys at most. */
	load(1, p256);
	r = ctl_call(STLS_KEYOP_CTL_LOAD, 1, der, der_len);
	cr_assert_eq(r.status, STLS_KEYOP_FAILED);
	cr_assert_str_eq(r.why, "key id already loaded");
	for (uint32_t id = 2; id <= STLS_KEYOP_MAX_KEYS; id++)
		load(id, p256);
	r = ctl_call(STLS_KEYOP_CTL_LOAD, 1000, der, der_len);
	cr_assert_eq(r.status, STLS_KEYOP_FAILED);
	cr_assert_str_eq(r.why, "table full (64 keys)");
	r = ctl_call(STLS_KEYOP_CTL_DROP, 30, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_OK);
	load(1000, p256);
	assert_signs(g_helper.work[0], p256, 1000, ECDSA_P256_SHA256);
	OPENSSL_free(der);
	EVP_PKEY_free(p256);
}

Test(keyop_tool, control_answers_malformed_messages)
{
	start("1", 1);
	uint8_t buf[sizeof(struct stls_keyop_ctl) + 64] = { 0 };
	struct stls_keyop_ctl ctl = { .type = STLS_KEYOP_CTL_LOAD, .key_id = 5, .der_len = 40 };
	memcpy(buf, &ctl, sizeof(ctl));
	send_raw(g_helper.ctl, buf, sizeof(ctl) + 20);
	struct stls_keyop_ctl_reply r = ctl_recv();
	cr_assert(r.status == STLS_KEYOP_MALFORMED && r.key_id == 5, "a LOAD shorter than it says");

	send_raw(g_helper.ctl, buf, 8);
	r = ctl_recv();
	cr_assert_eq(r.status, STLS_KEYOP_MALFORMED, "part of a header");
	send_raw(g_helper.ctl, buf, 0);
	r = ctl_recv();
	cr_assert_eq(r.status, STLS_KEYOP_MALFORMED, "a record of no bytes");

	r = ctl_call(99, 6, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_MALFORMED, "an unknown type");
	r = ctl_call(STLS_KEYOP_CTL_LOAD, 7, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_MALFORMED, "a LOAD without a key");
	r = ctl_call(STLS_KEYOP_CTL_PING, 8, "x", 1);
	cr_assert_eq(r.status, STLS_KEYOP_MALFORMED, "a PING with key bytes");
	ctl = (struct stls_keyop_ctl){ .type = STLS_KEYOP_CTL_LOAD,
				       .key_id = 9,
				       .der_len = STLS_KEYOP_MAX_KEY_DER + 1 };
	memcpy(buf, &ctl, sizeof(ctl));
	send_raw(g_helper.ctl, buf, sizeof(buf));
	r = ctl_recv();
	cr_assert_eq(r.status, STLS_KEYOP_MALFORMED, "a key larger than any");
	r = ctl_call(STLS_KEYOP_CTL_PING, 10, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_OK, "and the channel still serves");
}

/* ---- the process ---- */

Test(keyop_tool, exits_when_starttlsd_closes_the_control_channel)
{
	start("2", 2);
	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1);
	load(1, p256);
	assert_signs(g_helper.work[1], p256, 1, ECDSA_P256_SHA256);
	close(g_helper.ctl);
	g_helper.ctl = -1;
	int code = stls_proc_wait(&g_helper.proc, WAIT_MS);
	cr_assert_eq(code, 0, "exit code %d (-1: still running after %d ms)", code, WAIT_MS);
	/* It closed the signing channels as it went. */
	uint8_t b[64];
	cr_assert(wait_fd(g_helper.work[0], POLLIN));
	cr_assert_eq(recv(g_helper.work[0], b, sizeof(b), MSG_DONTWAIT), 0);
	EVP_PKEY_free(p256);
}

/* starttlsd keeps the helper's ends of the signing channels and hands them to the process it
 * starts after one ended: the channels must survive the first process's exit, and what was queued
 * meanwhile is answered by the second. */
Test(keyop_tool, a_second_process_takes_over_the_channels)
{
	int work[2][2];
	for (unsigned ch = 0; ch < 2; ch++)
		cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, work[ch]), 0);
	const int theirs[2] = { work[0][1], work[1][1] };
	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1);
	for (unsigned round = 0; round < 2; round++) {
		spawn(&g_helper, "2", 2, -1, theirs);
		g_helper.work[0] = work[0][0];
		g_helper.work[1] = work[1][0];
		load(1, p256);
		go();
		if (round == 1) {
			/* Signing starts only after the PING that follows the keys: the request queued
			 * while no process ran is signed, not refused for a key not loaded yet. */
			struct reply r;
			recv_reply(work[0][0], &r);
			cr_assert_eq(r.token, 99, "the request queued between the processes is answered");
			cr_assert_eq(r.status, STLS_KEYOP_OK, "status %u", r.status);
		}
		for (unsigned ch = 0; ch < 2; ch++)
			assert_signs(work[ch][0], p256, 1, ECDSA_P256_SHA256);
		close(g_helper.ctl);
		g_helper.ctl = -1;
		int code = stls_proc_wait(&g_helper.proc, WAIT_MS);
		cr_assert_eq(code, 0, "exit code %d (-1: still running after %d ms)", code, WAIT_MS);
		uint8_t msg[MSG_LEN];
		fill_message(msg, sizeof(msg), 5);
		if (round == 0)
			send_request(work[0][0], 99, 1, ECDSA_P256_SHA256, msg, sizeof(msg));
	}
	g_helper.num_workers = 0; /* closed here */
	for (unsigned ch = 0; ch < 2; ch++) {
		close(work[ch][0]);
		close(work[ch][1]);
	}
	EVP_PKEY_free(p256);
}

/* One thread serves both channels: when a worker's channel closes, the other is still served. */
Test(keyop_tool, keeps_serving_when_one_worker_channel_closes)
{
	start("1", 2);
	EVP_PKEY *ed = make_key(EVP_PKEY_ED25519);
	load(1, ed);
	close(g_helper.work[0]);
	g_helper.work[0] = g_helper.work[1];
	g_helper.num_workers = 1;
	assert_signs(g_helper.work[0], ed, 1, ED25519);
	struct stls_keyop_ctl_reply r = ctl_call(STLS_KEYOP_CTL_PING, 0, NULL, 0);
	cr_assert_eq(r.status, STLS_KEYOP_OK);
	EVP_PKEY_free(ed);
}

Test(keyop_tool, more_threads_than_workers_are_clamped)
{
	start("256", 3);
	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1);
	load(1, p256);
	for (unsigned ch = 0; ch < 3; ch++)
		assert_signs(g_helper.work[ch], p256, 1, ECDSA_P256_SHA256);
	EVP_PKEY_free(p256);
}

static int run_helper(char *out, size_t out_len, const char *a, const char *b, const char *c, const char *d)
{
	char path[4096];
	stls_proc_build_path("starttls-keyop", path, sizeof(path));
	char *argv[] = { path, (char *)a, (char *)b, (char *)c, (char *)d, NULL };
	return stls_proc_run(argv, NULL, 0, out, out_len, WAIT_MS);
}

Test(keyop_tool, refuses_channels_that_are_not_seqpacket_sockets)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	struct helper h;
	spawn(&h, "1", 1, p[0], NULL);
	g_helper = h;
	int code = stls_proc_wait(&g_helper.proc, WAIT_MS);
	cr_assert_eq(code, 1, "a pipe on fd 3: exit code %d", code);

	int s[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	stop_helper();
	spawn(&h, "1", 1, s[0], NULL);
	g_helper = h;
	code = stls_proc_wait(&g_helper.proc, WAIT_MS);
	cr_assert_eq(code, 1, "a stream socket on fd 3: exit code %d", code);
	close(p[0]);
	close(p[1]);
	close(s[0]);
	close(s[1]);
}

Test(keyop_tool, command_line)
{
	char out[4096];
	cr_assert_eq(run_helper(out, sizeof(out), "--help", NULL, NULL, NULL), 0);
	cr_assert(strstr(out, "--keyop-threads") && strstr(out, "--bench"), "%s", out);
	cr_assert_eq(run_helper(out, sizeof(out), "--version", NULL, NULL, NULL), 0);
	cr_assert_str_eq(out, "starttls-keyop " STLS_VERSION "\n");
	cr_assert_eq(run_helper(out, sizeof(out), "--threads", "0", "--workers", "1"), 2, "%s", out);
	cr_assert(strstr(out, "starttls-keyop: --threads"), "%s", out);
	cr_assert_eq(run_helper(out, sizeof(out), "--threads", "1", "--workers", "1025"), 2, "%s", out);
	cr_assert_eq(run_helper(out, sizeof(out), "--threads", "1x", "--workers", "1"), 2, "%s", out);
	cr_assert_eq(run_helper(out, sizeof(out), "--threads", "1", NULL, NULL), 2, "%s", out);
	cr_assert_eq(run_helper(out, sizeof(out), "--workers", NULL, NULL, NULL), 2, "%s", out);
	cr_assert_eq(run_helper(out, sizeof(out), "--frobnicate", NULL, NULL, NULL), 2, "%s", out);
	cr_assert_eq(run_helper(out, sizeof(out), "--bench", "k.pem", "--threads", "1"), 2, "%s", out);
}

Test(keyop_tool, bench_signs_and_prints_one_line)
{
	char out[4096], path[512], seconds[] = "0.2";
	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1);
	snprintf(path, sizeof(path), "%s/p256.pem", g_dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert(PEM_write_PrivateKey(f, p256, NULL, NULL, 0, NULL, NULL));
	fclose(f);
	cr_assert_eq(run_helper(out, sizeof(out), "--bench", path, "--seconds", seconds), 0, "%s", out);
	char prefix[600];
	snprintf(prefix, sizeof(prefix), "keyop      %s sign ", path);
	cr_assert_eq(strncmp(out, prefix, strlen(prefix)), 0, "%s", out);
	cr_assert(strstr(out, " us  (OpenSSL 3."), "%s", out);
	cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);

	snprintf(path, sizeof(path), "%s/none.pem", g_dir);
	cr_assert_eq(run_helper(out, sizeof(out), "--bench", path, NULL, NULL), 1, "%s", out);
	EVP_PKEY_free(p256);
}

/* Nothing is signed, or refused, before the first PING: a process started after a crash gets its
 * keys first, and only then reads the requests queued for them. */
Test(keyop_tool, signs_nothing_before_the_first_ping)
{
	spawn(&g_helper, "1", 1, -1, NULL);
	int fd = g_helper.work[0];
	uint8_t msg[MSG_LEN];
	fill_message(msg, sizeof(msg), 7);
	send_request(fd, 77, 1, ECDSA_P256_SHA256, msg, sizeof(msg));
	struct pollfd p = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 500), 0, "an answer came before the keys and the PING");
	EVP_PKEY *p256 = make_key(NID_X9_62_prime256v1);
	load(1, p256);
	cr_assert_eq(poll(&p, 1, 300), 0, "an answer came before the PING");
	go();
	struct reply r;
	recv_reply(fd, &r);
	cr_assert_eq(r.token, 77);
	cr_assert_eq(r.status, STLS_KEYOP_OK, "status %u", r.status);
	cr_assert(verify(p256, ECDSA_P256_SHA256, r.sig, r.sig_len, msg, sizeof(msg)));
	EVP_PKEY_free(p256);
}

/* A thread that serves two workers takes their requests in turn: a worker with a long queue does
 * not keep the other's handshake waiting behind all of it. Both queues are in place before the
 * PING; once the second worker's answer is in, the process is stopped and the first worker's
 * answers counted: taken in turn, one or a few (those signed while this test woke); one queue
 * after the other, all of them. */
Test(keyop_tool, a_thread_serving_two_workers_takes_their_requests_in_turn)
{
	spawn(&g_helper, "1", 2, -1, NULL);
	EVP_PKEY *rsa = make_key(EVP_PKEY_RSA);
	load(1, rsa);
	uint8_t msg[MSG_LEN];
	fill_message(msg, sizeof(msg), 1);
	/* As many as the first channel takes. */
	unsigned queued = 0;
	for (;; queued++) {
		uint8_t buf[sizeof(struct stls_keyop_req) + MSG_LEN];
		struct stls_keyop_req req = {
			.token = queued, .key_id = 1, .sigalg = RSA_PSS_SHA256, .in_len = MSG_LEN
		};
		memcpy(buf, &req, sizeof(req));
		memcpy(buf + sizeof(req), msg, MSG_LEN);
		if (send(g_helper.work[0], buf, sizeof(buf), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
			break;
		}
	}
	cr_assert_geq(queued, 20, "the channel took only %u requests", queued);
	send_request(g_helper.work[1], 1000, 1, RSA_PSS_SHA256, msg, sizeof(msg));
	go();
	struct reply r;
	recv_reply(g_helper.work[1], &r);
	cr_assert_eq(kill(g_helper.proc.pid, SIGSTOP), 0);
	cr_assert_eq(r.token, 1000);
	cr_assert_eq(r.status, STLS_KEYOP_OK, "status %u", r.status);
	unsigned before = 0;
	for (struct pollfd p = { .fd = g_helper.work[0], .events = POLLIN }; poll(&p, 1, 0) == 1; before++)
		recv_reply(g_helper.work[0], &r);
	cr_assert_lt(before, queued / 2, "%u of the first worker's %u requests were answered before the second's one",
		     before, queued);
	cr_assert_eq(kill(g_helper.proc.pid, SIGCONT), 0);
	for (unsigned i = before; i < queued; i++) {
		recv_reply(g_helper.work[0], &r);
		cr_assert_eq(r.status, STLS_KEYOP_OK, "status %u", r.status);
	}
	EVP_PKEY_free(rsa);
}
