/* Per-account token buckets in a bounded, lock-striped table (gw_quota.h).
 *
 * A bucket holds up to its burst of tokens and gains rate tokens a second;
 * it is refilled lazily, when its account is next admitted, from the time
 * since its last refill. A request passes when every limit lets it, and
 * only then takes its tokens (all or nothing), so a refused request costs
 * its account nothing. Each stripe is a chained hash of fixed slots (slot
 * addresses never move, so a call in flight holds its slot) keyed by a
 * SipHash of the account under a random key, so callers cannot pick
 * accounts that collide. */
#include "gw_quota.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"

struct gw_quota_slot {
	uint8_t key[GW_QUOTA_KEY_BYTES];
	uint8_t used;
	uint16_t stripe;
	int32_t next;                 /* chain in the stripe's hash, -1: end */
	uint64_t refill_us;           /* when the buckets were last refilled */
	uint64_t seen_us;             /* last admission attempt (eviction order) */
	double req_tokens, vec_tokens;
	uint64_t inflight;
};

struct stripe {
	pthread_mutex_t mu;
	gw_quota_limits lim;          /* a copy per stripe: admissions read it under mu */
	int32_t *heads;               /* nheads chains */
	uint32_t nheads;
	gw_quota_slot *slots;
	uint32_t nslots, nused;
	char pad[64];                 /* keeps stripes' locks off one cache line */
};

struct gw_quota {
	unsigned char hkey[crypto_shorthash_KEYBYTES];
	struct stripe stripes[GW_QUOTA_STRIPES];
};

static double req_burst(const gw_quota_limits *l)
{
	return l->requests_burst > 0 ? l->requests_burst : fmax(1.0, l->requests_per_second);
}

static double vec_burst(const gw_quota_limits *l)
{
	return l->vectors_burst > 0 ? l->vectors_burst : fmax(1.0, l->vectors_per_second);
}

int gw_quota_new(const gw_quota_limits *l, size_t accounts, gw_quota **out)
{
	if (!l || !out || accounts < GW_QUOTA_STRIPES || accounts > (size_t)INT32_MAX)
		return CM_ERR_INVALID;
	gw_quota *q = calloc(1, sizeof(*q));
	if (!q)
		return CM_ERR_NOMEM;
	randombytes_buf(q->hkey, sizeof(q->hkey));
	uint32_t per = (uint32_t)((accounts + GW_QUOTA_STRIPES - 1) / GW_QUOTA_STRIPES);
	for (int s = 0; s < GW_QUOTA_STRIPES; s++) {
		struct stripe *st = &q->stripes[s];
		pthread_mutex_init(&st->mu, NULL);
		st->lim = *l;
		st->nslots = per;
		st->nheads = per;
		st->slots = calloc(per, sizeof(*st->slots));
		st->heads = malloc(per * sizeof(*st->heads));
		if (!st->slots || !st->heads) {
			gw_quota_free(q);
			return CM_ERR_NOMEM;
		}
		for (uint32_t i = 0; i < per; i++)
			st->heads[i] = -1;
	}
	*out = q;
	return CM_OK;
}

void gw_quota_free(gw_quota *q)
{
	if (!q)
		return;
	for (int s = 0; s < GW_QUOTA_STRIPES; s++) {
		pthread_mutex_destroy(&q->stripes[s].mu);
		free(q->stripes[s].slots);
		free(q->stripes[s].heads);
	}
	free(q);
}

void gw_quota_set_limits(gw_quota *q, const gw_quota_limits *l)
{
	for (int s = 0; s < GW_QUOTA_STRIPES; s++) {
		pthread_mutex_lock(&q->stripes[s].mu);
		q->stripes[s].lim = *l;
		pthread_mutex_unlock(&q->stripes[s].mu);
	}
}

void gw_quota_get_limits(gw_quota *q, gw_quota_limits *l)
{
	pthread_mutex_lock(&q->stripes[0].mu);
	*l = q->stripes[0].lim;
	pthread_mutex_unlock(&q->stripes[0].mu);
}

size_t gw_quota_accounts(gw_quota *q)
{
	size_t n = 0;
	for (int s = 0; s < GW_QUOTA_STRIPES; s++) {
		pthread_mutex_lock(&q->stripes[s].mu);
		n += q->stripes[s].nused;
		pthread_mutex_unlock(&q->stripes[s].mu);
	}
	return n;
}

