/* The canonical digest of an indexer's page of records (the Indexer's
 * Scroll), signed under CM_DOM_SCROLL by the indexer and verified by the
 * gateway. It binds the request (Magu, fragment, the id the page starts
 * after, limit, filter digest, whether vectors were asked, the scan bound)
 * and the answer (log size and Merkle root of the snapshot it was read
 * from, whether the fragment ended, the last id examined, every hit by its
 * cm_answer hit digest), so a replica that serves a page is bound to it.
 *
 * Encoding: BLAKE2b-256(CM_DOM_SCROLL || 'P' || u32 magu_len | magu ||
 * u32 fragment || 16 after id (zeros: none) || u32 limit || filter digest ||
 * u8 include_vectors || u32 scan_max || u64 log_size || 32 root || u8 done ||
 * 16 last id (zeros: none) || u32 n || n hit digests), integers big-endian. */
#ifndef CM_SCROLL_H
#define CM_SCROLL_H

#include <stdint.h>

#include "cm_crypto.h"
#include "indexer.pb-c.h"

#define CM_SCROLL_HITS_MAX 10000 /* hits of one page (an indexer's max get) */

/* The digest of request q answered by r. CM_ERR_INVALID for a Magu name
 * over 128 bytes, an after_id or last_id that is neither "" nor a UUIDv4, a
 * root that is not 32 bytes, more than CM_SCROLL_HITS_MAX hits, a filter
 * with a duplicate key or a hit cm_answer_hit_digest refuses. */
int cm_scroll_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__LocalScrollRequest *q,
		     const Muri__V1__LocalScrollResponse *r);

/* Signs r (hits, log_size, root, done and last_id set) for q: sets r->signer
 * to kp->pk and r->signature to sig, which the caller owns (CM_SIG_BYTES)
 * and keeps alive with r. */
int cm_scroll_sign(const cm_keypair *kp, const Muri__V1__LocalScrollRequest *q, Muri__V1__LocalScrollResponse *r,
		   uint8_t sig[CM_SIG_BYTES]);

/* CM_OK if r is node's signed answer to q; CM_ERR_PERM if r->signer is
 * another key; CM_ERR_VERIFY if the signature does not verify;
 * CM_ERR_INVALID if r is malformed. */
int cm_scroll_verify(const uint8_t node[CM_PK_BYTES], const Muri__V1__LocalScrollRequest *q,
		     const Muri__V1__LocalScrollResponse *r);

#endif
