/* Interop: 1,000 reloads of the outbound tables while sessions run on every worker, with the
 * ThreadSanitizer build of the daemon (build-tsan/starttlsd, which tools/test builds), so a data
 * race between a reload and the workers' lock-free lookups stops the daemon with a report.
 *
 * The reloads alternate between two versions of the policy and routes files, each a thousand
 * domains d0.test ... d999.test plus t.test:
 *
 *	version A: every domain   none       routed to destination A (no STARTTLS)
 *	version B: every domain   required   routed to destination B (STARTTLS)
 *
 * A session that saw one version whole delivers over TLS to B or in clear text to A. A mix shows:
 * A's policy with B's route delivers in clear text to B, B's policy with A's route is deferred
 * (A offers no STARTTLS), and half a table sends a domain somewhere the other half does not. So
 * every transaction must end in 250 and every stored message must have come the right way. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/fixture.h"
#include "tests/support/smtp_client.h"

enum {
	RELOADS = 1000,
	DOMAINS = 1000,
	CLIENTS = 4,
	WORKERS = 4,
	TRANSACTIONS_PER_SESSION = 5,
	RUN_LIMIT_MS = 240000,
};

static struct stls_fixture fx;
static struct stls_proc dest_a, dest_b;
static uint16_t port_a, port_b, out_port;
static char maildir_a[192], maildir_b[192], policy_path[192], routes_path[192];

static uint16_t other_port(void)
{
	for (;;) {
		uint16_t p = stls_proc_free_port();
		if (p && p != fx.backend_port && p != fx.proxy_port && p != port_a && p != port_b && p != out_port)
			return p;
	}
}

/* Writes version (0: A, 1: B) of both files, each by rename so the daemon never reads half a file. */
static void write_version(unsigned version)
{
	static char policy[64 * (DOMAINS + 2)], routes[64 * (DOMAINS + 2)];
	const char *mode = version ? "required" : "none";
	uint16_t port = version ? port_b : port_a;
	size_t pn = 0, rn = 0;
	pn += (size_t)snprintf(policy + pn, sizeof(policy) - pn, "# version %c\nt.test %s\n", 'A' + version, mode);
	rn += (size_t)snprintf(routes + rn, sizeof(routes) - rn, "# version %c\nt.test 127.0.0.1:%u\n", 'A' + version,
			       port);
	for (unsigned i = 0; i < DOMAINS; i++) {
		pn += (size_t)snprintf(policy + pn, sizeof(policy) - pn, "d%u.test %s\n", i, mode);
		rn += (size_t)snprintf(routes + rn, sizeof(routes) - rn, "d%u.test 127.0.0.1:%u\n", i, port);
	}
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s.new", policy_path);
	cr_assert(stls_proc_write_file(tmp, policy, pn) && rename(tmp, policy_path) == 0);
	snprintf(tmp, sizeof(tmp), "%s.new", routes_path);
	cr_assert(stls_proc_write_file(tmp, routes, rn) && rename(tmp, routes_path) == 0);
}

static void setup(void)
{
	char daemon[256], listen[64], log[256], cert[320], key[320], chain[320], pki[192], out[4096];
	cr_assert(stls_fixture_init(&fx, "reload"));
	stls_proc_repo_path("build-tsan/starttlsd", daemon, sizeof(daemon));
	cr_assert(access(daemon, X_OK) == 0,
		  "%s is missing: this test runs the ThreadSanitizer build of the daemon (python3 configure.py "
		  "--sanitize=thread && ninja -f build-tsan/build.ninja build-tsan/starttlsd; tools/test does this)",
		  daemon);
	snprintf(fx.daemon, sizeof(fx.daemon), "%s", daemon);
	/* The first race ends the daemon with its report, which cleanup finds in its output. */
	setenv("TSAN_OPTIONS", "halt_on_error=1:second_deadlock_stack=1", 1);

	snprintf(pki, sizeof(pki), "%s/pki", fx.dir);
	char script[512];
	stls_proc_repo_path("tests/support/make-pki", script, sizeof(script));
	char *pki_argv[] = { "bash", script, pki, "b.dest.test", NULL };
	cr_assert_eq(stls_proc_run(pki_argv, NULL, 0, out, sizeof(out), 60000), 0, "make-pki: %s", out);

	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
	port_a = other_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port_a);
	snprintf(maildir_a, sizeof(maildir_a), "%s/dest-a", fx.dir);
	snprintf(log, sizeof(log), "%s/dest-a.log", fx.dir);
	cr_assert(stls_demo_start(&dest_a, listen, maildir_a, log, NULL), "destination A did not start");
	port_b = other_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port_b);
	snprintf(maildir_b, sizeof(maildir_b), "%s/dest-b", fx.dir);
	snprintf(log, sizeof(log), "%s/dest-b.log", fx.dir);
	snprintf(cert, sizeof(cert), "%s/leaf-ec.pem", pki);
	snprintf(key, sizeof(key), "%s/leaf-ec.key", pki);
	snprintf(chain, sizeof(chain), "%s/int.pem", pki);
	const char *const tls[] = { "--tls-cert", cert, "--tls-key", key, "--tls-chain", chain, NULL };
	cr_assert(stls_demo_start(&dest_b, listen, maildir_b, log, tls), "destination B did not start");

	snprintf(policy_path, sizeof(policy_path), "%s/dest-policy", fx.dir);
	snprintf(routes_path, sizeof(routes_path), "%s/routes", fx.dir);
	write_version(0);
	out_port = other_port();
	char out_listen[64], ca[320], workers[16];
	snprintf(out_listen, sizeof(out_listen), "127.0.0.1:%u", out_port);
	snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
	snprintf(workers, sizeof(workers), "%u", WORKERS);
	const char *const extra[] = {
		"--outbound-listen", out_listen, "--dest-policy", policy_path, "--routes", routes_path,
		"--ca-file",	     ca,	 "--workers",	  workers,     NULL
	};
	cr_assert(stls_fixture_start_proxy(&fx, extra), "starttlsd (ThreadSanitizer build) did not start (see %s)",
		  fx.proxy_out);
	cr_assert(stls_proc_wait_port(out_port, 10000));

	/* It is the sanitizer build that runs. */
	char maps[64];
	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)fx.proxy.pid);
	char *text = stls_proc_read_file(maps, NULL);
	cr_assert(text && strstr(text, "libtsan"), "the daemon under test is not the ThreadSanitizer build");
	free(text);
}

