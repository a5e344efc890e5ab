/* The --stats-listen endpoint: the workers' counters in Prometheus's text format at /metrics, and
 * a short status at /status, over plain HTTP/1.0.
 *
 * The main thread serves it between signals: every socket is non-blocking, a request is at most
 * STLS_STATS_MAX_REQUEST octets and must arrive within STLS_STATS_REQUEST_MS, at most
 * STLS_STATS_MAX_CONNS are served at once (more wait in the listen backlog), and a reply is
 * written within STLS_STATS_REPLY_MS or dropped. The counters are read with relaxed loads from the
 * workers' own cache lines, so a scrape never slows a worker. Bind it to a management address:
 * it needs no credentials and shows traffic figures. */
#pragma once

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

struct stls_worker;

enum {
	STLS_STATS_MAX_CONNS = 8,
	STLS_STATS_MAX_REQUEST = 2048,
	STLS_STATS_REQUEST_MS = 2000,
	STLS_STATS_REPLY_MS = 1000,
};

/* What a page shows, gathered by the main thread when it serves one. */
struct stls_stats_view {
	const struct stls_worker *workers;
	unsigned num_workers;
	uint64_t snapshot_gen;
	bool backend_up;
	uint64_t reloads_committed;
	uint64_t reloads_refused;
	uint64_t log_dropped;
	uint64_t alerts_sent;
	uint64_t alerts_held;
	uint64_t alerts_failed;
	uint64_t alerts_dropped;
	uint64_t uptime_s;
	bool keyop_on; /* a key-op process signs (--keyop-threads) */
	bool keyop_up; /* and is running now */
	uint64_t keyop_restarts;
};

/* Writes the Prometheus text exposition of v into out (cap octets, NUL-terminated). Returns the
 * length written, or 0 if it did not fit. */
size_t stls_stats_render_metrics(char *out, size_t cap, const struct stls_stats_view *v);

/* Writes the /status text (a few "name: value" lines). Returns its length, or 0 if it did not fit. */
size_t stls_stats_render_status(char *out, size_t cap, const struct stls_stats_view *v);

struct stls_stats_conn {
	int fd; /* -1: free */
	uint64_t deadline_ms;
	size_t len;
	char req[STLS_STATS_MAX_REQUEST];
};

struct stls_stats_server {
	int listen_fd; /* -1: off */
	struct stls_stats_conn conns[STLS_STATS_MAX_CONNS];
};

/* Opens the listener on addr. Returns STLS_OK, or STLS_ERR_CONFIG with the reason in err. */
[[nodiscard]] enum stls_err stls_stats_server_open(struct stls_stats_server *s, const struct stls_addr *addr, char *err,
						   size_t err_len);

/* Closes the listener and every connection. Harmless on a server that is off. */
void stls_stats_server_close(struct stls_stats_server *s);

/* Fills out (cap entries) with what the server waits on; returns how many. */
unsigned stls_stats_server_pollfds(const struct stls_stats_server *s, struct pollfd *out, unsigned cap);

/* Accepts what is waiting, reads what arrived, answers every complete request from v, and drops
 * connections past their deadline. Never blocks longer than STLS_STATS_REPLY_MS for one reply. */
void stls_stats_server_run(struct stls_stats_server *s, const struct stls_stats_view *v, uint64_t now_ms);
