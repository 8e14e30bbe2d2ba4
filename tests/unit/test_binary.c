/* Binary vectors under HAMMING (services/indexer/ix_faiss_binary.h): the
 * packed distance kernel (cm_answer_hamming) against a bit-by-bit count;
 * on real binary codes, the sign bits of glove-100-angular-10k's vectors
 * (100 bits, padded with zeros to 104), faiss's IndexBinaryFlat gives the
 * exact top 10 and IndexBinaryHNSW reaches recall@10 >= 0.95 against brute
 * force (ties counted: a hit at the 10th true distance is a hit); a search
 * restricted by a bitmap is exact over the admitted codes; two indexes built
 * alike answer alike; save and load keep the answers; seeded adds one
 * vector at a time (as fragments add) give the same graph through a save
 * and load; bad parameters are refused naming the field; a HAMMING
 * fragment (FLAT and HNSW) serves exact answers through updates, deletes,
 * a reopen and a rebuild. */
#include "tap.h"
#include "cm_answer.h"
#include "cm_err.h"
#include "cm_vecs.h"
#include "ix_faiss_binary.h"
#include "ix_fragment.h"
#include "ix_record.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BITS 104
#define CS (BITS / 8)
#define K 10

static uint8_t *base, *queries;
static size_t nb, nq;
static int32_t *kth; /* per query its 10th smallest true distance */

static uint32_t naive(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint32_t d = 0;
	for (size_t i = 0; i < n * 8; i++)
		d += ((a[i / 8] >> (i % 8)) & 1) != ((b[i / 8] >> (i % 8)) & 1);
	return d;
}

/* Sign bits of n rows of d floats, bit i in byte i / 8 at i % 8. */
static uint8_t *sign_codes(const float *x, size_t n, size_t d)
{
	uint8_t *c = calloc(n, CS);
	for (size_t r = 0; r < n; r++)
		for (size_t i = 0; i < d; i++)
			if (x[r * d + i] > 0)
				c[r * CS + i / 8] |= (uint8_t)(1u << (i % 8));
	return c;
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

/* Labels are 1000 + position, as a log's sequence numbers need not start at 0. */
static ix_bin_index *built(int kind, uint32_t efs)
{
	char err[256];
	ix_bin_index *ix = NULL;
	if (ix_bin_create(kind, BITS, 32, 200, efs, &ix, err, sizeof(err)) != CM_OK) {
		printf("# %s\n", err);
		return NULL;
	}
	int64_t *lab = malloc(nb * sizeof(int64_t));
	for (size_t i = 0; i < nb; i++)
		lab[i] = 1000 + (int64_t)i;
	for (size_t i = 0; i < nb; i += 2500) /* in batches, as a log's records arrive */
		if (ix_bin_add(ix, nb - i < 2500 ? nb - i : 2500, base + i * CS, lab + i, err, sizeof(err)) != CM_OK)
			printf("# add: %s\n", err);
	free(lab);
	return ix;
}

static double recall(const int64_t *lab)
{
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++)
		for (int i = 0; i < K; i++)
			if (lab[q * K + i] >= 1000 &&
			    (int32_t)naive(queries + q * CS, base + (size_t)(lab[q * K + i] - 1000) * CS, CS) <= kth[q])
				hit++;
	return (double)hit / (double)(nq * K);
}

static void test_kernel_counts_differing_bits(void)
{
	uint8_t a[70], b[70];
	uint64_t s = 7;
	for (int t = 0; t < 200; t++) {
		size_t n = 1 + (size_t)t % 70;
		for (size_t i = 0; i < n; i++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			a[i] = (uint8_t)(s >> 33);
			b[i] = (uint8_t)(s >> 45);
		}
		TAP_EQ(cm_answer_hamming(a, b, n), naive(a, b, n));
		TAP_EQ(cm_answer_hamming(a, a, n), 0);
	}
	memset(a, 0, sizeof(a));
	memset(b, 0xff, sizeof(b));
	TAP_EQ(cm_answer_hamming(a, b, 70), 560);
}

