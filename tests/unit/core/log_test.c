/* Unit tests for core/log.c: the logger writes the lines of all threads as one time line.
 *
 * Each thread logs on a ring of its own and the logger drains them every few milliseconds, so
 * without merging, a pass would write one thread's lines of the last milliseconds, then the
 * next thread's, and the file's timestamps would go back and forth. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

enum { NUM_THREADS = 4, LINES_PER_THREAD = 40, PAUSE_US = 700 };

static void *log_lines(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	if (stls_log_attach_thread() != STLS_OK)
		return (void *)1;
	for (unsigned n = 0; n < LINES_PER_THREAD; n++) {
		stls_log_info("thread %u line %u", t, n);
		struct timespec pause = { 0, PAUSE_US * 1000 };
		nanosleep(&pause, NULL);
	}
	return NULL;
}

Test(log, lines_of_all_threads_are_written_in_time_order)
{
	char path[] = "/tmp/stls-log-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(stls_log_start(path), STLS_OK);
	pthread_t threads[NUM_THREADS];
	for (unsigned t = 0; t < NUM_THREADS; t++)
		cr_assert_eq(pthread_create(&threads[t], NULL, log_lines, (void *)(uintptr_t)t), 0);
	for (unsigned t = 0; t < NUM_THREADS; t++) {
		void *ret;
		cr_assert_eq(pthread_join(threads[t], &ret), 0);
		cr_assert_null(ret, "thread %u could not attach to the log", t);
	}
	stls_log_stop();

	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	char line[256], prev_stamp[32] = "", prev_line[256] = "";
	unsigned next[NUM_THREADS] = { 0 }, num_lines = 0, num_back = 0;
	char first_back[600] = "";
	while (fgets(line, sizeof(line), f)) {
		/* 2026-11-29T11:49:57.123Z Info: thread 2 line 17 */
		unsigned t, n;
		cr_assert(strlen(line) > 25 && sscanf(line + 25, "Info: thread %u line %u", &t, &n) == 2, "%s", line);
		cr_assert_lt(t, NUM_THREADS);
		cr_assert_eq(n, next[t], "thread %u: line %u came where %u was due", t, n, next[t]);
		next[t]++;
		num_lines++;
		char stamp[32];
		snprintf(stamp, sizeof(stamp), "%.24s", line);
		if (strcmp(stamp, prev_stamp) < 0 && num_back++ == 0)
			snprintf(first_back, sizeof(first_back), "%s%s", prev_line, line);
		snprintf(prev_stamp, sizeof(prev_stamp), "%s", stamp);
		snprintf(prev_line, sizeof(prev_line), "%s", line);
	}
	fclose(f);
	unlink(path);
	cr_assert_eq(num_lines, NUM_THREADS * LINES_PER_THREAD);
	cr_assert_eq(num_back, 0, "%u lines are older than the line before them, first:\n%s", num_back, first_back);
}
