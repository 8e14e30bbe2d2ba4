/* muri-indexer: a MurIndexer holding fragments of Magus. So far the process skeleton:
 * configuration, node key, /healthz and /metrics, and the Indexer service's
 * Status RPC; fragments, search and replication come next. */
#include <stddef.h>

#include "cm_service.h"
#include "indexer.pb-c.h"

typedef struct ix_config {
	cm_service_config base;
} ix_config;

static const cm_config_key ix_keys[] = {
	CM_SERVICE_CONFIG_KEYS(ix_config, base, 7200, 9200),
};

static int ix_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
	(void)req;
	return cm_service_status(arg, call, (Muri__V1__StatusResponse **)resp);
}

static int ix_init(void *ctx, const cm_service_env *env, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	static const cm_rpc_handler handlers[] = {{"Status", ix_status, NULL}};
	return cm_rpc_server_add(env->rpc, &muri__v1__indexer__descriptor, handlers, 1, env->svc);
}

int main(int argc, char **argv)
{
	ix_config cfg = {0};
	cm_service svc = {
		.name = "indexer",
		.env_prefix = "MURI_INDEXER_",
		.keys = ix_keys,
		.nkeys = sizeof(ix_keys) / sizeof(ix_keys[0]),
		.cfg = &cfg,
		.base_offset = offsetof(ix_config, base),
		.init = ix_init,
	};
	return cm_service_main(&svc, argc, argv);
}
