/* Tests of the gateway's mirror of access control (gw_auth.c) fed with
 * hand-built final blocks: only committed transactions count; a key is
 * revoked by its own account only; a key limited to collections sees only
 * those; access owners, readers, writers and the public flag decide what a
 * caller may see; a drop forgets the lists; allowances come from Approves
 * to this gateway's key only, are spent and refunded; keys_max bounds the
 * mirror. */
#include "tap.h"
#include "cm_api_key.h"
#include "cm_err.h"
#include "gw_auth_int.h"

#include <stdlib.h>
#include <string.h>

#define MAXTX 8

static cm_keypair A, B, GW, OTHER_GW;

typedef struct blk {
	Muri__V1__Block b;
	Muri__V1__BlockHeader h;
	Muri__V1__BlockEffects e;
	Muri__V1__SignedTransaction st[MAXTX], *stp[MAXTX];
	Muri__V1__TxOutcome o[MAXTX], *op[MAXTX];
	size_t n;
} blk;

static void blk_init(blk *k, uint64_t height)
{
	memset(k, 0, sizeof(*k));
	muri__v1__block__init(&k->b);
	muri__v1__block_header__init(&k->h);
	muri__v1__block_effects__init(&k->e);
	k->h.height = height;
	k->b.header = &k->h;
	k->b.effects = &k->e;
}

/* Appends t sent by sender with the given outcome (1 committed, 0 failed). */
static void blk_add(blk *k, Muri__V1__Transaction *t, const cm_keypair *sender, int committed)
{
	size_t i = k->n++;
	t->sender = (ProtobufCBinaryData){CM_PK_BYTES, (uint8_t *)sender->pk};
	t->chain_id = "c";
	muri__v1__signed_transaction__init(&k->st[i]);
	k->st[i].body.len = muri__v1__transaction__get_packed_size(t);
	k->st[i].body.data = malloc(k->st[i].body.len);
	muri__v1__transaction__pack(t, k->st[i].body.data);
	k->stp[i] = &k->st[i];
	muri__v1__tx_outcome__init(&k->o[i]);
	k->o[i].index = (uint32_t)i;
	k->o[i].state = committed ? MURI__V1__TX_STATE__TX_COMMITTED : MURI__V1__TX_STATE__TX_FAILED;
	k->op[i] = &k->o[i];
	k->b.txs = k->stp;
	k->b.n_txs = k->n;
	k->e.outcomes = k->op;
	k->e.n_outcomes = k->n;
}

static void blk_free(blk *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->st[i].body.data);
}

static void add_key(blk *k, const cm_keypair *who, const char *key, int scope, const char *coll, int committed)
{
	static uint8_t h[MAXTX][CM_HASH_BYTES];
	static char *colls[1];
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__CreateApiKey c = MURI__V1__CREATE_API_KEY__INIT;
	cm_api_key_hash(key, strlen(key), h[k->n]);
	c.key_hash = (ProtobufCBinaryData){CM_HASH_BYTES, h[k->n]};
	c.scope = (Muri__V1__KeyScope)scope;
	colls[0] = (char *)coll;
	c.collections = coll ? colls : NULL;
	c.n_collections = coll ? 1 : 0;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY;
	t.create_api_key = &c;
	blk_add(k, &t, who, committed);
}

static void add_revoke(blk *k, const cm_keypair *who, const char *key)
{
	uint8_t h[CM_HASH_BYTES];
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__RevokeApiKey r = MURI__V1__REVOKE_API_KEY__INIT;
	cm_api_key_hash(key, strlen(key), h);
	r.key_hash = (ProtobufCBinaryData){CM_HASH_BYTES, h};
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REVOKE_API_KEY;
	t.revoke_api_key = &r;
	blk_add(k, &t, who, 1);
}

static void add_create(blk *k, const cm_keypair *who, const char *name, const cm_keypair *owner)
{
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__CreateMagu m = MURI__V1__CREATE_MAGU__INIT;
	m.name = (char *)name;
	if (owner)
		m.access_owner = (ProtobufCBinaryData){CM_PK_BYTES, (uint8_t *)owner->pk};
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU;
	t.create_magu = &m;
	blk_add(k, &t, who, 1);
}