static void teardown(void)
{
	stls_proc_stop(&dest_a, SIGTERM, 5000);
	stls_proc_stop(&dest_b, SIGTERM, 5000);
	int code = stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "starttlsd (ThreadSanitizer build) did not exit cleanly (%d); -2: a sanitizer report",
		     code);
}

TestSuite(outbound_reload, .init = setup, .fini = teardown, .timeout = 300);

/* What the client threads share. */
static atomic_bool stop;
static atomic_uint transactions;
static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;
static char failure[512];

static void fail_once(const char *what, const char *reply)
{
	pthread_mutex_lock(&failure_lock);
	if (!failure[0])
		snprintf(failure, sizeof(failure), "%s: %.400s", what, reply);
	pthread_mutex_unlock(&failure_lock);
	atomic_store(&stop, true);
}

static const char body[] = "Subject: reload\r\n\r\nbody\r\n.\r\n";

/* One transaction to rcpt; false (with the failure noted) unless every reply was the expected one. */
static bool transaction(struct stls_smtp_client *c, const char *rcpt)
{
	char line[128];
	snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", rcpt);
	struct {
		const char *send;
		int code;
	} steps[] = {
		{ "MAIL FROM:<legacy@legacy.test>\r\n", 250 }, { line, 250 }, { "DATA\r\n", 354 }, { body, 250 }
	};
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (!stls_smtp_client_sends(c, steps[i].send) || stls_smtp_client_reply(c) != steps[i].code) {
			fail_once(steps[i].send, c->last[0] ? c->last : "(no reply)");
			return false;
		}
	}
	atomic_fetch_add(&transactions, 1);
	return true;
}

static bool session_start(struct stls_smtp_client *c)
{
	if (!stls_smtp_client_connect(c, out_port, 30000) || stls_smtp_client_reply(c) != 220 ||
	    !stls_smtp_client_sends(c, "EHLO legacy.test\r\n") || stls_smtp_client_reply(c) != 250) {
		fail_once("session start", c->last);
		stls_smtp_client_close(c);
		return false;
	}
	return true;
}

static void *client(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	uint64_t end = stls_proc_now_ms() + RUN_LIMIT_MS;
	while (!atomic_load(&stop) && stls_proc_now_ms() < end) {
		struct stls_smtp_client c;
		if (!session_start(&c))
			break;
		for (unsigned t = 0; t < TRANSACTIONS_PER_SESSION && !atomic_load(&stop); t++) {
			char rcpt[64];
			snprintf(rcpt, sizeof(rcpt), "user@d%u.test", rand_r(&seed) % DOMAINS);
			if (!transaction(&c, rcpt))
				break;
			/* Paced: sessions on every worker all along, without starving the reloads. */
			stls_proc_sleep_ms(10);
		}
		stls_smtp_client_sends(&c, "QUIT\r\n");
		stls_smtp_client_close(&c);
	}
	return NULL;
}

/* Counts the reload lines the log has gained since *offset (reading only what is new: the log
 * grows by megabytes during the run). */
