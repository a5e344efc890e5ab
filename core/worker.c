#include "core/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/keyop_chan.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/net.h"
#include "tls/conn.h"

/* user_data layout: op (6 bits) | side (1 bit) | generation (25 bits) | slot (32 bits). A
 * completion whose generation does not match the slot's session is stale and dropped. */
enum stls_op {
	OP_NONE = 0,
	OP_ACCEPT, /* slot = listener index */
	OP_EVENT,  /* the control eventfd */
	OP_RECV,
	OP_SEND,
	OP_CONNECT,
	OP_CANCEL,
	OP_CLOSE,
	OP_LISTEN_CANCEL,
	OP_POLL, /* slot = index in w->polls */
	OP__COUNT,
};

enum { GEN_BITS = 25, BGID = 0, SQ_ENTRIES = 1024, FORCE_CLOSE_MS = 10000 };

static uint64_t ud_make(enum stls_op op, enum stls_side side, uint32_t gen, uint32_t slot)
{
	return ((uint64_t)op << 58) | ((uint64_t)side << 57) | ((uint64_t)(gen & ((1u << GEN_BITS) - 1)) << 32) | slot;
}

static enum stls_op ud_op(uint64_t ud)
{
	return (enum stls_op)(ud >> 58);
}

static enum stls_side ud_side(uint64_t ud)
{
	return (enum stls_side)((ud >> 57) & 1);
}

static uint32_t ud_gen(uint64_t ud)
{
	return (uint32_t)(ud >> 32) & ((1u << GEN_BITS) - 1);
}

static uint32_t ud_slot(uint64_t ud)
{
	return (uint32_t)ud;
}

static _Thread_local struct stls_worker *t_worker;

struct stls_worker *stls_worker_self(void)
{
	return t_worker;
}

