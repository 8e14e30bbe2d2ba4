/* The canonical digest of an indexer's search answer, signed by the indexer
 * (alone, or with other answers under the Merkle root of their digests,
 * CM_DOM_ANSWER_BATCH, below) and verified by gateways and the ledger. It binds the
 * query (vector digest, k, filter), the Magu and fragment, the log size and
 * Merkle root the answer was computed at, and every hit (id, version, seq,
 * distance bits, vector digest, metadata digest); it never depends on how
 * protobuf serializes a map (filter and metadata keys are sorted).
 *
 * Encoding: every digest is BLAKE2b-256(CM_DOM_ANSWER || kind byte || ...)
 * with fixed-width big-endian integers (cm_bytes.h), except the vector and
 * metadata bytes, which are those of the record's canonical bytes
 * (services/indexer/ix_record.h, little-endian), so a Merkle leaf's vector and
 * metadata hash to the same digests as the hit that claims to be it. */
#ifndef CM_ANSWER_H
#define CM_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "indexer.pb-c.h"
#include "types.pb-c.h"

#define CM_ANSWER_ID_BYTES 16   /* a UUIDv4 */
#define CM_ANSWER_MAGU_MAX 128  /* bytes of a Magu name */
#define CM_ANSWER_HITS_MAX 1000 /* hits of one answer (top_k's upper bound) */

/* Kind bytes after the domain, keeping the digests of this file apart. */
enum cm_answer_kind {
	CM_ANSWER_K_VECTOR = 'V',
	CM_ANSWER_K_METADATA = 'M',
	CM_ANSWER_K_FILTER = 'F',
	CM_ANSWER_K_QUERY = 'Q',
	CM_ANSWER_K_HIT = 'H',
	CM_ANSWER_K_ANSWER = 'A',
	CM_ANSWER_K_BINARY = 'B',
};

/* H('V' || u32 dim || dim x f32 bits little-endian). */
void cm_answer_vector_digest(uint8_t out[CM_HASH_BYTES], const float *v, uint32_t dim);
/* The same digest over vector bytes as a canonical record holds them
 * (dim x 4 bytes, little-endian f32). */
void cm_answer_vector_digest_le(uint8_t out[CM_HASH_BYTES], const uint8_t *le, uint32_t dim);

/* A binary vector (HAMMING): H('B' || u32 nbytes || the packed bytes), as a
 * canonical record of format 2 holds them. */
void cm_answer_binary_digest(uint8_t out[CM_HASH_BYTES], const uint8_t *b, uint32_t nbytes);
/* The digest of a Vector message: binary when its `binary` bytes are set,
 * else of its float values (NULL: of no values). */
void cm_answer_pb_vector_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__Vector *v);

/* The HAMMING metric's distance between two packed binary vectors of
 * nbytes bytes: the number of bits in which they differ (what an indexer's
 * binary index computes, and a gateway recomputes to verify a hit). */
uint32_t cm_answer_hamming(const uint8_t *a, const uint8_t *b, size_t nbytes);

/* H('M' || u16 n || fields sorted by key bytes, each as in a canonical record:
 * u8 key_len | key | u8 type | value). NULL or no fields: n = 0.
 * CM_ERR_INVALID for a duplicate or empty key, a key over 255 bytes, a
 * string over 65535 bytes or a value without a kind; CM_ERR_NOMEM. */
int cm_answer_metadata_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__Metadata *m);
/* The same digest over a record's metadata bytes (u16 n | fields), which a
 * canonical record keeps sorted. */
void cm_answer_metadata_digest_le(uint8_t out[CM_HASH_BYTES], const uint8_t *fields, size_t len);

/* H('F' || u32 n || conditions sorted by key: u32 key_len | key | u8 mask of
 * present parts (1 eq, 2 in, 4 gt, 8 gte, 16 lt, 32 lte) | eq value | u32 n
 * in values | values | the present bounds as f64 bits). A value is u8 kind |
 * string (u32 len | bytes), number (f64 bits), bool (u8), int (i64).
 * NULL or no conditions: n = 0. CM_ERR_INVALID for a duplicate key. */
int cm_answer_filter_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__Filter *f);

/* H('Q' || u32 dim || vector digest || u32 k || filter digest). */
int cm_answer_query_digest(uint8_t out[CM_HASH_BYTES], const float *v, uint32_t dim, uint32_t k,
			   const Muri__V1__Filter *filter);

/* A binary query: H('Q' || u32 nbytes * 8 || binary digest || u32 k || filter
 * digest); the kind byte of the vector digest keeps it apart from a float
 * query. */
