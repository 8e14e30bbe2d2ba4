/* A ledger replica: the glue between the consensus core and everything
 * with I/O. One thread owns the core (lg_hs is not thread-safe) and the
 * writer side of the state; RPC threads hand it messages through a bounded
 * inbox, add transactions to the mempool, and answer queries from a pool of
 * read-only SQLite connections. A fetch thread fetches missing blocks from
 * peers so the core never blocks on the network.
 *
 * Block payloads are muri.v1.BlockBody messages: a timestamp, the beacon
 * (DESIGN.md "Randomness": beacon = H(parent beacon || the proposer's
 * signature over (height, parent beacon)); ed25519 is deterministic, so a
 * proposer can only withhold a block, not grind its beacon) and the signed
 * transactions, which execute when the block commits. A replica votes only
 * for payloads whose beacon and transaction signatures verify. */
#include "lg_node.h"
#include "cm_arena.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_merkle.h"
#include "cm_service.h"
#include "consensus.pb-c.h"
#include "ledger.pb-c.h"
#include "lg_blocks.h"
#include "lg_genesis.h"
#include "lg_hotstuff.h"
#include "lg_mempool.h"
#include "lg_net.h"
#include "lg_state.h"
#include "lg_store.h"
#include "lg_tx.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_MAX 512
#define FETCH_SLOTS 16          /* distinct block requests waiting for the fetcher */
#define FETCH_BATCH 64          /* blocks per FetchBlocks call */
#define BEACON_CACHE 64         /* recent (block hash -> beacon, time) */
#define VCACHE_SLOTS (1u << 18) /* verified transaction signatures remembered (8 MiB) */
#define PRUNE_EVERY 64          /* commits between prunes of the block tree */
#define STALE_MS 3000           /* a proposed transaction not committed by then is offered again */
#define CLOCK_SKEW_MS 10000     /* how far ahead of ours a proposer's clock may be */
#define FOLLOW_POLL_MS 200

enum item_kind { ITEM_MSG, ITEM_BLOCK };

struct item {
	struct item *next;
	int kind;
	uint32_t from;
	size_t len;
	uint8_t bytes[];
};

struct fetch_req {
	int used;
	uint8_t hash[CM_HASH_BYTES];
	uint64_t have;
	uint32_t peer;
};

struct waiter {
	struct waiter *next;
	uint8_t hash[CM_HASH_BYTES];
	int done, state;
	uint64_t height;
	char message[LG_MSG_MAX];
};

struct beacon_entry {
	uint8_t hash[CM_HASH_BYTES];
	uint8_t beacon[CM_HASH_BYTES];
	uint64_t ts;
	int used;
};

struct lg_node {
	lg_node_opts o;
	char *data_dir;
	cm_keypair key;
	lg_genesis *genesis;
	uint32_t n, f, self;
	uint8_t (*pks)[CM_PK_BYTES];
	uint8_t genesis_beacon[CM_HASH_BYTES];

	lg_state *state;   /* consensus thread only (after open) */
	lg_blocks *blocks;
	lg_mempool *mp;
	lg_net *net;
	lg_hs *hs;         /* consensus thread only (after start) */

	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	lg_store **readers;
	uint8_t *reader_busy;
	uint32_t nreaders;

	pthread_t cthread, fthread;
	int started;
	atomic_int stopping;
	atomic_int poke;
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct item *qhead, *qtail;
	size_t qlen;
	uint64_t inbox_dropped;

	pthread_mutex_t fmu;
	pthread_cond_t fcv;
	struct fetch_req freq[FETCH_SLOTS];

	pthread_mutex_t cmu;       /* commit notifications */
	pthread_cond_t ccv;
	uint64_t height;           /* committed height */
	uint8_t root[CM_HASH_BYTES];
	uint64_t view;
	struct waiter *waiters;
	uint64_t txs_committed, txs_failed;

	pthread_mutex_t vmu;
	uint8_t (*vcache)[CM_HASH_BYTES];

	struct beacon_entry bc[BEACON_CACHE];
	uint64_t commits_since_prune;
	uint64_t last_requeue;

	int (*status_fn)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out);
	void *status_arg;
	cm_counter *m_blocks, *m_txs, *m_failed, *m_rejected;
	cm_gauge *m_height, *m_view, *m_mempool;
	cm_histogram *m_commit_wait;
};

/* ---- small helpers ------------------------------------------------------- */

static void hex32(char out[65], const uint8_t *b)
{
	cm_hex(out, b, 32);
}

static uint64_t hash64(const uint8_t *h)
{
	uint64_t v;
	memcpy(&v, h, sizeof(v));
	return v;
}

static void vcache_add(lg_node *n, const uint8_t h[CM_HASH_BYTES])
{
	pthread_mutex_lock(&n->vmu);
	memcpy(n->vcache[hash64(h) & (VCACHE_SLOTS - 1)], h, CM_HASH_BYTES);
	pthread_mutex_unlock(&n->vmu);
}

static int vcache_has(lg_node *n, const uint8_t h[CM_HASH_BYTES])
{
	pthread_mutex_lock(&n->vmu);
	int yes = memcmp(n->vcache[hash64(h) & (VCACHE_SLOTS - 1)], h, CM_HASH_BYTES) == 0;
	pthread_mutex_unlock(&n->vmu);
	return yes;
}

static lg_store *reader_get(lg_node *n)
{
	pthread_mutex_lock(&n->pool_mu);
	for (;;) {
		for (uint32_t i = 0; i < n->nreaders; i++)
			if (!n->reader_busy[i]) {
				n->reader_busy[i] = 1;
				pthread_mutex_unlock(&n->pool_mu);
				return n->readers[i];
			}
		pthread_cond_wait(&n->pool_cv, &n->pool_mu);
	}
}

static void reader_put(lg_node *n, lg_store *s)
{
	pthread_mutex_lock(&n->pool_mu);
	for (uint32_t i = 0; i < n->nreaders; i++)
		if (n->readers[i] == s)
			n->reader_busy[i] = 0;
	pthread_cond_signal(&n->pool_cv);
	pthread_mutex_unlock(&n->pool_mu);
}

static int replica_of(lg_node *n, const uint8_t pk[CM_PK_BYTES])
{
	for (uint32_t i = 0; i < n->n; i++)
		if (memcmp(n->pks[i], pk, CM_PK_BYTES) == 0)
			return (int)i;
	return -1;
}

/* Beacon and timestamp of a block: genesis's, the cache's, or its body's. */
static int beacon_of(lg_node *n, const lg_hs_block *b, uint8_t beacon[CM_HASH_BYTES], uint64_t *ts)
{
	if (b->height == 0) {
		memcpy(beacon, n->genesis_beacon, CM_HASH_BYTES);
		*ts = n->genesis->genesis_time_ms;
		return CM_OK;
	}
	for (int i = 0; i < BEACON_CACHE; i++)
		if (n->bc[i].used && memcmp(n->bc[i].hash, b->hash, CM_HASH_BYTES) == 0) {
			memcpy(beacon, n->bc[i].beacon, CM_HASH_BYTES);
			*ts = n->bc[i].ts;
			return CM_OK;
		}
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, b->payload_len, b->payload);
	if (!body || body->beacon.len != CM_HASH_BYTES) {
		if (body)
			muri__v1__block_body__free_unpacked(body, NULL);
		return CM_ERR_INVALID;
	}
	memcpy(beacon, body->beacon.data, CM_HASH_BYTES);
	*ts = body->timestamp_ms;
	muri__v1__block_body__free_unpacked(body, NULL);
	struct beacon_entry *e = &n->bc[hash64(b->hash) % BEACON_CACHE];
	memcpy(e->hash, b->hash, CM_HASH_BYTES);
	memcpy(e->beacon, beacon, CM_HASH_BYTES);
	e->ts = *ts;
	e->used = 1;
	return CM_OK;
}

static void beacon_digest(uint8_t out[CM_HASH_BYTES], uint64_t height, const uint8_t parent[CM_HASH_BYTES])
{
	uint8_t h[8];
	for (int i = 0; i < 8; i++)
		h[i] = (uint8_t)(height >> (56 - 8 * i));
	cm_hasher x;
	cm_hasher_init(&x, CM_DOM_BEACON);
	cm_hasher_update(&x, h, sizeof(h));
	cm_hasher_update(&x, parent, CM_HASH_BYTES);
	cm_hasher_final(&x, out);
}

