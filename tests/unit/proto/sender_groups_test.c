/* Unit tests for proto/sender_groups.c: client networks to sender groups (spec S14).
 *
 * Most tables are parsed from memory under the name "sg", so messages read "sg:LINE: why"; the
 * file tests write into a fresh mkdtemp folder under /tmp that each test removes. The large-table
 * test checks the range table against a plain scan of every network. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/tmpdir.h"
#include "core/mem.h"
#include "proto/sender_groups.h"

static char tmpdir[64];

static void setup(void)
{
	stls_tmpdir_make(tmpdir, sizeof(tmpdir), "sender-groups-test");
}

static void teardown(void)
{
	stls_tmpdir_remove(tmpdir);
}

TestSuite(sender_groups, .init = setup, .fini = teardown);

static const char *write_file(const char *name, const char *text)
{
	return stls_tmpdir_file(tmpdir, name, text, strlen(text));
}

static struct stls_sender_groups *parse_ok(const char *text)
{
	struct stls_sender_groups *t = NULL;
	char err[512] = "";
	cr_assert_eq(stls_sender_groups_parse(&t, stls_span_cstr(text), "sg", err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_not_null(t);
	return t;
}

/* An address ("10.1.2.3", "2001:db8::1", "::ffff:10.1.2.3") as a socket address. */
static struct sockaddr_storage sa(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(25);
	} else {
		cr_assert_eq(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1, "%s", text);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(25);
	}
	return ss;
}

/* Expects addr to fall in group want (NULL: in none) through the network want_network. */
static const struct stls_sender_group *expect_group(const struct stls_sender_groups *t, const char *addr,
						    const char *want, const char *want_network)
{
	struct sockaddr_storage ss = sa(addr);
	const char *network = "unset";
	const struct stls_sender_group *g = stls_sender_groups_lookup(t, (const struct sockaddr *)&ss, &network);
	if (!want) {
		cr_assert_null(g, "%s: group %s, expected none", addr, g ? g->name : "");
		cr_assert_null(network, "%s: network %s with no group", addr, network ? network : "");
		return NULL;
	}
	cr_assert_not_null(g, "%s: no group, expected %s", addr, want);
	cr_assert_str_eq(g->name, want, "%s", addr);
	cr_assert_not_null(network, "%s", addr);
	cr_assert_str_eq(network, want_network, "%s", addr);
	/* Without out_network too. */
	cr_assert_eq(stls_sender_groups_lookup(t, (const struct sockaddr *)&ss, NULL), g);
	return g;
}

/* Parses text and expects it to fail with "sg:" want. */
static void expect_error(const char *text, const char *want)
{
	struct stls_sender_groups *t = NULL;
	char err[512] = "", full[512];
	cr_assert_eq(stls_sender_groups_parse(&t, stls_span_cstr(text), "sg", err, sizeof(err)), STLS_ERR_CONFIG,
		     "%s: %s", text, err);
	cr_assert_null(t);
	snprintf(full, sizeof(full), "sg:%s", want);
	cr_assert_str_eq(err, full, "for %s", text);
}

/* Parses text and expects a failure on line want_line whose reason contains want_part. */
static void expect_error_has(const char *text, unsigned want_line, const char *want_part)
{
	struct stls_sender_groups *t = NULL;
	char err[512] = "", prefix[32];
	cr_assert_eq(stls_sender_groups_parse(&t, stls_span_cstr(text), "sg", err, sizeof(err)), STLS_ERR_CONFIG,
		     "%s: %s", text, err);
	cr_assert_null(t);
	snprintf(prefix, sizeof(prefix), "sg:%u: ", want_line);
	cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0, "%s: \"%s\" does not start with %s", text, err, prefix);
	cr_assert_not_null(strstr(err, want_part), "%s: \"%s\" lacks \"%s\"", text, err, want_part);
}

