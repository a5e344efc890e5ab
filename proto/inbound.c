#include "proto/inbound.h"

#include <stdio.h>
#include <string.h>

#include "core/admit.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/snapshot.h"
#include "core/net.h"
#include "core/worker.h"
#include "proto/ehlo.h"
#include "proto/proxy_proto.h"
#include "proto/relay_int.h"
#include "proto/sender_groups.h"
#include "tls/conn.h"
#include "tls/ctx.h"

/* Whether EHLO offers STARTTLS (never to a HELO, never twice). */
static bool in_offer_starttls(const struct stls_relay *in)
{
	return in->tls_mode != STLS_TLS_OFF && !in->tls_active && in->esmtp;
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

/* The sender group's rate= (messages a minute from one address) counts each MAIL before it reaches
 * the backend. Returns false when the session was ended for it. */
static bool in_rate_ok(struct stls_relay *in)
{
	const struct stls_sender_group *g = in->group;
	if (!g || g->rate_per_min == 0 || stls_admit_message(&in->admit, g->rate_per_min))
		return true;
	stls_counter_inc(&in->base.worker->stats.limit_rejects);
	stls_log_info("ICID %llu REJECT SG %s rate: more than %u messages a minute from %s",
		      (unsigned long long)in->base.id, g->name, g->rate_per_min, in->base.peer_ip);
	stls_relay_pend_clear(in);
	stls_relay_write(in, STLS_SPAN_LIT("421 4.7.0 Too many messages from your address, try again later\r\n"));
	stls_relay_end(in, true);
	return false;
}

static enum stls_relay_result h_mail_open(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	struct stls_span addr;
	if (stls_smtp_parse_path(&addr, cmd->args, STLS_SPAN_LIT("FROM:")) != STLS_OK)
		return stls_relay_client_error(in, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	if (!in_rate_ok(in))
		return STLS_RELAY_END;
	/* It is read again once the backend is ready: h_mail_relay must not count it twice. */
	in->mail_counted = true;
	return stls_relay_backend_open(in);
}

static enum stls_relay_result h_mail_relay(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	if (in->mail_counted)
		in->mail_counted = false;
	else if (!in_rate_ok(in))
		return STLS_RELAY_END;
	return stls_relay_fwd_cmd(in, cmd);
}

/* RFC 3207. Decisions where the RFC leaves room: STARTTLS before EHLO/HELO is a sequence error
 * (the client has not seen it offered); inside a mail transaction it is refused, because the
 * transaction could not survive the reset that follows the handshake; after HELO it is accepted. */
static enum stls_relay_result h_starttls(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	struct stls_session *s = &in->base;
	struct stls_snapshot *snap = s->snap;
	if (in->tls_mode == STLS_TLS_OFF || !snap->tls)
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
		[STLS_SMTP_VERB_MAIL] = { h_mail_relay, STLS_RELAY_RELAY },
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
	if (in->tls_mode != STLS_TLS_REQUIRED || in->tls_active || allowed_before_tls(cmd->verb))
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

/* Spec S14: the client's sender group decides its TLS policy and limits; a client in no group gets
 * the listener's --inbound-tls and --max-per-ip. Returns false when the session was refused. */
static bool in_admit(struct stls_relay *in)
{
	struct stls_session *s = &in->base;
	const struct stls_config *cfg = s->snap->cfg;
	const struct stls_inbound_conf *ic = s->snap->inbound;
	const char *network = NULL;
	const struct stls_sender_group *g =
		ic && ic->groups ? stls_sender_groups_lookup(ic->groups, (const struct sockaddr *)&s->peer, &network)
				 : NULL;
	in->group = g;
	in->tls_mode = g ? g->tls : cfg->inbound_tls;
	if (g)
		stls_log_info("ICID %llu ACCEPT SG %s match %s", (unsigned long long)s->id, g->name, network);
	uint32_t group_max = g ? g->max_sessions : 0;
	uint32_t addr_max = g && g->max_per_ip ? g->max_per_ip : cfg->max_per_ip;
	bool rate = g && g->rate_per_min;
	if (!group_max && !addr_max && !rate)
		return true;
	enum stls_admit_result res = stls_admit_session(&in->admit, g ? g->name : "", group_max,
							(const struct sockaddr *)&s->peer, addr_max, rate);
	if (res == STLS_ADMIT_OK)
		return true;
	stls_counter_inc(&s->worker->stats.limit_rejects);
	const char *reply = "421 4.7.0 Too many connections from your address, try again later\r\n";
	switch (res) {
	case STLS_ADMIT_GROUP_FULL:
		stls_log_info("ICID %llu REJECT SG %s max-sessions: %u sessions already", (unsigned long long)s->id,
			      g->name, group_max);
		reply = "421 4.7.0 Too many connections from your network, try again later\r\n";
		break;
	case STLS_ADMIT_ADDR_FULL:
		stls_log_info("ICID %llu REJECT %s%s%smax-per-ip: %u sessions from %s already",
			      (unsigned long long)s->id, g ? "SG " : "", g ? g->name : "", g ? " " : "", addr_max,
			      s->peer_ip);
		break;
	default:
		stls_log_warn("ICID %llu REJECT: the table of client limits is full (more distinct clients than "
			      "--max-sessions allows for)",
			      (unsigned long long)s->id);
		reply = "421 4.3.2 Too many clients, try again later\r\n";
		break;
	}
	stls_relay_write(in, stls_span_cstr(reply));
	stls_relay_end(in, true);
	return false;
}

static void in_greet(struct stls_relay *in)
{
	if (!in_admit(in))
		return;
	stls_relay_replyf(in, "220 %s ESMTP starttlsd\r\n", in->base.snap->cfg->hostname);
}

/* A connection from a trusted balancer starts with a PROXY header naming the real client, which
 * then drives sender groups, limits and logs. Anything else from a balancer is refused. */
static size_t in_preamble(struct stls_relay *in, struct stls_span data)
{
	struct stls_session *s = &in->base;
	struct stls_proxy_header h;
	size_t used = 0;
	enum stls_err err = stls_proxy_proto_parse(&h, &used, data);
	if (err == STLS_AGAIN)
		return 0;
	if (err != STLS_OK) {
		stls_log_warn("ICID %llu balancer %s: the connection does not start with a valid PROXY header (%s), "
			      "closing",
			      (unsigned long long)s->id, s->peer_ip,
			      err == STLS_ERR_TOO_LONG ? "too long" : "malformed");
		stls_relay_end(in, false);
		return data.len;
	}
	char balancer[sizeof(s->peer_ip)];
	memcpy(balancer, s->peer_ip, sizeof(balancer));
	if (!h.local) {
		s->peer = h.src;
		s->local = h.dst;
		s->peer_port = stls_net_format(&s->peer, s->peer_ip, sizeof(s->peer_ip));
		s->local_port = stls_net_format(&s->local, s->local_ip, sizeof(s->local_ip));
	}
	stls_log_info("ICID %llu PROXY v%u from balancer %s: %s", (unsigned long long)s->id, h.version, balancer,
		      h.local ? "LOCAL (a health check), served as the balancer's own session" : "client follows");
	stls_relay_open(in);
	return used;
}

/* A PROXY header from anyone but a trusted balancer is an attempt to choose the address we
 * believe: refused, and logged as such. Returns false when the session ended. */
static bool in_first_bytes(struct stls_relay *in, struct stls_span data)
{
	static const uint8_t v2_sig[] = { '\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q' };
	bool v1 = data.len >= 6 && memcmp(data.ptr, "PROXY ", 6) == 0;
	bool v2 = data.len >= sizeof(v2_sig) && memcmp(data.ptr, v2_sig, sizeof(v2_sig)) == 0;
	if (!v1 && !v2)
		return true;
	stls_log_warn("ICID %llu PROXY header from %s, which is not a trusted balancer (--accept-proxy-protocol): "
		      "refused",
		      (unsigned long long)in->base.id, in->base.peer_ip);
	stls_relay_write(in, STLS_SPAN_LIT("554 5.7.0 PROXY header not accepted from this address\r\n"));
	stls_relay_end(in, true);
	return false;
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
	.preamble = in_preamble,
	.first_bytes = in_first_bytes,
	.check = in_check,
	.client_tls = in_client_tls,
	.offer_starttls = in_offer_starttls,
	.server_failed = stls_relay_server_failed_end,
};

static bool from_balancer(const struct stls_session *s)
{
	const struct stls_config *cfg = s->snap->cfg;
	for (unsigned i = 0; i < cfg->num_accept_proxy; i++)
		if (stls_net_cidr_match(&cfg->accept_proxy[i], &s->peer))
			return true;
	return false;
}

static void in_open(struct stls_session *s)
{
	struct stls_relay *r = (struct stls_relay *)s;
	r->kind = &inbound_kind;
	if (from_balancer(s)) {
		r->state = STLS_RELAY_PROXY;
		r->timer_kind = STLS_RELAY_TIMER__COUNT;
		stls_relay_update(r);
		return;
	}
	stls_relay_open(r);
}

enum stls_err stls_inbound_conf_new(struct stls_inbound_conf **out, const struct stls_config *cfg, char *err,
				    size_t err_len)
{
	*out = NULL;
	struct stls_inbound_conf *c = stls_calloc(1, sizeof(*c));
	if (!c)
		return STLS_ERR_NOMEM;
	c->refs = 1;
	if (cfg->sender_groups_path[0]) {
		enum stls_err ret = stls_sender_groups_load(&c->groups, cfg->sender_groups_path, err, err_len);
		if (ret != STLS_OK) {
			stls_free_ptr(&c);
			return ret;
		}
	}
	*out = c;
	return STLS_OK;
}

void stls_inbound_conf_get(struct stls_inbound_conf *c)
{
	if (c)
		c->refs++;
}

void stls_inbound_conf_put(struct stls_inbound_conf *c)
{
	if (!c || --c->refs > 0)
		return;
	stls_sender_groups_free(&c->groups);
	stls_free_ptr(&c);
}

const struct stls_session_ops stls_inbound_ops = STLS_RELAY_OPS("inbound", in_open);
