/* Inside the MurIndexer service: a fragment's registry entry (its store,
 * its replication core and the threads that carry the core's messages),
 * shared by the registry and read handlers (ix_service.c) and the
 * replication glue (ix_replica.c). Not for use outside services/indexer. */
#ifndef IX_SERVICE_INT_H
#define IX_SERVICE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cm_arena.h"
#include "ix_repl.h"
#include "ix_service.h"
#include "indexer.pb-c.h"

#define IX_ERR_MAX 256
#define IX_CHAIN_ID_MAX 64
#define IX_SEARCH_STAGES 6 /* validate, wait, search, hits, sign, build */

struct frag;

/* Carries the core's appends to one backup: the core keeps one in flight,
 * so one slot (the newest) is enough. */
struct sender {
	struct frag *f;
	uint8_t pk[CM_PK_BYTES];
	char addr[IX_ADDR_MAX];
	pthread_t thread;
	int running;
	int stop;                  /* under f->mu */
	/* under f->mu: the next append to send; entries point into data */
	int full;
	ix_repl_append a;
	ix_repl_entry *ents;
	uint32_t ents_cap;
	uint8_t *data;
	size_t data_cap;
	uint64_t sent, failures;
};

/* A Write waiting for its level (under core_mu). */
struct waiter {
	uint64_t token;
	int done, rc, level;
	uint64_t first, end;
	uint32_t nacked;
	uint8_t acked[IX_MAX_REPLICAS][CM_PK_BYTES];
	struct waiter *next;
};

struct frag {
	ix_service *svc;
	char magu[IX_MAGU_MAX + 1];
	uint32_t fragment;
	uint8_t id[CM_HASH_BYTES];   /* the fragment in replication digests */
	char dir[PATH_MAX / 2];
	pthread_mutex_t cfg_mu;      /* serializes configuration changes (joins senders) */
	pthread_mutex_t core_mu;     /* every call into core, and the log writes it makes, but a
				      * client write's durable append (ix_replica.c, io_log_append) */
	pthread_mutex_t write_mu;    /* client writes on the primary, in order (taken before core_mu) */
	pthread_cond_t done_cv;      /* writes done, with core_mu */
	pthread_mutex_t mu;          /* store, spec, senders' slots */
	pthread_cond_t cv;           /* senders' slots */
	ix_fragment *store;          /* set once (under core_mu and mu), then fixed */
	ix_spec spec;
	ix_repl *core;               /* NULL until a configuration arrives */
	Muri__V1__FragmentConfig *cfg; /* the configuration with addresses (owned) */
	struct sender snd[IX_MAX_REPLICAS];
	struct waiter *waiters;
	uint64_t next_token;
	cm_arena io;                 /* the core's log reads, during one core call */
	/* set during one core call, under core_mu */
	const Muri__V1__FragmentSchema *schema_in; /* creates the store on a first Replicate */
	const Muri__V1__FragmentConfig *cfg_in;     /* persisted with the core's state */
	ix_repl_ack *ack_out;        /* a Replicate's answer */
	/* the entries of the client write being appended (seqs recent_first..
	 * recent_end, in its call's arena; under core_mu): the core's shipping
	 * reads them from here rather than from the store */
	const ix_repl_entry *recent;
	uint64_t recent_first, recent_end;
	int ack_set;
	uint64_t failovers;          /* failover requests made */
	uint64_t root_signed;        /* the largest size whose root this node submitted (ix_chain's thread) */
	uint64_t root_epoch;         /* the epoch it was signed in */
	uint64_t handoff_logged;     /* the epoch whose hand-off of the primary role was logged */
	int derived;                 /* a split's half: its records derived (ix_split.c) */
	uint64_t derived_size;       /* how many */
	int split_live;              /* ... and the ledger declared it live */
	struct ixp_fetch *fetch;     /* a half fetching its parent's frozen log (ix_split.c; the root submitter's thread) */
	/* a split parent: its halves' replicas, who may FetchLog it (ix_split.c; under mu) */
	uint32_t child_no[2], nchild[2];
	uint8_t child_pk[2][IX_MAX_REPLICAS][CM_PK_BYTES];
};

struct ix_service {
	ix_service_opts o;
	char *data_dir;
	cm_keypair key;
	pthread_rwlock_t lk;         /* the registry */
	struct frag **frags;
	size_t nfrags;
	atomic_int stopping;
	pthread_t ticker;
	int ticker_running;
	void *status_arg;
	int (*status)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out);
	struct ix_signer *signer;    /* single-query answers signed together (ix_sign.h) */
	struct ix_lie *lie;          /* test builds (-Dtest_faults=true): the lying mode; NULL: honest */
	pthread_mutex_t sink_mu;     /* the failover sink and the chain id */
	ix_failover_fn sink;
	void *sink_arg;
	char chain_id[IX_CHAIN_ID_MAX + 1]; /* the ledger's chain, bound into signed roots ("" without one) */
	struct ix_read_auth *reads;  /* who may read logs and proofs (ix_read_auth.h) */
	cm_histogram *stage[IX_SEARCH_STAGES]; /* Search's time by stage (ix_read_rpc.c); NULL without metrics */
};

/* ix_read_rpc.c: registers the Search stage histograms on s->o.metrics. */
void ixs_read_metrics(ix_service *s);

