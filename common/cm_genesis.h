/* What a process that is not a ledger replica needs of the ledger's genesis
 * file: the chain id and the replicas (public key and address, in genesis
 * order), which a follower trusts and a ledger client talks to, and the
 * gateways (`gateway = <hex key>`), which indexers let read proofs. The
 * other keys (balances, indexers, parameters) are the ledger's business
 * (services/ledger/lg_genesis.h has the grammar). */
#ifndef CM_GENESIS_H
#define CM_GENESIS_H

#include <stddef.h>
#include <stdint.h>

#include "cm_chain.h"
#include "cm_crypto.h"

#define CM_GENESIS_ADDR_MAX 256   /* bytes of a replica's host:port, NUL included */
#define CM_GENESIS_LINE_MAX 1024
#define CM_GENESIS_GATEWAYS_MAX 64

typedef struct cm_genesis_replicas {
	char chain_id[65];
	uint32_t n;
	uint8_t pks[CM_CHAIN_MAX_REPLICAS][CM_PK_BYTES];
	char addrs[CM_CHAIN_MAX_REPLICAS][CM_GENESIS_ADDR_MAX];
	const char *addrp[CM_CHAIN_MAX_REPLICAS]; /* addrp[i] = addrs[i] */
	uint32_t ngateways;
	uint8_t gateways[CM_GENESIS_GATEWAYS_MAX][CM_PK_BYTES];
} cm_genesis_replicas;

/* Reads chain_id, the `replica = <hex key> <host:port>` and the
 * `gateway = <hex key>` lines of path (at most CM_GENESIS_GATEWAYS_MAX).
 * CM_ERR_IO when it cannot be read, CM_ERR_INVALID for a malformed line or
 * a missing chain_id or replica, with err naming path, line and key. */
int cm_genesis_read_replicas(const char *path, cm_genesis_replicas *out, char *err, size_t errlen);

#endif
