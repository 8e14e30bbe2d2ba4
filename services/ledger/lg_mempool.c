/* Mempool: a FIFO of transactions with two open-addressing maps (by tx hash,
 * by sender) and, per sender, its transactions sorted by nonce so that a
 * proposal takes a sender's consecutive nonces together. */
#include "lg_mempool.h"
#include "cm_err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES 32

struct tx {
	struct tx *prev, *next; /* FIFO */
	struct tx *fprev, *fnext; /* the in-flight list, while in_flight_since != 0 */
	struct sender *sender;
	uint8_t hash[CM_HASH_BYTES];
	uint64_t nonce;
	uint64_t in_flight_since; /* 0: not in flight */
	int refs;                 /* taken batches still using bytes */
	int removed;              /* removed while referenced: free on release */
	size_t len;
	uint8_t bytes[];
};

struct sender {
	uint8_t pk[CM_PK_BYTES];
	struct tx **txs; /* sorted by nonce */
	size_t n, cap;
	size_t in_flight;
	uint64_t nonce_epoch, nonce; /* the committed nonce as read in call nonce_epoch */
};

/* Open addressing, linear probing; keys are 32 uniformly distributed bytes. */
struct map {
	uint8_t (*keys)[KEY_BYTES];
	void **vals; /* NULL empty, TOMB deleted */
	size_t cap, used;
};

static char tomb_mark;
#define TOMB ((void *)&tomb_mark)

struct lg_mempool {
	pthread_mutex_t mu;
	lg_mempool_opts o;
	struct tx *head, *tail;
	struct tx *fhead; /* transactions in flight, in no order */
	struct map by_hash, by_sender;
	size_t count, bytes;
	uint64_t epoch; /* one per take / requeue call: a sender's nonce is read once a call */
};

/* The sender's committed nonce, read once per call (epoch). */
static uint64_t sender_nonce(lg_mempool *m, struct sender *s, lg_nonce_fn nonce, void *arg)
{
	if (s->nonce_epoch != m->epoch) {
		s->nonce = nonce(arg, s->pk);
		s->nonce_epoch = m->epoch;
	}
	return s->nonce;
}

static uint64_t key_hash(const uint8_t *k)
{
	uint64_t h;
	memcpy(&h, k, sizeof(h));
	return h ^ (h >> 29);
}

static int map_init(struct map *m, size_t cap)
{
	m->keys = calloc(cap, KEY_BYTES);
	m->vals = calloc(cap, sizeof(void *));
	m->cap = cap;
	m->used = 0;
	return m->keys && m->vals ? CM_OK : CM_ERR_NOMEM;
}

static void map_free(struct map *m)
{
	free(m->keys);
	free(m->vals);
}

static void *map_get(const struct map *m, const uint8_t *k)
{
	for (size_t i = key_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->vals[i])
			return NULL;
		if (m->vals[i] != TOMB && memcmp(m->keys[i], k, KEY_BYTES) == 0)
			return m->vals[i];
	}
}

static int map_put(struct map *m, const uint8_t *k, void *v);

static int map_grow(struct map *m)
{
	struct map bigger;
	if (map_init(&bigger, m->cap * 2) != CM_OK) {
		map_free(&bigger);
		return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->vals[i] && m->vals[i] != TOMB)
			map_put(&bigger, m->keys[i], m->vals[i]);
	map_free(m);
	*m = bigger;
	return CM_OK;
}

static int map_put(struct map *m, const uint8_t *k, void *v)
{
	if ((m->used + 1) * 10 > m->cap * 7 && map_grow(m) != CM_OK)
		return CM_ERR_NOMEM;
	size_t i = key_hash(k) & (m->cap - 1);
	while (m->vals[i] && m->vals[i] != TOMB)
		i = (i + 1) & (m->cap - 1);
	if (!m->vals[i])
		m->used++;
	memcpy(m->keys[i], k, KEY_BYTES);
	m->vals[i] = v;
	return CM_OK;
}

static void map_del(struct map *m, const uint8_t *k)
{
	for (size_t i = key_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->vals[i])
			return;
		if (m->vals[i] != TOMB && memcmp(m->keys[i], k, KEY_BYTES) == 0) {
			m->vals[i] = TOMB;
			return;
		}
	}
}

