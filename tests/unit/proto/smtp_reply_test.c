/* Unit tests for proto/smtp_reply.c: the SMTP reply parser.
 *
 * Driven like the session drives it: bytes from the backend arrive in reads, the caller keeps
 * them all until a reply is complete and then consumes exactly the reply's text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp_reply.h"

enum { MAX_REPLIES = 16, REPLY_TEXT = 1024 };

struct reply_event {
	enum stls_err err;
	uint16_t code;
	uint32_t num_lines;
	char text[REPLY_TEXT];
};

struct reply_driver {
	struct stls_smtp_reply_parser rp;
	uint8_t pending[4096];
	size_t pending_len;
	struct reply_event ev[MAX_REPLIES];
	unsigned num_ev;
	bool failed; /* an error was returned: the caller would have dropped the connection */
};

static void driver_init(struct reply_driver *d, uint32_t max_line, uint32_t max_lines)
{
	memset(d, 0, sizeof(*d));
	stls_smtp_reply_init(&d->rp, max_line, max_lines);
}

static void driver_feed(struct reply_driver *d, const void *p, size_t len)
{
	if (d->failed)
		return;
	cr_assert_leq(d->pending_len + len, sizeof(d->pending));
	memcpy(d->pending + d->pending_len, p, len);
	d->pending_len += len;
	for (;;) {
		struct stls_smtp_reply reply;
		enum stls_err err = stls_smtp_reply_next(&d->rp, &reply, stls_span_make(d->pending, d->pending_len));
		if (err == STLS_AGAIN)
			return;
		cr_assert_lt(d->num_ev, MAX_REPLIES);
		struct reply_event *ev = &d->ev[d->num_ev++];
		memset(ev, 0, sizeof(*ev));
		ev->err = err;
		if (err != STLS_OK) {
			d->failed = true;
			return;
		}
		cr_assert_eq(reply.text.ptr, d->pending, "a reply starts at the start of in");
		cr_assert_gt(reply.text.len, 0);
		cr_assert_leq(reply.text.len, d->pending_len);
		cr_assert_lt(reply.text.len, sizeof(ev->text));
		ev->code = reply.code;
		ev->num_lines = reply.num_lines;
		memcpy(ev->text, reply.text.ptr, reply.text.len);
		memmove(d->pending, d->pending + reply.text.len, d->pending_len - reply.text.len);
		d->pending_len -= reply.text.len;
	}
}

/* Parses s in one read; returns the first result. */
static struct reply_event reply_one(uint32_t max_line, uint32_t max_lines, const void *s, size_t len)
{
	static struct reply_driver d;
	driver_init(&d, max_line, max_lines);
	driver_feed(&d, s, len);
	if (d.num_ev == 0)
		return (struct reply_event){ .err = STLS_AGAIN };
	return d.ev[0];
}

#define REPLY_ONE(lit) reply_one(512, 100, (lit), sizeof(lit) - 1)

static void expect_error(enum stls_err want, const char *in, size_t len, const char *why)
{
	struct reply_event ev = reply_one(512, 100, in, len);
	cr_assert_eq(ev.err, want, "%s: got %s, expected %s", why, stls_err_str(ev.err), stls_err_str(want));
}

#define EXPECT_ERROR(want, lit, why) expect_error((want), (lit), sizeof(lit) - 1, (why))

Test(smtp_reply, single_line)
{
	struct stls_smtp_reply_parser rp;
	stls_smtp_reply_init(&rp, 512, 100);
	static const char in[] = "250 2.0.0 Ok\r\n";
	struct stls_smtp_reply reply;
	cr_assert_eq(stls_smtp_reply_next(&rp, &reply, STLS_SPAN_LIT(in)), STLS_OK);
	cr_assert_eq(reply.code, 250);
	cr_assert_eq(reply.num_lines, 1);
	cr_assert_eq((const void *)reply.text.ptr, (const void *)in);
	cr_assert_eq(reply.text.len, sizeof(in) - 1, "the text includes the CRLF");
	cr_assert_eq(stls_smtp_reply_class(reply.code), 2);
}

