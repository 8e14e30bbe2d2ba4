/* The gateway's merge of indexer answers, without I/O: given a query and, per
 * fragment, the signed answers of the replicas asked, it checks every answer
 * (signature over the canonical digest of this query and fragment, log size
 * at least the read-your-writes floor, root against the committed one and
 * the other replicas', no duplicate ids, at most k hits, every distance
 * recomputed from the returned vector), votes per candidate among a
 * fragment's valid answers (Qdrant's majority read, with distances checked),
 * keeps the global top-k and ranks the answering nodes by their share of it
 * and their latency.
 *
 * Voting. A candidate is one record (id, version, seq, vector, metadata)
 * returned by some valid answer. Another valid answer is neutral about it
 * when it has not reached the record (its log size is at most the seq),
 * when it holds a newer write of the id (a higher version, or the same
 * version at a later seq: the later record wins), or when it is full (k
 * hits) and all its hits come first (by distance, then seq, as the indexer
 * orders); otherwise it opposes it (it had the record and left it out, or
 * returned other content for it). A candidate is accepted when a majority
 * of the fragment's valid answers has reached it (a majority read: a record
 * claimed beyond every other replica's log is not taken on one word) and
 * its supporters outnumber its opponents; a tie leaves it out and counts as
 * a dispute of the fragment (the caller may ask another replica). A node caught
 * in a lie (bad signature, stale size, fabricated or mis-measured vector,
 * duplicate ids, too many hits, a root the others contradict) is no voter.
 * With an exact index (opts.exact), a node that left out an accepted
 * candidate it provably held (its log size is above the record's seq and
 * at most a supporter's), or returned a record that more opponents which
 * held its seq (at sizes up to its own) contradict than support it, is
 * flagged a liar too; with approximate indexes such a node is only
 * outvoted (it earns less share).
 *
 * Distances are recomputed in double precision as the indexer defines them
 * (types.proto: L2 squared euclidean; DOT_PRODUCT -dot; COSINE 1 - cos, both
 * vectors normalized) and must match the claimed float within
 * scale * (rel_tol + 2 * dim * FLT_EPSILON), scale being |q|^2 + |x|^2 for
 * L2, |q||x| for DOT_PRODUCT and 1 for COSINE: the bound of a float sum of
 * dim products in any order, so an honest replica on any SIMD level passes.
 * HAMMING: a hit's binary bytes give the count of differing bits
 * (cm_answer_hamming), which the claimed distance must equal exactly.
 * Results carry the recomputed distance; ties are broken by id bytes. */
#ifndef GW_MERGE_H
#define GW_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_answer.h"
#include "indexer.pb-c.h"
#include "types.pb-c.h"

#define GW_K_MAX 1000          /* top_k's upper bound */
#define GW_ANSWERS_MAX 64      /* answers of one fragment in one merge */
#define GW_WHY_MAX 128

/* Why an answer was not (fully) taken. GW_R_NO_ANSWER is no lie; every
 * other reason but GW_R_OK is. */
enum gw_reason {
	GW_R_OK = 0,
	GW_R_NO_ANSWER,  /* the call failed or timed out */
	GW_R_MALFORMED,  /* no 32-byte root, a malformed id or metadata */
	GW_R_SIGNATURE,  /* missing, forged, by another key, or over another query, fragment or answer */
	GW_R_STALE,      /* log size below the read-your-writes floor */
	GW_R_TOO_MANY,   /* more hits than k */
	GW_R_DUPLICATE,  /* one id twice */
	GW_R_VECTOR,     /* a hit without a vector, of another dimension, not finite, or zero under COSINE
			  * (HAMMING: without binary bytes of the dimension) */
	GW_R_DISTANCE,   /* a distance its vector does not give */
	GW_R_ROOT,       /* a root the committed one or the other replicas at its size contradict */
	GW_R_OMITTED,    /* left out an accepted candidate it held (exact indexes) */
	GW_R_OUTVOTED,   /* returned a record the majority proves false (exact indexes) */
	GW_R_CONFLICT,   /* returned other content for the record (id, version, seq) the majority holds */
};

/* Static name of a reason ("no_answer", "signature", ...). */
const char *gw_reason_name(int reason);

/* One replica's answer for one fragment. */
typedef struct gw_answer {
	const uint8_t *node;                        /* the 32-byte key the ledger gives this replica */
	const Muri__V1__LocalSearchResponse *resp;  /* NULL: no answer */
	uint32_t latency_us;
} gw_answer;

typedef struct gw_frag_answers {
	uint32_t fragment;
	uint64_t min_size;              /* read your writes: answers below it are stale */
	uint64_t committed_size;        /* a root committed on chain, 0: none known */
	const uint8_t *committed_root;  /* 32 bytes when committed_size > 0 */
	const gw_answer *answers;
	size_t n;                       /* at most GW_ANSWERS_MAX */
} gw_frag_answers;

