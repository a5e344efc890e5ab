/* Interop: Postfix as the legacy MTA behind the proxy. A real client talks to starttlsd, which
 * relays to a throwaway Postfix instance (tests/support/postfix-instance), whose relayhost is the
 * demo backend:
 *
 *	client -> starttlsd -> Postfix smtpd -> Postfix smtp -> demo backend (stores the message)
 *
 * Postfix is required: where it is missing the tests fail (they do not skip), so that a machine
 * without it cannot pass the suite by accident. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixture.h"
#include "tests/support/postfix.h"
#include "tests/support/proc.h"

static struct stls_fixture fx;
static struct stls_postfix postfix = { .guard_pid = -1, .guard_fd = -1 };
static uint16_t demo_port; /* the demo backend, Postfix's relayhost */

static void setup(void)
{
	char relay[64], out[8192];
	cr_assert(stls_fixture_init(&fx, "postfix"));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
	demo_port = fx.backend_port;
	uint16_t postfix_port;
	do
		postfix_port = stls_proc_free_port();
	while (postfix_port == 0 || postfix_port == demo_port || postfix_port == fx.proxy_port);

	snprintf(relay, sizeof(relay), "127.0.0.1:%u", demo_port);
	cr_assert(stls_postfix_start(&postfix, fx.dir, postfix_port, relay, NULL, out, sizeof(out)),
		  "the Postfix instance did not start; this suite needs Postfix installed (postconf, master) and "
		  "root:\n%s",
		  out);

	/* The proxy reads its backend from fx.backend_port: point it at Postfix, not the demo backend. */
	fx.backend_port = postfix_port;
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "starttlsd did not start (see %s)", fx.proxy_out);
}

static void teardown(void)
{
	char out[4096] = "";
	/* Stopped here, before its folder goes, and checked. */
	int code = stls_postfix_stop(&postfix, out, sizeof(out));
	stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "postfix-instance stop failed (exit %d):\n%s", code, out);
}

TestSuite(postfix, .init = setup, .fini = teardown, .timeout = 120);

/* Waits until the Postfix log has a line for each of wants; fails the test naming the first one
 * missing. */
static void wait_postfix_log(const struct stls_log_want wants[], int timeout_ms)
{
	char *log = NULL;
	const struct stls_log_want *missing = stls_postfix_wait_log(&postfix, wants, timeout_ms, &log);
	if (missing)
		cr_assert_fail("the Postfix log has no line with \"%s\"%s%s%s after %d ms:\n%s", missing->has,
			       missing->also ? " then \"" : "", missing->also ? missing->also : "",
			       missing->also ? "\"" : "", timeout_ms, log ? log : "(unreadable)");
}

