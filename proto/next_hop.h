/* The outbound relay's side toward a destination MTA (proto/next_hop.c): connect, EHLO/HELO,
 * STARTTLS and verification per the destination's policy, then the transaction's MAIL. */
#pragma once

#include <stdbool.h>

#include "core/err.h"
#include "proto/smtp_reply.h"

struct stls_relay;

/* Connects to the hop's current target. */
void stls_hop_connect(struct stls_relay *r);

/* The connect finished: res 0 or -errno (the next target is tried on failure). */
void stls_hop_connected(struct stls_relay *r, int res);

/* A reply of the destination before the hop is ready; bytes_follow: more bytes came after it in the
 * same read (a response injection after the 220 to STARTTLS). */
void stls_hop_setup_reply(struct stls_relay *r, const struct stls_smtp_reply *reply, bool bytes_follow);

/* The TLS handshake with the destination finished (STLS_OK) or failed. */
void stls_hop_tls(struct stls_relay *r, enum stls_err res);

/* The destination closed or broke the connection before the transaction was relayed. */
void stls_hop_lost(struct stls_relay *r, const char *why);
