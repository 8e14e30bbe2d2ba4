/* Test support: a ledger network of muri-ledger processes on loopback,
 * started from a genesis file written here (fresh replica keys, ports
 * chosen at run time, one funded account), for the tests that need real
 * replicas (tests/ledger/test_follow.c, test_ledger_client.c). */
#ifndef MURI_TNET_H
#define MURI_TNET_H

#include <stdint.h>

#include "cm_crypto.h"
#include "tproc.h"

#define TNET_MAX 8

typedef struct tnet {
	int n;
	cm_keypair reps[TNET_MAX];
	uint8_t pks[TNET_MAX][CM_PK_BYTES]; /* the replicas' public keys, in genesis order */
	char addrs[TNET_MAX][32];
	const char *addrp[TNET_MAX];
	tproc procs[TNET_MAX];
	char genesis[600];
} tnet;

/* Writes dir/genesis.txt (chain, n replicas, the account funded with
 * balance) and starts the n replicas (named name in their logs). 0 when
 * every replica listens; -1 otherwise (what failed is printed). */
int tnet_start(tnet *t, const char *dir, const char *name, const char *chain, int n, const uint8_t *funded_pk,
	       uint64_t balance);
/* Stops every replica still running (SIGTERM) and removes their folders,
 * or keeps them and prints their logs when failed. */
void tnet_stop(tnet *t, int failed);

#endif
