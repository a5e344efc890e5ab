/* Interop under load: many sessions open at once over two workers, every one relayed intact and
 * logged with IDs of its own. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"

enum { NUM_SESSIONS = 200 };

static struct stls_fixture fx;

static void setup(void)
{
	/* Above NUM_SESSIONS with room to spare: the limit is shared evenly by the workers, and the
	 * kernel need not spread the connections evenly. */
	static const char *const proxy_args[] = { "--max-sessions", "1000", NULL };
	cr_assert(stls_fixture_init(&fx, "load"));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
	cr_assert(stls_fixture_start_proxy(&fx, proxy_args), "starttlsd did not start (see %s)", fx.proxy_out);
}

static void teardown(void)
{
	stls_fixture_cleanup(&fx);
}

TestSuite(load, .init = setup, .fini = teardown, .timeout = 120);

/* Message i: its number in the subject, the body and the Message-ID, a length that differs from
 * its neighbours', and on every third one a line that needs dot-stuffing, so that bytes of two
 * sessions mixed up or cut short do not go unnoticed. */
static int make_message(char *out, size_t out_len, unsigned i)
{
	int n = snprintf(out, out_len,
			 "Date: Tue, 03 Nov 2026 10:00:00 +0000\r\n"
			 "Message-ID: <load-%03u@load.test>\r\n"
			 "From: <sender-%03u@load.test>\r\n"
			 "To: <rcpt-%03u@load.test>\r\n"
			 "Subject: load message %03u\r\n"
			 "\r\n"
			 "marker load-%03u\r\n",
			 i, i, i, i, i);
	for (unsigned k = 0; k < i % 7; k++)
		n += snprintf(out + n, out_len - (size_t)n, "line %u of message %03u\r\n", k, i);
	if (i % 3 == 0)
		n += snprintf(out + n, out_len - (size_t)n, ".dot line of message %03u\r\n", i);
	return n;
}

static int cmp_ull(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
	return (x > y) - (x < y);
}

/* How many distinct values the first n of v hold (sorts v). */
static unsigned num_distinct(unsigned long long *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_ull);
	unsigned d = 0;
	for (unsigned i = 0; i < n; i++)
		if (i == 0 || v[i] != v[i - 1])
			d++;
	return d;
}

/* The number after prefix in line, or false. */
static bool number_after(const char *line, const char *prefix, unsigned long long *out)
{
	const char *p = strstr(line, prefix);
	if (!p)
		return false;
	char *end;
	p += strlen(prefix);
	*out = strtoull(p, &end, 10);
	return end != p;
}

