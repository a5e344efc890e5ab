/* Interop: the load generator and the microbenchmarks work (their figures are not judged here:
 * timing belongs to bench/run). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"

static struct stls_fixture fx;
static char out[16384];

static void setup(void)
{
	cr_assert(stls_fixture_init(&fx, "bench"));
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "see %s", fx.proxy_out);
}

static void teardown(void)
{
	stls_fixture_cleanup(&fx);
}

TestSuite(bench, .init = setup, .fini = teardown, .timeout = 120);

static int run_bench(const char *mode, const char *sessions, const char *json)
{
	char bench[512], connect[64];
	stls_proc_build_path("starttls-bench", bench, sizeof(bench));
	snprintf(connect, sizeof(connect), "127.0.0.1:%u", fx.proxy_port);
	char *argv[] = { bench,	       "--connect",	 connect,	  "--mode",  (char *)mode,
			 "--sessions", (char *)sessions, "--concurrency", "4",	     "--size",
			 "2048",       "--json",	 (char *)json,	  "--quiet", NULL };
	return stls_proc_run(argv, NULL, 0, out, sizeof(out), 60000);
}

Test(bench, handshake_mode_counts_every_session)
{
	char json[256];
	snprintf(json, sizeof(json), "%s/handshake.json", fx.dir);
	int code = run_bench("handshake", "20", json);
	/* 3 would mean the client saturated its CPU: not a failure of the tool. */
	cr_assert(code == 0 || code == 3, "exit %d:\n%s", code, out);
	char *j = stls_proc_read_file(json, NULL);
	cr_assert_not_null(j);
	cr_assert(strstr(j, "\"mode\": \"handshake\""), "%s", j);
	cr_assert(strstr(j, "\"sessions\": 20,"), "%s", j);
	cr_assert(strstr(j, "\"errors\": {\"connect\": 0, \"protocol\": 0, \"tls\": 0, \"timeout\": 0}"), "%s", j);
	free(j);
	cr_assert_eq(stls_proc_wait_count(fx.proxy_log, "TLS success", 20, 3000), 20);
}

Test(bench, resume_mode_resumes)
{
	char json[256];
	snprintf(json, sizeof(json), "%s/resume.json", fx.dir);
	int code = run_bench("resume", "24", json);
	cr_assert(code == 0 || code == 3, "exit %d:\n%s", code, out);
	/* Each of the 4 connection slots resumes after its first session. */
	cr_assert_geq(stls_proc_wait_count(fx.proxy_log, "TLS session resumed", 20, 3000), 20, "%s", out);
}

Test(bench, message_mode_delivers_messages)
{
	char json[256];
	snprintf(json, sizeof(json), "%s/message.json", fx.dir);
	int code = run_bench("message", "6", json);
	cr_assert(code == 0 || code == 3, "exit %d:\n%s", code, out);
	cr_assert(stls_fixture_wait_messages(&fx, 6, 5000));
	size_t len;
	char *m = stls_fixture_message(&fx, 0, false, &len);
	cr_assert(strstr(m, "Subject: starttls-bench"), "%s", m);
	cr_assert(strstr(m, "with ESMTPS"), "message mode goes over TLS: %s", m);
	free(m);
}

Test(bench, failures_are_counted_and_exit_1)
{
	char bench[512], json[256];
	stls_proc_build_path("starttls-bench", bench, sizeof(bench));
	snprintf(json, sizeof(json), "%s/refused.json", fx.dir);
	char *argv[] = { bench, "--connect", "127.0.0.1:1", "--sessions", "5", "--json", json, "--quiet", NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
	cr_assert_eq(code, 1, "exit %d:\n%s", code, out);
	cr_assert(strstr(out, "errors: connect 5"), "%s", out);
}

Test(bench, microbenchmarks_print_figures_beside_ceilings)
{
	char micro[512];
	stls_proc_build_path("starttls-micro", micro, sizeof(micro));
	char *argv[] = { micro, "all", "--seconds", "0.1", NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 60000);
	cr_assert_eq(code, 0, "%s", out);
	cr_assert(strstr(out, "lexer ") && strstr(out, "memchr over the same bytes"), "%s", out);
	cr_assert(strstr(out, "rsa2048") && strstr(out, "ecdsa-p256") && strstr(out, "handshakes/s/core"), "%s", out);
	cr_assert(strstr(out, "sender-group lookup (100000 networks)") && strstr(out, "admit + release") &&
			  strstr(out, "uncontended lock/unlock"),
		  "%s", out);
}
