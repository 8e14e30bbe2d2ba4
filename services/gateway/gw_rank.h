/* Node ranks kept across searches, without I/O: every merge (gw_merge.h)
 * folds each node's share of the final top-k, its latency, its failures to
 * answer and its proven lies into moving averages; gw_pick then chooses,
 * for one fragment, which replicas to ask at ONE, QUORUM or ALL, preferring
 * nodes that were never caught lying, answer, contribute and are fast, and
 * spreading load over equally good ones. Not thread-safe: the caller holds
 * a lock around every call. */
#ifndef GW_RANK_H
#define GW_RANK_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "gw_merge.h"

#define GW_RANK_ALPHA 0.1          /* weight of the newest merge in the averages */
#define GW_RANK_SUSPECT 0.01       /* a lie average above this: asked only when needed */
#define GW_RANK_LATENCY_MS 100.0   /* this much latency costs as much as all of the share */
#define GW_RANK_BUCKETS 20         /* scores this close count as equal (load spreads over them) */

typedef struct gw_rank_entry {
	uint8_t node[CM_PK_BYTES];
	double share;                  /* average share of the final top-k; 1 for a new node */
	double latency_ms;             /* average latency of its answers */
	double fail;                   /* average of merges it was asked in and did not answer */
	double lie;                    /* average of merges it lied in */
	uint64_t merges, answers, lies;
} gw_rank_entry;

typedef struct gw_ranks {
	gw_rank_entry *e;
	size_t n, cap;
	double alpha;
} gw_ranks;

/* An empty table of at most cap nodes (when full, the node in the fewest
 * merges gives its place to a new one); alpha 0: GW_RANK_ALPHA. The caller
 * owns the table and releases it with gw_ranks_free, which accepts NULL. */
int gw_ranks_init(gw_ranks *r, size_t cap, double alpha);
void gw_ranks_free(gw_ranks *r);

/* Folds one merge's node ranks into the table (its room is fixed at init). */
void gw_ranks_update(gw_ranks *r, const gw_merge_result *m);

/* A node's entry; CM_ERR_NOTFOUND if the table has none. */
int gw_ranks_get(const gw_ranks *r, const uint8_t node[CM_PK_BYTES], gw_rank_entry *out);
/* The score gw_pick orders by: share x (1 - fail) - latency / GW_RANK_LATENCY_MS;
 * a node not in the table scores as a new one (1). */
double gw_ranks_score(const gw_ranks *r, const uint8_t node[CM_PK_BYTES]);

/* Which of a fragment's n replicas to ask at level (Muri__V1__ConsistencyLevel:
 * ONE 1, QUORUM n/2 + 1, ALL n; UNSPECIFIED as QUORUM): writes their
 * indices, best first, into chosen (room for n) and returns how many.
 * Suspected liars come last, then by score in buckets of 1/GW_RANK_BUCKETS,
 * equal buckets in an order drawn from salt (e.g. a query counter) and the
 * node, so that load spreads; the whole order is deterministic in salt. */
size_t gw_pick(const gw_ranks *r, const uint8_t (*replicas)[CM_PK_BYTES], size_t n, int level, uint64_t salt,
	       size_t *chosen);
/* The number of replicas a level asks of n. */
size_t gw_level_count(int level, size_t n);

/* What one request's merges said of a node, for its receipt. */
typedef struct gw_rank_input {
	const uint8_t *node;
	uint64_t contributed, expected, answered, lies;
} gw_rank_input;

/* The order a request's receipt pays its nodes in: writes into order (room
 * for max) the indices of in[0..n) that answered and told no proven lie in
 * this request, best first, and returns how many. Best: the larger share of
 * this request's final top-k hits from the fragments it was asked for
 * (contributed / expected; 1 when expected is 0), then the larger score in
 * the table (gw_ranks_score: answers, failures and latency over time), then
 * the smaller key. */
size_t gw_rank_receipt(const gw_ranks *r, const gw_rank_input *in, size_t n, size_t *order, size_t max);

#endif
