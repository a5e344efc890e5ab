#include "core/flags.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum flag_kind {
	FK_BOOL = 0, /* no value */
	FK_ACTION,   /* no value, handled by the parser itself */
	FK_U32,
	FK_SECONDS, /* stored as milliseconds */
	FK_STRING,
	FK_HOSTNAME,
	FK_LISTEN, /* repeatable: an array of struct stls_addr, its count at aux */
	FK_CIDR,   /* repeatable: an array of struct stls_cidr, its count at aux */
	FK_HOSTPORT,
	FK_ENUM, /* one of choices, stored as a uint8_t index */
	FK__COUNT,
};

struct flag {
	const char *name;
	const char *metavar;
	enum flag_kind kind;
	size_t off;
	size_t size;
	uint64_t min;
	uint64_t max;
	const char *def; /* default, parsed like a value; NULL for none */
	const char *help;
	const char *const *choices; /* FK_ENUM: NULL-terminated */
	size_t aux; /* FK_LISTEN, FK_CIDR: offset of the count; the first use replaces the default. FK_U32: 1
		     * when "auto" is allowed too (stored as STLS_FLAG_AUTO) */
};

static const char *const tls_policies[] = { "off", "preferred", "required", NULL };
static const char *const proxy_versions[] = { "off", "v1", "v2", NULL };

const char *stls_tls_policy_str(enum stls_tls_policy policy)
{
	return (unsigned)policy < STLS_TLS__COUNT ? tls_policies[policy] : "unknown";
}

#define CFG(field) offsetof(struct stls_config, field), sizeof(((struct stls_config *)0)->field)

/* The order here is the order of --help and of the README's flag table. Section headings are
 * entries with a NULL name and the heading as help. */
