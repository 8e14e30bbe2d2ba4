/* Node ranks across searches and the choice of replicas (gw_rank.h). */
#include "gw_rank.h"
#include "cm_err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int gw_ranks_init(gw_ranks *r, size_t cap, double alpha)
{
	memset(r, 0, sizeof(*r));
	r->e = calloc(cap ? cap : 1, sizeof(*r->e));
	if (!r->e)
		return CM_ERR_NOMEM;
	r->cap = cap ? cap : 1;
	r->alpha = alpha > 0 && alpha <= 1 ? alpha : GW_RANK_ALPHA;
	return CM_OK;
}

void gw_ranks_free(gw_ranks *r)
{
	if (!r)
		return;
	free(r->e);
	memset(r, 0, sizeof(*r));
}

static gw_rank_entry *find(const gw_ranks *r, const uint8_t *node)
{
	for (size_t i = 0; i < r->n; i++)
		if (memcmp(r->e[i].node, node, CM_PK_BYTES) == 0)
			return &r->e[i];
	return NULL;
}

static gw_rank_entry *find_or_add(gw_ranks *r, const uint8_t *node)
{
	gw_rank_entry *e = find(r, node);
	if (e)
		return e;
	if (r->n < r->cap) {
		e = &r->e[r->n++];
	} else {
		/* full: the node with the fewest merges gives its place */
		e = &r->e[0];
		for (size_t i = 1; i < r->n; i++)
			if (r->e[i].merges < e->merges)
				e = &r->e[i];
	}
	memset(e, 0, sizeof(*e));
	memcpy(e->node, node, CM_PK_BYTES);
	e->share = 1;
	return e;
}

static double avg(double old, double x, double alpha, uint64_t n)
{
	return n == 0 ? x : old + alpha * (x - old);
}

void gw_ranks_update(gw_ranks *r, const gw_merge_result *m)
{
	for (size_t i = 0; i < m->nranks; i++) {
		const gw_node_rank *nr = &m->ranks[i];
		gw_rank_entry *e = find_or_add(r, nr->node);
		double a = r->alpha;
		e->lie = avg(e->lie, nr->liar ? 1 : 0, a, e->merges);
		e->fail = avg(e->fail, nr->answered ? 0 : 1, a, e->merges);
		if (nr->answered) {
			e->share = avg(e->share, nr->liar ? 0 : nr->share, a, e->answers);
			e->latency_ms = avg(e->latency_ms, nr->latency_us / 1000.0, a, e->answers);
			e->answers++;
		}
		e->lies += (uint64_t)nr->liar;
		e->merges++;
	}
}

int gw_ranks_get(const gw_ranks *r, const uint8_t node[CM_PK_BYTES], gw_rank_entry *out)
{
	const gw_rank_entry *e = find(r, node);
	if (!e)
		return CM_ERR_NOTFOUND;
	*out = *e;
	return CM_OK;
}

double gw_ranks_score(const gw_ranks *r, const uint8_t node[CM_PK_BYTES])
{
	const gw_rank_entry *e = find(r, node);
	if (!e)
		return 1.0;
	return e->share * (1.0 - e->fail) - e->latency_ms / GW_RANK_LATENCY_MS;
}

size_t gw_level_count(int level, size_t n)
{
	if (n == 0)
		return 0;
	if (level == MURI__V1__CONSISTENCY_LEVEL__ONE)
		return 1;
	if (level == MURI__V1__CONSISTENCY_LEVEL__ALL)
		return n;
	return n / 2 + 1;
}

typedef struct pick {
	size_t i;
	int suspect;
	long bucket;
	uint64_t draw;
} pick;

static int pick_cmp(const void *x, const void *y)
{
	const pick *a = x, *b = y;
	if (a->suspect != b->suspect)
		return a->suspect - b->suspect;
	if (a->bucket != b->bucket)
		return a->bucket > b->bucket ? -1 : 1;
	if (a->draw != b->draw)
		return a->draw < b->draw ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i ? 1 : 0;
}

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

size_t gw_pick(const gw_ranks *r, const uint8_t (*replicas)[CM_PK_BYTES], size_t n, int level, uint64_t salt,
	       size_t *chosen)
{
	size_t want = gw_level_count(level, n);
	pick stack[64], *p = n <= 64 ? stack : malloc(n * sizeof(*p));
	if (!p) {
		/* no memory to order them: the first ones, in the order given */
		for (size_t i = 0; i < want; i++)
			chosen[i] = i;
		return want;
	}
	for (size_t i = 0; i < n; i++) {
		const gw_rank_entry *e = find(r, replicas[i]);
		uint64_t h = salt;
		for (int b = 0; b < 8; b++)
			h = mix(h ^ ((uint64_t)replicas[i][4 * b] << 24 | (uint64_t)replicas[i][4 * b + 1] << 16 |
				     (uint64_t)replicas[i][4 * b + 2] << 8 | replicas[i][4 * b + 3]));
		double s = gw_ranks_score(r, replicas[i]);
		p[i] = (pick){.i = i, .suspect = e && e->lie > GW_RANK_SUSPECT,
			      .bucket = (long)floor(s * GW_RANK_BUCKETS), .draw = h};
	}
	qsort(p, n, sizeof(*p), pick_cmp);
	for (size_t i = 0; i < want; i++)
		chosen[i] = p[i].i;
	if (p != stack)
		free(p);
	return want;
}

typedef struct rcand {
	size_t i;
	double share, score;
	const uint8_t *node;
} rcand;

static int rcand_cmp(const void *x, const void *y)
{
	const rcand *a = x, *b = y;
	if (a->share != b->share)
		return a->share > b->share ? -1 : 1;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return memcmp(a->node, b->node, CM_PK_BYTES);
}

size_t gw_rank_receipt(const gw_ranks *r, const gw_rank_input *in, size_t n, size_t *order, size_t max)
{
	rcand stack[64], *c = n <= 64 ? stack : malloc(n * sizeof(*c));
	size_t k = 0;
	if (!c)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!in[i].answered || in[i].lies)
			continue;
		double share = in[i].expected ? (double)in[i].contributed / (double)in[i].expected : 1.0;
		c[k++] = (rcand){.i = i, .share = share > 1 ? 1 : share, .score = gw_ranks_score(r, in[i].node),
				 .node = in[i].node};
	}
	qsort(c, k, sizeof(*c), rcand_cmp);
	if (k > max)
		k = max;
	for (size_t i = 0; i < k; i++)
		order[i] = c[i].i;
	if (c != stack)
		free(c);
	return k;
}
