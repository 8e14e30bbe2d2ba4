/* The simulation's Byzantine replica (see hs_sim.h): what it does with the
 * messages its own core wants to send -- equivocation, forks, forged and
 * replayed QCs, votes for unseen blocks, stale and far-future views, other
 * chains' signatures, rejected payloads, wrong state roots, withholding,
 * garbage -- signing its messages only with its own key; and the QC
 * forgeries, whose signatures over the wrong digests are made with the
 * test's keys (a stronger adversary than a real one: all must be refused). */
#include "hs_sim.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void byz_vote(sim *s, uint64_t view, const uint8_t *hash, int to_all)
{
	lg_hs_msg m;
	uint8_t d[CM_HASH_BYTES];
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_VOTE;
	m.u.vote.view = view;
	memcpy(m.u.vote.block_hash, hash, CM_HASH_BYTES);
	m.u.vote.voter = (uint32_t)s->byz;
	cm_vote_digest(d, CHAIN, view, hash);
	sim_sign(s, (uint32_t)s->byz, d, m.u.vote.sig);
	if (to_all) {
		net_msg(s, (uint32_t)s->byz, LG_HS_BROADCAST, &m);
		return;
	}
	uint32_t a = (uint32_t)(view % N), b = (uint32_t)((view + 1) % N);
	if (a != (uint32_t)s->byz)
		net_msg(s, (uint32_t)s->byz, (int)a, &m);
	if (b != (uint32_t)s->byz)
		net_msg(s, (uint32_t)s->byz, (int)b, &m);
}

/* A block like b with another payload, signed by the Byzantine proposer. */
static void byz_variant(sim *s, const lg_hs_proposal *p, lg_hs_msg *out, uint8_t *payload, uint8_t first)
{
	*out = (lg_hs_msg){.type = LG_HS_MSG_PROPOSAL};
	out->u.proposal.block = p->block;
	cm_block *b = &out->u.proposal.block;
	uint32_t len = b->payload_len;
	if (len)
		memcpy(payload, b->payload, len);
	if (len < MAX_PAYLOAD)
		payload[len++] = (uint8_t)rnd(s);
	if (first == POISON)
		payload[0] = POISON;
	else if (first == 'R' && len >= APP_PAYLOAD_MIN) {
		payload[26] ^= 0x01; /* a wrong state root at its own state height */
		s->rootlies_sent++;
	} else if (first == 'P' && len >= APP_PAYLOAD_MIN && b->height > 0) {
		/* pins the parent (which no voter has committed yet) with a
		 * made-up root */
		uint64_t junk = rnd(s);
		cm_put_be64(payload + 18, b->height - 1);
		cm_hash(payload + 26, CM_DOM_STATE, &junk, sizeof(junk));
		s->rootlies_sent++;
	}
	b->payload = payload;
	b->payload_len = len;
	cm_block_hash(b);
	uint8_t d[CM_HASH_BYTES];
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	sim_sign(s, (uint32_t)s->byz, d, out->u.proposal.sig);
}

/* The Byzantine replica keeps the last QCs it saw, to fork from old ones. */
void remember_qc(sim *s, const cm_block *b)
{
	const cm_qc *qc = &b->justify;
	for (size_t i = 0; i < s->nseen; i++)
		if (s->seen[i].qc.view == qc->view)
			return;
	size_t slot = s->nseen < 16 ? s->nseen++ : (size_t)(qc->view % 16);
	s->seen[slot].qc = *qc;
	s->seen[slot].height = b->height - 1;
}

/* A block for p's view that extends an older QC than p does: a fork that
 * only the lock (safeNode) keeps honest replicas from voting for. */
