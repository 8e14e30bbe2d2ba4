/* One ledger replica put together: the consensus core (lg_hotstuff) driven
 * by a thread of its own, the transport to the other replicas (lg_net), the
 * mempool, the pending block tree (lg_blocks), the state machine (lg_state)
 * executed on commit, and the muri.v1.Ledger service: transactions, queries
 * and the feed of committed blocks. */
#ifndef LG_NODE_H
#define LG_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "cm_metrics.h"
#include "cm_rpc.h"
#include "types.pb-c.h"

typedef struct lg_node lg_node;

typedef struct lg_node_opts {
	const char *data_dir;          /* ledger.db, blocks.db */
	const char *genesis_path;
	const cm_keypair *key;         /* must be one of the genesis replicas */
	uint32_t base_timeout_ms;      /* pacemaker: first view timeout */
	uint32_t max_timeout_ms;       /* pacemaker: cap of the back-off */
	uint32_t tick_ms;              /* consensus timer resolution */
	uint32_t max_payload_bytes;    /* hard cap of a proposal's payload and of a peer message; the
					* governed parameters block_max_txs / block_max_bytes size
					* blocks within it */
	uint32_t mempool_max_txs;
	uint64_t mempool_max_bytes;
	uint32_t mempool_per_sender;
	uint32_t inbox_max;            /* consensus messages queued for the core */
	uint32_t net_queue;            /* messages queued per peer */
	uint32_t relay_queue;          /* admitted transactions queued per peer for relay (0: 65536) */
	uint32_t relay_batch;          /* transactions per Relay call (0: 256) */
	uint32_t relay_inbox;          /* inbound Relay batches waiting for admission */
	uint32_t verifier_threads;     /* signature verifier threads (0: one per core) */
	uint32_t empty_block_ms;       /* idle chain: an empty block at most this often (0: none) */
	int idle_when_final;           /* idle once the last transactions are final (else: while blocks wait) */
	uint32_t readers;              /* read-only SQLite connections for queries */
	uint32_t max_wait_ms;          /* longest SubmitTransaction wait_commit */
	const char *tls_ca_file;       /* to reach peers over TLS; NULL: plaintext */
	cm_metrics *metrics;
} lg_node_opts;

/* Loads genesis, opens (or creates) the state and the block tree, and
 * restores consensus from what was persisted. The caller owns *out
 * (lg_node_close). */
int lg_node_open(const lg_node_opts *o, lg_node **out, char *err, size_t errlen);
/* Registers the Ledger and Consensus services on srv. */
int lg_node_register(lg_node *n, cm_rpc_server *srv, void *status_arg,
		     int (*status)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out));
/* Starts the consensus and fetch threads. */
int lg_node_start(lg_node *n, char *err, size_t errlen);
/* Stops the threads and wakes every stream and waiter. Idempotent. */
void lg_node_stop(lg_node *n);
/* Stops if needed and releases everything. Accepts NULL. */
void lg_node_close(lg_node *n);
/* 1 once this replica found its state root differs from the one a certified
 * block carries (it then votes and commits nothing more; see
 * lg_node_chain.c); why receives the heights and both roots unless NULL. */
int lg_node_diverged(lg_node *n, char *why, size_t len);
/* Transactions whose signature this replica checked (cache misses). */
uint64_t lg_node_sig_checks(lg_node *n);
/* Adds height, view, state root and counters to a Status response. */
void lg_node_status_details(lg_node *n, cm_rpc_call *call, Muri__V1__StatusResponse *r);

#endif
