/* Test support: a blocking SMTP client for exchanges no real client would make (exact bytes,
 * splits, injections). Replies are read with the product's own reply parser. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_reply.h"

struct stls_smtp_client {
	int fd;
	int timeout_ms;
	size_t len;
	struct stls_smtp_reply_parser rp;
	char last[8192]; /* the last reply, NUL-terminated */
	uint8_t buf[65536];
};

/* Connects to 127.0.0.1:port. */
bool stls_smtp_client_connect(struct stls_smtp_client *c, uint16_t port, int timeout_ms);

/* Connects to to:port (IPv4 text) from the address from (NULL: any). */
bool stls_smtp_client_connect_addr(struct stls_smtp_client *c, const char *from, const char *to, uint16_t port,
				   int timeout_ms);

/* Sends bytes exactly as given. */
bool stls_smtp_client_send(struct stls_smtp_client *c, const void *data, size_t len);

/* Sends a C string exactly as given. */
bool stls_smtp_client_sends(struct stls_smtp_client *c, const char *text);

/* Reads the next complete reply; returns its code, or -1 on timeout, EOF or garbage.
 * The text is in c->last. */
int stls_smtp_client_reply(struct stls_smtp_client *c);

/* True if the server closes the connection within the timeout (after any replies still
 * unread, which are dropped). */
bool stls_smtp_client_wait_closed(struct stls_smtp_client *c);

void stls_smtp_client_close(struct stls_smtp_client *c);
