#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"

enum {
	LOG_TEXT_MAX = 1008,
	LOG_RING_SLOTS = 1024, /* power of two */
	LOG_MAX_RINGS = 520,
	LOG_POLL_NS = 10 * 1000 * 1000,
	/* A record is published this long after it was stamped at most (a producer preempted longer
	 * may see its line written after a younger one of another thread). */
	LOG_ORDER_SLACK_NS = 2 * 1000 * 1000,
	/* A pass that wrote fewer lines than this waits LOG_POLL_NS before the next. */
	LOG_BATCH_MIN = 64,
};

struct log_record {
	uint64_t ts_ns;	  /* wall clock, for the line */
	uint64_t mono_ns; /* monotonic clock, for the order: the wall clock can step back */
	uint16_t len;
	uint8_t level;
	char text[LOG_TEXT_MAX];
};

/* head is written by the producer only, tail by the logger only, each on its own cache line. */
struct log_ring {
	alignas(64) _Atomic uint64_t head;
	alignas(64) _Atomic uint64_t tail;
	alignas(64) _Atomic uint64_t dropped;
	struct log_record slots[LOG_RING_SLOTS];
};

static struct {
	struct log_ring *rings[LOG_MAX_RINGS];
	_Atomic unsigned num_rings;
	_Atomic bool running;
	_Atomic bool stop;
	_Atomic bool reopen;
	pthread_t thread;
	int fd;
	char path[4096];
	uint64_t reported_drops;
	char out[65536];
	size_t out_len;
} g_log = { .fd = 2 };

static _Thread_local struct log_ring *t_ring;

const char *stls_log_level_str(enum stls_log_level level)
{
	static const char *const names[STLS_LOG__COUNT] = {
		[STLS_LOG_DEBUG] = "Debug",
		[STLS_LOG_INFO] = "Info",
		[STLS_LOG_WARNING] = "Warning",
		[STLS_LOG_CRITICAL] = "Critical",
	};
	return (unsigned)level < STLS_LOG__COUNT ? names[level] : "Info";
}

static uint64_t now_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t format_prefix(char *out, size_t out_len, uint64_t ts_ns, enum stls_log_level level)
{
	time_t secs = (time_t)(ts_ns / 1000000000u);
	struct tm tm;
	gmtime_r(&secs, &tm);
	int n = snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ts_ns % 1000000000u / 1000000u),
			 stls_log_level_str(level));
	return n > 0 ? (size_t)n : 0;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere left to report it */
		p += n;
		len -= (size_t)n;
	}
}

static void out_flush(void)
{
	write_all(g_log.fd, g_log.out, g_log.out_len);
	g_log.out_len = 0;
}

static void out_line(uint64_t ts_ns, enum stls_log_level level, const char *text, size_t len)
{
	if (g_log.out_len + 64 + len + 1 > sizeof(g_log.out))
		out_flush();
	g_log.out_len += format_prefix(g_log.out + g_log.out_len, 64, ts_ns, level);
	memcpy(g_log.out + g_log.out_len, text, len);
	g_log.out_len += len;
	g_log.out[g_log.out_len++] = '\n';
}

