/* Unit tests for proto/routes.c: the next-hop table.
 *
 * Routes files are written into a fresh mkdtemp folder under /tmp that each test removes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/tmpdir.h"
#include "proto/routes.h"

static char tmpdir[64];

static void setup(void)
{
	stls_tmpdir_make(tmpdir, sizeof(tmpdir), "routes-test");
}

static void teardown(void)
{
	stls_tmpdir_remove(tmpdir);
}

TestSuite(routes, .init = setup, .fini = teardown);

/* Writes len bytes into a new file in the test's folder; returns its path. */
static const char *write_file_n(const char *name, const char *text, size_t len)
{
	return stls_tmpdir_file(tmpdir, name, text, len);
}

static const char *write_file(const char *name, const char *text)
{
	return write_file_n(name, text, strlen(text));
}

static void expect_parse(const char *next_hop, enum stls_route_kind kind, const char *host, uint16_t port)
{
	struct stls_route r;
	char why[256] = "";
	memset(&r, 0xa5, sizeof(r));
	cr_assert_eq(stls_route_parse(&r, stls_span_cstr(next_hop), why, sizeof(why)), STLS_OK, "%s: %s", next_hop,
		     why);
	cr_assert_eq(r.kind, kind, "%s: kind %s", next_hop, stls_route_kind_str(r.kind));
	cr_assert_str_eq(r.host, host, "%s", next_hop);
	cr_assert_eq(r.port, port, "%s: port %u", next_hop, r.port);
}

static void expect_parse_error(const char *next_hop, const char *want)
{
	struct stls_route r = { .kind = STLS_ROUTE_HOST, .host = "untouched", .port = 7 };
	char why[256] = "";
	cr_assert_eq(stls_route_parse(&r, stls_span_cstr(next_hop), why, sizeof(why)), STLS_ERR_CONFIG, "%s", next_hop);
	cr_assert_str_eq(why, want, "%s", next_hop);
	cr_assert_str_eq(r.host, "untouched", "a failed parse leaves *out alone");
}

static void expect_route(const struct stls_routes *rt, const char *domain, enum stls_route_kind kind, const char *host,
			 uint16_t port, const char *want_key)
{
	const struct stls_route *r = NULL;
	struct stls_span key = { 0 };
	stls_routes_lookup(rt, stls_span_cstr(domain), &r, &key);
	cr_assert_not_null(r, "%s", domain);
	cr_assert_eq(r->kind, kind, "%s: kind %s", domain, stls_route_kind_str(r->kind));
	cr_assert_str_eq(r->host, host, "%s", domain);
	cr_assert_eq(r->port, port, "%s: port %u", domain, r->port);
	cr_assert(stls_span_eq(key, stls_span_cstr(want_key)), "%s matched \"%.*s\", expected \"%s\"", domain,
		  (int)key.len, (const char *)key.ptr, want_key);
}

Test(routes, kind_names)
{
	cr_assert_str_eq(stls_route_kind_str(STLS_ROUTE_MX), "mx");
	cr_assert_str_eq(stls_route_kind_str(STLS_ROUTE_HOST), "host");
	cr_assert_str_eq(stls_route_kind_str(STLS_ROUTE__COUNT), "?");
}

Test(routes, next_hop_forms)
{
	expect_parse("mx", STLS_ROUTE_MX, "", 25);
	expect_parse("MX", STLS_ROUTE_MX, "", 25);
	expect_parse("[mx]", STLS_ROUTE_HOST, "mx", 25);
	expect_parse("relay", STLS_ROUTE_HOST, "relay", 25);
	expect_parse("Relay.Example.COM", STLS_ROUTE_HOST, "relay.example.com", 25);
	expect_parse("relay.example.com.", STLS_ROUTE_HOST, "relay.example.com", 25);
	expect_parse("relay.example.com:2525", STLS_ROUTE_HOST, "relay.example.com", 2525);
	expect_parse("[relay.example.com]", STLS_ROUTE_HOST, "relay.example.com", 25);
	expect_parse("[relay.example.com]:587", STLS_ROUTE_HOST, "relay.example.com", 587);
	expect_parse("127.0.0.1", STLS_ROUTE_HOST, "127.0.0.1", 25);
	expect_parse("127.0.0.1:2626", STLS_ROUTE_HOST, "127.0.0.1", 2626);
	expect_parse("[192.0.2.1]:65535", STLS_ROUTE_HOST, "192.0.2.1", 65535);
	expect_parse("[2001:DB8::25]", STLS_ROUTE_HOST, "2001:db8::25", 25);
	expect_parse("[2001:db8::25]:2525", STLS_ROUTE_HOST, "2001:db8::25", 2525);
	expect_parse("[::1]:1", STLS_ROUTE_HOST, "::1", 1);
	expect_parse("[::ffff:192.0.2.1]", STLS_ROUTE_HOST, "::ffff:192.0.2.1", 25);
	expect_parse("mx-1.example.com", STLS_ROUTE_HOST, "mx-1.example.com", 25);
}

