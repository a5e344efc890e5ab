/* The key-op process, from the main thread's side: starts starttls-keyop (found beside the
 * starttlsd executable), gives it the private keys, and starts it again if it dies.
 *
 * Why a process and not threads: the workers' TLS is BoringSSL, and a second libcrypto cannot
 * share the process with it (the same symbol names). OpenSSL 3's libcrypto signs RSA-2048 about
 * twice as fast as BoringSSL on CPUs with AVX-512 IFMA, and ECDSA P-256 about 2.5 times, so
 * handshakes are signed there. Each worker has its own signing channel (a SOCK_SEQPACKET pair,
 * core/keyop_wire.h); the main thread keeps the process's ends of every channel open, so a
 * restarted process takes over the same channels and no worker notices beyond the requests the
 * dead one had taken (those handshakes time out).
 *
 * The main thread keeps a copy of each key it loaded (wiped when dropped) to load it again into
 * a restarted process. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/span.h"

struct stls_keyop;

/* Whether starttls-keyop is installed beside starttlsd; *out_path (PATH_MAX bytes) gets where it
 * was looked for. */
bool stls_keyop_available(char *out_path, size_t out_len);

/* Creates the channels for num_workers workers and starts the process with num_threads signing
 * threads. Returns STLS_OK, or a failure with the reason in err. */
[[nodiscard]] enum stls_err stls_keyop_start(struct stls_keyop **out, unsigned num_threads, unsigned num_workers,
					     char *err, size_t err_len);

/* Worker index's end of its signing channel (owned by the key-op module). */
int stls_keyop_worker_fd(const struct stls_keyop *k, unsigned index);

/* Loads a PKCS#8 DER private key into the process under key_id and waits (at most 5 s) for its
 * answer. Returns STLS_OK, or STLS_ERR_CONFIG with the process's reason in err. */
[[nodiscard]] enum stls_err stls_keyop_load(struct stls_keyop *k, uint32_t key_id, struct stls_span der, char *err,
					    size_t err_len);

/* Forgets key_id here and in the process. */
void stls_keyop_drop(struct stls_keyop *k, uint32_t key_id);

/* SIGCHLD arrived: reaps the process and, if it died, starts it again (at most once a second;
 * otherwise at a later stls_keyop_tick) and loads every key again. */
void stls_keyop_on_child(struct stls_keyop *k);
void stls_keyop_tick(struct stls_keyop *k, uint64_t now_ms);

/* How many times the process was started again; the current pid (0 when none). */
unsigned stls_keyop_restarts(const struct stls_keyop *k);
int stls_keyop_pid(const struct stls_keyop *k);

/* Ends the process (closing the control channel; SIGKILL after 2 s), closes every channel and
 * frees everything; harmless on NULL. Call after the workers stopped. */
void stls_keyop_stop(struct stls_keyop **pk);
