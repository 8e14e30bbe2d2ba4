/* Scale benchmark client (scripts/bench.sh scale starts the network,
 * tests/python/bench_scale.py, then runs this) on an L2 dataset folder
 * (tests/bench/fashion_mnist_1m.py writes one):
 *  1. baseline, in this process: the indexer's own HNSW (ix_index, the same
 *     M, efConstruction, index batch and seed as the collection, so the
 *     same graph the indexers build) over the same rows, searched by muri's
 *     walk and by faiss's IndexHNSW::search at a sweep of efSearch values;
 *     the smallest efSearch whose recall@10 reaches --recall is the
 *     collection's (fixed at creation);
 *  2. CreateCollection through the gateway (L2, HNSW, --replication,
 *     --fragments), then Insert of every row at QUORUM in --insert-batch
 *     batches (per-call latency, vectors/s), and the wait until every
 *     indexer's index covers its log; resident set of each indexer (--pids);
 *  3. Search (one query per call) and SearchBatch at ONE and QUORUM:
 *     recall@10, sequential p50/p99 per call, QPS and p99 from
 *     --rpc-threads client threads;
 *  4. a mixed load for --mixed-seconds: --mixed-searchers threads of Search
 *     at QUORUM beside --mixed-writers threads alternating a one-vector
 *     Update and a one-id Delete at QUORUM, on rows outside every query's
 *     true top 10 (an update adds 1 to one pixel), so recall stays
 *     measurable; p50/p99 of each;
 *  then DVESP's targets, met or not.
 *   scale-bench --gateway HOST:PORT --data DIR [--collection NAME] [--indexers A,B,C] [--pids P,Q,R]
 *               [--rows N] [--queries N] [--threads T] [--rpc-threads R] [--m M] [--ef-construction E]
 *               [--efs E1,E2,...] [--recall R] [--replication N] [--fragments N] [--insert-batch N]
 *               [--batch-queries N] [--mixed-seconds S] [--mixed-searchers N] [--mixed-writers N] */
#include "bench_util.h"
#include "cm_err.h"
#include "cm_vecs.h"
#include "gw_client.h"
#include "inproc_muri.h"
#include "ix_index.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define K GW_K
#define MAX_THREADS GW_MAX_THREADS
#define MAX_EFS 16
#define MAX_PIDS 16
#define INDEX_BATCH 256
#define SEED 0x6d757269ull

static float *base, *queries;
static FILE *base_file; /* base.fvecs, for the rows the mixed load updates once base is freed */
static size_t nb, nq, dim;
static int64_t *truth; /* nq x K row numbers */
static struct gw_client gw;
static int threads = 2, rpc_threads = 8, m = 16, efc = 100, insert_batch = 10000, batch_queries = 100;
static int replication = 3, fragments = 1, mixed_s = 60, mixed_searchers = 4, mixed_writers = 2;
static double recall_target = 0.95;
static const char *collection = "scale";

static double recall_of(const int64_t *labels)
{
	return gw_recall(truth, nq, labels);
}

/* ---- mixed phase ----------------------------------------------------------------------- */

static atomic_int mixed_stop;
static atomic_size_t next_update, next_delete;
static size_t *pool; /* rows in no query's true top K, shuffled: updates from the front, deletes from the back */
static size_t npool;

struct mjob {
	int writer, failed, nth; /* searcher nth of mixed_searchers takes queries nth, nth + mixed_searchers, ... */
	size_t calls;
	int64_t *labels;
	struct lat a, b; /* searcher: search; writer: update, delete */
};

