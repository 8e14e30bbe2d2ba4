/* An append-only Merkle log in the style of RFC 6962 / RFC 9162 (Certificate
 * Transparency): the root of any prefix, inclusion and consistency proofs,
 * truncation of an unacknowledged suffix, and verification of proofs without
 * a log. The hash is pluggable: BLAKE2b-256 in production, SHA-256 for the
 * published CT test vectors. */
#ifndef CM_MERKLE_H
#define CM_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define CM_MERKLE_HASH_BYTES 32
/* A log holds at most 2^63 leaves, so its tree is at most 63 levels deep: an
 * inclusion path has at most 63 hashes and a consistency path at most 64. */
#define CM_MERKLE_MAX_SIZE (UINT64_C(1) << 63)
#define CM_MERKLE_MAX_PATH 64

/* The two hashes of RFC 9162 section 2.1.1, each with a 32-byte output:
 * leaf: out = HASH(0x00 || data); node: out = HASH(0x01 || left || right)
 * (out may alias left or right); empty: out = HASH() of no bytes, the root of
 * the empty tree. */
typedef struct cm_merkle_hash {
	const char *name;
	void (*leaf)(uint8_t out[CM_MERKLE_HASH_BYTES], const void *data, size_t len);
	void (*node)(uint8_t out[CM_MERKLE_HASH_BYTES], const uint8_t left[CM_MERKLE_HASH_BYTES],
		     const uint8_t right[CM_MERKLE_HASH_BYTES]);
	void (*empty)(uint8_t out[CM_MERKLE_HASH_BYTES]);
} cm_merkle_hash;

/* BLAKE2b-256 with the domain bytes CM_DOM_LEAF / CM_DOM_NODE of cm_crypto.h:
 * leaf equals cm_hash(out, CM_DOM_LEAF, data, len). Every muri log uses it. */
extern const cm_merkle_hash cm_merkle_blake2b;
/* SHA-256 exactly as RFC 6962, for the Certificate Transparency test vectors. */
extern const cm_merkle_hash cm_merkle_sha256;

/* An audit path: len hashes, hash i at hash + i * CM_MERKLE_HASH_BYTES, in
 * the order of RFC 9162 (the leaf's sibling first, the root's child last). */
typedef struct cm_merkle_path {
	size_t len;
	uint8_t hash[CM_MERKLE_MAX_PATH * CM_MERKLE_HASH_BYTES];
} cm_merkle_path;

/* The log keeps the hash of every complete (2^k-aligned) subtree, 2n - popcount(n)
 * hashes for n leaves, so an append costs amortized O(1) hashes and any root or
 * proof O(log n). Not thread-safe: callers serialize access. */
typedef struct cm_merkle cm_merkle;

/* Creates an empty log over hash, which must outlive it. The caller owns *out
 * and releases it with cm_merkle_free(). */
int cm_merkle_new(cm_merkle **out, const cm_merkle_hash *hash);
/* Releases the log and all its memory; accepts NULL. */
void cm_merkle_free(cm_merkle *log);

/* Appends one leaf given as raw bytes (hashed with the leaf hash), or given as
 * its precomputed leaf hash (to reload persisted leaf hashes). CM_ERR_TOOBIG at
 * CM_MERKLE_MAX_SIZE leaves, CM_ERR_NOMEM leaves the log unchanged. */
int cm_merkle_append(cm_merkle *log, const void *data, size_t len);
int cm_merkle_append_hash(cm_merkle *log, const uint8_t leaf_hash[CM_MERKLE_HASH_BYTES]);

/* The number of leaves. */
uint64_t cm_merkle_size(const cm_merkle *log);
/* The leaf hash of leaf index; CM_ERR_RANGE if index >= size. */
int cm_merkle_leaf_hash(const cm_merkle *log, uint64_t index, uint8_t out[CM_MERKLE_HASH_BYTES]);
/* MTH of the first n leaves (RFC 9162 2.1.1), n <= size; CM_ERR_RANGE otherwise.
 * n = 0 gives the empty-tree hash. */
int cm_merkle_root(const cm_merkle *log, uint64_t n, uint8_t out[CM_MERKLE_HASH_BYTES]);
/* PATH(index, D[n]) of RFC 9162 2.1.3.1; CM_ERR_RANGE unless index < n <= size. */
int cm_merkle_inclusion(const cm_merkle *log, uint64_t index, uint64_t n, cm_merkle_path *path);
/* PROOF(m, D[n]) of RFC 9162 2.1.4.1; CM_ERR_RANGE unless m <= n <= size. The
 * proof is empty when m = 0 or m = n. */
int cm_merkle_consistency(const cm_merkle *log, uint64_t m, uint64_t n, cm_merkle_path *path);
/* Drops every leaf from index n on, so the log has n leaves; CM_ERR_RANGE if
 * n > size. Memory of the dropped leaves is released or reused. */
int cm_merkle_truncate(cm_merkle *log, uint64_t n);

/* The root that path (path_len hashes, contiguous) leads to from leaf_hash
 * at leaf index of a tree of size leaves (RFC 9162 2.1.3.2 without the final
 * comparison) into root. CM_ERR_VERIFY if the path does not fit that index
 * and size (too long or too short); CM_ERR_INVALID as below. */
int cm_merkle_root_from_path(const cm_merkle_hash *hash, const uint8_t leaf_hash[CM_MERKLE_HASH_BYTES],
			     uint64_t index, uint64_t size, const uint8_t *path, size_t path_len,
			     uint8_t root[CM_MERKLE_HASH_BYTES]);
/* RFC 9162 2.1.3.2: CM_OK if path (path_len hashes, contiguous) proves that
 * leaf_hash is leaf index of the tree of size leaves whose root is root;
 * CM_ERR_VERIFY if it does not; CM_ERR_INVALID for index >= size, size or
 * path_len beyond the limits above, or a NULL pointer. */
int cm_merkle_verify_inclusion(const cm_merkle_hash *hash,
			       const uint8_t leaf_hash[CM_MERKLE_HASH_BYTES], uint64_t index,
			       uint64_t size, const uint8_t *path, size_t path_len,
			       const uint8_t root[CM_MERKLE_HASH_BYTES]);
/* RFC 9162 2.1.4.2: CM_OK if path proves that the tree of m leaves with root
 * old_root is a prefix of the tree of n leaves with root new_root; CM_ERR_VERIFY
 * if it does not; CM_ERR_INVALID for m > n or values beyond the limits. As
 * extensions of the RFC, m = n verifies with an empty path and equal roots, and
 * m = 0 with an empty path and old_root the empty-tree hash. */
int cm_merkle_verify_consistency(const cm_merkle_hash *hash, uint64_t m, uint64_t n,
				 const uint8_t old_root[CM_MERKLE_HASH_BYTES],
				 const uint8_t new_root[CM_MERKLE_HASH_BYTES],
				 const uint8_t *path, size_t path_len);

#endif
