/* The gRPC core server: worker threads drain one shared completion queue
 * (a worker busy in a long handler, such as a write waiting for a split,
 * holds only its own call: the next event goes to any idle worker); every
 * accepted call is a small state machine (accepted -> handled ->
 * one batch of initial metadata + message + status + close -> freed).
 * Server streams get a thread of their own that sends one message at a
 * time. Shutdown: stop accepting, grace period, cancel the rest, wait for
 * every call context, destroy the server, then drain and destroy the queues. */
#include "cm_rpc_int.h"
#include "cm_arena.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_tls_id.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#define ARENA_LIMIT_FACTOR 8 /* by default a call's arena may hold this many times max_message */
#define ON_DONE_MAX 8

struct method {
	char name[CM_RPC_METHOD_MAX];
	const ProtobufCMessageDescriptor *req_desc, *resp_desc;
	cm_rpc_unary_fn unary;
	cm_rpc_stream_fn stream;
	void *arg;
	void *handle; /* from grpc_server_register_method */
	cm_counter *calls, *failures;
	cm_histogram *seconds;
	cm_histogram *decode, *encode; /* unary: request unpacking, response packing */
};

enum tag_kind { TAG_ACCEPT, TAG_FINISH, TAG_WRITE, TAG_CLOSE, TAG_STATUS, TAG_COUNT };

struct tag {
	struct cm_rpc_call *call;
	enum tag_kind kind;
};

struct worker {
	cm_rpc_server *srv;
	pthread_t thread;
	grpc_completion_queue *cq;
};

struct cm_rpc_call {
	cm_rpc_server *srv;
	struct worker *w;
	struct method *m; /* NULL: an unregistered method */
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	grpc_call_details details;
	struct tag tags[TAG_COUNT];
	cm_arena arena;
	int code;
	char message[CM_RPC_STATUS_MAX];
	grpc_slice status_slice;
	int has_status_slice;
	grpc_byte_buffer *resp_bb;
	grpc_metadata trailers[CM_RPC_TRAILERS_MAX]; /* sent with the status */
	size_t ntrailers;
	int close_cancelled; /* written by RECV_CLOSE_ON_SERVER */
	struct timespec start;
	void (*done_fn[ON_DONE_MAX])(void *);
	void *done_arg[ON_DONE_MAX];
	int ndone;
	/* server streams only */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int write_busy, write_ok, closed, status_done;
	int no_thread; /* the stream thread could not start: TAG_CLOSE frees */
	const ProtobufCMessage *req;
};

struct cm_rpc_server {
	char *listen;
	int nworkers, per_worker, max_streams;
	size_t max_message;
	size_t call_memory;  /* a call's arena limit: its decoded request and its response */
	char *tls_cert_file, *tls_key_file;
	char *tls_client_ca; /* mutual TLS: callers' certificates verified against it */
	cm_metrics *metrics;

	grpc_server *server;
	grpc_completion_queue *ctl_cq;
	grpc_completion_queue *cq; /* every worker's, and every call's */
	struct worker *workers;
	struct method *methods;
	size_t nmethods, cap;
	atomic_int stopping;   /* no new calls; streams are asked to end */
	atomic_int cancelling; /* the grace period is over: every call is cancelled */
	atomic_int streams;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int live; /* call contexts alive, under mu */
	int started, stopped;
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- call contexts ---------------------------------------------------- */

static struct cm_rpc_call *call_new(struct worker *w, struct method *m)
{
	cm_rpc_server *srv = w->srv;
	struct cm_rpc_call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->srv = srv;
	c->w = w;
	c->m = m;
	for (int i = 0; i < TAG_COUNT; i++) {
		c->tags[i].call = c;
		c->tags[i].kind = (enum tag_kind)i;
	}
	grpc_metadata_array_init(&c->md);
	grpc_call_details_init(&c->details);
	cm_arena_init(&c->arena, srv->call_memory);
	pthread_mutex_lock(&srv->mu);
	srv->live++;
	pthread_mutex_unlock(&srv->mu);
	return c;
}

static void call_free(struct cm_rpc_call *c)
{
	cm_rpc_server *srv = c->srv;
	for (int i = 0; i < c->ndone; i++)
		c->done_fn[i](c->done_arg[i]);
	if (c->call)
		grpc_call_unref(c->call);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->resp_bb)
		grpc_byte_buffer_destroy(c->resp_bb);
	if (c->has_status_slice)
		grpc_slice_unref(c->status_slice);
	for (size_t i = 0; i < c->ntrailers; i++) {
		grpc_slice_unref(c->trailers[i].key);
		grpc_slice_unref(c->trailers[i].value);
	}
	grpc_metadata_array_destroy(&c->md);
	grpc_call_details_destroy(&c->details);
	cm_arena_free(&c->arena);
	if (c->m && c->m->stream) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
	}
	free(c);
	pthread_mutex_lock(&srv->mu);
	if (--srv->live == 0)
		pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
}

