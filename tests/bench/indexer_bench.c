/* Indexer benchmark: one muri-indexer on loopback holding one fragment of a
 * real dataset (default glove-100-angular, 331k x 100-d, cosine) in HNSW,
 * against in-process faiss with the same index parameters measured in the
 * same run. Reports ingest rate at ONE (durable appends), then for each:
 * recall@10 against the ground truth, QPS with one query per call from T
 * in-process threads (one per core) and from R RPC client threads (an RPC
 * client waits on the network, so saturating the server takes more of them),
 * and sequential p50/p99 latency.
 *   indexer-bench [--dataset NAME] [--rows N] [--queries N] [--threads T] [--rpc-threads R]
 *                 [--m M] [--ef-construction E] [--ef-search E] [--batch N] [--parts LIST]
 *                 [--sample N]
 * --sample N measures N queries drawn at random (fixed seed) from all of
 * them (the first ones of glove's query file are much easier than the rest);
 * --rows N cuts the base to its first N rows and recomputes the exact top 10
 * of the measured queries over them.
 * --parts (default faiss,muri,hnswlib,rpc) picks the runs: muri is the
 * indexer's own build and search path in-process (ix_index), hnswlib the
 * baseline of hnswlib_baseline.py (run when MURI_HNSWLIB_PYTHON names a
 * Python with hnswlib, as scripts/bench.sh sets it; M 16 unless
 * --hnswlib-m). */
#include "tproc.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_rpc.h"
#include "cm_uuid.h"
#include "cm_vecs.h"
#include "indexer.pb-c.h"
#include "inproc_muri.h"

#include <faiss/c_api/AutoTune_c.h>
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

static float *base, *queries;
static int32_t *truth;
static size_t nb, nq, dim, dgt;
static int threads = 2, rpc_threads = 8, m = 32, efc = 200, efs = 128, batch = 10000;
static char ids[1 << 20][37]; /* UUIDs of rows, up to 1M rows */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void normalize(float *x, size_t n)
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

static double recall_of(const int64_t *labels) /* nq x 10 row numbers */
{
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++)
		for (int i = 0; i < 10; i++)
			for (int j = 0; j < 10; j++)
				if (labels[q * 10 + i] == truth[q * dgt + j])
					hit++;
	return (double)hit / (double)(nq * 10);
}

struct result {
	double recall, qps, p50_ms, p99_ms, build_s, cpu_qps;
	int ef;
};

#define SWEEP 5
static const int sweep_factor[SWEEP] = {4, 5, 6, 8, 12}; /* efSearch = efs * factor / 4 */

/* ---- in-process faiss ------------------------------------------------------ */

struct fjob {
	FaissIndex *idx;
	const float *qn;
	int64_t *labels;
	size_t from, to;
	double cpu_s; /* the thread's CPU time */
};

static void *faiss_worker(void *arg)
{
	struct fjob *j = arg;
	float d[10];
	double c0 = inproc_thread_cpu_s();
	for (size_t q = j->from; q < j->to; q++)
		faiss_Index_search(j->idx, 1, j->qn + q * dim, 10, d, j->labels + q * 10);
	j->cpu_s = inproc_thread_cpu_s() - c0;
	return NULL;
}

static double faiss_build_cpu_s;

