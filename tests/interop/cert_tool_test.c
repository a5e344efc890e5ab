/* Interop: starttls-cert (issue 7, spec S1-S9) against independent implementations. What the tool
 * writes is read by `openssl x509`, `openssl req -verify` and `openssl pkcs12`; what `openssl`
 * writes (make-pki's PKI, a PKCS#12 with OpenSSL 3's defaults) is read by the tool and served by
 * starttlsd; a request signed by a test CA and installed with the tool is verified by
 * `openssl s_client -verify_return_error` and by Postfix's posttls-finger. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"

enum { MAX_ARGS = 40 };

static struct stls_fixture fx;
static char pki[256];
static char out[65536];

static void setup(void)
{
	cr_assert(stls_fixture_init(&fx, "certtool"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
}

static void teardown(void)
{
	stls_fixture_cleanup(&fx);
}

TestSuite(cert_tool, .fini = teardown, .timeout = 120);

/* A path in the test's folder (f) or in the PKI (p); a few live at once. */
static const char *f(const char *name)
{
	static char paths[16][320];
	static unsigned next;
	char *p = paths[next++ % 16];
	snprintf(p, sizeof(paths[0]), "%s/%s", fx.dir, name);
	return p;
}

static const char *p(const char *name)
{
	static char paths[16][320];
	static unsigned next;
	char *q = paths[next++ % 16];
	snprintf(q, sizeof(paths[0]), "%s/%s", pki, name);
	return q;
}

/* Runs a program (argv[0] searched in PATH) with the NULL-terminated arguments; its output lands
 * in out. Returns its exit code. */
static int vrun(const char *prog, va_list ap)
{
	char *argv[MAX_ARGS];
	unsigned n = 0;
	argv[n++] = (char *)prog;
	for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1;)
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return stls_proc_run(argv, NULL, 0, out, sizeof(out), 60000);
}

static int tool(const char *cmd, ...)
{
	static char path[320];
	stls_proc_build_path("starttls-cert", path, sizeof(path));
	char *argv[MAX_ARGS] = { path, (char *)cmd };
	unsigned n = 2;
	va_list ap;
	va_start(ap, cmd);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1;)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return stls_proc_run(argv, NULL, 0, out, sizeof(out), 60000);
}

static int run(const char *prog, ...)
{
	va_list ap;
	va_start(ap, prog);
	int code = vrun(prog, ap);
	va_end(ap);
	return code;
}

/* A copy of the last program's output, to compare with the next one's. */
static char saved[sizeof(out)];

static void save(const char *from)
{
	snprintf(saved, sizeof(saved), "%s", from ? from : "");
}

