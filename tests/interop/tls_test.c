/* Interop: inbound STARTTLS (RFC 3207, spec S1, S11-S13, S26, S30): the policies, plaintext
 * injection, handshake failures, certificates at start-up, resumption across workers and the trace
 * header, driven with openssl s_client and a raw client. */
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
static char pki[256];
static char out[65536];
static unsigned backend_baseline;

/* The backend, a PKI, and the proxy with the PKI's RSA certificate (+ extra flags). */
static void start(const char *const extra[])
{
	cr_assert(stls_fixture_init(&fx, "tls"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	static char cert[320], key[320], chain[320];
	snprintf(cert, sizeof(cert), "%s/leaf.pem", pki);
	snprintf(key, sizeof(key), "%s/leaf.key", pki);
	snprintf(chain, sizeof(chain), "%s/int.pem", pki);
	const char *args[32] = { "--cert", cert, "--key", key, "--chain", chain };
	unsigned n = 6;
	for (unsigned i = 0; extra && extra[i] && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	cr_assert(stls_fixture_start_proxy(&fx, args), "starttlsd did not start (see %s)", fx.proxy_out);
	/* The readiness probe was a session: let it end, so it cannot mix with the test's lines. */
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "close", 5000));
	backend_baseline = stls_proc_count_in_file(fx.backend_log, "connect peer=");
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

static void finish(void)
{
	stls_smtp_client_close(&c);
	int code = stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "starttlsd did not exit cleanly (%d); its output was printed above", code);
}

TestSuite(tls, .fini = teardown, .timeout = 90);

static void raw_connect_ehlo(void)
{
	cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "EHLO client.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
}

/* Absence checks read the log once the sessions under test have logged their last line ("ICID n
 * close"), or a line they should not have written could still be on its way to the file. */
static unsigned closes_logged(void)
{
	return stls_proc_count_in_file(fx.proxy_log, " close\n");
}

static void wait_closes_logged(unsigned want)
{
	cr_assert_geq(stls_proc_wait_count(fx.proxy_log, " close\n", want, 5000), want,
		      "%u sessions should have ended:\n%s", want, stls_proc_read_file(fx.proxy_log, NULL));
}

/* Connections the backend saw since the proxy started (the fixture's own readiness check does
 * not count). */
static unsigned backend_connections(void)
{
	return stls_proc_count_in_file(fx.backend_log, "connect peer=") - backend_baseline;
}

static const char *ca_arg(void)
{
	static char path[320];
	snprintf(path, sizeof(path), "%s/ca.pem", pki);
	return path;
}

Test(tls, verified_handshake_and_message_with_trace_header, .init = setup)
{
	const char *args[] = { "-CAfile",
			       ca_arg(),
			       "-verify_return_error",
			       "-verify_hostname",
			       "mx.test",
			       "-servername",
			       "mx.test",
			       "-name",
			       "client.test",
			       NULL };
	const char *input = "EHLO client.test\nMAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\n"
			    "Subject: over TLS\n\nsecret body\n.\nQUIT\n";
	int code = stls_fixture_s_client(&fx, args, input, out, sizeof(out));
	cr_assert_eq(code, 0, "s_client failed:\n%s", out);
	cr_assert(strstr(out, "Verification: OK") || strstr(out, "Verify return code: 0 (ok)"), "%s", out);
	cr_assert(strstr(out, "221 2.0.0"), "%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));
	size_t len;
	char *m = stls_fixture_message(&fx, 0, false, &len);
	const char *body = "Subject: over TLS\r\n\r\nsecret body\r\n";
	/* One trace header at the top, then the message exactly as sent. */
	cr_assert(strncmp(m, "Received: from client.test (unknown [127.0.0.1])\r\n", 50) == 0, "%s", m);
	cr_assert(strstr(m, "\tby mx.test (starttlsd) with ESMTPS (TLSv1.3 TLS_"), "%s", m);
	const char *after = strstr(m, "+0000\r\n");
	cr_assert_not_null(after, "%s", m);
	cr_assert_str_eq(after + 7, body);
	cr_assert_eq(strstr(m + 1, "Received:"), NULL, "more than one trace header:\n%s", m);
	free(m);
	/* The logger writes asynchronously: the line may follow the delivery. */
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "TLS success protocol TLSv1.3 cipher TLS_", 5000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	finish();
}

Test(tls, starttls_offered_only_in_ehlo_and_not_after_tls, .init = setup)
{
	raw_connect_ehlo();
	cr_assert(strstr(c.last, "250 STARTTLS") || strstr(c.last, "250-STARTTLS"), "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "HELO client.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert_null(strstr(c.last, "STARTTLS"), "HELO reply offers STARTTLS: %s", c.last);
	stls_smtp_client_close(&c);
	/* Inside TLS: the EHLO reply has no STARTTLS, a second STARTTLS is refused, and nothing said
	 * before the handshake is remembered (MAIL without a new EHLO is a sequence error). */
	const char *args[] = { "-CAfile", ca_arg(), NULL };
	const char *input = "MAIL FROM:<a@x.test>\nEHLO again.test\nSTARTTLS\nQUIT\n";
	cr_assert_eq(stls_fixture_s_client(&fx, args, input, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "503 5.5.1"), "MAIL before EHLO after TLS:\n%s", out);
	const char *ehlo = strstr(out, "250-mx.test Hello again.test");
	cr_assert_not_null(ehlo, "%s", out);
	/* (s_client prints the clear-text EHLO's last line, "250 STARTTLS", before the handshake.) */
	const char *second = strstr(ehlo, "554 5.5.1");
	cr_assert_not_null(second, "second STARTTLS:\n%s", out);
	cr_assert(memmem(ehlo, (size_t)(second - ehlo), "STARTTLS", 8) == NULL, "STARTTLS offered inside TLS:\n%s",
		  ehlo);
	finish();
}

Test(tls, starttls_sequence_rules, .init = setup)
{
	cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220);
	cr_assert(stls_smtp_client_sends(&c, "STARTTLS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 503, "STARTTLS before EHLO: %s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "EHLO client.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert(stls_smtp_client_sends(&c, "STARTTLS now\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 501, "STARTTLS with an argument: %s", c.last);
	cr_assert(strstr(c.last, "5.5.4"), "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert(stls_smtp_client_sends(&c, "STARTTLS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 503, "STARTTLS in a transaction: %s", c.last);
	cr_assert(strstr(c.last, "transaction"), "%s", c.last);
	/* After RSET the transaction is over and STARTTLS is accepted. */
	cr_assert(stls_smtp_client_sends(&c, "RSET\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert(stls_smtp_client_sends(&c, "STARTTLS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	finish();
}

Test(tls, policy_off_does_not_offer_starttls)
{
	const char *extra[] = { "--inbound-tls", "off", NULL };
	start(extra);
	raw_connect_ehlo();
	cr_assert_null(strstr(c.last, "STARTTLS"), "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "STARTTLS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 502, "%s", c.last);
	cr_assert(strstr(c.last, "5.5.1"), "%s", c.last);
	/* Mail still flows in clear text. */
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert_eq(stls_smtp_client_reply(&c), 354);
	cr_assert(stls_smtp_client_sends(&c, "Subject: clear\r\n\r\nx\r\n.\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));
	char *m = stls_fixture_message(&fx, 0, false, NULL);
	cr_assert_str_eq(m, "Subject: clear\r\n\r\nx\r\n", "no trace header without TLS");
	free(m);
	finish();
}

Test(tls, policy_preferred_lets_clear_text_through, .init = setup)
{
	raw_connect_ehlo();
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert_eq(stls_smtp_client_reply(&c), 354);
	cr_assert(stls_smtp_client_sends(&c, "Subject: clear\r\n\r\nx\r\n.\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));
	finish();
}

Test(tls, policy_required_refuses_mail_before_starttls)
{
	const char *extra[] = { "--inbound-tls", "required", NULL };
	start(extra);
	raw_connect_ehlo();
	cr_assert(strstr(c.last, "STARTTLS"), "%s", c.last);
	static const char *refused[] = { "MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@y.test>\r\n", "DATA\r\n",
					 "VRFY root\r\n", "HELP\r\n" };
	for (unsigned i = 0; i < 5; i++) {
		cr_assert(stls_smtp_client_sends(&c, refused[i]));
		cr_assert_eq(stls_smtp_client_reply(&c), 530, "%s -> %s", refused[i], c.last);
		cr_assert(strstr(c.last, "530 5.7.0 Must issue a STARTTLS command first"), "%s", c.last);
	}
	static const char *allowed[] = { "NOOP\r\n", "RSET\r\n", "EHLO client.test\r\n", "HELO client.test\r\n" };
	for (unsigned i = 0; i < 4; i++) {
		cr_assert(stls_smtp_client_sends(&c, allowed[i]));
		cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s -> %s", allowed[i], c.last);
	}
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "TLS was required but remote host did not initiate it",
					       3000));
	cr_assert_eq(stls_proc_count_in_file(fx.proxy_log, "TLS was required"), 1, "logged once a session");
	stls_smtp_client_close(&c);
	/* Over TLS the same session shape delivers. */
	const char *args[] = { "-CAfile", ca_arg(), NULL };
	const char *input =
		"EHLO client.test\nMAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\nSubject: req\n\nx\n.\nQUIT\n";
	cr_assert_eq(stls_fixture_s_client(&fx, args, input, out, sizeof(out)), 0, "%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000), "%s", out);
	finish();
}

/* CVE-2011-0411: commands in the same segment as STARTTLS. */
Test(tls, injection_in_the_same_segment_is_rejected, .init = setup)
{
	unsigned closed = closes_logged();
	raw_connect_ehlo();
	cr_assert(stls_smtp_client_sends(&c,
					 "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 554, "%s", c.last);
	cr_assert(strstr(c.last, "5.5.0"), "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c), "the session goes on after an injection");
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "STARTTLS injection: ", 3000));
	wait_closes_logged(closed + 1);
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	cr_assert_null(strstr(log, "Start MID"), "the injected MAIL was acted on:\n%s", log);
	free(log);
	cr_assert_eq(backend_connections(), 0, "the backend was contacted");
	finish();
}

/* The same injection arriving in a later segment, after our 220: it is read as the start of the
 * handshake, is not TLS, and ends the session without being executed. */
Test(tls, injection_in_a_later_segment_is_never_executed, .init = setup)
{
	unsigned closed = closes_logged();
	raw_connect_ehlo();
	cr_assert(stls_smtp_client_sends(&c, "STARTTLS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\n"));
	cr_assert(stls_smtp_client_wait_closed(&c), "the session survived clear text after STARTTLS");
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log,
					       "TLS failed: plaintext received instead of a TLS handshake", 3000));
	wait_closes_logged(closed + 1);
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	cr_assert_null(strstr(log, "Start MID"), "%s", log);
	free(log);
	cr_assert_eq(backend_connections(), 0);
	finish();
}

/* Both segments sent back to back, without waiting for the 220: whichever way the reads fall,
 * nothing after STARTTLS is executed and the session ends. */
Test(tls, injection_racing_the_220_is_never_executed, .init = setup)
{
	unsigned closed = closes_logged();
	for (int i = 0; i < 5; i++) {
		raw_connect_ehlo();
		cr_assert(stls_smtp_client_sends(&c, "STARTTLS\r\n"));
		cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<evil@x.test>\r\n"));
		int code = stls_smtp_client_reply(&c);
		cr_assert(code == 220 || code == 554, "%d %s", code, c.last);
		cr_assert(stls_smtp_client_wait_closed(&c));
		stls_smtp_client_close(&c);
	}
	wait_closes_logged(closed + 5);
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	cr_assert_null(strstr(log, "Start MID"), "%s", log);
	free(log);
	cr_assert_eq(backend_connections(), 0);
	finish();
}

Test(tls, client_closing_mid_handshake_is_logged, .init = setup)
{
	raw_connect_ehlo();
	cr_assert(stls_smtp_client_sends(&c, "STARTTLS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 220);
	/* The first bytes of a ClientHello record, then nothing. */
	static const unsigned char hello_start[] = { 0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00 };
	cr_assert(stls_smtp_client_send(&c, hello_start, sizeof(hello_start)));
	stls_proc_sleep_ms(100);
	stls_smtp_client_close(&c);
	cr_assert(
		stls_proc_wait_file_contains(fx.proxy_log, "TLS failed: connection closed during the handshake", 3000));
	finish();
}

Test(tls, handshake_timeout_ends_the_session)
{
	const char *extra[] = { "--handshake-timeout", "1", NULL };
	start(extra);
	raw_connect_ehlo();
	cr_assert(stls_smtp_client_sends(&c, "STARTTLS\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 220);
	c.timeout_ms = 10000;
	cr_assert(stls_smtp_client_wait_closed(&c));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "TLS failed: handshake timed out", 3000));
	finish();
}

Test(tls, tls_1_0_and_1_1_are_refused, .init = setup)
{
	static const char *versions[] = { "-tls1", "-tls1_1" };
	for (unsigned i = 0; i < 2; i++) {
		/* OpenSSL 3 allows the old versions only at security level 0. */
		const char *args[] = { versions[i], "-cipher", "DEFAULT:@SECLEVEL=0", NULL };
		int code = stls_fixture_s_client(&fx, args, "QUIT\n", out, sizeof(out));
		cr_assert_neq(code, 0, "%s was accepted:\n%s", versions[i], out);
		cr_assert_null(strstr(out, "221 2.0.0"), "%s", out);
	}
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "TLS failed: unsupported protocol", 3000));
	/* TLS 1.2 works, with a forward-secret AEAD suite. */
	const char *args12[] = { "-tls1_2", NULL };
	cr_assert_eq(stls_fixture_s_client(&fx, args12, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "ECDHE-RSA-AES") || strstr(out, "ECDHE-RSA-CHACHA20"), "%s", out);
	cr_assert(strstr(out, "GCM") || strstr(out, "CHACHA20-POLY1305"), "%s", out);
	/* CBC suites and static RSA key exchange are not offered. */
	const char *cbc[] = { "-tls1_2", "-cipher", "AES128-SHA:ECDHE-RSA-AES128-SHA:AES256-GCM-SHA384", NULL };
	cr_assert_neq(stls_fixture_s_client(&fx, cbc, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	finish();
}

Test(tls, resumption_works_across_workers, .init = setup)
{
	char sess[320];
	snprintf(sess, sizeof(sess), "%s/session.pem", fx.dir);
	const char *first[] = { "-sess_out", sess, NULL };
	/* EHLO first: TLS 1.3 tickets are sent with the server's first reply. */
	cr_assert_eq(stls_fixture_s_client(&fx, first, "EHLO client.test\nQUIT\n", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "New, TLSv1.3"), "%s", out);
	/* The worker index is the ICID modulo the worker count (2): keep resuming until both workers
	 * have resumed a session. */
	const char *again[] = { "-sess_in", sess, NULL };
	bool seen[2] = { false, false };
	for (int i = 0; i < 40 && !(seen[0] && seen[1]); i++) {
		cr_assert_eq(stls_fixture_s_client(&fx, again, "EHLO client.test\nQUIT\n", out, sizeof(out)), 0, "%s",
			     out);
		cr_assert(strstr(out, "Reused, TLSv1.3"), "not resumed (attempt %d):\n%s", i, out);
		char *log = stls_proc_read_file(fx.proxy_log, NULL);
		for (const char *p = log; (p = strstr(p, "TLS session resumed"));) {
			const char *line = p;
			while (line > log && line[-1] != '\n')
				line--;
			unsigned long long icid;
			if (sscanf(line, "%*s Info: ICID %llu", &icid) == 1)
				seen[icid % 2] = true;
			p += 10;
		}
		free(log);
	}
	cr_assert(seen[0] && seen[1], "resumption not seen on both workers");
	finish();
}

/* Runs tests/interop/scripts/ticket_flight.py against the proxy (extra: its flags). */
static int ticket_flight(const char *const extra[])
{
	char script[512], port[16];
	stls_proc_repo_path("tests/interop/scripts/ticket_flight.py", script, sizeof(script));
	snprintf(port, sizeof(port), "%u", fx.proxy_port);
	char *argv[16] = { "python3", script, "--port", port };
	unsigned n = 4;
	for (unsigned i = 0; extra && extra[i] && n < 15; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	return stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
}

/* A TLS 1.3 session ticket goes out with the reply to the client's next command, not on its own
 * after the client's Finished: one send and one segment per handshake fewer (BoringSSL keeps the
 * ticket until the next write, and nothing in the proxy may flush it earlier: a zero-byte write
 * at the handshake's end would). The ticket is whole and resumes. TLS 1.2's is part of the
 * handshake's last flight. */
Test(tls, tls13_ticket_goes_out_with_the_next_reply, .init = setup)
{
	const char *resume[] = { "--resume", NULL };
	cr_assert_eq(ticket_flight(resume), 0, "%s", out);
	cr_assert(strstr(out, "version: TLSv1.3\n"), "%s", out);
	cr_assert(strstr(out, "unasked-bytes: 0\n"), "the ticket was sent on its own:\n%s", out);
	cr_assert(strstr(out, "ehlo-tls: 250\n"), "%s", out);
	cr_assert(strstr(out, "ticket: yes\n"), "%s", out);
	cr_assert(strstr(out, "reused: yes\n"), "%s", out);

	const char *tls12[] = { "--tls12", "--resume", NULL };
	cr_assert_eq(ticket_flight(tls12), 0, "%s", out);
	cr_assert(strstr(out, "version: TLSv1.2\n"), "%s", out);
	cr_assert(strstr(out, "ticket-after-handshake: yes\n"), "%s", out);
	cr_assert(strstr(out, "reused: yes\n"), "%s", out);
	finish();
}

Test(tls, demo_certificate_when_none_is_given)
{
	cr_assert(stls_fixture_init(&fx, "tlsdemo"));
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "see %s", fx.proxy_out);
	cr_assert(
		stls_proc_wait_file_contains(fx.proxy_log, "ephemeral self-signed demo certificate for mx.test", 3000));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "peers cannot verify it", 100));
	const char *args[] = { NULL };
	cr_assert_eq(stls_fixture_s_client(&fx, args, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "subject=CN = mx.test"), "%s", out);
	cr_assert(strstr(out, "self-signed") || strstr(out, "self signed"), "%s", out);
	finish();
}

Test(tls, handshake_flood_opens_no_backend_connection, .init = setup)
{
	const char *args[] = { NULL };
	for (int i = 0; i < 10; i++)
		cr_assert_eq(stls_fixture_s_client(&fx, args, "EHLO client.test\nNOOP\nQUIT\n", out, sizeof(out)), 0,
			     "%s", out);
	cr_assert_eq(stls_proc_wait_count(fx.proxy_log, "TLS success", 10, 3000), 10);
	cr_assert_eq(backend_connections(), 0, "handshakes reached the backend");
	finish();
}

/* The EHLO name is the client's: whatever it holds, the trace header stays one header. */
Test(tls, trace_header_is_sanitised, .init = setup)
{
	const char *args[] = { NULL };
	const char *input =
		"EHLO evil\x01name;(x)\tby\nMAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\nSubject: s\n\nx\n.\nQUIT\n";
	cr_assert_eq(stls_fixture_s_client(&fx, args, input, out, sizeof(out)), 0, "%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000), "%s", out);
	char *m = stls_fixture_message(&fx, 0, false, NULL);
	cr_assert(strncmp(m, "Received: from evil_name__x__by (unknown [127.0.0.1])\r\n", 55) == 0, "%s", m);
	free(m);
	finish();
}

Test(tls, ticket_key_file_is_used_and_shared)
{
	char keys[320];
	cr_assert(stls_fixture_init(&fx, "tlskeys"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	snprintf(keys, sizeof(keys), "%s/tickets.key", pki);
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	const char *extra[] = { "--ticket-key-file", keys, NULL };
	cr_assert(stls_fixture_start_proxy(&fx, extra), "see %s", fx.proxy_out);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "session-ticket keys read from", 3000));
	char sess[320];
	snprintf(sess, sizeof(sess), "%s/session.pem", fx.dir);
	const char *first[] = { "-sess_out", sess, NULL };
	cr_assert_eq(stls_fixture_s_client(&fx, first, "EHLO client.test\nQUIT\n", out, sizeof(out)), 0, "%s", out);
	/* A second node with the same key file resumes the first one's session. The first one
	 * stops first, so the session cannot have come from it. */
	cr_assert_eq(stls_proc_stop(&fx.proxy, SIGTERM, 10000), 0);
	struct stls_fixture node2;
	cr_assert(stls_fixture_init(&node2, "tlskeys2"));
	node2.backend_port = fx.backend_port;
	cr_assert(stls_fixture_start_proxy(&node2, extra), "see %s", node2.proxy_out);
	const char *again[] = { "-sess_in", sess, NULL };
	int code = stls_fixture_s_client(&node2, again, "EHLO client.test\nQUIT\n", out, sizeof(out));
	int node2_exit = stls_fixture_cleanup(&node2);
	cr_assert_eq(code, 0, "%s", out);
	cr_assert(strstr(out, "Reused, TLSv1.3"), "not resumed on the second node:\n%s", out);
	cr_assert_eq(node2_exit, 0);
	finish();
}

/* Certificates the daemon must refuse at start-up, each with its reason (spec S5, S9). */
static void expect_refused(const char *const flags[], const char *reason)
{
	char daemon[512];
	stls_proc_build_path("starttlsd", daemon, sizeof(daemon));
	char *argv[16] = { daemon, "--listen", "127.0.0.1:1", "--hostname", "mx.test", "--log", "-" };
	unsigned n = 7;
	for (unsigned i = 0; flags[i]; i++)
		argv[n++] = (char *)flags[i];
	argv[n] = NULL;
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 1, "started anyway (exit %d):\n%s", code, out);
	cr_assert(strstr(out, reason), "the reason \"%s\" is missing:\n%s", reason, out);
}

Test(tls, broken_certificates_are_refused_at_start_up)
{
	cr_assert(stls_fixture_init(&fx, "tlscerts"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	char leaf[320], key[320], other_key[320], other_int[320], expired[320], expired_key[320], intm[320], dup[320];
	snprintf(leaf, sizeof(leaf), "%s/leaf.pem", pki);
	snprintf(key, sizeof(key), "%s/leaf.key", pki);
	snprintf(other_key, sizeof(other_key), "%s/other.key", pki);
	snprintf(other_int, sizeof(other_int), "%s/other-int.pem", pki);
	snprintf(expired, sizeof(expired), "%s/expired.pem", pki);
	snprintf(expired_key, sizeof(expired_key), "%s/expired.key", pki);
	snprintf(intm, sizeof(intm), "%s/int.pem", pki);
	snprintf(dup, sizeof(dup), "%s/chain-dup.pem", pki);
	const char *mismatch[] = { "--cert", leaf, "--key", other_key, "--chain", intm, NULL };
	expect_refused(mismatch, "the private key does not match the certificate");
	const char *broken[] = { "--cert", leaf, "--key", key, "--chain", other_int, NULL };
	expect_refused(broken, "broken chain: \"CN = Other Intermediate\"");
	const char *old[] = { "--cert", expired, "--key", expired_key, "--chain", intm, NULL };
	expect_refused(old, "has expired");
	const char *missing[] = { "--cert", leaf, "--key", "/nonexistent/key.pem", NULL };
	expect_refused(missing, "/nonexistent/key.pem: No such file or directory");

	/* Duplicate intermediates: a warning, and the daemon runs with the chain deduplicated. */
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	const char *dups[] = { "--cert", leaf, "--key", key, "--chain", dup, NULL };
	cr_assert(stls_fixture_start_proxy(&fx, dups), "see %s", fx.proxy_out);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "duplicate certificate \"CN = Test Intermediate\"", 3000));
	const char *args[] = { "-CAfile", ca_arg(), "-verify_return_error", NULL };
	cr_assert_eq(stls_fixture_s_client(&fx, args, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	finish();
}

Test(tls, pkcs12_certificate_is_served)
{
	cr_assert(stls_fixture_init(&fx, "tlsp12"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	char p12[320], pass[320];
	snprintf(p12, sizeof(p12), "%s/leaf.p12", pki);
	snprintf(pass, sizeof(pass), "%s/leaf.p12.password", pki);
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	const char *extra[] = { "--p12", p12, "--p12-password-file", pass, NULL };
	cr_assert(stls_fixture_start_proxy(&fx, extra), "see %s", fx.proxy_out);
	const char *args[] = { "-CAfile", ca_arg(), "-verify_return_error", "-verify_hostname", "mx.test", NULL };
	cr_assert_eq(stls_fixture_s_client(&fx, args, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "221 2.0.0"), "%s", out);
	finish();
}

/* Random ticket keys rotate on schedule: a ticket still resumes one period later, and no longer
 * once its key has aged out (the current key and two older ones are kept). */
Test(tls, random_ticket_keys_rotate_on_schedule)
{
	/* A 2 s period: the second connection, one period later, still has a whole period of margin
	 * before the key that sealed its ticket ages out, however slowly s_client starts. */
	const char *extra[] = { "--ticket-key-rotation", "2", NULL };
	start(extra);
	char sess[320];
	snprintf(sess, sizeof(sess), "%s/session.pem", fx.dir);
	const char *first[] = { "-sess_out", sess, NULL };
	cr_assert_eq(stls_fixture_s_client(&fx, first, "EHLO client.test\nQUIT\n", out, sizeof(out)), 0, "%s", out);
	const char *again[] = { "-sess_in", sess, NULL };
	stls_proc_sleep_ms(2200);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "session-ticket keys rotated", 5000));
	cr_assert_eq(stls_fixture_s_client(&fx, again, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "Reused, TLSv1.3"), "a ticket of the previous key must still resume:\n%s", out);
	/* Three more rotations: the key that sealed the ticket is gone. */
	unsigned before = stls_proc_count_in_file(fx.proxy_log, "session-ticket keys rotated");
	for (int i = 0; i < 200 && stls_proc_count_in_file(fx.proxy_log, "session-ticket keys rotated") < before + 3;
	     i++)
		stls_proc_sleep_ms(100);
	cr_assert_eq(stls_fixture_s_client(&fx, again, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "New, TLSv1.3"), "an expired ticket key still opened the ticket:\n%s", out);
	finish();
}
