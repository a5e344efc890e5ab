/* Unit tests for proto/smtp_data.c: the DATA stream scanner.
 *
 * The end of data is CRLF "." CRLF (RFC 5321 4.1.1.4), with the DATA command's own CRLF as the
 * first CRLF. Whatever the read boundaries, the scanner must stop exactly after the terminator,
 * never take a bare LF for a line end, and record defects without stopping. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp_data.h"

/* Scans in with a fresh scanner; returns the result, *out_len and the scanner. */
static enum stls_err scan_once(struct stls_smtp_data *sd, uint32_t max_line, const void *in, size_t len,
			       size_t *out_len)
{
	stls_smtp_data_init(sd, max_line);
	*out_len = 987654;
	return stls_smtp_data_scan(sd, out_len, stls_span_make(in, len));
}

/* Feeds in as consecutive reads cut at the given points (ascending, each <= len). Returns the
 * offset in in just after the terminator, or len + 1 if the end was not found; checks *out_len on
 * every call. */
static size_t scan_pieces(struct stls_smtp_data *sd, uint32_t max_line, const char *in, size_t len, const size_t *cuts,
			  size_t num_cuts)
{
	stls_smtp_data_init(sd, max_line);
	size_t pos = 0;
	for (size_t c = 0; c <= num_cuts; c++) {
		size_t end = c < num_cuts ? cuts[c] : len;
		cr_assert_geq(end, pos);
		size_t out_len = 987654;
		enum stls_err err = stls_smtp_data_scan(sd, &out_len, stls_span_make(in + pos, end - pos));
		if (err == STLS_DONE) {
			cr_assert_leq(out_len, end - pos, "DONE with *out_len %zu past the %zu bytes given", out_len,
				      end - pos);
			return pos + out_len;
		}
		cr_assert_eq(err, STLS_AGAIN, "scan returned %s", stls_err_str(err));
		cr_assert_eq(out_len, end - pos, "on AGAIN *out_len is in.len");
		pos = end;
	}
	return len + 1;
}

Test(smtp_data, init_state)
{
	struct stls_smtp_data sd;
	memset(&sd, 0xa5, sizeof(sd));
	stls_smtp_data_init(&sd, 1000);
	cr_assert_eq(sd.state, STLS_SMTP_DATA_BOL, "a message starts at the start of a line");
	cr_assert_eq(sd.max_line, 1000);
	cr_assert_eq(sd.line_len, 0);
	cr_assert_eq(sd.total, 0);
	cr_assert_eq(sd.fault, STLS_OK);
}

static const char body[] = "Subject: test\r\n"
			   "\r\n"
			   "..stuffed line\r\n"
			   "..\r\n"
			   "last line\r\n"
			   ".\r\n";
static const char trailer[] = "QUIT\r\n";

Test(smtp_data, terminator_whole)
{
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 1000, body, sizeof(body) - 1, &out_len), STLS_DONE);
	cr_assert_eq(out_len, sizeof(body) - 1, "*out_len %zu", out_len);
	cr_assert_eq(sd.fault, STLS_OK, "%s", stls_err_str(sd.fault));
	cr_assert_eq(sd.total, sizeof(body) - 1);
}

Test(smtp_data, bytes_after_the_terminator_are_not_consumed)
{
	char in[sizeof(body) - 1 + sizeof(trailer) - 1];
	memcpy(in, body, sizeof(body) - 1);
	memcpy(in + sizeof(body) - 1, trailer, sizeof(trailer) - 1);
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 1000, in, sizeof(in), &out_len), STLS_DONE);
	cr_assert_eq(out_len, sizeof(body) - 1, "*out_len %zu: stops at the end of the terminator", out_len);
	cr_assert_eq(sd.total, sizeof(body) - 1, "total counts the message only");

	/* A pipelined second terminator after the first does not move the end. */
	cr_assert_eq(scan_once(&sd, 1000, ".\r\n.\r\n", 6, &out_len), STLS_DONE);
	cr_assert_eq(out_len, 3);
}

Test(smtp_data, empty_message)
{
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 1000, ".\r\n", 3, &out_len), STLS_DONE, "DATA's CRLF is the first CRLF");
	cr_assert_eq(out_len, 3);
	cr_assert_eq(sd.total, 3);
	cr_assert_eq(sd.fault, STLS_OK);

	cr_assert_eq(scan_once(&sd, 1000, ".\r\nQUIT\r\n", 9, &out_len), STLS_DONE);
	cr_assert_eq(out_len, 3);

	cr_assert_eq(scan_once(&sd, 1000, "\r\n.\r\n", 5, &out_len), STLS_DONE, "one empty line");
	cr_assert_eq(out_len, 5);
}

