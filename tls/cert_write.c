#include "tls/cert_write.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls/p12.h"

enum stls_err stls_cert_write_check(const char *path, bool force, char *err, size_t err_len)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return STLS_OK;
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return STLS_ERR_CONFIG;
	}
	if (!force) {
		snprintf(err, err_len, "%s exists: give --force to replace it", path);
		return STLS_ERR_CONFIG;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, err_len, "%s exists and is not a regular file", path);
		return STLS_ERR_CONFIG;
	}
	return STLS_OK;
}

enum stls_err stls_cert_write_file(const char *path, const void *data, size_t len, unsigned mode, bool force, char *err,
				   size_t err_len)
{
	enum stls_err ret = STLS_ERR_IO;
	char tmp[4096];
	int fd = -1;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp)) {
		snprintf(err, err_len, "%s: path too long", path);
		return STLS_ERR_CONFIG;
	}
	/* mkstemp makes the file 0600, so a key is never readable by others, not even for a moment. */
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(err, err_len, "%s: cannot create a file beside it: %s", path, strerror(errno));
		return STLS_ERR_IO;
	}
	const uint8_t *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, err_len, "%s: %s", tmp, strerror(errno));
			goto out;
		}
		p += n;
		left -= (size_t)n;
	}
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
		snprintf(err, err_len, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		snprintf(err, err_len, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (force) {
		if (rename(tmp, path) != 0) {
			snprintf(err, err_len, "%s: %s", path, strerror(errno));
			goto out;
		}
	} else {
		/* link() fails on an existing name, so a file that appeared since the check is kept. */
		if (link(tmp, path) != 0) {
			if (errno == EEXIST) {
				snprintf(err, err_len, "%s exists: give --force to replace it", path);
				ret = STLS_ERR_CONFIG;
			} else {
				snprintf(err, err_len, "%s: %s", path, strerror(errno));
			}
			goto out;
		}
		unlink(tmp);
	}
	tmp[0] = '\0';
	ret = STLS_OK;
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	return ret;
}

/* Writes what a BIO collected to path, then wipes the BIO's memory when secret. */
static enum stls_err write_bio(const char *path, BIO *bio, unsigned mode, bool secret, bool force, char *err,
			       size_t err_len)
{
	const uint8_t *data;
	size_t len;
	if (!BIO_mem_contents(bio, &data, &len)) {
		snprintf(err, err_len, "%s: out of memory", path);
		return STLS_ERR_NOMEM;
	}
	enum stls_err ret = stls_cert_write_file(path, data, len, mode, force, err, err_len);
	if (secret)
		OPENSSL_cleanse((void *)data, len);
	return ret;
}

static enum stls_err encode_failed(const char *path, char *err, size_t err_len)
{
	snprintf(err, err_len, "%s: cannot encode it: %s", path, ERR_reason_error_string(ERR_peek_last_error()));
	ERR_clear_error();
	return STLS_ERR_TLS;
}

enum stls_err stls_cert_write_key(const char *path, const EVP_PKEY *key, bool force, char *err, size_t err_len)
{
	enum stls_err ret;
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_PrivateKey(bio, (EVP_PKEY *)key, NULL, NULL, 0, NULL, NULL))
		ret = encode_failed(path, err, err_len);
	else
		ret = write_bio(path, bio, 0600, true, force, err, err_len);
	BIO_free(bio);
	return ret;
}

enum stls_err stls_cert_write_certs(const char *path, X509 *leaf, const STACK_OF(X509) * chain, bool force, char *err,
				    size_t err_len)
{
	if (!leaf && sk_X509_num(chain) == 0) {
		snprintf(err, err_len, "%s: no certificate to write", path);
		return STLS_ERR_INTERNAL;
	}
	enum stls_err ret;
	BIO *bio = BIO_new(BIO_s_mem());
	bool ok = bio && (!leaf || PEM_write_bio_X509(bio, leaf));
	for (size_t i = 0; ok && i < sk_X509_num(chain); i++)
		ok = PEM_write_bio_X509(bio, sk_X509_value(chain, i));
	if (ok)
		ret = write_bio(path, bio, 0644, false, force, err, err_len);
	else
		ret = encode_failed(path, err, err_len);
	BIO_free(bio);
	return ret;
}

enum stls_err stls_cert_write_csr(const char *path, X509_REQ *req, bool force, char *err, size_t err_len)
{
	enum stls_err ret;
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509_REQ(bio, req))
		ret = encode_failed(path, err, err_len);
	else
		ret = write_bio(path, bio, 0644, false, force, err, err_len);
	BIO_free(bio);
	return ret;
}

enum stls_err stls_cert_write_p12(const char *path, const struct stls_cert_bundle *b, const char *password,
				  const char *name, bool force, char *err, size_t err_len)
{
	if (!password || !password[0]) {
		snprintf(err, err_len, "%s: an empty password protects nothing", path);
		return STLS_ERR_CONFIG;
	}
	uint8_t *der = NULL;
	size_t len = 0;
	enum stls_err ret = stls_p12_encode(&der, &len, b, password, name, STLS_CERT_P12_ITERATIONS);
	if (ret == STLS_ERR_CONFIG)
		snprintf(err, err_len, "%s: the password is not UTF-8 text", path);
	else if (ret != STLS_OK)
		snprintf(err, err_len, "%s: cannot encode it", path);
	else
		ret = stls_cert_write_file(path, der, len, 0600, force, err, err_len);
	if (der)
		OPENSSL_cleanse(der, len);
	OPENSSL_free(der);
	return ret;
}
