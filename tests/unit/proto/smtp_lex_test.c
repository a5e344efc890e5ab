/* Unit tests for proto/smtp_lex.c: the SMTP command lexer.
 *
 * The lexer is driven the way the session drives it: bytes arrive in reads, the caller keeps its
 * unconsumed bytes and hands all of them to stls_smtp_lex_next after every read, dropping what
 * the lexer says was consumed. Whatever the read boundaries, the commands that come out must be
 * the same. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp_lex.h"

enum { MAX_EVENTS = 64, EV_TEXT = 700, PENDING_CAP = 1 << 16 };

/* What the caller saw for one call that did not return STLS_AGAIN. */
struct lex_event {
	enum stls_err err;
	enum stls_smtp_verb verb;
	size_t consumed;
	size_t line_len;
	char line[EV_TEXT];
	char args[EV_TEXT];
};

struct lex_driver {
	struct stls_smtp_lex lx;
	uint8_t pending[PENDING_CAP]; /* the caller's unconsumed bytes */
	size_t pending_len;
	size_t max_pending; /* most bytes the caller ever had to keep after a read */
	struct lex_event ev[MAX_EVENTS];
	unsigned num_ev;
};

static void copy_span(char *out, size_t out_len, struct stls_span s)
{
	cr_assert_lt(s.len, out_len, "span of %zu bytes too long for the test's copy", s.len);
	memcpy(out, s.ptr, s.len);
	out[s.len] = '\0';
}

static void driver_init(struct lex_driver *d, uint32_t max_line)
{
	memset(d, 0, sizeof(*d));
	stls_smtp_lex_init(&d->lx, max_line);
}

static void drop_front(struct lex_driver *d, size_t n)
{
	cr_assert_leq(n, d->pending_len, "lexer consumed %zu bytes of %zu", n, d->pending_len);
	memmove(d->pending, d->pending + n, d->pending_len - n);
	d->pending_len -= n;
}

/* One read of len bytes: append them, then call the lexer until it asks for more. */
static void driver_feed(struct lex_driver *d, const void *p, size_t len)
{
	cr_assert_leq(d->pending_len + len, sizeof(d->pending), "test pending buffer overflow");
	memcpy(d->pending + d->pending_len, p, len);
	d->pending_len += len;
	for (;;) {
		struct stls_smtp_cmd cmd;
		size_t consumed = 12345;
		enum stls_err err =
			stls_smtp_lex_next(&d->lx, &cmd, &consumed, stls_span_make(d->pending, d->pending_len));
		if (err == STLS_AGAIN) {
			drop_front(d, consumed);
			break;
		}
		cr_assert_lt(d->num_ev, MAX_EVENTS, "too many events");
		cr_assert_gt(consumed, 0, "%s consumed nothing: the caller would loop for ever", stls_err_str(err));
		struct lex_event *ev = &d->ev[d->num_ev++];
		memset(ev, 0, sizeof(*ev));
		ev->err = err;
		ev->consumed = consumed;
		if (err == STLS_OK) {
			cr_assert_eq(cmd.line.ptr, d->pending, "the line must start at the start of in");
			cr_assert_eq(cmd.line.len, consumed, "line %zu bytes but consumed %zu", cmd.line.len, consumed);
			cr_assert(cmd.args.len == 0 || (cmd.args.ptr >= cmd.line.ptr &&
							cmd.args.ptr + cmd.args.len <= cmd.line.ptr + cmd.line.len),
				  "args must point into the line");
			ev->verb = cmd.verb;
			ev->line_len = cmd.line.len;
			copy_span(ev->line, sizeof(ev->line), cmd.line);
			copy_span(ev->args, sizeof(ev->args), cmd.args);
		}
		drop_front(d, consumed);
	}
	if (d->pending_len > d->max_pending)
		d->max_pending = d->pending_len;
}

