#include "proto/outbound.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/net.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "proto/dns.h"
#include "proto/ehlo.h"
#include "proto/next_hop.h"
#include "proto/relay_int.h"
#include "tls/cert.h"
#include "tls/conn.h"

/* ---- the configuration unit -------------------------------------------------------------- */

/* The client side of TLS toward destinations: the same protocol rules as inbound (spec S30), the
 * --ca-file trust store for the *-verify policies, and the --outbound-cert client certificate. */
static enum stls_err client_ctx_new(SSL_CTX **out, const struct stls_config *cfg, char *err, size_t err_len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_strict_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
						 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
						 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") ||
	    !SSL_CTX_set1_curves_list(ctx, "X25519:P-256")) {
		snprintf(err, err_len, "cannot set up outbound TLS");
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return STLS_ERR_CONFIG;
	}
	/* Verification is judged after the handshake, by the destination's policy. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (cfg->ca_file[0] && !SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL)) {
		snprintf(err, err_len, "--ca-file %s: cannot be read as PEM certificates", cfg->ca_file);
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return STLS_ERR_CONFIG;
	}
	if (cfg->outbound_cert_path[0]) {
		struct stls_cert_bundle b;
		struct stls_cert_report report;
		if (stls_cert_load_pem(&b, cfg->outbound_cert_path, cfg->outbound_key_path, NULL, err, err_len) !=
		    STLS_OK) {
			SSL_CTX_free(ctx);
			return STLS_ERR_CONFIG;
		}
		if (stls_cert_check(&b, &report) != STLS_OK || !SSL_CTX_use_certificate(ctx, b.leaf) ||
		    !SSL_CTX_use_PrivateKey(ctx, b.key) || !SSL_CTX_set1_chain(ctx, b.chain)) {
			snprintf(err, err_len, "--outbound-cert %s: %s", cfg->outbound_cert_path,
				 report.num ? report.findings[0].text : "cannot be used");
			stls_cert_bundle_cleanup(&b);
			SSL_CTX_free(ctx);
			ERR_clear_error();
			return STLS_ERR_CONFIG;
		}
		stls_cert_bundle_cleanup(&b);
	}
	stls_tls_client_ctx_setup(ctx);
	*out = ctx;
	return STLS_OK;
}

enum stls_err stls_outbound_conf_new(struct stls_outbound_conf **out, const struct stls_config *cfg, char *err,
				     size_t err_len)
{
	struct stls_outbound_conf *c = stls_calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, err_len, "out of memory");
		return STLS_ERR_NOMEM;
	}
	c->refs = 1;
	enum stls_err ret = cfg->dest_policy_path[0]
				    ? stls_dest_policy_load(&c->policy, cfg->dest_policy_path, err, err_len)
				    : stls_dest_policy_default(&c->policy);
	if (ret == STLS_OK)
		ret = cfg->routes_path[0] ? stls_routes_load(&c->routes, cfg->routes_path, err, err_len)
					  : stls_routes_default(&c->routes);
	if (ret == STLS_OK)
		ret = client_ctx_new(&c->ctx, cfg, err, err_len);
	if (ret != STLS_OK) {
		stls_outbound_conf_put(c);
		return ret;
	}
	*out = c;
	return STLS_OK;
}

void stls_outbound_conf_get(struct stls_outbound_conf *c)
{
	if (c)
		c->refs++;
}

void stls_outbound_conf_put(struct stls_outbound_conf *c)
{
	if (!c || --c->refs > 0)
		return;
	stls_dest_policy_free(&c->policy);
	stls_routes_free(&c->routes);
	SSL_CTX_free(c->ctx);
	stls_free_ptr(&c);
}

/* ---- handlers ------------------------------------------------------------------------------ */

/* What the legacy MTA is offered: what the relay carries to any destination. 8BITMIME and SIZE
 * are passed on when the destination has them and dropped otherwise (as MTAs do); nothing that a
 * destination might lack and that cannot be dropped (SMTPUTF8, DSN, CHUNKING) is offered. */