static void test_flat_is_exact(void)
{
	char err[256];
	ix_bin_index *ix = built(IX_BIN_FLAT, 1);
	TAP_CHECK(ix && ix_bin_size(ix) == nb && ix_bin_bits(ix) == BITS);
	int32_t *d = malloc(nq * K * sizeof(int32_t));
	int64_t *l = malloc(nq * K * sizeof(int64_t));
	TAP_EQ(ix_bin_search(ix, nq, queries, K, NULL, 0, d, l, err, sizeof(err)), CM_OK);
	TAP_CHECK(recall(l) == 1.0);
	for (size_t q = 0; q < nq; q++) {
		TAP_EQ(d[q * K + K - 1], kth[q]);
		for (int i = 0; i < K; i++) {
			TAP_EQ(d[q * K + i], naive(queries + q * CS, base + (size_t)(l[q * K + i] - 1000) * CS, CS));
			if (i) /* nearest first, equal distances by label */
				TAP_CHECK(d[q * K + i - 1] < d[q * K + i] ||
					  (d[q * K + i - 1] == d[q * K + i] && l[q * K + i - 1] < l[q * K + i]));
		}
	}
	free(d);
	free(l);
	ix_bin_free(ix);
}

static void test_hnsw_recall(void)
{
	char err[256];
	ix_bin_index *ix = built(IX_BIN_HNSW, 128), *twin = built(IX_BIN_HNSW, 128);
	TAP_CHECK(ix && twin);
	int32_t *d = malloc(nq * K * sizeof(int32_t)), *d2 = malloc(nq * K * sizeof(int32_t));
	int64_t *l = malloc(nq * K * sizeof(int64_t)), *l2 = malloc(nq * K * sizeof(int64_t));
	TAP_EQ(ix_bin_search(ix, nq, queries, K, NULL, 0, d, l, err, sizeof(err)), CM_OK);
	double r = recall(l);
	printf("# IndexBinaryHNSW M 32, efSearch 128: recall@10 %.4f over %zu queries\n", r, nq);
	TAP_CHECK(r >= 0.95);
	/* built alike, answers alike */
	TAP_EQ(ix_bin_search(twin, nq, queries, K, NULL, 0, d2, l2, err, sizeof(err)), CM_OK);
	TAP_CHECK(!memcmp(l, l2, nq * K * sizeof(int64_t)) && !memcmp(d, d2, nq * K * sizeof(int32_t)));
	/* saved and loaded: the same answers */
	char path[64];
	snprintf(path, sizeof(path), "/tmp/test-binary-%d.idx", (int)getpid());
	TAP_EQ(ix_bin_save(ix, path, err, sizeof(err)), CM_OK);
	ix_bin_index *back = NULL;
	TAP_EQ(ix_bin_load(path, IX_BIN_HNSW, BITS, 128, &back, err, sizeof(err)), CM_OK);
	TAP_CHECK(back && ix_bin_size(back) == nb);
	if (back) {
		TAP_EQ(ix_bin_search(back, nq, queries, K, NULL, 0, d2, l2, err, sizeof(err)), CM_OK);
		TAP_CHECK(!memcmp(l, l2, nq * K * sizeof(int64_t)));
	}
	ix_bin_free(back);
	back = NULL;
	TAP_EQ(ix_bin_load(path, IX_BIN_HNSW, BITS + 8, 128, &back, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "not a 112-bit binary HNSW index") != NULL);
	TAP_EQ(ix_bin_load(path, IX_BIN_FLAT, BITS, 128, &back, err, sizeof(err)), CM_ERR_INVALID);
	unlink(path);
	/* a lower efSearch costs recall: the parameter reaches the walk */
	TAP_EQ(ix_bin_set_ef_search(ix, 10, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_bin_search(ix, nq, queries, K, NULL, 0, d2, l2, err, sizeof(err)), CM_OK);
	printf("# efSearch 10: recall@10 %.4f\n", recall(l2));
	TAP_CHECK(recall(l2) < r);
	free(d);
	free(d2);
	free(l);
	free(l2);
	ix_bin_free(ix);
	ix_bin_free(twin);
}

/* ix_bin_add_seeded: levels from (seed, position), state kept between
 * calls. One vector per call (as a fragment's indexer adds) and a save and
 * load halfway give the same graph, hence the same answers, as one
 * uninterrupted run; recall stays >= 0.95; another seed is another graph. */
static void test_hnsw_seeded(void)
{
	char err[256], path[64];
	size_t n = nb < 4000 ? nb : 4000, half = n / 2;
	ix_bin_index *a = NULL, *b = NULL, *c = NULL, *back = NULL;
	int64_t *lab = malloc(n * sizeof(int64_t));
	for (size_t i = 0; i < n; i++)
		lab[i] = 1000 + (int64_t)i;
	TAP_EQ(ix_bin_create(IX_BIN_HNSW, BITS, 32, 200, 128, &a, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_bin_create(IX_BIN_HNSW, BITS, 32, 200, 128, &b, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_bin_create(IX_BIN_HNSW, BITS, 32, 200, 128, &c, err, sizeof(err)), CM_OK);
	int rc = CM_OK;
	for (size_t i = 0; i < n && rc == CM_OK; i++)
		rc = ix_bin_add_seeded(a, 1, base + i * CS, lab + i, 77, err, sizeof(err));
	for (size_t i = 0; i < half && rc == CM_OK; i++)
		rc = ix_bin_add_seeded(b, 1, base + i * CS, lab + i, 77, err, sizeof(err));
	for (size_t i = 0; i < n && rc == CM_OK; i++)
		rc = ix_bin_add_seeded(c, 1, base + i * CS, lab + i, 78, err, sizeof(err));
	TAP_EQ(rc, CM_OK);
	snprintf(path, sizeof(path), "/tmp/test-binary-seeded-%d.idx", (int)getpid());
	TAP_EQ(ix_bin_save(b, path, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_bin_load(path, IX_BIN_HNSW, BITS, 128, &back, err, sizeof(err)), CM_OK);
	unlink(path);
	for (size_t i = half; back && i < n && rc == CM_OK; i++)
		rc = ix_bin_add_seeded(back, 1, base + i * CS, lab + i, 77, err, sizeof(err));
	TAP_EQ(rc, CM_OK);
	TAP_CHECK(back && ix_bin_size(back) == n && ix_bin_size(a) == n);
	size_t m = nq < 200 ? nq : 200;
	int32_t *d1 = malloc(m * K * sizeof(int32_t)), *d2 = malloc(m * K * sizeof(int32_t));
	int64_t *l1 = malloc(m * K * sizeof(int64_t)), *l2 = malloc(m * K * sizeof(int64_t));
	TAP_EQ(ix_bin_search(a, m, queries, K, NULL, 0, d1, l1, err, sizeof(err)), CM_OK);
	if (back) {
		TAP_EQ(ix_bin_search(back, m, queries, K, NULL, 0, d2, l2, err, sizeof(err)), CM_OK);
		TAP_CHECK(!memcmp(l1, l2, m * K * sizeof(int64_t)) && !memcmp(d1, d2, m * K * sizeof(int32_t)));
	}
	/* recall against brute force over the n codes added */
	size_t hit = 0;
	for (size_t q = 0; q < m; q++) {
		int32_t *all = malloc(n * sizeof(int32_t));
		for (size_t i = 0; i < n; i++)
			all[i] = (int32_t)cm_answer_hamming(queries + q * CS, base + i * CS, CS);
		qsort(all, n, sizeof(int32_t), cmp_i32);
		for (int i = 0; i < K; i++)
			hit += l1[q * K + i] >= 1000 && d1[q * K + i] <= all[K - 1];
		free(all);
	}
	printf("# seeded one-at-a-time adds of %zu codes: recall@10 %.4f over %zu queries\n", n,
	       (double)hit / (double)(m * K), m);
	TAP_CHECK((double)hit / (double)(m * K) >= 0.95);
	/* the seed shapes the graph: another seed's answers differ somewhere
	 * (distances may tie), its levels being other draws */
	TAP_EQ(ix_bin_search(c, m, queries, K, NULL, 0, d2, l2, err, sizeof(err)), CM_OK);
	TAP_CHECK(memcmp(l1, l2, m * K * sizeof(int64_t)) != 0);
	free(d1);
	free(d2);
	free(l1);
	free(l2);
	free(lab);
	ix_bin_free(a);
	ix_bin_free(b);
	ix_bin_free(c);
	ix_bin_free(back);
}

static void test_bitmap_is_exact_over_admitted(void)
{
	char err[256];
	ix_bin_index *ix = built(IX_BIN_HNSW, 128);
	size_t nbytes = (nb + 7) / 8;
	uint8_t *bm = calloc(nbytes, 1);
	for (size_t p = 0; p < nb; p += 7)
		bm[p / 8] |= (uint8_t)(1u << (p % 8));
	int32_t d[K], want[K];
	int64_t l[K];
	for (size_t q = 0; q < 50; q++) {
		TAP_EQ(ix_bin_search(ix, 1, queries + q * CS, K, bm, nbytes, d, l, err, sizeof(err)), CM_OK);
		int32_t *all = malloc((nb / 7 + 1) * sizeof(int32_t));
		size_t n = 0;
		for (size_t p = 0; p < nb; p += 7)
			all[n++] = (int32_t)naive(queries + q * CS, base + p * CS, CS);
		qsort(all, n, sizeof(int32_t), cmp_i32);
		memcpy(want, all, sizeof(want));
		free(all);
		for (int i = 0; i < K; i++) {
			TAP_EQ(d[i], want[i]);
			TAP_CHECK(l[i] >= 1000 && (l[i] - 1000) % 7 == 0);
		}
	}
	/* a bitmap admitting 3 positions gives 3 hits, then -1 */
	memset(bm, 0, nbytes);
	bm[0] = 0x07;
	TAP_EQ(ix_bin_search(ix, 1, queries, K, bm, nbytes, d, l, err, sizeof(err)), CM_OK);
	TAP_CHECK(l[0] >= 1000 && l[0] <= 1002 && l[2] >= 1000 && l[3] == -1 && l[K - 1] == -1);
	free(bm);
	ix_bin_free(ix);
}

static void test_bad_parameters_named(void)
{
	char err[256];
	ix_bin_index *ix = NULL;
	TAP_EQ(ix_bin_create(IX_BIN_FLAT, 100, 0, 0, 0, &ix, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "dimension: 100 bits, expected a multiple of 8 in 8..65536");
	TAP_EQ(ix_bin_create(IX_BIN_FLAT, 0, 0, 0, 0, &ix, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(!strncmp(err, "dimension: 0 bits", 17));
	TAP_EQ(ix_bin_create(IX_BIN_HNSW, 64, 2, 200, 128, &ix, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(!strncmp(err, "index.hnsw_m", 12));
	TAP_EQ(ix_bin_create(3, 64, 32, 200, 128, &ix, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(!strncmp(err, "index.kind", 10));
	TAP_CHECK(ix == NULL);
	TAP_EQ(ix_bin_create(IX_BIN_FLAT, 64, 0, 0, 0, &ix, err, sizeof(err)), CM_OK);
	int32_t d;
	int64_t l;
	uint8_t q[8] = {0};
	TAP_EQ(ix_bin_search(ix, 1, q, 0, NULL, 0, &d, &l, err, sizeof(err)), CM_ERR_INVALID);
	TAP_EQ(ix_bin_search(ix, 1, q, 1, NULL, 0, &d, &l, err, sizeof(err)), CM_OK);
	TAP_EQ(l, -1); /* an empty index finds nothing */
	ix_bin_free(ix);
	ix_bin_free(NULL);
}

/* A fragment of a HAMMING collection (64 bits, FLAT or HNSW, batches of
 * 16 so the index covers most records): records of format 2 round-trip and
 * their leaves match the hits; a float record is refused naming the field;
 * every search equals brute force (ties counted) with an update and a
 * delete applied, after a reopen (the saved index is loaded), and after 40%
 * of the records are deleted (the index is rebuilt without them). */
static void fragment_binary(int kind)
{
	enum { N = 300, NB = 8 };
	char dir[] = "/tmp/muri-binfrag-XXXXXX", err[256];
	TAP_CHECK(mkdtemp(dir) != NULL);
	ix_spec spec = {.dim = 64, .metric = IX_HAMMING, .kind = kind};
	static int dead[N];
	memset(dead, 0, sizeof(dead));
	ix_options o;
	ix_options_default(&o);
	o.batch = 16;
	ix_fragment *f = NULL;
	TAP_EQ(ix_fragment_open(dir, &spec, &o, &f, err, sizeof(err)), CM_OK);
	static uint8_t codes[N][NB];
	static ix_record recs[N];
	uint64_t rng = 42;
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < NB; j++) {
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			codes[i][j] = (uint8_t)(rng >> 56);
		}
		ix_record *r = &recs[i];
		memset(r, 0, sizeof(*r));
		r->seq = (uint64_t)i;
		r->epoch = 1;
		r->op = IX_OP_INSERT;
		for (int j = 0; j < IX_ID_BYTES; j++)
			r->id[j] = (uint8_t)(i * 7 + j);
		r->id[0] = (uint8_t)(i >> 8), r->id[1] = (uint8_t)i; /* unique */
		r->id[6] = (uint8_t)((r->id[6] & 0x0f) | 0x40);
		r->id[8] = (uint8_t)((r->id[8] & 0x3f) | 0x80);
		r->version = 1;
		r->dim = 64;
		r->bin = codes[i];
	}
	/* format 2 round trip; the leaf's vector digest is the hit's */
	uint8_t buf[256];
	size_t len = ix_record_encode(&recs[5], buf);
	TAP_EQ(buf[0], IX_RECORD_FORMAT_BINARY);
	TAP_EQ(len, (size_t)IX_RECORD_HEADER_BYTES + NB);
	cm_arena a;
	cm_arena_init(&a, 0);
	ix_record back;
	TAP_EQ(ix_record_decode(buf, len, &a, &back, err, sizeof(err)), CM_OK);
	TAP_CHECK(back.bin && back.dim == 64 && memcmp(back.bin, codes[5], NB) == 0 && !back.vec);
	cm_answer_leaf leaf;
	TAP_EQ(cm_answer_leaf_parse(buf, len, &leaf), CM_OK);
	ix_hit h = {.version = 1, .seq = 5, .dim = 64, .bin = codes[5]};
	memcpy(h.id, recs[5].id, IX_ID_BYTES);
	Muri__V1__Hit *pb;
	TAP_EQ(ix_hit_to_pb(&h, &a, &pb), CM_OK);
	TAP_EQ(pb->vector->binary.len, (size_t)NB);
	TAP_EQ(cm_answer_hit_matches_leaf(pb, &leaf, NULL), CM_OK);
	pb->vector->binary.data[0] ^= 1; /* codes[5] itself: restored below */
	TAP_EQ(cm_answer_hit_matches_leaf(pb, &leaf, NULL), CM_ERR_VERIFY);
	codes[5][0] ^= 1;
	/* a float vector in a binary fragment */
	float fv[64] = {1};
	ix_record bad = recs[0];
	bad.bin = NULL;
	bad.vec = fv;
	TAP_EQ(ix_fragment_append(f, &bad, 1, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "records[0].vector.binary: missing") == err);
	TAP_EQ(ix_fragment_append(f, recs, N, err, sizeof(err)), CM_OK);
	/* an update of record 7 to record 9's code, a delete of record 9 */
	ix_record upd[2] = {recs[7], recs[9]};
	upd[0].seq = N, upd[0].op = IX_OP_UPDATE, upd[0].version = 2, upd[0].bin = codes[9];
	upd[1].seq = N + 1, upd[1].op = IX_OP_DELETE, upd[1].version = 2, upd[1].bin = NULL, upd[1].dim = 0;
	TAP_EQ(ix_fragment_append(f, upd, 2, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_fragment_wait_indexed(f, 30000), CM_OK);
	dead[9] = 1;
	for (int round = 0; round < 3; round++) {
		int wrong = 0;
		for (int qi = 0; qi < 20; qi++) {
			const uint8_t *qc = codes[qi * 13 % N];
			uint32_t d[N];
			for (int i = 0; i < N; i++)
				d[i] = cm_answer_hamming(qc, codes[i == 7 ? 9 : i], NB);
			for (int i = 0; i < N; i++)
				if (dead[i])
					d[i] = UINT32_MAX;
			ix_query q = {.bin = qc, .dim = 64, .k = K};
			ix_result res;
			cm_arena_reset(&a);
			TAP_EQ(ix_fragment_search(f, &q, &a, &res, err, sizeof(err)), CM_OK);
			TAP_EQ(res.n, (size_t)K);
			/* the k-th smallest true distance, and every hit's exactly */
			uint32_t sorted[N];
			memcpy(sorted, d, sizeof(d));
			for (int i = 0; i < K; i++)
				for (int j = i + 1; j < N; j++)
					if (sorted[j] < sorted[i]) {
						uint32_t t = sorted[i];
						sorted[i] = sorted[j];
						sorted[j] = t;
					}
			for (size_t i = 0; i < res.n; i++) {
				uint64_t s = res.hits[i].seq;
				int row = s == N ? 7 : (int)s;
				int miss = res.hits[i].distance != (float)d[row] || res.hits[i].distance != (float)sorted[i];
				if (miss && wrong < 5)
					printf("# query %d hit %zu: seq %llu distance %g, true %u, k-th %u\n", qi, i,
						 (unsigned long long)s, (double)res.hits[i].distance, d[row], sorted[i]);
				wrong += miss;
			}
		}
		TAP_EQ(wrong, 0);
		ix_query fq = {.vec = fv, .dim = 64, .k = K};
		ix_result res;
		TAP_EQ(ix_fragment_search(f, &fq, &a, &res, err, sizeof(err)), CM_ERR_INVALID);
		TAP_CHECK(strstr(err, "query.binary") == err);
		if (round == 0) { /* reopen: the saved binary index is loaded */
			ix_fragment_close(f);
			f = NULL;
			TAP_EQ(ix_fragment_open(dir, NULL, &o, &f, err, sizeof(err)), CM_OK);
			ix_fragment_info info;
			ix_fragment_info_get(f, &info);
			TAP_EQ(info.spec.metric, IX_HAMMING);
			TAP_CHECK(info.saved > 0);
		} else if (round == 1) { /* delete 120 of 300: past the tombstone share, a rebuild */
			static ix_record del[120];
			uint64_t size = ix_fragment_size(f);
			for (int i = 0; i < 120; i++) {
				int row = 100 + i;
				del[i] = recs[row];
				del[i].seq = size + (uint64_t)i, del[i].op = IX_OP_DELETE, del[i].version = 3;
				del[i].bin = NULL, del[i].dim = 0;
				dead[row] = 1;
			}
			TAP_EQ(ix_fragment_append(f, del, 120, err, sizeof(err)), CM_OK);
			TAP_EQ(ix_fragment_wait_indexed(f, 30000), CM_OK);
			ix_fragment_info info;
			ix_fragment_info_get(f, &info);
			TAP_CHECK(info.rebuilds > 0);
			TAP_EQ(info.live, (uint64_t)(N - 121));
		}
	}
	cm_arena_free(&a);
	ix_fragment_close(f);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	TAP_EQ(system(cmd), 0);
}

static void test_fragment_binary_flat(void)
{
	fragment_binary(IX_FLAT);
}

static void test_fragment_binary_hnsw(void)
{
	fragment_binary(IX_HNSW);
}

int main(void)
{
	const char *ds = getenv("MURI_DATASETS");
	char p[1024];
	float *fb = NULL, *fq = NULL;
	size_t d, dq;
	snprintf(p, sizeof(p), "%s/glove-100-angular-10k/base.fvecs", ds ? ds : "../shared/datasets");
	int rc = cm_fvecs_read(p, 0, &fb, &nb, &d);
	snprintf(p, sizeof(p), "%s/glove-100-angular-10k/query.fvecs", ds ? ds : "../shared/datasets");
	if (rc != CM_OK || cm_fvecs_read(p, 0, &fq, &nq, &dq) != CM_OK || d != dq || d > BITS) {
		printf("Bail out! cannot read glove-100-angular-10k\n");
		return 1;
	}
	base = sign_codes(fb, nb, d);
	queries = sign_codes(fq, nq, d);
	free(fb);
	free(fq);
	kth = malloc(nq * sizeof(int32_t));
	int32_t *all = malloc(nb * sizeof(int32_t));
	for (size_t q = 0; q < nq; q++) {
		for (size_t i = 0; i < nb; i++)
			all[i] = (int32_t)naive(queries + q * CS, base + i * CS, CS);
		qsort(all, nb, sizeof(int32_t), cmp_i32);
		kth[q] = all[K - 1];
	}
	free(all);
	TAP_RUN(test_kernel_counts_differing_bits);
	TAP_RUN(test_flat_is_exact);
	TAP_RUN(test_hnsw_recall);
	TAP_RUN(test_hnsw_seeded);
	TAP_RUN(test_bitmap_is_exact_over_admitted);
	TAP_RUN(test_bad_parameters_named);
	TAP_RUN(test_fragment_binary_flat);
	TAP_RUN(test_fragment_binary_hnsw);
	free(base);
	free(queries);
	free(kth);
	return tap_done();
}
