/* Unit tests for core/domain_table.c: immutable domain -> value tables.
 *
 * Lookups take peer-supplied names, so besides the precedence rules every kind of hostile input
 * is tried (NUL, over-long names and labels, empty labels, non-ASCII bytes), and a randomised run
 * compares the table with a plain reference matcher written here from the rules alone. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/domain_table.h"
#include "core/mem.h"

struct entry {
	const char *key;
	uint32_t value;
};

static struct stls_domain_table *make_table(const struct entry *entries, size_t num)
{
	struct stls_domain_table_builder *b = NULL;
	cr_assert_eq(stls_domain_table_builder_new(&b), STLS_OK);
	for (size_t i = 0; i < num; i++) {
		bool dup = true;
		cr_assert_eq(stls_domain_table_add(b, stls_span_cstr(entries[i].key), entries[i].value, &dup), STLS_OK,
			     "add \"%s\"", entries[i].key);
		cr_assert_not(dup, "\"%s\" is not a duplicate", entries[i].key);
	}
	struct stls_domain_table *t = NULL;
	cr_assert_eq(stls_domain_table_build(&t, b), STLS_OK);
	cr_assert_not_null(t);
	return t;
}

/* Looks name up (any bytes) and checks the result: want_key NULL means no match. */
static void expect_lookup(const struct stls_domain_table *t, struct stls_span name, const char *want_key,
			  uint32_t want_value, const char *why)
{
	uint32_t value = 0xdeadbeef;
	struct stls_span key = { 0 };
	bool found = stls_domain_table_lookup(t, name, &value, &key);
	char shown[400];
	stls_span_printable(shown, sizeof(shown), name);
	if (!want_key) {
		cr_assert_not(found, "%s: \"%s\" matches nothing, got \"%.*s\"", why, shown, (int)key.len,
			      (const char *)key.ptr);
		return;
	}
	cr_assert(found, "%s: \"%s\" matches \"%s\"", why, shown, want_key);
	cr_assert(stls_span_eq(key, stls_span_cstr(want_key)), "%s: \"%s\" matched \"%.*s\", expected \"%s\"", why,
		  shown, (int)key.len, (const char *)key.ptr, want_key);
	cr_assert_eq(value, want_value, "%s: \"%s\" value %u, expected %u", why, shown, value, want_value);
}

#define EXPECT(t, name, key, value) expect_lookup((t), stls_span_cstr(name), (key), (value), name)

Test(domain_table, precedence_exact_then_parents_longest_first_then_star)
{
	static const struct entry entries[] = {
		{ "example.com", 1 },	     { ".example.com", 2 }, { "*", 3 },
		{ ".b.example.com", 4 },     { ".com", 5 },	    { "a.b.example.com", 6 },
		{ "_dmarc.example.com", 7 },
	};
	struct stls_domain_table *t = make_table(entries, sizeof(entries) / sizeof(entries[0]));
	cr_assert_eq(stls_domain_table_count(t), 7);

	EXPECT(t, "example.com", "example.com", 1);
	EXPECT(t, "www.example.com", ".example.com", 2);
	EXPECT(t, "a.b.example.com", "a.b.example.com", 6);
	EXPECT(t, "c.b.example.com", ".b.example.com", 4);
	EXPECT(t, "x.a.b.example.com", ".b.example.com", 4);
	EXPECT(t, "b.example.com", ".example.com", 2);
	EXPECT(t, "foo.com", ".com", 5);
	EXPECT(t, "com", "*", 3);
	EXPECT(t, "example.org", "*", 3);
	EXPECT(t, "_dmarc.example.com", "_dmarc.example.com", 7);
	EXPECT(t, "example.com.evil.test", "*", 3);
	EXPECT(t, "notexample.com", ".com", 5);
	stls_domain_table_free(&t);
	cr_assert_null(t, "free clears the pointer");
}

Test(domain_table, parent_entry_does_not_match_the_domain_itself)
{
	static const struct entry entries[] = { { ".example.com", 2 } };
	struct stls_domain_table *t = make_table(entries, 1);
	EXPECT(t, "example.com", NULL, 0);
	EXPECT(t, "www.example.com", ".example.com", 2);
	EXPECT(t, "a.b.c.example.com", ".example.com", 2);
	EXPECT(t, "wwwexample.com", NULL, 0);
	EXPECT(t, "com", NULL, 0);
	stls_domain_table_free(&t);
}

