/* Alerts (spec S21): when delivery to a domain whose policy requires TLS fails because TLS could
 * not be used, --alert-to is told by mail, sent through the backend, at most once per domain per
 * --alert-interval. Workers only queue the event (a lock, taken on a failure path, never on the
 * data path); a thread of its own sends, so a backend that is slow or gone (up to 10 s a message)
 * delays neither the workers nor the main thread's signals, reloads and statistics. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/err.h"

/* Queues an alert (any thread). domain: the recipient domain; mx and ip: the host tried; why: the
 * cause (one of S22's three, or the handshake or verification error). */
void stls_alert_raise(const char *domain, const char *mx, const char *ip, const char *why);

/* Starts the sending thread (main thread, once, after the log started). Returns STLS_OK or
 * STLS_ERR_IO. */
[[nodiscard]] enum stls_err stls_alert_start(const struct stls_config *cfg);

/* Where alerts go from now on: the backend's address (main thread, when it changes). */
void stls_alert_set_backend(const struct sockaddr *backend, socklen_t backend_len);

/* Stops the sending thread; an alert being sent finishes first (at most its timeout). The alerts
 * still queued are not sent: each is logged and counted as dropped. Harmless if it never
 * started. */
void stls_alert_stop(void);

/* Sends what is queued and due (the sending thread): each domain at most once per interval; the
 * others are counted in the next alert for that domain. backend is where the mail goes. */
void stls_alert_process(const struct stls_config *cfg, const struct sockaddr *backend, socklen_t backend_len,
			uint64_t now_ms);

struct stls_alert_counts {
	uint64_t sent;	  /* accepted by the backend */
	uint64_t held;	  /* held back by --alert-interval, counted in the domain's next alert */
	uint64_t failed;  /* the backend could not be reached or refused the message */
	uint64_t dropped; /* too many queued at once, or still queued when starttlsd stopped */
};

/* The alerts so far (any thread: for statistics). */
void stls_alert_counts(struct stls_alert_counts *out);
