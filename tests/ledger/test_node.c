/* In-process tests of the ledger replica's payload checks and commit path
 * (lg_node_chain.c through the I/O table it gives the consensus core), with
 * real replicas opened on real state but no network: a Byzantine proposer's
 * re-signed body, the state root every block carries, a replica that stops
 * loudly once its own state diverged, block limits from the state, and the
 * admission of relayed transactions. */
#include "tap.h"
#include "lg_node_int.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHAIN "test-node"
#define NREP 4
#define K_SENDER 4
#define K_TO 5
#define NKEYS 6

static char tmpdir[] = "/tmp/muri-test-node-XXXXXX";
static char genesis_path[400];
static cm_keypair K[NKEYS];

static void write_genesis(int unsigned_noops)
{
	char h[65];
	FILE *f = fopen(genesis_path, "w");
	TAP_CHECK(f != NULL);
	if (!f)
		return;
	fprintf(f, "chain_id = " CHAIN "\ngenesis_time_ms = 1700000000000\n");
	for (int i = 0; i < NREP; i++) {
		cm_hex(h, K[i].pk, CM_PK_BYTES);
		fprintf(f, "replica = %s 127.0.0.1:%d\n", h, 1 + i); /* never dialled */
	}
	cm_hex(h, K[K_SENDER].pk, CM_PK_BYTES);
	fprintf(f, "account = %s 1000000\n", h);
	fprintf(f, "param.allow_noop = 1\nparam.unsigned_noops = %d\n", unsigned_noops);
	fclose(f);
}

static lg_node *open_node(int replica, const char *name)
{
	char dir[400], err[512] = "";
	snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
	mkdir(dir, 0700);
	lg_node_opts o = {.data_dir = dir, .genesis_path = genesis_path, .key = &K[replica],
			  .base_timeout_ms = 500, .max_timeout_ms = 4000, .tick_ms = 5,
			  .max_payload_bytes = 1 << 22,
			  .mempool_max_txs = 1000, .mempool_max_bytes = 1 << 24, .mempool_per_sender = 1000,
			  .inbox_max = 1000, .net_queue = 16, .readers = 1, .max_wait_ms = 1000, .relay_inbox = 4};
	lg_node *n = NULL;
	int rc = lg_node_open(&o, &n, err, sizeof(err));
	if (rc != CM_OK)
		printf("# open %s: %s\n", name, err);
	TAP_EQ(rc, CM_OK);
	return n;
}

/* A block of proposer at height parent+1 carrying payload; its QC for the
 * parent is unsigned (the payload checks and commit do not look at it). */
static void make_block(cm_block *b, const cm_block *parent, uint64_t view, uint32_t proposer,
		       const uint8_t *payload, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->height = parent->height + 1;
	b->view = view;
	memcpy(b->parent, parent->hash, CM_HASH_BYTES);
	if (parent->height == 0)
		cm_qc_genesis(&b->justify);
	else {
		memset(&b->justify, 0, sizeof(b->justify));
		b->justify.view = parent->view;
		memcpy(b->justify.block_hash, parent->hash, CM_HASH_BYTES);
	}
	b->proposer = proposer;
	b->payload = payload;
	b->payload_len = (uint32_t)len;
	cm_block_hash(b);
}

static cm_qc qc_of(const cm_block *b)
{
	cm_qc q;
	memset(&q, 0, sizeof(q));
	q.view = b->view;
	memcpy(q.block_hash, b->hash, CM_HASH_BYTES);
	return q;
}

/* A transfer of amount from the sender to K_TO with nonce, signed. */
static void signed_transfer(Muri__V1__SignedTransaction *stx, uint64_t nonce, uint64_t amount,
			    uint8_t hash[CM_HASH_BYTES])
{
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
	t.chain_id = CHAIN;
	t.sender.data = K[K_SENDER].pk;
	t.sender.len = CM_PK_BYTES;
	t.nonce = nonce;
	t.fee = 1;
	tr.to.data = K[K_TO].pk;
	tr.to.len = CM_PK_BYTES;
	tr.amount = amount;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	TAP_EQ(lg_tx_sign(&t, &K[K_SENDER], stx, hash), CM_OK);
}

/* Puts stx into n's mempool as admission would. */
static void pool_add(lg_node *n, const Muri__V1__SignedTransaction *stx, const uint8_t hash[CM_HASH_BYTES],
		     uint64_t nonce)
{
	size_t len = protobuf_c_message_get_packed_size(&stx->base);
	uint8_t *bytes = malloc(len);
	protobuf_c_message_pack(&stx->base, bytes);
	TAP_EQ(lg_mempool_add(n->mp, hash, K[K_SENDER].pk, nonce, bytes, len, 0), CM_OK);
	free(bytes);
}

