#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>

const char *stls_err_str(enum stls_err err)
{
	switch (err) {
	case STLS_OK: return "OK";
	case STLS_AGAIN: return "AGAIN";
	case STLS_DONE: return "DONE";
	case STLS_ERR_IO: return "ERR_IO";
	case STLS_ERR_NOMEM: return "ERR_NOMEM";
	case STLS_ERR_NOBUFS: return "ERR_NOBUFS";
	case STLS_ERR_TIMEOUT: return "ERR_TIMEOUT";
	case STLS_ERR_CLOSED: return "ERR_CLOSED";
	case STLS_ERR_RESET: return "ERR_RESET";
	case STLS_ERR_PROTO: return "ERR_PROTO";
	case STLS_ERR_TOO_LONG: return "ERR_TOO_LONG";
	case STLS_ERR_BARE_LF: return "ERR_BARE_LF";
	case STLS_ERR_NUL: return "ERR_NUL";
	case STLS_ERR_POLICY: return "ERR_POLICY";
	case STLS_ERR_LIMIT: return "ERR_LIMIT";
	case STLS_ERR_TLS: return "ERR_TLS";
	case STLS_ERR_CONFIG: return "ERR_CONFIG";
	case STLS_ERR_USAGE: return "ERR_USAGE";
	case STLS_ERR_INTERNAL: return "ERR_INTERNAL";
	}
	return "ERR_UNKNOWN";
}

enum stls_err_category stls_err_category(enum stls_err err)
{
	if (err >= 0)
		return STLS_CAT_NONE;
	switch (-(int)err / 100) {
	case 1: return STLS_CAT_IO;
	case 2: return STLS_CAT_CLOSED;
	case 3: return STLS_CAT_PROTO;
	case 4: return STLS_CAT_POLICY;
	case 5: return STLS_CAT_TLS;
	case 6: return STLS_CAT_CONFIG;
	default: return STLS_CAT_INTERNAL;
	}
}

const char *stls_err_category_str(enum stls_err_category cat)
{
	static const char *const names[STLS_CAT__COUNT] = {
		[STLS_CAT_NONE] = "none",     [STLS_CAT_IO] = "io",
		[STLS_CAT_CLOSED] = "closed", [STLS_CAT_PROTO] = "protocol",
		[STLS_CAT_POLICY] = "policy", [STLS_CAT_TLS] = "tls",
		[STLS_CAT_CONFIG] = "config", [STLS_CAT_INTERNAL] = "internal",
	};
	return (unsigned)cat < STLS_CAT__COUNT ? names[cat] : "unknown";
}

void stls_bug(const char *file, int line, const char *what)
{
	fprintf(stderr, "starttlsd: BUG at %s:%d: %s\n", file, line, what);
	abort();
}
