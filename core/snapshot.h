/* The snapshot: everything the workers read that may change while the daemon runs.
 *
 * A snapshot is immutable once published. The main thread builds a new one (a reload, or the
 * backend's capabilities read again), publishes it with one atomic pointer store, and retires the
 * old one. Workers read the current pointer with a plain load once per loop turn; each session
 * keeps the snapshot it started with until it ends. A worker counts, privately, how many of its
 * sessions use each snapshot and publishes on its own cache line the oldest generation it still
 * uses; the main thread frees a retired snapshot once every worker has moved past it. Readers
 * take no lock and do no atomic read-modify-write. */
#pragma once

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "proto/ehlo.h"
#include "tls/tickets.h"

struct stls_tls_server;
struct stls_outbound_conf;
struct stls_inbound_conf;

struct stls_snapshot {
	uint64_t gen;
	const struct stls_config *cfg;
	struct sockaddr_storage backend_addr; /* resolved --backend */
	socklen_t backend_addr_len;
	bool caps_known; /* the backend answered the last probe */
	struct stls_ehlo_caps caps;
	struct stls_tls_server *tls;	    /* the inbound certificate's context (a reference) */
	struct stls_ticket_keys tickets;    /* session-ticket keys, the first encrypting */
	struct stls_outbound_conf *out;	    /* outbound relay tables and TLS (a reference), or NULL */
	struct stls_inbound_conf *inbound;  /* sender groups (a reference), or NULL */
	struct stls_snapshot *retired_next; /* main thread only */
};

/* A worker's published state, alone on its cache line. */
struct stls_snapshot_reader {
	alignas(64) _Atomic uint64_t oldest_gen; /* UINT64_MAX when it uses none */
};

/* The current snapshot (acquire load). */
struct stls_snapshot *stls_snapshot_current(void);

/* Makes snap current and retires the previous one (main thread only). snap->gen is assigned
 * here. A published snapshot owns one reference to snap->tls. */
void stls_snapshot_publish(struct stls_snapshot *snap);

/* Registers the readers whose oldest_gen decide when retired snapshots may be freed (main thread,
 * before publishing the first snapshot). */
void stls_snapshot_set_readers(struct stls_snapshot_reader *readers, unsigned num);

/* Frees every retired snapshot no reader uses any more (main thread). Returns how many remain. */
unsigned stls_snapshot_collect(void);

/* Frees the current and all retired snapshots (main thread, after the workers have stopped). */
void stls_snapshot_shutdown(void);