static unsigned reloads_logged(size_t *offset)
{
	static const char done[] = "outbound relay: ";
	static char chunk[1 << 20];
	int fd = open(fx.proxy_log, O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 ? pread(fd, chunk, sizeof(chunk) - 1, (off_t)*offset) : -1;
	if (fd >= 0)
		close(fd);
	if (len <= 0)
		return 0;
	chunk[len] = '\0';
	unsigned n = 0;
	const char *p = chunk, *last = NULL;
	while ((p = strstr(p, done))) {
		n++;
		p += sizeof(done) - 1;
		last = p;
	}
	/* Past the last line counted; a line cut short at the end is read again next time. */
	if (last)
		*offset += (size_t)(last - chunk);
	else if ((size_t)len > sizeof(done))
		*offset += (size_t)len - sizeof(done);
	return n;
}

/* The maildir's message for rcpt, as its envelope; NULL if there is none. */
static char *find_envelope(const char *maildir, const char *rcpt)
{
	unsigned n = stls_maildir_count(maildir);
	for (unsigned i = 0; i < n; i++) {
		char *env = stls_maildir_message(maildir, i, true, NULL);
		if (env && strstr(env, rcpt))
			return env;
		free(env);
	}
	return NULL;
}

Test(outbound_reload, thousand_reloads_never_mix_tables)
{
	size_t offset = 0;
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "outbound relay: ", 10000));
	cr_assert_eq(reloads_logged(&offset), 1, "the start-up line");

	pthread_t threads[CLIENTS];
	for (unsigned i = 0; i < CLIENTS; i++)
		cr_assert_eq(pthread_create(&threads[i], NULL, client, (void *)(uintptr_t)(i + 1)), 0);

	/* Probes: one transaction to t.test right after chosen reloads, whose destination and TLS are
	 * then known exactly. */
	static const unsigned probes[] = { 1, 2, 500, 501, RELOADS - 1, RELOADS };
	unsigned next_probe = 0;
	uint64_t end = stls_proc_now_ms() + RUN_LIMIT_MS;
	for (unsigned i = 1; i <= RELOADS && !atomic_load(&stop); i++) {
		write_version(i % 2);
		cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
		unsigned seen = 0;
		uint64_t reload_end = stls_proc_now_ms() + 20000;
		while (seen == 0 && stls_proc_now_ms() < reload_end && !atomic_load(&stop)) {
			seen = reloads_logged(&offset);
			if (seen)
				break;
			if (stls_proc_wait(&fx.proxy, 0) != -1)
				break; /* it ended: the report is in its output */
			stls_proc_sleep_ms(1);
		}
		if (atomic_load(&stop))
			break;
		cr_assert_eq(seen, 1, "reload %u: %u reload lines (the daemon died or a signal was lost?)", i, seen);
		cr_assert_lt(stls_proc_now_ms(), end, "out of time after %u reloads", i);
		if (next_probe < sizeof(probes) / sizeof(probes[0]) && probes[next_probe] == i) {
			struct stls_smtp_client c;
			char rcpt[64];
			snprintf(rcpt, sizeof(rcpt), "probe-%u@t.test", i);
			if (session_start(&c)) {
				transaction(&c, rcpt);
				stls_smtp_client_close(&c);
			}
			next_probe++;
		}
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < CLIENTS; i++)
		pthread_join(threads[i], NULL);
	cr_assert(!failure[0], "a transaction failed (a mix of tables, or the daemon stopped): %s", failure);
	cr_assert_eq(next_probe, sizeof(probes) / sizeof(probes[0]));

	/* The probes went exactly where their version sends them. */
	for (unsigned p = 0; p < sizeof(probes) / sizeof(probes[0]); p++) {
		char rcpt[64];
		bool b = probes[p] % 2;
		snprintf(rcpt, sizeof(rcpt), "\"probe-%u@t.test\"", probes[p]);
		char *env = find_envelope(b ? maildir_b : maildir_a, rcpt);
		cr_assert_not_null(env, "probe after reload %u is not at destination %c", probes[p], b ? 'B' : 'A');
		cr_assert(b ? !strstr(env, "\"tls\": null") : strstr(env, "\"tls\": null") != NULL,
			  "probe after reload %u: %s", probes[p], env);
		free(env);
	}

	/* Every message came the way one whole version sends it. */
	unsigned na = stls_maildir_count(maildir_a), nb = stls_maildir_count(maildir_b);
	for (unsigned i = 0; i < na; i++) {
		char *env = stls_maildir_message(maildir_a, i, true, NULL);
		cr_assert(env && strstr(env, "\"tls\": null"), "a message over TLS at A: %s", env);
		free(env);
	}
	for (unsigned i = 0; i < nb; i++) {
		char *env = stls_maildir_message(maildir_b, i, true, NULL);
		cr_assert(env && strstr(env, "\"tls\": {"), "a message in clear text at B: %s", env);
		free(env);
	}
	cr_assert_eq(na + nb, atomic_load(&transactions), "%u transactions, %u + %u messages stored",
		     atomic_load(&transactions), na, nb);
	cr_log_info("%u reloads, %u transactions (%u to A, %u to B) during them", RELOADS, atomic_load(&transactions),
		    na, nb);
}
