/* Fuzz target: the reply parser (proto/smtp_reply.c) and the EHLO reader (proto/ehlo.c) over
 * hostile backend or destination bytes.
 *
 * As for the lexer, the stream is parsed in one piece and in two reads, which must agree; every
 * reply must have a code from 200 to 599 and text inside the bytes given, and an EHLO reading of a
 * 250 reply must not fail in any other way than its documented ones. */
#include <string.h>

#include "proto/ehlo.h"
#include "proto/smtp_reply.h"
#include "tests/fuzz/fuzz.h"

enum { MAX_EVENTS = 4096 };

struct event {
	int err;
	unsigned code;
	size_t len;
	uint64_t ehlo_mask;
};

static size_t parse_all(struct event *ev, const uint8_t *stream, const size_t *cuts, size_t num_cuts, uint32_t max_line,
			uint32_t max_lines)
{
	struct stls_smtp_reply_parser rp;
	stls_smtp_reply_init(&rp, max_line, max_lines);
	size_t n = 0, start = 0;
	for (size_t c = 0; c < num_cuts; c++) {
		for (;;) {
			struct stls_span in = stls_span_make(stream + start, cuts[c] - start);
			struct stls_smtp_reply reply;
			enum stls_err err = stls_smtp_reply_next(&rp, &reply, in);
			if (err == STLS_AGAIN)
				break;
			if (n < MAX_EVENTS)
				ev[n] = (struct event){ .err = err };
			if (err != STLS_OK) {
				n++;
				return n; /* the stream cannot be trusted after an error */
			}
			FUZZ_CHECK(reply.code >= 200 && reply.code <= 599);
			FUZZ_CHECK(reply.text.ptr == in.ptr && reply.text.len > 0 && reply.text.len <= in.len);
			if (n < MAX_EVENTS) {
				ev[n].code = reply.code;
				ev[n].len = reply.text.len;
				struct stls_ehlo_caps caps;
				if (stls_ehlo_parse(&caps, reply) == STLS_OK)
					ev[n].ehlo_mask = caps.mask ^ caps.size;
			}
			n++;
			start += reply.text.len;
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t max_line = (data[0] & 1) ? 512 : 64;
	uint32_t max_lines = (data[0] & 2) ? 128 : 4;
	const uint8_t *stream = data + 1;
	size_t len = size - 1;
	static struct event whole[MAX_EVENTS], split[MAX_EVENTS];
	size_t one[] = { len };
	size_t n1 = parse_all(whole, stream, one, 1, max_line, max_lines);
	size_t cut = len ? (size_t)(data[0] >> 2) * len / 63 : 0;
	size_t two[] = { cut, len };
	size_t n2 = parse_all(split, stream, two, 2, max_line, max_lines);
	FUZZ_CHECK(n1 == n2);
	FUZZ_CHECK(memcmp(whole, split, n1 * sizeof(whole[0])) == 0);
	return 0;
}
