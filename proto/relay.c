/* The SMTP relay session shared by both directions: the client side (the command table's
 * dispatch, reading commands and message bytes, replies in order, deadlines) and the session
 * operations the worker calls. What differs between the inbound and the outbound relay (their
 * tables, greeting, checks, TLS) comes through struct stls_relay_kind; the next hop's side is in
 * relay_server.c. */
#include "proto/relay.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "proto/relay_int.h"
#include "tls/conn.h"

const char *stls_relay_state_str(enum stls_relay_state state)
{
	static const char *const names[STLS_RELAY__COUNT] = {
		[STLS_RELAY_GREET] = "GREET",	      [STLS_RELAY_READY] = "READY",
		[STLS_RELAY_MAILED] = "MAILED",	      [STLS_RELAY_CONNECTING] = "CONNECTING",
		[STLS_RELAY_RELAY] = "RELAY",	      [STLS_RELAY_DATA] = "DATA",
		[STLS_RELAY_BDAT] = "BDAT",	      [STLS_RELAY_QUIT] = "QUIT",
		[STLS_RELAY_HANDSHAKE] = "HANDSHAKE", [STLS_RELAY_PROXY] = "PROXY",
	};
	return (unsigned)state < STLS_RELAY__COUNT ? names[state] : "UNKNOWN";
}

/* ---- replies to the client ---------------------------------------------------------------- */

void stls_relay_write(struct stls_relay *in, struct stls_span text)
{
	const struct stls_config *cfg = in->base.snap->cfg;
	/* Replies are small and the client's queue is bounded by the pause rules; a failure here
	 * means the client is gone or hopelessly behind. */
	if (stls_conn_write(&in->base, STLS_SIDE_CLIENT, text, (size_t)cfg->relay_buffer * 2) == STLS_ERR_LIMIT) {
		stls_log_warn("ICID %llu client does not read its replies, closing", (unsigned long long)in->base.id);
		stls_session_end(&in->base, false);
	}
}

void stls_relay_reply(struct stls_relay *in, const char *text)
{
	if (in->num_pend > 0) {
		/* Replies go out in command order (RFC 2920 3.1): wait behind the backend's. */
		stls_relay_pend_push(in, STLS_PEND_LOCAL, text, STLS_SPAN_LIT(""));
		return;
	}
	stls_relay_write(in, stls_span_cstr(text));
}

void stls_relay_replyf(struct stls_relay *in, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	STLS_BUG_ON(in->num_pend > 0); /* formatted replies are only given outside the relay */
	stls_relay_write(in, stls_span_make(text, n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1));
}

/* A protocol error by the client: answered, counted, and past --max-errors the session ends. */
enum stls_relay_result stls_relay_client_error(struct stls_relay *in, const char *text)
{
	const struct stls_config *cfg = in->base.snap->cfg;
	stls_counter_inc(&in->base.worker->stats.protocol_errors);
	if (++in->num_errors >= cfg->max_errors) {
		stls_log_info("ICID %llu too many errors (%u), closing", (unsigned long long)in->base.id,
			      in->num_errors);
		stls_relay_pend_clear(in);
		stls_relay_write(in, STLS_SPAN_LIT("421 4.7.0 Too many errors, closing connection\r\n"));
		stls_relay_end(in, true);
		return STLS_RELAY_END;
	}
	stls_relay_reply(in, text);
	return STLS_RELAY_FAIL;
}

void stls_relay_end(struct stls_relay *in, bool flush)
{
	in->state = STLS_RELAY_QUIT;
	stls_session_end(&in->base, flush);
}

/* ---- handlers every direction shares ------------------------------------------------------- */

bool stls_relay_save_helo(struct stls_relay *in, struct stls_span args)
{
	struct stls_span name;
	struct stls_span rest = stls_span_next_word(stls_span_trim(args), &name);
	(void)rest; /* RFC 5321 4.1.1.1: anything after the domain is ignored */
	if (name.len == 0 || name.len >= sizeof(in->helo))
		return false;
	memcpy(in->helo, name.ptr, name.len);
	in->helo[name.len] = '\0';
	return true;
}

