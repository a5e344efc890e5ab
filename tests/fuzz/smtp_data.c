/* Fuzz target: the DATA scanner (proto/smtp_data.c), which finds CRLF.CRLF and refuses bare CR/LF,
 * NUL and over-long lines while message bytes move in bulk.
 *
 * The message is scanned in one piece and in reads of a size the input chooses; the end found and
 * the first defect recorded must not depend on where the reads fall. */
#include <string.h>

#include "proto/smtp_data.h"
#include "tests/fuzz/fuzz.h"

/* Scans stream in reads of step bytes (0: one read). Returns the offset just past the end of the
 * message, or SIZE_MAX if it does not end; *out_fault gets the defect recorded by then. */
static size_t scan(const uint8_t *stream, size_t len, size_t step, uint32_t max_line, int *out_fault)
{
	struct stls_smtp_data sd;
	stls_smtp_data_init(&sd, max_line);
	size_t off = 0;
	while (off < len) {
		size_t n = step ? step : len;
		if (n > len - off)
			n = len - off;
		size_t used = 0;
		enum stls_err err = stls_smtp_data_scan(&sd, &used, stls_span_make(stream + off, n));
		FUZZ_CHECK(err == STLS_AGAIN || err == STLS_DONE);
		FUZZ_CHECK(used <= n);
		if (err == STLS_DONE) {
			FUZZ_CHECK(used >= 1);
			*out_fault = sd.fault;
			return off + used;
		}
		FUZZ_CHECK(used == n);
		off += n;
	}
	*out_fault = sd.fault;
	return SIZE_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t max_line = (data[0] & 1) ? 1000 : 8;
	size_t step = (size_t)(data[0] >> 1) + 1;
	int f1, f2;
	size_t end1 = scan(data + 1, size - 1, 0, max_line, &f1);
	size_t end2 = scan(data + 1, size - 1, step, max_line, &f2);
	FUZZ_CHECK(end1 == end2);
	FUZZ_CHECK(f1 == f2);
	if (end1 != SIZE_MAX) {
		/* A message ends with CRLF.CRLF (or is only ".CRLF"). */
		const uint8_t *m = data + 1;
		FUZZ_CHECK(end1 >= 3 && memcmp(m + end1 - 3, ".\r\n", 3) == 0);
		FUZZ_CHECK(end1 == 3 || (end1 >= 5 && memcmp(m + end1 - 5, "\r\n", 2) == 0));
	}
	return 0;
}