static void beacon_next(uint8_t out[CM_HASH_BYTES], const uint8_t parent[CM_HASH_BYTES],
			const uint8_t sig[CM_SIG_BYTES])
{
	cm_hasher x;
	cm_hasher_init(&x, CM_DOM_BEACON);
	cm_hasher_update(&x, parent, CM_HASH_BYTES);
	cm_hasher_update(&x, sig, CM_SIG_BYTES);
	cm_hasher_final(&x, out);
}

/* Opens and checks a transaction. In the benchmark mode for unsigned no-ops,
 * a Noop's signature is not checked; every other payload's is. */
static int open_tx(lg_node *n, const Muri__V1__SignedTransaction *stx, lg_tx *tx, char *err, size_t errlen)
{
	if (!n->o.bench_unsigned_noops)
		return lg_tx_open(stx, n->genesis->chain_id, 0, tx, err, errlen);
	int rc = lg_tx_open(stx, n->genesis->chain_id, LG_TX_SKIP_SIG, tx, err, errlen);
	if (rc != CM_OK || tx->body->payload_case == MURI__V1__TRANSACTION__PAYLOAD_NOOP)
		return rc;
	if (cm_verify(tx->body->sender.data, stx->signature.data, tx->hash, CM_HASH_BYTES) != CM_OK) {
		lg_tx_close(tx);
		snprintf(err, errlen, "signature: does not verify for the sender");
		return CM_ERR_VERIFY;
	}
	return CM_OK;
}

/* ---- the consensus core's I/O --------------------------------------------- */

static void io_send(void *ctx, int to, const lg_hs_msg *msg)
{
	lg_node *n = ctx;
	size_t need = lg_hs_msg_size(msg), len;
	uint8_t *buf = malloc(need ? need : 1);
	if (buf && lg_hs_msg_encode(msg, buf, need, &len) == CM_OK)
		lg_net_send(n->net, to, buf, len);
	free(buf);
}

static int io_persist_safety(void *ctx, const lg_hs_safety *st)
{
	lg_node *n = ctx;
	size_t need = lg_hs_safety_size(st), len;
	uint8_t *buf = malloc(need ? need : 1);
	int rc = buf ? lg_hs_safety_encode(st, buf, need, &len) : CM_ERR_NOMEM;
	if (rc == CM_OK)
		rc = lg_store_put_safety(lg_state_store(n->state), buf, len);
	free(buf);
	return rc;
}

static int io_store_block(void *ctx, const lg_hs_block *b)
{
	lg_node *n = ctx;
	size_t need = lg_hs_block_size(b), len;
	uint8_t *buf = malloc(need ? need : 1);
	int rc = buf ? lg_hs_block_encode(b, buf, need, &len) : CM_ERR_NOMEM;
	if (rc == CM_OK)
		rc = lg_blocks_put(n->blocks, b->hash, b->height, buf, len);
	free(buf);
	return rc;
}

static void observe_tx(void *arg, uint64_t height, uint32_t index, const uint8_t hash[CM_HASH_BYTES],
		       Muri__V1__TxState state, const char *message)
{
	lg_node *n = arg;
	(void)index;
	if (state == MURI__V1__TX_STATE__TX_COMMITTED)
		n->txs_committed++;
	else
		n->txs_failed++;
	for (struct waiter *w = n->waiters; w; w = w->next)
		if (!w->done && memcmp(w->hash, hash, CM_HASH_BYTES) == 0) {
			w->done = 1;
			w->state = state;
			w->height = height;
			snprintf(w->message, sizeof(w->message), "%s", message ? message : "");
		}
}

static int io_commit(void *ctx, const lg_hs_block *b, const lg_hs_qc *qc)
{
	lg_node *n = ctx;
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, b->payload_len, b->payload);
	if (!body || body->beacon.len != CM_HASH_BYTES) {
		/* a committed block always had its payload validated */
		cm_error("commit_failed", "height=%llu reason=\"undecodable payload\"", (unsigned long long)b->height);
		if (body)
			muri__v1__block_body__free_unpacked(body, NULL);
		return CM_ERR_INTERNAL;
	}
	size_t blen = lg_hs_block_size(b), qlen = lg_hs_qc_size(qc), bl, ql;
	uint8_t *bbuf = malloc(blen ? blen : 1), *qbuf = malloc(qlen ? qlen : 1);
	uint8_t(*hashes)[CM_HASH_BYTES] = malloc((body->n_txs ? body->n_txs : 1) * CM_HASH_BYTES);
	int rc = bbuf && qbuf && hashes ? CM_OK : CM_ERR_NOMEM;
	if (rc == CM_OK)
		rc = lg_hs_block_encode(b, bbuf, blen, &bl);
	if (rc == CM_OK)
		rc = lg_hs_qc_encode(qc, qbuf, qlen, &ql);
	unsigned flags = LG_APPLY_SIGS_VERIFIED;
	for (size_t i = 0; rc == CM_OK && i < body->n_txs; i++) {
		lg_tx_hash(body->txs[i]->body.data, body->txs[i]->body.len, hashes[i]);
		if (!vcache_has(n, hashes[i]))
			flags = 0;
	}
	if (rc == CM_OK) {
		lg_block_in in = {
			.height = b->height,
			.beacon = {0},
			.header = bbuf,
			.header_len = bl,
			.qc = qbuf,
			.qc_len = ql,
			.txs = body->txs,
			.ntxs = body->n_txs,
		};
		memcpy(in.hash, b->hash, CM_HASH_BYTES);
		memcpy(in.beacon, body->beacon.data, CM_HASH_BYTES);
		if (b->proposer < n->n)
			memcpy(in.proposer, n->pks[b->proposer], CM_PK_BYTES);
		uint8_t root[CM_HASH_BYTES];
		pthread_mutex_lock(&n->cmu); /* the observer touches waiters */
		rc = lg_state_apply(n->state, &in, flags, root);
		if (rc == CM_OK) {
			n->height = b->height;
			memcpy(n->root, root, CM_HASH_BYTES);
			pthread_cond_broadcast(&n->ccv);
		}
		pthread_mutex_unlock(&n->cmu);
		if (rc != CM_OK)
			cm_error("commit_failed", "height=%llu error=\"%s\"", (unsigned long long)b->height,
				 lg_state_errmsg(n->state));
	}
	if (rc == CM_OK) {
		lg_mempool_remove(n->mp, (const uint8_t(*)[CM_HASH_BYTES])hashes, body->n_txs);
		cm_counter_add(n->m_blocks, 1);
		cm_counter_add(n->m_txs, body->n_txs);
		cm_gauge_set(n->m_height, (double)b->height);
		if (++n->commits_since_prune >= PRUNE_EVERY) {
			lg_blocks_prune(n->blocks, b->height);
			n->commits_since_prune = 0;
		}
	}
	free(bbuf);
	free(qbuf);
	free(hashes);
	muri__v1__block_body__free_unpacked(body, NULL);
	return rc;
}

static uint64_t committed_nonce(void *arg, const uint8_t sender[CM_PK_BYTES])
{
	lg_node *n = arg;
	lg_account a;
	if (lg_store_account_get(lg_state_store(n->state), sender, &a) == CM_OK)
		return a.nonce;
	return 0;
}

