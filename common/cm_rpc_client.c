/* The gRPC core client: one channel per server shared by all threads, one
 * batch of six ops per unary call on a pluck queue of its own, and server
 * streams read one message at a time with a bounded wait. Method names are
 * registered with the channel once and cached. */
#include "cm_rpc_int.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_tls_id.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grpc/grpc_security.h>

#define METHOD_CACHE 64 /* registered method handles kept per client */

struct cached_method {
	char name[CM_RPC_METHOD_MAX];
	void *handle;
};

struct cm_rpc_client {
	char *target;
	grpc_channel *channel;
	pthread_mutex_t mu;
	struct cached_method methods[METHOD_CACHE];
	size_t nmethods;
	int expect;                      /* answers only from the server bound to node */
	uint8_t node[CM_PK_BYTES];
	grpc_metadata md[CM_RPC_CLIENT_MD_MAX]; /* sent with every call (cm_rpc_client_set_metadata) */
	size_t nmd;
};

struct cm_rpc_stream {
	cm_rpc_client *c;                /* outlives the stream; its expect is checked at the first message */
	int server_checked;
	grpc_completion_queue *cq;
	grpc_call *call;
	const ProtobufCMessageDescriptor *desc;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *recv_bb;
	int recv_pending, status_pending, got_init_md, ended;
	cm_rpc_status final;
	int tag_send, tag_recv, tag_status;
};

/* the process's client certificate (cm_rpc_client_set_identity): file
 * names only; the key is read for each channel and wiped at once */
static pthread_mutex_t id_mu = PTHREAD_MUTEX_INITIALIZER;
static char *id_cert, *id_key;

int cm_rpc_client_set_identity(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	char *c = NULL, *k = NULL;
	if (cert_file && key_file) {
		char *pem = NULL, *key = NULL;
		size_t nk = 0;
		int rc = cm_rpc_read_pem(cert_file, &pem, err, errlen);
		if (rc == CM_OK)
			rc = cm_read_secret_file(key_file, CM_RPC_PEM_MAX, &key, &nk, err, errlen);
		free(pem);
		if (key) {
			cm_wipe(key, nk);
			free(key);
		}
		if (rc != CM_OK)
			return rc;
		if (!(c = strdup(cert_file)) || !(k = strdup(key_file))) {
			free(c);
			return CM_ERR_NOMEM;
		}
	}
	pthread_mutex_lock(&id_mu);
	free(id_cert);
	free(id_key);
	id_cert = c;
	id_key = k;
	pthread_mutex_unlock(&id_mu);
	return CM_OK;
}

/* TLS channel credentials: the roots in ca_file and, when the process has an
 * identity, its certificate and key. NULL with err on failure. */
static grpc_channel_credentials *tls_creds(const char *ca_file, char *err, size_t errlen)
{
	char *ca_pem = NULL, *cert = NULL, *key = NULL;
	size_t nk = 0;
	grpc_channel_credentials *creds = NULL;
	if (cm_rpc_read_pem(ca_file, &ca_pem, err, errlen) != CM_OK)
		return NULL;
	pthread_mutex_lock(&id_mu);
	int rc = CM_OK;
	if (id_cert) {
		rc = cm_rpc_read_pem(id_cert, &cert, err, errlen);
		if (rc == CM_OK)
			rc = cm_read_secret_file(id_key, CM_RPC_PEM_MAX, &key, &nk, err, errlen);
	}
	pthread_mutex_unlock(&id_mu);
	if (rc == CM_OK) {
		grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
		creds = grpc_ssl_credentials_create(ca_pem, cert ? &pair : NULL, NULL, NULL);
		if (!creds)
			snprintf(err, errlen, "cannot create TLS credentials from %s", ca_file);
	}
	if (key) {
		cm_wipe(key, nk);
		free(key);
	}
	free(cert);
	free(ca_pem);
	return creds;
}

