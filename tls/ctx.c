#include "tls/ctx.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "tls/keyop.h"
#include "tls/selfsign.h"
#include "tls/tickets.h"

/* TLS 1.2 suites: ECDHE only (forward secrecy), AEAD only. TLS 1.3's suites are all AEAD and
 * forward-secret, and BoringSSL does not let them be changed. */
static const char k_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
				"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
				"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char k_groups[] = "X25519:P-256";

static enum stls_err load_bundle(struct stls_cert_bundle *out, bool *out_demo, const struct stls_config *cfg, char *err,
				 size_t err_len)
{
	*out_demo = false;
	if (cfg->p12_path[0]) {
		char password[1024];
		STLS_TRY(stls_cert_read_password(password, sizeof(password), cfg->p12_password_path, err, err_len));
		enum stls_err ret = stls_cert_load_p12(out, cfg->p12_path, password, err, err_len);
		stls_wipe(password, sizeof(password));
		return ret;
	}
	if (cfg->cert_path[0])
		return stls_cert_load_pem(out, cfg->cert_path, cfg->key_path,
					  cfg->chain_path[0] ? cfg->chain_path : NULL, err, err_len);
	*out_demo = true;
	return stls_selfsign_demo(out, cfg->hostname, err, err_len);
}

enum stls_err stls_tls_server_new(struct stls_tls_server **out, struct stls_cert_report *out_report,
				  const struct stls_config *cfg, char *err, size_t err_len)
{
	enum stls_err ret = STLS_ERR_CONFIG;
	struct stls_cert_bundle bundle = { 0 };
	struct stls_tls_server *srv = stls_calloc(1, sizeof(*srv));
	*out_report = (struct stls_cert_report){ 0 };
	if (!srv) {
		snprintf(err, err_len, "out of memory");
		return STLS_ERR_NOMEM;
	}
	if (load_bundle(&bundle, &srv->demo, cfg, err, err_len) != STLS_OK)
		goto out;
	if (stls_cert_check(&bundle, &srv->report) != STLS_OK) {
		*out_report = srv->report;
		snprintf(err, err_len, "the certificate cannot be used (%u problem%s)", srv->report.num_errors,
			 srv->report.num_errors == 1 ? "" : "s");
		goto out;
	}
	/* Spec S4: peers verify the name they connected to; the greeting's name should be one of them. */
	if (!srv->demo)
		stls_cert_check_names(&srv->report, bundle.leaf, STLS_CERT_WARNING, cfg->hostname, NULL, 0);
	stls_cert_describe(&bundle, srv->describe, sizeof(srv->describe));

	srv->ctx = SSL_CTX_new(TLS_method());
	if (!srv->ctx || !SSL_CTX_set_min_proto_version(srv->ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(srv->ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_strict_cipher_list(srv->ctx, k_ciphers) || !SSL_CTX_set1_curves_list(srv->ctx, k_groups) ||
	    !SSL_CTX_use_certificate(srv->ctx, bundle.leaf) || !SSL_CTX_set1_chain(srv->ctx, bundle.chain)) {
		snprintf(err, err_len, "cannot set up TLS: %s", ERR_reason_error_string(ERR_peek_last_error()));
		goto out;
	}
	if (stls_tls_keyop_enabled()) {
		/* The key goes to the key-op process; this process keeps only the certificate (the
		 * checks above already matched the two). */
		if (stls_tls_keyop_attach(srv->ctx, &srv->key_id, bundle.key, err, err_len) != STLS_OK)
			goto out;
	} else if (!SSL_CTX_use_PrivateKey(srv->ctx, bundle.key) || !SSL_CTX_check_private_key(srv->ctx)) {
		snprintf(err, err_len, "cannot set up TLS: %s", ERR_reason_error_string(ERR_peek_last_error()));
		goto out;
	}
	SSL_CTX_set_options(srv->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Stateless resumption only: tickets need server-side "caching" switched on, but BoringSSL's
	 * internal cache (and its periodic flush) would be a lock on every handshake of every worker. */
	SSL_CTX_set_session_cache_mode(srv->ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL |
							 SSL_SESS_CACHE_NO_AUTO_CLEAR);
	SSL_CTX_set_tlsext_ticket_key_cb(srv->ctx, stls_tickets_callback);
	/* One ticket per handshake, not BoringSSL's two: an MTA resumes one connection at a time,
	 * and each ticket costs a sealing and a record. */
	SSL_CTX_set_num_tickets(srv->ctx, 1);
	SSL_CTX_set_timeout(srv->ctx, 86400);
	SSL_CTX_set_session_psk_dhe_timeout(srv->ctx, 86400);
	srv->refs = 1;
	*out = srv;
	srv = NULL;
	ret = STLS_OK;
out:
	stls_cert_bundle_cleanup(&bundle);
	if (srv) {
		stls_tls_keyop_detach(srv->key_id);
		SSL_CTX_free(srv->ctx);
		stls_free_ptr(&srv);
	}
	ERR_clear_error();
	return ret;
}

void stls_tls_server_get(struct stls_tls_server *srv)
{
	if (srv)
		srv->refs++;
}

void stls_tls_server_put(struct stls_tls_server *srv)
{
	if (!srv || --srv->refs > 0)
		return;
	stls_tls_keyop_detach(srv->key_id);
	SSL_CTX_free(srv->ctx);
	stls_free_ptr(&srv);
}
