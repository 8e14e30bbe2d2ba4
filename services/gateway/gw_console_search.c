/* POST /api/search: a search typed into the console, sent to the gateway's
 * own VectorStore Search exactly as a client's would be (so it answers the
 * same ids), with the query vector given or taken from a stored record by
 * id (Get). The answer adds every node that answered it, with its latency
 * and rank in this answer, as the gateway's merge recorded them
 * (gw_recent.h). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_err.h"
#include "gw_console.h"
#include "gw_recent.h"

#define SEARCH_TIMEOUT_MS 30000

static int level_of(const char *s)
{
	if (!s || !*s || !strcasecmp(s, "QUORUM"))
		return MURI__V1__CONSISTENCY_LEVEL__QUORUM;
	if (!strcasecmp(s, "ONE"))
		return MURI__V1__CONSISTENCY_LEVEL__ONE;
	if (!strcasecmp(s, "ALL"))
		return MURI__V1__CONSISTENCY_LEVEL__ALL;
	return -1;
}

static const char *level_name(int l)
{
	return l == MURI__V1__CONSISTENCY_LEVEL__ONE ? "ONE" : l == MURI__V1__CONSISTENCY_LEVEL__ALL ? "ALL" : "QUORUM";
}

static unsigned rpc_error(FILE *f, const char *what, int rc, const cm_rpc_status *st)
{
	char msg[CM_RPC_STATUS_MAX + 64];
	snprintf(msg, sizeof(msg), "%s: %s", what, st->message[0] ? st->message : cm_strerror(rc));
	gw_api_error(f, msg);
	int c = st->code;
	return c == 3 || c == 11 ? 400 : c == 5 ? 404 : c == 4 ? 504 : c == 14 ? 503 : c == 8 ? 429 : 502;
}

/* Every node that answered this search, in its rank in this answer (the
 * larger share of the final top k from its fragment, then the faster; what
 * the gateway's merge recorded for this fingerprint, gw_recent.h), then the
 * collection's other replicas (not asked, or asked without an answer). */
static void nodes_json(gw_console_api *a, FILE *f, const gw_coll *m, const Muri__V1__Vector *q, uint32_t k, int level)
{
	gw_recent_node got[GW_RECENT_NODES];
	size_t n = 0;
	if (gw_recent_find(a->g->recent, m->name, q, k, level, got, GW_RECENT_NODES, &n) != CM_OK)
		n = 0;
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",{\"node\":" : "{\"node\":", f);
		gw_json_hex(f, got[i].pk, CM_PK_BYTES);
		fputs(",\"addr\":", f);
		gw_json_str(f, got[i].fragment < m->nfrag ? gw_frag_addr(&m->frags[got[i].fragment], got[i].pk) : NULL);
		fprintf(f,
			",\"answered\":true,\"rank\":%zu,\"fragment\":%u,\"latency_ms\":%llu,\"contributed\":%llu,"
			"\"expected\":%llu,\"lies\":%llu}",
			i + 1, got[i].fragment, (unsigned long long)got[i].latency_ms, (unsigned long long)got[i].contributed,
			(unsigned long long)got[i].expected, (unsigned long long)got[i].lies);
	}
	size_t out = n;
	for (uint32_t fr = 0; fr < m->nfrag; fr++)
		for (uint32_t r = 0; r < m->frags[fr].nrep; r++) {
			const gw_replica *rep = &m->frags[fr].rep[r];
			int seen = 0;
			for (size_t i = 0; i < n && !seen; i++)
				seen = got[i].fragment == fr && memcmp(got[i].pk, rep->pk, CM_PK_BYTES) == 0;
			if (seen)
				continue;
			fputs(out++ ? ",{\"node\":" : "{\"node\":", f);
			gw_json_hex(f, rep->pk, CM_PK_BYTES);
			fputs(",\"addr\":", f);
			gw_json_str(f, rep->addr);
			fprintf(f, ",\"answered\":false,\"fragment\":%u}", fr);
		}
	fputc(']', f);
}

/* The query vector of a stored record. */
static unsigned vector_of_id(cm_rpc_client *cl, const char *coll, const char *id, Muri__V1__GetResponse **out,
			     FILE *f)
{
	Muri__V1__GetRequest g = MURI__V1__GET_REQUEST__INIT;
	char *ids[1] = {(char *)id};
	g.collection = (char *)coll;
	g.ids = ids;
	g.n_ids = 1;
	g.include_vectors = 1;
	cm_rpc_status st = {0};
	int rc = cm_rpc_unary(cl, "/muri.v1.VectorStore/Get", &g.base, &muri__v1__get_response__descriptor,
			      (ProtobufCMessage **)out, SEARCH_TIMEOUT_MS, &st);
	if (rc != CM_OK)
		return rpc_error(f, "id", rc, &st);
	if (!*out || (*out)->n_records < 1 || !(*out)->records[0]->vector) {
		gw_api_error(f, "id: no such record");
		return 404;
	}
	return 200;
}

