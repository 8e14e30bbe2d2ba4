/* Chained HotStuff's rules (Yin et al., arXiv 1803.05069): what a QC
 * teaches (high QC, lock, three-chain commit), when a replica votes, when a
 * leader proposes, and vote aggregation. The protocol and its safety
 * argument are stated here, next to the code they constrain.
 *
 * Protocol, as implemented here
 * -----------------------------
 * Views v = 1, 2, ... with leader(v) = v mod n. In view v the leader extends
 * the block certified by its highest QC (Algorithm 3: createLeaf(genericQC.
 * node, cmd, genericQC)) and broadcasts it with its own vote. A replica votes
 * for the first valid proposal of its current view if safeNode holds: the
 * block extends the locked block, or its justify QC is newer than the lock
 * (sec. 4.2, Algorithm 1). Votes go to leader(v+1), which aggregates n-f of
 * them into QC(v) and proposes in view v+1 (Algorithm 3, "as next leader");
 * they also go to leader(v) itself, so that QC(v) is not lost with a crashed
 * next leader: it then reaches leader(v+2) in the NEW-VIEW messages.
 * Every QC seen -- in a proposal, a NEW-VIEW, or aggregated from votes -- is
 * processed as in Algorithm 3 for b* = anything carrying qc = QC(b''):
 *   highQC <- qc if newer                     (genericQC; Algorithm 5 updateQCHigh)
 *   lockedQC <- b''.justify if newer          (the two-chain; "commit phase")
 *   commit b if b' = b''.parent, b = b'.parent and
 *     b.view + 1 = b'.view, b'.view + 1 = b''.view   (the three-chain, "decide")
 * Consecutive views are the paper's "direct parent" with dummy nodes filling
 * the views that produced no block (sec. 5).
 *
 * Safety: no two honest replicas commit different blocks at one height.
 * (sec. 4.3 Theorem 2, sec. 5; this is the view-numbered form of the proof.)
 * Assume at most f Byzantine replicas; QCs need n-f >= 2f+1 votes, so any two
 * QCs share an honest voter. An honest replica votes at most once per view,
 * in increasing views (last_voted_view), and has persisted last_voted_view
 * and its lock before the vote leaves, so this survives crashes.
 * (0) Every QC a replica acts on carries n-f valid signatures on this chain:
 *     hs_qc_check verifies each in full, or takes a byte-identical copy
 *     (cm_qc_same) of one it verified in full before; a QC that merely names
 *     a (view, block) known to be certified proves nothing and is checked
 *     like any other. QCs read back at a restart (the persisted lock and
 *     high QC, the stored blocks' justify QCs) are verified in full again. So
 *     the "QC" below always means n-f signatures, of which f+1 are honest.
 * (1) At most one block per view is certified: two QCs of one view would
 *     need an honest replica to vote twice in it.
 * (2) Let b be committed through b <- b' <- b'' at views v, v+1, v+2 with
 *     QC(b''). Claim: every certified block c with c.view >= v extends b. For
 *     c.view <= v+2 this is (1). For c.view = w > v+2, QC(c) and QC(b'')
 *     share an honest voter h. h voted for b'' first (views increase), and
 *     processing b''.justify = QC(b') locked h on QC(b) of view v; locks never
 *     go down. When h voted for c, safeNode held: either c extends h's locked
 *     block, certified at a view in [v, w), or c's parent is certified at a
 *     view in (v, w); by induction that block extends b, so c does too.
 * (3) If honest replicas commit b (three-chain at v) and d (at u >= v), d is
 *     certified at u >= v, so d extends b, and committing d commits b's
 *     ancestry unchanged: the two committed chains agree at every height.
 *     Every replica commits a block's ancestors first, in height order.
 * (4) Memory does not enter the argument: the lock and last_voted_view are
 *     state, not tree contents. The tree always keeps its spine (committed
 *     tip -> locked block -> high QC's block), so safeNode's "extends the
 *     locked block" test sees the locked branch; a block evicted from the
 *     tree (lg_hs_tree.c make_room: off the spine only) can at worst cost a
 *     vote or a commit until it is fetched again, never allow one.
 *
 * Everything from the network is untrusted: sizes, indices, views, hashes
 * and signatures are checked, bad input is counted and ignored, and every
 * buffer (blocks, orphans, votes, pending proposals, fetches) is bounded. */
#include "lg_hs_int.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

/* ---- QCs, locks and commits ---- */

/* Remembers a QC that verified in full, for hs_qc_check's fast path. */
static void qc_remember(lg_hs *hs, const cm_qc *qc)
{
	hs->verified[hs->verified_next] = *qc;
	hs->verified_used |= 1u << hs->verified_next;
	hs->verified_next = (hs->verified_next + 1) % VERIFIED_QCS;
}

