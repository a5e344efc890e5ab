#include "core/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/flags.h"
#include "core/net.h"
#include "core/worker.h"

/* The workers' counters, in the order the page lists them. */
static const struct {
	const char *name;
	const char *type;
	const char *help;
	size_t off;
} counters[] = {
	{ "starttlsd_connections_accepted_total", "counter", "Connections accepted.",
	  offsetof(struct stls_worker_stats, accepted) },
	{ "starttlsd_connections_refused_total", "counter",
	  "Connections refused at accept because of --max-sessions (421 4.3.2).",
	  offsetof(struct stls_worker_stats, refused_limit) },
	{ "starttlsd_sessions", "gauge", "Sessions open now.", offsetof(struct stls_worker_stats, sessions_active) },
	{ "starttlsd_client_limit_rejects_total", "counter",
	  "Sessions or messages refused by a sender group's limits or --max-per-ip (421 4.7.0).",
	  offsetof(struct stls_worker_stats, limit_rejects) },
	{ "starttlsd_messages_total", "counter", "Messages the next hop accepted.",
	  offsetof(struct stls_worker_stats, messages) },
	{ "starttlsd_protocol_errors_total", "counter", "Client protocol errors answered.",
	  offsetof(struct stls_worker_stats, protocol_errors) },
	{ "starttlsd_timeouts_total", "counter", "Sessions ended by a timeout.",
	  offsetof(struct stls_worker_stats, timeouts) },
	{ "starttlsd_tls_handshakes_total", "counter", "Inbound TLS handshakes that succeeded.",
	  offsetof(struct stls_worker_stats, tls_success) },
	{ "starttlsd_tls_failures_total", "counter", "Inbound TLS handshakes that failed.",
	  offsetof(struct stls_worker_stats, tls_failed) },
	{ "starttlsd_keyop_requests_total", "counter",
	  "Handshake signatures asked of the key-op process (sent, or queued for its channel).",
	  offsetof(struct stls_worker_stats, keyop_requests) },
	{ "starttlsd_keyop_signatures_total", "counter", "Handshake signatures the key-op process made.",
	  offsetof(struct stls_worker_stats, keyop_signs) },
	{ "starttlsd_keyop_failures_total", "counter", "Handshake signatures the key-op process could not make.",
	  offsetof(struct stls_worker_stats, keyop_failures) },
	{ "starttlsd_starttls_injections_total", "counter", "Clear text sent after STARTTLS (refused, never run).",
	  offsetof(struct stls_worker_stats, starttls_injections) },
	{ "starttlsd_recv_nobufs_total", "counter", "Receives that found the worker's buffer ring empty.",
	  offsetof(struct stls_worker_stats, recv_nobufs) },
	{ "starttlsd_accept_errors_total", "counter", "Accept calls that failed.",
	  offsetof(struct stls_worker_stats, accept_errors) },
};

struct page {
	char *out;
	size_t cap;
	size_t len;
	bool full;
};