static void check_split(const char *in, size_t len, size_t want_end, uint32_t max_line, enum stls_err want_fault)
{
	struct stls_smtp_data sd;
	for (size_t i = 0; i <= len; i++) {
		size_t cuts[1] = { i };
		size_t end = scan_pieces(&sd, max_line, in, len, cuts, 1);
		cr_assert_eq(end, want_end, "split at %zu: end at %zu, expected %zu", i, end, want_end);
		cr_assert_eq(sd.fault, want_fault, "split at %zu: fault %s, expected %s", i, stls_err_str(sd.fault),
			     stls_err_str(want_fault));
		cr_assert_eq(sd.total, want_end, "split at %zu: total %llu", i, (unsigned long long)sd.total);
	}
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			size_t cuts[2] = { i, j };
			size_t end = scan_pieces(&sd, max_line, in, len, cuts, 2);
			cr_assert_eq(end, want_end, "split at %zu and %zu: end at %zu, expected %zu", i, j, end,
				     want_end);
			cr_assert_eq(sd.fault, want_fault, "split at %zu and %zu: fault %s", i, j,
				     stls_err_str(sd.fault));
		}
	}
	/* Byte at a time. */
	size_t cuts[512];
	cr_assert_leq(len, sizeof(cuts) / sizeof(cuts[0]));
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	size_t end = scan_pieces(&sd, max_line, in, len, cuts, len);
	cr_assert_eq(end, want_end, "byte at a time: end at %zu", end);
	cr_assert_eq(sd.fault, want_fault, "byte at a time: fault %s", stls_err_str(sd.fault));
}

Test(smtp_data, terminator_split_at_every_point)
{
	char in[sizeof(body) - 1 + sizeof(trailer) - 1];
	memcpy(in, body, sizeof(body) - 1);
	memcpy(in + sizeof(body) - 1, trailer, sizeof(trailer) - 1);
	check_split(in, sizeof(in), sizeof(body) - 1, 1000, STLS_OK);
}

Test(smtp_data, empty_message_split_at_every_point)
{
	check_split(".\r\nQUIT\r\n", 9, 3, 1000, STLS_OK);
}

Test(smtp_data, dot_stuffed_lines_do_not_end_the_message)
{
	static const char *const not_end[] = {
		"..foo\r\n", "..\r\n", ".x\r\n", ". \r\n", "x.\r\n", " .\r\n", "a\r\n..\r\n", "a\r\n.x\r\n",
	};
	for (size_t i = 0; i < sizeof(not_end) / sizeof(not_end[0]); i++) {
		struct stls_smtp_data sd;
		size_t out_len;
		size_t len = strlen(not_end[i]);
		cr_assert_eq(scan_once(&sd, 1000, not_end[i], len, &out_len), STLS_AGAIN, "\"%s\" ended the message",
			     not_end[i]);
		cr_assert_eq(out_len, len);
		cr_assert_eq(sd.fault, STLS_OK, "\"%s\": %s", not_end[i], stls_err_str(sd.fault));
		/* ...and the real terminator still ends it afterwards. */
		cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT(".\r\n")), STLS_DONE, "after \"%s\"",
			     not_end[i]);
		cr_assert_eq(out_len, 3);
	}
}

static void expect_bare_lf_not_end(const char *in, size_t len)
{
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 1000, in, len, &out_len), STLS_AGAIN, "a bare-LF form ended the message");
	cr_assert_eq(out_len, len);
	cr_assert_eq(sd.fault, STLS_ERR_BARE_LF, "fault %s", stls_err_str(sd.fault));
	/* The message goes on to the real terminator, and the fault stays. */
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT("\r\n.\r\n")), STLS_DONE);
	cr_assert_eq(out_len, 5);
	cr_assert_eq(sd.fault, STLS_ERR_BARE_LF);
	cr_assert_eq(sd.total, len + 5);
}

#define EXPECT_BARE_LF_NOT_END(lit) expect_bare_lf_not_end((lit), sizeof(lit) - 1)

Test(smtp_data, lf_dot_lf_does_not_end)
{
	EXPECT_BARE_LF_NOT_END("x\n.\n");
	EXPECT_BARE_LF_NOT_END("\n.\n");
	EXPECT_BARE_LF_NOT_END(".\n");
}

Test(smtp_data, crlf_dot_lf_does_not_end)
{
	EXPECT_BARE_LF_NOT_END("x\r\n.\n");
	EXPECT_BARE_LF_NOT_END("\r\n.\n");
}

Test(smtp_data, lf_dot_crlf_does_not_end)
{
	EXPECT_BARE_LF_NOT_END("x\n.\r\n");
	EXPECT_BARE_LF_NOT_END("\n.\r\n");
	EXPECT_BARE_LF_NOT_END("x\n.\r\nmore\r\n");
}

