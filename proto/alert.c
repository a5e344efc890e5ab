#include "proto/alert.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/timer.h"
#include "proto/backend_probe.h"

enum { QUEUE_MAX = 256, DOMAINS_MAX = 1024, SEND_TIMEOUT_MS = 10000 };

struct alert_event {
	char domain[256];
	char mx[256];
	char ip[64];
	char why[300];
};

struct domain_state {
	char domain[256];
	uint64_t last_sent_ms; /* 0: never */
	unsigned held;	       /* events since the last alert */
};

static struct {
	pthread_mutex_t lock;
	struct alert_event queue[QUEUE_MAX];
	unsigned num;
	uint64_t dropped;
	pthread_cond_t wake; /* raised, a new backend, or stop */
	bool stop;
	struct sockaddr_storage backend;
	socklen_t backend_len;
} g_queue = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

/* The sending thread only. */
static struct domain_state g_domains[DOMAINS_MAX];
static unsigned g_num_domains;
static _Atomic uint64_t g_sent, g_held, g_failed, g_dropped;
static pthread_t g_thread;
static bool g_started;

void stls_alert_raise(const char *domain, const char *mx, const char *ip, const char *why)
{
	pthread_mutex_lock(&g_queue.lock);
	if (g_queue.num < QUEUE_MAX) {
		struct alert_event *e = &g_queue.queue[g_queue.num++];
		snprintf(e->domain, sizeof(e->domain), "%s", domain);
		snprintf(e->mx, sizeof(e->mx), "%s", mx);
		snprintf(e->ip, sizeof(e->ip), "%s", ip);
		snprintf(e->why, sizeof(e->why), "%s", why);
	} else {
		g_queue.dropped++;
		atomic_fetch_add_explicit(&g_dropped, 1, memory_order_relaxed);
	}
	pthread_cond_signal(&g_queue.wake);
	pthread_mutex_unlock(&g_queue.lock);
}

static struct domain_state *domain_state(const char *domain)
{
	struct domain_state *oldest = &g_domains[0];
	for (unsigned i = 0; i < g_num_domains; i++) {
		if (strcasecmp(g_domains[i].domain, domain) == 0)
			return &g_domains[i];
		if (g_domains[i].last_sent_ms < oldest->last_sent_ms)
			oldest = &g_domains[i];
	}
	struct domain_state *d = g_num_domains < DOMAINS_MAX ? &g_domains[g_num_domains++] : oldest;
	memset(d, 0, sizeof(*d));
	snprintf(d->domain, sizeof(d->domain), "%.255s", domain);
	return d;
}

static void send_alert(const struct stls_config *cfg, const struct sockaddr *backend, socklen_t backend_len,
		       const struct alert_event *e, unsigned held)
{
	char message[8192], date[64], held_text[160] = "";
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (held)
		snprintf(held_text, sizeof(held_text), "%u earlier failure%s for this domain were held back.\r\n", held,
			 held == 1 ? "" : "s");
	snprintf(message, sizeof(message),
		 "From: starttlsd <postmaster@%.255s>\r\n"
		 "To: <%.255s>\r\n"
		 "Subject: [starttlsd] Warning: TLS required for %.255s failed\r\n"
		 "Date: %s\r\n"
		 "Message-ID: <alert.%lld.%.255s@%.255s>\r\n"
		 "Auto-Submitted: auto-generated\r\n"
		 "X-Starttlsd-Alert: severity=warning type=system\r\n"
		 "\r\n"
		 "starttlsd on %.255s could not deliver mail to %.255s over TLS, which the destination\r\n"
		 "policy requires.\r\n"
		 "\r\n"
		 "Destination: %.255s [%.63s]\r\n"
		 "Cause: %.299s\r\n"
		 "\r\n"
		 "The mail stays in the legacy MTA's queue, which retries it. Further alerts for this\r\n"
		 "domain wait at least %u seconds.\r\n"
		 "%s",
		 cfg->hostname, cfg->alert_to, e->domain, date, (long long)now, e->domain, cfg->hostname, cfg->hostname,
		 e->domain, e->mx, e->ip, e->why, cfg->alert_interval_ms / 1000, held_text);
	char err[256];
	if (stls_backend_send_message(backend, backend_len, cfg->hostname, "", cfg->alert_to, message, SEND_TIMEOUT_MS,
				      err, sizeof(err)) == STLS_OK) {
		atomic_fetch_add_explicit(&g_sent, 1, memory_order_relaxed);
		stls_log_warn("alert about %s sent to <%s>", e->domain, cfg->alert_to);
	} else {
		atomic_fetch_add_explicit(&g_failed, 1, memory_order_relaxed);
		stls_log_warn("alert about %s to <%s> could not be sent through the backend: %s", e->domain,
			      cfg->alert_to, err);
	}
}