/* The proposer's payload for a block on parent (into buf). */
static size_t propose(lg_node *n, const cm_block *parent, uint64_t view, uint8_t *buf, size_t cap)
{
	lg_hs_io io;
	size_t len = 0;
	lg_node_io_init(n, &io);
	TAP_EQ(io.make_payload(n, parent, parent->height + 1, view, buf, cap, &len), CM_OK);
	return len;
}

static int validate(lg_node *n, const cm_block *parent, const cm_block *b)
{
	lg_hs_io io;
	lg_node_io_init(n, &io);
	return io.validate_payload(n, parent, b);
}

static int store(lg_node *n, const cm_block *b)
{
	lg_hs_io io;
	lg_node_io_init(n, &io);
	return io.store_block(n, b);
}

/* The (state_height, state_root) a payload pins. */
static uint64_t pin_of(const uint8_t *payload, size_t len, uint8_t root[CM_HASH_BYTES])
{
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, len, payload);
	TAP_CHECK(body != NULL && body->state_root.len == CM_HASH_BYTES);
	uint64_t h = UINT64_MAX;
	if (body && body->state_root.len == CM_HASH_BYTES) {
		h = body->state_height;
		if (root)
			memcpy(root, body->state_root.data, CM_HASH_BYTES);
	}
	if (body)
		muri__v1__block_body__free_unpacked(body, NULL);
	return h;
}

static int commit(lg_node *n, const cm_block *b)
{
	lg_hs_io io;
	lg_node_io_init(n, &io);
	cm_qc q = qc_of(b);
	return io.commit(n, b, &q);
}

static uint64_t balance(lg_node *n, int k)
{
	lg_account a;
	memset(&a, 0, sizeof(a));
	lg_store_account_get(lg_state_store(n->state), K[k].pk, &a);
	return a.balance;
}

/* Re-encodes a payload with a new state root / state height or a garbled
 * signature of tx i (i < 0: none). out holds at least len + 64 bytes. */
static size_t rewrite(const uint8_t *payload, size_t len, int garble_tx, const uint8_t *root, int64_t state_height,
		      uint8_t *out)
{
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, len, payload);
	TAP_CHECK(body != NULL);
	if (!body)
		return 0;
	uint8_t sig[CM_SIG_BYTES], r[CM_HASH_BYTES], *sig0 = NULL, *r0 = body->state_root.data;
	size_t r0len = body->state_root.len;
	if (garble_tx >= 0) {
		sig0 = body->txs[garble_tx]->signature.data;
		memcpy(sig, body->txs[garble_tx]->signature.data, CM_SIG_BYTES);
		sig[7] ^= 0x5a;
		body->txs[garble_tx]->signature.data = sig;
	}
	if (root) {
		memcpy(r, root, CM_HASH_BYTES);
		body->state_root.data = r;
		body->state_root.len = CM_HASH_BYTES;
	}
	if (state_height >= 0)
		body->state_height = (uint64_t)state_height;
	size_t n = muri__v1__block_body__pack(body, out);
	/* give the unpacked message its own buffers back before freeing it */
	if (garble_tx >= 0)
		body->txs[garble_tx]->signature.data = sig0;
	body->state_root.data = r0;
	body->state_root.len = r0len;
	muri__v1__block_body__free_unpacked(body, NULL);
	return n;
}

/* Hole 1: a body this replica saw with a good signature, proposed again with
 * a garbled one, is refused by every replica, and whether a replica had the
 * good copy cached does not change what the block does when it commits. */
