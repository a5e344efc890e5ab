#include "tests/support/smtp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/proc.h"

bool stls_smtp_client_connect(struct stls_smtp_client *c, uint16_t port, int timeout_ms)
{
	return stls_smtp_client_connect_addr(c, NULL, "127.0.0.1", port, timeout_ms);
}

bool stls_smtp_client_connect_addr(struct stls_smtp_client *c, const char *from, const char *to, uint16_t port,
				   int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->timeout_ms = timeout_ms;
	stls_smtp_reply_init(&c->rp, 8192, 512);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	if (c->fd < 0 || inet_pton(AF_INET, to, &sin.sin_addr) != 1)
		return false;
	if (from &&
	    (inet_pton(AF_INET, from, &src.sin_addr) != 1 || bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0))
		return false;
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		return false;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return true;
}

bool stls_smtp_client_send(struct stls_smtp_client *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

bool stls_smtp_client_sends(struct stls_smtp_client *c, const char *text)
{
	return stls_smtp_client_send(c, text, strlen(text));
}

static int read_more(struct stls_smtp_client *c, uint64_t end)
{
	uint64_t now = stls_proc_now_ms();
	if (now >= end || c->len == sizeof(c->buf))
		return -1;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	if (poll(&pfd, 1, (int)(end - now)) <= 0)
		return -1;
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n <= 0)
		return 0;
	c->len += (size_t)n;
	return 1;
}

int stls_smtp_client_reply(struct stls_smtp_client *c)
{
	uint64_t end = stls_proc_now_ms() + (uint64_t)c->timeout_ms;
	c->last[0] = '\0';
	for (;;) {
		struct stls_smtp_reply reply;
		enum stls_err err = stls_smtp_reply_next(&c->rp, &reply, stls_span_make(c->buf, c->len));
		if (err == STLS_OK) {
			size_t n = reply.text.len < sizeof(c->last) - 1 ? reply.text.len : sizeof(c->last) - 1;
			memcpy(c->last, reply.text.ptr, n);
			c->last[n] = '\0';
			memmove(c->buf, c->buf + reply.text.len, c->len - reply.text.len);
			c->len -= reply.text.len;
			return reply.code;
		}
		if (err != STLS_AGAIN)
			return -1;
		if (read_more(c, end) <= 0)
			return -1;
	}
}

bool stls_smtp_client_wait_closed(struct stls_smtp_client *c)
{
	uint64_t end = stls_proc_now_ms() + (uint64_t)c->timeout_ms;
	for (;;) {
		c->len = 0;
		int r = read_more(c, end);
		if (r == 0)
			return true;
		if (r < 0)
			return false;
	}
}

void stls_smtp_client_close(struct stls_smtp_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