Test(sender_groups, design_example)
{
	const char *path = write_file("groups", "# --sender-groups FILE: group  tls  networks...\n"
						"TRUSTED            off        127.0.0.0/8 10.0.0.0/8\n"
						"PARTNERS           required   192.0.2.0/24 2001:db8::/32\n");
	struct stls_sender_groups *t = NULL;
	char err[512] = "";
	cr_assert_eq(stls_sender_groups_load(&t, path, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(stls_sender_groups_count(t), 2);
	cr_assert_eq(stls_sender_groups_num_networks(t), 4);

	const struct stls_sender_group *trusted = stls_sender_groups_at(t, 0);
	const struct stls_sender_group *partners = stls_sender_groups_at(t, 1);
	cr_assert_not_null(trusted);
	cr_assert_not_null(partners);
	cr_assert_null(stls_sender_groups_at(t, 2));
	cr_assert_str_eq(trusted->name, "TRUSTED");
	cr_assert_eq(trusted->tls, STLS_TLS_OFF);
	cr_assert_eq(trusted->index, 0);
	cr_assert_eq(trusted->line, 2);
	cr_assert_str_eq(partners->name, "PARTNERS");
	cr_assert_eq(partners->tls, STLS_TLS_REQUIRED);
	cr_assert_eq(partners->index, 1);
	cr_assert_eq(partners->max_sessions, 0);
	cr_assert_eq(partners->max_per_ip, 0);
	cr_assert_eq(partners->rate_per_min, 0);

	cr_assert_eq(expect_group(t, "127.0.0.1", "TRUSTED", "127.0.0.0/8"), trusted);
	expect_group(t, "10.0.0.0", "TRUSTED", "10.0.0.0/8");
	expect_group(t, "10.255.255.255", "TRUSTED", "10.0.0.0/8");
	cr_assert_eq(expect_group(t, "192.0.2.25", "PARTNERS", "192.0.2.0/24"), partners);
	expect_group(t, "2001:db8::25", "PARTNERS", "2001:db8::/32");
	expect_group(t, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "PARTNERS", "2001:db8::/32");
	expect_group(t, "11.0.0.0", NULL, NULL);
	expect_group(t, "9.255.255.255", NULL, NULL);
	expect_group(t, "192.0.3.0", NULL, NULL);
	expect_group(t, "2001:db9::", NULL, NULL);
	expect_group(t, "::1", NULL, NULL);
	stls_sender_groups_free(&t);
	cr_assert_null(t);
	stls_sender_groups_free(&t); /* NULL is fine */
	stls_sender_groups_free(NULL);
}

Test(sender_groups, longest_prefix_wins_across_groups)
{
	struct stls_sender_groups *t = parse_ok("WIDE    off        10.0.0.0/8\n"
						"MIDDLE  preferred  10.1.2.0/24 10.255.255.0/24\n"
						"HOST    required   10.1.2.3 10.1.2.255/32\n"
						"WIDE    off        10.1.0.0/16\n");
	expect_group(t, "10.0.0.1", "WIDE", "10.0.0.0/8");
	expect_group(t, "10.1.0.0", "WIDE", "10.1.0.0/16");
	expect_group(t, "10.1.2.0", "MIDDLE", "10.1.2.0/24");
	expect_group(t, "10.1.2.2", "MIDDLE", "10.1.2.0/24");
	expect_group(t, "10.1.2.3", "HOST", "10.1.2.3");
	expect_group(t, "10.1.2.4", "MIDDLE", "10.1.2.0/24");
	expect_group(t, "10.1.2.255", "HOST", "10.1.2.255/32");
	expect_group(t, "10.1.3.0", "WIDE", "10.1.0.0/16");
	expect_group(t, "10.1.255.255", "WIDE", "10.1.0.0/16");
	expect_group(t, "10.2.0.0", "WIDE", "10.0.0.0/8");
	expect_group(t, "10.255.254.255", "WIDE", "10.0.0.0/8");
	expect_group(t, "10.255.255.0", "MIDDLE", "10.255.255.0/24");
	expect_group(t, "10.255.255.255", "MIDDLE", "10.255.255.0/24");
	expect_group(t, "11.0.0.0", NULL, NULL);
	cr_assert_eq(stls_sender_groups_count(t), 3, "WIDE's second line adds to the group");
	cr_assert_eq(stls_sender_groups_num_networks(t), 6);
	stls_sender_groups_free(&t);
}

Test(sender_groups, whole_address_space_and_its_ends)
{
	struct stls_sender_groups *t = parse_ok("ALL    preferred  0.0.0.0/0 ::/0\n"
						"TOP    required   255.255.255.255 255.255.255.0/24 ffff::/16\n"
						"BOTTOM off        0.0.0.0/32 ::/128 ::/8\n");
	expect_group(t, "0.0.0.0", "BOTTOM", "0.0.0.0/32");
	expect_group(t, "0.0.0.1", "ALL", "0.0.0.0/0");
	expect_group(t, "128.0.0.0", "ALL", "0.0.0.0/0");
	expect_group(t, "255.255.254.255", "ALL", "0.0.0.0/0");
	expect_group(t, "255.255.255.0", "TOP", "255.255.255.0/24");
	expect_group(t, "255.255.255.254", "TOP", "255.255.255.0/24");
	expect_group(t, "255.255.255.255", "TOP", "255.255.255.255");
	expect_group(t, "::", "BOTTOM", "::/128");
	expect_group(t, "::1", "BOTTOM", "::/8");
	expect_group(t, "100::", "ALL", "::/0");
	expect_group(t, "fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ALL", "::/0");
	expect_group(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "TOP", "ffff::/16");
	/* ::/0 holds ::ffff:0:0/96 on paper, but those clients are IPv4 here. */
	expect_group(t, "::ffff:255.255.255.255", "TOP", "255.255.255.255");
	stls_sender_groups_free(&t);
}

Test(sender_groups, ipv6_and_v4_mapped_clients)
{
	struct stls_sender_groups *t = parse_ok("V4     off        10.0.0.0/8 192.0.2.7\n"
						"V6     required   2001:DB8::/32 ::1\n"
						"INNER  preferred  2001:db8:1::/48 2001:db8:1:2::/64\n");
	expect_group(t, "2001:db8::1", "V6", "2001:DB8::/32");
	expect_group(t, "2001:db8:1::1", "INNER", "2001:db8:1::/48");
	expect_group(t, "2001:db8:1:2::1", "INNER", "2001:db8:1:2::/64");
	expect_group(t, "2001:db8:1:3::", "INNER", "2001:db8:1::/48");
	expect_group(t, "2001:db8:2::", "V6", "2001:DB8::/32");
	expect_group(t, "::1", "V6", "::1");
	expect_group(t, "::2", NULL, NULL);
	/* An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d. */
	expect_group(t, "::ffff:10.1.2.3", "V4", "10.0.0.0/8");
	expect_group(t, "::ffff:192.0.2.7", "V4", "192.0.2.7");
	expect_group(t, "::ffff:192.0.2.8", NULL, NULL);
	/* IPv4-compatible (::a.b.c.d, deprecated) is IPv6, not IPv4. */
	expect_group(t, "::10.1.2.3", NULL, NULL);

	/* Another family, a NULL address, a NULL table: no group. */
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	const char *network = "unset";
	cr_assert_null(stls_sender_groups_lookup(t, (const struct sockaddr *)&un, &network));
	cr_assert_null(network);
	cr_assert_null(stls_sender_groups_lookup(t, NULL, NULL));
	struct sockaddr_storage ss = sa("10.1.2.3");
	network = "unset";
	cr_assert_null(stls_sender_groups_lookup(NULL, (const struct sockaddr *)&ss, &network));
	cr_assert_null(network);
	cr_assert_eq(stls_sender_groups_count(NULL), 0);
	cr_assert_eq(stls_sender_groups_num_networks(NULL), 0);
	cr_assert_null(stls_sender_groups_at(NULL, 0));
	stls_sender_groups_free(&t);
}

Test(sender_groups, one_family_only)
{
	struct stls_sender_groups *t = parse_ok("ONLY6 off 2001:db8::/32\n");
	expect_group(t, "10.0.0.1", NULL, NULL);
	expect_group(t, "::ffff:10.0.0.1", NULL, NULL);
	expect_group(t, "2001:db8::1", "ONLY6", "2001:db8::/32");
	stls_sender_groups_free(&t);
	t = parse_ok("ONLY4 off 10.0.0.0/8\n");
	expect_group(t, "2001:db8::1", NULL, NULL);
	expect_group(t, "10.0.0.1", "ONLY4", "10.0.0.0/8");
	stls_sender_groups_free(&t);
	t = parse_ok("# nothing but a comment\n\n");
	cr_assert_eq(stls_sender_groups_count(t), 0);
	expect_group(t, "10.0.0.1", NULL, NULL);
	expect_group(t, "2001:db8::1", NULL, NULL);
	stls_sender_groups_free(&t);
}

Test(sender_groups, limits)
{
	struct stls_sender_groups *t =
		parse_ok("PARTNERS  required  192.0.2.0/24 2001:db8::/32  max-sessions=50 max-per-ip=5 rate=600\n"
			 "MIXED     Preferred rate=1 198.51.100.0/24 MAX-SESSIONS=1000000 203.0.113.0/24\n"
			 "PLAIN     OFF       10.0.0.0/8\n"
			 "PARTNERS  REQUIRED  rate=600 max-per-ip=5 max-sessions=50 198.18.0.0/15\n");
	cr_assert_eq(stls_sender_groups_count(t), 3);
	const struct stls_sender_group *p = expect_group(t, "198.18.1.1", "PARTNERS", "198.18.0.0/15");
	cr_assert_eq(p->tls, STLS_TLS_REQUIRED);
	cr_assert_eq(p->max_sessions, 50);
	cr_assert_eq(p->max_per_ip, 5);
	cr_assert_eq(p->rate_per_min, 600);
	const struct stls_sender_group *m = expect_group(t, "203.0.113.9", "MIXED", "203.0.113.0/24");
	cr_assert_eq(m->tls, STLS_TLS_PREFERRED);
	cr_assert_eq(m->max_sessions, 1000000);
	cr_assert_eq(m->max_per_ip, 0, "absent is unlimited");
	cr_assert_eq(m->rate_per_min, 1);
	const struct stls_sender_group *plain = expect_group(t, "10.0.0.1", "PLAIN", "10.0.0.0/8");
	cr_assert_eq(plain->tls, STLS_TLS_OFF);
	cr_assert_eq(plain->max_sessions + plain->max_per_ip + plain->rate_per_min, 0);
	stls_sender_groups_free(&t);
}

Test(sender_groups, errors_name_the_line)
{
	expect_error("A off\n", "1: expected \"group tls network... [limit=N...]\", found 2 fields");
	expect_error("\n# comment\nA\n", "3: expected \"group tls network... [limit=N...]\", found 1 field");
	expect_error("A/B off 10.0.0.0/8\n", "1: bad group name \"A/B\": 1 to 63 letters, digits, '_', '.' or '-'");
	expect_error_has("A234567890123456789012345678901234567890123456789012345678901234 off 10.0.0.0/8\n", 1,
			 "bad group name");
	expect_error("A maybe 10.0.0.0/8\n", "1: unknown tls mode \"maybe\" (off, preferred, required)");
	expect_error("A off 10.0.0.256\n",
		     "1: bad network \"10.0.0.256\": expected an IPv4 or IPv6 address with an optional /PREFIX "
		     "(192.0.2.0/24, 2001:db8::/32, 192.0.2.7)");
	expect_error_has("A off mail.example.com\n", 1, "bad network \"mail.example.com\"");
	expect_error_has("A off 10.0/8\n", 1, "bad network \"10.0/8\"");
	expect_error_has("A off /8\n", 1, "bad network \"/8\"");
	expect_error_has("A off 2001:db8::/32%eth0\n", 1, "bad network");
	expect_error("A off 10.0.0.0/33\n",
		     "1: bad network \"10.0.0.0/33\": expected a prefix length from 0 to 32 after the '/'");
	expect_error_has("A off 10.0.0.0/\n", 1, "expected a prefix length from 0 to 32");
	expect_error_has("A off 10.0.0.0/-1\n", 1, "expected a prefix length from 0 to 32");
	expect_error_has("A off 2001:db8::/129\n", 1, "expected a prefix length from 0 to 128");
	expect_error("A off 10.1.2.3/8\n", "1: 10.1.2.3/8: host bits set, did you mean 10.0.0.0/8?");
	expect_error("A off 2001:db8::1/32\n", "1: 2001:db8::1/32: host bits set, did you mean 2001:db8::/32?");
	expect_error("A off 0.0.0.1/0\n", "1: 0.0.0.1/0: host bits set, did you mean 0.0.0.0/0?");
	expect_error("A off 10.0.0.0/8\nB required 192.0.2.0/24 10.0.0.0/8\n",
		     "2: 10.0.0.0/8 listed twice (also on line 1, group A)");
	expect_error("A off 10.0.0.5/32\n\nA off 10.0.0.5\n",
		     "3: 10.0.0.5 listed twice (also on line 1 as 10.0.0.5/32, group A)");
	expect_error("A off 2001:db8::/32 2001:DB8::/32\n",
		     "1: 2001:DB8::/32 listed twice (also on line 1 as 2001:db8::/32, group A)");
	expect_error("A off 10.0.0.0/8 burst=5\n", "1: unknown limit \"burst\" (max-sessions, max-per-ip, rate)");
	expect_error("A off 10.0.0.0/8 max-sessions=0\n",
		     "1: bad value \"0\" for max-sessions: a number from 1 to 1000000 (leave it out for no limit)");
	expect_error_has("A off 10.0.0.0/8 max-per-ip=1000001\n", 1, "bad value \"1000001\" for max-per-ip");
	expect_error_has("A off 10.0.0.0/8 rate=\n", 1, "bad value \"\" for rate");
	expect_error_has("A off 10.0.0.0/8 rate=1e3\n", 1, "bad value \"1e3\" for rate");
	expect_error_has("A off 10.0.0.0/8 rate=99999999999999999999999\n", 1, "bad value");
	expect_error("A off 10.0.0.0/8 rate=5 rate=5\n", "1: rate given twice");
	expect_error("A off rate=5 max-per-ip=2\n",
		     "1: no network after the tls mode (expected at least one, as 192.0.2.0/24)");
	expect_error("A off 10.0.0.0/8\nA required 192.0.2.0/24\n",
		     "2: group A: tls required here but off on line 1 (every line of a group must give the same tls "
		     "and limits)");
	expect_error("A off 10.0.0.0/8 rate=10\nB off 192.0.2.0/24\nA off 198.51.100.0/24 rate=20\n",
		     "3: group A: rate=20 here but rate=10 on line 1 (every line of a group must give the same tls "
		     "and limits)");
	expect_error("A off 10.0.0.0/8 max-sessions=3\nA off 198.51.100.0/24\n",
		     "2: group A: no max-sessions here but max-sessions=3 on line 1 (every line of a group must give "
		     "the same tls and limits)");
	expect_error("Trusted off 10.0.0.0/8\nTRUSTED off 192.0.2.0/24\n",
		     "2: group \"TRUSTED\" differs only in case from \"Trusted\" on line 1");
	expect_error("A off ::ffff:10.0.0.0/104\n",
		     "1: ::ffff:10.0.0.0/104 is IPv4-mapped and would never match (such clients are looked up as "
		     "IPv4): write 10.0.0.0/8");
	/* The first error stops the read: a later good line does not matter, an earlier one is kept
	 * out of the message. */
	expect_error_has("A off 10.0.0.0/8\nB off 10.0.0.0/99\nC off 192.0.2.0/24\n", 2, "bad network");
}

Test(sender_groups, too_many_groups)
{
	size_t cap = (STLS_SENDER_GROUPS_MAX_GROUPS + 1) * 40;
	char *text = stls_calloc(1, cap);
	cr_assert_not_null(text);
	size_t len = 0;
	for (unsigned i = 0; i < STLS_SENDER_GROUPS_MAX_GROUPS; i++)
		len += (size_t)snprintf(text + len, cap - len, "G%u off 10.%u.%u.0/24\n", i, i >> 8, i & 255);
	struct stls_sender_groups *t = parse_ok(text);
	cr_assert_eq(stls_sender_groups_count(t), STLS_SENDER_GROUPS_MAX_GROUPS);
	cr_assert_str_eq(stls_sender_groups_at(t, 4095)->name, "G4095");
	expect_group(t, "10.15.255.1", "G4095", "10.15.255.0/24");
	stls_sender_groups_free(&t);

	snprintf(text + len, cap - len, "ONE_MORE off 192.0.2.0/24\n");
	expect_error(text, "4097: more than 4096 groups");
	/* An existing group may still take more lines. */
	snprintf(text + len, cap - len, "G7 off 192.0.2.0/24\n");
	t = parse_ok(text);
	expect_group(t, "192.0.2.1", "G7", "192.0.2.0/24");
	stls_sender_groups_free(&t);
	stls_free_ptr(&text);
}

Test(sender_groups, too_many_networks, .timeout = 60)
{
	/* 14 networks a line (16 fields at most), /32s counted up from 10.0.0.0. */
	size_t cap = (size_t)STLS_SENDER_GROUPS_MAX_NETWORKS * 16 + 4096;
	char *text = stls_calloc(1, cap);
	cr_assert_not_null(text);
	size_t len = 0;
	unsigned n = 0, lines = 0;
	while (n < STLS_SENDER_GROUPS_MAX_NETWORKS) {
		len += (size_t)snprintf(text + len, cap - len, "BIG off");
		for (unsigned f = 0; f < 14 && n < STLS_SENDER_GROUPS_MAX_NETWORKS; f++, n++)
			len += (size_t)snprintf(text + len, cap - len, " 10.%u.%u.%u", n >> 16, (n >> 8) & 255,
						n & 255);
		len += (size_t)snprintf(text + len, cap - len, "\n");
		lines++;
	}
	struct stls_sender_groups *t = parse_ok(text);
	cr_assert_eq(stls_sender_groups_num_networks(t), STLS_SENDER_GROUPS_MAX_NETWORKS);
	n = STLS_SENDER_GROUPS_MAX_NETWORKS - 1;
	char addr[32];
	snprintf(addr, sizeof(addr), "10.%u.%u.%u", n >> 16, (n >> 8) & 255, n & 255);
	expect_group(t, addr, "BIG", addr);
	expect_group(t, "10.0.0.0", "BIG", "10.0.0.0");
	snprintf(addr, sizeof(addr), "10.%u.%u.%u", (n + 1) >> 16, ((n + 1) >> 8) & 255, (n + 1) & 255);
	expect_group(t, addr, NULL, NULL);
	stls_sender_groups_free(&t);

	snprintf(text + len, cap - len, "BIG off 192.0.2.1\n");
	char want[64];
	snprintf(want, sizeof(want), "%u: more than 1000000 networks", lines + 1);
	expect_error(text, want);
	stls_free_ptr(&text);
}

Test(sender_groups, crlf_file_and_comments)
{
	const char *path = write_file("crlf", "# CRLF line ends\r\n"
					      "TRUSTED\toff\t127.0.0.0/8   10.0.0.0/8\t# the inside\r\n"
					      "\r\n"
					      "   PARTNERS required 2001:db8::/32 rate=600\r\n"
					      "PARTNERS required 192.0.2.0/24 rate=600\r\n");
	struct stls_sender_groups *t = NULL;
	char err[512] = "";
	cr_assert_eq(stls_sender_groups_load(&t, path, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(stls_sender_groups_count(t), 2);
	cr_assert_eq(stls_sender_groups_num_networks(t), 4);
	expect_group(t, "10.0.0.1", "TRUSTED", "10.0.0.0/8");
	const struct stls_sender_group *p = expect_group(t, "192.0.2.1", "PARTNERS", "192.0.2.0/24");
	cr_assert_eq(p->rate_per_min, 600, "the CR is not part of the last field");
	cr_assert_eq(p->line, 4);
	expect_group(t, "2001:db8::1", "PARTNERS", "2001:db8::/32");
	stls_sender_groups_free(&t);
}

Test(sender_groups, file_errors_name_the_file)
{
	const char *path = write_file("bad", "OK off 10.0.0.0/8\r\nBAD off 10.1.2.3/8\r\n");
	struct stls_sender_groups *t = NULL;
	char err[512] = "", want[512];
	cr_assert_eq(stls_sender_groups_load(&t, path, err, sizeof(err)), STLS_ERR_CONFIG);
	cr_assert_null(t);
	snprintf(want, sizeof(want), "%s:2: 10.1.2.3/8: host bits set, did you mean 10.0.0.0/8?", path);
	cr_assert_str_eq(err, want);

	char missing[200];
	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	cr_assert_eq(stls_sender_groups_load(&t, missing, err, sizeof(err)), STLS_ERR_IO);
	cr_assert_null(t);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", missing);
	cr_assert_str_eq(err, want);

	/* The reader's own limits come through, with the file and line. */
	cr_assert_eq(stls_sender_groups_parse(&t, STLS_SPAN_LIT("A off 10.0.0.0/8\nA off\0 1.2.3.4\n"), "sg", err,
					      sizeof(err)),
		     STLS_ERR_CONFIG);
	cr_assert_str_eq(err, "sg:2: NUL byte in the line");
	cr_assert_null(t);
}

/* The large table: random networks, each lookup checked against a scan of every network. */

struct bf_net {
	bool v6;
	uint8_t prefix;
	uint64_t hi, lo; /* IPv4 in lo's low 32 bits */
	unsigned group;
	char text[64];
};

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: reproducible from the seed printed on failure. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* The mask of the first prefix bits of a 64-bit half that starts at bit off of the address. */
static uint64_t half_mask(unsigned prefix, unsigned off)
{
	if (prefix <= off)
		return 0;
	if (prefix >= off + 64)
		return ~0ull;
	return ~0ull << (64 - (prefix - off));
}

static void bf_mask(struct bf_net *n)
{
	if (n->v6) {
		n->hi &= half_mask(n->prefix, 0);
		n->lo &= half_mask(n->prefix, 64);
	} else {
		n->hi = 0;
		n->lo &= n->prefix ? (0xffffffffull << (32 - n->prefix)) & 0xffffffffull : 0;
	}
}

static int bf_cmp(const void *pa, const void *pb)
{
	const struct bf_net *a = pa, *b = pb;
	if (a->v6 != b->v6)
		return a->v6 ? 1 : -1;
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return (int)a->prefix - (int)b->prefix;
}

/* The longest network holding the address, by looking at every one of its family; -1 for none.
 * nets are sorted with IPv4 first. */
static long bf_lookup(const struct bf_net *nets, size_t num, bool v6, uint64_t hi, uint64_t lo)
{
	long best = -1;
	size_t first = 0, end = num;
	while (first < end) {
		size_t mid = first + (end - first) / 2;
		if (nets[mid].v6)
			end = mid;
		else
			first = mid + 1;
	}
	size_t from = v6 ? first : 0, to = v6 ? num : first;
	for (size_t i = from; i < to; i++) {
		const struct bf_net *n = &nets[i];
		if (best >= 0 && n->prefix <= nets[best].prefix)
			continue;
		bool in;
		if (v6)
			in = (hi & half_mask(n->prefix, 0)) == n->hi && (lo & half_mask(n->prefix, 64)) == n->lo;
		else
			in = (lo & (n->prefix ? (0xffffffffull << (32 - n->prefix)) & 0xffffffffull : 0)) == n->lo;
		if (in)
			best = (long)i;
	}
	return best;
}

static void check_address(const struct stls_sender_groups *t, const struct bf_net *nets, size_t num, bool v6,
			  uint64_t hi, uint64_t lo)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	char shown[INET6_ADDRSTRLEN];
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		for (unsigned i = 0; i < 8; i++) {
			sin6->sin6_addr.s6_addr[i] = (uint8_t)(hi >> (56 - 8 * i));
			sin6->sin6_addr.s6_addr[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
		}
		inet_ntop(AF_INET6, &sin6->sin6_addr, shown, sizeof(shown));
	} else if (lo & 1) {
		/* Half the IPv4 lookups come as v4-mapped IPv6, as from a dual-stack socket. */
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr.s6_addr[10] = 0xff;
		sin6->sin6_addr.s6_addr[11] = 0xff;
		for (unsigned i = 0; i < 4; i++)
			sin6->sin6_addr.s6_addr[12 + i] = (uint8_t)(lo >> (24 - 8 * i));
		inet_ntop(AF_INET6, &sin6->sin6_addr, shown, sizeof(shown));
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl((uint32_t)lo);
		inet_ntop(AF_INET, &sin->sin_addr, shown, sizeof(shown));
	}
	const char *network = NULL;
	const struct stls_sender_group *g = stls_sender_groups_lookup(t, (const struct sockaddr *)&ss, &network);
	long want = bf_lookup(nets, num, v6, hi, lo);
	if (want < 0) {
		cr_assert_null(g, "%s: found %s in %s, expected none", shown, g ? g->name : "", network);
		return;
	}
	cr_assert_not_null(g, "%s: none, expected %s", shown, nets[want].text);
	cr_assert_str_eq(network, nets[want].text, "%s", shown);
	cr_assert_eq(g->index, nets[want].group, "%s", shown);
}

Test(sender_groups, large_table_matches_a_scan, .timeout = 60)
{
	enum { NUM = 100000, GROUPS = 64, ADDRS = 7000 };
	/* A fixed seed, so a failure repeats; SG_TEST_SEED tries others. */
	const char *seed_text = getenv("SG_TEST_SEED");
	uint64_t seed = seed_text ? strtoull(seed_text, NULL, 0) : 20240611;
	rng_state = seed ? seed : 1;
	struct bf_net *nets = stls_calloc(NUM, sizeof(*nets));
	cr_assert_not_null(nets);
	/* Mostly /24 and /48, the rest of any length, so that networks nest, share first or last
	 * addresses and end at the top of the space. IPv6 under a few /16s, so it nests too. */
	static const uint64_t v6_tops[] = { 0x2001ull << 48, 0x2a00ull << 48, 0xfd00ull << 48, 0xffffull << 48 };
	for (size_t i = 0; i < NUM; i++) {
		struct bf_net *n = &nets[i];
		n->v6 = rng() & 1;
		bool other = rng() % 10 == 0;
		if (n->v6) {
			n->prefix = other ? (uint8_t)(16 + rng() % 113) : 48;
			n->hi = v6_tops[rng() % 4] | (rng() >> 16);
			n->lo = rng();
		} else {
			n->prefix = other ? (uint8_t)(rng() % 33) : 24;
			n->lo = rng() & 0xffffffffull;
		}
		bf_mask(n);
	}
	qsort(nets, NUM, sizeof(*nets), bf_cmp);
	size_t num = 0;
	for (size_t i = 0; i < NUM; i++)
		if (num == 0 || bf_cmp(&nets[num - 1], &nets[i]) != 0)
			nets[num++] = nets[i];

	/* One network a line, in a shuffled order, groups spread over lines. */
	size_t cap = num * 80 + 1;
	char *text = stls_calloc(1, cap);
	cr_assert_not_null(text);
	size_t *order = stls_calloc(num, sizeof(*order));
	cr_assert_not_null(order);
	for (size_t i = 0; i < num; i++)
		order[i] = i;
	for (size_t i = num - 1; i > 0; i--) {
		size_t j = rng() % (i + 1), o = order[i];
		order[i] = order[j];
		order[j] = o;
	}
	unsigned first_seen[GROUPS], num_groups = 0;
	for (unsigned g = 0; g < GROUPS; g++)
		first_seen[g] = UINT32_MAX;
	size_t len = 0;
	for (size_t k = 0; k < num; k++) {
		struct bf_net *n = &nets[order[k]];
		unsigned g = (unsigned)(rng() % GROUPS);
		if (first_seen[g] == UINT32_MAX)
			first_seen[g] = num_groups++;
		n->group = first_seen[g];
		uint8_t bytes[16];
		for (unsigned i = 0; i < 8; i++) {
			bytes[i] = (uint8_t)(n->hi >> (56 - 8 * i));
			bytes[8 + i] = (uint8_t)(n->lo >> (56 - 8 * i));
		}
		char addr[INET6_ADDRSTRLEN];
		inet_ntop(n->v6 ? AF_INET6 : AF_INET, n->v6 ? bytes : bytes + 12, addr, sizeof(addr));
		snprintf(n->text, sizeof(n->text), "%s/%u", addr, n->prefix);
		len += (size_t)snprintf(text + len, cap - len, "G%u %s %s\n", g, (g % 3 == 0) ? "off" : "required",
					n->text);
	}
	stls_free_ptr(&order);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct stls_sender_groups *t = parse_ok(text);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double parse_ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	stls_free_ptr(&text);
	cr_assert_eq(stls_sender_groups_num_networks(t), num);
	cr_assert_eq(stls_sender_groups_count(t), num_groups);

	/* Random addresses, addresses inside a random network, and the addresses on either side of
	 * a random network's ends. */
	for (unsigned a = 0; a < ADDRS; a++) {
		bool v6 = rng() & 1;
		uint64_t hi = v6 ? v6_tops[rng() % 4] | (rng() >> 16) : 0, lo = v6 ? rng() : rng() & 0xffffffffull;
		switch (a % 4) {
		case 0: break;
		case 1: {
			const struct bf_net *n = &nets[rng() % num];
			v6 = n->v6;
			if (v6) {
				hi = n->hi | (rng() & ~half_mask(n->prefix, 0));
				lo = n->lo | (rng() & ~half_mask(n->prefix, 64));
			} else {
				hi = 0;
				lo = n->lo |
				     (rng() & ~(n->prefix ? 0xffffffffull << (32 - n->prefix) : 0) & 0xffffffffull);
			}
			break;
		}
		default: {
			const struct bf_net *n = &nets[rng() % num];
			v6 = n->v6;
			bool end = a % 4 == 3;
			if (v6) {
				uint64_t hmask = half_mask(n->prefix, 0), lmask = half_mask(n->prefix, 64);
				hi = end ? n->hi | ~hmask : n->hi;
				lo = end ? n->lo | ~lmask : n->lo;
				check_address(t, nets, num, true, hi, lo);
				/* One past the end, or one before the start. */
				if (end) {
					lo++;
					hi += lo == 0;
				} else {
					hi -= lo == 0;
					lo--;
				}
			} else {
				uint64_t mask = n->prefix ? (0xffffffffull << (32 - n->prefix)) & 0xffffffffull : 0;
				hi = 0;
				lo = end ? n->lo | (~mask & 0xffffffffull) : n->lo;
				check_address(t, nets, num, false, hi, lo);
				lo = (end ? lo + 1 : lo - 1) & 0xffffffffull;
			}
			break;
		}
		}
		check_address(t, nets, num, v6, hi, lo);
	}

	/* The lookups alone, timed for the log (not asserted: sanitizer builds are slower). */
	size_t found = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned a = 0; a < 1000000; a++) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = (uint32_t)rng() };
		found += stls_sender_groups_lookup(t, (const struct sockaddr *)&sin, NULL) != NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e6;
	cr_assert_gt(found, 0);
	cr_log_info("%zu networks, seed %llu: parsed in %.0f ms, %.0f ns a lookup", num, (unsigned long long)seed,
		    parse_ms, ns);
	stls_sender_groups_free(&t);
	stls_free_ptr(&nets);
}
