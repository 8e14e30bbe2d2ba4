/* Authentication and authorization of one call against the mirror
 * (gw_auth.c): the credential from the call's metadata (an API key, or an
 * account's signature over the method, the request's bytes, a timestamp
 * and a nonce, refused when stale or seen before), then the key's scope
 * and collections and the collection's access lists. Messages say what was
 * wrong and never include a key. */
#include "gw_auth_int.h"
#include "cm_api_key.h"
#include "cm_err.h"
#include "cm_time.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *need_name(enum gw_need n)
{
	return n == GW_NEED_ADMIN ? "admin" : n == GW_NEED_WRITE ? "write" : "read";
}

static const char *scope_name(int s)
{
	return s == GW_NEED_ADMIN ? "admin" : s == GW_NEED_WRITE ? "read-write" : "read-only";
}

/* ---- the credential ---- */

int gw_auth_key(gw_auth *a, const char *key, gw_caller *out, char *why, size_t whylen)
{
	uint8_t h[CM_HASH_BYTES];
	size_t len = strlen(key);
	memset(out, 0, sizeof(*out));
	if (len == 0 || len > CM_API_KEY_MAX) {
		snprintf(why, whylen, "API key: %s", len ? "too long" : "empty");
		return GRPC_STATUS_UNAUTHENTICATED;
	}
	cm_api_key_hash(key, len, h);
	pthread_mutex_lock(&a->mu);
	gw_key *k = gw_auth_key_find(a, h);
	int code = GRPC_STATUS_UNAUTHENTICATED;
	if (!k)
		snprintf(why, whylen, "API key: unknown to this gateway (never created, or its CreateApiKey has not "
			 "committed yet; the chain is at height %llu)", (unsigned long long)a->height);
	else if (k->revoked)
		snprintf(why, whylen, "API key: revoked at height %llu", (unsigned long long)k->revoked);
	else if (k->expiry && a->height > k->expiry)
		snprintf(why, whylen, "API key: expired at height %llu (the chain is at %llu)",
			 (unsigned long long)k->expiry, (unsigned long long)a->height);
	else
		code = GRPC_STATUS_OK;
	if (code == GRPC_STATUS_OK) {
		memcpy(out->account, k->account, CM_PK_BYTES);
		out->scope = k->scope;
		if (k->collections && strlen(k->collections) >= sizeof(out->collections))
			memcpy(out->collections, "\n", 2); /* too long to carry: matches no collection */
		else
			snprintf(out->collections, sizeof(out->collections), "%s", k->collections ? k->collections : "");
	}
	pthread_mutex_unlock(&a->mu);
	cm_wipe(h, sizeof(h));
	return code;
}

static int by_key(gw_auth *a, cm_rpc_call *call, const char *key, gw_caller *out)
{
	char why[256];
	int code = gw_auth_key(a, key, out, why, sizeof(why));
	return code == GRPC_STATUS_OK ? code : cm_rpc_fail(call, code, "%s", why);
}

static size_t slot_of(const gw_auth *a, const uint8_t *id)
{
	uint64_t x;
	memcpy(&x, id, sizeof(x));
	return (size_t)(x & (a->nonce_cap - 1));
}

static int zero_id(const uint8_t *id)
{
	static const uint8_t z[CM_HASH_BYTES];
	return memcmp(id, z, CM_HASH_BYTES) == 0;
}

/* Drops the expired entries by rebuilding the table. */
static void nonces_purge(gw_auth *a, uint64_t now)
{
	gw_nonce *old = a->nonces;
	gw_nonce *fresh = calloc(a->nonce_cap, sizeof(*fresh));
	if (!fresh)
		return;
	a->nonces = fresh;
	a->nnonces = 0;
	for (size_t i = 0; i < a->nonce_cap; i++) {
		if (zero_id(old[i].id) || old[i].expires_ms < now)
			continue;
		size_t s = slot_of(a, old[i].id);
		while (!zero_id(a->nonces[s].id))
			s = (s + 1) & (a->nonce_cap - 1);
		a->nonces[s] = old[i];
		a->nnonces++;
	}
	free(old);
}