Test(smtp_reply, multi_line)
{
	static const char in[] = "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
	struct reply_event ev = REPLY_ONE(in);
	cr_assert_eq(ev.err, STLS_OK, "%s", stls_err_str(ev.err));
	cr_assert_eq(ev.code, 250);
	cr_assert_eq(ev.num_lines, 3);
	cr_assert_str_eq(ev.text, in, "every line, every CRLF");
}

Test(smtp_reply, code_only_line)
{
	struct reply_event ev = REPLY_ONE("250\r\n");
	cr_assert_eq(ev.err, STLS_OK, "%s", stls_err_str(ev.err));
	cr_assert_eq(ev.code, 250);
	cr_assert_eq(ev.num_lines, 1);
	cr_assert_str_eq(ev.text, "250\r\n");

	ev = REPLY_ONE("250-first\r\n250\r\n");
	cr_assert_eq(ev.err, STLS_OK, "code-only last line: %s", stls_err_str(ev.err));
	cr_assert_eq(ev.num_lines, 2);

	ev = REPLY_ONE("250-\r\n250 x\r\n");
	cr_assert_eq(ev.err, STLS_OK, "empty continuation text: %s", stls_err_str(ev.err));
	cr_assert_eq(ev.num_lines, 2);
}

Test(smtp_reply, every_class_2_to_5)
{
	static const char *const ok[] = { "220 ready\r\n", "354 go ahead\r\n", "421 bye\r\n",
					  "554 no\r\n",	   "200 x\r\n",	       "599 x\r\n" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct reply_event ev = reply_one(512, 100, ok[i], strlen(ok[i]));
		cr_assert_eq(ev.err, STLS_OK, "\"%s\": %s", ok[i], stls_err_str(ev.err));
		cr_assert_eq(stls_smtp_reply_class(ev.code), (unsigned)(ok[i][0] - '0'));
	}
}

Test(smtp_reply, incomplete_reply_needs_more)
{
	struct stls_smtp_reply_parser rp;
	stls_smtp_reply_init(&rp, 512, 100);
	struct stls_smtp_reply reply;
	static const char in[] = "250-a\r\n250-b\r\n250 c\r\n";
	/* Every proper prefix is incomplete, including ones ending in CRLF after a continuation. */
	for (size_t i = 0; i < sizeof(in) - 1; i++) {
		stls_smtp_reply_init(&rp, 512, 100);
		cr_assert_eq(stls_smtp_reply_next(&rp, &reply, stls_span_make(in, i)), STLS_AGAIN, "prefix of %zu", i);
	}
}

Test(smtp_reply, resumes_after_complete_lines)
{
	struct stls_smtp_reply_parser rp;
	stls_smtp_reply_init(&rp, 512, 100);
	struct stls_smtp_reply reply;
	static const char in[] = "250-a\r\n250-b\r\n250 c\r\n";
	cr_assert_eq(stls_smtp_reply_next(&rp, &reply, stls_span_make(in, 9)), STLS_AGAIN);
	cr_assert_eq(rp.done_len, 7, "one complete continuation line checked");
	cr_assert_eq(rp.num_lines, 1);
	cr_assert_eq(rp.code, 250);
	cr_assert_eq(stls_smtp_reply_next(&rp, &reply, stls_span_make(in, 14)), STLS_AGAIN);
	cr_assert_eq(rp.done_len, 14);
	cr_assert_eq(rp.num_lines, 2);
	cr_assert_eq(stls_smtp_reply_next(&rp, &reply, STLS_SPAN_LIT(in)), STLS_OK);
	cr_assert_eq(reply.num_lines, 3);
	cr_assert_eq(reply.text.len, sizeof(in) - 1);
	cr_assert_eq(rp.done_len, 0, "the parser is ready for the next reply");
	cr_assert_eq(rp.num_lines, 0);
	cr_assert_eq(rp.code, 0);
}

