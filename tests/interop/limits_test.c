/* Interop: every limit and every piece of hostile input gets its SMTP reply, and nothing bad
 * reaches the backend. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx;
static struct stls_smtp_client c;

static void start(const char *const proxy_extra[])
{
	cr_assert(stls_fixture_init(&fx, "limits"));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
	cr_assert(stls_fixture_start_proxy(&fx, proxy_extra), "starttlsd did not start (see %s)", fx.proxy_out);
	/* The fixture's readiness probe was a session too: let it end before counting sessions. */
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "close", 5000));
	cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
}

static void setup(void)
{
	start(NULL);
}

static void teardown(void)
{
	stls_smtp_client_close(&c);
	stls_fixture_cleanup(&fx);
}

/* The last step of every test: the daemon exits 0 on SIGTERM, with no sanitizer report. */
static void finish(void)
{
	int code = stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "starttlsd did not exit cleanly (%d); its output was printed above", code);
}

/* Most tests start the default fixture; those that need other flags start their own. */
TestSuite(limits, .fini = teardown, .timeout = 60);

static void ehlo(void)
{
	cr_assert(stls_smtp_client_sends(&c, "EHLO client.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
}

static void begin_data(void)
{
	ehlo();
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 354, "%s", c.last);
}

Test(limits, command_line_over_512_octets_gets_500_and_session_goes_on, .init = setup)
{
	char line[1200];
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	cr_assert(stls_smtp_client_send(&c, line, sizeof(line)));
	cr_assert_eq(stls_smtp_client_reply(&c), 500, "%s", c.last);
	cr_assert(strstr(c.last, "5.5.6"), "%s", c.last);
	/* Exactly 512 octets with CRLF is allowed. */
	memset(line, 'x', 510);
	memcpy(line, "NOOP ", 5);
	memcpy(line + 510, "\r\n", 2);
	cr_assert(stls_smtp_client_send(&c, line, 512));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "command line longer than 512 octets", 3000));
	finish();
}

Test(limits, command_sent_one_byte_at_a_time_is_understood, .init = setup)
{
	const char *cmd = "EHLO slow.test\r\n";
	for (const char *p = cmd; *p; p++) {
		cr_assert(stls_smtp_client_send(&c, p, 1));
		stls_proc_sleep_ms(2);
	}
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	finish();
}

