/* starttls-cert: make, sign, install, import, export and check certificates the way the appliance
 * does (spec S1-S9). Every check is the daemon's own (tls/cert.c), so what this tool accepts the
 * daemon accepts, and what it reports is what the daemon logs at start-up and on reload. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "tls/cert.h"
#include "tls/cert_write.h"
#include "tls/csr.h"
#include "tls/selfsign.h"

enum { EXIT_PROBLEM = 1, EXIT_USAGE = 2, MAX_NAMES = 32, PASSWORD_MAX = 1024 };

struct opts {
	const char *cn, *key_type, *days;
	const char *sans[MAX_NAMES];
	size_t num_sans;
	const char *key, *new_key, *cert, *chain, *ca_file, *hostname;
	const char *mx[MAX_NAMES];
	size_t num_mx;
	const char *out_key, *out_cert, *out_chain, *out;
	const char *password_file, *password_env;
	const char *file; /* import-p12's operand */
	bool force;
};

struct flag {
	const char *name;
	size_t offset;	     /* of the const char * (or, for lists, the array) in struct opts */
	size_t count_offset; /* lists only: of the count */
	bool is_list, is_bool;
};

#define STR(f, field)                                                                                                  \
	{                                                                                                              \
		f, offsetof(struct opts, field), 0, false, false                                                       \
	}
#define LIST(f, field)                                                                                                 \
	{                                                                                                              \
		f, offsetof(struct opts, field), offsetof(struct opts, num_##field), true, false                       \
	}

static const struct flag k_flags[] = {
	STR("--cn", cn),
	LIST("--san", sans),
	STR("--key-type", key_type),
	STR("--days", days),
	STR("--key", key),
	STR("--new-key", new_key),
	STR("--cert", cert),
	STR("--chain", chain),
	STR("--ca-file", ca_file),
	STR("--hostname", hostname),
	LIST("--mx", mx),
	STR("--out-key", out_key),
	STR("--out-cert", out_cert),
	STR("--out-chain", out_chain),
	STR("--out", out),
	STR("--password-file", password_file),
	STR("--password-env", password_env),
	{ "--force", offsetof(struct opts, force), 0, false, true },
};

struct command {
	const char *name;
	int (*run)(const struct opts *o);
	const char *flags; /* the flags it takes, each followed by a space */
	bool operand;	   /* takes one FILE operand */
	const char *summary;
	const char *help;
};

static void print_report(const struct stls_cert_report *r)
{
	static const char *const marks[STLS_CERT__COUNT] = {
		[STLS_CERT_INFO] = "ok",
		[STLS_CERT_WARNING] = "WARNING",
		[STLS_CERT_ERROR] = "ERROR",
	};
	for (unsigned i = 0; i < r->num; i++)
		printf("  %-7s %s\n", marks[r->findings[i].severity], r->findings[i].text);
	unsigned hidden = r->num_errors + r->num_warnings > r->num ? r->num_errors + r->num_warnings - r->num : 0;
	if (hidden)
		printf("  (and %u more findings)\n", hidden);
}

static void print_summary(const struct stls_cert_report *r)
{
	printf("%u error%s, %u warning%s\n", r->num_errors, r->num_errors == 1 ? "" : "s", r->num_warnings,
	       r->num_warnings == 1 ? "" : "s");
}

static int fail(const char *fmt, const char *what)
{
	fprintf(stderr, "starttls-cert: ");
	fprintf(stderr, fmt, what);
	fputc('\n', stderr);
	return EXIT_PROBLEM;
}

static int usage(const char *cmd, const char *what)
{
	fprintf(stderr, "starttls-cert %s: %s (see starttls-cert %s --help)\n", cmd, what, cmd);
	return EXIT_USAGE;
}

/* Every output is checked before anything is made, so a refused run leaves no file behind. */
static bool outputs_writable(const char *const paths[], size_t num, bool force)
{
	char err[512];
	bool ok = true;
	for (size_t i = 0; i < num; i++) {
		if (paths[i] && stls_cert_write_check(paths[i], force, err, sizeof(err)) != STLS_OK) {
			fprintf(stderr, "starttls-cert: %s\n", err);
			ok = false;
		}
		for (size_t j = 0; j < i && paths[i]; j++) {
			if (paths[j] && strcmp(paths[i], paths[j]) == 0) {
				fprintf(stderr, "starttls-cert: %s is named for two outputs\n", paths[i]);
				ok = false;
			}
		}
	}
	return ok;
}

/* The password from --password-file (its first line) or the variable --password-env names: never
 * from the command line, where every user of the machine can read it in the process list. Returns
 * 0, or the exit status after saying why not. */
static int read_password(const char *cmd, const struct opts *o, char *out, size_t out_len)
{
	char err[512];
	if (!!o->password_file == !!o->password_env)
		return usage(cmd, "give the password with exactly one of --password-file FILE or --password-env NAME");
	if (o->password_file) {
		if (stls_cert_read_password(out, out_len, o->password_file, err, sizeof(err)) != STLS_OK)
			return fail("%s", err);
	} else {
		const char *v = getenv(o->password_env);
		if (!v)
			return fail("the environment variable %s is not set", o->password_env);
		if (strlen(v) >= out_len)
			return fail("the password in %s is too long", o->password_env);
		strcpy(out, v);
	}
	if (!out[0])
		return fail("%s", "the password is empty");
	return 0;
}

/* The leaf's common name, for a PKCS#12 friendly name. */
static void common_name(X509 *cert, char *out, size_t out_len)
{
	out[0] = '\0';
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)out_len) < 0)
		out[0] = '\0';
}

