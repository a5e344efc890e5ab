#include "proto/sender_groups.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/mem.h"
#include "core/table_file.h"

/* Addresses are unsigned __int128 (the build is gnu2x on gcc or clang): IPv6 as a whole, IPv4 in
 * the low 32 bits. Plain integer order is address order, and a network is the range
 * [lo, lo | host bits], which is what the lookup structure is built from. */

#define SG_NONE		 UINT32_MAX /* no network: a range no network covers */
#define SG_GROUP_SLOTS	 (2 * STLS_SENDER_GROUPS_MAX_GROUPS)
#define SG_NET_SLOTS_MIN 1024u
#define SG_NAME_MAX	 63u
#define SG_NET_TEXT_MAX	 63u /* the longest valid network, "ffff:...:255.255.255.255/128", is 49 */

static_assert(STLS_SENDER_GROUPS_MAX_GROUPS < UINT16_MAX, "a group index and a hash slot fit 16 bits");
static_assert((uint64_t)STLS_SENDER_GROUPS_MAX_NETWORKS * (SG_NET_TEXT_MAX + 1) < UINT32_MAX,
	      "text offsets fit 32 bits");

/* One network. While loading, in file order; once built, sorted by family, first address and
 * prefix length (so a network comes before the networks inside it). */
struct sg_net {
	unsigned __int128 lo; /* the first address */
	uint32_t text_off;    /* the network as written, in the table's text */
	uint32_t line;
	uint16_t group;
	uint8_t v6;	/* 0: IPv4, 1: IPv6 */
	uint8_t prefix; /* 0..32 or 0..128 */
};

/* The disjoint address ranges of one family: range i runs from start[i] to start[i + 1] - 1
 * (the last to the end of the family's space) and its longest matching network is net[i], an
 * index into nets, or SG_NONE. start[0] is 0, so every address falls in some range. */
struct stls_sender_groups {
	struct stls_sender_group *groups;
	size_t num_groups;
	struct sg_net *nets;
	size_t num_nets;
	char *text;
	uint32_t *v4_start;
	uint32_t *v4_net;
	size_t num_v4;
	unsigned __int128 *v6_start;
	uint32_t *v6_net;
	size_t num_v6;
};

/* What a load collects before the ranges are built. group_slots and net_slots are open-addressing
 * hash sets holding index + 1 (0 is empty): groups by case-folded name, networks by family,
 * prefix and address, so a repeat is found as its line is read and names the first line. */
struct sg_load {
	struct stls_sender_group *groups;
	size_t num_groups;
	size_t cap_groups;
	uint16_t group_slots[SG_GROUP_SLOTS];
	struct sg_net *nets;
	size_t num_nets;
	size_t cap_nets;
	uint32_t *net_slots;
	size_t num_net_slots;
	char *text;
	size_t text_len;
	size_t text_cap;
};

/* One line's settings for its group. */
struct sg_settings {
	enum stls_tls_policy tls;
	uint32_t limits[3]; /* in limit_names order */
};

static const char *const limit_names[3] = { "max-sessions", "max-per-ip", "rate" };

static unsigned __int128 sg_host_mask(unsigned width, unsigned prefix)
{
	unsigned bits = width - prefix;
	return bits >= 128 ? ~(unsigned __int128)0 : (((unsigned __int128)1 << bits) - 1);
}

static unsigned sg_width(const struct sg_net *n)
{
	return n->v6 ? 128 : 32;
}

static unsigned __int128 sg_net_hi(const struct sg_net *n)
{
	return n->lo | sg_host_mask(sg_width(n), n->prefix);
}

static unsigned __int128 sg_from_bytes(const uint8_t *p, size_t len)
{
	unsigned __int128 v = 0;
	for (size_t i = 0; i < len; i++)
		v = (v << 8) | p[i];
	return v;
}

static void sg_to_bytes(uint8_t *out, size_t len, unsigned __int128 v)
{
	for (size_t i = len; i-- > 0; v >>= 8)
		out[i] = (uint8_t)v;
}

