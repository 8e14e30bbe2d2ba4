/* muri-indexer: a MurIndexer. Holds the fragments of Magus it is assigned
 * (write log, Merkle log, FAISS index), answers searches, replicates with
 * its peers, and proves what it stores. */
#include <malloc.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "cm_err.h"
#include "cm_log.h"
#include "cm_service.h"
#include "ix_chain.h"
#include "ix_faiss_ext.h"
#include "ix_index.h"
#include "ix_service.h"
#ifdef MURI_TEST_FAULTS
#include "ix_lie.h"
#endif

typedef struct ix_config {
	cm_service_config base;
	int64_t max_fragments;
	int64_t repl_batch;
	int64_t repl_timeout_ms;
	int64_t write_timeout_ms;
	int64_t heartbeat_ms;
	int64_t lease_ms;
	int64_t suspect_ms;
	int64_t start_grace_ms;
	int64_t drop_ms;
	int64_t persist_interval_ms;
	int64_t read_connections;
	int64_t max_index_backlog;
	int64_t filter_postings_max_mb;
	int64_t omp_threads;
	int64_t index_threads;
	int64_t index_nice;
	double filter_post_factor, filter_scan_factor;
	int64_t malloc_arena_max;
	int64_t malloc_mmap_threshold_kb;
	int64_t malloc_trim_interval_ms;
	char *tls_ca;
	char *genesis;
	int64_t allow_set_config;
	int64_t chain_fee;
	int64_t chain_queue_max;
	int64_t root_every;
	int64_t root_ms;
	int64_t root_hold_ms;
	int64_t root_interval_ms;
	int64_t read_wait_ms;
	int64_t read_auth_window_ms;
	int64_t read_replay_max;
	int64_t max_search_batch;
	int64_t answer_group_max;
	int64_t answer_group_wait_us;
	int64_t max_scroll_scan;
	int64_t split_fetch_page;
	int64_t split_fetch_timeout_ms;
	int64_t split_fetch_retries;
	int64_t split_fetch_pass_ms;
#ifdef MURI_TEST_FAULTS
	char *test_lie;
#endif
} ix_config;

