/* The main thread: flags, the first snapshot, listeners, workers, signals, and the backend probe.
 *
 * It never touches a session. After start-up it sleeps on a signalfd, waking every
 * STLS_MAIN_TICK_MS to re-probe the backend when due, to free snapshots the workers no longer use,
 * and to drive a graceful shutdown. */
#include <ares.h>
#include <errno.h>
#include <sched.h>
#include <stdalign.h>
#include <poll.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/admit.h"
#include "core/config.h"
#include "core/flags.h"
#include "core/keyop.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/net.h"
#include "core/snapshot.h"
#include "core/stats.h"
#include "core/worker.h"
#include "core/timer.h"
#include "proto/backend_probe.h"
#include "proto/alert.h"
#include "proto/inbound.h"
#include "proto/outbound.h"
#include "proto/sender_groups.h"
#include "tls/conn.h"
#include "tls/ctx.h"
#include "tls/keyop.h"
#include "tls/tickets.h"

enum {
	STLS_MAIN_TICK_MS = 100,
	PROBE_TIMEOUT_MS = 5000,
	PROBE_RETRY_MS = 5000,
	LISTEN_BACKLOG = 4096,
	TICKET_FILE_CHECK_MS = 10000,
};

struct daemon {
	struct stls_config cfg;
	struct stls_worker *workers;
	struct stls_snapshot_reader *readers;
	unsigned num_workers;
	int signal_fd;
	uint64_t next_probe_ms;
	bool backend_up;
	bool draining;
	bool grace_over;
	uint64_t grace_end_ms;
	struct stls_tls_server *tls;	   /* the daemon's reference */
	struct stls_outbound_conf *out;	   /* the daemon's reference, NULL without --outbound-listen */
	struct stls_inbound_conf *inbound; /* the daemon's reference */
	uint64_t next_ticket_ms;
	struct timespec ticket_mtime;
	struct stls_stats_server stats;
	uint64_t start_ms;
	uint64_t reloads_committed;
	uint64_t reloads_refused;
	struct stls_keyop *keyop; /* with --keyop-threads */
};

static void caps_describe(char *out, size_t out_len, const struct stls_ehlo_caps *caps)
{
	size_t used = 0;
	out[0] = '\0';
	for (unsigned e = 0; e < STLS_EHLO__COUNT && used < out_len; e++) {
		if (!stls_ehlo_has(caps, (enum stls_ehlo_ext)e))
			continue;
		int n = snprintf(out + used, out_len - used, "%s%s", used ? " " : "",
				 stls_ehlo_ext_str((enum stls_ehlo_ext)e));
		if (n > 0)
			used += (size_t)n;
		if (e == STLS_EHLO_SIZE && caps->size && used < out_len) {
			n = snprintf(out + used, out_len - used, " %llu", (unsigned long long)caps->size);
			if (n > 0)
				used += (size_t)n;
		}
	}
}

/* A new snapshot: a copy of the current one (or an empty one), for the caller to change and
 * publish. */
static struct stls_snapshot *snapshot_clone(struct daemon *d)
{
	struct stls_snapshot *cur = stls_snapshot_current();
	struct stls_snapshot *snap = stls_calloc(1, sizeof(*snap));
	if (!snap)
		return NULL;
	if (cur)
		*snap = *cur;
	snap->retired_next = NULL;
	snap->cfg = &d->cfg;
	snap->tls = d->tls;
	stls_tls_server_get(snap->tls);
	snap->out = d->out;
	stls_outbound_conf_get(snap->out);
	snap->inbound = d->inbound;
	stls_inbound_conf_get(snap->inbound);
	return snap;
}

/* Builds and publishes a snapshot with the backend's current state. */
static enum stls_err publish_snapshot(struct daemon *d, const struct sockaddr_storage *addr, socklen_t addr_len,
				      const struct stls_ehlo_caps *caps)
{
	struct stls_snapshot *snap = snapshot_clone(d);
	if (!snap)
		return STLS_ERR_NOMEM;
	snap->backend_addr_len = addr_len;
	if (addr_len)
		memcpy(&snap->backend_addr, addr, addr_len);
	snap->caps_known = caps != NULL;
	if (caps)
		snap->caps = *caps;
	stls_snapshot_publish(snap);
	return STLS_OK;
}

/* Publishes new session-ticket keys: read from --ticket-key-file when it changed (or force),
 * otherwise a fresh random key in front of the previous ones. */