Test(smtp_data, bare_lf_forms_split_at_every_point)
{
	static const char in[] = "x\n.\nx\r\n.\nx\n.\r\nlast\r\n.\r\nQUIT\r\n";
	check_split(in, sizeof(in) - 1, sizeof(in) - 1 - 6, 1000, STLS_ERR_BARE_LF);
}

Test(smtp_data, bare_cr_is_a_fault)
{
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 1000, "a\rb\r\n.\r\n", 8, &out_len), STLS_DONE);
	cr_assert_eq(out_len, 8);
	cr_assert_eq(sd.fault, STLS_ERR_BARE_LF, "bare CR in a line: %s", stls_err_str(sd.fault));

	cr_assert_eq(scan_once(&sd, 1000, "\rx\r\n.\r\n", 7, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_BARE_LF, "bare CR at the start of a line: %s", stls_err_str(sd.fault));

	/* ".\r" followed by anything but LF is not the terminator but a bare CR. */
	cr_assert_eq(scan_once(&sd, 1000, ".\rx\r\n.\r\n", 8, &out_len), STLS_DONE);
	cr_assert_eq(out_len, 8, "\".\\rx\" did not end the message");
	cr_assert_eq(sd.fault, STLS_ERR_BARE_LF, "%s", stls_err_str(sd.fault));

	cr_assert_eq(scan_once(&sd, 1000, ".\r\r\n.\r\n", 7, &out_len), STLS_DONE);
	cr_assert_eq(out_len, 7, "\".\\r\\r\\n\" did not end the message");
	cr_assert_eq(sd.fault, STLS_ERR_BARE_LF, "%s", stls_err_str(sd.fault));

	cr_assert_eq(scan_once(&sd, 1000, "a\r\r\n.\r\n", 7, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_BARE_LF, "CR CR LF: %s", stls_err_str(sd.fault));
}

Test(smtp_data, nul_is_a_fault)
{
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 1000, "a\0b\r\n.\r\n", 8, &out_len), STLS_DONE);
	cr_assert_eq(out_len, 8);
	cr_assert_eq(sd.fault, STLS_ERR_NUL, "NUL inside a line: %s", stls_err_str(sd.fault));

	cr_assert_eq(scan_once(&sd, 1000, "\0\r\n.\r\n", 6, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_NUL, "NUL at the start of a line: %s", stls_err_str(sd.fault));

	cr_assert_eq(scan_once(&sd, 1000, ".\0\r\n.\r\n", 7, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_NUL, "NUL after a leading dot: %s", stls_err_str(sd.fault));

	cr_assert_eq(scan_once(&sd, 1000, "abcdefgh\0\r\n.\r\n", 14, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_NUL, "NUL at the end of a long run: %s", stls_err_str(sd.fault));
}

Test(smtp_data, first_fault_is_kept)
{
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 1000, "a\0b\r\nc\nd\r\n.\r\n", 13, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_NUL, "%s", stls_err_str(sd.fault));
	cr_assert_eq(scan_once(&sd, 1000, "c\nd\r\na\0b\r\n.\r\n", 13, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_BARE_LF, "%s", stls_err_str(sd.fault));
}

Test(smtp_data, line_of_exactly_max_line_is_fine)
{
	struct stls_smtp_data sd;
	size_t out_len;
	/* max_line 10 counts the CRLF: 8 octets of text. */
	cr_assert_eq(scan_once(&sd, 10, "12345678\r\n.\r\n", 13, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_OK, "10 octets with CRLF: %s", stls_err_str(sd.fault));
	cr_assert_eq(scan_once(&sd, 10, ".2345678\r\n.\r\n", 13, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_OK, "a stuffed line of 10 octets: %s", stls_err_str(sd.fault));
	check_split("12345678\r\n.\r\n", 13, 13, 10, STLS_OK);
}

Test(smtp_data, line_one_over_max_line_is_too_long)
{
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 10, "123456789\r\n.\r\n", 14, &out_len), STLS_DONE);
	cr_assert_eq(out_len, 14, "the end is still found");
	cr_assert_eq(sd.fault, STLS_ERR_TOO_LONG, "11 octets with CRLF: %s", stls_err_str(sd.fault));
	cr_assert_eq(scan_once(&sd, 10, "ok\r\n123456789\r\n.\r\n", 18, &out_len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_TOO_LONG, "on a later line: %s", stls_err_str(sd.fault));
	check_split("123456789\r\n.\r\n", 14, 14, 10, STLS_ERR_TOO_LONG);
}

Test(smtp_data, long_line_is_a_fault_before_it_ends)
{
	/* The caller stops relaying a bad message as soon as the fault shows; a line with no CR or LF
	 * at all must not be relayed without end. */
	struct stls_smtp_data sd;
	size_t out_len;
	static char run[64];
	memset(run, 'x', sizeof(run));
	cr_assert_eq(scan_once(&sd, 10, run, 11, &out_len), STLS_AGAIN);
	cr_assert_eq(sd.fault, STLS_ERR_TOO_LONG, "11 octets without CRLF in one read: %s", stls_err_str(sd.fault));

	stls_smtp_data_init(&sd, 10);
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, stls_span_make(run, 5)), STLS_AGAIN);
	cr_assert_eq(sd.fault, STLS_OK);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, stls_span_make(run, sizeof(run))), STLS_AGAIN);
	cr_assert_eq(sd.fault, STLS_ERR_TOO_LONG, "%llu octets without CRLF in many reads: %s",
		     (unsigned long long)sd.total, stls_err_str(sd.fault));
}

