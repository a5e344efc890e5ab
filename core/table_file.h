/* The reader every table file shares (--dest-policy, --routes, --sender-groups).
 *
 * One entry a line; '#' starts a comment anywhere on a line; blank lines (and lines holding only
 * a comment) are skipped; fields are separated by runs of spaces and tabs; a CR just before the
 * LF is dropped, so a file saved with CRLF line ends reads the same. Each entry line is handed to
 * a callback as fields; the first error stops the read and is reported as "FILE:LINE: why" in
 * the caller's buffer. Everything is bounded: a line over 4096 octets, over 16 fields, a file
 * over 256 MiB, a NUL byte or a read error is an error with its own message. */
#pragma once

#include <stddef.h>

#include "core/err.h"
#include "core/span.h"

#define STLS_TABLE_FILE_MAX_LINE   4096u /* octets, without the line end */
#define STLS_TABLE_FILE_MAX_FIELDS 16u
#define STLS_TABLE_FILE_MAX_SIZE   ((size_t)256 << 20) /* octets */

/* Called once per entry line with its fields (1 to STLS_TABLE_FILE_MAX_FIELDS spans into the
 * file's bytes, valid during the call only; never NUL-terminated) and its line number (from 1).
 * Returns STLS_OK to go on, or an error to stop; on an error it may write a reason into why
 * (why_len octets, NUL-terminated, never with the file name or line: the reader adds those).
 * With no reason written, the error's name is used. */
typedef enum stls_err stls_table_file_entry_fn(void *ctx, unsigned lineno, struct stls_span *fields,
					       unsigned num_fields, char *why, size_t why_len);

/* Reads the file at path and calls fn(ctx, ...) for each entry line, in order. Returns STLS_OK,
 * or the first error: fn's, STLS_ERR_CONFIG for a malformed line (too long, too many fields, NUL)
 * or a file over the size limit, STLS_ERR_IO when the file cannot be opened or read, or
 * STLS_ERR_NOMEM. On an error err (err_len octets) holds "PATH:LINE: why" or "PATH: why",
 * NUL-terminated and truncated to fit. */
[[nodiscard]] enum stls_err stls_table_file_read(const char *path, stls_table_file_entry_fn *fn, void *ctx, char *err,
						 size_t err_len);

/* The same over bytes already in memory (text), with name standing for the file in messages. */
[[nodiscard]] enum stls_err stls_table_file_parse(struct stls_span text, const char *name, stls_table_file_entry_fn *fn,
						  void *ctx, char *err, size_t err_len);