static void rotate_tickets(struct daemon *d, bool force)
{
	struct stls_snapshot *cur = stls_snapshot_current();
	struct stls_ticket_keys keys;
	char err[256];
	if (d->cfg.ticket_key_path[0]) {
		struct stat st;
		if (stat(d->cfg.ticket_key_path, &st) != 0) {
			if (force)
				stls_log_warn("--ticket-key-file %s: %s; keeping the keys in use",
					      d->cfg.ticket_key_path, strerror(errno));
			return;
		}
		if (!force && st.st_mtim.tv_sec == d->ticket_mtime.tv_sec &&
		    st.st_mtim.tv_nsec == d->ticket_mtime.tv_nsec)
			return;
		if (stls_tickets_load(&keys, d->cfg.ticket_key_path, err, sizeof(err)) != STLS_OK) {
			stls_log_warn("--ticket-key-file %s; keeping the keys in use", err);
			d->ticket_mtime = st.st_mtim;
			return;
		}
		d->ticket_mtime = st.st_mtim;
		stls_log_info("session-ticket keys read from %s: %u key%s", d->cfg.ticket_key_path, keys.num,
			      keys.num == 1 ? "" : "s");
	} else if (stls_tickets_rotate(&keys, cur ? &cur->tickets : NULL) != STLS_OK) {
		stls_log_crit("cannot make a session-ticket key; keeping the keys in use");
		return;
	} else {
		stls_log_info("session-ticket keys rotated: a new random key encrypts, %u older decrypt%s",
			      keys.num - 1, keys.num == 2 ? "s" : "");
	}
	struct stls_snapshot *snap = snapshot_clone(d);
	if (!snap) {
		stls_log_crit("out of memory publishing new ticket keys");
		return;
	}
	snap->tickets = keys;
	stls_wipe(&keys, sizeof(keys));
	stls_snapshot_publish(snap);
	d->next_ticket_ms =
		stls_clock_ms() + (d->cfg.ticket_key_path[0] ? TICKET_FILE_CHECK_MS : d->cfg.ticket_rotation_ms);
}

/* Loads and checks the certificate into *out, reporting every finding (logged, or printed when
 * log is false). Returns 0, or -1 when it cannot be used. */
static int load_tls(struct daemon *d, struct stls_tls_server **out, bool log)
{
	char err[256];
	struct stls_cert_report report;
	enum stls_err ret = stls_tls_server_new(out, &report, &d->cfg, err, sizeof(err));
	const struct stls_cert_report *r = ret == STLS_OK ? &(*out)->report : &report;
	for (unsigned i = 0; i < r->num; i++) {
		enum stls_cert_severity sev = r->findings[i].severity;
		if (log)
			stls_logf(sev == STLS_CERT_ERROR     ? STLS_LOG_CRITICAL
				  : sev == STLS_CERT_WARNING ? STLS_LOG_WARNING
							     : STLS_LOG_INFO,
				  "certificate: %s", r->findings[i].text);
		else
			fprintf(stderr, "starttlsd: certificate %s: %s\n", stls_cert_severity_str(sev),
				r->findings[i].text);
	}
	if (ret != STLS_OK) {
		if (log)
			stls_log_crit("TLS: %s", err);
		else
			fprintf(stderr, "starttlsd: TLS: %s\n", err);
		*out = NULL;
		return -1;
	}
	if (log) {
		stls_log_info("TLS certificate %s", (*out)->describe);
		if ((*out)->demo)
			stls_log_warn("no --cert or --p12: using an ephemeral self-signed demo certificate for %s; "
				      "peers cannot verify it (spec S1)",
				      d->cfg.hostname);
	}
	return 0;
}

/* Everything the files give, built and checked as a whole (spec S24): a reload takes all of it or
 * none of it. */
struct conf_set {
	struct stls_tls_server *tls;
	struct stls_inbound_conf *inbound;
	struct stls_outbound_conf *out; /* NULL without --outbound-listen */
	struct stls_ticket_keys tickets;
	bool has_tickets; /* read from --ticket-key-file */
	struct timespec ticket_mtime;
};

static void conf_release(struct conf_set *c)
{
	stls_tls_server_put(c->tls);
	stls_inbound_conf_put(c->inbound);
	stls_outbound_conf_put(c->out);
	stls_wipe(c, sizeof(*c));
}

static void conf_problem(bool log, const char *what, const char *why)
{
	if (log)
		stls_log_crit("%s: %s", what, why);
	else
		fprintf(stderr, "starttlsd: %s: %s\n", what, why);
}

/* Builds every part from the files, reporting every problem, not only the first (logged, or
 * printed when log is false). Returns how many parts failed; *out holds the ones that did not. */