/* Runs the daemon's checks on bundle (which they put in order) and prints them. Returns true when
 * nothing would make the daemon refuse it. */
static bool check_bundle(struct stls_cert_bundle *b, const char *hostname, struct stls_cert_report *r)
{
	enum stls_err ret = stls_cert_check(b, r);
	if (b->leaf)
		stls_cert_check_names(r, b->leaf, STLS_CERT_WARNING, hostname, NULL, 0);
	char desc[512];
	stls_cert_describe(b, desc, sizeof(desc));
	printf("certificate %s\n", desc);
	print_report(r);
	return ret == STLS_OK;
}

static int cmd_selfsign(const struct opts *o)
{
	enum stls_key_type type = STLS_KEY_RSA2048;
	if (!o->cn || !o->out_key || !o->out_cert)
		return usage("selfsign", "--cn, --out-key and --out-cert are required");
	if (o->key_type && stls_key_type_parse(&type, o->key_type) != STLS_OK)
		return usage("selfsign", "--key-type: rsa2048, rsa3072, rsa4096, ecdsa-p256 or ecdsa-p384");
	char *end = NULL;
	long days = o->days ? strtol(o->days, &end, 10) : 365;
	if (o->days && (*end || days < 1 || days > 3650))
		return usage("selfsign", "--days: a number of days from 1 to 3650");
	const char *outs[] = { o->out_key, o->out_cert };
	if (!outputs_writable(outs, 2, o->force))
		return EXIT_PROBLEM;

	int rc = EXIT_PROBLEM;
	char err[512];
	struct stls_cert_bundle b = { 0 };
	struct stls_cert_report r;
	if (stls_key_generate(&b.key, type) != STLS_OK) {
		fail("cannot generate a %s key", stls_key_type_str(type));
		goto out;
	}
	enum stls_err ret =
		stls_selfsign(&b.leaf, b.key, o->cn, o->sans, o->num_sans, (unsigned)days, err, sizeof(err));
	if (ret != STLS_OK) {
		rc = ret == STLS_ERR_USAGE ? usage("selfsign", err) : fail("%s", err);
		goto out;
	}
	if (!check_bundle(&b, NULL, &r))
		goto out;
	if (stls_cert_write_key(o->out_key, b.key, o->force, err, sizeof(err)) != STLS_OK ||
	    stls_cert_write_certs(o->out_cert, b.leaf, NULL, o->force, err, sizeof(err)) != STLS_OK) {
		fail("%s", err);
		goto out;
	}
	printf("wrote %s (private key, mode 0600) and %s\n"
	       "Peers cannot verify a self-signed certificate: make a request for a CA with\n"
	       "  starttls-cert csr --key %s --cn %s --out REQUEST.csr\n",
	       o->out_key, o->out_cert, o->out_key, o->cn);
	rc = 0;
out:
	stls_cert_bundle_cleanup(&b);
	return rc;
}