static const cm_config_key ix_keys[] = {
	CM_SERVICE_CONFIG_KEYS(ix_config, base, 7200, 9200),
	{"max_fragments", CM_CFG_INT, offsetof(ix_config, max_fragments), "1024", 1, 1000000,
	 "fragments this indexer holds at most", NULL},
	{"repl_batch", CM_CFG_INT, offsetof(ix_config, repl_batch), "1000", 1, 10000,
	 "records per Replicate call to a backup", NULL},
	{"repl_timeout_ms", CM_CFG_INT, offsetof(ix_config, repl_timeout_ms), "5000", 10, 600000,
	 "deadline of one Replicate call", NULL},
	{"write_timeout_ms", CM_CFG_INT, offsetof(ix_config, write_timeout_ms), "5000", 1, 600000,
	 "how long a write waits for its consistency level when the request names no timeout", NULL},
	{"heartbeat_ms", CM_CFG_INT, offsetof(ix_config, heartbeat_ms), "100", 5, 60000,
	 "a primary sends every backup an append at least this often", NULL},
	{"lease_ms", CM_CFG_INT, offsetof(ix_config, lease_ms), "500", 10, 600000,
	 "a primary acknowledges writes only this long after a quorum of its replicas answered", NULL},
	{"suspect_ms", CM_CFG_INT, offsetof(ix_config, suspect_ms), "1000", 20, 3600000,
	 "a backup that hears nothing valid from its primary this long asks for failover (> lease_ms plus clock drift)",
	 NULL},
	{"start_grace_ms", CM_CFG_INT, offsetof(ix_config, start_grace_ms), "5000", 0, 3600000,
	 "a backup waits this much longer than suspect_ms for a primary that has sent nothing yet in a new epoch "
	 "(the replicas apply the ledger's configuration each at its own pace)",
	 NULL},
	{"drop_ms", CM_CFG_INT, offsetof(ix_config, drop_ms), "15000", 0, 3600000,
	 "a primary asks the ledger to replace a backup that answered nothing this long (0: never)", NULL},
	{"persist_interval_ms", CM_CFG_INT, offsetof(ix_config, persist_interval_ms), "60000", 0, 86400000,
	 "save a changed index this often (0: at stop only)", NULL},
	{"read_connections", CM_CFG_INT, offsetof(ix_config, read_connections), "8", 1, 256,
	 "SQLite connections per fragment for concurrent reads", NULL},
	{"max_index_backlog", CM_CFG_INT, offsetof(ix_config, max_index_backlog), "100000", 0, 1000000000,
	 "a primary refuses writes (RESOURCE_EXHAUSTED) while a fragment's index is this many records behind its "
	 "log, which searches would scan by brute force (0: no bound)", NULL},
	{"filter_postings_max_mb", CM_CFG_INT, offsetof(ix_config, filter_postings_max_mb), "256", 1, 1048576,
	 "memory of one fragment's in-memory filter postings; past it that fragment's filters read the SQLite "
	 "metadata tables until it is reopened (a warning is logged, Status counts filter_postings_off)", NULL},
	{"omp_threads", CM_CFG_INT, offsetof(ix_config, omp_threads), "1", 1, 256,
	 "OpenMP threads faiss may use inside one search (searches run in parallel on RPC workers)", NULL},
	{"index_threads", CM_CFG_INT, offsetof(ix_config, index_threads), "2", 1, 64,
	 "threads an HNSW index plans each block of new vectors on (the graph is the same whatever the count)", NULL},
	{"index_nice", CM_CFG_INT, offsetof(ix_config, index_nice), "0", 0, 19,
	 "nice value of each fragment's index builder (its thread and build threads), so writes and searches get "
	 "the cores first while an index catches up (0: the process's own priority)", NULL},
	{"filter_post_factor", CM_CFG_DOUBLE, offsetof(ix_config, filter_post_factor), "3", 0, 1000,
	 "a filtered HNSW search walks as an unfiltered one with a beam holding this many times k admitted "
	 "vectors in expectation and keeps the admitted (0: the walk keeps efSearch admitted vectors instead); "
	 "every replica of a fragment must use the same value, or their answers differ", NULL},
	{"filter_scan_factor", CM_CFG_DOUBLE, offsetof(ix_config, filter_scan_factor), "16", 0.001, 1000000,
	 "distances one HNSW beam entry costs, against which a filtered search picks a scan of the matching "
	 "vectors instead of the walk; every replica of a fragment must use the same value", NULL},
	{"malloc_arena_max", CM_CFG_INT, offsetof(ix_config, malloc_arena_max), "0", 0, 1024,
	 "glibc malloc arenas at most (mallopt M_ARENA_MAX; 0: glibc's default, 8 per core)", NULL},
	{"malloc_mmap_threshold_kb", CM_CFG_INT, offsetof(ix_config, malloc_mmap_threshold_kb), "128", 0, 32768,
	 "allocations of at least this many KiB get pages of their own, given back to the system when freed "
	 "(mallopt M_MMAP_THRESHOLD; 0: glibc's default, which rises to 32 MiB as large buffers are freed, so "
	 "that a Write's buffers stay in the heap afterwards)", NULL},
	{"malloc_trim_interval_ms", CM_CFG_INT, offsetof(ix_config, malloc_trim_interval_ms), "1000", 0, 86400000,
	 "when a fragment's index catches up with its log, give the heap's free memory back to the system "
	 "(malloc_trim), at most once per this many ms (0: never)", NULL},
	{"tls_ca", CM_CFG_STR, offsetof(ix_config, tls_ca), "", 0, 0,
	 "PEM CA file to verify peers' TLS certificates; empty: plaintext to peers", NULL},
	{"genesis", CM_CFG_STR, offsetof(ix_config, genesis), "", 0, 0,
	 "the ledger's genesis file: follow the chain from its replicas and take fragment configurations and "
	 "committed roots from final blocks; empty: configured by SetConfig only", NULL},
	{"allow_set_config", CM_CFG_INT, offsetof(ix_config, allow_set_config), "-1", -1, 1,
	 "accept the SetConfig RPC: 1 yes, 0 no, -1 (default) no when genesis is set and yes otherwise", NULL},
	{"chain_fee", CM_CFG_INT, offsetof(ix_config, chain_fee), "1", 0, 1000000000,
	 "fee of the transactions this indexer submits to the ledger (failover requests)", NULL},
	{"chain_queue_max", CM_CFG_INT, offsetof(ix_config, chain_queue_max), "1024", 16, 1000000,
	 "final blocks held until a certified pin vouches for their effects", NULL},
	{"root_every", CM_CFG_INT, offsetof(ix_config, root_every), "1000", 0, 1000000000,
	 "a primary names each multiple of this many records for roots; with genesis the replicas sign and submit "
	 "CommitRoot at the sizes named (0: never)",
	 NULL},
	{"root_ms", CM_CFG_INT, offsetof(ix_config, root_ms), "60000", 0, 86400000,
	 "a primary also names its log size for roots this long after the last named size, if the log grew, so a "
	 "fragment below root_every records, or a tail past its last multiple, still gets a committed root and is "
	 "challenged (0: never)",
	 NULL},
	{"root_hold_ms", CM_CFG_INT, offsetof(ix_config, root_hold_ms), "5000", 0, 3600000,
	 "a primary keeps the last size it named for roots this long while the ledger has not committed it, so that "
	 "its replicas sign the same size under steady writes (0: a new size at every multiple)",
	 NULL},
	{"root_interval_ms", CM_CFG_INT, offsetof(ix_config, root_interval_ms), "1000", 10, 3600000,
	 "with genesis: how often the fragments' sizes are checked for a root to submit", NULL},
	{"read_wait_ms", CM_CFG_INT, offsetof(ix_config, read_wait_ms), "1000", 1, 600000,
	 "a search or get with min_size waits this long for the log to reach it, then answers UNAVAILABLE", NULL},
	{"read_auth_window_ms", CM_CFG_INT, offsetof(ix_config, read_auth_window_ms), "60000", 1000, 3600000,
	 "FetchLog and proof reads are answered only when signed with a wall clock this close to ours", NULL},
	{"read_replay_max", CM_CFG_INT, offsetof(ix_config, read_replay_max), "65536", 16, 16777216,
	 "signed reads remembered so that none is answered twice within read_auth_window_ms", NULL},
	{"max_search_batch", CM_CFG_INT, offsetof(ix_config, max_search_batch), "256", 1, 100000,
	 "query vectors one Search call may carry (LocalSearchRequest.queries)", NULL},
	{"answer_group_max", CM_CFG_INT, offsetof(ix_config, answer_group_max), "64", 1, 65536,
	 "single-query Search answers ready at the same time signed with one signature over their Merkle root, at "
	 "most (1: each signed alone)", NULL},
	{"answer_group_wait_us", CM_CFG_INT, offsetof(ix_config, answer_group_wait_us), "0", 0, 100000,
	 "a ready answer waits at most this long for the searches still running on this indexer to sign with them "
	 "(0: only those ready already; a search running alone never waits)", NULL},
	{"max_scroll_scan", CM_CFG_INT, offsetof(ix_config, max_scroll_scan), "100000", 1, 100000000,
	 "live records one Scroll call examines at most (its filter may match few of them)", NULL},
	{"split_fetch_page", CM_CFG_INT, offsetof(ix_config, split_fetch_page), "256", 1, 10000,
	 "records per FetchLog call of a split's half fetching its parent's frozen log from a parent replica",
	 NULL},
	{"split_fetch_timeout_ms", CM_CFG_INT, offsetof(ix_config, split_fetch_timeout_ms), "5000", 10, 600000,
	 "deadline of one FetchLog call of a split's half fetching its parent's frozen log", NULL},
	{"split_fetch_retries", CM_CFG_INT, offsetof(ix_config, split_fetch_retries), "2", 0, 100,
	 "failed FetchLog calls in a row before a split's half asks the next parent replica (starting over)",
	 NULL},
	{"split_fetch_pass_ms", CM_CFG_INT, offsetof(ix_config, split_fetch_pass_ms), "2000", 10, 600000,
	 "how long one pass of the root submitter fetches a parent's frozen log before its other work", NULL},
#ifdef MURI_TEST_FAULTS
	{"test_lie", CM_CFG_STR, offsetof(ix_config, test_lie), "none", 0, 0,
	 "test builds only: lie in search answers (none, fabricate, distance, drop_nn, replay, mix)", NULL},
#endif
};

