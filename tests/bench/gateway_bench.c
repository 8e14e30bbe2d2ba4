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
 *                 [--seed S] [--cpu-pids NAME=PID,...]
 * --cpu-pids: processes (the gateway, indexers, ledgers) whose CPU time per
 * query (/proc/<pid>/stat, user + system) is printed for each sequential
 * run, next to the client's own. */
#include "bench_util.h"
#include "cm_err.h"
#include "cm_vecs.h"
#include "gw_client.h"

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
#include <unistd.h>

#define K GW_K
#define MAX_THREADS GW_MAX_THREADS

static float *base, *queries;
static size_t nb, nq, dim;
static int64_t *truth;          /* nq x K row numbers */
static size_t *qsel;            /* the sampled query rows */
static int threads = 2, rpc_threads = 8, m = 32, efc = 200, efs = 128, insert_batch = 10000, batch_queries = 100;
static const char *collection = "bench";

static double recall_of(const int64_t *labels) /* nq x K */
{
	return gw_recall(truth, nq, labels);
}

/* Normalized copies of the rows and of the sampled queries (the caller's). */
static void normalized(float **bn, float **qn)
{
	*bn = malloc(nb * dim * sizeof(float));
	*qn = malloc(nq * dim * sizeof(float));
	memcpy(*bn, base, nb * dim * sizeof(float));
	for (size_t q = 0; q < nq; q++)
		memcpy(*qn + q * dim, queries + qsel[q] * dim, dim * sizeof(float));
	normalize_rows(*bn, nb, dim);
	normalize_rows(*qn, nq, dim);
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
	float *bn, *qn;
	normalized(&bn, &qn);
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
	float *bn, *qn;
	normalized(&bn, &qn);
	int rc = gw_exact_truth(bn, nb, qn, nq, dim, 1, threads, truth);
	free(bn);
	free(qn);
	return rc;
}

