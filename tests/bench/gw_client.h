/* A benchmark's gRPC client of the gateway (gateway_bench.c, scale_bench.c):
 * the rows it inserted and the ids the gateway gave them, Insert of every
 * row at QUORUM, Search and SearchBatch per consistency level (recall@10
 * against a truth, sequential latency, QPS from client threads), the wait
 * for the indexers' indexes (their Status), and the exact truth when a run
 * uses fewer rows than its dataset's ground truth covers. */
#ifndef MURI_GW_CLIENT_H
#define MURI_GW_CLIENT_H

#include "bench_util.h"
#include "cm_rpc.h"
#include "vectorstore.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define GW_K 10          /* results per query */
#define GW_ID_BYTES 37   /* a vector id the gateway gives, with its NUL */
#define GW_MAX_THREADS 64
#define GW_CPU_MAX 16 /* processes measured */

struct gw_client {
	cm_rpc_client *rpc;            /* the gateway */
	const char *collection;
	size_t nb, dim;                /* rows inserted */
	char (*ids)[GW_ID_BYTES];      /* row -> id the gateway gave */
	int *sorted;                   /* rows sorted by id */
	size_t nq;                     /* the queries searched */
	Muri__V1__Vector *qvec, **qptr;
	const int64_t *truth;          /* nq x GW_K row numbers, the caller's */
	int rpc_threads, batch_queries; /* QPS threads; queries per SearchBatch */
	int ncpu;                      /* processes whose CPU time a sequential run measures (gw_cpu_parse) */
	int cpu_pid[GW_CPU_MAX];       /* 0: this process */
	char cpu_name[GW_CPU_MAX][16];
};

/* A benchmark's command-line option: --name takes the next argument into
 * *p as a string, an int, a size_t or a double. */
enum gw_arg_kind { GW_ARG_STR, GW_ARG_INT, GW_ARG_SIZE, GW_ARG_DOUBLE };
struct gw_arg {
	const char *name; /* with its dashes; NULL ends a table */
	enum gw_arg_kind kind;
	void *p;
};

/* Reads argv's "--name value" pairs into the table args; 0, or 2 after
 * saying on stderr which option is unknown or has no value. */
int gw_parse_args(int argc, char **argv, const struct gw_arg *args);

/* One QUORUM Update (up, built by the caller) or Delete of the one id, in
 * g's collection: 0 when it succeeded (the Delete deleting the record),
 * -1 otherwise. */
int gw_update_ok(struct gw_client *g, const Muri__V1__UpsertRequest *up);
int gw_delete_one(struct gw_client *g, char *id);

/* Connects g to target for nb rows of dim floats (the ids are allocated
 * here, freed by gw_client_free); on failure says why on stderr. 0 or -1. */
int gw_client_open(struct gw_client *g, const char *target, const char *collection, size_t nb, size_t dim);
void gw_client_free(struct gw_client *g);

/* The nq queries searched: rows sel[0..nq) of queries (row q when sel is
 * NULL); g views them, the caller keeps queries alive. */
void gw_client_set_queries(struct gw_client *g, const float *queries, const size_t *sel, size_t nq);

/* A unary call to /muri.v1.VectorStore/<method>; on failure says so on stderr. 0 or -1. */
int gw_call(struct gw_client *g, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d,
	    ProtobufCMessage **resp, int64_t deadline_ms);

/* Inserts the g->nb rows of base at QUORUM, batch per Insert, one call at a
 * time: per-call latency (ms) into lat, vectors/s into *vps, the ids into
 * g; a progress line on stderr every progress_s seconds (0: none). 0 or -1. */
int gw_insert_all(struct gw_client *g, const float *base, int batch, struct lat *lat, double *vps, double progress_s);
/* Sorts the rows by id, after the insert, for gw_row_of (and so the searches). */
void gw_sort_ids(struct gw_client *g);
/* The row the gateway gave id, or -1. */
int gw_row_of(const struct gw_client *g, const char *id);

/* Query q (Search) or queries q0..q0+n (SearchBatch) at level; the rows of
 * their GW_K results into labels (-1 where fewer). 0 or -1. */
int gw_search_one(struct gw_client *g, size_t q, int level, int64_t *labels);
int gw_search_batch(struct gw_client *g, size_t q0, size_t n, int level, int64_t *labels);

struct gw_level {
	double recall, qps, p50_ms, p99_ms; /* recall@GW_K; QPS from rpc_threads; sequential per call */
	double loaded_p99_ms;              /* per call, while rpc_threads threads search */
	double cpu_us[GW_CPU_MAX];         /* per query, each of g's processes, over the sequential run */
};

/* "name=pid,name=pid,..." into g's processes measured; the client itself is
 * always the first ("client"). 0, or -1 naming the bad entry on stderr. */
int gw_cpu_parse(struct gw_client *g, const char *list);
/* CPU seconds of process i of g (user + system); -1 if unreadable. */
double gw_cpu_s(const struct gw_client *g, int i);

/* Search (batch 0) or SearchBatch (batch 1) of every query at level: first
 * one call at a time (latency, recall), then from g->rpc_threads threads
 * (QPS, loaded latency). 0, or -1 if some call failed (its queries count
 * as misses). */
int gw_run_level(struct gw_client *g, int level, int batch, struct gw_level *r);

/* The value of detail key in an indexer's Status into out. 0 or -1. */
int gw_status_detail(cm_rpc_client *indexer, const char *key, char *out, size_t len);
/* Waits until every indexer of the comma-separated list reports index_backlog 0. */
void gw_wait_indexed(const char *indexers);

/* Hits of query q's GW_K labels among its GW_K true rows; recall@GW_K of nq queries. */
size_t gw_hits(const int64_t *truth, const int64_t *labels, size_t q);
double gw_recall(const int64_t *truth, size_t nq, const int64_t *labels);

/* The exact top GW_K rows of base for each query (faiss flat: inner
 * product, the cosine of normalized vectors, or L2) into truth (nq x
 * GW_K), with threads threads. 0 or -1. */
int gw_exact_truth(const float *base, size_t nb, const float *queries, size_t nq, size_t dim, int inner_product,
		   int threads, int64_t *truth);

#endif