static int cmd_csr(const struct opts *o)
{
	enum stls_key_type type = STLS_KEY_RSA2048;
	if (!o->cn || !o->out)
		return usage("csr", "--cn and --out are required");
	if (!!o->key == !!o->new_key)
		return usage("csr", "give exactly one of --key FILE (an existing key) or --new-key FILE");
	if (o->key_type && (!o->new_key || stls_key_type_parse(&type, o->key_type) != STLS_OK))
		return usage("csr",
			     "--key-type goes with --new-key: rsa2048, rsa3072, rsa4096, ecdsa-p256 or ecdsa-p384");
	const char *outs[] = { o->out, o->new_key };
	if (!outputs_writable(outs, 2, o->force))
		return EXIT_PROBLEM;

	int rc = EXIT_PROBLEM;
	char err[512];
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	if (o->key && stls_cert_load_key(&key, o->key, err, sizeof(err)) != STLS_OK) {
		fail("%s", err);
		goto out;
	}
	if (o->new_key && stls_key_generate(&key, type) != STLS_OK) {
		fail("cannot generate a %s key", stls_key_type_str(type));
		goto out;
	}
	enum stls_err ret = stls_csr_new(&req, key, o->cn, o->sans, o->num_sans, err, sizeof(err));
	if (ret != STLS_OK) {
		rc = ret == STLS_ERR_USAGE ? usage("csr", err) : fail("%s", err);
		goto out;
	}
	/* Spec S25: a request only leaves for a key that is safely on disk. */
	if (o->new_key && stls_cert_write_key(o->new_key, key, o->force, err, sizeof(err)) != STLS_OK) {
		fail("%s", err);
		goto out;
	}
	if (stls_cert_write_csr(o->out, req, o->force, err, sizeof(err)) != STLS_OK) {
		fail("%s", err);
		goto out;
	}
	if (o->new_key)
		printf("wrote %s (new %s private key, mode 0600)\n", o->new_key, stls_key_type_str(type));
	printf("wrote %s: a request for CN=%s; send it to the CA (ask for the intermediates too), then\n"
	       "  starttls-cert install --key %s --cert SIGNED.pem [--chain INTERMEDIATES.pem] --out-cert F "
	       "--out-chain F\n",
	       o->out, o->cn, o->key ? o->key : o->new_key);
	rc = 0;
out:
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}

/* Writes a checked bundle as the daemon reads it: the leaf to out_cert, the intermediates (in
 * order) to out_chain, or after the leaf in out_cert when there is no out_chain. */
static bool write_pem_bundle(const struct opts *o, const struct stls_cert_bundle *b, const char *out_key)
{
	char err[512];
	size_t num = sk_X509_num(b->chain);
	bool split = o->out_chain && num > 0;
	if ((out_key && stls_cert_write_key(out_key, b->key, o->force, err, sizeof(err)) != STLS_OK) ||
	    stls_cert_write_certs(o->out_cert, b->leaf, split ? NULL : b->chain, o->force, err, sizeof(err)) !=
		    STLS_OK ||
	    (split && stls_cert_write_certs(o->out_chain, NULL, b->chain, o->force, err, sizeof(err)) != STLS_OK)) {
		fail("%s", err);
		return false;
	}
	if (out_key)
		printf("wrote %s (private key, mode 0600)\n", out_key);
	printf("wrote %s (the certificate%s)\n", o->out_cert, num && !split ? " and its intermediates, in order" : "");
	if (split)
		printf("wrote %s (%zu intermediate%s, in order)\n", o->out_chain, num, num == 1 ? "" : "s");
	else if (o->out_chain)
		printf("no intermediates: %s not written; start starttlsd without --chain\n", o->out_chain);
	return true;
}