static unsigned conf_build(struct daemon *d, struct conf_set *out, bool log)
{
	char err[512];
	unsigned problems = 0;
	memset(out, 0, sizeof(*out));
	if (!d->cfg.cert_path[0] && !d->cfg.p12_path[0] && d->tls && d->tls->demo) {
		/* No certificate files to read again: the demo certificate stays what clients saw. */
		out->tls = d->tls;
		stls_tls_server_get(out->tls);
	} else if (load_tls(d, &out->tls, log) != 0) {
		problems++;
	}
	if (stls_inbound_conf_new(&out->inbound, &d->cfg, err, sizeof(err)) != STLS_OK) {
		conf_problem(log, "sender groups", err);
		problems++;
	}
	if (d->cfg.num_outbound_listen > 0 || d->cfg.dest_policy_path[0] || d->cfg.routes_path[0]) {
		if (stls_outbound_conf_new(&out->out, &d->cfg, err, sizeof(err)) != STLS_OK) {
			conf_problem(log, "outbound relay", err);
			problems++;
		}
	}
	if (d->cfg.ticket_key_path[0]) {
		struct stat st;
		if (stat(d->cfg.ticket_key_path, &st) == 0)
			out->ticket_mtime = st.st_mtim;
		if (stls_tickets_load(&out->tickets, d->cfg.ticket_key_path, err, sizeof(err)) != STLS_OK) {
			conf_problem(log, "--ticket-key-file", err);
			problems++;
		} else {
			out->has_tickets = true;
		}
	}
	return problems;
}

/* Makes c the daemon's configuration: it takes over c's references and hands back the ones it
 * held in *old (for the caller to put once nothing can use them). */
static void conf_adopt(struct daemon *d, struct conf_set *c, struct conf_set *old)
{
	memset(old, 0, sizeof(*old));
	old->tls = d->tls;
	old->inbound = d->inbound;
	old->out = d->out;
	d->tls = c->tls;
	d->inbound = c->inbound;
	d->out = d->cfg.num_outbound_listen > 0 ? c->out : NULL;
	if (!d->out)
		stls_outbound_conf_put(c->out);
	c->tls = NULL;
	c->inbound = NULL;
	c->out = NULL;
}

static void log_conf(struct daemon *d)
{
	if (d->inbound->groups)
		stls_log_info("sender groups: %zu groups, %zu networks (%s)",
			      stls_sender_groups_count(d->inbound->groups),
			      stls_sender_groups_num_networks(d->inbound->groups), d->cfg.sender_groups_path);
	if (d->out)
		stls_log_info("outbound relay: %zu destination policies (%s), %zu routes (%s), trust store %s",
			      stls_dest_policy_count(d->out->policy),
			      d->cfg.dest_policy_path[0] ? d->cfg.dest_policy_path : "default",
			      stls_routes_count(d->out->routes), d->cfg.routes_path[0] ? d->cfg.routes_path : "DNS MX",
			      d->cfg.ca_file[0] ? d->cfg.ca_file : "none");
}

/* What one probe of the backend found. */
struct probe_result {
	bool resolved;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool up;
	struct stls_ehlo_caps caps;
	char err[256];
};

/* Resolves and probes the backend (blocking, bounded by PROBE_TIMEOUT_MS; any thread). */
static void probe_run(const struct stls_config *cfg, struct probe_result *r)
{
	memset(r, 0, sizeof(*r));
	r->resolved = stls_backend_resolve(&r->addr, &r->addr_len, &cfg->backend, r->err, sizeof(r->err)) == STLS_OK;
	if (!r->resolved)
		r->addr_len = 0;
	else
		r->up = stls_backend_probe(&r->caps, (const struct sockaddr *)&r->addr, r->addr_len, cfg->hostname,
					   PROBE_TIMEOUT_MS, r->err, sizeof(r->err)) == STLS_OK;
}

/* Publishes a new snapshot when what a probe found changes what clients are offered (main thread).
 * Logs transitions only, so a backend that stays down does not fill the log. */