/* CM_OK and remembered until expires; CM_ERR_EXISTS if seen; CM_ERR_TOOBIG when full. */
static int nonce_remember(gw_auth *a, const uint8_t id[CM_HASH_BYTES], uint64_t now, uint64_t expires)
{
	size_t s = slot_of(a, id);
	for (size_t n = 0; n < a->nonce_cap && !zero_id(a->nonces[s].id); n++) {
		if (memcmp(a->nonces[s].id, id, CM_HASH_BYTES) == 0 && a->nonces[s].expires_ms >= now)
			return CM_ERR_EXISTS;
		s = (s + 1) & (a->nonce_cap - 1);
	}
	if (a->nnonces >= a->o.nonce_cache) {
		nonces_purge(a, now);
		if (a->nnonces >= a->o.nonce_cache)
			return CM_ERR_TOOBIG;
	}
	s = slot_of(a, id);
	while (!zero_id(a->nonces[s].id))
		s = (s + 1) & (a->nonce_cap - 1);
	memcpy(a->nonces[s].id, id, CM_HASH_BYTES);
	a->nonces[s].expires_ms = expires;
	a->nnonces++;
	return CM_OK;
}

static int by_signature(gw_auth *a, cm_rpc_call *call, const char *chain_id, const char *acct, gw_caller *out)
{
	const char *ts_s = cm_rpc_metadata(call, "x-muri-timestamp");
	const char *nonce_s = cm_rpc_metadata(call, "x-muri-nonce");
	const char *sig_s = cm_rpc_metadata(call, "x-muri-signature");
	uint8_t pk[CM_PK_BYTES], sig[CM_SIG_BYTES], nonce[CM_CALL_NONCE_MAX], d[CM_HASH_BYTES], id[CM_HASH_BYTES];
	const uint8_t *body = NULL;
	size_t nlen, blen = 0;
	char *end;

	if (cm_unhex(pk, CM_PK_BYTES, acct) != CM_OK || strlen(acct) != 2 * CM_PK_BYTES)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED, "x-muri-account: not 64 hex characters");
	if (!ts_s || !nonce_s || !sig_s)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED, "signed call: x-muri-%s is missing",
				   !ts_s ? "timestamp" : !nonce_s ? "nonce" : "signature");
	unsigned long long ts = strtoull(ts_s, &end, 10);
	if (!isdigit((unsigned char)ts_s[0]) || *end)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED, "x-muri-timestamp: not milliseconds since 1970");
	nlen = strlen(nonce_s) / 2;
	if (nlen < 8 || nlen > CM_CALL_NONCE_MAX || strlen(nonce_s) % 2 || cm_unhex(nonce, nlen, nonce_s) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED, "x-muri-nonce: expected 8..%d bytes in hex",
				   CM_CALL_NONCE_MAX);
	if (strlen(sig_s) != 2 * CM_SIG_BYTES || cm_unhex(sig, CM_SIG_BYTES, sig_s) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED, "x-muri-signature: not 64 bytes in hex");
	uint64_t now = cm_wall_ms();
	if (ts + a->o.window_ms < now || ts > now + a->o.window_ms)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "signed call: stale timestamp %llu, %lld ms from the gateway's clock (the window is "
				   "%llu ms, auth_signed_window_ms)", ts, (long long)(ts - now),
				   (unsigned long long)a->o.window_ms);
	if (cm_rpc_request_bytes(call, &body, &blen) == CM_ERR_NOMEM)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	cm_call_digest(d, cm_rpc_method(call), chain_id, body ? body : (const uint8_t *)"", blen, ts, nonce, nlen);
	if (cm_verify(pk, sig, d, sizeof(d)) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "x-muri-signature: does not verify for the account over this method, request, "
				   "timestamp and nonce");
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_CALL);
	cm_hasher_update(&h, pk, sizeof(pk));
	cm_hasher_update(&h, nonce, nlen);
	cm_hasher_final(&h, id);
	pthread_mutex_lock(&a->mu);
	int rc = nonce_remember(a, id, now, ts + a->o.window_ms);
	pthread_mutex_unlock(&a->mu);
	if (rc == CM_ERR_EXISTS)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "signed call: replayed (this account used this nonce within the window)");
	if (rc != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "signed call: %zu signed calls within the window already (auth_nonce_cache); retry later",
				   a->o.nonce_cache);
	memcpy(out->account, pk, CM_PK_BYTES);
	out->scope = GW_NEED_ADMIN; /* the account itself */
	out->signed_call = 1;
	return GRPC_STATUS_OK;
}

