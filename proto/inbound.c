#include "proto/inbound.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "proto/ehlo.h"
#include "proto/inbound_int.h"
#include "tls/conn.h"
#include "tls/ctx.h"

const char *stls_in_state_str(enum stls_in_state state)
{
	static const char *const names[STLS_IN__COUNT] = {
		[STLS_IN_GREET] = "GREET", [STLS_IN_READY] = "READY",	      [STLS_IN_CONNECTING] = "CONNECTING",
		[STLS_IN_RELAY] = "RELAY", [STLS_IN_DATA] = "DATA",	      [STLS_IN_BDAT] = "BDAT",
		[STLS_IN_QUIT] = "QUIT",   [STLS_IN_HANDSHAKE] = "HANDSHAKE",
	};
	return (unsigned)state < STLS_IN__COUNT ? names[state] : "UNKNOWN";
}

/* ---- replies to the client ---------------------------------------------------------------- */

void stls_in_write(struct stls_inbound *in, struct stls_span text)
{
	const struct stls_config *cfg = in->base.snap->cfg;
	/* Replies are small and the client's queue is bounded by the pause rules; a failure here
	 * means the client is gone or hopelessly behind. */
	if (stls_conn_write(&in->base, STLS_SIDE_CLIENT, text, (size_t)cfg->relay_buffer * 2) == STLS_ERR_LIMIT) {
		stls_log_warn("ICID %llu client does not read its replies, closing", (unsigned long long)in->base.id);
		stls_session_end(&in->base, false);
	}
}

void stls_in_reply(struct stls_inbound *in, const char *text)
{
	if (in->num_pend > 0) {
		/* Replies go out in command order (RFC 2920 3.1): wait behind the backend's. */
		stls_in_pend_push(in, STLS_PEND_LOCAL, text, STLS_SPAN_LIT(""));
		return;
	}
	stls_in_write(in, stls_span_cstr(text));
}

void stls_in_replyf(struct stls_inbound *in, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	STLS_BUG_ON(in->num_pend > 0); /* formatted replies are only given outside the relay */
	stls_in_write(in, stls_span_make(text, n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1));
}

/* A protocol error by the client: answered, counted, and past --max-errors the session ends. */
static enum stls_in_result client_error(struct stls_inbound *in, const char *text)
{
	const struct stls_config *cfg = in->base.snap->cfg;
	stls_counter_inc(&in->base.worker->stats.protocol_errors);
	if (++in->num_errors >= cfg->max_errors) {
		stls_log_info("ICID %llu too many errors (%u), closing", (unsigned long long)in->base.id,
			      in->num_errors);
		stls_in_pend_clear(in);
		stls_in_write(in, STLS_SPAN_LIT("421 4.7.0 Too many errors, closing connection\r\n"));
		stls_in_end(in, true);
		return STLS_IN_END;
	}
	stls_in_reply(in, text);
	return STLS_IN_FAIL;
}

void stls_in_end(struct stls_inbound *in, bool flush)
{
	in->state = STLS_IN_QUIT;
	stls_session_end(&in->base, flush);
}

/* ---- handlers ------------------------------------------------------------------------------ */

static bool save_helo(struct stls_inbound *in, struct stls_span args)
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

static void transaction_reset(struct stls_inbound *in)
{
	if (in->mid)
		stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
	in->mid = 0;
}

static enum stls_in_result h_ehlo(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	if (!save_helo(in, cmd->args))
		return client_error(in, "501 5.5.4 Syntax: EHLO hostname\r\n");
	in->esmtp = true;
	transaction_reset(in);
	struct stls_snapshot *snap = in->base.snap;
	enum stls_err err = stls_ehlo_build(&in->base.conn[STLS_SIDE_CLIENT].out, snap->cfg->relay_buffer, &snap->caps,
					    snap->cfg->hostname, stls_span_cstr(in->helo), stls_in_offer_starttls(in));
	if (err != STLS_OK) {
		stls_session_end(&in->base, false);
		return STLS_IN_END;
	}
	stls_session_mark(&in->base);
	return STLS_IN_OK;
}

static enum stls_in_result h_helo(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	if (!save_helo(in, cmd->args))
		return client_error(in, "501 5.5.4 Syntax: HELO hostname\r\n");
	in->esmtp = false;
	transaction_reset(in);
	stls_in_replyf(in, "250 %s\r\n", in->base.snap->cfg->hostname);
	return STLS_IN_OK;
}

