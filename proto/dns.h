/* Where a domain's mail goes: the next hop's addresses, from the routes table or DNS (RFC 5321
 * 5.1), resolved with c-ares inside the worker's event loop (its sockets are watched by the
 * worker's io_uring, its timeouts run on the worker's turns). Nothing blocks a worker. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/err.h"
#include "core/session.h"
#include "core/span.h"
#include "proto/routes.h"

enum { STLS_DNS_MAX_TARGETS = 8 };

/* One address to try, in order: the MX host's name (SNI and certificate checks) and an address. */
struct stls_dns_target {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint16_t preference; /* MX preference, 0 without MX */
	char name[256];
};

/* How a lookup ended. */
enum stls_dns_status {
	STLS_DNS_OK = 0,
	STLS_DNS_TEMPFAIL, /* server failure, timeout, no server: try again later (4xx) */
	STLS_DNS_NODOMAIN, /* the domain does not exist (NXDOMAIN): 5xx */
	STLS_DNS_NOMAIL,   /* it says it takes no mail, with a null MX (RFC 7505): 5xx */
	STLS_DNS__COUNT,
};

/* Called on the session's worker with the addresses to try (num >= 1 when status is STLS_DNS_OK)
 * and, otherwise, a reason for the log. Not called if the session ended meanwhile. */
typedef void stls_dns_done_fn(struct stls_session *s, enum stls_dns_status status, const char *why,
			      const struct stls_dns_target *targets, unsigned num);

/* Finds where mail for domain goes by route: an address literal at once, a host's address
 * records, or the domain's MX hosts in preference order (their addresses, up to
 * STLS_DNS_MAX_TARGETS in all), with the domain's own address records when it has no MX (RFC
 * 5321 5.1). done may run before this returns. Returns STLS_OK or STLS_ERR_NOMEM. */
[[nodiscard]] enum stls_err stls_dns_next_hop(struct stls_session *s, const struct stls_route *route,
					      struct stls_span domain, stls_dns_done_fn *done);

/* Frees the worker's resolver (at the worker's end). */
void stls_dns_worker_cleanup(struct stls_worker *w);
