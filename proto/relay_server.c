/* The backend side of an inbound session: opening the backend connection, relaying commands and
 * message bytes, and matching each backend reply to the command that asked for it. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "proto/ehlo.h"
#include "proto/next_hop.h"
#include "proto/proxy_proto.h"
#include "proto/relay_int.h"
#include "tls/conn.h"

/* How much may wait toward the backend: the pause rule keeps it near relay_buffer, plus what one
 * pass over the client's buffered input can add. */
static size_t relay_limit(const struct stls_config *cfg)
{
	return (size_t)cfg->relay_buffer + (size_t)cfg->recv_buffer_size * 4 + cfg->max_command_line;
}

static void log_line(char *out, size_t out_len, struct stls_span text)
{
	const uint8_t *cr = memchr(text.ptr, '\r', text.len);
	stls_span_printable(out, out_len, stls_span_head(text, cr ? (size_t)(cr - text.ptr) : text.len));
}

/* ---- the queue of replies owed to the client ---------------------------------------------- */

void stls_relay_pend_push(struct stls_relay *in, enum stls_pend_kind kind, const char *local, struct stls_span arg)
{
	if (!in->pend || in->num_pend >= in->pend_cap ||
	    stls_buf_append(&in->pend_args, arg, (size_t)in->pend_cap * 512) != STLS_OK) {
		/* The pause rules keep the queue under --max-pipeline; being here is a bug or no memory. */
		stls_log_crit("ICID %llu reply queue overflow, closing", (unsigned long long)in->base.id);
		stls_session_end(&in->base, false);
		return;
	}
	struct stls_pend *p = &in->pend[(in->pend_head + in->num_pend) % in->pend_cap];
	*p = (struct stls_pend){ .kind = (uint8_t)kind, .arg_len = (uint16_t)arg.len, .local = local };
	in->num_pend++;
}

/* Pops the head; *out_arg points into pend_args and stays valid until the next push or pop. */
static struct stls_pend pend_pop(struct stls_relay *in, struct stls_span *out_arg)
{
	struct stls_pend p = in->pend[in->pend_head];
	in->pend_head = (in->pend_head + 1) % in->pend_cap;
	in->num_pend--;
	struct stls_span args = stls_buf_span(&in->pend_args);
	*out_arg = stls_span_head(args, p.arg_len);
	return p;
}

static void pend_drop_arg(struct stls_relay *in, struct stls_pend p)
{
	stls_buf_consume(&in->pend_args, p.arg_len);
}

void stls_relay_pend_clear(struct stls_relay *in)
{
	in->pend_head = 0;
	in->num_pend = 0;
	stls_buf_cleanup(&in->pend_args);
}

void stls_relay_pend_cleanup(struct stls_relay *in)
{
	stls_relay_pend_clear(in);
	stls_free_ptr(&in->pend);
	in->pend_cap = 0;
}

/* Local replies that reached the head of the queue go out now. */
static void pend_flush_local(struct stls_relay *in)
{
	while (in->num_pend > 0 && in->pend[in->pend_head].kind == STLS_PEND_LOCAL) {
		struct stls_span arg;
		struct stls_pend p = pend_pop(in, &arg);
		pend_drop_arg(in, p);
		stls_relay_write(in, stls_span_cstr(p.local));
	}
}

/* ---- opening the backend ------------------------------------------------------------------ */

void stls_relay_backend_close(struct stls_relay *in)
{
	stls_conn_close(&in->base, STLS_SIDE_SERVER, false);
	in->be_state = STLS_BE_NONE;
}

void stls_relay_backend_fail(struct stls_relay *in, const char *why, const char *reply)
{
	in->kind->server_failed(in, why, reply);
}

void stls_relay_server_failed_end(struct stls_relay *in, const char *why, const char *reply)
{
	stls_log_warn("ICID %llu backend %s %s", (unsigned long long)in->base.id, in->base.snap->cfg->backend.text,
		      why);
	if (in->mid)
		stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
	in->mid = 0;
	stls_relay_backend_close(in);
	stls_relay_pend_clear(in);
	stls_relay_write(in, stls_span_cstr(reply));
	stls_relay_end(in, true);
}

