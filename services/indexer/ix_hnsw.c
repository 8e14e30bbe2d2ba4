/* The indexer's HNSW walk over faiss's graph arrays; see ix_hnsw.h. */
#include "ix_hnsw.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- distances ----
 * Sixteen lanes: element i goes to lane i % 16 (the tail padded with zeros),
 * each lane a chain of fused multiply-adds, then a fixed reduction tree. The
 * scalar path does exactly that with fmaf, so both round alike. */

static float reduce16(const float acc[16])
{
	float s[8], h[4];
	for (int j = 0; j < 8; j++)
		s[j] = acc[j] + acc[j + 8];
	for (int j = 0; j < 4; j++)
		h[j] = s[j] + s[j + 4];
	return (h[0] + h[2]) + (h[1] + h[3]);
}

static float dist_scalar(const float *a, const float *b, size_t d, int ip)
{
	float acc[16] = {0};
	for (size_t i = 0; i < d; i += 16)
		for (size_t j = 0; j < 16; j++) {
			float x = i + j < d ? a[i + j] : 0.0f, y = i + j < d ? b[i + j] : 0.0f;
			if (ip) {
				acc[j] = fmaf(x, y, acc[j]);
			} else {
				float t = x - y;
				acc[j] = fmaf(t, t, acc[j]);
			}
		}
	float r = reduce16(acc);
	return ip ? -r : r;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 s0, __m256 s1)
{
	__m256 s = _mm256_add_ps(s0, s1);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
	return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma"))) static float ip_avx2(const float *a, const float *b, size_t d)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= d; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	if (i < d) {
		__m256i r = _mm256_set1_epi32((int)(d - i));
		__m256i m0 = _mm256_cmpgt_epi32(r, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
		__m256i m1 = _mm256_cmpgt_epi32(r, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15));
		s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m0), _mm256_maskload_ps(b + i, m0), s0);
		s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i + 8, m1), _mm256_maskload_ps(b + i + 8, m1), s1);
	}
	return -hsum_avx2(s0, s1);
}

__attribute__((target("avx2,fma"))) static float l2_avx2(const float *a, const float *b, size_t d)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= d; i += 16) {
		__m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
		s0 = _mm256_fmadd_ps(t0, t0, s0);
		s1 = _mm256_fmadd_ps(t1, t1, s1);
	}
	if (i < d) {
		__m256i r = _mm256_set1_epi32((int)(d - i));
		__m256i m0 = _mm256_cmpgt_epi32(r, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
		__m256i m1 = _mm256_cmpgt_epi32(r, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15));
		__m256 t0 = _mm256_sub_ps(_mm256_maskload_ps(a + i, m0), _mm256_maskload_ps(b + i, m0));
		__m256 t1 = _mm256_sub_ps(_mm256_maskload_ps(a + i + 8, m1), _mm256_maskload_ps(b + i + 8, m1));
		s0 = _mm256_fmadd_ps(t0, t0, s0);
		s1 = _mm256_fmadd_ps(t1, t1, s1);
	}
	return hsum_avx2(s0, s1);
}
#endif

static float ip_scalar(const float *a, const float *b, size_t d)
{
	return dist_scalar(a, b, d, 1);
}

static float l2_scalar(const float *a, const float *b, size_t d)
{
	return dist_scalar(a, b, d, 0);
}

typedef float (*dist_fn)(const float *, const float *, size_t);

static dist_fn pick(int ip)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return ip ? ip_avx2 : l2_avx2;
#endif
	return ip ? ip_scalar : l2_scalar;
}

float ix_hnsw_distance(const float *a, const float *b, size_t d, int ip)
{
	return pick(ip)(a, b, d);
}

float ix_hnsw_distance_scalar(const float *a, const float *b, size_t d, int ip)
{
	return dist_scalar(a, b, d, ip);
}

/* ---- heaps of (distance, position) ---- */

typedef struct {
	float d;
	int32_t id;
} node;

static inline int before(node a, node b) /* (distance, id) order */
{
	return a.d < b.d || (a.d == b.d && a.id < b.id);
}

typedef struct {
	node *v;
	size_t n, cap;
} heap;

static int heap_reserve(heap *h, size_t n)
{
	if (n <= h->cap)
		return 0;
	size_t cap = h->cap ? h->cap : 256;
	while (cap < n)
		cap *= 2;
	node *v = realloc(h->v, cap * sizeof(node));
	if (!v)
		return -1;
	h->v = v;
	h->cap = cap;
	return 0;
}

