/* Seeded adversarial simulation of the gateway's merge (services/gateway/
 * gw_merge): per seed a random Magu of 1-3 fragments, each a write log of
 * inserts, updates and deletes; a pool of nodes holding 1-5 replicas of each
 * fragment; a query (metric, dimension, k, filter) asked at ONE, QUORUM or
 * ALL. Honest replicas answer the true top-k of their log by brute force in
 * float arithmetic (another summation order than the gateway's) and sign it
 * over the canonical digest; some asked replicas do not answer; liars lie
 * each time they are asked: fabricated records and vectors, tampered
 * metadata, wrong distances, the true nearest neighbour dropped, answers cut
 * short or longer than k, duplicated ids, answers replayed from another
 * query, another fragment or a size below the read-your-writes floor,
 * forged, missing or foreign signatures, wrong roots.
 *
 * Some honest replicas lag (answer at a size between the read's min_size
 * and the log's).
 *
 * Invariants: a lie an answer shows on its own (signature, size, k, ids,
 * vectors, distances) is always flagged with its reason; no honest node is
 * ever flagged while its fragment's honest answers at the log's size
 * outnumber the liars (a lagging replica is no witness against a liar that
 * answers at the current size); and
 * then every liar is flagged and ranks after every honest node, and every
 * merged hit is a record an honest replica returned; when no honest
 * replica lags, the merged top-k is the top-k of the honest answers and
 * honest nodes that answered every time they were asked have a share of 1.
 *
 * MURI_SIM_SEEDS sets the number of seeds (default 2000), MURI_SIM_SEED=<n>
 * replays one with its trace; MURI_SIM_BUG=signature|distance|vote|stale
 * merges with that check skipped (gw_merge_opts.skip) to show the invariants
 * catch its absence. */
#include "tap.h"
#include "cm_answer.h"
#include "cm_arena.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_uuid.h"
#include "gw_merge.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIM_MAX 16
#define REC_MAX 64
#define FRAG_MAX 3
#define REP_MAX 5
#define POOL_MAX 7
#define K_MAX 12
#define DEFAULT_SEEDS 2000
#define MAGU "sim-magu"

enum lie {
	L_FAB_NEW, L_FAB_VEC, L_META, L_DIST, L_DROP_NN, L_SHORT, L_REPLAY_QUERY, L_REPLAY_FRAG, L_REPLAY_OLD,
	L_FORGE, L_NO_SIG, L_OTHER_KEY, L_DUP, L_BOGUS_K, L_ROOT, L_KINDS
};
static const char *lie_names[] = {"fabricated_record", "fabricated_vector", "tampered_metadata", "wrong_distance",
				  "dropped_nn", "cut_short", "replay_query", "replay_fragment", "replay_old_size",
				  "forged_signature", "missing_signature", "foreign_key", "duplicate_id",
				  "bogus_k", "wrong_root"};
/* The reason each lie that shows on its own must be flagged with; -1: the vote finds it. */
static const int lie_reason[] = {-1, -1, -1, GW_R_DISTANCE, -1, -1, GW_R_SIGNATURE, GW_R_SIGNATURE, GW_R_STALE,
				 GW_R_SIGNATURE, GW_R_SIGNATURE, GW_R_SIGNATURE, GW_R_DUPLICATE, GW_R_TOO_MANY, -1};

/* ---- randomness ------------------------------------------------------------------ */

static uint64_t rs;

