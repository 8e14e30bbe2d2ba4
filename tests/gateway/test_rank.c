/* Tests of services/gateway/gw_rank: node ranks across merges and the
 * choice of replicas to ask: counts per level, liars and silent nodes last,
 * slow nodes after fast ones, load spread over equals by the salt, and a
 * full table. */
#include "tap.h"
#include "cm_err.h"
#include "gw_rank.h"

#include <string.h>

#define N 5

static uint8_t keys[N][CM_PK_BYTES];

/* One merge's ranks: node i with the given share, latency, answered and liar flags. */
static void merge_round(gw_ranks *r, const double *share, const uint32_t *lat_us, const int *answered,
			const int *liar)
{
	gw_node_rank nr[N];
	memset(nr, 0, sizeof(nr));
	for (int i = 0; i < N; i++) {
		nr[i].node = keys[i];
		nr[i].share = share[i];
		nr[i].latency_us = lat_us[i];
		nr[i].answered = answered[i];
		nr[i].liar = liar[i];
	}
	gw_merge_result m = {.ranks = nr, .nranks = N};
	gw_ranks_update(r, &m);
}

static void test_levels(void)
{
	gw_ranks r;
	size_t c[N];
	TAP_EQ(gw_ranks_init(&r, 16, 0), CM_OK);
	TAP_EQ(gw_pick(&r, keys, 5, MURI__V1__CONSISTENCY_LEVEL__ONE, 1, c), 1);
	TAP_EQ(gw_pick(&r, keys, 5, MURI__V1__CONSISTENCY_LEVEL__QUORUM, 1, c), 3);
	TAP_EQ(gw_pick(&r, keys, 4, MURI__V1__CONSISTENCY_LEVEL__QUORUM, 1, c), 3);
	TAP_EQ(gw_pick(&r, keys, 3, MURI__V1__CONSISTENCY_LEVEL__CONSISTENCY_UNSPECIFIED, 1, c), 2);
	TAP_EQ(gw_pick(&r, keys, 5, MURI__V1__CONSISTENCY_LEVEL__ALL, 1, c), 5);
	int seen[N] = {0};
	for (int i = 0; i < N; i++)
		seen[c[i]]++;
	for (int i = 0; i < N; i++)
		TAP_EQ(seen[i], 1);
	TAP_EQ(gw_pick(&r, keys, 0, MURI__V1__CONSISTENCY_LEVEL__ALL, 1, c), 0);
	gw_ranks_free(&r);
}

static void test_liar_silent_and_slow_last(void)
{
	gw_ranks r;
	TAP_EQ(gw_ranks_init(&r, 16, 0), CM_OK);
	/* node 0 lies once; node 1 stops answering; node 2 is slow; 3 and 4 are good */
	for (int round = 0; round < 20; round++)
		merge_round(&r, (double[]){0, 0, 1, 1, 1}, (uint32_t[]){500, 0, 60000, 800, 900},
			    (int[]){1, 0, 1, 1, 1}, (int[]){round == 0, 0, 0, 0, 0});
	gw_rank_entry e;
	TAP_EQ(gw_ranks_get(&r, keys[0], &e), CM_OK);
	TAP_EQ(e.lies, 1);
	TAP_CHECK(e.lie > GW_RANK_SUSPECT);
	TAP_CHECK(gw_ranks_score(&r, keys[3]) > gw_ranks_score(&r, keys[2]));
	TAP_CHECK(gw_ranks_score(&r, keys[2]) > gw_ranks_score(&r, keys[1]));
	for (uint64_t salt = 0; salt < 50; salt++) {
		size_t c[N];
		TAP_EQ(gw_pick(&r, keys, N, MURI__V1__CONSISTENCY_LEVEL__QUORUM, salt, c), 3);
		/* the two good nodes first, then the slow one; never the liar or the silent one */
		TAP_CHECK((c[0] == 3 && c[1] == 4) || (c[0] == 4 && c[1] == 3));
		TAP_EQ(c[2], 2);
		TAP_EQ(gw_pick(&r, keys, N, MURI__V1__CONSISTENCY_LEVEL__ALL, salt, c), N);
		TAP_EQ(c[N - 1], 0); /* the liar last, even after the silent node */
	}
	/* a node never seen is tried before known good ones (optimistic) */
	uint8_t fresh[1][CM_PK_BYTES] = {{0xee}};
	TAP_EQ(gw_ranks_get(&r, fresh[0], &e), CM_ERR_NOTFOUND);
	TAP_CHECK(gw_ranks_score(&r, fresh[0]) >= gw_ranks_score(&r, keys[3]));
	gw_ranks_free(&r);
}

static void test_load_spreads_over_equals(void)
{
	gw_ranks r;
	int first[N] = {0};
	TAP_EQ(gw_ranks_init(&r, 16, 0), CM_OK);
	for (int round = 0; round < 5; round++)
		merge_round(&r, (double[]){1, 1, 1, 1, 1}, (uint32_t[]){1000, 1100, 1200, 900, 1000},
			    (int[]){1, 1, 1, 1, 1}, (int[]){0, 0, 0, 0, 0});
	for (uint64_t salt = 0; salt < 1000; salt++) {
		size_t c[N];
		gw_pick(&r, keys, N, MURI__V1__CONSISTENCY_LEVEL__ONE, salt, c);
		first[c[0]]++;
	}
	for (int i = 0; i < N; i++)
		TAP_CHECK(first[i] > 120 && first[i] < 280); /* about 200 each */
	/* the same salt, the same choice */
	size_t a[N], b[N];
	gw_pick(&r, keys, N, MURI__V1__CONSISTENCY_LEVEL__ALL, 77, a);
	gw_pick(&r, keys, N, MURI__V1__CONSISTENCY_LEVEL__ALL, 77, b);
	TAP_CHECK(memcmp(a, b, sizeof(a)) == 0);
	gw_ranks_free(&r);
}

static void test_full_table(void)
{
	gw_ranks r;
	TAP_EQ(gw_ranks_init(&r, 3, 0.5), CM_OK);
	for (int round = 0; round < 3; round++)
		merge_round(&r, (double[]){1, 1, 1, 1, 1}, (uint32_t[]){1, 1, 1, 1, 1}, (int[]){1, 1, 1, 1, 1},
			    (int[]){0, 0, 0, 0, 0});
	TAP_EQ(r.n, 3);
	gw_ranks_free(&r);
	gw_ranks_free(NULL);
}

int main(void)
{
	for (int i = 0; i < N; i++)
		memset(keys[i], 0x10 + i, CM_PK_BYTES);
	TAP_RUN(test_levels);
	TAP_RUN(test_liar_silent_and_slow_last);
	TAP_RUN(test_load_spreads_over_equals);
	TAP_RUN(test_full_table);
	return tap_done();
}
