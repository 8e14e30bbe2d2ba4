/* Tests of the ledger's state machine and store (lg_tx, lg_genesis,
 * lg_store, lg_state): transactions and their rejections, staking, Magu
 * membership and placement, failover, fragment roots, challenges,
 * governance, determinism across stores, crash atomicity of a
 * block commit, and the apply rate (printed, never asserted). */
#include "st_chain.h"

#include <signal.h>
#include <sys/wait.h>

/* ---- genesis ---- */

static void expect_genesis_error(const char *text, int code, const char *want)
{
	lg_genesis *g = NULL;
	char err[256] = "";
	TAP_EQ(lg_genesis_parse(text, strlen(text), &g, err, sizeof(err)), code);
	TAP_CHECK(g == NULL);
	if (!strstr(err, want)) {
		printf("# genesis error \"%s\" lacks \"%s\"\n", err, want);
		TAP_CHECK(0);
	}
}

static void test_genesis(void)
{
	gtext g;
	char h[65], h2[65], line[512], *canon = NULL, *canon2 = NULL;
	lg_genesis *gen, *gen2 = NULL;
	uint8_t d1[32], d2[32];

	g_base(&g);
	g_indexer(&g, 1, 5000);
	g_account(&g, K_ACC0, 42);
	g_param(&g, "slash_amount", 7);
	gen = parse_gen(&g);
	TAP_CHECK(gen != NULL);
	if (!gen)
		return;
	TAP_STREQ(gen->chain_id, CHAIN);
	TAP_EQ(gen->genesis_time_ms, 1700000000000ll);
	TAP_EQ(gen->nreplicas, 1);
	TAP_EQ(gen->naccounts, 3);
	TAP_EQ(gen->nindexers, 1);
	TAP_EQ(gen->indexers[0].stake, 5000);
	TAP_EQ(gen->ngateways, 1);
	TAP_EQ(gen->nparams, 1);
	TAP_EQ(gen->params[0].value, 7);
	/* the canonical form parses back to the same genesis */
	TAP_EQ(lg_genesis_format(gen, &canon), CM_OK);
	TAP_EQ(lg_genesis_parse(canon, strlen(canon), &gen2, line, sizeof(line)), CM_OK);
	TAP_EQ(lg_genesis_format(gen2, &canon2), CM_OK);
	TAP_STREQ(canon, canon2);
	TAP_EQ(lg_genesis_digest(gen, d1), CM_OK);
	TAP_EQ(lg_genesis_digest(gen2, d2), CM_OK);
	TAP_CHECK(memcmp(d1, d2, 32) == 0);
	free(canon);
	free(canon2);
	lg_genesis_free(gen);
	lg_genesis_free(gen2);

	hexkey(1, h);
	hexkey(2, h2);
	snprintf(line, sizeof(line), "chain_id = c\nreplica = %s 1.2.3.4:5\naccount = %s 1\n\naccount = %s 2\n", h, h2, h2);
	expect_genesis_error(line, CM_ERR_INVALID, "line 5: account listed twice (first on line 3)");
	snprintf(line, sizeof(line), "chain_id = c\nreplica = %s 1.2.3.4:5\nbalance = %s 1\n", h, h2);
	expect_genesis_error(line, CM_ERR_INVALID, "line 3: unknown key \"balance\"");
	snprintf(line, sizeof(line), "chain_id = c\nreplica = %s 1.2.3.4:5\naccount = %.63s 1\n", h, h2);
	expect_genesis_error(line, CM_ERR_INVALID, "line 3: account needs a public key");
	snprintf(line, sizeof(line), "replica = %s 1.2.3.4:5\n", h);
	expect_genesis_error(line, CM_ERR_INVALID, "chain_id is missing");
	expect_genesis_error("chain_id = c\n", CM_ERR_INVALID, "no replica");
	snprintf(line, sizeof(line), "chain_id = c\nreplica = %s 1.2.3.4:5\nparam.challenge_leaves = 65\n", h);
	expect_genesis_error(line, CM_ERR_INVALID, "line 3: param.challenge_leaves = 65 is out of range 1..64");
	snprintf(line, sizeof(line), "chain_id = c\nreplica = %s 1.2.3.4:5\nparam.nope = 1\n", h);
	expect_genesis_error(line, CM_ERR_INVALID, "line 3: unknown parameter \"nope\"");
	snprintf(line, sizeof(line), "chain_id = c\nreplica = %s nohostport\n", h);
	expect_genesis_error(line, CM_ERR_INVALID, "line 2: replica = <hex pubkey> <host:port>");
	snprintf(line, sizeof(line), "chain_id = c\nreplica = %s 1.2.3.4:5\naccount = %s 9223372036854775807\naccount = %s 1\n",
		 h, h, h2);
	expect_genesis_error(line, CM_ERR_INVALID, "total supply exceeds");
	snprintf(line, sizeof(line), "chain_id = c\nreplica = %s 1.2.3.4:5\naccount = %s 18446744073709551616\n", h, h);
	expect_genesis_error(line, CM_ERR_INVALID, "line 3: account = <hex pubkey> <balance>");
	expect_genesis_error("chain_id = bad id\n", CM_ERR_INVALID, "line 1: chain_id must be");
	expect_genesis_error("chain_id = c\nchain_id = d\n", CM_ERR_INVALID, "line 2: chain_id given twice");
	expect_genesis_error("chain_id c\n", CM_ERR_INVALID, "line 1: expected key = value");
}

/* ---- transactions: decoding and stateless checks ---- */

static void test_tx_open(void)
{
	Muri__V1__Transaction t;
	Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
	Muri__V1__SignedTransaction stx;
	lg_tx tx = {0};
	uint8_t hash[32];
	char err[LG_MSG_MAX];

	tx_base(&t, 1, 0, 1);
	tr.to.data = K[2].pk;
	tr.to.len = 32;
	tr.amount = 5;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	TAP_EQ(lg_tx_sign(&t, &K[1], &stx, hash), CM_OK);
	TAP_EQ(lg_tx_open(&stx, CHAIN, 0, &tx, err, sizeof(err)), CM_OK);
	TAP_CHECK(memcmp(tx.hash, hash, 32) == 0);
	TAP_EQ(tx.body->transfer->amount, 5);
	lg_tx_close(&tx);
	lg_tx_close(&tx); /* twice is fine */
	/* the signing key must be the sender */
	Muri__V1__SignedTransaction other;
	TAP_EQ(lg_tx_sign(&t, &K[2], &other, NULL), CM_ERR_INVALID);

	TAP_EQ(lg_tx_open(&stx, "other-chain", 0, &tx, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "chain_id: \"" CHAIN "\" is not this chain (\"other-chain\")");
	stx.signature.data[3] ^= 1;
	TAP_EQ(lg_tx_open(&stx, CHAIN, 0, &tx, err, sizeof(err)), CM_ERR_VERIFY);
	TAP_STREQ(err, "signature: does not verify for the sender");
	/* ... unless the mempool verified it already */
	TAP_EQ(lg_tx_open(&stx, CHAIN, LG_TX_SKIP_SIG, &tx, err, sizeof(err)), CM_OK);
	lg_tx_close(&tx);
	stx.signature.len = 63;
	TAP_EQ(lg_tx_open(&stx, CHAIN, 0, &tx, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "signature: 63 bytes, expected 64");
	stx.signature.len = 64;
	stx.body.data[0] ^= 0xff;
	TAP_EQ(lg_tx_open(&stx, CHAIN, 0, &tx, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "body: not a valid Transaction encoding");
	size_t real = stx.body.len;
	stx.body.len = LG_TX_MAX_BYTES + 1;
	TAP_EQ(lg_tx_open(&stx, CHAIN, 0, &tx, err, sizeof(err)), CM_ERR_TOOBIG);
	TAP_STREQ(err, "body: 1048577 bytes, at most 1048576");
	stx.body.len = real;
	lg_tx_signed_clear(&stx);
	TAP_CHECK(stx.body.data == NULL);

	/* stateless checks name the field */
	Muri__V1__CreateMagu m = MURI__V1__CREATE_MAGU__INIT;
	Muri__V1__IndexSpec ix = MURI__V1__INDEX_SPEC__INIT;
	tx_base(&t, 1, 0, 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU;
	t.create_magu = &m;
	m.name = (char *)"docs";
	m.dimension = 5000;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.dimension: 5000 is out of range 1..4096");
	m.dimension = 4096;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);
	m.name = (char *)"bad name";
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.name: must be 1..128 bytes of [A-Za-z0-9_.-]");
	char longname[130];
	memset(longname, 'a', 129);
	longname[129] = 0;
	m.name = longname;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	longname[128] = 0;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);
	m.name = (char *)"docs-1.v2_x";
	m.replication = 17;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.replication: 17 is out of range 1..16 (0 = default)");
	m.replication = 3;
	m.fragments = 1025;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.fragments: 1025 is out of range 1..1024 (0 = default)");
	m.fragments = 8;
	m.metric = 9;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.metric: unknown value 9");
	m.metric = MURI__V1__METRIC__COSINE;
	m.index = &ix;
	ix.hnsw_m = 2;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.hnsw_m: 2 is out of range 4..128 (0 = default)");

	Muri__V1__RegisterIndexer r = MURI__V1__REGISTER_INDEXER__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REGISTER_INDEXER;
	t.register_indexer = &r;
	r.address = (char *)"host:99999";
	r.capacity_bytes = 1;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strncmp(err, "register_indexer.address:", 25) == 0);
	r.address = (char *)"host:9999";
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);

	Muri__V1__Propose p = MURI__V1__PROPOSE__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_PROPOSE;
	t.propose = &p;
	p.param = (char *)"allow_noop";
	p.value = 1;
	p.apply_height = 10;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "propose.param: allow_noop is fixed at genesis");
	p.param = (char *)"challenge_leaves";
	p.value = 0;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "propose.value: 0 is out of range 1..64 for challenge_leaves");

	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD__NOT_SET;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "payload: missing or unknown");
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	t.sender.len = 31;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "sender: 31 bytes, expected 32");
}

/* ---- transfers and every rejection ---- */