static void expect_same_events(const struct lex_driver *got, const struct lex_driver *want, const char *how)
{
	cr_assert_eq(got->num_ev, want->num_ev, "%s: %u events, expected %u", how, got->num_ev, want->num_ev);
	for (unsigned i = 0; i < want->num_ev; i++) {
		const struct lex_event *g = &got->ev[i], *w = &want->ev[i];
		cr_assert_eq(g->err, w->err, "%s: event %u is %s, expected %s", how, i, stls_err_str(g->err),
			     stls_err_str(w->err));
		cr_assert_eq(g->consumed, w->consumed, "%s: event %u consumed %zu, expected %zu", how, i, g->consumed,
			     w->consumed);
		cr_assert_eq(g->verb, w->verb, "%s: event %u verb %s, expected %s", how, i, stls_smtp_verb_str(g->verb),
			     stls_smtp_verb_str(w->verb));
		cr_assert_str_eq(g->line, w->line, "%s: event %u line differs", how, i);
		cr_assert_str_eq(g->args, w->args, "%s: event %u args differ", how, i);
	}
	cr_assert_eq(got->pending_len, want->pending_len, "%s: %zu bytes left over, expected %zu", how,
		     got->pending_len, want->pending_len);
}

/* Lexes s in one read and expects exactly one event. */
static struct lex_event lex_one(uint32_t max_line, const void *s, size_t len)
{
	static struct lex_driver d;
	driver_init(&d, max_line);
	driver_feed(&d, s, len);
	cr_assert_eq(d.num_ev, 1, "expected one event, got %u", d.num_ev);
	cr_assert_eq(d.pending_len, 0, "%zu bytes left over", d.pending_len);
	return d.ev[0];
}

#define LEX_ONE(max, lit) lex_one((max), (lit), sizeof(lit) - 1)

static const char pipelined[] = "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n";

static void expect_pipelined(const struct lex_driver *d)
{
	static const struct {
		enum stls_smtp_verb verb;
		const char *line;
		const char *args;
	} want[] = {
		{ STLS_SMTP_VERB_EHLO, "EHLO a\r\n", "a" },
		{ STLS_SMTP_VERB_MAIL, "MAIL FROM:<a@b>\r\n", "FROM:<a@b>" },
		{ STLS_SMTP_VERB_RCPT, "RCPT TO:<c@d>\r\n", "TO:<c@d>" },
		{ STLS_SMTP_VERB_DATA, "DATA\r\n", "" },
	};
	cr_assert_eq(d->num_ev, 4, "expected 4 commands, got %u", d->num_ev);
	for (unsigned i = 0; i < 4; i++) {
		cr_assert_eq(d->ev[i].err, STLS_OK, "command %u: %s", i, stls_err_str(d->ev[i].err));
		cr_assert_eq(d->ev[i].verb, want[i].verb, "command %u: verb %s", i, stls_smtp_verb_str(d->ev[i].verb));
		cr_assert_str_eq(d->ev[i].line, want[i].line, "command %u line", i);
		cr_assert_str_eq(d->ev[i].args, want[i].args, "command %u args", i);
	}
	cr_assert_eq(d->pending_len, 0, "bytes left over");
}

static struct lex_driver whole, split;

Test(smtp_lex, verb_str_names_every_verb)
{
	cr_assert_str_eq(stls_smtp_verb_str(STLS_SMTP_VERB_UNKNOWN), "UNKNOWN");
	cr_assert_str_eq(stls_smtp_verb_str(STLS_SMTP_VERB_EHLO), "EHLO");
	cr_assert_str_eq(stls_smtp_verb_str(STLS_SMTP_VERB_STARTTLS), "STARTTLS");
	cr_assert_str_eq(stls_smtp_verb_str(STLS_SMTP_VERB_XFORWARD), "XFORWARD");
	cr_assert_str_eq(stls_smtp_verb_str(STLS_SMTP_VERB__COUNT), "UNKNOWN");
	int negative = -1;
	cr_assert_str_eq(stls_smtp_verb_str((enum stls_smtp_verb)negative), "UNKNOWN");
	for (unsigned v = 0; v < STLS_SMTP_VERB__COUNT; v++) {
		const char *name = stls_smtp_verb_str((enum stls_smtp_verb)v);
		cr_assert_not_null(name, "verb %u has no name", v);
		cr_assert_gt(strlen(name), 0, "verb %u has an empty name", v);
	}
}