static void probe_apply(struct daemon *d, const struct probe_result *r, bool force_log)
{
	struct stls_snapshot *cur = stls_snapshot_current();
	struct sockaddr_storage addr = r->addr;
	socklen_t addr_len = r->addr_len;
	bool up = r->up;
	if (!r->resolved) {
		addr_len = cur ? cur->backend_addr_len : 0; /* keep the last address that worked */
		if (addr_len)
			memcpy(&addr, &cur->backend_addr, addr_len);
	}
	if (up) {
		bool changed = !cur || !cur->caps_known || cur->caps.mask != r->caps.mask ||
			       cur->caps.size != r->caps.size || cur->backend_addr_len != addr_len ||
			       memcmp(&cur->backend_addr, &addr, addr_len) != 0;
		if (changed || force_log || !d->backend_up) {
			char offered[256];
			caps_describe(offered, sizeof(offered), &r->caps);
			stls_log_info("backend %s capabilities: %s%s%s", d->cfg.backend.text,
				      offered[0] ? offered : "(none)",
				      r->caps.dropped[0] ? "; not offered to clients: " : "", r->caps.dropped);
		}
		if (changed && publish_snapshot(d, &addr, addr_len, &r->caps) != STLS_OK)
			stls_log_crit("out of memory publishing a new snapshot");
	} else {
		if (d->backend_up || force_log)
			stls_log_warn("backend %s probe failed: %s (EHLO offers only what is known; mail gets 421 "
				      "while it is down)",
				      d->cfg.backend.text, r->err);
		bool addr_changed = !cur || cur->backend_addr_len != addr_len ||
				    (addr_len && memcmp(&cur->backend_addr, &addr, addr_len) != 0);
		if (addr_changed &&
		    publish_snapshot(d, &addr, addr_len, cur && cur->caps_known ? &cur->caps : NULL) != STLS_OK)
			stls_log_crit("out of memory publishing a new snapshot");
	}
	d->backend_up = up;
	d->next_probe_ms = stls_clock_ms() + (up ? d->cfg.backend_probe_interval_ms : PROBE_RETRY_MS);
}

/* Probes on this thread and applies the result (start-up, before the prober runs). */
static void probe_backend_now(struct daemon *d, bool force_log)
{
	struct probe_result r;
	probe_run(&d->cfg, &r);
	probe_apply(d, &r, force_log);
}

/* After start-up a thread of its own probes, so a backend that accepts and never answers (5 s a
 * probe) does not stall signals, reloads and statistics; the main thread only asks and applies. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool started;
	bool want, force_log, busy, done, stop;
	struct probe_result result;
	const struct stls_config *cfg;
} g_prober = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static void *prober_main(void *arg)
{
	(void)arg;
	if (stls_log_attach_thread() != STLS_OK)
		fprintf(stderr, "starttlsd: the backend prober logs to stderr\n");
	pthread_mutex_lock(&g_prober.lock);
	for (;;) {
		while (!g_prober.want && !g_prober.stop)
			pthread_cond_wait(&g_prober.wake, &g_prober.lock);
		if (g_prober.stop)
			break;
		g_prober.want = false;
		g_prober.busy = true;
		pthread_mutex_unlock(&g_prober.lock);
		struct probe_result r;
		probe_run(g_prober.cfg, &r);
		pthread_mutex_lock(&g_prober.lock);
		g_prober.result = r;
		g_prober.busy = false;
		g_prober.done = true;
	}
	pthread_mutex_unlock(&g_prober.lock);
	return NULL;
}

static enum stls_err prober_start(struct daemon *d)
{
	g_prober.cfg = &d->cfg;
	int ret = pthread_create(&g_prober.thread, NULL, prober_main, NULL);
	if (ret != 0) {
		errno = ret;
		return STLS_ERR_IO;
	}
	g_prober.started = true;
	return STLS_OK;
}

static void prober_stop(void)
{
	if (!g_prober.started)
		return;
	pthread_mutex_lock(&g_prober.lock);
	g_prober.stop = true;
	pthread_cond_signal(&g_prober.wake);
	pthread_mutex_unlock(&g_prober.lock);
	pthread_join(g_prober.thread, NULL);
	g_prober.started = false;
}

/* Asks for a probe (main thread); one already running or asked for is enough. */
static void probe_backend(struct daemon *d, bool force_log)
{
	if (!g_prober.started) {
		probe_backend_now(d, force_log);
		return;
	}
	pthread_mutex_lock(&g_prober.lock);
	g_prober.force_log |= force_log;
	if (!g_prober.busy)
		g_prober.want = true;
	pthread_cond_signal(&g_prober.wake);
	pthread_mutex_unlock(&g_prober.lock);
	/* Not again before this one has answered (or, if it hangs, its timeout has passed). */
	d->next_probe_ms = stls_clock_ms() + PROBE_TIMEOUT_MS + PROBE_RETRY_MS;
}

/* Applies a probe the thread finished (main thread, every tick). */
static void probe_collect(struct daemon *d)
{
	struct probe_result r;
	bool force_log;
	pthread_mutex_lock(&g_prober.lock);
	bool done = g_prober.done;
	if (done) {
		r = g_prober.result;
		force_log = g_prober.force_log;
		g_prober.done = false;
		g_prober.force_log = false;
	}
	pthread_mutex_unlock(&g_prober.lock);
	if (done)
		probe_apply(d, &r, force_log);
}

