/* The state machine's access control: API keys and Magu access lists.
 *
 * Keys. CreateApiKey registers the hash of a key (never the key) for the
 * sender's account, with a scope, an optional expiry height and an optional
 * list of collections; a hash once registered stays taken, so a revoked key
 * can never come back. RevokeApiKey marks a key of the sender revoked at
 * this height. Gateways mirror both from the blocks they follow
 * (services/gateway/gw_auth.c) and so refuse a revoked key from the block
 * that commits the revocation on.
 *
 * Access lists. A Magu's access owner is CreateMagu.access_owner, or its
 * sender; SetAccess, sent by the access owner, replaces the readers, the
 * writers and the public-read flag, and may hand the ownership on. Dropping
 * the Magu deletes its lists. */
#include "lg_state_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_OF_MAX 1000 /* keys one account may hold, revoked ones included */

int lg_st_create_api_key(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__CreateApiKey *c = t->create_api_key;
	lg_api_key *k = calloc(1, sizeof(*k)), *mine = NULL;
	size_t n = 0, off = 0;
	int rc;

	if (!k)
		return CM_ERR_NOMEM;
	rc = lg_store_api_key_get(st->store, c->key_hash.data, k);
	if (rc == CM_OK) {
		rc = lg_st_fail(st, "create_api_key.key_hash: this key is registered already");
		goto out;
	}
	if (rc != CM_ERR_NOTFOUND)
		goto out;
	if (c->expiry_height && c->expiry_height < lg_st_height(st)) {
		rc = lg_st_fail(st, "create_api_key.expiry_height: %llu is below the current height %llu",
				(unsigned long long)c->expiry_height, (unsigned long long)lg_st_height(st));
		goto out;
	}
	if ((rc = lg_store_api_keys_of(st->store, t->sender.data, KEYS_OF_MAX, &mine, &n)) != CM_OK)
		goto out;
	free(mine);
	if (n >= KEYS_OF_MAX) {
		rc = lg_st_fail(st, "create_api_key: the account holds %d keys already (revoked ones count)",
				KEYS_OF_MAX);
		goto out;
	}
	memset(k, 0, sizeof(*k));
	memcpy(k->hash, c->key_hash.data, CM_HASH_BYTES);
	memcpy(k->account, t->sender.data, LG_KEY_BYTES);
	k->scope = (uint32_t)c->scope;
	k->expiry = c->expiry_height;
	for (size_t i = 0; i < c->n_collections; i++) /* lg_tx_check bounded the names and their count */
		off += (size_t)snprintf(k->collections + off, sizeof(k->collections) - off, "%s%s", i ? "\n" : "",
					c->collections[i]);
	snprintf(k->label, sizeof(k->label), "%s", c->label ? c->label : "");
	k->created_height = lg_st_height(st);
	if ((rc = lg_store_api_key_put(st->store, k)) != CM_OK)
		goto out;
	rc = lg_st_note(st, "API key %s created (%s)", lg_st_kh(k->hash).s,
			k->scope == MURI__V1__KEY_SCOPE__SCOPE_ADMIN	 ? "admin"
			: k->scope == MURI__V1__KEY_SCOPE__SCOPE_WRITE ? "read-write"
								       : "read-only");
out:
	free(k);
	return rc;
}

int lg_st_revoke_api_key(lg_state *st, const Muri__V1__Transaction *t)
{
	lg_api_key *k = calloc(1, sizeof(*k));
	int rc;

	if (!k)
		return CM_ERR_NOMEM;
	rc = lg_store_api_key_get(st->store, t->revoke_api_key->key_hash.data, k);
	if (rc == CM_ERR_NOTFOUND)
		rc = lg_st_fail(st, "revoke_api_key.key_hash: no such key");
	else if (rc == CM_OK && !lg_st_key_eq(k->account, t->sender.data))
		rc = lg_st_fail(st, "revoke_api_key.key_hash: the key belongs to another account");
	else if (rc == CM_OK && k->revoked_height)
		rc = lg_st_fail(st, "revoke_api_key.key_hash: revoked already at height %llu",
				(unsigned long long)k->revoked_height);
	else if (rc == CM_OK) {
		k->revoked_height = lg_st_height(st);
		if ((rc = lg_store_api_key_put(st->store, k)) == CM_OK)
			rc = lg_st_note(st, "API key %s revoked", lg_st_kh(k->hash).s);
	}
	free(k);
	return rc;
}

int lg_st_access_of(lg_state *st, const char *magu, lg_access *a)
{
	lg_magu m;
	int rc = lg_store_access_get(st->store, magu, a);
	if (rc != CM_ERR_NOTFOUND)
		return rc;
	if ((rc = lg_store_magu_get(st->store, magu, &m)) != CM_OK)
		return rc;
	memset(a, 0, sizeof(*a));
	snprintf(a->magu, sizeof(a->magu), "%s", magu);
	memcpy(a->owner, m.owner, LG_KEY_BYTES);
	a->changed_height = m.created_height;
	return CM_OK;
}

int lg_st_access_created(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__CreateMagu *c = t->create_magu;
	lg_access *a;
	int rc;
	if (!c->access_owner.len)
		return CM_OK; /* the creator owns it: no row needed */
	if (!(a = calloc(1, sizeof(*a))))
		return CM_ERR_NOMEM;
	snprintf(a->magu, sizeof(a->magu), "%s", c->name);
	memcpy(a->owner, c->access_owner.data, LG_KEY_BYTES);
	a->changed_height = lg_st_height(st);
	rc = lg_store_access_put(st->store, a);
	free(a);
	return rc;
}

int lg_st_access_dropped(lg_state *st, const char *magu)
{
	return lg_store_access_del(st->store, magu);
}

int lg_st_set_access(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__SetAccess *s = t->set_access;
	lg_access *a = calloc(1, sizeof(*a));
	int rc;

	if (!a)
		return CM_ERR_NOMEM;
	rc = lg_st_access_of(st, s->magu, a);
	if (rc == CM_ERR_NOTFOUND) {
		rc = lg_st_fail(st, "set_access.magu: no Magu \"%s\"", s->magu);
		goto out;
	}
	if (rc != CM_OK)
		goto out;
	if (!lg_st_key_eq(a->owner, t->sender.data)) {
		rc = lg_st_fail(st, "set_access: only the access owner of \"%s\" (%s) may change its access", s->magu,
				lg_st_kh(a->owner).s);
		goto out;
	}
	a->nreaders = (uint32_t)s->n_readers; /* lg_tx_check bounded both lists and their keys */
	for (size_t i = 0; i < s->n_readers; i++)
		memcpy(a->readers[i], s->readers[i].data, LG_KEY_BYTES);
	a->nwriters = (uint32_t)s->n_writers;
	for (size_t i = 0; i < s->n_writers; i++)
		memcpy(a->writers[i], s->writers[i].data, LG_KEY_BYTES);
	a->public_read = s->public_read;
	if (s->new_owner.len)
		memcpy(a->owner, s->new_owner.data, LG_KEY_BYTES);
	a->changed_height = lg_st_height(st);
	if ((rc = lg_store_access_put(st->store, a)) != CM_OK)
		goto out;
	rc = lg_st_note(st, "access of \"%s\": %u readers, %u writers, public read %s, owner %s", s->magu, a->nreaders,
			a->nwriters, a->public_read ? "on" : "off", lg_st_kh(a->owner).s);
out:
	free(a);
	return rc;
}