/* 1 if qc is byte for byte a QC this replica verified in full before (its
 * high QC, lock and pending QC were all verified before they were kept). */
static int qc_known(const lg_hs *hs, const cm_qc *qc)
{
	if (cm_qc_same(qc, &hs->high_qc) || cm_qc_same(qc, &hs->locked_qc) ||
	    (hs->has_pending_qc && cm_qc_same(qc, &hs->pending_qc)))
		return 1;
	for (uint32_t i = 0; i < VERIFIED_QCS; i++) {
		if ((hs->verified_used >> i & 1) && cm_qc_same(qc, &hs->verified[i]))
			return 1;
	}
	return 0;
}

/* 0 if qc is valid. A QC is nothing but its signatures: one that merely
 * names a (view, block) known to be certified proves nothing, so the fast
 * path takes only an identical copy of a QC verified in full. */
int hs_qc_check(lg_hs *hs, const cm_qc *qc)
{
	if (qc->view > CM_CHAIN_MAX_VIEW)
		return CM_ERR_INVALID;
	if (qc->view == 0)
		return cm_qc_is_genesis(qc) ? CM_OK : CM_ERR_INVALID;
	int32_t idx = hs_node_find(hs, qc->block_hash);
	if (idx >= 0 && hs->nodes[idx].b.view != qc->view)
		return CM_ERR_INVALID;
	if (qc_known(hs, qc))
		return CM_OK;
	int rc = cm_qc_verify(qc, hs->cfg.chain, hs->cfg.n, hs->cfg.f, hs->io.verify, hs->io.ctx);
	if (rc != CM_OK)
		return rc;
	qc_remember(hs, qc);
	if (idx >= 0)
		hs->nodes[idx].certified = 1;
	return CM_OK;
}

/* Decide phase (Algorithm 3, onCommit): hands the blocks from the committed
 * tip up to b0 to the app, lowest first; b0 is certified by qc0. */
void hs_commit_upto(lg_hs *hs, int32_t i0, const cm_qc *qc0)
{
	uint64_t rh = hs_root_block(hs)->height;
	uint64_t top = hs->nodes[i0].b.height;
	if (top <= rh)
		return;
	if (top - rh > hs->count)
		return; /* cannot happen: every block in the tree links down to the root */
	uint32_t len = (uint32_t)(top - rh);
	int32_t idx = i0;
	for (uint32_t k = len; k-- > 0;) {
		if (idx < 0)
			return; /* cannot happen: blocks in the tree descend from the root */
		hs->chain[k] = idx;
		idx = hs_node_find(hs, hs->nodes[idx].b.parent);
	}
	if (idx != hs->root)
		return;
	int committed = 0;
	for (uint32_t k = 0; k < len; k++) {
		const cm_qc *qc = k + 1 < len ? &hs->nodes[hs->chain[k + 1]].b.justify : qc0;
		int rc = hs->io.commit(hs->io.ctx, &hs->nodes[hs->chain[k]].b, qc);
		if (rc != CM_OK) {
			hs_seterr(hs, "commit of block at height %llu failed: %s",
			       (unsigned long long)hs->nodes[hs->chain[k]].b.height, cm_strerror(rc));
			hs->commit_retry = 1;
			memcpy(hs->commit_target, hs->nodes[i0].b.hash, CM_HASH_BYTES);
			hs->commit_qc = *qc0;
			break;
		}
		hs->root = hs->chain[k];
		hs->st.commits++;
		committed = 1;
	}
	if (committed) {
		if (hs->root == i0)
			hs->commit_retry = 0;
		hs->consec = 0; /* progress: the pacemaker's timeout starts over */
		hs_prune(hs);
	}
}

/* Everything a QC teaches (Algorithm 3's three "start phase" steps, with b*
 * being whatever carried qc = QC(b'')); qc has been verified. */
