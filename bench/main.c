/* starttls-bench: flags, threads, the progress line, the summary and the JSON report. */
#include <errno.h>
#include <stdalign.h>
#include <getopt.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "core/flags.h"
#include "core/mem.h"
#include "core/snapshot.h"
#include "proto/backend_probe.h"
#include "tls/conn.h"

enum {
	EXIT_FAILURES = 1, /* more than 1 % of sessions failed */
	EXIT_USAGE = 2,
	EXIT_SATURATED = 3, /* the client's own CPU was the bottleneck */
};

static const char usage_text[] =
	"Usage: starttls-bench --connect HOST:PORT [options]\n"
	"\n"
	"Load generator for SMTP STARTTLS servers: many concurrent sessions per thread on io_uring.\n"
	"\n"
	"  --connect HOST:PORT      server to load (required)\n"
	"  --mode MODE              handshake (default): greeting, EHLO, STARTTLS, handshake, EHLO, QUIT\n"
	"                           resume: the same, resuming each connection slot's last session\n"
	"                           message: a whole transaction of --size bytes over TLS\n"
	"                           plain: the same transaction without TLS\n"
	"                           idle: open --concurrency TLS sessions and hold them for --duration\n"
	"  --threads N              client threads, each with its own io_uring [1]\n"
	"  --cpus LIST              pin thread i to the i-th CPU of LIST (e.g. 2,3 or 4-7)\n"
	"  --concurrency N          sessions in flight, all threads together [16]\n"
	"  --duration S             run for S seconds (after the warm-up) [10]\n"
	"  --sessions N             run N sessions instead of a duration\n"
	"  --warmup S               seconds not counted at the start [1]\n"
	"  --tls12 | --tls13        offer only TLS 1.2 or only TLS 1.3 [both]\n"
	"  --groups x25519|p256     key exchange group offered [x25519]\n"
	"  --size BYTES             message size for message and plain modes [4096]\n"
	"  --timeout S              a session taking longer is an error [30]\n"
	"  --json FILE              write the results as JSON to FILE\n"
	"  --quiet                  no progress line\n"
	"  --help\n"
	"\n"
	"Exit status: 0; 1 if more than 1 % of sessions failed; 2 on bad usage; 3 if the client\n"
	"itself was saturated (a thread's CPU over 90 %), so the figure would be the client's.\n";

static volatile sig_atomic_t g_interrupted;

