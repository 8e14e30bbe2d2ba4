/* Private to the state machine: the lg_state struct, the parameter ids,
 * and the functions its files (lg_state.c, lg_st_*.c) share. Nothing outside
 * services/ledger/lg_state.c and lg_st_*.c includes this. */
#ifndef LG_STATE_INT_H
#define LG_STATE_INT_H

#include "cm_bytes.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_follower.h" /* the state root chain: cm_effects_hash, cm_state_root_next */
#include "lg_state.h"
#include "lg_tx.h"

#include <string.h>

#define TX_OK 0
#define TX_FAIL 1                 /* the tx is recorded FAILED; st->msg says why */
#define MAGU_MEMBERS_MAX 256      /* hard bound of magu_max_members */

enum param_id {
	P_BLOCK_MAX_BYTES,
	P_BLOCK_MAX_TXS,
	P_CHALLENGE_DEADLINE,
	P_CHALLENGE_INTERVAL,
	P_CHALLENGE_LEAVES,
	P_CHALLENGES_PER_ROUND,
	P_FRAGMENTS_DEFAULT,
	P_MAGU_MAX_MEMBERS,
	P_MAX_FAILURES,
	P_MIN_DEPOSIT,
	P_MIN_FEE,
	P_MIN_STAKE,
	P_PROPOSAL_MAX_DELAY,
	P_REPLICATION_DEFAULT,
	P_SEARCH_FEE,
	P_SLASH_AMOUNT,
	P_UNBONDING_DELAY,
	P_ALLOW_NOOP,
	P_UNSIGNED_NOOPS,
	P_DOUBLE_ROOT_SLASH,
	P_DOUBLE_ROOT_REWARD_PCT,
	P_ANSWER_FRAUD_SLASH,
	P_ANSWER_FRAUD_REWARD_PCT,
	P_HANDOVER_DEADLINE,
	P_SPLIT_SIZE,
	P_MAX_FILL,         /* from here on: stored at genesis only when set (lg_state.c) */
	P_RECORD_OVERHEAD,
	P_COUNT
};

/* Counters of the state (table counters). */
#define C_TOTAL_STAKED "total_staked"
#define C_NEXT_CHALLENGE "last_challenge_id"
#define C_NEXT_PROPOSAL "last_proposal_id"
#define C_GENESIS_TIME "genesis_time_ms"
#define C_RECEIPT_SEQ "last_receipt_seq"

typedef struct outcome {
	uint8_t hash[CM_HASH_BYTES];
	uint32_t index;
	Muri__V1__TxState state;
	char msg[LG_MSG_MAX];
} outcome;

/* ---- the block's effects (lg_st_effects.c) ---- */

enum lg_fx_list {
	LG_FX_FRAGMENTS,  /* (magu, fragment) whose configuration changed */
	LG_FX_ISSUED,     /* challenge ids issued */
	LG_FX_CLOSED,     /* challenge ids decided */
	LG_FX_ROOTS,      /* lg_fx_root: roots committed */
	LG_FX_CREATED,    /* Magu names */
	LG_FX_DROPPED,
	LG_FX_MEMBERS,    /* Magus whose member set changed */
	LG_FX_PENALTIES,  /* lg_fx_penalty */
	LG_FX_COUNT
};

typedef struct lg_fx_vec {
	uint8_t *p;
	size_t n, cap;
} lg_fx_vec;

typedef struct lg_fx_mark {
	size_t n[LG_FX_COUNT];
} lg_fx_mark;

typedef struct lg_fx_root {
	char magu[LG_NAME_MAX + 1];
	uint32_t fragment;
	uint64_t size, epoch;         /* the chain is this one */
	uint8_t root[LG_ROOT_BYTES], signer[LG_KEY_BYTES], signature[CM_SIG_BYTES];
} lg_fx_root;

typedef struct lg_fx_penalty {
	uint8_t indexer[LG_KEY_BYTES];
	uint64_t slashed;
	int jailed;
	char reason[96];
} lg_fx_penalty;

struct lg_state {
	lg_store *store;
	char chain_id[LG_CHAIN_ID_MAX + 1];
	uint64_t height;
	uint8_t root[CM_HASH_BYTES];
	int64_t param[P_COUNT];   /* cache of the params table */
	lg_tx_observer obs;
	void *obs_arg;
	outcome *outs;            /* the block's outcomes: observer and effects */
	size_t nouts, outs_cap;
	lg_fx_vec fx[LG_FX_COUNT]; /* the block's effects, noted by the handlers */
	/* the block being executed */
	const lg_block_in *blk;
	uint64_t fees;
	uint8_t tx_hash[CM_HASH_BYTES]; /* the tx being executed */
	char msg[LG_MSG_MAX];     /* outcome message of the tx being executed */
	char err[512];
};