/* Appends field 4 (txs) entries: the encoded SignedTransactions as they came. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t i = 0;
	while (v >= 0x80) {
		p[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[i++] = (uint8_t)v;
	return i;
}

static int io_make_payload(void *ctx, const lg_hs_block *parent, uint64_t height, uint64_t view, uint8_t *buf,
			   size_t cap, size_t *len)
{
	lg_node *n = ctx;
	(void)view;
	/* an empty block only when an earlier one still waits for its commit */
	if (lg_mempool_count(n->mp) == 0 && parent->height <= n->height)
		return CM_ERR_STATE;
	uint8_t pbeacon[CM_HASH_BYTES], d[CM_HASH_BYTES];
	uint64_t pts;
	if (beacon_of(n, parent, pbeacon, &pts) != CM_OK)
		return CM_ERR_INVALID;
	Muri__V1__BlockBody body = MURI__V1__BLOCK_BODY__INIT;
	uint8_t sig[CM_SIG_BYTES], beacon[CM_HASH_BYTES];
	beacon_digest(d, height, pbeacon);
	cm_sign(&n->key, sig, d, sizeof(d));
	beacon_next(beacon, pbeacon, sig);
	uint64_t now = cm_wall_ms();
	body.timestamp_ms = now > pts ? now : pts;
	body.beacon.data = beacon;
	body.beacon.len = CM_HASH_BYTES;
	body.beacon_signature.data = sig;
	body.beacon_signature.len = CM_SIG_BYTES;
	size_t head = protobuf_c_message_get_packed_size(&body.base);
	if (head > cap)
		return CM_ERR_TOOBIG;
	protobuf_c_message_pack(&body.base, buf);
	size_t used = head;
	size_t max_txs = n->o.block_max_txs, budget = cap - head;
	if (budget > n->o.block_max_bytes)
		budget = n->o.block_max_bytes;
	lg_mempool_tx *txs = malloc(max_txs * sizeof(*txs));
	size_t k = txs ? lg_mempool_take(n->mp, max_txs, budget > 11 * max_txs ? budget - 11 * max_txs : 0,
					 cm_now_ms(), committed_nonce, n, txs)
		       : 0;
	for (size_t i = 0; i < k; i++) {
		if (used + 1 + 10 + txs[i].len > cap)
			break; /* cannot happen with the budget above; stop rather than overflow */
		buf[used++] = 0x22; /* field 4, length-delimited */
		used += put_varint(buf + used, txs[i].len);
		memcpy(buf + used, txs[i].bytes, txs[i].len);
		used += txs[i].len;
	}
	if (txs)
		lg_mempool_release(n->mp, txs, k);
	free(txs);
	*len = used;
	return CM_OK;
}

static int io_validate_payload(void *ctx, const lg_hs_block *parent, const lg_hs_block *b)
{
	lg_node *n = ctx;
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, b->payload_len, b->payload);
	const char *why = NULL;
	uint8_t pbeacon[CM_HASH_BYTES], d[CM_HASH_BYTES], want[CM_HASH_BYTES];
	uint64_t pts;
	if (!body)
		why = "payload is not a BlockBody";
	else if (body->beacon.len != CM_HASH_BYTES || body->beacon_signature.len != CM_SIG_BYTES)
		why = "beacon fields have the wrong sizes";
	else if (body->n_txs > n->o.block_max_txs)
		why = "too many transactions";
	else if (b->proposer >= n->n || beacon_of(n, parent, pbeacon, &pts) != CM_OK)
		why = "unknown proposer or parent beacon";
	if (!why) {
		beacon_digest(d, b->height, pbeacon);
		beacon_next(want, pbeacon, body->beacon_signature.data);
		if (cm_verify(n->pks[b->proposer], body->beacon_signature.data, d, sizeof(d)) != CM_OK ||
		    memcmp(want, body->beacon.data, CM_HASH_BYTES) != 0)
			why = "beacon does not verify";
		else if (body->timestamp_ms < pts || body->timestamp_ms > cm_wall_ms() + CLOCK_SKEW_MS)
			why = "timestamp before its parent's or too far ahead";
	}
	uint8_t(*hashes)[CM_HASH_BYTES] = NULL;
	if (!why && body->n_txs) {
		hashes = malloc(body->n_txs * CM_HASH_BYTES);
		if (!hashes)
			why = "out of memory";
	}
	for (size_t i = 0; !why && i < body->n_txs; i++) {
		lg_tx_hash(body->txs[i]->body.data, body->txs[i]->body.len, hashes[i]);
		if (vcache_has(n, hashes[i]))
			continue;
		lg_tx tx;
		char err[ERR_MAX];
		if (open_tx(n, body->txs[i], &tx, err, sizeof(err)) != CM_OK) {
			why = "a transaction does not verify";
			break;
		}
		lg_tx_close(&tx);
		vcache_add(n, hashes[i]);
	}
	if (!why && body->n_txs)
		lg_mempool_mark_in_flight(n->mp, (const uint8_t(*)[CM_HASH_BYTES])hashes, body->n_txs, cm_now_ms());
	if (!why) {
		struct beacon_entry *e = &n->bc[hash64(b->hash) % BEACON_CACHE];
		memcpy(e->hash, b->hash, CM_HASH_BYTES);
		memcpy(e->beacon, body->beacon.data, CM_HASH_BYTES);
		e->ts = body->timestamp_ms;
		e->used = 1;
	} else {
		cm_counter_add(n->m_rejected, 1);
		cm_warn("payload_rejected", "height=%llu proposer=%u reason=\"%s\"", (unsigned long long)b->height,
			b->proposer, why);
	}
	free(hashes);
	if (body)
		muri__v1__block_body__free_unpacked(body, NULL);
	return why ? CM_ERR_VERIFY : CM_OK;
}

static void io_sign(void *ctx, const uint8_t digest[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	lg_node *n = ctx;
	cm_sign(&n->key, sig, digest, CM_HASH_BYTES);
}

static int io_verify(void *ctx, uint32_t replica, const uint8_t digest[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES])
{
	lg_node *n = ctx;
	if (replica >= n->n)
		return CM_ERR_INVALID;
	return cm_verify(n->pks[replica], sig, digest, CM_HASH_BYTES);
}

static uint64_t io_now(void *ctx)
{
	(void)ctx;
	return cm_now_ms();
}

static uint64_t io_random(void *ctx)
{
	(void)ctx;
	uint64_t r;
	randombytes_buf(&r, sizeof(r));
	return r;
}

static void io_request_block(void *ctx, const uint8_t hash[CM_HASH_BYTES], uint64_t have_height, uint32_t peer)
{
	lg_node *n = ctx;
	pthread_mutex_lock(&n->fmu);
	int slot = -1;
	for (int i = 0; i < FETCH_SLOTS; i++) {
		if (n->freq[i].used && memcmp(n->freq[i].hash, hash, CM_HASH_BYTES) == 0) {
			slot = -2;
			break;
		}
		if (!n->freq[i].used && slot == -1)
			slot = i;
	}
	if (slot >= 0) {
		n->freq[slot].used = 1;
		memcpy(n->freq[slot].hash, hash, CM_HASH_BYTES);
		n->freq[slot].have = have_height;
		n->freq[slot].peer = peer;
		pthread_cond_signal(&n->fcv);
	}
	pthread_mutex_unlock(&n->fmu);
}

/* ---- inbox and threads ------------------------------------------------------ */

static void enqueue(lg_node *n, int kind, uint32_t from, const uint8_t *bytes, size_t len)
{
	struct item *it = malloc(sizeof(*it) + len);
	if (!it)
		return;
	it->next = NULL;
	it->kind = kind;
	it->from = from;
	it->len = len;
	memcpy(it->bytes, bytes, len);
	pthread_mutex_lock(&n->qmu);
	if (n->qlen >= n->o.inbox_max) {
		n->inbox_dropped++;
		pthread_mutex_unlock(&n->qmu);
		free(it);
		return;
	}
	if (n->qtail)
		n->qtail->next = it;
	else
		n->qhead = it;
	n->qtail = it;
	n->qlen++;
	pthread_cond_signal(&n->qcv);
	pthread_mutex_unlock(&n->qmu);
}

static void on_net_message(void *arg, uint32_t from, const uint8_t *msg, size_t len)
{
	enqueue(arg, ITEM_MSG, from, msg, len);
}

static void *consensus_main(void *arg)
{
	lg_node *n = arg;
	uint64_t next_tick = cm_now_ms();
	while (!atomic_load(&n->stopping)) {
		pthread_mutex_lock(&n->qmu);
		while (!n->qhead && !atomic_load(&n->stopping) && !atomic_load(&n->poke)) {
			uint64_t now = cm_now_ms();
			if (now >= next_tick)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t wait = next_tick - now;
			ts.tv_nsec += (long)(wait % 1000) * 1000000L;
			ts.tv_sec += (time_t)(wait / 1000) + ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&n->qcv, &n->qmu, &ts);
		}
		struct item *list = n->qhead;
		n->qhead = n->qtail = NULL;
		n->qlen = 0;
		pthread_mutex_unlock(&n->qmu);
		while (list) {
			struct item *it = list;
			list = it->next;
			if (it->kind == ITEM_MSG) {
				lg_hs_on_message_bytes(n->hs, it->from, it->bytes, it->len);
			} else {
				lg_hs_block b;
				if (lg_hs_block_decode(it->bytes, it->len, &b) == CM_OK)
					lg_hs_on_block(n->hs, &b);
			}
			free(it);
		}
		uint64_t now = cm_now_ms();
		if (now >= next_tick || atomic_exchange(&n->poke, 0)) {
			lg_hs_tick(n->hs, now);
			next_tick = now + n->o.tick_ms;
			pthread_mutex_lock(&n->cmu);
			n->view = lg_hs_view(n->hs);
			pthread_mutex_unlock(&n->cmu);
			cm_gauge_set(n->m_view, (double)n->view);
			cm_gauge_set(n->m_mempool, (double)lg_mempool_count(n->mp));
			if (now - n->last_requeue >= 1000) {
				lg_mempool_requeue_stale(n->mp, now, STALE_MS, committed_nonce, n);
				n->last_requeue = now;
			}
		}
	}
	return NULL;
}