typedef struct ix_ctx {
	ix_config cfg;
	cm_service *svc;
	ix_service *ix;
	ix_chain *chain;
} ix_ctx;

static int ix_status(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out)
{
	ix_ctx *c = arg;
	int code = cm_service_status(c->svc, call, out);
	if (code == GRPC_STATUS_OK)
		ix_service_status_details(c->ix, call, *out);
	return code;
}

static int ix_init(void *arg, const cm_service_env *env, char *err, size_t errlen)
{
	ix_ctx *c = arg;
	if (!env->key || !env->base->data_dir || !*env->base->data_dir) {
		snprintf(err, errlen, "data_dir and key_file are required");
		return -2;
	}
	omp_set_num_threads((int)c->cfg.omp_threads);
	ix_index_set_build_threads((int)c->cfg.index_threads);
	ix_faiss_set_filter_rules(c->cfg.filter_scan_factor, c->cfg.filter_post_factor);
	if (c->cfg.malloc_arena_max && !mallopt(M_ARENA_MAX, (int)c->cfg.malloc_arena_max))
		cm_warn("mallopt", "what=M_ARENA_MAX value=%lld refused", (long long)c->cfg.malloc_arena_max);
	if (c->cfg.malloc_mmap_threshold_kb && !mallopt(M_MMAP_THRESHOLD, (int)c->cfg.malloc_mmap_threshold_kb * 1024))
		cm_warn("mallopt", "what=M_MMAP_THRESHOLD value=%lldkB refused",
			(long long)c->cfg.malloc_mmap_threshold_kb);
	ix_service_opts o = {
		.data_dir = env->base->data_dir,
		.key = env->key,
		.max_fragments = (uint32_t)c->cfg.max_fragments,
		.repl_batch = (uint32_t)c->cfg.repl_batch,
		.max_message = env->base->rpc_max_message,
		.repl_timeout_ms = (uint32_t)c->cfg.repl_timeout_ms,
		.write_timeout_ms = (uint32_t)c->cfg.write_timeout_ms,
		.heartbeat_ms = (uint32_t)c->cfg.heartbeat_ms,
		.lease_ms = (uint32_t)c->cfg.lease_ms,
		.suspect_ms = (uint32_t)c->cfg.suspect_ms,
		.start_grace_ms = (uint32_t)c->cfg.start_grace_ms,
		.drop_ms = (uint32_t)c->cfg.drop_ms,
		.root_every = (uint32_t)c->cfg.root_every,
		.root_ms = (uint32_t)c->cfg.root_ms,
		.root_hold_ms = (uint32_t)c->cfg.root_hold_ms,
		.tls_ca_file = c->cfg.tls_ca && *c->cfg.tls_ca ? c->cfg.tls_ca : NULL,
		.read_wait_ms = (uint32_t)c->cfg.read_wait_ms,
		.read_auth_window_ms = (uint32_t)c->cfg.read_auth_window_ms,
		.read_replay_max = (uint32_t)c->cfg.read_replay_max,
		.max_search_batch = (uint32_t)c->cfg.max_search_batch,
		.answer_group_max = (uint32_t)c->cfg.answer_group_max,
		.answer_group_wait_us = (uint32_t)c->cfg.answer_group_wait_us,
		.max_scroll_scan = (uint32_t)c->cfg.max_scroll_scan,
		.split_fetch_page = (uint32_t)c->cfg.split_fetch_page,
		.split_fetch_timeout_ms = (uint32_t)c->cfg.split_fetch_timeout_ms,
		.split_fetch_retries = (uint32_t)c->cfg.split_fetch_retries,
		.split_fetch_pass_ms = (uint32_t)c->cfg.split_fetch_pass_ms,
		.metrics = env->metrics,
	};
#ifdef MURI_TEST_FAULTS
	if (ix_lie_parse(c->cfg.test_lie ? c->cfg.test_lie : "none", &o.test_lie) != CM_OK) {
		snprintf(err, errlen, "test_lie: \"%s\" is not none, fabricate, distance, drop_nn, replay or mix",
			 c->cfg.test_lie);
		return -2;
	}
	if (o.test_lie)
		cm_warn("test_lie", "kind=%s this indexer lies in its search answers (a test build)", c->cfg.test_lie);
#endif
	int ledger = c->cfg.genesis && *c->cfg.genesis;
	o.deny_set_config = c->cfg.allow_set_config == 0 || (c->cfg.allow_set_config < 0 && ledger);
	ix_options_default(&o.frag);
	o.frag.persist_interval_ms = (uint32_t)c->cfg.persist_interval_ms;
	o.frag.readers = (uint32_t)c->cfg.read_connections;
	o.max_index_backlog = (uint32_t)c->cfg.max_index_backlog;
	o.frag.postings_max_bytes = (uint64_t)c->cfg.filter_postings_max_mb << 20;
	o.frag.trim_interval_ms = (uint32_t)c->cfg.malloc_trim_interval_ms;
	o.frag.index_nice = (uint32_t)c->cfg.index_nice;
	/* mutual TLS: peers' certificates verified against tls_ca; role checks
	 * read the node key each certificate is bound to (cm_tls_id.h) */
	if (env->base->tls_cert && *env->base->tls_cert && o.tls_ca_file &&
	    cm_rpc_server_verify_clients(env->rpc, o.tls_ca_file, err, errlen) != CM_OK)
		return -2;
	int rc = ix_service_open(&o, &c->ix, err, errlen);
	if (rc != 0)
		return rc;
	rc = ix_service_register(c->ix, env->rpc, c, ix_status);
	if (rc != 0 || !ledger)
		return rc;
	ix_chain_opts co = {
		.genesis_file = c->cfg.genesis,
		.data_dir = env->base->data_dir,
		.key = env->key,
		.svc = c->ix,
		.fee = (uint64_t)c->cfg.chain_fee,
		.queue_max = (size_t)c->cfg.chain_queue_max,
		.tls_ca_file = o.tls_ca_file,
		.root_every = (uint64_t)c->cfg.root_every,
		.root_interval_ms = (int)c->cfg.root_interval_ms,
	};
	return ix_chain_start(&co, &c->chain, err, errlen);
}

