/* ix_sign.h: a queue of answers ready to sign under one mutex; the leader
 * takes up to group_max of them, builds their Merkle tree, signs the root
 * and copies the signature and each path into its owner's buffers (an
 * answer lives in its own call's memory, which may outlive the leader's). */
#include "ix_sign.h"
#include "cm_answer.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "cm_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct entry {
	const uint8_t *d;
	Muri__V1__LocalSearchResponse *r;
	uint8_t *sig, *path;
	int done, rc;
	struct entry *next;
};

struct ix_signer {
	const cm_keypair *kp;
	uint32_t max, wait_us;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct entry *head, *tail;
	uint32_t pending;        /* entries queued */
	uint32_t running;        /* searches entered, not left */
	int leading;
};

int ix_signer_new(const cm_keypair *kp, uint32_t group_max, uint32_t group_wait_us, ix_signer **out)
{
	ix_signer *s = calloc(1, sizeof(*s));
	if (!s)
		return CM_ERR_NOMEM;
	s->kp = kp;
	s->max = group_max < 1 ? 1 : group_max > CM_ANSWER_BATCH_MAX ? CM_ANSWER_BATCH_MAX : group_max;
	s->wait_us = group_wait_us;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = s;
	return CM_OK;
}

void ix_signer_free(ix_signer *s)
{
	if (!s)
		return;
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

size_t ix_signer_path_bytes(const ix_signer *s)
{
	return CM_ANSWER_PATH_MAX(s->max) * CM_HASH_BYTES;
}

void ix_signer_enter(ix_signer *s)
{
	pthread_mutex_lock(&s->mu);
	s->running++;
	pthread_mutex_unlock(&s->mu);
}

void ix_signer_leave(ix_signer *s)
{
	pthread_mutex_lock(&s->mu);
	s->running--;
	pthread_cond_broadcast(&s->cv); /* a leader waiting for this one stops waiting */
	pthread_mutex_unlock(&s->mu);
}

/* Signs the n entries of list (outside the lock). */
static int sign_group(ix_signer *s, struct entry *list, size_t n)
{
	if (n == 1) {
		struct entry *e = list;
		cm_sign(s->kp, e->sig, e->d, CM_HASH_BYTES);
		e->r->batch_size = 0;
		e->r->batch_index = 0;
		e->r->batch_path.data = NULL;
		e->r->batch_path.len = 0;
		return CM_OK;
	}
	cm_merkle *t = NULL;
	int rc = cm_merkle_new(&t, &cm_merkle_blake2b);
	for (struct entry *e = list; rc == CM_OK && e; e = e->next)
		rc = cm_merkle_append(t, e->d, CM_HASH_BYTES);
	uint8_t root[CM_HASH_BYTES], msg[CM_HASH_BYTES], sig[CM_SIG_BYTES];
	if (rc == CM_OK)
		rc = cm_merkle_root(t, n, root);
	size_t i = 0;
	for (struct entry *e = list; rc == CM_OK && e; e = e->next, i++) {
		cm_merkle_path p;
		rc = cm_merkle_inclusion(t, i, n, &p);
		if (rc == CM_OK && p.len * CM_HASH_BYTES > ix_signer_path_bytes(s))
			rc = CM_ERR_INTERNAL;
		if (rc != CM_OK)
			break;
		memcpy(e->path, p.hash, p.len * CM_HASH_BYTES);
		e->r->batch_size = n;
		e->r->batch_index = i;
		e->r->batch_path.data = e->path;
		e->r->batch_path.len = p.len * CM_HASH_BYTES;
	}
	cm_merkle_free(t);
	if (rc != CM_OK)
		return rc;
	cm_answer_batch_message(msg, n, root);
	cm_sign(s->kp, sig, msg, sizeof(msg));
	for (struct entry *e = list; e; e = e->next)
		memcpy(e->sig, sig, CM_SIG_BYTES);
	return CM_OK;
}

int ix_signer_sign(ix_signer *s, const uint8_t d[CM_HASH_BYTES], Muri__V1__LocalSearchResponse *r,
		   uint8_t sig[CM_SIG_BYTES], uint8_t *path)
{
	struct entry me = {.d = d, .r = r, .sig = sig, .path = path};
	pthread_mutex_lock(&s->mu);
	if (s->tail)
		s->tail->next = &me;
	else
		s->head = &me;
	s->tail = &me;
	s->pending++;
	pthread_cond_broadcast(&s->cv); /* a leader waiting for this one */
	while (!me.done) {
		if (s->leading) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		s->leading = 1;
		if (s->wait_us && s->max > 1) {
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_nsec += (long)s->wait_us * 1000L;
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			/* searches still running will be ready soon: wait for them */
			while (s->pending < s->running && s->pending < s->max)
				if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
					break;
		}
		struct entry *list = s->head, *last = list;
		size_t n = 1;
		while (n < s->max && last->next) {
			last = last->next;
			n++;
		}
		s->head = last->next;
		if (!s->head)
			s->tail = NULL;
		last->next = NULL;
		s->pending -= (uint32_t)n;
		pthread_mutex_unlock(&s->mu);
		int rc = sign_group(s, list, n);
		pthread_mutex_lock(&s->mu);
		for (struct entry *e = list; e;) {
			struct entry *next = e->next;
			e->rc = rc;
			e->done = 1;
			e = next;
		}
		s->leading = 0;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	if (me.rc == CM_OK) {
		r->signer.data = (uint8_t *)s->kp->pk;
		r->signer.len = CM_PK_BYTES;
		r->signature.data = sig;
		r->signature.len = CM_SIG_BYTES;
	}
	return me.rc;
}