static void *fetch_main(void *arg)
{
	lg_node *n = arg;
	for (;;) {
		pthread_mutex_lock(&n->fmu);
		int slot = -1;
		while (!atomic_load(&n->stopping)) {
			for (int i = 0; i < FETCH_SLOTS && slot < 0; i++)
				if (n->freq[i].used)
					slot = i;
			if (slot >= 0)
				break;
			pthread_cond_wait(&n->fcv, &n->fmu);
		}
		if (atomic_load(&n->stopping)) {
			pthread_mutex_unlock(&n->fmu);
			return NULL;
		}
		struct fetch_req r = n->freq[slot];
		pthread_mutex_unlock(&n->fmu);

		/* committed blocks from have+1 on, then the wanted block and its
		 * ancestors by hash (lowest first to the core) */
		Muri__V1__FetchBlocksRequest req = MURI__V1__FETCH_BLOCKS_REQUEST__INIT;
		req.chain_id = n->genesis->chain_id;
		req.from_height = r.have + 1;
		req.max_blocks = FETCH_BATCH;
		Muri__V1__FetchBlocksResponse *resp = NULL;
		int found = 0;
		if (lg_net_fetch(n->net, r.peer, &req, &resp, 5000) == CM_OK) {
			for (size_t i = 0; i < resp->n_blocks; i++) {
				enqueue(n, ITEM_BLOCK, r.peer, resp->blocks[i].data, resp->blocks[i].len);
				lg_hs_block b;
				if (lg_hs_block_decode(resp->blocks[i].data, resp->blocks[i].len, &b) == CM_OK &&
				    memcmp(b.hash, r.hash, CM_HASH_BYTES) == 0)
					found = 1;
			}
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
		if (!found) {
			req.from_height = 0;
			req.block_hash.data = r.hash;
			req.block_hash.len = CM_HASH_BYTES;
			resp = NULL;
			if (lg_net_fetch(n->net, r.peer, &req, &resp, 5000) == CM_OK) {
				for (size_t i = resp->n_blocks; i-- > 0;)
					enqueue(n, ITEM_BLOCK, r.peer, resp->blocks[i].data, resp->blocks[i].len);
				protobuf_c_message_free_unpacked(&resp->base, NULL);
			}
		}
		pthread_mutex_lock(&n->fmu);
		n->freq[slot].used = 0;
		pthread_mutex_unlock(&n->fmu);
		/* the core asks again on its ticks if something is still missing */
	}
}

/* ---- FetchBlocks (served) ------------------------------------------------------ */

static int add_bytes(cm_rpc_call *call, ProtobufCBinaryData *v, const uint8_t *p, size_t len)
{
	v->data = cm_rpc_alloc(call, len ? len : 1);
	if (!v->data)
		return CM_ERR_NOMEM;
	memcpy(v->data, p, len);
	v->len = len;
	return CM_OK;
}

static int serve_fetch(void *arg, cm_rpc_call *call, const Muri__V1__FetchBlocksRequest *req,
		       Muri__V1__FetchBlocksResponse *resp)
{
	lg_node *n = arg;
	uint32_t max = req->max_blocks;
	resp->blocks = cm_rpc_alloc(call, max * sizeof(*resp->blocks));
	resp->commit_qcs = cm_rpc_alloc(call, max * sizeof(*resp->commit_qcs));
	if (!resp->blocks || !resp->commit_qcs)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	lg_store *rd = reader_get(n);
	int code = GRPC_STATUS_OK;
	if (req->block_hash.len == CM_HASH_BYTES) {
		uint8_t cur[CM_HASH_BYTES];
		memcpy(cur, req->block_hash.data, CM_HASH_BYTES);
		while (resp->n_blocks < max) {
			uint8_t *bytes = NULL;
			size_t len = 0;
			lg_block_rec rec;
			memset(&rec, 0, sizeof(rec));
			if (lg_blocks_get(n->blocks, cur, &bytes, &len) != CM_OK) {
				if (lg_store_get_block_by_hash(rd, cur, &rec) != CM_OK)
					break;
				bytes = (uint8_t *)rec.header;
				len = rec.header_len;
				rec.header = NULL;
			}
			lg_hs_block b;
			int ok = lg_hs_block_decode(bytes, len, &b) == CM_OK &&
				 add_bytes(call, &resp->blocks[resp->n_blocks], bytes, len) == CM_OK;
			if (ok) {
				resp->commit_qcs[resp->n_blocks].len = 0;
				resp->n_blocks++;
				memcpy(cur, b.parent, CM_HASH_BYTES);
			}
			free(bytes);
			lg_block_rec_clear(&rec);
			if (!ok || b.height <= 1)
				break;
		}
	} else if (req->block_hash.len == 0) {
		for (uint64_t h = req->from_height ? req->from_height : 1; resp->n_blocks < max; h++) {
			lg_block_rec rec;
			if (lg_store_get_block(rd, h, &rec) != CM_OK)
				break;
			int ok = add_bytes(call, &resp->blocks[resp->n_blocks], rec.header, rec.header_len) == CM_OK &&
				 add_bytes(call, &resp->commit_qcs[resp->n_blocks], rec.qc, rec.qc_len) == CM_OK;
			lg_block_rec_clear(&rec);
			if (!ok)
				break;
			resp->n_blocks++;
		}
	} else {
		code = cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "block_hash: must be 32 bytes or empty");
	}
	resp->n_commit_qcs = resp->n_blocks;
	reader_put(n, rd);
	return code;
}

/* ---- blocks for clients ---------------------------------------------------------- */

static int qc_to_pb(lg_node *n, const lg_hs_qc *qc, cm_arena *a, Muri__V1__QuorumCert **out)
{
	Muri__V1__QuorumCert *q = cm_arena_alloc(a, sizeof(*q));
	uint32_t k = lg_hs_qc_count(qc);
	ProtobufCBinaryData *signers = cm_arena_alloc(a, (k ? k : 1) * sizeof(*signers));
	ProtobufCBinaryData *sigs = cm_arena_alloc(a, (k ? k : 1) * sizeof(*sigs));
	uint8_t *hash = cm_arena_alloc(a, CM_HASH_BYTES);
	if (!q || !signers || !sigs || !hash)
		return CM_ERR_NOMEM;
	muri__v1__quorum_cert__init(q);
	q->view = qc->view;
	memcpy(hash, qc->block_hash, CM_HASH_BYTES);
	q->block_hash.data = hash;
	q->block_hash.len = CM_HASH_BYTES;
	for (uint32_t i = 0; i < n->n && i < LG_HS_MAX_REPLICAS; i++)
		if (qc->signers & (1ull << i)) {
			signers[q->n_signers].data = n->pks[i];
			signers[q->n_signers++].len = CM_PK_BYTES;
			sigs[q->n_signatures].data = (uint8_t *)qc->sigs[i];
			sigs[q->n_signatures++].len = CM_SIG_BYTES;
		}
	q->signers = signers;
	q->signatures = sigs;
	*out = q;
	return CM_OK;
}

