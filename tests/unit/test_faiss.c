/* The faiss build (1.7.3 from Debian's source, C API, this CPU's SIMD level)
 * links and answers correctly: exact search on real SIFT descriptors
 * reproduces the dataset's ground truth, and HNSW comes close to it. The
 * indexer's own HNSW walk over faiss's graph (ix_hnsw) finds what faiss
 * finds, the same on every replica and CPU. */
#include "tap.h"
#include "cm_err.h"
#include "cm_vecs.h"
#include "ix_hnsw.h"
#include "ix_index.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/error_c.h>
#include <stdio.h>

static float *base, *queries;
static int32_t *truth;
static size_t nb, nq, d, ngt, dq, dgt;

static double recall_at_10(const char *spec, const char *param)
{
	FaissIndex *idx = NULL;
	if (faiss_index_factory(&idx, (int)d, spec, METRIC_L2) != 0) {
		printf("# faiss: %s\n", faiss_get_last_error());
		return -1;
	}
	faiss_Index_add(idx, (idx_t)nb, base);
	if (param) {
		FaissParameterSpace *ps = NULL;
		faiss_ParameterSpace_new(&ps);
		faiss_ParameterSpace_set_index_parameters(ps, idx, param);
		faiss_ParameterSpace_free(ps);
	}
	idx_t *labels = calloc(nq * 10, sizeof(*labels));
	float *dist = calloc(nq * 10, sizeof(*dist));
	faiss_Index_search(idx, (idx_t)nq, queries, 10, dist, labels);
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < 10; i++)
			for (size_t j = 0; j < 10; j++)
				if (labels[q * 10 + i] == truth[q * dgt + j])
					hit++;
	free(labels);
	free(dist);
	faiss_Index_free(idx);
	return (double)hit / (double)(nq * 10);
}

static void test_flat_is_exact(void)
{
	double r = recall_at_10("Flat", NULL);
	printf("# Flat recall@10 = %.4f\n", r);
	TAP_CHECK(r == 1.0);
}

static void test_hnsw_is_close(void)
{
	double r = recall_at_10("HNSW32", "efSearch=128");
	printf("# HNSW32 efSearch=128 recall@10 = %.4f\n", r);
	TAP_CHECK(r >= 0.9);
}

static double recall_of(const int64_t *labels)
{
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < 10; i++)
			for (size_t j = 0; j < 10; j++)
				if (labels[q * 10 + i] == truth[q * dgt + j])
					hit++;
	return (double)hit / (double)(nq * 10);
}

/* An HNSW built through ix_index_add in adds of `batch` with `threads`
 * OpenMP threads. */
static ix_index *build(int metric, uint32_t m, size_t batch, int threads)
{
	char err[256];
	ix_spec s = {.dim = (uint32_t)d, .metric = metric, .kind = IX_HNSW, .hnsw_m = m, .ef_construction = 128,
		     .ef_search = 128};
	ix_index *ix = NULL;
	if (ix_spec_normalize(&s, err, sizeof(err)) || ix_index_create(&s, 0, &ix, err, sizeof(err))) {
		printf("# %s\n", err);
		return NULL;
	}
	float *x = malloc(nb * d * sizeof(float));
	int64_t *lab = malloc(nb * sizeof(int64_t));
	memcpy(x, base, nb * d * sizeof(float));
	ix_vec_prepare(&s, x, nb);
	for (size_t i = 0; i < nb; i++)
		lab[i] = (int64_t)(1000 + i);
	ix_index_set_build_threads(threads);
	for (size_t i = 0; i < nb && ix; i += batch) {
		size_t n = nb - i < batch ? nb - i : batch;
		if (ix_index_add(ix, n, x + i * d, lab + i, 7, err, sizeof(err))) {
			printf("# add: %s\n", err);
			ix_index_free(ix);
			ix = NULL;
		}
	}
	ix_index_set_build_threads(1);
	free(x);
	free(lab);
	return ix;
}