static const struct flag flags[] = {
	{ NULL, NULL, FK__COUNT, 0, 0, 0, 0, NULL, "Listeners and backend:" },
	{ "listen", "ADDR:PORT", FK_LISTEN, CFG(listen), 0, STLS_MAX_LISTEN, "0.0.0.0:25",
	  "inbound SMTP listener, repeatable", NULL, offsetof(struct stls_config, num_listen) },
	{ "backend", "HOST:PORT", FK_HOSTPORT, CFG(backend), 0, 0, "127.0.0.1:2626",
	  "the legacy MTA that inbound mail is relayed to (the demo backend's default port)" },
	{ "hostname", "NAME", FK_HOSTNAME, CFG(hostname), 0, 0, NULL,
	  "name in the greeting and EHLO replies (default: the system hostname)" },
	{ "backend-probe-interval", "SECS", FK_SECONDS, CFG(backend_probe_interval_ms), 1, 86400, "60",
	  "how often the backend's EHLO capabilities are read again" },
	{ "backend-xclient", NULL, FK_BOOL, CFG(backend_xclient), 0, 0, NULL,
	  "tell the backend the real client with Postfix's XCLIENT (ADDR PORT NAME HELO PROTO) before relaying" },
	{ "backend-proxy-protocol", "off|v1|v2", FK_ENUM, CFG(backend_proxy_protocol), 0, 0, "off",
	  "send a PROXY header at backend connect (v2 adds the TLS version, cipher and SNI)", proxy_versions },
	{ "accept-proxy-protocol", "CIDR", FK_CIDR, CFG(accept_proxy), 0, STLS_MAX_CIDRS, NULL,
	  "balancers whose connections must start with a PROXY v1/v2 header, repeatable (default: none)", NULL,
	  offsetof(struct stls_config, num_accept_proxy) },
	{ "proxy-header-timeout", "SECS", FK_SECONDS, CFG(proxy_header_timeout_ms), 1, 3600, "5",
	  "waiting for a balancer's PROXY header" },

	{ NULL, NULL, FK__COUNT, 0, 0, 0, 0, NULL, "Outbound relay (the backend's mail to the world):" },
	{ "outbound-listen", "ADDR:PORT", FK_LISTEN, CFG(outbound_listen), 0, STLS_MAX_LISTEN, NULL,
	  "where the legacy MTA relays outbound mail (its relayhost), repeatable (default: off)", NULL,
	  offsetof(struct stls_config, num_outbound_listen) },
	{ "outbound-allow", "CIDR", FK_CIDR, CFG(outbound_allow), 0, STLS_MAX_CIDRS, "127.0.0.0/8 ::1/128",
	  "who may use the outbound listener, repeatable; anyone else gets 554 5.7.1", NULL,
	  offsetof(struct stls_config, num_outbound_allow) },
	{ "dest-policy", "FILE", FK_STRING, CFG(dest_policy_path), 0, 0, NULL,
	  "per-domain outbound TLS: none, preferred, required, preferred-verify, required-verify (default: "
	  "all preferred)" },
	{ "routes", "FILE", FK_STRING, CFG(routes_path), 0, 0, NULL,
	  "per-domain next hop: host[:port] or mx (default: DNS MX)" },
	{ "dns", "ADDR:PORT", FK_HOSTPORT, CFG(dns), 0, 0, NULL, "DNS server for MX lookups (default: the system's)" },
	{ "ca-file", "FILE", FK_STRING, CFG(ca_file), 0, 0, "/etc/ssl/certs/ca-certificates.crt",
	  "trust store for preferred-verify and required-verify" },
	{ "outbound-cert", "FILE", FK_STRING, CFG(outbound_cert_path), 0, 0, NULL,
	  "PEM client certificate (and intermediates) shown to destinations (spec S7)" },
	{ "outbound-key", "FILE", FK_STRING, CFG(outbound_key_path), 0, 0, NULL, "PEM private key of --outbound-cert" },
	{ "alert-to", "ADDR", FK_STRING, CFG(alert_to), 0, 0, NULL,
	  "who is told, through the backend, when required TLS to a domain fails (spec S21; default: log only)" },
	{ "alert-interval", "SECS", FK_SECONDS, CFG(alert_interval_ms), 1, 604800, "1h",
	  "at most one alert per domain in this time" },
	{ "dest-connect-timeout", "SECS", FK_SECONDS, CFG(dest_connect_timeout_ms), 1, 3600, "30",
	  "connecting to a destination and reading its greeting" },

	{ NULL, NULL, FK__COUNT, 0, 0, 0, 0, NULL, "TLS (inbound STARTTLS):" },
	{ "inbound-tls", "off|preferred|required", FK_ENUM, CFG(inbound_tls), 0, 0, "preferred",
	  "offer STARTTLS (preferred), also require it before mail (required), or not at all (off)", tls_policies },
	{ "sender-groups", "FILE", FK_STRING, CFG(sender_groups_path), 0, 0, NULL,
	  "client networks -> group, inbound TLS and limits (spec S14); no match uses --inbound-tls" },
	{ "cert", "FILE", FK_STRING, CFG(cert_path), 0, 0, NULL,
	  "PEM certificate, then any intermediates (default: an ephemeral self-signed demo certificate)" },
	{ "key", "FILE", FK_STRING, CFG(key_path), 0, 0, NULL, "PEM private key of --cert (unencrypted)" },
	{ "chain", "FILE", FK_STRING, CFG(chain_path), 0, 0, NULL, "PEM intermediates, if not in --cert" },
	{ "p12", "FILE", FK_STRING, CFG(p12_path), 0, 0, NULL, "PKCS#12 file with key, certificate and chain" },
	{ "p12-password-file", "FILE", FK_STRING, CFG(p12_password_path), 0, 0, NULL,
	  "file whose first line is the --p12 password" },
	{ "ticket-key-file", "FILE", FK_STRING, CFG(ticket_key_path), 0, 0, NULL,
	  "session-ticket keys shared by several nodes: 80 bytes a key, the first encrypts; read again when it "
	  "changes (default: random keys, rotated)" },
	{ "ticket-key-rotation", "SECS", FK_SECONDS, CFG(ticket_rotation_ms), 1, 604800, "12h",
	  "how often random ticket keys are replaced (a ticket stays valid two more periods)" },
	{ "handshake-timeout", "SECS", FK_SECONDS, CFG(handshake_timeout_ms), 1, 3600, "30",
	  "from the 220 reply to STARTTLS to the end of the TLS handshake" },

	{ NULL, NULL, FK__COUNT, 0, 0, 0, 0, NULL, "Threads:" },
	{ "workers", "N", FK_U32, CFG(workers), 0, STLS_MAX_WORKERS, "0",
	  "worker threads, each with its own io_uring (0 = one per online CPU)" },
	{ "no-pin", NULL, FK_BOOL, CFG(no_pin), 0, 0, NULL, "do not pin worker threads to CPUs" },
	{ "keyop-threads", "N|auto", FK_U32, CFG(keyop_threads), 0, 256, "auto",
	  "sign TLS handshakes in a key-op process (starttls-keyop, with OpenSSL's faster libcrypto) with N threads, "
	  "so a worker never stalls on a signature; auto: one per worker when starttls-keyop is installed beside "
	  "starttlsd; 0: the workers sign (BoringSSL)",
	  NULL, 1 },

	{ NULL, NULL, FK__COUNT, 0, 0, 0, 0, NULL, "Limits:" },
	{ "max-sessions", "N", FK_U32, CFG(max_sessions), 1, 10000000, "10000",
	  "concurrent inbound sessions, shared evenly by the workers; beyond it 421 4.3.2" },
	{ "max-per-ip", "N", FK_U32, CFG(max_per_ip), 0, 10000000, "0",
	  "concurrent sessions from one client address (a sender group's max-per-ip= overrides it); beyond it 421 "
	  "4.7.0 (0 = no limit)" },
	{ "max-command-line", "OCTETS", FK_U32, CFG(max_command_line), 512, 65536, "512",
	  "longest client command line, CRLF included (RFC 5321 4.5.3.1.4); longer: 500 5.5.6" },
	{ "max-reply-line", "OCTETS", FK_U32, CFG(max_reply_line), 512, 65536, "512",
	  "longest backend reply line, CRLF included (RFC 5321 4.5.3.1.5)" },
	{ "max-text-line", "OCTETS", FK_U32, CFG(max_text_line), 0, 1u << 30, "1000",
	  "longest message line, CRLF included (RFC 5321 4.5.3.1.6); longer: 550 5.6.0; 0 = no limit" },
	{ "max-errors", "N", FK_U32, CFG(max_errors), 1, 1000, "10",
	  "protocol errors a client may make before 421 4.7.0 ends its session" },
	{ "max-pipeline", "N", FK_U32, CFG(max_pipeline), 1, 4096, "100",
	  "commands a client may have waiting for replies; beyond it the proxy stops reading" },

	{ NULL, NULL, FK__COUNT, 0, 0, 0, 0, NULL, "Timeouts (seconds, or with s/m/h):" },
	{ "command-timeout", "SECS", FK_SECONDS, CFG(command_timeout_ms), 1, 86400, "300",
	  "waiting for a client's next command (RFC 5321 4.5.3.2.7)" },
	{ "data-timeout", "SECS", FK_SECONDS, CFG(data_timeout_ms), 1, 86400, "180",
	  "waiting for the next block of message data (RFC 5321 4.5.3.2.5)" },
	{ "backend-connect-timeout", "SECS", FK_SECONDS, CFG(backend_connect_timeout_ms), 1, 3600, "30",
	  "connecting to the backend and reading its greeting" },
	{ "backend-reply-timeout", "SECS", FK_SECONDS, CFG(backend_reply_timeout_ms), 1, 86400, "600",
	  "waiting for a backend reply (RFC 5321 4.5.3.2.6: 10 minutes after end of data)" },
	{ "shutdown-grace", "SECS", FK_SECONDS, CFG(shutdown_grace_ms), 0, 86400, "30",
	  "on SIGTERM, time sessions get to finish before 421 4.3.2" },

	{ NULL, NULL, FK__COUNT, 0, 0, 0, 0, NULL, "Buffers (per worker):" },
	{ "recv-buffers", "N", FK_U32, CFG(recv_buffers), 8, 32768, "512",
	  "receive buffers in the io_uring provided-buffer ring (a power of two)" },
	{ "recv-buffer-size", "OCTETS", FK_U32, CFG(recv_buffer_size), 1024, 1u << 20, "16384",
	  "size of each receive buffer" },
	{ "relay-buffer", "OCTETS", FK_U32, CFG(relay_buffer), 16384, 1u << 26, "262144",
	  "bytes queued toward a slow peer before the proxy stops reading the other side" },

	{ NULL, NULL, FK__COUNT, 0, 0, 0, 0, NULL, "Logging and control:" },
	{ "log", "FILE|-", FK_STRING, CFG(log_path), 0, 0, "-", "mail log file, '-' for stderr" },
	{ "stats-listen", "ADDR:PORT", FK_LISTEN, CFG(stats_listen), 0, 1, NULL,
	  "serve counters at http://ADDR:PORT/metrics (Prometheus) and /status; bind a management address "
	  "(default: off)",
	  NULL, offsetof(struct stls_config, num_stats_listen) },
	{ "check", NULL, FK_BOOL, CFG(check), 0, 0, NULL,
	  "validate the settings, print them and exit (0 valid, 1 not)" },
	{ "help", NULL, FK_ACTION, 0, 0, 0, 0, NULL, "print this help and exit" },
	{ "version", NULL, FK_ACTION, 0, 0, 0, 0, NULL, "print the version and exit" },
};

