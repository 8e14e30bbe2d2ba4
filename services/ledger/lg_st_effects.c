/* The state machine's record of what a block changed (ledger.proto
 * BlockEffects): handlers note fragments reconfigured, Magus created,
 * dropped or re-membered, challenges issued and closed, roots committed and
 * indexers punished; a failed payload's notes are rewound with its
 * savepoint; at commit the notes become one encoded BlockEffects, read from
 * the block's final state, hashed into the state root (cm_effects_hash) and
 * stored with the block. */
#include "lg_state_int.h"
#include "lg_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx_frag {
	char magu[LG_NAME_MAX + 1];
	uint32_t fragment;
} fx_frag;

typedef struct fx_name {
	char s[LG_NAME_MAX + 1];
} fx_name;

static const size_t fx_elem[LG_FX_COUNT] = {
	[LG_FX_FRAGMENTS] = sizeof(fx_frag),
	[LG_FX_ISSUED] = sizeof(uint64_t),
	[LG_FX_CLOSED] = sizeof(uint64_t),
	[LG_FX_ROOTS] = sizeof(lg_fx_root),
	[LG_FX_CREATED] = sizeof(fx_name),
	[LG_FX_DROPPED] = sizeof(fx_name),
	[LG_FX_MEMBERS] = sizeof(fx_name),
	[LG_FX_PENALTIES] = sizeof(lg_fx_penalty),
};

static int fx_push(lg_state *st, enum lg_fx_list l, const void *item)
{
	lg_fx_vec *v = &st->fx[l];
	if (v->n == v->cap) {
		size_t cap = v->cap ? 2 * v->cap : 16;
		uint8_t *p = realloc(v->p, cap * fx_elem[l]);
		if (!p)
			return CM_ERR_NOMEM;
		v->p = p;
		v->cap = cap;
	}
	memcpy(v->p + v->n * fx_elem[l], item, fx_elem[l]);
	v->n++;
	return CM_OK;
}

void lg_st_fx_reset(lg_state *st)
{
	for (int i = 0; i < LG_FX_COUNT; i++)
		st->fx[i].n = 0;
}

void lg_st_fx_free(lg_state *st)
{
	for (int i = 0; i < LG_FX_COUNT; i++) {
		free(st->fx[i].p);
		memset(&st->fx[i], 0, sizeof(st->fx[i]));
	}
}

void lg_st_fx_mark(const lg_state *st, lg_fx_mark *m)
{
	for (int i = 0; i < LG_FX_COUNT; i++)
		m->n[i] = st->fx[i].n;
}

void lg_st_fx_rewind(lg_state *st, const lg_fx_mark *m)
{
	for (int i = 0; i < LG_FX_COUNT; i++)
		st->fx[i].n = m->n[i];
}

int lg_st_fx_fragment(lg_state *st, const char *magu, uint32_t fragment)
{
	fx_frag f;
	memset(&f, 0, sizeof(f));
	snprintf(f.magu, sizeof(f.magu), "%s", magu);
	f.fragment = fragment;
	return fx_push(st, LG_FX_FRAGMENTS, &f);
}

int lg_st_fx_challenge(lg_state *st, uint64_t id, int closed)
{
	return fx_push(st, closed ? LG_FX_CLOSED : LG_FX_ISSUED, &id);
}

int lg_st_fx_root(lg_state *st, const Muri__V1__SignedRoot *r)
{
	lg_fx_root x;
	memset(&x, 0, sizeof(x));
	snprintf(x.magu, sizeof(x.magu), "%s", r->magu);
	x.fragment = r->fragment;
	x.size = r->size;
	x.epoch = r->epoch;
	memcpy(x.root, r->root.data, LG_ROOT_BYTES);
	memcpy(x.signer, r->signer.data, LG_KEY_BYTES);
	memcpy(x.signature, r->signature.data, CM_SIG_BYTES);
	return fx_push(st, LG_FX_ROOTS, &x);
}

