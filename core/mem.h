/* The one door to the allocator.
 *
 * The daemon links jemalloc, whose per-thread caches keep workers from contending in malloc. All
 * heap memory goes through these calls so that the allocator can be swapped (sanitizer builds use
 * the C library's, because ASan must own malloc) and so that every free also clears the pointer.
 * Rule: memory a worker allocates is freed by that worker. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* malloc / calloc / realloc; NULL on failure, never abort. */
static inline void *stls_malloc(size_t len)
{
	return malloc(len);
}

static inline void *stls_calloc(size_t num, size_t len)
{
	return calloc(num, len);
}

static inline void *stls_realloc(void *p, size_t len)
{
	return realloc(p, len);
}

/* Zeroed memory for num elements of len bytes aligned to align (a power of two, at least
 * sizeof(void *)): for arrays of types laid out on cache lines of their own, which malloc would
 * not align. Free with stls_free_ptr. NULL on failure. */
static inline void *stls_calloc_aligned(size_t num, size_t len, size_t align)
{
	if (len && num > SIZE_MAX / len)
		return NULL;
	size_t total = num * len;
	void *p = NULL;
	if (posix_memalign(&p, align, total > 0 ? total : align) != 0)
		return NULL;
	memset(p, 0, total);
	return p;
}

/* Frees *pp (which may be NULL) and sets it to NULL. Takes the address of any pointer. */
static inline void stls_free_ptr(void *pp)
{
	void **p = (void **)pp;
	free(*p);
	*p = NULL;
}

/* Zeroes len bytes in a way the compiler cannot drop: for buffers that held secrets or another
 * session's plaintext. */
static inline void stls_wipe(void *p, size_t len)
{
	if (p && len)
		explicit_bzero(p, len);
}

/* Copies a C string the program owns into new heap memory; NULL on failure. */
static inline char *stls_strdup(const char *s)
{
	return strdup(s);
}

/* The name of the allocator linked in ("jemalloc 5.3.0-..." or "libc"), for --version and logs. */
const char *stls_mem_allocator(void);
