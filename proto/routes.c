#include "proto/routes.h"

#include <arpa/inet.h>
#include <stdio.h>

#include "core/domain_table.h"
#include "core/mem.h"
#include "core/table_file.h"

#define RT_DEFAULT_PORT 25

/* The table maps a domain to an index into routes; the index is the entry's order in the file. */
struct stls_routes {
	struct stls_domain_table *table;
	struct stls_route *routes;
	size_t num;
};

/* What a load collects before the table is built. lines[i] is the line route i came from, so a
 * duplicate names both lines. */
struct rt_load {
	struct stls_domain_table_builder *b;
	struct stls_route *routes;
	unsigned *lines;
	size_t num;
	size_t cap;
};

static const char *const kind_names[STLS_ROUTE__COUNT] = {
	[STLS_ROUTE_MX] = "mx",
	[STLS_ROUTE_HOST] = "host",
};

const char *stls_route_kind_str(enum stls_route_kind kind)
{
	return (unsigned)kind < STLS_ROUTE__COUNT ? kind_names[kind] : "?";
}

static bool rt_host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Why s is not a host name (RFC 1123 2.1: letters, digits and '-' in labels of 1 to 63 octets,
 * not starting or ending with '-'; 253 octets at most; one trailing dot allowed), or NULL. */
static const char *rt_host_error(struct stls_span s)
{
	if (s.len > 0 && s.ptr[s.len - 1] == '.')
		s.len--;
	if (s.len == 0)
		return "empty host";
	if (s.len > STLS_DOMAIN_MAX_LEN)
		return "host name longer than 253 octets";
	size_t label = 0;
	for (size_t i = 0; i <= s.len; i++) {
		if (i < s.len && s.ptr[i] != '.') {
			if (!rt_host_char(s.ptr[i]))
				return "a host name holds only letters, digits, '-' and '.'";
			continue;
		}
		if (i == label)
			return "empty label in the host name";
		if (i - label > STLS_DOMAIN_MAX_LABEL)
			return "a label of the host name is longer than 63 octets";
		if (s.ptr[label] == '-' || s.ptr[i - 1] == '-')
			return "a label of the host name starts or ends with '-'";
		label = i + 1;
	}
	return NULL;
}

static bool rt_digits_and_dots(struct stls_span s)
{
	for (size_t i = 0; i < s.len; i++)
		if (!((s.ptr[i] >= '0' && s.ptr[i] <= '9') || s.ptr[i] == '.'))
			return false;
	return true;
}

/* Checks host (the part before any port, brackets removed) and copies it into out->host. */
static enum stls_err rt_set_host(struct stls_route *out, struct stls_span host, bool bracketed, char *why,
				 size_t why_len)
{
	char text[sizeof(out->host)], shown[100];
	if (host.len == 0) {
		snprintf(why, why_len, "empty host");
		return STLS_ERR_CONFIG;
	}
	if (host.len >= sizeof(text)) {
		snprintf(why, why_len, "host longer than 253 octets");
		return STLS_ERR_CONFIG;
	}
	for (size_t i = 0; i < host.len; i++)
		text[i] = (char)stls_ascii_lower(host.ptr[i]);
	text[host.len] = '\0';
	stls_span_printable(shown, sizeof(shown), host);

	uint8_t addr[16];
	if (memchr(host.ptr, ':', host.len)) {
		bool v6 = !memchr(host.ptr, '\0', host.len) && inet_pton(AF_INET6, text, addr) == 1;
		if (!bracketed && v6) {
			snprintf(why, why_len, "an IPv6 address must be in brackets: \"[%s]\" or \"[%s]:PORT\"", shown,
				 shown);
			return STLS_ERR_CONFIG;
		}
		if (!bracketed) {
			snprintf(why, why_len, "invalid host \"%s\": one ':' before the port at most", shown);
			return STLS_ERR_CONFIG;
		}
		if (!v6) {
			snprintf(why, why_len, "invalid IPv6 address \"%s\"", shown);
			return STLS_ERR_CONFIG;
		}
	} else if (rt_digits_and_dots(host)) {
		/* All digits and dots: an IPv4 address or a mistake, never a name (RFC 1123 2.1: a top
		 * label is not all-numeric). inet_pton takes only the dotted quad, no short forms. */
		if (inet_pton(AF_INET, text, addr) != 1) {
			snprintf(why, why_len, "invalid IPv4 address \"%s\"", shown);
			return STLS_ERR_CONFIG;
		}
	} else {
		const char *bad = rt_host_error(host);
		if (bad) {
			snprintf(why, why_len, "invalid host \"%s\": %s", shown, bad);
			return STLS_ERR_CONFIG;
		}
		if (text[host.len - 1] == '.')
			text[host.len - 1] = '\0';
	}
	memcpy(out->host, text, sizeof(text));
	return STLS_OK;
}

