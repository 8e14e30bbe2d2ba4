/* The Merkle log of cm_merkle.h. Hashes of complete subtrees are stored in
 * post-order (each node right after its right child) in fixed-size chunks,
 * so a node's slot is a closed formula, appends never move stored hashes,
 * and truncation is a change of length. Proofs follow RFC 9162 2.1.3 / 2.1.4. */
#include "cm_merkle.h"
#include "cm_crypto.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

#define HB CM_MERKLE_HASH_BYTES
#define CHUNK_SHIFT 12                          /* 4096 hashes, 128 KiB a chunk */
#define CHUNK_HASHES ((uint64_t)1 << CHUNK_SHIFT)
#define CHUNK_MASK (CHUNK_HASHES - 1)
#define FIRST_CHUNK_MIN 16 /* chunk 0 grows from here to CHUNK_HASHES, for small logs */
#define DIR_MIN 8

struct cm_merkle {
	const cm_merkle_hash *hash;
	uint64_t size;     /* leaves */
	uint64_t nodes;    /* stored hashes: 2 * size - popcount(size) */
	uint8_t **chunk;   /* chunk[i] holds slots [i * CHUNK_HASHES, (i + 1) * CHUNK_HASHES) */
	size_t nchunks;    /* chunks allocated */
	size_t dir_cap;    /* entries of chunk[] */
	uint64_t first_cap; /* slots in chunk[0]; CHUNK_HASHES once a second chunk exists */
};

/* ---- hash functions ---- */

static void blake2b_leaf(uint8_t out[HB], const void *data, size_t len)
{
	cm_hash(out, CM_DOM_LEAF, data, len);
}

static void blake2b_node(uint8_t out[HB], const uint8_t left[HB], const uint8_t right[HB])
{
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_NODE);
	cm_hasher_update(&h, left, HB);
	cm_hasher_update(&h, right, HB);
	cm_hasher_final(&h, out);
}

static void blake2b_empty(uint8_t out[HB])
{
	static const uint8_t nothing;
	crypto_generichash(out, HB, &nothing, 0, NULL, 0);
}

static void sha256_leaf(uint8_t out[HB], const void *data, size_t len)
{
	static const uint8_t prefix = CM_DOM_LEAF;
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &prefix, 1);
	crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, out);
}

static void sha256_node(uint8_t out[HB], const uint8_t left[HB], const uint8_t right[HB])
{
	static const uint8_t prefix = CM_DOM_NODE;
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &prefix, 1);
	crypto_hash_sha256_update(&st, left, HB);
	crypto_hash_sha256_update(&st, right, HB);
	crypto_hash_sha256_final(&st, out);
}

static void sha256_empty(uint8_t out[HB])
{
	static const uint8_t nothing;
	crypto_hash_sha256(out, &nothing, 0);
}

const cm_merkle_hash cm_merkle_blake2b = {"blake2b-256", blake2b_leaf, blake2b_node, blake2b_empty};
const cm_merkle_hash cm_merkle_sha256 = {"sha256", sha256_leaf, sha256_node, sha256_empty};

/* ---- bit helpers ---- */

static unsigned popcount64(uint64_t x)
{
	unsigned n = 0;
	for (; x; x &= x - 1)
		n++;
	return n;
}

/* The largest power of two strictly below n, for n >= 2: the k of RFC 9162's
 * split of D[n] into D[0:k] and D[k:n]. */
static uint64_t split_point(uint64_t n)
{
	uint64_t x = n - 1, k = 1;
	while (x >>= 1)
		k <<= 1;
	return k;
}

/* Stored hashes for the first n leaves: floor(n / 2^k) at each level k. */
static uint64_t nodes_for(uint64_t n)
{
	return 2 * n - popcount64(n);
}

/* Post-order slot of the complete subtree at level k, index j (its leaves are
 * [j * 2^k, (j + 1) * 2^k)): the hashes of the leaves before it, then its own
 * 2^(k+1) - 1 nodes, root last. */
static uint64_t node_slot(unsigned k, uint64_t j)
{
	return nodes_for(j << k) + ((uint64_t)2 << k) - 2;
}

