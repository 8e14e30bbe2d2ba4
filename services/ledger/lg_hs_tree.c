/* The consensus core's block tree: the committed tip and its uncommitted
 * descendants in memory (indexed by hash), pruning after commits, blocks
 * waiting for their parent (orphans), fetching missing blocks from peers, and
 * the admission of a block into the tree (accept_block). */
#include "lg_hs_int.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>


static uint32_t slot_of(const lg_hs *hs, const uint8_t *hash)
{
	return (uint32_t)cm_get_be64(hash) & hs->index_mask;
}

int32_t hs_node_find(const lg_hs *hs, const uint8_t *hash)
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
int32_t hs_node_insert(lg_hs *hs, const cm_block *b, int certified)
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

void hs_node_remove(lg_hs *hs, int32_t idx)
{
	hs_node *nd = &hs->nodes[idx];
	index_remove(hs, idx);
	free((void *)nd->b.payload);
	memset(nd, 0, sizeof(*nd));
	hs->count--;
}

const cm_block *hs_root_block(const lg_hs *hs)
{
	return &hs->nodes[hs->root].b;
}

/* 1 if the block at idx is, or descends from, the block (hash, height). */
int hs_extends(const lg_hs *hs, int32_t idx, const uint8_t *hash, uint64_t height)
{
	while (idx >= 0 && hs->nodes[idx].b.height > height)
		idx = hs_node_find(hs, hs->nodes[idx].b.parent);
	return idx >= 0 && hs->nodes[idx].b.height == height && hash_eq(hs->nodes[idx].b.hash, hash);
}

