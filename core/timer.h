/* A per-worker hashed timer wheel.
 *
 * SMTP timeouts are seconds to minutes long and reset on almost every read, so arming and
 * disarming must be O(1) and allocation-free: a timer is an intrusive list node inside the
 * session. Time moves in ticks of STLS_TIMER_TICK_MS; a timer further out than one turn of the
 * wheel waits in its slot for the right turn. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { STLS_TIMER_TICK_MS = 100, STLS_TIMER_SLOTS = 1024 };

struct stls_timer {
	struct stls_timer *next;
	struct stls_timer *prev;
	uint64_t expires; /* tick at which it fires */
};

struct stls_timer_wheel {
	struct stls_timer slots[STLS_TIMER_SLOTS]; /* list heads */
	uint64_t now;				   /* last tick processed */
	uint64_t now_ms;			   /* the time timers are armed from */
	uint32_t num_armed;
};

/* Prepares a wheel whose current time is now_ms (a monotonic clock in milliseconds). */
void stls_timer_wheel_init(struct stls_timer_wheel *w, uint64_t now_ms);

/* True if t is armed. An all-zero timer is valid and disarmed; so is a fired one, even while its
 * ->next still links it into the list stls_timer_wheel_advance returned. */
static inline bool stls_timer_armed(const struct stls_timer *t)
{
	return t->prev != NULL;
}

/* Arms (or re-arms) t to fire ms milliseconds after the wheel's time (the last advance, or the
 * last stls_timer_wheel_set_now): never earlier, at most one tick later, and at the next tick at
 * the soonest. */
void stls_timer_arm(struct stls_timer_wheel *w, struct stls_timer *t, uint64_t ms);

/* Moves the time timers are armed from to now_ms without firing anything: an event loop calls it
 * when it wakes, before it handles what woke it, so that a timeout armed then counts from the
 * event, not from the previous turn, up to a tick earlier. Time never goes back. */
void stls_timer_wheel_set_now(struct stls_timer_wheel *w, uint64_t now_ms);

/* Disarms t; harmless if it is not armed. */
void stls_timer_disarm(struct stls_timer_wheel *w, struct stls_timer *t);

/* Advances the wheel to now_ms and moves every timer that fired onto the singly linked list
 * *out_fired (through ->next). They are disarmed and may be armed again at once. Returns the
 * count. */
uint32_t stls_timer_wheel_advance(struct stls_timer_wheel *w, struct stls_timer **out_fired, uint64_t now_ms);

/* CLOCK_MONOTONIC in milliseconds (the threads outside the workers; a worker reads the coarse
 * clock once per loop turn instead). */
uint64_t stls_clock_ms(void);

/* Milliseconds from now_ms until the next tick boundary (for the event loop's wait). */
uint64_t stls_timer_wheel_wait_ms(const struct stls_timer_wheel *w, uint64_t now_ms);
