/* Access from the command line: `muri key create|list|revoke` (an account's
 * gateway API keys, by CreateApiKey and RevokeApiKey transactions: only the
 * key's hash goes on chain; the key is shown once or written to a 0600
 * file), `muri access show|set` (a collection's access lists, SetAccess),
 * `muri audit --collection C` (the chain's admin actions on a collection:
 * created, dropped, access changed, keys limited to it created or
 * revoked, each with its account and height), and the lookup of the API
 * key every gateway command sends. */
#include "cli.h"
#include "cm_api_key.h"
#include "cm_err.h"
#include "ledger.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUDIT_BLOCKS_MAX 1000000 /* blocks one audit reads at most */

/* Reads the first line of a key file, refusing one others may read. */
static int read_key_file(const char *cmd, const char *path, char *out, size_t len)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail(CLI_FAIL, cmd, "API key file %s: %s", path, strerror(errno)), -1;
	if (fstat(fd, &sb) != 0 || (sb.st_mode & 077)) {
		close(fd);
		return cli_fail(CLI_FAIL, cmd, "API key file %s: readable by group or others (chmod 600 it)", path), -1;
	}
	ssize_t n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0)
		return cli_fail(CLI_FAIL, cmd, "API key file %s: empty", path), -1;
	out[n] = '\0';
	out[strcspn(out, " \t\r\n")] = '\0';
	return out[0] ? 0 : (cli_fail(CLI_FAIL, cmd, "API key file %s: empty", path), -1);
}

