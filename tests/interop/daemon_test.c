/* Interop: the daemon as a program: its command line, --check, --help against the README,
 * start-up without io_uring, the log's shape, and a graceful SIGTERM. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

TestSuite(daemon, .timeout = 60);

static char daemon_path[512];

static int run_daemon(char *out, size_t out_len, const char *const args[])
{
	char *argv[32] = { (char *)stls_proc_build_path("starttlsd", daemon_path, sizeof(daemon_path)) };
	unsigned n = 1;
	for (unsigned i = 0; args[i] && n < 31; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return stls_proc_run(argv, NULL, 0, out, out_len, 20000);
}

static unsigned count_lines(const char *text)
{
	unsigned n = 0;
	for (const char *p = text; *p; p++)
		n += *p == '\n';
	return n;
}

Test(daemon, help_matches_the_readme)
{
	static char out[16384];
	const char *args[] = { "--help", NULL };
	cr_assert_eq(run_daemon(out, sizeof(out), args), 0);
	char path[512];
	char *readme = stls_proc_read_file(stls_proc_repo_path("README.md", path, sizeof(path)), NULL);
	cr_assert_not_null(readme);
	const char *begin = strstr(readme, "<!-- help:begin -->\n```text\n");
	const char *end = strstr(readme, "```\n<!-- help:end -->");
	cr_assert(begin && end && end > begin, "README.md lacks the help block");
	begin += strlen("<!-- help:begin -->\n```text\n");
	size_t len = (size_t)(end - begin);
	cr_assert(len == strlen(out) && memcmp(begin, out, len) == 0,
		  "README.md's flag list differs from `starttlsd --help`; paste the output between the markers:\n%s",
		  out);
	free(readme);
}

Test(daemon, version_prints_the_version)
{
	char out[256];
	const char *args[] = { "--version", NULL };
	cr_assert_eq(run_daemon(out, sizeof(out), args), 0);
	cr_assert(strncmp(out, "starttlsd ", 10) == 0, "%s", out);
}

Test(daemon, bad_flags_exit_2_with_one_line_naming_the_flag)
{
	static const struct {
		const char *args[4];
		const char *needle;
	} cases[] = {
		{ { "--bogus", NULL }, "--bogus" },
		{ { "--listen", "nonsense", NULL }, "--listen nonsense" },
		{ { "--listen", "127.0.0.1:99999", NULL }, "--listen" },
		{ { "--max-sessions", "0", NULL }, "--max-sessions 0" },
		{ { "--workers", "-1", NULL }, "--workers" },
		{ { "--command-timeout", "5x", NULL }, "--command-timeout" },
		{ { "--hostname", "bad name!", NULL }, "--hostname" },
		{ { "--backend", "nohost", NULL }, "--backend" },
		{ { "--recv-buffers", "100", NULL }, "--recv-buffers" },
		{ { "--log", NULL }, "--log" },
		{ { "stray", NULL }, "stray" },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[1024];
		int code = run_daemon(out, sizeof(out), cases[i].args);
		cr_assert_eq(code, 2, "case %u: exit %d: %s", i, code, out);
		cr_assert_eq(count_lines(out), 1, "case %u: not one line: %s", i, out);
		cr_assert(strstr(out, cases[i].needle), "case %u: the message does not name %s: %s", i, cases[i].needle,
			  out);
	}
}

Test(daemon, check_prints_the_effective_settings)
{
	char dir[128], flagfile[256], arg[260], out[8192];
	cr_assert(stls_proc_tmpdir(dir, sizeof(dir), "check"));
	snprintf(flagfile, sizeof(flagfile), "%s/flags", dir);
	const char *text = "# flags for the test\n--listen 127.0.0.1:2999\n--listen [::1]:2999   # and IPv6\n\n"
			   "--command-timeout 2m\n--hostname mx.example.test\n";
	cr_assert(stls_proc_write_file(flagfile, text, strlen(text)));
	snprintf(arg, sizeof(arg), "@%s", flagfile);
	const char *args[] = { arg, "--backend", "127.0.0.1:2626", "--check", NULL };
	int code = run_daemon(out, sizeof(out), args);
	cr_assert_eq(code, 0, "%s", out);
	cr_assert(strstr(out, "--listen 127.0.0.1:2999\n--listen [::1]:2999\n"), "%s", out);
	cr_assert(strstr(out, "--command-timeout 120\n"), "%s", out);
	cr_assert(strstr(out, "--hostname mx.example.test\n"), "%s", out);
	cr_assert(strstr(out, "--max-text-line 1000\n"), "defaults are shown too: %s", out);
	cr_assert(strstr(out, "configuration is valid"), "%s", out);

	const char *bad[] = { "--backend", "no-such-host.invalid:25", "--check", NULL };
	code = run_daemon(out, sizeof(out), bad);
	cr_assert_eq(code, 1, "%s", out);
	cr_assert(strstr(out, "no-such-host.invalid"), "%s", out);
	stls_proc_rmtree(dir);
}

/* A child whose io_uring_setup fails with ENOSYS, as under a container's seccomp profile. */
static int run_without_io_uring(char *out, size_t out_len)
{
	char dir[128], log[256];
	cr_assert(stls_proc_tmpdir(dir, sizeof(dir), "nouring"));
	snprintf(log, sizeof(log), "%s/out", dir);
	stls_proc_build_path("starttlsd", daemon_path, sizeof(daemon_path));
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sock_filter filter[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
		FILE *fp = freopen(log, "w", stderr);
		(void)fp;
		dup2(2, 1);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
			_exit(99);
		execl(daemon_path, daemon_path, "--listen", "127.0.0.1:1", "--log", "-", (char *)NULL);
		_exit(98);
	}
	struct stls_proc p = { .pid = pid };
	int code = stls_proc_wait(&p, 20000);
	char *text = stls_proc_read_file(log, NULL);
	snprintf(out, out_len, "%s", text ? text : "");
	free(text);
	stls_proc_rmtree(dir);
	return code;
}

