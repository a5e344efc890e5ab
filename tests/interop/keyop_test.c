/* Interop: --keyop-threads, handshake signatures made by the key-op process (starttls-keyop, with
 * OpenSSL's libcrypto), driven with openssl s_client: RSA (TLS 1.3 PSS, TLS 1.2 PSS and PKCS#1)
 * and ECDSA certificates, a crash and a restart, a stalled process that costs only the handshakes
 * waiting for it, a reload to another key, and --check. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx;
static char pki[256];
static char cert_path[320], key_path[320], chain_path[320];
static char out[65536];

static void copy_file(const char *from, const char *to)
{
	size_t len;
	char *data = stls_proc_read_file(from, &len);
	cr_assert_not_null(data, "cannot read %s", from);
	cr_assert(stls_proc_write_file(to, data, len));
	free(data);
}

/* Writes an executable file. */
static void write_program(const char *path, const char *text)
{
	cr_assert(stls_proc_write_file(path, text, strlen(text)));
	cr_assert_eq(chmod(path, 0755), 0);
}

/* A stand-in starttls-keyop at path that answers every control message with protocol, and LOADs
 * with load_status (0 takes the key). */
static void write_stand_in(const char *path, unsigned protocol, unsigned load_status)
{
	char text[600];
	snprintf(text, sizeof(text),
		 "#!/usr/bin/python3\n"
		 "import struct, socket\n"
		 "s = socket.socket(fileno=3)\n"
		 "while True:\n"
		 "    m = s.recv(70000)\n"
		 "    if not m: break\n"
		 "    t, k = struct.unpack_from('<II', m)\n"
		 "    s.send(struct.pack('<IIII112s', t, k, %u if t == 1 else 0, %u, b'refused'))\n",
		 load_status, protocol);
	write_program(path, text);
}

/* Copies a built program to path. */
static void copy_program(const char *name, const char *path)
{
	char built[256];
	stls_proc_build_path(name, built, sizeof(built));
	copy_file(built, path);
	cr_assert_eq(chmod(path, 0755), 0);
}

/* Installs the PKI's RSA or ECDSA leaf as cert.pem/key.pem in the test's folder (so a test can
 * replace them and reload). */
static void install(bool ecdsa)
{
	char from[320];
	snprintf(from, sizeof(from), "%s/%s", pki, ecdsa ? "leaf-ec.pem" : "leaf.pem");
	copy_file(from, cert_path);
	snprintf(from, sizeof(from), "%s/%s", pki, ecdsa ? "leaf-ec.key" : "leaf.key");
	copy_file(from, key_path);
}

static void start(bool ecdsa, const char *const extra[])
{
	cr_assert(stls_fixture_init(&fx, "keyop"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", fx.dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", fx.dir);
	snprintf(chain_path, sizeof(chain_path), "%s/int.pem", pki);
	install(ecdsa);
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	const char *args[32] = {
		"--cert", cert_path, "--key", key_path, "--chain", chain_path, "--keyop-threads", "2"
	};
	unsigned n = 8;
	for (unsigned i = 0; extra && extra[i] && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	cr_assert(stls_fixture_start_proxy(&fx, args), "starttlsd did not start (see %s)", fx.proxy_out);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "close", 5000));
}

static void start_rsa(void)
{
	start(false, NULL);
}

static void start_ecdsa(void)
{
	start(true, NULL);
}

static uint16_t stats_port;

static void start_ecdsa_with_stats(void)
{
	stats_port = stls_proc_free_port();
	static char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", stats_port);
	const char *const extra[] = { "--stats-listen", listen, NULL };
	start(true, extra);
}

/* The sum over the workers of a per-worker counter on --stats-listen's /metrics; -1 if the page
 * could not be read. */
static long long metric_sum(const char *name)
{
	static char page[65536];
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	if (stls_http_exchange(stats_port, req, sizeof(req) - 1, page, sizeof(page)) < 0 ||
	    strncmp(page, "HTTP/1.0 200", 12) != 0)
		return -1;
	return stls_metric_sum(page, name);
}

static void start_ecdsa_short_timeout(void)
{
	static const char *const extra[] = { "--handshake-timeout", "2", NULL };
	start(true, extra);
}

