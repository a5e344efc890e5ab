#include "proto/backend_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/timer.h"
#include "proto/proxy_proto.h"
#include "proto/smtp_reply.h"

enum stls_err stls_backend_resolve(struct sockaddr_storage *out_addr, socklen_t *out_len,
				   const struct stls_hostport *hp, char *err, size_t err_len)
{
	char port[8];
	snprintf(port, sizeof(port), "%u", hp->port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int ret = getaddrinfo(hp->host, port, &hints, &res);
	if (ret != 0 || !res) {
		snprintf(err, err_len, "cannot resolve %s: %s", hp->host, gai_strerror(ret));
		return STLS_ERR_CONFIG;
	}
	memcpy(out_addr, res->ai_addr, res->ai_addrlen);
	*out_len = res->ai_addrlen;
	freeaddrinfo(res);
	return STLS_OK;
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	uint64_t now = stls_clock_ms();
	if (now >= deadline)
		return 0;
	struct pollfd pfd = { .fd = fd, .events = events };
	int ret;
	do
		ret = poll(&pfd, 1, (int)(deadline - now));
	while (ret < 0 && errno == EINTR);
	return ret;
}

struct probe_io {
	int fd;
	uint64_t deadline;
	uint8_t buf[16384];
	size_t len;
	struct stls_smtp_reply_parser rp;
};

/* Reads until one complete reply is buffered; consumes it from the buffer on the next call. */
static enum stls_err read_reply(struct probe_io *io, struct stls_smtp_reply *out_reply, size_t *out_len)
{
	for (;;) {
		enum stls_err err = stls_smtp_reply_next(&io->rp, out_reply, stls_span_make(io->buf, io->len));
		if (err == STLS_OK) {
			*out_len = out_reply->text.len;
			return STLS_OK;
		}
		if (err != STLS_AGAIN)
			return err;
		if (io->len == sizeof(io->buf))
			return STLS_ERR_TOO_LONG;
		int ready = wait_fd(io->fd, POLLIN, io->deadline);
		if (ready == 0)
			return STLS_ERR_TIMEOUT;
		ssize_t n = read(io->fd, io->buf + io->len, sizeof(io->buf) - io->len);
		if (n == 0)
			return STLS_ERR_CLOSED;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return STLS_ERR_IO;
		}
		io->len += (size_t)n;
	}
}

static void drop(struct probe_io *io, size_t n)
{
	memmove(io->buf, io->buf + n, io->len - n);
	io->len -= n;
}

static enum stls_err write_all(struct probe_io *io, const char *text)
{
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(io->fd, text + off, len - off);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(io->fd, POLLOUT, io->deadline) == 0)
				return STLS_ERR_TIMEOUT;
			continue;
		}
		if (n <= 0)
			return STLS_ERR_IO;
		off += (size_t)n;
	}
	return STLS_OK;
}

static const char *why(enum stls_err err)
{
	switch (err) {
	case STLS_ERR_TIMEOUT: return "timed out";
	case STLS_ERR_CLOSED: return "closed the connection";
	case STLS_ERR_TOO_LONG: return "sent an over-long reply";
	case STLS_ERR_PROTO: return "sent something that is not an SMTP reply";
	default: return strerror(errno);
	}
}

static unsigned g_proxy_version;

void stls_backend_set_proxy_protocol(unsigned version)
{
	g_proxy_version = version;
}

/* With --backend-proxy-protocol the backend expects a PROXY header on every connection, the
 * proxy's own ones too: these name the proxy itself as the client, which is the truth. */
static enum stls_err send_proxy_header(struct probe_io *io, char *err, size_t err_len)
{
	struct sockaddr_storage self, peer;
	socklen_t self_len = sizeof(self), peer_len = sizeof(peer);
	uint8_t header[STLS_PROXY_PROTO_MAX_OUT];
	size_t len = 0;
	enum stls_err ret = STLS_ERR_IO;
	if (getsockname(io->fd, (struct sockaddr *)&self, &self_len) == 0 &&
	    getpeername(io->fd, (struct sockaddr *)&peer, &peer_len) == 0)
		ret = g_proxy_version == 1
			      ? stls_proxy_proto_encode_v1((char *)header, sizeof(header), &len,
							   (const struct sockaddr *)&self,
							   (const struct sockaddr *)&peer)
			      : stls_proxy_proto_encode_v2(header, sizeof(header), &len, (const struct sockaddr *)&self,
							   (const struct sockaddr *)&peer, NULL);
	if (ret != STLS_OK) {
		snprintf(err, err_len, "PROXY header: cannot describe the connection");
		return ret;
	}
	for (size_t off = 0; off < len;) {
		if (wait_fd(io->fd, POLLOUT, io->deadline) == 0) {
			snprintf(err, err_len, "PROXY header: timed out");
			return STLS_ERR_TIMEOUT;
		}
		ssize_t n = write(io->fd, header + off, len - off);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(err, err_len, "PROXY header: %s", strerror(errno));
			return STLS_ERR_IO;
		}
		off += n > 0 ? (size_t)n : 0;
	}
	return STLS_OK;
}

