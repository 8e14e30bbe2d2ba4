/* The HNSW defaults (M, efConstruction) chosen on the data: for each pair
 * of a grid, muri's index built and searched in process (inproc_muri, the
 * indexer's own build and walk) over a sweep of efSearch; printed per pair:
 * build wall and CPU time, the index's bytes per vector, recall@10 and
 * CPU-QPS per efSearch; then, per target recall, each pair's CPU-QPS at that
 * recall (interpolated) and the best pair. */
#ifndef INPROC_TUNE_H
#define INPROC_TUNE_H

#include <stddef.h>
#include <stdint.h>

/* grid: "M1,M2,..:E1,E2,.." (at most 8 of each). 0, or -1 on a bad grid or a
 * failed build. */
int inproc_tune(const char *grid, const float *base, size_t nb, const float *queries, size_t nq, size_t dim,
		size_t batch, int threads, double (*recall_of)(const int64_t *labels));

#endif
