#include "core/keyop_chan.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/keyop_wire.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/worker.h"
#include "tls/conn.h"
#include "tls/keyop.h"

/* Requests waiting for room in the channel: beyond this the handshake fails rather than memory
 * growing without bound (a dead key-op process is restarted within a second). */
enum { BACKLOG_LIMIT = 4 << 20, MAX_READS_PER_WAKE = 4096 };

struct stls_keyop_chan {
	struct stls_worker *w;
	int fd;
	struct stls_buf backlog; /* [u16 length][request] ... */
	bool eof;
	uint64_t warned_ms; /* the last "cannot send" line: at most one a second */
	/* A request as the backlog holds it: its length (2 bytes), then what is sent. */
	uint8_t tx[sizeof(uint16_t) + sizeof(struct stls_keyop_req) + STLS_KEYOP_MAX_INPUT];
	uint8_t rx[sizeof(struct stls_keyop_resp) + STLS_KEYOP_MAX_SIG + 1];
};

static void on_fd(void *ctx, int fd, unsigned revents);

static void watch(struct stls_keyop_chan *ch)
{
	if (ch->eof)
		return;
	unsigned events = POLLIN | (stls_buf_empty(&ch->backlog) ? 0u : (unsigned)POLLOUT);
	if (stls_worker_watch(ch->w, ch->fd, events, on_fd, ch) != STLS_OK)
		stls_log_crit("worker %u: cannot watch the key-op channel", ch->w->index);
}

static const char *status_str(uint16_t status)
{
	switch (status) {
	case STLS_KEYOP_UNKNOWN_KEY: return "key not loaded";
	case STLS_KEYOP_BAD_ALG: return "signature algorithm does not fit the key";
	case STLS_KEYOP_FAILED: return "signing failed";
	case STLS_KEYOP_MALFORMED: return "malformed request";
	default: return "unknown answer";
	}
}

static void deliver(struct stls_keyop_chan *ch, const uint8_t *msg, size_t len)
{
	struct stls_keyop_resp resp;
	if (len < sizeof(resp)) {
		stls_log_warn("worker %u: key-op answer of %zu bytes ignored", ch->w->index, len);
		return;
	}
	memcpy(&resp, msg, sizeof(resp));
	if (resp.status == STLS_KEYOP_OK && (resp.sig_len == 0 || len != sizeof(resp) + resp.sig_len)) {
		stls_log_warn("worker %u: key-op answer with a bad length ignored", ch->w->index);
		return;
	}
	enum stls_side side;
	struct stls_session *s = stls_worker_session_by_token(ch->w, resp.token, &side);
	struct stls_tls_conn *tls = s ? s->conn[side].tls : NULL;
	/* The session may have ended (a timeout, the client left) while its signature was made. */
	if (!tls || !stls_tls_conn_keyop_pending(tls))
		return;
	if (resp.status == STLS_KEYOP_OK) {
		stls_counter_inc(&ch->w->stats.keyop_signs);
		stls_tls_conn_keyop_done(tls, stls_span_make(msg + sizeof(resp), resp.sig_len), NULL);
	} else {
		stls_counter_inc(&ch->w->stats.keyop_failures);
		stls_tls_conn_keyop_done(tls, (struct stls_span){ 0 }, status_str(resp.status));
	}
	stls_worker_tls_resume(s, side);
}

static void read_answers(struct stls_keyop_chan *ch)
{
	for (unsigned i = 0; i < MAX_READS_PER_WAKE; i++) {
		ssize_t n = recv(ch->fd, ch->rx, sizeof(ch->rx), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				stls_log_crit("worker %u: key-op channel: %s", ch->w->index, strerror(errno));
			return;
		}
		if (n == 0) {
			/* Only the main thread closing the key-op module's ends gets here (shutdown). */
			ch->eof = true;
			return;
		}
		if ((size_t)n > sizeof(ch->rx)) {
			stls_log_warn("worker %u: key-op answer of %zd bytes ignored", ch->w->index, n);
			continue;
		}
		deliver(ch, ch->rx, (size_t)n);
	}
}