static void *mixed_worker(void *arg)
{
	struct mjob *j = arg;
	float *v = malloc(dim * sizeof(float));
	for (size_t i = 0; !atomic_load(&mixed_stop); i++) {
		double s = now_s();
		if (!j->writer) {
			size_t q = ((size_t)j->nth + i * (size_t)mixed_searchers) % nq;
			j->failed |= gw_search_one(&gw, q, MURI__V1__CONSISTENCY_LEVEL__QUORUM, j->labels) != 0;
			lat_add(&j->a, (now_s() - s) * 1e3);
			j->calls++;
			continue;
		}
		size_t u = atomic_fetch_add(&next_update, 1), d = atomic_fetch_add(&next_delete, 1);
		if (u + d + 2 > npool)
			break;
		size_t row = pool[u];
		/* the row read back from the file: the client does not hold the whole set */
		if (pread(fileno(base_file), v, dim * sizeof(float),
			  (off_t)(row * (dim * sizeof(float) + 4) + 4)) != (ssize_t)(dim * sizeof(float))) {
			j->failed = 1;
			break;
		}
		v[row % dim] += 1.0f;
		Muri__V1__Vector vec = MURI__V1__VECTOR__INIT, *vp = &vec;
		vec.values = v;
		vec.n_values = dim;
		char *id = gw.ids[row];
		Muri__V1__UpsertRequest up = MURI__V1__UPSERT_REQUEST__INIT;
		up.collection = (char *)collection;
		up.ids = &id;
		up.n_ids = 1;
		up.vectors = &vp;
		up.n_vectors = 1;
		up.consistency_level = MURI__V1__CONSISTENCY_LEVEL__QUORUM;
		up.timeout_ms = 30000;
		if (gw_update_ok(&gw, &up))
			j->failed = 1;
		lat_add(&j->a, (now_s() - s) * 1e3);
		s = now_s();
		if (gw_delete_one(&gw, gw.ids[pool[npool - 1 - d]]))
			j->failed = 1;
		lat_add(&j->b, (now_s() - s) * 1e3);
		j->calls += 2;
	}
	free(v);
	return NULL;
}

struct mres {
	double search_qps, search_p50, search_p99, search_recall;
	double update_p50, update_p99, delete_p50, delete_p99, write_rps;
	size_t searches, updates, deletes;
	int failed;
};

static void run_mixed(struct mres *r)
{
	uint8_t *in_truth = calloc(nb, 1);
	for (size_t i = 0; i < nq * K; i++)
		if (truth[i] >= 0 && (size_t)truth[i] < nb)
			in_truth[truth[i]] = 1;
	pool = malloc(nb * sizeof(*pool));
	npool = 0;
	for (size_t i = 0; i < nb; i++)
		if (!in_truth[i])
			pool[npool++] = i;
	srand(7);
	for (size_t i = npool; i > 1; i--) {
		size_t k = ((size_t)rand() * 65536u + (size_t)rand()) % i, t = pool[i - 1];
		pool[i - 1] = pool[k];
		pool[k] = t;
	}
	free(in_truth);
	int n = mixed_searchers + mixed_writers;
	pthread_t t[2 * MAX_THREADS];
	struct mjob j[2 * MAX_THREADS];
	int64_t *labels = calloc(nq * K, sizeof(*labels));
	for (size_t i = 0; i < nq * K; i++)
		labels[i] = -1;
	atomic_store(&mixed_stop, 0);
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		j[i] = (struct mjob){.writer = i >= mixed_searchers, .nth = i, .labels = labels};
		pthread_create(&t[i], NULL, mixed_worker, &j[i]);
	}
	while (now_s() - t0 < mixed_s)
		nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 100000000}, NULL);
	atomic_store(&mixed_stop, 1);
	struct lat s = {0}, u = {0}, d = {0};
	*r = (struct mres){0};
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		r->failed |= j[i].failed;
		lat_merge(j[i].writer ? &u : &s, &j[i].a);
		if (j[i].writer)
			lat_merge(&d, &j[i].b);
		free(j[i].a.v);
		free(j[i].b.v);
	}
	double el = now_s() - t0;
	/* the queries answered at least once (searchers cycle through them) */
	size_t hit = 0, seen = 0;
	for (size_t q = 0; q < nq; q++)
		if (labels[q * K] >= 0) {
			seen++;
			hit += gw_hits(truth, labels, q);
		}
	r->search_recall = seen ? (double)hit / (double)(seen * K) : 0;
	r->searches = s.n;
	r->updates = u.n;
	r->deletes = d.n;
	r->search_qps = (double)s.n / el;
	r->write_rps = (double)(u.n + d.n) / el;
	r->search_p50 = lat_pct(&s, 50);
	r->search_p99 = lat_pct(&s, 99);
	r->update_p50 = lat_pct(&u, 50);
	r->update_p99 = lat_pct(&u, 99);
	r->delete_p50 = lat_pct(&d, 50);
	r->delete_p99 = lat_pct(&d, 99);
	free(s.v);
	free(u.v);
	free(d.v);
	free(labels);
	free(pool);
}

/* ---- setup, insert ---------------------------------------------------------------------- */