/* ix_service.c */
struct frag *ixs_find_frag(ix_service *s, const char *magu, uint32_t fragment);
int ixs_get_or_add_frag(ix_service *s, const char *magu, uint32_t fragment, struct frag **out);
ix_fragment *ixs_store_of(struct frag *f);
int ixs_valid_magu(const char *m);
/* The chain id signed roots are bound to (set by ix_chain). */
void ixs_set_chain_id(ix_service *s, const char *id);
void ixs_chain_id(ix_service *s, char out[IX_CHAIN_ID_MAX + 1]);
/* Hands a failover report to the sink, if one is set. */
void ixs_failover(ix_service *s, const char *magu, uint32_t fragment, const ix_failover_report *r);
int ixs_fail_from(cm_rpc_call *call, int rc, const char *msg);
void ixs_set_hash(cm_rpc_call *call, ProtobufCBinaryData *field, const uint8_t *h);

/* ix_replica.c: the replication core wired to the store, the network and
 * the configuration. */
/* Loads f's persisted replication state (if any) and starts its core. */
int ix_replica_load(struct frag *f, char *err, size_t errlen);
/* Stops f's senders (joins them). */
void ix_replica_stop(struct frag *f);
/* Releases f's core and configuration; after ix_replica_stop. */
void ix_replica_free(struct frag *f);
/* One tick of f's core if its core is free within wait_ms. */
void ix_replica_tick(struct frag *f, uint32_t wait_ms);
int ix_replica_is_primary(struct frag *f);
/* Whether this node is one of f's replicas in its current configuration. */
int ix_replica_is_member(struct frag *f);
/* Shared with the handlers (ix_replica_rpc.c). */
const char *ixr_check_config(const Muri__V1__FragmentConfig *c);
void ixr_config_from_pb(const Muri__V1__FragmentConfig *c, ix_repl_config *out);
/* Opens f's store with schema if it has none; under core_mu. */
int ixr_ensure_store(struct frag *f, const Muri__V1__FragmentSchema *schema, char *err, size_t errlen);
/* A record's canonical bytes in a, as a core entry. */
int ixr_entry_of(const ix_record *r, cm_arena *a, ix_repl_entry *e);
/* The same without the leaf hash (for ix_repl_write, which sets it). */
int ixr_entry_bytes(const ix_record *r, cm_arena *a, ix_repl_entry *e);
/* Creates f's core from st (NULL: fresh); under core_mu. */
int ixr_core_new(struct frag *f, const ix_repl_persist *st);
/* Around a client write's ix_repl_write on the primary (under write_mu and
 * core_mu): its durable append runs with core_mu released, its records
 * decoded into a (the call's arena). */
void ixr_write_begin(struct frag *f, cm_arena *a);
void ixr_write_end(struct frag *f);
/* Takes / releases core_mu around a core call; try_enter takes it only
 * if it comes free within wait_ms (1 when taken). */
void ixr_core_enter(struct frag *f);
int ixr_core_try_enter(struct frag *f, uint32_t wait_ms);
void ixr_core_leave(struct frag *f);
/* Starts a sender per backup if this node is f's primary; under cfg_mu, senders stopped. */
void ixr_start_senders(struct frag *f);
int ix_h_write(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int ix_h_replicate(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int ix_h_fetch_log(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
/* Applies a fragment configuration (SetConfig's and the ledger feed's path):
 * creates the fragment if new, hands the configuration to its core, and with
 * schema (may be NULL) opens its store if this node is a member without one.
 * *changed (may be NULL) says whether the epoch moved. err names the field. */
int ixr_apply_config(ix_service *s, const Muri__V1__FragmentConfig *cfg, const Muri__V1__FragmentSchema *schema,
		     int *changed, char *err, size_t errlen);
int ix_h_set_config(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);

/* ix_read_auth.c: the check of a signed read of magu/fragment (f: its entry
 * here, or NULL) named method: GRPC_STATUS_OK when req's auth is a fresh,
 * unreplayed signature by a replica of the fragment (with proofs
 * IXS_READ_PROOFS, also by a ledger replica or a genesis gateway; with
 * IXS_READ_LOG, also by a replica of a split half of f, which derives from
 * its frozen log); the failed status otherwise. */
#define IXS_READ_PROOFS 1
#define IXS_READ_LOG 2
int ixs_read_check(ix_service *s, cm_rpc_call *call, const char *method, const ProtobufCMessage *req,
		   const Muri__V1__ReadAuth *auth, const char *magu, uint32_t fragment, struct frag *f, int proofs);

/* ix_read_auth.c: with mutual TLS on (cm_rpc_peer_checked), GRPC_STATUS_OK
 * only when the caller's certificate is bound to the node key of a replica
 * of magu/fragment (f: its entry here, or NULL) in its current epoch, or
 * with readers IXS_READ_PROOFS, of a ledger replica or a genesis gateway,
 * with IXS_READ_LOG, of a replica of a split half of f; the failed
 * status (UNAUTHENTICATED, PERMISSION_DENIED naming why) otherwise. Without
 * mutual TLS, GRPC_STATUS_OK. ixs_read_check makes it too. */
int ixs_peer_check(ix_service *s, cm_rpc_call *call, const char *method, const char *magu, uint32_t fragment,
		   struct frag *f, int readers);

/* ix_read_rpc.c: Search and Get. */
int ix_h_search(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
/* ix_proof_rpc.c */
int ix_h_get_root(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int ix_h_inclusion(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int ix_h_consistency(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int ix_h_challenge(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int ix_h_get(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int ix_h_scroll(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp);

#endif
