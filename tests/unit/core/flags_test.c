/* Unit tests for core/flags.c: the command line. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/flags.h"

struct parsed {
	enum stls_err err;
	enum stls_flags_action action;
	struct stls_config cfg;
	char *out; /* what went to the out FILE */
	char *err_text;
};

static struct parsed result;

static void parsed_free(struct parsed *p)
{
	free(p->out);
	free(p->err_text);
	p->out = p->err_text = NULL;
}

static struct parsed *parse_argv(int argc, char **argv)
{
	parsed_free(&result);
	size_t out_len, err_len;
	FILE *out = open_memstream(&result.out, &out_len);
	FILE *err = open_memstream(&result.err_text, &err_len);
	cr_assert(out && err);
	result.action = (enum stls_flags_action)99;
	result.err = stls_flags_parse(&result.cfg, &result.action, argc, argv, out, err);
	fclose(out);
	fclose(err);
	return &result;
}

#define PARSE(...) parse_argv((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)), (char *[]){ __VA_ARGS__ })

static unsigned count_lines(const char *s)
{
	unsigned n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* The parse failed with one line on err naming the flag (or the argument), and nothing on out. */
static void expect_usage(const struct parsed *p, const char *name, const char *why)
{
	cr_assert_eq(p->err, STLS_ERR_USAGE, "%s: %s, expected ERR_USAGE", why, stls_err_str(p->err));
	cr_assert_eq(count_lines(p->err_text), 1, "%s: %u lines on err: \"%s\"", why, count_lines(p->err_text),
		     p->err_text);
	size_t len = strlen(p->err_text);
	cr_assert(len > 0 && p->err_text[len - 1] == '\n', "%s: the line ends the output", why);
	cr_assert_not_null(strstr(p->err_text, name), "%s: \"%s\" does not name %s", why, p->err_text, name);
	cr_assert_str_eq(p->out, "", "%s: nothing on out", why);
}

static void expect_ok(const struct parsed *p, const char *why)
{
	cr_assert_eq(p->err, STLS_OK, "%s: %s (%s)", why, stls_err_str(p->err), p->err_text);
	cr_assert_str_eq(p->err_text, "", "%s: nothing on err", why);
	cr_assert_eq(p->action, STLS_FLAGS_RUN, "%s", why);
}

static const struct sockaddr_in *sin_of(const struct stls_addr *a)
{
	return (const struct sockaddr_in *)&a->ss;
}

static const struct sockaddr_in6 *sin6_of(const struct stls_addr *a)
{
	return (const struct sockaddr_in6 *)&a->ss;
}

/* Writes text to a fresh temporary file; returns its path (static storage, one at a time). */
static const char *temp_file(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/stls-flags-test-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp");
	size_t len = strlen(text);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void cleanup(void)
{
	parsed_free(&result);
}

TestSuite(flags, .fini = cleanup);

Test(flags, defaults)
{
	struct parsed *p = parse_argv(0, (char *[]){ NULL });
	expect_ok(p, "no flags");
	cr_assert_str_eq(p->out, "");
	const struct stls_config *c = &p->cfg;
	cr_assert_eq(c->num_listen, 1);
	cr_assert_str_eq(c->listen[0].text, "0.0.0.0:25");
	cr_assert_eq(c->listen[0].ss.ss_family, AF_INET);
	cr_assert_eq(ntohs(sin_of(&c->listen[0])->sin_port), 25);
	cr_assert_eq(sin_of(&c->listen[0])->sin_addr.s_addr, htonl(INADDR_ANY));
	cr_assert_eq(c->listen[0].len, sizeof(struct sockaddr_in));
	cr_assert_str_eq(c->backend.host, "127.0.0.1");
	cr_assert_eq(c->backend.port, 2626);
	cr_assert_str_eq(c->backend.text, "127.0.0.1:2626");
	cr_assert_gt(strlen(c->hostname), 0, "a hostname is always set");
	cr_assert_geq(c->workers, 1, "0 workers resolves to the CPU count");
	cr_assert_leq(c->workers, STLS_MAX_WORKERS);
	cr_assert_not(c->no_pin);
	cr_assert_not(c->check);
	cr_assert_str_eq(c->log_path, "-");
	cr_assert_eq(c->max_sessions, 10000);
	cr_assert_eq(c->max_command_line, 512);
	cr_assert_eq(c->max_reply_line, 512);
	cr_assert_eq(c->max_text_line, 1000);
	cr_assert_eq(c->max_errors, 10);
	cr_assert_eq(c->max_pipeline, 100);
	cr_assert_eq(c->command_timeout_ms, 300000);
	cr_assert_eq(c->data_timeout_ms, 180000);
	cr_assert_eq(c->backend_connect_timeout_ms, 30000);
	cr_assert_eq(c->backend_reply_timeout_ms, 600000);
	cr_assert_eq(c->shutdown_grace_ms, 30000);
	cr_assert_eq(c->backend_probe_interval_ms, 60000);
	cr_assert_eq(c->recv_buffers, 512);
	cr_assert_eq(c->recv_buffer_size, 16384);
	cr_assert_eq(c->relay_buffer, 262144);
}

Test(flags, bool_flags)
{
	struct parsed *p = PARSE("--no-pin", "--check");
	expect_ok(p, "--no-pin --check");
	cr_assert(p->cfg.no_pin);
	cr_assert(p->cfg.check);
}

Test(flags, number_flags)
{
	struct parsed *p = PARSE("--workers", "4", "--max-sessions", "20", "--max-command-line", "1000",
				 "--max-text-line", "0", "--recv-buffers", "1024");
	expect_ok(p, "numbers");
	cr_assert_eq(p->cfg.workers, 4);
	cr_assert_eq(p->cfg.max_sessions, 20);
	cr_assert_eq(p->cfg.max_command_line, 1000);
	cr_assert_eq(p->cfg.max_text_line, 0, "0 = no limit");
	cr_assert_eq(p->cfg.recv_buffers, 1024);

	p = PARSE("--workers", "256", "--max-command-line", "512");
	expect_ok(p, "bounds");
	cr_assert_eq(p->cfg.workers, 256, "the maximum is accepted");
	cr_assert_eq(p->cfg.max_command_line, 512, "the minimum is accepted");
}

Test(flags, durations)
{
	static const struct {
		const char *v;
		uint32_t ms;
	} cases[] = {
		{ "30", 30000 },   { "30s", 30000 },	{ "5m", 300000 },
		{ "1h", 3600000 }, { "24h", 86400000 }, { "1", 1000 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct parsed *p = PARSE("--command-timeout", (char *)cases[i].v);
		expect_ok(p, cases[i].v);
		cr_assert_eq(p->cfg.command_timeout_ms, cases[i].ms, "%s: %u ms", cases[i].v,
			     p->cfg.command_timeout_ms);
	}
	struct parsed *p = PARSE("--shutdown-grace", "0", "--data-timeout", "2m", "--backend-reply-timeout", "10m",
				 "--backend-connect-timeout", "1h", "--backend-probe-interval", "90s");
	expect_ok(p, "other durations");
	cr_assert_eq(p->cfg.shutdown_grace_ms, 0, "0 is allowed for the grace period");
	cr_assert_eq(p->cfg.data_timeout_ms, 120000);
	cr_assert_eq(p->cfg.backend_reply_timeout_ms, 600000);
	cr_assert_eq(p->cfg.backend_connect_timeout_ms, 3600000);
	cr_assert_eq(p->cfg.backend_probe_interval_ms, 90000);
}

Test(flags, string_and_hostname)
{
	struct parsed *p = PARSE("--log", "/var/log/starttlsd.log", "--hostname", "mx-1.example.org");
	expect_ok(p, "strings");
	cr_assert_str_eq(p->cfg.log_path, "/var/log/starttlsd.log");
	cr_assert_str_eq(p->cfg.hostname, "mx-1.example.org");
}

Test(flags, backend)
{
	struct parsed *p = PARSE("--backend", "legacy.example:2525");
	expect_ok(p, "host name");
	cr_assert_str_eq(p->cfg.backend.host, "legacy.example");
	cr_assert_eq(p->cfg.backend.port, 2525);
	cr_assert_str_eq(p->cfg.backend.text, "legacy.example:2525");

	p = PARSE("--backend", "[::1]:2626");
	expect_ok(p, "IPv6");
	cr_assert_str_eq(p->cfg.backend.host, "::1", "brackets removed");
	cr_assert_eq(p->cfg.backend.port, 2626);
}

Test(flags, name_equals_value)
{
	struct parsed *p = PARSE("--workers=3", "--command-timeout=5m", "--log=-", "--hostname=mx.example",
				 "--listen=127.0.0.1:2525", "--backend=10.0.0.1:25");
	expect_ok(p, "--name=value");
	cr_assert_eq(p->cfg.workers, 3);
	cr_assert_eq(p->cfg.command_timeout_ms, 300000);
	cr_assert_str_eq(p->cfg.hostname, "mx.example");
	cr_assert_eq(p->cfg.num_listen, 1);
	cr_assert_str_eq(p->cfg.listen[0].text, "127.0.0.1:2525");
	cr_assert_str_eq(p->cfg.backend.host, "10.0.0.1");
	cr_assert_eq(p->cfg.backend.port, 25);

	p = PARSE("--log=a=b");
	expect_ok(p, "a value holding '='");
	cr_assert_str_eq(p->cfg.log_path, "a=b");
}

Test(flags, later_flags_win)
{
	struct parsed *p = PARSE("--workers", "3", "--workers", "5");
	expect_ok(p, "twice");
	cr_assert_eq(p->cfg.workers, 5);
}

Test(flags, listen_is_repeatable_and_replaces_the_default)
{
	struct parsed *p = PARSE("--listen", "127.0.0.1:2525", "--listen", "[::1]:25", "--listen", "*:587");
	expect_ok(p, "three listeners");
	const struct stls_config *c = &p->cfg;
	cr_assert_eq(c->num_listen, 3, "the default 0.0.0.0:25 is replaced, not kept");
	cr_assert_str_eq(c->listen[0].text, "127.0.0.1:2525");
	cr_assert_eq(c->listen[0].ss.ss_family, AF_INET);
	cr_assert_eq(ntohs(sin_of(&c->listen[0])->sin_port), 2525);
	cr_assert_eq(sin_of(&c->listen[0])->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

	cr_assert_str_eq(c->listen[1].text, "[::1]:25");
	cr_assert_eq(c->listen[1].ss.ss_family, AF_INET6);
	cr_assert_eq(c->listen[1].len, sizeof(struct sockaddr_in6));
	cr_assert_eq(ntohs(sin6_of(&c->listen[1])->sin6_port), 25);
	cr_assert(memcmp(&sin6_of(&c->listen[1])->sin6_addr, &in6addr_loopback, sizeof(struct in6_addr)) == 0, "::1");

	cr_assert_eq(c->listen[2].ss.ss_family, AF_INET, "'*' is the IPv4 wildcard");
	cr_assert_eq(sin_of(&c->listen[2])->sin_addr.s_addr, htonl(INADDR_ANY));
	cr_assert_eq(ntohs(sin_of(&c->listen[2])->sin_port), 587);
}

Test(flags, listen_at_most_sixteen)
{
	char *argv[2 * (STLS_MAX_LISTEN + 1)];
	static char addrs[STLS_MAX_LISTEN + 1][32];
	for (int i = 0; i <= STLS_MAX_LISTEN; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", 2500 + i);
		argv[2 * i] = "--listen";
		argv[2 * i + 1] = addrs[i];
	}
	struct parsed *p = parse_argv(2 * STLS_MAX_LISTEN, argv);
	expect_ok(p, "16 listeners");
	cr_assert_eq(p->cfg.num_listen, STLS_MAX_LISTEN);
	cr_assert_str_eq(p->cfg.listen[15].text, "127.0.0.1:2515");
	p = parse_argv(2 * (STLS_MAX_LISTEN + 1), argv);
	expect_usage(p, "--listen", "17 listeners");
}

Test(flags, bad_values)
{
	static const struct {
		const char *args[3];
		const char *names; /* what the error line must name */
	} cases[] = {
		{ { "--workers", "abc" }, "--workers" },
		{ { "--workers", "" }, "--workers" },
		{ { "--workers", "257" }, "--workers" },
		{ { "--workers", "-1" }, "--workers" },
		{ { "--workers", "4x" }, "--workers" },
		{ { "--workers", "99999999999999999999999" }, "--workers" },
		{ { "--max-sessions", "0" }, "--max-sessions" },
		{ { "--max-command-line", "511" }, "--max-command-line" },
		{ { "--max-errors=0" }, "--max-errors" },
		{ { "--command-timeout", "0" }, "--command-timeout" },
		{ { "--command-timeout", "25h" }, "--command-timeout" },
		{ { "--command-timeout", "5x" }, "--command-timeout" },
		{ { "--command-timeout", "5ms" }, "--command-timeout" },
		{ { "--command-timeout", "-5" }, "--command-timeout" },
		{ { "--command-timeout", "" }, "--command-timeout" },
		{ { "--command-timeout", "s" }, "--command-timeout" },
		{ { "--backend-connect-timeout", "2h" }, "--backend-connect-timeout" },
		{ { "--hostname", "bad_name" }, "--hostname" },
		{ { "--hostname", "" }, "--hostname" },
		{ { "--hostname", "-lead.example" }, "--hostname" },
		{ { "--log", "" }, "--log" },
		{ { "--listen", "localhost:25" }, "--listen" },
		{ { "--listen", "1.2.3.4" }, "--listen" },
		{ { "--listen", "::1:25" }, "--listen" },
		{ { "--listen", "[::1]25" }, "--listen" },
		{ { "--listen", "[::1:25" }, "--listen" },
		{ { "--listen", "1.2.3.4:0" }, "--listen" },
		{ { "--listen", "1.2.3.4:65536" }, "--listen" },
		{ { "--listen", "1.2.3.4:" }, "--listen" },
		{ { "--listen", ":25" }, "--listen" },
		{ { "--listen=" }, "--listen" },
		{ { "--backend", "nohost" }, "--backend" },
		{ { "--backend", "host:port" }, "--backend" },
		{ { "--no-pin=yes" }, "--no-pin" },
		{ { "--workers" }, "--workers" },
		{ { "--bogus" }, "--bogus" },
		{ { "--bogus=1" }, "--bogus" },
		{ { "--recv-buffers", "100" }, "--recv-buffers" },
		{ { "--listen", "127.0.0.1:25", "--workers" }, "--workers" },
		{ { "stray" }, "stray" },
		{ { "-w" }, "-w" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[3];
		int argc = 0;
		while (argc < 3 && cases[i].args[argc]) {
			argv[argc] = (char *)cases[i].args[argc];
			argc++;
		}
		char why[128];
		snprintf(why, sizeof(why), "%s %s", cases[i].args[0], argc > 1 ? cases[i].args[1] : "");
		expect_usage(parse_argv(argc, argv), cases[i].names, why);
	}
}

Test(flags, error_stops_at_the_first_bad_flag)
{
	struct parsed *p = PARSE("--workers", "abc", "--max-sessions", "0");
	expect_usage(p, "--workers", "two bad flags");
	cr_assert_null(strstr(p->err_text, "--max-sessions"), "only the first is reported");
}

Test(flags, at_file_with_comments)
{
	const char *path = temp_file("# starttlsd settings\n"
				     "\n"
				     "--workers 3   # three threads\n"
				     "   --listen 127.0.0.1:2525\n"
				     "--listen [::1]:2525\n"
				     "\t--command-timeout=5m\n"
				     "--no-pin\n"
				     "# --max-sessions 1\n"
				     "--hostname mx.example\r\n");
	char arg[80];
	snprintf(arg, sizeof(arg), "@%s", path);
	struct parsed *p = PARSE(arg);
	unlink(path);
	expect_ok(p, "@FILE");
	cr_assert_eq(p->cfg.workers, 3);
	cr_assert_eq(p->cfg.num_listen, 2);
	cr_assert_str_eq(p->cfg.listen[0].text, "127.0.0.1:2525");
	cr_assert_str_eq(p->cfg.listen[1].text, "[::1]:2525");
	cr_assert_eq(p->cfg.listen[1].ss.ss_family, AF_INET6);
	cr_assert_eq(p->cfg.command_timeout_ms, 300000);
	cr_assert(p->cfg.no_pin);
	cr_assert_eq(p->cfg.max_sessions, 10000, "a commented-out flag is ignored");
	cr_assert_str_eq(p->cfg.hostname, "mx.example", "CRLF line ends are fine");
}

Test(flags, at_file_and_argv_in_order)
{
	const char *path = temp_file("--workers 3\n--listen 127.0.0.1:2525\n");
	char arg[80];
	snprintf(arg, sizeof(arg), "@%s", path);
	struct parsed *p = PARSE("--workers", "7", arg, "--listen", "127.0.0.1:2526", "--max-errors", "4");
	unlink(path);
	expect_ok(p, "@FILE between flags");
	cr_assert_eq(p->cfg.workers, 3, "the file comes after --workers 7");
	cr_assert_eq(p->cfg.num_listen, 2, "listeners from the file and argv add up");
	cr_assert_str_eq(p->cfg.listen[1].text, "127.0.0.1:2526");
	cr_assert_eq(p->cfg.max_errors, 4);
}

Test(flags, at_file_errors)
{
	struct parsed *p = PARSE("@/nonexistent/stls-flags.conf");
	expect_usage(p, "/nonexistent/stls-flags.conf", "missing file");

	const char *path = temp_file("--workers 3\n--listen 127.0.0.1:25 extra\n");
	char arg[80];
	snprintf(arg, sizeof(arg), "@%s", path);
	p = PARSE(arg);
	expect_usage(p, path, "three words on a line");
	unlink(path);

	path = temp_file("# ok\n--workers lots\n");
	snprintf(arg, sizeof(arg), "@%s", path);
	p = PARSE(arg);
	expect_usage(p, "--workers", "a bad value in a file");
	unlink(path);

	/* A file that includes itself stops instead of recursing for ever. */
	static char self[128];
	path = temp_file("");
	snprintf(self, sizeof(self), "@%s\n", path);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(self, f);
	fclose(f);
	snprintf(arg, sizeof(arg), "@%s", path);
	p = PARSE(arg);
	expect_usage(p, path, "self-inclusion");
	unlink(path);
}

Test(flags, help)
{
	struct parsed *p = PARSE("--help");
	cr_assert_eq(p->err, STLS_OK, "%s", stls_err_str(p->err));
	cr_assert_eq(p->action, STLS_FLAGS_HELP);
	cr_assert_str_eq(p->err_text, "");
	cr_assert_not_null(strstr(p->out, "Usage: starttlsd"), "usage: %s", p->out);
	static const char *const names[] = { "--listen",	  "--backend",	    "--hostname",
					     "--workers",	  "--no-pin",	    "--max-sessions",
					     "--command-timeout", "--recv-buffers", "--log",
					     "--check",		  "--help",	    "--version" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_assert_not_null(strstr(p->out, names[i]), "--help does not mention %s", names[i]);
	cr_assert_not_null(strstr(p->out, "[0.0.0.0:25]"), "defaults are shown");

	char *usage = NULL;
	size_t len;
	FILE *f = open_memstream(&usage, &len);
	stls_flags_usage(f);
	fclose(f);
	cr_assert_str_eq(p->out, usage, "--help prints the usage text");
	free(usage);
}

Test(flags, version)
{
	struct parsed *p = PARSE("--workers", "2", "--version");
	cr_assert_eq(p->err, STLS_OK, "%s", stls_err_str(p->err));
	cr_assert_eq(p->action, STLS_FLAGS_VERSION);
	cr_assert_str_eq(p->out, "starttlsd " STLS_VERSION "\n");
	cr_assert_str_eq(p->err_text, "");
}

Test(flags, parse_hostport)
{
	struct stls_hostport hp;
	cr_assert_eq(stls_flags_parse_hostport(&hp, "mx.example:25"), STLS_OK);
	cr_assert_str_eq(hp.host, "mx.example");
	cr_assert_eq(hp.port, 25);
	cr_assert_str_eq(hp.text, "mx.example:25");
	cr_assert_eq(stls_flags_parse_hostport(&hp, "[2001:db8::1]:65535"), STLS_OK);
	cr_assert_str_eq(hp.host, "2001:db8::1");
	cr_assert_eq(hp.port, 65535);
	static const char *const bad[] = { "",	    "mx",     "mx:",   ":25",	"mx:0",	   "mx:65536",
					   "mx:2x", "::1:25", "[::1]", "[]:25", "[::1]x25" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(stls_flags_parse_hostport(&hp, bad[i]), STLS_ERR_USAGE, "\"%s\" accepted", bad[i]);
}

Test(flags, parse_addr)
{
	struct stls_addr a;
	cr_assert_eq(stls_flags_parse_addr(&a, "[::1]:25"), STLS_OK);
	cr_assert_eq(a.ss.ss_family, AF_INET6);
	cr_assert_eq(ntohs(sin6_of(&a)->sin6_port), 25);
	cr_assert_str_eq(a.text, "[::1]:25");
	cr_assert_eq(stls_flags_parse_addr(&a, "[::]:2525"), STLS_OK);
	cr_assert_eq(a.ss.ss_family, AF_INET6);
	cr_assert(memcmp(&sin6_of(&a)->sin6_addr, &in6addr_any, sizeof(struct in6_addr)) == 0);
	cr_assert_eq(stls_flags_parse_addr(&a, "192.0.2.7:25"), STLS_OK);
	cr_assert_eq(a.ss.ss_family, AF_INET);
	cr_assert_eq(sin_of(&a)->sin_addr.s_addr, inet_addr("192.0.2.7"));
	cr_assert_eq(stls_flags_parse_addr(&a, "mx.example:25"), STLS_ERR_USAGE, "names are not resolved");
	cr_assert_eq(stls_flags_parse_addr(&a, "[mx.example]:25"), STLS_ERR_USAGE);
	cr_assert_eq(stls_flags_parse_addr(&a, "300.1.1.1:25"), STLS_ERR_USAGE);
}

Test(flags, print_round_trips)
{
	struct parsed *p = PARSE("--listen", "127.0.0.1:2525", "--listen", "[::1]:2525", "--backend", "[::1]:2626",
				 "--hostname", "mx.example", "--workers", "2", "--no-pin", "--command-timeout", "5m",
				 "--max-text-line", "0", "--log", "/tmp/x.log");
	expect_ok(p, "first parse");
	char *printed = NULL;
	size_t len;
	FILE *f = open_memstream(&printed, &len);
	stls_flags_print(&p->cfg, f);
	fclose(f);
	cr_assert_not_null(strstr(printed, "--listen 127.0.0.1:2525\n--listen [::1]:2525\n"), "%s", printed);
	cr_assert_not_null(strstr(printed, "--command-timeout 300\n"), "durations in seconds: %s", printed);
	cr_assert_not_null(strstr(printed, "--no-pin\n"), "%s", printed);
	cr_assert_null(strstr(printed, "--check"), "a false bool is not printed: %s", printed);

	/* What --check prints is itself a valid @FILE giving the same settings. */
	const char *path = temp_file(printed);
	char arg[80];
	snprintf(arg, sizeof(arg), "@%s", path);
	p = PARSE(arg);
	unlink(path);
	expect_ok(p, "the printed settings as @FILE");
	char *again = NULL;
	f = open_memstream(&again, &len);
	stls_flags_print(&p->cfg, f);
	fclose(f);
	cr_assert_str_eq(again, printed);
	free(again);
	free(printed);
}

Test(flags, how_the_backend_learns_the_client)
{
	struct parsed *p = PARSE("--backend-proxy-protocol", "v2", "--accept-proxy-protocol", "10.0.0.0/8",
				 "--accept-proxy-protocol", "2001:db8::/32", "--sender-groups", "/etc/groups");
	expect_ok(p, "PROXY v2, two balancer networks");
	cr_assert_eq(p->cfg.backend_proxy_protocol, 2);
	cr_assert_eq(p->cfg.num_accept_proxy, 2);
	cr_assert_eq(p->cfg.accept_proxy[1].prefix, 32);
	cr_assert_str_eq(p->cfg.sender_groups_path, "/etc/groups");
	cr_assert_eq(p->cfg.proxy_header_timeout_ms, 5000, "the default header timeout");
	cr_assert_eq(p->cfg.max_per_ip, 0, "no per-address limit by default");

	p = PARSE("--backend-xclient");
	expect_ok(p, "XCLIENT");
	cr_assert(p->cfg.backend_xclient);
	cr_assert_eq(p->cfg.backend_proxy_protocol, 0);

	expect_usage(PARSE("--backend-xclient", "--backend-proxy-protocol", "v1"), "backend-xclient",
		     "XCLIENT and a PROXY header together");
	expect_usage(PARSE("--backend-proxy-protocol", "v3"), "backend-proxy-protocol", "unknown version");
	expect_usage(PARSE("--accept-proxy-protocol", "10.0.0.0/33"), "accept-proxy-protocol", "bad network");
}