int cli_api_key(const char *cmd, const cli_conn *c, int from_devnet, char *out, size_t len)
{
	const char *k = c->api_key && *c->api_key ? c->api_key : getenv("MURI_API_KEY");
	if (k && *k) {
		if (k[0] == '@')
			return read_key_file(cmd, k + 1, out, len);
		if (strlen(k) >= len || strlen(k) > CM_API_KEY_MAX)
			return cli_fail(CLI_USAGE, cmd, "--api-key: longer than %d bytes", CM_API_KEY_MAX), -1;
		snprintf(out, len, "%s", k);
		return 0;
	}
	if (!from_devnet && !(c->dir && *c->dir)) /* never sent to a gateway the devnet did not name */
		return 1;
	char dir[4096], path[4200];
	cli_devnet_dir(c->dir, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/admin.apikey", dir);
	if (access(path, F_OK) != 0)
		return 1;
	return read_key_file(cmd, path, out, len);
}

/* ---- muri key ---- */

static int scope_of(const char *s)
{
	if (!strcmp(s, "read") || !strcmp(s, "read-only"))
		return MURI__V1__KEY_SCOPE__SCOPE_READ;
	if (!strcmp(s, "write") || !strcmp(s, "read-write"))
		return MURI__V1__KEY_SCOPE__SCOPE_WRITE;
	if (!strcmp(s, "admin"))
		return MURI__V1__KEY_SCOPE__SCOPE_ADMIN;
	return -1;
}

static const char *scope_name(int s)
{
	return s == MURI__V1__KEY_SCOPE__SCOPE_ADMIN ? "admin" : s == MURI__V1__KEY_SCOPE__SCOPE_WRITE ? "read-write"
													: "read-only";
}

/* Splits a comma-separated list in place into v (at most max). */
static size_t split(char *s, char **v, size_t max)
{
	size_t n = 0;
	for (char *save, *t = strtok_r(s, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
		v[n++] = t;
	return n;
}

static int submit(const char *cmd, cm_ledger_client *lc, const Muri__V1__Transaction *t, uint64_t *height)
{
	cm_ledger_result res;
	char err[600];
	int rc = cm_ledger_client_submit(lc, t, CM_LC_WAIT, &res, err, sizeof(err));
	if (rc != CM_OK)
		return cli_fail(CLI_FAIL, cmd, "%s", rc == CM_ERR_STATE ? res.message : err);
	if (height)
		*height = res.height;
	return 0;
}

static int key_create(cli_conn *c, int argc, char **argv)
{
	const char *scope_s = "read", *colls = NULL, *label = "", *outfile = NULL;
	long expiry = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(*c), {"--scope", CLI_STR, &scope_s}, {"--expiry-height", CLI_INT, &expiry},
				{"--collections", CLI_STR, &colls}, {"--label", CLI_STR, &label},
				{"--out", CLI_STR, &outfile}, {NULL, 0, NULL}};
	static const char help[] =
		"usage: muri key create [--scope read|write|admin] [--collections A,B] [--expiry-height H]\n"
		"                       [--label L] [--out FILE] [options]\n"
		"Creates an API key of the signing key's account (a CreateApiKey transaction carrying only the\n"
		"key's hash) and prints the key once, or writes it to FILE (mode 0600, never overwritten).\n"
		"read: list, describe, get, search; write: also insert, upsert, update, delete, import;\n"
		"admin: also create and drop collections. --collections limits the key to those.\n" CLI_CONN_HELP;
	char *pos[1], *names[64];
	int npos, prc = cli_parse("key create", help, argc, argv, opts, pos, 0, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	int scope = scope_of(scope_s);
	if (scope < 0)
		return cli_fail(CLI_USAGE, "key create", "--scope: %s is not read, write or admin", scope_s);
	if (expiry < 0)
		return cli_fail(CLI_USAGE, "key create", "--expiry-height: must be >= 0");
	char cbuf[64 * 130] = "";
	if (colls)
		snprintf(cbuf, sizeof(cbuf), "%s", colls);
	size_t nn = colls ? split(cbuf, names, 64) : 0;
	int fd = -1;
	if (outfile && (fd = open(outfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return cli_fail(CLI_FAIL, "key create", "--out %s: %s", outfile, strerror(errno));
	cm_ledger_client *lc = cli_ledger("key create", c);
	if (!lc) {
		if (fd >= 0) {
			close(fd);
			unlink(outfile);
		}
		return CLI_FAIL;
	}
	char key[CM_API_KEY_CHARS + 1];
	uint8_t h[CM_HASH_BYTES];
	cm_api_key_new(key);
	cm_api_key_hash(key, strlen(key), h);
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__CreateApiKey ck = MURI__V1__CREATE_API_KEY__INIT;
	ck.key_hash = (ProtobufCBinaryData){CM_HASH_BYTES, h};
	ck.scope = (Muri__V1__KeyScope)scope;
	ck.expiry_height = (uint64_t)expiry;
	ck.collections = names;
	ck.n_collections = nn;
	ck.label = (char *)label;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY;
	t.create_api_key = &ck;
	uint64_t height = 0;
	int rc = submit("key create", lc, &t, &height);
	cm_ledger_client_free(lc);
	if (rc == 0 && fd >= 0) {
		size_t len = strlen(key);
		if (write(fd, key, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
			rc = cli_fail(CLI_FAIL, "key create", "--out %s: %s (the key exists on chain: revoke it)", outfile,
				      strerror(errno));
	}
	if (fd >= 0) {
		close(fd);
		if (rc)
			unlink(outfile);
	}
	char hex[2 * CM_HASH_BYTES + 1];
	cm_hex(hex, h, CM_HASH_BYTES);
	if (rc == 0 && c->json)
		printf("{\"key\":\"%s\",\"key_hash\":\"%s\",\"scope\":\"%s\",\"height\":%llu}\n", outfile ? "" : key, hex,
		       scope_name(scope), (unsigned long long)height);
	else if (rc == 0) {
		printf("%s API key created at height %llu (hash %s)\n", scope_name(scope), (unsigned long long)height, hex);
		if (outfile)
			printf("written to %s\n", outfile);
		else
			printf("%s\n(shown once: the chain holds only its hash)\n", key);
	}
	cm_wipe(key, sizeof(key));
	return rc;
}

/* A key's hash from 64 hex digits, @FILE or the key itself. */
static int hash_arg(const char *cmd, const char *s, uint8_t h[CM_HASH_BYTES])
{
	char key[CM_API_KEY_MAX + 16];
	if (strlen(s) == 2 * CM_HASH_BYTES && cm_unhex(h, CM_HASH_BYTES, s) == CM_OK)
		return 0;
	if (s[0] == '@') {
		if (read_key_file(cmd, s + 1, key, sizeof(key)) != 0)
			return -1;
	} else {
		snprintf(key, sizeof(key), "%s", s);
	}
	cm_api_key_hash(key, strlen(key), h);
	cm_wipe(key, sizeof(key));
	return 0;
}

static int key_revoke(cli_conn *c, int argc, char **argv)
{
	const cli_opt opts[] = {CLI_CONN_OPTS(*c), {NULL, 0, NULL}};
	static const char help[] = "usage: muri key revoke KEY|@FILE|HASH [options]\n"
				   "Revokes an API key of the signing key's account (RevokeApiKey); every gateway\n"
				   "refuses it from the block that commits the revocation on.\n" CLI_CONN_HELP;
	char *pos[1];
	int npos, prc = cli_parse("key revoke", help, argc, argv, opts, pos, 1, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 1)
		return cli_fail(CLI_USAGE, "key revoke", "give the key, @FILE or its hash");
	uint8_t h[CM_HASH_BYTES];
	if (hash_arg("key revoke", pos[0], h) != 0)
		return CLI_FAIL;
	cm_ledger_client *lc = cli_ledger("key revoke", c);
	if (!lc)
		return CLI_FAIL;
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__RevokeApiKey rk = MURI__V1__REVOKE_API_KEY__INIT;
	rk.key_hash = (ProtobufCBinaryData){CM_HASH_BYTES, h};
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REVOKE_API_KEY;
	t.revoke_api_key = &rk;
	uint64_t height = 0;
	int rc = submit("key revoke", lc, &t, &height);
	cm_ledger_client_free(lc);
	if (!rc)
		printf("API key revoked at height %llu\n", (unsigned long long)height);
	return rc;
}

static int key_list(cli_conn *c, int argc, char **argv)
{
	const char *account = NULL;
	const cli_opt opts[] = {CLI_CONN_OPTS(*c), {"--account", CLI_STR, &account}, {NULL, 0, NULL}};
	static const char help[] = "usage: muri key list [--account ADDRESS] [options]\n"
				   "The API keys of an account (default: the signing key's): hash, scope, label,\n"
				   "heights of creation, expiry and revocation, collections.\n" CLI_CONN_HELP;
	char *pos[1];
	int npos, prc = cli_parse("key list", help, argc, argv, opts, pos, 0, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	uint8_t pk[CM_PK_BYTES];
	if (account && (strlen(account) != 2 * CM_PK_BYTES || cm_unhex(pk, CM_PK_BYTES, account) != CM_OK))
		return cli_fail(CLI_USAGE, "key list", "--account: not 64 hex digits");
	cm_ledger_client *lc = cli_ledger("key list", c);
	if (!lc)
		return CLI_FAIL;
	if (!account)
		memcpy(pk, cm_ledger_client_pubkey(lc), CM_PK_BYTES);
	Muri__V1__ApiKeysRequest req = MURI__V1__API_KEYS_REQUEST__INIT;
	req.account = (ProtobufCBinaryData){CM_PK_BYTES, pk};
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	int rc = cm_ledger_client_call(lc, "/muri.v1.Ledger/ListApiKeys", &req.base, &muri__v1__api_keys_response__descriptor,
				       &resp, &st);
	cm_ledger_client_free(lc);
	if (rc != CM_OK)
		return cli_fail(CLI_FAIL, "key list", "%s: %s", cm_rpc_code_name(st.code), st.message);
	const Muri__V1__ApiKeysResponse *r = (const Muri__V1__ApiKeysResponse *)resp;
	if (c->json)
		printf("[");
	else
		printf("%-64s %-10s %-8s %-8s %-8s %s\n", "hash", "scope", "created", "expiry", "revoked", "label / collections");
	for (size_t i = 0; i < r->n_keys; i++) {
		const Muri__V1__ApiKeyInfo *k = r->keys[i];
		char hex[2 * CM_HASH_BYTES + 1] = "";
		if (k->key_hash.len == CM_HASH_BYTES)
			cm_hex(hex, k->key_hash.data, CM_HASH_BYTES);
		if (c->json) {
			printf("%s{\"key_hash\":\"%s\",\"scope\":\"%s\",\"created_height\":%llu,\"expiry_height\":%llu,"
			       "\"revoked_height\":%llu,\"label\":", i ? "," : "", hex, scope_name(k->scope),
			       (unsigned long long)k->created_height, (unsigned long long)k->expiry_height,
			       (unsigned long long)k->revoked_height);
			cm_json_str(stdout, k->label ? k->label : "");
			printf(",\"collections\":[");
			for (size_t j = 0; j < k->n_collections; j++) {
				printf(j ? "," : "");
				cm_json_str(stdout, k->collections[j]);
			}
			printf("]}");
			continue;
		}
		char ex[24] = "-", rv[24] = "-";
		if (k->expiry_height)
			snprintf(ex, sizeof(ex), "%llu", (unsigned long long)k->expiry_height);
		if (k->revoked_height)
			snprintf(rv, sizeof(rv), "%llu", (unsigned long long)k->revoked_height);
		printf("%-64s %-10s %-8llu %-8s %-8s %s", hex, scope_name(k->scope), (unsigned long long)k->created_height,
		       ex, rv, k->label ? k->label : "");
		for (size_t j = 0; j < k->n_collections; j++)
			printf("%s%s", j ? "," : " [", k->collections[j]);
		printf("%s\n", k->n_collections ? "]" : "");
	}
	if (c->json)
		printf("]\n");
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int cli_apikey(int argc, char **argv)
{
	cli_conn c = {0};
	if (!strcmp(argv[0], "create"))
		return key_create(&c, argc - 1, argv + 1);
	if (!strcmp(argv[0], "revoke"))
		return key_revoke(&c, argc - 1, argv + 1);
	return key_list(&c, argc - 1, argv + 1);
}

/* ---- muri access ---- */

static int parse_keys(const char *cmd, const char *field, char *list, ProtobufCBinaryData *v, uint8_t (*buf)[CM_PK_BYTES],
		      size_t max, size_t *n)
{
	char *items[256];
	size_t k = list ? split(list, items, max) : 0;
	for (size_t i = 0; i < k; i++) {
		if (strlen(items[i]) != 2 * CM_PK_BYTES || cm_unhex(buf[i], CM_PK_BYTES, items[i]) != CM_OK)
			return cli_fail(CLI_USAGE, cmd, "%s: %s is not an address (64 hex digits)", field, items[i]);
		v[i] = (ProtobufCBinaryData){CM_PK_BYTES, buf[i]};
	}
	*n = k;
	return 0;
}

static void print_keys(const char *what, const ProtobufCBinaryData *v, size_t n)
{
	printf("%-8s", what);
	for (size_t i = 0; i < n; i++) {
		char hex[2 * CM_PK_BYTES + 1] = "?";
		if (v[i].len == CM_PK_BYTES)
			cm_hex(hex, v[i].data, CM_PK_BYTES);
		printf(" %s", hex);
	}
	printf("%s\n", n ? "" : " -");
}

int cli_cmd_access(int argc, char **argv)
{
	cli_conn c = {0};
	const char *readers = NULL, *writers = NULL, *owner = NULL;
	int pub = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(c),		  {"--readers", CLI_STR, &readers},
				{"--writers", CLI_STR, &writers}, {"--public", CLI_FLAG, &pub},
				{"--owner", CLI_STR, &owner},	  {NULL, 0, NULL}};
	static const char help[] =
		"usage: muri access show COLLECTION [options]\n"
		"       muri access set COLLECTION [--readers A,B] [--writers A,B] [--public] [--owner ADDRESS] [options]\n"
		"show: the collection's access owner, readers, writers and public-read flag, from the chain.\n"
		"set: replaces them (a SetAccess transaction, which only the access owner may send): readers may\n"
		"list, describe, get and search; writers also write; --public lets any account (and anonymous\n"
		"callers, where a gateway allows them) read; --owner hands the ownership over.\n" CLI_CONN_HELP;
	char *pos[2];
	int npos, prc = cli_parse("access", help, argc, argv, opts, pos, 2, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 2 || (strcmp(pos[0], "show") && strcmp(pos[0], "set")))
		return cli_fail(CLI_USAGE, "access", "expected `muri access show|set COLLECTION` (muri access --help)");
	cm_ledger_client *lc = NULL;
	int rc = 0;
	if (!strcmp(pos[0], "show")) {
		if (!(lc = cli_ledger("access", &c)))
			return CLI_FAIL;
		Muri__V1__AccessRequest req = MURI__V1__ACCESS_REQUEST__INIT;
		req.magu = pos[1];
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		rc = cm_ledger_client_call(lc, "/muri.v1.Ledger/GetAccess", &req.base, &muri__v1__access_info__descriptor,
					   &resp, &st);
		cm_ledger_client_free(lc);
		if (rc != CM_OK)
			return cli_fail(CLI_FAIL, "access", "%s: %s", cm_rpc_code_name(st.code), st.message);
		const Muri__V1__AccessInfo *a = (const Muri__V1__AccessInfo *)resp;
		printf("collection %s (changed at height %llu)\npublic   %s\n", a->magu, (unsigned long long)a->changed_height,
		       a->public_read ? "yes" : "no");
		print_keys("owner", &a->owner, 1);
		print_keys("writers", a->writers, a->n_writers);
		print_keys("readers", a->readers, a->n_readers);
		protobuf_c_message_free_unpacked(resp, NULL);
		return 0;
	}
	static uint8_t rb[256][CM_PK_BYTES], wb[256][CM_PK_BYTES], ob[CM_PK_BYTES];
	ProtobufCBinaryData rv[256], wv[256];
	size_t nr = 0, nw = 0;
	char rl[256 * 66] = "", wl[256 * 66] = "";
	if (readers)
		snprintf(rl, sizeof(rl), "%s", readers);
	if (writers)
		snprintf(wl, sizeof(wl), "%s", writers);
	if (parse_keys("access", "--readers", readers ? rl : NULL, rv, rb, 256, &nr) ||
	    parse_keys("access", "--writers", writers ? wl : NULL, wv, wb, 256, &nw))
		return CLI_USAGE;
	if (owner && (strlen(owner) != 2 * CM_PK_BYTES || cm_unhex(ob, CM_PK_BYTES, owner) != CM_OK))
		return cli_fail(CLI_USAGE, "access", "--owner: not an address (64 hex digits)");
	if (!(lc = cli_ledger("access", &c)))
		return CLI_FAIL;
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__SetAccess sa = MURI__V1__SET_ACCESS__INIT;
	sa.magu = pos[1];
	sa.readers = rv;
	sa.n_readers = nr;
	sa.writers = wv;
	sa.n_writers = nw;
	sa.public_read = pub;
	if (owner)
		sa.new_owner = (ProtobufCBinaryData){CM_PK_BYTES, ob};
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SET_ACCESS;
	t.set_access = &sa;
	uint64_t height = 0;
	rc = submit("access", lc, &t, &height);
	cm_ledger_client_free(lc);
	if (!rc)
		printf("access of %s set at height %llu: %zu readers, %zu writers, public %s\n", pos[1],
		       (unsigned long long)height, nr, nw, pub ? "yes" : "no");
	return rc;
}

/* ---- muri audit ---- */

/* Prints tx i of block b if it is an admin action on collection; keys
 * names the key hashes created for it (a revocation names only the hash). */
static void audit_tx(const Muri__V1__Block *b, size_t i, const char *collection, uint8_t (*keys)[CM_HASH_BYTES],
		     size_t *nkeys, size_t keys_max, int json, size_t *shown)
{
	const Muri__V1__BlockEffects *e = b->effects;
	const char *outcome = "?", *msg = "";
	for (size_t j = 0; e && j < e->n_outcomes; j++)
		if (e->outcomes[j] && e->outcomes[j]->index == i) {
			outcome = e->outcomes[j]->state == MURI__V1__TX_STATE__TX_COMMITTED ? "committed" : "failed";
			msg = e->outcomes[j]->message ? e->outcomes[j]->message : "";
		}
	Muri__V1__Transaction *t = muri__v1__transaction__unpack(NULL, b->txs[i]->body.len, b->txs[i]->body.data);
	if (!t)
		return;
	const char *what = NULL;
	switch (t->payload_case) {
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU:
		what = !strcmp(t->create_magu->name, collection) ? "create" : NULL;
		break;
	case MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU:
		what = !strcmp(t->drop_magu->name, collection) ? "drop" : NULL;
		break;
	case MURI__V1__TRANSACTION__PAYLOAD_SET_ACCESS:
		what = !strcmp(t->set_access->magu, collection) ? "set_access" : NULL;
		break;
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY:
		for (size_t j = 0; j < t->create_api_key->n_collections && !what; j++)
			if (!strcmp(t->create_api_key->collections[j], collection))
				what = "create_api_key";
		if (what && t->create_api_key->key_hash.len == CM_HASH_BYTES && *nkeys < keys_max)
			memcpy(keys[(*nkeys)++], t->create_api_key->key_hash.data, CM_HASH_BYTES);
		break;
	case MURI__V1__TRANSACTION__PAYLOAD_REVOKE_API_KEY:
		for (size_t j = 0; j < *nkeys && !what; j++)
			if (t->revoke_api_key->key_hash.len == CM_HASH_BYTES &&
			    !memcmp(keys[j], t->revoke_api_key->key_hash.data, CM_HASH_BYTES))
				what = "revoke_api_key";
		break;
	default: break;
	}
	if (what && t->sender.len == CM_PK_BYTES) {
		char acct[2 * CM_PK_BYTES + 1];
		cm_hex(acct, t->sender.data, CM_PK_BYTES);
		uint64_t h = b->header ? b->header->height : 0;
		if (json) {
			printf("%s{\"height\":%llu,\"action\":\"%s\",\"account\":\"%s\",\"outcome\":\"%s\",\"message\":",
			       *shown ? "," : "", (unsigned long long)h, what, acct, outcome);
			cm_json_str(stdout, msg);
			printf("}");
		} else {
			printf("%-8llu %-15s %s %-9s %s\n", (unsigned long long)h, what, acct, outcome, msg);
		}
		(*shown)++;
	}
	protobuf_c_message_free_unpacked(&t->base, NULL);
}

int cli_cmd_audit(int argc, char **argv)
{
	cli_conn c = {0};
	const char *collection = NULL;
	long from = 1, to = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(c), {"--collection", CLI_STR, &collection}, {"--from", CLI_INT, &from},
				{"--to", CLI_INT, &to}, {NULL, 0, NULL}};
	static const char help[] =
		"usage: muri audit --collection C [--from H] [--to H] [options]\n"
		"The admin actions on collection C recorded on chain between heights --from (default 1) and --to\n"
		"(default: the last committed block): created, dropped, access set, API keys limited to C created\n"
		"or revoked; each with its height, the account that signed it and whether it committed.\n" CLI_CONN_HELP;
	char *pos[1];
	int npos, prc = cli_parse("audit", help, argc, argv, opts, pos, 0, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (!collection || !*collection)
		return cli_fail(CLI_USAGE, "audit", "--collection: required");
	if (from < 1 || (to && to < from) || (to && to - from >= AUDIT_BLOCKS_MAX))
		return cli_fail(CLI_USAGE, "audit", "--from/--to: 1 <= from <= to, at most %d blocks", AUDIT_BLOCKS_MAX);
	cm_ledger_client *lc = cli_ledger("audit", &c);
	if (!lc)
		return CLI_FAIL;
	static uint8_t keys[4096][CM_HASH_BYTES];
	size_t nkeys = 0, shown = 0;
	int rc = 0;
	if (c.json)
		printf("[");
	else
		printf("%-8s %-15s %-64s %-9s %s\n", "height", "action", "account", "outcome", "message");
	for (long h = from; !to || h <= to; h++) {
		if (h - from >= AUDIT_BLOCKS_MAX)
			break;
		Muri__V1__BlockRequest req = MURI__V1__BLOCK_REQUEST__INIT;
		req.height = (uint64_t)h;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetBlock", &req.base, &muri__v1__block__descriptor, &resp,
					  &st) != CM_OK) {
			if (st.code != GRPC_STATUS_NOT_FOUND || to)
				rc = cli_fail(CLI_FAIL, "audit", "block %ld: %s: %s", h, cm_rpc_code_name(st.code), st.message);
			break; /* past the last committed block */
		}
		const Muri__V1__Block *b = (const Muri__V1__Block *)resp;
		for (size_t i = 0; i < b->n_txs; i++)
			if (b->txs[i])
				audit_tx(b, i, collection, keys, &nkeys, sizeof(keys) / sizeof(keys[0]), c.json, &shown);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	if (c.json)
		printf("]\n");
	cm_ledger_client_free(lc);
	return rc;
}