int gw_auth_caller(gw_auth *a, cm_rpc_call *call, const char *chain_id, gw_caller *out)
{
	memset(out, 0, sizeof(*out));
	if (!gw_auth_enabled(a)) {
		out->open = 1;
		out->scope = GW_NEED_ADMIN;
		return GRPC_STATUS_OK;
	}
	const char *bearer = cm_rpc_metadata(call, "authorization");
	const char *key = cm_rpc_metadata(call, "api-key");
	const char *acct = cm_rpc_metadata(call, "x-muri-account");
	if (bearer || key) { /* the call's copies of the key are wiped once hashed */
		int code = bearer && strncasecmp(bearer, "Bearer ", 7) != 0
				   ? cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
						 "authorization: expected \"Bearer <API key>\"")
				   : by_key(a, call, bearer ? bearer + 7 : key, out);
		if (bearer)
			cm_wipe((char *)bearer, strlen(bearer));
		if (key)
			cm_wipe((char *)key, strlen(key));
		return code;
	}
	if (acct)
		return by_signature(a, call, chain_id ? chain_id : "", acct, out);
	out->anonymous = 1;
	return GRPC_STATUS_OK;
}

/* ---- permissions ---- */

static int listed(const uint8_t (*v)[CM_PK_BYTES], size_t n, const uint8_t *pk)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(v[i], pk, CM_PK_BYTES) == 0)
			return 1;
	return 0;
}

static int key_names(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && memcmp(p, name, n) == 0)
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* What the account holds on acl: 0 none, GW_NEED_READ, GW_NEED_WRITE, GW_NEED_ADMIN (owner). */
static int holds(const gw_acl *c, const uint8_t *pk)
{
	if (memcmp(c->owner, pk, CM_PK_BYTES) == 0)
		return GW_NEED_ADMIN;
	if (listed((const uint8_t(*)[CM_PK_BYTES])c->writers, c->nwriters, pk))
		return GW_NEED_WRITE;
	if (listed((const uint8_t(*)[CM_PK_BYTES])c->readers, c->nreaders, pk))
		return GW_NEED_READ;
	return 0;
}

int gw_auth_allow(gw_auth *a, cm_rpc_call *call, const gw_caller *c, const char *method, const char *collection,
		  enum gw_need need)
{
	char who[20];
	if (c->open)
		return GRPC_STATUS_OK;
	cm_hex(who, c->account, 8);
	if (c->anonymous) {
		if (need == GW_NEED_READ && collection && a->o.anonymous_reads) {
			pthread_mutex_lock(&a->mu);
			gw_acl *acl = gw_auth_acl_find(a, collection);
			int pub = acl && acl->public_read;
			pthread_mutex_unlock(&a->mu);
			if (pub)
				return GRPC_STATUS_OK;
		}
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "%s: no credential (send authorization: Bearer <API key>, api-key: <API key>, or a "
				   "signed call)%s", method,
				   a->o.anonymous_reads ? "; anonymous callers may only read public collections" : "");
	}
	if (c->scope < (int)need)
		return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED, "%s: the API key is %s; %s needs the %s scope",
				   method, scope_name(c->scope), method, need_name(need));
	if (!collection)
		return GRPC_STATUS_OK;
	if (c->collections[0] && !key_names(c->collections, collection))
		return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
				   "collection \"%s\": the API key is limited to other collections", collection);
	pthread_mutex_lock(&a->mu);
	gw_acl *acl = gw_auth_acl_find(a, collection);
	int held = acl ? holds(acl, c->account) : 0;
	int pub = acl && acl->public_read;
	pthread_mutex_unlock(&a->mu);
	/* no such collection: the handler answers NOT_FOUND (names are public on chain) */
	if (!acl || held >= (int)need || (need == GW_NEED_READ && pub))
		return GRPC_STATUS_OK;
	return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
			   "collection \"%s\": account %s has no %s permission (%s; %s)", collection, who,
			   need_name(need),
			   held == GW_NEED_WRITE ? "it is a writer" : held == GW_NEED_READ ? "it is a reader"
										: "it is not on the access lists",
			   need == GW_NEED_ADMIN ? "only the owner may" : "the owner grants it with SetAccess");
}