static enum stls_in_result h_noop(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	stls_in_reply(in, "250 2.0.0 Ok\r\n");
	return STLS_IN_OK;
}

static enum stls_in_result h_rset(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	transaction_reset(in);
	stls_in_reply(in, "250 2.0.0 Ok\r\n");
	return STLS_IN_OK;
}

static enum stls_in_result h_quit(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	transaction_reset(in);
	stls_in_reply(in, "221 2.0.0 Bye\r\n");
	in->quit = true;
	return STLS_IN_OK;
}

static enum stls_in_result h_help(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	stls_in_reply(in, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT\r\n");
	return STLS_IN_OK;
}

static enum stls_in_result h_vrfy(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	/* RFC 5321 3.5.3: 252 is the answer of a server that will not verify (no address harvest
	 * through the proxy). */
	stls_in_reply(in, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n");
	return STLS_IN_OK;
}

static enum stls_in_result h_not_impl(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	return client_error(in, "502 5.5.1 Command not implemented\r\n");
}

static enum stls_in_result h_unknown(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	return client_error(in, "500 5.5.2 Command unrecognized\r\n");
}

static enum stls_in_result h_need_mail(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	if (cmd->verb == STLS_SMTP_VERB_BDAT)
		return stls_in_bdat_discard(in, cmd, "503 5.5.1 Error: need MAIL command\r\n");
	return client_error(in, "503 5.5.1 Error: need MAIL command\r\n");
}

static enum stls_in_result h_need_ehlo(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	if (cmd->verb == STLS_SMTP_VERB_BDAT)
		return stls_in_bdat_discard(in, cmd, "503 5.5.1 Error: send EHLO first\r\n");
	return client_error(in, "503 5.5.1 Error: send HELO/EHLO first\r\n");
}

static enum stls_in_result h_mail_open(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	struct stls_span addr;
	if (stls_smtp_parse_path(&addr, cmd->args, STLS_SPAN_LIT("FROM:")) != STLS_OK)
		return client_error(in, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	return stls_in_backend_open(in);
}

/* RFC 3207. Decisions where the RFC leaves room: STARTTLS before EHLO/HELO is a sequence error
 * (the client has not seen it offered); inside a mail transaction it is refused, because the
 * transaction could not survive the reset that follows the handshake; after HELO it is accepted. */
static enum stls_in_result h_starttls(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	struct stls_session *s = &in->base;
	struct stls_snapshot *snap = s->snap;
	if (snap->cfg->inbound_tls == STLS_TLS_OFF || !snap->tls)
		return client_error(in, "502 5.5.1 STARTTLS not available\r\n");
	if (in->tls_active)
		return client_error(in, "554 5.5.1 Error: TLS already active\r\n");
	if (cmd->args.len > 0)
		return client_error(in, "501 5.5.4 Syntax: STARTTLS\r\n");
	if (in->state == STLS_IN_GREET)
		return client_error(in, "503 5.5.1 Error: send EHLO first\r\n");
	if (in->mid || in->num_pend || in->wait_data_reply)
		return client_error(in, "503 5.5.1 Error: STARTTLS is not allowed during a mail transaction\r\n");
	if (in->trailing > 0) {
		/* CVE-2011-0411: bytes sent with STARTTLS, before our 220, must never be acted on after
		 * the handshake. They are not even read: the session ends here. */
		stls_counter_inc(&s->worker->stats.starttls_injections);
		stls_log_warn("ICID %llu STARTTLS injection: %zu bytes pipelined after STARTTLS, session rejected",
			      (unsigned long long)s->id, in->trailing);
		stls_in_write(in, STLS_SPAN_LIT("554 5.5.0 Error: commands after STARTTLS are not allowed\r\n"));
		stls_in_end(in, true);
		return STLS_IN_END;
	}
	stls_in_write(in, STLS_SPAN_LIT("220 2.0.0 Ready to start TLS\r\n"));
	if (stls_conn_is_open(s, STLS_SIDE_SERVER))
		stls_in_backend_close(in); /* opened in clear text: it must not carry the session on */
	if (stls_conn_start_tls(s, STLS_SIDE_CLIENT, snap->tls->ctx, &snap->tickets) != STLS_OK) {
		stls_log_crit("ICID %llu cannot start TLS: out of memory", (unsigned long long)s->id);
		stls_session_end(s, true);
		return STLS_IN_END;
	}
	return STLS_IN_OK;
}

/* RFC 3207 4: with TLS required, only these may come first. */
static bool allowed_before_tls(enum stls_smtp_verb verb)
{
	switch (verb) {
	case STLS_SMTP_VERB_EHLO:
	case STLS_SMTP_VERB_HELO:
	case STLS_SMTP_VERB_STARTTLS:
	case STLS_SMTP_VERB_NOOP:
	case STLS_SMTP_VERB_RSET:
	case STLS_SMTP_VERB_QUIT: return true;
	default: return false;
	}
}

/* The table. Each cell: the handler and the state to move to when it succeeds. A missing cell is
 * a sequence error. Commands that must reach the backend appear only in RELAY; in READY the first
 * of them opens the backend connection and is held until it is ready. */
struct in_rule {
	stls_in_handler_fn *fn;
	enum stls_in_state next;
};

#define ANYWHERE(state)                                                                                                \
	[STLS_SMTP_VERB_NOOP] = { h_noop, state }, [STLS_SMTP_VERB_HELP] = { h_help, state },                          \
	[STLS_SMTP_VERB_VRFY] = { h_vrfy, state }, [STLS_SMTP_VERB_STARTTLS] = { h_starttls, STLS_IN_HANDSHAKE },      \
	[STLS_SMTP_VERB_AUTH] = { h_not_impl, state }, [STLS_SMTP_VERB_EXPN] = { h_not_impl, state },                  \
	[STLS_SMTP_VERB_ETRN] = { h_not_impl, state }, [STLS_SMTP_VERB_XCLIENT] = { h_not_impl, state },               \
	[STLS_SMTP_VERB_XFORWARD] = { h_not_impl, state }, [STLS_SMTP_VERB_UNKNOWN] = { h_unknown, state }

static const struct in_rule rules[STLS_IN__COUNT][STLS_SMTP_VERB__COUNT] = {
	[STLS_IN_GREET] = {
		ANYWHERE(STLS_IN_GREET),
		[STLS_SMTP_VERB_QUIT] = {h_quit, STLS_IN_QUIT},
		[STLS_SMTP_VERB_EHLO] = {h_ehlo, STLS_IN_READY},
		[STLS_SMTP_VERB_HELO] = {h_helo, STLS_IN_READY},
		[STLS_SMTP_VERB_RSET] = {h_rset, STLS_IN_GREET},
		[STLS_SMTP_VERB_MAIL] = {h_need_ehlo, STLS_IN_GREET},
		[STLS_SMTP_VERB_RCPT] = {h_need_ehlo, STLS_IN_GREET},
		[STLS_SMTP_VERB_DATA] = {h_need_ehlo, STLS_IN_GREET},
		[STLS_SMTP_VERB_BDAT] = {h_need_ehlo, STLS_IN_GREET},
	},
	[STLS_IN_READY] = {
		ANYWHERE(STLS_IN_READY),
		[STLS_SMTP_VERB_QUIT] = {h_quit, STLS_IN_QUIT},
		[STLS_SMTP_VERB_EHLO] = {h_ehlo, STLS_IN_READY},
		[STLS_SMTP_VERB_HELO] = {h_helo, STLS_IN_READY},
		[STLS_SMTP_VERB_RSET] = {h_rset, STLS_IN_READY},
		[STLS_SMTP_VERB_MAIL] = {h_mail_open, STLS_IN_CONNECTING},
		[STLS_SMTP_VERB_RCPT] = {h_need_mail, STLS_IN_READY},
		[STLS_SMTP_VERB_DATA] = {h_need_mail, STLS_IN_READY},
		[STLS_SMTP_VERB_BDAT] = {h_need_mail, STLS_IN_READY},
	},
	[STLS_IN_RELAY] = {
		ANYWHERE(STLS_IN_RELAY),
		[STLS_SMTP_VERB_QUIT] = {stls_in_relay_quit, STLS_IN_QUIT},
		[STLS_SMTP_VERB_EHLO] = {stls_in_relay_ehlo, STLS_IN_RELAY},
		[STLS_SMTP_VERB_HELO] = {stls_in_relay_ehlo, STLS_IN_RELAY},
		[STLS_SMTP_VERB_RSET] = {stls_in_relay_cmd, STLS_IN_RELAY},
		[STLS_SMTP_VERB_MAIL] = {stls_in_relay_cmd, STLS_IN_RELAY},
		[STLS_SMTP_VERB_RCPT] = {stls_in_relay_cmd, STLS_IN_RELAY},
		[STLS_SMTP_VERB_DATA] = {stls_in_relay_data, STLS_IN_RELAY},
		[STLS_SMTP_VERB_BDAT] = {stls_in_relay_bdat, STLS_IN_BDAT},
	},
};

bool stls_in_table_lookup(enum stls_in_state state, enum stls_smtp_verb verb, enum stls_in_state *out_next)
{
	if ((unsigned)state >= STLS_IN__COUNT || (unsigned)verb >= STLS_SMTP_VERB__COUNT || !rules[state][verb].fn)
		return false;
	*out_next = rules[state][verb].next;
	return true;
}

static enum stls_in_result dispatch(struct stls_inbound *in, const struct stls_smtp_cmd *cmd)
{
	const struct in_rule *rule = &rules[in->state][cmd->verb];
	if (in->base.snap->cfg->inbound_tls == STLS_TLS_REQUIRED && !in->tls_active && !allowed_before_tls(cmd->verb)) {
		if (!in->tls_required_logged) {
			stls_log_info("ICID %llu TLS was required but remote host did not initiate it",
				      (unsigned long long)in->base.id);
			in->tls_required_logged = true;
		}
		if (cmd->verb == STLS_SMTP_VERB_BDAT)
			return stls_in_bdat_discard(in, cmd, "530 5.7.0 Must issue a STARTTLS command first\r\n");
		return client_error(in, "530 5.7.0 Must issue a STARTTLS command first\r\n");
	}
	if (!rule->fn)
		return client_error(in, "503 5.5.1 Bad sequence of commands\r\n");
	enum stls_in_result res = rule->fn(in, cmd);
	if ((res == STLS_IN_OK || res == STLS_IN_HOLD) && in->state != STLS_IN_QUIT)
		in->state = (uint8_t)rule->next;
	if (in->state == STLS_IN_BDAT && in->bdat_left == 0) /* "BDAT 0 LAST" carries no bytes */
		in->state = in->bdat_discard ? in->bdat_return : STLS_IN_RELAY;
	return res;
}

/* ---- reading the client -------------------------------------------------------------------- */

/* Whether the next client bytes may be acted on now. */
static bool client_readable(struct stls_inbound *in)
{
	const struct stls_config *cfg = in->base.snap->cfg;
	if (in->state == STLS_IN_CONNECTING || in->state == STLS_IN_QUIT || in->quit || in->wait_data_reply ||
	    in->base.ending)
		return false;
	if (in->state == STLS_IN_HANDSHAKE)
		return true; /* the handshake's bytes; no command is read until it ends */
	if (in->num_pend >= cfg->max_pipeline)
		return false;
	if (stls_conn_pending(&in->base, STLS_SIDE_CLIENT) >= cfg->relay_buffer)
		return false;
	if (stls_conn_is_open(&in->base, STLS_SIDE_SERVER) &&
	    stls_conn_pending(&in->base, STLS_SIDE_SERVER) >= cfg->relay_buffer)
		return false;
	return true;
}

static size_t read_command(struct stls_inbound *in, struct stls_span data, bool *out_stop)
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
		*out_stop = client_error(in, "500 5.5.6 Line too long\r\n") == STLS_IN_END;
		return used;
	case STLS_ERR_BARE_LF:
		stls_log_info("ICID %llu command line with a bare CR or LF", (unsigned long long)in->base.id);
		*out_stop = client_error(in, "500 5.5.2 Command lines must end with CRLF\r\n") == STLS_IN_END;
		return used;
	case STLS_ERR_NUL:
		stls_log_info("ICID %llu command line with a NUL byte", (unsigned long long)in->base.id);
		*out_stop = client_error(in, "500 5.5.2 NUL byte in command\r\n") == STLS_IN_END;
		return used;
	default:
		*out_stop = true;
		stls_session_end(&in->base, false);
		return data.len;
	}
	in->client_progress = true;
	in->trailing = data.len - used;
	enum stls_in_result res = dispatch(in, &cmd);
	if (res == STLS_IN_HOLD) {
		*out_stop = true;
		return 0;
	}
	if (res == STLS_IN_END || res == STLS_IN_STOP)
		*out_stop = true;
	if (in->quit && in->num_pend == 0) {
		stls_in_end(in, true);
		*out_stop = true;
	}
	return used;
}

size_t stls_in_process_client(struct stls_inbound *in, struct stls_span data)
{
	size_t off = 0;
	bool stop = false;
	while (!stop && off < data.len && client_readable(in)) {
		struct stls_span rest = stls_span_from(data, off);
		switch (in->state) {
		case STLS_IN_DATA: off += stls_in_data_bytes(in, rest); break;
		case STLS_IN_BDAT: off += stls_in_bdat_bytes(in, rest); break;
		case STLS_IN_HANDSHAKE: return off; /* no command is read until the handshake ends */
		default: off += read_command(in, rest, &stop); break;
		}
	}
	return off;
}

void stls_in_resume_client(struct stls_inbound *in)
{
	struct stls_session *s = &in->base;
	struct stls_conn *c = &s->conn[STLS_SIDE_CLIENT];
	if (s->ending || !stls_conn_is_open(s, STLS_SIDE_CLIENT))
		return;
	if (!stls_buf_empty(&c->in) && client_readable(in)) {
		size_t used = stls_in_process_client(in, stls_buf_span(&c->in));
		if (stls_conn_is_open(s, STLS_SIDE_CLIENT))
			stls_buf_consume(&c->in, used);
	}
	stls_in_update(in);
}

/* Called at the end of every event: whether to read the client, and which deadline applies. */
void stls_in_update(struct stls_inbound *in)
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

	enum stls_in_timer kind;
	uint32_t ms;
	if (in->state == STLS_IN_HANDSHAKE) {
		kind = STLS_IN_TIMER_HANDSHAKE;
		ms = cfg->handshake_timeout_ms;
	} else if (in->state == STLS_IN_CONNECTING) {
		kind = STLS_IN_TIMER_BACKEND_CONNECT;
		ms = cfg->backend_connect_timeout_ms;
	} else if (in->num_pend > 0 || in->wait_data_reply) {
		kind = STLS_IN_TIMER_BACKEND;
		ms = cfg->backend_reply_timeout_ms;
	} else if (in->state == STLS_IN_DATA || in->state == STLS_IN_BDAT) {
		kind = STLS_IN_TIMER_DATA;
		ms = cfg->data_timeout_ms;
	} else {
		kind = STLS_IN_TIMER_COMMAND;
		ms = cfg->command_timeout_ms;
	}
	/* The connect and handshake deadlines run from their start, whatever trickles in. */
	bool progress = in->client_progress;
	if (kind == STLS_IN_TIMER_BACKEND)
		progress = in->backend_progress;
	else if (kind == STLS_IN_TIMER_BACKEND_CONNECT || kind == STLS_IN_TIMER_HANDSHAKE)
		progress = false;
	if (kind != in->timer_kind || progress || !stls_timer_armed(&s->timer)) {
		in->timer_kind = (uint8_t)kind;
		stls_session_timer(s, ms);
	}
	in->client_progress = false;
	in->backend_progress = false;
}