static void backend_start(struct stls_relay *in)
{
	struct stls_snapshot *snap = in->base.snap;
	const struct stls_config *cfg = snap->cfg;
	if (!in->pend) {
		in->pend_cap = cfg->max_pipeline + 4;
		in->pend = stls_calloc(in->pend_cap, sizeof(*in->pend));
		if (!in->pend) {
			stls_relay_backend_fail(in, "cannot be used: out of memory",
						"421 4.3.0 Temporary failure, try again later\r\n");
			return;
		}
	}
	if (snap->backend_addr_len == 0) {
		stls_relay_backend_fail(in, "has no usable address",
					"421 4.3.0 Backend unavailable, try again later\r\n");
		return;
	}
	stls_smtp_reply_init(&in->rp, cfg->max_reply_line, 128);
	if (stls_conn_connect(&in->base, STLS_SIDE_SERVER, (const struct sockaddr *)&snap->backend_addr,
			      snap->backend_addr_len) != STLS_OK) {
		stls_relay_backend_fail(in, "unavailable: cannot create a socket",
					"421 4.3.0 Backend unavailable, try again later\r\n");
		return;
	}
	in->be_state = STLS_BE_CONNECTING;
}

enum stls_relay_result stls_relay_backend_open(struct stls_relay *in)
{
	/* A backend connection dropped a moment ago may still be closing: the connect waits for the
	 * release (in_released). */
	if (!stls_conn_is_open(&in->base, STLS_SIDE_SERVER))
		backend_start(in);
	else
		in->be_state = STLS_BE_NONE;
	return in->base.ending ? STLS_RELAY_END : STLS_RELAY_HOLD;
}

void stls_relay_backend_released(struct stls_relay *in)
{
	if (in->state != STLS_RELAY_CONNECTING || in->be_state != STLS_BE_NONE || in->base.ending)
		return;
	if (!in->hop)
		backend_start(in);
	else if (in->hop->num_targets > 0 && !in->hop->failed)
		stls_hop_connect(in);
}

static void backend_send(struct stls_relay *in, struct stls_span bytes);

/* The PROXY protocol header goes first on the backend connection. The connection opens after the
 * client's handshake, so a v2 header can carry what TLS was used. Returns false when the session
 * failed. */
static bool backend_send_proxy_header(struct stls_relay *in)
{
	const struct stls_session *s = &in->base;
	const struct stls_tls_conn *tls = s->conn[STLS_SIDE_CLIENT].tls;
	uint8_t header[STLS_PROXY_PROTO_MAX_OUT];
	size_t len = 0;
	enum stls_err err;
	if (s->snap->cfg->backend_proxy_protocol == 1) {
		err = stls_proxy_proto_encode_v1((char *)header, sizeof(header), &len,
						 (const struct sockaddr *)&s->peer, (const struct sockaddr *)&s->local);
	} else {
		struct stls_proxy_tls info = { 0 };
		if (tls && in->tls_active) {
			info.version = stls_tls_conn_version(tls);
			info.cipher = stls_tls_conn_cipher(tls);
			info.sni = stls_tls_conn_server_name(tls);
		}
		err = stls_proxy_proto_encode_v2(header, sizeof(header), &len, (const struct sockaddr *)&s->peer,
						 (const struct sockaddr *)&s->local, in->tls_active ? &info : NULL);
	}
	if (err != STLS_OK) {
		stls_relay_backend_fail(in, "cannot be told the client: no PROXY header for this address",
					"421 4.3.0 Backend unavailable, try again later\r\n");
		return false;
	}
	backend_send(in, stls_span_make(header, len));
	return !in->base.ending;
}

