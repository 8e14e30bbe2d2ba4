/* Signed reads (ix_read_auth.h): the window, the replay cache, the readers,
 * and the checks restricted handlers make: ixs_read_check (a signed read)
 * and ixs_peer_check (who the caller's TLS certificate says calls). */
#include "ix_read_auth.h"
#include "cm_err.h"
#include "cm_read_auth.h"
#include "cm_time.h"
#include "ix_service_int.h"
#include "ix_split.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES 16 /* of H(signature): enough to tell answered signatures apart */

struct entry {
	uint8_t key[KEY_BYTES];
	uint64_t wall_ms;
	uint32_t next; /* in its bucket; UINT32_MAX ends */
};

struct ix_read_auth {
	pthread_mutex_t mu;
	uint32_t window_ms;
	uint32_t cap, n, head;   /* entries in arrival order, a ring */
	struct entry *e;
	uint32_t nb;             /* buckets, a power of two */
	uint32_t *bucket;
	uint64_t floor;          /* refuse wall_ms <= floor: newer than it were forgotten */
	uint8_t (*readers)[CM_PK_BYTES];
	size_t nreaders;
};

int ix_read_auth_new(uint32_t window_ms, uint32_t replay_max, ix_read_auth **out)
{
	ix_read_auth *a = calloc(1, sizeof(*a));
	if (!a)
		return CM_ERR_NOMEM;
	a->window_ms = window_ms;
	a->cap = replay_max ? replay_max : 1;
	a->nb = 1;
	while (a->nb < a->cap)
		a->nb <<= 1;
	a->e = calloc(a->cap, sizeof(*a->e));
	a->bucket = malloc(a->nb * sizeof(*a->bucket));
	if (!a->e || !a->bucket) {
		ix_read_auth_free(a);
		return CM_ERR_NOMEM;
	}
	memset(a->bucket, 0xff, a->nb * sizeof(*a->bucket));
	pthread_mutex_init(&a->mu, NULL);
	*out = a;
	return CM_OK;
}

void ix_read_auth_free(ix_read_auth *a)
{
	if (!a)
		return;
	if (a->e && a->bucket)
		pthread_mutex_destroy(&a->mu);
	free(a->e);
	free(a->bucket);
	free(a->readers);
	free(a);
}

uint32_t ix_read_auth_window(const ix_read_auth *a)
{
	return a->window_ms;
}

int ix_read_auth_set_readers(ix_read_auth *a, const uint8_t (*pks)[CM_PK_BYTES], size_t n)
{
	uint8_t(*r)[CM_PK_BYTES] = NULL;
	if (n && !(r = malloc(n * CM_PK_BYTES)))
		return CM_ERR_NOMEM;
	if (n)
		memcpy(r, pks, n * CM_PK_BYTES);
	pthread_mutex_lock(&a->mu);
	free(a->readers);
	a->readers = r;
	a->nreaders = n;
	pthread_mutex_unlock(&a->mu);
	return CM_OK;
}

int ix_read_auth_is_reader(ix_read_auth *a, const uint8_t pk[CM_PK_BYTES])
{
	int yes = 0;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->nreaders && !yes; i++)
		yes = memcmp(a->readers[i], pk, CM_PK_BYTES) == 0;
	pthread_mutex_unlock(&a->mu);
	return yes;
}

static uint32_t bucket_of(const ix_read_auth *a, const uint8_t key[KEY_BYTES])
{
	uint32_t b;
	memcpy(&b, key, sizeof(b));
	return b & (a->nb - 1);
}

/* Forgets the oldest entry (the ring's head). */
static void evict(ix_read_auth *a, uint64_t now)
{
	uint32_t i = a->head;
	struct entry *x = &a->e[i];
	uint32_t *p = &a->bucket[bucket_of(a, x->key)];
	while (*p != i && *p != UINT32_MAX)
		p = &a->e[*p].next;
	if (*p == i)
		*p = x->next;
	/* still within the window: a replay of it must meet the floor instead */
	if (x->wall_ms + a->window_ms >= now && x->wall_ms > a->floor)
		a->floor = x->wall_ms;
	a->head = (a->head + 1) % a->cap;
	a->n--;
}

