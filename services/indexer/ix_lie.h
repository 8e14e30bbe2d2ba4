/* Test builds only (meson -Dtest_faults=true): an indexer that lies in its
 * search answers, for the end-to-end Byzantine tests of the gateway's merge
 * (services/gateway/gw_merge.h). Each kind is a lie the gateway must catch:
 * a fabricated vector under a real record's id (the hit then claims the
 * query itself), distances that do not match the vectors, the true nearest
 * neighbour dropped (the next one fills its place), and the signed answer
 * of the previous query replayed for this one. Never compiled into a
 * production build. */
#ifndef IX_LIE_H
#define IX_LIE_H

#include <stdint.h>

#include "cm_arena.h"
#include "ix_index.h"
#include "indexer.pb-c.h"

enum ix_lie_kind {
	IX_LIE_NONE = 0,
	IX_LIE_FABRICATE,   /* hit 0's vector replaced by the query's, its distance made to match */
	IX_LIE_DISTANCE,    /* every distance made smaller than its vector gives */
	IX_LIE_DROP_NN,     /* the nearest hit left out, the (k+1)-th added */
	IX_LIE_REPLAY,      /* the previous query's signed answer returned */
	IX_LIE_MIX,         /* the four above in turn, one per search */
};

typedef struct ix_lie ix_lie;

/* The kind named by s ("none", "fabricate", "distance", "drop_nn",
 * "replay", "mix"); CM_ERR_INVALID for another name. */
int ix_lie_parse(const char *s, int *kind);
/* A lying mode of kind; NULL for IX_LIE_NONE. Free with ix_lie_free. */
int ix_lie_new(int kind, ix_lie **out);
void ix_lie_free(ix_lie *l);
/* The lie to tell in the next answer (0: none); thread-safe. */
int ix_lie_next(ix_lie *l);
/* Tampers with an answer before it is signed: r's hits (from a search of k
 * hits, k + 1 for IX_LIE_DROP_NN) are changed in memory of a. A HAMMING
 * fabrication gives hit 0 the query's own bytes at distance 0. */
int ix_lie_tamper(int kind, const ix_spec *spec, const Muri__V1__Vector *query, uint32_t k,
		  Muri__V1__LocalSearchResponse *r, cm_arena *a);
/* Replay: keeps r (signed) and returns the answer kept from the previous
 * search of this fragment (unpacked into a), or r itself the first time. */
Muri__V1__LocalSearchResponse *ix_lie_replay(ix_lie *l, const char *magu, uint32_t fragment,
					     Muri__V1__LocalSearchResponse *r, cm_arena *a);

#endif
