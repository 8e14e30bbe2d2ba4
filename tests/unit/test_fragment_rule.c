/* Tests of common/cm_fragment: the ledger's choice of a fragment's next
 * primary from failover reports (a replica that missed a write a majority
 * acknowledged never wins, ties, majorities, other epochs, duplicates,
 * strangers), and the digests' layout byte for byte. */
#include "tap.h"
#include "cm_bytes.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_fragment.h"

#include <string.h>

static uint8_t K[CM_FRAGMENT_MAX_REPLICAS + 1][CM_PK_BYTES];

static void keys(void)
{
	for (int i = 0; i <= CM_FRAGMENT_MAX_REPLICAS; i++) {
		uint8_t b = (uint8_t)i;
		cm_hash(K[i], CM_DOM_TEST, &b, 1);
	}
}

static cm_fragment_report rep(int who, uint64_t epoch, uint64_t size, uint64_t last_epoch)
{
	cm_fragment_report r;
	memset(&r, 0, sizeof(r));
	r.epoch = epoch;
	r.size = size;
	r.last_epoch = last_epoch;
	memcpy(r.sender, K[who], CM_PK_BYTES);
	return r;
}

#define CHOOSE(epoch, n, r, nr) cm_fragment_choose_primary(epoch, (const uint8_t(*)[CM_PK_BYTES])K, n, r, nr)

/* Three replicas. Epoch 1 wrote 10 entries everywhere. Replica 2, primary
 * of epoch 2, appended 3 entries no backup received (never acknowledged at
 * QUORUM): size 13, last epoch 2. Replicas 0 and 1 reported (size 10), and
 * replica 1, primary of epoch 3, wrote 2 entries acknowledged at QUORUM by
 * itself and replica 0 (size 12, last epoch 3), then died. Reports from 0
 * and 2 are a majority: the longest log (replica 2's) lacks the
 * acknowledged writes; the rule picks replica 0. */
static void test_missed_quorum_write_never_wins(void)
{
	cm_fragment_report r[2] = {rep(2, 3, 13, 2), rep(0, 3, 12, 3)};
	TAP_EQ(CHOOSE(3, 3, r, 2), 0);
	cm_fragment_report s[2] = {r[1], r[0]};
	TAP_EQ(CHOOSE(3, 3, s, 2), 0); /* whatever the order */
	/* within one last epoch the longer log holds the other's entries */
	cm_fragment_report t[3] = {rep(0, 3, 12, 3), rep(1, 3, 14, 3), rep(2, 3, 13, 2)};
	TAP_EQ(CHOOSE(3, 3, t, 3), 1);
}

static void test_ties_go_to_the_lowest_index(void)
{
	cm_fragment_report r[3] = {rep(4, 5, 7, 5), rep(2, 5, 7, 5), rep(3, 5, 7, 5)};
	TAP_EQ(CHOOSE(5, 5, r, 3), 2);
	cm_fragment_report s[3] = {rep(3, 5, 7, 5), rep(4, 5, 7, 5), rep(2, 5, 7, 5)};
	TAP_EQ(CHOOSE(5, 5, s, 3), 2);
	cm_fragment_report e[2] = {rep(1, 1, 0, 0), rep(0, 1, 0, 0)}; /* empty logs */
	TAP_EQ(CHOOSE(1, 3, e, 2), 0);
	cm_fragment_report one[1] = {rep(0, 4, 9, 4)}; /* a single replica is its own majority */
	TAP_EQ(CHOOSE(4, 1, one, 1), 0);
}

static void test_fewer_than_a_majority(void)
{
	cm_fragment_report r[3] = {rep(0, 2, 5, 2), rep(1, 2, 5, 2), rep(2, 2, 5, 2)};
	TAP_EQ(CHOOSE(2, 3, r, 0), CM_ERR_STATE);
	TAP_EQ(CHOOSE(2, 3, r, 1), CM_ERR_STATE);
	TAP_EQ(CHOOSE(2, 3, r, 2), 0);
	TAP_EQ(CHOOSE(2, 4, r, 2), CM_ERR_STATE); /* 4 need 3 */
	TAP_EQ(CHOOSE(2, 4, r, 3), 0);
	TAP_EQ(CHOOSE(2, 5, r, 2), CM_ERR_STATE);
	TAP_EQ(CHOOSE(2, 5, r, 3), 0);
	TAP_EQ(cm_fragment_majority(1), 1u);
	TAP_EQ(cm_fragment_majority(4), 3u);
	TAP_EQ(cm_fragment_majority(16), 9u);
}

static void test_other_epochs_ignored(void)
{
	/* replica 2's report of epoch 3 would win, but the epoch is 4 */
	cm_fragment_report r[3] = {rep(2, 3, 50, 3), rep(0, 4, 10, 3), rep(1, 5, 60, 4)};
	TAP_EQ(CHOOSE(4, 3, r, 3), CM_ERR_STATE); /* only replica 0 counts */
	cm_fragment_report s[4] = {r[0], r[1], r[2], rep(1, 4, 9, 3)};
	TAP_EQ(CHOOSE(4, 3, s, 4), 0);
}