enum { NUM_FLAGS = sizeof(flags) / sizeof(flags[0]) };

void stls_flags_usage(FILE *out)
{
	fprintf(out, "Usage: starttlsd [--flag value]... [@FILE]...\n"
		     "\n"
		     "STARTTLS termination proxy for SMTP: terminates TLS from the Internet and relays\n"
		     "plain SMTP to the legacy mail server behind it. @FILE reads more flags from FILE,\n"
		     "one \"--flag value\" a line.\n");
	for (unsigned i = 0; i < NUM_FLAGS; i++) {
		const struct flag *f = &flags[i];
		if (!f->name) {
			fprintf(out, "\n%s\n", f->help);
			continue;
		}
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", f->name, f->metavar ? " " : "", f->metavar ? f->metavar : "");
		fprintf(out, "  %-32s %s", left, f->help);
		if (f->def && f->kind != FK_BOOL)
			fprintf(out, " [%s]", f->def);
		fprintf(out, "\n");
	}
}

static const struct flag *flag_find(const char *name, size_t len)
{
	for (unsigned i = 0; i < NUM_FLAGS; i++)
		if (flags[i].name && strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
			return &flags[i];
	return NULL;
}

enum stls_err stls_flags_parse_hostport(struct stls_hostport *out, const char *text)
{
	const char *colon;
	const char *host = text;
	size_t host_len;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return STLS_ERR_USAGE;
		host = text + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return STLS_ERR_USAGE;
		host_len = (size_t)(colon - text);
		if (memchr(text, ':', host_len))
			return STLS_ERR_USAGE; /* a bare IPv6 address needs brackets */
	}
	if (host_len == 0 || host_len >= sizeof(out->host))
		return STLS_ERR_USAGE;
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (errno || *end || colon[1] == '\0' || port == 0 || port > 65535)
		return STLS_ERR_USAGE;
	memcpy(out->host, host, host_len);
	out->host[host_len] = '\0';
	out->port = (uint16_t)port;
	snprintf(out->text, sizeof(out->text), "%s", text);
	return STLS_OK;
}

