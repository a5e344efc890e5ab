/* Interop: the outbound relay choosing the next hop by DNS (RFC 5321 5.1), with a real DNS server
 * from Debian (dnsmasq) on loopback, and the envelope rules of the outbound listener. The test
 * plays the legacy MTA over SMTP; destinations are demo backends on port 25 of loopback addresses
 * of their own (127.A.B.x, from this process's id, so parallel tests do not meet):
 *
 *	127.A.B.1   mx1.two-mx.test    (MX 10 of two-mx.test): nothing listens, connections are refused
 *	127.A.B.2   mx2.two-mx.test    (MX 20 of two-mx.test): a demo backend
 *	127.A.B.3   a-only.test        (no MX: its address record is the mail server) refuses nobody@
 *	null-mx.test                   MX "." (RFC 7505: takes no mail); missing.test does not exist
 *
 * Only 127.A.B.0/24 may use the outbound listener; the test's client binds 127.A.B.100. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/dnsmasq.h"
#include "tests/support/fixture.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx;
static struct stls_dnsmasq dns;
static struct stls_proc mx2, a_only;
static char net[32]; /* "127.A.B" */
static char mx2_maildir[192], a_only_maildir[192];
static uint16_t out_port;
static char policy_path[256];

static void start_destination(struct stls_proc *p, unsigned host, const char *name, char *maildir, size_t len)
{
	char listen[64], log[256];
	snprintf(listen, sizeof(listen), "%s.%u:25", net, host);
	snprintf(maildir, len, "%s/%s", fx.dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", fx.dir, name);
	const char *const extra[] = { "--hostname", name, "--reject-rcpt", "nobody@", NULL };
	cr_assert(stls_demo_start(p, listen, maildir, log, extra),
		  "destination %s did not start on %s (see %s); this test needs root for port 25", name, listen, log);
}

static void setup(void)
{
	unsigned id = (unsigned)getpid();
	snprintf(net, sizeof(net), "127.%u.%u", 20 + id % 200, (id / 200) % 250);
	cr_assert(stls_fixture_init(&fx, "outbound-dns"));

	char r[5][96];
	snprintf(r[0], sizeof(r[0]), "--host-record=mx1.two-mx.test,%s.1", net);
	snprintf(r[1], sizeof(r[1]), "--host-record=mx2.two-mx.test,%s.2", net);
	snprintf(r[2], sizeof(r[2]), "--host-record=a-only.test,%s.3", net);
	const char *const records[] = { r[0],
					r[1],
					r[2],
					"--mx-host=two-mx.test,mx2.two-mx.test,20",
					"--mx-host=two-mx.test,mx1.two-mx.test,10",
					"--mx-host=null-mx.test,.,0",
					NULL };
	cr_assert(stls_dnsmasq_start(&dns, fx.dir, records), "dnsmasq did not start (see %s)", dns.log);
	start_destination(&mx2, 2, "mx2.two-mx.test", mx2_maildir, sizeof(mx2_maildir));
	start_destination(&a_only, 3, "a-only.test", a_only_maildir, sizeof(a_only_maildir));

	do
		out_port = stls_proc_free_port();
	while (out_port == 0 || out_port == fx.proxy_port || out_port == fx.backend_port || out_port == dns.port);
	char listen[64], dns_addr[64], allow[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", out_port);
	snprintf(dns_addr, sizeof(dns_addr), "127.0.0.1:%u", dns.port);
	snprintf(allow, sizeof(allow), "%s.0/24", net);
	snprintf(policy_path, sizeof(policy_path), "%s/dest-policy", fx.dir);
	static const char policy[] = "# none of these destinations offers STARTTLS\n*  none\n";
	cr_assert(stls_proc_write_file(policy_path, policy, sizeof(policy) - 1));
	const char *const extra[] = {
		"--outbound-listen", listen, "--outbound-allow", allow, "--dns", dns_addr, "--dest-policy",
		policy_path,	     NULL
	};
	cr_assert(stls_fixture_start_proxy(&fx, extra), "starttlsd did not start (see %s)", fx.proxy_out);
	cr_assert(stls_proc_wait_port(out_port, 5000));
}

static void teardown(void)
{
	stls_proc_stop(&mx2, SIGTERM, 5000);
	stls_proc_stop(&a_only, SIGTERM, 5000);
	stls_dnsmasq_stop(&dns);
	int code = stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "starttlsd did not exit cleanly (%d)", code);
}

TestSuite(outbound_dns, .init = setup, .fini = teardown, .timeout = 90);

/* A session as the legacy MTA, from an allowed address, through EHLO. */
static void legacy_connect(struct stls_smtp_client *c)
{
	char from[40];
	snprintf(from, sizeof(from), "%s.100", net);
	cr_assert(stls_smtp_client_connect_addr(c, from, "127.0.0.1", out_port, 30000), "cannot connect from %s", from);
	cr_assert_eq(stls_smtp_client_reply(c), 220, "greeting: %s", c->last);
	stls_smtp_client_sends(c, "EHLO legacy.test\r\n");
	cr_assert_eq(stls_smtp_client_reply(c), 250, "EHLO: %s", c->last);
}

static int command(struct stls_smtp_client *c, const char *line)
{
	cr_assert(stls_smtp_client_sends(c, line), "cannot send %s", line);
	return stls_smtp_client_reply(c);
}

static const char message[] = "From: <alice@legacy.test>\r\n"
			      "Subject: by MX\r\n"
			      "\r\n"
			      "..a line that started with a dot (stuffed here)\r\n"
			      "last line\r\n"
			      ".\r\n";
static const char unstuffed[] = "From: <alice@legacy.test>\r\n"
				"Subject: by MX\r\n"
				"\r\n"
				".a line that started with a dot (stuffed here)\r\n"
				"last line\r\n";

static void send_data(struct stls_smtp_client *c)
{
	cr_assert_eq(command(c, "DATA\r\n"), 354, "DATA: %s", c->last);
	cr_assert_eq(command(c, message), 250, "end of data: %s", c->last);
}

static bool log_has(const char *needle)
{
	return stls_proc_wait_file_contains(fx.proxy_log, needle, 5000);
}

Test(outbound_dns, second_mx_used_when_the_first_is_down)
{
	struct stls_smtp_client c;
	legacy_connect(&c);
	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<bob@two-mx.test>\r\n"), 250, "RCPT: %s", c.last);
	send_data(&c);
	/* The end-of-data reply is the destination's own: the demo backend names its file. */
	char reply[256];
	snprintf(reply, sizeof(reply), "%.200s", c.last);
	stls_smtp_client_sends(&c, "QUIT\r\n");
	stls_smtp_client_close(&c);

	cr_assert(stls_maildir_wait(mx2_maildir, 1, 5000), "nothing stored at mx2");
	cr_assert(strncmp(reply, "250 2.0.0 Ok: queued as ", 24) == 0, "not the destination's reply: %s", reply);
	size_t len;
	char *eml = stls_maildir_message(mx2_maildir, 0, false, &len);
	cr_assert(eml && len == sizeof(unstuffed) - 1 && memcmp(eml, unstuffed, len) == 0, "stored:\n%s", eml);
	free(eml);

	char line[200];
	/* MX 10 first (it refused), then MX 20. */
	snprintf(line, sizeof(line), "address %s.1 port 25 (mx1.two-mx.test for two-mx.test)", net);
	cr_assert(log_has(line), "no \"%s\" line", line);
	snprintf(line, sizeof(line), "mx1.two-mx.test [%s.1]: connect: Connection refused", net);
	cr_assert(log_has(line), "no \"%s\" line", line);
	snprintf(line, sizeof(line), "address %s.2 port 25 (mx2.two-mx.test for two-mx.test)", net);
	cr_assert(log_has(line), "no \"%s\" line", line);
	cr_assert(stls_proc_wait_file_contains(dns.log, "query[MX] two-mx.test from 127.0.0.1", 1000),
		  "dnsmasq was not asked for the MX records");
}

Test(outbound_dns, address_record_when_there_is_no_mx)
{
	struct stls_smtp_client c;
	legacy_connect(&c);
	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<carol@a-only.test>\r\n"), 250, "RCPT: %s", c.last);
	send_data(&c);
	stls_smtp_client_close(&c);
	cr_assert(stls_maildir_wait(a_only_maildir, 1, 5000), "nothing stored at a-only.test");
	char line[200];
	snprintf(line, sizeof(line), "address %s.3 port 25 (a-only.test for a-only.test)", net);
	cr_assert(log_has(line), "no \"%s\" line", line);
}

Test(outbound_dns, recipient_of_another_next_hop_gets_452)
{
	struct stls_smtp_client c;
	legacy_connect(&c);
	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<bob@two-mx.test>\r\n"), 250, "RCPT: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<carol@a-only.test>\r\n"), 452, "RCPT of another hop: %s", c.last);
	cr_assert(strncmp(c.last, "452 4.5.3 ", 10) == 0, "%s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<dave@two-mx.test>\r\n"), 250, "RCPT of the same hop: %s", c.last);
	send_data(&c);

	/* The next transaction may go elsewhere. */
	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<carol@a-only.test>\r\n"), 250, "RCPT: %s", c.last);
	send_data(&c);
	stls_smtp_client_close(&c);

	cr_assert(stls_maildir_wait(mx2_maildir, 1, 5000));
	cr_assert(stls_maildir_wait(a_only_maildir, 1, 5000));
	char *env = stls_maildir_message(mx2_maildir, 0, true, NULL);
	cr_assert(env && strstr(env, "bob@two-mx.test") && strstr(env, "dave@two-mx.test") && !strstr(env, "carol"),
		  "envelope at mx2: %s", env);
	free(env);
	env = stls_maildir_message(a_only_maildir, 0, true, NULL);
	cr_assert(env && strstr(env, "carol@a-only.test") && !strstr(env, "bob@"), "envelope at a-only: %s", env);
	free(env);
}

