/* Sockets: listeners, peer addresses. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/err.h"

struct stls_session;

/* Opens one listening socket on addr with SO_REUSEPORT (each worker has its own, and the kernel
 * spreads connections over them), TCP_NODELAY (inherited by accepted sockets) and IPV6_V6ONLY.
 * Returns the fd, or -1 with a message in err. */
int stls_net_listen(const struct stls_addr *addr, int backlog, char *err, size_t err_len);

/* Checks that nothing else listens on addr: binding a plain socket fails while another process
 * (another starttlsd with SO_REUSEPORT too) holds the port, which SO_REUSEPORT alone would let us
 * share silently. Returns STLS_OK or STLS_ERR_CONFIG with a message in err. */
[[nodiscard]] enum stls_err stls_net_check_free(const struct stls_addr *addr, char *err, size_t err_len);

/* Fills the session's peer and local addresses (and their printable forms) from fd. */
void stls_net_describe_peer(struct stls_session *s, int fd);

/* Whether the address in ss lies in the network cidr (an IPv4 client on a dual-stack socket,
 * ::ffff:a.b.c.d, counts as a.b.c.d). */
bool stls_net_cidr_match(const struct stls_cidr *cidr, const struct sockaddr_storage *ss);

/* Formats a socket address as "ip" into out and returns its port. */
uint16_t stls_net_format(const struct sockaddr_storage *ss, char *out, size_t out_len);
