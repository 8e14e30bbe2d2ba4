/* A ledger replica's side of consensus: the I/O table the core calls
 * (send, persist, store, commit, sign, verify, clock, fetch) and the payload
 * checks.
 *
 * Block payloads are muri.v1.BlockBody messages: a timestamp, the beacon
 * (DESIGN.md "Randomness": beacon = H(parent beacon || the proposer's
 * signature over (height, parent beacon)); ed25519 is deterministic, so a
 * proposer can only withhold a block, not grind its beacon) and the signed
 * transactions, which execute when the block commits. A replica votes only
 * for payloads whose beacon and transaction signatures verify. */
#include "lg_node_int.h"

/* ---- small helpers ------------------------------------------------------- */

uint64_t lg_node_hash64(const uint8_t *h)
{
	uint64_t v;
	memcpy(&v, h, sizeof(v));
	return v;
}

void lg_node_vcache_add(lg_node *n, const uint8_t h[CM_HASH_BYTES])
{
	pthread_mutex_lock(&n->vmu);
	memcpy(n->vcache[lg_node_hash64(h) & (VCACHE_SLOTS - 1)], h, CM_HASH_BYTES);
	pthread_mutex_unlock(&n->vmu);
}

int lg_node_vcache_has(lg_node *n, const uint8_t h[CM_HASH_BYTES])
{
	pthread_mutex_lock(&n->vmu);
	int yes = memcmp(n->vcache[lg_node_hash64(h) & (VCACHE_SLOTS - 1)], h, CM_HASH_BYTES) == 0;
	pthread_mutex_unlock(&n->vmu);
	return yes;
}

/* Beacon and timestamp of a block: genesis's, the cache's, or its body's. */
static int beacon_of(lg_node *n, const cm_block *b, uint8_t beacon[CM_HASH_BYTES], uint64_t *ts)
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
	struct beacon_entry *e = &n->bc[lg_node_hash64(b->hash) % BEACON_CACHE];
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
int lg_node_open_tx(lg_node *n, const Muri__V1__SignedTransaction *stx, lg_tx *tx, char *err, size_t errlen)
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

static int io_store_block(void *ctx, const cm_block *b)
{
	lg_node *n = ctx;
	size_t need = cm_block_size(b), len;
	uint8_t *buf = malloc(need ? need : 1);
	int rc = buf ? cm_block_encode(b, buf, need, &len) : CM_ERR_NOMEM;
	if (rc == CM_OK)
		rc = lg_blocks_put(n->blocks, b->hash, b->height, buf, len);
	free(buf);
	return rc;
}

void lg_node_observe_tx(void *arg, uint64_t height, uint32_t index, const uint8_t hash[CM_HASH_BYTES],
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

static int io_commit(void *ctx, const cm_block *b, const cm_qc *qc)
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
	size_t blen = cm_block_size(b), qlen = cm_qc_size(qc), bl, ql;
	uint8_t *bbuf = malloc(blen ? blen : 1), *qbuf = malloc(qlen ? qlen : 1);
	uint8_t(*hashes)[CM_HASH_BYTES] = malloc((body->n_txs ? body->n_txs : 1) * CM_HASH_BYTES);
	int rc = bbuf && qbuf && hashes ? CM_OK : CM_ERR_NOMEM;
	if (rc == CM_OK)
		rc = cm_block_encode(b, bbuf, blen, &bl);
	if (rc == CM_OK)
		rc = cm_qc_encode(qc, qbuf, qlen, &ql);
	unsigned flags = LG_APPLY_SIGS_VERIFIED;
	for (size_t i = 0; rc == CM_OK && i < body->n_txs; i++) {
		lg_tx_hash(body->txs[i]->body.data, body->txs[i]->body.len, hashes[i]);
		if (!lg_node_vcache_has(n, hashes[i]))
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

uint64_t lg_node_committed_nonce(void *arg, const uint8_t sender[CM_PK_BYTES])
{
	lg_node *n = arg;
	lg_account a;
	if (lg_store_account_get(lg_state_store(n->state), sender, &a) == CM_OK)
		return a.nonce;
	return 0;
}

/* Appends field 4 (txs) entries: the encoded SignedTransactions as they came. */
static int io_make_payload(void *ctx, const cm_block *parent, uint64_t height, uint64_t view, uint8_t *buf,
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
					 cm_now_ms(), lg_node_committed_nonce, n, txs)
		       : 0;
	for (size_t i = 0; i < k; i++) {
		if (used + 1 + 10 + txs[i].len > cap)
			break; /* cannot happen with the budget above; stop rather than overflow */
		buf[used++] = 0x22; /* field 4, length-delimited */
		used += cm_put_varint(buf + used, txs[i].len);
		memcpy(buf + used, txs[i].bytes, txs[i].len);
		used += txs[i].len;
	}
	if (txs)
		lg_mempool_release(n->mp, txs, k);
	free(txs);
	*len = used;
	return CM_OK;
}

static int io_validate_payload(void *ctx, const cm_block *parent, const cm_block *b)
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
		if (lg_node_vcache_has(n, hashes[i]))
			continue;
		lg_tx tx;
		char err[ERR_MAX];
		if (lg_node_open_tx(n, body->txs[i], &tx, err, sizeof(err)) != CM_OK) {
			why = "a transaction does not verify";
			break;
		}
		lg_tx_close(&tx);
		lg_node_vcache_add(n, hashes[i]);
	}
	if (!why && body->n_txs)
		lg_mempool_mark_in_flight(n->mp, (const uint8_t(*)[CM_HASH_BYTES])hashes, body->n_txs, cm_now_ms());
	if (!why) {
		struct beacon_entry *e = &n->bc[lg_node_hash64(b->hash) % BEACON_CACHE];
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

void lg_node_io_init(lg_node *n, lg_hs_io *io)
{
	*io = (lg_hs_io){.ctx = n, .send = io_send, .persist_safety = io_persist_safety, .store_block = io_store_block,
			 .commit = io_commit, .make_payload = io_make_payload, .validate_payload = io_validate_payload,
			 .sign = io_sign, .verify = io_verify, .now_ms = io_now, .random = io_random,
			 .request_block = io_request_block};
}