static const struct stls_ehlo_caps out_caps = {
	.mask = (1u << STLS_EHLO_PIPELINING) | (1u << STLS_EHLO_SIZE) | (1u << STLS_EHLO_8BITMIME) |
		(1u << STLS_EHLO_ENHANCEDSTATUSCODES),
};

static void transaction_drop(struct stls_relay *r)
{
	stls_relay_transaction_reset(r);
	stls_buf_cleanup(&r->mail_args);
	if (r->hop) {
		if (stls_conn_is_open(&r->base, STLS_SIDE_SERVER)) {
			stls_conn_write(&r->base, STLS_SIDE_SERVER, STLS_SPAN_LIT("QUIT\r\n"), 65536) == STLS_OK
				? stls_conn_close(&r->base, STLS_SIDE_SERVER, true)
				: stls_conn_close(&r->base, STLS_SIDE_SERVER, false);
			stls_log_info("DCID %llu close", (unsigned long long)r->hop->dcid);
		}
		stls_free_ptr(&r->hop);
	}
	r->be_state = STLS_BE_NONE;
}

static enum stls_relay_result h_ehlo(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	bool ehlo = cmd->verb == STLS_SMTP_VERB_EHLO;
	if (!stls_relay_save_helo(r, cmd->args))
		return stls_relay_client_error(r, ehlo ? "501 5.5.4 Syntax: EHLO hostname\r\n"
						       : "501 5.5.4 Syntax: HELO hostname\r\n");
	r->esmtp = ehlo;
	transaction_drop(r);
	const struct stls_config *cfg = r->base.snap->cfg;
	if (!ehlo) {
		stls_relay_replyf(r, "250 %s\r\n", cfg->hostname);
		return STLS_RELAY_OK;
	}
	if (stls_ehlo_build(&r->base.conn[STLS_SIDE_CLIENT].out, cfg->relay_buffer, &out_caps, cfg->hostname,
			    stls_span_cstr(r->helo), false) != STLS_OK) {
		stls_session_end(&r->base, false);
		return STLS_RELAY_END;
	}
	stls_session_mark(&r->base);
	return STLS_RELAY_OK;
}

/* MAIL is accepted here and kept: the destination is known only at the first RCPT, and it gets
 * the MAIL then. If it refuses, the recipients get its reply. */
