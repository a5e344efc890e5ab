/* EHLO capabilities: what the backend offers, reduced to what the proxy can carry.
 *
 * The proxy answers a client's EHLO itself, from the backend's reply to the daemon's probe, so the
 * backend is not contacted for sessions that never send mail. Only extensions the relay carries
 * unchanged are kept (an allow-list, so a new extension of the backend is never advertised by
 * accident); STARTTLS, AUTH, XCLIENT, XFORWARD, ETRN, VRFY and everything unknown are dropped:
 * they are either the proxy's own business or would let a client act on the backend as the proxy. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/span.h"
#include "proto/smtp_reply.h"

enum stls_ehlo_ext {
	STLS_EHLO_PIPELINING = 0,
	STLS_EHLO_SIZE,
	STLS_EHLO_8BITMIME,
	STLS_EHLO_SMTPUTF8,
	STLS_EHLO_DSN,
	STLS_EHLO_ENHANCEDSTATUSCODES,
	STLS_EHLO_CHUNKING,
	STLS_EHLO_BINARYMIME,
	STLS_EHLO__COUNT,
};

/* The extension's keyword ("PIPELINING"). */
const char *stls_ehlo_ext_str(enum stls_ehlo_ext ext);

struct stls_ehlo_caps {
	uint32_t mask;	   /* bit (1 << enum stls_ehlo_ext) per extension kept */
	uint64_t size;	   /* SIZE parameter; 0 = advertised without a limit */
	char dropped[256]; /* keywords dropped, space separated, for the log */
};

static inline bool stls_ehlo_has(const struct stls_ehlo_caps *caps, enum stls_ehlo_ext ext)
{
	return (caps->mask >> ext) & 1u;
}

/* Reads a backend's EHLO reply (a complete 250 reply) into *out_caps. The first line (the
 * backend's name) is skipped. Returns STLS_OK, or STLS_ERR_PROTO if the reply is not a 250. */
[[nodiscard]] enum stls_err stls_ehlo_parse(struct stls_ehlo_caps *out_caps, struct stls_smtp_reply reply);

/* Appends the EHLO reply the proxy gives a client: "250-<hostname> ..." then one line per kept
 * extension, plus STARTTLS when offer_starttls. Returns what stls_buf_append returns. */
[[nodiscard]] enum stls_err stls_ehlo_build(struct stls_buf *out, size_t limit, const struct stls_ehlo_caps *caps,
					    const char *hostname, struct stls_span greeting_name, bool offer_starttls);
