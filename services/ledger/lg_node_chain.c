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

void lg_node_signed_key(const uint8_t tx_hash[CM_HASH_BYTES], const ProtobufCBinaryData *sig,
			uint8_t key[CM_HASH_BYTES])
{
	static const uint8_t tag = 0xff; /* never the first byte of a tx hash's input alone */
	cm_hasher x;
	cm_hasher_init(&x, CM_DOM_TX);
	cm_hasher_update(&x, &tag, 1);
	cm_hasher_update(&x, tx_hash, CM_HASH_BYTES);
	cm_hasher_update(&x, sig->data, sig->len);
	cm_hasher_final(&x, key);
}

/* The cache is 4-way set associative: a key lives in one set of 4 slots
 * (an empty slot first, else a way picked by other bits of the key), so
 * keys of different transactions rarely evict each other before the cache
 * is full. */
#define VCACHE_WAYS 4

static uint8_t (*vcache_set(lg_node *n, const uint8_t key[CM_HASH_BYTES]))[CM_HASH_BYTES]
{
	return &n->vcache[(lg_node_hash64(key) & (VCACHE_SLOTS / VCACHE_WAYS - 1)) * VCACHE_WAYS];
}

void lg_node_vcache_add(lg_node *n, const uint8_t key[CM_HASH_BYTES])
{
	static const uint8_t empty[CM_HASH_BYTES];
	uint8_t(*set)[CM_HASH_BYTES] = vcache_set(n, key);
	pthread_mutex_lock(&n->vmu);
	int way = -1;
	for (int i = 0; i < VCACHE_WAYS; i++) {
		if (memcmp(set[i], key, CM_HASH_BYTES) == 0) {
			way = -2;
			break;
		}
		if (way == -1 && memcmp(set[i], empty, CM_HASH_BYTES) == 0)
			way = i;
	}
	if (way != -2) {
		if (way < 0)
			way = (int)(key[9] % VCACHE_WAYS);
		memcpy(set[way], key, CM_HASH_BYTES);
	}
	pthread_mutex_unlock(&n->vmu);
}

int lg_node_vcache_has(lg_node *n, const uint8_t key[CM_HASH_BYTES])
{
	uint8_t(*set)[CM_HASH_BYTES] = vcache_set(n, key);
	int yes = 0;
	pthread_mutex_lock(&n->vmu);
	for (int i = 0; i < VCACHE_WAYS && !yes; i++)
		yes = memcmp(set[i], key, CM_HASH_BYTES) == 0;
	pthread_mutex_unlock(&n->vmu);
	return yes;
}

int lg_node_check_tx(lg_node *n, const Muri__V1__SignedTransaction *stx, uint8_t tx_hash[CM_HASH_BYTES])
{
	uint8_t key[CM_HASH_BYTES];
	lg_tx_hash(stx->body.data, stx->body.len, tx_hash);
	lg_node_signed_key(tx_hash, &stx->signature, key);
	if (lg_node_vcache_has(n, key))
		return CM_OK;
	lg_tx tx;
	char err[ERR_MAX];
	int rc = lg_node_open_tx(n, stx, &tx, err, sizeof(err));
	if (rc != CM_OK)
		return rc;
	lg_tx_close(&tx);
	lg_node_vcache_add(n, key);
	return CM_OK;
}

static void beacon_remember(lg_node *n, const uint8_t hash[CM_HASH_BYTES], const Muri__V1__BlockBody *body)
{
	struct beacon_entry *e = &n->bc[lg_node_hash64(hash) % BEACON_CACHE];
	memcpy(e->hash, hash, CM_HASH_BYTES);
	memcpy(e->beacon, body->beacon.data, CM_HASH_BYTES);
	e->ts = body->timestamp_ms;
	e->state_height = body->state_height;
	memset(e->state_root, 0, CM_HASH_BYTES);
	if (body->state_root.len == CM_HASH_BYTES)
		memcpy(e->state_root, body->state_root.data, CM_HASH_BYTES);
	e->used = 1;
}

