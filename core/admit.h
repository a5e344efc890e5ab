/* Admission limits that span the workers: concurrent sessions per sender group and per client
 * address, and messages a minute per client address (spec S14's per-group limits, --max-per-ip).
 *
 * These limits are global by nature: a client's connections land on any worker, and behind a
 * balancer the address that counts comes from the PROXY header, so steering by source address
 * cannot make them worker-local. This is the one place where workers write shared memory while
 * serving, and only at a session's admission, at each MAIL counted against a rate, and at its
 * end; never per byte. The table is split into stripes of one page each, each with a spin lock
 * held for a few dozen instructions: exact counts, no tombstones (deletion shifts entries back),
 * and two workers only meet when they touch the same stripe at the same moment.
 *
 * Entries are keyed by a keyed hash (SipHash-2-4, a random key per process) of the group's name
 * and the address, not by the group's index, so counts survive a reload that reorders groups. A
 * session that uses no limit touches nothing here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"

enum stls_admit_result {
	STLS_ADMIT_OK = 0,
	STLS_ADMIT_GROUP_FULL, /* the group's max-sessions is reached */
	STLS_ADMIT_ADDR_FULL,  /* the address's max-per-ip is reached */
	STLS_ADMIT_TABLE_FULL, /* more distinct clients than the table was sized for */
	STLS_ADMIT__COUNT,
};

/* "ok", "group full", ... for logs. */
const char *stls_admit_result_str(enum stls_admit_result res);

/* What a session holds; all zero holds nothing. */
struct stls_admit_hold {
	uint64_t group_key; /* 0: no group count taken */
	uint64_t addr_key;  /* 0: no address entry taken */
};

/* Sizes the table for max_sessions concurrent sessions (main thread, before any worker runs).
 * Returns STLS_OK, STLS_ERR_NOMEM, or STLS_ERR_IO (no random bytes for the hash key). */
[[nodiscard]] enum stls_err stls_admit_init(uint32_t max_sessions);

/* Frees the table (main thread, after the workers stopped). Harmless if never initialised. */
void stls_admit_cleanup(void);

/* Admits one session of group (its name; "" for sessions in no group) from addr: takes a place in
 * the group when group_max > 0 and in the address's entry when addr_max > 0 or track_rate (the
 * entry then also counts the address's messages). A limit of 0 means none. On STLS_ADMIT_OK *out
 * holds what was taken, to give back with stls_admit_release; otherwise nothing was taken and
 * *out is all zero. Callable from any worker. */
enum stls_admit_result stls_admit_session(struct stls_admit_hold *out, const char *group, uint32_t group_max,
					  const struct sockaddr *addr, uint32_t addr_max, bool track_rate);

/* Counts one message of the address hold was admitted for, within the current minute (fixed
 * one-minute windows of the monotonic clock). Returns true when it is within rate_per_min (and counts it), false when
 * the address already sent that many this minute. A hold without an address entry always
 * passes. */
bool stls_admit_message(const struct stls_admit_hold *hold, uint32_t rate_per_min);

/* Gives back what *hold took and clears it. Harmless on an all-zero hold. */
void stls_admit_release(struct stls_admit_hold *hold);

/* Sessions counted now for group, or for addr in group (tests and stats; takes the lock). */
uint32_t stls_admit_group_sessions(const char *group);
uint32_t stls_admit_addr_sessions(const char *group, const struct sockaddr *addr);
