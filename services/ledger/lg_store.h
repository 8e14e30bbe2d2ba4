/* SQLite storage of one ledger replica (WAL, synchronous=FULL): committed
 * blocks, the tx index, the consensus safety state, and the state tables the
 * state machine (lg_state) reads and writes through typed rows. A block, its
 * tx outcomes and every state change it causes go into one SQLite
 * transaction (lg_store_begin .. lg_store_commit), so a crash leaves the
 * store at the previous block or at this one, never between. */
#ifndef LG_STORE_H
#define LG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "lg_tx.h"

#define LG_KEY_BYTES CM_PK_BYTES          /* accounts, indexers, replicas */
#define LG_ROOT_BYTES CM_HASH_BYTES
#define LG_MAX_REPLICAS LG_REPLICATION_MAX
#define LG_INDEX_SPEC_MAX 128             /* encoded IndexSpec */

typedef struct lg_store lg_store;

enum lg_store_flags {
	LG_STORE_READONLY = 1u, /* a second connection for queries, e.g. from RPC threads */
};

/* Opens (creating if missing, unless read-only) the store at path and
 * prepares its schema. The caller owns *out and releases it with
 * lg_store_close(). One lg_store is one SQLite connection: use it from one
 * thread at a time. On failure err says why. */
int lg_store_open(lg_store **out, const char *path, unsigned flags, char *err, size_t errlen);
/* Rolls back an open block transaction, finalizes statements, closes; accepts NULL. */
void lg_store_close(lg_store *s);
/* The message of the last failure, with SQLite's reason. */
const char *lg_store_errmsg(const lg_store *s);

/* ---- chain position and genesis ---- */

/* The last committed height and state root; CM_ERR_NOTFOUND before genesis. */
int lg_store_head(lg_store *s, uint64_t *height, uint8_t root[LG_ROOT_BYTES]);
/* The state root after the block at height (0: genesis), kept for every
 * committed height; CM_ERR_NOTFOUND above the head. */
int lg_store_root_at(lg_store *s, uint64_t height, uint8_t root[LG_ROOT_BYTES]);

/* A read snapshot: between lg_store_read_begin and lg_store_read_end every
 * read sees one committed state (a deferred BEGIN ... COMMIT on this
 * connection), so a query's rows, its head height and its root agree.
 * Calls nest; inside an open block transaction they change nothing. end
 * always succeeds. */
int lg_store_read_begin(lg_store *s);
void lg_store_read_end(lg_store *s);
/* Values fixed at genesis (chain id, genesis digest), outside the state root
 * (the state holds them too). get copies at most cap bytes and sets *len to
 * the value's size; CM_ERR_NOTFOUND if unset. put is part of the open block. */
int lg_store_meta_get(lg_store *s, const char *key, void *buf, size_t cap, size_t *len);
int lg_store_meta_put(lg_store *s, const char *key, const void *val, size_t len);

/* ---- the block transaction ---- */

/* Begins the transaction of one block (BEGIN IMMEDIATE) and empties the
 * write set. CM_ERR_STATE if one is open. */
int lg_store_begin(lg_store *s);
/* A nested point to undo one transaction's changes to: savepoint, then
 * either release (keep) or rollback (undo, write set included). */
int lg_store_savepoint(lg_store *s);
int lg_store_release(lg_store *s);
int lg_store_rollback_to(lg_store *s);
/* H(canonical write set): every (table, key, final value) the open block
 * wrote, deletions included, sorted by (table, key), each key once with its
 * last value. Entries are typed-column encodings, so the hash depends on
 * values only, never on SQLite's file format. */
void lg_store_writeset_hash(lg_store *s, uint8_t out[CM_HASH_BYTES]);
/* Number of entries written so far in the open block (with repeats). */
size_t lg_store_writeset_len(const lg_store *s);
/* Records the new head (height, root) and commits: one fsync'd WAL commit.
 * On failure the whole block is rolled back. */
int lg_store_commit(lg_store *s, uint64_t height, const uint8_t root[LG_ROOT_BYTES]);
/* Abandons the open block; accepts a store with none open. */
void lg_store_rollback(lg_store *s);
/* 1 while a block transaction is open. */
int lg_store_in_block(const lg_store *s);

/* Fault injection for tests: fn is called before every write statement and
 * before COMMIT with a running step count; a nonzero return makes that
 * operation fail with CM_ERR_IO (or fn may kill the process). NULL removes it. */
