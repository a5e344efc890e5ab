/* A worker's signing channel to the key-op process (core/keyop.h).
 *
 * BoringSSL's private-key method (tls/keyop.h) calls the submitter on the worker's thread; the
 * request goes out at once with one non-blocking send, or waits in a bounded backlog while the
 * channel is full. Answers are read when the channel polls readable (through the worker's io_uring)
 * and handed to the connection they belong to, whose handshake then resumes. */
#pragma once

#include "core/err.h"

struct stls_worker;

/* Opens the channel on fd (owned by the key-op module) for the calling worker and makes it the
 * thread's submitter. Returns STLS_OK or STLS_ERR_NOMEM / STLS_ERR_LIMIT. */
[[nodiscard]] enum stls_err stls_keyop_chan_start(struct stls_worker *w, int fd);

/* Stops watching the channel and frees it (the worker is ending). */
void stls_keyop_chan_stop(struct stls_worker *w);