static void test_resigned_body(void)
{
	lg_node *p = open_node(0, "r1-p"), *warm = open_node(1, "r1-warm"), *cold = open_node(2, "r1-cold");
	if (!p || !warm || !cold)
		goto out;
	cm_block g;
	cm_block_genesis(&g);
	Muri__V1__SignedTransaction stx = MURI__V1__SIGNED_TRANSACTION__INIT;
	uint8_t th[CM_HASH_BYTES];
	signed_transfer(&stx, 0, 500, th);
	pool_add(p, &stx, th, 0);

	static uint8_t good[1 << 16], bad[1 << 16];
	size_t glen = propose(p, &g, 1, good, sizeof(good));
	cm_block b1, b1x;
	make_block(&b1, &g, 1, 0, good, glen);
	TAP_EQ(validate(warm, &g, &b1), CM_OK); /* warm now knows the good copy */

	size_t blen = rewrite(good, glen, 0, NULL, -1, bad);
	make_block(&b1x, &g, 2, 0, bad, blen);
	TAP_EQ(validate(cold, &g, &b1x), CM_ERR_VERIFY);
	TAP_EQ(validate(warm, &g, &b1x), CM_ERR_VERIFY); /* the cache must not vouch for it */

	/* had it gathered a QC anyway (more than f Byzantine voters), every
	 * replica executes it the same way */
	TAP_EQ(commit(warm, &b1x), CM_OK);
	TAP_EQ(commit(cold, &b1x), CM_OK);
	TAP_CHECK(memcmp(warm->root, cold->root, CM_HASH_BYTES) == 0);
	TAP_EQ(balance(warm, K_TO), 0);
	TAP_EQ(balance(cold, K_TO), 0);
	lg_tx_signed_clear(&stx);
out:
	lg_node_close(p);
	lg_node_close(warm);
	lg_node_close(cold);
}

/* Hole 1 for unsigned no-ops: whether a Noop's signature is checked is the
 * genesis parameter, the same on a replica that cached it and on one that
 * did not (it restarted). */
static void test_unsigned_noop_after_restart(void)
{
	write_genesis(1);
	lg_node *p = open_node(0, "r2-p"), *warm = open_node(1, "r2-warm"), *cold = open_node(2, "r2-cold");
	if (!p || !warm || !cold)
		goto out;
	cm_block g;
	cm_block_genesis(&g);
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__Noop noop = MURI__V1__NOOP__INIT;
	uint8_t data[4] = {1, 2, 3, 4}, zero[CM_SIG_BYTES] = {0}, th[CM_HASH_BYTES];
	t.chain_id = CHAIN;
	t.sender.data = K[K_TO].pk; /* no account, no fee */
	t.sender.len = CM_PK_BYTES;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_NOOP;
	noop.data.data = data;
	noop.data.len = sizeof(data);
	t.noop = &noop;
	size_t blen = muri__v1__transaction__get_packed_size(&t);
	uint8_t body[256];
	muri__v1__transaction__pack(&t, body);
	lg_tx_hash(body, blen, th);
	Muri__V1__SignedTransaction stx = MURI__V1__SIGNED_TRANSACTION__INIT;
	stx.body.data = body;
	stx.body.len = blen;
	stx.signature.data = zero;
	stx.signature.len = CM_SIG_BYTES;
	size_t len = protobuf_c_message_get_packed_size(&stx.base);
	uint8_t bytes[512];
	protobuf_c_message_pack(&stx.base, bytes);
	TAP_EQ(lg_mempool_add(p->mp, th, K[K_TO].pk, 0, bytes, len, 0), CM_OK);
	static uint8_t pl[1 << 16];
	size_t plen = propose(p, &g, 1, pl, sizeof(pl));
	cm_block b1;
	make_block(&b1, &g, 1, 0, pl, plen);
	TAP_EQ(validate(warm, &g, &b1), CM_OK);
	TAP_EQ(validate(cold, &g, &b1), CM_OK);
	/* cold restarts and forgets what it verified */
	lg_node_close(cold);
	cold = open_node(2, "r2-cold");
	if (!cold)
		goto out;
	TAP_EQ(commit(warm, &b1), CM_OK);
	TAP_EQ(commit(cold, &b1), CM_OK);
	TAP_CHECK(memcmp(warm->root, cold->root, CM_HASH_BYTES) == 0);
	TAP_EQ(warm->txs_committed, 1);
	TAP_EQ(cold->txs_committed, 1);
out:
	write_genesis(0);
	lg_node_close(p);
	lg_node_close(warm);
	lg_node_close(cold);
}

/* Hole 4: a block carries its proposer's (state_height, state_root); a
 * replica refuses a wrong one, and one whose own state diverged from the
 * others' stops: it commits nothing further and says so. */
