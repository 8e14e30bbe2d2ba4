/* The merge of indexer answers (gw_merge.h): per-answer checks, the vote per
 * candidate within a fragment, the global top-k and the ranking of nodes. */
#include "gw_merge.h"
#include "cm_err.h"
#include "cm_uuid.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HB CM_HASH_BYTES

/* One checked hit of an answer. */
typedef struct ahit {
	uint8_t key[HB];          /* the record: id, version, seq, vector, metadata */
	uint8_t id[CM_ANSWER_ID_BYTES];
	uint64_t version, seq;
	float d;                  /* recomputed */
	const Muri__V1__Hit *pb;
} ahit;

/* One answer while merging. */
typedef struct ans {
	gw_report *rep;
	const Muri__V1__LocalSearchResponse *r;
	ahit *hits;               /* checked hits, answer order */
	ahit **by_id;             /* the same, sorted by id */
	size_t n;
	int full;                 /* k hits */
	float worst;              /* distance of the farthest hit */
	uint64_t worst_seq;       /* and its seq (the indexer breaks ties by seq) */
} ans;

/* A candidate of one fragment: a record and the answers that returned it. */
typedef struct cand {
	const ahit *h;
	uint64_t support;         /* bit i: answer i of the fragment returned it */
	uint32_t nsupport;
	int accepted;
} cand;

const char *gw_reason_name(int reason)
{
	static const char *names[] = {"ok",	  "no_answer", "malformed", "signature", "stale",
				      "too_many", "duplicate", "vector",    "distance",  "root",
				      "omitted",  "outvoted",  "conflict"};
	return reason >= 0 && reason < (int)(sizeof(names) / sizeof(names[0])) ? names[reason] : "unknown";
}

static void flag(gw_report *rep, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Marks a proven lie; the first reason stays. */
static void flag(gw_report *rep, int reason, const char *fmt, ...)
{
	if (!rep->liar) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(rep->why, sizeof(rep->why), fmt, ap);
		va_end(ap);
		rep->reason = reason;
	}
	rep->liar = 1;
	rep->valid = 0;
}

int gw_distance(int metric, const float *q, const float *x, uint32_t dim, double rel_tol, double *d,
		double *tol)
{
	double qq = 0, xx = 0, qx = 0, l2 = 0;
	for (uint32_t i = 0; i < dim; i++) {
		double a = q[i], b = x[i];
		qq += a * a;
		xx += b * b;
		qx += a * b;
		l2 += (a - b) * (a - b);
	}
	double bound = rel_tol + 2.0 * dim * FLT_EPSILON;
	switch (metric) {
	case MURI__V1__METRIC__L2:
		*d = l2;
		*tol = (qq + xx) * bound;
		return CM_OK;
	case MURI__V1__METRIC__DOT_PRODUCT:
		*d = -qx;
		*tol = sqrt(qq) * sqrt(xx) * bound;
		return CM_OK;
	case MURI__V1__METRIC__COSINE:
		if (!(qq > 0) || !(xx > 0))
			return CM_ERR_INVALID;
		*d = 1.0 - qx / (sqrt(qq) * sqrt(xx));
		*tol = bound;
		return CM_OK;
	default:
		return CM_ERR_INVALID;
	}
}

static int id_cmp(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, CM_ANSWER_ID_BYTES);
}

static int ahit_by_id(const void *x, const void *y)
{
	const ahit *const *a = x, *const *b = y;
	return id_cmp((*a)->id, (*b)->id);
}

