/* Search of one fragment: the FAISS index (with a selector for tombstones
 * and filters, exhaustively when few vectors match or the graph comes back
 * short) merged with an exact scan of the records the index does not cover
 * yet; hits are read from the log. A filter that matches many records is
 * compiled from the postings into a test the graph walk applies to each
 * position it visits (nothing per matching record, nothing per position of
 * the index); one that matches few is turned into the set of its positions
 * and searched exactly. */
#include "ix_fragment_int.h"
#include "cm_err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cand {
	float d;
	uint64_t seq;
} cand;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cand_less(const cand *a, const cand *b)
{
	return a->d < b->d || (a->d == b->d && a->seq < b->seq);
}

/* The k best candidates: a max-heap on (distance, seq). */
typedef struct topk {
	cand *h;
	size_t n, k;
} topk;

static void topk_push(topk *t, float d, uint64_t seq)
{
	cand c = {d, seq};
	size_t i;
	if (t->n < t->k) {
		i = t->n++;
		while (i > 0 && cand_less(&t->h[(i - 1) / 2], &c)) {
			t->h[i] = t->h[(i - 1) / 2];
			i = (i - 1) / 2;
		}
		t->h[i] = c;
		return;
	}
	if (!cand_less(&c, &t->h[0]))
		return;
	i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const cand *big = &c;
		if (l < t->n && cand_less(big, &t->h[l]))
			m = l, big = &t->h[l];
		if (r < t->n && cand_less(big, &t->h[r]))
			m = r;
		if (m == i)
			break;
		t->h[i] = t->h[m];
		i = m;
	}
	t->h[i] = c;
}

static int cand_cmp(const void *a, const void *b)
{
	return cand_less(a, b) ? -1 : cand_less(b, a) ? 1 : 0;
}

/* One search's working state. */
typedef struct sctx {
	ix_fragment *f;
	const float *q;  /* prepared query */
	uint32_t k;
	topk top;
	ix_reader *rd;
	float *dist;
	int64_t *labels;
	size_t kbuf;
	char *err;
	size_t errlen;
} sctx;

/* Exact distances from the log for the given seqs (quantized indexes). */
static int exact_from_log(sctx *c, const uint64_t *seqs, size_t n)
{
	cm_arena a;
	float *v = malloc(ix_spec_row(&c->f->spec) * sizeof(float));
	int rc = CM_OK;
	if (!v)
		return CM_ERR_NOMEM;
	cm_arena_init(&a, 0);
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		ix_record r;
		float d;
		cm_arena_reset(&a);
		rc = ix_read_leaf(c->rd, seqs[i], &a, &r);
		if (rc == CM_OK && (r.vec || r.bin)) {
			ix_vec_row(&c->f->spec, r.vec, r.bin, v);
			ix_vec_prepare(&c->f->spec, v, 1);
			ix_distances(&c->f->spec, c->q, v, 1, &d);
			topk_push(&c->top, d, seqs[i]);
		}
	}
	cm_arena_free(&a);
	free(v);
	return rc;
}

/* Searches the index among the positions sel admits (NULL: all);
 * exhaustive: every candidate, exactly; admitted: how many positions sel
 * admits, or an upper bound (the search widens by the share). Returns the
 * count found through *found. */
static int search_index(sctx *c, const ix_select *sel, size_t admitted, uint32_t kk, int exhaustive, size_t *found)
{
	ix_fragment *f = c->f;
	size_t n = 0;
	int rc = ix_index_search(f->index, c->q, kk, exhaustive, sel, admitted, c->dist, c->labels, &n, c->err,
				 c->errlen);
	if (rc == CM_OK)
		for (size_t i = 0; i < n; i++)
			topk_push(&c->top, c->dist[i], (uint64_t)c->labels[i]);
	*found = n;
	return rc;
}