/* The client form of the committed block at height, built in a (which must
 * outlive *out; rec's bytes are copied into it). */
static int block_to_pb(lg_node *n, lg_store *rd, uint64_t height, cm_arena *a, Muri__V1__Block **out)
{
	lg_block_rec rec;
	int rc = lg_store_get_block(rd, height, &rec);
	if (rc != CM_OK)
		return rc;
	uint8_t *bytes = cm_arena_alloc(a, rec.header_len ? rec.header_len : 1);
	lg_hs_qc *cqc = cm_arena_alloc(a, sizeof(*cqc));
	lg_hs_block *b = cm_arena_alloc(a, sizeof(*b));
	rc = bytes && cqc && b ? CM_OK : CM_ERR_NOMEM;
	if (rc == CM_OK) {
		memcpy(bytes, rec.header, rec.header_len);
		rc = lg_hs_block_decode(bytes, rec.header_len, b);
	}
	if (rc == CM_OK && rec.qc_len)
		rc = lg_hs_qc_decode(rec.qc, rec.qc_len, cqc);
	uint8_t state_root[CM_HASH_BYTES];
	memcpy(state_root, rec.state_root, CM_HASH_BYTES);
	size_t qc_len = rec.qc_len;
	lg_block_rec_clear(&rec);
	if (rc != CM_OK)
		return rc;
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(&a->pb, b->payload_len, b->payload);
	Muri__V1__Block *blk = cm_arena_alloc(a, sizeof(*blk));
	Muri__V1__BlockHeader *h = cm_arena_alloc(a, sizeof(*h));
	uint8_t *root = cm_arena_alloc(a, CM_HASH_BYTES), *txs_root = cm_arena_alloc(a, CM_HASH_BYTES);
	if (!body || !blk || !h || !root || !txs_root)
		return CM_ERR_NOMEM;
	muri__v1__block__init(blk);
	muri__v1__block_header__init(h);
	h->height = b->height;
	h->view = b->view;
	h->parent_hash.data = b->parent;
	h->parent_hash.len = CM_HASH_BYTES;
	if (qc_to_pb(n, &b->justify, a, &h->justify) != CM_OK)
		return CM_ERR_NOMEM;
	if (b->proposer < n->n) {
		h->proposer.data = n->pks[b->proposer];
		h->proposer.len = CM_PK_BYTES;
	}
	h->beacon = body->beacon;
	h->beacon_signature = body->beacon_signature;
	h->timestamp_ms = body->timestamp_ms;
	memcpy(root, state_root, CM_HASH_BYTES);
	h->state_root.data = root;
	h->state_root.len = CM_HASH_BYTES;
	/* txs_root: RFC 6962 root over the transaction hashes */
	cm_merkle *m = NULL;
	if (cm_merkle_new(&m, &cm_merkle_blake2b) == CM_OK) {
		for (size_t i = 0; i < body->n_txs; i++) {
			uint8_t th[CM_HASH_BYTES];
			lg_tx_hash(body->txs[i]->body.data, body->txs[i]->body.len, th);
			cm_merkle_append(m, th, CM_HASH_BYTES);
		}
		if (cm_merkle_root(m, cm_merkle_size(m), txs_root) == CM_OK) {
			h->txs_root.data = txs_root;
			h->txs_root.len = CM_HASH_BYTES;
		}
		cm_merkle_free(m);
	}
	blk->header = h;
	blk->txs = body->txs;
	blk->n_txs = body->n_txs;
	blk->hash.data = b->hash;
	blk->hash.len = CM_HASH_BYTES;
	if (qc_len && qc_to_pb(n, cqc, a, &blk->commit_qc) != CM_OK)
		return CM_ERR_NOMEM;
	*out = blk;
	return CM_OK;
}

/* ---- the Ledger service ------------------------------------------------------------ */

static void free_message(void *m)
{
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Hands a heap message from an lg_query_* to the call as its response. */
static int give(cm_rpc_call *call, int rc, void *msg, ProtobufCMessage **resp, const char *what)
{
	if (rc == CM_ERR_NOTFOUND)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s not found", what);
	if (rc != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot read %s: %s", what, cm_strerror(rc));
	cm_rpc_on_done(call, free_message, msg);
	*resp = msg;
	return GRPC_STATUS_OK;
}

/* Admits one signed transaction to the mempool: checks form, signature,
 * nonce and balance against committed state. Returns a gRPC status code and
 * writes why into msg; hash receives the tx hash once it is known. */
static int admit(lg_node *n, const Muri__V1__SignedTransaction *stx, uint8_t hash[CM_HASH_BYTES], char *msg,
		 size_t msglen)
{
	lg_tx tx;
	char err[ERR_MAX];
	int rc = open_tx(n, stx, &tx, err, sizeof(err));
	if (rc != CM_OK) {
		snprintf(msg, msglen, "%.400s", err);
		return rc == CM_ERR_VERIFY ? GRPC_STATUS_UNAUTHENTICATED
		       : rc == CM_ERR_TOOBIG ? GRPC_STATUS_RESOURCE_EXHAUSTED
					     : GRPC_STATUS_INVALID_ARGUMENT;
	}
	memcpy(hash, tx.hash, CM_HASH_BYTES);
	const Muri__V1__Transaction *t = tx.body;
	lg_store *rd = reader_get(n);
	lg_account acct;
	memset(&acct, 0, sizeof(acct));
	int have = lg_store_account_get(rd, t->sender.data, &acct) == CM_OK;
	reader_put(n, rd);
	uint64_t need = t->fee;
	if (t->payload_case == MURI__V1__TRANSACTION__PAYLOAD_TRANSFER && t->transfer)
		need += t->transfer->amount;
	char who[65];
	hex32(who, t->sender.data);
	int code = GRPC_STATUS_OK;
	if (t->nonce < acct.nonce) {
		code = GRPC_STATUS_FAILED_PRECONDITION;
		snprintf(msg, msglen, "nonce: %llu was already used by %s (next is %llu)", (unsigned long long)t->nonce, who,
			 (unsigned long long)acct.nonce);
	} else if (need > 0 && (!have || acct.balance < need)) {
		code = GRPC_STATUS_FAILED_PRECONDITION;
		snprintf(msg, msglen, "insufficient balance: %s has %llu, the transaction needs %llu", who,
			 (unsigned long long)acct.balance, (unsigned long long)need);
	}
	if (code == GRPC_STATUS_OK) {
		size_t len = protobuf_c_message_get_packed_size(&stx->base);
		uint8_t *bytes = malloc(len ? len : 1);
		if (!bytes) {
			code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			snprintf(msg, msglen, "out of memory");
		} else {
			protobuf_c_message_pack(&stx->base, bytes);
			vcache_add(n, tx.hash);
			rc = lg_mempool_add(n->mp, tx.hash, t->sender.data, t->nonce, bytes, len, acct.nonce);
			free(bytes);
			if (rc == CM_ERR_EXISTS) {
				code = GRPC_STATUS_ALREADY_EXISTS;
				snprintf(msg, msglen,
					 "duplicate: a transaction with this hash, or with nonce %llu from this sender, is pending",
					 (unsigned long long)t->nonce);
			} else if (rc == CM_ERR_STATE) {
				code = GRPC_STATUS_FAILED_PRECONDITION;
				snprintf(msg, msglen, "nonce: already used");
			} else if (rc == CM_ERR_TOOBIG) {
				code = GRPC_STATUS_RESOURCE_EXHAUSTED;
				snprintf(msg, msglen, "mempool full (mempool_max_txs, mempool_max_bytes or mempool_per_sender)");
			} else if (rc != CM_OK) {
				code = GRPC_STATUS_INTERNAL;
				snprintf(msg, msglen, "mempool: %s", cm_strerror(rc));
			}
		}
	}
	lg_tx_close(&tx);
	return code;
}

static void wake_consensus(lg_node *n)
{
	atomic_store(&n->poke, 1);
	pthread_mutex_lock(&n->qmu);
	pthread_cond_signal(&n->qcv);
	pthread_mutex_unlock(&n->qmu);
}

static int h_submit_batch(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__SubmitBatchRequest *req = (const Muri__V1__SubmitBatchRequest *)msg;
	if (req->n_txs < 1 || req->n_txs > 10000)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "txs: %zu, expected 1..10000", req->n_txs);
	Muri__V1__SubmitBatchResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__SubmitResult **res = cm_rpc_alloc(call, req->n_txs * sizeof(*res));
	if (!r || !res)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__submit_batch_response__init(r);
	for (size_t i = 0; i < req->n_txs; i++) {
		Muri__V1__SubmitResult *x = cm_rpc_alloc(call, sizeof(*x));
		uint8_t *h = cm_rpc_alloc(call, CM_HASH_BYTES);
		char why[ERR_MAX] = "";
		if (!x || !h)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		muri__v1__submit_result__init(x);
		x->code = (uint32_t)admit(n, req->txs[i], h, why, sizeof(why));
		x->tx_hash.data = h;
		x->tx_hash.len = CM_HASH_BYTES;
		x->message = cm_rpc_strdup(call, why);
		res[i] = x;
	}
	r->results = res;
	r->n_results = req->n_txs;
	wake_consensus(n);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int h_submit(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__SubmitRequest *req = (const Muri__V1__SubmitRequest *)msg;
	if (!req->tx)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "tx: required");
	if (req->timeout_ms > n->o.max_wait_ms)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "timeout_ms: %u is above the maximum %u",
				   req->timeout_ms, n->o.max_wait_ms);
	uint8_t hash[CM_HASH_BYTES];
	char why[ERR_MAX] = "";
	int code = admit(n, req->tx, hash, why, sizeof(why));
	if (code != GRPC_STATUS_OK)
		return cm_rpc_fail(call, code, "%s", why);
	wake_consensus(n);

	Muri__V1__SubmitResponse *r = cm_rpc_alloc(call, sizeof(*r));
	uint8_t *h = cm_rpc_alloc(call, CM_HASH_BYTES);
	if (!r || !h)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__submit_response__init(r);
	memcpy(h, hash, CM_HASH_BYTES);
	r->tx_hash.data = h;
	r->tx_hash.len = CM_HASH_BYTES;
	r->state = MURI__V1__TX_STATE__TX_PENDING;
	if (req->wait_commit) {
		struct waiter w;
		memset(&w, 0, sizeof(w));
		memcpy(w.hash, hash, CM_HASH_BYTES);
		uint64_t until = cm_now_ms() + (req->timeout_ms ? req->timeout_ms : 10000);
		uint64_t t0 = cm_now_ms();
		pthread_mutex_lock(&n->cmu);
		w.next = n->waiters;
		n->waiters = &w;
		while (!w.done && !atomic_load(&n->stopping) && cm_now_ms() < until && !cm_rpc_cancelled(call)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&n->ccv, &n->cmu, &ts);
		}
		for (struct waiter **p = &n->waiters; *p; p = &(*p)->next)
			if (*p == &w) {
				*p = w.next;
				break;
			}
		pthread_mutex_unlock(&n->cmu);
		if (w.done) {
			cm_histogram_observe(n->m_commit_wait, (double)(cm_now_ms() - t0) / 1000.0);
			r->state = w.state;
			r->height = w.height;
			r->message = cm_rpc_strdup(call, w.message);
		} else {
			return cm_rpc_fail(call, GRPC_STATUS_DEADLINE_EXCEEDED,
					   "the transaction is pending; it did not commit within %u ms",
					   req->timeout_ms ? req->timeout_ms : 10000);
		}
	}
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int key_arg(cm_rpc_call *call, const ProtobufCBinaryData *k, const char *field)
{
	if (k->len != CM_PK_BYTES)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s: must be a 32-byte public key", field);
	return GRPC_STATUS_OK;
}

