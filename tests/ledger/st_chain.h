/* The state machine's test harness, shared by the tests of
 * tests/ledger/test_state*.c: deterministic keys, genesis text, a chain
 * (lg_state on a temporary store) that applies hand-built blocks, tx
 * builders and checks of tx outcomes. Header-only, since tap.h keeps its
 * counters per translation unit; include it once per test program. */
#ifndef ST_CHAIN_H
#define ST_CHAIN_H

#include "tap.h"
#include "cm_bytes.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "lg_genesis.h"
#include "lg_state.h"
#include "lg_store.h"
#include "lg_tx.h"

#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wunused-function"

#define CHAIN "test-chain"
#define NKEYS 200
#define K_REPLICA 199
#define K_GATEWAY 198
#define K_PROPOSER 197
#define K_ACC0 100   /* plain accounts: 100..149 */
#define IX_BALANCE 1000000ull

static char tmpdir[] = "/tmp/muri-test-state-XXXXXX";
static cm_keypair K[NKEYS];
static int quiet_apply;      /* set while failures are expected */
static int corrupt_root_sig; /* add_commit_root signs wrongly */

/* ---- small helpers ---- */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t xs_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static int key_index(const uint8_t *pk)
{
	for (int i = 0; i < NKEYS; i++)
		if (memcmp(K[i].pk, pk, CM_PK_BYTES) == 0)
			return i;
	return -1;
}

/* ---- genesis text ---- */

typedef struct gtext {
	char s[1 << 16];
	size_t n;
} gtext;

static void gl(gtext *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void gl(gtext *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g->n += (size_t)vsnprintf(g->s + g->n, sizeof(g->s) - g->n, fmt, ap);
	va_end(ap);
	g->n += (size_t)snprintf(g->s + g->n, sizeof(g->s) - g->n, "\n");
}

static const char *hexkey(int k, char buf[65])
{
	cm_hex(buf, K[k].pk, CM_PK_BYTES);
	return buf;
}

static void g_base(gtext *g)
{
	char h[65];
	g->n = 0;
	gl(g, "# test genesis");
	gl(g, "chain_id = " CHAIN);
	gl(g, "genesis_time_ms = 1700000000000");
	gl(g, "replica = %s 127.0.0.1:7100", hexkey(K_REPLICA, h));
	gl(g, "gateway = %s", hexkey(K_GATEWAY, h));
	gl(g, "account = %s %llu", hexkey(K_GATEWAY, h), 1000ull);
}

static void g_account(gtext *g, int k, uint64_t bal)
{
	char h[65];
	gl(g, "account = %s %llu", hexkey(k, h), (unsigned long long)bal);
}

static void g_indexer(gtext *g, int k, uint64_t stake)
{
	char h[65];
	gl(g, "indexer = %s 127.0.0.1:%d %llu %llu", hexkey(k, h), 7200 + k, 1ull << 30,
	   (unsigned long long)stake);
	g_account(g, k, IX_BALANCE);
}

static void g_param(gtext *g, const char *name, long long v)
{
	gl(g, "param.%s = %lld", name, v);
}

/* ---- chains and blocks ---- */

typedef struct tchain {
	lg_state *st;
	lg_store *s;
	char path[300];
	uint64_t beacon_seed;
	int proposer; /* key index, or -1 to burn fees */
} tchain;

static lg_genesis *parse_gen(const gtext *g)
{
	lg_genesis *gen = NULL;
	char err[256];
	int rc = lg_genesis_parse(g->s, g->n, &gen, err, sizeof(err));
	if (rc != CM_OK)
		printf("# genesis: %s\n", err);
	return gen;
}

static int chain_open(tchain *c, const char *name, const gtext *g)
{
	char err[256];
	lg_genesis *gen = g ? parse_gen(g) : NULL;
	int rc;
	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s/%s.db", tmpdir, name);
	c->beacon_seed = 7;
	c->proposer = K_PROPOSER;
	rc = lg_state_open(&c->st, c->path, gen, err, sizeof(err));
	lg_genesis_free(gen);
	if (rc != CM_OK) {
		printf("# open %s: %s\n", name, err);
		return rc;
	}
	c->s = lg_state_store(c->st);
	return CM_OK;
}

static void chain_close(tchain *c)
{
	lg_state_close(c->st);
	c->st = NULL;
	c->s = NULL;
}

static int chain_reopen(tchain *c)
{
	char err[256];
	int rc;
	lg_state_close(c->st);
	rc = lg_state_open(&c->st, c->path, NULL, err, sizeof(err));
	if (rc != CM_OK)
		printf("# reopen: %s\n", err);
	c->s = rc == CM_OK ? lg_state_store(c->st) : NULL;
	return rc;
}

typedef struct tblock {
	Muri__V1__SignedTransaction **tx;
	int *sender; /* key index of each tx */
	size_t n, cap;
} tblock;

static void tb_push(tblock *b, Muri__V1__SignedTransaction *stx, int sender)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->tx = realloc(b->tx, b->cap * sizeof(*b->tx));
		b->sender = realloc(b->sender, b->cap * sizeof(*b->sender));
	}
	b->tx[b->n] = stx;
	b->sender[b->n++] = sender;
}

