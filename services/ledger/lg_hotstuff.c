/* Chained HotStuff, the ledger's consensus core (Yin et al., arXiv
 * 1803.05069): one replica's state machine driven by messages and ticks,
 * doing its I/O through lg_hs_io; and the canonical encoding of its
 * messages (blocks and QCs are common/cm_chain's, shared with followers).
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
 * Pacemaker (sec. 6, Algorithm 5 in spirit): a replica moves to view v+1 on
 * seeing any QC of view v. If a view's timer fires it sends NEW-VIEW(v+1,
 * highQC) to everyone (the paper sends it to the next leader; the others use
 * it to synchronize) and no longer votes below v+1. A replica enters view w
 * once n-f replicas (itself included) sent NEW-VIEW for views >= w, and joins
 * (sends its own NEW-VIEW(w)) once f+1 did, as PBFT's view change does.
 * leader(w) proposes on QC(w-1) or on n-f NEW-VIEWs >= w, with the highest QC
 * it knows. Timeouts double on each expiry up to max_timeout_ms, and drop
 * back to base_timeout_ms when a block commits. Lost NEW-VIEWs are covered
 * twice: a replica short of n-f for the view it asked for repeats its own
 * every base timeout, and one that hears NEW-VIEW(w) with w <= its view (the
 * sender lags) answers with NEW-VIEW(its view), at most once per base timeout
 * per sender.
 *
 * Safety: no two honest replicas commit different blocks at one height.
 * (sec. 4.3 Theorem 2, sec. 5; this is the view-numbered form of the proof.)
 * Assume at most f Byzantine replicas; QCs need n-f >= 2f+1 votes, so any two
 * QCs share an honest voter. An honest replica votes at most once per view,
 * in increasing views (last_voted_view), and has persisted last_voted_view
 * and its lock before the vote leaves, so this survives crashes.
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
 *
 * Liveness after GST (sec. 4.4 Theorem 4, sec. 6): after GST messages between
 * honest replicas arrive within delta and the timer resends NEW-VIEWs, so
 * once f+1 honest replicas ask for view >= w every honest one joins, and all
 * enter the highest such view within a few delta of each other. Timeouts
 * double until they exceed the few delta a view needs. An honest leader
 * entering view w has n-f NEW-VIEWs, sent after their senders' last vote
 * below w; any honest lock QC(b') comes from a QC(b'') whose >= f+1 honest
 * voters had highQC >= QC(b') before sending, and one of them is among the
 * n-f, so the leader's highQC is at least the highest honest lock and every
 * honest replica's safeNode accepts its proposal. Three consecutive views
 * with honest leaders then certify three blocks in a row (the third QC is
 * formed by its own leader, since votes also go there) and the first one
 * commits; with f < n/3 faulty replicas and round-robin leaders such runs
 * keep coming (for n = 4, one in every four views).
 *
 * Everything from the network is untrusted: sizes, indices, views, hashes
 * and signatures are checked, bad input is counted and ignored, and every
 * buffer (blocks, orphans, votes, pending proposals, fetches) is bounded. */
#include "lg_hotstuff.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOTE_SLOTS 8          /* views whose votes are being collected */
#define MAX_ORPHANS 32        /* blocks waiting for their parent */
#define MAX_WANTED 16         /* blocks being fetched */
#define MAX_PENDING 8         /* proposals for views not yet entered */
#define PER_VIEW_UNCERTIFIED 2 /* a third block of one view needs a QC or a request */
#define DEFAULT_MAX_BLOCKS 256
#define DEFAULT_MAX_FUTURE 64

typedef struct hs_node {
	cm_block b;        /* payload owned by the node */
	uint8_t used;
	uint8_t certified;    /* a verified QC for (b.view, b.hash) was seen */
} hs_node;

typedef struct vote_slot {
	uint64_t view;        /* 0: empty */
	uint64_t have;        /* voters heard from in this view */
	uint8_t done;         /* a QC was formed */
	uint8_t hash[CM_CHAIN_MAX_REPLICAS][CM_HASH_BYTES];
	uint8_t sig[CM_CHAIN_MAX_REPLICAS][CM_SIG_BYTES];
} vote_slot;

typedef struct wanted {
	uint8_t used;
	uint8_t hash[CM_HASH_BYTES];
	uint64_t min_view;    /* the block's view is at least this; dropped once committed past */
	uint64_t peers;       /* replicas expected to have it */
	uint32_t attempts;
	uint64_t next_ms;
} wanted;

typedef struct pending {
	uint64_t view;        /* 0: empty */
	uint8_t hash[CM_HASH_BYTES];
} pending;

struct lg_hs {
	lg_hs_config cfg;
	lg_hs_io io;
	uint32_t quorum;                /* n - f */
	uint64_t now;
	int started;

	/* Safety state (persisted before each vote). */
	uint64_t last_voted_view;
	cm_qc locked_qc;
	cm_qc high_qc;

	/* Pacemaker. */
	uint64_t cur_view;
	uint64_t own_nv;                /* highest NEW-VIEW this replica sent */
	uint64_t nv_view[CM_CHAIN_MAX_REPLICAS]; /* highest NEW-VIEW heard per replica */
	uint64_t nv_help_at[CM_CHAIN_MAX_REPLICAS]; /* when a lagging replica may be answered again */
	uint64_t deadline;
	uint64_t nv_resend_at;          /* repeat own_nv while waiting to enter it */
	uint32_t consec;                /* view timeouts since the last commit */
	uint64_t proposed_view;

	/* Block tree: the committed tip (root) and its uncommitted descendants. */
	hs_node *nodes;
	uint32_t cap, count;
	int32_t *index;                 /* open addressing on the hash -> node */
	uint32_t index_mask;
	int32_t root;
	int32_t *chain;                 /* scratch for commits, cap entries */

	cm_qc pending_qc;            /* highest QC whose block is missing */
	int has_pending_qc;
	uint64_t pending_since;
	hs_node orphans[MAX_ORPHANS];
	uint64_t orphan_seq[MAX_ORPHANS], next_seq;
	wanted want[MAX_WANTED];
	pending pend[MAX_PENDING];
	vote_slot *slots;

