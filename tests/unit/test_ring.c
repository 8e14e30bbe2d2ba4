/* Tests of common/cm_ring: balance over equal and unequal weights, minimal
 * movement when a node joins or leaves, distinct replicas in rank order,
 * argument limits, and fixed known placements so a change of algorithm (which
 * would move data on every replica) is noticed. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_ring.h"

#include <stdint.h>

#define KEYS 100000
#define MAX_NODES 16

static void make_nodes(cm_ring_node *nodes, size_t n, const uint64_t *weights)
{
	for (size_t i = 0; i < n; i++) {
		char name[32];
		int len = snprintf(name, sizeof(name), "indexer-%zu", i);
		cm_hash(nodes[i].id, CM_DOM_TEST, name, (size_t)len);
		nodes[i].weight = weights ? weights[i] : 100;
	}
}

static size_t key_of(char *buf, size_t cap, unsigned k)
{
	return (size_t)snprintf(buf, cap, "magu-7/fragment-%u", k);
}

/* The first choice of each key in [0, KEYS), or SIZE_MAX when none. */
static void first_choices(const cm_ring_node *nodes, size_t n, size_t *first)
{
	char key[64];
	for (unsigned k = 0; k < KEYS; k++) {
		size_t out[1], count = 0;
		size_t len = key_of(key, sizeof(key), k);
		if (cm_ring_place(nodes, n, key, len, 1, out, &count) != CM_OK || count != 1)
			first[k] = SIZE_MAX;
		else
			first[k] = out[0];
	}
}

static void test_equal_weights_balance(void)
{
	static size_t first[KEYS];
	cm_ring_node nodes[10];
	size_t hits[10] = {0};
	make_nodes(nodes, 10, NULL);
	first_choices(nodes, 10, first);
	for (unsigned k = 0; k < KEYS; k++) {
		TAP_CHECK(first[k] < 10);
		if (first[k] < 10)
			hits[first[k]]++;
	}
	for (size_t i = 0; i < 10; i++) {
		/* each node's share within 10% of 1/10 */
		TAP_CHECK(hits[i] >= KEYS / 10 * 9 / 10);
		TAP_CHECK(hits[i] <= KEYS / 10 * 11 / 10);
		if (hits[i] < KEYS / 10 * 9 / 10 || hits[i] > KEYS / 10 * 11 / 10)
			printf("# node %zu got %zu keys\n", i, hits[i]);
	}
}

static void test_join_moves_only_to_new_node(void)
{
	static size_t before[KEYS], after[KEYS];
	cm_ring_node nodes[11];
	size_t moved = 0, moved_elsewhere = 0;
	make_nodes(nodes, 11, NULL);
	first_choices(nodes, 10, before);
	first_choices(nodes, 11, after);
	for (unsigned k = 0; k < KEYS; k++) {
		if (before[k] == after[k])
			continue;
		moved++;
		moved_elsewhere += after[k] != 10;
	}
	printf("# adding an 11th node moved %zu of %d keys\n", moved, KEYS);
	TAP_EQ(moved_elsewhere, 0);
	TAP_CHECK((double)moved / KEYS <= 0.10);         /* 1/11 = 0.0909 expected */
	TAP_CHECK((double)moved / KEYS >= 1.0 / 11 * 0.9); /* and the new node takes its share */

	/* with three replicas, the old list keeps its order: the new node is
	 * inserted somewhere (pushing the last one out) or not at all */
	size_t broken = 0, changed = 0;
	char key[64];
	for (unsigned k = 0; k < KEYS / 10; k++) {
		size_t a[3], b[3], na = 0, nb = 0;
		size_t len = key_of(key, sizeof(key), k);
		TAP_EQ(cm_ring_place(nodes, 10, key, len, 3, a, &na), CM_OK);
		TAP_EQ(cm_ring_place(nodes, 11, key, len, 3, b, &nb), CM_OK);
		TAP_EQ(na, 3);
		TAP_EQ(nb, 3);
		size_t j = 0, newcomers = 0;
		for (size_t i = 0; i < 3; i++) {
			if (b[i] == 10) {
				newcomers++;
				continue;
			}
			if (b[i] != a[j++])
				broken++;
		}
		broken += newcomers > 1;
		changed += newcomers;
	}
	TAP_EQ(broken, 0);
	TAP_CHECK(changed > 0);
}

