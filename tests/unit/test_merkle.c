/* Tests of common/cm_merkle: the Certificate Transparency (RFC 6962) SHA-256
 * test vectors, agreement with a naive recursive MTH / PATH / PROOF written
 * straight from RFC 9162, rejection of every mutated proof, truncation, and a
 * million-leaf log. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_merkle.h"

#include <time.h>

#define HB CM_MERKLE_HASH_BYTES
#define NAIVE_LEAVES 100
#define NAIVE_PAIRS 64
#define LARGE_LEAVES 1000000

/* ---- the naive reference, RFC 9162 2.1.1, 2.1.3.1 and 2.1.4.1 as written ---- */

static uint64_t naive_k(uint64_t n)
{
	uint64_t k = 1;
	while (2 * k < n)
		k *= 2;
	return k;
}

static void naive_mth(const cm_merkle_hash *h, uint8_t (*d)[HB], uint64_t n, uint8_t out[HB])
{
	uint8_t l[HB], r[HB];
	if (n == 0) {
		h->empty(out);
		return;
	}
	if (n == 1) {
		memcpy(out, d[0], HB);
		return;
	}
	uint64_t k = naive_k(n);
	naive_mth(h, d, k, l);
	naive_mth(h, d + k, n - k, r);
	h->node(out, l, r);
}

static void naive_path(const cm_merkle_hash *h, uint64_t m, uint8_t (*d)[HB], uint64_t n,
		       uint8_t *out, size_t *len)
{
	if (n <= 1)
		return;
	uint64_t k = naive_k(n);
	if (m < k) {
		naive_path(h, m, d, k, out, len);
		naive_mth(h, d + k, n - k, out + HB * (*len)++);
	} else {
		naive_path(h, m - k, d + k, n - k, out, len);
		naive_mth(h, d, k, out + HB * (*len)++);
	}
}

static void naive_subproof(const cm_merkle_hash *h, uint64_t m, uint8_t (*d)[HB], uint64_t n,
			   int b, uint8_t *out, size_t *len)
{
	if (m == n) {
		if (!b)
			naive_mth(h, d, n, out + HB * (*len)++);
		return;
	}
	uint64_t k = naive_k(n);
	if (m <= k) {
		naive_subproof(h, m, d, k, b, out, len);
		naive_mth(h, d + k, n - k, out + HB * (*len)++);
	} else {
		naive_subproof(h, m - k, d + k, n - k, 0, out, len);
		naive_mth(h, d, k, out + HB * (*len)++);
	}
}

/* The lengths of PATH(m, D[n]) and PROOF(m, D[n]), which depend on the sizes only. */
static size_t naive_path_len(uint64_t m, uint64_t n)
{
	if (n <= 1)
		return 0;
	uint64_t k = naive_k(n);
	return 1 + (m < k ? naive_path_len(m, k) : naive_path_len(m - k, n - k));
}

static size_t naive_subproof_len(uint64_t m, uint64_t n, int b)
{
	if (m == n)
		return b ? 0 : 1;
	uint64_t k = naive_k(n);
	return 1 + (m <= k ? naive_subproof_len(m, k, b) : naive_subproof_len(m - k, n - k, 0));
}

static size_t naive_proof_len(uint64_t m, uint64_t n)
{
	return m > 0 && m < n ? naive_subproof_len(m, n, 1) : 0;
}

static void naive_proof(const cm_merkle_hash *h, uint64_t m, uint8_t (*d)[HB], uint64_t n,
			uint8_t *out, size_t *len)
{
	*len = 0;
	if (m > 0 && m < n)
		naive_subproof(h, m, d, n, 1, out, len);
}

/* ---- helpers ---- */

static void unhex32(uint8_t out[HB], const char *hex)
{
	if (cm_unhex(out, HB, hex) != CM_OK)
		memset(out, 0, HB);
}

static int hex_is(const uint8_t h[HB], const char *hex)
{
	char s[2 * HB + 1];
	cm_hex(s, h, HB);
	if (strcmp(s, hex) != 0) {
		printf("# got %s\n# want %s\n", s, hex);
		return 0;
	}
	return 1;
}

/* A log of n leaves with varied content; their leaf hashes in d. */
static cm_merkle *make_log(const cm_merkle_hash *h, uint64_t n, uint8_t (*d)[HB])
{
	cm_merkle *log = NULL;
	if (cm_merkle_new(&log, h) != CM_OK)
		return NULL;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t data[40];
		size_t len = (size_t)(i * 7 % sizeof(data));
		for (size_t j = 0; j < len; j++)
			data[j] = (uint8_t)(i * 31 + j);
		if (cm_merkle_append(log, data, len) != CM_OK) {
			cm_merkle_free(log);
			return NULL;
		}
		h->leaf(d[i], data, len);
	}
	return log;
}

/* ---- Certificate Transparency test vectors ---- */

