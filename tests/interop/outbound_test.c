/* Interop: the outbound relay with per-destination TLS policy (spec S15-S23). Postfix, as the
 * legacy MTA, relays every message to starttlsd's outbound listener, which delivers it to
 * destination servers (demo backends on loopback) with the TLS policy of the recipient's domain:
 *
 *	test -> Postfix smtpd -> Postfix smtp -> starttlsd outbound -> destination (stores it)
 *
 * Ten destinations, from a proper TLS server to ones that break STARTTLS in each way a client
 * must survive, are tried under each of the five modes: the domain <destination>.<mode>.test is
 * routed to each destination (by host name, which a dnsmasq on loopback resolves, so that names
 * can be verified), and the policy file gives each .<mode>.test its mode, none by the "*" default
 * (S20). Each message is delivered over TLS (verified or not), delivered in clear text, or
 * deferred: then it is still in Postfix's queue, the proxy's log names the cause (S22), and where
 * the mode requires TLS exactly one alert for the domain reaches --alert-to through the backend
 * (S21), however often Postfix retries. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/dnsmasq.h"
#include "tests/support/fixture.h"
#include "tests/support/postfix.h"
#include "tests/support/smtp_client.h"

enum mode { M_NONE, M_PREFERRED, M_REQUIRED, M_PREFERRED_VERIFY, M_REQUIRED_VERIFY, M__COUNT };
static const char *const mode_names[M__COUNT] = { "none", "preferred", "required", "preferred-verify",
						  "required-verify" };

enum cert { CERT_NONE, CERT_CA, CERT_SELF, CERT_EXPIRED };

enum dest { D_GOOD, D_SELF, D_EXPIRED, D_WRONG, D_PLAIN, D_454, D_502, D_INJECT, D_NOT_TLS, D_OLD, D__COUNT };

static const struct dest_def {
	const char *name; /* the label before .<mode>.test */
	const char *host; /* the route's host name: what SNI carries and verification checks */
	enum cert cert;
	const char *flag, *value; /* a demo-backend option that makes it misbehave */
	const char *cause;	  /* the proxy's log line when TLS fails: "DCID n IP a TLS failed: <cause>" */
} dests[D__COUNT] = {
	[D_GOOD] = { "good", "mx.dest.test", CERT_CA, NULL, NULL, NULL },
	[D_SELF] = { "self-signed", "mx.dest.test", CERT_SELF, NULL, NULL,
		     "certificate not verified for mx.dest.test: self signed certificate" },
	[D_EXPIRED] = { "expired", "mx.dest.test", CERT_EXPIRED, NULL, NULL,
			"certificate not verified for mx.dest.test: certificate has expired" },
	[D_WRONG] = { "wrong-name", "wrong.dest.test", CERT_CA, NULL, NULL,
		      "certificate not verified for wrong.dest.test: Hostname mismatch" },
	[D_PLAIN] = { "no-starttls", "mx.dest.test", CERT_NONE, NULL, NULL, "STARTTLS not offered in the EHLO reply" },
	[D_454] = { "refuses-454", "mx.dest.test", CERT_NONE, "--starttls-reply", "454",
		    "STARTTLS unexpected response: 454 " },
	[D_502] = { "refuses-502", "mx.dest.test", CERT_NONE, "--starttls-reply", "502",
		    "STARTTLS unexpected response: 502 " },
	[D_INJECT] = { "injects", "mx.dest.test", CERT_CA, "--inject-after-220", NULL,
		       "response injection: bytes after the 220 to STARTTLS" },
	[D_NOT_TLS] = { "not-tls", "mx.dest.test", CERT_NONE, "--advertise-starttls-without-tls", NULL,
			"handshake: wrong version number" },
	[D_OLD] = { "no-esmtp", "mx.dest.test", CERT_NONE, "--no-esmtp", NULL,
		    "the destination does not speak ESMTP (EHLO refused)" },
};

enum outcome { CLEAR, TLS, VERIFIED, DEFER };
static const char *const outcome_names[] = { "delivered in clear text", "delivered over TLS, not verified",
					     "delivered over TLS, verified", "deferred" };

