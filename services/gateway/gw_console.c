/* The console's HTTP side (cm_http): the embedded page at / and its assets,
 * and the read-only JSON endpoints of gw_console_api.c, gw_console_chain.c
 * and gw_console_search.c under /api. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_err.h"
#include "cm_http.h"
#include "cm_log.h"
#include "gw_console.h"
#include "gw_console_assets.h"

struct gw_console {
	cm_http *http;
	gw_console_api api;
};

static void json_reply(cm_http_response *r, unsigned status, char *buf, size_t len)
{
	r->status = status;
	r->type = "application/json";
	r->body = buf;
	r->len = len;
	r->owned = 1;
	r->cache = "no-store";
}

static void text_reply(cm_http_response *r, unsigned status, const char *msg)
{
	r->status = status;
	r->type = "application/json";
	r->body = msg;
	r->len = strlen(msg);
	r->owned = 0;
}

static int is_get(const cm_http_request *q)
{
	return strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0;
}

static void handle(void *arg, const cm_http_request *q, cm_http_response *r)
{
	gw_console *c = arg;
	const char *url = q->url;
	if (strncmp(url, "/api/", 5) != 0) {
		if (!is_get(q))
			{
		text_reply(r, 405, "{\"error\":\"method not allowed\"}");
		return;
	}
		if (strcmp(url, "/") == 0)
			url = "/index.html";
		for (unsigned i = 0; i < gw_console_nassets; i++)
			if (strcmp(gw_console_assets[i].path, url) == 0) {
				r->status = 200;
				r->type = gw_console_assets[i].type;
				r->body = gw_console_assets[i].data;
				r->len = gw_console_assets[i].len;
				r->cache = "no-cache";
				return;
			}
		{
		text_reply(r, 404, "{\"error\":\"not found\"}");
		return;
	}
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		{
		text_reply(r, 500, "{\"error\":\"out of memory\"}");
		return;
	}
	unsigned status;
	const char *rest = url + 5;
	if (strcmp(rest, "search") == 0) {
		/* a JSON body only: another site's page cannot send one without a
		 * CORS preflight, which the console never allows */
		const char *ct = cm_http_header(q, "Content-Type");
		if (strcmp(q->method, "POST") != 0) {
			status = 405;
		} else if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
			gw_api_error(f, "Content-Type: expected application/json");
			status = 415;
		} else {
			status = gw_api_search(&c->api, q->body, f);
		}
	} else if (!is_get(q)) {
		status = 405;
	} else if (strcmp(rest, "network") == 0) {
		status = gw_api_network(&c->api, f);
	} else if (strcmp(rest, "collections") == 0) {
		status = gw_api_collections(&c->api, f);
	} else if (strncmp(rest, "collections/", 12) == 0 && strstr(rest + 12, "/")) {
		/* /api/collections/<name>/records (a name holds no slash) */
		const char *name = rest + 12, *slash = strchr(name, '/');
		char nm[GW_NAME_MAX + 1];
		if (strcmp(slash, "/records") != 0 || (size_t)(slash - name) > GW_NAME_MAX) {
			status = 404;
		} else {
			memcpy(nm, name, (size_t)(slash - name));
			nm[slash - name] = '\0';
			status = gw_api_records(&c->api, nm, cm_http_query(q, "cursor"), cm_http_query(q, "limit"),
						cm_http_query(q, "vectors"), cm_http_query(q, "filter"), f);
		}
	} else if (strncmp(rest, "collections/", 12) == 0) {
		status = gw_api_collection(&c->api, rest + 12, f);
	} else if (strcmp(rest, "blocks") == 0) {
		status = gw_api_blocks(&c->api, cm_http_query(q, "from"), cm_http_query(q, "limit"), f);
	} else if (strncmp(rest, "nodes/", 6) == 0) {
		status = gw_api_node(&c->api, rest + 6, f);
	} else {
		status = 404;
	}
	if (status == 405)
		gw_api_error(f, "method not allowed");
	else if (status == 404 && ftell(f) == 0)
		gw_api_error(f, "not found");
	if (fclose(f) != 0) {
		free(buf);
		{
		text_reply(r, 500, "{\"error\":\"out of memory\"}");
		return;
	}
	}
	json_reply(r, status, buf, len);
}

int gw_console_start(gw_ctx *g, const char *listen, int rpc_port, gw_console **out, int *port, char *err,
		     size_t errlen)
{
	char host[GW_ADDR_MAX];
	int p;
	if (cm_http_split(listen, host, sizeof(host), &p) != CM_OK) {
		snprintf(err, errlen, "console_listen: expected host:port, got \"%s\"", listen);
		return CM_ERR_INVALID;
	}
	gw_console *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "console: out of memory");
		return CM_ERR_NOMEM;
	}
	c->api.g = g;
	c->api.rpc_port = rpc_port;
	if (g->has_node_pk) {
		memcpy(c->api.self_pk, g->node_pk, CM_PK_BYTES);
		c->api.has_self_pk = 1;
	}
	char target[64];
	snprintf(target, sizeof(target), "127.0.0.1:%d", rpc_port);
	const char *ca = g->cfg->tls_ca;
	cm_rpc_client_opts o = {.target = target, .max_message = (size_t)g->cfg->base.rpc_max_message,
				.tls_ca_file = g->cfg->base.tls_cert && g->cfg->base.tls_cert[0] && ca && ca[0] ? ca : NULL};
	int rc = cm_rpc_client_new(&o, &c->api.self, err, errlen);
	if (rc == CM_OK)
		rc = gw_console_poll_start(g, (int)g->cfg->console_poll_ms, &c->api.poll, err, errlen);
	if (rc == CM_OK) {
		cm_http_opts ho = {.bind = host, .port = p, .conn_max = (unsigned)g->cfg->console_connections,
				   .timeout_s = GW_CONSOLE_HTTP_TIMEOUT_S, .max_body = (size_t)g->cfg->console_max_body};
		rc = cm_http_start(&ho, handle, c, &c->http, port);
		if (rc != CM_OK)
			snprintf(err, errlen, "console_listen: cannot listen on %s", listen);
	}
	if (rc != CM_OK) {
		gw_console_free(c);
		return rc;
	}
	*out = c;
	return CM_OK;
}

void gw_console_free(gw_console *c)
{
	if (!c)
		return;
	cm_http_stop(c->http);
	gw_console_poll_free(c->api.poll);
	cm_rpc_client_free(c->api.self);
	free(c);
}
