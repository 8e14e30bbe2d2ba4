/* Tests of the in-memory filter postings: on their own, random filters (eq,
 * $in, ranges, mixed types, several conditions) give exactly the seqs the
 * SQLite metadata tables give and the records' own metadata says, before
 * and after a compaction, and after a reload from the tables; a memory cap
 * turns them off. Through a fragment: filtered searches equal brute force
 * over the live records while records are inserted, updated and deleted,
 * after a restart and after a truncation, with the postings on and with a
 * cap so small that every filter reads the tables. */
#include "tap.h"
#include "cm_err.h"
#include "ix_filter.h"
#include "ix_fragment.h"
#include "ix_postings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/muri-test-postings-XXXXXX";

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static const char *strs[] = {"a", "b", "c", "d", "e", "7"};

/* Up to 3 fields of a record, sorted by key: b (bool, sometimes absent),
 * n (an int, an integral double or a half), s (a string; for some records
 * the int 7 instead, so types mix). */
typedef struct rec_fields {
	ix_field f[3];
	uint32_t n;
} rec_fields;

static void fields_of(uint64_t seed, rec_fields *out)
{
	uint64_t s = seed;
	uint32_t n = 0;
	uint64_t r = splitmix(&s);
	if (r % 3) {
		out->f[n] = (ix_field){.key = "b", .key_len = 1, .v = {.type = IX_V_BOOL, .u.b = (int)(r / 3 % 2)}};
		n++;
	}
	r = splitmix(&s);
	int64_t k = (int64_t)(r % 20) - 5;
	out->f[n] = (ix_field){.key = "n", .key_len = 1};
	if (r / 20 % 3 == 0) {
		out->f[n].v.type = IX_V_INT;
		out->f[n].v.u.i = k;
	} else {
		out->f[n].v.type = IX_V_NUMBER;
		out->f[n].v.u.num = (double)k + (r / 20 % 3 == 1 ? 0.0 : 0.5);
	}
	n++;
	r = splitmix(&s);
	out->f[n] = (ix_field){.key = "s", .key_len = 1};
	if (r % 7 == 0) {
		out->f[n].v.type = IX_V_INT;
		out->f[n].v.u.i = 7;
	} else {
		out->f[n].v.type = IX_V_STRING;
		out->f[n].v.u.str.s = strs[r % 6];
		out->f[n].v.u.str.len = 1;
	}
	n++;
	out->n = n;
}

static ix_value rand_value(uint64_t *s)
{
	ix_value v = {0};
	uint64_t r = splitmix(s);
	switch (r % 5) {
	case 0: v.type = IX_V_INT; v.u.i = (int64_t)(r / 5 % 24) - 6; break;
	case 1: v.type = IX_V_NUMBER; v.u.num = (double)((int64_t)(r / 5 % 24) - 6); break;
	case 2: v.type = IX_V_NUMBER; v.u.num = (double)((int64_t)(r / 5 % 24) - 6) + 0.5; break;
	case 3: v.type = IX_V_BOOL; v.u.b = (int)(r / 5 % 2); break;
	default: v.type = IX_V_STRING; v.u.str.s = strs[r / 5 % 6]; v.u.str.len = 1;
	}
	return v;
}

/* A random filter of 1..3 conditions on distinct fields (some never
 * present), in storage the caller provides. */
typedef struct rfilter {
	ix_filter f;
	ix_cond c[3];
	ix_value in[3][4];
} rfilter;