static const char two_replies[] = "250-first\r\n250-second\r\n250 third\r\n354 End data with <CR><LF>.<CR><LF>\r\n";

static void expect_two_replies(const struct reply_driver *d, const char *how)
{
	cr_assert_eq(d->num_ev, 2, "%s: %u replies", how, d->num_ev);
	cr_assert_eq(d->ev[0].err, STLS_OK, "%s: %s", how, stls_err_str(d->ev[0].err));
	cr_assert_eq(d->ev[0].code, 250, "%s", how);
	cr_assert_eq(d->ev[0].num_lines, 3, "%s", how);
	cr_assert_str_eq(d->ev[0].text, "250-first\r\n250-second\r\n250 third\r\n", "%s", how);
	cr_assert_eq(d->ev[1].err, STLS_OK, "%s: %s", how, stls_err_str(d->ev[1].err));
	cr_assert_eq(d->ev[1].code, 354, "%s", how);
	cr_assert_eq(d->ev[1].num_lines, 1, "%s", how);
	cr_assert_str_eq(d->ev[1].text, "354 End data with <CR><LF>.<CR><LF>\r\n", "%s", how);
	cr_assert_eq(d->pending_len, 0, "%s: bytes left over", how);
}

static struct reply_driver drv;

Test(smtp_reply, split_at_every_point)
{
	size_t len = sizeof(two_replies) - 1;
	driver_init(&drv, 512, 100);
	driver_feed(&drv, two_replies, len);
	expect_two_replies(&drv, "whole");
	for (size_t i = 0; i <= len; i++) {
		char how[32];
		snprintf(how, sizeof(how), "split at %zu", i);
		driver_init(&drv, 512, 100);
		driver_feed(&drv, two_replies, i);
		driver_feed(&drv, two_replies + i, len - i);
		expect_two_replies(&drv, how);
	}
}

Test(smtp_reply, split_at_every_pair_of_points)
{
	size_t len = sizeof(two_replies) - 1;
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			char how[48];
			snprintf(how, sizeof(how), "split at %zu and %zu", i, j);
			driver_init(&drv, 512, 100);
			driver_feed(&drv, two_replies, i);
			driver_feed(&drv, two_replies + i, j - i);
			driver_feed(&drv, two_replies + j, len - j);
			expect_two_replies(&drv, how);
		}
	}
}

Test(smtp_reply, byte_at_a_time)
{
	size_t len = sizeof(two_replies) - 1;
	driver_init(&drv, 512, 100);
	for (size_t i = 0; i < len; i++) {
		driver_feed(&drv, two_replies + i, 1);
		/* The first reply is complete exactly when the LF of "250 third" arrives. */
		unsigned want = (i >= 33) + (i == len - 1);
		cr_assert_eq(drv.num_ev, want, "after byte %zu: %u replies, expected %u", i, drv.num_ev, want);
	}
	expect_two_replies(&drv, "byte at a time");
}

Test(smtp_reply, differing_codes_are_refused)
{
	EXPECT_ERROR(STLS_ERR_PROTO, "250-a\r\n251 b\r\n", "250 then 251");
	EXPECT_ERROR(STLS_ERR_PROTO, "250-a\r\n250-b\r\n550 c\r\n", "third line differs");
	EXPECT_ERROR(STLS_ERR_PROTO, "250-a\r\n350-b\r\n", "a differing continuation line");
}

