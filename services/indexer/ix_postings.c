/* In-memory postings: a hash table of (field, value) postings, each a sorted
 * seq array; per field the numeric postings in value order and a column of
 * each seq's posting; their upkeep (appends, compaction, the memory cap,
 * loading from the tables). Filters are evaluated in ix_postings_eval.c.
 * See ix_postings.h. */
#include "ix_postings_int.h"
#include "cm_err.h"
#include "cm_log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

uint64_t ixp_hash_bytes(const void *b, size_t n, uint64_t h)
{
	const unsigned char *s = b;
	h ^= 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return mix(h);
}

void ixp_canon(const ix_value *v, pval *out)
{
	memset(out, 0, sizeof(*out));
	switch (v->type) {
	case IX_V_INT:
		out->type = PV_INT;
		out->i = v->u.i;
		break;
	case IX_V_NUMBER:
		if (v->u.num == floor(v->u.num) && v->u.num >= -9223372036854775808.0 &&
		    v->u.num < 9223372036854775808.0) {
			out->type = PV_INT;
			out->i = (int64_t)v->u.num;
		} else {
			out->type = PV_DBL;
			out->d = v->u.num;
		}
		break;
	case IX_V_BOOL:
		out->type = PV_BOOL;
		out->i = v->u.b;
		break;
	default:
		out->type = PV_STR;
		out->s = v->u.str.s;
		out->len = v->u.str.len;
	}
}

uint64_t ixp_pval_hash(uint32_t field, const pval *v)
{
	uint64_t h = mix(((uint64_t)field << 8) ^ (uint64_t)v->type);
	if (v->type == PV_STR)
		return ixp_hash_bytes(v->s, v->len, h);
	uint64_t bits;
	if (v->type == PV_DBL)
		memcpy(&bits, &v->d, sizeof(bits));
	else
		bits = (uint64_t)v->i;
	return mix(h ^ mix(bits));
}

static int pval_eq(const pval *a, const pval *b)
{
	if (a->type != b->type)
		return 0;
	if (a->type == PV_STR)
		return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
	if (a->type == PV_DBL)
		return a->d == b->d;
	return a->i == b->i;
}

int ixp_is_numeric(const pval *v)
{
	return v->type == PV_INT || v->type == PV_DBL;
}