/* Beacon, timestamp and (state_height, state_root) of a block: genesis's,
 * the cache's, or its body's. Genesis carries no state (height 0, zeros). */
static int beacon_of(lg_node *n, const cm_block *b, uint8_t beacon[CM_HASH_BYTES], uint64_t *ts,
		     uint64_t *state_height, uint8_t state_root[CM_HASH_BYTES])
{
	if (b->height == 0) {
		memcpy(beacon, n->genesis_beacon, CM_HASH_BYTES);
		*ts = n->genesis->genesis_time_ms;
		*state_height = 0;
		memset(state_root, 0, CM_HASH_BYTES);
		return CM_OK;
	}
	struct beacon_entry *e = &n->bc[lg_node_hash64(b->hash) % BEACON_CACHE];
	if (!e->used || memcmp(e->hash, b->hash, CM_HASH_BYTES) != 0) {
		Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, b->payload_len, b->payload);
		if (!body || body->beacon.len != CM_HASH_BYTES) {
			if (body)
				muri__v1__block_body__free_unpacked(body, NULL);
			return CM_ERR_INVALID;
		}
		beacon_remember(n, b->hash, body);
		muri__v1__block_body__free_unpacked(body, NULL);
	}
	memcpy(beacon, e->beacon, CM_HASH_BYTES);
	*ts = e->ts;
	*state_height = e->state_height;
	memcpy(state_root, e->state_root, CM_HASH_BYTES);
	return CM_OK;
}

/* This replica's state root after height (consensus thread): CM_OK,
 * CM_ERR_NOTFOUND above the committed height, CM_ERR_STATE if the store
 * cannot say. */
static int root_at(lg_node *n, uint64_t height, uint8_t root[CM_HASH_BYTES])
{
	if (height > n->height)
		return CM_ERR_NOTFOUND;
	if (height == n->height) {
		memcpy(root, n->root, CM_HASH_BYTES);
		return CM_OK;
	}
	return lg_store_root_at(lg_state_store(n->state), height, root) == CM_OK ? CM_OK : CM_ERR_STATE;
}

/* Stops this replica for good: its root at height is not the one a
 * certified block carries. Logged as an error naming both roots. */
static void diverge(lg_node *n, const cm_block *b, uint64_t height, const uint8_t mine[CM_HASH_BYTES],
		    const uint8_t theirs[CM_HASH_BYTES])
{
	char a[65], c[65];
	cm_hex(a, mine, CM_HASH_BYTES);
	cm_hex(c, theirs, CM_HASH_BYTES);
	cm_error("state_diverged",
		 "state_height=%llu own_root=%s block_root=%s block_height=%llu proposer=%u "
		 "action=\"stopped voting and committing\"",
		 (unsigned long long)height, a, c, (unsigned long long)b->height, b->proposer);
	pthread_mutex_lock(&n->cmu);
	if (!atomic_load(&n->diverged))
		snprintf(n->diverged_why, sizeof(n->diverged_why),
			 "state root at height %llu is %s here but %s in certified block %llu (proposer %u); "
			 "this replica stopped voting and committing",
			 (unsigned long long)height, a, c, (unsigned long long)b->height, b->proposer);
	atomic_store(&n->diverged, 1);
	pthread_cond_broadcast(&n->ccv);
	pthread_mutex_unlock(&n->cmu);
	cm_gauge_set(n->m_diverged, 1);
}

