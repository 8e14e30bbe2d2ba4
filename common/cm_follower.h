/* Following the ledger's chain while trusting no single replica: an I/O-free
 * verification core (cm_fcore: blocks, commit QCs, the three-chain that makes
 * them final, the state root chain recomputed over each block's effects) and
 * a driver (cm_follower) that reads FollowBlocks from the genesis replicas in
 * turn and hands verified, final blocks with their effects to a callback. */
#ifndef CM_FOLLOWER_H
#define CM_FOLLOWER_H

#include <stddef.h>
#include <stdint.h>

#include "cm_chain.h"
#include "ledger.pb-c.h"

#define CM_FCORE_PENDING_DEFAULT 1024  /* certified blocks held until final (the ledger may commit long runs without a three-chain at once) */
#define CM_FCORE_CLAIMS_DEFAULT 256    /* effects' state roots kept until pinned */
#define CM_FCORE_MSG_MAX 512           /* bytes of a refusal reason */
#define CM_FCORE_SOURCE_START UINT32_MAX /* blame for the caller's starting root */

/* ---- the state root chain (shared with the ledger's state machine) ----
 *
 * root_h = H(CM_DOM_STATE || root_{h-1} || be64(h) || W_h || E_h) for a block
 * h >= 1, with W_h the block's write-set hash (BlockEffects.write_set_hash)
 * and E_h = cm_effects_hash(its BlockEffects); root_0 (genesis) has no E.
 * E_h = H(CM_DOM_STATE || 'E' || enc), enc being protobuf-c's packing of the
 * BlockEffects with state_root and write_set_hash unset (the two fields the
 * ledger adds after hashing). That packing is canonical for this message:
 * protobuf-c writes fields in field-number order, proto3 scalars only when
 * not zero, repeated fields in list order, and BlockEffects has no maps; a
 * decoded message packs again to the same bytes unless it carried unknown
 * fields, which are packed too (so they change E_h). */

/* E_h of e (its state_root and write_set_hash ignored). No allocation. */
void cm_effects_hash(const Muri__V1__BlockEffects *e, uint8_t out[CM_HASH_BYTES]);
/* out = H(CM_DOM_STATE || prev || be64(h) || ws [|| eh]); eh NULL only for root_0. */
void cm_state_root_next(uint8_t out[CM_HASH_BYTES], const uint8_t prev[CM_HASH_BYTES], uint64_t h,
			const uint8_t ws[CM_HASH_BYTES], const uint8_t *eh);

/* The replica set of the genesis file, which followers trust. */
typedef struct cm_follower_genesis {
	const char *chain_id;
	uint32_t n;                          /* replicas, 1..CM_CHAIN_MAX_REPLICAS */
	const uint8_t (*pks)[CM_PK_BYTES];   /* n public keys in genesis order */
	const char *const *addrs;            /* n "host:port" (driver only; may be NULL for the core) */
} cm_follower_genesis;

/* Why a served block was refused. */
enum cm_fv_reason {
	CM_FV_OK = 0,
	CM_FV_MALFORMED,      /* missing header_bytes/hash/commit_qc, wrong lengths */
	CM_FV_HEADER_BYTES,   /* header_bytes || payload is not a canonical block */
	CM_FV_HASH,           /* Block.hash is not the recomputed block hash */
	CM_FV_HEIGHT,         /* not the next height (skipped) */
	CM_FV_REPLAY,         /* a height already verified */
	CM_FV_PARENT,         /* parent is not the last verified block's hash */
	CM_FV_QC_BLOCK,       /* commit_qc is for another block hash */
	CM_FV_QC_VIEW,        /* commit_qc's view is not the block's view */
	CM_FV_QC_SIGNER,      /* a signer not in the genesis set, twice, or a bad signature length */
	CM_FV_QC_QUORUM,      /* fewer than n - f signers */
	CM_FV_QC_SIG,         /* a signature that does not verify (chain, view, hash) */
	CM_FV_PAYLOAD,        /* payload is not a BlockBody */
	CM_FV_FIELDS,         /* header/txs fields disagree with header_bytes/payload */
	CM_FV_EFFECTS,        /* effects missing, for another height, malformed, or their
			       * state_root is not the root recomputed over their content */
	CM_FV_STATE_ROOT,     /* a certified block's state root contradicts served effects,
			       * or no root is known at the height below the block */
	CM_FV_PENDING_FULL,   /* too many certified blocks without finality */
};
const char *cm_fv_reason_name(int reason);

