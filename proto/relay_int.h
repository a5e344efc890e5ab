/* Internals of the relay session: relay.c (the client side), relay_server.c (the next hop's
 * side), inbound.c and outbound.c (the two directions). Not for use elsewhere. */
#pragma once

#include <stdarg.h>

#include "core/admit.h"
#include "core/session.h"
#include "core/snapshot.h"
#include "proto/dns.h"
#include "proto/relay.h"
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

enum stls_relay_timer {
	STLS_RELAY_TIMER_COMMAND = 0,
	STLS_RELAY_TIMER_DATA,
	STLS_RELAY_TIMER_BACKEND_CONNECT,
	STLS_RELAY_TIMER_BACKEND,
	STLS_RELAY_TIMER_HANDSHAKE,
	STLS_RELAY_TIMER_PROXY,
	STLS_RELAY_TIMER__COUNT,
};

/* The next hop's side, up to the moment client commands can be relayed to it. */
enum stls_be_state {
	STLS_BE_NONE = 0,
	STLS_BE_RESOLVING, /* outbound: DNS */
	STLS_BE_CONNECTING,
	STLS_BE_GREETING,  /* waiting for its 220 */
	STLS_BE_XCLIENT,   /* inbound: XCLIENT sent, waiting for the new 220 */
	STLS_BE_EHLO,	   /* waiting for its reply to our EHLO */
	STLS_BE_HELO,	   /* outbound: EHLO refused, HELO sent */
	STLS_BE_STARTTLS,  /* outbound: STARTTLS sent */
	STLS_BE_HANDSHAKE, /* outbound: TLS as the client */
	STLS_BE_EHLO2,	   /* outbound: EHLO again inside TLS */
	STLS_BE_MAIL,	   /* outbound: the transaction's MAIL replayed */
	STLS_BE_READY,
	STLS_BE__COUNT,
};

/* The outbound relay's destination for the transaction in progress (spec S15-S20). */
struct stls_next_hop {
	char domain[256]; /* the recipient domain that chose it */
	char key[400];	  /* route and mode: recipients whose key differs go in another transaction */
	uint8_t mode;	  /* enum stls_dest_mode */
	struct stls_dns_target targets[STLS_DNS_MAX_TARGETS];
	unsigned num_targets;
	unsigned cur; /* the target being tried */
	uint64_t dcid;
	char ip[64];
	uint16_t port;
	bool esmtp;    /* it answered EHLO */
	bool starttls; /* ... and offered STARTTLS */
	bool has_8bitmime;
	bool has_size;
	bool tls;	  /* the session to it is encrypted */
	bool verified;	  /* ... and its certificate verified */
	bool failed;	  /* it cannot take this transaction */
	bool tls_failure; /* ... because of TLS (spec S21, S22) */
	char fail_reply[400];
	unsigned num_rcpts;	/* RCPTs relayed: the next RID */
	uint64_t accepted_rids; /* bit k: RID k was accepted */
};

struct stls_relay_kind;

struct stls_relay {
	struct stls_session base;
	const struct stls_relay_kind *kind;
	uint8_t state;	    /* enum stls_relay_state */
	uint8_t be_state;   /* enum stls_be_state */
	uint8_t timer_kind; /* enum stls_relay_timer */
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
	uint8_t tls_mode;		       /* inbound: enum stls_tls_policy, the sender group's or --inbound-tls */
	bool mail_counted;		       /* inbound: the held MAIL was already counted against the rate */
	bool client_spoke;		       /* the client sent bytes since the greeting */
	const struct stls_sender_group *group; /* inbound: the client's sender group, or NULL */
	struct stls_admit_hold admit;	       /* inbound: places taken under the limits */
	struct stls_next_hop *hop;	       /* outbound: the transaction's destination */
	struct stls_buf mail_args;	       /* outbound: the transaction's MAIL arguments, replayed to the hop */
};