int lg_node_diverged(lg_node *n, char *why, size_t len)
{
	if (!atomic_load(&n->diverged))
		return 0;
	if (why && len) {
		pthread_mutex_lock(&n->cmu);
		snprintf(why, len, "%s", n->diverged_why);
		pthread_mutex_unlock(&n->cmu);
	}
	return 1;
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

/* Opens and checks a transaction. On a chain whose genesis sets
 * unsigned_noops, a Noop's signature is not checked; every other payload's
 * is. */
int lg_node_open_tx(lg_node *n, const Muri__V1__SignedTransaction *stx, lg_tx *tx, char *err, size_t errlen)
{
	atomic_fetch_add(&n->sig_checks, 1);
	if (!n->unsigned_noops)
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
	if (atomic_load(&n->diverged))
		return;
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

/* Tracks what a follower can see as final on the committed chain: a block
 * is final for it once it and two committed descendants sit in consecutive
 * views (cm_follower's rule, the three-chain), and a verified follower
 * applies a block's effects once a final block's state root vouches for
 * them (its state_height at or above the block). The chain idles only when
 * the last block with transactions is final and vouched for in that sense
 * (see io_make_payload), so a follower is never left waiting for the next
 * empty block to see the last transactions take effect. */
static void note_finality(lg_node *n, const cm_block *b, size_t ntxs, uint64_t state_height)
{
	if (ntxs > 0)
		n->last_txs_height = b->height;
	n->view_run = b->view == n->last_commit_view + 1 ? n->view_run + 1 : 1;
	n->last_commit_view = b->view;
	n->last_commit_ms = cm_now_ms();
	n->recent_sh[0] = n->recent_sh[1];
	n->recent_sh[1] = n->recent_sh[2];
	n->recent_sh[2] = state_height;
	if (n->view_run >= 3) {
		n->final_through = b->height - 2;
		/* the block now final vouches for the state at its state_height */
		if (n->recent_sh[0] > n->pinned_through)
			n->pinned_through = n->recent_sh[0];
	}
}

static int io_commit(void *ctx, const cm_block *b, const cm_qc *qc)
{
	lg_node *n = ctx;
	if (atomic_load(&n->diverged))
		return CM_ERR_STATE;
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, b->payload_len, b->payload);
	if (!body || body->beacon.len != CM_HASH_BYTES || body->state_root.len != CM_HASH_BYTES) {
		/* a committed block always had its payload validated */
		cm_error("commit_failed", "height=%llu reason=\"undecodable payload\"", (unsigned long long)b->height);
		if (body)
			muri__v1__block_body__free_unpacked(body, NULL);
		return CM_ERR_INTERNAL;
	}
	/* the block is certified: at least f+1 honest voters checked its pin
	 * against their own committed roots (io_validate_payload), and this
	 * replica has committed state_height (below b's height) by now; a
	 * different root here means this replica diverged */
	uint8_t mine[CM_HASH_BYTES];
	int have = root_at(n, body->state_height, mine);
	if (have == CM_OK && memcmp(mine, body->state_root.data, CM_HASH_BYTES) != 0) {
		diverge(n, b, body->state_height, mine, body->state_root.data);
		muri__v1__block_body__free_unpacked(body, NULL);
		return CM_ERR_STATE;
	}
	if (have != CM_OK)
		cm_warn("commit_unchecked", "height=%llu state_height=%llu reason=\"no root here at state_height\"",
			(unsigned long long)b->height, (unsigned long long)body->state_height);
	size_t blen = cm_block_size(b), qlen = cm_qc_size(qc), bl, ql;
	uint8_t *bbuf = malloc(blen ? blen : 1), *qbuf = malloc(qlen ? qlen : 1);
	uint8_t(*hashes)[CM_HASH_BYTES] = malloc((body->n_txs ? body->n_txs : 1) * CM_HASH_BYTES);
	int rc = bbuf && qbuf && hashes ? CM_OK : CM_ERR_NOMEM;
	if (rc == CM_OK)
		rc = cm_block_encode(b, bbuf, blen, &bl);
	if (rc == CM_OK)
		rc = cm_qc_encode(qc, qbuf, qlen, &ql);
	/* The same deterministic check as for a vote, memoized under the whole
	 * signed transaction: a replica that restarted or evicted the entry
	 * checks again and reaches the same verdict. Only if every transaction
	 * passes may the state skip signatures; otherwise it checks them all. */
	unsigned flags = LG_APPLY_SIGS_VERIFIED;
	if (rc == CM_OK && lg_node_check_txs(n, body->txs, body->n_txs, hashes) != CM_OK)
		flags = 0;
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
		note_finality(n, b, body->n_txs, body->state_height);
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

/* ---- the pending branch a proposal extends --------------------------------- */

#define BRANCH_MAX_BLOCKS 64 /* pending blocks walked; deeper, the replica does not propose */

/* Next nonce per sender in the pending blocks from a parent down to the
 * committed height: open addressing on the sender key. */
struct branch {
	uint8_t (*pk)[CM_PK_BYTES];
	uint64_t *next;
	size_t cap, used;
	size_t txs;               /* transactions in the pending blocks */
	lg_node *n;
};

static int branch_put(struct branch *br, const uint8_t pk[CM_PK_BYTES], uint64_t next)
{
	if ((br->used + 1) * 2 > br->cap) {
		struct branch big = {.cap = br->cap ? br->cap * 2 : 1024, .txs = br->txs, .n = br->n};
		big.pk = calloc(big.cap, CM_PK_BYTES);
		big.next = calloc(big.cap, sizeof(*big.next));
		if (!big.pk || !big.next) {
			free(big.pk);
			free(big.next);
			return CM_ERR_NOMEM;
		}
		for (size_t i = 0; i < br->cap; i++)
			if (br->next[i])
				branch_put(&big, br->pk[i], br->next[i]);
		free(br->pk);
		free(br->next);
		*br = big;
	}
	for (size_t i = lg_node_hash64(pk) & (br->cap - 1);; i = (i + 1) & (br->cap - 1)) {
		if (!br->next[i]) {
			memcpy(br->pk[i], pk, CM_PK_BYTES);
			br->next[i] = next;
			br->used++;
			return CM_OK;
		}
		if (memcmp(br->pk[i], pk, CM_PK_BYTES) == 0) {
			if (next > br->next[i])
				br->next[i] = next;
			return CM_OK;
		}
	}
}

static uint64_t branch_get(const struct branch *br, const uint8_t pk[CM_PK_BYTES])
{
	if (!br->cap)
		return 0;
	for (size_t i = lg_node_hash64(pk) & (br->cap - 1);; i = (i + 1) & (br->cap - 1)) {
		if (!br->next[i])
			return 0;
		if (memcmp(br->pk[i], pk, CM_PK_BYTES) == 0)
			return br->next[i];
	}
}

static void branch_free(struct branch *br)
{
	free(br->pk);
	free(br->next);
}

/* Collects the senders' nonces used by parent and its ancestors above the
 * committed height (the blocks a proposal on parent extends). */
static int branch_collect(lg_node *n, const cm_block *parent, struct branch *br)
{
	cm_block cur = *parent;
	uint8_t *bytes = NULL;
	int rc = CM_OK;
	for (int depth = 0; rc == CM_OK && cur.height > n->height; depth++) {
		if (depth >= BRANCH_MAX_BLOCKS) {
			rc = CM_ERR_TOOBIG;
			break;
		}
		Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, cur.payload_len, cur.payload);
		if (!body) {
			rc = CM_ERR_INVALID;
			break;
		}
		br->txs += body->n_txs;
		for (size_t i = 0; rc == CM_OK && i < body->n_txs; i++) {
			Muri__V1__Transaction *t =
				muri__v1__transaction__unpack(NULL, body->txs[i]->body.len, body->txs[i]->body.data);
			if (t && t->sender.len == CM_PK_BYTES && t->nonce < UINT64_MAX)
				rc = branch_put(br, t->sender.data, t->nonce + 1);
			if (t)
				muri__v1__transaction__free_unpacked(t, NULL);
		}
		muri__v1__block_body__free_unpacked(body, NULL);
		uint8_t want[CM_HASH_BYTES];
		memcpy(want, cur.parent, CM_HASH_BYTES);
		uint64_t h = cur.height;
		free(bytes);
		bytes = NULL;
		if (h - 1 <= n->height)
			break;
		size_t len;
		if (rc == CM_OK && (lg_blocks_get(n->blocks, want, &bytes, &len) != CM_OK ||
				    cm_block_decode(bytes, len, &cur) != CM_OK || cur.height != h - 1))
			rc = CM_ERR_NOTFOUND;
	}
	free(bytes);
	return rc;
}

/* A sender's next nonce on the branch: after its pending blocks, else the
 * committed state's. */
static uint64_t branch_nonce(void *arg, const uint8_t sender[CM_PK_BYTES])
{
	struct branch *br = arg;
	uint64_t c = lg_node_committed_nonce(br->n, sender), b = branch_get(br, sender);
	return b > c ? b : c;
}

#define PIN_WALK_MAX 256 /* blocks walked for a three-chain; none that deep: pin genesis */

/* A block's (height, view, parent) on the branch: a pending block from the
 * block tree, a committed one from the state store. */
static int branch_step(lg_node *n, uint64_t height, const uint8_t hash[CM_HASH_BYTES], cm_block *out)
{
	uint8_t *bytes = NULL;
	size_t len = 0;
	lg_block_rec rec;
	memset(&rec, 0, sizeof(rec));
	int rc;
	if (height > n->height) {
		rc = lg_blocks_get(n->blocks, hash, &bytes, &len);
	} else {
		rc = lg_store_get_block(lg_state_store(n->state), height, &rec);
		bytes = (uint8_t *)rec.header;
		len = rec.header_len;
	}
	cm_block b;
	if (rc == CM_OK)
		rc = cm_block_decode(bytes, len, &b);
	if (rc == CM_OK && b.height != height)
		rc = CM_ERR_STATE;
	if (rc == CM_OK) {
		memset(out, 0, sizeof(*out));
		out->height = b.height;
		out->view = b.view;
		memcpy(out->parent, b.parent, CM_HASH_BYTES);
	}
	if (height > n->height)
		free(bytes);
	else
		lg_block_rec_clear(&rec);
	return rc;
}

/* The height the branch ending at parent proves committed: that of the
 * highest block c on it whose child c1 and grandchild c2 on it are in the
 * next two views, c2 at or below parent. QC(c2) is the justify of the child
 * of c2 on the branch (or the proposal's own), and the core processes a
 * block's justify, committing the three-chain it completes, before it keeps
 * the block (hs_accept_block; a parked orphan again when it is linked). So
 * every replica holding a proposal on parent -- the proposer and every
 * voter -- has committed at least this height. 0 (genesis) if no such chain
 * is within PIN_WALK_MAX blocks. */
static int branch_committed(lg_node *n, const cm_block *parent, uint64_t *out)
{
	cm_block cur;
	memset(&cur, 0, sizeof(cur));
	cur.height = parent->height;
	cur.view = parent->view;
	memcpy(cur.parent, parent->parent, CM_HASH_BYTES);
	uint64_t v1 = 0, v2 = 0; /* views of the blocks one and two above cur */
	for (int depth = 0; depth < PIN_WALK_MAX && cur.height > 0; depth++) {
		if (depth >= 2 && cur.view + 1 == v1 && v1 + 1 == v2) {
			*out = cur.height;
			return CM_OK;
		}
		v2 = v1;
		v1 = cur.view;
		uint8_t want[CM_HASH_BYTES];
		memcpy(want, cur.parent, CM_HASH_BYTES);
		if (cur.height == 1)
			break;
		int rc = branch_step(n, cur.height - 1, want, &cur);
		if (rc != CM_OK)
			return rc;
	}
	*out = 0;
	return CM_OK;
}

/* The governed block limits in the committed state (consensus thread). */
static void block_limits(lg_node *n, size_t *max_txs, size_t *max_bytes)
{
	int64_t t = lg_state_param(n->state, "block_max_txs"), b = lg_state_param(n->state, "block_max_bytes");
	*max_txs = t > 0 ? (size_t)t : 1;
	*max_bytes = b > 0 ? (size_t)b : 1;
}

/* A BlockBody with the beacon, the timestamp and the proposer's state, then
 * field 4 (txs) entries appended as the encoded SignedTransactions came. */
static int io_make_payload(void *ctx, const cm_block *parent, uint64_t height, uint64_t view, uint8_t *buf,
			   size_t cap, size_t *len)
{
	lg_node *n = ctx;
	(void)view;
	if (atomic_load(&n->diverged))
		return CM_ERR_STATE;
	/* by default, an empty block only while an earlier one waits for its
	 * commit (the lowest latency; the chain never idles) */
	if (!n->o.idle_when_final && lg_mempool_count(n->mp) == 0 && parent->height <= n->height)
		return CM_ERR_STATE;
	uint8_t pbeacon[CM_HASH_BYTES], d[CM_HASH_BYTES], proot[CM_HASH_BYTES], sroot[CM_HASH_BYTES];
	uint64_t pts, psh;
	if (beacon_of(n, parent, pbeacon, &pts, &psh, proot) != CM_OK)
		return CM_ERR_INVALID;
	/* our own root at the height the branch proves committed (every voter
	 * has committed it: see io_validate_payload), never the parent's claim */
	uint64_t sh = 0;
	if (branch_committed(n, parent, &sh) != CM_OK) {
		cm_warn("propose_skipped", "height=%llu reason=\"cannot read the branch it extends\"",
			(unsigned long long)height);
		return CM_ERR_STATE;
	}
	if (sh > n->height)
		sh = n->height; /* cannot happen: the branch's three-chain was committed here */
	if (root_at(n, sh, sroot) != CM_OK)
		return CM_ERR_STATE;
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
	body.state_height = sh;
	body.state_root.data = sroot;
	body.state_root.len = CM_HASH_BYTES;
	size_t head = protobuf_c_message_get_packed_size(&body.base);
	if (head > cap)
		return CM_ERR_TOOBIG;
	protobuf_c_message_pack(&body.base, buf);
	size_t used = head;
	size_t max_txs, max_bytes, budget = cap - head;
	block_limits(n, &max_txs, &max_bytes);
	if (budget > max_bytes)
		budget = max_bytes; /* encoded txs are larger than the bodies the limit counts */
	/* each tx costs its bytes plus a tag and a length (<= 4 bytes: a signed
	 * tx is under 2^21 bytes), and at least 64 bytes (its signature) */
	size_t most = budget / 68 < max_txs ? budget / 68 : max_txs;
	struct branch br = {.n = n};
	if (branch_collect(n, parent, &br) != CM_OK) {
		branch_free(&br);
		cm_warn("propose_skipped", "height=%llu reason=\"cannot read the pending blocks it extends\"",
			(unsigned long long)height);
		return CM_ERR_STATE;
	}
	/* With idle_when_final: an empty block while transactions still wait on the chain: in
	 * pending blocks, or committed but not yet final for followers (three
	 * committed blocks of consecutive views at or above them). Otherwise
	 * the chain idles, but for an empty block every empty_block_ms so that
	 * heights (challenges, deadlines, expiries) still move. */
	int idle_due = n->o.empty_block_ms && cm_now_ms() - n->last_commit_ms >= n->o.empty_block_ms;
	if (n->o.idle_when_final && lg_mempool_count(n->mp) == 0 && br.txs == 0 &&
	    n->final_through >= n->last_txs_height && n->pinned_through >= n->last_txs_height && !idle_due) {
		branch_free(&br);
		return CM_ERR_STATE;
	}
	lg_mempool_tx *txs = malloc((max_txs ? max_txs : 1) * sizeof(*txs));
	size_t k = txs ? lg_mempool_take(n->mp, max_txs, budget - 4 * most, cm_now_ms(), branch_nonce, &br, txs) : 0;
	branch_free(&br);
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

/* A vote for a block vouches for its (state_height, state_root) pin: the
 * voter has committed state_height itself and its root there is the pin's.
 * A voter that has not reached state_height refuses rather than vote for a
 * pin nobody checked (a pin of the uncommitted parent with a made-up root
 * would otherwise be certified unchecked, copied forward, and make every
 * honest replica stop when it commits). So every certified pin was checked
 * by at least f+1 honest voters, and a mismatch at commit time means THIS
 * replica's state diverged. state_height may be below the parent's own
 * state_height (a proposer that is behind pins what it has), never above
 * the parent's height.
 *
 * Liveness: the core processes a proposal's justify QC, and commits the
 * three-chain it completes, before it asks for the vote (hs_on_proposal:
 * hs_process_qc -> hs_commit_upto -> io_commit, which applies the block
 * synchronously, then hs_try_vote -> validate_payload; a proposal kept for
 * a future view or parked as an orphan had its QC processed again when it
 * was linked, hs_accept_block). The same holds for every block the voter
 * keeps: its justify was processed with its parent in the tree before it
 * was stored. So a voter holding the proposal has committed everything the
 * three-chains on its branch imply. The proposer pins exactly that height
 * (branch_committed; its own committed height if that is lower, which the
 * same argument says cannot happen), so the pin never exceeds an honest
 * voter's committed height, and after GST every honest voter that has the
 * proposal's branch votes for an honest proposal whatever the differences
 * between replicas' committed heights. (Pinning the proposer's own
 * committed height instead is not live: a replica that committed through a
 * QC the others never processed would pin above them, lose every view it
 * leads, and with one Byzantine leader among four no three consecutive
 * views could be certified again to let the others catch up.) */
static int io_validate_payload(void *ctx, const cm_block *parent, const cm_block *b)
{
	lg_node *n = ctx;
	if (atomic_load(&n->diverged))
		return CM_ERR_STATE;
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, b->payload_len, b->payload);
	const char *why = NULL;
	uint8_t pbeacon[CM_HASH_BYTES], d[CM_HASH_BYTES], want[CM_HASH_BYTES], proot[CM_HASH_BYTES],
		mine[CM_HASH_BYTES];
	uint64_t pts, psh;
	int have;
	size_t max_txs, max_bytes, bytes = 0;
	block_limits(n, &max_txs, &max_bytes);
	if (!body)
		why = "payload is not a BlockBody";
	else if (body->beacon.len != CM_HASH_BYTES || body->beacon_signature.len != CM_SIG_BYTES)
		why = "beacon fields have the wrong sizes";
	else if (body->state_root.len != CM_HASH_BYTES)
		why = "state_root: must be 32 bytes";
	else if (body->n_txs > max_txs)
		why = "txs: more than block_max_txs";
	else if (b->proposer >= n->n || beacon_of(n, parent, pbeacon, &pts, &psh, proot) != CM_OK)
		why = "unknown proposer or parent beacon";
	for (size_t i = 0; !why && i < body->n_txs; i++)
		if ((bytes += body->txs[i]->body.len) > max_bytes)
			why = "txs: more bytes than block_max_bytes";
	if (!why) {
		beacon_digest(d, b->height, pbeacon);
		beacon_next(want, pbeacon, body->beacon_signature.data);
		if (cm_verify(n->pks[b->proposer], body->beacon_signature.data, d, sizeof(d)) != CM_OK ||
		    memcmp(want, body->beacon.data, CM_HASH_BYTES) != 0)
			why = "beacon does not verify";
		else if (body->timestamp_ms < pts || body->timestamp_ms > cm_wall_ms() + CLOCK_SKEW_MS)
			why = "timestamp before its parent's or too far ahead";
		else if (body->state_height > parent->height)
			why = "state_height: above the parent's height";
		else if ((have = root_at(n, body->state_height, mine)) == CM_ERR_NOTFOUND)
			why = "state_height: above this replica's committed height (cannot check state_root)";
		else if (have != CM_OK)
			why = "state_root: this replica cannot read its root at state_height";
		else if (memcmp(mine, body->state_root.data, CM_HASH_BYTES) != 0)
			why = "state_root: not this replica's root at state_height";
	}
	uint8_t(*hashes)[CM_HASH_BYTES] = NULL;
	if (!why && body->n_txs) {
		hashes = malloc(body->n_txs * CM_HASH_BYTES);
		if (!hashes)
			why = "out of memory";
	}
	if (!why && body->n_txs && lg_node_check_txs(n, body->txs, body->n_txs, hashes) != CM_OK)
		why = "a transaction does not verify";
	if (!why && body->n_txs)
		lg_mempool_mark_in_flight(n->mp, (const uint8_t(*)[CM_HASH_BYTES])hashes, body->n_txs, cm_now_ms());
	if (!why) {
		beacon_remember(n, b->hash, body);
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