Test(routes, next_hop_errors)
{
	expect_parse_error("", "empty host");
	expect_parse_error("[]", "empty host");
	expect_parse_error("[]:25", "empty host");
	expect_parse_error(":25", "empty host");
	expect_parse_error("host:", "invalid port \"\" (1 to 65535)");
	expect_parse_error("host:0", "invalid port \"0\" (1 to 65535)");
	expect_parse_error("host:65536", "invalid port \"65536\" (1 to 65535)");
	expect_parse_error("host:25x", "invalid port \"25x\" (1 to 65535)");
	expect_parse_error("host:-1", "invalid port \"-1\" (1 to 65535)");
	expect_parse_error("[host]:99999999999999999999999", "invalid port \"99999999999999999999999\" (1 to 65535)");
	expect_parse_error("2001:db8::1",
			   "an IPv6 address must be in brackets: \"[2001:db8::1]\" or \"[2001:db8::1]:PORT\"");
	expect_parse_error("host:25:26", "invalid host \"host:25:26\": one ':' before the port at most");
	expect_parse_error("[2001:db8::1", "no ']' after '['");
	expect_parse_error("[2001:db8::1]x", "expected \":PORT\" or nothing after ']'");
	expect_parse_error("[2001:db8::zz]", "invalid IPv6 address \"2001:db8::zz\"");
	expect_parse_error("[host:25]", "invalid IPv6 address \"host:25\"");
	expect_parse_error("256.1.1.1", "invalid IPv4 address \"256.1.1.1\"");
	expect_parse_error("1.2.3", "invalid IPv4 address \"1.2.3\"");
	expect_parse_error("[1.2.3.4.]", "invalid IPv4 address \"1.2.3.4.\"");
	expect_parse_error("ho_st", "invalid host \"ho_st\": a host name holds only letters, digits, '-' and '.'");
	expect_parse_error("-host", "invalid host \"-host\": a label of the host name starts or ends with '-'");
	expect_parse_error("host-.example",
			   "invalid host \"host-.example\": a label of the host name starts or ends with '-'");
	expect_parse_error("a..b", "invalid host \"a..b\": empty label in the host name");
	expect_parse_error("h\xc3\xa9.example",
			   "invalid host \"h??.example\": a host name holds only letters, digits, '-' and '.'");
	char label[80];
	memset(label, 'a', 64);
	label[64] = '\0';
	expect_parse_error(
		label,
		"invalid host \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": a label of the "
		"host name is longer than 63 octets");
	char big[400];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (size_t i = 10; i < sizeof(big) - 1; i += 10)
		big[i] = '.';
	expect_parse_error(big, "host longer than 253 octets");
	struct stls_route r;
	char why[64];
	cr_assert_eq(stls_route_parse(&r, stls_span_make("a\0b", 3), why, sizeof(why)), STLS_ERR_CONFIG, "NUL");
	cr_assert_eq(stls_route_parse(&r, stls_span_make("[::1\0]", 6), why, sizeof(why)), STLS_ERR_CONFIG, "NUL");
}