static void test_state_root_in_blocks(void)
{
	lg_node *p = open_node(0, "r3-p"), *v = open_node(1, "r3-v"), *odd = open_node(3, "r3-odd");
	if (!p || !v || !odd)
		goto out;
	cm_block g;
	cm_block_genesis(&g);
	Muri__V1__SignedTransaction s0 = MURI__V1__SIGNED_TRANSACTION__INIT, s1 = MURI__V1__SIGNED_TRANSACTION__INIT;
	uint8_t h0[CM_HASH_BYTES], h1[CM_HASH_BYTES];
	signed_transfer(&s0, 0, 100, h0);
	signed_transfer(&s1, 1, 100, h1);
	pool_add(p, &s0, h0, 0);

	static uint8_t pl1[1 << 16], pl2[1 << 16], x[1 << 16];
	size_t l1 = propose(p, &g, 1, pl1, sizeof(pl1));
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, l1, pl1);
	TAP_CHECK(body && body->state_height == 0 && body->state_root.len == CM_HASH_BYTES &&
		  memcmp(body->state_root.data, p->root, CM_HASH_BYTES) == 0);
	muri__v1__block_body__free_unpacked(body, NULL);
	cm_block b1, bx;
	make_block(&b1, &g, 1, 0, pl1, l1);
	TAP_EQ(validate(v, &g, &b1), CM_OK);

	uint8_t wrong[CM_HASH_BYTES];
	memset(wrong, 0xab, sizeof(wrong));
	size_t lx = rewrite(pl1, l1, -1, wrong, -1, x);
	make_block(&bx, &g, 2, 0, x, lx);
	TAP_EQ(validate(v, &g, &bx), CM_ERR_VERIFY); /* a root v does not have at height 0 */
	lx = rewrite(pl1, l1, -1, NULL, 1, x);
	make_block(&bx, &g, 3, 0, x, lx);
	TAP_EQ(validate(v, &g, &bx), CM_ERR_VERIFY); /* state_height above the parent's height */

	TAP_EQ(commit(p, &b1), CM_OK);
	TAP_EQ(commit(v, &b1), CM_OK);
	/* odd's state at height 1 differs: it commits another block 1 (a
	 * corrupted store would do the same) */
	cm_block b1odd;
	lx = rewrite(pl1, l1, 0, NULL, -1, x);
	make_block(&b1odd, &g, 7, 0, x, lx);
	TAP_EQ(commit(odd, &b1odd), CM_OK);
	TAP_CHECK(memcmp(odd->root, p->root, CM_HASH_BYTES) != 0);

	pool_add(p, &s1, h1, 1);
	size_t l2 = propose(p, &b1, 2, pl2, sizeof(pl2));
	/* pinning height 1, which p and v have committed */
	static uint8_t pl2p[1 << 16];
	l2 = rewrite(pl2, l2, -1, p->root, 1, pl2p);
	cm_block b2;
	make_block(&b2, &b1, 2, 0, pl2p, l2);
	TAP_EQ(validate(v, &b1, &b2), CM_OK);
	TAP_EQ(validate(odd, &b1, &b2), CM_ERR_VERIFY); /* odd has height 1 with another root */
	TAP_EQ(lg_node_diverged(v, NULL, 0), 0);
	TAP_EQ(commit(v, &b2), CM_OK);
	TAP_EQ(v->height, 2);

	/* at commit time odd finds that its root at height 1 is not the
	 * certified block's: it stops */
	char why[512] = "";
	TAP_CHECK(commit(odd, &b2) != CM_OK);
	TAP_EQ(lg_node_diverged(odd, why, sizeof(why)), 1);
	printf("# diverged: %s\n", why);
	TAP_CHECK(strstr(why, "height 1") != NULL);
	TAP_EQ(odd->height, 1);
	/* and it stays stopped: no vote, no commit */
	TAP_CHECK(validate(odd, &b1, &b2) != CM_OK);
	TAP_CHECK(commit(odd, &b2) != CM_OK);
	TAP_EQ(odd->height, 1);
	lg_tx_signed_clear(&s0);
	lg_tx_signed_clear(&s1);
out:
	lg_node_close(p);
	lg_node_close(v);
	lg_node_close(odd);
}

/* Hole 4's limits: make_payload and validate_payload take block_max_txs from
 * the governed parameter, not from the replica's configuration. */
static void test_block_limit_from_state(void)
{
	FILE *f = fopen(genesis_path, "a");
	fprintf(f, "param.block_max_txs = 2\n");
	fclose(f);
	lg_node *p = open_node(0, "r4-p"), *v = open_node(1, "r4-v");
	if (!p || !v)
		goto out;
	cm_block g;
	cm_block_genesis(&g);
	Muri__V1__SignedTransaction s[3];
	uint8_t h[3][CM_HASH_BYTES];
	for (int i = 0; i < 3; i++) {
		muri__v1__signed_transaction__init(&s[i]);
		signed_transfer(&s[i], (uint64_t)i, 10, h[i]);
		pool_add(p, &s[i], h[i], (uint64_t)i);
	}
	static uint8_t pl[1 << 16];
	size_t l = propose(p, &g, 1, pl, sizeof(pl));
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, l, pl);
	TAP_CHECK(body && body->n_txs == 2);
	/* a Byzantine proposer's three */
	static uint8_t big[1 << 16];
	if (body) {
		Muri__V1__SignedTransaction *three[3] = {body->txs[0], body->txs[1], &s[2]};
		Muri__V1__SignedTransaction **keep = body->txs;
		body->txs = three;
		body->n_txs = 3;
		size_t bl = muri__v1__block_body__pack(body, big);
		body->txs = keep;
		body->n_txs = 2;
		cm_block b;
		make_block(&b, &g, 2, 0, big, bl);
		TAP_EQ(validate(v, &g, &b), CM_ERR_VERIFY);
	}
	if (body)
		muri__v1__block_body__free_unpacked(body, NULL);
	for (int i = 0; i < 3; i++)
		lg_tx_signed_clear(&s[i]);