static int byz_fork(sim *s, const lg_hs_proposal *p, lg_hs_msg *out, uint8_t *payload)
{
	size_t k = s->nseen, tries = 0;
	while (tries++ < 8) {
		size_t i = (size_t)below(s, s->nseen);
		if (s->nseen && s->seen[i].qc.view < p->block.justify.view) {
			k = i;
			break;
		}
	}
	if (k == s->nseen)
		return 0;
	*out = (lg_hs_msg){.type = LG_HS_MSG_PROPOSAL};
	cm_block *b = &out->u.proposal.block;
	b->view = p->block.view;
	b->proposer = p->block.proposer;
	b->justify = s->seen[k].qc;
	memcpy(b->parent, b->justify.block_hash, CM_HASH_BYTES);
	b->height = s->seen[k].height + 1;
	/* a payload the app takes: the parent's claimed state, as the Byzantine
	 * replica stored the parent (else genesis's) */
	b->payload_len = APP_PAYLOAD_MIN + 4;
	for (uint32_t i = 0; i < b->payload_len; i++)
		payload[i] = (uint8_t)rnd(s);
	payload[0] = APP_TAG;
	payload[1] = (uint8_t)s->byz;
	cm_put_be64(payload + 2, b->height);
	cm_put_be64(payload + 10, b->view);
	cm_put_be64(payload + 18, 0);
	app_root0(payload + 26);
	int32_t pi = bstore_find(&s->r[s->byz].store, b->parent);
	cm_block parent;
	if (pi >= 0 && cm_block_decode(s->r[s->byz].store.v[pi].bytes, s->r[s->byz].store.v[pi].len, &parent) == CM_OK &&
	    parent.payload_len >= APP_PAYLOAD_MIN)
		memcpy(payload + 18, parent.payload + 18, 8 + CM_HASH_BYTES);
	b->payload = payload;
	cm_block_hash(b);
	uint8_t d[CM_HASH_BYTES];
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	sim_sign(s, (uint32_t)s->byz, d, out->u.proposal.sig);
	return 1;
}

/* p's block with a forged or misplaced justify QC (see forge_qc; or a real
 * QC of another block), signed by the Byzantine proposer. */
static int byz_forged_proposal(sim *s, const lg_hs_proposal *p, lg_hs_msg *out, uint8_t *payload)
{
	const cm_qc *real = &p->block.justify;
	if (real->view == 0)
		return 0;
	*out = (lg_hs_msg){.type = LG_HS_MSG_PROPOSAL};
	out->u.proposal.block = p->block;
	cm_block *b = &out->u.proposal.block;
	uint64_t kind = below(s, FORGE_KINDS + 1);
	if (kind == FORGE_KINDS) {
		if (!s->nseen)
			return 0;
		b->justify = s->seen[below(s, s->nseen)].qc;
		if (b->justify.view == real->view)
			return 0;
	} else {
		forge_qc(&b->justify, (int)kind, real->view, real->block_hash);
	}
	uint32_t len = b->payload_len;
	if (len)
		memcpy(payload, b->payload, len);
	if (len < MAX_PAYLOAD)
		payload[len++] = (uint8_t)rnd(s);
	b->payload = payload;
	b->payload_len = len;
	cm_block_hash(b);
	uint8_t d[CM_HASH_BYTES];
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	sim_sign(s, (uint32_t)s->byz, d, out->u.proposal.sig);
	return 1;
}

/* A vote or NEW-VIEW like m for a stale or far-future view, correctly
 * signed by the Byzantine replica, or for the same view signed for another
 * chain; to everyone. */
static void byz_odd_view(sim *s, const lg_hs_msg *m)
{
	static lg_hs_msg o;
	uint8_t d[CM_HASH_BYTES];
	o = *m;
	uint64_t *view = m->type == LG_HS_MSG_VOTE ? &o.u.vote.view : &o.u.newview.view;
	uint64_t k = 1 + below(s, 6);
	static const uint8_t other_chain[CM_HASH_BYTES] = {0x0c, 0x4a};
	const uint8_t *chain = CHAIN;
	switch (below(s, 4)) {
	case 3: chain = other_chain; break; /* the same view, signed for another chain */
	case 0: *view = *view > k ? *view - k : 1; break;
	case 1: *view += k + below(s, 200); break;
	default: *view += (uint64_t)1 << (20 + below(s, 40)); break;
	}
	if (m->type == LG_HS_MSG_VOTE) {
		cm_vote_digest(d, chain, o.u.vote.view, o.u.vote.block_hash);
		sim_sign(s, (uint32_t)s->byz, d, o.u.vote.sig);
	} else {
		lg_hs_newview_digest(d, chain, o.u.newview.view, &o.u.newview.high_qc);
		sim_sign(s, (uint32_t)s->byz, d, o.u.newview.sig);
	}
	net_msg(s, (uint32_t)s->byz, LG_HS_BROADCAST, &o);
}

/* What the Byzantine replica does with the messages its own (honest) core
 * wants to send: equivocate, withhold, propose rejected payloads, vote
 * twice, claim far-away views, send garbage. It signs only with its key. */
