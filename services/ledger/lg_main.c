/* muri-ledger: one replica of the BFT ledger (chained HotStuff among the
 * replicas of the genesis file, SQLite state). */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cm_err.h"
#include "cm_service.h"
#include "lg_node.h"

typedef struct lg_config {
	cm_service_config base;
	char *genesis;
	int64_t base_timeout_ms;
	int64_t max_timeout_ms;
	int64_t tick_ms;
	uint64_t max_payload_bytes;
	int64_t mempool_max_txs;
	uint64_t mempool_max_bytes;
	int64_t mempool_per_sender;
	int64_t inbox_max;
	int64_t net_queue;
	int64_t relay_queue;
	int64_t relay_batch;
	int64_t relay_inbox;
	int64_t verifier_threads;
	int64_t empty_block_ms;
	bool idle_when_final;
	int64_t read_connections;
	int64_t max_wait_ms;
	char *tls_ca;
} lg_config;

static const cm_config_key lg_keys[] = {
	CM_SERVICE_CONFIG_KEYS(lg_config, base, 7100, 9100),
	{"genesis", CM_CFG_STR, offsetof(lg_config, genesis), "", 0, 0,
	 "genesis file: chain id, replicas, balances, parameters (required)", NULL},
	{"base_timeout_ms", CM_CFG_INT, offsetof(lg_config, base_timeout_ms), "500", 10, 600000,
	 "pacemaker: the first timeout of a view", NULL},
	{"max_timeout_ms", CM_CFG_INT, offsetof(lg_config, max_timeout_ms), "8000", 10, 3600000,
	 "pacemaker: the cap of the doubling timeouts", NULL},
	{"tick_ms", CM_CFG_INT, offsetof(lg_config, tick_ms), "5", 1, 1000, "consensus timer resolution", NULL},
	{"max_payload_bytes", CM_CFG_SIZE, offsetof(lg_config, max_payload_bytes), "32M", 65536, 64 * 1048576.0,
	 "hard cap of a block payload and of a peer message; blocks are sized within it by the governed "
	 "parameters block_max_txs and block_max_bytes",
	 NULL},
	{"mempool_max_txs", CM_CFG_INT, offsetof(lg_config, mempool_max_txs), "200000", 1, 100000000,
	 "transactions the mempool holds", NULL},
	{"mempool_max_bytes", CM_CFG_SIZE, offsetof(lg_config, mempool_max_bytes), "256M", 4096, 1099511627776.0,
	 "bytes the mempool holds", NULL},
	{"mempool_per_sender", CM_CFG_INT, offsetof(lg_config, mempool_per_sender), "100000", 1, 100000000,
	 "transactions the mempool holds for one sender", NULL},
	{"inbox_max", CM_CFG_INT, offsetof(lg_config, inbox_max), "100000", 16, 10000000,
	 "consensus messages queued for the core", NULL},
	{"net_queue", CM_CFG_INT, offsetof(lg_config, net_queue), "4096", 1, 1000000,
	 "messages queued for one peer (the oldest is dropped beyond)", NULL},
	{"relay_queue", CM_CFG_INT, offsetof(lg_config, relay_queue), "65536", 1, 10000000,
	 "admitted transactions queued for one peer's relay (beyond, that peer does not get them)", NULL},
	{"relay_batch", CM_CFG_INT, offsetof(lg_config, relay_batch), "256", 1, 10000,
	 "transactions per Relay call to a peer", NULL},
	{"relay_inbox", CM_CFG_INT, offsetof(lg_config, relay_inbox), "1024", 1, 1000000,
	 "inbound Relay batches waiting for admission (beyond, a batch is dropped)", NULL},
	{"verifier_threads", CM_CFG_INT, offsetof(lg_config, verifier_threads), "0", 0, 256,
	 "signature verifier threads; 0: one per core", NULL},
	{"idle_when_final", CM_CFG_BOOL, offsetof(lg_config, idle_when_final), "false", 0, 0,
	 "with no transaction waiting, stop making empty blocks once the last block with transactions is "
	 "final for followers and its effects are vouched for by a final block's state root (then one "
	 "every empty_block_ms); false: empty blocks as fast as the replicas vote (the lowest latency for "
	 "height-driven steps; an idle 4-replica chain keeps most of a core busy)", NULL},
	{"empty_block_ms", CM_CFG_INT, offsetof(lg_config, empty_block_ms), "1000", 0, 3600000,
	 "with idle_when_final, an idle chain's leader proposes an empty block at most this often (keeps "
	 "heights, challenges and deadlines moving); 0: never, the chain idles", NULL},
	{"read_connections", CM_CFG_INT, offsetof(lg_config, read_connections), "4", 1, 256,
	 "read-only SQLite connections for queries", NULL},
	{"max_wait_ms", CM_CFG_INT, offsetof(lg_config, max_wait_ms), "60000", 1, 3600000,
	 "longest wait_commit a SubmitTransaction may ask for", NULL},
	{"tls_ca", CM_CFG_STR, offsetof(lg_config, tls_ca), "", 0, 0,
	 "PEM CA file to verify peers' TLS certificates; empty: plaintext to peers", NULL},
};

typedef struct lg_ctx {
	lg_config cfg;
	cm_service *svc;
	lg_node *node;
} lg_ctx;

