/* Unit tests for proto/proxy_proto.c: the PROXY protocol, versions 1 and 2.
 *
 * Expected bytes are written out by hand from the specification (proxy-protocol.txt, sections 2.1
 * and 2.2), never produced by the encoder under test. The parser is driven as a session drives
 * it: with every byte received so far, each time in a buffer of exactly that size so that the
 * sanitizer build catches a read past the end. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "proto/proxy_proto.h"

#define LIT(s) (s), sizeof(s) - 1

static struct sockaddr_storage sa_ip(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
	} else {
		cr_assert_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1, "test address %s", ip);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* Checks that sa is family/ip/port (ip in the form inet_pton reads). */
static void expect_addr(const struct sockaddr_storage *sa, socklen_t len, int family, const char *ip, uint16_t port)
{
	struct sockaddr_storage want = sa_ip(ip, port);
	cr_assert_eq(want.ss_family, family, "test address %s is not of the family expected", ip);
	cr_assert_eq(sa->ss_family, family, "%s: family %d", ip, sa->ss_family);
	if (family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa, *b = (const struct sockaddr_in *)&want;
		cr_assert_eq(len, sizeof(struct sockaddr_in));
		cr_assert_eq(a->sin_addr.s_addr, b->sin_addr.s_addr, "%s", ip);
		cr_assert_eq(ntohs(a->sin_port), port, "%s: port %u", ip, ntohs(a->sin_port));
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa, *b = (const struct sockaddr_in6 *)&want;
		cr_assert_eq(len, sizeof(struct sockaddr_in6));
		cr_assert_eq(memcmp(&a->sin6_addr, &b->sin6_addr, 16), 0, "%s", ip);
		cr_assert_eq(ntohs(a->sin6_port), port, "%s: port %u", ip, ntohs(a->sin6_port));
	}
}

/* Parses a copy of the first len bytes of p held in a buffer of exactly len bytes. */
static enum stls_err parse_exact(struct stls_proxy_header *out_header, size_t *out_consumed, const void *p, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert_not_null(copy);
	if (len)
		memcpy(copy, p, len);
	enum stls_err err = stls_proxy_proto_parse(out_header, out_consumed, stls_span_make(copy, len));
	free(copy);
	return err;
}

static void expect_parse_err(enum stls_err want, const void *p, size_t len, const char *why)
{
	struct stls_proxy_header h;
	size_t consumed = 12345;
	enum stls_err err = parse_exact(&h, &consumed, p, len);
	cr_assert_eq(err, want, "%s: got %s, expected %s", why, stls_err_str(err), stls_err_str(want));
	if (want != STLS_OK)
		cr_assert_eq(consumed, 12345, "%s: consumed written on %s", why, stls_err_str(err));
}

/* Feeds p one byte more at a time: STLS_AGAIN (outputs untouched) until all len bytes are there,
 * then STLS_OK consuming exactly len. */
static struct stls_proxy_header expect_bytewise(const void *p, size_t len)
{
	struct stls_proxy_header h, untouched;
	memset(&untouched, 0xa5, sizeof(untouched));
	for (size_t i = 0; i < len; i++) {
		h = untouched;
		size_t consumed = 777;
		enum stls_err err = parse_exact(&h, &consumed, p, i);
		cr_assert_eq(err, STLS_AGAIN, "after %zu of %zu bytes: %s", i, len, stls_err_str(err));
		cr_assert_eq(consumed, 777, "after %zu bytes", i);
		cr_assert_eq(memcmp(&h, &untouched, sizeof(h)), 0, "header written after %zu bytes", i);
	}
	size_t consumed = 0;
	enum stls_err err = parse_exact(&h, &consumed, p, len);
	cr_assert_eq(err, STLS_OK, "all %zu bytes: %s", len, stls_err_str(err));
	cr_assert_eq(consumed, len);
	return h;
}

static void expect_v1(const struct sockaddr_storage *src, const struct sockaddr_storage *dst, const char *want)
{
	char out[STLS_PROXY_PROTO_V1_MAX_OUT];
	size_t len = 0;
	cr_assert_eq(stls_proxy_proto_encode_v1(out, sizeof(out), &len, SA(*src), SA(*dst)), STLS_OK, "%s", want);
	cr_assert_eq(len, strlen(want), "got \"%.*s\", expected \"%s\"", (int)len, out, want);
	cr_assert_eq(memcmp(out, want, len), 0, "got \"%.*s\", expected \"%s\"", (int)len, out, want);
}

/* ---- v1 encoding ---- */

Test(proxy_proto, encode_v1_ipv4_exact)
{
	struct sockaddr_storage src = sa_ip("1.2.3.4", 1111), dst = sa_ip("5.6.7.8", 25);
	expect_v1(&src, &dst, "PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\n");
	src = sa_ip("255.255.255.255", 65535);
	dst = sa_ip("0.0.0.0", 0);
	expect_v1(&src, &dst, "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n");
}

