/* The load generator's SMTP client: one session per connection, a small state machine driven by
 * the server's replies, and the driver that keeps each thread's share of --concurrency sessions in
 * flight. */
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "core/log.h"
#include "core/mem.h"
#include "proto/smtp_reply.h"
#include "tls/conn.h"

enum bench_state {
	B_CONNECTING = 0,
	B_GREETING,
	B_EHLO1,    /* EHLO before STARTTLS */
	B_STARTTLS, /* waiting for 220 */
	B_HANDSHAKE,
	B_EHLO2, /* EHLO inside TLS (or the only one, plain) */
	B_MAIL,	 /* MAIL, RCPT, DATA pipelined: 250, 250, 354 */
	B_DOT,	 /* end of data */
	B_QUIT,
	B_IDLE, /* idle mode: established, held */
	B_DONE,
	B__COUNT,
};

struct bench_session {
	struct stls_session base;
	struct stls_bench_thread *thread;
	uint8_t state;
	uint8_t mail_replies;
	bool counted;
	bool handshaken;
	uint32_t slot;
	uint64_t body_off; /* message bytes queued so far */
	uint64_t t_start;
	uint64_t t_hs_start;
	uint64_t t_hs_end;
	struct stls_smtp_reply_parser rp;
};

const char *stls_bench_mode_str(enum stls_bench_mode mode)
{
	static const char *const names[STLS_BENCH__COUNT] = {
		[STLS_BENCH_HANDSHAKE] = "handshake", [STLS_BENCH_RESUME] = "resume", [STLS_BENCH_MESSAGE] = "message",
		[STLS_BENCH_PLAIN] = "plain",	      [STLS_BENCH_IDLE] = "idle",
	};
	return (unsigned)mode < STLS_BENCH__COUNT ? names[mode] : "unknown";
}

const char *stls_bench_error_str(enum stls_bench_error err)
{
	static const char *const names[STLS_BENCH_ERR__COUNT] = {
		[STLS_BENCH_ERR_CONNECT] = "connect",
		[STLS_BENCH_ERR_PROTOCOL] = "protocol",
		[STLS_BENCH_ERR_TLS] = "tls",
		[STLS_BENCH_ERR_TIMEOUT] = "timeout",
	};
	return (unsigned)err < STLS_BENCH_ERR__COUNT ? names[err] : "unknown";
}

uint64_t stls_bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool uses_tls(enum stls_bench_mode mode)
{
	return mode != STLS_BENCH_PLAIN;
}

static void finish(struct bench_session *b, int err, const char *reply);

/* Bytes waiting toward the server before more of a message is queued: a message is streamed, like
 * any client does, rather than handed to the engine whole. */
enum { BODY_CHUNK = 65536 };

static void send_text(struct bench_session *b, const char *text, size_t len)
{
	if (stls_conn_write(&b->base, STLS_SIDE_SERVER, stls_span_make(text, len), (size_t)1 << 20) != STLS_OK)
		finish(b, STLS_BENCH_ERR_PROTOCOL, "cannot queue the bytes to send");
}

/* Queues the next part of the message once the previous one has gone out. */
static void send_body(struct bench_session *b)
{
	const struct stls_bench_opts *o = b->thread->opts;
	if (b->state != B_DOT || b->body_off >= o->message_len ||
	    stls_conn_pending(&b->base, STLS_SIDE_SERVER) >= BODY_CHUNK)
		return;
	uint64_t n = o->message_len - b->body_off;
	if (n > BODY_CHUNK)
		n = BODY_CHUNK;
	send_text(b, o->message + b->body_off, (size_t)n);
	b->body_off += n;
}

static void send_str(struct bench_session *b, const char *text)
{
	send_text(b, text, strlen(text));
}

/* Ends the session, counting it as a success (err < 0) or as a failure of class err. */
static void finish(struct bench_session *b, int err, const char *reply)
{
	struct stls_bench_thread *t = b->thread;
	struct stls_bench_stats *st = &t->stats;
	if (b->state == B_DONE)
		return;
	bool was_idle = b->state == B_IDLE;
	b->state = B_DONE;
	uint64_t now = stls_bench_now_ns();
	if (was_idle)
		atomic_store_explicit(&st->idle_open, atomic_load(&st->idle_open) - 1, memory_order_relaxed);
	if (err >= 0) {
		stls_counter_inc(&st->failed);
		if (b->counted) {
			st->errors[err]++;
			if (err == STLS_BENCH_ERR_PROTOCOL && reply)
				snprintf(st->last_protocol_error, sizeof(st->last_protocol_error), "%s", reply);
		}
	} else {
		stls_counter_inc(&st->done);
		if (b->counted) {
			st->counted++;
			stls_hist_add(&st->session, (now - b->t_start) / 1000);
			if (b->handshaken) {
				st->handshakes++;
				stls_hist_add(&st->handshake, (b->t_hs_end - b->t_hs_start) / 1000);
			}
		}
	}
	/* Resume mode: keep the latest session the server issued for this slot's next connection. */
	struct stls_tls_conn *tls = b->base.conn[STLS_SIDE_SERVER].tls;
	if (tls && t->slots) {
		SSL_SESSION *s = stls_tls_conn_take_session(tls);
		if (s) {
			SSL_SESSION_free(t->slots[b->slot]);
			t->slots[b->slot] = s;
		}
	}
	stls_session_end(&b->base, err < 0);
}

