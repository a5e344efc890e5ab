/* Interop: inbound STARTTLS (RFC 3207) with the TLS clients mail is really sent with, and Postfix
 * on either side of the proxy:
 *
 *	swaks --tls, Python smtplib           -> starttlsd -> demo backend
 *	send.py -> Postfix smtp (STARTTLS)    -> starttlsd -> demo backend
 *	smtplib STARTTLS -> starttlsd -> Postfix (clear text) -> demo backend
 *
 * The proxy serves the test PKI's leaf (tests/support/make-pki) and its intermediate; every client
 * trusts only the PKI's root, so a chain the proxy serves wrongly fails here. Each client is first
 * shown a certificate it must refuse, so that "verified" cannot pass with verification off.
 *
 * swaks, Perl's Net::SSLeay and Postfix are required: where one is missing the tests fail (they
 * do not skip), so that a machine without them cannot pass the suite by accident. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"

static struct stls_fixture fx;
static char pki[256];
static char out[65536];
static char postfix_dir[192];
static uint16_t postfix_port;

/* What the proxy writes in its trace header's "by" clause on a TLS session. */
static const char proxy_by[] = "by mx.test (starttlsd) with ESMTPS (TLSv1.";

/* Ends with what every hop must pass on untouched: Date and Message-ID present (so Postfix adds
 * neither), lines starting with '.', a line that is only "..", 8-bit text, and an empty line
 * before the end. No "%": swaks would read it as a token. */
static const char message[] = "Date: Tue, 03 Nov 2026 10:00:00 +0000\r\n"
			      "Message-ID: <tls-clients-1@client.test>\r\n"
			      "From: Alice <alice@example.test>\r\n"
			      "To: Bob <bob@example.test>\r\n"
			      "Subject: over STARTTLS\r\n"
			      "MIME-Version: 1.0\r\n"
			      "Content-Type: text/plain; charset=utf-8\r\n"
			      "Content-Transfer-Encoding: 8bit\r\n"
			      "\r\n"
			      ".leading dot\r\n"
			      "..\r\n"
			      "caf\xc3\xa9 \xe2\x82\xac 8-bit\r\n"
			      "\r\n"
			      "last line\r\n";

static char *pki_file(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", pki, name);
	return buf;
}

/* The folder, a PKI and the demo backend; the proxy is started separately, as Postfix may have to
 * come up in between. */
static void start_backend(void)
{
	cr_assert(stls_fixture_init(&fx, "tlsclients"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
}

/* The proxy with the PKI's RSA certificate and its intermediate, in front of fx.backend_port. */
static void start_proxy(void)
{
	static char cert[320], key[320], chain[320];
	const char *args[] = { "--cert",  pki_file(cert, sizeof(cert), "leaf.pem"),
			       "--key",	  pki_file(key, sizeof(key), "leaf.key"),
			       "--chain", pki_file(chain, sizeof(chain), "int.pem"),
			       NULL };
	cr_assert(stls_fixture_start_proxy(&fx, args), "starttlsd did not start (see %s)", fx.proxy_out);
	/* The readiness probe was a session: let it end, so it cannot mix with the test's lines. */
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "close", 5000));
}

static void start(void)
{
	start_backend();
	start_proxy();
}

/* --- Postfix --------------------------------------------------------------------------------- */

static char *instance_script(char *buf, size_t len)
{
	stls_proc_repo_path("tests/support/postfix-instance", buf, len);
	return buf;
}

/* A child that stops the Postfix instance when this test process ends without running .fini:
 * Criterion skips .fini after a timeout, and Postfix's master detaches into a session of its own,
 * so PDEATHSIG does not reach it. The child waits for EOF on a pipe whose only write end this
 * process holds (close-on-exec, so no daemon inherits it), and runs in a session of its own so
 * that a ^C on the terminal does not take it down too. (As in postfix_test.c.) */
static pid_t guard_pid = -1;
static int guard_fd = -1;

