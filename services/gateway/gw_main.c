/* muri-gateway: the client API (VectorStore) over the Magus of a ledger. It
 * follows the chain from the genesis replicas (gw_chain.c), routes writes to
 * fragment primaries (gw_write.c), reads and searches replicas at the
 * requested consistency level (gw_read.c, gw_search.c), creates and drops
 * collections by transactions of its payer account (gw_coll.c) and settles
 * a receipt for every search against the payer's allowance (gw_receipts.c). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_err.h"
#include "cm_http.h"
#include "cm_log.h"
#include "cm_service.h"
#include "gw.h"
#include "gw_console.h"
#include "gw_recent.h"

static const cm_config_key gw_keys[] = {
	CM_SERVICE_CONFIG_KEYS(gw_config, base, 7300, 9300),
	{"genesis", CM_CFG_STR, offsetof(gw_config, genesis), "", 0, 0,
	 "the ledger's genesis file: the gateway follows the chain from its replicas; empty: Status only", NULL},
	{"payer_key_file", CM_CFG_STR, offsetof(gw_config, payer_key_file), "", 0, 0,
	 "ed25519 key file of the account that signs and pays CreateMagu and DropMagu; empty: collections cannot be "
	 "created or dropped through this gateway",
	 NULL},
	{"create_deposit", CM_CFG_INT, offsetof(gw_config, create_deposit), "1000", 0, 1e15,
	 "deposit a CreateMagu locks (at least the ledger's min_deposit)", NULL},
	{"collection_hnsw_m", CM_CFG_INT, offsetof(gw_config, collection_hnsw_m), "48", 0, 128,
	 "HNSW M (links per vector) written into a new collection over float vectors whose request sets none; "
	 "0 leaves it to the indexer (32). Measured on glove-100-angular with `indexer-bench --tune`: M 48 serves "
	 "1.3-1.6x the queries of M 32 at equal recall for 19% more index memory",
	 NULL},
	{"chain_fee", CM_CFG_INT, offsetof(gw_config, chain_fee), "1", 0, 1000000000,
	 "fee of the gateway's transactions", NULL},
	{"max_batch", CM_CFG_INT, offsetof(gw_config, max_batch), "10000", 1, 10000,
	 "vectors per Insert, Upsert or Update and ids per Delete or Get", NULL},
	{"max_queries", CM_CFG_INT, offsetof(gw_config, max_queries), "1000", 1, 100000,
	 "query vectors per SearchBatch", NULL},
	{"max_scroll_page", CM_CFG_INT, offsetof(gw_config, max_scroll_page), "1000", 1, 10000,
	 "records per Scroll page at most (page_size); each fragment is asked for this many", NULL},
	{"queries_per_call", CM_CFG_INT, offsetof(gw_config, queries_per_call), "64", 1, 100000,
	 "a SearchBatch's query vectors sent to one replica in one Search call (at most the indexers' "
	 "max_search_batch; 1: a call per query)", NULL},
	{"try_query_ms", CM_CFG_INT, offsetof(gw_config, try_query_ms), "50", 0, 600000,
	 "a search call carrying several queries gets try_timeout_ms plus this for each query past the first", NULL},
	{"default_timeout_ms", CM_CFG_INT, offsetof(gw_config, default_timeout_ms), "5000", 1, 600000,
	 "deadline of a request whose timeout_ms is 0", NULL},
	{"create_timeout_ms", CM_CFG_INT, offsetof(gw_config, create_timeout_ms), "60000", 100, 600000,
	 "CreateCollection waits this long for the commit and for every fragment's primary to answer", NULL},
	{"fanout_threads", CM_CFG_INT, offsetof(gw_config, fanout_threads), "32", 1, 4096,
	 "threads carrying calls to indexers (the calls in flight at once)", NULL},
	{"max_fanout", CM_CFG_INT, offsetof(gw_config, max_fanout), "100000", 1, 100000000,
	 "calls to indexers queued at most; a request that would exceed it gets RESOURCE_EXHAUSTED", NULL},
	{"stall_ms", CM_CFG_INT, offsetof(gw_config, stall_ms), "10000", 100, 3600000,
	 "the follower switches ledger replica after this long without a block", NULL},
	{"ready_wait_ms", CM_CFG_INT, offsetof(gw_config, ready_wait_ms), "5000", 0, 3600000,
	 "at start, wait this long at most for the routing table to catch up with the ledger before writing the "
	 "port file (the RPC port serves meanwhile: a collection it does not know yet gets UNAVAILABLE; /readyz "
	 "says when it has caught up)", NULL},
	{"try_timeout_ms", CM_CFG_INT, offsetof(gw_config, try_timeout_ms), "1000", 10, 600000,
	 "a search or get call to a replica gets at most this long while other replicas of its fragment are left to "
	 "ask (a dead or partitioned node that drops packets costs this, not the request's deadline)", NULL},
	{"spot_permille", CM_CFG_INT, offsetof(gw_config, spot_permille), "10", 0, 1000,
	 "answers spot-checked by an inclusion proof against the committed root, per mille (0: none); an answer "
	 "proven false is reported to the ledger (ReportAnswer) by the payer account",
	 NULL},
	{"spot_queue", CM_CFG_INT, offsetof(gw_config, spot_queue), "256", 1, 100000,
	 "spot checks waiting at most (more are dropped)", NULL},
	{"answer_sig_cache", CM_CFG_INT, offsetof(gw_config, answer_sig_cache), "4096", 0, 16777216,
	 "indexers' batch signatures (one over the answers of a call) remembered once verified, so the other answers "
	 "under the same root cost their Merkle path, not a signature check (0: every answer checked)", NULL},
	{"receipt_batch", CM_CFG_INT, offsetof(gw_config, receipt_batch), "1024", 1, 1024,
	 "search receipts per Settle: one is sent as soon as this many wait", NULL},
	{"receipt_flush_ms", CM_CFG_INT, offsetof(gw_config, receipt_flush_ms), "1000", 10, 600000,
	 "a Settle of what waits is sent at least this often", NULL},
	{"receipt_queue_max", CM_CFG_INT, offsetof(gw_config, receipt_queue_max), "10000", 1, 1000000,
	 "search receipts waiting at most; when full, a new receipt is refused (logged, counted in "
	 "muri_gateway_receipts_unsettled_total{reason=\"queue_full\"}) and the search still answers",
	 NULL},
	{"receipt_allowance", CM_CFG_INT, offsetof(gw_config, receipt_allowance), "1000000", 0, 1e15,
	 "the allowance the payer approves to the gateway's node key for search fees, again when it runs low; "
	 "0: no receipts",
	 NULL},
	{"receipt_allowance_blocks", CM_CFG_INT, offsetof(gw_config, receipt_allowance_blocks), "100000", 10, 1e12,
	 "the approval's expiry, in blocks from its height (approved again with a quarter left)", NULL},
	{"receipt_fee_float", CM_CFG_INT, offsetof(gw_config, receipt_fee_float), "10000", 0, 1e15,
	 "when the gateway's node account cannot pay a Settle's fee (chain_fee), the payer transfers it this much; "
	 "0: never (fund the node key otherwise)",
	 NULL},
	{"auth", CM_CFG_BOOL, offsetof(gw_config, auth), "false", 0, 0,
	 "callers must prove a ledger account (an API key in authorization: Bearer or api-key, or a signed call) and "
	 "hold the permission on the collection; false: every caller may do anything and the payer pays (only for "
	 "a gateway no stranger reaches)", NULL},
	{"auth_anonymous_reads", CM_CFG_BOOL, offsetof(gw_config, auth_anonymous_reads), "false", 0, 0,
	 "with auth, calls without a credential may list, describe, get and search public collections (nothing "
	 "else)", NULL},
	{"auth_signed_window_ms", CM_CFG_INT, offsetof(gw_config, auth_signed_window_ms), "30000", 1000, 3600000,
	 "a signed call's timestamp must be within this of the gateway's clock; its nonce is remembered this long",
	 NULL},
	{"auth_nonce_cache", CM_CFG_INT, offsetof(gw_config, auth_nonce_cache), "100000", 16, 10000000,
	 "signed calls remembered within the window (replays refused); when full, signed calls get "
	 "RESOURCE_EXHAUSTED", NULL},
	{"auth_keys_max", CM_CFG_INT, offsetof(gw_config, auth_keys_max), "1000000", 1, 100000000,
	 "API keys the gateway mirrors from the chain at most (a key past it is refused, and logged)", NULL},
	{"console_listen", CM_CFG_STR, offsetof(gw_config, console_listen), "", 0, 0,
	 "host:port of the console, a web page and JSON endpoints (/api/...) showing the network, collections, chain "
	 "and a search box; empty: off",
	 NULL},
	{"console_url_file", CM_CFG_STR, offsetof(gw_config, console_url_file), "", 0, 0,
	 "file the console's URL is written to once it listens (muri devnet reads it); empty: none", NULL},
	{"console_poll_ms", CM_CFG_INT, offsetof(gw_config, console_poll_ms), "1000", 1000, 3600000,
	 "the console asks every ledger replica and indexer for its Status this often (at most once a second)", NULL},
	{"console_max_body", CM_CFG_INT, offsetof(gw_config, console_max_body), "1048576", 1024, 67108864,
	 "bytes of a console request's body (a search); a longer one gets 413", NULL},
	{"console_connections", CM_CFG_INT, offsetof(gw_config, console_connections), "32", 1, 4096,
	 "the console's HTTP connections at once", NULL},
	{"tls_ca", CM_CFG_STR, offsetof(gw_config, tls_ca), "", 0, 0,
	 "PEM CA file to verify indexers' and ledger replicas' TLS certificates; empty: plaintext", NULL},
	GW_IMPORT_CONFIG_KEYS,
	GW_QUOTA_CONFIG_KEYS,
};

static int gw_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	(void)req;
	return cm_service_status(g->svc, call, (Muri__V1__StatusResponse **)resp);
}

static void gw_details(void *ctx, cm_rpc_call *call, Muri__V1__StatusResponse *r)
{
	gw_ctx *g = ctx;
	enum { N = 3 };
	Muri__V1__StatusResponse__DetailsEntry **d = cm_rpc_alloc(call, N * sizeof(*d));
	char *v = cm_rpc_alloc(call, 2 * 24);
	if (!d || !v || !g->chain)
		return;
	uint64_t height = 0, target = 0;
	int known = 0, ready = gw_chain_ready(g->chain, &height, &target, &known);
	snprintf(v, 24, "%llu", (unsigned long long)height);
	snprintf(v + 24, 24, "%llu", (unsigned long long)target);
	/* chain_height: applied; chain_target: the height f + 1 replicas vouched for at start */
	const char *keys[N] = {"chain_height", "chain_target", "ready"};
	const char *vals[N] = {v, known ? v + 24 : "", ready ? "true" : "false"};
	for (int i = 0; i < N; i++) {
		if (!(d[i] = cm_rpc_alloc(call, sizeof(**d))))
			return;
		muri__v1__status_response__details_entry__init(d[i]);
		d[i]->key = (char *)keys[i];
		d[i]->value = (char *)vals[i];
	}
	r->details = d;
	r->n_details = N;
}

