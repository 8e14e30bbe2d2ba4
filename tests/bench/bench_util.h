/* What the benchmark programs share: a monotonic clock in seconds,
 * percentiles of latency samples (and a growing list of them), and L2
 * normalization of row-major vectors (the cosine datasets, as the indexer
 * stores them). */
#ifndef MURI_BENCH_UTIL_H
#define MURI_BENCH_UTIL_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

static inline double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The p-th percentile of n samples (sorts v). */
static inline double pct(double *v, size_t n, int p)
{
	qsort(v, n, sizeof(double), cmp_d);
	return v[n * (size_t)p / 100 < n ? n * (size_t)p / 100 : n - 1];
}

/* Latency samples (ms) a thread collects: v is the owner's, freed with free(). */
struct lat {
	double *v;
	size_t n, cap;
};

static inline void lat_add(struct lat *l, double ms)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->v = realloc(l->v, l->cap * sizeof(double));
	}
	l->v[l->n++] = ms;
}

static inline void lat_merge(struct lat *into, const struct lat *from)
{
	for (size_t i = 0; i < from->n; i++)
		lat_add(into, from->v[i]);
}

/* The p-th percentile of l's samples (sorts them), 0 when there are none. */
static inline double lat_pct(struct lat *l, int p)
{
	return l->n ? pct(l->v, l->n, p) : 0;
}

/* Scales each of the n rows of x (dim floats each) to unit length. */
static inline void normalize_rows(float *x, size_t n, size_t dim)
{
	for (size_t i = 0; i < n; i++) {
		double s = 0;
		for (size_t j = 0; j < dim; j++)
			s += (double)x[i * dim + j] * x[i * dim + j];
		float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0;
		for (size_t j = 0; j < dim; j++)
			x[i * dim + j] *= inv;
	}
}

#endif