static const ahit *find_id(const ans *a, const uint8_t *id)
{
	size_t lo = 0, hi = a->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = id_cmp(a->by_id[mid]->id, id);
		if (c == 0)
			return a->by_id[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The record's identity: everything of a hit but its distance. */
static int record_key(const Muri__V1__Hit *h, const uint8_t *id, uint8_t out[HB])
{
	uint8_t vd[HB], md[HB], b[16];
	int rc = cm_answer_metadata_digest(md, h->metadata);
	if (rc != CM_OK)
		return rc;
	cm_answer_pb_vector_digest(vd, h->vector);
	cm_hasher hs;
	cm_hasher_init(&hs, CM_DOM_ANSWER);
	cm_hasher_update(&hs, "R", 1);
	cm_hasher_update(&hs, id, CM_ANSWER_ID_BYTES);
	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(h->version >> (56 - 8 * i));
		b[8 + i] = (uint8_t)(h->seq >> (56 - 8 * i));
	}
	cm_hasher_update(&hs, b, 16);
	cm_hasher_update(&hs, vd, HB);
	cm_hasher_update(&hs, md, HB);
	cm_hasher_final(&hs, out);
	return CM_OK;
}

/* The checks of one answer on its own; a failed one flags the report. */
static int check_answer(const gw_query *q, const uint8_t *qd, const gw_frag_answers *fa, const gw_merge_opts *o,
			ans *a)
{
	gw_report *rep = a->rep;
	const Muri__V1__LocalSearchResponse *r = a->r;
	rep->log_size = r->log_size;
	rep->hits = (uint32_t)r->n_hits;
	int rc = CM_OK, sigs = !(o->skip & GW_SKIP_SIGNATURE);
	if (sigs && (r->signer.len != CM_PK_BYTES || r->signature.len != CM_SIG_BYTES)) {
		flag(rep, GW_R_SIGNATURE, "no signature");
		return CM_OK;
	}
	if (r->root.len != HB) {
		flag(rep, GW_R_MALFORMED, "root: %zu bytes, expected %d", r->root.len, HB);
		return CM_OK;
	}
	if (r->n_hits > q->k) {
		flag(rep, GW_R_TOO_MANY, "hits: %zu, top_k is %u", r->n_hits, q->k);
		return CM_OK;
	}
	if (sigs)
		rc = cm_answer_verify_seen(rep->node, qd, q->magu, fa->fragment, r, o->seen);
	if (rc == CM_ERR_PERM) {
		flag(rep, GW_R_SIGNATURE, "signer: not the node asked");
		return CM_OK;
	}
	if (rc == CM_ERR_INVALID) {
		flag(rep, GW_R_MALFORMED, "hits: a malformed id or metadata");
		return CM_OK;
	}
	if (rc != CM_OK) {
		flag(rep, GW_R_SIGNATURE, "signature: not over this query, fragment and answer");
		return CM_OK;
	}
	if (r->log_size < fa->min_size && !(o->skip & GW_SKIP_STALE)) {
		flag(rep, GW_R_STALE, "log_size: %llu, below the %llu this read needs",
		     (unsigned long long)r->log_size, (unsigned long long)fa->min_size);
		return CM_OK;
	}
	if (fa->committed_size && fa->committed_root && r->log_size == fa->committed_size &&
	    memcmp(r->root.data, fa->committed_root, HB) != 0) {
		flag(rep, GW_R_ROOT, "root: differs from the root committed at size %llu",
		     (unsigned long long)r->log_size);
		return CM_OK;
	}
	a->hits = calloc(r->n_hits ? r->n_hits : 1, sizeof(*a->hits));
	a->by_id = calloc(r->n_hits ? r->n_hits : 1, sizeof(*a->by_id));
	if (!a->hits || !a->by_id)
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < r->n_hits; i++) {
		const Muri__V1__Hit *h = r->hits[i];
		ahit *x = &a->hits[i];
		cm_uuid id;
		double d, tol;
		if (cm_uuid_parse(&id, h->id) != CM_OK) {
			flag(rep, GW_R_MALFORMED, "hits[%zu].id: not a UUIDv4", i);
			return CM_OK;
		}
		if (q->metric == MURI__V1__METRIC__HAMMING) {
			if (!h->vector || h->vector->n_values || h->vector->binary.len != q->dim / 8) {
				flag(rep, GW_R_VECTOR, "hits[%zu].vector.binary: %zu bytes, the dimension is %u bits", i,
				     h->vector ? h->vector->binary.len : 0, q->dim);
				return CM_OK;
			}
			d = (double)cm_answer_hamming(q->bin, h->vector->binary.data, q->dim / 8);
			if (h->distance != (float)d && !(o->skip & GW_SKIP_DISTANCE)) {
				flag(rep, GW_R_DISTANCE, "hits[%zu].distance: %.9g, its vector gives %.0f bits", i,
				     (double)h->distance, d);
				return CM_OK;
			}
		} else if (!h->vector || h->vector->n_values != q->dim || h->vector->binary.len) {
			flag(rep, GW_R_VECTOR, "hits[%zu].vector: %zu values, the dimension is %u", i,
			     h->vector ? h->vector->n_values : 0, q->dim);
			return CM_OK;
		}
		for (uint32_t j = 0; !q->bin && j < q->dim; j++)
			if (!isfinite(h->vector->values[j])) {
				flag(rep, GW_R_VECTOR, "hits[%zu].vector: value %u is not finite", i, j);
				return CM_OK;
			}
		if (!q->bin && gw_distance(q->metric, q->vec, h->vector->values, q->dim, o->rel_tol, &d, &tol) != CM_OK) {
			flag(rep, GW_R_VECTOR, "hits[%zu].vector: zero vector under COSINE", i);
			return CM_OK;
		}
		if (!q->bin && (!isfinite(h->distance) || fabs((double)h->distance - d) > tol) &&
		    !(o->skip & GW_SKIP_DISTANCE)) {
			flag(rep, GW_R_DISTANCE, "hits[%zu].distance: %.9g, its vector gives %.9g", i,
			     (double)h->distance, d);
			return CM_OK;
		}
		if (h->seq >= r->log_size) {
			flag(rep, GW_R_MALFORMED, "hits[%zu].seq: %llu, the answer's log has %llu records", i,
			     (unsigned long long)h->seq, (unsigned long long)r->log_size);
			return CM_OK;
		}
		memcpy(x->id, id.b, CM_ANSWER_ID_BYTES);
		x->version = h->version;
		x->seq = h->seq;
		x->d = (float)d;
		x->pb = h;
		if ((rc = record_key(h, x->id, x->key)) != CM_OK) {
			if (rc == CM_ERR_NOMEM)
				return rc;
			flag(rep, GW_R_MALFORMED, "hits[%zu].metadata: not canonical", i);
			return CM_OK;
		}
		a->by_id[i] = x;
	}
	a->n = r->n_hits;
	qsort(a->by_id, a->n, sizeof(*a->by_id), ahit_by_id);
	for (size_t i = 1; i < a->n; i++)
		if (id_cmp(a->by_id[i - 1]->id, a->by_id[i]->id) == 0) {
			flag(rep, GW_R_DUPLICATE, "hits: id %s twice", a->by_id[i]->pb->id);
			return CM_OK;
		}
	a->full = a->n >= q->k;
	a->worst = -INFINITY;
	for (size_t i = 0; i < a->n; i++)
		if (a->hits[i].d > a->worst || (a->hits[i].d == a->worst && a->hits[i].seq > a->worst_seq)) {
			a->worst = a->hits[i].d;
			a->worst_seq = a->hits[i].seq;
		}
	rep->valid = 1;
	return CM_OK;
}

