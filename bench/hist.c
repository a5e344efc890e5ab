#include "bench/hist.h"

/* Bucket of a value: values below STLS_HIST_SUB map one to one; above, the power of two picks
 * the row and the next four bits the column. */
static unsigned bucket_of(uint64_t us)
{
	if (us < STLS_HIST_SUB)
		return (unsigned)us;
	unsigned pow = 63u - (unsigned)__builtin_clzll(us); /* us >= 16: pow >= 4 */
	unsigned sub = (unsigned)(us >> (pow - 4)) & (STLS_HIST_SUB - 1);
	unsigned idx = (pow - 3) * STLS_HIST_SUB + sub;
	return idx < STLS_HIST_BUCKETS ? idx : STLS_HIST_BUCKETS - 1;
}

static uint64_t bucket_upper(unsigned idx)
{
	if (idx < STLS_HIST_SUB)
		return idx;
	unsigned pow = idx / STLS_HIST_SUB + 3;
	unsigned sub = idx % STLS_HIST_SUB;
	return ((uint64_t)(STLS_HIST_SUB + sub + 1) << (pow - 4)) - 1;
}

void stls_hist_add(struct stls_hist *h, uint64_t us)
{
	h->buckets[bucket_of(us)]++;
	h->count++;
	h->sum_us += us;
	if (us > h->max_us)
		h->max_us = us;
}

void stls_hist_merge(struct stls_hist *dst, const struct stls_hist *src)
{
	for (unsigned i = 0; i < STLS_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum_us += src->sum_us;
	if (src->max_us > dst->max_us)
		dst->max_us = src->max_us;
}

uint64_t stls_hist_quantile(const struct stls_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < STLS_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen > rank) {
			uint64_t upper = bucket_upper(i);
			return upper < h->max_us ? upper : h->max_us;
		}
	}
	return h->max_us;
}
