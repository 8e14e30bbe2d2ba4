/* Binary vectors under the HAMMING metric: faiss's binary indexes, which
 * faiss 1.7.3's C API can search, save and load (IndexBinary_c.h) but not
 * create. An index is an IndexBinaryIDMap (labels: log sequence numbers)
 * over an IndexBinaryFlat (exact) or an IndexBinaryHNSW. A vector of `bits`
 * bits (a multiple of 8) is bits / 8 bytes, bit i in byte i / 8 at bit
 * i % 8 (least significant first, faiss's order); its distance to another is
 * the number of differing bits (cm_answer_hamming, as the gateway
 * recomputes it). Every function catches faiss's exceptions
 * and answers with a cm_err code and a message in err. */
#ifndef IX_FAISS_BINARY_H
#define IX_FAISS_BINARY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IX_BIN_BITS_MAX 65536 /* bits of a binary vector: 8..65536, a multiple of 8 */

enum ix_bin_kind { IX_BIN_FLAT = 1, IX_BIN_HNSW = 2 };

typedef struct ix_bin_index ix_bin_index;

/* A new empty binary index of `kind` for vectors of `bits` bits; HNSW with m
 * links (4..128), ef_construction and ef_search (1..4096). CM_ERR_INVALID
 * naming the parameter ("dimension", "hnsw_m", ...) for one out of range.
 * *out is owned by the caller: ix_bin_free(). */
int ix_bin_create(int kind, uint32_t bits, uint32_t m, uint32_t ef_construction, uint32_t ef_search,
		  ix_bin_index **out, char *err, size_t errlen);
void ix_bin_free(ix_bin_index *ix);
uint32_t ix_bin_bits(const ix_bin_index *ix);
size_t ix_bin_size(const ix_bin_index *ix);
/* The labels in position order (valid until the next add). */
const int64_t *ix_bin_labels(const ix_bin_index *ix);
/* Sets an HNSW's efSearch (no effect on a flat index); not concurrently
 * with a search. */
int ix_bin_set_ef_search(ix_bin_index *ix, uint32_t ef_search, char *err, size_t errlen);
/* Adds n codes (n x bits / 8 bytes) with labels, on one thread, so equal
 * adds give equal graphs on every replica. */
int ix_bin_add(ix_bin_index *ix, size_t n, const uint8_t *codes, const int64_t *labels, char *err, size_t errlen);
/* The same, but an HNSW draws each vector's level from (seed, its position)
 * and inserts vertex by vertex in position order with state kept between
 * calls: a call costs what its vectors cost (faiss's own add allocates
 * locks and a visited table at the index's size every time), and the graph
 * depends only on the codes and how they are grouped into calls, also
 * across a save and load. A flat index adds as ix_bin_add. */
int ix_bin_add_seeded(ix_bin_index *ix, size_t n, const uint8_t *codes, const int64_t *labels, uint64_t seed,
		      char *err, size_t errlen);
/* The k nearest of the stored codes to each of nq queries: per query k
 * Hamming distances and labels, nearest first (ties by position), -1 labels
 * where fewer than k exist. bitmap (bit p of byte p / 8 over positions,
 * nbytes bytes; NULL: every position) restricts the search to the positions
 * it sets: then the admitted codes are scanned exactly, so a filter never
 * costs recall. Runs on the calling thread only. */
int ix_bin_search(const ix_bin_index *ix, size_t nq, const uint8_t *queries, uint32_t k, const uint8_t *bitmap,
		  size_t nbytes, int32_t *distances, int64_t *labels, char *err, size_t errlen);
/* Writes the index to path (faiss's binary format) and fsyncs it; reads it
 * back, checking its kind and bits. */
int ix_bin_save(const ix_bin_index *ix, const char *path, char *err, size_t errlen);
int ix_bin_load(const char *path, int kind, uint32_t bits, uint32_t ef_search, ix_bin_index **out, char *err,
		size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