int ix_read_auth_once(ix_read_auth *a, const uint8_t sig[CM_SIG_BYTES], uint64_t wall_ms, uint64_t now)
{
	uint8_t h[CM_HASH_BYTES], key[KEY_BYTES];
	cm_hash(h, CM_DOM_READ, sig, CM_SIG_BYTES);
	memcpy(key, h, KEY_BYTES);
	pthread_mutex_lock(&a->mu);
	int rc = CM_OK;
	if (wall_ms <= a->floor)
		rc = CM_ERR_RANGE;
	for (uint32_t i = a->bucket[bucket_of(a, key)]; rc == CM_OK && i != UINT32_MAX; i = a->e[i].next)
		if (memcmp(a->e[i].key, key, KEY_BYTES) == 0)
			rc = CM_ERR_EXISTS;
	if (rc == CM_OK) {
		/* expired entries go first; a full ring forgets its oldest */
		while (a->n && (a->e[a->head].wall_ms + a->window_ms < now || a->n == a->cap))
			evict(a, now);
		uint32_t i = (a->head + a->n) % a->cap;
		memcpy(a->e[i].key, key, KEY_BYTES);
		a->e[i].wall_ms = wall_ms;
		uint32_t *b = &a->bucket[bucket_of(a, key)];
		a->e[i].next = *b;
		*b = i;
		a->n++;
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* ---- the check of a restricted handler ------------------------------------------------- */

/* 1 when pk is a replica of f (NULL: none) in its current epoch, written to *epoch. */
static int is_member(struct frag *f, const uint8_t pk[CM_PK_BYTES], uint64_t *epoch)
{
	int member = 0;
	*epoch = 0;
	if (f) {
		ixr_core_enter(f);
		member = f->core && ix_repl_is_member(f->core, pk);
		*epoch = f->core ? ix_repl_epoch(f->core) : 0;
		ixr_core_leave(f);
	}
	return member;
}

/* ixs_peer_check and ixs_read_check: readers IXS_READ_LOG (FetchLog) lets a
 * split half's replicas read its parent, IXS_READ_PROOFS the chain's readers. */
static int may_read(ix_service *s, struct frag *f, const uint8_t pk[CM_PK_BYTES], int readers, uint64_t *epoch)
{
	return is_member(f, pk, epoch) || (readers == IXS_READ_PROOFS && ix_read_auth_is_reader(s->reads, pk)) ||
	       (readers == IXS_READ_LOG && ixp_child_reader(f, pk));
}

static const char *readers_text(int readers)
{
	return readers == IXS_READ_LOG ? " or of one of its split halves"
	       : readers ? ", a ledger replica or a genesis gateway" : "";
}

int ixs_peer_check(ix_service *s, cm_rpc_call *call, const char *method, const char *magu, uint32_t fragment,
		   struct frag *f, int readers)
{
	if (!cm_rpc_peer_checked(call))
		return GRPC_STATUS_OK;
	uint8_t pk[CM_PK_BYTES];
	char why[256];
	if (cm_rpc_peer_node(call, pk, why, sizeof(why)) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "tls: %s answers only a node whose certificate is bound to its node key: %s", method,
				   why);
	uint64_t epoch;
	if (may_read(s, f, pk, readers, &epoch))
		return GRPC_STATUS_OK;
	char hex[2 * CM_PK_BYTES + 1];
	cm_hex(hex, pk, CM_PK_BYTES);
	return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
			   "tls: the caller's certificate is node %.16s, which the chain does not name a replica of "
			   "%s/%u in epoch %llu%s; %s refused",
			   hex, magu, fragment, (unsigned long long)epoch, readers_text(readers), method);
}

int ixs_read_check(ix_service *s, cm_rpc_call *call, const char *method, const ProtobufCMessage *req,
		   const Muri__V1__ReadAuth *auth, const char *magu, uint32_t fragment, struct frag *f, int proofs)
{
	int code = ixs_peer_check(s, call, method, magu, fragment, f, proofs);
	if (code != GRPC_STATUS_OK)
		return code;
	if (!auth || auth->requester.len != CM_PK_BYTES || auth->signature.len != CM_SIG_BYTES)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "auth: %s answers only a request signed by the caller's node key (auth.requester, "
				   "auth.wall_ms, auth.signature)", method);
	uint64_t now = cm_wall_ms();
	uint32_t win = ix_read_auth_window(s->reads);
	if (auth->wall_ms + win < now || auth->wall_ms > now + win)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "auth.wall_ms: %llu is more than read_auth_window_ms %u from this indexer's clock %llu",
				   (unsigned long long)auth->wall_ms, win, (unsigned long long)now);
	char chain[IX_CHAIN_ID_MAX + 1];
	ixs_chain_id(s, chain);
	uint8_t d[CM_HASH_BYTES];
	if (cm_read_auth_digest(d, method, chain, req) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (cm_verify(auth->requester.data, auth->signature.data, d, sizeof(d)) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "auth.signature: not auth.requester's signature over this %s request on chain \"%s\"",
				   method, chain);
	uint64_t epoch = 0;
	if (!may_read(s, f, auth->requester.data, proofs, &epoch)) {
		char hex[2 * CM_PK_BYTES + 1];
		cm_hex(hex, auth->requester.data, CM_PK_BYTES);
		return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
				   "auth.requester: %.16s is not a replica of %s/%u in epoch %llu%s", hex, magu, fragment,
				   (unsigned long long)epoch, readers_text(proofs));
	}
	int rc = ix_read_auth_once(s->reads, auth->signature.data, auth->wall_ms, now);
	if (rc == CM_ERR_EXISTS)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "auth.signature: this signed request was answered already (a replay); sign each request anew");
	if (rc != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "auth.wall_ms: %llu is older than the replays this indexer can still tell apart "
				   "(read_replay_max); sign it anew", (unsigned long long)auth->wall_ms);
	return GRPC_STATUS_OK;
}