static int cmd_install(const struct opts *o)
{
	if (!o->key || !o->cert || !o->out_cert)
		return usage("install", "--key, --cert and --out-cert are required");
	const char *outs[] = { o->out_cert, o->out_chain };
	if (!outputs_writable(outs, 2, o->force))
		return EXIT_PROBLEM;
	int rc = EXIT_PROBLEM;
	char err[512];
	struct stls_cert_bundle b;
	struct stls_cert_report r;
	if (stls_cert_load_pem(&b, o->cert, o->key, o->chain, err, sizeof(err)) != STLS_OK)
		return fail("%s", err);
	if (!check_bundle(&b, o->hostname, &r)) {
		print_summary(&r);
		printf("not installed: starttlsd would refuse this certificate\n");
		goto out;
	}
	if (write_pem_bundle(o, &b, NULL))
		rc = 0;
out:
	stls_cert_bundle_cleanup(&b);
	return rc;
}

static int cmd_import_p12(const struct opts *o)
{
	if (!o->file || !o->out_key || !o->out_cert)
		return usage("import-p12", "FILE, --out-key and --out-cert are required");
	const char *outs[] = { o->out_key, o->out_cert, o->out_chain };
	if (!outputs_writable(outs, 3, o->force))
		return EXIT_PROBLEM;
	char password[PASSWORD_MAX];
	int rc = read_password("import-p12", o, password, sizeof(password));
	if (rc)
		return rc;
	rc = EXIT_PROBLEM;
	char err[512];
	struct stls_cert_bundle b;
	struct stls_cert_report r;
	enum stls_err ret = stls_cert_load_p12(&b, o->file, password, err, sizeof(err));
	OPENSSL_cleanse(password, sizeof(password));
	if (ret != STLS_OK)
		return fail("%s", err);
	if (!check_bundle(&b, o->hostname, &r)) {
		print_summary(&r);
		printf("not imported: starttlsd would refuse this certificate\n");
		goto out;
	}
	if (write_pem_bundle(o, &b, o->out_key))
		rc = 0;
out:
	stls_cert_bundle_cleanup(&b);
	return rc;
}

static int cmd_export_p12(const struct opts *o)
{
	if (!o->key || !o->cert || !o->out)
		return usage("export-p12", "--key, --cert and --out are required");
	const char *outs[] = { o->out };
	if (!outputs_writable(outs, 1, o->force))
		return EXIT_PROBLEM;
	char password[PASSWORD_MAX];
	int rc = read_password("export-p12", o, password, sizeof(password));
	if (rc)
		return rc;
	rc = EXIT_PROBLEM;
	char err[512], name[256];
	struct stls_cert_bundle b = { 0 };
	struct stls_cert_report r;
	if (stls_cert_load_pem(&b, o->cert, o->key, o->chain, err, sizeof(err)) != STLS_OK) {
		fail("%s", err);
		goto out;
	}
	if (!check_bundle(&b, NULL, &r)) {
		print_summary(&r);
		printf("not exported: starttlsd would refuse this certificate\n");
		goto out;
	}
	common_name(b.leaf, name, sizeof(name));
	if (stls_cert_write_p12(o->out, &b, password, name[0] ? name : NULL, o->force, err, sizeof(err)) != STLS_OK) {
		fail("%s", err);
		goto out;
	}
	printf("wrote %s (PKCS#12: key, certificate and %zu intermediate%s; mode 0600)\n", o->out, sk_X509_num(b.chain),
	       sk_X509_num(b.chain) == 1 ? "" : "s");
	rc = 0;
out:
	OPENSSL_cleanse(password, sizeof(password));
	stls_cert_bundle_cleanup(&b);
	return rc;
}

