/* Unit tests for proto/alert.c: the S21 alert thread and how it stops.
 *
 * The backend is a loopback listener the test holds: it accepts when the test says so and never
 * answers, like a backend that hangs. Criterion runs each test in a process of its own, so the
 * alert queue starts empty. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "proto/alert.h"

TestSuite(alert, .timeout = 60);

/* A listener on 127.0.0.1 that accepts nothing by itself; its address in out. */
static int silent_backend(struct sockaddr_in *out)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)out, sizeof(*out)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	socklen_t len = sizeof(*out);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)out, &len), 0);
	return fd;
}

/* Alerts to postmaster@legacy.test from mx.test, at most one per domain an hour. */
static void alert_config(struct stls_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->hostname, sizeof(cfg->hostname), "mx.test");
	snprintf(cfg->alert_to, sizeof(cfg->alert_to), "postmaster@legacy.test");
	cfg->alert_interval_ms = 3600 * 1000;
}

/* Accepts one connection within timeout_ms; returns it, or -1. */
static int accept_within(int listener, int timeout_ms)
{
	struct pollfd p = { .fd = listener, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return accept(listener, NULL, NULL);
}

/* Four alerts for four domains: three queued before the thread starts (so it takes them as one
 * batch) and one raised while the first is being sent. The backend never answers, so that send
 * takes its whole timeout (10 s). Stopping then waits for it alone: the other three are not sent,
 * and each is counted as dropped, not lost without a word. */
Test(alert, stop_waits_for_the_alert_in_flight_and_drops_the_queued_ones)
{
	struct sockaddr_in backend;
	int listener = silent_backend(&backend);
	struct stls_config cfg;
	alert_config(&cfg);
	stls_alert_set_backend((struct sockaddr *)&backend, sizeof(backend));

	stls_alert_raise("a.test", "mx.a.test", "192.0.2.1", "no STARTTLS");
	stls_alert_raise("b.test", "mx.b.test", "192.0.2.2", "no STARTTLS");
	stls_alert_raise("c.test", "mx.c.test", "192.0.2.3", "no STARTTLS");
	cr_assert_eq(stls_alert_start(&cfg), STLS_OK);
	int first = accept_within(listener, 10000);
	cr_assert_geq(first, 0, "the first alert never reached the backend");
	stls_alert_raise("d.test", "mx.d.test", "192.0.2.4", "no STARTTLS");
	stls_alert_stop();

	struct stls_alert_counts n;
	stls_alert_counts(&n);
	cr_assert_eq(n.sent, 0);
	cr_assert_eq(n.failed, 1, "the alert in flight: %llu failed", (unsigned long long)n.failed);
	cr_assert_eq(n.dropped, 3, "%llu of the 3 queued alerts counted as dropped", (unsigned long long)n.dropped);
	/* No other alert opened a connection to the backend. */
	int second = accept_within(listener, 0);
	cr_assert_lt(second, 0, "an alert was sent after the stop");
	close(first);
	close(listener);
}

/* Alerts for one domain within --alert-interval: the first is sent (here it fails against the
 * silent backend), the others are held back for the next one, not dropped. */
Test(alert, alerts_within_the_interval_are_held_not_dropped)
{
	struct sockaddr_in backend;
	int listener = silent_backend(&backend);
	struct stls_config cfg;
	alert_config(&cfg);
	/* The backend closes at once: the send fails without waiting for its timeout. */
	close(listener);
	stls_alert_raise("a.test", "mx.a.test", "192.0.2.1", "no STARTTLS");
	stls_alert_raise("a.test", "mx.a.test", "192.0.2.1", "no STARTTLS");
	stls_alert_raise("A.TEST", "mx.a.test", "192.0.2.1", "no STARTTLS");
	stls_alert_process(&cfg, (struct sockaddr *)&backend, sizeof(backend), 1000);
	struct stls_alert_counts n;
	stls_alert_counts(&n);
	cr_assert_eq(n.failed, 1);
	cr_assert_eq(n.held, 2);
	cr_assert_eq(n.dropped, 0);
}