const char *stls_side_str(enum stls_side side)
{
	return side == STLS_SIDE_CLIENT ? "client" : side == STLS_SIDE_SERVER ? "server" : "unknown";
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* An SQE, submitting what is queued if the submission ring is full (rare: it has room for many
 * turns' worth of work). */
static struct io_uring_sqe *get_sqe(struct stls_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe) {
		int ret = io_uring_submit(&w->ring);
		STLS_BUG_ON(ret < 0 && ret != -EBUSY && ret != -EAGAIN);
		sqe = io_uring_get_sqe(&w->ring);
	}
	STLS_BUG_ON(sqe == NULL);
	return sqe;
}

/* ---- snapshot pins ------------------------------------------------------------------------ */

static void publish_oldest_gen(struct stls_worker *w)
{
	uint64_t oldest = UINT64_MAX;
	for (unsigned i = 0; i < STLS_WORKER_MAX_PINS; i++)
		if (w->pins[i].snap && w->pins[i].snap->gen < oldest)
			oldest = w->pins[i].snap->gen;
	atomic_store_explicit(&w->reader->oldest_gen, oldest, memory_order_release);
}

static struct stls_snapshot_pin *pin_find(struct stls_worker *w, struct stls_snapshot *snap)
{
	for (unsigned i = 0; i < STLS_WORKER_MAX_PINS; i++)
		if (w->pins[i].snap == snap)
			return &w->pins[i];
	return NULL;
}

static void pin_get(struct stls_worker *w, struct stls_snapshot *snap)
{
	struct stls_snapshot_pin *p = pin_find(w, snap);
	if (!p) {
		p = pin_find(w, NULL);
		/* More than STLS_WORKER_MAX_PINS generations alive at once means reloads far faster than
		 * sessions end; the reload path refuses that before it gets here. */
		STLS_BUG_ON(p == NULL);
		p->snap = snap;
		p->num_users = 0;
	}
	p->num_users++;
}

static void pin_put(struct stls_worker *w, struct stls_snapshot *snap)
{
	struct stls_snapshot_pin *p = pin_find(w, snap);
	STLS_BUG_ON(p == NULL || p->num_users == 0);
	if (--p->num_users == 0) {
		p->snap = NULL;
		publish_oldest_gen(w);
	}
}

/* Once a turn, right after the wait: adopt the newest snapshot. */
static void snapshot_refresh(struct stls_worker *w)
{
	struct stls_snapshot *cur = stls_snapshot_current();
	if (cur == w->snap)
		return;
	pin_get(w, cur);
	struct stls_snapshot *old = w->snap;
	w->snap = cur;
	if (old)
		pin_put(w, old);
	publish_oldest_gen(w);
}

/* ---- sessions ----------------------------------------------------------------------------- */

static struct stls_session *session_new(struct stls_worker *w, const struct stls_session_ops *ops)
{
	if (w->num_free == 0) {
		uint32_t grow = w->num_slots ? w->num_slots : 64;
		struct stls_session **slots = stls_realloc(w->slots, sizeof(*slots) * (w->num_slots + grow));
		if (!slots)
			return NULL;
		w->slots = slots;
		uint32_t *free_slots = stls_realloc(w->free_slots, sizeof(*free_slots) * (w->num_slots + grow));
		if (!free_slots)
			return NULL;
		w->free_slots = free_slots;
		for (uint32_t i = 0; i < grow; i++) {
			w->slots[w->num_slots + i] = NULL;
			w->free_slots[w->num_free++] = w->num_slots + grow - 1 - i;
		}
		w->num_slots += grow;
	}
	struct stls_session *s = stls_calloc(1, ops->size);
	if (!s)
		return NULL;
	uint32_t slot = w->free_slots[--w->num_free];
	w->slots[slot] = s;
	s->ops = ops;
	s->worker = w;
	s->slot = slot;
	s->gen = (w->next_gen++) & ((1u << GEN_BITS) - 1);
	s->conn[STLS_SIDE_CLIENT].fd = -1;
	s->conn[STLS_SIDE_SERVER].fd = -1;
	s->snap = w->snap;
	pin_get(w, s->snap);
	w->num_sessions++;
	atomic_store_explicit(&w->stats.sessions_active, w->num_sessions, memory_order_relaxed);
	return s;
}

static void conn_release(struct stls_conn *c)
{
	stls_tls_conn_free(&c->tls);
	stls_buf_cleanup(&c->in);
	stls_buf_cleanup(&c->out);
	stls_buf_cleanup(&c->wire);
	stls_buf_cleanup(&c->sending);
}

struct stls_session *stls_worker_session_new(struct stls_worker *w, const struct stls_session_ops *ops)
{
	struct stls_session *s = session_new(w, ops);
	if (s) {
		s->id = stls_worker_next_id(w);
		stls_session_mark(s);
	}
	return s;
}

static void session_free(struct stls_worker *w, struct stls_session *s)
{
	if (s->ops->on_free)
		s->ops->on_free(s);
	stls_timer_disarm(&w->wheel, &s->timer);
	for (unsigned side = 0; side < STLS_SIDE__COUNT; side++)
		conn_release(&s->conn[side]);
	pin_put(w, s->snap);
	w->slots[s->slot] = NULL;
	w->free_slots[w->num_free++] = s->slot;
	w->num_sessions--;
	atomic_store_explicit(&w->stats.sessions_active, w->num_sessions, memory_order_relaxed);
	stls_wipe(s, s->ops->size);
	stls_free_ptr(&s);
}

void stls_session_mark(struct stls_session *s)
{
	if (s->dirty)
		return;
	s->dirty = true;
	s->dirty_next = s->worker->dirty;
	s->worker->dirty = s;
}

void stls_session_timer(struct stls_session *s, uint64_t ms)
{
	if (ms == 0)
		stls_timer_disarm(&s->worker->wheel, &s->timer);
	else
		stls_timer_arm(&s->worker->wheel, &s->timer, ms);
}

enum stls_err stls_conn_write(struct stls_session *s, enum stls_side side, struct stls_span data, size_t limit)
{
	struct stls_conn *c = &s->conn[side];
	if (!(c->flags & STLS_CONN_OPEN) || (c->flags & STLS_CONN_CLOSING))
		return STLS_ERR_CLOSED;
	size_t in_flight = stls_buf_len(&c->sending);
	if (in_flight > limit)
		return STLS_ERR_LIMIT;
	STLS_TRY(stls_buf_append(&c->out, data, limit - in_flight));
	stls_session_mark(s);
	return STLS_OK;
}

size_t stls_conn_pending(const struct stls_session *s, enum stls_side side)
{
	const struct stls_conn *c = &s->conn[side];
	return stls_buf_len(&c->out) + stls_buf_len(&c->wire) + stls_buf_len(&c->sending);
}

/* The most ciphertext or plaintext a connection may hold before the session is dropped: what the
 * pause rules allow plus a few records of slack. */
static size_t conn_limit(const struct stls_config *cfg)
{
	return (size_t)cfg->relay_buffer * 2 + (size_t)cfg->recv_buffer_size * 4 + 65536;
}

enum stls_err stls_conn_start_tls(struct stls_session *s, enum stls_side side, SSL_CTX *ctx,
				  const struct stls_ticket_keys *keys)
{
	struct stls_conn *c = &s->conn[side];
	STLS_BUG_ON(c->tls != NULL);
	/* The reply that accepted STARTTLS is the last clear-text byte on this connection. */
	STLS_TRY(stls_buf_append(&c->wire, stls_buf_span(&c->out), conn_limit(s->worker->cfg)));
	stls_buf_cleanup(&c->out);
	c->tls = stls_tls_conn_new_server(ctx, keys, &c->wire, conn_limit(s->worker->cfg));
	if (!c->tls)
		return STLS_ERR_NOMEM;
	stls_tls_conn_set_token(c->tls, stls_session_token(s, side));
	stls_session_mark(s);
	return STLS_OK;
}

enum stls_err stls_conn_start_tls_client(struct stls_session *s, enum stls_side side, SSL_CTX *ctx, SSL_SESSION *resume,
					 const char *server_name)
{
	struct stls_conn *c = &s->conn[side];
	STLS_BUG_ON(c->tls != NULL);
	STLS_TRY(stls_buf_append(&c->wire, stls_buf_span(&c->out), conn_limit(s->worker->cfg)));
	stls_buf_cleanup(&c->out);
	c->tls = stls_tls_conn_new_client(ctx, resume, server_name, &c->wire, conn_limit(s->worker->cfg));
	if (!c->tls)
		return STLS_ERR_NOMEM;
	stls_session_mark(s);
	return stls_tls_conn_connect(c->tls);
}

const char *stls_conn_tls_error(const struct stls_session *s, enum stls_side side)
{
	return s->conn[side].tls ? stls_tls_conn_error(s->conn[side].tls) : "";
}

void stls_conn_want_recv(struct stls_session *s, enum stls_side side, bool want)
{
	struct stls_conn *c = &s->conn[side];
	if (want) {
		c->flags |= STLS_CONN_WANT_RECV;
		stls_session_mark(s);
	} else {
		/* A receive already in flight stays: its bytes land in conn->in for later. */
		c->flags &= (uint16_t)~STLS_CONN_WANT_RECV;
	}
}

/* With TLS: turns the plaintext queued in `out` into records in `wire`. */
static enum stls_err conn_encrypt(struct stls_session *s, enum stls_side side)
{
	struct stls_conn *c = &s->conn[side];
	if (!c->tls || stls_buf_empty(&c->out) || !stls_tls_conn_ready(c->tls))
		return STLS_OK;
	STLS_TRY(stls_tls_conn_write(c->tls, stls_buf_span(&c->out)));
	stls_buf_cleanup(&c->out);
	return STLS_OK;
}

static void conn_begin_close(struct stls_session *s, enum stls_side side)
{
	struct stls_conn *c = &s->conn[side];
	if (!(c->flags & STLS_CONN_OPEN) || (c->flags & STLS_CONN_CLOSING))
		return;
	c->flags |= STLS_CONN_CLOSING;
	c->flags &= (uint16_t) ~(STLS_CONN_WANT_RECV | STLS_CONN_CLOSE_AFTER);
	if (c->num_inflight > 0) {
		struct io_uring_sqe *sqe = get_sqe(s->worker);
		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, ud_make(OP_CANCEL, side, s->gen, s->slot));
		s->num_inflight++;
	}
	stls_session_mark(s);
}

