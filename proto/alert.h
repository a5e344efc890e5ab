/* Alerts (spec S21): when delivery to a domain whose policy requires TLS fails because TLS could
 * not be used, --alert-to is told by mail, sent through the backend, at most once per domain per
 * --alert-interval. Workers only queue the event (a lock, taken on a failure path, never on the
 * data path); the main thread sends. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"

/* Queues an alert (any thread). domain: the recipient domain; mx and ip: the host tried; why: the
 * cause (one of S22's three, or the handshake or verification error). */
void stls_alert_raise(const char *domain, const char *mx, const char *ip, const char *why);

/* Sends what is queued and due (main thread): each domain at most once per interval; the others are
 * counted in the next alert for that domain. backend is where the mail goes. */
void stls_alert_process(const struct stls_config *cfg, const struct sockaddr *backend, socklen_t backend_len,
			uint64_t now_ms);

/* Alerts sent and held back so far (for tests and stats). */
void stls_alert_counts(uint64_t *out_sent, uint64_t *out_held);