out:
	write_genesis(0);
	lg_node_close(p);
	lg_node_close(v);
}

/* A sender's nonces in a proposal continue the branch it extends: a
 * transaction in flight in a block that is not an ancestor does not let a
 * later nonce through (it would execute out of order and fail for good). */
static void test_proposal_follows_its_branch(void)
{
	lg_node *p = open_node(0, "r6-p"), *v = open_node(1, "r6-v");
	if (!p || !v)
		goto out;
	cm_block g;
	cm_block_genesis(&g);
	Muri__V1__SignedTransaction s0 = MURI__V1__SIGNED_TRANSACTION__INIT, s1 = MURI__V1__SIGNED_TRANSACTION__INIT;
	uint8_t h0[CM_HASH_BYTES], h1[CM_HASH_BYTES];
	signed_transfer(&s0, 0, 1, h0);
	signed_transfer(&s1, 1, 1, h1);
	/* v proposes S:0 in b1; p votes for it (S:0 in flight at p) */
	pool_add(v, &s0, h0, 0);
	static uint8_t pl1[1 << 16], pl[1 << 16];
	size_t l1 = propose(v, &g, 1, pl1, sizeof(pl1));
	cm_block b1;
	make_block(&b1, &g, 1, 1, pl1, l1);
	pool_add(p, &s0, h0, 0);
	TAP_EQ(validate(p, &g, &b1), CM_OK);
	pool_add(p, &s1, h1, 1);
	/* b1 is abandoned: p's proposal on genesis must not carry S:1 */
	size_t l = propose(p, &g, 2, pl, sizeof(pl));
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, l, pl);
	TAP_CHECK(body && body->n_txs == 0);
	if (body)
		muri__v1__block_body__free_unpacked(body, NULL);
	/* on b1 it does */
	l = propose(p, &b1, 2, pl, sizeof(pl));
	body = muri__v1__block_body__unpack(NULL, l, pl);
	uint8_t h[CM_HASH_BYTES] = {0};
	if (body && body->n_txs == 1)
		lg_tx_hash(body->txs[0]->body.data, body->txs[0]->body.len, h);
	TAP_CHECK(body && body->n_txs == 1 && memcmp(h, h1, CM_HASH_BYTES) == 0);
	if (body)
		muri__v1__block_body__free_unpacked(body, NULL);
	lg_tx_signed_clear(&s0);
	lg_tx_signed_clear(&s1);
out:
	lg_node_close(p);
	lg_node_close(v);
}

/* The review's scenario (n=4, f=1): a Byzantine leader pins its parent,
 * which no voter has committed yet, with a made-up root. Were it voted for,
 * the pin would be checked by nobody until the block commits, and then every
 * honest replica would find the mismatch and stop for good. A voter signs a
 * pin only after checking it against its own committed root; an honest
 * proposer pins its own committed state, never the parent's claim. */
