#include "proto/dest_policy.h"

#include <assert.h>
#include <stdio.h>

#include "core/domain_table.h"
#include "core/mem.h"
#include "core/table_file.h"

/* A table value packs the mode (low 4 bits) and the line the entry came from (the rest; 0 for
 * the implicit "*"), so a duplicate names both lines without a second table. 2^28 lines is more
 * than a 256 MiB file can hold ("a b\n" is 4 octets). */
#define DP_MODE_BITS 4
#define DP_MODE_MASK ((1u << DP_MODE_BITS) - 1)
static_assert(STLS_DEST__COUNT <= (1u << DP_MODE_BITS), "modes fit the value's low bits");
static_assert(STLS_TABLE_FILE_MAX_SIZE / 4 <= (UINT32_MAX >> DP_MODE_BITS), "line numbers fit the value");

struct stls_dest_policy {
	struct stls_domain_table *table;
};

static const char *const mode_names[STLS_DEST__COUNT] = {
	[STLS_DEST_NONE] = "none",
	[STLS_DEST_PREFERRED] = "preferred",
	[STLS_DEST_REQUIRED] = "required",
	[STLS_DEST_PREFERRED_VERIFY] = "preferred-verify",
	[STLS_DEST_REQUIRED_VERIFY] = "required-verify",
};

const char *stls_dest_mode_str(enum stls_dest_mode mode)
{
	return (unsigned)mode < STLS_DEST__COUNT ? mode_names[mode] : "?";
}

bool stls_dest_mode_parse(enum stls_dest_mode *out, struct stls_span s)
{
	for (unsigned m = 0; m < STLS_DEST__COUNT; m++) {
		if (stls_span_eq_nocase(s, stls_span_cstr(mode_names[m]))) {
			*out = (enum stls_dest_mode)m;
			return true;
		}
	}
	return false;
}

bool stls_dest_mode_requires_tls(enum stls_dest_mode mode)
{
	return mode == STLS_DEST_REQUIRED || mode == STLS_DEST_REQUIRED_VERIFY;
}

bool stls_dest_mode_verifies(enum stls_dest_mode mode)
{
	return mode == STLS_DEST_PREFERRED_VERIFY || mode == STLS_DEST_REQUIRED_VERIFY;
}

static enum stls_err dp_entry(void *ctx, unsigned lineno, struct stls_span *fields, unsigned num_fields, char *why,
			      size_t why_len)
{
	struct stls_domain_table_builder *b = ctx;
	char shown[100];
	if (num_fields != 2) {
		snprintf(why, why_len, "expected \"domain mode\", found %u field%s", num_fields,
			 num_fields == 1 ? "" : "s");
		return STLS_ERR_CONFIG;
	}
	const char *bad = stls_domain_table_key_error(fields[0]);
	if (bad) {
		snprintf(why, why_len, "invalid domain \"%s\": %s",
			 stls_span_printable(shown, sizeof(shown), fields[0]), bad);
		return STLS_ERR_CONFIG;
	}
	enum stls_dest_mode mode;
	if (!stls_dest_mode_parse(&mode, fields[1])) {
		snprintf(why, why_len,
			 "unknown mode \"%s\" (none, preferred, required, preferred-verify, required-verify)",
			 stls_span_printable(shown, sizeof(shown), fields[1]));
		return STLS_ERR_CONFIG;
	}
	bool dup;
	STLS_TRY(stls_domain_table_add(b, fields[0], (uint32_t)mode | ((uint32_t)lineno << DP_MODE_BITS), &dup));
	if (dup) {
		uint32_t first = 0;
		(void)stls_domain_table_builder_get(b, fields[0], &first);
		snprintf(why, why_len, "duplicate entry for \"%s\" (first on line %u)",
			 stls_span_printable(shown, sizeof(shown), fields[0]), (unsigned)(first >> DP_MODE_BITS));
		return STLS_ERR_CONFIG;
	}
	return STLS_OK;
}

/* Adds the documented default, "*" = preferred (S20), unless the file has its own "*"; builds. */
static enum stls_err dp_finish(struct stls_dest_policy **out, struct stls_domain_table_builder **b)
{
	enum stls_err ret;
	bool dup;
	struct stls_dest_policy *policy = NULL;
	ret = stls_domain_table_add(*b, STLS_SPAN_LIT("*"), STLS_DEST_PREFERRED, &dup);
	if (ret != STLS_OK)
		goto out;
	policy = stls_calloc(1, sizeof(*policy));
	if (!policy) {
		ret = STLS_ERR_NOMEM;
		goto out;
	}
	ret = stls_domain_table_build(&policy->table, *b);
	*b = NULL;
	if (ret != STLS_OK)
		goto out;
	*out = policy;
	policy = NULL;
out:
	stls_domain_table_builder_free(b);
	stls_dest_policy_free(&policy);
	return ret;
}

enum stls_err stls_dest_policy_load(struct stls_dest_policy **out, const char *path, char *err, size_t err_len)
{
	enum stls_err ret;
	struct stls_domain_table_builder *b = NULL;
	*out = NULL;
	ret = stls_domain_table_builder_new(&b);
	if (ret != STLS_OK) {
		snprintf(err, err_len, "%s: cannot make a table: %s", path, stls_err_str(ret));
		return ret;
	}
	ret = stls_table_file_read(path, dp_entry, b, err, err_len);
	if (ret != STLS_OK) {
		stls_domain_table_builder_free(&b);
		return ret;
	}
	ret = dp_finish(out, &b);
	if (ret != STLS_OK)
		snprintf(err, err_len, "%s: cannot build the table: %s", path, stls_err_str(ret));
	return ret;
}

enum stls_err stls_dest_policy_default(struct stls_dest_policy **out)
{
	struct stls_domain_table_builder *b = NULL;
	*out = NULL;
	STLS_TRY(stls_domain_table_builder_new(&b));
	return dp_finish(out, &b);
}

void stls_dest_policy_lookup(const struct stls_dest_policy *policy, struct stls_span domain,
			     enum stls_dest_mode *out_mode, struct stls_span *out_matched_key)
{
	uint32_t value;
	if (stls_domain_table_lookup(policy->table, domain, &value, out_matched_key)) {
		*out_mode = (enum stls_dest_mode)(value & DP_MODE_MASK);
		return;
	}
	/* Unreachable: every policy has "*". Should that ever break, fail towards the default. */
	*out_mode = STLS_DEST_PREFERRED;
	if (out_matched_key)
		*out_matched_key = STLS_SPAN_LIT("*");
}

size_t stls_dest_policy_count(const struct stls_dest_policy *policy)
{
	return stls_domain_table_count(policy->table);
}

void stls_dest_policy_free(struct stls_dest_policy **policy)
{
	if (!policy || !*policy)
		return;
	stls_domain_table_free(&(*policy)->table);
	stls_free_ptr(policy);
}
