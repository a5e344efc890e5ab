/* Workers: one thread per core, each with its own io_uring, listening sockets, receive buffers,
 * sessions, timers and counters.
 *
 * Nothing a worker touches while serving traffic is written by another thread: the main thread
 * talks to a worker only through its control word and event fd, and reads the worker's counters
 * and published snapshot generation, each on cache lines the worker alone writes. */
#pragma once

#include <liburing.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "core/session.h"
#include "core/snapshot.h"
#include "core/timer.h"

/* Adds one to a counter that only the calling worker writes: a plain load and store, no locked
 * instruction, while other threads may still read it atomically. */
static inline void stls_counter_inc(_Atomic uint64_t *counter)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* Counters a worker keeps for itself; the main thread reads them (relaxed) for stats. */
struct stls_worker_stats {
	alignas(64) _Atomic uint64_t accepted;
	_Atomic uint64_t refused_limit; /* turned away: --max-sessions */
	_Atomic uint64_t sessions_active;
	_Atomic uint64_t recv_nobufs; /* receives that found the buffer ring empty */
	_Atomic uint64_t accept_errors;
	_Atomic uint64_t messages; /* messages the backend accepted */
	_Atomic uint64_t protocol_errors;
	_Atomic uint64_t timeouts;
	_Atomic uint64_t tls_success;
	_Atomic uint64_t tls_failed;
	_Atomic uint64_t starttls_injections; /* clear text sent after STARTTLS */
	_Atomic uint64_t limit_rejects;	      /* refused by a sender group's limits or --max-per-ip */
	_Atomic uint64_t keyop_requests;      /* signature requests sent (or queued) to the key-op process */
	_Atomic uint64_t keyop_signs;	      /* signatures the key-op process made */
	_Atomic uint64_t keyop_failures;      /* and those it could not */
};

enum stls_worker_control {
	STLS_WORKER_DRAIN = 1u << 0,	  /* stop accepting; exit when no session is left */
	STLS_WORKER_GRACE_OVER = 1u << 1, /* tell every session to finish now */
	STLS_WORKER_ABORT = 1u << 2,	  /* close everything at once */
};

/* The protocol served on a listener. */
struct stls_listener {
	int fd;
	const struct stls_session_ops *ops;
	const struct stls_addr *addr;
};

/* Something that drives a worker besides its listeners (the load generator): called once when
 * the worker starts and once every loop turn, on the worker's thread. */
struct stls_worker_driver {
	void (*on_turn)(struct stls_worker *w, void *ctx);
	void *ctx;
};

/* A file descriptor the worker watches for someone else (the DNS resolver's sockets). */
typedef void stls_worker_poll_fn(void *ctx, int fd, unsigned revents);

enum { STLS_WORKER_MAX_POLLS = 16, STLS_WORKER_MAX_HOOKS = 4 };

struct stls_worker_poll {
	int fd; /* -1: free */
	unsigned events;
	bool armed;
	stls_worker_poll_fn *fn;
	void *ctx;
};

struct stls_snapshot_pin {
	struct stls_snapshot *snap;
	uint32_t num_users; /* sessions using it, plus one while it is the worker's current */
};

enum { STLS_WORKER_MAX_PINS = 16 };

struct stls_worker {
	unsigned index;
	unsigned num_workers;
	int cpu; /* -1: not pinned */
	const struct stls_config *cfg;
	pthread_t thread;

	struct io_uring ring;
	unsigned ring_flags; /* the IORING_SETUP_* flags the kernel accepted */
	struct io_uring_buf_ring *br;
	uint8_t *br_bufs;
	size_t br_ring_len;
	unsigned br_returned; /* buffers added back since the last advance */

	struct stls_listener listeners[2 * STLS_MAX_LISTEN]; /* inbound, then outbound */
	unsigned num_listeners;
	bool accepting;

	struct stls_session **slots;
	uint32_t num_slots;
	uint32_t *free_slots;
	uint32_t num_free;
	uint32_t next_gen;
	uint32_t num_sessions;
	uint32_t max_sessions;
	struct stls_session *dirty;

	struct stls_timer_wheel wheel;
	uint64_t now_ms;
	uint64_t abort_at_ms; /* when sessions that ignore the grace period are cut off */

	int event_fd;
	uint64_t event_buf;
	_Atomic unsigned control;
	unsigned control_seen;

	struct stls_snapshot *snap; /* current as of this loop turn */
	struct stls_snapshot_pin pins[STLS_WORKER_MAX_PINS];
	struct stls_snapshot_reader *reader;

