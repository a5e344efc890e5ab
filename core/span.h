/* Bounded views of bytes.
 *
 * Every byte from the network is read through a span (pointer + length), never as a
 * NUL-terminated string: no strlen, strchr or sscanf on peer data, and no temporary NUL written
 * into an input buffer. A span does not own its bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct stls_span {
	const uint8_t *ptr;
	size_t len;
};

#define STLS_SPAN_LIT(s) ((struct stls_span){ (const uint8_t *)(s), sizeof(s) - 1 })

/* A span over len bytes at p. */
static inline struct stls_span stls_span_make(const void *p, size_t len)
{
	return (struct stls_span){ (const uint8_t *)p, len };
}

/* A span over a C string the program itself owns (never peer data). */
static inline struct stls_span stls_span_cstr(const char *s)
{
	return (struct stls_span){ (const uint8_t *)s, s ? strlen(s) : 0 };
}

/* The bytes from off to the end; empty if off is past the end. */
static inline struct stls_span stls_span_from(struct stls_span s, size_t off)
{
	if (off >= s.len)
		return (struct stls_span){ s.ptr + s.len, 0 };
	return (struct stls_span){ s.ptr + off, s.len - off };
}

/* The first n bytes (all of s if shorter). */
static inline struct stls_span stls_span_head(struct stls_span s, size_t n)
{
	return (struct stls_span){ s.ptr, n < s.len ? n : s.len };
}

static inline bool stls_span_eq(struct stls_span a, struct stls_span b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline uint8_t stls_ascii_lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* ASCII case-insensitive equality (SMTP verbs, keywords and domains). */
bool stls_span_eq_nocase(struct stls_span a, struct stls_span b);

/* True if s starts with prefix, ASCII case-insensitively. */
bool stls_span_starts_nocase(struct stls_span s, struct stls_span prefix);

/* s without leading and trailing spaces and tabs. */
struct stls_span stls_span_trim(struct stls_span s);

/* Splits s at the first space: *out_word is what precedes it, the return value what follows it
 * (with further leading spaces skipped). With no space, *out_word is s and the rest is empty. */
struct stls_span stls_span_next_word(struct stls_span s, struct stls_span *out_word);

/* Parses s as a decimal number no larger than max. Returns false on an empty span, any non-digit
 * or a value above max. */
bool stls_span_to_u64(struct stls_span s, uint64_t max, uint64_t *out_value);

/* Copies s into out (size out_len, out_len >= 1), replacing every byte outside printable ASCII
 * with '?', truncating if needed, and NUL-terminates. Returns out. For logging peer data. */
char *stls_span_printable(char *out, size_t out_len, struct stls_span s);
