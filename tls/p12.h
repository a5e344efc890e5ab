/* Writing PKCS#12 files (RFC 7292) the way OpenSSL 3 does by default (spec S8).
 *
 * The linked BoringSSL's PKCS12_create writes only PBES1 schemes (PBE-SHA1-3DES and weaker) and
 * an HMAC-SHA1 MAC. This encoder writes, with BoringSSL's primitives: the key as a
 * pkcs8ShroudedKeyBag and the certificates in an encryptedData, both with PBES2 (RFC 8018:
 * PBKDF2 with HMAC-SHA256, AES-256-CBC), and an HMAC-SHA256 MAC keyed with the PKCS#12 key
 * derivation (RFC 7292 B.2) over SHA-256. OpenSSL 3 and BoringSSL read it (tls/cert.c loads it). */
#pragma once

#include <openssl/base.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "tls/cert.h"

/* Encodes bundle (key, leaf, then chain in order) as a DER PKCS#12 file protected by password
 * (UTF-8; encoded as RFC 7292 asks for the MAC), the leaf and key tied by a localKeyID and named
 * name (ASCII, may be NULL) as friendlyName, with iterations rounds of PBKDF2 and of the MAC's key
 * derivation. *out gets a buffer the caller wipes and frees with OPENSSL_free. Returns STLS_OK,
 * STLS_ERR_CONFIG (an empty password, or one that is not UTF-8) or STLS_ERR_TLS. */
[[nodiscard]] enum stls_err stls_p12_encode(uint8_t **out, size_t *out_len, const struct stls_cert_bundle *bundle,
					    const char *password, const char *name, unsigned iterations);
