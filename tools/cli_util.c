/* The muri command's common ground: options and help, one-line errors, the
 * devnet's folder and the gateway and ledger it names, enums from text and
 * the deterministic row ids of an import. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "cm_api_key.h"
#include "cm_err.h"

int cli_quiet_grpc;

int cli_fail(int code, const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++) /* one line, whatever a server said */
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "muri %s: %s\n", cmd, msg);
	return code;
}

int cli_parse(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts, char **pos,
	      int maxpos, int *npos)
{
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("%s", help);
			return -1;
		}
		if (a[0] == '-' && a[1] == '-' && a[2]) {
			const cli_opt *o = NULL;
			const char *eq = strchr(a, '=');
			size_t nl = eq ? (size_t)(eq - a) : strlen(a);
			for (const cli_opt *p = opts; p && p->name; p++)
				if (strlen(p->name) == nl && !strncmp(p->name, a, nl))
					o = p;
			if (!o)
				return cli_fail(CLI_USAGE, cmd, "unknown option %s (see muri %s --help)", a, cmd);
			if (o->kind == CLI_FLAG) {
				if (eq)
					return cli_fail(CLI_USAGE, cmd, "%s takes no value", o->name);
				*(int *)o->dst = 1;
				continue;
			}
			const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v)
				return cli_fail(CLI_USAGE, cmd, "%s needs a value", o->name);
			if (o->kind == CLI_STR) {
				*(const char **)o->dst = v;
			} else {
				char *end;
				errno = 0;
				long x = strtol(v, &end, 10);
				if (errno || end == v || *end)
					return cli_fail(CLI_USAGE, cmd, "%s: not an integer: %s", o->name, v);
				*(long *)o->dst = x;
			}
			continue;
		}
		if (*npos >= maxpos)
			return cli_fail(CLI_USAGE, cmd, "unexpected argument %s (see muri %s --help)", a, cmd);
		pos[(*npos)++] = argv[i];
	}
	return 0;
}

void cli_devnet_dir(const char *given, char *out, size_t len)
{
	const char *env = getenv("MURI_DEVNET");
	const char *home = getenv("HOME");
	if (given && *given)
		snprintf(out, len, "%s", given);
	else if (env && *env)
		snprintf(out, len, "%s", env);
	else
		snprintf(out, len, "%s/.muri/devnet", home && *home ? home : "/tmp");
}

/* "rpc_port=N" of a port file; 0 when absent. */
static int port_of(const char *dir, const char *node)
{
	char path[4200], line[128];
	snprintf(path, sizeof(path), "%s/%s/ports", dir, node);
	FILE *f = fopen(path, "r");
	int port = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		sscanf(line, "rpc_port=%d", &port);
	fclose(f);
	return port;
}

const char *cli_tls_ca(const cli_conn *c, int from_devnet, char *buf, size_t len)
{
	if (c->tls_ca && *c->tls_ca)
		return c->tls_ca;
	if (!from_devnet && !(c->dir && *c->dir)) /* an address of its own and no devnet named */
		return NULL;
	char dir[4096];
	cli_devnet_dir(c->dir, dir, sizeof(dir));
	snprintf(buf, len, "%s/tls/ca.pem", dir);
	return access(buf, R_OK) == 0 ? buf : NULL;
}

const char *cli_tls_hint(const char *ca)
{
	static char hint[600];
	if (!ca)
		return " (connected without TLS: a server that serves TLS needs --tls-ca FILE, or --dir of its devnet)";
	snprintf(hint, sizeof(hint), " (TLS verified with the CA %s: is the server there, serving TLS with a "
		 "certificate that CA signed?)", ca);
	return hint;
}

