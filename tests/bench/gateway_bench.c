/* Gateway benchmark client (scripts/bench.sh gateway starts the network and
 * the collection, tests/python/bench_gateway.py, then runs this): inserts
 * the dataset through a gateway at QUORUM in batches and times each batch,
 * waits for the indexers' indexes to catch up, then for ONE, QUORUM and ALL
 * measures Search (one query per call) and SearchBatch: recall@10 on a random
 * sample of the queries (never the head of the file), sequential p50/p99 and
 * QPS from R client threads. In the same run, the baseline: in-process faiss
 * HNSW with the same M and efConstruction over the same rows, at several
 * efSearch values, QPS from T threads (one per core), so the two compare at
 * the same recall. With --rows below the dataset's size the ground truth is
 * computed exactly (faiss flat) over the rows inserted.
 *   gateway-bench --gateway HOST:PORT --collection NAME --indexers A,B,C
 *                 [--dataset NAME] [--rows N] [--queries N] [--threads T] [--rpc-threads R]
 *                 [--m M] [--ef-construction E] [--ef-search E] [--insert-batch N] [--batch-queries N]
 *                 [--seed S] */
#include "bench_util.h"
#include "cm_err.h"
#include "cm_rpc.h"
#include "cm_vecs.h"
#include "indexer.pb-c.h"
#include "vectorstore.pb-c.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K 10
#define MAX_THREADS 64
#define MAX_INDEXERS 16

static float *base, *queries;
static size_t nb, nq, dim;
static int64_t *truth;          /* nq x K row numbers */
static size_t *qsel;            /* the sampled query rows */
static char (*ids)[37];         /* row -> id the gateway gave */
static int *sorted;             /* rows sorted by id */
static int threads = 2, rpc_threads = 8, m = 32, efc = 200, efs = 128, insert_batch = 10000, batch_queries = 100;
static const char *collection = "bench";

static double recall_of(const int64_t *labels) /* nq x K */
{
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++)
		for (int i = 0; i < K; i++)
			for (int j = 0; j < K; j++)
				if (labels[q * K + i] >= 0 && labels[q * K + i] == truth[q * K + j])
					hit++;
	return (double)hit / (double)(nq * K);
}

/* ---- in-process faiss baseline ----------------------------------------------- */

struct result {
	double recall, qps, p50_ms, p99_ms;
	int ef;
};

#define SWEEP 6
static const int sweep_factor[SWEEP] = {2, 3, 4, 5, 6, 8}; /* efSearch = efs * factor / 4 */

struct fjob {
	FaissIndex *idx;
	const float *qn;
	int64_t *labels;
	size_t from, to;
};

static void *faiss_worker(void *arg)
{
	struct fjob *j = arg;
	float d[K];
	for (size_t q = j->from; q < j->to; q++)
		faiss_Index_search(j->idx, 1, j->qn + q * dim, K, d, j->labels + q * K);
	return NULL;
}