	uint64_t next_id;
	uint64_t next_mid;

	const struct stls_worker_driver *driver;		/* NULL for the daemon */
	struct stls_worker_driver hooks[STLS_WORKER_MAX_HOOKS]; /* called every turn too */
	unsigned num_hooks;
	struct stls_worker_poll polls[STLS_WORKER_MAX_POLLS];
	void *dns; /* the worker's resolver, made on first use (proto/dns.c) */
	void (*dns_cleanup)(struct stls_worker *w);
	int keyop_fd;		       /* signing channel to the key-op process, -1 without */
	struct stls_keyop_chan *keyop; /* core/keyop_chan.c */

	_Atomic int state; /* 0 starting, 1 running, -1 failed, 2 exited */
	char error[256];

	struct stls_worker_stats stats;
};

/* Prepares worker index of num (no thread yet): copies the listeners (the worker closes them). */
void stls_worker_init(struct stls_worker *w, const struct stls_config *cfg, unsigned index, unsigned num, int cpu,
		      const struct stls_listener *listeners, unsigned num_listeners,
		      struct stls_snapshot_reader *reader);

/* Starts the thread and waits until its ring is set up. Returns STLS_OK, or STLS_ERR_IO with the
 * reason in w->error. */
[[nodiscard]] enum stls_err stls_worker_start(struct stls_worker *w);

/* Sets control bits and wakes the worker (main thread). */
void stls_worker_signal(struct stls_worker *w, unsigned control);

/* True once the worker's loop has ended. */
bool stls_worker_exited(struct stls_worker *w);

/* Joins the thread and frees what remains. */
void stls_worker_join(struct stls_worker *w);

/* A session with no connection yet, for a driver to open one with stls_conn_connect (worker's
 * thread only). Returns NULL when out of memory. */
struct stls_session *stls_worker_session_new(struct stls_worker *w, const struct stls_session_ops *ops);

/* Adds a callback run every loop turn (worker's thread only). Returns STLS_OK or STLS_ERR_LIMIT. */
[[nodiscard]] enum stls_err stls_worker_add_hook(struct stls_worker *w, void (*fn)(struct stls_worker *w, void *ctx),
						 void *ctx);

/* Watches fd for events (POLLIN / POLLOUT) once: fn runs when one happens, and the watch must be
 * renewed to go on. events 0 stops watching. Worker's thread only. Returns STLS_OK or
 * STLS_ERR_LIMIT. */
[[nodiscard]] enum stls_err stls_worker_watch(struct stls_worker *w, int fd, unsigned events, stls_worker_poll_fn *fn,
					      void *ctx);

/* The session in slot if its generation is still gen (a callback that outlived its session gets
 * NULL). */
struct stls_session *stls_worker_session_get(struct stls_worker *w, uint32_t slot, uint32_t gen);

/* A session's connection as one number that outlives it safely: stls_worker_session_by_token
 * gives the session back (and the side), or NULL once it ended or its slot was reused. */
uint64_t stls_session_token(const struct stls_session *s, enum stls_side side);
struct stls_session *stls_worker_session_by_token(struct stls_worker *w, uint64_t token, enum stls_side *out_side);

/* The key-op process answered a signature for the connection on side: the handshake resumes as
 * if ciphertext had arrived. */
void stls_worker_tls_resume(struct stls_session *s, enum stls_side side);

/* Calls fn for every session that is not ending (worker's thread only). */
void stls_worker_each_session(struct stls_worker *w, void (*fn)(struct stls_session *s, void *ctx), void *ctx);

/* Stops accepting; the worker's loop ends once its last session is gone (worker's thread only). */
void stls_worker_stop_when_idle(struct stls_worker *w);

/* A new ICID/DCID or MID, unique across workers (the worker index is folded into the counter). */
uint64_t stls_worker_next_id(struct stls_worker *w);
uint64_t stls_worker_next_mid(struct stls_worker *w);

/* The worker's current monotonic time in milliseconds (read once per loop turn). */
static inline uint64_t stls_worker_now_ms(const struct stls_worker *w)
{
	return w->now_ms;
}

/* The worker currently running on this thread (NULL outside workers). */
struct stls_worker *stls_worker_self(void);

/* Checks that io_uring can be used at all (main thread, before starting workers). Returns STLS_OK
 * or STLS_ERR_IO with a reason a person can act on in err. */
[[nodiscard]] enum stls_err stls_worker_probe_uring(char *err, size_t err_len);