Test(outbound_dns, destination_and_dns_refusals_reach_the_legacy_mta)
{
	struct stls_smtp_client c;
	legacy_connect(&c);
	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	/* The destination's own 5xx passes through. */
	cr_assert_eq(command(&c, "RCPT TO:<nobody@a-only.test>\r\n"), 550, "%s", c.last);
	cr_assert(strncmp(c.last, "550 5.1.1 User unknown", 22) == 0, "not the destination's reply: %s", c.last);
	cr_assert_eq(command(&c, "RSET\r\n"), 250, "RSET: %s", c.last);

	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<x@null-mx.test>\r\n"), 556, "null MX: %s", c.last);
	cr_assert(strncmp(c.last, "556 5.1.10 ", 11) == 0, "%s", c.last);
	/* Nothing was accepted for the failed next hop, so another may take its place. */
	cr_assert_eq(command(&c, "RCPT TO:<x@missing.test>\r\n"), 550, "NXDOMAIN: %s", c.last);
	cr_assert(strncmp(c.last, "550 5.1.2 ", 10) == 0, "%s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<carol@a-only.test>\r\n"), 250, "after two failed hops: %s", c.last);
	cr_assert_eq(command(&c, "RSET\r\n"), 250, "RSET: %s", c.last);
	cr_assert_eq(command(&c, "QUIT\r\n"), 221, "QUIT: %s", c.last);
	stls_smtp_client_close(&c);
	cr_assert_eq(stls_maildir_count(a_only_maildir), 0);
}