Test(smtp_reply, line_over_the_limit)
{
	/* A 16-octet line including CRLF is fine, 17 is not. */
	struct reply_event ev = reply_one(16, 100, "250 0123456789\r\n", 16);
	cr_assert_eq(ev.err, STLS_OK, "exactly the limit: %s", stls_err_str(ev.err));
	ev = reply_one(16, 100, "250 01234567890\r\n", 17);
	cr_assert_eq(ev.err, STLS_ERR_TOO_LONG, "one over: %s", stls_err_str(ev.err));
	ev = reply_one(16, 100, "250-0123456789\r\n250 01234567890\r\n", 33);
	cr_assert_eq(ev.err, STLS_ERR_TOO_LONG, "a later line over the limit: %s", stls_err_str(ev.err));

	/* Once limit bytes without LF are held the line cannot fit: refused without waiting. */
	struct stls_smtp_reply_parser rp;
	struct stls_smtp_reply reply;
	stls_smtp_reply_init(&rp, 16, 100);
	cr_assert_eq(stls_smtp_reply_next(&rp, &reply, STLS_SPAN_LIT("250 0123456789\r")), STLS_AGAIN);
	cr_assert_eq(stls_smtp_reply_next(&rp, &reply, STLS_SPAN_LIT("250 01234567890\r")), STLS_ERR_TOO_LONG);

	/* A server that never sends LF is cut off after the limit. */
	static char flood[4000];
	memset(flood, '5', sizeof(flood));
	ev = reply_one(512, 100, flood, sizeof(flood));
	cr_assert_eq(ev.err, STLS_ERR_TOO_LONG, "%s", stls_err_str(ev.err));
}

Test(smtp_reply, too_many_lines)
{
	static const char three[] = "250-a\r\n250-b\r\n250 c\r\n";
	static const char four[] = "250-a\r\n250-b\r\n250-c\r\n250 d\r\n";
	struct reply_event ev = reply_one(512, 3, three, sizeof(three) - 1);
	cr_assert_eq(ev.err, STLS_OK, "exactly max_lines: %s", stls_err_str(ev.err));
	cr_assert_eq(ev.num_lines, 3);
	ev = reply_one(512, 3, four, sizeof(four) - 1);
	cr_assert_eq(ev.err, STLS_ERR_TOO_LONG, "one line too many: %s", stls_err_str(ev.err));

	/* An endless multi-line reply is refused without waiting for its end. */
	static char endless[7 * 200];
	for (int i = 0; i < 200; i++)
		memcpy(endless + 7 * i, "250-x\r\n", 7);
	ev = reply_one(512, 100, endless, sizeof(endless));
	cr_assert_eq(ev.err, STLS_ERR_TOO_LONG, "%s", stls_err_str(ev.err));
}

Test(smtp_reply, non_digit_is_refused)
{
	EXPECT_ERROR(STLS_ERR_PROTO, "2x0 ok\r\n", "letter in the code");
	EXPECT_ERROR(STLS_ERR_PROTO, "abc\r\n", "no code");
	EXPECT_ERROR(STLS_ERR_PROTO, "ok\r\n", "short line");
	EXPECT_ERROR(STLS_ERR_PROTO, "25\r\n", "two digits");
	EXPECT_ERROR(STLS_ERR_PROTO, "\r\n", "empty line");
	EXPECT_ERROR(STLS_ERR_PROTO, "2500 ok\r\n", "four digits");
	EXPECT_ERROR(STLS_ERR_PROTO, "250x\r\n", "no separator");
	EXPECT_ERROR(STLS_ERR_PROTO, "250_ok\r\n", "bad separator");
	EXPECT_ERROR(STLS_ERR_PROTO, " 250 ok\r\n", "leading space");
	EXPECT_ERROR(STLS_ERR_PROTO, "250-a\r\nxyz\r\n", "a continuation followed by junk");
}

Test(smtp_reply, code_outside_2xx_to_5xx_is_refused)
{
	EXPECT_ERROR(STLS_ERR_PROTO, "150 x\r\n", "1xx");
	EXPECT_ERROR(STLS_ERR_PROTO, "199 x\r\n", "1xx");
	EXPECT_ERROR(STLS_ERR_PROTO, "600 x\r\n", "6xx");
	EXPECT_ERROR(STLS_ERR_PROTO, "999 x\r\n", "9xx");
	EXPECT_ERROR(STLS_ERR_PROTO, "050 x\r\n", "0xx");
}

