/* The outbound relay: the legacy MTA relays the world's mail through the proxy, which picks each
 * recipient domain's next hop (routes file or DNS MX) and applies its TLS policy (spec S15-S20),
 * answering the legacy MTA with the destination's own replies, or a 4xx when something on the
 * proxy's side stopped delivery, so that the mail stays in the legacy MTA's queue.
 *
 * GREET -> EHLO (answered locally) -> READY -> MAIL (accepted locally, kept) -> MAILED ->
 * first RCPT: next hop looked up and connected, TLS per policy, MAIL replayed -> RELAY <-> DATA.
 * A recipient whose next hop differs from the transaction's first gets 452 4.5.3 (the legacy
 * MTA sends it in another transaction). After the transaction the destination's connection
 * closes. */
#pragma once

#include <openssl/base.h>

#include "core/config.h"
#include "core/err.h"
#include "core/session.h"
#include "proto/dest_policy.h"
#include "proto/relay.h"
#include "proto/routes.h"
#include "proto/smtp_lex.h"

/* What the outbound relay reads, as one unit in the snapshot: the policy and route tables and the
 * client TLS context (trust store, client certificate). Immutable; shared by snapshots through a
 * count the main thread keeps. */
struct stls_outbound_conf {
	struct stls_dest_policy *policy;
	struct stls_routes *routes;
	SSL_CTX *ctx;
	unsigned refs;
};

/* Builds it from --dest-policy, --routes, --ca-file, --outbound-cert/--outbound-key. Returns
 * STLS_OK, or STLS_ERR_CONFIG with every reason ("file:line: why") in err. */
[[nodiscard]] enum stls_err stls_outbound_conf_new(struct stls_outbound_conf **out, const struct stls_config *cfg,
						   char *err, size_t err_len);

/* Takes and drops a reference (main thread). The last put frees it. */
void stls_outbound_conf_get(struct stls_outbound_conf *c);
void stls_outbound_conf_put(struct stls_outbound_conf *c);

/* Looks up the outbound session table (as stls_in_table_lookup does for inbound). */
bool stls_out_table_lookup(enum stls_relay_state state, enum stls_smtp_verb verb, enum stls_relay_state *out_next);

/* The operations of an outbound SMTP listener. */
extern const struct stls_session_ops stls_outbound_ops;