/* max = 1: the root is the last in (distance, id) order; 0: the first. */
static inline int above(node a, node b, int max)
{
	return max ? before(b, a) : before(a, b);
}

static inline void heap_push(heap *h, node x, int max)
{
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!above(x, h->v[p], max))
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = x;
}

static inline void heap_pop(heap *h, int max)
{
	node x = h->v[--h->n];
	size_t i = 0, n = h->n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && above(h->v[c + 1], h->v[c], max))
			c++;
		if (!above(h->v[c], x, max))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (n)
		h->v[i] = x;
}

struct ix_hnsw_scratch {
	uint8_t *seen; /* seen[i] == mark: visited in this walk */
	size_t nseen;
	uint8_t mark;
	heap cand, best;
	int32_t *fresh; /* unvisited neighbours of the node being expanded */
	size_t nfresh;
};

ix_hnsw_scratch *ix_hnsw_scratch_new(void)
{
	return calloc(1, sizeof(ix_hnsw_scratch));
}

void ix_hnsw_scratch_free(ix_hnsw_scratch *s)
{
	if (!s)
		return;
	free(s->seen);
	free(s->cand.v);
	free(s->best.v);
	free(s->fresh);
	free(s);
}

/* Starts a walk over ntotal positions, links at most per list. */
static int scratch_begin(ix_hnsw_scratch *s, size_t ntotal, size_t links, size_t ef)
{
	if (s->nseen < ntotal) {
		size_t n = ntotal + ntotal / 4 + 1024;
		uint8_t *v = realloc(s->seen, n);
		if (!v)
			return -1;
		memset(v, 0, n);
		s->seen = v;
		s->nseen = n;
		s->mark = 0;
	}
	if (++s->mark == 0) {
		memset(s->seen, 0, s->nseen);
		s->mark = 1;
	}
	if (s->nfresh < links) {
		int32_t *f = realloc(s->fresh, links * sizeof(int32_t));
		if (!f)
			return -1;
		s->fresh = f;
		s->nfresh = links;
	}
	s->cand.n = s->best.n = 0;
	if (heap_reserve(&s->best, ef + 2) || heap_reserve(&s->cand, ef + links + 2))
		return -1;
	return 0;
}

static inline void prefetch_vec(const float *p, size_t d)
{
	const char *c = (const char *)p;
	for (size_t o = 0; o < d * sizeof(float); o += 64)
		__builtin_prefetch(c + o, 0, 3);
}


static inline const int32_t *links_of(const ix_hnsw_graph *g, int32_t v, int level, size_t *n)
{
	*n = (size_t)(g->cum[level + 1] - g->cum[level]);
	return g->neighbors + g->offsets[v] + g->cum[level];
}

/* Greedy descent from ep through levels top..stop+1 (nearest neighbour
 * moves, (distance, id) order). */
static node descend(const ix_hnsw_graph *g, dist_fn f, const float *q, node ep, int top, int stop)
{
	const size_t d = g->d;
	for (int level = top; level > stop; level--) {
		for (int moved = 1; moved;) {
			moved = 0;
			size_t nl;
			const int32_t *l = links_of(g, ep.id, level, &nl);
			for (size_t j = 0; j < nl && l[j] >= 0; j++)
				prefetch_vec(g->x + (size_t)l[j] * d, d);
			for (size_t j = 0; j < nl && l[j] >= 0; j++) {
				node c = {f(q, g->x + (size_t)l[j] * d, d), l[j]};
				if (before(c, ep)) {
					ep = c;
					moved = 1;
				}
			}
		}
	}
	return ep;
}

/* Best-first beam of ef on one level from ep; the ef best admitted are left
 * in s->best (a max-heap); with post, the ef best of every vertex visited,
 * admitted or not (the caller filters them). 0, or -1 out of memory. */
