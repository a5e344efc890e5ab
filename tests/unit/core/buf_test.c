/* Unit tests for core/buf.c: byte buffers with read and write cursors. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <string.h>

#include "core/buf.h"

static void expect_content(const struct stls_buf *b, const void *want, size_t len, const char *why)
{
	struct stls_span s = stls_buf_span(b);
	cr_assert_eq(s.len, len, "%s: %zu bytes, expected %zu", why, s.len, len);
	cr_assert(len == 0 || memcmp(s.ptr, want, len) == 0, "%s: content differs", why);
}

static void fill(struct stls_buf *b, size_t n, uint8_t byte, size_t limit)
{
	uint8_t tmp[4096];
	cr_assert_leq(n, sizeof(tmp));
	memset(tmp, byte, n);
	cr_assert_eq(stls_buf_append(b, stls_span_make(tmp, n), limit), STLS_OK);
}

Test(buf, all_zero_is_valid_and_empty)
{
	struct stls_buf b = { 0 };
	cr_assert(stls_buf_empty(&b));
	cr_assert_eq(stls_buf_len(&b), 0);
	cr_assert_eq(stls_buf_span(&b).len, 0);
	cr_assert_eq(stls_buf_tail_room(&b), 0, "no memory is owned");
	stls_buf_consume(&b, 0);
	cr_assert(stls_buf_empty(&b));
	stls_buf_release_if_empty(&b);
	cr_assert_null(b.data);
	stls_buf_cleanup(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.cap, 0);
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT(""), 0), STLS_OK, "appending nothing needs no memory");
	cr_assert_null(b.data, "appending nothing allocates nothing");
}

Test(buf, append_and_read)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("EHLO a\r\n"), 1024), STLS_OK);
	cr_assert_not_null(b.data, "memory is taken when bytes must be held");
	cr_assert_not(stls_buf_empty(&b));
	expect_content(&b, "EHLO a\r\n", 8, "after one append");
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("QUIT\r\n"), 1024), STLS_OK);
	expect_content(&b, "EHLO a\r\nQUIT\r\n", 14, "after two appends");
	stls_buf_cleanup(&b);
}

Test(buf, consume_advances_and_resets_cursors)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("0123456789"), 1024), STLS_OK);
	size_t room = stls_buf_tail_room(&b);
	stls_buf_consume(&b, 4);
	expect_content(&b, "456789", 6, "after consuming 4");
	cr_assert_eq(b.rpos, 4);
	cr_assert_eq(stls_buf_tail_room(&b), room, "consuming does not move bytes");
	stls_buf_consume(&b, 6);
	cr_assert(stls_buf_empty(&b));
	cr_assert_eq(b.rpos, 0, "empty: the read cursor goes back to the start");
	cr_assert_eq(b.wpos, 0, "empty: the write cursor goes back to the start");
	cr_assert_eq(stls_buf_tail_room(&b), b.cap, "all the memory is reusable");
	cr_assert_not_null(b.data, "consume keeps the memory");
	stls_buf_cleanup(&b);
}

/* stls_bug reports on stderr before aborting; keep it out of the test output. */
Test(buf, consume_past_the_end_is_a_bug, .signal = SIGABRT, .init = cr_redirect_stderr)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("abc"), 1024), STLS_OK);
	stls_buf_consume(&b, 4);
}

Test(buf, limits)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_reserve(&b, 101, 100), STLS_ERR_LIMIT, "more than the limit at once");
	cr_assert_null(b.data, "a refused reserve allocates nothing");
	cr_assert_eq(stls_buf_reserve(&b, 100, 100), STLS_OK, "exactly the limit");
	fill(&b, 60, 'a', 100);
	cr_assert_eq(stls_buf_reserve(&b, 41, 100), STLS_ERR_LIMIT, "unread bytes count toward the limit");
	cr_assert_eq(stls_buf_reserve(&b, 40, 100), STLS_OK);

	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("0123456789012345678901234567890123456789X"), 100),
		     STLS_ERR_LIMIT);
	cr_assert_eq(stls_buf_len(&b), 60, "a refused append leaves the buffer as it was");
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("0123456789012345678901234567890123456789"), 100), STLS_OK);
	cr_assert_eq(stls_buf_len(&b), 100);
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("x"), 100), STLS_ERR_LIMIT, "full");

	/* Consumed bytes no longer count. */
	stls_buf_consume(&b, 50);
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("0123456789"), 100), STLS_OK);
	cr_assert_eq(stls_buf_len(&b), 60);

	cr_assert_eq(stls_buf_reserve(&b, SIZE_MAX, SIZE_MAX), STLS_ERR_LIMIT, "no overflow in the check");
	cr_assert_eq(stls_buf_reserve(&b, (size_t)UINT32_MAX + 1, SIZE_MAX), STLS_ERR_LIMIT,
		     "the 32-bit cursors bound the buffer");
	cr_assert_eq(stls_buf_len(&b), 60);
	stls_buf_cleanup(&b);
}