static int open_log(const char *path)
{
	if (strcmp(path, "-") == 0)
		return 2;
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* Writes the records of every ring in the order they were stamped, so the file reads as one
 * time line although each thread logs on its own ring. Only records stamped before now minus
 * LOG_ORDER_SLACK_NS are written (all of them when everything is to go), so a record still being
 * published on one ring cannot end up behind a younger one from another ring written in this
 * pass. Returns how many records were written. */
static size_t drain_once(bool everything)
{
	static uint64_t tails[LOG_MAX_RINGS], heads[LOG_MAX_RINGS];
	static unsigned pending[LOG_MAX_RINGS];
	uint64_t horizon = everything ? UINT64_MAX : now_monotonic_ns() - LOG_ORDER_SLACK_NS;
	unsigned num = atomic_load_explicit(&g_log.num_rings, memory_order_acquire);
	unsigned num_pending = 0;
	for (unsigned i = 0; i < num; i++) {
		struct log_ring *r = g_log.rings[i];
		tails[i] = atomic_load_explicit(&r->tail, memory_order_relaxed);
		heads[i] = atomic_load_explicit(&r->head, memory_order_acquire);
		if (tails[i] != heads[i])
			pending[num_pending++] = i;
	}
	size_t written = 0;
	while (num_pending > 0) {
		/* Each ring is in stamp order: the next line is the oldest of the rings' first ones. */
		unsigned best = num_pending;
		uint64_t best_ns = horizon;
		for (unsigned k = 0; k < num_pending; k++) {
			unsigned i = pending[k];
			uint64_t ns = g_log.rings[i]->slots[tails[i] & (LOG_RING_SLOTS - 1)].mono_ns;
			if (ns <= best_ns) {
				best = k;
				best_ns = ns;
			}
		}
		if (best == num_pending)
			break; /* the rest is younger than the horizon: the next pass */
		unsigned i = pending[best];
		struct log_record *rec = &g_log.rings[i]->slots[tails[i] & (LOG_RING_SLOTS - 1)];
		out_line(rec->ts_ns, (enum stls_log_level)rec->level, rec->text, rec->len);
		written++;
		if (++tails[i] == heads[i])
			pending[best] = pending[--num_pending];
	}
	uint64_t drops = 0;
	for (unsigned i = 0; i < num; i++) {
		struct log_ring *r = g_log.rings[i];
		atomic_store_explicit(&r->tail, tails[i], memory_order_release);
		drops += atomic_load_explicit(&r->dropped, memory_order_relaxed);
	}
	if (drops > g_log.reported_drops) {
		char text[128];
		int n = snprintf(text, sizeof(text), "%llu log lines dropped: the log could not keep up",
				 (unsigned long long)(drops - g_log.reported_drops));
		out_line(now_realtime_ns(), STLS_LOG_WARNING, text, (size_t)n);
		g_log.reported_drops = drops;
	}
	if (g_log.out_len)
		out_flush();
	return written;
}

static void *logger_main(void *arg)
{
	(void)arg;
	for (;;) {
		if (atomic_exchange(&g_log.reopen, false) && g_log.fd != 2) {
			int fd = open_log(g_log.path);
			if (fd >= 0) {
				close(g_log.fd);
				g_log.fd = fd;
			}
		}
		size_t n = drain_once(false);
		if (atomic_load(&g_log.stop)) {
			while (drain_once(true) > 0) {
			}
			break;
		}
		if (n < LOG_BATCH_MIN) {
			struct timespec ts = { 0, LOG_POLL_NS };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

enum stls_err stls_log_start(const char *path)
{
	snprintf(g_log.path, sizeof(g_log.path), "%s", path);
	int fd = open_log(path);
	if (fd < 0) {
		fprintf(stderr, "starttlsd: --log %s: %s\n", path, strerror(errno));
		return STLS_ERR_CONFIG;
	}
	g_log.fd = fd;
	atomic_store(&g_log.stop, false);
	if (pthread_create(&g_log.thread, NULL, logger_main, NULL) != 0) {
		fprintf(stderr, "starttlsd: cannot start the logger thread\n");
		return STLS_ERR_CONFIG;
	}
	atomic_store(&g_log.running, true);
	return STLS_OK;
}

enum stls_err stls_log_attach_thread(void)
{
	if (t_ring)
		return STLS_OK;
	struct log_ring *r = stls_calloc(1, sizeof(*r));
	if (!r)
		return STLS_ERR_NOMEM;
	/* Threads attach once, before they serve: a lock here costs nothing on the data path. The
	 * slot is filled before num_rings makes it visible to the logger. */
	static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&attach_lock);
	unsigned idx = atomic_load(&g_log.num_rings);
	if (idx < LOG_MAX_RINGS) {
		g_log.rings[idx] = r;
		atomic_store_explicit(&g_log.num_rings, idx + 1, memory_order_release);
	}
	pthread_mutex_unlock(&attach_lock);
	if (idx >= LOG_MAX_RINGS) {
		stls_free_ptr(&r);
		return STLS_ERR_LIMIT;
	}
	t_ring = r;
	return STLS_OK;
}

void stls_log_reopen(void)
{
	atomic_store(&g_log.reopen, true);
}

void stls_log_stop(void)
{
	if (!atomic_load(&g_log.running))
		return;
	atomic_store(&g_log.stop, true);
	pthread_join(g_log.thread, NULL);
	atomic_store(&g_log.running, false);
	if (g_log.fd != 2)
		close(g_log.fd);
	g_log.fd = 2;
}

uint64_t stls_log_dropped(void)
{
	uint64_t drops = 0;
	unsigned num = atomic_load(&g_log.num_rings);
	for (unsigned i = 0; i < num; i++)
		drops += atomic_load_explicit(&g_log.rings[i]->dropped, memory_order_relaxed);
	return drops;
}

void stls_logf(enum stls_log_level level, const char *fmt, ...)
{
	struct log_ring *r = t_ring;
	va_list ap;
	if (!r || !atomic_load_explicit(&g_log.running, memory_order_relaxed)) {
		char text[LOG_TEXT_MAX], prefix[64];
		va_start(ap, fmt);
		int n = vsnprintf(text, sizeof(text), fmt, ap);
		va_end(ap);
		size_t len = n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
		format_prefix(prefix, sizeof(prefix), now_realtime_ns(), level);
		fprintf(stderr, "%s%.*s\n", prefix, (int)len, text);
		return;
	}
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (head - tail >= LOG_RING_SLOTS) {
		atomic_store_explicit(&r->dropped, atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		return;
	}
	struct log_record *rec = &r->slots[head & (LOG_RING_SLOTS - 1)];
	va_start(ap, fmt);
	int n = vsnprintf(rec->text, sizeof(rec->text), fmt, ap);
	va_end(ap);
	rec->len = (uint16_t)(n < 0 ? 0 : (size_t)n < sizeof(rec->text) ? (size_t)n : sizeof(rec->text) - 1);
	rec->level = (uint8_t)level;
	rec->ts_ns = now_realtime_ns();
	rec->mono_ns = now_monotonic_ns();
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
}
