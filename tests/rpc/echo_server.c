/* muri-echo-server: the Echo test service on the common service skeleton,
 * used by the RPC tests (C and Python clients) and the RPC benchmark. */
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "cm_service.h"
#include "echo.pb-c.h"

typedef struct echo_config {
	cm_service_config base;
} echo_config;

static const cm_config_key echo_keys[] = {
	CM_SERVICE_CONFIG_KEYS(echo_config, base, 0, 0),
};

static void sleep_ms(unsigned ms)
{
	struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

/* Sleeps in small steps so that a cancelled call or a stopping server ends it. */
static int sleep_unless_cancelled(cm_rpc_call *call, unsigned ms)
{
	while (ms > 0) {
		if (cm_rpc_cancelled(call))
			return 0;
		unsigned step = ms < 10 ? ms : 10;
		sleep_ms(step);
		ms -= step;
	}
	return 1;
}

static int say(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	(void)arg;
	const Muri__Test__EchoRequest *req = (const Muri__Test__EchoRequest *)msg;
	if (req->sleep_ms && !sleep_unless_cancelled(call, req->sleep_ms))
		return cm_rpc_deadline_left_ms(call) == 0
			       ? cm_rpc_fail(call, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline passed while sleeping")
			       : cm_rpc_fail(call, GRPC_STATUS_CANCELLED, "cancelled while sleeping");
	if (req->fail_code)
		return cm_rpc_fail(call, (int)req->fail_code, "%s", req->fail_message);
	Muri__Test__EchoReply *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__test__echo_reply__init(r);
	r->payload = req->payload;
	if (req->reply_bytes > req->payload.len) {
		r->payload.len = req->reply_bytes;
		r->payload.data = cm_rpc_alloc(call, req->reply_bytes);
		if (!r->payload.data)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		if (req->payload.len)
			memcpy(r->payload.data, req->payload.data, req->payload.len);
	}
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int count(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg)
{
	(void)arg;
	const Muri__Test__EchoRequest *req = (const Muri__Test__EchoRequest *)msg;
	for (uint64_t i = 0; req->count == 0 || i < req->count; i++) {
		Muri__Test__EchoReply r = MURI__TEST__ECHO_REPLY__INIT;
		r.seq = i;
		r.payload = req->payload;
		if (cm_rpc_stream_send(call, &r.base) != 0)
			return cm_rpc_fail(call, GRPC_STATUS_CANCELLED, "stream cancelled at %llu",
					   (unsigned long long)i);
		if (req->interval_ms && !sleep_unless_cancelled(call, req->interval_ms))
			return cm_rpc_fail(call, GRPC_STATUS_CANCELLED, "stream cancelled at %llu",
					   (unsigned long long)i);
	}
	return GRPC_STATUS_OK;
}

static int echo_init(void *ctx, const cm_service_env *env, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	static const cm_rpc_handler handlers[] = {{"Say", say, NULL}, {"Count", NULL, count}};
	return cm_rpc_server_add(env->rpc, &muri__test__echo__descriptor, handlers, 2, NULL);
}

int main(int argc, char **argv)
{
	echo_config cfg = {0};
	cm_service svc = {
		.name = "echo",
		.env_prefix = "MURI_ECHO_",
		.keys = echo_keys,
		.nkeys = sizeof(echo_keys) / sizeof(echo_keys[0]),
		.cfg = &cfg,
		.base_offset = offsetof(echo_config, base),
		.init = echo_init,
	};
	return cm_service_main(&svc, argc, argv);
}