Test(daemon, without_io_uring_says_so_and_exits_1)
{
	char out[2048];
	int code = run_without_io_uring(out, sizeof(out));
	cr_assert_eq(code, 1, "exit %d: %s", code, out);
	cr_assert(strstr(out, "io_uring is not available"), "%s", out);
}

Test(daemon, log_lines_have_the_appliance_shape)
{
	struct stls_fixture fx;
	cr_assert(stls_fixture_init(&fx, "daemonlog"));
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	cr_assert(stls_fixture_start_proxy(&fx, NULL));
	struct stls_smtp_client c;
	cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220);
	cr_assert(strstr(c.last, "220 mx.test ESMTP"), "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c,
					 "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"));
	static const int codes[] = { 250, 250, 250, 354 };
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(stls_smtp_client_reply(&c), codes[i], "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "Subject: log\r\n\r\nx\r\n.\r\nQUIT\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250);
	cr_assert_eq(stls_smtp_client_reply(&c), 221);
	stls_smtp_client_close(&c);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "Message finished MID", 5000));
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	unsigned long long icid = 0, mid = 0;
	const char *p = strstr(log, "Info: Start MID ");
	cr_assert(p && sscanf(p, "Info: Start MID %llu ICID %llu", &mid, &icid) == 2, "%s", log);
	char want[256];
	snprintf(want, sizeof(want), "Info: New SMTP ICID %llu interface mx.test (127.0.0.1) address 127.0.0.1 port ",
		 icid);
	cr_assert(strstr(log, want), "missing \"%s\" in:\n%s", want, log);
	const char *lines[] = { "Info: MID %llu From: <a@x.test>", "Info: MID %llu To: <b@y.test>",
				"Info: Message finished MID %llu done" };
	for (unsigned i = 0; i < 3; i++) {
		snprintf(want, sizeof(want), lines[i], mid);
		cr_assert(strstr(log, want), "missing \"%s\" in:\n%s", want, log);
	}
	snprintf(want, sizeof(want), "Info: ICID %llu close", icid);
	free(log);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, want, 5000), "missing \"%s\"", want);
	/* Lines start with an ISO 8601 UTC timestamp. */
	log = stls_proc_read_file(fx.proxy_log, NULL);
	int y, mo, d, h, mi, s, ms;
	cr_assert_eq(sscanf(log, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ Info: ", &y, &mo, &d, &h, &mi, &s, &ms), 7, "%s", log);
	free(log);
	stls_fixture_cleanup(&fx);
}

/* Worker i runs on the i-th CPU the process may use, and it is there from the moment it carries
 * its name: tools (bench/run, bench/scale, an administrator's ps -L) find the workers by name and
 * read their CPU. The threads are watched from the spawn on, so a worker seen named but not yet
 * pinned fails the test. */
Test(daemon, workers_are_pinned_before_they_are_named)
{
	cpu_set_t allowed;
	cr_assert_eq(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
	int cpus[CPU_SETSIZE];
	unsigned num_cpus = 0;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &allowed))
			cpus[num_cpus++] = c;
	cr_assert_gt(num_cpus, 0);
	struct stls_fixture fx;
	cr_assert(stls_fixture_init(&fx, "pinning"));
	cr_assert(stls_fixture_spawn_proxy(&fx, NULL)); /* two workers, no backend needed */
	char task_dir[64];
	snprintf(task_dir, sizeof(task_dir), "/proc/%d/task", (int)fx.proxy.pid);
	bool seen[2] = { false, false };
	unsigned sightings = 0;
	uint64_t deadline = stls_proc_now_ms() + 10000;
	while (!(seen[0] && seen[1]) && stls_proc_now_ms() < deadline) {
		DIR *d = opendir(task_dir);
		cr_assert_not_null(d, "starttlsd exited early");
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char path[128], comm[32] = "";
			snprintf(path, sizeof(path), "%s/%.16s/comm", task_dir, e->d_name);
			FILE *f = fopen(path, "r");
			if (!f)
				continue; /* the thread ended */
			bool named = fgets(comm, sizeof(comm), f) != NULL;
			fclose(f);
			unsigned index;
			char nl;
			if (!named || sscanf(comm, "stls-w%u%c", &index, &nl) != 2 || nl != '\n' || index > 1)
				continue;
			cpu_set_t set;
			if (sched_getaffinity((pid_t)atoi(e->d_name), sizeof(set), &set) != 0)
				continue;
			int want = cpus[index % num_cpus];
			cr_assert(CPU_COUNT(&set) == 1 && CPU_ISSET(want, &set),
				  "worker %u is named but runs on %d CPUs, not on CPU %d alone", index, CPU_COUNT(&set),
				  want);
			seen[index] = true;
			sightings++;
		}
		closedir(d);
		sched_yield();
	}
	cr_assert(seen[0] && seen[1], "the workers never appeared under their names");
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "listening on", 10000));
	cr_assert_eq(stls_fixture_cleanup(&fx), 0);
	cr_assert_gt(sightings, 0);
}