static enum stls_relay_result h_mail(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	struct stls_span addr;
	if (stls_smtp_parse_path(&addr, cmd->args, STLS_SPAN_LIT("FROM:")) != STLS_OK)
		return stls_relay_client_error(r, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	transaction_drop(r);
	if (stls_buf_append(&r->mail_args, cmd->args, 1024) != STLS_OK) {
		stls_relay_reply(r, "452 4.3.1 Out of memory, try again later\r\n");
		return STLS_RELAY_FAIL;
	}
	char text[300];
	r->mid = stls_worker_next_mid(r->base.worker);
	stls_log_info("Start MID %llu ICID %llu", (unsigned long long)r->mid, (unsigned long long)r->base.id);
	stls_log_info("MID %llu From: <%s>", (unsigned long long)r->mid, stls_span_printable(text, sizeof(text), addr));
	stls_relay_reply(r, "250 2.1.0 Ok\r\n");
	return STLS_RELAY_OK;
}

/* The recipient's domain, its route and policy, and the identity of the next hop they make. */
struct hop_choice {
	struct stls_span domain;
	const struct stls_route *route;
	enum stls_dest_mode mode;
	char key[400];
};

static bool choose(struct stls_relay *r, const struct stls_smtp_cmd *cmd, struct hop_choice *out)
{
	struct stls_span addr, matched;
	if (stls_smtp_parse_path(&addr, cmd->args, STLS_SPAN_LIT("TO:")) != STLS_OK)
		return false;
	const uint8_t *at = NULL;
	for (size_t i = addr.len; i > 0; i--) {
		if (addr.ptr[i - 1] == '@') {
			at = addr.ptr + i - 1;
			break;
		}
	}
	if (!at || at + 1 == addr.ptr + addr.len)
		return false;
	out->domain = stls_span_from(addr, (size_t)(at - addr.ptr) + 1);
	const struct stls_outbound_conf *conf = r->base.snap->out;
	stls_routes_lookup(conf->routes, out->domain, &out->route, &matched);
	stls_dest_policy_lookup(conf->policy, out->domain, &out->mode, &matched);
	/* Two recipients share a connection when their route and their policy agree. For MX routes
	 * the domain decides the MX hosts, so it is part of the identity. */
	char domain[256];
	stls_span_printable(domain, sizeof(domain), out->domain);
	for (char *p = domain; *p; p++)
		*p = (char)stls_ascii_lower((uint8_t)*p);
	if (out->route->kind == STLS_ROUTE_MX)
		snprintf(out->key, sizeof(out->key), "mx:%s|%s", domain, stls_dest_mode_str(out->mode));
	else
		snprintf(out->key, sizeof(out->key), "%s:%u|%s", out->route->host, out->route->port,
			 stls_dest_mode_str(out->mode));
	return true;
}

static void dns_done(struct stls_session *s, enum stls_dns_status status, const char *why,
		     const struct stls_dns_target *targets, unsigned num)
{
	struct stls_relay *r = (struct stls_relay *)s;
	struct stls_next_hop *hop = r->hop;
	if (!hop || r->be_state != STLS_BE_RESOLVING)
		return;
	if (status != STLS_DNS_OK) {
		char text[400];
		snprintf(text, sizeof(text), "%s: %s", hop->domain, why);
		static const char *const replies[STLS_DNS__COUNT] = {
			[STLS_DNS_TEMPFAIL] =
				"451 4.4.3 The recipient's domain could not be resolved, try again later\r\n",
			[STLS_DNS_NODOMAIN] = "550 5.1.2 The recipient's domain does not exist\r\n",
			/* RFC 7505 3.3. */
			[STLS_DNS_NOMAIL] = "556 5.1.10 The recipient's domain accepts no mail (null MX)\r\n",
		};
		r->kind->server_failed(r, text, replies[status]);
		stls_relay_update(r);
		return;
	}
	memcpy(hop->targets, targets, sizeof(*targets) * num);
	hop->num_targets = num;
	hop->cur = 0;
	r->be_state = STLS_BE_NONE;
	/* A connection of a previous transaction may still be closing (stls_relay_backend_released). */
	if (!stls_conn_is_open(s, STLS_SIDE_SERVER))
		stls_hop_connect(r);
	stls_relay_update(r);
}

/* The first RCPT: it picks the next hop and opens it; the command waits (HOLD) until the
 * destination took the MAIL, then it is relayed like the others. */
static enum stls_relay_result h_rcpt_open(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	struct hop_choice c;
	if (!choose(r, cmd, &c))
		return stls_relay_client_error(r, "501 5.1.3 Syntax: RCPT TO:<user@domain>\r\n");
	if (r->hop && r->hop->failed) {
		/* The transaction's destination already failed: same hop, same answer. No recipient
		 * was accepted for it (it fails only while being set up), so another hop may take its
		 * place. */
		if (strcmp(c.key, r->hop->key) == 0) {
			stls_relay_reply(r, r->hop->fail_reply);
			return STLS_RELAY_FAIL;
		}
		stls_free_ptr(&r->hop);
	}
	struct stls_next_hop *hop = stls_calloc(1, sizeof(*hop));
	if (!hop) {
		stls_relay_reply(r, "452 4.3.1 Out of memory, try again later\r\n");
		return STLS_RELAY_FAIL;
	}
	r->hop = hop;
	stls_span_printable(hop->domain, sizeof(hop->domain), c.domain);
	snprintf(hop->key, sizeof(hop->key), "%s", c.key);
	hop->mode = (uint8_t)c.mode;
	if (!r->pend) {
		r->pend_cap = r->base.snap->cfg->max_pipeline + 4;
		r->pend = stls_calloc(r->pend_cap, sizeof(*r->pend));
	}
	r->be_state = STLS_BE_RESOLVING;
	if (!r->pend || stls_dns_next_hop(&r->base, c.route, c.domain, dns_done) != STLS_OK) {
		r->state = STLS_RELAY_CONNECTING; /* so the failure is the transaction's, not the session's */
		r->kind->server_failed(r, "out of memory", "451 4.3.1 Out of memory, try again later\r\n");
		return STLS_RELAY_FAIL;
	}
	/* Held: read again once the destination took the MAIL, or failed (then it gets the answer). */
	return STLS_RELAY_HOLD;
}

/* Later RCPTs: relayed to the transaction's destination if theirs is the same. */
static enum stls_relay_result h_rcpt_relay(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	struct hop_choice c;
	if (!choose(r, cmd, &c))
		return stls_relay_client_error(r, "501 5.1.3 Syntax: RCPT TO:<user@domain>\r\n");
	if (strcmp(c.key, r->hop->key) != 0) {
		stls_relay_reply(r, "452 4.5.3 Too many recipients: send this one in another transaction\r\n");
		return STLS_RELAY_FAIL;
	}
	return stls_relay_fwd_cmd(r, cmd);
}

static enum stls_relay_result h_rset_local(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	transaction_drop(r);
	stls_relay_reply(r, "250 2.0.0 Ok\r\n");
	return STLS_RELAY_OK;
}

static enum stls_relay_result h_no_rcpt(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	return stls_relay_client_error(r, "554 5.5.1 Error: no valid recipients\r\n");
}

static enum stls_relay_result h_nested_mail(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	return stls_relay_client_error(r, "503 5.5.1 Error: nested MAIL command\r\n");
}

static enum stls_relay_result h_in_transaction(struct stls_relay *r, const struct stls_smtp_cmd *cmd)
{
	(void)cmd;
	return stls_relay_client_error(r, "503 5.5.1 Error: a transaction is in progress; RSET first\r\n");
}

/* The outbound table. The legacy MTA is not offered STARTTLS (the listener is for its own network),
 * nor CHUNKING. */
static const struct stls_relay_rule rules[STLS_RELAY__COUNT][STLS_SMTP_VERB__COUNT] = {
	[STLS_RELAY_GREET] = {
		STLS_RELAY_ANYWHERE(STLS_RELAY_GREET, stls_relay_h_not_impl, STLS_RELAY_GREET),
		[STLS_SMTP_VERB_QUIT] = { stls_relay_h_quit, STLS_RELAY_QUIT },
		[STLS_SMTP_VERB_EHLO] = { h_ehlo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_HELO] = { h_ehlo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_RSET] = { stls_relay_h_rset, STLS_RELAY_GREET },
		[STLS_SMTP_VERB_MAIL] = { stls_relay_h_need_ehlo, STLS_RELAY_GREET },
		[STLS_SMTP_VERB_RCPT] = { stls_relay_h_need_ehlo, STLS_RELAY_GREET },
		[STLS_SMTP_VERB_DATA] = { stls_relay_h_need_ehlo, STLS_RELAY_GREET },
		[STLS_SMTP_VERB_BDAT] = { stls_relay_h_not_impl, STLS_RELAY_GREET },
	},
	[STLS_RELAY_READY] = {
		STLS_RELAY_ANYWHERE(STLS_RELAY_READY, stls_relay_h_not_impl, STLS_RELAY_READY),
		[STLS_SMTP_VERB_QUIT] = { stls_relay_h_quit, STLS_RELAY_QUIT },
		[STLS_SMTP_VERB_EHLO] = { h_ehlo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_HELO] = { h_ehlo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_RSET] = { h_rset_local, STLS_RELAY_READY },
		[STLS_SMTP_VERB_MAIL] = { h_mail, STLS_RELAY_MAILED },
		[STLS_SMTP_VERB_RCPT] = { stls_relay_h_need_mail, STLS_RELAY_READY },
		[STLS_SMTP_VERB_DATA] = { stls_relay_h_need_mail, STLS_RELAY_READY },
		[STLS_SMTP_VERB_BDAT] = { stls_relay_h_not_impl, STLS_RELAY_READY },
	},
	[STLS_RELAY_MAILED] = {
		STLS_RELAY_ANYWHERE(STLS_RELAY_MAILED, stls_relay_h_not_impl, STLS_RELAY_MAILED),
		[STLS_SMTP_VERB_QUIT] = { stls_relay_h_quit, STLS_RELAY_QUIT },
		[STLS_SMTP_VERB_EHLO] = { h_ehlo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_HELO] = { h_ehlo, STLS_RELAY_READY },
		[STLS_SMTP_VERB_RSET] = { h_rset_local, STLS_RELAY_READY },
		[STLS_SMTP_VERB_MAIL] = { h_nested_mail, STLS_RELAY_MAILED },
		[STLS_SMTP_VERB_RCPT] = { h_rcpt_open, STLS_RELAY_CONNECTING },
		[STLS_SMTP_VERB_DATA] = { h_no_rcpt, STLS_RELAY_MAILED },
		[STLS_SMTP_VERB_BDAT] = { stls_relay_h_not_impl, STLS_RELAY_MAILED },
	},
	[STLS_RELAY_RELAY] = {
		STLS_RELAY_ANYWHERE(STLS_RELAY_RELAY, stls_relay_h_not_impl, STLS_RELAY_RELAY),
		[STLS_SMTP_VERB_QUIT] = { stls_relay_fwd_quit, STLS_RELAY_QUIT },
		[STLS_SMTP_VERB_EHLO] = { h_in_transaction, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_HELO] = { h_in_transaction, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_RSET] = { stls_relay_fwd_cmd, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_MAIL] = { h_nested_mail, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_RCPT] = { h_rcpt_relay, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_DATA] = { stls_relay_fwd_data, STLS_RELAY_RELAY },
		[STLS_SMTP_VERB_BDAT] = { stls_relay_h_not_impl, STLS_RELAY_RELAY },
	},
};

bool stls_out_table_lookup(enum stls_relay_state state, enum stls_smtp_verb verb, enum stls_relay_state *out_next)
{
	if ((unsigned)state >= STLS_RELAY__COUNT || (unsigned)verb >= STLS_SMTP_VERB__COUNT || !rules[state][verb].fn)
		return false;
	*out_next = rules[state][verb].next;
	return true;
}

/* ---- the outbound kind ------------------------------------------------------------------- */

/* Never an open relay: only --outbound-allow networks get a greeting. */
static void out_greet(struct stls_relay *r)
{
	const struct stls_config *cfg = r->base.snap->cfg;
	for (unsigned i = 0; i < cfg->num_outbound_allow; i++) {
		if (stls_net_cidr_match(&cfg->outbound_allow[i], &r->base.peer)) {
			stls_relay_replyf(r, "220 %s ESMTP starttlsd outbound relay\r\n", cfg->hostname);
			return;
		}
	}
	stls_log_warn("ICID %llu refused on the outbound listener: %s is not in --outbound-allow",
		      (unsigned long long)r->base.id, r->base.peer_ip);
	stls_relay_write(r,
			 STLS_SPAN_LIT("554 5.7.1 Relaying denied: this address may not use the outbound relay\r\n"));
	stls_relay_end(r, true);
}

static bool out_offer_starttls(const struct stls_relay *r)
{
	(void)r;
	return false;
}

static void out_client_tls(struct stls_relay *r, enum stls_err res)
{
	(void)res;
	stls_relay_end(r, false); /* never started on this listener */
}

/* The destination could not be used. During set-up the transaction survives: the recipient that
 * chose it (and any other for it) gets reply, the legacy MTA keeps the mail. Once relaying, the
 * session ends with reply, as inbound. */
static void out_server_failed(struct stls_relay *r, const char *why, const char *reply)
{
	struct stls_next_hop *hop = r->hop;
	if (!hop || r->state != STLS_RELAY_CONNECTING) {
		stls_relay_server_failed_end(r, why, reply);
		return;
	}
	stls_log_info("MID %llu not delivered to %s: %s", (unsigned long long)r->mid, hop->domain, why);
	hop->failed = true;
	snprintf(hop->fail_reply, sizeof(hop->fail_reply), "%s", reply);
	if (stls_conn_is_open(&r->base, STLS_SIDE_SERVER)) {
		stls_conn_close(&r->base, STLS_SIDE_SERVER, false);
		stls_log_info("DCID %llu close", (unsigned long long)hop->dcid);
	}
	r->be_state = STLS_BE_NONE;
	r->state = STLS_RELAY_MAILED;
	/* The held RCPT is read again and gets the hop's answer. */
	stls_relay_resume_client(r);
}

/* One destination connection per transaction: the next one may go elsewhere. */
static void out_transaction_done(struct stls_relay *r)
{
	transaction_drop(r);
	r->state = STLS_RELAY_READY;
}

static void rid_list(const struct stls_next_hop *hop, char *out, size_t out_len)
{
	size_t n = 0;
	out[0] = '\0';
	for (unsigned k = 0; k < hop->num_rcpts && k < 64 && n + 8 < out_len; k++)
		if (hop->accepted_rids >> k & 1)
			n += (size_t)snprintf(out + n, out_len - n, "%s%u", n ? ", " : "", k);
}

static void out_message_started(struct stls_relay *r)
{
	char rids[256];
	rid_list(r->hop, rids, sizeof(rids));
	stls_log_info("Delivery start DCID %llu MID %llu to RID [%s]", (unsigned long long)r->hop->dcid,
		      (unsigned long long)r->mid, rids);
}

static void out_message_done(struct stls_relay *r, const struct stls_smtp_reply *reply)
{
	char rids[256], line[200];
	const uint8_t *cr = memchr(reply->text.ptr, '\r', reply->text.len);
	stls_span_printable(line, sizeof(line), stls_span_head(reply->text, cr ? (size_t)(cr - reply->text.ptr) : 0));
	rid_list(r->hop, rids, sizeof(rids));
	if (stls_smtp_reply_class(reply->code) == 2)
		stls_log_info("Message done DCID %llu MID %llu to RID [%s] (%s%s)", (unsigned long long)r->hop->dcid,
			      (unsigned long long)r->mid, rids, r->hop->tls ? "TLS" : "clear text",
			      r->hop->verified ? ", verified" : "");
	else
		stls_log_info("DCID %llu MID %llu refused by the destination: %s", (unsigned long long)r->hop->dcid,
			      (unsigned long long)r->mid, line);
}

static const struct stls_relay_kind outbound_kind = {
	.name = "outbound",
	.log_suffix = " (outbound listener)",
	.rules = rules,
	.open = out_greet,
	.client_tls = out_client_tls,
	.offer_starttls = out_offer_starttls,
	.server_failed = out_server_failed,
	.transaction_done = out_transaction_done,
	.message_started = out_message_started,
	.message_done = out_message_done,
};

static void out_open(struct stls_session *s)
{
	struct stls_relay *r = (struct stls_relay *)s;
	r->kind = &outbound_kind;
	stls_relay_open(r);
}

const struct stls_session_ops stls_outbound_ops = STLS_RELAY_OPS("outbound", out_open);
