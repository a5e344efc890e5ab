/* The daemon's settings, as the command line gave them.
 *
 * Filled once by stls_flags_parse before any thread starts and read-only afterwards, so every
 * thread reads it without synchronisation. What may change while running (the backend's
 * capabilities, later certificates and tables) lives in the snapshot instead (core/snapshot.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* A number flag left to the daemon to choose ("auto"). */
#define STLS_FLAG_AUTO UINT32_MAX

enum { STLS_MAX_LISTEN = 16, STLS_MAX_WORKERS = 256, STLS_MAX_CIDRS = 64 };

struct stls_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[80]; /* as given: "127.0.0.1:2525", "[::1]:25" */
};

/* A network: address and prefix length. */
struct stls_cidr {
	sa_family_t family;
	uint8_t prefix;
	uint8_t addr[16];
	char text[64];
};

struct stls_hostport {
	char host[256];
	uint16_t port;
	char text[272];
};

/* The appliance's inbound TLS settings (spec S11-S13). */
enum stls_tls_policy {
	STLS_TLS_OFF = 0,   /* STARTTLS not offered */
	STLS_TLS_PREFERRED, /* offered; clear text allowed */
	STLS_TLS_REQUIRED,  /* offered; no mail without it */
	STLS_TLS__COUNT,
};

/* "off", "preferred", "required". */
const char *stls_tls_policy_str(enum stls_tls_policy policy);

struct stls_config {
	struct stls_addr listen[STLS_MAX_LISTEN];
	unsigned num_listen;
	struct stls_hostport backend;
	char hostname[256];
	unsigned workers;
	bool no_pin;
	uint32_t keyop_threads; /* 0: workers sign themselves; STLS_FLAG_AUTO until main resolves it */
	char log_path[1024];

	uint32_t max_sessions;
	uint32_t max_command_line;
	uint32_t max_reply_line;
	uint32_t max_text_line;
	uint32_t max_errors;
	uint32_t max_pipeline;

	uint32_t command_timeout_ms;
	uint32_t data_timeout_ms;
	uint32_t backend_connect_timeout_ms;
	uint32_t backend_reply_timeout_ms;
	uint32_t shutdown_grace_ms;
	uint32_t backend_probe_interval_ms;
	bool backend_xclient;
	uint8_t backend_proxy_protocol; /* 0 off, 1 v1, 2 v2 */
	struct stls_cidr accept_proxy[STLS_MAX_CIDRS];
	unsigned num_accept_proxy;
	uint32_t proxy_header_timeout_ms;
	uint32_t max_per_ip;
	struct stls_addr stats_listen[1];
	unsigned num_stats_listen;
	char sender_groups_path[1024];

	struct stls_addr outbound_listen[STLS_MAX_LISTEN];
	unsigned num_outbound_listen;
	struct stls_cidr outbound_allow[STLS_MAX_CIDRS];
	unsigned num_outbound_allow;
	char dest_policy_path[1024];
	char routes_path[1024];
	struct stls_hostport dns;
	char ca_file[1024];
	char outbound_cert_path[1024];
	char outbound_key_path[1024];
	char alert_to[256];
	uint32_t alert_interval_ms;
	uint32_t dest_connect_timeout_ms;

	uint8_t inbound_tls; /* enum stls_tls_policy */
	char cert_path[1024];
	char key_path[1024];
	char chain_path[1024];
	char p12_path[1024];
	char p12_password_path[1024];
	char ticket_key_path[1024];
	uint32_t ticket_rotation_ms;
	uint32_t handshake_timeout_ms;

	uint32_t recv_buffers;
	uint32_t recv_buffer_size;
	uint32_t relay_buffer;

	bool check;
};