Test(buf, reserve_grows_from_zero)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_reserve(&b, 1, 1 << 20), STLS_OK);
	cr_assert_not_null(b.data);
	cr_assert_geq(stls_buf_tail_room(&b), 1);
	cr_assert_eq(b.rpos, 0);
	cr_assert_eq(b.wpos, 0);
	stls_buf_cleanup(&b);

	cr_assert_eq(stls_buf_reserve(&b, 3000, 1 << 20), STLS_OK);
	cr_assert_geq(stls_buf_tail_room(&b), 3000);
	stls_buf_cleanup(&b);
}

Test(buf, reserve_moves_unread_bytes_to_the_front)
{
	struct stls_buf b = { 0 };
	fill(&b, 10, 'a', 1 << 20);
	uint32_t cap = b.cap;
	/* Fill to the end of the memory, then consume most of it. */
	size_t rest = stls_buf_tail_room(&b);
	fill(&b, rest, 'b', 1 << 20);
	cr_assert_eq(stls_buf_tail_room(&b), 0);
	stls_buf_consume(&b, 10 + rest - 5); /* 5 'b' left, at the end of the memory */
	uint8_t *data = b.data;
	cr_assert_eq(stls_buf_reserve(&b, 20, 1 << 20), STLS_OK);
	cr_assert_eq(b.data, data, "moving is enough: no new memory");
	cr_assert_eq(b.cap, cap);
	cr_assert_eq(b.rpos, 0, "unread bytes moved to the front");
	cr_assert_eq(b.wpos, 5);
	cr_assert_geq(stls_buf_tail_room(&b), 20);
	expect_content(&b, "bbbbb", 5, "after the move");
	memcpy(stls_buf_tail(&b), "ccc", 3);
	stls_buf_commit(&b, 3);
	expect_content(&b, "bbbbbccc", 8, "after writing at the tail");
	stls_buf_cleanup(&b);
}

Test(buf, reserve_grows_and_keeps_unread_bytes)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("keep"), 1 << 20), STLS_OK);
	uint32_t cap = b.cap;
	fill(&b, cap - 4, 'k', 1 << 20);
	stls_buf_consume(&b, 1); /* unread bytes do not start at 0 */
	size_t used = stls_buf_len(&b);
	cr_assert_eq(stls_buf_reserve(&b, cap, 1 << 20), STLS_OK);
	cr_assert_gt(b.cap, cap, "grown");
	cr_assert_eq(b.rpos, 0, "the read cursor is at the start of the new memory");
	cr_assert_eq(stls_buf_len(&b), used);
	cr_assert_geq(stls_buf_tail_room(&b), cap);
	struct stls_span s = stls_buf_span(&b);
	cr_assert_eq(memcmp(s.ptr, "eep", 3), 0, "bytes kept across the move to new memory");
	for (size_t i = 3; i < s.len; i++)
		cr_assert_eq(s.ptr[i], 'k', "byte %zu", i);
	stls_buf_cleanup(&b);
}

Test(buf, many_appends)
{
	struct stls_buf b = { 0 };
	for (unsigned i = 0; i < 10000; i++) {
		uint8_t byte = (uint8_t)(i * 7);
		cr_assert_eq(stls_buf_append(&b, stls_span_make(&byte, 1), 1 << 20), STLS_OK);
		if (i % 3 == 2)
			stls_buf_consume(&b, 1);
	}
	/* 10000 bytes written, 3333 consumed from the front. */
	struct stls_span s = stls_buf_span(&b);
	cr_assert_eq(s.len, 10000 - 3333);
	for (size_t k = 0; k < s.len; k++)
		cr_assert_eq(s.ptr[k], (uint8_t)((k + 3333) * 7), "byte %zu", k);
	stls_buf_cleanup(&b);
}

