#include "proto/smtp_reply.h"

#include <stdbool.h>
#include <string.h>

void stls_smtp_reply_init(struct stls_smtp_reply_parser *rp, uint32_t max_line, uint32_t max_lines)
{
	*rp = (struct stls_smtp_reply_parser){ .max_line = max_line, .max_lines = max_lines };
}

static void parser_restart(struct stls_smtp_reply_parser *rp)
{
	rp->done_len = 0;
	rp->num_lines = 0;
	rp->code = 0;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Checks one line (CRLF included). Returns its code, 0 if it is malformed; *out_last tells whether
 * it ends the reply. */
static uint16_t check_line(struct stls_span line, bool *out_last)
{
	if (line.len < 5 || line.ptr[line.len - 2] != '\r')
		return 0;
	if (!is_digit(line.ptr[0]) || !is_digit(line.ptr[1]) || !is_digit(line.ptr[2]))
		return 0;
	if (line.ptr[0] < '2' || line.ptr[0] > '5')
		return 0;
	size_t body_len = line.len - 2;
	if (memchr(line.ptr, '\0', body_len) || memchr(line.ptr, '\r', body_len))
		return 0;
	if (body_len == 3)
		*out_last = true;
	else if (line.ptr[3] == ' ')
		*out_last = true;
	else if (line.ptr[3] == '-')
		*out_last = false;
	else
		return 0;
	return (uint16_t)((line.ptr[0] - '0') * 100 + (line.ptr[1] - '0') * 10 + (line.ptr[2] - '0'));
}

enum stls_err stls_smtp_reply_next(struct stls_smtp_reply_parser *rp, struct stls_smtp_reply *out_reply,
				   struct stls_span in)
{
	for (;;) {
		size_t start = rp->done_len;
		STLS_BUG_ON(start > in.len);
		size_t avail = in.len - start;
		size_t scan = avail < rp->max_line ? avail : rp->max_line;
		const uint8_t *lf = memchr(in.ptr + start, '\n', scan);
		if (!lf) {
			if (avail >= rp->max_line) {
				parser_restart(rp);
				return STLS_ERR_TOO_LONG;
			}
			return STLS_AGAIN;
		}
		struct stls_span line = stls_span_make(in.ptr + start, (size_t)(lf - (in.ptr + start)) + 1);
		bool last = false;
		uint16_t code = check_line(line, &last);
		if (code == 0 || (rp->code != 0 && code != rp->code)) {
			parser_restart(rp);
			return STLS_ERR_PROTO;
		}
		rp->code = code;
		rp->done_len += (uint32_t)line.len;
		rp->num_lines++;
		if (last) {
			*out_reply = (struct stls_smtp_reply){
				.code = code,
				.num_lines = rp->num_lines,
				.text = stls_span_make(in.ptr, rp->done_len),
			};
			parser_restart(rp);
			return STLS_OK;
		}
		if (rp->num_lines >= rp->max_lines) {
			parser_restart(rp);
			return STLS_ERR_TOO_LONG;
		}
	}
}

void stls_smtp_reply_each_line(struct stls_smtp_reply reply, stls_smtp_reply_line_fn *fn, void *ctx)
{
	struct stls_span rest = reply.text;
	while (rest.len > 0) {
		const uint8_t *lf = memchr(rest.ptr, '\n', rest.len);
		size_t line_len = lf ? (size_t)(lf - rest.ptr) + 1 : rest.len;
		struct stls_span line = stls_span_head(rest, line_len);
		size_t text_len = line.len >= 6 ? line.len - 6 : 0; /* "NNN-" + CRLF */
		fn(ctx, stls_span_make(line.ptr + (line.len >= 4 ? 4 : line.len), text_len));
		rest = stls_span_from(rest, line_len);
	}
}
