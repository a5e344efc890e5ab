/* The destination TLS policy (spec S15-S20): which TLS a delivery to a domain must use.
 *
 * Loaded from the --dest-policy file, one "domain mode" entry a line (core/table_file.h):
 *
 *   example.com        required
 *   .example.com       preferred          # every subdomain of example.com
 *   bank.test          required-verify
 *   *                  preferred          # everything else (S20)
 *
 * A domain is matched exactly, then by its ".parent" entries from the longest parent to the
 * shortest, then by "*" (core/domain_table.h); case does not matter. A file without "*" gets
 * "*" = preferred, the documented default, so every lookup finds a mode. The policy is immutable
 * once loaded and read by every worker at once without locks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/span.h"

enum stls_dest_mode {
	STLS_DEST_NONE = 0,	    /* S15: TLS is not negotiated */
	STLS_DEST_PREFERRED,	    /* S16: TLS if offered, else clear text (until the 220) */
	STLS_DEST_REQUIRED,	    /* S17: TLS or no delivery, no verification */
	STLS_DEST_PREFERRED_VERIFY, /* S18: TLS if offered, verification attempted and logged */
	STLS_DEST_REQUIRED_VERIFY,  /* S19: TLS with a certificate that verifies, or no delivery */
	STLS_DEST__COUNT,
};

/* The mode's name as the file spells it ("required-verify"); "?" for a value out of range. */
const char *stls_dest_mode_str(enum stls_dest_mode mode);

/* Parses a mode name (ASCII case-insensitive). Returns false, leaving *out alone, for anything
 * else. */
bool stls_dest_mode_parse(enum stls_dest_mode *out, struct stls_span s);

/* Whether a delivery under mode fails without TLS (required, required-verify): the S21 alert and
 * the S22 causes apply to these. */
bool stls_dest_mode_requires_tls(enum stls_dest_mode mode);

/* Whether mode verifies the destination's certificate (preferred-verify, required-verify). */
bool stls_dest_mode_verifies(enum stls_dest_mode mode);

struct stls_dest_policy;

/* Loads the policy file at path. Returns STLS_OK with *out set, or an error with err (err_len
 * octets) holding "PATH:LINE: why": STLS_ERR_CONFIG for a line that is not "domain mode", an
 * invalid domain, an unknown mode or a domain listed twice (both lines named), STLS_ERR_IO when
 * the file cannot be read, STLS_ERR_NOMEM. The caller frees *out with stls_dest_policy_free. */
[[nodiscard]] enum stls_err stls_dest_policy_load(struct stls_dest_policy **out, const char *path, char *err,
						  size_t err_len);

/* The policy with no file: "*" = preferred. Returns STLS_OK, STLS_ERR_NOMEM or STLS_ERR_IO (no
 * random bytes for the table's seed). */
[[nodiscard]] enum stls_err stls_dest_policy_default(struct stls_dest_policy **out);

/* The mode for a destination domain (peer or DNS data in any bytes; a name that is not a valid
 * domain gets the "*" mode). *out_mode is always set; *out_matched_key, when not NULL, is set
 * to the key that matched ("example.com", ".example.com" or "*"), a span valid as long as the
 * policy, for the log line. Thread-safe, allocates nothing. */
void stls_dest_policy_lookup(const struct stls_dest_policy *policy, struct stls_span domain,
			     enum stls_dest_mode *out_mode, struct stls_span *out_matched_key);

/* The number of entries, the implicit "*" included. */
size_t stls_dest_policy_count(const struct stls_dest_policy *policy);

/* Frees a policy (NULL or *policy NULL is fine) and sets *policy to NULL. */
void stls_dest_policy_free(struct stls_dest_policy **policy);
