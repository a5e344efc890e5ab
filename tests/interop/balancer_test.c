/* Interop: behind a balancer (spec S10). Connections from --accept-proxy-protocol addresses must
 * start with a PROXY header, whose client address then drives sender groups and logs; a header
 * from anyone else is refused. Then HAProxy from Debian (TCP mode, send-proxy-v2) in front of two
 * starttlsd nodes that share --ticket-key-file: a session made through one node resumes on the
 * other, and sender-group decisions use the real client's address.
 *
 * The balancer's address is 127.0.0.9 (HAProxy binds it as its source); clients use others. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx, fx2;
static struct stls_proc haproxy = { .pid = -1 };
static char pki[256];
static char groups_path[256];
static char out[65536];

static const char groups[] = "STRICT  required  127.0.0.7\n";

static const char *const *node_args(void)
{
	static char tickets[320];
	snprintf(tickets, sizeof(tickets), "%s/tickets.key", pki);
	static const char *args[] = { "--accept-proxy-protocol",
				      "127.0.0.9/32",
				      "--sender-groups",
				      groups_path,
				      "--proxy-header-timeout",
				      "1",
				      "--ticket-key-file",
				      tickets,
				      NULL };
	return args;
}

static void setup(void)
{
	cr_assert(stls_fixture_init(&fx, "balancer"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	snprintf(groups_path, sizeof(groups_path), "%s/groups.txt", fx.dir);
	cr_assert(stls_proc_write_file(groups_path, groups, sizeof(groups) - 1));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	cr_assert(stls_fixture_start_proxy(&fx, node_args()), "starttlsd did not start (see %s)", fx.proxy_out);
}

static void teardown(void)
{
	if (haproxy.pid > 0)
		stls_proc_stop(&haproxy, SIGTERM, 3000);
	if (fx2.dir[0])
		stls_fixture_cleanup(&fx2);
	stls_fixture_cleanup(&fx);
}

TestSuite(balancer, .init = setup, .fini = teardown, .timeout = 90);

static void balancer_connect(struct stls_smtp_client *c)
{
	cr_assert(stls_smtp_client_connect_addr(c, "127.0.0.9", "127.0.0.1", fx.proxy_port, 5000));
}

static int cmd(struct stls_smtp_client *c, const char *line)
{
	cr_assert(stls_smtp_client_sends(c, line));
	return stls_smtp_client_reply(c);
}

static void wait_log(const char *log, const char *text)
{
	cr_assert(stls_proc_wait_file_contains(log, text, 5000), "no \"%s\" in the log:\n%s", text,
		  stls_proc_read_file(log, NULL));
}

Test(balancer, v1_header_names_the_client_for_groups_and_logs)
{
	struct stls_smtp_client c;
	balancer_connect(&c);
	cr_assert(stls_smtp_client_sends(&c, "PROXY TCP4 127.0.0.7 127.0.0.1 40001 25\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert_eq(cmd(&c, "EHLO client.test\r\n"), 250, "%s", c.last);
	/* 127.0.0.7 is in STRICT (TLS required); the balancer's address is in no group. */
	cr_assert_eq(cmd(&c, "MAIL FROM:<a@x.test>\r\n"), 530, "%s", c.last);
	stls_smtp_client_close(&c);
	wait_log(fx.proxy_log, "PROXY v1 from balancer 127.0.0.9: client follows");
	wait_log(fx.proxy_log, "address 127.0.0.7 port 40001");
	wait_log(fx.proxy_log, "ACCEPT SG STRICT match 127.0.0.7");
}

Test(balancer, a_message_through_a_v1_header)
{
	struct stls_smtp_client c;
	balancer_connect(&c);
	cr_assert(stls_smtp_client_sends(&c, "PROXY TCP4 127.0.0.10 127.0.0.1 40002 25\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert_eq(cmd(&c, "EHLO client.test\r\n"), 250, "%s", c.last);
	cr_assert_eq(cmd(&c, "MAIL FROM:<a@x.test>\r\n"), 250, "%s", c.last);
	cr_assert_eq(cmd(&c, "RCPT TO:<b@y.test>\r\n"), 250, "%s", c.last);
	cr_assert_eq(cmd(&c, "DATA\r\n"), 354, "%s", c.last);
	cr_assert_eq(cmd(&c, "Subject: via a balancer\r\n\r\nbody\r\n.\r\n"), 250, "%s", c.last);
	cr_assert_eq(cmd(&c, "QUIT\r\n"), 221, "%s", c.last);
	stls_smtp_client_close(&c);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));
	wait_log(fx.proxy_log, "address 127.0.0.10 port 40002");
}