static void metrics_init(gw_ctx *g, cm_metrics *mx)
{
	static const double ms[] = {0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};
	g->m.writes = cm_metrics_counter(mx, "muri_gateway_writes_total", NULL, "write requests");
	g->m.write_records = cm_metrics_counter(mx, "muri_gateway_write_records_total", NULL, "records written");
	g->m.searches = cm_metrics_counter(mx, "muri_gateway_searches_total", NULL, "Search and SearchBatch requests");
	g->m.queries = cm_metrics_counter(mx, "muri_gateway_queries_total", NULL, "query vectors searched");
	g->m.partial = cm_metrics_counter(mx, "muri_gateway_partial_total", NULL,
					  "requests that reached fewer replicas than their level");
	g->m.retries = cm_metrics_counter(mx, "muri_gateway_write_retries_total", NULL,
					  "fragment writes sent again (another primary, no lease yet)");
	g->m.search_ms = cm_metrics_histogram(mx, "muri_gateway_search_ms", NULL, "search latency", ms,
					      sizeof(ms) / sizeof(ms[0]));
	g->m.write_ms = cm_metrics_histogram(mx, "muri_gateway_write_ms", NULL, "write latency", ms,
					     sizeof(ms) / sizeof(ms[0]));
	if (!g->m.writes || !g->m.write_records || !g->m.searches || !g->m.queries || !g->m.partial || !g->m.retries ||
	    !g->m.search_ms || !g->m.write_ms)
		memset(&g->m, 0, sizeof(g->m));
}