static uint8_t *slot_ptr(const cm_merkle *log, uint64_t slot)
{
	return log->chunk[slot >> CHUNK_SHIFT] + (slot & CHUNK_MASK) * HB;
}

static uint64_t capacity(const cm_merkle *log)
{
	if (log->nchunks == 0)
		return 0;
	return (uint64_t)(log->nchunks - 1) * CHUNK_HASHES + log->first_cap;
}

/* Makes room for need slots in all; on failure the log is unchanged but may
 * keep some of the memory it got. */
static int reserve(cm_merkle *log, uint64_t need)
{
	while (capacity(log) < need) {
		if (log->nchunks == 0 || (log->nchunks == 1 && log->first_cap < CHUNK_HASHES)) {
			uint64_t cap = log->nchunks ? 2 * log->first_cap : FIRST_CHUNK_MIN;
			if (cap > CHUNK_HASHES)
				cap = CHUNK_HASHES;
			if (log->dir_cap == 0) {
				log->chunk = calloc(DIR_MIN, sizeof(*log->chunk));
				if (!log->chunk)
					return CM_ERR_NOMEM;
				log->dir_cap = DIR_MIN;
			}
			uint8_t *p = realloc(log->nchunks ? log->chunk[0] : NULL, cap * HB);
			if (!p)
				return CM_ERR_NOMEM;
			log->chunk[0] = p;
			log->nchunks = 1;
			log->first_cap = cap;
			continue;
		}
		if (log->nchunks == log->dir_cap) {
			uint8_t **d = realloc(log->chunk, 2 * log->dir_cap * sizeof(*d));
			if (!d)
				return CM_ERR_NOMEM;
			log->chunk = d;
			log->dir_cap *= 2;
		}
		uint8_t *c = malloc(CHUNK_HASHES * HB);
		if (!c)
			return CM_ERR_NOMEM;
		log->chunk[log->nchunks++] = c;
	}
	return CM_OK;
}

/* Hash of the leaves [start, start + len), 1 <= len, start + len <= size, where
 * start is a multiple of the smallest power of two >= len, as holds for every
 * subtree of the RFC 9162 recursion. Such a range is a run of complete
 * subtrees, one per set bit of len, largest first; MTH folds them from the
 * right: MTH = node(first, node(second, ... last)). O(log len) hashes. */
static void range_hash(const cm_merkle *log, uint64_t start, uint64_t len, uint8_t out[HB])
{
	uint8_t acc[HB];
	uint64_t end = start + len;
	int have = 0;

	for (unsigned k = 0; k < 64; k++) {
		if (!((len >> k) & 1))
			continue;
		end -= (uint64_t)1 << k;
		const uint8_t *h = slot_ptr(log, node_slot(k, end >> k));
		if (have) {
			log->hash->node(acc, h, acc);
		} else {
			memcpy(acc, h, HB);
			have = 1;
		}
	}
	memcpy(out, acc, HB);
}

/* Writes the n hashes collected root-first in rev into path, leaf-first. */
static void put_reversed(cm_merkle_path *path, uint8_t rev[][HB], size_t n)
{
	for (size_t i = 0; i < n; i++)
		memcpy(path->hash + i * HB, rev[n - 1 - i], HB);
	path->len = n;
}

/* ---- the log ---- */

int cm_merkle_new(cm_merkle **out, const cm_merkle_hash *hash)
{
	if (!out || !hash || !hash->leaf || !hash->node || !hash->empty)
		return CM_ERR_INVALID;
	cm_merkle *log = calloc(1, sizeof(*log));
	if (!log)
		return CM_ERR_NOMEM;
	log->hash = hash;
	*out = log;
	return CM_OK;
}

void cm_merkle_free(cm_merkle *log)
{
	if (!log)
		return;
	for (size_t i = 0; i < log->nchunks; i++)
		free(log->chunk[i]);
	free(log->chunk);
	free(log);
}