cm_rpc_client *cli_gateway(const char *cmd, const cli_conn *c)
{
	char target[300], dir[4096], err[256], cabuf[4200];
	if (c->gateway && *c->gateway) {
		snprintf(target, sizeof(target), "%s", c->gateway);
	} else {
		cli_devnet_dir(c->dir, dir, sizeof(dir));
		int port = port_of(dir, "gateway");
		if (!port) {
			cli_fail(CLI_FAIL, cmd, "no gateway: give --gateway HOST:PORT, or start a devnet in %s (muri devnet up)",
				 dir);
			return NULL;
		}
		snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	}
	cm_rpc_client *cl = NULL;
	const char *ca = cli_tls_ca(c, !(c->gateway && *c->gateway), cabuf, sizeof(cabuf));
	if (ca && access(ca, R_OK) != 0) {
		cli_fail(CLI_FAIL, cmd, "--tls-ca %s: %s", ca, strerror(errno));
		return NULL;
	}
	cm_rpc_client_opts o = {.target = target, .tls_ca_file = ca};
	if (cm_rpc_client_new(&o, &cl, err, sizeof(err)) != CM_OK) {
		cli_fail(CLI_FAIL, cmd, "gateway %s: %s", target, err);
		return NULL;
	}
	char key[CM_API_KEY_MAX + 16], bearer[CM_API_KEY_MAX + 32];
	int k = cli_api_key(cmd, c, !(c->gateway && *c->gateway), key, sizeof(key));
	if (k < 0) {
		cm_rpc_client_free(cl);
		return NULL;
	}
	if (k == 0) {
		snprintf(bearer, sizeof(bearer), "Bearer %s", key);
		cm_rpc_client_set_metadata(cl, "authorization", bearer);
		cm_wipe(bearer, sizeof(bearer));
		cm_wipe(key, sizeof(key));
	}
	return cl;
}

int cli_call(const char *cmd, const cli_conn *c, cm_rpc_client *gw, const char *method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *d, ProtobufCMessage **resp)
{
	cm_rpc_status st;
	int to = c->timeout_ms > 0 ? (int)c->timeout_ms : CLI_TIMEOUT_MS;
	if (cm_rpc_unary(gw, method, req, d, resp, to, &st) == CM_OK)
		return 0;
	char cabuf[4200];
	if (st.code == GRPC_STATUS_UNAVAILABLE && !strstr(st.message, "PARTIAL") && !strstr(st.message, "FAILED"))
		return cli_fail(CLI_FAIL, cmd, "gateway %s unreachable: %s%s", cm_rpc_client_target(gw), st.message,
				cli_tls_hint(cli_tls_ca(c, !(c->gateway && *c->gateway), cabuf, sizeof(cabuf))));
	return cli_fail(CLI_FAIL, cmd, "%s: %s", cm_rpc_code_name(st.code), st.message);
}

/* Genesis "chain_id = X" and "replica = HEX host:port" lines. */
/* The chain id and the replicas (address and key) of a genesis file; *keyed
 * is 1 when every replica line's key parsed. */
static int read_genesis(const char *path, char *chain, size_t chainlen, char addrs[][64],
			uint8_t pks[][CM_PK_BYTES], size_t *n, int *keyed)
{
	FILE *f = fopen(path, "r");
	char line[512], a[64], hex[200];
	if (!f)
		return -1;
	*n = 0;
	*keyed = 1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " chain_id = %63s", a) == 1) {
			snprintf(chain, chainlen, "%s", a);
		} else if (*n < CM_LC_MAX_REPLICAS && sscanf(line, " replica = %199s %63s", hex, a) == 2) {
			if (cm_unhex(pks[*n], CM_PK_BYTES, hex) != CM_OK)
				*keyed = 0;
			snprintf(addrs[(*n)++], 64, "%s", a);
		}
	}
	fclose(f);
	return 0;
}

