/* Tests of common/cm_tls_id: a certificate bound to a node key (its URI
 * subject alternative name) gives that key back; a certificate with no URI,
 * one made for another TLS key, one signed by another node key or a
 * malformed URI does not; secret files readable by others are refused.
 * Certificates come from the openssl command. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_rpc_int.h"
#include "cm_tls_id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/muri-test-tls-id-XXXXXX";

static int sh(const char *fmt, const char *a, const char *b, const char *c)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), fmt, a, b, c);
	return system(cmd);
}

/* A new EC key in DIR/name.key (0600); its path in out. */
static int new_key(const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s.key", tmpdir, name);
	if (sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out %s 2>/dev/null%s%s", out, "",
	       "") != 0)
		return -1;
	return chmod(out, 0600);
}

/* A self-signed certificate for key with the given extra SAN ("" for none). */
static char *cert_of(const char *key, const char *san)
{
	char crt[300], ext[600];
	snprintf(crt, sizeof(crt), "%s.crt", key);
	snprintf(ext, sizeof(ext), "subjectAltName=DNS:localhost%s%s", *san ? ",URI:" : "", san);
	if (sh("openssl req -x509 -new -key %s -days 1 -subj /CN=t -addext '%s' -out %s 2>/dev/null", key, ext, crt))
		return NULL;
	char *pem = NULL, err[256];
	return cm_rpc_read_pem(crt, &pem, err, sizeof(err)) == CM_OK ? pem : NULL;
}

static void test_bound_certificate(void)
{
	char key[256], other[256], why[256], uri[CM_TLS_ID_URI_MAX];
	TAP_EQ(new_key("a", key, sizeof(key)), 0);
	TAP_EQ(new_key("b", other, sizeof(other)), 0);
	cm_keypair node, stranger;
	cm_keypair_generate(&node);
	cm_keypair_generate(&stranger);
	uint8_t *spki = NULL, *spki_b = NULL, pk[CM_PK_BYTES];
	size_t n = 0, nb = 0;
	TAP_EQ(cm_tls_id_spki_of_key_file(key, &spki, &n, why, sizeof(why)), CM_OK);
	TAP_EQ(cm_tls_id_spki_of_key_file(other, &spki_b, &nb, why, sizeof(why)), CM_OK);
	cm_tls_id_uri(&node, spki, n, uri);
	TAP_CHECK(strncmp(uri, "muri:node:", 10) == 0 && strlen(uri) == 10 + 64 + 1 + 128);

	char *pem = cert_of(key, uri);
	TAP_CHECK(pem != NULL);
	TAP_EQ(cm_tls_id_of_cert(pem, strlen(pem), pk, why, sizeof(why)), CM_OK);
	TAP_CHECK(memcmp(pk, node.pk, CM_PK_BYTES) == 0);
	free(pem);

	/* the same URI on a certificate of another TLS key */
	pem = cert_of(other, uri);
	TAP_EQ(cm_tls_id_of_cert(pem, strlen(pem), pk, why, sizeof(why)), CM_ERR_VERIFY);
	TAP_CHECK(strstr(why, "another TLS key") != NULL);
	free(pem);

	/* a URI claiming node's key with the stranger's signature */
	char forged[CM_TLS_ID_URI_MAX], by_stranger[CM_TLS_ID_URI_MAX];
	cm_tls_id_uri(&stranger, spki, n, by_stranger);
	memcpy(forged, uri, 10 + 64 + 1);
	strcpy(forged + 10 + 64 + 1, by_stranger + 10 + 64 + 1);
	TAP_EQ(cm_tls_id_check_uri(forged, spki, n, pk, why, sizeof(why)), CM_ERR_VERIFY);
	TAP_EQ(cm_tls_id_check_uri(by_stranger, spki, n, pk, why, sizeof(why)), CM_OK);
	TAP_CHECK(memcmp(pk, stranger.pk, CM_PK_BYTES) == 0);

	/* no URI; a malformed one */
	pem = cert_of(key, "");
	TAP_EQ(cm_tls_id_of_cert(pem, strlen(pem), pk, why, sizeof(why)), CM_ERR_NOTFOUND);
	TAP_CHECK(strstr(why, "muri:node:") != NULL);
	free(pem);
	pem = cert_of(key, "muri:node:12zz");
	TAP_EQ(cm_tls_id_of_cert(pem, strlen(pem), pk, why, sizeof(why)), CM_ERR_INVALID);
	free(pem);
	TAP_EQ(cm_tls_id_of_cert("not a certificate", 17, pk, why, sizeof(why)), CM_ERR_INVALID);
	free(spki);
	free(spki_b);
	cm_keypair_wipe(&node);
	cm_keypair_wipe(&stranger);
}

static void test_secret_file_mode(void)
{
	char key[256], why[512], *s = NULL;
	size_t n = 0;
	TAP_EQ(new_key("c", key, sizeof(key)), 0);
	TAP_EQ(cm_read_secret_file(key, 1 << 20, &s, &n, why, sizeof(why)), CM_OK);
	TAP_CHECK(s && n > 0 && strstr(s, "PRIVATE KEY") != NULL);
	cm_wipe(s, n);
	free(s);
	s = NULL;
	TAP_EQ(chmod(key, 0644), 0);
	TAP_EQ(cm_read_secret_file(key, 1 << 20, &s, &n, why, sizeof(why)), CM_ERR_PERM);
	TAP_CHECK(s == NULL && strstr(why, "chmod 600") != NULL && strstr(why, "644") != NULL);
	TAP_EQ(chmod(key, 0640), 0);
	TAP_EQ(cm_read_secret_file(key, 1 << 20, &s, &n, why, sizeof(why)), CM_ERR_PERM);
	uint8_t *spki = NULL;
	TAP_EQ(cm_tls_id_spki_of_key_file(key, &spki, &n, why, sizeof(why)), CM_ERR_PERM);
	snprintf(key, sizeof(key), "%s/missing.key", tmpdir);
	TAP_EQ(cm_read_secret_file(key, 1 << 20, &s, &n, why, sizeof(why)), CM_ERR_NOTFOUND);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK || !mkdtemp(tmpdir))
		return 1;
	TAP_RUN(test_bound_certificate);
	TAP_RUN(test_secret_file_mode);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