static int gw_init(void *ctx, const cm_service_env *env, char *err, size_t errlen)
{
	gw_ctx *g = ctx;
	const gw_config *cfg = g->cfg;
	g->svc = env->svc;
	if (!cfg->genesis || !cfg->genesis[0]) {
		/* no chain to follow: Status only (the other methods answer UNIMPLEMENTED) */
		static const cm_rpc_handler status_only[] = {{"Status", gw_status, NULL}};
		cm_warn("gw_no_genesis", "message=\"genesis is not set: serving Status only\"");
		return cm_rpc_server_add(env->rpc, &muri__v1__vector_store__descriptor, status_only, 1, g);
	}
	if (cfg->payer_key_file && cfg->payer_key_file[0]) {
		int rc = cm_key_load(&g->payer, cfg->payer_key_file);
		if (rc != CM_OK) {
			snprintf(err, errlen, "payer_key_file: cannot load %s: %s", cfg->payer_key_file, cm_strerror(rc));
			return rc;
		}
		g->has_payer = 1;
	}
	cm_keypair eph;
	const cm_keypair *key = g->has_payer ? &g->payer : env->key;
	if (!key) {
		cm_keypair_generate(&eph); /* reads only: the ledger client needs some key */
		key = &eph;
	}
	g->metrics = env->metrics;
	if (env->key) {
		memcpy(g->node_pk, env->key->pk, CM_PK_BYTES);
		g->has_node_pk = 1;
	}
	metrics_init(g, env->metrics);
	int rc = gw_clients_new(cfg->tls_ca, (size_t)cfg->base.rpc_max_message, &g->clients);
	if (rc == CM_OK)
		rc = gw_pool_new((int)cfg->fanout_threads, (size_t)cfg->max_fanout, &g->pool);
	if (rc == CM_OK)
		rc = gw_seen_new((size_t)cfg->answer_sig_cache, &g->seen);
	if (rc == CM_OK && cfg->console_listen && cfg->console_listen[0])
		rc = gw_recent_new(&g->recent);
	if (rc == CM_OK && (rc = gw_quota_start(g, err, errlen)) != CM_OK) {
		if (key == &eph)
			cm_keypair_wipe(&eph);
		return rc;
	}
	if (rc != CM_OK) {
		snprintf(err, errlen, "cannot start: %s", cm_strerror(rc));
		if (key == &eph)
			cm_keypair_wipe(&eph);
		return rc;
	}
	gw_auth_opts ao = {.enabled = cfg->auth, .anonymous_reads = cfg->auth_anonymous_reads,
			   .window_ms = (uint64_t)cfg->auth_signed_window_ms, .nonce_cache = (size_t)cfg->auth_nonce_cache,
			   .keys_max = (size_t)cfg->auth_keys_max, .node_pk = env->key ? env->key->pk : NULL};
	if ((rc = gw_auth_new(&ao, &g->auth)) != CM_OK) {
		snprintf(err, errlen, "cannot start: %s", cm_strerror(rc));
		if (key == &eph)
			cm_keypair_wipe(&eph);
		return rc;
	}
	if (!cfg->auth)
		cm_warn("gw_auth", "enabled=no message=\"auth is off: every caller may create, write, read and drop "
			"every collection, paid by the payer account (set auth = true on a gateway strangers reach)\"");
	else
		cm_info("gw_auth", "enabled=yes anonymous_reads=%s", cfg->auth_anonymous_reads ? "yes" : "no");
	gw_chain_opts co = {.genesis_file = cfg->genesis, .key = key, .fee = (uint64_t)cfg->chain_fee,
			    .stall_ms = (int)cfg->stall_ms, .tls_ca_file = cfg->tls_ca[0] ? cfg->tls_ca : NULL,
			    .auth = g->auth};
	rc = gw_chain_start(&co, &g->chain, err, errlen);
	if (key == &eph)
		cm_keypair_wipe(&eph);
	if (rc == CM_OK && cfg->spot_permille > 0)
		rc = gw_spotter_start(g, env->key, (size_t)cfg->spot_queue, &g->spotter, err, errlen);
	if (rc != CM_OK)
		return rc;
	if (!g->has_payer || !env->key || cfg->receipt_allowance <= 0) {
		cm_info("gw_receipts", "enabled=no reason=\"%s\"",
			!g->has_payer ? "no payer_key_file" : !env->key ? "no key_file (the key that settles)"
								: "receipt_allowance is 0");
	} else if ((rc = gw_receipts_start(g, env->key, &g->receipts, err, errlen)) != CM_OK) {
		return rc;
	}
	static const cm_rpc_handler handlers[] = {
		{"Status", gw_status, NULL},
		{"CreateCollection", gw_h_create, NULL},
		{"DropCollection", gw_h_drop, NULL},
		{"DescribeCollection", gw_h_describe, NULL},
		{"ListCollections", gw_h_list, NULL},
		{"Insert", gw_h_insert, NULL},
		{"Upsert", gw_h_upsert, NULL},
		{"Update", gw_h_update, NULL},
		{"Delete", gw_h_delete, NULL},
		{"Get", gw_h_get, NULL},
		{"Search", gw_h_search, NULL},
		{"SearchBatch", gw_h_search_batch, NULL},
		{"Import", NULL, gw_h_import},
		{"Scroll", gw_h_scroll, NULL},
	};
	return cm_rpc_server_add(env->rpc, &muri__v1__vector_store__descriptor, handlers,
				 sizeof(handlers) / sizeof(handlers[0]), g);
}