void stls_relay_backend_connected(struct stls_relay *in, int res)
{
	if (in->hop) {
		stls_hop_connected(in, res);
		return;
	}
	if (res < 0) {
		char why[160];
		snprintf(why, sizeof(why), "unavailable: %s", strerror(-res));
		stls_relay_backend_fail(in, why, "421 4.3.0 Backend unavailable, try again later\r\n");
		return;
	}
	in->be_state = STLS_BE_GREETING;
	if (in->base.snap->cfg->backend_proxy_protocol && !backend_send_proxy_header(in))
		return;
	stls_relay_update(in);
}

static void backend_send(struct stls_relay *in, struct stls_span bytes)
{
	if (stls_conn_write(&in->base, STLS_SIDE_SERVER, bytes, relay_limit(in->base.snap->cfg)) != STLS_OK)
		stls_relay_backend_fail(in, "cannot keep up",
					"421 4.3.0 Backend connection failed, try again later\r\n");
}

static void backend_send_ehlo(struct stls_relay *in)
{
	char ehlo[sizeof(in->helo) + 8];
	int n = snprintf(ehlo, sizeof(ehlo), "EHLO %s\r\n", in->helo);
	backend_send(in, stls_span_make(ehlo, (size_t)n));
	in->be_state = STLS_BE_EHLO;
}

