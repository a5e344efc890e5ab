#include "tests/support/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

ssize_t stls_http_exchange(uint16_t port, const char *request, size_t len, char *out, size_t out_len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    send(fd, request, len, MSG_NOSIGNAL) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	while (got + 1 < out_len) {
		ssize_t n = recv(fd, out + got, out_len - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(fd);
	return (ssize_t)got;
}

long long stls_metric_sum(const char *page, const char *name)
{
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "\n%.100s{worker=\"", name);
	long long sum = 0;
	for (const char *p = page; (p = strstr(p, prefix)); p++) {
		const char *v = strchr(p + 1, ' ');
		if (!v)
			return -1;
		sum += strtoll(v + 1, NULL, 10);
	}
	return sum;
}