static int run_faiss(struct result *rs, double *build_s)
{
	char spec[64], p[64];
	snprintf(spec, sizeof(spec), "HNSW%d", m);
	FaissIndex *idx = NULL;
	if (faiss_index_factory(&idx, (int)dim, spec, METRIC_INNER_PRODUCT) != 0)
		return -1;
	FaissParameterSpace *ps = NULL;
	faiss_ParameterSpace_new(&ps);
	snprintf(p, sizeof(p), "efConstruction=%d", efc);
	faiss_ParameterSpace_set_index_parameters(ps, idx, p);
	float *bn = malloc(nb * dim * sizeof(float)), *qn = malloc(nq * dim * sizeof(float));
	memcpy(bn, base, nb * dim * sizeof(float));
	for (size_t q = 0; q < nq; q++)
		memcpy(qn + q * dim, queries + qsel[q] * dim, dim * sizeof(float));
	normalize_rows(bn, nb, dim);
	normalize_rows(qn, nq, dim);
	omp_set_num_threads(threads);
	double t0 = now_s();
	faiss_Index_add(idx, (idx_t)nb, bn);
	*build_s = now_s() - t0;
	omp_set_num_threads(1);
	int64_t *labels = calloc(nq * K, sizeof(*labels));
	double *lat = malloc(nq * sizeof(double));
	for (int sw = 0; sw < SWEEP; sw++) {
		struct result *r = &rs[sw];
		r->ef = efs * sweep_factor[sw] / 4;
		snprintf(p, sizeof(p), "efSearch=%d", r->ef);
		faiss_ParameterSpace_set_index_parameters(ps, idx, p);
		float d[K];
		for (size_t q = 0; q < nq; q++) {
			double s = now_s();
			faiss_Index_search(idx, 1, qn + q * dim, K, d, labels + q * K);
			lat[q] = (now_s() - s) * 1e3;
		}
		r->p50_ms = pct(lat, nq, 50);
		r->p99_ms = pct(lat, nq, 99);
		r->recall = recall_of(labels);
		pthread_t t[MAX_THREADS];
		struct fjob j[MAX_THREADS];
		t0 = now_s();
		for (int i = 0; i < threads; i++) {
			j[i] = (struct fjob){idx, qn, labels, nq * (size_t)i / (size_t)threads,
					     nq * (size_t)(i + 1) / (size_t)threads};
			pthread_create(&t[i], NULL, faiss_worker, &j[i]);
		}
		for (int i = 0; i < threads; i++)
			pthread_join(t[i], NULL);
		r->qps = (double)nq / (now_s() - t0);
	}
	faiss_ParameterSpace_free(ps);
	free(lat);
	free(labels);
	free(bn);
	free(qn);
	faiss_Index_free(idx);
	return 0;
}

/* Exact top K over the rows (cosine: inner product of normalized vectors). */
static int exact_truth(void)
{
	FaissIndexFlatIP *idx = NULL;
	if (faiss_IndexFlatIP_new_with(&idx, (idx_t)dim) != 0)
		return -1;
	float *bn = malloc(nb * dim * sizeof(float)), *qn = malloc(nq * dim * sizeof(float));
	float *d = malloc(nq * K * sizeof(float));
	memcpy(bn, base, nb * dim * sizeof(float));
	for (size_t q = 0; q < nq; q++)
		memcpy(qn + q * dim, queries + qsel[q] * dim, dim * sizeof(float));
	normalize_rows(bn, nb, dim);
	normalize_rows(qn, nq, dim);
	omp_set_num_threads(threads);
	faiss_Index_add((FaissIndex *)idx, (idx_t)nb, bn);
	faiss_Index_search((FaissIndex *)idx, (idx_t)nq, qn, K, d, truth);
	omp_set_num_threads(1);
	faiss_Index_free((FaissIndex *)idx);
	free(bn);
	free(qn);
	free(d);
	return 0;
}

/* ---- ids ----------------------------------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
	return strcmp(ids[*(const int *)a], ids[*(const int *)b]);
}

static int row_of(const char *id)
{
	size_t lo = 0, hi = nb;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(ids[sorted[mid]], id);
		if (c == 0)
			return sorted[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* ---- through the gateway ------------------------------------------------------------ */

static Muri__V1__Vector *qvec; /* nq query vectors (protobuf views of the sample) */