/* Posts one accept for method m (NULL: any unregistered method) on w's queue. */
static void accept_one(struct worker *w, struct method *m)
{
	cm_rpc_server *srv = w->srv;
	if (atomic_load(&srv->stopping))
		return;
	struct cm_rpc_call *c = call_new(w, m);
	if (!c)
		return;
	grpc_call_error e;
	if (m)
		e = grpc_server_request_registered_call(srv->server, m->handle, &c->call, &c->deadline,
							&c->md, &c->payload, w->cq, w->cq,
							&c->tags[TAG_ACCEPT]);
	else
		e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->md, w->cq, w->cq,
					     &c->tags[TAG_ACCEPT]);
	if (e != GRPC_CALL_OK)
		call_free(c);
}

void *cm_rpc_alloc(cm_rpc_call *call, size_t n)
{
	return cm_arena_alloc(&call->arena, n);
}

int cm_rpc_on_done(cm_rpc_call *call, void (*fn)(void *), void *arg)
{
	if (call->ndone == ON_DONE_MAX) {
		fn(arg);
		return CM_ERR_TOOBIG;
	}
	call->done_fn[call->ndone] = fn;
	call->done_arg[call->ndone++] = arg;
	return CM_OK;
}

cm_arena *cm_rpc_arena(cm_rpc_call *call)
{
	return &call->arena;
}

char *cm_rpc_strdup(cm_rpc_call *call, const char *s)
{
	return cm_arena_strdup(&call->arena, s);
}

int cm_rpc_fail(cm_rpc_call *call, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(call->message, sizeof(call->message), fmt, ap);
	va_end(ap);
	call->code = code;
	return code;
}

int64_t cm_rpc_deadline_left_ms(const cm_rpc_call *call)
{
	gpr_timespec d = gpr_convert_clock_type(call->deadline, GPR_CLOCK_REALTIME);
	if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_REALTIME)) == 0)
		return INT64_MAX;
	gpr_timespec left = gpr_time_sub(d, gpr_now(GPR_CLOCK_REALTIME));
	int64_t ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
	return ms < 0 ? 0 : ms;
}

int cm_rpc_cancelled(cm_rpc_call *call)
{
	if (atomic_load(&call->srv->cancelling) || cm_rpc_deadline_left_ms(call) == 0)
		return 1;
	if (call->m && call->m->stream) {
		/* streams may never end by themselves: a stop asks them at once */
		if (atomic_load(&call->srv->stopping))
			return 1;
		pthread_mutex_lock(&call->mu);
		int closed = call->closed;
		pthread_mutex_unlock(&call->mu);
		return closed;
	}
	return 0;
}

grpc_call *cm_rpc_call_grpc(const cm_rpc_call *call)
{
	return call->call;
}

int cm_rpc_peer_checked(const cm_rpc_call *call)
{
	return call->srv->tls_client_ca != NULL;
}

const char *cm_rpc_method(const cm_rpc_call *call)
{
	return call->m ? call->m->name : "";
}

const char *cm_rpc_metadata(cm_rpc_call *call, const char *key)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i < call->md.count; i++) {
		const grpc_metadata *m = &call->md.metadata[i];
		if (GRPC_SLICE_LENGTH(m->key) != klen || memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) != 0)
			continue;
		size_t n = GRPC_SLICE_LENGTH(m->value);
		if (n > CM_RPC_METADATA_MAX || memchr(GRPC_SLICE_START_PTR(m->value), 0, n))
			return NULL;
		char *v = cm_rpc_alloc(call, n + 1);
		if (!v)
			return NULL;
		memcpy(v, GRPC_SLICE_START_PTR(m->value), n);
		v[n] = '\0';
		return v;
	}
	return NULL;
}

