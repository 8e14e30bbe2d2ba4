/* What the faiss 1.7.3 C API lacks, over its C++ API: search with an id
 * selector (a bitmap over the positions of an IndexIDMap's sub-index) and
 * the index's own efSearch / nprobe (an HNSW over flat storage walked by
 * ix_hnsw.c), and an incremental, deterministic, parallel HNSW add.
 * Every function catches faiss's exceptions and answers with a cm_err code. */
#ifndef IX_FAISS_EXT_H
#define IX_FAISS_EXT_H

#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/Index_c.h>

#include "ix_hnsw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Searches the nq queries x of an IndexIDMap (or a plain index) for the k
 * nearest, considering only sub-index positions sel admits (ix_select: a
 * bitmap and/or a per-position test; NULL: all); admitted is how many
 * positions it admits, or an upper bound (0: not known). The sub-index's own efSearch (raised to k) or
 * nprobe applies. Under a selector an HNSW keeps the efSearch best admitted
 * vertices and walks on until no candidate is nearer than the worst of them
 * (faiss's own walk keeps efSearch vertices of any kind and filters those,
 * so a filter admitting 5% found about 5% of a beam), and an IVF probes
 * nprobe * ntotal / admitted lists; a broad filter keeps the admitted of
 * the unfiltered beam and where the walk would cost more than a scan the
 * storage is scanned instead (ix_faiss_set_filter_rules). exhaustive = 1 visits every stored vector:
 * an HNSW searches its storage, an IVF probes every list. Results are faiss's:
 * per query k distances (similarities for inner-product indexes) and labels
 * translated through the id map, -1 where fewer than k were found. Runs on
 * the calling thread only. CM_ERR_INVALID if the index cannot take a
 * selector (IndexPQ), CM_ERR_INTERNAL for other faiss errors; err says which. */
int ix_faiss_search(const FaissIndex *index, size_t nq, const float *x, int64_t k, int exhaustive,
		    const ix_select *sel, size_t admitted, float *distances, int64_t *labels,
		    char *err, size_t errlen);
/* How a filtered HNSW search over flat storage picks its path, from the
 * filter's share of the index (1 / w, w = ntotal / admitted), k and the
 * index's beam ef. It walks as an unfiltered search with a beam of
 * max(ef, post_factor * k * w), which holds post_factor * k admitted
 * vertices in expectation, and keeps the admitted of the beam; or, where
 * that costs more than a scan (a beam entry costs about scan_factor
 * distances; a scan tests every position, 1 / IX_FAISS_TEST_COST of a
 * distance each, and computes ntotal / w distances), it scans the storage.
 * With post_factor 0 the walk keeps ef admitted vertices in its beam
 * instead (visiting about ef * w), and scans where ef * scan_factor * w * w
 * >= ntotal. Measured by filter-walk-bench (scripts/bench.sh filter) at
 * 100,000 x 100, efSearch 128: the unfiltered beam filtered costs 1.1-1.6x
 * an unfiltered search from 50% down to 15% at recall 0.99-0.997, where the
 * walk keeping ef admitted costs 2.0x at 50% and 5.8x at 15%; the scan
 * overtakes both near 5%. Process-wide (the indexer's config keys
 * filter_post_factor and filter_scan_factor). */
#define IX_FAISS_SCAN_FACTOR 16
#define IX_FAISS_POST_FACTOR 3
#define IX_FAISS_TEST_COST 32
void ix_faiss_set_filter_rules(double scan_factor, double post_factor);
void ix_faiss_filter_rules(double *scan_factor, double *post_factor);

/* The k nearest to the query x among the n given positions of the
 * sub-index, by a scan of those positions alone: for an index whose storage
 * keeps the vectors exactly (a flat index, or an HNSW over flat storage),
 * where a filter admits few enough positions that visiting them costs less
 * than testing every position (faiss's selector scan) or walking the graph.
 * Ties go to the lower position. Results as ix_faiss_search (faiss's values
 * and kernels, labels through the id map, -1 past the found). CM_ERR_STATE
 * when the index keeps no such storage (IVF, quantized, binary): the caller
 * searches another way. */
int ix_faiss_scan(const FaissIndex *index, const float *x, int64_t k, const size_t *pos, size_t n,
		  float *distances, int64_t *labels, char *err, size_t errlen);
/* 1 if ix_faiss_scan over `admitted` positions costs less than a search of
 * the index under a filter admitting them (the rules above: the beam the
 * walk would take, at scan_factor distances an entry, against one distance
 * and IX_FAISS_GATHER_COST of one for listing each admitted position); 0
 * otherwise or when the index cannot be scanned by position. */
#define IX_FAISS_GATHER_COST 0.5
int ix_faiss_scan_cheaper(const FaissIndex *index, int64_t k, size_t admitted);

/* Per-index state of ix_faiss_add (HNSW's node locks and visited table,
 * kept between calls). Owned by the caller: ix_faiss_adder_free(). */
typedef struct ix_faiss_adder ix_faiss_adder;

/* Adds n vectors with labels (an IndexIDMap) on `threads` threads. An HNSW
 * (under the id map) over flat storage takes them in blocks of
 * IX_FAISS_HNSW_BLOCK from the start of the call (ix_hnsw_plan_block: planned
 * in parallel against the graph before the block, then applied), each vector
 * at a level drawn from (seed, its position): the graph is a function of the
 * vectors and how they are grouped into calls, whatever the thread count,
 * and whether or not the index was saved and reloaded in between. An HNSW
 * over other storage uses faiss's insertion vertex by vertex (one thread),
 * with state kept in *adder (created on first use). Other indexes use faiss's
 * add_with_ids. On an error the index may hold part of the vectors. */
int ix_faiss_add(FaissIndex *index, ix_faiss_adder **adder, size_t n, const float *x,
		 const int64_t *labels, uint64_t seed, int threads, char *err, size_t errlen);
#define IX_FAISS_HNSW_BLOCK 128
/* The two steps of adding one block (n <= IX_FAISS_HNSW_BLOCK) to an HNSW
 * over flat storage, as ix_faiss_add does: prepare only reads the index (the
 * costly part; searches may run meanwhile, the index must not change until
 * the commit), commit applies the block with its labels. CM_ERR_INVALID for
 * other indexes. */
int ix_faiss_block_prepare(FaissIndex *index, ix_faiss_adder **adder, size_t n, const float *x, uint64_t seed,
			   int threads, char *err, size_t errlen);
int ix_faiss_block_commit(FaissIndex *index, ix_faiss_adder *adder, const int64_t *labels, char *err,
			  size_t errlen);
void ix_faiss_adder_free(ix_faiss_adder *adder);

#ifdef __cplusplus
}
#endif

#endif