Test(proxy_proto, encode_v1_ipv6_exact)
{
	/* RFC 5952: lower case, no leading zeros in a group, the longest run of two or more zero
	 * groups as "::" (the first of equal runs), a single zero group kept. */
	static const struct {
		const char *src;
		const char *text;
	} cases[] = {
		{ "2001:db8::1", "2001:db8::1" },
		{ "2001:0DB8:0000:0001:0000:0000:0000:0002", "2001:db8:0:1::2" },
		{ "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
		{ "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1" },
		{ "::1", "::1" },
		{ "::", "::" },
		{ "fe80::", "fe80::" },
		{ "1:0:0:2:0:0:0:3", "1:0:0:2::3" },
		{ "::1.2.3.4", "::102:304" },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage src = sa_ip(cases[i].src, 1111), dst = sa_ip("2001:db8::25", 25);
		char want[160];
		snprintf(want, sizeof(want), "PROXY TCP6 %s 2001:db8::25 1111 25\r\n", cases[i].text);
		expect_v1(&src, &dst, want);
	}
}

Test(proxy_proto, encode_v1_mapped_pair_is_tcp4)
{
	struct sockaddr_storage src = sa_ip("::ffff:1.2.3.4", 1111), dst = sa_ip("::ffff:5.6.7.8", 25);
	expect_v1(&src, &dst, "PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\n");
	/* One native IPv4, one mapped: still IPv4 on both ends. */
	dst = sa_ip("5.6.7.8", 25);
	expect_v1(&src, &dst, "PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\n");
}

Test(proxy_proto, encode_v1_mixed_is_tcp6)
{
	struct sockaddr_storage src = sa_ip("1.2.3.4", 1111), dst = sa_ip("2001:db8::1", 25);
	expect_v1(&src, &dst, "PROXY TCP6 ::ffff:102:304 2001:db8::1 1111 25\r\n");
	src = sa_ip("2001:db8::1", 1111);
	dst = sa_ip("::ffff:5.6.7.8", 25);
	expect_v1(&src, &dst, "PROXY TCP6 2001:db8::1 ::ffff:506:708 1111 25\r\n");
}

Test(proxy_proto, encode_v1_longest_line_fits_max)
{
	struct sockaddr_storage src = sa_ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	struct sockaddr_storage dst = sa_ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65534);
	char out[STLS_PROXY_PROTO_V1_MAX_OUT];
	size_t len = 0;
	cr_assert_eq(stls_proxy_proto_encode_v1(out, sizeof(out), &len, SA(src), SA(dst)), STLS_OK);
	cr_assert_eq(len, 104, "spec 2.1: the longest TCP6 line is 104 bytes");
	cr_assert_eq(len, STLS_PROXY_PROTO_V1_MAX_OUT);
	cr_assert_leq(STLS_PROXY_PROTO_V1_MAX_OUT, STLS_PROXY_PROTO_MAX_OUT);
}

Test(proxy_proto, encode_v1_small_buffer)
{
	static const char want[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\n";
	struct sockaddr_storage src = sa_ip("1.2.3.4", 1111), dst = sa_ip("5.6.7.8", 25);
	char out[64];
	for (size_t cap = 0; cap < sizeof(want) - 1; cap++) {
		memset(out, 'z', sizeof(out));
		size_t len = 999;
		cr_assert_eq(stls_proxy_proto_encode_v1(out, cap, &len, SA(src), SA(dst)), STLS_ERR_LIMIT, "cap %zu",
			     cap);
		cr_assert_eq(len, 999, "cap %zu", cap);
		for (size_t i = 0; i < sizeof(out); i++)
			cr_assert_eq(out[i], 'z', "cap %zu: byte %zu written", cap, i);
	}
	size_t len = 0;
	cr_assert_eq(stls_proxy_proto_encode_v1(out, sizeof(want) - 1, &len, SA(src), SA(dst)), STLS_OK);
	cr_assert_eq(len, sizeof(want) - 1);
	cr_assert_eq(memcmp(out, want, len), 0);
}

Test(proxy_proto, encode_refuses_other_families)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = "/tmp/x" };
	struct sockaddr_storage ip = sa_ip("1.2.3.4", 25);
	char out[STLS_PROXY_PROTO_MAX_OUT];
	size_t len;
	cr_assert_eq(stls_proxy_proto_encode_v1(out, sizeof(out), &len, (const struct sockaddr *)&sun, SA(ip)),
		     STLS_ERR_INTERNAL);
	cr_assert_eq(stls_proxy_proto_encode_v1(out, sizeof(out), &len, SA(ip), (const struct sockaddr *)&sun),
		     STLS_ERR_INTERNAL);
	cr_assert_eq(stls_proxy_proto_encode_v2((uint8_t *)out, sizeof(out), &len, (const struct sockaddr *)&sun,
						SA(ip), NULL),
		     STLS_ERR_INTERNAL);
}

/* ---- v2 encoding ---- */

/* Spec 2.2: the signature, then version 2 / command PROXY (0x21). */
#define V2_SIG	 "\r\n\r\n\0\r\nQUIT\n"
#define V2_PROXY V2_SIG "\x21"
/* Addresses for AF_INET: 1.2.3.4 port 1111 to 5.6.7.8 port 25. */
#define ADDRS4 "\x01\x02\x03\x04\x05\x06\x07\x08\x04\x57\x00\x19"
/* Addresses for AF_INET6: 2001:db8::1 port 1 to 2001:db8::2 port 2. */
#define ADDRS6                                                                                                         \
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"                                             \
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"                                             \
	"\x00\x01\x00\x02"
/* What a client sends after the header. */
#define EHLO "EHLO x\r\n"

static void expect_v2(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
		      const struct stls_proxy_tls *tls, const void *want, size_t want_len)
{
	uint8_t out[STLS_PROXY_PROTO_MAX_OUT];
	size_t len = 0;
	cr_assert_eq(stls_proxy_proto_encode_v2(out, sizeof(out), &len, SA(*src), SA(*dst), tls), STLS_OK);
	cr_assert_eq(len, want_len, "length %zu, expected %zu", len, want_len);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(out[i], ((const uint8_t *)want)[i], "byte %zu: 0x%02x, expected 0x%02x", i, out[i],
			     ((const uint8_t *)want)[i]);
}

Test(proxy_proto, encode_v2_ipv4_exact)
{
	static const char want[] = V2_SIG "\x21\x11"			     /* version 2, PROXY; AF_INET, STREAM */
					  "\x00\x0c"			     /* 12 bytes of addresses */
					  "\xc0\x00\x02\x01\xc6\x33\x64\x02" /* 192.0.2.1, 198.51.100.2 */
					  "\xa0\x28\x00\x19";		     /* 41000, 25 */
	struct sockaddr_storage src = sa_ip("192.0.2.1", 41000), dst = sa_ip("198.51.100.2", 25);
	expect_v2(&src, &dst, NULL, LIT(want));
	/* Mapped on both ends: the same AF_INET header. */
	src = sa_ip("::ffff:192.0.2.1", 41000);
	dst = sa_ip("::ffff:198.51.100.2", 25);
	expect_v2(&src, &dst, NULL, LIT(want));
}

