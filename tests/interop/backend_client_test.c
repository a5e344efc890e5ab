/* Interop: the backend learns the real client. Postfix is the legacy MTA behind the proxy, set up
 * for XCLIENT (smtpd_authorized_xclient_hosts) in one test and for the PROXY protocol
 * (smtpd_upstream_proxy_protocol = haproxy, v1 and v2) in others; its log and its own trace
 * header must name the client's address, not the proxy's:
 *
 *	client 127.0.0.5 -> starttlsd (127.0.0.1) -> Postfix smtpd -> Postfix smtp -> demo backend */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixture.h"
#include "tests/support/postfix.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx;
static struct stls_postfix postfix = { .guard_pid = -1, .guard_fd = -1 };

static void start(const char *const postfix_settings[], const char *const proxy_args[])
{
	char relay[64], out[8192];
	cr_assert(stls_fixture_init(&fx, "beclient"));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
	uint16_t postfix_port;
	do
		postfix_port = stls_proc_free_port();
	while (postfix_port == 0 || postfix_port == fx.backend_port || postfix_port == fx.proxy_port);
	snprintf(relay, sizeof(relay), "127.0.0.1:%u", fx.backend_port);
	cr_assert(stls_postfix_start(&postfix, fx.dir, postfix_port, relay, postfix_settings, out, sizeof(out)),
		  "the Postfix instance did not start:\n%s", out);
	fx.backend_port = postfix_port;
	cr_assert(stls_fixture_start_proxy(&fx, proxy_args), "starttlsd did not start (see %s)", fx.proxy_out);
}

static void teardown(void)
{
	char out[4096] = "";
	stls_postfix_stop(&postfix, out, sizeof(out));
	stls_fixture_cleanup(&fx);
}

TestSuite(backend_client, .fini = teardown, .timeout = 120);

static int cmd(struct stls_smtp_client *c, const char *line)
{
	cr_assert(stls_smtp_client_sends(c, line));
	return stls_smtp_client_reply(c);
}

/* Sends one message from 127.0.0.5; returns the end-of-data reply code (or the first failure). */
static int send_from_client_address(struct stls_smtp_client *c)
{
	cr_assert(stls_smtp_client_connect_addr(c, "127.0.0.5", "127.0.0.1", fx.proxy_port, 30000));
	cr_assert_eq(stls_smtp_client_reply(c), 220, "%s", c->last);
	cr_assert_eq(cmd(c, "EHLO client.test\r\n"), 250, "%s", c->last);
	int code = cmd(c, "MAIL FROM:<alice@example.test>\r\n");
	if (code != 250)
		return code;
	cr_assert_eq(cmd(c, "RCPT TO:<bob@example.test>\r\n"), 250, "%s", c->last);
	cr_assert_eq(cmd(c, "DATA\r\n"), 354, "%s", c->last);
	return cmd(c, "Subject: who am I\r\n\r\nthe backend should know\r\n.\r\n");
}

/* Postfix logged the client as 127.0.0.5 and stamped it in its own Received header. */
static void backend_saw_the_client(void)
{
	static const struct stls_log_want wants[] = { { "client=unknown[127.0.0.5]", NULL }, { NULL, NULL } };
	char *log = NULL;
	const struct stls_log_want *missing = stls_postfix_wait_log(&postfix, wants, 10000, &log);
	cr_assert_null(missing, "Postfix did not log the real client:\n%s", log ? log : "(unreadable)");
	log = stls_postfix_log(&postfix);
	cr_assert_not_null(log);
	cr_assert_null(strstr(log, "client=localhost[127.0.0.1]"), "Postfix saw the proxy as the client:\n%s", log);
	free(log);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 15000), "Postfix did not pass the message on");
	char *m = stls_fixture_message(&fx, 0, false, NULL);
	cr_assert(m && strstr(m, "Received: from client.test (unknown [127.0.0.5])"),
		  "Postfix's trace header does not name the client:\n%s", m);
	free(m);
}

Test(backend_client, xclient_names_the_client_to_postfix)
{
	const char *settings[] = { "smtpd_authorized_xclient_hosts=127.0.0.0/8", NULL };
	const char *args[] = { "--backend-xclient", NULL };
	start(settings, args);
	struct stls_smtp_client c;
	int code = send_from_client_address(&c);
	cr_assert_eq(code, 250, "end of data: %s", c.last);
	cmd(&c, "QUIT\r\n");
	stls_smtp_client_close(&c);
	backend_saw_the_client();
}