__attribute__((format(printf, 2, 3))) static void put(struct page *p, const char *fmt, ...)
{
	if (p->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(p->out + p->len, p->cap - p->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= p->cap - p->len)
		p->full = true;
	else
		p->len += (size_t)n;
}

static uint64_t counter_of(const struct stls_worker *w, size_t off)
{
	const _Atomic uint64_t *c = (const _Atomic uint64_t *)((const char *)&w->stats + off);
	return atomic_load_explicit(c, memory_order_relaxed);
}

size_t stls_stats_render_metrics(char *out, size_t cap, const struct stls_stats_view *v)
{
	struct page p = { .out = out, .cap = cap };
	if (cap == 0)
		return 0;
	out[0] = '\0';
	put(&p, "# HELP starttlsd_info The running version.\n# TYPE starttlsd_info gauge\n");
	put(&p, "starttlsd_info{version=\"%s\"} 1\n", STLS_VERSION);
	put(&p, "# HELP starttlsd_uptime_seconds Seconds since start.\n# TYPE starttlsd_uptime_seconds gauge\n");
	put(&p, "starttlsd_uptime_seconds %llu\n", (unsigned long long)v->uptime_s);
	put(&p, "# HELP starttlsd_workers Worker threads.\n# TYPE starttlsd_workers gauge\nstarttlsd_workers %u\n",
	    v->num_workers);
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		put(&p, "# HELP %s %s\n# TYPE %s %s\n", counters[c].name, counters[c].help, counters[c].name,
		    counters[c].type);
		for (unsigned i = 0; i < v->num_workers; i++)
			put(&p, "%s{worker=\"%u\"} %llu\n", counters[c].name, i,
			    (unsigned long long)counter_of(&v->workers[i], counters[c].off));
	}
	put(&p,
	    "# HELP starttlsd_backend_up Whether the backend answered its last capability probe.\n"
	    "# TYPE starttlsd_backend_up gauge\nstarttlsd_backend_up %d\n",
	    v->backend_up ? 1 : 0);
	put(&p,
	    "# HELP starttlsd_config_generation The snapshot in use (a reload or a backend change makes a new "
	    "one).\n# TYPE starttlsd_config_generation gauge\nstarttlsd_config_generation %llu\n",
	    (unsigned long long)v->snapshot_gen);
	put(&p, "# HELP starttlsd_reloads_total SIGHUP reloads by outcome.\n# TYPE starttlsd_reloads_total counter\n");
	put(&p,
	    "starttlsd_reloads_total{result=\"committed\"} %llu\nstarttlsd_reloads_total{result=\"refused\"} %llu\n",
	    (unsigned long long)v->reloads_committed, (unsigned long long)v->reloads_refused);
	put(&p,
	    "# HELP starttlsd_alerts_total TLS alerts (spec S21): sent, held back by --alert-interval, failed "
	    "(the backend could not take them), dropped (too many at once, or queued at shutdown).\n"
	    "# TYPE starttlsd_alerts_total counter\nstarttlsd_alerts_total{result=\"sent\"} %llu\n"
	    "starttlsd_alerts_total{result=\"held\"} %llu\nstarttlsd_alerts_total{result=\"failed\"} %llu\n"
	    "starttlsd_alerts_total{result=\"dropped\"} %llu\n",
	    (unsigned long long)v->alerts_sent, (unsigned long long)v->alerts_held,
	    (unsigned long long)v->alerts_failed, (unsigned long long)v->alerts_dropped);
	if (v->keyop_on)
		put(&p,
		    "# HELP starttlsd_keyop_up Whether the key-op process that signs handshakes is running.\n"
		    "# TYPE starttlsd_keyop_up gauge\nstarttlsd_keyop_up %d\n"
		    "# HELP starttlsd_keyop_restarts_total Times the key-op process was started again after it "
		    "ended.\n# TYPE starttlsd_keyop_restarts_total counter\nstarttlsd_keyop_restarts_total %llu\n",
		    v->keyop_up ? 1 : 0, (unsigned long long)v->keyop_restarts);
	put(&p,
	    "# HELP starttlsd_log_dropped_total Log lines dropped because the log could not keep up.\n"
	    "# TYPE starttlsd_log_dropped_total counter\nstarttlsd_log_dropped_total %llu\n",
	    (unsigned long long)v->log_dropped);
	return p.full ? 0 : p.len;
}

size_t stls_stats_render_status(char *out, size_t cap, const struct stls_stats_view *v)
{
	struct page p = { .out = out, .cap = cap };
	if (cap == 0)
		return 0;
	out[0] = '\0';
	uint64_t sessions = 0, accepted = 0, messages = 0;
	for (unsigned i = 0; i < v->num_workers; i++) {
		sessions += counter_of(&v->workers[i], offsetof(struct stls_worker_stats, sessions_active));
		accepted += counter_of(&v->workers[i], offsetof(struct stls_worker_stats, accepted));
		messages += counter_of(&v->workers[i], offsetof(struct stls_worker_stats, messages));
	}
	put(&p,
	    "starttlsd %s\nuptime: %llu s\nworkers: %u\nsessions: %llu\naccepted: %llu\nmessages: %llu\n"
	    "backend: %s\nconfig generation: %llu\n",
	    STLS_VERSION, (unsigned long long)v->uptime_s, v->num_workers, (unsigned long long)sessions,
	    (unsigned long long)accepted, (unsigned long long)messages, v->backend_up ? "up" : "down",
	    (unsigned long long)v->snapshot_gen);
	if (v->keyop_on)
		put(&p, "key-op process: %s, %llu restarts\n", v->keyop_up ? "up" : "down",
		    (unsigned long long)v->keyop_restarts);
	return p.full ? 0 : p.len;
}

/* ---- the server ---------------------------------------------------------------------------- */

enum stls_err stls_stats_server_open(struct stls_stats_server *s, const struct stls_addr *addr, char *err,
				     size_t err_len)
{
	s->listen_fd = -1;
	for (unsigned i = 0; i < STLS_STATS_MAX_CONNS; i++)
		s->conns[i].fd = -1;
	int fd = stls_net_listen(addr, 64, err, err_len);
	if (fd < 0)
		return STLS_ERR_CONFIG;
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
		snprintf(err, err_len, "%s: %s", addr->text, strerror(errno));
		close(fd);
		return STLS_ERR_CONFIG;
	}
	s->listen_fd = fd;
	return STLS_OK;
}

