/* Chain id, replica and gateway lines of a genesis file (see cm_genesis.h). */
#include "cm_genesis.h"
#include "cm_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int cm_genesis_read_replicas(const char *path, cm_genesis_replicas *g, char *err, size_t errlen)
{
	memset(g, 0, sizeof(*g));
	FILE *fp = fopen(path, "r");
	if (!fp)
		return fail(err, errlen, CM_ERR_IO, "genesis: cannot open %s: %s", path, strerror(errno));
	char line[CM_GENESIS_LINE_MAX];
	int lineno = 0, rc = CM_OK;
	while (rc == CM_OK && fgets(line, sizeof(line), fp)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char key[64], a[256], b[256];
		int k = sscanf(line, " %63[^= \t] = %255s %255s", key, a, b);
		if (k < 2)
			continue;
		if (strcmp(key, "chain_id") == 0) {
			if (strlen(a) >= sizeof(g->chain_id))
				rc = fail(err, errlen, CM_ERR_INVALID, "%s:%d: chain_id: too long", path, lineno);
			else
				snprintf(g->chain_id, sizeof(g->chain_id), "%s", a);
		} else if (strcmp(key, "replica") == 0) {
			if (k != 3 || g->n >= CM_CHAIN_MAX_REPLICAS || strlen(a) != 2 * CM_PK_BYTES ||
			    cm_unhex(g->pks[g->n], CM_PK_BYTES, a) != CM_OK || strlen(b) >= CM_GENESIS_ADDR_MAX)
				rc = fail(err, errlen, CM_ERR_INVALID,
					  "%s:%d: replica: expected <hex pubkey> <host:port> (at most %d replicas)", path,
					  lineno, CM_CHAIN_MAX_REPLICAS);
			else {
				snprintf(g->addrs[g->n], CM_GENESIS_ADDR_MAX, "%s", b);
				g->addrp[g->n] = g->addrs[g->n];
				g->n++;
			}
		} else if (strcmp(key, "gateway") == 0) {
			if (k != 2 || g->ngateways >= CM_GENESIS_GATEWAYS_MAX || strlen(a) != 2 * CM_PK_BYTES ||
			    cm_unhex(g->gateways[g->ngateways], CM_PK_BYTES, a) != CM_OK)
				rc = fail(err, errlen, CM_ERR_INVALID,
					  "%s:%d: gateway: expected <hex pubkey> (at most %d gateways)", path, lineno,
					  CM_GENESIS_GATEWAYS_MAX);
			else
				g->ngateways++;
		}
	}
	fclose(fp);
	if (rc == CM_OK && !g->chain_id[0])
		rc = fail(err, errlen, CM_ERR_INVALID, "%s: chain_id: missing", path);
	if (rc == CM_OK && g->n == 0)
		rc = fail(err, errlen, CM_ERR_INVALID, "%s: replica: none", path);
	return rc;
}
