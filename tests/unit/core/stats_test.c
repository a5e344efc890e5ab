#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"
#include "core/worker.h"

static struct stls_worker *two_workers(void)
{
	struct stls_worker *w = aligned_alloc(64, 2 * sizeof(*w));
	cr_assert_not_null(w);
	memset(w, 0, 2 * sizeof(*w));
	atomic_store(&w[0].stats.accepted, 7);
	atomic_store(&w[1].stats.accepted, 5);
	atomic_store(&w[1].stats.tls_success, 3);
	atomic_store(&w[0].stats.sessions_active, 2);
	return w;
}

Test(stats_page, metrics_list_every_worker_with_help_and_type)
{
	struct stls_worker *w = two_workers();
	struct stls_stats_view v = { .workers = w,
				     .num_workers = 2,
				     .snapshot_gen = 9,
				     .backend_up = true,
				     .reloads_committed = 1,
				     .reloads_refused = 2,
				     .uptime_s = 60 };
	static char page[65536];
	size_t len = stls_stats_render_metrics(page, sizeof(page), &v);
	cr_assert_gt(len, 0);
	cr_assert_eq(strlen(page), len);
	cr_assert(strstr(page, "# TYPE starttlsd_connections_accepted_total counter\n"), "%s", page);
	cr_assert(strstr(page, "starttlsd_connections_accepted_total{worker=\"0\"} 7\n"), "%s", page);
	cr_assert(strstr(page, "starttlsd_connections_accepted_total{worker=\"1\"} 5\n"), "%s", page);
	cr_assert(strstr(page, "starttlsd_tls_handshakes_total{worker=\"1\"} 3\n"), "%s", page);
	cr_assert(strstr(page, "# TYPE starttlsd_sessions gauge\nstarttlsd_sessions{worker=\"0\"} 2\n"), "%s", page);
	cr_assert(strstr(page, "starttlsd_config_generation 9\n"), "%s", page);
	cr_assert(strstr(page, "starttlsd_reloads_total{result=\"refused\"} 2\n"), "%s", page);
	cr_assert(strstr(page, "starttlsd_backend_up 1\n"), "%s", page);
	/* Every sample line names a metric that has its HELP and TYPE lines before it. */
	for (char *line = page; *line; line = strchr(line, '\n') + 1) {
		if (*line == '#')
			continue;
		char name[128];
		size_t n = strcspn(line, "{ ");
		cr_assert_lt(n, sizeof(name));
		memcpy(name, line, n);
		name[n] = '\0';
		char help[160];
		snprintf(help, sizeof(help), "# HELP %s ", name);
		char *h = strstr(page, help);
		cr_assert(h && h < line, "no HELP before %s", name);
	}
	/* A page that does not fit is refused whole, not cut. */
	cr_assert_eq(stls_stats_render_metrics(page, 200, &v), 0);
	cr_assert_eq(stls_stats_render_status(page, 20, &v), 0);
	cr_assert_gt(stls_stats_render_status(page, sizeof(page), &v), 0);
	cr_assert(strstr(page, "accepted: 12\n") && strstr(page, "sessions: 2\n"), "%s", page);
	free(w);
}