static uint64_t sg_mix(uint64_t x)
{
	/* splitmix64's finaliser: the file is the operator's, so nothing here needs to resist
	 * chosen collisions, only to spread nearby prefixes. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t sg_net_hash(const struct sg_net *n)
{
	return sg_mix((uint64_t)(n->lo >> 64) ^ sg_mix((uint64_t)n->lo ^ ((uint64_t)n->prefix << 1 | n->v6)));
}

static bool sg_net_same(const struct sg_net *a, const struct sg_net *b)
{
	return a->v6 == b->v6 && a->prefix == b->prefix && a->lo == b->lo;
}

static uint32_t sg_name_hash(struct stls_span name)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < name.len; i++)
		h = (h ^ stls_ascii_lower(name.ptr[i])) * 16777619u;
	return h;
}

static bool sg_name_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
	       c == '-';
}

static bool sg_parse_tls(enum stls_tls_policy *out, struct stls_span s)
{
	for (unsigned p = 0; p < STLS_TLS__COUNT; p++) {
		if (stls_span_eq_nocase(s, stls_span_cstr(stls_tls_policy_str((enum stls_tls_policy)p)))) {
			*out = (enum stls_tls_policy)p;
			return true;
		}
	}
	return false;
}

/* Parses "key=N" into settings; seen tracks the keys this line already gave. */
static enum stls_err sg_parse_limit(struct sg_settings *settings, bool *seen, struct stls_span field, char *why,
				    size_t why_len)
{
	char shown[100];
	const uint8_t *eq = memchr(field.ptr, '=', field.len);
	struct stls_span key = stls_span_head(field, (size_t)(eq - field.ptr));
	struct stls_span value = stls_span_from(field, (size_t)(eq - field.ptr) + 1);
	for (unsigned k = 0; k < 3; k++) {
		if (!stls_span_eq_nocase(key, stls_span_cstr(limit_names[k])))
			continue;
		if (seen[k]) {
			snprintf(why, why_len, "%s given twice", limit_names[k]);
			return STLS_ERR_CONFIG;
		}
		uint64_t v;
		if (!stls_span_to_u64(value, STLS_SENDER_GROUPS_MAX_LIMIT, &v) || v == 0) {
			snprintf(why, why_len,
				 "bad value \"%s\" for %s: a number from 1 to %u (leave it out for no limit)",
				 stls_span_printable(shown, sizeof(shown), value), limit_names[k],
				 STLS_SENDER_GROUPS_MAX_LIMIT);
			return STLS_ERR_CONFIG;
		}
		seen[k] = true;
		settings->limits[k] = (uint32_t)v;
		return STLS_OK;
	}
	snprintf(why, why_len, "unknown limit \"%s\" (max-sessions, max-per-ip, rate)",
		 stls_span_printable(shown, sizeof(shown), key));
	return STLS_ERR_CONFIG;
}

/* Parses a network ("192.0.2.0/24", "2001:db8::/32", "192.0.2.7") into out's family, prefix and
 * first address. */
static enum stls_err sg_parse_network(struct sg_net *out, struct stls_span field, char *why, size_t why_len)
{
	char text[SG_NET_TEXT_MAX + 1], shown[100];
	uint8_t bytes[16];
	stls_span_printable(shown, sizeof(shown), field);
	const uint8_t *slash = memchr(field.ptr, '/', field.len);
	size_t addr_len = slash ? (size_t)(slash - field.ptr) : field.len;
	bool parsed = false;
	unsigned width = 0;
	if (field.len <= SG_NET_TEXT_MAX && addr_len > 0) {
		/* The field is at most 63 octets and holds no NUL (the reader refuses NUL lines). */
		memcpy(text, field.ptr, addr_len);
		text[addr_len] = '\0';
		if (inet_pton(AF_INET, text, bytes) == 1) {
			parsed = true;
			width = 32;
		} else if (inet_pton(AF_INET6, text, bytes) == 1) {
			parsed = true;
			width = 128;
		}
	}
	if (!parsed) {
		snprintf(why, why_len,
			 "bad network \"%s\": expected an IPv4 or IPv6 address with an optional /PREFIX "
			 "(192.0.2.0/24, 2001:db8::/32, 192.0.2.7)",
			 shown);
		return STLS_ERR_CONFIG;
	}
	uint64_t prefix = width;
	if (slash && !stls_span_to_u64(stls_span_from(field, addr_len + 1), width, &prefix)) {
		snprintf(why, why_len, "bad network \"%s\": expected a prefix length from 0 to %u after the '/'", shown,
			 width);
		return STLS_ERR_CONFIG;
	}
	out->v6 = width == 128;
	out->prefix = (uint8_t)prefix;
	unsigned __int128 addr = sg_from_bytes(bytes, width / 8);
	unsigned __int128 host = sg_host_mask(width, out->prefix);
	out->lo = addr & ~host;
	char meant[INET6_ADDRSTRLEN];
	if (addr & host) {
		sg_to_bytes(bytes, width / 8, out->lo);
		inet_ntop(out->v6 ? AF_INET6 : AF_INET, bytes, meant, sizeof(meant));
		snprintf(why, why_len, "%s: host bits set, did you mean %s/%u?", shown, meant, (unsigned)out->prefix);
		return STLS_ERR_CONFIG;
	}
	/* ::ffff:0:0/96 holds the IPv4-mapped addresses, which lookups turn into IPv4. */
	if (out->v6 && out->prefix >= 96 && (out->lo >> 32) == 0xffff) {
		sg_to_bytes(bytes, 4, out->lo);
		inet_ntop(AF_INET, bytes, meant, sizeof(meant));
		snprintf(why, why_len,
			 "%s is IPv4-mapped and would never match (such clients are looked up as IPv4): write %s/%u",
			 shown, meant, (unsigned)out->prefix - 96);
		return STLS_ERR_CONFIG;
	}
	return STLS_OK;
}

static void sg_format_limit(char *out, size_t out_len, unsigned k, uint32_t v)
{
	if (v)
		snprintf(out, out_len, "%s=%u", limit_names[k], v);
	else
		snprintf(out, out_len, "no %s", limit_names[k]);
}

/* Checks that a repeated group's line gives what its first line gave. */
static enum stls_err sg_same_settings(const struct stls_sender_group *g, const struct sg_settings *s, char *why,
				      size_t why_len)
{
	static const char *const tail = "(every line of a group must give the same tls and limits)";
	if (s->tls != g->tls) {
		snprintf(why, why_len, "group %s: tls %s here but %s on line %u %s", g->name,
			 stls_tls_policy_str(s->tls), stls_tls_policy_str(g->tls), g->line, tail);
		return STLS_ERR_CONFIG;
	}
	const uint32_t had[3] = { g->max_sessions, g->max_per_ip, g->rate_per_min };
	for (unsigned k = 0; k < 3; k++) {
		if (s->limits[k] == had[k])
			continue;
		char here[40], there[40];
		sg_format_limit(here, sizeof(here), k, s->limits[k]);
		sg_format_limit(there, sizeof(there), k, had[k]);
		snprintf(why, why_len, "group %s: %s here but %s on line %u %s", g->name, here, there, g->line, tail);
		return STLS_ERR_CONFIG;
	}
	return STLS_OK;
}

/* Finds the group called name or adds it; *out_index is its index. */
static enum stls_err sg_group(struct sg_load *ld, uint16_t *out_index, struct stls_span name,
			      const struct sg_settings *s, unsigned lineno, char *why, size_t why_len)
{
	char shown[100];
	size_t slot = sg_name_hash(name) % SG_GROUP_SLOTS;
	for (; ld->group_slots[slot]; slot = (slot + 1) % SG_GROUP_SLOTS) {
		const struct stls_sender_group *g = &ld->groups[ld->group_slots[slot] - 1];
		if (!stls_span_eq_nocase(name, stls_span_cstr(g->name)))
			continue;
		if (!stls_span_eq(name, stls_span_cstr(g->name))) {
			snprintf(why, why_len, "group \"%s\" differs only in case from \"%s\" on line %u",
				 stls_span_printable(shown, sizeof(shown), name), g->name, g->line);
			return STLS_ERR_CONFIG;
		}
		STLS_TRY(sg_same_settings(g, s, why, why_len));
		*out_index = (uint16_t)g->index;
		return STLS_OK;
	}
	if (ld->num_groups == STLS_SENDER_GROUPS_MAX_GROUPS) {
		snprintf(why, why_len, "more than %u groups", STLS_SENDER_GROUPS_MAX_GROUPS);
		return STLS_ERR_CONFIG;
	}
	if (ld->num_groups == ld->cap_groups) {
		size_t cap = ld->cap_groups ? ld->cap_groups * 2 : 16;
		struct stls_sender_group *grown = stls_realloc(ld->groups, cap * sizeof(*grown));
		if (!grown)
			return STLS_ERR_NOMEM;
		ld->groups = grown;
		ld->cap_groups = cap;
	}
	struct stls_sender_group *g = &ld->groups[ld->num_groups];
	memset(g, 0, sizeof(*g));
	memcpy(g->name, name.ptr, name.len);
	g->tls = s->tls;
	g->max_sessions = s->limits[0];
	g->max_per_ip = s->limits[1];
	g->rate_per_min = s->limits[2];
	g->index = (uint32_t)ld->num_groups;
	g->line = lineno;
	ld->group_slots[slot] = (uint16_t)(ld->num_groups + 1);
	*out_index = (uint16_t)ld->num_groups++;
	return STLS_OK;
}

static enum stls_err sg_grow_net_slots(struct sg_load *ld)
{
	size_t num = ld->num_net_slots ? ld->num_net_slots * 2 : SG_NET_SLOTS_MIN;
	uint32_t *slots = stls_calloc(num, sizeof(*slots));
	if (!slots)
		return STLS_ERR_NOMEM;
	for (size_t i = 0; i < ld->num_nets; i++) {
		size_t slot = sg_net_hash(&ld->nets[i]) & (num - 1);
		while (slots[slot])
			slot = (slot + 1) & (num - 1);
		slots[slot] = (uint32_t)(i + 1);
	}
	stls_free_ptr(&ld->net_slots);
	ld->net_slots = slots;
	ld->num_net_slots = num;
	return STLS_OK;
}

/* Adds a parsed network (lo, prefix, family in n) of group, written as field, unless it is
 * already listed. */
static enum stls_err sg_add_network(struct sg_load *ld, struct sg_net n, struct stls_span field, char *why,
				    size_t why_len)
{
	if (ld->num_nets == STLS_SENDER_GROUPS_MAX_NETWORKS) {
		snprintf(why, why_len, "more than %u networks", STLS_SENDER_GROUPS_MAX_NETWORKS);
		return STLS_ERR_CONFIG;
	}
	/* Kept at most half full. */
	if (2 * (ld->num_nets + 1) > ld->num_net_slots)
		STLS_TRY(sg_grow_net_slots(ld));
	size_t mask = ld->num_net_slots - 1;
	size_t slot = sg_net_hash(&n) & mask;
	for (; ld->net_slots[slot]; slot = (slot + 1) & mask) {
		const struct sg_net *other = &ld->nets[ld->net_slots[slot] - 1];
		if (!sg_net_same(&n, other))
			continue;
		/* The other line may spell it differently ("10.0.0.0/08", upper-case hex): show both. */
		const char *first = ld->text + other->text_off;
		char shown[100], as[SG_NET_TEXT_MAX + 8] = "";
		stls_span_printable(shown, sizeof(shown), field);
		if (strcmp(shown, first) != 0)
			snprintf(as, sizeof(as), " as %s", first);
		snprintf(why, why_len, "%s listed twice (also on line %u%s, group %s)", shown, other->line, as,
			 ld->groups[other->group].name);
		return STLS_ERR_CONFIG;
	}
	if (ld->num_nets == ld->cap_nets) {
		size_t cap = ld->cap_nets ? ld->cap_nets * 2 : 64;
		struct sg_net *grown = stls_realloc(ld->nets, cap * sizeof(*grown));
		if (!grown)
			return STLS_ERR_NOMEM;
		ld->nets = grown;
		ld->cap_nets = cap;
	}
	if (ld->text_cap - ld->text_len < field.len + 1) {
		size_t cap = ld->text_cap ? ld->text_cap * 2 : 1024;
		while (cap - ld->text_len < field.len + 1)
			cap *= 2;
		char *grown = stls_realloc(ld->text, cap);
		if (!grown)
			return STLS_ERR_NOMEM;
		ld->text = grown;
		ld->text_cap = cap;
	}
	n.text_off = (uint32_t)ld->text_len;
	memcpy(ld->text + ld->text_len, field.ptr, field.len);
	ld->text[ld->text_len + field.len] = '\0';
	ld->text_len += field.len + 1;
	ld->nets[ld->num_nets] = n;
	ld->net_slots[slot] = (uint32_t)(ld->num_nets + 1);
	ld->num_nets++;
	return STLS_OK;
}

static enum stls_err sg_entry(void *ctx, unsigned lineno, struct stls_span *fields, unsigned num_fields, char *why,
			      size_t why_len)
{
	struct sg_load *ld = ctx;
	char shown[100];
	if (num_fields < 3) {
		snprintf(why, why_len, "expected \"group tls network... [limit=N...]\", found %u field%s", num_fields,
			 num_fields == 1 ? "" : "s");
		return STLS_ERR_CONFIG;
	}
	struct stls_span name = fields[0];
	bool name_ok = name.len >= 1 && name.len <= SG_NAME_MAX;
	for (size_t i = 0; name_ok && i < name.len; i++)
		name_ok = sg_name_char(name.ptr[i]);
	if (!name_ok) {
		snprintf(why, why_len, "bad group name \"%s\": 1 to %u letters, digits, '_', '.' or '-'",
			 stls_span_printable(shown, sizeof(shown), name), SG_NAME_MAX);
		return STLS_ERR_CONFIG;
	}
	struct sg_settings settings = { 0 };
	if (!sg_parse_tls(&settings.tls, fields[1])) {
		snprintf(why, why_len, "unknown tls mode \"%s\" (off, preferred, required)",
			 stls_span_printable(shown, sizeof(shown), fields[1]));
		return STLS_ERR_CONFIG;
	}
	/* A line holds 16 fields at most, so 14 networks. */
	struct sg_net nets[STLS_TABLE_FILE_MAX_FIELDS];
	struct stls_span texts[STLS_TABLE_FILE_MAX_FIELDS];
	unsigned num_nets = 0;
	bool seen[3] = { false, false, false };
	for (unsigned f = 2; f < num_fields; f++) {
		if (memchr(fields[f].ptr, '=', fields[f].len)) {
			STLS_TRY(sg_parse_limit(&settings, seen, fields[f], why, why_len));
			continue;
		}
		memset(&nets[num_nets], 0, sizeof(nets[0]));
		STLS_TRY(sg_parse_network(&nets[num_nets], fields[f], why, why_len));
		nets[num_nets].line = lineno;
		texts[num_nets++] = fields[f];
	}
	if (num_nets == 0) {
		snprintf(why, why_len, "no network after the tls mode (expected at least one, as 192.0.2.0/24)");
		return STLS_ERR_CONFIG;
	}
	uint16_t group;
	STLS_TRY(sg_group(ld, &group, name, &settings, lineno, why, why_len));
	for (unsigned i = 0; i < num_nets; i++) {
		nets[i].group = group;
		STLS_TRY(sg_add_network(ld, nets[i], texts[i], why, why_len));
	}
	return STLS_OK;
}

static int sg_net_cmp(const void *pa, const void *pb)
{
	const struct sg_net *a = pa, *b = pb;
	if (a->v6 != b->v6)
		return a->v6 < b->v6 ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return (int)a->prefix - (int)b->prefix;
}

/* The ranges being built for one family. */
struct sg_ranges {
	unsigned __int128 *start;
	uint32_t *net;
	size_t num;
};

/* A range with its longest matching network begins at pos. Two in a row at the same place keep
 * the later, which is the right one: a network that starts where another ended, or the network
 * left once the ones inside it have ended. */
static void sg_emit(struct sg_ranges *r, unsigned __int128 pos, uint32_t net)
{
	if (r->num > 0 && r->start[r->num - 1] == pos) {
		r->net[r->num - 1] = net;
		return;
	}
	r->start[r->num] = pos;
	r->net[r->num++] = net;
}

/* Cuts one family's address space into ranges by its networks, nets[first..end) in sorted order.
 * CIDR networks never overlap without one holding the other, so a sweep in address order with a
 * stack of the networks that hold the current address finds every range and its innermost
 * network. At most two ranges a network, plus the one before the first. */
static enum stls_err sg_build_ranges(struct sg_ranges *out, const struct sg_net *nets, size_t first, size_t end,
				     unsigned width)
{
	enum stls_err ret = STLS_OK;
	struct sg_ranges r = { 0 };
	size_t cap = 2 * (end - first) + 1;
	r.start = stls_calloc(cap, sizeof(*r.start));
	r.net = stls_calloc(cap, sizeof(*r.net));
	if (!r.start || !r.net) {
		ret = STLS_ERR_NOMEM;
		goto out;
	}
	const unsigned __int128 last = sg_host_mask(width, 0);
	uint32_t stack[129]; /* nested networks have ever longer prefixes: 0..128 */
	size_t depth = 0;
	sg_emit(&r, 0, SG_NONE);
	for (size_t i = first; i <= end; i++) {
		/* Close the networks that end before this one starts (all of them after the last). */
		while (depth > 0 && (i == end || sg_net_hi(&nets[stack[depth - 1]]) < nets[i].lo)) {
			unsigned __int128 hi = sg_net_hi(&nets[stack[--depth]]);
			if (hi != last)
				sg_emit(&r, hi + 1, depth > 0 ? stack[depth - 1] : SG_NONE);
		}
		if (i == end)
			break;
		STLS_BUG_ON(depth > width);
		sg_emit(&r, nets[i].lo, (uint32_t)i);
		stack[depth++] = (uint32_t)i;
	}
	/* Drop a range that goes on with the network before it. */
	size_t kept = 1;
	for (size_t i = 1; i < r.num; i++) {
		if (r.net[i] == r.net[kept - 1])
			continue;
		r.start[kept] = r.start[i];
		r.net[kept++] = r.net[i];
	}
	r.num = kept;
	*out = r;
	r.start = NULL;
	r.net = NULL;
out:
	stls_free_ptr(&r.start);
	stls_free_ptr(&r.net);
	return ret;
}

/* Sorts the networks and builds both families' ranges into t. */
static enum stls_err sg_build(struct stls_sender_groups *t)
{
	enum stls_err ret;
	struct sg_ranges v4 = { 0 }, v6 = { 0 };
	if (t->num_nets > 1)
		qsort(t->nets, t->num_nets, sizeof(*t->nets), sg_net_cmp);
	size_t num_v4 = 0;
	while (num_v4 < t->num_nets && !t->nets[num_v4].v6)
		num_v4++;
	ret = sg_build_ranges(&v4, t->nets, 0, num_v4, 32);
	if (ret != STLS_OK)
		goto out;
	ret = sg_build_ranges(&v6, t->nets, num_v4, t->num_nets, 128);
	if (ret != STLS_OK)
		goto out;
	/* IPv4 keeps 4-octet starts: a smaller array to search, in fewer cache lines. */
	t->v4_start = stls_calloc(v4.num, sizeof(*t->v4_start));
	if (!t->v4_start) {
		ret = STLS_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < v4.num; i++)
		t->v4_start[i] = (uint32_t)v4.start[i];
	t->v4_net = v4.net;
	v4.net = NULL;
	t->num_v4 = v4.num;
	t->v6_start = v6.start;
	t->v6_net = v6.net;
	t->num_v6 = v6.num;
	v6.start = NULL;
	v6.net = NULL;
out:
	stls_free_ptr(&v4.start);
	stls_free_ptr(&v4.net);
	stls_free_ptr(&v6.start);
	stls_free_ptr(&v6.net);
	return ret;
}

/* Builds the table from what the read collected (when read is STLS_OK) and frees ld's parts
 * either way. */
static enum stls_err sg_finish(struct stls_sender_groups **out, struct sg_load *ld, enum stls_err read,
			       const char *name, char *err, size_t err_len)
{
	enum stls_err ret = read;
	struct stls_sender_groups *t = NULL;
	stls_free_ptr(&ld->net_slots);
	if (ret != STLS_OK)
		goto out;
	t = stls_calloc(1, sizeof(*t));
	if (!t) {
		ret = STLS_ERR_NOMEM;
		goto out;
	}
	t->groups = ld->groups;
	t->num_groups = ld->num_groups;
	t->nets = ld->nets;
	t->num_nets = ld->num_nets;
	t->text = ld->text;
	ld->groups = NULL;
	ld->nets = NULL;
	ld->text = NULL;
	ret = sg_build(t);
	if (ret != STLS_OK) {
		snprintf(err, err_len, "%s: cannot build the table: %s", name, stls_err_str(ret));
		goto out;
	}
	*out = t;
	t = NULL;
out:
	stls_sender_groups_free(&t);
	stls_free_ptr(&ld->groups);
	stls_free_ptr(&ld->nets);
	stls_free_ptr(&ld->text);
	return ret;
}

enum stls_err stls_sender_groups_load(struct stls_sender_groups **out, const char *path, char *err, size_t err_len)
{
	*out = NULL;
	struct sg_load *ld = stls_calloc(1, sizeof(*ld));
	if (!ld) {
		snprintf(err, err_len, "%s: out of memory", path);
		return STLS_ERR_NOMEM;
	}
	enum stls_err ret = stls_table_file_read(path, sg_entry, ld, err, err_len);
	ret = sg_finish(out, ld, ret, path, err, err_len);
	stls_free_ptr(&ld);
	return ret;
}

enum stls_err stls_sender_groups_parse(struct stls_sender_groups **out, struct stls_span text, const char *name,
				       char *err, size_t err_len)
{
	*out = NULL;
	struct sg_load *ld = stls_calloc(1, sizeof(*ld));
	if (!ld) {
		snprintf(err, err_len, "%s: out of memory", name);
		return STLS_ERR_NOMEM;
	}
	enum stls_err ret = stls_table_file_parse(text, name, sg_entry, ld, err, err_len);
	ret = sg_finish(out, ld, ret, name, err, err_len);
	stls_free_ptr(&ld);
	return ret;
}

/* The last i with start[i] <= addr; start[0] is 0, so there is one. */
static size_t sg_find_v4(const uint32_t *start, size_t num, uint32_t addr)
{
	const uint32_t *base = start;
	while (num > 1) {
		size_t half = num / 2;
		if (base[half] <= addr)
			base += half;
		num -= half;
	}
	return (size_t)(base - start);
}

static size_t sg_find_v6(const unsigned __int128 *start, size_t num, unsigned __int128 addr)
{
	const unsigned __int128 *base = start;
	while (num > 1) {
		size_t half = num / 2;
		if (base[half] <= addr)
			base += half;
		num -= half;
	}
	return (size_t)(base - start);
}

const struct stls_sender_group *stls_sender_groups_lookup(const struct stls_sender_groups *groups,
							  const struct sockaddr *addr, const char **out_network)
{
	uint32_t net = SG_NONE;
	if (out_network)
		*out_network = NULL;
	if (!groups || !addr)
		return NULL;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
		if (groups->num_v4 > 0)
			net = groups->v4_net[sg_find_v4(groups->v4_start, groups->num_v4, ntohl(sin->sin_addr.s_addr))];
	} else if (addr->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			uint32_t v4 = (uint32_t)sg_from_bytes(a6->s6_addr + 12, 4);
			if (groups->num_v4 > 0)
				net = groups->v4_net[sg_find_v4(groups->v4_start, groups->num_v4, v4)];
		} else if (groups->num_v6 > 0) {
			net = groups->v6_net[sg_find_v6(groups->v6_start, groups->num_v6,
							sg_from_bytes(a6->s6_addr, 16))];
		}
	}
	if (net == SG_NONE)
		return NULL;
	const struct sg_net *n = &groups->nets[net];
	if (out_network)
		*out_network = groups->text + n->text_off;
	return &groups->groups[n->group];
}

size_t stls_sender_groups_count(const struct stls_sender_groups *groups)
{
	return groups ? groups->num_groups : 0;
}

size_t stls_sender_groups_num_networks(const struct stls_sender_groups *groups)
{
	return groups ? groups->num_nets : 0;
}

const struct stls_sender_group *stls_sender_groups_at(const struct stls_sender_groups *groups, size_t index)
{
	return groups && index < groups->num_groups ? &groups->groups[index] : NULL;
}

void stls_sender_groups_free(struct stls_sender_groups **groups)
{
	if (!groups || !*groups)
		return;
	struct stls_sender_groups *t = *groups;
	stls_free_ptr(&t->groups);
	stls_free_ptr(&t->nets);
	stls_free_ptr(&t->text);
	stls_free_ptr(&t->v4_start);
	stls_free_ptr(&t->v4_net);
	stls_free_ptr(&t->v6_start);
	stls_free_ptr(&t->v6_net);
	stls_free_ptr(groups);
}