enum stls_err stls_flags_parse_cidr(struct stls_cidr *out, const char *text)
{
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t len = slash ? (size_t)(slash - text) : strlen(text);
	if (len == 0 || len >= sizeof(addr))
		return STLS_ERR_USAGE;
	memcpy(addr, text, len);
	addr[len] = '\0';
	memset(out, 0, sizeof(*out));
	unsigned max;
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return STLS_ERR_USAGE;
	}
	unsigned long prefix = max;
	if (slash) {
		char *end;
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (errno || *end || slash[1] == '\0' || prefix > max)
			return STLS_ERR_USAGE;
	}
	out->prefix = (uint8_t)prefix;
	/* Host bits are cleared: 10.1.2.3/8 means 10.0.0.0/8. */
	for (unsigned bit = out->prefix; bit < max; bit++)
		out->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	snprintf(out->text, sizeof(out->text), "%s", text);
	return STLS_OK;
}

enum stls_err stls_flags_parse_addr(struct stls_addr *out, const char *text)
{
	struct stls_hostport hp;
	STLS_TRY(stls_flags_parse_hostport(&hp, text));
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	if (strcmp(hp.host, "*") == 0 || inet_pton(AF_INET, hp.host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(hp.port);
		out->len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, hp.host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(hp.port);
		out->len = sizeof(*sin6);
	} else {
		return STLS_ERR_USAGE;
	}
	snprintf(out->text, sizeof(out->text), "%s", text);
	return STLS_OK;
}

static bool valid_hostname(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
			  c == '.';
		if (!ok)
			return false;
	}
	return true;
}

