/* From the answers of one query to its results, through the merge core
 * (gw_merge.h): every answer is checked (signature over the canonical
 * digest, the read-your-writes floor, roots, distances recomputed from the
 * returned vectors), candidates are voted on within each fragment, and the
 * global top k is built with the recomputed distances. What the merge says
 * of each node (its share of the final top k, proven lies) is added to the
 * request's tally, which the caller turns into per-node metrics. */
#include "gw.h"
#include "cm_err.h"
#include "cm_log.h"
#include "gw_merge.h"
#include "gw_seen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tally_add(gw_tally *t, const gw_merge_result *r)
{
	for (size_t i = 0; i < r->nranks; i++) {
		const gw_node_rank *nr = &r->ranks[i];
		size_t k = 0;
		while (k < t->n && memcmp(t->nodes[k].pk, nr->node, CM_PK_BYTES) != 0)
			k++;
		if (k == t->n) {
			if (t->n == GW_TALLY_MAX)
				continue;
			memcpy(t->nodes[t->n++].pk, nr->node, CM_PK_BYTES);
		}
		t->nodes[k].contributed += nr->contributed;
		t->nodes[k].expected += nr->expected;
		t->nodes[k].answered += nr->answered;
		t->nodes[k].lies += nr->liar;
	}
	for (size_t i = 0; i < r->nreports; i++)
		if (r->reports[i].liar && t->nlies < GW_TALLY_LIES) {
			snprintf(t->lies[t->nlies], sizeof(t->lies[0]), "fragment %u: %s (%s)", r->reports[i].fragment,
				 gw_reason_name(r->reports[i].reason), r->reports[i].why);
			t->nlies++;
		}
	for (size_t i = 0; i < r->nfrags; i++)
		t->disputed += r->frags[i].disputed;
}

int gw_search_merge(gw_ctx *g, cm_rpc_call *call, const gw_coll *m, const Muri__V1__Vector *query, uint32_t k,
		    const Muri__V1__Filter *filter, int include_vectors, const gw_search_answer *ans, size_t n,
		    gw_tally *tally, int final, uint8_t *unsettled, int *tallied, Muri__V1__SearchResult ***out,
		    size_t *nout, char *err, size_t errlen)
{
	gw_answer *ga = calloc(n ? n : 1, sizeof(*ga));
	gw_frag_answers *fa = calloc(m->nfrag ? m->nfrag : 1, sizeof(*fa));
	if (!ga || !fa) {
		free(ga);
		free(fa);
		snprintf(err, errlen, "out of memory");
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	/* the answers come grouped by fragment, in fragment order */
	size_t na = 0, nf = 0;
	for (uint32_t f = 0; f < m->nfrag; f++) {
		const gw_frag *fr = &m->frags[f];
		if (!fr->ask)
			continue; /* not in the split map's plan */
		fa[nf].fragment = f;
		fa[nf].min_size = fr->acked_size;
		fa[nf].committed_size = fr->committed_size;
		fa[nf].committed_root = fr->committed_size ? fr->committed_root : NULL;
		fa[nf].answers = &ga[na];
		for (size_t i = 0; i < n; i++)
			if (ans[i].fragment == f && ans[i].resp && fa[nf].n < GW_ANSWERS_MAX) {
				ga[na].node = fr->rep[ans[i].replica].pk;
				ga[na].resp = ans[i].resp;
				ga[na].latency_us = ans[i].latency_ms > UINT32_MAX / 1000 ? UINT32_MAX
										  : (uint32_t)(ans[i].latency_ms * 1000);
				na++;
				fa[nf].n++;
			}
		nf++;
	}
	int bin = m->metric == MURI__V1__METRIC__HAMMING;
	gw_query q = {.magu = m->name, .vec = bin ? NULL : query->values,
		      .bin = bin ? query->binary.data : NULL,
		      .dim = bin ? (uint32_t)query->binary.len * 8 : (uint32_t)query->n_values, .metric = m->metric,
		      .k = k, .filter = filter};
	cm_answer_seen seen = gw_seen_cb(g->seen);
	gw_merge_opts o = {.exact = m->index.kind == MURI__V1__INDEX_KIND__FLAT, .seen = &seen};
	gw_merge_result r;
	memset(&r, 0, sizeof(r));
	int rc = gw_merge(&q, fa, nf, &o, &r, err, errlen);
	int code = GRPC_STATUS_OK;
	if (rc != CM_OK)
		code = rc == CM_ERR_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL;
	Muri__V1__SearchResult **res = code == GRPC_STATUS_OK ? cm_rpc_alloc(call, (r.n ? r.n : 1) * sizeof(*res)) : NULL;
	if (code == GRPC_STATUS_OK && !res) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(err, errlen, "out of memory");
	}
	size_t nres = 0;
	for (size_t i = 0; code == GRPC_STATUS_OK && i < r.n; i++) {
		/* a frozen parent standing in for a half not live yet: only the half's cell */
		if (!gw_split_keeps(m, r.hits[i].fragment, r.hits[i].id))
			continue;
		Muri__V1__SearchResult *x = cm_rpc_alloc(call, sizeof(*x));
		if (!x) {
			code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			snprintf(err, errlen, "out of memory");
			break;
		}
		muri__v1__search_result__init(x);
		x->id = r.hits[i].hit->id;
		x->distance = r.hits[i].distance;
		x->metadata = r.hits[i].hit->metadata;
		x->vector = include_vectors ? r.hits[i].hit->vector : NULL;
		res[nres++] = x;
	}
	int any = 0;
	for (size_t i = 0; code == GRPC_STATUS_OK && i < r.nfrags; i++) {
		/* a tied vote or a proven lie: another replica's answer may settle it */
		uint32_t f = r.frags[i].fragment;
		int u = r.frags[i].disputed > 0 || r.frags[i].valid < r.frags[i].answered;
		if (unsettled && f < m->nfrag)
			unsettled[f] = (uint8_t)u;
		any |= u;
	}
	if (code == GRPC_STATUS_OK) {
		if (tally && (final || !any)) {
			tally_add(tally, &r);
			pthread_mutex_lock(&g->rank_mu);
			gw_ranks_update(&g->ranks, &r);
			pthread_mutex_unlock(&g->rank_mu);
			/* reports come in the order of the answers given */
			for (size_t i = 0; g->spotter && i < r.nreports && i < na; i++)
				if (r.reports[i].answered)
					gw_spot_offer(g->spotter, m, r.reports[i].fragment, ga[i].node, query, k, filter,
						      ga[i].resp, r.reports[i].reason == GW_R_ROOT);
			if (tallied)
				*tallied = 1;
		}
		*out = res;
		*nout = nres;
	}
	gw_merge_result_free(&r);
	free(ga);
	free(fa);
	return code;
}
