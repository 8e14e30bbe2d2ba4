/* The gateway's shared pieces: its configuration, the routing table it keeps
 * from the ledger (gw_chain.c), the channels to indexers (gw_clients.c), the
 * fan-out pool (gw_pool.c), request validation (gw_valid.c) and the context
 * every VectorStore handler receives. */
#ifndef GW_H
#define GW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "cm_fragment.h"
#include "cm_ledger_client.h"
#include "cm_rpc.h"
#include "cm_splitmap.h"
#include "gw_seen.h"
#include "cm_service.h"
#include "gw_quota.h"
#include "gw_rank.h"
#include "indexer.pb-c.h"
#include "ledger.pb-c.h"
#include "vectorstore.pb-c.h"

#define GW_NAME_MAX 128               /* bytes of a collection name */
#define GW_ADDR_MAX 256               /* bytes of a host:port */
#define GW_MAX_REPLICAS CM_FRAGMENT_MAX_REPLICAS
#define GW_MAX_FRAGMENTS 1024
#define GW_MAX_DIM 4096
#define GW_MAX_TOP_K 1000
#define GW_MAX_TIMEOUT_MS 600000
#define GW_ERR_MAX 1200
#define GW_RANKED_MAX 4096            /* nodes whose ranks the gateway keeps */

typedef struct gw_config {
	cm_service_config base;
	char *genesis;                /* the ledger's genesis file (required) */
	char *payer_key_file;         /* account paying for CreateMagu / DropMagu; "" = none */
	int64_t create_deposit;       /* CreateMagu deposit */
	int64_t collection_hnsw_m;    /* HNSW M of a new float collection that sets none; 0: the indexer's */
	int64_t chain_fee;            /* fee of the gateway's transactions */
	int64_t max_batch;            /* vectors per Insert/Upsert/Update, ids per Delete/Get */
	int64_t max_queries;          /* query vectors per SearchBatch */
	int64_t max_scroll_page;      /* records per Scroll page (gw_scroll.c) */
	int64_t queries_per_call;     /* a SearchBatch's query vectors in one Search call to a replica */
	int64_t try_query_ms;         /* try_timeout_ms grows by this for each query of a call past the first */
	int64_t default_timeout_ms;   /* a request with timeout_ms 0 */
	int64_t create_timeout_ms;    /* CreateCollection: commit and serving replicas */
	int64_t ready_wait_ms;        /* at start: wait for the routing table to catch up (gw_chain_ready) */
	int64_t fanout_threads;       /* threads that carry calls to indexers */
	int64_t max_fanout;           /* calls to indexers queued or in flight at most */
	int64_t stall_ms;             /* follower: no block this long, switch replica */
	int64_t try_timeout_ms;       /* a replica call while others are left to ask: move on after this */
	char *tls_ca;                 /* PEM roots for indexer and ledger TLS; "" = plaintext */
	int64_t spot_permille;        /* answers spot-checked, per mille */
	int64_t spot_queue;           /* spot checks waiting at most */
	int64_t answer_sig_cache;     /* batch signatures remembered as verified (0: none) */
	int64_t receipt_batch;        /* receipts per Settle: one is sent when this many wait */
	int64_t receipt_flush_ms;     /* ... or when the oldest waited this long */
	int64_t receipt_queue_max;    /* receipts waiting at most (more are refused, counted) */
	int64_t receipt_allowance;    /* the payer's Approve to the gateway key; 0: no receipts */
	int64_t receipt_allowance_blocks; /* the Approve's expiry, in blocks from its height */
	int64_t receipt_fee_float;    /* the payer tops the gateway's account up by this (0: never) */
	char *import_schemes;         /* URL schemes Import reads (gw_import.c) */
	int64_t import_batch_timeout_ms; /* deadline of one Import batch's write */
	int64_t import_range_bytes;   /* bytes per HTTP Range request of an Import */
	int64_t import_resume_max;    /* interrupted imports whose progress is remembered */
	bool auth;                    /* callers must prove an account (gw_auth.h) */
	bool auth_anonymous_reads;    /* ... except to read public collections */
	int64_t auth_signed_window_ms; /* a signed call's timestamp within this of the clock */
	int64_t auth_nonce_cache;     /* signed calls remembered against replay */
	int64_t auth_keys_max;        /* API keys the gateway mirrors at most */
	char *console_listen;         /* the console's HTTP host:port; "" = off (gw_console.h) */
	char *console_url_file;       /* the console's URL is written here once it listens; "" = none */
	int64_t console_poll_ms;      /* the console asks every node's Status this often */
	int64_t console_max_body;     /* bytes of a console request's body */
	int64_t console_connections;  /* the console's HTTP connections at once */
	double quota_requests_per_second; /* per account (gw_quota.h); 0: none */
	double quota_requests_burst;
	double quota_vectors_per_second;
	double quota_vectors_burst;
	int64_t quota_concurrent_calls;
	uint64_t quota_request_bytes;
	int64_t quota_top_k_batch;
	int64_t quota_accounts;       /* accounts the quota table holds (read at start only) */
} gw_config;