static enum stls_err parse_seconds(uint64_t *out_ms, const char *v)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || v[0] == '-')
		return STLS_ERR_USAGE;
	uint64_t mult = 1;
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mult = 60, end++;
	else if (*end == 'h')
		mult = 3600, end++;
	if (*end || n > UINT32_MAX / 1000 / mult)
		return STLS_ERR_USAGE;
	*out_ms = n * mult * 1000;
	return STLS_OK;
}

struct parse_state {
	struct stls_config *cfg;
	bool given[NUM_FLAGS]; /* repeatable flags: the first use replaces the default */
	FILE *err;
	int depth;
};

static enum stls_err flag_set(struct parse_state *ps, const struct flag *f, const char *v)
{
	uint8_t *field = (uint8_t *)ps->cfg + f->off;
	char *end;
	switch (f->kind) {
	case FK_BOOL: *(bool *)field = true; return STLS_OK;
	case FK_U32: {
		if (f->aux && strcmp(v, "auto") == 0) {
			*(uint32_t *)field = STLS_FLAG_AUTO;
			return STLS_OK;
		}
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		if (errno || end == v || *end || v[0] == '-' || n < f->min || n > f->max) {
			fprintf(ps->err, "starttlsd: --%s %s: expected a number from %llu to %llu%s\n", f->name, v,
				(unsigned long long)f->min, (unsigned long long)f->max, f->aux ? ", or auto" : "");
			return STLS_ERR_USAGE;
		}
		*(uint32_t *)field = (uint32_t)n;
		return STLS_OK;
	}
	case FK_SECONDS: {
		uint64_t ms;
		if (parse_seconds(&ms, v) != STLS_OK || ms < f->min * 1000 || ms > f->max * 1000) {
			fprintf(ps->err, "starttlsd: --%s %s: expected seconds from %llu to %llu (or with s/m/h)\n",
				f->name, v, (unsigned long long)f->min, (unsigned long long)f->max);
			return STLS_ERR_USAGE;
		}
		*(uint32_t *)field = (uint32_t)ms;
		return STLS_OK;
	}
	case FK_STRING:
	case FK_HOSTNAME:
		if (strlen(v) >= f->size || v[0] == '\0' || (f->kind == FK_HOSTNAME && !valid_hostname(v))) {
			fprintf(ps->err, "starttlsd: --%s %s: %s\n", f->name, v,
				f->kind == FK_HOSTNAME ? "expected a host name (letters, digits, '-', '.')"
						       : "empty or too long");
			return STLS_ERR_USAGE;
		}
		memcpy(field, v, strlen(v) + 1);
		return STLS_OK;
	case FK_LISTEN:
	case FK_CIDR: {
		unsigned *count = (unsigned *)((uint8_t *)ps->cfg + f->aux);
		if (!ps->given[f - flags]) {
			*count = 0;
			ps->given[f - flags] = true;
		}
		if (*count >= f->max) {
			fprintf(ps->err, "starttlsd: --%s: at most %llu of them\n", f->name,
				(unsigned long long)f->max);
			return STLS_ERR_USAGE;
		}
		if (f->kind == FK_LISTEN) {
			if (stls_flags_parse_addr((struct stls_addr *)field + *count, v) != STLS_OK) {
				fprintf(ps->err,
					"starttlsd: --%s %s: expected a numeric ADDR:PORT such as 127.0.0.1:25 "
					"or [::1]:25\n",
					f->name, v);
				return STLS_ERR_USAGE;
			}
		} else if (stls_flags_parse_cidr((struct stls_cidr *)field + *count, v) != STLS_OK) {
			fprintf(ps->err, "starttlsd: --%s %s: expected a network such as 10.0.0.0/8 or 2001:db8::/32\n",
				f->name, v);
			return STLS_ERR_USAGE;
		}
		(*count)++;
		return STLS_OK;
	}
	case FK_ENUM:
		for (uint8_t i = 0; f->choices[i]; i++) {
			if (strcmp(v, f->choices[i]) == 0) {
				*field = i;
				return STLS_OK;
			}
		}
		fprintf(ps->err, "starttlsd: --%s %s: expected %s\n", f->name, v, f->metavar);
		return STLS_ERR_USAGE;
	case FK_HOSTPORT:
		if (stls_flags_parse_hostport((struct stls_hostport *)field, v) != STLS_OK) {
			fprintf(ps->err, "starttlsd: --%s %s: expected HOST:PORT such as 127.0.0.1:2626\n", f->name, v);
			return STLS_ERR_USAGE;
		}
		return STLS_OK;
	case FK_ACTION:
	case FK__COUNT: break;
	}
	return STLS_ERR_INTERNAL;
}