static int create_collection(int efs)
{
	Muri__V1__IndexSpec ix = MURI__V1__INDEX_SPEC__INIT;
	ix.kind = MURI__V1__INDEX_KIND__HNSW;
	ix.hnsw_m = (uint32_t)m;
	ix.hnsw_ef_construction = (uint32_t)efc;
	ix.hnsw_ef_search = (uint32_t)efs;
	ix.index_batch = INDEX_BATCH;
	ix.seed = SEED;
	Muri__V1__CreateCollectionRequest req = MURI__V1__CREATE_COLLECTION_REQUEST__INIT;
	req.name = (char *)collection;
	req.dimension = (uint32_t)dim;
	req.metric = MURI__V1__METRIC__L2;
	req.index = &ix;
	req.replication = (uint32_t)replication;
	req.fragments = (uint32_t)fragments;
	ProtobufCMessage *resp = NULL;
	if (gw_call(&gw, "CreateCollection", &req.base, &muri__v1__collection_info__descriptor, &resp,
		 120000))
		return -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

/* Each fragment's epoch (1 + failovers and replica changes), replicas and
 * sizes as the gateway describes them: a run is read against it. */
static void describe(const char *when)
{
	Muri__V1__DescribeCollectionRequest req = MURI__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
	req.name = (char *)collection;
	ProtobufCMessage *resp = NULL;
	if (gw_call(&gw, "DescribeCollection", &req.base, &muri__v1__collection_info__descriptor, &resp,
		 30000))
		return;
	Muri__V1__CollectionInfo *ci = (Muri__V1__CollectionInfo *)resp;
	for (size_t i = 0; i < ci->n_fragment_states; i++) {
		Muri__V1__FragmentState *f = ci->fragment_states[i];
		printf("%s: fragment %u epoch %llu, %zu replicas, primary %s, log %llu records, %llu live vectors\n", when,
		       f->fragment, (unsigned long long)f->epoch, f->n_replicas, f->primary,
		       (unsigned long long)f->log_size, (unsigned long long)f->vector_count);
	}
	protobuf_c_message_free_unpacked(resp, NULL);
}

/* VmRSS or VmHWM of a process, in bytes (0 if unknown). */
static double proc_kb(int pid, const char *field)
{
	char p[64], line[256];
	snprintf(p, sizeof(p), "/proc/%d/status", pid);
	FILE *f = fopen(p, "r");
	double v = 0;
	size_t n = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = atof(line + n + 1) * 1024.0;
	if (f)
		fclose(f);
	return v;
}

static int parse_list(const char *s, int *out, int max)
{
	int n = 0;
	for (const char *p = s; *p && n < max;) {
		out[n++] = atoi(p);
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	return n;
}

static const char *mark(int met)
{
	return met ? "met" : "NOT MET";
}

int main(int argc, char **argv)
{
	const char *target = NULL, *data = NULL, *indexers = "", *efs_s = "10,12,16,20,24,32,48,64,96,128";
	const char *pids_s = "";
	size_t rows = 0, nqueries = 1000;
	const struct gw_arg args[] = {
		{"--gateway", GW_ARG_STR, &target},
		{"--data", GW_ARG_STR, &data},
		{"--collection", GW_ARG_STR, &collection},
		{"--indexers", GW_ARG_STR, &indexers},
		{"--pids", GW_ARG_STR, &pids_s},
		{"--rows", GW_ARG_SIZE, &rows},
		{"--queries", GW_ARG_SIZE, &nqueries},
		{"--threads", GW_ARG_INT, &threads},
		{"--rpc-threads", GW_ARG_INT, &rpc_threads},
		{"--m", GW_ARG_INT, &m},
		{"--ef-construction", GW_ARG_INT, &efc},
		{"--efs", GW_ARG_STR, &efs_s},
		{"--recall", GW_ARG_DOUBLE, &recall_target},
		{"--replication", GW_ARG_INT, &replication},
		{"--fragments", GW_ARG_INT, &fragments},
		{"--insert-batch", GW_ARG_INT, &insert_batch},
		{"--batch-queries", GW_ARG_INT, &batch_queries},
		{"--mixed-seconds", GW_ARG_INT, &mixed_s},
		{"--mixed-searchers", GW_ARG_INT, &mixed_searchers},
		{"--mixed-writers", GW_ARG_INT, &mixed_writers},
		{NULL, GW_ARG_STR, NULL}};
	if (gw_parse_args(argc, argv, args))
		return 2;
	int efs[MAX_EFS], nef = parse_list(efs_s, efs, MAX_EFS), pids[MAX_PIDS], npids = parse_list(pids_s, pids, MAX_PIDS);
	if (!target || !data || threads < 1 || threads > MAX_THREADS || rpc_threads < 1 || rpc_threads > MAX_THREADS ||
	    insert_batch < 1 || insert_batch > 10000 || batch_queries < 1 || batch_queries > 1000 || nef < 1 ||
	    mixed_s < 1 || mixed_searchers < 0 || mixed_searchers > MAX_THREADS || mixed_writers < 0 ||
	    mixed_writers > MAX_THREADS || replication < 1 || fragments < 1) {
		fprintf(stderr, "--gateway and --data required; --threads, --rpc-threads, --mixed-searchers and "
				"--mixed-writers up to 64; --insert-batch 1..10000; --batch-queries 1..1000; "
				"--efs a list; --mixed-seconds, --replication, --fragments >= 1\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char p[1024];
	size_t qd, allq, ngt, dgt, full = 0;
	int32_t *gt = NULL;
	snprintf(p, sizeof(p), "%s/base.fvecs", data);
	int rc = cm_fvecs_read(p, rows, &base, &nb, &dim);
	base_file = fopen(p, "rb");
	if (!base_file)
		rc = CM_ERR_IO;
	if (rc == CM_OK && rows) {
		float *tmp;
		size_t d2;
		full = cm_fvecs_read(p, rows + 1, &tmp, &full, &d2) == CM_OK ? (free(tmp), full) : nb;
	}
	snprintf(p, sizeof(p), "%s/query.fvecs", data);
	if (rc == CM_OK)
		rc = cm_fvecs_read(p, nqueries, &queries, &allq, &qd);
	snprintf(p, sizeof(p), "%s/groundtruth.ivecs", data);
	if (rc == CM_OK)
		rc = cm_ivecs_read(p, nqueries, &gt, &ngt, &dgt);
	if (rc != CM_OK || qd != dim || ngt != allq || dgt < K) {
		fprintf(stderr, "cannot read the dataset in %s\n", data);
		return 1;
	}
	nq = allq;
	truth = malloc(nq * K * sizeof(*truth));
	int exact = full > nb;
	if (exact) {
		fprintf(stderr, "ground truth: exact over the %zu rows used (faiss flat L2)\n", nb);
		if (gw_exact_truth(base, nb, queries, nq, dim, 0, threads, truth) != 0)
			return 1;
	} else {
		for (size_t q = 0; q < nq; q++)
			for (int i = 0; i < K; i++)
				truth[q * K + i] = gt[q * dgt + (size_t)i];
	}
	double phase[5];
	/* 1. in-process baseline */
	fprintf(stderr, "in-process: building HNSW%d efConstruction %d over %zu x %zu (%d threads)...\n", m, efc, nb,
		dim, threads);
	double t0 = now_s();
	struct inproc_row ir[MAX_EFS];
	double build_s, build_cpu_s;
	inproc_muri_set_metric(IX_L2);
	inproc_muri_set_seed(SEED);
	if (inproc_muri(base, nb, queries, nq, dim, m, efc, INDEX_BATCH, threads, threads, efs, nef, recall_of, ir,
			&build_s, &build_cpu_s) != 0)
		return 1;
	int pick = nef - 1;
	for (int e = nef - 1; e >= 0; e--)
		if (ir[e].recall >= recall_target)
			pick = e;
	phase[0] = now_s() - t0;
	fprintf(stderr, "in-process: built in %.0f s; efSearch %d gives recall %.4f\n", build_s, ir[pick].ef,
		ir[pick].recall);
	/* 2. load */
	if (gw_client_open(&gw, target, collection, nb, dim) != 0)
		return 1;
	gw.truth = truth;
	gw.rpc_threads = rpc_threads;
	gw.batch_queries = batch_queries;
	if (create_collection(ir[pick].ef) != 0)
		return 1;
	struct lat ilat = {0};
	double vps = 0;
	fprintf(stderr, "inserting %zu rows at QUORUM, %d per Insert...\n", nb, insert_batch);
	t0 = now_s();
	if (gw_insert_all(&gw, base, insert_batch, &ilat, &vps, 30) != 0)
		return 1;
	double ingest_s = now_s() - t0;
	/* the rows are in the network now: 3 GB at 1M that the machine needs for the replicas */
	free(base);
	base = NULL;
	gw_sort_ids(&gw);
	gw_wait_indexed(indexers);
	double indexed_s = now_s() - t0;
	phase[1] = indexed_s;
	describe("after the load");
	double rss[MAX_PIDS], hwm[MAX_PIDS];
	for (int i = 0; i < npids; i++) {
		rss[i] = proc_kb(pids[i], "VmRSS");
		hwm[i] = proc_kb(pids[i], "VmHWM");
	}
	fprintf(stderr, "indexed %.0f s after the first insert (ingest %.0f s); searching...\n", indexed_s, ingest_s);
	/* 3. search */
	t0 = now_s();
	gw_client_set_queries(&gw, queries, NULL, nq);
	static const int levels[2] = {MURI__V1__CONSISTENCY_LEVEL__ONE, MURI__V1__CONSISTENCY_LEVEL__QUORUM};
	static const char *lname[2] = {"ONE", "QUORUM"};
	struct gw_level gr[2][2];
	int failed = 0;
	for (int l = 0; l < 2; l++)
		for (int b = 0; b < 2; b++) {
			if (gw_run_level(&gw, levels[l], b, &gr[l][b]) != 0) {
				fprintf(stderr, "%s %s: some calls failed (their queries count as misses)\n", lname[l],
					b ? "SearchBatch" : "Search");
				failed = 1;
			}
			fprintf(stderr, "%s %s: recall %.4f, QPS %.0f, p50 %.2f ms, p99 %.2f ms, loaded p99 %.2f ms\n",
				lname[l], b ? "SearchBatch" : "Search", gr[l][b].recall, gr[l][b].qps, gr[l][b].p50_ms,
				gr[l][b].p99_ms, gr[l][b].loaded_p99_ms);
		}
	phase[2] = now_s() - t0;
	/* 4. mixed */
	fprintf(stderr, "mixed load for %d s: %d searchers, %d writers...\n", mixed_s, mixed_searchers, mixed_writers);
	t0 = now_s();
	struct mres mr;
	run_mixed(&mr);
	phase[3] = now_s() - t0;
	failed |= mr.failed;
	describe("after the mixed load");
	gw_client_free(&gw);

	double load[3] = {0};
	FILE *la = fopen("/proc/loadavg", "r");
	if (la) {
		if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = load[1] = load[2] = 0;
		fclose(la);
	}
	printf("vectors: %zu\n", nb);
	printf("dataset %s: %zu x %zu, %zu queries, k=%d, truth %s; collection: L2, HNSW M=%d efConstruction=%d "
	       "efSearch=%d (the smallest of the sweep with in-process recall@10 >= %.2f), index batch %d, "
	       "%d fragment(s) x %d replicas, writes at QUORUM; gateway QPS from %d client threads (SearchBatch: %d "
	       "queries per call), in-process from %d threads\n",
	       data, nb, dim, nq, K, exact ? "exact over the rows used" : "the dataset's", m, efc, ir[pick].ef,
	       recall_target, INDEX_BATCH, fragments, replication, rpc_threads, batch_queries, threads);
	printf("phases: in-process baseline %.0f s (build %.0f s, %.0f CPU s), insert %.0f s + index catch-up to "
	       "%.0f s, searches %.0f s, mixed %.0f s; load average at the end %.2f %.2f %.2f\n",
	       phase[0], build_s, build_cpu_s, ingest_s, indexed_s, phase[2], phase[3], load[0], load[1], load[2]);
	printf("%-48s %8s %9s %9s %9s %11s %9s\n", "", "recall", "QPS", "p50 ms", "p99 ms", "loaded p99",
	       "CPU-QPS");
	for (int e = 0; e < nef; e++) {
		char label[64];
		snprintf(label, sizeof(label), "in-process muri walk, efSearch %d%s", ir[e].ef, e == pick ? " *" : "");
		printf("%-48s %8.4f %9.0f %9s %9s %11s %9.0f\n", label, ir[e].recall, ir[e].qps, "", "", "", ir[e].cpu_qps);
		snprintf(label, sizeof(label), "in-process faiss search, efSearch %d", ir[e].ef);
		printf("%-48s %8.4f %9.0f %9s %9s %11s %9.0f\n", label, ir[e].f_recall, ir[e].f_qps, "", "", "",
		       ir[e].f_cpu_qps);
	}
	for (int l = 0; l < 2; l++)
		for (int b = 0; b < 2; b++) {
			char label[64];
			snprintf(label, sizeof(label), "gateway %s at %s%s", b ? "SearchBatch" : "Search", lname[l],
				 b ? " (per call)" : "");
			printf("%-48s %8.4f %9.0f %9.2f %9.2f %11.2f\n", label, gr[l][b].recall, gr[l][b].qps,
			       gr[l][b].p50_ms, gr[l][b].p99_ms, gr[l][b].loaded_p99_ms);
		}
	printf("%-48s %8.4f %9.0f %9.2f %9.2f\n", "mixed: Search at QUORUM", mr.search_recall, mr.search_qps,
	       mr.search_p50, mr.search_p99);
	printf("%-48s %8s %9.0f %9.2f %9.2f   (%zu calls)\n", "mixed: Update, 1 vector at QUORUM", "",
	       (double)mr.updates / mixed_s, mr.update_p50, mr.update_p99, mr.updates);
	printf("%-48s %8s %9.0f %9.2f %9.2f   (%zu calls)\n", "mixed: Delete, 1 id at QUORUM", "",
	       (double)mr.deletes / mixed_s, mr.delete_p50, mr.delete_p99, mr.deletes);
	/* faiss's own search at the smallest efSearch reaching the gateway's recall */
	int fpick = nef - 1;
	for (int e = nef - 1; e >= 0; e--)
		if (ir[e].f_recall >= gr[1][0].recall)
			fpick = e;
	printf("gateway Search QPS at QUORUM / in-process at the same graph and recall: %.2f of the muri walk "
	       "(efSearch %d), %.2f of faiss's search (efSearch %d, recall %.4f)\n",
	       gr[1][0].qps / ir[pick].qps, ir[pick].ef, gr[1][0].qps / ir[fpick].f_qps, ir[fpick].ef,
	       ir[fpick].f_recall);
	printf("insert at QUORUM, %d vectors per Insert: %.0f vectors/s ingested, %.0f vectors/s indexed on every "
	       "replica; per call p50 %.0f ms, p99 %.0f ms (%zu calls)\n",
	       insert_batch, vps, (double)nb / indexed_s, lat_pct(&ilat, 50), lat_pct(&ilat, 99), ilat.n);
	double rss_max = 0;
	for (int i = 0; i < npids; i++) {
		printf("indexer %d (pid %d): resident %.0f MiB (peak %.0f MiB), %.0f bytes per vector held "
		       "(raw vector %zu bytes)\n",
		       i, pids[i], rss[i] / 1048576.0, hwm[i] / 1048576.0, rss[i] / (double)nb, dim * sizeof(float));
		rss_max = rss[i] > rss_max ? rss[i] : rss_max;
	}
	/* DVESP's targets */
	int scale_ok = nb >= 1000000;
	double best_qps = gr[1][0].qps > gr[1][1].qps ? gr[1][0].qps : gr[1][1].qps;
	printf("\nDVESP targets (%s rows%s):\n", scale_ok ? "1M" : "fewer than 1M",
	       scale_ok ? "" : ": not the 1M the targets name");
	struct {
		const char *what;
		double v;
		int met;
	} t[] = {
		{"recall@10 >= 0.95: Search at QUORUM", gr[1][0].recall, gr[1][0].recall >= 0.95},
		{"search p99 < 50 ms: Search at QUORUM, one client (ms)", gr[1][0].p99_ms, gr[1][0].p99_ms < 50},
		{"search p99 < 50 ms: Search at QUORUM, all client threads (ms)", gr[1][0].loaded_p99_ms,
		 gr[1][0].loaded_p99_ms < 50},
		{"search p99 < 50 ms: Search at QUORUM, mixed load (ms)", mr.search_p99, mr.search_p99 < 50},
		{">= 1,000 search QPS: best of Search / SearchBatch at QUORUM", best_qps, best_qps >= 1000},
		{">= 500 write QPS: vectors/s inserted (10k per call) and indexed", (double)nb / indexed_s,
		 (double)nb / indexed_s >= 500},
		{">= 500 write QPS: Update + Delete requests/s (1 vector each), mixed", mr.write_rps, mr.write_rps >= 500},
		{"update p99 < 150 ms: 1 vector at QUORUM, mixed load (ms)", mr.update_p99, mr.update_p99 < 150},
		{"delete p99 < 50 ms: 1 id at QUORUM, mixed load (ms)", mr.delete_p99, mr.delete_p99 < 50},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		printf("  %-68s %10.*f  %s\n", t[i].what, t[i].v < 1 ? 4 : 1, t[i].v, mark(t[i].met));
	printf("  %-68s %10.0f  %s\n", "bytes per vector: largest indexer resident set / vectors", rss_max / (double)nb,
	       "(reported)");
	if (mr.failed)
		fprintf(stderr, "mixed load: some calls failed\n");
	free(ilat.v);
	return failed;
}