Test(balancer, v2_local_is_a_health_check_served_and_closed_cleanly)
{
	static const uint8_t local[16] = { '\r', '\n', '\r', '\n', 0,	 '\r', '\n', 'Q',
					   'U',	 'I',  'T',  '\n', 0x20, 0x00, 0x00, 0x00 };
	struct stls_smtp_client c;
	balancer_connect(&c);
	cr_assert(stls_smtp_client_send(&c, local, sizeof(local)));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert_eq(cmd(&c, "QUIT\r\n"), 221, "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c));
	stls_smtp_client_close(&c);
	wait_log(fx.proxy_log, "PROXY v2 from balancer 127.0.0.9: LOCAL (a health check)");
}

Test(balancer, a_balancer_without_a_header_is_refused)
{
	unsigned backend_before = stls_proc_count_in_file(fx.backend_log, "connect peer=");
	struct stls_smtp_client c;
	balancer_connect(&c);
	cr_assert(stls_smtp_client_sends(&c, "EHLO client.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), -1, "SMTP was served without a PROXY header: %s", c.last);
	stls_smtp_client_close(&c);
	wait_log(fx.proxy_log, "balancer 127.0.0.9: the connection does not start with a valid PROXY header");
	/* Silence: closed after --proxy-header-timeout, with a log line. */
	balancer_connect(&c);
	uint64_t start = stls_proc_now_ms();
	cr_assert(stls_smtp_client_wait_closed(&c), "a silent balancer connection stayed open");
	cr_assert_lt(stls_proc_now_ms() - start, 4000);
	stls_smtp_client_close(&c);
	wait_log(fx.proxy_log, "balancer 127.0.0.9 sent no PROXY header within 1 s");
	cr_assert_eq(stls_proc_count_in_file(fx.backend_log, "connect peer="), backend_before,
		     "the backend was contacted");
}

Test(balancer, a_header_from_anyone_else_is_refused)
{
	struct stls_smtp_client c;
	cr_assert(stls_smtp_client_connect_addr(&c, "127.0.0.8", "127.0.0.1", fx.proxy_port, 5000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert_eq(cmd(&c, "PROXY TCP4 127.0.0.7 127.0.0.1 40003 25\r\n"), 554, "%s", c.last);
	cr_assert(strstr(c.last, "554 5.7.0"), "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c));
	stls_smtp_client_close(&c);
	wait_log(fx.proxy_log, "PROXY header from 127.0.0.8, which is not a trusted balancer");
	cr_assert_eq(stls_proc_count_in_file(fx.proxy_log, "ACCEPT SG STRICT"), 0, "the forged address was believed");
}

/* HAProxy in TCP mode on its own port, round-robin over both nodes, PROXY v2 from 127.0.0.9. */
static uint16_t start_haproxy(void)
{
	uint16_t port;
	do
		port = stls_proc_free_port();
	while (port == 0 || port == fx.proxy_port || port == fx2.proxy_port || port == fx.backend_port);
	char cfg[2048], path[256], log[256];
	int n = snprintf(cfg, sizeof(cfg),
			 "global\n"
			 "    maxconn 256\n"
			 "defaults\n"
			 "    mode tcp\n"
			 "    timeout connect 5s\n"
			 "    timeout client 30s\n"
			 "    timeout server 30s\n"
			 "frontend smtp\n"
			 "    bind 127.0.0.1:%u\n"
			 "    default_backend nodes\n"
			 "backend nodes\n"
			 "    balance roundrobin\n"
			 "    source 127.0.0.9\n"
			 "    server a 127.0.0.1:%u send-proxy-v2\n"
			 "    server b 127.0.0.1:%u send-proxy-v2\n",
			 port, fx.proxy_port, fx2.proxy_port);
	snprintf(path, sizeof(path), "%s/haproxy.cfg", fx.dir);
	snprintf(log, sizeof(log), "%s/haproxy.out", fx.dir);
	cr_assert(stls_proc_write_file(path, cfg, (size_t)n));
	char *argv[] = { "haproxy", "-db", "-f", path, NULL };
	cr_assert(stls_proc_spawn(&haproxy, log, argv), "cannot run haproxy (is it installed?)");
	cr_assert(stls_proc_wait_port(port, 10000), "haproxy did not listen:\n%s", stls_proc_read_file(log, NULL));
	return port;
}

static int s_client(uint16_t port, const char *sess_flag, const char *sess_path)
{
	char connect[64];
	snprintf(connect, sizeof(connect), "127.0.0.1:%u", port);
	char *argv[] = { "openssl",  "s_client",	"-starttls",	   "smtp", "-connect", connect, "-crlf",
			 "-ign_eof", (char *)sess_flag, (char *)sess_path, NULL };
	return stls_proc_run(argv, "QUIT\n", 5, out, sizeof(out), 30000);
}

Test(balancer, haproxy_two_nodes_share_tickets_and_see_the_real_client)
{
	cr_assert(stls_fixture_init(&fx2, "balancer2"));
	fx2.backend_port = fx.backend_port;
	cr_assert(stls_fixture_start_proxy(&fx2, node_args()), "the second node did not start (see %s)", fx2.proxy_out);
	uint16_t port = start_haproxy();

	/* Round robin: the first session goes to one node, the second to the other. */
	char sess[256];
	snprintf(sess, sizeof(sess), "%s/session.pem", fx.dir);
	cr_assert_eq(s_client(port, "-sess_out", sess), 0, "%s", out);
	cr_assert(strstr(out, "New, TLSv1.3"), "%s", out);
	cr_assert_eq(s_client(port, "-sess_in", sess), 0, "%s", out);
	cr_assert(strstr(out, "Reused, TLSv1.3"), "the session did not resume through the other node:\n%s", out);
	unsigned full1 = stls_proc_wait_count(fx.proxy_log, "TLS success", 1, 5000);
	unsigned full2 = stls_proc_wait_count(fx2.proxy_log, "TLS success", 1, 5000);
	cr_assert_eq(full1, 1, "node 1 handled %u sessions", full1);
	cr_assert_eq(full2, 1, "node 2 handled %u sessions", full2);
	/* A node logs "resumed" just after its "TLS success": wait for it too. */
	unsigned resumed = 0;
	uint64_t end = stls_proc_now_ms() + 5000;
	for (;;) {
		resumed = stls_proc_count_in_file(fx.proxy_log, "TLS session resumed") +
			  stls_proc_count_in_file(fx2.proxy_log, "TLS session resumed");
		if (resumed >= 1 || stls_proc_now_ms() >= end)
			break;
		stls_proc_sleep_ms(20);
	}
	cr_assert_eq(resumed, 1, "one session, on the second node, resumed");
	static const char via[] = "PROXY v2 from balancer 127.0.0.9: client follows";
	/* (HAProxy's port check above made one more, header and all.) */
	cr_assert_geq(stls_proc_wait_count(fx.proxy_log, via, 1, 5000) +
			      stls_proc_wait_count(fx2.proxy_log, via, 1, 5000),
		      2, "node 1:\n%s\nnode 2:\n%s", stls_proc_read_file(fx.proxy_log, NULL),
		      stls_proc_read_file(fx2.proxy_log, NULL));

	/* The real client, 127.0.0.7, is in STRICT on whichever node HAProxy picks. */
	for (int i = 0; i < 2; i++) {
		struct stls_smtp_client c;
		cr_assert(stls_smtp_client_connect_addr(&c, "127.0.0.7", "127.0.0.1", port, 5000));
		cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
		cr_assert_eq(cmd(&c, "EHLO client.test\r\n"), 250, "%s", c.last);
		cr_assert_eq(cmd(&c, "MAIL FROM:<a@x.test>\r\n"), 530, "the group of 127.0.0.7 was not applied: %s",
			     c.last);
		cmd(&c, "QUIT\r\n");
		stls_smtp_client_close(&c);
	}
	wait_log(fx.proxy_log, "ACCEPT SG STRICT match 127.0.0.7");
	wait_log(fx2.proxy_log, "ACCEPT SG STRICT match 127.0.0.7");
}
