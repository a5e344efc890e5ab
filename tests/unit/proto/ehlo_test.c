/* Unit tests for proto/ehlo.c: the backend's EHLO capabilities and the proxy's own EHLO reply.
 *
 * The backend's reply goes through the real reply parser first, as it does in the daemon. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "proto/ehlo.h"
#include "proto/smtp_reply.h"

static const char postfix_ehlo[] = "250-legacy.test\r\n"
				   "250-PIPELINING\r\n"
				   "250-SIZE 10240000\r\n"
				   "250-VRFY\r\n"
				   "250-ETRN\r\n"
				   "250-STARTTLS\r\n"
				   "250-AUTH PLAIN LOGIN\r\n"
				   "250-XCLIENT ADDR NAME\r\n"
				   "250-XFORWARD NAME\r\n"
				   "250-ENHANCEDSTATUSCODES\r\n"
				   "250-8BITMIME\r\n"
				   "250-DSN\r\n"
				   "250-SMTPUTF8\r\n"
				   "250 CHUNKING\r\n";

static uint32_t bit(enum stls_ehlo_ext e)
{
	return 1u << e;
}

/* Parses text as one complete reply with the real parser; the whole text must be that reply. */
static struct stls_smtp_reply reply_of(const char *text, size_t len)
{
	struct stls_smtp_reply_parser rp;
	stls_smtp_reply_init(&rp, 512, 100);
	struct stls_smtp_reply reply;
	enum stls_err err = stls_smtp_reply_next(&rp, &reply, stls_span_make(text, len));
	cr_assert_eq(err, STLS_OK, "reply parser: %s for \"%.*s\"", stls_err_str(err), (int)len, text);
	cr_assert_eq(reply.text.len, len, "the reply is %zu of %zu bytes", reply.text.len, len);
	return reply;
}

#define REPLY_OF(lit) reply_of((lit), sizeof(lit) - 1)

static struct stls_ehlo_caps parse_ok(struct stls_smtp_reply reply)
{
	struct stls_ehlo_caps caps;
	cr_assert_eq(stls_ehlo_parse(&caps, reply), STLS_OK);
	return caps;
}

static struct stls_ehlo_caps postfix_caps(void)
{
	return parse_ok(REPLY_OF(postfix_ehlo));
}

/* Builds into a fresh buffer and returns it as a NUL-terminated heap string. */
static char *build(const struct stls_ehlo_caps *caps, const char *hostname, struct stls_span name, bool starttls)
{
	struct stls_buf b = { 0 };
	enum stls_err err = stls_ehlo_build(&b, 4096, caps, hostname, name, starttls);
	cr_assert_eq(err, STLS_OK, "build: %s", stls_err_str(err));
	char *s = malloc(stls_buf_len(&b) + 1);
	cr_assert_not_null(s);
	memcpy(s, stls_buf_span(&b).ptr, stls_buf_len(&b));
	s[stls_buf_len(&b)] = '\0';
	stls_buf_cleanup(&b);
	return s;
}

/* Checks that s is one well-formed 250 reply: only the last line has a space after the code,
 * every line ends in CRLF, and there are no other control bytes. Returns the number of lines. */
static unsigned check_reply_shape(const char *s)
{
	size_t len = strlen(s);
	struct stls_smtp_reply reply = reply_of(s, len);
	cr_assert_eq(reply.code, 250);
	unsigned lines = 0;
	for (const char *p = s; *p;) {
		const char *eol = strstr(p, "\r\n");
		cr_assert_not_null(eol, "line without CRLF: \"%s\"", p);
		cr_assert_geq(eol - p, 3, "short line");
		cr_assert(strncmp(p, "250", 3) == 0, "line does not start with 250: \"%.*s\"", (int)(eol - p), p);
		bool last = eol[2] == '\0';
		if (eol - p > 3)
			cr_assert_eq(p[3], last ? ' ' : '-', "line %u: separator '%c' (last=%d)", lines, p[3], last);
		else
			cr_assert(last, "a code-only line in the middle");
		for (const char *q = p; q < eol; q++)
			cr_assert((unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f,
				  "control byte 0x%02x on line %u", (unsigned char)*q, lines);
		lines++;
		p = eol + 2;
	}
	cr_assert_eq(lines, reply.num_lines);
	return lines;
}

/* True if s has a line "250-<kw>" or "250 <kw>" (the keyword alone or followed by a space). */
static bool has_keyword_line(const char *s, const char *kw)
{
	size_t kwlen = strlen(kw);
	for (const char *p = s; *p;) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			return false;
		size_t n = (size_t)(eol - p);
		if (n >= 4 + kwlen && strncmp(p + 4, kw, kwlen) == 0 && (n == 4 + kwlen || p[4 + kwlen] == ' '))
			return true;
		p = eol + 2;
	}
	return false;
}