int lg_st_fx_magu(lg_state *st, enum lg_fx_list l, const char *name)
{
	fx_name n;
	memset(&n, 0, sizeof(n));
	snprintf(n.s, sizeof(n.s), "%s", name);
	return fx_push(st, l, &n);
}

int lg_st_fx_penalty(lg_state *st, const uint8_t *pk, uint64_t slashed, int jailed,
		     const char *reason)
{
	lg_fx_penalty p;
	memset(&p, 0, sizeof(p));
	memcpy(p.indexer, pk, LG_KEY_BYTES);
	p.slashed = slashed;
	p.jailed = jailed;
	snprintf(p.reason, sizeof(p.reason), "%s", reason);
	return fx_push(st, LG_FX_PENALTIES, &p);
}

/* ---- the encoded BlockEffects ---- */

/* Which entries of list l are the first of their value: keep[i] = 1 for
 * those, by sorting pointers (n log n, whatever the block holds). The
 * caller frees *keep. */
typedef struct fx_ref {
	const uint8_t *p;
	size_t i, elem;
} fx_ref;

static int fx_ref_cmp(const void *a, const void *b)
{
	const fx_ref *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->elem);
	return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

static int first_of_kind(const lg_state *st, enum lg_fx_list l, uint8_t **keep)
{
	const lg_fx_vec *v = &st->fx[l];
	fx_ref *r = malloc((v->n ? v->n : 1) * sizeof(*r));
	*keep = calloc(v->n ? v->n : 1, 1);
	if (!r || !*keep) {
		free(r);
		free(*keep);
		*keep = NULL;
		return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < v->n; i++)
		r[i] = (fx_ref){v->p + i * fx_elem[l], i, fx_elem[l]};
	if (v->n)
		qsort(r, v->n, sizeof(*r), fx_ref_cmp);
	for (size_t i = 0; i < v->n; i++)
		if (i == 0 || memcmp(r[i].p, r[i - 1].p, fx_elem[l]) != 0)
			(*keep)[r[i].i] = 1;
	free(r);
	return CM_OK;
}