static void test_leave_moves_only_its_keys(void)
{
	static size_t before[KEYS], after[KEYS];
	cm_ring_node nodes[10], fewer[9];
	size_t wrongly_moved = 0, orphaned = 0, not_second = 0;
	char key[64];
	const size_t gone = 4;

	make_nodes(nodes, 10, NULL);
	/* node 4 leaves; the rest keep their ids (and get shifted indices) */
	for (size_t i = 0, j = 0; i < 10; i++)
		if (i != gone)
			fewer[j++] = nodes[i];
	first_choices(nodes, 10, before);
	first_choices(fewer, 9, after);
	for (unsigned k = 0; k < KEYS; k++) {
		size_t was = before[k], now = after[k];
		size_t now_orig = now >= gone ? now + 1 : now; /* index in nodes[] */
		if (was != gone) {
			wrongly_moved += now_orig != was;
			continue;
		}
		orphaned++;
		/* an orphaned key goes to what was its second choice */
		if (k % 10 == 0) {
			size_t two[2], n2 = 0;
			size_t len = key_of(key, sizeof(key), k);
			cm_ring_place(nodes, 10, key, len, 2, two, &n2);
			not_second += n2 != 2 || two[1] != now_orig;
		}
	}
	TAP_EQ(wrongly_moved, 0);
	TAP_EQ(not_second, 0);
	TAP_CHECK(orphaned > KEYS / 20);
}

static void test_weighted_shares(void)
{
	static size_t first[KEYS];
	static const uint64_t w[3] = {1000, 2000, 3000};
	cm_ring_node nodes[3];
	size_t hits[3] = {0};
	make_nodes(nodes, 3, w);
	first_choices(nodes, 3, first);
	for (unsigned k = 0; k < KEYS; k++)
		if (first[k] < 3)
			hits[first[k]]++;
	for (size_t i = 0; i < 3; i++) {
		double want = (double)KEYS * (double)(i + 1) / 6.0;
		printf("# weight %llu: %zu keys, want %.0f\n", (unsigned long long)w[i], hits[i], want);
		TAP_CHECK(hits[i] >= want * 0.9);
		TAP_CHECK(hits[i] <= want * 1.1);
	}

	/* only the ratio matters: weights 1:2:3 place exactly like 1000:2000:3000 */
	static const uint64_t small[3] = {1, 2, 3};
	cm_ring_node same[3];
	size_t diff = 0;
	char key[64];
	make_nodes(same, 3, small);
	for (unsigned k = 0; k < KEYS / 10; k++) {
		size_t out[1], n1 = 0;
		size_t len = key_of(key, sizeof(key), k);
		cm_ring_place(same, 3, key, len, 1, out, &n1);
		diff += out[0] != first[k];
	}
	TAP_EQ(diff, 0);
}

static void test_extreme_weights(void)
{
	cm_ring_node nodes[3];
	size_t hits[3] = {0};
	char key[64];
	make_nodes(nodes, 3, NULL);
	nodes[0].weight = UINT64_MAX;
	nodes[1].weight = 1;
	nodes[2].weight = 0;
	for (unsigned k = 0; k < KEYS / 10; k++) {
		size_t out[3], n = 0;
		size_t len = key_of(key, sizeof(key), k);
		TAP_EQ(cm_ring_place(nodes, 3, key, len, 3, out, &n), CM_OK);
		/* a zero weight is never chosen: only two of the three asked for */
		TAP_EQ(n, 2);
		if (n >= 1)
			hits[out[0]]++;
	}
	TAP_EQ(hits[0], KEYS / 10);
	TAP_EQ(hits[2], 0);
}

static void test_replicas_distinct_and_ranked(void)
{
	cm_ring_node nodes[10];
	char key[64];
	size_t bad_distinct = 0, bad_prefix = 0;
	make_nodes(nodes, 10, NULL);
	for (unsigned k = 0; k < KEYS / 10; k++) {
		size_t one[1], three[3], all[10], n1 = 0, n3 = 0, n10 = 0;
		size_t len = key_of(key, sizeof(key), k);
		TAP_EQ(cm_ring_place(nodes, 10, key, len, 1, one, &n1), CM_OK);
		TAP_EQ(cm_ring_place(nodes, 10, key, len, 3, three, &n3), CM_OK);
		TAP_EQ(cm_ring_place(nodes, 10, key, len, 10, all, &n10), CM_OK);
		TAP_EQ(n1, 1);
		TAP_EQ(n3, 3);
		TAP_EQ(n10, 10);
		bad_distinct += three[0] == three[1] || three[0] == three[2] || three[1] == three[2];
		bad_prefix += one[0] != three[0];
		/* the top 3 are the first 3 of the full ranking, and the full
		 * ranking is a permutation */
		for (size_t i = 0; i < 3; i++)
			bad_prefix += three[i] != all[i];
		unsigned seen = 0;
		for (size_t i = 0; i < 10; i++)
			seen |= 1u << all[i];
		bad_distinct += seen != 0x3ffu;
	}
	TAP_EQ(bad_distinct, 0);
	TAP_EQ(bad_prefix, 0);

	/* the order of the node list does not change who is chosen */
	cm_ring_node rev[10];
	size_t bad_order = 0;
	for (size_t i = 0; i < 10; i++)
		rev[i] = nodes[9 - i];
	for (unsigned k = 0; k < KEYS / 10; k++) {
		size_t a[3], b[3], na = 0, nb = 0;
		size_t len = key_of(key, sizeof(key), k);
		cm_ring_place(nodes, 10, key, len, 3, a, &na);
		cm_ring_place(rev, 10, key, len, 3, b, &nb);
		for (size_t i = 0; i < 3; i++)
			bad_order += a[i] != 9 - b[i];
	}
	TAP_EQ(bad_order, 0);
}

