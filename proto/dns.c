#include "proto/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/snapshot.h"
#include "core/worker.h"

enum { MAX_MX = 8, MAX_SOCKETS = 8, DNS_TIMEOUT_MS = 2000, DNS_TRIES = 3 };

struct dns_resolver {
	struct stls_worker *w;
	ares_channel channel;
	unsigned pending; /* queries in flight */
	struct {
		ares_socket_t fd;
		unsigned events;
	} socks[MAX_SOCKETS];
};

struct dns_query {
	struct dns_resolver *r;
	uint32_t slot;
	uint32_t gen;
	stls_dns_done_fn *done;
	uint16_t port;
	char domain[256];
	struct {
		char name[256];
		uint16_t preference;
	} mx[MAX_MX];
	unsigned num_mx;
	unsigned next_mx;
	struct stls_dns_target targets[STLS_DNS_MAX_TARGETS];
	unsigned num_targets;
	enum stls_dns_status fail_status;
	char why[320];
};

/* ---- c-ares inside the worker's loop -------------------------------------------------------- */

static void on_fd(void *ctx, int fd, unsigned revents);

static void watch(struct dns_resolver *r, ares_socket_t fd)
{
	for (unsigned i = 0; i < MAX_SOCKETS; i++) {
		if (r->socks[i].fd == fd) {
			if (stls_worker_watch(r->w, fd, r->socks[i].events, on_fd, r) != STLS_OK)
				stls_log_warn("worker %u: DNS: too many sockets to watch", r->w->index);
			return;
		}
	}
}

/* c-ares says which of its sockets it wants read or written. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	unsigned events = (readable ? POLLIN : 0) | (writable ? POLLOUT : 0);
	unsigned free_idx = MAX_SOCKETS;
	for (unsigned i = 0; i < MAX_SOCKETS; i++) {
		if (r->socks[i].fd == fd) {
			r->socks[i].events = events;
			if (!events)
				r->socks[i].fd = ARES_SOCKET_BAD;
			(void)stls_worker_watch(r->w, fd, events, on_fd, r);
			return;
		}
		if (r->socks[i].fd == ARES_SOCKET_BAD && free_idx == MAX_SOCKETS)
			free_idx = i;
	}
	if (!events || free_idx == MAX_SOCKETS)
		return;
	r->socks[free_idx].fd = fd;
	r->socks[free_idx].events = events;
	watch(r, fd);
}

static void on_fd(void *ctx, int fd, unsigned revents)
{
	struct dns_resolver *r = ctx;
	bool readable = revents & (POLLIN | POLLERR | POLLHUP);
	bool writable = revents & POLLOUT;
	ares_process_fd(r->channel, readable ? fd : ARES_SOCKET_BAD, writable ? fd : ARES_SOCKET_BAD);
	/* The worker's watch is one-shot: renew it while c-ares still wants the socket. */
	watch(r, fd);
}