static int h_account(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__AccountRequest *req = (const Muri__V1__AccountRequest *)msg;
	int code = key_arg(call, &req->address, "address");
	if (code)
		return code;
	Muri__V1__Account *a = NULL;
	lg_store *rd = reader_get(n);
	int rc = lg_query_account(rd, req->address.data, &a);
	reader_put(n, rd);
	return give(call, rc, a, resp, "account");
}

static int h_indexer(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__IndexerRequest *req = (const Muri__V1__IndexerRequest *)msg;
	int code = key_arg(call, &req->pubkey, "pubkey");
	if (code)
		return code;
	Muri__V1__IndexerInfo *x = NULL;
	lg_store *rd = reader_get(n);
	int rc = lg_query_indexer(rd, req->pubkey.data, &x);
	reader_put(n, rd);
	return give(call, rc, x, resp, "indexer");
}

static int h_magu(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__MaguRequest *req = (const Muri__V1__MaguRequest *)msg;
	if (!lg_name_valid(req->name))
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "name: 1..128 bytes of [A-Za-z0-9_.-]");
	Muri__V1__MaguInfo *x = NULL;
	lg_store *rd = reader_get(n);
	int rc = lg_query_magu(rd, req->name, &x);
	reader_put(n, rd);
	return give(call, rc, x, resp, "Magu");
}

static int h_magus(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	(void)msg;
	Muri__V1__ListMagusResponse *x = NULL;
	lg_store *rd = reader_get(n);
	int rc = lg_query_magus(rd, 0, &x);
	reader_put(n, rd);
	return give(call, rc, x, resp, "Magus");
}

static int h_tx(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__TxRequest *req = (const Muri__V1__TxRequest *)msg;
	if (req->tx_hash.len != CM_HASH_BYTES)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "tx_hash: must be 32 bytes");
	Muri__V1__TxStatus *x = NULL;
	lg_store *rd = reader_get(n);
	int rc = lg_query_tx(rd, req->tx_hash.data, &x);
	reader_put(n, rd);
	if (rc == CM_ERR_NOTFOUND && lg_mempool_contains(n->mp, req->tx_hash.data)) {
		Muri__V1__TxStatus *p = cm_rpc_alloc(call, sizeof(*p));
		if (!p)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		muri__v1__tx_status__init(p);
		p->tx_hash = req->tx_hash;
		p->state = MURI__V1__TX_STATE__TX_PENDING;
		*resp = &p->base;
		return GRPC_STATUS_OK;
	}
	return give(call, rc, x, resp, "transaction");
}

static int h_params(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	(void)msg;
	Muri__V1__Params *x = NULL;
	lg_store *rd = reader_get(n);
	int rc = lg_query_params(rd, &x);
	reader_put(n, rd);
	return give(call, rc, x, resp, "parameters");
}

static int h_challenges(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__ChallengesRequest *req = (const Muri__V1__ChallengesRequest *)msg;
	int code = key_arg(call, &req->indexer, "indexer");
	if (code)
		return code;
	size_t max = req->max ? req->max : 100;
	if (max > 1000)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "max: at most 1000");
	Muri__V1__ChallengesResponse *x = NULL;
	lg_store *rd = reader_get(n);
	int rc = lg_query_challenges(rd, req->indexer.data, req->open_only, max, &x);
	reader_put(n, rd);
	return give(call, rc, x, resp, "challenges");
}

static int h_proposal(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__ProposalRequest *req = (const Muri__V1__ProposalRequest *)msg;
	Muri__V1__ProposalInfo *x = NULL;
	lg_store *rd = reader_get(n);
	int rc = lg_query_proposal(rd, req->id, &x);
	reader_put(n, rd);
	return give(call, rc, x, resp, "proposal");
}

static int h_block(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__BlockRequest *req = (const Muri__V1__BlockRequest *)msg;
	Muri__V1__Block *b = NULL;
	lg_store *rd = reader_get(n);
	int rc = block_to_pb(n, rd, req->height, cm_rpc_arena(call), &b);
	reader_put(n, rd);
	if (rc == CM_ERR_NOTFOUND)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "height: no committed block at %llu",
				   (unsigned long long)req->height);
	if (rc != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot read block %llu", (unsigned long long)req->height);
	*resp = &b->base;
	return GRPC_STATUS_OK;
}

