/* The simulated replicas' surroundings (see hs_sim.h): the io table each
 * core runs with -- disks that keep what was persisted and stored, the toy
 * app with its state root, signatures, the clock, fetching -- with the
 * invariants checked as each call happens, and the delivery of events. */
#include "hs_sim.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Observer of what an honest replica lets out: one vote per view, never
 * while persisting fails, never for a block whose payload it must reject. */
static void watch_vote(replica *r, uint64_t view, const uint8_t *hash)
{
	sim *s = r->sim;
	if (r->persist_fail)
		sim_fail(s, "replica %u voted in view %" PRIu64 " although persisting failed", r->id, view);
	if (view > r->persisted_view)
		sim_fail(s, "replica %u voted in view %" PRIu64 " before persisting it", r->id, view);
	if (is_poison(s, hash))
		sim_fail(s, "replica %u voted for a block whose payload it rejects", r->id);
	if (bstore_find(&r->store, hash) < 0)
		sim_fail(s, "replica %u voted in view %" PRIu64 " for a block it had not stored", r->id, view);
	if (view >= (1u << 22)) {
		sim_fail(s, "replica %u voted in view %" PRIu64 ", far beyond any QC", r->id, view);
		return;
	}
	if (view < r->voted.n && memcmp(r->voted.h[view], zero_hash, CM_HASH_BYTES) != 0) {
		if (memcmp(r->voted.h[view], hash, CM_HASH_BYTES) != 0)
			sim_fail(s, "replica %u voted for two blocks in view %" PRIu64, r->id, view);
		return;
	}
	hl_set(&r->voted, view, hash);
	r->votes_out++;
}

/* ---- the io table ---- */

static void io_send(void *ctx, int to, const lg_hs_msg *m)
{
	replica *r = ctx;
	if (to != LG_HS_BROADCAST && (to < 0 || to >= N || (uint32_t)to == r->id))
		sim_fail(r->sim, "replica %u sent to bad destination %d", r->id, to);
	if (!r->byz) {
		if (m->type == LG_HS_MSG_VOTE) {
			watch_vote(r, m->u.vote.view, m->u.vote.block_hash);
		} else if (m->type == LG_HS_MSG_PROPOSAL) {
			cm_block b = m->u.proposal.block;
			cm_block_hash(&b);
			watch_vote(r, b.view, b.hash);
		}
		net_msg(r->sim, r->id, to, m);
		return;
	}
	byz_send(r, to, m);
}

static int io_verify(void *ctx, uint32_t who, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES]);

/* 0 if qc verifies in full, as a follower would check it. */
int qc_ok(replica *r, const cm_qc *qc)
{
	return cm_qc_verify(qc, CHAIN, N, F, io_verify, r);
}

/* The safety state never goes backwards and holds only valid QCs. */
static int io_persist(void *ctx, const lg_hs_safety *st)
{
	replica *r = ctx;
	sim *s = r->sim;
	if (r->persist_fail)
		return CM_ERR_IO;
	if (st->last_voted_view < r->persisted_view)
		sim_fail(s, "replica %u: last voted view went back", r->id);
	if (st->locked_qc.view < r->persisted_lock)
		sim_fail(s, "replica %u: the persisted lock went back from view %" PRIu64 " to %" PRIu64, r->id,
			 r->persisted_lock, st->locked_qc.view);
	if (!r->byz && (qc_ok(r, &st->locked_qc) != CM_OK || qc_ok(r, &st->high_qc) != CM_OK))
		sim_fail(s, "replica %u persisted a QC that does not verify", r->id);
	size_t need = lg_hs_safety_size(st), len;
	r->safety = realloc(r->safety, need);
	if (lg_hs_safety_encode(st, r->safety, need, &len) != CM_OK)
		sim_fail(s, "safety encoding failed");
	r->safety_len = len;
	r->persisted_view = st->last_voted_view;
	r->persisted_lock = st->locked_qc.view;
	return CM_OK;
}

static int io_store(void *ctx, const cm_block *b)
{
	replica *r = ctx;
	if (!r->byz && qc_ok(r, &b->justify) != CM_OK)
		sim_fail(r->sim, "replica %u stored the block of view %" PRIu64 " whose justify QC (view %" PRIu64
			 ", %u signers) does not verify", r->id, b->view, b->justify.view, cm_qc_count(&b->justify));
	bstore_add(&r->store, b);
	return CM_OK;
}

/* ---- the toy app: root_h = H(root_{h-1} || payload_h) ---- */