static void test_duplicates_counted_once(void)
{
	cm_fragment_report r[3] = {rep(1, 2, 5, 2), rep(1, 2, 5, 2), rep(1, 2, 8, 2)};
	TAP_EQ(CHOOSE(2, 3, r, 3), CM_ERR_STATE);
	/* the first report of a replica is the one counted */
	cm_fragment_report s[3] = {rep(1, 2, 5, 2), rep(1, 2, 9, 2), rep(0, 2, 6, 2)};
	TAP_EQ(CHOOSE(2, 3, s, 3), 0);
}

static void test_strangers_and_bounds(void)
{
	/* K[3] is not among 3 replicas: its report neither counts nor wins */
	cm_fragment_report r[2] = {rep(3, 2, 99, 2), rep(0, 2, 5, 2)};
	TAP_EQ(CHOOSE(2, 3, r, 2), CM_ERR_STATE);
	cm_fragment_report s[3] = {r[0], r[1], rep(1, 2, 4, 2)};
	TAP_EQ(CHOOSE(2, 3, s, 3), 0);
	TAP_EQ(CHOOSE(2, 0, s, 3), CM_ERR_INVALID);
	TAP_EQ(CHOOSE(2, CM_FRAGMENT_MAX_REPLICAS + 1, s, 3), CM_ERR_INVALID);
	/* the sixteenth replica counts like the first */
	cm_fragment_report all[9];
	for (int i = 0; i < 9; i++)
		all[i] = rep(CM_FRAGMENT_MAX_REPLICAS - 1 - i, 7, 3, 7);
	TAP_EQ(CHOOSE(7, CM_FRAGMENT_MAX_REPLICAS, all, 8), CM_ERR_STATE);
	TAP_EQ(CHOOSE(7, CM_FRAGMENT_MAX_REPLICAS, all, 9), CM_FRAGMENT_MAX_REPLICAS - 9);
}

static void put64(cm_hasher *h, uint64_t v)
{
	uint8_t b[8];
	cm_put_be64(b, v);
	cm_hasher_update(h, b, 8);
}

static void test_digests(void)
{
	uint8_t id[CM_HASH_BYTES], want[CM_HASH_BYTES], d[CM_HASH_BYTES], d2[CM_HASH_BYTES];
	cm_hasher h;
	cm_fragment_id("songs", 7, id);
	cm_hasher_init(&h, CM_DOM_REPL_APPEND);
	cm_hasher_update(&h, "songs\0\0\0\0\7", 10);
	cm_hasher_final(&h, want);
	TAP_CHECK(memcmp(id, want, CM_HASH_BYTES) == 0);
	cm_fragment_id("songs", 8, d);
	TAP_CHECK(memcmp(id, d, CM_HASH_BYTES) != 0);

	cm_fragment_report r = rep(1, 3, 12, 2);
	memset(r.root, 0xab, CM_HASH_BYTES);
	memset(r.sig, 0xcd, CM_SIG_BYTES);
	cm_fragment_report_digest(id, &r, d);
	cm_hasher_init(&h, CM_DOM_REPL_FAILOVER);
	cm_hasher_update(&h, id, CM_HASH_BYTES);
	put64(&h, 3);
	put64(&h, 12);
	cm_hasher_update(&h, r.root, CM_HASH_BYTES);
	put64(&h, 2);
	cm_hasher_update(&h, K[1], CM_PK_BYTES);
	cm_hasher_final(&h, want);
	TAP_CHECK(memcmp(d, want, CM_HASH_BYTES) == 0);
	memset(r.sig, 0, CM_SIG_BYTES); /* the signature is not signed */
	cm_fragment_report_digest(id, &r, d2);
	TAP_CHECK(memcmp(d, d2, CM_HASH_BYTES) == 0);
	r.last_epoch = 3; /* each field is bound */
	cm_fragment_report_digest(id, &r, d2);
	TAP_CHECK(memcmp(d, d2, CM_HASH_BYTES) != 0);
	r.last_epoch = 2;
	r.root[31] ^= 1;
	cm_fragment_report_digest(id, &r, d2);
	TAP_CHECK(memcmp(d, d2, CM_HASH_BYTES) != 0);
}

int main(void)
{
	keys();
	TAP_RUN(test_missed_quorum_write_never_wins);
	TAP_RUN(test_ties_go_to_the_lowest_index);
	TAP_RUN(test_fewer_than_a_majority);
	TAP_RUN(test_other_epochs_ignored);
	TAP_RUN(test_duplicates_counted_once);
	TAP_RUN(test_strangers_and_bounds);
	TAP_RUN(test_digests);
	return tap_done();
}
