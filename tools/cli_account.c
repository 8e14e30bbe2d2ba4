/* Keys and the ledger: muri key gen, muri account show | transfer, muri
 * indexer register | stake | unstake, and muri status (any process's Status).
 * Transactions are signed with --key (default: the devnet's demo.key) and
 * sent through the ledger client, which fails over between replicas and
 * waits for the commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_tls_id.h"
#include "cli_devnet.h"
#include "cm_err.h"

static int keygen(const char *cmd, int argc, char **argv)
{
	static const char help[] = "usage: muri key gen FILE\n"
				   "Creates an ed25519 key file (mode 0600; never overwrites) and prints its public key,\n"
				   "which is also the account's address.\n";
	char *pos[1];
	int npos, prc = cli_parse(cmd, help, argc, argv, NULL, pos, 1, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 1)
		return cli_fail(CLI_USAGE, cmd, "give the key file to create (muri %s FILE)", cmd);
	cm_keypair kp;
	cm_keypair_generate(&kp);
	int rc = cm_key_save(&kp, pos[0]);
	char hex[2 * CM_PK_BYTES + 1];
	cm_hex(hex, kp.pk, CM_PK_BYTES);
	cm_keypair_wipe(&kp);
	if (rc != CM_OK)
		return cli_fail(CLI_FAIL, cmd, "%s: %s", pos[0], cm_strerror(rc));
	printf("%s\n", hex);
	return 0;
}

int cli_cmd_keygen(int argc, char **argv) { return keygen("keygen", argc, argv); }

/* `muri key tls-uri NODE_KEY TLS_KEY`: the URI a node's TLS certificate
 * carries so that peers know its node key (cm_tls_id.h); for operators who
 * bring their own certificates. */
static int tls_uri(int argc, char **argv)
{
	static const char help[] =
		"usage: muri key tls-uri NODE_KEY_FILE TLS_KEY_FILE\n"
		"Prints muri:node:<node key>:<signature>, the node key's signature over the public half of the\n"
		"PEM private key TLS_KEY_FILE. Put it in the certificate as a URI subject alternative name\n"
		"(e.g. openssl req ... -addext \"subjectAltName=DNS:host,URI:<it>\"); peers then take calls\n"
		"over that certificate as the node's. Both files must be mode 0600.\n";
	if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		fputs(help, stdout);
		return 0;
	}
	if (argc != 2)
		return cli_fail(CLI_USAGE, "key tls-uri", "give NODE_KEY_FILE TLS_KEY_FILE");
	cm_keypair kp;
	int rc = cm_key_load(&kp, argv[0]);
	if (rc != CM_OK)
		return cli_fail(CLI_FAIL, "key tls-uri", "%s: %s%s", argv[0], cm_strerror(rc),
				rc == CM_ERR_PERM ? " (readable by group or others; chmod 600 it)" : "");
	uint8_t *spki = NULL;
	size_t n = 0;
	char err[512], uri[CM_TLS_ID_URI_MAX];
	rc = cm_tls_id_spki_of_key_file(argv[1], &spki, &n, err, sizeof(err));
	if (rc != CM_OK) {
		cm_keypair_wipe(&kp);
		return cli_fail(CLI_FAIL, "key tls-uri", "%s", err);
	}
	cm_tls_id_uri(&kp, spki, n, uri);
	cm_keypair_wipe(&kp);
	free(spki);
	printf("%s\n", uri);
	return 0;
}

int cli_cmd_key(int argc, char **argv)
{
	if (argc >= 1 && !strcmp(argv[0], "gen"))
		return keygen("key gen", argc - 1, argv + 1);
	if (argc >= 1 && !strcmp(argv[0], "tls-uri"))
		return tls_uri(argc - 1, argv + 1);
	if (argc >= 1 && (!strcmp(argv[0], "create") || !strcmp(argv[0], "list") || !strcmp(argv[0], "revoke")))
		return cli_apikey(argc, argv);
	if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		printf("usage: muri key gen FILE               a new ed25519 key file (an account)\n"
		       "       muri key create|list|revoke ...  the account's gateway API keys (--help on each)\n"
		       "       muri key tls-uri NODE_KEY_FILE TLS_KEY_FILE  the certificate URI binding a TLS key to a node key\n");
		return 0;
	}
	return cli_fail(CLI_USAGE, "key", "expected `muri key gen FILE`, `muri key create|list|revoke` or "
			"`muri key tls-uri NODE_KEY TLS_KEY`");
}

int cli_cmd_status(int argc, char **argv)
{
	const char *service = "gateway", *ca = NULL;
	const cli_opt opts[] = {{"--service", CLI_STR, &service}, {"--tls-ca", CLI_STR, &ca}, {NULL, 0, NULL}};
	static const char help[] = "usage: muri status HOST:PORT [--service ledger|indexer|gateway] [--tls-ca FILE]\n"
				   "The Status RPC of one process (default: a gateway); over TLS verified with the\n"
				   "PEM CA in FILE when given (a devnet's is D/tls/ca.pem), else plaintext.\n";
	char *pos[1];
	int npos, prc = cli_parse("status", help, argc, argv, opts, pos, 1, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 1)
		return cli_fail(CLI_USAGE, "status", "give the process's HOST:PORT");
	return dn_status_of(pos[0], ca, service, 0, NULL, 0);
}