Test(proxy_proto, encode_v2_ipv6_and_mixed_exact)
{
	static const char want[] =
		V2_SIG "\x21\x21" /* version 2, PROXY; AF_INET6, STREAM */
		       "\x00\x24" /* 36 bytes of addresses */
		       "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" /* 2001:db8::1 */
		       "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xc6\x33\x64\x02" /* ::ffff:198.51.100.2 */
		       "\x04\x57\x01\xbb";						  /* 1111, 443 */
	struct sockaddr_storage src = sa_ip("2001:db8::1", 1111), dst = sa_ip("198.51.100.2", 443);
	expect_v2(&src, &dst, NULL, LIT(want));
}

Test(proxy_proto, encode_v2_tls_exact)
{
	static const char want[] = V2_SIG "\x21\x11"			     /* version 2, PROXY; AF_INET, STREAM */
					  "\x00\x44"			     /* 12 + 13 + 43 = 68 bytes follow */
					  "\xc0\x00\x02\x01\xc6\x33\x64\x02" /* 192.0.2.1, 198.51.100.2 */
					  "\xa0\x28\x00\x19"		     /* 41000, 25 */
					  "\x02\x00\x0amx.example"	     /* PP2_TYPE_AUTHORITY, 10 bytes */
					  "\x20\x00\x28"		     /* PP2_TYPE_SSL, 1 + 4 + 10 + 25 bytes */
					  "\x01"			     /* client: PP2_CLIENT_SSL */
					  "\x00\x00\x00\x00"		     /* verify: no certificate was presented */
					  "\x21\x00\x07TLSv1.3"		     /* PP2_SUBTYPE_SSL_VERSION, 7 bytes */
					  "\x23\x00\x16TLS_AES_128_GCM_SHA256"; /* PP2_SUBTYPE_SSL_CIPHER, 22 bytes */
	struct sockaddr_storage src = sa_ip("192.0.2.1", 41000), dst = sa_ip("198.51.100.2", 25);
	struct stls_proxy_tls tls = { .version = "TLSv1.3", .cipher = "TLS_AES_128_GCM_SHA256", .sni = "mx.example" };
	expect_v2(&src, &dst, &tls, LIT(want));
}

Test(proxy_proto, encode_v2_client_cert_exact)
{
	static const char unverified[] = V2_SIG "\x21\x11" /* version 2, PROXY; AF_INET, STREAM */
						"\x00\x1b" /* 12 + 15 bytes follow */
						"\xc0\x00\x02\x01\xc6\x33\x64\x02" /* 192.0.2.1, 198.51.100.2 */
						"\xa0\x28\x00\x19"		   /* 41000, 25 */
						"\x20\x00\x0c"			   /* PP2_TYPE_SSL, 1 + 4 + 7 bytes */
						"\x07"		    /* client: SSL | CERT_CONN | CERT_SESS */
						"\x00\x00\x00\x01"  /* verify: failed */
						"\x21\x00\x04TLSv"; /* PP2_SUBTYPE_SSL_VERSION, 4 bytes */
	struct sockaddr_storage src = sa_ip("192.0.2.1", 41000), dst = sa_ip("198.51.100.2", 25);
	/* An empty SNI and a NULL cipher are left out. */
	struct stls_proxy_tls tls = { .version = "TLSv", .sni = "", .client_cert = true };
	expect_v2(&src, &dst, &tls, LIT(unverified));

	char verified[sizeof(unverified)];
	memcpy(verified, unverified, sizeof(verified));
	verified[16 + 12 + 3 + 4] = 0; /* the last byte of verify */
	tls.verified_client_cert = true;
	expect_v2(&src, &dst, &tls, verified, sizeof(verified) - 1);
}

Test(proxy_proto, encode_v2_ssl_tlv_without_strings)
{
	static const char want[] = V2_SIG "\x21\x11"			     /* version 2, PROXY; AF_INET, STREAM */
					  "\x00\x14"			     /* 12 + 8 bytes follow */
					  "\xc0\x00\x02\x01\xc6\x33\x64\x02" /* 192.0.2.1, 198.51.100.2 */
					  "\xa0\x28\x00\x19"		     /* 41000, 25 */
					  "\x20\x00\x05"		     /* PP2_TYPE_SSL, 5 bytes */
					  "\x01\x00\x00\x00\x00";	     /* client: PP2_CLIENT_SSL; verify: 0 */
	struct sockaddr_storage src = sa_ip("192.0.2.1", 41000), dst = sa_ip("198.51.100.2", 25);
	struct stls_proxy_tls tls = { 0 };
	expect_v2(&src, &dst, &tls, LIT(want));
}

Test(proxy_proto, encode_v2_string_limits)
{
	char s255[256], s256[257];
	memset(s255, 'a', 255);
	s255[255] = '\0';
	memset(s256, 'b', 256);
	s256[256] = '\0';
	struct sockaddr_storage src = sa_ip("2001:db8::1", 1111), dst = sa_ip("2001:db8::2", 25);
	uint8_t out[STLS_PROXY_PROTO_MAX_OUT + 16];
	size_t len = 0;

	struct stls_proxy_tls tls = { .version = s255, .cipher = s255, .sni = s255, .client_cert = true };
	cr_assert_eq(stls_proxy_proto_encode_v2(out, sizeof(out), &len, SA(src), SA(dst), &tls), STLS_OK);
	cr_assert_eq(len, STLS_PROXY_PROTO_MAX_OUT, "the largest header is %zu bytes, the constant says %d", len,
		     STLS_PROXY_PROTO_MAX_OUT);
	cr_assert_eq(len, 834);
	/* And it is all within a buffer of exactly that size. */
	cr_assert_eq(stls_proxy_proto_encode_v2(out, STLS_PROXY_PROTO_MAX_OUT, &len, SA(src), SA(dst), &tls), STLS_OK);

	const char **fields[] = { &tls.version, &tls.cipher, &tls.sni };
	for (size_t i = 0; i < 3; i++) {
		tls = (struct stls_proxy_tls){ .version = "v", .cipher = "c", .sni = "s" };
		*fields[i] = s256;
		cr_assert_eq(stls_proxy_proto_encode_v2(out, sizeof(out), &len, SA(src), SA(dst), &tls), STLS_ERR_LIMIT,
			     "string %zu", i);
	}
}

