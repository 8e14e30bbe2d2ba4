/* Tests of access control in the state machine (lg_st_access.c): API keys
 * are registered by hash for the sending account and revoked only by it,
 * once; a hash cannot be registered twice; SetAccess is the access owner's
 * alone (the creator, or CreateMagu.access_owner) and can hand ownership
 * on; dropping a Magu drops its lists; the queries read what committed;
 * the stateless checks name the field. */
#include "st_chain.h"
#include "cm_api_key.h"
#include "lg_query.h"

#define OWNER (K_ACC0 + 1)
#define OTHER (K_ACC0 + 2)
#define GWK (K_ACC0 + 3)

static void add_key(tchain *c, tblock *b, int k, const char *key, int scope, uint64_t expiry, const char *coll,
		    uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__CreateApiKey a = MURI__V1__CREATE_API_KEY__INIT;
	uint8_t h[CM_HASH_BYTES];
	char *colls[1] = {(char *)coll};
	cm_api_key_hash(key, strlen(key), h);
	tx_base(&t, k, nonce_of(c, b, k), 1);
	a.key_hash.data = h;
	a.key_hash.len = sizeof(h);
	a.scope = (Muri__V1__KeyScope)scope;
	a.expiry_height = expiry;
	a.collections = coll ? colls : NULL;
	a.n_collections = coll ? 1 : 0;
	a.label = "test";
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY;
	t.create_api_key = &a;
	tb_add(b, &t, k, hash);
}

static void add_revoke(tchain *c, tblock *b, int k, const char *key, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__RevokeApiKey r = MURI__V1__REVOKE_API_KEY__INIT;
	uint8_t h[CM_HASH_BYTES];
	cm_api_key_hash(key, strlen(key), h);
	tx_base(&t, k, nonce_of(c, b, k), 1);
	r.key_hash.data = h;
	r.key_hash.len = sizeof(h);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REVOKE_API_KEY;
	t.revoke_api_key = &r;
	tb_add(b, &t, k, hash);
}

static void add_access(tchain *c, tblock *b, int k, const char *magu, int reader, int writer, int pub, int new_owner,
		       uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__SetAccess s = MURI__V1__SET_ACCESS__INIT;
	ProtobufCBinaryData rd = {CM_PK_BYTES, K[reader >= 0 ? reader : 0].pk};
	ProtobufCBinaryData wr = {CM_PK_BYTES, K[writer >= 0 ? writer : 0].pk};
	tx_base(&t, k, nonce_of(c, b, k), 1);
	s.magu = (char *)magu;
	s.readers = reader >= 0 ? &rd : NULL;
	s.n_readers = reader >= 0;
	s.writers = writer >= 0 ? &wr : NULL;
	s.n_writers = writer >= 0;
	s.public_read = pub;
	if (new_owner >= 0) {
		s.new_owner.data = K[new_owner].pk;
		s.new_owner.len = CM_PK_BYTES;
	}
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SET_ACCESS;
	t.set_access = &s;
	tb_add(b, &t, k, hash);
}

static int open_access_chain(tchain *c, const char *name)
{
	tblock b = {0};
	gtext g;
	if (open_indexers(c, name, 3, NULL, &g, NULL) != CM_OK)
		return -1;
	add_transfer(c, &b, K_ACC0, OWNER, 10000, 1, NULL);
	add_transfer(c, &b, K_ACC0, OTHER, 10000, 1, NULL);
	add_transfer(c, &b, K_ACC0, GWK, 10000, 1, NULL);
	TAP_EQ(commit(c, &b), CM_OK);
	return 0;
}