/* Exactly over the given positions (sorted). */
static int exact_positions(sctx *c, const size_t *pos, size_t n, uint8_t *bits)
{
	ix_fragment *f = c->f;
	if (n == 0)
		return CM_OK;
	uint32_t kn = c->k < n ? c->k : (uint32_t)n;
	size_t found = 0;
	int rc = ix_index_scan(f->index, c->q, kn, pos, n, c->dist, c->labels, &found, c->err, c->errlen);
	if (rc == CM_OK) {
		for (size_t i = 0; i < found; i++)
			topk_push(&c->top, c->dist[i], (uint64_t)c->labels[i]);
		return CM_OK;
	}
	if (rc != CM_ERR_STATE)
		return rc;
	if (ix_index_is_exact(f->index)) {
		for (size_t i = 0; i < n; i++)
			bits[pos[i] / 8] |= (uint8_t)(1u << (pos[i] % 8));
		ix_select sel = {.bitmap = bits, .nbytes = ix_index_size(f->index) / 8 + 1};
		return search_index(c, &sel, n, kn, 1, &found);
	}
	uint64_t *seqs = malloc(n * sizeof(*seqs));
	if (!seqs)
		return CM_ERR_NOMEM;
	const int64_t *lab = ix_index_labels(f->index);
	for (size_t i = 0; i < n; i++)
		seqs[i] = (uint64_t)lab[pos[i]];
	rc = exact_from_log(c, seqs, n);
	free(seqs);
	return rc;
}

/* Pending (not yet indexed) live vectors, exactly; with filtered set, only
 * those among the nsel sorted seqs of sel. */
static int search_pending(sctx *c, int filtered, const uint64_t *sel, size_t nsel)
{
	ix_fragment *f = c->f;
	size_t rows = (size_t)(f->pvec_end - f->pvec_first);
	if (rows == 0)
		return CM_OK;
	uint64_t from = ix_indexed_end(f);
	if (filtered) {
		for (size_t i = 0; i < nsel; i++) {
			if (sel[i] < from || sel[i] >= f->size)
				continue;
			const ix_pend *e = ix_pend_at(f, sel[i]);
			float d;
			if (e->kind != IX_P_UPSERT || e->killed_by != IX_NONE)
				continue;
			ix_distances(&f->spec, c->q, ix_pvec_row(f, e->row), 1, &d);
			topk_push(&c->top, d, sel[i]);
		}
		return CM_OK;
	}
	float *dist = malloc(rows * sizeof(float));
	if (!dist)
		return CM_ERR_NOMEM;
	ix_distances(&f->spec, c->q, ix_pvec_row(f, f->pvec_first), rows, dist);
	for (size_t i = (size_t)(from - f->P); i < ix_pend_len(f); i++) {
		const ix_pend *e = &f->pend[f->pend_start + i];
		if (e->kind == IX_P_UPSERT && e->killed_by == IX_NONE)
			topk_push(&c->top, dist[e->row - f->pvec_first], f->P + i);
	}
	free(dist);
	return CM_OK;
}

/* The filter test on an index position: its label's seq. */
typedef struct pred_arg {
	const int64_t *labels;
	const ix_pfilter *pf;
} pred_arg;

static int pred_admit(const void *arg, size_t pos)
{
	const pred_arg *a = arg;
	return ix_pfilter_match(a->pf, (uint64_t)a->labels[pos]);
}

/* A filter matching about est live records (an upper bound, or an
 * estimate), searched through its compiled test: the pending records one by
 * one, the index by a walk that tests each position it visits. Called with
 * no candidates yet; *done = 0 (and none kept) when the index gave fewer
 * than k: the caller then searches the filter's positions exactly. */
static int search_compiled(sctx *c, const ix_pfilter *pf, size_t est, uint32_t kk, int *done)
{
	ix_fragment *f = c->f;
	size_t ntotal = ix_index_size(f->index), nlive_idx = ntotal - f->ndead, found = 0;
	uint64_t from = ix_indexed_end(f);
	*done = 0;
	for (uint64_t s = from; s < f->size; s++) {
		const ix_pend *e = ix_pend_at(f, s);
		float d;
		if (e->kind != IX_P_UPSERT || e->killed_by != IX_NONE || !ix_pfilter_match(pf, s))
			continue;
		ix_distances(&f->spec, c->q, ix_pvec_row(f, e->row), 1, &d);
		topk_push(&c->top, d, s);
	}
	pred_arg pa = {ix_index_labels(f->index), pf};
	ix_select sel = {.bitmap = f->ndead ? f->livebits : NULL, .nbytes = ntotal / 8 + 1, .admit = pred_admit,
			 .arg = &pa};
	int rc = search_index(c, &sel, est < nlive_idx ? est : nlive_idx, kk, 0, &found);
	if (rc == CM_OK && found < c->k) {
		c->top.n = 0; /* the caller starts over */
		return CM_OK;
	}
	*done = 1;
	return rc;
}

