/* A benchmark's gRPC client of the gateway: ids, inserts, searches by
 * consistency level, indexers' Status reads, and the recall of the answers
 * (gw_client.h). */
#include "gw_client.h"

#include "cm_err.h"
#include "indexer.pb-c.h"

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Protobuf views of n rows of x (row sel[i], or i when sel is NULL): *vecs
 * and *ptrs are the caller's, the floats stay x's. */
static void views(const float *x, const size_t *sel, size_t n, size_t dim, Muri__V1__Vector **vecs,
		  Muri__V1__Vector ***ptrs)
{
	*vecs = calloc(n, sizeof(**vecs));
	*ptrs = calloc(n, sizeof(**ptrs));
	for (size_t i = 0; i < n; i++) {
		muri__v1__vector__init(&(*vecs)[i]);
		(*vecs)[i].values = (float *)x + (sel ? sel[i] : i) * dim;
		(*vecs)[i].n_values = dim;
		(*ptrs)[i] = &(*vecs)[i];
	}
}

int gw_client_open(struct gw_client *g, const char *target, const char *collection, size_t nb, size_t dim)
{
	char err[256];
	cm_rpc_client_opts o = {.target = target, .max_message = 256u << 20};
	*g = (struct gw_client){.collection = collection, .nb = nb, .dim = dim, .rpc_threads = 8, .batch_queries = 100};
	if (cm_rpc_client_new(&o, &g->rpc, err, sizeof(err)) != CM_OK) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	g->ids = calloc(nb, sizeof(*g->ids));
	return 0;
}

void gw_client_free(struct gw_client *g)
{
	if (!g)
		return;
	cm_rpc_client_free(g->rpc);
	free(g->ids);
	free(g->sorted);
	free(g->qvec);
	free(g->qptr);
	*g = (struct gw_client){0};
}

void gw_client_set_queries(struct gw_client *g, const float *queries, const size_t *sel, size_t nq)
{
	free(g->qvec);
	free(g->qptr);
	g->nq = nq;
	views(queries, sel, nq, g->dim, &g->qvec, &g->qptr);
}

int gw_call(struct gw_client *g, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d,
	    ProtobufCMessage **resp, int64_t deadline_ms)
{
	char path[128];
	cm_rpc_status st;
	snprintf(path, sizeof(path), "/muri.v1.VectorStore/%s", method);
	if (cm_rpc_unary(g->rpc, path, req, d, resp, deadline_ms, &st) != CM_OK) {
		fprintf(stderr, "%s: %s %s\n", method, cm_rpc_code_name(st.code), st.message);
		return -1;
	}
	return 0;
}

/* ---- ids ----------------------------------------------------------------------------- */

static int cmp_id(const void *a, const void *b, void *g)
{
	char(*ids)[GW_ID_BYTES] = ((struct gw_client *)g)->ids;
	return strcmp(ids[*(const int *)a], ids[*(const int *)b]);
}

