/* The ledger's consensus core: chained HotStuff (Yin et al., "HotStuff: BFT
 * Consensus in the Lens of Blockchain", arXiv 1803.05069, section 5 and
 * Algorithms 3-5) among n >= 3f+1 replicas. It does no I/O: sending,
 * persistence, the clock, signatures and block payloads go through the
 * lg_hs_io table, so one process can run a whole cluster (canonical/raft's
 * raft_io). Also the canonical encoding of its messages; blocks and QCs
 * are common/cm_chain.h's. */
#ifndef LG_HOTSTUFF_H
#define LG_HOTSTUFF_H

#include <stddef.h>
#include <stdint.h>

#include "cm_chain.h"
#include "cm_crypto.h"

#define LG_HS_BROADCAST (-1)                  /* send(): to every other replica */
#define LG_HS_VOTE_BYTES (1 + 8 + CM_HASH_BYTES + 4 + CM_SIG_BYTES)

enum lg_hs_msg_type {
	LG_HS_MSG_PROPOSAL = 1,
	LG_HS_MSG_VOTE = 2,
	LG_HS_MSG_NEWVIEW = 3,
};

/* A leader's proposal; sig is the proposer's vote for its own block
 * (over cm_vote_digest(block.view, block.hash)). */
typedef struct lg_hs_proposal {
	cm_block block;
	uint8_t sig[CM_SIG_BYTES];
} lg_hs_proposal;

typedef struct lg_hs_vote {
	uint64_t view;
	uint8_t block_hash[CM_HASH_BYTES];
	uint32_t voter;
	uint8_t sig[CM_SIG_BYTES];   /* over cm_vote_digest(view, block_hash) */
} lg_hs_vote;

/* "I give up on the views below `view`; here is my highest QC." */
typedef struct lg_hs_newview {
	uint64_t view;
	cm_qc high_qc;
	uint32_t sender;
	uint8_t sig[CM_SIG_BYTES];   /* over lg_hs_newview_digest(view, &high_qc) */
} lg_hs_newview;

typedef struct lg_hs_msg {
	uint8_t type;                /* enum lg_hs_msg_type */
	union {
		lg_hs_proposal proposal;
		lg_hs_vote vote;
		lg_hs_newview newview;
	} u;
} lg_hs_msg;

/* What must be on disk before a vote leaves (DESIGN.md, "The ledger"). */
typedef struct lg_hs_safety {
	uint64_t last_voted_view;
	cm_qc locked_qc;
	cm_qc high_qc;            /* not needed for safety; speeds up a restart */
} lg_hs_safety;

typedef struct lg_hs_config {
	uint8_t chain[CM_HASH_BYTES]; /* cm_chain_tag of the chain id: in every vote and NEW-VIEW digest */
	uint32_t n, f, self;         /* n >= 3f+1, n <= CM_CHAIN_MAX_REPLICAS, self < n */
	uint32_t base_timeout_ms;    /* pacemaker: first view timeout */
	uint32_t max_timeout_ms;     /* pacemaker: cap of the doubling */
	uint32_t max_payload_bytes;  /* larger payloads are rejected */
	uint32_t max_blocks;         /* blocks kept in memory off the locked branch; 0: 256 (the
	                              * committed tip's branch to the lock and high QC is always kept) */
	uint32_t max_future_views;   /* proposals/votes accepted ahead of the current view; 0: 64 */
} lg_hs_config;

/* The I/O table. Callbacks run synchronously inside lg_hs_* calls and must
 * not call back into the same instance; pointers they receive are borrowed
 * for the duration of the call. Replica identities (ed25519 public keys in
 * production) live behind sign/verify, indexed 0..n-1. */