int cm_answer_query_digest_bin(uint8_t out[CM_HASH_BYTES], const uint8_t *b, uint32_t nbytes, uint32_t k,
			       const Muri__V1__Filter *filter);
/* The query digest of a Vector message: binary or float, as it carries. */
int cm_answer_query_digest_pb(uint8_t out[CM_HASH_BYTES], const Muri__V1__Vector *v, uint32_t k,
			      const Muri__V1__Filter *filter);

/* One hit's digest: H('H' || 16 id || u64 version || u64 seq || u32 distance
 * bits (-0 as +0, which protobuf does not tell apart) || vector digest (of no values when the hit has no vector) || metadata
 * digest). CM_ERR_INVALID if the id is not a UUIDv4 or the metadata is not
 * canonicalizable. */
int cm_answer_hit_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__Hit *h);

/* The signed digest: H('A' || query digest || u32 magu_len | magu || u32
 * fragment || u64 log_size || 32 root || u32 n || n hit digests in answer
 * order). CM_ERR_INVALID for a root that is not 32 bytes, more than
 * CM_ANSWER_HITS_MAX hits, a Magu name over CM_ANSWER_MAGU_MAX bytes, or a
 * hit as cm_answer_hit_digest. */
int cm_answer_digest(uint8_t out[CM_HASH_BYTES], const uint8_t query[CM_HASH_BYTES], const char *magu,
		     uint32_t fragment, const Muri__V1__LocalSearchResponse *r);

/* Answers signed together: batch_size n >= 1 answers' digests are the
 * leaves of a Merkle tree (RFC 9162, cm_merkle_blake2b: a leaf hashes the 32
 * digest bytes), and the node signs
 *   H(CM_DOM_ANSWER_BATCH || 'S' || u64 n || the tree's root)
 * once for all of them; each answer carries batch_size, its leaf index and
 * its inclusion path (batch_path). With batch_size 0 the signature is over
 * the answer digest itself. */
#define CM_ANSWER_BATCH_MAX 65536 /* answers signed under one root */

/* H(CM_DOM_ANSWER_BATCH || 'S' || u64 n || root): what a node signs for the
 * n answers whose digests' Merkle root is root. */
void cm_answer_batch_message(uint8_t msg[CM_HASH_BYTES], uint64_t n, const uint8_t root[CM_HASH_BYTES]);

/* The 32 bytes r's signature must sign, from the answer digest d: d itself
 * (batch_size 0) or the batch message of the root d's path leads to.
 * CM_ERR_INVALID for batch_size beyond CM_ANSWER_BATCH_MAX, batch_index not
 * below it, a path that is not whole hashes, or batch fields set with
 * batch_size 0; CM_ERR_VERIFY for a path that does not fit index and size. */
int cm_answer_signed_message(uint8_t msg[CM_HASH_BYTES], const uint8_t d[CM_HASH_BYTES],
			     const Muri__V1__LocalSearchResponse *r);

/* Signs r[0..n) (each with hits, log_size and root set, for query digest
 * queries[i]) with one signature: n == 1 as cm_answer_sign; else under the
 * batch root, setting every r[i]'s signer, signature (sig, shared),
 * batch_size, batch_index and batch_path (paths: n * CM_ANSWER_PATH_MAX(n)
 * hashes, the caller's, kept alive with r). CM_ERR_INVALID as
 * cm_answer_digest or for n outside 1..CM_ANSWER_BATCH_MAX; CM_ERR_NOMEM. */
#define CM_ANSWER_PATH_MAX(n) ((size_t)(64 - __builtin_clzll((unsigned long long)(n) | 1)))
int cm_answer_sign_batch(const cm_keypair *kp, const uint8_t (*queries)[CM_HASH_BYTES], const char *magu,
			 uint32_t fragment, Muri__V1__LocalSearchResponse **r, size_t n, uint8_t sig[CM_SIG_BYTES],
			 uint8_t *paths);

/* Signs r (whose hits, log_size and root are set) for the query digest
 * alone (batch fields cleared): sets r->signer to kp->pk and writes the signature into sig, pointed to by
 * r->signature. The caller owns sig (CM_SIG_BYTES) and keeps it alive with r. */
int cm_answer_sign(const cm_keypair *kp, const uint8_t query[CM_HASH_BYTES], const char *magu,
		   uint32_t fragment, Muri__V1__LocalSearchResponse *r, uint8_t sig[CM_SIG_BYTES]);

