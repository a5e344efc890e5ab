#include "proto/smtp_data.h"

#include <stdint.h>
#include <string.h>

void stls_smtp_data_init(struct stls_smtp_data *sd, uint32_t max_line)
{
	*sd = (struct stls_smtp_data){ .state = STLS_SMTP_DATA_BOL, .max_line = max_line };
}

static void fault(struct stls_smtp_data *sd, enum stls_err err)
{
	if (sd->fault == STLS_OK)
		sd->fault = err;
}

enum stls_err stls_smtp_data_scan(struct stls_smtp_data *sd, size_t *out_len, struct stls_span in)
{
	uint8_t state = sd->state;
	uint32_t line_len = sd->line_len;
	size_t i = 0;

	while (i < in.len) {
		/* Fast path: inside a line, skip ordinary bytes in bulk. */
		if (state == STLS_SMTP_DATA_LINE) {
			const uint8_t *p = in.ptr + i;
			size_t n = in.len - i;
			const uint8_t *cr = memchr(p, '\r', n);
			size_t run = cr ? (size_t)(cr - p) : n;
			const uint8_t *lf = memchr(p, '\n', run);
			if (lf)
				run = (size_t)(lf - p);
			/* The first defect by position is the one recorded, wherever the reads fall: a NUL
			 * before the byte that passes the line limit comes first, and the reverse. */
			const uint8_t *nul = memchr(p, '\0', run);
			size_t nul_at = nul ? (size_t)(nul - p) : SIZE_MAX;
			size_t long_at = SIZE_MAX;
			if (sd->max_line && line_len <= sd->max_line && run > sd->max_line - line_len)
				long_at = sd->max_line - line_len;
			if (nul_at <= long_at && nul)
				fault(sd, STLS_ERR_NUL);
			if (long_at != SIZE_MAX)
				fault(sd, STLS_ERR_TOO_LONG);
			if (nul)
				fault(sd, STLS_ERR_NUL);
			line_len += (uint32_t)(run > UINT32_MAX - line_len ? UINT32_MAX - line_len : run);
			i += run;
			if (sd->max_line && line_len > sd->max_line)
				fault(sd, STLS_ERR_TOO_LONG);
			if (i == in.len)
				break;
		}
		uint8_t c = in.ptr[i++];
		if (line_len < UINT32_MAX)
			line_len++;
		switch (state) {
		case STLS_SMTP_DATA_BOL:
		case STLS_SMTP_DATA_LINE:
			if (c == '\r')
				state = STLS_SMTP_DATA_CR;
			else if (c == '\n') {
				/* A bare LF does not end a line for the terminator's sake: only CRLF does. */
				fault(sd, STLS_ERR_BARE_LF);
				state = STLS_SMTP_DATA_LINE;
			} else if (c == '.' && state == STLS_SMTP_DATA_BOL)
				state = STLS_SMTP_DATA_DOT;
			else {
				if (c == '\0')
					fault(sd, STLS_ERR_NUL);
				state = STLS_SMTP_DATA_LINE;
			}
			break;
		case STLS_SMTP_DATA_DOT:
			if (c == '\r')
				state = STLS_SMTP_DATA_DOT_CR;
			else {
				if (c == '\n')
					fault(sd, STLS_ERR_BARE_LF);
				if (c == '\0')
					fault(sd, STLS_ERR_NUL);
				state = STLS_SMTP_DATA_LINE;
			}
			break;
		case STLS_SMTP_DATA_DOT_CR:
			if (c == '\n') {
				sd->total += i;
				sd->state = STLS_SMTP_DATA_BOL;
				sd->line_len = 0;
				*out_len = i;
				return STLS_DONE;
			}
			fault(sd, STLS_ERR_BARE_LF); /* ".\r" then something else: a bare CR */
			state = (c == '\r') ? STLS_SMTP_DATA_CR : STLS_SMTP_DATA_LINE;
			break;
		case STLS_SMTP_DATA_CR:
			if (c == '\n') {
				if (sd->max_line && line_len > sd->max_line)
					fault(sd, STLS_ERR_TOO_LONG);
				line_len = 0;
				state = STLS_SMTP_DATA_BOL;
			} else {
				fault(sd, STLS_ERR_BARE_LF);
				state = (c == '\r') ? STLS_SMTP_DATA_CR : STLS_SMTP_DATA_LINE;
			}
			break;
		}
		/* A long line is a fault as soon as it passes the limit, not only at its end. */
		if (sd->max_line && line_len > sd->max_line)
			fault(sd, STLS_ERR_TOO_LONG);
	}
	sd->state = state;
	sd->line_len = line_len;
	sd->total += in.len;
	*out_len = in.len;
	return STLS_AGAIN;
}
