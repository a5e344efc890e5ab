#include "core/keyop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/keyop_wire.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timer.h"

enum { CONTROL_WAIT_MS = 5000, DROP_WAIT_MS = 1000, STOP_WAIT_MS = 2000, RESTART_GAP_MS = 1000 };

struct keyop_key {
	uint32_t id; /* 0: free */
	uint8_t *der;
	size_t der_len;
};

struct stls_keyop {
	char path[PATH_MAX];
	unsigned num_threads;
	unsigned num_workers;
	pid_t pid;
	int pidfd;	/* readable once the process ended: a wait for its answer stops at once */
	int ctl;	/* the main thread's end of the control channel */
	int child_ctl;	/* the process's end, kept for restarts */
	int *worker_fd; /* each worker's end of its signing channel */
	int *child_fd;	/* the process's ends */
	unsigned restarts;
	bool restart_due;
	uint64_t started_ms;
	struct keyop_key keys[STLS_KEYOP_MAX_KEYS];
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* starttls-keyop lives beside starttlsd (build/, or wherever both were installed). */
static bool program_path(char *out, size_t out_len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return false;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	return snprintf(out, out_len, "%s/starttls-keyop", slash ? self : ".") < (int)out_len;
}

bool stls_keyop_available(char *out_path, size_t out_len)
{
	return program_path(out_path, out_len) && access(out_path, X_OK) == 0;
}

static enum stls_err find_program(struct stls_keyop *k, char *err, size_t err_len)
{
	if (!stls_keyop_available(k->path, sizeof(k->path))) {
		snprintf(err, err_len, "--keyop-threads needs %s: %s", k->path[0] ? k->path : "starttls-keyop",
			 strerror(errno));
		return STLS_ERR_CONFIG;
	}
	return STLS_OK;
}

static void drain(int fd)
{
	uint8_t scratch[256];
	for (unsigned i = 0; i < 100000; i++)
		if (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT | MSG_TRUNC) < 0 && errno != EINTR)
			return;
}

/* Starts the process with the control channel on fd 3 and worker i's channel on fd 4 + i.
 * posix_spawn, not fork: a fork of a daemon holding thousands of sessions copies its page tables
 * and makes every worker's next writes copy-on-write faults until the exec. */
static enum stls_err spawn(struct stls_keyop *k, char *err, size_t err_len)
{
	enum stls_err ret = STLS_ERR_IO;
	char threads[16], workers[16];
	snprintf(threads, sizeof(threads), "%u", k->num_threads);
	snprintf(workers, sizeof(workers), "%u", k->num_workers);
	char *const argv[] = { "starttls-keyop", "--threads", threads, "--workers", workers, NULL };
	/* Control messages a dead process left unread, and answers nobody waits for, must not reach
	 * the next one or be taken for its answers. (Signing requests stay: the next process serves
	 * them.) */
	drain(k->child_ctl);
	drain(k->ctl);
	k->started_ms = stls_clock_ms();
	/* Every channel is first copied above the target numbers (close-on-exec), so that no dup2
	 * in the child overwrites one it has yet to move. */
	unsigned num = k->num_workers;
	int high = STLS_KEYOP_FIRST_WORKER_FD + (int)num + 8;
	int *tmp = stls_calloc(num + 1, sizeof(int));
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_ok = posix_spawn_file_actions_init(&fa) == 0, attr_ok = posix_spawnattr_init(&attr) == 0;
	unsigned made = 0;
	int rc = ENOMEM;
	if (!tmp || !fa_ok || !attr_ok)
		goto out;
	for (; made <= num; made++) {
		tmp[made] = fcntl(made == 0 ? k->child_ctl : k->child_fd[made - 1], F_DUPFD_CLOEXEC, high);
		if (tmp[made] < 0) {
			rc = errno;
			goto out;
		}
		rc = posix_spawn_file_actions_adddup2(&fa, tmp[made], STLS_KEYOP_CONTROL_FD + (int)made);
		if (rc != 0)
			goto out;
	}
	/* starttlsd blocks its signals for its signalfd; the key-op process wants the defaults. */
	sigset_t none;
	sigemptyset(&none);
	rc = posix_spawnattr_setsigmask(&attr, &none);
	if (rc == 0)
		rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	pid_t pid = -1;
	if (rc == 0)
		rc = posix_spawn(&pid, k->path, &fa, &attr, argv, environ);
	if (rc != 0)
		goto out;
	k->pid = pid;
	k->pidfd = pidfd_open(pid, 0);
	ret = STLS_OK;
out:
	if (ret != STLS_OK)
		snprintf(err, err_len, "cannot start %s: %s", k->path, strerror(rc));
	for (unsigned i = 0; i < made && tmp; i++)
		close(tmp[i]);
	stls_free_ptr(&tmp);
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	return ret;
}