int cm_rpc_request_bytes(cm_rpc_call *call, const uint8_t **p, size_t *n)
{
	grpc_byte_buffer_reader r;
	if (!call->payload || !grpc_byte_buffer_reader_init(&r, call->payload))
		return CM_ERR_NOTFOUND;
	grpc_slice s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	size_t len = GRPC_SLICE_LENGTH(s);
	uint8_t *copy = cm_rpc_alloc(call, len ? len : 1);
	if (copy)
		memcpy(copy, GRPC_SLICE_START_PTR(s), len);
	grpc_slice_unref(s);
	if (!copy)
		return CM_ERR_NOMEM;
	*p = copy;
	*n = len;
	return CM_OK;
}

size_t cm_rpc_request_size(const cm_rpc_call *call)
{
	return call->payload ? grpc_byte_buffer_length(call->payload) : 0;
}

int cm_rpc_set_trailer(cm_rpc_call *call, const char *key, const char *value)
{
	if (call->ntrailers == CM_RPC_TRAILERS_MAX)
		return CM_ERR_TOOBIG;
	grpc_metadata *m = &call->trailers[call->ntrailers++];
	memset(m, 0, sizeof(*m));
	m->key = grpc_slice_from_copied_string(key);
	m->value = grpc_slice_from_copied_string(value);
	return CM_OK;
}

static void set_status_slice(struct cm_rpc_call *c)
{
	c->status_slice = grpc_slice_from_copied_string(c->message);
	c->has_status_slice = 1;
}

static void record(struct cm_rpc_call *c)
{
	if (!c->m || !c->m->calls)
		return;
	cm_counter_add(c->m->calls, 1);
	if (c->code != GRPC_STATUS_OK)
		cm_counter_add(c->m->failures, 1);
	cm_histogram_observe(c->m->seconds, seconds_since(&c->start));
}

/* Sends status (and resp_bb when set) in one batch; TAG_FINISH frees. */
static void finish_unary(struct cm_rpc_call *c)
{
	grpc_op ops[4];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (c->resp_bb) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->resp_bb;
	}
	set_status_slice(c);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)c->code;
	ops[n].data.send_status_from_server.trailing_metadata_count = c->ntrailers;
	ops[n].data.send_status_from_server.trailing_metadata = c->ntrailers ? c->trailers : NULL;
	ops[n++].data.send_status_from_server.status_details = &c->status_slice;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &c->close_cancelled;
	record(c);
	if (grpc_call_start_batch(c->call, ops, n, &c->tags[TAG_FINISH], NULL) != GRPC_CALL_OK)
		call_free(c);
}

static const ProtobufCMessage *decode_request(struct cm_rpc_call *c)
{
	if (!c->payload) {
		cm_rpc_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: the request message is missing",
			    c->m->name);
		return NULL;
	}
	ProtobufCMessage *req = cm_rpc_unpack(c->m->req_desc, c->payload, &c->arena.pb);
	if (!req && c->arena.over_limit)
		cm_rpc_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
			    "%s: the request decodes to more than %zu bytes (rpc_call_memory)", c->m->name,
			    c->srv->call_memory);
	else if (!req)
		cm_rpc_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: cannot decode the request as %s",
			    c->m->name, c->m->req_desc->name);
	return req;
}

static void run_unary(struct cm_rpc_call *c)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	const ProtobufCMessage *req = decode_request(c);
	ProtobufCMessage *resp = NULL;
	if (req && c->m->decode)
		cm_histogram_observe(c->m->decode, seconds_since(&t0));
	if (req) {
		c->code = c->m->unary(c->m->arg, c, req, &resp);
		if (c->code == GRPC_STATUS_OK && (!resp || resp->descriptor != c->m->resp_desc)) {
			cm_rpc_fail(c, GRPC_STATUS_INTERNAL, "%s: the handler gave no %s",
				    c->m->name, c->m->resp_desc->name);
		} else if (c->code == GRPC_STATUS_OK) {
			clock_gettime(CLOCK_MONOTONIC, &t0);
			c->resp_bb = cm_rpc_pack(resp);
			if (c->resp_bb && c->m->encode)
				cm_histogram_observe(c->m->encode, seconds_since(&t0));
			if (!c->resp_bb)
				cm_rpc_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		}
	}
	finish_unary(c);
}

