/* Blocks and quorum certificates of the ledger's chain: canonical
 * encoding, block hash, vote digest, QC verification (see cm_chain.h). */
#include "cm_chain.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <string.h>

uint32_t cm_qc_count(const cm_qc *qc)
{
	return (uint32_t)__builtin_popcountll(qc->signers);
}


size_t cm_qc_size(const cm_qc *qc)
{
	return CM_QC_HEADER_BYTES + (size_t)cm_qc_count(qc) * CM_SIG_BYTES;
}


size_t cm_qc_put(const cm_qc *qc, uint8_t *p)
{
	uint8_t *start = p;
	cm_put_be64(p, qc->view);
	memcpy(p + 8, qc->block_hash, CM_HASH_BYTES);
	cm_put_be64(p + 8 + CM_HASH_BYTES, qc->signers);
	p += CM_QC_HEADER_BYTES;
	for (uint32_t i = 0; i < CM_CHAIN_MAX_REPLICAS; i++) {
		if (qc->signers >> i & 1) {
			memcpy(p, qc->sigs[i], CM_SIG_BYTES);
			p += CM_SIG_BYTES;
		}
	}
	return (size_t)(p - start);
}


/* Parses a QC at the start of buf; returns the bytes used or 0 if malformed. */
size_t cm_qc_get(const uint8_t *buf, size_t len, cm_qc *qc)
{
	if (len < CM_QC_HEADER_BYTES)
		return 0;
	uint64_t signers = cm_get_be64(buf + 8 + CM_HASH_BYTES);
	size_t need = CM_QC_HEADER_BYTES + (size_t)(uint32_t)__builtin_popcountll(signers) * CM_SIG_BYTES;
	if (len < need)
		return 0;
	memset(qc, 0, sizeof(*qc));
	qc->view = cm_get_be64(buf);
	memcpy(qc->block_hash, buf + 8, CM_HASH_BYTES);
	qc->signers = signers;
	const uint8_t *p = buf + CM_QC_HEADER_BYTES;
	for (uint32_t i = 0; i < CM_CHAIN_MAX_REPLICAS; i++) {
		if (signers >> i & 1) {
			memcpy(qc->sigs[i], p, CM_SIG_BYTES);
			p += CM_SIG_BYTES;
		}
	}
	return need;
}


int cm_qc_encode(const cm_qc *qc, uint8_t *buf, size_t cap, size_t *len)
{
	size_t need = cm_qc_size(qc);
	if (cap < need)
		return CM_ERR_TOOBIG;
	*len = cm_qc_put(qc, buf);
	return CM_OK;
}


int cm_qc_decode(const uint8_t *buf, size_t len, cm_qc *out)
{
	cm_qc qc;
	size_t used = cm_qc_get(buf, len, &qc);
	if (used == 0 || used != len)
		return CM_ERR_INVALID;
	*out = qc;
	return CM_OK;
}


size_t cm_block_size(const cm_block *b)
{
	return CM_BLOCK_HEADER_BYTES + cm_qc_size(&b->justify) + b->payload_len;
}


size_t cm_block_put(const cm_block *b, uint8_t *p)
{
	uint8_t *start = p;
	*p++ = CM_CHAIN_ENCODING_VERSION;
	cm_put_be64(p, b->height);
	cm_put_be64(p + 8, b->view);
	memcpy(p + 16, b->parent, CM_HASH_BYTES);
	cm_put_be32(p + 16 + CM_HASH_BYTES, b->proposer);
	p += 20 + CM_HASH_BYTES;
	p += cm_qc_put(&b->justify, p);
	cm_put_be32(p, b->payload_len);
	p += 4;
	if (b->payload_len)
		memcpy(p, b->payload, b->payload_len);
	p += b->payload_len;
	return (size_t)(p - start);
}


size_t cm_block_get(const uint8_t *buf, size_t len, cm_block *b)
{
	const size_t fixed = 1 + 8 + 8 + CM_HASH_BYTES + 4;
	if (len < fixed || buf[0] != CM_CHAIN_ENCODING_VERSION)
		return 0;
	memset(b, 0, sizeof(*b));
	b->height = cm_get_be64(buf + 1);
	b->view = cm_get_be64(buf + 9);
	memcpy(b->parent, buf + 17, CM_HASH_BYTES);
	b->proposer = cm_get_be32(buf + 17 + CM_HASH_BYTES);
	size_t off = fixed;
	size_t q = cm_qc_get(buf + off, len - off, &b->justify);
	if (q == 0)
		return 0;
	off += q;
	if (len - off < 4)
		return 0;
	uint32_t plen = cm_get_be32(buf + off);
	off += 4;
	if (plen > CM_CHAIN_PAYLOAD_LIMIT || len - off < plen)
		return 0;
	b->payload_len = plen;
	b->payload = plen ? buf + off : NULL;
	off += plen;
	cm_block_hash(b);
	return off;
}


int cm_block_encode(const cm_block *b, uint8_t *buf, size_t cap, size_t *len)
{
	if (cap < cm_block_size(b))
		return CM_ERR_TOOBIG;
	*len = cm_block_put(b, buf);
	return CM_OK;
}