/* What S15-S19 ask of each mode with each destination. */
static const enum outcome expect[M__COUNT][D__COUNT] = {
	[M_NONE] = { CLEAR, CLEAR, CLEAR, CLEAR, CLEAR, CLEAR, CLEAR, CLEAR, CLEAR, CLEAR },
	/* Falls back to clear text only before a 220 to STARTTLS. */
	[M_PREFERRED] = { TLS, TLS, TLS, TLS, CLEAR, CLEAR, CLEAR, DEFER, DEFER, CLEAR },
	[M_REQUIRED] = { TLS, TLS, TLS, TLS, DEFER, DEFER, DEFER, DEFER, DEFER, DEFER },
	[M_PREFERRED_VERIFY] = { VERIFIED, TLS, TLS, TLS, CLEAR, CLEAR, CLEAR, DEFER, DEFER, CLEAR },
	[M_REQUIRED_VERIFY] = { VERIFIED, DEFER, DEFER, DEFER, DEFER, DEFER, DEFER, DEFER, DEFER, DEFER },
};

static struct stls_fixture fx; /* its demo backend receives the alerts */
static struct stls_postfix postfix = { .guard_pid = -1, .guard_fd = -1 };
static struct stls_dnsmasq dns;
static struct stls_proc dest_procs[D__COUNT];
static uint16_t dest_ports[D__COUNT];
static char dest_maildirs[D__COUNT][192];
static uint16_t out_port;	   /* the proxy's outbound listener */
static struct stls_proc wild_proc; /* a destination with a certificate for *.dest.test */
static uint16_t wild_port;
static char wild_maildir[192];
static char pki[192];

static const char alert_to[] = "tls-alerts@ops.test";

static uint16_t other_port(void)
{
	for (;;) {
		uint16_t p = stls_proc_free_port();
		bool taken = p == 0 || p == fx.backend_port || p == fx.proxy_port || p == out_port || p == dns.port ||
			     p == wild_port;
		for (unsigned d = 0; d < D__COUNT; d++)
			taken |= p == dest_ports[d];
		if (!taken)
			return p;
	}
}

static void start_destination(enum dest d)
{
	const struct dest_def *def = &dests[d];
	char listen[64], log[256], cert[256], key[256], chain[256], ca[256];
	static const char *const files[][2] = { [CERT_CA] = { "leaf.pem", "leaf.key" },
						[CERT_SELF] = { "self.pem", "self.key" },
						[CERT_EXPIRED] = { "expired.pem", "expired.key" } };
	dest_ports[d] = other_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", dest_ports[d]);
	snprintf(dest_maildirs[d], sizeof(dest_maildirs[d]), "%s/dest-%s", fx.dir, def->name);
	snprintf(log, sizeof(log), "%s/dest-%s.log", fx.dir, def->name);
	const char *args[12] = { "--hostname", def->host };
	unsigned n = 2;
	if (def->cert != CERT_NONE) {
		snprintf(cert, sizeof(cert), "%s/%s", pki, files[def->cert][0]);
		snprintf(key, sizeof(key), "%s/%s", pki, files[def->cert][1]);
		args[n++] = "--tls-cert";
		args[n++] = cert;
		args[n++] = "--tls-key";
		args[n++] = key;
		if (def->cert != CERT_SELF) {
			snprintf(chain, sizeof(chain), "%s/int.pem", pki);
			args[n++] = "--tls-chain";
			args[n++] = chain;
		}
	}
	if (d == D_GOOD) {
		/* It asks for the proxy's client certificate (S7) and notes whose it was. */
		snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
		args[n++] = "--tls-client-ca";
		args[n++] = ca;
	}
	if (def->flag)
		args[n++] = def->flag;
	if (def->value)
		args[n++] = def->value;
	args[n] = NULL;
	cr_assert(stls_demo_start(&dest_procs[d], listen, dest_maildirs[d], log, args),
		  "destination %s did not start (see %s)", def->name, log);
}

