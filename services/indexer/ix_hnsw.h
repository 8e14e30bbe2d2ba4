/* The HNSW walk of the indexer over a faiss HNSW graph with flat storage:
 * greedy descent on the upper levels, a best-first beam of ef on level 0,
 * optionally keeping only positions admitted by a bitmap. Faster than
 * faiss 1.7.3's own search (which allocates an O(ntotal) visited table per
 * call, goes through a virtual distance computer per neighbour and never
 * prefetches): per-thread scratch reused across calls, a neighbour's vector
 * prefetched before distances are taken, and one distance kernel whose
 * result does not depend on the CPU (an AVX2/FMA path and a scalar path that
 * round identically), so replicas on different machines walk alike.
 * Ties are broken by (distance, position) everywhere. */
#ifndef IX_HNSW_H
#define IX_HNSW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A read-only view of faiss's HNSW arrays (faiss::HNSW and its IndexFlat). */
typedef struct ix_hnsw_graph {
	const int32_t *neighbors; /* all link lists, -1 ends a list early */
	const size_t *offsets;    /* node i's lists start at neighbors[offsets[i]] */
	const int *cum;           /* cum[l]: links of levels < l in each node's block */
	int ncum;                 /* entries of cum (levels + 1) */
	const int *levels;        /* levels[i]: node i has levels 0..levels[i]-1 */
	int32_t entry;            /* entry point, -1 when empty */
	int max_level;
	const float *x; /* ntotal x d vectors */
	size_t d, ntotal;
	int ip; /* 1: distance is -<q, x> (inner product), 0: squared L2 */
} ix_hnsw_graph;

/* Which positions a search may return: those set in bitmap (bit i of byte
 * i/8; positions past nbytes * 8 are not admitted; NULL: every position)
 * that admit(arg, position) also admits, when admit is set. A filter is
 * evaluated this way per visited position, without building a set of the
 * positions it matches first. */
typedef struct ix_select {
	const uint8_t *bitmap;
	size_t nbytes;
	int (*admit)(const void *arg, size_t pos);
	const void *arg;
} ix_select;

static inline int ix_select_admits(const ix_select *s, size_t pos)
{
	if (!s)
		return 1;
	if (s->bitmap && (pos >> 3 >= s->nbytes || !((s->bitmap[pos >> 3] >> (pos & 7)) & 1)))
		return 0;
	return !s->admit || s->admit(s->arg, pos);
}

/* Per-thread working memory: a visited table and the two heaps. */
typedef struct ix_hnsw_scratch ix_hnsw_scratch;
ix_hnsw_scratch *ix_hnsw_scratch_new(void);
void ix_hnsw_scratch_free(ix_hnsw_scratch *s);

/* The muri walk distance between a and b (d floats): -<a, b> or |a - b|^2,
 * rounded the same on every CPU. */
float ix_hnsw_distance(const float *a, const float *b, size_t d, int ip);
/* The same on the portable path, whatever the CPU (for tests). */
float ix_hnsw_distance_scalar(const float *a, const float *b, size_t d, int ip);

/* The k nearest positions to q with a beam of ef (>= k) among positions
 * sel admits (NULL: all). The beam
 * keeps ef admitted positions and the walk goes on while a candidate is
 * nearer than the worst of them. With post (and sel), the beam is the
 * unfiltered one (ef positions, admitted or not) and the admitted among
 * them are returned: the cost of an unfiltered search, for a filter broad
 * enough that ef holds k admitted many times over. Writes walk distances
 * (ix_hnsw_distance) and positions nearest first, (distance, position)
 * ascending; returns how many were found (<= k; fewer than k when post
 * found too few admitted). CM_ERR_NOMEM as a negative value -1. */
long ix_hnsw_search(const ix_hnsw_graph *g, ix_hnsw_scratch *s, const float *q, size_t k, size_t ef,
		    const ix_select *sel, int post, float *dist, int64_t *pos);

/* The links a block of n new vectors bx (positions g->ntotal onwards, node
 * i with levels[i] levels) gets, and the lists of existing nodes they change.
 * Planned against the graph as it is (not changed here), so searches may go
 * on meanwhile; applied by the caller. Each new vector searches the graph
 * with a beam of efc on each of its levels, adds every other new vector of
 * the level (exact distances) and keeps HNSW's neighbour heuristic of them;
 * then each node that a new vector links to takes it back, in (distance,
 * id) order, shrinking by the heuristic when full. The plan depends only on
 * the graph and the block, not on threads (the OpenMP team size; scr holds
 * one scratch per thread). */
typedef struct ix_hnsw_plan {
	size_t n;
	int32_t *links; /* node i's whole block of links at links + loff[i] */
	size_t *loff;   /* n + 1 */
	size_t nchg;    /* changed lists of existing nodes: */
	int32_t *chg_node;
	int *chg_level;
	int32_t *chg_links; /* consecutive, each cum[l + 1] - cum[l] entries */
	int32_t entry;      /* the graph's entry point and top level after it */
	int max_level;
} ix_hnsw_plan;

int ix_hnsw_plan_block(const ix_hnsw_graph *g, const float *bx, size_t n, const int *levels, size_t efc,
		       int threads, ix_hnsw_scratch **scr, ix_hnsw_plan *p);
void ix_hnsw_plan_free(ix_hnsw_plan *p);

#ifdef __cplusplus
}
#endif

#endif