Test(ehlo, ext_str)
{
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO_PIPELINING), "PIPELINING");
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO_SIZE), "SIZE");
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO_8BITMIME), "8BITMIME");
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO_SMTPUTF8), "SMTPUTF8");
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO_DSN), "DSN");
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO_ENHANCEDSTATUSCODES), "ENHANCEDSTATUSCODES");
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO_CHUNKING), "CHUNKING");
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO_BINARYMIME), "BINARYMIME");
	cr_assert_str_eq(stls_ehlo_ext_str(STLS_EHLO__COUNT), "UNKNOWN");
}

Test(ehlo, parse_postfix_reply)
{
	struct stls_ehlo_caps caps = postfix_caps();
	uint32_t want = bit(STLS_EHLO_PIPELINING) | bit(STLS_EHLO_SIZE) | bit(STLS_EHLO_ENHANCEDSTATUSCODES) |
			bit(STLS_EHLO_8BITMIME) | bit(STLS_EHLO_DSN) | bit(STLS_EHLO_SMTPUTF8) |
			bit(STLS_EHLO_CHUNKING);
	cr_assert_eq(caps.mask, want, "mask 0x%x, expected 0x%x", caps.mask, want);
	cr_assert_eq(caps.size, 10240000, "size %llu", (unsigned long long)caps.size);
	cr_assert_not(stls_ehlo_has(&caps, STLS_EHLO_BINARYMIME), "not offered, not kept");
	cr_assert_str_eq(caps.dropped, "VRFY ETRN STARTTLS AUTH XCLIENT XFORWARD");
}

Test(ehlo, parse_drops_proxy_business_and_unknown)
{
	struct stls_ehlo_caps caps = parse_ok(REPLY_OF("250-mx\r\n"
						       "250-STARTTLS\r\n"
						       "250-AUTH=LOGIN PLAIN\r\n"
						       "250-XCLIENT NAME ADDR PROTO HELO\r\n"
						       "250-XFORWARD NAME ADDR\r\n"
						       "250-X-SHINY-NEW\r\n"
						       "250-DELIVERBY 3600\r\n"
						       "250 BINARYMIME\r\n"));
	cr_assert_eq(caps.mask, bit(STLS_EHLO_BINARYMIME), "mask 0x%x", caps.mask);
	cr_assert_str_eq(caps.dropped, "STARTTLS AUTH=LOGIN XCLIENT XFORWARD X-SHINY-NEW DELIVERBY");
}

Test(ehlo, parse_keywords_case_insensitively)
{
	struct stls_ehlo_caps caps =
		parse_ok(REPLY_OF("250-mx\r\n250-pipelining\r\n250-Size 1000\r\n250 starttls\r\n"));
	cr_assert_eq(caps.mask, bit(STLS_EHLO_PIPELINING) | bit(STLS_EHLO_SIZE), "mask 0x%x", caps.mask);
	cr_assert_eq(caps.size, 1000);
	cr_assert_str_eq(caps.dropped, "starttls");
}

Test(ehlo, parse_skips_the_first_line)
{
	/* The first line is the server's name, even if it looks like a keyword. */
	struct stls_ehlo_caps caps = parse_ok(REPLY_OF("250-PIPELINING\r\n250 8BITMIME\r\n"));
	cr_assert_eq(caps.mask, bit(STLS_EHLO_8BITMIME), "mask 0x%x", caps.mask);
	cr_assert_str_eq(caps.dropped, "");

	caps = parse_ok(REPLY_OF("250 legacy.test at your service\r\n"));
	cr_assert_eq(caps.mask, 0, "a one-line reply offers nothing");
	cr_assert_eq(caps.size, 0);
	cr_assert_str_eq(caps.dropped, "");
}