static void start_guard(void)
{
	char script[512], log[256];
	instance_script(script, sizeof(script));
	snprintf(log, sizeof(log), "%s/postfix-guard.log", fx.dir);
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int fds[2];
	cr_assert(logfd >= 0 && pipe2(fds, O_CLOEXEC) == 0, "guard: %s", strerror(errno));
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		close(fds[1]);
		char c;
		while (read(fds[0], &c, 1) != 0 && errno == EINTR) {
		}
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		char *argv[] = { "/bin/bash", script, "stop", postfix_dir, NULL };
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[0]);
	close(logfd);
	guard_pid = pid;
	guard_fd = fds[1];
}

static void stop_guard(void)
{
	if (guard_pid > 0) {
		kill(guard_pid, SIGKILL);
		waitpid(guard_pid, NULL, 0);
	}
	if (guard_fd >= 0)
		close(guard_fd);
	guard_pid = guard_fd = -1;
}

/* Starts (or restarts, keeping queue and log) the instance in <fx.dir>/postfix on postfix_port,
 * relaying everything to 127.0.0.1:relay_port, with main.cf overrides (name=value, NULL-ended). */
static void postfix_start(uint16_t relay_port, const char *const overrides[])
{
	char script[512], port[16], relay[64];
	if (!postfix_dir[0]) {
		snprintf(postfix_dir, sizeof(postfix_dir), "%s/postfix", fx.dir);
		do
			postfix_port = stls_proc_free_port();
		while (postfix_port == 0 || postfix_port == fx.backend_port || postfix_port == fx.proxy_port);
		start_guard();
	}
	snprintf(port, sizeof(port), "%u", postfix_port);
	snprintf(relay, sizeof(relay), "127.0.0.1:%u", relay_port);
	char *argv[32] = { "bash",	   instance_script(script, sizeof(script)),
			   "start",	   postfix_dir,
			   "--smtpd-port", port,
			   "--relay",	   relay };
	unsigned n = 8;
	for (unsigned i = 0; overrides && overrides[i] && n < 29; i++) {
		argv[n++] = "-o";
		argv[n++] = (char *)overrides[i];
	}
	argv[n] = NULL;
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 45000);
	cr_assert_eq(code, 0,
		     "the Postfix instance did not start (exit %d); this suite needs Postfix installed "
		     "(postconf, master) and root:\n%s",
		     code, out);
}

/* Runs `postfix-instance CMD DIR`; its output lands in buf. Returns its exit code. */
static int postfix_cmd(const char *cmd, char *buf, size_t len, int timeout_ms)
{
	char script[512];
	char *argv[] = { "bash", instance_script(script, sizeof(script)), (char *)cmd, postfix_dir, NULL };
	return stls_proc_run(argv, NULL, 0, buf, len, timeout_ms);
}

/* Stops the instance (if one was started) and its guard. Returns the stop command's exit code. */
static int postfix_stop(char *buf, size_t len)
{
	int code = 0;
	buf[0] = '\0';
	stop_guard();
	if (postfix_dir[0])
		code = postfix_cmd("stop", buf, len, 30000);
	postfix_dir[0] = '\0';
	return code;
}

/* The Postfix instance log, through the script (not by reading maillog), NUL-terminated. */
static char *postfix_log(void)
{
	char *log = malloc(1 << 20);
	cr_assert_not_null(log);
	int code = postfix_cmd("log", log, 1 << 20, 10000);
	cr_assert_eq(code, 0, "postfix-instance log failed: %s", log);
	return log;
}

/* True if one line of log contains has and then, further on, also (unless NULL). */
static bool log_has_line(const char *log, const char *has, const char *also)
{
	for (const char *p = log; (p = strstr(p, has)); p += strlen(has)) {
		const char *eol = strchr(p, '\n');
		const char *a = also ? strstr(p + strlen(has), also) : p;
		if (a && (!eol || a < eol))
			return true;
	}
	return false;
}

/* Waits until the Postfix log has a line with has (then also), polling: Postfix logs through its
 * own postlogd, asynchronously. Fails the test with the log. */
static void wait_postfix_log(const char *has, const char *also, int timeout_ms)
{
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		char *log = postfix_log();
		bool found = log_has_line(log, has, also);
		if (!found && stls_proc_now_ms() >= end)
			cr_assert_fail("the Postfix log has no line with \"%s\"%s%s%s after %d ms:\n%s", has,
				       also ? " then \"" : "", also ? also : "", also ? "\"" : "", timeout_ms, log);
		free(log);
		if (found)
			return;
		stls_proc_sleep_ms(200);
	}
}

