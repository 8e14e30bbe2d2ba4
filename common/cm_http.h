/* A small HTTP server over libmicrohttpd for what a service serves besides
 * gRPC (the gateway's console): one handler for every request, a bounded
 * request body, bounded connections, a thread per connection. */
#ifndef CM_HTTP_H
#define CM_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct cm_http cm_http;

typedef struct cm_http_request {
	const char *method;             /* "GET", "POST", ... */
	const char *url;                /* the path, without the query */
	const char *body;               /* NUL-terminated (may hold NULs before body_len) */
	size_t body_len;
	void *conn;                     /* for cm_http_query */
} cm_http_request;

typedef struct cm_http_response {
	unsigned status;                /* 200, 404, ... */
	const char *type;               /* Content-Type */
	const void *body;
	size_t len;
	int owned;                      /* body was malloc'd: the server frees it */
	const char *cache;              /* Cache-Control, or NULL */
} cm_http_response;

/* Fills resp; runs on the connection's thread (several at once, at most
 * conn_max). */
typedef void (*cm_http_fn)(void *arg, const cm_http_request *req, cm_http_response *resp);

typedef struct cm_http_opts {
	const char *bind;               /* numeric IPv4/IPv6 address or "localhost" */
	int port;                       /* 0 picks a free one */
	unsigned conn_max;              /* connections at once */
	unsigned timeout_s;             /* an idle connection is closed after this */
	size_t max_body;                /* a longer request body gets 413 */
} cm_http_opts;

/* bind:port into *ss (*len its size, *ipv6 set for an IPv6 address);
 * CM_ERR_INVALID for a name or a bad port. */
int cm_http_sockaddr(const char *bind, int port, struct sockaddr_storage *ss, socklen_t *len, int *ipv6);
/* Splits "host:port" (IPv6 as "[::1]:port") into host (room hostlen) and
 * *port; CM_ERR_INVALID when malformed. */
int cm_http_split(const char *hostport, char *host, size_t hostlen, int *port);

/* Starts serving; *bound_port receives the port. CM_ERR_IO when it cannot
 * listen. */
int cm_http_start(const cm_http_opts *o, cm_http_fn fn, void *arg, cm_http **out, int *bound_port);
/* Stops and frees; accepts NULL. */
void cm_http_stop(cm_http *h);
/* A query argument of the request (?key=value), or NULL. */
const char *cm_http_query(const cm_http_request *req, const char *key);
/* A request header (case-insensitive name), or NULL. */
const char *cm_http_header(const cm_http_request *req, const char *name);

#endif
