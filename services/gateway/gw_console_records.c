/* GET /api/collections/<name>/records: the console's data browser, a page
 * of a collection's records in id order through the gateway's own
 * VectorStore Scroll (so it shows exactly what a client's Scroll returns).
 * Query: cursor (a next_cursor of the previous page; none: the first page),
 * limit (the page size, 1..max_scroll_page, default 20), vectors=1 (with the
 * vectors), filter (muri search's JSON filter). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_err.h"
#include "gw_console.h"

#define RECORDS_TIMEOUT_MS 30000
#define RECORDS_PAGE_DEFAULT 20

static unsigned scroll_error(FILE *f, const cm_rpc_status *st, int rc)
{
	gw_api_error(f, st->message[0] ? st->message : cm_strerror(rc));
	int c = st->code;
	return c == 3 || c == 11 ? 400 : c == 5 ? 404 : c == 4 ? 504 : c == 14 ? 503 : c == 8 ? 429 : 502;
}

unsigned gw_api_records(gw_console_api *a, const gw_console_who *who, const char *name, const char *cursor,
			const char *limit, const char *vectors, const char *filter, FILE *f)
{
	char err[256] = "";
	long long n = RECORDS_PAGE_DEFAULT;
	if (limit && limit[0]) {
		char *end = NULL;
		n = strtoll(limit, &end, 10);
		if (!end || *end || n < 1 || n > a->g->cfg->max_scroll_page) {
			snprintf(err, sizeof(err), "limit: expected 1..%lld", (long long)a->g->cfg->max_scroll_page);
			gw_api_error(f, err);
			return 400;
		}
	}
	if (vectors && strcmp(vectors, "0") != 0 && strcmp(vectors, "1") != 0) {
		gw_api_error(f, "vectors: expected 0 or 1");
		return 400;
	}
	Muri__V1__Filter *pf = NULL;
	cm_json *jf = NULL;
	if (filter && filter[0]) {
		jf = cm_json_parse(filter, err, sizeof(err));
		if (jf && jf->type != CM_JSON_NULL)
			pf = cli_filter(jf, err, sizeof(err));
		if (!jf || (jf->type != CM_JSON_NULL && !pf)) {
			char msg[300];
			snprintf(msg, sizeof(msg), "filter: %s", err[0] ? err : "expected a JSON object");
			gw_api_error(f, msg);
			cm_json_free(jf);
			return 400;
		}
	}
	cm_rpc_client *cl = NULL;
	if (!gw_console_may_read(a, who, name, f) || !(cl = gw_console_client(a, who, err, sizeof(err)))) {
		if (cl == NULL && err[0])
			gw_api_error(f, err);
		cli_filter_free(pf);
		cm_json_free(jf);
		return err[0] ? 503 : 403;
	}
	Muri__V1__ScrollRequest rq = MURI__V1__SCROLL_REQUEST__INIT;
	rq.collection = (char *)name;
	rq.page_size = (uint32_t)n;
	rq.cursor = (char *)(cursor ? cursor : "");
	rq.filter = pf;
	rq.include_vectors = vectors && strcmp(vectors, "1") == 0;
	Muri__V1__ScrollResponse *resp = NULL;
	cm_rpc_status st = {0};
	int rc = cm_rpc_unary(cl, "/muri.v1.VectorStore/Scroll", &rq.base, &muri__v1__scroll_response__descriptor,
			      (ProtobufCMessage **)&resp, RECORDS_TIMEOUT_MS, &st);
	gw_console_client_done(a, cl);
	cli_filter_free(pf);
	cm_json_free(jf);
	if (rc != CM_OK || !resp)
		return scroll_error(f, &st, rc);
	fputs("{\"collection\":", f);
	gw_json_str(f, name);
	fputs(",\"records\":[", f);
	for (size_t i = 0; i < resp->n_records; i++) {
		const Muri__V1__Record *r = resp->records[i];
		fputs(i ? ",{\"id\":" : "{\"id\":", f);
		gw_json_str(f, r->id);
		fprintf(f, ",\"version\":%llu,\"metadata\":", (unsigned long long)r->version);
		cli_print_metadata(f, r->metadata, 1);
		if (r->vector && r->vector->binary.len) { /* HAMMING: hex, byte 0 first */
			fputs(",\"vector\":\"", f);
			for (size_t k = 0; k < r->vector->binary.len; k++)
				fprintf(f, "%02x", r->vector->binary.data[k]);
			fputc('"', f);
		} else if (r->vector) {
			fputs(",\"vector\":[", f);
			for (size_t k = 0; k < r->vector->n_values; k++)
				fprintf(f, "%s%.9g", k ? "," : "", (double)r->vector->values[k]);
			fputc(']', f);
		}
		fputc('}', f);
	}
	fputs("],\"next_cursor\":", f);
	gw_json_str(f, resp->next_cursor);
	fputc('}', f);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 200;
}