Test(backend_client, xclient_refused_is_a_clear_error_and_421)
{
	const char *args[] = { "--backend-xclient", NULL };
	start(NULL, args); /* Postfix trusts no one with XCLIENT */
	struct stls_smtp_client c;
	int code = send_from_client_address(&c);
	cr_assert_eq(code, 421, "MAIL with a backend that refuses XCLIENT: %s", c.last);
	cr_assert(strstr(c.last, "421 4.3.0"), "%s", c.last);
	stls_smtp_client_close(&c);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "refused XCLIENT: 550 5.7.0", 5000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	cr_assert_eq(stls_fixture_num_messages(&fx), 0);
}

static void proxy_protocol(const char *version)
{
	const char *settings[] = { "smtpd_upstream_proxy_protocol=haproxy", NULL };
	const char *args[] = { "--backend-proxy-protocol", version, NULL };
	start(settings, args);
	/* The capability probe speaks the PROXY protocol too, or Postfix would drop it. */
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "capabilities: ", 10000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	struct stls_smtp_client c;
	int code = send_from_client_address(&c);
	cr_assert_eq(code, 250, "end of data: %s", c.last);
	cmd(&c, "QUIT\r\n");
	stls_smtp_client_close(&c);
	backend_saw_the_client();
}

Test(backend_client, proxy_protocol_v1_names_the_client_to_postfix)
{
	proxy_protocol("v1");
}

Test(backend_client, proxy_protocol_v2_names_the_client_to_postfix)
{
	proxy_protocol("v2");
}

/* The v2 header carries what TLS the client used: the connection to the backend opens after the
 * handshake. The demo backend (--proxy-protocol) records the header it was sent with each
 * message. */
Test(backend_client, proxy_protocol_v2_carries_the_tls_details)
{
	char pki[256];
	cr_assert(stls_fixture_init(&fx, "beclienttls"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	const char *backend_args[] = { "--proxy-protocol", NULL };
	cr_assert(stls_fixture_start_backend(&fx, backend_args), "see %s", fx.backend_log);
	char cert[320], key[320];
	snprintf(cert, sizeof(cert), "%s/fullchain.pem", pki);
	snprintf(key, sizeof(key), "%s/leaf.key", pki);
	const char *args[] = { "--backend-proxy-protocol", "v2", "--cert", cert, "--key", key, NULL };
	cr_assert(stls_fixture_start_proxy(&fx, args), "see %s", fx.proxy_out);

	static char out[65536];
	const char *s_args[] = { "-servername", "mx.test", "-name", "client.test", NULL };
	const char *input =
		"EHLO client.test\nMAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\nSubject: s\n\nb\n.\nQUIT\n";
	cr_assert_eq(stls_fixture_s_client(&fx, s_args, input, out, sizeof(out)), 0, "%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000), "see %s", fx.backend_log);
	char *env = stls_fixture_message(&fx, 0, true, NULL);
	cr_assert_not_null(env);
	cr_assert(strstr(env, "\"version\": 2") && strstr(env, "\"command\": \"PROXY\""), "%s", env);
	cr_assert(strstr(env, "\"src\": \"127.0.0.1:"), "%s", env);
	cr_assert(strstr(env, "\"authority\": \"mx.test\""), "the SNI did not reach the backend:\n%s", env);
	cr_assert(strstr(env, "\"version\": \"TLSv1.3\""), "the TLS version did not reach the backend:\n%s", env);
	cr_assert(strstr(env, "\"cipher\": \"TLS_"), "the cipher did not reach the backend:\n%s", env);
	free(env);

	/* In clear text: the client's address, and no TLS TLV. */
	struct stls_smtp_client c;
	int code = send_from_client_address(&c);
	cr_assert_eq(code, 250, "%s", c.last);
	cmd(&c, "QUIT\r\n");
	stls_smtp_client_close(&c);
	cr_assert(stls_fixture_wait_messages(&fx, 2, 5000));
	env = stls_fixture_message(&fx, 1, true, NULL);
	cr_assert(env && strstr(env, "\"src\": \"127.0.0.5:"), "%s", env);
	cr_assert(strstr(env, "\"ssl\": null") && strstr(env, "\"authority\": null"), "%s", env);
	free(env);
}
