/* Metadata filters: validation from protobuf, evaluation against the
 * metadata tables (one sorted seq set per part, intersected), and the
 * writers of those tables. */
#include "ix_filter.h"
#include "cm_err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation ---- */

int ix_filter_from_pb(const Muri__V1__Filter *pb, cm_arena *a, ix_filter *out, char *err, size_t errlen)
{
	ix_filter f = {0};
	char name[IX_META_KEY_MAX + 64];
	size_t n = pb ? pb->n_conditions : 0;
	if (n > IX_FILTER_MAX_CONDITIONS)
		return ix_errf(CM_ERR_INVALID, err, errlen, "filter.conditions: %zu conditions (max %d)", n,
			       IX_FILTER_MAX_CONDITIONS);
	if (n) {
		f.conds = cm_arena_alloc(a, n * sizeof(*f.conds));
		if (!f.conds)
			return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const Muri__V1__Filter__ConditionsEntry *e = pb->conditions[i];
		ix_cond *c = &f.conds[i];
		size_t kl = e && e->key ? strlen(e->key) : 0;
		if (kl < 1 || kl > IX_META_KEY_MAX || !ix_utf8_valid(e->key, kl))
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "filter.conditions: key %zu must be 1..%d bytes of UTF-8", i, IX_META_KEY_MAX);
		for (size_t j = 0; j < i; j++)
			if (strcmp(f.conds[j].key, e->key) == 0)
				return ix_errf(CM_ERR_INVALID, err, errlen,
					       "filter.conditions[\"%s\"]: duplicate key", e->key);
		c->key = e->key;
		const Muri__V1__Condition *pc = e->value;
		if (!pc)
			return ix_errf(CM_ERR_INVALID, err, errlen, "filter.conditions[\"%s\"]: no condition",
				       e->key);
		if (pc->eq__case == MURI__V1__CONDITION__EQ__EQ) {
			snprintf(name, sizeof(name), "filter.conditions[\"%s\"].eq", e->key);
			int rc = ix_value_from_pb(pc->eq, name, &c->eq, err, errlen);
			if (rc)
				return rc;
			c->has_eq = 1;
		}
		if (pc->in && pc->in->n_values) {
			if (pc->in->n_values > IX_FILTER_MAX_IN)
				return ix_errf(CM_ERR_INVALID, err, errlen,
					       "filter.conditions[\"%s\"].in: %zu values (max %d)", e->key,
					       pc->in->n_values, IX_FILTER_MAX_IN);
			c->in = cm_arena_alloc(a, pc->in->n_values * sizeof(*c->in));
			if (!c->in)
				return CM_ERR_NOMEM;
			for (size_t j = 0; j < pc->in->n_values; j++) {
				snprintf(name, sizeof(name), "filter.conditions[\"%s\"].in[%zu]", e->key, j);
				int rc = ix_value_from_pb(pc->in->values[j], name, &c->in[j], err, errlen);
				if (rc)
					return rc;
			}
			c->nin = (uint32_t)pc->in->n_values;
		}
#define BOUND(op, CASE)                                                                          \
		if (pc->op##__case == CASE) {                                                    \
			if (!isfinite(pc->op))                                                   \
				return ix_errf(CM_ERR_INVALID, err, errlen,                      \
					       "filter.conditions[\"%s\"]." #op ": not a finite number", \
					       e->key);                                          \
			c->has_##op = 1;                                                         \
			c->op = pc->op;                                                          \
		}
		BOUND(gt, MURI__V1__CONDITION__GT__GT)
		BOUND(gte, MURI__V1__CONDITION__GTE__GTE)
		BOUND(lt, MURI__V1__CONDITION__LT__LT)
		BOUND(lte, MURI__V1__CONDITION__LTE__LTE)
#undef BOUND
		if (!c->has_eq && !c->nin && !c->has_gt && !c->has_gte && !c->has_lt && !c->has_lte)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "filter.conditions[\"%s\"]: no eq, in or range given", e->key);
	}
	f.n = (uint32_t)n;
	*out = f;
	return CM_OK;
}

/* ---- evaluation on one record ---- */

static int is_num(const ix_value *v)
{
	return v->type == IX_V_NUMBER || v->type == IX_V_INT;
}

/* Compares an int64 with a double exactly: <0, 0, >0. */
static int cmp_int_double(int64_t i, double d)
{
	if (d >= 9223372036854775808.0)
		return -1;
	if (d < -9223372036854775808.0)
		return 1;
	int64_t t = (int64_t)d; /* truncates toward zero, in range */
	if (i != t)
		return i < t ? -1 : 1;
	double frac = d - (double)t;
	return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

static int cmp_num(const ix_value *a, double b)
{
	if (a->type == IX_V_INT)
		return cmp_int_double(a->u.i, b);
	return a->u.num < b ? -1 : a->u.num > b;
}

static int value_eq(const ix_value *a, const ix_value *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->type == IX_V_INT && b->type == IX_V_INT)
			return a->u.i == b->u.i;
		if (b->type == IX_V_NUMBER)
			return cmp_num(a, b->u.num) == 0;
		return cmp_num(b, a->u.num) == 0;
	}
	if (a->type != b->type)
		return 0;
	if (a->type == IX_V_BOOL)
		return a->u.b == b->u.b;
	return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
}

