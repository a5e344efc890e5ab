/* Unit tests for core/table_file.c: the reader every table file shares.
 *
 * Files are written into a fresh mkdtemp folder under /tmp that each test removes again. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/tmpdir.h"
#include "core/mem.h"
#include "core/table_file.h"

static char tmpdir[64];

static void setup(void)
{
	stls_tmpdir_make(tmpdir, sizeof(tmpdir), "table-file-test");
}

static void teardown(void)
{
	stls_tmpdir_remove(tmpdir);
}

TestSuite(table_file, .init = setup, .fini = teardown);

/* Writes len bytes into a new file in the test's folder; returns its path. */
static const char *write_file(const char *name, const void *text, size_t len)
{
	return stls_tmpdir_file(tmpdir, name, text, len);
}

#define WRITE_FILE(name, lit) write_file((name), (lit), sizeof(lit) - 1)

/* What the callback saw: every entry joined as "LINE:f1|f2|...;". */
struct seen {
	char text[8192];
	unsigned calls;
	unsigned fail_at; /* the callback fails on this line (0: never) */
	bool give_reason;
};

/* Appends to s->text, failing the test rather than overflowing. */
static void seen_append(struct seen *s, const char *part, size_t len)
{
	size_t have = strlen(s->text);
	cr_assert_lt(have + len, sizeof(s->text), "the test's record is full");
	memcpy(s->text + have, part, len);
	s->text[have + len] = '\0';
}

static enum stls_err record(void *ctx, unsigned lineno, struct stls_span *fields, unsigned num_fields, char *why,
			    size_t why_len)
{
	struct seen *s = ctx;
	char num[16];
	s->calls++;
	cr_assert_geq(num_fields, 1);
	cr_assert_leq(num_fields, STLS_TABLE_FILE_MAX_FIELDS);
	seen_append(s, num, (size_t)snprintf(num, sizeof(num), "%u:", lineno));
	for (unsigned i = 0; i < num_fields; i++) {
		cr_assert_gt(fields[i].len, 0, "fields are never empty");
		if (i > 0)
			seen_append(s, "|", 1);
		seen_append(s, (const char *)fields[i].ptr, fields[i].len);
	}
	seen_append(s, ";", 1);
	if (lineno == s->fail_at) {
		if (s->give_reason)
			snprintf(why, why_len, "unknown mode \"%.*s\"", (int)fields[num_fields - 1].len,
				 (const char *)fields[num_fields - 1].ptr);
		return STLS_ERR_CONFIG;
	}
	return STLS_OK;
}