static int search_view(sctx *c, const ix_filter *flt)
{
	ix_fragment *f = c->f;
	size_t ntotal = ix_index_size(f->index), nlive_idx = ntotal - f->ndead, found = 0;
	uint32_t kk = (uint32_t)(c->kbuf < ntotal ? c->kbuf : ntotal);
	ix_select live = {.bitmap = f->livebits, .nbytes = ntotal / 8 + 1};
	int rc;
	if (!flt || flt->n == 0) {
		if ((rc = search_pending(c, 0, NULL, 0)) != CM_OK)
			return rc;
		if (nlive_idx == 0)
			return CM_OK;
		topk saved = c->top;
		cand *copy = malloc(c->top.k * sizeof(cand));
		if (!copy)
			return CM_ERR_NOMEM;
		memcpy(copy, c->top.h, c->top.n * sizeof(cand));
		rc = search_index(c, f->ndead ? &live : NULL, nlive_idx, kk, 0, &found);
		if (rc == CM_OK && found < (c->k < nlive_idx ? c->k : nlive_idx)) {
			/* Too many tombstones on the graph's path: visit everything. */
			memcpy(c->top.h, copy, saved.n * sizeof(cand));
			c->top.n = saved.n;
			rc = search_index(c, f->ndead ? &live : NULL, nlive_idx, kk, 1, &found);
		}
		free(copy);
		return rc;
	}
	ix_pfilter *pf = NULL;
	size_t est = 0;
	if (nlive_idx && ix_postings_compile(f->post, flt, &pf, &est) == CM_OK) {
		int done = 0;
		rc = CM_OK;
		if (est > f->opt.exact_threshold && (double)est >= f->opt.exact_share * (double)nlive_idx &&
		    !ix_index_scan_cheaper(f->index, kk, est))
			rc = search_compiled(c, pf, est, kk, &done);
		ix_pfilter_free(pf);
		if (done)
			atomic_fetch_add(&f->filter_compiled, 1);
		if (rc != CM_OK || done)
			return rc;
	}
	atomic_fetch_add(&f->filter_sets, 1);
	uint64_t *seqs = NULL;
	size_t nseqs = 0, npos = 0;
	rc = ix_postings_seqs(f->post, flt, f->size, &seqs, &nseqs);
	if (rc == CM_ERR_STATE) /* postings off (memory cap): the tables */
		rc = ix_filter_seqs(c->rd->db, flt, &seqs, &nseqs, c->err, c->errlen);
	if (rc != CM_OK)
		return rc;
	size_t *pos = malloc((nseqs ? nseqs : 1) * sizeof(*pos));
	uint8_t *bits = calloc(ntotal / 8 + 1, 1);
	if (!pos || !bits) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	npos = ix_view_positions(f, seqs, nseqs, pos);
	if ((rc = search_pending(c, 1, seqs, nseqs)) != CM_OK)
		goto out;
	if (npos == 0)
		goto out;
	if (npos <= f->opt.exact_threshold || (double)npos < f->opt.exact_share * (double)nlive_idx ||
	    ix_index_scan_cheaper(f->index, kk, npos)) {
		rc = exact_positions(c, pos, npos, bits);
		goto out;
	}
	for (size_t i = 0; i < npos; i++)
		bits[pos[i] / 8] |= (uint8_t)(1u << (pos[i] % 8));
	cand *copy = malloc(c->top.k * sizeof(cand));
	size_t saved_n = c->top.n;
	if (!copy) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	memcpy(copy, c->top.h, saved_n * sizeof(cand));
	ix_select sel = {.bitmap = bits, .nbytes = ntotal / 8 + 1};
	rc = search_index(c, &sel, npos, kk, 0, &found);
	if (rc == CM_OK && found < (c->k < npos ? c->k : npos)) {
		/* The graph or the probed lists held too few matches. */
		memcpy(c->top.h, copy, saved_n * sizeof(cand));
		c->top.n = saved_n;
		memset(bits, 0, ntotal / 8 + 1);
		rc = exact_positions(c, pos, npos, bits);
	}
	free(copy);
out:
	free(seqs);
	free(pos);
	free(bits);
	return rc;
}