unsigned gw_api_search(gw_console_api *a, const gw_console_who *who, const char *body, FILE *f)
{
	char err[256] = "";
	cm_json *j = cm_json_parse(body, err, sizeof(err));
	if (!j || j->type != CM_JSON_OBJ) {
		gw_api_error(f, err[0] ? err : "body: expected a JSON object");
		cm_json_free(j);
		return 400;
	}
	unsigned code = 400;
	float *vals = NULL;
	size_t nvals = 0;
	Muri__V1__Filter *filter = NULL;
	Muri__V1__GetResponse *got = NULL;
	Muri__V1__SearchResponse *resp = NULL;
	gw_coll *m = NULL;
	cm_rpc_client *cl = NULL;
	const cm_json *jc = cm_json_get(j, "collection"), *jv = cm_json_get(j, "vector"),
		       *jid = cm_json_get(j, "id"), *jk = cm_json_get(j, "top_k"),
		       *jl = cm_json_get(j, "consistency"), *jf = cm_json_get(j, "filter");
	int level = level_of(jl && jl->type == CM_JSON_STR ? jl->str : NULL);
	int64_t k = jk && jk->type == CM_JSON_NUM && jk->is_int ? jk->ival : 10;
	if (!jc || jc->type != CM_JSON_STR || !jc->str[0]) {
		gw_api_error(f, "collection: required");
		goto out;
	}
	if (level < 0 || (jl && jl->type != CM_JSON_STR)) {
		gw_api_error(f, "consistency: expected ONE, QUORUM or ALL");
		goto out;
	}
	if ((jk && (jk->type != CM_JSON_NUM || !jk->is_int)) || k < 1 || k > GW_MAX_TOP_K) {
		gw_api_error(f, "top_k: expected 1..1000");
		goto out;
	}
	if (jf && jf->type != CM_JSON_NULL && !(filter = cli_filter(jf, err, sizeof(err)))) {
		char msg[300];
		snprintf(msg, sizeof(msg), "filter: %s", err);
		gw_api_error(f, msg);
		goto out;
	}
	if (!gw_console_may_read(a, who, jc->str, f)) {
		code = 403;
		goto out;
	}
	if (!(cl = gw_console_client(a, who, err, sizeof(err)))) {
		gw_api_error(f, err);
		code = 503;
		goto out;
	}
	Muri__V1__Vector qv = MURI__V1__VECTOR__INIT;
	if (jv && jv->type != CM_JSON_NULL) {
		if (cm_json_floats(jv, &vals, &nvals, err, sizeof(err)) != CM_OK) {
			char msg[300];
			snprintf(msg, sizeof(msg), "vector: %s", err);
			gw_api_error(f, msg);
			goto out;
		}
		qv.values = vals;
		qv.n_values = nvals;
	} else if (jid && jid->type == CM_JSON_STR && jid->str[0]) {
		if ((code = vector_of_id(cl, jc->str, jid->str, &got, f)) != 200)
			goto out;
		qv.values = got->records[0]->vector->values;
		qv.n_values = got->records[0]->vector->n_values;
		qv.binary = got->records[0]->vector->binary; /* a binary record's query (HAMMING) */
	} else {
		gw_api_error(f, "vector: required (or id of a stored record)");
		goto out;
	}
	if (gw_chain_get(a->g->chain, jc->str, &m) != CM_OK) {
		gw_api_error(f, "collection: not found");
		code = 404;
		goto out;
	}
	Muri__V1__SearchRequest rq = MURI__V1__SEARCH_REQUEST__INIT;
	rq.collection = jc->str;
	rq.query_vector = &qv;
	rq.top_k = (uint32_t)k;
	rq.consistency_level = level;
	rq.filter = filter;
	cm_rpc_status st = {0};
	int rc = cm_rpc_unary(cl, "/muri.v1.VectorStore/Search", &rq.base, &muri__v1__search_response__descriptor,
			      (ProtobufCMessage **)&resp, SEARCH_TIMEOUT_MS, &st);
	if (rc != CM_OK || !resp) {
		code = rpc_error(f, "search", rc, &st);
		goto out;
	}
	fputs("{\"collection\":", f);
	gw_json_str(f, jc->str);
	fputs(",\"results\":[", f);
	for (size_t i = 0; i < resp->n_results; i++) {
		const Muri__V1__SearchResult *r = resp->results[i];
		fputs(i ? ",{\"id\":" : "{\"id\":", f);
		gw_json_str(f, r->id);
		fprintf(f, ",\"distance\":%.9g,\"metadata\":", (double)r->distance);
		cli_print_metadata(f, r->metadata, 1);
		fputc('}', f);
	}
	fputs("]", f);
	if (resp->metrics)
		fprintf(f, ",\"metrics\":{\"nodes_queried\":%u,\"nodes_answered\":%u,\"time_ms\":%.3f,\"level\":\"%s\"}",
			resp->metrics->nodes_queried, resp->metrics->nodes_answered, resp->metrics->time_ms,
			level_name(resp->metrics->consistency_level_achieved));
	fputs(",\"nodes\":", f);
	nodes_json(a, f, m, &qv, (uint32_t)k, level);
	fputc('}', f);
	code = 200;
out:
	gw_console_client_done(a, cl);
	gw_coll_free(m);
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (got)
		protobuf_c_message_free_unpacked(&got->base, NULL);
	cli_filter_free(filter);
	free(vals);
	cm_json_free(j);
	return code;
}