static void reply_unimplemented(struct cm_rpc_call *c)
{
	size_t n = GRPC_SLICE_LENGTH(c->details.method);
	if (n > 200)
		n = 200;
	cm_rpc_fail(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %.*s", (int)n,
		    (const char *)GRPC_SLICE_START_PTR(c->details.method));
	finish_unary(c);
}

/* ---- server streams ---------------------------------------------------- */

int cm_rpc_stream_send(cm_rpc_call *c, const ProtobufCMessage *msg)
{
	if (cm_rpc_cancelled(c))
		return CM_ERR_CANCELLED;
	grpc_byte_buffer *bb = cm_rpc_pack(msg);
	if (!bb)
		return CM_ERR_NOMEM;
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = bb;
	pthread_mutex_lock(&c->mu);
	c->write_busy = 1;
	if (grpc_call_start_batch(c->call, &op, 1, &c->tags[TAG_WRITE], NULL) != GRPC_CALL_OK) {
		c->write_busy = 0;
		pthread_mutex_unlock(&c->mu);
		grpc_byte_buffer_destroy(bb);
		return CM_ERR_CANCELLED;
	}
	while (c->write_busy)
		pthread_cond_wait(&c->cv, &c->mu);
	int ok = c->write_ok;
	pthread_mutex_unlock(&c->mu);
	grpc_byte_buffer_destroy(bb);
	return ok ? CM_OK : CM_ERR_CANCELLED;
}

static void *stream_main(void *arg)
{
	struct cm_rpc_call *c = arg;
	c->code = c->m->stream(c->m->arg, c, c->req);
	if (c->code != GRPC_STATUS_OK && !c->message[0])
		snprintf(c->message, sizeof(c->message), "%s", cm_rpc_code_name(c->code));
	set_status_slice(c);
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op.data.send_status_from_server.status = (grpc_status_code)c->code;
	op.data.send_status_from_server.status_details = &c->status_slice;
	op.data.send_status_from_server.trailing_metadata_count = c->ntrailers;
	op.data.send_status_from_server.trailing_metadata = c->ntrailers ? c->trailers : NULL;
	record(c);
	pthread_mutex_lock(&c->mu);
	if (grpc_call_start_batch(c->call, &op, 1, &c->tags[TAG_STATUS], NULL) != GRPC_CALL_OK)
		c->status_done = 1;
	while (!c->status_done || !c->closed)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	atomic_fetch_sub(&c->srv->streams, 1);
	call_free(c);
	return NULL;
}

static void start_stream(struct cm_rpc_call *c)
{
	c->req = decode_request(c);
	if (!c->req) {
		finish_unary(c);
		return;
	}
	if (atomic_fetch_add(&c->srv->streams, 1) >= c->srv->max_streams) {
		atomic_fetch_sub(&c->srv->streams, 1);
		cm_rpc_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
			    "%s: too many open streams (max_streams %d)", c->m->name,
			    c->srv->max_streams);
		finish_unary(c);
		return;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	grpc_op ops[2];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[1].data.recv_close_on_server.cancelled = &c->close_cancelled;
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (grpc_call_start_batch(c->call, ops, 2, &c->tags[TAG_CLOSE], NULL) != GRPC_CALL_OK) {
		atomic_fetch_sub(&c->srv->streams, 1);
		pthread_attr_destroy(&attr);
		call_free(c);
		return;
	}
	if (pthread_create(&t, &attr, stream_main, c) != 0) {
		/* no thread: cancel; the close batch's completion frees the call */
		atomic_fetch_sub(&c->srv->streams, 1);
		cm_rpc_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start a stream thread");
		record(c);
		c->no_thread = 1;
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
					     "cannot start a stream thread", NULL);
	}
	pthread_attr_destroy(&attr);
}

/* ---- workers ------------------------------------------------------------ */

