/* Interop: real clients send through the built daemon to the demo backend, and what the backend
 * stores is byte-for-byte what was sent. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx;

static void setup(void)
{
	cr_assert(stls_fixture_init(&fx, "relay"));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "starttlsd did not start (see %s)", fx.proxy_out);
}

static void teardown(void)
{
	stls_fixture_cleanup(&fx);
}

/* The last step of every test: the daemon exits 0 on SIGTERM, with no sanitizer report. */
static void finish(void)
{
	int code = stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "starttlsd did not exit cleanly (%d); its output was printed above", code);
}

TestSuite(relay, .init = setup, .fini = teardown, .timeout = 60);

/* A message with what breaks careless relays: lines starting with '.', a line that is only "..",
 * 8-bit text, an empty line before the end, and no trailing blank line. */
static const char message[] = "From: Alice <alice@example.test>\r\n"
			      "To: Bob <bob@example.test>\r\n"
			      "Subject: dots and bytes\r\n"
			      "\r\n"
			      ".leading dot\r\n"
			      "..\r\n"
			      ". \r\n"
			      "caf\xc3\xa9 \xe2\x82\xac 8-bit\r\n"
			      "\r\n"
			      "last line\r\n";

Test(relay, python_smtplib_message_is_byte_identical)
{
	char script[512], port[16], msgfile[256], out[4096];
	stls_proc_repo_path("tests/interop/scripts/send.py", script, sizeof(script));
	snprintf(port, sizeof(port), "%u", fx.proxy_port);
	snprintf(msgfile, sizeof(msgfile), "%s/sent.eml", fx.dir);
	cr_assert(stls_proc_write_file(msgfile, message, sizeof(message) - 1));
	char *argv[] = { "python3",   script,
			 "--port",    port,
			 "--from",    "alice@example.test",
			 "--to",      "bob@example.test",
			 "--to",      "carol@example.test",
			 "--message", msgfile,
			 NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
	cr_assert_eq(code, 0, "send.py failed: %s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000), "no message stored");
	size_t len;
	char *stored = stls_fixture_message(&fx, 0, false, &len);
	cr_assert_not_null(stored);
	cr_assert_eq(len, sizeof(message) - 1, "stored %zu bytes, sent %zu", len, sizeof(message) - 1);
	cr_assert(memcmp(stored, message, len) == 0, "stored message differs from what was sent");
	free(stored);
	char *env = stls_fixture_message(&fx, 0, true, NULL);
	cr_assert(strstr(env, "\"mail_from\": \"alice@example.test\""), "envelope: %s", env);
	cr_assert(strstr(env, "carol@example.test"), "envelope: %s", env);
	free(env);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "Message finished MID", 3000));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "To: <carol@example.test>", 3000));
	finish();
}

Test(relay, swaks_pipelined_message_arrives)
{
	char server[64], datafile[256], out[16384], arg[300];
	snprintf(server, sizeof(server), "127.0.0.1:%u", fx.proxy_port);
	snprintf(datafile, sizeof(datafile), "%s/data.eml", fx.dir);
	/* swaks appends "\r\n." unless the data already ends with the terminator. */
	char data[sizeof(message) + 3];
	snprintf(data, sizeof(data), "%s.\r\n", message);
	cr_assert(stls_proc_write_file(datafile, data, strlen(data)));
	snprintf(arg, sizeof(arg), "@%s", datafile);
	char *argv[] = { "swaks",
			 "--server",
			 server,
			 "--from",
			 "alice@example.test",
			 "--to",
			 "bob@example.test",
			 "--pipeline",
			 "--data",
			 arg,
			 "--timeout",
			 "20",
			 NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
	cr_assert_eq(code, 0, "swaks failed:\n%s", out);
	cr_assert(strstr(out, "250-PIPELINING"), "EHLO reply lacks PIPELINING:\n%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000), "no message stored");
	size_t len;
	char *stored = stls_fixture_message(&fx, 0, false, &len);
	cr_assert_eq(len, sizeof(message) - 1, "stored %zu bytes, sent %zu:\n%s", len, sizeof(message) - 1, stored);
	cr_assert(memcmp(stored, message, len) == 0, "stored message differs from what was sent");
	free(stored);
	finish();
}

/* Two transactions, each fully pipelined in one write (RFC 2920), the second with the message
 * data sent in the same segment as the end of the first. */
Test(relay, raw_pipelined_transactions_get_replies_in_order)
{
	struct stls_smtp_client c;
	cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "EHLO client.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert(strstr(c.last, "mx.test"), "EHLO reply names the proxy: %s", c.last);
	cr_assert(stls_smtp_client_sends(
		&c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "MAIL: %s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "RCPT 1: %s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "RCPT 2: %s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 354, "DATA: %s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "Subject: one\r\n\r\nfirst\r\n.\r\n"
					     "MAIL FROM:<d@x.test>\r\nRCPT TO:<e@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "end of data 1: %s", c.last);
	cr_assert(strstr(c.last, "queued as"), "the end-of-data reply is the backend's: %s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "MAIL 2: %s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "RCPT 3: %s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 354, "DATA 2: %s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "end of data 2: %s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 221, "QUIT: %s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c));
	stls_smtp_client_close(&c);
	cr_assert(stls_fixture_wait_messages(&fx, 2, 5000));
	size_t len;
	char *m1 = stls_fixture_message(&fx, 0, false, &len);
	char *m2 = stls_fixture_message(&fx, 1, false, NULL);
	cr_assert_str_eq(m1, "Subject: one\r\n\r\nfirst\r\n");
	cr_assert_str_eq(m2, "Subject: two\r\n\r\nsecond\r\n");
	free(m1);
	free(m2);
	finish();
}
