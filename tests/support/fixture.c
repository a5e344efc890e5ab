#include "tests/support/fixture.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool stls_fixture_init(struct stls_fixture *f, const char *tag)
{
	memset(f, 0, sizeof(*f));
	if (!stls_proc_tmpdir(f->dir, sizeof(f->dir), tag))
		return false;
	snprintf(f->maildir, sizeof(f->maildir), "%s/mail", f->dir);
	snprintf(f->backend_log, sizeof(f->backend_log), "%s/backend.log", f->dir);
	snprintf(f->proxy_log, sizeof(f->proxy_log), "%s/starttlsd.log", f->dir);
	snprintf(f->proxy_out, sizeof(f->proxy_out), "%s/starttlsd.out", f->dir);
	f->backend_port = stls_proc_free_port();
	do
		f->proxy_port = stls_proc_free_port();
	while (f->proxy_port == f->backend_port);
	return f->backend_port && f->proxy_port;
}

enum { MAX_ARGS = 64 };

static void add_extra(char **argv, unsigned *argc, const char *const extra[])
{
	for (unsigned i = 0; extra && extra[i] && *argc < MAX_ARGS - 1; i++)
		argv[(*argc)++] = (char *)extra[i];
	argv[*argc] = NULL;
}

bool stls_fixture_start_backend(struct stls_fixture *f, const char *const extra[])
{
	char script[512], listen[64];
	stls_proc_repo_path("tools/demo-backend", script, sizeof(script));
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", f->backend_port);
	char *argv[MAX_ARGS] = { "python3",  script,  "--listen",     listen,	    "--maildir",
				 f->maildir, "--log", f->backend_log, "--hostname", "backend.test" };
	unsigned argc = 10;
	add_extra(argv, &argc, extra);
	if (!stls_proc_spawn(&f->backend, f->backend_log, argv))
		return false;
	return stls_proc_wait_port(f->backend_port, 10000);
}

bool stls_demo_start(struct stls_proc *p, const char *listen, const char *maildir, const char *log,
		     const char *const extra[])
{
	char script[512], ready[256];
	stls_proc_repo_path("tools/demo-backend", script, sizeof(script));
	snprintf(ready, sizeof(ready), "%s.ready", log);
	unlink(ready);
	char *argv[MAX_ARGS] = { "python3",	  script,	  "--listen", (char *)listen, "--maildir",
				 (char *)maildir, "--ready-file", ready,      "--log",	      (char *)log };
	unsigned argc = 10;
	add_extra(argv, &argc, extra);
	return stls_proc_spawn(p, log, argv) && stls_proc_wait_file_contains(ready, ":", 10000);
}

bool stls_fixture_spawn_proxy(struct stls_fixture *f, const char *const extra[])
{
	char daemon[512], listen[64], backend[64];
	if (f->daemon[0])
		snprintf(daemon, sizeof(daemon), "%s", f->daemon);
	else
		stls_proc_build_path("starttlsd", daemon, sizeof(daemon));
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", f->proxy_port);
	snprintf(backend, sizeof(backend), "127.0.0.1:%u", f->backend_port);
	/* A short grace period: teardown's SIGTERM should not wait on a session a test left open. */
	char *argv[MAX_ARGS] = { daemon,    "--listen",		listen,	     "--backend", backend,
				 "--log",   f->proxy_log,	"--workers", "2",	  "--hostname",
				 "mx.test", "--shutdown-grace", "1" };
	unsigned argc = 13;
	add_extra(argv, &argc, extra);
	return stls_proc_spawn(&f->proxy, f->proxy_out, argv);
}

bool stls_fixture_start_proxy(struct stls_fixture *f, const char *const extra[])
{
	if (!stls_fixture_spawn_proxy(f, extra))
		return false;
	if (stls_proc_wait_file_contains(f->proxy_log, "listening on", 10000) &&
	    stls_proc_wait_port(f->proxy_port, 10000))
		return true;
	char *out = stls_proc_read_file(f->proxy_out, NULL);
	fprintf(stderr, "starttlsd did not start on port %u; its output:\n%s\n", f->proxy_port, out ? out : "(none)");
	free(out);
	return false;
}

