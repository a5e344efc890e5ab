/* Unit tests for core/timer.c: the hashed timer wheel.
 *
 * Fired timers come back as a list linked through ->next; the caller sets t->next = NULL before
 * using a timer again, as the session does. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

enum { TICK = STLS_TIMER_TICK_MS, TURN = STLS_TIMER_SLOTS };

static struct stls_timer_wheel *new_wheel(uint64_t now_ms)
{
	struct stls_timer_wheel *w = calloc(1, sizeof(*w));
	cr_assert_not_null(w);
	stls_timer_wheel_init(w, now_ms);
	return w;
}

/* Advances to now_ms; returns the count; detaches every fired timer (next = NULL) after checking
 * the list is well formed and holds count distinct timers. */
static uint32_t advance(struct stls_timer_wheel *w, uint64_t now_ms, struct stls_timer **out_fired, size_t max)
{
	struct stls_timer *list = (struct stls_timer *)1;
	uint32_t count = stls_timer_wheel_advance(w, &list, now_ms);
	cr_assert_leq(count, max, "%u fired, room for %zu", count, max);
	uint32_t seen = 0;
	for (struct stls_timer *t = list; t;) {
		cr_assert_lt(seen, count, "the fired list is longer than the count %u", count);
		cr_assert_null(t->prev, "a fired timer's prev is cleared");
		for (uint32_t k = 0; k < seen; k++)
			cr_assert_neq(out_fired[k], t, "a timer fired twice");
		out_fired[seen++] = t;
		struct stls_timer *next = t->next;
		t->next = NULL; /* the caller's duty before reuse */
		t = next;
	}
	cr_assert_eq(seen, count, "the list holds %u timers, count says %u", seen, count);
	if (count == 0)
		cr_assert_null(list, "no timer fired: the list is empty");
	return count;
}

static uint32_t advance_none(struct stls_timer_wheel *w, uint64_t now_ms)
{
	struct stls_timer *fired[1];
	return advance(w, now_ms, fired, 0);
}

static bool contains(struct stls_timer **fired, uint32_t n, const struct stls_timer *t)
{
	for (uint32_t i = 0; i < n; i++)
		if (fired[i] == t)
			return true;
	return false;
}

Test(timer, zero_timer_is_disarmed)
{
	struct stls_timer t = { 0 };
	cr_assert_not(stls_timer_armed(&t));
	struct stls_timer_wheel *w = new_wheel(0);
	stls_timer_disarm(w, &t); /* harmless */
	cr_assert_eq(w->num_armed, 0);
	free(w);
}

Test(timer, init)
{
	struct stls_timer_wheel *w = new_wheel(12345);
	cr_assert_eq(w->now, 123, "now is in ticks");
	cr_assert_eq(w->num_armed, 0);
	cr_assert_eq(advance_none(w, 12345), 0);
	cr_assert_eq(advance_none(w, 99999), 0, "an empty wheel fires nothing");
	free(w);
}

Test(timer, arm_and_disarm)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer a = { 0 }, b = { 0 };
	stls_timer_arm(w, &a, 1000);
	cr_assert(stls_timer_armed(&a));
	cr_assert_eq(w->num_armed, 1);
	stls_timer_arm(w, &b, 1000);
	cr_assert_eq(w->num_armed, 2);
	stls_timer_disarm(w, &a);
	cr_assert_not(stls_timer_armed(&a));
	cr_assert_eq(w->num_armed, 1);
	stls_timer_disarm(w, &a);
	cr_assert_eq(w->num_armed, 1, "disarming twice is harmless");
	cr_assert(stls_timer_armed(&b), "disarming one timer leaves its slot-mate armed");

	struct stls_timer *fired[2];
	cr_assert_eq(advance(w, 1000, fired, 2), 1, "the disarmed timer does not fire");
	cr_assert_eq(fired[0], &b);
	cr_assert_eq(w->num_armed, 0);
	free(w);
}