static void rand_filter(uint64_t *s, rfilter *rf)
{
	static const char *keys[] = {"b", "n", "s", "none"};
	memset(rf, 0, sizeof(*rf));
	uint32_t nc = 1 + (uint32_t)(splitmix(s) % 3);
	uint64_t used = 0;
	for (uint32_t i = 0; i < nc; i++) {
		ix_cond *c = &rf->c[rf->f.n];
		uint64_t k = splitmix(s) % 4;
		if (k == 3 && splitmix(s) % 4)
			k = 1; /* the absent field rarely */
		if (used & (1u << k))
			continue;
		used |= 1u << k;
		c->key = keys[k];
		uint64_t kind = splitmix(s) % 5;
		if (kind == 0 || kind == 4) {
			c->has_eq = 1;
			c->eq = rand_value(s);
		}
		if (kind == 1) {
			c->nin = 1 + (uint32_t)(splitmix(s) % 4);
			for (uint32_t j = 0; j < c->nin; j++)
				rf->in[rf->f.n][j] = rand_value(s);
			c->in = rf->in[rf->f.n];
		}
		if (kind >= 2) {
			uint64_t b = splitmix(s);
			double lo = (double)((int64_t)(b % 24) - 7) + (b / 24 % 2 ? 0.5 : 0), hi = lo + (double)(b / 48 % 12);
			if (b / 600 % 2)
				c->has_gt = 1, c->gt = lo;
			else
				c->has_gte = 1, c->gte = lo;
			if (b / 1200 % 3 == 0)
				c->has_lt = 1, c->lt = hi;
			else if (b / 1200 % 3 == 1)
				c->has_lte = 1, c->lte = hi;
		}
		rf->f.n++;
	}
	rf->f.conds = rf->c;
}