static unsigned mode_of(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return st.st_mode & 07777;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static unsigned count(const char *text, const char *needle)
{
	unsigned n = 0;
	for (const char *s = text; (s = strstr(s, needle)) != NULL; s += strlen(needle))
		n++;
	return n;
}

/* Starts the backend and starttlsd with these certificate flags, then checks that
 * `openssl s_client -verify_return_error` and posttls-finger (level secure) both verify the
 * certificate for mx.test against the test root, and that a message goes through. */
static void served_and_verified(const char *const cert_flags[])
{
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	cr_assert(stls_fixture_start_proxy(&fx, cert_flags), "starttlsd refused it (see %s)", fx.proxy_out);
	const char *args[] = { "-CAfile",	   p("ca.pem"), "-verify_return_error",
			       "-verify_hostname", "mx.test",	"-servername",
			       "mx.test",	   NULL };
	const char *input = "EHLO client.test\nMAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\n"
			    "Subject: installed\n\nbody\n.\nQUIT\n";
	int code = stls_fixture_s_client(&fx, args, input, out, sizeof(out));
	cr_assert_eq(code, 0, "s_client failed:\n%s", out);
	cr_assert(strstr(out, "Verification: OK") || strstr(out, "Verify return code: 0 (ok)"), "%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));

	char dest[64];
	snprintf(dest, sizeof(dest), "[127.0.0.1]:%u", fx.proxy_port);
	code = run("posttls-finger", "-c", "-l", "secure", "-F", p("ca.pem"), dest, "mx.test", NULL);
	cr_assert_eq(code, 0, "posttls-finger:\n%s", out);
	cr_assert(strstr(out, "Verified TLS connection established"), "posttls-finger:\n%s", out);
	/* The control: a client trusting another root does not verify it. */
	code = run("posttls-finger", "-c", "-l", "secure", "-F", p("other-ca.pem"), dest, "mx.test", NULL);
	cr_assert_null(strstr(out, "Verified TLS connection established"), "posttls-finger:\n%s", out);
	cr_assert(strstr(out, "untrusted issuer"), "posttls-finger:\n%s", out);
}

Test(cert_tool, every_command_has_help, .init = setup)
{
	const char *cmds[] = { "selfsign", "csr", "install", "import-p12", "export-p12", "check" };
	cr_assert_eq(tool("--help", NULL), 0, "%s", out);
	save(out);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		cr_assert(strstr(saved, cmds[i]), "main help lacks %s:\n%s", cmds[i], saved);
		char usage[64];
		snprintf(usage, sizeof(usage), "Usage: starttls-cert %s ", cmds[i]);
		cr_assert_eq(tool(cmds[i], "--help", NULL), 0, "%s", out);
		cr_assert(strstr(out, usage), "%s --help:\n%s", cmds[i], out);
	}
	cr_assert_eq(tool("frobnicate", NULL), 2, "%s", out);
	cr_assert_eq(tool("check", "--no-such-flag", "x", NULL), 2, "%s", out);
	cr_assert_eq(tool("selfsign", "--cn", "mx.test", NULL), 2, "missing outputs:\n%s", out);
}

Test(cert_tool, selfsign_is_read_by_openssl_and_served, .init = setup)
{
	cr_assert_eq(tool("selfsign", "--cn", "mx.test", "--san", "mail.test", "--key-type", "ecdsa-p384", "--days",
			  "10", "--out-key", f("s.key"), "--out-cert", f("s.pem"), NULL),
		     0, "%s", out);
	cr_assert_eq(mode_of(f("s.key")), 0600u);
	cr_assert_eq(run("openssl", "x509", "-in", f("s.pem"), "-noout", "-subject", "-issuer", "-ext",
			 "subjectAltName,basicConstraints", "-checkend", "777600", NULL),
		     0, "openssl x509:\n%s", out);
	cr_assert(strstr(out, "subject=CN = mx.test\nissuer=CN = mx.test"), "%s", out);
	cr_assert(strstr(out, "DNS:mx.test, DNS:mail.test"), "%s", out);
	cr_assert(strstr(out, "CA:FALSE"), "%s", out);
	cr_assert_eq(run("openssl", "x509", "-in", f("s.pem"), "-noout", "-checkend", "950400", NULL), 1,
		     "valid for 10 days, not 11:\n%s", out);
	cr_assert_eq(run("openssl", "pkey", "-in", f("s.key"), "-noout", "-text", NULL), 0, "%s", out);
	cr_assert(strstr(out, "NIST CURVE: P-384"), "%s", out);
	/* The key belongs to the certificate: the same public key. */
	cr_assert_eq(run("openssl", "x509", "-in", f("s.pem"), "-noout", "-pubkey", NULL), 0);
	save(out);
	cr_assert_eq(run("openssl", "pkey", "-in", f("s.key"), "-pubout", NULL), 0);
	cr_assert_str_eq(saved, out);

	const char *flags[] = { "--cert", f("s.pem"), "--key", f("s.key"), NULL };
	cr_assert(stls_fixture_start_proxy(&fx, flags), "starttlsd refused it (see %s)", fx.proxy_out);
	const char *args[] = { "-servername", "mx.test", NULL };
	cr_assert_eq(stls_fixture_s_client(&fx, args, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "subject=CN = mx.test"), "%s", out);
	cr_assert(strstr(out, "self-signed certificate") || strstr(out, "self signed certificate"), "%s", out);
}

Test(cert_tool, nothing_is_replaced_without_force, .init = setup)
{
	cr_assert_eq(tool("selfsign", "--cn", "mx.test", "--out-key", f("k"), "--out-cert", f("c"), NULL), 0, "%s",
		     out);
	size_t len;
	char *before = stls_proc_read_file(f("k"), &len);
	cr_assert_eq(tool("selfsign", "--cn", "mx.test", "--out-key", f("k"), "--out-cert", f("c2"), NULL), 1, "%s",
		     out);
	cr_assert(strstr(out, "exists: give --force to replace it"), "%s", out);
	cr_assert_not(exists(f("c2")), "a refused run writes nothing");
	char *after = stls_proc_read_file(f("k"), NULL);
	cr_assert_str_eq(before, after);
	free(after);
	cr_assert_eq(tool("csr", "--new-key", f("k"), "--cn", "mx.test", "--out", f("r"), NULL), 1, "%s", out);
	cr_assert_eq(tool("selfsign", "--cn", "mx.test", "--out-key", f("same"), "--out-cert", f("same"), NULL), 1,
		     "%s", out);
	cr_assert(strstr(out, "is named for two outputs"), "%s", out);
	cr_assert_not(exists(f("same")));
	cr_assert_not(exists(f("r")));
	cr_assert_eq(tool("selfsign", "--cn", "mx.test", "--out-key", f("k"), "--out-cert", f("c"), "--force", NULL), 0,
		     "%s", out);
	after = stls_proc_read_file(f("k"), NULL);
	cr_assert_str_neq(before, after, "--force replaced the key");
	cr_assert_eq(mode_of(f("k")), 0600u);
	free(after);
	free(before);
}

Test(cert_tool, passwords_never_come_from_the_command_line, .init = setup)
{
	cr_assert_eq(tool("export-p12", "--key", p("leaf.key"), "--cert", p("leaf.pem"), "--password", "secret",
			  "--out", f("x.p12"), NULL),
		     2, "%s", out);
	cr_assert(strstr(out, "--password-file FILE or --password-env NAME"), "%s", out);
	cr_assert_eq(tool("export-p12", "--key", p("leaf.key"), "--cert", p("leaf.pem"), "--out", f("x.p12"), NULL), 2,
		     "%s", out);
	cr_assert_eq(tool("export-p12", "--key", p("leaf.key"), "--cert", p("leaf.pem"), "--password-env",
			  "STLS_NO_SUCH_VARIABLE", "--out", f("x.p12"), NULL),
		     1, "%s", out);
	cr_assert_not(exists(f("x.p12")));
}

Test(cert_tool, csr_is_verified_by_openssl_req, .init = setup)
{
	cr_assert_eq(tool("csr", "--new-key", f("n.key"), "--key-type", "rsa2048", "--cn", "mx.test", "--san",
			  "mail.test", "--out", f("n.csr"), NULL),
		     0, "%s", out);
	cr_assert_eq(mode_of(f("n.key")), 0600u);
	cr_assert_eq(run("openssl", "req", "-in", f("n.csr"), "-verify", "-noout", "-subject", "-text", NULL), 0,
		     "openssl req:\n%s", out);
	cr_assert(strstr(out, "verify OK"), "%s", out);
	cr_assert(strstr(out, "subject=CN = mx.test"), "%s", out);
	cr_assert(strstr(out, "DNS:mx.test, DNS:mail.test"), "%s", out);
	cr_assert(strstr(out, "Public-Key: (2048 bit)"), "%s", out);
	/* For an existing key (renewal, spec S6): the request carries that key. */
	cr_assert_eq(tool("csr", "--key", p("leaf.key"), "--cn", "mx.test", "--out", f("renew.csr"), NULL), 0, "%s",
		     out);
	cr_assert_eq(run("openssl", "req", "-in", f("renew.csr"), "-verify", "-noout", "-pubkey", NULL), 0, "%s", out);
	cr_assert(strstr(out, "verify OK"), "%s", out);
	save(strstr(out, "-----BEGIN PUBLIC KEY"));
	cr_assert_eq(run("openssl", "pkey", "-in", p("leaf.key"), "-pubout", NULL), 0);
	cr_assert_str_eq(saved, out);
	/* The control: openssl notices a request whose signature is broken. */
	char *pem = stls_proc_read_file(f("renew.csr"), NULL);
	char *sig = strstr(pem, "-----END") - 10;
	*sig = *sig == 'A' ? 'B' : 'A';
	cr_assert(stls_proc_write_file(f("bad.csr"), pem, strlen(pem)));
	free(pem);
	run("openssl", "req", "-in", f("bad.csr"), "-verify", "-noout", NULL);
	/* (OpenSSL 3.0's req -verify exits 0 either way: its words are what tell.) */
	cr_assert(strstr(out, "verify failure") && !strstr(out, "verify OK"), "%s", out);
}

/* The appliance's path (spec S4, S5): a request, signed by a CA with the openssl command line,
 * installed with its intermediate, served and verified by two independent clients. */
Test(cert_tool, signed_request_installed_is_served_and_verified, .init = setup)
{
	cr_assert_eq(tool("csr", "--new-key", f("mx.key"), "--key-type", "ecdsa-p256", "--cn", "mx.test", "--out",
			  f("mx.csr"), NULL),
		     0, "%s", out);
	cr_assert_eq(run("openssl", "x509", "-req", "-in", f("mx.csr"), "-CA", p("int.pem"), "-CAkey", p("int.key"),
			 "-CAcreateserial", "-days", "90", "-copy_extensions", "copy", "-out", f("signed.pem"), NULL),
		     0, "openssl x509 -req:\n%s", out);
	cr_assert_eq(tool("install", "--key", f("mx.key"), "--cert", f("signed.pem"), "--chain", p("int.pem"),
			  "--hostname", "mx.test", "--out-cert", f("cert.pem"), "--out-chain", f("chain.pem"), NULL),
		     0, "%s", out);
	cr_assert_eq(tool("check", "--cert", f("cert.pem"), "--chain", f("chain.pem"), "--key", f("mx.key"),
			  "--ca-file", p("ca.pem"), "--hostname", "mx.test", "--mx", "mx.test", NULL),
		     0, "%s", out);
	cr_assert(strstr(out, "a peer that trusts"), "%s", out);
	const char *flags[] = { "--cert", f("cert.pem"), "--key", f("mx.key"), "--chain", f("chain.pem"), NULL };
	served_and_verified(flags);
}

Test(cert_tool, install_orders_the_chain_and_drops_duplicates, .init = setup)
{
	cr_assert_eq(tool("install", "--key", p("leaf.key"), "--cert", p("leaf.pem"), "--chain",
			  p("chain-reversed.pem"), "--out-cert", f("c.pem"), "--out-chain", f("ch.pem"), NULL),
		     0, "%s", out);
	cr_assert(strstr(out, "WARNING intermediates are out of order"), "%s", out);
	/* Leaf to root: the intermediate, then the root. */
	cr_assert_eq(run("sh", "-c", "openssl crl2pkcs7 -nocrl -certfile \"$0\" | openssl pkcs7 -print_certs -noout",
			 f("ch.pem"), NULL),
		     0, "%s", out);
	const char *inter = strstr(out, "subject=CN = Test Intermediate");
	const char *root = strstr(out, "subject=CN = Test Root");
	cr_assert(inter && root && inter < root, "%s", out);

	cr_assert_eq(tool("install", "--key", p("leaf.key"), "--cert", p("leaf.pem"), "--chain", p("chain-dup.pem"),
			  "--out-cert", f("c2.pem"), "--out-chain", f("ch2.pem"), NULL),
		     0, "%s", out);
	cr_assert(strstr(out, "WARNING duplicate certificate \"CN = Test Intermediate\" in the chain, dropped"), "%s",
		  out);
	char *chain = stls_proc_read_file(f("ch2.pem"), NULL);
	cr_assert_eq(count(chain, "BEGIN CERTIFICATE"), 1, "%s", chain);
	free(chain);
	chain = stls_proc_read_file(f("c2.pem"), NULL);
	cr_assert_eq(count(chain, "BEGIN CERTIFICATE"), 1, "the leaf alone: %s", chain);
	free(chain);

	/* Without --out-chain the intermediates follow the leaf (a fullchain file). */
	cr_assert_eq(tool("install", "--key", p("leaf.key"), "--cert", p("leaf.pem"), "--chain", p("chain-dup.pem"),
			  "--out-cert", f("full.pem"), NULL),
		     0, "%s", out);
	chain = stls_proc_read_file(f("full.pem"), NULL);
	cr_assert_eq(count(chain, "BEGIN CERTIFICATE"), 2, "%s", chain);
	free(chain);
	const char *flags[] = { "--cert", f("c.pem"), "--key", p("leaf.key"), "--chain", f("ch.pem"), NULL };
	served_and_verified(flags);
}

Test(cert_tool, install_refuses_what_the_daemon_would_refuse, .init = setup)
{
	cr_assert_eq(tool("install", "--key", p("leaf.key"), "--cert", p("leaf.pem"), "--chain", p("other-int.pem"),
			  "--out-cert", f("c.pem"), "--out-chain", f("ch.pem"), NULL),
		     1, "%s", out);
	cr_assert(strstr(out, "ERROR   broken chain: \"CN = Other Intermediate\""), "%s", out);
	cr_assert(strstr(out, "not installed"), "%s", out);
	cr_assert_not(exists(f("c.pem")));
	cr_assert_not(exists(f("ch.pem")));
	cr_assert_eq(tool("install", "--key", p("other.key"), "--cert", p("leaf.pem"), "--chain", p("int.pem"),
			  "--out-cert", f("c.pem"), NULL),
		     1, "%s", out);
	cr_assert(strstr(out, "the private key does not match the certificate"), "%s", out);
	cr_assert_not(exists(f("c.pem")));
	/* The daemon says the same about the same files. */
	char daemon[320];
	stls_proc_build_path("starttlsd", daemon, sizeof(daemon));
	cr_assert_eq(run(daemon, "--check", "--hostname", "mx.test", "--cert", p("leaf.pem"), "--key", p("leaf.key"),
			 "--chain", p("other-int.pem"), NULL),
		     1, "%s", out);
	cr_assert(strstr(out, "broken chain: \"CN = Other Intermediate\""), "%s", out);
}

Test(cert_tool, check_reports_chain_names_expiry_and_trust, .init = setup)
{
	cr_assert_eq(tool("check", "--cert", p("leaf.pem"), "--chain", p("int.pem"), "--key", p("leaf.key"),
			  "--ca-file", p("ca.pem"), "--hostname", "mx.test", "--mx", "mx.test", NULL),
		     0, "%s", out);
	cr_assert(strstr(out, "ok      a peer that trusts"), "%s", out);
	cr_assert(strstr(out, "0 errors, 0 warnings"), "%s", out);

	/* Spec S4: an MX name the certificate does not cover. */
	cr_assert_eq(tool("check", "--cert", p("leaf.pem"), "--chain", p("int.pem"), "--hostname", "mx.test", "--mx",
			  "mx2.test", NULL),
		     1, "%s", out);
	cr_assert(strstr(out, "ERROR   the certificate does not cover the MX host mx2.test"), "%s", out);
	cr_assert_eq(tool("check", "--cert", p("leaf.pem"), "--chain", p("int.pem"), "--hostname", "smtp.test", NULL),
		     1, "%s", out);
	cr_assert(strstr(out, "does not cover the listener hostname smtp.test"), "%s", out);

	/* Spec S9: duplicates and wrong order are reported (the daemon would fix them: warnings). */
	cr_assert_eq(
		tool("check", "--cert", p("leaf.pem"), "--chain", p("chain-dup.pem"), "--hostname", "mx.test", NULL), 0,
		"%s", out);
	cr_assert(strstr(out, "WARNING duplicate certificate \"CN = Test Intermediate\""), "%s", out);
	cr_assert_eq(tool("check", "--cert", p("leaf.pem"), "--chain", p("chain-reversed.pem"), "--hostname", "mx.test",
			  NULL),
		     0, "%s", out);
	cr_assert(strstr(out, "WARNING intermediates are out of order"), "%s", out);

	/* Incomplete chain: a peer with only the root cannot build the path. */
	cr_assert_eq(tool("check", "--cert", p("leaf.pem"), "--ca-file", p("ca.pem"), "--mx", "mx.test", NULL), 1, "%s",
		     out);
	cr_assert(strstr(out, "WARNING no intermediate certificate"), "%s", out);
	cr_assert(strstr(out, "ERROR   a peer that trusts"), "%s", out);
	cr_assert(strstr(out, "unable to get local issuer certificate"), "%s", out);

	cr_assert_eq(
		tool("check", "--cert", p("expired.pem"), "--chain", p("int.pem"), "--key", p("expired.key"), NULL), 1,
		"%s", out);
	cr_assert(strstr(out, "has expired"), "%s", out);
	/* Under 30 days left: a warning, not an error. */
	cr_assert_eq(tool("selfsign", "--cn", "mx.test", "--days", "10", "--out-key", f("soon.key"), "--out-cert",
			  f("soon.pem"), NULL),
		     0, "%s", out);
	cr_assert_eq(tool("check", "--cert", f("soon.pem"), "--key", f("soon.key"), "--hostname", "mx.test", NULL), 0,
		     "%s", out);
	cr_assert(strstr(out, "WARNING certificate \"CN = mx.test\" expires in 9 days") ||
			  strstr(out, "WARNING certificate \"CN = mx.test\" expires in 10 days"),
		  "%s", out);
	cr_assert_eq(tool("check", "--cert", p("leaf.pem"), "--key", p("other.key"), "--hostname", "mx.test", NULL), 1,
		     "%s", out);
	cr_assert(strstr(out, "the private key does not match"), "%s", out);
}

/* Spec S3: a PKCS#12 file made by OpenSSL 3 with its defaults (AES-256, PBKDF2, SHA-256 MAC). */
Test(cert_tool, openssl_pkcs12_is_imported_and_served, .init = setup)
{
	cr_assert_eq(tool("import-p12", p("leaf.p12"), "--password-file", f("none"), "--out-key", f("k.pem"),
			  "--out-cert", f("c.pem"), NULL),
		     1, "%s", out);
	cr_assert(stls_proc_write_file(f("wrong"), "nope\n", 5));
	cr_assert_eq(tool("import-p12", p("leaf.p12"), "--password-file", f("wrong"), "--out-key", f("k.pem"),
			  "--out-cert", f("c.pem"), NULL),
		     1, "%s", out);
	cr_assert(strstr(out, "wrong password"), "%s", out);
	cr_assert_not(exists(f("k.pem")));
	cr_assert_eq(tool("import-p12", p("leaf.p12"), "--password-file", p("leaf.p12.password"), "--out-key",
			  f("k.pem"), "--out-cert", f("c.pem"), "--out-chain", f("ch.pem"), NULL),
		     0, "%s", out);
	cr_assert_eq(mode_of(f("k.pem")), 0600u);
	/* What came out is what went in. */
	cr_assert_eq(run("openssl", "x509", "-in", f("c.pem"), "-noout", "-fingerprint", "-sha256", NULL), 0);
	save(out);
	cr_assert_eq(run("openssl", "x509", "-in", p("leaf.pem"), "-noout", "-fingerprint", "-sha256", NULL), 0);
	cr_assert_str_eq(saved, out);
	cr_assert_eq(run("cmp", f("ch.pem"), p("int.pem"), NULL), 0, "%s", out);
	cr_assert_eq(run("openssl", "pkey", "-in", f("k.pem"), "-pubout", NULL), 0);
	save(out);
	cr_assert_eq(run("openssl", "pkey", "-in", p("leaf.key"), "-pubout", NULL), 0);
	cr_assert_str_eq(saved, out);
	const char *flags[] = { "--cert", f("c.pem"), "--key", f("k.pem"), "--chain", f("ch.pem"), NULL };
	served_and_verified(flags);
}

/* Spec S8: the tool's PKCS#12 is read by OpenSSL 3 (without -legacy) and by the daemon. */
Test(cert_tool, exported_pkcs12_is_read_by_openssl_and_served, .init = setup)
{
	cr_assert(stls_proc_write_file(f("pw"), "correct horse\n", 14));
	cr_assert_eq(tool("export-p12", "--key", p("leaf.key"), "--cert", p("leaf.pem"), "--chain", p("chain-dup.pem"),
			  "--password-file", f("pw"), "--out", f("b.p12"), NULL),
		     0, "%s", out);
	cr_assert(strstr(out, "1 intermediate"), "the duplicate is not exported: %s", out);
	cr_assert_eq(mode_of(f("b.p12")), 0600u);
	cr_assert_eq(
		run("openssl", "pkcs12", "-in", f("b.p12"), "-passin", "pass:correct horse", "-info", "-nodes", NULL),
		0, "openssl pkcs12:\n%s", out);
	/* OpenSSL 3's own defaults: PBES2 with AES-256 for the key and the certificates, SHA-256 MAC. */
	cr_assert(strstr(out, "MAC: sha256, Iteration 200000"), "%s", out);
	cr_assert_eq(count(out, "PBES2, PBKDF2, AES-256-CBC, Iteration 200000, PRF hmacWithSHA256"), 2, "%s", out);
	cr_assert_eq(count(out, "BEGIN CERTIFICATE"), 2, "%s", out);
	cr_assert(strstr(out, "BEGIN PRIVATE KEY"), "%s", out);
	cr_assert(strstr(out, "friendlyName: mx.test"), "%s", out);
	cr_assert_neq(run("openssl", "pkcs12", "-in", f("b.p12"), "-passin", "pass:wrong", "-noout", NULL), 0, "%s",
		      out);
	/* Through the environment, the other way to give a password. */
	setenv("STLS_TEST_P12_PASSWORD", "from the environment", 1);
	cr_assert_eq(tool("export-p12", "--key", p("leaf.key"), "--cert", p("fullchain.pem"), "--password-env",
			  "STLS_TEST_P12_PASSWORD", "--out", f("env.p12"), NULL),
		     0, "%s", out);
	cr_assert_eq(
		run("openssl", "pkcs12", "-in", f("env.p12"), "-passin", "env:STLS_TEST_P12_PASSWORD", "-noout", NULL),
		0, "%s", out);
	/* Round trip through the tool, and the daemon serves the file itself. */
	cr_assert_eq(tool("import-p12", f("b.p12"), "--password-file", f("pw"), "--out-key", f("k"), "--out-cert",
			  f("c"), NULL),
		     0, "%s", out);
	const char *flags[] = { "--p12", f("b.p12"), "--p12-password-file", f("pw"), NULL };
	served_and_verified(flags);
}

/* Spec S5: the signed certificate replaces the self-signed one for the same key, in a running
 * daemon, on SIGHUP. */
Test(cert_tool, installed_certificate_replaces_the_self_signed_one_on_reload, .init = setup)
{
	cr_assert_eq(tool("selfsign", "--cn", "mx.test", "--key-type", "ecdsa-p256", "--out-key", f("mx.key"),
			  "--out-cert", f("mx.pem"), NULL),
		     0, "%s", out);
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	const char *flags[] = { "--cert", f("mx.pem"), "--key", f("mx.key"), NULL };
	cr_assert(stls_fixture_start_proxy(&fx, flags), "see %s", fx.proxy_out);
	const char *verify[] = { "-CAfile", p("ca.pem"), "-verify_return_error", "-verify_hostname", "mx.test", NULL };
	cr_assert_neq(stls_fixture_s_client(&fx, verify, "QUIT\n", out, sizeof(out)), 0, "self-signed, verified?\n%s",
		      out);

	cr_assert_eq(tool("csr", "--key", f("mx.key"), "--cn", "mx.test", "--out", f("mx.csr"), NULL), 0, "%s", out);
	cr_assert_eq(run("openssl", "x509", "-req", "-in", f("mx.csr"), "-CA", p("int.pem"), "-CAkey", p("int.key"),
			 "-CAcreateserial", "-days", "90", "-copy_extensions", "copy", "-out", f("signed.pem"), NULL),
		     0, "%s", out);
	/* The same file the daemon reads: refused without --force, replaced with it. */
	cr_assert_eq(tool("install", "--key", f("mx.key"), "--cert", f("signed.pem"), "--chain", p("int.pem"),
			  "--out-cert", f("mx.pem"), NULL),
		     1, "%s", out);
	cr_assert_eq(tool("install", "--key", f("mx.key"), "--cert", f("signed.pem"), "--chain", p("int.pem"),
			  "--out-cert", f("mx.pem"), "--force", NULL),
		     0, "%s", out);
	cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "reload committed", 10000), "see %s", fx.proxy_log);
	cr_assert_eq(stls_fixture_s_client(&fx, verify, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "Verify return code: 0 (ok)") || strstr(out, "Verification: OK"), "%s", out);
	char dest[64];
	snprintf(dest, sizeof(dest), "[127.0.0.1]:%u", fx.proxy_port);
	cr_assert_eq(run("posttls-finger", "-c", "-l", "secure", "-F", p("ca.pem"), dest, "mx.test", NULL), 0, "%s",
		     out);
	cr_assert(strstr(out, "Verified TLS connection established"), "%s", out);
}

