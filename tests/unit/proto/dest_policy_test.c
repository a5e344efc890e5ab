/* Unit tests for proto/dest_policy.c: the destination TLS policy (spec S15-S20).
 *
 * Policy files are written into a fresh mkdtemp folder under /tmp that each test removes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/tmpdir.h"
#include "proto/dest_policy.h"

static char tmpdir[64];

static void setup(void)
{
	stls_tmpdir_make(tmpdir, sizeof(tmpdir), "dest-policy-test");
}

static void teardown(void)
{
	stls_tmpdir_remove(tmpdir);
}

TestSuite(dest_policy, .init = setup, .fini = teardown);

/* Writes len bytes into a new file in the test's folder; returns its path. */
static const char *write_file_n(const char *name, const char *text, size_t len)
{
	return stls_tmpdir_file(tmpdir, name, text, len);
}

static const char *write_file(const char *name, const char *text)
{
	return write_file_n(name, text, strlen(text));
}

static void expect_mode(const struct stls_dest_policy *p, const char *domain, enum stls_dest_mode want,
			const char *want_key)
{
	enum stls_dest_mode mode = STLS_DEST__COUNT;
	struct stls_span key = { 0 };
	stls_dest_policy_lookup(p, stls_span_cstr(domain), &mode, &key);
	cr_assert_eq(mode, want, "%s: %s, expected %s", domain, stls_dest_mode_str(mode), stls_dest_mode_str(want));
	cr_assert(stls_span_eq(key, stls_span_cstr(want_key)), "%s matched \"%.*s\", expected \"%s\"", domain,
		  (int)key.len, (const char *)key.ptr, want_key);
}

/* Loads text as a policy file and expects the load to fail with "PATH:want". */
static void expect_load_error_n(const char *text, size_t len, enum stls_err want_err, const char *want)
{
	const char *path = write_file_n("bad", text, len);
	struct stls_dest_policy *p = NULL;
	char err[512] = "", full[512];
	cr_assert_eq(stls_dest_policy_load(&p, path, err, sizeof(err)), want_err, "%s", err);
	cr_assert_null(p);
	snprintf(full, sizeof(full), "%s:%s", path, want);
	cr_assert_str_eq(err, full);
	unlink(path);
}

#define expect_load_error(lit, want_err, want) expect_load_error_n((lit), sizeof(lit) - 1, (want_err), (want))

Test(dest_policy, mode_names_round_trip)
{
	static const char *const names[] = { "none", "preferred", "required", "preferred-verify", "required-verify" };
	for (unsigned m = 0; m < STLS_DEST__COUNT; m++) {
		enum stls_dest_mode parsed = STLS_DEST__COUNT;
		cr_assert_str_eq(stls_dest_mode_str((enum stls_dest_mode)m), names[m]);
		cr_assert(stls_dest_mode_parse(&parsed, stls_span_cstr(names[m])));
		cr_assert_eq(parsed, m);
	}
	enum stls_dest_mode parsed = STLS_DEST_NONE;
	cr_assert(stls_dest_mode_parse(&parsed, STLS_SPAN_LIT("Required-Verify")), "case does not matter");
	cr_assert_eq(parsed, STLS_DEST_REQUIRED_VERIFY);
	parsed = STLS_DEST_NONE;
	cr_assert_not(stls_dest_mode_parse(&parsed, STLS_SPAN_LIT("requird")));
	cr_assert_not(stls_dest_mode_parse(&parsed, STLS_SPAN_LIT("required-")));
	cr_assert_not(stls_dest_mode_parse(&parsed, STLS_SPAN_LIT("")));
	cr_assert_not(stls_dest_mode_parse(&parsed, STLS_SPAN_LIT("none\0")));
	cr_assert_eq(parsed, STLS_DEST_NONE, "a failed parse leaves *out alone");
	cr_assert_str_eq(stls_dest_mode_str(STLS_DEST__COUNT), "?");
	cr_assert_str_eq(stls_dest_mode_str((enum stls_dest_mode) - 1), "?");
}

Test(dest_policy, requires_tls_and_verifies)
{
	cr_assert_not(stls_dest_mode_requires_tls(STLS_DEST_NONE));
	cr_assert_not(stls_dest_mode_requires_tls(STLS_DEST_PREFERRED));
	cr_assert(stls_dest_mode_requires_tls(STLS_DEST_REQUIRED));
	cr_assert_not(stls_dest_mode_requires_tls(STLS_DEST_PREFERRED_VERIFY));
	cr_assert(stls_dest_mode_requires_tls(STLS_DEST_REQUIRED_VERIFY));
	cr_assert_not(stls_dest_mode_verifies(STLS_DEST_NONE));
	cr_assert_not(stls_dest_mode_verifies(STLS_DEST_PREFERRED));
	cr_assert_not(stls_dest_mode_verifies(STLS_DEST_REQUIRED));
	cr_assert(stls_dest_mode_verifies(STLS_DEST_PREFERRED_VERIFY));
	cr_assert(stls_dest_mode_verifies(STLS_DEST_REQUIRED_VERIFY));
}

