#include "core/admit.h"

#include <netinet/in.h>
#include <openssl/rand.h>
#include <openssl/siphash.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"

enum {
	STRIPE_ENTRIES = 128,  /* 128 x 24 octets: about a page per stripe */
	STRIPE_MAX_USED = 112, /* 7/8: linear probing stays short */
	MIN_STRIPES = 16,
	SPINS_BEFORE_YIELD = 256,
};

struct admit_entry {
	uint64_t key; /* 0: free */
	uint32_t sessions;
	uint32_t messages; /* in minute */
	uint32_t minute;
	uint32_t pad;
};

struct admit_stripe {
	alignas(64) atomic_uint lock;
	uint32_t num_used;
	struct admit_entry *entries;
};

static const char *const result_names[STLS_ADMIT__COUNT] = {
	[STLS_ADMIT_OK] = "ok",
	[STLS_ADMIT_GROUP_FULL] = "group full",
	[STLS_ADMIT_ADDR_FULL] = "address full",
	[STLS_ADMIT_TABLE_FULL] = "table full",
};

static struct {
	struct admit_stripe *stripes;
	size_t num_stripes; /* a power of two */
	uint64_t sip_key[2];
} g_admit;

const char *stls_admit_result_str(enum stls_admit_result res)
{
	return (unsigned)res < STLS_ADMIT__COUNT ? result_names[res] : "?";
}

enum stls_err stls_admit_init(uint32_t max_sessions)
{
	stls_admit_cleanup();
	/* Each session may hold a group entry and an address entry, and an address's rate entry
	 * outlives its sessions by up to a minute: room for three entries a session, at 7/8 load. */
	size_t want = ((size_t)max_sessions * 3 + STRIPE_MAX_USED - 1) / STRIPE_MAX_USED;
	size_t n = MIN_STRIPES;
	while (n < want)
		n <<= 1;
	if (RAND_bytes((uint8_t *)g_admit.sip_key, sizeof(g_admit.sip_key)) != 1)
		return STLS_ERR_IO;
	struct admit_stripe *stripes = stls_calloc_aligned(n, sizeof(*stripes), alignof(struct admit_stripe));
	if (!stripes)
		return STLS_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		stripes[i].entries = stls_calloc_aligned(STRIPE_ENTRIES, sizeof(struct admit_entry), 64);
		if (!stripes[i].entries) {
			for (size_t k = 0; k < i; k++)
				stls_free_ptr(&stripes[k].entries);
			stls_free_ptr(&stripes);
			return STLS_ERR_NOMEM;
		}
	}
	g_admit.stripes = stripes;
	g_admit.num_stripes = n;
	return STLS_OK;
}

void stls_admit_cleanup(void)
{
	for (size_t i = 0; i < g_admit.num_stripes; i++)
		stls_free_ptr(&g_admit.stripes[i].entries);
	stls_free_ptr(&g_admit.stripes);
	g_admit.num_stripes = 0;
}

static uint32_t current_minute(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint32_t)(ts.tv_sec / 60);
}

/* ---- keys ---------------------------------------------------------------------------------- */

/* The key of a group's count ('G', name) or of an address in a group ('A', name, NUL, address).
 * An IPv4-mapped IPv6 address counts as the IPv4 address it carries, so a dual-stack listener
 * and a PROXY header agree. Never 0. */
static uint64_t make_key(char kind, const char *group, const struct sockaddr *addr)
{
	uint8_t buf[1 + 64 + 1 + 16];
	size_t len = 0;
	size_t name_len = strnlen(group, 63);
	buf[len++] = (uint8_t)kind;
	memcpy(buf + len, group, name_len);
	len += name_len;
	buf[len++] = 0;
	if (addr && addr->sa_family == AF_INET) {
		memcpy(buf + len, &((const struct sockaddr_in *)addr)->sin_addr, 4);
		len += 4;
	} else if (addr && addr->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(buf + len, a6->s6_addr + 12, 4);
			len += 4;
		} else {
			memcpy(buf + len, a6->s6_addr, 16);
			len += 16;
		}
	}
	uint64_t key = SIPHASH_24(g_admit.sip_key, buf, len);
	return key ? key : 1;
}

/* ---- stripes ------------------------------------------------------------------------------- */

static struct admit_stripe *stripe_lock(uint64_t key)
{
	struct admit_stripe *st = &g_admit.stripes[key & (g_admit.num_stripes - 1)];
	for (unsigned spins = 0;;) {
		if (!atomic_exchange_explicit(&st->lock, 1, memory_order_acquire))
			return st;
		while (atomic_load_explicit(&st->lock, memory_order_relaxed)) {
			if (++spins < SPINS_BEFORE_YIELD)
				__builtin_ia32_pause();
			else
				sched_yield(); /* the holder was preempted: let it run */
		}
	}
}

static void stripe_unlock(struct admit_stripe *st)
{
	atomic_store_explicit(&st->lock, 0, memory_order_release);
}

static size_t home_slot(uint64_t key)
{
	/* The low bits chose the stripe; the slot comes from the high ones. */
	return (size_t)(key >> 40) & (STRIPE_ENTRIES - 1);
}

/* The entry for key in st, or NULL. */
static struct admit_entry *stripe_find(struct admit_stripe *st, uint64_t key)
{
	for (size_t i = home_slot(key), n = 0; n < STRIPE_ENTRIES; i = (i + 1) & (STRIPE_ENTRIES - 1), n++) {
		struct admit_entry *e = &st->entries[i];
		if (e->key == key)
			return e;
		if (e->key == 0)
			return NULL;
	}
	return NULL;
}

/* Removes the entry at slot i, moving later entries of the same run back so that no search
 * stops early at the hole (linear-probing deletion, no tombstones). */