/* Among valid answers of the same log size, roots must agree: a root fewer
 * answers give than another at that size is a lie. */
static void check_roots(ans *as, size_t n)
{
	size_t same[GW_ANSWERS_MAX] = {0}, best[GW_ANSWERS_MAX] = {0};
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (as[i].rep->valid && as[j].rep->valid && as[j].r->log_size == as[i].r->log_size &&
			    memcmp(as[j].r->root.data, as[i].r->root.data, HB) == 0)
				same[i]++;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (as[i].rep->valid && as[j].rep->valid && as[j].r->log_size == as[i].r->log_size &&
			    same[j] > best[i])
				best[i] = same[j];
	for (size_t i = 0; i < n; i++)
		if (as[i].rep->valid && same[i] < best[i])
			flag(as[i].rep, GW_R_ROOT, "root: the other replicas at size %llu hold another",
			     (unsigned long long)as[i].r->log_size);
}

static int ahit_by_key(const void *x, const void *y)
{
	const ahit *const *a = x, *const *b = y;
	return memcmp((*a)->key, (*b)->key, HB);
}

/* Is answer a neutral about candidate c (see gw_merge.h)? */
static int neutral(const ans *a, const ahit *c, const ahit **same_id)
{
	const ahit *x = find_id(a, c->id);
	*same_id = x;
	if (a->r->log_size <= c->seq)
		return 1; /* it has not reached the record */
	if (x) /* a newer write of the id (a later record wins a tie of versions) */
		return x->version > c->version || (x->version == c->version && x->seq > c->seq);
	return a->full && (a->worst < c->d || (a->worst == c->d && a->worst_seq < c->seq));
}

