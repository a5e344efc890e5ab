#include "proto/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <openssl/bytestring.h>

/* Spec 2.2: the v2 signature; it holds a NUL, so it is never a C string. */
static const uint8_t v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

enum {
	V2_HDR_LEN = 16,
	V2_VERSION = 0x2,
	V2_CMD_LOCAL = 0x0,
	V2_CMD_PROXY = 0x1,
	V2_AF_UNSPEC = 0x0,
	V2_AF_INET = 0x1,
	V2_AF_INET6 = 0x2,
	V2_AF_UNIX = 0x3,
	V2_TRANSPORT_UNSPEC = 0x0,
	V2_TRANSPORT_STREAM = 0x1,
	V2_TRANSPORT_DGRAM = 0x2,
	V2_ADDR_LEN_INET = 2 * 4 + 2 * 2,
	V2_ADDR_LEN_INET6 = 2 * 16 + 2 * 2,
	V2_ADDR_LEN_UNIX = 2 * 108,
	PP2_TYPE_AUTHORITY = 0x02,
	PP2_TYPE_SSL = 0x20,
	PP2_SUBTYPE_SSL_VERSION = 0x21,
	PP2_SUBTYPE_SSL_CIPHER = 0x23,
	PP2_CLIENT_SSL = 0x01,
	PP2_CLIENT_CERT_CONN = 0x02,
	PP2_CLIENT_CERT_SESS = 0x04,
};

/* An endpoint as the encoders see it: always in IPv6 form, IPv4 mapped, so that a pair can be
 * written in whichever family both fit. */
struct endpoint {
	uint8_t addr[16];
	uint16_t port;
	bool is_v4; /* AF_INET, or AF_INET6 holding a mapped IPv4 address */
};

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static enum stls_err endpoint_load(struct endpoint *out_ep, const struct sockaddr *sa)
{
	STLS_ENSURE(sa != NULL, STLS_ERR_INTERNAL);
	*out_ep = (struct endpoint){ 0 };
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		memcpy(out_ep->addr, v4_mapped_prefix, sizeof(v4_mapped_prefix));
		memcpy(out_ep->addr + 12, &sin->sin_addr, 4);
		out_ep->port = ntohs(sin->sin_port);
		out_ep->is_v4 = true;
		return STLS_OK;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		memcpy(out_ep->addr, &sin6->sin6_addr, 16);
		out_ep->port = ntohs(sin6->sin6_port);
		out_ep->is_v4 = memcmp(out_ep->addr, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
		return STLS_OK;
	}
	return STLS_ERR_INTERNAL;
}

/* ---- v1 encoding ---- */

/* A writer into a fixed array; overflow is recorded, never written. */
struct text {
	char *p;
	size_t len;
	size_t cap;
	bool overflow;
};

static void text_byte(struct text *t, char c)
{
	if (t->len >= t->cap) {
		t->overflow = true;
		return;
	}
	t->p[t->len++] = c;
}

static void text_lit(struct text *t, const char *s)
{
	for (; *s; s++)
		text_byte(t, *s);
}

static void text_dec(struct text *t, unsigned v)
{
	char digits[10];
	size_t n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		text_byte(t, digits[--n]);
}

static void text_hex16(struct text *t, unsigned v)
{
	static const char hex[] = "0123456789abcdef";
	bool started = false;
	for (int shift = 12; shift >= 0; shift -= 4) {
		unsigned nibble = (v >> shift) & 0xf;
		if (nibble != 0 || started || shift == 0) {
			text_byte(t, hex[nibble]);
			started = true;
		}
	}
}

/* Spec 2.1 asks for hexadecimal groups with at most one "::"; RFC 5952 4.2 picks which zeros it
 * replaces (the longest run of two or more groups, the first on a tie). inet_ntop is not used
 * because it writes mapped and compatible addresses in dotted form. */
static void text_ipv6(struct text *t, const uint8_t addr[16])
{
	unsigned groups[8];
	for (int i = 0; i < 8; i++)
		groups[i] = (unsigned)addr[2 * i] << 8 | addr[2 * i + 1];
	int best = -1, best_len = 1;
	for (int i = 0; i < 8;) {
		if (groups[i] != 0) {
			i++;
			continue;
		}
		int j = i;
		while (j < 8 && groups[j] == 0)
			j++;
		if (j - i > best_len) {
			best = i;
			best_len = j - i;
		}
		i = j;
	}
	for (int i = 0; i < 8; i++) {
		if (i == best) {
			text_lit(t, "::");
			i += best_len - 1;
			continue;
		}
		if (i > 0 && i != best + best_len)
			text_byte(t, ':');
		text_hex16(t, groups[i]);
	}
}