void stls_conn_close(struct stls_session *s, enum stls_side side, bool flush)
{
	struct stls_conn *c = &s->conn[side];
	if (!(c->flags & STLS_CONN_OPEN))
		return;
	/* A TLS connection ends with close_notify, after the last plaintext, so the peer knows
	 * nothing was cut off. */
	if (flush && c->tls && stls_tls_conn_ready(c->tls) && !(c->flags & STLS_CONN_EOF) &&
	    conn_encrypt(s, side) == STLS_OK) {
		stls_tls_conn_shutdown(c->tls);
		stls_session_mark(s);
	}
	if (flush && (stls_conn_pending(s, side) > 0)) {
		c->flags |= STLS_CONN_CLOSE_AFTER;
		c->flags &= (uint16_t)~STLS_CONN_WANT_RECV;
		stls_session_mark(s);
		return;
	}
	conn_begin_close(s, side);
}

enum stls_err stls_conn_connect(struct stls_session *s, enum stls_side side, const struct sockaddr *addr,
				socklen_t addr_len)
{
	struct stls_conn *c = &s->conn[side];
	STLS_BUG_ON(c->flags & STLS_CONN_OPEN);
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return STLS_ERR_IO;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->flags = STLS_CONN_OPEN | STLS_CONN_CONNECTING;
	struct io_uring_sqe *sqe = get_sqe(s->worker);
	/* The kernel copies the address while preparing the request. */
	io_uring_prep_connect(sqe, fd, addr, addr_len);
	io_uring_sqe_set_data64(sqe, ud_make(OP_CONNECT, side, s->gen, s->slot));
	c->num_inflight++;
	s->num_inflight++;
	return STLS_OK;
}

void stls_session_end(struct stls_session *s, bool flush)
{
	s->ending = true;
	for (unsigned side = 0; side < STLS_SIDE__COUNT; side++)
		stls_conn_close(s, (enum stls_side)side, flush);
	/* A peer that never reads its last reply must not hold the session forever. */
	stls_session_timer(s, FORCE_CLOSE_MS);
	stls_session_mark(s);
}

/* ---- submissions -------------------------------------------------------------------------- */

static void prep_recv(struct stls_worker *w, struct stls_session *s, enum stls_side side)
{
	struct stls_conn *c = &s->conn[side];
	struct io_uring_sqe *sqe = get_sqe(w);
	/* No buffer is tied to the request: the kernel picks one from the ring when bytes arrive,
	 * so an idle session holds no receive memory. */
	io_uring_prep_recv(sqe, c->fd, NULL, w->cfg->recv_buffer_size, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud_make(OP_RECV, side, s->gen, s->slot));
	c->flags |= STLS_CONN_RECV_ARMED;
	c->num_inflight++;
	s->num_inflight++;
}

static void prep_send(struct stls_worker *w, struct stls_session *s, enum stls_side side)
{
	struct stls_conn *c = &s->conn[side];
	struct stls_span pending = stls_buf_span(&c->sending);
	/* The last bytes before a close: MSG_MORE holds their tail segment back until flush_conn
	 * shuts the connection for writing, which puts the FIN in that segment instead of one of its
	 * own. A short send leaves the rest pending, so the next send is the last one instead. */
	bool last = (c->flags & STLS_CONN_CLOSE_AFTER) && stls_conn_pending(s, side) == pending.len;
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_send(sqe, c->fd, pending.ptr, pending.len, MSG_NOSIGNAL | (last ? MSG_MORE : 0));
	io_uring_sqe_set_data64(sqe, ud_make(OP_SEND, side, s->gen, s->slot));
	c->flags |= STLS_CONN_SENDING;
	c->num_inflight++;
	s->num_inflight++;
}

static void prep_close(struct stls_worker *w, struct stls_session *s, enum stls_side side)
{
	struct stls_conn *c = &s->conn[side];
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_close(sqe, c->fd);
	io_uring_sqe_set_data64(sqe, ud_make(OP_CLOSE, side, s->gen, s->slot));
	s->num_inflight++;
	c->fd = -1;
	c->flags = 0;
	conn_release(c);
	if (!s->ending && s->ops->on_released)
		s->ops->on_released(s, side);
}

static void flush_conn(struct stls_worker *w, struct stls_session *s, enum stls_side side)
{
	struct stls_conn *c = &s->conn[side];
	if (!(c->flags & STLS_CONN_OPEN))
		return;
	if (c->flags & STLS_CONN_CLOSING) {
		if (c->num_inflight == 0)
			prep_close(w, s, side);
		return;
	}
	if (c->flags & STLS_CONN_CONNECTING)
		return;
	/* With TLS, queued plaintext becomes ciphertext in `wire`; without, `out` is sent as it is. */
	struct stls_buf *source = c->tls ? &c->wire : &c->out;
	if (conn_encrypt(s, side) != STLS_OK) {
		stls_log_warn("worker %u: session %llu: TLS write failed: %s", w->index, (unsigned long long)s->id,
			      stls_tls_conn_error(c->tls));
		conn_begin_close(s, side);
		return;
	}
	if (!(c->flags & STLS_CONN_SENDING) && !stls_buf_empty(source)) {
		/* Swap: the kernel reads from `sending` while more is appended to `source`. */
		struct stls_buf tmp = c->sending;
		c->sending = *source;
		*source = tmp;
		prep_send(w, s, side);
	}
	if ((c->flags & STLS_CONN_CLOSE_AFTER) && !(c->flags & STLS_CONN_SENDING) && stls_conn_pending(s, side) == 0) {
		/* Sends the segment the last send held back, with the FIN, now: a close with unread
		 * bytes from the peer would reset the connection instead and drop it. Synchronous,
		 * because io_uring runs a shutdown on a helper thread. */
		shutdown(c->fd, SHUT_WR);
		conn_begin_close(s, side);
		if (c->num_inflight == 0)
			prep_close(w, s, side);
		return;
	}
	if ((c->flags & STLS_CONN_WANT_RECV) && !(c->flags & (STLS_CONN_RECV_ARMED | STLS_CONN_EOF)))
		prep_recv(w, s, side);
}