static int cand_order(const void *x, const void *y)
{
	const cand *a = x, *b = y;
	if (a->h->d != b->h->d)
		return a->h->d < b->h->d ? -1 : 1;
	int c = id_cmp(a->h->id, b->h->id);
	if (c)
		return c;
	return a->h->version > b->h->version ? -1 : a->h->version < b->h->version ? 1 : 0;
}

static int cand_by_id(const void *x, const void *y)
{
	const cand *a = x, *b = y;
	int c = id_cmp(a->h->id, b->h->id);
	if (c)
		return c;
	if (a->h->version != b->h->version)
		return a->h->version > b->h->version ? -1 : 1;
	if (a->h->seq != b->h->seq)
		return a->h->seq > b->h->seq ? -1 : 1;
	return memcmp(a->h->key, b->h->key, HB);
}

/* The vote of one fragment: fills *cands with its accepted candidates,
 * nearest first, one per id (the newest version), and flags liars. */
static int vote(const gw_merge_opts *o, ans *as, size_t n, gw_frag_outcome *fo, cand **cands, size_t *ncands)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		if (as[i].rep->valid)
			total += as[i].n;
	const ahit **all = malloc((total ? total : 1) * sizeof(*all));
	cand *cs = calloc(total ? total : 1, sizeof(*cs));
	if (!all || !cs) {
		free(all);
		free(cs);
		return CM_ERR_NOMEM;
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (as[i].rep->valid)
			for (size_t j = 0; j < as[i].n; j++)
				all[m++] = &as[i].hits[j];
	qsort(all, m, sizeof(*all), ahit_by_key);
	size_t nc = 0;
	for (size_t i = 0; i < m;) {
		size_t j = i;
		cand *c = &cs[nc++];
		c->h = all[i];
		for (; j < m && memcmp(all[j]->key, all[i]->key, HB) == 0; j++)
			for (size_t a = 0; a < n; a++)
				if (as[a].rep->valid && all[j] >= as[a].hits && all[j] < as[a].hits + as[a].n) {
					c->support |= UINT64_C(1) << a;
					break;
				}
		c->nsupport = (uint32_t)__builtin_popcountll(c->support);
		i = j;
	}
	free(all);
	uint32_t nvalid = 0;
	for (size_t a = 0; a < n; a++)
		nvalid += (uint32_t)as[a].rep->valid;
	for (size_t ci = 0; ci < nc; ci++) {
		cand *c = &cs[ci];
		uint32_t against = 0, reached = 0;
		uint64_t opp = 0;
		for (size_t a = 0; a < n; a++) {
			const ahit *same;
			if (!as[a].rep->valid)
				continue;
			reached += as[a].r->log_size > c->h->seq;
			if ((c->support >> a & 1) || neutral(&as[a], c->h, &same))
				continue;
			against++;
			opp |= UINT64_C(1) << a;
		}
		/* a majority of the valid answers has reached the record, and more
		 * of those that should hold it do than do not */
		c->accepted = (2 * reached > nvalid && c->nsupport > against) || (o->skip & GW_SKIP_VOTE);
		if (c->nsupport == against && !c->accepted)
			fo->disputed++;
		if (!o->exact || (o->skip & GW_SKIP_VOTE))
			continue;
		/* exact indexes: disagreement is a lie of the side that lost */
		uint64_t max_s = 0;
		for (size_t a = 0; a < n; a++)
			if ((c->support >> a & 1) && as[a].r->log_size > max_s)
				max_s = as[a].r->log_size;
		for (size_t a = 0; a < n; a++) {
			const ahit *same;
			if (c->accepted && (opp >> a & 1)) {
				neutral(&as[a], c->h, &same);
				uint64_t s = as[a].r->log_size;
				if (same && same->version == c->h->version && same->seq == c->h->seq)
					flag(as[a].rep, GW_R_CONFLICT, "hits: %s version %llu differs from the majority's",
					     same->pb->id, (unsigned long long)same->version);
				else if (c->h->seq < s && s <= max_s)
					flag(as[a].rep, GW_R_OMITTED, "hits: left out %s at distance %.9g",
					     c->h->pb->id, (double)c->h->d);
			} else if (!c->accepted && c->nsupport < against && (c->support >> a & 1)) {
				/* proven by a majority of the opponents that held the record
				 * (a replica that had not reached its seq knows nothing) */
				uint32_t knew = 0;
				for (size_t b = 0; b < n; b++)
					if ((opp >> b & 1) && c->h->seq < as[b].r->log_size &&
					    as[b].r->log_size <= as[a].r->log_size)
						knew++;
				if (knew > c->nsupport)
					flag(as[a].rep, GW_R_OUTVOTED, "hits: %s at seq %llu is not what the majority holds",
					     c->h->pb->id, (unsigned long long)c->h->seq);
			}
		}
	}
	/* a liar found by the vote is no voter: vote again without it */
	int again = 0;
	for (size_t a = 0; a < n; a++)
		if (as[a].rep->liar && as[a].n) {
			as[a].n = 0;
			again = 1;
		}
	if (again) {
		free(cs);
		fo->disputed = 0;
		return vote(o, as, n, fo, cands, ncands);
	}
	/* accepted, one version per id (the newest), nearest first */
	size_t k = 0;
	for (size_t ci = 0; ci < nc; ci++)
		if (cs[ci].accepted)
			cs[k++] = cs[ci];
	qsort(cs, k, sizeof(*cs), cand_by_id);
	size_t w = 0;
	for (size_t ci = 0; ci < k; ci++)
		if (w == 0 || id_cmp(cs[w - 1].h->id, cs[ci].h->id) != 0)
			cs[w++] = cs[ci];
	qsort(cs, w, sizeof(*cs), cand_order);
	*cands = cs;
	*ncands = w;
	return CM_OK;
}