typedef int (*lg_store_fault_fn)(void *arg, uint64_t step);
void lg_store_set_fault(lg_store *s, lg_store_fault_fn fn, void *arg);

/* ---- blocks (opaque to the store) ---- */

typedef struct lg_block_rec {
	uint64_t height;
	uint8_t hash[CM_HASH_BYTES];
	uint8_t state_root[LG_ROOT_BYTES]; /* after this block */
	uint32_t ntxs;
	const uint8_t *header;  /* encoded BlockHeader, as given */
	size_t header_len;
	const uint8_t *payload; /* the caller's encoding of the block body, as given */
	size_t payload_len;
	const uint8_t *qc;      /* encoded commit QC, as given */
	size_t qc_len;
} lg_block_rec;

/* Stores a committed block in the open transaction; the store copies nothing
 * beyond the call. */
int lg_store_put_block(lg_store *s, const lg_block_rec *b);
/* Reads the block at height, or by hash; the byte fields are malloc'd and
 * owned by the caller, released by lg_block_rec_clear(). CM_ERR_NOTFOUND. */
int lg_store_get_block(lg_store *s, uint64_t height, lg_block_rec *out);
int lg_store_get_block_by_hash(lg_store *s, const uint8_t hash[CM_HASH_BYTES], lg_block_rec *out);
void lg_block_rec_clear(lg_block_rec *b);

/* A committed block's effects: the encoded muri.v1.BlockEffects the state
 * machine wrote with the block (its hash E_h is chained into the state
 * root: lg_state.c). get returns a malloc'd copy owned by the caller
 * (free()); CM_ERR_NOTFOUND if none. */
int lg_store_effects_put(lg_store *s, uint64_t height, const uint8_t *data, size_t len);
int lg_store_effects_get(lg_store *s, uint64_t height, uint8_t **data, size_t *len);

/* ---- consensus safety state (opaque) ---- */

/* Replaces the safety state and makes it durable (its own fsync'd commit)
 * before returning; CM_ERR_STATE inside an open block transaction. */
int lg_store_put_safety(lg_store *s, const void *data, size_t len);
/* Reads it into a malloc'd buffer owned by the caller; CM_ERR_NOTFOUND if never written. */
int lg_store_get_safety(lg_store *s, uint8_t **data, size_t *len);

/* ---- tx index (part of the state root) ---- */

typedef struct lg_txrec {
	uint8_t hash[CM_HASH_BYTES];
	uint64_t height;
	uint32_t index;
	int state; /* Muri__V1__TxState: COMMITTED or FAILED */
	char message[LG_MSG_MAX];
} lg_txrec;

int lg_store_tx_put(lg_store *s, const lg_txrec *t);
int lg_store_tx_get(lg_store *s, const uint8_t hash[CM_HASH_BYTES], lg_txrec *out);

/* ---- state rows ----
 * get: CM_OK and *out filled, or CM_ERR_NOTFOUND. put: insert or replace.
 * list: a malloc'd array owned by the caller (free()), in the documented
 * order, *n entries (NULL when 0). All writes join the write set. */

typedef struct lg_account {
	uint8_t pk[LG_KEY_BYTES];
	uint64_t balance, nonce, staked, unbonding;
} lg_account;
int lg_store_account_get(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_account *out);
int lg_store_account_put(lg_store *s, const lg_account *a);

/* Stake on its way out, released to the balance at release_height. */
typedef struct lg_unbond {
	uint64_t release_height;
	uint8_t pk[LG_KEY_BYTES];
	uint64_t amount;
} lg_unbond;
/* Adds amount to the entry (release_height, pk), creating it. */
int lg_store_unbond_add(lg_store *s, uint64_t release_height, const uint8_t pk[LG_KEY_BYTES],
			uint64_t amount);
/* Replaces the entry's amount; amount 0 deletes it. */
int lg_store_unbond_set(lg_store *s, const lg_unbond *u);
/* Entries with release_height <= height, by (release_height, pk). */
int lg_store_unbond_due(lg_store *s, uint64_t height, lg_unbond **out, size_t *n);
/* Entries of pk, latest release first. */
int lg_store_unbond_of(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_unbond **out, size_t *n);