void hs_process_qc(lg_hs *hs, const cm_qc *qc)
{
	int32_t i2 = hs_node_find(hs, qc->block_hash);
	if (i2 < 0) {
		/* the block is missing: fetch it before relying on this QC */
		if (qc->view > hs->high_qc.view && qc->view > hs_root_block(hs)->view &&
		    (!hs->has_pending_qc || qc->view > hs->pending_qc.view)) {
			hs->pending_qc = *qc;
			hs->has_pending_qc = 1;
			hs->pending_since = hs->now;
			hs_want_block(hs, qc->block_hash, qc->view, qc->signers);
		}
	} else if (hs->nodes[i2].b.view == qc->view) {
		hs_node *n2 = &hs->nodes[i2];
		n2->certified = 1;
		/* pre-commit phase on b'': genericQC <- b*.justify (updateQCHigh) */
		if (qc->view > hs->high_qc.view)
			hs->high_qc = *qc;
		if (hs->has_pending_qc && hs->pending_qc.view <= hs->high_qc.view)
			hs->has_pending_qc = 0;
		/* commit phase on b': lockedQC <- b''.justify */
		if (n2->b.justify.view > hs->locked_qc.view)
			hs->locked_qc = n2->b.justify;
		/* decide phase on b: a three-chain of direct parents (consecutive views) */
		int32_t i1 = i2 == hs->root ? -1 : hs_node_find(hs, n2->b.parent);
		if (i1 >= 0 && hs->nodes[i1].b.view + 1 == n2->b.view) {
			int32_t i0 = i1 == hs->root ? -1 : hs_node_find(hs, hs->nodes[i1].b.parent);
			if (i0 >= 0 && hs->nodes[i0].b.view + 1 == hs->nodes[i1].b.view) {
				cm_qc qc0 = hs->nodes[i1].b.justify;
				hs_commit_upto(hs, i0, &qc0);
			}
		}
	}
	/* pacemaker: QC(v) ends view v everywhere */
	if (qc->view + 1 > hs->cur_view)
		hs_enter_view(hs, qc->view + 1);
}

/* ---- voting and proposing ---- */

/* Sends vote (view, hash) to the replicas that aggregate it. */
static void send_vote(lg_hs *hs, uint64_t view, const uint8_t *hash, const uint8_t *sig)
{
	uint32_t to[2] = {leader_of(hs, view), leader_of(hs, view + 1)};
	lg_hs_msg m;
	m.type = LG_HS_MSG_VOTE;
	m.u.vote.view = view;
	memcpy(m.u.vote.block_hash, hash, CM_HASH_BYTES);
	m.u.vote.voter = hs->cfg.self;
	memcpy(m.u.vote.sig, sig, CM_SIG_BYTES);
	hs->st.votes_sent++;
	for (int i = 0; i < 2; i++) {
		if (i == 1 && to[1] == to[0])
			break;
		if (to[i] == hs->cfg.self)
			hs_add_vote(hs, view, hash, hs->cfg.self, sig);
		else
			hs->io.send(hs->io.ctx, (int)to[i], &m);
	}
}

/* safeNode (sec. 4.2, Algorithm 1; used by Algorithm 3). */
static int safe_node(const lg_hs *hs, int32_t idx)
{
	const cm_block *b = &hs->nodes[idx].b;
	if (b->justify.view > hs->locked_qc.view)
		return 1;
	int32_t li = hs_node_find(hs, hs->locked_qc.block_hash);
	return li >= 0 && hs_extends(hs, idx, hs->locked_qc.block_hash, hs->nodes[li].b.height);
}

/* Votes for the block at idx if the rules allow; own is set for the leader's
 * own proposal, whose vote leaves inside the PROPOSAL message. */
int hs_try_vote(lg_hs *hs, int32_t idx, int own)
{
	const cm_block *b = &hs->nodes[idx].b;
	/* once per view, only in the current view, never below a NEW-VIEW we sent */
	if (b->view != hs->cur_view || b->view <= hs->last_voted_view || b->view < hs->own_nv)
		return CM_ERR_STATE;
	if (!safe_node(hs, idx))
		return CM_ERR_STATE;
	int32_t pidx = hs_node_find(hs, b->parent);
	if (pidx < 0)
		return CM_ERR_STATE;
	if (!own && hs->io.validate_payload(hs->io.ctx, &hs->nodes[pidx].b, b) != 0) {
		hs->st.rejected_payloads++;
		return CM_ERR_INVALID;
	}
	lg_hs_safety st = {.last_voted_view = b->view, .locked_qc = hs->locked_qc, .high_qc = hs->high_qc};
	int rc = hs->io.persist_safety(hs->io.ctx, &st);
	if (rc != CM_OK) {
		hs->st.persist_failures++;
		hs_seterr(hs, "persisting the safety state for view %llu failed: %s; not voting",
		       (unsigned long long)b->view, cm_strerror(rc));
		return CM_ERR_IO;
	}
	hs->last_voted_view = b->view;
	uint8_t digest[CM_HASH_BYTES], sig[CM_SIG_BYTES];
	cm_vote_digest(digest, hs->cfg.chain, b->view, b->hash);
	hs->io.sign(hs->io.ctx, digest, sig);
	if (own) {
		lg_hs_msg m;
		m.type = LG_HS_MSG_PROPOSAL;
		m.u.proposal.block = *b;
		memcpy(m.u.proposal.sig, sig, CM_SIG_BYTES);
		hs->st.proposals++;
		hs->io.send(hs->io.ctx, LG_HS_BROADCAST, &m);
		/* leader(v+1) takes the proposer's vote from the proposal */
		hs_add_vote(hs, b->view, b->hash, hs->cfg.self, sig);
	} else {
		send_vote(hs, b->view, b->hash, sig);
	}
	return CM_OK;
}