static void protocol_error(struct bench_session *b, const struct stls_smtp_reply *reply)
{
	char text[160];
	const uint8_t *cr = memchr(reply->text.ptr, '\r', reply->text.len);
	stls_span_printable(text, sizeof(text), stls_span_head(reply->text, cr ? (size_t)(cr - reply->text.ptr) : 0));
	finish(b, STLS_BENCH_ERR_PROTOCOL, text);
}

static void send_ehlo(struct bench_session *b, uint8_t next)
{
	char line[96];
	int n = snprintf(line, sizeof(line), "EHLO %s\r\n", b->thread->opts->ehlo);
	send_text(b, line, (size_t)n);
	b->state = next;
}

static void after_ehlo2(struct bench_session *b)
{
	const struct stls_bench_opts *o = b->thread->opts;
	switch (o->mode) {
	case STLS_BENCH_MESSAGE:
	case STLS_BENCH_PLAIN: {
		char cmds[400];
		int n = snprintf(cmds, sizeof(cmds), "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", o->from, o->to);
		send_text(b, cmds, (size_t)n);
		b->mail_replies = 0;
		b->state = B_MAIL;
		break;
	}
	case STLS_BENCH_IDLE:
		b->state = B_IDLE;
		stls_session_timer(&b->base, 0);
		atomic_store_explicit(&b->thread->stats.idle_open, atomic_load(&b->thread->stats.idle_open) + 1,
				      memory_order_relaxed);
		break;
	default:
		send_str(b, "QUIT\r\n");
		b->state = B_QUIT;
		break;
	}
}

static void on_reply(struct bench_session *b, const struct stls_smtp_reply *reply)
{
	const struct stls_bench_opts *o = b->thread->opts;
	switch ((enum bench_state)b->state) {
	case B_GREETING:
		if (reply->code != 220)
			return protocol_error(b, reply);
		send_ehlo(b, uses_tls(o->mode) ? B_EHLO1 : B_EHLO2);
		return;
	case B_EHLO1:
		if (reply->code != 250)
			return protocol_error(b, reply);
		send_str(b, "STARTTLS\r\n");
		b->state = B_STARTTLS;
		return;
	case B_STARTTLS: {
		if (reply->code != 220)
			return protocol_error(b, reply);
		b->state = B_HANDSHAKE;
		b->t_hs_start = stls_bench_now_ns();
		SSL_SESSION *resume = b->thread->slots ? b->thread->slots[b->slot] : NULL;
		if (stls_conn_start_tls_client(&b->base, STLS_SIDE_SERVER, o->ctx, resume, o->host) != STLS_OK)
			finish(b, STLS_BENCH_ERR_TLS, NULL);
		return;
	}
	case B_EHLO2:
		if (reply->code != 250)
			return protocol_error(b, reply);
		after_ehlo2(b);
		return;
	case B_MAIL:
		if (reply->code != (b->mail_replies < 2 ? 250 : 354))
			return protocol_error(b, reply);
		if (++b->mail_replies == 3) {
			b->state = B_DOT;
			b->body_off = 0;
			send_body(b);
		}
		return;
	case B_DOT:
		if (reply->code != 250)
			return protocol_error(b, reply);
		send_str(b, "QUIT\r\n");
		b->state = B_QUIT;
		return;
	case B_QUIT:
		if (reply->code != 221)
			return protocol_error(b, reply);
		finish(b, -1, NULL);
		return;
	default: return protocol_error(b, reply);
	}
}

static size_t b_recv(struct stls_session *s, enum stls_side side, struct stls_span data)
{
	struct bench_session *b = (struct bench_session *)s;
	(void)side;
	size_t off = 0;
	while (off < data.len && b->state != B_DONE && b->state != B_HANDSHAKE) {
		struct stls_smtp_reply reply;
		enum stls_err err = stls_smtp_reply_next(&b->rp, &reply, stls_span_from(data, off));
		if (err == STLS_AGAIN)
			break;
		if (err != STLS_OK) {
			finish(b, STLS_BENCH_ERR_PROTOCOL, "unparsable reply");
			return data.len;
		}
		off += reply.text.len;
		on_reply(b, &reply);
	}
	return b->state == B_DONE ? data.len : off;
}