typedef struct lg_indexer {
	uint8_t pk[LG_KEY_BYTES];
	char address[LG_ADDRESS_MAX + 1];
	uint64_t capacity;
	uint64_t failures;
	int jailed;   /* removed after max_failures failed challenges; never active again */
	int active;   /* registered, not jailed, staked >= min_stake */
	uint64_t registered_height;
} lg_indexer;
int lg_store_indexer_get(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_indexer *out);
int lg_store_indexer_put(lg_store *s, const lg_indexer *ix);
/* Every indexer's key, by key. */
int lg_store_indexer_keys(lg_store *s, uint8_t (**out)[LG_KEY_BYTES], size_t *n);
/* Active indexers with their stake, by key. */
typedef struct lg_staked {
	uint8_t pk[LG_KEY_BYTES];
	uint64_t stake;
} lg_staked;
int lg_store_indexer_active(lg_store *s, lg_staked **out, size_t *n);

typedef struct lg_magu {
	char name[LG_NAME_MAX + 1];
	uint8_t owner[LG_KEY_BYTES];
	uint32_t dimension, metric, fragments, replication;
	uint32_t slots;  /* target member count: slots 0..slots-1 */
	uint8_t index_spec[LG_INDEX_SPEC_MAX]; /* encoded IndexSpec */
	size_t index_spec_len;
	uint64_t deposit, created_height;
} lg_magu;
int lg_store_magu_get(lg_store *s, const char *name, lg_magu *out);
int lg_store_magu_put(lg_store *s, const lg_magu *m);
/* Deletes the Magu with its slots, fragments, root votes and failover requests. */
int lg_store_magu_del(lg_store *s, const char *name);
/* Names of every Magu, by name; each name is LG_NAME_MAX + 1 bytes. */
int lg_store_magu_names(lg_store *s, char (**out)[LG_NAME_MAX + 1], size_t *n);
/* At most limit names after `after` ("" or NULL: from the first), by name. */
int lg_store_magu_names_after(lg_store *s, const char *after, size_t limit,
			      char (**out)[LG_NAME_MAX + 1], size_t *n);

/* A member seat of a Magu; fragments are placed on slots, so replacing a
 * member moves exactly its fragments. */
typedef struct lg_slot {
	char magu[LG_NAME_MAX + 1];
	uint32_t slot;
	int filled;
	uint8_t holder[LG_KEY_BYTES]; /* valid when filled */
} lg_slot;
int lg_store_slot_put(lg_store *s, const lg_slot *sl);
/* The slots of a Magu, by slot number. */
int lg_store_slots_of_magu(lg_store *s, const char *magu, lg_slot **out, size_t *n);
/* The slots pk holds, by (magu, slot). */
int lg_store_slots_of_holder(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_slot **out, size_t *n);

typedef struct lg_fragment {
	char magu[LG_NAME_MAX + 1];
	uint32_t fragment;
	uint64_t epoch;
	uint8_t primary[LG_KEY_BYTES];
	uint32_t nreplicas;                               /* in ring order */
	uint8_t replicas[LG_MAX_REPLICAS][LG_KEY_BYTES];
	uint64_t committed_size;                          /* 0: none yet */
	uint8_t committed_root[LG_ROOT_BYTES];
	uint64_t committed_height;
	uint32_t nsigners;                                /* who signed the committed root */
	uint8_t signers[LG_MAX_REPLICAS][LG_KEY_BYTES];
} lg_fragment;
int lg_store_fragment_get(lg_store *s, const char *magu, uint32_t fragment, lg_fragment *out);
int lg_store_fragment_put(lg_store *s, const lg_fragment *f);
/* The fragments of a Magu, by number. */
int lg_store_fragments_of(lg_store *s, const char *magu, lg_fragment **out, size_t *n);
/* Fragments with a committed root: how many, and the i-th by (magu, fragment). */
int lg_store_fragment_committed_count(lg_store *s, uint64_t *n);
int lg_store_fragment_committed_nth(lg_store *s, uint64_t i, lg_fragment *out);

/* A fragment's place in the splits of its Magu (services/ledger/lg_st_split.c,
 * common/cm_cell.h). A fragment without a row is SERVING and owns the cell
 * (its number, depth 0), with no parent: lg_store_cell_get then fills that
 * default and returns CM_ERR_NOTFOUND. */
