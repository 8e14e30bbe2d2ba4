/* The MurIndexer service: the fragments this node holds (each an
 * ix_fragment plus its replication core, ix_repl.h), the muri.v1.Indexer
 * RPC handlers, and primary-backup log shipping in the manner of PacificA:
 * the primary assigns sequence numbers, appends durably, ships signed
 * records to the backups and acknowledges when the consistency level is met
 * while it holds its lease; backups take records only from the primary of
 * their epoch. */
#ifndef IX_SERVICE_H
#define IX_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "cm_metrics.h"
#include "cm_rpc.h"
#include "ix_fragment.h"
#include "types.pb-c.h"

#define IX_MAX_REPLICAS 16   /* replicas of one fragment */
#define IX_MAGU_MAX 128      /* bytes of a Magu name */
#define IX_ADDR_MAX 256      /* bytes of a host:port */

typedef struct ix_service ix_service;

typedef struct ix_service_opts {
	const char *data_dir;        /* fragments live in data_dir/fragments/ */
	const cm_keypair *key;       /* signs answers, roots and challenge responses */
	ix_options frag;             /* storage and index tuning of every fragment */
	uint32_t max_fragments;      /* fragments held at most */
	uint32_t repl_batch;         /* records per Replicate call */
	uint64_t max_message;        /* rpc_max_message: an append's records take at most half of it; 0: no bound */
	uint32_t repl_timeout_ms;    /* deadline of one Replicate call */
	uint32_t write_timeout_ms;   /* default wait for the consistency level */
	uint32_t heartbeat_ms;       /* primary -> backups at least this often; 0: 100 */
	uint32_t lease_ms;           /* a primary acknowledges only this long after a quorum answered; 0: 2000 */
	uint32_t suspect_ms;         /* a backup's wait for its primary before asking for failover; 0: 5000 */
	uint32_t start_grace_ms;     /* ... longer while a new epoch's primary has sent nothing yet; 0: none */
	uint32_t drop_ms;            /* a primary's wait for a silent backup before asking for its replacement; 0: never */
	uint32_t root_every;         /* a primary names each multiple of this many records for roots; 0: none */
	uint32_t root_ms;            /* and its log size this long after the last named size; 0: never */
	uint32_t root_hold_ms;       /* a named size not committed yet stays named this long; 0: no hold */
	const char *tls_ca_file;     /* to reach peers over TLS; NULL: plaintext */
	int deny_set_config;         /* 1: SetConfig answers FAILED_PRECONDITION (the ledger configures) */
	uint32_t max_index_backlog;  /* a primary refuses writes (RESOURCE_EXHAUSTED) while a fragment's
				      * index is this many records behind its log; 0: no bound */
	uint32_t read_wait_ms;       /* a read with min_size waits this long for the log to reach it; 0: 1000 */
	uint32_t read_auth_window_ms; /* a signed read's wall_ms at most this far from ours; 0: 60000 */
	uint32_t read_replay_max;    /* signed reads remembered against replays; 0: 65536 */
	uint32_t max_search_batch;   /* query vectors one Search call may carry; 0: 256 */
	uint32_t answer_group_max;   /* single-query answers signed under one root at most (ix_sign.h); 0: 64 */
	uint32_t answer_group_wait_us; /* how long a signature waits for searches still running */
	uint32_t max_scroll_scan;    /* live records one Scroll call examines at most; 0: 100000 */
	/* a split's half without its parent's frozen log fetches it (ix_split.c) */
	uint32_t split_fetch_page;   /* records per FetchLog call; 0: 256 */
	uint32_t split_fetch_timeout_ms; /* deadline of one FetchLog call; 0: 5000 */
	uint32_t split_fetch_retries; /* failed calls in a row before the next parent replica */
	uint32_t split_fetch_pass_ms; /* a pass of the root submitter fetches at most this long; 0: 2000 */
	cm_metrics *metrics;         /* NULL: no per-stage search histograms */
	int test_lie;                /* built with -Dtest_faults=true: enum ix_lie_kind (ix_lie.h), 0 honest */
} ix_service_opts;

/* Opens every fragment found under data_dir with its saved configuration
 * and starts shipping for those this node is primary of. The caller owns
 * *out (ix_service_close). */
int ix_service_open(const ix_service_opts *o, ix_service **out, char *err, size_t errlen);
/* Registers the muri.v1.Indexer handlers (Status included) on srv. */
int ix_service_register(ix_service *s, cm_rpc_server *srv, void *status_arg,
			int (*status)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out));
/* Stops the shipping threads; RPCs still answer. Idempotent. */
void ix_service_stop(ix_service *s);
/* Stops and closes every fragment (saving indexes). Accepts NULL. */
void ix_service_close(ix_service *s);
/* Adds fragment counts to a Status response, in the call's memory. */
void ix_service_status_details(ix_service *s, cm_rpc_call *call, Muri__V1__StatusResponse *r);

/* A replica's failover request for one fragment, as the ledger takes it. */
typedef struct ix_failover_report {
	uint64_t epoch;              /* the epoch given up on */
	uint64_t size;               /* the sender's log size */
	uint8_t root[CM_HASH_BYTES]; /* its log's root at size */
	uint64_t last_epoch;         /* the epoch of its last record */
	int has_drop;                /* the primary asks for drop's replacement instead */
	uint8_t drop[CM_PK_BYTES];   /* a backup that stopped answering */
} ix_failover_report;
/* Receives failover requests (the ledger client's queue). Called on a core's
 * thread with the fragment's core lock held: it must not block. */
typedef void (*ix_failover_fn)(void *arg, const char *magu, uint32_t fragment, const ix_failover_report *r);
/* Sets (fn NULL: clears) the sink; once it returns, a cleared sink is not
 * called any more. Without a sink requests are only logged. */
void ix_service_set_failover_sink(ix_service *s, ix_failover_fn fn, void *arg);
/* Sets the keys that may read every fragment's proofs besides its replicas
 * (the ledger replicas and the genesis gateways). */
int ix_service_set_readers(ix_service *s, const uint8_t (*pks)[CM_PK_BYTES], size_t n);

/* The digest a signed root or challenge response is signed over:
 * H(domain || msg packed with its signature field empty). Exposed for
 * clients and tests that verify. Search answers are signed over the
 * canonical answer digest instead (common/cm_answer.h). */
void ix_signed_digest(uint8_t out[CM_HASH_BYTES], uint8_t domain, const ProtobufCMessage *msg);

#endif