/* The per-account quota keys (gw_quota_call.c), in gw_main.c's table; all
 * but quota_accounts are read again on SIGHUP. */
#define GW_QUOTA_CONFIG_KEYS                                                                                      \
	{"quota_requests_per_second", CM_CFG_DOUBLE, offsetof(gw_config, quota_requests_per_second), "10000", 0,  \
	 1e9, "requests one account (with auth off: all callers together) may make per second, on average; "      \
	 "more get RESOURCE_EXHAUSTED with the wait (retry-after-ms); 0: no limit", NULL},                       \
	{"quota_requests_burst", CM_CFG_DOUBLE, offsetof(gw_config, quota_requests_burst), "20000", 0, 1e12,     \
	 "requests an idle account may make at once above its rate (0: one second's worth)", NULL},             \
	{"quota_vectors_per_second", CM_CFG_DOUBLE, offsetof(gw_config, quota_vectors_per_second), "1000000", 0,  \
	 1e12, "vectors one account may write per second (Insert, Upsert, Update, Import); a refused write "      \
	 "writes nothing; an Import waits instead; 0: no limit", NULL},                                          \
	{"quota_vectors_burst", CM_CFG_DOUBLE, offsetof(gw_config, quota_vectors_burst), "2000000", 0, 1e15,     \
	 "vectors an idle account may write at once; a larger write is refused outright (0: one second's "       \
	 "worth)", NULL},                                                                                         \
	{"quota_concurrent_calls", CM_CFG_INT, offsetof(gw_config, quota_concurrent_calls), "1024", 0, 1000000,   \
	 "calls of one account in flight at once; 0: no limit", NULL},                                           \
	{"quota_request_bytes", CM_CFG_SIZE, offsetof(gw_config, quota_request_bytes), "0", 0, 2147483647.0,     \
	 "bytes of one request message of one account (below rpc_max_message, which holds for all); 0: no "     \
	 "limit", NULL},                                                                                          \
	{"quota_top_k_batch", CM_CFG_INT, offsetof(gw_config, quota_top_k_batch), "1000000", 0, 1e12,            \
	 "query vectors x top_k of one Search or SearchBatch; 0: no limit", NULL},                               \
	{"quota_accounts", CM_CFG_INT, offsetof(gw_config, quota_accounts), "65536", 16, 100000000,              \
	 "accounts whose quotas the gateway tracks at once (about 100 bytes each); past it the least recently "  \
	 "seen idle account is forgotten (read at start only)", NULL}

/* The Import RPC's configuration keys (gw_import.c), in gw_main.c's table. */
#define GW_IMPORT_CONFIG_KEYS                                                                                     \
	{"import_schemes", CM_CFG_STR, offsetof(gw_config, import_schemes), "http,https,s3", 0, 0,                \
	 "URL schemes the Import RPC reads, comma-separated, of http, https, s3, file (file:// reads the "       \
	 "gateway's own files: only for an operator who trusts every client)", NULL},                            \
	{"import_batch_timeout_ms", CM_CFG_INT, offsetof(gw_config, import_batch_timeout_ms), "60000", 100,      \
	 600000, "deadline of the write of one Import batch", NULL},                                              \
	{"import_range_bytes", CM_CFG_INT, offsetof(gw_config, import_range_bytes), "4194304", 4096, 67108864,  \
	 "bytes per HTTP Range request an Import reads (the memory a stream's reader holds)", NULL},             \
	{"import_resume_max", CM_CFG_INT, offsetof(gw_config, import_resume_max), "256", 1, 1000000,             \
	 "interrupted imports whose progress the gateway remembers, to resume them (the oldest is forgotten)",  \
	 NULL}