/* Signs t with key k and appends it; hash gets the tx hash unless NULL. */
static void tb_add(tblock *b, const Muri__V1__Transaction *t, int k, uint8_t *hash)
{
	Muri__V1__SignedTransaction *stx = malloc(sizeof(*stx));
	int rc = lg_tx_sign(t, &K[k], stx, hash);
	TAP_EQ(rc, CM_OK);
	tb_push(b, stx, k);
}

static void tb_clear(tblock *b)
{
	for (size_t i = 0; i < b->n; i++) {
		lg_tx_signed_clear(b->tx[i]);
		free(b->tx[i]);
	}
	free(b->tx);
	free(b->sender);
	memset(b, 0, sizeof(*b));
}

static void beacon_of(const tchain *c, uint64_t h, uint8_t out[32])
{
	uint8_t in[16];
	for (int i = 0; i < 8; i++) {
		in[i] = (uint8_t)(c->beacon_seed >> (8 * i));
		in[8 + i] = (uint8_t)(h >> (8 * i));
	}
	cm_hash(out, CM_DOM_TEST, in, sizeof(in));
}

static int tb_apply_flags(tchain *c, const tblock *b, unsigned flags)
{
	lg_block_in in;
	uint8_t header[16] = "header";
	memset(&in, 0, sizeof(in));
	in.height = lg_state_height(c->st) + 1;
	memcpy(header + 8, &in.height, sizeof(in.height));
	cm_hash(in.hash, CM_DOM_BLOCK, header, sizeof(header));
	beacon_of(c, in.height, in.beacon);
	if (c->proposer >= 0)
		memcpy(in.proposer, K[c->proposer].pk, CM_PK_BYTES);
	in.header = header;
	in.header_len = sizeof(header);
	in.payload = (const uint8_t *)"payload";
	in.payload_len = 7;
	in.qc = (const uint8_t *)"qc";
	in.qc_len = 2;
	in.txs = b->tx;
	in.ntxs = b->n;
	int rc = lg_state_apply(c->st, &in, flags, NULL);
	if (rc != CM_OK && !quiet_apply)
		printf("# apply: %s\n", lg_state_errmsg(c->st));
	return rc;
}

static int tb_apply(tchain *c, const tblock *b)
{
	return tb_apply_flags(c, b, 0);
}

/* Applies b to c, then empties b. */
static int commit(tchain *c, tblock *b)
{
	int rc = tb_apply(c, b);
	tb_clear(b);
	return rc;
}

/* Applies empty blocks up to height h. */
static void advance_to(tchain *c, uint64_t h)
{
	tblock b = {0};
	while (lg_state_height(c->st) < h)
		if (tb_apply(c, &b) != CM_OK)
			break;
}

/* The next nonce of k on c, counting k's txs waiting in b. */
static uint64_t nonce_of(tchain *c, const tblock *b, int k)
{
	lg_account a;
	uint64_t n = lg_store_account_get(c->s, K[k].pk, &a) == CM_OK ? a.nonce : 0;
	for (size_t i = 0; b && i < b->n; i++)
		n += b->sender[i] == k;
	return n;
}

static void tx_base(Muri__V1__Transaction *t, int k, uint64_t nonce, uint64_t fee)
{
	muri__v1__transaction__init(t);
	t->chain_id = (char *)CHAIN;
	t->sender.data = K[k].pk;
	t->sender.len = CM_PK_BYTES;
	t->nonce = nonce;
	t->fee = fee;
}

static void add_transfer(tchain *c, tblock *b, int from, int to, uint64_t amount, uint64_t fee,
			 uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
	tx_base(&t, from, nonce_of(c, b, from), fee);
	tr.to.data = K[to].pk;
	tr.to.len = CM_PK_BYTES;
	tr.amount = amount;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	tb_add(b, &t, from, hash);
}

static void add_stake(tchain *c, tblock *b, int k, uint64_t amount, int unstake, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__Stake s = MURI__V1__STAKE__INIT;
	Muri__V1__Unstake u = MURI__V1__UNSTAKE__INIT;
	tx_base(&t, k, nonce_of(c, b, k), 1);
	if (unstake) {
		u.amount = amount;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_UNSTAKE;
		t.unstake = &u;
	} else {
		s.amount = amount;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_STAKE;
		t.stake = &s;
	}
	tb_add(b, &t, k, hash);
}

