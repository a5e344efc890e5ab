#include "core/snapshot.h"

#include "core/mem.h"
#include "proto/inbound.h"
#include "proto/outbound.h"
#include "tls/ctx.h"

static _Atomic(struct stls_snapshot *) g_current;
static struct stls_snapshot *g_retired;
static struct stls_snapshot_reader *g_readers;
static unsigned g_num_readers;
static uint64_t g_next_gen = 1;

static void snapshot_free(struct stls_snapshot *s)
{
	stls_tls_server_put(s->tls);
	stls_outbound_conf_put(s->out);
	stls_inbound_conf_put(s->inbound);
	stls_wipe(&s->tickets, sizeof(s->tickets));
	stls_free_ptr(&s);
}

struct stls_snapshot *stls_snapshot_current(void)
{
	return atomic_load_explicit(&g_current, memory_order_acquire);
}

void stls_snapshot_set_readers(struct stls_snapshot_reader *readers, unsigned num)
{
	g_readers = readers;
	g_num_readers = num;
}

void stls_snapshot_publish(struct stls_snapshot *snap)
{
	snap->gen = g_next_gen++;
	struct stls_snapshot *old = atomic_exchange_explicit(&g_current, snap, memory_order_acq_rel);
	if (old) {
		old->retired_next = g_retired;
		g_retired = old;
	}
}

unsigned stls_snapshot_collect(void)
{
	uint64_t oldest = UINT64_MAX;
	for (unsigned i = 0; i < g_num_readers; i++) {
		uint64_t g = atomic_load_explicit(&g_readers[i].oldest_gen, memory_order_acquire);
		if (g < oldest)
			oldest = g;
	}
	unsigned remaining = 0;
	for (struct stls_snapshot **pp = &g_retired; *pp;) {
		struct stls_snapshot *s = *pp;
		if (s->gen < oldest) {
			*pp = s->retired_next;
			snapshot_free(s);
		} else {
			pp = &s->retired_next;
			remaining++;
		}
	}
	return remaining;
}

void stls_snapshot_shutdown(void)
{
	struct stls_snapshot *cur = atomic_exchange(&g_current, NULL);
	if (cur)
		snapshot_free(cur);
	while (g_retired) {
		struct stls_snapshot *s = g_retired;
		g_retired = s->retired_next;
		snapshot_free(s);
	}
}
