/* The indexer bench's in-process muri rows: the index built through
 * ix_index_add (the indexer's own build path) and searched through
 * ix_index_search, one query per call from T threads. */
#ifndef INPROC_MURI_H
#define INPROC_MURI_H

#include <stddef.h>
#include <stdint.h>

struct inproc_row {
	int ef;
	double recall, qps, cpu_qps; /* cpu_qps: nq * threads / CPU seconds of the threads */
	double f_recall, f_qps, f_cpu_qps; /* faiss's own search (IndexHNSW::search) over the same graph */
};

/* CPU seconds of the calling thread, of the process. */
double inproc_thread_cpu_s(void);
double inproc_process_cpu_s(void);

/* The metric inproc_muri builds with (enum ix_metric; IX_COSINE unless set). */
void inproc_muri_set_metric(int metric);
/* The seed of the HNSW level draws (42 unless set; an indexer uses its
 * fragment's IndexSpec.seed, so the same seed and batch give its graph). */
void inproc_muri_set_seed(uint64_t seed);

/* Whether inproc_muri also searches with faiss's own search of the same
 * graph (the f_ fields; 1 unless set). */
void inproc_muri_set_faiss_rows(int on);
/* The serialized size of the last index inproc_muri built (0 if unknown). */
size_t inproc_muri_index_bytes(void);
/* CPU-QPS at recall r, linear between the two rows around it (rows by
 * rising recall); 0 where r is past the best row. */
double inproc_interp(const struct inproc_row *rows, int n, double r);

/* Builds a COSINE (or inproc_muri_set_metric's) HNSW (m, efc) over nb x dim vectors (not yet normalized)
 * in add calls of batch vectors with build_threads threads, then for each
 * of the nef efSearch values searches the nq queries (one per call from
 * threads threads) for 10 each, writing row numbers to labels (nq x 10) and
 * recall via recall_of; then the same with faiss's own search of the same
 * index (faiss_Index_search). *build_s, *build_cpu_s: the build's wall and
 * process CPU time. 0 or -1. */
int inproc_muri(const float *base, size_t nb, const float *queries, size_t nq, size_t dim, int m, int efc,
		size_t batch, int build_threads, int threads, const int *efs, int nef,
		double (*recall_of)(const int64_t *labels), struct inproc_row *rows, double *build_s,
		double *build_cpu_s);

#endif