static void teardown(void)
{
	stls_fixture_cleanup(&fx);
}

static void finish(void)
{
	int code = stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "starttlsd did not exit cleanly (%d); its output was printed above", code);
}

TestSuite(keyop, .fini = teardown, .timeout = 120);

/* Starts a copy of starttlsd and starttls-keyop in the test's folder (so that a test can take
 * the program away or swap it), with one signing thread and the RSA or ECDSA leaf installed as
 * cert.pem/key.pem there. program gets the copied starttls-keyop's path. */
static void start_own_copy(const char *tag, bool ecdsa, char *program, size_t program_len)
{
	cr_assert(stls_fixture_init(&fx, tag));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	snprintf(fx.daemon, sizeof(fx.daemon), "%s/starttlsd", fx.dir);
	copy_program("starttlsd", fx.daemon);
	snprintf(program, program_len, "%s/starttls-keyop", fx.dir);
	copy_program("starttls-keyop", program);
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", fx.dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", fx.dir);
	snprintf(chain_path, sizeof(chain_path), "%s/int.pem", pki);
	install(ecdsa);
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	const char *args[] = { "--cert",   cert_path,	      "--key", key_path, "--chain",
			       chain_path, "--keyop-threads", "1",     NULL };
	cr_assert(stls_fixture_start_proxy(&fx, args), "starttlsd did not start (see %s)", fx.proxy_out);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "signing thread", 5000));
}

/* The key-op process's pid from the newest "key-op process N started" line. */
static pid_t keyop_pid(void)
{
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	cr_assert_not_null(log);
	pid_t pid = 0;
	for (const char *p = log; (p = strstr(p, "key-op process ")) != NULL; p++) {
		const char *q = p + strlen("key-op process ");
		const char *started = strstr(q, " started");
		if (started && started - q < 12)
			pid = (pid_t)atoi(q);
	}
	/* "started again (pid N)" names the restarted one. */
	for (const char *p = log; (p = strstr(p, "started again (pid ")) != NULL; p++)
		pid = (pid_t)atoi(p + strlen("started again (pid "));
	free(log);
	cr_assert_gt(pid, 0, "no key-op process in the log");
	return pid;
}

/* One verified STARTTLS session with extra s_client arguments; returns s_client's exit code. */
static int handshake(const char *const extra[], const char *input)
{
	static char ca[320];
	snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
	const char *args[24] = { "-CAfile",	ca,	  "-verify_return_error", "-verify_hostname", "mx.test",
				 "-servername", "mx.test" };
	unsigned n = 7;
	for (unsigned i = 0; extra && extra[i] && n < 23; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return stls_fixture_s_client(&fx, args, input ? input : "QUIT\n", out, sizeof(out));
}

static void assert_verified(const char *what)
{
	cr_assert(strstr(out, "Verification: OK") || strstr(out, "Verify return code: 0 (ok)"), "%s:\n%s", what, out);
}

Test(keyop, rsa_signatures_for_tls13_and_tls12, .init = start_rsa)
{
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "signing thread", 1000));
	/* TLS 1.3: RSA-PSS, and a whole message. */
	static const char *const tls13[] = { "-tls1_3", NULL };
	const char *input = "EHLO client.test\nMAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\n"
			    "Subject: signed elsewhere\n\nbody\n.\nQUIT\n";
	cr_assert_eq(handshake(tls13, input), 0, "%s", out);
	assert_verified("TLS 1.3");
	cr_assert(strstr(out, "Peer signature type: RSA-PSS"), "%s", out);
	cr_assert(strstr(out, "250 2.0.0"), "%s", out);
	cr_assert(stls_fixture_wait_messages(&fx, 1, 5000));
	/* TLS 1.2 with each RSA scheme a client may ask for. */
	static const char *const tls12_pss[] = { "-tls1_2", "-sigalgs", "rsa_pss_rsae_sha384", NULL };
	cr_assert_eq(handshake(tls12_pss, NULL), 0, "%s", out);
	assert_verified("TLS 1.2 PSS");
	cr_assert(strstr(out, "Peer signing digest: SHA384"), "%s", out);
	static const char *const tls12_pkcs1[] = { "-tls1_2", "-sigalgs", "RSA+SHA512", NULL };
	cr_assert_eq(handshake(tls12_pkcs1, NULL), 0, "%s", out);
	assert_verified("TLS 1.2 PKCS#1");
	cr_assert(strstr(out, "Peer signature type: RSA\n"), "%s", out);
	cr_assert(strstr(out, "Peer signing digest: SHA512"), "%s", out);
	/* Resumption signs nothing and still works. */
	char sess[320];
	snprintf(sess, sizeof(sess), "%s/sess.pem", fx.dir);
	const char *save[] = { "-tls1_3", "-sess_out", sess, NULL };
	cr_assert_eq(handshake(save, NULL), 0, "%s", out);
	const char *resume[] = { "-tls1_3", "-sess_in", sess, NULL };
	cr_assert_eq(handshake(resume, NULL), 0, "%s", out);
	cr_assert(strstr(out, "Reused, TLSv1.3"), "%s", out);
	cr_assert_eq(stls_proc_count_in_file(fx.proxy_log, "TLS failed"), 0);
	finish();
}

