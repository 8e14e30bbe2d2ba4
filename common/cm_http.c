/* The HTTP server of cm_http.h: libmicrohttpd with its internal thread; a
 * request's body is gathered (up to max_body) before the handler runs, on
 * the connection's own thread. */
#include "cm_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"

struct cm_http {
	struct MHD_Daemon *d;
	cm_http_fn fn;
	void *arg;
	size_t max_body;
};

/* What one request gathered so far. */
struct pending {
	char *body;
	size_t len, cap;
	int too_big;
};

int cm_http_sockaddr(const char *bind, int port, struct sockaddr_storage *ss, socklen_t *len, int *ipv6)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (!bind || port < 0 || port > 65535)
		return CM_ERR_INVALID;
	if (strcmp(bind, "localhost") == 0)
		bind = "127.0.0.1";
	memset(ss, 0, sizeof(*ss));
	*ipv6 = 0;
	if (inet_pton(AF_INET, bind, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, bind, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		*ipv6 = 1;
	} else {
		return CM_ERR_INVALID;
	}
	return CM_OK;
}

int cm_http_split(const char *hp, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = hp;
	size_t n;
	if (!hp || !*hp)
		return CM_ERR_INVALID;
	if (*hp == '[') {
		const char *close = strchr(hp, ']');
		if (!close || close[1] != ':')
			return CM_ERR_INVALID;
		h = hp + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon)
			return CM_ERR_INVALID;
		n = (size_t)(colon - hp);
	}
	if (n == 0 || n >= hostlen)
		return CM_ERR_INVALID;
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p < 0 || p > 65535)
		return CM_ERR_INVALID;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (int)p;
	return CM_OK;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, const cm_http_response *r)
{
	struct MHD_Response *m = MHD_create_response_from_buffer(
		r->len, (void *)r->body, r->owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!m) {
		if (r->owned)
			free((void *)r->body);
		return MHD_NO;
	}
	MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, r->type ? r->type : "text/plain; charset=utf-8");
	MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
	if (r->cache)
		MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, r->cache);
	enum MHD_Result ret = MHD_queue_response(conn, r->status, m);
	MHD_destroy_response(m);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	cm_http *h = cls;
	struct pending *p = *con_cls;
	(void)version;
	if (!p) { /* the first call: headers only */
		p = calloc(1, sizeof(*p));
		if (!p)
			return MHD_NO;
		*con_cls = p;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (p->too_big || p->len + n > h->max_body) {
			p->too_big = 1;
			return MHD_YES;
		}
		if (p->len + n + 1 > p->cap) {
			size_t cap = (p->len + n + 1) * 2;
			if (cap > h->max_body + 1)
				cap = h->max_body + 1;
			char *b = realloc(p->body, cap);
			if (!b)
				return MHD_NO;
			p->body = b;
			p->cap = cap;
		}
		memcpy(p->body + p->len, upload, n);
		p->len += n;
		p->body[p->len] = '\0';
		return MHD_YES;
	}
	cm_http_response r = {.status = 500, .body = "", .len = 0};
	if (p->too_big) {
		static const char msg[] = "{\"error\":\"request body too large\"}";
		r = (cm_http_response){.status = 413, .type = "application/json", .body = msg, .len = sizeof(msg) - 1};
	} else {
		cm_http_request req = {.method = method, .url = url, .body = p->body ? p->body : "", .body_len = p->len,
				       .conn = conn};
		h->fn(h->arg, &req, &r);
	}
	return send_response(conn, &r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct pending *p = *con_cls;
	if (p) {
		free(p->body);
		free(p);
		*con_cls = NULL;
	}
}

int cm_http_start(const cm_http_opts *o, cm_http_fn fn, void *arg, cm_http **out, int *bound_port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int ipv6;
	if (!o || !fn || cm_http_sockaddr(o->bind, o->port, &ss, &len, &ipv6) != CM_OK)
		return CM_ERR_INVALID;
	cm_http *h = calloc(1, sizeof(*h));
	if (!h)
		return CM_ERR_NOMEM;
	h->fn = fn;
	h->arg = arg;
	h->max_body = o->max_body;
	/* a thread per connection (at most conn_max): a slow request does not hold up the others */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | (ipv6 ? MHD_USE_IPv6 : 0);
	h->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR,
				(struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, o->conn_max,
				MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed,
				NULL, MHD_OPTION_END);
	if (!h->d) {
		free(h);
		return CM_ERR_IO;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || info->port == 0) {
		MHD_stop_daemon(h->d);
		free(h);
		return CM_ERR_IO;
	}
	if (bound_port)
		*bound_port = info->port;
	*out = h;
	return CM_OK;
}

void cm_http_stop(cm_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}

const char *cm_http_query(const cm_http_request *req, const char *key)
{
	return MHD_lookup_connection_value((struct MHD_Connection *)req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *cm_http_header(const cm_http_request *req, const char *name)
{
	return MHD_lookup_connection_value((struct MHD_Connection *)req->conn, MHD_HEADER_KIND, name);
}
