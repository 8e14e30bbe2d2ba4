/* Tests of the ledger's state machine and store (lg_tx, lg_genesis,
 * lg_state): the genesis file, transactions and their rejections,
 * transfers, staking, governance, and determinism across stores over a
 * long random sequence. */
#include "st_chain.h"

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

	/* an unknown field numbered 0 (its tag in two bytes, which protobuf-c
	 * decodes) is refused, signed or not */
	TAP_EQ(lg_tx_sign(&t, &K[1], &stx, NULL), CM_OK);
	uint8_t *grown = malloc(stx.body.len + 6);
	memcpy(grown, stx.body.data, stx.body.len);
	memcpy(grown + stx.body.len, "\x85\x00\x01\x01\x85\x00", 6);
	free(stx.body.data);
	stx.body.data = grown;
	stx.body.len += 6;
	TAP_EQ(lg_tx_open(&stx, CHAIN, LG_TX_SKIP_SIG, &tx, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "body: a field numbered 0 (not a valid Transaction encoding)");
	lg_tx_signed_clear(&stx);

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
	/* HAMMING: the dimension counts bits, a multiple of 8 up to 65536 */
	m.metric = MURI__V1__METRIC__HAMMING;
	m.dimension = 12;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.dimension: 12 bits under HAMMING, expected a multiple of 8 in 8..65536");
	m.dimension = 65544;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	m.dimension = 8192;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);
	m.index = &ix;
	ix.kind = MURI__V1__INDEX_KIND__IVF;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.kind: HAMMING takes FLAT or HNSW");
	ix.kind = MURI__V1__INDEX_KIND__FLAT;
	ix.quantizer = MURI__V1__QUANTIZER__SQ8;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.quantizer: HAMMING vectors are not quantized");
	ix.quantizer = MURI__V1__QUANTIZER__QUANTIZER_NONE;
	ix.kind = MURI__V1__INDEX_KIND__INDEX_UNSPECIFIED;
	m.index = NULL;
	m.metric = (Muri__V1__Metric)5;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.metric: unknown value 5");
	m.metric = MURI__V1__METRIC__METRIC_UNSPECIFIED;
	m.dimension = 4096;
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
	ix.hnsw_m = 16;
	ix.index_batch = 1000001;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.index_batch: 1000001 is out of range 1..1000000 (0 = default)");
	ix.index_batch = 512;
	ix.tombstone_permille = 5;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.tombstone_permille: 5 is out of range 10..990 (0 = default)");
	ix.tombstone_permille = 991;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	ix.tombstone_permille = 250;
	ix.train_min = 100000001;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.train_min: 100000001 is out of range 1..100000000 (0 = default)");
	ix.train_min = 5000;
	ix.train_max = 4999;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.train_max: 4999 is below train_min 5000");
	ix.train_max = 0; /* the default sample is the indexer's to bound */
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);
	ix.train_max = 5000;
	ix.exact_threshold = 100000001;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.exact_threshold: 100000001 is out of range 1..100000000 (0 = default)");
	ix.exact_threshold = 1000;
	ix.exact_permille = 1001;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.exact_permille: 1001 is out of range 1..1000 (0 = default)");
	ix.exact_permille = 30;
	ix.rerank = 65;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "create_magu.index.rerank: 65 is out of range 1..64 (0 = default)");
	ix.rerank = 8;
	ix.seed = UINT64_MAX; /* any seed */
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);

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

	Muri__V1__FailoverRequest fo = MURI__V1__FAILOVER_REQUEST__INIT;
	uint8_t root[33] = {0};
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_FAILOVER;
	t.failover = &fo;
	fo.magu = (char *)"docs";
	fo.epoch = 3;
	fo.log_size = 5;
	fo.last_epoch = 3;
	fo.root.data = root;
	fo.root.len = 32;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);
	fo.root.len = 33;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "failover.root: 33 bytes, must be 32");
	fo.root.len = 0;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "failover.root: 0 bytes, must be 32");
	fo.root.len = 32;
	fo.last_epoch = 4;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "failover.last_epoch: 4 is above failover.epoch 3");
	fo.last_epoch = 0;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "failover.last_epoch: must be 0 exactly when failover.log_size is 0");
	fo.log_size = 0;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);
	fo.last_epoch = 1;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "failover.last_epoch: must be 0 exactly when failover.log_size is 0");

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
			else {
				uint64_t ls = xs_next(rs) % 100, le = ls ? xs_next(rs) % f.epoch + 1 : 0;
				add_failover(c, b, k, name, 0, f.epoch, ls, le, NULL);
			}
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
			r[i].chain_id = (char *)CHAIN;
			r[i].epoch = 1 + xs_next(rs) % 2;
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
	int committed = 0, failed = 0, switched = 0;

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
			char msg[256] = "";
			int s = tx_state(&a, hh, msg, sizeof(msg));
			committed += s == MURI__V1__TX_STATE__TX_COMMITTED;
			switched += s == MURI__V1__TX_STATE__TX_COMMITTED && strstr(msg, ", primary ") != NULL;
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
	uint8_t fin[32];
	char finh[65];
	lg_state_root(a.st, fin);
	cm_hex(finh, fin, 32);
	printf("# state root at height %d: %s\n", blocks, finh);
	/* Golden: the root this run reached before placement looked at fill
	 * (main at 797498d), where no indexer comes near max_fill. A change that
	 * moves it changes the state roots of chains already running; update it
	 * only for a change meant to. Moved once since, on purpose: split_size's
	 * default went from 0 to 10,000,000, a value the genesis state stores
	 * (at 0 this run still reaches 6e460c69...; chains already running keep
	 * the value their genesis stored). */
	TAP_STREQ(finh, "ffb68ca1a5a83083b0dcdcfd36576d530816c4e12aa00ee965d6ecacbc2bf1a2");
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
	printf("# %d failovers switched a primary\n", switched);
	TAP_CHECK(switched > 0);
	chain_close(&a);
	chain_close(&bch);
	chain_close(&r);
	cm_merkle_free(log);
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	TAP_RUN(test_genesis);
	TAP_RUN(test_tx_open);
	TAP_RUN(test_transfers);
	TAP_RUN(test_staking);
	TAP_RUN(test_governance);
	TAP_RUN(test_determinism);
	return st_finish();
}