Test(routes, design_example_and_lookup)
{
	const char *path = write_file("routes", "# --routes FILE: domain  next-hop\n"
						"partner.test       127.0.0.1:2626\n"
						".corp.example      [relay.corp.example]\n"
						"v6.example         [2001:db8::25]:2525\n"
						"Plain.Example.     smarthost.example\n"
						"*                  mx                 # DNS MX lookup\n");
	struct stls_routes *rt = NULL;
	char err[256] = "";
	cr_assert_eq(stls_routes_load(&rt, path, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(stls_routes_count(rt), 5);
	expect_route(rt, "partner.test", STLS_ROUTE_HOST, "127.0.0.1", 2626, "partner.test");
	expect_route(rt, "PARTNER.TEST.", STLS_ROUTE_HOST, "127.0.0.1", 2626, "partner.test");
	expect_route(rt, "sub.partner.test", STLS_ROUTE_MX, "", 25, "*");
	expect_route(rt, "a.b.corp.example", STLS_ROUTE_HOST, "relay.corp.example", 25, ".corp.example");
	expect_route(rt, "corp.example", STLS_ROUTE_MX, "", 25, "*");
	expect_route(rt, "v6.example", STLS_ROUTE_HOST, "2001:db8::25", 2525, "v6.example");
	expect_route(rt, "plain.example", STLS_ROUTE_HOST, "smarthost.example", 25, "plain.example");
	expect_route(rt, "elsewhere.org", STLS_ROUTE_MX, "", 25, "*");
	expect_route(rt, "bad..corp.example", STLS_ROUTE_MX, "", 25, "*");
	stls_routes_free(&rt);
	cr_assert_null(rt);
	stls_routes_free(&rt);
}

Test(routes, star_defaults_to_mx)
{
	const char *path = write_file("routes", "partner.test [192.0.2.7]\n");
	struct stls_routes *rt = NULL;
	char err[256] = "";
	cr_assert_eq(stls_routes_load(&rt, path, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(stls_routes_count(rt), 2);
	expect_route(rt, "partner.test", STLS_ROUTE_HOST, "192.0.2.7", 25, "partner.test");
	expect_route(rt, "other.test", STLS_ROUTE_MX, "", 25, "*");
	stls_routes_free(&rt);

	path = write_file("star", "* [smarthost]:2525\n");
	cr_assert_eq(stls_routes_load(&rt, path, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(stls_routes_count(rt), 1);
	expect_route(rt, "any.test", STLS_ROUTE_HOST, "smarthost", 2525, "*");
	expect_route(rt, "\0\xff", STLS_ROUTE_HOST, "smarthost", 2525, "*");
	stls_routes_free(&rt);

	cr_assert_eq(stls_routes_default(&rt), STLS_OK);
	cr_assert_eq(stls_routes_count(rt), 1);
	expect_route(rt, "example.com", STLS_ROUTE_MX, "", 25, "*");
	stls_routes_free(&rt);
}

static void expect_load_error_n(const char *text, size_t len, enum stls_err want_err, const char *want)
{
	const char *path = write_file_n("bad", text, len);
	struct stls_routes *rt = NULL;
	char err[512] = "", full[512];
	cr_assert_eq(stls_routes_load(&rt, path, err, sizeof(err)), want_err, "%s", err);
	cr_assert_null(rt);
	snprintf(full, sizeof(full), "%s:%s", path, want);
	cr_assert_str_eq(err, full);
	unlink(path);
}

#define expect_load_error(lit, want_err, want) expect_load_error_n((lit), sizeof(lit) - 1, (want_err), (want))

Test(routes, errors_name_file_and_line)
{
	expect_load_error("a.test mx\nb.test host:0\n", STLS_ERR_CONFIG,
			  "2: invalid next hop \"host:0\": invalid port \"0\" (1 to 65535)");
	expect_load_error("a.test\n", STLS_ERR_CONFIG, "1: expected \"domain next-hop\", found 1 field");
	expect_load_error("a.test mx 25\n", STLS_ERR_CONFIG, "1: expected \"domain next-hop\", found 3 fields");
	expect_load_error("# x\na-.test mx\n", STLS_ERR_CONFIG,
			  "2: invalid domain \"a-.test\": a label starting or ending with '-'");
	expect_load_error(
		"v6.test 2001:db8::1\n", STLS_ERR_CONFIG,
		"1: invalid next hop \"2001:db8::1\": an IPv6 address must be in brackets: \"[2001:db8::1]\" or "
		"\"[2001:db8::1]:PORT\"");
	expect_load_error("a.test mx\n.b.test mx\nc.test mx\nB.TEST. [x]\n.B.Test [y]\n", STLS_ERR_CONFIG,
			  "5: duplicate entry for \".B.Test\" (first on line 2)");
	expect_load_error("* mx\n* [smarthost]\n", STLS_ERR_CONFIG, "2: duplicate entry for \"*\" (first on line 1)");
	expect_load_error("a.test m\0x\n", STLS_ERR_CONFIG, "1: NUL byte in the line");
}

Test(routes, many_entries)
{
	/* Enough entries for the arrays and the table to grow several times. */
	enum { NUM = 3000 };
	char *text = calloc(NUM, 64);
	cr_assert_not_null(text);
	size_t len = 0;
	for (unsigned i = 0; i < NUM; i++)
		len += (size_t)snprintf(text + len, 64, "d%u.test relay%u.example:%u\n", i, i % 7, 1000 + i);
	const char *path = write_file_n("many", text, len);
	free(text);
	struct stls_routes *rt = NULL;
	char err[256] = "";
	cr_assert_eq(stls_routes_load(&rt, path, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(stls_routes_count(rt), NUM + 1);
	for (unsigned i = 0; i < NUM; i++) {
		char domain[32], host[32];
		snprintf(domain, sizeof(domain), "D%u.Test", i);
		snprintf(host, sizeof(host), "relay%u.example", i % 7);
		char key[32];
		snprintf(key, sizeof(key), "d%u.test", i);
		expect_route(rt, domain, STLS_ROUTE_HOST, host, (uint16_t)(1000 + i), key);
	}
	stls_routes_free(&rt);
}