static int fill_hit(sctx *c, uint64_t seq, float d, int include_vectors, cm_arena *a, ix_hit *h)
{
	ix_record r;
	int rc = ix_read_leaf(c->rd, seq, a, &r);
	if (rc != CM_OK)
		return ix_errf(rc == CM_ERR_NOTFOUND ? CM_ERR_INTERNAL : rc, c->err, c->errlen,
			       "record %llu of a hit cannot be read", (unsigned long long)seq);
	memcpy(h->id, r.id, IX_ID_BYTES);
	h->distance = d;
	h->version = r.version;
	h->seq = seq;
	h->dim = include_vectors ? r.dim : 0;
	h->vec = include_vectors ? r.vec : NULL;
	h->bin = include_vectors ? r.bin : NULL;
	h->nfields = r.nfields;
	h->fields = r.fields;
	return CM_OK;
}

int ix_fragment_search(ix_fragment *f, const ix_query *q, cm_arena *a, ix_result *out, char *err, size_t errlen)
{
	sctx c = {.f = f, .err = err, .errlen = errlen};
	float *qv = NULL;
	int rc;
	double t0 = now_s();
	out->search_s = out->hits_s = 0;
	if (f->spec.metric == IX_HAMMING) {
		if (!q->bin || q->vec || q->dim != f->spec.dim)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "query.binary: %u bytes, the dimension is %u bits (%u bytes, no values)",
				       q->bin ? q->dim / 8 : 0, f->spec.dim, f->spec.dim / 8);
	} else if (!q->vec || q->bin || q->dim != f->spec.dim) {
		return ix_errf(CM_ERR_INVALID, err, errlen, "query.vector: %u values, the dimension is %u",
			       q->vec ? q->dim : 0, f->spec.dim);
	}
	if (q->k < 1 || q->k > f->opt.max_k)
		return ix_errf(CM_ERR_INVALID, err, errlen, "top_k: %u not in 1..%u", q->k, f->opt.max_k);
	for (uint32_t i = 0; q->vec && i < q->dim; i++)
		if (!isfinite(q->vec[i]))
			return ix_errf(CM_ERR_INVALID, err, errlen, "query.vector: value %u is not finite", i);
	if (q->vec && !ix_vec_usable(&f->spec, q->vec))
		return ix_errf(CM_ERR_INVALID, err, errlen, "query.vector: zero vector under COSINE");
	qv = malloc(ix_spec_row(&f->spec) * sizeof(float));
	if (!qv)
		return CM_ERR_NOMEM;
	ix_vec_row(&f->spec, q->vec, q->bin, qv);
	ix_vec_prepare(&f->spec, qv, 1);
	c.q = qv;
	c.k = q->k;
	c.rd = ix_reader_get(f, err, errlen);
	if (!c.rd) {
		free(qv);
		return CM_ERR_IO;
	}
	pthread_rwlock_rdlock(&f->lk);
	if (f->broken) {
		rc = ix_fragment_broken(f, err, errlen);
		goto unlock;
	}
	int exact = ix_index_is_exact(f->index);
	c.kbuf = exact ? q->k : (size_t)q->k * f->opt.rerank;
	c.top.k = c.kbuf;
	c.top.h = malloc(c.kbuf * sizeof(cand));
	c.dist = malloc(c.kbuf * sizeof(float));
	c.labels = malloc(c.kbuf * sizeof(int64_t));
	if (!c.top.h || !c.dist || !c.labels) {
		rc = CM_ERR_NOMEM;
		goto unlock;
	}
	if (ix_reader_begin(c.rd) != CM_OK) {
		rc = ix_sql_fail(c.rd->db, err, errlen, "begin");
		goto unlock;
	}
	rc = search_view(&c, q->filter);
	if (rc == CM_OK) {
		qsort(c.top.h, c.top.n, sizeof(cand), cand_cmp);
		double t1 = now_s();
		out->search_s = t1 - t0;
		ix_hit *hits = cm_arena_alloc(a, (c.top.n ? c.top.n : 1) * sizeof(*hits));
		if (!hits)
			rc = CM_ERR_NOMEM;
		for (size_t i = 0; rc == CM_OK && i < c.top.n; i++)
			rc = fill_hit(&c, c.top.h[i].seq, c.top.h[i].d, 1, a, &hits[i]);
		if (rc == CM_OK && !exact) {
			/* Re-rank quantized candidates by their exact distances. */
			float *v = malloc(ix_spec_row(&f->spec) * sizeof(float));
			if (!v)
				rc = CM_ERR_NOMEM;
			for (size_t i = 0; rc == CM_OK && i < c.top.n; i++) {
				ix_vec_row(&f->spec, hits[i].vec, hits[i].bin, v);
				ix_vec_prepare(&f->spec, v, 1);
				ix_distances(&f->spec, qv, v, 1, &hits[i].distance);
				c.top.h[i].d = hits[i].distance;
				c.top.h[i].seq = i; /* the hit's slot, to sort hits along */
			}
			free(v);
			if (rc == CM_OK) {
				qsort(c.top.h, c.top.n, sizeof(cand), cand_cmp);
				ix_hit *sorted = cm_arena_alloc(a, (c.top.n ? c.top.n : 1) * sizeof(*hits));
				if (!sorted)
					rc = CM_ERR_NOMEM;
				for (size_t i = 0; rc == CM_OK && i < c.top.n; i++)
					sorted[i] = hits[c.top.h[i].seq];
				hits = sorted;
			}
		}
		if (rc == CM_OK) {
			out->n = c.top.n < q->k ? c.top.n : q->k;
			for (size_t i = 0; i < out->n; i++)
				if (!q->include_vectors) {
					hits[i].vec = NULL;
					hits[i].bin = NULL;
					hits[i].dim = 0;
				}
			out->hits = hits;
			out->hits_s = now_s() - t1;
			out->log_size = f->size;
			/* under the same lock: the root of exactly what was searched */
			rc = cm_merkle_root(f->merkle, f->size, out->root);
		}
	}
	ix_reader_end(c.rd);