int cm_merkle_append_hash(cm_merkle *log, const uint8_t leaf_hash[HB])
{
	uint64_t n = log->size;
	unsigned parents = 0;
	int rc;

	if (n >= CM_MERKLE_MAX_SIZE)
		return CM_ERR_TOOBIG;
	/* leaf n completes one subtree per trailing one bit of n */
	while ((n >> parents) & 1)
		parents++;
	rc = reserve(log, log->nodes + 1 + parents);
	if (rc != CM_OK)
		return rc;
	memcpy(slot_ptr(log, log->nodes), leaf_hash, HB);
	for (unsigned k = 0; k < parents; k++) {
		/* the new node at level k + 1: its right child is the last stored
		 * slot, its left child the complete level-k subtree before that */
		uint64_t j = (n >> (k + 1));
		const uint8_t *left = slot_ptr(log, node_slot(k, 2 * j));
		const uint8_t *right = slot_ptr(log, log->nodes + k);
		log->hash->node(slot_ptr(log, log->nodes + k + 1), left, right);
	}
	log->nodes += 1 + parents;
	log->size = n + 1;
	return CM_OK;
}

int cm_merkle_append(cm_merkle *log, const void *data, size_t len)
{
	uint8_t h[HB];
	if (!data && len)
		return CM_ERR_INVALID;
	log->hash->leaf(h, data ? data : (const void *)"", len);
	return cm_merkle_append_hash(log, h);
}

uint64_t cm_merkle_size(const cm_merkle *log)
{
	return log->size;
}

int cm_merkle_leaf_hash(const cm_merkle *log, uint64_t index, uint8_t out[HB])
{
	if (index >= log->size)
		return CM_ERR_RANGE;
	memcpy(out, slot_ptr(log, node_slot(0, index)), HB);
	return CM_OK;
}

int cm_merkle_root(const cm_merkle *log, uint64_t n, uint8_t out[HB])
{
	if (n > log->size)
		return CM_ERR_RANGE;
	if (n == 0)
		log->hash->empty(out);
	else
		range_hash(log, 0, n, out);
	return CM_OK;
}

/* RFC 9162 2.1.3.1, unrolled: descend from the root of D[n] to the leaf,
 * taking at each level the sibling subtree's hash; the path lists them from
 * the leaf up. Every sibling but at most one is a stored complete subtree. */
int cm_merkle_inclusion(const cm_merkle *log, uint64_t index, uint64_t n, cm_merkle_path *path)
{
	uint8_t rev[CM_MERKLE_MAX_PATH][HB];
	uint64_t start = 0, len = n;
	size_t depth = 0;

	if (n > log->size || index >= n)
		return CM_ERR_RANGE;
	while (len > 1) {
		uint64_t k = split_point(len);
		if (index - start < k) {
			range_hash(log, start + k, len - k, rev[depth++]);
			len = k;
		} else {
			range_hash(log, start, k, rev[depth++]);
			start += k;
			len -= k;
		}
	}
	put_reversed(path, rev, depth);
	return CM_OK;
}

/* RFC 9162 2.1.4.1, SUBPROOF(m, D[n], b) unrolled: descend while the old tree
 * ends inside the current subtree, collecting the sibling at each level; once
 * the old tree's end is the end of the current subtree, that subtree's hash
 * is added too unless it is the whole old tree (b still true). */
int cm_merkle_consistency(const cm_merkle *log, uint64_t m, uint64_t n, cm_merkle_path *path)
{
	uint8_t rev[CM_MERKLE_MAX_PATH][HB];
	uint64_t start = 0, len = n, rel = m;
	size_t depth = 0;
	int whole_old_tree = 1;

	if (n > log->size || m > n)
		return CM_ERR_RANGE;
	if (m > 0 && m < n) {
		while (rel != len) {
			uint64_t k = split_point(len);
			if (rel <= k) {
				range_hash(log, start + k, len - k, rev[depth++]);
				len = k;
			} else {
				range_hash(log, start, k, rev[depth++]);
				start += k;
				len -= k;
				rel -= k;
				whole_old_tree = 0;
			}
		}
		if (!whole_old_tree)
			range_hash(log, start, len, rev[depth++]);
	}
	put_reversed(path, rev, depth);
	return CM_OK;
}

