/* The ledger's deterministic state machine: executes the transactions of a
 * committed block in order against the store (accounts, staking, indexers,
 * Magus and their fragment configurations, fragment roots, challenges,
 * settlement, governance), commits the block and its changes as one SQLite
 * transaction, and chains the state root. Also the queries the Ledger
 * service answers, as protobuf-c messages of ledger.proto. */
#ifndef LG_STATE_H
#define LG_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "ledger.pb-c.h"
#include "lg_store.h"

struct lg_genesis;

/* ---- named parameters ---- */

typedef struct lg_param_def {
	const char *name;
	int64_t def, min, max;
	int governable; /* 0: fixed at genesis */
	const char *help;
} lg_param_def;

/* The parameter table, by name; NULL if unknown. */
const lg_param_def *lg_param_find(const char *name);
size_t lg_param_count(void);
const lg_param_def *lg_param_at(size_t i);

/* ---- the state machine ---- */

typedef struct lg_state lg_state;

/* Opens the state at path. A new store is initialized from genesis (state
 * at height 0); an existing one resumes at its last committed height, and if
 * genesis is given it must be the one the store was created from. The
 * caller owns *out (lg_state_close()); genesis is not kept. */
int lg_state_open(lg_state **out, const char *path, const struct lg_genesis *genesis, char *err,
		  size_t errlen);
void lg_state_close(lg_state *st);
const char *lg_state_errmsg(const lg_state *st);

/* A committed block as consensus hands it over. The header, payload and qc
 * bytes are stored as given (lg_store_get_block returns them); txs are the
 * block's transactions in order, e.g. Muri__V1__Block.txs. */
typedef struct lg_block_in {
	uint64_t height;                 /* the last committed height + 1 */
	uint8_t hash[CM_HASH_BYTES];
	uint8_t beacon[CM_HASH_BYTES];   /* this block's beacon: seeds every draw */
	uint8_t proposer[CM_PK_BYTES];   /* receives the fees; all zero burns them */
	const uint8_t *header;
	size_t header_len;
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *qc;
	size_t qc_len;
	Muri__V1__SignedTransaction *const *txs;
	size_t ntxs;
} lg_block_in;

enum lg_apply_flags {
	LG_APPLY_SIGS_VERIFIED = 1u, /* every tx signature was checked at mempool entry */
};

/* Called after a block commits, once per transaction, in order. */
typedef void (*lg_tx_observer)(void *arg, uint64_t height, uint32_t index,
			       const uint8_t hash[CM_HASH_BYTES], Muri__V1__TxState state,
			       const char *message);
void lg_state_set_observer(lg_state *st, lg_tx_observer fn, void *arg);

/* Executes and commits block b: every tx is recorded COMMITTED or FAILED (a
 * failed tx is not an error), then the block, the outcomes, every state
 * change and the new state root are committed in one SQLite transaction.
 * root, if not NULL, receives the new state root. CM_ERR_RANGE if b->height
 * is not the next height; CM_ERR_IO (and nothing applied, the state still at
 * the previous height) if the store fails. */
int lg_state_apply(lg_state *st, const lg_block_in *b, unsigned flags,
		   uint8_t root[CM_HASH_BYTES]);

uint64_t lg_state_height(const lg_state *st);
void lg_state_root(const lg_state *st, uint8_t out[CM_HASH_BYTES]);
const char *lg_state_chain_id(const lg_state *st);
/* The current value of a named parameter (0 for an unknown name). */
int64_t lg_state_param(const lg_state *st, const char *name);
/* The writer's store, for queries on the committing thread. */
lg_store *lg_state_store(lg_state *st);

/* The queries (lg_query.h) read through any lg_store. */
#include "lg_query.h"

#endif