/* Drops every block that is not the committed tip or a descendant of it. */
void hs_prune(lg_hs *hs)
{
	const cm_block *r = hs_root_block(hs);
	uint64_t rh = r->height;
	for (uint32_t i = 0; i < hs->cap; i++) {
		if (!hs->nodes[i].used || (int32_t)i == hs->root)
			continue;
		hs->chain[i] = !hs_extends(hs, (int32_t)i, r->hash, rh);
	}
	for (uint32_t i = 0; i < hs->cap; i++) {
		if (hs->nodes[i].used && (int32_t)i != hs->root && hs->chain[i])
			hs_node_remove(hs, (int32_t)i);
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
	hs->io.request_block(hs->io.ctx, w->hash, hs_root_block(hs)->height, peer);
}

/* Asks for a block (view >= min_view) that the given peers should have. */
void hs_want_block(lg_hs *hs, const uint8_t *hash, uint64_t min_view, uint64_t peers)
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

int hs_is_wanted(const lg_hs *hs, const uint8_t *hash)
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

void hs_retry_wanted(lg_hs *hs)
{
	uint64_t rv = hs_root_block(hs)->view;
	for (int i = 0; i < MAX_WANTED; i++) {
		wanted *w = &hs->want[i];
		if (!w->used)
			continue;
		if (hs_node_find(hs, w->hash) >= 0 || w->min_view <= rv) {
			w->used = 0;
			continue;
		}
		if (hs->now >= w->next_ms)
			request(hs, w);
	}
}

/* ---- blocks ---- */

/* Structural checks that need no state. */
int hs_block_check(const lg_hs *hs, const cm_block *b)
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

/* Marks the spine: the committed tip and the branches up to the locked
 * block and to the high QC's block. Returns how many blocks it holds. */
static uint32_t mark_spine(lg_hs *hs)
{
	for (uint32_t i = 0; i < hs->cap; i++)
		hs->nodes[i].spine = 0;
	uint32_t n = 0;
	const uint8_t *tips[2] = {hs->locked_qc.block_hash, hs->high_qc.block_hash};
	for (int t = 0; t < 2; t++) {
		int32_t idx = hs_node_find(hs, tips[t]);
		for (uint32_t steps = 0; idx >= 0 && !hs->nodes[idx].spine && steps < hs->cap; steps++) {
			hs->nodes[idx].spine = 1;
			n++;
			if (idx == hs->root)
				break;
			idx = hs_node_find(hs, hs->nodes[idx].b.parent);
		}
	}
	if (!hs->nodes[hs->root].spine) {
		hs->nodes[hs->root].spine = 1;
		n++;
	}
	return n;
}

/* Doubles the node array (the spine outgrew it); 0 on success. */
int hs_tree_grow(lg_hs *hs)
{
	if (hs->cap >= MAX_TREE_NODES)
		return -1;
	uint32_t cap = 2 * hs->cap, icap = 2 * (hs->index_mask + 1);
	hs_node *nodes = realloc(hs->nodes, (size_t)cap * sizeof(*nodes));
	if (!nodes)
		return -1;
	hs->nodes = nodes;
	memset(nodes + hs->cap, 0, (size_t)(cap - hs->cap) * sizeof(*nodes));
	int32_t *chain = realloc(hs->chain, (size_t)cap * sizeof(*chain));
	int32_t *index = malloc((size_t)icap * sizeof(*index));
	if (!chain || !index) {
		free(index);
		if (chain)
			hs->chain = chain;
		return -1;
	}
	hs->chain = chain;
	hs->cap = cap;
	hs->st.tree_grown++;
	free(hs->index);
	hs->index = index;
	hs->index_mask = icap - 1;
	for (uint32_t i = 0; i < icap; i++)
		index[i] = -1;
	for (uint32_t i = 0; i < cap; i++) {
		if (!nodes[i].used)
			continue;
		uint32_t s = slot_of(hs, nodes[i].b.hash);
		while (index[s] >= 0)
			s = (s + 1) & hs->index_mask;
		index[s] = (int32_t)i;
	}
	return 0;
}

/* 1 if the block at idx (or, idx < 0, nothing) is on a branch a replica
 * may still vote on (safeNode): up through blocks off the spine (at most
 * max_blocks of them) to the first spine block X; X extends the locked
 * block, or X's view is above the lock's (X's children carry a QC newer than
 * the lock). Needs mark_spine. */
static int on_live_branch(const lg_hs *hs, int32_t idx)
{
	for (uint32_t steps = 0; idx >= 0 && !hs->nodes[idx].spine && steps <= hs->cfg.max_blocks; steps++)
		idx = hs_node_find(hs, hs->nodes[idx].b.parent);
	if (idx < 0 || !hs->nodes[idx].spine)
		return 0;
	if (hs->nodes[idx].b.view > hs->locked_qc.view)
		return 1;
	int32_t li = hs_node_find(hs, hs->locked_qc.block_hash);
	return li >= 0 && hs_extends(hs, idx, hs->locked_qc.block_hash, hs->nodes[li].b.height);
}

/* Which of two blocks off the spine is kept: one on a live branch (a replica
 * can still vote for it or its children) over one beside the locked branch,
 * then the higher view. <0 if a goes first, >0 if b does. */
static int evict_order(int a_lock, uint64_t a_view, int b_lock, uint64_t b_view)
{
	if (a_lock != b_lock)
		return a_lock - b_lock;
	return a_view < b_view ? -1 : a_view > b_view;
}

/* Makes room for b. The spine is always kept (growing the array if it must):
 * it is all that safety (the lock) and the next commits need. Off the spine
 * at most max_blocks blocks stay; when full, a leaf goes: first blocks
 * beside the locked branch that no replica may vote on (they can be committed
 * only after a newer QC on their branch, which fetches them again: they are
 * on disk), then the lowest view; never b's parent, so that every block in
 * the tree keeps its ancestry down to the committed tip. A block being
 * fetched always gets in; another one only in place of a leaf that goes
 * before it. 0 if b may be inserted. */
static int make_room(lg_hs *hs, const cm_block *b)
{
	uint32_t spine = mark_spine(hs);
	uint32_t loose = hs->count - spine;
	if (loose < hs->cfg.max_blocks && hs->count < hs->cap)
		return 0;
	if (loose > 0) {
		/* leaves: blocks no other block names as parent */
		for (uint32_t i = 0; i < hs->cap; i++)
			hs->nodes[i].parent_of = 0;
		for (uint32_t i = 0; i < hs->cap; i++) {
			if (!hs->nodes[i].used || (int32_t)i == hs->root)
				continue;
			int32_t p = hs_node_find(hs, hs->nodes[i].b.parent);
			if (p >= 0)
				hs->nodes[p].parent_of = 1;
		}
		int32_t pidx = hs_node_find(hs, b->parent);
		if (pidx >= 0)
			hs->nodes[pidx].parent_of = 1; /* b's parent stays: b links under it */
		int32_t best = -1;
		int best_lock = 0;
		for (uint32_t i = 0; i < hs->cap; i++) {
			const hs_node *nd = &hs->nodes[i];
			if (!nd->used || nd->spine || nd->parent_of)
				continue;
			int lk = on_live_branch(hs, (int32_t)i);
			int o = best < 0 ? -1 : evict_order(lk, nd->b.view, best_lock, hs->nodes[best].b.view);
			if (o < 0 || (o == 0 && !nd->certified)) {
				best = (int32_t)i;
				best_lock = lk;
			}
		}
		int b_lock = on_live_branch(hs, pidx);
		if (best >= 0 && (hs_is_wanted(hs, b->hash) ||
				  evict_order(best_lock, hs->nodes[best].b.view, b_lock, b->view) < 0)) {
			hs_node_remove(hs, best);
			hs->st.evicted++;
			return 0;
		}
		if (loose >= hs->cfg.max_blocks)
			return -1;
	}
	return hs_tree_grow(hs);
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
	hs_want_block(hs, b->parent, b->justify.view, peers | b->justify.signers);
}

/* Adds a block whose hash was computed and structure checked: verifies its
 * justify QC, learns from it, and links it under its parent (or parks it as
 * an orphan and fetches the parent). *out is its node. */
int hs_accept_block(lg_hs *hs, const cm_block *b, uint32_t hint, int32_t *out)
{
	int32_t idx = hs_node_find(hs, b->hash);
	if (idx >= 0) {
		*out = idx;
		return CM_OK;
	}
	if (b->height <= hs_root_block(hs)->height) {
		hs->st.stale_msgs++;
		if (hs->has_pending_qc && hash_eq(hs->pending_qc.block_hash, b->hash))
			hs->has_pending_qc = 0;
		return CM_ERR_STATE;
	}
	int rc = hs_qc_check(hs, &b->justify);
	if (rc != CM_OK) {
		hs->st.bad_sigs++;
		return rc;
	}
	hs_process_qc(hs, &b->justify);
	if (b->height <= hs_root_block(hs)->height) {
		hs->st.stale_msgs++;
		if (hs->has_pending_qc && hash_eq(hs->pending_qc.block_hash, b->hash))
			hs->has_pending_qc = 0;
		return CM_ERR_STATE;
	}
	int32_t pidx = hs_node_find(hs, b->parent);
	if (pidx < 0 && b->justify.view <= hs_root_block(hs)->view) {
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
	if (same_view >= PER_VIEW_UNCERTIFIED && !hs_is_wanted(hs, b->hash)) {
		hs->st.dropped_full++;
		return CM_ERR_TOOBIG;
	}
	if (make_room(hs, b) != 0) {
		hs->st.dropped_full++;
		return CM_ERR_TOOBIG;
	}
	rc = hs->io.store_block(hs->io.ctx, b);
	if (rc != CM_OK) {
		hs_seterr(hs, "storing block at height %llu failed: %s",
		       (unsigned long long)b->height, cm_strerror(rc));
		return CM_ERR_IO;
	}
	idx = hs_node_insert(hs, b, 0);
	if (idx < 0) {
		hs_seterr(hs, "out of memory for a block");
		return CM_ERR_NOMEM;
	}
	if (hs->has_pending_qc && hash_eq(hs->pending_qc.block_hash, b->hash)) {
		cm_qc qc = hs->pending_qc;
		hs->has_pending_qc = 0;
		hs_process_qc(hs, &qc);
		idx = hs_node_find(hs, b->hash);
		if (idx < 0)
			return CM_ERR_STATE;
	}
	*out = idx;
	return CM_OK;
}

/* Links parked blocks whose parents arrived. */
void hs_connect_orphans(lg_hs *hs)
{
	int progress = 1;
	while (progress) {
		progress = 0;
		for (int i = 0; i < MAX_ORPHANS; i++) {
			hs_node *o = &hs->orphans[i];
			if (!o->used || hs_node_find(hs, o->b.parent) < 0)
				continue;
			cm_block b = o->b; /* takes over the payload */
			memset(o, 0, sizeof(*o));
			int32_t idx;
			hs_accept_block(hs, &b, hs->cfg.n, &idx);
			free((void *)b.payload);
			progress = 1;
		}
	}
}
