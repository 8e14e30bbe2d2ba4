/* Private to the consensus core (lg_hotstuff.c, lg_hs_codec.c, lg_hs_tree.c,
 * lg_hs_rules.c, lg_hs_pacemaker.c): the replica's state and the functions the
 * files call in each other. Nothing here is part of the API (lg_hotstuff.h). */
#ifndef LG_HS_INT_H
#define LG_HS_INT_H

#include "lg_hotstuff.h"

#include <stdint.h>
#include <string.h>

#define VOTE_SLOTS 8          /* views whose votes are being collected */
#define MAX_ORPHANS 32        /* blocks waiting for their parent */
#define MAX_WANTED 16         /* blocks being fetched */
#define MAX_PENDING 8         /* proposals for views not yet entered */
#define PER_VIEW_UNCERTIFIED 2 /* a third block of one view needs a QC or a request */
#define DEFAULT_MAX_BLOCKS 256
#define MAX_TREE_NODES (1u << 22) /* the spine's hard limit: views without a commit */
#define DEFAULT_MAX_FUTURE 64
#define VERIFIED_QCS 4        /* QCs verified in full, kept for identical copies */

typedef struct hs_node {
	cm_block b;        /* payload owned by the node */
	uint8_t used;
	uint8_t certified;    /* a verified QC for (b.view, b.hash) was seen */
	uint8_t spine;        /* scratch of make_room: on the committed-locked-high branch */
	uint8_t parent_of;    /* scratch of make_room: some block names it as parent */
} hs_node;

typedef struct vote_slot {
	uint64_t view;        /* 0: empty */
	uint64_t have;        /* voters heard from in this view */
	uint8_t done;         /* a QC was formed */
	uint8_t hash[CM_CHAIN_MAX_REPLICAS][CM_HASH_BYTES];
	uint8_t sig[CM_CHAIN_MAX_REPLICAS][CM_SIG_BYTES];
} vote_slot;

typedef struct wanted {
	uint8_t used;
	uint8_t hash[CM_HASH_BYTES];
	uint64_t min_view;    /* the block's view is at least this; dropped once committed past */
	uint64_t peers;       /* replicas expected to have it */
	uint32_t attempts;
	uint64_t next_ms;
} wanted;

typedef struct pending {
	uint64_t view;        /* 0: empty */
	uint8_t hash[CM_HASH_BYTES];
} pending;

struct lg_hs {
	lg_hs_config cfg;
	lg_hs_io io;
	uint32_t quorum;                /* n - f */
	uint64_t now;
	int started;

	/* Safety state (persisted before each vote). */
	uint64_t last_voted_view;
	cm_qc locked_qc;
	cm_qc high_qc;

	/* Pacemaker. */
	uint64_t cur_view;
	uint64_t own_nv;                /* highest NEW-VIEW this replica sent */
	uint64_t nv_view[CM_CHAIN_MAX_REPLICAS]; /* highest NEW-VIEW heard per replica */
	uint64_t nv_help_at[CM_CHAIN_MAX_REPLICAS]; /* when a lagging replica may be answered again */
	uint64_t deadline;
	uint64_t nv_resend_at;          /* repeat own_nv while waiting to enter it */
	uint32_t consec;                /* view timeouts since the last commit */
	uint64_t proposed_view;

	/* Block tree: the committed tip (root) and its uncommitted descendants;
	 * the array starts at max_blocks and grows only for the spine (make_room). */
	hs_node *nodes;
	uint32_t cap, count;
	int32_t *index;                 /* open addressing on the hash -> node */
	uint32_t index_mask;
	int32_t root;
	int32_t *chain;                 /* scratch for commits, cap entries */

	cm_qc verified[VERIFIED_QCS];   /* recently verified in full (ring) */
	uint32_t verified_used, verified_next;
	cm_qc pending_qc;            /* highest QC whose block is missing */
	int has_pending_qc;
	uint64_t pending_since;
	hs_node orphans[MAX_ORPHANS];
	uint64_t orphan_seq[MAX_ORPHANS], next_seq;
	wanted want[MAX_WANTED];
	pending pend[MAX_PENDING];
	vote_slot *slots;

	int commit_retry;               /* io.commit failed; retry on tick */
	uint8_t commit_target[CM_HASH_BYTES];
	cm_qc commit_qc;

	uint8_t *payload_buf;
	lg_hs_stats st;
	char errmsg[256];
};

static inline uint32_t popcount64(uint64_t x)
{
	return (uint32_t)__builtin_popcountll(x);
}

static inline int hash_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, CM_HASH_BYTES) == 0;
}

static inline uint32_t leader_of(const lg_hs *hs, uint64_t view)
{
	return (uint32_t)(view % hs->cfg.n);
}

static inline uint32_t timeout_now(const lg_hs *hs)
{
	uint64_t t = (uint64_t)hs->cfg.base_timeout_ms << (hs->consec > 20 ? 20 : hs->consec);
	return t > hs->cfg.max_timeout_ms ? hs->cfg.max_timeout_ms : (uint32_t)t;
}

/* lg_hotstuff.c: life cycle and dispatch */
void hs_seterr(lg_hs *hs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t hs_now_of(lg_hs *hs);
/* Runs at the end of every entry point: parked work that may now proceed. */
void hs_drive(lg_hs *hs);

/* lg_hs_tree.c: the block tree, orphans, fetching */
int32_t hs_node_find(const lg_hs *hs, const uint8_t *hash);
int32_t hs_node_insert(lg_hs *hs, const cm_block *b, int certified);
void hs_node_remove(lg_hs *hs, int32_t idx);
const cm_block *hs_root_block(const lg_hs *hs);
int hs_extends(const lg_hs *hs, int32_t idx, const uint8_t *hash, uint64_t height);
void hs_prune(lg_hs *hs);
void hs_want_block(lg_hs *hs, const uint8_t *hash, uint64_t min_view, uint64_t peers);
int hs_is_wanted(const lg_hs *hs, const uint8_t *hash);
void hs_retry_wanted(lg_hs *hs);
int hs_block_check(const lg_hs *hs, const cm_block *b);
int hs_accept_block(lg_hs *hs, const cm_block *b, uint32_t hint, int32_t *out);
void hs_connect_orphans(lg_hs *hs);
/* Doubles the node array (up to MAX_TREE_NODES); 0 on success. */
int hs_tree_grow(lg_hs *hs);

/* lg_hs_rules.c: QCs, locks, commits, votes, proposals */
int hs_qc_check(lg_hs *hs, const cm_qc *qc);
void hs_commit_upto(lg_hs *hs, int32_t i0, const cm_qc *qc0);
void hs_process_qc(lg_hs *hs, const cm_qc *qc);
int hs_try_vote(lg_hs *hs, int32_t idx, int own);
void hs_try_propose(lg_hs *hs);
void hs_add_vote(lg_hs *hs, uint64_t view, const uint8_t *hash, uint32_t voter, const uint8_t *sig);
int hs_on_vote(lg_hs *hs, const lg_hs_vote *v);
int hs_on_proposal(lg_hs *hs, uint32_t from, const lg_hs_proposal *p);

/* lg_hs_pacemaker.c: views, timeouts, NEW-VIEW */
void hs_enter_view(lg_hs *hs, uint64_t view);
void hs_send_newview(lg_hs *hs, int to, uint64_t view);
void hs_pacemaker_check(lg_hs *hs);
void hs_on_timeout(lg_hs *hs);
int hs_on_newview(lg_hs *hs, const lg_hs_newview *nv);

#endif