Test(table_file, entries_comments_blanks_and_separators)
{
	const char *path = WRITE_FILE("policy", "# a comment line\n"
						"\n"
						"example.com        required\n"
						"   \t  \n"
						".example.com\tpreferred          # every subdomain\n"
						"\t  bank.test \t required-verify\t\n"
						"#example.org none\n"
						"a#b c\n"
						"crlf.test none\r\n"
						"*    preferred");
	struct seen s = { 0 };
	char err[256] = "";
	cr_assert_eq(stls_table_file_read(path, record, &s, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_str_eq(s.text, "3:example.com|required;5:.example.com|preferred;6:bank.test|required-verify;"
				 "8:a;9:crlf.test|none;10:*|preferred;");
	cr_assert_eq(s.calls, 6);
}

Test(table_file, empty_and_comment_only_files)
{
	struct seen s = { 0 };
	char err[256] = "";
	cr_assert_eq(stls_table_file_read(WRITE_FILE("empty", ""), record, &s, err, sizeof(err)), STLS_OK);
	cr_assert_eq(
		stls_table_file_read(WRITE_FILE("comments", "# nothing\n\n  # here\n"), record, &s, err, sizeof(err)),
		STLS_OK);
	cr_assert_eq(s.calls, 0);
}

Test(table_file, callback_error_names_file_and_line_and_stops)
{
	const char *path = WRITE_FILE("policy", "a.test none\n\nb.test requird\nc.test none\n");
	struct seen s = { .fail_at = 3, .give_reason = true };
	char err[256] = "";
	cr_assert_eq(stls_table_file_read(path, record, &s, err, sizeof(err)), STLS_ERR_CONFIG);
	char want[256];
	snprintf(want, sizeof(want), "%s:3: unknown mode \"requird\"", path);
	cr_assert_str_eq(err, want);
	cr_assert_eq(s.calls, 2, "nothing after the failing line is read");

	struct seen quiet = { .fail_at = 1 };
	cr_assert_eq(stls_table_file_read(path, record, &quiet, err, sizeof(err)), STLS_ERR_CONFIG);
	snprintf(want, sizeof(want), "%s:1: ERR_CONFIG", path);
	cr_assert_str_eq(err, want, "no reason given: the error's name");
}

Test(table_file, line_length_limit)
{
	char *text = stls_malloc(3 * 5000);
	memset(text, 'a', STLS_TABLE_FILE_MAX_LINE);
	text[STLS_TABLE_FILE_MAX_LINE] = '\n';
	size_t len = STLS_TABLE_FILE_MAX_LINE + 1;
	struct seen s = { 0 };
	char err[256] = "";
	const char *ok = write_file("ok", text, len);
	cr_assert_eq(stls_table_file_read(ok, record, &s, err, sizeof(err)), STLS_OK, "4096 octets is the most: %s",
		     err);
	cr_assert_eq(s.calls, 1);

	s = (struct seen){ 0 };
	memcpy(text + len, "x y\n", 4);
	memset(text + len + 4, 'b', STLS_TABLE_FILE_MAX_LINE + 1);
	memcpy(text + len + 4 + STLS_TABLE_FILE_MAX_LINE + 1, "\n", 1);
	const char *bad = write_file("long", text, len + 4 + STLS_TABLE_FILE_MAX_LINE + 2);
	cr_assert_eq(stls_table_file_read(bad, record, &s, err, sizeof(err)), STLS_ERR_CONFIG);
	char want[256];
	snprintf(want, sizeof(want), "%s:3: line longer than 4096 octets", bad);
	cr_assert_str_eq(err, want);

	/* The last line, without a line end, is held to the same limit. */
	const char *last = write_file("last", text, len + 4 + STLS_TABLE_FILE_MAX_LINE + 1);
	s = (struct seen){ 0 };
	cr_assert_eq(stls_table_file_read(last, record, &s, err, sizeof(err)), STLS_ERR_CONFIG);
	stls_free_ptr(&text);
}

Test(table_file, field_count_limit)
{
	struct seen s = { 0 };
	char err[256] = "";
	const char *ok = WRITE_FILE("sixteen", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
	cr_assert_eq(stls_table_file_read(ok, record, &s, err, sizeof(err)), STLS_OK);
	cr_assert_str_eq(s.text, "1:1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16;");
	const char *bad = WRITE_FILE("seventeen", "ok line\n1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n");
	cr_assert_eq(stls_table_file_read(bad, record, &s, err, sizeof(err)), STLS_ERR_CONFIG);
	char want[256];
	snprintf(want, sizeof(want), "%s:2: more than 16 fields", bad);
	cr_assert_str_eq(err, want);
	const char *commented = WRITE_FILE("commented", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 # 17 18\n");
	cr_assert_eq(stls_table_file_read(commented, record, &s, err, sizeof(err)), STLS_OK, "comments are not fields");
}

Test(table_file, nul_byte_refused)
{
	static const char text[] = "a.test none\nb.te\0st none\n";
	const char *path = write_file("nul", text, sizeof(text) - 1);
	struct seen s = { 0 };
	char err[256] = "";
	cr_assert_eq(stls_table_file_read(path, record, &s, err, sizeof(err)), STLS_ERR_CONFIG);
	char want[256];
	snprintf(want, sizeof(want), "%s:2: NUL byte in the line", path);
	cr_assert_str_eq(err, want);
	cr_assert_eq(s.calls, 1);

	static const char in_comment[] = "a.test none # \0\n";
	path = write_file("nul-comment", in_comment, sizeof(in_comment) - 1);
	cr_assert_eq(stls_table_file_read(path, record, &s, err, sizeof(err)), STLS_ERR_CONFIG, "even in a comment");
}

Test(table_file, missing_file_and_directory)
{
	struct seen s = { 0 };
	char err[256] = "", path[128], want[256];
	snprintf(path, sizeof(path), "%s/absent", tmpdir);
	cr_assert_eq(stls_table_file_read(path, record, &s, err, sizeof(err)), STLS_ERR_IO);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	cr_assert_str_eq(err, want);

	cr_assert_eq(stls_table_file_read(tmpdir, record, &s, err, sizeof(err)), STLS_ERR_IO);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
	cr_assert_str_eq(err, want);
	cr_assert_eq(s.calls, 0);
}

Test(table_file, file_size_limit)
{
	/* A sparse file one octet over the limit: refused before a byte is read. */
	const char *path = WRITE_FILE("huge", "");
	cr_assert_eq(truncate(path, (off_t)STLS_TABLE_FILE_MAX_SIZE + 1), 0);
	struct seen s = { 0 };
	char err[256] = "", want[256];
	cr_assert_eq(stls_table_file_read(path, record, &s, err, sizeof(err)), STLS_ERR_CONFIG);
	snprintf(want, sizeof(want), "%s: larger than 256 MiB", path);
	cr_assert_str_eq(err, want);
}

Test(table_file, parse_from_memory_and_short_error_buffers)
{
	struct seen s = { .fail_at = 2, .give_reason = true };
	char err[16];
	struct stls_span text = STLS_SPAN_LIT("x.test none\ny.test bad\n");
	cr_assert_eq(stls_table_file_parse(text, "inline", record, &s, err, sizeof(err)), STLS_ERR_CONFIG);
	cr_assert_str_eq(err, "inline:2: unkno", "truncated to fit, NUL-terminated");
	s = (struct seen){ .fail_at = 2 };
	cr_assert_eq(stls_table_file_parse(text, "inline", record, &s, NULL, 0), STLS_ERR_CONFIG, "no error buffer");
	s = (struct seen){ 0 };
	cr_assert_eq(stls_table_file_parse(STLS_SPAN_LIT("\n\n\r\nlast"), "inline", record, &s, err, sizeof(err)),
		     STLS_OK);
	cr_assert_str_eq(s.text, "4:last;");
}