Test(domain_table, case_insensitive_and_trailing_dot)
{
	static const struct entry entries[] = { { "ExAmple.COM.", 1 }, { ".Sub.Example.Net", 2 }, { "*.", 3 } };
	struct stls_domain_table *t = make_table(entries, 3);
	EXPECT(t, "example.com", "example.com", 1);
	EXPECT(t, "EXAMPLE.COM", "example.com", 1);
	EXPECT(t, "eXaMpLe.CoM.", "example.com", 1);
	EXPECT(t, "WWW.SUB.EXAMPLE.NET", ".sub.example.net", 2);
	EXPECT(t, "www.sub.example.net.", ".sub.example.net", 2);
	EXPECT(t, "example.com..", "*", 3);
	EXPECT(t, "sub.example.net", "*", 3);

	uint32_t v = 0;
	cr_assert(stls_domain_table_get(t, STLS_SPAN_LIT("example.com"), &v), "stored lowercase, no dot");
	cr_assert_eq(v, 1);
	cr_assert(stls_domain_table_get(t, STLS_SPAN_LIT(".sub.example.net"), &v));
	cr_assert_eq(v, 2);
	cr_assert(stls_domain_table_get(t, STLS_SPAN_LIT("*"), &v));
	cr_assert_eq(v, 3);
	cr_assert_not(stls_domain_table_get(t, STLS_SPAN_LIT("Example.com"), &v), "get takes the stored form");
	cr_assert_not(stls_domain_table_get(t, STLS_SPAN_LIT("sub.example.net"), &v), "exact is not parent");
	stls_domain_table_free(&t);
}

Test(domain_table, invalid_keys_refused)
{
	char label64[80], long_name[300], max_name[300];
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".com");
	/* 253 octets: 63 + 1 + 63 + 1 + 63 + 1 + 61 */
	snprintf(max_name, sizeof(max_name), "%.63s.%.63s.%.63s.%.61s", label64, label64, label64, label64);
	cr_assert_eq(strlen(max_name), 253);
	snprintf(long_name, sizeof(long_name), "%sb", max_name); /* 254 octets, labels <= 63 */
	static const char *const bad[] = {
		"",
		".",
		"..",
		"a..b",
		".a..b",
		"..example.com",
		"example.com..",
		"-a.com",
		"a-.com",
		"a.-b",
		"exa mple.com",
		"ex@mple.com",
		"*.example.com",
		"**",
		"a*",
		".*",
		"b\xc3\xbc"
		"cher.de",
		"tab\t.com",
		"a/b",
		"[192.0.2.1]",
		"a:b",
	};
	struct stls_domain_table_builder *b = NULL;
	cr_assert_eq(stls_domain_table_builder_new(&b), STLS_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool dup = true;
		cr_assert_not_null(stls_domain_table_key_error(stls_span_cstr(bad[i])), "\"%s\" is refused", bad[i]);
		cr_assert_eq(stls_domain_table_add(b, stls_span_cstr(bad[i]), 1, &dup), STLS_ERR_CONFIG, "\"%s\"",
			     bad[i]);
		cr_assert_not(dup);
	}
	struct stls_span with_nul = stls_span_make("exa\0mple.com", 12);
	cr_assert_not_null(stls_domain_table_key_error(with_nul), "NUL inside a key");
	cr_assert_not_null(stls_domain_table_key_error(stls_span_cstr(label64)), "a 64-octet label");
	cr_assert_not_null(stls_domain_table_key_error(stls_span_cstr(long_name)), "254 octets");
	cr_assert_str_eq(stls_domain_table_key_error(STLS_SPAN_LIT("a..b")), "an empty label");
	cr_assert_str_eq(stls_domain_table_key_error(STLS_SPAN_LIT("-a.com")), "a label starting or ending with '-'");

	static const char *const good[] = {
		"a", "*", "*.", ".com", "xn--bcher-kva.de", "_dmarc.example.com", "a-b.c_d.e", "1.2.3.4", "EXAMPLE.COM."
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_null(stls_domain_table_key_error(stls_span_cstr(good[i])), "\"%s\" is valid", good[i]);
	cr_assert_null(stls_domain_table_key_error(stls_span_cstr(max_name)), "253 octets is the most");
	char dotted[300];
	snprintf(dotted, sizeof(dotted), ".%s.", max_name);
	cr_assert_null(stls_domain_table_key_error(stls_span_cstr(dotted)), "the dots are not counted");
	label64[63] = '.';
	cr_assert_null(stls_domain_table_key_error(stls_span_make(label64, 63)), "a 63-octet label");

	struct stls_domain_table *t = NULL;
	cr_assert_eq(stls_domain_table_build(&t, b), STLS_OK);
	cr_assert_eq(stls_domain_table_count(t), 0, "nothing was added");
	stls_domain_table_free(&t);
}