static void setup(void)
{
	char script[512], out[8192], path[256], relay[64];
	cr_assert(stls_fixture_init(&fx, "outbound"));
	snprintf(pki, sizeof(pki), "%s/pki", fx.dir);
	stls_proc_repo_path("tests/support/make-pki", script, sizeof(script));
	char *pki_argv[] = { "bash", script, pki, "mx.dest.test", NULL };
	cr_assert_eq(stls_proc_run(pki_argv, NULL, 0, out, sizeof(out), 60000), 0, "make-pki: %s", out);

	const char *const records[] = { "--host-record=mx.dest.test,127.0.0.1",
					"--host-record=wrong.dest.test,127.0.0.1",
					"--host-record=deep.mx.dest.test,127.0.0.1", NULL };
	cr_assert(stls_dnsmasq_start(&dns, fx.dir, records), "dnsmasq did not start (see %s)", dns.log);
	cr_assert(stls_fixture_start_backend(&fx, NULL), "demo backend did not start (see %s)", fx.backend_log);
	out_port = other_port();
	for (enum dest d = 0; d < D__COUNT; d++)
		start_destination(d);
	char wild_listen[64], wild_log[256], wild_cert[256], wild_key[256], wild_chain[256];
	wild_port = other_port();
	snprintf(wild_listen, sizeof(wild_listen), "127.0.0.1:%u", wild_port);
	snprintf(wild_maildir, sizeof(wild_maildir), "%s/dest-wild", fx.dir);
	snprintf(wild_log, sizeof(wild_log), "%s/dest-wild.log", fx.dir);
	snprintf(wild_cert, sizeof(wild_cert), "%s/wild.pem", pki);
	snprintf(wild_key, sizeof(wild_key), "%s/wild.key", pki);
	snprintf(wild_chain, sizeof(wild_chain), "%s/int.pem", pki);
	const char *const wild_args[] = { "--tls-cert",	 wild_cert,  "--tls-key", wild_key,
					  "--tls-chain", wild_chain, NULL };
	cr_assert(stls_demo_start(&wild_proc, wild_listen, wild_maildir, wild_log, wild_args),
		  "the wildcard destination did not start (see %s)", wild_log);

	/* The policy: every .<mode>.test its mode; none for the rest (the "*" line, S20). */
	char policy[2048] = "# outbound interop test\n*\tnone\n", routes[8192] = "";
	size_t pn = strlen(policy), rn = 0;
	for (enum mode m = M_PREFERRED; m < M__COUNT; m++)
		pn += (size_t)snprintf(policy + pn, sizeof(policy) - pn, ".%s.test\t%s\n", mode_names[m],
				       mode_names[m]);
	for (enum mode m = 0; m < M__COUNT; m++)
		for (enum dest d = 0; d < D__COUNT; d++)
			rn += (size_t)snprintf(routes + rn, sizeof(routes) - rn, "%s.%s.test %s:%u\n", dests[d].name,
					       mode_names[m], dests[d].host, dest_ports[d]);
	/* The wildcard destination, reached as mx.dest.test (one label under *.dest.test) and as
	 * deep.mx.dest.test (two: not covered). */
	rn += (size_t)snprintf(routes + rn, sizeof(routes) - rn,
			       "wild-one-label.required-verify.test mx.dest.test:%u\n"
			       "wild-two-labels.required-verify.test deep.mx.dest.test:%u\n",
			       wild_port, wild_port);
	char policy_path[256], routes_path[256], dns_addr[64], listen[64], ca[256];
	snprintf(policy_path, sizeof(policy_path), "%s/dest-policy", fx.dir);
	snprintf(routes_path, sizeof(routes_path), "%s/routes", fx.dir);
	cr_assert(stls_proc_write_file(policy_path, policy, pn));
	cr_assert(stls_proc_write_file(routes_path, routes, rn));
	snprintf(dns_addr, sizeof(dns_addr), "127.0.0.1:%u", dns.port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", out_port);
	snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
	/* The client certificate (S7): the ECDSA leaf, then its intermediate. */
	char client_cert[256], client_key[256], leaf_path[256], int_path[256];
	snprintf(client_cert, sizeof(client_cert), "%s/client.pem", fx.dir);
	snprintf(client_key, sizeof(client_key), "%s/leaf-ec.key", pki);
	snprintf(leaf_path, sizeof(leaf_path), "%s/leaf-ec.pem", pki);
	snprintf(int_path, sizeof(int_path), "%s/int.pem", pki);
	char *leaf = stls_proc_read_file(leaf_path, NULL), *intermediate = stls_proc_read_file(int_path, NULL);
	cr_assert(leaf && intermediate);
	char both[16384];
	int both_len = snprintf(both, sizeof(both), "%s%s", leaf, intermediate);
	cr_assert(both_len > 0 && (size_t)both_len < sizeof(both));
	cr_assert(stls_proc_write_file(client_cert, both, (size_t)both_len));
	free(leaf);
	free(intermediate);
	const char *const extra[] = { "--outbound-listen", listen,   "--dest-policy",	policy_path, "--routes",
				      routes_path,	   "--dns",  dns_addr,		"--ca-file", ca,
				      "--alert-to",	   alert_to, "--outbound-cert", client_cert, "--outbound-key",
				      client_key,	   NULL };
	cr_assert(stls_fixture_start_proxy(&fx, extra), "starttlsd did not start (see %s)", fx.proxy_out);
	cr_assert(stls_proc_wait_port(out_port, 5000), "no outbound listener on %s", listen);

	snprintf(relay, sizeof(relay), "127.0.0.1:%u", out_port);
	cr_assert(stls_postfix_start(&postfix, fx.dir, other_port(), relay, NULL, out, sizeof(out)),
		  "the Postfix instance did not start; this suite needs Postfix installed (postconf, master) and "
		  "root:\n%s",
		  out);
	(void)path;
}

static void teardown(void)
{
	char out[4096] = "";
	int code = stls_postfix_stop(&postfix, out, sizeof(out));
	for (enum dest d = 0; d < D__COUNT; d++)
		stls_proc_stop(&dest_procs[d], SIGTERM, 5000);
	stls_proc_stop(&wild_proc, SIGTERM, 5000);
	stls_dnsmasq_stop(&dns);
	int proxy = stls_fixture_cleanup(&fx);
	cr_assert_eq(code, 0, "postfix-instance stop failed (exit %d):\n%s", code, out);
	cr_assert_eq(proxy, 0, "starttlsd did not exit cleanly (%d)", proxy);
}

TestSuite(outbound, .init = setup, .fini = teardown, .timeout = 180);

/* The message each destination should store after Postfix's Received: field: what was sent,
 * dot-leading lines included. */
static void message_for(char *out, size_t out_len, const char *domain)
{
	snprintf(out, out_len,
		 "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
		 "Message-ID: <%.100s@legacy.test>\r\n"
		 "From: <alice@legacy.test>\r\n"
		 "To: <bob@%.100s>\r\n"
		 "Subject: to %.100s\r\n"
		 "\r\n"
		 ".a line that starts with a dot\r\n"
		 "..\r\n"
		 "\r\n"
		 "last line\r\n",
		 domain, domain, domain);
}

static void dot_stuff(char *out, size_t out_len, const char *in)
{
	size_t n = 0;
	for (const char *line = in; *line && n + 2 < out_len;) {
		const char *eol = strstr(line, "\r\n");
		size_t len = eol ? (size_t)(eol - line) + 2 : strlen(line);
		if (*line == '.')
			out[n++] = '.';
		if (n + len >= out_len)
			break;
		memcpy(out + n, line, len);
		n += len;
		line += len;
	}
	out[n] = '\0';
}

/* Hands one message for each destination to Postfix, in one SMTP session. */
static void send_to_postfix(enum mode m)
{
	struct stls_smtp_client c;
	char line[512], msg[2048], stuffed[4096];
	cr_assert(stls_smtp_client_connect(&c, postfix.port, 20000), "cannot connect to Postfix");
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "Postfix greeting: %s", c.last);
	stls_smtp_client_sends(&c, "EHLO test.test\r\n");
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "EHLO: %s", c.last);
	for (enum dest d = 0; d < D__COUNT; d++) {
		char domain[128];
		snprintf(domain, sizeof(domain), "%s.%s.test", dests[d].name, mode_names[m]);
		stls_smtp_client_sends(&c, "MAIL FROM:<alice@legacy.test>\r\n");
		cr_assert_eq(stls_smtp_client_reply(&c), 250, "MAIL: %s", c.last);
		snprintf(line, sizeof(line), "RCPT TO:<bob@%s>\r\n", domain);
		stls_smtp_client_sends(&c, line);
		cr_assert_eq(stls_smtp_client_reply(&c), 250, "RCPT for %s: %s", domain, c.last);
		stls_smtp_client_sends(&c, "DATA\r\n");
		cr_assert_eq(stls_smtp_client_reply(&c), 354, "DATA: %s", c.last);
		message_for(msg, sizeof(msg), domain);
		dot_stuff(stuffed, sizeof(stuffed), msg);
		stls_smtp_client_sends(&c, stuffed);
		stls_smtp_client_sends(&c, ".\r\n");
		cr_assert_eq(stls_smtp_client_reply(&c), 250, "end of data for %s: %s", domain, c.last);
	}
	stls_smtp_client_sends(&c, "QUIT\r\n");
	stls_smtp_client_close(&c);
}

