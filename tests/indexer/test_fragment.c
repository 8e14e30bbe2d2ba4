/* Tests of the indexer's storage engine, in process: record bytes and
 * filters; recall@10 on real embeddings (glove-100-angular-10k, cosine;
 * sift-5k, L2) for HNSW, IVF and FLAT, right after the appends and once the
 * index caught up; filtered search against brute force over the matching
 * set (metadata from base_words.txt); updates, deletes and rebuilds; restart
 * and kill -9 of a writing process; deterministic indexes; truncation;
 * large appends while indexing; concurrent searches during appends. Prints
 * recall, ingest rate and QPS. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_vecs.h"
#include "ix_fragment.h"
#include "ix_faiss_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ERR 512

static char tmpdir[] = "/tmp/muri-test-fragment-XXXXXX";
static const char *self_exe;

typedef struct dataset {
	float *base, *query;
	int32_t *gt;
	size_t nb, nq, d, dgt;
	double *unit; /* base rows normalized, in double (cosine oracle) */
} dataset;

static dataset glove, sift;
static char **words;          /* glove base_words.txt, one per base row */
static ix_field *glove_fields; /* 3 per row: first, len, word */
static char (*glove_first)[8];

/* Fragments kept between cases: built by the recall cases, reused after. */
static ix_fragment *g_hnsw, *g_flat;

/* ---- helpers ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static float frand(uint64_t *s)
{
	return (float)((double)(splitmix(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* A UUIDv4 that encodes row in its first four bytes. */
static void make_id(uint32_t row, uint8_t id[IX_ID_BYTES])
{
	uint64_t s = row * UINT64_C(7919) + 17, a = splitmix(&s), b = splitmix(&s);
	memcpy(id + 8, &b, 8);
	memcpy(id + 4, &a, 4);
	id[0] = (uint8_t)(row >> 24), id[1] = (uint8_t)(row >> 16), id[2] = (uint8_t)(row >> 8), id[3] = (uint8_t)row;
	id[6] = (uint8_t)(0x40 | (id[6] & 0x0f));
	id[8] = (uint8_t)(0x80 | (id[8] & 0x3f));
}