	int commit_retry;               /* io.commit failed; retry on tick */
	uint8_t commit_target[CM_HASH_BYTES];
	cm_qc commit_qc;

	uint8_t *payload_buf;
	lg_hs_stats st;
	char errmsg[256];
};

/* ---- encoding helpers ---- */

static uint32_t popcount64(uint64_t x)
{
	return (uint32_t)__builtin_popcountll(x);
}

static int hash_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, CM_HASH_BYTES) == 0;
}

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

/* ---- small helpers ---- */

static void seterr(lg_hs *hs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(lg_hs *hs, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(hs->errmsg, sizeof(hs->errmsg), fmt, ap);
	va_end(ap);
}

static uint32_t leader_of(const lg_hs *hs, uint64_t view)
{
	return (uint32_t)(view % hs->cfg.n);
}

static uint32_t timeout_now(const lg_hs *hs)
{
	uint64_t t = (uint64_t)hs->cfg.base_timeout_ms << (hs->consec > 20 ? 20 : hs->consec);
	return t > hs->cfg.max_timeout_ms ? hs->cfg.max_timeout_ms : (uint32_t)t;
}

static uint64_t now_of(lg_hs *hs)
{
	uint64_t t = hs->io.now_ms(hs->io.ctx);
	if (t > hs->now)
		hs->now = t;
	return hs->now;
}

/* ---- the block tree ---- */

static uint32_t slot_of(const lg_hs *hs, const uint8_t *hash)
{
	return (uint32_t)cm_get_be64(hash) & hs->index_mask;
}

static int32_t node_find(const lg_hs *hs, const uint8_t *hash)
{
	for (uint32_t s = slot_of(hs, hash);; s = (s + 1) & hs->index_mask) {
		int32_t i = hs->index[s];
		if (i < 0)
			return -1;
		if (hash_eq(hs->nodes[i].b.hash, hash))
			return i;
	}
}

static void index_remove(lg_hs *hs, int32_t idx)
{
	uint32_t s = slot_of(hs, hs->nodes[idx].b.hash);
	while (hs->index[s] != idx)
		s = (s + 1) & hs->index_mask;
	/* backward-shift deletion keeps probe chains intact */
	uint32_t hole = s;
	for (uint32_t j = (s + 1) & hs->index_mask; hs->index[j] >= 0; j = (j + 1) & hs->index_mask) {
		uint32_t home = slot_of(hs, hs->nodes[hs->index[j]].b.hash);
		/* move j into the hole unless its home lies cyclically in (hole, j] */
		int in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!in_range) {
			hs->index[hole] = hs->index[j];
			hole = j;
		}
	}
	hs->index[hole] = -1;
}

/* Copies b (and its payload) into a free node; the node owns the copy. */
static int32_t node_insert(lg_hs *hs, const cm_block *b, int certified)
{
	if (hs->count >= hs->cap)
		return -1;
	uint8_t *copy = NULL;
	if (b->payload_len) {
		copy = malloc(b->payload_len);
		if (!copy)
			return -1;
		memcpy(copy, b->payload, b->payload_len);
	}
	int32_t idx = 0;
	while (hs->nodes[idx].used)
		idx++;
	hs_node *nd = &hs->nodes[idx];
	nd->b = *b;
	nd->b.payload = copy;
	nd->used = 1;
	nd->certified = (uint8_t)certified;
	uint32_t s = slot_of(hs, b->hash);
	while (hs->index[s] >= 0)
		s = (s + 1) & hs->index_mask;
	hs->index[s] = idx;
	hs->count++;
	return idx;
}

static void node_remove(lg_hs *hs, int32_t idx)
{
	hs_node *nd = &hs->nodes[idx];
	index_remove(hs, idx);
	free((void *)nd->b.payload);
	memset(nd, 0, sizeof(*nd));
	hs->count--;
}

static const cm_block *root_block(const lg_hs *hs)
{
	return &hs->nodes[hs->root].b;
}

/* 1 if the block at idx is, or descends from, the block (hash, height). */
static int extends(const lg_hs *hs, int32_t idx, const uint8_t *hash, uint64_t height)
{
	while (idx >= 0 && hs->nodes[idx].b.height > height)
		idx = node_find(hs, hs->nodes[idx].b.parent);
	return idx >= 0 && hs->nodes[idx].b.height == height && hash_eq(hs->nodes[idx].b.hash, hash);
}

/* Drops every block that is not the committed tip or a descendant of it. */
static void prune(lg_hs *hs)
{
	const cm_block *r = root_block(hs);
	uint64_t rh = r->height;
	for (uint32_t i = 0; i < hs->cap; i++) {
		if (!hs->nodes[i].used || (int32_t)i == hs->root)
			continue;
		hs->chain[i] = !extends(hs, (int32_t)i, r->hash, rh);
	}
	for (uint32_t i = 0; i < hs->cap; i++) {
		if (hs->nodes[i].used && (int32_t)i != hs->root && hs->chain[i])
			node_remove(hs, (int32_t)i);
	}
	for (int i = 0; i < MAX_ORPHANS; i++) {
		if (hs->orphans[i].used && hs->orphans[i].b.height <= rh) {
			free((void *)hs->orphans[i].b.payload);
			memset(&hs->orphans[i], 0, sizeof(hs->orphans[i]));
		}
	}
}

/* ---- fetching missing blocks ---- */

static uint32_t pick_peer(lg_hs *hs, uint64_t peers, uint32_t attempt)
{
	peers &= ~((uint64_t)1 << hs->cfg.self);
	if (hs->cfg.n < 64)
		peers &= ((uint64_t)1 << hs->cfg.n) - 1;
	if (peers == 0) /* nobody known to have it: try everyone in turn */
		return (hs->cfg.self + 1 + attempt % (hs->cfg.n > 1 ? hs->cfg.n - 1 : 1)) % hs->cfg.n;
	uint32_t k = attempt % popcount64(peers);
	for (uint32_t i = 0;; i++) {
		if ((peers >> i & 1) && k-- == 0)
			return i;
	}
}

