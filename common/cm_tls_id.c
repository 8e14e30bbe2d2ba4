/* Certificates bound to node keys (cm_tls_id.h): the URI, its check, and
 * reading a certificate's SubjectPublicKeyInfo and alternative names with
 * OpenSSL's libcrypto (the library gRPC's TLS runs on here). */
#include "cm_tls_id.h"
#include "cm_err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static void spki_digest(uint8_t out[CM_HASH_BYTES], const uint8_t *spki, size_t len)
{
	cm_hash(out, CM_DOM_TLS_ID, spki, len);
}

void cm_tls_id_uri(const cm_keypair *key, const uint8_t *spki, size_t spki_len, char out[CM_TLS_ID_URI_MAX])
{
	uint8_t d[CM_HASH_BYTES], sig[CM_SIG_BYTES];
	char pk[2 * CM_PK_BYTES + 1], sh[2 * CM_SIG_BYTES + 1];
	spki_digest(d, spki, spki_len);
	cm_sign(key, sig, d, sizeof(d));
	cm_hex(pk, key->pk, CM_PK_BYTES);
	cm_hex(sh, sig, CM_SIG_BYTES);
	snprintf(out, CM_TLS_ID_URI_MAX, "%s%s:%s", CM_TLS_ID_PREFIX, pk, sh);
}

int cm_tls_id_check_uri(const char *uri, const uint8_t *spki, size_t spki_len, uint8_t pk[CM_PK_BYTES],
			char *why, size_t whylen)
{
	size_t np = strlen(CM_TLS_ID_PREFIX);
	uint8_t key[CM_PK_BYTES], sig[CM_SIG_BYTES], d[CM_HASH_BYTES];
	char khex[2 * CM_PK_BYTES + 1] = "";
	int ok = strncmp(uri, CM_TLS_ID_PREFIX, np) == 0 && strlen(uri) == np + 2 * CM_PK_BYTES + 1 + 2 * CM_SIG_BYTES &&
		 uri[np + 2 * CM_PK_BYTES] == ':';
	if (ok) {
		memcpy(khex, uri + np, 2 * CM_PK_BYTES);
		khex[2 * CM_PK_BYTES] = 0;
	}
	if (!ok || cm_unhex(key, CM_PK_BYTES, khex) != CM_OK ||
	    cm_unhex(sig, CM_SIG_BYTES, uri + np + 2 * CM_PK_BYTES + 1) != CM_OK) {
		snprintf(why, whylen, "the certificate's %s URI is not %s<64 hex>:<128 hex>", CM_TLS_ID_PREFIX,
			 CM_TLS_ID_PREFIX);
		return CM_ERR_INVALID;
	}
	spki_digest(d, spki, spki_len);
	if (cm_verify(key, sig, d, sizeof(d)) != CM_OK) {
		char hex[2 * CM_PK_BYTES + 1];
		cm_hex(hex, key, CM_PK_BYTES);
		snprintf(why, whylen,
			 "the certificate's %s URI is not node key %.16s's signature over this certificate's "
			 "public key (made for another TLS key?)",
			 CM_TLS_ID_PREFIX, hex);
		return CM_ERR_VERIFY;
	}
	memcpy(pk, key, CM_PK_BYTES);
	return CM_OK;
}

/* The certificate's SubjectPublicKeyInfo, DER, in a buffer from OPENSSL_malloc. */
static int cert_spki(X509 *x, unsigned char **der)
{
	X509_PUBKEY *pub = X509_get_X509_PUBKEY(x);
	*der = NULL;
	return pub ? i2d_X509_PUBKEY(pub, der) : -1;
}