int cm_rpc_client_new(const cm_rpc_client_opts *o, cm_rpc_client **out, char *err, size_t errlen)
{
	if (!o->target || !*o->target) {
		snprintf(err, errlen, "no target address");
		return CM_ERR_INVALID;
	}
	cm_rpc_client *c = calloc(1, sizeof(*c));
	if (!c || !(c->target = strdup(o->target))) {
		free(c);
		return CM_ERR_NOMEM;
	}
	grpc_init();
	size_t max = o->max_message ? o->max_message : CM_RPC_MSG_MAX_DEFAULT;
	grpc_arg args[5];
	memset(args, 0, sizeof(args));
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = (int)(max > INT32_MAX ? INT32_MAX : max);
	args[1] = args[0];
	args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	/* a peer that was down (not started yet, restarting) is tried again
	 * within 100 ms to 1 s, not gRPC's default 1 s to 120 s: calls to a
	 * channel waiting out its backoff fail at once. (gRPC's minimum
	 * reconnect backoff stays at its default: it is also the time a
	 * connection attempt, TLS handshake included, may take.) */
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[2].value.integer = CM_RPC_RECONNECT_MIN_MS;
	args[3] = args[2];
	args[3].key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[3].value.integer = CM_RPC_RECONNECT_MAX_MS;
	size_t nargs = 4;
	if (o->tls_server_name && *o->tls_server_name) {
		args[4].type = GRPC_ARG_STRING;
		args[4].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
		args[4].value.string = (char *)o->tls_server_name;
		nargs = 5;
	}
	grpc_channel_args ca = {.num_args = nargs, .args = args};
	grpc_channel_credentials *creds;
	if (o->tls_ca_file && *o->tls_ca_file) {
		creds = tls_creds(o->tls_ca_file, err, errlen);
		if (!creds) {
			free(c->target);
			free(c);
			grpc_shutdown();
			return CM_ERR_INVALID;
		}
	} else {
		creds = grpc_insecure_credentials_create();
	}
	if (o->tls_expect_node && o->tls_ca_file && *o->tls_ca_file) {
		c->expect = 1;
		memcpy(c->node, o->tls_expect_node, CM_PK_BYTES);
	}
	c->channel = grpc_channel_create(c->target, creds, &ca);
	grpc_channel_credentials_release(creds);
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return CM_OK;
}

void cm_rpc_client_free(cm_rpc_client *c)
{
	if (!c)
		return;
	grpc_channel_destroy(c->channel);
	for (size_t i = 0; i < c->nmd; i++) {
		grpc_slice_unref(c->md[i].key);
		/* the value may be a credential: wiped (our copy; no call holds it after the channel went) */
		cm_wipe(GRPC_SLICE_START_PTR(c->md[i].value), GRPC_SLICE_LENGTH(c->md[i].value));
		grpc_slice_unref(c->md[i].value);
	}
	pthread_mutex_destroy(&c->mu);
	free(c->target);
	free(c);
	grpc_shutdown();
}

int cm_rpc_client_set_metadata(cm_rpc_client *c, const char *key, const char *value)
{
	if (c->nmd >= CM_RPC_CLIENT_MD_MAX)
		return CM_ERR_TOOBIG;
	c->md[c->nmd].key = grpc_slice_from_copied_string(key);
	c->md[c->nmd].value = grpc_slice_from_copied_string(value);
	c->nmd++;
	return CM_OK;
}

const char *cm_rpc_client_target(const cm_rpc_client *c)
{
	return c->target;
}

static grpc_call *create_call(cm_rpc_client *c, const char *method, grpc_completion_queue *cq,
			      gpr_timespec deadline)
{
	void *handle = NULL;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->nmethods; i++)
		if (strcmp(c->methods[i].name, method) == 0) {
			handle = c->methods[i].handle;
			break;
		}
	if (!handle && c->nmethods < METHOD_CACHE && strlen(method) < CM_RPC_METHOD_MAX) {
		handle = grpc_channel_register_call(c->channel, method, NULL, NULL);
		snprintf(c->methods[c->nmethods].name, CM_RPC_METHOD_MAX, "%s", method);
		c->methods[c->nmethods++].handle = handle;
	}
	pthread_mutex_unlock(&c->mu);
	if (handle)
		return grpc_channel_create_registered_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
							   handle, deadline, NULL);
	grpc_slice m = grpc_slice_from_copied_string(method);
	grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m,
						   NULL, deadline, NULL);
	grpc_slice_unref(m);
	return call;
}

static void local_status(cm_rpc_status *st, int code, const char *msg)
{
	if (st) {
		st->code = code;
		snprintf(st->message, sizeof(st->message), "%s", msg);
	}
}

static void destroy_cq(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
}

/* CM_OK when the server's certificate on call is bound to c->node; else
 * CM_ERR_PERM with an UNAUTHENTICATED status saying why. */
static int check_server(cm_rpc_client *c, grpc_call *call, cm_rpc_status *st)
{
	uint8_t pk[CM_PK_BYTES];
	char why[256], want[2 * CM_PK_BYTES + 1], got[2 * CM_PK_BYTES + 1];
	int rc = cm_rpc_node_of_call(call, pk, why, sizeof(why));
	if (rc == CM_OK && memcmp(pk, c->node, CM_PK_BYTES) == 0)
		return CM_OK;
	cm_hex(want, c->node, CM_PK_BYTES);
	if (rc == CM_OK) {
		cm_hex(got, pk, CM_PK_BYTES);
		snprintf(why, sizeof(why), "it is node %.16s", got);
	}
	if (st) {
		st->code = GRPC_STATUS_UNAUTHENTICATED;
		snprintf(st->message, sizeof(st->message), "tls: the server at %s is not node %.16s: %s", c->target,
			 want, why);
	}
	return CM_ERR_PERM;
}