static void test_transfers(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[12][32];
	int a = K_ACC0, bb = K_ACC0 + 1, nobody = K_ACC0 + 40;

	g_base(&g);
	g_account(&g, a, 1000);
	g_account(&g, bb, 50);
	g_param(&g, "min_fee", 2);
	if (chain_open(&c, "transfers", &g) != CM_OK)
		return;
	TAP_EQ(lg_state_height(c.st), 0);

	add_transfer(&c, &b, a, bb, 100, 2, h[0]);
	add_transfer(&c, &b, a, bb, 200, 3, h[1]);
	add_transfer(&c, &b, bb, K_ACC0 + 2, 30, 2, h[2]); /* a new account */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_COMMITTED(&c, h[1]);
	TAP_COMMITTED(&c, h[2]);
	TAP_EQ(balance(&c, a), 1000 - 100 - 2 - 200 - 3);
	TAP_EQ(balance(&c, bb), 50 + 300 - 30 - 2);
	TAP_EQ(balance(&c, K_ACC0 + 2), 30);
	TAP_EQ(account(&c, a).nonce, 2);
	TAP_EQ(account(&c, bb).nonce, 1);
	TAP_EQ(balance(&c, K_PROPOSER), 7); /* fees go to the proposer */
	TAP_EQ(lg_state_height(c.st), 1);

	uint8_t before[32], after[32];
	digest(&c, before);
	/* rejections that change nothing */
	Muri__V1__Transaction t;
	Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
	tr.to.data = K[bb].pk;
	tr.to.len = 32;
	tr.amount = 1;
	tx_base(&t, a, 0, 2); /* reused nonce */
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	tb_add(&b, &t, a, h[3]);
	tx_base(&t, a, 9, 2); /* future nonce */
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	tb_add(&b, &t, a, h[4]);
	tx_base(&t, a, 2, 1); /* fee below min_fee */
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	tb_add(&b, &t, a, h[5]);
	tx_base(&t, nobody, 0, 2); /* unknown sender */
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	tb_add(&b, &t, nobody, h[6]);
	tx_base(&t, K_ACC0 + 2, 0, 31); /* balance 30 cannot pay fee 31 */
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	tb_add(&b, &t, K_ACC0 + 2, h[7]);
	add_transfer(&c, &b, a, bb, 1, 2, h[8]); /* wrong signature */
	b.tx[b.n - 1]->signature.data[0] ^= 1;
	add_transfer(&c, &b, a, bb, 1, 2, h[9]); /* malformed body */
	b.tx[b.n - 1]->body.data[0] ^= 0xff;
	lg_tx_hash(b.tx[b.n - 1]->body.data, b.tx[b.n - 1]->body.len, h[9]);
	t.chain_id = (char *)"other-chain"; /* another chain */
	tx_base(&t, a, 2, 2);
	t.chain_id = (char *)"other-chain";
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	tb_add(&b, &t, a, h[10]);
	Muri__V1__Noop noop = MURI__V1__NOOP__INIT;
	tx_base(&t, a, 2, 2); /* noop while allow_noop = 0 */
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_NOOP;
	t.noop = &noop;
	tb_add(&b, &t, a, h[11]);
	c.proposer = -1;
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[3], "nonce: 0 was used already (next is 2)");
	TAP_FAILED(&c, h[4], "nonce: 9 is ahead of the next nonce 2");
	TAP_FAILED(&c, h[5], "fee: 1 is below min_fee 2");
	TAP_FAILED(&c, h[6], "sender: unknown account");
	TAP_FAILED(&c, h[7], "fee: insufficient balance 30 for the fee 31");
	TAP_FAILED(&c, h[8], "signature: does not verify");
	TAP_FAILED(&c, h[9], "body: not a valid Transaction encoding");
	TAP_FAILED(&c, h[10], "chain_id: \"other-chain\" is not this chain");
	TAP_FAILED(&c, h[11], "noop: not enabled on this chain");
	TAP_EQ(balance(&c, a), 695);
	TAP_EQ(account(&c, a).nonce, 2);
	/* none of them moved a coin or a nonce */
	TAP_EQ(balance(&c, bb), 318);
	TAP_EQ(account(&c, bb).nonce, 1);
	TAP_EQ(balance(&c, K_ACC0 + 2), 30);
	TAP_EQ(account(&c, K_ACC0 + 2).nonce, 0);
	TAP_EQ(balance(&c, K_PROPOSER), 7);
	digest(&c, after);
	TAP_CHECK(memcmp(before, after, 32) != 0); /* the tx index did change */

	/* insufficient balance: the fee is charged, the nonce consumed, nothing else */
	add_transfer(&c, &b, bb, a, 1000, 2, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "transfer.amount: insufficient balance: 316 available after the fee, 1000 asked");
	TAP_EQ(balance(&c, bb), 316);
	TAP_EQ(account(&c, bb).nonce, 2);
	TAP_EQ(balance(&c, a), 695);
	TAP_EQ(balance(&c, K_PROPOSER), 7); /* proposer -1: the fee was burned */

	/* a committed tx replayed in a later block fails and stays committed in
	 * the index (ed25519 is deterministic: signing again gives the same bytes) */
	add_transfer(&c, &b, a, bb, 5, 2, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	tx_base(&t, a, 2, 2);
	tr.amount = 5;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	uint8_t again[32];
	tb_add(&b, &t, a, again);
	TAP_CHECK(memcmp(again, h[1], 32) == 0);
	uint64_t bal = balance(&c, a);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(balance(&c, a), bal);
	lg_txrec rr;
	TAP_EQ(lg_store_tx_get(c.s, h[1], &rr), CM_OK);
	TAP_EQ(rr.height, 4);

	/* the block, the tx status and the params as the service will read them */
	lg_block_rec rec;
	TAP_EQ(lg_store_get_block(c.s, 1, &rec), CM_OK);
	TAP_EQ(rec.ntxs, 3);
	TAP_EQ(rec.qc_len, 2);
	TAP_CHECK(memcmp(rec.payload, "payload", 7) == 0);
	uint8_t bh[32];
	memcpy(bh, rec.hash, 32);
	lg_block_rec_clear(&rec);
	TAP_EQ(lg_store_get_block_by_hash(c.s, bh, &rec), CM_OK);
	TAP_EQ(rec.height, 1);
	lg_block_rec_clear(&rec);
	TAP_EQ(lg_store_get_block(c.s, 99, &rec), CM_ERR_NOTFOUND);
	Muri__V1__TxStatus *ts;
	TAP_EQ(lg_query_tx(c.s, h[0], &ts), CM_OK);
	TAP_EQ(ts->state, MURI__V1__TX_STATE__TX_FAILED);
	TAP_EQ(ts->height, 3);
	TAP_CHECK(strstr(ts->message, "insufficient balance") != NULL);
	protobuf_c_message_free_unpacked(&ts->base, NULL);
	Muri__V1__Account *acc;
	TAP_EQ(lg_query_account(c.s, K[a].pk, &acc), CM_OK);
	TAP_EQ(acc->balance, balance(&c, a));
	TAP_EQ(acc->nonce, 3);
	protobuf_c_message_free_unpacked(&acc->base, NULL);
	TAP_EQ(lg_query_account(c.s, K[nobody].pk, &acc), CM_ERR_NOTFOUND);
	Muri__V1__Params *pp;
	TAP_EQ(lg_query_params(c.s, &pp), CM_OK);
	TAP_EQ(pp->n_values, lg_param_count());
	int found = 0;
	for (size_t i = 0; i < pp->n_values; i++)
		if (strcmp(pp->values[i]->key, "min_fee") == 0)
			found = pp->values[i]->value == 2;
	TAP_CHECK(found);
	protobuf_c_message_free_unpacked(&pp->base, NULL);
	TAP_EQ(lg_state_param(c.st, "min_fee"), 2);
	TAP_EQ(lg_state_param(c.st, "block_max_txs"), 10000);

	/* a read-only connection sees the same committed state */
	lg_store *ro;
	char err[256];
	TAP_EQ(lg_store_open(&ro, c.path, LG_STORE_READONLY, err, sizeof(err)), CM_OK);
	TAP_EQ(lg_query_account(ro, K[a].pk, &acc), CM_OK);
	TAP_EQ(acc->balance, balance(&c, a));
	protobuf_c_message_free_unpacked(&acc->base, NULL);
	lg_store_close(ro);

	/* a forged copy (the victim's body, a garbage signature) never hides the
	 * real outcome, before or after it */
	uint8_t hf[32], hg[32];
	tblock fb = {0};
	add_transfer(&c, &b, a, bb, 7, 2, hg);
	tb_push(&fb, forged_copy(b.tx[0]), a);
	lg_tx_hash(fb.tx[0]->body.data, fb.tx[0]->body.len, hf);
	TAP_CHECK(memcmp(hf, hg, 32) == 0);
	TAP_EQ(tb_apply(&c, &fb), CM_OK); /* the forgery lands first */
	TAP_FAILED(&c, hg, "signature: does not verify");
	TAP_EQ(commit(&c, &b), CM_OK); /* then the real one */
	TAP_COMMITTED(&c, hg);
	TAP_EQ(tb_apply(&c, &fb), CM_OK); /* and the forgery again */
	TAP_COMMITTED(&c, hg);
	tb_clear(&fb);
	add_transfer(&c, &b, bb, a, 1000000, 2, hg); /* an authentic failure */
	tb_push(&fb, forged_copy(b.tx[0]), bb);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, hg, "insufficient balance");
	TAP_EQ(tb_apply(&c, &fb), CM_OK);
	TAP_FAILED(&c, hg, "insufficient balance");
	tb_clear(&fb);

	/* heights must follow each other */
	lg_block_in bad = {0};
	bad.height = lg_state_height(c.st) + 2;
	TAP_EQ(lg_state_apply(c.st, &bad, 0, NULL), CM_ERR_RANGE);
	chain_close(&c);
}

/* ---- staking and unbonding ---- */

static void test_staking(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[6][32];
	int x = 10;

	g_base(&g);
	g_account(&g, x, 10000);
	g_param(&g, "unbonding_delay", 5);
	g_param(&g, "min_stake", 1000);
	if (chain_open(&c, "staking", &g) != CM_OK)
		return;
	add_stake(&c, &b, x, 500, 0, h[0]); /* not registered yet */
	add_register(&c, &b, x, h[1]);
	add_stake(&c, &b, x, 20000, 0, h[2]); /* more than the balance */
	add_stake(&c, &b, x, 1500, 0, h[3]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "stake: register as an indexer first");
	TAP_COMMITTED(&c, h[1]);
	TAP_FAILED(&c, h[2], "stake.amount: insufficient balance");
	TAP_COMMITTED(&c, h[3]);
	lg_account a = account(&c, x);
	TAP_EQ(a.staked, 1500);
	TAP_EQ(a.balance, 10000 - 4 - 1500);
	lg_indexer ix;
	TAP_EQ(lg_store_indexer_get(c.s, K[x].pk, &ix), CM_OK);
	TAP_EQ(ix.active, 1);
	TAP_EQ(ix.registered_height, 1);

	/* unstake below min_stake: inactive, unbonding for 5 blocks */
	add_stake(&c, &b, x, 600, 1, h[4]);
	add_stake(&c, &b, x, 5000, 1, h[5]);
	TAP_EQ(commit(&c, &b), CM_OK); /* height 2: release at 7 */
	TAP_COMMITTED(&c, h[4]);
	TAP_FAILED(&c, h[5], "unstake.amount: 5000 exceeds the stake 900");
	a = account(&c, x);
	TAP_EQ(a.staked, 900);
	TAP_EQ(a.unbonding, 600);
	uint64_t bal = a.balance;
	TAP_EQ(lg_store_indexer_get(c.s, K[x].pk, &ix), CM_OK);
	TAP_EQ(ix.active, 0);
	Muri__V1__IndexerInfo *ii;
	TAP_EQ(lg_query_indexer(c.s, K[x].pk, &ii), CM_OK);
	TAP_EQ(ii->stake, 900);
	TAP_EQ(ii->active, 0);
	TAP_STREQ(ii->address, "10.0.0.10:7200");
	protobuf_c_message_free_unpacked(&ii->base, NULL);
	advance_to(&c, 6);
	TAP_EQ(account(&c, x).balance, bal);
	TAP_EQ(account(&c, x).unbonding, 600);
	advance_to(&c, 7);
	TAP_EQ(account(&c, x).balance, bal + 600);
	TAP_EQ(account(&c, x).unbonding, 0);
	/* staking back above the minimum reactivates */
	add_stake(&c, &b, x, 100, 0, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_indexer_get(c.s, K[x].pk, &ix), CM_OK);
	TAP_EQ(ix.active, 1);
	uint64_t total;
	TAP_EQ(lg_store_counter_get(c.s, "total_staked", &total), CM_OK);
	TAP_EQ(total, 1000);
	chain_close(&c);
}