static uint64_t rnd(void)
{
	uint64_t z = (rs += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

static float unit(void)
{
	return (float)((double)(rnd() >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static void rand_uuid(char out[37])
{
	uint8_t b[16];
	for (int i = 0; i < 16; i++)
		b[i] = (uint8_t)rnd();
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
		 b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* ---- the world of one seed ---------------------------------------------------------- */

typedef struct rec {
	char id[37];
	uint64_t version, seq;
	int del;
	float vec[DIM_MAX];
	Muri__V1__Vector pbv;
	Muri__V1__Metadata meta;
	Muri__V1__Metadata__FieldsEntry f[2], *fp[2];
	Muri__V1__Value v[2];
	char word[16];
} rec;

typedef struct frag {
	uint32_t id;
	rec log[REC_MAX];
	uint32_t size;
	uint32_t nrep, nask;
	int rep[REP_MAX];         /* node index of each replica */
	uint64_t min_size;
	uint8_t root[CM_HASH_BYTES];
	gw_answer ans[REP_MAX];
	int lied[REP_MAX];        /* the lie told, -1: none */
	int lagged[REP_MAX];      /* an honest answer at a size below the log's */
	int honest_answered, liars_answered;
	int honest_full;          /* honest answers at the log's size */
	Muri__V1__LocalSearchResponse *honest;  /* the honest answer at the current size */
} frag;

static struct world {
	cm_keypair keys[POOL_MAX + 1];   /* the last: a stranger's */
	int liar[POOL_MAX];
	uint32_t npool;
	int metric;
	uint32_t dim, k;
	float q[DIM_MAX], q2[DIM_MAX];
	Muri__V1__Filter *filter;
	uint8_t qd[CM_HASH_BYTES];
	frag fr[FRAG_MAX];
	uint32_t nfr;
	cm_arena a;
	int trace;
	uint32_t skip;
	char why[512];
	uint64_t lies[L_KINDS], answers, checked_topk, checked_lag;
} W;

static void tracef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tracef(const char *fmt, ...)
{
	if (!W.trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static void set_meta(rec *r)
{
	snprintf(r->word, sizeof(r->word), "w%u", below(1000));
	muri__v1__metadata__init(&r->meta);
	for (int i = 0; i < 2; i++) {
		muri__v1__metadata__fields_entry__init(&r->f[i]);
		muri__v1__value__init(&r->v[i]);
		r->fp[i] = &r->f[i];
		r->f[i].value = &r->v[i];
	}
	r->f[0].key = "word";
	r->v[0].kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
	r->v[0].string_value = r->word;
	r->f[1].key = "n";
	r->v[1].kind_case = MURI__V1__VALUE__KIND_INT_VALUE;
	r->v[1].int_value = (int64_t)below(100);
	r->meta.fields = r->fp;
	r->meta.n_fields = below(3); /* 0, 1 or 2 fields */
}

static void rand_vec(float *v)
{
	do {
		for (uint32_t i = 0; i < W.dim; i++)
			v[i] = unit();
	} while (W.metric == MURI__V1__METRIC__COSINE && fabsf(v[0]) + fabsf(v[W.dim - 1]) == 0);
}

static void make_log(frag *f)
{
	uint32_t n = below(REC_MAX + 1);
	f->size = 0;
	for (uint32_t s = 0; s < n; s++) {
		rec *r = &f->log[s];
		memset(r, 0, sizeof(*r));
		uint32_t op = below(10);
		r->seq = s;
		if (s > 0 && op < 3) {
			const rec *old = &f->log[below(s)];
			memcpy(r->id, old->id, sizeof(r->id));
			r->version = old->version + 1 + below(2);
			r->del = op == 0;
		} else {
			rand_uuid(r->id);
			r->version = 1 + below(3);
		}
		rand_vec(r->vec);
		muri__v1__vector__init(&r->pbv);
		r->pbv.values = r->vec;
		r->pbv.n_values = W.dim;
		set_meta(r);
		f->size++;
	}
	/* the root of any prefix, the same for every honest replica */
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_TEST);
	cm_hasher_update(&h, &f->id, sizeof(f->id));
	for (uint32_t s = 0; s < f->size; s++)
		cm_hasher_update(&h, f->log[s].id, 36);
	cm_hasher_final(&h, f->root);
}

/* The distance as an indexer computes it, in float, summing backwards. */
static float fdist(const float *q, const float *x)
{
	float s = 0, qq = 0, xx = 0;
	for (uint32_t i = W.dim; i-- > 0;) {
		if (W.metric == MURI__V1__METRIC__L2)
			s += (q[i] - x[i]) * (q[i] - x[i]);
		else
			s += q[i] * x[i];
		qq += q[i] * q[i];
		xx += x[i] * x[i];
	}
	if (W.metric == MURI__V1__METRIC__L2)
		return s;
	if (W.metric == MURI__V1__METRIC__DOT_PRODUCT)
		return -s;
	return 1.0f - s / (sqrtf(qq) * sqrtf(xx));
}

/* Is log[s] the current, live version of its id at size n? */
static int live_at(const frag *f, uint32_t s, uint32_t n)
{
	const rec *r = &f->log[s];
	if (r->del)
		return 0;
	for (uint32_t t = 0; t < n; t++) {
		const rec *o = &f->log[t];
		if (t != s && strcmp(o->id, r->id) == 0 && (o->version > r->version || (o->version == r->version && t > s)))
			return 0;
	}
	return 1;
}

typedef struct scored {
	float d;
	uint32_t s;
} scored;

static int scored_cmp(const void *x, const void *y)
{
	const scored *a = x, *b = y;
	if (a->d != b->d)
		return a->d < b->d ? -1 : 1;
	return a->s < b->s ? -1 : a->s > b->s ? 1 : 0;
}

static Muri__V1__Hit *hit_of(const rec *r, float d)
{
	Muri__V1__Hit *h = cm_arena_alloc(&W.a, sizeof(*h));
	muri__v1__hit__init(h);
	h->id = (char *)r->id;
	h->distance = d;
	h->vector = (Muri__V1__Vector *)&r->pbv;
	h->metadata = (Muri__V1__Metadata *)&r->meta;
	h->version = r->version;
	h->seq = r->seq;
	return h;
}

/* The honest top-kk of f's log at size n for query q, unsigned. */
static Muri__V1__LocalSearchResponse *answer(const frag *f, const float *q, uint32_t n, uint32_t kk)
{
	scored sc[REC_MAX];
	uint32_t m = 0;
	for (uint32_t s = 0; s < n; s++)
		if (live_at(f, s, n))
			sc[m++] = (scored){fdist(q, f->log[s].vec), s};
	qsort(sc, m, sizeof(*sc), scored_cmp);
	Muri__V1__LocalSearchResponse *r = cm_arena_alloc(&W.a, sizeof(*r));
	muri__v1__local_search_response__init(r);
	r->n_hits = m < kk ? m : kk;
	r->hits = cm_arena_alloc(&W.a, (r->n_hits + K_MAX + 2) * sizeof(*r->hits));
	for (size_t i = 0; i < r->n_hits; i++)
		r->hits[i] = hit_of(&f->log[sc[i].s], sc[i].d);
	r->log_size = n;
	uint8_t *root = cm_arena_alloc(&W.a, CM_HASH_BYTES);
	if (n == f->size)
		memcpy(root, f->root, CM_HASH_BYTES);
	else
		cm_hash(root, CM_DOM_TEST, &n, sizeof(n));
	r->root.data = root;
	r->root.len = CM_HASH_BYTES;
	return r;
}

static void sign(const cm_keypair *kp, const uint8_t *qd, uint32_t fragment, Muri__V1__LocalSearchResponse *r)
{
	uint8_t *sig = cm_arena_alloc(&W.a, CM_SIG_BYTES);
	if (cm_answer_sign(kp, qd, MAGU, fragment, r, sig) != CM_OK)
		abort();
}

/* A copy of r whose hit array may be changed (hits shared). */
static Muri__V1__LocalSearchResponse *copy(const Muri__V1__LocalSearchResponse *r)
{
	Muri__V1__LocalSearchResponse *c = cm_arena_alloc(&W.a, sizeof(*c));
	*c = *r;
	c->hits = cm_arena_alloc(&W.a, (r->n_hits + K_MAX + 2) * sizeof(*c->hits));
	memcpy(c->hits, r->hits, r->n_hits * sizeof(*c->hits));
	return c;
}

static Muri__V1__Hit *copy_hit(const Muri__V1__Hit *h)
{
	Muri__V1__Hit *c = cm_arena_alloc(&W.a, sizeof(*c));
	*c = *h;
	return c;
}

static void resort(Muri__V1__LocalSearchResponse *r)
{
	for (size_t i = 1; i < r->n_hits; i++)
		for (size_t j = i; j > 0 && r->hits[j]->distance < r->hits[j - 1]->distance; j--) {
			Muri__V1__Hit *t = r->hits[j];
			r->hits[j] = r->hits[j - 1];
			r->hits[j - 1] = t;
		}
}

/* The answer of liar node `node` for f, lying as `kind`; NULL if this lie
 * cannot be told here (then the node answers honestly). */
static Muri__V1__LocalSearchResponse *lie(const frag *f, int node, int kind)
{
	const cm_keypair *kp = &W.keys[node];
	Muri__V1__LocalSearchResponse *r = copy(f->honest);
	size_t n = r->n_hits;
	size_t j = below((uint32_t)n);
	switch (kind) {
	case L_FAB_NEW: {
		if (f->size == 0)
			return NULL;
		rec *x = cm_arena_alloc(&W.a, sizeof(*x));
		rand_uuid(x->id);
		x->version = 1;
		x->seq = below(f->size);
		for (uint32_t i = 0; i < W.dim; i++)
			x->vec[i] = W.q[i] * (1.0f + 0.01f * unit()) + 0.001f * unit();
		muri__v1__vector__init(&x->pbv);
		x->pbv.values = x->vec;
		x->pbv.n_values = W.dim;
		set_meta(x);
		/* first among equals, so that it is in the answer */
		memmove(r->hits + 1, r->hits, n * sizeof(*r->hits));
		r->hits[0] = hit_of(x, fdist(W.q, x->vec));
		r->n_hits = n + 1;
		resort(r);
		if (r->n_hits > W.k)
			r->n_hits = W.k;
		int in = 0;
		for (size_t i = 0; i < r->n_hits; i++)
			in |= r->hits[i]->id == x->id;
		if (!in)
			return NULL; /* too far to enter the answer: no lie told */
		break;
	}
	case L_FAB_VEC: {
		if (n == 0)
			return NULL;
		Muri__V1__Hit *h = copy_hit(r->hits[j]);
		Muri__V1__Vector *v = cm_arena_alloc(&W.a, sizeof(*v));
		float *vals = cm_arena_alloc(&W.a, W.dim * sizeof(float));
		for (uint32_t i = 0; i < W.dim; i++)
			vals[i] = W.q[i] * 0.9f + 0.05f * unit();
		muri__v1__vector__init(v);
		v->values = vals;
		v->n_values = W.dim;
		h->vector = v;
		h->distance = fdist(W.q, vals);
		r->hits[j] = h;
		resort(r);
		break;
	}
	case L_META: {
		if (n == 0)
			return NULL;
		Muri__V1__Hit *h = copy_hit(r->hits[j]);
		rec *x = cm_arena_alloc(&W.a, sizeof(*x));
		set_meta(x);
		x->meta.n_fields = 2;
		snprintf(x->word, sizeof(x->word), "forged");
		h->metadata = &x->meta;
		r->hits[j] = h;
		break;
	}
	case L_DIST: {
		if (n == 0)
			return NULL;
		Muri__V1__Hit *h = copy_hit(r->hits[j]);
		h->distance -= 0.05f + 0.5f * fabsf(h->distance);
		r->hits[j] = h;
		resort(r);
		break;
	}
	case L_DROP_NN: {
		if (n == 0)
			return NULL;
		Muri__V1__LocalSearchResponse *more = answer(f, W.q, f->size, W.k + 1);
		memmove(r->hits, r->hits + 1, (n - 1) * sizeof(*r->hits));
		r->n_hits = n - 1;
		if (more->n_hits > W.k)
			r->hits[r->n_hits++] = more->hits[W.k];
		break;
	}
	case L_SHORT:
		if (n == 0)
			return NULL;
		r->n_hits = n / 2;
		break;
	case L_REPLAY_QUERY: {
		uint8_t qd2[CM_HASH_BYTES];
		cm_answer_query_digest(qd2, W.q2, W.dim, W.k, W.filter);
		r = answer(f, W.q2, f->size, W.k);
		sign(kp, qd2, f->id, r);
		return r;
	}
	case L_REPLAY_FRAG:
		sign(kp, W.qd, f->id + 1000, r);
		return r;
	case L_REPLAY_OLD: {
		if (f->min_size == 0)
			return NULL;
		r = answer(f, W.q, below((uint32_t)f->min_size), W.k);
		break;
	}
	case L_FORGE:
		sign(kp, W.qd, f->id, r);
		r->signature.data[below(CM_SIG_BYTES)] ^= (uint8_t)(1u << below(8));
		return r;
	case L_NO_SIG:
		r->signer.len = 0;
		r->signature.len = 0;
		return r;
	case L_OTHER_KEY:
		sign(&W.keys[POOL_MAX], W.qd, f->id, r);
		return r;
	case L_DUP:
		if (n < 2)
			return NULL;
		r->hits[n - 1] = r->hits[0];
		break;
	case L_BOGUS_K:
		if (n == 0)
			return NULL;
		while (r->n_hits <= W.k) {
			size_t m = r->n_hits;
			r->hits[m] = r->hits[m % n];
			r->n_hits = m + 1;
		}
		break;
	case L_ROOT: {
		uint8_t *root = cm_arena_alloc(&W.a, CM_HASH_BYTES);
		for (int i = 0; i < CM_HASH_BYTES; i++)
			root[i] = (uint8_t)rnd();
		r->root.data = root;
		/* detectable against the committed root or an honest majority at its size */
		break;
	}
	}
	sign(kp, W.qd, f->id, r);
	return r;
}

/* ---- one seed ---------------------------------------------------------------------- */

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(W.why, sizeof(W.why), fmt, ap);
	va_end(ap);
	return 1;
}

static Muri__V1__Filter *make_filter(void)
{
	uint32_t n = below(3);
	if (n == 0)
		return NULL;
	Muri__V1__Filter *f = cm_arena_alloc(&W.a, sizeof(*f));
	muri__v1__filter__init(f);
	f->conditions = cm_arena_alloc(&W.a, n * sizeof(*f->conditions));
	f->n_conditions = n;
	for (uint32_t i = 0; i < n; i++) {
		Muri__V1__Filter__ConditionsEntry *e = cm_arena_alloc(&W.a, sizeof(*e));
		Muri__V1__Condition *c = cm_arena_alloc(&W.a, sizeof(*c));
		muri__v1__filter__conditions_entry__init(e);
		muri__v1__condition__init(c);
		e->key = i == 0 ? "n" : "word";
		c->gte__case = MURI__V1__CONDITION__GTE__GTE;
		c->gte = (double)below(50);
		e->value = c;
		f->conditions[i] = e;
	}
	return f;
}

static uint32_t level_count(int level, uint32_t nrep)
{
	return level == MURI__V1__CONSISTENCY_LEVEL__ONE ? 1 : level == MURI__V1__CONSISTENCY_LEVEL__ALL ? nrep
												      : nrep / 2 + 1;
}

static int node_of(const uint8_t *pk)
{
	for (uint32_t i = 0; i < W.npool; i++)
		if (memcmp(W.keys[i].pk, pk, CM_PK_BYTES) == 0)
			return (int)i;
	return -1;
}

typedef struct exp_hit {
	float d;
	const Muri__V1__Hit *h;
} exp_hit;

static int exp_cmp(const void *x, const void *y)
{
	const exp_hit *a = x, *b = y;
	if (a->d != b->d)
		return a->d < b->d ? -1 : 1;
	cm_uuid ia, ib;
	cm_uuid_parse(&ia, a->h->id);
	cm_uuid_parse(&ib, b->h->id);
	return memcmp(ia.b, ib.b, CM_UUID_BYTES);
}

static int run_seed(uint64_t seed)
{
	rs = seed;
	cm_arena_reset(&W.a);
	W.why[0] = '\0';
	W.metric = 1 + (int)below(3);
	W.dim = 1 + below(DIM_MAX);
	W.k = 1 + below(K_MAX);
	W.npool = 3 + below(POOL_MAX - 2);
	uint32_t liar_pct = (uint32_t[]){0, 15, 30, 50}[below(4)];
	for (uint32_t i = 0; i < W.npool; i++)
		W.liar[i] = below(100) < liar_pct;
	rand_vec(W.q);
	rand_vec(W.q2);
	W.filter = make_filter();
	cm_answer_query_digest(W.qd, W.q, W.dim, W.k, W.filter);
	W.nfr = 1 + below(FRAG_MAX);
	int level = 1 + (int)below(3);
	int committed = below(2);
	tracef("seed metric=%d dim=%u k=%u pool=%u liar%%=%u fragments=%u level=%d", W.metric, W.dim, W.k, W.npool,
	       liar_pct, W.nfr, level);
	gw_frag_answers fa[FRAG_MAX];
	int ok_all = 1;   /* every fragment's honest answers outnumber its liars */
	int any_lag = 0;  /* some honest replica answered at an older size */
	for (uint32_t fi = 0; fi < W.nfr; fi++) {
		frag *f = &W.fr[fi];
		f->id = fi * 7 + 1;
		make_log(f);
		f->min_size = (uint64_t[]){0, f->size, below(f->size + 1)}[below(3)];
		f->honest = answer(f, W.q, f->size, W.k);
		f->nrep = (uint32_t[]){1, 3, 5}[below(3)];
		if (f->nrep > W.npool)
			f->nrep = 3;
		/* distinct nodes of the pool */
		uint32_t perm[POOL_MAX];
		for (uint32_t i = 0; i < W.npool; i++)
			perm[i] = i;
		for (uint32_t i = W.npool; i > 1; i--) {
			uint32_t j = below(i), t = perm[i - 1];
			perm[i - 1] = perm[j];
			perm[j] = t;
		}
		f->nask = level_count(level, f->nrep);
		f->honest_answered = f->liars_answered = f->honest_full = 0;
		for (uint32_t i = 0; i < f->nask; i++) {
			int node = (int)perm[i];
			gw_answer *a = &f->ans[i];
			f->rep[i] = node;
			f->lied[i] = -1;
			f->lagged[i] = 0;
			a->node = W.keys[node].pk;
			a->latency_us = 100 + below(5000);
			a->resp = NULL;
			if (below(10) == 0) {
				tracef("  fragment %u node %d: no answer", f->id, node);
				continue;
			}
			if (W.liar[node]) {
				int kind = (int)below(L_KINDS);
				a->resp = lie(f, node, kind);
				if (a->resp) {
					f->lied[i] = kind;
					f->liars_answered++;
					W.lies[kind]++;
					tracef("  fragment %u node %d: %s", f->id, node, lie_names[kind]);
					continue;
				}
			}
			/* an honest replica may lag, never below the read's min_size */
			uint32_t at = f->size;
			if (f->min_size < f->size && below(5) == 0) {
				at = (uint32_t)f->min_size + below(f->size - (uint32_t)f->min_size);
				f->lagged[i] = 1;
				any_lag = 1;
			}
			Muri__V1__LocalSearchResponse *r = at == f->size ? copy(f->honest) : answer(f, W.q, at, W.k);
			sign(&W.keys[node], W.qd, f->id, r);
			a->resp = r;
			f->honest_answered++;
			f->honest_full += at == f->size;
			tracef("  fragment %u node %d: honest, %zu hits at size %u", f->id, node, r->n_hits, at);
		}
		W.answers += f->nask;
		if (f->honest_full <= f->liars_answered)
			ok_all = 0;
		fa[fi] = (gw_frag_answers){.fragment = f->id, .min_size = f->min_size, .answers = f->ans, .n = f->nask};
		if (committed) {
			fa[fi].committed_size = f->size;
			fa[fi].committed_root = f->root;
		}
	}
	gw_query q = {.magu = MAGU, .vec = W.q, .dim = W.dim, .metric = W.metric, .k = W.k, .filter = W.filter};
	gw_merge_opts o = {.exact = 1, .skip = W.skip};
	gw_merge_result res;
	char err[256];
	if (gw_merge(&q, fa, W.nfr, &o, &res, err, sizeof(err)) != CM_OK)
		return fail("gw_merge failed: %s", err);
	int bad = 0;
	/* every report against what the node did */
	for (uint32_t fi = 0, ri = 0; fi < W.nfr && !bad; fi++) {
		const frag *f = &W.fr[fi];
		int ok_frag = f->honest_full > f->liars_answered;
		for (uint32_t i = 0; i < f->nask && !bad; i++, ri++) {
			const gw_report *p = &res.reports[ri];
			int kind = f->lied[i];
			tracef("  report fragment %u node %d: valid=%d liar=%d reason=%s (%s) contributed=%u rejected=%u",
			       f->id, f->rep[i], p->valid, p->liar, gw_reason_name(p->reason), p->why, p->contributed,
			       p->rejected);
			if (kind >= 0 && lie_reason[kind] >= 0 && (!p->liar || p->reason != lie_reason[kind]))
				bad = fail("fragment %u node %d told %s: flagged %d with %s", f->id, f->rep[i],
					   lie_names[kind], p->liar, gw_reason_name(p->reason));
			else if (kind >= 0 && ok_frag && !p->liar)
				bad = fail("fragment %u node %d told %s among an honest majority: not flagged", f->id,
					   f->rep[i], lie_names[kind]);
			else if (kind < 0 && f->ans[i].resp && ok_frag && (p->liar || !p->valid))
				bad = fail("fragment %u honest node %d flagged: %s (%s)", f->id, f->rep[i],
					   gw_reason_name(p->reason), p->why);
		}
	}
	if (!bad && ok_all && any_lag) {
		/* replicas at different sizes: a majority read; every hit merged is a
		 * record some honest replica returned */
		W.checked_lag++;
		for (size_t i = 0; !bad && i < res.n; i++) {
			int found = 0;
			for (uint32_t fi = 0; fi < W.nfr && !found; fi++)
				for (uint32_t j = 0; j < W.fr[fi].nask && !found; j++) {
					const Muri__V1__LocalSearchResponse *r = W.fr[fi].ans[j].resp;
					if (!r || W.fr[fi].lied[j] >= 0)
						continue;
					for (size_t x = 0; x < r->n_hits && !found; x++)
						found = strcmp(r->hits[x]->id, res.hits[i].hit->id) == 0 &&
							r->hits[x]->version == res.hits[i].hit->version &&
							r->hits[x]->seq == res.hits[i].hit->seq &&
							/* the record's own vector, not a copy a liar made */
							r->hits[x]->vector->values == res.hits[i].hit->vector->values;
				}
			if (!found)
				bad = fail("merged hit %s v%llu is no honest replica's", res.hits[i].hit->id,
					   (unsigned long long)res.hits[i].hit->version);
		}
	}
	if (!bad && ok_all && !any_lag) {
		/* the merged top-k is the top-k of the honest answers */
		exp_hit e[FRAG_MAX * K_MAX];
		size_t ne = 0;
		for (uint32_t fi = 0; fi < W.nfr; fi++)
			for (size_t i = 0; i < W.fr[fi].honest->n_hits; i++) {
				const Muri__V1__Hit *h = W.fr[fi].honest->hits[i];
				double d, tol;
				gw_distance(W.metric, W.q, h->vector->values, W.dim, 1e-6, &d, &tol);
				e[ne++] = (exp_hit){(float)d, h};
			}
		qsort(e, ne, sizeof(*e), exp_cmp);
		size_t want = ne < W.k ? ne : W.k;
		W.checked_topk++;
		if (res.n != want)
			bad = fail("merged %zu hits, the honest top-k has %zu", res.n, want);
		for (size_t i = 0; !bad && i < want; i++)
			if (strcmp(res.hits[i].hit->id, e[i].h->id) != 0 || res.hits[i].hit->version != e[i].h->version ||
			    res.hits[i].distance != e[i].d)
				bad = fail("hit %zu: merged %s v%llu at %.9g, honest %s v%llu at %.9g", i,
					   res.hits[i].hit->id, (unsigned long long)res.hits[i].hit->version,
					   (double)res.hits[i].distance, e[i].h->id, (unsigned long long)e[i].h->version,
					   (double)e[i].d);
	}
	if (!bad && ok_all) {
		/* liars rank after every honest node; honest answering nodes have all their share */
		uint32_t worst_honest = 0, best_liar = UINT32_MAX;
		for (size_t j = 0; !bad && j < res.nranks; j++) {
			const gw_node_rank *nr = &res.ranks[j];
			int node = node_of(nr->node);
			int lied = 0, missed = 0;
			for (uint32_t fi = 0; fi < W.nfr; fi++)
				for (uint32_t i = 0; i < W.fr[fi].nask; i++) {
					lied |= W.fr[fi].rep[i] == node && W.fr[fi].lied[i] >= 0;
					missed |= W.fr[fi].rep[i] == node && !W.fr[fi].ans[i].resp;
				}
			if (lied && !nr->liar)
				bad = fail("node %d lied but is not ranked a liar", node);
			if (lied && nr->rank < best_liar)
				best_liar = nr->rank;
			if (!lied && nr->rank > worst_honest)
				worst_honest = nr->rank;
			if (!lied && !missed && !any_lag && nr->share != 1.0)
				bad = fail("honest node %d has share %.3f (%u of %u)", node, nr->share, nr->contributed,
					   nr->expected);
		}
		if (!bad && best_liar < worst_honest)
			bad = fail("a liar ranks %u, an honest node %u", best_liar, worst_honest);
	}
	gw_merge_result_free(&res);
	return bad;
}

static void test_random_seeds(void)
{
	const char *env = getenv("MURI_SIM_SEEDS"), *one = getenv("MURI_SIM_SEED"), *bug = getenv("MURI_SIM_BUG");
	long count = env ? atol(env) : DEFAULT_SEEDS;
	int failures = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (one) {
		W.trace = 1;
		count = 1;
	}
	for (long i = 0; i < count && failures < 5; i++) {
		uint64_t seed = one ? strtoull(one, NULL, 0) : 0x6d657267ULL * 1000003ULL + (uint64_t)i;
		if (run_seed(seed)) {
			failures++;
			printf("# seed 0x%016" PRIx64 " failed: %s\n", seed, W.why);
			printf("# replay: MURI_SIM_SEED=0x%016" PRIx64 "%s%s build/tests/gateway/test_merge_sim\n", seed,
			       bug ? " MURI_SIM_BUG=" : "", bug ? bug : "");
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	uint64_t lies = 0;
	for (int k = 0; k < L_KINDS; k++)
		lies += W.lies[k];
	printf("# %ld seeds: %" PRIu64 " answers, %" PRIu64 " lies, top-k checked in %" PRIu64
	       " seeds, majority reads over lagging replicas in %" PRIu64 "; %d failed, %.1f s\n",
	       count, W.answers, lies, W.checked_topk, W.checked_lag, failures, secs);
	for (int k = 0; k < L_KINDS; k++)
		printf("#   %-18s %" PRIu64 "\n", lie_names[k], W.lies[k]);
	if (bug) {
		printf("# MURI_SIM_BUG=%s: failures are expected\n", bug);
		TAP_CHECK(failures > 0);
	} else {
		TAP_EQ(failures, 0);
	}
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	for (int i = 0; i <= POOL_MAX; i++) {
		uint8_t seed[CM_SEED_BYTES] = {(uint8_t)i, 0x6d, 0x65, 0x72, 0x67, 0x65};
		cm_keypair_from_seed(&W.keys[i], seed);
	}
	const char *bug = getenv("MURI_SIM_BUG");
	W.skip = !bug ? 0
		 : strcmp(bug, "signature") == 0 ? GW_SKIP_SIGNATURE
		 : strcmp(bug, "distance") == 0	 ? GW_SKIP_DISTANCE
		 : strcmp(bug, "vote") == 0	 ? GW_SKIP_VOTE
		 : strcmp(bug, "stale") == 0	 ? GW_SKIP_STALE
						 : 0;
	cm_arena_init(&W.a, 0);
	TAP_RUN(test_random_seeds);
	cm_arena_free(&W.a);
	for (int i = 0; i <= POOL_MAX; i++)
		cm_keypair_wipe(&W.keys[i]);
	return tap_done();
}
