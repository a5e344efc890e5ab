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

#include "core/session.h"
#include "proto/relay.h"
#include "proto/smtp_lex.h"

/* Looks up the inbound session table: whether verb has a handler in state, and if so the state
 * a successful handler moves to. Commands without one are answered 503 5.5.1. */
bool stls_in_table_lookup(enum stls_relay_state state, enum stls_smtp_verb verb, enum stls_relay_state *out_next);

/* The operations of an inbound SMTP listener. */
extern const struct stls_session_ops stls_inbound_ops;