Test(ehlo, parse_size_parameter)
{
	struct stls_ehlo_caps caps = parse_ok(REPLY_OF("250-mx\r\n250 SIZE\r\n"));
	cr_assert(stls_ehlo_has(&caps, STLS_EHLO_SIZE), "SIZE without a number is kept");
	cr_assert_eq(caps.size, 0, "0 = no limit");

	caps = parse_ok(REPLY_OF("250-mx\r\n250 SIZE   52428800  \r\n"));
	cr_assert(stls_ehlo_has(&caps, STLS_EHLO_SIZE));
	cr_assert_eq(caps.size, 52428800, "extra spaces: %llu", (unsigned long long)caps.size);

	caps = parse_ok(REPLY_OF("250-mx\r\n250-PIPELINING\r\n250 SIZE lots\r\n"));
	cr_assert_not(stls_ehlo_has(&caps, STLS_EHLO_SIZE), "a SIZE we cannot read is dropped");
	cr_assert(stls_ehlo_has(&caps, STLS_EHLO_PIPELINING));
	cr_assert_eq(caps.size, 0);
	cr_assert_str_eq(caps.dropped, "SIZE");

	caps = parse_ok(REPLY_OF("250-mx\r\n250 SIZE 99999999999999999999999\r\n"));
	cr_assert_not(stls_ehlo_has(&caps, STLS_EHLO_SIZE), "an overflowing SIZE is dropped");
}

Test(ehlo, parse_refuses_non_250)
{
	struct stls_ehlo_caps caps;
	memset(&caps, 0xff, sizeof(caps));
	cr_assert_eq(stls_ehlo_parse(&caps, REPLY_OF("502 5.5.2 Error: command not recognized\r\n")), STLS_ERR_PROTO);
	cr_assert_eq(caps.mask, 0, "caps are cleared on failure");
	cr_assert_eq(caps.size, 0);
	cr_assert_eq(stls_ehlo_parse(&caps, REPLY_OF("220-mx\r\n220 PIPELINING\r\n")), STLS_ERR_PROTO);
	cr_assert_eq(stls_ehlo_parse(&caps, REPLY_OF("251 x\r\n")), STLS_ERR_PROTO);
}

Test(ehlo, parse_dropped_list_is_bounded_and_printable)
{
	static char text[8192];
	size_t len = (size_t)snprintf(text, sizeof(text), "250-mx\r\n");
	for (int i = 0; i < 100; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "250-XUNKNOWN%03d\r\n", i);
	len += (size_t)snprintf(text + len, sizeof(text) - len, "250-X\x01\x7f\r\n250 DSN\r\n");
	struct stls_smtp_reply_parser rp;
	stls_smtp_reply_init(&rp, 512, 200);
	struct stls_smtp_reply reply;
	cr_assert_eq(stls_smtp_reply_next(&rp, &reply, stls_span_make(text, len)), STLS_OK);
	struct stls_ehlo_caps caps = parse_ok(reply);
	cr_assert_eq(caps.mask, bit(STLS_EHLO_DSN), "a full dropped list does not stop parsing");
	size_t n = strnlen(caps.dropped, sizeof(caps.dropped));
	cr_assert_lt(n, sizeof(caps.dropped), "dropped is NUL-terminated");
	cr_assert(strncmp(caps.dropped, "XUNKNOWN000 XUNKNOWN001 ", 24) == 0, "dropped: %s", caps.dropped);
	for (size_t i = 0; i < n; i++)
		cr_assert(caps.dropped[i] >= 0x20 && caps.dropped[i] < 0x7f, "control byte in dropped");

	caps = parse_ok(REPLY_OF("250-mx\r\n250 X\x01Y\r\n"));
	cr_assert_str_eq(caps.dropped, "X?Y", "peer bytes are made printable for the log");
}

Test(ehlo, build_without_starttls)
{
	struct stls_ehlo_caps caps = postfix_caps();
	char *s = build(&caps, "mx.example", STLS_SPAN_LIT("client.example"), false);
	cr_assert_str_eq(s, "250-mx.example Hello client.example\r\n"
			    "250-PIPELINING\r\n"
			    "250-SIZE 10240000\r\n"
			    "250-8BITMIME\r\n"
			    "250-SMTPUTF8\r\n"
			    "250-DSN\r\n"
			    "250-ENHANCEDSTATUSCODES\r\n"
			    "250 CHUNKING\r\n");
	cr_assert_eq(check_reply_shape(s), 8);
	cr_assert_null(strstr(s, "STARTTLS"), "STARTTLS offered without being asked");
	for (const char *bad = "VRFY\0ETRN\0AUTH\0XCLIENT\0XFORWARD\0"; *bad; bad += strlen(bad) + 1)
		cr_assert_not(has_keyword_line(s, bad), "%s advertised", bad);
	free(s);
}

