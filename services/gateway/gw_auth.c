/* The gateway's mirror of access control on chain: API keys by hash,
 * collections' access lists and searchers' allowances to this gateway,
 * applied from every final block the follower hands over (committed
 * transactions only, so the mirror holds exactly what the ledger's state
 * holds at the same height), and the decisions that read it. A revocation
 * takes effect with the block that commits it. The mirror is rebuilt from
 * genesis at each start, as the routing table is. */
#include "gw_auth_int.h"
#include "cm_err.h"
#include "cm_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_auth_new(const gw_auth_opts *o, gw_auth **out)
{
	gw_auth *a = calloc(1, sizeof(*a));
	if (!a)
		return CM_ERR_NOMEM;
	a->o = *o;
	if (o->node_pk) {
		memcpy(a->node_pk, o->node_pk, CM_PK_BYTES);
		a->has_node_pk = 1;
	}
	a->o.node_pk = NULL;
	size_t cap = 16;
	while (cap < 2 * o->nonce_cache)
		cap *= 2;
	a->nonces = calloc(cap, sizeof(*a->nonces));
	a->nonce_cap = cap;
	if (!a->nonces) {
		free(a);
		return CM_ERR_NOMEM;
	}
	pthread_mutex_init(&a->mu, NULL);
	*out = a;
	return CM_OK;
}

void gw_auth_free(gw_auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nkeys; i++)
		free(a->keys[i].collections);
	free(a->keys);
	for (size_t i = 0; i < a->ncolls; i++) {
		free(a->colls[i].readers);
		free(a->colls[i].writers);
	}
	free(a->colls);
	free(a->allow);
	free(a->nonces);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

int gw_auth_enabled(const gw_auth *a)
{
	return a && a->o.enabled;
}

void gw_auth_set_height(gw_auth *a, uint64_t height)
{
	pthread_mutex_lock(&a->mu);
	a->height = height;
	pthread_mutex_unlock(&a->mu);
}

/* ---- keys, sorted by hash ---- */