static int beam(const ix_hnsw_graph *g, ix_hnsw_scratch *s, dist_fn f, const float *q, node ep, int level,
		size_t ef, const ix_select *sel, int post)
{
	if (post)
		sel = NULL;
	const size_t d = g->d;
	const float *x = g->x;
	size_t links = (size_t)(g->cum[level + 1] - g->cum[level]);
	if (scratch_begin(s, g->ntotal, links, ef))
		return -1;
	uint8_t *seen = s->seen, mark = s->mark;
	heap *cand = &s->cand, *best = &s->best;
	heap_push(cand, ep, 0);
	seen[ep.id] = mark;
	if (ix_select_admits(sel, (size_t)ep.id))
		heap_push(best, ep, 1);
	while (cand->n) {
		node c = cand->v[0];
		if (best->n >= ef && before(best->v[0], c))
			break;
		heap_pop(cand, 0);
		const int32_t *l = g->neighbors + g->offsets[c.id] + g->cum[level];
		size_t nf = 0;
		for (size_t j = 0; j < links; j++) {
			int32_t v = l[j];
			if (v < 0)
				break;
			if (seen[v] == mark)
				continue;
			seen[v] = mark;
			prefetch_vec(x + (size_t)v * d, d);
			s->fresh[nf++] = v;
		}
		if (cand->n) /* the next node's links, likely expanded next */
			__builtin_prefetch(g->neighbors + g->offsets[cand->v[0].id] + g->cum[level], 0, 3);
		for (size_t j = 0; j < nf; j++) {
			int32_t v = s->fresh[j];
			node e = {f(q, x + (size_t)v * d, d), v};
			if (best->n < ef || before(e, best->v[0])) {
				heap_push(cand, e, 0);
				if (ix_select_admits(sel, (size_t)v)) {
					heap_push(best, e, 1);
					if (best->n > ef)
						heap_pop(best, 1);
				}
			}
		}
		if (heap_reserve(cand, cand->n + links + 1))
			return -1;
	}
	return 0;
}

/* Moves the best heap out nearest first into out (room for best->n). */
static size_t drain_best(heap *best, node *out)
{
	size_t n = best->n;
	for (size_t i = n; i-- > 0;) {
		out[i] = best->v[0];
		heap_pop(best, 1);
	}
	return n;
}

long ix_hnsw_search(const ix_hnsw_graph *g, ix_hnsw_scratch *s, const float *q, size_t k, size_t ef,
		    const ix_select *sel, int post, float *dist, int64_t *pos)
{
	if (g->entry < 0 || g->ntotal == 0 || k == 0)
		return 0;
	if (ef < k)
		ef = k;
	post = post && sel;
	dist_fn f = pick(g->ip);
	node ep = {f(q, g->x + (size_t)g->entry * g->d, g->d), g->entry};
	ep = descend(g, f, q, ep, g->max_level, 0);
	if (beam(g, s, f, q, ep, 0, ef, sel, post))
		return -1;
	heap *best = &s->best;
	if (post) { /* the admitted among the beam, nearest first */
		size_t nb = best->n, n = 0;
		if (heap_reserve(&s->cand, nb))
			return -1;
		node *all = s->cand.v;
		drain_best(best, all);
		for (size_t i = 0; i < nb && n < k; i++)
			if (ix_select_admits(sel, (size_t)all[i].id)) {
				dist[n] = all[i].d;
				pos[n++] = all[i].id;
			}
		s->cand.n = 0;
		return (long)n;
	}
	while (best->n > k)
		heap_pop(best, 1);
	long n = (long)best->n;
	for (long i = n - 1; i >= 0; i--) {
		dist[i] = best->v[0].d;
		pos[i] = best->v[0].id;
		heap_pop(best, 1);
	}
	return n;
}

/* ---- building: a block of new vectors, planned in parallel ---- */

/* Vector of position id: the graph's, or the block's (from g->ntotal on). */
static inline const float *vec_of(const ix_hnsw_graph *g, const float *bx, int32_t id)
{
	return (size_t)id < g->ntotal ? g->x + (size_t)id * g->d : bx + ((size_t)id - g->ntotal) * g->d;
}

static int cmp_node(const void *a, const void *b)
{
	node x = *(const node *)a, y = *(const node *)b;
	return before(x, y) ? -1 : before(y, x);
}

/* HNSW's neighbour heuristic over c[0..n) sorted by (distance to the base,
 * id): all of them if they fit, else each candidate unless a kept one is
 * nearer to it than the base is, up to max. Writes the kept ids to out (max
 * entries, -1 after them). */
static void select_links(const ix_hnsw_graph *g, const float *bx, dist_fn f, const node *c, size_t n, size_t max,
			 int32_t *out)
{
	size_t k = 0;
	if (n <= max)
		for (; k < n; k++)
			out[k] = c[k].id;
	for (size_t i = 0; i < n && k < max && n > max; i++) {
		const float *v = vec_of(g, bx, c[i].id);
		int good = 1;
		for (size_t j = 0; j < k && good; j++)
			if (f(v, vec_of(g, bx, out[j]), g->d) < c[i].d)
				good = 0;
		if (good)
			out[k++] = c[i].id;
	}
	for (; k < max; k++)
		out[k] = -1;
}

