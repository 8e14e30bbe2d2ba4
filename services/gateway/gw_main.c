/* muri-gateway: the client API (VectorStore). So far the process skeleton:
 * configuration, node key, /healthz and /metrics, and the VectorStore service's
 * Status RPC; routing, fan-out and merging come next. */
#include <stddef.h>

#include "cm_service.h"
#include "vectorstore.pb-c.h"

typedef struct gw_config {
	cm_service_config base;
} gw_config;

static const cm_config_key gw_keys[] = {
	CM_SERVICE_CONFIG_KEYS(gw_config, base, 7300, 9300),
};

static int gw_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
	(void)req;
	return cm_service_status(arg, call, (Muri__V1__StatusResponse **)resp);
}

static int gw_init(void *ctx, const cm_service_env *env, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	static const cm_rpc_handler handlers[] = {{"Status", gw_status, NULL}};
	return cm_rpc_server_add(env->rpc, &muri__v1__vector_store__descriptor, handlers, 1, env->svc);
}

int main(int argc, char **argv)
{
	gw_config cfg = {0};
	cm_service svc = {
		.name = "gateway",
		.env_prefix = "MURI_GATEWAY_",
		.keys = gw_keys,
		.nkeys = sizeof(gw_keys) / sizeof(gw_keys[0]),
		.cfg = &cfg,
		.base_offset = offsetof(gw_config, base),
		.init = gw_init,
	};
	return cm_service_main(&svc, argc, argv);
}
