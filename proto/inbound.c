#include "proto/inbound.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "proto/ehlo.h"
#include "proto/relay_int.h"
#include "tls/conn.h"
#include "tls/ctx.h"

/* Whether EHLO offers STARTTLS (never to a HELO, never twice). */
static bool in_offer_starttls(const struct stls_relay *in)
{
	return in->base.snap->cfg->inbound_tls != STLS_TLS_OFF && !in->tls_active && in->esmtp;
}

/* ---- handlers ------------------------------------------------------------------------------ */

static enum stls_relay_result h_ehlo(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	if (!stls_relay_save_helo(in, cmd->args))
		return stls_relay_client_error(in, "501 5.5.4 Syntax: EHLO hostname\r\n");
	in->esmtp = true;
	stls_relay_transaction_reset(in);
	struct stls_snapshot *snap = in->base.snap;
	enum stls_err err = stls_ehlo_build(&in->base.conn[STLS_SIDE_CLIENT].out, snap->cfg->relay_buffer, &snap->caps,
					    snap->cfg->hostname, stls_span_cstr(in->helo), in_offer_starttls(in));
	if (err != STLS_OK) {
		stls_session_end(&in->base, false);
		return STLS_RELAY_END;
	}
	stls_session_mark(&in->base);
	return STLS_RELAY_OK;
}

static enum stls_relay_result h_helo(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	if (!stls_relay_save_helo(in, cmd->args))
		return stls_relay_client_error(in, "501 5.5.4 Syntax: HELO hostname\r\n");
	in->esmtp = false;
	stls_relay_transaction_reset(in);
	stls_relay_replyf(in, "250 %s\r\n", in->base.snap->cfg->hostname);
	return STLS_RELAY_OK;
}

