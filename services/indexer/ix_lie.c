/* A lying indexer for the Byzantine tests (ix_lie.h); test builds only. */
#include "ix_lie.h"
#include "cm_err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_SLOTS 16

struct ix_lie {
	int kind;
	pthread_mutex_t mu;
	uint64_t count;
	/* per fragment, the last signed answer, packed */
	struct slot {
		char magu[129];
		uint32_t fragment;
		uint8_t *bytes;
		size_t len;
	} slot[REPLAY_SLOTS];
};

int ix_lie_parse(const char *s, int *kind)
{
	static const char *names[] = {"none", "fabricate", "distance", "drop_nn", "replay", "mix"};
	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (strcmp(s, names[i]) == 0) {
			*kind = i;
			return CM_OK;
		}
	return CM_ERR_INVALID;
}

int ix_lie_new(int kind, ix_lie **out)
{
	if (kind == IX_LIE_NONE) {
		*out = NULL;
		return CM_OK;
	}
	ix_lie *l = calloc(1, sizeof(*l));
	if (!l)
		return CM_ERR_NOMEM;
	l->kind = kind;
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return CM_OK;
}

void ix_lie_free(ix_lie *l)
{
	if (!l)
		return;
	for (int i = 0; i < REPLAY_SLOTS; i++)
		free(l->slot[i].bytes);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

int ix_lie_next(ix_lie *l)
{
	if (!l)
		return IX_LIE_NONE;
	if (l->kind != IX_LIE_MIX)
		return l->kind;
	pthread_mutex_lock(&l->mu);
	int k = IX_LIE_FABRICATE + (int)(l->count++ % 4);
	pthread_mutex_unlock(&l->mu);
	return k;
}

static Muri__V1__Hit *hit_copy(const Muri__V1__Hit *h, cm_arena *a)
{
	Muri__V1__Hit *c = cm_arena_alloc(a, sizeof(*c));
	if (c)
		*c = *h;
	return c;
}

static int fabricate_binary(const Muri__V1__Vector *query, Muri__V1__LocalSearchResponse *r, cm_arena *a)
{
	Muri__V1__Hit *h = hit_copy(r->hits[0], a);
	Muri__V1__Vector *v = cm_arena_alloc(a, sizeof(*v));
	uint8_t *b = cm_arena_alloc(a, query->binary.len);
	if (!h || !v || !b)
		return CM_ERR_NOMEM;
	muri__v1__vector__init(v);
	memcpy(b, query->binary.data, query->binary.len);
	v->binary.data = b;
	v->binary.len = query->binary.len;
	h->vector = v;
	h->distance = 0; /* the query's distance to itself */
	r->hits[0] = h;
	return CM_OK;
}

int ix_lie_tamper(int kind, const ix_spec *spec, const Muri__V1__Vector *qv, uint32_t k,
		  Muri__V1__LocalSearchResponse *r, cm_arena *a)
{
	const float *query = qv ? qv->values : NULL;
	switch (kind) {
	case IX_LIE_FABRICATE: {
		if (r->n_hits == 0 || !qv)
			return CM_OK;
		if (spec->metric == IX_HAMMING)
			return qv->binary.len ? fabricate_binary(qv, r, a) : CM_OK;
		if (!query)
			return CM_OK;
		Muri__V1__Hit *h = hit_copy(r->hits[0], a);
		Muri__V1__Vector *v = cm_arena_alloc(a, sizeof(*v));
		float *vals = cm_arena_alloc(a, spec->dim * sizeof(float));
		float *qp = cm_arena_alloc(a, spec->dim * sizeof(float));
		if (!h || !v || !vals || !qp)
			return CM_ERR_NOMEM;
		muri__v1__vector__init(v);
		memcpy(vals, query, spec->dim * sizeof(float));
		memcpy(qp, query, spec->dim * sizeof(float));
		v->values = vals;
		v->n_values = spec->dim;
		h->vector = v;
		float p[1];
		float *xp = cm_arena_alloc(a, spec->dim * sizeof(float));
		if (!xp)
			return CM_ERR_NOMEM;
		memcpy(xp, vals, spec->dim * sizeof(float));
		ix_vec_prepare(spec, qp, 1);
		ix_vec_prepare(spec, xp, 1);
		ix_distances(spec, qp, xp, 1, p);
		h->distance = p[0];
		r->hits[0] = h;
		return CM_OK;
	}
	case IX_LIE_DISTANCE:
		for (size_t i = 0; i < r->n_hits; i++) {
			Muri__V1__Hit *h = hit_copy(r->hits[i], a);
			if (!h)
				return CM_ERR_NOMEM;
			h->distance -= 0.1f + 0.5f * (h->distance < 0 ? -h->distance : h->distance);
			r->hits[i] = h;
		}
		return CM_OK;
	case IX_LIE_DROP_NN:
		if (r->n_hits == 0)
			return CM_OK;
		memmove(r->hits, r->hits + 1, (r->n_hits - 1) * sizeof(*r->hits));
		r->n_hits--;
		if (r->n_hits > k)
			r->n_hits = k;
		return CM_OK;
	default:
		return CM_OK;
	}
}

Muri__V1__LocalSearchResponse *ix_lie_replay(ix_lie *l, const char *magu, uint32_t fragment,
					     Muri__V1__LocalSearchResponse *r, cm_arena *a)
{
	size_t n = protobuf_c_message_get_packed_size(&r->base);
	uint8_t *bytes = malloc(n ? n : 1);
	if (!bytes)
		return r;
	protobuf_c_message_pack(&r->base, bytes);
	pthread_mutex_lock(&l->mu);
	struct slot *s = NULL;
	for (int i = 0; i < REPLAY_SLOTS && !s; i++)
		if (l->slot[i].bytes && l->slot[i].fragment == fragment && strcmp(l->slot[i].magu, magu) == 0)
			s = &l->slot[i];
	for (int i = 0; i < REPLAY_SLOTS && !s; i++)
		if (!l->slot[i].bytes)
			s = &l->slot[i];
	if (!s)
		s = &l->slot[fragment % REPLAY_SLOTS];
	Muri__V1__LocalSearchResponse *old = NULL;
	if (s->bytes && s->fragment == fragment && strcmp(s->magu, magu) == 0)
		old = muri__v1__local_search_response__unpack(&a->pb, s->len, s->bytes);
	free(s->bytes);
	s->bytes = bytes;
	s->len = n;
	s->fragment = fragment;
	strncpy(s->magu, magu, sizeof(s->magu) - 1);
	s->magu[sizeof(s->magu) - 1] = '\0';
	pthread_mutex_unlock(&l->mu);
	return old ? old : r;
}
