/* A fragment's index spec (dimension, metric, index kind and parameters) and
 * the FAISS index built from it through the faiss C API: an IndexIDMap whose
 * labels are log sequence numbers, added in increasing order. Distances are
 * muri's: COSINE 1 - cos (vectors normalized), L2 squared, DOT_PRODUCT -dot.
 * HAMMING (binary vectors, dim in bits) is served by faiss's binary flat or
 * HNSW index (ix_faiss_binary) behind the same calls: its distance is the
 * count of differing bits, and a selector search scans the admitted codes
 * exactly (or, for tombstones alone, walks the graph and drops them). */
#ifndef IX_INDEX_H
#define IX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "cm_arena.h"
#include "ix_faiss_ext.h"
#include "indexer.pb-c.h"
#include "types.pb-c.h"

/* The numbers of muri.v1.Metric, IndexKind and Quantizer. */
enum ix_metric { IX_COSINE = 1, IX_L2 = 2, IX_DOT = 3, IX_HAMMING = 4 };
enum ix_kind { IX_FLAT = 1, IX_HNSW = 2, IX_IVF = 3 };
enum ix_quantizer { IX_Q_NONE = 0, IX_Q_SQ8 = 1, IX_Q_PQ = 2 };

/* Defaults for parameters left 0. */
#define IX_DEFAULT_HNSW_M 32
#define IX_DEFAULT_EF_CONSTRUCTION 200
#define IX_DEFAULT_EF_SEARCH 128
#define IX_DEFAULT_NLIST 1024
#define IX_DEFAULT_NPROBE_DIV 16   /* nprobe = nlist / 16 (at least 1) */
#define IX_FACTORY_MAX 64

typedef struct ix_spec {
	uint32_t dim;            /* 1..4096 */
	int metric;              /* enum ix_metric */
	int kind;                /* enum ix_kind */
	uint32_t hnsw_m;         /* 4..128 */
	uint32_t ef_construction; /* 8..4096 */
	uint32_t ef_search;      /* 1..4096 */
	uint32_t nlist;          /* 1..65536 */
	uint32_t nprobe;         /* 1..nlist */
	int quantizer;           /* enum ix_quantizer */
	uint32_t pq_m;           /* divides dim; PQ with IVF only */
} ix_spec;

/* Fills unset fields (0, METRIC_UNSPECIFIED, INDEX_UNSPECIFIED) with defaults
 * and checks every limit, naming the field ("schema.index.hnsw_m") in err.
 * Combinations faiss 1.7.3 cannot serve are refused: PQ needs IVF (HNSW-PQ
 * ignores the metric and IndexPQ takes no selector). */
int ix_spec_normalize(ix_spec *s, char *err, size_t errlen);
/* From a FragmentSchema (index may be NULL: defaults), normalized. */
int ix_spec_from_pb(const Muri__V1__FragmentSchema *pb, ix_spec *out, char *err, size_t errlen);
/* A FragmentSchema built in a. */
int ix_spec_to_pb(const ix_spec *s, cm_arena *a, Muri__V1__FragmentSchema **out);
/* Floats per vector row in a fragment's buffers: the dimension, or for
 * HAMMING the dim / 8 code bytes rounded up to whole floats (the bytes are
 * copied into the row, never read as numbers). */
uint32_t ix_spec_row(const ix_spec *s);
/* 1 if the spec's index must be trained before vectors can be added. */
int ix_spec_needs_training(const ix_spec *s);
/* Vectors a trainable index waits for: 39 per IVF list (and 39 per PQ
 * centroid), 1000 for SQ8 alone. */
uint32_t ix_spec_train_min(const ix_spec *s);
/* The faiss index_factory string, e.g. "IDMap,HNSW32" or "IDMap,IVF1024,SQ8";
 * stand_in gives the exact "IDMap,Flat" used before training. */
void ix_spec_factory(const ix_spec *s, int stand_in, char out[IX_FACTORY_MAX]);

typedef struct ix_index ix_index;

/* A new empty index: the spec's, or the exact stand-in. Owned by the caller,
 * released with ix_index_free(). Errors are faiss's message in err. */
int ix_index_create(const ix_spec *s, int stand_in, ix_index **out, char *err, size_t errlen);
void ix_index_free(ix_index *ix);
/* Sets the HNSW efSearch / IVF nprobe of a built index (0: unchanged); not
 * concurrently with a search. */
int ix_index_set_search_params(ix_index *ix, uint32_t ef_search, uint32_t nprobe, char *err, size_t errlen);
/* 1 for the stand-in Flat, 0 for the spec's index. */
int ix_index_is_stand_in(const ix_index *ix);
/* 1 if the index keeps vectors exactly, so an exhaustive search is exact. */
int ix_index_is_exact(const ix_index *ix);
/* Trains on n prepared vectors (ix_vec_prepare), with the calling thread's
 * OpenMP settings; k-means is seeded by faiss, so equal input gives an equal
 * index. */