void stls_relay_transaction_reset(struct stls_relay *in)
{
	if (in->mid)
		stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
	in->mid = 0;
}

enum stls_relay_result stls_relay_h_noop(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	stls_relay_reply(in, "250 2.0.0 Ok\r\n");
	return STLS_RELAY_OK;
}

enum stls_relay_result stls_relay_h_rset(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	stls_relay_transaction_reset(in);
	stls_relay_reply(in, "250 2.0.0 Ok\r\n");
	return STLS_RELAY_OK;
}

enum stls_relay_result stls_relay_h_quit(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	stls_relay_transaction_reset(in);
	stls_relay_reply(in, "221 2.0.0 Bye\r\n");
	in->quit = true;
	return STLS_RELAY_OK;
}

enum stls_relay_result stls_relay_h_help(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	stls_relay_reply(in, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT\r\n");
	return STLS_RELAY_OK;
}

enum stls_relay_result stls_relay_h_vrfy(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	/* RFC 5321 3.5.3: 252 is the answer of a server that will not verify (no address harvest
	 * through the proxy). */
	stls_relay_reply(in, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n");
	return STLS_RELAY_OK;
}

enum stls_relay_result stls_relay_h_not_impl(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	return stls_relay_client_error(in, "502 5.5.1 Command not implemented\r\n");
}

enum stls_relay_result stls_relay_h_unknown(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	return stls_relay_client_error(in, "500 5.5.2 Command unrecognized\r\n");
}

enum stls_relay_result stls_relay_h_need_mail(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	if (cmd->verb == STLS_SMTP_VERB_BDAT)
		return stls_relay_bdat_discard(in, cmd, "503 5.5.1 Error: need MAIL command\r\n");
	return stls_relay_client_error(in, "503 5.5.1 Error: need MAIL command\r\n");
}

enum stls_relay_result stls_relay_h_need_ehlo(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	if (cmd->verb == STLS_SMTP_VERB_BDAT)
		return stls_relay_bdat_discard(in, cmd, "503 5.5.1 Error: send EHLO first\r\n");
	return stls_relay_client_error(in, "503 5.5.1 Error: send HELO/EHLO first\r\n");
}

static enum stls_relay_result dispatch(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	if (r->kind->check) {
		enum stls_relay_result res = r->kind->check(r, cmd);
		if (res != STLS_RELAY_OK)
			return res;
	}
	const struct stls_relay_rule *rule = &r->kind->rules[r->state][cmd->verb];
	if (!rule->fn)
		return stls_relay_client_error(r, "503 5.5.1 Bad sequence of commands\r\n");
	enum stls_relay_result res = rule->fn(r, cmd);
	if ((res == STLS_RELAY_OK || res == STLS_RELAY_HOLD) && r->state != STLS_RELAY_QUIT)
		r->state = (uint8_t)rule->next;
	if (r->state == STLS_RELAY_BDAT && r->bdat_left == 0) /* "BDAT 0 LAST" carries no bytes */
		r->state = r->bdat_discard ? r->bdat_return : STLS_RELAY_RELAY;
	return res;
}

/* ---- reading the client -------------------------------------------------------------------- */

/* Whether the next client bytes may be acted on now. */
static bool client_readable(struct stls_relay *in)
{
	const struct stls_config *cfg = in->base.snap->cfg;
	if (in->state == STLS_RELAY_CONNECTING || in->state == STLS_RELAY_QUIT || in->quit || in->wait_data_reply ||
	    in->base.ending)
		return false;
	if (in->state == STLS_RELAY_HANDSHAKE || in->state == STLS_RELAY_PROXY)
		return true; /* the handshake's or the PROXY header's bytes; no command is read yet */
	if (in->num_pend >= cfg->max_pipeline)
		return false;
	if (stls_conn_pending(&in->base, STLS_SIDE_CLIENT) >= cfg->relay_buffer)
		return false;
	if (stls_conn_is_open(&in->base, STLS_SIDE_SERVER) &&
	    stls_conn_pending(&in->base, STLS_SIDE_SERVER) >= cfg->relay_buffer)
		return false;
	return true;
}

static size_t read_command(struct stls_relay *in, struct stls_span data, bool *out_stop)
{
	struct stls_smtp_cmd cmd;
	size_t used = 0;
	enum stls_err err = stls_smtp_lex_next(&in->lex, &cmd, &used, data);
	switch (err) {
	case STLS_OK: break;
	case STLS_AGAIN: *out_stop = true; return used;
	case STLS_ERR_TOO_LONG:
		stls_log_info("ICID %llu command line longer than %u octets", (unsigned long long)in->base.id,
			      in->base.snap->cfg->max_command_line);
		*out_stop = stls_relay_client_error(in, "500 5.5.6 Line too long\r\n") == STLS_RELAY_END;
		return used;
	case STLS_ERR_BARE_LF:
		stls_log_info("ICID %llu command line with a bare CR or LF", (unsigned long long)in->base.id);
		*out_stop =
			stls_relay_client_error(in, "500 5.5.2 Command lines must end with CRLF\r\n") == STLS_RELAY_END;
		return used;
	case STLS_ERR_NUL:
		stls_log_info("ICID %llu command line with a NUL byte", (unsigned long long)in->base.id);
		*out_stop = stls_relay_client_error(in, "500 5.5.2 NUL byte in command\r\n") == STLS_RELAY_END;
		return used;
	default:
		*out_stop = true;
		stls_session_end(&in->base, false);
		return data.len;
	}
	in->client_progress = true;
	in->trailing = data.len - used;
	enum stls_relay_result res = dispatch(in, &cmd);
	if (res == STLS_RELAY_HOLD) {
		*out_stop = true;
		return 0;
	}
	if (res == STLS_RELAY_END || res == STLS_RELAY_STOP)
		*out_stop = true;
	if (in->quit && in->num_pend == 0) {
		stls_relay_end(in, true);
		*out_stop = true;
	}
	return used;
}

size_t stls_relay_process_client(struct stls_relay *in, struct stls_span data)
{
	size_t off = 0;
	bool stop = false;
	while (!stop && off < data.len && client_readable(in)) {
		struct stls_span rest = stls_span_from(data, off);
		switch (in->state) {
		case STLS_RELAY_DATA: off += stls_relay_data_bytes(in, rest); break;
		case STLS_RELAY_BDAT: off += stls_relay_bdat_bytes(in, rest); break;
		case STLS_RELAY_HANDSHAKE: return off; /* no command is read until the handshake ends */
		default: off += read_command(in, rest, &stop); break;
		}
	}
	return off;
}

void stls_relay_resume_client(struct stls_relay *in)
{
	struct stls_session *s = &in->base;
	struct stls_conn *c = &s->conn[STLS_SIDE_CLIENT];
	if (s->ending || !stls_conn_is_open(s, STLS_SIDE_CLIENT))
		return;
	if (!stls_buf_empty(&c->in) && client_readable(in)) {
		size_t used = stls_relay_process_client(in, stls_buf_span(&c->in));
		if (stls_conn_is_open(s, STLS_SIDE_CLIENT))
			stls_buf_consume(&c->in, used);
	}
	stls_relay_update(in);
}

/* Called at the end of every event: whether to read the client, and which deadline applies. */
void stls_relay_update(struct stls_relay *in)
{
	struct stls_session *s = &in->base;
	if (s->ending)
		return;
	const struct stls_config *cfg = s->snap->cfg;
	stls_conn_want_recv(s, STLS_SIDE_CLIENT,
			    client_readable(in) && !(s->conn[STLS_SIDE_CLIENT].flags & STLS_CONN_EOF));
	/* The backend is always read (its close must be noticed), unless the client lags behind. */
	if (stls_conn_is_open(s, STLS_SIDE_SERVER) && in->be_state >= STLS_BE_GREETING)
		stls_conn_want_recv(s, STLS_SIDE_SERVER, stls_conn_pending(s, STLS_SIDE_CLIENT) < cfg->relay_buffer);

	enum stls_relay_timer kind;
	uint32_t ms;
	if (in->state == STLS_RELAY_HANDSHAKE) {
		kind = STLS_RELAY_TIMER_HANDSHAKE;
		ms = cfg->handshake_timeout_ms;
	} else if (in->state == STLS_RELAY_PROXY) {
		kind = STLS_RELAY_TIMER_PROXY;
		ms = cfg->proxy_header_timeout_ms;
	} else if (in->state == STLS_RELAY_CONNECTING) {
		kind = STLS_RELAY_TIMER_BACKEND_CONNECT;
		ms = in->hop ? cfg->dest_connect_timeout_ms : cfg->backend_connect_timeout_ms;
	} else if (in->num_pend > 0 || in->wait_data_reply) {
		kind = STLS_RELAY_TIMER_BACKEND;
		ms = cfg->backend_reply_timeout_ms;
	} else if (in->state == STLS_RELAY_DATA || in->state == STLS_RELAY_BDAT) {
		kind = STLS_RELAY_TIMER_DATA;
		ms = cfg->data_timeout_ms;
	} else {
		kind = STLS_RELAY_TIMER_COMMAND;
		ms = cfg->command_timeout_ms;
	}
	/* The connect and handshake deadlines run from their start, whatever trickles in. */
	bool progress = in->client_progress;
	if (kind == STLS_RELAY_TIMER_BACKEND)
		progress = in->backend_progress;
	else if (kind == STLS_RELAY_TIMER_BACKEND_CONNECT || kind == STLS_RELAY_TIMER_HANDSHAKE ||
		 kind == STLS_RELAY_TIMER_PROXY)
		progress = false;
	if (kind != in->timer_kind || progress || !stls_timer_armed(&s->timer)) {
		in->timer_kind = (uint8_t)kind;
		stls_session_timer(s, ms);
	}
	in->client_progress = false;
	in->backend_progress = false;
}

/* ---- session operations ------------------------------------------------------------------- */

void stls_relay_open(struct stls_relay *in)
{
	struct stls_session *s = &in->base;
	const struct stls_config *cfg = s->snap->cfg;
	stls_smtp_lex_init(&in->lex, cfg->max_command_line);
	stls_smtp_reply_init(&in->rp, cfg->max_reply_line, 128);
	in->state = STLS_RELAY_GREET;
	in->timer_kind = STLS_RELAY_TIMER__COUNT;
	stls_log_info("New SMTP ICID %llu interface %s (%s) address %s port %u%s", (unsigned long long)s->id,
		      cfg->hostname, s->local_ip, s->peer_ip, s->peer_port, in->kind->log_suffix);
	in->client_progress = true;
	in->kind->open(in);
	if (s->ending)
		return;
	stls_relay_update(in);
}

size_t stls_relay_recv(struct stls_session *s, enum stls_side side, struct stls_span data)
{
	struct stls_relay *in = (struct stls_relay *)s;
	size_t used;
	if (side == STLS_SIDE_CLIENT && in->state == STLS_RELAY_PROXY) {
		used = in->kind->preamble(in, data);
		in->client_progress = true;
	} else if (side == STLS_SIDE_CLIENT) {
		if (!in->client_spoke) {
			in->client_spoke = true;
			if (in->kind->first_bytes && !in->kind->first_bytes(in, data))
				return data.len;
		}
		used = stls_relay_process_client(in, data);
		in->client_progress = true;
	} else {
		used = stls_relay_process_backend(in, data);
		in->backend_progress = true;
	}
	stls_relay_update(in);
	return used;
}

void stls_relay_tls_failed(struct stls_relay *in, const char *why)
{
	stls_counter_inc(&in->base.worker->stats.tls_failed);
	stls_log_info("ICID %llu TLS failed: %s", (unsigned long long)in->base.id, why);
	/* After our 220 there is no way back to clear text (spec S12): the session ends. */
	stls_relay_end(in, true);
}

void stls_relay_closed(struct stls_session *s, enum stls_side side, int err)
{
	struct stls_relay *in = (struct stls_relay *)s;
	if (side == STLS_SIDE_SERVER) {
		stls_relay_backend_lost(in, err == 0 ? "closed the connection" : strerror(-err));
		return;
	}
	if (in->state == STLS_RELAY_HANDSHAKE) {
		stls_relay_tls_failed(in, err == 0 ? "connection closed during the handshake" : strerror(-err));
		return;
	}
	if (err == 0 && in->num_pend > 0 && in->state != STLS_RELAY_DATA && in->state != STLS_RELAY_BDAT) {
		/* The client half-closed after pipelining its last commands: answer them, then end. */
		in->quit = true;
		stls_relay_update(in);
		return;
	}
	if (in->quit || in->state == STLS_RELAY_QUIT) {
		stls_relay_end(in, true);
		return;
	}
	stls_log_info("ICID %llu lost%s%s", (unsigned long long)s->id, err ? ": " : "", err ? strerror(-err) : "");
	stls_relay_end(in, false);
}

void stls_relay_sent(struct stls_session *s, enum stls_side side)
{
	struct stls_relay *in = (struct stls_relay *)s;
	(void)side;
	/* A queue drained: reading may resume on either side. */
	stls_relay_resume_backend(in);
	stls_relay_resume_client(in);
}

void stls_relay_connected(struct stls_session *s, enum stls_side side, int res)
{
	struct stls_relay *in = (struct stls_relay *)s;
	(void)side;
	stls_relay_backend_connected(in, res);
}

void stls_relay_tls(struct stls_session *s, enum stls_side side, enum stls_err res)
{
	struct stls_relay *r = (struct stls_relay *)s;
	if (side == STLS_SIDE_CLIENT)
		r->kind->client_tls(r, res);
	else
		stls_relay_server_tls(r, res);
}

void stls_relay_released(struct stls_session *s, enum stls_side side)
{
	if (side == STLS_SIDE_SERVER)
		stls_relay_backend_released((struct stls_relay *)s);
}

void stls_relay_timeout(struct stls_session *s)
{
	struct stls_relay *in = (struct stls_relay *)s;
	switch ((enum stls_relay_timer)in->timer_kind) {
	case STLS_RELAY_TIMER_HANDSHAKE: stls_relay_tls_failed(in, "handshake timed out"); return;
	case STLS_RELAY_TIMER_PROXY:
		/* Nothing was sent to a balancer's connection yet, and SMTP must not start now. */
		stls_log_warn("ICID %llu balancer %s sent no PROXY header within %u s, closing",
			      (unsigned long long)s->id, s->peer_ip, s->snap->cfg->proxy_header_timeout_ms / 1000);
		stls_relay_end(in, false);
		return;
	case STLS_RELAY_TIMER_BACKEND_CONNECT:
	case STLS_RELAY_TIMER_BACKEND:
		stls_relay_backend_fail(in, "timed out",
					"421 4.4.2 Backend did not answer in time, try again later\r\n");
		return;
	case STLS_RELAY_TIMER_COMMAND:
	case STLS_RELAY_TIMER_DATA:
	case STLS_RELAY_TIMER__COUNT: break;
	}
	stls_log_info("ICID %llu timeout in %s", (unsigned long long)s->id, stls_relay_state_str(in->state));
	stls_relay_pend_clear(in);
	stls_relay_write(in, STLS_SPAN_LIT("421 4.4.2 Timeout exceeded, closing connection\r\n"));
	stls_relay_end(in, true);
}

void stls_relay_shutdown(struct stls_session *s)
{
	struct stls_relay *in = (struct stls_relay *)s;
	stls_log_info("ICID %llu closed by shutdown in %s", (unsigned long long)s->id, stls_relay_state_str(in->state));
	stls_relay_pend_clear(in);
	stls_relay_write(in, STLS_SPAN_LIT("421 4.3.2 Service shutting down, try again later\r\n"));
	stls_relay_end(in, true);
}

void stls_relay_free(struct stls_session *s)
{
	struct stls_relay *in = (struct stls_relay *)s;
	stls_admit_release(&in->admit);
	stls_relay_transaction_reset(in);
	stls_log_info("ICID %llu close", (unsigned long long)s->id);
	stls_relay_pend_cleanup(in);
	if (in->hop && stls_conn_is_open(s, STLS_SIDE_SERVER))
		stls_log_info("DCID %llu close", (unsigned long long)in->hop->dcid);
	stls_free_ptr(&in->hop);
	stls_buf_cleanup(&in->mail_args);
}
