/* Interop: sender groups (spec S14) and their limits, --max-per-ip, and the reload of the whole
 * configuration (S24). Clients connect from chosen loopback addresses (127.0.0.0/8 is all local
 * on Linux), so each test picks which group it falls in. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixture.h"
#include "tests/support/proc.h"
#include "tests/support/smtp_client.h"

static struct stls_fixture fx;
static char pki[256];
static char groups_path[256];
static char cert_path[320], key_path[320];
static char out[65536];

/* The listener requires TLS; the groups loosen or keep that. The fixture's readiness probe comes
 * from 127.0.0.1, in LOCALNET. */
static const char groups_v1[] = "# sender groups for the interop test\n"
				"STRICT    required   127.0.0.2\n"
				"PLAIN     off        127.0.0.3/32 127.0.2.0/24\n"
				"LOCALNET  preferred  127.0.0.0/24   max-per-ip=2 rate=2\n"
				"PARTNERS  preferred  127.0.1.0/24   max-sessions=3\n";

static void start(const char *groups, const char *const extra[])
{
	cr_assert(stls_fixture_init(&fx, "groups"));
	cr_assert(stls_fixture_pki(&fx, pki, sizeof(pki)));
	cr_assert(stls_fixture_start_backend(&fx, NULL), "see %s", fx.backend_log);
	snprintf(groups_path, sizeof(groups_path), "%s/groups.txt", fx.dir);
	cr_assert(stls_proc_write_file(groups_path, groups, strlen(groups)));
	/* Copies the daemon reads, so a test can replace them and reload. */
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", fx.dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", fx.dir);
	char src[320];
	snprintf(src, sizeof(src), "%s/fullchain.pem", pki);
	char *pem = stls_proc_read_file(src, NULL);
	cr_assert(pem && stls_proc_write_file(cert_path, pem, strlen(pem)));
	free(pem);
	snprintf(src, sizeof(src), "%s/leaf.key", pki);
	pem = stls_proc_read_file(src, NULL);
	cr_assert(pem && stls_proc_write_file(key_path, pem, strlen(pem)));
	free(pem);
	const char *args[32] = { "--cert",	  cert_path,  "--key",		 key_path,
				 "--inbound-tls", "required", "--sender-groups", groups_path };
	unsigned n = 8;
	for (unsigned i = 0; extra && extra[i] && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	cr_assert(stls_fixture_start_proxy(&fx, args), "starttlsd did not start (see %s)", fx.proxy_out);
}