int stls_fixture_cleanup(struct stls_fixture *f)
{
	int code = stls_proc_stop(&f->proxy, SIGTERM, 10000);
	stls_proc_stop(&f->backend, SIGTERM, 5000);
	if (f->proxy.pid > 0) {
		char *out = stls_proc_read_file(f->proxy_out, NULL);
		if (out && (strstr(out, "Sanitizer") || strstr(out, "runtime error:"))) {
			fprintf(stderr, "starttlsd's output (%s):\n%s\n", f->proxy_out, out);
			code = -2;
		}
		free(out);
	}
	if (f->dir[0] && !getenv("STLS_KEEP_TMP"))
		stls_proc_rmtree(f->dir);
	f->dir[0] = '\0';
	return code;
}

bool stls_fixture_pki(struct stls_fixture *f, char *out_dir, size_t out_len)
{
	char script[512], out[4096];
	snprintf(out_dir, out_len, "%s/pki", f->dir);
	stls_proc_repo_path("tests/support/make-pki", script, sizeof(script));
	char *argv[] = { "bash", script, out_dir, "mx.test", NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 60000);
	if (code != 0)
		fprintf(stderr, "make-pki failed (%d): %s\n", code, out);
	return code == 0;
}

int stls_fixture_s_client(struct stls_fixture *f, const char *const args[], const char *input, char *out,
			  size_t out_len)
{
	char connect[64];
	snprintf(connect, sizeof(connect), "127.0.0.1:%u", f->proxy_port);
	/* -ign_eof: read until the server closes, so every reply (and the tickets) arrive. */
	char *argv[MAX_ARGS] = { "openssl", "s_client", "-starttls", "smtp", "-connect", connect, "-crlf", "-ign_eof" };
	unsigned argc = 8;
	add_extra(argv, &argc, args);
	return stls_proc_run(argv, input, input ? strlen(input) : 0, out, out_len, 30000);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted .eml names; the demo backend names files <unix-time-ns>-<seq>, so order is arrival. */
static unsigned list_messages(const char *maildir, char ***out_names)
{
	DIR *d = opendir(maildir);
	unsigned n = 0, cap = 0;
	char **names = NULL;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".eml") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = realloc(names, cap * sizeof(*names));
		}
		names[n++] = strdup(e->d_name);
	}
	if (d)
		closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	*out_names = names;
	return n;
}

static void free_names(char **names, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

unsigned stls_maildir_count(const char *maildir)
{
	char **names;
	unsigned n = list_messages(maildir, &names);
	free_names(names, n);
	return n;
}

bool stls_maildir_wait(const char *maildir, unsigned n, int timeout_ms)
{
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	do {
		if (stls_maildir_count(maildir) >= n)
			return true;
		stls_proc_sleep_ms(20);
	} while (stls_proc_now_ms() < end);
	return false;
}

char *stls_maildir_message(const char *maildir, unsigned index, bool envelope, size_t *out_len)
{
	char **names;
	unsigned n = list_messages(maildir, &names);
	char *text = NULL;
	if (index < n) {
		char path[512];
		size_t len = strlen(names[index]) - 4;
		snprintf(path, sizeof(path), "%s/%.*s%s", maildir, (int)len, names[index], envelope ? ".json" : ".eml");
		text = stls_proc_read_file(path, out_len);
	}
	free_names(names, n);
	return text;
}

unsigned stls_fixture_num_messages(struct stls_fixture *f)
{
	return stls_maildir_count(f->maildir);
}

bool stls_fixture_wait_messages(struct stls_fixture *f, unsigned n, int timeout_ms)
{
	return stls_maildir_wait(f->maildir, n, timeout_ms);
}

char *stls_fixture_message(struct stls_fixture *f, unsigned index, bool envelope, size_t *out_len)
{
	return stls_maildir_message(f->maildir, index, envelope, out_len);
}