/* ---- session operations ------------------------------------------------------------------- */

static void in_open(struct stls_session *s)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	const struct stls_config *cfg = s->snap->cfg;
	stls_smtp_lex_init(&in->lex, cfg->max_command_line);
	stls_smtp_reply_init(&in->rp, cfg->max_reply_line, 128);
	in->state = STLS_IN_GREET;
	in->timer_kind = STLS_IN_TIMER__COUNT;
	stls_log_info("New SMTP ICID %llu interface %s (%s) address %s port %u", (unsigned long long)s->id,
		      cfg->hostname, s->local_ip, s->peer_ip, s->peer_port);
	stls_in_replyf(in, "220 %s ESMTP starttlsd\r\n", cfg->hostname);
	in->client_progress = true;
	stls_in_update(in);
}

static size_t in_recv(struct stls_session *s, enum stls_side side, struct stls_span data)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	size_t used;
	if (side == STLS_SIDE_CLIENT) {
		used = stls_in_process_client(in, data);
		in->client_progress = true;
	} else {
		used = stls_in_process_backend(in, data);
		in->backend_progress = true;
	}
	stls_in_update(in);
	return used;
}

static void tls_failed(struct stls_inbound *in, const char *why)
{
	stls_counter_inc(&in->base.worker->stats.tls_failed);
	stls_log_info("ICID %llu TLS failed: %s", (unsigned long long)in->base.id, why);
	/* After our 220 there is no way back to clear text (spec S12): the session ends. */
	stls_in_end(in, true);
}