/* 1 when a server took part in call over TLS (it presented a certificate):
 * a call that failed before reaching one (no connection) has none. */
static int server_presented(grpc_call *call)
{
	grpc_auth_context *ctx = grpc_call_auth_context(call);
	if (!ctx)
		return 0;
	grpc_auth_property_iterator it =
		grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
	const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
	int yes = p && p->value && p->value_length;
	grpc_auth_context_release(ctx);
	return yes;
}

int cm_rpc_unary(cm_rpc_client *c, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
		 int timeout_ms, cm_rpc_status *st)
{
	return cm_rpc_unary_watch(c, method, req, resp_desc, resp, timeout_ms, st, NULL, NULL, 0);
}

/* Waits for tag on cq; with watch, looks at it every watch_ms and cancels
 * the call (CANCELLED, with the watch's reason) once it says to give up. */
static void wait_call(grpc_completion_queue *cq, grpc_call *call, void *tag, int (*watch)(void *, char *, size_t),
		      void *arg, int watch_ms)
{
	int cancelled = 0;
	for (;;) {
		gpr_timespec until = watch && !cancelled ? cm_rpc_deadline(watch_ms > 0 ? watch_ms : 100)
							 : gpr_inf_future(GPR_CLOCK_REALTIME);
		grpc_event ev = grpc_completion_queue_pluck(cq, tag, until, NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			return;
		char why[256] = "";
		if (!cancelled && watch(arg, why, sizeof(why))) {
			grpc_call_cancel_with_status(call, GRPC_STATUS_CANCELLED, why[0] ? why : "given up by the caller",
						     NULL);
			cancelled = 1;
		}
	}
}

int cm_rpc_unary_watch(cm_rpc_client *c, const char *method, const ProtobufCMessage *req,
		       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int timeout_ms,
		       cm_rpc_status *st, int (*watch)(void *arg, char *why, size_t whylen), void *arg, int watch_ms)
{
	grpc_byte_buffer *send_bb = cm_rpc_pack(req);
	if (!send_bb) {
		local_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return CM_ERR_NOMEM;
	}
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_call *call = create_call(c, method, cq, cm_rpc_deadline(timeout_ms));
	grpc_metadata_array init_md, trail_md;
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	grpc_byte_buffer *recv_bb = NULL;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = c->nmd;
	ops[0].data.send_initial_metadata.metadata = c->nmd ? c->md : NULL;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	int tag, rc;
	if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
		local_status(st, GRPC_STATUS_INTERNAL, "cannot start the call");
		rc = CM_ERR_INTERNAL;
	} else {
		wait_call(cq, call, &tag, watch, arg, watch_ms);
		cm_rpc_status_set(st, status, details);
		rc = cm_rpc_code_to_err(status);
		/* an answer, or a refusal, from a server that is not the node
		 * expected is not passed on as that node's */
		if (c->expect && (rc == CM_OK || server_presented(call)) && check_server(c, call, st) != CM_OK)
			rc = CM_ERR_PERM;
		if (rc == CM_OK) {
			ProtobufCMessage *m = recv_bb ? cm_rpc_unpack(resp_desc, recv_bb, NULL) : NULL;
			if (!m) {
				local_status(st, GRPC_STATUS_INTERNAL,
					     recv_bb ? "cannot decode the response" : "no response message");
				rc = CM_ERR_INTERNAL;
			} else {
				*resp = m;
			}
		}
	}
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	if (recv_bb)
		grpc_byte_buffer_destroy(recv_bb);
	grpc_byte_buffer_destroy(send_bb);
	grpc_call_unref(call);
	destroy_cq(cq);
	return rc;
}