int lg_mempool_new(const lg_mempool_opts *o, lg_mempool **out)
{
	if (!o->max_txs || !o->max_bytes || !o->max_per_sender)
		return CM_ERR_INVALID;
	lg_mempool *m = calloc(1, sizeof(*m));
	if (!m)
		return CM_ERR_NOMEM;
	m->o = *o;
	pthread_mutex_init(&m->mu, NULL);
	if (map_init(&m->by_hash, 1024) != CM_OK || map_init(&m->by_sender, 256) != CM_OK) {
		lg_mempool_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

void lg_mempool_free(lg_mempool *m)
{
	if (!m)
		return;
	for (struct tx *t = m->head, *next; t; t = next) {
		next = t->next;
		free(t);
	}
	for (size_t i = 0; i < m->by_sender.cap; i++) {
		struct sender *s = m->by_sender.vals[i];
		if (s && (void *)s != TOMB) {
			free(s->txs);
			free(s);
		}
	}
	map_free(&m->by_hash);
	map_free(&m->by_sender);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Position of the first transaction of s with nonce >= nonce. */
static size_t sender_lower_bound(const struct sender *s, uint64_t nonce)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->txs[mid]->nonce < nonce)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void flight_start(lg_mempool *m, struct tx *t, uint64_t now_ms)
{
	t->in_flight_since = now_ms ? now_ms : 1;
	t->sender->in_flight++;
	t->fprev = NULL;
	t->fnext = m->fhead;
	if (m->fhead)
		m->fhead->fprev = t;
	m->fhead = t;
}

static void flight_end(lg_mempool *m, struct tx *t)
{
	if (!t->in_flight_since)
		return;
	t->in_flight_since = 0;
	if (t->sender->in_flight)
		t->sender->in_flight--;
	if (t->fprev)
		t->fprev->fnext = t->fnext;
	else
		m->fhead = t->fnext;
	if (t->fnext)
		t->fnext->fprev = t->fprev;
}

/* Unlinks t from every structure; frees it unless a batch still uses it. */
static void drop(lg_mempool *m, struct tx *t)
{
	struct sender *s = t->sender;
	size_t i = sender_lower_bound(s, t->nonce);
	if (i < s->n && s->txs[i] == t) {
		memmove(&s->txs[i], &s->txs[i + 1], (s->n - i - 1) * sizeof(*s->txs));
		s->n--;
	}
	flight_end(m, t);
	if (s->n == 0) {
		map_del(&m->by_sender, s->pk);
		free(s->txs);
		free(s);
	}
	map_del(&m->by_hash, t->hash);
	if (t->prev)
		t->prev->next = t->next;
	else
		m->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		m->tail = t->prev;
	m->count--;
	m->bytes -= t->len;
	if (t->refs)
		t->removed = 1;
	else
		free(t);
}

int lg_mempool_add(lg_mempool *m, const uint8_t hash[CM_HASH_BYTES],
		   const uint8_t sender[CM_PK_BYTES], uint64_t nonce, const uint8_t *bytes,
		   size_t len, uint64_t committed_nonce)
{
	if (nonce < committed_nonce)
		return CM_ERR_STATE;
	pthread_mutex_lock(&m->mu);
	int rc = CM_OK;
	struct sender *s = map_get(&m->by_sender, sender);
	if (map_get(&m->by_hash, hash)) {
		rc = CM_ERR_EXISTS;
	} else if (s) {
		size_t i = sender_lower_bound(s, nonce);
		if (i < s->n && s->txs[i]->nonce == nonce)
			rc = CM_ERR_EXISTS;
		else if (s->n >= m->o.max_per_sender)
			rc = CM_ERR_TOOBIG;
	}
	if (rc == CM_OK && (m->count >= m->o.max_txs || m->bytes + len > m->o.max_bytes))
		rc = CM_ERR_TOOBIG;
	struct tx *t = NULL;
	if (rc == CM_OK && !(t = malloc(sizeof(*t) + len)))
		rc = CM_ERR_NOMEM;
	if (rc == CM_OK && !s) {
		s = calloc(1, sizeof(*s));
		if (!s || map_put(&m->by_sender, sender, s) != CM_OK) {
			free(s);
			s = NULL;
			rc = CM_ERR_NOMEM;
		} else {
			memcpy(s->pk, sender, CM_PK_BYTES);
		}
	}
	if (rc == CM_OK && s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4;
		struct tx **txs = realloc(s->txs, cap * sizeof(*txs));
		if (txs) {
			s->txs = txs;
			s->cap = cap;
		} else {
			rc = CM_ERR_NOMEM;
		}
	}
	if (rc == CM_OK && map_put(&m->by_hash, hash, t) != CM_OK)
		rc = CM_ERR_NOMEM;
	if (rc != CM_OK) {
		free(t);
		if (s && s->n == 0) {
			map_del(&m->by_sender, sender);
			free(s->txs);
			free(s);
		}
		pthread_mutex_unlock(&m->mu);
		return rc;
	}
	memset(t, 0, sizeof(*t));
	memcpy(t->hash, hash, CM_HASH_BYTES);
	t->nonce = nonce;
	t->sender = s;
	t->len = len;
	memcpy(t->bytes, bytes, len);
	size_t i = sender_lower_bound(s, nonce);
	memmove(&s->txs[i + 1], &s->txs[i], (s->n - i) * sizeof(*s->txs));
	s->txs[i] = t;
	s->n++;
	t->prev = m->tail;
	if (m->tail)
		m->tail->next = t;
	else
		m->head = t;
	m->tail = t;
	m->count++;
	m->bytes += len;
	pthread_mutex_unlock(&m->mu);
	return CM_OK;
}

size_t lg_mempool_take(lg_mempool *m, size_t max_txs, size_t max_bytes, uint64_t now_ms,
		       lg_nonce_fn nonce, void *nonce_arg, lg_mempool_tx *out)
{
	size_t n = 0, bytes = 0;
	if (now_ms == 0)
		now_ms = 1;
	pthread_mutex_lock(&m->mu);
	m->epoch++;
	for (struct tx *t = m->head; t && n < max_txs; t = t->next) {
		if (t->in_flight_since)
			continue;
		struct sender *s = t->sender;
		/* nonce() is the next nonce after the committed state and the
		 * pending blocks the proposal extends: take the consecutive run
		 * from there, stopping at a gap (never a later nonce past a
		 * missing one) or at one in flight in some other block (it is
		 * offered again if that block is abandoned) */
		uint64_t expect = sender_nonce(m, s, nonce, nonce_arg);
		size_t i = sender_lower_bound(s, expect);
		for (; i < s->n && n < max_txs; i++) {
			struct tx *u = s->txs[i];
			if (u->nonce != expect || u->in_flight_since || bytes + u->len > max_bytes)
				break;
			flight_start(m, u, now_ms);
			u->refs++;
			memcpy(out[n].hash, u->hash, CM_HASH_BYTES);
			out[n].bytes = u->bytes;
			out[n].len = u->len;
			n++;
			bytes += u->len;
			expect++;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return n;
}

void lg_mempool_release(lg_mempool *m, const lg_mempool_tx *txs, size_t n)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < n; i++) {
		/* bytes point into the tx; recover it from the flexible array */
		struct tx *t = (struct tx *)((uint8_t *)txs[i].bytes - offsetof(struct tx, bytes));
		if (--t->refs == 0 && t->removed)
			free(t);
	}
	pthread_mutex_unlock(&m->mu);
}

void lg_mempool_mark_in_flight(lg_mempool *m, const uint8_t (*hashes)[CM_HASH_BYTES], size_t n,
			       uint64_t now_ms)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < n; i++) {
		struct tx *t = map_get(&m->by_hash, hashes[i]);
		if (t && !t->in_flight_since)
			flight_start(m, t, now_ms);
	}
	pthread_mutex_unlock(&m->mu);
}