static void in_closed(struct stls_session *s, enum stls_side side, int err)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	if (side == STLS_SIDE_SERVER) {
		stls_in_backend_lost(in, err == 0 ? "closed the connection" : strerror(-err));
		return;
	}
	if (in->state == STLS_IN_HANDSHAKE) {
		tls_failed(in, err == 0 ? "connection closed during the handshake" : strerror(-err));
		return;
	}
	if (err == 0 && in->num_pend > 0 && in->state != STLS_IN_DATA && in->state != STLS_IN_BDAT) {
		/* The client half-closed after pipelining its last commands: answer them, then end. */
		in->quit = true;
		stls_in_update(in);
		return;
	}
	if (in->quit || in->state == STLS_IN_QUIT) {
		stls_in_end(in, true);
		return;
	}
	stls_log_info("ICID %llu lost%s%s", (unsigned long long)s->id, err ? ": " : "", err ? strerror(-err) : "");
	stls_in_end(in, false);
}

static void in_sent(struct stls_session *s, enum stls_side side)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	(void)side;
	/* A queue drained: reading may resume on either side. */
	stls_in_resume_backend(in);
	stls_in_resume_client(in);
}

static void in_connected(struct stls_session *s, enum stls_side side, int res)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	(void)side;
	stls_in_backend_connected(in, res);
}

