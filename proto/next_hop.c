/* The outbound relay's side toward a destination MTA: connecting to its addresses in order,
 * EHLO (HELO when EHLO is refused), STARTTLS and the certificate check as the destination's
 * policy says (spec S15-S20), then the transaction's MAIL. Whatever stops it is reported through
 * the relay kind's server_failed with the S22 cause, and a policy that required TLS raises the
 * S21 alert. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/net.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "proto/alert.h"
#include "proto/dest_policy.h"
#include "proto/ehlo.h"
#include "proto/next_hop.h"
#include "proto/outbound.h"
#include "proto/relay_int.h"
#include "tls/conn.h"

static void first_line(char *out, size_t out_len, struct stls_span text)
{
	const uint8_t *cr = memchr(text.ptr, '\r', text.len);
	stls_span_printable(out, out_len, stls_span_head(text, cr ? (size_t)(cr - text.ptr) : text.len));
}

/* Stops using the hop for this transaction: logs, alerts when the policy required TLS and TLS was
 * the reason, and lets the direction answer the client with reply. */
static void hop_fail(struct stls_relay *r, bool tls_cause, const char *why, const char *reply)
{
	struct stls_next_hop *hop = r->hop;
	hop->tls_failure = tls_cause;
	if (tls_cause) {
		stls_log_info("DCID %llu IP %s TLS failed: %s", (unsigned long long)hop->dcid, hop->ip, why);
		if (stls_dest_mode_requires_tls((enum stls_dest_mode)hop->mode)) {
			stls_log_warn("TLS was required for %s (policy %s) but could not be used with %s [%s]: %s",
				      hop->domain, stls_dest_mode_str((enum stls_dest_mode)hop->mode),
				      hop->targets[hop->cur].name, hop->ip, why);
			stls_alert_raise(hop->domain, hop->targets[hop->cur].name, hop->ip, why);
		}
	}
	char text[600];
	snprintf(text, sizeof(text), "%s %s", hop->domain, why);
	r->kind->server_failed(r, text, reply);
}

void stls_hop_connect(struct stls_relay *r)
{
	struct stls_session *s = &r->base;
	struct stls_next_hop *hop = r->hop;
	const struct stls_dns_target *t = &hop->targets[hop->cur];
	hop->port = stls_net_format(&t->addr, hop->ip, sizeof(hop->ip));
	hop->dcid = stls_worker_next_id(s->worker);
	hop->esmtp = hop->starttls = hop->has_8bitmime = hop->has_size = hop->tls = hop->verified = false;
	stls_smtp_reply_init(&r->rp, s->snap->cfg->max_reply_line, 128);
	stls_log_info("New SMTP DCID %llu interface %s address %s port %u (%s for %s)", (unsigned long long)hop->dcid,
		      s->snap->cfg->hostname, hop->ip, hop->port, t->name, hop->domain);
	if (stls_conn_connect(s, STLS_SIDE_SERVER, (const struct sockaddr *)&t->addr, t->addr_len) != STLS_OK) {
		hop_fail(r, false, "cannot create a socket", "451 4.3.0 Temporary local failure, try again later\r\n");
		return;
	}
	r->be_state = STLS_BE_CONNECTING;
}

/* The next address, if there is one: RFC 5321 5.1 asks to try the MX hosts in order. */
static bool try_next_target(struct stls_relay *r, const char *why)
{
	struct stls_next_hop *hop = r->hop;
	stls_log_info("DCID %llu %s [%s]: %s", (unsigned long long)hop->dcid, hop->targets[hop->cur].name, hop->ip,
		      why);
	if (hop->cur + 1 >= hop->num_targets)
		return false;
	hop->cur++;
	/* The connection must be released before the next one opens (stls_relay_backend_released). */
	stls_conn_close(&r->base, STLS_SIDE_SERVER, false);
	r->be_state = STLS_BE_NONE;
	return true;
}