/* Copies the Postfix queue id that follows "queued as " in text into out. */
static bool queue_id_after(const char *text, char *out, size_t out_len)
{
	const char *p = text ? strstr(text, "queued as ") : NULL;
	if (!p)
		return false;
	p += strlen("queued as ");
	size_t n = strspn(p, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
	if (n == 0 || n >= out_len)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/* Ends with what Postfix must pass on untouched: Date and Message-ID present (so it adds
 * neither), lines starting with '.', a line that is only "..", 8-bit text, and an empty line
 * before the end. */
static const char message[] = "Date: Tue, 03 Nov 2026 10:00:00 +0000\r\n"
			      "Message-ID: <postfix-interop-1@client.test>\r\n"
			      "From: Alice <alice@example.test>\r\n"
			      "To: Bob <bob@example.test>\r\n"
			      "Subject: through Postfix\r\n"
			      "MIME-Version: 1.0\r\n"
			      "Content-Type: text/plain; charset=utf-8\r\n"
			      "Content-Transfer-Encoding: 8bit\r\n"
			      "\r\n"
			      ".leading dot\r\n"
			      "..\r\n"
			      "caf\xc3\xa9 \xe2\x82\xac 8-bit\r\n"
			      "\r\n"
			      "last line\r\n";

/* The end of the header field that starts at p: the start of the next line that is not a
 * continuation (RFC 5322 2.2.3), or NULL if there is none. */
static const char *end_of_field(const char *p, const char *end)
{
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (!lf || lf + 1 >= end)
			return NULL;
		p = lf + 1;
		if (*p != ' ' && *p != '\t')
			return p;
	}
	return NULL;
}

Test(postfix, python_smtplib_message_relayed_unchanged)
{
	char script[512], port[16], msgfile[256], out[4096];
	stls_proc_repo_path("tests/interop/scripts/send.py", script, sizeof(script));
	snprintf(port, sizeof(port), "%u", fx.proxy_port);
	snprintf(msgfile, sizeof(msgfile), "%s/sent.eml", fx.dir);
	cr_assert(stls_proc_write_file(msgfile, message, sizeof(message) - 1));
	char *argv[] = { "python3",	     script,	  "--port", port, "--from", "alice@example.test", "--to",
			 "bob@example.test", "--message", msgfile,  NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
	cr_assert_eq(code, 0, "send.py failed: %s", out);

	/* The proxy passed Postfix's own end-of-data reply back, and logged the transaction. */
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "Message finished MID", 5000), "no Message finished line");
	char *plog = stls_proc_read_file(fx.proxy_log, NULL);
	cr_assert_not_null(plog);
	const char *fin = strstr(plog, "Message finished MID ");
	unsigned long mid = strtoul(fin + strlen("Message finished MID "), NULL, 10);
	char done[96], said[96], qid[64];
	snprintf(done, sizeof(done), "Message finished MID %lu done\n", mid);
	snprintf(said, sizeof(said), "MID %lu backend said: 250 ", mid);
	cr_assert(strstr(plog, done), "starttlsd log lacks \"%.*s\":\n%s", (int)strlen(done) - 1, done, plog);
	cr_assert_eq(stls_proc_count_in_file(fx.proxy_log, "Message finished MID"), 1, "starttlsd log:\n%s", plog);
	cr_assert(queue_id_after(strstr(plog, said), qid, sizeof(qid)), "no Postfix queue id in the starttlsd log:\n%s",
		  plog);
	free(plog);

	/* Postfix relayed that queue file to the demo backend. */
	char sent_line[256];
	snprintf(sent_line, sizeof(sent_line), "%s: to=<bob@example.test>, relay=127.0.0.1[127.0.0.1]:%u,", qid,
		 demo_port);
	const struct stls_log_want wants[] = { { sent_line, " status=sent (250 " }, { NULL, NULL } };
	wait_postfix_log(wants, 20000);

	cr_assert(stls_fixture_wait_messages(&fx, 1, 10000), "the demo backend stored nothing");
	cr_assert_eq(stls_fixture_num_messages(&fx), 1);
	size_t len;
	char *stored = stls_fixture_message(&fx, 0, false, &len);
	cr_assert_not_null(stored);
	const char *end = stored + len;

	/* Postfix adds exactly one header field, its Received: at the top; the rest is what was sent. */
	cr_assert(strncmp(stored, "Received: ", 10) == 0, "stored message does not start with Received:\n%s", stored);
	const char *rest = end_of_field(stored, end);
	cr_assert_not_null(rest, "unterminated Received: field:\n%s", stored);
	char by[128];
	snprintf(by, sizeof(by), "by legacy.test (Postfix) with ESMTP id %s", qid);
	cr_assert(memmem(stored, (size_t)(rest - stored), by, strlen(by)), "Received: lacks \"%s\":\n%.*s", by,
		  (int)(rest - stored), stored);
	/* The proxy relays the client's EHLO name rather than its own. */
	cr_assert(memmem(stored, (size_t)(rest - stored), "from client.test ", 17),
		  "Received: lacks the EHLO name:\n%.*s", (int)(rest - stored), stored);
	size_t rest_len = (size_t)(end - rest);
	cr_assert_eq(rest_len, sizeof(message) - 1, "after Received: %zu bytes, sent %zu:\n%s", rest_len,
		     sizeof(message) - 1, rest);
	cr_assert(memcmp(rest, message, rest_len) == 0, "stored message differs from what was sent:\n%s", rest);
	free(stored);

	char *env = stls_fixture_message(&fx, 0, true, NULL);
	cr_assert_not_null(env);
	cr_assert(strstr(env, "\"mail_from\": \"alice@example.test\""), "envelope: %s", env);
	cr_assert(strstr(env, "\"helo\": \"legacy.test\""), "the demo backend was not reached by Postfix: %s", env);
	free(env);
}

Test(postfix, swaks_message_accepted_and_logged)
{
	char server[64], out[16384], qid[64];
	snprintf(server, sizeof(server), "127.0.0.1:%u", fx.proxy_port);
	char *argv[] = { "swaks",	    "--server",	  server,
			 "--helo",	    "swaks.test", "--from",
			 "sam@sender.test", "--to",	  "rita@recipient.test",
			 "--timeout",	    "20",	  NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
	cr_assert_eq(code, 0, "swaks failed:\n%s", out);
	/* The end-of-data reply swaks saw is Postfix's, carrying its queue id. */
	cr_assert(queue_id_after(strstr(out, "<-  250 2.0.0 Ok: queued as "), qid, sizeof(qid)),
		  "no Postfix queue id in swaks' transcript:\n%s", out);

	char from[128], to[128], client[128];
	snprintf(from, sizeof(from), "%s: from=<sam@sender.test>,", qid);
	snprintf(to, sizeof(to), "%s: to=<rita@recipient.test>,", qid);
	snprintf(client, sizeof(client), "%s: client=unknown[127.0.0.1]", qid);
	const struct stls_log_want wants[] = { { client, NULL }, { from, NULL }, { to, NULL }, { NULL, NULL } };
	wait_postfix_log(wants, 20000);

	cr_assert(stls_fixture_wait_messages(&fx, 1, 10000), "the demo backend stored nothing");
	char *env = stls_fixture_message(&fx, 0, true, NULL);
	cr_assert_not_null(env);
	cr_assert(strstr(env, "\"mail_from\": \"sam@sender.test\""), "envelope: %s", env);
	cr_assert(strstr(env, "rita@recipient.test"), "envelope: %s", env);
	free(env);
}