Test(smtp_lex, every_verb_is_recognised)
{
	for (unsigned v = STLS_SMTP_VERB_UNKNOWN + 1; v < STLS_SMTP_VERB__COUNT; v++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "%s x\r\n", stls_smtp_verb_str((enum stls_smtp_verb)v));
		struct lex_event ev = lex_one(512, line, (size_t)n);
		cr_assert_eq(ev.err, STLS_OK, "%s: %s", line, stls_err_str(ev.err));
		cr_assert_eq(ev.verb, v, "\"%s\" lexed as %s", stls_smtp_verb_str((enum stls_smtp_verb)v),
			     stls_smtp_verb_str(ev.verb));
		cr_assert_str_eq(ev.args, "x");
	}
}

Test(smtp_lex, single_command)
{
	struct stls_smtp_lex lx;
	stls_smtp_lex_init(&lx, 512);
	static const char in[] = "EHLO client.example\r\n";
	struct stls_smtp_cmd cmd;
	size_t consumed = 99;
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, STLS_SPAN_LIT(in)), STLS_OK);
	cr_assert_eq(consumed, sizeof(in) - 1);
	cr_assert_eq(cmd.verb, STLS_SMTP_VERB_EHLO);
	cr_assert_eq((const void *)cmd.line.ptr, (const void *)in, "line must point into in");
	cr_assert_eq(cmd.line.len, sizeof(in) - 1, "line includes CRLF");
	cr_assert(stls_span_eq(cmd.args, STLS_SPAN_LIT("client.example")), "args without CRLF");
	cr_assert_eq(lx.scanned, 0, "a complete line leaves nothing scanned");
}

Test(smtp_lex, pipelined_whole)
{
	driver_init(&whole, 512);
	driver_feed(&whole, pipelined, sizeof(pipelined) - 1);
	expect_pipelined(&whole);
}

Test(smtp_lex, pipelined_split_at_every_point)
{
	size_t len = sizeof(pipelined) - 1;
	driver_init(&whole, 512);
	driver_feed(&whole, pipelined, len);
	for (size_t i = 0; i <= len; i++) {
		char how[64];
		snprintf(how, sizeof(how), "split at %zu", i);
		driver_init(&split, 512);
		driver_feed(&split, pipelined, i);
		driver_feed(&split, pipelined + i, len - i);
		expect_same_events(&split, &whole, how);
		expect_pipelined(&split);
	}
}

Test(smtp_lex, pipelined_split_at_every_pair_of_points)
{
	size_t len = sizeof(pipelined) - 1;
	driver_init(&whole, 512);
	driver_feed(&whole, pipelined, len);
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			char how[64];
			snprintf(how, sizeof(how), "split at %zu and %zu", i, j);
			driver_init(&split, 512);
			driver_feed(&split, pipelined, i);
			driver_feed(&split, pipelined + i, j - i);
			driver_feed(&split, pipelined + j, len - j);
			expect_same_events(&split, &whole, how);
		}
	}
}

Test(smtp_lex, pipelined_byte_at_a_time)
{
	size_t len = sizeof(pipelined) - 1;
	driver_init(&whole, 512);
	driver_feed(&whole, pipelined, len);
	driver_init(&split, 512);
	for (size_t i = 0; i < len; i++) {
		unsigned before = split.num_ev;
		driver_feed(&split, pipelined + i, 1);
		/* A command comes out exactly when its LF arrives, never earlier or later. */
		cr_assert_eq(split.num_ev, before + (pipelined[i] == '\n'), "byte %zu", i);
		cr_assert_eq(split.lx.scanned, split.pending_len, "byte %zu: scanned %u of %zu pending bytes", i,
			     split.lx.scanned, split.pending_len);
	}
	expect_same_events(&split, &whole, "byte at a time");
	expect_pipelined(&split);
}

