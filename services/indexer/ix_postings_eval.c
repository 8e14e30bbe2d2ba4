/* Filter evaluation on the postings: as a set (lookups, unions through a
 * bitmap over seqs or a sort when small, merge intersections) or compiled
 * into a per-seq test over the columns. See ix_postings.h. */
#include "ix_postings_int.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

/* ---- evaluation ---- */

typedef struct seqs {
	uint64_t *v;
	size_t n;
} seqs;

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The union of the postings qs[0..nq) below size, sorted and unique. */
static int unite(const ix_postings *p, const uint32_t *qs, size_t nq, uint64_t size, seqs *out)
{
	size_t total = 0;
	out->v = NULL;
	out->n = 0;
	for (size_t i = 0; i < nq; i++)
		total += p->p[qs[i]].n;
	if (total == 0)
		return CM_OK;
	out->v = malloc(total * sizeof(*out->v));
	if (!out->v)
		return CM_ERR_NOMEM;
	if (nq == 1 || total < 4096 || total < size / 64) {
		size_t m = 0;
		for (size_t i = 0; i < nq; i++) {
			const posting *q = &p->p[qs[i]];
			memcpy(out->v + m, q->seq, q->n * sizeof(*q->seq));
			m += q->n;
		}
		if (nq > 1) {
			qsort(out->v, m, sizeof(*out->v), u64_cmp);
			size_t u = 0;
			for (size_t i = 0; i < m; i++)
				if (u == 0 || out->v[u - 1] != out->v[i])
					out->v[u++] = out->v[i];
			m = u;
		}
		while (m && out->v[m - 1] >= size)
			m--;
		out->n = m;
		return CM_OK;
	}
	/* Dense: a bitmap over [0, size), read back in order. */
	size_t words = (size_t)(size / 64) + 1;
	uint64_t *bm = calloc(words, sizeof(*bm));
	if (!bm) {
		free(out->v);
		out->v = NULL;
		return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < nq; i++) {
		const posting *q = &p->p[qs[i]];
		for (size_t j = 0; j < q->n && q->seq[j] < size; j++)
			bm[q->seq[j] >> 6] |= 1ULL << (q->seq[j] & 63);
	}
	size_t m = 0;
	for (size_t w = 0; w < words; w++)
		for (uint64_t b = bm[w]; b; b &= b - 1)
			out->v[m++] = ((uint64_t)w << 6) | (uint64_t)__builtin_ctzll(b);
	free(bm);
	out->n = m;
	return CM_OK;
}

/* acc = acc AND part; acc_set says acc holds a set yet. Frees part. */
static void intersect(seqs *acc, int *acc_set, seqs *part)
{
	if (!*acc_set) {
		*acc = *part;
		*acc_set = 1;
		return;
	}
	acc->n = ix_seqs_intersect(acc->v, acc->n, part->v, part->n);
	free(part->v);
}

/* Posting of field fi equal to v, or -1. */
static long lookup(const ix_postings *p, long fi, const ix_value *v)
{
	pval c;
	ixp_canon(v, &c);
	return ixp_find_posting(p, (uint32_t)fi, &c, ixp_pval_hash((uint32_t)fi, &c));
}

/* The numeric postings of fl in the condition's range: [*from, *to). */
static void range_of(const ix_postings *p, const pfield *fl, const ix_cond *c, size_t *from, size_t *to)
{
	size_t lo = 0, hi = fl->nnum;
	/* first position whose value passes the lower bounds (monotone) */
	size_t a = lo, b = hi;
	while (a < b) {
		size_t mid = a + (b - a) / 2;
		const pval *v = &p->p[fl->num[mid]].v;
		int below = (c->has_gt && ixp_cmp_to_double(v, c->gt) <= 0) || (c->has_gte && ixp_cmp_to_double(v, c->gte) < 0);
		if (below)
			a = mid + 1;
		else
			b = mid;
	}
	lo = a;
	a = lo, b = hi;
	/* first position whose value fails the upper bounds */
	while (a < b) {
		size_t mid = a + (b - a) / 2;
		const pval *v = &p->p[fl->num[mid]].v;
		int above = (c->has_lt && ixp_cmp_to_double(v, c->lt) >= 0) || (c->has_lte && ixp_cmp_to_double(v, c->lte) > 0);
		if (above)
			b = mid;
		else
			a = mid + 1;
	}
	*from = lo;
	*to = a;
}