static size_t key_pos(const gw_auth *a, const uint8_t *hash, int *found)
{
	size_t lo = 0, hi = a->nkeys;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(a->keys[mid].hash, hash, CM_HASH_BYTES);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

gw_key *gw_auth_key_find(gw_auth *a, const uint8_t hash[CM_HASH_BYTES])
{
	int found;
	size_t i = key_pos(a, hash, &found);
	/* the search orders by the hash of a secret, never by the secret; the
	 * final comparison is constant-time all the same */
	return found && cm_ct_equal(a->keys[i].hash, hash, CM_HASH_BYTES) ? &a->keys[i] : NULL;
}

static void key_created(gw_auth *a, const uint8_t *sender, const Muri__V1__CreateApiKey *c, uint64_t h)
{
	int found;
	if (c->key_hash.len != CM_HASH_BYTES)
		return;
	size_t i = key_pos(a, c->key_hash.data, &found);
	if (found)
		return;
	if (a->nkeys >= a->o.keys_max) {
		cm_warn("gw_auth_keys", "height=%llu error=\"auth_keys_max (%zu) keys mirrored: a new key is not "
			"accepted by this gateway\"", (unsigned long long)h, a->o.keys_max);
		return;
	}
	if (a->nkeys == a->keys_cap) {
		size_t cap = a->keys_cap ? 2 * a->keys_cap : 64;
		gw_key *nk = realloc(a->keys, cap * sizeof(*nk));
		if (!nk)
			return;
		a->keys = nk;
		a->keys_cap = cap;
	}
	gw_key k;
	memset(&k, 0, sizeof(k));
	memcpy(k.hash, c->key_hash.data, CM_HASH_BYTES);
	memcpy(k.account, sender, CM_PK_BYTES);
	k.scope = (int)c->scope;
	k.expiry = c->expiry_height;
	size_t len = 0;
	for (size_t j = 0; j < c->n_collections; j++)
		len += strlen(c->collections[j]) + 1;
	if (len) {
		if (!(k.collections = malloc(len)))
			return;
		k.collections[0] = '\0';
		for (size_t j = 0; j < c->n_collections; j++) {
			if (j)
				strcat(k.collections, "\n");
			strcat(k.collections, c->collections[j]);
		}
	}
	memmove(a->keys + i + 1, a->keys + i, (a->nkeys - i) * sizeof(*a->keys));
	a->keys[i] = k;
	a->nkeys++;
}

static void key_revoked(gw_auth *a, const uint8_t *sender, const Muri__V1__RevokeApiKey *r, uint64_t h)
{
	if (r->key_hash.len != CM_HASH_BYTES)
		return;
	gw_key *k = gw_auth_key_find(a, r->key_hash.data);
	if (k && memcmp(k->account, sender, CM_PK_BYTES) == 0 && !k->revoked)
		k->revoked = h;
}

/* ---- collections' access ---- */

gw_acl *gw_auth_acl_find(gw_auth *a, const char *name)
{
	for (size_t i = 0; i < a->ncolls; i++)
		if (strcmp(a->colls[i].name, name) == 0)
			return &a->colls[i];
	return NULL;
}

static void acl_drop(gw_auth *a, const char *name)
{
	gw_acl *c = gw_auth_acl_find(a, name);
	if (!c)
		return;
	free(c->readers);
	free(c->writers);
	size_t i = (size_t)(c - a->colls);
	memmove(a->colls + i, a->colls + i + 1, (a->ncolls - i - 1) * sizeof(*a->colls));
	a->ncolls--;
}

static void acl_created(gw_auth *a, const uint8_t *sender, const Muri__V1__CreateMagu *m)
{
	if (!m->name || strlen(m->name) > GW_AUTH_NAME_MAX)
		return;
	acl_drop(a, m->name);
	if (a->ncolls == a->colls_cap) {
		size_t cap = a->colls_cap ? 2 * a->colls_cap : 16;
		gw_acl *nc = realloc(a->colls, cap * sizeof(*nc));
		if (!nc)
			return;
		a->colls = nc;
		a->colls_cap = cap;
	}
	gw_acl *c = &a->colls[a->ncolls++];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", m->name);
	memcpy(c->owner, m->access_owner.len == CM_PK_BYTES ? m->access_owner.data : sender, CM_PK_BYTES);
}

static uint8_t (*keys_copy(const ProtobufCBinaryData *v, size_t n, size_t *out_n))[CM_PK_BYTES]
{
	uint8_t(*k)[CM_PK_BYTES] = n ? calloc(n, CM_PK_BYTES) : NULL;
	*out_n = 0;
	for (size_t i = 0; k && i < n; i++)
		if (v[i].len == CM_PK_BYTES)
			memcpy(k[(*out_n)++], v[i].data, CM_PK_BYTES);
	return k;
}

static void acl_set(gw_auth *a, const Muri__V1__SetAccess *s)
{
	gw_acl *c = s->magu ? gw_auth_acl_find(a, s->magu) : NULL;
	if (!c)
		return;
	free(c->readers);
	free(c->writers);
	c->readers = keys_copy(s->readers, s->n_readers, &c->nreaders);
	c->writers = keys_copy(s->writers, s->n_writers, &c->nwriters);
	c->public_read = s->public_read;
	if (s->new_owner.len == CM_PK_BYTES)
		memcpy(c->owner, s->new_owner.data, CM_PK_BYTES);
}

/* ---- allowances to this gateway ---- */

gw_allow *gw_auth_allow_find(gw_auth *a, const uint8_t *searcher, int create)
{
	for (size_t i = 0; i < a->nallow; i++)
		if (memcmp(a->allow[i].searcher, searcher, CM_PK_BYTES) == 0)
			return &a->allow[i];
	if (!create)
		return NULL;
	if (a->nallow == a->allow_cap) {
		size_t cap = a->allow_cap ? 2 * a->allow_cap : 16;
		gw_allow *na = realloc(a->allow, cap * sizeof(*na));
		if (!na)
			return NULL;
		a->allow = na;
		a->allow_cap = cap;
	}
	gw_allow *w = &a->allow[a->nallow++];
	memset(w, 0, sizeof(*w));
	memcpy(w->searcher, searcher, CM_PK_BYTES);
	return w;
}

static void approved(gw_auth *a, const uint8_t *sender, const Muri__V1__Approve *ap)
{
	if (!a->has_node_pk || ap->gateway.len != CM_PK_BYTES || memcmp(ap->gateway.data, a->node_pk, CM_PK_BYTES))
		return;
	gw_allow *w = gw_auth_allow_find(a, sender, 1);
	if (!w)
		return;
	w->amount = ap->amount; /* an Approve replaces the allowance outright */
	w->expiry = ap->expiry_height;
	w->spent = 0;
}

/* ---- blocks ---- */

static void apply_tx(gw_auth *a, const Muri__V1__Transaction *t, uint64_t h)
{
	if (t->sender.len != CM_PK_BYTES)
		return;
	const uint8_t *s = t->sender.data;
	switch (t->payload_case) {
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY: key_created(a, s, t->create_api_key, h); break;
	case MURI__V1__TRANSACTION__PAYLOAD_REVOKE_API_KEY: key_revoked(a, s, t->revoke_api_key, h); break;
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU: acl_created(a, s, t->create_magu); break;
	case MURI__V1__TRANSACTION__PAYLOAD_SET_ACCESS: acl_set(a, t->set_access); break;
	case MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU:
		if (t->drop_magu->name)
			acl_drop(a, t->drop_magu->name);
		break;
	case MURI__V1__TRANSACTION__PAYLOAD_APPROVE: approved(a, s, t->approve); break;
	default: break;
	}
}

/* 1 if the tx's payload is one the mirror applies: checked on the raw
 * bytes' field tag first, so the block's other txs are not decoded. */
static int wanted(const ProtobufCBinaryData *body)
{
	static const uint32_t tags[] = {14, 21, 22, 25, 26, 27};
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		uint8_t key = (uint8_t)((tags[i] << 3) | 2); /* length-delimited, one byte for fields < 16 */
		uint8_t k2[2] = {(uint8_t)(((tags[i] << 3) | 2) | 0x80), (uint8_t)(tags[i] >> 4)};
		for (size_t j = 0; j + 1 < body->len; j++)
			if ((tags[i] < 16 && body->data[j] == key) ||
			    (tags[i] >= 16 && body->data[j] == k2[0] && body->data[j + 1] == k2[1]))
				return 1;
	}
	return 0;
}

void gw_auth_apply_block(gw_auth *a, const Muri__V1__Block *b)
{
	const Muri__V1__BlockEffects *e = b->effects;
	uint64_t h = b->header ? b->header->height : 0;
	if (!e)
		return;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < e->n_outcomes; i++) {
		const Muri__V1__TxOutcome *o = e->outcomes[i];
		if (!o || o->state != MURI__V1__TX_STATE__TX_COMMITTED || o->index >= b->n_txs || !b->txs[o->index])
			continue;
		const ProtobufCBinaryData *body = &b->txs[o->index]->body;
		if (!wanted(body))
			continue;
		Muri__V1__Transaction *t = muri__v1__transaction__unpack(NULL, body->len, body->data);
		if (t) {
			apply_tx(a, t, h);
			protobuf_c_message_free_unpacked(&t->base, NULL);
		}
	}
	a->height = h;
	pthread_mutex_unlock(&a->mu);
}