static int run_faiss(struct result *rs)
{
	char spec[64];
	snprintf(spec, sizeof(spec), "HNSW%d", m);
	FaissIndex *idx = NULL;
	if (faiss_index_factory(&idx, (int)dim, spec, METRIC_INNER_PRODUCT) != 0)
		return -1;
	FaissParameterSpace *ps = NULL;
	faiss_ParameterSpace_new(&ps);
	char p[64];
	snprintf(p, sizeof(p), "efConstruction=%d", efc);
	faiss_ParameterSpace_set_index_parameters(ps, idx, p);
	float *bn = malloc(nb * dim * sizeof(float)), *qn = malloc(nq * dim * sizeof(float));
	memcpy(bn, base, nb * dim * sizeof(float));
	memcpy(qn, queries, nq * dim * sizeof(float));
	normalize(bn, nb);
	normalize(qn, nq);
	omp_set_num_threads(threads);
	double t0 = now_s(), c0 = inproc_process_cpu_s();
	faiss_Index_add(idx, (idx_t)nb, bn);
	double build_s = now_s() - t0;
	faiss_build_cpu_s = inproc_process_cpu_s() - c0;
	omp_set_num_threads(1);
	int64_t *labels = calloc(nq * 10, sizeof(*labels));
	double *lat = malloc(nq * sizeof(double));
	for (int sw = 0; sw < SWEEP; sw++) {
	struct result *r = &rs[sw];
	r->build_s = build_s;
	r->ef = efs * sweep_factor[sw] / 4;
	snprintf(p, sizeof(p), "efSearch=%d", r->ef);
	faiss_ParameterSpace_set_index_parameters(ps, idx, p);
	/* sequential latency */
	float d[10];
	for (size_t q = 0; q < nq; q++) {
		double s = now_s();
		faiss_Index_search(idx, 1, qn + q * dim, 10, d, labels + q * 10);
		lat[q] = (now_s() - s) * 1e3;
	}
	qsort(lat, nq, sizeof(double), cmp_d);
	r->p50_ms = lat[nq / 2];
	r->p99_ms = lat[nq * 99 / 100];
	r->recall = recall_of(labels);
	/* throughput, one query per call from `threads` threads */
	pthread_t t[64];
	struct fjob j[64];
	t0 = now_s();
	for (int i = 0; i < threads; i++) {
		j[i] = (struct fjob){idx, qn, labels, nq * (size_t)i / (size_t)threads, nq * (size_t)(i + 1) / (size_t)threads, 0};
		pthread_create(&t[i], NULL, faiss_worker, &j[i]);
	}
	double cpu = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		cpu += j[i].cpu_s;
	}
	r->qps = (double)nq / (now_s() - t0);
	r->cpu_qps = (double)nq * threads / cpu;
	}
	faiss_ParameterSpace_free(ps);
	free(lat);
	free(labels);
	free(bn);
	free(qn);
	faiss_Index_free(idx);
	return 0;
}

/* ---- through the indexer's RPC ---------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
	return strcmp(ids[*(const int *)a], ids[*(const int *)b]);
}

/* Row number of an id: binary search over rows sorted by id (built once,
 * before any timing). */
static int *sorted;

static void sort_ids(void)
{
	sorted = malloc(nb * sizeof(int));
	for (size_t i = 0; i < nb; i++)
		sorted[i] = (int)i;
	qsort(sorted, nb, sizeof(int), cmp_id);
}

static int pos_of(const char *id)
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

