/* Private to the ledger replica's files (lg_node.c: life cycle, inbox and
 * threads; lg_node_chain.c: payload checks and the consensus core's I/O;
 * lg_node_rpc.c: the Ledger queries and FetchBlocks; lg_node_admit.c:
 * transaction admission): the replica's struct, its limits and the functions
 * they share. */
#ifndef LG_NODE_INT_H
#define LG_NODE_INT_H

#include "lg_node.h"
#include "cm_bytes.h"
#include "cm_arena.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_merkle.h"
#include "cm_service.h"
#include "consensus.pb-c.h"
#include "ledger.pb-c.h"
#include "lg_blocks.h"
#include "lg_genesis.h"
#include "lg_hotstuff.h"
#include "lg_mempool.h"
#include "lg_net.h"
#include "lg_state.h"
#include "lg_store.h"
#include "lg_tx.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ERR_MAX 512
#define FETCH_SLOTS 16          /* distinct block requests waiting for the fetcher */
#define FETCH_BATCH 64          /* blocks per FetchBlocks call */
#define BEACON_CACHE 64         /* recent (block hash -> beacon, time, state height and root) */
#define VCACHE_SLOTS (1u << 18) /* signed transactions remembered as verified (8 MiB, direct-mapped) */
#define PRUNE_EVERY 64          /* commits between prunes of the block tree */
#define STALE_MS 500            /* a proposed transaction not committed by then is offered again (never
				 * twice on one branch: proposals follow the nonces of the blocks they extend) */
#define REQUEUE_EVERY_MS 100
#define CLOCK_SKEW_MS 10000     /* how far ahead of ours a proposer's clock may be */
#define FOLLOW_POLL_MS 200
#define LG_NODE_VERIFIERS_MAX 256
#define FUTURE_VIEWS 64         /* proposals and votes taken ahead of the current view (the core's max_future_views) */
#define PREVERIFY_STALE_VIEWS 4 /* a proposal this many views behind ours is not pre-verified */
#define PREVERIFY_SLOTS 64      /* views whose proposal was pre-verified, remembered (direct-mapped) */

enum item_kind { ITEM_MSG, ITEM_BLOCK };

struct item {
	struct item *next;
	int kind;
	uint32_t from;
	size_t len;
	uint8_t bytes[];
};

struct fetch_req {
	int used;
	uint8_t hash[CM_HASH_BYTES];
	uint64_t have;
	uint32_t peer;
};

struct waiter {
	struct waiter *next;
	uint8_t hash[CM_HASH_BYTES];
	int done, state;
	uint64_t height;
	char message[LG_MSG_MAX];
};

struct beacon_entry {
	uint8_t hash[CM_HASH_BYTES];
	uint8_t beacon[CM_HASH_BYTES];
	uint64_t ts;
	uint64_t state_height;                /* the block body's (state_height, state_root) */
	uint8_t state_root[CM_HASH_BYTES];
	int used;
};

struct lg_node {
	lg_node_opts o;
	char *data_dir;
	cm_keypair key;
	lg_genesis *genesis;
	uint32_t n, f, self;
	uint8_t (*pks)[CM_PK_BYTES];
	uint8_t genesis_beacon[CM_HASH_BYTES];

	lg_state *state;   /* consensus thread only (after open) */
	lg_blocks *blocks;
	lg_mempool *mp;
	lg_net *net;
	lg_hs *hs;         /* consensus thread only (after start) */

	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	lg_store **readers;
	uint8_t *reader_busy;
	uint32_t nreaders;

	pthread_t cthread, fthread;
	int started;
	atomic_int stopping;
	atomic_int poke;
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct item *qhead, *qtail;
	size_t qlen;
	uint64_t inbox_dropped;

	pthread_mutex_t fmu;
	pthread_cond_t fcv;
	struct fetch_req freq[FETCH_SLOTS];

	pthread_mutex_t cmu;       /* commit notifications */
	pthread_cond_t ccv;
	uint64_t height;           /* committed height */
	uint64_t last_txs_height;  /* the last committed block with transactions (consensus thread) */
	uint64_t final_through;    /* committed blocks final for followers up to here (consensus thread) */
	uint64_t pinned_through;   /* the highest state_height a block final for followers carries: a
				    * verified follower applies effects up to here (consensus thread) */
	uint64_t recent_sh[3];     /* state_height of the last three committed blocks, newest last */
	uint64_t last_commit_view;
	uint32_t view_run;         /* committed blocks in consecutive views, ending at the last */
	uint64_t last_commit_ms;   /* monotonic time of the last commit */
	uint8_t root[CM_HASH_BYTES];
	uint64_t view;
	struct waiter *waiters;
	uint64_t txs_committed, txs_failed;

	struct lg_vpool *vpool;           /* signature verifiers (lg_node_verify.c) */
	pthread_mutex_t rmu;              /* the relay inbox (lg_node_admit.c) */
	pthread_cond_t rcv;
	struct relay_item *rhead, *rtail;
	size_t rlen;
	uint64_t relay_inbox_dropped;
	pthread_t rthread;
	int rstarted;
	atomic_uint_fast64_t sig_checks;  /* transactions checked in full (not from the cache) */
	pthread_mutex_t vmu;
	uint8_t (*vcache)[CM_HASH_BYTES]; /* signed keys (lg_node_signed_key) that passed lg_node_open_tx */
	int unsigned_noops;               /* the genesis parameter: Noops need no signature */

