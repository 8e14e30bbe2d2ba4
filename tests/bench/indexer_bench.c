/* Indexer benchmark: one muri-indexer on loopback holding one fragment of a
 * real dataset (default glove-100-angular, 331k x 100-d, cosine) in HNSW,
 * against in-process faiss with the same index parameters measured in the
 * same run. Reports ingest rate at ONE (durable appends), then for each:
 * recall@10 against the ground truth, QPS with one query per call from T
 * in-process threads (one per core) and from R RPC client threads (an RPC
 * client waits on the network, so saturating the server takes more of them),
 * and sequential p50/p99 latency. Then:
 *  - filtered search: every row carries a synthetic int field "bucket"
 *    (a hash of the row, 0..999) and a filter bucket < b selects b/1000 of
 *    the rows (0.1%, 1%, 5%, 15%, 50%): recall@10 against brute force over
 *    the matching rows, QPS and p50/p99, next to the unfiltered search on the
 *    same queries, with the indexer's CPU time and its search stage
 *    (muri_indexer_search_stage_seconds) per query, which a busy machine
 *    disturbs less than wall latency; and the cost of evaluating the filter
 *    alone, in process: the postings as a set of seqs (ix_postings_seqs),
 *    compiled into a per-seq test (ix_postings_compile, and one test) and
 *    the SQLite metadata tables (the fallback) holding the same rows;
 *  - memory: the indexer's resident set per vector against the in-process
 *    faiss index alone (its serialized size);
 *  - search latency under ingest: p50/p99 of sequential searches while a
 *    writer inserts at ONE (one indexer) at the rate the indexer sustained
 *    while building, next to the idle figures.
 *   indexer-bench [--dataset NAME] [--rows N] [--queries N] [--threads T] [--rpc-threads R]
 *                 [--m M] [--ef-construction E] [--ef-search E] [--batch N] [--rpc-batch N]
 *                 [--filter-queries N] [--ingest-seconds S] [--filter-cost-only 1]
 *                 [--parts LIST] [--sample N] [--tune M1,M2,..:E1,E2,..]
 * --rpc-batch N (default 64; 0: not measured) also measures QPS with N
 * queries per Search call.
 * --tune M1,..:E1,.. runs only the (M, efConstruction) grid of
 * inproc_tune.h in process, and exits.
 * --sample N measures N queries drawn at random (fixed seed) from all of
 * them (the first ones of glove's query file are much easier than the rest);
 * --rows N cuts the base to its first N rows and recomputes the exact top 10
 * of the measured queries over them.
 * --parts (default faiss,muri,hnswlib,rpc) picks the runs: muri is the
 * indexer's own build and search path in-process (ix_index), hnswlib the
 * baseline of hnswlib_baseline.py (run when MURI_HNSWLIB_PYTHON names a
 * Python with hnswlib, as scripts/bench.sh sets it; M 16 unless
 * --hnswlib-m). */
#include "bench_util.h"
#include "tproc.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_rpc.h"
#include "cm_uuid.h"
#include "cm_vecs.h"
#include "indexer.pb-c.h"
#include "ix_filter.h"
#include "ix_postings.h"
#include "inproc_muri.h"
#include "inproc_tune.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static float *base, *queries;
static int32_t *truth;
static size_t nb, nq, dim, dgt;
static int threads = 2, rpc_threads = 8, m = 32, efc = 200, efs = 128, batch = 10000;
static size_t nqf = 1000;       /* queries per filtered case */
static double ingest_secs = 20; /* length of the search-under-ingest phase */
static size_t faiss_bytes;      /* serialized size of the in-process faiss index */
static int rpc_batch_opt = 64; /* > 0: also QPS with this many queries per Search call (LocalSearchRequest.queries) */
static int rpc_batch = 0;     /* what rpc_worker sends: 0 one query per call */
static double batch_qps, batch_recall, batch_cpu_qps; /* batch: indexer CPU-QPS, times threads */
static char ids[1 << 20][37]; /* UUIDs of rows, up to 1M rows */

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
	normalize_rows(bn, nb, dim);
	normalize_rows(qn, nq, dim);
	omp_set_num_threads(threads);
	double t0 = now_s(), c0 = inproc_process_cpu_s();
	faiss_Index_add(idx, (idx_t)nb, bn);
	double build_s = now_s() - t0;
	char fname[] = "/tmp/muri-bench-faiss-XXXXXX";
	int fd = mkstemp(fname);
	struct stat stt;
	if (fd >= 0 && faiss_write_index_fname(idx, fname) == 0 && stat(fname, &stt) == 0)
		faiss_bytes = (size_t)stt.st_size;
	if (fd >= 0) {
		close(fd);
		unlink(fname);
	}
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

