#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

/* Buffers start small: most SMTP exchanges are a few short lines, and thousands of sessions
 * each holding a large buffer is what keeps other proxies from scaling. */
enum { STLS_BUF_MIN_CAP = 512 };

void stls_buf_consume(struct stls_buf *b, size_t n)
{
	STLS_BUG_ON(n > stls_buf_len(b));
	b->rpos += (uint32_t)n;
	if (b->rpos == b->wpos)
		b->rpos = b->wpos = 0;
}

enum stls_err stls_buf_reserve(struct stls_buf *b, size_t n, size_t limit)
{
	size_t used = stls_buf_len(b);
	if (n > limit || used > limit - n)
		return STLS_ERR_LIMIT;
	if (b->cap - b->wpos >= n)
		return STLS_OK;
	if (b->rpos > 0 && b->cap - used >= n) {
		memmove(b->data, b->data + b->rpos, used);
		stls_wipe(b->data + used, b->cap - used);
		b->rpos = 0;
		b->wpos = (uint32_t)used;
		return STLS_OK;
	}
	size_t cap = b->cap ? b->cap : STLS_BUF_MIN_CAP;
	while (cap < used + n)
		cap *= 2;
	if (cap > UINT32_MAX)
		return STLS_ERR_LIMIT;
	uint8_t *data = stls_malloc(cap);
	if (!data)
		return STLS_ERR_NOMEM;
	if (used)
		memcpy(data, b->data + b->rpos, used);
	stls_wipe(b->data, b->cap);
	stls_free_ptr(&b->data);
	b->data = data;
	b->cap = (uint32_t)cap;
	b->rpos = 0;
	b->wpos = (uint32_t)used;
	return STLS_OK;
}

enum stls_err stls_buf_append(struct stls_buf *b, struct stls_span s, size_t limit)
{
	if (s.len == 0)
		return STLS_OK;
	STLS_TRY(stls_buf_reserve(b, s.len, limit));
	memcpy(b->data + b->wpos, s.ptr, s.len);
	b->wpos += (uint32_t)s.len;
	return STLS_OK;
}

enum stls_err stls_buf_appendf(struct stls_buf *b, size_t limit, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return STLS_ERR_INTERNAL;
	if ((size_t)n < sizeof(small))
		return stls_buf_append(b, stls_span_make(small, (size_t)n), limit);
	STLS_TRY(stls_buf_reserve(b, (size_t)n + 1, limit + 1));
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->wpos, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->wpos += (uint32_t)n;
	return STLS_OK;
}

void stls_buf_release_if_empty(struct stls_buf *b)
{
	if (b->data && b->rpos == b->wpos)
		stls_buf_cleanup(b);
}

void stls_buf_cleanup(struct stls_buf *b)
{
	stls_wipe(b->data, b->cap);
	stls_free_ptr(&b->data);
	b->cap = b->rpos = b->wpos = 0;
}