Test(smtp_reply, bare_lf_is_refused)
{
	EXPECT_ERROR(STLS_ERR_PROTO, "250 ok\n", "bare LF");
	EXPECT_ERROR(STLS_ERR_PROTO, "250-a\n250 b\r\n", "bare LF on a continuation line");
	EXPECT_ERROR(STLS_ERR_PROTO, "250-a\r\n250 b\n", "bare LF on the last line");
	EXPECT_ERROR(STLS_ERR_PROTO, "250\n", "code and bare LF");
}

Test(smtp_reply, bare_cr_is_refused)
{
	EXPECT_ERROR(STLS_ERR_PROTO, "250 o\rk\r\n", "CR in the text");
	EXPECT_ERROR(STLS_ERR_PROTO, "250 ok\r\r\n", "CR CR LF");
	EXPECT_ERROR(STLS_ERR_PROTO, "250-a\r250 b\r\n", "CR as a line end");
}

Test(smtp_reply, nul_is_refused)
{
	EXPECT_ERROR(STLS_ERR_PROTO, "250 o\0k\r\n", "NUL in the text");
	EXPECT_ERROR(STLS_ERR_PROTO, "250-a\0\r\n250 b\r\n", "NUL in a continuation line");
	EXPECT_ERROR(STLS_ERR_PROTO, "25\0 ok\r\n", "NUL in the code");
}

Test(smtp_reply, error_does_not_wait_for_the_rest)
{
	/* A bad first line is refused as soon as it is complete, whatever would follow. */
	struct stls_smtp_reply_parser rp;
	struct stls_smtp_reply reply;
	stls_smtp_reply_init(&rp, 512, 100);
	cr_assert_eq(stls_smtp_reply_next(&rp, &reply, STLS_SPAN_LIT("250-a\r\n150-b\r\n")), STLS_ERR_PROTO);
}

struct lines_ctx {
	unsigned n;
	char text[8][64];
};

static void collect_line(void *ctx_, struct stls_span text)
{
	struct lines_ctx *ctx = ctx_;
	cr_assert_lt(ctx->n, 8, "too many lines");
	cr_assert_lt(text.len, 64);
	memcpy(ctx->text[ctx->n], text.ptr, text.len);
	ctx->text[ctx->n][text.len] = '\0';
	ctx->n++;
}

Test(smtp_reply, each_line_yields_the_texts)
{
	static const char in[] = "250-legacy.test Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250\r\n";
	struct reply_event ev = REPLY_ONE(in);
	cr_assert_eq(ev.err, STLS_OK);
	struct stls_smtp_reply reply = { .code = ev.code, .num_lines = ev.num_lines, .text = STLS_SPAN_LIT(in) };
	struct lines_ctx ctx = { 0 };
	stls_smtp_reply_each_line(reply, collect_line, &ctx);
	cr_assert_eq(ctx.n, 4, "%u lines", ctx.n);
	cr_assert_str_eq(ctx.text[0], "legacy.test Hello");
	cr_assert_str_eq(ctx.text[1], "PIPELINING");
	cr_assert_str_eq(ctx.text[2], "SIZE 10240000");
	cr_assert_str_eq(ctx.text[3], "", "a code-only line has empty text");
}

Test(smtp_reply, each_line_single_line_reply)
{
	struct stls_smtp_reply reply = { .code = 221, .num_lines = 1, .text = STLS_SPAN_LIT("221 2.0.0 Bye\r\n") };
	struct lines_ctx ctx = { 0 };
	stls_smtp_reply_each_line(reply, collect_line, &ctx);
	cr_assert_eq(ctx.n, 1);
	cr_assert_str_eq(ctx.text[0], "2.0.0 Bye");
}

Test(smtp_reply, reply_class)
{
	cr_assert_eq(stls_smtp_reply_class(220), 2);
	cr_assert_eq(stls_smtp_reply_class(354), 3);
	cr_assert_eq(stls_smtp_reply_class(421), 4);
	cr_assert_eq(stls_smtp_reply_class(599), 5);
}
