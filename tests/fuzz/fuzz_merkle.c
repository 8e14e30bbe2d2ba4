/* Merkle proofs as a challenger, a gateway's spot check and a joining
 * replica verify them (RFC 9162 inclusion and consistency). The input
 * builds a log of n leaves (the first byte), names an index and an older
 * size m, and supplies bytes to tamper with. Oracles: a proof the log makes
 * verifies against its roots; the same proof with any byte changed, or a
 * proof made of the input's bytes, verifies only if it is the true one;
 * nothing read past a path's end. */
#include <string.h>

#include "cm_merkle.h"
#include "cm_err.h"
#include "fuzz.h"

#define H CM_MERKLE_HASH_BYTES

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint64_t n = 1 + data[0] % 200;
	uint64_t index = data[1] % n;
	uint64_t m = data[2] % (n + 1);
	uint8_t flip = data[3];
	const uint8_t *rest = data + 4;
	size_t nrest = size - 4;

	cm_merkle *log = NULL;
	FUZZ_CHECK(cm_merkle_new(&log, &cm_merkle_blake2b) == CM_OK);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t leaf[9];
		memcpy(leaf, &i, 8);
		leaf[8] = nrest ? rest[i % nrest] : 0;
		FUZZ_CHECK(cm_merkle_append(log, leaf, sizeof leaf) == CM_OK);
	}
	uint8_t root_n[H], root_m[H], leaf_hash[H];
	FUZZ_CHECK(cm_merkle_root(log, n, root_n) == CM_OK);
	FUZZ_CHECK(cm_merkle_root(log, m, root_m) == CM_OK);
	FUZZ_CHECK(cm_merkle_leaf_hash(log, index, leaf_hash) == CM_OK);

	static cm_merkle_path path;
	FUZZ_CHECK(cm_merkle_inclusion(log, index, n, &path) == CM_OK);
	FUZZ_CHECK(cm_merkle_verify_inclusion(&cm_merkle_blake2b, leaf_hash, index, n, path.hash, path.len,
					      root_n) == CM_OK);
	if (path.len) {
		size_t at = (size_t)flip % (path.len * H);
		path.hash[at] ^= 1u << (flip % 8);
		FUZZ_CHECK(cm_merkle_verify_inclusion(&cm_merkle_blake2b, leaf_hash, index, n, path.hash,
						      path.len, root_n) != CM_OK);
	}
	/* A path of the input's own bytes: whatever it claims, no crash, and
	 * success only for the true path. */
	size_t plen = nrest / H;
	if (plen > CM_MERKLE_MAX_PATH)
		plen = CM_MERKLE_MAX_PATH;
	cm_merkle_path truth;
	FUZZ_CHECK(cm_merkle_inclusion(log, index, n, &truth) == CM_OK);
	uint8_t *own = malloc(plen * H + 1);
	FUZZ_CHECK(own != NULL);
	memcpy(own, rest, plen * H);
	if (cm_merkle_verify_inclusion(&cm_merkle_blake2b, leaf_hash, index, n, own, plen, root_n) == CM_OK)
		FUZZ_CHECK(plen == truth.len && memcmp(own, truth.hash, plen * H) == 0);

	FUZZ_CHECK(cm_merkle_consistency(log, m, n, &path) == CM_OK);
	FUZZ_CHECK(cm_merkle_verify_consistency(&cm_merkle_blake2b, m, n, root_m, root_n, path.hash,
						path.len) == CM_OK);
	if (path.len) {
		size_t at = (size_t)flip % (path.len * H);
		path.hash[at] ^= 1u << (flip % 8);
		FUZZ_CHECK(cm_merkle_verify_consistency(&cm_merkle_blake2b, m, n, root_m, root_n, path.hash,
							path.len) != CM_OK);
	}
	(void)cm_merkle_verify_consistency(&cm_merkle_blake2b, m, n, root_m, root_n, own, plen);
	free(own);
	cm_merkle_free(log);
	return 0;
}