/* Every loop turn while queries are out: c-ares retries and times them out here. */
static void on_turn(struct stls_worker *w, void *ctx)
{
	(void)w;
	struct dns_resolver *r = ctx;
	if (r->pending)
		ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void resolver_cleanup(struct stls_worker *w)
{
	struct dns_resolver *r = w->dns;
	if (!r)
		return;
	ares_destroy(r->channel);
	stls_free_ptr(&w->dns);
}

static struct dns_resolver *resolver_get(struct stls_worker *w)
{
	if (w->dns)
		return w->dns;
	struct dns_resolver *r = stls_calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->w = w;
	for (unsigned i = 0; i < MAX_SOCKETS; i++)
		r->socks[i].fd = ARES_SOCKET_BAD;
	struct ares_options opts = {
		.sock_state_cb = sock_state,
		.sock_state_cb_data = r,
		.timeout = DNS_TIMEOUT_MS,
		.tries = DNS_TRIES,
	};
	int ret = ares_init_options(&r->channel, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (ret == ARES_SUCCESS && w->cfg->dns.text[0]) {
		char servers[300];
		if (strchr(w->cfg->dns.host, ':'))
			snprintf(servers, sizeof(servers), "[%s]:%u", w->cfg->dns.host, w->cfg->dns.port);
		else
			snprintf(servers, sizeof(servers), "%s:%u", w->cfg->dns.host, w->cfg->dns.port);
		ret = ares_set_servers_ports_csv(r->channel, servers);
	}
	if (ret != ARES_SUCCESS || stls_worker_add_hook(w, on_turn, r) != STLS_OK) {
		stls_log_crit("worker %u: DNS resolver: %s", w->index, ares_strerror(ret));
		if (ret == ARES_SUCCESS)
			ares_destroy(r->channel);
		stls_free_ptr(&r);
		return NULL;
	}
	w->dns = r;
	w->dns_cleanup = resolver_cleanup;
	return r;
}

/* ---- a lookup ------------------------------------------------------------------------------- */

static void finish(struct dns_query *q, enum stls_dns_status status, const char *why)
{
	struct dns_resolver *r = q->r;
	struct stls_session *s = stls_worker_session_get(r->w, q->slot, q->gen);
	if (s)
		q->done(s, status, why, q->targets, q->num_targets);
	stls_free_ptr(&q);
}

static void next_mx(struct dns_query *q);

static void add_target(struct dns_query *q, const struct sockaddr *sa, socklen_t len, const char *name,
		       uint16_t preference)
{
	if (q->num_targets >= STLS_DNS_MAX_TARGETS || len > sizeof(struct sockaddr_storage))
		return;
	struct stls_dns_target *t = &q->targets[q->num_targets++];
	memcpy(&t->addr, sa, len);
	t->addr_len = len;
	t->preference = preference;
	snprintf(t->name, sizeof(t->name), "%s", name);
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&t->addr)->sin_port = htons(q->port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(q->port);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	(void)timeouts;
	struct dns_query *q = arg;
	q->r->pending--;
	if (status == ARES_EDESTRUCTION) {
		stls_free_ptr(&q);
		return;
	}
	char name[256];
	snprintf(name, sizeof(name), "%s", q->mx[q->next_mx - 1].name);
	if (status == ARES_SUCCESS && res) {
		for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next)
			add_target(q, n->ai_addr, (socklen_t)n->ai_addrlen, name, q->mx[q->next_mx - 1].preference);
	} else if (status != ARES_ENOTFOUND && status != ARES_ENODATA) {
		q->fail_status = STLS_DNS_TEMPFAIL;
		snprintf(q->why, sizeof(q->why), "address of %s: %s", name, ares_strerror(status));
	} else if (!q->why[0]) {
		snprintf(q->why, sizeof(q->why), "%s has no address record", name);
	}
	if (res)
		ares_freeaddrinfo(res);
	next_mx(q);
}

/* Resolves the MX hosts one after the other, in preference order, until the targets are full. */
static void next_mx(struct dns_query *q)
{
	if (q->next_mx >= q->num_mx || q->num_targets >= STLS_DNS_MAX_TARGETS) {
		if (q->num_targets > 0)
			finish(q, STLS_DNS_OK, "");
		else
			finish(q, q->fail_status, q->why[0] ? q->why : "no address to connect to");
		return;
	}
	const char *name = q->mx[q->next_mx++].name;
	char port[8];
	snprintf(port, sizeof(port), "%u", q->port);
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	q->r->pending++;
	ares_getaddrinfo(q->r->channel, name, port, &hints, on_addrinfo, q);
}

static int cmp_mx(const void *a, const void *b)
{
	const struct ares_mx_reply *x = *(const struct ares_mx_reply *const *)a;
	const struct ares_mx_reply *y = *(const struct ares_mx_reply *const *)b;
	return (int)x->priority - (int)y->priority;
}

static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	struct dns_query *q = arg;
	q->r->pending--;
	if (status == ARES_EDESTRUCTION) {
		stls_free_ptr(&q);
		return;
	}
	if (status == ARES_ENODATA) {
		/* RFC 5321 5.1: no MX, the domain itself is the mail server. */
		snprintf(q->mx[0].name, sizeof(q->mx[0].name), "%s", q->domain);
		q->num_mx = 1;
		next_mx(q);
		return;
	}
	if (status == ARES_ENOTFOUND) {
		snprintf(q->why, sizeof(q->why), "%s does not exist (NXDOMAIN)", q->domain);
		finish(q, STLS_DNS_NODOMAIN, q->why);
		return;
	}
	struct ares_mx_reply *mx = NULL;
	if (status != ARES_SUCCESS || ares_parse_mx_reply(abuf, alen, &mx) != ARES_SUCCESS) {
		snprintf(q->why, sizeof(q->why), "MX of %s: %s", q->domain, ares_strerror(status));
		finish(q, STLS_DNS_TEMPFAIL, q->why);
		return;
	}
	struct ares_mx_reply *sorted[MAX_MX * 4];
	unsigned n = 0;
	for (struct ares_mx_reply *m = mx; m && n < MAX_MX * 4; m = m->next)
		sorted[n++] = m;
	qsort(sorted, n, sizeof(*sorted), cmp_mx);
	/* RFC 7505: a single MX "." (null MX) says the domain takes no mail. */
	if (n == 1 && (sorted[0]->host[0] == '\0' || strcmp(sorted[0]->host, ".") == 0)) {
		ares_free_data(mx);
		snprintf(q->why, sizeof(q->why), "%s accepts no mail (null MX)", q->domain);
		finish(q, STLS_DNS_NOMAIL, q->why);
		return;
	}
	for (unsigned i = 0; i < n && q->num_mx < MAX_MX; i++) {
		snprintf(q->mx[q->num_mx].name, sizeof(q->mx[q->num_mx].name), "%s", sorted[i]->host);
		q->mx[q->num_mx].preference = sorted[i]->priority;
		q->num_mx++;
	}
	ares_free_data(mx);
	snprintf(q->why, sizeof(q->why), "no MX host of %s has an address", q->domain);
	next_mx(q);
}