/* ---- routing table (gw_chain.c) ---- */

typedef struct gw_replica {
	uint8_t pk[CM_PK_BYTES];
	char addr[GW_ADDR_MAX];
} gw_replica;

typedef struct gw_frag {
	uint64_t epoch;                  /* 0: no configuration yet */
	int primary;                     /* index into rep, -1 when the primary is not listed */
	uint32_t nrep;
	gw_replica rep[GW_MAX_REPLICAS];
	uint64_t committed_size;         /* last committed root on chain */
	uint8_t committed_root[CM_HASH_BYTES];
	uint64_t acked_size;             /* largest log size a write through this gateway was acked at */
	cm_splitfrag split;              /* phase, cell, halves, parent (gw_split.c); present once configured */
	uint8_t ask;                     /* in a copy (gw_chain_get): a search asks it (the plan) */
} gw_frag;

/* A collection (Magu) as the chain made it, and its fragments. In the table
 * it is owned by gw_chain; gw_chain_get hands out a copy. */
typedef struct gw_coll {
	char name[GW_NAME_MAX + 1];
	uint64_t gen;                    /* distinguishes a re-created Magu of the same name */
	uint32_t dim;
	int metric;
	Muri__V1__IndexSpec index;       /* scalars only (no unknown fields) */
	uint32_t nfrag, repl;            /* nfrag: fragment numbers held, halves of splits included */
	uint32_t nbase;                  /* the Magu's initial fragment count (MaguInfo.fragments) */
	uint8_t owner[CM_PK_BYTES];
	uint64_t created_height;
	gw_frag *frags;                  /* nfrag */
	/* in a copy (gw_chain_get): the split map and the search plan (gw_split.c) */
	cm_splitmap *map;
	cm_split_target *plan;
	size_t nplan;
	int plan_rc;                     /* CM_OK, or why the map has no plan (a cell nobody reads) */
} gw_coll;

typedef struct gw_chain gw_chain;

typedef struct gw_chain_opts {
	const char *genesis_file;
	const cm_keypair *key;           /* signs the gateway's transactions (the payer); required */
	uint64_t fee;
	int stall_ms;
	const char *tls_ca_file;
	struct gw_auth *auth;            /* fed every final block; NULL: none */
} gw_chain_opts;

int gw_chain_start(const gw_chain_opts *o, gw_chain **out, char *err, size_t errlen);
void gw_chain_free(gw_chain *c);
cm_ledger_client *gw_chain_client(gw_chain *c);
/* A copy of the named collection (gw_coll_free), or CM_ERR_NOTFOUND. */
int gw_chain_get(gw_chain *c, const char *name, gw_coll **out);
/* Copies of every collection, by name (each freed with gw_coll_free, the array with free). */
int gw_chain_list(gw_chain *c, gw_coll ***out, size_t *n);
void gw_coll_free(gw_coll *m);
/* The fragment's current routing (epoch, replicas) into *out; CM_ERR_NOTFOUND
 * when the collection (of that generation) is gone. */
int gw_chain_frag(gw_chain *c, const char *name, uint64_t gen, uint32_t fragment, gw_frag *out);
/* Raises the fragment's acknowledged size (read your writes). */
void gw_chain_note_acked(gw_chain *c, const char *name, uint64_t gen, uint32_t fragment, uint64_t size);
/* A counter that moves with every change to the table. */
uint64_t gw_chain_version(gw_chain *c);
/* Waits until the version differs from seen or ms pass. */
void gw_chain_wait(gw_chain *c, uint64_t seen, uint64_t ms);
/* The last height applied. */
uint64_t gw_chain_height(gw_chain *c);
/* 1 once the gateway has applied the height f + 1 replicas vouched for when
 * it started (every collection created before is in the table); *height the
 * last applied, *target that height (*known 0 while no f + 1 replicas
 * answered). Each pointer may be NULL. */