typedef struct cm_fcore_opts {
	const cm_follower_genesis *genesis;
	uint64_t height;                     /* last final block the caller holds (0: genesis) */
	const uint8_t *hash;                 /* its hash; NULL with height 0 for the genesis block */
	const uint8_t *root;                 /* the state root after height (32 bytes), as persisted
					      * with (height, hash): required above height 0 unless
					      * effects_optional; with height 0 the genesis root_0,
					      * or NULL to take root_0 from the certified body of
					      * block 1 (its state_height is 0) */
	size_t max_pending;                  /* 0: CM_FCORE_PENDING_DEFAULT */
	size_t max_claims;                   /* 0: CM_FCORE_CLAIMS_DEFAULT */
	int effects_optional;                /* 1: accept blocks without effects or without
					      * write_set_hash (older ledgers): their content is not
					      * checked, and the root chain resumes where a certified
					      * block pins the height below the next block */
} cm_fcore_opts;

/* One held block: certified and linked, final once a three-chain covers it. */
typedef struct cm_fcore_entry {
	Muri__V1__Block *block;              /* owned by the core while held */
	uint64_t height, view;
	uint8_t hash[CM_HASH_BYTES];
	uint32_t source;                     /* who served it (the caller's id) */
	uint8_t root[CM_HASH_BYTES];         /* root_height recomputed over effects (if root_known) */
	int root_known;
} cm_fcore_entry;

typedef struct cm_fcore_claim {
	uint64_t height;
	uint8_t root[CM_HASH_BYTES];
	uint32_t source;
	int delivered;                       /* its block was handed out already */
	int computed;                        /* root recomputed over effects from a known root */
} cm_fcore_claim;

/* The verification core: no I/O, no threads; one user at a time. */
typedef struct cm_fcore {
	uint32_t n, f;
	uint8_t pks[CM_CHAIN_MAX_REPLICAS][CM_PK_BYTES];
	uint8_t chain[CM_HASH_BYTES];
	int effects_optional;
	uint64_t final_height;               /* last final block */
	uint8_t final_hash[CM_HASH_BYTES];
	uint64_t final_view;
	uint8_t final_root[CM_HASH_BYTES];   /* root at final_height, if final_root_known */
	int final_root_known;
	uint64_t verified_through;           /* see cm_fcore_verified_through */
	cm_fcore_entry *pending;             /* heights final_height+1 .. , in order */
	size_t npending, max_pending, nready;/* the first nready pending blocks are final */
	cm_fcore_claim *claims;              /* ring of recomputed state roots by height */
	size_t nclaims, max_claims, claim0;
	uint32_t blame;                      /* on CM_FV_STATE_ROOT: source of the false claim */
	int blame_delivered;                 /* ... and whether that block was handed out */
	char why[CM_FCORE_MSG_MAX];          /* the last refusal, in words */
} cm_fcore;

/* Initializes c; CM_ERR_INVALID for a bad genesis or start. cm_fcore_clear frees. */
int cm_fcore_init(cm_fcore *c, const cm_fcore_opts *o);
void cm_fcore_clear(cm_fcore *c);

/* The next height the core wants: one above the last held (pending) block. */
uint64_t cm_fcore_next_height(const cm_fcore *c);

/* Checks a served block against the chain so far: header_bytes || payload
 * decodes as a canonical block whose hash is Block.hash and
 * commit_qc.block_hash; its height is the next one and its parent the last
 * verified hash; commit_qc has the block's view and n - f valid signatures of
 * distinct genesis replicas on this chain; header and txs agree with
 * header_bytes and payload; effects are for this height, and their
 * state_root is cm_state_root_next(root_{h-1}, h, effects.write_set_hash,
 * cm_effects_hash(effects)) with root_{h-1} the root the core holds for the
 * block below (refused as CM_FV_EFFECTS otherwise; CM_FV_STATE_ROOT when no
 * root is known there); a state root the block pins (state_height,
 * state_root, i.e. root_{state_height}) agrees with the root recomputed at
 * that height. Cheap checks come before signature checks. On success the core
 * takes b (freed with protobuf_c_message_free_unpacked later) and returns 0;
 * on refusal it returns CM_ERR_VERIFY (CM_ERR_INVALID for CM_FV_MALFORMED /
 * CM_FV_HEADER_BYTES, CM_ERR_TOOBIG for CM_FV_PENDING_FULL), sets *reason,
 * c->why, and the caller keeps b. source is the caller's tag for the server. */