static void add_register(tchain *c, tblock *b, int k, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__RegisterIndexer r = MURI__V1__REGISTER_INDEXER__INIT;
	char addr[32];
	snprintf(addr, sizeof(addr), "10.0.0.%d:7200", k % 250);
	tx_base(&t, k, nonce_of(c, b, k), 1);
	r.address = addr;
	r.capacity_bytes = 1 << 30;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REGISTER_INDEXER;
	t.register_indexer = &r;
	tb_add(b, &t, k, hash);
}

static void add_create(tchain *c, tblock *b, int k, const char *name, uint32_t fragments,
		       uint32_t replication, uint64_t deposit, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__CreateMagu m = MURI__V1__CREATE_MAGU__INIT;
	tx_base(&t, k, nonce_of(c, b, k), 1);
	m.name = (char *)name;
	m.dimension = 128;
	m.metric = MURI__V1__METRIC__L2;
	m.fragments = fragments;
	m.replication = replication;
	m.deposit = deposit;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU;
	t.create_magu = &m;
	tb_add(b, &t, k, hash);
}

/* A failover report of key k: its log has log_size entries, the last of
 * last_epoch; the root stands for that log (the ledger keeps it, never
 * checks it against one). */
static void add_failover(tchain *c, tblock *b, int k, const char *magu, uint32_t frag,
			 uint64_t epoch, uint64_t log_size, uint64_t last_epoch, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__FailoverRequest f = MURI__V1__FAILOVER_REQUEST__INIT;
	static uint8_t root[CM_HASH_BYTES];
	uint8_t rb[16];
	cm_put_be64(rb, log_size);
	cm_put_be64(rb + 8, last_epoch);
	cm_hash(root, CM_DOM_TEST, rb, sizeof(rb));
	tx_base(&t, k, nonce_of(c, b, k), 1);
	f.magu = (char *)magu;
	f.fragment = frag;
	f.epoch = epoch;
	f.log_size = log_size;
	f.last_epoch = last_epoch;
	f.root.data = root;
	f.root.len = sizeof(root);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_FAILOVER;
	t.failover = &f;
	tb_add(b, &t, k, hash);
}

/* A CommitRoot signed by key `signer`, sent by it, with the consistency
 * proof of log from size `from` (the committed size) to `size`. */
