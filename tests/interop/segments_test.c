/* Interop: what the daemon's connections put on the wire, segment by segment. An SMTP dialogue
 * needs no segment of its own for an ACK or a FIN: each ACK rides with the next line, and the
 * FIN with the last reply. Counted with the kernel's TCP_INFO on the far end of each connection.
 *
 * A delayed ACK goes out alone if the reply takes longer than the kernel's delayed-ACK timer
 * (40 ms at least), which a loaded test machine can cause; so each check tries up to five
 * dialogues and needs one that shows the count. Without the behaviour no dialogue ever does. */
#include <criterion/criterion.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

enum { TRIES = 5 };

static struct stls_fixture fx;

static void setup(void)
{
	cr_assert(stls_fixture_init(&fx, "segments"));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
	cr_assert(stls_fixture_start_proxy(&fx, NULL), "starttlsd did not start (see %s)", fx.proxy_out);
}

static void teardown(void)
{
	stls_fixture_cleanup(&fx);
}

TestSuite(segments, .init = setup, .fini = teardown, .timeout = 120);

/* Segments this socket has received so far. */
static unsigned segs_in(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	cr_assert_geq(len, offsetof(struct tcp_info, tcpi_segs_in) + sizeof(ti.tcpi_segs_in));
	return ti.tcpi_segs_in;
}

/* " 2 2 1": the count of each try, for the failure message. */
static void tries_text(char *out, size_t cap, const unsigned *seen, unsigned n)
{
	out[0] = '\0';
	for (unsigned i = 0; i < n; i++)
		snprintf(out + strlen(out), cap - strlen(out), " %u", seen[i]);
}

Test(segments, the_quit_reply_carries_the_ack_and_the_fin)
{
	/* QUIT as the first command: before, its ACK came alone, then 221, then the FIN (3). */
	unsigned seen[TRIES], n = 0;
	bool one = false;
	for (; n < TRIES && !one; n++) {
		struct stls_smtp_client c;
		cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
		cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
		unsigned before = segs_in(c.fd);
		cr_assert(stls_smtp_client_sends(&c, "QUIT\r\n"));
		cr_assert_eq(stls_smtp_client_reply(&c), 221, "%s", c.last);
		cr_assert(stls_smtp_client_wait_closed(&c));
		seen[n] = segs_in(c.fd) - before;
		one = seen[n] == 1;
		stls_smtp_client_close(&c);
	}
	char list[64];
	tries_text(list, sizeof(list), seen, n);
	cr_assert(one, "segments from QUIT to the end, per try:%s (want 1: the 221 with ACK and FIN)", list);
}

Test(segments, a_connection_the_worker_opens_acks_the_greeting_with_its_first_line)
{
	/* The worker's outgoing connections (to the backend, to remote MTAs, and the load
	 * generator's) share one path; starttls-bench drives it here against a listener of the
	 * test's that greets and counts what arrives until the first command. */
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	int one_opt = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one_opt, sizeof(one_opt));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint16_t port = stls_proc_free_port();
	a.sin_port = htons(port);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 8), 0);

	char bench[512], connect[64], log[300];
	stls_proc_build_path("starttls-bench", bench, sizeof(bench));
	snprintf(connect, sizeof(connect), "127.0.0.1:%u", port);
	snprintf(log, sizeof(log), "%s/bench.out", fx.dir);
	char tries[8];
	snprintf(tries, sizeof(tries), "%d", TRIES);
	char *argv[] = { bench,		  "--connect", connect,	    "--mode", "plain",	 "--sessions", tries,
			 "--concurrency", "1",	       "--timeout", "5",      "--quiet", NULL };
	struct stls_proc p;
	cr_assert(stls_proc_spawn(&p, log, argv));

	/* Greeting, then the EHLO: before, the greeting's ACK came alone (2). The worker can switch
	 * the mode only once it has seen the connection complete, so the greeting waits a moment, as
	 * it would for a network round trip; on loopback it could otherwise come first. */
	unsigned seen[TRIES], n = 0;
	bool one = false;
	for (; n < TRIES && !one; n++) {
		struct timeval tv = { .tv_sec = 10 };
		setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		int fd = accept(lfd, NULL, NULL);
		cr_assert_geq(fd, 0, "starttls-bench did not connect (see %s)", log);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		stls_proc_sleep_ms(200);
		unsigned before = segs_in(fd);
		static const char greeting[] = "220 test ESMTP\r\n";
		cr_assert_eq(send(fd, greeting, sizeof(greeting) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(greeting) - 1);
		char line[512];
		ssize_t got = recv(fd, line, sizeof(line) - 1, 0);
		cr_assert_gt(got, 0, "no EHLO from starttls-bench");
		line[got] = '\0';
		cr_assert(strncmp(line, "EHLO ", 5) == 0, "%s", line);
		seen[n] = segs_in(fd) - before;
		one = seen[n] == 1;
		close(fd); /* the session fails: only its first lines matter here */
	}
	close(lfd);
	stls_proc_stop(&p, SIGTERM, 10000);
	char list[64];
	tries_text(list, sizeof(list), seen, n);
	cr_assert(one, "segments from the greeting to the EHLO, per try:%s (want 1: the EHLO with the ACK)", list);
}