static enum stls_err parse_args(struct parse_state *ps, enum stls_flags_action *out_action, int argc, char **argv,
				FILE *out);

/* "@FILE": one "--flag value" a line; '#' starts a comment; blank lines are skipped. */
static enum stls_err parse_file(struct parse_state *ps, enum stls_flags_action *out_action, const char *path, FILE *out)
{
	if (ps->depth >= 4) {
		fprintf(ps->err, "starttlsd: @%s: @FILE nested too deeply\n", path);
		return STLS_ERR_USAGE;
	}
	FILE *fp = fopen(path, "r");
	if (!fp) {
		fprintf(ps->err, "starttlsd: @%s: %s\n", path, strerror(errno));
		return STLS_ERR_USAGE;
	}
	enum stls_err ret = STLS_OK;
	char line[4096];
	unsigned lineno = 0;
	ps->depth++;
	while (ret == STLS_OK && fgets(line, sizeof(line), fp)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *words[2] = { NULL, NULL };
		int num = 0;
		for (char *save = NULL, *w = strtok_r(line, " \t\r\n", &save); w;
		     w = strtok_r(NULL, " \t\r\n", &save)) {
			if (num == 2) {
				fprintf(ps->err, "starttlsd: %s:%u: one flag and at most one value a line\n", path,
					lineno);
				ret = STLS_ERR_USAGE;
				break;
			}
			words[num++] = w;
		}
		if (ret == STLS_OK && num > 0)
			ret = parse_args(ps, out_action, num, words, out);
	}
	ps->depth--;
	fclose(fp);
	return ret;
}

static enum stls_err parse_args(struct parse_state *ps, enum stls_flags_action *out_action, int argc, char **argv,
				FILE *out)
{
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] == '@') {
			STLS_TRY(parse_file(ps, out_action, arg + 1, out));
			if (*out_action != STLS_FLAGS_RUN)
				return STLS_OK; /* --help or --version inside the file */
			continue;
		}
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(ps->err, "starttlsd: %s: unexpected argument (flags are --name value; see --help)\n",
				arg);
			return STLS_ERR_USAGE;
		}
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
		const struct flag *f = flag_find(name, name_len);
		if (!f) {
			fprintf(ps->err, "starttlsd: --%.*s: unknown flag (see --help)\n", (int)name_len, name);
			return STLS_ERR_USAGE;
		}
		if (f->kind == FK_ACTION) {
			if (strcmp(f->name, "help") == 0) {
				stls_flags_usage(out);
				*out_action = STLS_FLAGS_HELP;
			} else {
				fprintf(out, "starttlsd %s\n", STLS_VERSION);
				*out_action = STLS_FLAGS_VERSION;
			}
			return STLS_OK;
		}
		const char *value = NULL;
		if (f->kind != FK_BOOL) {
			if (eq)
				value = eq + 1;
			else if (i + 1 < argc)
				value = argv[++i];
			else {
				fprintf(ps->err, "starttlsd: --%s: needs a value %s\n", f->name, f->metavar);
				return STLS_ERR_USAGE;
			}
		} else if (eq) {
			fprintf(ps->err, "starttlsd: --%s: takes no value\n", f->name);
			return STLS_ERR_USAGE;
		}
		STLS_TRY(flag_set(ps, f, value));
	}
	return STLS_OK;
}