void app_root0(uint8_t out[CM_HASH_BYTES])
{
	cm_hash(out, CM_DOM_STATE, "sim genesis", 11);
}

/* The (state height, state root) a block's payload claims; 0 if the payload
 * is the app's. Genesis claims (0, root0). */
static int app_claim(const cm_block *b, uint64_t *sh, uint8_t root[CM_HASH_BYTES])
{
	if (b->height == 0) {
		*sh = 0;
		app_root0(root);
		return 0;
	}
	if (b->payload_len < APP_PAYLOAD_MIN || b->payload[0] != APP_TAG)
		return -1;
	*sh = cm_get_be64(b->payload + 18);
	memcpy(root, b->payload + 26, CM_HASH_BYTES);
	return 0;
}

static void app_next_root(const uint8_t prev[CM_HASH_BYTES], const cm_block *b, uint8_t out[CM_HASH_BYTES])
{
	uint8_t buf[CM_HASH_BYTES + MAX_PAYLOAD + 1];
	memcpy(buf, prev, CM_HASH_BYTES);
	if (b->payload_len)
		memcpy(buf + CM_HASH_BYTES, b->payload, b->payload_len);
	cm_hash(out, CM_DOM_STATE, buf, CM_HASH_BYTES + b->payload_len);
}

static int io_commit(void *ctx, const cm_block *b, const cm_qc *qc)
{
	replica *r = ctx;
	sim *s = r->sim;
	if (r->commit_fail)
		return CM_ERR_IO;
	uint64_t h = b->height;
	if (qc->view != b->view || memcmp(qc->block_hash, b->hash, CM_HASH_BYTES) != 0)
		sim_fail(s, "replica %u: commit QC does not certify the block", r->id);
	if (!r->byz && (qc_ok(r, qc) != CM_OK || qc_ok(r, &b->justify) != CM_OK))
		sim_fail(s, "replica %u committed height %" PRIu64 " on a QC that does not verify", r->id, h);
	if (h != r->committed.n)
		sim_fail(s, "replica %u committed height %" PRIu64 " after %zu (gap or repeat)", r->id, h,
			 r->committed.n - 1);
	else if (memcmp(b->parent, r->committed.h[h - 1], CM_HASH_BYTES) != 0)
		sim_fail(s, "replica %u committed a block not extending its chain at %" PRIu64, r->id, h);
	if (bstore_find(&r->store, b->hash) < 0)
		sim_fail(s, "replica %u committed a block it had not stored", r->id);
	if (!r->byz) {
		if (h < s->chain.n && memcmp(s->chain.h[h], b->hash, CM_HASH_BYTES) != 0)
			sim_fail(s, "SAFETY: replica %u committed a different block at height %" PRIu64, r->id, h);
		else if (h >= s->chain.n)
			hl_set(&s->chain, h, b->hash);
	}
	if (s->failed)
		return CM_OK;
	/* the app: every certified claim was checked by a quorum of voters
	 * against their own committed roots, so a claim this replica finds
	 * false at commit is a committed false root: an invariant violation */
	uint64_t sh;
	uint8_t claimed[CM_HASH_BYTES], root[CM_HASH_BYTES];
	if (app_claim(b, &sh, claimed) != 0 || sh >= h) {
		sim_fail(s, "replica %u committed a block whose payload its app refuses", r->id);
		return CM_OK;
	}
	if (memcmp(r->roots.h[sh], claimed, CM_HASH_BYTES) != 0) {
		sim_fail(s, "STATE: replica %u committed block %" PRIu64 " of proposer %u pinning a false root at height %" PRIu64,
			 r->id, h, b->proposer, sh);
		return CM_OK;
	}
	app_next_root(r->roots.h[h - 1], b, root);
	hl_set(&r->roots, h, root);
	if (!r->byz) {
		if (h < s->roots.n && memcmp(s->roots.h[h], root, CM_HASH_BYTES) != 0)
			sim_fail(s, "STATE: replica %u reached another state root at height %" PRIu64, r->id, h);
		else if (h >= s->roots.n)
			hl_set(&s->roots, h, root);
	}
	hl_set(&r->committed, r->committed.n, b->hash);
	if (s->trace)
		printf("# %6" PRIu64 " r%u commits height %" PRIu64 " (view %" PRIu64 ")\n", s->now, r->id, h, b->view);
	return CM_OK;
}

/* The height the branch ending at parent proves committed: the highest c on
 * it whose child and grandchild on it are in the next two views (as
 * lg_node_chain.c's branch_committed); UINT64_MAX if a block is missing. */