static enum stls_err rt_set_port(struct stls_route *out, struct stls_span port, char *why, size_t why_len)
{
	char shown[100];
	uint64_t v;
	if (!stls_span_to_u64(port, UINT16_MAX, &v) || v == 0) {
		snprintf(why, why_len, "invalid port \"%s\" (1 to 65535)",
			 stls_span_printable(shown, sizeof(shown), port));
		return STLS_ERR_CONFIG;
	}
	out->port = (uint16_t)v;
	return STLS_OK;
}

enum stls_err stls_route_parse(struct stls_route *out, struct stls_span next_hop, char *why, size_t why_len)
{
	struct stls_route r = { .kind = STLS_ROUTE_HOST, .port = RT_DEFAULT_PORT };
	struct stls_span host, rest;
	bool bracketed = next_hop.len > 0 && next_hop.ptr[0] == '[';

	if (stls_span_eq_nocase(next_hop, STLS_SPAN_LIT("mx"))) {
		*out = (struct stls_route){ .kind = STLS_ROUTE_MX, .port = RT_DEFAULT_PORT };
		return STLS_OK;
	}
	if (bracketed) {
		const uint8_t *close = memchr(next_hop.ptr, ']', next_hop.len);
		if (!close) {
			snprintf(why, why_len, "no ']' after '['");
			return STLS_ERR_CONFIG;
		}
		host = stls_span_make(next_hop.ptr + 1, (size_t)(close - next_hop.ptr) - 1);
		rest = stls_span_from(next_hop, (size_t)(close - next_hop.ptr) + 1);
		if (rest.len > 0 && rest.ptr[0] != ':') {
			snprintf(why, why_len, "expected \":PORT\" or nothing after ']'");
			return STLS_ERR_CONFIG;
		}
	} else {
		/* The port follows the last ':'; more than one ':' is an IPv6 address without brackets,
		 * which rt_set_host refuses with a hint. */
		size_t colon = next_hop.len;
		unsigned colons = 0;
		for (size_t i = 0; i < next_hop.len; i++)
			if (next_hop.ptr[i] == ':') {
				colon = i;
				colons++;
			}
		if (colons > 1)
			colon = next_hop.len;
		host = stls_span_head(next_hop, colon);
		rest = stls_span_from(next_hop, colon);
	}
	STLS_TRY(rt_set_host(&r, host, bracketed, why, why_len));
	if (rest.len > 0)
		STLS_TRY(rt_set_port(&r, stls_span_from(rest, 1), why, why_len));
	*out = r;
	return STLS_OK;
}

/* Appends a route, growing the arrays; *out_index is its index. */
static enum stls_err rt_append(struct rt_load *ld, size_t *out_index, const struct stls_route *route, unsigned lineno)
{
	if (ld->num == ld->cap) {
		size_t cap = ld->cap ? ld->cap * 2 : 16;
		STLS_ENSURE(cap <= UINT32_MAX, STLS_ERR_NOMEM);
		struct stls_route *routes = stls_realloc(ld->routes, cap * sizeof(*routes));
		STLS_ENSURE(routes != NULL, STLS_ERR_NOMEM);
		ld->routes = routes;
		unsigned *lines = stls_realloc(ld->lines, cap * sizeof(*lines));
		STLS_ENSURE(lines != NULL, STLS_ERR_NOMEM);
		ld->lines = lines;
		ld->cap = cap;
	}
	ld->routes[ld->num] = *route;
	ld->lines[ld->num] = lineno;
	*out_index = ld->num;
	return STLS_OK;
}