Test(proxy_proto, encode_v2_small_buffer)
{
	struct sockaddr_storage src = sa_ip("192.0.2.1", 41000), dst = sa_ip("198.51.100.2", 25);
	struct stls_proxy_tls tls = { .version = "TLSv1.3", .cipher = "TLS_AES_128_GCM_SHA256", .sni = "mx.example" };
	uint8_t out[STLS_PROXY_PROTO_MAX_OUT];
	size_t len = 0;
	cr_assert_eq(stls_proxy_proto_encode_v2(out, sizeof(out), &len, SA(src), SA(dst), &tls), STLS_OK);
	cr_assert_eq(len, 84);
	for (size_t cap = 0; cap < 84; cap++) {
		uint8_t *small = malloc(cap ? cap : 1);
		size_t small_len = 999;
		cr_assert_eq(stls_proxy_proto_encode_v2(small, cap, &small_len, SA(src), SA(dst), &tls), STLS_ERR_LIMIT,
			     "cap %zu", cap);
		cr_assert_eq(small_len, 999, "cap %zu", cap);
		free(small);
	}
	uint8_t *exact = malloc(84);
	cr_assert_eq(stls_proxy_proto_encode_v2(exact, 84, &len, SA(src), SA(dst), &tls), STLS_OK);
	cr_assert_eq(memcmp(exact, out, 84), 0);
	free(exact);
}

/* ---- round trips ---- */

static void round_trip(const char *src_ip, uint16_t src_port, const char *dst_ip, uint16_t dst_port, int want_family,
		       const char *want_src, const char *want_dst)
{
	struct sockaddr_storage src = sa_ip(src_ip, src_port), dst = sa_ip(dst_ip, dst_port);
	struct stls_proxy_tls tls = { .version = "TLSv1.2", .cipher = "ECDHE-RSA-AES128-GCM-SHA256", .sni = "a.b" };
	uint8_t out[STLS_PROXY_PROTO_MAX_OUT];
	size_t len = 0;
	for (int version = 1; version <= 3; version++) {
		if (version == 1)
			cr_assert_eq(stls_proxy_proto_encode_v1((char *)out, sizeof(out), &len, SA(src), SA(dst)),
				     STLS_OK);
		else
			cr_assert_eq(stls_proxy_proto_encode_v2(out, sizeof(out), &len, SA(src), SA(dst),
								version == 3 ? &tls : NULL),
				     STLS_OK);
		struct stls_proxy_header h = expect_bytewise(out, len);
		cr_assert_eq(h.version, version == 1 ? 1 : 2);
		cr_assert_not(h.local);
		expect_addr(&h.src, h.src_len, want_family, want_src, src_port);
		expect_addr(&h.dst, h.dst_len, want_family, want_dst, dst_port);
	}
}

Test(proxy_proto, round_trip_ipv4)
{
	round_trip("192.0.2.1", 41000, "198.51.100.2", 25, AF_INET, "192.0.2.1", "198.51.100.2");
	round_trip("0.0.0.0", 0, "255.255.255.255", 65535, AF_INET, "0.0.0.0", "255.255.255.255");
}

Test(proxy_proto, round_trip_ipv6)
{
	round_trip("2001:db8::1", 1111, "2001:db8:0:1:0:0:0:2", 25, AF_INET6, "2001:db8::1", "2001:db8:0:1::2");
	round_trip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "::", 0, AF_INET6,
		   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::");
}

Test(proxy_proto, round_trip_mapped)
{
	round_trip("::ffff:192.0.2.1", 41000, "::ffff:198.51.100.2", 25, AF_INET, "192.0.2.1", "198.51.100.2");
	round_trip("192.0.2.1", 41000, "2001:db8::2", 25, AF_INET6, "::ffff:192.0.2.1", "2001:db8::2");
}

/* ---- parsing: what is accepted ---- */

Test(proxy_proto, parse_v1_exact)
{
	struct stls_proxy_header h = expect_bytewise(LIT("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"));
	cr_assert_eq(h.version, 1);
	cr_assert_not(h.local);
	expect_addr(&h.src, h.src_len, AF_INET, "192.168.0.1", 56324);
	expect_addr(&h.dst, h.dst_len, AF_INET, "192.168.0.11", 443);

	h = expect_bytewise(LIT("PROXY TCP6 2001:DB8::1 ::ffff:1.2.3.4 0 65535\r\n"));
	expect_addr(&h.src, h.src_len, AF_INET6, "2001:db8::1", 0);
	expect_addr(&h.dst, h.dst_len, AF_INET6, "::ffff:1.2.3.4", 65535);

	/* The longest form inet_pton reads, 45 characters. */
	h = expect_bytewise(LIT("PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 ::1 1 2\r\n"));
	expect_addr(&h.src, h.src_len, AF_INET6, "::ffff:255.255.255.255", 1);
}

Test(proxy_proto, parse_v2_exact)
{
	static const char in[] =
		V2_SIG "\x21\x21" /* version 2, PROXY; AF_INET6, STREAM */
		       "\x00\x2b" /* 36 + 7 bytes follow */
		       "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" /* 2001:db8::1 */
		       "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02" /* 2001:db8::2 */
		       "\xff\xff\x00\x19"						  /* 65535, 25 */
		       "\x04\x00\x00"							  /* PP2_TYPE_NOOP, empty */
		       "\xe0\x00\x01x";							  /* a custom type, 1 byte */
	struct stls_proxy_header h = expect_bytewise(LIT(in));
	cr_assert_eq(h.version, 2);
	cr_assert_not(h.local);
	expect_addr(&h.src, h.src_len, AF_INET6, "2001:db8::1", 65535);
	expect_addr(&h.dst, h.dst_len, AF_INET6, "2001:db8::2", 25);
}

