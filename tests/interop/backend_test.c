/* Interop: what the client sees when the backend is down, refuses, or dies mid-message. Nothing
 * is acknowledged that the backend did not acknowledge. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx;
static struct stls_smtp_client c;

static void setup(void)
{
	cr_assert(stls_fixture_init(&fx, "backend"));
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

TestSuite(backend, .init = setup, .fini = teardown, .timeout = 60);

static void connect_and_ehlo(void)
{
	cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "EHLO client.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
}

Test(backend, unreachable_backend_gives_421_at_mail)
{
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "see %s", fx.proxy_out);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "probe failed", 3000));
	connect_and_ehlo();
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 421, "%s", c.last);
	cr_assert(strstr(c.last, "4.3.0"), "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "unavailable: Connection refused", 3000));
	finish();
}

Test(backend, backend_refusing_greeting_gives_421)
{
	const char *backend_extra[] = { "--greeting-code", "554", NULL };
	cr_assert(stls_fixture_start_backend(&fx, backend_extra));
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "see %s", fx.proxy_out);
	connect_and_ehlo();
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 421, "%s", c.last);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "refused the connection: 554", 3000));
	finish();
}

Test(backend, backend_killed_mid_data_gives_421_and_no_message)
{
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "see %s", fx.proxy_out);
	connect_and_ehlo();
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 354, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "Subject: doomed\r\n\r\nfirst half\r\n"));
	stls_proc_sleep_ms(200);
	stls_proc_stop(&fx.backend, SIGKILL, 5000);
	/* The rest of the message and its end still get the failure, never a 250. */
	stls_smtp_client_sends(&c, "second half\r\n.\r\n");
	int code = stls_smtp_client_reply(&c);
	cr_assert(code == 421 || code == 451, "got %d: %s", code, c.last);
	cr_assert(strstr(c.last, "4.3.0"), "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c));
	cr_assert_eq(stls_fixture_num_messages(&fx), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "aborted", 3000));
	finish();
}

Test(backend, backend_extensions_the_proxy_cannot_carry_are_not_offered)
{
	const char *backend_extra[] = { "--advertise", "STARTTLS",
					"--advertise", "XCLIENT ADDR NAME HELO",
					"--advertise", "XFORWARD NAME ADDR",
					"--advertise", "AUTH PLAIN LOGIN",
					"--advertise", "ETRN",
					NULL };
	cr_assert(stls_fixture_start_backend(&fx, backend_extra));
	/* With TLS off the proxy offers no STARTTLS of its own, so any STARTTLS would be the backend's. */
	const char *proxy_extra[] = { "--inbound-tls", "off", NULL };
	cr_assert(stls_fixture_start_proxy(&fx, proxy_extra), "see %s", fx.proxy_out);
	connect_and_ehlo();
	const char *ehlo = c.last;
	cr_assert(strstr(ehlo, "PIPELINING") && strstr(ehlo, "8BITMIME") && strstr(ehlo, "SIZE 52428800"), "%s", ehlo);
	cr_assert_null(strstr(ehlo, "STARTTLS"), "%s", ehlo);
	cr_assert_null(strstr(ehlo, "XCLIENT"), "%s", ehlo);
	cr_assert_null(strstr(ehlo, "XFORWARD"), "%s", ehlo);
	cr_assert_null(strstr(ehlo, "AUTH"), "%s", ehlo);
	cr_assert_null(strstr(ehlo, "ETRN"), "%s", ehlo);
	cr_assert_null(strstr(ehlo, "backend.test"), "the backend's name leaked: %s", ehlo);
	/* The EHLO relayed inside a transaction is filtered the same way. */
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "EHLO again.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_null(strstr(c.last, "STARTTLS"), "%s", c.last);
	cr_assert_null(strstr(c.last, "XCLIENT"), "%s", c.last);
	cr_assert(strstr(c.last, "mx.test"), "%s", c.last);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log,
					       "not offered to clients: STARTTLS XCLIENT XFORWARD AUTH ETRN", 3000));
	finish();
}

Test(backend, handshake_only_sessions_never_reach_the_backend)
{
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "see %s", fx.proxy_out);
	unsigned before = stls_proc_count_in_file(fx.backend_log, "connect peer=");
	for (int i = 0; i < 20; i++) {
		connect_and_ehlo();
		cr_assert(stls_smtp_client_sends(&c, "NOOP\r\nRSET\r\nQUIT\r\n"));
		cr_assert_eq(stls_smtp_client_reply(&c), 250);
		cr_assert_eq(stls_smtp_client_reply(&c), 250);
		cr_assert_eq(stls_smtp_client_reply(&c), 221);
		stls_smtp_client_close(&c);
	}
	stls_proc_sleep_ms(200);
	cr_assert_eq(stls_proc_count_in_file(fx.backend_log, "connect peer="), before,
		     "sessions without mail opened backend connections");
	finish();
}

Test(backend, backend_started_late_is_picked_up)
{
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "see %s", fx.proxy_out);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "probe failed", 3000));
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	/* Probes are retried every 5 s while the backend is down. */
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "capabilities: PIPELINING", 10000));
	stls_proc_sleep_ms(300);
	connect_and_ehlo();
	cr_assert(strstr(c.last, "PIPELINING"), "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 354, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "Subject: late\r\n\r\nx\r\n.\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	finish();
}
