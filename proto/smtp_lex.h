/* The SMTP command lexer: splits a client's byte stream into command lines.
 *
 * Resumable and bounded: it is handed the unconsumed bytes each time more arrive and remembers
 * how far it already looked, so a command split across any number of reads costs no rescans. A
 * line longer than the limit is not buffered: the lexer discards it to its end and reports it once,
 * so the caller can answer 500 and go on (RFC 5321 4.5.3.1.4: command lines are at most 512
 * octets including CRLF). Lines must end in CRLF: a bare LF, a CR not followed by LF, and NUL are
 * refused, because the backend may read them differently than we do (SMTP smuggling). */
#pragma once

#include <stdint.h>

#include "core/err.h"
#include "core/span.h"

enum stls_smtp_verb {
	STLS_SMTP_VERB_UNKNOWN = 0,
	STLS_SMTP_VERB_EHLO,
	STLS_SMTP_VERB_HELO,
	STLS_SMTP_VERB_MAIL,
	STLS_SMTP_VERB_RCPT,
	STLS_SMTP_VERB_DATA,
	STLS_SMTP_VERB_BDAT,
	STLS_SMTP_VERB_RSET,
	STLS_SMTP_VERB_NOOP,
	STLS_SMTP_VERB_QUIT,
	STLS_SMTP_VERB_VRFY,
	STLS_SMTP_VERB_EXPN,
	STLS_SMTP_VERB_HELP,
	STLS_SMTP_VERB_STARTTLS,
	STLS_SMTP_VERB_AUTH,
	STLS_SMTP_VERB_ETRN,
	STLS_SMTP_VERB_XCLIENT,
	STLS_SMTP_VERB_XFORWARD,
	STLS_SMTP_VERB__COUNT,
};

/* The verb's canonical spelling ("EHLO"); "UNKNOWN" for STLS_SMTP_VERB_UNKNOWN. */
const char *stls_smtp_verb_str(enum stls_smtp_verb verb);

struct stls_smtp_lex {
	uint32_t max_line;  /* limit including CRLF */
	uint32_t scanned;   /* bytes of the current line already checked */
	uint8_t discarding; /* inside an over-long line, dropping bytes up to its LF */
};

struct stls_smtp_cmd {
	enum stls_smtp_verb verb;
	struct stls_span line; /* the whole line, CRLF included: what is relayed */
	struct stls_span args; /* after the verb and its spaces, CRLF excluded */
};

/* Prepares a lexer for lines of at most max_line octets including CRLF. */
void stls_smtp_lex_init(struct stls_smtp_lex *lx, uint32_t max_line);

/* Forgets any partial line (RFC 3207 4.2: nothing before the TLS handshake carries over). */
void stls_smtp_lex_reset(struct stls_smtp_lex *lx);

/* Looks for the next command line at the start of in (the caller's unconsumed bytes).
 * Returns:
 *   STLS_OK            *out_cmd is a complete line; *out_consumed its length.
 *   STLS_AGAIN         no complete line yet; *out_consumed bytes may be dropped (non-zero only
 *                      while an over-long line is being discarded), keep the rest.
 *   STLS_ERR_TOO_LONG  an over-long line ended; *out_consumed bytes (its tail) are dropped.
 *   STLS_ERR_BARE_LF   a line ended in LF without CR, or held a CR not followed by LF;
 *                      *out_consumed covers that line.
 *   STLS_ERR_NUL       the line held a NUL byte; *out_consumed covers the line.
 * The spans in *out_cmd point into in. */
[[nodiscard]] enum stls_err stls_smtp_lex_next(struct stls_smtp_lex *lx, struct stls_smtp_cmd *out_cmd,
					       size_t *out_consumed, struct stls_span in);

/* Parses "BDAT <size> [LAST]" arguments (RFC 3030 2). Returns STLS_OK, or STLS_ERR_PROTO on bad
 * syntax or a size above max. */
[[nodiscard]] enum stls_err stls_smtp_parse_bdat(uint64_t *out_size, bool *out_last, struct stls_span args,
						 uint64_t max);

/* Extracts the address between '<' and '>' following a "FROM:" or "TO:" prefix (case-insensitive,
 * optional spaces after the colon, RFC 5321 4.1.2 paths; the null path "<>" is valid). Returns
 * STLS_OK with *out_addr (brackets excluded) or STLS_ERR_PROTO. */
[[nodiscard]] enum stls_err stls_smtp_parse_path(struct stls_span *out_addr, struct stls_span args,
						 struct stls_span prefix);
