/* muri scroll: a collection's records in id order through the gateway's
 * Scroll, a page at a time (--cursor goes on where the last page stopped)
 * or every page (--all); optionally filtered on metadata, with vectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_err.h"

static const char help[] =
	"usage: muri scroll COLLECTION [--page-size N] [--cursor C] [--all] [--filter JSON] [--vectors]\n"
	"Prints the collection's records in id order (id, version, metadata), one page, then the cursor of the\n"
	"next page (\"next: C\"; none after the last page). --all follows the cursors to the end.\n"
	"  --page-size N   records per page, 1..the gateway's max_scroll_page (default: 100, or that if less)\n"
	"  --filter JSON   as muri search's\n"
	"  --vectors       print the vectors too\n" CLI_CONN_HELP;

static void print_page(const Muri__V1__ScrollResponse *r, int json, int vectors, int *first)
{
	for (size_t i = 0; i < r->n_records; i++) {
		const Muri__V1__Record *x = r->records[i];
		if (json) {
			printf("%s{\"id\": \"%s\", \"version\": %llu, \"metadata\": ", *first ? "" : ", ", x->id,
			       (unsigned long long)x->version);
			cli_print_metadata(stdout, x->metadata, 1);
		} else {
			printf("%s  version %llu  ", x->id, (unsigned long long)x->version);
			cli_print_metadata(stdout, x->metadata, 0);
		}
		if (vectors && x->vector && x->vector->binary.len) { /* HAMMING: hex, byte 0 first */
			printf(json ? ", \"vector\": \"" : "  ");
			for (size_t k = 0; k < x->vector->binary.len; k++)
				printf("%02x", x->vector->binary.data[k]);
			printf(json ? "\"" : "");
		} else if (vectors && x->vector) {
			printf(json ? ", \"vector\": [" : "  [");
			for (size_t k = 0; k < x->vector->n_values; k++)
				printf("%s%.9g", k ? ", " : "", x->vector->values[k]);
			printf("]");
		}
		printf(json ? "}" : "\n");
		*first = 0;
	}
}

int cli_cmd_scroll(int argc, char **argv)
{
	cli_conn c = {0};
	const char *cursor = "", *filter = NULL;
	long page = 0;
	int all = 0, vectors = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(c),
				{"--page-size", CLI_INT, &page},
				{"--cursor", CLI_STR, &cursor},
				{"--filter", CLI_STR, &filter},
				{"--all", CLI_FLAG, &all},
				{"--vectors", CLI_FLAG, &vectors},
				{NULL, 0, NULL}};
	char *pos[1], err[300];
	int npos, prc = cli_parse("scroll", help, argc, argv, opts, pos, 1, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 1)
		return cli_fail(CLI_USAGE, "scroll", "give the COLLECTION");
	if (page < 0 || page > 10000)
		return cli_fail(CLI_USAGE, "scroll", "--page-size must be 1..10000 (0: the gateway's default)");
	Muri__V1__Filter *flt = NULL;
	if (filter) {
		cm_json *fj = cm_json_parse(filter, err, sizeof(err));
		flt = fj ? cli_filter(fj, err, sizeof(err)) : NULL;
		cm_json_free(fj);
		if (!flt)
			return cli_fail(CLI_USAGE, "scroll", "--filter: %s", err);
	}
	cm_rpc_client *gw = cli_gateway("scroll", &c);
	if (!gw) {
		cli_filter_free(flt);
		return CLI_FAIL;
	}
	char *next = strdup(cursor);
	int rc = next ? 0 : cli_fail(CLI_FAIL, "scroll", "out of memory"), first = 1;
	if (c.json && !rc)
		printf("{\"records\": [");
	while (!rc) {
		Muri__V1__ScrollRequest rq = MURI__V1__SCROLL_REQUEST__INIT;
		rq.collection = pos[0];
		rq.page_size = (uint32_t)page;
		rq.cursor = next;
		rq.filter = flt;
		rq.include_vectors = vectors;
		ProtobufCMessage *resp = NULL;
		rc = cli_call("scroll", &c, gw, "/muri.v1.VectorStore/Scroll", &rq.base,
			      &muri__v1__scroll_response__descriptor, &resp);
		if (rc)
			break;
		Muri__V1__ScrollResponse *r = (Muri__V1__ScrollResponse *)resp;
		print_page(r, c.json, vectors, &first);
		free(next);
		next = strdup(r->next_cursor ? r->next_cursor : "");
		protobuf_c_message_free_unpacked(resp, NULL);
		if (!next) {
			rc = cli_fail(CLI_FAIL, "scroll", "out of memory");
			break;
		}
		if (!all || !next[0])
			break;
	}
	if (!rc) {
		if (c.json)
			printf("], \"next_cursor\": \"%s\"}\n", next);
		else if (next[0])
			printf("next: %s\n", next);
	}
	free(next);
	cli_filter_free(flt);
	cm_rpc_client_free(gw);
	return rc;
}