static int cmd_check(const struct opts *o)
{
	if (!o->cert)
		return usage("check", "--cert is required");
	char err[512];
	struct stls_cert_bundle b;
	struct stls_cert_report r;
	if (stls_cert_load_pem(&b, o->cert, o->key, o->chain, err, sizeof(err)) != STLS_OK)
		return fail("%s", err);
	/* stls_cert_check starts a fresh report; the other checks add to it. */
	(void)stls_cert_check(&b, &r);
	if (o->hostname || o->num_mx)
		stls_cert_check_names(&r, b.leaf, STLS_CERT_ERROR, o->hostname, o->mx, o->num_mx);
	else
		stls_cert_report_add(&r, STLS_CERT_WARNING,
				     "no --hostname or --mx: the names peers will check were not compared (spec S4)");
	if (o->ca_file)
		(void)stls_cert_check_trust(&r, &b, o->ca_file, o->num_mx ? o->mx[0] : o->hostname);
	char desc[512];
	stls_cert_describe(&b, desc, sizeof(desc));
	printf("certificate %s\n", desc);
	for (size_t i = 0; i < sk_X509_num(b.chain); i++) {
		stls_cert_name(sk_X509_value(b.chain, i), desc, sizeof(desc));
		printf("  chain %zu: %s\n", i + 1, desc);
	}
	print_report(&r);
	if (!o->key)
		printf("  (no --key: whether the key matches was not checked)\n");
	print_summary(&r);
	int rc = r.num_errors ? EXIT_PROBLEM : 0;
	printf("%s\n", rc ? "FAILED: starttlsd refuses it, or peers will not verify it" : "OK: starttlsd accepts it");
	stls_cert_bundle_cleanup(&b);
	return rc;
}