Test(load, concurrent_sessions_over_two_workers_all_complete)
{
	static char expected[NUM_SESSIONS][512];
	static size_t expected_len[NUM_SESSIONS];
	char sentdir[256], path[320];
	snprintf(sentdir, sizeof(sentdir), "%s/sent", fx.dir);
	cr_assert(mkdir(sentdir, 0755) == 0);
	for (unsigned i = 0; i < NUM_SESSIONS; i++) {
		expected_len[i] = (size_t)make_message(expected[i], sizeof(expected[i]), i);
		cr_assert_lt(expected_len[i], sizeof(expected[i]));
		snprintf(path, sizeof(path), "%s/%03u.eml", sentdir, i);
		cr_assert(stls_proc_write_file(path, expected[i], expected_len[i]));
	}

	char script[512], port[16], out[65536];
	stls_proc_repo_path("tests/interop/scripts/concurrent.py", script, sizeof(script));
	snprintf(port, sizeof(port), "%u", fx.proxy_port);
	char *argv[] = { "python3", script, "--port", port, "--messages", sentdir, "--timeout", "20", NULL };
	uint64_t t0 = stls_proc_now_ms();
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 100000);
	cr_assert_eq(code, 0, "concurrent.py failed (exit %d):\n%s", code, out);
	out[strcspn(out, "\n")] = '\0';
	cr_log_info("concurrent.py: %s (%llu ms with start-up)", out, (unsigned long long)(stls_proc_now_ms() - t0));
	char open_line[64];
	snprintf(open_line, sizeof(open_line), "%u sessions, %u open at once, 0 failures", NUM_SESSIONS, NUM_SESSIONS);
	cr_assert(strstr(out, open_line), "concurrent.py: %s", out);

	/* Exactly one stored copy of each message, unchanged, with its own envelope. */
	cr_assert(stls_fixture_wait_messages(&fx, NUM_SESSIONS, 10000), "stored %u messages of %u",
		  stls_fixture_num_messages(&fx), NUM_SESSIONS);
	cr_assert_eq(stls_fixture_num_messages(&fx), NUM_SESSIONS);
	static bool seen[NUM_SESSIONS];
	for (unsigned k = 0; k < NUM_SESSIONS; k++) {
		size_t len;
		char *stored = stls_fixture_message(&fx, k, false, &len);
		cr_assert_not_null(stored);
		unsigned long long i;
		cr_assert(number_after(stored, "\r\nSubject: load message ", &i), "stored message %u:\n%s", k, stored);
		cr_assert_lt(i, NUM_SESSIONS);
		cr_assert(!seen[i], "message %03llu stored twice", i);
		seen[i] = true;
		cr_assert_eq(len, expected_len[i], "message %03llu: stored %zu bytes, sent %zu:\n%s", i, len,
			     expected_len[i], stored);
		cr_assert(memcmp(stored, expected[i], len) == 0, "message %03llu differs from what was sent:\n%s", i,
			  stored);
		free(stored);
		char *env = stls_fixture_message(&fx, k, true, NULL);
		char from[64], to[64];
		snprintf(from, sizeof(from), "\"mail_from\": \"sender-%03llu@load.test\"", i);
		snprintf(to, sizeof(to), "\"rcpt-%03llu@load.test\"", i);
		cr_assert(env && strstr(env, from) && strstr(env, to), "message %03llu envelope: %s", i, env);
		free(env);
	}

	/* One "Message finished MID m done" per message, and IDs never shared, across workers too. */
	stls_proc_wait_count(fx.proxy_log, "Message finished MID", NUM_SESSIONS, 5000);
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	cr_assert_not_null(log);
	/* The log drops lines rather than stall a worker, and says so: then the counts below would
	 * fail for the log's sake, not the relay's. */
	cr_assert_null(strstr(log, "log lines dropped"), "the log could not keep up with this test's burst");
	static unsigned long long mids[NUM_SESSIONS + 1], icids[NUM_SESSIONS + 1];
	static unsigned long long start_mid[4 * NUM_SESSIONS], start_icid[4 * NUM_SESSIONS];
	unsigned num_mids = 0, num_starts = 0;
	char *save = NULL;
	for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long mid, icid;
		if (number_after(line, "Message finished MID ", &mid)) {
			size_t len = strlen(line);
			cr_assert(len > 5 && strcmp(line + len - 5, " done") == 0, "not done: %s", line);
			cr_assert_lt(num_mids, NUM_SESSIONS, "more than %u Message finished lines", NUM_SESSIONS);
			mids[num_mids++] = mid;
		} else if (number_after(line, "Start MID ", &mid) && number_after(line, " ICID ", &icid)) {
			cr_assert_lt(num_starts, 4 * NUM_SESSIONS);
			start_mid[num_starts] = mid;
			start_icid[num_starts++] = icid;
		}
	}
	free(log);
	cr_assert_eq(num_mids, NUM_SESSIONS, "%u Message finished lines, want %u", num_mids, NUM_SESSIONS);
	for (unsigned k = 0; k < num_mids; k++) {
		unsigned found = 0;
		for (unsigned s = 0; s < num_starts; s++)
			if (start_mid[s] == mids[k]) {
				icids[k] = start_icid[s];
				found++;
			}
		cr_assert_eq(found, 1, "MID %llu has %u Start lines", mids[k], found);
	}
	cr_assert_eq(num_distinct(mids, num_mids), NUM_SESSIONS, "MIDs repeat");
	cr_assert_eq(num_distinct(icids, num_mids), NUM_SESSIONS, "ICIDs repeat");

	/* Every session has ended, so SIGTERM stops the daemon at once, and cleanly. */
	int exit_code = stls_proc_stop(&fx.proxy, SIGTERM, 10000);
	char *daemon_out = stls_proc_read_file(fx.proxy_out, NULL);
	cr_assert_eq(exit_code, 0, "starttlsd exited with %d after SIGTERM:\n%s", exit_code, daemon_out);
	free(daemon_out);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "Info: stopped", 1000), "no \"stopped\" in %s",
		  fx.proxy_log);
}