/* Connects (sending the PROXY header when configured); io->fd is open on success. */
static enum stls_err dial(struct probe_io *io, const struct sockaddr *addr, socklen_t addr_len, char *err,
			  size_t err_len)
{
	io->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (io->fd < 0) {
		snprintf(err, err_len, "socket: %s", strerror(errno));
		return STLS_ERR_IO;
	}
	if (connect(io->fd, addr, addr_len) != 0 && errno != EINPROGRESS) {
		snprintf(err, err_len, "connect: %s", strerror(errno));
		return STLS_ERR_IO;
	}
	if (wait_fd(io->fd, POLLOUT, io->deadline) == 0) {
		snprintf(err, err_len, "connect: timed out");
		return STLS_ERR_TIMEOUT;
	}
	int soerr = 0;
	socklen_t slen = sizeof(soerr);
	getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);
	if (soerr) {
		snprintf(err, err_len, "connect: %s", strerror(soerr));
		return STLS_ERR_IO;
	}
	return g_proxy_version ? send_proxy_header(io, err, err_len) : STLS_OK;
}

enum stls_err stls_backend_probe(struct stls_ehlo_caps *out_caps, const struct sockaddr *addr, socklen_t addr_len,
				 const char *hostname, uint32_t timeout_ms, char *err, size_t err_len)
{
	struct probe_io *io = stls_calloc(1, sizeof(*io));
	if (!io) {
		snprintf(err, err_len, "out of memory");
		return STLS_ERR_NOMEM;
	}
	enum stls_err ret = STLS_ERR_IO;
	io->deadline = stls_clock_ms() + timeout_ms;
	stls_smtp_reply_init(&io->rp, 2048, 256);
	ret = dial(io, addr, addr_len, err, err_len);
	if (ret != STLS_OK)
		goto out;

	struct stls_smtp_reply reply;
	size_t len;
	ret = read_reply(io, &reply, &len);
	if (ret != STLS_OK) {
		snprintf(err, err_len, "greeting: %s", why(ret));
		goto out;
	}
	if (reply.code != 220) {
		snprintf(err, err_len, "greeting: refused with %u", reply.code);
		ret = STLS_ERR_PROTO;
		goto out;
	}
	drop(io, len);
	char ehlo[300];
	snprintf(ehlo, sizeof(ehlo), "EHLO %s\r\n", hostname);
	ret = write_all(io, ehlo);
	if (ret == STLS_OK)
		ret = read_reply(io, &reply, &len);
	if (ret != STLS_OK) {
		snprintf(err, err_len, "EHLO: %s", why(ret));
		goto out;
	}
	ret = stls_ehlo_parse(out_caps, reply);
	if (ret != STLS_OK) {
		snprintf(err, err_len, "EHLO: refused with %u", reply.code);
		goto out;
	}
	(void)write_all(io, "QUIT\r\n"); /* courtesy; its reply does not matter */
	ret = STLS_OK;
out:
	if (io->fd >= 0)
		close(io->fd);
	stls_free_ptr(&io);
	return ret;
}

/* Sends text (when not NULL) and reads one reply, which must have class expect_class. */
static enum stls_err exchange(struct probe_io *io, const char *text, unsigned expect_class, const char *what, char *err,
			      size_t err_len)
{
	enum stls_err ret = text ? write_all(io, text) : STLS_OK;
	struct stls_smtp_reply reply;
	size_t len = 0;
	if (ret == STLS_OK)
		ret = read_reply(io, &reply, &len);
	if (ret != STLS_OK) {
		snprintf(err, err_len, "%s: %s", what, why(ret));
		return ret;
	}
	unsigned code = reply.code;
	drop(io, len);
	if (code / 100 != expect_class) {
		snprintf(err, err_len, "%s: refused with %u", what, code);
		return STLS_ERR_PROTO;
	}
	return STLS_OK;
}

enum stls_err stls_backend_send_message(const struct sockaddr *addr, socklen_t addr_len, const char *hostname,
					const char *from, const char *to, const char *message, uint32_t timeout_ms,
					char *err, size_t err_len)
{
	struct probe_io *io = stls_calloc(1, sizeof(*io));
	if (!io) {
		snprintf(err, err_len, "out of memory");
		return STLS_ERR_NOMEM;
	}
	io->fd = -1;
	io->deadline = stls_clock_ms() + timeout_ms;
	stls_smtp_reply_init(&io->rp, 2048, 256);
	char line[600];
	enum stls_err ret = dial(io, addr, addr_len, err, err_len);
	if (ret == STLS_OK)
		ret = exchange(io, NULL, 2, "greeting", err, err_len);
	if (ret == STLS_OK) {
		snprintf(line, sizeof(line), "EHLO %s\r\n", hostname);
		ret = exchange(io, line, 2, "EHLO", err, err_len);
	}
	if (ret == STLS_OK) {
		snprintf(line, sizeof(line), "MAIL FROM:<%s>\r\n", from);
		ret = exchange(io, line, 2, "MAIL", err, err_len);
	}
	if (ret == STLS_OK) {
		snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", to);
		ret = exchange(io, line, 2, "RCPT", err, err_len);
	}
	if (ret == STLS_OK)
		ret = exchange(io, "DATA\r\n", 3, "DATA", err, err_len);
	/* RFC 5321 4.5.2: a line starting with '.' gets another. */
	for (const char *p = message; ret == STLS_OK && *p;) {
		const char *eol = strstr(p, "\r\n");
		size_t n = eol ? (size_t)(eol - p) + 2 : strlen(p);
		if (*p == '.')
			ret = write_all(io, ".");
		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), p);
		if (ret == STLS_OK)
			ret = write_all(io, line);
		p += n;
	}
	if (ret == STLS_OK)
		ret = exchange(io, ".\r\n", 2, "end of data", err, err_len);
	if (ret == STLS_OK)
		(void)write_all(io, "QUIT\r\n");
	if (io->fd >= 0)
		close(io->fd);
	stls_free_ptr(&io);
	return ret;
}
