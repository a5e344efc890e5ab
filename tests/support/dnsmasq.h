/* Test support: a real DNS server (dnsmasq, from Debian) on loopback that answers only from the
 * records a test gives it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tests/support/proc.h"

struct stls_dnsmasq {
	struct stls_proc proc;
	uint16_t port; /* on 127.0.0.1, UDP and TCP */
	char log[192];
};

/* Starts dnsmasq in dir with records, dnsmasq options such as "--host-record=mx.a.test,127.0.0.5"
 * or "--mx-host=a.test,mx.a.test,10" (NULL-terminated). It reads no configuration, /etc/hosts or
 * upstream servers, and answers for the whole .test zone itself: a name without a record there
 * gets NXDOMAIN. Waits until it listens. */
bool stls_dnsmasq_start(struct stls_dnsmasq *d, const char *dir, const char *const records[]);

void stls_dnsmasq_stop(struct stls_dnsmasq *d);