Test(domain_table, duplicates_keep_the_first_value)
{
	struct stls_domain_table_builder *b = NULL;
	bool dup = true;
	uint32_t v = 0;
	cr_assert_eq(stls_domain_table_builder_new(&b), STLS_OK);
	cr_assert_eq(stls_domain_table_add(b, STLS_SPAN_LIT("example.com"), 1, &dup), STLS_OK);
	cr_assert_not(dup);
	cr_assert_eq(stls_domain_table_add(b, STLS_SPAN_LIT("EXAMPLE.com."), 2, &dup), STLS_OK);
	cr_assert(dup, "same key after lowercasing and the dot");
	cr_assert_eq(stls_domain_table_add(b, STLS_SPAN_LIT(".example.com"), 3, &dup), STLS_OK);
	cr_assert_not(dup, "the parent entry is a different key");
	cr_assert_eq(stls_domain_table_add(b, STLS_SPAN_LIT(".Example.Com"), 4, &dup), STLS_OK);
	cr_assert(dup);
	cr_assert_eq(stls_domain_table_add(b, STLS_SPAN_LIT("*"), 5, &dup), STLS_OK);
	cr_assert_not(dup);
	cr_assert_eq(stls_domain_table_add(b, STLS_SPAN_LIT("*."), 6, &dup), STLS_OK);
	cr_assert(dup);

	cr_assert(stls_domain_table_builder_get(b, STLS_SPAN_LIT("Example.Com."), &v));
	cr_assert_eq(v, 1, "the first value stays");
	cr_assert(stls_domain_table_builder_get(b, STLS_SPAN_LIT(".EXAMPLE.COM"), &v));
	cr_assert_eq(v, 3);
	cr_assert(stls_domain_table_builder_get(b, STLS_SPAN_LIT("*"), &v));
	cr_assert_eq(v, 5);
	cr_assert_not(stls_domain_table_builder_get(b, STLS_SPAN_LIT("example.org"), &v));
	cr_assert_not(stls_domain_table_builder_get(b, STLS_SPAN_LIT("a..b"), &v), "invalid keys are never there");

	struct stls_domain_table *t = NULL;
	cr_assert_eq(stls_domain_table_build(&t, b), STLS_OK);
	cr_assert_eq(stls_domain_table_count(t), 3);
	EXPECT(t, "example.com", "example.com", 1);
	EXPECT(t, "www.example.com", ".example.com", 3);
	EXPECT(t, "example.org", "*", 5);
	stls_domain_table_free(&t);
}

