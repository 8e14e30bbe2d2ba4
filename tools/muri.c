/* muri: the command line. One word picks the command; each lives in a file
 * of its own (cli_*.c) and answers --help. Errors are one line on stderr;
 * the exit status is 2 for a usage error and 1 for any other failure. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_crypto.h"
#include "cm_err.h"

static const char usage[] =
	"usage: muri COMMAND [ARGS] [--help]\n"
	"a local network:\n"
	"  devnet up | down | status | run        start, stop, inspect a devnet (default dir ~/.muri/devnet)\n"
	"keys and the ledger:\n"
	"  key gen FILE                           new ed25519 key; prints its address\n"
	"  key tls-uri NODE_KEY TLS_KEY           the URI SAN binding a TLS certificate to a node key\n"
	"  account show | transfer TO AMOUNT      balances and transfers\n"
	"  key create | list | revoke             an account's gateway API keys\n"
	"  access show | set COLLECTION           a collection's owner, readers, writers, public flag\n"
	"  audit --collection C                   admin actions on a collection, from the chain\n"
	"  indexer register | stake | unstake     an indexer's transactions\n"
	"collections and vectors (through the gateway):\n"
	"  collection create | list | describe | drop\n"
	"  insert COLLECTION --vector JSON | --file F\n"
	"  get COLLECTION ID...\n"
	"  split COLLECTION FRAGMENT              split a fragment in two (the owner's SplitFragment)\n"
	"  scroll COLLECTION [--page-size N] [--cursor C | --all]  records in id order, a page at a time\n"
	"  search COLLECTION --vector JSON | --like ID [--filter JSON] [--k K]\n"
	"  delete COLLECTION ID...\n"
	"  import SOURCE --collection C           a file, file://, http(s):// or s3:// URL, resumable\n"
	"  import URL --collection C --server-side  the gateway reads it (its Import RPC)\n"
	"  bench --collection C --queries Q.fvecs --truth GT.ivecs\n"
	"a process:\n"
	"  status HOST:PORT [--service S]         its Status RPC\n"
	"a devnet's processes serve TLS; client commands verify them with its CA (D/tls/ca.pem) when the\n"
	"address comes from --dir, or with --tls-ca FILE; plaintext otherwise\n";

static const struct {
	const char *name;
	int (*fn)(int, char **);
} commands[] = {
	{"devnet", cli_cmd_devnet},   {"key", cli_cmd_key},         {"keygen", cli_cmd_keygen},
	{"status", cli_cmd_status},   {"account", cli_cmd_account}, {"indexer", cli_cmd_indexer},
	{"collection", cli_cmd_collection}, {"insert", cli_cmd_insert}, {"get", cli_cmd_get},
	{"search", cli_cmd_search},   {"delete", cli_cmd_delete},   {"import", cli_cmd_import},
	{"bench", cli_cmd_bench},     {"access", cli_cmd_access},   {"audit", cli_cmd_audit},
	{"scroll", cli_cmd_scroll},   {"split", cli_cmd_split},
};

int main(int argc, char **argv)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	/* errors are one line of ours: gRPC's own log lines (a failed TLS
	 * handshake) stay out unless asked for; the services a devnet starts
	 * get the environment as it was */
	if (!getenv("GRPC_VERBOSITY") && setenv("GRPC_VERBOSITY", "NONE", 1) == 0)
		cli_quiet_grpc = 1;
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "muri: unknown command %s (muri --help lists them)\n", argv[1]);
	return CLI_USAGE;
}
