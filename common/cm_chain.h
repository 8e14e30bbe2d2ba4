/* The ledger's chain as everyone sees it: blocks and quorum certificates,
 * their canonical encoding, the block hash, the vote digest and QC
 * verification. The consensus core (services/ledger/lg_hotstuff) produces
 * them; followers (gateways, indexers, the muri command) check them with the
 * same code, trusting no replica. */
#ifndef CM_CHAIN_H
#define CM_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"

#define CM_CHAIN_MAX_REPLICAS 64                  /* signer sets are a 64-bit bitmap */
#define CM_CHAIN_MAX_VIEW ((uint64_t)1 << 62)     /* larger views are malformed input */
#define CM_CHAIN_PAYLOAD_LIMIT (64u << 20)        /* largest payload a block may carry */
#define CM_CHAIN_ENCODING_VERSION 1

/* Encoded sizes (bytes) of the fixed parts; see cm_chain.c for the layout. */
#define CM_QC_HEADER_BYTES (8 + CM_HASH_BYTES + 8)
#define CM_BLOCK_HEADER_BYTES (1 + 8 + 8 + CM_HASH_BYTES + 4 + 4)
#define CM_QC_MAX_BYTES (CM_QC_HEADER_BYTES + CM_CHAIN_MAX_REPLICAS * CM_SIG_BYTES)

/* A quorum certificate: n-f (2f+1 when n = 3f+1) replicas' signatures over
 * cm_vote_digest(chain, view, block_hash). The genesis QC has view 0, the
 * genesis hash and no signers. */
typedef struct cm_qc {
	uint64_t view;
	uint8_t block_hash[CM_HASH_BYTES];
	uint64_t signers;                                   /* bit i: replica i signed */
	uint8_t sigs[CM_CHAIN_MAX_REPLICAS][CM_SIG_BYTES];  /* sigs[i] valid if bit i set */
} cm_qc;

/* A block. parent must equal justify.block_hash (chained HotStuff extends
 * the block its QC certifies); height = parent height + 1. The payload is
 * opaque here and borrowed: it belongs to whoever filled the struct. hash is
 * an output of cm_block_hash (never trust a caller's hash). */
typedef struct cm_block {
	uint64_t height;
	uint64_t view;
	uint8_t parent[CM_HASH_BYTES];
	cm_qc justify;
	uint32_t proposer;
	uint32_t payload_len;
	const uint8_t *payload;
	uint8_t hash[CM_HASH_BYTES];
} cm_block;

/* The 32-byte chain tag that every vote digest carries: H(CM_DOM_VOTE ||
 * 'C' || chain id), so a signature of one chain is worthless on another. */
void cm_chain_tag(uint8_t out[CM_HASH_BYTES], const char *chain_id);

void cm_block_genesis(cm_block *out);          /* height 0, view 0, empty payload */
void cm_qc_genesis(cm_qc *out);
int cm_qc_is_genesis(const cm_qc *qc);
/* Computes b->hash = H(CM_DOM_BLOCK || header fields || QC || payload_len ||
 * H(CM_DOM_BLOCK || 0x00 || payload)), the header fields as in the block
 * encoding below. */
void cm_block_hash(cm_block *b);
/* Votes sign H(CM_DOM_VOTE || chain tag || view || block hash). */
void cm_vote_digest(uint8_t out[CM_HASH_BYTES], const uint8_t chain[CM_HASH_BYTES], uint64_t view,
		    const uint8_t hash[CM_HASH_BYTES]);
/* 0 if qc is the genesis QC or carries at least n-f valid signatures of
 * distinct replicas < n over its vote digest on this chain; CM_ERR_INVALID
 * for a malformed QC (view, signer bits past n, bad n/f), CM_ERR_VERIFY for
 * too few signers or a signature that does not verify. verify returns 0 if
 * sig is replica's signature over digest. */
int cm_qc_verify(const cm_qc *qc, const uint8_t chain[CM_HASH_BYTES], uint32_t n, uint32_t f,
		 int (*verify)(void *ctx, uint32_t replica, const uint8_t digest[CM_HASH_BYTES],
			       const uint8_t sig[CM_SIG_BYTES]),
		 void *ctx);
uint32_t cm_qc_count(const cm_qc *qc);
/* 1 if a and b are the same certificate byte for byte (view, hash, signers
 * and every signature). */
int cm_qc_same(const cm_qc *a, const cm_qc *b);

/* Canonical encodings: big-endian fixed-width fields, no padding, nothing
 * left over. *_size returns the exact encoded size; *_encode writes it into
 * buf (CM_ERR_TOOBIG if cap is short); *_decode checks every length and
 * fails with CM_ERR_INVALID on malformed input, writing *out only on
 * success. A decoded block's payload points into buf, and its hash is
 * computed.
 *   QC:    view u64 | block_hash 32 | signers u64 | one 64-byte signature
 *          per set bit, lowest replica first
 *   block: version u8 | height u64 | view u64 | parent 32 | proposer u32 |
 *          QC | payload_len u32 | payload */
size_t cm_qc_size(const cm_qc *qc);
int cm_qc_encode(const cm_qc *qc, uint8_t *buf, size_t cap, size_t *len);
int cm_qc_decode(const uint8_t *buf, size_t len, cm_qc *out);
size_t cm_block_size(const cm_block *b);
int cm_block_encode(const cm_block *b, uint8_t *buf, size_t cap, size_t *len);
int cm_block_decode(const uint8_t *buf, size_t len, cm_block *out);
/* The same, for encoders that embed QCs and blocks in larger messages:
 * *_put writes at p (room for *_size bytes) and returns the bytes written;
 * *_get parses at the start of buf and returns the bytes used, 0 if
 * malformed. */
size_t cm_qc_put(const cm_qc *qc, uint8_t *p);
size_t cm_qc_get(const uint8_t *buf, size_t len, cm_qc *qc);
size_t cm_block_put(const cm_block *b, uint8_t *p);
size_t cm_block_get(const uint8_t *buf, size_t len, cm_block *b);

#endif