/* int64 against double, exactly: <0, 0, >0 (as ix_filter.c). */
static int cmp_int_double(int64_t i, double d)
{
	if (d >= 9223372036854775808.0)
		return -1;
	if (d < -9223372036854775808.0)
		return 1;
	int64_t t = (int64_t)d;
	if (i != t)
		return i < t ? -1 : 1;
	double frac = d - (double)t;
	return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

int ixp_cmp_to_double(const pval *a, double b)
{
	if (a->type == PV_INT)
		return cmp_int_double(a->i, b);
	return a->d < b ? -1 : a->d > b;
}

static int cmp_pval(const pval *a, const pval *b)
{
	if (a->type == PV_INT && b->type == PV_INT)
		return a->i < b->i ? -1 : a->i > b->i;
	if (b->type == PV_DBL)
		return ixp_cmp_to_double(a, b->d);
	return -ixp_cmp_to_double(b, a->d);
}

/* ---- memory ---- */

static void drop_all(ix_postings *p)
{
	for (size_t i = 0; i < p->np; i++) {
		free(p->p[i].seq);
		if (p->p[i].v.type == PV_STR)
			free((char *)p->p[i].v.s);
	}
	for (size_t i = 0; i < p->nfl; i++) {
		free(p->fl[i].name);
		free(p->fl[i].num);
		free(p->fl[i].col);
	}
	free(p->p);
	free(p->tab);
	free(p->fl);
	free(p->ftab);
	size_t max = p->max_bytes;
	uint64_t disabled = p->disabled, compactions = p->compactions;
	memset(p, 0, sizeof(*p));
	p->max_bytes = max;
	p->disabled = disabled;
	p->compactions = compactions;
}

static void disable(ix_postings *p, const char *why)
{
	size_t bytes = p->bytes;
	drop_all(p);
	p->disabled++;
	cm_warn("filter_postings_off", "reason=\"%s\" bytes=%zu cap=%zu filters read the metadata tables until the "
		"fragment is reopened", why, bytes, p->max_bytes);
}

/* realloc that keeps the byte count; NULL (and *ptr kept) past the cap or
 * out of memory. */
static void *grow(ix_postings *p, void *ptr, size_t old_bytes, size_t new_bytes)
{
	p->capped = 0;
	if (p->max_bytes && p->bytes - old_bytes + new_bytes > p->max_bytes) {
		p->capped = 1;
		return NULL;
	}
	void *n = realloc(ptr, new_bytes);
	if (!n)
		return NULL;
	p->bytes = p->bytes - old_bytes + new_bytes;
	return n;
}

ix_postings *ix_postings_new(size_t max_bytes)
{
	ix_postings *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->max_bytes = max_bytes;
	p->enabled = 1;
	return p;
}

void ix_postings_free(ix_postings *p)
{
	if (!p)
		return;
	drop_all(p);
	free(p);
}

int ix_postings_enabled(const ix_postings *p)
{
	return p && p->enabled;
}

void ix_postings_stats_get(const ix_postings *p, ix_postings_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	out->enabled = p->enabled;
	out->bytes = p->bytes;
	out->entries = p->entries;
	out->values = p->np;
	out->stale = p->stale;
	out->disabled = p->disabled;
	out->compactions = p->compactions;
}

/* ---- lookups ---- */

long ixp_find_field(const ix_postings *p, const char *name, size_t len, uint64_t h)
{
	if (!p->ftabcap)
		return -1;
	for (size_t i = h & (p->ftabcap - 1);; i = (i + 1) & (p->ftabcap - 1)) {
		uint32_t e = p->ftab[i];
		if (!e)
			return -1;
		const pfield *fl = &p->fl[e - 1];
		if (fl->hash == h && fl->len == len && memcmp(fl->name, name, len) == 0)
			return (long)(e - 1);
	}
}

long ixp_find_posting(const ix_postings *p, uint32_t field, const pval *v, uint64_t h)
{
	if (!p->tabcap)
		return -1;
	for (size_t i = h & (p->tabcap - 1);; i = (i + 1) & (p->tabcap - 1)) {
		uint32_t e = p->tab[i];
		if (!e)
			return -1;
		const posting *q = &p->p[e - 1];
		if (q->hash == h && q->field == field && pval_eq(&q->v, v))
			return (long)(e - 1);
	}
}

/* Rehashes a table of indexes+1 into cap slots by the hashes hashes(i). */
static int rehash(ix_postings *p, uint32_t **tab, size_t *tabcap, size_t n, int fields)
{
	size_t cap = *tabcap ? *tabcap * 2 : 64;
	uint32_t *t = grow(p, NULL, 0, cap * sizeof(*t));
	if (!t)
		return CM_ERR_NOMEM;
	memset(t, 0, cap * sizeof(*t));
	for (size_t k = 0; k < n; k++) {
		uint64_t h = fields ? p->fl[k].hash : p->p[k].hash;
		size_t i = h & (cap - 1);
		while (t[i])
			i = (i + 1) & (cap - 1);
		t[i] = (uint32_t)(k + 1);
	}
	p->bytes -= *tabcap * sizeof(**tab);
	free(*tab);
	*tab = t;
	*tabcap = cap;
	return CM_OK;
}

static long add_field(ix_postings *p, const char *name, size_t len, uint64_t h)
{
	if (2 * (p->nfl + 1) > p->ftabcap && rehash(p, &p->ftab, &p->ftabcap, p->nfl, 1) != CM_OK)
		return -1;
	if (p->nfl == p->capfl) {
		size_t cap = p->capfl ? 2 * p->capfl : 8;
		pfield *n = grow(p, p->fl, p->capfl * sizeof(*n), cap * sizeof(*n));
		if (!n)
			return -1;
		p->fl = n;
		p->capfl = cap;
	}
	char *copy = grow(p, NULL, 0, len + 1);
	if (!copy)
		return -1;
	memcpy(copy, name, len);
	copy[len] = '\0';
	pfield *fl = &p->fl[p->nfl];
	memset(fl, 0, sizeof(*fl));
	fl->name = copy;
	fl->len = (uint32_t)len;
	fl->hash = h;
	size_t i = h & (p->ftabcap - 1);
	while (p->ftab[i])
		i = (i + 1) & (p->ftabcap - 1);
	p->ftab[i] = (uint32_t)(p->nfl + 1);
	return (long)p->nfl++;
}

/* The first numeric posting of fl not below v (in value order). */
static size_t num_lower(const ix_postings *p, const pfield *fl, const pval *v)
{
	size_t lo = 0, hi = fl->nnum;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_pval(&p->p[fl->num[mid]].v, v) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static long add_posting(ix_postings *p, uint32_t field, const pval *v, uint64_t h)
{
	if (2 * (p->np + 1) > p->tabcap && rehash(p, &p->tab, &p->tabcap, p->np, 0) != CM_OK)
		return -1;
	if (p->np == p->capp) {
		size_t cap = p->capp ? 2 * p->capp : 64;
		posting *n = grow(p, p->p, p->capp * sizeof(*n), cap * sizeof(*n));
		if (!n)
			return -1;
		p->p = n;
		p->capp = cap;
	}
	pval copy = *v;
	if (v->type == PV_STR) {
		char *s = grow(p, NULL, 0, v->len + 1);
		if (!s)
			return -1;
		memcpy(s, v->s, v->len);
		s[v->len] = '\0';
		copy.s = s;
	}
	pfield *fl = &p->fl[field];
	size_t at = 0;
	if (ixp_is_numeric(v)) {
		if (fl->nnum == fl->capnum) {
			size_t cap = fl->capnum ? 2 * fl->capnum : 16;
			uint32_t *n = grow(p, fl->num, fl->capnum * sizeof(*n), cap * sizeof(*n));
			if (!n) {
				if (v->type == PV_STR)
					free((char *)copy.s);
				return -1;
			}
			fl->num = n;
			fl->capnum = cap;
		}
		at = num_lower(p, fl, v);
	}
	posting *q = &p->p[p->np];
	memset(q, 0, sizeof(*q));
	q->field = field;
	q->v = copy;
	q->hash = h;
	if (ixp_is_numeric(v)) {
		memmove(fl->num + at + 1, fl->num + at, (fl->nnum - at) * sizeof(*fl->num));
		fl->num[at] = (uint32_t)p->np;
		fl->nnum++;
	}
	size_t i = h & (p->tabcap - 1);
	while (p->tab[i])
		i = (i + 1) & (p->tabcap - 1);
	p->tab[i] = (uint32_t)(p->np + 1);
	return (long)p->np++;
}

/* ---- maintenance ---- */

static int posting_push(ix_postings *p, posting *q, uint64_t seq)
{
	if (q->n && q->seq[q->n - 1] == seq)
		return CM_OK;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap + q->cap / 2 + 4 : 4;
		uint64_t *n = grow(p, q->seq, q->cap * sizeof(*n), cap * sizeof(*n));
		if (!n)
			return CM_ERR_NOMEM;
		q->seq = n;
		q->cap = cap;
	}
	size_t at = q->n;
	if (at && q->seq[at - 1] > seq) {
		/* Out of order (not from appends): keep the array sorted. */
		size_t lo = 0, hi = q->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (q->seq[mid] < seq)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (q->seq[lo] == seq)
			return CM_OK;
		at = lo;
		memmove(q->seq + at + 1, q->seq + at, (q->n - at) * sizeof(*q->seq));
	}
	q->seq[at] = seq;
	q->n++;
	p->entries++;
	return CM_OK;
}

static int add_one(ix_postings *p, uint64_t seq, const char *key, size_t klen, const pval *v)
{
	uint64_t fh = ixp_hash_bytes(key, klen, IXP_FIELD_SALT);
	long fi = ixp_find_field(p, key, klen, fh);
	if (fi < 0 && (fi = add_field(p, key, klen, fh)) < 0)
		return CM_ERR_NOMEM;
	uint64_t h = ixp_pval_hash((uint32_t)fi, v);
	long pi = ixp_find_posting(p, (uint32_t)fi, v, h);
	if (pi < 0 && (pi = add_posting(p, (uint32_t)fi, v, h)) < 0)
		return CM_ERR_NOMEM;
	size_t had = p->p[pi].n;
	if (posting_push(p, &p->p[pi], seq) != CM_OK)
		return CM_ERR_NOMEM;
	pfield *fl = &p->fl[fi];
	p->p[pi].live += p->p[pi].n - had;
	fl->live += p->p[pi].n - had;
	if (seq >= fl->ncol) {
		size_t cap = fl->ncol ? fl->ncol + fl->ncol / 2 : 1024;
		if (cap <= seq)
			cap = (size_t)seq + 1024;
		uint32_t *c = grow(p, fl->col, fl->ncol * sizeof(*c), cap * sizeof(*c));
		if (!c)
			return CM_ERR_NOMEM;
		memset(c + fl->ncol, 0, (cap - fl->ncol) * sizeof(*c));
		fl->col = c;
		fl->ncol = cap;
	}
	fl->col[seq] = (uint32_t)pi + 1;
	return CM_OK;
}

void ix_postings_add(ix_postings *p, uint64_t seq, const ix_field *fields, uint32_t nfields)
{
	if (!p || !p->enabled)
		return;
	for (uint32_t i = 0; i < nfields; i++) {
		pval v;
		ixp_canon(&fields[i].v, &v);
		if (add_one(p, seq, fields[i].key, fields[i].key_len, &v) != CM_OK) {
			disable(p, p->capped ? "postings_max_bytes reached" : "out of memory");
			return;
		}
	}
}

void ix_postings_kill(ix_postings *p, uint64_t seq)
{
	if (!p || !p->enabled)
		return;
	for (size_t i = 0; i < p->nfl; i++) {
		pfield *fl = &p->fl[i];
		uint32_t id = seq < fl->ncol ? fl->col[seq] : 0;
		if (id && p->p[id - 1].live) {
			p->p[id - 1].live--;
			fl->live--;
		}
	}
}

int ix_postings_note_stale(ix_postings *p, size_t nfields)
{
	if (!p || !p->enabled)
		return 0;
	p->stale += nfields;
	return p->stale > 1024 && 2 * p->stale > p->entries;
}

void ix_postings_compact(ix_postings *p, ix_live_fn live, void *arg)
{
	if (!p || !p->enabled)
		return;
	for (size_t i = 0; i < p->nfl; i++)
		p->fl[i].live = 0;
	for (size_t i = 0; i < p->np; i++) {
		posting *q = &p->p[i];
		pfield *fl = &p->fl[q->field];
		size_t m = 0;
		for (size_t j = 0; j < q->n; j++) {
			uint64_t seq = q->seq[j];
			if (live(arg, seq))
				q->seq[m++] = seq;
			else if (seq < fl->ncol && fl->col[seq] == i + 1)
				fl->col[seq] = 0;
		}
		p->entries -= q->n - m;
		q->n = m;
		q->live = m; /* all that is left */
		fl->live += m;
		if (q->cap > 64 && 4 * m < q->cap) {
			size_t cap = 2 * m + 4;
			uint64_t *n = grow(p, q->seq, q->cap * sizeof(*n), cap * sizeof(*n));
			if (n) {
				q->seq = n;
				q->cap = cap;
			}
		}
	}
	p->stale = 0;
	p->compactions++;
}

int ix_postings_load(ix_postings *p, sqlite3 *db, char *err, size_t errlen)
{
	static const char *sql[2] = {"SELECT key, val, seq FROM meta_num ORDER BY key, val, seq",
				     "SELECT key, val, seq FROM meta_tag ORDER BY key, val, seq"};
	drop_all(p);
	p->enabled = 1;
	for (int t = 0; t < 2 && p->enabled; t++) {
		sqlite3_stmt *s = NULL;
		int rc = SQLITE_DONE;
		if (sqlite3_prepare_v2(db, sql[t], -1, &s, NULL) != SQLITE_OK) {
			drop_all(p);
			return ix_errf(CM_ERR_IO, err, errlen, "sqlite: loading filter postings: %s", sqlite3_errmsg(db));
		}
		while (p->enabled && (rc = sqlite3_step(s)) == SQLITE_ROW) {
			ix_field fl;
			fl.key = (const char *)sqlite3_column_text(s, 0);
			fl.key_len = (uint32_t)sqlite3_column_bytes(s, 0);
			int ct = sqlite3_column_type(s, 1);
			if (t == 0 && ct == SQLITE_INTEGER) {
				fl.v.type = IX_V_INT;
				fl.v.u.i = sqlite3_column_int64(s, 1);
			} else if (t == 0) {
				fl.v.type = IX_V_NUMBER;
				fl.v.u.num = sqlite3_column_double(s, 1);
			} else if (ct == SQLITE_INTEGER) {
				fl.v.type = IX_V_BOOL;
				fl.v.u.b = sqlite3_column_int(s, 1) != 0;
			} else {
				fl.v.type = IX_V_STRING;
				fl.v.u.str.s = (const char *)sqlite3_column_text(s, 1);
				fl.v.u.str.len = (uint32_t)sqlite3_column_bytes(s, 1);
			}
			ix_postings_add(p, (uint64_t)sqlite3_column_int64(s, 2), &fl, 1);
		}
		sqlite3_finalize(s);
		if (p->enabled && rc != SQLITE_DONE) {
			drop_all(p);
			return ix_errf(CM_ERR_IO, err, errlen, "sqlite: loading filter postings: %s", sqlite3_errmsg(db));
		}
	}
	return CM_OK;
}