static void stripe_remove(struct admit_stripe *st, size_t i)
{
	const size_t mask = STRIPE_ENTRIES - 1;
	size_t hole = i;
	for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
		struct admit_entry *e = &st->entries[j];
		if (e->key == 0)
			break;
		size_t home = home_slot(e->key);
		/* e may fill the hole if its home is not cyclically within (hole, j]. */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			st->entries[hole] = *e;
			hole = j;
		}
	}
	memset(&st->entries[hole], 0, sizeof(st->entries[hole]));
	st->num_used--;
}

static bool entry_idle(const struct admit_entry *e, uint32_t minute)
{
	return e->sessions == 0 && (e->messages == 0 || e->minute != minute);
}

/* Frees every entry no session holds and whose minute is over. */
static void stripe_sweep(struct admit_stripe *st)
{
	uint32_t minute = current_minute();
	for (size_t i = 0; i < STRIPE_ENTRIES;) {
		struct admit_entry *e = &st->entries[i];
		if (e->key != 0 && entry_idle(e, minute))
			stripe_remove(st, i); /* slot i may now hold a moved entry: look again */
		else
			i++;
	}
}

/* The entry for key, created empty if missing; NULL when the stripe is full. */
static struct admit_entry *stripe_get(struct admit_stripe *st, uint64_t key)
{
	struct admit_entry *e = stripe_find(st, key);
	if (e)
		return e;
	if (st->num_used >= STRIPE_MAX_USED) {
		stripe_sweep(st);
		if (st->num_used >= STRIPE_MAX_USED)
			return NULL;
	}
	for (size_t i = home_slot(key);; i = (i + 1) & (STRIPE_ENTRIES - 1)) {
		e = &st->entries[i];
		if (e->key == 0) {
			*e = (struct admit_entry){ .key = key };
			st->num_used++;
			return e;
		}
	}
}

/* Drops one session from key's entry, freeing it when nothing is left to remember. */
static void entry_put(uint64_t key)
{
	struct admit_stripe *st = stripe_lock(key);
	struct admit_entry *e = stripe_find(st, key);
	if (e && e->sessions > 0) {
		e->sessions--;
		if (entry_idle(e, current_minute()))
			stripe_remove(st, (size_t)(e - st->entries));
	}
	stripe_unlock(st);
}

/* Adds a session to key's entry unless it holds max already (max 0: no limit). */
static enum stls_admit_result entry_take(uint64_t key, uint32_t max, enum stls_admit_result full)
{
	struct admit_stripe *st = stripe_lock(key);
	enum stls_admit_result res = STLS_ADMIT_OK;
	struct admit_entry *e = stripe_get(st, key);
	if (!e)
		res = STLS_ADMIT_TABLE_FULL;
	else if (max > 0 && e->sessions >= max)
		res = full;
	else
		e->sessions++;
	if (e && res != STLS_ADMIT_OK && entry_idle(e, current_minute()))
		stripe_remove(st, (size_t)(e - st->entries));
	stripe_unlock(st);
	return res;
}

/* ---- the interface ------------------------------------------------------------------------- */

enum stls_admit_result stls_admit_session(struct stls_admit_hold *out, const char *group, uint32_t group_max,
					  const struct sockaddr *addr, uint32_t addr_max, bool track_rate)
{
	*out = (struct stls_admit_hold){ 0 };
	if (!g_admit.num_stripes)
		return STLS_ADMIT_OK;
	uint64_t group_key = 0;
	if (group_max > 0) {
		group_key = make_key('G', group, NULL);
		enum stls_admit_result res = entry_take(group_key, group_max, STLS_ADMIT_GROUP_FULL);
		if (res != STLS_ADMIT_OK)
			return res;
	}
	if (addr_max > 0 || track_rate) {
		uint64_t addr_key = make_key('A', group, addr);
		enum stls_admit_result res = entry_take(addr_key, addr_max, STLS_ADMIT_ADDR_FULL);
		if (res != STLS_ADMIT_OK) {
			if (group_key)
				entry_put(group_key);
			return res;
		}
		out->addr_key = addr_key;
	}
	out->group_key = group_key;
	return STLS_ADMIT_OK;
}

bool stls_admit_message(const struct stls_admit_hold *hold, uint32_t rate_per_min)
{
	if (!hold->addr_key || rate_per_min == 0 || !g_admit.num_stripes)
		return true;
	uint32_t minute = current_minute();
	struct admit_stripe *st = stripe_lock(hold->addr_key);
	struct admit_entry *e = stripe_find(st, hold->addr_key);
	bool ok = true;
	if (e) {
		if (e->minute != minute) {
			e->minute = minute;
			e->messages = 0;
		}
		if (e->messages >= rate_per_min)
			ok = false;
		else
			e->messages++;
	}
	stripe_unlock(st);
	return ok;
}

void stls_admit_release(struct stls_admit_hold *hold)
{
	if (!g_admit.num_stripes)
		return;
	if (hold->group_key)
		entry_put(hold->group_key);
	if (hold->addr_key)
		entry_put(hold->addr_key);
	*hold = (struct stls_admit_hold){ 0 };
}

static uint32_t sessions_of(uint64_t key)
{
	if (!g_admit.num_stripes)
		return 0;
	struct admit_stripe *st = stripe_lock(key);
	struct admit_entry *e = stripe_find(st, key);
	uint32_t n = e ? e->sessions : 0;
	stripe_unlock(st);
	return n;
}

uint32_t stls_admit_group_sessions(const char *group)
{
	return sessions_of(make_key('G', group, NULL));
}

uint32_t stls_admit_addr_sessions(const char *group, const struct sockaddr *addr)
{
	return sessions_of(make_key('A', group, addr));
}
