/* Tests of the ledger mempool: limits and duplicate refusal with the right
 * codes, per-sender nonce order in proposals, in-flight marking, removal on
 * commit and re-offering of transactions from abandoned blocks. */
#include "tap.h"
#include "cm_err.h"
#include "lg_mempool.h"

#define SENDERS 4

static uint64_t committed[SENDERS];

static void key_of(uint8_t pk[CM_PK_BYTES], int sender)
{
	memset(pk, 0, CM_PK_BYTES);
	cm_hash(pk, CM_DOM_TEST, &sender, sizeof(sender)); /* spread like real keys */
}

static int sender_of(const uint8_t pk[CM_PK_BYTES])
{
	for (int i = 0; i < SENDERS; i++) {
		uint8_t k[CM_PK_BYTES];
		key_of(k, i);
		if (memcmp(k, pk, CM_PK_BYTES) == 0)
			return i;
	}
	return -1;
}

static uint64_t nonce_of(void *arg, const uint8_t pk[CM_PK_BYTES])
{
	(void)arg;
	return committed[sender_of(pk)];
}

static void tx_hash(uint8_t h[CM_HASH_BYTES], int sender, uint64_t nonce)
{
	uint64_t v[2] = {(uint64_t)sender, nonce};
	cm_hash(h, CM_DOM_TX, v, sizeof(v));
}

static int add(lg_mempool *m, int sender, uint64_t nonce, size_t len)
{
	uint8_t h[CM_HASH_BYTES], pk[CM_PK_BYTES], body[1024];
	tx_hash(h, sender, nonce);
	key_of(pk, sender);
	memset(body, (int)nonce, sizeof(body));
	body[1] = (uint8_t)sender;
	return lg_mempool_add(m, h, pk, nonce, body, len, committed[sender]);
}

static lg_mempool *new_pool(size_t max_txs, size_t max_bytes, size_t per_sender)
{
	lg_mempool *m = NULL;
	lg_mempool_opts o = {.max_txs = max_txs, .max_bytes = max_bytes, .max_per_sender = per_sender};
	memset(committed, 0, sizeof(committed));
	if (lg_mempool_new(&o, &m) != CM_OK)
		return NULL;
	return m;
}

static void test_refusals(void)
{
	lg_mempool *m = new_pool(5, 1000, 3);
	TAP_EQ(add(m, 0, 0, 100), CM_OK);
	TAP_EQ(add(m, 0, 0, 100), CM_ERR_EXISTS); /* same hash */
	uint8_t h[CM_HASH_BYTES], pk[CM_PK_BYTES];
	memset(h, 0x5a, sizeof(h));
	key_of(pk, 0);
	TAP_EQ(lg_mempool_add(m, h, pk, 0, (const uint8_t *)"x", 1, 0), CM_ERR_EXISTS); /* same nonce */
	committed[1] = 7;
	TAP_EQ(add(m, 1, 6, 10), CM_ERR_STATE); /* nonce used */
	TAP_EQ(add(m, 0, 1, 100), CM_OK);
	TAP_EQ(add(m, 0, 2, 100), CM_OK);
	TAP_EQ(add(m, 0, 3, 100), CM_ERR_TOOBIG); /* per sender */
	TAP_EQ(add(m, 1, 7, 700), CM_OK);
	TAP_EQ(add(m, 2, 0, 1), CM_ERR_TOOBIG); /* bytes: 1000 held */
	TAP_EQ(lg_mempool_count(m), 4);
	TAP_EQ(lg_mempool_bytes(m), 1000);
	TAP_EQ(add(m, 2, 0, 0), CM_OK);
	TAP_EQ(add(m, 3, 0, 0), CM_ERR_TOOBIG); /* count */
	lg_mempool_free(m);
}

static void test_take_follows_nonces(void)
{
	lg_mempool *m = new_pool(100, 100000, 50);
	lg_mempool_tx out[100];
	/* sender 0's nonces arrive out of order; sender 1 has a gap */
	TAP_EQ(add(m, 0, 2, 10), CM_OK);
	TAP_EQ(add(m, 1, 0, 10), CM_OK);
	TAP_EQ(add(m, 0, 0, 10), CM_OK);
	TAP_EQ(add(m, 1, 2, 10), CM_OK);
	TAP_EQ(add(m, 0, 1, 10), CM_OK);
	size_t n = lg_mempool_take(m, 100, 100000, 1000, nonce_of, NULL, out);
	TAP_EQ(n, 4); /* 0:0,0:1,0:2 and 1:0; 1:2 waits for 1:1 */
	uint8_t h[CM_HASH_BYTES];
	tx_hash(h, 0, 0);
	TAP_CHECK(n == 4 && memcmp(out[0].hash, h, CM_HASH_BYTES) == 0);
	tx_hash(h, 0, 2);
	TAP_CHECK(n == 4 && memcmp(out[2].hash, h, CM_HASH_BYTES) == 0);
	tx_hash(h, 1, 0);
	TAP_CHECK(n == 4 && memcmp(out[3].hash, h, CM_HASH_BYTES) == 0);
	lg_mempool_release(m, out, n);
	/* nothing more until 1:1 arrives; then it and 1:2 follow (the next
	 * proposal extends the first: there sender 1's next nonce is 1) */
	TAP_EQ(lg_mempool_take(m, 100, 100000, 1001, nonce_of, NULL, out), 0);
	TAP_EQ(add(m, 1, 1, 10), CM_OK);
	committed[1] = 1;
	n = lg_mempool_take(m, 100, 100000, 1002, nonce_of, NULL, out);
	TAP_EQ(n, 2);
	lg_mempool_release(m, out, n);
	lg_mempool_free(m);
}