static void on_event(struct tag *t, int ok)
{
	struct cm_rpc_call *c = t->call;
	switch (t->kind) {
	case TAG_ACCEPT:
		if (!ok) {
			call_free(c);
			return;
		}
		clock_gettime(CLOCK_MONOTONIC, &c->start);
		accept_one(c->w, c->m);
		if (!c->m)
			reply_unimplemented(c);
		else if (c->m->stream)
			start_stream(c);
		else
			run_unary(c);
		return;
	case TAG_FINISH:
		call_free(c);
		return;
	case TAG_WRITE:
		pthread_mutex_lock(&c->mu);
		c->write_busy = 0;
		c->write_ok = ok;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		return;
	case TAG_CLOSE:
		if (c->no_thread) {
			call_free(c);
			return;
		}
		pthread_mutex_lock(&c->mu);
		c->closed = 1;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		return;
	case TAG_STATUS:
		pthread_mutex_lock(&c->mu);
		c->status_done = 1;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		return;
	case TAG_COUNT:
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			on_event(ev.tag, ev.success);
	}
	return NULL;
}

/* ---- life cycle --------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int cm_rpc_server_new(const cm_rpc_server_opts *o, cm_rpc_server **out, char *err, size_t errlen)
{
	if (!o->listen || !*o->listen || o->workers < 1 || o->requests_per_worker < 1 ||
	    o->max_streams < 0 || (!o->tls_cert_file) != (!o->tls_key_file)) {
		snprintf(err, errlen, "invalid RPC server options (listen, workers >= 1, "
				      "requests_per_worker >= 1, tls cert and key together)");
		return CM_ERR_INVALID;
	}
	cm_rpc_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return CM_ERR_NOMEM;
	srv->listen = strdup(o->listen);
	srv->nworkers = o->workers;
	srv->per_worker = o->requests_per_worker;
	srv->max_streams = o->max_streams;
	srv->max_message = o->max_message ? o->max_message : CM_RPC_MSG_MAX_DEFAULT;
	srv->call_memory = o->call_memory ? o->call_memory : srv->max_message * ARENA_LIMIT_FACTOR;
	srv->tls_cert_file = dup_or_null(o->tls_cert_file);
	srv->tls_key_file = dup_or_null(o->tls_key_file);
	srv->metrics = o->metrics;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	grpc_init();
	grpc_arg args[8];
	size_t na = 0;
	memset(args, 0, sizeof(args));
	int max_msg = (int)(srv->max_message > INT32_MAX ? INT32_MAX : srv->max_message);
	const struct {
		const char *key;
		int value, set;
	} ints[] = {
		{GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max_msg, 1},
		{GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, max_msg, 1},
		{GRPC_ARG_ALLOW_REUSEPORT, 0, 1},
		{GRPC_ARG_MAX_CONCURRENT_STREAMS, o->conn_streams, o->conn_streams > 0},
		{GRPC_ARG_MAX_CONNECTION_IDLE_MS, o->idle_ms, o->idle_ms > 0},
		{GRPC_ARG_MAX_CONNECTION_AGE_MS, o->age_ms, o->age_ms > 0},
		{GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, o->age_grace_ms, o->age_ms > 0},
	};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (!ints[i].set)
			continue;
		args[na].type = GRPC_ARG_INTEGER;
		args[na].key = (char *)ints[i].key;
		args[na].value.integer = ints[i].value;
		na++;
	}
	grpc_resource_quota *quota = NULL;
	if (o->memory > 0) {
		quota = grpc_resource_quota_create("muri-rpc");
		grpc_resource_quota_resize(quota, o->memory);
		args[na].type = GRPC_ARG_POINTER;
		args[na].key = (char *)GRPC_ARG_RESOURCE_QUOTA;
		args[na].value.pointer.p = quota;
		args[na].value.pointer.vtable = grpc_resource_quota_arg_vtable();
		na++;
	}
	grpc_channel_args ca = {.num_args = na, .args = args};
	srv->server = grpc_server_create(&ca, NULL);
	if (quota)
		grpc_resource_quota_unref(quota);
	srv->ctl_cq = grpc_completion_queue_create_for_pluck(NULL);
	srv->workers = calloc((size_t)srv->nworkers, sizeof(*srv->workers));
	if (!srv->listen || !srv->server || !srv->workers) {
		cm_rpc_server_free(srv);
		return CM_ERR_NOMEM;
	}
	srv->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
	for (int i = 0; i < srv->nworkers; i++) {
		srv->workers[i].srv = srv;
		srv->workers[i].cq = srv->cq;
	}
	*out = srv;
	return CM_OK;
}

static void method_metrics(cm_rpc_server *srv, struct method *m)
{
	static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					0.01,   0.025,   0.05,   0.1,   0.25,   1,     5};
	static const double fine[] = {0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
				      0.0005,   0.001,   0.0025,   0.005,   0.01,   0.05};
	char labels[CM_RPC_METHOD_MAX + 16];
	if (!srv->metrics)
		return;
	snprintf(labels, sizeof(labels), "method=\"%s\"", m->name);
	m->calls = cm_metrics_counter(srv->metrics, "muri_rpc_calls_total", labels,
				      "RPC calls answered, by method");
	m->failures = cm_metrics_counter(srv->metrics, "muri_rpc_failures_total", labels,
					 "RPC calls answered with a status other than OK");
	m->seconds = cm_metrics_histogram(srv->metrics, "muri_rpc_seconds", labels,
					  "time from accepting an RPC call to sending its status",
					  bounds, sizeof(bounds) / sizeof(bounds[0]));
	m->decode = cm_metrics_histogram(srv->metrics, "muri_rpc_decode_seconds", labels,
					 "time unpacking a unary call's request message", fine,
					 sizeof(fine) / sizeof(fine[0]));
	m->encode = cm_metrics_histogram(srv->metrics, "muri_rpc_encode_seconds", labels,
					 "time packing a unary call's response message", fine,
					 sizeof(fine) / sizeof(fine[0]));
	if (!m->calls || !m->failures || !m->seconds)
		m->calls = NULL;
}

int cm_rpc_server_add(cm_rpc_server *srv, const ProtobufCServiceDescriptor *svc,
		      const cm_rpc_handler *handlers, size_t nhandlers, void *arg)
{
	if (srv->started)
		return CM_ERR_STATE;
	for (size_t i = 0; i < nhandlers; i++) {
		const ProtobufCMethodDescriptor *md = NULL;
		for (unsigned j = 0; j < svc->n_methods; j++)
			if (strcmp(svc->methods[j].name, handlers[i].method) == 0)
				md = &svc->methods[j];
		if (!md || (!handlers[i].unary) == (!handlers[i].stream))
			return CM_ERR_INVALID;
		if (srv->nmethods == srv->cap) {
			size_t cap = srv->cap ? 2 * srv->cap : 16;
			struct method *ms = realloc(srv->methods, cap * sizeof(*ms));
			if (!ms)
				return CM_ERR_NOMEM;
			srv->methods = ms;
			srv->cap = cap;
		}
		struct method *m = &srv->methods[srv->nmethods];
		memset(m, 0, sizeof(*m));
		int n = snprintf(m->name, sizeof(m->name), "/%s/%s", svc->name, md->name);
		if (n < 0 || (size_t)n >= sizeof(m->name))
			return CM_ERR_INVALID;
		m->req_desc = md->input;
		m->resp_desc = md->output;
		m->unary = handlers[i].unary;
		m->stream = handlers[i].stream;
		m->arg = arg;
		m->handle = grpc_server_register_method(srv->server, m->name, NULL,
							GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
		if (!m->handle)
			return CM_ERR_EXISTS;
		srv->nmethods++;
	}
	return CM_OK;
}

int cm_rpc_server_verify_clients(cm_rpc_server *srv, const char *ca_file, char *err, size_t errlen)
{
	if (srv->started || !srv->tls_cert_file || !ca_file || !*ca_file) {
		snprintf(err, errlen, "mutual TLS needs a TLS server (tls_cert, tls_key) and a CA file, before start");
		return CM_ERR_INVALID;
	}
	free(srv->tls_client_ca);
	srv->tls_client_ca = strdup(ca_file);
	return srv->tls_client_ca ? CM_OK : CM_ERR_NOMEM;
}

int cm_rpc_server_start(cm_rpc_server *srv, int *port, char *err, size_t errlen)
{
	grpc_server_credentials *creds;
	if (srv->started)
		return CM_ERR_STATE;
	if (srv->tls_cert_file) {
		char *cert = NULL, *key = NULL, *ca = NULL;
		size_t nkey = 0;
		int rc = cm_rpc_read_pem(srv->tls_cert_file, &cert, err, errlen);
		if (rc == CM_OK)
			rc = cm_read_secret_file(srv->tls_key_file, CM_RPC_PEM_MAX, &key, &nkey, err, errlen);
		if (rc == CM_OK && srv->tls_client_ca)
			rc = cm_rpc_read_pem(srv->tls_client_ca, &ca, err, errlen);
		if (rc != CM_OK) {
			if (key)
				cm_wipe(key, nkey);
			free(key);
			free(cert);
			return rc;
		}
		grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
		creds = grpc_ssl_server_credentials_create_ex(
			ca, &pair, 1,
			ca ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
		cm_wipe(key, nkey);
		free(key);
		free(cert);
		free(ca);
	} else {
		creds = grpc_insecure_server_credentials_create();
	}
	if (!creds) {
		snprintf(err, errlen, "cannot create server credentials (TLS files unusable?)");
		return CM_ERR_INVALID;
	}
	int bound = grpc_server_add_http2_port(srv->server, srv->listen, creds);
	grpc_server_credentials_release(creds);
	if (bound == 0) {
		snprintf(err, errlen, "cannot listen on %s (address in use or invalid)", srv->listen);
		return CM_ERR_IO;
	}
	/* metrics are registered here so that add() stays free of side effects */
	for (size_t i = 0; i < srv->nmethods; i++)
		method_metrics(srv, &srv->methods[i]);
	grpc_server_start(srv->server);
	srv->started = 1;
	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		for (int r = 0; r < srv->per_worker; r++)
			for (size_t k = 0; k < srv->nmethods; k++)
				accept_one(w, &srv->methods[k]);
		accept_one(w, NULL);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			snprintf(err, errlen, "cannot start RPC worker threads");
			srv->nworkers = i; /* shut down what started */
			cm_rpc_server_shutdown(srv, 0);
			return CM_ERR_NOMEM;
		}
	}
	*port = bound;
	return CM_OK;
}