enum stls_err stls_flags_parse(struct stls_config *out_cfg, enum stls_flags_action *out_action, int argc, char **argv,
			       FILE *out, FILE *err)
{
	memset(out_cfg, 0, sizeof(*out_cfg));
	*out_action = STLS_FLAGS_RUN;
	struct parse_state ps = { .cfg = out_cfg, .err = err };
	for (unsigned i = 0; i < NUM_FLAGS; i++) {
		if (!flags[i].name || !flags[i].def || flags[i].kind == FK_BOOL)
			continue;
		/* A list's default may hold several values, space separated. */
		char def[256];
		snprintf(def, sizeof(def), "%s", flags[i].def);
		for (char *save = NULL, *v = strtok_r(def, " ", &save); v; v = strtok_r(NULL, " ", &save))
			if (flag_set(&ps, &flags[i], v) != STLS_OK)
				return STLS_ERR_INTERNAL;
	}
	memset(ps.given, 0, sizeof(ps.given)); /* defaults are replaced by the first use of a flag */
	if (gethostname(out_cfg->hostname, sizeof(out_cfg->hostname)) != 0 || !valid_hostname(out_cfg->hostname))
		snprintf(out_cfg->hostname, sizeof(out_cfg->hostname), "localhost");

	STLS_TRY(parse_args(&ps, out_action, argc, argv, out));
	if (*out_action != STLS_FLAGS_RUN)
		return STLS_OK;

	if (!!out_cfg->cert_path[0] != !!out_cfg->key_path[0]) {
		fprintf(err, "starttlsd: --cert and --key go together\n");
		return STLS_ERR_USAGE;
	}
	if (!!out_cfg->p12_path[0] != !!out_cfg->p12_password_path[0]) {
		fprintf(err, "starttlsd: --p12 and --p12-password-file go together\n");
		return STLS_ERR_USAGE;
	}
	if (out_cfg->p12_path[0] && out_cfg->cert_path[0]) {
		fprintf(err, "starttlsd: --p12 and --cert: give one or the other\n");
		return STLS_ERR_USAGE;
	}
	if (out_cfg->chain_path[0] && !out_cfg->cert_path[0]) {
		fprintf(err, "starttlsd: --chain needs --cert and --key\n");
		return STLS_ERR_USAGE;
	}
	if (out_cfg->backend_xclient && out_cfg->backend_proxy_protocol) {
		fprintf(err, "starttlsd: --backend-xclient and --backend-proxy-protocol: give one or the other\n");
		return STLS_ERR_USAGE;
	}
	if (out_cfg->recv_buffers & (out_cfg->recv_buffers - 1)) {
		fprintf(err, "starttlsd: --recv-buffers %u: must be a power of two\n", out_cfg->recv_buffers);
		return STLS_ERR_USAGE;
	}
	if (out_cfg->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		out_cfg->workers = n < 1 ? 1 : n > STLS_MAX_WORKERS ? STLS_MAX_WORKERS : (unsigned)n;
	}
	return STLS_OK;
}

void stls_flags_print(const struct stls_config *cfg, FILE *out)
{
	for (unsigned i = 0; i < NUM_FLAGS; i++) {
		const struct flag *f = &flags[i];
		const uint8_t *field = (const uint8_t *)cfg + f->off;
		if (!f->name)
			continue;
		switch (f->kind) {
		case FK_BOOL:
			if (*(const bool *)field)
				fprintf(out, "--%s\n", f->name);
			break;
		case FK_U32:
			if (f->aux && *(const uint32_t *)field == STLS_FLAG_AUTO)
				fprintf(out, "--%s auto\n", f->name);
			else
				fprintf(out, "--%s %u\n", f->name, *(const uint32_t *)field);
			break;
		case FK_SECONDS: {
			uint32_t ms = *(const uint32_t *)field;
			fprintf(out, "--%s %u\n", f->name, ms / 1000);
			break;
		}
		case FK_STRING:
		case FK_HOSTNAME:
			if (*(const char *)field) /* optional paths print only when set */
				fprintf(out, "--%s %s\n", f->name, (const char *)field);
			break;
		case FK_LISTEN:
		case FK_CIDR: {
			unsigned count = *(const unsigned *)((const uint8_t *)cfg + f->aux);
			for (unsigned l = 0; l < count; l++)
				fprintf(out, "--%s %s\n", f->name,
					f->kind == FK_LISTEN ? ((const struct stls_addr *)field)[l].text
							     : ((const struct stls_cidr *)field)[l].text);
			break;
		}
		case FK_HOSTPORT:
			if (((const struct stls_hostport *)field)->text[0])
				fprintf(out, "--%s %s\n", f->name, ((const struct stls_hostport *)field)->text);
			break;
		case FK_ENUM: fprintf(out, "--%s %s\n", f->name, f->choices[*field]); break;
		case FK_ACTION:
		case FK__COUNT: break;
		}
	}
}