static void test_keys(void)
{
	tchain c;
	tblock b = {0};
	uint8_t h[8][32], kh[32];
	lg_api_key k;

	if (open_access_chain(&c, "keys") != 0)
		return;
	add_key(&c, &b, OWNER, "muri_key_one", MURI__V1__KEY_SCOPE__SCOPE_READ, 0, "docs", h[0]);
	add_key(&c, &b, OTHER, "muri_key_one", MURI__V1__KEY_SCOPE__SCOPE_ADMIN, 0, NULL, h[1]);
	add_key(&c, &b, OWNER, "muri_key_two", MURI__V1__KEY_SCOPE__SCOPE_ADMIN, 1, NULL, h[2]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "create_api_key.key_hash: this key is registered already");
	TAP_FAILED(&c, h[2], "create_api_key.expiry_height: 1 is below the current height");

	cm_api_key_hash("muri_key_one", 12, kh);
	TAP_EQ(lg_store_api_key_get(c.s, kh, &k), CM_OK);
	TAP_CHECK(memcmp(k.account, K[OWNER].pk, CM_PK_BYTES) == 0);
	TAP_EQ(k.scope, MURI__V1__KEY_SCOPE__SCOPE_READ);
	TAP_STREQ(k.collections, "docs");
	TAP_EQ(k.revoked_height, 0);

	/* only the key's account revokes it, once; an unknown key is named so */
	add_revoke(&c, &b, OTHER, "muri_key_one", h[3]);
	add_revoke(&c, &b, OWNER, "muri_key_unknown", h[4]);
	add_revoke(&c, &b, OWNER, "muri_key_one", h[5]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[3], "revoke_api_key.key_hash: the key belongs to another account");
	TAP_FAILED(&c, h[4], "revoke_api_key.key_hash: no such key");
	TAP_COMMITTED(&c, h[5]);
	TAP_EQ(lg_store_api_key_get(c.s, kh, &k), CM_OK);
	TAP_EQ(k.revoked_height, lg_state_height(c.st));
	add_revoke(&c, &b, OWNER, "muri_key_one", h[6]);
	/* a revoked hash stays taken */
	add_key(&c, &b, OWNER, "muri_key_one", MURI__V1__KEY_SCOPE__SCOPE_READ, 0, NULL, h[7]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[6], "revoked already at height");
	TAP_FAILED(&c, h[7], "registered already");

	/* the query lists the account's keys with the revocation */
	Muri__V1__ApiKeysResponse *r = NULL;
	TAP_EQ(lg_query_api_keys(c.s, K[OWNER].pk, &r), CM_OK);
	if (r) {
		TAP_EQ(r->n_keys, 1);
		TAP_CHECK(r->at && r->at->height == lg_state_height(c.st));
		if (r->n_keys == 1) {
			TAP_CHECK(r->keys[0]->revoked_height > 0);
			TAP_EQ(r->keys[0]->n_collections, 1);
			TAP_STREQ(r->keys[0]->collections[0], "docs");
		}
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	chain_close(&c);
}

static void test_access(void)
{
	tchain c;
	tblock b = {0};
	uint8_t h[8][32];
	lg_access *a = calloc(1, sizeof(*a));

	if (!a || open_access_chain(&c, "access") != 0) {
		free(a);
		return;
	}
	/* GWK creates "mine" for OWNER (access_owner); OWNER creates "own" itself */
	{
		Muri__V1__Transaction t;
		Muri__V1__CreateMagu m = MURI__V1__CREATE_MAGU__INIT;
		tx_base(&t, GWK, nonce_of(&c, &b, GWK), 1);
		m.name = "mine";
		m.dimension = 4;
		m.metric = MURI__V1__METRIC__L2;
		m.fragments = 1;
		m.replication = 1;
		m.deposit = 100;
		m.access_owner.data = K[OWNER].pk;
		m.access_owner.len = CM_PK_BYTES;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU;
		t.create_magu = &m;
		tb_add(&b, &t, GWK, h[0]);
	}
	add_create(&c, &b, OWNER, "own", 1, 1, 100, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_COMMITTED(&c, h[1]);

	/* the creator of "mine" is not its access owner; a stranger neither */
	add_access(&c, &b, GWK, "mine", OTHER, -1, 0, -1, h[2]);
	add_access(&c, &b, OTHER, "own", OTHER, OTHER, 1, -1, h[3]);
	add_access(&c, &b, OWNER, "mine", OTHER, -1, 1, -1, h[4]);
	add_access(&c, &b, OWNER, "nothere", -1, -1, 0, -1, h[5]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[2], "set_access: only the access owner of \"mine\"");
	TAP_FAILED(&c, h[3], "set_access: only the access owner of \"own\"");
	TAP_COMMITTED(&c, h[4]);
	TAP_FAILED(&c, h[5], "set_access.magu: no Magu \"nothere\"");
	TAP_EQ(lg_store_access_get(c.s, "mine", a), CM_OK);
	TAP_CHECK(memcmp(a->owner, K[OWNER].pk, CM_PK_BYTES) == 0);
	TAP_EQ(a->nreaders, 1);
	TAP_EQ(a->nwriters, 0);
	TAP_EQ(a->public_read, 1);

	/* hand-over of ownership: the old owner loses it */
	add_access(&c, &b, OWNER, "own", -1, -1, 0, OTHER, h[6]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[6]);
	add_access(&c, &b, OWNER, "own", -1, -1, 1, -1, h[7]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[7], "only the access owner");

	Muri__V1__AccessInfo *ai = NULL;
	TAP_EQ(lg_query_access(c.s, "own", &ai), CM_OK);
	if (ai) {
		TAP_CHECK(ai->owner.len == CM_PK_BYTES && memcmp(ai->owner.data, K[OTHER].pk, CM_PK_BYTES) == 0);
		TAP_EQ(ai->public_read, 0);
		protobuf_c_message_free_unpacked(&ai->base, NULL);
	}
	TAP_EQ(lg_query_access(c.s, "nothere", &ai), CM_ERR_NOTFOUND);

	/* dropping "mine" (by its creator, who holds the deposit) drops its lists */
	{
		Muri__V1__Transaction t;
		Muri__V1__DropMagu d = MURI__V1__DROP_MAGU__INIT;
		tx_base(&t, GWK, nonce_of(&c, &b, GWK), 1);
		d.name = "mine";
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU;
		t.drop_magu = &d;
		tb_add(&b, &t, GWK, h[0]);
	}
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_EQ(lg_store_access_get(c.s, "mine", a), CM_ERR_NOTFOUND);
	free(a);
	chain_close(&c);
}

static void test_checks(void)
{
	Muri__V1__Transaction t;
	Muri__V1__CreateApiKey k = MURI__V1__CREATE_API_KEY__INIT;
	Muri__V1__SetAccess s = MURI__V1__SET_ACCESS__INIT;
	uint8_t h[32] = {1};
	char err[200] = "";
	tx_base(&t, OWNER, 0, 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY;
	t.create_api_key = &k;
	k.key_hash.data = h;
	k.key_hash.len = 31;
	k.scope = MURI__V1__KEY_SCOPE__SCOPE_READ;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_api_key.key_hash: 31 bytes, expected 32");
	k.key_hash.len = 32;
	k.scope = MURI__V1__KEY_SCOPE__SCOPE_UNSPECIFIED;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_api_key.scope: 0 is not READ, WRITE or ADMIN");
	k.scope = MURI__V1__KEY_SCOPE__SCOPE_WRITE;
	char *bad[] = {"ok", "no/slash"};
	k.collections = bad;
	k.n_collections = 2;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_api_key.collections[1]: not a valid Magu name");
	k.n_collections = 1;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);

	/* a bad signature never reaches the state machine */
	Muri__V1__SignedTransaction stx;
	lg_tx out;
	t.chain_id = CHAIN;
	TAP_EQ(lg_tx_sign(&t, &K[OWNER], &stx, NULL), CM_OK);
	stx.signature.data[0] ^= 1;
	TAP_EQ(lg_tx_open(&stx, CHAIN, 0, &out, err, sizeof(err)), CM_ERR_VERIFY);
	TAP_STREQ(err, "signature: does not verify for the sender");
	lg_tx_signed_clear(&stx);

	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SET_ACCESS;
	t.set_access = &s;
	s.magu = "m";
	ProtobufCBinaryData w = {31, h};
	s.writers = &w;
	s.n_writers = 1;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "set_access.writers[0]: 31 bytes, expected 32");
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	TAP_RUN(test_keys);
	TAP_RUN(test_access);
	TAP_RUN(test_checks);
	return st_finish();
}
