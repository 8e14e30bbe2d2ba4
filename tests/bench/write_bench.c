/* Write benchmark client (scripts/bench.sh writes starts the network and the
 * collection, tests/python/bench_writes.py, then runs this): the write path
 * alone, at QUORUM.
 *   1. idle inserts: --rounds Inserts of --rows vectors each (the same rows of
 *      the dataset every round; the gateway gives new ids), each after every
 *      indexer's index caught up, so an insert shares the cores with nothing
 *      of its own: per call p50/p99 and vectors/s;
 *   2. back-to-back inserts: --rounds more, one right after the other, while
 *      the indexes of the earlier ones build;
 *   3. single-record writes: --writers closed-loop threads for --seconds,
 *      each alternating a one-vector Update and a one-id Delete of rows the
 *      inserts wrote: p50/p99 of each and requests/s.
 * Before and after each phase (each idle insert, the back-to-back inserts,
 * the single-record writes) it prints "phase NAME begin|end" on stdout and
 * waits for a line on stdin, so the harness can read each process's CPU
 * time and fsync count around exactly that span (an idle insert's span
 * leaves the wait for the indexes out).
 *   write-bench --gateway HOST:PORT --collection NAME --indexers A,B,C
 *               [--dataset NAME] [--rows N] [--rounds R] [--writers W] [--seconds S] */
#include "bench_util.h"
#include "cm_err.h"
#include "cm_vecs.h"
#include "gw_client.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct gw_client gw;
static const char *collection = "bench";
static size_t dim, nrows;
static float *base;
static char (*ids)[GW_ID_BYTES]; /* every id inserted, rounds x rows */
static size_t nids;
static atomic_size_t next_row;
static atomic_int stop;

static void phase(const char *name, const char *what)
{
	char line[64];
	printf("phase %s %s\n", name, what);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		/* no harness: go on */
	}
}

/* rounds Inserts of the rows; the ids kept; wait: let the indexes catch up before each. */
static int inserts(const char *name, int rounds, int wait, const char *indexers, struct lat *l, double *vps)
{
	double busy = 0;
	if (!wait)
		phase(name, "begin");
	for (int r = 0; r < rounds; r++) {
		if (wait) {
			gw_wait_indexed(indexers);
			phase(name, "begin");
		}
		struct lat one = {0};
		double v = 0;
		double t0 = now_s();
		if (gw_insert_all(&gw, base, (int)nrows, &one, &v, 0) != 0)
			return -1;
		busy += now_s() - t0;
		if (wait)
			phase(name, "end");
		lat_merge(l, &one);
		free(one.v);
		ids = realloc(ids, (nids + nrows) * sizeof(*ids));
		memcpy(ids + nids, gw.ids, nrows * sizeof(*ids));
		nids += nrows;
	}
	*vps = (double)rounds * (double)nrows / busy;
	if (!wait)
		phase(name, "end");
	return 0;
}

struct wjob {
	struct lat up, del;
	int failed;
};