static void test_unchecked_pin_refused(void)
{
	lg_node *p = open_node(0, "r7-p"), *v = open_node(1, "r7-v"), *w = open_node(2, "r7-w");
	if (!p || !v || !w)
		goto out;
	cm_block g;
	cm_block_genesis(&g);
	Muri__V1__SignedTransaction s[3];
	uint8_t th[3][CM_HASH_BYTES];
	for (int i = 0; i < 3; i++) {
		muri__v1__signed_transaction__init(&s[i]);
		signed_transfer(&s[i], (uint64_t)i, 10, th[i]);
	}
	static uint8_t pl1[1 << 16], pl2[1 << 16], x[1 << 16], y[1 << 16], pl3[1 << 16];
	pool_add(p, &s[0], th[0], 0);
	size_t l1 = propose(p, &g, 1, pl1, sizeof(pl1));
	cm_block b1, b2x, b2, b2y, b3;
	make_block(&b1, &g, 1, 0, pl1, l1);
	TAP_EQ(validate(v, &g, &b1), CM_OK);
	TAP_EQ(validate(w, &g, &b1), CM_OK);
	TAP_EQ(store(p, &b1), CM_OK);

	/* b1 is certified, not committed anywhere; the leader of view 2 pins
	 * height 1 with a root nobody has */
	pool_add(p, &s[1], th[1], 1);
	size_t l2 = propose(p, &b1, 2, pl2, sizeof(pl2));
	uint8_t wrong[CM_HASH_BYTES];
	memset(wrong, 0xcd, sizeof(wrong));
	size_t lx = rewrite(pl2, l2, -1, wrong, 1, x);
	make_block(&b2x, &b1, 2, 0, x, lx);
	TAP_EQ(validate(v, &b1, &b2x), CM_ERR_VERIFY);
	TAP_EQ(validate(w, &b1, &b2x), CM_ERR_VERIFY);

	/* the honest proposal on the same parent pins what its branch proves
	 * committed (0: no three-chain yet), which every voter has */
	TAP_EQ(pin_of(pl2, l2, NULL), 0);
	make_block(&b2, &b1, 3, 0, pl2, l2);
	TAP_EQ(validate(v, &b1, &b2), CM_OK);

	/* once v has committed height 1 it can check a pin there: its own root
	 * passes, another does not */
	TAP_EQ(commit(v, &b1), CM_OK);
	TAP_EQ(validate(v, &b1, &b2x), CM_ERR_VERIFY);
	size_t ly = rewrite(pl2, l2, -1, v->root, 1, y);
	make_block(&b2y, &b1, 4, 0, y, ly);
	TAP_EQ(validate(v, &b1, &b2y), CM_OK);
	TAP_EQ(validate(w, &b1, &b2y), CM_ERR_VERIFY); /* w has not committed height 1: cannot check, refuses */

	/* p, behind b2y's pin (it has committed nothing), does not copy that
	 * claim: it pins its own root at what the branch proves (0), and v,
	 * ahead of it, accepts */
	TAP_EQ(store(p, &b2y), CM_OK);
	pool_add(p, &s[2], th[2], 2);
	size_t l3 = propose(p, &b2y, 5, pl3, sizeof(pl3));
	uint8_t r3[CM_HASH_BYTES];
	TAP_EQ(pin_of(pl3, l3, r3), 0);
	TAP_CHECK(memcmp(r3, p->root, CM_HASH_BYTES) == 0);
	make_block(&b3, &b2y, 5, 0, pl3, l3);
	TAP_EQ(validate(v, &b2y, &b3), CM_OK);
	TAP_EQ(validate(w, &b2y, &b3), CM_OK);
	TAP_EQ(lg_node_diverged(v, NULL, 0), 0);
	for (int i = 0; i < 3; i++)
		lg_tx_signed_clear(&s[i]);
out:
	lg_node_close(p);
	lg_node_close(v);
	lg_node_close(w);
}

#define HONEST_HEIGHTS 16

/* The view of the honest chain's block at height h: a view is lost after
 * every fifth height, so three-chains are sometimes broken. */
static uint64_t honest_view(uint64_t h)
{
	return h + h / 5;
}

/* The height a branch ending at height top proves committed (the highest c
 * with c, c+1, c+2 in consecutive views and c+2 <= top), 0 if none. */
static uint64_t honest_committed(uint64_t top)
{
	for (uint64_t c = top >= 2 ? top - 2 : 0; c > 0; c--)
		if (honest_view(c) + 1 == honest_view(c + 1) && honest_view(c + 1) + 1 == honest_view(c + 2))
			return c;
	return 0;
}

/* An honest chain keeps committing under the rule: four replicas propose in
 * turn, each commits what the three-chain rule gives it once it processes
 * the QC of the block a proposal extends, and replica 3 applies its commits
 * one height late. Each proposal pins the height its branch proves
 * committed (the proposer's own if it is behind), gets a quorum of votes
 * (its proposer's and n-f-1 others), the laggard's proposals included; in
 * the end every replica has committed every block with the same roots and
 * none diverged. */