/* Waits until the demo backend has stored a message that Postfix relayed, asking Postfix to
 * retry its deferred queue every 2 s, in case an attempt failed and was deferred. */
static void wait_relayed(int timeout_ms)
{
	char buf[4096];
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	while (!stls_fixture_wait_messages(&fx, 1, 2000)) {
		if (stls_proc_now_ms() >= end) {
			char *log = postfix_log();
			postfix_cmd("queue", buf, sizeof(buf), 10000);
			cr_assert_fail("the demo backend stored nothing in %d ms; Postfix queue:\n%s\nPostfix log:\n%s",
				       timeout_ms, buf, log);
		}
		postfix_cmd("flush", buf, sizeof(buf), 10000);
	}
}

/* --- Set-up and checks ----------------------------------------------------------------------- */

static void teardown(void)
{
	char buf[4096];
	/* Postfix is stopped before its folder goes. */
	postfix_stop(buf, sizeof(buf));
	stls_fixture_cleanup(&fx);
}

/* The end of a passing test: Postfix (if any) and the proxy stop cleanly. */
static void finish(void)
{
	char buf[4096];
	int code = postfix_stop(buf, sizeof(buf));
	cr_assert_eq(code, 0, "postfix-instance stop failed (exit %d):\n%s", code, buf);
	code = stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "starttlsd did not exit cleanly (%d); its output was printed above", code);
}

TestSuite(tls_clients, .fini = teardown, .timeout = 120);

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

/* Checks that a Received: field starts at p, names the EHLO name from and contains by. Returns
 * the start of the next field. */
static const char *expect_received(const char *p, const char *end, const char *from, const char *by)
{
	char head[128];
	int head_len = snprintf(head, sizeof(head), "Received: from %s ", from);
	cr_assert(end - p > head_len && memcmp(p, head, (size_t)head_len) == 0,
		  "expected a field starting \"%s\":\n%.*s", head, (int)(end - p), p);
	const char *next = end_of_field(p, end);
	cr_assert_not_null(next, "unterminated Received: field:\n%.*s", (int)(end - p), p);
	cr_assert(memmem(p, (size_t)(next - p), by, strlen(by)), "the Received: field lacks \"%s\":\n%.*s", by,
		  (int)(next - p), p);
	return next;
}

/* Checks that what follows the trace fields is exactly the message sent. */
static void expect_message_at(const char *p, const char *end)
{
	size_t len = (size_t)(end - p);
	cr_assert_eq(len, sizeof(message) - 1, "after the trace fields %zu bytes, sent %zu:\n%.*s", len,
		     sizeof(message) - 1, (int)len, p);
	cr_assert(memcmp(p, message, len) == 0, "the stored message differs from what was sent:\n%.*s", (int)len, p);
}

/* The one message the demo backend stored (the test fails if there are more). Free with free(). */
static char *the_stored_message(size_t *out_len)
{
	cr_assert_eq(stls_fixture_num_messages(&fx), 1, "the demo backend stored %u messages",
		     stls_fixture_num_messages(&fx));
	char *m = stls_fixture_message(&fx, 0, false, out_len);
	cr_assert_not_null(m);
	return m;
}

/* A line of a client's output that starts with prefix, up to its end, copied into buf. */
static const char *output_line(const char *text, const char *prefix, char *buf, size_t len)
{
	const char *p = strstr(text, prefix);
	cr_assert_not_null(p, "no line \"%s\" in:\n%s", prefix, text);
	size_t n = strcspn(p, "\n");
	snprintf(buf, len, "%.*s", (int)n, p);
	return buf;
}

/* Sends message with tests/interop/scripts/send_starttls.py to the proxy, trusting only the root
 * cafile names and checking the certificate against server_name. Returns its exit code; its
 * output is in out. */
static int smtplib_starttls(const char *cafile, const char *server_name)
{
	char script[512], port[16], msgfile[256], ca[320];
	stls_proc_repo_path("tests/interop/scripts/send_starttls.py", script, sizeof(script));
	snprintf(port, sizeof(port), "%u", fx.proxy_port);
	snprintf(msgfile, sizeof(msgfile), "%s/smtplib.eml", fx.dir);
	cr_assert(stls_proc_write_file(msgfile, message, sizeof(message) - 1));
	char *argv[] = { "python3",
			 script,
			 "--port",
			 port,
			 "--cafile",
			 pki_file(ca, sizeof(ca), cafile),
			 "--server-name",
			 (char *)server_name,
			 "--from",
			 "alice@example.test",
			 "--to",
			 "bob@example.test",
			 "--message",
			 msgfile,
			 NULL };
	return stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
}