/* The DCIDs the proxy opened for domain, from its "New SMTP DCID n ... (host for domain)" lines. */
static unsigned dcids_for(const char *log, const char *domain, unsigned long out[], unsigned max)
{
	char tail[160];
	unsigned n = 0;
	snprintf(tail, sizeof(tail), " for %s)\n", domain);
	for (const char *p = log; (p = strstr(p, "New SMTP DCID ")) && n < max; p++) {
		const char *eol = strchr(p, '\n');
		const char *t = strstr(p, tail);
		if (eol && t && t + strlen(tail) - 1 == eol)
			out[n++] = strtoul(p + strlen("New SMTP DCID "), NULL, 10);
	}
	return n;
}

/* The first line of log that starts (after the level) with prefix, or NULL. */
static const char *line_with(const char *log, const char *prefix)
{
	return strstr(log, prefix);
}

/* A demo backend's envelope, indented JSON, without the white space (no value here has any). */
static char *envelope(const char *maildir, unsigned index)
{
	char *env = stls_maildir_message(maildir, index, true, NULL);
	size_t n = 0;
	for (size_t i = 0; env && env[i]; i++)
		if (env[i] != ' ' && env[i] != '\n')
			env[n++] = env[i];
	if (env)
		env[n] = '\0';
	return env;
}

