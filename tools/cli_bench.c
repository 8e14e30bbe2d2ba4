/* muri bench: recall@k, throughput and latency of a collection's searches
 * through the gateway. The queries come from an .fvecs file and the truth
 * from an .ivecs file of base row numbers; a base row's id is the one
 * `muri import` gave it (cm_import_row_id of the collection, the base file's name
 * and the row), so the base must have been imported with muri import. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_formats.h"
#include "cm_err.h"
#include "cm_time.h"
#include "cm_vecs.h"

typedef struct bench {
	const cli_conn *c;
	cm_rpc_client *gw;
	const char *collection;
	const float *q;
	size_t nq, dim;
	int k, batch, level;
	char (*truth)[37];      /* nq x k ids */
	atomic_size_t next;
	atomic_int failed;
	double *lat_ms;         /* per query: its call's latency */
	size_t *hits;           /* per query: true neighbours found */
	char err[600];
	pthread_mutex_t mu;
} bench;

static size_t count_hits(const bench *b, size_t qi, Muri__V1__SearchResult **res, size_t n)
{
	size_t h = 0;
	for (size_t i = 0; i < n && i < (size_t)b->k; i++)
		for (int j = 0; j < b->k; j++)
			if (!strcmp(res[i]->id, b->truth[qi * (size_t)b->k + (size_t)j])) {
				h++;
				break;
			}
	return h;
}

