/* Cost against dimension: the same data at several dimensions, searched in
 * process by muri's own index path (ix_index, HNSW) and by exact flat search
 * (faiss IndexFlat, batched). glove-100-angular's first --rows rows and a
 * seeded random sample of its queries are lifted from 100 to each of --dims
 * by one seeded random map with orthonormal columns (x -> Qx, Q of D x 100,
 * Q^T Q = I), which keeps every norm and inner product and so every cosine
 * distance and the exact top 10: only the cost changes. Real sets of other
 * dimensions (--real NAME=DIR,METRIC, a folder with base.fvecs and
 * query.fvecs, e.g. Fashion-MNIST's 784-d images) are measured natively.
 * For each row: exact top 10 (faiss flat, float32) of the sampled queries,
 * flat QPS and CPU-QPS, the HNSW build's CPU seconds, recall@10 and CPU-QPS at each efSearch,
 * CPU-QPS interpolated at --recall, and CPU-QPS x dimension (flat for the
 * whole search, HNSW at equal recall) relative to the first row: 1.0 is cost
 * exactly linear in the dimension, above 1 cheaper than linear.
 * Binary rows (--binary 1, the default): the sign bits of each lifted set
 * (random-hyperplane codes of the originals, D bits rounded up to a
 * multiple of 8) under Hamming distance, faiss's IndexBinaryFlat (all
 * queries in one call) and IndexBinaryHNSW (M --m, efConstruction
 * --ef-construction, one query per call) through ix_faiss_binary, on one
 * thread, recall@10 against brute-force Hamming with ties counted (a hit
 * at the 10th true distance is a hit).
 *   dims-bench [--dataset DIR] [--rows N] [--sample N] [--dims LIST] [--real NAME=DIR,cosine|l2]...
 *              [--threads T] [--m M] [--ef-construction E] [--efs LIST] [--recall R] [--seed S]
 *              [--binary 0|1] */
#include "bench_util.h"
#include "cm_answer.h"
#include "cm_err.h"
#include "cm_vecs.h"
#include "ix_faiss_binary.h"
#include "inproc_muri.h"
#include "ix_index.h"
#include "ix_record.h"

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 16
#define MAX_EFS 16
#define K 10

static int threads = 2, m = 32, efc = 200, nef;
static int efs[MAX_EFS];
static double target = 0.95;
static uint64_t seed = 0x6d757269;

/* The current row's truth, for inproc_muri's recall callback. */
static const int32_t *cur_truth;
static size_t cur_nq;