Test(smtp_lex, resumes_split_command)
{
	struct stls_smtp_lex lx;
	stls_smtp_lex_init(&lx, 512);
	static const char in[] = "NOOP\r\nQUIT\r\n";
	struct stls_smtp_cmd cmd;
	size_t consumed = 99;

	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, stls_span_make(in, 4)), STLS_AGAIN);
	cr_assert_eq(consumed, 0, "a partial line must be kept by the caller");
	cr_assert_eq(lx.scanned, 4, "the lexer remembers how far it looked");

	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, stls_span_make(in, 5)), STLS_AGAIN);
	cr_assert_eq(consumed, 0);
	cr_assert_eq(lx.scanned, 5);

	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, STLS_SPAN_LIT(in)), STLS_OK);
	cr_assert_eq(consumed, 6);
	cr_assert_eq(cmd.verb, STLS_SMTP_VERB_NOOP);
	cr_assert_eq(cmd.line.len, 6);

	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, stls_span_make(in + 6, 6)), STLS_OK);
	cr_assert_eq(consumed, 6);
	cr_assert_eq(cmd.verb, STLS_SMTP_VERB_QUIT);
}

static void fill_line(char *buf, size_t len)
{
	/* "NOOP xxx...x\r\n" of exactly len bytes. */
	memset(buf, 'x', len);
	memcpy(buf, "NOOP ", 5);
	buf[len - 2] = '\r';
	buf[len - 1] = '\n';
}

Test(smtp_lex, line_of_exactly_the_limit_is_accepted)
{
	static char line[512];
	fill_line(line, sizeof(line));
	struct lex_event ev = lex_one(512, line, sizeof(line));
	cr_assert_eq(ev.err, STLS_OK, "512 octets including CRLF: %s", stls_err_str(ev.err));
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_NOOP);
	cr_assert_eq(ev.consumed, 512);
	cr_assert_eq(strlen(ev.args), 512 - 5 - 2);

	/* The same line byte by byte: the caller may hold up to max_line - 1 bytes without an LF. */
	driver_init(&split, 512);
	for (size_t i = 0; i < sizeof(line); i++)
		driver_feed(&split, line + i, 1);
	cr_assert_eq(split.num_ev, 1);
	cr_assert_eq(split.ev[0].err, STLS_OK, "byte at a time: %s", stls_err_str(split.ev[0].err));
	cr_assert_eq(split.ev[0].consumed, 512);
}

Test(smtp_lex, line_one_over_the_limit_is_refused)
{
	static char in[513 + 6];
	fill_line(in, 513);
	memcpy(in + 513, "QUIT\r\n", 6);

	driver_init(&whole, 512);
	driver_feed(&whole, in, sizeof(in));
	cr_assert_eq(whole.num_ev, 2);
	cr_assert_eq(whole.ev[0].err, STLS_ERR_TOO_LONG, "513 octets: %s", stls_err_str(whole.ev[0].err));
	cr_assert_eq(whole.ev[0].consumed, 513, "the whole over-long line is dropped");
	cr_assert_eq(whole.ev[1].err, STLS_OK);
	cr_assert_eq(whole.ev[1].verb, STLS_SMTP_VERB_QUIT, "the next command is parsed");

	for (size_t i = 0; i <= sizeof(in); i++) {
		driver_init(&split, 512);
		driver_feed(&split, in, i);
		driver_feed(&split, in + i, sizeof(in) - i);
		cr_assert_eq(split.num_ev, 2, "split at %zu: %u events", i, split.num_ev);
		cr_assert_eq(split.ev[0].err, STLS_ERR_TOO_LONG, "split at %zu: %s", i, stls_err_str(split.ev[0].err));
		cr_assert_eq(split.ev[1].err, STLS_OK, "split at %zu", i);
		cr_assert_eq(split.ev[1].verb, STLS_SMTP_VERB_QUIT, "split at %zu", i);
		cr_assert_lt(split.max_pending, 512, "split at %zu: the caller kept %zu bytes", i, split.max_pending);
	}
}

