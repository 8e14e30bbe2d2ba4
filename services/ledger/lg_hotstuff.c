/* Chained HotStuff, the ledger's consensus core (Yin et al., arXiv
 * 1803.05069): one replica's life cycle (create, restore, start, destroy),
 * its entry points (messages, fetched blocks, ticks) and status. The rules are
 * in lg_hs_rules.c, the pacemaker in lg_hs_pacemaker.c, the block tree in
 * lg_hs_tree.c, the encodings in lg_hs_codec.c. */
#include "lg_hs_int.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

void hs_seterr(lg_hs *hs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hs_seterr(lg_hs *hs, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(hs->errmsg, sizeof(hs->errmsg), fmt, ap);
	va_end(ap);
}

uint64_t hs_now_of(lg_hs *hs)
{
	uint64_t t = hs->io.now_ms(hs->io.ctx);
	if (t > hs->now)
		hs->now = t;
	return hs->now;
}

void hs_drive(lg_hs *hs)
{
	hs_connect_orphans(hs);
	for (int i = 0; i < MAX_PENDING; i++) {
		pending *p = &hs->pend[i];
		if (!p->view)
			continue;
		if (p->view < hs->cur_view) {
			p->view = 0;
		} else if (p->view == hs->cur_view) {
			int32_t idx = hs_node_find(hs, p->hash);
			if (idx >= 0) {
				p->view = 0;
				hs_try_vote(hs, idx, 0);
			}
		}
	}
	hs_try_propose(hs);
	uint32_t orphans = 0;
	for (int i = 0; i < MAX_ORPHANS; i++)
		orphans += hs->orphans[i].used;
	hs->st.orphans = orphans;
	hs->st.blocks_in_memory = hs->count;
}

/* ---- entry points ---- */

int lg_hs_on_message(lg_hs *hs, uint32_t from, const lg_hs_msg *msg)
{
	if (!hs || !msg)
		return CM_ERR_INVALID;
	if (!hs->started)
		return CM_ERR_STATE;
	hs_now_of(hs);
	hs->st.msgs_in++;
	int rc;
	switch (msg->type) {
	case LG_HS_MSG_PROPOSAL: rc = hs_on_proposal(hs, from, &msg->u.proposal); break;
	case LG_HS_MSG_VOTE: rc = hs_on_vote(hs, &msg->u.vote); break;
	case LG_HS_MSG_NEWVIEW: rc = hs_on_newview(hs, &msg->u.newview); break;
	default:
		hs->st.bad_msgs++;
		rc = CM_ERR_INVALID;
	}
	hs_drive(hs);
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
	hs_now_of(hs);
	hs->st.msgs_in++;
	cm_block b = *blk;
	cm_block_hash(&b);
	int rc = hs_block_check(hs, &b);
	if (rc != CM_OK) {
		hs->st.bad_msgs++;
	} else {
		int32_t idx;
		rc = hs_accept_block(hs, &b, hs->cfg.n, &idx);
		if (rc == CM_ERR_NOTFOUND)
			rc = CM_OK; /* parked until its parent comes */
	}
	hs_drive(hs);
	return rc;
}

void lg_hs_tick(lg_hs *hs, uint64_t now_ms)
{
	if (!hs || !hs->started)
		return;
	if (now_ms > hs->now)
		hs->now = now_ms;
	if (hs->commit_retry) {
		int32_t i0 = hs_node_find(hs, hs->commit_target);
		if (i0 >= 0) {
			cm_qc qc0 = hs->commit_qc;
			hs_commit_upto(hs, i0, &qc0);
		} else {
			hs->commit_retry = 0;
		}
	}
	if (hs->now >= hs->deadline) {
		hs_on_timeout(hs);
	} else if (hs->own_nv > hs->cur_view && hs->now >= hs->nv_resend_at) {
		/* still short of n-f NEW-VIEWs: ours may have been lost */
		hs_send_newview(hs, LG_HS_BROADCAST, hs->own_nv);
	}
	hs_retry_wanted(hs);
	hs_drive(hs);
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
	hs->root = hs_node_insert(hs, &g, 1);
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
		if (hs_block_check(hs, &c) != CM_OK) {
			lg_hs_destroy(hs);
			return CM_ERR_INVALID;
		}
		hs_node_remove(hs, hs->root);
		hs->root = hs_node_insert(hs, &c, 1);
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
			if (b.height <= hs_root_block(hs)->height || hs_block_check(hs, &b) != CM_OK ||
			    hs_node_find(hs, b.hash) >= 0)
				continue;
			int32_t p = hs_node_find(hs, b.parent);
			if (p < 0 || b.height != hs->nodes[p].b.height + 1 || b.view <= hs->nodes[p].b.view ||
			    b.justify.view != hs->nodes[p].b.view)
				continue;
			/* our own disk, but a QC is taken only on its signatures */
			if (cm_qc_verify(&b.justify, cfg->chain, cfg->n, cfg->f, io->verify, io->ctx) != CM_OK)
				continue;
			if (hs->count >= hs->cap && hs_tree_grow(hs) != 0)
				break;
			if (hs_node_insert(hs, &b, 0) < 0)
				break;
			hs->nodes[p].certified = 1;
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
	hs_now_of(hs);
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
		int32_t idx = hs_node_find(hs, order[i]);
		if (idx < 0)
			continue; /* pruned by a commit on the way */
		cm_qc qc = hs->nodes[idx].b.justify;
		hs_process_qc(hs, &qc);
	}
	free(order);
	if (hs->has_pending_qc) {
		cm_qc qc = hs->pending_qc;
		hs->has_pending_qc = 0;
		hs_process_qc(hs, &qc);
	}
	hs->deadline = hs->now + timeout_now(hs);
	hs_drive(hs);
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
	const cm_block *r = hs_root_block(hs);
	if (hash)
		memcpy(hash, r->hash, CM_HASH_BYTES);
	return r->height;
}

int lg_hs_check(lg_hs *hs)
{
	uint32_t used = 0;
	if (hs->root < 0 || (uint32_t)hs->root >= hs->cap || !hs->nodes[hs->root].used) {
		hs_seterr(hs, "check: the committed tip is not in memory");
		return CM_ERR_STATE;
	}
	for (uint32_t i = 0; i < hs->cap; i++) {
		const hs_node *nd = &hs->nodes[i];
		if (!nd->used)
			continue;
		used++;
		if (hs_node_find(hs, nd->b.hash) != (int32_t)i) {
			hs_seterr(hs, "check: block at height %llu is not indexed", (unsigned long long)nd->b.height);
			return CM_ERR_STATE;
		}
		if ((int32_t)i == hs->root)
			continue;
		int32_t p = hs_node_find(hs, nd->b.parent);
		if (p < 0 || hs->nodes[p].b.height + 1 != nd->b.height || hs->nodes[p].b.view >= nd->b.view) {
			hs_seterr(hs, "check: block at height %llu (view %llu) does not link to its parent",
				  (unsigned long long)nd->b.height, (unsigned long long)nd->b.view);
			return CM_ERR_STATE;
		}
	}
	if (used != hs->count) {
		hs_seterr(hs, "check: %u blocks in memory, counted %u", used, hs->count);
		return CM_ERR_STATE;
	}
	return CM_OK;
}

void lg_hs_get_stats(const lg_hs *hs, lg_hs_stats *out)
{
	*out = hs->st;
	out->blocks_in_memory = hs->count;
}
