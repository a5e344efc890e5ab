#include "tests/support/postfix.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/proc.h"

enum { MAX_ARGS = 64, OUT_MAX = 1 << 20 };

static char *script_path(char *out, size_t out_len)
{
	stls_proc_repo_path("tests/support/postfix-instance", out, out_len);
	return out;
}

/* The guard waits for EOF on a pipe whose only write end this process holds (close-on-exec, so no
 * daemon inherits it), then stops the instance. It runs in a session of its own so that a ^C on
 * the terminal does not take it down with the test. */
static bool start_guard(struct stls_postfix *p, const char *parent)
{
	char script[512], log[256];
	script_path(script, sizeof(script));
	snprintf(log, sizeof(log), "%s/postfix-guard.log", parent);
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int fds[2];
	if (logfd < 0 || pipe2(fds, O_CLOEXEC) != 0)
		return false;
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		close(fds[1]);
		char c;
		while (read(fds[0], &c, 1) != 0 && errno == EINTR) {
		}
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		char *argv[] = { "/bin/bash", script, "stop", p->dir, NULL };
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[0]);
	close(logfd);
	p->guard_pid = pid;
	p->guard_fd = fds[1];
	return true;
}

static void stop_guard(struct stls_postfix *p)
{
	if (p->guard_pid > 0) {
		kill(p->guard_pid, SIGKILL);
		waitpid(p->guard_pid, NULL, 0);
	}
	if (p->guard_fd > 0)
		close(p->guard_fd);
	p->guard_pid = p->guard_fd = -1;
}

bool stls_postfix_start(struct stls_postfix *p, const char *parent, uint16_t port, const char *relay,
			const char *const settings[], char *out, size_t out_len)
{
	char script[512], port_text[16];
	memset(p, 0, sizeof(*p));
	p->guard_pid = p->guard_fd = -1;
	p->port = port;
	snprintf(p->dir, sizeof(p->dir), "%s/postfix", parent);
	if (!start_guard(p, parent)) {
		snprintf(out, out_len, "cannot start the guard: %s", strerror(errno));
		return false;
	}
	snprintf(port_text, sizeof(port_text), "%u", port);
	char *argv[MAX_ARGS] = { "bash",	 script_path(script, sizeof(script)),
				 "start",	 p->dir,
				 "--smtpd-port", port_text,
				 "--relay",	 (char *)relay };
	unsigned argc = 8;
	for (unsigned i = 0; settings && settings[i] && argc < MAX_ARGS - 3; i++) {
		argv[argc++] = "-o";
		argv[argc++] = (char *)settings[i];
	}
	argv[argc] = NULL;
	return stls_proc_run(argv, NULL, 0, out, out_len, 45000) == 0;
}

int stls_postfix_stop(struct stls_postfix *p, char *out, size_t out_len)
{
	char script[512];
	stop_guard(p);
	if (!p->dir[0])
		return 0;
	char *argv[] = { "bash", script_path(script, sizeof(script)), "stop", p->dir, NULL };
	int code = stls_proc_run(argv, NULL, 0, out, out_len, 30000);
	p->dir[0] = '\0';
	return code;
}

static char *run_script(struct stls_postfix *p, const char *what)
{
	char script[512];
	char *out = malloc(OUT_MAX);
	if (!out)
		return NULL;
	char *argv[] = { "bash", script_path(script, sizeof(script)), (char *)what, p->dir, NULL };
	if (stls_proc_run(argv, NULL, 0, out, OUT_MAX, 10000) != 0) {
		fprintf(stderr, "postfix-instance %s %s failed: %s\n", what, p->dir, out);
		free(out);
		return NULL;
	}
	return out;
}

char *stls_postfix_log(struct stls_postfix *p)
{
	return run_script(p, "log");
}

char *stls_postfix_queue(struct stls_postfix *p)
{
	return run_script(p, "queue");
}

bool stls_postfix_flush(struct stls_postfix *p)
{
	char *out = run_script(p, "flush");
	free(out);
	return out != NULL;
}

bool stls_log_has_line(const char *text, struct stls_log_want w)
{
	for (const char *p = text; (p = strstr(p, w.has)); p += strlen(w.has)) {
		const char *eol = strchr(p, '\n');
		const char *also = w.also ? strstr(p + strlen(w.has), w.also) : p;
		if (also && (!eol || also < eol))
			return true;
	}
	return false;
}

const struct stls_log_want *stls_postfix_wait_log(struct stls_postfix *p, const struct stls_log_want wants[],
						  int timeout_ms, char **log_out)
{
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		char *log = stls_postfix_log(p);
		const struct stls_log_want *missing = NULL;
		for (unsigned i = 0; wants[i].has && !missing; i++)
			if (!log || !stls_log_has_line(log, wants[i]))
				missing = &wants[i];
		if (!missing || stls_proc_now_ms() >= end) {
			if (missing && log_out)
				*log_out = log;
			else
				free(log);
			return missing;
		}
		free(log);
		stls_proc_sleep_ms(200);
	}
}
