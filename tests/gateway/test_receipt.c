/* Tests of the gateway's search receipts without I/O (gw_receipt.h and
 * gw_rank_receipt): the bounded queue (FIFO, a full queue refuses the
 * newest and keeps the rest, wrap-around), dropping a node from a receipt,
 * what the ledger's Settle failure messages ask of the gateway, and the
 * order a receipt pays its nodes in. */
#include "tap.h"
#include "cm_err.h"
#include "gw_rank.h"
#include "gw_receipt.h"

#include <stdlib.h>
#include <string.h>

static gw_receipt *mk(uint64_t queries, size_t n)
{
	gw_receipt *r = gw_receipt_new(n);
	if (r) {
		r->queries = queries;
		for (size_t j = 0; j < n; j++)
			memset(r->nodes[j], (int)(0x20 + j), CM_PK_BYTES);
	}
	return r;
}

static void test_queue(void)
{
	gw_rqueue q;
	gw_receipt *out[8];
	TAP_EQ(gw_rqueue_init(&q, 3), CM_OK);
	TAP_EQ(gw_rqueue_take(&q, out, 8), 0);
	for (uint64_t i = 1; i <= 3; i++)
		TAP_EQ(gw_rqueue_push(&q, mk(i, 1)), CM_OK);
	/* full: the newest is refused and stays the caller's */
	gw_receipt *x = mk(4, 1);
	TAP_EQ(gw_rqueue_push(&q, x), CM_ERR_TOOBIG);
	TAP_EQ(q.n, 3);
	/* oldest first, at most max */
	TAP_EQ(gw_rqueue_take(&q, out, 2), 2);
	TAP_EQ(out[0]->queries, 1);
	TAP_EQ(out[1]->queries, 2);
	free(out[0]);
	free(out[1]);
	/* room again; the order survives the wrap-around */
	TAP_EQ(gw_rqueue_push(&q, x), CM_OK);
	TAP_EQ(gw_rqueue_push(&q, mk(5, 1)), CM_OK);
	TAP_EQ(gw_rqueue_take(&q, out, 8), 3);
	TAP_EQ(out[0]->queries, 3);
	TAP_EQ(out[1]->queries, 4);
	TAP_EQ(out[2]->queries, 5);
	for (int i = 0; i < 3; i++)
		free(out[i]);
	/* freeing a queue frees what it holds */
	TAP_EQ(gw_rqueue_push(&q, mk(6, 2)), CM_OK);
	gw_rqueue_free(&q);
	TAP_CHECK(q.v == NULL && q.n == 0);
}

static void test_receipt_nodes(void)
{
	TAP_CHECK(gw_receipt_new(0) == NULL);
	TAP_CHECK(gw_receipt_new(GW_RECEIPT_NODES_MAX + 1) == NULL);
	gw_receipt *r = mk(1, 3);
	TAP_CHECK(r != NULL);
	TAP_EQ(gw_receipt_drop_node(r, 1), 2);
	TAP_EQ(r->nodes[0][0], 0x20);
	TAP_EQ(r->nodes[1][0], 0x22); /* the third moved up one rank */
	TAP_EQ(gw_receipt_drop_node(r, 5), 2); /* no such node: unchanged */
	TAP_EQ(gw_receipt_drop_node(r, 0), 1);
	TAP_EQ(gw_receipt_drop_node(r, 0), 0);
	free(r);
}

/* A node that left one Magu leaves the receipts of that Magu only. */
static void test_drop_node_from_batch(void)
{
	gw_receipt *v[3] = {mk(1, 3), mk(1, 1), mk(1, 2)};
	snprintf(v[0]->magu, sizeof(v[0]->magu), "a");
	snprintf(v[1]->magu, sizeof(v[1]->magu), "a");
	snprintf(v[2]->magu, sizeof(v[2]->magu), "b");
	uint8_t node[CM_PK_BYTES];
	memset(node, 0x20, CM_PK_BYTES); /* rank 0 of every receipt */
	TAP_EQ(gw_receipts_drop_node(v, 3, "a", node), 2);
	TAP_EQ(v[0]->nnodes, 2);
	TAP_EQ(v[0]->nodes[0][0], 0x21); /* the others move up */
	TAP_EQ(v[1]->nnodes, 0);         /* nobody left: the caller gives it up */
	TAP_EQ(v[2]->nnodes, 2);         /* another Magu: untouched */
	TAP_EQ(gw_receipts_drop_node(v, 3, "a", node), 0);
	for (int i = 0; i < 3; i++)
		free(v[i]);
}

/* The ledger's own messages (lg_st_settle.c, lg_tx.c, lg_state.c,
 * lg_node_admit.c), as a Settle of 4 receipts would get them. */