static void text_ipv4(struct text *t, const uint8_t addr[4])
{
	for (int i = 0; i < 4; i++) {
		if (i > 0)
			text_byte(t, '.');
		text_dec(t, addr[i]);
	}
}

enum stls_err stls_proxy_proto_encode_v1(char *out, size_t out_cap, size_t *out_len, const struct sockaddr *src,
					 const struct sockaddr *dst)
{
	struct endpoint s, d;
	STLS_TRY(endpoint_load(&s, src));
	STLS_TRY(endpoint_load(&d, dst));
	bool v4 = s.is_v4 && d.is_v4;

	char line[STLS_PROXY_PROTO_V1_MAX_OUT];
	struct text t = { .p = line, .cap = sizeof(line) };
	text_lit(&t, v4 ? "PROXY TCP4 " : "PROXY TCP6 ");
	if (v4) {
		text_ipv4(&t, s.addr + 12);
		text_byte(&t, ' ');
		text_ipv4(&t, d.addr + 12);
	} else {
		text_ipv6(&t, s.addr);
		text_byte(&t, ' ');
		text_ipv6(&t, d.addr);
	}
	text_byte(&t, ' ');
	text_dec(&t, s.port);
	text_byte(&t, ' ');
	text_dec(&t, d.port);
	text_lit(&t, "\r\n");
	STLS_BUG_ON(t.overflow);
	STLS_ENSURE(t.len <= out_cap, STLS_ERR_LIMIT);
	memcpy(out, line, t.len);
	*out_len = t.len;
	return STLS_OK;
}

/* ---- v2 encoding ---- */

/* The length of s, or STLS_PROXY_PROTO_MAX_STR + 1 if it is longer; 0 for NULL. */
static size_t str_len_bounded(const char *s)
{
	return s ? strnlen(s, STLS_PROXY_PROTO_MAX_STR + 1) : 0;
}

/* Adds a TLV (type, 16-bit big-endian length, value); BoringSSL's 1/0 is returned as is. */
static int cbb_add_tlv(CBB *cbb, uint8_t type, const char *value, size_t len)
{
	CBB child;
	return CBB_add_u8(cbb, type) && CBB_add_u16_length_prefixed(cbb, &child) &&
	       CBB_add_bytes(&child, (const uint8_t *)value, len) && CBB_flush(cbb);
}

static int cbb_add_ssl_tlv(CBB *cbb, const struct stls_proxy_tls *tls, size_t version_len, size_t cipher_len)
{
	uint8_t client = PP2_CLIENT_SSL;
	if (tls->client_cert)
		client |= PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS;
	uint32_t verify = tls->client_cert && !tls->verified_client_cert ? 1 : 0;
	CBB ssl;
	if (!CBB_add_u8(cbb, PP2_TYPE_SSL) || !CBB_add_u16_length_prefixed(cbb, &ssl) || !CBB_add_u8(&ssl, client) ||
	    !CBB_add_u32(&ssl, verify))
		return 0;
	if (version_len > 0 && !cbb_add_tlv(&ssl, PP2_SUBTYPE_SSL_VERSION, tls->version, version_len))
		return 0;
	if (cipher_len > 0 && !cbb_add_tlv(&ssl, PP2_SUBTYPE_SSL_CIPHER, tls->cipher, cipher_len))
		return 0;
	return CBB_flush(cbb);
}