Test(limits, bare_lf_and_nul_in_commands_are_refused, .init = setup)
{
	cr_assert(stls_smtp_client_sends(&c, "NOOP\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 500, "%s", c.last);
	cr_assert(stls_smtp_client_send(&c, "NO\0OP\r\n", 7));
	cr_assert_eq(stls_smtp_client_reply(&c), 500, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "NOOP\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	finish();
}

Test(limits, sequence_errors_are_503, .init = setup)
{
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 503, "MAIL before EHLO: %s", c.last);
	ehlo();
	cr_assert(stls_smtp_client_sends(&c, "RCPT TO:<b@y.test>\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 503, "RCPT before MAIL: %s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "DATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 503, "DATA before MAIL: %s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "BOGUS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 500, "unknown command: %s", c.last);
	finish();
}

/* SMTP smuggling: a bare LF before ".": the message must never reach the backend. */
Test(limits, bare_lf_in_message_is_rejected_and_never_relayed, .init = setup)
{
	begin_data();
	cr_assert(stls_smtp_client_sends(&c,
					 "Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@x.test>\r\nbye\r\n.\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 550, "%s", c.last);
	cr_assert(strstr(c.last, "5.5.2"), "%s", c.last);
	/* The session goes on and the next message is relayed over a fresh backend connection. */
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 354, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "Subject: clean\r\n\r\nok\r\n.\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));
	stls_proc_sleep_ms(300);
	cr_assert_eq(stls_fixture_num_messages(&fx), 1, "the refused message reached the backend");
	char *m = stls_fixture_message(&fx, 0, false, NULL);
	cr_assert_str_eq(m, "Subject: clean\r\n\r\nok\r\n");
	free(m);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "message refused: a bare CR or LF", 3000));
	finish();
}

Test(limits, bare_cr_in_message_is_rejected, .init = setup)
{
	begin_data();
	cr_assert(stls_smtp_client_sends(&c, "Subject: cr\r\n\r\nhello\rworld\r\n.\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 550, "%s", c.last);
	stls_proc_sleep_ms(300);
	cr_assert_eq(stls_fixture_num_messages(&fx), 0);
	finish();
}

Test(limits, text_line_over_limit_is_rejected, .init = setup)
{
	begin_data();
	char body[1100];
	memset(body, 'y', sizeof(body));
	memcpy(body + 999, "\r\n", 2); /* 1001 octets with CRLF: one over the RFC 5321 limit */
	cr_assert(stls_smtp_client_sends(&c, "Subject: long\r\n\r\n"));
	cr_assert(stls_smtp_client_send(&c, body, 1001));
	cr_assert(stls_smtp_client_sends(&c, ".\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 550, "%s", c.last);
	cr_assert(strstr(c.last, "5.6.0"), "%s", c.last);
	stls_proc_sleep_ms(300);
	cr_assert_eq(stls_fixture_num_messages(&fx), 0);
	finish();
}

Test(limits, too_many_errors_end_the_session_with_421, .init = setup)
{
	for (int i = 0; i < 9; i++) {
		cr_assert(stls_smtp_client_sends(&c, "BOGUS\r\n"));
		cr_assert_eq(stls_smtp_client_reply(&c), 500, "error %d: %s", i, c.last);
	}
	cr_assert(stls_smtp_client_sends(&c, "BOGUS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 421, "%s", c.last);
	cr_assert(strstr(c.last, "4.7.0"), "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c));
	finish();
}

Test(limits, chunked_messages_are_relayed_by_length, .init = setup)
{
	ehlo();
	cr_assert(strstr(c.last, "CHUNKING"), "%s", c.last);
	/* Chunks carry binary-looking bytes and a would-be terminator, pipelined with the commands. */
	static const char chunk1[] = "Subject: bdat\r\n\r\n.\r\nnot the end\n";
	static const char chunk2[] = "\r\n.\r\ntail\r\n";
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT %zu\r\n%sBDAT %zu LAST\r\n%s",
			 sizeof(chunk1) - 1, chunk1, sizeof(chunk2) - 1, chunk2);
	cr_assert(stls_smtp_client_send(&c, buf, (size_t)n));
	for (int i = 0; i < 4; i++)
		cr_assert_eq(stls_smtp_client_reply(&c), 250, "reply %d: %s", i, c.last);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));
	size_t len;
	char *m = stls_fixture_message(&fx, 0, false, &len);
	cr_assert_eq(len, sizeof(chunk1) - 1 + sizeof(chunk2) - 1);
	cr_assert(memcmp(m, chunk1, sizeof(chunk1) - 1) == 0);
	cr_assert(memcmp(m + sizeof(chunk1) - 1, chunk2, sizeof(chunk2) - 1) == 0);
	free(m);
	finish();
}

Test(limits, refused_chunk_is_read_past_in_full, .init = setup)
{
	ehlo();
	cr_assert(stls_smtp_client_sends(&c, "BDAT 10\r\nNOOP\r\nNOOPNOOP\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 503, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "the command after the chunk: %s", c.last);
	finish();
}

Test(limits, vrfy_and_auth_are_answered_locally, .init = setup)
{
	ehlo();
	cr_assert(stls_smtp_client_sends(&c, "VRFY root\r\nAUTH PLAIN AAAA\r\nXCLIENT ADDR=1.2.3.4\r\nNOOP\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 252, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 502, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 502, "XCLIENT from a client must never pass: %s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	finish();
}

Test(limits, command_timeout_gives_421)
{
	const char *extra[] = { "--command-timeout", "1", NULL };
	start(extra);
	/* The timeout counts from the EHLO's arrival, which is after t0. The worker reads a coarse
	 * clock, a few milliseconds behind this one: hence the 20 ms. */
	uint64_t t0 = stls_proc_now_ms();
	ehlo();
	c.timeout_ms = 10000;
	cr_assert_eq(stls_smtp_client_reply(&c), 421, "%s", c.last);
	cr_assert(strstr(c.last, "4.4.2"), "%s", c.last);
	cr_assert_geq(stls_proc_now_ms() - t0, 1000 - 20, "closed before the timeout");
	cr_assert(stls_smtp_client_wait_closed(&c));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "timeout in READY", 3000));
	finish();
}

Test(limits, session_limit_refuses_with_421)
{
	/* Two workers share --max-sessions 2: one session each at most. */
	const char *extra[] = { "--max-sessions", "2", NULL };
	start(extra);
	struct stls_smtp_client more[4];
	int refused = 0, greeted = 0;
	for (int i = 0; i < 4; i++) {
		cr_assert(stls_smtp_client_connect(&more[i], fx.proxy_port, 5000));
		int code = stls_smtp_client_reply(&more[i]);
		if (code == 421) {
			cr_assert(strstr(more[i].last, "4.3.2"), "%s", more[i].last);
			refused++;
		} else {
			cr_assert_eq(code, 220, "%s", more[i].last);
			greeted++;
		}
	}
	/* c holds one session already; at most one more fits. */
	cr_assert_leq(greeted, 1);
	cr_assert_geq(refused, 3);
	for (int i = 0; i < 4; i++)
		stls_smtp_client_close(&more[i]);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "session limit 1 reached", 3000));
	finish();
}