static void test_honest_chain_commits(void)
{
	lg_node *r[NREP] = {0};
	char name[32];
	int ok = 1;
	for (int i = 0; i < NREP; i++) {
		snprintf(name, sizeof(name), "r8-%d", i);
		r[i] = open_node(i, name);
		ok = ok && r[i];
	}
	if (!ok)
		goto out;
	static uint8_t pl[HONEST_HEIGHTS + 1][1 << 14];
	static cm_block b[HONEST_HEIGHTS + 1];
	Muri__V1__SignedTransaction s[HONEST_HEIGHTS + 1];
	cm_block_genesis(&b[0]);
	int quorum_ok = 1, laggard_accepted = 1, pins_ok = 1;
	for (uint64_t h = 1; h <= HONEST_HEIGHTS; h++) {
		for (int i = 0; i < NREP; i++) {
			uint64_t upto = honest_committed(i == 3 ? h - 2 + (h < 2) : h - 1);
			while (r[i]->height < upto)
				TAP_EQ(commit(r[i], &b[r[i]->height + 1]), CM_OK);
		}
		int prop = (int)(h % NREP);
		uint8_t th[CM_HASH_BYTES];
		muri__v1__signed_transaction__init(&s[h]);
		signed_transfer(&s[h], h - 1, 1, th);
		pool_add(r[prop], &s[h], th, h - 1);
		size_t len = propose(r[prop], &b[h - 1], honest_view(h), pl[h], sizeof(pl[h]));
		uint64_t want = honest_committed(h - 1);
		if (want > r[prop]->height)
			want = r[prop]->height;
		pins_ok = pins_ok && pin_of(pl[h], len, NULL) == want;
		make_block(&b[h], &b[h - 1], honest_view(h), (uint32_t)prop, pl[h], len);
		int votes = 1;
		for (int i = 0; i < NREP; i++) {
			TAP_EQ(store(r[i], &b[h]), CM_OK);
			if (i != prop)
				votes += validate(r[i], &b[h - 1], &b[h]) == CM_OK;
		}
		quorum_ok = quorum_ok && votes >= NREP - 1;
		if (prop == 3)
			laggard_accepted = laggard_accepted && votes == NREP;
	}
	TAP_CHECK(pins_ok);
	TAP_CHECK(quorum_ok);
	TAP_CHECK(laggard_accepted);
	for (int i = 0; i < NREP; i++) {
		while (r[i]->height < HONEST_HEIGHTS)
			TAP_EQ(commit(r[i], &b[r[i]->height + 1]), CM_OK);
		TAP_EQ(r[i]->height, HONEST_HEIGHTS);
		TAP_EQ(r[i]->txs_committed, HONEST_HEIGHTS);
		TAP_EQ(lg_node_diverged(r[i], NULL, 0), 0);
		TAP_CHECK(memcmp(r[i]->root, r[0]->root, CM_HASH_BYTES) == 0);
	}
	TAP_EQ(balance(r[0], K_TO), HONEST_HEIGHTS);
	for (uint64_t h = 1; h <= HONEST_HEIGHTS; h++)
		lg_tx_signed_clear(&s[h]);
out:
	for (int i = 0; i < NREP; i++)
		lg_node_close(r[i]);
}

/* Relayed transactions: verified like any other before they enter the
 * mempool, deduplicated by hash, never relayed again. */
static void test_relay_admission(void)
{
	lg_node *p = open_node(0, "r5-p");
	if (!p)
		return;
	lg_net_stop(p->net); /* what would be relayed stays queued, countable */
	Muri__V1__SignedTransaction good = MURI__V1__SIGNED_TRANSACTION__INIT, bad = MURI__V1__SIGNED_TRANSACTION__INIT;
	uint8_t hg[CM_HASH_BYTES], hb[CM_HASH_BYTES], sig[CM_SIG_BYTES];
	signed_transfer(&good, 0, 5, hg);
	signed_transfer(&bad, 1, 5, hb);
	memcpy(sig, bad.signature.data, CM_SIG_BYTES);
	bad.signature.data[3] ^= 1;
	Muri__V1__SignedTransaction *batch[3] = {&good, &bad, &good};
	lg_node_relay_admit(p, 2, batch, 3);
	TAP_EQ(lg_mempool_count(p->mp), 1);
	TAP_EQ(lg_mempool_contains(p->mp, hg), 1);
	TAP_EQ(lg_mempool_contains(p->mp, hb), 0);
	lg_node_relay_admit(p, 3, batch, 1); /* again, from another peer */
	TAP_EQ(lg_mempool_count(p->mp), 1);
	lg_net_stats st;
	lg_net_get_stats(p->net, &st);
	TAP_EQ(st.relay_queued, 0); /* nothing relayed onwards */
	TAP_EQ(st.relay_dropped, 0);
	/* the inbox of Relay calls holds at most relay_inbox batches */
	for (int i = 0; i < 10; i++)
		lg_node_on_relay(p, 1, batch, 1);
	TAP_EQ(p->rlen, 4);
	TAP_EQ(p->relay_inbox_dropped, 6);
	lg_tx_signed_clear(&good);
	lg_tx_signed_clear(&bad);
	lg_node_close(p);
}