int gw_chain_ready(gw_chain *c, uint64_t *height, uint64_t *target, int *known);
/* Waits until gw_chain_ready or ms pass; returns whether ready. */
int gw_chain_wait_ready(gw_chain *c, uint64_t ms);
/* The chain id of the genesis the gateway follows. */
const char *gw_chain_id(gw_chain *c);

/* ---- the split map of a collection (gw_split.c) ---- */

/* Sets fr->split from a fragment configuration (the split fields 7-13). */
void gw_split_set(gw_frag *fr, uint32_t fragment, const Muri__V1__FragmentConfig *cfg);
/* Builds m->map, m->plan and each fragment's ask in a copy; CM_ERR_NOMEM. */
int gw_split_plan(gw_coll *m);
/* The fragment a write of id goes to now (cm_splitmap_route): CM_OK,
 * CM_ERR_UNAVAILABLE (wait: it seals or its half is not live) or
 * CM_ERR_NOTFOUND. */
int gw_split_route(const gw_coll *m, const uint8_t id[16], uint32_t *fragment);
/* Whether fr takes writes now (serving, and live if a half). */
int gw_split_writable(const gw_frag *fr);
/* The fragment a read of id asks: the plan's target whose cell holds it
 * (a frozen parent for a half not live yet); the base fragment when none. */
uint32_t gw_split_reader(const gw_coll *m, const uint8_t id[16]);
/* Whether a hit of id from fragment f belongs to an answer (the plan reads
 * id there). */
int gw_split_keeps(const gw_coll *m, uint32_t f, const uint8_t id[16]);
/* A fragment's state for Describe: serving, sealing, split, retired or
 * deriving (a half not live yet). */
const char *gw_split_state(const gw_frag *fr);

/* ---- channels to indexers (gw_clients.c) ---- */

typedef struct gw_clients gw_clients;
int gw_clients_new(const char *tls_ca, size_t max_message, gw_clients **out);
void gw_clients_free(gw_clients *cs);
/* The shared channel to addr (created on first use); NULL when it cannot be made. */
cm_rpc_client *gw_clients_get(gw_clients *cs, const char *addr, const uint8_t pk[CM_PK_BYTES]);

/* ---- fan-out pool (gw_pool.c) ---- */

typedef struct gw_pool gw_pool;
int gw_pool_new(int threads, size_t max_queued, gw_pool **out);
void gw_pool_free(gw_pool *p);
/* Runs fn(arg, i) for i in [0, n) on the pool's threads and returns once all
 * have returned. CM_ERR_TOOBIG (nothing run) when n more tasks would exceed
 * the queue bound. */
int gw_pool_run(gw_pool *p, size_t n, void (*fn)(void *arg, size_t i), void *arg);

/* ---- the service ---- */

typedef struct gw_metrics {
	cm_counter *writes, *write_records, *searches, *queries, *partial, *retries;
	cm_histogram *search_ms, *write_ms;
} gw_metrics;

typedef struct gw_ctx {
	const gw_config *cfg;
	cm_service *svc;
	gw_chain *chain;
	gw_clients *clients;
	gw_pool *pool;
	gw_seen *seen;                   /* batch signatures verified (gw_seen.h); NULL: none kept */
	int has_payer;
	cm_keypair payer;
	atomic_uint_least64_t last_version;
	gw_metrics m;
	cm_metrics *metrics;
	/* node ranks across merges, for the choice of replicas (gw_rank.h) */
	pthread_mutex_t rank_mu;
	gw_ranks ranks;
	atomic_uint_least64_t salt;
	struct gw_spotter *spotter;
	struct gw_receipts *receipts;    /* NULL: no receipts (no payer, no node key or no allowance) */
	atomic_uint_least64_t rank_gauges_ms; /* when the per-node rank gauges were last set */
	uint8_t node_pk[CM_PK_BYTES];    /* the gateway's node key (has_node_pk) */
	int has_node_pk;
	struct gw_console *console;      /* NULL: console_listen is off */
	struct gw_recent *recent;        /* the latest searches' answers, for the console (gw_recent.h) */
	struct gw_auth *auth;            /* callers, keys and access lists (gw_auth.h) */
	struct gw_quota *quota;          /* per-account limits (gw_quota.h) */
	cm_counter *quota_refused[8];    /* muri_gateway_quota_refused_total{limit=...} (gw_quota_call.c) */
} gw_ctx;

