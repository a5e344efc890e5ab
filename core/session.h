/* A session: one client connection and, when it needs one, the connection the proxy opened
 * for it (the backend, or later a destination MTA), driven by one worker.
 *
 * The worker owns the sockets, the io_uring operations and the memory; the protocol code (proto/)
 * owns the meaning of the bytes and is called through struct stls_session_ops. Protocol code
 * queues bytes with stls_conn_write and says what it waits for (stls_conn_want_recv, timers);
 * the worker turns that into submissions once per loop turn, so replies queued while handling one
 * batch of input go out in one send. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/span.h"
#include "core/timer.h"
#include "tls/tickets.h"

struct stls_worker;
struct stls_snapshot;
struct stls_session;
struct stls_tls_conn;

enum stls_side {
	STLS_SIDE_CLIENT = 0, /* the peer that connected to us */
	STLS_SIDE_SERVER,     /* the peer we connected to */
	STLS_SIDE__COUNT,
};

const char *stls_side_str(enum stls_side side);

enum stls_conn_flag {
	STLS_CONN_OPEN = 1u << 0,	 /* fd is valid */
	STLS_CONN_WANT_RECV = 1u << 1,	 /* the protocol wants bytes */
	STLS_CONN_RECV_ARMED = 1u << 2,	 /* a receive is in flight */
	STLS_CONN_SENDING = 1u << 3,	 /* a send is in flight */
	STLS_CONN_CONNECTING = 1u << 4,	 /* a connect is in flight */
	STLS_CONN_EOF = 1u << 5,	 /* the peer closed its side */
	STLS_CONN_CLOSE_AFTER = 1u << 6, /* close once everything queued is sent */
	STLS_CONN_CLOSING = 1u << 7,	 /* cancelled; closes when nothing is in flight */
};

struct stls_conn {
	int fd;
	uint16_t flags;
	uint8_t num_inflight;	   /* operations in flight on fd */
	struct stls_tls_conn *tls; /* set once STARTTLS began on this connection */
	struct stls_buf in;	   /* received plaintext the protocol has not consumed yet */
	struct stls_buf out;	   /* plaintext queued to send */
	struct stls_buf wire;	   /* with TLS: ciphertext (and the clear-text 220) waiting to be sent */
	struct stls_buf sending;   /* bytes the kernel is sending: pinned until the send completes */
};

struct stls_session_ops {
	const char *name;
	size_t size; /* bytes to allocate for the protocol's session type */
	/* The client connection is open: greet it. */
	void (*on_open)(struct stls_session *s);
	/* Bytes arrived on side. Returns how many the protocol consumed; the worker keeps the rest
	 * in conn->in and hands them back (with what arrives next) on the next call. */
	size_t (*on_recv)(struct stls_session *s, enum stls_side side, struct stls_span data);
	/* The peer on side closed its sending half (EOF) or the connection failed (err < 0, -errno). */
	void (*on_closed)(struct stls_session *s, enum stls_side side, int err);
	/* A send on side completed and nothing more is in flight there. */
	void (*on_sent)(struct stls_session *s, enum stls_side side);
	/* A connect on side completed: res 0 or -errno. */
	void (*on_connected)(struct stls_session *s, enum stls_side side, int res);
	/* The connection on side is fully closed and the side may be opened again (optional). */
	void (*on_released)(struct stls_session *s, enum stls_side side);
	/* The TLS handshake on side finished: res STLS_OK, or a failure whose reason
	 * stls_conn_tls_error gives. */
	void (*on_tls)(struct stls_session *s, enum stls_side side, enum stls_err res);
	/* The session's timer fired. */
	void (*on_timeout)(struct stls_session *s);
	/* The daemon's shutdown grace period ended: finish the session now. */
	void (*on_shutdown)(struct stls_session *s);
	/* The session is about to be freed: release what the protocol holds. */
	void (*on_free)(struct stls_session *s);
};