int cm_merkle_truncate(cm_merkle *log, uint64_t n)
{
	if (n > log->size)
		return CM_ERR_RANGE;
	log->size = n;
	log->nodes = nodes_for(n);
	/* keep chunk 0 and the chunks still in use, release the rest */
	size_t keep = (size_t)((log->nodes + CHUNK_MASK) >> CHUNK_SHIFT);
	if (keep < 1)
		keep = 1;
	while (log->nchunks > keep)
		free(log->chunk[--log->nchunks]);
	return CM_OK;
}

/* ---- verification without a log ---- */

static int bad_hash(const cm_merkle_hash *hash)
{
	return !hash || !hash->node || !hash->empty;
}

int cm_merkle_root_from_path(const cm_merkle_hash *hash, const uint8_t leaf_hash[HB], uint64_t index,
			     uint64_t size, const uint8_t *path, size_t path_len, uint8_t root[HB])
{
	uint8_t r[HB];
	uint64_t fn, sn;

	if (bad_hash(hash) || !leaf_hash || !root || (path_len && !path) ||
	    path_len > CM_MERKLE_MAX_PATH || size > CM_MERKLE_MAX_SIZE || index >= size)
		return CM_ERR_INVALID;
	fn = index;
	sn = size - 1;
	memcpy(r, leaf_hash, HB);
	for (size_t i = 0; i < path_len; i++) {
		const uint8_t *p = path + i * HB;
		if (sn == 0)
			return CM_ERR_VERIFY; /* path longer than the tree is deep */
		if ((fn & 1) || fn == sn) {
			hash->node(r, p, r);
			/* a right-edge node of an unbalanced tree has no sibling at
			 * the levels where it is promoted: skip them */
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			hash->node(r, r, p);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return CM_ERR_VERIFY; /* path shorter than the tree is deep */
	memcpy(root, r, HB);
	return CM_OK;
}

int cm_merkle_verify_inclusion(const cm_merkle_hash *hash, const uint8_t leaf_hash[HB],
			       uint64_t index, uint64_t size, const uint8_t *path,
			       size_t path_len, const uint8_t root[HB])
{
	uint8_t r[HB];
	if (!root)
		return CM_ERR_INVALID;
	int rc = cm_merkle_root_from_path(hash, leaf_hash, index, size, path, path_len, r);
	if (rc != CM_OK)
		return rc;
	return memcmp(r, root, HB) != 0 ? CM_ERR_VERIFY : CM_OK;
}

int cm_merkle_verify_consistency(const cm_merkle_hash *hash, uint64_t m, uint64_t n,
				 const uint8_t old_root[HB], const uint8_t new_root[HB],
				 const uint8_t *path, size_t path_len)
{
	uint8_t fr[HB], sr[HB];
	uint64_t fn, sn;
	size_t i = 0;

	if (bad_hash(hash) || !old_root || !new_root || (path_len && !path) ||
	    path_len > CM_MERKLE_MAX_PATH || n > CM_MERKLE_MAX_SIZE || m > n)
		return CM_ERR_INVALID;
	if (m == 0) {
		uint8_t empty[HB];
		hash->empty(empty);
		return path_len == 0 && memcmp(old_root, empty, HB) == 0 ? CM_OK : CM_ERR_VERIFY;
	}
	if (m == n)
		return path_len == 0 && memcmp(old_root, new_root, HB) == 0 ? CM_OK : CM_ERR_VERIFY;
	if (path_len == 0)
		return CM_ERR_VERIFY;
	/* step 2: when the old tree is a complete subtree of the new one, its
	 * root is the proof's implicit first element */
	if ((m & (m - 1)) == 0) {
		memcpy(fr, old_root, HB);
	} else {
		memcpy(fr, path, HB);
		i = 1;
	}
	memcpy(sr, fr, HB);
	fn = m - 1;
	sn = n - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < path_len; i++) {
		const uint8_t *c = path + i * HB;
		if (sn == 0)
			return CM_ERR_VERIFY;
		if ((fn & 1) || fn == sn) {
			hash->node(fr, c, fr);
			hash->node(sr, c, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			hash->node(sr, sr, c);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || memcmp(fr, old_root, HB) != 0 || memcmp(sr, new_root, HB) != 0)
		return CM_ERR_VERIFY;
	return CM_OK;
}