static void conn_close(struct stls_stats_conn *c)
{
	if (c->fd >= 0) {
		/* Unread input would turn the close into a reset, which may destroy the reply before
		 * the client reads it: drop what has arrived (a bounded amount) first. */
		char sink[4096];
		for (int i = 0; i < 16 && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
			;
		close(c->fd);
	}
	c->fd = -1;
	c->len = 0;
}

void stls_stats_server_close(struct stls_stats_server *s)
{
	if (s->listen_fd < 0)
		return;
	close(s->listen_fd);
	s->listen_fd = -1;
	for (unsigned i = 0; i < STLS_STATS_MAX_CONNS; i++)
		conn_close(&s->conns[i]);
}

unsigned stls_stats_server_pollfds(const struct stls_stats_server *s, struct pollfd *out, unsigned cap)
{
	unsigned n = 0;
	if (s->listen_fd < 0)
		return 0;
	bool room = false;
	for (unsigned i = 0; i < STLS_STATS_MAX_CONNS && n < cap; i++) {
		if (s->conns[i].fd >= 0)
			out[n++] = (struct pollfd){ .fd = s->conns[i].fd, .events = POLLIN };
		else
			room = true;
	}
	if (room && n < cap)
		out[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	return n;
}

/* Writes all of text (one short reply), waiting at most STLS_STATS_REPLY_MS in total. */
static void send_all(int fd, const char *text, size_t len)
{
	int waited = 0;
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		if (waited >= STLS_STATS_REPLY_MS || poll(&pfd, 1, 50) < 0)
			return;
		waited += 50;
	}
}

static void reply(struct stls_stats_conn *c, const char *status, const char *type, const char *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
			 type, len);
	send_all(c->fd, head, (size_t)n);
	send_all(c->fd, body, len);
	conn_close(c);
}

/* A complete request is in c->req: answer it. Only "GET /metrics" and "GET /status" exist. */
static void answer(struct stls_stats_conn *c, const struct stls_stats_view *v)
{
	static char page[1 << 20];
	const char *line_end = memchr(c->req, '\n', c->len);
	size_t line_len = (size_t)(line_end - c->req);
	if (line_len <= 4 || memcmp(c->req, "GET ", 4) != 0) {
		static const char msg[] = "only GET\n";
		reply(c, "405 Method Not Allowed", "text/plain", msg, sizeof(msg) - 1);
		return;
	}
	const char *path = c->req + 4;
	size_t path_len = 0;
	while (path + path_len < line_end && path[path_len] != ' ' && path[path_len] != '\r')
		path_len++;
	size_t len = 0;
	const char *type = "text/plain; charset=utf-8";
	if (path_len == 8 && memcmp(path, "/metrics", 8) == 0) {
		len = stls_stats_render_metrics(page, sizeof(page), v);
		type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (path_len == 7 && memcmp(path, "/status", 7) == 0) {
		len = stls_stats_render_status(page, sizeof(page), v);
	} else {
		static const char msg[] = "not found: try /metrics or /status\n";
		reply(c, "404 Not Found", "text/plain", msg, sizeof(msg) - 1);
		return;
	}
	if (len == 0) {
		static const char msg[] = "the page did not fit\n";
		reply(c, "500 Internal Server Error", "text/plain", msg, sizeof(msg) - 1);
		return;
	}
	reply(c, "200 OK", type, page, len);
}

static bool request_complete(const struct stls_stats_conn *c)
{
	for (size_t i = 0; i + 1 < c->len; i++) {
		if (c->req[i] == '\n' && c->req[i + 1] == '\n')
			return true;
		if (i + 3 < c->len && memcmp(c->req + i, "\r\n\r\n", 4) == 0)
			return true;
	}
	return false;
}

void stls_stats_server_run(struct stls_stats_server *s, const struct stls_stats_view *v, uint64_t now_ms)
{
	if (s->listen_fd < 0)
		return;
	for (unsigned i = 0; i < STLS_STATS_MAX_CONNS; i++) {
		struct stls_stats_conn *c = &s->conns[i];
		if (c->fd >= 0)
			continue;
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		c->fd = fd;
		c->len = 0;
		c->deadline_ms = now_ms + STLS_STATS_REQUEST_MS;
	}
	for (unsigned i = 0; i < STLS_STATS_MAX_CONNS; i++) {
		struct stls_stats_conn *c = &s->conns[i];
		if (c->fd < 0)
			continue;
		for (;;) {
			ssize_t n = recv(c->fd, c->req + c->len, sizeof(c->req) - c->len, 0);
			if (n > 0) {
				c->len += (size_t)n;
				if (c->len < sizeof(c->req))
					continue;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				conn_close(c);
			}
			break;
		}
		if (c->fd < 0)
			continue;
		if (request_complete(c)) {
			answer(c, v);
		} else if (c->len == sizeof(c->req)) {
			static const char msg[] = "request too long\n";
			reply(c, "431 Request Header Fields Too Large", "text/plain", msg, sizeof(msg) - 1);
		} else if (now_ms >= c->deadline_ms) {
			conn_close(c);
		}
	}
}