int gw_auth_visible(gw_auth *a, const gw_caller *c, const char *collection)
{
	if (c->open)
		return 1;
	pthread_mutex_lock(&a->mu);
	gw_acl *acl = gw_auth_acl_find(a, collection);
	int ok = acl && ((acl->public_read && (!c->anonymous || a->o.anonymous_reads)) ||
			 (!c->anonymous && holds(acl, c->account)));
	pthread_mutex_unlock(&a->mu);
	if (ok && !c->anonymous && c->collections[0] && !key_names(c->collections, collection))
		ok = 0;
	return ok;
}

int gw_auth_spend(gw_auth *a, const uint8_t searcher[CM_PK_BYTES], uint64_t fee, uint64_t *left)
{
	pthread_mutex_lock(&a->mu);
	gw_allow *w = gw_auth_allow_find(a, searcher, 0);
	uint64_t l = 0;
	if (w && (w->expiry == 0 || w->expiry >= a->height) && w->amount > w->spent)
		l = w->amount - w->spent;
	int rc = CM_ERR_RANGE;
	if (l >= fee) {
		w->spent += fee;
		rc = CM_OK;
		l -= fee;
	}
	pthread_mutex_unlock(&a->mu);
	*left = l;
	return rc;
}

void gw_auth_refund(gw_auth *a, const uint8_t searcher[CM_PK_BYTES], uint64_t fee)
{
	pthread_mutex_lock(&a->mu);
	gw_allow *w = gw_auth_allow_find(a, searcher, 0);
	if (w)
		w->spent = w->spent > fee ? w->spent - fee : 0;
	pthread_mutex_unlock(&a->mu);
}

/* ---- the handlers' entry points (gw.h) ---- */

#include "gw.h"

int gw_authenticate(gw_ctx *g, cm_rpc_call *call, const char *method, const char *collection, enum gw_need need,
		    gw_caller *who)
{
	if (!method) {
		const char *full = cm_rpc_method(call), *slash = strrchr(full, '/');
		method = slash ? slash + 1 : full;
	}
	int code = gw_auth_caller(g->auth, call, g->chain ? gw_chain_id(g->chain) : "", who);
	if (code != GRPC_STATUS_OK)
		return code;
	return gw_auth_allow(g->auth, call, who, method, collection, need);
}

int gw_authorize_ask(gw_ctx *g, cm_rpc_call *call, const char *collection, enum gw_need need,
		     const gw_quota_ask *ask, const char *qfield, gw_caller *who)
{
	int code = gw_authenticate(g, call, NULL, collection, need, who);
	if (code != GRPC_STATUS_OK)
		return code;
	gw_quota_ask none = {0};
	return gw_admit(g, call, who, ask ? ask : &none, qfield);
}

int gw_authorize(gw_ctx *g, cm_rpc_call *call, const char *method, const char *collection, enum gw_need need,
		 gw_caller *who)
{
	int code = gw_authenticate(g, call, method, collection, need, who);
	if (code != GRPC_STATUS_OK)
		return code;
	gw_quota_ask none = {0};
	return gw_admit(g, call, who, &none, NULL);
}

int gw_charge(gw_ctx *g, cm_rpc_call *call, const gw_caller *who, size_t queries)
{
	uint64_t fee = gw_receipts_fee(g->receipts), left = 0;
	if (who->open || who->anonymous || !g->receipts || !fee)
		return GRPC_STATUS_OK; /* the payer pays, as with auth off */
	uint64_t total = queries && fee > UINT64_MAX / queries ? UINT64_MAX : fee * queries;
	if (gw_auth_spend(g->auth, who->account, total, &left) == CM_OK)
		return GRPC_STATUS_OK;
	char who_hex[20], gw_hex_s[20];
	cm_hex(who_hex, who->account, 8);
	cm_hex(gw_hex_s, g->node_pk, 8);
	return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
			   "account %s has %llu left of its allowance to this gateway (%s...), this search costs %llu: "
			   "approve more (an Approve to the gateway's node key)",
			   who_hex, (unsigned long long)left, gw_hex_s, (unsigned long long)total);
}

void gw_uncharge(gw_ctx *g, const gw_caller *who, size_t queries)
{
	uint64_t fee = gw_receipts_fee(g->receipts);
	if (who->open || who->anonymous || !g->receipts || !fee)
		return;
	gw_auth_refund(g->auth, who->account, queries && fee > UINT64_MAX / queries ? UINT64_MAX : fee * queries);
}