static int h_follow(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg)
{
	lg_node *n = arg;
	const Muri__V1__FollowRequest *req = (const Muri__V1__FollowRequest *)msg;
	uint64_t h = req->from_height ? req->from_height : 1;
	cm_arena a;
	cm_arena_init(&a, 0);
	int code = GRPC_STATUS_OK;
	while (!cm_rpc_cancelled(call) && !atomic_load(&n->stopping)) {
		pthread_mutex_lock(&n->cmu);
		uint64_t top = n->height;
		if (h > top) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += FOLLOW_POLL_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&n->ccv, &n->cmu, &ts);
			pthread_mutex_unlock(&n->cmu);
			continue;
		}
		pthread_mutex_unlock(&n->cmu);
		cm_arena_reset(&a);
		Muri__V1__Block *b = NULL;
		lg_store *rd = reader_get(n);
		int rc = block_to_pb(n, rd, h, &a, &b);
		reader_put(n, rd);
		if (rc != CM_OK) {
			code = cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot read block %llu", (unsigned long long)h);
			break;
		}
		if (cm_rpc_stream_send(call, &b->base) != CM_OK)
			break;
		h++;
	}
	cm_arena_free(&a);
	if (code == GRPC_STATUS_OK && (cm_rpc_cancelled(call) || atomic_load(&n->stopping)))
		code = cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE, "the ledger replica is stopping");
	return code;
}

static int h_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	(void)msg;
	return n->status_fn(n->status_arg, call, (Muri__V1__StatusResponse **)resp);
}

void lg_node_status_details(lg_node *n, cm_rpc_call *call, Muri__V1__StatusResponse *r)
{
	char root[65];
	pthread_mutex_lock(&n->cmu);
	uint64_t height = n->height, view = n->view, ok = n->txs_committed, failed = n->txs_failed;
	hex32(root, n->root);
	pthread_mutex_unlock(&n->cmu);
	char vals[8][72];
	snprintf(vals[0], sizeof(vals[0]), "%llu", (unsigned long long)height);
	snprintf(vals[1], sizeof(vals[1]), "%s", root);
	snprintf(vals[2], sizeof(vals[2]), "%llu", (unsigned long long)view);
	snprintf(vals[3], sizeof(vals[3]), "%u", n->self);
	snprintf(vals[4], sizeof(vals[4]), "%zu", lg_mempool_count(n->mp));
	snprintf(vals[5], sizeof(vals[5]), "%llu", (unsigned long long)ok);
	snprintf(vals[6], sizeof(vals[6]), "%llu", (unsigned long long)failed);
	snprintf(vals[7], sizeof(vals[7]), "%s", n->genesis->chain_id);
	static const char *keys[8] = {"height", "state_root", "view", "replica", "mempool", "txs_committed",
				      "txs_failed", "chain_id"};
	Muri__V1__StatusResponse__DetailsEntry **d = cm_rpc_alloc(call, 8 * sizeof(*d));
	if (!d)
		return;
	for (int i = 0; i < 8; i++) {
		d[i] = cm_rpc_alloc(call, sizeof(**d));
		if (!d[i])
			return;
		muri__v1__status_response__details_entry__init(d[i]);
		d[i]->key = (char *)keys[i];
		d[i]->value = cm_rpc_strdup(call, vals[i]);
	}
	r->details = d;
	r->n_details = 8;
}

int lg_node_register(lg_node *n, cm_rpc_server *srv, void *sarg,
		     int (*status)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out))
{
	n->status_fn = status;
	n->status_arg = sarg;
	static const cm_rpc_handler h[] = {
		{"SubmitTransaction", h_submit, NULL},
		{"SubmitTransactions", h_submit_batch, NULL},
		{"GetAccount", h_account, NULL},
		{"GetIndexer", h_indexer, NULL},
		{"GetMagu", h_magu, NULL},
		{"ListMagus", h_magus, NULL},
		{"GetBlock", h_block, NULL},
		{"GetTransaction", h_tx, NULL},
		{"GetParams", h_params, NULL},
		{"GetChallenges", h_challenges, NULL},
		{"GetProposal", h_proposal, NULL},
		{"FollowBlocks", NULL, h_follow},
		{"Status", h_status, NULL},
	};
	int rc = cm_rpc_server_add(srv, &muri__v1__ledger__descriptor, h, sizeof(h) / sizeof(h[0]), n);
	return rc == CM_OK ? lg_net_register(n->net, srv) : rc;
}

/* ---- life cycle -------------------------------------------------------------------- */

struct restore_ctx {
	lg_hs_block **blocks;
	uint8_t **bufs;
	size_t n, cap;
};

static void collect_block(void *arg, const uint8_t *bytes, size_t len)
{
	struct restore_ctx *r = arg;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		lg_hs_block **b = realloc(r->blocks, cap * sizeof(*b));
		uint8_t **u = b ? realloc(r->bufs, cap * sizeof(*u)) : NULL;
		if (b)
			r->blocks = b;
		if (!u)
			return;
		r->bufs = u;
		r->cap = cap;
	}
	uint8_t *copy = malloc(len);
	lg_hs_block *blk = malloc(sizeof(*blk));
	if (!copy || !blk || (memcpy(copy, bytes, len), lg_hs_block_decode(copy, len, blk)) != CM_OK) {
		free(copy);
		free(blk);
		return;
	}
	r->bufs[r->n] = copy;
	r->blocks[r->n++] = blk;
}

static int restore(lg_node *n, const lg_hs_config *cfg, const lg_hs_io *io, char *err, size_t errlen)
{
	lg_store *st = lg_state_store(n->state);
	uint64_t h = lg_state_height(n->state);
	lg_block_rec rec;
	memset(&rec, 0, sizeof(rec));
	lg_hs_block committed;
	int has_committed = 0;
	if (h > 0) {
		if (lg_store_get_block(st, h, &rec) != CM_OK ||
		    lg_hs_block_decode(rec.header, rec.header_len, &committed) != CM_OK) {
			snprintf(err, errlen, "cannot read the committed block at height %llu", (unsigned long long)h);
			lg_block_rec_clear(&rec);
			return CM_ERR_IO;
		}
		has_committed = 1;
	}
	uint8_t *sbytes = NULL;
	size_t slen = 0;
	lg_hs_safety safety;
	int has_safety = lg_store_get_safety(st, &sbytes, &slen) == CM_OK &&
			 lg_hs_safety_decode(sbytes, slen, &safety) == CM_OK;
	free(sbytes);
	struct restore_ctx r = {0};
	lg_blocks_each_above(n->blocks, h, collect_block, &r);
	int rc = lg_hs_restore(cfg, io, has_safety ? &safety : NULL, has_committed ? &committed : NULL,
			       (const lg_hs_block *const *)r.blocks, r.n, &n->hs);
	if (rc != CM_OK)
		snprintf(err, errlen, "cannot restore consensus: %s", cm_strerror(rc));
	else
		cm_info("restored", "height=%llu pending_blocks=%zu safety=%s", (unsigned long long)h, r.n,
			has_safety ? "yes" : "none");
	for (size_t i = 0; i < r.n; i++) {
		free(r.blocks[i]);
		free(r.bufs[i]);
	}
	free(r.blocks);
	free(r.bufs);
	lg_block_rec_clear(&rec);
	return rc;
}