/* ---- authentication and authorization (gw_auth_call.c over gw_auth.h) ---- */
#include "gw_auth.h"
/* Authenticates the call and checks that the caller may do need on
 * collection (NULL: on none); GRPC_STATUS_OK with *who set, or the failed
 * status (UNAUTHENTICATED, PERMISSION_DENIED) with its message. */
int gw_authorize(gw_ctx *g, cm_rpc_call *call, const char *method, const char *collection, enum gw_need need,
		 gw_caller *who);
/* gw_authorize admits the call under the caller's quotas as a request of
 * no vectors or queries (gw_admit); gw_authorize_ask admits it as ask, with
 * qfield naming a search's query field; gw_authenticate admits nothing (a
 * call admitted already, such as an Import's batch). */
int gw_authenticate(gw_ctx *g, cm_rpc_call *call, const char *method, const char *collection, enum gw_need need,
		    gw_caller *who);
int gw_authorize_ask(gw_ctx *g, cm_rpc_call *call, const char *collection, enum gw_need need,
		     const gw_quota_ask *ask, const char *qfield, gw_caller *who);
/* ---- per-account quotas (gw_quota_call.c over gw_quota.h) ---- */
/* Makes g->quota from the configuration and its metrics. */
int gw_quota_start(gw_ctx *g, char *err, size_t errlen);
/* The SIGHUP hook: reads the configuration again and applies its quota_*
 * keys to the running gateway (logged; an invalid file keeps the old ones). */
void gw_quota_reload(void *ctx);
/* Admits a call of who asking ask (its bytes are the call's request size):
 * GRPC_STATUS_OK (the call counts as in flight until it ends), or
 * RESOURCE_EXHAUSTED naming the account, the limit and how long to wait,
 * with a retry-after-ms trailer when waiting helps. qfield names a
 * search's query field for the queries x top_k message ("query_vectors";
 * NULL: "queries"). */
int gw_admit(gw_ctx *g, cm_rpc_call *call, const gw_caller *who, const gw_quota_ask *ask, const char *qfield);
/* Paces n vectors of a call admitted already (an Import's batch): waits for
 * who's vector bucket, until the call ends; GRPC_STATUS_OK or the failure. */
int gw_quota_pace(gw_ctx *g, cm_rpc_call *call, const gw_caller *who, uint64_t n);

/* Before a search of queries vectors by who: with receipts on and auth on,
 * reserves the fee from who's allowance to this gateway; RESOURCE_EXHAUSTED
 * saying so when there is not enough left. */
int gw_charge(gw_ctx *g, cm_rpc_call *call, const gw_caller *who, size_t queries);
/* Gives back what gw_charge reserved for a search that left no receipt. */
void gw_uncharge(gw_ctx *g, const gw_caller *who, size_t queries);

/* ---- helpers shared by the handlers ---- */

/* Fragment an id goes to: the big-endian integer of the UUID's first 8 bytes
 * modulo the collection's fragments (proto/vectorstore.proto says so). */
uint32_t gw_route_id(const uint8_t id[16], uint32_t nfrag);
/* A version above every one this gateway handed out, from the wall clock
 * in microseconds (last writer wins across gateways by time). */
uint64_t gw_next_version(gw_ctx *g);
/* The request's deadline on the monotonic clock: timeout_ms (0: the
 * default), at most GW_MAX_TIMEOUT_MS, and no later than the call's own. */
uint64_t gw_deadline(gw_ctx *g, cm_rpc_call *call, uint32_t timeout_ms);
/* Sets the call's status from a gRPC code with a message. */
int gw_fail(cm_rpc_call *call, int code, const char *msg);
/* The named collection (a copy, gw_coll_free) for a call: GRPC_STATUS_OK,
 * or the call failed naming field: NOT_FOUND when the gateway has caught up
 * with the ledger and has no such collection, UNAVAILABLE (try again) while
 * it has not (gw_chain_ready). */