int gw_row_of(const struct gw_client *g, const char *id)
{
	size_t lo = 0, hi = g->nb;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(g->ids[g->sorted[mid]], id);
		if (c == 0)
			return g->sorted[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int gw_insert_all(struct gw_client *g, const float *base, int batch, struct lat *lat, double *vps, double progress_s)
{
	size_t nb = g->nb, step = (size_t)batch;
	Muri__V1__Vector *vecs, **vp;
	views(base, NULL, nb, g->dim, &vecs, &vp);
	double t0 = now_s(), last = t0;
	int rc = 0;
	for (size_t s = 0; s < nb && rc == 0; s += step) {
		size_t n = nb - s < step ? nb - s : step;
		Muri__V1__InsertRequest req = MURI__V1__INSERT_REQUEST__INIT;
		req.collection = (char *)g->collection;
		req.vectors = &vp[s];
		req.n_vectors = n;
		req.consistency_level = MURI__V1__CONSISTENCY_LEVEL__QUORUM;
		req.timeout_ms = 120000;
		ProtobufCMessage *resp = NULL;
		double ts = now_s();
		if (gw_call(g, "Insert", &req.base, &muri__v1__write_response__descriptor, &resp, 180000) != 0) {
			rc = -1;
			break;
		}
		lat_add(lat, (now_s() - ts) * 1e3);
		Muri__V1__WriteResponse *w = (Muri__V1__WriteResponse *)resp;
		if (w->status != MURI__V1__WRITE_STATUS__SUCCESS || w->n_vector_ids != n) {
			fprintf(stderr, "Insert: status %d, %zu ids: %s\n", w->status, w->n_vector_ids, w->message);
			rc = -1;
		}
		for (size_t i = 0; rc == 0 && i < n; i++)
			snprintf(g->ids[s + i], sizeof(g->ids[0]), "%s", w->vector_ids[i]);
		protobuf_c_message_free_unpacked(resp, NULL);
		if (progress_s > 0 && now_s() - last > progress_s) {
			last = now_s();
			fprintf(stderr, "  %zu rows inserted, %.0f s\n", s + n, last - t0);
		}
	}
	*vps = (double)nb / (now_s() - t0);
	free(vecs);
	free(vp);
	return rc;
}

void gw_sort_ids(struct gw_client *g)
{
	free(g->sorted);
	g->sorted = malloc(g->nb * sizeof(int));
	for (size_t i = 0; i < g->nb; i++)
		g->sorted[i] = (int)i;
	qsort_r(g->sorted, g->nb, sizeof(int), cmp_id, g);
}

/* ---- searches --------------------------------------------------------------------------- */

int gw_search_one(struct gw_client *g, size_t q, int level, int64_t *labels)
{
	Muri__V1__SearchRequest req = MURI__V1__SEARCH_REQUEST__INIT;
	req.query_vector = &g->qvec[q];
	req.collection = (char *)g->collection;
	req.top_k = GW_K;
	req.consistency_level = level;
	req.timeout_ms = 30000;
	ProtobufCMessage *resp = NULL;
	if (gw_call(g, "Search", &req.base, &muri__v1__search_response__descriptor, &resp, 60000) != 0)
		return -1;
	Muri__V1__SearchResponse *r = (Muri__V1__SearchResponse *)resp;
	for (size_t i = 0; i < GW_K; i++)
		labels[q * GW_K + i] = i < r->n_results ? gw_row_of(g, r->results[i]->id) : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int gw_search_batch(struct gw_client *g, size_t q0, size_t n, int level, int64_t *labels)
{
	Muri__V1__SearchBatchRequest req = MURI__V1__SEARCH_BATCH_REQUEST__INIT;
	req.query_vectors = &g->qptr[q0];
	req.n_query_vectors = n;
	req.collection = (char *)g->collection;
	req.top_k = GW_K;
	req.consistency_level = level;
	req.timeout_ms = 60000;
	ProtobufCMessage *resp = NULL;
	if (gw_call(g, "SearchBatch", &req.base, &muri__v1__search_batch_response__descriptor, &resp, 120000) != 0)
		return -1;
	Muri__V1__SearchBatchResponse *r = (Muri__V1__SearchBatchResponse *)resp;
	int rc = r->n_results == n ? 0 : -1;
	for (size_t q = 0; rc == 0 && q < n; q++)
		for (size_t i = 0; i < GW_K; i++)
			labels[(q0 + q) * GW_K + i] =
				i < r->results[q]->n_results ? gw_row_of(g, r->results[q]->results[i]->id) : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

struct sjob {
	struct gw_client *g;
	int level, batch, failed;
	int64_t *labels;
	size_t from, to;
	struct lat lat;
};

static void *search_worker(void *arg)
{
	struct sjob *j = arg;
	size_t per = (size_t)j->g->batch_queries;
	for (size_t q = j->from; q < j->to;) {
		size_t n = j->batch ? (j->to - q < per ? j->to - q : per) : 1;
		double s = now_s();
		if ((j->batch ? gw_search_batch(j->g, q, n, j->level, j->labels)
			      : gw_search_one(j->g, q, j->level, j->labels)) != 0)
			j->failed = 1;
		lat_add(&j->lat, (now_s() - s) * 1e3);
		q += n;
	}
	return NULL;
}

/* ---- CPU time per process ---------------------------------------------------------------------- */

int gw_cpu_parse(struct gw_client *g, const char *list)
{
	g->ncpu = 1;
	g->cpu_pid[0] = 0;
	snprintf(g->cpu_name[0], sizeof(g->cpu_name[0]), "client");
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", list ? list : "");
	for (char *save = NULL, *e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(e, '=');
		int pid = eq ? atoi(eq + 1) : 0;
		if (!eq || pid <= 0 || eq - e < 1 || eq - e >= (long)sizeof(g->cpu_name[0]) || g->ncpu == GW_CPU_MAX) {
			fprintf(stderr, "--cpu-pids: \"%s\", expected name=pid (at most %d, names under 16 bytes)\n", e,
				GW_CPU_MAX - 1);
			return -1;
		}
		*eq = 0;
		g->cpu_pid[g->ncpu] = pid;
		snprintf(g->cpu_name[g->ncpu++], sizeof(g->cpu_name[0]), "%s", e);
	}
	return 0;
}

/* User plus system CPU seconds of pid (0: this process), from /proc/<pid>/stat; -1 if unreadable. */
static double cpu_s(int pid)
{
	char p[64], line[2048];
	snprintf(p, sizeof(p), pid ? "/proc/%d/stat" : "/proc/self/stat", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = 0;
	char *c = strrchr(line, ')'); /* the command may hold spaces */
	unsigned long long ut = 0, st = 0;
	if (!c || sscanf(c + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double gw_cpu_s(const struct gw_client *g, int i)
{
	return cpu_s(g->cpu_pid[i]);
}

int gw_run_level(struct gw_client *g, int level, int batch, struct gw_level *r)
{
	size_t nq = g->nq;
	int64_t *labels = calloc(nq * GW_K, sizeof(*labels));
	struct sjob one = {g, level, batch, 0, labels, 0, nq, {0}};
	double c0[GW_CPU_MAX];
	for (int i = 0; i < g->ncpu; i++)
		c0[i] = cpu_s(g->cpu_pid[i]);
	search_worker(&one);
	for (int i = 0; i < g->ncpu; i++) {
		double c1 = cpu_s(g->cpu_pid[i]);
		r->cpu_us[i] = c0[i] >= 0 && c1 >= 0 && nq ? (c1 - c0[i]) * 1e6 / (double)nq : -1;
	}
	r->p50_ms = lat_pct(&one.lat, 50);
	r->p99_ms = lat_pct(&one.lat, 99);
	r->recall = gw_recall(g->truth, nq, labels);
	int failed = one.failed, nt = g->rpc_threads;
	free(one.lat.v);
	pthread_t t[GW_MAX_THREADS];
	struct sjob j[GW_MAX_THREADS];
	struct lat all = {0};
	/* batch mode: thread shares on batch boundaries */
	size_t unit = batch ? (size_t)g->batch_queries : 1, units = (nq + unit - 1) / unit;
	double t0 = now_s();
	for (int i = 0; i < nt; i++) {
		size_t from = units * (size_t)i / (size_t)nt * unit, to = units * (size_t)(i + 1) / (size_t)nt * unit;
		j[i] = (struct sjob){g, level, batch, 0, labels, from < nq ? from : nq, to < nq ? to : nq, {0}};
		pthread_create(&t[i], NULL, search_worker, &j[i]);
	}
	for (int i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		failed |= j[i].failed;
		lat_merge(&all, &j[i].lat);
		free(j[i].lat.v);
	}
	r->qps = (double)nq / (now_s() - t0);
	r->loaded_p99_ms = lat_pct(&all, 99);
	free(all.v);
	free(labels);
	return failed ? -1 : 0;
}

/* ---- indexers' Status ------------------------------------------------------------------------ */

int gw_status_detail(cm_rpc_client *indexer, const char *key, char *out, size_t len)
{
	Muri__V1__StatusRequest req = MURI__V1__STATUS_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	if (cm_rpc_unary(indexer, "/muri.v1.Indexer/Status", &req.base, &muri__v1__status_response__descriptor, &resp,
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

void gw_wait_indexed(const char *indexers)
{
	char list[1024], err[256];
	snprintf(list, sizeof(list), "%s", indexers);
	for (char *save = NULL, *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		cm_rpc_client *ic = NULL;
		cm_rpc_client_opts io = {.target = a};
		if (cm_rpc_client_new(&io, &ic, err, sizeof(err)) != CM_OK)
			continue;
		char backlog[32] = "";
		while (gw_status_detail(ic, "index_backlog", backlog, sizeof(backlog)) == 0 && strcmp(backlog, "0") != 0)
			nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 200000000}, NULL);
		cm_rpc_client_free(ic);
	}
}

/* ---- recall ------------------------------------------------------------------------------------ */

size_t gw_hits(const int64_t *truth, const int64_t *labels, size_t q)
{
	size_t hit = 0;
	for (int i = 0; i < GW_K; i++)
		for (int j = 0; j < GW_K; j++)
			hit += labels[q * GW_K + i] >= 0 && labels[q * GW_K + i] == truth[q * GW_K + j];
	return hit;
}

double gw_recall(const int64_t *truth, size_t nq, const int64_t *labels)
{
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++)
		hit += gw_hits(truth, labels, q);
	return (double)hit / (double)(nq * GW_K);
}

int gw_exact_truth(const float *base, size_t nb, const float *queries, size_t nq, size_t dim, int inner_product,
		   int threads, int64_t *truth)
{
	FaissIndex *idx = NULL;
	if ((inner_product ? faiss_IndexFlatIP_new_with((FaissIndexFlatIP **)&idx, (idx_t)dim)
			   : faiss_IndexFlatL2_new_with((FaissIndexFlatL2 **)&idx, (idx_t)dim)) != 0)
		return -1;
	float *d = malloc(nq * GW_K * sizeof(float));
	omp_set_num_threads(threads);
	faiss_Index_add(idx, (idx_t)nb, base);
	faiss_Index_search(idx, (idx_t)nq, queries, GW_K, d, truth);
	omp_set_num_threads(1);
	faiss_Index_free(idx);
	free(d);
	return 0;
}

int gw_parse_args(int argc, char **argv, const struct gw_arg *args)
{
	for (int i = 1; i < argc; i += 2) {
		const struct gw_arg *o = args;
		while (o->name && strcmp(o->name, argv[i]) != 0)
			o++;
		if (!o->name || i + 1 >= argc) {
			fprintf(stderr, "%s option %s\n", o->name ? "no value for the" : "unknown", argv[i]);
			return 2;
		}
		const char *v = argv[i + 1];
		switch (o->kind) {
		case GW_ARG_STR:
			*(const char **)o->p = v;
			break;
		case GW_ARG_INT:
			*(int *)o->p = atoi(v);
			break;
		case GW_ARG_SIZE:
			*(size_t *)o->p = (size_t)atol(v);
			break;
		case GW_ARG_DOUBLE:
			*(double *)o->p = atof(v);
			break;
		}
	}
	return 0;
}

int gw_update_ok(struct gw_client *g, const Muri__V1__UpsertRequest *up)
{
	ProtobufCMessage *resp = NULL;
	int rc = gw_call(g, "Update", &up->base, &muri__v1__write_response__descriptor, &resp, 60000) ||
			 ((Muri__V1__WriteResponse *)resp)->status != MURI__V1__WRITE_STATUS__SUCCESS
		 ? -1
		 : 0;
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

int gw_delete_one(struct gw_client *g, char *id)
{
	Muri__V1__DeleteRequest del = MURI__V1__DELETE_REQUEST__INIT;
	del.collection = (char *)g->collection;
	del.ids = &id;
	del.n_ids = 1;
	del.consistency_level = MURI__V1__CONSISTENCY_LEVEL__QUORUM;
	del.timeout_ms = 30000;
	ProtobufCMessage *resp = NULL;
	int rc = gw_call(g, "Delete", &del.base, &muri__v1__delete_response__descriptor, &resp, 60000) ||
			 ((Muri__V1__DeleteResponse *)resp)->status != MURI__V1__WRITE_STATUS__SUCCESS ||
			 ((Muri__V1__DeleteResponse *)resp)->deleted != 1
		 ? -1
		 : 0;
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}
