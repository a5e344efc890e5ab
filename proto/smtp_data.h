/* The DATA stream scanner: finds the end of a message and checks its lines on the fly.
 *
 * Message bytes are relayed in bulk; the scanner only walks them once, keeping a few bits of state
 * across reads so the terminator and a CRLF split over any boundary are recognised. The end of
 * data is CRLF "." CRLF and nothing else (RFC 5321 4.1.1.4); the CRLF that ends the DATA command
 * counts as the first CRLF, so ".\r\n" right after DATA is an empty message. Bare CR, bare LF
 * and NUL bytes, and lines over the text-line limit, make the message bad: the caller stops
 * relaying it and rejects it once its end arrives. Dot-stuffing is left untouched: the
 * bytes the backend receives are the bytes the client sent. */
#pragma once

#include <stdint.h>

#include "core/err.h"
#include "core/span.h"

enum stls_smtp_data_state {
	STLS_SMTP_DATA_BOL = 0, /* at the start of a line, after CRLF */
	STLS_SMTP_DATA_DOT,	/* a line that began with '.' */
	STLS_SMTP_DATA_DOT_CR,	/* ".\r" at the start of a line */
	STLS_SMTP_DATA_LINE,	/* inside a line */
	STLS_SMTP_DATA_CR,	/* a CR inside a line */
	STLS_SMTP_DATA__COUNT,
};

struct stls_smtp_data {
	uint8_t state;	     /* enum stls_smtp_data_state */
	uint32_t max_line;   /* text-line limit, CRLF included; 0 = no limit */
	uint32_t line_len;   /* octets of the current line so far */
	uint64_t total;	     /* octets scanned in this message */
	enum stls_err fault; /* first defect found, STLS_OK if none */
};

/* Prepares for a message starting right after the DATA command's CRLF. */
void stls_smtp_data_init(struct stls_smtp_data *sd, uint32_t max_line);

/* Scans in. Returns STLS_AGAIN when all of in belongs to the message and its end is still to
 * come, or STLS_DONE when the message ends within in: *out_len is then the length up to and
 * including the final CRLF.CRLF (the rest of in is the next command). On STLS_AGAIN *out_len is
 * in.len. Defects do not stop the scan (the end must still be found): they are recorded in
 * sd->fault as STLS_ERR_BARE_LF, STLS_ERR_NUL or STLS_ERR_TOO_LONG. */
[[nodiscard]] enum stls_err stls_smtp_data_scan(struct stls_smtp_data *sd, size_t *out_len, struct stls_span in);