static int lg_status(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out)
{
	lg_ctx *c = arg;
	int code = cm_service_status(c->svc, call, out);
	if (code != GRPC_STATUS_OK)
		return code;
	lg_node_status_details(c->node, call, *out);
	/* two more details: "diverged" = "no" or why this replica stopped, and
	 * "sig_checks", the transactions whose signature it checked in full */
	Muri__V1__StatusResponse *r = *out;
	char why[600] = "no", checks[24];
	lg_node_diverged(c->node, why, sizeof(why));
	snprintf(checks, sizeof(checks), "%llu", (unsigned long long)lg_node_sig_checks(c->node));
	const char *keys[2] = {"diverged", "sig_checks"}, *vals[2] = {why, checks};
	Muri__V1__StatusResponse__DetailsEntry **d = cm_rpc_alloc(call, (r->n_details + 2) * sizeof(*d));
	if (!d)
		return code;
	memcpy(d, r->details, r->n_details * sizeof(*d));
	for (int i = 0; i < 2; i++) {
		Muri__V1__StatusResponse__DetailsEntry *e = cm_rpc_alloc(call, sizeof(*e));
		if (!e)
			return code;
		muri__v1__status_response__details_entry__init(e);
		e->key = (char *)keys[i];
		e->value = cm_rpc_strdup(call, vals[i]);
		d[r->n_details++] = e;
	}
	r->details = d;
	return code;
}

static int lg_health(void *arg, char *reason, size_t len)
{
	lg_ctx *c = arg;
	if (c->node && lg_node_diverged(c->node, reason, len))
		return 0;
	return 1;
}

static int lg_init(void *arg, const cm_service_env *env, char *err, size_t errlen)
{
	lg_ctx *c = arg;
	if (!c->cfg.genesis || !*c->cfg.genesis || !env->key || !env->base->data_dir || !*env->base->data_dir) {
		snprintf(err, errlen, "genesis, key_file and data_dir are required");
		return -2;
	}
	lg_node_opts o = {
		.data_dir = env->base->data_dir,
		.genesis_path = c->cfg.genesis,
		.key = env->key,
		.base_timeout_ms = (uint32_t)c->cfg.base_timeout_ms,
		.max_timeout_ms = (uint32_t)c->cfg.max_timeout_ms,
		.tick_ms = (uint32_t)c->cfg.tick_ms,
		.max_payload_bytes = (uint32_t)c->cfg.max_payload_bytes,
		.mempool_max_txs = (uint32_t)c->cfg.mempool_max_txs,
		.mempool_max_bytes = c->cfg.mempool_max_bytes,
		.mempool_per_sender = (uint32_t)c->cfg.mempool_per_sender,
		.inbox_max = (uint32_t)c->cfg.inbox_max,
		.net_queue = (uint32_t)c->cfg.net_queue,
		.relay_queue = (uint32_t)c->cfg.relay_queue,
		.relay_batch = (uint32_t)c->cfg.relay_batch,
		.relay_inbox = (uint32_t)c->cfg.relay_inbox,
		.verifier_threads = (uint32_t)c->cfg.verifier_threads,
		.empty_block_ms = (uint32_t)c->cfg.empty_block_ms,
		.idle_when_final = c->cfg.idle_when_final,
		.readers = (uint32_t)c->cfg.read_connections,
		.max_wait_ms = (uint32_t)c->cfg.max_wait_ms,
		.tls_ca_file = c->cfg.tls_ca && *c->cfg.tls_ca ? c->cfg.tls_ca : NULL,
		.metrics = env->metrics,
	};
	/* mutual TLS: peers' certificates verified against tls_ca; role checks
	 * read the node key each certificate is bound to (cm_tls_id.h) */
	if (env->base->tls_cert && *env->base->tls_cert && o.tls_ca_file &&
	    cm_rpc_server_verify_clients(env->rpc, o.tls_ca_file, err, errlen) != CM_OK)
		return -2;
	int rc = lg_node_open(&o, &c->node, err, errlen);
	if (rc != 0)
		return rc;
	return lg_node_register(c->node, env->rpc, c, lg_status);
}

static int lg_started(void *arg, int port, char *err, size_t errlen)
{
	lg_ctx *c = arg;
	(void)port;
	return lg_node_start(c->node, err, errlen);
}

static void lg_stopping(void *arg)
{
	lg_ctx *c = arg;
	lg_node_stop(c->node);
}

static void lg_fini(void *arg)
{
	lg_ctx *c = arg;
	lg_node_close(c->node);
	c->node = NULL;
}

int main(int argc, char **argv)
{
	static lg_ctx ctx;
	cm_service svc = {
		.name = "ledger",
		.env_prefix = "MURI_LEDGER_",
		.keys = lg_keys,
		.nkeys = sizeof(lg_keys) / sizeof(lg_keys[0]),
		.cfg = &ctx.cfg,
		.base_offset = offsetof(lg_config, base),
		.ctx = &ctx,
		.init = lg_init,
		.started = lg_started,
		.stopping = lg_stopping,
		.fini = lg_fini,
		.health = lg_health,
	};
	ctx.svc = &svc;
	return cm_service_main(&svc, argc, argv);
}
