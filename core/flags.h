/* The command line.
 *
 * Every setting is a long flag "--name value" (design.md's contract); "@FILE" reads more flags
 * from FILE, one a line ("--name value"), with '#' comments. A bad flag or value is reported in
 * one line naming the flag. The table of flags is also what --help prints. */
#pragma once

#include <stdio.h>

#include "core/config.h"
#include "core/err.h"

enum stls_flags_action {
	STLS_FLAGS_RUN = 0, /* start the daemon (or --check) */
	STLS_FLAGS_HELP,    /* --help was printed */
	STLS_FLAGS_VERSION, /* --version was printed */
	STLS_FLAGS__COUNT,
};

/* Fills *out_cfg with defaults, then with argv. On a bad flag prints one line to err and returns
 * STLS_ERR_USAGE (the daemon exits 2). --help and --version print to out and set *out_action. */
[[nodiscard]] enum stls_err stls_flags_parse(struct stls_config *out_cfg, enum stls_flags_action *out_action, int argc,
					     char **argv, FILE *out, FILE *err);

/* Prints the usage text (the same text --help prints). */
void stls_flags_usage(FILE *out);

/* Prints the effective settings, one "--name value" a line (what --check shows). */
void stls_flags_print(const struct stls_config *cfg, FILE *out);

/* Parses "host:port", "[v6]:port" into *out. Returns STLS_OK or STLS_ERR_USAGE. */
[[nodiscard]] enum stls_err stls_flags_parse_hostport(struct stls_hostport *out, const char *text);

/* Parses a network "10.0.0.0/8", "2001:db8::/32" or a single address into *out. Returns STLS_OK
 * or STLS_ERR_USAGE. */
[[nodiscard]] enum stls_err stls_flags_parse_cidr(struct stls_cidr *out, const char *text);

/* Parses a numeric listen address ("127.0.0.1:25", "[::]:25", "*:25") into *out. Returns STLS_OK
 * or STLS_ERR_USAGE. */
[[nodiscard]] enum stls_err stls_flags_parse_addr(struct stls_addr *out, const char *text);

/* The daemon's version string. */
#define STLS_VERSION "0.1.0"