static const char *const ct_leaves[] = {
	"", "00", "10", "2021", "3031", "40414243", "5051525354555657",
	"606162636465666768696a6b6c6d6e6f",
};

static const char *const ct_roots[] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

struct ct_proof {
	uint64_t a, b; /* inclusion: leaf index, size; consistency: m, n */
	size_t len;
	const char *hash[3];
};

/* From the CT merkle_tree tests (leaf indices there are 1-based: 1, 6, 3, 2). */
static const struct ct_proof ct_inclusion[] = {
	{0, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		   "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		   "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{5, 8, 3, {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		   "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		   "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 3, 1, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
	{1, 5, 3, {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		   "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		   "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
	{0, 1, 0, {NULL}},
};

static const struct ct_proof ct_consistency[] = {
	{1, 1, 0, {NULL}},
	{1, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		   "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		   "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{6, 8, 3, {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		   "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		   "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 5, 2, {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		   "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static cm_merkle *ct_log(void)
{
	cm_merkle *log = NULL;
	if (cm_merkle_new(&log, &cm_merkle_sha256) != CM_OK)
		return NULL;
	for (size_t i = 0; i < 8; i++) {
		uint8_t data[16];
		size_t len = strlen(ct_leaves[i]) / 2;
		if (cm_unhex(data, len, ct_leaves[i]) != CM_OK ||
		    cm_merkle_append(log, data, len) != CM_OK) {
			cm_merkle_free(log);
			return NULL;
		}
	}
	return log;
}

static void test_ct_roots(void)
{
	uint8_t root[HB];
	cm_merkle *log = ct_log();
	TAP_CHECK(log != NULL);
	if (!log)
		return;
	TAP_EQ(cm_merkle_size(log), 8);
	for (uint64_t n = 0; n <= 8; n++) {
		TAP_EQ(cm_merkle_root(log, n, root), CM_OK);
		TAP_CHECK(hex_is(root, ct_roots[n]));
	}
	/* the one-leaf root is the leaf hash of the empty string */
	TAP_EQ(cm_merkle_leaf_hash(log, 0, root), CM_OK);
	TAP_CHECK(hex_is(root, ct_roots[1]));
	cm_merkle_free(log);

	/* appending the same leaves one by one gives the same root at every step */
	TAP_EQ(cm_merkle_new(&log, &cm_merkle_sha256), CM_OK);
	TAP_EQ(cm_merkle_root(log, 0, root), CM_OK);
	TAP_CHECK(hex_is(root, ct_roots[0]));
	for (size_t i = 0; i < 8; i++) {
		uint8_t data[16];
		size_t len = strlen(ct_leaves[i]) / 2;
		TAP_EQ(cm_unhex(data, len, ct_leaves[i]), CM_OK);
		TAP_EQ(cm_merkle_append(log, data, len), CM_OK);
		TAP_EQ(cm_merkle_root(log, i + 1, root), CM_OK);
		TAP_CHECK(hex_is(root, ct_roots[i + 1]));
	}
	cm_merkle_free(log);
}

static void test_ct_inclusion(void)
{
	cm_merkle_path p;
	uint8_t leaf[HB], root[HB], want[HB];
	cm_merkle *log = ct_log();
	TAP_CHECK(log != NULL);
	if (!log)
		return;
	for (size_t t = 0; t < sizeof(ct_inclusion) / sizeof(ct_inclusion[0]); t++) {
		const struct ct_proof *v = &ct_inclusion[t];
		TAP_EQ(cm_merkle_inclusion(log, v->a, v->b, &p), CM_OK);
		TAP_EQ(p.len, v->len);
		for (size_t i = 0; i < v->len && i < p.len; i++) {
			unhex32(want, v->hash[i]);
			TAP_CHECK(memcmp(p.hash + i * HB, want, HB) == 0);
		}
		TAP_EQ(cm_merkle_leaf_hash(log, v->a, leaf), CM_OK);
		unhex32(root, ct_roots[v->b]);
		TAP_EQ(cm_merkle_verify_inclusion(&cm_merkle_sha256, leaf, v->a, v->b, p.hash,
						  p.len, root), CM_OK);
		/* the published path itself verifies too */
		uint8_t pub[3 * HB];
		for (size_t i = 0; i < v->len; i++)
			unhex32(pub + i * HB, v->hash[i]);
		TAP_EQ(cm_merkle_verify_inclusion(&cm_merkle_sha256, leaf, v->a, v->b, pub,
						  v->len, root), CM_OK);
		/* against the empty root it does not */
		unhex32(root, ct_roots[0]);
		TAP_EQ(cm_merkle_verify_inclusion(&cm_merkle_sha256, leaf, v->a, v->b, p.hash,
						  p.len, root), CM_ERR_VERIFY);
	}
	cm_merkle_free(log);
}

static void test_ct_consistency(void)
{
	cm_merkle_path p;
	uint8_t r1[HB], r2[HB], want[HB];
	cm_merkle *log = ct_log();
	TAP_CHECK(log != NULL);
	if (!log)
		return;
	for (size_t t = 0; t < sizeof(ct_consistency) / sizeof(ct_consistency[0]); t++) {
		const struct ct_proof *v = &ct_consistency[t];
		TAP_EQ(cm_merkle_consistency(log, v->a, v->b, &p), CM_OK);
		TAP_EQ(p.len, v->len);
		for (size_t i = 0; i < v->len && i < p.len; i++) {
			unhex32(want, v->hash[i]);
			TAP_CHECK(memcmp(p.hash + i * HB, want, HB) == 0);
		}
		unhex32(r1, ct_roots[v->a]);
		unhex32(r2, ct_roots[v->b]);
		TAP_EQ(cm_merkle_verify_consistency(&cm_merkle_sha256, v->a, v->b, r1, r2, p.hash,
						    p.len), CM_OK);
		if (v->a != v->b) {
			/* swapped roots do not verify */
			TAP_EQ(cm_merkle_verify_consistency(&cm_merkle_sha256, v->a, v->b, r2, r1,
							    p.hash, p.len), CM_ERR_VERIFY);
		}
	}
	/* every pair of the eight-leaf tree verifies against the published roots */
	for (uint64_t m = 0; m <= 8; m++)
		for (uint64_t n = m; n <= 8; n++) {
			TAP_EQ(cm_merkle_consistency(log, m, n, &p), CM_OK);
			unhex32(r1, ct_roots[m]);
			unhex32(r2, ct_roots[n]);
			TAP_EQ(cm_merkle_verify_consistency(&cm_merkle_sha256, m, n, r1, r2, p.hash,
							    p.len), CM_OK);
		}
	cm_merkle_free(log);
}

/* ---- the production hash ---- */

static void test_blake2b_hash(void)
{
	uint8_t a[HB], b[HB], l[HB], r[HB], cat[2 * HB];
	const cm_merkle_hash *h = &cm_merkle_blake2b;

	h->leaf(a, "record", 6);
	cm_hash(b, CM_DOM_LEAF, "record", 6);
	TAP_CHECK(memcmp(a, b, HB) == 0);

	memset(l, 0x11, HB);
	memset(r, 0x22, HB);
	memcpy(cat, l, HB);
	memcpy(cat + HB, r, HB);
	h->node(a, l, r);
	cm_hash(b, CM_DOM_NODE, cat, sizeof(cat));
	TAP_CHECK(memcmp(a, b, HB) == 0);
	/* out may alias an input */
	memcpy(a, l, HB);
	h->node(a, a, r);
	TAP_CHECK(memcmp(a, b, HB) == 0);
	memcpy(a, r, HB);
	h->node(a, l, a);
	TAP_CHECK(memcmp(a, b, HB) == 0);

	/* empty tree: BLAKE2b-256 of no bytes */
	h->empty(a);
	TAP_CHECK(hex_is(a, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"));
	/* and the two hashes do differ */
	cm_merkle_sha256.empty(b);
	TAP_CHECK(memcmp(a, b, HB) != 0);

	/* a BLAKE2b log over two leaves */
	cm_merkle *log = NULL;
	TAP_EQ(cm_merkle_new(&log, h), CM_OK);
	TAP_EQ(cm_merkle_append(log, "x", 1), CM_OK);
	TAP_EQ(cm_merkle_append(log, "y", 1), CM_OK);
	cm_hash(l, CM_DOM_LEAF, "x", 1);
	cm_hash(r, CM_DOM_LEAF, "y", 1);
	memcpy(cat, l, HB);
	memcpy(cat + HB, r, HB);
	cm_hash(b, CM_DOM_NODE, cat, sizeof(cat));
	TAP_EQ(cm_merkle_root(log, 2, a), CM_OK);
	TAP_CHECK(memcmp(a, b, HB) == 0);
	TAP_EQ(cm_merkle_root(log, 1, a), CM_OK);
	TAP_CHECK(memcmp(a, l, HB) == 0);
	cm_merkle_free(log);
}

/* ---- agreement with the naive reference ---- */

static void test_roots_and_inclusion_match_naive(void)
{
	static uint8_t d[NAIVE_LEAVES][HB];
	uint8_t got[HB], want[HB], naive[CM_MERKLE_MAX_PATH * HB];
	cm_merkle_path p;
	const cm_merkle_hash *h = &cm_merkle_blake2b;
	cm_merkle *log = make_log(h, NAIVE_LEAVES, d);
	int bad_root = 0, bad_path = 0, bad_verify = 0;

	TAP_CHECK(log != NULL);
	if (!log)
		return;
	for (uint64_t i = 0; i < NAIVE_LEAVES; i++) {
		TAP_EQ(cm_merkle_leaf_hash(log, i, got), CM_OK);
		TAP_CHECK(memcmp(got, d[i], HB) == 0);
	}
	for (uint64_t n = 0; n <= NAIVE_LEAVES; n++) {
		TAP_EQ(cm_merkle_root(log, n, got), CM_OK);
		naive_mth(h, d, n, want);
		bad_root += memcmp(got, want, HB) != 0;
		for (uint64_t i = 0; i < n; i++) {
			size_t nlen = 0;
			TAP_EQ(cm_merkle_inclusion(log, i, n, &p), CM_OK);
			naive_path(h, i, d, n, naive, &nlen);
			bad_path += p.len != nlen || memcmp(p.hash, naive, nlen * HB) != 0;
			bad_verify += cm_merkle_verify_inclusion(h, d[i], i, n, p.hash, p.len,
								 want) != CM_OK;
		}
	}
	TAP_EQ(bad_root, 0);
	TAP_EQ(bad_path, 0);
	TAP_EQ(bad_verify, 0);
	cm_merkle_free(log);
}

static void test_consistency_matches_naive(void)
{
	static uint8_t d[NAIVE_PAIRS][HB];
	uint8_t r1[HB], r2[HB], naive[CM_MERKLE_MAX_PATH * HB];
	cm_merkle_path p;
	const cm_merkle_hash *h = &cm_merkle_blake2b;
	cm_merkle *log = make_log(h, NAIVE_PAIRS, d);
	int bad_path = 0, bad_verify = 0, bad_reject = 0;

	TAP_CHECK(log != NULL);
	if (!log)
		return;
	for (uint64_t n = 0; n <= NAIVE_PAIRS; n++) {
		naive_mth(h, d, n, r2);
		for (uint64_t m = 0; m <= n; m++) {
			size_t nlen = 0;
			naive_mth(h, d, m, r1);
			TAP_EQ(cm_merkle_consistency(log, m, n, &p), CM_OK);
			naive_proof(h, m, d, n, naive, &nlen);
			bad_path += p.len != nlen || memcmp(p.hash, naive, nlen * HB) != 0;
			bad_verify += cm_merkle_verify_consistency(h, m, n, r1, r2, p.hash,
								   p.len) != CM_OK;
			/* the old root of a different prefix is not consistent */
			if (m > 0 && m < n) {
				uint8_t other[HB];
				naive_mth(h, d, m - 1, other);
				bad_reject += cm_merkle_verify_consistency(h, m, n, other, r2,
									   p.hash, p.len) != CM_ERR_VERIFY;
			}
		}
	}
	TAP_EQ(bad_path, 0);
	TAP_EQ(bad_verify, 0);
	TAP_EQ(bad_reject, 0);
	cm_merkle_free(log);
}

/* ---- rejection of tampered proofs ---- */

/* Flips every bit of every byte of the path, the leaf hash and the root;
 * returns how many of the mutants verified (should be none). */
static int inclusion_mutants_accepted(const cm_merkle_hash *h, uint8_t leaf[HB], uint64_t i,
				      uint64_t n, cm_merkle_path *p, uint8_t root[HB])
{
	int accepted = 0;
	for (size_t byte = 0; byte < p->len * HB; byte++)
		for (int bit = 0; bit < 8; bit++) {
			p->hash[byte] ^= (uint8_t)(1u << bit);
			accepted += cm_merkle_verify_inclusion(h, leaf, i, n, p->hash, p->len,
							       root) != CM_ERR_VERIFY;
			p->hash[byte] ^= (uint8_t)(1u << bit);
		}
	for (size_t byte = 0; byte < HB; byte++)
		for (int bit = 0; bit < 8; bit++) {
			leaf[byte] ^= (uint8_t)(1u << bit);
			accepted += cm_merkle_verify_inclusion(h, leaf, i, n, p->hash, p->len,
							       root) != CM_ERR_VERIFY;
			leaf[byte] ^= (uint8_t)(1u << bit);
			root[byte] ^= (uint8_t)(1u << bit);
			accepted += cm_merkle_verify_inclusion(h, leaf, i, n, p->hash, p->len,
							       root) != CM_ERR_VERIFY;
			root[byte] ^= (uint8_t)(1u << bit);
		}
	return accepted;
}

static void test_inclusion_rejects_tampering(void)
{
	static uint8_t d[NAIVE_LEAVES][HB];
	static const uint64_t sizes[] = {1, 2, 3, 5, 7, 8, 13, 64, 100};
	uint8_t root[HB], junk[HB];
	cm_merkle_path p, q;
	const cm_merkle_hash *h = &cm_merkle_blake2b;
	cm_merkle *log = make_log(h, NAIVE_LEAVES, d);
	int accepted = 0, wrong_index = 0, wrong_size = 0, wrong_len = 0;

	TAP_CHECK(log != NULL);
	if (!log)
		return;
	memset(junk, 0x5a, HB);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t n = sizes[s];
		TAP_EQ(cm_merkle_root(log, n, root), CM_OK);
		for (uint64_t i = 0; i < n; i++) {
			/* large trees: every bit of a few leaves' proofs; small: of all */
			if (n > 13 && i % 17 != 0 && i != n - 1)
				continue;
			TAP_EQ(cm_merkle_inclusion(log, i, n, &p), CM_OK);
			TAP_EQ(cm_merkle_verify_inclusion(h, d[i], i, n, p.hash, p.len, root), CM_OK);
			accepted += inclusion_mutants_accepted(h, d[i], i, n, &p, root);
			TAP_EQ(cm_merkle_verify_inclusion(h, d[i], i, n, p.hash, p.len, root), CM_OK);

			/* every other index of the same tree */
			for (uint64_t j = 0; j < n; j++)
				if (j != i)
					wrong_index += cm_merkle_verify_inclusion(
						h, d[i], j, n, p.hash, p.len, root) != CM_ERR_VERIFY;
			TAP_EQ(cm_merkle_verify_inclusion(h, d[i], n, n, p.hash, p.len, root),
			       CM_ERR_INVALID);
			/* a size whose tree shape needs a path of another length */
			for (uint64_t m = i + 1; m <= n + 8; m++) {
				if (m != n && naive_path_len(i, m) != p.len)
					wrong_size += cm_merkle_verify_inclusion(
						h, d[i], i, m, p.hash, p.len, root) != CM_ERR_VERIFY;
			}
			/* truncated and extended paths */
			if (p.len > 0) {
				wrong_len += cm_merkle_verify_inclusion(h, d[i], i, n, p.hash,
									p.len - 1, root) != CM_ERR_VERIFY;
				wrong_len += cm_merkle_verify_inclusion(h, d[i], i, n, p.hash + HB,
									p.len - 1, root) != CM_ERR_VERIFY;
			}
			q = p;
			memcpy(q.hash + q.len * HB, junk, HB);
			wrong_len += cm_merkle_verify_inclusion(h, d[i], i, n, q.hash, q.len + 1,
								root) != CM_ERR_VERIFY;
			memmove(q.hash + HB, p.hash, p.len * HB);
			memcpy(q.hash, junk, HB);
			wrong_len += cm_merkle_verify_inclusion(h, d[i], i, n, q.hash, q.len + 1,
								root) != CM_ERR_VERIFY;
		}
	}
	TAP_EQ(accepted, 0);
	TAP_EQ(wrong_index, 0);
	TAP_EQ(wrong_size, 0);
	TAP_EQ(wrong_len, 0);

	/* malformed arguments */
	TAP_EQ(cm_merkle_verify_inclusion(h, d[0], 0, 0, NULL, 0, root), CM_ERR_INVALID);
	TAP_EQ(cm_merkle_verify_inclusion(h, d[0], 5, 3, p.hash, 1, root), CM_ERR_INVALID);
	TAP_EQ(cm_merkle_verify_inclusion(h, d[0], 0, 3, NULL, 1, root), CM_ERR_INVALID);
	TAP_EQ(cm_merkle_verify_inclusion(NULL, d[0], 0, 3, p.hash, 1, root), CM_ERR_INVALID);
	TAP_EQ(cm_merkle_verify_inclusion(h, d[0], 0, 3, p.hash, CM_MERKLE_MAX_PATH + 1, root),
	       CM_ERR_INVALID);
	TAP_EQ(cm_merkle_verify_inclusion(h, d[0], 0, CM_MERKLE_MAX_SIZE + 1, p.hash, 1, root),
	       CM_ERR_INVALID);
	/* a one-leaf tree: the empty path proves the leaf is the root */
	TAP_EQ(cm_merkle_verify_inclusion(h, d[0], 0, 1, NULL, 0, d[0]), CM_OK);
	TAP_EQ(cm_merkle_verify_inclusion(h, d[0], 0, 1, NULL, 0, d[1]), CM_ERR_VERIFY);
	cm_merkle_free(log);
}

static int consistency_mutants_accepted(const cm_merkle_hash *h, uint64_t m, uint64_t n,
					uint8_t r1[HB], uint8_t r2[HB], cm_merkle_path *p)
{
	int accepted = 0;
	for (size_t byte = 0; byte < p->len * HB; byte++)
		for (int bit = 0; bit < 8; bit++) {
			p->hash[byte] ^= (uint8_t)(1u << bit);
			accepted += cm_merkle_verify_consistency(h, m, n, r1, r2, p->hash,
								 p->len) != CM_ERR_VERIFY;
			p->hash[byte] ^= (uint8_t)(1u << bit);
		}
	for (size_t byte = 0; byte < HB; byte++)
		for (int bit = 0; bit < 8; bit++) {
			r1[byte] ^= (uint8_t)(1u << bit);
			accepted += cm_merkle_verify_consistency(h, m, n, r1, r2, p->hash,
								 p->len) != CM_ERR_VERIFY;
			r1[byte] ^= (uint8_t)(1u << bit);
			r2[byte] ^= (uint8_t)(1u << bit);
			accepted += cm_merkle_verify_consistency(h, m, n, r1, r2, p->hash,
								 p->len) != CM_ERR_VERIFY;
			r2[byte] ^= (uint8_t)(1u << bit);
		}
	return accepted;
}

static void test_consistency_rejects_tampering(void)
{
	static uint8_t d[NAIVE_LEAVES][HB];
	static const uint64_t pairs[][2] = {
		{1, 2}, {1, 3}, {2, 3}, {3, 4}, {1, 8}, {2, 5}, {6, 8}, {4, 8}, {5, 7},
		{7, 13}, {8, 13}, {31, 64}, {32, 64}, {33, 100}, {63, 100}, {64, 100}, {99, 100},
	};
	uint8_t r1[HB], r2[HB], junk[HB];
	cm_merkle_path p, q;
	const cm_merkle_hash *h = &cm_merkle_blake2b;
	cm_merkle *log = make_log(h, NAIVE_LEAVES, d);
	int accepted = 0, wrong_len = 0, wrong_size = 0;

	TAP_CHECK(log != NULL);
	if (!log)
		return;
	memset(junk, 0xa5, HB);
	for (size_t t = 0; t < sizeof(pairs) / sizeof(pairs[0]); t++) {
		uint64_t m = pairs[t][0], n = pairs[t][1];
		TAP_EQ(cm_merkle_root(log, m, r1), CM_OK);
		TAP_EQ(cm_merkle_root(log, n, r2), CM_OK);
		TAP_EQ(cm_merkle_consistency(log, m, n, &p), CM_OK);
		TAP_CHECK(p.len > 0);
		TAP_EQ(cm_merkle_verify_consistency(h, m, n, r1, r2, p.hash, p.len), CM_OK);
		accepted += consistency_mutants_accepted(h, m, n, r1, r2, &p);
		TAP_EQ(cm_merkle_verify_consistency(h, m, n, r1, r2, p.hash, p.len), CM_OK);

		/* truncated at either end, extended at either end */
		wrong_len += cm_merkle_verify_consistency(h, m, n, r1, r2, p.hash, p.len - 1) !=
			     CM_ERR_VERIFY;
		wrong_len += cm_merkle_verify_consistency(h, m, n, r1, r2, p.hash + HB,
							  p.len - 1) != CM_ERR_VERIFY;
		q = p;
		memcpy(q.hash + q.len * HB, junk, HB);
		wrong_len += cm_merkle_verify_consistency(h, m, n, r1, r2, q.hash, q.len + 1) !=
			     CM_ERR_VERIFY;
		memmove(q.hash + HB, p.hash, p.len * HB);
		memcpy(q.hash, junk, HB);
		wrong_len += cm_merkle_verify_consistency(h, m, n, r1, r2, q.hash, q.len + 1) !=
			     CM_ERR_VERIFY;

		/* other sizes whose proofs have another length */
		for (uint64_t m2 = 1; m2 <= n + 4; m2++)
			for (uint64_t n2 = m2; n2 <= n + 4; n2++) {
				if (m2 == m && n2 == n)
					continue;
				if (naive_proof_len(m2, n2) != p.len)
					wrong_size += cm_merkle_verify_consistency(
						h, m2, n2, r1, r2, p.hash, p.len) != CM_ERR_VERIFY;
			}
	}
	TAP_EQ(accepted, 0);
	TAP_EQ(wrong_len, 0);
	TAP_EQ(wrong_size, 0);

	/* edge cases and malformed arguments */
	TAP_EQ(cm_merkle_root(log, 10, r1), CM_OK);
	TAP_EQ(cm_merkle_root(log, 20, r2), CM_OK);
	TAP_EQ(cm_merkle_verify_consistency(h, 20, 10, r2, r1, p.hash, 1), CM_ERR_INVALID);
	TAP_EQ(cm_merkle_verify_consistency(h, 10, 20, r1, r2, NULL, 1), CM_ERR_INVALID);
	TAP_EQ(cm_merkle_verify_consistency(h, 10, 20, r1, r2, p.hash, CM_MERKLE_MAX_PATH + 1),
	       CM_ERR_INVALID);
	TAP_EQ(cm_merkle_verify_consistency(h, 10, 20, r1, r2, NULL, 0), CM_ERR_VERIFY);
	TAP_EQ(cm_merkle_verify_consistency(h, 10, 10, r1, r1, NULL, 0), CM_OK);
	TAP_EQ(cm_merkle_verify_consistency(h, 10, 10, r1, r2, NULL, 0), CM_ERR_VERIFY);
	TAP_EQ(cm_merkle_verify_consistency(h, 10, 10, r1, r1, p.hash, 1), CM_ERR_VERIFY);
	uint8_t empty[HB];
	h->empty(empty);
	TAP_EQ(cm_merkle_verify_consistency(h, 0, 20, empty, r2, NULL, 0), CM_OK);
	TAP_EQ(cm_merkle_verify_consistency(h, 0, 20, r1, r2, NULL, 0), CM_ERR_VERIFY);
	TAP_EQ(cm_merkle_verify_consistency(h, 0, 20, empty, r2, p.hash, 1), CM_ERR_VERIFY);
	cm_merkle_free(log);
}

/* ---- truncation ---- */

static void test_truncate_then_reappend(void)
{
	/* enough leaves to span several 4096-hash chunks */
	enum { N = 10000, CUT = 3001 };
	static uint8_t d[N][HB];
	uint8_t a[HB], b[HB], other[HB];
	cm_merkle_path p;
	const cm_merkle_hash *h = &cm_merkle_blake2b;
	cm_merkle *orig = make_log(h, N, d);
	cm_merkle *log = make_log(h, N, d);
	int bad = 0, same_as_other = 0;

	TAP_CHECK(orig != NULL && log != NULL);
	if (!orig || !log) {
		cm_merkle_free(orig);
		cm_merkle_free(log);
		return;
	}
	TAP_EQ(cm_merkle_truncate(log, N + 1), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_truncate(log, CUT), CM_OK);
	TAP_EQ(cm_merkle_size(log), CUT);
	TAP_EQ(cm_merkle_root(log, CUT + 1, a), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_leaf_hash(log, CUT, a), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_inclusion(log, 0, CUT + 1, &p), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_root(log, CUT, a), CM_OK);
	TAP_EQ(cm_merkle_root(orig, CUT, b), CM_OK);
	TAP_CHECK(memcmp(a, b, HB) == 0);

	/* an old primary's divergent suffix: different leaves after the cut */
	for (uint64_t i = CUT; i < N; i++) {
		memset(other, (int)(i & 0xff), HB);
		other[0] ^= 0x80;
		TAP_EQ(cm_merkle_append_hash(log, other), CM_OK);
	}
	for (uint64_t n = CUT + 1; n <= N; n += 97) {
		cm_merkle_root(log, n, a);
		cm_merkle_root(orig, n, b);
		same_as_other += memcmp(a, b, HB) == 0;
	}
	TAP_EQ(same_as_other, 0);

	/* truncate again and re-append the original leaves: a fresh log's roots */
	TAP_EQ(cm_merkle_truncate(log, CUT), CM_OK);
	for (uint64_t i = CUT; i < N; i++)
		TAP_EQ(cm_merkle_append_hash(log, d[i]), CM_OK);
	TAP_EQ(cm_merkle_size(log), N);
	for (uint64_t n = 0; n <= N; n++) {
		cm_merkle_root(log, n, a);
		cm_merkle_root(orig, n, b);
		bad += memcmp(a, b, HB) != 0;
	}
	TAP_EQ(bad, 0);

	/* down to nothing and back */
	TAP_EQ(cm_merkle_truncate(log, 0), CM_OK);
	TAP_EQ(cm_merkle_size(log), 0);
	TAP_EQ(cm_merkle_root(log, 0, a), CM_OK);
	h->empty(b);
	TAP_CHECK(memcmp(a, b, HB) == 0);
	for (uint64_t i = 0; i < 5; i++)
		TAP_EQ(cm_merkle_append_hash(log, d[i]), CM_OK);
	cm_merkle_root(log, 5, a);
	cm_merkle_root(orig, 5, b);
	TAP_CHECK(memcmp(a, b, HB) == 0);
	cm_merkle_free(log);
	cm_merkle_free(orig);
}

/* ---- a large log ---- */

/* MTH by pairing level by level, promoting an odd last node unchanged; for
 * RFC 6962 trees this equals the recursive definition. Overwrites d. */
static void levelwise_root(const cm_merkle_hash *h, uint8_t (*d)[HB], uint64_t n, uint8_t out[HB])
{
	while (n > 1) {
		uint64_t w = 0;
		for (uint64_t i = 0; i + 1 < n; i += 2)
			h->node(d[w++], d[i], d[i + 1]);
		if (n & 1)
			memcpy(d[w++], d[n - 1], HB);
		n = w;
	}
	memcpy(out, d[0], HB);
}

static void large_leaf(uint8_t out[HB], uint64_t i)
{
	memset(out, 0, HB);
	for (int b = 0; b < 8; b++)
		out[b] = (uint8_t)(i >> (8 * b));
	out[31] = 0x77;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_million_leaves(void)
{
	const cm_merkle_hash *h = &cm_merkle_blake2b;
	static const uint64_t sizes[] = {1, 2, 3, 1000, 524288, 524289, 999999, LARGE_LEAVES};
	uint8_t leaf[HB], root[HB], old[HB], want[HB];
	cm_merkle_path p;
	cm_merkle *log = NULL;
	double t0 = now_ms(), t1, t2;

	TAP_EQ(cm_merkle_new(&log, h), CM_OK);
	for (uint64_t i = 0; i < LARGE_LEAVES; i++) {
		large_leaf(leaf, i);
		if (cm_merkle_append_hash(log, leaf) != CM_OK) {
			TAP_CHECK(!"append failed");
			break;
		}
	}
	t1 = now_ms();
	TAP_EQ(cm_merkle_size(log), LARGE_LEAVES);

	int proofs_ok = 0, roots_checked = 0;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t n = sizes[s];
		TAP_EQ(cm_merkle_root(log, n, root), CM_OK);
		uint64_t idx[] = {0, n / 3, n - 1};
		for (size_t k = 0; k < 3; k++) {
			large_leaf(leaf, idx[k]);
			TAP_EQ(cm_merkle_inclusion(log, idx[k], n, &p), CM_OK);
			proofs_ok += cm_merkle_verify_inclusion(h, leaf, idx[k], n, p.hash, p.len,
								root) == CM_OK;
		}
		for (size_t s2 = 0; s2 <= s; s2++) {
			TAP_EQ(cm_merkle_root(log, sizes[s2], old), CM_OK);
			TAP_EQ(cm_merkle_consistency(log, sizes[s2], n, &p), CM_OK);
			proofs_ok += cm_merkle_verify_consistency(h, sizes[s2], n, old, root, p.hash,
								  p.len) == CM_OK;
			roots_checked++;
		}
	}
	t2 = now_ms();
	TAP_EQ(proofs_ok, 3 * 8 + roots_checked);

	/* the full root agrees with an independent level-by-level computation */
	uint8_t (*d)[HB] = malloc((size_t)LARGE_LEAVES * HB);
	TAP_CHECK(d != NULL);
	if (d) {
		for (uint64_t i = 0; i < LARGE_LEAVES; i++)
			large_leaf(d[i], i);
		levelwise_root(h, d, LARGE_LEAVES, want);
		TAP_EQ(cm_merkle_root(log, LARGE_LEAVES, root), CM_OK);
		TAP_CHECK(memcmp(root, want, HB) == 0);
		for (uint64_t i = 0; i < 999999; i++)
			large_leaf(d[i], i);
		levelwise_root(h, d, 999999, want);
		TAP_EQ(cm_merkle_root(log, 999999, root), CM_OK);
		TAP_CHECK(memcmp(root, want, HB) == 0);
		free(d);
	}
	printf("# %d leaves appended in %.0f ms; %d roots and proofs in %.2f ms\n", LARGE_LEAVES,
	       t1 - t0, proofs_ok, t2 - t1);
	cm_merkle_free(log);
}

/* ---- argument errors ---- */

static void test_errors(void)
{
	cm_merkle *log = NULL;
	uint8_t h[HB], keep[HB];
	cm_merkle_path p;

	TAP_EQ(cm_merkle_new(&log, NULL), CM_ERR_INVALID);
	TAP_CHECK(log == NULL);
	TAP_EQ(cm_merkle_new(&log, &cm_merkle_blake2b), CM_OK);
	TAP_EQ(cm_merkle_size(log), 0);
	TAP_EQ(cm_merkle_inclusion(log, 0, 0, &p), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_consistency(log, 0, 0, &p), CM_OK);
	TAP_EQ(p.len, 0);
	TAP_EQ(cm_merkle_append(log, NULL, 1), CM_ERR_INVALID);
	TAP_EQ(cm_merkle_append(log, NULL, 0), CM_OK);
	TAP_EQ(cm_merkle_append(log, "a", 1), CM_OK);
	TAP_EQ(cm_merkle_size(log), 2);
	memset(keep, 0xee, HB);
	memcpy(h, keep, HB);
	TAP_EQ(cm_merkle_leaf_hash(log, 2, h), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_root(log, 3, h), CM_ERR_RANGE);
	TAP_CHECK(memcmp(h, keep, HB) == 0); /* untouched on failure */
	TAP_EQ(cm_merkle_inclusion(log, 2, 2, &p), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_inclusion(log, 0, 3, &p), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_consistency(log, 2, 1, &p), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_consistency(log, 1, 3, &p), CM_ERR_RANGE);
	TAP_EQ(cm_merkle_consistency(log, 2, 2, &p), CM_OK);
	TAP_EQ(p.len, 0);
	TAP_EQ(cm_merkle_consistency(log, 1, 2, &p), CM_OK);
	TAP_EQ(p.len, 1);
	cm_merkle_free(log);
	cm_merkle_free(NULL);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_ct_roots);
	TAP_RUN(test_ct_inclusion);
	TAP_RUN(test_ct_consistency);
	TAP_RUN(test_blake2b_hash);
	TAP_RUN(test_roots_and_inclusion_match_naive);
	TAP_RUN(test_consistency_matches_naive);
	TAP_RUN(test_inclusion_rejects_tampering);
	TAP_RUN(test_consistency_rejects_tampering);
	TAP_RUN(test_truncate_then_reappend);
	TAP_RUN(test_million_leaves);
	TAP_RUN(test_errors);
	return tap_done();
}