int main(int argc, char **argv)
{
	const char *name = "glove-100-angular", *target = NULL, *indexers = "", *cpu_pids = "";
	size_t rows = 0, nqueries = 10000;
	int seed = 1;
	const struct gw_arg args[] = {
		{"--gateway", GW_ARG_STR, &target},
		{"--collection", GW_ARG_STR, &collection},
		{"--indexers", GW_ARG_STR, &indexers},
		{"--dataset", GW_ARG_STR, &name},
		{"--rows", GW_ARG_SIZE, &rows},
		{"--queries", GW_ARG_SIZE, &nqueries},
		{"--threads", GW_ARG_INT, &threads},
		{"--rpc-threads", GW_ARG_INT, &rpc_threads},
		{"--m", GW_ARG_INT, &m},
		{"--ef-construction", GW_ARG_INT, &efc},
		{"--ef-search", GW_ARG_INT, &efs},
		{"--insert-batch", GW_ARG_INT, &insert_batch},
		{"--batch-queries", GW_ARG_INT, &batch_queries},
		{"--seed", GW_ARG_INT, &seed},
		{"--cpu-pids", GW_ARG_STR, &cpu_pids},
		{NULL, GW_ARG_STR, NULL}};
	if (gw_parse_args(argc, argv, args))
		return 2;
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
	struct gw_client g;
	if (gw_client_open(&g, target, collection, nb, dim) != 0)
		return 1;
	g.truth = truth;
	g.rpc_threads = rpc_threads;
	g.batch_queries = batch_queries;
	if (gw_cpu_parse(&g, cpu_pids) != 0)
		return 2;
	gw_client_set_queries(&g, queries, qsel, nq);
	/* ingest at QUORUM */
	struct lat ilat = {0};
	double vps = 0;
	fprintf(stderr, "inserting %zu rows through the gateway at QUORUM, %d per Insert...\n", nb, insert_batch);
	double t0 = now_s();
	if (gw_insert_all(&g, base, insert_batch, &ilat, &vps, 0) != 0)
		return 1;
	gw_sort_ids(&g);
	/* wait for every indexer's index to cover the log */
	gw_wait_indexed(indexers);
	double caught_up = now_s() - t0;
	fprintf(stderr, "indexed %.1f s after the first insert; searching...\n", caught_up);
	/* what each process spends with no search at all (following the chain,
	 * replication heartbeats, receipts), over idle_s seconds */
	double idle[GW_CPU_MAX], idle_s = 3;
	for (int i = 0; i < g.ncpu; i++)
		idle[i] = gw_cpu_s(&g, i);
	nanosleep(&(struct timespec){.tv_sec = (time_t)idle_s}, NULL);
	for (int i = 0; i < g.ncpu; i++) {
		double c = gw_cpu_s(&g, i);
		idle[i] = idle[i] >= 0 && c >= 0 ? (c - idle[i]) / idle_s * 1e3 : -1;
	}
	static const int levels[3] = {MURI__V1__CONSISTENCY_LEVEL__ONE, MURI__V1__CONSISTENCY_LEVEL__QUORUM,
				      MURI__V1__CONSISTENCY_LEVEL__ALL};
	static const char *lname[3] = {"ONE", "QUORUM", "ALL"};
	struct gw_level gr[3][2];
	int failed = 0;
	for (int l = 0; l < 3; l++)
		for (int b = 0; b < 2; b++) {
			if (gw_run_level(&g, levels[l], b, &gr[l][b]) != 0) {
				fprintf(stderr, "%s %s: some calls failed (their queries count as misses)\n", lname[l],
					b ? "SearchBatch" : "Search");
				failed = 1;
			}
			fprintf(stderr, "%s %s: recall %.4f, QPS %.0f, p50 %.3f ms, p99 %.3f ms\n", lname[l],
				b ? "SearchBatch" : "Search", gr[l][b].recall, gr[l][b].qps, gr[l][b].p50_ms, gr[l][b].p99_ms);
		}
	struct gw_client cpu = g; /* the names of the processes measured, kept past the free */
	gw_client_free(&g);
	fprintf(stderr, "in-process faiss: building HNSW%d efConstruction %d over %zu x %zu...\n", m, efc, nb, dim);
	struct result fs[SWEEP];
	double build_s;
	if (run_faiss(fs, &build_s) != 0)
		return 1;
	printf("dataset %s: %zu x %zu inserted, %zu random queries (seed %d), k=%d, truth %s; HNSW M=%d "
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
	if (cpu.ncpu > 1) {
		printf("CPU us per query over the sequential run (/proc/<pid>/stat user + system, %ld ticks/s):\n",
		       sysconf(_SC_CLK_TCK));
		printf("%-44s", "");
		for (int i = 0; i < cpu.ncpu; i++)
			printf(" %9s", cpu.cpu_name[i]);
		printf(" %9s\n", "all");
		double all = 0;
		printf("%-44s", "idle, no search (CPU ms per second)");
		for (int i = 0; i < cpu.ncpu; i++) {
			printf(" %9.1f", idle[i]);
			all += idle[i];
		}
		printf(" %9.1f\n", all);
		for (int l = 0; l < 3; l++)
			for (int b = 0; b < 2; b++) {
				char label[64];
				double sum = 0;
				snprintf(label, sizeof(label), "gateway %s at %s", b ? "SearchBatch" : "Search", lname[l]);
				printf("%-44s", label);
				for (int i = 0; i < cpu.ncpu; i++) {
					printf(" %9.1f", gr[l][b].cpu_us[i]);
					sum += gr[l][b].cpu_us[i];
				}
				printf(" %9.1f\n", sum);
			}
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
	printf("insert at QUORUM, %d vectors per Insert: %.0f vectors/s, per call p50 %.1f ms, p99 %.1f ms (%zu calls); "
	       "indexes caught up %.1f s after the first insert (in-process build with %d threads: %.1f s)\n",
	       insert_batch, vps, lat_pct(&ilat, 50), lat_pct(&ilat, 99), ilat.n, caught_up, threads, build_s);
	free(ilat.v);
	return failed;
}
