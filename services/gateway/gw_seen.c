/* gw_seen.h: slots of 32-byte keys in stripes, each under its own lock; a
 * key's slot is its first 8 bytes modulo the table (the keys are BLAKE2b
 * digests, so uniform). A key is only ever compared whole. */
#include "gw_seen.h"
#include "cm_err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64

struct gw_seen {
	size_t n;
	uint8_t (*key)[CM_HASH_BYTES];
	uint8_t *used;
	pthread_mutex_t mu[STRIPES];
};

static size_t slot_of(const gw_seen *s, const uint8_t key[CM_HASH_BYTES])
{
	uint64_t v;
	memcpy(&v, key, sizeof(v));
	return (size_t)(v % s->n);
}

static int known(void *arg, const uint8_t key[CM_HASH_BYTES])
{
	gw_seen *s = arg;
	size_t i = slot_of(s, key);
	pthread_mutex_lock(&s->mu[i % STRIPES]);
	int hit = s->used[i] && memcmp(s->key[i], key, CM_HASH_BYTES) == 0;
	pthread_mutex_unlock(&s->mu[i % STRIPES]);
	return hit;
}

static void add(void *arg, const uint8_t key[CM_HASH_BYTES])
{
	gw_seen *s = arg;
	size_t i = slot_of(s, key);
	pthread_mutex_lock(&s->mu[i % STRIPES]);
	memcpy(s->key[i], key, CM_HASH_BYTES);
	s->used[i] = 1;
	pthread_mutex_unlock(&s->mu[i % STRIPES]);
}

int gw_seen_new(size_t slots, gw_seen **out)
{
	*out = NULL;
	if (slots == 0)
		return CM_OK;
	gw_seen *s = calloc(1, sizeof(*s));
	if (!s)
		return CM_ERR_NOMEM;
	s->n = slots;
	s->key = calloc(slots, CM_HASH_BYTES);
	s->used = calloc(slots, 1);
	if (!s->key || !s->used) {
		free(s->key);
		free(s->used);
		free(s);
		return CM_ERR_NOMEM;
	}
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&s->mu[i], NULL);
	*out = s;
	return CM_OK;
}

void gw_seen_free(gw_seen *s)
{
	if (!s)
		return;
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&s->mu[i]);
	free(s->key);
	free(s->used);
	free(s);
}

cm_answer_seen gw_seen_cb(gw_seen *s)
{
	cm_answer_seen cb = {.known = s ? known : NULL, .add = s ? add : NULL, .arg = s};
	return cb;
}
