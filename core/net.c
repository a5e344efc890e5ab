#include "core/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/session.h"

static int open_socket(const struct stls_addr *addr, bool reuseport, char *err, size_t err_len)
{
	int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, err_len, "%s: socket: %s", addr->text, strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (addr->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0) {
		snprintf(err, err_len, "%s: bind: %s", addr->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int stls_net_listen(const struct stls_addr *addr, int backlog, char *err, size_t err_len)
{
	int fd = open_socket(addr, true, err, err_len);
	if (fd < 0)
		return -1;
	int one = 1;
	/* Every reply is a small write the peer waits for: Nagle plus delayed ACKs would cost ~40 ms
	 * per exchange. Accepted sockets inherit the option from the listener. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (listen(fd, backlog) != 0) {
		snprintf(err, err_len, "%s: listen: %s", addr->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

enum stls_err stls_net_check_free(const struct stls_addr *addr, char *err, size_t err_len)
{
	int fd = open_socket(addr, false, err, err_len);
	if (fd < 0)
		return STLS_ERR_CONFIG;
	close(fd);
	return STLS_OK;
}

uint16_t stls_net_format(const struct sockaddr_storage *ss, char *out, size_t out_len)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)out_len);
		return ntohs(sin->sin_port);
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		/* An IPv4 client on a dual-stack socket is logged as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], out, (socklen_t)out_len);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, out, (socklen_t)out_len);
		return ntohs(sin6->sin6_port);
	}
	snprintf(out, out_len, "unknown");
	return 0;
}

void stls_net_describe_peer(struct stls_session *s, int fd)
{
	socklen_t len = sizeof(s->peer);
	if (getpeername(fd, (struct sockaddr *)&s->peer, &len) != 0)
		memset(&s->peer, 0, sizeof(s->peer));
	len = sizeof(s->local);
	if (getsockname(fd, (struct sockaddr *)&s->local, &len) != 0)
		memset(&s->local, 0, sizeof(s->local));
	s->peer_port = stls_net_format(&s->peer, s->peer_ip, sizeof(s->peer_ip));
	s->local_port = stls_net_format(&s->local, s->local_ip, sizeof(s->local_ip));
}

bool stls_net_cidr_match(const struct stls_cidr *cidr, const struct sockaddr_storage *ss)
{
	const uint8_t *addr;
	sa_family_t family = ss->ss_family;
	if (family == AF_INET) {
		addr = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		addr = a6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			addr += 12;
		}
	} else {
		return false;
	}
	if (family != cidr->family)
		return false;
	unsigned full = cidr->prefix / 8, rest = cidr->prefix % 8;
	if (memcmp(addr, cidr->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (addr[full] & mask) == (cidr->addr[full] & mask);
}