enum lg_cell_state { LG_CELL_SERVING = 0, LG_CELL_SEALING = 1, LG_CELL_SPLIT = 2, LG_CELL_RETIRED = 3 };
typedef struct lg_cell {
	char magu[LG_NAME_MAX + 1];
	uint32_t fragment;
	uint32_t state;                     /* enum lg_cell_state */
	uint32_t base, depth;
	uint64_t path;
	int has_parent;                     /* a split's child: derives from parent's log */
	uint32_t parent;
	uint64_t src_size;                  /* the parent's frozen size and root */
	uint8_t src_root[LG_ROOT_BYTES];
	uint32_t nchildren;                 /* 0 or 2 */
	uint32_t children[2];
	int derived;                        /* a child that committed its first root */
} lg_cell;
int lg_store_cell_get(lg_store *s, const char *magu, uint32_t fragment, lg_cell *out);
int lg_store_cell_put(lg_store *s, const lg_cell *c);

/* A replica's signature on a fragment root, waiting for a majority. */
typedef struct lg_root_vote {
	uint8_t signer[LG_KEY_BYTES];
	uint8_t root[LG_ROOT_BYTES];
} lg_root_vote;
int lg_store_root_vote_put(lg_store *s, const char *magu, uint32_t fragment, uint64_t size,
			   const uint8_t signer[LG_KEY_BYTES], const uint8_t root[LG_ROOT_BYTES]);
/* The votes at (magu, fragment, size), by signer. */
int lg_store_root_votes(lg_store *s, const char *magu, uint32_t fragment, uint64_t size,
			lg_root_vote **out, size_t *n);
/* Deletes every vote of the fragment (when a root commits: later votes
 * must prove consistency from the new committed root). */
int lg_store_root_votes_clear(lg_store *s, const char *magu, uint32_t fragment);

/* A hand-over: leaver (an indexer that unstaked) stays a replica of the
 * fragment while the replicas that joined in its place (pending) catch up;
 * each leaves pending with its first root vote of the epoch. */
typedef struct lg_handover {
	char magu[LG_NAME_MAX + 1];
	uint32_t fragment;
	uint8_t leaver[LG_KEY_BYTES];
	uint64_t start_height;
	uint32_t npending;
	uint8_t pending[LG_MAX_REPLICAS][LG_KEY_BYTES];
} lg_handover;
int lg_store_handover_put(lg_store *s, const lg_handover *h);
int lg_store_handover_del(lg_store *s, const char *magu, uint32_t fragment, const uint8_t *leaver);
/* The hand-overs of one fragment (by leaver), or of every fragment (magu NULL). */
int lg_store_handovers(lg_store *s, const char *magu, uint32_t fragment, lg_handover **out, size_t *n);
/* 1 if pk is handing a fragment over, 0 if not, or an error. */
int lg_store_is_leaving(lg_store *s, const uint8_t *pk);

/* A replica's failover report (proto FailoverRequest): one per requester. */
typedef struct lg_failover {
	uint8_t requester[LG_KEY_BYTES];
	uint64_t epoch, log_size;
	uint64_t last_epoch;                              /* of the requester's last record */
	uint8_t root[LG_ROOT_BYTES];                      /* of its log at log_size */
} lg_failover;
int lg_store_failover_put(lg_store *s, const char *magu, uint32_t fragment, const lg_failover *f);
/* Requests for (magu, fragment) in epoch, by requester. */
int lg_store_failovers(lg_store *s, const char *magu, uint32_t fragment, uint64_t epoch,
		       lg_failover **out, size_t *n);
/* Deletes every request of the fragment. */
int lg_store_failovers_clear(lg_store *s, const char *magu, uint32_t fragment);

enum lg_challenge_status {
	LG_CH_OPEN = 1,
	LG_CH_PASSED = 2,
	LG_CH_FAILED = 3,    /* wrong or late answer: slashed */
	LG_CH_CANCELLED = 4, /* its Magu was dropped */
};
typedef struct lg_challenge {
	uint64_t id;
	char magu[LG_NAME_MAX + 1];
	uint32_t fragment;
	uint8_t indexer[LG_KEY_BYTES];
	uint8_t beacon[CM_HASH_BYTES];
	uint64_t size;                   /* committed size the proofs are against */
	uint8_t root[LG_ROOT_BYTES];
	uint32_t nleaves;
	uint64_t leaves[LG_LEAVES_MAX];
	uint64_t issued_height, deadline;
	int status;                      /* enum lg_challenge_status */
} lg_challenge;
int lg_store_challenge_get(lg_store *s, uint64_t id, lg_challenge *out);
int lg_store_challenge_put(lg_store *s, const lg_challenge *c);
/* Open challenges with deadline <= height, by id. */
int lg_store_challenges_due(lg_store *s, uint64_t height, lg_challenge **out, size_t *n);
/* Open challenges of a Magu, by id. */
int lg_store_challenges_of_magu(lg_store *s, const char *magu, lg_challenge **out, size_t *n);
/* Challenges of an indexer, newest first, at most max (open ones only if open_only). */
int lg_store_challenges_of(lg_store *s, const uint8_t indexer[LG_KEY_BYTES], int open_only,
			   size_t max, lg_challenge **out, size_t *n);