Test(buf, release_if_empty)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("abc"), 1024), STLS_OK);
	stls_buf_release_if_empty(&b);
	cr_assert_not_null(b.data, "unread bytes remain: nothing is released");
	expect_content(&b, "abc", 3, "after a refused release");
	stls_buf_consume(&b, 3);
	stls_buf_release_if_empty(&b);
	cr_assert_null(b.data, "an empty buffer gives its memory back");
	cr_assert_eq(b.cap, 0);
	cr_assert_eq(b.rpos, 0);
	cr_assert_eq(b.wpos, 0);
	/* ...and is a valid empty buffer again. */
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("xy"), 1024), STLS_OK);
	expect_content(&b, "xy", 2, "reuse after release");
	stls_buf_cleanup(&b);
}

Test(buf, cleanup_frees_whatever_it_holds)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("secret"), 1024), STLS_OK);
	stls_buf_cleanup(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.cap, 0);
	cr_assert_eq(b.rpos, 0);
	cr_assert_eq(b.wpos, 0);
	stls_buf_cleanup(&b); /* twice is harmless */
	cr_assert(stls_buf_empty(&b));
}

Test(buf, appendf)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_appendf(&b, 1024, "%d %s\r\n", 250, "OK"), STLS_OK);
	expect_content(&b, "250 OK\r\n", 8, "small format");
	cr_assert_eq(stls_buf_appendf(&b, 1024, "%s", ""), STLS_OK);
	cr_assert_eq(stls_buf_len(&b), 8, "an empty format appends nothing");
	cr_assert_eq(stls_buf_appendf(&b, 10, "%s", "abc"), STLS_ERR_LIMIT, "8 + 3 > 10");
	cr_assert_eq(stls_buf_len(&b), 8, "nothing appended on LIMIT");
	cr_assert_eq(stls_buf_appendf(&b, 10, "%s", "ab"), STLS_OK, "exactly the limit");
	expect_content(&b, "250 OK\r\nab", 10, "filled to the limit");
	stls_buf_cleanup(&b);
}

Test(buf, appendf_long_output)
{
	/* Longer than the function's stack buffer: formatted straight into the buffer. */
	static char big[3000];
	memset(big, 'z', sizeof(big) - 1);
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_append(&b, STLS_SPAN_LIT("<"), 1 << 20), STLS_OK);
	cr_assert_eq(stls_buf_appendf(&b, 1 << 20, "%s>", big), STLS_OK);
	struct stls_span s = stls_buf_span(&b);
	cr_assert_eq(s.len, 1 + 2999 + 1);
	cr_assert_eq(s.ptr[0], '<');
	cr_assert_eq(s.ptr[1], 'z');
	cr_assert_eq(s.ptr[2999], 'z');
	cr_assert_eq(s.ptr[3000], '>');

	/* Exactly the limit, then one over: nothing appended. */
	stls_buf_cleanup(&b);
	cr_assert_eq(stls_buf_appendf(&b, 3000, "%s>", big), STLS_OK, "3000 octets with limit 3000");
	cr_assert_eq(stls_buf_len(&b), 3000);
	stls_buf_consume(&b, 3000);
	cr_assert_eq(stls_buf_appendf(&b, 2999, "%s>", big), STLS_ERR_LIMIT);
	cr_assert_eq(stls_buf_len(&b), 0, "nothing appended on LIMIT");
	stls_buf_cleanup(&b);
}

Test(buf, tail_and_commit)
{
	struct stls_buf b = { 0 };
	cr_assert_eq(stls_buf_reserve(&b, 16, 1024), STLS_OK);
	uint8_t *tail = stls_buf_tail(&b);
	cr_assert_eq(tail, b.data);
	memcpy(tail, "RCPT", 4);
	stls_buf_commit(&b, 4);
	expect_content(&b, "RCPT", 4, "after commit");
	cr_assert_eq(stls_buf_tail(&b), b.data + 4);
	stls_buf_cleanup(&b);
}