static void add_access(blk *k, const cm_keypair *who, const char *name, const cm_keypair *reader, int pub)
{
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__SetAccess s = MURI__V1__SET_ACCESS__INIT;
	ProtobufCBinaryData r = {CM_PK_BYTES, reader ? (uint8_t *)reader->pk : NULL};
	s.magu = (char *)name;
	s.readers = reader ? &r : NULL;
	s.n_readers = reader ? 1 : 0;
	s.public_read = pub;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SET_ACCESS;
	t.set_access = &s;
	blk_add(k, &t, who, 1);
}

static void add_approve(blk *k, const cm_keypair *who, const cm_keypair *gw, uint64_t amount)
{
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__Approve a = MURI__V1__APPROVE__INIT;
	a.gateway = (ProtobufCBinaryData){CM_PK_BYTES, (uint8_t *)gw->pk};
	a.amount = amount;
	a.expiry_height = 1000;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_APPROVE;
	t.approve = &a;
	blk_add(k, &t, who, 1);
}

static gw_key *key_of(gw_auth *a, const char *key)
{
	uint8_t h[CM_HASH_BYTES];
	cm_api_key_hash(key, strlen(key), h);
	return gw_auth_key_find(a, h);
}

static gw_caller caller(const cm_keypair *who, const char *colls)
{
	gw_caller c;
	memset(&c, 0, sizeof(c));
	memcpy(c.account, who->pk, CM_PK_BYTES);
	c.scope = GW_NEED_ADMIN;
	snprintf(c.collections, sizeof(c.collections), "%s", colls ? colls : "");
	return c;
}

static void test_keys(void)
{
	gw_auth *a = NULL;
	gw_auth_opts o = {.enabled = 1, .window_ms = 1000, .nonce_cache = 16, .keys_max = 3, .node_pk = GW.pk};
	blk k;
	TAP_EQ(gw_auth_new(&o, &a), CM_OK);
	if (!a)
		return;
	blk_init(&k, 5);
	add_key(&k, &A, "ka", MURI__V1__KEY_SCOPE__SCOPE_READ, NULL, 1);
	add_key(&k, &A, "failed", MURI__V1__KEY_SCOPE__SCOPE_READ, NULL, 0);
	add_key(&k, &B, "kb", MURI__V1__KEY_SCOPE__SCOPE_WRITE, "docs", 1);
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	TAP_CHECK(key_of(a, "ka") != NULL);
	TAP_CHECK(key_of(a, "failed") == NULL); /* its CreateApiKey failed */
	TAP_CHECK(key_of(a, "kb") && !strcmp(key_of(a, "kb")->collections, "docs"));
	TAP_CHECK(key_of(a, "unknown") == NULL);

	/* only the key's account revokes it */
	blk_init(&k, 6);
	add_revoke(&k, &B, "ka");
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	TAP_EQ(key_of(a, "ka")->revoked, 0);
	blk_init(&k, 7);
	add_revoke(&k, &A, "ka");
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	TAP_EQ(key_of(a, "ka")->revoked, 7);

	/* keys_max = 3: the fourth is not mirrored */
	blk_init(&k, 8);
	add_key(&k, &A, "k3", MURI__V1__KEY_SCOPE__SCOPE_READ, NULL, 1);
	add_key(&k, &A, "k4", MURI__V1__KEY_SCOPE__SCOPE_READ, NULL, 1);
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	TAP_CHECK(key_of(a, "k3") != NULL);
	TAP_CHECK(key_of(a, "k4") == NULL);
	gw_auth_free(a);
}