static void check_delivered(enum mode m, enum dest d, const char *domain, const char *log)
{
	enum outcome want = expect[m][d];
	size_t len;
	char *eml = stls_maildir_message(dest_maildirs[d], 0, false, &len);
	char *env = envelope(dest_maildirs[d], 0);
	cr_assert(eml && env, "%s: nothing stored", domain);
	cr_assert_eq(stls_maildir_count(dest_maildirs[d]), 1, "%s: %u messages stored", domain,
		     stls_maildir_count(dest_maildirs[d]));
	char rcpt[160];
	snprintf(rcpt, sizeof(rcpt), "\"rcpt_to\":[\"bob@%.100s\"]", domain);
	cr_assert(strstr(env, rcpt), "%s: envelope %s", domain, env);
	if (want == CLEAR) {
		cr_assert(strstr(env, "\"tls\":null"), "%s should have come in clear text: %s", domain, env);
	} else {
		char sni[128];
		snprintf(sni, sizeof(sni), "\"sni\":\"%s\"", dests[d].host);
		cr_assert(strstr(env, "\"tls\":{"), "%s should have come over TLS: %s", domain, env);
		cr_assert(strstr(env, sni), "%s: SNI should be the host name %s: %s", domain, dests[d].host, env);
		if (d == D_GOOD)
			cr_assert(strstr(env, "\"client_cert\":\"mx.dest.test\""),
				  "%s: the destination did not get the client certificate: %s", domain, env);
	}

	/* Postfix adds its Received: field; the rest arrives as sent. */
	char msg[2048];
	message_for(msg, sizeof(msg), domain);
	size_t mlen = strlen(msg);
	cr_assert(len > mlen && strncmp(eml, "Received: ", 10) == 0, "%s: stored:\n%s", domain, eml);
	cr_assert(memcmp(eml + len - mlen, msg, mlen) == 0, "%s: the message changed on the way:\n%s", domain, eml);
	free(eml);
	free(env);

	/* The log: the connection, TLS as expected, and the delivery. */
	unsigned long ids[16];
	unsigned n = dcids_for(log, domain, ids, 16);
	cr_assert_eq(n, 1, "%s: %u destination connections in the log:\n%s", domain, n, log);
	char want_line[160];
	snprintf(want_line, sizeof(want_line), "DCID %lu TLS success protocol ", ids[0]);
	const char *tls = line_with(log, want_line);
	if (want == CLEAR) {
		cr_assert_null(tls, "%s went in clear text, yet the log says TLS:\n%s", domain, log);
	} else {
		cr_assert_not_null(tls, "%s: no \"%s\" line:\n%s", domain, want_line, log);
		const char *eol = strchr(tls, '\n');
		const char *verified = want == VERIFIED ? " verified yes\n" : " verified no\n";
		cr_assert(eol && strncmp(eol - strlen(verified) + 1, verified, strlen(verified)) == 0,
			  "%s: expected \"%s\" at the end of:\n%.*s", domain, verified, (int)(eol - tls), tls);
	}
	snprintf(want_line, sizeof(want_line), "Delivery start DCID %lu MID ", ids[0]);
	cr_assert(line_with(log, want_line), "%s: no \"%s\" line:\n%s", domain, want_line, log);
	snprintf(want_line, sizeof(want_line), "Message done DCID %lu MID ", ids[0]);
	cr_assert(line_with(log, want_line), "%s: no \"%s\" line:\n%s", domain, want_line, log);
}

