/* A devnet's TLS: a local CA (EC P-256) made once in D/tls/ca.pem and, per
 * process, a certificate it signed for 127.0.0.1 and localhost in
 * D/NAME/tls.crt with its key in D/NAME/tls.key (0600). Each certificate
 * also carries the URI muri:node:<node key>:<signature> by which the
 * process's node key names the certificate's public key (cm_tls_id.h), so
 * peers know which node calls. Every process serves TLS with its
 * certificate, presents it when it calls another (mutual TLS) and verifies
 * the others' against the CA; the clients (muri with --dir) verify against
 * the same CA. The CA's key signs the certificates and is removed at once:
 * nothing else can be signed with it. The files stay from one `muri devnet
 * up` to the next; when one is missing, or a certificate is not bound to its
 * node's key, a new CA and new certificates for every process are made (the
 * processes read them when they start). The certificates come from the
 * openssl command. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_devnet.h"
#include "cm_err.h"
#include "cm_rpc_int.h"
#include "cm_tls_id.h"

extern char **environ;

#define DN_TLS_DAYS "3650"

/* Runs openssl with args, its output appended to log; 0 when it exits 0. */
static int run_openssl(char *const *args, const char *log, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int rc = posix_spawnp(&pid, "openssl", &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		snprintf(err, errlen, "cannot run openssl (needed for the devnet's TLS certificates): %s", strerror(rc));
		return -1;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			snprintf(err, errlen, "openssl: %s", strerror(errno));
			return -1;
		}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, errlen, "openssl %s %s failed; see %s", args[1], args[2], log);
		return -1;
	}
	return 0;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && st.st_size > 0;
}

/* 1 when nd's certificate is bound to nd's node key. */
static int bound(const dn_node *nd)
{
	char *pem = NULL, err[256];
	uint8_t pk[CM_PK_BYTES];
	if (cm_rpc_read_pem(nd->tls_cert, &pem, err, sizeof(err)) != CM_OK)
		return 0;
	int ok = cm_tls_id_of_cert(pem, strlen(pem), pk, err, sizeof(err)) == CM_OK &&
		 memcmp(pk, nd->key.pk, CM_PK_BYTES) == 0;
	free(pem);
	return ok;
}

/* The extensions of nd's certificate, its node URI included, into path. */
static int write_ext(const dn_node *nd, const char *path, char *err, size_t errlen)
{
	uint8_t *spki = NULL;
	size_t n = 0;
	int rc = cm_tls_id_spki_of_key_file(nd->tls_key, &spki, &n, err, errlen);
	if (rc != CM_OK)
		return -1;
	char uri[CM_TLS_ID_URI_MAX];
	cm_tls_id_uri(&nd->key, spki, n, uri);
	free(spki);
	FILE *f = fopen(path, "w");
	if (!f || fprintf(f, "subjectAltName=DNS:localhost,IP:127.0.0.1,URI:%s\nextendedKeyUsage=serverAuth,"
			     "clientAuth\nbasicConstraints=CA:FALSE\n", uri) < 0 || fclose(f) != 0) {
		snprintf(err, errlen, "cannot write %s", path);
		return -1;
	}
	return 0;
}

static int make_all(dn_net *net, const char *dir, char *err, size_t errlen)
{
	char log[DN_PATH + 32], cakey[DN_PATH + 32], ext[DN_PATH + 32], csr[DN_PATH + 32], srl[DN_PATH + 32],
		subj[96];
	snprintf(log, sizeof(log), "%s/openssl.log", dir);
	snprintf(cakey, sizeof(cakey), "%s/ca.key", dir);
	snprintf(ext, sizeof(ext), "%s/node.ext", dir);
	snprintf(csr, sizeof(csr), "%s/node.csr", dir);
	snprintf(srl, sizeof(srl), "%s/ca.srl", dir);
	unlink(net->tls_ca);
	char *ca_args[] = {"openssl", "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
			   "ec_paramgen_curve:prime256v1", "-days", DN_TLS_DAYS, "-subj", "/CN=muri devnet CA",
			   "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
			   "-keyout", cakey, "-out", net->tls_ca, NULL};
	int rc = run_openssl(ca_args, log, err, errlen);
	for (int i = 0; !rc && i < net->n; i++) {
		dn_node *nd = &net->nodes[i];
		snprintf(subj, sizeof(subj), "/CN=%s", nd->name);
		unlink(nd->tls_key);
		char *key_args[] = {"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
				    "ec_paramgen_curve:prime256v1", "-out", nd->tls_key, NULL};
		char *req_args[] = {"openssl", "req", "-new", "-key", nd->tls_key, "-subj", subj, "-out", csr, NULL};
		char *sign_args[] = {"openssl", "x509", "-req", "-in", csr, "-CA", net->tls_ca, "-CAkey", cakey,
				     "-CAcreateserial", "-CAserial", srl, "-days", DN_TLS_DAYS, "-extfile", ext, "-out",
				     nd->tls_cert, NULL};
		rc = run_openssl(key_args, log, err, errlen);
		if (!rc && chmod(nd->tls_key, 0600) != 0) {
			snprintf(err, errlen, "chmod %s: %s", nd->tls_key, strerror(errno));
			rc = -1;
		}
		if (!rc)
			rc = write_ext(nd, ext, err, errlen);
		if (!rc)
			rc = run_openssl(req_args, log, err, errlen);
		if (!rc)
			rc = run_openssl(sign_args, log, err, errlen);
		if (!rc && chmod(nd->tls_cert, 0644) != 0) {
			snprintf(err, errlen, "chmod %s: %s", nd->tls_cert, strerror(errno));
			rc = -1;
		}
	}
	unlink(cakey); /* nothing else gets signed */
	unlink(csr);
	unlink(ext);
	unlink(srl);
	if (rc) /* no half set: the next up makes them all again */
		unlink(net->tls_ca);
	else
		chmod(net->tls_ca, 0644);
	return rc;
}

int dn_tls_prepare(dn_net *net, char *err, size_t errlen)
{
	char dir[DN_PATH + 8];
	snprintf(dir, sizeof(dir), "%s/tls", net->root);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return CM_ERR_IO;
	}
	snprintf(net->tls_ca, sizeof(net->tls_ca), "%s/ca.pem", dir);
	int complete = exists(net->tls_ca);
	for (int i = 0; i < net->n; i++) {
		dn_node *nd = &net->nodes[i];
		snprintf(nd->tls_cert, sizeof(nd->tls_cert), "%s/tls.crt", nd->dir);
		snprintf(nd->tls_key, sizeof(nd->tls_key), "%s/tls.key", nd->dir);
		complete &= exists(nd->tls_cert) && exists(nd->tls_key) && bound(nd);
	}
	if (complete)
		return CM_OK;
	mode_t old = umask(077); /* keys are created 0600 */
	int rc = make_all(net, dir, err, errlen);
	umask(old);
	return rc ? CM_ERR_IO : CM_OK;
}