/* Sends one control message and waits for the reply with the same type and key id (an older
 * reply, from a request that timed out, is skipped). */
static enum stls_err control(struct stls_keyop *k, uint32_t type, uint32_t key_id, struct stls_span der,
			     unsigned wait_ms, char *err, size_t err_len)
{
	if (k->pid <= 0) {
		snprintf(err, err_len, "the key-op process is not running");
		return STLS_ERR_IO;
	}
	struct stls_keyop_ctl hdr = { .type = type, .key_id = key_id, .der_len = (uint32_t)der.len };
	struct iovec iov[2] = { { &hdr, sizeof(hdr) }, { (void *)der.ptr, der.len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = der.len ? 2 : 1 };
	/* Requests are answered one at a time: anything waiting is the answer to one that timed
	 * out. Never block: a process that stopped reading must not stop the main thread. */
	drain(k->ctl);
	if (sendmsg(k->ctl, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		snprintf(err, err_len, "cannot reach the key-op process: %s", strerror(errno));
		return STLS_ERR_IO;
	}
	uint64_t deadline = stls_clock_ms() + wait_ms;
	for (;;) {
		uint64_t now = stls_clock_ms();
		struct pollfd pfds[2] = { { .fd = k->ctl, .events = POLLIN }, { .fd = k->pidfd, .events = POLLIN } };
		int ret = now >= deadline ? 0 : poll(pfds, k->pidfd >= 0 ? 2 : 1, (int)(deadline - now));
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0) {
			snprintf(err, err_len, "the key-op process did not answer within %u ms", wait_ms);
			return STLS_ERR_TIMEOUT;
		}
		if (!pfds[0].revents && pfds[1].revents) {
			snprintf(err, err_len, "the key-op process ended");
			return STLS_ERR_IO;
		}
		struct stls_keyop_ctl_reply reply;
		ssize_t n = recv(k->ctl, &reply, sizeof(reply), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n != (ssize_t)sizeof(reply)) {
			snprintf(err, err_len, "the key-op process closed its control channel");
			return STLS_ERR_IO;
		}
		if (reply.type != type || reply.key_id != key_id)
			continue;
		if (reply.protocol != STLS_KEYOP_PROTOCOL) {
			snprintf(err, err_len,
				 "%s speaks key-op protocol %u, this starttlsd %u: install the two from one build",
				 k->path, reply.protocol, (unsigned)STLS_KEYOP_PROTOCOL);
			return STLS_ERR_CONFIG;
		}
		if (reply.status != STLS_KEYOP_OK) {
			reply.why[sizeof(reply.why) - 1] = '\0';
			snprintf(err, err_len, "the key-op process refused the key: %s",
				 reply.why[0] ? reply.why : "no reason given");
			return STLS_ERR_CONFIG;
		}
		return STLS_OK;
	}
}

enum stls_err stls_keyop_start(struct stls_keyop **out, unsigned num_threads, unsigned num_workers, char *err,
			       size_t err_len)
{
	enum stls_err ret = STLS_ERR_IO;
	struct stls_keyop *k = stls_calloc(1, sizeof(*k));
	if (!k || num_workers == 0 || num_workers > STLS_KEYOP_MAX_WORKERS) {
		snprintf(err, err_len, k ? "bad worker count" : "out of memory");
		stls_free_ptr(&k);
		return STLS_ERR_CONFIG;
	}
	k->num_threads = num_threads;
	k->num_workers = num_workers;
	k->ctl = k->child_ctl = k->pidfd = -1;
	k->worker_fd = stls_calloc(num_workers, sizeof(int));
	k->child_fd = stls_calloc(num_workers, sizeof(int));
	if (!k->worker_fd || !k->child_fd) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < num_workers; i++)
		k->worker_fd[i] = k->child_fd[i] = -1;
	if ((ret = find_program(k, err, err_len)) != STLS_OK)
		goto out;
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
		snprintf(err, err_len, "socketpair: %s", strerror(errno));
		ret = STLS_ERR_IO;
		goto out;
	}
	k->ctl = pair[0];
	k->child_ctl = pair[1];
	for (unsigned i = 0; i < num_workers; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
			snprintf(err, err_len, "socketpair: %s", strerror(errno));
			ret = STLS_ERR_IO;
			goto out;
		}
		/* Room for a storm of requests before a worker has to queue them itself. */
		int size = 4 << 20;
		setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		k->worker_fd[i] = pair[0];
		k->child_fd[i] = pair[1];
	}
	if ((ret = spawn(k, err, err_len)) != STLS_OK)
		goto out;
	/* The process answers once it is up: a missing library or a bad argument shows here, not at
	 * the first handshake. */
	ret = control(k, STLS_KEYOP_CTL_PING, 0, (struct stls_span){ 0 }, CONTROL_WAIT_MS, err, err_len);
	if (ret != STLS_OK)
		goto out;
	*out = k;
	k = NULL;
	ret = STLS_OK;