Test(timer, fires_at_the_right_tick_not_before)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer t = { 0 };
	stls_timer_arm(w, &t, 1000);
	cr_assert_eq(t.expires, 10);
	for (uint64_t ms = 0; ms < 1000; ms += 7)
		cr_assert_eq(advance_none(w, ms), 0, "fired at %llu ms, armed for 1000", (unsigned long long)ms);
	cr_assert(stls_timer_armed(&t));
	struct stls_timer *fired[1];
	cr_assert_eq(advance(w, 1000, fired, 1), 1, "due at 1000 ms");
	cr_assert_eq(fired[0], &t);
	cr_assert_not(stls_timer_armed(&t));
	cr_assert_eq(w->num_armed, 0);
	cr_assert_eq(advance_none(w, 100000), 0, "a timer fires once");
	free(w);
}

Test(timer, late_advance_still_fires)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer t = { 0 };
	stls_timer_arm(w, &t, 1000);
	struct stls_timer *fired[1];
	cr_assert_eq(advance(w, 1550, fired, 1), 1, "advancing past the due tick fires it");
	cr_assert_eq(fired[0], &t);
	free(w);
}

Test(timer, rounds_up_to_a_tick_and_at_least_one)
{
	struct stls_timer_wheel *w = new_wheel(5000);
	struct stls_timer t0 = { 0 }, t1 = { 0 }, t100 = { 0 }, t101 = { 0 }, t150 = { 0 };
	stls_timer_arm(w, &t0, 0);
	stls_timer_arm(w, &t1, 1);
	stls_timer_arm(w, &t100, 100);
	stls_timer_arm(w, &t101, 101);
	stls_timer_arm(w, &t150, 150);
	cr_assert_eq(t0.expires, 51, "0 ms: at least one tick");
	cr_assert_eq(t1.expires, 51, "1 ms: one tick");
	cr_assert_eq(t100.expires, 51, "100 ms: one tick");
	cr_assert_eq(t101.expires, 52, "101 ms: rounded up to two");
	cr_assert_eq(t150.expires, 52, "150 ms: rounded up to two");
	cr_assert_eq(advance_none(w, 5099), 0, "nothing fires within the current tick");
	struct stls_timer *fired[5];
	cr_assert_eq(advance(w, 5100, fired, 5), 3);
	cr_assert(contains(fired, 3, &t0) && contains(fired, 3, &t1) && contains(fired, 3, &t100));
	cr_assert_eq(advance_none(w, 5199), 0);
	cr_assert_eq(advance(w, 5200, fired, 5), 2);
	cr_assert(contains(fired, 2, &t101) && contains(fired, 2, &t150));
	free(w);
}

Test(timer, rearm_moves_the_deadline)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer t = { 0 };
	stls_timer_arm(w, &t, 1000);
	cr_assert_eq(advance_none(w, 500), 0);
	stls_timer_arm(w, &t, 1000); /* a read arrived: the timeout starts again */
	cr_assert_eq(w->num_armed, 1, "re-arming does not count twice");
	cr_assert_eq(t.expires, 15);
	cr_assert_eq(advance_none(w, 1000), 0, "the old deadline no longer fires");
	cr_assert_eq(advance_none(w, 1499), 0);
	struct stls_timer *fired[1];
	cr_assert_eq(advance(w, 1500, fired, 1), 1);
	cr_assert_eq(w->num_armed, 0);

	/* Re-arm to an earlier deadline. */
	stls_timer_arm(w, &t, 60000);
	stls_timer_arm(w, &t, 200);
	cr_assert_eq(advance(w, 1700, fired, 1), 1, "the earlier deadline fires");
	cr_assert_eq(advance_none(w, 61500), 0, "the later one is gone");
	free(w);
}

Test(timer, many_timers_fire_as_a_list)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer t[5];
	memset(t, 0, sizeof(t));
	for (int i = 0; i < 5; i++)
		stls_timer_arm(w, &t[i], 300);
	cr_assert_eq(w->num_armed, 5);
	struct stls_timer *list = NULL;
	uint32_t n = stls_timer_wheel_advance(w, &list, 300);
	cr_assert_eq(n, 5);
	unsigned seen = 0;
	for (struct stls_timer *p = list; p; p = p->next) {
		cr_assert(p >= &t[0] && p <= &t[4], "a foreign timer on the list");
		cr_assert_null(p->prev);
		seen++;
		cr_assert_leq(seen, 5, "the list does not end");
	}
	cr_assert_eq(seen, 5);
	cr_assert_eq(w->num_armed, 0);
	free(w);
}