typedef struct lg_hs_io {
	void *ctx;
	/* Delivers msg to replica `to`, or to every other replica if to is
	 * LG_HS_BROADCAST; best effort (the protocol tolerates loss). */
	void (*send)(void *ctx, int to, const lg_hs_msg *msg);
	/* Writes the safety state durably; 0 on success. No vote leaves unless
	 * this returned 0 for a state with last_voted_view >= the vote's view. */
	int (*persist_safety)(void *ctx, const lg_hs_safety *st);
	/* Writes a block durably (called once per block, before any vote for it
	 * and before it is handed to commit); 0 on success. */
	int (*store_block)(void *ctx, const cm_block *b);
	/* Applies a decided block; called in strictly increasing height order,
	 * each block once; qc certifies b. On failure the core retries the same
	 * block on the next tick. */
	int (*commit)(void *ctx, const cm_block *b, const cm_qc *qc);
	/* Fills the payload of a new block at `height` over `parent` into buf
	 * (cap bytes), setting *len; 0 on success, CM_ERR_STATE for "nothing to
	 * propose yet, ask again on the next tick". */
	int (*make_payload)(void *ctx, const cm_block *parent, uint64_t height,
			    uint64_t view, uint8_t *buf, size_t cap, size_t *len);
	/* 0 if the app accepts b's payload on top of parent; a replica never
	 * votes for a block whose payload was rejected. */
	int (*validate_payload)(void *ctx, const cm_block *parent, const cm_block *b);
	/* Signs a 32-byte digest with this replica's key. */
	void (*sign)(void *ctx, const uint8_t digest[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES]);
	/* 0 if sig is replica's signature over digest. */
	int (*verify)(void *ctx, uint32_t replica, const uint8_t digest[CM_HASH_BYTES],
		      const uint8_t sig[CM_SIG_BYTES]);
	uint64_t (*now_ms)(void *ctx);
	uint64_t (*random)(void *ctx);   /* may be NULL */
	/* Asks the app to fetch, from replica `peer`, the block with this hash
	 * and its ancestors above height have_height (FetchBlocks: the peer's
	 * committed blocks from have_height+1, then by hash), and to hand them,
	 * lowest first, to lg_hs_on_block. Repeated on ticks until they come. */
	void (*request_block)(void *ctx, const uint8_t hash[CM_HASH_BYTES],
			      uint64_t have_height, uint32_t peer);
} lg_hs_io;

typedef struct lg_hs_stats {
	uint64_t msgs_in;            /* messages and fetched blocks handed in */
	uint64_t bad_msgs;           /* malformed: fields, sizes, indices, links */
	uint64_t bad_sigs;           /* a signature or QC did not verify */
	uint64_t stale_msgs;         /* for a view or block that no longer matters */
	uint64_t future_msgs;        /* too far ahead of the current view */
	uint64_t dup_votes;          /* a second vote from a voter in one view */
	uint64_t equivocations;      /* a second proposal seen for a view */
	uint64_t dropped_full;       /* a block or request dropped on a full buffer */
	uint64_t evicted;            /* blocks off the spine dropped from memory for room */
	uint64_t tree_grown;         /* times the spine outgrew the node array */
	uint64_t rejected_payloads;  /* validate_payload said no */
	uint64_t persist_failures;   /* a vote withheld because persist failed */
	uint64_t votes_sent, proposals, qcs_formed, timeouts, newviews_sent;
	uint64_t blocks_requested, commits;
	uint32_t blocks_in_memory, orphans;
} lg_hs_stats;

typedef struct lg_hs lg_hs;

/* A replica starting at genesis. On success *out is owned by the caller
 * (free with lg_hs_destroy); cfg and io are copied. Until lg_hs_start no
 * callback runs but verify (restore checks the persisted QCs with it). */
int lg_hs_create(const lg_hs_config *cfg, const lg_hs_io *io, lg_hs **out);
/* A replica after a restart: st is the last state persist_safety accepted
 * (NULL: none yet), committed the last block io.commit accepted (NULL:
 * genesis), blocks the stored blocks above it (any order; blocks are copied,
 * those not linking to committed or whose justify QC does not verify in full
 * are ignored). st's QCs are verified in full too (CM_ERR_INVALID if not).
 * Blocks decided but not yet committed are committed again from
 * lg_hs_start. */