void lg_mempool_remove(lg_mempool *m, const uint8_t (*hashes)[CM_HASH_BYTES], size_t n)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < n; i++) {
		struct tx *t = map_get(&m->by_hash, hashes[i]);
		if (t)
			drop(m, t);
	}
	pthread_mutex_unlock(&m->mu);
}

size_t lg_mempool_requeue_stale(lg_mempool *m, uint64_t now_ms, uint64_t age_ms,
				lg_nonce_fn nonce, void *nonce_arg)
{
	size_t again = 0;
	pthread_mutex_lock(&m->mu);
	m->epoch++;
	/* used nonces: each sender's lowest first, until one is still to come */
	for (size_t i = 0; i < m->by_sender.cap; i++) {
		struct sender *s = m->by_sender.vals[i];
		if (!s || (void *)s == TOMB)
			continue;
		uint64_t c = sender_nonce(m, s, nonce, nonce_arg);
		while (s->n && s->txs[0]->nonce < c) {
			int last = s->n == 1; /* drop() frees the sender with its last tx */
			drop(m, s->txs[0]);
			if (last)
				break;
		}
	}
	/* in flight for age_ms: their block was abandoned */
	for (struct tx *t = m->fhead, *next; t; t = next) {
		next = t->fnext;
		if (t->in_flight_since + age_ms <= now_ms) {
			flight_end(m, t);
			again++;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return again;
}

int lg_mempool_contains(lg_mempool *m, const uint8_t hash[CM_HASH_BYTES])
{
	pthread_mutex_lock(&m->mu);
	int yes = map_get(&m->by_hash, hash) != NULL;
	pthread_mutex_unlock(&m->mu);
	return yes;
}

size_t lg_mempool_count(lg_mempool *m)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->count;
	pthread_mutex_unlock(&m->mu);
	return n;
}

size_t lg_mempool_bytes(lg_mempool *m)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->bytes;
	pthread_mutex_unlock(&m->mu);
	return n;
}