/* CM_OK if r is signed by node (32 bytes) over the digest of this query,
 * Magu and fragment (alone, or under a batch root its path leads to); CM_ERR_PERM if r->signer is not node; CM_ERR_VERIFY if
 * the signature does not verify; CM_ERR_INVALID if r is malformed. */
int cm_answer_verify(const uint8_t node[CM_PK_BYTES], const uint8_t query[CM_HASH_BYTES], const char *magu,
		     uint32_t fragment, const Muri__V1__LocalSearchResponse *r);

/* Signatures already verified, so that answers signed under one batch root
 * cost one signature check: known(arg, key) says whether key was verified
 * before, add(arg, key) records it; key binds the signer, the signed
 * message and the signature bytes. Either may be NULL (no memory). */
typedef struct cm_answer_seen {
	int (*known)(void *arg, const uint8_t key[CM_HASH_BYTES]);
	void (*add)(void *arg, const uint8_t key[CM_HASH_BYTES]);
	void *arg;
} cm_answer_seen;

/* cm_answer_verify, skipping the signature check of a batch answer
 * (batch_size >= 1) whose signer, message and signature seen knows; a
 * verified batch signature is added to seen. seen may be NULL. */
int cm_answer_verify_seen(const uint8_t node[CM_PK_BYTES], const uint8_t query[CM_HASH_BYTES], const char *magu,
			  uint32_t fragment, const Muri__V1__LocalSearchResponse *r, const cm_answer_seen *seen);

/* What a canonical record (a Merkle leaf) says, for comparing with a hit. */
typedef struct cm_answer_leaf {
	uint64_t seq;
	uint64_t epoch;
	uint8_t op;                          /* 0 insert, 1 update, 2 delete */
	uint8_t id[CM_ANSWER_ID_BYTES];
	uint64_t version;
	uint32_t dim;                        /* values, or bits of a binary vector */
	uint8_t vector[CM_HASH_BYTES];       /* cm_answer_vector_digest (binary: _binary_digest) of its vector */
	uint8_t metadata[CM_HASH_BYTES];     /* cm_answer_metadata_digest of its fields */
} cm_answer_leaf;

/* Parses the fields of canonical record bytes (format 1, or 2 for a binary
 * vector: dim bits in dim / 8 bytes) that a hit can be
 * compared with. CM_ERR_INVALID if the bytes are not a well-formed record. */
int cm_answer_leaf_parse(const uint8_t *leaf, size_t len, cm_answer_leaf *out);
/* CM_OK if hit h is what the leaf holds: an insert or update of the same
 * seq, id, version, vector (when h carries one) and metadata; CM_ERR_VERIFY
 * if not, with the first difference named in why (may be NULL). */
int cm_answer_hit_matches_leaf(const Muri__V1__Hit *h, const cm_answer_leaf *l, const char **why);

/* Evidence that an indexer's signed answer lies about its fragment's log,
 * judged against a root committed on chain (the ledger's ReportAnswer and
 * the gateway's spot checks decide with this one function). */
typedef struct cm_answer_evidence {
	const uint8_t *node;                         /* the accused: 32-byte key that signed answer */
	const uint8_t *query;                        /* 32-byte query digest the answer is signed for */
	const char *magu;
	uint32_t fragment;
	const Muri__V1__LocalSearchResponse *answer;
	int by_root;                                 /* 1: the answer's root contradicts the committed one */
	uint32_t hit;                                /* else: the hit whose record is disputed */
	const uint8_t *leaf;                         /* the canonical record at answer->hits[hit]->seq */
	size_t leaf_len;
	const uint8_t *path;                         /* its RFC 9162 inclusion path, 32-byte hashes */
	size_t path_len;                             /* hashes in path */
	uint64_t committed_size;                     /* the fragment's committed root */
	const uint8_t *committed_root;
} cm_answer_evidence;

/* CM_OK if e proves the answer false: it is signed by e->node for this
 * query, Magu and fragment, and either (by_root) it was computed at the
 * committed size with another root, or its hit claims a seq at or beyond its
 * own log size, or the leaf proven at that seq under the committed root is
 * not the hit's record (cm_answer_hit_matches_leaf). CM_ERR_VERIFY if the
 * answer is genuine as far as e shows, CM_ERR_INVALID if e is no evidence
 * (not signed by node, a hit beyond the committed size, a proof that does
 * not verify); *why (may be NULL) says which, naming the field. */
int cm_answer_fraud(const cm_answer_evidence *e, const char **why);

#endif
