/* The console's HTTP side (cm_http): the embedded page at / and its assets,
 * and the read-only JSON endpoints of gw_console_api.c, gw_console_chain.c
 * and gw_console_search.c under /api. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_api_key.h"
#include "cm_crypto.h"
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

int gw_console_may_read(gw_console_api *a, const gw_console_who *who, const char *collection, FILE *f)
{
	gw_coll *m = NULL;
	if (who->c.open || gw_auth_visible(a->g->auth, &who->c, collection))
		return 1;
	if (gw_chain_get(a->g->chain, collection, &m) != CM_OK)
		return 1; /* no such collection: the endpoint answers 404 (names are public on chain) */
	gw_coll_free(m);
	char msg[GW_NAME_MAX + 160];
	snprintf(msg, sizeof(msg), "collection \"%s\": %s", collection,
		 who->c.anonymous ? "not public; send Authorization: Bearer <API key>"
				  : "the API key may not read it (not its account's, not shared with it, or outside "
				    "the key's collections)");
	gw_api_error(f, msg);
	return 0;
}

cm_rpc_client *gw_console_client(gw_console_api *a, const gw_console_who *who, char *err, size_t errlen)
{
	if (!who->key)
		return a->self;
	cm_rpc_client *c = NULL;
	cm_rpc_client_opts o = {.target = a->target, .max_message = (size_t)a->g->cfg->base.rpc_max_message,
				.tls_ca_file = a->tls_ca};
	char bearer[CM_API_KEY_MAX + 8];
	snprintf(bearer, sizeof(bearer), "Bearer %s", who->key);
	if (cm_rpc_client_new(&o, &c, err, errlen) != CM_OK ||
	    cm_rpc_client_set_metadata(c, "authorization", bearer) != CM_OK) {
		if (c)
			snprintf(err, errlen, "console: cannot reach the gateway's own VectorStore");
		cm_rpc_client_free(c);
		c = NULL;
	}
	cm_wipe(bearer, sizeof(bearer));
	return c;
}

void gw_console_client_done(gw_console_api *a, cm_rpc_client *c)
{
	if (c && c != a->self)
		cm_rpc_client_free(c);
}

/* Who asks (auth on): 0 with *who set, else the HTTP status with the JSON
 * error written. The key is copied to key (wiped by the caller) and the
 * request's copy of the header is wiped. */
static unsigned authenticate(gw_console *c, const cm_http_request *q, gw_console_who *who, char *key,
			     size_t keylen, FILE *f)
{
	memset(who, 0, sizeof(*who));
	if (!gw_auth_enabled(c->api.g->auth)) {
		who->c.open = 1;
		who->c.scope = GW_NEED_ADMIN;
		return 0;
	}
	const char *h = cm_http_header(q, "Authorization");
	if (!h || !h[0]) {
		if (c->api.g->cfg->auth_anonymous_reads) {
			who->c.anonymous = 1;
			return 0;
		}
		gw_api_error(f, "Authorization: missing (this gateway needs an API key: send Authorization: Bearer "
				"<API key>)");
		return 401;
	}
	size_t n = strlen(h);
	unsigned status = 0;
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		gw_api_error(f, "Authorization: expected \"Bearer <API key>\"");
		status = 401;
	} else if (n - 7 >= keylen) {
		gw_api_error(f, "API key: too long");
		status = 401;
	} else {
		char why[256];
		memcpy(key, h + 7, n - 7);
		key[n - 7] = '\0';
		if (gw_auth_key(c->api.g->auth, key, &who->c, why, sizeof(why)) != GRPC_STATUS_OK) {
			gw_api_error(f, why);
			status = 401;
		} else {
			who->key = key;
		}
	}
	cm_wipe((char *)h, n);
	return status;
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
	gw_console_who who;
	char key[CM_API_KEY_MAX + 2];
	if ((status = authenticate(c, q, &who, key, sizeof(key), f)) != 0) {
		/* 401 before anything else: nothing is told to a caller who failed */
	} else if (strcmp(rest, "search") == 0) {
		/* a JSON body only: another site's page cannot send one without a
		 * CORS preflight, which the console never allows */
		const char *ct = cm_http_header(q, "Content-Type");
		if (strcmp(q->method, "POST") != 0) {
			status = 405;
		} else if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
			gw_api_error(f, "Content-Type: expected application/json");
			status = 415;
		} else {
			status = gw_api_search(&c->api, &who, q->body, f);
		}
	} else if (!is_get(q)) {
		status = 405;
	} else if (strcmp(rest, "network") == 0) {
		status = gw_api_network(&c->api, f);
	} else if (strcmp(rest, "collections") == 0) {
		status = gw_api_collections(&c->api, &who, f);
	} else if (strncmp(rest, "collections/", 12) == 0 && strstr(rest + 12, "/")) {
		/* /api/collections/<name>/records (a name holds no slash) */
		const char *name = rest + 12, *slash = strchr(name, '/');
		char nm[GW_NAME_MAX + 1];
		if (strcmp(slash, "/records") != 0 || (size_t)(slash - name) > GW_NAME_MAX) {
			status = 404;
		} else {
			memcpy(nm, name, (size_t)(slash - name));
			nm[slash - name] = '\0';
			status = gw_api_records(&c->api, &who, nm, cm_http_query(q, "cursor"), cm_http_query(q, "limit"),
						cm_http_query(q, "vectors"), cm_http_query(q, "filter"), f);
		}
	} else if (strncmp(rest, "collections/", 12) == 0) {
		status = gw_api_collection(&c->api, &who, rest + 12, f);
	} else if (strcmp(rest, "blocks") == 0) {
		status = gw_api_blocks(&c->api, cm_http_query(q, "from"), cm_http_query(q, "limit"), f);
	} else if (strncmp(rest, "nodes/", 6) == 0) {
		status = gw_api_node(&c->api, rest + 6, f);
	} else {
		status = 404;
	}
	cm_wipe(key, sizeof(key));
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
	snprintf(c->api.target, sizeof(c->api.target), "127.0.0.1:%d", rpc_port);
	const char *ca = g->cfg->tls_ca;
	c->api.tls_ca = g->cfg->base.tls_cert && g->cfg->base.tls_cert[0] && ca && ca[0] ? ca : NULL;
	cm_rpc_client_opts o = {.target = c->api.target, .max_message = (size_t)g->cfg->base.rpc_max_message,
				.tls_ca_file = c->api.tls_ca};
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