static void ix_stopping(void *arg)
{
	ix_ctx *c = arg;
	/* no configuration arrives from the chain once stopping */
	ix_chain_free(c->chain);
	c->chain = NULL;
	ix_service_stop(c->ix);
}

static void ix_fini(void *arg)
{
	ix_ctx *c = arg;
	ix_chain_free(c->chain);
	c->chain = NULL;
	ix_service_close(c->ix);
	c->ix = NULL;
}

/* Threads exist before main here: libopenblas (linked through faiss) starts
 * its pool from a library constructor, with no signal blocked. The stop
 * signals reach them; cm_service_main's handler makes that harmless. */
int main(int argc, char **argv)
{
	/* faiss inside RPC workers: keep OpenMP from spinning against them */
	setenv("OMP_WAIT_POLICY", "passive", 0);
	static ix_ctx ctx;
	cm_service svc = {
		.name = "indexer",
		.env_prefix = "MURI_INDEXER_",
		.keys = ix_keys,
		.nkeys = sizeof(ix_keys) / sizeof(ix_keys[0]),
		.cfg = &ctx.cfg,
		.base_offset = offsetof(ix_config, base),
		.ctx = &ctx,
		.init = ix_init,
		.stopping = ix_stopping,
		.fini = ix_fini,
	};
	ctx.svc = &svc;
	return cm_service_main(&svc, argc, argv);
}