Test(domain_table, hostile_lookups_match_only_star)
{
	static const struct entry entries[] = {
		{ "example.com", 1 }, { ".example.com", 2 }, { "a", 4 }, { ".a", 5 }, { "*", 9 },
	};
	struct stls_domain_table *t = make_table(entries, 5);
	static const struct entry no_star[] = { { "example.com", 1 }, { ".example.com", 2 } };
	struct stls_domain_table *t2 = make_table(no_star, 2);

	uint8_t big[600];
	memset(big, 'a', sizeof(big));
	/* 300 octets, all labels valid, ending in ".example.com": too long for a domain. */
	for (size_t i = 1; i < 286; i += 2)
		big[i] = '.';
	memcpy(big + 288, ".example.com", 12);
	uint8_t label64[80];
	memset(label64, 'w', 64);
	memcpy(label64 + 64, ".example.com", 12);

	const struct stls_span hostile[] = {
		STLS_SPAN_LIT(""),
		STLS_SPAN_LIT("."),
		STLS_SPAN_LIT(".."),
		STLS_SPAN_LIT("\0"),
		STLS_SPAN_LIT("example.com\0"),
		STLS_SPAN_LIT("www.example.com\0"),
		STLS_SPAN_LIT("\0.example.com"),
		STLS_SPAN_LIT("www\0.example.com"),
		STLS_SPAN_LIT("..example.com"),
		STLS_SPAN_LIT("www..example.com"),
		STLS_SPAN_LIT(".example.com"),
		STLS_SPAN_LIT("example.com.."),
		STLS_SPAN_LIT("b\xc3\xbc"
			      "cher.example.com"),
		STLS_SPAN_LIT("\xff\xfe.example.com"),
		STLS_SPAN_LIT("-www.example.com"),
		STLS_SPAN_LIT("www-.example.com"),
		STLS_SPAN_LIT("www.example.com\r\n"),
		STLS_SPAN_LIT("www example.com"),
		STLS_SPAN_LIT("*.example.com"),
		STLS_SPAN_LIT("*"),
		STLS_SPAN_LIT("[192.0.2.1]"),
		stls_span_make(big, 300),
		stls_span_make(big, sizeof(big)),
		stls_span_make(label64, 76),
	};
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		char why[32];
		snprintf(why, sizeof(why), "hostile #%zu", i);
		expect_lookup(t, hostile[i], "*", 9, why);
		expect_lookup(t2, hostile[i], NULL, 0, why);
	}
	/* The same labels within the limits do match. */
	big[47] = 'x'; /* big + 47: "x.a.a.[...].aa.example.com" */
	expect_lookup(t, stls_span_make(big + 47, 253), ".example.com", 2, "253 octets");
	expect_lookup(t, stls_span_make(big + 46, 254), "*", 9, "254 octets");
	expect_lookup(t, stls_span_make(label64 + 1, 75), ".example.com", 2, "a 63-octet label");
	expect_lookup(t, STLS_SPAN_LIT("a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"), ".a", 5, "many labels");
	expect_lookup(t, STLS_SPAN_LIT("a"), "a", 4, "one label");
	stls_domain_table_free(&t);
	stls_domain_table_free(&t2);
}

/* xorshift64*: the tests' reproducible randomness. */
static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* The reference: a valid lookup name per the header's rules, checked byte by byte. */
static bool ref_valid(const char *name, size_t len)
{
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || name[i] == '.') {
			size_t n = i - start;
			if (n == 0 || n > 63 || name[start] == '-' || name[i - 1] == '-')
				return false;
			start = i + 1;
			continue;
		}
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			return false;
	}
	return true;
}

/* The reference matcher: a linear search over the keys in the order the rules give. */
static const struct entry *ref_lookup(const struct entry *keys, size_t num, const char *name, size_t len)
{
	char low[300];
	if (!ref_valid(name, len))
		goto star;
	if (name[len - 1] == '.')
		len--;
	for (size_t i = 0; i < len; i++)
		low[i] = (char)stls_ascii_lower((uint8_t)name[i]);
	for (size_t i = 0; i < num; i++)
		if (strlen(keys[i].key) == len && memcmp(keys[i].key, low, len) == 0)
			return &keys[i];
	for (size_t dot = 0; dot < len; dot++) {
		if (low[dot] != '.')
			continue;
		for (size_t i = 0; i < num; i++)
			if (strlen(keys[i].key) == len - dot && memcmp(keys[i].key, low + dot, len - dot) == 0)
				return &keys[i];
	}
star:
	for (size_t i = 0; i < num; i++)
		if (strcmp(keys[i].key, "*") == 0)
			return &keys[i];
	return NULL;
}

Test(domain_table, random_names_agree_with_the_reference)
{
	static const struct entry entries[] = {
		{ "a.b", 1 }, { ".b", 2 }, { ".a.b", 3 },   { "b-a.b", 4 },
		{ "_.a", 5 }, { "ab", 6 }, { ".a-b.a", 7 }, { "*", 8 },
	};
	size_t num = sizeof(entries) / sizeof(entries[0]);
	struct stls_domain_table *t = make_table(entries, num);
	struct stls_domain_table *t2 = make_table(entries, num - 1);
	static const char alphabet[] = { 'a', 'b', 'A', 'B', '.', '.', '-', '_', '\0', '\xc3', ' ' };
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	char name[16];
	for (unsigned iter = 0; iter < 200000; iter++) {
		size_t len = rnd_next(&s) % sizeof(name);
		for (size_t i = 0; i < len; i++)
			name[i] = alphabet[rnd_next(&s) % sizeof(alphabet)];
		const struct entry *want = ref_lookup(entries, num, name, len);
		expect_lookup(t, stls_span_make(name, len), want ? want->key : NULL, want ? want->value : 0, "random");
		want = ref_lookup(entries, num - 1, name, len);
		expect_lookup(t2, stls_span_make(name, len), want ? want->key : NULL, want ? want->value : 0,
			      "random, no star");
	}
	stls_domain_table_free(&t);
	stls_domain_table_free(&t2);
}