int ix_filter_match(const ix_filter *f, const ix_field *fields, uint32_t nfields)
{
	for (uint32_t i = 0; i < f->n; i++) {
		const ix_cond *c = &f->conds[i];
		const ix_value *v = NULL;
		for (uint32_t j = 0; j < nfields; j++)
			if (strcmp(fields[j].key, c->key) == 0)
				v = &fields[j].v;
		if (!v)
			return 0;
		if (c->has_eq && !value_eq(v, &c->eq))
			return 0;
		if (c->nin) {
			int any = 0;
			for (uint32_t j = 0; j < c->nin && !any; j++)
				any = value_eq(v, &c->in[j]);
			if (!any)
				return 0;
		}
		if (c->has_gt || c->has_gte || c->has_lt || c->has_lte) {
			if (!is_num(v))
				return 0;
			if ((c->has_gt && cmp_num(v, c->gt) <= 0) || (c->has_gte && cmp_num(v, c->gte) < 0) ||
			    (c->has_lt && cmp_num(v, c->lt) >= 0) || (c->has_lte && cmp_num(v, c->lte) > 0))
				return 0;
		}
	}
	return 1;
}

/* ---- tables ---- */

int ix_meta_schema(sqlite3 *db, char *err, size_t errlen)
{
	/* val has no declared type, so each value keeps its storage class:
	 * INTEGER and REAL compare numerically, TEXT (strings) never equals
	 * INTEGER (bools). */
	static const char *sql =
		"CREATE TABLE IF NOT EXISTS meta_num(key TEXT NOT NULL, val NOT NULL, seq INTEGER NOT NULL,"
		" PRIMARY KEY(key, val, seq)) WITHOUT ROWID;"
		"CREATE INDEX IF NOT EXISTS meta_num_seq ON meta_num(seq);"
		"CREATE TABLE IF NOT EXISTS meta_tag(key TEXT NOT NULL, val NOT NULL, seq INTEGER NOT NULL,"
		" PRIMARY KEY(key, val, seq)) WITHOUT ROWID;"
		"CREATE INDEX IF NOT EXISTS meta_tag_seq ON meta_tag(seq);";
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = ix_errf(CM_ERR_IO, err, errlen, "sqlite: metadata tables: %s", msg ? msg : "?");
		sqlite3_free(msg);
		return rc;
	}
	return CM_OK;
}

int ix_meta_prepare(sqlite3 *db, ix_meta_stmts *st)
{
	memset(st, 0, sizeof(*st));
	if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO meta_num(key, val, seq) VALUES(?1, ?2, ?3)", -1,
			       &st->ins_num, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO meta_tag(key, val, seq) VALUES(?1, ?2, ?3)", -1,
			       &st->ins_tag, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM meta_num WHERE seq = ?1", -1, &st->del_num, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM meta_tag WHERE seq = ?1", -1, &st->del_tag, NULL) != SQLITE_OK) {
		ix_meta_finalize(st);
		return CM_ERR_IO;
	}
	return CM_OK;
}

void ix_meta_finalize(ix_meta_stmts *st)
{
	sqlite3_finalize(st->ins_num);
	sqlite3_finalize(st->ins_tag);
	sqlite3_finalize(st->del_num);
	sqlite3_finalize(st->del_tag);
	memset(st, 0, sizeof(*st));
}

static int bind_value(sqlite3_stmt *s, int col, const ix_value *v)
{
	switch (v->type) {
	case IX_V_STRING: return sqlite3_bind_text(s, col, v->u.str.s, (int)v->u.str.len, SQLITE_STATIC);
	case IX_V_NUMBER: return sqlite3_bind_double(s, col, v->u.num);
	case IX_V_BOOL: return sqlite3_bind_int(s, col, v->u.b);
	default: return sqlite3_bind_int64(s, col, v->u.i);
	}
}

static int step_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? CM_OK : CM_ERR_IO;
}

int ix_meta_insert(ix_meta_stmts *st, uint64_t seq, const ix_field *fields, uint32_t nfields)
{
	for (uint32_t i = 0; i < nfields; i++) {
		sqlite3_stmt *s = is_num(&fields[i].v) ? st->ins_num : st->ins_tag;
		sqlite3_bind_text(s, 1, fields[i].key, (int)fields[i].key_len, SQLITE_STATIC);
		bind_value(s, 2, &fields[i].v);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)seq);
		if (step_done(s) != CM_OK)
			return CM_ERR_IO;
	}
	return CM_OK;
}

int ix_meta_delete(ix_meta_stmts *st, uint64_t seq)
{
	sqlite3_bind_int64(st->del_num, 1, (sqlite3_int64)seq);
	sqlite3_bind_int64(st->del_tag, 1, (sqlite3_int64)seq);
	if (step_done(st->del_num) != CM_OK || step_done(st->del_tag) != CM_OK)
		return CM_ERR_IO;
	return CM_OK;
}

/* ---- evaluation on the tables ---- */