int gw_coll_get(gw_ctx *g, cm_rpc_call *call, const char *field, const char *name, gw_coll **out);
/* hex of n bytes in call memory */
char *gw_hex(cm_rpc_call *call, const uint8_t *b, size_t n);
/* The replica's address for a public key, or NULL. */
const char *gw_frag_addr(const gw_frag *f, const uint8_t *pk);
/* Decoded responses kept until the call ends (their hits are referenced by
 * the call's response): gw_owned_add takes m (freed at once on failure). */
typedef struct gw_owned gw_owned;
gw_owned *gw_owned_new(cm_rpc_call *call);
int gw_owned_add(gw_owned *o, ProtobufCMessage *m);
/* The collection's fragment schema in call memory. */
Muri__V1__FragmentSchema *gw_schema(cm_rpc_call *call, const gw_coll *m);

/* ---- validation (gw_valid.c): 0, or a message naming the field in err ---- */
int gw_valid_name(const char *name, const char *field, char *err, size_t errlen);
int gw_valid_level(int level, const char *field, char *err, size_t errlen);
/* A vector of a collection of dim and metric: dim finite values, or for
 * HAMMING binary of dim / 8 bytes; the other field set is refused. */
int gw_valid_vector(const Muri__V1__Vector *v, uint32_t dim, int metric, const char *field, char *err,
		    size_t errlen);
int gw_valid_timeout(uint32_t t, const char *field, char *err, size_t errlen);
/* Bytes of one hit or record with a dim-d vector in a message, metadata
 * aside: 4 per value plus its id, distance, version, seq and framing. */
#define GW_HIT_WIRE_BYTES(dim) ((uint64_t)(dim) * 4 + 128)
/* The dimension in floats a collection's vector takes on the wire, for the
 * size checks: its dimension, or a binary vector's (HAMMING) bytes / 4. */
#define GW_WIRE_DIM(m) ((m)->metric == MURI__V1__METRIC__HAMMING ? ((m)->dim / 8 + 3) / 4 : (m)->dim)
#define GW_MAX_BITS 65536 /* HAMMING: bits of a binary vector, a multiple of 8 */
/* Hits with dim-d vectors that fit in one message of max_message bytes
 * (3/4 of it; the rest is left for metadata and framing). */
size_t gw_vectors_per_message(uint32_t dim, uint64_t max_message);
/* CM_OK if n hits (what: "hits", "records") with dim-d vectors fit in one
 * message; else CM_ERR_TOOBIG with err naming field, the size and the most
 * that fit. */
int gw_valid_vectors_fit(uint64_t n, uint32_t dim, uint64_t max_message, const char *field, const char *what,
			 char *err, size_t errlen);

/* Checks ids[0..n) as UUIDv4 strings without repeats (naming ids[i]); raw
 * receives their bytes. */
int gw_parse_ids(char **ids, size_t n, uint8_t (*raw)[16], char *err, size_t errlen);

/* One replica's answer for one (query, fragment); resp NULL when the call
 * slot got none. */
typedef struct gw_search_answer {
	size_t q;                       /* the query (follow-up rounds) */
	uint32_t fragment, replica;     /* replica: index in the fragment's replica list */
	uint64_t latency_ms;
	Muri__V1__LocalSearchResponse *resp;
} gw_search_answer;

/* What the merges of one request said of each node, for the metrics. */
#define GW_TALLY_MAX 256
#define GW_TALLY_LIES 8
typedef struct gw_tally {
	size_t n;
	struct {
		uint8_t pk[CM_PK_BYTES];
		uint64_t contributed, expected, answered, lies;
	} nodes[GW_TALLY_MAX];
	uint64_t disputed;
	size_t nlies;
	char lies[GW_TALLY_LIES][200];
} gw_tally;

/* The merged top k of one query from its answers (gw_search_merge.c over
 * gw_merge.h), built in call memory. unsettled[f] (nfrag entries) is set for
 * a fragment whose answers tied on a candidate or held a proven lie, where
 * another replica's answer may settle it. What the merge says of the nodes
 * is added to tally (may be NULL) when final or nothing is unsettled, and
 * *tallied set then. Returns a gRPC code. */