static void test_faults(void)
{
	static const struct {
		const char *msg;
		gw_fault_kind kind;
		size_t receipt, node;
	} cases[] = {
		{"settle.receipts[2].ranked_nodes[1]: 4f2a...c3 is not a member of Magu \"docs\"", GW_FAULT_DROP_NODE, 2, 1},
		{"settle.receipts[0].ranked_nodes[3]: repeats node 1", GW_FAULT_DROP_NODE, 0, 3},
		{"settle.receipts[1].magu: no Magu \"docs\"", GW_FAULT_DROP_RECEIPT, 1, 0},
		{"settle.receipts[3].ranked_nodes: 0 nodes, expected 1..64", GW_FAULT_DROP_RECEIPT, 3, 0},
		{"settle.receipts[1].id: receipt 00ff of this gateway was settled already", GW_FAULT_SETTLED, 1, 0},
		{"settle.receipts[1].id: 8 bytes, expected 16..32", GW_FAULT_DROP_RECEIPT, 1, 0},
		{"settle.receipts[0].fee: 1 is below search_fee 5", GW_FAULT_FEE, 0, 0},
		{"settle.receipts[2].searcher: 9a9a gave this gateway no allowance (Approve)", GW_FAULT_ALLOWANCE, 2, 0},
		{"settle.receipts[2].searcher: the allowance of 9a9a expired at height 70", GW_FAULT_ALLOWANCE, 2, 0},
		{"settle.receipts[3].fee: 10 exceeds the allowance left, 4", GW_FAULT_ALLOWANCE, 3, 0},
		{"settle.receipts[1].fee: searcher 9a9a has 3, fee 10", GW_FAULT_BALANCE, 1, 0},
		{"fee: insufficient balance 0 for the fee 1", GW_FAULT_GAS, 0, 0},
		{"insufficient balance: 77ab has 0, the transaction needs 1", GW_FAULT_GAS, 0, 0},
		{"sender: unknown account 77ab", GW_FAULT_GAS, 0, 0},
		{"nonce: 3 was used already (next is 4)", GW_FAULT_RETRY, 0, 0},
		{"mempool full (mempool_max_txs, mempool_max_bytes or mempool_per_sender)", GW_FAULT_RETRY, 0, 0},
		/* an index beyond the Settle's receipts names nothing this gateway sent */
		{"settle.receipts[4].magu: no Magu \"docs\"", GW_FAULT_RETRY, 0, 0},
		{"settle.receipts[x].magu: junk", GW_FAULT_RETRY, 0, 0},
		{"", GW_FAULT_RETRY, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_fault f;
		gw_fault_parse(cases[i].msg, 4, &f);
		if (f.kind != cases[i].kind)
			printf("# %s -> %s\n", cases[i].msg, gw_fault_name(f.kind));
		TAP_EQ(f.kind, cases[i].kind);
		TAP_EQ(f.receipt, cases[i].receipt);
		TAP_EQ(f.node, cases[i].node);
	}
	gw_fault f;
	gw_fault_parse(NULL, 4, &f);
	TAP_EQ(f.kind, GW_FAULT_RETRY);
	TAP_STREQ(gw_fault_name(GW_FAULT_BALANCE), "balance");
}

static void test_receipt_order(void)
{
	uint8_t k[6][CM_PK_BYTES];
	for (int i = 0; i < 6; i++)
		memset(k[i], 0x40 + i, CM_PK_BYTES);
	gw_ranks r;
	TAP_EQ(gw_ranks_init(&r, 16, 0), CM_OK);
	/* node 4 has been slow: a lower score in the table, so it loses a tie */
	gw_node_rank nr = {.node = k[4], .answered = 1, .share = 1, .latency_us = 80000};
	gw_merge_result m = {.ranks = &nr, .nranks = 1};
	gw_ranks_update(&r, &m);
	gw_rank_input in[] = {
		{.node = k[0], .contributed = 5, .expected = 10, .answered = 2},           /* share 0.5 */
		{.node = k[1], .contributed = 10, .expected = 10, .answered = 2},          /* share 1 */
		{.node = k[2], .contributed = 10, .expected = 10, .answered = 2, .lies = 1}, /* lied: unpaid */
		{.node = k[3], .contributed = 0, .expected = 0, .answered = 0},            /* silent: unpaid */
		{.node = k[4], .contributed = 10, .expected = 10, .answered = 2},          /* share 1, slow */
		{.node = k[5], .contributed = 0, .expected = 0, .answered = 1},            /* nothing expected: 1 */
	};
	size_t order[6];
	TAP_EQ(gw_rank_receipt(&r, in, 6, order, 6), 4);
	TAP_EQ(order[0], 1); /* share 1, a new node's score (1) */
	TAP_EQ(order[1], 5); /* share 1, key 0x45 after 0x41 */
	TAP_EQ(order[2], 4); /* share 1, slow */
	TAP_EQ(order[3], 0); /* share 0.5 */
	/* at most max */
	TAP_EQ(gw_rank_receipt(&r, in, 6, order, 2), 2);
	TAP_EQ(order[0], 1);
	TAP_EQ(order[1], 5);
	TAP_EQ(gw_rank_receipt(&r, in, 0, order, 6), 0);
	gw_ranks_free(&r);
}

int main(void)
{
	TAP_RUN(test_queue);
	TAP_RUN(test_receipt_nodes);
	TAP_RUN(test_drop_node_from_batch);
	TAP_RUN(test_faults);
	TAP_RUN(test_receipt_order);
	return tap_done();
}