Test(timer, fired_timer_is_reusable)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer a = { 0 }, b = { 0 };
	stls_timer_arm(w, &a, 100);
	stls_timer_arm(w, &b, 100);
	struct stls_timer *fired[2];
	cr_assert_eq(advance(w, 100, fired, 2), 2);
	/* advance() above cleared ->next as the caller must. */
	cr_assert_not(stls_timer_armed(&a));
	cr_assert_not(stls_timer_armed(&b));
	stls_timer_disarm(w, &a); /* harmless on a fired timer */
	cr_assert_eq(w->num_armed, 0);
	stls_timer_arm(w, &a, 500);
	stls_timer_arm(w, &b, 300);
	cr_assert_eq(w->num_armed, 2);
	cr_assert_eq(advance(w, 400, fired, 2), 1);
	cr_assert_eq(fired[0], &b);
	cr_assert_eq(advance(w, 600, fired, 2), 1);
	cr_assert_eq(fired[0], &a);
	cr_assert_eq(w->num_armed, 0);
	free(w);
}

Test(timer, beyond_one_turn_tick_by_tick)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer far = { 0 }, turn = { 0 }, turn1 = { 0 };
	stls_timer_arm(w, &far, 2000 * TICK);  /* shares a slot with tick 976 */
	stls_timer_arm(w, &turn, TURN * TICK); /* the slot just processed */
	stls_timer_arm(w, &turn1, (TURN + 1) * TICK);
	struct stls_timer *fired[3];
	for (uint64_t tick = 1; tick <= 2000; tick++) {
		uint32_t n = advance(w, tick * TICK, fired, 3);
		if (tick == TURN || tick == TURN + 1 || tick == 2000) {
			cr_assert_eq(n, 1, "tick %llu: %u fired", (unsigned long long)tick, n);
			struct stls_timer *want = tick == TURN ? &turn : tick == TURN + 1 ? &turn1 : &far;
			cr_assert_eq(fired[0], want, "tick %llu: the wrong timer", (unsigned long long)tick);
		} else {
			cr_assert_eq(n, 0, "tick %llu: %u fired early", (unsigned long long)tick, n);
		}
	}
	cr_assert_eq(w->num_armed, 0);
	free(w);
}

Test(timer, beyond_one_turn_in_big_steps)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer far = { 0 };
	stls_timer_arm(w, &far, 3000 * TICK);
	uint64_t tick = 0;
	for (tick = 700; tick < 3000; tick += 700)
		cr_assert_eq(advance_none(w, tick * TICK), 0, "tick %llu: fired early", (unsigned long long)tick);
	cr_assert_eq(advance_none(w, 2999 * TICK), 0);
	struct stls_timer *fired[1];
	cr_assert_eq(advance(w, 3000 * TICK, fired, 1), 1);
	free(w);
}

Test(timer, advance_after_a_long_stall)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer short_t = { 0 }, ten_min = { 0 }, two_hours = { 0 };
	stls_timer_arm(w, &short_t, 5000);
	stls_timer_arm(w, &ten_min, 600000);
	stls_timer_arm(w, &two_hours, 7200000);
	struct stls_timer *fired[3];
	/* The worker was stopped for an hour: everything due fires at once, nothing else. */
	cr_assert_eq(advance(w, 3600000, fired, 3), 2);
	cr_assert(contains(fired, 2, &short_t) && contains(fired, 2, &ten_min));
	cr_assert(stls_timer_armed(&two_hours));
	cr_assert_eq(w->num_armed, 1);
	cr_assert_eq(w->now, 36000, "the wheel caught up with the clock");
	cr_assert_eq(advance_none(w, 7199999), 0);
	cr_assert_eq(advance(w, 7200000, fired, 3), 1);
	cr_assert_eq(fired[0], &two_hours);

	/* Timers armed after the stall count from the new time. */
	stls_timer_arm(w, &short_t, 1000);
	cr_assert_eq(advance_none(w, 7200999), 0);
	cr_assert_eq(advance(w, 7201000, fired, 3), 1);
	free(w);
}