Test(smtp_lex, long_line_in_many_pieces_is_discarded_and_reported_once)
{
	static char piece[100];
	memset(piece, 'A', sizeof(piece));
	driver_init(&split, 512);
	driver_feed(&split, "MAIL FROM:<", 11);
	for (int i = 0; i < 200; i++) {
		driver_feed(&split, piece, sizeof(piece));
		cr_assert_eq(split.num_ev, 0, "piece %d: nothing is reported before the line ends", i);
		cr_assert_lt(split.pending_len, 512, "piece %d: the caller keeps %zu bytes", i, split.pending_len);
	}
	cr_assert_eq(split.lx.discarding, 1, "the lexer is discarding");
	driver_feed(&split, ">\r\nRSET\r\n", 9);
	cr_assert_eq(split.num_ev, 2, "%u events", split.num_ev);
	cr_assert_eq(split.ev[0].err, STLS_ERR_TOO_LONG, "reported at its end: %s", stls_err_str(split.ev[0].err));
	cr_assert_eq(split.ev[0].consumed, 3, "only the tail \">\\r\\n\" was still held");
	cr_assert_eq(split.ev[1].err, STLS_OK);
	cr_assert_eq(split.ev[1].verb, STLS_SMTP_VERB_RSET);
	cr_assert_str_eq(split.ev[1].line, "RSET\r\n");
	cr_assert_lt(split.max_pending, 512, "the caller kept %zu bytes", split.max_pending);
	cr_assert_eq(split.lx.discarding, 0);
}

Test(smtp_lex, long_line_byte_at_a_time_is_reported_once)
{
	driver_init(&split, 64);
	for (int i = 0; i < 1000; i++)
		driver_feed(&split, "z", 1);
	cr_assert_eq(split.num_ev, 0);
	cr_assert_lt(split.max_pending, 64, "the caller kept %zu bytes", split.max_pending);
	static const char tail[] = "\r\nNOOP\r\n";
	for (size_t i = 0; i < sizeof(tail) - 1; i++)
		driver_feed(&split, tail + i, 1);
	cr_assert_eq(split.num_ev, 2, "%u events", split.num_ev);
	cr_assert_eq(split.ev[0].err, STLS_ERR_TOO_LONG);
	cr_assert_eq(split.ev[1].err, STLS_OK);
	cr_assert_eq(split.ev[1].verb, STLS_SMTP_VERB_NOOP);
}

Test(smtp_lex, buffer_reaching_the_limit_without_lf_starts_discarding)
{
	struct stls_smtp_lex lx;
	stls_smtp_lex_init(&lx, 16);
	static const char in[] = "NOOP 0123456789\r"; /* 16 bytes, no LF: the line is at least 17 */
	struct stls_smtp_cmd cmd;
	size_t consumed = 0;
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, stls_span_make(in, 15)), STLS_AGAIN);
	cr_assert_eq(consumed, 0, "15 bytes may still become a 16-byte line");
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, stls_span_make(in, 16)), STLS_AGAIN);
	cr_assert_eq(consumed, 16, "16 bytes without LF cannot fit: dropped");
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, STLS_SPAN_LIT("\nQUIT\r\n")), STLS_ERR_TOO_LONG);
	cr_assert_eq(consumed, 1);
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, STLS_SPAN_LIT("QUIT\r\n")), STLS_OK);
	cr_assert_eq(cmd.verb, STLS_SMTP_VERB_QUIT);
}

Test(smtp_lex, bare_lf_is_refused)
{
	struct lex_event ev = LEX_ONE(512, "NOOP\n");
	cr_assert_eq(ev.err, STLS_ERR_BARE_LF, "%s", stls_err_str(ev.err));
	cr_assert_eq(ev.consumed, 5);

	ev = LEX_ONE(512, "\n");
	cr_assert_eq(ev.err, STLS_ERR_BARE_LF, "a lone LF: %s", stls_err_str(ev.err));
	cr_assert_eq(ev.consumed, 1);

	driver_init(&whole, 512);
	driver_feed(&whole, "MAIL FROM:<a@b>\nRCPT TO:<c@d>\r\n", 31);
	cr_assert_eq(whole.num_ev, 2);
	cr_assert_eq(whole.ev[0].err, STLS_ERR_BARE_LF);
	cr_assert_eq(whole.ev[0].consumed, 16, "the bad line ends at the bare LF");
	cr_assert_eq(whole.ev[1].err, STLS_OK);
	cr_assert_eq(whole.ev[1].verb, STLS_SMTP_VERB_RCPT, "the next line is a command of its own");
}

