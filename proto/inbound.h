/* The inbound session: a remote MTA talking to the proxy, relayed to the backend.
 *
 * GREET -> (EHLO, answered locally from the backend's probed capabilities) -> READY ->
 * [STARTTLS -> HANDSHAKE -> GREET again, everything learned before forgotten (RFC 3207 4.2)] ->
 * (first command that must reach the backend) -> CONNECTING -> RELAY <-> DATA / BDAT.
 * Commands are dispatched through a table of state x verb -> handler + next state; a pair the
 * table lacks is a sequence error (503 5.5.1). In RELAY every command the client sends is
 * forwarded or answered locally in order, each reply matched to its command through a FIFO of
 * pending replies (RFC 2920 pipelining), and message bytes move in bulk. Nothing is acknowledged
 * to the client that the backend has not acknowledged: the end-of-data reply is the backend's, and
 * any failure on our side before it is a 4xx. */
#pragma once

#include <stddef.h>

#include "core/err.h"
#include "core/session.h"
#include "proto/relay.h"
#include "proto/smtp_lex.h"

struct stls_config;
struct stls_sender_groups;

/* What inbound sessions read besides the flags, part of the snapshot: the sender groups. */
struct stls_inbound_conf {
	struct stls_sender_groups *groups; /* NULL without --sender-groups */
	unsigned refs;
};

/* Builds it from --sender-groups. Returns STLS_OK, or an error with the reason ("file:line: why")
 * in err. */
[[nodiscard]] enum stls_err stls_inbound_conf_new(struct stls_inbound_conf **out, const struct stls_config *cfg,
						  char *err, size_t err_len);

/* Takes and drops a reference (main thread). The last put frees it. Both accept NULL. */
void stls_inbound_conf_get(struct stls_inbound_conf *c);
void stls_inbound_conf_put(struct stls_inbound_conf *c);

/* Looks up the inbound session table: whether verb has a handler in state, and if so the state
 * a successful handler moves to. Commands without one are answered 503 5.5.1. */
bool stls_in_table_lookup(enum stls_relay_state state, enum stls_smtp_verb verb, enum stls_relay_state *out_next);

/* The operations of an inbound SMTP listener. */
extern const struct stls_session_ops stls_inbound_ops;