static void setup(void)
{
	start(groups_v1, NULL);
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

TestSuite(groups, .fini = teardown, .timeout = 90);

/* Connects from the address from and reads the greeting; returns its code. */
static int open_from(struct stls_smtp_client *c, const char *from)
{
	cr_assert(stls_smtp_client_connect_addr(c, from, "127.0.0.1", fx.proxy_port, 5000), "connect from %s", from);
	return stls_smtp_client_reply(c);
}

static int cmd(struct stls_smtp_client *c, const char *line)
{
	cr_assert(stls_smtp_client_sends(c, line));
	return stls_smtp_client_reply(c);
}

static bool offers_starttls(const struct stls_smtp_client *c)
{
	return strstr(c->last, "STARTTLS") != NULL;
}

/* A session from from: EHLO, then MAIL. Returns the MAIL reply's code; *out_starttls tells whether
 * EHLO offered STARTTLS. */
static int ehlo_mail(const char *from, bool *out_starttls)
{
	struct stls_smtp_client c;
	cr_assert_eq(open_from(&c, from), 220, "greeting for %s: %s", from, c.last);
	cr_assert_eq(cmd(&c, "EHLO client.test\r\n"), 250, "%s", c.last);
	*out_starttls = offers_starttls(&c);
	int code = cmd(&c, "MAIL FROM:<a@x.test>\r\n");
	cmd(&c, "QUIT\r\n");
	stls_smtp_client_close(&c);
	return code;
}

static void wait_log(const char *text)
{
	cr_assert(stls_proc_wait_file_contains(fx.proxy_log, text, 5000), "no \"%s\" in the log:\n%s", text,
		  stls_proc_read_file(fx.proxy_log, NULL));
}

Test(groups, the_longest_prefix_chooses_the_tls_policy, .init = setup)
{
	bool starttls;
	/* STRICT (a single address, inside LOCALNET's /24): TLS required. */
	cr_assert_eq(ehlo_mail("127.0.0.2", &starttls), 530);
	cr_assert(starttls);
	wait_log("ACCEPT SG STRICT match 127.0.0.2");
	/* PLAIN: STARTTLS not offered, and mail flows in clear text. */
	cr_assert_eq(ehlo_mail("127.0.0.3", &starttls), 250);
	cr_assert_not(starttls, "STARTTLS offered to a group with tls off");
	cr_assert_eq(ehlo_mail("127.0.2.9", &starttls), 250, "PLAIN's second network");
	cr_assert_not(starttls);
	wait_log("ACCEPT SG PLAIN match 127.0.2.0/24");
	/* LOCALNET: preferred. */
	cr_assert_eq(ehlo_mail("127.0.0.4", &starttls), 250);
	cr_assert(starttls);
	wait_log("ACCEPT SG LOCALNET match 127.0.0.0/24");
	/* No group: the listener's --inbound-tls required, and no ACCEPT SG line for it. */
	cr_assert_eq(ehlo_mail("127.0.5.5", &starttls), 530);
	cr_assert(starttls);
	wait_log("address 127.0.5.5 port");
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	const char *newline = strstr(log, "address 127.0.5.5 port");
	unsigned long long icid = 0;
	for (const char *p = newline; p > log && p[-1] != '\n'; p--)
		if (strncmp(p, "ICID ", 5) == 0)
			icid = strtoull(p + 5, NULL, 10);
	char want[64];
	snprintf(want, sizeof(want), "ICID %llu ACCEPT SG", icid);
	cr_assert(icid && !strstr(log, want), "a client in no group was put in one:\n%s", log);
	free(log);
	finish();
}

Test(groups, max_per_ip_counts_each_address_of_the_group, .init = setup)
{
	struct stls_smtp_client a, b, c, d;
	cr_assert_eq(open_from(&a, "127.0.0.4"), 220);
	cr_assert_eq(open_from(&b, "127.0.0.4"), 220);
	cr_assert_eq(open_from(&c, "127.0.0.4"), 421, "a third session from one address: %s", c.last);
	cr_assert(strstr(c.last, "421 4.7.0"), "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c));
	stls_smtp_client_close(&c);
	wait_log("REJECT SG LOCALNET max-per-ip: 2 sessions from 127.0.0.4 already");
	/* Another address of the same group has its own count. */
	cr_assert_eq(open_from(&d, "127.0.0.5"), 220);
	/* One leaves: the address may come back. */
	cmd(&a, "QUIT\r\n");
	cr_assert(stls_smtp_client_wait_closed(&a));
	stls_smtp_client_close(&a);
	int code = -1;
	for (int i = 0; i < 50 && code != 220; i++) {
		if (i)
			stls_proc_sleep_ms(20); /* the session ends just after its 221 */
		code = open_from(&c, "127.0.0.4");
		if (code != 220)
			stls_smtp_client_close(&c);
	}
	cr_assert_eq(code, 220, "the place was not given back: %s", c.last);
	stls_smtp_client_close(&b);
	stls_smtp_client_close(&c);
	stls_smtp_client_close(&d);
	finish();
}

Test(groups, max_sessions_counts_the_whole_group_across_workers, .init = setup)
{
	struct stls_smtp_client c[4];
	const char *from[] = { "127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4" };
	for (int i = 0; i < 3; i++)
		cr_assert_eq(open_from(&c[i], from[i]), 220, "%s: %s", from[i], c[i].last);
	cr_assert_eq(open_from(&c[3], from[3]), 421, "a fourth session of PARTNERS: %s", c[3].last);
	cr_assert(strstr(c[3].last, "421 4.7.0"), "%s", c[3].last);
	wait_log("REJECT SG PARTNERS max-sessions: 3 sessions already");
	for (int i = 0; i < 4; i++)
		stls_smtp_client_close(&c[i]);
	finish();
}

Test(groups, rate_limits_messages_a_minute_from_one_address, .init = setup)
{
	/* The rate is counted per minute of the monotonic clock (core/admit.c): start with at least
	 * 10 s of the minute left, so that all three messages fall in the same one. */
	while ((stls_proc_now_ms() / 1000) % 60 >= 50)
		stls_proc_sleep_ms(200);
	struct stls_smtp_client c;
	cr_assert_eq(open_from(&c, "127.0.0.6"), 220);
	cr_assert_eq(cmd(&c, "EHLO client.test\r\n"), 250);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(cmd(&c, "MAIL FROM:<a@x.test>\r\n"), 250, "message %d: %s", i + 1, c.last);
		cr_assert_eq(cmd(&c, "RCPT TO:<b@y.test>\r\n"), 250, "%s", c.last);
		cr_assert_eq(cmd(&c, "DATA\r\n"), 354, "%s", c.last);
		cr_assert_eq(cmd(&c, "Subject: rate\r\n\r\nbody\r\n.\r\n"), 250, "%s", c.last);
	}
	cr_assert_eq(cmd(&c, "MAIL FROM:<a@x.test>\r\n"), 421, "a third message in a minute: %s", c.last);
	cr_assert(strstr(c.last, "421 4.7.0"), "%s", c.last);
	cr_assert(stls_smtp_client_wait_closed(&c));
	stls_smtp_client_close(&c);
	wait_log("REJECT SG LOCALNET rate: more than 2 messages a minute from 127.0.0.6");
	cr_assert(stls_fixture_wait_messages(&fx, 2, 5000));
	stls_proc_sleep_ms(200);
	cr_assert_eq(stls_fixture_num_messages(&fx), 2, "the refused third message reached the backend");
	finish();
}

static unsigned reloads_logged(const char *what)
{
	return stls_proc_count_in_file(fx.proxy_log, what);
}

/* Sends SIGHUP and waits for the outcome line: "reload committed" or "reload refused". */
static void reload(const char *outcome)
{
	unsigned before = reloads_logged(outcome);
	cr_assert_eq(kill(fx.proxy.pid, SIGHUP), 0);
	cr_assert_gt(stls_proc_wait_count(fx.proxy_log, outcome, before + 1, 10000), before, "no \"%s\":\n%s", outcome,
		     stls_proc_read_file(fx.proxy_log, NULL));
}

Test(groups, reload_applies_to_new_sessions_and_keeps_running_ones, .init = setup)
{
	struct stls_smtp_client old;
	cr_assert_eq(open_from(&old, "127.0.0.3"), 220);
	/* 127.0.0.3 moves from PLAIN to STRICT. */
	static const char v2[] = "STRICT    required   127.0.0.2 127.0.0.3\n"
				 "LOCALNET  preferred  127.0.0.0/24\n";
	cr_assert(stls_proc_write_file(groups_path, v2, sizeof(v2) - 1));
	reload("reload committed");
	/* The session that started before keeps its snapshot: still no STARTTLS, mail in clear. */
	cr_assert_eq(cmd(&old, "EHLO client.test\r\n"), 250);
	cr_assert_not(offers_starttls(&old), "a running session changed policy mid-way: %s", old.last);
	cr_assert_eq(cmd(&old, "MAIL FROM:<a@x.test>\r\n"), 250, "%s", old.last);
	bool starttls;
	cr_assert_eq(ehlo_mail("127.0.0.3", &starttls), 530, "a new session must use the new groups");
	cr_assert(starttls);
	/* A file with an error: refused whole, with file:line, and the groups in use stay. */
	static const char bad[] = "STRICT    required   127.0.0.2\n"
				  "LOCALNET  preferred  127.0.0.0/24\n"
				  "BROKEN    off        127.0.0.300/32\n";
	cr_assert(stls_proc_write_file(groups_path, bad, sizeof(bad) - 1));
	reload("reload refused");
	char where[300];
	snprintf(where, sizeof(where), "%s:3:", groups_path);
	wait_log(where);
	cr_assert_eq(ehlo_mail("127.0.0.3", &starttls), 530, "the refused file changed the policy");
	cr_assert_eq(cmd(&old, "QUIT\r\n"), 221, "the running session was dropped by the reloads: %s", old.last);
	stls_smtp_client_close(&old);
	finish();
}

/* Whether s_client, through STARTTLS, was shown a key described by want. */
static bool served_key_type(const char *want)
{
	const char *args[] = { NULL };
	cr_assert_eq(stls_fixture_s_client(&fx, args, "QUIT\n", out, sizeof(out)), 0, "%s", out);
	return strstr(out, want) != NULL;
}

Test(groups, reload_is_all_or_nothing_and_logs_every_reason, .init = setup)
{
	cr_assert(served_key_type("Server public key is 2048 bit"), "%s", out);
	/* Two parts wrong at once: a key that does not match the certificate, and a bad group line.
	 * A good change in the same file must not be applied either. */
	char src[320];
	snprintf(src, sizeof(src), "%s/other.key", pki);
	char *other = stls_proc_read_file(src, NULL);
	cr_assert(other && stls_proc_write_file(key_path, other, strlen(other)));
	free(other);
	static const char bad[] = "PLAIN     off        127.0.0.2\n"
				  "LOCALNET  nonsense   127.0.0.0/24\n";
	cr_assert(stls_proc_write_file(groups_path, bad, sizeof(bad) - 1));
	reload("reload refused (2 problems above)");
	char where[300];
	snprintf(where, sizeof(where), "sender groups: %s:2:", groups_path);
	wait_log(where);
	wait_log("TLS: ");
	bool starttls;
	cr_assert_eq(ehlo_mail("127.0.0.2", &starttls), 530, "part of a refused reload was applied");
	cr_assert(served_key_type("Server public key is 2048 bit"), "the certificate changed:\n%s", out);
	/* Both fixed, with an ECDSA certificate: everything changes at once. */
	snprintf(src, sizeof(src), "%s/leaf-ec.pem", pki);
	char *pem = stls_proc_read_file(src, NULL);
	cr_assert(pem && stls_proc_write_file(cert_path, pem, strlen(pem)));
	free(pem);
	snprintf(src, sizeof(src), "%s/leaf-ec.key", pki);
	pem = stls_proc_read_file(src, NULL);
	cr_assert(pem && stls_proc_write_file(key_path, pem, strlen(pem)));
	free(pem);
	static const char good[] = "PLAIN     off        127.0.0.2\n";
	cr_assert(stls_proc_write_file(groups_path, good, sizeof(good) - 1));
	reload("reload committed");
	cr_assert_eq(ehlo_mail("127.0.0.2", &starttls), 250);
	cr_assert_not(starttls, "the new groups were not applied");
	cr_assert(served_key_type("Server public key is 256 bit"), "the new certificate is not served:\n%s", out);
	finish();
}

Test(groups, check_validates_the_groups_file)
{
	cr_assert(stls_fixture_init(&fx, "groupscheck"));
	snprintf(groups_path, sizeof(groups_path), "%s/groups.txt", fx.dir);
	static const char bad[] = "# fine\nA off 10.0.0.0/8\nB required 10.1.2.3/8\n";
	cr_assert(stls_proc_write_file(groups_path, bad, sizeof(bad) - 1));
	char daemon[256];
	stls_proc_build_path("starttlsd", daemon, sizeof(daemon));
	char *argv[] = { daemon, "--backend", "127.0.0.1:2626", "--sender-groups", groups_path, "--check", NULL };
	int code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 1, "--check accepted a bad groups file:\n%s", out);
	char where[300];
	snprintf(where, sizeof(where), "%s:3:", groups_path);
	cr_assert(strstr(out, where), "no file:line in:\n%s", out);
	static const char good[] = "A off 10.0.0.0/8\nB required 10.1.0.0/16 2001:db8::/32\n";
	cr_assert(stls_proc_write_file(groups_path, good, sizeof(good) - 1));
	code = stls_proc_run(argv, NULL, 0, out, sizeof(out), 20000);
	cr_assert_eq(code, 0, "%s", out);
	cr_assert(strstr(out, "# sender groups: 2 groups, 3 networks"), "%s", out);
	stls_fixture_cleanup(&fx);
}

/* --max-per-ip applies to clients in no group (and to groups without their own max-per-ip). */
Test(groups, max_per_ip_flag_outside_groups)
{
	const char *extra[] = { "--max-per-ip", "1", NULL };
	start("STRICT required 127.0.0.2\n", extra);
	struct stls_smtp_client a, b, c;
	cr_assert_eq(open_from(&a, "127.0.7.1"), 220);
	cr_assert_eq(open_from(&b, "127.0.7.1"), 421, "%s", b.last);
	cr_assert(strstr(b.last, "421 4.7.0"), "%s", b.last);
	wait_log("REJECT max-per-ip: 1 sessions from 127.0.7.1 already");
	cr_assert_eq(open_from(&c, "127.0.7.2"), 220);
	stls_smtp_client_close(&a);
	stls_smtp_client_close(&b);
	stls_smtp_client_close(&c);
	finish();
}