int lg_node_open(const lg_node_opts *o, lg_node **out, char *err, size_t errlen)
{
	lg_node *n = calloc(1, sizeof(*n));
	if (!n || !(n->data_dir = strdup(o->data_dir))) {
		free(n);
		return CM_ERR_NOMEM;
	}
	n->o = *o;
	n->o.data_dir = n->data_dir;
	n->key = *o->key;
	n->o.key = &n->key;
	pthread_mutex_init(&n->pool_mu, NULL);
	pthread_cond_init(&n->pool_cv, NULL);
	pthread_mutex_init(&n->qmu, NULL);
	pthread_cond_init(&n->qcv, NULL);
	pthread_mutex_init(&n->fmu, NULL);
	pthread_cond_init(&n->fcv, NULL);
	pthread_mutex_init(&n->cmu, NULL);
	pthread_cond_init(&n->ccv, NULL);
	pthread_mutex_init(&n->vmu, NULL);
	int rc = lg_genesis_load(o->genesis_path, &n->genesis, err, errlen);
	if (rc != CM_OK)
		goto fail;
	n->n = (uint32_t)n->genesis->nreplicas;
	if (n->n < 1 || n->n > LG_HS_MAX_REPLICAS || n->n > LG_NET_MAX_REPLICAS) {
		snprintf(err, errlen, "genesis: %u replicas; 1..%d are supported", n->n, LG_HS_MAX_REPLICAS);
		rc = CM_ERR_INVALID;
		goto fail;
	}
	n->f = (n->n - 1) / 3;
	n->pks = calloc(n->n, CM_PK_BYTES);
	n->vcache = calloc(VCACHE_SLOTS, CM_HASH_BYTES);
	if (!n->pks || !n->vcache) {
		rc = CM_ERR_NOMEM;
		goto fail;
	}
	const char **addrs = calloc(n->n, sizeof(*addrs));
	for (uint32_t i = 0; i < n->n; i++) {
		memcpy(n->pks[i], n->genesis->replicas[i].pk, CM_PK_BYTES);
		if (addrs)
			addrs[i] = n->genesis->replicas[i].address;
	}
	int self = replica_of(n, n->key.pk);
	if (self < 0 || !addrs) {
		char hex[65];
		hex32(hex, n->key.pk);
		snprintf(err, errlen, "key_file: this node's key %s is not a replica in the genesis file", hex);
		free(addrs);
		rc = CM_ERR_INVALID;
		goto fail;
	}
	n->self = (uint32_t)self;
	uint8_t gd[CM_HASH_BYTES];
	lg_genesis_digest(n->genesis, gd);
	cm_hash(n->genesis_beacon, CM_DOM_BEACON, gd, sizeof(gd));

	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/ledger.db", o->data_dir);
	rc = lg_state_open(&n->state, path, n->genesis, err, errlen);
	if (rc == CM_OK) {
		snprintf(path, sizeof(path), "%s/blocks.db", o->data_dir);
		rc = lg_blocks_open(path, &n->blocks, err, errlen);
	}
	if (rc != CM_OK) {
		free(addrs);
		goto fail;
	}
	lg_state_set_observer(n->state, observe_tx, n);
	n->height = lg_state_height(n->state);
	lg_state_root(n->state, n->root);
	n->nreaders = o->readers ? o->readers : 4;
	n->readers = calloc(n->nreaders, sizeof(*n->readers));
	n->reader_busy = calloc(n->nreaders, 1);
	snprintf(path, sizeof(path), "%s/ledger.db", o->data_dir);
	for (uint32_t i = 0; rc == CM_OK && i < n->nreaders; i++)
		rc = !n->readers ? CM_ERR_NOMEM : lg_store_open(&n->readers[i], path, LG_STORE_READONLY, err, errlen);
	lg_mempool_opts mo = {.max_txs = o->mempool_max_txs, .max_bytes = o->mempool_max_bytes,
			      .max_per_sender = o->mempool_per_sender};
	if (rc == CM_OK)
		rc = lg_mempool_new(&mo, &n->mp);
	lg_net_opts no = {.chain_id = n->genesis->chain_id, .self = n->self, .n = n->n, .addresses = addrs,
			  .pubkeys = (const uint8_t(*)[CM_PK_BYTES])n->pks, .key = &n->key, .queue_max = o->net_queue,
			  .message_max = o->block_max_bytes + (1u << 20), .send_timeout_ms = 2000,
			  .tls_ca_file = o->tls_ca_file};
	if (rc == CM_OK)
		rc = lg_net_new(&no, on_net_message, serve_fetch, n, &n->net);
	free(addrs);
	if (rc != CM_OK) {
		if (!err[0])
			snprintf(err, errlen, "cannot open the ledger: %s", cm_strerror(rc));
		goto fail;
	}
	lg_hs_config cfg = {.n = n->n, .f = n->f, .self = n->self, .base_timeout_ms = o->base_timeout_ms,
			    .max_timeout_ms = o->max_timeout_ms, .max_payload_bytes = o->block_max_bytes + (64u << 10)};
	lg_hs_io io = {.ctx = n, .send = io_send, .persist_safety = io_persist_safety, .store_block = io_store_block,
		       .commit = io_commit, .make_payload = io_make_payload, .validate_payload = io_validate_payload,
		       .sign = io_sign, .verify = io_verify, .now_ms = io_now, .random = io_random,
		       .request_block = io_request_block};
	rc = restore(n, &cfg, &io, err, errlen);
	if (rc != CM_OK)
		goto fail;
	if (o->metrics) {
		n->m_blocks = cm_metrics_counter(o->metrics, "muri_ledger_blocks_committed_total", NULL, "blocks committed");
		n->m_txs = cm_metrics_counter(o->metrics, "muri_ledger_txs_committed_total", NULL,
					      "transactions in committed blocks (executed or failed)");
		n->m_rejected = cm_metrics_counter(o->metrics, "muri_ledger_payloads_rejected_total", NULL,
						   "proposals whose payload did not validate");
		n->m_height = cm_metrics_gauge(o->metrics, "muri_ledger_height", NULL, "committed height");
		n->m_view = cm_metrics_gauge(o->metrics, "muri_ledger_view", NULL, "current consensus view");
		n->m_mempool = cm_metrics_gauge(o->metrics, "muri_ledger_mempool_txs", NULL, "transactions waiting");
		static const double b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
		n->m_commit_wait = cm_metrics_histogram(o->metrics, "muri_ledger_commit_wait_seconds", NULL,
							"SubmitTransaction with wait_commit: time to commit", b,
							sizeof(b) / sizeof(b[0]));
	}
	*out = n;
	return CM_OK;
fail:
	lg_node_close(n);
	return rc ? rc : CM_ERR_INVALID;
}

int lg_node_start(lg_node *n, char *err, size_t errlen)
{
	int rc = lg_hs_start(n->hs);
	if (rc != CM_OK) {
		snprintf(err, errlen, "cannot start consensus: %s", lg_hs_errmsg(n->hs));
		return rc;
	}
	if (pthread_create(&n->cthread, NULL, consensus_main, n) != 0) {
		snprintf(err, errlen, "cannot start the consensus thread");
		return CM_ERR_NOMEM;
	}
	if (pthread_create(&n->fthread, NULL, fetch_main, n) != 0) {
		atomic_store(&n->stopping, 1);
		pthread_cond_broadcast(&n->qcv);
		pthread_join(n->cthread, NULL);
		snprintf(err, errlen, "cannot start the fetch thread");
		return CM_ERR_NOMEM;
	}
	n->started = 1;
	return CM_OK;
}

void lg_node_stop(lg_node *n)
{
	if (!n || atomic_exchange(&n->stopping, 1))
		return;
	pthread_mutex_lock(&n->qmu);
	pthread_cond_broadcast(&n->qcv);
	pthread_mutex_unlock(&n->qmu);
	pthread_mutex_lock(&n->fmu);
	pthread_cond_broadcast(&n->fcv);
	pthread_mutex_unlock(&n->fmu);
	pthread_mutex_lock(&n->cmu);
	pthread_cond_broadcast(&n->ccv);
	pthread_mutex_unlock(&n->cmu);
	if (n->started) {
		pthread_join(n->cthread, NULL);
		pthread_join(n->fthread, NULL);
		n->started = 0;
	}
	if (n->net)
		lg_net_stop(n->net);
}

void lg_node_close(lg_node *n)
{
	if (!n)
		return;
	lg_node_stop(n);
	lg_hs_destroy(n->hs);
	lg_net_free(n->net);
	lg_mempool_free(n->mp);
	for (uint32_t i = 0; n->readers && i < n->nreaders; i++)
		lg_store_close(n->readers[i]);
	free(n->readers);
	free(n->reader_busy);
	lg_blocks_close(n->blocks);
	lg_state_close(n->state);
	lg_genesis_free(n->genesis);
	for (struct item *it = n->qhead, *next; it; it = next) {
		next = it->next;
		free(it);
	}
	free(n->pks);
	free(n->vcache);
	cm_keypair_wipe(&n->key);
	free(n->data_dir);
	free(n);
}