/* A proposal with ntx fresh signed transfers for view, by proposer, its
 * proposal signature made with K[signer], handed to lg_node_preverify as an
 * inbound message; returns how many transactions were checked in full. */
static uint64_t preverify_once(lg_node *n, uint64_t view, uint32_t proposer, int signer, uint64_t *nonce)
{
	enum { NTX = 2 };
	Muri__V1__SignedTransaction s[NTX], *ps[NTX];
	uint8_t th[CM_HASH_BYTES];
	for (int i = 0; i < NTX; i++) {
		muri__v1__signed_transaction__init(&s[i]);
		signed_transfer(&s[i], (*nonce)++, 1, th);
		ps[i] = &s[i];
	}
	Muri__V1__BlockBody body = MURI__V1__BLOCK_BODY__INIT;
	body.txs = ps;
	body.n_txs = NTX;
	static uint8_t pl[1 << 14], msg[1 << 15];
	size_t plen = muri__v1__block_body__pack(&body, pl);
	cm_block g;
	cm_block_genesis(&g);
	lg_hs_msg m;
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_PROPOSAL;
	make_block(&m.u.proposal.block, &g, view, proposer, pl, plen);
	uint8_t tag[CM_HASH_BYTES], d[CM_HASH_BYTES];
	cm_chain_tag(tag, CHAIN);
	cm_vote_digest(d, tag, view, m.u.proposal.block.hash);
	cm_sign(&K[signer], m.u.proposal.sig, d, sizeof(d));
	size_t len = 0;
	TAP_EQ(lg_hs_msg_encode(&m, msg, sizeof(msg), &len), CM_OK);
	uint64_t before = lg_node_sig_checks(n);
	lg_node_preverify(n, msg, len);
	for (int i = 0; i < NTX; i++)
		lg_tx_signed_clear(&s[i]);
	return lg_node_sig_checks(n) - before;
}

/* An inbound proposal's transactions are verified ahead of the consensus
 * thread only once it passed the cheap checks: its proposer leads its view,
 * the view is near this replica's, its own signature verifies, and no
 * proposal of that view was pre-verified already. */
static void test_preverify_after_cheap_checks(void)
{
	lg_node *v = open_node(1, "r9-v");
	if (!v)
		return;
	pthread_mutex_lock(&v->cmu);
	v->view = 20;
	pthread_mutex_unlock(&v->cmu);
	uint64_t nonce = 0;
	TAP_EQ(preverify_once(v, 20, 0, 0, &nonce), 2);  /* the leader of the current view */
	TAP_EQ(preverify_once(v, 21, 0, 0, &nonce), 0);  /* not view 21's leader */
	TAP_EQ(preverify_once(v, 12, 0, 0, &nonce), 0);  /* stale */
	TAP_EQ(preverify_once(v, 20 + FUTURE_VIEWS + 1, 1, 1, &nonce), 0); /* too far ahead */
	TAP_EQ(preverify_once(v, 24, 0, 1, &nonce), 0);  /* signed by another replica */
	TAP_EQ(preverify_once(v, 24, 0, 0, &nonce), 2);
	TAP_EQ(preverify_once(v, 24, 0, 0, &nonce), 0);  /* a second proposal of view 24 */
	TAP_EQ(preverify_once(v, 17, 1, 1, &nonce), 2);  /* a little behind: still useful */
	lg_node_close(v);
}

int main(void)
{
	TAP_CHECK(cm_crypto_init() == CM_OK);
	TAP_CHECK(mkdtemp(tmpdir) != NULL);
	cm_log_set_level(CM_LOG_ERROR);
	for (int i = 0; i < NKEYS; i++) {
		uint8_t seed[CM_SEED_BYTES];
		memset(seed, 0x40 + i, sizeof(seed));
		cm_keypair_from_seed(&K[i], seed);
	}
	snprintf(genesis_path, sizeof(genesis_path), "%s/genesis.txt", tmpdir);
	write_genesis(0);
	TAP_RUN(test_resigned_body);
	TAP_RUN(test_unsigned_noop_after_restart);
	TAP_RUN(test_state_root_in_blocks);
	TAP_RUN(test_block_limit_from_state);
	TAP_RUN(test_relay_admission);
	TAP_RUN(test_proposal_follows_its_branch);
	TAP_RUN(test_unchecked_pin_refused);
	TAP_RUN(test_honest_chain_commits);
	TAP_RUN(test_preverify_after_cheap_checks);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
