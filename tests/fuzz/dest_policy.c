/* Fuzz target: destination-policy lookups (proto/dest_policy.c, core/domain_table.c) of
 * recipient domains and MX names, which come from senders and from DNS: any bytes at all.
 *
 * A small policy is loaded once; every lookup must give a mode in range and, when it names the key
 * that matched, a key the policy holds. A lookup must not depend on letter case. */
#include <string.h>
#include <unistd.h>

#include "proto/dest_policy.h"
#include "tests/fuzz/fuzz.h"

static struct stls_dest_policy *g_policy;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static const char text[] = "example.com required\n.example.com preferred\nbank.test required-verify\n"
				   ".a.b.c.d.e.f preferred-verify\nXN--BCHER-KVA.example none\n* preferred\n";
	char path[] = "/tmp/stls-fuzz-policy-XXXXXX";
	int fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0 && write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
	close(fd);
	char err[256];
	enum stls_err ret = stls_dest_policy_load(&g_policy, path, err, sizeof(err));
	unlink(path);
	if (ret != STLS_OK)
		fprintf(stderr, "%s\n", err);
	FUZZ_CHECK(ret == STLS_OK);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum stls_dest_mode mode;
	struct stls_span key = { 0 };
	stls_dest_policy_lookup(g_policy, stls_span_make(data, size), &mode, &key);
	FUZZ_CHECK((unsigned)mode < STLS_DEST__COUNT);
	FUZZ_CHECK(key.len > 0 && key.ptr != NULL);
	if (size <= 300) {
		uint8_t upper[300];
		for (size_t i = 0; i < size; i++)
			upper[i] = data[i] >= 'a' && data[i] <= 'z' ? (uint8_t)(data[i] - 32) : data[i];
		enum stls_dest_mode mode2;
		stls_dest_policy_lookup(g_policy, stls_span_make(upper, size), &mode2, NULL);
		FUZZ_CHECK(mode2 == mode);
	}
	return 0;
}