static const struct command k_commands[] = {
	{ "selfsign", cmd_selfsign, "--cn --san --key-type --days --out-key --out-cert --force ", false,
	  "make a key and a self-signed certificate (spec S4)",
	  "Usage: starttls-cert selfsign --cn NAME [--san NAME]... [--key-type TYPE] [--days N]\n"
	  "                              --out-key FILE --out-cert FILE [--force]\n\n"
	  "Makes a private key and a certificate signed by that key for NAME (subject CN=NAME,\n"
	  "subjectAltName DNS:NAME and each --san), for TLS servers and clients. NAME should be the\n"
	  "listener's --hostname and the MX record's host name (spec S4). Peers cannot verify it:\n"
	  "follow with `csr` for a CA to sign.\n\n"
	  "  --cn NAME          the certificate's name\n"
	  "  --san NAME         another DNS name it covers, repeatable\n"
	  "  --key-type TYPE    rsa2048, rsa3072, rsa4096, ecdsa-p256 or ecdsa-p384 [rsa2048]\n"
	  "  --days N           validity, from 1 to 3650 [365]\n"
	  "  --out-key FILE     the private key (PEM, mode 0600)\n"
	  "  --out-cert FILE    the certificate (PEM)\n"
	  "  --force            replace files that exist\n" },
	{ "csr", cmd_csr, "--cn --san --key --new-key --key-type --out --force ", false,
	  "make a certificate signing request for a CA (spec S4, S6)",
	  "Usage: starttls-cert csr (--key FILE | --new-key FILE [--key-type TYPE]) --cn NAME [--san NAME]...\n"
	  "                         --out FILE [--force]\n\n"
	  "Makes a PKCS#10 request (PEM) for a CA to sign: for an existing key (a self-signed\n"
	  "certificate's, or to renew an expiring one, spec S6) or for a new key, written first.\n\n"
	  "  --key FILE         the existing private key (PEM)\n"
	  "  --new-key FILE     make a new private key and write it here (PEM, mode 0600)\n"
	  "  --key-type TYPE    the new key's type: rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384 [rsa2048]\n"
	  "  --cn NAME          the name to certify (the listener's hostname and MX host, spec S4)\n"
	  "  --san NAME         another DNS name, repeatable\n"
	  "  --out FILE         the request (PEM)\n"
	  "  --force            replace files that exist\n" },
	{ "install", cmd_install, "--key --cert --chain --hostname --out-cert --out-chain --force ", false,
	  "check a CA-signed certificate with its key and write it as starttlsd reads it (spec S5, S9)",
	  "Usage: starttls-cert install --key FILE --cert SIGNED.pem [--chain INTERMEDIATES.pem]\n"
	  "                             --out-cert FILE [--out-chain FILE] [--hostname NAME] [--force]\n\n"
	  "Runs starttlsd's start-up checks on the certificate the CA returned: the key matches, the\n"
	  "certificate and intermediates are valid, each intermediate issued the certificate before it.\n"
	  "Intermediates are put in order (leaf first); duplicates are dropped and reported; an\n"
	  "intermediate that issued nothing in the chain is refused (spec S9). Nothing is written\n"
	  "when starttlsd would refuse the result.\n\n"
	  "  --key FILE         the private key the request was made with\n"
	  "  --cert FILE        the signed certificate (PEM; may hold intermediates after it)\n"
	  "  --chain FILE       intermediates from the CA (PEM)\n"
	  "  --hostname NAME    warn when the certificate does not cover the listener's hostname\n"
	  "  --out-cert FILE    the certificate for --cert (with the intermediates when no --out-chain)\n"
	  "  --out-chain FILE   the intermediates, in order, for --chain\n"
	  "  --force            replace files that exist\n" },
	{ "import-p12", cmd_import_p12,
	  "--password-file --password-env --hostname --out-key --out-cert --out-chain --force ", true,
	  "take key, certificate and chain out of a PKCS#12 file (spec S3)",
	  "Usage: starttls-cert import-p12 FILE (--password-file F | --password-env NAME) [--hostname NAME]\n"
	  "                                --out-key FILE --out-cert FILE [--out-chain FILE] [--force]\n\n"
	  "Opens a password-protected PKCS#12 file (as made by OpenSSL, Windows or another appliance),\n"
	  "runs starttlsd's checks and writes the key, the certificate and its intermediates in order as\n"
	  "PEM. (starttlsd can also read the file itself: --p12 FILE --p12-password-file F.)\n\n"
	  "  --password-file F  a file whose first line is the password\n"
	  "  --password-env N   the environment variable N holds the password\n"
	  "  --hostname NAME    warn when the certificate does not cover the listener's hostname\n"
	  "  --out-key FILE     the private key (PEM, mode 0600)\n"
	  "  --out-cert FILE    the certificate (with the intermediates when no --out-chain)\n"
	  "  --out-chain FILE   the intermediates, in order\n"
	  "  --force            replace files that exist\n\n"
	  "Passwords are never taken on the command line, where other users see them.\n" },
	{ "export-p12", cmd_export_p12, "--key --cert --chain --password-file --password-env --out --force ", false,
	  "write key, certificate and chain as a password-protected PKCS#12 file (spec S8)",
	  "Usage: starttls-cert export-p12 --key FILE --cert FILE [--chain FILE]\n"
	  "                                (--password-file F | --password-env NAME) --out FILE [--force]\n\n"
	  "Checks the key, certificate and intermediates like starttlsd does and writes them, chain in\n"
	  "order, as one PKCS#12 file (mode 0600) for a back-up or another node, as OpenSSL 3 makes them:\n"
	  "key and certificates encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), an HMAC-SHA256\n"
	  "MAC, 200000 iterations each.\n\n"
	  "  --key FILE         the private key (PEM)\n"
	  "  --cert FILE        the certificate (PEM; may hold intermediates after it)\n"
	  "  --chain FILE       more intermediates (PEM)\n"
	  "  --password-file F  a file whose first line is the password\n"
	  "  --password-env N   the environment variable N holds the password\n"
	  "  --out FILE         the PKCS#12 file\n"
	  "  --force            replace a file that exists\n" },
	{ "check", cmd_check, "--cert --chain --key --ca-file --hostname --mx ", false,
	  "report what starttlsd and its peers will make of a certificate (spec S4, S5, S9)",
	  "Usage: starttls-cert check --cert FILE [--chain FILE] [--key FILE] [--ca-file FILE]\n"
	  "                           [--hostname NAME] [--mx NAME]...\n\n"
	  "Reports, one finding a line: whether the key matches; validity (a warning under 30 days);\n"
	  "duplicate intermediates, intermediates out of order, intermediates that belong to no chain;\n"
	  "whether the certificate covers the listener's hostname and each MX host (spec S4: the three\n"
	  "names must agree); and whether a peer that trusts --ca-file verifies the chain (for the\n"
	  "first --mx, else --hostname). Exit status 0 when nothing is an error, 1 otherwise.\n\n"
	  "  --cert FILE        the certificate (PEM; may hold intermediates after it)\n"
	  "  --chain FILE       intermediates (PEM)\n"
	  "  --key FILE         the private key (PEM)\n"
	  "  --ca-file FILE     the roots a peer trusts (PEM)\n"
	  "  --hostname NAME    the listener's hostname (starttlsd --hostname)\n"
	  "  --mx NAME          an MX host name of the domains this listener receives for, repeatable\n" },
};