/* RFC 3461 4: xtext. Octets outside '!'..'~', and '+' and '=', become "+XX". */
static size_t xtext(char *out, size_t out_cap, const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 <= out_cap; p++) {
		if (*p >= '!' && *p <= '~' && *p != '+' && *p != '=') {
			out[n++] = (char)*p;
		} else {
			out[n++] = '+';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = '\0';
	return n;
}

/* Postfix's XCLIENT (www.postfix.org/XCLIENT_README.html): the backend logs, checks and stamps
 * the real client instead of the proxy. The proxy does no reverse lookup, so NAME is
 * [UNAVAILABLE] and the backend shows the address. */
static void backend_send_xclient(struct stls_relay *in)
{
	const struct stls_session *s = &in->base;
	char helo[3 * sizeof(in->helo) + 1], cmd[1024];
	xtext(helo, sizeof(helo), in->helo);
	bool v6 = s->peer.ss_family == AF_INET6 && strchr(s->peer_ip, ':');
	int n = snprintf(cmd, sizeof(cmd), "XCLIENT ADDR=%s%s PORT=%u NAME=[UNAVAILABLE] HELO=%s PROTO=%s\r\n",
			 v6 ? "IPV6:" : "", s->peer_ip, s->peer_port, helo[0] ? helo : "[UNAVAILABLE]",
			 in->esmtp ? "ESMTP" : "SMTP");
	if (n < 0 || (size_t)n >= sizeof(cmd)) {
		stls_relay_backend_fail(in, "cannot be told the client: XCLIENT too long",
					"421 4.3.0 Backend unavailable, try again later\r\n");
		return;
	}
	backend_send(in, stls_span_make(cmd, (size_t)n));
	in->be_state = STLS_BE_XCLIENT;
}

/* The backend's greeting and its reply to our EHLO, before any client command is relayed. */
static void backend_setup_reply(struct stls_relay *in, const struct stls_smtp_reply *reply)
{
	char line[200], why[320];
	if (in->be_state == STLS_BE_GREETING) {
		if (reply->code != 220) {
			log_line(line, sizeof(line), reply->text);
			snprintf(why, sizeof(why), "refused the connection: %s", line);
			stls_relay_backend_fail(in, why, "421 4.3.0 Backend unavailable, try again later\r\n");
			return;
		}
		if (in->base.snap->cfg->backend_xclient) {
			backend_send_xclient(in);
			return;
		}
		backend_send_ehlo(in);
		return;
	}
	if (in->be_state == STLS_BE_XCLIENT) {
		/* Postfix answers an accepted XCLIENT with a new greeting. */
		if (reply->code != 220) {
			log_line(line, sizeof(line), reply->text);
			snprintf(why, sizeof(why),
				 "refused XCLIENT: %s (is the proxy in smtpd_authorized_xclient_hosts?)", line);
			stls_relay_backend_fail(in, why, "421 4.3.0 Backend unavailable, try again later\r\n");
			return;
		}
		backend_send_ehlo(in);
		return;
	}
	if (reply->code != 250) {
		log_line(line, sizeof(line), reply->text);
		snprintf(why, sizeof(why), "refused EHLO: %s", line);
		stls_relay_backend_fail(in, why, "421 4.3.0 Backend unavailable, try again later\r\n");
		return;
	}
	in->be_state = STLS_BE_READY;
	in->state = STLS_RELAY_RELAY;
	/* The command that opened the connection is still in the client's buffer. */
	stls_relay_resume_client(in);
}

void stls_relay_server_tls(struct stls_relay *r, enum stls_err res)
{
	if (r->hop) {
		stls_hop_tls(r, res);
		return;
	}
	stls_relay_backend_fail(r, "TLS on the next hop's connection was not asked for",
				"421 4.3.0 Backend connection failed, try again later\r\n");
}

/* ---- the trace header --------------------------------------------------------------------- */

/* The client's EHLO name as it may appear in a header: letters, digits and the punctuation of
 * domains and address literals; anything else becomes '_', so no peer byte can end the header
 * early or start another. */
static void header_safe(char *out, size_t out_len, const char *in)
{
	size_t n = 0;
	for (; *in && n + 1 < out_len; in++) {
		char c = *in;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			  c == '-' || c == ':' || c == '[' || c == ']';
		out[n++] = ok ? c : '_';
	}
	out[n] = '\0';
}

/* One Received: header (RFC 5321 4.4, RFC 3848 "ESMTPS") telling the backend how the message
 * reached us: the client's name and address, the TLS version and cipher, our MID. */
size_t stls_relay_trace_header(struct stls_relay *in, char *out, size_t out_len)
{
	struct stls_session *s = &in->base;
	struct stls_tls_conn *tls = s->conn[STLS_SIDE_CLIENT].tls;
	char helo[sizeof(in->helo)], date[64];
	header_safe(helo, sizeof(helo), in->helo[0] ? in->helo : "unknown");
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	bool v6 = s->peer.ss_family == AF_INET6 && strchr(s->peer_ip, ':');
	int n = snprintf(out, out_len,
			 "Received: from %s (unknown [%s%s])\r\n"
			 "\tby %s (starttlsd) with ESMTPS (%s %s) id %llu;\r\n"
			 "\t%s\r\n",
			 helo, v6 ? "IPv6:" : "", s->peer_ip, s->snap->cfg->hostname,
			 tls ? stls_tls_conn_version(tls) : "TLS", tls ? stls_tls_conn_cipher(tls) : "unknown",
			 (unsigned long long)in->txn_mid, date);
	return n < 0 ? 0 : (size_t)n < out_len ? (size_t)n : out_len - 1;
}

/* ---- relaying commands -------------------------------------------------------------------- */

enum stls_relay_result stls_relay_fwd_cmd(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	struct stls_span arg = STLS_SPAN_LIT("");
	enum stls_pend_kind kind = STLS_PEND_RSET;
	if (cmd->verb == STLS_SMTP_VERB_MAIL || cmd->verb == STLS_SMTP_VERB_RCPT) {
		kind = cmd->verb == STLS_SMTP_VERB_MAIL ? STLS_PEND_MAIL : STLS_PEND_RCPT;
		struct stls_span prefix = kind == STLS_PEND_MAIL ? STLS_SPAN_LIT("FROM:") : STLS_SPAN_LIT("TO:");
		if (stls_smtp_parse_path(&arg, cmd->args, prefix) != STLS_OK)
			arg = STLS_SPAN_LIT("?"); /* the backend judges the syntax; the log shows '?' */
	}
	backend_send(in, cmd->line);
	stls_relay_pend_push(in, kind, NULL, arg);
	if (kind == STLS_PEND_MAIL && in->num_pend > 0) {
		/* The MID is fixed when MAIL is relayed: a pipelined BDAT may need it for the trace
		 * header before the backend's reply to MAIL arrives. */
		in->txn_mid = stls_worker_next_mid(in->base.worker);
		in->trace_sent = false;
		in->pend[(in->pend_head + in->num_pend - 1) % in->pend_cap].mid = in->txn_mid;
	}
	return in->base.ending ? STLS_RELAY_END : STLS_RELAY_OK;
}

enum stls_relay_result stls_relay_fwd_ehlo(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	struct stls_span name;
	(void)stls_span_next_word(stls_span_trim(cmd->args), &name);
	if (name.len == 0 || name.len >= sizeof(in->helo)) {
		stls_relay_reply(in, "501 5.5.4 Syntax: EHLO hostname\r\n");
		return STLS_RELAY_FAIL;
	}
	memcpy(in->helo, name.ptr, name.len);
	in->helo[name.len] = '\0';
	backend_send(in, cmd->line);
	stls_relay_pend_push(in, cmd->verb == STLS_SMTP_VERB_EHLO ? STLS_PEND_EHLO : STLS_PEND_HELO, NULL,
			     STLS_SPAN_LIT(""));
	return in->base.ending ? STLS_RELAY_END : STLS_RELAY_OK;
}

enum stls_relay_result stls_relay_fwd_data(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	backend_send(in, cmd->line);
	stls_relay_pend_push(in, STLS_PEND_DATA, NULL, STLS_SPAN_LIT(""));
	/* RFC 2920 3.1: DATA ends a pipelined group; what follows is message or command depending
	 * on the backend's reply, so nothing more is read until it comes. */
	in->wait_data_reply = true;
	return in->base.ending ? STLS_RELAY_END : STLS_RELAY_OK;
}

static bool parse_bdat(struct stls_relay *in, const struct stls_smtp_cmd *cmd, bool *out_last)
{
	if (stls_smtp_parse_bdat(&in->bdat_left, out_last, cmd->args, UINT64_MAX / 2) == STLS_OK)
		return true;
	/* The chunk's length is unknown, so the stream cannot be followed any further. */
	stls_log_info("ICID %llu BDAT with a bad size, closing", (unsigned long long)in->base.id);
	stls_relay_pend_clear(in);
	stls_relay_write(in, STLS_SPAN_LIT("501 5.5.4 Syntax: BDAT size [LAST], closing connection\r\n"));
	stls_relay_end(in, true);
	return false;
}

enum stls_relay_result stls_relay_fwd_bdat(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	bool last;
	if (!parse_bdat(in, cmd, &last))
		return STLS_RELAY_END;
	in->bdat_discard = false;
	char header[1024];
	size_t header_len = 0;
	if (in->tls_active && !in->trace_sent) {
		/* The trace header travels in the transaction's first chunk, which grows by its size. */
		header_len = stls_relay_trace_header(in, header, sizeof(header));
		char line[64];
		int n = snprintf(line, sizeof(line), "BDAT %llu%s\r\n",
				 (unsigned long long)(in->bdat_left + header_len), last ? " LAST" : "");
		backend_send(in, stls_span_make(line, (size_t)n));
		backend_send(in, stls_span_make(header, header_len));
		in->trace_sent = true;
	} else {
		backend_send(in, cmd->line);
	}
	in->msg_size = header_len;
	stls_relay_pend_push(in, last ? STLS_PEND_BDAT_LAST : STLS_PEND_BDAT, NULL, STLS_SPAN_LIT(""));
	return in->base.ending ? STLS_RELAY_END : STLS_RELAY_OK;
}

enum stls_relay_result stls_relay_bdat_discard(struct stls_relay *in, const struct stls_smtp_cmd *cmd,
					       const char *reply)
{
	bool last;
	if (!parse_bdat(in, cmd, &last))
		return STLS_RELAY_END;
	/* RFC 3030 2: a refused chunk is still read in full, so the next command is found. */
	in->bdat_discard = true;
	in->bdat_return = in->state;
	if (in->bdat_left > 0)
		in->state = STLS_RELAY_BDAT;
	stls_relay_reply(in, reply);
	return STLS_RELAY_FAIL;
}

enum stls_relay_result stls_relay_fwd_quit(struct stls_relay *in, const struct stls_smtp_cmd *cmd)
{
	backend_send(in, cmd->line);
	stls_relay_pend_push(in, STLS_PEND_QUIT, NULL, STLS_SPAN_LIT(""));
	in->quit = true;
	return in->base.ending ? STLS_RELAY_END : STLS_RELAY_OK;
}

/* ---- message bytes ------------------------------------------------------------------------ */

static const char *fault_reply(enum stls_err fault)
{
	switch (fault) {
	case STLS_ERR_TOO_LONG: return "550 5.6.0 Message refused: a line is longer than allowed\r\n";
	case STLS_ERR_NUL: return "550 5.6.0 Message refused: it contains a NUL byte\r\n";
	default: return "550 5.5.2 Message refused: bare CR or LF (lines must end with CRLF)\r\n";
	}
}

static const char *fault_str(enum stls_err fault)
{
	switch (fault) {
	case STLS_ERR_TOO_LONG: return "a line longer than --max-text-line";
	case STLS_ERR_NUL: return "a NUL byte";
	default: return "a bare CR or LF";
	}
}

size_t stls_relay_data_bytes(struct stls_relay *in, struct stls_span data)
{
	size_t n;
	enum stls_err r = stls_smtp_data_scan(&in->data, &n, data);
	if (!in->msg_bad && in->data.fault != STLS_OK) {
		/* Never pass such a message on (SMTP smuggling): drop the backend connection, which
		 * discards what it received, and answer the client at its end of data. */
		in->msg_bad = true;
		in->msg_fault = in->data.fault;
		stls_log_info("MID %llu ICID %llu message refused: %s", (unsigned long long)in->mid,
			      (unsigned long long)in->base.id, fault_str(in->msg_fault));
		stls_relay_backend_close(in);
	}
	if (!in->msg_bad)
		backend_send(in, stls_span_head(data, n));
	in->msg_size += n;
	if (r != STLS_DONE)
		return n;

	if (in->msg_bad) {
		stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
		in->mid = 0;
		in->state = STLS_RELAY_READY;
		stls_relay_reply(in, fault_reply(in->msg_fault));
		return n;
	}
	stls_log_info("MID %llu ready %llu bytes", (unsigned long long)in->mid, (unsigned long long)in->msg_size);
	stls_relay_pend_push(in, STLS_PEND_DOT, NULL, STLS_SPAN_LIT(""));
	in->state = STLS_RELAY_RELAY;
	return n;
}

size_t stls_relay_bdat_bytes(struct stls_relay *in, struct stls_span data)
{
	size_t n = data.len < in->bdat_left ? data.len : (size_t)in->bdat_left;
	if (!in->bdat_discard)
		backend_send(in, stls_span_head(data, n));
	in->bdat_left -= n;
	in->msg_size += n;
	if (in->bdat_left == 0)
		in->state = in->bdat_discard ? in->bdat_return : STLS_RELAY_RELAY;
	return n;
}

/* ---- backend replies ---------------------------------------------------------------------- */

static void message_done(struct stls_relay *in, const struct stls_smtp_reply *reply)
{
	char line[200];
	log_line(line, sizeof(line), reply->text);
	if (stls_smtp_reply_class(reply->code) == 2) {
		stls_log_info("MID %llu backend said: %s", (unsigned long long)in->mid, line);
		stls_log_info("Message finished MID %llu done", (unsigned long long)in->mid);
		stls_counter_inc(&in->base.worker->stats.messages);
	} else {
		stls_log_info("MID %llu rejected by backend: %s", (unsigned long long)in->mid, line);
		stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
	}
	in->mid = 0;
	in->msg_size = 0;
}

static void relay_reply(struct stls_relay *in, const struct stls_smtp_reply *reply)
{
	pend_flush_local(in);
	if (in->num_pend == 0) {
		char line[200], why[320];
		log_line(line, sizeof(line), reply->text);
		if (reply->code == 421 && in->mid == 0 && in->state == STLS_RELAY_RELAY) {
			/* The backend ended an idle connection: the next transaction opens a new one. */
			stls_log_info("ICID %llu backend closed an idle connection: %s",
				      (unsigned long long)in->base.id, line);
			stls_relay_backend_close(in);
			in->state = STLS_RELAY_READY;
			return;
		}
		snprintf(why, sizeof(why), "sent a reply nobody asked for: %s", line);
		stls_relay_backend_fail(in, why, "421 4.3.0 Backend connection failed, try again later\r\n");
		return;
	}

	struct stls_span arg;
	struct stls_pend p = pend_pop(in, &arg);
	struct stls_session *s = &in->base;
	const struct stls_config *cfg = s->snap->cfg;
	bool ok = stls_smtp_reply_class(reply->code) == 2;
	char addr[300];

	switch ((enum stls_pend_kind)p.kind) {
	case STLS_PEND_EHLO: {
		struct stls_ehlo_caps caps;
		if (stls_ehlo_parse(&caps, *reply) == STLS_OK) {
			if (in->mid)
				stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
			in->mid = 0;
			if (stls_ehlo_build(&s->conn[STLS_SIDE_CLIENT].out, cfg->relay_buffer, &caps, cfg->hostname,
					    stls_span_cstr(in->helo), in->kind->offer_starttls(in)) != STLS_OK)
				stls_session_end(s, false);
			stls_session_mark(s);
		} else {
			stls_relay_write(in, reply->text);
		}
		break;
	}
	case STLS_PEND_HELO:
		if (ok) {
			if (in->mid)
				stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
			in->mid = 0;
			char text[300];
			int n = snprintf(text, sizeof(text), "250 %s\r\n", cfg->hostname);
			stls_relay_write(in, stls_span_make(text, (size_t)n));
		} else {
			stls_relay_write(in, reply->text);
		}
		break;
	case STLS_PEND_MAIL:
		if (ok) {
			in->mid = p.mid;
			in->msg_size = 0;
			stls_log_info("Start MID %llu ICID %llu", (unsigned long long)in->mid,
				      (unsigned long long)s->id);
			stls_log_info("MID %llu From: <%s>", (unsigned long long)in->mid,
				      stls_span_printable(addr, sizeof(addr), arg));
		}
		stls_relay_write(in, reply->text);
		break;
	case STLS_PEND_RCPT:
		if (ok && in->mid)
			stls_log_info("MID %llu To: <%s>", (unsigned long long)in->mid,
				      stls_span_printable(addr, sizeof(addr), arg));
		if (in->hop) {
			if (ok && in->hop->num_rcpts < 64)
				in->hop->accepted_rids |= 1ull << in->hop->num_rcpts;
			in->hop->num_rcpts++;
		}
		stls_relay_write(in, reply->text);
		break;
	case STLS_PEND_DATA:
		in->wait_data_reply = false;
		if (reply->code == 354) {
			stls_smtp_data_init(&in->data, cfg->max_text_line);
			in->msg_bad = false;
			in->msg_fault = STLS_OK;
			in->msg_size = 0;
			in->state = STLS_RELAY_DATA;
			if (in->tls_active && !in->trace_sent) {
				char header[1024];
				size_t len = stls_relay_trace_header(in, header, sizeof(header));
				backend_send(in, stls_span_make(header, len));
				in->trace_sent = true;
			}
			if (in->kind->message_started)
				in->kind->message_started(in);
		}
		stls_relay_write(in, reply->text);
		break;
	case STLS_PEND_DOT:
	case STLS_PEND_BDAT_LAST:
		if (in->kind->message_done)
			in->kind->message_done(in, reply);
		if (in->mid)
			message_done(in, reply);
		stls_relay_write(in, reply->text);
		if (in->kind->transaction_done)
			in->kind->transaction_done(in);
		break;
	case STLS_PEND_RSET:
		if (ok && in->mid) {
			stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
			in->mid = 0;
		}
		stls_relay_write(in, reply->text);
		if (ok && in->kind->transaction_done)
			in->kind->transaction_done(in);
		break;
	case STLS_PEND_QUIT:
		if (in->mid)
			stls_log_info("Message finished MID %llu aborted", (unsigned long long)in->mid);
		in->mid = 0;
		/* The client said goodbye to us, whatever the backend answers; and its name stays
		 * private. */
		stls_relay_write(in, STLS_SPAN_LIT("221 2.0.0 Bye\r\n"));
		break;
	case STLS_PEND_BDAT:
	case STLS_PEND_LOCAL:
	case STLS_PEND__COUNT: stls_relay_write(in, reply->text); break;
	}
	pend_drop_arg(in, p);
	pend_flush_local(in);
	if (in->quit && in->num_pend == 0 && !s->ending)
		stls_relay_end(in, true);
}

size_t stls_relay_process_backend(struct stls_relay *in, struct stls_span data)
{
	struct stls_session *s = &in->base;
	const struct stls_config *cfg = s->snap->cfg;
	size_t off = 0;
	while (off < data.len && !s->ending && in->be_state != STLS_BE_NONE) {
		/* A client that does not read its replies stops us reading the backend. */
		if (stls_conn_pending(s, STLS_SIDE_CLIENT) >= cfg->relay_buffer)
			break;
		struct stls_smtp_reply reply;
		enum stls_err err = stls_smtp_reply_next(&in->rp, &reply, stls_span_from(data, off));
		if (err == STLS_AGAIN)
			break;
		if (err != STLS_OK) {
			stls_relay_backend_fail(in,
						err == STLS_ERR_TOO_LONG ? "sent a reply over the line limits"
									 : "sent a malformed reply",
						"421 4.3.0 Backend connection failed, try again later\r\n");
			return data.len;
		}
		off += reply.text.len;
		in->backend_progress = true;
		if (in->be_state != STLS_BE_READY && in->hop)
			stls_hop_setup_reply(in, &reply, off < data.len);
		else if (in->be_state != STLS_BE_READY)
			backend_setup_reply(in, &reply);
		else
			relay_reply(in, &reply);
		if (in->state == STLS_RELAY_RELAY || in->state == STLS_RELAY_DATA)
			stls_relay_resume_client(in);
	}
	if (in->be_state == STLS_BE_NONE)
		return data.len; /* the connection was dropped: whatever follows is moot */
	return off;
}

void stls_relay_resume_backend(struct stls_relay *in)
{
	struct stls_session *s = &in->base;
	struct stls_conn *c = &s->conn[STLS_SIDE_SERVER];
	if (s->ending || !stls_conn_is_open(s, STLS_SIDE_SERVER) || stls_buf_empty(&c->in))
		return;
	size_t used = stls_relay_process_backend(in, stls_buf_span(&c->in));
	if (stls_conn_is_open(s, STLS_SIDE_SERVER) && !(c->flags & STLS_CONN_CLOSING))
		stls_buf_consume(&c->in, used);
}

void stls_relay_backend_lost(struct stls_relay *in, const char *why)
{
	if (in->hop && in->be_state != STLS_BE_READY) {
		stls_hop_lost(in, why);
		return;
	}
	if (in->be_state == STLS_BE_READY && in->num_pend == 0 && in->mid == 0 && in->state == STLS_RELAY_RELAY &&
	    !in->wait_data_reply) {
		/* Nothing was in flight: the client need not know. */
		stls_log_info("ICID %llu backend %s while idle", (unsigned long long)in->base.id, why);
		stls_relay_backend_close(in);
		in->state = STLS_RELAY_READY;
		stls_relay_update(in);
		return;
	}
	char text[200];
	snprintf(text, sizeof(text), "lost: %s", why);
	stls_relay_backend_fail(in, text, "421 4.3.0 Backend connection lost, try again later\r\n");
}
