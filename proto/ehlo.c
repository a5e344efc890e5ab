#include "proto/ehlo.h"

#include <stdio.h>
#include <string.h>

static const char *const ext_names[STLS_EHLO__COUNT] = {
	[STLS_EHLO_PIPELINING] = "PIPELINING",
	[STLS_EHLO_SIZE] = "SIZE",
	[STLS_EHLO_8BITMIME] = "8BITMIME",
	[STLS_EHLO_SMTPUTF8] = "SMTPUTF8",
	[STLS_EHLO_DSN] = "DSN",
	[STLS_EHLO_ENHANCEDSTATUSCODES] = "ENHANCEDSTATUSCODES",
	[STLS_EHLO_CHUNKING] = "CHUNKING",
	[STLS_EHLO_BINARYMIME] = "BINARYMIME",
};

const char *stls_ehlo_ext_str(enum stls_ehlo_ext ext)
{
	return (unsigned)ext < STLS_EHLO__COUNT ? ext_names[ext] : "UNKNOWN";
}

struct parse_ctx {
	struct stls_ehlo_caps *caps;
	unsigned line;
};

static void add_dropped(struct stls_ehlo_caps *caps, struct stls_span keyword)
{
	size_t used = strlen(caps->dropped);
	char word[64];
	stls_span_printable(word, sizeof(word), keyword);
	snprintf(caps->dropped + used, sizeof(caps->dropped) - used, "%s%s", used ? " " : "", word);
}

static void parse_line(void *ctx_, struct stls_span text)
{
	struct parse_ctx *ctx = ctx_;
	if (ctx->line++ == 0)
		return; /* the server's name and greeting */
	struct stls_span keyword;
	struct stls_span params = stls_span_next_word(stls_span_trim(text), &keyword);
	if (keyword.len == 0)
		return;
	for (unsigned e = 0; e < STLS_EHLO__COUNT; e++) {
		if (!stls_span_eq_nocase(keyword, stls_span_cstr(ext_names[e])))
			continue;
		if (e == STLS_EHLO_SIZE) {
			uint64_t size = 0;
			if (params.len && !stls_span_to_u64(stls_span_trim(params), UINT64_MAX / 2, &size))
				return add_dropped(ctx->caps, keyword);
			ctx->caps->size = size;
		}
		ctx->caps->mask |= 1u << e;
		return;
	}
	add_dropped(ctx->caps, keyword);
}

enum stls_err stls_ehlo_parse(struct stls_ehlo_caps *out_caps, struct stls_smtp_reply reply)
{
	*out_caps = (struct stls_ehlo_caps){ 0 };
	STLS_ENSURE(reply.code == 250, STLS_ERR_PROTO);
	struct parse_ctx ctx = { .caps = out_caps };
	stls_smtp_reply_each_line(reply, parse_line, &ctx);
	return STLS_OK;
}

enum stls_err stls_ehlo_build(struct stls_buf *out, size_t limit, const struct stls_ehlo_caps *caps,
			      const char *hostname, struct stls_span greeting_name, bool offer_starttls)
{
	const char *lines[STLS_EHLO__COUNT + 1];
	char size_line[32];
	unsigned n = 0;
	for (unsigned e = 0; e < STLS_EHLO__COUNT; e++) {
		if (!stls_ehlo_has(caps, (enum stls_ehlo_ext)e))
			continue;
		if (e == STLS_EHLO_SIZE && caps->size) {
			snprintf(size_line, sizeof(size_line), "SIZE %llu", (unsigned long long)caps->size);
			lines[n++] = size_line;
		} else {
			lines[n++] = ext_names[e];
		}
	}
	if (offer_starttls)
		lines[n++] = "STARTTLS";

	/* The client's own name is echoed only in printable form (it is peer data). */
	char name[80];
	stls_span_printable(name, sizeof(name), greeting_name);
	/* All or nothing: a reply cut short would leave the client reading half of it. */
	size_t before = stls_buf_len(out);
	enum stls_err err = stls_buf_appendf(out, limit, "250%c%s Hello %s\r\n", n ? '-' : ' ', hostname, name);
	for (unsigned i = 0; i < n && err == STLS_OK; i++)
		err = stls_buf_appendf(out, limit, "250%c%s\r\n", i + 1 < n ? '-' : ' ', lines[i]);
	if (err != STLS_OK) /* appends may move unread bytes to the front, never reorder them */
		out->wpos = out->rpos + (uint32_t)before;
	return err;
}
