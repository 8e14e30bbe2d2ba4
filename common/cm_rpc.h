/* The RPC layer every muri process uses: a server and a client over gRPC
 * core (C) carrying protobuf-c messages. The server runs worker threads, each
 * with its own completion queue, dispatches by full method name to handlers
 * that receive the decoded request, and serves unary and server-streaming
 * calls; the client makes unary calls and reads server streams. */
#ifndef CM_RPC_H
#define CM_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "cm_metrics.h"

#define CM_RPC_MSG_MAX_DEFAULT (128u << 20) /* 10k x 1536-d floats fit (61 MiB + framing) */
#define CM_RPC_STATUS_MAX 512               /* bytes of a status message we keep */
#define CM_RPC_METHOD_MAX 160               /* bytes of a full method name */

typedef struct cm_rpc_server cm_rpc_server;
typedef struct cm_rpc_call cm_rpc_call;
typedef struct cm_rpc_client cm_rpc_client;
typedef struct cm_rpc_stream cm_rpc_stream;

/* A gRPC status: code (grpc_status_code) and message. */
typedef struct cm_rpc_status {
	int code;
	char message[CM_RPC_STATUS_MAX];
} cm_rpc_status;

/* ---- server ---------------------------------------------------------- */

/* A unary handler. req is the decoded request, owned by the call. On success
 * it stores the response in *resp (allocated with cm_rpc_alloc or otherwise
 * alive until the handler's call ends) and returns GRPC_STATUS_OK; on failure
 * it returns cm_rpc_fail(call, code, ...). Runs on a worker thread. */
typedef int (*cm_rpc_unary_fn)(void *arg, cm_rpc_call *call, const ProtobufCMessage *req,
			       ProtobufCMessage **resp);

/* A server-streaming handler: runs on a thread of its own, sends with
 * cm_rpc_stream_send and returns the final status as a unary handler does. */
typedef int (*cm_rpc_stream_fn)(void *arg, cm_rpc_call *call, const ProtobufCMessage *req);

/* One method of a service: its name within the service ("Search") and one of
 * the two handler kinds, matching the .proto's declaration. */
typedef struct cm_rpc_handler {
	const char *method;
	cm_rpc_unary_fn unary;
	cm_rpc_stream_fn stream;
} cm_rpc_handler;

/* Reconnect backoff of every client channel (ms). */
#define CM_RPC_RECONNECT_MIN_MS 100
#define CM_RPC_RECONNECT_MAX_MS 1000

typedef struct cm_rpc_server_opts {
	const char *listen;        /* "host:port"; port 0 picks a free one */
	int workers;               /* worker threads, >= 1 */
	int requests_per_worker;   /* outstanding accepts per method and worker, >= 1 */
	size_t max_message;        /* bytes, both directions; 0 = CM_RPC_MSG_MAX_DEFAULT */
	int max_streams;           /* concurrent server streams; more get RESOURCE_EXHAUSTED */
	int conn_streams;          /* concurrent calls per connection (HTTP/2 streams); 0 = gRPC's default */
	int idle_ms;               /* a connection with no call for this long is closed; 0 = never */
	int age_ms;                /* a connection is asked to go away after this long, and closed
				    * age_grace_ms later with whatever it still has open; 0 = never */
	int age_grace_ms;
	size_t memory;             /* bytes the transport may hold for all connections; 0 = unbounded */
	size_t call_memory;        /* bytes one call may hold decoded (its request as protobuf-c
				    * structs, which a message of many empty submessages makes
				    * ~30x its wire size) and its response; past it the call
				    * fails RESOURCE_EXHAUSTED; 0 = 8 x max_message */
	const char *tls_cert_file; /* PEM certificate chain; NULL for plaintext */
	const char *tls_key_file;  /* PEM private key, with tls_cert_file */
	cm_metrics *metrics;       /* optional: per-method call counts and latencies */
} cm_rpc_server_opts;

/* Mutual TLS (before start, on a TLS server): the server asks every caller
 * for a certificate and verifies one that is given against the PEM roots in
 * ca_file; a caller without one is still served (clients of public
 * methods), and handlers that need to know who calls read the peer's node
 * key (cm_rpc_peer_node). */
int cm_rpc_server_verify_clients(cm_rpc_server *srv, const char *ca_file, char *err, size_t errlen);

/* Creates a server that is not yet listening. On failure returns a negative
 * code and writes why into err. The caller owns *out (cm_rpc_server_free). */