/* CPU seconds a thread has used so far. */
static double thread_cpu_s(pthread_t thread)
{
	clockid_t cid;
	struct timespec ts;
	if (pthread_getcpuclockid(thread, &cid) != 0 || clock_gettime(cid, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_sigint(int sig)
{
	(void)sig;
	g_interrupted = 1;
}

static int parse_cpus(int *out, unsigned max, const char *list)
{
	unsigned n = 0;
	const char *p = list;
	while (*p && n < max) {
		char *end;
		long a = strtol(p, &end, 10);
		if (end == p || a < 0)
			return -1;
		long b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a)
				return -1;
		}
		for (long c = a; c <= b && n < max; c++)
			out[n++] = (int)c;
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return (int)n;
}

static char *make_message(const struct stls_bench_opts *o, uint64_t *out_len)
{
	uint64_t cap = o->size + 1024;
	char *m = stls_malloc(cap);
	if (!m)
		return NULL;
	int n = snprintf(m, cap, "From: <%s>\r\nTo: <%s>\r\nSubject: starttls-bench\r\nMessage-ID: <bench@%s>\r\n\r\n",
			 o->from, o->to, o->ehlo);
	uint64_t len = (uint64_t)n;
	/* Lines of 76 letters: no dot-stuffing needed, well under every line limit. */
	while (len + 78 <= o->size) {
		memset(m + len, 'x', 76);
		memcpy(m + len + 76, "\r\n", 2);
		len += 78;
	}
	memcpy(m + len, ".\r\n", 3);
	*out_len = len + 3;
	return m;
}

static void print_latency(FILE *out, const char *what, const struct stls_hist *h)
{
	fprintf(out, "%-10s p50 %8.2f ms  p90 %8.2f ms  p99 %8.2f ms  p99.9 %8.2f ms  max %8.2f ms\n", what,
		stls_hist_quantile(h, 0.50) / 1000.0, stls_hist_quantile(h, 0.90) / 1000.0,
		stls_hist_quantile(h, 0.99) / 1000.0, stls_hist_quantile(h, 0.999) / 1000.0, h->max_us / 1000.0);
}

static void json_latency(FILE *out, const char *name, const struct stls_hist *h, bool comma)
{
	fprintf(out,
		"    \"%s\": {\"count\": %llu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": "
		"%.3f}%s\n",
		name, (unsigned long long)h->count, stls_hist_quantile(h, 0.50) / 1000.0,
		stls_hist_quantile(h, 0.90) / 1000.0, stls_hist_quantile(h, 0.99) / 1000.0,
		stls_hist_quantile(h, 0.999) / 1000.0, h->max_us / 1000.0, comma ? "," : "");
}

static enum ssl_verify_result_t accept_any_certificate(SSL *ssl, uint8_t *out_alert)
{
	(void)ssl;
	(void)out_alert;
	return ssl_verify_ok;
}

int main(int argc, char **argv)
{
	static struct stls_bench_opts o = {
		.mode = STLS_BENCH_HANDSHAKE,
		.threads = 1,
		.concurrency = 16,
		.duration_s = 10,
		.warmup_s = 1,
		.groups = "X25519:P-256",
		.size = 4096,
		.ehlo = "bench.test",
		.from = "bench@bench.test",
		.to = "sink@sink.test",
		.timeout_s = 30,
	};
	const char *connect = NULL, *cpus = NULL, *json = NULL;
	bool quiet = false, duration_given = false;
	static const struct option longopts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "cpus", required_argument, NULL, 'C' },
		{ "concurrency", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "sessions", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "tls12", no_argument, NULL, '2' },
		{ "tls13", no_argument, NULL, '3' },
		{ "groups", required_argument, NULL, 'g' },
		{ "size", required_argument, NULL, 'z' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "json", required_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	char *end;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': connect = optarg; break;
		case 'm': {
			unsigned m;
			for (m = 0; m < STLS_BENCH__COUNT && strcmp(optarg, stls_bench_mode_str(m)) != 0; m++) {
			}
			if (m == STLS_BENCH__COUNT) {
				fprintf(stderr,
					"starttls-bench: --mode %s: expected handshake, resume, message, plain or "
					"idle\n",
					optarg);
				return EXIT_USAGE;
			}
			o.mode = (enum stls_bench_mode)m;
			break;
		}
		case 't':
			o.threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o.threads == 0 || o.threads > STLS_MAX_WORKERS) {
				fprintf(stderr, "starttls-bench: --threads %s: expected 1 to %d\n", optarg,
					STLS_MAX_WORKERS);
				return EXIT_USAGE;
			}
			break;
		case 'C': cpus = optarg; break;
		case 'n':
			o.concurrency = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o.concurrency == 0 || o.concurrency > 1000000) {
				fprintf(stderr, "starttls-bench: --concurrency %s: expected 1 to 1000000\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'd':
			o.duration_s = strtod(optarg, &end);
			duration_given = true;
			if (*end || !(o.duration_s > 0)) {
				fprintf(stderr, "starttls-bench: --duration %s: expected seconds\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's':
			o.sessions = strtoull(optarg, &end, 10);
			if (*end || o.sessions == 0) {
				fprintf(stderr, "starttls-bench: --sessions %s: expected a count\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'w':
			o.warmup_s = strtod(optarg, &end);
			if (*end || o.warmup_s < 0) {
				fprintf(stderr, "starttls-bench: --warmup %s: expected seconds\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case '2': o.tls_version = TLS1_2_VERSION; break;
		case '3': o.tls_version = TLS1_3_VERSION; break;
		case 'g':
			/* P-256 stays offered after X25519: in TLS 1.2 an ECDSA P-256 certificate is only
			 * usable with a client that lists the curve. The server picks X25519 first. */
			if (strcmp(optarg, "x25519") == 0)
				snprintf(o.groups, sizeof(o.groups), "X25519:P-256");
			else if (strcmp(optarg, "p256") == 0)
				snprintf(o.groups, sizeof(o.groups), "P-256");
			else {
				fprintf(stderr, "starttls-bench: --groups %s: expected x25519 or p256\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'z':
			o.size = strtoull(optarg, &end, 10);
			if (*end || o.size > (1u << 30)) {
				fprintf(stderr, "starttls-bench: --size %s: expected bytes up to 1 GiB\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'T':
			o.timeout_s = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o.timeout_s == 0) {
				fprintf(stderr, "starttls-bench: --timeout %s: expected seconds\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json = optarg; break;
		case 'q': quiet = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return EXIT_USAGE;
		}
	}
	if (!connect || optind != argc) {
		fprintf(stderr, "starttls-bench: --connect HOST:PORT is required (see --help)\n");
		return EXIT_USAGE;
	}
	if (o.sessions && duration_given) {
		fprintf(stderr, "starttls-bench: --duration and --sessions: give one or the other\n");
		return EXIT_USAGE;
	}
	if (o.sessions)
		o.duration_s = 0;
	struct stls_hostport hp;
	char err[256];
	if (stls_flags_parse_hostport(&hp, connect) != STLS_OK ||
	    stls_backend_resolve(&o.addr, &o.addr_len, &hp, err, sizeof(err)) != STLS_OK) {
		fprintf(stderr, "starttls-bench: --connect %s: expected a reachable HOST:PORT\n", connect);
		return EXIT_USAGE;
	}
	snprintf(o.host, sizeof(o.host), "%s", hp.host);
	if (o.threads > o.concurrency)
		o.threads = o.concurrency;
	int cpu_list[STLS_MAX_WORKERS];
	int num_cpus = cpus ? parse_cpus(cpu_list, STLS_MAX_WORKERS, cpus) : 0;
	if (num_cpus < 0 || (cpus && num_cpus == 0)) {
		fprintf(stderr, "starttls-bench: --cpus %s: expected a list such as 2,3 or 4-7\n", cpus);
		return EXIT_USAGE;
	}

	/* The engine's settings: the daemon's defaults, which size buffers and limits. */
	static struct stls_config cfg;
	enum stls_flags_action action;
	char *no_args[] = { NULL };
	if (stls_flags_parse(&cfg, &action, 0, no_args, stdout, stderr) != STLS_OK)
		return EXIT_USAGE;
	cfg.max_sessions = o.concurrency * 2 + 16;
	if (stls_tls_init() != STLS_OK) {
		fprintf(stderr, "starttls-bench: cannot initialise TLS\n");
		return 1;
	}
	/* No X509 objects: the load generator never looks at the server's certificate, and parsing
	 * it on every handshake is client CPU the figures would pay for. */
	o.ctx = SSL_CTX_new(TLS_with_buffers_method());
	if (!o.ctx || !SSL_CTX_set_min_proto_version(o.ctx, o.tls_version ? o.tls_version : TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(o.ctx, o.tls_version ? o.tls_version : TLS1_3_VERSION) ||
	    !SSL_CTX_set1_curves_list(o.ctx, o.groups)) {
		fprintf(stderr, "starttls-bench: cannot set up TLS\n");
		return 1;
	}
	/* The load generator measures the server; it does not verify its certificate (BoringSSL
	 * still checks the handshake's signature with the certificate's key). */
	SSL_CTX_set_custom_verify(o.ctx, SSL_VERIFY_PEER, accept_any_certificate);
	stls_tls_client_ctx_setup(o.ctx);
	if (o.mode == STLS_BENCH_MESSAGE || o.mode == STLS_BENCH_PLAIN) {
		o.message = make_message(&o, &o.message_len);
		if (!o.message)
			return 1;
	}
	if (stls_worker_probe_uring(err, sizeof(err)) != STLS_OK) {
		fprintf(stderr, "starttls-bench: %s\n", err);
		return 1;
	}
	struct stls_snapshot *snap = stls_calloc(1, sizeof(*snap));
	snap->cfg = &cfg;
	stls_snapshot_publish(snap);

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_sigint);
	struct stls_bench_thread *threads =
		stls_calloc_aligned(o.threads, sizeof(*threads), alignof(struct stls_bench_thread));
	struct stls_snapshot_reader *readers =
		stls_calloc_aligned(o.threads, sizeof(*readers), alignof(struct stls_snapshot_reader));
	stls_snapshot_set_readers(readers, o.threads);
	uint64_t t0 = stls_bench_now_ns();
	uint64_t warm = t0 + (uint64_t)(o.warmup_s * 1e9);
	for (unsigned i = 0; i < o.threads; i++) {
		struct stls_bench_thread *t = &threads[i];
		t->opts = &o;
		t->index = i;
		t->target = o.concurrency / o.threads + (i < o.concurrency % o.threads);
		t->quota = o.sessions ? o.sessions / o.threads + (i < o.sessions % o.threads) : 0;
		t->t0_ns = t0;
		t->warm_ns = o.sessions ? t0 : warm;
		t->end_ns = o.duration_s > 0 ? warm + (uint64_t)(o.duration_s * 1e9) : 0;
		t->free_slots = stls_calloc(t->target, sizeof(*t->free_slots));
		if (o.mode == STLS_BENCH_RESUME)
			t->slots = stls_calloc(t->target, sizeof(*t->slots));
		for (unsigned k = 0; k < t->target; k++)
			t->free_slots[t->num_free++] = t->target - 1 - k;
		t->driver = (struct stls_worker_driver){ .on_turn = stls_bench_on_turn, .ctx = t };
		int cpu = num_cpus > 0 ? cpu_list[i % (unsigned)num_cpus] : -1;
		stls_worker_init(&t->worker, &cfg, i, o.threads, cpu, NULL, 0, &readers[i]);
		t->worker.driver = &t->driver;
		if (stls_worker_start(&t->worker) != STLS_OK) {
			fprintf(stderr, "starttls-bench: thread %u: %s\n", i, t->worker.error);
			return 1;
		}
	}

	bool tty = !quiet && isatty(2);
	uint64_t last_done = 0, last_ns = t0, idle_peak = 0;
	bool idle_announced = false;
	/* Each thread's CPU from the end of the warm-up on: the busiest one says whether the client
	 * was the bottleneck. */
	double *cpu_at_warm = stls_calloc(o.threads, sizeof(double));
	uint64_t cpu_from_ns = t0;
	bool cpu_marked = warm <= t0; /* no warm-up: from the start */
	for (;;) {
		/* A second between progress lines, but wake at the end of the warm-up to mark the CPU
		 * clocks there: a run shorter than a second would otherwise measure no client CPU. */
		uint64_t nap_ns = 1000000000ull, before = stls_bench_now_ns();
		if (!cpu_marked && warm > before && warm - before < nap_ns)
			nap_ns = warm - before;
		struct timespec ts = { (time_t)(nap_ns / 1000000000ull), (long)(nap_ns % 1000000000ull) };
		nanosleep(&ts, NULL);
		bool all_exited = true;
		uint64_t done = 0, failed = 0, idle = 0;
		for (unsigned i = 0; i < o.threads; i++) {
			all_exited &= stls_worker_exited(&threads[i].worker);
			done += atomic_load_explicit(&threads[i].stats.done, memory_order_relaxed);
			failed += atomic_load_explicit(&threads[i].stats.failed, memory_order_relaxed);
			idle += atomic_load_explicit(&threads[i].stats.idle_open, memory_order_relaxed);
		}
		uint64_t now = stls_bench_now_ns();
		if (!cpu_marked && now >= warm) {
			for (unsigned i = 0; i < o.threads; i++)
				cpu_at_warm[i] = thread_cpu_s(threads[i].worker.thread);
			cpu_from_ns = now;
			cpu_marked = true;
		}
		if (idle > idle_peak)
			idle_peak = idle;
		if (o.mode == STLS_BENCH_IDLE && !idle_announced && idle >= o.concurrency) {
			/* For scripts measuring the server's memory while the sessions are held. */
			printf("idle: %llu sessions established\n", (unsigned long long)idle);
			fflush(stdout);
			idle_announced = true;
		}
		if (tty) {
			double elapsed = (double)(now - t0) / 1e9;
			double total = o.warmup_s + o.duration_s;
			fprintf(stderr, "\r%8.0f sessions/s  %llu done  %llu errors  %llu idle open  %5.1f/%.0f s   ",
				(double)(done - last_done) / ((double)(now - last_ns) / 1e9), (unsigned long long)done,
				(unsigned long long)failed, (unsigned long long)idle, elapsed, total);
		}
		last_done = done;
		last_ns = now;
		if (g_interrupted) {
			for (unsigned i = 0; i < o.threads; i++)
				stls_worker_signal(&threads[i].worker, STLS_WORKER_GRACE_OVER | STLS_WORKER_DRAIN);
			g_interrupted = 0;
		}
		if (all_exited)
			break;
	}
	if (tty)
		fprintf(stderr, "\n");
	uint64_t t_end = stls_bench_now_ns();

	struct stls_bench_stats total = { 0 };
	double max_thread_cpu = 0;
	for (unsigned i = 0; i < o.threads; i++) {
		struct stls_bench_thread *t = &threads[i];
		/* A thread's CPU clock stays readable until it is joined. */
		double cpu_end = t->cpu_end_s > 0 ? t->cpu_end_s : thread_cpu_s(t->worker.thread);
		uint64_t end_ns = t->cpu_end_ns ? t->cpu_end_ns : t_end;
		double busy =
			end_ns > cpu_from_ns ? (cpu_end - cpu_at_warm[i]) / ((double)(end_ns - cpu_from_ns) / 1e9) : 0;
		if (busy > max_thread_cpu)
			max_thread_cpu = busy;
		stls_worker_join(&t->worker);
		struct stls_bench_stats *st = &t->stats;
		total.counted += st->counted;
		total.handshakes += st->handshakes;
		total.resumed += st->resumed;
		total.done += atomic_load(&st->done);
		total.failed += atomic_load(&st->failed);
		for (unsigned e = 0; e < STLS_BENCH_ERR__COUNT; e++)
			total.errors[e] += st->errors[e];
		if (st->last_tls_error[0])
			snprintf(total.last_tls_error, sizeof(total.last_tls_error), "%s", st->last_tls_error);
		if (st->last_protocol_error[0])
			snprintf(total.last_protocol_error, sizeof(total.last_protocol_error), "%s",
				 st->last_protocol_error);
		stls_hist_merge(&total.session, &st->session);
		stls_hist_merge(&total.handshake, &st->handshake);
		stls_bench_thread_cleanup(t);
	}
	stls_free_ptr(&cpu_at_warm);
	double wall = (double)(t_end - t0) / 1e9;
	double measured = o.sessions ? wall : o.duration_s;
	uint64_t errors = 0;
	for (unsigned e = 0; e < STLS_BENCH_ERR__COUNT; e++)
		errors += total.errors[e];
	uint64_t attempts = total.counted + errors;
	double rate = measured > 0 ? (double)total.counted / measured : 0;
	double hs_rate = measured > 0 ? (double)total.handshakes / measured : 0;
	bool saturated = max_thread_cpu > 0.90 && o.mode != STLS_BENCH_IDLE;
	double error_ratio = attempts ? (double)errors / (double)attempts : 0;

	printf("mode %s  threads %u  concurrency %u  measured %.1f s\n", stls_bench_mode_str(o.mode), o.threads,
	       o.concurrency, measured);
	printf("sessions/s %.1f   handshakes/s %.1f   sessions %llu   errors %llu (%.2f %%)\n", rate, hs_rate,
	       (unsigned long long)total.counted, (unsigned long long)errors, error_ratio * 100);
	if (o.mode == STLS_BENCH_IDLE)
		printf("idle sessions held at the peak: %llu of %u\n", (unsigned long long)idle_peak, o.concurrency);
	if (o.mode == STLS_BENCH_RESUME)
		printf("resumed %.1f %% of handshakes\n",
		       total.handshakes ? 100.0 * (double)total.resumed / (double)total.handshakes : 0.0);
	print_latency(stdout, "session", &total.session);
	print_latency(stdout, "handshake", &total.handshake);
	printf("errors: connect %llu  protocol %llu  tls %llu  timeout %llu%s%s%s\n",
	       (unsigned long long)total.errors[STLS_BENCH_ERR_CONNECT],
	       (unsigned long long)total.errors[STLS_BENCH_ERR_PROTOCOL],
	       (unsigned long long)total.errors[STLS_BENCH_ERR_TLS],
	       (unsigned long long)total.errors[STLS_BENCH_ERR_TIMEOUT],
	       total.last_protocol_error[0] ? "  (last reply: " : "", total.last_protocol_error,
	       total.last_protocol_error[0] ? ")" : "");
	if (total.last_tls_error[0])
		printf("last TLS error: %s\n", total.last_tls_error);
	printf("client cpu %.0f %% (busiest of %u thread%s)%s\n", max_thread_cpu * 100, o.threads,
	       o.threads == 1 ? "" : "s",
	       saturated ? "  SATURATED: the figure above is the client's, not the server's" : "");

	if (json) {
		FILE *out = fopen(json, "w");
		if (!out) {
			fprintf(stderr, "starttls-bench: --json %s: %s\n", json, strerror(errno));
			return 1;
		}
		fprintf(out, "{\n  \"mode\": \"%s\",\n  \"threads\": %u,\n  \"concurrency\": %u,\n",
			stls_bench_mode_str(o.mode), o.threads, o.concurrency);
		fprintf(out, "  \"tls\": \"%s\",\n  \"groups\": \"%s\",\n  \"size\": %llu,\n",
			o.tls_version == TLS1_2_VERSION	  ? "1.2"
			: o.tls_version == TLS1_3_VERSION ? "1.3"
							  : "any",
			o.groups, (unsigned long long)o.size);
		fprintf(out, "  \"measured_s\": %.3f,\n  \"sessions\": %llu,\n  \"sessions_per_s\": %.2f,\n", measured,
			(unsigned long long)total.counted, rate);
		fprintf(out, "  \"handshakes_per_s\": %.2f,\n  \"resumed_ratio\": %.4f,\n", hs_rate,
			total.handshakes ? (double)total.resumed / (double)total.handshakes : 0.0);
		fprintf(out, "  \"latency_ms\": {\n");
		json_latency(out, "session", &total.session, true);
		json_latency(out, "handshake", &total.handshake, false);
		fprintf(out,
			"  },\n  \"errors\": {\"connect\": %llu, \"protocol\": %llu, \"tls\": %llu, \"timeout\": "
			"%llu},\n",
			(unsigned long long)total.errors[STLS_BENCH_ERR_CONNECT],
			(unsigned long long)total.errors[STLS_BENCH_ERR_PROTOCOL],
			(unsigned long long)total.errors[STLS_BENCH_ERR_TLS],
			(unsigned long long)total.errors[STLS_BENCH_ERR_TIMEOUT]);
		fprintf(out, "  \"idle_peak\": %llu,\n", (unsigned long long)idle_peak);
		fprintf(out, "  \"error_ratio\": %.5f,\n  \"client_cpu\": %.6f,\n  \"saturated\": %s\n}\n", error_ratio,
			max_thread_cpu, saturated ? "true" : "false");
		fclose(out);
	}
	stls_free_ptr(&o.message);
	SSL_CTX_free(o.ctx);
	stls_snapshot_shutdown();
	stls_free_ptr(&threads);
	stls_free_ptr(&readers);
	if (error_ratio > 0.01)
		return EXIT_FAILURES;
	if (total.counted == 0 && o.mode != STLS_BENCH_IDLE) {
		fprintf(stderr, "starttls-bench: no session completed in the measured period\n");
		return EXIT_FAILURES;
	}
	return saturated ? EXIT_SATURATED : 0;
}
