/* The signed digest of an indexer's page of records (cm_scroll.h): the
 * request and answer fields in a fixed order, hits by their search-answer
 * digests (cm_answer.h), so both kinds of answer describe a record alike. */
#include "cm_scroll.h"
#include "cm_answer.h"
#include "cm_bytes.h"
#include "cm_err.h"
#include "cm_uuid.h"

#include <string.h>

#define KIND_PAGE 'P'

static void hash_be32(cm_hasher *h, uint32_t v)
{
	uint8_t b[4];
	cm_put_be32(b, v);
	cm_hasher_update(h, b, 4);
}

static void hash_be64(cm_hasher *h, uint64_t v)
{
	uint8_t b[8];
	cm_put_be64(b, v);
	cm_hasher_update(h, b, 8);
}

static void hash_u8(cm_hasher *h, uint8_t v)
{
	cm_hasher_update(h, &v, 1);
}

/* "" hashes as 16 zero bytes (no UUIDv4 is all zeros); else a UUIDv4. */
static int hash_id(cm_hasher *h, const char *s)
{
	cm_uuid u;
	memset(&u, 0, sizeof(u));
	if (s && s[0] && cm_uuid_parse(&u, s) != CM_OK)
		return CM_ERR_INVALID;
	cm_hasher_update(h, u.b, CM_UUID_BYTES);
	return CM_OK;
}

int cm_scroll_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__LocalScrollRequest *q,
		     const Muri__V1__LocalScrollResponse *r)
{
	if (!q || !r || !q->magu)
		return CM_ERR_INVALID;
	size_t ml = strlen(q->magu);
	if (ml > CM_ANSWER_MAGU_MAX || r->root.len != CM_HASH_BYTES || r->n_hits > CM_SCROLL_HITS_MAX)
		return CM_ERR_INVALID;
	uint8_t fd[CM_HASH_BYTES];
	int rc = cm_answer_filter_digest(fd, q->filter);
	if (rc != CM_OK)
		return rc;
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_SCROLL);
	hash_u8(&h, KIND_PAGE);
	hash_be32(&h, (uint32_t)ml);
	cm_hasher_update(&h, q->magu, ml);
	hash_be32(&h, q->fragment);
	if (hash_id(&h, q->after_id) != CM_OK)
		return CM_ERR_INVALID;
	hash_be32(&h, q->limit);
	cm_hasher_update(&h, fd, sizeof(fd));
	hash_u8(&h, q->include_vectors ? 1 : 0);
	hash_be32(&h, q->scan_max);
	hash_be64(&h, r->log_size);
	cm_hasher_update(&h, r->root.data, CM_HASH_BYTES);
	hash_u8(&h, r->done ? 1 : 0);
	if (hash_id(&h, r->last_id) != CM_OK)
		return CM_ERR_INVALID;
	hash_be32(&h, (uint32_t)r->n_hits);
	for (size_t i = 0; i < r->n_hits; i++) {
		uint8_t hd[CM_HASH_BYTES];
		if (!r->hits[i])
			return CM_ERR_INVALID;
		rc = cm_answer_hit_digest(hd, r->hits[i]);
		if (rc != CM_OK)
			return rc;
		cm_hasher_update(&h, hd, sizeof(hd));
	}
	cm_hasher_final(&h, out);
	return CM_OK;
}

int cm_scroll_sign(const cm_keypair *kp, const Muri__V1__LocalScrollRequest *q, Muri__V1__LocalScrollResponse *r,
		   uint8_t sig[CM_SIG_BYTES])
{
	uint8_t d[CM_HASH_BYTES];
	int rc = cm_scroll_digest(d, q, r);
	if (rc != CM_OK)
		return rc;
	cm_sign(kp, sig, d, sizeof(d));
	r->signer.data = (uint8_t *)kp->pk;
	r->signer.len = CM_PK_BYTES;
	r->signature.data = sig;
	r->signature.len = CM_SIG_BYTES;
	return CM_OK;
}

int cm_scroll_verify(const uint8_t node[CM_PK_BYTES], const Muri__V1__LocalScrollRequest *q,
		     const Muri__V1__LocalScrollResponse *r)
{
	uint8_t d[CM_HASH_BYTES];
	if (!r || r->signer.len != CM_PK_BYTES || r->signature.len != CM_SIG_BYTES)
		return CM_ERR_INVALID;
	if (memcmp(r->signer.data, node, CM_PK_BYTES) != 0)
		return CM_ERR_PERM;
	int rc = cm_scroll_digest(d, q, r);
	if (rc != CM_OK)
		return rc;
	return cm_verify(node, r->signature.data, d, sizeof(d));
}
