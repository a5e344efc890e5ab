/* Unit tests for tls/selfsign.c: the subjectAltName every made certificate and request carries. */
#include <criterion/criterion.h>

#include "tls/selfsign.h"

TestSuite(selfsign, .timeout = 30);

Test(selfsign, san_lists_the_cn_first_and_once)
{
	char out[256], err[128];
	const char *sans[] = { "mail.test", "MX.test", "*.relay.test" };
	cr_assert_eq(stls_selfsign_san(out, sizeof(out), "mx.test", sans, 3, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_str_eq(out, "DNS:mx.test,DNS:mail.test,DNS:*.relay.test");
	cr_assert_eq(stls_selfsign_san(out, sizeof(out), "mx.test", NULL, 0, err, sizeof(err)), STLS_OK);
	cr_assert_str_eq(out, "DNS:mx.test");
}

Test(selfsign, san_refuses_names_that_are_not_host_names)
{
	char out[256], err[128];
	const char *bad[] = { "", "a b.test", "a,DNS:evil.test", "mx.test\n", "x.*.test", "é.test" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *sans[] = { bad[i] };
		cr_assert_eq(stls_selfsign_san(out, sizeof(out), "mx.test", sans, 1, err, sizeof(err)), STLS_ERR_USAGE,
			     "%s", bad[i]);
		cr_assert_eq(stls_selfsign_san(out, sizeof(out), bad[i], NULL, 0, err, sizeof(err)), STLS_ERR_USAGE,
			     "%s", bad[i]);
	}
}

Test(selfsign, san_too_long_for_the_buffer)
{
	char out[16], err[128];
	cr_assert_eq(stls_selfsign_san(out, sizeof(out), "a-rather-long-name.test", NULL, 0, err, sizeof(err)),
		     STLS_ERR_USAGE);
	cr_assert_str_eq(err, "too many names");
}
