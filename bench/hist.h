/* A latency histogram for the load generator: log-linear buckets (16 per power of two, so every
 * bucket is within 6 % of its values) from 1 microsecond to about 70 minutes, fixed size, no
 * allocation, mergeable across threads. */
#pragma once

#include <stdint.h>

enum { STLS_HIST_SUB = 16, STLS_HIST_POW = 32, STLS_HIST_BUCKETS = STLS_HIST_SUB * STLS_HIST_POW };

struct stls_hist {
	uint64_t count;
	uint64_t sum_us;
	uint64_t max_us;
	uint32_t buckets[STLS_HIST_BUCKETS];
};

/* Records one value in microseconds. */
void stls_hist_add(struct stls_hist *h, uint64_t us);

/* Adds every value of src to dst. */
void stls_hist_merge(struct stls_hist *dst, const struct stls_hist *src);

/* The value at quantile q (0..1), in microseconds: the upper edge of the bucket holding it, or 0
 * for an empty histogram. */
uint64_t stls_hist_quantile(const struct stls_hist *h, double q);