void stls_hop_connected(struct stls_relay *r, int res)
{
	if (res < 0) {
		char why[200];
		snprintf(why, sizeof(why), "connect: %s", strerror(-res));
		if (!try_next_target(r, why)) {
			snprintf(why, sizeof(why), "cannot be reached: %s", strerror(-res));
			hop_fail(r, false, why, "451 4.4.1 No answer from the destination, try again later\r\n");
		}
		return;
	}
	r->be_state = STLS_BE_GREETING;
	stls_relay_update(r);
}

static void hop_send(struct stls_relay *r, const char *text)
{
	if (stls_conn_write(&r->base, STLS_SIDE_SERVER, stls_span_cstr(text), 65536) != STLS_OK)
		hop_fail(r, false, "cannot queue a command", "451 4.3.0 Temporary local failure, try again later\r\n");
}

static void send_ehlo(struct stls_relay *r, const char *verb, uint8_t next)
{
	char line[300];
	snprintf(line, sizeof(line), "%s %s\r\n", verb, r->base.snap->cfg->hostname);
	hop_send(r, line);
	r->be_state = next;
}

struct ehlo_scan {
	struct stls_next_hop *hop;
	unsigned line;
};

static void scan_ehlo_line(void *ctx, struct stls_span text)
{
	struct ehlo_scan *e = ctx;
	if (e->line++ == 0)
		return;
	struct stls_span word;
	(void)stls_span_next_word(stls_span_trim(text), &word);
	if (stls_span_eq_nocase(word, STLS_SPAN_LIT("STARTTLS")))
		e->hop->starttls = true;
	else if (stls_span_eq_nocase(word, STLS_SPAN_LIT("8BITMIME")))
		e->hop->has_8bitmime = true;
	else if (stls_span_eq_nocase(word, STLS_SPAN_LIT("SIZE")))
		e->hop->has_size = true;
}

/* The transaction's MAIL, with the parameters the destination understands: SIZE and BODY when it
 * offered them, nothing else (the proxy offered the legacy MTA no other extension). */
static void send_mail(struct stls_relay *r)
{
	struct stls_next_hop *hop = r->hop;
	struct stls_span args = stls_buf_span(&r->mail_args);
	struct stls_span path;
	if (stls_smtp_parse_path(&path, args, STLS_SPAN_LIT("FROM:")) != STLS_OK) {
		hop_fail(r, false, "bad MAIL arguments", "451 4.3.0 Temporary local failure, try again later\r\n");
		return;
	}
	char line[1024];
	char addr[600];
	stls_span_printable(addr, sizeof(addr), path);
	int n = snprintf(line, sizeof(line), "MAIL FROM:<%s>", addr);
	const uint8_t *close = memchr(args.ptr, '>', args.len);
	struct stls_span params =
		stls_span_trim(stls_span_from(args, close ? (size_t)(close - args.ptr) + 1 : args.len));
	while (params.len > 0 && n > 0 && (size_t)n < sizeof(line) - 64) {
		struct stls_span word;
		params = stls_span_next_word(params, &word);
		bool keep = (hop->has_size && stls_span_starts_nocase(word, STLS_SPAN_LIT("SIZE="))) ||
			    (hop->has_8bitmime && stls_span_starts_nocase(word, STLS_SPAN_LIT("BODY=")));
		if (keep && word.len < 64) {
			char param[64];
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s",
				      stls_span_printable(param, sizeof(param), word));
		}
	}
	snprintf(line + n, sizeof(line) - (size_t)n, "\r\n");
	hop_send(r, line);
	r->be_state = STLS_BE_MAIL;
}

static void after_tls_decision(struct stls_relay *r)
{
	send_mail(r);
}