static uint32_t id_row(const uint8_t id[IX_ID_BYTES])
{
	return (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16 | (uint32_t)id[2] << 8 | id[3];
}

static void frag_dir(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

static void rm_rf(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", path);
}

static ix_spec spec_of(uint32_t dim, int metric, int kind)
{
	ix_spec s = {.dim = dim, .metric = metric, .kind = kind};
	return s;
}

static ix_fragment *open_frag(const char *name, const ix_spec *s, const ix_options *o)
{
	char dir[400], err[ERR] = "";
	ix_fragment *f = NULL;
	frag_dir(dir, sizeof(dir), name);
	int rc = ix_fragment_open(dir, s, o, &f, err, sizeof(err));
	if (rc != CM_OK)
		printf("# open %s: %s (%s)\n", name, cm_strerror(rc), err);
	return f;
}

static int wait_idx(ix_fragment *f)
{
	int rc = ix_fragment_wait_indexed(f, 600000);
	if (rc != CM_OK) {
		ix_fragment_info info;
		ix_fragment_info_get(f, &info);
		printf("# wait_indexed: %s %s\n", cm_strerror(rc), info.index_error);
	}
	return rc;
}

/* ---- datasets ---- */

static int load_set(dataset *ds, const char *name)
{
	const char *root = getenv("MURI_DATASETS");
	char p[1024];
	size_t dq, ngt;
	snprintf(p, sizeof(p), "%s/%s/base.fvecs", root ? root : "../shared/datasets", name);
	if (cm_fvecs_read(p, 0, &ds->base, &ds->nb, &ds->d) != CM_OK)
		return -1;
	snprintf(p, sizeof(p), "%s/%s/query.fvecs", root ? root : "../shared/datasets", name);
	if (cm_fvecs_read(p, 0, &ds->query, &ds->nq, &dq) != CM_OK || dq != ds->d)
		return -1;
	snprintf(p, sizeof(p), "%s/%s/groundtruth.ivecs", root ? root : "../shared/datasets", name);
	if (cm_ivecs_read(p, 0, &ds->gt, &ngt, &ds->dgt) != CM_OK || ngt != ds->nq || ds->dgt < 10)
		return -1;
	ds->unit = malloc(ds->nb * ds->d * sizeof(double));
	for (size_t i = 0; i < ds->nb; i++) {
		double n = 0;
		for (size_t j = 0; j < ds->d; j++)
			n += (double)ds->base[i * ds->d + j] * ds->base[i * ds->d + j];
		n = sqrt(n);
		for (size_t j = 0; j < ds->d; j++)
			ds->unit[i * ds->d + j] = ds->base[i * ds->d + j] / n;
	}
	return 0;
}

static int load_words(void)
{
	const char *root = getenv("MURI_DATASETS");
	char p[1024], line[512];
	snprintf(p, sizeof(p), "%s/glove-100-angular-10k/base_words.txt", root ? root : "../shared/datasets");
	FILE *fp = fopen(p, "r");
	if (!fp)
		return -1;
	words = calloc(glove.nb, sizeof(*words));
	glove_fields = calloc(3 * glove.nb, sizeof(*glove_fields));
	glove_first = calloc(glove.nb, sizeof(*glove_first));
	size_t n = 0;
	while (n < glove.nb && fgets(line, sizeof(line), fp)) {
		line[strcspn(line, "\n")] = '\0';
		words[n] = strdup(line);
		/* first: the first UTF-8 character */
		unsigned char c = (unsigned char)line[0];
		size_t cl = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
		memcpy(glove_first[n], line, cl);
		ix_field *f = &glove_fields[3 * n];
		f[0] = (ix_field){.key = "first", .key_len = 5, .v = {.type = IX_V_STRING}};
		f[0].v.u.str.s = glove_first[n];
		f[0].v.u.str.len = (uint32_t)cl;
		f[1] = (ix_field){.key = "len", .key_len = 3, .v = {.type = IX_V_INT}};
		f[1].v.u.i = (int64_t)strlen(line);
		f[2] = (ix_field){.key = "word", .key_len = 4, .v = {.type = IX_V_STRING}};
		f[2].v.u.str.s = words[n];
		f[2].v.u.str.len = (uint32_t)strlen(line);
		n++;
	}
	fclose(fp);
	return n == glove.nb ? 0 : -1;
}

static void glove_record(size_t row, uint64_t seq, ix_record *r)
{
	memset(r, 0, sizeof(*r));
	r->seq = seq;
	r->epoch = 1;
	r->op = IX_OP_INSERT;
	make_id((uint32_t)row, r->id);
	r->version = 1;
	r->dim = (uint32_t)glove.d;
	r->vec = glove.base + row * glove.d;
	r->nfields = 3;
	r->fields = &glove_fields[3 * row];
}

static void plain_record(const dataset *ds, size_t row, uint64_t seq, ix_record *r)
{
	memset(r, 0, sizeof(*r));
	r->seq = seq;
	r->epoch = 1;
	r->op = IX_OP_INSERT;
	make_id((uint32_t)row, r->id);
	r->version = 1;
	r->dim = (uint32_t)ds->d;
	r->vec = ds->base + row * ds->d;
}

/* Appends rows [0, n) of a dataset in chunks; returns vectors per second. */
static double load_rows(ix_fragment *f, const dataset *ds, size_t n, size_t chunk, int with_meta)
{
	ix_record *recs = calloc(chunk, sizeof(*recs));
	char err[ERR];
	double t0 = now_s();
	for (size_t i = 0; i < n; i += chunk) {
		size_t m = n - i < chunk ? n - i : chunk;
		for (size_t j = 0; j < m; j++) {
			if (with_meta)
				glove_record(i + j, i + j, &recs[j]);
			else
				plain_record(ds, i + j, i + j, &recs[j]);
		}
		int rc = ix_fragment_append(f, recs, m, err, sizeof(err));
		if (rc != CM_OK) {
			printf("# append at %zu: %s\n", i, err);
			TAP_EQ(rc, CM_OK);
			break;
		}
	}
	double dt = now_s() - t0;
	free(recs);
	return (double)n / dt;
}

/* recall@10 over the first nq queries, and queries per second. */
static double recall10(ix_fragment *f, const dataset *ds, size_t nq, double *qps)
{
	cm_arena a;
	char err[ERR];
	size_t hit = 0;
	cm_arena_init(&a, 0);
	double t0 = now_s();
	for (size_t q = 0; q < nq; q++) {
		ix_query query = {.vec = ds->query + q * ds->d, .dim = (uint32_t)ds->d, .k = 10};
		ix_result res;
		int rc = ix_fragment_search(f, &query, &a, &res, err, sizeof(err));
		if (rc != CM_OK) {
			printf("# search: %s\n", err);
			TAP_EQ(rc, CM_OK);
			break;
		}
		for (size_t i = 0; i < res.n; i++)
			for (size_t j = 0; j < 10; j++)
				if ((int32_t)id_row(res.hits[i].id) == ds->gt[q * ds->dgt + j])
					hit++;
		cm_arena_reset(&a);
	}
	if (qps)
		*qps = (double)nq / (now_s() - t0);
	cm_arena_free(&a);
	return (double)hit / (double)(nq * 10);
}

/* ---- records ---- */

static void test_record_bytes(void)
{
	float v[4] = {1.5f, -0.0f, 3e-38f, -2};
	ix_field f[4] = {
		{.key = "a", .key_len = 1, .v = {.type = IX_V_BOOL, .u.b = 1}},
		{.key = "b", .key_len = 1, .v = {.type = IX_V_INT, .u.i = -42}},
		{.key = "n", .key_len = 1, .v = {.type = IX_V_NUMBER, .u.num = 2.25}},
		{.key = "s\xc3\xa9", .key_len = 3, .v = {.type = IX_V_STRING, .u.str = {"caf\xc3\xa9", 5}}},
	};
	ix_record r = {.seq = 7, .epoch = 3, .op = IX_OP_UPDATE, .version = 9, .dim = 4, .vec = v,
		       .nfields = 4, .fields = f};
	char err[ERR] = "";
	make_id(5, r.id);
	TAP_EQ(ix_record_validate(&r, 4, err, sizeof(err)), CM_OK);
	size_t n = ix_record_encoded_size(&r);
	uint8_t *b = malloc(n + 1), *b2 = malloc(n + 1);
	TAP_EQ(ix_record_encode(&r, b), n);
	cm_arena a;
	cm_arena_init(&a, 0);
	ix_record d;
	TAP_EQ(ix_record_decode(b, n, &a, &d, err, sizeof(err)), CM_OK);
	TAP_EQ(d.seq, 7);
	TAP_EQ(d.epoch, 3);
	TAP_EQ(d.version, 9);
	TAP_EQ(d.nfields, 4);
	TAP_CHECK(memcmp(d.vec, v, sizeof(v)) == 0);
	TAP_STREQ(d.fields[3].v.u.str.s, "caf\xc3\xa9");
	TAP_EQ(ix_record_encode(&d, b2), n);
	TAP_CHECK(memcmp(b, b2, n) == 0);
	/* the leaf hash is the Merkle leaf hash of the bytes */
	uint8_t h1[32], h2[32];
	ix_record_leaf_hash(b, n, h1);
	cm_hash(h2, CM_DOM_LEAF, b, n);
	TAP_CHECK(memcmp(h1, h2, 32) == 0);
	/* every truncation and a trailing byte are refused */
	for (size_t cut = 0; cut < n; cut++)
		TAP_EQ(ix_record_decode(b, cut, &a, &d, NULL, 0), CM_ERR_INVALID);
	b[n] = 0;
	TAP_EQ(ix_record_decode(b, n + 1, &a, &d, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "after the record") != NULL);
	/* single-byte corruptions: decode refuses, or gives a record that
	 * re-encodes to exactly the corrupted bytes (never something else) */
	size_t refused = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t keep = b[i];
		b[i] ^= 0x80;
		int rc = ix_record_decode(b, n, &a, &d, NULL, 0);
		if (rc == CM_OK) {
			TAP_EQ(ix_record_encode(&d, b2), n);
			TAP_CHECK(memcmp(b, b2, n) == 0);
		} else {
			refused++;
		}
		b[i] = keep;
	}
	TAP_CHECK(refused > 20);
	/* validation names the field */
	ix_record bad = r;
	float nanv[4] = {1, NAN, 0, 0};
	bad.vec = nanv;
	TAP_EQ(ix_record_validate(&bad, 4, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "vector: value 1") != NULL);
	bad = r;
	TAP_EQ(ix_record_validate(&bad, 8, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "dimension is 8") != NULL);
	bad = r;
	bad.id[6] = 0x10;
	TAP_EQ(ix_record_validate(&bad, 4, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "id") != NULL);
	ix_field swapped[2] = {f[1], f[0]};
	bad = r;
	bad.fields = swapped;
	bad.nfields = 2;
	TAP_EQ(ix_record_validate(&bad, 4, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "sorted") != NULL);
	ix_field badutf = {.key = "k", .key_len = 1, .v = {.type = IX_V_STRING, .u.str = {"\xc3(", 2}}};
	bad = r;
	bad.fields = &badutf;
	bad.nfields = 1;
	TAP_EQ(ix_record_validate(&bad, 4, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "UTF-8") != NULL);
	bad = r;
	bad.op = IX_OP_DELETE;
	TAP_EQ(ix_record_validate(&bad, 4, err, sizeof(err)), CM_ERR_INVALID);
	/* protobuf round trip gives the same canonical bytes */
	Muri__V1__LogRecord *pb = NULL;
	TAP_EQ(ix_record_to_pb(&r, &a, &pb), CM_OK);
	size_t plen = protobuf_c_message_get_packed_size(&pb->base);
	uint8_t *packed = malloc(plen);
	protobuf_c_message_pack(&pb->base, packed);
	Muri__V1__LogRecord *un = muri__v1__log_record__unpack(NULL, plen, packed);
	TAP_CHECK(un != NULL);
	ix_record back;
	TAP_EQ(ix_record_from_pb(un, 4, &a, &back, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_record_encode(&back, b2), n);
	TAP_CHECK(memcmp(b, b2, n) == 0);
	char idtxt[IX_UUID_CHARS + 1];
	ix_uuid_format(r.id, idtxt);
	TAP_STREQ(un->id, idtxt);
	uint8_t id2[16];
	TAP_EQ(ix_uuid_parse(idtxt, id2), CM_OK);
	TAP_CHECK(memcmp(id2, r.id, 16) == 0);
	TAP_EQ(ix_uuid_parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8", id2), CM_ERR_INVALID); /* v1 */
	char *orig_id = un->id;
	un->id = "not-a-uuid";
	TAP_EQ(ix_record_from_pb(un, 4, &a, &back, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "id") == err);
	un->id = orig_id;
	un->vector->n_values = 3;
	TAP_EQ(ix_record_from_pb(un, 4, &a, &back, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "vector") == err);
	un->vector->n_values = 4;
	muri__v1__log_record__free_unpacked(un, NULL);
	free(packed);
	free(b);
	free(b2);
	cm_arena_free(&a);
}

/* ---- filters ---- */

typedef struct pbfilter {
	Muri__V1__Filter f;
	Muri__V1__Filter__ConditionsEntry e[20], *ep[20];
	Muri__V1__Condition c[20];
	Muri__V1__ValueList vl[20];
	Muri__V1__Value v[2100], *vp[2100];
	size_t nv;
} pbfilter;

static void pbf_init(pbfilter *p)
{
	memset(p, 0, sizeof(*p));
	muri__v1__filter__init(&p->f);
	p->f.conditions = p->ep;
}

static Muri__V1__Condition *pbf_cond(pbfilter *p, const char *key)
{
	size_t i = p->f.n_conditions++;
	muri__v1__filter__conditions_entry__init(&p->e[i]);
	muri__v1__condition__init(&p->c[i]);
	p->e[i].key = (char *)key;
	p->e[i].value = &p->c[i];
	p->ep[i] = &p->e[i];
	return &p->c[i];
}

static Muri__V1__Value *pbf_val(pbfilter *p)
{
	Muri__V1__Value *v = &p->v[p->nv];
	muri__v1__value__init(v);
	p->vp[p->nv++] = v;
	return v;
}

static Muri__V1__Value *pbf_str(pbfilter *p, const char *s)
{
	Muri__V1__Value *v = pbf_val(p);
	v->kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
	v->string_value = (char *)s;
	return v;
}

static Muri__V1__Value *pbf_int(pbfilter *p, int64_t i)
{
	Muri__V1__Value *v = pbf_val(p);
	v->kind_case = MURI__V1__VALUE__KIND_INT_VALUE;
	v->int_value = i;
	return v;
}

static void pbf_in(pbfilter *p, Muri__V1__Condition *c, size_t first, size_t n)
{
	size_t i = (size_t)(c - p->c);
	muri__v1__value_list__init(&p->vl[i]);
	p->vl[i].n_values = n;
	p->vl[i].values = &p->vp[first];
	c->in = &p->vl[i];
}

static void test_filter_validation(void)
{
	pbfilter p;
	ix_filter f;
	cm_arena a;
	char err[ERR];
	cm_arena_init(&a, 0);
	pbf_init(&p);
	TAP_EQ(ix_filter_from_pb(NULL, &a, &f, err, sizeof(err)), CM_OK);
	TAP_EQ(f.n, 0);
	for (int i = 0; i < 17; i++) {
		static char keys[17][8];
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		Muri__V1__Condition *c = pbf_cond(&p, keys[i]);
		c->eq__case = MURI__V1__CONDITION__EQ__EQ;
		c->eq = pbf_int(&p, i);
	}
	TAP_EQ(ix_filter_from_pb(&p.f, &a, &f, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "filter.conditions: 17 conditions (max 16)") != NULL);
	p.f.n_conditions = 16;
	TAP_EQ(ix_filter_from_pb(&p.f, &a, &f, err, sizeof(err)), CM_OK);
	TAP_EQ(f.n, 16);

	pbf_init(&p);
	Muri__V1__Condition *c = pbf_cond(&p, "year");
	for (int i = 0; i < 1025; i++)
		pbf_int(&p, i);
	pbf_in(&p, c, 0, 1025);
	TAP_EQ(ix_filter_from_pb(&p.f, &a, &f, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "filter.conditions[\"year\"].in: 1025 values (max 1024)");
	p.vl[0].n_values = 1024;
	TAP_EQ(ix_filter_from_pb(&p.f, &a, &f, err, sizeof(err)), CM_OK);
	TAP_EQ(f.conds[0].nin, 1024);
	p.v[3].kind_case = MURI__V1__VALUE__KIND__NOT_SET;
	TAP_EQ(ix_filter_from_pb(&p.f, &a, &f, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "filter.conditions[\"year\"].in[3]: value has no kind set");

	pbf_init(&p);
	c = pbf_cond(&p, "price");
	TAP_EQ(ix_filter_from_pb(&p.f, &a, &f, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "filter.conditions[\"price\"]: no eq, in or range given");
	c->gt__case = MURI__V1__CONDITION__GT__GT;
	c->gt = NAN;
	TAP_EQ(ix_filter_from_pb(&p.f, &a, &f, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "filter.conditions[\"price\"].gt: not a finite number");
	c->gt = 2;
	c->lte__case = MURI__V1__CONDITION__LTE__LTE;
	c->lte = 5;
	TAP_EQ(ix_filter_from_pb(&p.f, &a, &f, err, sizeof(err)), CM_OK);
	/* evaluation on one record: ints and numbers compare numerically */
	ix_field fl[2] = {{.key = "name", .key_len = 4, .v = {.type = IX_V_STRING, .u.str = {"x", 1}}},
			  {.key = "price", .key_len = 5, .v = {.type = IX_V_INT, .u.i = 5}}};
	TAP_EQ(ix_filter_match(&f, fl, 2), 1);
	fl[1].v.u.i = 2;
	TAP_EQ(ix_filter_match(&f, fl, 2), 0);
	fl[1].v.type = IX_V_NUMBER;
	fl[1].v.u.num = 2.5;
	TAP_EQ(ix_filter_match(&f, fl, 2), 1);
	TAP_EQ(ix_filter_match(&f, fl, 1), 0); /* missing field */
	cm_arena_free(&a);
}

/* ---- recall ---- */

static void test_glove_hnsw_recall(void)
{
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_HNSW);
	s.hnsw_m = 32;
	s.ef_construction = 200;
	s.ef_search = 64;
	ix_options o;
	ix_options_default(&o);
	o.persist_interval_ms = 0;
	g_hnsw = open_frag("glove-hnsw", &s, &o);
	TAP_CHECK(g_hnsw != NULL);
	if (!g_hnsw)
		return;
	double rate = load_rows(g_hnsw, &glove, glove.nb, 1000, 1);
	ix_fragment_info info;
	ix_fragment_info_get(g_hnsw, &info);
	double qps;
	double r0 = recall10(g_hnsw, &glove, 200, &qps);
	printf("# glove-10k HNSW32 efC200 efSearch64, durable ingest %.0f vectors/s (chunks of 1000); "
	       "right after the appends (indexed %llu of %llu): recall@10 %.4f over 200 queries\n",
	       rate, (unsigned long long)info.indexed, (unsigned long long)info.size, r0);
	TAP_CHECK(r0 >= 0.95);
	TAP_CHECK(info.indexed < info.size); /* the index was still behind */
	double t0 = now_s();
	TAP_EQ(wait_idx(g_hnsw), CM_OK);
	double t_catch = now_s() - t0;
	ix_fragment_info_get(g_hnsw, &info);
	TAP_EQ(info.indexed, glove.nb / info.batch * info.batch);
	TAP_EQ(info.index_vectors, info.indexed);
	double r1 = recall10(g_hnsw, &glove, glove.nq, &qps);
	printf("# after catch-up (%.1f s more): recall@10 %.4f over %zu queries, %.0f QPS (1 thread, k=10)\n",
	       t_catch, r1, glove.nq, qps);
	TAP_CHECK(r1 >= 0.95);
}

static void test_glove_ivf_recall(void)
{
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_IVF);
	s.nlist = 100;
	s.nprobe = 24;
	ix_fragment *f = open_frag("glove-ivf", &s, NULL);
	TAP_CHECK(f != NULL);
	if (!f)
		return;
	double rate = load_rows(f, &glove, glove.nb, 2000, 1);
	ix_fragment_info info;
	ix_fragment_info_get(f, &info);
	double qps, r0 = recall10(f, &glove, 200, &qps);
	printf("# glove-10k IVF100 nprobe24 (trained at %u vectors): ingest %.0f vectors/s; right after the "
	       "appends (indexed %llu, trained %d): recall@10 %.4f\n",
	       ix_spec_train_min(&s), rate, (unsigned long long)info.indexed, info.trained, r0);
	TAP_CHECK(r0 >= 0.95);
	TAP_EQ(wait_idx(f), CM_OK);
	ix_fragment_info_get(f, &info);
	TAP_EQ(info.trained, 1);
	TAP_CHECK(info.rebuilds >= 1); /* the training rebuild */
	double r1 = recall10(f, &glove, glove.nq, &qps);
	printf("# after catch-up: recall@10 %.4f, %.0f QPS\n", r1, qps);
	TAP_CHECK(r1 >= 0.95);
	/* quantized: IVF with SQ8 and with PQ, re-ranked exactly */
	for (int qz = IX_Q_SQ8; qz <= IX_Q_PQ; qz++) {
		ix_spec sq = s;
		sq.quantizer = qz;
		sq.pq_m = qz == IX_Q_PQ ? 25 : 0;
		ix_fragment *fq = open_frag(qz == IX_Q_SQ8 ? "glove-ivf-sq8" : "glove-ivf-pq", &sq, NULL);
		TAP_CHECK(fq != NULL);
		if (!fq)
			continue;
		load_rows(fq, &glove, glove.nb, 2000, 1);
		TAP_EQ(wait_idx(fq), CM_OK);
		ix_fragment_info_get(fq, &info);
		TAP_EQ(info.trained, 1);
		double rq = recall10(fq, &glove, 300, &qps);
		printf("# IVF100,%s nprobe24 (re-rank x4): recall@10 %.4f, %.0f QPS\n", qz == IX_Q_SQ8 ? "SQ8" : "PQ25",
		       rq, qps);
		TAP_CHECK(rq >= (qz == IX_Q_SQ8 ? 0.95 : 0.85));
		ix_fragment_close(fq);
	}
	ix_fragment_close(f);
}

static void test_glove_flat_recall(void)
{
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_FLAT);
	ix_options o;
	ix_options_default(&o);
	o.batch = 3000;           /* a large unindexed tail for the filter cases */
	o.exact_threshold = 100;  /* and selector searches on the index */
	o.exact_share = 0.001;
	o.persist_interval_ms = 0;
	g_flat = open_frag("glove-flat", &s, &o);
	TAP_CHECK(g_flat != NULL);
	if (!g_flat)
		return;
	load_rows(g_flat, &glove, glove.nb, 5000, 1);
	double qps, r = recall10(g_flat, &glove, glove.nq, &qps);
	printf("# glove-10k FLAT: recall@10 %.4f, %.0f QPS\n", r, qps);
	TAP_CHECK(r == 1.0);
}

static void test_sift_l2_recall(void)
{
	const char *names[] = {"sift-flat", "sift-hnsw"};
	int kinds[] = {IX_FLAT, IX_HNSW};
	for (int i = 0; i < 2; i++) {
		ix_spec s = spec_of((uint32_t)sift.d, IX_L2, kinds[i]);
		s.ef_search = 256; /* sift-5k's queries are hard for HNSW: 0.96 at 128 */
		ix_fragment *f = open_frag(names[i], &s, NULL);
		TAP_CHECK(f != NULL);
		if (!f)
			continue;
		double rate = load_rows(f, &sift, sift.nb, 500, 0);
		double qps, r0 = recall10(f, &sift, sift.nq, NULL);
		TAP_EQ(wait_idx(f), CM_OK);
		double r1 = recall10(f, &sift, sift.nq, &qps);
		printf("# sift-5k L2 %s: ingest %.0f vectors/s (chunks of 500), recall@10 %.4f at once, %.4f after "
		       "catch-up, %.0f QPS\n",
		       kinds[i] == IX_FLAT ? "FLAT" : "HNSW32 efSearch256", rate, r0, r1, qps);
		TAP_CHECK(kinds[i] == IX_FLAT ? r0 == 1.0 && r1 == 1.0 : r0 >= 0.95 && r1 >= 0.95);
		/* distances are squared L2 */
		cm_arena a;
		cm_arena_init(&a, 0);
		ix_query q = {.vec = sift.query, .dim = (uint32_t)sift.d, .k = 1, .include_vectors = 1};
		ix_result res;
		TAP_EQ(ix_fragment_search(f, &q, &a, &res, NULL, 0), CM_OK);
		double d2 = 0;
		for (size_t j = 0; j < sift.d; j++)
			d2 += ((double)res.hits[0].vec[j] - sift.query[j]) * ((double)res.hits[0].vec[j] - sift.query[j]);
		TAP_CHECK(fabs(d2 - res.hits[0].distance) <= 1e-4 * d2 + 1e-3);
		cm_arena_free(&a);
		ix_fragment_close(f);
	}
}

/* ---- filtered search ---- */

typedef int (*row_pred)(size_t row, const void *arg);

typedef struct fcase {
	const char *name;
	pbfilter pb;
	row_pred pred;
	const void *arg;
} fcase;

static int pred_first(size_t row, const void *arg)
{
	return strcmp(glove_first[row], arg) == 0;
}

static int pred_len_in(size_t row, const void *arg)
{
	const int *set = arg;
	int64_t l = glove_fields[3 * row + 1].v.u.i;
	for (int i = 1; i <= set[0]; i++)
		if (l == set[i])
			return 1;
	return 0;
}

static int pred_len_range(size_t row, const void *arg)
{
	const double *r = arg; /* gte, lt */
	double l = (double)glove_fields[3 * row + 1].v.u.i;
	return l >= r[0] && l < r[1];
}

static int pred_ab_long(size_t row, const void *arg)
{
	(void)arg;
	return (strcmp(glove_first[row], "a") == 0 || strcmp(glove_first[row], "b") == 0) &&
	       glove_fields[3 * row + 1].v.u.i > 6;
}

static int pred_word(size_t row, const void *arg)
{
	return strcmp(words[row], arg) == 0;
}

static int pred_none(size_t row, const void *arg)
{
	(void)row;
	(void)arg;
	return 0;
}

typedef struct bfhit {
	double d;
	size_t row;
} bfhit;

static int bf_cmp(const void *a, const void *b)
{
	const bfhit *x = a, *y = b;
	return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->row > y->row) - (x->row < y->row);
}

/* Brute force over the rows [0, nrows) satisfying pred: cosine distances in
 * double, sorted. Returns the number of matches; out holds them all. */
static size_t brute_force(const float *q, size_t nrows, row_pred pred, const void *arg, bfhit *out)
{
	double qn = 0, qd[128];
	size_t m = 0, d = glove.d;
	for (size_t j = 0; j < d; j++)
		qn += (double)q[j] * q[j];
	qn = sqrt(qn);
	for (size_t j = 0; j < d; j++)
		qd[j] = q[j] / qn;
	for (size_t r = 0; r < nrows; r++) {
		if (!pred(r, arg))
			continue;
		double dot = 0;
		for (size_t j = 0; j < d; j++)
			dot += qd[j] * glove.unit[r * d + j];
		out[m++] = (bfhit){1.0 - dot, r};
	}
	qsort(out, m, sizeof(*out), bf_cmp);
	return m;
}

/* Runs a filter over nq queries with top_k k. exact: results must equal the
 * brute force (same distances rank by rank, only matching rows); otherwise
 * recall against it must reach min_recall. Returns the match count. */
static double last_recall; /* of the last check_filter */

static size_t check_filter(ix_fragment *f, fcase *fc, uint32_t k, size_t nq, int exact, double min_recall)
{
	cm_arena a, fa;
	ix_filter flt;
	char err[ERR];
	bfhit *bf = malloc(glove.nb * sizeof(*bf));
	size_t nmatch = 0, hits = 0, want = 0, bad = 0;
	cm_arena_init(&a, 0);
	cm_arena_init(&fa, 0);
	int rc = ix_filter_from_pb(&fc->pb.f, &fa, &flt, err, sizeof(err));
	TAP_EQ(rc, CM_OK);
	for (size_t q = 0; q < nq && rc == CM_OK; q++) {
		const float *qv = glove.query + (q * 37 % glove.nq) * glove.d;
		nmatch = brute_force(qv, glove.nb, fc->pred, fc->arg, bf);
		ix_query query = {.vec = qv, .dim = (uint32_t)glove.d, .k = k, .filter = &flt};
		ix_result res;
		rc = ix_fragment_search(f, &query, &a, &res, err, sizeof(err));
		TAP_EQ(rc, CM_OK);
		if (rc)
			break;
		size_t expect = nmatch < k ? nmatch : k;
		if (res.n != expect) {
			printf("# filter %s query %zu: %zu hits, %zu expected (%zu match)\n", fc->name, q, res.n, expect,
			       nmatch);
			bad++;
		}
		for (size_t i = 0; i < res.n; i++) {
			size_t row = id_row(res.hits[i].id);
			if (row >= glove.nb || !fc->pred(row, fc->arg))
				bad++;
			if (i && res.hits[i].distance < res.hits[i - 1].distance)
				bad++;
			for (size_t j = 0; j < expect; j++)
				hits += bf[j].row == row;
			if (exact && i < expect && fabs(res.hits[i].distance - bf[i].d) > 2e-5) {
				printf("# filter %s query %zu rank %zu: distance %.7f, brute force %.7f\n", fc->name, q, i,
				       res.hits[i].distance, bf[i].d);
				bad++;
			}
		}
		want += expect;
		cm_arena_reset(&a);
	}
	double recall = want ? (double)hits / (double)want : 1.0;
	last_recall = recall;
	if (bad || recall < min_recall)
		printf("# filter %s: %zu problems, recall %.4f\n", fc->name, bad, recall);
	TAP_EQ(bad, 0);
	TAP_CHECK(exact ? hits == want : recall >= min_recall);
	cm_arena_free(&a);
	cm_arena_free(&fa);
	free(bf);
	return nmatch;
}

static int len_set[] = {3, 3, 5, 7};
static double len_range[] = {4, 6};
static char rare_word[64], few_first[8];

static size_t make_cases(fcase *fc)
{
	size_t n = 0;
	Muri__V1__Condition *c;
	/* first == "s" */
	fc[n].name = "first == s";
	pbf_init(&fc[n].pb);
	c = pbf_cond(&fc[n].pb, "first");
	c->eq__case = MURI__V1__CONDITION__EQ__EQ;
	c->eq = pbf_str(&fc[n].pb, "s");
	fc[n].pred = pred_first, fc[n].arg = "s", n++;
	/* len in {3, 5, 7} */
	fc[n].name = "len in {3,5,7}";
	pbf_init(&fc[n].pb);
	c = pbf_cond(&fc[n].pb, "len");
	pbf_int(&fc[n].pb, 3);
	pbf_int(&fc[n].pb, 5);
	pbf_int(&fc[n].pb, 7);
	pbf_in(&fc[n].pb, c, 0, 3);
	fc[n].pred = pred_len_in, fc[n].arg = len_set, n++;
	/* 4 <= len < 6, as doubles */
	fc[n].name = "4 <= len < 6";
	pbf_init(&fc[n].pb);
	c = pbf_cond(&fc[n].pb, "len");
	c->gte__case = MURI__V1__CONDITION__GTE__GTE, c->gte = 4;
	c->lt__case = MURI__V1__CONDITION__LT__LT, c->lt = 6;
	fc[n].pred = pred_len_range, fc[n].arg = len_range, n++;
	/* first in {a, b} and len > 6 */
	fc[n].name = "first in {a,b} and len > 6";
	pbf_init(&fc[n].pb);
	c = pbf_cond(&fc[n].pb, "first");
	pbf_str(&fc[n].pb, "a");
	pbf_str(&fc[n].pb, "b");
	pbf_in(&fc[n].pb, c, 0, 2);
	c = pbf_cond(&fc[n].pb, "len");
	c->gt__case = MURI__V1__CONDITION__GT__GT, c->gt = 6;
	fc[n].pred = pred_ab_long, fc[n].arg = NULL, n++;
	/* a first letter that fewer than k words share */
	fc[n].name = "first == (rare)";
	pbf_init(&fc[n].pb);
	c = pbf_cond(&fc[n].pb, "first");
	c->eq__case = MURI__V1__CONDITION__EQ__EQ;
	c->eq = pbf_str(&fc[n].pb, few_first);
	fc[n].pred = pred_first, fc[n].arg = few_first, n++;
	/* one word: 1 vector in 10,000 */
	fc[n].name = "word == (one)";
	pbf_init(&fc[n].pb);
	c = pbf_cond(&fc[n].pb, "word");
	c->eq__case = MURI__V1__CONDITION__EQ__EQ;
	c->eq = pbf_str(&fc[n].pb, rare_word);
	fc[n].pred = pred_word, fc[n].arg = rare_word, n++;
	/* nothing matches */
	fc[n].name = "len == 0";
	pbf_init(&fc[n].pb);
	c = pbf_cond(&fc[n].pb, "len");
	c->eq__case = MURI__V1__CONDITION__EQ__EQ;
	c->eq = pbf_int(&fc[n].pb, 0);
	fc[n].pred = pred_none, fc[n].arg = NULL, n++;
	return n;
}

static void pick_rare(void)
{
	/* the word of row 4321, and a first character shared by 2..9 words */
	snprintf(rare_word, sizeof(rare_word), "%s", words[4321]);
	for (size_t r = 0; r < glove.nb && !few_first[0]; r++) {
		size_t cnt = 0;
		for (size_t j = 0; j < glove.nb; j++)
			cnt += strcmp(glove_first[j], glove_first[r]) == 0;
		if (cnt >= 2 && cnt <= 9)
			snprintf(few_first, sizeof(few_first), "%s", glove_first[r]);
	}
}

static void test_filtered_search(void)
{
	static fcase fc[8];
	size_t n;
	if (!g_flat || !g_hnsw)
		return;
	pick_rare();
	n = make_cases(fc);
	size_t counts[8];
	ix_fragment_info info;
	ix_fragment_info_get(g_flat, &info);
	printf("# FLAT fragment with batch 3000: indexed %llu of %llu (the rest searched as a tail)\n",
	       (unsigned long long)info.indexed, (unsigned long long)info.size);
	for (size_t i = 0; i < n; i++) {
		counts[i] = check_filter(g_flat, &fc[i], 10, 30, 1, 1.0);
		printf("# filter %-28s matches %5zu of 10000: FLAT equals brute force\n", fc[i].name, counts[i]);
	}
	TAP_CHECK(counts[4] >= 2 && counts[4] < 10); /* fewer than k */
	TAP_EQ(counts[5], 1);                        /* one in ten thousand */
	TAP_EQ(counts[6], 0);
	check_filter(g_flat, &fc[0], 100, 10, 1, 1.0); /* larger k */
	/* HNSW: few matches go exact; many go through the graph with a selector */
	double t0 = now_s();
	size_t nq = 0;
	for (size_t i = 0; i < n; i++) {
		int exact = counts[i] <= 4096;
		check_filter(g_hnsw, &fc[i], 10, 30, exact, 0.95);
		nq += 30;
	}
	printf("# HNSW filtered search over these filters: %.0f QPS (including the brute-force oracle)\n",
	       (double)nq / (now_s() - t0));
	/* a broad filter on HNSW, through the graph with the selector */
	fcase broad = {.name = "len >= 2 (broad)"};
	static double broad_range[] = {2, 1e9};
	pbf_init(&broad.pb);
	Muri__V1__Condition *c = pbf_cond(&broad.pb, "len");
	c->gte__case = MURI__V1__CONDITION__GTE__GTE, c->gte = 2;
	broad.pred = pred_len_range, broad.arg = broad_range;
	size_t nb = check_filter(g_hnsw, &broad, 10, 100, 0, 0.95);
	printf("# filter %s matches %zu: HNSW with a selector reaches recall >= 0.95 of brute force\n", broad.name,
	       nb);
	check_filter(g_flat, &broad, 10, 30, 1, 1.0);
	/* and number equality matches ints: len == 3.0 */
	fcase num = {.name = "len == 3.0"};
	pbf_init(&num.pb);
	c = pbf_cond(&num.pb, "len");
	c->eq__case = MURI__V1__CONDITION__EQ__EQ;
	Muri__V1__Value *v = pbf_val(&num.pb);
	v->kind_case = MURI__V1__VALUE__KIND_NUMBER_VALUE;
	v->number_value = 3.0;
	c->eq = v;
	static int three[] = {1, 3};
	num.pred = pred_len_in, num.arg = three;
	check_filter(g_flat, &num, 10, 10, 1, 1.0);
	/* once the tail is indexed too */
	TAP_EQ(wait_idx(g_flat), CM_OK);
	for (size_t i = 0; i < n; i++)
		check_filter(g_flat, &fc[i], 10, 10, 1, 1.0);
}

/* ---- filtered recall at every selectivity ---- */

/* Each glove row gets b = a hash of the row mod 1000, so "b < T" admits a
 * share T / 1000 of the rows, spread over the whole space. */
static ix_field *sel_fields;

static int pred_bucket_below(size_t row, const void *arg)
{
	return sel_fields[row].v.u.i < *(const int64_t *)arg;
}

static void test_filtered_recall_by_selectivity(void)
{
	static const int64_t below[] = {1, 10, 50, 150, 500};
	static const char *names[] = {"b < 1 (0.1%)", "b < 10 (1%)", "b < 50 (5%)", "b < 150 (15%)",
				      "b < 500 (50%)"};
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_HNSW);
	s.hnsw_m = 32;
	s.ef_construction = 200;
	s.ef_search = 64;
	ix_options o;
	ix_options_default(&o);
	o.persist_interval_ms = 0;
	o.exact_threshold = 1; /* the graph path for every filter below */
	o.exact_share = 0.001;
	sel_fields = calloc(glove.nb, sizeof(*sel_fields));
	ix_record *recs = calloc(glove.nb, sizeof(*recs));
	ix_fragment *f = open_frag("glove-sel", &s, &o);
	TAP_CHECK(f && sel_fields && recs);
	if (!f || !sel_fields || !recs)
		goto out;
	for (size_t i = 0; i < glove.nb; i++) {
		uint64_t h = i * UINT64_C(0x9e3779b97f4a7c15);
		sel_fields[i] = (ix_field){.key = "b", .key_len = 1, .v = {.type = IX_V_INT}};
		sel_fields[i].v.u.i = (int64_t)((h ^ (h >> 29)) % 1000);
		glove_record(i, i, &recs[i]);
		recs[i].nfields = 1;
		recs[i].fields = &sel_fields[i];
	}
	char err[ERR];
	for (size_t i = 0; i < glove.nb; i += 1000)
		TAP_EQ(ix_fragment_append(f, recs + i, glove.nb - i < 1000 ? glove.nb - i : 1000, err, sizeof(err)),
		       CM_OK);
	TAP_EQ(wait_idx(f), CM_OK);
	/* efSearch 64, then 24 (a narrower beam); each filter under the
	 * default rules (a filter admitting few enough positions is scanned by
	 * position, exactly) and with the graph forced (a scan factor so low that
	 * no scan is ever cheaper, so the walk serves every selectivity); faiss's
	 * own filtered walk gave 0.57 at 5% and 0.78 at 15% with efSearch 24 */
	double scan0, post0;
	ix_faiss_filter_rules(&scan0, &post0);
	for (int pass = 0; pass < 2; pass++) {
		int ef_search = pass ? 24 : 64;
		if (pass) {
			ix_fragment_close(f);
			s.ef_search = (uint32_t)ef_search;
			f = open_frag("glove-sel", &s, &o);
			TAP_CHECK(f != NULL);
			if (!f)
				goto out;
			TAP_EQ(wait_idx(f), CM_OK);
		}
		double qps;
		double unfiltered = recall10(f, &glove, 1000, &qps);
		printf("# HNSW efSearch %d unfiltered: recall@10 %.4f\n", ef_search, unfiltered);
		for (int graph = 0; graph < 2; graph++) {
			ix_faiss_set_filter_rules(graph ? 1e-12 : scan0, post0);
			for (size_t t = 0; t < sizeof(below) / sizeof(below[0]); t++) {
				fcase fc = {.name = names[t], .pred = pred_bucket_below, .arg = &below[t]};
				pbf_init(&fc.pb);
				Muri__V1__Condition *c = pbf_cond(&fc.pb, "b");
				c->lt__case = MURI__V1__CONDITION__LT__LT;
				c->lt = (double)below[t];
				size_t n = check_filter(f, &fc, 10, 200, 0, 0.95);
				printf("# HNSW efSearch %d, filter %s matches %zu of %zu: recall@10 %.4f (%s)\n", ef_search,
				       names[t], n, glove.nb, last_recall,
				       graph ? "the graph walk forced" : "the default rules");
			}
		}
	}
	ix_faiss_set_filter_rules(scan0, post0);
out:
	ix_fragment_close(f);
	free(recs);
}

/* ---- updates, deletes, versions, rebuilds ---- */

#define UD_DIM 8
#define UD_N 400

static void ud_vec(uint64_t seed, float *v)
{
	for (int j = 0; j < UD_DIM; j++)
		v[j] = frand(&seed);
}

static ix_field ud_g[4] = {
	{.key = "g", .key_len = 1, .v = {.type = IX_V_INT, .u.i = 0}},
	{.key = "g", .key_len = 1, .v = {.type = IX_V_INT, .u.i = 1}},
	{.key = "g", .key_len = 1, .v = {.type = IX_V_INT, .u.i = 2}},
	{.key = "g", .key_len = 1, .v = {.type = IX_V_INT, .u.i = 3}},
};

/* A record of the updates case; metadata g = (row + version) % 4. */
static ix_record ud_rec(uint64_t seq, uint32_t row, int op, uint64_t version, const float *v)
{
	ix_record r = {.seq = seq, .epoch = 1, .op = op, .version = version};
	make_id(row, r.id);
	if (op != IX_OP_DELETE) {
		r.dim = UD_DIM;
		r.vec = v;
		r.nfields = 1;
		r.fields = &ud_g[(row + version) % 4];
	}
	return r;
}

/* Filtered search g == want over everything: each hit is live, carries g ==
 * want and its row's current version; the count is the live count with g ==
 * want. version[row] is the current version, 0 if deleted. */
static int ud_filter_ok(ix_fragment *f, int64_t want, const uint64_t *version, uint32_t nrows)
{
	pbfilter pb;
	ix_filter flt;
	cm_arena a;
	int ok = 1;
	size_t expect = 0;
	for (uint32_t r = 0; r < nrows; r++)
		expect += version[r] && (int64_t)((r + version[r]) % 4) == want;
	pbf_init(&pb);
	Muri__V1__Condition *c = pbf_cond(&pb, "g");
	c->eq__case = MURI__V1__CONDITION__EQ__EQ;
	c->eq = pbf_int(&pb, want);
	cm_arena_init(&a, 0);
	float q[UD_DIM] = {0};
	ix_query query = {.vec = q, .dim = UD_DIM, .k = 1000, .filter = &flt};
	ix_result res;
	if (ix_filter_from_pb(&pb.f, &a, &flt, NULL, 0) != CM_OK ||
	    ix_fragment_search(f, &query, &a, &res, NULL, 0) != CM_OK) {
		cm_arena_free(&a);
		return 0;
	}
	if (res.n != expect) {
		printf("# filter g == %lld: %zu hits, %zu live\n", (long long)want, res.n, expect);
		ok = 0;
	}
	for (size_t i = 0; i < res.n; i++) {
		uint32_t row = id_row(res.hits[i].id);
		if (row >= nrows || version[row] != res.hits[i].version || res.hits[i].nfields != 1 ||
		    res.hits[i].fields[0].v.u.i != want)
			ok = 0;
	}
	cm_arena_free(&a);
	return ok;
}

/* The top hit for v: its row, version and distance; -1 when none. */
static long top1(ix_fragment *f, const float *v, uint32_t k, uint32_t *row, uint64_t *version, float *dist,
		 const uint8_t *avoid_id, int *avoid_seen)
{
	cm_arena a;
	ix_result res;
	cm_arena_init(&a, 0);
	ix_query q = {.vec = v, .dim = UD_DIM, .k = k};
	long n = -1;
	if (ix_fragment_search(f, &q, &a, &res, NULL, 0) == CM_OK) {
		n = (long)res.n;
		if (res.n) {
			*row = id_row(res.hits[0].id);
			*version = res.hits[0].version;
			*dist = res.hits[0].distance;
		}
		if (avoid_id) {
			*avoid_seen = 0;
			for (size_t i = 0; i < res.n; i++)
				*avoid_seen |= memcmp(res.hits[i].id, avoid_id, 16) == 0;
		}
	}
	cm_arena_free(&a);
	return n;
}

static void test_updates_and_deletes(void)
{
	ix_spec s = spec_of(UD_DIM, IX_L2, IX_HNSW);
	s.hnsw_m = 8;
	s.ef_search = 32;
	ix_options o;
	ix_options_default(&o);
	o.batch = 16;
	ix_fragment *f = open_frag("updates", &s, &o);
	TAP_CHECK(f != NULL);
	if (!f)
		return;
	static float vecs[3 * UD_N][UD_DIM];
	static uint64_t version[UD_N + 5];
	ix_record recs[UD_N];
	uint64_t seq = 0;
	char err[ERR];
	for (uint32_t i = 0; i < UD_N; i++) {
		ud_vec(i, vecs[i]);
		recs[i] = ud_rec(seq++, i, IX_OP_INSERT, 1, vecs[i]);
		version[i] = 1;
	}
	TAP_EQ(ix_fragment_append(f, recs, UD_N, err, sizeof(err)), CM_OK);
	TAP_EQ(wait_idx(f), CM_OK);
	/* five new rows and their updates, all in the unindexed tail (batch
	 * [400, 416) is incomplete): only the updated versions match */
	for (uint32_t i = 0; i < 5; i++) {
		ud_vec(2000 + i, vecs[2 * UD_N + i]);
		recs[i] = ud_rec(seq + i, UD_N + i, IX_OP_INSERT, 1, vecs[2 * UD_N + i]);
		recs[5 + i] = ud_rec(seq + 5 + i, UD_N + i, IX_OP_UPDATE, 3, vecs[2 * UD_N + i]);
		version[UD_N + i] = 3;
	}
	seq += 10;
	TAP_EQ(ix_fragment_append(f, recs, 10, err, sizeof(err)), CM_OK);
	for (int g = 0; g < 4; g++)
		TAP_CHECK(ud_filter_ok(f, g, version, UD_N + 5));
	/* update rows 0..49 with new vectors: visible at once, old vectors gone */
	for (uint32_t i = 0; i < 50; i++) {
		ud_vec(1000 + i, vecs[UD_N + i]);
		recs[i] = ud_rec(seq++, i, IX_OP_UPDATE, 2, vecs[UD_N + i]);
		version[i] = 2;
	}
	TAP_EQ(ix_fragment_append(f, recs, 50, err, sizeof(err)), CM_OK);
	for (int g = 0; g < 4; g++) /* the old versions' metadata rows still exist */
		TAP_CHECK(ud_filter_ok(f, g, version, UD_N + 5));
	size_t bad = 0;
	for (uint32_t i = 0; i < 50; i++) {
		uint32_t row;
		uint64_t ver;
		float d;
		int seen;
		uint8_t id[16];
		make_id(i, id);
		if (top1(f, vecs[UD_N + i], 5, &row, &ver, &d, NULL, NULL) < 1 || row != i || ver != 2 || d > 1e-6)
			bad++;
		/* searching the old vector may find row i only at its new distance */
		if (top1(f, vecs[i], 1, &row, &ver, &d, id, &seen) < 1 || (row == i && d < 1e-6))
			bad++;
	}
	TAP_EQ(bad, 0);
	/* an older version loses; an equal version wins (the later record) */
	float stale[UD_DIM] = {9, 9, 9, 9, 9, 9, 9, 9}, tie[UD_DIM] = {-9, -9, -9, -9, -9, -9, -9, -9};
	recs[0] = ud_rec(seq++, 0, IX_OP_UPDATE, 1, stale);
	recs[1] = ud_rec(seq++, 1, IX_OP_UPDATE, 2, tie);
	TAP_EQ(ix_fragment_append(f, recs, 2, err, sizeof(err)), CM_OK);
	uint32_t row;
	uint64_t ver;
	float d;
	TAP_EQ(top1(f, stale, 1, &row, &ver, &d, NULL, NULL), 1);
	TAP_CHECK(!(row == 0 && d < 1e-3));
	TAP_EQ(top1(f, tie, 1, &row, &ver, &d, NULL, NULL), 1);
	TAP_EQ(row, 1);
	TAP_CHECK(d < 1e-6);
	cm_arena a;
	cm_arena_init(&a, 0);
	uint8_t ids[2][16];
	make_id(0, ids[0]);
	make_id(1, ids[1]);
	ix_hit *hits;
	size_t nh;
	TAP_EQ(ix_fragment_get(f, (const uint8_t(*)[16])ids, 2, 1, &a, &hits, &nh, err, sizeof(err)), CM_OK);
	TAP_EQ(nh, 2);
	if (nh == 2) {
		TAP_EQ(hits[0].version, 2);
		TAP_CHECK(memcmp(hits[0].vec, vecs[UD_N], sizeof(vecs[0])) == 0);
		TAP_EQ(hits[1].seq, seq - 1);
	}
	/* delete rows 100..199 (a quarter): never returned, at once and later */
	for (uint32_t i = 0; i < 100; i++) {
		recs[i] = ud_rec(seq++, 100 + i, IX_OP_DELETE, 5, NULL);
		version[100 + i] = 0;
	}
	TAP_EQ(ix_fragment_append(f, recs, 100, err, sizeof(err)), CM_OK);
	ix_fragment_info info;
	for (int round = 0; round < 2; round++) {
		for (int g = 0; g < 4; g++)
			TAP_CHECK(ud_filter_ok(f, g, version, UD_N + 5));
		bad = 0;
		for (uint32_t i = 100; i < 200; i++) {
			uint8_t id[16];
			int seen = 0;
			make_id(i, id);
			if (top1(f, vecs[i], 20, &row, &ver, &d, id, &seen) < 1 || seen)
				bad++;
		}
		TAP_EQ(bad, 0);
		make_id(150, ids[0]);
		TAP_EQ(ix_fragment_get(f, (const uint8_t(*)[16])ids, 1, 0, &a, &hits, &nh, err, sizeof(err)), CM_OK);
		TAP_EQ(nh, 0);
		/* all live vectors, and only those */
		ix_query q = {.vec = vecs[0], .dim = UD_DIM, .k = 1000};
		ix_result res;
		TAP_EQ(ix_fragment_search(f, &q, &a, &res, NULL, 0), CM_OK);
		TAP_EQ(res.n, UD_N + 5 - 100);
		ix_fragment_info_get(f, &info);
		TAP_EQ(info.live, UD_N + 5 - 100);
		TAP_EQ(wait_idx(f), CM_OK);
	}
	ix_fragment_info_get(f, &info);
	printf("# after 100 deletes of 400 (+51 updates): %llu rebuilds, %llu vectors indexed, %llu dead\n",
	       (unsigned long long)info.rebuilds, (unsigned long long)info.index_vectors,
	       (unsigned long long)info.index_dead);
	TAP_CHECK(info.rebuilds >= 1);
	TAP_CHECK(info.index_dead * 5 <= info.index_vectors);
	/* a delete with an older version loses too; re-insert with a newer one */
	recs[0] = ud_rec(seq++, 150, IX_OP_INSERT, 4, vecs[150]);
	recs[1] = ud_rec(seq++, 151, IX_OP_INSERT, 6, vecs[151]);
	recs[2] = ud_rec(seq++, 2, IX_OP_DELETE, 0, NULL);
	TAP_EQ(ix_fragment_append(f, recs, 3, err, sizeof(err)), CM_OK);
	TAP_EQ(top1(f, vecs[150], 1, &row, &ver, &d, NULL, NULL), 1);
	TAP_CHECK(!(row == 150 && d < 1e-6));
	TAP_EQ(top1(f, vecs[151], 1, &row, &ver, &d, NULL, NULL), 1);
	TAP_EQ(row, 151);
	TAP_EQ(ver, 6);
	TAP_EQ(top1(f, vecs[UD_N + 2], 1, &row, &ver, &d, NULL, NULL), 1);
	TAP_EQ(row, 2); /* row 2 (version 2) survived the delete of version 0 */
	TAP_EQ(ver, 2);
	/* errors name what was wrong */
	recs[0] = ud_rec(seq + 1, 3, IX_OP_INSERT, 1, vecs[3]);
	TAP_EQ(ix_fragment_append(f, recs, 1, err, sizeof(err)), CM_ERR_RANGE);
	TAP_CHECK(strstr(err, "records[0].seq") != NULL);
	recs[0] = ud_rec(seq, 3, IX_OP_INSERT, 1, vecs[3]);
	recs[0].dim = 7;
	TAP_EQ(ix_fragment_append(f, recs, 1, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "records[0].vector: 7 values, the fragment's dimension is 8");
	recs[0] = ud_rec(seq, 3, IX_OP_INSERT, 1, vecs[3]);
	recs[0].epoch = 0;
	TAP_EQ(ix_fragment_append(f, recs, 1, err, sizeof(err)), CM_ERR_STATE);
	ix_query q = {.vec = vecs[0], .dim = UD_DIM, .k = 1001};
	ix_result res;
	TAP_EQ(ix_fragment_search(f, &q, &a, &res, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "top_k: 1001 not in 1..1000");
	q.k = 0;
	TAP_EQ(ix_fragment_search(f, &q, &a, &res, err, sizeof(err)), CM_ERR_INVALID);
	q.k = 1;
	q.dim = 3;
	TAP_EQ(ix_fragment_search(f, &q, &a, &res, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "query.vector: 3 values, the dimension is 8");
	TAP_EQ(ix_fragment_size(f), seq);
	cm_arena_free(&a);
	ix_fragment_close(f);
}

/* ---- restart ---- */

typedef struct answers {
	size_t n[64];
	uint64_t seq[64][10];
	float d[64][10];
} answers;

static void collect(ix_fragment *f, answers *ans, size_t nq)
{
	cm_arena a;
	cm_arena_init(&a, 0);
	memset(ans, 0, sizeof(*ans));
	for (size_t q = 0; q < nq; q++) {
		ix_query query = {.vec = glove.query + q * glove.d, .dim = (uint32_t)glove.d, .k = 10};
		ix_result res;
		if (ix_fragment_search(f, &query, &a, &res, NULL, 0) == CM_OK) {
			ans->n[q] = res.n;
			for (size_t i = 0; i < res.n; i++) {
				ans->seq[q][i] = res.hits[i].seq;
				ans->d[q][i] = res.hits[i].distance;
			}
		}
		cm_arena_reset(&a);
	}
	cm_arena_free(&a);
}

static int same_answers(const answers *a, const answers *b, size_t nq)
{
	for (size_t q = 0; q < nq; q++) {
		if (a->n[q] != b->n[q])
			return 0;
		for (size_t i = 0; i < a->n[q]; i++)
			if (a->seq[q][i] != b->seq[q][i] || memcmp(&a->d[q][i], &b->d[q][i], sizeof(float)) != 0)
				return 0;
	}
	return 1;
}

static void test_restart(void)
{
	static answers before, after;
	char dir[400], err[ERR];
	uint8_t root[32], root2[32];
	if (!g_hnsw)
		return;
	collect(g_hnsw, &before, 64);
	uint64_t size = ix_fragment_size(g_hnsw);
	TAP_EQ(ix_fragment_root(g_hnsw, size, root), CM_OK);
	ix_fragment_close(g_hnsw);
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_HNSW);
	s.hnsw_m = 32;
	s.ef_construction = 200;
	s.ef_search = 64;
	double t0 = now_s();
	g_hnsw = open_frag("glove-hnsw", NULL, NULL); /* no schema: the stored one */
	double t_open = now_s() - t0;
	TAP_CHECK(g_hnsw != NULL);
	if (!g_hnsw)
		return;
	ix_fragment_info info;
	ix_fragment_info_get(g_hnsw, &info);
	printf("# reopened 10k records with the saved index in %.3f s (indexed %llu at open)\n", t_open,
	       (unsigned long long)info.indexed);
	TAP_EQ(info.indexed, glove.nb / info.batch * info.batch); /* loaded, not rebuilt */
	TAP_EQ(info.spec.ef_search, 64);
	TAP_EQ(ix_fragment_root(g_hnsw, size, root2), CM_OK);
	TAP_CHECK(memcmp(root, root2, 32) == 0);
	collect(g_hnsw, &after, 64);
	TAP_CHECK(same_answers(&before, &after, 64));
	/* a different schema is refused, naming the field */
	ix_fragment *other = NULL;
	frag_dir(dir, sizeof(dir), "glove-hnsw");
	ix_spec wrong = s;
	wrong.dim = 64;
	TAP_EQ(ix_fragment_open(dir, &wrong, NULL, &other, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "schema.dimension: 64 differs from the stored 100");
	/* without its index file the fragment replays the log into the same index */
	ix_fragment_close(g_hnsw);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -f %s/index-*", dir);
	TAP_EQ(system(cmd), 0);
	g_hnsw = open_frag("glove-hnsw", &s, NULL);
	TAP_CHECK(g_hnsw != NULL);
	if (!g_hnsw)
		return;
	ix_fragment_info_get(g_hnsw, &info);
	TAP_EQ(info.indexed, 0);
	collect(g_hnsw, &after, 64); /* exact over the whole log while it rebuilds */
	TAP_EQ(wait_idx(g_hnsw), CM_OK);
	collect(g_hnsw, &after, 64);
	TAP_CHECK(same_answers(&before, &after, 64));
	/* an unknown directory without a schema */
	frag_dir(dir, sizeof(dir), "nothing-here");
	TAP_EQ(ix_fragment_open(dir, NULL, NULL, &other, err, sizeof(err)), CM_ERR_NOTFOUND);
}

/* ---- determinism ---- */

#define DET_ROWS 3000

/* Record seq of the determinism and crash workloads (glove rows, updates and
 * deletes mixed in). */
static ix_record det_rec(uint64_t seq)
{
	ix_record r;
	uint32_t row = (uint32_t)(seq % glove.nb);
	if (seq % 10 == 9 && seq >= 200) { /* update an earlier row with another vector */
		glove_record((seq * 7) % glove.nb, seq, &r);
		make_id((uint32_t)((seq - 105) % glove.nb), r.id);
		r.op = IX_OP_UPDATE;
		r.version = 2 + seq;
	} else if (seq % 10 == 7 && seq >= 400) {
		memset(&r, 0, sizeof(r));
		r.seq = seq;
		r.epoch = 1;
		r.op = IX_OP_DELETE;
		make_id((uint32_t)((seq - 306) % glove.nb), r.id);
		r.version = 2 + seq;
	} else {
		glove_record(row, seq, &r);
		r.version = 1 + seq;
	}
	return r;
}

static int append_range(ix_fragment *f, uint64_t from, uint64_t to)
{
	ix_record recs[256];
	char err[ERR];
	while (from < to) {
		size_t m = to - from < 256 ? (size_t)(to - from) : 256;
		for (size_t i = 0; i < m; i++)
			recs[i] = det_rec(from + i);
		int rc = ix_fragment_append(f, recs, m, err, sizeof(err));
		if (rc != CM_OK) {
			printf("# append %llu: %s\n", (unsigned long long)from, err);
			return rc;
		}
		from += m;
	}
	return CM_OK;
}

static void test_determinism(void)
{
	static answers a1, a2, a3;
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_HNSW);
	s.hnsw_m = 16;
	s.ef_construction = 64;
	s.ef_search = 32;
	ix_options o;
	ix_options_default(&o);
	o.batch = 64;
	o.tombstone_share = 0.15;
	ix_fragment *f1 = open_frag("det1", &s, &o), *f2 = open_frag("det2", &s, &o), *f3 = open_frag("det3", &s, &o);
	TAP_CHECK(f1 && f2 && f3);
	if (!f1 || !f2 || !f3)
		goto out;
	/* f1: one big chunk at a time; f2: random small chunks; f3: random
	 * chunks with a restart in the middle */
	TAP_EQ(append_range(f1, 0, DET_ROWS), CM_OK);
	uint64_t rs = 99, pos = 0;
	while (pos < DET_ROWS) {
		uint64_t m = 1 + splitmix(&rs) % 37;
		if (pos + m > DET_ROWS)
			m = DET_ROWS - pos;
		TAP_EQ(append_range(f2, pos, pos + m), CM_OK);
		TAP_EQ(append_range(f3, pos, pos + m), CM_OK);
		pos += m;
		if (pos > DET_ROWS / 2 && pos - m <= DET_ROWS / 2) {
			TAP_EQ(ix_fragment_save_index(f3, NULL, 0), CM_OK);
			ix_fragment_close(f3);
			f3 = open_frag("det3", NULL, &o);
			if (!f3)
				goto out;
		}
	}
	TAP_EQ(wait_idx(f1), CM_OK);
	TAP_EQ(wait_idx(f2), CM_OK);
	TAP_EQ(wait_idx(f3), CM_OK);
	collect(f1, &a1, 64);
	collect(f2, &a2, 64);
	collect(f3, &a3, 64);
	ix_fragment_info i1, i3;
	ix_fragment_info_get(f1, &i1);
	ix_fragment_info_get(f3, &i3);
	printf("# determinism: %llu records with updates and deletes, %llu rebuilds, %llu vectors indexed\n",
	       (unsigned long long)i1.size, (unsigned long long)i1.rebuilds, (unsigned long long)i1.index_vectors);
	TAP_CHECK(i1.rebuilds >= 1);
	TAP_EQ(i1.index_vectors, i3.index_vectors);
	TAP_CHECK(same_answers(&a1, &a2, 64));
	TAP_CHECK(same_answers(&a1, &a3, 64));
	uint8_t r1[32], r2[32];
	TAP_EQ(ix_fragment_root(f1, DET_ROWS, r1), CM_OK);
	TAP_EQ(ix_fragment_root(f3, DET_ROWS, r2), CM_OK);
	TAP_CHECK(memcmp(r1, r2, 32) == 0);
out:
	ix_fragment_close(f1);
	ix_fragment_close(f2);
	ix_fragment_close(f3);
}

/* What shapes the index comes from the schema (IndexSpec fields 9-16) and
 * is stored with the fragment: two nodes with different settings build the
 * same index and give the same answers, and a reopen under yet other
 * settings keeps the stored ones. */
static void test_shape_from_schema(void)
{
	static answers a1, a2;
	char err[256];
	Muri__V1__IndexSpec pb = MURI__V1__INDEX_SPEC__INIT;
	ix_options o;
	ix_options_default(&o);
	pb.rerank = 65;
	TAP_EQ(ix_options_shape_from_pb(&pb, &o, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "schema.index.rerank: 65 is out of range 1..64");
	pb.rerank = 9;
	pb.train_min = 500;
	pb.train_max = 400;
	TAP_EQ(ix_options_shape_from_pb(&pb, &o, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "schema.index.train_max: 400 is below train_min 500");
	pb.train_min = pb.train_max = 0;
	pb.index_batch = 48;
	pb.seed = 42;
	pb.tombstone_permille = 150;
	pb.exact_threshold = 7;
	pb.exact_permille = 30;

	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_HNSW);
	s.hnsw_m = 16;
	s.ef_construction = 64;
	s.ef_search = 32;
	ix_options n1, n2, n3;
	ix_options_default(&n1);
	ix_options_default(&n2);
	n2.batch = 512;
	n2.seed = 7;
	n2.tombstone_share = 0.5;
	n2.exact_threshold = 99999;
	n2.rerank = 2;
	n3 = n2;
	TAP_EQ(ix_options_shape_from_pb(&pb, &n1, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_options_shape_from_pb(&pb, &n2, err, sizeof(err)), CM_OK);
	ix_fragment *f1 = open_frag("shape1", &s, &n1), *f2 = open_frag("shape2", &s, &n2);
	TAP_CHECK(f1 && f2);
	if (!f1 || !f2)
		goto out;
	TAP_EQ(append_range(f1, 0, DET_ROWS), CM_OK);
	TAP_EQ(append_range(f2, 0, DET_ROWS), CM_OK);
	TAP_EQ(wait_idx(f1), CM_OK);
	TAP_EQ(wait_idx(f2), CM_OK);
	collect(f1, &a1, 64);
	collect(f2, &a2, 64);
	TAP_CHECK(same_answers(&a1, &a2, 64));
	ix_fragment_close(f2);
	f2 = open_frag("shape2", NULL, &n3); /* reopened under other settings */
	if (!f2)
		goto out;
	Muri__V1__IndexSpec got = MURI__V1__INDEX_SPEC__INIT;
	ix_fragment_shape_to_pb(f2, &got);
	TAP_EQ(got.index_batch, 48);
	TAP_EQ(got.seed, 42);
	TAP_EQ(got.tombstone_permille, 150);
	TAP_EQ(got.exact_threshold, 7);
	TAP_EQ(got.exact_permille, 30);
	TAP_EQ(got.rerank, 9);
	ix_fragment_info i2;
	ix_fragment_info_get(f2, &i2);
	TAP_EQ(i2.batch, 48);
	collect(f2, &a2, 64);
	TAP_CHECK(same_answers(&a1, &a2, 64));
out:
	ix_fragment_close(f1);
	ix_fragment_close(f2);
}

/* ---- truncation ---- */

/* 1 if both fragments return the same current versions for the ids of
 * det_rec(from..to). */
static int same_gets(ix_fragment *f, ix_fragment *g, uint64_t from, uint64_t to)
{
	static uint8_t ids[1000][16];
	cm_arena a;
	ix_hit *hf, *hg;
	size_t nf, ng, n = 0;
	int same = 0;
	for (uint64_t s = from; s < to && n < 1000; s++)
		memcpy(ids[n++], det_rec(s).id, 16);
	cm_arena_init(&a, 0);
	if (ix_fragment_get(f, (const uint8_t(*)[16])ids, n, 1, &a, &hf, &nf, NULL, 0) == CM_OK &&
	    ix_fragment_get(g, (const uint8_t(*)[16])ids, n, 1, &a, &hg, &ng, NULL, 0) == CM_OK && nf == ng) {
		same = 1;
		for (size_t i = 0; i < nf; i++)
			same &= memcmp(hf[i].id, hg[i].id, 16) == 0 && hf[i].version == hg[i].version &&
				hf[i].seq == hg[i].seq && hf[i].dim == hg[i].dim &&
				memcmp(hf[i].vec, hg[i].vec, hf[i].dim * sizeof(float)) == 0;
	}
	if (!same)
		printf("# gets of det_rec(%llu..%llu) differ: %zu and %zu found\n", (unsigned long long)from,
		       (unsigned long long)to, nf, ng);
	cm_arena_free(&a);
	return same;
}

/* 1 if a filtered search (len in {3, 5, 7}) answers alike on both. */
static int same_filtered(ix_fragment *f, ix_fragment *g)
{
	pbfilter pb;
	ix_filter flt;
	cm_arena a;
	int same = 1;
	pbf_init(&pb);
	Muri__V1__Condition *c = pbf_cond(&pb, "len");
	pbf_int(&pb, 3);
	pbf_int(&pb, 5);
	pbf_int(&pb, 7);
	pbf_in(&pb, c, 0, 3);
	cm_arena_init(&a, 0);
	if (ix_filter_from_pb(&pb.f, &a, &flt, NULL, 0) != CM_OK)
		return 0;
	for (size_t q = 0; q < 20 && same; q++) {
		ix_query query = {.vec = glove.query + q * glove.d, .dim = (uint32_t)glove.d, .k = 20, .filter = &flt};
		ix_result rf, rg;
		same = ix_fragment_search(f, &query, &a, &rf, NULL, 0) == CM_OK &&
		       ix_fragment_search(g, &query, &a, &rg, NULL, 0) == CM_OK && rf.n == rg.n;
		for (size_t i = 0; same && i < rf.n; i++)
			same = rf.hits[i].seq == rg.hits[i].seq && rf.hits[i].distance == rg.hits[i].distance;
	}
	cm_arena_free(&a);
	return same;
}

static void test_truncate(void)
{
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_HNSW);
	s.hnsw_m = 16;
	s.ef_construction = 64;
	ix_options o;
	ix_options_default(&o);
	o.batch = 32;
	ix_fragment *f = open_frag("trunc", &s, &o), *g = open_frag("trunc-fresh", &s, &o);
	char err[ERR];
	static answers a1, a2;
	TAP_CHECK(f && g);
	if (!f || !g)
		goto out;
	TAP_EQ(append_range(f, 0, 600), CM_OK);
	uint8_t r400[32], r[32];
	TAP_EQ(ix_fragment_root(f, 400, r400), CM_OK);
	TAP_EQ(ix_fragment_set_floor(f, 300), CM_OK);
	TAP_EQ(ix_fragment_set_floor(f, 200), CM_OK); /* never lowers */
	TAP_EQ(ix_fragment_set_floor(f, 601), CM_ERR_RANGE);
	TAP_EQ(ix_fragment_truncate(f, 299, err, sizeof(err)), CM_ERR_STATE);
	TAP_STREQ(err, "size: 299 is below the floor 300 (a committed root)");
	TAP_EQ(ix_fragment_truncate(f, 601, err, sizeof(err)), CM_ERR_RANGE);
	TAP_EQ(wait_idx(f), CM_OK); /* the index covers beyond the cut */
	TAP_EQ(ix_fragment_truncate(f, 400, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_fragment_size(f), 400);
	TAP_EQ(ix_fragment_root(f, 400, r), CM_OK);
	TAP_CHECK(memcmp(r, r400, 32) == 0);
	TAP_EQ(ix_fragment_root(f, 401, r), CM_ERR_RANGE);
	/* re-append a different suffix: epoch 2, other rows */
	ix_record recs[200];
	for (int i = 0; i < 200; i++) {
		recs[i] = det_rec(400 + (uint64_t)i + 5000);
		recs[i].seq = 400 + (uint64_t)i;
		recs[i].epoch = 2;
	}
	TAP_EQ(ix_fragment_append(f, recs, 200, err, sizeof(err)), CM_OK);
	TAP_EQ(append_range(g, 0, 400), CM_OK);
	TAP_EQ(ix_fragment_append(g, recs, 200, err, sizeof(err)), CM_OK);
	size_t bad = 0;
	for (uint64_t n = 0; n <= 600; n += 7) {
		uint8_t x[32], y[32];
		if (ix_fragment_root(f, n, x) != CM_OK || ix_fragment_root(g, n, y) != CM_OK || memcmp(x, y, 32))
			bad++;
	}
	TAP_EQ(bad, 0);
	cm_merkle_path p;
	TAP_EQ(ix_fragment_consistency(f, 300, 600, &p), CM_OK);
	uint8_t old[32], cur[32];
	ix_fragment_root(f, 300, old);
	ix_fragment_root(f, 600, cur);
	TAP_EQ(cm_merkle_verify_consistency(&cm_merkle_blake2b, 300, 600, old, cur, p.hash, p.len), CM_OK);
	TAP_EQ(ix_fragment_inclusion(f, 450, 600, &p), CM_OK);
	cm_arena a;
	cm_arena_init(&a, 0);
	uint8_t *leaf;
	size_t len;
	uint8_t lh[32];
	TAP_EQ(ix_fragment_leaf(f, 450, &a, &leaf, &len), CM_OK);
	ix_record_leaf_hash(leaf, len, lh);
	TAP_EQ(cm_merkle_verify_inclusion(&cm_merkle_blake2b, lh, 450, 600, p.hash, p.len, cur), CM_OK);
	ix_record *rr;
	size_t nr;
	TAP_EQ(ix_fragment_read(f, 590, 50, &a, &rr, &nr), CM_OK);
	TAP_EQ(nr, 10);
	TAP_EQ(rr[0].seq, 590);
	TAP_EQ(rr[0].epoch, 2);
	/* the state is the fresh log's state: same answers and gets */
	TAP_EQ(wait_idx(f), CM_OK);
	TAP_EQ(wait_idx(g), CM_OK);
	collect(f, &a1, 64);
	collect(g, &a2, 64);
	TAP_CHECK(same_answers(&a1, &a2, 64));
	ix_fragment_info fi, gi;
	ix_fragment_info_get(f, &fi);
	ix_fragment_info_get(g, &gi);
	TAP_EQ(fi.live, gi.live);
	TAP_EQ(fi.last_epoch, 2);
	/* gets of every id either suffix touched, and filtered searches */
	TAP_CHECK(same_gets(f, g, 300, 600) && same_gets(f, g, 5700, 5900));
	TAP_CHECK(same_filtered(f, g));
	/* truncating within the unindexed tail keeps the index */
	TAP_EQ(ix_fragment_set_floor(f, 590), CM_OK);
	TAP_EQ(ix_fragment_truncate(f, 590, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_fragment_truncate(g, 590, err, sizeof(err)), CM_OK);
	collect(f, &a1, 64);
	collect(g, &a2, 64);
	TAP_CHECK(same_answers(&a1, &a2, 64));
	cm_arena_free(&a);
out:
	ix_fragment_close(f);
	ix_fragment_close(g);
}

/* ---- kill -9 ---- */

#define KILL_MAX 20000

/* The child: appends det_rec records in random chunks until killed,
 * reporting (size, root) after each acknowledged append on fd. */
static int child_main(const char *dir, int fd, uint64_t seed)
{
	ix_fragment *f = NULL;
	char err[ERR];
	ix_options o;
	ix_options_default(&o);
	o.persist_interval_ms = 150;
	if (ix_fragment_open(dir, NULL, &o, &f, err, sizeof(err)) != CM_OK) {
		fprintf(stderr, "child: %s\n", err);
		return 2;
	}
	for (;;) {
		uint64_t size = ix_fragment_size(f);
		if (size >= KILL_MAX) {
			usleep(10000);
			continue;
		}
		uint64_t m = 1 + splitmix(&seed) % 40;
		if (size + m > KILL_MAX)
			m = KILL_MAX - size;
		if (append_range(f, size, size + m) != CM_OK)
			return 3;
		uint8_t msg[8 + 32];
		uint64_t n = size + m;
		memcpy(msg, &n, 8);
		ix_fragment_root(f, n, msg + 8);
		if (write(fd, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			return 4;
		usleep(1000);
	}
}

static void test_kill9(void)
{
	char dir[400], err[ERR];
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_HNSW);
	s.hnsw_m = 16;
	s.ef_construction = 40;
	s.ef_search = 32;
	ix_options o;
	ix_options_default(&o);
	o.batch = 64;
	frag_dir(dir, sizeof(dir), "crash");
	ix_fragment *f = open_frag("crash", &s, &o), *ref = open_frag("crash-ref", &s, &o);
	TAP_CHECK(f && ref);
	if (!f || !ref) {
		ix_fragment_close(f);
		ix_fragment_close(ref);
		return;
	}
	ix_fragment_close(f);
	uint64_t seed = 4242, ref_size = 0;
	static uint64_t acked_size[200000];
	static uint8_t acked_root[200000][32];
	static answers ra, fa;
	size_t nacked = 0, rounds = 0, lost = 0, wrong_roots = 0, diff_answers = 0;
	/* six rounds; once the log holds KILL_MAX records the child idles and
	 * is killed idle */
	for (int round = 0; round < 6; round++) {
		int pfd[2];
		if (pipe(pfd) != 0)
			break;
		char fdtxt[16], seedtxt[32];
		snprintf(fdtxt, sizeof(fdtxt), "%d", pfd[1]);
		snprintf(seedtxt, sizeof(seedtxt), "%llu", (unsigned long long)splitmix(&seed));
		pid_t pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			execl(self_exe, self_exe, "--child", dir, fdtxt, seedtxt, (char *)NULL);
			_exit(127);
		}
		close(pfd[1]);
		/* let it write for a random while, then kill -9 */
		int ms = 250 + (int)(splitmix(&seed) % 600);
		usleep((useconds_t)ms * 1000);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		TAP_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		size_t before = nacked;
		uint8_t msg[40];
		while (read(pfd[0], msg, sizeof(msg)) == (ssize_t)sizeof(msg) && nacked < 200000) {
			memcpy(&acked_size[nacked], msg, 8);
			memcpy(acked_root[nacked], msg + 8, 32);
			nacked++;
		}
		close(pfd[0]);
		rounds += nacked > before;
		/* reopen: every acknowledged record, the same roots, the same answers */
		f = NULL;
		if (ix_fragment_open(dir, NULL, &o, &f, err, sizeof(err)) != CM_OK) {
			printf("# reopen after kill: %s\n", err);
			TAP_CHECK(0);
			break;
		}
		uint64_t size = ix_fragment_size(f);
		uint64_t last = nacked ? acked_size[nacked - 1] : 0;
		if (size < last)
			lost++;
		for (size_t i = 0; i < nacked; i++) {
			uint8_t r[32];
			if (ix_fragment_root(f, acked_size[i], r) != CM_OK || memcmp(r, acked_root[i], 32) != 0)
				wrong_roots++;
		}
		/* the log holds exactly the records the workload wrote */
		cm_arena a;
		cm_arena_init(&a, 0);
		ix_record *recs;
		size_t nr;
		size_t bad_recs = 0;
		for (uint64_t from = 0; from < size; from += 2000) {
			if (ix_fragment_read(f, from, 2000, &a, &recs, &nr) != CM_OK) {
				bad_recs++;
				break;
			}
			for (size_t i = 0; i < nr; i++) {
				ix_record want = det_rec(from + i);
				size_t n1 = ix_record_encoded_size(&want), n2 = ix_record_encoded_size(&recs[i]);
				uint8_t *b1 = malloc(n1), *b2 = malloc(n2);
				ix_record_encode(&want, b1);
				ix_record_encode(&recs[i], b2);
				bad_recs += n1 != n2 || memcmp(b1, b2, n1) != 0;
				free(b1);
				free(b2);
			}
			cm_arena_reset(&a);
		}
		cm_arena_free(&a);
		TAP_EQ(bad_recs, 0);
		TAP_EQ(append_range(ref, ref_size, size), CM_OK);
		ref_size = size;
		TAP_EQ(wait_idx(f), CM_OK);
		TAP_EQ(wait_idx(ref), CM_OK);
		collect(f, &fa, 32);
		collect(ref, &ra, 32);
		diff_answers += !same_answers(&fa, &ra, 32);
		ix_fragment_info info;
		ix_fragment_info_get(f, &info);
		printf("# kill round %d: %zu appends acknowledged (%zu this round), log %llu records, index "
		       "saved at %llu\n",
		       round, nacked, nacked - before, (unsigned long long)size, (unsigned long long)info.saved);
		ix_fragment_close(f);
	}
	TAP_CHECK(rounds >= 3); /* kills that interrupted appends */
	TAP_CHECK(nacked > 0);
	TAP_EQ(lost, 0);
	TAP_EQ(wrong_roots, 0);
	TAP_EQ(diff_answers, 0);
	ix_fragment_close(ref);
}

/* ---- concurrency ---- */

typedef struct reader_arg {
	ix_fragment *f;
	volatile int *stop;
	size_t searches, errors;
	uint64_t seed;
} reader_arg;

static void *reader_main(void *p)
{
	reader_arg *ra = p;
	cm_arena a;
	cm_arena_init(&a, 0);
	pbfilter pb;
	ix_filter flt;
	pbf_init(&pb);
	Muri__V1__Condition *c = pbf_cond(&pb, "len");
	c->gte__case = MURI__V1__CONDITION__GTE__GTE, c->gte = 5;
	while (!*ra->stop) {
		size_t q = splitmix(&ra->seed) % glove.nq;
		ix_query query = {.vec = glove.query + q * glove.d, .dim = (uint32_t)glove.d, .k = 10};
		if (q % 3 == 0 && ix_filter_from_pb(&pb.f, &a, &flt, NULL, 0) == CM_OK)
			query.filter = &flt;
		ix_result res;
		char err[ERR];
		if (ix_fragment_search(ra->f, &query, &a, &res, err, sizeof(err)) != CM_OK || res.n == 0) {
			if (ra->errors++ < 3)
				printf("# concurrent search: %s\n", err);
		}
		ra->searches++;
		cm_arena_reset(&a);
	}
	cm_arena_free(&a);
	return NULL;
}

/* Appends of 5000 records while the indexer catches up: an append reserves
 * room in the in-memory view before its durable write and fills it after,
 * and the indexer trimming (and shrinking) the view in between must leave
 * that room (it once shrank it, and the append wrote past the buffers). */
static void test_large_appends(void)
{
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_FLAT);
	ix_options o;
	ix_options_default(&o);
	o.persist_interval_ms = 0;
	ix_fragment *f = open_frag("large-appends", &s, &o);
	TAP_CHECK(f != NULL);
	if (!f)
		return;
	const size_t copies = 3, chunk = 5000, n = copies * glove.nb;
	ix_record *recs = calloc(chunk, sizeof(*recs));
	char err[ERR];
	int rc = CM_OK;
	for (size_t i = 0; i < n && rc == CM_OK; i += chunk) {
		size_t m = n - i < chunk ? n - i : chunk;
		for (size_t j = 0; j < m; j++) {
			plain_record(&glove, (i + j) % glove.nb, i + j, &recs[j]);
			make_id((uint32_t)(i + j), recs[j].id);
		}
		rc = ix_fragment_append(f, recs, m, err, sizeof(err));
		if (rc != CM_OK)
			printf("# append at %zu: %s\n", i, err);
	}
	free(recs);
	TAP_EQ(rc, CM_OK);
	TAP_EQ(wait_idx(f), CM_OK);
	ix_fragment_info info;
	ix_fragment_info_get(f, &info);
	TAP_EQ(info.size, n);
	TAP_EQ(info.indexed, n / info.batch * info.batch);
	/* every copy of a row is found, indexed or pending */
	cm_arena a;
	cm_arena_init(&a, 0);
	size_t missed = 0;
	for (size_t row = 0; row < glove.nb; row += 97) {
		ix_query q = {.vec = glove.base + row * glove.d, .dim = (uint32_t)glove.d, .k = (uint32_t)copies};
		ix_result res;
		size_t found = 0;
		if (ix_fragment_search(f, &q, &a, &res, NULL, 0) == CM_OK)
			for (size_t i = 0; i < res.n; i++)
				found += res.hits[i].seq % glove.nb == row;
		missed += found != copies;
		cm_arena_reset(&a);
	}
	TAP_EQ(missed, 0);
	cm_arena_free(&a);
	ix_fragment_close(f);
}

static void test_concurrent(void)
{
	ix_spec s = spec_of((uint32_t)glove.d, IX_COSINE, IX_HNSW);
	s.hnsw_m = 16;
	s.ef_construction = 64;
	ix_options o;
	ix_options_default(&o);
	o.batch = 128;
	ix_fragment *f = open_frag("concurrent", &s, &o);
	TAP_CHECK(f != NULL);
	if (!f)
		return;
	TAP_EQ(append_range(f, 0, 100), CM_OK);
	volatile int stop = 0;
	reader_arg ra[2] = {{f, &stop, 0, 0, 1}, {f, &stop, 0, 0, 2}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader_main, &ra[i]);
	/* read your writes: each appended vector is found right after */
	size_t missed = 0, appends = 0;
	cm_arena a;
	cm_arena_init(&a, 0);
	double t0 = now_s();
	for (uint64_t seq = 100; seq < 3000; seq += 10) {
		if (append_range(f, seq, seq + 10) != CM_OK)
			break;
		appends++;
		ix_record r = det_rec(seq + 8);
		ix_query q = {.vec = r.vec, .dim = (uint32_t)glove.d, .k = 3};
		ix_result res;
		int found = 0;
		if (ix_fragment_search(f, &q, &a, &res, NULL, 0) == CM_OK)
			for (size_t i = 0; i < res.n; i++)
				found |= res.hits[i].seq == seq + 8;
		missed += !found;
		cm_arena_reset(&a);
	}
	double dt = now_s() - t0;
	stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("# concurrent: %zu appends of 10 in %.2f s with 2 search threads doing %zu searches, %zu errors\n",
	       appends, dt, ra[0].searches + ra[1].searches, ra[0].errors + ra[1].errors);
	TAP_EQ(missed, 0);
	TAP_EQ(ra[0].errors + ra[1].errors, 0);
	TAP_CHECK(ra[0].searches + ra[1].searches > 0);
	cm_arena_free(&a);
	ix_fragment_close(f);
}

/* TAP_RUN, with the case's wall time. */
#define RUN(fn)                                                                  \
	do {                                                                     \
		double t0_ = now_s();                                            \
		TAP_RUN(fn);                                                     \
		printf("# %s took %.1f s\n", #fn, now_s() - t0_);                 \
	} while (0)

int main(int argc, char **argv)
{
	self_exe = argv[0][0] == '/' ? argv[0] : realpath(argv[0], NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (cm_crypto_init() != CM_OK)
		return 1;
	if (load_set(&glove, "glove-100-angular-10k") != 0 || load_words() != 0 ||
	    load_set(&sift, "sift-5k-128-euclidean") != 0) {
		printf("Bail out! cannot read the datasets (MURI_DATASETS)\n");
		return 1;
	}
	if (argc == 5 && strcmp(argv[1], "--child") == 0)
		return child_main(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(test_record_bytes);
	RUN(test_filter_validation);
	RUN(test_glove_hnsw_recall);
	RUN(test_glove_ivf_recall);
	RUN(test_glove_flat_recall);
	RUN(test_sift_l2_recall);
	RUN(test_filtered_search);
	RUN(test_filtered_recall_by_selectivity);
	RUN(test_updates_and_deletes);
	RUN(test_restart);
	RUN(test_determinism);
	RUN(test_shape_from_schema);
	RUN(test_truncate);
	RUN(test_kill9);
	RUN(test_large_appends);
	RUN(test_concurrent);
	ix_fragment_close(g_hnsw);
	ix_fragment_close(g_flat);
	if (tap_failed)
		printf("# kept %s\n", tmpdir);
	else
		rm_rf(tmpdir);
	return tap_done();
}