static enum stls_relay_result h_mail_open(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	struct stls_span addr;
	if (stls_smtp_parse_path(&addr, cmd->args, STLS_SPAN_LIT("FROM:")) != STLS_OK)
		return stls_relay_client_error(in, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	return stls_relay_backend_open(in);
}

/* RFC 3207. Decisions where the RFC leaves room: STARTTLS before EHLO/HELO is a sequence error
 * (the client has not seen it offered); inside a mail transaction it is refused, because the
 * transaction could not survive the reset that follows the handshake; after HELO it is accepted. */
static enum stls_relay_result h_starttls(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	struct stls_session *s = &in->base;
	struct stls_snapshot *snap = s->snap;
	if (snap->cfg->inbound_tls == STLS_TLS_OFF || !snap->tls)
		return stls_relay_client_error(in, "502 5.5.1 STARTTLS not available\r\n");
	if (in->tls_active)
		return stls_relay_client_error(in, "554 5.5.1 Error: TLS already active\r\n");
	if (cmd->args.len > 0)
		return stls_relay_client_error(in, "501 5.5.4 Syntax: STARTTLS\r\n");
	if (in->state == STLS_RELAY_GREET)
		return stls_relay_client_error(in, "503 5.5.1 Error: send EHLO first\r\n");
	if (in->mid || in->num_pend || in->wait_data_reply)
		return stls_relay_client_error(
			in, "503 5.5.1 Error: STARTTLS is not allowed during a mail transaction\r\n");
	if (in->trailing > 0) {
		/* CVE-2011-0411: bytes sent with STARTTLS, before our 220, must never be acted on after
		 * the handshake. They are not even read: the session ends here. */
		stls_counter_inc(&s->worker->stats.starttls_injections);
		stls_log_warn("ICID %llu STARTTLS injection: %zu bytes pipelined after STARTTLS, session rejected",
			      (unsigned long long)s->id, in->trailing);
		stls_relay_write(in, STLS_SPAN_LIT("554 5.5.0 Error: commands after STARTTLS are not allowed\r\n"));
		stls_relay_end(in, true);
		return STLS_RELAY_END;
	}
	stls_relay_write(in, STLS_SPAN_LIT("220 2.0.0 Ready to start TLS\r\n"));
	if (stls_conn_is_open(s, STLS_SIDE_SERVER))
		stls_relay_backend_close(in); /* opened in clear text: it must not carry the session on */
	if (stls_conn_start_tls(s, STLS_SIDE_CLIENT, snap->tls->ctx, &snap->tickets) != STLS_OK) {
		stls_log_crit("ICID %llu cannot start TLS: out of memory", (unsigned long long)s->id);
		stls_session_end(s, true);
		return STLS_RELAY_END;
	}
	return STLS_RELAY_OK;
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

/* The inbound table. Each cell: the handler and the state to move to when it succeeds. A missing
 * cell is a sequence error. Commands that must reach the backend appear only in RELAY; in READY the
 * first of them (MAIL) opens the backend connection and is held until it is ready. */
static const struct stls_relay_rule rules[STLS_RELAY__COUNT][STLS_SMTP_VERB__COUNT] = {
	[STLS_RELAY_GREET] = {
		STLS_RELAY_ANYWHERE(STLS_RELAY_GREET, h_starttls, STLS_RELAY_HANDSHAKE),
		[STLS_SMTP_VERB_QUIT] = { stls_relay_h_quit, STLS_RELAY_QUIT },
		[STLS_SMTP_VERB_EHLO] = { h_ehlo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_HELO] = { h_helo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_RSET] = { stls_relay_h_rset, STLS_RELAY_GREET },
		[STLS_SMTP_VERB_MAIL] = { stls_relay_h_need_ehlo, STLS_RELAY_GREET },
		[STLS_SMTP_VERB_RCPT] = { stls_relay_h_need_ehlo, STLS_RELAY_GREET },
		[STLS_SMTP_VERB_DATA] = { stls_relay_h_need_ehlo, STLS_RELAY_GREET },
		[STLS_SMTP_VERB_BDAT] = { stls_relay_h_need_ehlo, STLS_RELAY_GREET },
	},
	[STLS_RELAY_READY] = {
		STLS_RELAY_ANYWHERE(STLS_RELAY_READY, h_starttls, STLS_RELAY_HANDSHAKE),
		[STLS_SMTP_VERB_QUIT] = { stls_relay_h_quit, STLS_RELAY_QUIT },
		[STLS_SMTP_VERB_EHLO] = { h_ehlo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_HELO] = { h_helo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_RSET] = { stls_relay_h_rset, STLS_RELAY_READY },
		[STLS_SMTP_VERB_MAIL] = { h_mail_open, STLS_RELAY_CONNECTING },
		[STLS_SMTP_VERB_RCPT] = { stls_relay_h_need_mail, STLS_RELAY_READY },
		[STLS_SMTP_VERB_DATA] = { stls_relay_h_need_mail, STLS_RELAY_READY },
		[STLS_SMTP_VERB_BDAT] = { stls_relay_h_need_mail, STLS_RELAY_READY },
	},
	[STLS_RELAY_RELAY] = {
		STLS_RELAY_ANYWHERE(STLS_RELAY_RELAY, h_starttls, STLS_RELAY_HANDSHAKE),
		[STLS_SMTP_VERB_QUIT] = { stls_relay_fwd_quit, STLS_RELAY_QUIT },
		[STLS_SMTP_VERB_EHLO] = { stls_relay_fwd_ehlo, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_HELO] = { stls_relay_fwd_ehlo, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_RSET] = { stls_relay_fwd_cmd, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_MAIL] = { stls_relay_fwd_cmd, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_RCPT] = { stls_relay_fwd_cmd, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_DATA] = { stls_relay_fwd_data, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_BDAT] = { stls_relay_fwd_bdat, STLS_RELAY_BDAT },
	},
};

bool stls_in_table_lookup(enum stls_relay_state state, enum stls_smtp_verb verb, enum stls_relay_state *out_next)
{
	if ((unsigned)state >= STLS_RELAY__COUNT || (unsigned)verb >= STLS_SMTP_VERB__COUNT || !rules[state][verb].fn)
		return false;
	*out_next = rules[state][verb].next;
	return true;
}

/* ---- the inbound kind ------------------------------------------------------------------- */

/* Spec S13: with --inbound-tls required, commands other than EHLO, HELO, STARTTLS, NOOP, RSET
 * and QUIT get 530 until TLS is active. */
static enum stls_relay_result in_check(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	if (in->base.snap->cfg->inbound_tls != STLS_TLS_REQUIRED || in->tls_active || allowed_before_tls(cmd->verb))
		return STLS_RELAY_OK;
	if (!in->tls_required_logged) {
		stls_log_info("ICID %llu TLS was required but remote host did not initiate it",
			      (unsigned long long)in->base.id);
		in->tls_required_logged = true;
	}
	if (cmd->verb == STLS_SMTP_VERB_BDAT)
		return stls_relay_bdat_discard(in, cmd, "530 5.7.0 Must issue a STARTTLS command first\r\n");
	return stls_relay_client_error(in, "530 5.7.0 Must issue a STARTTLS command first\r\n");
}

static void in_greet(struct stls_relay *in)
{
	stls_relay_replyf(in, "220 %s ESMTP starttlsd\r\n", in->base.snap->cfg->hostname);
}

static void in_client_tls(struct stls_relay *in, enum stls_err res)
{
	struct stls_session *s = &in->base;
	enum stls_side side = STLS_SIDE_CLIENT;
	struct stls_tls_conn *tls = s->conn[side].tls;
	if (res != STLS_OK) {
		if (res == STLS_ERR_PROTO) {
			/* Clear text where the handshake should be: a command pipelined after STARTTLS that
			 * arrived after our 220, or a client that never started TLS. Never executed. */
			stls_counter_inc(&s->worker->stats.starttls_injections);
		}
		stls_relay_tls_failed(in, stls_conn_tls_error(s, side));
		return;
	}
	stls_counter_inc(&s->worker->stats.tls_success);
	stls_log_info("ICID %llu TLS success protocol %s cipher %s", (unsigned long long)s->id,
		      stls_tls_conn_version(tls), stls_tls_conn_cipher(tls));
	if (stls_tls_conn_resumed(tls))
		stls_log_info("ICID %llu TLS session resumed", (unsigned long long)s->id);
	/* RFC 3207 4.2: forget everything the client said before; it must EHLO again. */
	in->tls_active = true;
	in->state = STLS_RELAY_GREET;
	in->helo[0] = '\0';
	in->esmtp = false;
	in->mid = 0;
	stls_smtp_lex_reset(&in->lex);
	in->client_progress = true;
	stls_relay_update(in);
}

static const struct stls_relay_kind inbound_kind = {
	.name = "inbound",
	.log_suffix = "",
	.rules = rules,
	.open = in_greet,
	.check = in_check,
	.client_tls = in_client_tls,
	.offer_starttls = in_offer_starttls,
	.server_failed = stls_relay_server_failed_end,
};

static void in_open(struct stls_session *s)
{
	struct stls_relay *r = (struct stls_relay *)s;
	r->kind = &inbound_kind;
	stls_relay_open(r);
}

const struct stls_session_ops stls_inbound_ops = STLS_RELAY_OPS("inbound", in_open);