enum { NUM_COMMANDS = sizeof(k_commands) / sizeof(k_commands[0]) };

static void print_main_help(FILE *fp)
{
	fprintf(fp, "Usage: starttls-cert COMMAND [--flag value]...\n\n"
		    "Certificates for starttlsd, with the daemon's own checks (spec S1-S9).\n\n"
		    "Commands:\n");
	for (size_t i = 0; i < NUM_COMMANDS; i++)
		fprintf(fp, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
	fprintf(fp, "\n`starttls-cert COMMAND --help` describes each. Exit status: 0 done, 1 a problem (reported),\n"
		    "2 a usage error. Keys are written with mode 0600; no file is replaced without --force;\n"
		    "passwords come from --password-file or --password-env, never the command line.\n");
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NUM_COMMANDS; i++) {
		if (strcmp(k_commands[i].name, name) == 0)
			return &k_commands[i];
	}
	return NULL;
}

static bool takes_flag(const struct command *c, const char *flag)
{
	size_t len = strlen(flag);
	for (const char *p = c->flags; (p = strstr(p, flag)) != NULL; p += len) {
		if ((p == c->flags || p[-1] == ' ') && p[len] == ' ')
			return true;
	}
	return false;
}

static int parse(struct opts *o, const struct command *c, int argc, char **argv)
{
	char msg[256];
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			fputs(c->help, stdout);
			exit(0);
		}
		if (strncmp(arg, "--", 2) != 0) {
			if (!c->operand || o->file)
				return snprintf(msg, sizeof(msg), "unexpected argument \"%s\"", arg),
				       usage(c->name, msg);
			o->file = arg;
			continue;
		}
		if (strncmp(arg, "--password", 10) == 0 && !takes_flag(c, arg))
			return usage(c->name, "passwords are never taken on the command line: use --password-file FILE "
					      "or --password-env NAME");
		const struct flag *f = NULL;
		for (size_t j = 0; j < sizeof(k_flags) / sizeof(k_flags[0]) && !f; j++) {
			if (strcmp(k_flags[j].name, arg) == 0)
				f = &k_flags[j];
		}
		if (!f || !takes_flag(c, arg))
			return snprintf(msg, sizeof(msg), "unknown flag %s", arg), usage(c->name, msg);
		if (f->is_bool) {
			*(bool *)((char *)o + f->offset) = true;
			continue;
		}
		if (i + 1 >= argc || argv[i + 1][0] == '\0')
			return snprintf(msg, sizeof(msg), "%s needs a value", arg), usage(c->name, msg);
		const char *value = argv[++i];
		if (f->is_list) {
			size_t *num = (size_t *)((char *)o + f->count_offset);
			if (*num >= MAX_NAMES)
				return snprintf(msg, sizeof(msg), "at most %d %s", MAX_NAMES, arg), usage(c->name, msg);
			((const char **)((char *)o + f->offset))[(*num)++] = value;
		} else {
			const char **slot = (const char **)((char *)o + f->offset);
			if (*slot)
				return snprintf(msg, sizeof(msg), "%s given twice", arg), usage(c->name, msg);
			*slot = value;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_main_help(stderr);
		return EXIT_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
		const struct command *c = argc > 2 ? find_command(argv[2]) : NULL;
		if (c)
			fputs(c->help, stdout);
		else
			print_main_help(stdout);
		return 0;
	}
	const struct command *c = find_command(name);
	if (!c) {
		fprintf(stderr, "starttls-cert: unknown command \"%s\"\n\n", name);
		print_main_help(stderr);
		return EXIT_USAGE;
	}
	struct opts o = { 0 };
	int rc = parse(&o, c, argc - 2, argv + 2);
	if (rc)
		return rc;
	rc = c->run(&o);
	ERR_clear_error();
	return rc;
}