/* A random label of 1 to max letters (never a digit: the non-keys below carry one). */
static size_t rnd_label(uint64_t *s, char *out, size_t max)
{
	size_t n = 1 + rnd_next(s) % max;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)('a' + rnd_next(s) % 26);
	return n;
}

Test(domain_table, hundred_thousand_random_domains)
{
	enum { NUM = 100000, KEY_LEN = 160 };
	char(*keys)[KEY_LEN] = stls_calloc(NUM, KEY_LEN);
	bool *is_dup = stls_calloc(NUM, sizeof(bool));
	cr_assert_not_null(keys);
	struct stls_domain_table_builder *b = NULL;
	cr_assert_eq(stls_domain_table_builder_new(&b), STLS_OK);
	static const char *const tlds[] = { "com", "net", "org", "de", "test" };
	uint64_t s = 42;
	size_t added = 0;
	for (size_t i = 0; i < NUM; i++) {
		char *k = keys[i];
		size_t len = 0;
		if (i % 4 == 0)
			k[len++] = '.'; /* a quarter are parent entries */
		unsigned labels = 1 + (unsigned)(rnd_next(&s) % 3);
		for (unsigned l = 0; l < labels; l++) {
			/* Mostly short labels, some up to 63 octets to cover the long-label hash. */
			len += rnd_label(&s, k + len, rnd_next(&s) % 8 == 0 ? 40 : 10);
			k[len++] = '.';
		}
		len += (size_t)snprintf(k + len, KEY_LEN - len, "%s", tlds[rnd_next(&s) % 5]);
		bool dup = false;
		cr_assert_eq(stls_domain_table_add(b, stls_span_make(k, len), (uint32_t)i, &dup), STLS_OK, "%s", k);
		is_dup[i] = dup;
		added += !dup;
	}
	cr_assert_gt(added, NUM * 9 / 10, "random keys are mostly distinct");
	struct stls_domain_table *t = NULL;
	cr_assert_eq(stls_domain_table_build(&t, b), STLS_OK);
	cr_assert_eq(stls_domain_table_count(t), added);

	for (size_t i = 0; i < NUM; i++) {
		if (is_dup[i])
			continue;
		const char *k = keys[i];
		uint32_t v = 0;
		struct stls_span mk;
		cr_assert(stls_domain_table_get(t, stls_span_cstr(k), &v), "get %s", k);
		cr_assert_eq(v, i, "get %s", k);
		if (k[0] == '.') {
			char sub[KEY_LEN + 8];
			snprintf(sub, sizeof(sub), "Zz%s", k);
			cr_assert(stls_domain_table_lookup(t, stls_span_cstr(sub), &v, &mk), "lookup %s", sub);
			cr_assert(stls_span_eq(mk, stls_span_cstr(k)), "lookup %s matched %.*s", sub, (int)mk.len,
				  (const char *)mk.ptr);
		} else {
			cr_assert(stls_domain_table_lookup(t, stls_span_cstr(k), &v, &mk), "lookup %s", k);
			cr_assert(stls_span_eq(mk, stls_span_cstr(k)));
		}
		cr_assert_eq(v, i, "value of %s", k);
	}
	/* Names with a digit in every label are never keys, nor under a parent key (no parent key is
	 * a bare TLD). */
	for (unsigned i = 0; i < NUM; i++) {
		char name[KEY_LEN];
		size_t len = 0;
		for (unsigned l = 0; l < 2; l++) {
			len += rnd_label(&s, name + len, 10);
			name[len++] = (char)('0' + rnd_next(&s) % 10);
			name[len++] = '.';
		}
		len += (size_t)snprintf(name + len, sizeof(name) - len, "%s", tlds[rnd_next(&s) % 5]);
		uint32_t v;
		cr_assert_not(stls_domain_table_lookup(t, stls_span_make(name, len), &v, NULL), "%s is not a key",
			      name);
		cr_assert_not(stls_domain_table_get(t, stls_span_make(name, len), &v));
	}
	stls_domain_table_free(&t);
	stls_free_ptr(&keys);
	stls_free_ptr(&is_dup);
}