int ix_index_train(ix_index *ix, size_t n, const float *x, char *err, size_t errlen);
/* Adds n prepared vectors with labels greater than every label present, in
 * increasing order. An HNSW over exact storage inserts them in blocks of
 * IX_INDEX_BLOCK from the start of the call, planned on
 * ix_index_build_threads() threads (ix_faiss_add), each vector at a level
 * drawn from (seed, position): its graph depends on the vectors and how they
 * are grouped into calls, never on the thread count; other indexes depend on
 * the grouping too (IVF assigns a group with BLAS). Calls cost O(n), not
 * O(index size). */
int ix_index_add(ix_index *ix, size_t n, const float *x, const int64_t *labels, uint64_t seed,
		 char *err, size_t errlen);
/* Threads an HNSW build plans a block on (process-wide, 1..64, default 1). */
void ix_index_set_build_threads(int n);
int ix_index_build_threads(void);
#define IX_INDEX_BLOCK IX_FAISS_HNSW_BLOCK
/* 1 if the index adds in blocks (ix_index_prepare / ix_index_commit): an
 * HNSW over exact storage. */
int ix_index_blocks(const ix_index *ix);
/* The two steps of ix_index_add for one block of n <= IX_INDEX_BLOCK
 * prepared vectors: prepare reads the index only (searches may go on; the
 * index must not change before the commit), commit applies it with labels
 * under the same rules as ix_index_add. The same blocks give the same graph
 * as ix_index_add calls of those blocks. */
int ix_index_prepare(ix_index *ix, size_t n, const float *x, uint64_t seed, char *err, size_t errlen);
int ix_index_commit(ix_index *ix, const int64_t *labels, char *err, size_t errlen);
/* The faiss index (an IndexIDMap) behind ix, for benchmarks. */
FaissIndex *ix_index_faiss(const ix_index *ix);
/* Vectors in the index, and their labels in position order (valid until the
 * next add). */
size_t ix_index_size(const ix_index *ix);
const int64_t *ix_index_labels(const ix_index *ix);
/* The k nearest to a prepared query among the positions sel admits (NULL:
 * all; admitted of them, or an upper bound, 0 if not known), on the calling
 * thread. Writes
 * up to k (label, muri distance) pairs, nearest first, and their count to
 * *n. exhaustive and admitted as ix_faiss_search. */
int ix_index_search(const ix_index *ix, const float *q, uint32_t k, int exhaustive,
		    const ix_select *sel, size_t admitted, float *dist, int64_t *labels,
		    size_t *n, char *err, size_t errlen);
/* The k nearest to a prepared query among the npos given positions, by
 * computing the distance to each of them alone (ix_faiss_scan): exact, and
 * the cheapest path for a filter that admits few positions. Output as
 * ix_index_search. CM_ERR_STATE for an index that keeps no exact vectors to
 * read by position (IVF, quantized, binary): search it another way. */
int ix_index_scan(const ix_index *ix, const float *q, uint32_t k, const size_t *pos, size_t npos, float *dist,
		  int64_t *labels, size_t *n, char *err, size_t errlen);
/* 1 if ix_index_scan over `admitted` positions costs less than a search
 * under a filter admitting them (ix_faiss_scan_cheaper). */
int ix_index_scan_cheaper(const ix_index *ix, uint32_t k, size_t admitted);
/* Writes the index to path and fsyncs it. */
int ix_index_save(const ix_index *ix, const char *path, char *err, size_t errlen);
/* Reads an index written by ix_index_save and checks that it matches the
 * spec (dimension, metric, stand-in or not); applies efSearch / nprobe. */
int ix_index_load(const ix_spec *s, const char *path, int stand_in, ix_index **out, char *err,
		  size_t errlen);

/* Prepares n vectors for the index in place: COSINE normalizes them. */
void ix_vec_prepare(const ix_spec *s, float *x, size_t n);
/* Copies a record's vector into a row of ix_spec_row floats: vec's dim
 * values, or for HAMMING bin's dim / 8 bytes (the rest of the row zero). */
void ix_vec_row(const ix_spec *s, const float *vec, const uint8_t *bin, float *row);
/* 1 if a vector can be indexed under the metric (COSINE needs a norm > 0). */
int ix_vec_usable(const ix_spec *s, const float *x);
/* muri distances from the prepared query q (HAMMING: rows of
 * ix_spec_row floats carrying the packed codes; the count of differing bits) to n prepared rows, with the
 * kernels faiss uses inside its indexes (so values match theirs). */
void ix_distances(const ix_spec *s, const float *q, const float *rows, size_t n, float *out);

#endif