/* The same, only ids below before_id (UINT64_MAX: from the newest). */
int lg_store_challenges_page(lg_store *s, const uint8_t indexer[LG_KEY_BYTES], int open_only,
			     uint64_t before_id, size_t max, lg_challenge **out, size_t *n);

enum lg_proposal_status {
	LG_PROP_OPEN = 1,
	LG_PROP_PASSED = 2,
	LG_PROP_REJECTED = 3,
};
typedef struct lg_proposal {
	uint64_t id;
	uint8_t proposer[LG_KEY_BYTES];
	char param[LG_PARAM_NAME_MAX + 1];
	int64_t value;
	uint64_t apply_height, created_height;
	uint64_t yes_stake, total_stake; /* the tally, once decided */
	int status;                      /* enum lg_proposal_status */
} lg_proposal;
int lg_store_proposal_get(lg_store *s, uint64_t id, lg_proposal *out);
int lg_store_proposal_put(lg_store *s, const lg_proposal *p);
/* Open proposals with apply_height <= height, by id. */
int lg_store_proposals_due(lg_store *s, uint64_t height, lg_proposal **out, size_t *n);
int lg_store_vote_put(lg_store *s, uint64_t proposal, const uint8_t voter[LG_KEY_BYTES], int yes);
/* Voters who voted yes on proposal, by key. */
int lg_store_yes_voters(lg_store *s, uint64_t proposal, uint8_t (**out)[LG_KEY_BYTES], size_t *n);

/* Named parameters and named counters of the state. */
typedef struct lg_named {
	char name[LG_PARAM_NAME_MAX + 1];
	int64_t value;
} lg_named;
int lg_store_param_put(lg_store *s, const char *name, int64_t value);
/* Every parameter, by name. */
int lg_store_params(lg_store *s, lg_named **out, size_t *n);
/* A counter (next challenge id, total stake, ...); 0 when never set. */
int lg_store_counter_get(lg_store *s, const char *name, uint64_t *out);
int lg_store_counter_put(lg_store *s, const char *name, uint64_t value);

/* Ledger replicas (genesis) and the gateways named at genesis (settlement
 * goes by the searchers' allowances; this list is kept for clients). */
typedef struct lg_replica {
	uint32_t position;
	uint8_t pk[LG_KEY_BYTES];
	char address[LG_ADDRESS_MAX + 1];
} lg_replica;
int lg_store_replica_put(lg_store *s, const lg_replica *r);
/* By position. */
int lg_store_replicas(lg_store *s, lg_replica **out, size_t *n);
int lg_store_gateway_put(lg_store *s, const uint8_t pk[LG_KEY_BYTES]);
/* 1 if pk is a gateway, 0 if not, negative on error. */
int lg_store_is_gateway(lg_store *s, const uint8_t pk[LG_KEY_BYTES]);

/* ---- settlement ---- */

/* A searcher's allowance to a gateway: what receipts may still debit, until
 * the expiry height (inclusive). put with amount 0 deletes it. */
typedef struct lg_allowance {
	uint8_t searcher[LG_KEY_BYTES];
	uint8_t gateway[LG_KEY_BYTES];
	uint64_t amount, expiry;
} lg_allowance;
int lg_store_allowance_get(lg_store *s, const uint8_t searcher[LG_KEY_BYTES],
			   const uint8_t gateway[LG_KEY_BYTES], lg_allowance *out);
int lg_store_allowance_put(lg_store *s, const lg_allowance *a);

