/* What the muri command's parts share: option parsing with --help, one-line
 * errors (exit 2 for usage, 1 otherwise), where a devnet lives and how to
 * reach its gateway and ledger (over TLS with its CA, or --tls-ca), and the
 * gateway's messages built from text (JSON: common/cm_json.h). */
#ifndef CLI_H
#define CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cm_crypto.h"
#include "cm_json.h"
#include "cm_ledger_client.h"
#include "cm_rpc.h"
#include "vectorstore.pb-c.h"

#define CLI_USAGE 2
#define CLI_FAIL 1
#define CLI_TIMEOUT_MS 30000 /* a command's RPC deadline unless --timeout */
#define CLI_DEVNET_CHAIN "muri-devnet"

/* ---- options ----------------------------------------------------------- */

enum cli_opt_kind { CLI_STR, CLI_INT, CLI_FLAG };

typedef struct cli_opt {
	const char *name;  /* "--gateway" */
	int kind;
	void *dst;         /* const char ** / long * / int * */
} cli_opt;

/* Parses argv (without the command words) against opts; positional
 * arguments go to pos (at most maxpos). Returns 0, CLI_USAGE after printing
 * one line naming the problem, or -1 after printing help (exit 0). */
int cli_parse(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts, char **pos,
	      int maxpos, int *npos);

/* 1 when muri set GRPC_VERBOSITY=NONE for itself (the services it starts
 * do not inherit it). */
extern int cli_quiet_grpc;

