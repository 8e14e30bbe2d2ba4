/* muri collection create | list | describe | drop, through the gateway
 * (which creates and drops the collection's Magu by a transaction of its
 * payer account). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "cm_err.h"

static const char help[] =
	"usage: muri collection create NAME --dim D [--metric cosine|l2|dot|hamming] [--index hnsw|flat|ivf]\n"
	"                              [--fragments N] [--replication R]\n"
	"       muri collection list | describe NAME | drop NAME   [options]\n" CLI_CONN_HELP;

static const char *index_name(int k)
{
	return k == MURI__V1__INDEX_KIND__FLAT ? "flat" : k == MURI__V1__INDEX_KIND__IVF ? "ivf" : "hnsw";
}

static void print_info(const Muri__V1__CollectionInfo *c, int json, int detail)
{
	if (json) {
		printf("{\"name\": ");
		cm_json_str(stdout, c->name);
		printf(", \"dimension\": %u, \"metric\": \"%s\", \"index\": \"%s\", \"fragments\": %u, \"replication\": %u, "
		       "\"vectors\": %llu, \"owner\": \"%s\", \"created_height\": %llu, \"fragment_states\": [",
		       c->dimension, cli_metric_name(c->metric), index_name(c->index ? c->index->kind : 0), c->fragments,
		       c->replication, (unsigned long long)c->vector_count, c->owner, (unsigned long long)c->created_height);
		for (size_t i = 0; i < c->n_fragment_states; i++) {
			const Muri__V1__FragmentState *s = c->fragment_states[i];
			printf("%s{\"fragment\": %u, \"epoch\": %llu, \"primary\": \"%s\", \"replicas\": %zu, "
			       "\"log_size\": %llu, \"vectors\": %llu, \"committed_size\": %llu, \"available\": %s, "
			       "\"state\": \"%s\", \"searched\": %s}",
			       i ? ", " : "", s->fragment, (unsigned long long)s->epoch, s->primary, s->n_replicas,
			       (unsigned long long)s->log_size, (unsigned long long)s->vector_count,
			       (unsigned long long)s->committed_size, s->available ? "true" : "false",
			       s->state && s->state[0] ? s->state : "serving", s->searched ? "true" : "false");
		}
		printf("]}");
		return;
	}
	if (!detail) {
		printf("%-24s %6u %-7s %-5s %9u %11u %10llu\n", c->name, c->dimension, cli_metric_name(c->metric),
		       index_name(c->index ? c->index->kind : 0), c->fragments, c->replication,
		       (unsigned long long)c->vector_count);
		return;
	}
	printf("name         %s\ndimension    %u\nmetric       %s\nindex        %s\nfragments    %u\nreplication  %u\n"
	       "vectors      %llu\nowner        %s\ncreated at   height %llu\n",
	       c->name, c->dimension, cli_metric_name(c->metric), index_name(c->index ? c->index->kind : 0),
	       c->fragments, c->replication, (unsigned long long)c->vector_count, c->owner,
	       (unsigned long long)c->created_height);
	for (size_t i = 0; i < c->n_fragment_states; i++) {
		const Muri__V1__FragmentState *s = c->fragment_states[i];
		printf("fragment %u   %s%s, epoch %llu, primary %s (%s), %zu replicas, log %llu, %llu vectors, "
		       "committed %llu\n",
		       s->fragment, s->state && s->state[0] ? s->state : "serving", s->searched ? "" : " (not searched)",
		       (unsigned long long)s->epoch, s->primary, s->available ? "serving" : "NOT ANSWERING",
		       s->n_replicas, (unsigned long long)s->log_size, (unsigned long long)s->vector_count,
		       (unsigned long long)s->committed_size);
	}
}

int cli_cmd_collection(int argc, char **argv)
{
	cli_conn c = {0};
	long dim = 0, fragments = 0, replication = 0;
	const char *metric = NULL, *index = NULL;
	const cli_opt opts[] = {CLI_CONN_OPTS(c),
				{"--dim", CLI_INT, &dim},
				{"--metric", CLI_STR, &metric},
				{"--index", CLI_STR, &index},
				{"--fragments", CLI_INT, &fragments},
				{"--replication", CLI_INT, &replication},
				{NULL, 0, NULL}};
	char *pos[2];
	int npos, prc = cli_parse("collection", help, argc, argv, opts, pos, 2, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	const char *sub = npos ? pos[0] : "";
	int needs_name = !strcmp(sub, "create") || !strcmp(sub, "describe") || !strcmp(sub, "drop");
	if (!needs_name && strcmp(sub, "list"))
		return cli_fail(CLI_USAGE, "collection", "expected create, list, describe or drop (muri collection --help)");
	if (needs_name != (npos == 2))
		return cli_fail(CLI_USAGE, "collection", needs_name ? "%s needs the collection's NAME" : "%s takes no NAME",
				sub);
	Muri__V1__CreateCollectionRequest cr = MURI__V1__CREATE_COLLECTION_REQUEST__INIT;
	Muri__V1__IndexSpec spec = MURI__V1__INDEX_SPEC__INIT;
	if (!strcmp(sub, "create")) {
		if (dim <= 0)
			return cli_fail(CLI_USAGE, "collection", "--dim: give the vectors' dimension (1..4096; hamming: bits, a multiple of 8)");
		int m = cli_metric(metric);
		if (m < 0)
			return cli_fail(CLI_USAGE, "collection", "--metric must be cosine, l2, dot or hamming: %s", metric);
		if (!index || !strcasecmp(index, "hnsw"))
			spec.kind = MURI__V1__INDEX_KIND__HNSW;
		else if (!strcasecmp(index, "flat"))
			spec.kind = MURI__V1__INDEX_KIND__FLAT;
		else if (!strcasecmp(index, "ivf"))
			spec.kind = MURI__V1__INDEX_KIND__IVF;
		else
			return cli_fail(CLI_USAGE, "collection", "--index must be hnsw, flat or ivf: %s", index);
		if (fragments < 0 || replication < 0)
			return cli_fail(CLI_USAGE, "collection", "--fragments and --replication must be positive");
		cr.name = pos[1];
		cr.dimension = (uint32_t)dim;
		cr.metric = m;
		cr.index = &spec;
		cr.fragments = (uint32_t)fragments;
		cr.replication = (uint32_t)replication;
	}
	cm_rpc_client *gw = cli_gateway("collection", &c);
	if (!gw)
		return CLI_FAIL;
	ProtobufCMessage *resp = NULL;
	int rc;
	if (!strcmp(sub, "create")) {
		if (!c.timeout_ms)
			c.timeout_ms = 120000; /* a transaction and every fragment's primary */
		rc = cli_call("collection", &c, gw, "/muri.v1.VectorStore/CreateCollection", &cr.base,
			      &muri__v1__collection_info__descriptor, &resp);
		if (!rc) {
			if (!c.json)
				printf("created collection %s\n", pos[1]);
			print_info((Muri__V1__CollectionInfo *)resp, c.json, 1);
			if (c.json)
				printf("\n");
		}
	} else if (!strcmp(sub, "describe")) {
		Muri__V1__DescribeCollectionRequest r = MURI__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
		r.name = pos[1];
		rc = cli_call("collection", &c, gw, "/muri.v1.VectorStore/DescribeCollection", &r.base,
			      &muri__v1__collection_info__descriptor, &resp);
		if (!rc) {
			print_info((Muri__V1__CollectionInfo *)resp, c.json, 1);
			if (c.json)
				printf("\n");
		}
	} else if (!strcmp(sub, "drop")) {
		Muri__V1__DropCollectionRequest r = MURI__V1__DROP_COLLECTION_REQUEST__INIT;
		r.name = pos[1];
		if (!c.timeout_ms)
			c.timeout_ms = 120000;
		rc = cli_call("collection", &c, gw, "/muri.v1.VectorStore/DropCollection", &r.base,
			      &muri__v1__drop_collection_response__descriptor, &resp);
		if (!rc)
			printf(c.json ? "{\"dropped\": %s}\n" : "dropped collection %s\n",
			       c.json ? (((Muri__V1__DropCollectionResponse *)resp)->dropped ? "true" : "false") : pos[1]);
	} else {
		Muri__V1__ListCollectionsRequest r = MURI__V1__LIST_COLLECTIONS_REQUEST__INIT;
		rc = cli_call("collection", &c, gw, "/muri.v1.VectorStore/ListCollections", &r.base,
			      &muri__v1__list_collections_response__descriptor, &resp);
		if (!rc) {
			Muri__V1__ListCollectionsResponse *l = (Muri__V1__ListCollectionsResponse *)resp;
			if (c.json)
				printf("[");
			else
				printf("%-24s %6s %-7s %-5s %9s %11s %10s\n", "name", "dim", "metric", "index", "fragments",
				       "replication", "vectors");
			for (size_t i = 0; i < l->n_collections; i++) {
				if (c.json && i)
					printf(", ");
				print_info(l->collections[i], c.json, 0);
			}
			if (c.json)
				printf("]\n");
		}
	}
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	cm_rpc_client_free(gw);
	return rc;
}