static enum stls_err rt_entry(void *ctx, unsigned lineno, struct stls_span *fields, unsigned num_fields, char *why,
			      size_t why_len)
{
	struct rt_load *ld = ctx;
	char shown[100], reason[400];
	if (num_fields != 2) {
		snprintf(why, why_len, "expected \"domain next-hop\", found %u field%s", num_fields,
			 num_fields == 1 ? "" : "s");
		return STLS_ERR_CONFIG;
	}
	const char *bad = stls_domain_table_key_error(fields[0]);
	if (bad) {
		snprintf(why, why_len, "invalid domain \"%s\": %s",
			 stls_span_printable(shown, sizeof(shown), fields[0]), bad);
		return STLS_ERR_CONFIG;
	}
	struct stls_route route;
	if (stls_route_parse(&route, fields[1], reason, sizeof(reason)) != STLS_OK) {
		snprintf(why, why_len, "invalid next hop \"%s\": %s",
			 stls_span_printable(shown, sizeof(shown), fields[1]), reason);
		return STLS_ERR_CONFIG;
	}
	size_t index;
	bool dup;
	STLS_TRY(rt_append(ld, &index, &route, lineno));
	STLS_TRY(stls_domain_table_add(ld->b, fields[0], (uint32_t)index, &dup));
	if (dup) {
		uint32_t first = 0;
		(void)stls_domain_table_builder_get(ld->b, fields[0], &first);
		snprintf(why, why_len, "duplicate entry for \"%s\" (first on line %u)",
			 stls_span_printable(shown, sizeof(shown), fields[0]), ld->lines[first]);
		return STLS_ERR_CONFIG;
	}
	ld->num++;
	return STLS_OK;
}

/* Adds the documented default, "*" = mx, unless the file has its own "*"; builds. Frees what ld
 * holds whatever happens. */
static enum stls_err rt_finish(struct stls_routes **out, struct rt_load *ld)
{
	enum stls_err ret;
	size_t index;
	bool dup;
	struct stls_routes *routes = NULL;
	struct stls_route mx = { .kind = STLS_ROUTE_MX, .port = RT_DEFAULT_PORT };
	ret = rt_append(ld, &index, &mx, 0);
	if (ret != STLS_OK)
		goto out;
	ret = stls_domain_table_add(ld->b, STLS_SPAN_LIT("*"), (uint32_t)index, &dup);
	if (ret != STLS_OK)
		goto out;
	if (!dup)
		ld->num++;
	routes = stls_calloc(1, sizeof(*routes));
	if (!routes) {
		ret = STLS_ERR_NOMEM;
		goto out;
	}
	ret = stls_domain_table_build(&routes->table, ld->b);
	ld->b = NULL;
	if (ret != STLS_OK)
		goto out;
	routes->routes = ld->routes;
	routes->num = ld->num;
	ld->routes = NULL;
	*out = routes;
	routes = NULL;
out:
	stls_domain_table_builder_free(&ld->b);
	stls_free_ptr(&ld->routes);
	stls_free_ptr(&ld->lines);
	stls_routes_free(&routes);
	return ret;
}

enum stls_err stls_routes_load(struct stls_routes **out, const char *path, char *err, size_t err_len)
{
	enum stls_err ret;
	struct rt_load ld = { 0 };
	*out = NULL;
	ret = stls_domain_table_builder_new(&ld.b);
	if (ret != STLS_OK) {
		snprintf(err, err_len, "%s: cannot make a table: %s", path, stls_err_str(ret));
		return ret;
	}
	ret = stls_table_file_read(path, rt_entry, &ld, err, err_len);
	if (ret != STLS_OK) {
		stls_domain_table_builder_free(&ld.b);
		stls_free_ptr(&ld.routes);
		stls_free_ptr(&ld.lines);
		return ret;
	}
	ret = rt_finish(out, &ld);
	if (ret != STLS_OK)
		snprintf(err, err_len, "%s: cannot build the table: %s", path, stls_err_str(ret));
	return ret;
}

enum stls_err stls_routes_default(struct stls_routes **out)
{
	struct rt_load ld = { 0 };
	*out = NULL;
	STLS_TRY(stls_domain_table_builder_new(&ld.b));
	return rt_finish(out, &ld);
}

void stls_routes_lookup(const struct stls_routes *routes, struct stls_span domain, const struct stls_route **out,
			struct stls_span *out_matched_key)
{
	static const struct stls_route fallback = { .kind = STLS_ROUTE_MX, .port = RT_DEFAULT_PORT };
	uint32_t index;
	if (stls_domain_table_lookup(routes->table, domain, &index, out_matched_key) && index < routes->num) {
		*out = &routes->routes[index];
		return;
	}
	/* Unreachable: every table has "*". Should that ever break, fall back to the default. */
	*out = &fallback;
	if (out_matched_key)
		*out_matched_key = STLS_SPAN_LIT("*");
}

size_t stls_routes_count(const struct stls_routes *routes)
{
	return stls_domain_table_count(routes->table);
}

void stls_routes_free(struct stls_routes **routes)
{
	if (!routes || !*routes)
		return;
	stls_domain_table_free(&(*routes)->table);
	stls_free_ptr(&(*routes)->routes);
	stls_free_ptr(routes);
}