/* Sends what was queued this turn, arms receives, closes and frees. Every session that changed
 * is on the dirty list, so this costs nothing for idle sessions. */
static void flush_dirty(struct stls_worker *w)
{
	while (w->dirty) {
		struct stls_session *s = w->dirty;
		w->dirty = s->dirty_next;
		s->dirty = false;
		s->dirty_next = NULL;
		for (unsigned side = 0; side < STLS_SIDE__COUNT; side++)
			flush_conn(w, s, (enum stls_side)side);
		if (s->ending && !stls_conn_is_open(s, STLS_SIDE_CLIENT) && !stls_conn_is_open(s, STLS_SIDE_SERVER) &&
		    s->num_inflight == 0)
			session_free(w, s);
	}
}

/* ---- completions -------------------------------------------------------------------------- */

static void return_buffer(struct stls_worker *w, unsigned bid)
{
	uint32_t size = w->cfg->recv_buffer_size;
	io_uring_buf_ring_add(w->br, w->br_bufs + (size_t)bid * size, size, (unsigned short)bid,
			      io_uring_buf_ring_mask(w->cfg->recv_buffers), (int)w->br_returned);
	w->br_returned++;
}

/* Ciphertext arrived: decrypt it into conn->in, then hand the protocol what it holds. All of the
 * ciphertext is consumed here, because its receive buffer goes back to the ring right after. */
static void recv_tls(struct stls_worker *w, struct stls_session *s, enum stls_side side, struct stls_span data)
{
	struct stls_conn *c = &s->conn[side];
	bool was_ready = stls_tls_conn_ready(c->tls);
	enum stls_err err = stls_tls_conn_input(c->tls, &c->in, conn_limit(w->cfg), data);
	stls_session_mark(s); /* the handshake may have produced bytes to send */
	if (err == STLS_AGAIN)
		return;
	if (err != STLS_OK && err != STLS_DONE) {
		/* The alert BoringSSL queued still goes out; the protocol ends the session. */
		s->ops->on_tls(s, side, err);
		return;
	}
	if (!was_ready) {
		s->ops->on_tls(s, side, STLS_OK);
		if (s->ending || !(c->flags & STLS_CONN_OPEN))
			return;
	}
	if (!stls_buf_empty(&c->in)) {
		size_t used = s->ops->on_recv(s, side, stls_buf_span(&c->in));
		if ((c->flags & STLS_CONN_OPEN) && c->in.data)
			stls_buf_consume(&c->in, used);
	}
	if (err == STLS_DONE && !s->ending) {
		c->flags |= STLS_CONN_EOF;
		c->flags &= (uint16_t)~STLS_CONN_WANT_RECV;
		s->ops->on_closed(s, side, 0);
	}
}

static void on_recv(struct stls_worker *w, struct stls_session *s, enum stls_side side, struct io_uring_cqe *cqe)
{
	struct stls_conn *c = &s->conn[side];
	c->flags &= (uint16_t)~STLS_CONN_RECV_ARMED;
	int res = cqe->res;
	bool has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

	if (res == -ENOBUFS) {
		stls_counter_inc(&w->stats.recv_nobufs);
		stls_session_mark(s); /* re-armed at the flush, after this turn's buffers came back */
		return;
	}
	if ((c->flags & STLS_CONN_CLOSING) || s->ending || res == -ECANCELED) {
		if (has_buf)
			return_buffer(w, bid);
		return;
	}
	if (res <= 0) {
		if (has_buf)
			return_buffer(w, bid);
		c->flags |= STLS_CONN_EOF;
		c->flags &= (uint16_t)~STLS_CONN_WANT_RECV;
		s->ops->on_closed(s, side, res);
		stls_session_mark(s);
		return;
	}
	STLS_BUG_ON(!has_buf);
	struct stls_span data = stls_span_make(w->br_bufs + (size_t)bid * w->cfg->recv_buffer_size, (size_t)res);
	size_t limit = (size_t)w->cfg->recv_buffer_size * 4 + w->cfg->max_command_line;
	if (c->tls) {
		recv_tls(w, s, side, data);
	} else if (stls_buf_empty(&c->in)) {
		size_t used = s->ops->on_recv(s, side, data);
		if (used < data.len && (c->flags & STLS_CONN_OPEN) && !(c->flags & STLS_CONN_CLOSING) &&
		    stls_buf_append(&c->in, stls_span_from(data, used), limit) != STLS_OK) {
			stls_log_warn("worker %u: %s input of session %llu over %zu bytes, dropping it", w->index,
				      stls_side_str(side), (unsigned long long)s->id, limit);
			stls_session_end(s, false);
		}
	} else if (stls_buf_append(&c->in, data, limit) != STLS_OK) {
		stls_log_warn("worker %u: %s input of session %llu over %zu bytes, dropping it", w->index,
			      stls_side_str(side), (unsigned long long)s->id, limit);
		stls_session_end(s, false);
	} else {
		size_t used = s->ops->on_recv(s, side, stls_buf_span(&c->in));
		if (c->flags & STLS_CONN_OPEN)
			stls_buf_consume(&c->in, used);
	}
	return_buffer(w, bid);
	if (c->flags & STLS_CONN_OPEN)
		stls_buf_release_if_empty(&c->in);
	stls_session_mark(s);
}