Test(smtp_data, max_line_zero_is_unlimited)
{
	enum { N = 200000 };
	static char in[N + 5];
	memset(in, 'y', N);
	memcpy(in + N, "\r\n.\r\n", 5);
	struct stls_smtp_data sd;
	size_t out_len;
	cr_assert_eq(scan_once(&sd, 0, in, sizeof(in), &out_len), STLS_DONE);
	cr_assert_eq(out_len, sizeof(in));
	cr_assert_eq(sd.fault, STLS_OK, "%s", stls_err_str(sd.fault));
	cr_assert_eq(sd.total, sizeof(in));
}

Test(smtp_data, total_counts_across_reads)
{
	struct stls_smtp_data sd;
	size_t out_len;
	stls_smtp_data_init(&sd, 1000);
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT("Subject: a\r\n")), STLS_AGAIN);
	cr_assert_eq(sd.total, 12);
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT("\r\nbody")), STLS_AGAIN);
	cr_assert_eq(sd.total, 18);
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT("\r\n.\r\nMAIL FROM:<>\r\n")), STLS_DONE);
	cr_assert_eq(out_len, 5);
	cr_assert_eq(sd.total, 23, "total %llu counts up to the terminator", (unsigned long long)sd.total);
}

Test(smtp_data, empty_read_changes_nothing)
{
	struct stls_smtp_data sd;
	size_t out_len = 99;
	stls_smtp_data_init(&sd, 1000);
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT("abc\r\n.")), STLS_AGAIN);
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT("")), STLS_AGAIN);
	cr_assert_eq(out_len, 0);
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT("\r")), STLS_AGAIN);
	cr_assert_eq(stls_smtp_data_scan(&sd, &out_len, STLS_SPAN_LIT("\nNOOP\r\n")), STLS_DONE,
		     "CRLF.CRLF across three reads");
	cr_assert_eq(out_len, 1);
	cr_assert_eq(sd.total, 8);
}

/* Found by tests/fuzz/smtp_data.c: the defect recorded (and so the reply) must be the first by
 * position, wherever the reads fall. A NUL and the byte that passes the limit of 8 in one line:
 * the bulk path used to record the NUL first whenever both were in the same read. */
Test(smtp_data, first_defect_does_not_depend_on_reads)
{
	static const char msg[] = "linelongNUL\0\r\n.\r\n";
	static const char nul_first[] = "lin\0elonger\r\n.\r\n";
	struct stls_smtp_data sd;
	size_t len;
	cr_assert_eq(scan_once(&sd, 8, nul_first, sizeof(nul_first) - 1, &len), STLS_DONE);
	cr_assert_eq(sd.fault, STLS_ERR_NUL, "one read: %s", stls_err_str(sd.fault));
	for (size_t cut = 1; cut < sizeof(nul_first) - 1; cut++) {
		size_t cuts[] = { cut };
		cr_assert_eq(scan_pieces(&sd, 8, nul_first, sizeof(nul_first) - 1, cuts, 1), sizeof(nul_first) - 1);
		cr_assert_eq(sd.fault, STLS_ERR_NUL, "cut at %zu: %s", cut, stls_err_str(sd.fault));
	}
	/* The other order: the line passes the limit at its ninth byte, before the NUL. */
	for (size_t cut = 0; cut < sizeof(msg) - 1; cut++) {
		size_t cuts[] = { cut };
		cr_assert_eq(scan_pieces(&sd, 8, msg, sizeof(msg) - 1, cuts, 1), sizeof(msg) - 1);
		cr_assert_eq(sd.fault, STLS_ERR_TOO_LONG, "cut at %zu: %s", cut, stls_err_str(sd.fault));
	}
}