/* --- The tests ------------------------------------------------------------------------------- */

/* swaks' STARTTLS goes through Perl's Net::SSLeay, which Debian's swaks only recommends. */
static void require_net_ssleay(void)
{
	char *argv[] = { "perl", "-MNet::SSLeay", "-e", "print Net::SSLeay::SSLeay_version(0)", NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 10000);
	cr_assert_eq(code, 0,
		     "swaks --tls needs Perl's Net::SSLeay (Debian package libnet-ssleay-perl), which is not "
		     "installed:\n%s",
		     out);
}

/* Runs swaks --tls --tls-verify against the proxy, trusting only the root cafile names, sending
 * message (already dot-stuffed in msgfile). Returns its exit code; its transcript is in out. */
static int swaks_tls(const char *cafile, const char *msgfile)
{
	char server[64], ca[320], data[300];
	snprintf(server, sizeof(server), "127.0.0.1:%u", fx.proxy_port);
	snprintf(data, sizeof(data), "@%s", msgfile);
	/* --no-data-fixup: the file goes out as it is (swaks would otherwise rewrite the headers and
	 * add an empty line before the final dot), so what was sent is known to the byte. swaks'
	 * --tls-verify checks the chain only; this swaks has no host name check. */
	char *argv[] = { "swaks",
			 "--server",
			 server,
			 "--helo",
			 "swaks.test",
			 "--from",
			 "alice@example.test",
			 "--to",
			 "bob@example.test",
			 "--timeout",
			 "20",
			 "--tls",
			 "--tls-verify",
			 "--tls-ca-path",
			 pki_file(ca, sizeof(ca), cafile),
			 "--data",
			 data,
			 "--no-data-fixup",
			 NULL };
	return stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
}

Test(tls_clients, swaks_tls_verified_message_arrives_unchanged)
{
	start();
	require_net_ssleay();
	/* With --no-data-fixup the file is the DATA section as sent: dot-stuffed (RFC 5321 4.5.2),
	 * ending in the final "." (swaks adds its CRLF). */
	char msgfile[256], stuffed[2 * sizeof(message) + 8];
	size_t n = 0;
	for (const char *line = message; *line;) {
		const char *lf = strchr(line, '\n');
		size_t len = (size_t)(lf - line) + 1;
		if (*line == '.')
			stuffed[n++] = '.';
		memcpy(stuffed + n, line, len);
		n += len;
		line += len;
	}
	stuffed[n++] = '.';
	snprintf(msgfile, sizeof(msgfile), "%s/swaks.eml", fx.dir);
	cr_assert(stls_proc_write_file(msgfile, stuffed, n));

	/* A root that did not sign the proxy's chain: with --tls-verify swaks must give up. */
	int code = swaks_tls("other-ca.pem", msgfile);
	cr_assert_neq(code, 0, "swaks accepted a certificate its CA file does not vouch for:\n%s", out);
	cr_assert(strstr(out, "certificate verify failed"), "%s", out);
	cr_assert_eq(stls_fixture_num_messages(&fx), 0, "a message arrived without verified TLS");

	code = swaks_tls("ca.pem", msgfile);
	cr_assert_eq(code, 0, "swaks --tls failed (exit %d):\n%s", code, out);
	cr_assert(strstr(out, "=== TLS started with cipher TLSv1."), "%s", out);
	cr_assert(strstr(out, "<~  250 2.0.0 Ok: queued as "), "the end-of-data reply was not 250:\n%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000), "the demo backend stored nothing:\n%s", out);
	size_t len;
	char *m = the_stored_message(&len);
	const char *rest = expect_received(m, m + len, "swaks.test", proxy_by);
	expect_message_at(rest, m + len);
	free(m);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "TLS success protocol TLSv1.", 3000));
	finish();
}

