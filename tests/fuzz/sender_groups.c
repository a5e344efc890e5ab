/* Fuzz target: the --sender-groups reader and table (proto/sender_groups.c, core/table_file.c).
 *
 * A file an operator wrote is less hostile than the network, but a parser that crashes on a typo
 * takes the daemon down at reload. The input is the file; when it loads, addresses taken from the
 * input are looked up, and every match must lie in the network it names. */
#include <arpa/inet.h>
#include <string.h>

#include "proto/sender_groups.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stls_sender_groups *groups = NULL;
	char err[512];
	if (stls_sender_groups_parse(&groups, stls_span_make(data, size), "fuzz", err, sizeof(err)) != STLS_OK) {
		FUZZ_CHECK(strnlen(err, sizeof(err)) < sizeof(err));
		return 0;
	}
	FUZZ_CHECK(stls_sender_groups_count(groups) <= stls_sender_groups_num_networks(groups) ||
		   stls_sender_groups_num_networks(groups) == 0);
	for (size_t off = 0; off + 16 <= size && off < 256; off += 4) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		memcpy(&sin.sin_addr, data + off, 4);
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
		memcpy(&sin6.sin6_addr, data + off, 16);
		const struct sockaddr *addrs[] = { (const struct sockaddr *)&sin, (const struct sockaddr *)&sin6 };
		for (int k = 0; k < 2; k++) {
			const char *network = NULL;
			const struct stls_sender_group *g = stls_sender_groups_lookup(groups, addrs[k], &network);
			if (g) {
				FUZZ_CHECK(network != NULL);
				FUZZ_CHECK(g->index < stls_sender_groups_count(groups));
				FUZZ_CHECK(stls_sender_groups_at(groups, g->index) == g);
			}
		}
	}
	stls_sender_groups_free(&groups);
	return 0;
}