/* ---- Magus: membership, placement, movement ---- */

static void test_magu_create(void)
{
	tchain c1, c2;
	tblock b = {0};
	gtext g;
	uint8_t h[4][32], r1[32], r2[32], d1[32], d2[32];

	if (open_indexers(&c1, "magu1", 8, NULL, &g, NULL) != CM_OK ||
	    chain_open(&c2, "magu2", &g) != CM_OK)
		return;
	add_create(&c1, &b, K_ACC0, "docs", 16, 3, 5000, h[0]);
	add_create(&c1, &b, K_ACC0, "docs", 4, 1, 5000, h[1]);  /* exists */
	add_create(&c1, &b, K_ACC0, "big", 4, 9, 5000, h[2]);   /* 9 > 8 active */
	add_create(&c1, &b, K_ACC0, "cheap", 4, 3, 10, h[3]);   /* deposit < min_deposit */
	TAP_EQ(tb_apply(&c1, &b), CM_OK);
	TAP_EQ(tb_apply(&c2, &b), CM_OK);
	tb_clear(&b);
	TAP_COMMITTED(&c1, h[0]);
	TAP_FAILED(&c1, h[1], "create_magu.name: \"docs\" exists already");
	TAP_FAILED(&c1, h[2], "create_magu.replication: 9 replicas need as many active indexers, 8 are active");
	TAP_FAILED(&c1, h[3], "create_magu.deposit: 10 is below the minimum 100");
	TAP_EQ(balance(&c1, K_ACC0), 100000000 - 4 - 5000);

	lg_state_root(c1.st, r1);
	lg_state_root(c2.st, r2);
	TAP_CHECK(memcmp(r1, r2, 32) == 0);
	digest(&c1, d1);
	digest(&c2, d2);
	TAP_CHECK(memcmp(d1, d2, 32) == 0);

	Muri__V1__MaguInfo *m1, *m2;
	TAP_EQ(lg_query_magu(c1.s, "docs", &m1), CM_OK);
	TAP_EQ(lg_query_magu(c2.s, "docs", &m2), CM_OK);
	size_t l1 = protobuf_c_message_get_packed_size(&m1->base);
	size_t l2 = protobuf_c_message_get_packed_size(&m2->base);
	uint8_t *p1 = malloc(l1), *p2 = malloc(l2);
	protobuf_c_message_pack(&m1->base, p1);
	protobuf_c_message_pack(&m2->base, p2);
	TAP_CHECK(l1 == l2 && memcmp(p1, p2, l1) == 0); /* same memberships, bit for bit */
	free(p1);
	free(p2);
	TAP_EQ(m1->n_members, 8); /* min(8 active, 16 x 3, 64) */
	TAP_EQ(m1->n_configs, 16);
	TAP_EQ(m1->fragments, 16);
	TAP_EQ(m1->replication, 3);
	TAP_EQ(m1->metric, MURI__V1__METRIC__L2);
	TAP_EQ(m1->deposit, 5000);
	TAP_EQ(m1->created_height, 1);
	int load[8] = {0};
	for (size_t f = 0; f < m1->n_configs; f++) {
		Muri__V1__FragmentConfig *fc = m1->configs[f];
		TAP_EQ(fc->fragment, f);
		TAP_EQ(fc->epoch, 1);
		TAP_EQ(fc->n_replicas, 3);
		TAP_CHECK(memcmp(fc->primary.data, fc->replicas[0]->pubkey.data, 32) == 0);
		for (size_t i = 0; i < fc->n_replicas; i++) {
			int k = key_index(fc->replicas[i]->pubkey.data);
			TAP_CHECK(k >= 0 && k < 8);
			if (k >= 0 && k < 8)
				load[k]++;
			char want[32];
			snprintf(want, sizeof(want), "127.0.0.1:%d", 7200 + k);
			TAP_STREQ(fc->replicas[i]->address, want);
			for (size_t j = 0; j < i; j++)
				TAP_CHECK(memcmp(fc->replicas[i]->pubkey.data, fc->replicas[j]->pubkey.data, 32) != 0);
		}
	}
	int used = 0;
	for (int k = 0; k < 8; k++)
		used += load[k] > 0;
	TAP_CHECK(used >= 6); /* placement spreads over the members */
	protobuf_c_message_free_unpacked(&m1->base, NULL);
	protobuf_c_message_free_unpacked(&m2->base, NULL);
	TAP_EQ(lg_query_magu(c1.s, "nope", &m1), CM_ERR_NOTFOUND);
	Muri__V1__ListMagusResponse *lm;
	TAP_EQ(lg_query_magus(c1.s, 0, &lm), CM_OK);
	TAP_EQ(lm->n_magus, 1);
	TAP_STREQ(lm->magus[0]->name, "docs");
	protobuf_c_message_free_unpacked(&lm->base, NULL);

	/* a different beacon draws a different (but as valid) placement */
	tchain c3;
	if (chain_open(&c3, "magu3", &g) == CM_OK) {
		c3.beacon_seed = 99;
		add_create(&c3, &b, K_ACC0, "docs", 16, 3, 5000, NULL);
		TAP_EQ(commit(&c3, &b), CM_OK);
		uint8_t r3[32];
		lg_state_root(c3.st, r3);
		TAP_CHECK(memcmp(r1, r3, 32) != 0);
		chain_close(&c3);
	}
	chain_close(&c1);
	chain_close(&c2);
}

static void test_stake_weighting(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint64_t stake[10];
	int count[10] = {0};
	const int N = 240;

	for (int i = 0; i < 10; i++)
		stake[i] = i == 3 ? 20000 : 2000; /* indexer 3 has 10x the stake */
	if (open_indexers(&c, "weights", 10, stake, &g, NULL) != CM_OK)
		return;
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "m%d", i);
		add_create(&c, &b, K_ACC0, name, 1, 1, 100, NULL); /* one member each */
		if (b.n == 40)
			TAP_EQ(commit(&c, &b), CM_OK);
	}
	TAP_EQ(commit(&c, &b), CM_OK);
	for (int i = 0; i < N; i++) {
		char name[32];
		lg_slot *sl;
		size_t n;
		snprintf(name, sizeof(name), "m%d", i);
		TAP_EQ(lg_store_slots_of_magu(c.s, name, &sl, &n), CM_OK);
		TAP_EQ(n, 1);
		if (n == 1 && sl[0].filled) {
			int k = key_index(sl[0].holder);
			if (k >= 0 && k < 10)
				count[k]++;
		}
		free(sl);
	}
	/* expected share of indexer 3: 10 / 19 = 53% (uniform would give 10%) */
	printf("# indexer 3 (10x stake) drawn %d of %d times\n", count[3], N);
	TAP_CHECK(count[3] > N * 40 / 100 && count[3] < N * 66 / 100);
	for (int i = 0; i < 10; i++)
		if (i != 3)
			TAP_CHECK(count[i] < count[3] / 3);
	chain_close(&c);
}

typedef struct frag_snapshot {
	size_t n;
	lg_fragment f[64];
} frag_snapshot;

static void snapshot(tchain *c, const char *magu, frag_snapshot *s)
{
	lg_fragment *fr;
	TAP_EQ(lg_store_fragments_of(c->s, magu, &fr, &s->n), CM_OK);
	if (s->n > 64)
		s->n = 64;
	memcpy(s->f, fr, s->n * sizeof(*fr));
	free(fr);
}

static int has_replica(const lg_fragment *f, const uint8_t *pk)
{
	for (uint32_t i = 0; i < f->nreplicas; i++)
		if (memcmp(f->replicas[i], pk, 32) == 0)
			return 1;
	return 0;
}

/* Checks that only the fragments that held `gone` changed, each by one
 * replica; returns how many moved, and the key that came in (or -1). */
static int check_minimal_move(const frag_snapshot *a, const frag_snapshot *b, int gone, int *came)
{
	int moved = 0;
	*came = -1;
	TAP_EQ(a->n, b->n);
	for (size_t i = 0; i < a->n && i < b->n; i++) {
		const lg_fragment *x = &a->f[i], *y = &b->f[i];
		if (!has_replica(x, K[gone].pk)) {
			TAP_EQ(y->epoch, x->epoch);
			TAP_CHECK(x->nreplicas == y->nreplicas &&
				  memcmp(x->replicas, y->replicas, x->nreplicas * 32) == 0);
			continue;
		}
		moved++;
		TAP_EQ(y->epoch, x->epoch + 1);
		TAP_CHECK(!has_replica(y, K[gone].pk));
		TAP_EQ(y->nreplicas, x->nreplicas);
		int fresh = 0;
		for (uint32_t j = 0; j < y->nreplicas; j++)
			if (!has_replica(x, y->replicas[j])) {
				fresh++;
				if (came)
					*came = key_index(y->replicas[j]);
			}
		TAP_EQ(fresh, 1);
		if (memcmp(x->primary, K[gone].pk, 32) != 0)
			TAP_CHECK(memcmp(x->primary, y->primary, 32) == 0);
		else
			TAP_CHECK(has_replica(x, y->primary)); /* a replica that has the data */
	}
	return moved;
}