typedef struct gw_query {
	const char *magu;
	const float *vec;               /* the query as the client sent it (NULL for HAMMING) */
	const uint8_t *bin;             /* HAMMING: the packed query, dim / 8 bytes */
	uint32_t dim;                   /* values, or bits under HAMMING */
	int metric;                     /* Muri__V1__Metric: COSINE, L2, DOT_PRODUCT, HAMMING */
	uint32_t k;                     /* 1..GW_K_MAX, as sent to the indexers */
	const Muri__V1__Filter *filter; /* as sent to the indexers, NULL: none */
} gw_query;

/* Checks a test may switch off to show that its simulation notices
 * (tests/gateway/test_merge_sim.c, MURI_SIM_BUG); 0 everywhere else. */
enum gw_skip {
	GW_SKIP_SIGNATURE = 1,          /* take answers without checking signatures */
	GW_SKIP_DISTANCE = 2,           /* take claimed distances without recomputing */
	GW_SKIP_VOTE = 4,               /* accept every candidate, flag no one */
	GW_SKIP_STALE = 8,              /* ignore the read-your-writes floor */
};

typedef struct gw_merge_opts {
	double rel_tol;                 /* added to the float bound above; 0: 1e-6 */
	int exact;                      /* 1: the indexes are exact (FLAT): omissions are lies */
	uint32_t skip;                  /* enum gw_skip, tests only */
	const cm_answer_seen *seen;     /* batch signatures verified before (NULL: check every one) */
} gw_merge_opts;

typedef struct gw_hit {
	const Muri__V1__Hit *hit;       /* borrowed from one of the answers */
	uint32_t fragment;
	float distance;                 /* recomputed by the gateway */
	uint8_t id[CM_ANSWER_ID_BYTES];
	uint32_t support;               /* valid answers of its fragment that returned it */
} gw_hit;

/* What became of one answer (input order: fragment by fragment). */
typedef struct gw_report {
	const uint8_t *node;
	uint32_t fragment;
	int answered;                   /* a response came */
	int valid;                      /* it took part in the vote */
	int liar;                       /* a lie was proven (reason) */
	int reason;                     /* enum gw_reason, the first found */
	char why[GW_WHY_MAX];           /* the reason in words, naming the hit */
	uint64_t log_size;
	uint32_t hits;                  /* hits returned */
	uint32_t contributed;           /* of which in the final top-k */
	uint32_t rejected;              /* of which dropped by a check or outvoted */
	uint32_t latency_us;
} gw_report;

/* A node's standing in this merge, over all its answers. */
typedef struct gw_node_rank {
	const uint8_t *node;
	uint32_t rank;                  /* 1 = best */
	int liar;                       /* lied in any answer: ranks after every other node */
	int answered;                   /* answered at least once */
	uint32_t contributed;           /* its hits in the final top-k */
	uint32_t expected;              /* final top-k hits from the fragments it was asked for */
	double share;                   /* contributed / expected (1 when expected is 0) */
	uint32_t latency_us;            /* its slowest answer */
} gw_node_rank;

typedef struct gw_frag_outcome {
	uint32_t fragment;
	uint32_t asked, answered, valid;
	uint32_t disputed;              /* candidates left out on a tied vote */
	uint32_t in_topk;               /* final hits from this fragment */
	uint64_t log_size;              /* the largest log size a valid answer was computed at */
	const uint8_t *root;            /* that answer's root (32 bytes, borrowed), NULL if none valid */
} gw_frag_outcome;

typedef struct gw_merge_result {
	gw_hit *hits;                   /* nearest first, at most k */
	size_t n;
	gw_report *reports;             /* one per answer given */
	size_t nreports;
	gw_node_rank *ranks;            /* one per distinct node, best first */
	size_t nranks;
	gw_frag_outcome *frags;         /* one per fragment given, in order */
	size_t nfrags;
} gw_merge_result;

/* Merges the answers. *out is owned by the caller (gw_merge_result_free) and
 * borrows from q and the answers, which must outlive it. CM_ERR_INVALID
 * (with err naming the field) for a query out of range or a fragment with
 * more than GW_ANSWERS_MAX answers; CM_ERR_NOMEM. Bad answers are never an
 * error: they are reported. */
int gw_merge(const gw_query *q, const gw_frag_answers *frags, size_t nfrags, const gw_merge_opts *o,
	     gw_merge_result *out, char *err, size_t errlen);
/* Releases what gw_merge allocated; accepts NULL and a zeroed result. */
void gw_merge_result_free(gw_merge_result *r);

/* The distance the indexer gives for metric, in double precision, and the
 * tolerance a claimed float must be within; CM_ERR_INVALID for a zero vector
 * under COSINE or an unknown metric. */
int gw_distance(int metric, const float *q, const float *x, uint32_t dim, double rel_tol, double *d,
		double *tol);

#endif
