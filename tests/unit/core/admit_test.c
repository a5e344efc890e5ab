#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/admit.h"

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	cr_assert_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	sin6->sin6_family = AF_INET6;
	cr_assert_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void setup(void)
{
	cr_assert_eq(stls_admit_init(1000), STLS_OK);
}

static void teardown(void)
{
	stls_admit_cleanup();
}

TestSuite(admit, .init = setup, .fini = teardown);

Test(admit, group_limit_counts_sessions_and_gives_them_back)
{
	struct stls_admit_hold h[4];
	struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
	cr_assert_eq(stls_admit_session(&h[0], "PARTNERS", 2, SA(a), 0, false), STLS_ADMIT_OK);
	cr_assert_eq(stls_admit_session(&h[1], "PARTNERS", 2, SA(b), 0, false), STLS_ADMIT_OK);
	cr_assert_eq(stls_admit_group_sessions("PARTNERS"), 2);
	cr_assert_eq(stls_admit_session(&h[2], "PARTNERS", 2, SA(a), 0, false), STLS_ADMIT_GROUP_FULL);
	cr_assert_eq(h[2].group_key, 0, "a refused session holds nothing");
	/* Another group has its own count. */
	cr_assert_eq(stls_admit_session(&h[3], "OTHERS", 2, SA(a), 0, false), STLS_ADMIT_OK);
	stls_admit_release(&h[0]);
	cr_assert_eq(h[0].group_key, 0);
	cr_assert_eq(stls_admit_group_sessions("PARTNERS"), 1);
	cr_assert_eq(stls_admit_session(&h[2], "PARTNERS", 2, SA(a), 0, false), STLS_ADMIT_OK);
	stls_admit_release(&h[1]);
	stls_admit_release(&h[2]);
	stls_admit_release(&h[3]);
	stls_admit_release(&h[3]); /* twice: harmless */
	cr_assert_eq(stls_admit_group_sessions("PARTNERS"), 0);
	cr_assert_eq(stls_admit_group_sessions("OTHERS"), 0);
}

Test(admit, per_address_limit_and_mapped_addresses)
{
	struct stls_admit_hold h[3];
	struct sockaddr_storage a = v4("198.51.100.7"), mapped = v6("::ffff:198.51.100.7"), other = v4("198.51.100.8");
	cr_assert_eq(stls_admit_session(&h[0], "", 0, SA(a), 2, false), STLS_ADMIT_OK);
	cr_assert_eq(h[0].group_key, 0, "no group limit: no group entry");
	cr_assert_neq(h[0].addr_key, 0);
	cr_assert_eq(stls_admit_session(&h[1], "", 0, SA(mapped), 2, false), STLS_ADMIT_OK);
	cr_assert_eq(stls_admit_addr_sessions("", SA(a)), 2, "the mapped address is the same client");
	struct stls_admit_hold refused;
	cr_assert_eq(stls_admit_session(&refused, "", 0, SA(a), 2, false), STLS_ADMIT_ADDR_FULL);
	cr_assert_eq(stls_admit_session(&h[2], "", 0, SA(other), 2, false), STLS_ADMIT_OK);
	/* The same address in another group is counted apart. */
	struct stls_admit_hold g;
	cr_assert_eq(stls_admit_session(&g, "G2", 0, SA(a), 2, false), STLS_ADMIT_OK);
	cr_assert_eq(stls_admit_addr_sessions("G2", SA(a)), 1);
	stls_admit_release(&g);
	for (int i = 0; i < 3; i++)
		stls_admit_release(&h[i]);
	cr_assert_eq(stls_admit_addr_sessions("", SA(a)), 0);
	cr_assert_eq(stls_admit_addr_sessions("", SA(other)), 0);
}

Test(admit, both_limits_refuse_without_leaking_the_group_place)
{
	struct stls_admit_hold h, refused;
	struct sockaddr_storage a = v6("2001:db8::1");
	cr_assert_eq(stls_admit_session(&h, "G", 10, SA(a), 1, false), STLS_ADMIT_OK);
	cr_assert_eq(stls_admit_session(&refused, "G", 10, SA(a), 1, false), STLS_ADMIT_ADDR_FULL);
	cr_assert_eq(stls_admit_group_sessions("G"), 1, "the refused session's group place was given back");
	stls_admit_release(&h);
	cr_assert_eq(stls_admit_group_sessions("G"), 0);
}

static unsigned passes(const struct stls_admit_hold *h, unsigned tries, uint32_t rate)
{
	unsigned n = 0;
	for (unsigned i = 0; i < tries; i++)
		n += stls_admit_message(h, rate);
	return n;
}