struct stls_session {
	const struct stls_session_ops *ops;
	struct stls_worker *worker;
	struct stls_snapshot *snap; /* the snapshot the session started with */
	uint32_t slot;
	uint32_t gen;
	uint32_t num_inflight; /* every operation in flight for this session */
	bool ending;	       /* the protocol is done; free when everything is closed */
	bool dirty;	       /* on the worker's list of sessions to flush this turn */
	struct stls_session *dirty_next;
	struct stls_timer timer;
	uint64_t id;	   /* ICID / DCID */
	uint32_t listener; /* index of the --listen it came through */
	struct stls_conn conn[STLS_SIDE__COUNT];
	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	char peer_ip[64]; /* printable address of the client */
	uint16_t peer_port;
	char local_ip[64];
	uint16_t local_port;
};

/* Queues bytes to send on side (they go out at the end of this loop turn, with whatever else is
 * queued by then). Returns STLS_OK, STLS_ERR_LIMIT if more than limit bytes would be waiting, or
 * STLS_ERR_NOMEM. */
[[nodiscard]] enum stls_err stls_conn_write(struct stls_session *s, enum stls_side side, struct stls_span data,
					    size_t limit);

/* Bytes queued or in flight on side. */
size_t stls_conn_pending(const struct stls_session *s, enum stls_side side);

/* Asks for (or stops asking for) bytes on side. */
void stls_conn_want_recv(struct stls_session *s, enum stls_side side, bool want);

/* Closes side. With flush, what is queued is sent first; without, it is dropped and operations in
 * flight are cancelled. Harmless on a side that is not open. */
void stls_conn_close(struct stls_session *s, enum stls_side side, bool flush);

static inline bool stls_conn_is_open(const struct stls_session *s, enum stls_side side)
{
	return (s->conn[side].flags & STLS_CONN_OPEN) != 0;
}

/* Opens a non-blocking TCP connection on side to addr (the side must be closed). Completion
 * comes through ops->on_connected. Returns STLS_OK or STLS_ERR_IO (socket() failed: errno set). */
[[nodiscard]] enum stls_err stls_conn_connect(struct stls_session *s, enum stls_side side, const struct sockaddr *addr,
					      socklen_t addr_len);

/* Starts TLS as the server on side: what is queued so far (the 220 to STARTTLS) still goes out
 * in clear text, everything after it through TLS with ctx; bytes received from now on are
 * ciphertext. Completion comes through ops->on_tls. keys must outlive the connection. Returns
 * STLS_OK or STLS_ERR_NOMEM. */
[[nodiscard]] enum stls_err stls_conn_start_tls(struct stls_session *s, enum stls_side side, struct ssl_ctx_st *ctx,
						const struct stls_ticket_keys *keys);

/* Starts TLS as the client on side: sends the ClientHello, offering resume (may be NULL) and SNI
 * server_name (may be NULL). Completion comes through ops->on_tls. Returns STLS_OK, STLS_ERR_NOMEM
 * or STLS_ERR_TLS. */
[[nodiscard]] enum stls_err stls_conn_start_tls_client(struct stls_session *s, enum stls_side side,
						       struct ssl_ctx_st *ctx, struct ssl_session_st *resume,
						       const char *server_name);

/* Why TLS failed on side ("" if it has not). */
const char *stls_conn_tls_error(const struct stls_session *s, enum stls_side side);

/* Ends the session: both sides are closed after their queued bytes are sent (flush) or at once,
 * and the session is freed when no operation is in flight. */
void stls_session_end(struct stls_session *s, bool flush);

/* Arms the session's timer for ms milliseconds (replacing any earlier deadline), or disarms it
 * with ms == 0. */
void stls_session_timer(struct stls_session *s, uint64_t ms);

/* Marks the session for the end-of-turn flush (called by the stls_conn_* functions). */
void stls_session_mark(struct stls_session *s);
