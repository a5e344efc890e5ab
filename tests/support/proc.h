/* Test support: child processes, ports, files. Never shipped.
 *
 * Every child gets PR_SET_PDEATHSIG, so a test process that dies on a failed assertion takes
 * its daemons with it; every wait is bounded. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stls_proc {
	pid_t pid;
	int status; /* wait status once reaped */
	bool reaped;
};

/* Starts argv[0] (searched in PATH) with stdin from /dev/null and stdout+stderr appended to
 * log_path. Returns false if it could not be started. */
bool stls_proc_spawn(struct stls_proc *p, const char *log_path, char *const argv[]);

/* Waits up to timeout_ms for the process to exit. Returns its exit code (128 + signal if killed by
 * one), or -1 if it is still running. */
int stls_proc_wait(struct stls_proc *p, int timeout_ms);

/* Sends sig, waits up to timeout_ms, then SIGKILLs. Returns what stls_proc_wait returns (after a
 * SIGKILL, 128 + 9). Harmless on a process that already ended or never started. */
int stls_proc_stop(struct stls_proc *p, int sig, int timeout_ms);

/* Runs argv to completion (at most timeout_ms, then SIGKILL), feeding input on stdin and
 * capturing stdout and stderr together into out (NUL-terminated, truncated). Returns the exit code,
 * or -1 on timeout or failure to start. */
int stls_proc_run(char *const argv[], const char *input, size_t input_len, char *out, size_t out_len, int timeout_ms);

/* A TCP port on 127.0.0.1 that was free a moment ago, reserved for this process: no other test
 * process gets it while this one lives. */
uint16_t stls_proc_free_port(void);
/* Reserves port for this process's lifetime; false if another process (or this one) has it. */
bool stls_proc_reserve_port(uint16_t port);

/* Waits up to timeout_ms until 127.0.0.1:port accepts a connection. */
bool stls_proc_wait_port(uint16_t port, int timeout_ms);

/* Reads a whole file (NUL-terminated; *out_len without the NUL). NULL if it cannot be read.
 * Free with free(). */
char *stls_proc_read_file(const char *path, size_t *out_len);

/* Writes len bytes to path. */
bool stls_proc_write_file(const char *path, const void *data, size_t len);

/* Waits up to timeout_ms until the file contains needle. */
bool stls_proc_wait_file_contains(const char *path, const char *needle, int timeout_ms);

/* Counts occurrences of needle in the file (0 if unreadable). */
unsigned stls_proc_count_in_file(const char *path, const char *needle);

/* Waits up to timeout_ms until needle occurs at least at_least times in the file (the daemon's
 * logger writes asynchronously) and returns the count then, which may exceed at_least. */
unsigned stls_proc_wait_count(const char *path, const char *needle, unsigned at_least, int timeout_ms);

/* The path of a built program, next to the test binary's folder: "starttlsd" -> build/starttlsd.
 * The returned string is static per call site use; copy it if needed. */
const char *stls_proc_build_path(const char *name, char *out, size_t out_len);

/* The path of a file in the repository (tests run from its root, or STLS_ROOT). */
const char *stls_proc_repo_path(const char *rel, char *out, size_t out_len);

/* Makes a fresh folder /tmp/stls-<tag>-XXXXXX, world-searchable (Postfix's daemons must reach it).
 * Returns false on failure. */
bool stls_proc_tmpdir(char *out, size_t out_len, const char *tag);

/* Removes a folder made by stls_proc_tmpdir and everything in it. */
void stls_proc_rmtree(const char *dir);

/* Milliseconds on a monotonic clock. */
uint64_t stls_proc_now_ms(void);

/* Sleeps ms milliseconds. */
void stls_proc_sleep_ms(unsigned ms);