static void in_tls(struct stls_session *s, enum stls_side side, enum stls_err res)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	struct stls_tls_conn *tls = s->conn[side].tls;
	if (res != STLS_OK) {
		if (res == STLS_ERR_PROTO) {
			/* Clear text where the handshake should be: a command pipelined after STARTTLS that
			 * arrived after our 220, or a client that never started TLS. Never executed. */
			stls_counter_inc(&s->worker->stats.starttls_injections);
		}
		tls_failed(in, stls_conn_tls_error(s, side));
		return;
	}
	stls_counter_inc(&s->worker->stats.tls_success);
	stls_log_info("ICID %llu TLS success protocol %s cipher %s", (unsigned long long)s->id,
		      stls_tls_conn_version(tls), stls_tls_conn_cipher(tls));
	if (stls_tls_conn_resumed(tls))
		stls_log_info("ICID %llu TLS session resumed", (unsigned long long)s->id);
	/* RFC 3207 4.2: forget everything the client said before; it must EHLO again. */
	in->tls_active = true;
	in->state = STLS_IN_GREET;
	in->helo[0] = '\0';
	in->esmtp = false;
	in->mid = 0;
	stls_smtp_lex_reset(&in->lex);
	in->client_progress = true;
	stls_in_update(in);
}

static void in_released(struct stls_session *s, enum stls_side side)
{
	if (side == STLS_SIDE_SERVER)
		stls_in_backend_released((struct stls_inbound *)s);
}