/* Prints "muri CMD: message" to stderr; returns code. */
int cli_fail(int code, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- where things are -------------------------------------------------- */

/* The devnet folder: --dir, else $MURI_DEVNET, else ~/.muri/devnet. */
void cli_devnet_dir(const char *given, char *out, size_t len);

/* The common connection options every client command takes. */
typedef struct cli_conn {
	const char *gateway;   /* host:port */
	const char *ledger;    /* host:port[,host:port...] */
	const char *dir;       /* devnet folder */
	const char *chain_id;
	const char *key;       /* signing key file */
	const char *tls_ca;    /* PEM CA to verify servers' TLS certificates */
	const char *api_key;   /* the gateway credential: a key, or @FILE holding one */
	long timeout_ms;
	int json;
} cli_conn;

#define CLI_CONN_OPTS(c)                                                                      \
	{"--gateway", CLI_STR, &(c).gateway}, {"--ledger", CLI_STR, &(c).ledger},            \
		{"--dir", CLI_STR, &(c).dir}, {"--chain-id", CLI_STR, &(c).chain_id},        \
		{"--key", CLI_STR, &(c).key}, {"--timeout", CLI_INT, &(c).timeout_ms},       \
		{"--json", CLI_FLAG, &(c).json}, {"--tls-ca", CLI_STR, &(c).tls_ca},        \
		{"--api-key", CLI_STR, &(c).api_key}
#define CLI_CONN_HELP                                                                          \
	"  --gateway HOST:PORT   the gateway (default: the devnet's, see --dir)\n"               \
	"  --ledger HOST:PORT,.. ledger replicas (default: the devnet's genesis)\n"             \
	"  --dir D               devnet folder (default $MURI_DEVNET or ~/.muri/devnet)\n"     \
	"  --chain-id ID         chain id for transactions (default: the genesis's)\n"         \
	"  --key FILE            signing key (default: the devnet's demo.key)\n"                \
	"  --timeout MS          RPC deadline (default 30000)\n"                                  \
	"  --tls-ca FILE         PEM CA to verify the servers' TLS (default: the devnet's\n"        \
	"                        D/tls/ca.pem when the address comes from it or --dir is given;\n" \
	"                        else plaintext)\n"                                                 \
	"  --api-key KEY|@FILE   the gateway's API key (default: $MURI_API_KEY, else the\n"       \
	"                        devnet's D/admin.apikey when the gateway is the devnet's or\n"   \
	"                        --dir is given)\n"                                                \
	"  --json                print JSON\n"

/* The CA file to verify TLS with: --tls-ca, else the devnet's D/tls/ca.pem
 * when the address comes from the devnet (from_devnet) or --dir names it,
 * and the file exists; else NULL (plaintext). buf holds the devnet's path. */
const char *cli_tls_ca(const cli_conn *c, int from_devnet, char *buf, size_t len);
/* What to add to an UNAVAILABLE error: a hint about TLS. */
const char *cli_tls_hint(const char *ca);

/* A client to the gateway; NULL after printing why. */
cm_rpc_client *cli_gateway(const char *cmd, const cli_conn *c);
/* A ledger client signing with the key (--key or the devnet's demo.key). */
cm_ledger_client *cli_ledger(const char *cmd, const cli_conn *c);
/* One gateway call; on failure prints "muri CMD: CODE: message" and returns
 * CLI_FAIL (resp untouched). */
int cli_call(const char *cmd, const cli_conn *c, cm_rpc_client *gw, const char *method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *d, ProtobufCMessage **resp);

/* ---- messages from text (JSON: cm_json.h) ----------------------------- */

/* A filter: {"field": value | {"$eq":v,"$in":[..],"$gt":n,...}}. */
Muri__V1__Filter *cli_filter(const cm_json *j, char *err, size_t errlen);
void cli_filter_free(Muri__V1__Filter *f);
void cli_print_value(FILE *f, const Muri__V1__Value *v, int json);
void cli_print_metadata(FILE *f, const Muri__V1__Metadata *m, int json);

int cli_level(const char *s);    /* ONE|QUORUM|ALL -> enum, -1 if unknown */
int cli_metric(const char *s);   /* cosine|l2|dot|hamming -> enum, -1 */
/* A binary vector given in hex (two digits a byte, byte 0 first) into
 * malloc()ed bytes; -1 if not even-length hex. */
int cli_hex_bytes(const char *hex, uint8_t **out, size_t *n);
const char *cli_metric_name(int m);


/* ---- commands ---------------------------------------------------------- */

int cli_cmd_devnet(int argc, char **argv);
int cli_cmd_key(int argc, char **argv);
int cli_cmd_keygen(int argc, char **argv);
int cli_cmd_status(int argc, char **argv);
int cli_cmd_account(int argc, char **argv);
int cli_cmd_indexer(int argc, char **argv);
int cli_cmd_collection(int argc, char **argv);
int cli_cmd_insert(int argc, char **argv);
int cli_cmd_get(int argc, char **argv);
int cli_cmd_scroll(int argc, char **argv);
int cli_cmd_search(int argc, char **argv);
int cli_cmd_delete(int argc, char **argv);
int cli_cmd_import(int argc, char **argv);
/* muri import --server-side: the gateway's Import RPC (cli_import_remote.c),
 * called again (it resumes) after a transient failure, retries times at most. */
int cli_import_remote(const cli_conn *c, const char *source, const char *collection, const char *format, long batch,
		      int level, long retries);
/* Whether a failed import call may succeed if made again (not a refusal of
 * the request itself: bad argument, unknown collection, no permission). */
int cli_import_transient(int code);
int cli_cmd_bench(int argc, char **argv);
/* cli_apikey.c: muri key create|list|revoke, muri access, muri audit. */
int cli_apikey(int argc, char **argv);
int cli_cmd_access(int argc, char **argv);
int cli_cmd_audit(int argc, char **argv);
/* cli_split.c: muri split COLLECTION FRAGMENT. */
int cli_cmd_split(int argc, char **argv);
/* The API key for c (--api-key, $MURI_API_KEY, the devnet's D/admin.apikey
 * when from_devnet or --dir is given) into out; 0 when there is one, 1 when none, -1 after
 * printing why a given one cannot be read. The caller wipes out. */
int cli_api_key(const char *cmd, const cli_conn *c, int from_devnet, char *out, size_t len);

#endif