/* Spec S24: SIGHUP rebuilds the certificate, the ticket keys (from --ticket-key-file), the sender
 * groups, the destination policy and the routes, checks all of them, and publishes them in one
 * snapshot with one pointer store; if any part is wrong, every reason is logged and the
 * configuration in use stays whole. Sessions keep the snapshot they started with. */
static void reload(struct daemon *d)
{
	struct conf_set c;
	unsigned problems = conf_build(d, &c, true);
	if (problems > 0) {
		stls_log_warn("reload refused (%u problem%s above): the configuration in use stays", problems,
			      problems == 1 ? "" : "s");
		d->reloads_refused++;
		conf_release(&c);
		return;
	}
	struct conf_set old;
	conf_adopt(d, &c, &old);
	struct stls_snapshot *snap = snapshot_clone(d);
	if (!snap) {
		stls_log_crit("reload: out of memory publishing the new configuration; the one in use stays");
		struct conf_set fresh;
		conf_adopt(d, &old, &fresh);
		conf_release(&fresh);
		conf_release(&c);
		return;
	}
	if (c.has_tickets) {
		snap->tickets = c.tickets;
		d->ticket_mtime = c.ticket_mtime;
	}
	stls_snapshot_publish(snap);
	conf_release(&old);
	conf_release(&c);
	log_conf(d);
	stls_log_info("reload committed: generation %llu", (unsigned long long)snap->gen);
	d->reloads_committed++;
}

static enum stls_err keyop_load(void *ctx, uint32_t key_id, struct stls_span der, char *err, size_t err_len)
{
	return stls_keyop_load(ctx, key_id, der, err, err_len);
}

static void keyop_drop(void *ctx, uint32_t key_id)
{
	stls_keyop_drop(ctx, key_id);
}

/* With --keyop-threads: starts the key-op process before any certificate is loaded, since the
 * keys go there. With auto, a program missing or unable to run leaves the workers signing, with a
 * warning. Returns 0, or -1 after saying why (logged, or printed when log is false). */
static int keyop_start(struct daemon *d, bool log)
{
	char err[PATH_MAX + 320], why[300];
	bool chosen = d->cfg.keyop_threads == STLS_FLAG_AUTO;
	if (chosen)
		d->cfg.keyop_threads = d->cfg.workers;
	if (d->cfg.keyop_threads == 0)
		return 0;
	char path[PATH_MAX];
	if (chosen && !stls_keyop_available(path, sizeof(path))) {
		snprintf(err, sizeof(err), "%s is not installed", path);
	} else if (stls_tls_init() != STLS_OK) {
		snprintf(err, sizeof(err), "key-op process: cannot initialise TLS");
	} else if (stls_keyop_start(&d->keyop, d->cfg.keyop_threads, d->cfg.workers, why, sizeof(why)) == STLS_OK) {
		stls_tls_keyop_set_store(keyop_load, keyop_drop, d->keyop);
		if (log)
			stls_log_info("key-op process %d started: %u signing thread%s for %u workers",
				      stls_keyop_pid(d->keyop), d->cfg.keyop_threads,
				      d->cfg.keyop_threads == 1 ? "" : "s", d->cfg.workers);
		return 0;
	} else {
		snprintf(err, sizeof(err), "key-op process: %s", why);
	}
	if (!chosen) {
		if (log)
			stls_log_crit("%s", err);
		else
			fprintf(stderr, "starttlsd: %s\n", err);
		return -1;
	}
	/* Mail still flows, signed more slowly. */
	d->cfg.keyop_threads = 0;
	if (log)
		stls_log_warn("%s; the workers sign TLS handshakes themselves (slower; see --keyop-threads)", err);
	else
		fprintf(stderr,
			"starttlsd: warning: %s; the workers sign TLS handshakes themselves (slower; see "
			"--keyop-threads)\n",
			err);
	return 0;
}

static void keyop_stop(struct daemon *d)
{
	stls_tls_keyop_set_store(NULL, NULL, NULL);
	stls_keyop_stop(&d->keyop);
}

