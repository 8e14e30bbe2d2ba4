/* The ledger's mempool: signed transactions waiting for a block. Bounded in
 * count, bytes and per sender; a duplicate or a transaction whose nonce is
 * already used is refused on entry with a code that says which. Proposals
 * take transactions in arrival order, but per sender only in consecutive
 * nonce order, and mark them in flight until their block commits (removed)
 * or goes stale (offered again). Thread-safe. */
#ifndef LG_MEMPOOL_H
#define LG_MEMPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"

typedef struct lg_mempool lg_mempool;

typedef struct lg_mempool_opts {
	size_t max_txs;        /* transactions held, >= 1 */
	size_t max_bytes;      /* bytes held, >= 1 */
	size_t max_per_sender; /* transactions held for one sender, >= 1 */
} lg_mempool_opts;

/* The next nonce expected from sender (for lg_mempool_take: after the
 * pending blocks a proposal extends; for requeue: in committed state). */
typedef uint64_t (*lg_nonce_fn)(void *arg, const uint8_t sender[CM_PK_BYTES]);

/* One transaction handed out by lg_mempool_take; bytes belong to the pool
 * until lg_mempool_release. */
typedef struct lg_mempool_tx {
	uint8_t hash[CM_HASH_BYTES];
	const uint8_t *bytes;
	size_t len;
} lg_mempool_tx;

/* The caller owns *out (lg_mempool_free). */
int lg_mempool_new(const lg_mempool_opts *o, lg_mempool **out);
void lg_mempool_free(lg_mempool *m);

/* Adds a transaction whose signature and form the caller has checked.
 * committed_nonce is the sender's next nonce in committed state. The pool
 * copies bytes. CM_OK; CM_ERR_EXISTS for a duplicate (same hash) or a second
 * transaction with the same sender and nonce; CM_ERR_STATE when
 * nonce < committed_nonce (already used); CM_ERR_TOOBIG when a limit is
 * reached. */
int lg_mempool_add(lg_mempool *m, const uint8_t hash[CM_HASH_BYTES],
		   const uint8_t sender[CM_PK_BYTES], uint64_t nonce, const uint8_t *bytes,
		   size_t len, uint64_t committed_nonce);

/* Picks up to max_txs transactions of at most max_bytes in all for a
 * proposal at time now_ms: oldest first, and per sender only the run of
 * consecutive nonces from nonce(sender) on, where nonce() says the next
 * nonce after the committed state AND the pending blocks the proposal
 * extends; the run stops at a gap or at a transaction in flight in another
 * block. Marks them in flight. Writes them to out (capacity max_txs) and
 * returns their count. Every taken batch must be handed back with
 * lg_mempool_release. */
size_t lg_mempool_take(lg_mempool *m, size_t max_txs, size_t max_bytes, uint64_t now_ms,
		       lg_nonce_fn nonce, void *nonce_arg, lg_mempool_tx *out);
/* Ends the caller's use of the bytes of a taken batch. */
void lg_mempool_release(lg_mempool *m, const lg_mempool_tx *txs, size_t n);

/* Marks transactions as in flight because another replica proposed them. */
void lg_mempool_mark_in_flight(lg_mempool *m, const uint8_t (*hashes)[CM_HASH_BYTES], size_t n,
			       uint64_t now_ms);
/* Removes committed transactions (present or not). */
void lg_mempool_remove(lg_mempool *m, const uint8_t (*hashes)[CM_HASH_BYTES], size_t n);
/* Offers again the transactions in flight since before now_ms - age_ms
 * (their block was abandoned), and drops those whose nonce is now used.
 * Returns how many were offered again. */
size_t lg_mempool_requeue_stale(lg_mempool *m, uint64_t now_ms, uint64_t age_ms,
				lg_nonce_fn nonce, void *nonce_arg);

/* 1 if a transaction with this hash is held. */
int lg_mempool_contains(lg_mempool *m, const uint8_t hash[CM_HASH_BYTES]);
size_t lg_mempool_count(lg_mempool *m);
size_t lg_mempool_bytes(lg_mempool *m);

#endif