static void test_arguments(void)
{
	cm_ring_node nodes[4];
	size_t out[CM_RING_MAX_R + 1], count = 99;
	make_nodes(nodes, 4, NULL);
	TAP_EQ(cm_ring_place(nodes, 4, "k", 1, 0, out, &count), CM_ERR_INVALID);
	TAP_EQ(cm_ring_place(nodes, 4, "k", 1, CM_RING_MAX_R + 1, out, &count), CM_ERR_INVALID);
	TAP_EQ(cm_ring_place(NULL, 4, "k", 1, 1, out, &count), CM_ERR_INVALID);
	TAP_EQ(cm_ring_place(nodes, 4, NULL, 1, 1, out, &count), CM_ERR_INVALID);
	TAP_EQ(cm_ring_place(nodes, 4, "k", 1, 1, NULL, &count), CM_ERR_INVALID);
	TAP_EQ(count, 99); /* untouched on failure */
	/* r larger than the node count returns them all, ranked */
	TAP_EQ(cm_ring_place(nodes, 4, "k", 1, CM_RING_MAX_R, out, &count), CM_OK);
	TAP_EQ(count, 4);
	/* no nodes: nothing placed, not an error */
	TAP_EQ(cm_ring_place(NULL, 0, "k", 1, 3, out, &count), CM_OK);
	TAP_EQ(count, 0);
	/* the empty key is a key like any other */
	TAP_EQ(cm_ring_place(nodes, 4, NULL, 0, 2, out, &count), CM_OK);
	TAP_EQ(count, 2);
}

/* Placements computed once with this algorithm (key digest BLAKE2b-128 of
 * "muri.ring.key.v1" || key, SipHash-2-4 draws, 32.32 fixed-point log2; ids =
 * cm_hash(CM_DOM_TEST, "indexer-i")), and agreed with by an independent
 * floating-point reimplementation. If this test fails, the algorithm changed
 * and every existing Magu's fragments would move. */
static void test_known_placements(void)
{
	static const uint64_t w[8] = {10, 20, 30, 40, 50, 60, 70, 80};
	static const struct {
		const char *key;
		size_t want[3];
	} known[] = {
		{"", {3, 7, 6}},
		{"magu-7/fragment-0", {6, 5, 3}},
		{"magu-7/fragment-1", {2, 0, 7}},
		{"0f9b3c0e-5d1a-4e7b-9c2d-7a8b9c0d1e2f", {5, 7, 6}},
		{"the quick brown fox", {6, 5, 3}},
	};
	cm_ring_node nodes[8];
	make_nodes(nodes, 8, w);
	for (size_t t = 0; t < sizeof(known) / sizeof(known[0]); t++) {
		size_t out[3], n = 0;
		TAP_EQ(cm_ring_place(nodes, 8, known[t].key, strlen(known[t].key), 3, out, &n),
		       CM_OK);
		TAP_EQ(n, 3);
		for (size_t i = 0; i < 3; i++)
			TAP_EQ(out[i], known[t].want[i]);
	}
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_equal_weights_balance);
	TAP_RUN(test_join_moves_only_to_new_node);
	TAP_RUN(test_leave_moves_only_its_keys);
	TAP_RUN(test_weighted_shares);
	TAP_RUN(test_extreme_weights);
	TAP_RUN(test_replicas_distinct_and_ranked);
	TAP_RUN(test_arguments);
	TAP_RUN(test_known_placements);
	return tap_done();
}
