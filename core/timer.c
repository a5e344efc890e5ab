#include "core/timer.h"

#include <time.h>

#include "core/err.h"

static uint64_t ms_to_tick(uint64_t ms)
{
	return ms / STLS_TIMER_TICK_MS;
}

void stls_timer_wheel_init(struct stls_timer_wheel *w, uint64_t now_ms)
{
	for (unsigned i = 0; i < STLS_TIMER_SLOTS; i++)
		w->slots[i].next = w->slots[i].prev = &w->slots[i];
	w->now = ms_to_tick(now_ms);
	w->now_ms = now_ms;
	w->num_armed = 0;
}

static void unlink_timer(struct stls_timer *t)
{
	t->prev->next = t->next;
	t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

void stls_timer_arm(struct stls_timer_wheel *w, struct stls_timer *t, uint64_t ms)
{
	if (stls_timer_armed(t))
		unlink_timer(t);
	else
		w->num_armed++;
	/* The first tick boundary at or after the deadline, counted from the wheel's time (not the
	 * start of its tick): never early, at most one tick late. */
	uint64_t due = (w->now_ms + ms + STLS_TIMER_TICK_MS - 1) / STLS_TIMER_TICK_MS;
	t->expires = due > w->now ? due : w->now + 1;
	struct stls_timer *head = &w->slots[t->expires % STLS_TIMER_SLOTS];
	t->next = head;
	t->prev = head->prev;
	head->prev->next = t;
	head->prev = t;
}

void stls_timer_wheel_set_now(struct stls_timer_wheel *w, uint64_t now_ms)
{
	if (now_ms > w->now_ms)
		w->now_ms = now_ms;
}

void stls_timer_disarm(struct stls_timer_wheel *w, struct stls_timer *t)
{
	if (!stls_timer_armed(t))
		return;
	unlink_timer(t);
	STLS_BUG_ON(w->num_armed == 0);
	w->num_armed--;
}

uint32_t stls_timer_wheel_advance(struct stls_timer_wheel *w, struct stls_timer **out_fired, uint64_t now_ms)
{
	uint64_t target = ms_to_tick(now_ms);
	if (now_ms > w->now_ms)
		w->now_ms = now_ms;
	struct stls_timer *fired = NULL;
	uint32_t count = 0;
	/* After a long stall visit each slot once rather than every missed tick. */
	if (target > w->now + STLS_TIMER_SLOTS)
		w->now = target - STLS_TIMER_SLOTS;
	while (w->now < target) {
		w->now++;
		struct stls_timer *head = &w->slots[w->now % STLS_TIMER_SLOTS];
		struct stls_timer *t = head->next;
		while (t != head) {
			struct stls_timer *next = t->next;
			if (t->expires <= target) {
				unlink_timer(t);
				w->num_armed--;
				t->next = fired;
				fired = t;
				count++;
			}
			t = next;
		}
	}
	*out_fired = fired;
	return count;
}

uint64_t stls_timer_wheel_wait_ms(const struct stls_timer_wheel *w, uint64_t now_ms)
{
	uint64_t next = (w->now + 1) * STLS_TIMER_TICK_MS;
	return next > now_ms ? next - now_ms : 0;
}

uint64_t stls_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