Test(timer, stall_fires_every_slot_once)
{
	enum { N = 3000 };
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer *t = calloc(N, sizeof(*t));
	cr_assert_not_null(t);
	/* Timers at ticks 1..N: more than two turns of the wheel, every slot used. */
	for (int i = 0; i < N; i++)
		stls_timer_arm(w, &t[i], (uint64_t)(i + 1) * TICK);
	struct stls_timer **fired = calloc(N, sizeof(*fired));
	cr_assert_not_null(fired);
	/* Jump to tick 2500 at once: timers 1..2500 fire, exactly once each. */
	uint32_t n = advance(w, 2500 * TICK, fired, N);
	cr_assert_eq(n, 2500, "%u fired", n);
	for (uint32_t i = 0; i < n; i++) {
		cr_assert(fired[i] >= t && fired[i] < t + 2500, "a timer due later fired");
	}
	cr_assert_eq(w->num_armed, N - 2500);
	n = advance(w, 100000 * TICK, fired, N);
	cr_assert_eq(n, N - 2500, "the rest fire after a second stall: %u", n);
	cr_assert_eq(w->num_armed, 0);
	free(fired);
	free(t);
	free(w);
}

Test(timer, time_going_backwards_fires_nothing)
{
	struct stls_timer_wheel *w = new_wheel(10000);
	struct stls_timer t = { 0 };
	stls_timer_arm(w, &t, 100);
	cr_assert_eq(advance_none(w, 5000), 0);
	cr_assert_eq(w->now, 100, "the wheel does not go back");
	struct stls_timer *fired[1];
	cr_assert_eq(advance(w, 10100, fired, 1), 1);
	free(w);
}

Test(timer, wait_ms)
{
	struct stls_timer_wheel *w = new_wheel(0);
	cr_assert_eq(stls_timer_wheel_wait_ms(w, 0), 100);
	cr_assert_eq(stls_timer_wheel_wait_ms(w, 30), 70);
	cr_assert_eq(stls_timer_wheel_wait_ms(w, 100), 0, "the next tick is due");
	cr_assert_eq(stls_timer_wheel_wait_ms(w, 150), 0, "overdue");
	cr_assert_eq(advance_none(w, 250), 0);
	cr_assert_eq(stls_timer_wheel_wait_ms(w, 250), 50);
	free(w);
}

Test(timer, never_fires_early_when_armed_late_in_a_tick)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer t = { 0 };
	cr_assert_eq(advance_none(w, 199), 0);
	stls_timer_arm(w, &t, 100); /* due at 299 ms */
	cr_assert_eq(advance_none(w, 200), 0, "fired 99 ms early");
	cr_assert_eq(advance_none(w, 299), 0, "fired 0..1 ms early");
	struct stls_timer *fired[1];
	cr_assert_eq(advance(w, 300, fired, 1), 1, "due at the first tick after 299 ms");
	free(w);
}

/* A loop that wakes late in a tick sets the wheel's time before it handles the event: a timer
 * armed then counts from the event, not from the previous advance. */
Test(timer, armed_after_set_now_counts_from_then)
{
	struct stls_timer_wheel *w = new_wheel(0);
	struct stls_timer t = { 0 };
	cr_assert_eq(advance_none(w, 1000), 0);
	stls_timer_wheel_set_now(w, 1090); /* woke 90 ms into the tick */
	stls_timer_arm(w, &t, 1000);	   /* due at 2090 ms */
	cr_assert_eq(advance_none(w, 2000), 0, "fired 90 ms early: counted from the previous advance");
	cr_assert_eq(advance_none(w, 2089), 0);
	struct stls_timer *fired[1];
	cr_assert_eq(advance(w, 2100, fired, 1), 1, "due at the first tick after 2090 ms");
	/* Time never goes back. */
	stls_timer_wheel_set_now(w, 50);
	stls_timer_arm(w, &t, 100);
	cr_assert_eq(advance_none(w, 2189), 0, "armed from a time that went back");
	cr_assert_eq(advance(w, 2200, fired, 1), 1);
	free(w);
}