static void on_send(struct stls_worker *w, struct stls_session *s, enum stls_side side, int res)
{
	(void)w;
	struct stls_conn *c = &s->conn[side];
	c->flags &= (uint16_t)~STLS_CONN_SENDING;
	if (c->flags & STLS_CONN_CLOSING)
		return;
	if (res < 0) {
		if (res == -ECANCELED)
			return;
		stls_buf_cleanup(&c->sending);
		stls_buf_cleanup(&c->out);
		c->flags |= STLS_CONN_EOF;
		c->flags &= (uint16_t)~STLS_CONN_WANT_RECV;
		if (!s->ending)
			s->ops->on_closed(s, side, res);
		else
			conn_begin_close(s, side);
		stls_session_mark(s);
		return;
	}
	stls_buf_consume(&c->sending, (size_t)res);
	if (!stls_buf_empty(&c->sending)) {
		prep_send(w, s, side); /* a short send: the rest goes now */
		return;
	}
	stls_buf_release_if_empty(&c->sending);
	stls_session_mark(s);
	if (!s->ending && s->ops->on_sent)
		s->ops->on_sent(s, side);
}

/* SMTP is a dialogue: each side's next line carries its ACK of the other's. A new connection
 * would otherwise ACK its first lines at once, a segment each on its own, until the kernel has
 * seen the dialogue; this starts it in that mode (delayed ACKs, which bulk data still overrides
 * every second segment). Only once connected: at SYN-SENT it would delay the handshake's ACK and
 * with it a server's greeting. A greeting that arrives before the worker sees its connection
 * complete (loopback, a server that greets at once) is still ACKed alone; over a network the
 * round trip leaves time. */
static void ack_with_replies(int fd)
{
	int zero = 0;
	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
}

static void on_connect(struct stls_worker *w, struct stls_session *s, enum stls_side side, int res)
{
	(void)w;
	struct stls_conn *c = &s->conn[side];
	c->flags &= (uint16_t)~STLS_CONN_CONNECTING;
	if ((c->flags & STLS_CONN_CLOSING) || s->ending)
		return;
	if (res == 0)
		ack_with_replies(c->fd);
	stls_session_mark(s);
	s->ops->on_connected(s, side, res);
}

static void arm_accept(struct stls_worker *w, unsigned idx)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_multishot_accept(sqe, w->listeners[idx].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(OP_ACCEPT, STLS_SIDE_CLIENT, 0, idx));
}

static void refuse(struct stls_worker *w, int fd)
{
	static const char msg[] = "421 4.3.2 Too many sessions, try again later\r\n";
	/* A fresh socket's send buffer is empty: this never blocks and needs no session. */
	ssize_t n = send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n;
	close(fd);
	uint64_t refused = atomic_load_explicit(&w->stats.refused_limit, memory_order_relaxed);
	stls_counter_inc(&w->stats.refused_limit);
	/* One line per hundred refusals: a flood must not flood the log too. */
	if (refused % 100 == 0)
		stls_log_warn("worker %u: session limit %u reached, refused %llu connections so far", w->index,
			      w->max_sessions, (unsigned long long)refused + 1);
}

static void on_accept(struct stls_worker *w, unsigned idx, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE) && w->accepting)
		arm_accept(w, idx);
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED && cqe->res != -EBADF) {
			stls_counter_inc(&w->stats.accept_errors);
			stls_log_warn("worker %u: accept on %s: %s", w->index, w->listeners[idx].addr->text,
				      strerror(-cqe->res));
		}
		return;
	}
	int fd = cqe->res;
	if (!w->accepting) {
		close(fd);
		return;
	}
	if (w->num_sessions >= w->max_sessions)
		return refuse(w, fd);
	struct stls_session *s = session_new(w, w->listeners[idx].ops);
	if (!s) {
		stls_log_crit("worker %u: out of memory for a new session", w->index);
		close(fd);
		return;
	}
	stls_counter_inc(&w->stats.accepted);
	ack_with_replies(fd);
	s->listener = idx;
	s->conn[STLS_SIDE_CLIENT].fd = fd;
	s->conn[STLS_SIDE_CLIENT].flags = STLS_CONN_OPEN;
	stls_net_describe_peer(s, fd);
	s->id = stls_worker_next_id(w);
	s->ops->on_open(s);
	stls_session_mark(s);
}

enum stls_err stls_worker_add_hook(struct stls_worker *w, void (*fn)(struct stls_worker *w, void *ctx), void *ctx)
{
	if (w->num_hooks >= STLS_WORKER_MAX_HOOKS)
		return STLS_ERR_LIMIT;
	w->hooks[w->num_hooks++] = (struct stls_worker_driver){ .on_turn = fn, .ctx = ctx };
	return STLS_OK;
}

static void arm_poll(struct stls_worker *w, unsigned idx)
{
	struct stls_worker_poll *p = &w->polls[idx];
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_poll_add(sqe, p->fd, p->events);
	io_uring_sqe_set_data64(sqe, ud_make(OP_POLL, STLS_SIDE_CLIENT, 0, idx));
	p->armed = true;
}