static void test_minimal_movement(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	frag_snapshot s0, s1, s2;
	uint8_t h[32];
	int came;

	/* 10 active indexers; "a" wants 3 x 2 = 6 members, "b" 64 x 3 capped at 10 */
	if (open_indexers(&c, "movement", 10, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "a", 3, 2, 100, NULL);
	add_create(&c, &b, K_ACC0, "b", 64, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	lg_slot *sl;
	size_t ns;
	TAP_EQ(lg_store_slots_of_magu(c.s, "a", &sl, &ns), CM_OK);
	TAP_EQ(ns, 6);
	for (size_t i = 0; i < ns; i++)
		TAP_CHECK(sl[i].filled);
	free(sl);

	/* a member of "a" (the primary of its fragment 0) unstakes below
	 * min_stake: a non-member takes its slot, and only its fragments move */
	frag_snapshot a0;
	snapshot(&c, "a", &a0);
	snapshot(&c, "b", &s0);
	int member = key_index(a0.f[0].primary);
	add_stake(&c, &b, member, account(&c, member).staked, 1, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	frag_snapshot a1;
	snapshot(&c, "a", &a1);
	int moved = check_minimal_move(&a0, &a1, member, &came);
	TAP_CHECK(moved >= 1);
	TAP_CHECK(came >= 0 && came < 10 && came != member);
	TAP_EQ(lg_store_slots_of_magu(c.s, "a", &sl, &ns), CM_OK);
	int holds = 0;
	for (size_t i = 0; i < ns; i++)
		holds += sl[i].filled && key_index(sl[i].holder) == came;
	TAP_EQ(holds, 1);
	free(sl);
	/* in "b" every indexer was a member: its slot is vacated, its fragments go to others */
	snapshot(&c, "b", &s1);
	moved = check_minimal_move(&s0, &s1, member, &came);
	TAP_CHECK(moved >= 64 * 3 / 10 / 2); /* about 64 * 3 / 10 */
	printf("# leaving indexer moved %d of 64 fragments of \"b\"\n", moved);

	/* a newly registered and staked indexer joins: only fragments moving to it change */
	int fresh = 20;
	add_transfer(&c, &b, K_ACC0, fresh, 5000, 1, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	add_register(&c, &b, fresh, NULL);
	add_stake(&c, &b, fresh, 2000, 0, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	snapshot(&c, "b", &s2);
	int gained = 0;
	for (size_t i = 0; i < s1.n; i++) {
		const lg_fragment *x = &s1.f[i], *y = &s2.f[i];
		if (!has_replica(y, K[fresh].pk)) {
			TAP_CHECK(memcmp(x->replicas, y->replicas, x->nreplicas * 32) == 0);
			TAP_EQ(y->epoch, x->epoch);
			continue;
		}
		gained++;
		TAP_EQ(y->epoch, x->epoch + 1);
		int common = 0;
		for (uint32_t j = 0; j < y->nreplicas; j++)
			common += has_replica(x, y->replicas[j]);
		TAP_EQ(common, (int)y->nreplicas - 1);
	}
	printf("# joining indexer took %d of 64 fragments of \"b\"\n", gained);
	TAP_CHECK(gained >= 5);
	chain_close(&c);
}

/* ---- failover ---- */

static void test_failover(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[6][32];
	lg_fragment f, f2;

	if (open_indexers(&c, "failover", 6, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "fo", 1, 3, 100, NULL);
	add_create(&c, &b, K_ACC0, "five", 1, 5, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "fo", 0, &f), CM_OK);
	TAP_EQ(f.nreplicas, 3);
	int p = key_index(f.primary), b1 = key_index(f.replicas[1]), b2 = key_index(f.replicas[2]);
	TAP_EQ(p, key_index(f.replicas[0]));
	int outsider = -1;
	for (int i = 0; i < 6; i++)
		if (i != p && i != b1 && i != b2)
			outsider = i;

	add_failover(&c, &b, b1, "fo", 0, 1, 10, h[0]);      /* 1 of 2 backups */
	add_failover(&c, &b, p, "fo", 0, 1, 10, h[1]);       /* the primary itself */
	add_failover(&c, &b, outsider, "fo", 0, 1, 10, h[2]); /* not a replica */
	add_failover(&c, &b, b2, "fo", 0, 7, 10, h[3]);      /* wrong epoch */
	add_failover(&c, &b, b2, "nope", 0, 1, 10, h[4]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "failover: the sender is not a backup of fragment 0");
	TAP_FAILED(&c, h[2], "failover: the sender is not a backup");
	TAP_FAILED(&c, h[3], "failover.epoch: 7 is not the current epoch 1");
	TAP_FAILED(&c, h[4], "failover: no fragment 0 in Magu \"nope\"");
	TAP_EQ(lg_store_fragment_get(c.s, "fo", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 1);
	TAP_EQ(key_index(f2.primary), p);

	/* the second backup, with the longer log, makes a majority and becomes primary */
	add_failover(&c, &b, b2, "fo", 0, 1, 12, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_EQ(lg_store_fragment_get(c.s, "fo", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 2);
	TAP_EQ(key_index(f2.primary), b2);
	TAP_CHECK(memcmp(f2.replicas, f.replicas, 3 * 32) == 0); /* same replica set */
	add_failover(&c, &b, b1, "fo", 0, 1, 50, h[1]); /* a request of the old epoch */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[1], "failover.epoch: 1 is not the current epoch 2");

	/* five replicas: four backups, three are a majority; longest log wins */
	TAP_EQ(lg_store_fragment_get(c.s, "five", 0, &f), CM_OK);
	TAP_EQ(f.nreplicas, 5);
	uint64_t logs[5] = {0, 30, 90, 60, 10};
	for (int i = 1; i <= 2; i++)
		add_failover(&c, &b, key_index(f.replicas[i]), "five", 0, 1, logs[i], NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "five", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 1);
	add_failover(&c, &b, key_index(f.replicas[3]), "five", 0, 1, logs[3], NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "five", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 2);
	TAP_CHECK(memcmp(f2.primary, f.replicas[2], 32) == 0); /* log 90 */
	chain_close(&c);
}

/* ---- fragment roots ---- */

static void test_commit_root(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[8][32];
	lg_fragment f;
	cm_merkle *log = make_log(16, "leaf"), *forged = make_log(16, "leaf");
	char leaf[] = "forged-2";

	/* a log that rewrites leaf 2 but agrees on nothing else */
	cm_merkle_truncate(forged, 2);
	cm_merkle_append(forged, leaf, strlen(leaf));
	for (int i = 3; i < 16; i++) {
		char l[32];
		int n = snprintf(l, sizeof(l), "leaf-%d", i);
		cm_merkle_append(forged, l, (size_t)n);
	}
	if (open_indexers(&c, "roots", 5, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "r", 2, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	int A = key_index(f.replicas[0]), B = key_index(f.replicas[1]), C = key_index(f.replicas[2]);
	int out = -1;
	for (int i = 0; i < 5; i++)
		if (i != A && i != B && i != C)
			out = i;

	add_commit_root(&c, &b, A, "r", 1, log, 0, 4, h[0]);
	add_commit_root(&c, &b, out, "r", 1, log, 0, 4, h[1]);   /* not a replica */
	add_commit_root(&c, &b, B, "r", 9, log, 0, 4, h[2]);     /* no such fragment */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "is not a replica of fragment 1");
	TAP_FAILED(&c, h[2], "commit_root.root: no fragment 9 in Magu \"r\"");
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	TAP_EQ(f.committed_size, 0); /* one of three is no majority */

	/* a bad signature does not count; the second replica's vote commits */
	corrupt_root_sig = 1;
	add_commit_root(&c, &b, C, "r", 1, log, 0, 4, h[2]);
	corrupt_root_sig = 0;
	add_commit_root(&c, &b, B, "r", 1, log, 0, 4, h[3]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[2], "commit_root.root.signature: does not verify for the signer");
	TAP_COMMITTED(&c, h[3]);
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	TAP_EQ(f.committed_size, 4);
	uint8_t r4[32];
	cm_merkle_root(log, 4, r4);
	TAP_CHECK(memcmp(f.committed_root, r4, 32) == 0);
	TAP_EQ(f.nsigners, 2);
	Muri__V1__MaguInfo *mi;
	TAP_EQ(lg_query_magu(c.s, "r", &mi), CM_OK);
	TAP_EQ(mi->n_committed_roots, 1);
	TAP_EQ(mi->committed_roots[0]->fragment, 1);
	TAP_EQ(mi->committed_roots[0]->size, 4);
	protobuf_c_message_free_unpacked(&mi->base, NULL);

	/* growing: a majority at size 9 with proofs from 4 */
	add_commit_root(&c, &b, C, "r", 1, log, 4, 9, h[0]);
	add_commit_root(&c, &b, C, "r", 1, log, 4, 3, h[1]);     /* below the committed size */
	add_commit_root(&c, &b, A, "r", 1, forged, 0, 4, h[2]);  /* another root at size 4 */
	add_commit_root(&c, &b, B, "r", 1, log, 4, 4, h[3]);     /* committed already */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "commit_root.root.size: 3 is below the committed size 4");
	TAP_FAILED(&c, h[2], "commit_root.root.root: conflicts with the committed root at size 4");
	TAP_FAILED(&c, h[3], "commit_root: the root at size 4 is committed already");
	add_commit_root(&c, &b, A, "r", 1, log, 4, 9, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	TAP_EQ(f.committed_size, 9);

	/* a rewritten log cannot extend the committed root: its proof fails */
	add_commit_root(&c, &b, A, "r", 1, forged, 9, 12, h[0]);
	add_commit_root(&c, &b, B, "r", 1, forged, 9, 12, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "commit_root.consistency_proof: does not prove that size 12 extends the committed root at size 9");
	TAP_FAILED(&c, h[1], "commit_root.consistency_proof");
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	TAP_EQ(f.committed_size, 9);

	/* a signer that changes its mind at one size */
	cm_merkle *other = make_log(12, "leaf");
	cm_merkle_truncate(other, 10);
	cm_merkle_append(other, "x", 1);
	cm_merkle_append(other, "y", 1);
	add_commit_root(&c, &b, A, "r", 1, log, 9, 12, h[0]);
	add_commit_root(&c, &b, A, "r", 1, other, 9, 12, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "signed a different root at size 12 already");
	cm_merkle_free(other);
	cm_merkle_free(log);
	cm_merkle_free(forged);
	chain_close(&c);
}

/* ---- challenges ---- */

enum answer_kind { ANS_RIGHT, ANS_WRONG_LEAF, ANS_WRONG_PROOF, ANS_WRONG_TAG, ANS_WRONG_INDEX };

static void add_answer(tchain *c, tblock *b, const lg_challenge *ch, const cm_merkle *log,
		       const char *tag, enum answer_kind kind, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__AnswerChallenge a = MURI__V1__ANSWER_CHALLENGE__INIT;
	Muri__V1__ChallengeAnswerRef refs[LG_LEAVES_MAX], *rp[LG_LEAVES_MAX];
	static cm_merkle_path paths[LG_LEAVES_MAX];
	static ProtobufCBinaryData pb[LG_LEAVES_MAX][CM_MERKLE_MAX_PATH];
	static char leaves[LG_LEAVES_MAX][64];
	static uint8_t tags[LG_LEAVES_MAX][32];
	int k = key_index(ch->indexer);

	for (uint32_t i = 0; i < ch->nleaves; i++) {
		muri__v1__challenge_answer_ref__init(&refs[i]);
		rp[i] = &refs[i];
		int n = snprintf(leaves[i], sizeof(leaves[i]), "%s-%llu", tag, (unsigned long long)ch->leaves[i]);
		if (kind == ANS_WRONG_LEAF && i == 0)
			leaves[i][0] ^= 1;
		TAP_EQ(cm_merkle_inclusion(log, ch->leaves[i], ch->size, &paths[i]), CM_OK);
		if (kind == ANS_WRONG_PROOF && i == 0 && paths[i].len)
			paths[i].hash[5] ^= 1;
		for (size_t j = 0; j < paths[i].len; j++) {
			pb[i][j].data = paths[i].hash + 32 * j;
			pb[i][j].len = 32;
		}
		cm_hasher hs;
		cm_hasher_init(&hs, CM_DOM_CHALLENGE);
		cm_hasher_update(&hs, ch->beacon, 32);
		cm_hasher_update(&hs, ch->indexer, 32);
		cm_hasher_update(&hs, leaves[i], (size_t)n);
		cm_hasher_final(&hs, tags[i]);
		if (kind == ANS_WRONG_TAG && i == 0)
			tags[i][0] ^= 1;
		refs[i].index = ch->leaves[i] + (kind == ANS_WRONG_INDEX && i == 0);
		refs[i].leaf.data = (uint8_t *)leaves[i];
		refs[i].leaf.len = (size_t)n;
		refs[i].path = pb[i];
		refs[i].n_path = paths[i].len;
		refs[i].tag.data = tags[i];
		refs[i].tag.len = 32;
	}
	a.challenge_id = ch->id;
	a.answers = rp;
	a.n_answers = ch->nleaves;
	tx_base(&t, k, nonce_of(c, b, k), 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_ANSWER_CHALLENGE;
	t.answer_challenge = &a;
	tb_add(b, &t, k, hash);
}

/* The open challenges of every indexer 0..n-1, by id. */
static size_t open_challenges(tchain *c, int n, lg_challenge *out, size_t max)
{
	size_t got = 0;
	for (int k = 0; k < n; k++) {
		lg_challenge *ch;
		size_t m;
		TAP_EQ(lg_store_challenges_of(c->s, K[k].pk, 1, 100, &ch, &m), CM_OK);
		for (size_t i = 0; i < m && got < max; i++)
			out[got++] = ch[i];
		free(ch);
	}
	return got;
}

/* A chain with 5 indexers, Magu "ch" (2 fragments x 3) whose fragments hold a
 * committed root of 40 leaves signed by their first two replicas. */
static int challenge_chain(tchain *c, const char *name, int max_failures, cm_merkle **log)
{
	gtext g;
	tblock b = {0};
	char mf[64];
	snprintf(mf, sizeof(mf), "param.max_failures = %d", max_failures);
	const char *extra[] = {"param.challenge_interval = 5", "param.challenge_deadline = 3",
			       "param.challenge_leaves = 3", "param.challenges_per_round = 1",
			       "param.slash_amount = 100", "param.min_stake = 1000", mf, NULL};
	uint64_t stake[5] = {5000, 5000, 5000, 5000, 5000};
	if (open_indexers(c, name, 5, stake, &g, extra) != CM_OK)
		return -1;
	*log = make_log(40, "rec");
	add_create(c, &b, K_ACC0, "ch", 2, 3, 100, NULL);
	TAP_EQ(commit(c, &b), CM_OK);
	for (uint32_t fr = 0; fr < 2; fr++) {
		lg_fragment f;
		TAP_EQ(lg_store_fragment_get(c->s, "ch", fr, &f), CM_OK);
		add_commit_root(c, &b, key_index(f.replicas[0]), "ch", fr, *log, 0, 40, NULL);
		add_commit_root(c, &b, key_index(f.replicas[1]), "ch", fr, *log, 0, 40, NULL);
	}
	TAP_EQ(commit(c, &b), CM_OK); /* height 2 */
	return 0;
}

static void test_challenges(void)
{
	tchain c;
	tblock b = {0};
	cm_merkle *log;
	lg_challenge ch[16];
	uint8_t h[2][32];
	size_t n;

	if (challenge_chain(&c, "challenges", 100, &log) != 0)
		return;
	advance_to(&c, 4);
	TAP_EQ(open_challenges(&c, 5, ch, 16), 0);
	advance_to(&c, 5); /* the first round */
	n = open_challenges(&c, 5, ch, 16);
	TAP_EQ(n, 1);
	if (n != 1)
		goto out;
	TAP_EQ(ch[0].nleaves, 3);
	TAP_EQ(ch[0].size, 40);
	TAP_EQ(ch[0].deadline, 8);
	for (uint32_t i = 0; i < ch[0].nleaves; i++)
		TAP_CHECK(ch[0].leaves[i] < 40);
	lg_fragment f;
	TAP_EQ(lg_store_fragment_get(c.s, ch[0].magu, ch[0].fragment, &f), CM_OK);
	int signer = 0;
	for (uint32_t i = 0; i < f.nsigners; i++)
		signer |= memcmp(f.signers[i], ch[0].indexer, 32) == 0;
	TAP_CHECK(signer); /* addressed to a replica that signed the committed root */
	Muri__V1__ChallengesResponse *cr;
	TAP_EQ(lg_query_challenges(c.s, ch[0].indexer, 1, 10, &cr), CM_OK);
	TAP_EQ(cr->n_challenges, 1);
	TAP_EQ(cr->challenges[0]->id, ch[0].id);
	TAP_EQ(cr->challenges[0]->n_leaf_indices, 3);
	TAP_EQ(cr->challenges[0]->state, MURI__V1__CHALLENGE_STATE__CHALLENGE_OPEN);
	protobuf_c_message_free_unpacked(&cr->base, NULL);

	/* a right answer passes: no slash */
	int k = key_index(ch[0].indexer);
	uint64_t stake0 = account(&c, k).staked;
	add_answer(&c, &b, &ch[0], log, "rec", ANS_RIGHT, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	lg_challenge got;
	TAP_EQ(lg_store_challenge_get(c.s, ch[0].id, &got), CM_OK);
	TAP_EQ(got.status, LG_CH_PASSED);
	TAP_EQ(account(&c, k).staked, stake0);
	add_answer(&c, &b, &ch[0], log, "rec", ANS_RIGHT, h[1]); /* once only */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[1], "is passed");

	/* wrong leaf, wrong proof, wrong tag, wrong index: each slashes 100 */
	enum answer_kind kinds[] = {ANS_WRONG_LEAF, ANS_WRONG_PROOF, ANS_WRONG_TAG, ANS_WRONG_INDEX};
	const char *want[] = {"inclusion proof of leaf", "inclusion proof of leaf", ".tag: wrong",
			      ".index:"};
	for (int r = 0; r < 4; r++) {
		advance_to(&c, 5 * (uint64_t)(r + 2));
		n = open_challenges(&c, 5, ch, 16);
		TAP_EQ(n, 1);
		if (n != 1)
			break;
		k = key_index(ch[0].indexer);
		lg_account before = account(&c, k);
		lg_indexer ixb;
		lg_store_indexer_get(c.s, K[k].pk, &ixb);
		add_answer(&c, &b, &ch[0], log, "rec", kinds[r], h[0]);
		TAP_EQ(commit(&c, &b), CM_OK);
		char msg[LG_MSG_MAX];
		TAP_EQ(tx_state(&c, h[0], msg, sizeof(msg)), MURI__V1__TX_STATE__TX_COMMITTED);
		if (!strstr(msg, want[r]) || !strstr(msg, "slashed 100"))
			printf("# answer message: %s\n", msg);
		TAP_CHECK(strstr(msg, want[r]) && strstr(msg, "slashed 100"));
		TAP_EQ(account(&c, k).staked, before.staked - 100);
		lg_indexer ixa;
		lg_store_indexer_get(c.s, K[k].pk, &ixa);
		TAP_EQ(ixa.failures, ixb.failures + 1);
		TAP_EQ(lg_store_challenge_get(c.s, ch[0].id, &got), CM_OK);
		TAP_EQ(got.status, LG_CH_FAILED);
	}
	/* someone else cannot answer, and late is slashed at the deadline */
	advance_to(&c, 30);
	n = open_challenges(&c, 5, ch, 16);
	TAP_EQ(n, 1);
	if (n == 1) {
		k = key_index(ch[0].indexer);
		lg_challenge imp = ch[0];
		memcpy(imp.indexer, K[(k + 1) % 5].pk, 32);
		add_answer(&c, &b, &imp, log, "rec", ANS_RIGHT, h[0]);
		TAP_EQ(commit(&c, &b), CM_OK);
		TAP_FAILED(&c, h[0], "is addressed to another indexer");
		uint64_t st0 = account(&c, k).staked;
		advance_to(&c, ch[0].deadline - 1);
		TAP_EQ(account(&c, k).staked, st0);
		advance_to(&c, ch[0].deadline);
		TAP_EQ(account(&c, k).staked, st0 - 100);
		TAP_EQ(lg_store_challenge_get(c.s, ch[0].id, &got), CM_OK);
		TAP_EQ(got.status, LG_CH_FAILED);
		add_answer(&c, &b, &ch[0], log, "rec", ANS_RIGHT, h[1]);
		TAP_EQ(commit(&c, &b), CM_OK);
		TAP_FAILED(&c, h[1], "is failed");
	}
out:
	cm_merkle_free(log);
	chain_close(&c);
}

static void test_challenge_removal(void)
{
	tchain c;
	tblock b = {0};
	cm_merkle *log;
	lg_challenge ch[16];
	int victim = -1, fails = 0;

	if (challenge_chain(&c, "removal", 2, &log) != 0)
		return;
	/* the first indexer challenged never answers; everyone else answers right */
	for (uint64_t h = 5; h <= 400 && fails < 2; h += 5) {
		advance_to(&c, h);
		size_t n = open_challenges(&c, 5, ch, 16);
		for (size_t i = 0; i < n; i++) {
			int k = key_index(ch[i].indexer);
			if (victim < 0)
				victim = k;
			if (k != victim)
				add_answer(&c, &b, &ch[i], log, "rec", ANS_RIGHT, NULL);
			else if (ch[i].deadline <= h + 5)
				fails++;
		}
		TAP_EQ(commit(&c, &b), CM_OK);
	}
	advance_to(&c, lg_state_height(c.st) + 5);
	TAP_EQ(fails, 2);
	if (victim < 0)
		goto out;
	lg_indexer ix;
	TAP_EQ(lg_store_indexer_get(c.s, K[victim].pk, &ix), CM_OK);
	TAP_EQ(ix.failures, 2);
	TAP_EQ(ix.jailed, 1);
	TAP_EQ(ix.active, 0);
	TAP_EQ(account(&c, victim).staked, 5000 - 200);
	Muri__V1__IndexerInfo *ii;
	TAP_EQ(lg_query_indexer(c.s, K[victim].pk, &ii), CM_OK);
	TAP_EQ(ii->jailed, 1);
	TAP_EQ(ii->failures, 2);
	protobuf_c_message_free_unpacked(&ii->base, NULL);
	/* removed from its Magu: not a member, no fragment on it, epochs bumped */
	Muri__V1__MaguInfo *mi;
	TAP_EQ(lg_query_magu(c.s, "ch", &mi), CM_OK);
	for (size_t i = 0; i < mi->n_members; i++)
		TAP_CHECK(memcmp(mi->members[i].data, K[victim].pk, 32) != 0);
	TAP_EQ(mi->n_members, 5 - 1); /* 6 slots wanted, 5 indexers, one jailed */
	for (size_t i = 0; i < mi->n_configs; i++) {
		TAP_EQ(mi->configs[i]->n_replicas, 3);
		for (size_t j = 0; j < mi->configs[i]->n_replicas; j++)
			TAP_CHECK(memcmp(mi->configs[i]->replicas[j]->pubkey.data, K[victim].pk, 32) != 0);
	}
	protobuf_c_message_free_unpacked(&mi->base, NULL);
	/* and a jailed indexer cannot come back */
	uint8_t h[32];
	add_stake(&c, &b, victim, 100, 0, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h, "stake: this indexer is jailed");
out:
	cm_merkle_free(log);
	chain_close(&c);
}

/* ---- governance ---- */

static void test_governance(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[4][32];
	uint64_t stake[4] = {1000, 1000, 2000, 2000}; /* 6000 in total */

	if (open_indexers(&c, "gov", 4, stake, &g, NULL) != CM_OK)
		return;
	TAP_EQ(lg_state_param(c.st, "slash_amount"), 100);
	add_propose(&c, &b, 0, "slash_amount", 500, 5, h[0]);     /* id 1 */
	add_propose(&c, &b, 1, "challenge_leaves", 8, 5, h[1]);  /* id 2 */
	add_propose(&c, &b, K_ACC0, "min_fee", 3, 5, h[2]);      /* no stake */
	add_propose(&c, &b, 2, "min_fee", 3, 1, h[3]);           /* in the past */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_COMMITTED(&c, h[1]);
	TAP_FAILED(&c, h[2], "propose: only accounts with stake can propose");
	TAP_FAILED(&c, h[3], "propose.apply_height: 1 is not after the current height 1");
	/* #1: 5000 of 6000 say yes; #2: 4000 of 6000, exactly 2/3, is not more than 2/3 */
	add_vote(&c, &b, 0, 1, 1, NULL);
	add_vote(&c, &b, 2, 1, 1, NULL);
	add_vote(&c, &b, 3, 1, 0, NULL);
	add_vote(&c, &b, 3, 1, 1, NULL); /* changes its mind */
	add_vote(&c, &b, 2, 2, 1, NULL);
	add_vote(&c, &b, 3, 2, 1, NULL);
	add_vote(&c, &b, 0, 2, 0, NULL);
	add_vote(&c, &b, K_ACC0, 1, 1, h[0]); /* no stake */
	add_vote(&c, &b, 3, 9, 1, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "vote: only accounts with stake can vote");
	TAP_FAILED(&c, h[1], "vote.proposal_id: no proposal 9");
	advance_to(&c, 4);
	TAP_EQ(lg_state_param(c.st, "slash_amount"), 100);
	advance_to(&c, 5);
	TAP_EQ(lg_state_param(c.st, "slash_amount"), 500);
	TAP_EQ(lg_state_param(c.st, "challenge_leaves"), 4);
	Muri__V1__ProposalInfo *pi;
	TAP_EQ(lg_query_proposal(c.s, 1, &pi), CM_OK);
	TAP_EQ(pi->state, MURI__V1__PROPOSAL_STATE__PROPOSAL_PASSED);
	TAP_EQ(pi->yes_stake, 5000);
	TAP_EQ(pi->total_stake, 6000);
	TAP_STREQ(pi->param, "slash_amount");
	protobuf_c_message_free_unpacked(&pi->base, NULL);
	TAP_EQ(lg_query_proposal(c.s, 2, &pi), CM_OK);
	TAP_EQ(pi->state, MURI__V1__PROPOSAL_STATE__PROPOSAL_REJECTED);
	TAP_EQ(pi->yes_stake, 4000);
	protobuf_c_message_free_unpacked(&pi->base, NULL);
	add_vote(&c, &b, 1, 1, 1, h[0]); /* decided */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "vote: proposal 1 is decided already");

	/* raising min_stake deactivates the indexers below it, at the apply height */
	add_stake(&c, &b, 3, 1000, 0, NULL); /* stakes 1000, 1000, 2000, 3000 */
	add_propose(&c, &b, 3, "min_stake", 1500, 9, NULL); /* id 3 */
	add_propose(&c, &b, 3, "search_fee", 9, 9, NULL);   /* id 4 */
	TAP_EQ(commit(&c, &b), CM_OK);
	add_vote(&c, &b, 3, 3, 1, NULL);
	add_vote(&c, &b, 0, 3, 1, NULL);
	add_vote(&c, &b, 1, 3, 1, NULL); /* 5000 of 7000 */
	add_vote(&c, &b, 3, 4, 1, NULL);
	add_vote(&c, &b, 0, 4, 1, NULL);
	add_vote(&c, &b, 1, 4, 0, NULL);  /* 4000 of 7000 */
	TAP_EQ(commit(&c, &b), CM_OK);
	lg_indexer ix;
	advance_to(&c, 8);
	TAP_EQ(lg_store_indexer_get(c.s, K[0].pk, &ix), CM_OK);
	TAP_EQ(ix.active, 1);
	advance_to(&c, 9);
	TAP_EQ(lg_state_param(c.st, "min_stake"), 1500);
	TAP_EQ(lg_state_param(c.st, "search_fee"), 1);
	for (int k = 0; k < 4; k++) {
		TAP_EQ(lg_store_indexer_get(c.s, K[k].pk, &ix), CM_OK);
		TAP_EQ(ix.active, k >= 2);
	}
	/* parameters survive a restart */
	TAP_EQ(chain_reopen(&c), CM_OK);
	TAP_EQ(lg_state_param(c.st, "min_stake"), 1500);
	TAP_EQ(lg_state_param(c.st, "slash_amount"), 500);
	chain_close(&c);
}

/* ---- determinism over a long random sequence ---- */

/* Adds one random tx (valid or not) from the view of chain c. */
static void random_tx(tchain *c, tblock *b, uint64_t *rs, int nacc, cm_merkle *log)
{
	int kind = (int)(xs_next(rs) % 23), from = (int)(xs_next(rs) % (uint64_t)nacc);
	int to = (int)(xs_next(rs) % (uint64_t)nacc);
	char name[16];
	snprintf(name, sizeof(name), "mg%d", (int)(xs_next(rs) % 6));
	if (kind < 8) {
		add_transfer(c, b, from, to, xs_next(rs) % 3000 + 1, xs_next(rs) % 3, NULL);
	} else if (kind == 8) {
		add_register(c, b, from, NULL);
	} else if (kind == 9) {
		add_stake(c, b, from, xs_next(rs) % 3000 + 1, 0, NULL);
	} else if (kind == 10) {
		add_stake(c, b, from, xs_next(rs) % 2000 + 1, 1, NULL);
	} else if (kind == 11) {
		add_create(c, b, from, name, (uint32_t)(xs_next(rs) % 8 + 1), (uint32_t)(xs_next(rs) % 3 + 1),
			   100 + xs_next(rs) % 100, NULL);
	} else if (kind == 12) {
		Muri__V1__Transaction t;
		Muri__V1__DropMagu d = MURI__V1__DROP_MAGU__INIT;
		tx_base(&t, from, nonce_of(c, b, from), 1);
		d.name = name;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU;
		t.drop_magu = &d;
		tb_add(b, &t, from, NULL);
	} else if (kind == 13 || kind == 14) {
		lg_fragment f;
		if (lg_store_fragment_get(c->s, name, 0, &f) == CM_OK && f.nreplicas) {
			int k = key_index(f.replicas[xs_next(rs) % f.nreplicas]);
			uint64_t size = f.committed_size + xs_next(rs) % 5 + 1;
			if (kind == 13 && size <= cm_merkle_size(log))
				add_commit_root(c, b, k, name, 0, log, f.committed_size, size, NULL);
			else
				add_failover(c, b, k, name, 0, f.epoch, xs_next(rs) % 100, NULL);
		}
	} else if (kind == 15) {
		add_transfer(c, b, from, to, 1, 0, NULL);
		b->tx[b->n - 1]->signature.data[7] ^= 1; /* bad signature */
	} else if (kind == 16) {
		Muri__V1__Transaction t;
		Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
		tx_base(&t, from, xs_next(rs) % 4, 1); /* likely a wrong nonce */
		tr.to.data = K[to].pk;
		tr.to.len = 32;
		tr.amount = 1;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
		t.transfer = &tr;
		tb_add(b, &t, from, NULL);
	} else if (kind == 17) {
		add_propose(c, b, from, "slash_amount", (int64_t)(xs_next(rs) % 300),
			    lg_state_height(c->st) + 1 + xs_next(rs) % 10, NULL);
	} else if (kind == 20) { /* an allowance to a random gateway */
		Muri__V1__Transaction t;
		Muri__V1__Approve a = MURI__V1__APPROVE__INIT;
		tx_base(&t, from, nonce_of(c, b, from), 1);
		a.gateway.data = K[to % 2].pk; /* two gateways, so that receipts find allowances */
		a.gateway.len = 32;
		a.amount = xs_next(rs) % 5000;
		a.expiry_height = lg_state_height(c->st) + xs_next(rs) % 30;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_APPROVE;
		t.approve = &a;
		tb_add(b, &t, from, NULL);
	} else if (kind == 21) { /* a receipt paying fragment 0's replicas; ids repeat */
		lg_fragment f;
		if (lg_store_fragment_get(c->s, name, 0, &f) == CM_OK && f.nreplicas) {
			Muri__V1__Transaction t;
			Muri__V1__Settle st = MURI__V1__SETTLE__INIT;
			Muri__V1__SearchReceipt r = MURI__V1__SEARCH_RECEIPT__INIT, *rp = &r;
			ProtobufCBinaryData nb[LG_MAX_REPLICAS];
			uint8_t id[16];
			memset(id, (int)(xs_next(rs) % 40), sizeof(id));
			for (uint32_t i = 0; i < f.nreplicas; i++) {
				nb[i].data = f.replicas[i];
				nb[i].len = 32;
			}
			r.magu = name;
			r.searcher.data = K[from].pk;
			r.searcher.len = 32;
			r.ranked_nodes = nb;
			r.n_ranked_nodes = f.nreplicas;
			r.fee = xs_next(rs) % 800 + 1;
			r.id.data = id;
			r.id.len = sizeof(id);
			st.receipts = &rp;
			st.n_receipts = 1;
			tx_base(&t, to % 2, nonce_of(c, b, to % 2), 1);
			t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SETTLE;
			t.settle = &st;
			tb_add(b, &t, to % 2, NULL);
		}
	} else if (kind == 22) { /* two roots by one signer, sometimes conflicting */
		Muri__V1__Transaction t;
		Muri__V1__ReportDoubleRoot d = MURI__V1__REPORT_DOUBLE_ROOT__INIT;
		Muri__V1__SignedRoot r[2];
		uint8_t roots[2][32], sigs[2][64], dg[32];
		int signer = (int)(xs_next(rs) % (uint64_t)nacc);
		for (int i = 0; i < 2; i++) {
			muri__v1__signed_root__init(&r[i]);
			memset(roots[i], (int)(xs_next(rs) % 2), 32);
			r[i].magu = name;
			r[i].size = 10 + xs_next(rs) % 2;
			r[i].root.data = roots[i];
			r[i].root.len = 32;
			r[i].signer.data = K[signer].pk;
			r[i].signer.len = 32;
			TAP_EQ(lg_root_digest(&r[i], dg), CM_OK);
			cm_sign(&K[signer], sigs[i], dg, 32);
			r[i].signature.data = sigs[i];
			r[i].signature.len = 64;
		}
		d.a = &r[0];
		d.b = &r[1];
		tx_base(&t, from, nonce_of(c, b, from), 1);
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REPORT_DOUBLE_ROOT;
		t.report_double_root = &d;
		tb_add(b, &t, from, NULL);
	} else {
		uint64_t last = 0;
		lg_store_counter_get(c->s, "last_proposal_id", &last);
		if (last)
			add_vote(c, b, from, last - xs_next(rs) % last, (int)(xs_next(rs) % 4 != 0), NULL);
	}
}

static void test_determinism(void)
{
	tchain a, bch, r;
	gtext g;
	tblock b = {0};
	uint64_t rs = 0x9e3779b97f4a7c15ull;
	const int nacc = 16, blocks = 300;
	cm_merkle *log = make_log(200, "det");
	uint64_t stake[16];
	const char *extra[] = {"param.challenge_interval = 7", "param.challenge_deadline = 3",
			       "param.challenges_per_round = 2", "param.max_failures = 2",
			       "param.unbonding_delay = 4", NULL};
	int committed = 0, failed = 0;

	for (int i = 0; i < 16; i++)
		stake[i] = i < 8 ? 1000 + 500u * (unsigned)i : 0;
	if (open_indexers(&a, "det_a", 16, stake, &g, extra) != CM_OK ||
	    chain_open(&bch, "det_b", &g) != CM_OK || chain_open(&r, "det_r", &g) != CM_OK)
		return;
	for (int h = 1; h <= blocks; h++) {
		int ntx = (int)(xs_next(&rs) % 25);
		for (int i = 0; i < ntx; i++)
			random_tx(&a, &b, &rs, nacc, log);
		uint8_t ra[32], rb[32], rr[32];
		TAP_EQ(tb_apply(&a, &b), CM_OK);
		TAP_EQ(tb_apply(&bch, &b), CM_OK);
		TAP_EQ(tb_apply(&r, &b), CM_OK);
		for (size_t i = 0; i < b.n; i++) {
			uint8_t hh[32];
			lg_tx_hash(b.tx[i]->body.data, b.tx[i]->body.len, hh);
			int s = tx_state(&a, hh, NULL, 0);
			committed += s == MURI__V1__TX_STATE__TX_COMMITTED;
			failed += s == MURI__V1__TX_STATE__TX_FAILED;
		}
		tb_clear(&b);
		lg_state_root(a.st, ra);
		lg_state_root(bch.st, rb);
		lg_state_root(r.st, rr);
		if (memcmp(ra, rb, 32) != 0 || memcmp(ra, rr, 32) != 0) {
			printf("# roots diverge at height %d\n", h);
			TAP_CHECK(0);
			break;
		}
		/* the effects followers read are the same bytes on every replica */
		uint8_t *ea = NULL, *eb = NULL;
		size_t la = 0, lb = 0;
		TAP_EQ(lg_store_effects_get(a.s, (uint64_t)h, &ea, &la), CM_OK);
		TAP_EQ(lg_store_effects_get(bch.s, (uint64_t)h, &eb, &lb), CM_OK);
		TAP_CHECK(la == lb && ea && eb && memcmp(ea, eb, la) == 0);
		free(ea);
		free(eb);
		if (h % 50 == 0)
			TAP_EQ(chain_reopen(&r), CM_OK); /* a restart resumes at the same root */
	}
	uint8_t da[32], db[32], dr[32];
	digest(&a, da);
	digest(&bch, db);
	digest(&r, dr);
	TAP_CHECK(memcmp(da, db, 32) == 0 && memcmp(da, dr, 32) == 0);
	printf("# %d blocks: %d txs committed, %d failed\n", blocks, committed, failed);
	TAP_CHECK(committed > 500 && failed > 200);
	/* the run exercised Magus, roots and challenges */
	uint64_t nch = 0;
	lg_store_counter_get(a.s, "last_challenge_id", &nch);
	printf("# %llu challenges issued\n", (unsigned long long)nch);
	TAP_CHECK(nch > 0);
	uint64_t nrc = 0;
	lg_store_counter_get(a.s, "last_receipt_seq", &nrc);
	printf("# %llu receipts settled\n", (unsigned long long)nrc);
	TAP_CHECK(nrc > 0);
	chain_close(&a);
	chain_close(&bch);
	chain_close(&r);
	cm_merkle_free(log);
}

/* ---- crash atomicity ---- */

typedef struct fault_ctl {
	uint64_t fail_at; /* 0: never */
	int kill;         /* SIGKILL instead of failing */
	uint64_t steps;
} fault_ctl;

static int fault_hook(void *arg, uint64_t step)
{
	fault_ctl *f = arg;
	f->steps = step;
	if (f->fail_at && step == f->fail_at) {
		if (f->kill)
			raise(SIGKILL);
		return 1;
	}
	return 0;
}

/* A deterministic block of transfers and stakes for height h. */
static void crash_block(tchain *c, tblock *b, uint64_t h)
{
	uint64_t rs = 0x1234 + h;
	for (int i = 0; i < 40; i++) {
		int from = (int)(xs_next(&rs) % 8), to = (int)(xs_next(&rs) % 8);
		add_transfer(c, b, from, to, xs_next(&rs) % 100 + 1, 1, NULL);
	}
	add_stake(c, b, (int)(h % 8), 10, 0, NULL);
	add_create(c, b, (int)(h % 8), h % 2 ? "odd" : "even", 4, 2, 100, NULL);
}

static void test_crash_atomicity(void)
{
	tchain ref, c;
	gtext g;
	tblock b = {0};
	enum { H = 12 };
	uint8_t ref_digest[H + 1][32], ref_root[H + 1][32];
	fault_ctl fc = {0};

	/* the reference: digests and roots at every height */
	if (open_indexers(&ref, "crash_ref", 8, NULL, &g, NULL) != CM_OK)
		return;
	digest(&ref, ref_digest[0]);
	lg_state_root(ref.st, ref_root[0]);
	for (uint64_t h = 1; h <= H; h++) {
		crash_block(&ref, &b, h);
		TAP_EQ(commit(&ref, &b), CM_OK);
		digest(&ref, ref_digest[h]);
		lg_state_root(ref.st, ref_root[h]);
	}

	/* 1. every write of block 6 failing in turn: the block rolls back whole,
	 * then the same block commits with the reference root */
	if (chain_open(&c, "crash_fail", &g) != CM_OK)
		return;
	for (uint64_t h = 1; h <= 5; h++) {
		crash_block(&c, &b, h);
		TAP_EQ(commit(&c, &b), CM_OK);
	}
	crash_block(&c, &b, 6);
	lg_store_set_fault(c.s, fault_hook, &fc);
	fc.fail_at = 0;
	/* count the steps of one commit on a scratch copy of the chain */
	{
		tchain scratch;
		char cmd[1400];
		snprintf(cmd, sizeof(cmd), "cp %s %s/crash_scratch.db && cp %s-wal %s/crash_scratch.db-wal 2>/dev/null; true",
			 c.path, tmpdir, c.path, tmpdir);
		TAP_EQ(system(cmd), 0);
		if (chain_open(&scratch, "crash_scratch", NULL) == CM_OK) {
			lg_store_set_fault(scratch.s, fault_hook, &fc);
			TAP_EQ(tb_apply(&scratch, &b), CM_OK);
			chain_close(&scratch);
		}
	}
	uint64_t steps = fc.steps;
	printf("# block 6 takes %llu write steps\n", (unsigned long long)steps);
	TAP_CHECK(steps > 100);
	int bad = 0;
	quiet_apply = 1;
	for (uint64_t k = 1; k <= steps; k += (k < 40 || k + 40 > steps) ? 1 : 7) {
		uint8_t d[32];
		fc.fail_at = k;
		lg_store_set_fault(c.s, fault_hook, &fc);
		fc.fail_at = k;
		if (tb_apply(&c, &b) != CM_ERR_IO)
			bad++;
		if (lg_state_height(c.st) != 5)
			bad++;
		digest(&c, d);
		if (memcmp(d, ref_digest[5], 32) != 0)
			bad++;
		if (bad) {
			printf("# fault at step %llu left the state changed\n", (unsigned long long)k);
			break;
		}
	}
	quiet_apply = 0;
	TAP_EQ(bad, 0);
	lg_store_set_fault(c.s, NULL, NULL);
	uint8_t root[32], d[32];
	TAP_EQ(tb_apply(&c, &b), CM_OK);
	lg_state_root(c.st, root);
	TAP_CHECK(memcmp(root, ref_root[6], 32) == 0);
	digest(&c, d);
	TAP_CHECK(memcmp(d, ref_digest[6], 32) == 0);
	tb_clear(&b);
	chain_close(&c);

	/* 2. a child commits blocks 1..H and is SIGKILLed at a chosen write step
	 * (or by the parent at a random time); the reopened store is exactly at
	 * some height with that height's reference state */
	uint64_t rs = 77;
	int runs = 0, mismatches = 0, seen_mid = 0;
	for (int trial = 0; trial < 24; trial++) {
		char name[64], cmd[600];
		snprintf(name, sizeof(name), "crash_kill%d", trial);
		snprintf(cmd, sizeof(cmd), "rm -f %s/%s.db*", tmpdir, name);
		TAP_EQ(system(cmd), 0);
		if (chain_open(&c, name, &g) != CM_OK)
			break;
		chain_close(&c);
		int by_timer = trial % 3 == 2;
		uint64_t kill_at = 1 + xs_next(&rs) % (steps * 7);
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			tchain cc;
			fault_ctl f = {by_timer ? 0 : kill_at, 1, 0};
			if (chain_open(&cc, name, NULL) != CM_OK)
				_exit(2);
			lg_store_set_fault(cc.s, fault_hook, &f);
			for (uint64_t h = 1; h <= H; h++) {
				tblock bb = {0};
				crash_block(&cc, &bb, h);
				if (commit(&cc, &bb) != CM_OK)
					_exit(3);
			}
			_exit(0);
		}
		if (by_timer) {
			struct timespec ts = {0, (long)(xs_next(&rs) % 40000000)};
			nanosleep(&ts, NULL);
			kill(pid, SIGKILL);
		}
		int status;
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			printf("# child exited %d\n", WEXITSTATUS(status));
			mismatches++;
			continue;
		}
		if (chain_open(&c, name, NULL) != CM_OK) {
			mismatches++;
			continue;
		}
		uint64_t hh = lg_state_height(c.st);
		digest(&c, d);
		lg_state_root(c.st, root);
		if (hh > H || memcmp(d, ref_digest[hh], 32) != 0 || memcmp(root, ref_root[hh], 32) != 0) {
			printf("# trial %d: state at height %llu differs from the reference\n", trial,
			       (unsigned long long)hh);
			mismatches++;
		}
		seen_mid += hh > 0 && hh < H;
		/* and the store goes on from there */
		if (hh < H) {
			crash_block(&c, &b, hh + 1);
			TAP_EQ(commit(&c, &b), CM_OK);
			lg_state_root(c.st, root);
			TAP_CHECK(memcmp(root, ref_root[hh + 1], 32) == 0);
		}
		chain_close(&c);
		runs++;
	}
	printf("# %d killed children, %d stopped mid-chain\n", runs, seen_mid);
	TAP_EQ(mismatches, 0);
	TAP_CHECK(seen_mid >= 5);
	chain_close(&ref);
}

/* ---- block limits ---- */

static void test_block_limits(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[5][32];

	g_base(&g);
	g_account(&g, K_ACC0, 1000);
	g_param(&g, "block_max_txs", 3);
	if (chain_open(&c, "limits", &g) != CM_OK)
		return;
	for (int i = 0; i < 5; i++)
		add_transfer(&c, &b, K_ACC0, K_ACC0 + 1, 10, 0, h[i]);
	TAP_EQ(commit(&c, &b), CM_OK);
	for (int i = 0; i < 3; i++)
		TAP_COMMITTED(&c, h[i]);
	TAP_FAILED(&c, h[3], "block: beyond block_max_txs = 3");
	TAP_FAILED(&c, h[4], "block: beyond block_max_txs = 3");
	TAP_EQ(balance(&c, K_ACC0 + 1), 30);
	TAP_EQ(account(&c, K_ACC0).nonce, 3);
	chain_close(&c);
}

/* ---- store details ---- */

static void test_store_misc(void)
{
	tchain c;
	gtext g;
	uint8_t *data;
	size_t len;
	char err[256];

	g_base(&g);
	if (chain_open(&c, "misc", &g) != CM_OK)
		return;
	TAP_EQ(lg_store_get_safety(c.s, &data, &len), CM_ERR_NOTFOUND);
	TAP_EQ(lg_store_put_safety(c.s, "view=7", 6), CM_OK);
	TAP_EQ(lg_store_put_safety(c.s, "view=8;locked", 13), CM_OK);
	TAP_EQ(lg_store_get_safety(c.s, &data, &len), CM_OK);
	TAP_EQ(len, 13);
	TAP_CHECK(memcmp(data, "view=8;locked", 13) == 0);
	free(data);
	TAP_EQ(lg_store_begin(c.s), CM_OK);
	TAP_EQ(lg_store_put_safety(c.s, "ax", 1), CM_ERR_STATE);
	TAP_EQ(lg_store_begin(c.s), CM_ERR_STATE);
	lg_store_rollback(c.s);

	/* a savepoint undoes the rows and the write-set entries after it */
	lg_account ax = {{1}, 10, 0, 0, 0}, ay = {{2}, 20, 0, 0, 0}, got;
	uint8_t ws1[32], ws2[32];
	TAP_EQ(lg_store_begin(c.s), CM_OK);
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	lg_store_writeset_hash(c.s, ws1);
	TAP_EQ(lg_store_savepoint(c.s), CM_OK);
	ax.balance = 11;
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	TAP_EQ(lg_store_account_put(c.s, &ay), CM_OK);
	TAP_EQ(lg_store_writeset_len(c.s), 3);
	TAP_EQ(lg_store_rollback_to(c.s), CM_OK);
	TAP_EQ(lg_store_writeset_len(c.s), 1);
	TAP_EQ(lg_store_account_get(c.s, ax.pk, &got), CM_OK);
	TAP_EQ(got.balance, 10);
	TAP_EQ(lg_store_account_get(c.s, ay.pk, &got), CM_ERR_NOTFOUND);
	lg_store_writeset_hash(c.s, ws2);
	TAP_CHECK(memcmp(ws1, ws2, 32) == 0);
	TAP_EQ(lg_store_savepoint(c.s), CM_OK);
	TAP_EQ(lg_store_account_put(c.s, &ay), CM_OK);
	TAP_EQ(lg_store_release(c.s), CM_OK);
	TAP_EQ(lg_store_writeset_len(c.s), 2);
	TAP_EQ(lg_store_account_get(c.s, ay.pk, &got), CM_OK);
	/* the last write of a key wins; the write order of different keys does not matter */
	ax.balance = 12;
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	lg_store_writeset_hash(c.s, ws1);
	lg_store_rollback(c.s);
	TAP_EQ(lg_store_account_get(c.s, ay.pk, &got), CM_ERR_NOTFOUND);
	TAP_EQ(lg_store_begin(c.s), CM_OK);
	TAP_EQ(lg_store_account_put(c.s, &ay), CM_OK);
	ax.balance = 99;
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	ax.balance = 12;
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	lg_store_writeset_hash(c.s, ws2);
	TAP_CHECK(memcmp(ws1, ws2, 32) == 0);
	lg_store_rollback(c.s);

	uint8_t root[32];
	lg_state_root(c.st, root);
	chain_close(&c);

	/* reopening resumes; another genesis is refused; a new store needs one */
	TAP_EQ(chain_open(&c, "misc", &g), CM_OK);
	uint8_t root2[32];
	lg_state_root(c.st, root2);
	TAP_CHECK(memcmp(root, root2, 32) == 0);
	TAP_STREQ(lg_state_chain_id(c.st), CHAIN);
	TAP_EQ(lg_store_get_safety(c.s, &data, &len), CM_OK); /* survived */
	free(data);
	chain_close(&c);
	g_param(&g, "slash_amount", 1);
	lg_genesis *other = parse_gen(&g);
	lg_state *st;
	snprintf(err, sizeof(err), "%s/misc.db", tmpdir);
	char path[300];
	snprintf(path, sizeof(path), "%s", err);
	TAP_EQ(lg_state_open(&st, path, other, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "genesis file differs") != NULL);
	snprintf(path, sizeof(path), "%s/fresh.db", tmpdir);
	TAP_EQ(lg_state_open(&st, path, NULL, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "needs a genesis") != NULL);
	lg_genesis_free(other);

	/* the same genesis written differently gives the same root */
	tchain x, y;
	gtext g2;
	char hk[65];
	g_base(&g2);
	g_account(&g2, 3, 10);
	g_account(&g2, 4, 20);
	if (chain_open(&x, "order1", &g2) == CM_OK) {
		g2.n = 0;
		gl(&g2, "account = %s 20   # reordered", hexkey(4, hk));
		gl(&g2, "gateway=%s", hexkey(K_GATEWAY, hk));
		gl(&g2, "chain_id = " CHAIN);
		gl(&g2, "account = %s 10", hexkey(3, hk));
		gl(&g2, "replica = %s 127.0.0.1:7100", hexkey(K_REPLICA, hk));
		gl(&g2, "account = %s 1000", hexkey(K_GATEWAY, hk));
		gl(&g2, "genesis_time_ms = 1700000000000");
		if (chain_open(&y, "order2", &g2) == CM_OK) {
			uint8_t r1[32], r2[32];
			lg_state_root(x.st, r1);
			lg_state_root(y.st, r2);
			TAP_CHECK(memcmp(r1, r2, 32) == 0);
			chain_close(&y);
		}
		chain_close(&x);
	}
}

/* ---- apply rate ---- */

static void bench_transfers(int nblocks, int per_block)
{
	tchain c;
	gtext g;
	const int nacc = 64;
	tblock *blocks = calloc((size_t)nblocks, sizeof(*blocks));
	uint64_t rs = 5, nonce[NKEYS] = {0};

	g_base(&g);
	for (int i = 0; i < nacc; i++)
		g_account(&g, i, 1ull << 40);
	for (int flags = 0; flags < 2; flags++) {
		char name[32];
		snprintf(name, sizeof(name), "bench%d", flags);
		if (chain_open(&c, name, &g) != CM_OK)
			break;
		memset(nonce, 0, sizeof(nonce));
		rs = 5;
		for (int i = 0; i < nblocks; i++) {
			for (int j = 0; j < per_block; j++) {
				Muri__V1__Transaction t;
				Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
				int from = (int)(xs_next(&rs) % nacc), to = (int)(xs_next(&rs) % 100000);
				uint8_t dst[32];
				cm_hash(dst, CM_DOM_TEST, &to, sizeof(to)); /* mostly new accounts */
				tx_base(&t, from, nonce[from]++, 1);
				tr.to.data = dst;
				tr.to.len = 32;
				tr.amount = 1;
				t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
				t.transfer = &tr;
				tb_add(&blocks[i], &t, from, NULL);
			}
		}
		double t0 = now_s();
		int ok = 1;
		for (int i = 0; i < nblocks; i++)
			ok &= tb_apply_flags(&c, &blocks[i], flags ? LG_APPLY_SIGS_VERIFIED : 0) == CM_OK;
		double dt = now_s() - t0;
		TAP_CHECK(ok);
		uint8_t hh[32];
		lg_tx_hash(blocks[nblocks - 1].tx[per_block - 1]->body.data,
			   blocks[nblocks - 1].tx[per_block - 1]->body.len, hh);
		TAP_EQ(tx_state(&c, hh, NULL, 0), MURI__V1__TX_STATE__TX_COMMITTED);
		printf("# apply rate, blocks of %d signed transfers, signatures %s: %.0f tx/s (%.1f ms/block)\n",
		       per_block, flags ? "pre-verified" : "checked", nblocks * per_block / dt,
		       dt * 1000 / nblocks);
		for (int i = 0; i < nblocks; i++)
			tb_clear(&blocks[i]);
		chain_close(&c);
	}
	free(blocks);
}

static void test_apply_rate(void)
{
	const char *env = getenv("MURI_BENCH");
	bench_transfers(env && *env == '1' ? 30 : 4, 1000);
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	const char *bench = getenv("MURI_BENCH");
	if (bench && strcmp(bench, "1") == 0) { /* the apply rate only, on more blocks */
		TAP_RUN(test_apply_rate);
		return tap_done();
	}
	TAP_RUN(test_genesis);
	TAP_RUN(test_tx_open);
	TAP_RUN(test_transfers);
	TAP_RUN(test_staking);
	TAP_RUN(test_magu_create);
	TAP_RUN(test_stake_weighting);
	TAP_RUN(test_minimal_movement);
	TAP_RUN(test_failover);
	TAP_RUN(test_commit_root);
	TAP_RUN(test_challenges);
	TAP_RUN(test_challenge_removal);
	TAP_RUN(test_governance);
	TAP_RUN(test_determinism);
	TAP_RUN(test_crash_atomicity);
	TAP_RUN(test_block_limits);
	TAP_RUN(test_store_misc);
	TAP_RUN(test_apply_rate);
	return st_finish();
}