Test(ehlo, build_with_starttls)
{
	struct stls_ehlo_caps caps = postfix_caps();
	char *s = build(&caps, "mx.example", STLS_SPAN_LIT("client.example"), true);
	cr_assert_eq(check_reply_shape(s), 9);
	cr_assert(has_keyword_line(s, "STARTTLS"));
	const char *first = strstr(s, "STARTTLS");
	cr_assert_null(strstr(first + 1, "STARTTLS"), "STARTTLS offered twice");
	cr_assert(has_keyword_line(s, "CHUNKING"));
	cr_assert(strstr(s, "250-CHUNKING\r\n") != NULL, "CHUNKING is no longer the last line");
	size_t len = strlen(s);
	cr_assert(len >= 14 && strcmp(s + len - 14, "250 STARTTLS\r\n") == 0, "reply: %s", s);
	free(s);
}

Test(ehlo, build_with_nothing_to_offer)
{
	struct stls_ehlo_caps caps = { 0 };
	char *s = build(&caps, "mx.example", STLS_SPAN_LIT("c"), false);
	cr_assert_str_eq(s, "250 mx.example Hello c\r\n", "a single line with a space");
	free(s);

	s = build(&caps, "mx.example", STLS_SPAN_LIT("c"), true);
	cr_assert_str_eq(s, "250-mx.example Hello c\r\n250 STARTTLS\r\n");
	free(s);
}

Test(ehlo, build_size_without_limit)
{
	struct stls_ehlo_caps caps = { .mask = bit(STLS_EHLO_SIZE), .size = 0 };
	char *s = build(&caps, "mx", STLS_SPAN_LIT("c"), false);
	cr_assert_str_eq(s, "250-mx Hello c\r\n250 SIZE\r\n");
	free(s);
}

Test(ehlo, build_then_parse_round_trip)
{
	struct stls_ehlo_caps caps = postfix_caps();
	caps.mask |= bit(STLS_EHLO_BINARYMIME);
	char *s = build(&caps, "mx.example", STLS_SPAN_LIT("c"), true);
	struct stls_ehlo_caps again = parse_ok(reply_of(s, strlen(s)));
	cr_assert_eq(again.mask, caps.mask, "mask 0x%x, expected 0x%x", again.mask, caps.mask);
	cr_assert_eq(again.size, caps.size);
	cr_assert_str_eq(again.dropped, "STARTTLS", "only our own STARTTLS is not a backend capability");
	free(s);
}

Test(ehlo, build_sanitises_the_greeting_name)
{
	struct stls_ehlo_caps caps = { .mask = bit(STLS_EHLO_PIPELINING) };
	static const char evil[] = "evil\r\n250-STARTTLS\r\n250 AUTH\0\x7f\x80\xff\t";
	char *s = build(&caps, "mx.example", stls_span_make(evil, sizeof(evil) - 1), false);
	cr_assert_eq(check_reply_shape(s), 2, "the name cannot add lines: %s", s);
	cr_assert_not(has_keyword_line(s, "STARTTLS"), "the name smuggled a STARTTLS line: %s", s);
	cr_assert_not(has_keyword_line(s, "AUTH"), "the name smuggled an AUTH line: %s", s);
	static const char want[] = "250-mx.example Hello evil??250-STARTTLS??250 AUTH?????\r\n";
	cr_assert(strncmp(s, want, sizeof(want) - 1) == 0, "reply: %s", s);
	free(s);
}

Test(ehlo, build_truncates_a_long_greeting_name)
{
	static char name[2000];
	memset(name, 'n', sizeof(name));
	struct stls_ehlo_caps caps = postfix_caps();
	char *s = build(&caps, "mx.example", stls_span_make(name, sizeof(name)), false);
	cr_assert_eq(check_reply_shape(s), 8);
	const char *eol = strstr(s, "\r\n");
	cr_assert_lt(eol - s + 2, 512, "the first line (%td octets) fits an SMTP reply line", eol - s + 2);
	free(s);
}

Test(ehlo, build_appends_and_respects_the_limit)
{
	struct stls_ehlo_caps caps = postfix_caps();
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("220 earlier\r\n"), 4096), STLS_OK);
	cr_assert_eq(stls_ehlo_build(&b, 4096, &caps, "mx", STLS_SPAN_LIT("c"), false), STLS_OK);
	struct stls_span out = stls_buf_span(&b);
	cr_assert(out.len > 13 && memcmp(out.ptr, "220 earlier\r\n250-mx Hello c\r\n", 29) == 0,
		  "appends after what the buffer held");
	stls_buf_cleanup(&b);

	struct stls_buf small = { 0 };
	cr_assert_eq(stls_ehlo_build(&small, 40, &caps, "mx", STLS_SPAN_LIT("c"), true), STLS_ERR_LIMIT,
		     "a reply that does not fit the limit");
	cr_assert_leq(stls_buf_len(&small), 40);
	stls_buf_cleanup(&small);
}
