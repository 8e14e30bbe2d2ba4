/* indexer-bench --tune: the (M, efConstruction) grid; inproc_tune.h. */
#include "inproc_tune.h"
#include "inproc_muri.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TUNE_MAX 8
#define TUNE_EFS 11

static const int tune_efs[TUNE_EFS] = {16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
static const double targets[] = {0.90, 0.95, 0.97, 0.98, 0.99, 0.995};
#define NTARGETS (sizeof(targets) / sizeof(targets[0]))

struct pair {
	int m, efc;
	double build_s, build_cpu_s;
	size_t bytes;
	struct inproc_row rows[TUNE_EFS];
};

/* "a,b,c" into out (at most TUNE_MAX positive values); their count, or -1. */
static int parse_list(const char *s, const char *end, int *out)
{
	int n = 0;
	while (s < end) {
		char *e;
		long v = strtol(s, &e, 10);
		if (e == s || v <= 0 || v > 4096 || n == TUNE_MAX || (e < end && *e != ','))
			return -1;
		out[n++] = (int)v;
		s = e < end ? e + 1 : e;
	}
	return n;
}

int inproc_tune(const char *grid, const float *base, size_t nb, const float *queries, size_t nq, size_t dim,
		size_t batch, int threads, double (*recall_of)(const int64_t *labels))
{
	int ms[TUNE_MAX], efcs[TUNE_MAX];
	const char *colon = strchr(grid, ':');
	int nm = colon ? parse_list(grid, colon, ms) : -1;
	int ne = colon ? parse_list(colon + 1, colon + strlen(colon), efcs) : -1;
	if (nm <= 0 || ne <= 0) {
		fprintf(stderr, "--tune: want M1,M2,..:E1,E2,.. (at most %d of each, 1..4096), got %s\n", TUNE_MAX, grid);
		return -1;
	}
	struct pair *p = calloc((size_t)(nm * ne), sizeof(*p));
	if (!p)
		return -1;
	inproc_muri_set_faiss_rows(0);
	printf("HNSW (M, efConstruction) grid, in process: muri's build on %d threads in adds of %zu, its walk from "
	       "%d threads one query per call; %zu x %zu, %zu queries, recall@10; CPU-QPS = queries per CPU-second of "
	       "the searching threads x their number\n",
	       threads, batch, threads, nb, dim, nq);
	int np = 0, rc = 0;
	for (int a = 0; a < nm && rc == 0; a++)
		for (int b = 0; b < ne && rc == 0; b++) {
			struct pair *x = &p[np];
			x->m = ms[a];
			x->efc = efcs[b];
			fprintf(stderr, "tune: M %d efConstruction %d...\n", x->m, x->efc);
			if (inproc_muri(base, nb, queries, nq, dim, x->m, x->efc, batch, threads, threads, tune_efs,
					TUNE_EFS, recall_of, x->rows, &x->build_s, &x->build_cpu_s) != 0) {
				rc = -1;
				break;
			}
			x->bytes = inproc_muri_index_bytes();
			printf("M %3d efConstruction %4d: build %.1f s wall, %.1f s CPU; index %.0f bytes per vector\n",
			       x->m, x->efc, x->build_s, x->build_cpu_s, (double)x->bytes / (double)nb);
			for (int e = 0; e < TUNE_EFS; e++)
				printf("   efSearch %4d: recall %.4f, CPU-QPS %8.0f (wall QPS %.0f)\n", x->rows[e].ef,
				       x->rows[e].recall, x->rows[e].cpu_qps, x->rows[e].qps);
			fflush(stdout);
			np++;
		}
	inproc_muri_set_faiss_rows(1);
	if (np > 0) {
		printf("\nCPU-QPS at equal recall (interpolated between efSearch values; -: not reached):\n%-8s", "recall");
		for (int i = 0; i < np; i++) {
			char h[32];
			snprintf(h, sizeof(h), "M%d/%d", p[i].m, p[i].efc);
			printf(" %10s", h);
		}
		printf("   best\n");
		for (size_t t = 0; t < NTARGETS; t++) {
			int best = -1;
			double bq = 0;
			printf("%-8.3f", targets[t]);
			for (int i = 0; i < np; i++) {
				double q = inproc_interp(p[i].rows, TUNE_EFS, targets[t]);
				if (q > 0)
					printf(" %10.0f", q);
				else
					printf(" %10s", "-");
				if (q > bq)
					bq = q, best = i;
			}
			if (best >= 0)
				printf("   M %d efConstruction %d\n", p[best].m, p[best].efc);
			else
				printf("   -\n");
		}
	}
	free(p);
	return rc;
}