static int check_config(struct daemon *d)
{
	int status = 0;
	char err[256];
	struct sockaddr_storage addr;
	socklen_t addr_len;
	if (stls_backend_resolve(&addr, &addr_len, &d->cfg.backend, err, sizeof(err)) != STLS_OK) {
		fprintf(stderr, "starttlsd: --backend %s: %s\n", d->cfg.backend.text, err);
		status = 1;
	}
	if (stls_worker_probe_uring(err, sizeof(err)) != STLS_OK) {
		fprintf(stderr, "starttlsd: %s\n", err);
		status = 1;
	}
	if (keyop_start(d, false) != 0)
		status = 1;
	/* The same build and checks as start-up and SIGHUP. */
	struct conf_set c;
	if (conf_build(d, &c, false) > 0)
		status = 1;
	if (c.tls)
		printf("# TLS certificate %s%s\n", c.tls->describe, c.tls->demo ? " (demo, not verifiable)" : "");
	if (c.inbound && c.inbound->groups)
		printf("# sender groups: %zu groups, %zu networks\n", stls_sender_groups_count(c.inbound->groups),
		       stls_sender_groups_num_networks(c.inbound->groups));
	if (c.out)
		printf("# outbound relay: %zu destination policies, %zu routes\n",
		       stls_dest_policy_count(c.out->policy), stls_routes_count(c.out->routes));
	conf_release(&c);
	keyop_stop(d);
	stls_flags_print(&d->cfg, stdout);
	printf("# %s\n", status == 0 ? "configuration is valid" : "configuration has errors");
	return status;
}

/* Opens a worker's listening sockets: the inbound ones, then the outbound ones. Returns how many,
 * or -1 (logged). */
static int open_listeners(struct daemon *d, struct stls_listener *out)
{
	char err[256];
	unsigned n = 0;
	for (unsigned l = 0; l < d->cfg.num_listen + d->cfg.num_outbound_listen; l++) {
		bool inbound = l < d->cfg.num_listen;
		const struct stls_addr *addr =
			inbound ? &d->cfg.listen[l] : &d->cfg.outbound_listen[l - d->cfg.num_listen];
		int fd = stls_net_listen(addr, LISTEN_BACKLOG, err, sizeof(err));
		if (fd < 0) {
			stls_log_crit("cannot listen: %s", err);
			for (unsigned k = 0; k < n; k++)
				close(out[k].fd);
			return -1;
		}
		out[n++] = (struct stls_listener){ .fd = fd,
						   .ops = inbound ? &stls_inbound_ops : &stls_outbound_ops,
						   .addr = addr };
	}
	return (int)n;
}

static int start_workers(struct daemon *d)
{
	char err[256];
	for (unsigned l = 0; l < d->cfg.num_listen + d->cfg.num_outbound_listen; l++) {
		const struct stls_addr *addr =
			l < d->cfg.num_listen ? &d->cfg.listen[l] : &d->cfg.outbound_listen[l - d->cfg.num_listen];
		if (stls_net_check_free(addr, err, sizeof(err)) != STLS_OK) {
			stls_log_crit("cannot listen: %s (is another starttlsd or MTA running there?)", err);
			return -1;
		}
	}
	d->num_workers = d->cfg.workers;
	d->workers = stls_calloc_aligned(d->num_workers, sizeof(*d->workers), alignof(struct stls_worker));
	d->readers = stls_calloc_aligned(d->num_workers, sizeof(*d->readers), alignof(struct stls_snapshot_reader));
	if (!d->workers || !d->readers) {
		stls_log_crit("out of memory starting workers");
		return -1;
	}
	stls_snapshot_set_readers(d->readers, d->num_workers);
	/* Worker i goes on the i-th CPU the process may use, so `taskset` or a cgroup's cpuset
	 * chooses the cores and the workers spread over them. */
	cpu_set_t allowed;
	int cpus[CPU_SETSIZE];
	unsigned num_cpus = 0;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &allowed))
				cpus[num_cpus++] = c;
	for (unsigned i = 0; i < d->num_workers; i++) {
		struct stls_listener listeners[2 * STLS_MAX_LISTEN];
		int num_listeners = open_listeners(d, listeners);
		if (num_listeners < 0)
			return -1;
		int cpu = d->cfg.no_pin || num_cpus == 0 ? -1 : cpus[i % num_cpus];
		stls_worker_init(&d->workers[i], &d->cfg, i, d->num_workers, cpu, listeners, (unsigned)num_listeners,
				 &d->readers[i]);
		d->workers[i].keyop_fd = stls_keyop_worker_fd(d->keyop, i);
		if (stls_worker_start(&d->workers[i]) != STLS_OK) {
			stls_log_crit("worker %u cannot start: %s", i, d->workers[i].error);
			return -1;
		}
	}
	return 0;
}

static void stop_workers(struct daemon *d)
{
	for (unsigned i = 0; i < d->num_workers; i++)
		if (d->workers[i].thread)
			stls_worker_signal(&d->workers[i], STLS_WORKER_DRAIN | STLS_WORKER_ABORT);
	for (unsigned i = 0; i < d->num_workers; i++)
		stls_worker_join(&d->workers[i]);
	stls_free_ptr(&d->workers);
	stls_free_ptr(&d->readers);
	d->num_workers = 0;
}

