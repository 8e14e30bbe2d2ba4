/* Filtered search in process: muri's HNSW index (ix_index, the indexer's
 * own build and search path) over glove-100-angular's first --rows rows,
 * searched one query per call under a filter that admits a given share of
 * the rows (a seeded hash of the row picks them, so every share is spread
 * evenly over the graph), next to the unfiltered search of the same
 * queries. Recall@10 is against brute force over the admitted rows (exact
 * cosine, double accumulation). For each share it prints which path the
 * index chose (the walk, or an exact scan), recall, the CPU microseconds
 * per query and their ratio to the unfiltered search, and the same for
 * the walk and the exact scan each forced, so the crossover between them
 * can be read off. This is what ix_faiss_ext.cpp's choice of path and of
 * the admitted beam is tuned on.
 *   filter-walk-bench [--dataset DIR] [--rows N] [--queries N] [--ef E] [--m M]
 *                     [--ef-construction E] [--shares LIST (percent)] [--threads T]
 *                     [--scan-factor S] [--post-factor P] (ix_faiss_set_filter_rules) */
#include "bench_util.h"
#include "cm_vecs.h"
#include "inproc_muri.h"
#include "ix_faiss_ext.h"
#include "ix_hnsw.h"
#include "ix_index.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K 10
#define MAX_SHARES 16

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Exact top K by cosine (vectors normalized: the largest inner product)
 * among the admitted rows. */
static void truth_of(const float *b, size_t nb, size_t d, const float *q, const uint8_t *bits, int64_t *out)
{
	double best[K];
	for (int i = 0; i < K; i++) {
		best[i] = -1e300;
		out[i] = -1;
	}
	for (size_t r = 0; r < nb; r++) {
		if (bits && !((bits[r >> 3] >> (r & 7)) & 1))
			continue;
		double s = 0;
		for (size_t j = 0; j < d; j++)
			s += (double)q[j] * (double)b[r * d + j];
		if (s <= best[K - 1])
			continue;
		int i = K - 1;
		while (i > 0 && best[i - 1] < s) {
			best[i] = best[i - 1];
			out[i] = out[i - 1];
			i--;
		}
		best[i] = s;
		out[i] = (int64_t)r;
	}
}

static double recall(const int64_t *got, const int64_t *truth, size_t nq)
{
	size_t hit = 0, want = 0;
	for (size_t q = 0; q < nq; q++)
		for (int j = 0; j < K; j++) {
			if (truth[q * K + j] < 0)
				continue;
			want++;
			for (int i = 0; i < K; i++)
				hit += got[q * K + i] == truth[q * K + j];
		}
	return want ? (double)hit / (double)want : 1.0;
}

struct pass {
	double rec, cpu_us;
};

/* Searches every query under sel (NULL: unfiltered) on one thread each of
 * threads, forcing the exact scan when exhaustive. */