static void *writer(void *arg)
{
	struct wjob *j = arg;
	float *v = malloc(dim * sizeof(float));
	while (!atomic_load(&stop)) {
		size_t u = atomic_fetch_add(&next_row, 2);
		if (u + 1 >= nids)
			break;
		size_t row = u % nrows;
		memcpy(v, base + row * dim, dim * sizeof(float));
		v[u % dim] += 0.5f;
		Muri__V1__Vector vec = MURI__V1__VECTOR__INIT, *vp = &vec;
		vec.values = v;
		vec.n_values = dim;
		char *id = ids[u];
		Muri__V1__UpsertRequest up = MURI__V1__UPSERT_REQUEST__INIT;
		up.collection = (char *)collection;
		up.ids = &id;
		up.n_ids = 1;
		up.vectors = &vp;
		up.n_vectors = 1;
		up.consistency_level = MURI__V1__CONSISTENCY_LEVEL__QUORUM;
		up.timeout_ms = 30000;
		double s = now_s();
		if (gw_update_ok(&gw, &up))
			j->failed = 1;
		lat_add(&j->up, (now_s() - s) * 1e3);
		s = now_s();
		if (gw_delete_one(&gw, ids[u + 1]))
			j->failed = 1;
		lat_add(&j->del, (now_s() - s) * 1e3);
	}
	free(v);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *name = "glove-100-angular-10k", *target = NULL, *indexers = "";
	size_t rows = 10000;
	int rounds = 10, writers = 2, seconds = 10;
	const struct gw_arg args[] = {
		{"--gateway", GW_ARG_STR, &target},
		{"--collection", GW_ARG_STR, &collection},
		{"--indexers", GW_ARG_STR, &indexers},
		{"--dataset", GW_ARG_STR, &name},
		{"--rows", GW_ARG_SIZE, &rows},
		{"--rounds", GW_ARG_INT, &rounds},
		{"--writers", GW_ARG_INT, &writers},
		{"--seconds", GW_ARG_INT, &seconds},
		{NULL, GW_ARG_STR, NULL}};
	if (gw_parse_args(argc, argv, args))
		return 2;
	if (!target || rows < 1 || rows > 10000 || rounds < 1 || writers < 0 || writers > GW_MAX_THREADS ||
	    seconds < 1) {
		fprintf(stderr, "--gateway required; --rows 1..10000, --rounds >= 1, --writers 0..64, --seconds >= 1\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	const char *ds = getenv("MURI_DATASETS");
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s/base.fvecs", ds ? ds : "../shared/datasets", name);
	if (cm_fvecs_read(p, rows, &base, &nrows, &dim) != CM_OK) {
		fprintf(stderr, "cannot read %s\n", p);
		return 1;
	}
	if (gw_client_open(&gw, target, collection, nrows, dim) != 0)
		return 1;
	struct lat idle = {0}, b2b = {0};
	double vps_idle = 0, vps_b2b = 0;
	if (inserts("insert-idle", rounds, 1, indexers, &idle, &vps_idle) != 0 ||
	    inserts("insert-b2b", rounds, 0, indexers, &b2b, &vps_b2b) != 0)
		return 1;
	gw_wait_indexed(indexers);
	printf("insert at QUORUM, %zu x %zu per Insert, indexes idle before each: p50 %.1f ms, p99 %.1f ms, "
	       "%.0f vectors/s (%zu calls)\n", nrows, dim, lat_pct(&idle, 50), lat_pct(&idle, 99), vps_idle, idle.n);
	printf("insert at QUORUM, %zu x %zu per Insert, back to back: p50 %.1f ms, p99 %.1f ms, %.0f vectors/s "
	       "(%zu calls)\n", nrows, dim, lat_pct(&b2b, 50), lat_pct(&b2b, 99), vps_b2b, b2b.n);
	fflush(stdout);
	int failed = 0;
	if (writers > 0) {
		pthread_t t[GW_MAX_THREADS];
		struct wjob *j = calloc((size_t)writers, sizeof(*j));
		phase("single", "begin");
		double t0 = now_s();
		for (int i = 0; i < writers; i++)
			pthread_create(&t[i], NULL, writer, &j[i]);
		nanosleep(&(struct timespec){.tv_sec = seconds}, NULL);
		atomic_store(&stop, 1);
		for (int i = 0; i < writers; i++)
			pthread_join(t[i], NULL);
		double el = now_s() - t0;
		phase("single", "end");
		struct lat up = {0}, del = {0};
		for (int i = 0; i < writers; i++) {
			lat_merge(&up, &j[i].up);
			lat_merge(&del, &j[i].del);
			failed |= j[i].failed;
			free(j[i].up.v);
			free(j[i].del.v);
		}
		size_t nu = up.n, nd = del.n;
		printf("single-record writes at QUORUM, %d closed-loop writers, %.1f s: %.0f requests/s; Update p50 %.2f "
		       "ms, p99 %.2f ms (%zu calls); Delete p50 %.2f ms, p99 %.2f ms (%zu calls)%s\n",
		       writers, el, (double)(nu + nd) / el, lat_pct(&up, 50), lat_pct(&up, 99), nu, lat_pct(&del, 50),
		       lat_pct(&del, 99), nd, failed ? "; SOME CALLS FAILED" : "");
		free(up.v);
		free(del.v);
		free(j);
	}
	free(idle.v);
	free(b2b.v);
	free(ids);
	free(base);
	gw_client_free(&gw);
	return failed;
}