Test(tls_clients, smtplib_starttls_checks_the_name_and_message_arrives_unchanged)
{
	start();
	/* The right root but another name: the host name check must refuse it. */
	int code = smtplib_starttls("ca.pem", "other.test");
	cr_assert_neq(code, 0, "smtplib accepted a certificate for mx.test as other.test:\n%s", out);
	cr_assert(strstr(out, "Hostname mismatch"), "%s", out);
	cr_assert_eq(stls_fixture_num_messages(&fx), 0, "a message arrived without verified TLS");

	code = smtplib_starttls("ca.pem", "mx.test");
	cr_assert_eq(code, 0, "send_starttls.py failed (exit %d):\n%s", code, out);
	char line[4096];
	cr_assert(strstr(output_line(out, "ehlo-clear: 250 ", line, sizeof(line)), " | STARTTLS"),
		  "STARTTLS not offered in clear text: %s", line);
	cr_assert(strncmp(output_line(out, "tls: ", line, sizeof(line)), "tls: TLSv1.", 11) == 0, "%s", line);
	/* RFC 3207 4.2: a server must not offer STARTTLS again inside TLS. */
	cr_assert_null(strstr(output_line(out, "ehlo-tls: 250 ", line, sizeof(line)), "STARTTLS"),
		       "STARTTLS offered inside TLS: %s", line);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000), "the demo backend stored nothing:\n%s", out);
	size_t len;
	char *m = the_stored_message(&len);
	const char *rest = expect_received(m, m + len, "client.test", proxy_by);
	expect_message_at(rest, m + len);
	free(m);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "TLS success protocol TLSv1.", 3000));
	finish();
}

/* Hands message to Postfix's smtpd in clear text with send.py. */
static void inject_into_postfix(void)
{
	char script[512], port[16], msgfile[256];
	stls_proc_repo_path("tests/interop/scripts/send.py", script, sizeof(script));
	snprintf(port, sizeof(port), "%u", postfix_port);
	snprintf(msgfile, sizeof(msgfile), "%s/inject.eml", fx.dir);
	cr_assert(stls_proc_write_file(msgfile, message, sizeof(message) - 1));
	char *argv[] = { "python3",	     script,	  "--port", port, "--from", "alice@example.test", "--to",
			 "bob@example.test", "--message", msgfile,  NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 30000);
	cr_assert_eq(code, 0, "send.py to Postfix failed: %s", out);
}

/* What Postfix as the sending MTA must have done: relayed over TLS to the proxy (tls_kind:
 * "Trusted", "Verified"), which relayed to the demo backend; the stored message carries the
 * proxy's trace header, then Postfix's, then the message as injected. */
static void expect_relayed_by_postfix_over_tls(const char *tls_kind)
{
	wait_relayed(20000);
	char tls_line[160], relay[128];
	snprintf(tls_line, sizeof(tls_line), "%s TLS connection established to 127.0.0.1[127.0.0.1]:%u: ", tls_kind,
		 fx.proxy_port);
	snprintf(relay, sizeof(relay), "to=<bob@example.test>, relay=127.0.0.1[127.0.0.1]:%u,", fx.proxy_port);
	wait_postfix_log(tls_line, "TLSv1.", 10000);
	wait_postfix_log(relay, " status=sent (250 ", 10000);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "TLS success protocol TLSv1.", 3000));

	size_t len;
	char *m = the_stored_message(&len);
	const char *end = m + len;
	/* The proxy's session was with Postfix, which said EHLO legacy.test. */
	const char *p = expect_received(m, end, "legacy.test", proxy_by);
	p = expect_received(p, end, "client.test", "by legacy.test (Postfix) with ESMTP id ");
	expect_message_at(p, end);
	free(m);
}

Test(tls_clients, postfix_sender_encrypt_relays_through_the_proxy)
{
	start();
	char ca[320], cafile[340];
	snprintf(cafile, sizeof(cafile), "smtp_tls_CAfile=%s", pki_file(ca, sizeof(ca), "ca.pem"));
	const char *o[] = { "smtp_tls_security_level=encrypt", cafile, "smtp_tls_loglevel=1", NULL };
	postfix_start(fx.proxy_port, o);
	inject_into_postfix();
	/* "encrypt" does not check the peer, but with the root as CA file Postfix logs whether the
	 * chain the proxy served verifies: "Trusted" if it does, "Untrusted" if not. */
	expect_relayed_by_postfix_over_tls("Trusted");
	finish();
}

