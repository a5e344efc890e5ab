/* Fuzz target: the SMTP command lexer (proto/smtp_lex.c) over hostile client bytes.
 *
 * The input's first byte picks a line limit and a split point; the rest is the byte stream. The
 * stream is lexed the way the relay does it (unconsumed bytes are kept and handed back with what
 * arrives next), once in one piece and once in two reads, and the two must yield the same
 * commands and errors: a read boundary never changes what a client said. Every span must lie
 * inside the bytes given. */
#include <string.h>

#include "proto/smtp_lex.h"
#include "tests/fuzz/fuzz.h"

enum { MAX_EVENTS = 4096 };

struct event {
	int err;
	int verb;
	size_t line_len;
	size_t args_len;
	uint8_t line_head[8];
};

/* Lexes stream delivered in reads ending at the offsets in cuts (the last is size); records each
 * result. Returns the number of events. */
static size_t lex_all(struct event *ev, const uint8_t *stream, const size_t *cuts, size_t num_cuts, uint32_t max_line)
{
	struct stls_smtp_lex lx;
	stls_smtp_lex_init(&lx, max_line);
	size_t n = 0, start = 0; /* bytes before start were consumed */
	for (size_t c = 0; c < num_cuts; c++) {
		size_t avail = cuts[c];
		for (;;) {
			struct stls_span in = stls_span_make(stream + start, avail - start);
			struct stls_smtp_cmd cmd;
			size_t used = 0;
			enum stls_err err = stls_smtp_lex_next(&lx, &cmd, &used, in);
			FUZZ_CHECK(used <= in.len);
			if (err == STLS_AGAIN) {
				start += used;
				break;
			}
			FUZZ_CHECK(used > 0);
			if (n < MAX_EVENTS) {
				struct event *e = &ev[n++];
				memset(e, 0, sizeof(*e));
				e->err = err;
				if (err == STLS_OK) {
					FUZZ_CHECK(cmd.line.ptr == in.ptr && cmd.line.len == used);
					FUZZ_CHECK(cmd.line.len >= 2 && cmd.line.ptr[cmd.line.len - 2] == '\r' &&
						   cmd.line.ptr[cmd.line.len - 1] == '\n');
					FUZZ_CHECK(cmd.line.len <= max_line);
					FUZZ_CHECK(cmd.args.ptr >= cmd.line.ptr &&
						   cmd.args.ptr + cmd.args.len <= cmd.line.ptr + cmd.line.len - 2);
					FUZZ_CHECK(memchr(cmd.line.ptr, 0, cmd.line.len) == NULL);
					e->verb = cmd.verb;
					e->line_len = cmd.line.len;
					e->args_len = cmd.args.len;
					memcpy(e->line_head, cmd.line.ptr, cmd.line.len < 8 ? cmd.line.len : 8);
				}
			}
			start += used;
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const uint32_t limits[] = { 16, 64, 512, 1000 };
	uint32_t max_line = limits[data[0] & 3];
	const uint8_t *stream = data + 1;
	size_t len = size - 1;
	static struct event whole[MAX_EVENTS], split[MAX_EVENTS];
	size_t one[] = { len };
	size_t n1 = lex_all(whole, stream, one, 1, max_line);
	size_t cut = len ? (size_t)(data[0] >> 2) * len / 63 : 0;
	size_t two[] = { cut, len };
	size_t n2 = lex_all(split, stream, two, 2, max_line);
	FUZZ_CHECK(n1 == n2);
	FUZZ_CHECK(memcmp(whole, split, n1 * sizeof(whole[0])) == 0);
	return 0;
}