Test(dest_policy, design_example)
{
	const char *path =
		write_file("policy", "# --dest-policy FILE: domain  mode\n"
				     "example.com        required\n"
				     ".example.com       preferred          # every subdomain of example.com\n"
				     "bank.test          required-verify\n"
				     "clear.test         NONE\n"
				     ".partner.test      preferred-verify\n"
				     "*                  required           # everything else\n");
	struct stls_dest_policy *p = NULL;
	char err[256] = "";
	cr_assert_eq(stls_dest_policy_load(&p, path, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(stls_dest_policy_count(p), 6);
	expect_mode(p, "example.com", STLS_DEST_REQUIRED, "example.com");
	expect_mode(p, "EXAMPLE.COM.", STLS_DEST_REQUIRED, "example.com");
	expect_mode(p, "mx1.example.com", STLS_DEST_PREFERRED, ".example.com");
	expect_mode(p, "bank.test", STLS_DEST_REQUIRED_VERIFY, "bank.test");
	expect_mode(p, "www.bank.test", STLS_DEST_REQUIRED, "*");
	expect_mode(p, "clear.test", STLS_DEST_NONE, "clear.test");
	expect_mode(p, "a.b.partner.test", STLS_DEST_PREFERRED_VERIFY, ".partner.test");
	expect_mode(p, "partner.test", STLS_DEST_REQUIRED, "*");
	expect_mode(p, "other.org", STLS_DEST_REQUIRED, "*");
	expect_mode(p, "bad..example.com", STLS_DEST_REQUIRED, "*");
	stls_dest_policy_free(&p);
	cr_assert_null(p);
	stls_dest_policy_free(&p);
}

Test(dest_policy, star_defaults_to_preferred)
{
	const char *path = write_file("policy", "secure.test required\n");
	struct stls_dest_policy *p = NULL;
	char err[256] = "";
	cr_assert_eq(stls_dest_policy_load(&p, path, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(stls_dest_policy_count(p), 2, "the implicit \"*\" counts");
	expect_mode(p, "secure.test", STLS_DEST_REQUIRED, "secure.test");
	expect_mode(p, "elsewhere.test", STLS_DEST_PREFERRED, "*");
	stls_dest_policy_free(&p);

	cr_assert_eq(stls_dest_policy_default(&p), STLS_OK);
	cr_assert_eq(stls_dest_policy_count(p), 1);
	expect_mode(p, "example.com", STLS_DEST_PREFERRED, "*");
	expect_mode(p, "", STLS_DEST_PREFERRED, "*");
	stls_dest_policy_free(&p);

	path = write_file("empty", "# nothing but a comment\n");
	cr_assert_eq(stls_dest_policy_load(&p, path, err, sizeof(err)), STLS_OK, "%s", err);
	expect_mode(p, "example.com", STLS_DEST_PREFERRED, "*");
	stls_dest_policy_free(&p);
}

Test(dest_policy, errors_name_file_and_line)
{
	expect_load_error("a.test none\n\nb.test requird\n", STLS_ERR_CONFIG,
			  "3: unknown mode \"requird\" (none, preferred, required, preferred-verify, required-verify)");
	expect_load_error("a.test\n", STLS_ERR_CONFIG, "1: expected \"domain mode\", found 1 field");
	expect_load_error("a.test none extra\n", STLS_ERR_CONFIG, "1: expected \"domain mode\", found 3 fields");
	expect_load_error("ok.test none\nexa_mple..com none\n", STLS_ERR_CONFIG,
			  "2: invalid domain \"exa_mple..com\": an empty label");
	expect_load_error("*.example.com required\n", STLS_ERR_CONFIG,
			  "1: invalid domain \"*.example.com\": '*' stands alone (\".example.com\" is every subdomain "
			  "of example.com)");
	expect_load_error("b\xc3\xbc"
			  "cher.de none\n",
			  STLS_ERR_CONFIG,
			  "1: invalid domain \"b??cher.de\": a character other than letters, digits, '-', '_' and '.'");
	expect_load_error("a.test none\nb.test none\n\nA.Test. required\n", STLS_ERR_CONFIG,
			  "4: duplicate entry for \"A.Test.\" (first on line 1)");
	expect_load_error("* none\n# again\n* required\n", STLS_ERR_CONFIG,
			  "3: duplicate entry for \"*\" (first on line 1)");
	expect_load_error("x.test none\nbad\0.test none\n", STLS_ERR_CONFIG, "2: NUL byte in the line");
}

Test(dest_policy, error_for_unreadable_file)
{
	struct stls_dest_policy *p = NULL;
	char err[256] = "", path[128], want[256];
	snprintf(path, sizeof(path), "%s/absent", tmpdir);
	cr_assert_eq(stls_dest_policy_load(&p, path, err, sizeof(err)), STLS_ERR_IO);
	cr_assert_null(p);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	cr_assert_str_eq(err, want);
}

Test(dest_policy, hostile_domains_get_the_star_mode)
{
	const char *path = write_file("policy", "example.com required-verify\n.example.com required\n* none\n");
	struct stls_dest_policy *p = NULL;
	char err[256] = "";
	cr_assert_eq(stls_dest_policy_load(&p, path, err, sizeof(err)), STLS_OK, "%s", err);
	static const struct {
		const char *bytes;
		size_t len;
	} hostile[] = {
		{ "example.com\0", 12 }, { "\0", 1 }, { "www..example.com", 16 }, { "b\xc3\xbc.example.com", 15 },
		{ ".example.com", 12 },	 { "", 0 },   { "example.com\r\n", 13 },
	};
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		enum stls_dest_mode mode = STLS_DEST__COUNT;
		struct stls_span key;
		stls_dest_policy_lookup(p, stls_span_make(hostile[i].bytes, hostile[i].len), &mode, &key);
		cr_assert_eq(mode, STLS_DEST_NONE, "hostile #%zu", i);
		cr_assert(stls_span_eq(key, STLS_SPAN_LIT("*")), "hostile #%zu", i);
	}
	char big[400];
	memset(big, 'a', sizeof(big));
	memcpy(big + sizeof(big) - 12, ".example.com", 12);
	enum stls_dest_mode mode = STLS_DEST__COUNT;
	stls_dest_policy_lookup(p, stls_span_make(big, sizeof(big)), &mode, NULL);
	cr_assert_eq(mode, STLS_DEST_NONE, "400 octets");
	stls_dest_policy_free(&p);
}