out:
	stls_keyop_stop(&k);
	return ret;
}

int stls_keyop_worker_fd(const struct stls_keyop *k, unsigned index)
{
	return k && index < k->num_workers ? k->worker_fd[index] : -1;
}

static struct keyop_key *key_find(struct stls_keyop *k, uint32_t key_id)
{
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++)
		if (k->keys[i].id == key_id)
			return &k->keys[i];
	return NULL;
}

static void key_forget(struct keyop_key *key)
{
	if (key->der)
		stls_wipe(key->der, key->der_len);
	stls_free_ptr(&key->der);
	*key = (struct keyop_key){ 0 };
}

static void restart(struct stls_keyop *k);

enum stls_err stls_keyop_load(struct stls_keyop *k, uint32_t key_id, struct stls_span der, char *err, size_t err_len)
{
	/* A reload that comes while a restart waits out its second starts the process now, with
	 * the keys it had, rather than being refused: one start per reload cannot make a loop. */
	if (k->pid <= 0 && k->restart_due)
		restart(k);
	struct keyop_key *key = key_find(k, 0);
	if (key_id == 0 || key_find(k, key_id)) {
		snprintf(err, err_len, "key id %u already loaded", key_id);
		return STLS_ERR_INTERNAL;
	}
	if (!key) {
		snprintf(err, err_len, "more than %u keys in use at once (reloads faster than sessions end?)",
			 (unsigned)STLS_KEYOP_MAX_KEYS);
		return STLS_ERR_LIMIT;
	}
	key->der = stls_malloc(der.len);
	if (!key->der) {
		snprintf(err, err_len, "out of memory");
		return STLS_ERR_NOMEM;
	}
	memcpy(key->der, der.ptr, der.len);
	key->der_len = der.len;
	key->id = key_id;
	enum stls_err ret = control(k, STLS_KEYOP_CTL_LOAD, key_id, der, CONTROL_WAIT_MS, err, err_len);
	if (ret != STLS_OK)
		key_forget(key);
	return ret;
}

void stls_keyop_drop(struct stls_keyop *k, uint32_t key_id)
{
	struct keyop_key *key = key_id ? key_find(k, key_id) : NULL;
	if (!key)
		return;
	key_forget(key);
	char err[160];
	if (control(k, STLS_KEYOP_CTL_DROP, key_id, (struct stls_span){ 0 }, DROP_WAIT_MS, err, sizeof(err)) != STLS_OK)
		stls_log_warn("key-op process: dropping key %u: %s", key_id, err);
}