static int search_rpc(cm_rpc_client *c, size_t q, int64_t *labels)
{
	Muri__V1__LocalSearchRequest req = MURI__V1__LOCAL_SEARCH_REQUEST__INIT;
	Muri__V1__Vector v = MURI__V1__VECTOR__INIT;
	v.values = queries + q * dim;
	v.n_values = dim;
	req.magu = "bench";
	req.fragment = 0;
	req.query = &v;
	req.top_k = 10;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	if (cm_rpc_unary(c, "/muri.v1.Indexer/Search", &req.base, &muri__v1__local_search_response__descriptor,
			 &resp, 30000, &st) != CM_OK) {
		fprintf(stderr, "search: %s %s\n", cm_rpc_code_name(st.code), st.message);
		return -1;
	}
	Muri__V1__LocalSearchResponse *r = (Muri__V1__LocalSearchResponse *)resp;
	for (size_t i = 0; i < 10; i++)
		labels[q * 10 + i] = i < r->n_hits ? pos_of(r->hits[i]->id) : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

struct rjob {
	cm_rpc_client *c;
	int64_t *labels;
	size_t from, to;
	int failed;
};

static void *rpc_worker(void *arg)
{
	struct rjob *j = arg;
	for (size_t q = j->from; q < j->to; q++)
		if (search_rpc(j->c, q, j->labels) != 0)
			j->failed = 1;
	return NULL;
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

static int run_rpc(struct result *r, double *ingest_vps, double *index_s)
{
	tproc p;
	char ws[16];
	snprintf(ws, sizeof(ws), "%d", threads > 4 ? threads : 4);
	const char *args[] = {"--key-file", "node.key", "--data-dir", "data", "--rpc-workers", ws,
			      "--log-level", "warn", NULL};
	char exe[512];
	tproc_build_path("services/indexer/muri-indexer", exe, sizeof(exe));
	char key[600], data[600];
	char tmp[] = "/tmp/muri-bench-XXXXXX";
	if (!mkdtemp(tmp))
		return -1;
	snprintf(key, sizeof(key), "%s/node.key", tmp);
	snprintf(data, sizeof(data), "%s/data", tmp);
	args[1] = key;
	args[3] = data;
	if (tproc_start(&p, "indexer-bench", exe, args, 20000) != 0) {
		tproc_cleanup(&p, 1);
		return -1;
	}
	cm_rpc_client *c = NULL;
	char err[256];
	cm_rpc_client_opts o = {.target = p.target};
	cm_rpc_client_new(&o, &c, err, sizeof(err));
	/* this indexer alone holds fragment 0 of Magu "bench" */
	cm_keypair kp;
	cm_key_load(&kp, key);
	Muri__V1__Replica rep = MURI__V1__REPLICA__INIT;
	rep.pubkey.data = kp.pk;
	rep.pubkey.len = CM_PK_BYTES;
	rep.address = p.target;
	Muri__V1__Replica *reps[] = {&rep};
	Muri__V1__FragmentConfig cfg = MURI__V1__FRAGMENT_CONFIG__INIT;
	cfg.magu = "bench";
	cfg.epoch = 1;
	cfg.primary = rep.pubkey;
	cfg.replicas = reps;
	cfg.n_replicas = 1;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	if (cm_rpc_unary(c, "/muri.v1.Indexer/SetConfig", &cfg.base, &muri__v1__set_config_response__descriptor,
			 &resp, 10000, &st) != CM_OK) {
		fprintf(stderr, "SetConfig: %s\n", st.message);
		return -1;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	Muri__V1__IndexSpec spec = MURI__V1__INDEX_SPEC__INIT;
	spec.kind = MURI__V1__INDEX_KIND__HNSW;
	spec.hnsw_m = (uint32_t)m;
	spec.hnsw_ef_construction = (uint32_t)efc;
	spec.hnsw_ef_search = (uint32_t)efs;
	Muri__V1__FragmentSchema schema = MURI__V1__FRAGMENT_SCHEMA__INIT;
	schema.dimension = (uint32_t)dim;
	schema.metric = MURI__V1__METRIC__COSINE;
	schema.index = &spec;
	/* ingest at ONE in batches */
	Muri__V1__LogRecord *recs = calloc((size_t)batch, sizeof(*recs));
	Muri__V1__LogRecord **rp = calloc((size_t)batch, sizeof(*rp));
	Muri__V1__Vector *vecs = calloc((size_t)batch, sizeof(*vecs));
	double t0 = now_s();
	for (size_t start = 0; start < nb; start += (size_t)batch) {
		size_t n = nb - start < (size_t)batch ? nb - start : (size_t)batch;
		for (size_t i = 0; i < n; i++) {
			cm_uuid u;
			cm_uuid_v4(&u);
			cm_uuid_format(&u, ids[start + i]);
			muri__v1__log_record__init(&recs[i]);
			muri__v1__vector__init(&vecs[i]);
			vecs[i].values = base + (start + i) * dim;
			vecs[i].n_values = dim;
			recs[i].id = ids[start + i];
			recs[i].version = 1;
			recs[i].vector = &vecs[i];
			rp[i] = &recs[i];
		}
		Muri__V1__FragmentWriteRequest w = MURI__V1__FRAGMENT_WRITE_REQUEST__INIT;
		w.magu = "bench";
		w.epoch = 1;
		w.records = rp;
		w.n_records = n;
		w.schema = &schema;
		w.consistency_level = MURI__V1__CONSISTENCY_LEVEL__ONE;
		if (cm_rpc_unary(c, "/muri.v1.Indexer/Write", &w.base, &muri__v1__fragment_write_response__descriptor,
				 &resp, 120000, &st) != CM_OK) {
			fprintf(stderr, "Write: %s %s\n", cm_rpc_code_name(st.code), st.message);
			return -1;
		}
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	*ingest_vps = (double)nb / (now_s() - t0);
	sort_ids();
	/* wait for the index to cover every complete batch */
	char backlog[32] = "";
	while (status_detail(c, "index_backlog", backlog, sizeof(backlog)) == 0 && strcmp(backlog, "0") != 0)
		nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 200000000}, NULL);
	*index_s = now_s() - t0;
	int64_t *labels = calloc(nq * 10, sizeof(*labels));
	double *lat = malloc(nq * sizeof(double));
	for (size_t q = 0; q < nq; q++) {
		double s = now_s();
		search_rpc(c, q, labels);
		lat[q] = (now_s() - s) * 1e3;
	}
	qsort(lat, nq, sizeof(double), cmp_d);
	r->p50_ms = lat[nq / 2];
	r->p99_ms = lat[nq * 99 / 100];
	r->recall = recall_of(labels);
	pthread_t t[64];
	struct rjob j[64];
	t0 = now_s();
	for (int i = 0; i < rpc_threads; i++) {
		j[i] = (struct rjob){c, labels, nq * (size_t)i / (size_t)rpc_threads,
				     nq * (size_t)(i + 1) / (size_t)rpc_threads, 0};
		pthread_create(&t[i], NULL, rpc_worker, &j[i]);
	}
	for (int i = 0; i < rpc_threads; i++)
		pthread_join(t[i], NULL);
	r->qps = (double)nq / (now_s() - t0);
	free(lat);
	free(labels);
	free(sorted);
	free(recs);
	free(rp);
	free(vecs);
	cm_keypair_wipe(&kp);
	cm_rpc_client_free(c);
	tproc_stop(&p, SIGTERM, 60000);
	tproc_cleanup(&p, 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
	return 0;
}

/* ---- comparisons at equal recall -------------------------------------------- */

/* CPU-QPS at recall r, linear between the two rows around it (rows by
 * rising recall); 0 where r is past the best row (no baseline there). */
static double interp_rows(const struct inproc_row *h, int n, double r)
{
	if (r <= h[0].recall)
		return h[0].cpu_qps;
	for (int i = 1; i < n; i++)
		if (r <= h[i].recall) {
			double w = h[i].recall > h[i - 1].recall ? (r - h[i - 1].recall) / (h[i].recall - h[i - 1].recall) : 1;
			return h[i - 1].cpu_qps + w * (h[i].cpu_qps - h[i - 1].cpu_qps);
		}
	return 0;
}

/* "   name R" with the ratio a / b, or "   name -" when b is 0. */
static void ratio(const char *name, double a, double b)
{
	if (b > 0)
		printf("   %s %.2f", name, a / b);
	else
		printf("   %s -", name);
}

static double interp_qps(const struct result *fs, double r)
{
	struct inproc_row h[SWEEP];
	for (int i = 0; i < SWEEP; i++)
		h[i] = (struct inproc_row){.ef = fs[i].ef, .recall = fs[i].recall, .qps = fs[i].qps, .cpu_qps = fs[i].cpu_qps};
	return interp_rows(h, SWEEP, r);
}

/* ---- hnswlib (baseline, through hnswlib_baseline.py) ------------------------- */

static double hnswlib_build_s, hnswlib_build_cpu_s;
static size_t queries_read, sample; /* queries read, and the random sample measured (0: all) */
static char sample_file[64];          /* the row numbers of the measured queries, one a line */
static size_t rows;                   /* --rows: the base cut to its first rows */

/* With --rows the dataset's ground truth (for the whole base) does not
 * apply: the exact top 10 of each measured query over the cut base, by a
 * flat inner-product search of the normalized vectors. */
static int exact_truth(void)
{
	FaissIndex *flat = NULL;
	if (faiss_index_factory(&flat, (int)dim, "Flat", METRIC_INNER_PRODUCT) != 0)
		return -1;
	float *bn = malloc(nb * dim * sizeof(float)), *qn = malloc(nq * dim * sizeof(float)), *d = malloc(nq * 10 * sizeof(float));
	int64_t *l = malloc(nq * 10 * sizeof(int64_t));
	memcpy(bn, base, nb * dim * sizeof(float));
	memcpy(qn, queries, nq * dim * sizeof(float));
	normalize(bn, nb);
	normalize(qn, nq);
	faiss_Index_add(flat, (idx_t)nb, bn);
	faiss_Index_search(flat, (idx_t)nq, qn, 10, d, l);
	for (size_t q = 0; q < nq; q++)
		for (size_t j = 0; j < 10; j++)
			truth[q * dgt + j] = (int32_t)l[q * 10 + j];
	faiss_Index_free(flat);
	free(bn);
	free(qn);
	free(d);
	free(l);
	fprintf(stderr, "--rows %zu: exact ground truth recomputed over the cut base\n", rows);
	return 0;
}

static int run_hnswlib(const char *ds, const char *name, int hm, struct inproc_row *out, int max)
{
	const char *py = getenv("MURI_HNSWLIB_PYTHON"), *src = getenv("MURI_SOURCE_ROOT");
	if (!py || !src) {
		fprintf(stderr, "hnswlib: skipped (MURI_HNSWLIB_PYTHON / MURI_SOURCE_ROOT not set; scripts/bench.sh sets them)\n");
		return 0;
	}
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "'%s' '%s/tests/bench/hnswlib_baseline.py' '%s/%s' --m %d --ef-construction %d "
		 "--threads %d --queries %zu --query-ids %s --rows %zu --ef 64,96,128,192,256,384", py, src, ds, name, hm,
		 efc, threads, queries_read, sample_file, rows);
	fprintf(stderr, "hnswlib: %s\n", cmd);
	FILE *f = popen(cmd, "r");
	if (!f)
		return 0;
	int n = 0, ef;
	double rec, qps, cq, b, bc;
	while (n < max && fscanf(f, "hnswlib %d %lf %lf %lf %lf %lf\n", &ef, &rec, &qps, &cq, &b, &bc) == 6) {
		out[n++] = (struct inproc_row){.ef = ef, .recall = rec, .qps = qps, .cpu_qps = cq};
		hnswlib_build_s = b;
		hnswlib_build_cpu_s = bc;
	}
	if (pclose(f) != 0)
		fprintf(stderr, "hnswlib: the baseline script failed\n");
	return n;
}

int main(int argc, char **argv)
{
	const char *name = "glove-100-angular", *parts = "faiss,muri,hnswlib,rpc";
	size_t nqueries = 10000;
	int hnswlib_m = 16;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dataset"))
			name = argv[i + 1];
		else if (!strcmp(argv[i], "--rows"))
			rows = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--queries"))
			nqueries = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rpc-threads"))
			rpc_threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--m"))
			m = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--ef-construction"))
			efc = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--ef-search"))
			efs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--batch"))
			batch = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--sample"))
			sample = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--parts"))
			parts = argv[i + 1];
		else if (!strcmp(argv[i], "--hnswlib-m"))
			hnswlib_m = atoi(argv[i + 1]);
	}
	if (threads < 1 || threads > 64 || rpc_threads < 1 || rpc_threads > 64 || batch < 1 || batch > 10000) {
		fprintf(stderr, "--threads 1..64, --rpc-threads 1..64, --batch 1..10000\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	const char *ds = getenv("MURI_DATASETS");
	char p[1024];
	size_t qd, ngt;
	snprintf(p, sizeof(p), "%s/%s/base.fvecs", ds ? ds : "../shared/datasets", name);
	int rc = cm_fvecs_read(p, rows, &base, &nb, &dim);
	snprintf(p, sizeof(p), "%s/%s/query.fvecs", ds ? ds : "../shared/datasets", name);
	if (rc == CM_OK)
		rc = cm_fvecs_read(p, nqueries, &queries, &nq, &qd);
	snprintf(p, sizeof(p), "%s/%s/groundtruth.ivecs", ds ? ds : "../shared/datasets", name);
	if (rc == CM_OK)
		rc = cm_ivecs_read(p, nqueries, &truth, &ngt, &dgt);
	if (rc != CM_OK || nb > sizeof(ids) / sizeof(ids[0]) || (rows && rows != nb)) {
		fprintf(stderr, "cannot read %s (or more than 1M rows)\n", name);
		return 1;
	}
	queries_read = nq;
	size_t *perm = malloc(nq * sizeof(size_t));
	for (size_t i = 0; i < nq; i++)
		perm[i] = i;
	if (sample && sample < nq) { /* a random sample of the queries (fixed seed), never the head */
		uint64_t z = 42;
		for (size_t i = 0; i < sample; i++) {
			z = z * 6364136223846793005ULL + 1442695040888963407ULL;
			size_t j = i + (size_t)((z >> 33) % (nq - i));
			size_t tp = perm[i];
			perm[i] = perm[j];
			perm[j] = tp;
			for (size_t c = 0; c < dim; c++) {
				float t = queries[i * dim + c];
				queries[i * dim + c] = queries[j * dim + c];
				queries[j * dim + c] = t;
			}
			for (size_t c = 0; c < dgt; c++) {
				int32_t t = truth[i * dgt + c];
				truth[i * dgt + c] = truth[j * dgt + c];
				truth[j * dgt + c] = t;
			}
		}
		nq = sample;
	}
	snprintf(sample_file, sizeof(sample_file), "/tmp/indexer-bench-sample-%d", (int)getpid());
	FILE *sf = fopen(sample_file, "w");
	for (size_t i = 0; sf && i < nq; i++)
		fprintf(sf, "%zu\n", perm[i]);
	if (sf)
		fclose(sf);
	free(perm);
	if (rows && exact_truth() != 0)
		return 1;
	struct result fs[SWEEP], r;
	double ingest = 0, index_s = 0;
	int efl[SWEEP];
	for (int i = 0; i < SWEEP; i++)
		efl[i] = efs * sweep_factor[i] / 4;
	memset(fs, 0, sizeof(fs));
	memset(&r, 0, sizeof(r));
	if (strstr(parts, "faiss")) {
		fprintf(stderr, "in-process faiss: building HNSW%d efConstruction %d over %zu x %zu...\n", m, efc, nb, dim);
		if (run_faiss(fs) != 0)
			return 1;
	}
	struct inproc_row mr[SWEEP];
	double muri_build_s = 0, muri_build_cpu_s = 0;
	if (strstr(parts, "muri")) {
		fprintf(stderr, "in-process muri: building HNSW%d efConstruction %d over %zu x %zu...\n", m, efc, nb, dim);
		if (inproc_muri(base, nb, queries, nq, dim, m, efc, (size_t)batch, threads, threads, efl, SWEEP,
				recall_of, mr, &muri_build_s, &muri_build_cpu_s) != 0)
			return 1;
	}
	struct inproc_row hr[16];
	int nh = strstr(parts, "hnswlib") ? run_hnswlib(ds ? ds : "../shared/datasets", name, hnswlib_m, hr, 16) : 0;
	if (strstr(parts, "rpc")) {
		fprintf(stderr, "muri-indexer: ingesting and indexing...\n");
		if (run_rpc(&r, &ingest, &index_s) != 0)
			return 1;
	}
	printf("dataset %s: %zu x %zu, %zu queries, k=10; HNSW M=%d efConstruction=%d efSearch=%d; QPS with one query "
	       "per call from %d in-process threads and from %d RPC client threads (enough to keep the server busy)\n",
	       name, nb, dim, nq, m, efc, efs, threads, rpc_threads);
	printf("%-40s %8s %10s %9s %9s %10s\n", "", "recall", "QPS", "p50 ms", "p99 ms", "CPU-QPS");
	printf("(CPU-QPS: queries per CPU-second of the searching threads times their number, the QPS they would give "
	       "with a core each; stable on a shared machine, where wall QPS is not. Ratios compare CPU-QPS.)\n");
	int match = -1;
	for (int i = 0; strstr(parts, "faiss") && i < SWEEP; i++) {
		char label[64];
		snprintf(label, sizeof(label), "in-process faiss, efSearch %d", fs[i].ef);
		printf("%-40s %8.4f %10.0f %9.3f %9.3f %10.0f\n", label, fs[i].recall, fs[i].qps, fs[i].p50_ms, fs[i].p99_ms,
		       fs[i].cpu_qps);
		if (match < 0 && fs[i].recall >= r.recall)
			match = i;
	}
	for (int i = 0; strstr(parts, "muri") && i < SWEEP; i++) {
		char label[64];
		snprintf(label, sizeof(label), "faiss search, muri graph, efSearch %d", mr[i].ef);
		printf("%-40s %8.4f %10.0f %9s %9s %10.0f\n", label, mr[i].f_recall, mr[i].f_qps, "", "", mr[i].f_cpu_qps);
	}
	for (int i = 0; strstr(parts, "muri") && i < SWEEP; i++) {
		char label[64];
		snprintf(label, sizeof(label), "in-process muri, efSearch %d", mr[i].ef);
		printf("%-40s %8.4f %10.0f %9s %9s %10.0f", label, mr[i].recall, mr[i].qps, "", "", mr[i].cpu_qps);
		if (strstr(parts, "faiss"))
			ratio("muri/faiss", mr[i].cpu_qps, interp_qps(fs, mr[i].recall));
		printf("   muri/faiss-same-graph %.2f", mr[i].cpu_qps / mr[i].f_cpu_qps);
		if (nh)
			ratio("muri/hnswlib", mr[i].cpu_qps, interp_rows(hr, nh, mr[i].recall));
		printf("  (CPU-QPS at the same recall, interpolated; -: the baseline never reaches it)\n");
	}
	for (int i = 0; i < nh; i++) {
		char label[64];
		snprintf(label, sizeof(label), "hnswlib M%d, ef %d", hnswlib_m, hr[i].ef);
		printf("%-40s %8.4f %10.0f %9s %9s %10.0f\n", label, hr[i].recall, hr[i].qps, "", "", hr[i].cpu_qps);
	}
	if (strstr(parts, "rpc")) {
		char label[64];
		snprintf(label, sizeof(label), "muri-indexer Search RPC, efSearch %d", efs);
		printf("%-40s %8.4f %10.0f %9.3f %9.3f\n", label, r.recall, r.qps, r.p50_ms, r.p99_ms);
		if (strstr(parts, "faiss")) {
			printf("RPC / in-process QPS at the same efSearch: %.2f\n", r.qps / fs[0].qps);
			if (match >= 0)
				printf("RPC / in-process QPS at the same or higher in-process recall (efSearch %d): %.2f\n",
				       fs[match].ef, r.qps / fs[match].qps);
		}
		printf("ingest at ONE (durable, %d per Write): %.0f vectors/s; index caught up %.1f s after the first "
		       "write\n", batch, ingest, index_s);
	}
	printf("build over %zu vectors (wall s / CPU s):", nb);
	if (strstr(parts, "faiss"))
		printf(" faiss batch add, %d threads %.1f / %.1f;", threads, fs[0].build_s, faiss_build_cpu_s);
	if (strstr(parts, "muri"))
		printf(" muri ix_index_add (%d per call), %d threads %.1f / %.1f;", batch, threads, muri_build_s,
		       muri_build_cpu_s);
	if (nh)
		printf(" hnswlib M%d, %d threads %.1f / %.1f;", hnswlib_m, threads, hnswlib_build_s, hnswlib_build_cpu_s);
	printf("\n");
	unlink(sample_file);
	if (strstr(parts, "faiss") && strstr(parts, "muri"))
		printf("muri build / faiss build: %.2f wall, %.2f CPU\n", muri_build_s / fs[0].build_s,
		       muri_build_cpu_s / faiss_build_cpu_s);
	return 0;
}
