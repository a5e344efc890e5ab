/* Interop: --stats-listen. The counters a scrape shows follow what clients did (a TLS session with
 * a message, a refusal by a sender-group limit, a reload), and the endpoint refuses what is not a
 * short GET of one of its two pages. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx;
static uint16_t stats_port;
static char page[1 << 16];
static char out[65536];

static void setup(void)
{
	cr_assert(stls_fixture_init(&fx, "stats"));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	do
		stats_port = stls_proc_free_port();
	while (stats_port == 0 || stats_port == fx.proxy_port || stats_port == fx.backend_port);
	static char listen[64], groups[256];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", stats_port);
	snprintf(groups, sizeof(groups), "%s/groups.txt", fx.dir);
	static const char text[] = "ONE  preferred  127.0.0.66  max-per-ip=1\n";
	cr_assert(stls_proc_write_file(groups, text, sizeof(text) - 1));
	const char *args[] = { "--stats-listen", listen, "--sender-groups", groups, NULL };
	cr_assert(stls_fixture_start_proxy(&fx, args), "see %s", fx.proxy_out);
	/* The readiness probe was a connection: let it be counted and closed before the first scrape. */
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "close", 5000));
}

static void teardown(void)
{
	stls_fixture_cleanup(&fx);
}

TestSuite(stats, .fini = teardown, .timeout = 90);

/* Sends request as it is and reads the whole answer into page. Returns the answer's length. */
static size_t http(const char *request, size_t len)
{
	ssize_t got = stls_http_exchange(stats_port, request, len, page, sizeof(page));
	cr_assert_geq(got, 0, "cannot reach the statistics on port %u", stats_port);
	return (size_t)got;
}

/* The sum over workers of a counter on the /metrics page. */
static unsigned long long metric(const char *name)
{
	long long sum = stls_metric_sum(page, name);
	cr_assert_geq(sum, 0, "a %s line without a value:\n%s", name, page);
	return (unsigned long long)sum;
}