static uint64_t app_branch_committed(const replica *r, const cm_block *parent)
{
	cm_block cur = *parent;
	uint64_t v1 = 0, v2 = 0; /* views of the blocks one and two above cur */
	for (int depth = 0; cur.height > 0; depth++) {
		if (depth >= 2 && cur.view + 1 == v1 && v1 + 1 == v2)
			return cur.height;
		v2 = v1;
		v1 = cur.view;
		if (cur.height == 1)
			break;
		uint64_t want = cur.height - 1;
		int32_t i = bstore_find(&r->store, cur.parent);
		if (i < 0 || cm_block_decode(r->store.v[i].bytes, r->store.v[i].len, &cur) != CM_OK ||
		    cur.height != want)
			return UINT64_MAX;
	}
	return 0;
}

/* The proposer's root at the height the branch proves committed goes in the
 * payload; never the parent's claim (lg_node_chain.c's rule). Having
 * processed QC(parent), the proposer has committed that height: that it
 * has not is an invariant violation (the liveness argument rests on it),
 * unless its commits are failing. */
static int io_make_payload(void *ctx, const cm_block *parent, uint64_t height, uint64_t view,
			   uint8_t *buf, size_t cap, size_t *len)
{
	replica *r = ctx;
	uint64_t sh = app_branch_committed(r, parent);
	if (sh == UINT64_MAX)
		return CM_ERR_STATE;
	if (sh >= r->committed.n) {
		if (!r->commit_fail)
			sim_fail(r->sim, "replica %u proposes on height %" PRIu64 " whose branch proves %" PRIu64
				 " committed, but it committed only %zu", r->id, parent->height, sh, r->committed.n - 1);
		sh = r->committed.n - 1;
	}
	const uint8_t *root = r->roots.h[sh];
	size_t n = APP_PAYLOAD_MIN + below(r->sim, 24);
	if (n > cap)
		return CM_ERR_TOOBIG;
	memset(buf, 0, n);
	buf[0] = APP_TAG;
	buf[1] = (uint8_t)r->id;
	cm_put_be64(buf + 2, height);
	cm_put_be64(buf + 10, view);
	cm_put_be64(buf + 18, sh);
	memcpy(buf + 26, root, CM_HASH_BYTES);
	*len = n;
	return CM_OK;
}

/* Mirrors the replica: a vote only if the claimed state height is not above
 * the parent's, this replica has committed it, and the claimed root is its
 * own there (a claim it cannot check it refuses). */
static int io_validate(void *ctx, const cm_block *parent, const cm_block *b)
{
	replica *r = ctx;
	uint64_t sh;
	uint8_t root[CM_HASH_BYTES];
	if (b->payload_len > 0 && b->payload[0] == POISON)
		return CM_ERR_INVALID;
	if (app_claim(b, &sh, root) != 0)
		return CM_ERR_INVALID;
	if (sh > parent->height)
		return CM_ERR_INVALID;
	if (sh >= r->committed.n) {
		/* the liveness argument: an honest proposer pins what every
		 * replica holding its block has committed */
		if (b->proposer != (uint32_t)r->sim->byz && !r->commit_fail)
			sim_fail(r->sim, "replica %u cannot check honest proposer %u's pin at %" PRIu64
				 " (committed %zu)", r->id, b->proposer, sh, r->committed.n - 1);
		return CM_ERR_INVALID;
	}
	if (memcmp(r->roots.h[sh], root, CM_HASH_BYTES) != 0)
		return CM_ERR_INVALID;
	return CM_OK;
}

static void io_sign(void *ctx, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	replica *r = ctx;
	sim_sign(r->sim, r->id, d, sig);
}

static int io_verify(void *ctx, uint32_t who, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES])
{
	replica *r = ctx;
	if (who >= N)
		return CM_ERR_VERIFY;
	if (r->sim->use_ed25519)
		return cm_verify(r->sim->kp[who].pk, sig, d, CM_HASH_BYTES);
	return fake_verify(who, d, sig);
}

static uint64_t io_now(void *ctx)
{
	return replica_clock((replica *)ctx);
}

static uint64_t io_random(void *ctx)
{
	return rnd(((replica *)ctx)->sim);
}

static void io_request(void *ctx, const uint8_t hash[CM_HASH_BYTES], uint64_t have, uint32_t peer)
{
	replica *r = ctx;
	if (peer >= N || peer == r->id) {
		sim_fail(r->sim, "replica %u asked bad peer %u for a block", r->id, peer);
		return;
	}
	link_send(r->sim, EV_FETCH_REQ, r->id, peer, hash, CM_HASH_BYTES, have);
}