/* Writes the console's URL to path (through a temporary file and a rename). */
static int write_url_file(const char *path, const char *url)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return CM_ERR_INVALID;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return CM_ERR_IO;
	fprintf(f, "%s\n", url);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return CM_ERR_IO;
	}
	return CM_OK;
}

/* The console starts once the VectorStore port is known (its searches go there). */
static int gw_started(void *ctx, int rpc_port, char *err, size_t errlen)
{
	gw_ctx *g = ctx;
	const char *l = g->cfg->console_listen;
	char host[GW_ADDR_MAX], url[GW_ADDR_MAX + 32];
	int port = 0, unused;
	if (g->chain && !gw_chain_wait_ready(g->chain, (uint64_t)g->cfg->ready_wait_ms)) {
		uint64_t height = 0, target = 0;
		int known = 0;
		gw_chain_ready(g->chain, &height, &target, &known);
		cm_warn("gw_not_ready", "height=%llu target=%s%llu waited_ms=%lld", (unsigned long long)height,
			known ? "" : "unknown:", (unsigned long long)target, (long long)g->cfg->ready_wait_ms);
	}
	if (!l || !l[0] || !g->chain)
		return CM_OK;
	int rc = gw_console_start(g, l, rpc_port, &g->console, &port, err, errlen);
	if (rc != CM_OK || cm_http_split(l, host, sizeof(host), &unused) != CM_OK)
		return rc != CM_OK ? rc : CM_ERR_INVALID;
	snprintf(url, sizeof(url), strchr(host, ':') ? "http://[%s]:%d/" : "http://%s:%d/", host, port);
	cm_info("console", "console_port=%d url=\"%s\"", port, url);
	const char *uf = g->cfg->console_url_file;
	if (uf && uf[0] && write_url_file(uf, url) != CM_OK) {
		snprintf(err, errlen, "console_url_file: cannot write %s", uf);
		return CM_ERR_IO;
	}
	return CM_OK;
}