int cm_rpc_server_new(const cm_rpc_server_opts *opts, cm_rpc_server **out, char *err,
		      size_t errlen);

/* Adds the handled methods of one protobuf-c service (its generated
 * descriptor gives names and message types). Methods without a handler are
 * answered UNIMPLEMENTED. arg is passed to every handler. Before start only. */
int cm_rpc_server_add(cm_rpc_server *srv, const ProtobufCServiceDescriptor *svc,
		      const cm_rpc_handler *handlers, size_t nhandlers, void *arg);

/* Binds and starts the workers; writes the bound port to *port. */
int cm_rpc_server_start(cm_rpc_server *srv, int *port, char *err, size_t errlen);

/* Stops accepting calls; calls in flight have grace_ms to finish, then are
 * cancelled; returns once every call and stream thread has ended. */
void cm_rpc_server_shutdown(cm_rpc_server *srv, int grace_ms);

/* Shuts down if needed and frees the server. Accepts NULL. */
void cm_rpc_server_free(cm_rpc_server *srv);

/* Zeroed memory that lives until the call ends; NULL when out of memory
 * (handlers then fail with RESOURCE_EXHAUSTED). */
void *cm_rpc_alloc(cm_rpc_call *call, size_t n);
char *cm_rpc_strdup(cm_rpc_call *call, const char *s);
/* The call's arena itself, for libraries that allocate into a cm_arena. */
struct cm_arena;
struct cm_arena *cm_rpc_arena(cm_rpc_call *call);
/* Runs fn(arg) when the call ends (after its response was sent), for
 * responses that live outside the call's memory. At most 8 per call;
 * CM_ERR_TOOBIG beyond (fn then runs at once). */