enum stls_err stls_dns_next_hop(struct stls_session *s, const struct stls_route *route, struct stls_span domain,
				stls_dns_done_fn *done)
{
	struct dns_query *q = stls_calloc(1, sizeof(*q));
	if (!q)
		return STLS_ERR_NOMEM;
	q->slot = s->slot;
	q->gen = s->gen;
	q->done = done;
	q->port = route->port ? route->port : 25;
	stls_span_printable(q->domain, sizeof(q->domain), domain);
	q->fail_status = STLS_DNS_TEMPFAIL;

	/* An address literal needs no resolver. */
	if (route->kind == STLS_ROUTE_HOST) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
		bool v4 = inet_pton(AF_INET, route->host, &sin.sin_addr) == 1;
		if (v4 || inet_pton(AF_INET6, route->host, &sin6.sin6_addr) == 1) {
			struct dns_resolver literal = { .w = s->worker };
			q->r = &literal;
			if (v4)
				add_target(q, (struct sockaddr *)&sin, sizeof(sin), route->host, 0);
			else
				add_target(q, (struct sockaddr *)&sin6, sizeof(sin6), route->host, 0);
			finish(q, STLS_DNS_OK, "");
			return STLS_OK;
		}
	}
	struct dns_resolver *r = resolver_get(s->worker);
	if (!r) {
		stls_free_ptr(&q);
		return STLS_ERR_NOMEM;
	}
	q->r = r;
	if (route->kind == STLS_ROUTE_HOST) {
		snprintf(q->mx[0].name, sizeof(q->mx[0].name), "%s", route->host);
		q->num_mx = 1;
		next_mx(q);
		return STLS_OK;
	}
	r->pending++;
	ares_query(r->channel, q->domain, 1 /* C_IN */, 15 /* T_MX */, on_mx, q);
	return STLS_OK;
}