static void scrape(void)
{
	static const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	cr_assert_gt(http(get, sizeof(get) - 1), 0);
	cr_assert(strncmp(page, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", page);
	cr_assert(strstr(page, "Content-Type: text/plain; version=0.0.4"), "%s", page);
}

Test(stats, counters_follow_sessions_limits_and_reloads, .init = setup)
{
	scrape();
	unsigned long long accepted0 = metric("starttlsd_connections_accepted_total");
	cr_assert(strstr(page, "starttlsd_workers 2\n"), "%s", page);
	cr_assert(strstr(page, "starttlsd_info{version=\""), "%s", page);
	cr_assert_eq(metric("starttlsd_tls_handshakes_total"), 0);
	cr_assert_eq(metric("starttlsd_messages_total"), 0);

	/* One TLS session carrying one message. */
	const char *args[] = { "-name", "client.test", NULL };
	const char *input =
		"EHLO client.test\nMAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\nSubject: s\n\nb\n.\nQUIT\n";
	cr_assert_eq(stls_fixture_s_client(&fx, args, input, out, sizeof(out)), 0, "%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));
	/* One session over the group's max-per-ip. */
	struct stls_smtp_client a, b;
	cr_assert(stls_smtp_client_connect_addr(&a, "127.0.0.66", "127.0.0.1", fx.proxy_port, 5000));
	cr_assert_eq(stls_smtp_client_reply(&a), 220);
	cr_assert(stls_smtp_client_connect_addr(&b, "127.0.0.66", "127.0.0.1", fx.proxy_port, 5000));
	cr_assert_eq(stls_smtp_client_reply(&b), 421, "%s", b.last);
	cr_assert(stls_smtp_client_wait_closed(&b), "the session over the limit stays open after its 421");
	/* One reload. */
	cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "reload committed", 5000));

	scrape();
	cr_assert_eq(metric("starttlsd_tls_handshakes_total"), 1, "%s", page);
	cr_assert_eq(metric("starttlsd_messages_total"), 1, "%s", page);
	cr_assert_eq(metric("starttlsd_client_limit_rejects_total"), 1, "%s", page);
	cr_assert_eq(metric("starttlsd_connections_accepted_total") - accepted0, 3, "%s", page);
	cr_assert_eq(metric("starttlsd_sessions"), 1, "the session from 127.0.0.66 is still open:\n%s", page);
	cr_assert(strstr(page, "starttlsd_reloads_total{result=\"committed\"} 1\n"), "%s", page);
	cr_assert(strstr(page, "starttlsd_backend_up 1\n"), "%s", page);
	stls_smtp_client_close(&a);
	stls_smtp_client_close(&b);

	static const char status[] = "GET /status HTTP/1.0\r\n\r\n";
	http(status, sizeof(status) - 1);
	cr_assert(strstr(page, "\r\n\r\nstarttlsd ") && strstr(page, "messages: 1\n") && strstr(page, "backend: up\n"),
		  "%s", page);
}

Test(stats, only_short_gets_of_its_pages, .init = setup)
{
	static const char post[] = "POST /metrics HTTP/1.0\r\n\r\n";
	http(post, sizeof(post) - 1);
	cr_assert(strncmp(page, "HTTP/1.0 405 ", 13) == 0, "%s", page);
	static const char other[] = "GET /admin HTTP/1.0\r\n\r\n";
	http(other, sizeof(other) - 1);
	cr_assert(strncmp(page, "HTTP/1.0 404 ", 13) == 0, "%s", page);
	static char big[4096];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.0\r\nX: ", 26);
	http(big, sizeof(big));
	cr_assert(strncmp(page, "HTTP/1.0 431 ", 13) == 0, "%s", page);
	/* A silent client is dropped after its deadline, and the next scrape is still served. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(stats_port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	char c;
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	uint64_t start = stls_proc_now_ms();
	cr_assert_eq(recv(fd, &c, 1, 0), 0, "a silent connection was not closed");
	cr_assert_lt(stls_proc_now_ms() - start, 4500);
	close(fd);
	scrape();
}

/* Alerts and capability probes go through the backend, which may be slow or gone: a backend that
 * accepts connections and never answers makes each alert wait its 10 s timeout and each probe its
 * 5 s. Those waits must not stall the main thread, which serves statistics, signals and reloads. */
Test(stats, a_stuck_backend_does_not_stall_the_main_thread)
{
	cr_assert(stls_fixture_init(&fx, "statsalert"));
	/* The destinations: a demo backend that offers no STARTTLS. */
	static struct stls_proc dest = { .pid = -1 };
	uint16_t dest_port, out_port;
	do {
		dest_port = stls_proc_free_port();
		out_port = stls_proc_free_port();
		stats_port = stls_proc_free_port();
	} while (!dest_port || !out_port || !stats_port || dest_port == out_port || stats_port == out_port ||
		 stats_port == dest_port || dest_port == fx.proxy_port || out_port == fx.proxy_port ||
		 stats_port == fx.proxy_port || dest_port == fx.backend_port || out_port == fx.backend_port ||
		 stats_port == fx.backend_port);
	char listen_at[64], maildir[256], log[256];
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", dest_port);
	snprintf(maildir, sizeof(maildir), "%s/dest-mail", fx.dir);
	snprintf(log, sizeof(log), "%s/dest.log", fx.dir);
	cr_assert(stls_demo_start(&dest, listen_at, maildir, log, NULL));
	/* The legacy MTA: listens and never answers (connections wait in its backlog). Its port is the
	 * kernel's choice, so no test running alongside can hold it. */
	int stuck = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = 0 };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(stuck, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(stuck, 64), 0);
	socklen_t sin_len = sizeof(sin);
	cr_assert_eq(getsockname(stuck, (struct sockaddr *)&sin, &sin_len), 0);
	fx.backend_port = ntohs(sin.sin_port);

	char policy[256], routes[256], routes_text[256], stats[64], outbound[64];
	snprintf(policy, sizeof(policy), "%s/policy", fx.dir);
	snprintf(routes, sizeof(routes), "%s/routes", fx.dir);
	static const char policy_text[] = "* required\n";
	cr_assert(stls_proc_write_file(policy, policy_text, sizeof(policy_text) - 1));
	int n = snprintf(routes_text, sizeof(routes_text), "* 127.0.0.1:%u\n", dest_port);
	cr_assert(stls_proc_write_file(routes, routes_text, (size_t)n));
	snprintf(stats, sizeof(stats), "127.0.0.1:%u", stats_port);
	snprintf(outbound, sizeof(outbound), "127.0.0.1:%u", out_port);
	const char *args[] = {
		"--outbound-listen",	  outbound,	    "--dest-policy", policy, "--routes", routes, "--alert-to",
		"postmaster@legacy.test", "--stats-listen", stats,	     NULL
	};
	/* The start-up probe of this backend takes its whole 5 s before starttlsd listens. */
	cr_assert(stls_fixture_spawn_proxy(&fx, args));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "listening on", 20000), "see %s", fx.proxy_out);

	/* Three domains, three alerts: 30 s of waiting on the stuck backend. */
	struct stls_smtp_client c;
	cr_assert(stls_smtp_client_connect(&c, out_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "EHLO legacy.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	const char *domains[] = { "a.test", "b.test", "c.test" };
	for (int i = 0; i < 3; i++) {
		char rcpt[64];
		snprintf(rcpt, sizeof(rcpt), "RCPT TO:<x@%s>\r\n", domains[i]);
		cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@legacy.test>\r\n"));
		cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
		cr_assert(stls_smtp_client_sends(&c, rcpt));
		int code = stls_smtp_client_reply(&c);
		cr_assert(code >= 400 && code < 500, "RCPT to a destination without STARTTLS under required: %s",
			  c.last);
		cr_assert(stls_smtp_client_sends(&c, "RSET\r\n"));
		cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	}
	stls_smtp_client_close(&c);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "c.test", 5000));
	stls_proc_sleep_ms(300); /* the first alert is now waiting on the backend */
	/* While the alerts wait, the main thread answers at once. */
	uint64_t start = stls_proc_now_ms();
	static const char status[] = "GET /status HTTP/1.0\r\n\r\n";
	cr_assert_gt(http(status, sizeof(status) - 1), 0);
	cr_assert(strncmp(page, "HTTP/1.0 200 OK", 15) == 0, "%s", page);
	cr_assert_lt(stls_proc_now_ms() - start, 3000, "the statistics waited on the alerts");
	/* A reload probes the backend again (5 s against this one): that must not stall either. */
	cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "reload committed", 5000));
	stls_proc_sleep_ms(300);
	start = stls_proc_now_ms();
	cr_assert_gt(http(status, sizeof(status) - 1), 0);
	cr_assert(strncmp(page, "HTTP/1.0 200 OK", 15) == 0, "%s", page);
	cr_assert_lt(stls_proc_now_ms() - start, 3000, "the statistics waited on the backend probe");
	/* The alerts are counted by outcome; none dropped while starttlsd runs (the queue holds 256). */
	static const char metrics[] = "GET /metrics HTTP/1.0\r\n\r\n";
	cr_assert_gt(http(metrics, sizeof(metrics) - 1), 0);
	cr_assert(strstr(page, "\nstarttlsd_alerts_total{result=\"failed\"} ") &&
			  strstr(page, "\nstarttlsd_alerts_total{result=\"dropped\"} 0\n"),
		  "%s", page);
	cr_assert_eq(kill(fx.proxy.pid, SIGTERM), 0);
	cr_assert_eq(stls_proc_wait(&fx.proxy, 20000), 0, "shutdown with an alert in flight");
	stls_proc_stop(&dest, SIGTERM, 3000);
	close(stuck);
}