static void unlink_slot(struct stripe *st, uint32_t head, int32_t idx)
{
	int32_t *p = &st->heads[head];
	while (*p != -1 && *p != idx)
		p = &st->slots[*p].next;
	if (*p == idx)
		*p = st->slots[idx].next;
}

/* The slot of key in st (created with full buckets when absent), or NULL
 * when the stripe is full of accounts with calls in flight. st->mu held. */
static gw_quota_slot *find_or_add(gw_quota *q, struct stripe *st, const uint8_t *key, uint64_t h, uint64_t now_us)
{
	uint32_t head = (uint32_t)(h % st->nheads);
	for (int32_t i = st->heads[head]; i != -1; i = st->slots[i].next)
		if (memcmp(st->slots[i].key, key, GW_QUOTA_KEY_BYTES) == 0)
			return &st->slots[i];
	int32_t pick = -1;
	if (st->nused < st->nslots) {
		pick = (int32_t)st->nused++;
	} else {
		/* forget the least recently seen account with nothing in flight */
		for (uint32_t i = 0; i < st->nslots; i++)
			if (!st->slots[i].inflight && (pick < 0 || st->slots[i].seen_us < st->slots[pick].seen_us))
				pick = (int32_t)i;
		if (pick < 0)
			return NULL;
		uint64_t oh;
		crypto_shorthash((unsigned char *)&oh, st->slots[pick].key, GW_QUOTA_KEY_BYTES, q->hkey);
		unlink_slot(st, (uint32_t)(oh % st->nheads), pick);
	}
	gw_quota_slot *s = &st->slots[pick];
	memset(s, 0, sizeof(*s));
	memcpy(s->key, key, GW_QUOTA_KEY_BYTES);
	s->used = 1;
	s->stripe = (uint16_t)(st - q->stripes);
	s->refill_us = now_us;
	s->req_tokens = req_burst(&st->lim);
	s->vec_tokens = vec_burst(&st->lim);
	s->next = st->heads[head];
	st->heads[head] = pick;
	return s;
}

/* Tokens are doubles refilled by fractions: a bucket within EPS of what a
 * request needs has it (so 10 ms at 100/s always makes one token). */
#define EPS 1e-6

static void refill(gw_quota_slot *s, const gw_quota_limits *l, uint64_t now_us)
{
	if (now_us <= s->refill_us) {
		s->req_tokens = fmin(s->req_tokens, req_burst(l));
		s->vec_tokens = fmin(s->vec_tokens, vec_burst(l));
		return;
	}
	double dt = (double)(now_us - s->refill_us) / 1e6;
	s->req_tokens = fmin(req_burst(l), s->req_tokens + dt * l->requests_per_second);
	s->vec_tokens = fmin(vec_burst(l), s->vec_tokens + dt * l->vectors_per_second);
	s->refill_us = now_us;
}

/* Milliseconds until a bucket of tokens at rate holds need (at least 1). */
static uint64_t wait_ms(double tokens, double need, double rate)
{
	double ms = ceil((need - tokens) / rate * 1000.0 - 1e-6);
	return ms < 1 ? 1 : (uint64_t)ms;
}

static int refuse(gw_quota_refusal *why, const char *limit, double value, uint64_t asked, uint64_t wait)
{
	why->limit = limit;
	why->value = value;
	why->asked = asked;
	why->wait_ms = wait;
	return CM_ERR_RANGE;
}

/* The stripe that holds key's account, and the key's hash. */
static struct stripe *stripe_of(gw_quota *q, const uint8_t *key, uint64_t *h)
{
	crypto_shorthash((unsigned char *)h, key, GW_QUOTA_KEY_BYTES, q->hkey);
	return &q->stripes[(*h >> 32) % GW_QUOTA_STRIPES];
}

/* The account's slot (found or added), stamped and refilled to now_us;
 * NULL with the quota_accounts refusal when the stripe is full of busy
 * accounts. Called with the stripe's lock held. */