unlock:
	pthread_rwlock_unlock(&f->lk);
	ix_reader_put(f, c.rd);
	free(c.top.h);
	free(c.dist);
	free(c.labels);
	free(qv);
	return rc;
}

int ix_hit_to_pb(const ix_hit *h, cm_arena *a, Muri__V1__Hit **out)
{
	Muri__V1__Hit *pb = cm_arena_alloc(a, sizeof(*pb));
	char *id = cm_arena_alloc(a, IX_UUID_CHARS + 1);
	if (!pb || !id)
		return CM_ERR_NOMEM;
	muri__v1__hit__init(pb);
	ix_uuid_format(h->id, id);
	pb->id = id;
	pb->distance = h->distance;
	pb->version = h->version;
	pb->seq = h->seq;
	if (h->vec || h->bin) {
		Muri__V1__Vector *v = cm_arena_alloc(a, sizeof(*v));
		if (!v)
			return CM_ERR_NOMEM;
		muri__v1__vector__init(v);
		if (h->bin) {
			v->binary.len = h->dim / 8;
			v->binary.data = (uint8_t *)h->bin;
		} else {
			v->n_values = h->dim;
			v->values = (float *)h->vec;
		}
		pb->vector = v;
	}
	int rc = ix_meta_to_pb(h->fields, h->nfields, a, &pb->metadata);
	if (rc)
		return rc;
	*out = pb;
	return CM_OK;
}