static void request(lg_hs *hs, wanted *w)
{
	uint32_t peer = pick_peer(hs, w->peers, w->attempts++);
	w->next_ms = hs->now + hs->cfg.base_timeout_ms;
	hs->st.blocks_requested++;
	hs->io.request_block(hs->io.ctx, w->hash, root_block(hs)->height, peer);
}

/* Asks for a block (view >= min_view) that the given peers should have. */
static void want_block(lg_hs *hs, const uint8_t *hash, uint64_t min_view, uint64_t peers)
{
	wanted *free_slot = NULL, *oldest = NULL;
	for (int i = 0; i < MAX_WANTED; i++) {
		wanted *w = &hs->want[i];
		if (!w->used) {
			free_slot = free_slot ? free_slot : w;
			continue;
		}
		if (hash_eq(w->hash, hash)) {
			w->peers |= peers;
			return;
		}
		if (!oldest || w->min_view < oldest->min_view)
			oldest = w;
	}
	wanted *w = free_slot;
	if (!w) {
		if (oldest->min_view >= min_view) {
			hs->st.dropped_full++;
			return;
		}
		w = oldest;
	}
	memset(w, 0, sizeof(*w));
	w->used = 1;
	memcpy(w->hash, hash, CM_HASH_BYTES);
	w->min_view = min_view;
	w->peers = peers;
	if (hs->io.random)
		w->attempts = (uint32_t)(hs->io.random(hs->io.ctx) % CM_CHAIN_MAX_REPLICAS);
	request(hs, w);
}

static int is_wanted(const lg_hs *hs, const uint8_t *hash)
{
	for (int i = 0; i < MAX_WANTED; i++) {
		if (hs->want[i].used && hash_eq(hs->want[i].hash, hash))
			return 1;
	}
	for (int i = 0; i < MAX_ORPHANS; i++) {
		if (hs->orphans[i].used && hash_eq(hs->orphans[i].b.parent, hash))
			return 1;
	}
	return hs->has_pending_qc && hash_eq(hs->pending_qc.block_hash, hash);
}

static void retry_wanted(lg_hs *hs)
{
	uint64_t rv = root_block(hs)->view;
	for (int i = 0; i < MAX_WANTED; i++) {
		wanted *w = &hs->want[i];
		if (!w->used)
			continue;
		if (node_find(hs, w->hash) >= 0 || w->min_view <= rv) {
			w->used = 0;
			continue;
		}
		if (hs->now >= w->next_ms)
			request(hs, w);
	}
}

/* ---- pacemaker ---- */

static void enter_view(lg_hs *hs, uint64_t view)
{
	if (view <= hs->cur_view)
		return;
	hs->cur_view = view;
	hs->deadline = hs->now + timeout_now(hs);
}

static void send_newview(lg_hs *hs, int to, uint64_t view)
{
	lg_hs_msg m;
	uint8_t digest[CM_HASH_BYTES];
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_NEWVIEW;
	m.u.newview.view = view;
	m.u.newview.high_qc = hs->high_qc;
	m.u.newview.sender = hs->cfg.self;
	lg_hs_newview_digest(digest, hs->cfg.chain, view, &hs->high_qc);
	hs->io.sign(hs->io.ctx, digest, m.u.newview.sig);
	hs->st.newviews_sent++;
	if (to == LG_HS_BROADCAST)
		hs->nv_resend_at = hs->now + hs->cfg.base_timeout_ms;
	hs->io.send(hs->io.ctx, to, &m);
}

