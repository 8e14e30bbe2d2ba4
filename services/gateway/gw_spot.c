/* Spot checks of indexer answers (gw_spot.h). */
#include "gw_spot.h"
#include "cm_err.h"
#include "cm_merkle.h"

#include <string.h>

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int gw_spot_pick(uint64_t salt, uint32_t permille, const Muri__V1__LocalSearchResponse *r, uint64_t committed_size,
		 size_t *hit)
{
	uint64_t z = mix(salt);
	if (!r || permille == 0 || z % 1000 >= permille)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < r->n_hits; i++)
		n += r->hits[i]->seq < committed_size;
	if (n == 0)
		return 0;
	size_t want = (size_t)(mix(z) % n);
	for (size_t i = 0; i < r->n_hits; i++)
		if (r->hits[i]->seq < committed_size && want-- == 0) {
			*hit = i;
			return 1;
		}
	return 0;
}

/* The path of a proof as contiguous hashes in buf (room for 64). */
static int flat_path(const Muri__V1__InclusionProofResponse *p, uint8_t *buf, size_t *n)
{
	if (p->n_path > CM_MERKLE_MAX_PATH)
		return CM_ERR_INVALID;
	for (size_t i = 0; i < p->n_path; i++) {
		if (p->path[i].len != CM_HASH_BYTES)
			return CM_ERR_INVALID;
		memcpy(buf + i * CM_HASH_BYTES, p->path[i].data, CM_HASH_BYTES);
	}
	*n = p->n_path;
	return CM_OK;
}

int gw_spot_judge(const uint8_t node[CM_PK_BYTES], const uint8_t query[CM_HASH_BYTES], const char *magu,
		  uint32_t fragment, const Muri__V1__LocalSearchResponse *r, size_t hit,
		  const Muri__V1__InclusionProofResponse *proof, uint64_t committed_size,
		  const uint8_t committed_root[CM_HASH_BYTES], const char **why)
{
	uint8_t path[CM_MERKLE_MAX_PATH * CM_HASH_BYTES];
	size_t n = 0;
	if (hit < r->n_hits && r->hits[hit]->seq >= committed_size && r->hits[hit]->seq < r->log_size) {
		if (why)
			*why = "the hit is beyond the committed size";
		return GW_SPOT_UNCOVERED;
	}
	if (proof && flat_path(proof, path, &n) != CM_OK) {
		if (why)
			*why = "proof.path: malformed";
		return GW_SPOT_NO_PROOF;
	}
	cm_answer_evidence e = {.node = node, .query = query, .magu = magu, .fragment = fragment, .answer = r,
				.hit = (uint32_t)hit, .leaf = proof ? proof->leaf.data : NULL,
				.leaf_len = proof ? proof->leaf.len : 0, .path = path, .path_len = n,
				.committed_size = committed_size, .committed_root = committed_root};
	int rc = cm_answer_fraud(&e, why);
	return rc == CM_OK ? GW_SPOT_FALSE : rc == CM_ERR_VERIFY ? GW_SPOT_GENUINE : GW_SPOT_NO_PROOF;
}

int gw_spot_evidence(const char *magu, uint32_t fragment, const uint8_t query[CM_HASH_BYTES],
		     const Muri__V1__LocalSearchResponse *r, int by_root, size_t hit,
		     const Muri__V1__InclusionProofResponse *proof, cm_arena *a, Muri__V1__ReportAnswer **out)
{
	Muri__V1__ReportAnswer *ra = cm_arena_alloc(a, sizeof(*ra));
	uint8_t *q = cm_arena_alloc(a, CM_HASH_BYTES);
	uint8_t *path = proof ? cm_arena_alloc(a, (proof->n_path ? proof->n_path : 1) * CM_HASH_BYTES) : NULL;
	if (!ra || !q || (proof && !path))
		return CM_ERR_NOMEM;
	muri__v1__report_answer__init(ra);
	ra->magu = (char *)magu;
	ra->fragment = fragment;
	memcpy(q, query, CM_HASH_BYTES);
	ra->query.data = q;
	ra->query.len = CM_HASH_BYTES;
	ra->answer = (Muri__V1__LocalSearchResponse *)r;
	ra->by_root = by_root;
	ra->hit = (uint32_t)hit;
	if (proof && !by_root) {
		size_t n = 0;
		if (flat_path(proof, path, &n) != CM_OK)
			return CM_ERR_INVALID;
		ra->leaf = proof->leaf;
		ra->leaf_path.data = path;
		ra->leaf_path.len = n * CM_HASH_BYTES;
	}
	*out = ra;
	return CM_OK;
}
