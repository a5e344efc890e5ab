/* Immutable domain tables: domain pattern -> uint32_t, for the destination policy and the routes.
 *
 * A builder collects the entries; stls_domain_table_build turns them into one contiguous,
 * read-only table that any number of threads then read at once with plain loads (the snapshot
 * publishes it; nothing in a lookup writes memory). Keys are domain patterns:
 *   "example.com"    that domain exactly;
 *   ".example.com"   every subdomain of example.com (not example.com itself);
 *   "*"              everything else.
 * Keys and lookups are ASCII case-insensitive (keys are stored lowercased) and one trailing dot
 * is ignored. A lookup tries the exact domain, then the ".parent" entries from the longest parent
 * to the shortest ("a.b.example.com": ".b.example.com", ".example.com", ".com"), then "*".
 *
 * The table is open addressing with linear probing over a power-of-two array of slots, at most
 * half full. Its hash is keyed with a per-table random seed (getrandom), so a peer who chooses the
 * domains it sends cannot choose colliding ones. The hash is computed label by label from the
 * right, so one pass over the domain yields the hash of the domain and of every parent: a lookup
 * reads its input once and makes at most (labels + 1) probes, plus "*" which needs none. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/span.h"

/* Longest domain (RFC 1035 2.3.4: 255 octets on the wire, 253 as text without the trailing
 * dot) and longest label (63). */
#define STLS_DOMAIN_MAX_LEN   253
#define STLS_DOMAIN_MAX_LABEL 63

struct stls_domain_table;
struct stls_domain_table_builder;

/* Starts an empty builder with a fresh random seed. Returns STLS_OK, STLS_ERR_NOMEM, or
 * STLS_ERR_IO when the kernel gives no random bytes. Free it with stls_domain_table_builder_free
 * unless it is handed to stls_domain_table_build. */
[[nodiscard]] enum stls_err stls_domain_table_builder_new(struct stls_domain_table_builder **out);

/* Adds key -> value. key is "example.com", ".example.com" or "*", as described above; it may be
 * any case and end in one dot, and is stored lowercased without that dot. Returns STLS_OK,
 * STLS_ERR_CONFIG when key is not a valid pattern (see stls_domain_table_key_error), or
 * STLS_ERR_NOMEM (also when the table would pass 2^30 keys or 4 GiB of key bytes).
 * *out_duplicate is set to whether the same key (after lowercasing) was already added; the first
 * value stays and the caller reports the line. */
[[nodiscard]] enum stls_err stls_domain_table_add(struct stls_domain_table_builder *b, struct stls_span key,
						  uint32_t value, bool *out_duplicate);

/* The value already added for key (any case, with or without the trailing dot): true with
 * *out_value set, or false when key was not added or is not a valid pattern. For the message that
 * names the line a duplicate first appeared on (store the line in the value). */
bool stls_domain_table_builder_get(const struct stls_domain_table_builder *b, struct stls_span key,
				   uint32_t *out_value);

/* Why key is not a valid pattern, as a phrase for "invalid domain \"KEY\": WHY", or NULL when it
 * is valid. A valid pattern: "*", or an optional leading dot, then labels of 1 to 63 letters,
 * digits, '-' or '_' ('_' for SRV-like names), not starting or ending with '-', separated by
 * single dots, 253 octets at most, then an optional trailing dot. */
const char *stls_domain_table_key_error(struct stls_span key);

/* Turns the builder into an immutable table. Consumes the builder always, even on failure: the
 * caller's pointer must not be used again. Returns STLS_OK or STLS_ERR_NOMEM. An empty builder
 * makes a valid empty table. */
[[nodiscard]] enum stls_err stls_domain_table_build(struct stls_domain_table **out,
						    struct stls_domain_table_builder *b);

/* Frees a builder that was not built (NULL or *b NULL is fine) and sets *b to NULL. */
void stls_domain_table_builder_free(struct stls_domain_table_builder **b);

/* Frees a table (NULL or *t NULL is fine) and sets *t to NULL. Only once no reader uses it. */
void stls_domain_table_free(struct stls_domain_table **t);

/* Looks domain up: a peer-supplied name in any bytes (a bounded span, never NUL-terminated,
 * never written to). Tries the exact domain, then ".parent" entries from the longest parent to
 * the shortest, then "*". A domain that is not valid (empty, over 253 octets, bad characters,
 * empty or over-long labels, a label starting or ending with '-') matches only "*". Returns true
 * with *out_value and, when out_key is not NULL, *out_key (the matched key as stored, lowercase,
 * a span into the table valid as long as the table) set; false when nothing matches. Allocates
 * nothing and writes no shared memory: safe from any number of threads at once. */
bool stls_domain_table_lookup(const struct stls_domain_table *t, struct stls_span domain, uint32_t *out_value,
			      struct stls_span *out_key);

/* Finds a key exactly as stored (lowercase, "*", ".parent" or "domain", no trailing dot): one
 * hash and one probe, no validation, no lowercasing and no parent walk. Returns true with
 * *out_value set when present. For checks and as the benchmark's ceiling; traffic uses
 * stls_domain_table_lookup. */
bool stls_domain_table_get(const struct stls_domain_table *t, struct stls_span key, uint32_t *out_value);

/* The number of keys in the table, "*" included. */
size_t stls_domain_table_count(const struct stls_domain_table *t);