/* The key-op process dies: it is started again, the key loaded again, handshakes go on. */
Test(keyop, ecdsa_and_a_restart_after_a_crash, .init = start_ecdsa)
{
	static const char *const tls13[] = { "-tls1_3", NULL };
	cr_assert_eq(handshake(tls13, NULL), 0, "%s", out);
	assert_verified("before");
	cr_assert(strstr(out, "Peer signature type: ECDSA"), "%s", out);
	pid_t first = keyop_pid();
	cr_assert_eq(kill(first, SIGKILL), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "killed by signal 9", 5000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "started again", 5000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "1 key loaded", 1000));
	pid_t second = keyop_pid();
	cr_assert_neq(second, first);
	cr_assert_eq(kill(second, 0), 0, "the new key-op process is not running");
	static const char *const tls12[] = { "-tls1_2", NULL };
	cr_assert_eq(handshake(tls12, NULL), 0, "%s", out);
	assert_verified("after the restart, TLS 1.2");
	cr_assert(strstr(out, "Peer signature type: ECDSA"), "%s", out);
	cr_assert_eq(handshake(tls13, NULL), 0, "%s", out);
	assert_verified("after the restart, TLS 1.3");
	finish();
}

/* A handshake whose request was queued when the process died is signed by the next one: it loads
 * the keys before it reads the queued requests. */
