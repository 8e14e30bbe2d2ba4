/* The faiss build (1.7.3 from Debian's source, C API, this CPU's SIMD level)
 * links and answers correctly: exact search on real SIFT descriptors
 * reproduces the dataset's ground truth, and HNSW comes close to it. */
#include "tap.h"
#include "cm_err.h"
#include "cm_vecs.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/error_c.h>

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
	free(base);
	free(queries);
	free(truth);
	return tap_done();
}