cm_ledger_client *cli_ledger(const char *cmd, const cli_conn *c)
{
	char dir[4096], path[4200], chain[64] = CLI_DEVNET_CHAIN, err[300];
	static char addrs[CM_LC_MAX_REPLICAS][64];
	static uint8_t pks[CM_LC_MAX_REPLICAS][CM_PK_BYTES];
	const char *ap[CM_LC_MAX_REPLICAS];
	size_t n = 0;
	int keyed = 0;
	cli_devnet_dir(c->dir, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/genesis.txt", dir);
	int have_genesis = read_genesis(path, chain, sizeof(chain), addrs, pks, &n, &keyed) == 0;
	if (c->ledger && *c->ledger) {
		keyed = 0; /* addresses given: their keys are not known */
		n = 0;
		char buf[4096];
		snprintf(buf, sizeof(buf), "%s", c->ledger);
		for (char *save, *t = strtok_r(buf, ",", &save); t && n < CM_LC_MAX_REPLICAS; t = strtok_r(NULL, ",", &save))
			snprintf(addrs[n++], 64, "%s", t);
	} else if (!have_genesis || !n) {
		cli_fail(CLI_FAIL, cmd, "no ledger: give --ledger HOST:PORT, or start a devnet in %s (muri devnet up)", dir);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		ap[i] = addrs[i];
	cm_keypair kp;
	const char *keyfile = c->key;
	char defkey[4200];
	if (!keyfile || !*keyfile) {
		snprintf(defkey, sizeof(defkey), "%s/demo.key", dir);
		keyfile = defkey;
	}
	int rc = cm_key_load(&kp, keyfile);
	if (rc != CM_OK) {
		cli_fail(CLI_FAIL, cmd, "key %s: %s", keyfile, cm_strerror(rc));
		return NULL;
	}
	char cabuf[4200];
	const char *ca = cli_tls_ca(c, !(c->ledger && *c->ledger), cabuf, sizeof(cabuf));
	if (ca && access(ca, R_OK) != 0) {
		cm_keypair_wipe(&kp);
		cli_fail(CLI_FAIL, cmd, "--tls-ca %s: %s", ca, strerror(errno));
		return NULL;
	}
	cm_ledger_client_opts o = {.chain_id = c->chain_id && *c->chain_id ? c->chain_id : chain,
				   .tls_ca_file = ca,
				   .n = n,
				   .addrs = ap,
				   .key = &kp,
				   .fee = 1,
				   .call_timeout_ms = c->timeout_ms > 0 ? (int)c->timeout_ms : 0,
				   .max_attempts = (int)(2 * n),
				   /* the genesis's replicas: each answers over its own node's certificate */
				   .pks = keyed ? (const uint8_t(*)[CM_PK_BYTES])pks : NULL};
	cm_ledger_client *lc = NULL;
	rc = cm_ledger_client_new(&o, &lc, err, sizeof(err));
	cm_keypair_wipe(&kp);
	if (rc != CM_OK) {
		cli_fail(CLI_FAIL, cmd, "ledger client: %s", err);
		return NULL;
	}
	return lc;
}

int cli_level(const char *s)
{
	if (!s || !*s || !strcasecmp(s, "QUORUM"))
		return MURI__V1__CONSISTENCY_LEVEL__QUORUM;
	if (!strcasecmp(s, "ONE"))
		return MURI__V1__CONSISTENCY_LEVEL__ONE;
	if (!strcasecmp(s, "ALL"))
		return MURI__V1__CONSISTENCY_LEVEL__ALL;
	return -1;
}

int cli_metric(const char *s)
{
	if (!s || !*s || !strcasecmp(s, "cosine"))
		return MURI__V1__METRIC__COSINE;
	if (!strcasecmp(s, "l2"))
		return MURI__V1__METRIC__L2;
	if (!strcasecmp(s, "dot") || !strcasecmp(s, "dot_product"))
		return MURI__V1__METRIC__DOT_PRODUCT;
	if (!strcasecmp(s, "hamming"))
		return MURI__V1__METRIC__HAMMING;
	return -1;
}

int cli_hex_bytes(const char *hex, uint8_t **out, size_t *n)
{
	size_t len = hex ? strlen(hex) : 0;
	if (len == 0 || len % 2)
		return -1;
	uint8_t *b = malloc(len / 2);
	if (!b)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
		    !isxdigit((unsigned char)hex[2 * i + 1])) {
			free(b);
			return -1;
		}
		b[i] = (uint8_t)v;
	}
	*out = b;
	*n = len / 2;
	return 0;
}

const char *cli_metric_name(int m)
{
	switch (m) {
	case MURI__V1__METRIC__L2:
		return "l2";
	case MURI__V1__METRIC__DOT_PRODUCT:
		return "dot";
	case MURI__V1__METRIC__HAMMING:
		return "hamming";
	default:
		return "cosine";
	}
}
