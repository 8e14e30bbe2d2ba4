/* The indexer bench's in-process muri rows; see inproc_muri.h. */
#include "inproc_muri.h"
#include "ix_index.h"

#include <faiss/c_api/Index_c.h>

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

double inproc_thread_cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

double inproc_process_cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct job {
	const ix_index *ix;
	int faiss;
	const float *q;
	size_t dim, from, to;
	int64_t *labels;
	int failed;
	double cpu_s;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	float dist[10];
	int64_t lab[10];
	char err[256];
	double c0 = inproc_thread_cpu_s();
	for (size_t i = j->from; i < j->to; i++) {
		size_t n = 10;
		if (j->faiss) {
			faiss_Index_search(ix_index_faiss(j->ix), 1, j->q + i * j->dim, 10, dist, lab);
		} else if (ix_index_search(j->ix, j->q + i * j->dim, 10, 0, NULL, 0, dist, lab, &n, err, sizeof(err))) {
			j->failed = 1;
			fprintf(stderr, "ix_index_search: %s\n", err);
			return NULL;
		}
		for (size_t r = 0; r < 10; r++)
			j->labels[i * 10 + r] = r < n ? lab[r] : -1;
	}
	j->cpu_s = inproc_thread_cpu_s() - c0;
	return NULL;
}

static int metric = IX_COSINE;
static uint64_t seed = 42;

void inproc_muri_set_metric(int m)
{
	metric = m;
}

void inproc_muri_set_seed(uint64_t s)
{
	seed = s;
}

static int faiss_rows = 1;
static size_t index_bytes;

void inproc_muri_set_faiss_rows(int on)
{
	faiss_rows = on;
}

size_t inproc_muri_index_bytes(void)
{
	return index_bytes;
}

double inproc_interp(const struct inproc_row *h, int n, double r)
{
	if (n <= 0)
		return 0;
	if (r <= h[0].recall)
		return h[0].cpu_qps;
	for (int i = 1; i < n; i++)
		if (r <= h[i].recall) {
			double w = h[i].recall > h[i - 1].recall ? (r - h[i - 1].recall) / (h[i].recall - h[i - 1].recall) : 1;
			return h[i - 1].cpu_qps + w * (h[i].cpu_qps - h[i - 1].cpu_qps);
		}
	return 0;
}

/* The index's serialized size, through a file of its own under TMPDIR. */
static size_t saved_size(const ix_index *ix)
{
	const char *tmp = getenv("TMPDIR");
	char path[512], err[256];
	struct stat st;
	size_t n = 0;
	snprintf(path, sizeof(path), "%s/inproc-muri-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	close(fd);
	if (ix_index_save(ix, path, err, sizeof(err)) == 0 && stat(path, &st) == 0)
		n = (size_t)st.st_size;
	unlink(path);
	return n;
}

int inproc_muri(const float *base, size_t nb, const float *queries, size_t nq, size_t dim, int m, int efc,
		size_t batch, int build_threads, int threads, const int *efs, int nef,
		double (*recall_of)(const int64_t *labels), struct inproc_row *rows, double *build_s,
		double *build_cpu_s)
{
	char err[256];
	ix_spec s = {.dim = (uint32_t)dim, .metric = metric, .kind = IX_HNSW, .hnsw_m = (uint32_t)m,
		     .ef_construction = (uint32_t)efc, .ef_search = (uint32_t)efs[0]};
	ix_index *ix = NULL;
	/* only COSINE changes the vectors (normalized): other metrics add the caller's rows */
	float *b = metric == IX_COSINE ? malloc(nb * dim * sizeof(float)) : NULL, *q = malloc(nq * dim * sizeof(float));
	const float *bx = b ? b : base;
	int64_t *lab = malloc((batch > nq * 10 ? batch : nq * 10) * sizeof(int64_t));
	int rc = -1;
	if ((!b && metric == IX_COSINE) || !q || !lab || ix_spec_normalize(&s, err, sizeof(err)) || ix_index_create(&s, 0, &ix, err, sizeof(err))) {
		fprintf(stderr, "muri in-process: %s\n", err);
		goto out;
	}
	if (b) {
		memcpy(b, base, nb * dim * sizeof(float));
		ix_vec_prepare(&s, b, nb);
	}
	memcpy(q, queries, nq * dim * sizeof(float));
	ix_vec_prepare(&s, q, nq);
	ix_index_set_build_threads(build_threads);
	double t0 = now_s(), c0 = inproc_process_cpu_s();
	for (size_t i = 0; i < nb; i += batch) {
		size_t n = nb - i < batch ? nb - i : batch;
		for (size_t j = 0; j < n; j++)
			lab[j] = (int64_t)(i + j);
		if (ix_index_add(ix, n, bx + i * dim, lab, seed, err, sizeof(err))) {
			fprintf(stderr, "muri in-process add: %s\n", err);
			goto out;
		}
	}
	*build_s = now_s() - t0;
	*build_cpu_s = inproc_process_cpu_s() - c0;
	index_bytes = saved_size(ix);
	ix_index_set_build_threads(1);
	omp_set_num_threads(1);
	for (int e = 0; e < nef; e++) {
		if (ix_index_set_search_params(ix, (uint32_t)efs[e], 0, err, sizeof(err))) {
			fprintf(stderr, "muri in-process: %s\n", err);
			goto out;
		}
		rows[e].ef = efs[e];
		for (int fa = 0; fa <= faiss_rows; fa++) {
			pthread_t t[64];
			struct job j[64];
			t0 = now_s();
			for (int i = 0; i < threads; i++) {
				j[i] = (struct job){ix, fa, q, dim, nq * (size_t)i / (size_t)threads,
						    nq * (size_t)(i + 1) / (size_t)threads, lab, 0, 0};
				pthread_create(&t[i], NULL, worker, &j[i]);
			}
			int failed = 0;
			double cpu = 0;
			for (int i = 0; i < threads; i++) {
				pthread_join(t[i], NULL);
				failed |= j[i].failed;
				cpu += j[i].cpu_s;
			}
			double qps = (double)nq / (now_s() - t0), r = recall_of(lab);
			if (fa) {
				rows[e].f_qps = qps;
				rows[e].f_cpu_qps = (double)nq * threads / cpu;
				rows[e].f_recall = r;
			} else {
				rows[e].qps = qps;
				rows[e].cpu_qps = (double)nq * threads / cpu;
				rows[e].recall = r;
			}
			if (failed)
				goto out;
		}
	}
	rc = 0;
out:
	ix_index_free(ix);
	free(b);
	free(q);
	free(lab);
	return rc;
}