Test(proxy_proto, trailing_smtp_is_not_consumed)
{
	static const char v1[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\nEHLO client.example\r\n";
	struct stls_proxy_header h;
	size_t consumed = 0;
	cr_assert_eq(parse_exact(&h, &consumed, LIT(v1)), STLS_OK);
	cr_assert_eq(consumed, sizeof("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\n") - 1);

	static const char v2[] = V2_PROXY "\x11\x00\x0c" ADDRS4 EHLO;
	cr_assert_eq(parse_exact(&h, &consumed, LIT(v2)), STLS_OK);
	cr_assert_eq(consumed, 28);
	expect_addr(&h.src, h.src_len, AF_INET, "1.2.3.4", 1111);

	/* Even a single byte after the header, and one that looks like the next header. */
	cr_assert_eq(parse_exact(&h, &consumed, LIT("PROXY UNKNOWN\r\nP")), STLS_OK);
	cr_assert_eq(consumed, 15);
	cr_assert_eq(parse_exact(&h, &consumed, LIT(V2_SIG "\x20\x00\x00\x00" V2_SIG)), STLS_OK);
	cr_assert_eq(consumed, 16);
}

Test(proxy_proto, v1_unknown_is_local)
{
	struct stls_proxy_header h = expect_bytewise(LIT("PROXY UNKNOWN\r\n"));
	cr_assert_eq(h.version, 1);
	cr_assert(h.local);
	cr_assert_eq(h.src_len, 0);
	cr_assert_eq(h.dst_len, 0);

	/* Spec 2.1: the receiver must ignore anything before the CRLF. */
	h = expect_bytewise(LIT("PROXY UNKNOWN ffff:f...f:ffff whatever 99999 -1\r\n"));
	cr_assert(h.local);

	/* The worst case, 107 bytes, is accepted; 108 are not. */
	char line[120] = "PROXY UNKNOWN ";
	size_t n = strlen(line);
	while (n < 105)
		line[n++] = 'f';
	line[n++] = '\r';
	line[n++] = '\n';
	cr_assert_eq(n, 107);
	h = expect_bytewise(line, n);
	cr_assert(h.local);

	memmove(line + 15, line + 14, n - 14);
	expect_parse_err(STLS_ERR_PROTO, line, n + 1, "108-byte line");
	expect_parse_err(STLS_ERR_PROTO, line, 107, "107 bytes without the LF");
	expect_parse_err(STLS_AGAIN, line, 106, "106 bytes without CRLF");
}

Test(proxy_proto, v2_local)
{
	struct stls_proxy_header h = expect_bytewise(LIT(V2_SIG "\x20\x00\x00\x00"));
	cr_assert_eq(h.version, 2);
	cr_assert(h.local);
	cr_assert_eq(h.src_len, 0);

	/* Spec 2.2: with LOCAL the family is ignored and the length still skipped. */
	h = expect_bytewise(LIT(V2_SIG "\x20\xff\x00\x05\x01\x02\x03\x04\x05"));
	cr_assert(h.local);
	h = expect_bytewise(LIT(V2_SIG "\x20\x11\x00\x02\xff\xff"));
	cr_assert(h.local);
	expect_parse_err(STLS_ERR_TOO_LONG, LIT(V2_SIG "\x20\x00\x04\x01"), "LOCAL declaring 1025 bytes");
}

Test(proxy_proto, v2_unusable_families_are_local)
{
	/* AF_UNSPEC with PROXY. */
	struct stls_proxy_header h = expect_bytewise(LIT(V2_PROXY "\x00\x00\x00"));
	cr_assert(h.local);
	h = expect_bytewise(LIT(V2_PROXY "\x00\x00\x03xyz"));
	cr_assert(h.local);

	/* AF_UNIX stream and datagram: 216 bytes of addresses. */
	uint8_t in[16 + 216 + 4];
	memcpy(in, V2_PROXY "\x31\x00\xd8", 16);
	memset(in + 16, 'u', 216);
	h = expect_bytewise(in, 16 + 216);
	cr_assert(h.local);
	in[13] = 0x32;
	h = expect_bytewise(in, 16 + 216);
	cr_assert(h.local);
	/* With a TLV after the addresses. */
	in[14] = (216 + 4) >> 8;
	in[15] = (uint8_t)(216 + 4);
	memcpy(in + 16 + 216, "\x04\x00\x01n", 4);
	h = expect_bytewise(in, sizeof(in));
	cr_assert(h.local);

	/* UDP over IPv4 and IPv6, and the UNSPEC transport: not a TCP peer. */
	h = expect_bytewise(LIT(V2_PROXY "\x12\x00\x0c" ADDRS4));
	cr_assert(h.local);
	h = expect_bytewise(LIT(V2_PROXY "\x10\x00\x00"));
	cr_assert(h.local);
	h = expect_bytewise(LIT(V2_PROXY "\x22\x00\x24" ADDRS6));
	cr_assert(h.local);
}

Test(proxy_proto, v2_size_limit)
{
	cr_assert_eq(STLS_PROXY_PROTO_V2_MAX_BLOCK, 1024);
	enum { BLOCK = STLS_PROXY_PROTO_V2_MAX_BLOCK };
	static uint8_t in[16 + BLOCK + 1];
	memcpy(in, V2_PROXY "\x11", 14);
	in[14] = BLOCK >> 8;
	in[15] = BLOCK & 0xff;
	memcpy(in + 16, ADDRS4, 12);
	/* One NOOP TLV filling the rest of the block. */
	size_t noop = BLOCK - 12 - 3;
	in[28] = 0x04;
	in[29] = (uint8_t)(noop >> 8);
	in[30] = (uint8_t)noop;
	memset(in + 31, 0, noop);
	struct stls_proxy_header h;
	size_t consumed = 0;
	cr_assert_eq(parse_exact(&h, &consumed, in, 16 + BLOCK), STLS_OK);
	cr_assert_eq(consumed, 16 + BLOCK);
	expect_addr(&h.src, h.src_len, AF_INET, "1.2.3.4", 1111);
	expect_parse_err(STLS_AGAIN, in, 16 + BLOCK - 1, "one byte short of the largest block");

	/* One byte more is refused as soon as the length is known, not after it arrived. */
	in[15] = (BLOCK + 1) & 0xff;
	in[30] = (uint8_t)(noop + 1);
	expect_parse_err(STLS_ERR_TOO_LONG, in, 16, "1025 bytes declared");
	expect_parse_err(STLS_ERR_TOO_LONG, in, 16 + BLOCK + 1, "1025 bytes present");
	expect_parse_err(STLS_AGAIN, in, 15, "before the length is complete");
	expect_parse_err(STLS_ERR_TOO_LONG, LIT(V2_PROXY "\x21\xff\xff"), "65535 bytes declared");
}

/* ---- parsing: what is refused ---- */

struct bad_case {
	const char *in;
	size_t len;
	const char *why;
};

#define BAD(lit, why)                                                                                                  \
	{                                                                                                              \
		(lit), sizeof(lit) - 1, (why)                                                                          \
	}

Test(proxy_proto, early_rejection_of_other_protocols)
{
	static const struct bad_case others[] = {
		BAD("EHLO x\r\n", "EHLO"),
		BAD("GET / HTTP/1.0\r\n", "HTTP"),
		BAD("HELO client\r\n", "HELO"),
		BAD("QUIT\r\n", "QUIT"),
		BAD("\x16\x03\x01\x02\x00", "a TLS ClientHello"),
		BAD("\r\n\r\n\r\n", "empty lines"),
		BAD("\n", "LF"),
		BAD("\r\r", "CR CR"),
		BAD("PRX", "PRX"),
		BAD("Proxy TCP4 ", "Proxy"),
		BAD("PROXY\r\n", "PROXY CRLF"),
		BAD(" PROXY", "space PROXY"),
		BAD("\r\n\r\n\0\r\nQUIT\r", "v2 signature, last byte wrong"),
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		/* Grow the input a byte at a time until the answer is no longer STLS_AGAIN: it
		 * must be a refusal, and it must come before the input runs out. */
		enum stls_err err = STLS_AGAIN;
		for (size_t k = 1; k <= others[i].len && err == STLS_AGAIN; k++) {
			struct stls_proxy_header h;
			size_t consumed;
			err = parse_exact(&h, &consumed, others[i].in, k);
		}
		cr_assert_eq(err, STLS_ERR_PROTO, "%s: %s", others[i].why, stls_err_str(err));
	}
	/* The first byte decides for these. */
	expect_parse_err(STLS_ERR_PROTO, LIT("E"), "EHLO");
	expect_parse_err(STLS_ERR_PROTO, LIT("G"), "GET");
	expect_parse_err(STLS_ERR_PROTO, LIT("\x16"), "a TLS ClientHello");
	/* And the first differing byte for these. */
	expect_parse_err(STLS_AGAIN, LIT("PRO"), "PRO");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROX "), "PROX ");
	expect_parse_err(STLS_AGAIN, LIT("\r\n\r\n\0\r\nQUI"), "v2 signature so far");
	expect_parse_err(STLS_ERR_PROTO, LIT("\r\n\r\n\0\r\nQUIX"), "v2 signature, last letter wrong");
	expect_parse_err(STLS_ERR_PROTO, LIT("\r\n\r\n\r"), "CRLF CRLF CR");
	expect_parse_err(STLS_AGAIN, LIT("PROXY TCP"), "PROXY TCP");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY TCP5"), "PROXY TCP5");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY TCP4 1.2.3.4 x"), "a letter in a TCP4 line");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY TCP4 1.2.3.4\t"), "a tab");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY TCP4 ::1"), "a colon in a TCP4 line");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY TCP6 ::1 g"), "a non-hex letter in a TCP6 line");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY TCP4 1.2.3.4 5.6.7.8 +1"), "a sign");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY TCP4 1.2.3.4\n"), "a bare LF");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY TCP4 1.2.3.4\rx"), "a bare CR");
	expect_parse_err(STLS_ERR_PROTO, LIT("PROXY UNKNOWNX"), "UNKNOWN glued to more");
	expect_parse_err(STLS_AGAIN, LIT("PROXY UNKNOWN"), "UNKNOWN so far");
	expect_parse_err(STLS_AGAIN, LIT("PROXY UNKNOWN\r"), "UNKNOWN CR");
	expect_parse_err(STLS_AGAIN, LIT("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r"), "all but the LF");
}