static void in_timeout(struct stls_session *s)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	switch ((enum stls_in_timer)in->timer_kind) {
	case STLS_IN_TIMER_HANDSHAKE: tls_failed(in, "handshake timed out"); return;
	case STLS_IN_TIMER_BACKEND_CONNECT:
	case STLS_IN_TIMER_BACKEND:
		stls_in_backend_fail(in, "timed out", "421 4.4.2 Backend did not answer in time, try again later\r\n");
		return;
	case STLS_IN_TIMER_COMMAND:
	case STLS_IN_TIMER_DATA:
	case STLS_IN_TIMER__COUNT: break;
	}
	stls_log_info("ICID %llu timeout in %s", (unsigned long long)s->id, stls_in_state_str(in->state));
	stls_in_pend_clear(in);
	stls_in_write(in, STLS_SPAN_LIT("421 4.4.2 Timeout exceeded, closing connection\r\n"));
	stls_in_end(in, true);
}

static void in_shutdown(struct stls_session *s)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	stls_log_info("ICID %llu closed by shutdown in %s", (unsigned long long)s->id, stls_in_state_str(in->state));
	stls_in_pend_clear(in);
	stls_in_write(in, STLS_SPAN_LIT("421 4.3.2 Service shutting down, try again later\r\n"));
	stls_in_end(in, true);
}

static void in_free(struct stls_session *s)
{
	struct stls_inbound *in = (struct stls_inbound *)s;
	transaction_reset(in);
	stls_log_info("ICID %llu close", (unsigned long long)s->id);
	stls_in_pend_cleanup(in);
}

const struct stls_session_ops stls_inbound_ops = {
	.name = "inbound",
	.size = sizeof(struct stls_inbound),
	.on_open = in_open,
	.on_recv = in_recv,
	.on_closed = in_closed,
	.on_sent = in_sent,
	.on_connected = in_connected,
	.on_released = in_released,
	.on_tls = in_tls,
	.on_timeout = in_timeout,
	.on_shutdown = in_shutdown,
	.on_free = in_free,
};