static void start_tls(struct stls_relay *r)
{
	struct stls_session *s = &r->base;
	struct stls_next_hop *hop = r->hop;
	const char *name = hop->targets[hop->cur].name;
	r->be_state = STLS_BE_HANDSHAKE;
	/* SNI is the MX host name (spec S19); a literal address sends none. */
	struct in6_addr scratch;
	bool literal = inet_pton(AF_INET, name, &scratch) == 1 || inet_pton(AF_INET6, name, &scratch) == 1;
	if (stls_conn_start_tls_client(s, STLS_SIDE_SERVER, s->snap->out->ctx, NULL, literal ? NULL : name) !=
		    STLS_OK ||
	    (stls_dest_mode_verifies((enum stls_dest_mode)hop->mode) &&
	     stls_tls_conn_set_verify_name(s->conn[STLS_SIDE_SERVER].tls, name) != STLS_OK)) {
		hop_fail(r, true, "cannot start TLS", "451 4.7.5 TLS could not be started, try again later\r\n");
	}
}

void stls_hop_setup_reply(struct stls_relay *r, const struct stls_smtp_reply *reply, bool bytes_follow)
{
	struct stls_next_hop *hop = r->hop;
	enum stls_dest_mode mode = (enum stls_dest_mode)hop->mode;
	bool required = stls_dest_mode_requires_tls(mode);
	char line[200], why[300];
	first_line(line, sizeof(line), reply->text);
	switch ((enum stls_be_state)r->be_state) {
	case STLS_BE_GREETING:
		if (reply->code != 220) {
			snprintf(why, sizeof(why), "greeting: %s", line);
			if (!try_next_target(r, why))
				hop_fail(r, false, why,
					 "451 4.4.0 The destination refused the connection, try again later\r\n");
			return;
		}
		send_ehlo(r, "EHLO", STLS_BE_EHLO);
		return;
	case STLS_BE_EHLO:
		if (reply->code != 250) {
			/* S22 cause 1: it does not speak ESMTP, so it cannot offer STARTTLS. */
			if (required) {
				hop_fail(r, true, "the destination does not speak ESMTP (EHLO refused)",
					 "451 4.7.4 TLS is required for this destination, which does not speak "
					 "ESMTP\r\n");
				return;
			}
			send_ehlo(r, "HELO", STLS_BE_HELO);
			return;
		}
		hop->esmtp = true;
		stls_smtp_reply_each_line(*reply, scan_ehlo_line, &(struct ehlo_scan){ .hop = hop });
		if (mode == STLS_DEST_NONE) {
			after_tls_decision(r);
		} else if (hop->starttls) {
			hop_send(r, "STARTTLS\r\n");
			r->be_state = STLS_BE_STARTTLS;
		} else if (required) {
			/* S22 cause 2. */
			hop_fail(r, true, "STARTTLS not offered in the EHLO reply",
				 "451 4.7.4 TLS is required for this destination, which does not offer STARTTLS\r\n");
		} else {
			after_tls_decision(r);
		}
		return;
	case STLS_BE_HELO:
		if (reply->code != 250) {
			snprintf(why, sizeof(why), "HELO refused: %s", line);
			hop_fail(r, false, why, "451 4.4.0 The destination refused HELO, try again later\r\n");
			return;
		}
		after_tls_decision(r);
		return;
	case STLS_BE_STARTTLS:
		if (reply->code == 220 && reply->num_lines == 1 && !bytes_follow) {
			start_tls(r);
			return;
		}
		if (reply->code == 220) {
			/* Bytes after the 220 before the handshake: someone injects responses. After a 220
			 * there is no way back to clear text (spec S16). */
			hop_fail(r, true,
				 bytes_follow ? "response injection: bytes after the 220 to STARTTLS"
					      : "multi-line 220 to STARTTLS",
				 "451 4.7.5 TLS with the destination failed, try again later\r\n");
			return;
		}
		/* S22 cause 3: STARTTLS listed but refused. Before a 220, preferred falls back. */
		if (required) {
			snprintf(why, sizeof(why), "STARTTLS unexpected response: %s", line);
			hop_fail(r, true, why,
				 "451 4.7.4 TLS is required for this destination, which refused STARTTLS\r\n");
			return;
		}
		stls_log_info("DCID %llu STARTTLS refused (%s): going on in clear text as the policy %s allows",
			      (unsigned long long)hop->dcid, line, stls_dest_mode_str(mode));
		after_tls_decision(r);
		return;
	case STLS_BE_EHLO2:
		if (reply->code != 250) {
			snprintf(why, sizeof(why), "EHLO inside TLS refused: %s", line);
			hop_fail(r, false, why, "451 4.4.0 The destination refused EHLO, try again later\r\n");
			return;
		}
		/* RFC 3207 4.2: only what it says inside TLS counts. */
		hop->has_8bitmime = hop->has_size = hop->starttls = false;
		stls_smtp_reply_each_line(*reply, scan_ehlo_line, &(struct ehlo_scan){ .hop = hop });
		send_mail(r);
		return;
	case STLS_BE_MAIL:
		if (stls_smtp_reply_class(reply->code) != 2) {
			/* The destination's own answer to the sender goes back as it is (4xx or 5xx). */
			snprintf(why, sizeof(why), "MAIL refused: %s", line);
			char text[300];
			snprintf(text, sizeof(text), "%s\r\n", line);
			hop_fail(r, false, why, text);
			return;
		}
		r->be_state = STLS_BE_READY;
		r->state = STLS_RELAY_RELAY;
		stls_relay_resume_client(r);
		return;
	default:
		snprintf(why, sizeof(why), "unexpected reply: %s", line);
		hop_fail(r, false, why, "451 4.3.0 The destination's reply made no sense, try again later\r\n");
		return;
	}
}