/* The key-op process (the default: it signs whenever it is installed): its signatures per worker,
 * whether it runs, and how often it was started again. */
Test(stats, keyop_signatures_up_and_restarts, .init = setup)
{
	scrape();
	cr_assert(strstr(page, "\nstarttlsd_keyop_up 1\n"), "%s", page);
	cr_assert(strstr(page, "\nstarttlsd_keyop_restarts_total 0\n"), "%s", page);
	cr_assert_eq(metric("starttlsd_keyop_signatures_total"), 0);
	cr_assert_eq(stls_fixture_s_client(&fx, (const char *const[]){ "-tls1_3", NULL }, "QUIT\n", out, sizeof(out)),
		     0, "%s", out);
	scrape();
	cr_assert_eq(metric("starttlsd_keyop_signatures_total"), 1, "%s", page);
	cr_assert_eq(metric("starttlsd_keyop_failures_total"), 0, "%s", page);
	/* Its pid from the log line "key-op process N started". */
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	const char *p = log ? strstr(log, "key-op process ") : NULL;
	cr_assert_not_null(p, "%s", log);
	pid_t pid = (pid_t)atoi(p + strlen("key-op process "));
	free(log);
	cr_assert_gt(pid, 0);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "started again", 5000));
	scrape();
	cr_assert(strstr(page, "\nstarttlsd_keyop_up 1\n"), "%s", page);
	cr_assert(strstr(page, "\nstarttlsd_keyop_restarts_total 1\n"), "%s", page);
	static const char get[] = "GET /status HTTP/1.0\r\n\r\n";
	cr_assert_gt(http(get, sizeof(get) - 1), 0);
	cr_assert(strstr(page, "key-op process: up, 1 restarts\n"), "%s", page);
}
