/* The genesis file: chain id, genesis time, the ledger replicas, initial
 * balances, pre-registered indexers with their stake, the chain's known
 * gateways (recorded in the state; settlement itself needs each searcher's
 * allowance, not this list), and parameter values. A strict text format, one
 * "key = value" a line, '#' starts a comment:
 *
 *   chain_id = muri-devnet                 (1..64 bytes of [A-Za-z0-9_.-])
 *   genesis_time_ms = 1700000000000
 *   replica = <hex pubkey> <host:port>     (at least one; order = position)
 *   account = <hex pubkey> <balance>
 *   indexer = <hex pubkey> <host:port> <capacity bytes> <stake>
 *   gateway = <hex pubkey>
 *   param.<name> = <integer>               (see lg_param_find)
 *
 * Every error names its line. Repeated keys, unknown keys and parameters,
 * values out of range and a total supply beyond 2^63 - 1 are errors. */
#ifndef LG_GENESIS_H
#define LG_GENESIS_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "lg_tx.h"

#define LG_GENESIS_MAX_BYTES (16u << 20)
#define LG_GENESIS_LINE_MAX 1024

typedef struct lg_genesis_account {
	uint8_t pk[CM_PK_BYTES];
	uint64_t balance;
} lg_genesis_account;

typedef struct lg_genesis_replica {
	uint8_t pk[CM_PK_BYTES];
	char address[LG_ADDRESS_MAX + 1];
} lg_genesis_replica;

typedef struct lg_genesis_indexer {
	uint8_t pk[CM_PK_BYTES];
	char address[LG_ADDRESS_MAX + 1];
	uint64_t capacity;
	uint64_t stake;
} lg_genesis_indexer;

typedef struct lg_genesis_param {
	char name[LG_PARAM_NAME_MAX + 1];
	int64_t value;
} lg_genesis_param;

typedef struct lg_genesis {
	char chain_id[LG_CHAIN_ID_MAX + 1];
	uint64_t genesis_time_ms;
	lg_genesis_replica *replicas;
	size_t nreplicas;
	lg_genesis_account *accounts;
	size_t naccounts;
	lg_genesis_indexer *indexers;
	size_t nindexers;
	uint8_t (*gateways)[CM_PK_BYTES];
	size_t ngateways;
	lg_genesis_param *params;
	size_t nparams;
} lg_genesis;

/* Parses len bytes of genesis text. The caller owns *out (lg_genesis_free()).
 * CM_ERR_INVALID with err naming the line, CM_ERR_TOOBIG beyond
 * LG_GENESIS_MAX_BYTES, CM_ERR_NOMEM. */
int lg_genesis_parse(const char *text, size_t len, lg_genesis **out, char *err, size_t errlen);
/* Reads and parses the file at path (CM_ERR_IO / CM_ERR_NOTFOUND if unreadable). */
int lg_genesis_load(const char *path, lg_genesis **out, char *err, size_t errlen);
void lg_genesis_free(lg_genesis *g);

/* The canonical text of g: the keys above in a fixed order, entries sorted by
 * key, parameters by name. Parsing it gives back g. The caller owns *out
 * (free()). */
int lg_genesis_format(const lg_genesis *g, char **out);
/* BLAKE2b-256 (CM_DOM_STATE) of the canonical text: two files that mean the
 * same genesis have the same digest. */
int lg_genesis_digest(const lg_genesis *g, uint8_t out[CM_HASH_BYTES]);

#endif