/* ---- the merge ------------------------------------------------------------ */

/* A fragment's accepted candidate in the global list. */
typedef struct gcand {
	cand c;
	size_t frag;              /* index into the fragments given */
	size_t first;             /* index of its fragment's first report */
} gcand;

static int gcand_order(const void *x, const void *y)
{
	const gcand *a = x, *b = y;
	int c = cand_order(&a->c, &b->c);
	return c ? c : a->frag < b->frag ? -1 : a->frag > b->frag ? 1 : 0;
}

static int rank_order(const void *x, const void *y)
{
	const gw_node_rank *a = x, *b = y;
	if (a->liar != b->liar)
		return a->liar - b->liar;
	if (a->answered != b->answered)
		return b->answered - a->answered;
	if (a->share != b->share)
		return a->share > b->share ? -1 : 1;
	if (a->latency_us != b->latency_us)
		return a->latency_us < b->latency_us ? -1 : 1;
	return memcmp(a->node, b->node, CM_PK_BYTES);
}

static int check_query(const gw_query *q, const gw_frag_answers *frags, size_t nfrags, char *err, size_t errlen)
{
	const char *what = NULL;
	if (!q->magu || strlen(q->magu) > CM_ANSWER_MAGU_MAX)
		what = "magu: missing or too long";
	else if (q->metric == MURI__V1__METRIC__HAMMING ? !q->bin || q->dim < 8 || q->dim % 8 : !q->vec || q->dim < 1)
		what = "query.vector: empty";
	else if (q->k < 1 || q->k > GW_K_MAX)
		what = "top_k: not in 1..1000";
	else if (q->metric != MURI__V1__METRIC__COSINE && q->metric != MURI__V1__METRIC__L2 &&
		 q->metric != MURI__V1__METRIC__DOT_PRODUCT && q->metric != MURI__V1__METRIC__HAMMING)
		what = "metric: unknown";
	for (size_t f = 0; !what && f < nfrags; f++)
		if (frags[f].n > GW_ANSWERS_MAX || (frags[f].n && !frags[f].answers))
			what = "answers: more than 64 for one fragment";
		else
			for (size_t i = 0; !what && i < frags[f].n; i++)
				if (!frags[f].answers[i].node)
					what = "answers: a node key is missing";
	if (what) {
		snprintf(err, errlen, "%s", what);
		return CM_ERR_INVALID;
	}
	return CM_OK;
}