static gw_quota_slot *slot_for(gw_quota *q, struct stripe *st, const uint8_t *key, uint64_t h, uint64_t now_us,
			       gw_quota_refusal *why)
{
	gw_quota_slot *s = find_or_add(q, st, key, h, now_us);
	if (!s) {
		refuse(why, "quota_accounts", (double)st->nslots * GW_QUOTA_STRIPES, 0, 0);
		return NULL;
	}
	s->seen_us = now_us;
	refill(s, &st->lim, now_us);
	return s;
}

int gw_quota_admit(gw_quota *q, const uint8_t key[GW_QUOTA_KEY_BYTES], uint64_t now_us, const gw_quota_ask *ask,
		   gw_quota_slot **held, gw_quota_refusal *why)
{
	uint64_t h;
	struct stripe *st = stripe_of(q, key, &h);
	uint64_t batch = ask->queries && ask->top_k > UINT64_MAX / ask->queries ? UINT64_MAX : ask->queries * ask->top_k;
	int rc = CM_OK;
	pthread_mutex_lock(&st->mu);
	const gw_quota_limits *l = &st->lim;
	if (l->request_bytes && ask->bytes > l->request_bytes) {
		rc = refuse(why, "quota_request_bytes", (double)l->request_bytes, ask->bytes, 0);
		goto out;
	}
	if (l->top_k_batch && batch > l->top_k_batch) {
		rc = refuse(why, "quota_top_k_batch", (double)l->top_k_batch, batch, 0);
		goto out;
	}
	if (l->vectors_per_second > 0 && (double)ask->vectors > vec_burst(l)) {
		rc = refuse(why, "quota_vectors_burst", vec_burst(l), ask->vectors, 0);
		goto out;
	}
	gw_quota_slot *s = slot_for(q, st, key, h, now_us, why);
	if (!s) {
		rc = CM_ERR_TOOBIG;
		goto out;
	}
	if (l->concurrent_calls && s->inflight >= l->concurrent_calls) {
		rc = refuse(why, "quota_concurrent_calls", (double)l->concurrent_calls, 0, 0);
		goto out;
	}
	if (l->requests_per_second > 0 && s->req_tokens < 1.0 - EPS) {
		rc = refuse(why, "quota_requests_per_second", l->requests_per_second, 0,
			    wait_ms(s->req_tokens, 1.0, l->requests_per_second));
		goto out;
	}
	if (l->vectors_per_second > 0 && ask->vectors && s->vec_tokens < (double)ask->vectors - EPS) {
		rc = refuse(why, "quota_vectors_per_second", l->vectors_per_second, ask->vectors,
			    wait_ms(s->vec_tokens, (double)ask->vectors, l->vectors_per_second));
		goto out;
	}
	if (l->requests_per_second > 0)
		s->req_tokens = fmax(0.0, s->req_tokens - 1.0);
	if (l->vectors_per_second > 0)
		s->vec_tokens = fmax(0.0, s->vec_tokens - (double)ask->vectors);
	s->inflight++;
	*held = s;
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int gw_quota_take_vectors(gw_quota *q, const uint8_t key[GW_QUOTA_KEY_BYTES], uint64_t now_us, uint64_t n,
			  gw_quota_refusal *why)
{
	uint64_t h;
	struct stripe *st = stripe_of(q, key, &h);
	int rc = CM_OK;
	pthread_mutex_lock(&st->mu);
	const gw_quota_limits *l = &st->lim;
	if (l->vectors_per_second <= 0 || !n)
		goto out;
	if ((double)n > vec_burst(l)) {
		rc = refuse(why, "quota_vectors_burst", vec_burst(l), n, 0);
		goto out;
	}
	gw_quota_slot *s = slot_for(q, st, key, h, now_us, why);
	if (!s) {
		rc = CM_ERR_TOOBIG;
		goto out;
	}
	if (s->vec_tokens < (double)n - EPS) {
		rc = refuse(why, "quota_vectors_per_second", l->vectors_per_second, n,
			    wait_ms(s->vec_tokens, (double)n, l->vectors_per_second));
		goto out;
	}
	s->vec_tokens = fmax(0.0, s->vec_tokens - (double)n);
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

void gw_quota_release(gw_quota *q, gw_quota_slot *held)
{
	if (!held)
		return;
	struct stripe *st = &q->stripes[held->stripe];
	pthread_mutex_lock(&st->mu);
	if (held->inflight)
		held->inflight--;
	pthread_mutex_unlock(&st->mu);
}