/* Algorithm 3 "as a leader" / Algorithm 5 onBeat: propose once per view,
 * after QC(v-1) or n-f NEW-VIEWs, extending the highest QC. */
void hs_try_propose(lg_hs *hs)
{
	uint64_t v = hs->cur_view;
	if (leader_of(hs, v) != hs->cfg.self || hs->proposed_view >= v || v <= hs->last_voted_view ||
	    v < hs->own_nv)
		return;
	/* a higher QC's block is on its way: wait for it, for a while (with at
	 * most f faulty replicas it always comes, as it extends the committed tip) */
	if (hs->has_pending_qc && hs->pending_qc.view > hs->high_qc.view &&
	    hs->now < hs->pending_since + hs->cfg.base_timeout_ms)
		return;
	uint32_t nv = 0;
	for (uint32_t i = 0; i < hs->cfg.n; i++)
		nv += hs->nv_view[i] >= v;
	if (hs->high_qc.view + 1 != v && nv < hs->quorum)
		return;
	int32_t pidx = hs_node_find(hs, hs->high_qc.block_hash);
	if (pidx < 0)
		return;
	const cm_block *parent = &hs->nodes[pidx].b;
	size_t plen = 0;
	int rc = hs->io.make_payload(hs->io.ctx, parent, parent->height + 1, v, hs->payload_buf,
				     hs->cfg.max_payload_bytes, &plen);
	if (rc == CM_ERR_STATE)
		return; /* asked again on the next tick */
	hs->proposed_view = v;
	if (rc != CM_OK || plen > hs->cfg.max_payload_bytes) {
		hs_seterr(hs, "making the payload for view %llu failed: %s", (unsigned long long)v,
		       cm_strerror(rc != CM_OK ? rc : CM_ERR_TOOBIG));
		return;
	}
	cm_block b;
	memset(&b, 0, sizeof(b));
	b.height = parent->height + 1;
	b.view = v;
	memcpy(b.parent, parent->hash, CM_HASH_BYTES);
	b.justify = hs->high_qc;
	b.proposer = hs->cfg.self;
	b.payload_len = (uint32_t)plen;
	b.payload = plen ? hs->payload_buf : NULL;
	cm_block_hash(&b);
	int32_t idx;
	if (hs_accept_block(hs, &b, hs->cfg.self, &idx) != CM_OK)
		return;
	hs_try_vote(hs, idx, 1);
}

/* Keeps one proposal per future view until this replica gets there. */
static void pend_add(lg_hs *hs, uint64_t view, const uint8_t *hash)
{
	pending *slot = NULL, *highest = NULL;
	for (int i = 0; i < MAX_PENDING; i++) {
		pending *p = &hs->pend[i];
		if (p->view && p->view < hs->cur_view)
			p->view = 0;
		if (p->view == view)
			return; /* the first proposal of a view wins */
		if (!p->view && !slot)
			slot = p;
		if (p->view && (!highest || p->view > highest->view))
			highest = p;
	}
	if (!slot) {
		if (highest->view < view) {
			hs->st.dropped_full++;
			return;
		}
		slot = highest;
	}
	slot->view = view;
	memcpy(slot->hash, hash, CM_HASH_BYTES);
}

/* Runs at the end of every entry point: parked work that may now proceed. */

/* ---- votes (Algorithm 3 "as next leader", Algorithm 4 onReceiveVote) ---- */

static int is_collector(const lg_hs *hs, uint64_t view)
{
	return leader_of(hs, view) == hs->cfg.self || leader_of(hs, view + 1) == hs->cfg.self;
}