Test(smtp_lex, cr_inside_a_line_is_refused)
{
	struct lex_event ev = LEX_ONE(512, "NO\rOP\r\n");
	cr_assert_eq(ev.err, STLS_ERR_BARE_LF, "CR in the middle: %s", stls_err_str(ev.err));
	cr_assert_eq(ev.consumed, 7);

	ev = LEX_ONE(512, "NOOP\r\r\n");
	cr_assert_eq(ev.err, STLS_ERR_BARE_LF, "CR CR LF: %s", stls_err_str(ev.err));

	/* The smuggling shape: a CR that a lenient backend would take as a line end. */
	ev = LEX_ONE(512, "RSET\rDATA\r\n");
	cr_assert_eq(ev.err, STLS_ERR_BARE_LF, "%s", stls_err_str(ev.err));
	cr_assert_eq(ev.consumed, 11);
}

Test(smtp_lex, nul_is_refused)
{
	struct lex_event ev = LEX_ONE(512, "NO\0OP\r\n");
	cr_assert_eq(ev.err, STLS_ERR_NUL, "%s", stls_err_str(ev.err));
	cr_assert_eq(ev.consumed, 7);

	ev = LEX_ONE(512, "MAIL FROM:<a@b>\0\r\n");
	cr_assert_eq(ev.err, STLS_ERR_NUL, "NUL just before CRLF: %s", stls_err_str(ev.err));

	ev = LEX_ONE(512, "\0\r\n");
	cr_assert_eq(ev.err, STLS_ERR_NUL, "NUL alone: %s", stls_err_str(ev.err));

	/* The next command after the bad line is unaffected. */
	driver_init(&whole, 512);
	driver_feed(&whole, "HELO \0x\r\nQUIT\r\n", 15);
	cr_assert_eq(whole.num_ev, 2);
	cr_assert_eq(whole.ev[0].err, STLS_ERR_NUL);
	cr_assert_eq(whole.ev[1].verb, STLS_SMTP_VERB_QUIT);
}

Test(smtp_lex, empty_line)
{
	struct lex_event ev = LEX_ONE(512, "\r\n");
	cr_assert_eq(ev.err, STLS_OK, "%s", stls_err_str(ev.err));
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_UNKNOWN, "an empty line has no verb");
	cr_assert_eq(ev.line_len, 2);
	cr_assert_str_eq(ev.args, "");
}

