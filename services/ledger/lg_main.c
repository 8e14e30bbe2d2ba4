/* muri-ledger: one replica of the BFT ledger. So far the process skeleton:
 * configuration, node key, /healthz and /metrics, and the Ledger service's
 * Status RPC; consensus and the state machine come next. */
#include <stddef.h>

#include "cm_service.h"
#include "ledger.pb-c.h"

typedef struct lg_config {
	cm_service_config base;
} lg_config;

static const cm_config_key lg_keys[] = {
	CM_SERVICE_CONFIG_KEYS(lg_config, base, 7100, 9100),
};

static int lg_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
	(void)req;
	return cm_service_status(arg, call, (Muri__V1__StatusResponse **)resp);
}

static int lg_init(void *ctx, const cm_service_env *env, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	static const cm_rpc_handler handlers[] = {{"Status", lg_status, NULL}};
	return cm_rpc_server_add(env->rpc, &muri__v1__ledger__descriptor, handlers, 1, env->svc);
}

int main(int argc, char **argv)
{
	lg_config cfg = {0};
	cm_service svc = {
		.name = "ledger",
		.env_prefix = "MURI_LEDGER_",
		.keys = lg_keys,
		.nkeys = sizeof(lg_keys) / sizeof(lg_keys[0]),
		.cfg = &cfg,
		.base_offset = offsetof(lg_config, base),
		.init = lg_init,
	};
	return cm_service_main(&svc, argc, argv);
}