/* A 64-hex-digit address, or a key file whose public half is the address. */
static int address_of(const char *s, uint8_t out[CM_PK_BYTES])
{
	if (strlen(s) == 2 * CM_PK_BYTES && cm_unhex(out, CM_PK_BYTES, s) == CM_OK)
		return 0;
	cm_keypair kp;
	if (cm_key_load(&kp, s) != CM_OK)
		return -1;
	memcpy(out, kp.pk, CM_PK_BYTES);
	cm_keypair_wipe(&kp);
	return 0;
}

static int parse_amount(const char *cmd, const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = s ? strtoull(s, &end, 10) : 0;
	if (!s || end == s || *end || s[0] == '-')
		return cli_fail(CLI_USAGE, cmd, "amount must be a whole number of MURI: %s", s ? s : "(none)");
	*out = v;
	return 0;
}

/* Submits tx, waits for the commit, prints the outcome. */
static int submit(const char *cmd, cm_ledger_client *lc, const Muri__V1__Transaction *tx, const char *what)
{
	cm_ledger_result res;
	char err[600];
	int rc = cm_ledger_client_submit(lc, tx, CM_LC_WAIT, &res, err, sizeof(err));
	if (rc != CM_OK)
		return cli_fail(CLI_FAIL, cmd, "%s", rc == CM_ERR_STATE ? res.message : err);
	char hex[2 * CM_HASH_BYTES + 1];
	cm_hex(hex, res.tx_hash, CM_HASH_BYTES);
	printf("%s: committed at height %llu (tx %s)\n", what, (unsigned long long)res.height, hex);
	return 0;
}

static const char account_help[] =
	"usage: muri account show [ADDRESS|KEYFILE] [options]\n"
	"       muri account transfer TO AMOUNT [options]\n"
	"show: balance, nonce, stake of an account (default: the signing key's).\n"
	"transfer: AMOUNT MURI from the signing key's account to TO (address or key file),\n"
	"waiting for the commit.\n" CLI_CONN_HELP;

int cli_cmd_account(int argc, char **argv)
{
	cli_conn c = {0};
	const cli_opt opts[] = {CLI_CONN_OPTS(c), {NULL, 0, NULL}};
	char *pos[3];
	int npos, prc = cli_parse("account", account_help, argc, argv, opts, pos, 3, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos < 1 || (strcmp(pos[0], "show") && strcmp(pos[0], "transfer")))
		return cli_fail(CLI_USAGE, "account", "expected show or transfer (muri account --help)");
	int show = !strcmp(pos[0], "show");
	if ((show && npos > 2) || (!show && npos != 3))
		return cli_fail(CLI_USAGE, "account", show ? "show takes at most one address" : "transfer takes TO AMOUNT");
	uint8_t addr[CM_PK_BYTES];
	uint64_t amount = 0;
	if (npos >= 2 && address_of(pos[1], addr) != 0)
		return cli_fail(CLI_USAGE, "account", "not an address (64 hex digits) or a key file: %s", pos[1]);
	if (!show && parse_amount("account", pos[2], &amount))
		return CLI_USAGE;
	cm_ledger_client *lc = cli_ledger("account", &c);
	if (!lc)
		return CLI_FAIL;
	int rc = 0;
	if (show) {
		if (npos < 2)
			memcpy(addr, cm_ledger_client_pubkey(lc), CM_PK_BYTES);
		Muri__V1__AccountRequest req = MURI__V1__ACCOUNT_REQUEST__INIT;
		req.address.data = addr;
		req.address.len = CM_PK_BYTES;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetAccount", &req.base, &muri__v1__account__descriptor,
					  &resp, &st) != CM_OK) {
			rc = cli_fail(CLI_FAIL, "account", "%s: %s", cm_rpc_code_name(st.code), st.message);
		} else {
			Muri__V1__Account *a = (Muri__V1__Account *)resp;
			char hex[2 * CM_PK_BYTES + 1];
			cm_hex(hex, addr, CM_PK_BYTES);
			if (c.json)
				printf("{\"address\": \"%s\", \"balance\": %llu, \"nonce\": %llu, \"staked\": %llu, "
				       "\"unbonding\": %llu}\n",
				       hex, (unsigned long long)a->balance, (unsigned long long)a->nonce,
				       (unsigned long long)a->staked, (unsigned long long)a->unbonding);
			else
				printf("address   %s\nbalance   %llu\nnonce     %llu\nstaked    %llu\nunbonding %llu\n", hex,
				       (unsigned long long)a->balance, (unsigned long long)a->nonce,
				       (unsigned long long)a->staked, (unsigned long long)a->unbonding);
			protobuf_c_message_free_unpacked(resp, NULL);
		}
	} else {
		Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
		tr.to.data = addr;
		tr.to.len = CM_PK_BYTES;
		tr.amount = amount;
		Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
		t.transfer = &tr;
		char what[160];
		snprintf(what, sizeof(what), "transfer of %llu MURI", (unsigned long long)amount);
		rc = submit("account", lc, &t, what);
	}
	cm_ledger_client_free(lc);
	return rc;
}

