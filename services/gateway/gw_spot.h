/* Spot checks of indexer answers, without I/O: which answers and hits to
 * check (a configurable share, drawn from a salt), whether an inclusion
 * proof of a returned hit against the fragment's committed root shows the
 * record genuine or fabricated (cm_answer_fraud, the ledger's own rule), and
 * the ReportAnswer evidence to submit when it is fabricated. The caller asks
 * any replica for InclusionProof(index = hit seq, size = committed size):
 * a proof that does not verify against the committed root says nothing
 * about the accused, only about the prover. */
#ifndef GW_SPOT_H
#define GW_SPOT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_answer.h"
#include "cm_arena.h"
#include "indexer.pb-c.h"
#include "ledger.pb-c.h"

enum gw_spot_verdict {
	GW_SPOT_GENUINE = 0,   /* the committed log holds the hit's record */
	GW_SPOT_FALSE,         /* the answer is proven false: report it */
	GW_SPOT_NO_PROOF,      /* the proof does not verify (ask another replica) */
	GW_SPOT_UNCOVERED,     /* the hit is beyond the committed size: check later */
};

/* Whether to spot-check an answer, one in 1000/permille drawn from salt
 * (e.g. a query counter), and which hit: one of those below committed_size,
 * drawn from salt too. Returns 1 with *hit set, 0 for no check. */
int gw_spot_pick(uint64_t salt, uint32_t permille, const Muri__V1__LocalSearchResponse *r, uint64_t committed_size,
		 size_t *hit);

/* The verdict on hit `hit` of answer r, signed by node for query digest
 * query on (magu, fragment), given proof (InclusionProof at the hit's seq
 * and committed_size) and the committed root; *why (may be NULL) in words. */
int gw_spot_judge(const uint8_t node[CM_PK_BYTES], const uint8_t query[CM_HASH_BYTES], const char *magu,
		  uint32_t fragment, const Muri__V1__LocalSearchResponse *r, size_t hit,
		  const Muri__V1__InclusionProofResponse *proof, uint64_t committed_size,
		  const uint8_t committed_root[CM_HASH_BYTES], const char **why);

/* The ReportAnswer payload for a false answer (hit and proof as judged;
 * proof NULL with by_root for an answer whose root contradicts the committed
 * one at its size), built in a: every field points into a, r or proof,
 * which must outlive it. CM_ERR_NOMEM. */
int gw_spot_evidence(const char *magu, uint32_t fragment, const uint8_t query[CM_HASH_BYTES],
		     const Muri__V1__LocalSearchResponse *r, int by_root, size_t hit,
		     const Muri__V1__InclusionProofResponse *proof, cm_arena *a, Muri__V1__ReportAnswer **out);

#endif
