#include "proto/smtp_lex.h"

#include <stdbool.h>
#include <string.h>

static const char *const verb_names[STLS_SMTP_VERB__COUNT] = {
	[STLS_SMTP_VERB_UNKNOWN] = "UNKNOWN", [STLS_SMTP_VERB_EHLO] = "EHLO",
	[STLS_SMTP_VERB_HELO] = "HELO",	      [STLS_SMTP_VERB_MAIL] = "MAIL",
	[STLS_SMTP_VERB_RCPT] = "RCPT",	      [STLS_SMTP_VERB_DATA] = "DATA",
	[STLS_SMTP_VERB_BDAT] = "BDAT",	      [STLS_SMTP_VERB_RSET] = "RSET",
	[STLS_SMTP_VERB_NOOP] = "NOOP",	      [STLS_SMTP_VERB_QUIT] = "QUIT",
	[STLS_SMTP_VERB_VRFY] = "VRFY",	      [STLS_SMTP_VERB_EXPN] = "EXPN",
	[STLS_SMTP_VERB_HELP] = "HELP",	      [STLS_SMTP_VERB_STARTTLS] = "STARTTLS",
	[STLS_SMTP_VERB_AUTH] = "AUTH",	      [STLS_SMTP_VERB_ETRN] = "ETRN",
	[STLS_SMTP_VERB_XCLIENT] = "XCLIENT", [STLS_SMTP_VERB_XFORWARD] = "XFORWARD",
};

const char *stls_smtp_verb_str(enum stls_smtp_verb verb)
{
	return (unsigned)verb < STLS_SMTP_VERB__COUNT ? verb_names[verb] : "UNKNOWN";
}

static enum stls_smtp_verb verb_lookup(struct stls_span word)
{
	for (unsigned v = STLS_SMTP_VERB_UNKNOWN + 1; v < STLS_SMTP_VERB__COUNT; v++)
		if (stls_span_eq_nocase(word, stls_span_cstr(verb_names[v])))
			return (enum stls_smtp_verb)v;
	return STLS_SMTP_VERB_UNKNOWN;
}

void stls_smtp_lex_init(struct stls_smtp_lex *lx, uint32_t max_line)
{
	*lx = (struct stls_smtp_lex){ .max_line = max_line };
}

void stls_smtp_lex_reset(struct stls_smtp_lex *lx)
{
	lx->scanned = 0;
	lx->discarding = 0;
}

enum stls_err stls_smtp_lex_next(struct stls_smtp_lex *lx, struct stls_smtp_cmd *out_cmd, size_t *out_consumed,
				 struct stls_span in)
{
	*out_consumed = 0;
	if (lx->discarding) {
		const uint8_t *lf = memchr(in.ptr, '\n', in.len);
		if (!lf) {
			*out_consumed = in.len;
			return STLS_AGAIN;
		}
		*out_consumed = (size_t)(lf - in.ptr) + 1;
		lx->discarding = 0;
		lx->scanned = 0;
		return STLS_ERR_TOO_LONG;
	}

	size_t start = lx->scanned < in.len ? lx->scanned : in.len;
	const uint8_t *lf = memchr(in.ptr + start, '\n', in.len - start);
	if (!lf) {
		if (in.len >= lx->max_line) {
			/* RFC 5321 4.5.3.1.4: never buffer past the limit; drop the rest of the line. */
			lx->discarding = 1;
			lx->scanned = 0;
			*out_consumed = in.len;
			return STLS_AGAIN;
		}
		lx->scanned = (uint32_t)in.len;
		return STLS_AGAIN;
	}

	size_t line_len = (size_t)(lf - in.ptr) + 1;
	lx->scanned = 0;
	*out_consumed = line_len;
	if (line_len > lx->max_line)
		return STLS_ERR_TOO_LONG;
	if (line_len < 2 || in.ptr[line_len - 2] != '\r')
		return STLS_ERR_BARE_LF;
	size_t body_len = line_len - 2;
	if (memchr(in.ptr, '\0', body_len))
		return STLS_ERR_NUL;
	if (memchr(in.ptr, '\r', body_len))
		return STLS_ERR_BARE_LF;

	struct stls_span body = stls_span_make(in.ptr, body_len);
	struct stls_span word;
	struct stls_span args = stls_span_next_word(body, &word);
	*out_cmd = (struct stls_smtp_cmd){
		.verb = verb_lookup(word),
		.line = stls_span_make(in.ptr, line_len),
		.args = args,
	};
	return STLS_OK;
}

enum stls_err stls_smtp_parse_bdat(uint64_t *out_size, bool *out_last, struct stls_span args, uint64_t max)
{
	struct stls_span size_word, last_word;
	struct stls_span rest = stls_span_next_word(stls_span_trim(args), &size_word);
	rest = stls_span_next_word(rest, &last_word);
	STLS_ENSURE(rest.len == 0, STLS_ERR_PROTO);
	STLS_ENSURE(stls_span_to_u64(size_word, max, out_size), STLS_ERR_PROTO);
	if (last_word.len == 0) {
		*out_last = false;
		return STLS_OK;
	}
	STLS_ENSURE(stls_span_eq_nocase(last_word, STLS_SPAN_LIT("LAST")), STLS_ERR_PROTO);
	*out_last = true;
	return STLS_OK;
}

enum stls_err stls_smtp_parse_path(struct stls_span *out_addr, struct stls_span args, struct stls_span prefix)
{
	STLS_ENSURE(stls_span_starts_nocase(args, prefix), STLS_ERR_PROTO);
	struct stls_span rest = stls_span_trim(stls_span_from(args, prefix.len));
	STLS_ENSURE(rest.len >= 2 && rest.ptr[0] == '<', STLS_ERR_PROTO);
	const uint8_t *close = memchr(rest.ptr, '>', rest.len);
	STLS_ENSURE(close != NULL, STLS_ERR_PROTO);
	*out_addr = stls_span_make(rest.ptr + 1, (size_t)(close - rest.ptr) - 1);
	return STLS_OK;
}
