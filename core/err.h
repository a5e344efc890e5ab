/* One error vocabulary for the whole daemon.
 *
 * Fallible functions return enum stls_err and are marked [[nodiscard]] so the compiler insists
 * the caller looks. STLS_OK is zero; STLS_AGAIN ("need more input" or "would block") is a status,
 * not a failure; every failure is negative and falls into one category a caller can branch on
 * with stls_err_category(). BoringSSL's 1/0 and liburing's -errno are converted at one boundary
 * each (tls/ and core/uring.c). */
#pragma once

enum stls_err {
	STLS_OK = 0,
	STLS_AGAIN = 1, /* need more bytes, or the operation would block */
	STLS_DONE = 2,	/* a stream or exchange reached its normal end */
	/* IO: the operating system refused or failed */
	STLS_ERR_IO = -100,
	STLS_ERR_NOMEM = -101,
	STLS_ERR_NOBUFS = -102,
	STLS_ERR_TIMEOUT = -103,
	/* CLOSED: the peer went away */
	STLS_ERR_CLOSED = -200,
	STLS_ERR_RESET = -201,
	/* PROTO: the peer broke the protocol */
	STLS_ERR_PROTO = -300,
	STLS_ERR_TOO_LONG = -301,
	STLS_ERR_BARE_LF = -302,
	STLS_ERR_NUL = -303,
	/* POLICY: a rule of ours refused it */
	STLS_ERR_POLICY = -400,
	STLS_ERR_LIMIT = -401,
	/* TLS: the TLS library failed */
	STLS_ERR_TLS = -500,
	/* CONFIG: the operator's input is wrong */
	STLS_ERR_CONFIG = -600,
	STLS_ERR_USAGE = -601,
	/* INTERNAL: a bug of ours */
	STLS_ERR_INTERNAL = -700,
};

enum stls_err_category {
	STLS_CAT_NONE = 0,
	STLS_CAT_IO,
	STLS_CAT_CLOSED,
	STLS_CAT_PROTO,
	STLS_CAT_POLICY,
	STLS_CAT_TLS,
	STLS_CAT_CONFIG,
	STLS_CAT_INTERNAL,
	STLS_CAT__COUNT,
};

/* The stable name of an error, for logs ("ERR_TOO_LONG"). Never NULL. */
const char *stls_err_str(enum stls_err err);

/* The category an error falls into; STLS_CAT_NONE for STLS_OK, STLS_AGAIN and STLS_DONE. */
enum stls_err_category stls_err_category(enum stls_err err);

/* The name of a category, for logs. Never NULL. */
const char *stls_err_category_str(enum stls_err_category cat);

/* Return from the calling function if x failed or asked for more input. */
#define STLS_TRY(x)                                                                                                    \
	do {                                                                                                           \
		enum stls_err stls_try_err_ = (x);                                                                     \
		if (stls_try_err_ != STLS_OK)                                                                          \
			return stls_try_err_;                                                                          \
	} while (0)

/* Return err from the calling function unless cond holds. */
#define STLS_ENSURE(cond, err)                                                                                         \
	do {                                                                                                           \
		if (!(cond))                                                                                           \
			return (err);                                                                                  \
	} while (0)

/* Assertion tiers kept in production builds: STLS_BUG_ON aborts (state is corrupt and going on
 * would be worse); STLS_CHECK_IF logs once and goes on. */
#define STLS_BUG_ON(cond)                                                                                              \
	do {                                                                                                           \
		if (__builtin_expect(!!(cond), 0))                                                                     \
			stls_bug(__FILE__, __LINE__, #cond);                                                           \
	} while (0)

__attribute__((noreturn)) void stls_bug(const char *file, int line, const char *what);