static void check_deferred(enum mode m, enum dest d, const char *domain, const char *log, const char *queue)
{
	cr_assert_eq(stls_maildir_count(dest_maildirs[d]), 0, "%s should have been deferred, yet was delivered",
		     domain);
	char rcpt[160];
	snprintf(rcpt, sizeof(rcpt), "bob@%.100s", domain);
	/* postqueue lists one queue folder after the other, so a message that Postfix moves from
	 * deferred to active for a retry can be missed by one listing: look again. */
	char *again = NULL;
	for (unsigned i = 0; i < 10 && !strstr(queue, rcpt); i++) {
		stls_proc_sleep_ms(300);
		free(again);
		queue = again = stls_postfix_queue(&postfix);
		cr_assert_not_null(queue);
	}
	cr_assert(strstr(queue, rcpt), "%s is no longer in Postfix's queue:\n%s", domain, queue);
	free(again);

	unsigned long ids[64];
	unsigned n = dcids_for(log, domain, ids, 64);
	cr_assert_geq(n, 1, "%s: no destination connection in the log:\n%s", domain, log);
	char want_line[256];
	snprintf(want_line, sizeof(want_line), "DCID %lu IP 127.0.0.1 TLS failed: %s", ids[0], dests[d].cause);
	cr_assert(line_with(log, want_line), "%s: no \"%s\" line:\n%s", domain, want_line, log);
	snprintf(want_line, sizeof(want_line), "Warning: TLS was required for %.100s (policy %s)", domain,
		 mode_names[m]);
	bool required = m == M_REQUIRED || m == M_REQUIRED_VERIFY;
	if (required)
		cr_assert(line_with(log, want_line), "%s: no \"%s\" line:\n%s", domain, want_line, log);
	else
		cr_assert_null(line_with(log, want_line), "%s: a warning although %s does not require TLS", domain,
			       mode_names[m]);
}

/* The number of alerts stored for domain; *cause_seen tells whether one names cause. */
static unsigned alerts_for(const char *domain, const char *cause, bool *cause_seen)
{
	char subject[200], cause_line[300];
	snprintf(subject, sizeof(subject), "Subject: [starttlsd] Warning: TLS required for %.100s failed\r\n", domain);
	snprintf(cause_line, sizeof(cause_line), "Cause: %s", cause);
	unsigned n = 0, total = stls_fixture_num_messages(&fx);
	*cause_seen = false;
	for (unsigned i = 0; i < total; i++) {
		char *msg = stls_fixture_message(&fx, i, false, NULL);
		if (msg && strstr(msg, subject)) {
			n++;
			*cause_seen |= strstr(msg, cause_line) != NULL;
		}
		free(msg);
	}
	return n;
}