enum stls_err stls_proxy_proto_encode_v2(uint8_t *out, size_t out_cap, size_t *out_len, const struct sockaddr *src,
					 const struct sockaddr *dst, const struct stls_proxy_tls *tls)
{
	struct endpoint s, d;
	STLS_TRY(endpoint_load(&s, src));
	STLS_TRY(endpoint_load(&d, dst));
	bool v4 = s.is_v4 && d.is_v4;

	size_t sni_len = 0, version_len = 0, cipher_len = 0;
	if (tls) {
		sni_len = str_len_bounded(tls->sni);
		version_len = str_len_bounded(tls->version);
		cipher_len = str_len_bounded(tls->cipher);
		STLS_ENSURE(sni_len <= STLS_PROXY_PROTO_MAX_STR && version_len <= STLS_PROXY_PROTO_MAX_STR &&
				    cipher_len <= STLS_PROXY_PROTO_MAX_STR,
			    STLS_ERR_LIMIT);
	}

	enum stls_err ret = STLS_ERR_LIMIT; /* with the strings bounded, a CBB fails only for room */
	CBB cbb, block;
	CBB_zero(&cbb);
	if (!CBB_init_fixed(&cbb, out, out_cap))
		goto out;
	if (!CBB_add_bytes(&cbb, v2_sig, sizeof(v2_sig)) || !CBB_add_u8(&cbb, V2_VERSION << 4 | V2_CMD_PROXY) ||
	    !CBB_add_u8(&cbb, (v4 ? V2_AF_INET : V2_AF_INET6) << 4 | V2_TRANSPORT_STREAM) ||
	    !CBB_add_u16_length_prefixed(&cbb, &block))
		goto out;
	size_t addr_off = v4 ? 12 : 0, addr_len = v4 ? 4 : 16;
	if (!CBB_add_bytes(&block, s.addr + addr_off, addr_len) ||
	    !CBB_add_bytes(&block, d.addr + addr_off, addr_len) || !CBB_add_u16(&block, s.port) ||
	    !CBB_add_u16(&block, d.port))
		goto out;
	if (tls) {
		if (sni_len > 0 && !cbb_add_tlv(&block, PP2_TYPE_AUTHORITY, tls->sni, sni_len))
			goto out;
		if (!cbb_add_ssl_tlv(&block, tls, version_len, cipher_len))
			goto out;
	}
	if (!CBB_finish(&cbb, NULL, out_len))
		goto out;
	ret = STLS_OK;
out:
	CBB_cleanup(&cbb);
	return ret;
}

/* ---- parsing ---- */

/* Compares the start of data with the first n bytes of want: STLS_OK if data holds all n and they
 * match, STLS_AGAIN if data is a shorter matching prefix, STLS_ERR_PROTO at the first difference. */
static enum stls_err match_prefix(struct stls_span data, const void *want, size_t n)
{
	size_t have = data.len < n ? data.len : n;
	if (have > 0 && memcmp(data.ptr, want, have) != 0)
		return STLS_ERR_PROTO;
	return have == n ? STLS_OK : STLS_AGAIN;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

enum v1_proto {
	V1_TCP4 = 0,
	V1_TCP6,
	V1_UNKNOWN,
};

/* Spec 2.1: no leading zeros ("to avoid any possible confusion with octal numbers"), no sign. */
static bool v1_parse_dec(struct stls_span s, unsigned max, unsigned *out_value)
{
	uint64_t v;
	if (s.len == 0 || (s.len > 1 && s.ptr[0] == '0') || !stls_span_to_u64(s, max, &v))
		return false;
	*out_value = (unsigned)v;
	return true;
}

/* Exactly four decimal numbers in 0..255 separated by single dots. Parsed by hand so that what is
 * accepted does not depend on the C library's inet_pton. */
static bool v1_parse_ipv4(struct stls_span s, struct in_addr *out_addr)
{
	uint8_t bytes[4];
	for (int i = 0; i < 4; i++) {
		struct stls_span part = s;
		if (i < 3) {
			const uint8_t *dot = memchr(s.ptr, '.', s.len);
			if (!dot)
				return false;
			part = stls_span_make(s.ptr, (size_t)(dot - s.ptr));
			s = stls_span_make(dot + 1, s.len - part.len - 1);
		}
		unsigned v;
		if (!v1_parse_dec(part, 255, &v))
			return false;
		bytes[i] = (uint8_t)v;
	}
	memcpy(out_addr, bytes, 4);
	return true;
}

static bool v1_parse_ipv6(struct stls_span s, struct in6_addr *out_addr)
{
	char text[INET6_ADDRSTRLEN];
	if (s.len == 0 || s.len >= sizeof(text))
		return false;
	/* A NUL-terminated copy of a bounded field; the characters were checked to be hex digits,
	 * ':' and '.'. */
	memcpy(text, s.ptr, s.len);
	text[s.len] = '\0';
	return inet_pton(AF_INET6, text, out_addr) == 1;
}

static bool v1_parse_addr(struct sockaddr_storage *out_sa, socklen_t *out_len, enum v1_proto proto,
			  struct stls_span addr, struct stls_span port)
{
	unsigned p;
	if (!v1_parse_dec(port, 65535, &p))
		return false;
	memset(out_sa, 0, sizeof(*out_sa));
	if (proto == V1_TCP4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)out_sa;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*out_len = sizeof(*sin);
		return v1_parse_ipv4(addr, &sin->sin_addr);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out_sa;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)p);
	*out_len = sizeof(*sin6);
	return v1_parse_ipv6(addr, &sin6->sin6_addr);
}

