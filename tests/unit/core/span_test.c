/* Unit tests for core/span.c: bounded views of bytes. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "core/span.h"

#define EXPECT_SPAN(s, lit, ...) cr_assert(stls_span_eq((s), STLS_SPAN_LIT(lit)), __VA_ARGS__)

Test(span, lit_and_make)
{
	struct stls_span s = STLS_SPAN_LIT("abc");
	cr_assert_eq(s.len, 3, "the literal's NUL is not part of it");
	cr_assert_eq(memcmp(s.ptr, "abc", 3), 0);

	static const char bytes[] = { 'x', '\0', 'y' };
	s = stls_span_make(bytes, sizeof(bytes));
	cr_assert_eq((const void *)s.ptr, (const void *)bytes);
	cr_assert_eq(s.len, 3, "a span may hold NUL bytes");
}

Test(span, cstr)
{
	struct stls_span s = stls_span_cstr("hello");
	cr_assert_eq(s.len, 5);
	cr_assert_eq(stls_span_cstr("").len, 0);
	s = stls_span_cstr(NULL);
	cr_assert_eq(s.len, 0, "NULL is the empty span");
	cr_assert_null(s.ptr);
}

Test(span, from)
{
	struct stls_span s = STLS_SPAN_LIT("abcdef");
	struct stls_span t = stls_span_from(s, 2);
	EXPECT_SPAN(t, "cdef");
	cr_assert_eq(t.ptr, s.ptr + 2);
	EXPECT_SPAN(stls_span_from(s, 0), "abcdef");
	t = stls_span_from(s, 6);
	cr_assert_eq(t.len, 0);
	cr_assert_eq(t.ptr, s.ptr + 6, "at the end");
	t = stls_span_from(s, 1000);
	cr_assert_eq(t.len, 0, "past the end is empty");
	cr_assert_eq(t.ptr, s.ptr + 6, "and points at the end, never beyond");
}

Test(span, head)
{
	struct stls_span s = STLS_SPAN_LIT("abcdef");
	EXPECT_SPAN(stls_span_head(s, 3), "abc");
	EXPECT_SPAN(stls_span_head(s, 0), "");
	EXPECT_SPAN(stls_span_head(s, 6), "abcdef");
	EXPECT_SPAN(stls_span_head(s, 100), "abcdef", "longer than s: all of s");
}

Test(span, eq)
{
	cr_assert(stls_span_eq(STLS_SPAN_LIT("abc"), STLS_SPAN_LIT("abc")));
	cr_assert_not(stls_span_eq(STLS_SPAN_LIT("abc"), STLS_SPAN_LIT("abd")));
	cr_assert_not(stls_span_eq(STLS_SPAN_LIT("abc"), STLS_SPAN_LIT("ab")), "prefix is not equal");
	cr_assert_not(stls_span_eq(STLS_SPAN_LIT("abc"), STLS_SPAN_LIT("ABC")), "eq is case-sensitive");
	cr_assert(stls_span_eq(stls_span_cstr(NULL), STLS_SPAN_LIT("")), "empty spans are equal whatever ptr");
	cr_assert(stls_span_eq(stls_span_make("a\0b", 3), stls_span_make("a\0b", 3)), "NUL bytes compared");
	cr_assert_not(stls_span_eq(stls_span_make("a\0b", 3), stls_span_make("a\0c", 3)), "past a NUL");
}

Test(span, eq_nocase)
{
	cr_assert(stls_span_eq_nocase(STLS_SPAN_LIT("StartTLS"), STLS_SPAN_LIT("STARTTLS")));
	cr_assert(stls_span_eq_nocase(STLS_SPAN_LIT("ehlo"), STLS_SPAN_LIT("EHLO")));
	cr_assert(stls_span_eq_nocase(STLS_SPAN_LIT(""), STLS_SPAN_LIT("")));
	cr_assert_not(stls_span_eq_nocase(STLS_SPAN_LIT("EHLO"), STLS_SPAN_LIT("EHL")));
	cr_assert_not(stls_span_eq_nocase(STLS_SPAN_LIT("EHLO"), STLS_SPAN_LIT("HELO")));
	/* Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by 32 but are not letters. */
	cr_assert_not(stls_span_eq_nocase(STLS_SPAN_LIT("@"), STLS_SPAN_LIT("`")));
	cr_assert_not(stls_span_eq_nocase(STLS_SPAN_LIT("["), STLS_SPAN_LIT("{")));
	cr_assert_not(stls_span_eq_nocase(STLS_SPAN_LIT("\xc9"), STLS_SPAN_LIT("\xe9")), "no folding past ASCII");
}

Test(span, ascii_lower)
{
	cr_assert_eq(stls_ascii_lower('A'), 'a');
	cr_assert_eq(stls_ascii_lower('Z'), 'z');
	cr_assert_eq(stls_ascii_lower('a'), 'a');
	cr_assert_eq(stls_ascii_lower('@'), '@');
	cr_assert_eq(stls_ascii_lower('['), '[');
	cr_assert_eq(stls_ascii_lower(0xc9), 0xc9);
	for (unsigned c = 0; c < 256; c++) {
		uint8_t want = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : (uint8_t)c;
		cr_assert_eq(stls_ascii_lower((uint8_t)c), want, "byte 0x%02x", c);
	}
}

Test(span, starts_nocase)
{
	cr_assert(stls_span_starts_nocase(STLS_SPAN_LIT("from:<a@b>"), STLS_SPAN_LIT("FROM:")));
	cr_assert(stls_span_starts_nocase(STLS_SPAN_LIT("FROM:"), STLS_SPAN_LIT("FROM:")), "whole span");
	cr_assert(stls_span_starts_nocase(STLS_SPAN_LIT("abc"), STLS_SPAN_LIT("")), "empty prefix");
	cr_assert_not(stls_span_starts_nocase(STLS_SPAN_LIT("FROM"), STLS_SPAN_LIT("FROM:")), "shorter than prefix");
	cr_assert_not(stls_span_starts_nocase(STLS_SPAN_LIT("TO:<a>"), STLS_SPAN_LIT("FROM:")));
}