Test(outbound_dns, outside_outbound_allow_refused)
{
	struct stls_smtp_client c;
	/* From 127.0.0.1, which is not in the allowed 127.A.B.0/24. */
	cr_assert(stls_smtp_client_connect(&c, out_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 554, "greeting: %s", c.last);
	cr_assert(strncmp(c.last, "554 5.7.1 ", 10) == 0, "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c), "the connection stayed open");
	stls_smtp_client_close(&c);
	cr_assert(log_has("refused on the outbound listener: 127.0.0.1 is not in --outbound-allow"));
	/* The inbound listener is not restricted by it. */
	cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "inbound greeting: %s", c.last);
	stls_smtp_client_close(&c);
}

Test(outbound_dns, bare_line_feed_never_reaches_a_destination)
{
	struct stls_smtp_client c;
	legacy_connect(&c);
	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<carol@a-only.test>\r\n"), 250, "RCPT: %s", c.last);
	cr_assert_eq(command(&c, "DATA\r\n"), 354, "DATA: %s", c.last);
	int code = command(&c, "Subject: x\r\n\r\na bare\nline feed\r\n.\r\n");
	cr_assert(code >= 500 && code < 600, "a bare LF was accepted: %s", c.last);
	stls_smtp_client_close(&c);
	stls_proc_sleep_ms(500);
	cr_assert_eq(stls_maildir_count(a_only_maildir), 0, "the destination stored a message with a bare LF");
}

/* SIGHUP reads the policy again; a file with an error keeps the table in use and names the line. */
Test(outbound_dns, reload_with_an_error_keeps_the_policy)
{
	static const char bad[] = "*  none\na-only.test  requird\n";
	cr_assert(stls_proc_write_file(policy_path, bad, sizeof(bad) - 1));
	cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
	char line[512];
	snprintf(line, sizeof(line), "outbound relay: %s:2: ", policy_path);
	cr_assert(log_has(line), "no \"%s\" line", line);
	cr_assert(log_has("reload refused (1 problem above): the configuration in use stays"));

	/* Still none: a-only.test, which offers no STARTTLS, gets the mail. */
	struct stls_smtp_client c;
	legacy_connect(&c);
	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<carol@a-only.test>\r\n"), 250, "RCPT under the old policy: %s", c.last);
	send_data(&c);
	stls_smtp_client_close(&c);

	/* A good file takes effect for the next session: now TLS is required there. */
	static const char good[] = "*  none\na-only.test  required\n";
	cr_assert(stls_proc_write_file(policy_path, good, sizeof(good) - 1));
	unsigned before = stls_proc_count_in_file(fx.proxy_log, "reload committed");
	cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
	cr_assert_gt(stls_proc_wait_count(fx.proxy_log, "reload committed", before + 1, 5000), before,
		     "the reload was not logged");
	legacy_connect(&c);
	cr_assert_eq(command(&c, "MAIL FROM:<alice@legacy.test>\r\n"), 250, "MAIL: %s", c.last);
	cr_assert_eq(command(&c, "RCPT TO:<carol@a-only.test>\r\n"), 451, "RCPT under the new policy: %s", c.last);
	cr_assert(strncmp(c.last, "451 4.7.4 ", 10) == 0, "%s", c.last);
	stls_smtp_client_close(&c);
	cr_assert_eq(stls_maildir_count(a_only_maildir), 1);
}
