/* Sender groups (spec S14): which group, and so which inbound TLS policy and limits, a client
 * network belongs to.
 *
 * Loaded from the --sender-groups file, one entry a line (core/table_file.h):
 *
 *   # group      tls        networks...                         [limits]
 *   TRUSTED      off        127.0.0.0/8 10.0.0.0/8
 *   PARTNERS     required   192.0.2.0/24 2001:db8::/32          max-sessions=50 max-per-ip=5 rate=600
 *
 * - group: 1 to 63 of [A-Za-z0-9_.-], case-sensitive (two names that differ only in case are
 *   refused, as a likely typo);
 * - tls: off, preferred or required (S11-S13), case-insensitive;
 * - then, in any order, one or more networks (IPv4 or IPv6 CIDR; a bare address is a /32 or a
 *   /128) and optional limits: max-sessions=N (concurrent sessions of the whole group),
 *   max-per-ip=N (concurrent sessions per client address in the group), rate=N (messages a
 *   minute per client address in the group), N from 1 to 1000000; a limit left out is 0,
 *   unlimited.
 *
 * A group may span several lines (a line holds 16 fields at most): the same name again adds
 * networks, but only with the same tls and limits as on the group's first line; anything else is
 * an error naming both lines. Host bits must be clear (10.1.2.3/8 is refused with the network
 * meant); a network listed twice, in any group, is refused naming the other line. An
 * IPv4-mapped IPv6 network (::ffff:0:0/96 and inside) is refused: IPv4-mapped clients are looked
 * up as IPv4, so it could never match; write it as IPv4. For the same reason a wider IPv6
 * network such as ::/0 never matches an IPv4 client. At most 4096 groups and 1,000,000 networks.
 *
 * The longest matching prefix wins, across all groups. The table is immutable once loaded and
 * read by every worker at once without locks; a lookup is one binary search over the disjoint
 * address ranges the networks cut the address space into (IPv4 and IPv6 apart), and allocates
 * nothing. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/err.h"
#include "core/span.h"

#define STLS_SENDER_GROUPS_MAX_GROUPS	4096u
#define STLS_SENDER_GROUPS_MAX_NETWORKS 1000000u
#define STLS_SENDER_GROUPS_MAX_LIMIT	1000000u

/* One group. Limits are 0 for unlimited. */
struct stls_sender_group {
	char name[64];		  /* NUL-terminated, as the file spells it */
	enum stls_tls_policy tls; /* the inbound TLS policy for the group's clients */
	uint32_t max_sessions;	  /* concurrent sessions of the whole group */
	uint32_t max_per_ip;	  /* concurrent sessions per client address */
	uint32_t rate_per_min;	  /* messages a minute per client address */
	uint32_t index;		  /* 0 .. count - 1, in order of first appearance in the file */
	unsigned line;		  /* the line the group first appears on, for messages */
};

struct stls_sender_groups;

/* Loads the sender-groups file at path. Returns STLS_OK with *out set, or an error with *out
 * NULL and err (err_len octets) holding "PATH:LINE: why" (or "PATH: why"): STLS_ERR_CONFIG for a
 * malformed line (too few fields, a bad group name, an unknown tls mode, a bad network, host bits
 * set, a network listed twice, an unknown limit or a bad limit value, a group repeated with other
 * settings, too many groups or networks), STLS_ERR_IO when the file cannot be read,
 * STLS_ERR_NOMEM. The caller frees *out with stls_sender_groups_free. */
[[nodiscard]] enum stls_err stls_sender_groups_load(struct stls_sender_groups **out, const char *path, char *err,
						    size_t err_len);

/* The same over the file's bytes already in memory (text), with name standing for the file in
 * messages ("NAME:LINE: why"). */
[[nodiscard]] enum stls_err stls_sender_groups_parse(struct stls_sender_groups **out, struct stls_span text,
						     const char *name, char *err, size_t err_len);

/* The group of the client at addr (AF_INET, or AF_INET6 where an IPv4-mapped address is looked
 * up as IPv4): the one holding the longest network that contains the address. Returns a group
 * owned by the table, or NULL when no network matches, for any other family, or when groups is
 * NULL (no file). *out_network, when out_network is not NULL, is set to the matched network as
 * the file wrote it ("10.0.0.0/8", "192.0.2.7"), a NUL-terminated string valid as long as the
 * table, or to NULL with no match. Thread-safe, allocates nothing. */
const struct stls_sender_group *stls_sender_groups_lookup(const struct stls_sender_groups *groups,
							  const struct sockaddr *addr, const char **out_network);

/* The number of groups. */
size_t stls_sender_groups_count(const struct stls_sender_groups *groups);

/* The number of networks, every group's together. */
size_t stls_sender_groups_num_networks(const struct stls_sender_groups *groups);

/* The group with the given index (0 .. count - 1), owned by the table; NULL past the end. */
const struct stls_sender_group *stls_sender_groups_at(const struct stls_sender_groups *groups, size_t index);

/* Frees a table (NULL or *groups NULL is fine) and sets *groups to NULL. */
void stls_sender_groups_free(struct stls_sender_groups **groups);