int ix_postings_seqs(const ix_postings *p, const ix_filter *f, uint64_t size, uint64_t **out, size_t *nout)
{
	if (!p || !p->enabled)
		return CM_ERR_STATE;
	seqs acc = {0};
	int acc_set = 0, rc = CM_OK;
	uint32_t *qs = NULL;
	for (uint32_t i = 0; i < f->n && rc == CM_OK && !(acc_set && acc.n == 0); i++) {
		const ix_cond *c = &f->conds[i];
		size_t klen = strlen(c->key);
		long fi = ixp_find_field(p, c->key, klen, ixp_hash_bytes(c->key, klen, IXP_FIELD_SALT));
		seqs part = {0};
		if (fi < 0) {
			intersect(&acc, &acc_set, &part); /* no record has the field */
			break;
		}
		const pfield *fl = &p->fl[fi];
		if (c->has_eq) {
			long q = lookup(p, fi, &c->eq);
			uint32_t one = q < 0 ? 0 : (uint32_t)q;
			if ((rc = unite(p, &one, q < 0 ? 0 : 1, size, &part)) != CM_OK)
				break;
			intersect(&acc, &acc_set, &part);
		}
		if (c->nin) {
			uint32_t *t = realloc(qs, c->nin * sizeof(*qs));
			size_t nq = 0;
			if (!t) {
				rc = CM_ERR_NOMEM;
				break;
			}
			qs = t;
			for (uint32_t j = 0; j < c->nin; j++) {
				long q = lookup(p, fi, &c->in[j]);
				int dup = 0;
				for (size_t k = 0; q >= 0 && k < nq && !dup; k++)
					dup = qs[k] == (uint32_t)q;
				if (q >= 0 && !dup)
					qs[nq++] = (uint32_t)q;
			}
			if ((rc = unite(p, qs, nq, size, &part)) != CM_OK)
				break;
			intersect(&acc, &acc_set, &part);
		}
		if (c->has_gt || c->has_gte || c->has_lt || c->has_lte) {
			size_t from, to;
			range_of(p, fl, c, &from, &to);
			if ((rc = unite(p, to > from ? fl->num + from : NULL, to > from ? to - from : 0, size, &part)) !=
			    CM_OK)
				break;
			intersect(&acc, &acc_set, &part);
		}
	}
	free(qs);
	if (rc != CM_OK) {
		free(acc.v);
		return rc;
	}
	if (acc.n == 0) {
		free(acc.v);
		acc.v = NULL;
	}
	*out = acc.v;
	*nout = acc.n;
	return CM_OK;
}

/* ---- compiled: a test per seq ---- */

/* One condition: the field's column, the postings its value must be among
 * (one, or a sorted set; neither: any value) and the range it must be in. */
typedef struct pcond {
	const uint32_t *col;
	size_t ncol;
	uint32_t one;        /* the one admitted posting + 1, or 0 */
	const uint32_t *set; /* sorted admitted postings + 1 (nset > 1) */
	size_t nset;
	int range;
	const ix_cond *c;
} pcond;

struct ix_pfilter {
	const ix_postings *p;
	uint32_t n;
	int none; /* nothing matches */
	pcond c[IX_FILTER_MAX_CONDITIONS];
	uint32_t ids[]; /* the sets */
};

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* 1 if v passes the condition's bounds (the rules of range_of). */
static int in_range(const pval *v, const ix_cond *c)
{
	if (!ixp_is_numeric(v))
		return 0;
	if ((c->has_gt && ixp_cmp_to_double(v, c->gt) <= 0) || (c->has_gte && ixp_cmp_to_double(v, c->gte) < 0))
		return 0;
	return !((c->has_lt && ixp_cmp_to_double(v, c->lt) >= 0) || (c->has_lte && ixp_cmp_to_double(v, c->lte) > 0));
}

