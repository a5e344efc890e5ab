/* starttls-bench: the load generator. It runs on the daemon's own engine (core/worker.c): one
 * pinned thread per --threads with its own io_uring, each driving many SMTP client sessions at once
 * (bench/client.c), so the client costs what the server costs and is rarely the bottleneck. */
#pragma once

#include <openssl/base.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench/hist.h"
#include "core/worker.h"

enum stls_bench_mode {
	STLS_BENCH_HANDSHAKE = 0, /* greeting, EHLO, STARTTLS, handshake, EHLO, QUIT */
	STLS_BENCH_RESUME,	  /* the same, resuming the slot's last session */
	STLS_BENCH_MESSAGE,	  /* a transaction of --size bytes over TLS */
	STLS_BENCH_PLAIN,	  /* the same without TLS */
	STLS_BENCH_IDLE,	  /* open TLS sessions and hold them */
	STLS_BENCH__COUNT,
};

const char *stls_bench_mode_str(enum stls_bench_mode mode);

enum stls_bench_error {
	STLS_BENCH_ERR_CONNECT = 0,
	STLS_BENCH_ERR_PROTOCOL,
	STLS_BENCH_ERR_TLS,
	STLS_BENCH_ERR_TIMEOUT,
	STLS_BENCH_ERR__COUNT,
};

const char *stls_bench_error_str(enum stls_bench_error err);

/* Read-only settings shared by the threads. */
struct stls_bench_opts {
	enum stls_bench_mode mode;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char host[256];
	unsigned threads;
	unsigned concurrency; /* sessions in flight, all threads together */
	double duration_s;    /* 0: run --sessions instead */
	uint64_t sessions;    /* 0: run --duration instead */
	double warmup_s;
	int tls_version; /* 0 (1.2 or 1.3), TLS1_2_VERSION or TLS1_3_VERSION */
	char groups[32];
	uint64_t size;
	char ehlo[64];
	char from[128];
	char to[128];
	unsigned timeout_s;
	SSL_CTX *ctx;
	char *message; /* the message for message/plain modes, dot-stuffed, ending in CRLF.CRLF */
	uint64_t message_len;
};

/* What a thread counted; merged by the main thread at the end. Counters the progress line reads
 * while the run goes on are atomics written by their thread only. */
struct stls_bench_stats {
	alignas(64) _Atomic uint64_t done; /* completed sessions (all, warm-up included) */
	_Atomic uint64_t failed;	   /* failed sessions (all) */
	_Atomic uint64_t idle_open;	   /* idle mode: sessions established and held */
	uint64_t counted;		   /* sessions that count (started after the warm-up) */
	uint64_t handshakes;		   /* counted sessions that completed a handshake */
	uint64_t resumed;		   /* of those, resumed */
	uint64_t errors[STLS_BENCH_ERR__COUNT];
	char last_protocol_error[160];
	char last_tls_error[96];
	struct stls_hist session;
	struct stls_hist handshake;
};

struct stls_bench_thread {
	const struct stls_bench_opts *opts;
	struct stls_worker worker;
	struct stls_worker_driver driver;
	unsigned index;
	unsigned target; /* this thread's share of --concurrency */
	uint64_t quota;	 /* this thread's share of --sessions (0: unlimited) */
	uint64_t started;
	unsigned active;
	uint64_t t0_ns;	  /* start of the run */
	uint64_t warm_ns; /* end of the warm-up */
	uint64_t end_ns;  /* no new sessions after this (0 with --sessions) */
	bool stopping;
	double cpu_end_s;    /* the thread's CPU time when it finished (it reads its own clock) */
	uint64_t cpu_end_ns; /* and when that was */
	SSL_SESSION **slots; /* resume mode: each concurrency slot's last session */
	uint32_t *free_slots;
	unsigned num_free;
	struct stls_bench_stats stats;
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t stls_bench_now_ns(void);

/* The driver callback for a bench thread's worker (bench/client.c). */
void stls_bench_on_turn(struct stls_worker *w, void *ctx);

/* Frees what the thread's sessions left (resume sessions). */
void stls_bench_thread_cleanup(struct stls_bench_thread *t);
