/* Test support: a demo backend and a starttlsd in front of it, in a folder of their own. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/support/proc.h"

struct stls_fixture {
	char dir[128];
	char maildir[192];
	char backend_log[192];
	char proxy_log[192];
	char proxy_out[192]; /* the daemon's stdout and stderr */
	char daemon[256];    /* the starttlsd binary to run; empty: the test binary's build */
	uint16_t backend_port;
	uint16_t proxy_port;
	struct stls_proc backend;
	struct stls_proc proxy;
};

/* Makes the folder and picks ports. */
bool stls_fixture_init(struct stls_fixture *f, const char *tag);

/* Starts the demo backend with extra arguments (NULL-terminated list, may be NULL) and waits
 * until it listens. */
bool stls_fixture_start_backend(struct stls_fixture *f, const char *const extra[]);

/* Starts another demo backend on listen ("ADDR:PORT", any loopback address) that stores into
 * maildir and logs to log, with extra arguments (NULL-terminated, may be NULL); waits until it
 * listens. Stop it with stls_proc_stop. */
bool stls_demo_start(struct stls_proc *p, const char *listen, const char *maildir, const char *log,
		     const char *const extra[]);

/* Starts starttlsd as stls_fixture_start_proxy does, without waiting for anything. */
bool stls_fixture_spawn_proxy(struct stls_fixture *f, const char *const extra[]);

/* Starts starttlsd on 127.0.0.1:proxy_port in front of the backend port (running or not), with
 * --workers 2 --hostname mx.test and extra arguments, and waits until it listens. */
bool stls_fixture_start_proxy(struct stls_fixture *f, const char *const extra[]);

/* Stops both (SIGTERM, then SIGKILL) and removes the folder. Returns the proxy's exit code, or -2
 * when its output holds a sanitizer report (a leak or an error seen only at exit), so a suite's
 * test can insist on a clean exit. Calling it again returns the same code. */
int stls_fixture_cleanup(struct stls_fixture *f);

/* Makes a test PKI in <dir>/pki with tests/support/make-pki (its header lists the files) for the
 * host name mx.test; *out_dir gets the folder. */
bool stls_fixture_pki(struct stls_fixture *f, char *out_dir, size_t out_len);

/* Runs `openssl s_client -starttls smtp` against the proxy with extra arguments (NULL-terminated)
 * and feeds it input (lines ending in LF; -crlf turns them into CRLF). Its output (stdout and
 * stderr) lands in out. Returns its exit code, -1 on timeout. */
int stls_fixture_s_client(struct stls_fixture *f, const char *const args[], const char *input, char *out,
			  size_t out_len);

/* Messages the demo backend stored, in arrival order. */
unsigned stls_fixture_num_messages(struct stls_fixture *f);

/* Waits up to timeout_ms until at least n messages are stored. */
bool stls_fixture_wait_messages(struct stls_fixture *f, unsigned n, int timeout_ms);

/* The index-th stored message (arrival order); .json sidecar with envelope when envelope is
 * true. Free with free(). NULL if there is none. */
char *stls_fixture_message(struct stls_fixture *f, unsigned index, bool envelope, size_t *out_len);

/* The same for any demo backend's mail folder. */
unsigned stls_maildir_count(const char *maildir);
bool stls_maildir_wait(const char *maildir, unsigned n, int timeout_ms);
char *stls_maildir_message(const char *maildir, unsigned index, bool envelope, size_t *out_len);