static void *worker(void *arg)
{
	bench *b = arg;
	Muri__V1__Vector *vv = calloc((size_t)b->batch, sizeof(*vv));
	Muri__V1__Vector **vp = calloc((size_t)b->batch, sizeof(*vp));
	int to = b->c->timeout_ms > 0 ? (int)b->c->timeout_ms : CLI_TIMEOUT_MS;
	while (vv && vp && !atomic_load(&b->failed)) {
		size_t first = atomic_fetch_add(&b->next, (size_t)b->batch);
		if (first >= b->nq)
			break;
		size_t n = b->nq - first < (size_t)b->batch ? b->nq - first : (size_t)b->batch;
		for (size_t i = 0; i < n; i++) {
			muri__v1__vector__init(&vv[i]);
			vv[i].values = (float *)b->q + (first + i) * b->dim;
			vv[i].n_values = b->dim;
			vp[i] = &vv[i];
		}
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		uint64_t t0 = cm_now_us();
		int rc;
		if (b->batch == 1) {
			Muri__V1__SearchRequest s = MURI__V1__SEARCH_REQUEST__INIT;
			s.collection = (char *)b->collection;
			s.query_vector = vp[0];
			s.top_k = (uint32_t)b->k;
			s.consistency_level = b->level;
			rc = cm_rpc_unary(b->gw, "/muri.v1.VectorStore/Search", &s.base, &muri__v1__search_response__descriptor,
					  &resp, to, &st);
		} else {
			Muri__V1__SearchBatchRequest s = MURI__V1__SEARCH_BATCH_REQUEST__INIT;
			s.collection = (char *)b->collection;
			s.query_vectors = vp;
			s.n_query_vectors = n;
			s.top_k = (uint32_t)b->k;
			s.consistency_level = b->level;
			rc = cm_rpc_unary(b->gw, "/muri.v1.VectorStore/SearchBatch", &s.base,
					  &muri__v1__search_batch_response__descriptor, &resp, to, &st);
		}
		double ms = (double)(cm_now_us() - t0) / 1000.0;
		if (rc != CM_OK) {
			pthread_mutex_lock(&b->mu);
			if (!atomic_load(&b->failed))
				snprintf(b->err, sizeof(b->err), "%s: %s", cm_rpc_code_name(st.code), st.message);
			atomic_store(&b->failed, 1);
			pthread_mutex_unlock(&b->mu);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			b->lat_ms[first + i] = ms;
			if (b->batch == 1) {
				Muri__V1__SearchResponse *r = (Muri__V1__SearchResponse *)resp;
				b->hits[first] = count_hits(b, first, r->results, r->n_results);
			} else {
				Muri__V1__SearchBatchResponse *r = (Muri__V1__SearchBatchResponse *)resp;
				b->hits[first + i] =
					i < r->n_results ? count_hits(b, first + i, r->results[i]->results, r->results[i]->n_results) : 0;
			}
		}
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	free(vv);
	free(vp);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

static const char help[] =
	"usage: muri bench --collection C --queries Q.fvecs --truth GT.ivecs [--k 10] [--level ONE|QUORUM|ALL]\n"
	"                 [--threads N] [--batch B] [--limit N] [--base NAME] [--json]\n"
	"Searches every query through the gateway (Search, or SearchBatch of B queries) from N threads;\n"
	"prints recall@k against the truth, queries per second and the latency percentiles.\n"
	"The truth's row numbers are matched to the ids `muri import` gave the base rows: --base is the\n"
	"base file's name as imported (default base.fvecs).\n" CLI_CONN_HELP;

int cli_cmd_bench(int argc, char **argv)
{
	cli_conn c = {0};
	const char *collection = NULL, *queries = NULL, *truthf = NULL, *level = NULL, *base = "base.fvecs";
	long k = 10, threads = 1, batch = 1, limit = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(c),
				{"--collection", CLI_STR, &collection},
				{"--queries", CLI_STR, &queries},
				{"--truth", CLI_STR, &truthf},
				{"--level", CLI_STR, &level},
				{"--base", CLI_STR, &base},
				{"--k", CLI_INT, &k},
				{"--threads", CLI_INT, &threads},
				{"--batch", CLI_INT, &batch},
				{"--limit", CLI_INT, &limit},
				{NULL, 0, NULL}};
	char *pos[1];
	int npos, prc = cli_parse("bench", help, argc, argv, opts, pos, 0, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (!collection || !queries || !truthf)
		return cli_fail(CLI_USAGE, "bench", "--collection, --queries and --truth are required");
	if (k < 1 || k > 1000 || threads < 1 || threads > 256 || batch < 1 || batch > 1000 || limit < 0)
		return cli_fail(CLI_USAGE, "bench", "--k 1..1000, --threads 1..256, --batch 1..1000");
	int lv = cli_level(level);
	if (lv < 0)
		return cli_fail(CLI_USAGE, "bench", "--level must be ONE, QUORUM or ALL: %s", level);
	static bench b;
	memset(&b, 0, sizeof(b));
	float *q = NULL;
	int32_t *gt = NULL;
	size_t nq = 0, dim = 0, ng = 0, gk = 0;
	int rc = cm_fvecs_read(queries, (size_t)limit, &q, &nq, &dim);
	if (rc != CM_OK)
		return cli_fail(CLI_FAIL, "bench", "%s: %s", queries, rc == CM_ERR_INVALID ? "not a valid .fvecs file" : cm_strerror(rc));
	rc = cm_ivecs_read(truthf, (size_t)limit, &gt, &ng, &gk);
	if (rc != CM_OK) {
		free(q);
		return cli_fail(CLI_FAIL, "bench", "%s: %s", truthf, rc == CM_ERR_INVALID ? "not a valid .ivecs file" : cm_strerror(rc));
	}
	if (ng < nq || gk < (size_t)k) {
		free(q);
		free(gt);
		return cli_fail(CLI_FAIL, "bench", "%s has %zu rows of %zu neighbours; need %zu rows of at least %ld", truthf, ng,
				gk, nq, k);
	}
	b.c = &c;
	b.collection = collection;
	b.q = q;
	b.nq = nq;
	b.dim = dim;
	b.k = (int)k;
	b.batch = (int)batch;
	b.level = lv;
	b.truth = malloc(nq * (size_t)k * 37);
	b.lat_ms = calloc(nq, sizeof(double));
	b.hits = calloc(nq, sizeof(size_t));
	pthread_mutex_init(&b.mu, NULL);
	rc = 0;
	if (!b.truth || !b.lat_ms || !b.hits)
		rc = cli_fail(CLI_FAIL, "bench", "out of memory");
	for (size_t i = 0; !rc && i < nq; i++)
		for (long j = 0; j < k; j++)
			cm_import_row_id(b.truth[i * (size_t)k + (size_t)j], collection, base, (uint64_t)gt[i * gk + (size_t)j]);
	if (!rc && !(b.gw = cli_gateway("bench", &c)))
		rc = CLI_FAIL;
	pthread_t th[256];
	uint64_t t0 = cm_now_us();
	long started = 0;
	for (; !rc && started < threads; started++)
		if (pthread_create(&th[started], NULL, worker, &b) != 0)
			break;
	for (long i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	double secs = (double)(cm_now_us() - t0) / 1e6;
	if (!rc && atomic_load(&b.failed))
		rc = cli_fail(CLI_FAIL, "bench", "a search failed: %s", b.err);
	if (!rc) {
		size_t hits = 0;
		for (size_t i = 0; i < nq; i++)
			hits += b.hits[i];
		double recall = (double)hits / ((double)nq * (double)k), qps = secs > 0 ? (double)nq / secs : 0;
		qsort(b.lat_ms, nq, sizeof(double), cmp_double);
		double p50 = pct(b.lat_ms, nq, 0.50), p95 = pct(b.lat_ms, nq, 0.95), p99 = pct(b.lat_ms, nq, 0.99);
		const char *lname = lv == MURI__V1__CONSISTENCY_LEVEL__ONE ? "ONE" : lv == MURI__V1__CONSISTENCY_LEVEL__ALL ? "ALL" : "QUORUM";
		if (c.json)
			printf("{\"collection\": \"%s\", \"queries\": %zu, \"k\": %ld, \"level\": \"%s\", \"threads\": %ld, "
			       "\"batch\": %ld, \"recall\": %.4f, \"qps\": %.1f, \"p50_ms\": %.3f, \"p95_ms\": %.3f, "
			       "\"p99_ms\": %.3f, \"seconds\": %.3f}\n",
			       collection, nq, k, lname, threads, batch, recall, qps, p50, p95, p99, secs);
		else
			printf("collection  %s\nqueries     %zu\nk           %ld\nlevel       %s\nthreads     %ld\nbatch       %ld\n"
			       "recall@%-4ld %.4f\nQPS         %.1f\np50 ms      %.2f\np95 ms      %.2f\np99 ms      %.2f\n",
			       collection, nq, k, lname, threads, batch, k, recall, qps, p50, p95, p99);
	}
	cm_rpc_client_free(b.gw);
	pthread_mutex_destroy(&b.mu);
	free(b.truth);
	free(b.lat_ms);
	free(b.hits);
	free(q);
	free(gt);
	return rc;
}