int cm_block_decode(const uint8_t *buf, size_t len, cm_block *out)
{
	cm_block b;
	size_t used = cm_block_get(buf, len, &b);
	if (used == 0 || used != len)
		return CM_ERR_INVALID;
	*out = b;
	return CM_OK;
}


void cm_block_hash(cm_block *b)
{
	static const uint8_t payload_tag = 0x00; /* headers start with the version, 0x01 */
	uint8_t ph[CM_HASH_BYTES], hdr[1 + 8 + 8 + CM_HASH_BYTES + 4], q[CM_QC_MAX_BYTES], lenb[4];
	cm_hasher h;

	cm_hasher_init(&h, CM_DOM_BLOCK);
	cm_hasher_update(&h, &payload_tag, 1);
	if (b->payload_len)
		cm_hasher_update(&h, b->payload, b->payload_len);
	cm_hasher_final(&h, ph);

	hdr[0] = CM_CHAIN_ENCODING_VERSION;
	cm_put_be64(hdr + 1, b->height);
	cm_put_be64(hdr + 9, b->view);
	memcpy(hdr + 17, b->parent, CM_HASH_BYTES);
	cm_put_be32(hdr + 17 + CM_HASH_BYTES, b->proposer);
	size_t qlen = cm_qc_put(&b->justify, q);
	cm_put_be32(lenb, b->payload_len);
	cm_hasher_init(&h, CM_DOM_BLOCK);
	cm_hasher_update(&h, hdr, sizeof(hdr));
	cm_hasher_update(&h, q, qlen);
	cm_hasher_update(&h, lenb, sizeof(lenb));
	cm_hasher_update(&h, ph, sizeof(ph));
	cm_hasher_final(&h, b->hash);
}


void cm_block_genesis(cm_block *out)
{
	memset(out, 0, sizeof(*out));
	cm_block_hash(out);
}


void cm_qc_genesis(cm_qc *out)
{
	cm_block g;
	cm_block_genesis(&g);
	memset(out, 0, sizeof(*out));
	memcpy(out->block_hash, g.hash, CM_HASH_BYTES);
}


void cm_chain_tag(uint8_t out[CM_HASH_BYTES], const char *chain_id)
{
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_VOTE);
	cm_hasher_update(&h, (const uint8_t *)"C", 1);
	cm_hasher_update(&h, (const uint8_t *)chain_id, strlen(chain_id));
	cm_hasher_final(&h, out);
}

/* Votes sign H(CM_DOM_VOTE || chain tag || view || block hash): 72 bytes
 * after the domain. */
void cm_vote_digest(uint8_t out[CM_HASH_BYTES], const uint8_t chain[CM_HASH_BYTES], uint64_t view,
		    const uint8_t hash[CM_HASH_BYTES])
{
	uint8_t buf[CM_HASH_BYTES + 8 + CM_HASH_BYTES];
	memcpy(buf, chain, CM_HASH_BYTES);
	cm_put_be64(buf + CM_HASH_BYTES, view);
	memcpy(buf + CM_HASH_BYTES + 8, hash, CM_HASH_BYTES);
	cm_hash(out, CM_DOM_VOTE, buf, sizeof(buf));
}

int cm_qc_is_genesis(const cm_qc *qc)
{
	cm_qc g;
	cm_qc_genesis(&g);
	return qc->view == 0 && qc->signers == 0 && memcmp(qc->block_hash, g.block_hash, CM_HASH_BYTES) == 0;
}


int cm_qc_verify(const cm_qc *qc, const uint8_t chain[CM_HASH_BYTES], uint32_t n, uint32_t f,
		    int (*verify)(void *ctx, uint32_t replica, const uint8_t digest[CM_HASH_BYTES],
				  const uint8_t sig[CM_SIG_BYTES]),
		    void *ctx)
{
	uint8_t digest[CM_HASH_BYTES];

	if (n == 0 || n > CM_CHAIN_MAX_REPLICAS || n < 3 * f + 1)
		return CM_ERR_INVALID;
	if (qc->view == 0)
		return cm_qc_is_genesis(qc) ? CM_OK : CM_ERR_INVALID;
	if (qc->view > CM_CHAIN_MAX_VIEW)
		return CM_ERR_INVALID;
	if (n < 64 && (qc->signers >> n) != 0)
		return CM_ERR_INVALID;
	if ((uint32_t)__builtin_popcountll(qc->signers) < n - f)
		return CM_ERR_VERIFY;
	cm_vote_digest(digest, chain, qc->view, qc->block_hash);
	for (uint32_t i = 0; i < n; i++) {
		if ((qc->signers >> i & 1) && verify(ctx, i, digest, qc->sigs[i]) != 0)
			return CM_ERR_VERIFY;
	}
	return CM_OK;
}


int cm_qc_same(const cm_qc *a, const cm_qc *b)
{
	if (a->view != b->view || a->signers != b->signers || memcmp(a->block_hash, b->block_hash, CM_HASH_BYTES) != 0)
		return 0;
	for (uint32_t i = 0; i < CM_CHAIN_MAX_REPLICAS; i++)
		if ((a->signers >> i & 1) && memcmp(a->sigs[i], b->sigs[i], CM_SIG_BYTES) != 0)
			return 0;
	return 1;
}
