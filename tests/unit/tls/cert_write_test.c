/* Unit tests for tls/cert_write.c: files written whole, keys 0600, nothing replaced without force,
 * PKCS#12 that reads back (spec S2, S3, S8). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/support/proc.h"
#include "tls/cert.h"
#include "tls/cert_write.h"
#include "tls/selfsign.h"

static char dir[128];
static char err[512];

static void setup(void)
{
	cr_assert(stls_proc_tmpdir(dir, sizeof(dir), "cert-write-unit"));
}

static void teardown(void)
{
	stls_proc_rmtree(dir);
}

TestSuite(cert_write, .init = setup, .fini = teardown, .timeout = 60);

static const char *path(const char *name)
{
	static char paths[4][256];
	static unsigned next;
	char *p = paths[next++ % 4];
	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	return p;
}

static unsigned mode_of(const char *p)
{
	struct stat st;
	cr_assert_eq(stat(p, &st), 0, "%s", p);
	return st.st_mode & 07777;
}

/* Files in the folder: a failed or finished write leaves no temporary file behind. */
static unsigned num_files(void)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	unsigned n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void make_bundle(struct stls_cert_bundle *b)
{
	*b = (struct stls_cert_bundle){ .chain = sk_X509_new_null() };
	cr_assert_eq(stls_key_generate(&b->key, STLS_KEY_ECDSA_P256), STLS_OK);
	cr_assert_eq(stls_selfsign(&b->leaf, b->key, "mx.test", NULL, 0, 30, err, sizeof(err)), STLS_OK, "%s", err);
}

Test(cert_write, a_key_is_0600_whatever_the_umask)
{
	struct stls_cert_bundle b;
	make_bundle(&b);
	mode_t old = umask(0);
	const char *p = path("k.pem");
	cr_assert_eq(stls_cert_write_key(p, b.key, false, err, sizeof(err)), STLS_OK, "%s", err);
	umask(old);
	cr_assert_eq(mode_of(p), 0600u);
	EVP_PKEY *back = NULL;
	cr_assert_eq(stls_cert_load_key(&back, p, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(EVP_PKEY_cmp(back, b.key), 1);
	char *text = stls_proc_read_file(p, NULL);
	cr_assert(strncmp(text, "-----BEGIN PRIVATE KEY-----\n", 28) == 0, "%s", text);
	free(text);
	EVP_PKEY_free(back);
	stls_cert_bundle_cleanup(&b);
}

Test(cert_write, nothing_is_replaced_without_force)
{
	const char *p = path("f");
	cr_assert_eq(stls_cert_write_check(p, false, err, sizeof(err)), STLS_OK);
	cr_assert_eq(stls_cert_write_file(p, "one", 3, 0644, false, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(mode_of(p), 0644u);
	cr_assert_eq(stls_cert_write_check(p, false, err, sizeof(err)), STLS_ERR_CONFIG);
	cr_assert(strstr(err, "exists: give --force"), "%s", err);
	cr_assert_eq(stls_cert_write_file(p, "two", 3, 0644, false, err, sizeof(err)), STLS_ERR_CONFIG);
	char *text = stls_proc_read_file(p, NULL);
	cr_assert_str_eq(text, "one");
	free(text);
	cr_assert_eq(num_files(), 1, "the temporary file is gone");

	cr_assert_eq(stls_cert_write_check(p, true, err, sizeof(err)), STLS_OK);
	cr_assert_eq(stls_cert_write_file(p, "three", 5, 0600, true, err, sizeof(err)), STLS_OK, "%s", err);
	text = stls_proc_read_file(p, NULL);
	cr_assert_str_eq(text, "three");
	free(text);
	cr_assert_eq(mode_of(p), 0600u);
	cr_assert_eq(num_files(), 1);
	/* Not even with force: something that is not a regular file. */
	cr_assert_eq(stls_cert_write_check(dir, true, err, sizeof(err)), STLS_ERR_CONFIG);
}

Test(cert_write, a_folder_that_does_not_exist_is_an_io_error)
{
	cr_assert_eq(stls_cert_write_file("/nonexistent/dir/f", "x", 1, 0644, false, err, sizeof(err)), STLS_ERR_IO);
	cr_assert(strstr(err, "/nonexistent/dir/f"), "%s", err);
}

Test(cert_write, certificates_in_order_and_read_back)
{
	struct stls_cert_bundle b;
	make_bundle(&b);
	X509 *second = NULL;
	cr_assert_eq(stls_selfsign(&second, b.key, "second.test", NULL, 0, 30, err, sizeof(err)), STLS_OK);
	cr_assert(sk_X509_push(b.chain, second));
	const char *p = path("c.pem");
	cr_assert_eq(stls_cert_write_certs(p, b.leaf, b.chain, false, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(mode_of(p), 0644u);
	struct stls_cert_bundle back;
	cr_assert_eq(stls_cert_load_pem(&back, p, NULL, NULL, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(X509_cmp(back.leaf, b.leaf), 0);
	cr_assert_eq(sk_X509_num(back.chain), 1);
	cr_assert_eq(X509_cmp(sk_X509_value(back.chain, 0), second), 0);
	cr_assert_eq(stls_cert_write_certs(path("none.pem"), NULL, NULL, false, err, sizeof(err)), STLS_ERR_INTERNAL);
	stls_cert_bundle_cleanup(&back);
	stls_cert_bundle_cleanup(&b);
}

Test(cert_write, pkcs12_reads_back_with_its_password_only)
{
	struct stls_cert_bundle b;
	make_bundle(&b);
	X509 *second = NULL;
	cr_assert_eq(stls_selfsign(&second, b.key, "second.test", NULL, 0, 30, err, sizeof(err)), STLS_OK);
	cr_assert(sk_X509_push(b.chain, second));
	const char *p = path("b.p12");
	cr_assert_eq(stls_cert_write_p12(p, &b, "", "mx.test", false, err, sizeof(err)), STLS_ERR_CONFIG);
	cr_assert_eq(num_files(), 0);
	cr_assert_eq(stls_cert_write_p12(p, &b, "secret", "mx.test", false, err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(mode_of(p), 0600u, "it holds the key");
	struct stls_cert_bundle back;
	cr_assert_eq(stls_cert_load_p12(&back, p, "wrong", err, sizeof(err)), STLS_ERR_CONFIG);
	cr_assert_eq(stls_cert_load_p12(&back, p, "secret", err, sizeof(err)), STLS_OK, "%s", err);
	cr_assert_eq(EVP_PKEY_cmp(back.key, b.key), 1);
	cr_assert_eq(X509_cmp(back.leaf, b.leaf), 0);
	cr_assert_eq(sk_X509_num(back.chain), 1);
	stls_cert_bundle_cleanup(&back);
	stls_cert_bundle_cleanup(&b);
}