Test(smtp_lex, verbs_are_case_insensitive)
{
	struct lex_event ev = LEX_ONE(512, "eHlO Client.Example\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_EHLO);
	cr_assert_str_eq(ev.args, "Client.Example", "args keep their case");

	ev = LEX_ONE(512, "starttls\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_STARTTLS);
	cr_assert_str_eq(ev.line, "starttls\r\n", "the relayed line is untouched");

	ev = LEX_ONE(512, "Mail FROM:<a@b>\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_MAIL);
}

Test(smtp_lex, unknown_verb)
{
	struct lex_event ev = LEX_ONE(512, "FROB nicate\r\n");
	cr_assert_eq(ev.err, STLS_OK);
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_UNKNOWN);
	cr_assert_str_eq(ev.args, "nicate");

	ev = LEX_ONE(512, "MAILX FROM:<a@b>\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_UNKNOWN, "a verb with a known prefix is not that verb");
	ev = LEX_ONE(512, "EHL x\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_UNKNOWN, "a prefix of a verb is not that verb");
	ev = LEX_ONE(512, " NOOP\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_UNKNOWN, "a leading space leaves an empty verb");
	ev = LEX_ONE(512, "UNKNOWN\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_UNKNOWN, "the name of the UNKNOWN verb is not a verb");
}

Test(smtp_lex, verb_without_args)
{
	struct lex_event ev = LEX_ONE(512, "QUIT\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_QUIT);
	cr_assert_str_eq(ev.args, "");
	cr_assert_eq(ev.line_len, 6);

	ev = LEX_ONE(512, "DATA   \r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_DATA, "trailing spaces after the verb");
	cr_assert_str_eq(ev.args, "");

	ev = LEX_ONE(512, "MAIL    FROM:<a@b>\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_MAIL);
	cr_assert_str_eq(ev.args, "FROM:<a@b>", "all spaces after the verb are skipped");
}

Test(smtp_lex, reset_forgets_a_partial_line)
{
	struct stls_smtp_lex lx;
	stls_smtp_lex_init(&lx, 512);
	struct stls_smtp_cmd cmd;
	size_t consumed;
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, STLS_SPAN_LIT("RSET")), STLS_AGAIN);
	cr_assert_eq(lx.scanned, 4);
	stls_smtp_lex_reset(&lx);
	cr_assert_eq(lx.scanned, 0);
	cr_assert_eq(lx.max_line, 512, "reset keeps the limit");
	/* After STARTTLS the caller hands the lexer fresh bytes; all of them are looked at. */
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, STLS_SPAN_LIT("EHLO\r\n")), STLS_OK);
	cr_assert_eq(cmd.verb, STLS_SMTP_VERB_EHLO);
	cr_assert_eq(consumed, 6);
}

Test(smtp_lex, reset_leaves_discarding)
{
	struct stls_smtp_lex lx;
	stls_smtp_lex_init(&lx, 16);
	struct stls_smtp_cmd cmd;
	size_t consumed;
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, STLS_SPAN_LIT("XXXXXXXXXXXXXXXXXXXX")), STLS_AGAIN);
	cr_assert_eq(consumed, 20);
	cr_assert_eq(lx.discarding, 1);
	stls_smtp_lex_reset(&lx);
	cr_assert_eq(lx.discarding, 0);
	cr_assert_eq(stls_smtp_lex_next(&lx, &cmd, &consumed, STLS_SPAN_LIT("EHLO x\r\n")), STLS_OK,
		     "the first line after a reset is a command, not the tail of an old line");
	cr_assert_eq(cmd.verb, STLS_SMTP_VERB_EHLO);
}

Test(smtp_lex, parse_path)
{
	struct stls_span addr;
	cr_assert_eq(stls_smtp_parse_path(&addr, STLS_SPAN_LIT("FROM:<a@b>"), STLS_SPAN_LIT("FROM:")), STLS_OK);
	cr_assert(stls_span_eq(addr, STLS_SPAN_LIT("a@b")));

	cr_assert_eq(stls_smtp_parse_path(&addr, STLS_SPAN_LIT("FROM: <a@b>"), STLS_SPAN_LIT("FROM:")), STLS_OK,
		     "a space after the colon");
	cr_assert(stls_span_eq(addr, STLS_SPAN_LIT("a@b")));

	cr_assert_eq(stls_smtp_parse_path(&addr, STLS_SPAN_LIT("from:<A@B>"), STLS_SPAN_LIT("FROM:")), STLS_OK,
		     "the prefix is case-insensitive");
	cr_assert(stls_span_eq(addr, STLS_SPAN_LIT("A@B")), "the address keeps its case");

	cr_assert_eq(stls_smtp_parse_path(&addr, STLS_SPAN_LIT("TO:<c@d>"), STLS_SPAN_LIT("TO:")), STLS_OK);
	cr_assert(stls_span_eq(addr, STLS_SPAN_LIT("c@d")));

	cr_assert_eq(stls_smtp_parse_path(&addr, STLS_SPAN_LIT("FROM:<a@b> SIZE=1000 BODY=8BITMIME"),
					  STLS_SPAN_LIT("FROM:")),
		     STLS_OK, "parameters after the path");
	cr_assert(stls_span_eq(addr, STLS_SPAN_LIT("a@b")));
}

Test(smtp_lex, parse_path_null_path)
{
	struct stls_span addr = STLS_SPAN_LIT("junk");
	cr_assert_eq(stls_smtp_parse_path(&addr, STLS_SPAN_LIT("FROM:<>"), STLS_SPAN_LIT("FROM:")), STLS_OK);
	cr_assert_eq(addr.len, 0, "the null path is empty");
	cr_assert_eq(stls_smtp_parse_path(&addr, STLS_SPAN_LIT("FROM:<> BODY=7BIT"), STLS_SPAN_LIT("FROM:")), STLS_OK);
	cr_assert_eq(addr.len, 0);
}

Test(smtp_lex, parse_path_rejects_malformed)
{
	static const char *const bad[] = {
		"FROM:<a@b",	 /* missing '>' */
		"FROM:a@b",	 /* no brackets */
		"FROM:a@b>",	 /* no '<' */
		"FROM:",	 /* nothing */
		"FROM:<",	 /* only '<' */
		"FROM",		 /* no colon */
		"",		 /* empty */
		"TO:<c@d>",	 /* the other prefix */
		"FROM :<a@b>",	 /* space before the colon */
		"FROMAGE:<a@b>", /* a word that merely starts like the prefix */
		"FROM:x<a@b>",	 /* junk before '<' */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct stls_span addr;
		cr_assert_eq(stls_smtp_parse_path(&addr, stls_span_cstr(bad[i]), STLS_SPAN_LIT("FROM:")),
			     STLS_ERR_PROTO, "\"%s\" was accepted", bad[i]);
	}
}

Test(smtp_lex, parse_bdat)
{
	uint64_t size = 7;
	bool last = true;
	cr_assert_eq(stls_smtp_parse_bdat(&size, &last, STLS_SPAN_LIT("1000"), 1 << 20), STLS_OK);
	cr_assert_eq(size, 1000);
	cr_assert_eq(last, false);

	cr_assert_eq(stls_smtp_parse_bdat(&size, &last, STLS_SPAN_LIT("86 LAST"), 1 << 20), STLS_OK);
	cr_assert_eq(size, 86);
	cr_assert_eq(last, true);

	cr_assert_eq(stls_smtp_parse_bdat(&size, &last, STLS_SPAN_LIT("0 last"), 1 << 20), STLS_OK, "LAST any case");
	cr_assert_eq(size, 0);
	cr_assert_eq(last, true);

	cr_assert_eq(stls_smtp_parse_bdat(&size, &last, STLS_SPAN_LIT("  42   LAST  "), 1 << 20), STLS_OK,
		     "extra spaces");
	cr_assert_eq(size, 42);
	cr_assert_eq(last, true);

	cr_assert_eq(stls_smtp_parse_bdat(&size, &last, STLS_SPAN_LIT("1048576"), 1 << 20), STLS_OK, "exactly max");
	cr_assert_eq(size, 1048576);
}

Test(smtp_lex, parse_bdat_rejects_malformed)
{
	static const char *const bad[] = {
		"",	      "LAST",	    "abc",	   "-1",      "1e3",
		"12x",	      "1000 FIRST", "1000 LAST x", "1048577", "99999999999999999999999",
		"1000\tLAST",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t size;
		bool last;
		cr_assert_eq(stls_smtp_parse_bdat(&size, &last, stls_span_cstr(bad[i]), 1 << 20), STLS_ERR_PROTO,
			     "\"%s\" was accepted", bad[i]);
	}
}

Test(smtp_lex, bdat_command_through_the_lexer)
{
	struct lex_event ev = LEX_ONE(512, "BDAT 512 LAST\r\n");
	cr_assert_eq(ev.verb, STLS_SMTP_VERB_BDAT);
	uint64_t size;
	bool last;
	cr_assert_eq(stls_smtp_parse_bdat(&size, &last, stls_span_cstr(ev.args), 1 << 20), STLS_OK);
	cr_assert_eq(size, 512);
	cr_assert(last);
}
