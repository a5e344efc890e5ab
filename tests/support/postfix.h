/* Test support: a throwaway Postfix instance (tests/support/postfix-instance) run by a test, and
 * polling its log. Postfix must be installed: where it is missing, starting fails (tests that need
 * it fail rather than skip, so a machine without it cannot pass the suite by accident). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stls_postfix {
	char dir[192];
	uint16_t port; /* its smtpd, on 127.0.0.1 */
	pid_t guard_pid;
	int guard_fd;
};

/* Starts an instance in <parent>/postfix whose smtpd listens on 127.0.0.1:port and which relays
 * everything to relay ("HOST:PORT"), with extra main.cf settings (NULL-terminated "name=value"
 * list, may be NULL). A guard child stops it should this process end without calling
 * stls_postfix_stop (Criterion skips .fini after a failed .init or a timeout, and Postfix's master
 * detaches, so PDEATHSIG does not reach it). On failure out holds why. */
bool stls_postfix_start(struct stls_postfix *p, const char *parent, uint16_t port, const char *relay,
			const char *const settings[], char *out, size_t out_len);

/* Stops the instance and its guard; returns the script's exit code (output in out). Harmless if
 * it never started. */
int stls_postfix_stop(struct stls_postfix *p, char *out, size_t out_len);

/* The instance log, or its queue listing (postqueue -p): malloc'd, NUL-terminated; NULL if the
 * script failed. */
char *stls_postfix_log(struct stls_postfix *p);
char *stls_postfix_queue(struct stls_postfix *p);

/* Runs the deferred queue now. */
bool stls_postfix_flush(struct stls_postfix *p);

/* A log line to look for: one that contains has and then, further on, also (unless NULL). */
struct stls_log_want {
	const char *has;
	const char *also;
};

/* True if text has a line matching w. */
bool stls_log_has_line(const char *text, struct stls_log_want w);

/* Waits until the Postfix log has a line for each of wants (ended by one with has == NULL).
 * Returns NULL when it does; otherwise the first one missing after timeout_ms, with the log in
 * *log_out (free it). */
const struct stls_log_want *stls_postfix_wait_log(struct stls_postfix *p, const struct stls_log_want wants[],
						  int timeout_ms, char **log_out);