static void add_commit_root(tchain *c, tblock *b, int signer, const char *magu, uint32_t frag,
			    const cm_merkle *log, uint64_t from, uint64_t size, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__CommitRoot cr = MURI__V1__COMMIT_ROOT__INIT;
	Muri__V1__SignedRoot r = MURI__V1__SIGNED_ROOT__INIT;
	uint8_t root[32], d[32], sig[64];
	static cm_merkle_path path;
	TAP_EQ(cm_merkle_root(log, size, root), CM_OK);
	path.len = 0;
	if (from && from < size)
		TAP_EQ(cm_merkle_consistency(log, from, size, &path), CM_OK);
	r.magu = (char *)magu;
	r.fragment = frag;
	r.size = size;
	r.root.data = root;
	r.root.len = 32;
	r.signer.data = K[signer].pk;
	r.signer.len = 32;
	r.chain_id = (char *)CHAIN;
	lg_fragment fr;
	r.epoch = lg_store_fragment_get(c->s, magu, frag, &fr) == CM_OK ? fr.epoch : 1;
	TAP_EQ(lg_root_digest(&r, d), CM_OK);
	cm_sign(&K[signer], sig, d, 32);
	if (corrupt_root_sig)
		sig[0] ^= 1;
	r.signature.data = sig;
	r.signature.len = 64;
	cr.root = &r;
	cr.consistency_proof.data = path.hash;
	cr.consistency_proof.len = path.len * 32;
	tx_base(&t, signer, nonce_of(c, b, signer), 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_COMMIT_ROOT;
	t.commit_root = &cr;
	tb_add(b, &t, signer, hash);
}

static void add_propose(tchain *c, tblock *b, int k, const char *param, int64_t value,
			uint64_t at, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__Propose p = MURI__V1__PROPOSE__INIT;
	tx_base(&t, k, nonce_of(c, b, k), 1);
	p.param = (char *)param;
	p.value = value;
	p.apply_height = at;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_PROPOSE;
	t.propose = &p;
	tb_add(b, &t, k, hash);
}

static void add_vote(tchain *c, tblock *b, int k, uint64_t id, int yes, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__VoteProposal v = MURI__V1__VOTE_PROPOSAL__INIT;
	tx_base(&t, k, nonce_of(c, b, k), 1);
	v.proposal_id = id;
	v.yes = yes;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_VOTE;
	t.vote = &v;
	tb_add(b, &t, k, hash);
}

/* The state and message of a tx; TX_UNKNOWN if not indexed. */
static int tx_state(tchain *c, const uint8_t hash[32], char *msg, size_t n)
{
	lg_txrec r;
	if (lg_store_tx_get(c->s, hash, &r) != CM_OK)
		return MURI__V1__TX_STATE__TX_UNKNOWN;
	if (msg)
		snprintf(msg, n, "%s", r.message);
	return r.state;
}

/* Checks that a tx failed and that its message contains want. */
#define TAP_FAILED(c, hash, want)                                                         \
	do {                                                                              \
		char msg_[LG_MSG_MAX] = "";                                               \
		TAP_EQ(tx_state(c, hash, msg_, sizeof(msg_)), MURI__V1__TX_STATE__TX_FAILED); \
		if (!strstr(msg_, want)) {                                                \
			printf("# message \"%s\" lacks \"%s\"\n", msg_, want);            \
			TAP_CHECK(strstr(msg_, want));                                    \
		}                                                                         \
	} while (0)

#define TAP_COMMITTED(c, hash)                                                              \
	do {                                                                                \
		char msg_[LG_MSG_MAX] = "";                                                 \
		int st_ = tx_state(c, hash, msg_, sizeof(msg_));                            \
		if (st_ != MURI__V1__TX_STATE__TX_COMMITTED)                                \
			printf("# not committed: \"%s\"\n", msg_);                          \
		TAP_EQ(st_, MURI__V1__TX_STATE__TX_COMMITTED);                              \
	} while (0)

static uint64_t balance(tchain *c, int k)
{
	lg_account a;
	return lg_store_account_get(c->s, K[k].pk, &a) == CM_OK ? a.balance : 0;
}

static lg_account account(tchain *c, int k)
{
	lg_account a;
	memset(&a, 0, sizeof(a));
	lg_store_account_get(c->s, K[k].pk, &a);
	return a;
}

static void digest(tchain *c, uint8_t out[32])
{
	TAP_EQ(lg_store_state_digest(c->s, out), CM_OK);
}

/* A copy of stx's body with an all-zero signature, malloc'd like lg_tx_sign's. */
static Muri__V1__SignedTransaction *forged_copy(const Muri__V1__SignedTransaction *stx)
{
	Muri__V1__SignedTransaction *f = malloc(sizeof(*f));
	muri__v1__signed_transaction__init(f);
	f->body.len = stx->body.len;
	f->body.data = malloc(f->body.len);
	memcpy(f->body.data, stx->body.data, f->body.len);
	f->signature.len = 64;
	f->signature.data = calloc(1, 64);
	return f;
}

/* A chain with indexers 0..n-1, stake[i] each (0 = 1000 * (i + 1)). */
static int open_indexers(tchain *c, const char *name, int n, const uint64_t *stake, gtext *g,
			 const char *const *extra)
{
	g_base(g);
	for (int i = 0; i < n; i++)
		g_indexer(g, i, stake ? stake[i] : 1000u * (unsigned)(i + 1));
	g_account(g, K_ACC0, 100000000);
	for (int i = 0; extra && extra[i]; i++)
		gl(g, "%s", extra[i]);
	return chain_open(c, name, g);
}

static cm_merkle *make_log(uint64_t n, const char *tag)
{
	cm_merkle *log;
	char leaf[64];
	if (cm_merkle_new(&log, &cm_merkle_blake2b) != CM_OK)
		return NULL;
	for (uint64_t i = 0; i < n; i++) {
		int len = snprintf(leaf, sizeof(leaf), "%s-%llu", tag, (unsigned long long)i);
		cm_merkle_append(log, leaf, (size_t)len);
	}
	return log;
}

/* Before the tests: crypto, the temporary directory, the keys. */
static int st_setup(void)
{
	if (cm_crypto_init() != CM_OK || !mkdtemp(tmpdir))
		return -1;
	for (int i = 0; i < NKEYS; i++) {
		uint8_t seed[CM_SEED_BYTES] = {0x42, (uint8_t)i, (uint8_t)(i >> 8)};
		cm_keypair_from_seed(&K[i], seed);
	}
	return 0;
}

/* After them: removes the stores if every test passed; returns tap_done(). */
static int st_finish(void)
{
	int rc = tap_done();
	char cmd[300];
	if (rc == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
	} else {
		printf("# stores kept in %s\n", tmpdir);
	}
	return rc;
}

#endif
