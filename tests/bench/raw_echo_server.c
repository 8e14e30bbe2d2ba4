/* The benchmark's baseline: a minimal echo server written directly against
 * gRPC core, with the pattern known to be fast here (one completion queue
 * per worker, registered method reading the payload with the call, one
 * reply batch). It echoes the request bytes without decoding them, so the
 * gap to muri-echo-server is the cost of muri's RPC layer.
 *   raw-echo-server --port-file F [--rpc-workers N]   (listens on 127.0.0.1:0;
 *   other "--key value" pairs, as the test helpers pass, are ignored) */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCEPTS 4

struct call {
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	int state; /* 0 accepting, 1 replying */
	int cancelled;
	grpc_slice details;
	grpc_completion_queue *cq;
};

static grpc_server *server;
static void *method;

static void accept_call(grpc_completion_queue *cq)
{
	struct call *c = calloc(1, sizeof(*c));
	c->cq = cq;
	grpc_metadata_array_init(&c->md);
	grpc_server_request_registered_call(server, method, &c->call, &c->deadline, &c->md,
					    &c->payload, cq, cq, c);
}

static void *worker(void *arg)
{
	grpc_completion_queue *cq = arg;
	for (int i = 0; i < ACCEPTS; i++)
		accept_call(cq);
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return NULL;
		struct call *c = ev.tag;
		if (c->state == 0 && ev.success) {
			accept_call(cq);
			grpc_op ops[4];
			memset(ops, 0, sizeof(ops));
			c->details = grpc_empty_slice();
			ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
			ops[1].op = GRPC_OP_SEND_MESSAGE;
			ops[1].data.send_message.send_message = c->payload;
			ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
			ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
			ops[2].data.send_status_from_server.status_details = &c->details;
			ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
			ops[3].data.recv_close_on_server.cancelled = &c->cancelled;
			c->state = 1;
			grpc_call_start_batch(c->call, ops, c->payload ? 4 : 1, c, NULL);
			continue;
		}
		if (c->call)
			grpc_call_unref(c->call);
		if (c->payload)
			grpc_byte_buffer_destroy(c->payload);
		grpc_metadata_array_destroy(&c->md);
		free(c);
	}
}

int main(int argc, char **argv)
{
	const char *port_file = NULL;
	int nworkers = 4;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port-file") == 0)
			port_file = argv[i + 1];
		else if (strcmp(argv[i], "--rpc-workers") == 0)
			nworkers = atoi(argv[i + 1]);
	}
	if (!port_file || nworkers < 1 || nworkers > 64)
		return 2;
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	grpc_init();
	grpc_arg a = {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0};
	grpc_channel_args args = {.num_args = 1, .args = &a};
	server = grpc_server_create(&args, NULL);
	method = grpc_server_register_method(server, "/muri.test.Echo/Say", NULL,
					     GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	grpc_completion_queue *cqs[64];
	for (int i = 0; i < nworkers; i++) {
		cqs[i] = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(server, cqs[i], NULL);
	}
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	int port = grpc_server_add_http2_port(server, "127.0.0.1:0", creds);
	grpc_server_credentials_release(creds);
	if (!port)
		return 1;
	grpc_server_start(server);
	pthread_t t[64];
	for (int i = 0; i < nworkers; i++)
		pthread_create(&t[i], NULL, worker, cqs[i]);
	FILE *f = fopen(port_file, "w");
	fprintf(f, "rpc_port=%d\nmetrics_port=0\n", port);
	fclose(f);
	int sig;
	sigwait(&sigs, &sig);
	grpc_completion_queue *ctl = grpc_completion_queue_create_for_pluck(NULL);
	grpc_server_shutdown_and_notify(server, ctl, ctl);
	grpc_server_cancel_all_calls(server);
	grpc_completion_queue_pluck(ctl, ctl, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_server_destroy(server);
	for (int i = 0; i < nworkers; i++) {
		grpc_completion_queue_shutdown(cqs[i]);
		pthread_join(t[i], NULL);
		grpc_completion_queue_destroy(cqs[i]);
	}
	grpc_completion_queue_destroy(ctl);
	grpc_shutdown();
	return 0;
}