static const char indexer_help[] =
	"usage: muri indexer register ADDRESS CAPACITY_BYTES [options]\n"
	"       muri indexer stake AMOUNT [options]\n"
	"       muri indexer unstake AMOUNT [options]\n"
	"       muri indexer show [PUBKEY|KEYFILE] [options]\n"
	"Transactions of the indexer whose key is --key: register its RPC address and capacity, lock\n"
	"or unlock stake; show: what the ledger knows of an indexer.\n" CLI_CONN_HELP;

int cli_cmd_indexer(int argc, char **argv)
{
	cli_conn c = {0};
	const cli_opt opts[] = {CLI_CONN_OPTS(c), {NULL, 0, NULL}};
	char *pos[3];
	int npos, prc = cli_parse("indexer", indexer_help, argc, argv, opts, pos, 3, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	const char *sub = npos ? pos[0] : "";
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__RegisterIndexer reg = MURI__V1__REGISTER_INDEXER__INIT;
	Muri__V1__Stake stake = MURI__V1__STAKE__INIT;
	Muri__V1__Unstake unstake = MURI__V1__UNSTAKE__INIT;
	uint8_t pk[CM_PK_BYTES];
	char what[160];
	if (!strcmp(sub, "register") && npos == 3) {
		uint64_t cap;
		if (parse_amount("indexer", pos[2], &cap))
			return CLI_USAGE;
		reg.address = pos[1];
		reg.capacity_bytes = cap;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REGISTER_INDEXER;
		t.register_indexer = &reg;
		snprintf(what, sizeof(what), "indexer registered at %s", pos[1]);
	} else if ((!strcmp(sub, "stake") || !strcmp(sub, "unstake")) && npos == 2) {
		uint64_t amount;
		if (parse_amount("indexer", pos[1], &amount))
			return CLI_USAGE;
		if (sub[0] == 's') {
			stake.amount = amount;
			t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_STAKE;
			t.stake = &stake;
		} else {
			unstake.amount = amount;
			t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_UNSTAKE;
			t.unstake = &unstake;
		}
		snprintf(what, sizeof(what), "%s of %llu MURI", sub, (unsigned long long)amount);
	} else if (!strcmp(sub, "show") && npos <= 2) {
		if (npos == 2 && address_of(pos[1], pk) != 0)
			return cli_fail(CLI_USAGE, "indexer", "not a public key (64 hex digits) or a key file: %s", pos[1]);
	} else {
		return cli_fail(CLI_USAGE, "indexer",
				"expected register ADDRESS CAPACITY, stake AMOUNT, unstake AMOUNT or show (muri indexer --help)");
	}
	cm_ledger_client *lc = cli_ledger("indexer", &c);
	if (!lc)
		return CLI_FAIL;
	int rc;
	if (!strcmp(sub, "show")) {
		if (npos < 2)
			memcpy(pk, cm_ledger_client_pubkey(lc), CM_PK_BYTES);
		Muri__V1__IndexerRequest req = MURI__V1__INDEXER_REQUEST__INIT;
		req.pubkey.data = pk;
		req.pubkey.len = CM_PK_BYTES;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		rc = cm_ledger_client_call(lc, "/muri.v1.Ledger/GetIndexer", &req.base, &muri__v1__indexer_info__descriptor,
					   &resp, &st);
		if (rc != CM_OK) {
			rc = cli_fail(CLI_FAIL, "indexer", "%s: %s", cm_rpc_code_name(st.code), st.message);
		} else {
			Muri__V1__IndexerInfo *x = (Muri__V1__IndexerInfo *)resp;
			char hex[2 * CM_PK_BYTES + 1];
			cm_hex(hex, pk, CM_PK_BYTES);
			printf("pubkey    %s\naddress   %s\ncapacity  %llu\nused      %llu\nfill      %u.%u%%\n"
			       "stake     %llu\nfailures  %u\nactive    %s\njailed    %s\n",
			       hex, x->address, (unsigned long long)x->capacity_bytes, (unsigned long long)x->used_bytes,
			       x->fill_permille / 10, x->fill_permille % 10, (unsigned long long)x->stake, x->failures,
			       x->active ? "yes" : "no", x->jailed ? "yes" : "no");
			protobuf_c_message_free_unpacked(resp, NULL);
		}
	} else {
		rc = submit("indexer", lc, &t, what);
	}
	cm_ledger_client_free(lc);
	return rc;
}