int cm_tls_id_of_cert(const char *pem, size_t len, uint8_t pk[CM_PK_BYTES], char *why, size_t whylen)
{
	if (len > INT32_MAX) {
		snprintf(why, whylen, "certificate too large");
		return CM_ERR_INVALID;
	}
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!x) {
		snprintf(why, whylen, "the peer's certificate cannot be parsed");
		return CM_ERR_INVALID;
	}
	int rc = CM_ERR_NOTFOUND;
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	unsigned char *spki = NULL;
	int nspki = cert_spki(x, &spki);
	int n = names ? sk_GENERAL_NAME_num(names) : 0;
	for (int i = 0; i < n && rc == CM_ERR_NOTFOUND; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if (g->type != GEN_URI)
			continue;
		const unsigned char *s = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		int sl = ASN1_STRING_length(g->d.uniformResourceIdentifier);
		size_t np = strlen(CM_TLS_ID_PREFIX);
		if (sl < (int)np || memcmp(s, CM_TLS_ID_PREFIX, np) != 0)
			continue;
		char uri[CM_TLS_ID_URI_MAX];
		if ((size_t)sl >= sizeof(uri) || memchr(s, 0, (size_t)sl)) {
			snprintf(why, whylen, "the certificate's %s URI is too long", CM_TLS_ID_PREFIX);
			rc = CM_ERR_INVALID;
			break;
		}
		memcpy(uri, s, (size_t)sl);
		uri[sl] = 0;
		if (nspki <= 0) {
			snprintf(why, whylen, "the certificate's public key cannot be encoded");
			rc = CM_ERR_INVALID;
			break;
		}
		rc = cm_tls_id_check_uri(uri, spki, (size_t)nspki, pk, why, whylen);
	}
	if (rc == CM_ERR_NOTFOUND)
		snprintf(why, whylen,
			 "the certificate names no node key (no %s URI in its subject alternative names)",
			 CM_TLS_ID_PREFIX);
	OPENSSL_free(spki);
	GENERAL_NAMES_free(names);
	X509_free(x);
	return rc;
}

int cm_read_secret_file(const char *path, size_t max, char **out, size_t *len, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return errno == ENOENT ? CM_ERR_NOTFOUND : CM_ERR_IO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		snprintf(why, whylen, "cannot stat %s: %s", path, strerror(errno));
		close(fd);
		return CM_ERR_IO;
	}
	if (st.st_mode & 077) {
		snprintf(why, whylen, "%s is a private key readable or writable by group or others (mode %03o); "
				      "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return CM_ERR_PERM;
	}
	if (st.st_size <= 0 || (size_t)st.st_size > max) {
		snprintf(why, whylen, "%s: %s", path, st.st_size <= 0 ? "empty file" : "too large for a key file");
		close(fd);
		return CM_ERR_INVALID;
	}
	size_t n = (size_t)st.st_size, got = 0;
	char *buf = malloc(n + 1);
	if (!buf) {
		close(fd);
		return CM_ERR_NOMEM;
	}
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got != n) {
		cm_wipe(buf, n);
		free(buf);
		snprintf(why, whylen, "%s: read error", path);
		return CM_ERR_IO;
	}
	buf[n] = 0;
	*out = buf;
	if (len)
		*len = n;
	return CM_OK;
}

int cm_tls_id_spki_of_key_file(const char *path, uint8_t **spki, size_t *len, char *why, size_t whylen)
{
	char *pem = NULL;
	size_t n = 0;
	int rc = cm_read_secret_file(path, 1u << 20, &pem, &n, why, whylen);
	if (rc != CM_OK)
		return rc;
	BIO *b = BIO_new_mem_buf(pem, (int)n);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	cm_wipe(pem, n);
	free(pem);
	unsigned char *der = NULL;
	int nd = k ? i2d_PUBKEY(k, &der) : -1;
	EVP_PKEY_free(k);
	if (nd <= 0) {
		snprintf(why, whylen, "%s: not a PEM private key", path);
		OPENSSL_free(der);
		return CM_ERR_INVALID;
	}
	*spki = malloc((size_t)nd);
	if (!*spki) {
		OPENSSL_free(der);
		return CM_ERR_NOMEM;
	}
	memcpy(*spki, der, (size_t)nd);
	*len = (size_t)nd;
	OPENSSL_free(der);
	return CM_OK;
}
