/* The consensus core's wire and disk formats: its messages (PROPOSAL, VOTE,
 * NEW-VIEW) and the persisted safety state, canonical encodings as laid out
 * in lg_hotstuff.h; and the digest NEW-VIEWs sign. Blocks and QCs are
 * common/cm_chain's. */
#include "lg_hs_int.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

/* ---- canonical encoding ----
 * QC:       view u64 | block_hash 32 | signers u64 | one 64-byte signature
 *           per set bit, lowest replica first
 * block:    version u8 | height u64 | view u64 | parent 32 | proposer u32 |
 *           QC | payload_len u32 | payload
 * message:  type u8 | PROPOSAL: block | sig 64
 *                   | VOTE: view u64 | block_hash 32 | voter u32 | sig 64
 *                   | NEW-VIEW: view u64 | sender u32 | sig 64 | QC
 * safety:   version u8 | last_voted_view u64 | locked QC | high QC */

size_t lg_hs_msg_size(const lg_hs_msg *m)
{
	switch (m->type) {
	case LG_HS_MSG_PROPOSAL:
		return 1 + cm_block_size(&m->u.proposal.block) + CM_SIG_BYTES;
	case LG_HS_MSG_VOTE:
		return LG_HS_VOTE_BYTES;
	case LG_HS_MSG_NEWVIEW:
		return 1 + 8 + 4 + CM_SIG_BYTES + cm_qc_size(&m->u.newview.high_qc);
	}
	return 0;
}

int lg_hs_msg_encode(const lg_hs_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
	size_t need = lg_hs_msg_size(m);
	if (need == 0)
		return CM_ERR_INVALID;
	if (cap < need)
		return CM_ERR_TOOBIG;
	uint8_t *p = buf;
	*p++ = m->type;
	switch (m->type) {
	case LG_HS_MSG_PROPOSAL:
		p += cm_block_put(&m->u.proposal.block, p);
		memcpy(p, m->u.proposal.sig, CM_SIG_BYTES);
		p += CM_SIG_BYTES;
		break;
	case LG_HS_MSG_VOTE:
		cm_put_be64(p, m->u.vote.view);
		memcpy(p + 8, m->u.vote.block_hash, CM_HASH_BYTES);
		cm_put_be32(p + 8 + CM_HASH_BYTES, m->u.vote.voter);
		memcpy(p + 12 + CM_HASH_BYTES, m->u.vote.sig, CM_SIG_BYTES);
		p += 12 + CM_HASH_BYTES + CM_SIG_BYTES;
		break;
	case LG_HS_MSG_NEWVIEW:
		cm_put_be64(p, m->u.newview.view);
		cm_put_be32(p + 8, m->u.newview.sender);
		memcpy(p + 12, m->u.newview.sig, CM_SIG_BYTES);
		p += 12 + CM_SIG_BYTES;
		p += cm_qc_put(&m->u.newview.high_qc, p);
		break;
	}
	*len = (size_t)(p - buf);
	return CM_OK;
}

int lg_hs_msg_decode(const uint8_t *buf, size_t len, lg_hs_msg *out)
{
	if (len < 1)
		return CM_ERR_INVALID;
	const uint8_t *p = buf + 1;
	size_t rest = len - 1, used;
	uint8_t type = buf[0];
	switch (type) {
	case LG_HS_MSG_PROPOSAL: {
		cm_block b;
		used = cm_block_get(p, rest, &b);
		if (used == 0 || rest - used != CM_SIG_BYTES)
			return CM_ERR_INVALID;
		out->type = type;
		out->u.proposal.block = b;
		memcpy(out->u.proposal.sig, p + used, CM_SIG_BYTES);
		return CM_OK;
	}
	case LG_HS_MSG_VOTE:
		if (len != LG_HS_VOTE_BYTES)
			return CM_ERR_INVALID;
		out->type = type;
		out->u.vote.view = cm_get_be64(p);
		memcpy(out->u.vote.block_hash, p + 8, CM_HASH_BYTES);
		out->u.vote.voter = cm_get_be32(p + 8 + CM_HASH_BYTES);
		memcpy(out->u.vote.sig, p + 12 + CM_HASH_BYTES, CM_SIG_BYTES);
		return CM_OK;
	case LG_HS_MSG_NEWVIEW: {
		cm_qc qc;
		if (rest < 12 + CM_SIG_BYTES)
			return CM_ERR_INVALID;
		used = cm_qc_get(p + 12 + CM_SIG_BYTES, rest - 12 - CM_SIG_BYTES, &qc);
		if (used == 0 || used != rest - 12 - CM_SIG_BYTES)
			return CM_ERR_INVALID;
		out->type = type;
		out->u.newview.view = cm_get_be64(p);
		out->u.newview.sender = cm_get_be32(p + 8);
		memcpy(out->u.newview.sig, p + 12, CM_SIG_BYTES);
		out->u.newview.high_qc = qc;
		return CM_OK;
	}
	}
	return CM_ERR_INVALID;
}

size_t lg_hs_safety_size(const lg_hs_safety *st)
{
	return 1 + 8 + cm_qc_size(&st->locked_qc) + cm_qc_size(&st->high_qc);
}

int lg_hs_safety_encode(const lg_hs_safety *st, uint8_t *buf, size_t cap, size_t *len)
{
	if (cap < lg_hs_safety_size(st))
		return CM_ERR_TOOBIG;
	uint8_t *p = buf;
	*p++ = CM_CHAIN_ENCODING_VERSION;
	cm_put_be64(p, st->last_voted_view);
	p += 8;
	p += cm_qc_put(&st->locked_qc, p);
	p += cm_qc_put(&st->high_qc, p);
	*len = (size_t)(p - buf);
	return CM_OK;
}

int lg_hs_safety_decode(const uint8_t *buf, size_t len, lg_hs_safety *out)
{
	lg_hs_safety st;
	if (len < 9 || buf[0] != CM_CHAIN_ENCODING_VERSION)
		return CM_ERR_INVALID;
	st.last_voted_view = cm_get_be64(buf + 1);
	size_t off = 9, used = cm_qc_get(buf + off, len - off, &st.locked_qc);
	if (used == 0)
		return CM_ERR_INVALID;
	off += used;
	used = cm_qc_get(buf + off, len - off, &st.high_qc);
	if (used == 0 || off + used != len)
		return CM_ERR_INVALID;
	*out = st;
	return CM_OK;
}

/* ---- hashes, digests, certificates ---- */

/* NEW-VIEWs sign H(CM_DOM_VOTE || 'N' || chain tag || view || qc view || qc
 * hash): 81 bytes after the domain, never equal to a vote's 72. */
void lg_hs_newview_digest(uint8_t out[CM_HASH_BYTES], const uint8_t chain[CM_HASH_BYTES], uint64_t view,
			  const cm_qc *qc)
{
	uint8_t buf[1 + CM_HASH_BYTES + 8 + 8 + CM_HASH_BYTES];
	buf[0] = 'N';
	memcpy(buf + 1, chain, CM_HASH_BYTES);
	cm_put_be64(buf + 1 + CM_HASH_BYTES, view);
	cm_put_be64(buf + 9 + CM_HASH_BYTES, qc->view);
	memcpy(buf + 17 + CM_HASH_BYTES, qc->block_hash, CM_HASH_BYTES);
	cm_hash(out, CM_DOM_VOTE, buf, sizeof(buf));
}
