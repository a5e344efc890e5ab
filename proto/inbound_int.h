/* Internals of the inbound session, shared by inbound.c (the client side and the command table)
 * and inbound_relay.c (the backend side). Not for use elsewhere. */
#pragma once

#include <stdarg.h>

#include "core/session.h"
#include "core/snapshot.h"
#include "proto/inbound.h"
#include "proto/smtp_data.h"
#include "proto/smtp_lex.h"
#include "proto/smtp_reply.h"

/* What a reply the client waits for will be, in command order. */
enum stls_pend_kind {
	STLS_PEND_LOCAL = 0, /* the proxy's own reply, waiting its turn */
	STLS_PEND_EHLO,	     /* backend reply rewritten with our name and extensions */
	STLS_PEND_HELO,
	STLS_PEND_MAIL, /* arg: the reverse path, for the log */
	STLS_PEND_RCPT, /* arg: the forward path */
	STLS_PEND_DATA, /* 354 starts the message */
	STLS_PEND_DOT,	/* the end-of-data reply */
	STLS_PEND_BDAT,
	STLS_PEND_BDAT_LAST,
	STLS_PEND_RSET,
	STLS_PEND_QUIT,
	STLS_PEND__COUNT,
};

struct stls_pend {
	uint8_t kind;
	uint16_t arg_len; /* bytes of its argument at the front of pend_args */
	uint64_t mid;	  /* MAIL: the message ID it starts */
	const char *local;
};

enum stls_in_timer {
	STLS_IN_TIMER_COMMAND = 0,
	STLS_IN_TIMER_DATA,
	STLS_IN_TIMER_BACKEND_CONNECT,
	STLS_IN_TIMER_BACKEND,
	STLS_IN_TIMER_HANDSHAKE,
	STLS_IN_TIMER__COUNT,
};

enum stls_be_state {
	STLS_BE_NONE = 0,
	STLS_BE_CONNECTING,
	STLS_BE_GREETING, /* waiting for the backend's 220 */
	STLS_BE_EHLO,	  /* waiting for its reply to our EHLO */
	STLS_BE_READY,
	STLS_BE__COUNT,
};

struct stls_inbound {
	struct stls_session base;
	uint8_t state;	    /* enum stls_in_state */
	uint8_t be_state;   /* enum stls_be_state */
	uint8_t timer_kind; /* enum stls_in_timer */
	bool esmtp;
	bool quit;	      /* no more commands: end once the replies owed are sent */
	bool wait_data_reply; /* DATA was relayed; its reply decides what the next bytes are */
	bool client_progress;
	bool backend_progress;
	bool bdat_discard;   /* the chunk being read was refused: drop it */
	uint8_t bdat_return; /* the state to go back to after a discarded chunk */
	bool msg_bad;	     /* the message was refused while streaming; its end gets msg_fault's reply */
	bool tls_active;     /* the handshake completed */
	bool tls_required_logged;
	bool trace_sent;  /* this transaction's trace header went to the backend */
	size_t trailing;  /* bytes after the command being handled, in the same read */
	uint64_t txn_mid; /* the MID of the last MAIL relayed (for the trace header) */
	enum stls_err msg_fault;
	uint32_t num_errors;
	uint64_t bdat_left;
	uint64_t msg_size;
	uint64_t mid;
	struct stls_smtp_lex lex;
	struct stls_smtp_reply_parser rp;
	struct stls_smtp_data data;
	struct stls_pend *pend; /* ring of cap entries, allocated with the backend connection */
	uint32_t pend_head;
	uint32_t num_pend;
	uint32_t pend_cap;
	struct stls_buf pend_args;
	char helo[256];
};

enum stls_in_result {
	STLS_IN_OK = 0, /* consumed; move to the table's next state */
	STLS_IN_HOLD,	/* not consumed: read again once the session can go on; next state applies */
	STLS_IN_FAIL,	/* consumed and answered; the state stays */
	STLS_IN_STOP,	/* consumed; stop reading until an event resumes it */
	STLS_IN_END,	/* the session is ending */
};

typedef enum stls_in_result stls_in_handler_fn(struct stls_inbound *in, const struct stls_smtp_cmd *cmd);

/* inbound.c */
void stls_in_write(struct stls_inbound *in, struct stls_span text);
void stls_in_reply(struct stls_inbound *in, const char *text);
void stls_in_replyf(struct stls_inbound *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void stls_in_end(struct stls_inbound *in, bool flush);
size_t stls_in_process_client(struct stls_inbound *in, struct stls_span data);
void stls_in_resume_client(struct stls_inbound *in);
void stls_in_update(struct stls_inbound *in);

/* Whether EHLO offers STARTTLS (never to a HELO, never twice). */
static inline bool stls_in_offer_starttls(const struct stls_inbound *in)
{
	return in->base.snap->cfg->inbound_tls != STLS_TLS_OFF && !in->tls_active && in->esmtp;
}

/* inbound_relay.c */
stls_in_handler_fn stls_in_relay_cmd, stls_in_relay_ehlo, stls_in_relay_data, stls_in_relay_bdat, stls_in_relay_quit;
enum stls_in_result stls_in_backend_open(struct stls_inbound *in);
enum stls_in_result stls_in_bdat_discard(struct stls_inbound *in, const struct stls_smtp_cmd *cmd, const char *reply);
void stls_in_backend_connected(struct stls_inbound *in, int res);
void stls_in_backend_released(struct stls_inbound *in);
size_t stls_in_process_backend(struct stls_inbound *in, struct stls_span data);
void stls_in_resume_backend(struct stls_inbound *in);
void stls_in_backend_lost(struct stls_inbound *in, const char *why);
void stls_in_backend_fail(struct stls_inbound *in, const char *why, const char *reply);
size_t stls_in_data_bytes(struct stls_inbound *in, struct stls_span data);
size_t stls_in_bdat_bytes(struct stls_inbound *in, struct stls_span data);
void stls_in_pend_push(struct stls_inbound *in, enum stls_pend_kind kind, const char *local, struct stls_span arg);
void stls_in_backend_close(struct stls_inbound *in);
size_t stls_in_trace_header(struct stls_inbound *in, char *out, size_t out_len);
void stls_in_pend_clear(struct stls_inbound *in);
void stls_in_pend_cleanup(struct stls_inbound *in);
