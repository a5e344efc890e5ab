#include "tests/support/dnsmasq.h"

#include <signal.h>
#include <stdio.h>

enum { MAX_ARGS = 64 };

bool stls_dnsmasq_start(struct stls_dnsmasq *d, const char *dir, const char *const records[])
{
	char port[32], log[256];
	d->port = stls_proc_free_port();
	snprintf(d->log, sizeof(d->log), "%s/dnsmasq.log", dir);
	snprintf(port, sizeof(port), "--port=%u", d->port);
	snprintf(log, sizeof(log), "--log-facility=%s", d->log);
	/* -k: stay in the foreground (so PDEATHSIG and stop work); root keeps root: the test's folder
	 * is all it touches. */
	char *argv[MAX_ARGS] = { "dnsmasq",
				 "-k",
				 "--conf-file=/dev/null",
				 "--no-resolv",
				 "--no-hosts",
				 "--listen-address=127.0.0.1",
				 "--bind-interfaces",
				 port,
				 "--pid-file",
				 "--user=root",
				 "--group=root",
				 "--local=/test/",
				 "--log-queries",
				 log };
	unsigned argc = 14;
	for (unsigned i = 0; records && records[i] && argc < MAX_ARGS - 1; i++)
		argv[argc++] = (char *)records[i];
	argv[argc] = NULL;
	return d->port && stls_proc_spawn(&d->proc, d->log, argv) && stls_proc_wait_port(d->port, 10000);
}

void stls_dnsmasq_stop(struct stls_dnsmasq *d)
{
	stls_proc_stop(&d->proc, SIGTERM, 5000);
}