/* Seqs in the numeric postings of fl within the condition's range: exact
 * up to 1024 values, else proportional to their number. */
static size_t range_count(const ix_postings *p, const pfield *fl, const ix_cond *c)
{
	size_t from, to, n = 0;
	range_of(p, fl, c, &from, &to);
	if (to <= from)
		return 0;
	if (to - from > 1024)
		return (size_t)((double)fl->live * (double)(to - from) / (double)fl->nnum) + 1;
	for (size_t j = from; j < to; j++)
		n += p->p[fl->num[j]].live;
	return n;
}

int ix_postings_compile(const ix_postings *p, const ix_filter *f, ix_pfilter **out, size_t *est)
{
	if (!p || !p->enabled)
		return CM_ERR_STATE;
	size_t nids = 0;
	for (uint32_t i = 0; i < f->n; i++)
		nids += f->conds[i].nin;
	ix_pfilter *pf = calloc(1, sizeof(*pf) + nids * sizeof(uint32_t));
	if (!pf)
		return CM_ERR_NOMEM;
	pf->p = p;
	pf->n = f->n;
	size_t best = SIZE_MAX, used = 0;
	for (uint32_t i = 0; i < f->n && !pf->none; i++) {
		const ix_cond *c = &f->conds[i];
		pcond *pc = &pf->c[i];
		size_t klen = strlen(c->key), count = SIZE_MAX;
		long fi = ixp_find_field(p, c->key, klen, ixp_hash_bytes(c->key, klen, IXP_FIELD_SALT));
		if (fi < 0) {
			pf->none = 1;
			break;
		}
		const pfield *fl = &p->fl[fi];
		pc->col = fl->col;
		pc->ncol = fl->ncol;
		pc->c = c;
		pc->range = c->has_gt || c->has_gte || c->has_lt || c->has_lte;
		long eq = c->has_eq ? lookup(p, fi, &c->eq) : -1;
		if (c->has_eq && eq < 0) {
			pf->none = 1;
			break;
		}
		if (c->nin) {
			uint32_t *set = pf->ids + used;
			size_t m = 0;
			for (uint32_t j = 0; j < c->nin; j++) {
				long q = lookup(p, fi, &c->in[j]);
				if (q >= 0 && (!c->has_eq || q == eq))
					set[m++] = (uint32_t)q + 1;
			}
			qsort(set, m, sizeof(*set), u32_cmp);
			size_t u = 0;
			for (size_t j = 0; j < m; j++)
				if (u == 0 || set[u - 1] != set[j])
					set[u++] = set[j];
			if (u == 0) {
				pf->none = 1;
				break;
			}
			used += u;
			if (u == 1) {
				pc->one = set[0];
			} else {
				pc->set = set;
				pc->nset = u;
			}
			count = 0;
			for (size_t j = 0; j < u; j++)
				count += p->p[set[j] - 1].live;
		} else if (c->has_eq) {
			pc->one = (uint32_t)eq + 1;
			count = p->p[eq].live;
		}
		if (pc->range) {
			size_t r = range_count(p, fl, c);
			count = r < count ? r : count;
		}
		best = count < best ? count : best;
	}
	if (pf->none)
		best = 0;
	*out = pf;
	*est = best;
	return CM_OK;
}

int ix_pfilter_match(const ix_pfilter *pf, uint64_t seq)
{
	if (pf->none)
		return 0;
	for (uint32_t i = 0; i < pf->n; i++) {
		const pcond *pc = &pf->c[i];
		uint32_t id = seq < pc->ncol ? pc->col[seq] : 0;
		if (!id)
			return 0;
		if (pc->one && id != pc->one)
			return 0;
		if (pc->set) {
			size_t lo = 0, hi = pc->nset;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (pc->set[mid] < id)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo == pc->nset || pc->set[lo] != id)
				return 0;
		}
		if (pc->range && !in_range(&pf->p->p[id - 1].v, pc->c))
			return 0;
	}
	return 1;
}

void ix_pfilter_free(ix_pfilter *pf)
{
	free(pf);
}