static double recall_of(const int64_t *labels)
{
	size_t hit = 0;
	for (size_t q = 0; q < cur_nq; q++)
		for (int i = 0; i < K; i++)
			for (int j = 0; j < K; j++)
				hit += labels[q * K + i] == cur_truth[q * K + j];
	return (double)hit / (double)(cur_nq * K);
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double gauss(uint64_t *s)
{
	double u = ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
	double v = ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* A D x d map with orthonormal columns (column-major, D per column), from
 * Gaussian columns by Gram-Schmidt done twice; heap, the caller frees. */
static double *orthonormal_map(size_t D, size_t d, uint64_t s)
{
	double *q = malloc(D * d * sizeof(double));
	if (!q)
		return NULL;
	for (size_t i = 0; i < D * d; i++)
		q[i] = gauss(&s);
	for (size_t c = 0; c < d; c++) {
		double *v = q + c * D;
		for (int pass = 0; pass < 2; pass++)
			for (size_t p = 0; p < c; p++) {
				const double *u = q + p * D;
				double dot = 0;
				for (size_t i = 0; i < D; i++)
					dot += u[i] * v[i];
				for (size_t i = 0; i < D; i++)
					v[i] -= dot * u[i];
			}
		double n = 0;
		for (size_t i = 0; i < D; i++)
			n += v[i] * v[i];
		n = 1 / sqrt(n);
		for (size_t i = 0; i < D; i++)
			v[i] *= n;
	}
	return q;
}

/* n rows of x (d each) lifted to D by map (D x d): heap, the caller frees. */
static float *lift(const float *x, size_t n, size_t d, const double *map, size_t D)
{
	float *y = malloc(n * D * sizeof(float));
	double *acc = malloc(D * sizeof(double));
	if (!y || !acc) {
		free(y);
		free(acc);
		return NULL;
	}
	for (size_t r = 0; r < n; r++) {
		memset(acc, 0, D * sizeof(double));
		for (size_t c = 0; c < d; c++) {
			double xc = x[r * d + c];
			const double *col = map + c * D;
			for (size_t i = 0; i < D; i++)
				acc[i] += xc * col[i];
		}
		for (size_t i = 0; i < D; i++)
			y[r * D + i] = (float)acc[i];
	}
	free(acc);
	return y;
}

/* A flat index of the metric over the base (normalized for cosine, as the
 * indexer stores it). */
static FaissIndex *flat_of(const float *base, size_t nb, size_t dim, int metric)
{
	FaissIndex *f = NULL;
	if (faiss_index_factory(&f, (int)dim, "Flat", metric == IX_L2 ? METRIC_L2 : METRIC_INNER_PRODUCT) != 0)
		return NULL;
	float *b = malloc(nb * dim * sizeof(float));
	if (!b) {
		faiss_Index_free(f);
		return NULL;
	}
	memcpy(b, base, nb * dim * sizeof(float));
	if (metric == IX_COSINE)
		normalize_rows(b, nb, dim);
	faiss_Index_add(f, (idx_t)nb, b);
	free(b);
	return f;
}

/* Batched flat search of the queries on threads: the top K row numbers
 * into labels (nq x K); the best wall QPS of 3 runs into *qps, the best
 * CPU-QPS (queries per CPU-second of the process times threads) into
 * *cpu_qps. */
static int flat_search(FaissIndex *f, const float *q, size_t nq, size_t dim, int metric, int64_t *labels,
		       double *qps, double *cpu_qps)
{
	float *qn = malloc(nq * dim * sizeof(float)), *d = malloc(nq * K * sizeof(float));
	if (!qn || !d) {
		free(qn);
		free(d);
		return -1;
	}
	memcpy(qn, q, nq * dim * sizeof(float));
	if (metric == IX_COSINE)
		normalize_rows(qn, nq, dim);
	omp_set_num_threads(threads);
	*qps = *cpu_qps = 0;
	for (int rep = 0; rep < 3; rep++) { /* the best of 3: the first pays the BLAS threads' start */
		double t0 = now_s(), c0 = inproc_process_cpu_s();
		faiss_Index_search(f, (idx_t)nq, qn, K, d, labels);
		double r = (double)nq / (now_s() - t0), c = (double)nq * threads / (inproc_process_cpu_s() - c0);
		*qps = r > *qps ? r : *qps;
		*cpu_qps = c > *cpu_qps ? c : *cpu_qps;
	}
	free(qn);
	free(d);
	return 0;
}

struct row {
	char name[64];
	size_t dim, nb, nq;
	double flat_qps, flat_cpu_qps, flat_recall, build_s, build_cpu_s, hnsw_cpu_qps; /* hnsw_cpu_qps: at the target recall, 0 if never */
	struct inproc_row r[MAX_EFS];
};

/* ---- binary codes under Hamming distance ---------------------------------- */

struct brow {
	size_t bits;
	double flat_cpu_qps, build_cpu_s, at_recall;
	struct inproc_row r[MAX_EFS];
};

/* Sign bits of n rows of d floats, bit i in byte i / 8 at i % 8, cs bytes per row. */
static uint8_t *sign_codes(const float *x, size_t n, size_t d, size_t cs)
{
	uint8_t *c = calloc(n, cs);
	for (size_t r = 0; c && r < n; r++)
		for (size_t i = 0; i < d; i++)
			if (x[r * d + i] > 0)
				c[r * cs + i / 8] |= (uint8_t)(1u << (i % 8));
	return c;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Recall@10 with ties: a label whose true distance is at most the query's
 * 10th smallest counts. */
static double bin_recall(const uint8_t *b, const uint8_t *q, size_t nq, size_t cs, const uint32_t *kth,
			 const int64_t *lab)
{
	size_t hit = 0;
	for (size_t i = 0; i < nq; i++)
		for (int j = 0; j < K; j++)
			hit += lab[i * K + j] >= 0 &&
			       cm_answer_hamming(q + i * cs, b + (size_t)lab[i * K + j] * cs, cs) <= kth[i];
	return (double)hit / (double)(nq * K);
}

static int measure_binary(struct brow *w, const float *base, size_t nb, const float *q, size_t nq, size_t d)
{
	char err[256];
	size_t cs = (d + 7) / 8;
	w->bits = cs * 8;
	uint8_t *cb = sign_codes(base, nb, d, cs), *cq = sign_codes(q, nq, d, cs);
	uint32_t *kth = malloc(nq * sizeof(uint32_t)), *all = malloc(nb * sizeof(uint32_t));
	int32_t *dist = malloc(nq * K * sizeof(int32_t));
	int64_t *lab = malloc((nq * K > nb ? nq * K : nb) * sizeof(int64_t));
	ix_bin_index *flat = NULL, *hnsw = NULL;
	int rc = -1;
	if (!cb || !cq || !kth || !all || !dist || !lab)
		goto out;
	for (size_t i = 0; i < nq; i++) {
		for (size_t r = 0; r < nb; r++)
			all[r] = cm_answer_hamming(cq + i * cs, cb + r * cs, cs);
		qsort(all, nb, sizeof(uint32_t), cmp_u32);
		kth[i] = all[K - 1];
	}
	for (size_t r = 0; r < nb; r++)
		lab[r] = (int64_t)r;
	fprintf(stderr, "binary %zu bits: flat and HNSW%d...\n", w->bits, m);
	if (ix_bin_create(IX_BIN_FLAT, (uint32_t)w->bits, 0, 0, 0, &flat, err, sizeof(err)) != CM_OK ||
	    ix_bin_add(flat, nb, cb, lab, err, sizeof(err)) != CM_OK ||
	    ix_bin_create(IX_BIN_HNSW, (uint32_t)w->bits, (uint32_t)m, (uint32_t)efc, (uint32_t)efs[0], &hnsw, err,
			  sizeof(err)) != CM_OK) {
		fprintf(stderr, "binary: %s\n", err);
		goto out;
	}
	double c0 = inproc_thread_cpu_s();
	if (ix_bin_add(hnsw, nb, cb, lab, err, sizeof(err)) != CM_OK) {
		fprintf(stderr, "binary: %s\n", err);
		goto out;
	}
	w->build_cpu_s = inproc_thread_cpu_s() - c0;
	w->flat_cpu_qps = 0;
	for (int rep = 0; rep < 3; rep++) {
		c0 = inproc_thread_cpu_s();
		if (ix_bin_search(flat, nq, cq, K, NULL, 0, dist, lab, err, sizeof(err)) != CM_OK)
			goto out;
		double c = (double)nq / (inproc_thread_cpu_s() - c0);
		w->flat_cpu_qps = c > w->flat_cpu_qps ? c : w->flat_cpu_qps;
	}
	if (bin_recall(cb, cq, nq, cs, kth, lab) != 1.0)
		fprintf(stderr, "binary: the flat index is not exact\n");
	for (int e = 0; e < nef; e++) {
		if (ix_bin_set_ef_search(hnsw, (uint32_t)efs[e], err, sizeof(err)) != CM_OK)
			goto out;
		c0 = inproc_thread_cpu_s();
		for (size_t i = 0; i < nq; i++)
			if (ix_bin_search(hnsw, 1, cq + i * cs, K, NULL, 0, dist + i * K, lab + i * K, err, sizeof(err)) !=
			    CM_OK)
				goto out;
		w->r[e].ef = efs[e];
		w->r[e].cpu_qps = (double)nq / (inproc_thread_cpu_s() - c0);
		w->r[e].recall = bin_recall(cb, cq, nq, cs, kth, lab);
	}
	w->at_recall = inproc_interp(w->r, nef, target);
	rc = 0;
out:
	ix_bin_free(flat);
	ix_bin_free(hnsw);
	free(cb);
	free(cq);
	free(kth);
	free(all);
	free(dist);
	free(lab);
	return rc;
}

/* Measures one row: truth is nq x K (from the flat search of the same
 * data when NULL: then the flat row's recall is 1 by definition). */
static int measure(struct row *w, const char *name, const float *base, size_t nb, const float *q, size_t nq,
		   size_t dim, int metric, int32_t *truth)
{
	int64_t *lab = malloc(nq * K * sizeof(int64_t));
	FaissIndex *f = flat_of(base, nb, dim, metric);
	if (!lab || !f) {
		free(lab);
		faiss_Index_free(f);
		return -1;
	}
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->dim = dim;
	w->nb = nb;
	w->nq = nq;
	fprintf(stderr, "%s: %zu x %zu, flat search...\n", name, nb, dim);
	int rc = flat_search(f, q, nq, dim, metric, lab, &w->flat_qps, &w->flat_cpu_qps);
	faiss_Index_free(f);
	if (rc) {
		free(lab);
		return -1;
	}
	cur_truth = truth;
	cur_nq = nq;
	w->flat_recall = recall_of(lab);
	free(lab);
	fprintf(stderr, "%s: flat %.0f QPS, recall %.4f; building HNSW%d efConstruction %d...\n", name, w->flat_qps,
		w->flat_recall, m, efc);
	inproc_muri_set_metric(metric);
	if (inproc_muri(base, nb, q, nq, dim, m, efc, 10000, threads, threads, efs, nef, recall_of, w->r, &w->build_s,
			&w->build_cpu_s) != 0)
		return -1;
	w->hnsw_cpu_qps = inproc_interp(w->r, nef, target);
	return 0;
}

/* The exact top K of each query over base (faiss flat, float32), nq x K. */
static int32_t *exact_truth(const float *base, size_t nb, const float *q, size_t nq, size_t dim, int metric)
{
	FaissIndex *f = flat_of(base, nb, dim, metric);
	int64_t *lab = malloc(nq * K * sizeof(int64_t));
	int32_t *t = malloc(nq * K * sizeof(int32_t));
	double qps, cpu_qps;
	if (!f || !lab || !t || flat_search(f, q, nq, dim, metric, lab, &qps, &cpu_qps) != 0) {
		faiss_Index_free(f);
		free(lab);
		free(t);
		return NULL;
	}
	for (size_t i = 0; i < nq * K; i++)
		t[i] = (int32_t)lab[i];
	faiss_Index_free(f);
	free(lab);
	return t;
}

/* A seeded sample of n of the rows of x (d each), in the file's order of draw. */
static float *sample_rows(const float *x, size_t rows, size_t d, size_t n, uint64_t s)
{
	size_t *perm = malloc(rows * sizeof(size_t));
	float *y = malloc(n * d * sizeof(float));
	if (!perm || !y) {
		free(perm);
		free(y);
		return NULL;
	}
	for (size_t i = 0; i < rows; i++)
		perm[i] = i;
	for (size_t i = 0; i < n; i++) {
		size_t j = i + (size_t)(splitmix(&s) % (rows - i)), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
		memcpy(y + i * d, x + perm[i] * d, d * sizeof(float));
	}
	free(perm);
	return y;
}

static int parse_list(const char *s, int *out, int max)
{
	int n = 0;
	while (*s && n < max) {
		out[n++] = atoi(s);
		const char *c = strchr(s, ',');
		if (!c)
			break;
		s = c + 1;
	}
	return n;
}

static int load(const char *dir, size_t rows, size_t sample, uint64_t s, float **base, size_t *nb, float **q,
		size_t *nq, size_t *dim)
{
	char p[1024];
	float *qall = NULL;
	size_t qrows, qd;
	snprintf(p, sizeof(p), "%s/base.fvecs", dir);
	if (cm_fvecs_read(p, rows, base, nb, dim) != 0) {
		fprintf(stderr, "%s: cannot read\n", p);
		return -1;
	}
	snprintf(p, sizeof(p), "%s/query.fvecs", dir);
	if (cm_fvecs_read(p, 0, &qall, &qrows, &qd) != 0 || qd != *dim) {
		fprintf(stderr, "%s: cannot read, or not %zu-d\n", p, *dim);
		free(qall);
		return -1;
	}
	*nq = sample < qrows ? sample : qrows;
	*q = sample_rows(qall, qrows, qd, *nq, s);
	free(qall);
	return *q ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *ds = getenv("MURI_DATASETS"), *dataset = NULL, *reals[8];
	size_t rows = 20000, sample = 1000;
	int dims[MAX_ROWS], ndims = parse_list("100,384,768,1536", dims, MAX_ROWS), nreal = 0, binary = 1;
	nef = parse_list("10,16,24,32,48,64,96,128,192", efs, MAX_EFS);
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];
		if (!strcmp(a, "--dataset"))
			dataset = v;
		else if (!strcmp(a, "--rows"))
			rows = (size_t)atol(v);
		else if (!strcmp(a, "--sample"))
			sample = (size_t)atol(v);
		else if (!strcmp(a, "--dims"))
			ndims = parse_list(v, dims, MAX_ROWS);
		else if (!strcmp(a, "--real") && nreal < 8)
			reals[nreal++] = v;
		else if (!strcmp(a, "--threads"))
			threads = atoi(v);
		else if (!strcmp(a, "--m"))
			m = atoi(v);
		else if (!strcmp(a, "--ef-construction"))
			efc = atoi(v);
		else if (!strcmp(a, "--efs"))
			nef = parse_list(v, efs, MAX_EFS);
		else if (!strcmp(a, "--recall"))
			target = atof(v);
		else if (!strcmp(a, "--binary"))
			binary = atoi(v);
		else if (!strcmp(a, "--seed"))
			seed = (uint64_t)strtoull(v, NULL, 0);
		else {
			fprintf(stderr, "unknown option %s (see the head of tests/bench/dims_bench.c)\n", a);
			return 2;
		}
	}
	if ((argc - 1) % 2 || rows < 100 || sample < 10 || threads < 1 || threads > 64 || nef < 1 || ndims < 1) {
		fprintf(stderr, "usage: dims-bench [--dataset DIR] [--rows N>=100] [--sample N>=10] [--dims LIST] "
				"[--real NAME=DIR,cosine|l2] [--threads 1..64] [--m M] [--ef-construction E] [--efs LIST] "
				"[--recall R] [--seed S]\n");
		return 2;
	}
	char gdir[1024];
	snprintf(gdir, sizeof(gdir), "%s/glove-100-angular", ds ? ds : "../shared/datasets");
	if (!dataset)
		dataset = gdir;
	float *base = NULL, *q = NULL;
	size_t nb, nq, d;
	if (load(dataset, rows, sample, seed, &base, &nb, &q, &nq, &d) != 0)
		return 1;
	fprintf(stderr, "%s: exact top %d of %zu sampled queries over %zu rows...\n", dataset, K, nq, nb);
	int32_t *truth = exact_truth(base, nb, q, nq, d, IX_COSINE);
	if (!truth)
		return 1;
	struct row *out = calloc(MAX_ROWS + 8, sizeof(struct row));
	struct brow *bout = calloc(MAX_ROWS, sizeof(struct brow));
	int nrow = 0;
	for (int i = 0; i < ndims; i++) {
		size_t D = (size_t)dims[i];
		char name[64];
		if (D < d || D > IX_DIM_MAX) {
			fprintf(stderr, "--dims: %zu is not in %zu..%d\n", D, d, IX_DIM_MAX);
			return 2;
		}
		float *lb = (float *)base, *lq = (float *)q;
		if (D != d) { /* the native dimension is measured as it is */
			double *map = orthonormal_map(D, d, seed ^ D);
			lb = map ? lift(base, nb, d, map, D) : NULL;
			lq = map ? lift(q, nq, d, map, D) : NULL;
			free(map);
			if (!lb || !lq)
				return 1;
		}
		snprintf(name, sizeof(name), D == d ? "glove-%zu" : "glove-100 lifted to %zu", D);
		if (measure(&out[nrow++], name, lb, nb, lq, nq, D, IX_COSINE, truth) != 0)
			return 1;
		if (binary && measure_binary(&bout[i], lb, nb, lq, nq, D) != 0)
			return 1;
		if (lb != base) {
			free(lb);
			free(lq);
		}
	}
	for (int i = 0; i < nreal; i++) {
		char name[64], dir[1024];
		const char *eq = strchr(reals[i], '='), *comma = strrchr(reals[i], ',');
		if (!eq || !comma || comma < eq) {
			fprintf(stderr, "--real %s: expected NAME=DIR,cosine|l2\n", reals[i]);
			return 2;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - reals[i]), reals[i]);
		snprintf(dir, sizeof(dir), "%.*s", (int)(comma - eq - 1), eq + 1);
		int metric = !strcmp(comma + 1, "l2") ? IX_L2 : IX_COSINE;
		float *rb, *rq;
		size_t rnb, rnq, rd;
		if (load(dir, rows, sample, seed, &rb, &rnb, &rq, &rnq, &rd) != 0)
			return 1;
		int32_t *rt = exact_truth(rb, rnb, rq, rnq, rd, metric);
		if (!rt || measure(&out[nrow++], name, rb, rnb, rq, rnq, rd, metric, rt) != 0)
			return 1;
		free(rb);
		free(rq);
		free(rt);
	}

	printf("cost against dimension, in process: %zu base rows, %zu sampled queries (seed %#llx), k=%d; flat = exact "
	       "search (faiss IndexFlat, all queries in one call, %d threads); HNSW = muri's ix_index (M %d, "
	       "efConstruction %d), one query per call from %d threads, CPU-QPS (queries per CPU-second of the searching "
	       "threads times their number)\n",
	       nb, nq, (unsigned long long)seed, K, threads, m, efc, threads);
	printf("\nrecall@10 / CPU-QPS at each efSearch:\n%-28s %6s", "data", "dim");
	for (int e = 0; e < nef; e++)
		printf("  ef %-14d", efs[e]);
	printf("\n");
	for (int i = 0; i < nrow; i++) {
		printf("%-28s %6zu", out[i].name, out[i].dim);
		for (int e = 0; e < nef; e++)
			printf("  %.4f / %-7.0f", out[i].r[e].recall, out[i].r[e].cpu_qps);
		printf("\n");
	}
	printf("\n%-28s %6s %9s %9s %12s %6s %8s %12s %13s %6s\n", "data", "dim", "flat QPS", "flat", "flat CPU-QPS",
	       "(rel)", "build", "HNSW CPU-QPS", "HNSW CPU-QPS", "(rel)");
	printf("%-28s %6s %9s %9s %12s %6s %8s %12s %13s %6s\n", "", "", "(wall)", "CPU-QPS", "x dim", "", "CPU s", "at recall",
	       "x dim", "");
	for (int i = 0; i < nrow; i++) {
		double fx = out[i].flat_cpu_qps * (double)out[i].dim, hx = out[i].hnsw_cpu_qps * (double)out[i].dim;
		double f0 = out[0].flat_cpu_qps * (double)out[0].dim, h0 = out[0].hnsw_cpu_qps * (double)out[0].dim;
		printf("%-28s %6zu %9.0f %9.0f %12.0f %6.2f %8.1f %12.0f %13.0f", out[i].name, out[i].dim, out[i].flat_qps,
		       out[i].flat_cpu_qps, fx, fx / f0, out[i].build_cpu_s, out[i].hnsw_cpu_qps, hx);
		if (h0 > 0 && hx > 0)
			printf(" %6.2f\n", hx / h0);
		else
			printf(" %6s\n", "-");
	}
	printf("(HNSW CPU-QPS interpolated at recall@10 %.2f; rel: CPU-QPS x dim over the first row's, 1.00 = cost "
	       "linear in the dimension, above 1 cheaper; -: recall %.2f never reached)\n",
	       target, target);
	if (binary) {
		printf("\nbinary codes (sign bits of the rows above), Hamming distance, one thread: IndexBinaryFlat (all "
		       "queries in one call) and IndexBinaryHNSW (M %d, efConstruction %d, one query per call); "
		       "recall@10 against brute force, ties counted; CPU-QPS\n%-10s %12s %9s", m, efc, "bits",
		       "flat CPU-QPS", "build s");
		for (int e = 0; e < nef; e++)
			printf("  ef %-14d", efs[e]);
		printf(" %12s\n", "at recall");
		for (int i = 0; i < ndims; i++) {
			printf("%-10zu %12.0f %9.1f", bout[i].bits, bout[i].flat_cpu_qps, bout[i].build_cpu_s);
			for (int e = 0; e < nef; e++)
				printf("  %.4f / %-7.0f", bout[i].r[e].recall, bout[i].r[e].cpu_qps);
			printf(" %12.0f\n", bout[i].at_recall);
		}
	}
	free(base);
	free(q);
	free(truth);
	free(out);
	free(bout);
	return 0;
}