/* Point 3 of the issue: the daemon's start-up checks are the tool's, word for word. */
Test(cert_tool, the_daemon_reports_what_check_reports, .init = setup)
{
	char daemon[320];
	stls_proc_build_path("starttlsd", daemon, sizeof(daemon));
	cr_assert_eq(run(daemon, "--check", "--hostname", "smtp.test", "--cert", p("leaf.pem"), "--key", p("leaf.key"),
			 "--chain", p("chain-dup.pem"), NULL),
		     0, "%s", out);
	const char *same[] = {
		"the certificate does not cover the listener hostname smtp.test",
		"duplicate certificate \"CN = Test Intermediate\" in the chain, dropped",
	};
	for (size_t i = 0; i < 2; i++)
		cr_assert(strstr(out, same[i]), "starttlsd --check lacks \"%s\":\n%s", same[i], out);
	cr_assert(strstr(out, "starttlsd: certificate warning: the certificate does not cover"), "%s", out);
	cr_assert_eq(tool("check", "--cert", p("leaf.pem"), "--key", p("leaf.key"), "--chain", p("chain-dup.pem"),
			  "--hostname", "smtp.test", NULL),
		     1, "%s", out);
	for (size_t i = 0; i < 2; i++)
		cr_assert(strstr(out, same[i]), "check lacks \"%s\":\n%s", same[i], out);
}
