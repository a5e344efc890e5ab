/* The SMTP reply parser: splits a server's byte stream into complete replies.
 *
 * A reply is one or more lines sharing a three-digit code; every line but the last has '-' after
 * the code, the last a space or nothing (RFC 5321 4.2.1). The parser is resumable (it remembers
 * which complete lines it already checked) and bounded by a line limit and a line count, so a
 * misbehaving server cannot make the proxy buffer without end. A reply is complete only when its
 * last line has arrived: the parser never guesses from where a read happened to end. */
#pragma once

#include <stdint.h>

#include "core/err.h"
#include "core/span.h"

struct stls_smtp_reply_parser {
	uint32_t max_line;  /* limit per line including CRLF */
	uint32_t max_lines; /* limit on lines per reply */
	uint32_t done_len;  /* bytes of complete continuation lines already checked */
	uint32_t num_lines; /* how many those are */
	uint16_t code;	    /* their code, 0 before the first line */
};

struct stls_smtp_reply {
	uint16_t code;	       /* 200..599 */
	uint32_t num_lines;    /* lines in the reply */
	struct stls_span text; /* the whole reply, every CRLF included: what is relayed */
};

/* Prepares a parser. */
void stls_smtp_reply_init(struct stls_smtp_reply_parser *rp, uint32_t max_line, uint32_t max_lines);

/* Looks for the next complete reply at the start of in (the caller's unconsumed bytes).
 * Returns STLS_OK with *out_reply (its text points into in; consume text.len bytes), STLS_AGAIN
 * when more bytes are needed (keep them all), STLS_ERR_TOO_LONG when a line or the line count
 * exceeds the limits, or STLS_ERR_PROTO for anything that is not a reply (a line not starting with
 * three digits from 2xx-5xx followed by ' ', '-' or CRLF, codes differing between lines, a bare LF
 * or CR, a NUL). After an error the stream cannot be trusted: the caller drops the connection. */
[[nodiscard]] enum stls_err stls_smtp_reply_next(struct stls_smtp_reply_parser *rp, struct stls_smtp_reply *out_reply,
						 struct stls_span in);

/* The class of a code: 2, 3, 4 or 5. */
static inline unsigned stls_smtp_reply_class(uint16_t code)
{
	return code / 100u;
}

/* Calls fn(ctx, text) for each line of a complete reply, with the text after "NNN-"/"NNN " and
 * without CRLF. Used to read EHLO keywords. */
typedef void stls_smtp_reply_line_fn(void *ctx, struct stls_span text);
void stls_smtp_reply_each_line(struct stls_smtp_reply reply, stls_smtp_reply_line_fn *fn, void *ctx);