static void signal_all(struct daemon *d, unsigned control)
{
	for (unsigned i = 0; i < d->num_workers; i++)
		stls_worker_signal(&d->workers[i], control);
}

static bool all_exited(struct daemon *d)
{
	for (unsigned i = 0; i < d->num_workers; i++)
		if (!stls_worker_exited(&d->workers[i]))
			return false;
	return true;
}

static void on_signal(struct daemon *d, int sig)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		if (!d->draining) {
			d->draining = true;
			d->grace_end_ms = stls_clock_ms() + d->cfg.shutdown_grace_ms;
			stls_log_info("shutting down: no new connections; sessions have %u s to finish",
				      d->cfg.shutdown_grace_ms / 1000);
			signal_all(d, STLS_WORKER_DRAIN);
		} else if (!d->grace_over) {
			d->grace_over = true;
			stls_log_info("second %s: ending every session now", strsignal(sig));
			signal_all(d, STLS_WORKER_GRACE_OVER);
		}
		break;
	case SIGHUP:
		stls_log_info("reload: reading the certificate, ticket keys, sender groups, destination policy and "
			      "routes again, then the backend's capabilities");
		reload(d);
		probe_backend(d, true);
		break;
	case SIGUSR1: stls_log_reopen(); break;
	case SIGCHLD: stls_keyop_on_child(d->keyop); break;
	default: break;
	}
}

static void serve_stats(struct daemon *d, uint64_t now)
{
	struct stls_snapshot *cur = stls_snapshot_current();
	struct stls_stats_view v = {
		.workers = d->workers,
		.num_workers = d->num_workers,
		.snapshot_gen = cur ? cur->gen : 0,
		.backend_up = d->backend_up,
		.reloads_committed = d->reloads_committed,
		.reloads_refused = d->reloads_refused,
		.log_dropped = stls_log_dropped(),
		.uptime_s = (now - d->start_ms) / 1000,
		.keyop_on = d->keyop != NULL,
		.keyop_up = stls_keyop_pid(d->keyop) > 0,
		.keyop_restarts = stls_keyop_restarts(d->keyop),
	};
	struct stls_alert_counts alerts;
	stls_alert_counts(&alerts);
	v.alerts_sent = alerts.sent;
	v.alerts_held = alerts.held;
	v.alerts_failed = alerts.failed;
	v.alerts_dropped = alerts.dropped;
	stls_stats_server_run(&d->stats, &v, now);
}

static void main_loop(struct daemon *d)
{
	for (;;) {
		struct pollfd pfds[1 + STLS_STATS_MAX_CONNS + 1];
		pfds[0] = (struct pollfd){ .fd = d->signal_fd, .events = POLLIN };
		unsigned n = 1 + stls_stats_server_pollfds(&d->stats, pfds + 1, STLS_STATS_MAX_CONNS + 1);
		int ret = poll(pfds, n, STLS_MAIN_TICK_MS);
		if (ret > 0 && pfds[0].revents) {
			struct signalfd_siginfo si;
			while (read(d->signal_fd, &si, sizeof(si)) == sizeof(si))
				on_signal(d, (int)si.ssi_signo);
		}
		probe_collect(d);
		uint64_t now = stls_clock_ms();
		serve_stats(d, now);
		if (d->draining) {
			if (!d->grace_over && now >= d->grace_end_ms) {
				d->grace_over = true;
				signal_all(d, STLS_WORKER_GRACE_OVER);
			}
			if (all_exited(d))
				return;
		} else {
			if (now >= d->next_probe_ms)
				probe_backend(d, false);
			if (now >= d->next_ticket_ms)
				rotate_tickets(d, false);
		}
		/* Sessions finishing during a shutdown still need their signatures. */
		stls_keyop_tick(d->keyop, now);
		if (d->out) {
			struct stls_snapshot *cur = stls_snapshot_current();
			stls_alert_set_backend((const struct sockaddr *)&cur->backend_addr, cur->backend_addr_len);
		}
		stls_snapshot_collect();
	}
}