static void test_limits_of_a_proposal(void)
{
	lg_mempool *m = new_pool(100, 100000, 50);
	lg_mempool_tx out[100];
	for (int i = 0; i < 10; i++)
		TAP_EQ(add(m, i % SENDERS, (uint64_t)(i / SENDERS), 100), CM_OK);
	TAP_EQ(lg_mempool_take(m, 3, 100000, 5, nonce_of, NULL, out), 3);
	lg_mempool_release(m, out, 3);
	TAP_EQ(lg_mempool_take(m, 100, 250, 5, nonce_of, NULL, out), 2);
	lg_mempool_release(m, out, 2);
	lg_mempool_free(m);
}

static void test_commit_and_stale(void)
{
	lg_mempool *m = new_pool(100, 100000, 50);
	lg_mempool_tx out[100];
	for (uint64_t n = 0; n < 4; n++)
		TAP_EQ(add(m, 0, n, 20), CM_OK);
	size_t n = lg_mempool_take(m, 2, 100000, 100, nonce_of, NULL, out);
	TAP_EQ(n, 2);
	uint8_t hs[2][CM_HASH_BYTES];
	memcpy(hs[0], out[0].hash, CM_HASH_BYTES);
	memcpy(hs[1], out[1].hash, CM_HASH_BYTES);
	/* the block commits while the batch is still in use: bytes stay valid */
	committed[0] = 2;
	lg_mempool_remove(m, (const uint8_t(*)[CM_HASH_BYTES])hs, 2);
	TAP_EQ(lg_mempool_count(m), 2);
	TAP_CHECK(out[1].len == 20 && out[1].bytes[0] == 1);
	lg_mempool_release(m, out, n);
	/* the next proposal is abandoned: nothing offered until it is stale */
	n = lg_mempool_take(m, 100, 100000, 200, nonce_of, NULL, out);
	TAP_EQ(n, 2);
	lg_mempool_release(m, out, n);
	TAP_EQ(lg_mempool_take(m, 100, 100000, 300, nonce_of, NULL, out), 0);
	TAP_EQ(lg_mempool_requeue_stale(m, 300, 500, nonce_of, NULL), 0);
	TAP_EQ(lg_mempool_requeue_stale(m, 700, 500, nonce_of, NULL), 2);
	n = lg_mempool_take(m, 100, 100000, 800, nonce_of, NULL, out);
	TAP_EQ(n, 2);
	lg_mempool_release(m, out, n);
	/* another replica's block used nonce 2 and 3: they are dropped */
	committed[0] = 4;
	TAP_EQ(lg_mempool_requeue_stale(m, 5000, 500, nonce_of, NULL), 0);
	TAP_EQ(lg_mempool_count(m), 0);
	lg_mempool_free(m);
}

static void test_mark_in_flight_from_peer(void)
{
	lg_mempool *m = new_pool(100, 100000, 50);
	lg_mempool_tx out[100];
	TAP_EQ(add(m, 2, 0, 5), CM_OK);
	TAP_EQ(add(m, 2, 1, 5), CM_OK);
	uint8_t h[1][CM_HASH_BYTES];
	tx_hash(h[0], 2, 0);
	lg_mempool_mark_in_flight(m, (const uint8_t(*)[CM_HASH_BYTES])h, 1, 10);
	/* not on the branch being extended: 2:0 is in flight elsewhere, 2:1
	 * waits (proposing it without 2:0 would make it fail) */
	TAP_EQ(lg_mempool_take(m, 100, 100000, 15, nonce_of, NULL, out), 0);
	/* the peer's block with 2:0 is the parent: its nonce is used there */
	committed[2] = 1;
	size_t n = lg_mempool_take(m, 100, 100000, 20, nonce_of, NULL, out);
	TAP_EQ(n, 1); /* 2:1 follows the peer's 2:0 */
	uint8_t e[CM_HASH_BYTES];
	tx_hash(e, 2, 1);
	TAP_CHECK(n == 1 && memcmp(out[0].hash, e, CM_HASH_BYTES) == 0);
	lg_mempool_release(m, out, n);
	TAP_EQ(lg_mempool_contains(m, h[0]), 1);
	lg_mempool_free(m);
}

