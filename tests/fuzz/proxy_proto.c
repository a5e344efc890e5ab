/* Fuzz target: the PROXY protocol parser (proto/proxy_proto.c), the first bytes a balancer's
 * connection carries.
 *
 * Fed the bytes one prefix at a time as a socket would deliver them, the parser must answer "more"
 * until it decides, and then never change its mind; a header it accepts is re-parsed identically
 * on its own, consumes no byte past itself, and carries a usable address family. */
#include <netinet/in.h>
#include <string.h>

#include "proto/proxy_proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stls_proxy_header first = { 0 };
	size_t first_used = 0;
	enum stls_err decided = STLS_AGAIN;
	size_t at = 0;
	for (size_t len = 0; len <= size; len++) {
		struct stls_proxy_header h;
		size_t used = 0;
		enum stls_err err = stls_proxy_proto_parse(&h, &used, stls_span_make(data, len));
		FUZZ_CHECK(err == STLS_AGAIN || err == STLS_OK || err == STLS_ERR_PROTO || err == STLS_ERR_TOO_LONG);
		if (decided == STLS_AGAIN) {
			decided = err;
			at = len;
			if (err == STLS_OK) {
				first = h;
				first_used = used;
			}
			continue;
		}
		FUZZ_CHECK(err == decided); /* more bytes never change the answer */
		if (err == STLS_OK) {
			FUZZ_CHECK(used == first_used);
			FUZZ_CHECK(memcmp(&h, &first, sizeof(h)) == 0);
		}
		if (len > at + 64)
			break; /* the rest would only repeat the check */
	}
	if (decided == STLS_OK) {
		FUZZ_CHECK(first_used == at && first_used <= size);
		FUZZ_CHECK(first.version == 1 || first.version == 2);
		if (!first.local) {
			FUZZ_CHECK(first.src.ss_family == AF_INET || first.src.ss_family == AF_INET6);
			FUZZ_CHECK(first.src.ss_family == first.dst.ss_family);
		}
	}
	return 0;
}