static int run(struct daemon *d)
{
	char err[256];
	if (stls_worker_probe_uring(err, sizeof(err)) != STLS_OK) {
		fprintf(stderr, "starttlsd: %s\n", err);
		return 1;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGPIPE);
	/* Blocked before any thread starts, so every thread inherits the mask and the signals reach
	 * only the signalfd. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIGPIPE);
	d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->signal_fd < 0) {
		fprintf(stderr, "starttlsd: signalfd: %s\n", strerror(errno));
		return 1;
	}
	if (stls_log_start(d->cfg.log_path) != STLS_OK || stls_log_attach_thread() != STLS_OK)
		return 1;

	int status = 1;
	d->stats.listen_fd = -1;
	d->start_ms = stls_clock_ms();
	stls_log_info("starttlsd %s starting: %u workers%s, allocator %s, inbound TLS %s", STLS_VERSION, d->cfg.workers,
		      d->cfg.no_pin ? "" : " pinned", stls_mem_allocator(),
		      stls_tls_policy_str((enum stls_tls_policy)d->cfg.inbound_tls));
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		stls_log_crit("cannot initialise the DNS resolver library");
		goto out;
	}
	if (stls_tls_init() != STLS_OK) {
		stls_log_crit("cannot initialise TLS");
		goto out;
	}
	if (keyop_start(d, true) != 0)
		goto out;
	struct conf_set c, none;
	if (conf_build(d, &c, true) > 0) {
		conf_release(&c);
		goto out;
	}
	conf_adopt(d, &c, &none);
	conf_release(&c);
	log_conf(d);
	if (stls_admit_init(d->cfg.max_sessions) != STLS_OK) {
		stls_log_crit("cannot make the table of client limits");
		goto out;
	}
	stls_backend_set_proxy_protocol(d->cfg.backend_proxy_protocol);
	rotate_tickets(d, true);
	if (!stls_snapshot_current() || stls_snapshot_current()->tickets.num == 0) {
		stls_log_crit("no session-ticket keys: refusing to start");
		goto out;
	}
	probe_backend_now(d, true);
	if (prober_start(d) != STLS_OK) {
		stls_log_crit("cannot start the backend prober: %s", strerror(errno));
		goto out;
	}
	if (d->out) {
		struct stls_snapshot *cur = stls_snapshot_current();
		stls_alert_set_backend((const struct sockaddr *)&cur->backend_addr, cur->backend_addr_len);
		if (stls_alert_start(&d->cfg) != STLS_OK) {
			stls_log_crit("cannot start the alert thread: %s", strerror(errno));
			goto out;
		}
	}
	if (start_workers(d) != 0)
		goto out;
	/* Every socket is open before the first "listening on" line, which scripts wait for. */
	if (d->cfg.num_stats_listen) {
		if (stls_stats_server_open(&d->stats, &d->cfg.stats_listen[0], err, sizeof(err)) != STLS_OK) {
			stls_log_crit("--stats-listen: %s", err);
			goto out;
		}
		stls_log_info("statistics at http://%s/metrics and /status", d->cfg.stats_listen[0].text);
	}
	for (unsigned l = 0; l < d->cfg.num_listen; l++)
		stls_log_info("listening on %s for inbound SMTP, relaying to %s", d->cfg.listen[l].text,
			      d->cfg.backend.text);
	for (unsigned l = 0; l < d->cfg.num_outbound_listen; l++)
		stls_log_info("listening on %s for the outbound relay (%u allowed networks, first %s)",
			      d->cfg.outbound_listen[l].text, d->cfg.num_outbound_allow,
			      d->cfg.num_outbound_allow ? d->cfg.outbound_allow[0].text : "none");
	stls_log_info("io_uring set-up flags:%s%s%s",
		      (d->workers[0].ring_flags & IORING_SETUP_SINGLE_ISSUER) ? " SINGLE_ISSUER" : "",
		      (d->workers[0].ring_flags & IORING_SETUP_DEFER_TASKRUN) ? " DEFER_TASKRUN" : "",
		      (d->workers[0].ring_flags & IORING_SETUP_COOP_TASKRUN) ? " COOP_TASKRUN" : "");
	main_loop(d);
	stls_log_info("stopped");
	status = 0;
out:
	stls_stats_server_close(&d->stats);
	stop_workers(d);
	stls_alert_stop();
	prober_stop();
	stls_log_stop();
	stls_snapshot_shutdown();
	stls_tls_server_put(d->tls);
	stls_outbound_conf_put(d->out);
	stls_inbound_conf_put(d->inbound);
	keyop_stop(d);
	stls_admit_cleanup();
	ares_library_cleanup();
	close(d->signal_fd);
	return status;
}

int main(int argc, char **argv)
{
	static struct daemon d;
	enum stls_flags_action action;
	if (stls_flags_parse(&d.cfg, &action, argc - 1, argv + 1, stdout, stderr) != STLS_OK)
		return 2;
	if (action != STLS_FLAGS_RUN)
		return 0;
	if (d.cfg.check)
		return check_config(&d);
	return run(&d);
}