static void gw_fini(void *ctx)
{
	gw_ctx *g = ctx;
	gw_console_free(g->console);
	gw_recent_free(g->recent);
	gw_receipts_free(g->receipts);
	gw_spotter_free(g->spotter);
	gw_chain_free(g->chain);
	gw_auth_free(g->auth);
	gw_quota_free(g->quota);
	gw_pool_free(g->pool);
	gw_seen_free(g->seen);
	gw_clients_free(g->clients);
	cm_keypair_wipe(&g->payer);
	gw_ranks_free(&g->ranks);
}

/* /readyz: once the routing table has caught up with the chain (gw_chain_ready). */
static int gw_ready(void *arg, char *reason, size_t len)
{
	gw_ctx *g = arg;
	uint64_t height = 0, target = 0;
	int known = 0;
	if (!g->chain) {
		snprintf(reason, len, "starting");
		return 0;
	}
	if (gw_chain_ready(g->chain, &height, &target, &known))
		return 1;
	if (known)
		snprintf(reason, len, "catching up with the ledger: at height %llu of %llu", (unsigned long long)height,
			 (unsigned long long)target);
	else
		snprintf(reason, len, "catching up with the ledger: at height %llu; no f + 1 replicas have told their "
			 "height yet", (unsigned long long)height);
	return 0;
}

int main(int argc, char **argv)
{
	gw_config cfg = {0};
	static gw_ctx g;
	g.cfg = &cfg;
	pthread_mutex_init(&g.rank_mu, NULL);
	if (gw_ranks_init(&g.ranks, GW_RANKED_MAX, 0) != CM_OK) {
		fprintf(stderr, "muri-gateway: out of memory\n");
		return 1;
	}
	cm_service svc = {
		.ready = gw_ready,
		.name = "gateway",
		.env_prefix = "MURI_GATEWAY_",
		.keys = gw_keys,
		.nkeys = sizeof(gw_keys) / sizeof(gw_keys[0]),
		.cfg = &cfg,
		.base_offset = offsetof(gw_config, base),
		.ctx = &g,
		.init = gw_init,
		.started = gw_started,
		.fini = gw_fini,
		.status_details = gw_details,
		.reload = gw_quota_reload,
	};
	return cm_service_main(&svc, argc, argv);
}
