/* The mail log.
 *
 * Every thread that logs owns a single-producer ring of fixed-size records; one logger thread
 * drains all rings to the log file, so a worker never blocks on disk or on another thread. It
 * merges the rings by the time each line was logged, a few milliseconds behind, so the file is one
 * time line whichever threads the lines came from. A full
 * ring drops the record and counts it; the logger reports the count, so nothing vanishes
 * silently. Lines keep the appliance's shape (spec S23):
 *     2026-11-29T11:49:57.123Z Info: ICID 12 TLS success protocol TLSv1.3 cipher ...
 * Before the logger starts (and in threads without a ring) lines go straight to stderr. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

enum stls_log_level {
	STLS_LOG_DEBUG = 0,
	STLS_LOG_INFO,
	STLS_LOG_WARNING,
	STLS_LOG_CRITICAL,
	STLS_LOG__COUNT,
};

/* "Info", "Warning", ... */
const char *stls_log_level_str(enum stls_log_level level);

/* Opens path ("-" for stderr) for appending and starts the logger thread. Returns STLS_OK or
 * STLS_ERR_CONFIG (the reason was printed to stderr). */
[[nodiscard]] enum stls_err stls_log_start(const char *path);

/* Gives the calling thread its own ring (call once per thread, before it logs). Returns STLS_OK
 * or STLS_ERR_NOMEM / STLS_ERR_LIMIT (too many threads). */
[[nodiscard]] enum stls_err stls_log_attach_thread(void);

/* Asks the logger to reopen the file (SIGUSR1, after log rotation). Async-signal-safe. */
void stls_log_reopen(void);

/* Drains every ring, stops the logger thread and closes the file. */
void stls_log_stop(void);

/* Logs one line at level. The line is cut at about 1000 bytes. Never blocks. */
void stls_logf(enum stls_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Lines dropped because a ring was full, across all threads. */
uint64_t stls_log_dropped(void);

#define stls_log_info(...) stls_logf(STLS_LOG_INFO, __VA_ARGS__)
#define stls_log_warn(...) stls_logf(STLS_LOG_WARNING, __VA_ARGS__)
#define stls_log_crit(...) stls_logf(STLS_LOG_CRITICAL, __VA_ARGS__)
