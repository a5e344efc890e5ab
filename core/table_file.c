#include "core/table_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"

static void tf_error(char *err, size_t err_len, const char *name, unsigned lineno, const char *why)
{
	if (!err || err_len == 0)
		return;
	if (lineno > 0)
		snprintf(err, err_len, "%s:%u: %s", name, lineno, why);
	else
		snprintf(err, err_len, "%s: %s", name, why);
}

static void tf_errno(char *err, size_t err_len, const char *name, const char *what, int errnum)
{
	char msg[160], buf[128];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror_r(errnum, buf, sizeof(buf)));
	tf_error(err, err_len, name, 0, msg);
}

static inline bool tf_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

enum stls_err stls_table_file_parse(struct stls_span text, const char *name, stls_table_file_entry_fn *fn, void *ctx,
				    char *err, size_t err_len)
{
	if (text.len > STLS_TABLE_FILE_MAX_SIZE) {
		tf_error(err, err_len, name, 0, "larger than 256 MiB");
		return STLS_ERR_CONFIG;
	}
	unsigned lineno = 0;
	size_t pos = 0;
	while (pos < text.len) {
		const uint8_t *start = text.ptr + pos;
		const uint8_t *lf = memchr(start, '\n', text.len - pos);
		size_t len = lf ? (size_t)(lf - start) : text.len - pos;
		pos += len + (lf ? 1 : 0);
		lineno++;

		if (len > 0 && start[len - 1] == '\r')
			len--;
		if (len > STLS_TABLE_FILE_MAX_LINE) {
			tf_error(err, err_len, name, lineno, "line longer than 4096 octets");
			return STLS_ERR_CONFIG;
		}
		/* A NUL would end the line for any C tool that reads the file after us: refuse it rather
		 * than see something else than they do. */
		if (memchr(start, '\0', len)) {
			tf_error(err, err_len, name, lineno, "NUL byte in the line");
			return STLS_ERR_CONFIG;
		}
		const uint8_t *hash = memchr(start, '#', len);
		if (hash)
			len = (size_t)(hash - start);

		struct stls_span fields[STLS_TABLE_FILE_MAX_FIELDS];
		unsigned num_fields = 0;
		size_t i = 0;
		for (;;) {
			while (i < len && tf_blank(start[i]))
				i++;
			if (i == len)
				break;
			size_t field = i;
			while (i < len && !tf_blank(start[i]))
				i++;
			if (num_fields == STLS_TABLE_FILE_MAX_FIELDS) {
				tf_error(err, err_len, name, lineno, "more than 16 fields");
				return STLS_ERR_CONFIG;
			}
			fields[num_fields++] = stls_span_make(start + field, i - field);
		}
		if (num_fields == 0)
			continue;

		char why[512] = "";
		enum stls_err ret = fn(ctx, lineno, fields, num_fields, why, sizeof(why));
		if (ret != STLS_OK) {
			if (why[0] == '\0')
				snprintf(why, sizeof(why), "%s",
					 ret == STLS_ERR_NOMEM ? "out of memory" : stls_err_str(ret));
			tf_error(err, err_len, name, lineno, why);
			return ret;
		}
	}
	return STLS_OK;
}

/* Reads all of fd into *out (heap, caller frees) up to the size limit. */
static enum stls_err tf_slurp(int fd, uint8_t **out, size_t *out_len, const char *path, char *err, size_t err_len)
{
	enum stls_err ret = STLS_OK;
	struct stat st;
	size_t cap = 4096, len = 0;
	uint8_t *buf = NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size > STLS_TABLE_FILE_MAX_SIZE) {
			tf_error(err, err_len, path, 0, "larger than 256 MiB");
			return STLS_ERR_CONFIG;
		}
		/* One more than the size, so the read that finds the end needs no growth. */
		cap = (size_t)st.st_size + 1;
	}
	buf = stls_malloc(cap);
	if (!buf) {
		tf_error(err, err_len, path, 0, "out of memory");
		return STLS_ERR_NOMEM;
	}
	for (;;) {
		if (len == cap) {
			if (cap > STLS_TABLE_FILE_MAX_SIZE) {
				tf_error(err, err_len, path, 0, "larger than 256 MiB");
				ret = STLS_ERR_CONFIG;
				goto out;
			}
			size_t new_cap =
				cap * 2 > STLS_TABLE_FILE_MAX_SIZE + 1 ? STLS_TABLE_FILE_MAX_SIZE + 1 : cap * 2;
			uint8_t *grown = stls_realloc(buf, new_cap);
			if (!grown) {
				tf_error(err, err_len, path, 0, "out of memory");
				ret = STLS_ERR_NOMEM;
				goto out;
			}
			buf = grown;
			cap = new_cap;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			tf_errno(err, err_len, path, "cannot read", errno);
			ret = STLS_ERR_IO;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > STLS_TABLE_FILE_MAX_SIZE) {
		tf_error(err, err_len, path, 0, "larger than 256 MiB");
		ret = STLS_ERR_CONFIG;
		goto out;
	}
	*out = buf;
	*out_len = len;
	buf = NULL;
out:
	stls_free_ptr(&buf);
	return ret;
}

enum stls_err stls_table_file_read(const char *path, stls_table_file_entry_fn *fn, void *ctx, char *err, size_t err_len)
{
	enum stls_err ret;
	uint8_t *text = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		tf_errno(err, err_len, path, "cannot open", errno);
		return STLS_ERR_IO;
	}
	ret = tf_slurp(fd, &text, &len, path, err, err_len);
	close(fd);
	if (ret != STLS_OK)
		goto out;
	ret = stls_table_file_parse(stls_span_make(text, len), path, fn, ctx, err, err_len);
out:
	stls_free_ptr(&text);
	return ret;
}
