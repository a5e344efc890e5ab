/* Byte buffers with read and write cursors.
 *
 * An all-zero struct stls_buf is a valid, empty buffer that owns no memory: sessions keep their
 * buffers in that state while idle, and memory is taken only when bytes must be held. Bytes live
 * in data[rpos, wpos); the buffer never grows past the limit its caller passes, so every use
 * states its own bound. A buffer that held plaintext of a session is wiped when released. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/span.h"

struct stls_buf {
	uint8_t *data;
	uint32_t cap;
	uint32_t rpos;
	uint32_t wpos;
};

/* The bytes not yet consumed. Valid until the buffer is next changed. */
static inline struct stls_span stls_buf_span(const struct stls_buf *b)
{
	return (struct stls_span){ b->data + b->rpos, b->wpos - b->rpos };
}

static inline size_t stls_buf_len(const struct stls_buf *b)
{
	return b->wpos - b->rpos;
}

static inline bool stls_buf_empty(const struct stls_buf *b)
{
	return b->wpos == b->rpos;
}

/* Marks n bytes at the read cursor as consumed (n <= stls_buf_len). When the buffer becomes
 * empty the cursors go back to the start, so the memory is reused without moving bytes. */
void stls_buf_consume(struct stls_buf *b, size_t n);

/* Makes room for at least n more bytes after the write cursor, moving unread bytes to the front
 * or growing the memory, never past limit bytes of unread data in all. Returns STLS_OK,
 * STLS_ERR_LIMIT when the unread bytes plus n would exceed limit, or STLS_ERR_NOMEM. */
[[nodiscard]] enum stls_err stls_buf_reserve(struct stls_buf *b, size_t n, size_t limit);

/* The writable space after the write cursor; call stls_buf_commit with what was written. */
static inline uint8_t *stls_buf_tail(struct stls_buf *b)
{
	return b->data + b->wpos;
}

static inline size_t stls_buf_tail_room(const struct stls_buf *b)
{
	return b->cap - b->wpos;
}

static inline void stls_buf_commit(struct stls_buf *b, size_t n)
{
	b->wpos += (uint32_t)n;
}

/* Appends the bytes of s. Same results as stls_buf_reserve. */
[[nodiscard]] enum stls_err stls_buf_append(struct stls_buf *b, struct stls_span s, size_t limit);

/* Appends a formatted string (never peer data as the format). Same results as
 * stls_buf_reserve; on STLS_ERR_LIMIT nothing is appended. */
[[nodiscard]] enum stls_err stls_buf_appendf(struct stls_buf *b, size_t limit, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Frees the memory if the buffer is empty (wiping it first), returning it to the all-zero state.
 * Does nothing when unread bytes remain. */
void stls_buf_release_if_empty(struct stls_buf *b);

/* Wipes and frees the memory whatever it holds. */
void stls_buf_cleanup(struct stls_buf *b);