static int same(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

/* ---- the postings on their own ---- */

#define NSEQ 3000

static int live_mod3(void *arg, uint64_t seq)
{
	(void)arg;
	return seq % 3 != 0;
}

static void test_postings_equal_tables_and_brute_force(void)
{
	static rec_fields rf[NSEQ];
	sqlite3 *db = NULL;
	ix_meta_stmts st;
	char err[256];
	TAP_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
	TAP_EQ(ix_meta_schema(db, err, sizeof(err)), CM_OK);
	TAP_EQ(ix_meta_prepare(db, &st), CM_OK);
	ix_postings *p = ix_postings_new(0);
	TAP_CHECK(p != NULL);
	for (uint64_t i = 0; i < NSEQ; i++) {
		fields_of(i * 31 + 7, &rf[i]);
		ix_postings_add(p, i, rf[i].f, rf[i].n);
		TAP_EQ(ix_meta_insert(&st, i, rf[i].f, rf[i].n), CM_OK);
	}
	uint64_t s = 42;
	int bad = 0, nonempty = 0;
	for (int round = 0; round < 3; round++) {
		for (int t = 0; t < 400; t++) {
			rfilter f;
			uint64_t *a = NULL, *b = NULL, want[NSEQ];
			size_t na = 0, nb = 0, nw = 0;
			rand_filter(&s, &f);
			if (f.f.n == 0)
				continue;
			TAP_EQ(ix_postings_seqs(p, &f.f, NSEQ, &a, &na), CM_OK);
			TAP_EQ(ix_filter_seqs(db, &f.f, &b, &nb, err, sizeof(err)), CM_OK);
			for (uint64_t i = 0; i < NSEQ; i++)
				if ((round == 0 || live_mod3(NULL, i)) && ix_filter_match(&f.f, rf[i].f, rf[i].n))
					want[nw++] = i;
			if (!same(a, na, want, nw) || !same(b, nb, want, nw)) {
				if (bad++ < 3)
					printf("# round %d filter %d: postings %zu, tables %zu, brute force %zu\n", round, t,
					       na, nb, nw);
			}
			nonempty += nw > 0;
			free(a);
			free(b);
		}
		if (round == 0) {
			/* a third superseded: gone from the tables, compacted away */
			for (uint64_t i = 0; i < NSEQ; i += 3)
				TAP_EQ(ix_meta_delete(&st, i), CM_OK);
			ix_postings_compact(p, live_mod3, NULL);
		} else if (round == 1) {
			TAP_EQ(ix_postings_load(p, db, err, sizeof(err)), CM_OK);
		}
	}
	TAP_EQ(bad, 0);
	printf("# %d of the filters matched records\n", nonempty);
	TAP_CHECK(nonempty > 200); /* the filters select something */
	ix_postings_stats ps;
	ix_postings_stats_get(p, &ps);
	TAP_EQ(ps.enabled, 1);
	size_t live_fields = 0;
	for (uint64_t i = 0; i < NSEQ; i++)
		live_fields += live_mod3(NULL, i) ? rf[i].n : 0;
	TAP_EQ(ps.entries, live_fields);
	TAP_CHECK(ps.values > 20 && ps.bytes > 0);
	ix_postings_free(p);
	ix_meta_finalize(&st);
	sqlite3_close(db);
}

static void test_postings_cap(void)
{
	ix_postings *p = ix_postings_new(4096);
	ix_postings_stats ps;
	rec_fields rf;
	for (uint64_t i = 0; i < 1000; i++) {
		fields_of(i, &rf);
		ix_postings_add(p, i, rf.f, rf.n);
	}
	ix_postings_stats_get(p, &ps);
	TAP_EQ(ps.enabled, 0);
	TAP_EQ(ps.disabled, (uint64_t)1);
	TAP_EQ(ps.bytes, (size_t)0); /* everything given back */
	rfilter f;
	uint64_t s = 1, *seqs = NULL;
	size_t n = 0;
	do
		rand_filter(&s, &f);
	while (f.f.n == 0);
	TAP_EQ(ix_postings_seqs(p, &f.f, 1000, &seqs, &n), CM_ERR_STATE);
	ix_postings_free(p);
}

/* ---- through a fragment ---- */

#define ROWS 300
#define NREC 1500
#define DIM 4

typedef struct logrec {
	uint32_t row;
	int op;
	uint64_t version, fseed, vseed;
} logrec;

static logrec lg[NREC];

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

static void vec_of(uint64_t seed, float *v)
{
	for (int j = 0; j < DIM; j++)
		v[j] = (float)((double)(splitmix(&seed) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void make_log(void)
{
	uint64_t s = 99, ver[ROWS] = {0};
	int live[ROWS] = {0};
	for (uint32_t i = 0; i < NREC; i++) {
		logrec *r = &lg[i];
		r->row = i < ROWS ? i : (uint32_t)(splitmix(&s) % ROWS);
		uint64_t k = splitmix(&s) % 10;
		r->op = i < ROWS ? IX_OP_INSERT : !live[r->row] ? IX_OP_INSERT : k < 2 ? IX_OP_DELETE : IX_OP_UPDATE;
		r->version = ++ver[r->row];
		r->fseed = splitmix(&s);
		r->vseed = splitmix(&s);
		live[r->row] = r->op != IX_OP_DELETE;
	}
}

/* Appends log records [from, to) in chunks. */
static int append_range(ix_fragment *f, uint32_t from, uint32_t to)
{
	static float vecs[100][DIM];
	static rec_fields rf[100];
	ix_record recs[100];
	char err[256];
	for (uint32_t at = from; at < to; at += 100) {
		uint32_t n = to - at < 100 ? to - at : 100;
		for (uint32_t i = 0; i < n; i++) {
			const logrec *l = &lg[at + i];
			ix_record *r = &recs[i];
			memset(r, 0, sizeof(*r));
			r->seq = at + i;
			r->epoch = 1;
			r->op = l->op;
			r->version = l->version;
			make_id(l->row, r->id);
			if (l->op != IX_OP_DELETE) {
				vec_of(l->vseed, vecs[i]);
				fields_of(l->fseed, &rf[i]);
				r->dim = DIM;
				r->vec = vecs[i];
				r->nfields = rf[i].n;
				r->fields = rf[i].f;
			}
		}
		int rc = ix_fragment_append(f, recs, n, err, sizeof(err));
		if (rc != CM_OK) {
			printf("# append at %u: %s\n", at, err);
			return rc;
		}
	}
	return CM_OK;
}

/* Random filtered searches on f (log size n) equal brute force over the
 * rows live after the first n log records: the same ids, as many as
 * min(k, matching). */
static int searches_ok(ix_fragment *f, uint32_t n, uint64_t seed)
{
	int cur[ROWS];
	rec_fields rf[ROWS];
	float vec[ROWS][DIM];
	for (uint32_t r = 0; r < ROWS; r++)
		cur[r] = -1;
	for (uint32_t i = 0; i < n; i++)
		cur[lg[i].row] = lg[i].op == IX_OP_DELETE ? -1 : (int)i;
	for (uint32_t r = 0; r < ROWS; r++)
		if (cur[r] >= 0) {
			fields_of(lg[cur[r]].fseed, &rf[r]);
			vec_of(lg[cur[r]].vseed, vec[r]);
		}
	int ok = 1;
	uint64_t s = seed;
	for (int t = 0; t < 60 && ok; t++) {
		rfilter flt;
		float q[DIM];
		rand_filter(&s, &flt);
		if (flt.f.n == 0)
			continue;
		vec_of(splitmix(&s), q);
		uint32_t k = 1 + (uint32_t)(splitmix(&s) % 40);
		/* brute force: matching live rows by L2 distance */
		struct {
			float d;
			uint32_t row;
		} m[ROWS], tmp;
		size_t nm = 0;
		for (uint32_t r = 0; r < ROWS; r++) {
			if (cur[r] < 0 || !ix_filter_match(&flt.f, rf[r].f, rf[r].n))
				continue;
			float d = 0;
			for (int j = 0; j < DIM; j++)
				d += (vec[r][j] - q[j]) * (vec[r][j] - q[j]);
			m[nm].d = d;
			m[nm++].row = r;
		}
		for (size_t i = 1; i < nm; i++) /* insertion sort: few */
			for (size_t j = i; j > 0 && m[j].d < m[j - 1].d; j--)
				tmp = m[j], m[j] = m[j - 1], m[j - 1] = tmp;
		size_t want = nm < k ? nm : k;
		cm_arena a;
		ix_result res;
		cm_arena_init(&a, 0);
		ix_query query = {.vec = q, .dim = DIM, .k = k, .filter = &flt.f};
		char err[256];
		if (ix_fragment_search(f, &query, &a, &res, err, sizeof(err)) != CM_OK) {
			printf("# search: %s\n", err);
			ok = 0;
		} else if (res.n != want) {
			printf("# size %u filter %d: %zu hits, brute force %zu\n", n, t, res.n, want);
			ok = 0;
		} else {
			for (size_t i = 0; i < res.n && ok; i++) {
				uint32_t row = id_row(res.hits[i].id);
				int found = 0;
				for (size_t j = 0; j < want; j++)
					found |= m[j].row == row;
				/* a tie at the k-th distance may swap rows: check the distance */
				if (!found && !(i + 1 == res.n && res.hits[i].distance <= m[want - 1].d + 1e-5f)) {
					printf("# size %u filter %d: hit row %u not in the brute-force top %zu\n", n, t, row,
					       want);
					ok = 0;
				}
				if (row < ROWS && cur[row] >= 0 && res.hits[i].version != lg[cur[row]].version)
					ok = 0;
			}
		}
		cm_arena_free(&a);
	}
	return ok;
}

static ix_fragment *open_frag(const char *name, uint64_t cap)
{
	char dir[400], err[256] = "";
	ix_spec sp = {.dim = DIM, .metric = IX_L2, .kind = IX_FLAT};
	ix_options o;
	ix_options_default(&o);
	o.postings_max_bytes = cap;
	ix_fragment *f = NULL;
	snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
	if (ix_fragment_open(dir, &sp, &o, &f, err, sizeof(err)) != CM_OK)
		printf("# open %s: %s\n", name, err);
	return f;
}

static void test_fragment_filters_after_changes(void)
{
	make_log();
	/* on: postings; off: a cap so small that filters read the tables */
	const char *names[2] = {"on", "off"};
	uint64_t caps[2] = {0, 512};
	for (int w = 0; w < 2; w++) {
		ix_fragment *f = open_frag(names[w], caps[w]);
		TAP_CHECK(f != NULL);
		if (!f)
			return;
		for (uint32_t at = 0; at < NREC; at += 300) {
			TAP_EQ(append_range(f, at, at + 300), CM_OK);
			TAP_CHECK(searches_ok(f, at + 300, at + 1));
		}
		ix_fragment_close(f);
		f = open_frag(names[w], caps[w]);
		TAP_CHECK(f != NULL);
		if (!f)
			return;
		TAP_CHECK(searches_ok(f, NREC, 7)); /* after a restart */
		char err[256];
		TAP_EQ(ix_fragment_truncate(f, 1000, err, sizeof(err)), CM_OK);
		TAP_CHECK(searches_ok(f, 1000, 8)); /* the cut records' kills are undone */
		TAP_EQ(ix_fragment_truncate(f, 100, err, sizeof(err)), CM_OK);
		TAP_CHECK(searches_ok(f, 100, 9)); /* below the index's batch boundary */
		TAP_EQ(append_range(f, 100, NREC), CM_OK);
		TAP_CHECK(searches_ok(f, NREC, 10));
		ix_fragment_info info;
		ix_fragment_info_get(f, &info);
		TAP_EQ(info.postings_on, w == 0); /* which path the searches took */
		ix_fragment_close(f);
	}
}

/* Many updates of the same rows: the superseded versions are compacted
 * away and memory stays bounded by the live records, not the log. */
static void test_compaction_bounds_entries(void)
{
	ix_spec sp = {.dim = DIM, .metric = IX_L2, .kind = IX_FLAT};
	char dir[400], err[256];
	ix_fragment *f = NULL;
	snprintf(dir, sizeof(dir), "%s/churn", tmpdir);
	TAP_EQ(ix_fragment_open(dir, &sp, NULL, &f, err, sizeof(err)), CM_OK);
	if (!f)
		return;
	float v[DIM] = {1, 2, 3, 4};
	ix_field fl = {.key = "g", .key_len = 1, .v = {.type = IX_V_INT}};
	ix_record r[100];
	uint64_t seq = 0;
	for (uint32_t round = 0; round < 60; round++) {
		for (uint32_t i = 0; i < 100; i++) {
			r[i] = (ix_record){.seq = seq++, .epoch = 1, .op = round ? IX_OP_UPDATE : IX_OP_INSERT,
					   .version = round + 1, .dim = DIM, .vec = v, .nfields = 1, .fields = &fl};
			make_id(i, r[i].id);
		}
		fl.v.u.i = round % 5;
		TAP_EQ(ix_fragment_append(f, r, 100, err, sizeof(err)), CM_OK);
	}
	/* every row now has g == 59 % 5 == 4 */
	ix_filter flt = {0};
	ix_cond c = {.key = "g", .has_eq = 1, .eq = {.type = IX_V_INT, .u.i = 4}};
	flt.n = 1;
	flt.conds = &c;
	ix_query q = {.vec = v, .dim = DIM, .k = 1000, .filter = &flt};
	cm_arena a;
	ix_result res;
	cm_arena_init(&a, 0);
	TAP_EQ(ix_fragment_search(f, &q, &a, &res, err, sizeof(err)), CM_OK);
	TAP_EQ(res.n, (size_t)100);
	c.eq.u.i = 3;
	TAP_EQ(ix_fragment_search(f, &q, &a, &res, err, sizeof(err)), CM_OK);
	TAP_EQ(res.n, (size_t)0);
	cm_arena_free(&a);
	ix_fragment_info info;
	ix_fragment_info_get(f, &info);
	TAP_CHECK(info.postings_entries <= 2 * 100 + 1100); /* 6000 versions written */
	TAP_CHECK(info.postings_entries >= 100);
	ix_fragment_close(f);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!mkdtemp(tmpdir))
		return 1;
	TAP_RUN(test_postings_equal_tables_and_brute_force);
	TAP_RUN(test_postings_cap);
	TAP_RUN(test_fragment_filters_after_changes);
	TAP_RUN(test_compaction_bounds_entries);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