enum stls_relay_result {
	STLS_RELAY_OK = 0, /* consumed; move to the table's next state */
	STLS_RELAY_HOLD,   /* not consumed: read again once the session can go on; next state applies */
	STLS_RELAY_FAIL,   /* consumed and answered; the state stays */
	STLS_RELAY_STOP,   /* consumed; stop reading until an event resumes it */
	STLS_RELAY_END,	   /* the session is ending */
};

typedef enum stls_relay_result stls_relay_handler_fn(struct stls_relay *in, const struct stls_smtp_cmd *cmd);

/* A cell of a direction's command table. */
struct stls_relay_rule {
	stls_relay_handler_fn *fn;
	enum stls_relay_state next;
};

/* What differs between the directions. */
struct stls_relay_kind {
	const char *name;
	const char *log_suffix; /* appended to the "New SMTP ICID" line */
	const struct stls_relay_rule (*rules)[STLS_SMTP_VERB__COUNT];
	/* The session is open: greet (or refuse) the client. */
	void (*open)(struct stls_relay *r);
	/* In STLS_RELAY_PROXY: the client's bytes so far, before any SMTP. Returns how many it
	 * consumed (0 to wait for more). */
	size_t (*preamble)(struct stls_relay *r, struct stls_span data);
	/* Optional: the first bytes the client sent in GREET. Returns false when it ended the
	 * session. */
	bool (*first_bytes)(struct stls_relay *r, struct stls_span data);
	/* Optional: may cmd be acted on now? STLS_RELAY_OK to go on, else it was answered. */
	enum stls_relay_result (*check)(struct stls_relay *r, const struct stls_smtp_cmd *cmd);
	/* STARTTLS from the client finished (STLS_OK) or failed. */
	void (*client_tls)(struct stls_relay *r, enum stls_err res);
	/* Whether an EHLO reply offers STARTTLS to the client. */
	bool (*offer_starttls)(const struct stls_relay *r);
	/* The next hop cannot be used (connect, setup or a lost connection): why for the log, reply
	 * for the client. */
	void (*server_failed)(struct stls_relay *r, const char *why, const char *reply);
	/* Optional: the next hop accepted the end of a transaction or a RSET (its connection may be
	 * let go). */
	void (*transaction_done)(struct stls_relay *r);
	/* Optional: message events for the log: DATA's 354, and the final reply. */
	void (*message_started)(struct stls_relay *r);
	void (*message_done)(struct stls_relay *r, const struct stls_smtp_reply *reply);
};

/* Every command table has these cells in its command states; STARTTLS gets starttls and leads to
 * starttls_next (the handshake where it is offered, the same state where it is not). */
#define STLS_RELAY_ANYWHERE(state, starttls, starttls_next)                                                            \
	[STLS_SMTP_VERB_NOOP] = { stls_relay_h_noop, state }, [STLS_SMTP_VERB_HELP] = { stls_relay_h_help, state },    \
	[STLS_SMTP_VERB_VRFY] = { stls_relay_h_vrfy, state }, [STLS_SMTP_VERB_STARTTLS] = { starttls, starttls_next }, \
	[STLS_SMTP_VERB_AUTH] = { stls_relay_h_not_impl, state },                                                      \
	[STLS_SMTP_VERB_EXPN] = { stls_relay_h_not_impl, state },                                                      \
	[STLS_SMTP_VERB_ETRN] = { stls_relay_h_not_impl, state },                                                      \
	[STLS_SMTP_VERB_XCLIENT] = { stls_relay_h_not_impl, state },                                                   \
	[STLS_SMTP_VERB_XFORWARD] = { stls_relay_h_not_impl, state },                                                  \
	[STLS_SMTP_VERB_UNKNOWN] = { stls_relay_h_unknown, state }