static void restart(struct stls_keyop *k)
{
	char err[200];
	k->restart_due = false;
	if (spawn(k, err, sizeof(err)) != STLS_OK) {
		stls_log_crit("key-op process: cannot start it again: %s; trying again in a second", err);
		k->restart_due = true;
		return;
	}
	k->restarts++;
	unsigned loaded = 0, failed = 0;
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++) {
		struct keyop_key *key = &k->keys[i];
		if (!key->id)
			continue;
		if (control(k, STLS_KEYOP_CTL_LOAD, key->id, stls_span_make(key->der, key->der_len), CONTROL_WAIT_MS,
			    err, sizeof(err)) == STLS_OK) {
			loaded++;
		} else {
			failed++;
			stls_log_crit("key-op process: key %u: %s", key->id, err);
		}
	}
	/* The process starts signing at this PING, with every key in place: requests queued while
	 * none ran are signed, not refused. */
	if (failed == 0 &&
	    control(k, STLS_KEYOP_CTL_PING, 0, (struct stls_span){ 0 }, CONTROL_WAIT_MS, err, sizeof(err)) != STLS_OK) {
		stls_log_crit("key-op process %d: %s", (int)k->pid, err);
		failed++;
	}
	if (failed) {
		/* Every key loaded it once: a process that did not take them all (or did not answer) is
		 * replaced, rather than left refusing the handshakes of a key. SIGCHLD brings the next. */
		stls_log_crit("key-op process %d: ending it to start another", (int)k->pid);
		kill(k->pid, SIGKILL);
		return;
	}
	stls_log_info("key-op process started again (pid %d), %u key%s loaded", (int)k->pid, loaded,
		      loaded == 1 ? "" : "s");
}

void stls_keyop_on_child(struct stls_keyop *k)
{
	if (!k || k->pid <= 0)
		return;
	int status;
	pid_t pid = waitpid(k->pid, &status, WNOHANG);
	if (pid != k->pid)
		return;
	if (WIFSIGNALED(status))
		stls_log_crit("key-op process %d killed by signal %d (%s); handshakes waiting for it fail", (int)pid,
			      WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		stls_log_crit("key-op process %d exited with status %d; handshakes waiting for it fail", (int)pid,
			      WEXITSTATUS(status));
	k->pid = 0;
	close_fd(&k->pidfd);
	/* A process that dies at once must not be started in a tight loop. */
	if (stls_clock_ms() - k->started_ms < RESTART_GAP_MS)
		k->restart_due = true;
	else
		restart(k);
}

void stls_keyop_tick(struct stls_keyop *k, uint64_t now_ms)
{
	if (k && k->restart_due && now_ms - k->started_ms >= RESTART_GAP_MS)
		restart(k);
}

unsigned stls_keyop_restarts(const struct stls_keyop *k)
{
	return k ? k->restarts : 0;
}

int stls_keyop_pid(const struct stls_keyop *k)
{
	return k ? (int)k->pid : 0;
}

void stls_keyop_stop(struct stls_keyop **pk)
{
	struct stls_keyop *k = *pk;
	if (!k)
		return;
	/* Its control channel closing is the process's signal to exit. */
	close_fd(&k->ctl);
	close_fd(&k->child_ctl);
	for (unsigned i = 0; k->worker_fd && i < k->num_workers; i++) {
		close_fd(&k->worker_fd[i]);
		close_fd(&k->child_fd[i]);
	}
	if (k->pid > 0) {
		uint64_t deadline = stls_clock_ms() + STOP_WAIT_MS;
		while (waitpid(k->pid, NULL, WNOHANG) == 0) {
			if (stls_clock_ms() >= deadline) {
				kill(k->pid, SIGKILL);
				waitpid(k->pid, NULL, 0);
				break;
			}
			usleep(10000);
		}
	}
	close_fd(&k->pidfd);
	for (unsigned i = 0; i < STLS_KEYOP_MAX_KEYS; i++)
		key_forget(&k->keys[i]);
	stls_free_ptr(&k->worker_fd);
	stls_free_ptr(&k->child_fd);
	stls_free_ptr(pk);
}