Test(admit, rate_counts_messages_per_address_across_sessions)
{
	/* Windows are whole minutes: if one turns over during an attempt, the second attempt (a
	 * fresh address, microseconds later) cannot meet another turn. */
	bool held = false;
	for (unsigned attempt = 0; attempt < 2 && !held; attempt++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "203.0.113.%u", 5 + attempt);
		struct sockaddr_storage a = v4(ip);
		struct stls_admit_hold h, again;
		cr_assert_eq(stls_admit_session(&h, "R", 0, SA(a), 0, true), STLS_ADMIT_OK);
		cr_assert_neq(h.addr_key, 0, "a rate needs the address entry");
		unsigned first = passes(&h, 5, 3);
		/* The count outlives the session: reconnecting does not reset it. */
		stls_admit_release(&h);
		cr_assert_eq(stls_admit_session(&again, "R", 0, SA(a), 0, true), STLS_ADMIT_OK);
		unsigned second = passes(&again, 2, 3);
		stls_admit_release(&again);
		held = first == 3 && second == 0;
	}
	cr_assert(held, "3 messages a minute let more through, or reconnecting reset the count");
	struct stls_admit_hold none = { 0 };
	cr_assert(stls_admit_message(&none, 1), "a hold without an address entry always passes");
	struct sockaddr_storage b = v4("203.0.113.99");
	struct stls_admit_hold h;
	cr_assert_eq(stls_admit_session(&h, "R", 0, SA(b), 0, true), STLS_ADMIT_OK);
	cr_assert_eq(passes(&h, 100, 0), 100, "rate 0 means no limit");
	stls_admit_release(&h);
}

Test(admit, table_full_is_reported_and_the_table_empties_again)
{
	stls_admit_cleanup();
	cr_assert_eq(stls_admit_init(1), STLS_OK); /* the smallest table */
	enum { N = 4000 };
	static struct stls_admit_hold h[N];
	unsigned ok = 0, full = 0;
	for (unsigned i = 0; i < N; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.%u.%u.1", i / 256, i % 256);
		struct sockaddr_storage a = v4(ip);
		enum stls_admit_result r = stls_admit_session(&h[i], "", 0, SA(a), 5, false);
		if (r == STLS_ADMIT_OK)
			ok++;
		else if (r == STLS_ADMIT_TABLE_FULL)
			full++;
		else
			cr_assert_fail("unexpected %s", stls_admit_result_str(r));
	}
	cr_assert_gt(full, 0, "4000 distinct clients must overflow the smallest table");
	cr_assert_gt(ok, 1000);
	/* Every entry still answers after all the shifting. */
	for (unsigned i = 0; i < N; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.%u.%u.1", i / 256, i % 256);
		struct sockaddr_storage a = v4(ip);
		cr_assert_eq(stls_admit_addr_sessions("", SA(a)), h[i].addr_key ? 1u : 0u, "%s", ip);
	}
	for (unsigned i = 0; i < N; i += 2)
		stls_admit_release(&h[i]);
	for (unsigned i = 1; i < N; i += 2) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.%u.%u.1", i / 256, i % 256);
		struct sockaddr_storage a = v4(ip);
		cr_assert_eq(stls_admit_addr_sessions("", SA(a)), h[i].addr_key ? 1u : 0u, "%s after removals", ip);
		stls_admit_release(&h[i]);
	}
	/* Empty again: the same clients all fit up to the same count. */
	unsigned again = 0;
	for (unsigned i = 0; i < N; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.%u.%u.1", i / 256, i % 256);
		struct sockaddr_storage a = v4(ip);
		if (stls_admit_session(&h[i], "", 0, SA(a), 5, false) == STLS_ADMIT_OK)
			again++;
	}
	cr_assert_eq(again, ok);
	for (unsigned i = 0; i < N; i++)
		stls_admit_release(&h[i]);
}

enum { THREADS = 4, ROUNDS = 100000, LIMIT = 1 };

static atomic_uint g_inside, g_max_inside, g_refused;

static void *hammer(void *arg)
{
	struct sockaddr_storage a = v4(arg ? "192.0.2.200" : "192.0.2.201");
	for (unsigned i = 0; i < ROUNDS; i++) {
		struct stls_admit_hold h;
		if (stls_admit_session(&h, "H", LIMIT, SA(a), 0, false) != STLS_ADMIT_OK) {
			atomic_fetch_add(&g_refused, 1);
			continue;
		}
		unsigned now = atomic_fetch_add(&g_inside, 1) + 1;
		unsigned max = atomic_load(&g_max_inside);
		while (now > max && !atomic_compare_exchange_weak(&g_max_inside, &max, now))
			;
		atomic_fetch_sub(&g_inside, 1);
		stls_admit_release(&h);
	}
	return NULL;
}

Test(admit, a_group_limit_holds_across_threads)
{
	pthread_t t[THREADS];
	for (uintptr_t i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)(i % 2)), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert_leq(atomic_load(&g_max_inside), LIMIT, "more sessions inside than the limit");
	cr_assert_eq(stls_admit_group_sessions("H"), 0, "counts leaked");
}