/* Searches every query (prepared for metric) for 10, under bitmap. */
static int search_all(const ix_index *ix, int metric, const uint8_t *bitmap, size_t nbytes, float *dist,
		      int64_t *labels)
{
	char err[256];
	ix_spec s = {.dim = (uint32_t)d, .metric = metric};
	float *q = malloc(d * sizeof(float));
	int rc = CM_OK;
	for (size_t i = 0; i < nq && rc == CM_OK; i++) {
		size_t n = 0;
		memcpy(q, queries + i * d, d * sizeof(float));
		ix_vec_prepare(&s, q, 1);
		ix_select sel = {.bitmap = bitmap, .nbytes = nbytes};
		rc = ix_index_search(ix, q, 10, 0, bitmap ? &sel : NULL, 0, dist + i * 10, labels + i * 10, &n, err,
				     sizeof(err));
		for (size_t j = n; j < 10; j++)
			labels[i * 10 + j] = -1;
	}
	if (rc)
		printf("# search: %s\n", err);
	free(q);
	return rc;
}

static void test_kernel_rounds_alike_on_every_cpu(void)
{
	/* the SIMD path and the portable one give the same bits, every tail length */
	float a[131], b[131];
	int same = 1;
	for (int i = 0; i < 131; i++) {
		a[i] = sinf((float)i * 0.37f) * 3.0f;
		b[i] = cosf((float)i * 1.91f) / 7.0f;
	}
	for (size_t n = 1; n <= 131; n++)
		for (int ip = 0; ip <= 1; ip++) {
			float f = ix_hnsw_distance(a, b, n, ip), g = ix_hnsw_distance_scalar(a, b, n, ip);
			if (memcmp(&f, &g, sizeof(f)) != 0) {
				printf("# d=%zu ip=%d: %.9g vs %.9g\n", n, ip, (double)f, (double)g);
				same = 0;
			}
		}
	TAP_CHECK(same);
	/* and they are the distance */
	double ref = 0;
	for (int i = 0; i < 100; i++)
		ref += (double)(a[i] - b[i]) * (a[i] - b[i]);
	TAP_CHECK(fabs(ix_hnsw_distance(a, b, 100, 0) - ref) < 1e-3 * ref);
}

static void test_walk_finds_what_faiss_finds(void)
{
	/* same graph family and efSearch as test_hnsw_is_close: recall at least as good */
	ix_index *ix = build(IX_L2, 32, 1000, 1);
	TAP_CHECK(ix != NULL);
	if (!ix)
		return;
	float *dist = calloc(nq * 10, sizeof(float));
	int64_t *lab = calloc(nq * 10, sizeof(int64_t));
	TAP_CHECK(search_all(ix, IX_L2, NULL, 0, dist, lab) == CM_OK);
	for (size_t i = 0; i < nq * 10; i++)
		lab[i] = lab[i] >= 1000 ? lab[i] - 1000 : -1;
	double r = recall_of(lab);
	printf("# muri HNSW32 efSearch=128 recall@10 = %.4f\n", r);
	TAP_CHECK(r >= 0.9);
	/* distances are faiss's values for the labels found, nearest first */
	int ok = 1;
	ix_spec s = {.dim = (uint32_t)d, .metric = IX_L2};
	for (size_t q = 0; q < nq && ok; q++)
		for (size_t j = 0; j < 10 && lab[q * 10 + j] >= 0; j++) {
			float e;
			ix_distances(&s, queries + q * d, base + (size_t)lab[q * 10 + j] * d, 1, &e);
			if (e != dist[q * 10 + j] || (j && dist[q * 10 + j] < dist[q * 10 + j - 1]))
				ok = 0;
		}
	TAP_CHECK(ok);
	/* a filter admitting every third row: only those, and about as well */
	size_t nbytes = (nb + 7) / 8;
	uint8_t *bm = calloc(nbytes, 1);
	for (size_t i = 0; i < nb; i += 3)
		bm[i / 8] |= (uint8_t)(1u << (i % 8));
	TAP_CHECK(search_all(ix, IX_L2, bm, nbytes, dist, lab) == CM_OK);
	int only = 1;
	size_t found = 0;
	for (size_t i = 0; i < nq * 10; i++)
		if (lab[i] >= 0) {
			found++;
			only &= (lab[i] - 1000) % 3 == 0;
		}
	TAP_CHECK(only);
	TAP_CHECK(found == nq * 10);
	free(bm);
	free(dist);
	free(lab);
	ix_index_free(ix);
}