/* Splits off the text before the next space. Returns false if there is none. */
static bool v1_next_field(struct stls_span *rest, struct stls_span *out_field)
{
	const uint8_t *sp = memchr(rest->ptr, ' ', rest->len);
	if (!sp)
		return false;
	*out_field = stls_span_make(rest->ptr, (size_t)(sp - rest->ptr));
	*rest = stls_span_from(*rest, out_field->len + 1);
	return true;
}

/* The four fields of a TCP4/TCP6 line, between the protocol's space and the CR. */
static enum stls_err v1_parse_fields(struct stls_proxy_header *out_header, enum v1_proto proto, struct stls_span fields)
{
	struct stls_span rest = fields, src, dst, src_port;
	if (!v1_next_field(&rest, &src) || !v1_next_field(&rest, &dst) || !v1_next_field(&rest, &src_port))
		return STLS_ERR_PROTO;
	/* What is left is the destination port; a fifth field or a trailing space leaves a space in
	 * it, which the digit check refuses. */
	struct stls_span dst_port = rest;
	if (!v1_parse_addr(&out_header->src, &out_header->src_len, proto, src, src_port) ||
	    !v1_parse_addr(&out_header->dst, &out_header->dst_len, proto, dst, dst_port))
		return STLS_ERR_PROTO;
	return STLS_OK;
}

/* Whether c may appear in the fields of a TCP4/TCP6 line; checked on every byte as it arrives so
 * that garbage is refused before a CRLF or 107 bytes have come. */
static bool v1_field_byte(enum v1_proto proto, uint8_t c)
{
	if (c == ' ' || is_digit(c) || c == '.')
		return true;
	return proto == V1_TCP6 && (c == ':' || is_hex(c));
}

static enum stls_err parse_v1(struct stls_proxy_header *out_header, size_t *out_consumed, struct stls_span data)
{
	STLS_TRY(match_prefix(data, "PROXY ", 6));
	struct stls_span rest = stls_span_from(data, 6);
	static const struct {
		const char *word;
		size_t len;
		enum v1_proto proto;
	} protos[] = {
		{ "TCP4 ", 5, V1_TCP4 },
		{ "TCP6 ", 5, V1_TCP6 },
		{ "UNKNOWN", 7, V1_UNKNOWN },
	};
	size_t i = 0;
	enum stls_err err = STLS_ERR_PROTO;
	for (; i < sizeof(protos) / sizeof(protos[0]); i++) {
		err = match_prefix(rest, protos[i].word, protos[i].len);
		if (err != STLS_ERR_PROTO)
			break;
	}
	if (err != STLS_OK)
		return err; /* no protocol matches, or the bytes so far match one (or two) partly */
	enum v1_proto proto = protos[i].proto;
	size_t start = 6 + protos[i].len;

	/* Find the CRLF within the first STLS_PROXY_PROTO_V1_MAX_LEN bytes. Spec 2.1: a lone CR or
	 * LF does not end the line, and is not valid inside it either. */
	size_t scan = data.len < STLS_PROXY_PROTO_V1_MAX_LEN ? data.len : STLS_PROXY_PROTO_V1_MAX_LEN;
	size_t cr = 0;
	bool found = false;
	for (size_t k = start; k < scan && !found; k++) {
		uint8_t c = data.ptr[k];
		if (c == '\r') {
			if (k + 1 < data.len && data.ptr[k + 1] != '\n')
				return STLS_ERR_PROTO;
			if (k + 1 < scan) {
				cr = k;
				found = true;
			}
		} else if (c == '\n') {
			return STLS_ERR_PROTO;
		} else if (proto == V1_UNKNOWN) {
			/* Whatever follows UNKNOWN is ignored, but it must be separated from it. */
			if (k == start && c != ' ')
				return STLS_ERR_PROTO;
		} else if (!v1_field_byte(proto, c)) {
			return STLS_ERR_PROTO;
		}
	}
	if (!found)
		return data.len >= STLS_PROXY_PROTO_V1_MAX_LEN ? STLS_ERR_PROTO : STLS_AGAIN;

	struct stls_proxy_header h = { .version = 1 };
	if (proto == V1_UNKNOWN)
		h.local = true;
	else
		STLS_TRY(v1_parse_fields(&h, proto, stls_span_make(data.ptr + start, cr - start)));
	*out_header = h;
	*out_consumed = cr + 2;
	return STLS_OK;
}