int gw_search_merge(gw_ctx *g, cm_rpc_call *call, const gw_coll *m, const Muri__V1__Vector *query, uint32_t k,
		    const Muri__V1__Filter *filter, int include_vectors, const gw_search_answer *ans, size_t n,
		    gw_tally *tally, int final, uint8_t *unsettled, int *tallied, Muri__V1__SearchResult ***out,
		    size_t *nout, char *err, size_t errlen);

/* Adds a request's tally to the per-node metrics (muri_gateway_node_*{node="hex"})
 * and logs the lies it found. */
void gw_note_tally(gw_ctx *g, const char *collection, const gw_tally *t);
/* The order to ask a fragment's replicas in (gw_pick over the node ranks:
 * suspected liars last, the best and least loaded first); order has room
 * for fr->nrep. */
void gw_replica_order(gw_ctx *g, const gw_frag *fr, uint32_t *order);

/* ---- spot checks (gw_spotter.c) ---- */
typedef struct gw_spotter gw_spotter;
/* key: the gateway's node key, which signs its InclusionProof reads
 * (indexers answer a key listed as `gateway` in the genesis); NULL: none, and
 * the indexers refuse the reads. err names the cause of a failure. */
int gw_spotter_start(gw_ctx *g, const cm_keypair *key, size_t queue_max, gw_spotter **out, char *err,
		     size_t errlen);
void gw_spotter_free(gw_spotter *s);
/* Offers node's answer r for fragment of m to a spot check: taken (copied)
 * for one in 1000/spot_permille answers with a hit below the committed
 * size, or always with by_root (its root contradicts the committed one);
 * never blocks. */
void gw_spot_offer(gw_spotter *s, const gw_coll *m, uint32_t fragment, const uint8_t node[CM_PK_BYTES],
		   const Muri__V1__Vector *query, uint32_t k, const Muri__V1__Filter *filter,
		   const Muri__V1__LocalSearchResponse *r, int by_root);

/* ---- search receipts (gw_receipts.c over gw_receipt.h) ---- */
typedef struct gw_receipts gw_receipts;
#define GW_RANK_GAUGES_MS 1000
/* Starts the thread that approves (payer -> gateway key), tops the
 * gateway's account up and settles queued receipts in batches by Settle
 * transactions signed by gateway_key. Needs g->chain and the payer. */
int gw_receipts_start(gw_ctx *g, const cm_keypair *gateway_key, gw_receipts **out, char *err, size_t errlen);
/* Stops the thread after one last Settle (sent, not waited for) of what is
 * queued. Accepts NULL. */
void gw_receipts_free(gw_receipts *r);
/* After a successful Search or SearchBatch of queries query vectors over m:
 * sets the per-node rank gauges of every node in the rank table (at most
 * once a second, GW_RANK_GAUGES_MS) and, with receipts on,
 * queues a receipt paying the nodes that answered without a proven lie and
 * are replicas of m, best first (gw_rank_receipt). Never blocks on I/O. */
void gw_receipt_note(gw_ctx *g, const gw_coll *m, const gw_tally *t, size_t queries, const uint8_t *searcher);
/* The search_fee the receipts last read from the ledger (0: not yet, or receipts off). */
uint64_t gw_receipts_fee(gw_receipts *r);

/* ---- handlers ---- */
int gw_h_create(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_drop(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_describe(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_list(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_insert(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_upsert(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_update(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_delete(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_get(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_search(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_search_batch(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);
int gw_h_import(void *arg, cm_rpc_call *call, const ProtobufCMessage *req);
/* One batch of an Import, written as an Upsert by the Import's caller. */
int gw_import_upsert(gw_ctx *g, cm_rpc_call *call, const Muri__V1__UpsertRequest *q, ProtobufCMessage **resp);
int gw_h_scroll(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp);

/* Reads records of ids (grouped by fragment) from one replica per fragment
 * (primary first), at or after the acknowledged size: found[i] = 1 and
 * hits[i] set (call memory) for the ids that exist. Used by Get and by the
 * existence checks of Update and Delete. Returns a gRPC code. */
int gw_read_ids(gw_ctx *g, cm_rpc_call *call, const gw_coll *m, char **ids, const uint8_t (*raw)[16], size_t n,
		int include_vectors, uint64_t deadline, Muri__V1__Hit **hits, char *err, size_t errlen);

#endif
