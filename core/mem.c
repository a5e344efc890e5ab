#include "core/mem.h"
#include <stdio.h>

#ifdef STLS_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

const char *stls_mem_allocator(void)
{
#ifdef STLS_HAVE_JEMALLOC
	static char name[64];
	const char *version = NULL;
	size_t len = sizeof(version);
	if (name[0] == '\0') {
		if (mallctl("version", &version, &len, NULL, 0) == 0 && version)
			snprintf(name, sizeof(name), "jemalloc %s", version);
		else
			snprintf(name, sizeof(name), "jemalloc");
	}
	return name;
#else
	return "libc";
#endif
}