/* A settled receipt; seq orders them (newest = largest), unique on the chain. */
typedef struct lg_receipt {
	uint8_t id[LG_RECEIPT_ID_MAX_BYTES];
	uint32_t id_len;
	uint64_t seq;
	char magu[LG_NAME_MAX + 1];
	uint8_t searcher[LG_KEY_BYTES];
	uint8_t gateway[LG_KEY_BYTES];
	uint64_t fee;
	uint32_t npayouts;
	struct {
		uint8_t node[LG_KEY_BYTES];
		uint64_t amount;
	} payouts[LG_RANKED_MAX];
	uint64_t height;
	uint8_t tx_hash[CM_HASH_BYTES];
} lg_receipt;
/* 1 if this gateway settled a receipt with this id, 0 if not, negative on
 * error (ids are unique per gateway: another gateway cannot squat them). */
int lg_store_receipt_seen(lg_store *s, const uint8_t gateway[LG_KEY_BYTES], const uint8_t *id, size_t len);
/* Records a receipt and one payout row per paid node (ids must be new). */
int lg_store_receipt_put(lg_store *s, const lg_receipt *r);
enum lg_receipts_by { LG_RCPT_BY_SEARCHER, LG_RCPT_BY_GATEWAY, LG_RCPT_BY_NODE };
/* Receipts of key (as searcher, gateway or paid node) with seq < before_seq,
 * newest first, at most limit. */
int lg_store_receipts(lg_store *s, enum lg_receipts_by by, const uint8_t key[LG_KEY_BYTES],
		      uint64_t before_seq, size_t limit, lg_receipt **out, size_t *n);
/* What a node earned from receipts; get reads zeros for a node never paid. */
typedef struct lg_earnings {
	uint8_t node[LG_KEY_BYTES];
	uint64_t total, receipts;
} lg_earnings;
int lg_store_earnings_get(lg_store *s, const uint8_t node[LG_KEY_BYTES], lg_earnings *out);
int lg_store_earnings_put(lg_store *s, const lg_earnings *e);

/* Double-root evidence already punished, by (signer, magu, fragment, size):
 * seen returns 1, 0, or a negative error. */
int lg_store_double_root_seen(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const char *magu,
			      uint32_t fragment, uint64_t size);
int lg_store_double_root_put(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const char *magu,
			     uint32_t fragment, uint64_t size);
/* Answer-fraud evidence already punished, by (signer, answer digest): seen
 * returns 1, 0, or a negative error. */
int lg_store_answer_fraud_seen(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const uint8_t digest[32]);
int lg_store_answer_fraud_put(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const uint8_t digest[32]);

/* Digest of the whole current state (every state table and the tx index,
 * rows in key order): two stores in the same state have the same digest.
 * For tests and audits; costs a full scan. */
int lg_store_state_digest(lg_store *s, uint8_t out[CM_HASH_BYTES]);

/* ---- access: API keys and Magu access lists (lg_store_access.c) ---- */

/* An API key of account: only its hash is on chain. collections is the
 * key's Magu names joined by '\n' ("" : every collection). */
typedef struct lg_api_key {
	uint8_t hash[CM_HASH_BYTES];
	uint8_t account[LG_KEY_BYTES];
	uint32_t scope;               /* Muri__V1__KeyScope */
	uint64_t expiry;              /* 0: never */
	char collections[LG_KEY_COLLECTIONS_MAX * (LG_NAME_MAX + 1)];
	char label[LG_KEY_LABEL_MAX + 1];
	uint64_t created_height, revoked_height; /* revoked_height 0: live */
} lg_api_key;
int lg_store_api_key_get(lg_store *s, const uint8_t hash[CM_HASH_BYTES], lg_api_key *out);
int lg_store_api_key_put(lg_store *s, const lg_api_key *k);
/* At most max keys of account, by hash. */
int lg_store_api_keys_of(lg_store *s, const uint8_t account[LG_KEY_BYTES], size_t max, lg_api_key **out,
			 size_t *n);

/* A Magu's access lists; a Magu without a row is owned by its creator with
 * empty lists (lg_st_access.c reads it so). */
typedef struct lg_access {
	char magu[LG_NAME_MAX + 1];
	uint8_t owner[LG_KEY_BYTES];
	uint32_t nreaders, nwriters;
	uint8_t readers[LG_ACCESS_LIST_MAX][LG_KEY_BYTES];
	uint8_t writers[LG_ACCESS_LIST_MAX][LG_KEY_BYTES];
	int public_read;
	uint64_t changed_height;
} lg_access;
int lg_store_access_get(lg_store *s, const char *magu, lg_access *out);
int lg_store_access_put(lg_store *s, const lg_access *a);
int lg_store_access_del(lg_store *s, const char *magu);

#endif