int cm_fcore_add(cm_fcore *c, Muri__V1__Block *b, uint32_t source, int *reason);

/* Hands out the next final block (lowest height first): 1 with *out (the
 * caller owns it), 0 if none is final yet. A block is final once a verified
 * three-chain b0 <- b1 <- b2 of consecutive views with b2's commit QC sits at
 * or above it (lg_hotstuff's commit rule). */
int cm_fcore_pop(cm_fcore *c, Muri__V1__Block **out);

/* The highest height whose effects content a certified pin vouches for: a
 * certified block's body pinned root_H and it equalled the root the core
 * recomputed at H. The roots are hash-linked, so this vouches for every
 * effects content at heights <= H that the core recomputed from its starting
 * root (heights served without effects under effects_optional excepted).
 * Effects above it passed the recomputation but only the serving replica
 * stands behind them: a consumer that acts irreversibly on effects (an
 * indexer applying a fragment configuration) waits until its height is <=
 * verified_through. 0 until the first pin above the start. */
uint64_t cm_fcore_verified_through(const cm_fcore *c);

/* Drops every held block that is not final, e.g. after a refusal, so that
 * following starts again above the last final block. */
void cm_fcore_rollback(cm_fcore *c);

/* ---- the driver ---- */

typedef struct cm_follower cm_follower;

/* Called on the follower's thread with each final block (effects included),
 * in height order, each once. b is borrowed for the call. Returning nonzero
 * stops the follower. To resume later, persist (height, hash,
 * b->effects->state_root) and pass them as start_height/hash/root. Effects
 * at heights above cm_follower_verified_through() are not yet vouched for
 * by a certified pin (see cm_fcore_verified_through). */
typedef int (*cm_follower_block_fn)(void *arg, const Muri__V1__Block *b);

typedef struct cm_follower_opts {
	cm_follower_genesis genesis;         /* addrs required */
	uint64_t start_height;               /* last block the caller already has (0: none) */
	const uint8_t *start_hash;           /* its hash (NULL for height 0) */
	const uint8_t *start_root;           /* the state root after it: see cm_fcore_opts.root */
	cm_follower_block_fn on_block;
	void *arg;
	int stall_ms;                        /* no block for this long: switch replica; 0: 10000 */
	int refuse_ms;                       /* a replica that served a bad block is skipped this long; 0: 60000 */
	int retry_min_ms, retry_max_ms;      /* back-off between failing connects; 0: 100, 5000 */
	size_t max_message;                  /* bytes of one served block; 0: CM_RPC_MSG_MAX_DEFAULT */
	size_t max_pending, max_claims;      /* see cm_fcore_opts */
	int effects_optional;
	const char *tls_ca_file;             /* NULL: plaintext */
} cm_follower_opts;

typedef struct cm_follower_stats {
	uint64_t height;                     /* last block handed to on_block */
	uint8_t hash[CM_HASH_BYTES];
	uint8_t root[CM_HASH_BYTES];         /* the state root after height (zero if unknown) */
	uint64_t verified_through;           /* cm_fcore_verified_through after the last block verified */
	uint64_t blocks, switches, refusals;
	int replica;                         /* replica followed now (-1: none) */
	int running;                         /* 0 once stopped or failed */
	int error;                           /* why it ended: 0 (stopped), or CM_ERR_VERIFY when a
					      * certified block contradicted the state root of
					      * effects already handed out (last_refusal says
					      * which height): follow again from below it */
	char last_refusal[CM_FCORE_MSG_MAX];
} cm_follower_stats;

/* Starts following on a thread of its own. The caller owns *out and ends it
 * with cm_follower_free. Options are copied (genesis keys and addresses too). */
int cm_follower_start(const cm_follower_opts *o, cm_follower **out, char *err, size_t errlen);
/* Asks the follower to stop; safe from any thread (not from on_block's own
 * return path: return nonzero there instead), returns at once. */
void cm_follower_stop(cm_follower *f);
/* Waits up to ms (< 0: forever) for the follower's thread to end; 1 if it did. */
int cm_follower_wait(cm_follower *f, int ms);
void cm_follower_get_stats(cm_follower *f, cm_follower_stats *out);
/* stats.verified_through; safe from on_block (then it covers the block passed). */
uint64_t cm_follower_verified_through(cm_follower *f);
/* Stops, joins and frees. Accepts NULL. */
void cm_follower_free(cm_follower *f);

#endif