Test(proxy_proto, v1_malformed)
{
	static const struct bad_case cases[] = {
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\n", "bare LF"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\r\n", "CR CR LF"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\n\r", "LF CR"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\0\r\n", "NUL"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 01111 25\r\n", "leading zero, source port"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 025\r\n", "leading zero, destination port"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 00 25\r\n", "port 00"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n", "port 65536"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 99999\r\n", "port 99999"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 18446744073709551641\r\n", "port wrapping 64 bits"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 +1111 25\r\n", "plus sign"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 -1 25\r\n", "minus sign"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 \r\n", "empty destination port"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n", "three fields"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8\r\n", "two fields"),
		BAD("PROXY TCP4\r\n", "no fields"),
		BAD("PROXY TCP4 \r\n", "empty fields"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25 26\r\n", "five fields"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25 \r\n", "trailing space"),
		BAD("PROXY TCP4  1.2.3.4 5.6.7.8 1111 25\r\n", "two spaces"),
		BAD("PROXY TCP4 1.2.3.4  5.6.7.8 1111 25\r\n", "two spaces between addresses"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8  1111 25\r\n", "two spaces before the port"),
		BAD("PROXY TCP4 01.2.3.4 5.6.7.8 1111 25\r\n", "leading zero in an octet"),
		BAD("PROXY TCP4 1.2.3.00 5.6.7.8 1111 25\r\n", "octet 00"),
		BAD("PROXY TCP4 1.2.3.256 5.6.7.8 1111 25\r\n", "octet 256"),
		BAD("PROXY TCP4 1.2.3.1000 5.6.7.8 1111 25\r\n", "four-digit octet"),
		BAD("PROXY TCP4 1.2.3 5.6.7.8 1111 25\r\n", "three octets"),
		BAD("PROXY TCP4 1.2.3.4.5 5.6.7.8 1111 25\r\n", "five octets"),
		BAD("PROXY TCP4 1..3.4 5.6.7.8 1111 25\r\n", "empty octet"),
		BAD("PROXY TCP4 1.2.3.4. 5.6.7.8 1111 25\r\n", "trailing dot"),
		BAD("PROXY TCP4 .1.2.3 5.6.7.8 1111 25\r\n", "leading dot"),
		BAD("PROXY TCP4 16909060 5.6.7.8 1111 25\r\n", "one number"),
		BAD("PROXY TCP4 1.2.3.4 5.6.7.8. 1111 25\r\n", "destination trailing dot"),
		BAD("PROXY TCP4 0x1.2.3.4 5.6.7.8 1111 25\r\n", "hex octet"),
		BAD("PROXY TCP4 2001:db8::1 ::1 1111 25\r\n", "IPv6 in TCP4"),
		BAD("PROXY TCP6 1.2.3.4 5.6.7.8 1111 25\r\n", "IPv4 in TCP6"),
		BAD("PROXY TCP6 2001:db8:::1 ::1 1111 25\r\n", "three colons"),
		BAD("PROXY TCP6 1::2::3 ::1 1111 25\r\n", "two double colons"),
		BAD("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1111 25\r\n", "nine groups"),
		BAD("PROXY TCP6 1:2:3:4:5:6:7 ::1 1111 25\r\n", "seven groups"),
		BAD("PROXY TCP6 12345::1 ::1 1111 25\r\n", "five-digit group"),
		BAD("PROXY TCP6 fe80::1%eth0 ::1 1111 25\r\n", "zone index"),
		BAD("PROXY TCP6 ::1 ::1 1111 25 \r\n", "TCP6 trailing space"),
		BAD("PROXY TCP6 ::1 ::1 65536 25\r\n", "TCP6 port 65536"),
		BAD("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:0000:0000 ::1 1 2\r\n",
		    "address over 45 characters"),
		BAD("PROXY TCP5 1.2.3.4 5.6.7.8 1111 25\r\n", "TCP5"),
		BAD("PROXY UDP4 1.2.3.4 5.6.7.8 1111 25\r\n", "UDP4"),
		BAD("PROXY tcp4 1.2.3.4 5.6.7.8 1111 25\r\n", "lower case protocol"),
		BAD("proxy TCP4 1.2.3.4 5.6.7.8 1111 25\r\n", "lower case PROXY"),
		BAD("PROXY  TCP4 1.2.3.4 5.6.7.8 1111 25\r\n", "two spaces after PROXY"),
		BAD("PROXYTCP4 1.2.3.4 5.6.7.8 1111 25\r\n", "no space after PROXY"),
		BAD("PROXY TCP41.2.3.4 5.6.7.8 1111 25\r\n", "no space after TCP4"),
		BAD("PROXY\r\n", "PROXY alone"),
		BAD("PROXY \r\n", "PROXY and a space"),
		BAD("PROXY UNKNOW\r\n", "UNKNOW"),
		BAD("PROXY UNKNOWNX\r\n", "UNKNOWNX"),
		BAD("PROXY UNKNOWN\n", "UNKNOWN, bare LF"),
		BAD("PROXY UNKNOWN\rX\r\n", "UNKNOWN, bare CR"),
		BAD("PROXY UNKNOWN x\ny\r\n", "UNKNOWN, LF inside"),
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		expect_parse_err(STLS_ERR_PROTO, cases[i].in, cases[i].len, cases[i].why);
		/* Followed by SMTP, or with the CRLF missing, it is refused all the same (unless
		 * the missing CRLF leaves a valid beginning). */
		char more[160];
		cr_assert_lt(cases[i].len + 8, sizeof(more));
		memcpy(more, cases[i].in, cases[i].len);
		memcpy(more + cases[i].len, "EHLO x\r\n", 8);
		expect_parse_err(STLS_ERR_PROTO, more, cases[i].len + 8, cases[i].why);
	}
}

Test(proxy_proto, v1_over_107_bytes)
{
	/* A TCP6 line of valid characters that never ends: refused at byte 107, not before. */
	char line[200] = "PROXY TCP6 ";
	size_t n = strlen(line);
	for (; n < sizeof(line); n++)
		line[n] = (n % 5 == 0) ? ':' : 'f';
	expect_parse_err(STLS_AGAIN, line, 106, "106 bytes");
	expect_parse_err(STLS_ERR_PROTO, line, 107, "107 bytes without CRLF");
	expect_parse_err(STLS_ERR_PROTO, line, sizeof(line), "200 bytes");

	/* A syntactically longer line with the CRLF at bytes 108 and 109. */
	char tcp4[120] = "PROXY TCP4 ";
	n = strlen(tcp4);
	while (n < 107)
		tcp4[n++] = '1';
	tcp4[n++] = '\r';
	tcp4[n++] = '\n';
	expect_parse_err(STLS_ERR_PROTO, tcp4, n, "109 bytes");
}

Test(proxy_proto, v2_malformed)
{
	static const struct bad_case cases[] = {
		BAD("\r\n\r\n\0\r\nQUIT\r\x21\x11\x00\x0c", "signature"),
		BAD("\r\n\r\n\0\r\nQUIt\n\x21\x11\x00\x0c", "signature case"),
		BAD(V2_SIG "\x11\x11\x00\x0c", "version 1"),
		BAD(V2_SIG "\x31\x11\x00\x0c", "version 3"),
		BAD(V2_SIG "\x01\x11\x00\x0c", "version 0"),
		BAD(V2_SIG "\x22\x11\x00\x0c", "command 2"),
		BAD(V2_SIG "\x2f\x11\x00\x0c", "command 15"),
		BAD(V2_PROXY "\x41\x00\x0c", "family 4"),
		BAD(V2_PROXY "\xf1\x00\x0c", "family 15"),
		BAD(V2_PROXY "\x13\x00\x0c", "transport 3"),
		BAD(V2_PROXY "\x1f\x00\x0c", "transport 15"),
		BAD(V2_PROXY "\x11\x00\x00", "AF_INET, no addresses"),
		BAD(V2_PROXY "\x11\x00\x0b", "AF_INET, 11 bytes"),
		BAD(V2_PROXY "\x12\x00\x0b", "AF_INET UDP, 11 bytes"),
		BAD(V2_PROXY "\x21\x00\x0c", "AF_INET6, 12 bytes"),
		BAD(V2_PROXY "\x21\x00\x23", "AF_INET6, 35 bytes"),
		BAD(V2_PROXY "\x31\x00\xd7", "AF_UNIX, 215 bytes"),
		BAD(V2_PROXY "\x32\x00\x24", "AF_UNIX datagram, 36 bytes"),
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Refused from the 16 bytes of the fixed header, before any address arrives. */
		expect_parse_err(STLS_ERR_PROTO, cases[i].in, cases[i].len, cases[i].why);
		uint8_t more[16 + 300];
		memcpy(more, cases[i].in, cases[i].len);
		memset(more + cases[i].len, 0, sizeof(more) - cases[i].len);
		expect_parse_err(STLS_ERR_PROTO, more, sizeof(more), cases[i].why);
	}
	/* The version and the command are refused at byte 13, the family at byte 14. */
	expect_parse_err(STLS_ERR_PROTO, LIT(V2_SIG "\x11"), "version 1 at byte 13");
	expect_parse_err(STLS_ERR_PROTO, LIT(V2_SIG "\x23"), "command 3 at byte 13");
	expect_parse_err(STLS_ERR_PROTO, LIT(V2_PROXY "\x41"), "family 4 at byte 14");
	expect_parse_err(STLS_AGAIN, LIT(V2_PROXY "\x11\x00"), "length incomplete");
}

Test(proxy_proto, v2_tlvs_must_fit)
{
	static const struct bad_case cases[] = {
		BAD(V2_PROXY "\x11\x00\x0d" ADDRS4 "\x04", "one stray byte"),
		BAD(V2_PROXY "\x11\x00\x0e" ADDRS4 "\x04\x00", "two stray bytes"),
		BAD(V2_PROXY "\x11\x00\x0f" ADDRS4 "\x04\x00\x01", "value missing"),
		BAD(V2_PROXY "\x11\x00\x11" ADDRS4 "\x04\x00\x03xy", "value short"),
		BAD(V2_PROXY "\x11\x00\x11" ADDRS4 "\x04\xff\xffxy", "value 65535"),
		BAD(V2_PROXY "\x11\x00\x12" ADDRS4 "\x04\x00\x01x\x20\x00", "second TLV cut"),
		BAD(V2_PROXY "\x21\x00\x25" ADDRS6 "\x04", "AF_INET6, one stray byte"),
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_parse_err(STLS_ERR_PROTO, cases[i].in, cases[i].len, cases[i].why);
	/* The same bytes framed right are accepted. */
	struct stls_proxy_header h = expect_bytewise(LIT(V2_PROXY "\x11\x00\x13" ADDRS4 "\x04\x00\x01x\x20\x00\x00"));
	expect_addr(&h.dst, h.dst_len, AF_INET, "5.6.7.8", 25);
}

/* A property over many inputs: as bytes arrive the answer is STLS_AGAIN for a while and then
 * settles; once STLS_OK or an error, more bytes never change it, and STLS_OK never consumes more
 * than it was given. Inputs are valid headers with a byte or two replaced (a fixed seed, so a
 * failure reproduces). */
Test(proxy_proto, answers_settle_as_bytes_arrive)
{
	static const struct bad_case seeds[] = {
		BAD("PROXY TCP4 192.0.2.1 198.51.100.2 41000 25\r\nEHLO x\r\n", "v1 TCP4"),
		BAD("PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 1 65535\r\nEHLO x\r\n", "v1 TCP6"),
		BAD("PROXY UNKNOWN 1 2\r\nEHLO x\r\n", "v1 UNKNOWN"),
		BAD(V2_PROXY "\x11\x00\x13" ADDRS4 "\x04\x00\x01x\x20\x00\x00" EHLO, "v2 TCP4"),
		BAD(V2_SIG "\x20\x00\x00\x02xy" EHLO, "v2 LOCAL"),
	};
	uint32_t rng = 12345;
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		for (int round = 0; round < 400; round++) {
			uint8_t in[128];
			size_t len = seeds[s].len;
			cr_assert_leq(len, sizeof(in));
			memcpy(in, seeds[s].in, len);
			int edits = round == 0 ? 0 : 1 + round % 2;
			for (int e = 0; e < edits; e++) {
				rng = rng * 1103515245u + 12345u;
				size_t at = (rng >> 8) % len;
				rng = rng * 1103515245u + 12345u;
				in[at] = (uint8_t)(rng >> 16);
			}
			enum stls_err settled = STLS_AGAIN;
			size_t settled_consumed = 0, settled_at = 0;
			for (size_t k = 0; k <= len; k++) {
				struct stls_proxy_header h;
				size_t consumed = 0;
				enum stls_err err = parse_exact(&h, &consumed, in, k);
				if (settled == STLS_AGAIN) {
					settled = err;
					settled_consumed = consumed;
					settled_at = k;
					if (err == STLS_OK)
						cr_assert_leq(consumed, k, "%s round %d", seeds[s].why, round);
					continue;
				}
				cr_assert_eq(err, settled, "%s round %d: %s at %zu bytes, then %s at %zu", seeds[s].why,
					     round, stls_err_str(settled), settled_at, stls_err_str(err), k);
				if (err == STLS_OK)
					cr_assert_eq(consumed, settled_consumed, "%s round %d", seeds[s].why, round);
			}
			if (round == 0)
				cr_assert_eq(settled, STLS_OK, "%s unedited", seeds[s].why);
		}
	}
}