/* Per node: its rank over every report. */
static int rank_nodes(gw_merge_result *r)
{
	r->ranks = calloc(r->nreports ? r->nreports : 1, sizeof(*r->ranks));
	if (!r->ranks)
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < r->nreports; i++) {
		const gw_report *p = &r->reports[i];
		gw_node_rank *nr = NULL;
		for (size_t j = 0; j < r->nranks && !nr; j++)
			if (memcmp(r->ranks[j].node, p->node, CM_PK_BYTES) == 0)
				nr = &r->ranks[j];
		if (!nr) {
			nr = &r->ranks[r->nranks++];
			nr->node = p->node;
		}
		nr->liar |= p->liar;
		nr->answered |= p->answered;
		nr->contributed += p->contributed;
		for (size_t f = 0; f < r->nfrags; f++)
			if (r->frags[f].fragment == p->fragment)
				nr->expected += r->frags[f].in_topk;
		if (p->latency_us > nr->latency_us)
			nr->latency_us = p->latency_us;
	}
	for (size_t j = 0; j < r->nranks; j++) {
		gw_node_rank *nr = &r->ranks[j];
		nr->share = nr->expected ? (double)nr->contributed / nr->expected : 1.0;
		if (!nr->answered || nr->liar)
			nr->share = 0;
	}
	qsort(r->ranks, r->nranks, sizeof(*r->ranks), rank_order);
	for (size_t j = 0; j < r->nranks; j++)
		r->ranks[j].rank = (uint32_t)j + 1;
	return CM_OK;
}

static void free_answers(ans *as, size_t n)
{
	for (size_t i = 0; as && i < n; i++) {
		free(as[i].hits);
		free(as[i].by_id);
	}
	free(as);
}

/* Checks and votes one fragment's answers into as (reports from rep);
 * appends its best k accepted candidates to *g. */
static int merge_fragment(const gw_query *q, const uint8_t *qd, const gw_frag_answers *fa, size_t f,
			  const gw_merge_opts *o, ans *as, gw_report *rep, size_t first, gw_frag_outcome *fo,
			  gcand **g, size_t *ng)
{
	int rc;
	fo->fragment = fa->fragment;
	fo->asked = (uint32_t)fa->n;
	for (size_t i = 0; i < fa->n; i++) {
		rep[i].node = fa->answers[i].node;
		rep[i].fragment = fa->fragment;
		rep[i].latency_us = fa->answers[i].latency_us;
		as[i].rep = &rep[i];
		as[i].r = fa->answers[i].resp;
		if (!as[i].r) {
			rep[i].reason = GW_R_NO_ANSWER;
			snprintf(rep[i].why, sizeof(rep[i].why), "no answer");
			continue;
		}
		rep[i].answered = 1;
		fo->answered++;
		if ((rc = check_answer(q, qd, fa, o, &as[i])) != CM_OK)
			return rc;
	}
	check_roots(as, fa->n);
	cand *cs = NULL;
	size_t nc = 0;
	if ((rc = vote(o, as, fa->n, fo, &cs, &nc)) != CM_OK)
		return rc;
	for (size_t i = 0; i < fa->n; i++) {
		fo->valid += (uint32_t)rep[i].valid;
		if (rep[i].valid && (!fo->root || as[i].r->log_size > fo->log_size)) {
			fo->log_size = as[i].r->log_size;
			fo->root = as[i].r->root.data;
		}
		if (!rep[i].answered)
			continue;
		if (!rep[i].valid) {
			rep[i].rejected = rep[i].hits;
			continue;
		}
		/* its hits that no accepted candidate is */
		uint32_t in = 0;
		for (size_t c = 0; c < nc; c++)
			in += (uint32_t)(cs[c].support >> i & 1);
		rep[i].rejected = (uint32_t)as[i].n - in;
	}
	/* at most k per fragment can reach the global top-k */
	size_t take = nc < q->k ? nc : q->k;
	gcand *g2 = realloc(*g, (*ng + take + 1) * sizeof(**g));
	if (!g2) {
		free(cs);
		return CM_ERR_NOMEM;
	}
	*g = g2;
	for (size_t c = 0; c < take; c++)
		(*g)[(*ng)++] = (gcand){.c = cs[c], .frag = f, .first = first};
	free(cs);
	return CM_OK;
}