static void run_mode(enum mode m)
{
	send_to_postfix(m);

	/* Wait for each message's fate: stored at its destination, or deferred by Postfix with a 4.7.x
	 * reply from the proxy. */
	char domain[D__COUNT][128], sent[256], deferred[256];
	unsigned num_deferred = 0;
	for (enum dest d = 0; d < D__COUNT; d++) {
		snprintf(domain[d], sizeof(domain[d]), "%s.%s.test", dests[d].name, mode_names[m]);
		if (expect[m][d] != DEFER) {
			cr_assert(stls_maildir_wait(dest_maildirs[d], 1, 60000), "%s was not delivered (expected: %s)",
				  domain[d], outcome_names[expect[m][d]]);
			continue;
		}
		num_deferred++;
		snprintf(deferred, sizeof(deferred), "to=<bob@%.100s>, relay=127.0.0.1[127.0.0.1]:%u,", domain[d],
			 out_port);
		const struct stls_log_want wants[] = {
			{ deferred, " status=deferred (host 127.0.0.1[127.0.0.1] said: 451 4.7." }, { NULL, NULL }
		};
		char *plog = NULL;
		const struct stls_log_want *missing = stls_postfix_wait_log(&postfix, wants, 60000, &plog);
		cr_assert_null(missing, "%s was not deferred with 451 4.7.x by the proxy:\n%s", domain[d], plog);
		/* The last line the proxy logs for a deferred domain, on the worker that logged its TLS
		 * failure and warning before it. Postfix's retries add more failure lines, so a count of
		 * them would not show that this domain's have been written. */
		char not_delivered[192];
		snprintf(not_delivered, sizeof(not_delivered), " not delivered to %.128s: ", domain[d]);
		cr_assert(stls_proc_wait_file_contains(fx.proxy_log, not_delivered, 10000), "no \"%s\" line:\n%s",
			  not_delivered, stls_proc_read_file(fx.proxy_log, NULL));
	}
	(void)sent;

	/* The log is written by a thread of its own, a moment after the events: wait for the last
	 * line each delivered message leads to (delivered messages are not retried, so the count is
	 * exact). */
	unsigned num_delivered = D__COUNT - num_deferred;
	uint64_t log_end = stls_proc_now_ms() + 10000;
	while (stls_proc_count_in_file(fx.proxy_log, "Message done DCID ") < num_delivered &&
	       stls_proc_now_ms() < log_end)
		stls_proc_sleep_ms(50);
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	char *queue = stls_postfix_queue(&postfix);
	cr_assert(log && queue);
	for (enum dest d = 0; d < D__COUNT; d++) {
		if (expect[m][d] == DEFER)
			check_deferred(m, d, domain[d], log, queue);
		else
			check_delivered(m, d, domain[d], log);
	}
	free(log);
	free(queue);

	/* Alerts (S21): one for each deferred domain when the mode requires TLS, none otherwise, however
	 * often Postfix retries. Wait until Postfix has tried every deferred domain again. */
	if (num_deferred == 0)
		return;
	uint64_t end = stls_proc_now_ms() + 60000;
	for (enum dest d = 0; d < D__COUNT; d++) {
		if (expect[m][d] != DEFER)
			continue;
		unsigned long ids[64];
		unsigned n = 0;
		for (unsigned i = 0; n < 2 && stls_proc_now_ms() < end; i++) {
			/* Postfix retries on its own, but not before a retry time it may have pushed back;
			 * a flush asks for it now. */
			if (i % 10 == 0)
				cr_assert(stls_postfix_flush(&postfix));
			stls_proc_sleep_ms(200);
			log = stls_proc_read_file(fx.proxy_log, NULL);
			n = log ? dcids_for(log, domain[d], ids, 64) : 0;
			free(log);
		}
		cr_assert_geq(n, 2, "%s: Postfix did not retry", domain[d]);
	}
	bool required = m == M_REQUIRED || m == M_REQUIRED_VERIFY;
	if (required)
		cr_assert(stls_fixture_wait_messages(&fx, num_deferred, 20000), "%u alerts for %u deferred domains",
			  stls_fixture_num_messages(&fx), num_deferred);
	for (enum dest d = 0; d < D__COUNT; d++) {
		if (expect[m][d] != DEFER)
			continue;
		bool cause_seen;
		unsigned n = alerts_for(domain[d], dests[d].cause, &cause_seen);
		cr_assert_eq(n, required ? 1u : 0u, "%s: %u alerts", domain[d], n);
		cr_assert(!required || cause_seen, "%s: the alert does not name the cause \"%s\"", domain[d],
			  dests[d].cause);
	}
	char *env = required ? envelope(fx.maildir, 0) : NULL;
	if (required) {
		char rcpt[96];
		snprintf(rcpt, sizeof(rcpt), "\"rcpt_to\":[\"%s\"]", alert_to);
		cr_assert(env && strstr(env, rcpt), "alert envelope: %s", env ? env : "(none)");
	}
	free(env);
	cr_assert_eq(stls_fixture_num_messages(&fx), required ? num_deferred : 0u,
		     "alerts that name no deferred domain");
}

Test(outbound, policy_none)
{
	run_mode(M_NONE);
}

Test(outbound, policy_preferred)
{
	run_mode(M_PREFERRED);
}

Test(outbound, policy_required)
{
	run_mode(M_REQUIRED);
}

Test(outbound, policy_preferred_verify)
{
	run_mode(M_PREFERRED_VERIFY);
}

Test(outbound, policy_required_verify)
{
	run_mode(M_REQUIRED_VERIFY);
}

/* A message for two domains with different next hops: the proxy takes the first domain's
 * recipients (452 4.5.3 for the other), and Postfix sends the other in a transaction of its own. */