typedef struct seqset {
	uint64_t *v;
	size_t n, cap;
} seqset;

static int set_push(seqset *s, uint64_t x)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		uint64_t *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return CM_ERR_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = x;
	return CM_OK;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void set_sort_unique(seqset *s)
{
	size_t m = 0;
	if (s->n < 2)
		return;
	qsort(s->v, s->n, sizeof(*s->v), u64_cmp);
	for (size_t i = 0; i < s->n; i++)
		if (m == 0 || s->v[m - 1] != s->v[i])
			s->v[m++] = s->v[i];
	s->n = m;
}

/* Appends the seqs a prepared query yields (column 0). */
static int collect(sqlite3 *db, sqlite3_stmt *st, seqset *out, char *err, size_t errlen)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (set_push(out, (uint64_t)sqlite3_column_int64(st, 0)) != CM_OK)
			return CM_ERR_NOMEM;
	if (rc != SQLITE_DONE)
		return ix_errf(CM_ERR_IO, err, errlen, "sqlite: filter: %s", sqlite3_errmsg(db));
	return CM_OK;
}

static int eq_part(sqlite3 *db, const char *key, const ix_value *v, seqset *out, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const char *sql = is_num(v) ? "SELECT seq FROM meta_num WHERE key = ?1 AND val = ?2"
				    : "SELECT seq FROM meta_tag WHERE key = ?1 AND val = ?2";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return ix_errf(CM_ERR_IO, err, errlen, "sqlite: filter: %s", sqlite3_errmsg(db));
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	bind_value(st, 2, v);
	int rc = collect(db, st, out, err, errlen);
	sqlite3_finalize(st);
	return rc;
}

static int range_part(sqlite3 *db, const ix_cond *c, seqset *out, char *err, size_t errlen)
{
	char sql[256];
	sqlite3_stmt *st = NULL;
	int n = snprintf(sql, sizeof(sql), "SELECT seq FROM meta_num WHERE key = ?1");
	if (c->has_gt)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND val > ?2");
	if (c->has_gte)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND val >= ?3");
	if (c->has_lt)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND val < ?4");
	if (c->has_lte)
		snprintf(sql + n, sizeof(sql) - (size_t)n, " AND val <= ?5");
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return ix_errf(CM_ERR_IO, err, errlen, "sqlite: filter: %s", sqlite3_errmsg(db));
	sqlite3_bind_text(st, 1, c->key, -1, SQLITE_STATIC);
	if (c->has_gt)
		sqlite3_bind_double(st, 2, c->gt);
	if (c->has_gte)
		sqlite3_bind_double(st, 3, c->gte);
	if (c->has_lt)
		sqlite3_bind_double(st, 4, c->lt);
	if (c->has_lte)
		sqlite3_bind_double(st, 5, c->lte);
	int rc = collect(db, st, out, err, errlen);
	sqlite3_finalize(st);
	return rc;
}

/* acc = acc AND part (both sorted unique); acc_set says acc holds a set yet. */
static void intersect(seqset *acc, int *acc_set, seqset *part)
{
	if (!*acc_set) {
		seqset t = *acc;
		*acc = *part;
		*part = t;
		part->n = 0;
		*acc_set = 1;
		return;
	}
	acc->n = ix_seqs_intersect(acc->v, acc->n, part->v, part->n);
	part->n = 0;
}

size_t ix_seqs_intersect(uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
	size_t i = 0, j = 0, m = 0;
	while (i < na && j < nb) {
		if (a[i] < b[j])
			i++;
		else if (a[i] > b[j])
			j++;
		else {
			a[m++] = a[i];
			i++, j++;
		}
	}
	return m;
}

int ix_filter_seqs(sqlite3 *db, const ix_filter *f, uint64_t **seqs, size_t *n, char *err, size_t errlen)
{
	seqset acc = {0}, part = {0};
	int acc_set = 0, rc = CM_OK;
	for (uint32_t i = 0; i < f->n && rc == CM_OK && !(acc_set && acc.n == 0); i++) {
		const ix_cond *c = &f->conds[i];
		if (c->has_eq) {
			rc = eq_part(db, c->key, &c->eq, &part, err, errlen);
			if (rc)
				break;
			set_sort_unique(&part);
			intersect(&acc, &acc_set, &part);
		}
		if (c->nin) {
			for (uint32_t j = 0; j < c->nin && rc == CM_OK; j++)
				rc = eq_part(db, c->key, &c->in[j], &part, err, errlen);
			if (rc)
				break;
			set_sort_unique(&part);
			intersect(&acc, &acc_set, &part);
		}
		if (c->has_gt || c->has_gte || c->has_lt || c->has_lte) {
			rc = range_part(db, c, &part, err, errlen);
			if (rc)
				break;
			set_sort_unique(&part);
			intersect(&acc, &acc_set, &part);
		}
	}
	free(part.v);
	if (rc) {
		free(acc.v);
		return rc;
	}
	if (acc.n == 0) {
		free(acc.v);
		acc.v = NULL;
	}
	*seqs = acc.v;
	*n = acc.n;
	return CM_OK;
}