Test(domain_table, empty_table_and_star_only)
{
	struct stls_domain_table *t = make_table(NULL, 0);
	uint32_t v = 7;
	struct stls_span k = { 0 };
	cr_assert_eq(stls_domain_table_count(t), 0);
	cr_assert_not(stls_domain_table_lookup(t, STLS_SPAN_LIT("example.com"), &v, &k));
	cr_assert_not(stls_domain_table_lookup(t, STLS_SPAN_LIT(""), &v, NULL));
	cr_assert_not(stls_domain_table_get(t, STLS_SPAN_LIT("example.com"), &v));
	cr_assert_not(stls_domain_table_get(t, STLS_SPAN_LIT("*"), &v));
	cr_assert_not(stls_domain_table_get(t, STLS_SPAN_LIT(""), &v));
	cr_assert_eq(v, 7, "a miss leaves the value alone");
	stls_domain_table_free(&t);

	static const struct entry star[] = { { "*", 11 } };
	t = make_table(star, 1);
	cr_assert_eq(stls_domain_table_count(t), 1);
	EXPECT(t, "example.com", "*", 11);
	EXPECT(t, "", "*", 11);
	expect_lookup(t, STLS_SPAN_LIT("\0\xff"), "*", 11, "garbage");
	stls_domain_table_free(&t);
	stls_domain_table_free(&t);
	stls_domain_table_free(NULL);
}

Test(domain_table, builder_freed_unbuilt)
{
	struct stls_domain_table_builder *b = NULL;
	bool dup;
	cr_assert_eq(stls_domain_table_builder_new(&b), STLS_OK);
	for (unsigned i = 0; i < 1000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "host%u.example.com", i);
		cr_assert_eq(stls_domain_table_add(b, stls_span_cstr(name), i, &dup), STLS_OK);
	}
	stls_domain_table_builder_free(&b);
	cr_assert_null(b);
	stls_domain_table_builder_free(&b);
	stls_domain_table_builder_free(NULL);
}

Test(domain_table, tables_are_seeded_apart)
{
	/* Two tables with the same keys: both answer the same, whatever their seeds. */
	static const struct entry entries[] = { { "example.com", 1 }, { ".example.com", 2 }, { "*", 3 } };
	struct stls_domain_table *a = make_table(entries, 3), *b = make_table(entries, 3);
	EXPECT(a, "www.example.com", ".example.com", 2);
	EXPECT(b, "www.example.com", ".example.com", 2);
	stls_domain_table_free(&a);
	stls_domain_table_free(&b);
}

struct reader_arg {
	const struct stls_domain_table *t;
	unsigned bad;
};

static void *reader(void *p)
{
	struct reader_arg *arg = p;
	for (unsigned i = 0; i < 20000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "h%u.example.com", i % 100);
		uint32_t v;
		if (!stls_domain_table_lookup(arg->t, stls_span_cstr(name), &v, NULL) ||
		    v != (i % 100 < 50 ? i % 100 : 1000))
			arg->bad++;
	}
	return NULL;
}

Test(domain_table, many_readers_at_once)
{
	struct stls_domain_table_builder *b = NULL;
	bool dup;
	cr_assert_eq(stls_domain_table_builder_new(&b), STLS_OK);
	for (unsigned i = 0; i < 50; i++) {
		char name[32];
		snprintf(name, sizeof(name), "h%u.example.com", i);
		cr_assert_eq(stls_domain_table_add(b, stls_span_cstr(name), i, &dup), STLS_OK);
	}
	cr_assert_eq(stls_domain_table_add(b, STLS_SPAN_LIT(".example.com"), 1000, &dup), STLS_OK);
	struct stls_domain_table *t = NULL;
	cr_assert_eq(stls_domain_table_build(&t, b), STLS_OK);
	pthread_t th[4];
	struct reader_arg args[4];
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){ .t = t };
		cr_assert_eq(pthread_create(&th[i], NULL, reader, &args[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(args[i].bad, 0, "reader %u saw %u wrong answers", i, args[i].bad);
	}
	stls_domain_table_free(&t);
}