void cm_rpc_server_shutdown(cm_rpc_server *srv, int grace_ms)
{
	if (!srv || !srv->started || srv->stopped)
		return;
	srv->stopped = 1;
	atomic_store(&srv->stopping, 1);
	int tag;
	grpc_server_shutdown_and_notify(srv->server, srv->ctl_cq, &tag);
	grpc_event ev = grpc_completion_queue_pluck(srv->ctl_cq, &tag, cm_rpc_deadline(grace_ms > 0 ? grace_ms : 1), NULL);
	if (ev.type == GRPC_QUEUE_TIMEOUT) {
		atomic_store(&srv->cancelling, 1);
		grpc_server_cancel_all_calls(srv->server);
		grpc_completion_queue_pluck(srv->ctl_cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	}
	pthread_mutex_lock(&srv->mu);
	while (srv->live > 0)
		pthread_cond_wait(&srv->cv, &srv->mu);
	pthread_mutex_unlock(&srv->mu);
	grpc_server_destroy(srv->server);
	srv->server = NULL;
	grpc_completion_queue_shutdown(srv->cq);
	for (int i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
}

void cm_rpc_server_free(cm_rpc_server *srv)
{
	if (!srv)
		return;
	if (srv->started) {
		cm_rpc_server_shutdown(srv, 0);
	} else if (srv->server) {
		/* never started, so no listener and no accepts: destroy directly */
		grpc_server_destroy(srv->server);
		if (srv->cq) {
			grpc_completion_queue_shutdown(srv->cq);
			while (grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
			       GRPC_QUEUE_SHUTDOWN)
				;
		}
	}
	if (srv->cq)
		grpc_completion_queue_destroy(srv->cq);
	if (srv->ctl_cq) {
		grpc_completion_queue_shutdown(srv->ctl_cq);
		grpc_completion_queue_destroy(srv->ctl_cq);
	}
	free(srv->workers);
	free(srv->methods);
	free(srv->listen);
	free(srv->tls_cert_file);
	free(srv->tls_key_file);
	free(srv->tls_client_ca);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cv);
	free(srv);
	grpc_shutdown();
}