	/* Set once, never cleared: this replica's state differs from what a
	 * certified block says; it votes and commits nothing more. */
	atomic_int diverged;
	char diverged_why[ERR_MAX]; /* under cmu */

	/* lg_node_preverify: the chain tag for proposal signatures and the
	 * views whose proposal was pre-verified (at most once each), under pvmu */
	uint8_t chain_tag[CM_HASH_BYTES];
	pthread_mutex_t pvmu;
	uint64_t pv_views[PREVERIFY_SLOTS]; /* view + 1; 0: empty */

	struct beacon_entry bc[BEACON_CACHE];
	uint64_t commits_since_prune;
	uint64_t last_requeue;

	int (*status_fn)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out);
	void *status_arg;
	cm_counter *m_blocks, *m_txs, *m_failed, *m_rejected;
	cm_gauge *m_height, *m_view, *m_mempool, *m_diverged;
	cm_histogram *m_commit_wait;
};

/* Shared between the replica's files. */
uint64_t lg_node_hash64(const uint8_t *h);
/* The key of a signed transaction in the verified-signature cache: H(CM_DOM_TX
 * || 0xff || tx hash || signature), so it covers the body AND the signature. */
void lg_node_signed_key(const uint8_t tx_hash[CM_HASH_BYTES], const ProtobufCBinaryData *sig,
			uint8_t key[CM_HASH_BYTES]);
void lg_node_vcache_add(lg_node *n, const uint8_t key[CM_HASH_BYTES]);
int lg_node_vcache_has(lg_node *n, const uint8_t key[CM_HASH_BYTES]);
/* The deterministic check of a signed transaction that a vote and an
 * execution rest on: lg_node_open_tx, memoized in the cache under its signed
 * key. tx_hash receives H(CM_DOM_TX || body). CM_OK or lg_tx_open's code. */
int lg_node_check_tx(lg_node *n, const Muri__V1__SignedTransaction *stx, uint8_t tx_hash[CM_HASH_BYTES]);
/* lg_node_check_tx for each of count transactions, in parallel on the
 * verifier pool with the caller's thread taking part (lg_node_verify.c);
 * hashes (count entries) receives every tx hash. CM_OK if all pass, else
 * the first failure's code (by position). */
int lg_node_check_txs(lg_node *n, Muri__V1__SignedTransaction *const *txs, size_t count,
		      uint8_t (*hashes)[CM_HASH_BYTES]);
/* Starts `threads` verifiers (0: one per online core, at most
 * LG_NODE_VERIFIERS_MAX); stop them before the node is freed. */
int lg_node_verifiers_start(lg_node *n, uint32_t threads);
void lg_node_verifiers_stop(lg_node *n);
/* If msg is a PROPOSAL that passes the cheap checks (its proposer leads its
 * view, the view is near ours, its signature verifies, none of that view
 * was pre-verified yet), checks its transactions now (on the calling RPC
 * thread and the pool), so that the vote finds them in the cache. */
void lg_node_preverify(lg_node *n, const uint8_t *msg, size_t len);
/* Inbound Consensus.Relay (lg_node_admit.c): copied into the relay inbox
 * (bounded by relay_inbox batches; beyond, dropped and counted) for the
 * relay thread, which admits them with lg_node_relay_admit. */
void lg_node_on_relay(void *arg, uint32_t from, Muri__V1__SignedTransaction *const *txs, size_t count);
/* Verifies and admits relayed transactions like client ones, except that
 * they are never relayed again; those already held are skipped. */
void lg_node_relay_admit(lg_node *n, uint32_t from, Muri__V1__SignedTransaction *const *txs, size_t count);
int lg_node_relay_start(lg_node *n);
/* Joins the relay thread (after stopping is set) and frees the inbox. */
void lg_node_relay_stop(lg_node *n);
/* A read-only store from the pool (waits for a free one); give it back. */
lg_store *lg_node_reader_get(lg_node *n);
void lg_node_reader_put(lg_node *n, lg_store *s);
/* The replica index of a public key, or -1. */
int lg_node_replica_of(lg_node *n, const uint8_t pk[CM_PK_BYTES]);
int lg_node_open_tx(lg_node *n, const Muri__V1__SignedTransaction *stx, lg_tx *tx, char *err, size_t errlen);
void lg_node_observe_tx(void *arg, uint64_t height, uint32_t index, const uint8_t hash[CM_HASH_BYTES],
			Muri__V1__TxState state, const char *message);
uint64_t lg_node_committed_nonce(void *arg, const uint8_t sender[CM_PK_BYTES]);
/* Fills the consensus core's I/O table with this replica's functions. */
void lg_node_io_init(lg_node *n, lg_hs_io *io);
int lg_node_serve_fetch(void *arg, cm_rpc_call *call, const Muri__V1__FetchBlocksRequest *req,
			Muri__V1__FetchBlocksResponse *resp);
/* Ledger.SubmitTransaction and Ledger.SubmitTransactions (lg_node_admit.c). */
int lg_node_h_submit(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int lg_node_h_submit_batch(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
/* Puts an inbox item for the consensus thread (dropped when the inbox is full). */
void lg_node_enqueue(lg_node *n, int kind, uint32_t from, const uint8_t *bytes, size_t len);

#endif