static void test_many(void)
{
	lg_mempool *m = new_pool(200000, 1u << 30, 100000);
	static lg_mempool_tx out[50000];
	for (int s = 0; s < SENDERS; s++)
		for (uint64_t n = 0; n < 25000; n++)
			if (add(m, s, n, 120) != CM_OK)
				TAP_CHECK(0);
	TAP_EQ(lg_mempool_count(m), 100000);
	size_t taken = 0;
	while (taken < 100000) {
		size_t n = lg_mempool_take(m, 50000, 1u << 30, 1, nonce_of, NULL, out);
		if (n == 0)
			break;
		uint8_t(*hs)[CM_HASH_BYTES] = malloc(n * CM_HASH_BYTES);
		for (size_t i = 0; i < n; i++)
			memcpy(hs[i], out[i].hash, CM_HASH_BYTES);
		for (size_t i = 0; i < n; i++)
			committed[out[i].bytes[1]]++; /* taken in consecutive nonce order */
		lg_mempool_release(m, out, n);
		lg_mempool_remove(m, (const uint8_t(*)[CM_HASH_BYTES])hs, n);
		free(hs);
		taken += n;
	}
	TAP_EQ(taken, 100000);
	TAP_EQ(lg_mempool_count(m), 0);
	lg_mempool_free(m);
}

/* With relays, a replica may hold a sender's later nonce in flight (seen in
 * a peer's proposal) before it holds the earlier ones: it must not propose
 * past the gap (a block with nonce 1 but not 0 would make 1 fail for good). */
static void test_no_proposal_past_a_gap(void)
{
	lg_mempool *m = new_pool(100, 1 << 20, 100);
	uint8_t h2[CM_HASH_BYTES];
	tx_hash(h2, 3, 2);
	TAP_EQ(add(m, 3, 2, 50), CM_OK);
	lg_mempool_mark_in_flight(m, (const uint8_t(*)[CM_HASH_BYTES])h2, 1, 10);
	TAP_EQ(add(m, 3, 1, 50), CM_OK);
	lg_mempool_tx out[4];
	TAP_EQ(lg_mempool_take(m, 4, 1 << 20, 20, nonce_of, NULL, out), 0); /* nonce 0 is missing */
	TAP_EQ(add(m, 3, 0, 50), CM_OK);
	size_t k = lg_mempool_take(m, 4, 1 << 20, 30, nonce_of, NULL, out);
	TAP_EQ(k, 2); /* 0 and 1; 2 is in flight already */
	lg_mempool_release(m, out, k);
	lg_mempool_free(m);
}

/* A transaction that arrives twice (from its client and by relay, or by
 * relay from two peers) is held once: the pool's key is the tx hash, so a
 * copy with other signature bytes cannot replace or join the first. */
static void test_relay_dedup(void)
{
	lg_mempool *m = new_pool(100, 1 << 20, 100);
	uint8_t h[CM_HASH_BYTES], pk[CM_PK_BYTES], a[100], b[100];
	tx_hash(h, 1, 0);
	key_of(pk, 1);
	memset(a, 1, sizeof(a));
	memset(b, 2, sizeof(b)); /* same body, other signature */
	TAP_EQ(lg_mempool_add(m, h, pk, 0, a, sizeof(a), 0), CM_OK);
	TAP_EQ(lg_mempool_add(m, h, pk, 0, a, sizeof(a), 0), CM_ERR_EXISTS);
	TAP_EQ(lg_mempool_add(m, h, pk, 0, b, sizeof(b), 0), CM_ERR_EXISTS);
	TAP_EQ(lg_mempool_count(m), 1);
	TAP_EQ(lg_mempool_bytes(m), sizeof(a));
	lg_mempool_tx out[2];
	TAP_EQ(lg_mempool_take(m, 2, 1 << 20, 1, nonce_of, NULL, out), 1);
	TAP_CHECK(out[0].len == sizeof(a) && out[0].bytes[0] == 1); /* the first copy */
	lg_mempool_release(m, out, 1);
	lg_mempool_free(m);
}

int main(void)
{
	cm_crypto_init();
	TAP_RUN(test_refusals);
	TAP_RUN(test_take_follows_nonces);
	TAP_RUN(test_limits_of_a_proposal);
	TAP_RUN(test_commit_and_stale);
	TAP_RUN(test_mark_in_flight_from_peer);
	TAP_RUN(test_relay_dedup);
	TAP_RUN(test_no_proposal_past_a_gap);
	TAP_RUN(test_many);
	return tap_done();
}
