/* Reading the backend's EHLO capabilities (main thread, blocking, bounded by a timeout).
 *
 * The proxy answers clients' EHLO from what the backend offered here, so sessions that never
 * send mail never reach the backend. The main thread probes at start-up and then on a schedule;
 * workers see the result through the snapshot. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/err.h"
#include "proto/ehlo.h"

/* Makes every connection made here start with a PROXY header of version (1 or 2; 0 for none), as
 * --backend-proxy-protocol asks. Call before the first probe. */
void stls_backend_set_proxy_protocol(unsigned version);

/* Resolves host:port into *out_addr (the first address getaddrinfo returns). Returns STLS_OK or
 * STLS_ERR_CONFIG with a reason in err. */
[[nodiscard]] enum stls_err stls_backend_resolve(struct sockaddr_storage *out_addr, socklen_t *out_len,
						 const struct stls_hostport *hp, char *err, size_t err_len);

/* Sends one message through the SMTP server at addr (the alerts of spec S21): greeting, EHLO,
 * MAIL FROM:<from>, RCPT TO:<to>, DATA with message (CRLF lines, not yet dot-stuffed), QUIT, all
 * within timeout_ms. Returns STLS_OK once the server accepted the message, or an error with the
 * reason in err. */
[[nodiscard]] enum stls_err stls_backend_send_message(const struct sockaddr *addr, socklen_t addr_len,
						      const char *hostname, const char *from, const char *to,
						      const char *message, uint32_t timeout_ms, char *err,
						      size_t err_len);

/* Connects to addr, reads the greeting, sends EHLO hostname, reads the capabilities into
 * *out_caps and says QUIT, all within timeout_ms. Returns STLS_OK, or STLS_ERR_IO / STLS_ERR_PROTO /
 * STLS_ERR_TIMEOUT with a reason in err. */
[[nodiscard]] enum stls_err stls_backend_probe(struct stls_ehlo_caps *out_caps, const struct sockaddr *addr,
					       socklen_t addr_len, const char *hostname, uint32_t timeout_ms, char *err,
					       size_t err_len);