/* Query q (optionally filtered); its 10 hits' rows into labels[q * 10..]. */
static int search_rpc_f(cm_rpc_client *c, size_t q, Muri__V1__Filter *flt, int64_t *labels)
{
	Muri__V1__LocalSearchRequest req = MURI__V1__LOCAL_SEARCH_REQUEST__INIT;
	Muri__V1__Vector v = MURI__V1__VECTOR__INIT;
	v.values = queries + q * dim;
	v.n_values = dim;
	req.magu = "bench";
	req.fragment = 0;
	req.query = &v;
	req.top_k = 10;
	req.filter = flt;
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

static int search_rpc(cm_rpc_client *c, size_t q, int64_t *labels)
{
	return search_rpc_f(c, q, NULL, labels);
}

/* Queries q0..q0+n in one Search call. */
static int search_rpc_batch(cm_rpc_client *c, size_t q0, size_t n, int64_t *labels)
{
	Muri__V1__LocalSearchRequest req = MURI__V1__LOCAL_SEARCH_REQUEST__INIT;
	Muri__V1__Vector v[1000], *vp[1000];
	for (size_t i = 0; i < n; i++) {
		muri__v1__vector__init(&v[i]);
		v[i].values = queries + (q0 + i) * dim;
		v[i].n_values = dim;
		vp[i] = &v[i];
	}
	req.magu = "bench";
	req.queries = vp;
	req.n_queries = n;
	req.top_k = 10;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	if (cm_rpc_unary(c, "/muri.v1.Indexer/Search", &req.base, &muri__v1__local_search_response__descriptor,
			 &resp, 60000, &st) != CM_OK) {
		fprintf(stderr, "search batch: %s %s\n", cm_rpc_code_name(st.code), st.message);
		return -1;
	}
	Muri__V1__LocalSearchResponse *r = (Muri__V1__LocalSearchResponse *)resp;
	for (size_t q = 0; q < n && q < r->n_answers; q++)
		for (size_t i = 0; i < 10; i++)
			labels[(q0 + q) * 10 + i] = i < r->answers[q]->n_hits ? pos_of(r->answers[q]->hits[i]->id) : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

struct rjob {
	cm_rpc_client *c;
	int64_t *labels;
	size_t from, to;
	int failed;
	Muri__V1__Filter *flt;
};

static void *rpc_worker(void *arg)
{
	struct rjob *j = arg;
	for (size_t q = j->from; q < j->to;) {
		size_t n = rpc_batch > 0 ? (j->to - q < (size_t)rpc_batch ? j->to - q : (size_t)rpc_batch) : 1;
		if ((rpc_batch > 0 ? search_rpc_batch(j->c, q, n, j->labels) : search_rpc_f(j->c, q, j->flt, j->labels)) != 0)
			j->failed = 1;
		q += n;
	}
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


/* ---- filtered search, memory, latency under ingest ------------------------- */

#define NSEL 5
static const int sel_permille[NSEL] = {1, 10, 50, 150, 500}; /* filter bucket < b */
static uint16_t *bucket;                                     /* per row, 0..999 */
static Muri__V1__FragmentSchema *g_schema;

struct fres {
	size_t matching;
	double recall, qps, p50_ms, p99_ms;
	double post_us, sql_us; /* filter evaluation alone, in process */
	double compile_us, test_ns; /* compiled: setup per query, one test */
	double cpu_us, stage_us;    /* the indexer's CPU and search stage per query (sequential) */
};
static pid_t g_pid;  /* the indexer under test */
static int g_mport;  /* its metrics port */
static struct fres fr[NSEL + 1]; /* [NSEL]: unfiltered on the same queries */
static size_t rss_bytes, rss_empty;
static struct {
	double p50_ms, p99_ms, idle_p50_ms, idle_p99_ms, target_vps, written_vps;
	size_t searches, rejected;
	char backlog_end[32];
} ing;

static uint16_t bucket_of(size_t row)
{
	uint64_t z = (uint64_t)row * 0x9e3779b97f4a7c15ULL + 0x6d757269;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint16_t)((z ^ (z >> 31)) % 1000);
}

/* The filter bucket < b, in caller-provided storage. */
struct pbflt {
	Muri__V1__Filter f;
	Muri__V1__Filter__ConditionsEntry e;
	Muri__V1__Filter__ConditionsEntry *ep[1];
	Muri__V1__Condition c;
};

static void pbflt_init(struct pbflt *p, int b)
{
	muri__v1__filter__init(&p->f);
	muri__v1__filter__conditions_entry__init(&p->e);
	muri__v1__condition__init(&p->c);
	p->c.lt__case = MURI__V1__CONDITION__LT__LT;
	p->c.lt = b;
	p->e.key = "bucket";
	p->e.value = &p->c;
	p->ep[0] = &p->e;
	p->f.conditions = p->ep;
	p->f.n_conditions = 1;
}

/* Exact top-10 rows among the rows with bucket < b (b 1000: all) for the
 * first nqf queries, by brute force (faiss flat inner product over the
 * normalized subset). */
static int32_t *brute_force(int b, size_t *matching)
{
	size_t n = 0;
	int32_t *rows = malloc(nb * sizeof(*rows));
	for (size_t i = 0; i < nb; i++)
		if (bucket[i] < b)
			rows[n++] = (int32_t)i;
	float *sub = malloc(n * dim * sizeof(float)), *qn = malloc(nqf * dim * sizeof(float));
	for (size_t i = 0; i < n; i++)
		memcpy(sub + i * dim, base + (size_t)rows[i] * dim, dim * sizeof(float));
	memcpy(qn, queries, nqf * dim * sizeof(float));
	normalize_rows(sub, n, dim);
	normalize_rows(qn, nqf, dim);
	FaissIndexFlatIP *fi = NULL;
	faiss_IndexFlatIP_new_with(&fi, (idx_t)dim);
	faiss_Index_add((FaissIndex *)fi, (idx_t)n, sub);
	float *d = malloc(nqf * 10 * sizeof(float));
	idx_t *l = malloc(nqf * 10 * sizeof(idx_t));
	omp_set_num_threads(threads);
	faiss_Index_search((FaissIndex *)fi, (idx_t)nqf, qn, 10, d, l);
	omp_set_num_threads(1);
	int32_t *t = malloc(nqf * 10 * sizeof(*t));
	for (size_t i = 0; i < nqf * 10; i++)
		t[i] = l[i] >= 0 ? rows[l[i]] : -2;
	faiss_Index_free((FaissIndex *)fi);
	free(rows);
	free(sub);
	free(qn);
	free(d);
	free(l);
	*matching = n;
	return t;
}

static double recall_vs(const int64_t *labels, const int32_t *t)
{
	size_t hit = 0, want = 0;
	for (size_t q = 0; q < nqf; q++)
		for (int j = 0; j < 10; j++) {
			if (t[q * 10 + j] < 0)
				continue;
			want++;
			for (int i = 0; i < 10; i++)
				hit += labels[q * 10 + i] == t[q * 10 + j];
		}
	return want ? (double)hit / (double)want : 1.0;
}

/* Latency (sequential), recall and QPS (rpc_threads) of nqf queries. */
/* CPU seconds (user + system) of process pid so far. */
static double cpu_of(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = 0;
	char *r = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* after the name: state and fields 4..13, then utime stime */
	if (!r || sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static char *fetch_metrics(int port);
/* Sum and count of the search stage histogram (stage "search") so far. */
static void search_stage(int port, double *sum, double *cnt)
{
	*sum = *cnt = 0;
	char *buf = fetch_metrics(port);
	if (!buf)
		return;
	const char *name = "muri_indexer_search_stage_seconds";
	char key[256];
	for (char *l = buf; (l = strstr(l, name)) != NULL; l++) {
		char lab[128];
		double v;
		if (sscanf(l + strlen(name), "_sum{%127[^}]} %lf", lab, &v) != 2 || !strstr(lab, "\"search\""))
			continue;
		*sum = v;
		snprintf(key, sizeof(key), "%s_count{%s} ", name, lab);
		char *c = strstr(buf, key);
		if (c)
			sscanf(c + strlen(key), "%lf", cnt);
		break;
	}
	free(buf);
}

static void measure(cm_rpc_client *c, Muri__V1__Filter *flt, const int32_t *t, struct fres *out)
{
	int64_t *labels = calloc(nqf * 10, sizeof(*labels));
	double *lat = malloc(nqf * sizeof(double));
	double s0, c0, s1, c1, cpu0 = cpu_of(g_pid);
	search_stage(g_mport, &s0, &c0);
	for (size_t q = 0; q < nqf; q++) {
		double s = now_s();
		search_rpc_f(c, q, flt, labels);
		lat[q] = (now_s() - s) * 1e3;
	}
	out->cpu_us = (cpu_of(g_pid) - cpu0) / (double)nqf * 1e6;
	search_stage(g_mport, &s1, &c1);
	out->stage_us = c1 > c0 ? (s1 - s0) / (c1 - c0) * 1e6 : 0;
	qsort(lat, nqf, sizeof(double), cmp_d);
	out->p50_ms = lat[nqf / 2];
	out->p99_ms = lat[nqf * 99 / 100];
	out->recall = recall_vs(labels, t);
	pthread_t th[64];
	struct rjob j[64];
	double t0 = now_s();
	for (int i = 0; i < rpc_threads; i++) {
		j[i] = (struct rjob){c, labels, nqf * (size_t)i / (size_t)rpc_threads,
				     nqf * (size_t)(i + 1) / (size_t)rpc_threads, 0, flt};
		pthread_create(&th[i], NULL, rpc_worker, &j[i]);
	}
	for (int i = 0; i < rpc_threads; i++)
		pthread_join(th[i], NULL);
	out->qps = (double)nqf / (now_s() - t0);
	free(labels);
	free(lat);
}

static int cmp_dbl(const void *a, const void *b)
{
	return cmp_d(a, b);
}

/* Median time of evaluating each filter on in-memory postings and on the
 * SQLite metadata tables (the previous path), both holding the bucket of
 * every row, in this process. */
static void filter_cost(void)
{
	ix_postings *p = ix_postings_new(0);
	char path[] = "/tmp/muri-bench-meta-XXXXXX";
	int fd = mkstemp(path);
	sqlite3 *db = NULL;
	ix_meta_stmts st;
	if (fd < 0 || sqlite3_open(path, &db) != SQLITE_OK || ix_meta_schema(db, NULL, 0) != CM_OK ||
	    ix_meta_prepare(db, &st) != CM_OK) {
		fprintf(stderr, "filter cost: cannot set up SQLite\n");
		return;
	}
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; BEGIN", NULL, NULL, NULL);
	for (size_t i = 0; i < nb; i++) {
		ix_field fl = {.key = "bucket", .key_len = 6, .v = {.type = IX_V_INT, .u.i = bucket[i]}};
		ix_postings_add(p, i, &fl, 1);
		ix_meta_insert(&st, i, &fl, 1);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	ix_meta_finalize(&st);
	for (int s = 0; s < NSEL; s++) {
		struct pbflt pb;
		cm_arena a;
		ix_filter f;
		double tp[21], ts[21], tc[21];
		pbflt_init(&pb, sel_permille[s]);
		cm_arena_init(&a, 0);
		ix_filter_from_pb(&pb.f, &a, &f, NULL, 0);
		for (int r = 0; r < 21; r++) {
			uint64_t *seqs = NULL;
			size_t n = 0;
			double t0 = now_s();
			ix_postings_seqs(p, &f, nb, &seqs, &n);
			tp[r] = (now_s() - t0) * 1e6;
			free(seqs);
			seqs = NULL;
			ix_pfilter *pf = NULL;
			size_t est = 0;
			t0 = now_s();
			ix_postings_compile(p, &f, &pf, &est);
			ix_pfilter_free(pf);
			tc[r] = (now_s() - t0) * 1e6;
			if (r == 0 && ix_postings_compile(p, &f, &pf, &est) == CM_OK) {
				/* one test: every row once, the mean */
				size_t hits = 0;
				t0 = now_s();
				for (size_t i = 0; i < nb; i++)
					hits += (size_t)ix_pfilter_match(pf, (uint64_t)i);
				fr[s].test_ns = (now_s() - t0) * 1e9 / (double)nb;
				ix_pfilter_free(pf);
				if (hits != n)
					fprintf(stderr, "filter cost: the compiled test admits %zu rows, the set %zu\n", hits,
						n);
			}
			t0 = now_s();
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
			ix_filter_seqs(db, &f, &seqs, &n, NULL, 0);
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			ts[r] = (now_s() - t0) * 1e6;
			free(seqs);
		}
		qsort(tp, 21, sizeof(double), cmp_dbl);
		qsort(ts, 21, sizeof(double), cmp_dbl);
		qsort(tc, 21, sizeof(double), cmp_dbl);
		fr[s].compile_us = tc[10];
		fr[s].post_us = tp[10];
		fr[s].sql_us = ts[10];
		cm_arena_free(&a);
	}
	ix_postings_free(p);
	sqlite3_close(db);
	close(fd);
	unlink(path);
	char wal[64];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", path);
	unlink(wal);
}

static void run_filtered(cm_rpc_client *c)
{
	for (int s = 0; s <= NSEL; s++) {
		int b = s < NSEL ? sel_permille[s] : 1000;
		int32_t *t = brute_force(b, &fr[s].matching);
		struct pbflt pb;
		pbflt_init(&pb, b);
		measure(c, s < NSEL ? &pb.f : NULL, t, &fr[s]);
		free(t);
		fprintf(stderr, "  filter bucket < %d: %zu rows, recall %.4f, p99 %.3f ms\n", b, fr[s].matching,
			fr[s].recall, fr[s].p99_ms);
	}
}

static size_t rss_of(pid_t pid)
{
	char path[64], line[256];
	size_t kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmRSS: %zu kB", &kb) == 1)
			break;
	fclose(fp);
	return kb * 1024;
}

/* Writes at ONE at a fixed rate until stop; rows cycle through the base
 * under fresh ids. */
struct wjob {
	cm_rpc_client *c;
	double vps, secs;
	size_t written, rejected;
	volatile int done;
};

static void *writer(void *arg)
{
	struct wjob *w = arg;
	enum { WB = 1000 };
	static Muri__V1__LogRecord recs[WB];
	static Muri__V1__LogRecord *rp[WB];
	static Muri__V1__Vector vecs[WB];
	static Muri__V1__Metadata md[WB];
	static Muri__V1__Metadata__FieldsEntry fe[WB];
	static Muri__V1__Metadata__FieldsEntry *fep[WB];
	static Muri__V1__Value val[WB];
	static char wid[WB][37];
	double t0 = now_s();
	size_t row = 0;
	while (now_s() - t0 < w->secs) {
		double due = t0 + (double)w->written / w->vps;
		double wait = due - now_s();
		if (wait > 0)
			nanosleep(&(struct timespec){.tv_sec = (time_t)wait,
						     .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)},
				  NULL);
		for (size_t i = 0; i < WB; i++, row = (row + 1) % nb) {
			cm_uuid u;
			cm_uuid_v4(&u);
			cm_uuid_format(&u, wid[i]);
			muri__v1__log_record__init(&recs[i]);
			muri__v1__vector__init(&vecs[i]);
			muri__v1__metadata__init(&md[i]);
			muri__v1__metadata__fields_entry__init(&fe[i]);
			muri__v1__value__init(&val[i]);
			val[i].kind_case = MURI__V1__VALUE__KIND_INT_VALUE;
			val[i].int_value = bucket[row];
			fe[i].key = "bucket";
			fe[i].value = &val[i];
			fep[i] = &fe[i];
			md[i].fields = &fep[i];
			md[i].n_fields = 1;
			vecs[i].values = base + row * dim;
			vecs[i].n_values = dim;
			recs[i].id = wid[i];
			recs[i].version = 1;
			recs[i].vector = &vecs[i];
			recs[i].metadata = &md[i];
			rp[i] = &recs[i];
		}
		Muri__V1__FragmentWriteRequest req = MURI__V1__FRAGMENT_WRITE_REQUEST__INIT;
		req.magu = "bench";
		req.epoch = 1;
		req.records = rp;
		req.n_records = WB;
		req.schema = g_schema;
		req.consistency_level = MURI__V1__CONSISTENCY_LEVEL__ONE;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		if (cm_rpc_unary(w->c, "/muri.v1.Indexer/Write", &req.base, &muri__v1__fragment_write_response__descriptor,
				 &resp, 120000, &st) != CM_OK) {
			w->rejected += WB; /* back-pressure (RESOURCE_EXHAUSTED) or an error: retried later */
			nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 50000000}, NULL);
			continue;
		}
		protobuf_c_message_free_unpacked(resp, NULL);
		w->written += WB;
	}
	w->done = 1;
	return NULL;
}

static void run_ingest(cm_rpc_client *c, double vps)
{
	struct wjob w = {.c = c, .vps = vps, .secs = ingest_secs};
	size_t cap = 1 << 16, n = 0;
	double *lat = malloc(cap * sizeof(double));
	int64_t *labels = calloc(nq * 10, sizeof(*labels));
	/* idle, the same loop */
	for (size_t q = 0; q < nqf; q++) {
		double s = now_s();
		search_rpc(c, q, labels);
		lat[q] = (now_s() - s) * 1e3;
	}
	qsort(lat, nqf, sizeof(double), cmp_d);
	ing.idle_p50_ms = lat[nqf / 2];
	ing.idle_p99_ms = lat[nqf * 99 / 100];
	pthread_t t;
	double t0 = now_s();
	pthread_create(&t, NULL, writer, &w);
	for (size_t q = 0; !w.done; q = (q + 1) % nq) {
		double s = now_s();
		search_rpc(c, q, labels);
		if (n == cap) {
			cap *= 2;
			lat = realloc(lat, cap * sizeof(double));
		}
		lat[n++] = (now_s() - s) * 1e3;
	}
	pthread_join(t, NULL);
	double el = now_s() - t0;
	status_detail(c, "index_backlog", ing.backlog_end, sizeof(ing.backlog_end));
	qsort(lat, n, sizeof(double), cmp_d);
	ing.p50_ms = n ? lat[n / 2] : 0;
	ing.p99_ms = n ? lat[n * 99 / 100] : 0;
	ing.searches = n;
	ing.target_vps = vps;
	ing.written_vps = (double)w.written / el;
	ing.rejected = w.rejected;
	free(lat);
	free(labels);
}

/* Where the server's Search time went: the mean of each stage histogram
 * (muri_indexer_search_stage_seconds, muri_rpc_*_seconds of Search) from
 * the indexer's /metrics, over every search of the run. */
/* The indexer's /metrics page (malloc'd), or NULL. */
static char *fetch_metrics(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	const char *get = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	if (write(fd, get, strlen(get)) != (ssize_t)strlen(get)) {
		close(fd);
		return NULL;
	}
	size_t cap = 1 << 22, n = 0;
	char *buf = malloc(cap + 1);
	ssize_t got;
	while (buf && n < cap && (got = read(fd, buf + n, cap - n)) > 0)
		n += (size_t)got;
	close(fd);
	if (buf)
		buf[n] = 0;
	return buf;
}

static void print_stages(int port)
{
	char *buf = fetch_metrics(port);
	if (!buf)
		return;
	static const char *const names[] = {"muri_rpc_decode_seconds", "muri_indexer_search_stage_seconds",
					     "muri_rpc_encode_seconds", "muri_rpc_seconds"};
	printf("server-side Search time by stage (mean per answer, us):");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		for (char *l = buf; (l = strstr(l, names[i])) != NULL; l++) {
			char lab[128];
			double sum, cnt;
			if (sscanf(l + strlen(names[i]), "_sum{%127[^}]} %lf", lab, &sum) != 2 ||
			    (i != 1 && !strstr(lab, "Indexer/Search")))
				continue;
			char key[256];
			snprintf(key, sizeof(key), "%s_count{%s} ", names[i], lab);
			char *c = strstr(buf, key);
			if (c && sscanf(c + strlen(key), "%lf", &cnt) == 1 && cnt > 0)
				printf(" %s %.1f", i == 1 ? lab : names[i] + 5, sum / cnt * 1e6);
		}
	printf("\n");
	free(buf);
}

static int run_rpc(struct result *r, double *ingest_vps, double *index_s)
{
	tproc p;
	char ws[16];
	snprintf(ws, sizeof(ws), "%d", threads > 4 ? threads : 4);
	/* no write backpressure: ingest runs ahead of the index on a busy machine */
	const char *args[] = {"--key-file", "node.key", "--data-dir", "data", "--rpc-workers", ws,
			      "--log-level", "warn", "--max-index-backlog", "0", NULL};
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
	rss_empty = rss_of(p.pid);
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
	Muri__V1__Metadata *md = calloc((size_t)batch, sizeof(*md));
	Muri__V1__Metadata__FieldsEntry *fe = calloc((size_t)batch, sizeof(*fe));
	Muri__V1__Metadata__FieldsEntry **fep = calloc((size_t)batch, sizeof(*fep));
	Muri__V1__Value *val = calloc((size_t)batch, sizeof(*val));
	g_schema = &schema;
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
			muri__v1__metadata__init(&md[i]);
			muri__v1__metadata__fields_entry__init(&fe[i]);
			muri__v1__value__init(&val[i]);
			val[i].kind_case = MURI__V1__VALUE__KIND_INT_VALUE;
			val[i].int_value = bucket[start + i];
			fe[i].key = "bucket";
			fe[i].value = &val[i];
			fep[i] = &fe[i];
			md[i].fields = &fep[i];
			md[i].n_fields = 1;
			recs[i].metadata = &md[i];
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
	/* the indexer's own CPU over the QPS runs: queries per CPU-second of
	 * the indexer process, times threads, to compare with in-process CPU-QPS */
	double cpu0 = cpu_of(p.pid);
	t0 = now_s();
	for (int i = 0; i < rpc_threads; i++) {
		j[i] = (struct rjob){c, labels, nq * (size_t)i / (size_t)rpc_threads,
				     nq * (size_t)(i + 1) / (size_t)rpc_threads, 0};
		pthread_create(&t[i], NULL, rpc_worker, &j[i]);
	}
	for (int i = 0; i < rpc_threads; i++)
		pthread_join(t[i], NULL);
	r->qps = (double)nq / (now_s() - t0);
	double cpu1 = cpu_of(p.pid);
	r->cpu_qps = cpu1 > cpu0 ? (double)nq * threads / (cpu1 - cpu0) : 0;
	if (rpc_batch_opt > 0) {
		rpc_batch = rpc_batch_opt;
		cpu0 = cpu_of(p.pid);
		memset(labels, 0xff, nq * 10 * sizeof(*labels));
		t0 = now_s();
		for (int i = 0; i < rpc_threads; i++) {
			j[i] = (struct rjob){c, labels, nq * (size_t)i / (size_t)rpc_threads,
					     nq * (size_t)(i + 1) / (size_t)rpc_threads, 0};
			pthread_create(&t[i], NULL, rpc_worker, &j[i]);
		}
		for (int i = 0; i < rpc_threads; i++)
			pthread_join(t[i], NULL);
		batch_qps = (double)nq / (now_s() - t0);
		cpu1 = cpu_of(p.pid);
		batch_cpu_qps = cpu1 > cpu0 ? (double)nq * threads / (cpu1 - cpu0) : 0;
		batch_recall = recall_of(labels);
		rpc_batch = 0;
	}
	print_stages(p.metrics_port);
	rss_bytes = rss_of(p.pid);
	g_pid = p.pid;
	g_mport = p.metrics_port;
	fprintf(stderr, "muri-indexer: filtered searches...\n");
	run_filtered(c);
	fprintf(stderr, "muri-indexer: searches while inserting at %.0f vectors/s for %.0f s...\n",
		(double)nb / *index_s, ingest_secs);
	run_ingest(c, (double)nb / *index_s);
	free(lat);
	free(labels);
	free(sorted);
	free(recs);
	free(rp);
	free(vecs);
	free(md);
	free(fe);
	free(fep);
	free(val);
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
	return inproc_interp(h, SWEEP, r);
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
	normalize_rows(bn, nb, dim);
	normalize_rows(qn, nq, dim);
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
	int cost_only = 0;
	const char *tune = NULL;
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
		else if (!strcmp(argv[i], "--filter-queries"))
			nqf = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--ingest-seconds"))
			ingest_secs = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--filter-cost-only"))
			cost_only = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rpc-batch"))
			rpc_batch_opt = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--sample"))
			sample = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--parts"))
			parts = argv[i + 1];
		else if (!strcmp(argv[i], "--hnswlib-m"))
			hnswlib_m = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--tune"))
			tune = argv[i + 1];
	}
	if (threads < 1 || threads > 64 || rpc_threads < 1 || rpc_threads > 64 || batch < 1 || batch > 10000 ||
	    rpc_batch_opt < 0 || rpc_batch_opt > 256) {
		fprintf(stderr, "--threads 1..64, --rpc-threads 1..64, --batch 1..10000, --rpc-batch 0..256\n");
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
	if (tune)
		return inproc_tune(tune, base, nb, queries, nq, dim, (size_t)batch, threads, recall_of) == 0 ? 0 : 1;
	if (nqf < 100 || nqf > nq || ingest_secs < 1) {
		fprintf(stderr, "--filter-queries 100..queries, --ingest-seconds 1 or more\n");
		return 2;
	}
	bucket = malloc(nb * sizeof(*bucket));
	for (size_t i = 0; i < nb; i++)
		bucket[i] = bucket_of(i);
	fprintf(stderr, "filter evaluation in process: postings against SQLite...\n");
	filter_cost();
	if (cost_only) {
		printf("filter evaluation over %zu rows (int field bucket, filter bucket < b), median of 21, in process:\n", nb);
		printf("%-14s %11s %11s %9s %11s\n", "selectivity", "compiled us", "test ns", "set us", "SQLite us");
		for (int s = 0; s < NSEL; s++) {
			char lb[32];
			snprintf(lb, sizeof(lb), "%.1f%%", sel_permille[s] / 10.0);
			printf("%-14s %11.2f %11.1f %9.1f %11.1f\n", lb, fr[s].compile_us, fr[s].test_ns, fr[s].post_us,
			       fr[s].sql_us);
		}
		return 0;
	}
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
			ratio("muri/hnswlib", mr[i].cpu_qps, inproc_interp(hr, nh, mr[i].recall));
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
		printf("%-40s %8.4f %10.0f %9.3f %9.3f %10.0f\n", label, r.recall, r.qps, r.p50_ms, r.p99_ms, r.cpu_qps);
		if (rpc_batch_opt > 0) {
			snprintf(label, sizeof(label), "Search RPC, %d queries per call", rpc_batch_opt);
			printf("%-40s %8.4f %10.0f %9s %9s %10.0f\n", label, batch_recall, batch_qps, "", "", batch_cpu_qps);
		}
		printf("(RPC CPU-QPS: queries per CPU-second of the indexer process, times %d; its CPU per query %.0f us, "
		       "%.0f us batched)\n", threads, r.cpu_qps > 0 ? 1e6 * threads / r.cpu_qps : 0,
		       batch_cpu_qps > 0 ? 1e6 * threads / batch_cpu_qps : 0);
		for (int i = 0; strstr(parts, "muri") && i < SWEEP; i++)
			if (mr[i].ef == efs && mr[i].cpu_qps > 0) {
				printf("RPC / in-process muri CPU-QPS at efSearch %d: %.2f", efs, r.cpu_qps / mr[i].cpu_qps);
				if (rpc_batch_opt > 0)
					printf(", batched %.2f", batch_cpu_qps / mr[i].cpu_qps);
				printf("\n");
			}
		if (strstr(parts, "faiss")) {
			printf("RPC / in-process QPS at the same efSearch: %.2f\n", r.qps / fs[0].qps);
			if (match >= 0)
				printf("RPC / in-process QPS at the same or higher in-process recall (efSearch %d): %.2f\n",
				       fs[match].ef, r.qps / fs[match].qps);
			if (match >= 0 && rpc_batch_opt > 0)
				printf("batched RPC / in-process QPS at the same or higher in-process recall: %.2f\n",
				       batch_qps / fs[match].qps);
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
	if (strstr(parts, "rpc")) {
		printf("\nfiltered search: int field bucket (a hash of the row, 0..999), filter bucket < b; %zu queries, k=10, "
		       "recall against brute force over the matching rows; QPS from %d RPC client threads; filter evaluation "
		       "alone (median of 21, in process, the same rows): compiled postings (setup, one test), postings as a "
		       "set, SQLite tables; the indexer's CPU and search stage per query over the sequential run\n", nqf,
		       rpc_threads);
		printf("%-14s %9s %8s %8s %9s %9s %9s %9s %11s %9s %9s %11s\n", "selectivity", "rows", "recall", "QPS",
		       "p50 ms", "p99 ms", "CPU us", "stage us", "compiled us", "test ns", "set us", "SQLite us");
		for (int s = NSEL; s >= 0; s--) {
			char lb[32];
			if (s == NSEL)
				snprintf(lb, sizeof(lb), "unfiltered");
			else
				snprintf(lb, sizeof(lb), "%.1f%%", sel_permille[s] / 10.0);
			printf("%-14s %9zu %8.4f %8.0f %9.3f %9.3f %9.1f %9.1f", lb, fr[s].matching, fr[s].recall, fr[s].qps,
			       fr[s].p50_ms, fr[s].p99_ms, fr[s].cpu_us, fr[s].stage_us);
			if (s < NSEL)
				printf(" %11.2f %9.1f %9.1f %11.1f\n", fr[s].compile_us, fr[s].test_ns, fr[s].post_us,
				       fr[s].sql_us);
			else
				printf(" %11s %9s %9s %11s\n", "-", "-", "-", "-");
		}
		printf("at 50%% / unfiltered: p99 %.2f (target 1.5), p50 %.2f, CPU per query %.2f, search stage %.2f\n",
		       fr[NSEL - 1].p99_ms / fr[NSEL].p99_ms, fr[NSEL - 1].p50_ms / fr[NSEL].p50_ms,
		       fr[NSEL - 1].cpu_us / fr[NSEL].cpu_us, fr[NSEL - 1].stage_us / fr[NSEL].stage_us);
		printf("\nmemory: indexer resident %.1f MiB (%.1f MiB before the first write) = %.0f bytes per vector, %.0f "
		       "above the empty process",
		       rss_bytes / 1048576.0, rss_empty / 1048576.0, (double)rss_bytes / (double)nb,
		       (double)(rss_bytes - rss_empty) / (double)nb);
		if (faiss_bytes)
			printf("; in-process faiss index alone (serialized) %.1f MiB = %.0f bytes per vector; ratio %.2f, "
			       "above the empty process %.2f (target 1.5)\n",
			       faiss_bytes / 1048576.0, (double)faiss_bytes / (double)nb,
			       (double)rss_bytes / (double)faiss_bytes,
			       (double)(rss_bytes - rss_empty) / (double)faiss_bytes);
		else
			printf(" (no in-process faiss index in this run to compare with: --parts faiss)\n");
		printf("\nsearch under ingest (one indexer, inserts at ONE, 1000 per Write, target %.0f vectors/s = the rate the "
		       "indexer sustained while building; %.0f s):\n", ing.target_vps, ingest_secs);
		printf("%-28s %9s %9s %9s\n", "", "searches", "p50 ms", "p99 ms");
		printf("%-28s %9zu %9.3f %9.3f\n", "idle", nqf, ing.idle_p50_ms, ing.idle_p99_ms);
		printf("%-28s %9zu %9.3f %9.3f\n", "during inserts", ing.searches, ing.p50_ms, ing.p99_ms);
		printf("inserted %.0f vectors/s (%zu refused by back-pressure or errors); index backlog at the end: %s\n",
		       ing.written_vps, ing.rejected, ing.backlog_end);
	}
	return 0;
}