int gw_merge(const gw_query *q, const gw_frag_answers *frags, size_t nfrags, const gw_merge_opts *o,
	     gw_merge_result *out, char *err, size_t errlen)
{
	gw_merge_opts opts = o ? *o : (gw_merge_opts){0};
	uint8_t qd[HB];
	int rc = check_query(q, frags, nfrags, err, errlen);
	if (rc != CM_OK)
		return rc;
	if (opts.rel_tol <= 0)
		opts.rel_tol = 1e-6;
	rc = q->bin ? cm_answer_query_digest_bin(qd, q->bin, q->dim / 8, q->k, q->filter)
		    : cm_answer_query_digest(qd, q->vec, q->dim, q->k, q->filter);
	if (rc != CM_OK) {
		snprintf(err, errlen, "filter: %s", rc == CM_ERR_INVALID ? "a duplicate or empty key" : "out of memory");
		return rc;
	}
	gw_merge_result r = {0};
	size_t nrep = 0, ng = 0;
	for (size_t f = 0; f < nfrags; f++)
		nrep += frags[f].n;
	r.reports = calloc(nrep ? nrep : 1, sizeof(*r.reports));
	r.frags = calloc(nfrags ? nfrags : 1, sizeof(*r.frags));
	r.hits = calloc(q->k, sizeof(*r.hits));
	ans **as = calloc(nfrags ? nfrags : 1, sizeof(*as));
	gcand *g = NULL;
	rc = r.reports && r.frags && r.hits && as ? CM_OK : CM_ERR_NOMEM;
	r.nreports = nrep;
	r.nfrags = nfrags;
	for (size_t f = 0, first = 0; rc == CM_OK && f < nfrags; first += frags[f].n, f++) {
		as[f] = calloc(frags[f].n ? frags[f].n : 1, sizeof(**as));
		rc = as[f] ? merge_fragment(q, qd, &frags[f], f, &opts, as[f], r.reports + first, first, &r.frags[f],
					    &g, &ng)
			   : CM_ERR_NOMEM;
	}
	if (rc == CM_OK) {
		qsort(g, ng, sizeof(*g), gcand_order);
		for (size_t c = 0; c < ng && r.n < q->k; c++) {
			/* an id lives in one fragment; should two claim it, the nearer wins */
			int dup = 0;
			for (size_t x = 0; x < r.n && !dup; x++)
				dup = id_cmp(r.hits[x].id, g[c].c.h->id) == 0;
			if (dup)
				continue;
			gw_hit *h = &r.hits[r.n++];
			h->hit = g[c].c.h->pb;
			h->fragment = frags[g[c].frag].fragment;
			h->distance = g[c].c.h->d;
			memcpy(h->id, g[c].c.h->id, CM_ANSWER_ID_BYTES);
			h->support = g[c].c.nsupport;
			r.frags[g[c].frag].in_topk++;
			for (size_t a = 0; a < frags[g[c].frag].n; a++)
				if (g[c].c.support >> a & 1)
					r.reports[g[c].first + a].contributed++;
		}
		rc = rank_nodes(&r);
	}
	for (size_t f = 0; as && f < nfrags; f++)
		free_answers(as[f], frags[f].n);
	free(as);
	free(g);
	if (rc != CM_OK) {
		gw_merge_result_free(&r);
		if (rc == CM_ERR_NOMEM)
			snprintf(err, errlen, "out of memory");
		return rc;
	}
	*out = r;
	return CM_OK;
}

void gw_merge_result_free(gw_merge_result *r)
{
	if (!r)
		return;
	free(r->hits);
	free(r->reports);
	free(r->ranks);
	free(r->frags);
	memset(r, 0, sizeof(*r));
}