int lg_hs_restore(const lg_hs_config *cfg, const lg_hs_io *io, const lg_hs_safety *st,
		  const cm_block *committed, const cm_block *const *blocks,
		  size_t nblocks, lg_hs **out);
void lg_hs_destroy(lg_hs *hs);

/* Arms the pacemaker; the leader of the first view proposes. */
int lg_hs_start(lg_hs *hs);
/* One message from the network; from is the transport's idea of the sender,
 * used only as a hint for fetching. 0 if it was used, or the reason it was
 * ignored (CM_ERR_INVALID, CM_ERR_VERIFY, CM_ERR_RANGE, CM_ERR_STATE). */
int lg_hs_on_message(lg_hs *hs, uint32_t from, const lg_hs_msg *msg);
/* Decodes and hands in one encoded message. */
int lg_hs_on_message_bytes(lg_hs *hs, uint32_t from, const uint8_t *buf, size_t len);
/* A block fetched after request_block; its QC chain is verified here. */
int lg_hs_on_block(lg_hs *hs, const cm_block *b);
/* Timers: view timeouts, retries of fetches, deferred proposals and commits. */
void lg_hs_tick(lg_hs *hs, uint64_t now_ms);

/* Status. */
uint64_t lg_hs_view(const lg_hs *hs);
uint64_t lg_hs_last_voted_view(const lg_hs *hs);
const cm_qc *lg_hs_high_qc(const lg_hs *hs);
const cm_qc *lg_hs_locked_qc(const lg_hs *hs);
uint64_t lg_hs_committed(const lg_hs *hs, uint8_t hash[CM_HASH_BYTES]); /* height; hash may be NULL */
uint32_t lg_hs_timeout_ms(const lg_hs *hs);   /* the current view's timeout */
uint32_t lg_hs_leader(const lg_hs *hs, uint64_t view);
void lg_hs_get_stats(const lg_hs *hs, lg_hs_stats *out);
const char *lg_hs_errmsg(const lg_hs *hs);    /* last error, "" if none */
/* For tests and simulations: 0 if the replica's internal invariants hold
 * (every block in memory links down to the committed tip by parent hash,
 * height and increasing view; the block count is right), else CM_ERR_STATE
 * with lg_hs_errmsg saying which. Costs O(blocks in memory). */
int lg_hs_check(lg_hs *hs);

/* NEW-VIEWs sign H(CM_DOM_VOTE || 'N' || chain tag || view || qc view || qc
 * hash), never equal to a vote's preimage. */
void lg_hs_newview_digest(uint8_t out[CM_HASH_BYTES], const uint8_t chain[CM_HASH_BYTES], uint64_t view,
			  const cm_qc *qc);

/* Canonical encodings of messages and the safety state (blocks and QCs are
 * in cm_chain.h): big-endian fixed-width fields, no padding, nothing left
 * over; *_decode fails with CM_ERR_INVALID on malformed input and writes
 * *out only on success.
 *   message: type u8 | PROPOSAL: block | sig 64
 *                    | VOTE: view u64 | block_hash 32 | voter u32 | sig 64
 *                    | NEW-VIEW: view u64 | sender u32 | sig 64 | QC
 *   safety:  version u8 | last_voted_view u64 | locked QC | high QC */
size_t lg_hs_msg_size(const lg_hs_msg *m);
int lg_hs_msg_encode(const lg_hs_msg *m, uint8_t *buf, size_t cap, size_t *len);
int lg_hs_msg_decode(const uint8_t *buf, size_t len, lg_hs_msg *out);
size_t lg_hs_safety_size(const lg_hs_safety *st);
int lg_hs_safety_encode(const lg_hs_safety *st, uint8_t *buf, size_t cap, size_t *len);
int lg_hs_safety_decode(const uint8_t *buf, size_t len, lg_hs_safety *out);

#endif