Test(span, trim)
{
	EXPECT_SPAN(stls_span_trim(STLS_SPAN_LIT("  \tabc d\t  ")), "abc d", "both ends, spaces and tabs");
	EXPECT_SPAN(stls_span_trim(STLS_SPAN_LIT("abc")), "abc");
	EXPECT_SPAN(stls_span_trim(STLS_SPAN_LIT("   ")), "", "only blanks");
	EXPECT_SPAN(stls_span_trim(STLS_SPAN_LIT("")), "");
	EXPECT_SPAN(stls_span_trim(STLS_SPAN_LIT("\r\nabc\r\n")), "\r\nabc\r\n", "CR and LF are not blanks");
	struct stls_span in = STLS_SPAN_LIT("  x ");
	cr_assert_eq(stls_span_trim(in).ptr, in.ptr + 2, "a view into the same bytes");
}

Test(span, next_word)
{
	struct stls_span word;
	struct stls_span rest = stls_span_next_word(STLS_SPAN_LIT("MAIL FROM:<a@b> SIZE=1"), &word);
	EXPECT_SPAN(word, "MAIL");
	EXPECT_SPAN(rest, "FROM:<a@b> SIZE=1");

	rest = stls_span_next_word(STLS_SPAN_LIT("QUIT"), &word);
	EXPECT_SPAN(word, "QUIT", "no space: the whole span");
	cr_assert_eq(rest.len, 0);

	rest = stls_span_next_word(STLS_SPAN_LIT("a    b  c"), &word);
	EXPECT_SPAN(word, "a");
	EXPECT_SPAN(rest, "b  c", "all spaces after the word are skipped, inner ones kept");

	rest = stls_span_next_word(STLS_SPAN_LIT(" lead"), &word);
	EXPECT_SPAN(word, "", "a leading space gives an empty word");
	EXPECT_SPAN(rest, "lead");

	rest = stls_span_next_word(STLS_SPAN_LIT("word   "), &word);
	EXPECT_SPAN(word, "word");
	cr_assert_eq(rest.len, 0);

	rest = stls_span_next_word(STLS_SPAN_LIT(""), &word);
	cr_assert_eq(word.len, 0);
	cr_assert_eq(rest.len, 0);

	rest = stls_span_next_word(STLS_SPAN_LIT("a\tb"), &word);
	EXPECT_SPAN(word, "a\tb", "only a space separates words");
}

Test(span, to_u64)
{
	uint64_t v = 77;
	cr_assert(stls_span_to_u64(STLS_SPAN_LIT("0"), 100, &v));
	cr_assert_eq(v, 0);
	cr_assert(stls_span_to_u64(STLS_SPAN_LIT("100"), 100, &v));
	cr_assert_eq(v, 100, "exactly max");
	cr_assert(stls_span_to_u64(STLS_SPAN_LIT("007"), 100, &v));
	cr_assert_eq(v, 7, "leading zeros");
	cr_assert(stls_span_to_u64(STLS_SPAN_LIT("18446744073709551615"), UINT64_MAX, &v));
	cr_assert_eq(v, UINT64_MAX);
	cr_assert(stls_span_to_u64(STLS_SPAN_LIT("10240000"), UINT64_MAX / 2, &v));
	cr_assert_eq(v, 10240000);
}

Test(span, to_u64_rejects)
{
	static const struct {
		const char *s;
		uint64_t max;
	} bad[] = {
		{ "", 100 },
		{ "101", 100 },
		{ "1000", 100 },
		{ "-1", 100 },
		{ "+1", 100 },
		{ " 1", 100 },
		{ "1 ", 100 },
		{ "1x", 100 },
		{ "0x10", 100 },
		{ "18446744073709551616", UINT64_MAX },
		{ "99999999999999999999", UINT64_MAX },
		{ "123456789012345678901", UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 42;
		cr_assert_not(stls_span_to_u64(stls_span_cstr(bad[i].s), bad[i].max, &v), "\"%s\" (max %llu) accepted",
			      bad[i].s, (unsigned long long)bad[i].max);
		cr_assert_eq(v, 42, "\"%s\": the output is untouched on failure", bad[i].s);
	}
	uint64_t v;
	cr_assert_not(stls_span_to_u64(stls_span_make("1\0", 2), 100, &v), "a NUL is not a digit");
}

Test(span, printable)
{
	char out[16];
	cr_assert_eq(stls_span_printable(out, sizeof(out), STLS_SPAN_LIT("hello")), out, "returns out");
	cr_assert_str_eq(out, "hello");

	stls_span_printable(out, sizeof(out), stls_span_make("a\r\nb\0c\x7f\x80\xff\t~ ", 12));
	cr_assert_str_eq(out, "a??b?c????~ ", "bytes outside 0x20..0x7e become '?'");

	stls_span_printable(out, sizeof(out), STLS_SPAN_LIT("0123456789abcdefXYZ"));
	cr_assert_str_eq(out, "0123456789abcde", "truncated to out_len - 1 and NUL-terminated");

	out[0] = 'z';
	stls_span_printable(out, 1, STLS_SPAN_LIT("abc"));
	cr_assert_str_eq(out, "", "out_len 1 gives the empty string");

	stls_span_printable(out, sizeof(out), stls_span_cstr(NULL));
	cr_assert_str_eq(out, "");
}
