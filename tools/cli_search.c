/* muri search: one query through the gateway, from a JSON vector, a row of
 * an .fvecs file or a stored record's vector (--like ID), optionally
 * filtered on metadata; prints rank, distance, id and metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_err.h"
#include "cm_vecs.h"

static const char help[] =
	"usage: muri search COLLECTION (--vector '[...]' | --binary HEX | --fvecs F --row N | --like ID) [--k 10]\n"
	"                  [--filter '{\"label\": \"Sneaker\"}'] [--level ONE|QUORUM|ALL] [--vectors]\n"
	"Nearest neighbours of the query. --like ID searches with the vector of a stored record.\n"
	"--binary: a HAMMING collection's query, its dimension / 8 bytes in hex (byte 0 first).\n"
	"A filter maps fields to a value or to {\"$eq\", \"$in\": [...], \"$gt\", \"$gte\", \"$lt\", \"$lte\"}.\n" CLI_CONN_HELP;

int cli_cmd_search(int argc, char **argv)
{
	cli_conn c = {0};
	const char *vector = NULL, *fvecs = NULL, *like = NULL, *filter = NULL, *level = NULL, *binary = NULL;
	long k = 10, row = 0;
	int vectors = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(c),
				{"--vector", CLI_STR, &vector},
				{"--binary", CLI_STR, &binary},
				{"--fvecs", CLI_STR, &fvecs},
				{"--row", CLI_INT, &row},
				{"--like", CLI_STR, &like},
				{"--filter", CLI_STR, &filter},
				{"--level", CLI_STR, &level},
				{"--k", CLI_INT, &k},
				{"--vectors", CLI_FLAG, &vectors},
				{NULL, 0, NULL}};
	char *pos[1], err[300];
	int npos, prc = cli_parse("search", help, argc, argv, opts, pos, 1, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 1)
		return cli_fail(CLI_USAGE, "search", "give the COLLECTION");
	if ((vector != NULL) + (binary != NULL) + (fvecs != NULL) + (like != NULL) != 1)
		return cli_fail(CLI_USAGE, "search",
				"give one query: --vector JSON, --binary HEX, --fvecs F --row N or --like ID");
	if (k < 1 || k > 1000)
		return cli_fail(CLI_USAGE, "search", "--k must be 1..1000");
	int lv = cli_level(level);
	if (lv < 0)
		return cli_fail(CLI_USAGE, "search", "--level must be ONE, QUORUM or ALL: %s", level);
	Muri__V1__Filter *flt = NULL;
	if (filter) {
		cm_json *fj = cm_json_parse(filter, err, sizeof(err));
		flt = fj ? cli_filter(fj, err, sizeof(err)) : NULL;
		cm_json_free(fj);
		if (!flt)
			return cli_fail(CLI_USAGE, "search", "--filter: %s", err);
	}
	float *q = NULL;
	uint8_t *qb = NULL; /* a binary query (HAMMING) */
	size_t dim = 0, nqb = 0;
	int rc = 0;
	if (binary && cli_hex_bytes(binary, &qb, &nqb) != 0)
		return cli_fail(CLI_USAGE, "search", "--binary: not an even number of hex digits");
	cm_rpc_client *gw = NULL;
	ProtobufCMessage *got = NULL;
	if (vector) {
		cm_json *vj = cm_json_parse(vector, err, sizeof(err));
		if (!vj || cm_json_floats(vj, &q, &dim, err, sizeof(err)) != 0)
			rc = cli_fail(CLI_USAGE, "search", "--vector: %s", err);
		cm_json_free(vj);
	} else if (fvecs) {
		float *all = NULL;
		size_t rows = 0;
		int vr = row < 0 ? CM_ERR_INVALID : cm_fvecs_read(fvecs, (size_t)row + 1, &all, &rows, &dim);
		if (vr != CM_OK || rows <= (size_t)row) {
			rc = cli_fail(CLI_FAIL, "search", "%s: %s", fvecs,
				      vr == CM_OK ? "has no such --row" : vr == CM_ERR_INVALID ? "not a valid .fvecs file" : cm_strerror(vr));
		} else if ((q = malloc(dim * sizeof(float)))) {
			memcpy(q, all + (size_t)row * dim, dim * sizeof(float));
		}
		free(all);
	}
	if (!rc && !(gw = cli_gateway("search", &c)))
		rc = CLI_FAIL;
	if (!rc && like) {
		Muri__V1__GetRequest g = MURI__V1__GET_REQUEST__INIT;
		char *ids[1] = {(char *)like};
		g.collection = pos[0];
		g.ids = ids;
		g.n_ids = 1;
		g.include_vectors = 1;
		rc = cli_call("search", &c, gw, "/muri.v1.VectorStore/Get", &g.base, &muri__v1__get_response__descriptor,
			      &got);
		Muri__V1__GetResponse *gr = (Muri__V1__GetResponse *)got;
		if (!rc && (!gr->n_records || !gr->records[0]->vector))
			rc = cli_fail(CLI_FAIL, "search", "--like: no record %s", like);
		if (!rc) {
			const Muri__V1__Record *r0 = gr->records[0];
			if (!c.json) {
				printf("query: %s ", r0->id);
				cli_print_metadata(stdout, r0->metadata, 0);
				printf("\n");
			}
			dim = r0->vector->n_values;
			nqb = r0->vector->binary.len;
			if (nqb && (qb = malloc(nqb)))
				memcpy(qb, r0->vector->binary.data, nqb);
			else if (!nqb && (q = malloc(dim * sizeof(float))))
				memcpy(q, r0->vector->values, dim * sizeof(float));
		}
	}
	ProtobufCMessage *resp = NULL;
	if (!rc && (q || qb)) {
		Muri__V1__Vector qv = MURI__V1__VECTOR__INIT;
		qv.values = q;
		qv.n_values = q ? dim : 0;
		qv.binary.data = qb;
		qv.binary.len = qb ? nqb : 0;
		Muri__V1__SearchRequest s = MURI__V1__SEARCH_REQUEST__INIT;
		s.collection = pos[0];
		s.query_vector = &qv;
		s.top_k = (uint32_t)k;
		s.filter = flt;
		s.consistency_level = lv;
		s.include_vectors = vectors;
		rc = cli_call("search", &c, gw, "/muri.v1.VectorStore/Search", &s.base, &muri__v1__search_response__descriptor,
			      &resp);
	}
	if (!rc && resp) {
		Muri__V1__SearchResponse *r = (Muri__V1__SearchResponse *)resp;
		if (c.json)
			printf("{\"results\": [");
		else
			printf("%4s  %-12s  %-36s  %s\n", "rank", "distance", "id", "metadata");
		for (size_t i = 0; i < r->n_results; i++) {
			const Muri__V1__SearchResult *x = r->results[i];
			if (c.json) {
				printf("%s{\"id\": \"%s\", \"distance\": %.9g, \"metadata\": ", i ? ", " : "", x->id,
				       x->distance);
				cli_print_metadata(stdout, x->metadata, 1);
				printf("}");
			} else {
				printf("%4zu  %-12.6g  %-36s  ", i + 1, x->distance, x->id);
				cli_print_metadata(stdout, x->metadata, 0);
				printf("\n");
			}
		}
		if (c.json)
			printf("], \"time_ms\": %.3f}\n", r->metrics ? r->metrics->time_ms : 0.0);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	if (got)
		protobuf_c_message_free_unpacked(got, NULL);
	free(q);
	free(qb);
	cli_filter_free(flt);
	cm_rpc_client_free(gw);
	return rc;
}