static void b_closed(struct stls_session *s, enum stls_side side, int err)
{
	struct bench_session *b = (struct bench_session *)s;
	(void)side;
	(void)err;
	finish(b, b->state == B_HANDSHAKE ? STLS_BENCH_ERR_TLS : STLS_BENCH_ERR_PROTOCOL, "connection closed");
}

static void b_sent(struct stls_session *s, enum stls_side side)
{
	(void)side;
	send_body((struct bench_session *)s);
}

static void b_connected(struct stls_session *s, enum stls_side side, int res)
{
	struct bench_session *b = (struct bench_session *)s;
	if (res < 0) {
		finish(b, STLS_BENCH_ERR_CONNECT, NULL);
		return;
	}
	b->state = B_GREETING;
	stls_conn_want_recv(s, side, true);
}

static void b_tls(struct stls_session *s, enum stls_side side, enum stls_err res)
{
	struct bench_session *b = (struct bench_session *)s;
	if (res != STLS_OK) {
		if (b->counted)
			snprintf(b->thread->stats.last_tls_error, sizeof(b->thread->stats.last_tls_error), "%s",
				 stls_conn_tls_error(s, side));
		finish(b, STLS_BENCH_ERR_TLS, NULL);
		return;
	}
	b->t_hs_end = stls_bench_now_ns();
	b->handshaken = true;
	if (b->counted && stls_tls_conn_resumed(s->conn[side].tls))
		b->thread->stats.resumed++;
	send_ehlo(b, B_EHLO2);
}

static void b_timeout(struct stls_session *s)
{
	finish((struct bench_session *)s, STLS_BENCH_ERR_TIMEOUT, NULL);
}

static void b_shutdown(struct stls_session *s)
{
	struct bench_session *b = (struct bench_session *)s;
	if (b->state == B_IDLE)
		finish(b, -1, NULL);
	else
		finish(b, STLS_BENCH_ERR_TIMEOUT, NULL);
}

static void b_free(struct stls_session *s)
{
	struct bench_session *b = (struct bench_session *)s;
	struct stls_bench_thread *t = b->thread;
	t->active--;
	t->free_slots[t->num_free++] = b->slot;
}

static const struct stls_session_ops bench_ops = {
	.name = "bench",
	.size = sizeof(struct bench_session),
	.on_recv = b_recv,
	.on_closed = b_closed,
	.on_connected = b_connected,
	.on_sent = b_sent,
	.on_tls = b_tls,
	.on_timeout = b_timeout,
	.on_shutdown = b_shutdown,
	.on_free = b_free,
};

static bool start_session(struct stls_bench_thread *t, uint64_t now)
{
	struct stls_session *s = stls_worker_session_new(&t->worker, &bench_ops);
	if (!s)
		return false;
	struct bench_session *b = (struct bench_session *)s;
	b->thread = t;
	b->t_start = now;
	b->counted = now >= t->warm_ns;
	b->slot = t->free_slots[--t->num_free];
	stls_smtp_reply_init(&b->rp, 2048, 64);
	t->active++;
	t->started++;
	if (b->state == B_CONNECTING && stls_conn_connect(s, STLS_SIDE_SERVER, (const struct sockaddr *)&t->opts->addr,
							  t->opts->addr_len) != STLS_OK) {
		finish(b, STLS_BENCH_ERR_CONNECT, NULL);
		return true;
	}
	stls_session_timer(s, (uint64_t)t->opts->timeout_s * 1000);
	return true;
}

static void end_idle_sessions(struct stls_session *s, void *ctx)
{
	(void)ctx;
	b_shutdown(s);
}

void stls_bench_on_turn(struct stls_worker *w, void *ctx)
{
	struct stls_bench_thread *t = ctx;
	uint64_t now = stls_bench_now_ns();
	if (!t->stopping) {
		bool over = (t->end_ns && now >= t->end_ns) || (t->quota && t->started >= t->quota);
		if (over) {
			t->stopping = true;
			if (t->opts->mode == STLS_BENCH_IDLE)
				stls_worker_each_session(w, end_idle_sessions, NULL);
		}
	}
	/* Keep this thread's share of sessions in flight; a session that ends frees its slot. */
	while (!t->stopping && t->active < t->target && (!t->quota || t->started < t->quota) &&
	       !(t->opts->mode == STLS_BENCH_IDLE && t->started >= t->target)) {
		if (!start_session(t, now))
			break;
	}
	if (t->stopping && t->active == 0) {
		struct timespec ts;
		if (t->cpu_end_s == 0 && clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
			t->cpu_end_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		if (t->cpu_end_ns == 0)
			t->cpu_end_ns = stls_bench_now_ns();
		stls_worker_stop_when_idle(w);
	}
}

void stls_bench_thread_cleanup(struct stls_bench_thread *t)
{
	for (unsigned i = 0; t->slots && i < t->target; i++)
		SSL_SESSION_free(t->slots[i]);
	stls_free_ptr(&t->slots);
	stls_free_ptr(&t->free_slots);
}