/* Postfix 3.7's "verify" level matches the relayhost's certificate by the strategy in
 * smtp_tls_verify_cert_match. Its default, "hostname", compares the certificate with the host
 * name of the next hop, which for a bracketed numeric relayhost ([127.0.0.1]:port, no DNS) is the
 * address itself: it can never match mx.test ("IP address mismatch") and the mail is deferred. A
 * literal name in the list (smtp_tls_verify_cert_match=mx.test) is what makes the name check
 * work; smtp_tls_servername=mx.test only sets the SNI. Both halves are shown here, on one queued
 * message: deferred, then delivered once the instance is restarted with the literal name. */
Test(tls_clients, postfix_sender_verify_needs_the_literal_name)
{
	start();
	char ca[320], cafile[340];
	snprintf(cafile, sizeof(cafile), "smtp_tls_CAfile=%s", pki_file(ca, sizeof(ca), "ca.pem"));
	const char *by_hostname[] = { "smtp_tls_security_level=verify",
				      "smtp_tls_verify_cert_match=hostname",
				      "smtp_tls_servername=mx.test",
				      cafile,
				      "smtp_tls_loglevel=1",
				      NULL };
	postfix_start(fx.proxy_port, by_hostname);
	inject_into_postfix();
	char relay[128];
	snprintf(relay, sizeof(relay), "to=<bob@example.test>, relay=127.0.0.1[127.0.0.1]:%u,", fx.proxy_port);
	wait_postfix_log(relay, " status=deferred (Server certificate not verified)", 20000);
	cr_assert_eq(stls_fixture_num_messages(&fx), 0, "Postfix delivered without a verified name");

	char buf[4096];
	int code = postfix_cmd("stop", buf, sizeof(buf), 30000);
	cr_assert_eq(code, 0, "postfix-instance stop failed (exit %d):\n%s", code, buf);
	const char *by_name[] = { "smtp_tls_security_level=verify",
				  "smtp_tls_verify_cert_match=mx.test",
				  "smtp_tls_servername=mx.test",
				  cafile,
				  "smtp_tls_loglevel=1",
				  NULL };
	postfix_start(fx.proxy_port, by_name);
	expect_relayed_by_postfix_over_tls("Verified");
	finish();
}

/* Postfix as the legacy MTA behind the proxy, the client on TLS: the message arrives with both
 * trace headers, Postfix's on top of the proxy's. */
Test(tls_clients, postfix_behind_the_proxy_takes_mail_from_a_tls_client)
{
	start_backend();
	uint16_t demo_port = fx.backend_port;
	postfix_start(demo_port, NULL);
	/* The proxy reads its backend from fx.backend_port: point it at Postfix, not the demo backend. */
	fx.backend_port = postfix_port;
	start_proxy();

	int code = smtplib_starttls("ca.pem", "mx.test");
	cr_assert_eq(code, 0, "send_starttls.py failed (exit %d):\n%s", code, out);
	char line[4096];
	cr_assert(strncmp(output_line(out, "tls: ", line, sizeof(line)), "tls: TLSv1.", 11) == 0, "%s", line);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "TLS success protocol TLSv1.", 3000));

	char relay[128];
	snprintf(relay, sizeof(relay), "to=<bob@example.test>, relay=127.0.0.1[127.0.0.1]:%u,", demo_port);
	wait_postfix_log(relay, " status=sent (250 ", 20000);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 10000), "the demo backend stored nothing");
	size_t len;
	char *m = the_stored_message(&len);
	const char *end = m + len;
	/* The proxy relays the client's EHLO name to Postfix rather than its own. */
	const char *p = expect_received(m, end, "client.test", "by legacy.test (Postfix) with ESMTP id ");
	p = expect_received(p, end, "client.test", proxy_by);
	expect_message_at(p, end);
	free(m);
	char *env = stls_fixture_message(&fx, 0, true, NULL);
	cr_assert_not_null(env);
	cr_assert(strstr(env, "\"helo\": \"legacy.test\""), "the demo backend was not reached by Postfix: %s", env);
	free(env);
	finish();
}