Test(keyop, a_request_queued_across_a_crash_is_signed_by_the_next_process, .init = start_ecdsa_with_stats)
{
	pid_t first = keyop_pid();
	long long asked = metric_sum("starttlsd_keyop_requests_total");
	cr_assert_geq(asked, 0, "no /metrics on port %u", stats_port);
	unsigned before = stls_proc_count_in_file(fx.proxy_log, "New SMTP ICID");
	cr_assert_eq(kill(first, SIGSTOP), 0);
	/* s_client in the background: its ClientHello's signature request waits in the channel. */
	char ca[320], cmd[1400], result[320];
	snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
	snprintf(result, sizeof(result), "%s/queued.out", fx.dir);
	snprintf(cmd, sizeof(cmd),
		 "(echo QUIT; sleep 8) | timeout 25 openssl s_client -starttls smtp -connect 127.0.0.1:%u -CAfile %s "
		 "-verify_return_error -verify_hostname mx.test -servername mx.test -tls1_3 > %s 2>&1 &",
		 fx.proxy_port, ca, result);
	cr_assert_eq(system(cmd), 0);
	cr_assert_gt(stls_proc_wait_count(fx.proxy_log, "New SMTP ICID", before + 1, 10000), before);
	/* The ClientHello reaches the worker, and its signature request the channel. */
	long long now = asked;
	for (int i = 0; i < 200 && now <= asked; i++) {
		stls_proc_sleep_ms(50);
		now = metric_sum("starttlsd_keyop_requests_total");
	}
	cr_assert_gt(now, asked, "no signature was asked of the stopped key-op process");
	cr_assert_eq(kill(first, SIGKILL), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "started again", 5000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	cr_assert(stls_proc_wait_file_contains(result, "Verification: OK", 20000), "%s",
		  stls_proc_read_file(result, NULL));
	cr_assert(stls_proc_wait_file_contains(result, "Peer signature type: ECDSA", 1000));
	cr_assert_eq(stls_proc_count_in_file(fx.proxy_log, "TLS failed"), 0, "%s",
		     stls_proc_read_file(fx.proxy_log, NULL));
	finish();
}

/* TLS 1.2 names only the digest in an ECDSA scheme: a P-384 certificate signs what a TLS 1.2
 * client asks (ecdsa_secp256r1_sha256 there means ECDSA with SHA-256), and a client that offers
 * SHA-1 only gets SHA-1. */
Test(keyop, tls12_with_a_p384_certificate_and_sha1)
{
	cr_assert(stls_fixture_init(&fx, "keyop-p384"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	snprintf(cert_path, sizeof(cert_path), "%s/p384.pem", fx.dir);
	snprintf(key_path, sizeof(key_path), "%s/p384.key", fx.dir);
	snprintf(chain_path, sizeof(chain_path), "%s/int.pem", pki);
	char cmd[2400];
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd %s; openssl ecparam -genkey -name secp384r1 -noout -out p384.key 2>/dev/null; "
		 "openssl req -new -key p384.key -subj /CN=mx.test -out p384.csr 2>/dev/null; "
		 "printf 'subjectAltName=DNS:mx.test\nextendedKeyUsage=serverAuth\n' > p384.ext; "
		 "openssl x509 -req -in p384.csr -CA %s/int.pem -CAkey %s/int.key -CAcreateserial -days 30 "
		 "-extfile p384.ext -out p384.pem 2>/dev/null",
		 fx.dir, pki, pki);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	const char *args[] = { "--cert",   cert_path,	      "--key", key_path, "--chain",
			       chain_path, "--keyop-threads", "1",     NULL };
	cr_assert(stls_fixture_start_proxy(&fx, args), "starttlsd did not start (see %s)", fx.proxy_out);
	static const char *const tls12[] = { "-tls1_2", NULL };
	cr_assert_eq(handshake(tls12, NULL), 0, "%s", out);
	assert_verified("TLS 1.2, P-384");
	cr_assert(strstr(out, "Peer signature type: ECDSA"), "%s", out);
	static const char *const tls12_p256_sha256[] = { "-tls1_2", "-sigalgs", "ecdsa_secp256r1_sha256", NULL };
	cr_assert_eq(handshake(tls12_p256_sha256, NULL), 0, "%s", out);
	cr_assert(strstr(out, "Peer signing digest: SHA256"), "%s", out);
	static const char *const tls12_sha1[] = { "-tls1_2", "-sigalgs",	   "ECDSA+SHA1",
						  "-cipher", "DEFAULT@SECLEVEL=0", NULL };
	cr_assert_eq(handshake(tls12_sha1, NULL), 0, "%s", out);
	cr_assert(strstr(out, "Peer signing digest: SHA1"), "%s", out);
	static const char *const tls13[] = { "-tls1_3", NULL };
	cr_assert_eq(handshake(tls13, NULL), 0, "%s", out);
	assert_verified("TLS 1.3, P-384");
	cr_assert_eq(stls_proc_count_in_file(fx.proxy_log, "TLS failed"), 0, "%s",
		     stls_proc_read_file(fx.proxy_log, NULL));
	finish();
}

/* A process started after a crash that does not take every key is replaced, again and again, until
 * one does: no key is left refusing its handshakes. The program beside a copy of starttlsd is
 * swapped for one that refuses keys, then put back. */
Test(keyop, a_restarted_process_that_refuses_a_key_is_replaced)
{
	char program[340], saved[340];
	start_own_copy("keyop-swap", true, program, sizeof(program));
	snprintf(saved, sizeof(saved), "%s/starttls-keyop.real", fx.dir);
	/* The stand-in answers every control message in protocol 1, refusing LOADs. */
	cr_assert_eq(rename(program, saved), 0);
	write_stand_in(program, 1, 3 /* STLS_KEYOP_FAILED */);
	cr_assert_eq(kill(keyop_pid(), SIGKILL), 0);
	cr_assert_geq(stls_proc_wait_count(fx.proxy_log, "ending it to start another", 2, 10000), 2, "%s",
		      stls_proc_read_file(fx.proxy_log, NULL));
	cr_assert_eq(stls_proc_count_in_file(fx.proxy_log, "started again"), 0);
	/* The real program back: the next start takes the key and signs. */
	cr_assert_eq(rename(saved, program), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "started again", 10000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	static const char *const tls13[] = { "-tls1_3", NULL };
	cr_assert_eq(handshake(tls13, NULL), 0, "%s", out);
	assert_verified("after the key was taken");
	finish();
}

/* While the key-op process does not answer, only handshakes wait (and time out); a session
 * already past its handshake, or without TLS, is served by the same worker meanwhile. Once it
 * answers again, new handshakes succeed. */
Test(keyop, a_stalled_process_holds_only_handshakes, .init = start_ecdsa_short_timeout)
{
	pid_t pid = keyop_pid();
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	struct stls_smtp_client c;
	cr_assert(stls_smtp_client_connect(&c, fx.proxy_port, 10000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "%s", c.last);
	static const char *const tls13[] = { "-tls1_3", NULL };
	int code = handshake(tls13, NULL);
	/* (s_client prints "Verification: OK" even when no certificate came.) */
	cr_assert(code != 0 && strstr(out, "no peer certificate available") && !strstr(out, "Peer signature type"),
		  "a handshake succeeded without the key-op process (exit %d):\n%s", code, out);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "handshake timed out", 5000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	/* The worker kept serving: a plain session runs a whole transaction. */
	cr_assert(stls_smtp_client_sends(&c, "EHLO plain.test\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "MAIL FROM:<a@x.test>\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "%s", c.last);
	cr_assert(stls_smtp_client_sends(&c, "QUIT\r\n"));
	cr_assert_eq(stls_smtp_client_reply(&c), 221, "%s", c.last);
	stls_smtp_client_close(&c);
	cr_assert_eq(kill(pid, SIGCONT), 0);
	/* Its late answer is for a session that ended: dropped. The next handshake is signed. */
	cr_assert_eq(handshake(tls13, NULL), 0, "%s", out);
	assert_verified("after SIGCONT");
	finish();
}

/* SIGHUP with another key: the new one is loaded into the key-op process and signs. */
Test(keyop, reload_to_another_key, .init = start_rsa)
{
	static const char *const tls13[] = { "-tls1_3", NULL };
	cr_assert_eq(handshake(tls13, NULL), 0, "%s", out);
	cr_assert(strstr(out, "Peer signature type: RSA-PSS"), "%s", out);
	install(true);
	unsigned before = stls_proc_count_in_file(fx.proxy_log, "reload committed");
	cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
	cr_assert_gt(stls_proc_wait_count(fx.proxy_log, "reload committed", before + 1, 10000), before, "%s",
		     stls_proc_read_file(fx.proxy_log, NULL));
	cr_assert_eq(handshake(tls13, NULL), 0, "%s", out);
	assert_verified("after the reload");
	cr_assert(strstr(out, "Peer signature type: ECDSA"), "%s", out);
	cr_assert_eq(stls_proc_count_in_file(fx.proxy_log, "dropping key"), 0, "%s",
		     stls_proc_read_file(fx.proxy_log, NULL));
	finish();
}

/* A reload while a restart waits (here: the program was missing when the process died) starts
 * the process at once and loads the new key into it, instead of being refused. */
Test(keyop, a_reload_during_a_pending_restart_starts_the_process)
{
	char program[340], away[340];
	start_own_copy("keyop-reload", false, program, sizeof(program));
	snprintf(away, sizeof(away), "%s/starttls-keyop.away", fx.dir);
	/* Without the program, every restart fails and the next waits a second. */
	cr_assert_eq(rename(program, away), 0);
	cr_assert_eq(kill(keyop_pid(), SIGKILL), 0);
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "cannot start it again", 5000), "%s",
		  stls_proc_read_file(fx.proxy_log, NULL));
	/* The program back and a new key: the reload itself starts the process. */
	install(true);
	cr_assert_eq(rename(away, program), 0);
	unsigned before = stls_proc_count_in_file(fx.proxy_log, "reload committed");
	cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
	cr_assert_gt(stls_proc_wait_count(fx.proxy_log, "reload committed", before + 1, 10000), before, "%s",
		     stls_proc_read_file(fx.proxy_log, NULL));
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, "started again", 1000));
	static const char *const tls13[] = { "-tls1_3", NULL };
	cr_assert_eq(handshake(tls13, NULL), 0, "%s", out);
	assert_verified("after the reload");
	cr_assert(strstr(out, "Peer signature type: ECDSA"), "%s", out);
	finish();
}

/* --check starts the key-op process too and loads the key there; without the program beside
 * starttlsd it says where it looked, or (auto) falls back to signing in the workers, with a
 * warning. */
Test(keyop, check_loads_the_key_and_names_a_missing_program)
{
	cr_assert(stls_fixture_init(&fx, "keyop-check"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	char cert[320], key[320], daemon[256];
	snprintf(cert, sizeof(cert), "%s/leaf.pem", pki);
	snprintf(key, sizeof(key), "%s/leaf.key", pki);
	stls_proc_build_path("starttlsd", daemon, sizeof(daemon));
	char *argv[] = { daemon,    "--backend", "127.0.0.1:2626", "--cert", cert, "--key", key, "--keyop-threads", "1",
			 "--check", NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 0, "%s", out);
	cr_assert(strstr(out, "configuration is valid"), "%s", out);
	/* The same binary alone in a folder. */
	char lone[320];
	snprintf(lone, sizeof(lone), "%s/starttlsd", fx.dir);
	copy_program("starttlsd", lone);
	argv[0] = lone;
	code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 1, "%s", out);
	char expect[400];
	snprintf(expect, sizeof(expect), "--keyop-threads needs %s/starttls-keyop", fx.dir);
	cr_assert(strstr(out, expect), "%s", out);
	/* A key-op program of another protocol (an old one, here a stand-in that answers like
	 * protocol 0) is refused, not driven. */
	char fake[340];
	snprintf(fake, sizeof(fake), "%s/starttls-keyop", fx.dir);
	write_stand_in(fake, 0, 0);
	code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 1, "%s", out);
	cr_assert(strstr(out, "speaks key-op protocol 0, this starttlsd 1"), "%s", out);
	/* A program that cannot run (a library missing, say): asked for, the start fails; left to
	 * auto, the workers sign and a warning says why. */
	write_program(fake, "#!/bin/sh\nexit 127\n");
	code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 1, "%s", out);
	cr_assert(strstr(out, "the key-op process ended"), "%s", out);
	char *broken_auto[] = { lone, "--backend", "127.0.0.1:2626", "--cert", cert, "--key", key, "--check", NULL };
	code = stls_proc_run(broken_auto, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 0, "%s", out);
	cr_assert(strstr(out, "warning: key-op process: the key-op process ended; the workers sign"), "%s", out);
	cr_assert(strstr(out, "--keyop-threads 0\n"), "%s", out);
	cr_assert_eq(unlink(fake), 0);
	/* Left to choose (the default, auto), the lone binary signs in its workers and says so. */
	char *auto_argv[] = { lone, "--backend", "127.0.0.1:2626", "--cert", cert, "--key", key, "--check", NULL };
	code = stls_proc_run(auto_argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 0, "%s", out);
	snprintf(expect, sizeof(expect), "warning: %s/starttls-keyop is not installed", fx.dir);
	cr_assert(strstr(out, expect), "%s", out);
	cr_assert(strstr(out, "--keyop-threads 0\n"), "%s", out);
	/* Beside starttls-keyop, auto means one signing thread per worker. */
	char *workers_argv[] = { daemon,      "--backend", "127.0.0.1:2626", "--cert", cert, "--key", key,
				 "--workers", "3",	   "--check",	     NULL };
	code = stls_proc_run(workers_argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 0, "%s", out);
	cr_assert(strstr(out, "--keyop-threads 3\n"), "%s", out);
	stls_fixture_cleanup(&fx);
}