void byz_send(replica *r, int to, const lg_hs_msg *m)
{
	sim *s = r->sim;
	if (chance(s, s->junk_ppm)) {
		uint8_t junk[64];
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)rnd(s);
		junk[0] = (uint8_t)(1 + below(s, 3));
		net_bytes(s, r->id, LG_HS_BROADCAST, junk, 1 + below(s, sizeof(junk)));
	}
	if (m->type != LG_HS_MSG_PROPOSAL && chance(s, s->silent_ppm / 2))
		return; /* withheld */
	if (m->type != LG_HS_MSG_PROPOSAL && chance(s, s->oddview_ppm))
		byz_odd_view(s, m);
	if (m->type == LG_HS_MSG_NEWVIEW && m->u.newview.high_qc.view > 0 && chance(s, s->forge_ppm)) {
		/* its high QC, forged; the NEW-VIEW itself correctly signed */
		static lg_hs_msg fake;
		uint8_t d[CM_HASH_BYTES];
		fake = *m;
		forge_qc(&fake.u.newview.high_qc, (int)below(s, FORGE_KINDS), m->u.newview.high_qc.view,
			 m->u.newview.high_qc.block_hash);
		lg_hs_newview_digest(d, CHAIN, fake.u.newview.view, &fake.u.newview.high_qc);
		sim_sign(s, r->id, d, fake.u.newview.sig);
		net_msg(s, r->id, to, &fake);
		s->forged_sent++;
		return;
	}
	if (m->type == LG_HS_MSG_PROPOSAL) {
		static lg_hs_msg alt;
		uint8_t payload[MAX_PAYLOAD + 1];
		if (chance(s, s->silent_ppm))
			return;
		remember_qc(s, &m->u.proposal.block);
		if (chance(s, s->forge_ppm) && byz_forged_proposal(s, &m->u.proposal, &alt, payload)) {
			/* the forged block to some, the real one to the others */
			for (uint32_t d = 0; d < N; d++) {
				if (d != r->id && (to < 0 || (uint32_t)to == d))
					net_msg(s, r->id, (int)d, below(s, 3) ? &alt : m);
			}
			s->forged_sent++;
			return;
		}
		if (chance(s, s->rootlie_ppm)) {
			byz_variant(s, &m->u.proposal, &alt, payload, below(s, 2) ? 'P' : 'R');
			net_msg(s, r->id, to, &alt);
			return;
		}
		if (chance(s, s->fork_ppm) && byz_fork(s, &m->u.proposal, &alt, payload)) {
			/* the fork to everyone, or the fork to some and the real block to others */
			uint32_t mask = below(s, 2) ? 7 : 1 + (uint32_t)below(s, 6), k = 0;
			for (uint32_t d = 0; d < N; d++) {
				if (d == r->id)
					continue;
				net_msg(s, r->id, (int)d, (mask >> k++ & 1) ? &alt : m);
			}
			byz_vote(s, alt.u.proposal.block.view, alt.u.proposal.block.hash, 0);
			s->conflicts++;
			return;
		}
		if (chance(s, s->poison_ppm)) {
			byz_variant(s, &m->u.proposal, &alt, payload, POISON);
			hl_set(&s->poison, s->poison.n, alt.u.proposal.block.hash);
			net_msg(s, r->id, to, &alt);
			return;
		}
		if (chance(s, s->equiv_ppm)) {
			/* two blocks for one view, to two non-empty halves */
			byz_variant(s, &m->u.proposal, &alt, payload, 0x42);
			uint32_t mask = 1 + (uint32_t)below(s, 6), both = (uint32_t)below(s, 8), k = 0;
			for (uint32_t d = 0; d < N; d++) {
				if (d == r->id)
					continue;
				/* some get both, in either order */
				int first = mask >> k & 1;
				net_msg(s, r->id, (int)d, first ? &alt : m);
				if (both >> k++ & 1)
					net_msg(s, r->id, (int)d, first ? m : &alt);
			}
			byz_vote(s, alt.u.proposal.block.view, alt.u.proposal.block.hash, 0);
			s->conflicts++;
			return;
		}
	} else if (m->type == LG_HS_MSG_VOTE && chance(s, s->voteall_ppm)) {
		uint8_t fake[CM_HASH_BYTES];
		for (int i = 0; i < CM_HASH_BYTES; i++)
			fake[i] = (uint8_t)rnd(s);
		byz_vote(s, m->u.vote.view, fake, 1);
	} else if (m->type == LG_HS_MSG_NEWVIEW && s->nseen && chance(s, s->lie_ppm)) {
		/* report an older QC than it has, so that a leader forks below it */
		static lg_hs_msg lie;
		uint8_t d[CM_HASH_BYTES];
		lie = *m;
		const cm_qc *old = &s->seen[below(s, s->nseen)].qc;
		if (old->view < lie.u.newview.high_qc.view) {
			lie.u.newview.high_qc = *old;
			lg_hs_newview_digest(d, CHAIN, lie.u.newview.view, old);
			sim_sign(s, r->id, d, lie.u.newview.sig);
			net_msg(s, r->id, to, &lie);
			return;
		}
	} else if (m->type == LG_HS_MSG_NEWVIEW && chance(s, s->junk_ppm * 20)) {
		static lg_hs_msg far;
		uint8_t d[CM_HASH_BYTES];
		far = *m;
		far.u.newview.view += 1 + below(s, 5000);
		lg_hs_newview_digest(d, CHAIN, far.u.newview.view, &far.u.newview.high_qc);
		sim_sign(s, r->id, d, far.u.newview.sig);
		net_msg(s, r->id, LG_HS_BROADCAST, &far);
	}
	net_msg(s, r->id, to, m);
}