const lg_hs_io sim_io = {
	.send = io_send, .persist_safety = io_persist, .store_block = io_store,
	.commit = io_commit, .make_payload = io_make_payload, .validate_payload = io_validate,
	.sign = io_sign, .verify = io_verify, .now_ms = io_now, .random = io_random,
	.request_block = io_request,
};

/* FetchBlocks at the peer: its committed blocks above `have`, then the
 * chain below the wanted hash; delivered lowest first. */
static void serve_fetch(sim *s, const event *e)
{
	replica *p = &s->r[e->to];
	if (!p->hs)
		return;
	int32_t pick[160];
	size_t k = 0;
	for (uint64_t h = e->arg + 1; h < p->committed.n && k < 64; h++) {
		int32_t i = bstore_find(&p->store, p->committed.h[h]);
		if (i >= 0)
			pick[k++] = i;
	}
	int32_t i = bstore_find(&p->store, e->data);
	for (int steps = 0; i >= 0 && steps < 64 && p->store.v[i].height > e->arg; steps++) {
		pick[k++] = i;
		cm_block b;
		if (cm_block_decode(p->store.v[i].bytes, p->store.v[i].len, &b) != CM_OK)
			break;
		i = bstore_find(&p->store, b.parent);
	}
	/* lowest first, without repeats */
	for (size_t a = 1; a < k; a++) {
		int32_t x = pick[a];
		size_t b = a;
		for (; b > 0 && p->store.v[pick[b - 1]].height > p->store.v[x].height; b--)
			pick[b] = pick[b - 1];
		pick[b] = x;
	}
	size_t total = 0;
	for (size_t a = 0; a < k; a++)
		total += 4 + p->store.v[pick[a]].len;
	uint8_t *buf = malloc(total ? total : 1), *q = buf;
	for (size_t a = 0; a < k; a++) {
		if (a > 0 && pick[a] == pick[a - 1])
			continue;
		uint32_t len = (uint32_t)p->store.v[pick[a]].len;
		memcpy(q, &len, 4);
		memcpy(q + 4, p->store.v[pick[a]].bytes, len);
		q += 4 + len;
	}
	link_send(s, EV_FETCH_RESP, e->to, e->from, buf, (size_t)(q - buf), 0);
	free(buf);
}

static void take_blocks(sim *s, const event *e)
{
	replica *r = &s->r[e->to];
	const uint8_t *q = e->data, *end = e->data + e->len;
	while (r->hs && end - q >= 4) {
		uint32_t len;
		memcpy(&len, q, 4);
		if ((size_t)(end - q - 4) < len)
			break;
		cm_block b;
		if (cm_block_decode(q + 4, len, &b) == CM_OK)
			lg_hs_on_block(r->hs, &b);
		q += 4 + len;
	}
}

void deliver(sim *s, event *e)
{
	replica *r = &s->r[e->to];
	s->events++;
	if (e->kind == EV_FETCH_REQ) {
		serve_fetch(s, e);
	} else if (e->kind == EV_FETCH_RESP) {
		take_blocks(s, e);
	} else if (r->hs) {
		if (r->byz && e->len > 1 && e->data[0] == LG_HS_MSG_PROPOSAL) {
			static lg_hs_msg m;
			if (lg_hs_msg_decode(e->data, e->len, &m) == CM_OK) {
				remember_qc(s, &m.u.proposal.block);
				/* the Byzantine replica votes for whatever it is shown */
				if (chance(s, s->voteall_ppm))
					byz_vote(s, m.u.proposal.block.view, m.u.proposal.block.hash, 0);
			}
		}
		int rc = lg_hs_on_message_bytes(r->hs, e->from, e->data, e->len);
		if (s->trace) {
			static lg_hs_msg m;
			uint64_t v = 0;
			if (lg_hs_msg_decode(e->data, e->len, &m) == CM_OK)
				v = m.type == LG_HS_MSG_VOTE ? m.u.vote.view
				    : m.type == LG_HS_MSG_NEWVIEW ? m.u.newview.view : m.u.proposal.block.view;
			printf("# %6" PRIu64 " %u->%u type %u view %" PRIu64 " rc %d | now in view %" PRIu64 "\n",
			       s->now, e->from, e->to, e->data[0], v, rc, lg_hs_view(r->hs));
		}
	}
	free(e->data);
}