/* The session operations of a direction whose open function sets its kind. */
#define STLS_RELAY_OPS(direction, open_fn)                                                                             \
	{                                                                                                              \
		.name = direction, .size = sizeof(struct stls_relay), .on_open = open_fn, .on_recv = stls_relay_recv,  \
		.on_closed = stls_relay_closed, .on_sent = stls_relay_sent, .on_connected = stls_relay_connected,      \
		.on_released = stls_relay_released, .on_tls = stls_relay_tls, .on_timeout = stls_relay_timeout,        \
		.on_shutdown = stls_relay_shutdown, .on_free = stls_relay_free,                                        \
	}

/* relay.c */
void stls_relay_write(struct stls_relay *r, struct stls_span text);
void stls_relay_reply(struct stls_relay *r, const char *text);
void stls_relay_replyf(struct stls_relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum stls_relay_result stls_relay_client_error(struct stls_relay *r, const char *text);
void stls_relay_end(struct stls_relay *r, bool flush);
bool stls_relay_save_helo(struct stls_relay *r, struct stls_span args);
void stls_relay_transaction_reset(struct stls_relay *r);
size_t stls_relay_process_client(struct stls_relay *r, struct stls_span data);
void stls_relay_resume_client(struct stls_relay *r);
void stls_relay_update(struct stls_relay *r);
void stls_relay_tls_failed(struct stls_relay *r, const char *why);
void stls_relay_open(struct stls_relay *r);
stls_relay_handler_fn stls_relay_h_noop, stls_relay_h_rset, stls_relay_h_quit, stls_relay_h_help, stls_relay_h_vrfy,
	stls_relay_h_not_impl, stls_relay_h_unknown, stls_relay_h_need_mail, stls_relay_h_need_ehlo;
size_t stls_relay_recv(struct stls_session *s, enum stls_side side, struct stls_span data);
void stls_relay_closed(struct stls_session *s, enum stls_side side, int err);
void stls_relay_sent(struct stls_session *s, enum stls_side side);
void stls_relay_connected(struct stls_session *s, enum stls_side side, int res);
void stls_relay_released(struct stls_session *s, enum stls_side side);
void stls_relay_tls(struct stls_session *s, enum stls_side side, enum stls_err res);
void stls_relay_timeout(struct stls_session *s);
void stls_relay_shutdown(struct stls_session *s);
void stls_relay_free(struct stls_session *s);

/* relay_server.c */
stls_relay_handler_fn stls_relay_fwd_cmd, stls_relay_fwd_ehlo, stls_relay_fwd_data, stls_relay_fwd_bdat,
	stls_relay_fwd_quit;
enum stls_relay_result stls_relay_backend_open(struct stls_relay *in);
enum stls_relay_result stls_relay_bdat_discard(struct stls_relay *in, const struct stls_smtp_cmd *cmd,
					       const char *reply);
void stls_relay_backend_connected(struct stls_relay *in, int res);
void stls_relay_backend_released(struct stls_relay *in);
size_t stls_relay_process_backend(struct stls_relay *in, struct stls_span data);
void stls_relay_resume_backend(struct stls_relay *in);
void stls_relay_backend_lost(struct stls_relay *in, const char *why);
void stls_relay_backend_fail(struct stls_relay *in, const char *why, const char *reply);
size_t stls_relay_data_bytes(struct stls_relay *in, struct stls_span data);
size_t stls_relay_bdat_bytes(struct stls_relay *in, struct stls_span data);
void stls_relay_pend_push(struct stls_relay *in, enum stls_pend_kind kind, const char *local, struct stls_span arg);
void stls_relay_backend_close(struct stls_relay *in);
size_t stls_relay_trace_header(struct stls_relay *in, char *out, size_t out_len);
void stls_relay_pend_clear(struct stls_relay *in);
void stls_relay_pend_cleanup(struct stls_relay *in);
void stls_relay_server_tls(struct stls_relay *r, enum stls_err res);
/* The inbound kind's reaction to a failed next hop: log, reply and end the session. */
void stls_relay_server_failed_end(struct stls_relay *r, const char *why, const char *reply);