static bool stopping(void)
{
	pthread_mutex_lock(&g_queue.lock);
	bool stop = g_queue.stop;
	pthread_mutex_unlock(&g_queue.lock);
	return stop;
}

/* An alert that will not be sent because starttlsd is stopping: said in the log, counted. */
static void drop_at_stop(const struct stls_config *cfg, const struct alert_event *e)
{
	atomic_fetch_add_explicit(&g_dropped, 1, memory_order_relaxed);
	stls_log_warn("alert about %s to <%s> not sent: starttlsd is stopping", e->domain, cfg->alert_to);
}

void stls_alert_process(const struct stls_config *cfg, const struct sockaddr *backend, socklen_t backend_len,
			uint64_t now_ms)
{
	struct alert_event events[QUEUE_MAX];
	unsigned num;
	uint64_t dropped;
	pthread_mutex_lock(&g_queue.lock);
	num = g_queue.num;
	memcpy(events, g_queue.queue, sizeof(events[0]) * num);
	g_queue.num = 0;
	dropped = g_queue.dropped;
	g_queue.dropped = 0;
	pthread_mutex_unlock(&g_queue.lock);
	if (dropped)
		stls_log_warn("%llu TLS alerts dropped: too many at once", (unsigned long long)dropped);
	for (unsigned i = 0; i < num; i++) {
		struct domain_state *d = domain_state(events[i].domain);
		if (d->last_sent_ms && now_ms - d->last_sent_ms < cfg->alert_interval_ms) {
			d->held++;
			atomic_fetch_add_explicit(&g_held, 1, memory_order_relaxed);
			continue;
		}
		if (cfg->alert_to[0] && backend_len) {
			/* Each send may wait its whole timeout on a backend that does not answer: stopping
			 * waits for the one in flight, not for the rest of the batch. */
			if (stopping()) {
				drop_at_stop(cfg, &events[i]);
				continue;
			}
			send_alert(cfg, backend, backend_len, &events[i], d->held);
		}
		d->last_sent_ms = now_ms ? now_ms : 1;
		d->held = 0;
	}
}

void stls_alert_counts(struct stls_alert_counts *out)
{
	out->sent = atomic_load_explicit(&g_sent, memory_order_relaxed);
	out->held = atomic_load_explicit(&g_held, memory_order_relaxed);
	out->failed = atomic_load_explicit(&g_failed, memory_order_relaxed);
	out->dropped = atomic_load_explicit(&g_dropped, memory_order_relaxed);
}

static void *sender_main(void *arg)
{
	const struct stls_config *cfg = arg;
	if (stls_log_attach_thread() != STLS_OK)
		fprintf(stderr, "starttlsd: the alert thread logs to stderr\n");
	for (;;) {
		struct sockaddr_storage backend;
		socklen_t backend_len;
		pthread_mutex_lock(&g_queue.lock);
		while (!g_queue.stop && g_queue.num == 0 && g_queue.dropped == 0)
			pthread_cond_wait(&g_queue.wake, &g_queue.lock);
		bool stop = g_queue.stop;
		backend = g_queue.backend;
		backend_len = g_queue.backend_len;
		if (stop) {
			/* Raised while the last batch was sent: not sent, but not left unsaid. */
			unsigned num = g_queue.num;
			static struct alert_event left[QUEUE_MAX];
			memcpy(left, g_queue.queue, sizeof(left[0]) * num);
			g_queue.num = 0;
			pthread_mutex_unlock(&g_queue.lock);
			for (unsigned i = 0; i < num; i++)
				if (cfg->alert_to[0])
					drop_at_stop(cfg, &left[i]);
			break;
		}
		pthread_mutex_unlock(&g_queue.lock);
		stls_alert_process(cfg, (const struct sockaddr *)&backend, backend_len, stls_clock_ms());
	}
	return NULL;
}

enum stls_err stls_alert_start(const struct stls_config *cfg)
{
	if (g_started)
		return STLS_OK;
	int ret = pthread_create(&g_thread, NULL, sender_main, (void *)cfg);
	if (ret != 0) {
		errno = ret;
		return STLS_ERR_IO;
	}
	g_started = true;
	return STLS_OK;
}

void stls_alert_set_backend(const struct sockaddr *backend, socklen_t backend_len)
{
	pthread_mutex_lock(&g_queue.lock);
	if (backend_len <= sizeof(g_queue.backend)) {
		memcpy(&g_queue.backend, backend, backend_len);
		g_queue.backend_len = backend_len;
	}
	pthread_mutex_unlock(&g_queue.lock);
}

void stls_alert_stop(void)
{
	if (!g_started)
		return;
	pthread_mutex_lock(&g_queue.lock);
	g_queue.stop = true;
	pthread_cond_signal(&g_queue.wake);
	pthread_mutex_unlock(&g_queue.lock);
	pthread_join(g_thread, NULL);
	g_started = false;
}
