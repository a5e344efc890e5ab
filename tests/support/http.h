/* Test support: --stats-listen's pages, read over plain HTTP on loopback. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sends request as it is to 127.0.0.1:port and reads the whole answer (5 s at most) into out,
 * NUL-terminated. Returns the answer's length, or -1 if it could not connect or send. */
ssize_t stls_http_exchange(uint16_t port, const char *request, size_t len, char *out, size_t out_len);

/* The sum over the workers of a per-worker counter (name{worker="n"} value) on a /metrics page;
 * -1 if one of its lines carries no value. */
long long stls_metric_sum(const char *page, const char *name);