void stls_hop_tls(struct stls_relay *r, enum stls_err res)
{
	struct stls_session *s = &r->base;
	struct stls_next_hop *hop = r->hop;
	enum stls_dest_mode mode = (enum stls_dest_mode)hop->mode;
	struct stls_tls_conn *tls = s->conn[STLS_SIDE_SERVER].tls;
	if (res != STLS_OK) {
		char why[200];
		snprintf(why, sizeof(why), "handshake: %s", stls_conn_tls_error(s, STLS_SIDE_SERVER));
		hop_fail(r, true, why, "451 4.7.5 TLS with the destination failed, try again later\r\n");
		return;
	}
	const char *verify_why = "";
	hop->tls = true;
	hop->verified = stls_dest_mode_verifies(mode) && stls_tls_conn_verified(tls, &verify_why);
	stls_log_info("DCID %llu TLS success protocol %s cipher %s verified %s", (unsigned long long)hop->dcid,
		      stls_tls_conn_version(tls), stls_tls_conn_cipher(tls), hop->verified ? "yes" : "no");
	if (stls_dest_mode_verifies(mode) && !hop->verified) {
		if (mode == STLS_DEST_REQUIRED_VERIFY) {
			char why[300];
			snprintf(why, sizeof(why), "certificate not verified for %s: %s", hop->targets[hop->cur].name,
				 verify_why);
			hop_fail(r, true, why,
				 "451 4.7.5 The destination's certificate could not be verified, try again later\r\n");
			return;
		}
		stls_log_info("DCID %llu certificate not verified (%s): delivering encrypted as %s allows",
			      (unsigned long long)hop->dcid, verify_why, stls_dest_mode_str(mode));
	}
	send_ehlo(r, "EHLO", STLS_BE_EHLO2);
	stls_relay_update(r);
}

void stls_hop_lost(struct stls_relay *r, const char *why)
{
	struct stls_next_hop *hop = r->hop;
	if (r->be_state < STLS_BE_READY && r->be_state != STLS_BE_HANDSHAKE && try_next_target(r, why))
		return;
	bool tls = r->be_state == STLS_BE_HANDSHAKE;
	char text[300];
	snprintf(text, sizeof(text), "connection %s", why);
	(void)hop;
	hop_fail(r, tls, text, "451 4.4.2 The destination's connection was lost, try again later\r\n");
}