int cm_rpc_stream_open(cm_rpc_client *c, const char *method, const ProtobufCMessage *req,
		       const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
		       cm_rpc_stream **out, cm_rpc_status *st)
{
	cm_rpc_stream *s = calloc(1, sizeof(*s));
	grpc_byte_buffer *bb = cm_rpc_pack(req);
	if (!s || !bb) {
		free(s);
		if (bb)
			grpc_byte_buffer_destroy(bb);
		local_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return CM_ERR_NOMEM;
	}
	s->desc = resp_desc;
	s->c = c;
	s->cq = grpc_completion_queue_create_for_pluck(NULL);
	s->call = create_call(c, method, s->cq, cm_rpc_deadline(timeout_ms));
	s->details = grpc_empty_slice();
	grpc_metadata_array_init(&s->init_md);
	grpc_metadata_array_init(&s->trail_md);
	grpc_op ops[3];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = c->nmd;
	ops[0].data.send_initial_metadata.metadata = c->nmd ? c->md : NULL;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	grpc_op sop;
	memset(&sop, 0, sizeof(sop));
	sop.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	sop.data.recv_status_on_client.trailing_metadata = &s->trail_md;
	sop.data.recv_status_on_client.status = &s->status;
	sop.data.recv_status_on_client.status_details = &s->details;
	int ok = grpc_call_start_batch(s->call, ops, 3, &s->tag_send, NULL) == GRPC_CALL_OK;
	if (ok)
		grpc_completion_queue_pluck(s->cq, &s->tag_send, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_byte_buffer_destroy(bb);
	if (ok && grpc_call_start_batch(s->call, &sop, 1, &s->tag_status, NULL) == GRPC_CALL_OK)
		s->status_pending = 1;
	if (!s->status_pending) {
		local_status(st, GRPC_STATUS_INTERNAL, "cannot start the stream");
		cm_rpc_stream_close(s);
		return CM_ERR_INTERNAL;
	}
	*out = s;
	return CM_OK;
}

/* Waits for the final status once the server ended the stream. */
static int stream_end(cm_rpc_stream *s, cm_rpc_status *st)
{
	if (s->status_pending) {
		grpc_completion_queue_pluck(s->cq, &s->tag_status, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		s->status_pending = 0;
		cm_rpc_status_set(&s->final, s->status, s->details);
	}
	s->ended = 1;
	if (st)
		*st = s->final;
	int rc = cm_rpc_code_to_err(s->final.code);
	return rc == CM_OK ? CM_ERR_STATE : rc;
}

int cm_rpc_stream_next(cm_rpc_stream *s, ProtobufCMessage **msg, int wait_ms, cm_rpc_status *st)
{
	if (s->ended)
		return stream_end(s, st);
	if (!s->recv_pending) {
		grpc_op ops[2];
		size_t n = 0;
		memset(ops, 0, sizeof(ops));
		if (!s->got_init_md) {
			ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
			ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
			s->got_init_md = 1;
		}
		ops[n].op = GRPC_OP_RECV_MESSAGE;
		ops[n++].data.recv_message.recv_message = &s->recv_bb;
		if (grpc_call_start_batch(s->call, ops, n, &s->tag_recv, NULL) != GRPC_CALL_OK)
			return stream_end(s, st);
		s->recv_pending = 1;
	}
	gpr_timespec until = wait_ms < 0 ? gpr_inf_future(GPR_CLOCK_REALTIME) : cm_rpc_deadline(wait_ms > 0 ? wait_ms : 1);
	grpc_event ev = grpc_completion_queue_pluck(s->cq, &s->tag_recv, until, NULL);
	if (ev.type == GRPC_QUEUE_TIMEOUT)
		return 0;
	s->recv_pending = 0;
	if (!ev.success || !s->recv_bb)
		return stream_end(s, st);
	if (s->c->expect && !s->server_checked) {
		/* nothing from a server that is not the node expected is handed on */
		cm_rpc_status why;
		if (check_server(s->c, s->call, &why) != CM_OK) {
			grpc_byte_buffer_destroy(s->recv_bb);
			s->recv_bb = NULL;
			grpc_call_cancel(s->call, NULL);
			stream_end(s, NULL);
			s->final = why;
			if (st)
				*st = s->final;
			return CM_ERR_PERM;
		}
		s->server_checked = 1;
	}
	ProtobufCMessage *m = cm_rpc_unpack(s->desc, s->recv_bb, NULL);
	grpc_byte_buffer_destroy(s->recv_bb);
	s->recv_bb = NULL;
	if (!m) {
		grpc_call_cancel(s->call, NULL);
		stream_end(s, NULL);
		local_status(&s->final, GRPC_STATUS_INTERNAL, "cannot decode a stream message");
		if (st)
			*st = s->final;
		return CM_ERR_INTERNAL;
	}
	*msg = m;
	return 1;
}

void cm_rpc_stream_cancel(cm_rpc_stream *s)
{
	grpc_call_cancel(s->call, NULL);
}

void cm_rpc_stream_close(cm_rpc_stream *s)
{
	if (!s)
		return;
	if (s->call) {
		if (s->status_pending || s->recv_pending)
			grpc_call_cancel(s->call, NULL);
		if (s->recv_pending)
			grpc_completion_queue_pluck(s->cq, &s->tag_recv, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (s->status_pending)
			grpc_completion_queue_pluck(s->cq, &s->tag_status, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		grpc_call_unref(s->call);
	}
	if (s->recv_bb)
		grpc_byte_buffer_destroy(s->recv_bb);
	grpc_slice_unref(s->details);
	grpc_metadata_array_destroy(&s->init_md);
	grpc_metadata_array_destroy(&s->trail_md);
	destroy_cq(s->cq);
	free(s);
}