void hs_add_vote(lg_hs *hs, uint64_t view, const uint8_t *hash, uint32_t voter, const uint8_t *sig)
{
	if (view + 2 < hs->cur_view || view >= hs->cur_view + VOTE_SLOTS - 2)
		return;
	vote_slot *s = &hs->slots[view % VOTE_SLOTS];
	if (s->view != view) {
		if (s->view > view)
			return;
		s->view = view;
		s->have = 0;
		s->done = 0;
	}
	if (s->done)
		return;
	if (s->have >> voter & 1) {
		if (!hash_eq(s->hash[voter], hash))
			hs->st.equivocations++;
		hs->st.dup_votes++;
		return;
	}
	s->have |= (uint64_t)1 << voter;
	memcpy(s->hash[voter], hash, CM_HASH_BYTES);
	memcpy(s->sig[voter], sig, CM_SIG_BYTES);
	uint64_t same = 0;
	for (uint32_t i = 0; i < hs->cfg.n; i++) {
		if ((s->have >> i & 1) && hash_eq(s->hash[i], hash))
			same |= (uint64_t)1 << i;
	}
	if (popcount64(same) < hs->quorum)
		return;
	cm_qc qc;
	memset(&qc, 0, sizeof(qc));
	qc.view = view;
	memcpy(qc.block_hash, hash, CM_HASH_BYTES);
	/* exactly n-f signatures, lowest replicas first: a canonical QC */
	for (uint32_t i = 0, k = 0; i < hs->cfg.n && k < hs->quorum; i++) {
		if (same >> i & 1) {
			qc.signers |= (uint64_t)1 << i;
			memcpy(qc.sigs[i], s->sig[i], CM_SIG_BYTES);
			k++;
		}
	}
	s->done = 1;
	hs->st.qcs_formed++;
	int32_t idx = hs_node_find(hs, hash);
	if (idx >= 0 && hs->nodes[idx].b.view != view)
		return; /* votes of a view for a block of another one: not a QC */
	hs_process_qc(hs, &qc);
}

int hs_on_vote(lg_hs *hs, const lg_hs_vote *v)
{
	uint8_t digest[CM_HASH_BYTES];
	if (v->voter >= hs->cfg.n || v->view == 0 || v->view > CM_CHAIN_MAX_VIEW) {
		hs->st.bad_msgs++;
		return CM_ERR_INVALID;
	}
	if (!is_collector(hs, v->view) || v->view + 2 < hs->cur_view) {
		hs->st.stale_msgs++;
		return CM_ERR_STATE;
	}
	if (v->view >= hs->cur_view + VOTE_SLOTS - 2) {
		hs->st.future_msgs++;
		return CM_ERR_RANGE;
	}
	const vote_slot *s = &hs->slots[v->view % VOTE_SLOTS];
	if (s->view == v->view && (s->done || (s->have >> v->voter & 1))) {
		hs->st.dup_votes++;
		return CM_ERR_STATE;
	}
	cm_vote_digest(digest, hs->cfg.chain, v->view, v->block_hash);
	if (hs->io.verify(hs->io.ctx, v->voter, digest, v->sig) != 0) {
		hs->st.bad_sigs++;
		return CM_ERR_VERIFY;
	}
	hs_add_vote(hs, v->view, v->block_hash, v->voter, v->sig);
	return CM_OK;
}

/* ---- proposals (Algorithm 3 "as a replica") ---- */

int hs_on_proposal(lg_hs *hs, uint32_t from, const lg_hs_proposal *p)
{
	uint8_t digest[CM_HASH_BYTES];
	cm_block b = p->block;
	cm_block_hash(&b);
	if (hs_block_check(hs, &b) != CM_OK) {
		hs->st.bad_msgs++;
		return CM_ERR_INVALID;
	}
	cm_vote_digest(digest, hs->cfg.chain, b.view, b.hash);
	if (hs->io.verify(hs->io.ctx, b.proposer, digest, p->sig) != 0) {
		hs->st.bad_sigs++;
		return CM_ERR_VERIFY;
	}
	int32_t idx = hs_node_find(hs, b.hash);
	if (idx < 0) {
		int rc = hs_qc_check(hs, &b.justify);
		if (rc != CM_OK) {
			hs->st.bad_sigs++;
			return rc;
		}
		hs_process_qc(hs, &b.justify); /* may move us to b.view */
		if (b.view > hs->cur_view + hs->cfg.max_future_views) {
			hs->st.future_msgs++;
			return CM_ERR_RANGE;
		}
		rc = hs_accept_block(hs, &b, from, &idx);
		if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
			return rc;
	}
	/* the proposer's signature is its vote */
	if (is_collector(hs, b.view))
		hs_add_vote(hs, b.view, b.hash, b.proposer, p->sig);
	if (b.view > hs->cur_view || idx < 0) {
		if (b.view >= hs->cur_view && b.view > hs->last_voted_view)
			pend_add(hs, b.view, b.hash);
		return CM_OK;
	}
	hs_try_vote(hs, idx, 0);
	return CM_OK;
}