/* The k-th highest NEW-VIEW view heard (k >= 1), counting this replica's. */
static uint64_t kth_newview(const lg_hs *hs, uint32_t k)
{
	uint64_t v[CM_CHAIN_MAX_REPLICAS];
	uint32_t n = hs->cfg.n;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t x = hs->nv_view[i];
		uint32_t j = i;
		for (; j > 0 && v[j - 1] < x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
	return v[k - 1];
}

/* View synchronization (sec. 6): join a view f+1 replicas asked for, enter
 * one n-f replicas asked for. */
static void pacemaker_check(lg_hs *hs)
{
	uint64_t join = kth_newview(hs, hs->cfg.f + 1);
	if (join > hs->own_nv && join > hs->cur_view) {
		hs->own_nv = join;
		hs->nv_view[hs->cfg.self] = join;
		send_newview(hs, LG_HS_BROADCAST, join);
	}
	uint64_t enter = kth_newview(hs, hs->quorum);
	if (enter > hs->cur_view)
		enter_view(hs, enter);
}

static void on_timeout(lg_hs *hs)
{
	/* Algorithm 5, onNextSyncView: tell the next leader (and, here, all) our highQC */
	hs->st.timeouts++;
	if (hs->consec < 32)
		hs->consec++;
	if (hs->own_nv <= hs->cur_view)
		hs->own_nv = hs->cur_view + 1;
	hs->nv_view[hs->cfg.self] = hs->own_nv;
	send_newview(hs, LG_HS_BROADCAST, hs->own_nv);
	hs->deadline = hs->now + timeout_now(hs);
	pacemaker_check(hs);
}

/* ---- QCs, locks and commits ---- */

/* 0 if qc is valid; cheap when the same (view, block) was verified before. */
static int qc_check(lg_hs *hs, const cm_qc *qc)
{
	if (qc->view > CM_CHAIN_MAX_VIEW)
		return CM_ERR_INVALID;
	if (qc->view == 0)
		return cm_qc_is_genesis(qc) ? CM_OK : CM_ERR_INVALID;
	int32_t idx = node_find(hs, qc->block_hash);
	if (idx >= 0 && hs->nodes[idx].b.view != qc->view)
		return CM_ERR_INVALID;
	if (idx >= 0 && hs->nodes[idx].certified)
		return CM_OK;
	if ((qc->view == hs->high_qc.view && hash_eq(qc->block_hash, hs->high_qc.block_hash)) ||
	    (qc->view == hs->locked_qc.view && hash_eq(qc->block_hash, hs->locked_qc.block_hash)) ||
	    (hs->has_pending_qc && qc->view == hs->pending_qc.view &&
	     hash_eq(qc->block_hash, hs->pending_qc.block_hash)))
		return CM_OK;
	int rc = cm_qc_verify(qc, hs->cfg.chain, hs->cfg.n, hs->cfg.f, hs->io.verify, hs->io.ctx);
	if (rc != CM_OK)
		return rc;
	if (idx >= 0)
		hs->nodes[idx].certified = 1;
	return CM_OK;
}

/* Decide phase (Algorithm 3, onCommit): hands the blocks from the committed
 * tip up to b0 to the app, lowest first; b0 is certified by qc0. */
static void commit_upto(lg_hs *hs, int32_t i0, const cm_qc *qc0)
{
	uint64_t rh = root_block(hs)->height;
	uint64_t top = hs->nodes[i0].b.height;
	if (top <= rh)
		return;
	uint32_t len = (uint32_t)(top - rh);
	int32_t idx = i0;
	for (uint32_t k = len; k-- > 0;) {
		if (idx < 0)
			return; /* cannot happen: blocks in the tree descend from the root */
		hs->chain[k] = idx;
		idx = node_find(hs, hs->nodes[idx].b.parent);
	}
	if (idx != hs->root)
		return;
	int committed = 0;
	for (uint32_t k = 0; k < len; k++) {
		const cm_qc *qc = k + 1 < len ? &hs->nodes[hs->chain[k + 1]].b.justify : qc0;
		int rc = hs->io.commit(hs->io.ctx, &hs->nodes[hs->chain[k]].b, qc);
		if (rc != CM_OK) {
			seterr(hs, "commit of block at height %llu failed: %s",
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
		prune(hs);
	}
}

/* Everything a QC teaches (Algorithm 3's three "start phase" steps, with b*
 * being whatever carried qc = QC(b'')); qc has been verified. */
static void process_qc(lg_hs *hs, const cm_qc *qc)
{
	int32_t i2 = node_find(hs, qc->block_hash);
	if (i2 < 0) {
		/* the block is missing: fetch it before relying on this QC */
		if (qc->view > hs->high_qc.view && qc->view > root_block(hs)->view &&
		    (!hs->has_pending_qc || qc->view > hs->pending_qc.view)) {
			hs->pending_qc = *qc;
			hs->has_pending_qc = 1;
			hs->pending_since = hs->now;
			want_block(hs, qc->block_hash, qc->view, qc->signers);
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
		int32_t i1 = i2 == hs->root ? -1 : node_find(hs, n2->b.parent);
		if (i1 >= 0 && hs->nodes[i1].b.view + 1 == n2->b.view) {
			int32_t i0 = i1 == hs->root ? -1 : node_find(hs, hs->nodes[i1].b.parent);
			if (i0 >= 0 && hs->nodes[i0].b.view + 1 == hs->nodes[i1].b.view) {
				cm_qc qc0 = hs->nodes[i1].b.justify;
				commit_upto(hs, i0, &qc0);
			}
		}
	}
	/* pacemaker: QC(v) ends view v everywhere */
	if (qc->view + 1 > hs->cur_view)
		enter_view(hs, qc->view + 1);
}

/* ---- blocks ---- */

/* Structural checks that need no state. */
static int block_check(const lg_hs *hs, const cm_block *b)
{
	if (b->height == 0 || b->view == 0 || b->view > CM_CHAIN_MAX_VIEW || b->proposer >= hs->cfg.n ||
	    b->proposer != leader_of(hs, b->view) || b->payload_len > hs->cfg.max_payload_bytes ||
	    (b->payload_len && !b->payload) || !hash_eq(b->parent, b->justify.block_hash) ||
	    b->justify.view >= b->view)
		return CM_ERR_INVALID;
	return CM_OK;
}

static uint32_t count_view(const lg_hs *hs, uint64_t view)
{
	uint32_t c = 0;
	for (uint32_t i = 0; i < hs->cap; i++)
		c += hs->nodes[i].used && hs->nodes[i].b.view == view;
	return c;
}

/* Makes room by dropping an uncertified leaf of a past view, the oldest. */
static int evict_one(lg_hs *hs)
{
	int32_t best = -1;
	for (uint32_t i = 0; i < hs->cap; i++) {
		hs_node *nd = &hs->nodes[i];
		if (!nd->used || (int32_t)i == hs->root || nd->certified || nd->b.view >= hs->cur_view)
			continue;
		int leaf = 1;
		for (uint32_t j = 0; j < hs->cap && leaf; j++)
			leaf = !(hs->nodes[j].used && hash_eq(hs->nodes[j].b.parent, nd->b.hash));
		if (leaf && (best < 0 || nd->b.view < hs->nodes[best].b.view))
			best = (int32_t)i;
	}
	if (best < 0)
		return -1;
	node_remove(hs, best);
	return 0;
}

static void orphan_add(lg_hs *hs, const cm_block *b, uint64_t peers)
{
	int slot = -1;
	for (int i = 0; i < MAX_ORPHANS; i++) {
		if (hs->orphans[i].used && hash_eq(hs->orphans[i].b.hash, b->hash))
			return;
		if (!hs->orphans[i].used && slot < 0)
			slot = i;
	}
	if (slot < 0) { /* evict the oldest */
		slot = 0;
		for (int i = 1; i < MAX_ORPHANS; i++)
			if (hs->orphan_seq[i] < hs->orphan_seq[slot])
				slot = i;
		free((void *)hs->orphans[slot].b.payload);
		hs->st.dropped_full++;
	}
	uint8_t *copy = NULL;
	if (b->payload_len && !(copy = malloc(b->payload_len))) {
		memset(&hs->orphans[slot], 0, sizeof(hs->orphans[slot]));
		return;
	}
	if (copy)
		memcpy(copy, b->payload, b->payload_len);
	hs->orphans[slot].b = *b;
	hs->orphans[slot].b.payload = copy;
	hs->orphans[slot].used = 1;
	hs->orphan_seq[slot] = ++hs->next_seq;
	want_block(hs, b->parent, b->justify.view, peers | b->justify.signers);
}

/* Adds a block whose hash was computed and structure checked: verifies its
 * justify QC, learns from it, and links it under its parent (or parks it as
 * an orphan and fetches the parent). *out is its node. */
static int accept_block(lg_hs *hs, const cm_block *b, uint32_t hint, int32_t *out)
{
	int32_t idx = node_find(hs, b->hash);
	if (idx >= 0) {
		*out = idx;
		return CM_OK;
	}
	if (b->height <= root_block(hs)->height) {
		hs->st.stale_msgs++;
		if (hs->has_pending_qc && hash_eq(hs->pending_qc.block_hash, b->hash))
			hs->has_pending_qc = 0;
		return CM_ERR_STATE;
	}
	int rc = qc_check(hs, &b->justify);
	if (rc != CM_OK) {
		hs->st.bad_sigs++;
		return rc;
	}
	process_qc(hs, &b->justify);
	if (b->height <= root_block(hs)->height) {
		hs->st.stale_msgs++;
		if (hs->has_pending_qc && hash_eq(hs->pending_qc.block_hash, b->hash))
			hs->has_pending_qc = 0;
		return CM_ERR_STATE;
	}
	int32_t pidx = node_find(hs, b->parent);
	if (pidx < 0 && b->justify.view <= root_block(hs)->view) {
		hs->st.stale_msgs++; /* the parent is not a descendant of the committed tip */
		if (hs->has_pending_qc && hash_eq(hs->pending_qc.block_hash, b->hash))
			hs->has_pending_qc = 0;
		return CM_ERR_STATE;
	}
	if (pidx < 0) {
		orphan_add(hs, b, hint < hs->cfg.n ? (uint64_t)1 << hint : 0);
		return CM_ERR_NOTFOUND;
	}
	const cm_block *p = &hs->nodes[pidx].b;
	if (b->height != p->height + 1 || b->view <= p->view || b->justify.view != p->view) {
		hs->st.bad_msgs++;
		return CM_ERR_INVALID;
	}
	uint32_t same_view = count_view(hs, b->view);
	if (same_view > 0)
		hs->st.equivocations++;
	if (same_view >= PER_VIEW_UNCERTIFIED && !is_wanted(hs, b->hash)) {
		hs->st.dropped_full++;
		return CM_ERR_TOOBIG;
	}
	if (hs->count >= hs->cap && evict_one(hs) != 0) {
		hs->st.dropped_full++;
		return CM_ERR_TOOBIG;
	}
	rc = hs->io.store_block(hs->io.ctx, b);
	if (rc != CM_OK) {
		seterr(hs, "storing block at height %llu failed: %s",
		       (unsigned long long)b->height, cm_strerror(rc));
		return CM_ERR_IO;
	}
	idx = node_insert(hs, b, 0);
	if (idx < 0) {
		seterr(hs, "out of memory for a block");
		return CM_ERR_NOMEM;
	}
	if (hs->has_pending_qc && hash_eq(hs->pending_qc.block_hash, b->hash)) {
		cm_qc qc = hs->pending_qc;
		hs->has_pending_qc = 0;
		process_qc(hs, &qc);
		idx = node_find(hs, b->hash);
		if (idx < 0)
			return CM_ERR_STATE;
	}
	*out = idx;
	return CM_OK;
}

/* Links parked blocks whose parents arrived. */
static void connect_orphans(lg_hs *hs)
{
	int progress = 1;
	while (progress) {
		progress = 0;
		for (int i = 0; i < MAX_ORPHANS; i++) {
			hs_node *o = &hs->orphans[i];
			if (!o->used || node_find(hs, o->b.parent) < 0)
				continue;
			cm_block b = o->b; /* takes over the payload */
			memset(o, 0, sizeof(*o));
			int32_t idx;
			accept_block(hs, &b, hs->cfg.n, &idx);
			free((void *)b.payload);
			progress = 1;
		}
	}
}

/* ---- voting and proposing ---- */

static void add_vote(lg_hs *hs, uint64_t view, const uint8_t *hash, uint32_t voter, const uint8_t *sig);

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
			add_vote(hs, view, hash, hs->cfg.self, sig);
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
	int32_t li = node_find(hs, hs->locked_qc.block_hash);
	return li >= 0 && extends(hs, idx, hs->locked_qc.block_hash, hs->nodes[li].b.height);
}

/* Votes for the block at idx if the rules allow; own is set for the leader's
 * own proposal, whose vote leaves inside the PROPOSAL message. */
static int try_vote(lg_hs *hs, int32_t idx, int own)
{
	const cm_block *b = &hs->nodes[idx].b;
	/* once per view, only in the current view, never below a NEW-VIEW we sent */
	if (b->view != hs->cur_view || b->view <= hs->last_voted_view || b->view < hs->own_nv)
		return CM_ERR_STATE;
	if (!safe_node(hs, idx))
		return CM_ERR_STATE;
	int32_t pidx = node_find(hs, b->parent);
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
		seterr(hs, "persisting the safety state for view %llu failed: %s; not voting",
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
		add_vote(hs, b->view, b->hash, hs->cfg.self, sig);
	} else {
		send_vote(hs, b->view, b->hash, sig);
	}
	return CM_OK;
}

/* Algorithm 3 "as a leader" / Algorithm 5 onBeat: propose once per view,
 * after QC(v-1) or n-f NEW-VIEWs, extending the highest QC. */
static void try_propose(lg_hs *hs)
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
	int32_t pidx = node_find(hs, hs->high_qc.block_hash);
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
		seterr(hs, "making the payload for view %llu failed: %s", (unsigned long long)v,
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
	if (accept_block(hs, &b, hs->cfg.self, &idx) != CM_OK)
		return;
	try_vote(hs, idx, 1);
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
static void drive(lg_hs *hs)
{
	connect_orphans(hs);
	for (int i = 0; i < MAX_PENDING; i++) {
		pending *p = &hs->pend[i];
		if (!p->view)
			continue;
		if (p->view < hs->cur_view) {
			p->view = 0;
		} else if (p->view == hs->cur_view) {
			int32_t idx = node_find(hs, p->hash);
			if (idx >= 0) {
				p->view = 0;
				try_vote(hs, idx, 0);
			}
		}
	}
	try_propose(hs);
	uint32_t orphans = 0;
	for (int i = 0; i < MAX_ORPHANS; i++)
		orphans += hs->orphans[i].used;
	hs->st.orphans = orphans;
	hs->st.blocks_in_memory = hs->count;
}

/* ---- votes (Algorithm 3 "as next leader", Algorithm 4 onReceiveVote) ---- */

static int is_collector(const lg_hs *hs, uint64_t view)
{
	return leader_of(hs, view) == hs->cfg.self || leader_of(hs, view + 1) == hs->cfg.self;
}

static void add_vote(lg_hs *hs, uint64_t view, const uint8_t *hash, uint32_t voter, const uint8_t *sig)
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
	int32_t idx = node_find(hs, hash);
	if (idx >= 0 && hs->nodes[idx].b.view != view)
		return; /* votes of a view for a block of another one: not a QC */
	process_qc(hs, &qc);
}

static int on_vote(lg_hs *hs, const lg_hs_vote *v)
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
	add_vote(hs, v->view, v->block_hash, v->voter, v->sig);
	return CM_OK;
}

/* ---- proposals (Algorithm 3 "as a replica") ---- */

static int on_proposal(lg_hs *hs, uint32_t from, const lg_hs_proposal *p)
{
	uint8_t digest[CM_HASH_BYTES];
	cm_block b = p->block;
	cm_block_hash(&b);
	if (block_check(hs, &b) != CM_OK) {
		hs->st.bad_msgs++;
		return CM_ERR_INVALID;
	}
	cm_vote_digest(digest, hs->cfg.chain, b.view, b.hash);
	if (hs->io.verify(hs->io.ctx, b.proposer, digest, p->sig) != 0) {
		hs->st.bad_sigs++;
		return CM_ERR_VERIFY;
	}
	int32_t idx = node_find(hs, b.hash);
	if (idx < 0) {
		int rc = qc_check(hs, &b.justify);
		if (rc != CM_OK) {
			hs->st.bad_sigs++;
			return rc;
		}
		process_qc(hs, &b.justify); /* may move us to b.view */
		if (b.view > hs->cur_view + hs->cfg.max_future_views) {
			hs->st.future_msgs++;
			return CM_ERR_RANGE;
		}
		rc = accept_block(hs, &b, from, &idx);
		if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
			return rc;
	}
	/* the proposer's signature is its vote */
	if (is_collector(hs, b.view))
		add_vote(hs, b.view, b.hash, b.proposer, p->sig);
	if (b.view > hs->cur_view || idx < 0) {
		if (b.view >= hs->cur_view && b.view > hs->last_voted_view)
			pend_add(hs, b.view, b.hash);
		return CM_OK;
	}
	try_vote(hs, idx, 0);
	return CM_OK;
}

/* ---- NEW-VIEW (Algorithm 5 onReceiveNewView) ---- */

static int on_newview(lg_hs *hs, const lg_hs_newview *nv)
{
	uint8_t digest[CM_HASH_BYTES];
	if (nv->sender >= hs->cfg.n || nv->view == 0 || nv->view > CM_CHAIN_MAX_VIEW ||
	    nv->high_qc.view >= nv->view) {
		hs->st.bad_msgs++;
		return CM_ERR_INVALID;
	}
	/* NEW-VIEW(w) comes from a view below w: if w <= ours, the sender lags */
	int lagging = nv->view <= hs->cur_view && hs->now >= hs->nv_help_at[nv->sender] &&
		      nv->sender != hs->cfg.self;
	if (!lagging && nv->view <= hs->nv_view[nv->sender] && nv->high_qc.view <= hs->high_qc.view) {
		hs->st.stale_msgs++;
		return CM_ERR_STATE;
	}
	lg_hs_newview_digest(digest, hs->cfg.chain, nv->view, &nv->high_qc);
	if (hs->io.verify(hs->io.ctx, nv->sender, digest, nv->sig) != 0) {
		hs->st.bad_sigs++;
		return CM_ERR_VERIFY;
	}
	if (lagging) {
		/* the sender is behind (it missed a QC, or messages): tell it where
		 * we are, at most once per base timeout; we vote in no view below
		 * ours anyway */
		hs->nv_help_at[nv->sender] = hs->now + hs->cfg.base_timeout_ms;
		if (hs->own_nv < hs->cur_view) {
			hs->own_nv = hs->cur_view;
			hs->nv_view[hs->cfg.self] = hs->cur_view;
		}
		send_newview(hs, (int)nv->sender, hs->cur_view);
	}
	int rc = qc_check(hs, &nv->high_qc);
	if (rc != CM_OK) {
		hs->st.bad_sigs++;
		return rc;
	}
	if (nv->view > hs->nv_view[nv->sender])
		hs->nv_view[nv->sender] = nv->view;
	process_qc(hs, &nv->high_qc);
	pacemaker_check(hs);
	return CM_OK;
}

/* ---- entry points ---- */

int lg_hs_on_message(lg_hs *hs, uint32_t from, const lg_hs_msg *msg)
{
	if (!hs || !msg)
		return CM_ERR_INVALID;
	if (!hs->started)
		return CM_ERR_STATE;
	now_of(hs);
	hs->st.msgs_in++;
	int rc;
	switch (msg->type) {
	case LG_HS_MSG_PROPOSAL: rc = on_proposal(hs, from, &msg->u.proposal); break;
	case LG_HS_MSG_VOTE: rc = on_vote(hs, &msg->u.vote); break;
	case LG_HS_MSG_NEWVIEW: rc = on_newview(hs, &msg->u.newview); break;
	default:
		hs->st.bad_msgs++;
		rc = CM_ERR_INVALID;
	}
	drive(hs);
	return rc;
}

int lg_hs_on_message_bytes(lg_hs *hs, uint32_t from, const uint8_t *buf, size_t len)
{
	lg_hs_msg m;
	int rc = lg_hs_msg_decode(buf, len, &m);
	if (rc == CM_OK) {
		rc = lg_hs_on_message(hs, from, &m);
	} else if (hs) {
		hs->st.msgs_in++;
		hs->st.bad_msgs++;
	}
	return rc;
}

int lg_hs_on_block(lg_hs *hs, const cm_block *blk)
{
	if (!hs || !blk)
		return CM_ERR_INVALID;
	if (!hs->started)
		return CM_ERR_STATE;
	now_of(hs);
	hs->st.msgs_in++;
	cm_block b = *blk;
	cm_block_hash(&b);
	int rc = block_check(hs, &b);
	if (rc != CM_OK) {
		hs->st.bad_msgs++;
	} else {
		int32_t idx;
		rc = accept_block(hs, &b, hs->cfg.n, &idx);
		if (rc == CM_ERR_NOTFOUND)
			rc = CM_OK; /* parked until its parent comes */
	}
	drive(hs);
	return rc;
}

void lg_hs_tick(lg_hs *hs, uint64_t now_ms)
{
	if (!hs || !hs->started)
		return;
	if (now_ms > hs->now)
		hs->now = now_ms;
	if (hs->commit_retry) {
		int32_t i0 = node_find(hs, hs->commit_target);
		if (i0 >= 0) {
			cm_qc qc0 = hs->commit_qc;
			commit_upto(hs, i0, &qc0);
		} else {
			hs->commit_retry = 0;
		}
	}
	if (hs->now >= hs->deadline) {
		on_timeout(hs);
	} else if (hs->own_nv > hs->cur_view && hs->now >= hs->nv_resend_at) {
		/* still short of n-f NEW-VIEWs: ours may have been lost */
		send_newview(hs, LG_HS_BROADCAST, hs->own_nv);
	}
	retry_wanted(hs);
	drive(hs);
}

/* ---- life cycle ---- */

static int check_config(const lg_hs_config *cfg, const lg_hs_io *io)
{
	if (!cfg || !io || cfg->n == 0 || cfg->n > CM_CHAIN_MAX_REPLICAS || cfg->n < 3 * cfg->f + 1 ||
	    cfg->self >= cfg->n || cfg->base_timeout_ms == 0 || cfg->max_timeout_ms < cfg->base_timeout_ms ||
	    cfg->max_payload_bytes > CM_CHAIN_PAYLOAD_LIMIT || cfg->max_blocks > (1u << 20))
		return CM_ERR_INVALID;
	if (!io->send || !io->persist_safety || !io->store_block || !io->commit || !io->make_payload ||
	    !io->validate_payload || !io->sign || !io->verify || !io->now_ms || !io->request_block)
		return CM_ERR_INVALID;
	return CM_OK;
}

static lg_hs *alloc_hs(const lg_hs_config *cfg, const lg_hs_io *io)
{
	lg_hs *hs = calloc(1, sizeof(*hs));
	if (!hs)
		return NULL;
	hs->cfg = *cfg;
	hs->io = *io;
	if (!hs->cfg.max_blocks)
		hs->cfg.max_blocks = DEFAULT_MAX_BLOCKS;
	if (hs->cfg.max_blocks < 8)
		hs->cfg.max_blocks = 8;
	if (!hs->cfg.max_future_views)
		hs->cfg.max_future_views = DEFAULT_MAX_FUTURE;
	hs->quorum = cfg->n - cfg->f;
	hs->cap = hs->cfg.max_blocks;
	uint32_t icap = 16;
	while (icap < 2 * hs->cap)
		icap <<= 1;
	hs->index_mask = icap - 1;
	hs->nodes = calloc(hs->cap, sizeof(*hs->nodes));
	hs->chain = calloc(hs->cap, sizeof(*hs->chain));
	hs->index = malloc(icap * sizeof(*hs->index));
	hs->slots = calloc(VOTE_SLOTS, sizeof(*hs->slots));
	hs->payload_buf = malloc(cfg->max_payload_bytes ? cfg->max_payload_bytes : 1);
	if (!hs->nodes || !hs->chain || !hs->index || !hs->slots || !hs->payload_buf) {
		lg_hs_destroy(hs);
		return NULL;
	}
	for (uint32_t i = 0; i < icap; i++)
		hs->index[i] = -1;
	cm_block g;
	cm_block_genesis(&g);
	hs->root = node_insert(hs, &g, 1);
	cm_qc_genesis(&hs->high_qc);
	hs->locked_qc = hs->high_qc;
	hs->cur_view = 1;
	return hs;
}

int lg_hs_create(const lg_hs_config *cfg, const lg_hs_io *io, lg_hs **out)
{
	int rc = check_config(cfg, io);
	if (rc != CM_OK)
		return rc;
	lg_hs *hs = alloc_hs(cfg, io);
	if (!hs)
		return CM_ERR_NOMEM;
	*out = hs;
	return CM_OK;
}

static int cmp_height(const void *a, const void *b)
{
	const cm_block *x = *(const cm_block *const *)a, *y = *(const cm_block *const *)b;
	return x->height < y->height ? -1 : x->height > y->height;
}

int lg_hs_restore(const lg_hs_config *cfg, const lg_hs_io *io, const lg_hs_safety *st,
		  const cm_block *committed, const cm_block *const *blocks,
		  size_t nblocks, lg_hs **out)
{
	int rc = check_config(cfg, io);
	if (rc != CM_OK)
		return rc;
	if (nblocks && !blocks)
		return CM_ERR_INVALID;
	lg_hs *hs = alloc_hs(cfg, io);
	if (!hs)
		return CM_ERR_NOMEM;
	if (committed && committed->height > 0) {
		cm_block c = *committed;
		cm_block_hash(&c);
		if (block_check(hs, &c) != CM_OK) {
			lg_hs_destroy(hs);
			return CM_ERR_INVALID;
		}
		node_remove(hs, hs->root);
		hs->root = node_insert(hs, &c, 1);
		if (hs->root < 0) {
			lg_hs_destroy(hs);
			return CM_ERR_NOMEM;
		}
	}
	if (st) {
		/* our own disk, but a torn or foreign file must not become a lock */
		if (cm_qc_verify(&st->locked_qc, cfg->chain, cfg->n, cfg->f, io->verify, io->ctx) != CM_OK ||
		    cm_qc_verify(&st->high_qc, cfg->chain, cfg->n, cfg->f, io->verify, io->ctx) != CM_OK) {
			lg_hs_destroy(hs);
			return CM_ERR_INVALID;
		}
		hs->last_voted_view = st->last_voted_view;
		if (st->locked_qc.view > hs->locked_qc.view)
			hs->locked_qc = st->locked_qc;
		if (st->high_qc.view > hs->high_qc.view) {
			hs->pending_qc = st->high_qc; /* processed once its block is linked */
			hs->has_pending_qc = 1;
		}
	}
	if (nblocks) {
		const cm_block **sorted = malloc(nblocks * sizeof(*sorted));
		if (!sorted) {
			lg_hs_destroy(hs);
			return CM_ERR_NOMEM;
		}
		memcpy(sorted, blocks, nblocks * sizeof(*sorted));
		qsort(sorted, nblocks, sizeof(*sorted), cmp_height);
		for (size_t i = 0; i < nblocks; i++) {
			cm_block b = *sorted[i];
			cm_block_hash(&b);
			if (b.height <= root_block(hs)->height || block_check(hs, &b) != CM_OK ||
			    node_find(hs, b.hash) >= 0)
				continue;
			int32_t p = node_find(hs, b.parent);
			if (p < 0 || b.height != hs->nodes[p].b.height + 1 || b.view <= hs->nodes[p].b.view ||
			    b.justify.view != hs->nodes[p].b.view)
				continue;
			if (hs->count >= hs->cap || node_insert(hs, &b, 0) < 0)
				break;
			hs->nodes[p].certified = 1; /* verified when it was first stored */
		}
		free(sorted);
	}
	hs->cur_view = hs->high_qc.view + 1;
	if (hs->last_voted_view > hs->cur_view)
		hs->cur_view = hs->last_voted_view;
	*out = hs;
	return CM_OK;
}

int lg_hs_start(lg_hs *hs)
{
	if (!hs)
		return CM_ERR_INVALID;
	if (hs->started)
		return CM_ERR_STATE;
	hs->started = 1;
	now_of(hs);
	/* relearn from the restored blocks, lowest first: high QC, lock, commits
	 * the app had not applied before the crash */
	uint32_t nb = 0;
	uint8_t (*order)[CM_HASH_BYTES] = malloc((size_t)hs->cap * CM_HASH_BYTES);
	if (!order)
		return CM_ERR_NOMEM;
	for (uint32_t i = 0; i < hs->cap; i++) {
		if (hs->nodes[i].used && (int32_t)i != hs->root)
			hs->chain[nb++] = (int32_t)i;
	}
	for (uint32_t i = 1; i < nb; i++) { /* insertion sort by height */
		int32_t x = hs->chain[i];
		uint32_t j = i;
		for (; j > 0 && hs->nodes[hs->chain[j - 1]].b.height > hs->nodes[x].b.height; j--)
			hs->chain[j] = hs->chain[j - 1];
		hs->chain[j] = x;
	}
	for (uint32_t i = 0; i < nb; i++)
		memcpy(order[i], hs->nodes[hs->chain[i]].b.hash, CM_HASH_BYTES);
	for (uint32_t i = 0; i < nb; i++) {
		int32_t idx = node_find(hs, order[i]);
		if (idx < 0)
			continue; /* pruned by a commit on the way */
		cm_qc qc = hs->nodes[idx].b.justify;
		process_qc(hs, &qc);
	}
	free(order);
	if (hs->has_pending_qc) {
		cm_qc qc = hs->pending_qc;
		hs->has_pending_qc = 0;
		process_qc(hs, &qc);
	}
	hs->deadline = hs->now + timeout_now(hs);
	drive(hs);
	return CM_OK;
}

void lg_hs_destroy(lg_hs *hs)
{
	if (!hs)
		return;
	if (hs->nodes) {
		for (uint32_t i = 0; i < hs->cap; i++)
			free((void *)hs->nodes[i].b.payload);
	}
	for (int i = 0; i < MAX_ORPHANS; i++)
		free((void *)hs->orphans[i].b.payload);
	free(hs->nodes);
	free(hs->chain);
	free(hs->index);
	free(hs->slots);
	free(hs->payload_buf);
	free(hs);
}

/* ---- status ---- */

uint64_t lg_hs_view(const lg_hs *hs) { return hs->cur_view; }
uint64_t lg_hs_last_voted_view(const lg_hs *hs) { return hs->last_voted_view; }
const cm_qc *lg_hs_high_qc(const lg_hs *hs) { return &hs->high_qc; }
const cm_qc *lg_hs_locked_qc(const lg_hs *hs) { return &hs->locked_qc; }
uint32_t lg_hs_timeout_ms(const lg_hs *hs) { return timeout_now(hs); }
uint32_t lg_hs_leader(const lg_hs *hs, uint64_t view) { return leader_of(hs, view); }
const char *lg_hs_errmsg(const lg_hs *hs) { return hs->errmsg; }

uint64_t lg_hs_committed(const lg_hs *hs, uint8_t hash[CM_HASH_BYTES])
{
	const cm_block *r = root_block(hs);
	if (hash)
		memcpy(hash, r->hash, CM_HASH_BYTES);
	return r->height;
}

void lg_hs_get_stats(const lg_hs *hs, lg_hs_stats *out)
{
	*out = hs->st;
	out->blocks_in_memory = hs->count;
}