/* Sends the backlog in order until the channel is full again. */
static void send_backlog(struct stls_keyop_chan *ch)
{
	while (!stls_buf_empty(&ch->backlog)) {
		struct stls_span b = stls_buf_span(&ch->backlog);
		uint16_t len;
		memcpy(&len, b.ptr, sizeof(len));
		ssize_t n = send(ch->fd, b.ptr + sizeof(len), len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0)
			stls_log_crit("worker %u: key-op channel: %s", ch->w->index, strerror(errno));
		stls_buf_consume(&ch->backlog, sizeof(len) + len);
	}
	stls_buf_release_if_empty(&ch->backlog);
}

static void on_fd(void *ctx, int fd, unsigned revents)
{
	(void)fd;
	struct stls_keyop_chan *ch = ctx;
	if (revents & (POLLIN | POLLERR | POLLHUP))
		read_answers(ch);
	/* Answers read free room for requests too: try the backlog on any wake. */
	send_backlog(ch);
	watch(ch);
}

/* A request could not be sent: counted, and said at most once a second. */
static enum stls_err refuse(struct stls_keyop_chan *ch, enum stls_err err, const char *why)
{
	stls_counter_inc(&ch->w->stats.keyop_failures);
	if (ch->w->now_ms - ch->warned_ms >= 1000 || ch->warned_ms == 0) {
		ch->warned_ms = ch->w->now_ms ? ch->w->now_ms : 1;
		stls_log_warn("worker %u: key-op channel: %s: handshakes fail until it drains", ch->w->index, why);
	}
	return err;
}

static enum stls_err submit(void *ctx, uint64_t token, uint32_t key_id, uint16_t sigalg, struct stls_span in)
{
	struct stls_keyop_chan *ch = ctx;
	if (ch->eof || in.len > STLS_KEYOP_MAX_INPUT)
		return STLS_ERR_CLOSED;
	struct stls_keyop_req req = { .token = token, .key_id = key_id, .sigalg = sigalg, .in_len = (uint16_t)in.len };
	uint16_t len = (uint16_t)(sizeof(req) + in.len);
	memcpy(ch->tx, &len, sizeof(len));
	memcpy(ch->tx + sizeof(len), &req, sizeof(req));
	memcpy(ch->tx + sizeof(len) + sizeof(req), in.ptr, in.len);
	if (stls_buf_empty(&ch->backlog)) {
		ssize_t n = send(ch->fd, ch->tx + sizeof(len), len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)len) {
			stls_counter_inc(&ch->w->stats.keyop_requests);
			return STLS_OK;
		}
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			return refuse(ch, STLS_ERR_IO, n < 0 ? strerror(errno) : "short send");
	}
	/* One append, length and request together: the backlog never holds half an entry. */
	if (stls_buf_append(&ch->backlog, stls_span_make(ch->tx, sizeof(len) + len), BACKLOG_LIMIT) != STLS_OK)
		return refuse(ch, STLS_ERR_LIMIT, "backlog full (4 MiB of requests)");
	stls_counter_inc(&ch->w->stats.keyop_requests);
	watch(ch);
	return STLS_OK;
}

enum stls_err stls_keyop_chan_start(struct stls_worker *w, int fd)
{
	struct stls_keyop_chan *ch = stls_calloc(1, sizeof(*ch));
	if (!ch)
		return STLS_ERR_NOMEM;
	ch->w = w;
	ch->fd = fd;
	w->keyop = ch;
	stls_tls_keyop_set_submitter(submit, ch);
	return stls_worker_watch(w, fd, POLLIN, on_fd, ch);
}

void stls_keyop_chan_stop(struct stls_worker *w)
{
	struct stls_keyop_chan *ch = w->keyop;
	if (!ch)
		return;
	stls_tls_keyop_set_submitter(NULL, NULL);
	(void)stls_worker_watch(w, ch->fd, 0, NULL, NULL);
	stls_buf_cleanup(&ch->backlog);
	stls_free_ptr(&w->keyop);
}
