/* The SMTP relay session, both directions: its states. The inbound relay (proto/inbound.h)
 * carries the Internet's mail to the backend, the outbound relay (proto/outbound.h) the backend's
 * mail to the world. */
#pragma once

enum stls_relay_state {
	STLS_RELAY_GREET = 0,  /* greeted; waiting for EHLO or HELO */
	STLS_RELAY_READY,      /* EHLO done; no backend connection */
	STLS_RELAY_MAILED,     /* outbound: MAIL accepted locally; the first RCPT picks the next hop */
	STLS_RELAY_CONNECTING, /* opening the backend connection; client input is held */
	STLS_RELAY_RELAY,      /* backend open: commands relayed, replies matched */
	STLS_RELAY_DATA,       /* relaying message bytes up to CRLF.CRLF */
	STLS_RELAY_BDAT,       /* relaying (or discarding) a BDAT chunk by its length */
	STLS_RELAY_QUIT,       /* the last reply is queued; nothing more is read */
	STLS_RELAY_HANDSHAKE,  /* 220 sent to STARTTLS; the TLS handshake runs */
	STLS_RELAY_PROXY,      /* inbound from a balancer: waiting for its PROXY header, nothing sent */
	STLS_RELAY__COUNT,
};

/* "GREET", "READY", ... */
const char *stls_relay_state_str(enum stls_relay_state state);

/* Looks up the session table: whether verb has a handler in state, and if so the state a
 * successful handler moves to. Commands without one are answered 503 5.5.1. */
/* "GREET", "READY", ... */
const char *stls_relay_state_str(enum stls_relay_state state);