typedef struct {
	int32_t t;   /* target */
	int32_t l;   /* level */
	node src;    /* new neighbour of t, at its distance */
} redge;

static int cmp_redge(const void *a, const void *b)
{
	const redge *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	if (x->l != y->l)
		return x->l < y->l ? -1 : 1;
	return cmp_node(&x->src, &y->src);
}

void ix_hnsw_plan_free(ix_hnsw_plan *p)
{
	free(p->links);
	free(p->loff);
	free(p->chg_node);
	free(p->chg_level);
	free(p->chg_links);
	memset(p, 0, sizeof(*p));
}

int ix_hnsw_plan_block(const ix_hnsw_graph *g, const float *bx, size_t n, const int *levels, size_t efc,
		       int threads, ix_hnsw_scratch **scr, ix_hnsw_plan *p)
{
	const size_t d = g->d, p0 = g->ntotal;
	const int *cum = g->cum;
	dist_fn f = pick(g->ip);
	int failed = 0;
	memset(p, 0, sizeof(*p));
	p->n = n;
	p->entry = g->entry;
	p->max_level = g->max_level;
	if (efc < 1)
		efc = 1;
	/* node i's candidates at level l: cand[i] + l * efc, ncand[i][l] of them */
	node **cand = calloc(n ? n : 1, sizeof(node *));
	size_t **ncand = calloc(n ? n : 1, sizeof(size_t *));
	p->loff = malloc((n + 1) * sizeof(size_t));
	if (!cand || !ncand || !p->loff) {
		failed = 1;
		goto out;
	}
	p->loff[0] = 0;
	for (size_t i = 0; i < n; i++) {
		if (levels[i] < 1 || levels[i] >= g->ncum) {
			failed = 1;
			goto out;
		}
		p->loff[i + 1] = p->loff[i] + (size_t)cum[levels[i]];
	}
	p->links = malloc((p->loff[n] ? p->loff[n] : 1) * sizeof(int32_t));
	if (!p->links) {
		failed = 1;
		goto out;
	}
	/* 1. each new vector searches the graph as it was before the block */
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
	for (size_t i = 0; i < n; i++) {
		ix_hnsw_scratch *s = scr[omp_get_thread_num()];
		int top = levels[i] - 1;
		cand[i] = malloc((size_t)(top + 1) * efc * sizeof(node));
		ncand[i] = calloc((size_t)(top + 1), sizeof(size_t));
		if (!cand[i] || !ncand[i]) {
#pragma omp atomic write
			failed = 1;
			continue;
		}
		if (g->entry < 0)
			continue;
		const float *q = bx + i * d;
		node ep = {f(q, g->x + (size_t)g->entry * d, d), g->entry};
		ep = descend(g, f, q, ep, g->max_level, top);
		for (int l = top < g->max_level ? top : g->max_level; l >= 0; l--) {
			if (beam(g, s, f, q, ep, l, efc, NULL, 0)) {
#pragma omp atomic write
				failed = 1;
				break;
			}
			ncand[i][l] = drain_best(&s->best, cand[i] + (size_t)l * efc);
			ep = cand[i][(size_t)l * efc];
		}
	}
	if (failed)
		goto out;
	/* 2. its links: the heuristic over what it found and every other new
	 * vector of the level (exact) */
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
	for (size_t i = 0; i < n; i++) {
		node *tmp = malloc((efc + n) * sizeof(node));
		if (!tmp) {
#pragma omp atomic write
			failed = 1;
			continue;
		}
		const float *q = bx + i * d;
		for (int l = 0; l < levels[i]; l++) {
			size_t m = ncand[i][l];
			memcpy(tmp, cand[i] + (size_t)l * efc, m * sizeof(node));
			for (size_t j = 0; j < n; j++)
				if (j != i && levels[j] > l)
					tmp[m++] = (node){f(q, bx + j * d, d), (int32_t)(p0 + j)};
			qsort(tmp, m, sizeof(node), cmp_node);
			select_links(g, bx, f, tmp, m, (size_t)(cum[l + 1] - cum[l]), p->links + p->loff[i] + cum[l]);
		}
		free(tmp);
	}
	if (failed)
		goto out;
	/* 3. reverse links, per (target, level) in (distance, id) order */
	size_t ne = 0;
	for (size_t i = 0; i < n; i++)
		for (int l = 0; l < levels[i]; l++)
			for (int j = cum[l]; j < cum[l + 1] && p->links[p->loff[i] + (size_t)j] >= 0; j++)
				ne++;
	redge *e = malloc((ne ? ne : 1) * sizeof(redge));
	size_t *grp = malloc((ne + 1) * sizeof(size_t));
	if (!e || !grp) {
		free(e);
		free(grp);
		failed = 1;
		goto out;
	}
	ne = 0;
	for (size_t i = 0; i < n; i++) {
		const float *q = bx + i * d;
		for (int l = 0; l < levels[i]; l++)
			for (int j = cum[l]; j < cum[l + 1]; j++) {
				int32_t t = p->links[p->loff[i] + (size_t)j];
				if (t < 0)
					break;
				e[ne++] = (redge){t, l, {f(q, vec_of(g, bx, t), d), (int32_t)(p0 + i)}};
			}
	}
	qsort(e, ne, sizeof(redge), cmp_redge);
	size_t ng = 0, nchg = 0, chg_slots = 0;
	for (size_t i = 0; i < ne; i++)
		if (i == 0 || e[i].t != e[i - 1].t || e[i].l != e[i - 1].l) {
			grp[ng++] = i;
			if ((size_t)e[i].t < p0) {
				nchg++;
				chg_slots += (size_t)(cum[e[i].l + 1] - cum[e[i].l]);
			}
		}
	grp[ng] = ne;
	p->chg_node = malloc((nchg ? nchg : 1) * sizeof(int32_t));
	p->chg_level = malloc((nchg ? nchg : 1) * sizeof(int));
	p->chg_links = malloc((chg_slots ? chg_slots : 1) * sizeof(int32_t));
	size_t *gout = malloc((ng ? ng : 1) * sizeof(size_t)); /* a frozen target's slot in chg_links */
	if (!p->chg_node || !p->chg_level || !p->chg_links || !gout) {
		free(e);
		free(grp);
		free(gout);
		failed = 1;
		goto out;
	}
	p->nchg = nchg;
	nchg = chg_slots = 0;
	for (size_t k = 0; k < ng; k++) {
		const redge *r = &e[grp[k]];
		if ((size_t)r->t < p0) {
			p->chg_node[nchg] = r->t;
			p->chg_level[nchg++] = r->l;
			gout[k] = chg_slots;
			chg_slots += (size_t)(cum[r->l + 1] - cum[r->l]);
		}
	}
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
	for (size_t k = 0; k < ng; k++) {
		const redge *r = &e[grp[k]];
		size_t nin = grp[k + 1] - grp[k], max = (size_t)(cum[r->l + 1] - cum[r->l]);
		int32_t t = r->t;
		int frozen = (size_t)t < p0;
		const int32_t *cur = frozen ? g->neighbors + g->offsets[t] + cum[r->l]
					    : p->links + p->loff[(size_t)t - p0] + cum[r->l];
		int32_t *dst = frozen ? p->chg_links + gout[k] : p->links + p->loff[(size_t)t - p0] + cum[r->l];
		node *all = malloc((max + nin) * sizeof(node));
		if (!all) {
#pragma omp atomic write
			failed = 1;
			continue;
		}
		size_t m = 0;
		for (size_t j = 0; j < max && cur[j] >= 0; j++)
			all[m++] = (node){0, cur[j]};
		size_t had = m;
		for (size_t j = 0; j < nin; j++) {
			int dup = 0;
			for (size_t h = 0; h < had && !dup; h++)
				dup = all[h].id == r[j].src.id;
			if (!dup)
				all[m++] = r[j].src;
		}
		if (m <= max) {
			for (size_t j = 0; j < m; j++)
				dst[j] = all[j].id;
			for (size_t j = m; j < max; j++)
				dst[j] = -1;
		} else {
			const float *tv = vec_of(g, bx, t);
			for (size_t j = 0; j < had; j++)
				all[j].d = f(tv, vec_of(g, bx, all[j].id), d);
			qsort(all, m, sizeof(node), cmp_node);
			select_links(g, bx, f, all, m, max, dst);
		}
		free(all);
	}
	free(e);
	free(grp);
	free(gout);
	/* the entry point: the first new vector of a level above the graph's */
	for (size_t i = 0; i < n; i++)
		if (p->entry < 0 || levels[i] - 1 > p->max_level) {
			p->entry = (int32_t)(p0 + i);
			p->max_level = levels[i] - 1;
		}
out:
	for (size_t i = 0; i < n && cand && ncand; i++) {
		free(cand[i]);
		free(ncand[i]);
	}
	free(cand);
	free(ncand);
	if (failed) {
		ix_hnsw_plan_free(p);
		return -1;
	}
	return 0;
}