static int add_configs(lg_state *st, Muri__V1__BlockEffects *e)
{
	const lg_fx_vec *v = &st->fx[LG_FX_FRAGMENTS];
	uint8_t *keep;
	int rc = first_of_kind(st, LG_FX_FRAGMENTS, &keep);
	if (rc != CM_OK)
		return rc;
	if (!(e->configs = calloc(v->n ? v->n : 1, sizeof(*e->configs))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < v->n && rc == CM_OK; i++) {
		const fx_frag *f = (const fx_frag *)(v->p + i * sizeof(fx_frag));
		lg_fragment fr;
		if (!keep[i])
			continue;
		rc = lg_store_fragment_get(st->store, f->magu, f->fragment, &fr);
		if (rc == CM_ERR_NOTFOUND) { /* dropped later in the block */
			rc = CM_OK;
			continue;
		}
		if (rc == CM_OK)
			rc = lg_query_fill_config(st->store, &fr, &e->configs[e->n_configs++]);
	}
	free(keep);
	return rc;
}

static int add_challenges(lg_state *st, enum lg_fx_list l, Muri__V1__Challenge ***arr, size_t *n)
{
	const lg_fx_vec *v = &st->fx[l];
	uint8_t *keep;
	int rc = first_of_kind(st, l, &keep);
	if (rc != CM_OK)
		return rc;
	if (!(*arr = calloc(v->n ? v->n : 1, sizeof(**arr))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < v->n && rc == CM_OK; i++) {
		uint64_t id;
		lg_challenge c;
		memcpy(&id, v->p + i * sizeof(uint64_t), sizeof(id));
		if (!keep[i])
			continue;
		if ((rc = lg_store_challenge_get(st->store, id, &c)) == CM_OK)
			rc = lg_query_fill_challenge(&c, &(*arr)[(*n)++]);
	}
	free(keep);
	return rc;
}

static int add_roots(lg_state *st, Muri__V1__BlockEffects *e)
{
	const lg_fx_vec *v = &st->fx[LG_FX_ROOTS];
	if (!(e->roots = calloc(v->n ? v->n : 1, sizeof(*e->roots))))
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < v->n; i++) {
		const lg_fx_root *x = (const lg_fx_root *)(v->p + i * sizeof(lg_fx_root));
		Muri__V1__SignedRoot *r = malloc(sizeof(*r));
		if (!r)
			return CM_ERR_NOMEM;
		muri__v1__signed_root__init(r);
		e->roots[e->n_roots++] = r;
		r->fragment = x->fragment;
		r->size = x->size;
		r->epoch = x->epoch;
		if (lg_query_dup_str(&r->chain_id, st->chain_id) != CM_OK ||
		    lg_query_dup_str(&r->magu, x->magu) != CM_OK || lg_query_dup_bytes(&r->root, x->root, LG_ROOT_BYTES) != CM_OK ||
		    lg_query_dup_bytes(&r->signer, x->signer, LG_KEY_BYTES) != CM_OK ||
		    lg_query_dup_bytes(&r->signature, x->signature, CM_SIG_BYTES) != CM_OK)
			return CM_ERR_NOMEM;
	}
	return CM_OK;
}

static int add_names(lg_state *st, enum lg_fx_list l, char ***arr, size_t *n)
{
	const lg_fx_vec *v = &st->fx[l];
	uint8_t *keep;
	int rc = first_of_kind(st, l, &keep);
	if (rc != CM_OK)
		return rc;
	if (!(*arr = calloc(v->n ? v->n : 1, sizeof(**arr))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < v->n && rc == CM_OK; i++)
		if (keep[i])
			rc = lg_query_dup_str(&(*arr)[(*n)++], ((const fx_name *)(v->p + i * sizeof(fx_name)))->s);
	free(keep);
	return rc;
}

static int add_members(lg_state *st, Muri__V1__BlockEffects *e)
{
	const lg_fx_vec *v = &st->fx[LG_FX_MEMBERS];
	uint8_t *keep;
	int rc = first_of_kind(st, LG_FX_MEMBERS, &keep);
	if (rc != CM_OK)
		return rc;
	if (!(e->members = calloc(v->n ? v->n : 1, sizeof(*e->members))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < v->n && rc == CM_OK; i++) {
		const char *name = ((const fx_name *)(v->p + i * sizeof(fx_name)))->s;
		lg_magu m;
		lg_slot *sl = NULL;
		size_t ns = 0;
		Muri__V1__MaguMembers *mm;
		if (!keep[i])
			continue;
		if ((rc = lg_store_magu_get(st->store, name, &m)) == CM_ERR_NOTFOUND) {
			rc = CM_OK; /* dropped: magus_dropped says so */
			continue;
		}
		if (rc != CM_OK || (rc = lg_store_slots_of_magu(st->store, name, &sl, &ns)) != CM_OK)
			break;
		if (!(mm = malloc(sizeof(*mm)))) {
			free(sl);
			rc = CM_ERR_NOMEM;
			break;
		}
		muri__v1__magu_members__init(mm);
		e->members[e->n_members++] = mm;
		if (lg_query_dup_str(&mm->magu, name) != CM_OK || !(mm->members = calloc(ns ? ns : 1, sizeof(*mm->members))))
			rc = CM_ERR_NOMEM;
		for (size_t j = 0; j < ns && rc == CM_OK; j++)
			if (sl[j].filled)
				rc = lg_query_dup_bytes(&mm->members[mm->n_members++], sl[j].holder, LG_KEY_BYTES);
		free(sl);
	}
	free(keep);
	return rc;
}

static int add_penalties(lg_state *st, Muri__V1__BlockEffects *e)
{
	const lg_fx_vec *v = &st->fx[LG_FX_PENALTIES];
	if (!(e->penalties = calloc(v->n ? v->n : 1, sizeof(*e->penalties))))
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < v->n; i++) {
		const lg_fx_penalty *p = (const lg_fx_penalty *)(v->p + i * sizeof(lg_fx_penalty));
		Muri__V1__IndexerPenalty *x = malloc(sizeof(*x));
		if (!x)
			return CM_ERR_NOMEM;
		muri__v1__indexer_penalty__init(x);
		e->penalties[e->n_penalties++] = x;
		x->slashed = p->slashed;
		x->jailed = p->jailed;
		if (lg_query_dup_bytes(&x->indexer, p->indexer, LG_KEY_BYTES) != CM_OK || lg_query_dup_str(&x->reason, p->reason) != CM_OK)
			return CM_ERR_NOMEM;
	}
	return CM_OK;
}

static int add_outcomes(lg_state *st, Muri__V1__BlockEffects *e)
{
	if (!(e->outcomes = calloc(st->nouts ? st->nouts : 1, sizeof(*e->outcomes))))
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < st->nouts; i++) {
		Muri__V1__TxOutcome *o = malloc(sizeof(*o));
		if (!o)
			return CM_ERR_NOMEM;
		muri__v1__tx_outcome__init(o);
		e->outcomes[e->n_outcomes++] = o;
		o->state = st->outs[i].state;
		o->index = st->outs[i].index;
		if (lg_query_dup_bytes(&o->tx_hash, st->outs[i].hash, CM_HASH_BYTES) != CM_OK ||
		    lg_query_dup_str(&o->message, st->outs[i].msg) != CM_OK)
			return CM_ERR_NOMEM;
	}
	return CM_OK;
}

int lg_st_fx_write(lg_state *st, uint64_t height, const uint8_t prev[CM_HASH_BYTES],
		   const uint8_t ws[CM_HASH_BYTES], uint8_t root[CM_HASH_BYTES])
{
	uint8_t eh[CM_HASH_BYTES];
	Muri__V1__BlockEffects *e = malloc(sizeof(*e));
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	if (!e)
		return CM_ERR_NOMEM;
	muri__v1__block_effects__init(e);
	e->height = height;
	if ((rc = add_outcomes(st, e)) != CM_OK || (rc = add_configs(st, e)) != CM_OK ||
	    (rc = add_challenges(st, LG_FX_ISSUED, &e->challenges, &e->n_challenges)) != CM_OK ||
	    (rc = add_challenges(st, LG_FX_CLOSED, &e->challenges_closed, &e->n_challenges_closed)) != CM_OK ||
	    (rc = add_roots(st, e)) != CM_OK ||
	    (rc = add_names(st, LG_FX_CREATED, &e->magus_created, &e->n_magus_created)) != CM_OK ||
	    (rc = add_names(st, LG_FX_DROPPED, &e->magus_dropped, &e->n_magus_dropped)) != CM_OK ||
	    (rc = add_members(st, e)) != CM_OK || (rc = add_penalties(st, e)) != CM_OK)
		goto out;
	/* the content as built, both roots still unset, is what E_h hashes */
	cm_effects_hash(e, eh);
	cm_state_root_next(root, prev, height, ws, eh);
	if ((rc = lg_query_dup_bytes(&e->state_root, root, CM_HASH_BYTES)) != CM_OK ||
	    (rc = lg_query_dup_bytes(&e->write_set_hash, ws, CM_HASH_BYTES)) != CM_OK)
		goto out;
	len = muri__v1__block_effects__get_packed_size(e);
	if (!(buf = malloc(len ? len : 1))) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	muri__v1__block_effects__pack(e, buf);
	rc = lg_store_effects_put(st->store, height, buf, len);
out:
	free(buf);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	return rc;
}
