/* The next-hop table: where outbound mail for a domain goes.
 *
 * Loaded from the --routes file, one "domain next-hop" entry a line (core/table_file.h):
 *
 *   partner.test       127.0.0.1:2626
 *   .corp.example      [relay.corp.example]
 *   v6.example         [2001:db8::25]:2525
 *   *                  mx                 # DNS MX lookup
 *
 * Domains are matched as in the destination policy: exact, then ".parent" entries from the
 * longest parent to the shortest, then "*" (core/domain_table.h). A next hop is one of:
 *   mx                  the destination domain's MX records (RFC 5321 5.1), port 25;
 *   host, host:port     the host's address records, no MX lookup;
 *   [host], [host]:port the same: the brackets are Postfix's way to say "no MX lookup", and a
 *                       bare host means the same here, so files written for Postfix read alike;
 *   [IPv6], [IPv6]:port an IPv6 address, which must be in brackets;
 *   IPv4, IPv4:port     an IPv4 address, with or without brackets.
 * A host called "mx" must be written "[mx]". The port is 25 unless given. A file without "*"
 * gets "*" = mx, the documented default. The table is immutable once loaded and read by every
 * worker at once without locks. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/span.h"

enum stls_route_kind {
	STLS_ROUTE_MX = 0, /* look up the destination domain's MX records */
	STLS_ROUTE_HOST,   /* connect to host (a name's address records, or an address literal) */
	STLS_ROUTE__COUNT,
};

struct stls_route {
	enum stls_route_kind kind;
	char host[256]; /* NUL-terminated, lowercase; an IPv6 address without its brackets; "" for MX */
	uint16_t port;	/* 25 when not given */
};

/* The kind's name for logs ("mx", "host"); "?" for a value out of range. */
const char *stls_route_kind_str(enum stls_route_kind kind);

/* Parses a next hop as the file writes it (see above) into *out. Returns STLS_OK, or
 * STLS_ERR_CONFIG with a reason in why (why_len octets, NUL-terminated). */
[[nodiscard]] enum stls_err stls_route_parse(struct stls_route *out, struct stls_span next_hop, char *why,
					     size_t why_len);

struct stls_routes;

/* Loads the routes file at path. Returns STLS_OK with *out set, or an error with err (err_len
 * octets) holding "PATH:LINE: why": STLS_ERR_CONFIG for a line that is not "domain next-hop", an
 * invalid domain, host or port, or a domain listed twice (both lines named), STLS_ERR_IO when
 * the file cannot be read, STLS_ERR_NOMEM. The caller frees *out with stls_routes_free. */
[[nodiscard]] enum stls_err stls_routes_load(struct stls_routes **out, const char *path, char *err, size_t err_len);

/* The routes with no file: every domain goes to its MX ("*" = mx). Returns STLS_OK,
 * STLS_ERR_NOMEM or STLS_ERR_IO (no random bytes for the table's seed). */
[[nodiscard]] enum stls_err stls_routes_default(struct stls_routes **out);

/* The next hop for a destination domain (any bytes; a name that is not a valid domain gets the
 * "*" route). *out is always set, to a route owned by the table; *out_matched_key, when not NULL,
 * to the key that matched, a span valid as long as the table. Thread-safe, allocates nothing. */
void stls_routes_lookup(const struct stls_routes *routes, struct stls_span domain, const struct stls_route **out,
			struct stls_span *out_matched_key);

/* The number of entries, the implicit "*" included. */
size_t stls_routes_count(const struct stls_routes *routes);

/* Frees the routes (NULL or *routes NULL is fine) and sets *routes to NULL. */
void stls_routes_free(struct stls_routes **routes);