static void test_walk_is_the_same_on_every_replica(void)
{
	/* two replicas build the same records in the same adds (COSINE) */
	ix_index *a = build(IX_COSINE, 16, 500, 1), *b = build(IX_COSINE, 16, 500, 1);
	TAP_CHECK(a && b);
	if (a && b) {
		float *da = calloc(nq * 10, sizeof(float)), *db = calloc(nq * 10, sizeof(float));
		int64_t *la = calloc(nq * 10, sizeof(int64_t)), *lb = calloc(nq * 10, sizeof(int64_t));
		TAP_CHECK(search_all(a, IX_COSINE, NULL, 0, da, la) == CM_OK);
		TAP_CHECK(search_all(b, IX_COSINE, NULL, 0, db, lb) == CM_OK);
		TAP_CHECK(memcmp(la, lb, nq * 10 * sizeof(int64_t)) == 0);
		TAP_CHECK(memcmp(da, db, nq * 10 * sizeof(float)) == 0);
		free(da);
		free(db);
		free(la);
		free(lb);
	}
	ix_index_free(a);
	ix_index_free(b);
}

/* The bytes of the index as saved (graph, vectors, labels). */
static char *saved(const ix_index *ix, size_t *len)
{
	char path[] = "/tmp/test_faiss_XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	close(fd);
	char *buf = NULL;
	if (ix_index_save(ix, path, err, sizeof(err)) == CM_OK) {
		FILE *f = fopen(path, "rb");
		fseek(f, 0, SEEK_END);
		*len = (size_t)ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc(*len ? *len : 1);
		if (fread(buf, 1, *len, f) != *len) {
			free(buf);
			buf = NULL;
		}
		fclose(f);
	}
	unlink(path);
	return buf;
}

static void test_build_is_the_same_on_any_thread_count(void)
{
	/* the same records in the same adds, planned on 1 and on 3 threads:
	 * the same graph bit for bit, the same answers */
	ix_index *a = build(IX_COSINE, 16, 700, 1), *b = build(IX_COSINE, 16, 700, 3);
	TAP_CHECK(a && b);
	if (a && b) {
		size_t la = 0, lb = 1;
		char *fa = saved(a, &la), *fb = saved(b, &lb);
		TAP_CHECK(fa && fb);
		TAP_CHECK(la == lb && fa && fb && memcmp(fa, fb, la) == 0);
		free(fa);
		free(fb);
		float *da = calloc(nq * 10, sizeof(float)), *db = calloc(nq * 10, sizeof(float));
		int64_t *xa = calloc(nq * 10, sizeof(int64_t)), *xb = calloc(nq * 10, sizeof(int64_t));
		TAP_CHECK(search_all(a, IX_COSINE, NULL, 0, da, xa) == CM_OK);
		TAP_CHECK(search_all(b, IX_COSINE, NULL, 0, db, xb) == CM_OK);
		TAP_CHECK(memcmp(xa, xb, nq * 10 * sizeof(int64_t)) == 0);
		TAP_CHECK(memcmp(da, db, nq * 10 * sizeof(float)) == 0);
		free(da);
		free(db);
		free(xa);
		free(xb);
	}
	ix_index_free(a);
	ix_index_free(b);
}

int main(void)
{
	const char *ds = getenv("MURI_DATASETS");
	char p[1024];
	snprintf(p, sizeof(p), "%s/sift-5k-128-euclidean/base.fvecs", ds ? ds : "../shared/datasets");
	if (cm_fvecs_read(p, 0, &base, &nb, &d) != CM_OK) {
		printf("Bail out! cannot read %s\n", p);
		return 1;
	}
	snprintf(p, sizeof(p), "%s/sift-5k-128-euclidean/query.fvecs", ds ? ds : "../shared/datasets");
	int rc = cm_fvecs_read(p, 0, &queries, &nq, &dq);
	snprintf(p, sizeof(p), "%s/sift-5k-128-euclidean/groundtruth.ivecs", ds ? ds : "../shared/datasets");
	if (rc != CM_OK || cm_ivecs_read(p, 0, &truth, &ngt, &dgt) != CM_OK || dq != d || ngt != nq ||
	    dgt < 10) {
		printf("Bail out! cannot read the queries or the ground truth\n");
		return 1;
	}
	TAP_RUN(test_flat_is_exact);
	TAP_RUN(test_hnsw_is_close);
	TAP_RUN(test_kernel_rounds_alike_on_every_cpu);
	TAP_RUN(test_walk_finds_what_faiss_finds);
	TAP_RUN(test_walk_is_the_same_on_every_replica);
	TAP_RUN(test_build_is_the_same_on_any_thread_count);
	free(base);
	free(queries);
	free(truth);
	return tap_done();
}
