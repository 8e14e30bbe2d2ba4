/* From the answers of one query to its results: the candidates of every
 * fragment's answering replicas, one per id (its highest version), by
 * distance, the first k. */
#include "gw.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

typedef struct cand {
	const Muri__V1__Hit *h;
} cand;

static int by_distance(const void *a, const void *b)
{
	const Muri__V1__Hit *x = ((const cand *)a)->h, *y = ((const cand *)b)->h;
	if (x->distance != y->distance)
		return x->distance < y->distance ? -1 : 1;
	int c = strcmp(x->id, y->id);
	if (c)
		return c;
	return x->version > y->version ? -1 : x->version < y->version;
}

int gw_search_merge(cm_rpc_call *call, const gw_coll *m, const Muri__V1__Vector *query, uint32_t k,
		    int include_vectors, const gw_search_answer *ans, size_t n, Muri__V1__SearchResult ***out,
		    size_t *nout, char *err, size_t errlen)
{
	(void)m;
	(void)query;
	(void)err;
	(void)errlen;
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		if (ans[i].resp)
			total += ans[i].resp->n_hits;
	cand *c = malloc((total ? total : 1) * sizeof(*c));
	if (!c)
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	size_t nc = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t h = 0; ans[i].resp && h < ans[i].resp->n_hits; h++)
			if (ans[i].resp->hits[h] && ans[i].resp->hits[h]->id)
				c[nc++].h = ans[i].resp->hits[h];
	qsort(c, nc, sizeof(*c), by_distance);
	Muri__V1__SearchResult **res = cm_rpc_alloc(call, (k ? k : 1) * sizeof(*res));
	if (!res) {
		free(c);
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	size_t got = 0;
	for (size_t i = 0; i < nc && got < k; i++) {
		int seen = 0;
		for (size_t p = 0; p < got && !seen; p++)
			seen = strcmp(res[p]->id, c[i].h->id) == 0;
		if (seen)
			continue;
		Muri__V1__SearchResult *r = cm_rpc_alloc(call, sizeof(*r));
		if (!r) {
			free(c);
			return GRPC_STATUS_RESOURCE_EXHAUSTED;
		}
		muri__v1__search_result__init(r);
		r->id = c[i].h->id;
		r->distance = c[i].h->distance;
		r->metadata = c[i].h->metadata;
		r->vector = include_vectors ? c[i].h->vector : NULL;
		res[got++] = r;
	}
	free(c);
	*out = res;
	*nout = got;
	return GRPC_STATUS_OK;
}