/* ---- certificates, real and forged ---- */

void make_qc(cm_qc *qc, uint64_t view, const uint8_t *hash, uint64_t signers)
{
	uint8_t d[CM_HASH_BYTES];
	memset(qc, 0, sizeof(*qc));
	qc->view = view;
	memcpy(qc->block_hash, hash, CM_HASH_BYTES);
	qc->signers = signers;
	cm_vote_digest(d, CHAIN, view, hash);
	for (uint32_t i = 0; i < CM_CHAIN_MAX_REPLICAS; i++)
		if (signers >> i & 1)
			fake_sign(i, d, qc->sigs[i]);
}

int verify_cb(void *ctx, uint32_t who, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES])
{
	(void)ctx;
	return fake_verify(who, d, sig);
}


const char *const forge_name[FORGE_KINDS] = {
	"no signers", "too few signers", "signatures of another view", "signatures of another block",
	"signatures of another chain", "one signature flipped", "a signer bit past n",
	"an extra signer without a signature"};

void make_qc_on(cm_qc *qc, const uint8_t *chain, uint64_t view, const uint8_t *hash, uint64_t signers)
{
	uint8_t d[CM_HASH_BYTES];
	memset(qc, 0, sizeof(*qc));
	qc->view = view;
	memcpy(qc->block_hash, hash, CM_HASH_BYTES);
	qc->signers = signers;
	cm_vote_digest(d, chain, view, hash);
	for (uint32_t i = 0; i < CM_CHAIN_MAX_REPLICAS; i++)
		if (signers >> i & 1)
			fake_sign(i, d, qc->sigs[i]);
}

/* A QC claiming (view, hash) that must not verify: each kind one lie. */
void forge_qc(cm_qc *qc, int kind, uint64_t view, const uint8_t *hash)
{
	static const uint8_t other_chain[CM_HASH_BYTES] = {0x0c, 0x4a};
	uint8_t other[CM_HASH_BYTES];
	memcpy(other, hash, CM_HASH_BYTES);
	other[5] ^= 0x40;
	switch (kind) {
	case FORGE_NONE: make_qc(qc, view, hash, 0); break;
	case FORGE_FEW: make_qc(qc, view, hash, 0x06); break;
	case FORGE_VIEW: make_qc(qc, view + 4, hash, 0x0e); qc->view = view; break;
	case FORGE_BLOCK: make_qc(qc, view, other, 0x0e); memcpy(qc->block_hash, hash, CM_HASH_BYTES); break;
	case FORGE_CHAIN: make_qc_on(qc, other_chain, view, hash, 0x0e); break;
	case FORGE_FLIP: make_qc(qc, view, hash, 0x0e); qc->sigs[2][7] ^= 0x10; break;
	case FORGE_EXTRA_BIT: make_qc(qc, view, hash, 0x0e); qc->signers |= (uint64_t)1 << 9; break;
	default: make_qc(qc, view, hash, 0x0e); qc->signers |= 1; break; /* replica 0: no signature */
	}
}
