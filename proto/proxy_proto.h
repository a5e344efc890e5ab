/* The PROXY protocol of HAProxy, versions 1 and 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt).
 *
 * Two uses. Towards the backend the proxy writes a header right after connecting, so that Postfix
 * (smtpd_upstream_proxy_protocol = haproxy) sees the client's address instead of ours. From a load
 * balancer in front of us (HAProxy send-proxy / send-proxy-v2) the proxy reads a header at the
 * start of every client connection; those bytes are hostile and the parser is bounded and
 * resumable in the nginx way: it is given every byte received so far and answers STLS_AGAIN until
 * the header is complete, refusing as soon as the bytes cannot start a valid header (a plain SMTP
 * client's "EHLO" is refused at its first byte rather than after a timeout).
 *
 * Only TCP over IPv4 and IPv6 is encoded. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as
 * IPv4: two of them are sent as TCP4 / AF_INET; with one IPv4 and one IPv6 address the IPv4 one is
 * sent mapped and the header is TCP6 / AF_INET6, as a header has one family. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/span.h"

enum {
	/* Spec 2.1: the longest v1 line a receiver must accept, CRLF included ("PROXY UNKNOWN" with
	 * two full IPv6 addresses). Longer without a CRLF is refused. */
	STLS_PROXY_PROTO_V1_MAX_LEN = 107,
	/* Our bound on the v2 address and TLV block a peer may declare (the spec allows 65535):
	 * AF_UNIX needs 216 bytes, HAProxy's usual TLVs (ALPN, authority, unique ID up to 128 bytes,
	 * SSL with version, CN, cipher, algorithms) fit several times over. More is STLS_ERR_TOO_LONG. */
	STLS_PROXY_PROTO_V2_MAX_BLOCK = 1024,
	/* The longest string the v2 encoder carries (SNI, TLS version, cipher name). */
	STLS_PROXY_PROTO_MAX_STR = 255,
	/* The longest v1 line the encoder writes: TCP6, two 39-character addresses, two 5-digit
	 * ports. */
	STLS_PROXY_PROTO_V1_MAX_OUT = 6 + 5 + 39 + 1 + 39 + 1 + 5 + 1 + 5 + 2,
	/* The longest header either encoder writes, for sizing a stack buffer: a v2 header for IPv6
	 * (16 + 36) with an authority TLV (3 + 255) and an SSL TLV (3 + 1 + 4) holding version and
	 * cipher sub-TLVs (2 * (3 + 255)). */
	STLS_PROXY_PROTO_MAX_OUT =
		16 + 36 + (3 + STLS_PROXY_PROTO_MAX_STR) + (3 + 1 + 4) + 2 * (3 + STLS_PROXY_PROTO_MAX_STR),
};

/* What the proxy tells the backend about the client's TLS session (v2 only). A NULL or empty
 * string is left out. */
struct stls_proxy_tls {
	const char *version;	   /* "TLSv1.3": PP2_SUBTYPE_SSL_VERSION */
	const char *cipher;	   /* "TLS_AES_128_GCM_SHA256": PP2_SUBTYPE_SSL_CIPHER */
	const char *sni;	   /* the client's server_name: PP2_TYPE_AUTHORITY */
	bool verified_client_cert; /* the client's certificate was verified */
	bool client_cert;	   /* the client presented a certificate on this connection */
};

/* A header received from a load balancer. */
struct stls_proxy_header {
	uint8_t version; /* 1 or 2 */
	/* The header carries no usable addresses (v2 LOCAL; v2 AF_UNSPEC, AF_UNIX or a non-STREAM
	 * transport; v1 "PROXY UNKNOWN"): use the real connection's addresses. src and dst are then
	 * zero and their lengths 0. */
	bool local;
	struct sockaddr_storage src, dst; /* AF_INET or AF_INET6, ports set */
	socklen_t src_len, dst_len;
};

/* Writes a v1 line ("PROXY TCP4 192.0.2.1 198.51.100.2 41000 25\r\n", no NUL) for a connection
 * from src to dst (AF_INET or AF_INET6) into out (out_cap bytes; STLS_PROXY_PROTO_V1_MAX_OUT is
 * always enough) and sets *out_len. IPv6 addresses are written as hexadecimal groups with the
 * longest run of zero groups shortened to "::" (RFC 5952, without the dotted form). Returns
 * STLS_OK, STLS_ERR_LIMIT when out_cap is too small (nothing is written), or STLS_ERR_INTERNAL
 * for another address family. */
[[nodiscard]] enum stls_err stls_proxy_proto_encode_v1(char *out, size_t out_cap, size_t *out_len,
						       const struct sockaddr *src, const struct sockaddr *dst);

/* Writes a v2 header (command PROXY, TCP over AF_INET or AF_INET6) for a connection from src to
 * dst into out (out_cap bytes; STLS_PROXY_PROTO_MAX_OUT is always enough) and sets *out_len.
 * With tls non-NULL, TLVs follow the addresses: PP2_TYPE_AUTHORITY with the SNI, then
 * PP2_TYPE_SSL with client = PP2_CLIENT_SSL (| PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS when
 * the client presented a certificate), verify = 0 unless a certificate was presented and not
 * verified (then 1; HAProxy also sends 0 when no certificate was presented), and the version and
 * cipher sub-TLVs. Returns STLS_OK, STLS_ERR_LIMIT when out_cap is too small or a string is longer
 * than STLS_PROXY_PROTO_MAX_STR (the contents of out are then unspecified), or STLS_ERR_INTERNAL
 * for another address family. */
[[nodiscard]] enum stls_err stls_proxy_proto_encode_v2(uint8_t *out, size_t out_cap, size_t *out_len,
						       const struct sockaddr *src, const struct sockaddr *dst,
						       const struct stls_proxy_tls *tls);

/* Parses the header at the start of data, which holds every byte received on the connection so
 * far (the parser keeps no state: call again with all the bytes when more arrive). Returns
 *   STLS_OK: *out_header is filled and *out_consumed is the header's length; the bytes after it
 *     are the client's SMTP and stay the caller's;
 *   STLS_AGAIN: data is a valid beginning of a header; read more;
 *   STLS_ERR_PROTO: data cannot begin a valid header, decided at the first byte that shows it
 *     (a wrong signature, a v1 line that is malformed, longer than STLS_PROXY_PROTO_V1_MAX_LEN or
 *     not ended by CRLF, a v1 address that does not parse, a v1 port above 65535 or with a
 *     leading zero or sign, a v2 version other than 2, a command other than LOCAL and PROXY, an
 *     unknown family or transport, an address block shorter than its family needs, TLVs that
 *     overrun the block);
 *   STLS_ERR_TOO_LONG: a v2 header declares a block longer than STLS_PROXY_PROTO_V2_MAX_BLOCK.
 * On anything but STLS_OK the outputs are untouched; on an error the caller drops the
 * connection. v2 TLVs are checked for framing and otherwise ignored. */
[[nodiscard]] enum stls_err stls_proxy_proto_parse(struct stls_proxy_header *out_header, size_t *out_consumed,
						   struct stls_span data);