static void v2_load_addrs(struct stls_proxy_header *h, uint8_t family, CBS *block)
{
	size_t alen = family == V2_AF_INET ? 4 : 16;
	const uint8_t *src = CBS_data(block);
	const uint8_t *dst = src + alen;
	const uint8_t *ports = dst + alen;
	uint16_t src_port = (uint16_t)(ports[0] << 8 | ports[1]);
	uint16_t dst_port = (uint16_t)(ports[2] << 8 | ports[3]);
	if (family == V2_AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src, *d = (struct sockaddr_in *)&h->dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, src, 4);
		memcpy(&d->sin_addr, dst, 4);
		s->sin_port = htons(src_port);
		d->sin_port = htons(dst_port);
		h->src_len = h->dst_len = sizeof(struct sockaddr_in);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src, *d = (struct sockaddr_in6 *)&h->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, src, 16);
		memcpy(&d->sin6_addr, dst, 16);
		s->sin6_port = htons(src_port);
		d->sin6_port = htons(dst_port);
		h->src_len = h->dst_len = sizeof(struct sockaddr_in6);
	}
}

static enum stls_err parse_v2(struct stls_proxy_header *out_header, size_t *out_consumed, struct stls_span data)
{
	STLS_TRY(match_prefix(data, v2_sig, sizeof(v2_sig)));
	if (data.len < 13)
		return STLS_AGAIN;
	uint8_t version = data.ptr[12] >> 4, cmd = data.ptr[12] & 0xf;
	STLS_ENSURE(version == V2_VERSION, STLS_ERR_PROTO);
	STLS_ENSURE(cmd == V2_CMD_LOCAL || cmd == V2_CMD_PROXY, STLS_ERR_PROTO);
	if (data.len < 14)
		return STLS_AGAIN;
	/* Spec 2.2: with LOCAL the receiver "must use the real connection endpoints and discard the
	 * protocol block including the family which is ignored". */
	uint8_t family = data.ptr[13] >> 4, transport = data.ptr[13] & 0xf;
	if (cmd == V2_CMD_PROXY)
		STLS_ENSURE(family <= V2_AF_UNIX && transport <= V2_TRANSPORT_DGRAM, STLS_ERR_PROTO);
	if (data.len < V2_HDR_LEN)
		return STLS_AGAIN;
	size_t block_len = (size_t)data.ptr[14] << 8 | data.ptr[15];
	STLS_ENSURE(block_len <= STLS_PROXY_PROTO_V2_MAX_BLOCK, STLS_ERR_TOO_LONG);

	/* The addresses' length when the family and transport give one; TLVs follow them. */
	size_t addr_len = 0;
	bool known = cmd == V2_CMD_PROXY && family != V2_AF_UNSPEC && transport != V2_TRANSPORT_UNSPEC;
	if (known)
		addr_len = family == V2_AF_INET	   ? V2_ADDR_LEN_INET
			   : family == V2_AF_INET6 ? V2_ADDR_LEN_INET6
						   : V2_ADDR_LEN_UNIX;
	STLS_ENSURE(block_len >= addr_len, STLS_ERR_PROTO);
	if (data.len - V2_HDR_LEN < block_len)
		return STLS_AGAIN;

	CBS block, tlvs;
	CBS_init(&block, data.ptr + V2_HDR_LEN, block_len);
	if (known) {
		CBS_init(&tlvs, CBS_data(&block) + addr_len, block_len - addr_len);
		while (CBS_len(&tlvs) > 0) {
			uint8_t type;
			CBS value;
			if (!CBS_get_u8(&tlvs, &type) || !CBS_get_u16_length_prefixed(&tlvs, &value))
				return STLS_ERR_PROTO;
		}
	}

	struct stls_proxy_header h = { .version = 2 };
	/* AF_UNSPEC, AF_UNIX and DGRAM carry nothing the proxy can use as a TCP peer: spec 2.2 lets
	 * a receiver that does not support a valid combination fall back to the real endpoints. */
	if (cmd == V2_CMD_PROXY && transport == V2_TRANSPORT_STREAM && (family == V2_AF_INET || family == V2_AF_INET6))
		v2_load_addrs(&h, family, &block);
	else
		h.local = true;
	*out_header = h;
	*out_consumed = V2_HDR_LEN + block_len;
	return STLS_OK;
}

enum stls_err stls_proxy_proto_parse(struct stls_proxy_header *out_header, size_t *out_consumed, struct stls_span data)
{
	if (data.len == 0)
		return STLS_AGAIN;
	/* Spec 2.2: the two versions differ at the first byte ('P' or CR). */
	if (data.ptr[0] == v2_sig[0])
		return parse_v2(out_header, out_consumed, data);
	return parse_v1(out_header, out_consumed, data);
}