Test(outbound, two_next_hops_in_one_message)
{
	struct stls_smtp_client c;
	char msg[2048], stuffed[4096];
	cr_assert(stls_smtp_client_connect(&c, postfix.port, 20000), "cannot connect to Postfix");
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "Postfix greeting: %s", c.last);
	const char *const steps[][2] = { { "EHLO test.test\r\n", "250" },
					 { "MAIL FROM:<alice@legacy.test>\r\n", "250" },
					 { "RCPT TO:<bob@good.none.test>\r\n", "250" },
					 { "RCPT TO:<carol@no-starttls.none.test>\r\n", "250" },
					 { "DATA\r\n", "354" } };
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		stls_smtp_client_sends(&c, steps[i][0]);
		cr_assert_eq(stls_smtp_client_reply(&c), atoi(steps[i][1]), "%s: %s", steps[i][0], c.last);
	}
	message_for(msg, sizeof(msg), "two.none.test");
	dot_stuff(stuffed, sizeof(stuffed), msg);
	stls_smtp_client_sends(&c, stuffed);
	stls_smtp_client_sends(&c, ".\r\n");
	cr_assert_eq(stls_smtp_client_reply(&c), 250, "end of data: %s", c.last);
	stls_smtp_client_close(&c);

	cr_assert(stls_maildir_wait(dest_maildirs[D_GOOD], 1, 30000), "bob's copy did not arrive");
	/* Postfix defers carol on the 452 and sends her in a later transaction, on its next retry
	 * (minimal_backoff_time: 300 s by default); here the test asks for that retry. */
	bool arrived = false;
	for (unsigned i = 0; i < 15 && !arrived; i++) {
		stls_postfix_flush(&postfix);
		arrived = stls_maildir_wait(dest_maildirs[D_PLAIN], 1, 2000);
	}
	cr_assert(arrived, "carol's copy did not arrive");
	char deferred[128], sent[128];
	snprintf(deferred, sizeof(deferred), "to=<carol@no-starttls.none.test>, relay=127.0.0.1[127.0.0.1]:%u,",
		 out_port);
	snprintf(sent, sizeof(sent), "to=<bob@good.none.test>, relay=127.0.0.1[127.0.0.1]:%u,", out_port);
	const struct stls_log_want wants[] = { { deferred,
						 "dsn=4.5.3, status=deferred (host 127.0.0.1[127.0.0.1] said: "
						 "452 4.5.3 " },
					       { deferred, "status=sent (250 " },
					       { sent, "status=sent (250 " },
					       { NULL, NULL } };
	char *log = NULL;
	const struct stls_log_want *missing = stls_postfix_wait_log(&postfix, wants, 10000, &log);
	cr_assert_null(missing, "the Postfix log has no line with \"%s\" then \"%s\":\n%s", missing ? missing->has : "",
		       missing ? missing->also : "", log);
}

/* RFC 6125 6.4.3: a wildcard covers exactly one left-most label. Straight to the outbound
 * listener, as the legacy MTA would. */
Test(outbound, wildcard_certificate_covers_one_label)
{
	struct stls_smtp_client c;
	cr_assert(stls_smtp_client_connect(&c, out_port, 20000));
	cr_assert_eq(stls_smtp_client_reply(&c), 220, "greeting: %s", c.last);
	const char *const steps[][2] = { { "EHLO legacy.test\r\n", "250" },
					 { "MAIL FROM:<alice@legacy.test>\r\n", "250" },
					 { "RCPT TO:<bob@wild-two-labels.required-verify.test>\r\n", "451" },
					 { "RCPT TO:<bob@wild-one-label.required-verify.test>\r\n", "250" },
					 { "DATA\r\n", "354" },
					 { "Subject: wildcard\r\n\r\nbody\r\n.\r\n", "250" } };
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		stls_smtp_client_sends(&c, steps[i][0]);
		cr_assert_eq(stls_smtp_client_reply(&c), atoi(steps[i][1]), "%s: %s", steps[i][0], c.last);
		if (i == 2)
			cr_assert(strncmp(c.last, "451 4.7.5 ", 10) == 0, "%s", c.last);
	}
	stls_smtp_client_close(&c);
	cr_assert(stls_maildir_wait(wild_maildir, 1, 5000));
	/* The logger writes a moment after the events: wait for the last line the delivery leads to,
	 * which follows both connections' TLS lines. */
	(void)stls_proc_wait_file_contains(fx.proxy_log, "Message done DCID ", 5000);
	char *log = stls_proc_read_file(fx.proxy_log, NULL);
	cr_assert(log && strstr(log, "TLS failed: certificate not verified for deep.mx.dest.test: Hostname mismatch"),
		  "%s", log);
	unsigned long ids[4];
	cr_assert_eq(dcids_for(log, "wild-one-label.required-verify.test", ids, 4), 1);
	char line[128];
	snprintf(line, sizeof(line), "DCID %lu TLS success protocol ", ids[0]);
	const char *tls = strstr(log, line);
	cr_assert(tls && strstr(tls, " verified yes\n") == strchr(tls, '\n') - strlen(" verified yes"), "%s", log);
	free(log);
}