/* The first 8 bytes of a key in hex, for messages. */
typedef struct keyhex {
	char s[17];
} keyhex;

static inline keyhex lg_st_kh(const uint8_t *pk)
{
	keyhex k;
	cm_hex(k.s, pk, 8);
	return k;
}

/* The height of the block being executed. */
static inline uint64_t lg_st_height(const lg_state *st)
{
	return st->blk->height;
}

/* A parameter as an unsigned value (every parameter is >= 0). */
static inline uint64_t lg_st_pu(const lg_state *st, enum param_id p)
{
	return (uint64_t)st->param[p];
}

static inline int lg_st_key_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, LG_KEY_BYTES) == 0;
}

/* pk's position among f's replicas, or -1. */
static inline int lg_st_replica_index(const lg_fragment *f, const uint8_t *pk)
{
	for (uint32_t i = 0; i < f->nreplicas; i++)
		if (lg_st_key_eq(f->replicas[i], pk))
			return (int)i;
	return -1;
}


/* ---- shared by the lg_st_*.c files (lg_state.c) ---- */

/* Sets st->err; returns rc. */
int lg_st_err(lg_state *st, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records why the current tx fails; returns TX_FAIL. */
int lg_st_fail(lg_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records what the current tx did; returns TX_OK. */
int lg_st_note(lg_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads an account; a missing one reads as empty with the key set. */
int lg_st_account(lg_state *st, const uint8_t pk[LG_KEY_BYTES], lg_account *a);
/* counter += add, then counter -= sub, floored at 0. */
int lg_st_add_counter(lg_state *st, const char *name, uint64_t add, uint64_t sub);

/* Transaction handlers: TX_OK, TX_FAIL (st->msg says why) or a negative
 * store error. Each runs inside the tx's savepoint, after the fee. */
int lg_st_transfer(lg_state *st, const Muri__V1__Transaction *t, lg_account *sender); /* lg_st_accounts.c */
int lg_st_register(lg_state *st, const Muri__V1__Transaction *t);    /* lg_st_staking.c */
int lg_st_stake(lg_state *st, const Muri__V1__Transaction *t);
int lg_st_unstake(lg_state *st, const Muri__V1__Transaction *t);
int lg_st_create_magu(lg_state *st, const Muri__V1__Transaction *t); /* lg_st_magu.c */
int lg_st_drop_magu(lg_state *st, const Muri__V1__Transaction *t);
int lg_st_failover(lg_state *st, const Muri__V1__Transaction *t);  /* lg_st_failover.c */
int lg_st_commit_root(lg_state *st, const Muri__V1__Transaction *t); /* lg_st_roots.c */
int lg_st_answer(lg_state *st, const Muri__V1__Transaction *t);
int lg_st_settle(lg_state *st, const Muri__V1__Transaction *t);      /* lg_st_settle.c */
int lg_st_propose(lg_state *st, const Muri__V1__Transaction *t);     /* lg_st_gov.c */
int lg_st_vote(lg_state *st, const Muri__V1__Transaction *t);

/* Begin-block and end-block steps: 0 or a negative error. */
int lg_st_release_unbonded(lg_state *st);  /* lg_st_staking.c */
int lg_st_decide_proposals(lg_state *st);  /* lg_st_gov.c */
int lg_st_expire_challenges(lg_state *st); /* lg_st_roots.c */
int lg_st_issue_challenges(lg_state *st);
int lg_st_pay_fees(lg_state *st);          /* lg_st_accounts.c */

/* Membership (lg_st_magu.c): brings an indexer's active flag in line with
 * its stake and record, moving it out of or into Magus when it changes. */
int lg_st_refresh_indexer(lg_state *st, const uint8_t *pk);
/* lg_st_magu.c: gives a fragment a new replica set (epoch + 1 when it differs). */
int lg_st_reconfigure(lg_state *st, lg_fragment *f, const uint8_t (*repl)[LG_KEY_BYTES], uint32_t n);
/* lg_st_magu.c: the primary of f's current epoch asks that the backup
 * t->failover->drop be replaced (its member seat of the Magu moves). */
int lg_st_drop_replica(lg_state *st, const Muri__V1__Transaction *t, const lg_fragment *f);
/* lg_st_handover.c. Given f's new placement repl (*n), appends the leavers
 * that stay: those handing f over already and keep (NULL: none), which
 * starts a hand-over if f gets new replicas and there is room. */
int lg_st_handover_keep(lg_state *st, const lg_fragment *f, const uint8_t *keep, uint8_t repl[][LG_KEY_BYTES],
			uint32_t *n);
/* A root vote of the fragment's current epoch by signer: it is caught up;
 * a hand-over whose new replicas all are ends. */
int lg_st_handover_signed(lg_state *st, const char *magu, uint32_t fragment, const uint8_t *signer);
/* Begin-block: hand-overs older than handover_deadline blocks end. */
int lg_st_handover_expire(lg_state *st);
/* Slashing (lg_st_staking.c): takes up to want from pk's stake, then its
 * unbonding stake (burnt); counts a failure and jails at max_failures, or
 * at once with jail; notes the penalty with reason in the block's effects.
 * *slashed receives the amount taken. */
int lg_st_penalize(lg_state *st, const uint8_t *pk, uint64_t want, int jail, const char *reason,
		   uint64_t *slashed);
int lg_st_approve(lg_state *st, const Muri__V1__Transaction *t);     /* lg_st_settle.c */
int lg_st_double_root(lg_state *st, const Muri__V1__Transaction *t); /* lg_st_roots.c */
int lg_st_report_answer(lg_state *st, const Muri__V1__Transaction *t); /* lg_st_evidence.c */
/* lg_st_magu.c: a new fragment of m placed on m's seats like every other
 * (epoch 1, the first replica primary), not yet stored; records: the log
 * size it is expected to reach at once (a split half's), which its new
 * replicas must have room for below max_fill. */
int lg_st_place(lg_state *st, const lg_magu *m, uint32_t fragment, uint64_t records, lg_fragment *out);
/* lg_st_split.c: fragment splits. SplitFragment by the Magu's owner. */
int lg_st_split_fragment(lg_state *st, const Muri__V1__Transaction *t);
/* Before a root vote r on f counts: fails it (TX_FAIL) on a frozen fragment;
 * *same = 1 when it is a sealing primary's vote for the committed root
 * (which freezes f at once), 2 when it is a new child's first root at size 0
 * (the empty root; counted like a vote above the committed size), else 0. */
int lg_st_split_vote_check(lg_state *st, const lg_fragment *f, const Muri__V1__SignedRoot *r, int *same);
/* After a root of f committed (f as stored, its signers set), or a sealing
 * primary confirmed it (primary_vote): freezes a sealing f into its children,
 * marks a child derived (retiring its parent when both are), or starts a
 * split at split_size. what (n bytes) receives text for the tx's outcome. */
int lg_st_split_committed(lg_state *st, lg_fragment *f, int primary_vote, char *what, size_t n);
/* *retired: f no longer needs replicas (both children derived). */
int lg_st_split_retired(lg_state *st, const char *magu, uint32_t fragment, int *retired);
/* lg_st_access.c: API keys and Magu access lists. */
int lg_st_create_api_key(lg_state *st, const Muri__V1__Transaction *t);
int lg_st_revoke_api_key(lg_state *st, const Muri__V1__Transaction *t);
int lg_st_set_access(lg_state *st, const Muri__V1__Transaction *t);
/* After a CreateMagu succeeded: records access_owner when it names one. */
int lg_st_access_created(lg_state *st, const Muri__V1__Transaction *t);
/* After a DropMagu succeeded: deletes the Magu's access lists. */
int lg_st_access_dropped(lg_state *st, const char *magu);
/* A Magu's access lists (its creator as owner when it has no row);
 * CM_ERR_NOTFOUND if there is no such Magu. */
int lg_st_access_of(lg_state *st, const char *magu, lg_access *a);

/* Effects (lg_st_effects.c): the notes of the block being executed. Each
 * note returns 0 or CM_ERR_NOMEM. mark/rewind undo a failed payload's notes;
 * write encodes them, reading the final rows, and stores them with the block. */
void lg_st_fx_reset(lg_state *st);
void lg_st_fx_free(lg_state *st);
void lg_st_fx_mark(const lg_state *st, lg_fx_mark *m);
void lg_st_fx_rewind(lg_state *st, const lg_fx_mark *m);
int lg_st_fx_fragment(lg_state *st, const char *magu, uint32_t fragment);
int lg_st_fx_challenge(lg_state *st, uint64_t id, int closed);
int lg_st_fx_root(lg_state *st, const Muri__V1__SignedRoot *r);
int lg_st_fx_magu(lg_state *st, enum lg_fx_list l, const char *name); /* CREATED, DROPPED, MEMBERS */
int lg_st_fx_penalty(lg_state *st, const uint8_t *pk, uint64_t slashed, int jailed,
		     const char *reason);
/* Builds block height's BlockEffects from the notes, sets root = root_height
 * = cm_state_root_next(prev, height, ws, cm_effects_hash(effects)) and
 * stores the effects packed with state_root = root and write_set_hash = ws. */
int lg_st_fx_write(lg_state *st, uint64_t height, const uint8_t prev[CM_HASH_BYTES],
		   const uint8_t ws[CM_HASH_BYTES], uint8_t root[CM_HASH_BYTES]);

#endif
