#include "tests/support/proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t stls_proc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void stls_proc_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static void child_setup(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Children start with default signal handling, whatever the test framework installed. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
}

bool stls_proc_spawn(struct stls_proc *p, const char *log_path, char *const argv[])
{
	memset(p, 0, sizeof(*p));
	int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0)
		return false;
	pid_t pid = fork();
	if (pid < 0) {
		close(logfd);
		return false;
	}
	if (pid == 0) {
		child_setup();
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(logfd);
	p->pid = pid;
	return true;
}

static int decode(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int stls_proc_wait(struct stls_proc *p, int timeout_ms)
{
	if (p->pid <= 0)
		return -1;
	if (p->reaped)
		return decode(p->status);
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		pid_t r = waitpid(p->pid, &p->status, WNOHANG);
		if (r == p->pid) {
			p->reaped = true;
			return decode(p->status);
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (stls_proc_now_ms() >= end)
			return -1;
		stls_proc_sleep_ms(10);
	}
}

int stls_proc_stop(struct stls_proc *p, int sig, int timeout_ms)
{
	if (p->pid <= 0)
		return -1;
	if (p->reaped)
		return decode(p->status);
	kill(p->pid, sig);
	int code = stls_proc_wait(p, timeout_ms);
	if (code >= 0)
		return code;
	kill(p->pid, SIGKILL);
	return stls_proc_wait(p, 5000);
}

int stls_proc_run(char *const argv[], const char *input, size_t input_len, char *out, size_t out_len, int timeout_ms)
{
	int in_pipe[2], out_pipe[2];
	if (pipe2(in_pipe, O_CLOEXEC) != 0)
		return -1;
	if (pipe2(out_pipe, O_CLOEXEC) != 0) {
		close(in_pipe[0]);
		close(in_pipe[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		child_setup();
		dup2(in_pipe[0], 0);
		dup2(out_pipe[1], 1);
		dup2(out_pipe[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in_pipe[0]);
	close(out_pipe[1]);
	fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
	fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
	size_t sent = 0, got = 0;
	int in_fd = in_pipe[1];
	if (!input || input_len == 0) {
		close(in_fd);
		in_fd = -1;
	}
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	bool eof = false;
	while (!eof && stls_proc_now_ms() < end) {
		struct pollfd pfds[2] = { { .fd = out_pipe[0], .events = POLLIN }, { .fd = in_fd, .events = POLLOUT } };
		poll(pfds, in_fd >= 0 ? 2 : 1, 100);
		if (in_fd >= 0 && (pfds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(in_fd, input + sent, input_len - sent);
			if (n > 0)
				sent += (size_t)n;
			if (n < 0 && errno != EAGAIN) {
				close(in_fd);
				in_fd = -1;
			} else if (sent == input_len) {
				close(in_fd);
				in_fd = -1;
			}
		}
		if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char tmp[4096];
			ssize_t n = read(out_pipe[0], tmp, sizeof(tmp));
			if (n == 0)
				eof = true;
			for (ssize_t i = 0; i < n; i++)
				if (out && got + 1 < out_len)
					out[got++] = tmp[i];
		}
	}
	if (in_fd >= 0)
		close(in_fd);
	close(out_pipe[0]);
	if (out && out_len)
		out[got] = '\0';
	struct stls_proc p = { .pid = pid };
	int code = stls_proc_wait(&p, eof ? (int)(end > stls_proc_now_ms() ? end - stls_proc_now_ms() : 0) + 1000 : 0);
	if (code < 0) {
		kill(pid, SIGKILL);
		stls_proc_wait(&p, 5000);
		return -1;
	}
	return code;
}

/* Whether a socket of type can bind 127.0.0.1:port now. */
static bool port_bindable(int type, uint16_t port)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Tests run in parallel processes (Criterion's -j), and a port is picked well before the server
 * that will use it binds it: a 1-byte lock at offset <port> of one shared file reserves the port
 * for the picking process's lifetime, so that two tests never pick the same one. An OFD lock
 * belongs to the open file, so each process opens its own (a forked child would share its
 * parent's locks otherwise); it goes when the process exits. */
bool stls_proc_reserve_port(uint16_t port)
{
	static int fd = -1;
	static pid_t owner;
	static uint16_t mine[128];
	static unsigned n_mine;
	if (owner != getpid()) {
		fd = open("/tmp/stls-test-ports.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
		owner = getpid();
		n_mine = 0;
	}
	for (unsigned i = 0; i < n_mine; i++)
		if (mine[i] == port)
			return false;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = port, .l_len = 1 };
	if (fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) != 0)
		return false;
	if (n_mine < sizeof(mine) / sizeof(mine[0]))
		mine[n_mine++] = port;
	return true;
}

/* Ports are picked at random below the kernel's ephemeral range: a port from that range can be
 * taken, between the pick and the listener's bind, by any outgoing connection on the machine
 * (and the tests make thousands). Free for TCP and UDP alike, for a DNS server. */
uint16_t stls_proc_free_port(void)
{
	unsigned lo = 10000, hi = 32768;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	unsigned eph_lo, eph_hi;
	if (f && fscanf(f, "%u %u", &eph_lo, &eph_hi) == 2 && eph_lo > lo + 1000)
		hi = eph_lo;
	if (f)
		fclose(f);
	/* The seed comes from the kernel: processes forked in a row have near pids and clocks. */
	static unsigned seed;
	static pid_t seeded;
	if (seeded != getpid()) {
		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			seed = (unsigned)getpid() * 2654435761u ^ (unsigned)stls_proc_now_ms();
		seeded = getpid();
	}
	for (unsigned tries = 0; tries < 200; tries++) {
		uint16_t port = (uint16_t)(lo + (unsigned)rand_r(&seed) % (hi - lo));
		if (port_bindable(SOCK_STREAM, port) && port_bindable(SOCK_DGRAM, port) && stls_proc_reserve_port(port))
			return port;
	}
	return 0;
}

bool stls_proc_wait_port(uint16_t port, int timeout_ms)
{
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	do {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sin = { .sin_family = AF_INET,
					   .sin_port = htons(port),
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
		close(fd);
		if (ok == 0)
			return true;
		stls_proc_sleep_ms(20);
	} while (stls_proc_now_ms() < end);
	return false;
}

char *stls_proc_read_file(const char *path, size_t *out_len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			char *bigger = realloc(buf, cap * 2);
			if (!bigger) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
	}
	fclose(fp);
	if (!buf)
		return NULL;
	buf[len] = '\0';
	if (out_len)
		*out_len = len;
	return buf;
}

bool stls_proc_write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	if (!fp)
		return false;
	bool ok = fwrite(data, 1, len, fp) == len;
	return fclose(fp) == 0 && ok;
}

bool stls_proc_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	do {
		char *text = stls_proc_read_file(path, NULL);
		bool found = text && strstr(text, needle);
		free(text);
		if (found)
			return true;
		stls_proc_sleep_ms(20);
	} while (stls_proc_now_ms() < end);
	/* Every caller asserts on the result: show what the file held, since the test's temporary
	 * folder goes when it ends. */
	size_t len = 0;
	char *text = stls_proc_read_file(path, &len);
	size_t from = len > 2048 ? len - 2048 : 0;
	fprintf(stderr, "waited %d ms for \"%s\" in %s; its last %zu bytes:\n%s\n", timeout_ms, needle, path,
		len - from, text ? text + from : "(unreadable)");
	free(text);
	return false;
}

unsigned stls_proc_count_in_file(const char *path, const char *needle)
{
	char *text = stls_proc_read_file(path, NULL);
	unsigned count = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		count++;
	free(text);
	return count;
}

unsigned stls_proc_wait_count(const char *path, const char *needle, unsigned at_least, int timeout_ms)
{
	uint64_t end = stls_proc_now_ms() + (uint64_t)timeout_ms;
	unsigned count = stls_proc_count_in_file(path, needle);
	while (count < at_least && stls_proc_now_ms() < end) {
		stls_proc_sleep_ms(20);
		count = stls_proc_count_in_file(path, needle);
	}
	return count;
}

const char *stls_proc_build_path(const char *name, char *out, size_t out_len)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	/* The test binary is <builddir>/tests/starttlsd-tests. */
	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
	}
	snprintf(out, out_len, "%s/%s", exe, name);
	return out;
}

const char *stls_proc_repo_path(const char *rel, char *out, size_t out_len)
{
	const char *root = getenv("STLS_ROOT");
	char cwd[4096];
	if (!root)
		root = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	snprintf(out, out_len, "%s/%s", root, rel);
	return out;
}

bool stls_proc_tmpdir(char *out, size_t out_len, const char *tag)
{
	snprintf(out, out_len, "/tmp/stls-%s-XXXXXX", tag);
	if (!mkdtemp(out))
		return false;
	return chmod(out, 0755) == 0;
}

void stls_proc_rmtree(const char *dir)
{
	if (strncmp(dir, "/tmp/stls-", 10) != 0)
		return; /* only what stls_proc_tmpdir made */
	char *argv[] = { "rm", "-rf", (char *)dir, NULL };
	stls_proc_run(argv, NULL, 0, NULL, 0, 30000);
}