enum stls_err stls_worker_watch(struct stls_worker *w, int fd, unsigned events, stls_worker_poll_fn *fn, void *ctx)
{
	unsigned idx = STLS_WORKER_MAX_POLLS;
	for (unsigned i = 0; i < STLS_WORKER_MAX_POLLS; i++) {
		if (w->polls[i].fd == fd) {
			idx = i;
			break;
		}
		if (idx == STLS_WORKER_MAX_POLLS && w->polls[i].fd < 0 && !w->polls[i].armed)
			idx = i;
	}
	if (idx == STLS_WORKER_MAX_POLLS)
		return events ? STLS_ERR_LIMIT : STLS_OK;
	struct stls_worker_poll *p = &w->polls[idx];
	if (events == 0) {
		/* A poll still in flight is removed; its completion is dropped. */
		if (p->fd == fd && p->armed) {
			struct io_uring_sqe *sqe = get_sqe(w);
			io_uring_prep_poll_remove(sqe, ud_make(OP_POLL, STLS_SIDE_CLIENT, 0, idx));
			io_uring_sqe_set_data64(sqe, ud_make(OP_LISTEN_CANCEL, STLS_SIDE_CLIENT, 0, 0));
		}
		p->fd = -1;
		p->events = 0;
		return STLS_OK;
	}
	p->fd = fd;
	p->events = events;
	p->fn = fn;
	p->ctx = ctx;
	if (!p->armed)
		arm_poll(w, idx);
	return STLS_OK;
}

static void on_poll(struct stls_worker *w, unsigned idx, int res)
{
	if (idx >= STLS_WORKER_MAX_POLLS)
		return;
	struct stls_worker_poll *p = &w->polls[idx];
	p->armed = false;
	if (p->fd < 0 || res == -ECANCELED)
		return;
	p->fn(p->ctx, p->fd, res < 0 ? POLLERR : (unsigned)res);
}

struct stls_session *stls_worker_session_get(struct stls_worker *w, uint32_t slot, uint32_t gen)
{
	struct stls_session *s = slot < w->num_slots ? w->slots[slot] : NULL;
	return s && s->gen == gen && !s->ending ? s : NULL;
}

uint64_t stls_session_token(const struct stls_session *s, enum stls_side side)
{
	return ((uint64_t)side << 63) | ((uint64_t)s->gen << 32) | s->slot;
}

struct stls_session *stls_worker_session_by_token(struct stls_worker *w, uint64_t token, enum stls_side *out_side)
{
	*out_side = (enum stls_side)(token >> 63);
	return stls_worker_session_get(w, (uint32_t)token, (uint32_t)(token >> 32) & ((1u << GEN_BITS) - 1));
}

void stls_worker_tls_resume(struct stls_session *s, enum stls_side side)
{
	struct stls_conn *c = &s->conn[side];
	if (!c->tls || !(c->flags & STLS_CONN_OPEN) || (c->flags & STLS_CONN_CLOSING))
		return;
	recv_tls(s->worker, s, side, (struct stls_span){ 0 });
}

static void arm_event(struct stls_worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_read(sqe, w->event_fd, &w->event_buf, sizeof(w->event_buf), 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_EVENT, STLS_SIDE_CLIENT, 0, 0));
}

static void stop_accepting(struct stls_worker *w)
{
	if (!w->accepting)
		return;
	w->accepting = false;
	for (unsigned i = 0; i < w->num_listeners; i++) {
		struct io_uring_sqe *sqe = get_sqe(w);
		io_uring_prep_cancel_fd(sqe, w->listeners[i].fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, ud_make(OP_LISTEN_CANCEL, STLS_SIDE_CLIENT, 0, i));
	}
	/* The cancellations find their requests through the open fds, so they go in first; then the
	 * sockets close, and the kernel stops completing handshakes for us. */
	int ret = io_uring_submit(&w->ring);
	if (ret < 0)
		stls_log_warn("worker %u: cancelling accepts: %s", w->index, strerror(-ret));
	for (unsigned i = 0; i < w->num_listeners; i++) {
		/* shutdown() stops the socket listening even while a request still holds a reference
		 * to it; close() alone would not. */
		shutdown(w->listeners[i].fd, SHUT_RDWR);
		close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
	}
}

static void for_each_session(struct stls_worker *w, void (*fn)(struct stls_session *s))
{
	for (uint32_t i = 0; i < w->num_slots; i++) {
		struct stls_session *s = w->slots[i];
		if (s && !s->ending)
			fn(s);
	}
}

void stls_worker_each_session(struct stls_worker *w, void (*fn)(struct stls_session *s, void *ctx), void *ctx)
{
	for (uint32_t i = 0; i < w->num_slots; i++) {
		struct stls_session *s = w->slots[i];
		if (s && !s->ending)
			fn(s, ctx);
	}
}

void stls_worker_stop_when_idle(struct stls_worker *w)
{
	if (w->num_listeners == 0)
		w->accepting = false;
	else
		stop_accepting(w);
}

static void session_shutdown(struct stls_session *s)
{
	s->ops->on_shutdown(s);
	stls_session_mark(s);
}

static void session_abort(struct stls_session *s)
{
	stls_session_end(s, false);
}

static void on_control(struct stls_worker *w)
{
	unsigned control = atomic_load_explicit(&w->control, memory_order_acquire);
	unsigned fresh = control & ~w->control_seen;
	w->control_seen = control;
	if (fresh & STLS_WORKER_DRAIN)
		stop_accepting(w);
	if (fresh & STLS_WORKER_GRACE_OVER) {
		for_each_session(w, session_shutdown);
		w->abort_at_ms = w->now_ms + FORCE_CLOSE_MS;
	}
	if (fresh & STLS_WORKER_ABORT)
		for_each_session(w, session_abort);
}

static void on_timers(struct stls_worker *w)
{
	struct stls_timer *fired;
	if (stls_timer_wheel_advance(&w->wheel, &fired, w->now_ms) == 0)
		return;
	while (fired) {
		struct stls_timer *t = fired;
		fired = t->next;
		t->next = NULL;
		struct stls_session *s = (struct stls_session *)((uint8_t *)t - offsetof(struct stls_session, timer));
		stls_session_mark(s);
		if (s->ending) {
			/* Its last bytes never drained: stop waiting. */
			for (unsigned side = 0; side < STLS_SIDE__COUNT; side++)
				conn_begin_close(s, (enum stls_side)side);
			continue;
		}
		stls_counter_inc(&w->stats.timeouts);
		s->ops->on_timeout(s);
	}
}

