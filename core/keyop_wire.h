/* The messages between starttlsd and its key-op process (starttls-keyop).
 *
 * Every channel is an AF_UNIX SOCK_SEQPACKET socket pair: one message is one record, so neither
 * side reassembles anything. Both ends are this machine and this build, so the layout is the
 * host's; the sizes are still checked on receipt, as for any peer.
 *
 * - One signing channel per worker. The worker sends a request (a header and the bytes to sign),
 *   the key-op process answers with the same token and the signature. Requests on one channel may
 *   be answered in any order.
 * - One control channel from the main thread: LOAD a private key under a key id (PKCS#8 DER),
 *   DROP it, PING. Each gets a reply carrying the same id.
 *
 * This header includes no TLS library: starttlsd uses BoringSSL, the key-op process another
 * libcrypto. */
#pragma once

#include <stdint.h>

enum {
	STLS_KEYOP_MAX_INPUT = 4096,	/* bytes to sign in one request */
	STLS_KEYOP_MAX_SIG = 1024,	/* RSA-8192 */
	STLS_KEYOP_MAX_KEY_DER = 16384, /* one PKCS#8 private key */
	STLS_KEYOP_MAX_KEYS = 64,	/* keys loaded at once */
	STLS_KEYOP_FIRST_WORKER_FD = 4, /* signing channel of worker i: fd 4 + i */
	STLS_KEYOP_CONTROL_FD = 3,	/* the control channel in the key-op process */
	STLS_KEYOP_MAX_WORKERS = 1024,
	/* The layout below. A PING's reply names it, so that a daemon never drives a key-op program
	 * of another layout (an upgrade replaced the program under a running daemon, which starts
	 * it again after a crash). */
	STLS_KEYOP_PROTOCOL = 1,
};

/* Signing request, worker → key-op process, followed by in_len bytes. */
struct stls_keyop_req {
	uint64_t token;	 /* opaque to the key-op process, echoed in the reply */
	uint32_t key_id; /* as loaded on the control channel */
	uint16_t sigalg; /* TLS SignatureScheme (RFC 8446 4.2.3), e.g. 0x0804 rsa_pss_rsae_sha256 */
	uint16_t in_len; /* the message to sign (not a digest), at most STLS_KEYOP_MAX_INPUT */
};

enum stls_keyop_status {
	STLS_KEYOP_OK = 0,
	STLS_KEYOP_UNKNOWN_KEY = 1, /* no key with that id */
	STLS_KEYOP_BAD_ALG = 2,	    /* the algorithm does not fit the key, or is not supported */
	STLS_KEYOP_FAILED = 3,	    /* the library failed to sign */
	STLS_KEYOP_MALFORMED = 4,   /* the request's sizes do not add up */
};

/* Signing reply, key-op process → worker, followed by sig_len bytes (0 unless status is OK). */
struct stls_keyop_resp {
	uint64_t token;
	uint16_t status; /* enum stls_keyop_status */
	uint16_t sig_len;
	uint32_t reserved; /* 0 */
};

enum stls_keyop_ctl_type {
	STLS_KEYOP_CTL_LOAD = 1, /* followed by der_len bytes of PKCS#8 DER */
	STLS_KEYOP_CTL_DROP = 2,
	STLS_KEYOP_CTL_PING = 3,
};

/* Control request, main thread → key-op process. */
struct stls_keyop_ctl {
	uint32_t type; /* enum stls_keyop_ctl_type */
	uint32_t key_id;
	uint32_t der_len; /* LOAD only */
	uint32_t reserved;
};

/* Control reply: status 0 or an enum stls_keyop_status, and a reason in words (NUL-terminated)
 * when the key could not be loaded. */
struct stls_keyop_ctl_reply {
	uint32_t type;
	uint32_t key_id;
	uint32_t status;
	uint32_t protocol; /* STLS_KEYOP_PROTOCOL, in every reply */
	char why[112];
};