static int run(const ix_index *ix, const float *q, size_t nq, size_t d, const ix_select *sel, size_t admitted,
	       int exhaustive, const int64_t *truth, int64_t *got, struct pass *out)
{
	double cpu = 0;
	int failed = 0;
#pragma omp parallel reduction(+ : cpu) reduction(| : failed)
	{
		double c0 = inproc_thread_cpu_s();
#pragma omp for schedule(static)
		for (size_t i = 0; i < nq; i++) {
			float dist[K];
			int64_t lab[K];
			size_t n = K;
			char err[256];
			if (ix_index_search(ix, q + i * d, K, exhaustive, sel, admitted, dist, lab, &n, err, sizeof(err))) {
				fprintf(stderr, "search: %s\n", err);
				failed = 1;
				n = 0;
			}
			for (size_t r = 0; r < K; r++)
				got[i * K + r] = r < n ? lab[r] : -1;
		}
		cpu += inproc_thread_cpu_s() - c0;
	}
	out->rec = recall(got, truth, nq);
	out->cpu_us = cpu / (double)nq * 1e6;
	return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *dir = getenv("MURI_DATASETS") ? getenv("MURI_DATASETS") : "../shared/datasets";
	char dataset[512];
	snprintf(dataset, sizeof(dataset), "%s/glove-100-angular", dir);
	size_t rows = 100000, nqa = 1000;
	int ef = 128, m = 32, efc = 200, threads = 2, nsh = 5;
	double scan = IX_FAISS_SCAN_FACTOR, post = IX_FAISS_POST_FACTOR;
	double shares[MAX_SHARES] = {50, 15, 5, 1, 0.1};
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dataset"))
			snprintf(dataset, sizeof(dataset), "%s", argv[i + 1]);
		else if (!strcmp(argv[i], "--rows"))
			rows = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--queries"))
			nqa = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--ef"))
			ef = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--m"))
			m = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--ef-construction"))
			efc = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--scan-factor"))
			scan = strtod(argv[i + 1], NULL);
		else if (!strcmp(argv[i], "--post-factor"))
			post = strtod(argv[i + 1], NULL);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--shares")) {
			nsh = 0;
			for (char *s = argv[i + 1], *e; *s && nsh < MAX_SHARES; s = *e ? e + 1 : e) {
				shares[nsh++] = strtod(s, &e);
				if (e == s)
					break;
			}
		} else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (rows == 0 || nqa == 0 || ef < K || m < 4 || threads < 1 || threads > 64) {
		fprintf(stderr, "--rows, --queries > 0, --ef >= %d, --m >= 4, --threads 1..64\n", K);
		return 2;
	}
	char path[600];
	float *base = NULL, *q = NULL;
	size_t nb, nq, d, dq;
	snprintf(path, sizeof(path), "%s/base.fvecs", dataset);
	if (cm_fvecs_read(path, rows, &base, &nb, &d)) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/query.fvecs", dataset);
	if (cm_fvecs_read(path, nqa, &q, &nq, &dq) || dq != d) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}
	char err[256];
	ix_spec s = {.dim = (uint32_t)d, .metric = IX_COSINE, .kind = IX_HNSW, .hnsw_m = (uint32_t)m,
		     .ef_construction = (uint32_t)efc, .ef_search = (uint32_t)ef};
	ix_index *ix = NULL;
	if (ix_spec_normalize(&s, err, sizeof(err)) || ix_index_create(&s, 0, &ix, err, sizeof(err))) {
		fprintf(stderr, "index: %s\n", err);
		return 1;
	}
	ix_faiss_set_filter_rules(scan, post);
	ix_vec_prepare(&s, base, nb);
	ix_vec_prepare(&s, q, nq);
	ix_index_set_build_threads(threads);
	int64_t *lab = malloc(nb * sizeof(int64_t)), *truth = malloc(nq * K * sizeof(int64_t)),
		*got = malloc(nq * K * sizeof(int64_t));
	uint8_t *bits = calloc(nb / 8 + 1, 1);
	if (!lab || !truth || !got || !bits)
		return 1;
	for (size_t i = 0; i < nb; i++)
		lab[i] = (int64_t)i;
	double t0 = now_s();
	for (size_t i = 0; i < nb; i += 10000) {
		size_t n = nb - i < 10000 ? nb - i : 10000;
		if (ix_index_add(ix, n, base + i * d, lab + i, 42, err, sizeof(err))) {
			fprintf(stderr, "add: %s\n", err);
			return 1;
		}
	}
	ix_index_set_build_threads(1);
	omp_set_num_threads(threads);
	double la = 0;
	if (getloadavg(&la, 1) < 1)
		la = -1;
	printf("muri in-process filtered search: %s, %zu rows x %zu, %zu queries, HNSW M %d efConstruction %d "
	       "efSearch %d, k %d, %d threads, build %.1f s, load average %.2f\n",
	       dataset, nb, d, nq, m, efc, ef, K, threads, now_s() - t0, la);
#pragma omp parallel for schedule(dynamic, 8)
	for (size_t i = 0; i < nq; i++)
		truth_of(base, nb, d, q + i * d, NULL, truth + i * K);
	struct pass un;
	if (run(ix, q, nq, d, NULL, 0, 0, truth, got, &un))
		return 1;
	printf("| share | admitted | chosen: recall | CPU us | x unfiltered | unfiltered beam, filtered: recall | CPU us "
	       "| walk keeping ef admitted: recall | CPU us | scan: recall | CPU us |\n"
	       "|---|---|---|---|---|---|---|---|---|---|---|\n");
	printf("| unfiltered | %zu | %.4f | %.0f | 1.00 | | | | | | |\n", nb, un.rec, un.cpu_us);
	for (int si = 0; si < nsh; si++) {
		memset(bits, 0, nb / 8 + 1);
		size_t adm = 0;
		uint64_t cut = (uint64_t)(shares[si] / 100.0 * 1e6);
		for (size_t r = 0; r < nb; r++)
			if (mix(r ^ 0x6d757269) % 1000000 < cut) {
				bits[r >> 3] |= (uint8_t)(1u << (r & 7));
				adm++;
			}
#pragma omp parallel for schedule(dynamic, 8)
		for (size_t i = 0; i < nq; i++)
			truth_of(base, nb, d, q + i * d, bits, truth + i * K);
		ix_select sel = {.bitmap = bits, .nbytes = nb / 8 + 1};
		struct pass ch, po, wk, ex;
		int rc = run(ix, q, nq, d, &sel, adm, 0, truth, got, &ch);
		ix_faiss_set_filter_rules(1e-12, post > 0 ? post : IX_FAISS_POST_FACTOR); /* always the unfiltered beam */
		rc |= run(ix, q, nq, d, &sel, adm, 0, truth, got, &po);
		ix_faiss_set_filter_rules(1e-12, 0); /* always the walk keeping ef admitted */
		rc |= run(ix, q, nq, d, &sel, adm, 0, truth, got, &wk);
		ix_faiss_set_filter_rules(scan, post);
		rc |= run(ix, q, nq, d, &sel, adm, 1, truth, got, &ex);
		if (rc)
			return 1;
		printf("| %g%% | %zu | %.4f | %.0f | %.2f | %.4f | %.0f | %.4f | %.0f | %.4f | %.0f |\n", shares[si], adm,
		       ch.rec, ch.cpu_us, ch.cpu_us / un.cpu_us, po.rec, po.cpu_us, wk.rec, wk.cpu_us, ex.rec,
		       ex.cpu_us);
		fflush(stdout);
	}
	ix_index_free(ix);
	free(base);
	free(q);
	free(lab);
	free(truth);
	free(got);
	free(bits);
	return 0;
}