static void test_access(void)
{
	gw_auth *a = NULL;
	gw_auth_opts o = {.enabled = 1, .anonymous_reads = 0, .window_ms = 1000, .nonce_cache = 16, .keys_max = 10};
	blk k;
	TAP_EQ(gw_auth_new(&o, &a), CM_OK);
	if (!a)
		return;
	blk_init(&k, 2);
	add_create(&k, &GW, "docs", &A);  /* a gateway creates it for A */
	add_create(&k, &B, "bees", NULL); /* B for itself */
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	gw_caller ca = caller(&A, NULL), cb = caller(&B, NULL), cg = caller(&GW, NULL), anon;
	memset(&anon, 0, sizeof(anon));
	anon.anonymous = 1;
	TAP_CHECK(gw_auth_visible(a, &ca, "docs"));
	TAP_CHECK(!gw_auth_visible(a, &cg, "docs")); /* the creator is not the access owner */
	TAP_CHECK(!gw_auth_visible(a, &cb, "docs"));
	TAP_CHECK(gw_auth_visible(a, &cb, "bees"));
	TAP_CHECK(!gw_auth_visible(a, &ca, "bees"));

	/* SetAccess by a stranger is a failed tx on chain; a committed one by the owner counts */
	blk_init(&k, 3);
	add_access(&k, &A, "docs", &B, 0);
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	TAP_CHECK(gw_auth_visible(a, &cb, "docs"));
	TAP_CHECK(!gw_auth_visible(a, &anon, "docs"));
	gw_caller limited = caller(&B, "other");
	TAP_CHECK(!gw_auth_visible(a, &limited, "docs")); /* the key names other collections */

	blk_init(&k, 4);
	add_access(&k, &B, "bees", NULL, 1);
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	TAP_CHECK(gw_auth_visible(a, &ca, "bees"));    /* public to every account */
	TAP_CHECK(!gw_auth_visible(a, &anon, "bees")); /* not to anonymous callers here */
	a->o.anonymous_reads = 1;
	TAP_CHECK(gw_auth_visible(a, &anon, "bees"));

	/* a drop forgets the lists; re-created, the new creator owns it */
	blk_init(&k, 5);
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__DropMagu d = MURI__V1__DROP_MAGU__INIT;
	d.name = "bees";
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU;
	t.drop_magu = &d;
	blk_add(&k, &t, &B, 1);
	add_create(&k, &A, "bees", NULL);
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	TAP_CHECK(!gw_auth_visible(a, &cb, "bees"));
	TAP_CHECK(gw_auth_visible(a, &ca, "bees"));
	gw_auth_free(a);
}

static void test_allowance(void)
{
	gw_auth *a = NULL;
	gw_auth_opts o = {.enabled = 1, .window_ms = 1000, .nonce_cache = 16, .keys_max = 10, .node_pk = GW.pk};
	blk k;
	uint64_t left = 99;
	TAP_EQ(gw_auth_new(&o, &a), CM_OK);
	if (!a)
		return;
	TAP_EQ(gw_auth_spend(a, A.pk, 1, &left), CM_ERR_RANGE);
	TAP_EQ(left, 0);
	blk_init(&k, 2);
	add_approve(&k, &A, &GW, 20);
	add_approve(&k, &B, &OTHER_GW, 20); /* to another gateway: not ours to spend */
	gw_auth_apply_block(a, &k.b);
	blk_free(&k);
	TAP_EQ(gw_auth_spend(a, A.pk, 7, &left), CM_OK);
	TAP_EQ(left, 13);
	TAP_EQ(gw_auth_spend(a, A.pk, 14, &left), CM_ERR_RANGE);
	TAP_EQ(left, 13);
	gw_auth_refund(a, A.pk, 7);
	TAP_EQ(gw_auth_spend(a, A.pk, 20, &left), CM_OK);
	TAP_EQ(left, 0);
	TAP_EQ(gw_auth_spend(a, B.pk, 1, &left), CM_ERR_RANGE);
	gw_auth_free(a);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	cm_keypair_generate(&A);
	cm_keypair_generate(&B);
	cm_keypair_generate(&GW);
	cm_keypair_generate(&OTHER_GW);
	TAP_RUN(test_keys);
	TAP_RUN(test_access);
	TAP_RUN(test_allowance);
	return tap_done();
}