static void dispatch(struct stls_worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum stls_op op = ud_op(ud);
	switch (op) {
	case OP_ACCEPT: on_accept(w, ud_slot(ud), cqe); return;
	case OP_EVENT:
		on_control(w);
		arm_event(w);
		return;
	case OP_LISTEN_CANCEL: return;
	case OP_POLL: on_poll(w, ud_slot(ud), cqe->res); return;
	default: break;
	}
	uint32_t slot = ud_slot(ud);
	struct stls_session *s = slot < w->num_slots ? w->slots[slot] : NULL;
	if (!s || s->gen != ud_gen(ud)) {
		/* Sessions are freed only with nothing in flight, so this is a bug; the buffer still
		 * goes back to the ring. */
		if (cqe->flags & IORING_CQE_F_BUFFER)
			return_buffer(w, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		stls_log_crit("worker %u: completion for a stale session (op %d slot %u)", w->index, op, slot);
		return;
	}
	enum stls_side side = ud_side(ud);
	STLS_BUG_ON(s->num_inflight == 0);
	s->num_inflight--;
	if (op == OP_RECV || op == OP_SEND || op == OP_CONNECT) {
		STLS_BUG_ON(s->conn[side].num_inflight == 0);
		s->conn[side].num_inflight--;
	}
	switch (op) {
	case OP_RECV: on_recv(w, s, side, cqe); break;
	case OP_SEND: on_send(w, s, side, cqe->res); break;
	case OP_CONNECT: on_connect(w, s, side, cqe->res); break;
	default: break;
	}
	stls_session_mark(s);
}

/* ---- set-up and the loop ------------------------------------------------------------------ */

static enum stls_err ring_setup(struct stls_worker *w)
{
	/* Newest first: SINGLE_ISSUER + DEFER_TASKRUN (6.1) run completions only when this thread asks
	 * for them, in its own context; COOP_TASKRUN (5.19) at least avoids interrupting it. */
	static const unsigned attempts[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int ret = -EINVAL;
	for (unsigned i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		struct io_uring_params p = { .flags = attempts[i] | IORING_SETUP_CQSIZE, .cq_entries = SQ_ENTRIES * 8 };
		ret = io_uring_queue_init_params(SQ_ENTRIES, &w->ring, &p);
		if (ret == 0) {
			w->ring_flags = attempts[i];
			break;
		}
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		snprintf(w->error, sizeof(w->error), "io_uring_setup: %s", strerror(-ret));
		return STLS_ERR_IO;
	}

	unsigned n = w->cfg->recv_buffers;
	w->br_ring_len = sizeof(struct io_uring_buf) * n;
	w->br = mmap(NULL, w->br_ring_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (w->br == MAP_FAILED) {
		w->br = NULL;
		snprintf(w->error, sizeof(w->error), "buffer ring: %s", strerror(errno));
		return STLS_ERR_IO;
	}
	struct io_uring_buf_reg reg = { .ring_addr = (uint64_t)(uintptr_t)w->br, .ring_entries = n, .bgid = BGID };
	ret = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (ret < 0) {
		snprintf(w->error, sizeof(w->error), "io_uring provided-buffer rings need Linux 5.19 or later: %s",
			 strerror(-ret));
		return STLS_ERR_IO;
	}
	w->br_bufs = stls_malloc((size_t)n * w->cfg->recv_buffer_size);
	if (!w->br_bufs) {
		snprintf(w->error, sizeof(w->error), "out of memory for receive buffers");
		return STLS_ERR_NOMEM;
	}
	io_uring_buf_ring_init(w->br);
	for (unsigned bid = 0; bid < n; bid++)
		return_buffer(w, bid);
	io_uring_buf_ring_advance(w->br, (int)w->br_returned);
	w->br_returned = 0;
	return STLS_OK;
}

/* Returns 0 or the error of pthread_setaffinity_np. */
static int pin_cpu(struct stls_worker *w)
{
	if (w->cpu < 0)
		return 0;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static bool loop_done(struct stls_worker *w)
{
	return !w->accepting && w->num_sessions == 0;
}

static void *worker_main(void *arg)
{
	struct stls_worker *w = arg;
	t_worker = w;
	/* Pinned first: the ring and the buffers set up below are then allocated from the memory of
	 * the CPU's own node, and the thread's name, which tools read to find the workers, appears
	 * only once the thread runs where it will stay. */
	int pin_err = pin_cpu(w);
	char name[16];
	snprintf(name, sizeof(name), "stls-w%u", w->index);
	pthread_setname_np(pthread_self(), name);
	if (stls_log_attach_thread() != STLS_OK || ring_setup(w) != STLS_OK) {
		if (!w->error[0])
			snprintf(w->error, sizeof(w->error), "cannot attach to the logger");
		atomic_store(&w->state, -1);
		return NULL;
	}
	if (pin_err != 0)
		stls_log_warn("worker %u: cannot pin to CPU %d: %s", w->index, w->cpu, strerror(pin_err));
	w->now_ms = monotonic_ms();
	stls_timer_wheel_init(&w->wheel, w->now_ms);
	snapshot_refresh(w);
	arm_event(w);
	if (w->keyop_fd >= 0 && stls_keyop_chan_start(w, w->keyop_fd) != STLS_OK)
		stls_log_crit("worker %u: cannot open its key-op channel: handshakes will fail", w->index);
	w->accepting = true;
	for (unsigned i = 0; i < w->num_listeners; i++)
		arm_accept(w, i);
	atomic_store(&w->state, 1);

	while (!loop_done(w)) {
		flush_dirty(w);
		/* A driver (the load generator) runs after the flush, which frees the sessions that
		 * ended this turn: the slots they leave are refilled before the thread sleeps, not after
		 * the next completion or timer, which can be a whole timer tick away at low concurrency. */
		if (w->driver) {
			w->driver->on_turn(w, w->driver->ctx);
			flush_dirty(w);
			if (loop_done(w))
				break;
		}
		uint64_t wait_ms = stls_timer_wheel_wait_ms(&w->wheel, w->now_ms);
		struct __kernel_timespec ts = { .tv_sec = (long long)(wait_ms / 1000),
						.tv_nsec = (long long)(wait_ms % 1000) * 1000000 };
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN)
			stls_log_crit("worker %u: io_uring_submit_and_wait: %s", w->index, strerror(-ret));
		w->now_ms = monotonic_ms();
		/* Timeouts armed by the completions count from now, not from the last turn. */
		stls_timer_wheel_set_now(&w->wheel, w->now_ms);
		/* Before the completions: a connection accepted in this turn must see a reload that
		 * finished while the worker slept. */
		snapshot_refresh(w);
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			dispatch(w, cqe);
			seen++;
		}
		io_uring_cq_advance(&w->ring, seen);
		if (w->br_returned) {
			io_uring_buf_ring_advance(w->br, (int)w->br_returned);
			w->br_returned = 0;
		}
		on_timers(w);
		for (unsigned i = 0; i < w->num_hooks; i++)
			w->hooks[i].on_turn(w, w->hooks[i].ctx);
		if (w->abort_at_ms && w->now_ms >= w->abort_at_ms) {
			for_each_session(w, session_abort);
			w->abort_at_ms = 0;
		}
	}
	flush_dirty(w);
	stls_keyop_chan_stop(w);
	io_uring_submit(&w->ring);
	atomic_store(&w->state, 2);
	return NULL;
}

void stls_worker_init(struct stls_worker *w, const struct stls_config *cfg, unsigned index, unsigned num, int cpu,
		      const struct stls_listener *listeners, unsigned num_listeners,
		      struct stls_snapshot_reader *reader)
{
	memset(w, 0, sizeof(*w));
	w->cfg = cfg;
	w->index = index;
	w->num_workers = num;
	w->cpu = cpu;
	w->reader = reader;
	atomic_store(&reader->oldest_gen, UINT64_MAX);
	w->max_sessions = (cfg->max_sessions + num - 1) / num;
	w->num_listeners = num_listeners;
	if (num_listeners)
		memcpy(w->listeners, listeners, sizeof(*listeners) * num_listeners);
	w->next_id = 1;
	w->next_mid = 1;
	w->event_fd = -1;
	w->keyop_fd = -1;
	for (unsigned i = 0; i < STLS_WORKER_MAX_POLLS; i++)
		w->polls[i].fd = -1;
}

enum stls_err stls_worker_start(struct stls_worker *w)
{
	w->event_fd = eventfd(0, EFD_CLOEXEC);
	if (w->event_fd < 0) {
		snprintf(w->error, sizeof(w->error), "eventfd: %s", strerror(errno));
		return STLS_ERR_IO;
	}
	int ret = pthread_create(&w->thread, NULL, worker_main, w);
	if (ret != 0) {
		snprintf(w->error, sizeof(w->error), "pthread_create: %s", strerror(ret));
		return STLS_ERR_IO;
	}
	for (;;) {
		/* 2: it already ran to its end (a load generator whose sessions all failed at once). */
		int state = atomic_load(&w->state);
		if (state == 1 || state == 2)
			return STLS_OK;
		if (state == -1) {
			pthread_join(w->thread, NULL);
			w->thread = 0;
			return STLS_ERR_IO;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

void stls_worker_signal(struct stls_worker *w, unsigned control)
{
	atomic_fetch_or_explicit(&w->control, control, memory_order_release);
	uint64_t one = 1;
	ssize_t n = write(w->event_fd, &one, sizeof(one));
	(void)n;
}

bool stls_worker_exited(struct stls_worker *w)
{
	return atomic_load(&w->state) == 2;
}

void stls_worker_join(struct stls_worker *w)
{
	if (w->thread) {
		pthread_join(w->thread, NULL);
		w->thread = 0;
	}
	if (w->dns_cleanup)
		w->dns_cleanup(w);
	if (w->ring.ring_fd > 0)
		io_uring_queue_exit(&w->ring);
	if (w->br)
		munmap(w->br, w->br_ring_len);
	stls_free_ptr(&w->br_bufs);
	for (unsigned i = 0; i < w->num_listeners; i++)
		if (w->listeners[i].fd >= 0)
			close(w->listeners[i].fd);
	if (w->event_fd >= 0)
		close(w->event_fd);
	stls_free_ptr(&w->slots);
	stls_free_ptr(&w->free_slots);
}

uint64_t stls_worker_next_id(struct stls_worker *w)
{
	return w->next_id++ * w->num_workers + w->index;
}

uint64_t stls_worker_next_mid(struct stls_worker *w)
{
	return w->next_mid++ * w->num_workers + w->index;
}

enum stls_err stls_worker_probe_uring(char *err, size_t err_len)
{
	struct io_uring ring;
	int ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0) {
		const char *hint = "";
		if (ret == -ENOSYS)
			hint = " (the kernel has no io_uring, or a seccomp filter such as a container's blocks it)";
		else if (ret == -EPERM)
			hint = " (io_uring is disabled: see sysctl kernel.io_uring_disabled, or a seccomp filter)";
		snprintf(err, err_len, "io_uring is not available: %s%s", strerror(-ret), hint);
		return STLS_ERR_IO;
	}
	io_uring_queue_exit(&ring);
	return STLS_OK;
}
