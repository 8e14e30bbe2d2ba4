/* What the gateway's latest single-query searches said of each node that
 * answered (its fragment, latency, share of the final top k, proven lies),
 * kept in a small ring so that the console can show, for a search it sent
 * through the gateway's own Search, who answered it and how fast. A search
 * is found again by its fingerprint: collection, query vector, top k and
 * level. */
#ifndef GW_RECENT_H
#define GW_RECENT_H

#include <stddef.h>
#include <stdint.h>

#include "gw.h"

#define GW_RECENT_MAX 32         /* searches kept */
#define GW_RECENT_NODES 64       /* answers kept per search */

typedef struct gw_recent gw_recent;

typedef struct gw_recent_node {
	uint8_t pk[CM_PK_BYTES];
	uint32_t fragment;
	uint64_t latency_ms;
	/* the node's hits in the final top k, of those from the fragments it
	 * was asked for (over all of them) */
	uint64_t contributed, expected;
	uint64_t lies;
} gw_recent_node;

int gw_recent_new(gw_recent **out);
void gw_recent_free(gw_recent *r);
/* After a merged search (called by gw_search.c): keeps the answers of a
 * single-query search, ranked by their share of the final top k, then
 * latency. r may be NULL (nothing kept). */
void gw_recent_note(gw_recent *r, const gw_coll *m, Muri__V1__Vector *const *queries, size_t nq, uint32_t top_k,
		    int level, const gw_search_answer *ans, size_t nans, const gw_search_answer *more, size_t nmore,
		    const gw_tally *t);
/* The answers of the latest search with this fingerprint, ranked, into out
 * (room for max); CM_ERR_NOTFOUND when none is kept. */
int gw_recent_find(gw_recent *r, const char *collection, const Muri__V1__Vector *query, uint32_t top_k, int level,
		   gw_recent_node *out, size_t max, size_t *n);

#endif
