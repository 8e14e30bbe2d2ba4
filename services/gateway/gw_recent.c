/* The ring of recent searches' answers (gw_recent.h). */
#include "gw_recent.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"

/* The fingerprint's hash domain: never signed nor sent, local to this process. */
#define GW_RECENT_DOM 0x80

struct entry {
	int used;
	uint8_t key[CM_HASH_BYTES];
	size_t n;
	gw_recent_node nodes[GW_RECENT_NODES];
};

struct gw_recent {
	pthread_mutex_t mu;
	size_t next;
	struct entry e[GW_RECENT_MAX];
};

int gw_recent_new(gw_recent **out)
{
	gw_recent *r = calloc(1, sizeof(*r));
	if (!r)
		return CM_ERR_NOMEM;
	pthread_mutex_init(&r->mu, NULL);
	*out = r;
	return CM_OK;
}

void gw_recent_free(gw_recent *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static void fingerprint(uint8_t out[CM_HASH_BYTES], const char *collection, const Muri__V1__Vector *q,
			uint32_t top_k, int level)
{
	cm_hasher h;
	uint32_t lv = (uint32_t)level;
	cm_hasher_init(&h, GW_RECENT_DOM);
	cm_hasher_update(&h, collection, strlen(collection) + 1);
	cm_hasher_update(&h, &top_k, sizeof(top_k));
	cm_hasher_update(&h, &lv, sizeof(lv));
	cm_hasher_update(&h, q->values, q->n_values * sizeof(float));
	cm_hasher_update(&h, q->binary.data, q->binary.len); /* HAMMING: the packed query */
	cm_hasher_final(&h, out);
}

static double share(const gw_recent_node *x)
{
	return x->expected ? (double)x->contributed / (double)x->expected : 0;
}

static int ranked(const void *a, const void *b)
{
	const gw_recent_node *x = a, *y = b;
	if (x->lies != y->lies)
		return x->lies < y->lies ? -1 : 1;
	double sx = share(x), sy = share(y);
	if (sx != sy)
		return sx > sy ? -1 : 1;
	return x->latency_ms < y->latency_ms ? -1 : x->latency_ms > y->latency_ms;
}

static void add(struct entry *e, const gw_coll *m, const gw_search_answer *a, const gw_tally *t)
{
	if (!a->resp || e->n == GW_RECENT_NODES || a->fragment >= m->nfrag || a->replica >= m->frags[a->fragment].nrep)
		return;
	gw_recent_node *x = &e->nodes[e->n++];
	memset(x, 0, sizeof(*x));
	memcpy(x->pk, m->frags[a->fragment].rep[a->replica].pk, CM_PK_BYTES);
	x->fragment = a->fragment;
	x->latency_ms = a->latency_ms;
	for (size_t i = 0; t && i < t->n; i++)
		if (memcmp(t->nodes[i].pk, x->pk, CM_PK_BYTES) == 0) {
			x->contributed = t->nodes[i].contributed;
			x->expected = t->nodes[i].expected;
			x->lies = t->nodes[i].lies;
		}
}

void gw_recent_note(gw_recent *r, const gw_coll *m, Muri__V1__Vector *const *queries, size_t nq, uint32_t top_k,
		    int level, const gw_search_answer *ans, size_t nans, const gw_search_answer *more, size_t nmore,
		    const gw_tally *t)
{
	if (!r || nq != 1)
		return;
	struct entry e = {.used = 1};
	fingerprint(e.key, m->name, queries[0], top_k, level);
	for (size_t i = 0; i < nans; i++)
		add(&e, m, &ans[i], t);
	for (size_t i = 0; i < nmore; i++)
		add(&e, m, &more[i], t);
	qsort(e.nodes, e.n, sizeof(e.nodes[0]), ranked);
	pthread_mutex_lock(&r->mu);
	r->e[r->next] = e;
	r->next = (r->next + 1) % GW_RECENT_MAX;
	pthread_mutex_unlock(&r->mu);
}

int gw_recent_find(gw_recent *r, const char *collection, const Muri__V1__Vector *query, uint32_t top_k, int level,
		   gw_recent_node *out, size_t max, size_t *n)
{
	uint8_t key[CM_HASH_BYTES];
	if (!r)
		return CM_ERR_NOTFOUND;
	fingerprint(key, collection, query, top_k, level);
	int rc = CM_ERR_NOTFOUND;
	pthread_mutex_lock(&r->mu);
	for (size_t k = 1; k <= GW_RECENT_MAX; k++) { /* newest first */
		const struct entry *e = &r->e[(r->next + GW_RECENT_MAX - k) % GW_RECENT_MAX];
		if (e->used && memcmp(e->key, key, sizeof(key)) == 0) {
			*n = e->n < max ? e->n : max;
			memcpy(out, e->nodes, *n * sizeof(*out));
			rc = CM_OK;
			break;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}