static int search_one(cm_rpc_client *c, size_t q, int level, int64_t *labels)
{
	Muri__V1__SearchRequest req = MURI__V1__SEARCH_REQUEST__INIT;
	req.query_vector = &qvec[q];
	req.collection = (char *)collection;
	req.top_k = K;
	req.consistency_level = level;
	req.timeout_ms = 30000;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	if (cm_rpc_unary(c, "/muri.v1.VectorStore/Search", &req.base, &muri__v1__search_response__descriptor, &resp,
			 60000, &st) != CM_OK) {
		fprintf(stderr, "Search: %s %s\n", cm_rpc_code_name(st.code), st.message);
		return -1;
	}
	Muri__V1__SearchResponse *r = (Muri__V1__SearchResponse *)resp;
	for (size_t i = 0; i < K; i++)
		labels[q * K + i] = i < r->n_results ? row_of(r->results[i]->id) : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

static Muri__V1__Vector **qptr;

static int search_batch(cm_rpc_client *c, size_t q0, size_t n, int level, int64_t *labels)
{
	Muri__V1__SearchBatchRequest req = MURI__V1__SEARCH_BATCH_REQUEST__INIT;
	req.query_vectors = &qptr[q0];
	req.n_query_vectors = n;
	req.collection = (char *)collection;
	req.top_k = K;
	req.consistency_level = level;
	req.timeout_ms = 60000;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	if (cm_rpc_unary(c, "/muri.v1.VectorStore/SearchBatch", &req.base, &muri__v1__search_batch_response__descriptor,
			 &resp, 120000, &st) != CM_OK) {
		fprintf(stderr, "SearchBatch: %s %s\n", cm_rpc_code_name(st.code), st.message);
		return -1;
	}
	Muri__V1__SearchBatchResponse *r = (Muri__V1__SearchBatchResponse *)resp;
	int rc = r->n_results == n ? 0 : -1;
	for (size_t q = 0; rc == 0 && q < n; q++)
		for (size_t i = 0; i < K; i++)
			labels[(q0 + q) * K + i] =
				i < r->results[q]->n_results ? row_of(r->results[q]->results[i]->id) : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

struct gjob {
	cm_rpc_client *c;
	int level, batch;
	int64_t *labels;
	size_t from, to;
	int failed;
};

static void *gw_worker(void *arg)
{
	struct gjob *j = arg;
	for (size_t q = j->from; q < j->to;) {
		size_t n = j->batch ? (j->to - q < (size_t)batch_queries ? j->to - q : (size_t)batch_queries) : 1;
		if ((j->batch ? search_batch(j->c, q, n, j->level, j->labels) : search_one(j->c, q, j->level, j->labels)) != 0)
			j->failed = 1;
		q += n;
	}
	return NULL;
}

struct gres {
	double recall, qps, p50_ms, p99_ms;
};

/* Sequential latency (per call) and QPS from rpc_threads threads. */
static int run_level(cm_rpc_client *c, int level, int batch, struct gres *r)
{
	int64_t *labels = calloc(nq * K, sizeof(*labels));
	size_t ncalls = batch ? (nq + (size_t)batch_queries - 1) / (size_t)batch_queries : nq;
	double *lat = malloc(ncalls * sizeof(double));
	int failed = 0;
	for (size_t i = 0, q = 0; i < ncalls; i++) {
		size_t n = batch ? (nq - q < (size_t)batch_queries ? nq - q : (size_t)batch_queries) : 1;
		double s = now_s();
		failed |= (batch ? search_batch(c, q, n, level, labels) : search_one(c, q, level, labels)) != 0;
		lat[i] = (now_s() - s) * 1e3;
		q += n;
	}
	r->p50_ms = pct(lat, ncalls, 50);
	r->p99_ms = pct(lat, ncalls, 99);
	r->recall = recall_of(labels);
	pthread_t t[MAX_THREADS];
	struct gjob j[MAX_THREADS];
	double t0 = now_s();
	for (int i = 0; i < rpc_threads; i++) {
		/* batch mode: thread shares on batch boundaries */
		size_t unit = batch ? (size_t)batch_queries : 1, units = (nq + unit - 1) / unit;
		size_t from = units * (size_t)i / (size_t)rpc_threads * unit, to = units * (size_t)(i + 1) / (size_t)rpc_threads * unit;
		j[i] = (struct gjob){c, level, batch, labels, from < nq ? from : nq, to < nq ? to : nq, 0};
		pthread_create(&t[i], NULL, gw_worker, &j[i]);
	}
	for (int i = 0; i < rpc_threads; i++) {
		pthread_join(t[i], NULL);
		failed |= j[i].failed;
	}
	r->qps = (double)nq / (now_s() - t0);
	free(lat);
	free(labels);
	return failed ? -1 : 0;
}

static int status_detail(cm_rpc_client *c, const char *key, char *out, size_t len)
{
	Muri__V1__StatusRequest req = MURI__V1__STATUS_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	if (cm_rpc_unary(c, "/muri.v1.Indexer/Status", &req.base, &muri__v1__status_response__descriptor, &resp,
			 10000, &st) != CM_OK)
		return -1;
	Muri__V1__StatusResponse *s = (Muri__V1__StatusResponse *)resp;
	int rc = -1;
	for (size_t i = 0; i < s->n_details; i++)
		if (strcmp(s->details[i]->key, key) == 0) {
			snprintf(out, len, "%s", s->details[i]->value);
			rc = 0;
		}
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

/* Inserts every row at QUORUM in batches; per-batch latency into lat. */
static int insert_all(cm_rpc_client *c, double *lat, size_t *nlat, double *vps)
{
	size_t nbatches = (nb + (size_t)insert_batch - 1) / (size_t)insert_batch;
	Muri__V1__Vector *vecs = calloc(nb, sizeof(*vecs));
	Muri__V1__Vector **vp = calloc(nb, sizeof(*vp));
	for (size_t i = 0; i < nb; i++) {
		muri__v1__vector__init(&vecs[i]);
		vecs[i].values = base + i * dim;
		vecs[i].n_values = dim;
		vp[i] = &vecs[i];
	}
	double t0 = now_s();
	int rc = 0;
	for (size_t b = 0; b < nbatches && rc == 0; b++) {
		size_t s = b * (size_t)insert_batch, n = nb - s < (size_t)insert_batch ? nb - s : (size_t)insert_batch;
		Muri__V1__InsertRequest req = MURI__V1__INSERT_REQUEST__INIT;
		req.collection = (char *)collection;
		req.vectors = &vp[s];
		req.n_vectors = n;
		req.consistency_level = MURI__V1__CONSISTENCY_LEVEL__QUORUM;
		req.timeout_ms = 120000;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		double ts = now_s();
		if (cm_rpc_unary(c, "/muri.v1.VectorStore/Insert", &req.base, &muri__v1__write_response__descriptor,
				 &resp, 180000, &st) != CM_OK) {
			fprintf(stderr, "Insert: %s %s\n", cm_rpc_code_name(st.code), st.message);
			rc = -1;
			break;
		}
		lat[b] = (now_s() - ts) * 1e3;
		Muri__V1__WriteResponse *w = (Muri__V1__WriteResponse *)resp;
		if (w->status != MURI__V1__WRITE_STATUS__SUCCESS || w->n_vector_ids != n) {
			fprintf(stderr, "Insert: status %d, %zu ids: %s\n", w->status, w->n_vector_ids, w->message);
			rc = -1;
		}
		for (size_t i = 0; rc == 0 && i < n; i++)
			snprintf(ids[s + i], sizeof(ids[0]), "%s", w->vector_ids[i]);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	*vps = (double)nb / (now_s() - t0);
	*nlat = nbatches;
	free(vecs);
	free(vp);
	return rc;
}

int main(int argc, char **argv)
{
	const char *name = "glove-100-angular", *target = NULL, *indexers = "";
	size_t rows = 0, nqueries = 10000;
	unsigned seed = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];
		if (!strcmp(a, "--gateway"))
			target = v;
		else if (!strcmp(a, "--collection"))
			collection = v;
		else if (!strcmp(a, "--indexers"))
			indexers = v;
		else if (!strcmp(a, "--dataset"))
			name = v;
		else if (!strcmp(a, "--rows"))
			rows = (size_t)atol(v);
		else if (!strcmp(a, "--queries"))
			nqueries = (size_t)atol(v);
		else if (!strcmp(a, "--threads"))
			threads = atoi(v);
		else if (!strcmp(a, "--rpc-threads"))
			rpc_threads = atoi(v);
		else if (!strcmp(a, "--m"))
			m = atoi(v);
		else if (!strcmp(a, "--ef-construction"))
			efc = atoi(v);
		else if (!strcmp(a, "--ef-search"))
			efs = atoi(v);
		else if (!strcmp(a, "--insert-batch"))
			insert_batch = atoi(v);
		else if (!strcmp(a, "--batch-queries"))
			batch_queries = atoi(v);
		else if (!strcmp(a, "--seed"))
			seed = (unsigned)atoi(v);
	}
	if (!target || threads < 1 || threads > MAX_THREADS || rpc_threads < 1 || rpc_threads > MAX_THREADS ||
	    insert_batch < 1 || insert_batch > 10000 || batch_queries < 1 || batch_queries > 1000) {
		fprintf(stderr, "--gateway required; --threads and --rpc-threads 1..64, --insert-batch 1..10000, "
				"--batch-queries 1..1000\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	const char *ds = getenv("MURI_DATASETS");
	char p[1024];
	size_t qd, allq, ngt, dgt;
	int32_t *gt = NULL;
	snprintf(p, sizeof(p), "%s/%s/base.fvecs", ds ? ds : "../shared/datasets", name);
	int rc = cm_fvecs_read(p, rows, &base, &nb, &dim);
	snprintf(p, sizeof(p), "%s/%s/query.fvecs", ds ? ds : "../shared/datasets", name);
	if (rc == CM_OK)
		rc = cm_fvecs_read(p, 0, &queries, &allq, &qd);
	snprintf(p, sizeof(p), "%s/%s/groundtruth.ivecs", ds ? ds : "../shared/datasets", name);
	if (rc == CM_OK)
		rc = cm_ivecs_read(p, 0, &gt, &ngt, &dgt);
	if (rc != CM_OK || qd != dim || ngt != allq || dgt < K) {
		fprintf(stderr, "cannot read %s\n", name);
		return 1;
	}
	size_t full;
	{
		float *tmp;
		size_t d2;
		snprintf(p, sizeof(p), "%s/%s/base.fvecs", ds ? ds : "../shared/datasets", name);
		full = rows && cm_fvecs_read(p, rows + 1, &tmp, &full, &d2) == CM_OK ? (free(tmp), full) : nb;
	}
	/* a random sample of the queries (partial Fisher-Yates), never the head */
	nq = nqueries < allq ? nqueries : allq;
	size_t *perm = malloc(allq * sizeof(*perm));
	srand(seed);
	for (size_t i = 0; i < allq; i++)
		perm[i] = i;
	for (size_t i = 0; i < nq; i++) {
		size_t j = i + (size_t)rand() % (allq - i);
		size_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	qsel = perm;
	truth = malloc(nq * K * sizeof(*truth));
	int exact = full > nb;
	if (exact) {
		fprintf(stderr, "ground truth: exact over the %zu rows inserted (faiss flat)\n", nb);
		if (exact_truth() != 0)
			return 1;
	} else {
		for (size_t q = 0; q < nq; q++)
			for (int i = 0; i < K; i++)
				truth[q * K + i] = gt[qsel[q] * dgt + (size_t)i];
	}
	qvec = calloc(nq, sizeof(*qvec));
	qptr = calloc(nq, sizeof(*qptr));
	for (size_t q = 0; q < nq; q++) {
		muri__v1__vector__init(&qvec[q]);
		qvec[q].values = queries + qsel[q] * dim;
		qvec[q].n_values = dim;
		qptr[q] = &qvec[q];
	}
	ids = calloc(nb, sizeof(*ids));
	cm_rpc_client *c = NULL;
	char err[256];
	cm_rpc_client_opts o = {.target = target, .max_message = 256u << 20};
	if (cm_rpc_client_new(&o, &c, err, sizeof(err)) != CM_OK) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* ingest at QUORUM */
	size_t nlat = 0;
	double *ilat = calloc(nb / (size_t)insert_batch + 2, sizeof(double)), vps = 0;
	fprintf(stderr, "inserting %zu rows through the gateway at QUORUM, %d per Insert...\n", nb, insert_batch);
	double t0 = now_s();
	if (insert_all(c, ilat, &nlat, &vps) != 0)
		return 1;
	sorted = malloc(nb * sizeof(int));
	for (size_t i = 0; i < nb; i++)
		sorted[i] = (int)i;
	qsort(sorted, nb, sizeof(int), cmp_id);
	/* wait for every indexer's index to cover the log */
	char list[1024];
	snprintf(list, sizeof(list), "%s", indexers);
	for (char *save = NULL, *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		cm_rpc_client *ic = NULL;
		cm_rpc_client_opts io = {.target = a};
		if (cm_rpc_client_new(&io, &ic, err, sizeof(err)) != CM_OK)
			continue;
		char backlog[32] = "";
		while (status_detail(ic, "index_backlog", backlog, sizeof(backlog)) == 0 && strcmp(backlog, "0") != 0)
			nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 200000000}, NULL);
		cm_rpc_client_free(ic);
	}
	double caught_up = now_s() - t0;
	fprintf(stderr, "indexed %.1f s after the first insert; searching...\n", caught_up);
	static const int levels[3] = {MURI__V1__CONSISTENCY_LEVEL__ONE, MURI__V1__CONSISTENCY_LEVEL__QUORUM,
				      MURI__V1__CONSISTENCY_LEVEL__ALL};
	static const char *lname[3] = {"ONE", "QUORUM", "ALL"};
	struct gres gr[3][2];
	int failed = 0;
	for (int l = 0; l < 3; l++)
		for (int b = 0; b < 2; b++) {
			if (run_level(c, levels[l], b, &gr[l][b]) != 0) {
				fprintf(stderr, "%s %s: some calls failed (their queries count as misses)\n", lname[l],
					b ? "SearchBatch" : "Search");
				failed = 1;
			}
			fprintf(stderr, "%s %s: recall %.4f, QPS %.0f, p50 %.3f ms, p99 %.3f ms\n", lname[l],
				b ? "SearchBatch" : "Search", gr[l][b].recall, gr[l][b].qps, gr[l][b].p50_ms, gr[l][b].p99_ms);
		}
	cm_rpc_client_free(c);
	fprintf(stderr, "in-process faiss: building HNSW%d efConstruction %d over %zu x %zu...\n", m, efc, nb, dim);
	struct result fs[SWEEP];
	double build_s;
	if (run_faiss(fs, &build_s) != 0)
		return 1;
	printf("dataset %s: %zu x %zu inserted, %zu random queries (seed %u), k=%d, truth %s; HNSW M=%d "
	       "efConstruction=%d efSearch=%d; gateway QPS from %d client threads (SearchBatch: %d queries per call), "
	       "in-process QPS from %d threads\n",
	       name, nb, dim, nq, seed, K, exact ? "exact over the rows inserted" : "the dataset's", m, efc, efs,
	       rpc_threads, batch_queries, threads);
	printf("%-44s %8s %10s %9s %9s\n", "", "recall", "QPS", "p50 ms", "p99 ms");
	for (int i = 0; i < SWEEP; i++) {
		char label[64];
		snprintf(label, sizeof(label), "in-process faiss, efSearch %d", fs[i].ef);
		printf("%-44s %8.4f %10.0f %9.3f %9.3f\n", label, fs[i].recall, fs[i].qps, fs[i].p50_ms, fs[i].p99_ms);
	}
	for (int l = 0; l < 3; l++)
		for (int b = 0; b < 2; b++) {
			char label[64];
			snprintf(label, sizeof(label), "gateway %s at %s%s", b ? "SearchBatch" : "Search", lname[l],
				 b ? " (per call)" : "");
			printf("%-44s %8.4f %10.0f %9.3f %9.3f\n", label, gr[l][b].recall, gr[l][b].qps, gr[l][b].p50_ms,
			       gr[l][b].p99_ms);
		}
	/* the in-process row at the same or higher recall than the gateway's at ONE */
	for (int b = 0; b < 2; b++) {
		int match = -1;
		for (int i = 0; i < SWEEP && match < 0; i++)
			if (fs[i].recall >= gr[0][b].recall)
				match = i;
		if (match < 0)
			match = SWEEP - 1;
		for (int l = 0; l < 3; l++)
			printf("%s at %s / in-process QPS at the same or higher recall (efSearch %d): %.2f\n",
			       b ? "SearchBatch" : "Search", lname[l], fs[match].ef, gr[l][b].qps / fs[match].qps);
	}
	double *il = malloc((nlat ? nlat : 1) * sizeof(double));
	memcpy(il, ilat, nlat * sizeof(double));
	printf("insert at QUORUM, %d vectors per Insert: %.0f vectors/s, per call p50 %.1f ms, p99 %.1f ms (%zu calls); "
	       "indexes caught up %.1f s after the first insert (in-process build with %d threads: %.1f s)\n",
	       insert_batch, vps, pct(il, nlat, 50), pct(ilat, nlat, 99), nlat, caught_up, threads, build_s);
	free(il);
	return failed;
}