int cm_rpc_on_done(cm_rpc_call *call, void (*fn)(void *), void *arg);
/* Sets the call's failure status and returns code, for `return cm_rpc_fail(...)`. */
int cm_rpc_fail(cm_rpc_call *call, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Milliseconds left until the client's deadline (INT64_MAX when none). */
int64_t cm_rpc_deadline_left_ms(const cm_rpc_call *call);
/* 1 once the call should end: the deadline passed, the client cancelled (a
 * stream), or the server is stopping (streams at once; unary calls once the
 * grace period is over). Long handlers poll it. */
int cm_rpc_cancelled(cm_rpc_call *call);
/* The full method name ("/muri.v1.Indexer/Search"). */
const char *cm_rpc_method(const cm_rpc_call *call);
/* ---- who calls (cm_rpc_peer.c) ---- */
/* 1 when the call's server verifies callers' certificates
 * (cm_rpc_server_verify_clients): then role checks use cm_rpc_peer_node. */
int cm_rpc_peer_checked(const cm_rpc_call *call);
/* The ed25519 node key the caller's TLS certificate is bound to
 * (cm_tls_id.h): CM_OK with pk; CM_ERR_NOTFOUND when the caller presented
 * no certificate; CM_ERR_INVALID / CM_ERR_VERIFY when its certificate names
 * no node key or a wrong one. why says which, for the status message. */
int cm_rpc_peer_node(cm_rpc_call *call, uint8_t pk[32], char *why, size_t whylen);

/* The value of the request's metadata entry key (lower case, as gRPC
 * sends it) as a NUL-terminated copy in call memory; NULL when absent,
 * longer than CM_RPC_METADATA_MAX, binary (holds a NUL) or out of memory. */
#define CM_RPC_METADATA_MAX 4096
const char *cm_rpc_metadata(cm_rpc_call *call, const char *key);
/* The request message's bytes as received (a copy in call memory);
 * CM_ERR_NOTFOUND when the call has none, CM_ERR_NOMEM. */
int cm_rpc_request_bytes(cm_rpc_call *call, const uint8_t **p, size_t *n);
/* The request message's size in bytes as received (0: none). */
size_t cm_rpc_request_size(const cm_rpc_call *call);
/* Adds a trailing metadata entry (lower-case key, text value) sent with the
 * call's status, such as retry-after-ms on a refusal; CM_ERR_TOOBIG past
 * CM_RPC_TRAILERS_MAX. */
#define CM_RPC_TRAILERS_MAX 4
int cm_rpc_set_trailer(cm_rpc_call *call, const char *key, const char *value);
/* Sends one message on a server stream and waits until gRPC took it.
 * CM_OK, or CM_ERR_CANCELLED when the stream is gone. */
int cm_rpc_stream_send(cm_rpc_call *call, const ProtobufCMessage *msg);

/* ---- client ---------------------------------------------------------- */

typedef struct cm_rpc_client_opts {
	const char *target;          /* "host:port" */
	size_t max_message;          /* 0 = CM_RPC_MSG_MAX_DEFAULT */
	const char *tls_ca_file;     /* PEM roots to verify the server; NULL for plaintext */
	const char *tls_server_name; /* name to check in the server's certificate; NULL = host of target */
	const uint8_t *tls_expect_node; /* with TLS: 32 bytes, the node key the server's certificate must be
					 * bound to (cm_tls_id.h); an answer from another fails
					 * UNAUTHENTICATED (CM_ERR_PERM), as does its refusal
					 * of a call, and a server stream
					 * from another ends at its first message, unread.
					 * NULL: any */
} cm_rpc_client_opts;

/* This process's TLS identity as a client: every channel made with a
 * tls_ca_file afterwards presents this certificate (mutual TLS), so peers
 * know which node key calls (cm_tls_id.h). The key file must not be
 * readable by group or others. Called once at start (cm_service.c) by
 * services that serve TLS; NULLs clear it. */
int cm_rpc_client_set_identity(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* A channel to one server, shared by any number of threads. The caller owns
 * *out (cm_rpc_client_free). */
int cm_rpc_client_new(const cm_rpc_client_opts *opts, cm_rpc_client **out, char *err,
		      size_t errlen);
void cm_rpc_client_free(cm_rpc_client *c);
const char *cm_rpc_client_target(const cm_rpc_client *c);
/* Adds a metadata entry (lower-case key) that every later call on c sends,
 * such as a credential ("authorization", "Bearer ..."). Before the client is
 * shared between threads; at most CM_RPC_CLIENT_MD_MAX entries. */
#define CM_RPC_CLIENT_MD_MAX 4
int cm_rpc_client_set_metadata(cm_rpc_client *c, const char *key, const char *value);

/* One unary call of the full method name with a deadline timeout_ms from now
 * (0: none). Returns CM_OK with *resp set (the caller frees it with
 * protobuf_c_message_free_unpacked(*resp, NULL)), or a negative code with
 * the gRPC status in *st (st may be NULL). */
int cm_rpc_unary(cm_rpc_client *c, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
		 int timeout_ms, cm_rpc_status *st);

/* cm_rpc_unary that asks watch(arg, why, whylen) every watch_ms while it
 * waits for the answer, and cancels the call once watch returns nonzero:
 * the call then ends CANCELLED with the reason watch wrote in why (when
 * the server's answer did not come first). For a caller that learns, while
 * it waits, that the answer no longer matters (the server it asked was
 * replaced). watch NULL: cm_rpc_unary. */
int cm_rpc_unary_watch(cm_rpc_client *c, const char *method, const ProtobufCMessage *req,
		       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int timeout_ms,
		       cm_rpc_status *st, int (*watch)(void *arg, char *why, size_t whylen), void *arg, int watch_ms);

/* Opens a server stream. The caller owns *out and ends it with
 * cm_rpc_stream_close, before freeing c. timeout_ms 0: no deadline. */
int cm_rpc_stream_open(cm_rpc_client *c, const char *method, const ProtobufCMessage *req,
		       const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
		       cm_rpc_stream **out, cm_rpc_status *st);
/* Waits up to wait_ms (< 0: forever) for the next message. Returns 1 with
 * *msg set (caller frees as for cm_rpc_unary), 0 when nothing came in
 * wait_ms, or a negative code when the stream ended: CM_ERR_STATE with
 * st->code == GRPC_STATUS_OK when the server finished normally. */
int cm_rpc_stream_next(cm_rpc_stream *s, ProtobufCMessage **msg, int wait_ms, cm_rpc_status *st);
/* Cancels the stream if it is still open (any thread). */
void cm_rpc_stream_cancel(cm_rpc_stream *s);
/* Cancels if needed and frees. Accepts NULL. */
void cm_rpc_stream_close(cm_rpc_stream *s);

/* A deep copy of m (by packing and unpacking it) that the caller owns and
 * frees with protobuf_c_message_free_unpacked(copy, NULL); NULL when out of
 * memory. */
ProtobufCMessage *cm_pb_dup(const ProtobufCMessage *m);

/* Maps a gRPC status code to an enum cm_err code (OK -> CM_OK). */
int cm_rpc_code_to_err(int code);
/* The canonical name of a gRPC status code ("DEADLINE_EXCEEDED"). */
const char *cm_rpc_code_name(int code);

#endif