Test(daemon, sigterm_drains_then_421_then_exits_0)
{
	struct stls_fixture fx;
	cr_assert(stls_fixture_init(&fx, "sigterm"));
	cr_assert(stls_fixture_start_backend(&fx, NULL));
	/* The grace period holds the refusal probes and a whole transaction through the backend. */
	const char *extra[] = { "--shutdown-grace", "5", NULL };
	cr_assert(stls_fixture_start_proxy(&fx, extra));
	struct stls_smtp_client busy, idle;
	cr_assert(stls_smtp_client_connect(&busy, fx.proxy_port, 10000));
	cr_assert(stls_smtp_client_connect(&idle, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&busy), 220);
	cr_assert_eq(stls_smtp_client_reply(&idle), 220);
	cr_assert(stls_smtp_client_sends(&busy, "EHLO client.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&busy), 250);

	kill(fx.proxy.pid, SIGTERM);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "shutting down", 3000));
	/* New connections are refused once the listeners are closed. */
	bool refused = false;
	for (int i = 0; i < 50 && !refused; i++) {
		struct stls_smtp_client probe;
		refused = !stls_smtp_client_connect(&probe, fx.proxy_port, 1000);
		stls_smtp_client_close(&probe);
		if (!refused)
			stls_proc_sleep_ms(20);
	}
	cr_assert(refused, "still accepting after SIGTERM");
	/* A session in progress may still finish its mail within the grace period. */
	cr_assert(stls_smtp_client_sends(&busy, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"));
	static const int codes[] = { 250, 250, 354 };
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(stls_smtp_client_reply(&busy), codes[i], "%s", busy.last);
	cr_assert(stls_smtp_client_sends(&busy, "Subject: late\r\n\r\nx\r\n.\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&busy), 250, "%s", busy.last);
	/* When the grace period ends, every session still open is told and closed. */
	idle.timeout_ms = 10000;
	cr_assert_eq(stls_smtp_client_reply(&idle), 421, "%s", idle.last);
	cr_assert(strstr(idle.last, "4.3.2"), "%s", idle.last);
	busy.timeout_ms = 10000;
	cr_assert_eq(stls_smtp_client_reply(&busy), 421, "%s", busy.last);
	cr_assert_eq(stls_proc_wait(&fx.proxy, 10000), 0, "starttlsd did not exit 0");
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "Info: stopped", 1000));
	cr_assert_eq(stls_fixture_num_messages(&fx), 1);
	stls_smtp_client_close(&busy);
	stls_smtp_client_close(&idle);
	stls_fixture_cleanup(&fx);
}
