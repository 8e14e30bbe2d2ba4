/* Seeded simulation of a fragment split (issue 16) over the replication
 * core (services/indexer/ix_repl) and the split map (common/cm_splitmap):
 * five nodes hold a parent fragment and, once it splits, its two children
 * (three replicas each, drawn by the seed); a ledger model commits roots by
 * majority, runs failovers from reports, and splits the parent as the ledger
 * does (services/ledger/lg_st_split.c): SEALING in epoch + 1 (by the owner
 * at a random time, or when a committed root reaches split_size), frozen
 * when the sealing epoch's primary and a majority signed its whole log,
 * children deriving their first records from the frozen log (filtered by
 * cell, in log order) and serving once their first root is committed, the
 * parent retired when both are. A client writes at QUORUM through the map
 * (retrying a refused or timed-out write with the same id), and searches
 * through the map's plan. Faults: message loss, delay and reordering, node
 * kills and restarts from what was persisted, partitions. Nodes learn the
 * chain through a delayed feed, so a primary may take writes in an epoch the
 * ledger already sealed.
 * Checked: during the run, every search that reaches its fragments finds
 * every write acknowledged before it started, each id in one place only;
 * the frozen root is the parent's log on a majority; at the end (network
 * healed, writes stopped) the parent is retired, each child has committed a
 * root, and every acknowledged id is in exactly one child's committed log,
 * the one whose cell holds it.
 * MURI_SIM_SEEDS: schedules (default 300); MURI_SIM_SEED=<n> replays one;
 * A child's replica that does not hold the parent's frozen log fetches it
 * from the parent's replicas (services/indexer/ix_split_fetch.c, a page per
 * request, four requests per feed so that kills and partitions fall in a
 * fetch); in half the schedules one parent replica lies to fetches
 * (withholds: no answer; short: empty pages or a log below the frozen size;
 * fabricates a record; reorders two; serves a log one record shorter
 * numbered as if whole). Checked: a fetched log becomes a child's only if
 * it is exactly the frozen log's records of the cell.
 * MURI_SIM_TRACE=1 prints events; MURI_SIM_BUG=seal|gate|early|cell|root runs
 * a known-bad rule (a sealing primary signs the sizes it named before, not
 * its whole log; a primary takes writes while sealing; a child takes writes
 * before its first root; searches read a split parent without its cell
 * restriction; a fetch takes the fetched log without checking its root),
 * and test_bugs_caught shows each is caught. */
#include "tap.h"
#include "cm_cell.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "cm_splitmap.h"
#include "ix_repl.h"
#include "ix_split_fetch.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NN 5                 /* nodes */
#define NF 3                 /* fragments: 0 the parent, 1 and 2 its halves */
#define NR 3                 /* replicas per fragment */
#define LEDGER NN
#define TICK_MS 10
#define BATCH 32
#define DATA 24              /* id (16 bytes) + attempt number */
#define LOG_MAX 4096
#define POOL 4096
#define WRITES_MAX 1024
#define EPOCHS_MAX 256
#define SAFETY_MS 5000
#define LIVE_MS 9000
#define DEFAULT_SEEDS 300

/* ---- randomness and fake signatures ---- */

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state += 0x9e3779b97f4a7c15ULL;
	return mix64(rng_state);
}
static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}
static int chance(uint32_t ppm)
{
	return below(1000000) < ppm;
}

static void node_pk(int i, uint8_t pk[CM_PK_BYTES])
{
	memset(pk, 0, CM_PK_BYTES);
	pk[0] = 0x70;
	pk[1] = (uint8_t)i;
}

static void fake_sign(int who, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	uint64_t h = mix64(0x5ec7e7ULL * (uint64_t)(who + 1));
	for (int i = 0; i < 4; i++) {
		uint64_t w;
		memcpy(&w, d + 8 * i, 8);
		h = mix64(h ^ w);
	}
	memset(sig, 0, CM_SIG_BYTES);
	memcpy(sig, &h, 8);
}

/* ---- the world ---- */

struct dentry {
	uint64_t epoch;
	uint8_t leaf[CM_HASH_BYTES];
	uint8_t data[DATA];
};

/* One fragment's replica on one node; ctx of its core's io. */
struct rep {
	int node, frag;
	struct dentry *log;          /* the disk */
	uint64_t size;
	cm_merkle *mk;
	ix_repl_persist st;
	int has_st;
	int derived;                 /* a child's log was derived (on disk) */
	ix_repl *core;               /* NULL while down or not derived */
	/* a child's replica without the parent's frozen log fetches it
	 * (ix_split_fetch): the core, the parent replicas it asks, the staged
	 * records (in memory: a kill loses them) */
	int fetching;
	ixf fx;
	int peers[NR];
	struct dentry *stage;
	uint64_t nstage;
	uint64_t voted_size, voted_epoch;
};

/* What the ledger holds of a fragment; also a node's (delayed) view. */
struct lfrag {
	int present, phase, live;
	ix_repl_config cfg;
	cm_cell cell;
	uint32_t children[2];
	int has_parent;
	uint64_t src_size;
	uint8_t src_root[CM_HASH_BYTES];
	uint64_t commit_size;
	int committed;
	uint8_t commit_root[CM_HASH_BYTES];
};

struct node {
	int up;
	uint64_t up_at;
	uint8_t pk[CM_PK_BYTES];
	struct rep r[NF];
	struct lfrag view[NF];       /* the chain as this node last saw it */
};

struct pkt {
	int used, from, to, frag;
	uint64_t at;
	ix_repl_msg m;
	struct dentry ents[BATCH];
};

struct write {
	uint8_t id[16];
	uint32_t attempt;
	int pending, acked, node;
	uint64_t acked_at;
	uint64_t retry_at;
};

enum bug { BUG_NONE, BUG_SEAL, BUG_GATE, BUG_EARLY, BUG_CELL, BUG_ROOT };
/* How the lying parent replica answers a fetch of its frozen log. */
enum lie { LIE_NONE, LIE_WITHHOLD, LIE_SHORT, LIE_FABRICATE, LIE_REORDER, LIE_SIZE, LIE_N };
static int bug;

typedef struct sim {
	uint64_t seed, now;
	int trace, failed;
	char why[512];
	struct node node[NN];
	struct pkt *pool;
	struct lfrag led[NF];
	int member[NF][NR];                  /* node ids of each fragment's replicas */
	ix_repl_failover reports[NF][NR];
	int nreports[NF];
	/* votes of the current epoch per fragment: size -> mask and root */
	uint8_t *vmask[NF];
	uint8_t (*vroot[NF])[CM_HASH_BYTES];
	uint64_t seal_at, split_size;
	cm_splitmap gw;                      /* the client's (gateway's) view */
	int blocked[NN + 1][NN + 1];
	uint32_t loss, kill, part, write_rate, search_rate, feed_ms, delay_jitter;
	uint64_t next_feed[NN], next_vote[NN], next_gw;
	uint32_t vote_ms, gw_ms;
	struct write w[WRITES_MAX];
	uint32_t nw;
	uint64_t searches, searches_done, acks, refusals, kills, failovers;
	int liar, lie;                       /* a parent replica that lies to fetches (-1: none) */
	uint32_t page;                       /* records a fetch asks per page */
	uint64_t fetched, fetch_faults[IXF_NFAULTS];
} sim;

static sim S;

static void trace(const char *fmt, ...)
{
	if (!S.trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("# t=%6" PRIu64 " ", S.now);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static void fail(const char *fmt, ...)
{
	if (S.failed)
		return;
	S.failed = 1;
	va_list ap;
	va_start(ap, fmt);
	int k = snprintf(S.why, sizeof(S.why), "t=%" PRIu64 ": ", S.now);
	vsnprintf(S.why + k, sizeof(S.why) - (size_t)k, fmt, ap);
	va_end(ap);
	trace("VIOLATION %s", S.why);
}

static int node_of_pk(const uint8_t pk[CM_PK_BYTES])
{
	for (int i = 0; i < NN; i++)
		if (!memcmp(S.node[i].pk, pk, CM_PK_BYTES))
			return i;
	return -1;
}

static void leaf_of(const uint8_t data[DATA], uint8_t leaf[CM_HASH_BYTES])
{
	cm_merkle_blake2b.leaf(leaf, data, DATA);
}

/* ---- a replica's disk (io callbacks) ---- */

static uint64_t io_log_size(void *ctx)
{
	return ((struct rep *)ctx)->size;
}

static int io_log_entry(void *ctx, uint64_t seq, ix_repl_entry *out)
{
	struct rep *r = ctx;
	if (seq >= r->size)
		return CM_ERR_RANGE;
	out->seq = seq;
	out->epoch = r->log[seq].epoch;
	memcpy(out->leaf, r->log[seq].leaf, CM_HASH_BYTES);
	out->data = r->log[seq].data;
	out->len = DATA;
	return 0;
}

static int io_log_read(void *ctx, uint64_t from, uint32_t max, ix_repl_entry *out, uint32_t *n)
{
	struct rep *r = ctx;
	uint32_t k = 0;
	for (uint64_t s = from; s < r->size && k < max; s++, k++)
		io_log_entry(ctx, s, &out[k]);
	*n = k;
	return 0;
}

static int io_log_root(void *ctx, uint64_t size, uint8_t out[CM_HASH_BYTES])
{
	struct rep *r = ctx;
	return size > r->size ? CM_ERR_RANGE : cm_merkle_root(r->mk, size, out);
}

static void rep_append(struct rep *r, uint64_t epoch, const uint8_t data[DATA])
{
	struct dentry *d = &r->log[r->size++];
	d->epoch = epoch;
	memcpy(d->data, data, DATA);
	leaf_of(data, d->leaf);
	cm_merkle_append_hash(r->mk, d->leaf);
}

static int io_log_append(void *ctx, const ix_repl_entry *e, uint32_t n)
{
	struct rep *r = ctx;
	if (r->size + n > LOG_MAX)
		return CM_ERR_TOOBIG;
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].seq != r->size || e[i].len != DATA)
			return CM_ERR_RANGE;
		rep_append(r, e[i].epoch, e[i].data);
	}
	return 0;
}

static int io_log_truncate(void *ctx, uint64_t size)
{
	struct rep *r = ctx;
	const struct lfrag *l = &S.led[r->frag];
	if (size > r->size)
		return CM_ERR_RANGE;
	uint8_t root[CM_HASH_BYTES];
	if (l->phase >= CM_PHASE_SPLIT && size < l->commit_size && r->size >= l->commit_size &&
	    cm_merkle_root(r->mk, l->commit_size, root) == CM_OK && !memcmp(root, l->commit_root, 32))
		fail("node %d truncates the frozen fragment %d to %" PRIu64, r->node, r->frag, size);
	cm_merkle_truncate(r->mk, size);
	r->size = size;
	return 0;
}

static int io_persist(void *ctx, const ix_repl_persist *st)
{
	struct rep *r = ctx;
	r->st = *st;
	r->has_st = 1;
	return 0;
}

static void net_send(int from, int to, int frag, const ix_repl_msg *m)
{
	if (S.blocked[from][to] || chance(S.loss))
		return;
	for (int i = 0; i < POOL; i++) {
		struct pkt *p = &S.pool[i];
		if (p->used)
			continue;
		p->used = 1;
		p->from = from;
		p->to = to;
		p->frag = frag;
		p->at = S.now + 1 + below(S.delay_jitter + 1);
		p->m = *m;
		if (m->type == IX_REPL_APPEND) {
			uint32_t n = m->u.append.n > BATCH ? BATCH : m->u.append.n;
			for (uint32_t k = 0; k < n; k++) {
				const ix_repl_entry *e = &m->u.append.entries[k];
				p->ents[k].epoch = e->epoch;
				memcpy(p->ents[k].leaf, e->leaf, CM_HASH_BYTES);
				memcpy(p->ents[k].data, e->data, DATA);
			}
			p->m.u.append.n = n;
		}
		return;
	}
}

static void io_send(void *ctx, const uint8_t to[CM_PK_BYTES], const ix_repl_msg *m)
{
	struct rep *r = ctx;
	int t = node_of_pk(to);
	if (t >= 0)
		net_send(r->node, t, r->frag, m);
}

static void ledger_failover(int frag, const ix_repl_failover *f);
static void io_ledger_submit(void *ctx, const ix_repl_failover *f)
{
	struct rep *r = ctx;
	if (!S.blocked[r->node][LEDGER] && !chance(S.loss))
		ledger_failover(r->frag, f);
}

static void io_write_done(void *ctx, uint64_t token, int rc, uint64_t first, uint64_t end, int level)
{
	(void)ctx;
	(void)first;
	(void)end;
	struct write *w = &S.w[token];
	w->pending = 0;
	if (rc == CM_OK && level >= IX_REPL_QUORUM) {
		if (!w->acked) {
			w->acked = 1;
			w->acked_at = S.now;
			S.acks++;
		}
	} else {
		w->retry_at = S.now + 20 + below(100); /* the client retries the same id */
	}
}

static void io_sign(void *ctx, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	fake_sign(((struct rep *)ctx)->node, d, sig);
}

static int io_verify(void *ctx, const uint8_t pk[CM_PK_BYTES], const uint8_t d[CM_HASH_BYTES],
		     const uint8_t sig[CM_SIG_BYTES])
{
	(void)ctx;
	uint8_t want[CM_SIG_BYTES];
	int who = node_of_pk(pk);
	if (who < 0)
		return CM_ERR_VERIFY;
	fake_sign(who, d, want);
	return memcmp(want, sig, CM_SIG_BYTES) ? CM_ERR_VERIFY : CM_OK;
}

static uint64_t io_now(void *ctx)
{
	(void)ctx;
	return S.now;
}

static void rep_start(struct rep *r)
{
	ix_repl_opts o;
	memset(&o, 0, sizeof(o));
	o.fragment[0] = 0x53;
	o.fragment[1] = (uint8_t)r->frag;
	memcpy(o.self, S.node[r->node].pk, CM_PK_BYTES);
	o.batch = BATCH;
	o.max_pending = 64;
	o.heartbeat_ms = 40;
	o.lease_ms = 200;
	o.suspect_ms = 450;
	o.root_every = 4;
	o.root_ms = 100;
	o.root_hold_ms = S.seed & 1 ? 300 : 0; /* odd seeds: a named size not committed yet stays named */
	ix_repl_io io = {
		.ctx = r, .log_size = io_log_size, .log_entry = io_log_entry, .log_read = io_log_read,
		.log_root = io_log_root, .log_append = io_log_append, .log_truncate = io_log_truncate,
		.persist = io_persist, .send = io_send, .ledger_submit = io_ledger_submit,
		.write_done = io_write_done, .sign = io_sign, .verify = io_verify, .now_ms = io_now,
	};
	if (ix_repl_create(&o, &io, r->has_st ? &r->st : NULL, &r->core) != CM_OK)
		fail("node %d cannot start fragment %d", r->node, r->frag);
}

/* ---- the ledger model ---- */

static int is_member(int frag, int node)
{
	for (int i = 0; i < NR; i++)
		if (S.member[frag][i] == node)
			return 1;
	return 0;
}

static void votes_clear(int frag)
{
	memset(S.vmask[frag], 0, LOG_MAX + 1);
}

static void new_epoch(int frag, uint32_t primary)
{
	struct lfrag *l = &S.led[frag];
	l->cfg.epoch++;
	l->cfg.primary = primary;
	S.nreports[frag] = 0;
	votes_clear(frag);
	trace("ledger: fragment %d epoch %" PRIu64 " primary node %d", frag, l->cfg.epoch, S.member[frag][primary]);
}

static void seal(void)
{
	struct lfrag *p = &S.led[0];
	p->phase = CM_PHASE_SEALING;
	p->children[0] = 1;
	p->children[1] = 2;
	new_epoch(0, p->cfg.primary);
	trace("ledger: fragment 0 sealing");
}

static void ledger_failover(int frag, const ix_repl_failover *f)
{
	struct lfrag *l = &S.led[frag];
	if (!l->present || l->phase >= CM_PHASE_SPLIT || f->epoch != l->cfg.epoch)
		return;
	int slot = -1;
	for (int i = 0; i < S.nreports[frag]; i++)
		if (!memcmp(S.reports[frag][i].sender, f->sender, CM_PK_BYTES))
			slot = i;
	if (slot < 0)
		slot = S.nreports[frag]++;
	S.reports[frag][slot] = *f;
	int k = ix_repl_choose_primary(&l->cfg, S.reports[frag], (size_t)S.nreports[frag]);
	if (k >= 0) {
		S.failovers++;
		new_epoch(frag, (uint32_t)k);
	}
}

static void freeze(void)
{
	struct lfrag *p = &S.led[0];
	cm_cell halves[2];
	p->phase = CM_PHASE_SPLIT;
	cm_cell_children(&p->cell, halves);
	for (int b = 0; b < 2; b++) {
		struct lfrag *c = &S.led[1 + b];
		memset(c, 0, sizeof(*c));
		c->present = 1;
		c->cell = halves[b];
		c->has_parent = 1;
		c->src_size = p->commit_size;
		memcpy(c->src_root, p->commit_root, CM_HASH_BYTES);
		c->cfg.epoch = 1;
		c->cfg.n = NR;
		c->cfg.primary = (uint32_t)below(NR);
		for (int i = 0; i < NR; i++)
			memcpy(c->cfg.replicas[i], S.node[S.member[1 + b][i]].pk, CM_PK_BYTES);
		votes_clear(1 + b);
	}
	trace("ledger: fragment 0 frozen at %" PRIu64, p->commit_size);
}

/* A signed root of a replica of the fragment's current epoch. */
static void ledger_vote(int frag, int node, uint64_t epoch, uint64_t size, const uint8_t root[CM_HASH_BYTES])
{
	struct lfrag *l = &S.led[frag];
	int idx = -1;
	if (!l->present || epoch != l->cfg.epoch || l->phase >= CM_PHASE_SPLIT || size > LOG_MAX)
		return;
	for (int i = 0; i < NR; i++)
		if (S.member[frag][i] == node)
			idx = i;
	if (idx < 0)
		return;
	if (S.vmask[frag][size] && memcmp(S.vroot[frag][size], root, CM_HASH_BYTES) != 0) {
		fail("fragment %d epoch %" PRIu64 ": two roots signed at size %" PRIu64, frag, epoch, size);
		return;
	}
	memcpy(S.vroot[frag][size], root, CM_HASH_BYTES);
	S.vmask[frag][size] |= (uint8_t)(1u << idx);
	int agree = __builtin_popcount(S.vmask[frag][size]);
	if (agree < NR / 2 + 1)
		return;
	int fresh = !l->committed || size > l->commit_size;
	if (fresh) {
		l->committed = 1;
		l->commit_size = size;
		memcpy(l->commit_root, root, CM_HASH_BYTES);
		trace("ledger: fragment %d root committed at %" PRIu64, frag, size);
		if (l->has_parent && !l->live) {
			l->live = 1;
			if (S.led[1].live && S.led[2].live) {
				S.led[0].phase = CM_PHASE_RETIRED;
				trace("ledger: fragment 0 retired");
			}
		}
		if (frag == 0 && l->phase == CM_PHASE_SERVING && S.split_size && size >= S.split_size)
			seal();
	}
	/* the sealing primary's whole log, committed: frozen */
	if (frag == 0 && l->phase == CM_PHASE_SEALING && size == l->commit_size && !memcmp(root, l->commit_root, 32) &&
	    (S.vmask[0][size] & (1u << l->cfg.primary)))
		freeze();
}

/* ---- nodes: the feed, derivation, votes ---- */

static int view_writable(const struct lfrag *v)
{
	if (bug == BUG_GATE && v->phase == CM_PHASE_SEALING)
		return 1;
	if (bug == BUG_EARLY && v->present && v->phase == CM_PHASE_SERVING)
		return 1;
	return v->present && v->phase == CM_PHASE_SERVING && (!v->has_parent || v->live);
}

/* The frozen log as the ledger committed it: a parent replica whose prefix
 * has the frozen root (the checks' oracle, up or down). */
static const struct rep *frozen_copy(uint64_t size, const uint8_t want[CM_HASH_BYTES])
{
	uint8_t root[CM_HASH_BYTES];
	for (int n = 0; n < NN; n++) {
		const struct rep *p = &S.node[n].r[0];
		if (p->size >= size && cm_merkle_root(p->mk, size, root) == CM_OK && !memcmp(root, want, CM_HASH_BYTES))
			return p;
	}
	return NULL;
}

static int stage_reset(void *arg)
{
	((struct rep *)arg)->nstage = 0;
	return CM_OK;
}

static int stage_append(void *arg, const ixf_entry *e)
{
	struct rep *r = arg;
	if (e->len != DATA || r->nstage >= LOG_MAX)
		return CM_ERR_RANGE;
	memcpy(r->stage[r->nstage++].data, e->data, DATA);
	return CM_OK;
}

#define PAGE_MAX 32

/* Parent replica p's answer to FetchLog(from, max): its log, or what
 * S.lie says when p is the liar. 0 with *n entries, -1: no answer (a
 * timeout). */
static int serve(int p, uint64_t from, uint32_t max, struct dentry *buf, ixf_entry *e, size_t *n, uint64_t *log_size)
{
	const struct rep *src = &S.node[p].r[0];
	uint64_t skip = 0;
	*log_size = src->size;
	*n = 0;
	if (p == S.liar && S.lie == LIE_WITHHOLD)
		return -1;
	if (p == S.liar && S.lie == LIE_SIZE && from >= src->size / 2) {
		skip = 1; /* a log one record shorter, numbered as if whole */
		*log_size = src->size;
	}
	if (from + skip >= src->size)
		return 0;
	uint64_t k = src->size - from - skip < max ? src->size - from - skip : max;
	for (uint64_t i = 0; i < k; i++)
		buf[i] = src->log[from + skip + i];
	if (p == S.liar && S.lie == LIE_SHORT) {
		if (below(2))
			k = 0;                      /* an empty page */
		else
			*log_size = from + k - 1;   /* a log short of the frozen size */
	}
	if (p == S.liar && S.lie == LIE_FABRICATE) {
		uint64_t i = below(k);
		buf[i].data[15] ^= (uint8_t)(1 + below(255)); /* another id (in or out of the cell) */
	}
	uint64_t swapped = UINT64_MAX;
	if (p == S.liar && S.lie == LIE_REORDER && k >= 2) {
		uint64_t i = below(k - 1);
		struct dentry t = buf[i];
		buf[i] = buf[i + 1];
		buf[i + 1] = t;
		/* the seq a record carries in its bytes: its own (half the time) or
		 * rewritten to its new place (then only the root shows it) */
		swapped = below(2) ? i : UINT64_MAX;
	}
	for (uint64_t i = 0; i < k; i++) {
		e[i].seq = from + i + (i == swapped) - (swapped != UINT64_MAX && i == swapped + 1);
		e[i].id = buf[i].data;
		e[i].data = buf[i].data;
		e[i].len = DATA;
	}
	*n = k;
	return 0;
}

/* The fetch is done: the staged records must be exactly the frozen log's
 * records of the cell, in log order, before they become the child's log. */
static void fetch_done(struct rep *r, const struct lfrag *v)
{
	const struct rep *p = frozen_copy(v->src_size, v->src_root);
	uint64_t k = 0;
	for (uint64_t s = 0; p && s < v->src_size && !S.failed; s++) {
		if (!cm_cell_contains(&v->cell, p->log[s].data, S.gw.nbase))
			continue;
		if (k >= r->nstage || memcmp(r->stage[k].data, p->log[s].data, DATA) != 0)
			fail("node %d fetched fragment %d's records unverified: record %" PRIu64 " is not the frozen "
			     "log's", r->node, r->frag, k);
		k++;
	}
	if (!S.failed && k != r->nstage)
		fail("node %d fetched %" PRIu64 " records for fragment %d, the frozen log has %" PRIu64, r->node,
		     r->nstage, r->frag, k);
	for (uint64_t i = 0; i < r->nstage; i++)
		rep_append(r, 1, r->stage[i].data);
	r->derived = 1;
	r->fetching = 0;
	S.fetched++;
	trace("node %d derived fragment %d by fetching: %" PRIu64 " of %" PRIu64 " records (%" PRIu64 " pages)",
	      r->node, r->frag, r->size, v->src_size, r->fx.pages);
}

/* A child replica without the parent's frozen log asks the parent's
 * replicas (its view of the parent's configuration) for it. */
static void fetch_start(struct rep *r, const struct lfrag *v, const struct lfrag *pv)
{
	ixf_opts o;
	memset(&o, 0, sizeof(o));
	o.size = v->src_size;
	memcpy(o.root, v->src_root, CM_HASH_BYTES);
	o.cell = v->cell;
	o.page = S.page;
	o.retries = 3;
	o.skip_root_check = bug == BUG_ROOT;
	uint32_t off = pv->cfg.n ? (uint32_t)below(pv->cfg.n) : 0;
	for (uint32_t i = 0; i < pv->cfg.n; i++) {
		int n = node_of_pk(pv->cfg.replicas[(i + off) % pv->cfg.n]);
		if (n >= 0 && n != r->node)
			r->peers[o.npeers++] = n;
	}
	ixf_io io = {r, stage_reset, stage_append};
	if (o.npeers && ixf_init(&r->fx, &o, &io) == CM_OK)
		r->fetching = 1;
}

/* Four pages per feed, so kills and partitions fall during fetches. */
static void fetch_steps(struct rep *r, const struct lfrag *v)
{
	uint64_t before[IXF_NFAULTS];
	memcpy(before, r->fx.faults, sizeof(before));
	for (int pages = 0; pages < 4 && r->fetching; pages++) {
		ixf_req q;
		int st = ixf_next(&r->fx, &q);
		if (st == IXF_DONE) {
			fetch_done(r, v);
			break;
		}
		if (st == IXF_WAIT) {
			ixf_round(&r->fx);
			break;
		}
		int p = r->peers[q.peer];
		struct dentry buf[PAGE_MAX];
		ixf_entry e[PAGE_MAX];
		size_t n = 0;
		uint64_t size = 0;
		if (!S.node[p].up || S.blocked[r->node][p] || S.blocked[p][r->node] || chance(S.loss) ||
		    serve(p, q.from, q.max, buf, e, &n, &size) != 0) {
			ixf_on_error(&r->fx, q.peer);
			trace("node %d fetching fragment %d: node %d does not answer", r->node, r->frag, p);
			continue;
		}
		int fl = ixf_on_page(&r->fx, q.peer, e, n, size);
		if (fl != IXF_OK) {
			trace("node %d fetching fragment %d: node %d's page at %" PRIu64 " is %s", r->node, r->frag, p,
			      q.from, ixf_fault_name(fl));
		}
	}
	for (int i = 0; i < IXF_NFAULTS; i++)
		S.fetch_faults[i] += r->fx.faults[i] - before[i];
}

/* A child replica derives its first records from the parent's frozen log:
 * its own copy, or one fetched from the parent's replicas and verified. */
static void derive(struct rep *r)
{
	const struct lfrag *v = &S.node[r->node].view[r->frag];
	const struct rep *own = &S.node[r->node].r[0];
	uint8_t root[CM_HASH_BYTES];
	if (own->size >= v->src_size && cm_merkle_root(own->mk, v->src_size, root) == CM_OK &&
	    !memcmp(root, v->src_root, CM_HASH_BYTES)) {
		for (uint64_t s = 0; s < v->src_size; s++)
			if (cm_cell_contains(&v->cell, own->log[s].data, S.gw.nbase))
				rep_append(r, 1, own->log[s].data);
		r->derived = 1;
		r->fetching = 0;
		trace("node %d derived fragment %d: %" PRIu64 " of %" PRIu64 " records", r->node, r->frag, r->size,
		      v->src_size);
		return;
	}
	if (!r->fetching)
		fetch_start(r, v, &S.node[r->node].view[0]);
	if (r->fetching)
		fetch_steps(r, v);
}

static void feed(int n)
{
	struct node *nd = &S.node[n];
	char err[128];
	if (S.blocked[n][LEDGER])
		return;
	memcpy(nd->view, S.led, sizeof(S.led));
	for (int f = 0; f < NF; f++) {
		struct rep *r = &nd->r[f];
		const struct lfrag *v = &nd->view[f];
		if (!v->present || !is_member(f, n) || v->phase == CM_PHASE_RETIRED)
			continue;
		if (v->has_parent && !r->derived)
			derive(r);
		if (v->has_parent && !r->derived)
			continue;
		if (!r->core)
			rep_start(r);
		if (r->core && ix_repl_epoch(r->core) < v->cfg.epoch)
			ix_repl_on_config(r->core, &v->cfg, err, sizeof(err));
		if (r->core && v->committed)
			ix_repl_on_commit_root(r->core, v->commit_size, v->commit_root);
	}
}

/* Each replica signs: a sealing primary its whole log, every replica the
 * size its core names (and, while sealing or deriving, what it may sign). */
static void votes(void)
{
	for (int n = 0; n < NN; n++) {
		struct node *nd = &S.node[n];
		if (!nd->up || S.blocked[n][LEDGER] || S.now < S.next_vote[n])
			continue;
		S.next_vote[n] = S.now + S.vote_ms / 2 + below(S.vote_ms);
		for (int f = 0; f < NF; f++) {
			struct rep *r = &nd->r[f];
			const struct lfrag *v = &nd->view[f];
			uint8_t root[CM_HASH_BYTES];
			if (!r->core || v->cfg.epoch != ix_repl_epoch(r->core))
				continue;
			uint64_t sizes[2] = {ix_repl_root_size(r->core), 0};
			int primary = ix_repl_is_primary(r->core);
			if ((v->phase == CM_PHASE_SEALING && bug != BUG_SEAL) || (v->has_parent && !v->live))
				sizes[0] = 0; /* a sealing epoch signs only the whole log (primary) or what it holds of
					       * it; a new child its whole derived log */
			if ((v->phase == CM_PHASE_SEALING && primary) || (v->has_parent && !v->live))
				sizes[1] = r->size;
			else if (v->phase == CM_PHASE_SEALING)
				sizes[1] = ix_repl_signable(r->core);
			for (int k = 0; k < 2; k++) {
				uint64_t s = sizes[k];
				if ((s == 0 && (k == 0 || !(v->has_parent && !v->live))) || s > r->size)
					continue;
				if (s == r->voted_size && r->voted_epoch == v->cfg.epoch)
					continue;
				r->voted_size = s;
				r->voted_epoch = v->cfg.epoch;
				cm_merkle_root(r->mk, s, root);
				ledger_vote(f, n, v->cfg.epoch, s, root);
			}
		}
	}
}

/* ---- the client ---- */

static void gw_refresh(void)
{
	for (int f = 0; f < NF; f++) {
		cm_splitfrag *x = &S.gw.f[f];
		const struct lfrag *l = &S.led[f];
		x->present = l->present;
		x->phase = l->phase;
		x->cell = l->cell;
		x->children[0] = l->children[0];
		x->children[1] = l->children[1];
		x->has_parent = l->has_parent;
		x->parent = 0;
		x->live = l->live;
	}
}

static void try_write(uint32_t k)
{
	struct write *w = &S.w[k];
	uint32_t f;
	int rc = cm_splitmap_route(&S.gw, w->id, &f);
	w->retry_at = S.now + 30 + below(60);
	if (bug == BUG_EARLY && rc == CM_ERR_UNAVAILABLE && S.led[f].phase == CM_PHASE_SERVING)
		rc = CM_OK;
	if (rc != CM_OK) {
		S.refusals++;
		return;
	}
	int pn = S.member[f][S.led[f].cfg.primary];
	struct rep *r = &S.node[pn].r[f];
	if (!S.node[pn].up || !r->core || S.blocked[LEDGER][pn] || !view_writable(&S.node[pn].view[f])) {
		S.refusals++;
		return;
	}
	ix_repl_entry e;
	uint8_t data[DATA];
	w->attempt++;
	memcpy(data, w->id, 16);
	memcpy(data + 16, &w->attempt, 4);
	memset(data + 20, 0, 4);
	memset(&e, 0, sizeof(e));
	e.seq = r->size;
	e.epoch = ix_repl_epoch(r->core);
	e.data = data;
	e.len = DATA;
	uint64_t first;
	if (ix_repl_write(r->core, &e, 1, IX_REPL_QUORUM, S.now + 400, k, &first) == CM_OK) {
		w->pending = 1;
		w->node = pn;
	}
	else
		S.refusals++;
}

static void client(int writing)
{
	if (writing && S.nw < WRITES_MAX && chance(S.write_rate)) {
		struct write *w = &S.w[S.nw];
		for (int i = 0; i < 16; i++)
			w->id[i] = (uint8_t)rnd();
		w->id[0] &= 0x7f;
		w->retry_at = S.now;
		S.nw++;
	}
	for (uint32_t k = 0; k < S.nw; k++)
		if (!S.w[k].acked && !S.w[k].pending && S.w[k].retry_at <= S.now)
			try_write(k);
}

/* The log a search reads for target t, or NULL: a live fragment's primary
 * (its whole log), or a split parent's replica holding the frozen root. */
static const struct rep *reader(const cm_split_target *t, uint64_t *size)
{
	const struct lfrag *l = &S.led[t->fragment];
	if (l->phase == CM_PHASE_SPLIT || l->phase == CM_PHASE_RETIRED) {
		for (int i = 0; i < NR; i++) {
			const struct rep *r = &S.node[S.member[t->fragment][i]].r[t->fragment];
			uint8_t root[CM_HASH_BYTES];
			if (!S.node[r->node].up || S.blocked[LEDGER][r->node] || r->size < l->commit_size ||
			    cm_merkle_root(r->mk, l->commit_size, root) != CM_OK || memcmp(root, l->commit_root, 32))
				continue;
			*size = l->commit_size;
			return r;
		}
		return NULL;
	}
	int pn = S.member[t->fragment][l->cfg.primary];
	const struct rep *r = &S.node[pn].r[t->fragment];
	if (!S.node[pn].up || !r->core || !ix_repl_is_primary(r->core) || ix_repl_epoch(r->core) != l->cfg.epoch ||
	    S.blocked[LEDGER][pn])
		return NULL;
	*size = r->size;
	return r;
}

static int find(const struct rep *r, uint64_t size, const uint8_t id[16])
{
	for (uint64_t s = 0; s < size; s++)
		if (!memcmp(r->log[s].data, id, 16))
			return 1;
	return 0;
}

static void search(void)
{
	cm_split_target t[8];
	size_t nt;
	const struct rep *rd[8];
	uint64_t sz[8];
	if (cm_splitmap_plan(&S.gw, t, 8, &nt) != CM_OK) {
		fail("no search plan");
		return;
	}
	for (size_t i = 0; bug == BUG_CELL && i < nt; i++)
		t[i].restrict_cell = 0;
	S.searches++;
	for (size_t i = 0; i < nt; i++)
		if (!(rd[i] = reader(&t[i], &sz[i])))
			return; /* a fragment unreachable: the search fails, no answer to check */
	S.searches_done++;
	for (uint32_t k = 0; k < S.nw; k++) {
		int found = 0;
		for (size_t i = 0; i < nt; i++)
			if (cm_split_target_keeps(&S.gw, &t[i], S.w[k].id) && find(rd[i], sz[i], S.w[k].id))
				found++;
		if (found > 1)
			fail("search: id %u answered by %d fragments", k, found);
		if (S.w[k].acked && !found)
			fail("search: acknowledged write %u missing (plan of %zu)", k, nt);
	}
}

/* ---- faults and the schedule ---- */

static void kill_node(int n)
{
	struct node *nd = &S.node[n];
	for (int f = 0; f < NF; f++) {
		ix_repl_destroy(nd->r[f].core);
		nd->r[f].core = NULL;
		nd->r[f].fetching = 0; /* a fetch in progress and its staged records are lost */
		nd->r[f].nstage = 0;
	}
	for (uint32_t k = 0; k < S.nw; k++) /* its pending writes time out at the client, which retries */
		if (S.w[k].pending && S.w[k].node == n) {
			S.w[k].pending = 0;
			S.w[k].retry_at = S.now + 400;
		}
	nd->up = 0;
	nd->up_at = S.now + 100 + below(600);
	S.kills++;
	trace("kill node %d", n);
}

static void faults(int safety)
{
	for (int n = 0; n < NN; n++) {
		if (!S.node[n].up && S.now >= S.node[n].up_at) {
			S.node[n].up = 1;
			trace("restart node %d", n);
			feed(n);
		} else if (safety && S.node[n].up && chance(S.kill)) {
			kill_node(n);
		}
	}
	if (safety && chance(S.part)) {
		int a = (int)below(NN + 1), b = (int)below(NN + 1);
		if (a != b)
			S.blocked[a][b] = S.blocked[b][a] = 1;
	}
	if (chance(S.part * 3) || !safety)
		memset(S.blocked, 0, sizeof(S.blocked));
}

static void deliver(void)
{
	for (int i = 0; i < POOL; i++) {
		struct pkt *p = &S.pool[i];
		if (!p->used || p->at > S.now)
			continue;
		p->used = 0;
		struct rep *r = &S.node[p->to].r[p->frag];
		if (!S.node[p->to].up || !r->core)
			continue;
		ix_repl_entry ents[BATCH];
		if (p->m.type == IX_REPL_APPEND) {
			for (uint32_t k = 0; k < p->m.u.append.n; k++) {
				ents[k].seq = p->m.u.append.prev_size + k;
				ents[k].epoch = p->ents[k].epoch;
				memcpy(ents[k].leaf, p->ents[k].leaf, CM_HASH_BYTES);
				ents[k].data = p->ents[k].data;
				ents[k].len = DATA;
			}
			p->m.u.append.entries = ents;
		}
		ix_repl_on_message(r->core, &p->m);
	}
}

static void step(int safety)
{
	deliver();
	faults(safety);
	for (int n = 0; n < NN; n++)
		if (S.node[n].up && S.now >= S.next_feed[n]) {
			feed(n);
			S.next_feed[n] = S.now + S.feed_ms + below(S.feed_ms);
		}
	for (int n = 0; n < NN; n++)
		for (int f = 0; f < NF && S.node[n].up; f++)
			if (S.node[n].r[f].core)
				ix_repl_tick(S.node[n].r[f].core);
	votes();
	if (S.seal_at && S.now >= S.seal_at && S.led[0].phase == CM_PHASE_SERVING)
		seal();
	if (S.now >= S.next_gw) { /* the gateway follows the chain with a lag */
		gw_refresh();
		S.next_gw = S.now + below(S.gw_ms + 1);
	}
	client(safety);
	if (chance(S.search_rate))
		search();
	S.now += TICK_MS;
}

static void pick_members(int frag)
{
	int used[NN] = {0};
	for (int i = 0; i < NR; i++) {
		int n;
		do
			n = (int)below(NN);
		while (used[n]);
		used[n] = 1;
		S.member[frag][i] = n;
	}
}

static void sim_free(void)
{
	for (int n = 0; n < NN; n++)
		for (int f = 0; f < NF; f++) {
			ix_repl_destroy(S.node[n].r[f].core);
			cm_merkle_free(S.node[n].r[f].mk);
			free(S.node[n].r[f].log);
			free(S.node[n].r[f].stage);
		}
	for (int f = 0; f < NF; f++) {
		free(S.vmask[f]);
		free(S.vroot[f]);
	}
	free(S.pool);
}

static void sim_init(uint64_t seed, int tr)
{
	memset(&S, 0, sizeof(S));
	S.trace = tr;
	S.seed = seed;
	rng_state = seed;
	S.pool = calloc(POOL, sizeof(struct pkt));
	for (int f = 0; f < NF; f++) {
		S.vmask[f] = calloc(LOG_MAX + 1, 1);
		S.vroot[f] = calloc(LOG_MAX + 1, CM_HASH_BYTES);
		pick_members(f);
	}
	S.loss = (uint32_t)below(4) * 30000;
	S.delay_jitter = (uint32_t)below(4) * 15;
	S.kill = (uint32_t)below(4) * 1500;
	S.part = (uint32_t)below(3) * 3000;
	S.write_rate = 150000 + (uint32_t)below(400000);
	S.search_rate = 100000;
	S.feed_ms = 20 + (uint32_t)below(80);
	S.vote_ms = 20 + (uint32_t)below(150);
	S.gw_ms = (uint32_t)below(150);
	if (below(2))
		S.seal_at = 500 + below(2500);
	else
		S.split_size = 16 + below(64);
	S.gw.nbase = 1;
	S.gw.n = NF;
	/* half the schedules have a parent replica that lies to fetches */
	S.liar = -1;
	S.page = 2 + (uint32_t)below(PAGE_MAX - 1);
	if (below(2)) {
		S.liar = S.member[0][below(NR)];
		S.lie = 1 + (int)below(LIE_N - 1);
	}
	struct lfrag *p = &S.led[0];
	p->present = 1;
	p->cell = cm_cell_root(0);
	p->live = 1;
	p->cfg.epoch = 1;
	p->cfg.n = NR;
	p->cfg.primary = (uint32_t)below(NR);
	for (int n = 0; n < NN; n++) {
		struct node *nd = &S.node[n];
		node_pk(n, nd->pk);
		nd->up = 1;
		for (int f = 0; f < NF; f++) {
			nd->r[f].node = n;
			nd->r[f].frag = f;
			nd->r[f].log = calloc(LOG_MAX, sizeof(struct dentry));
			nd->r[f].stage = calloc(LOG_MAX, sizeof(struct dentry));
			cm_merkle_new(&nd->r[f].mk, &cm_merkle_blake2b);
		}
	}
	for (int i = 0; i < NR; i++)
		memcpy(p->cfg.replicas[i], S.node[S.member[0][i]].pk, CM_PK_BYTES);
	gw_refresh();
	for (int n = 0; n < NN; n++)
		feed(n);
}

/* The end: the parent retired, each child's committed log holds exactly
 * the acknowledged ids of its cell, each once. */
static void check_end(void)
{
	if (S.led[0].phase != CM_PHASE_RETIRED) {
		fail("end: the parent is %s, not retired", S.led[0].phase == CM_PHASE_SPLIT ? "split" : "not split");
		return;
	}
	for (int f = 1; f < NF; f++) {
		const struct lfrag *l = &S.led[f];
		int holders = 0;
		for (int i = 0; i < NR; i++) {
			const struct rep *r = &S.node[S.member[f][i]].r[f];
			uint8_t root[CM_HASH_BYTES];
			if (r->size >= l->commit_size && cm_merkle_root(r->mk, l->commit_size, root) == CM_OK &&
			    !memcmp(root, l->commit_root, 32))
				holders++;
		}
		if (holders < NR / 2 + 1)
			fail("end: fragment %d's committed root is on %d replicas", f, holders);
	}
	for (uint32_t k = 0; k < S.nw; k++) {
		if (!S.w[k].acked)
			continue;
		for (int f = 1; f < NF; f++) {
			const struct lfrag *l = &S.led[f];
			int pn = S.member[f][l->cfg.primary];
			const struct rep *r = &S.node[pn].r[f];
			int in = cm_cell_contains(&l->cell, S.w[k].id, 1);
			int has = find(r, l->commit_size < r->size ? l->commit_size : r->size, S.w[k].id);
			if (in && !has)
				fail("end: acknowledged write %u is not in fragment %d's committed log", k, f);
			if (!in && find(r, r->size, S.w[k].id))
				fail("end: write %u is in fragment %d, outside its cell", k, f);
		}
	}
}

static int run(uint64_t seed, int tr)
{
	sim_init(seed, tr);
	while (S.now < SAFETY_MS && !S.failed)
		step(1);
	if (S.led[0].phase == CM_PHASE_SERVING) /* split_size not reached: the owner splits */
		seal();
	while (S.now < SAFETY_MS + LIVE_MS && !S.failed && S.led[0].phase != CM_PHASE_RETIRED)
		step(0);
	/* the writes still waiting finish, the last roots commit */
	uint64_t until = S.now + 1500;
	while (S.now < until && !S.failed)
		step(0);
	if (!S.failed)
		check_end();
	if (S.failed)
		printf("# seed %" PRIu64 ": %s\n", seed, S.why);
	int rc = S.failed;
	sim_free();
	return rc;
}

/* Each known-bad rule is caught by some schedule. */
static void test_bugs_caught(void)
{
	static const char *const names[] = {"", "seal", "gate", "early", "cell", "root"};
	for (int b = BUG_SEAL; b <= BUG_ROOT; b++) {
		uint64_t caught = 0, s;
		bug = b;
		for (s = 1; s <= 400 && !caught; s++)
			caught += run(s, 0) != 0;
		printf("# MURI_SIM_BUG=%s caught by seed %" PRIu64 "\n", names[b], caught ? s - 1 : 0);
		TAP_CHECK(caught);
	}
	bug = BUG_NONE;
}

static void test_schedules(void)
{
	const char *one = getenv("MURI_SIM_SEED"), *ns = getenv("MURI_SIM_SEEDS");
	int tr = getenv("MURI_SIM_TRACE") != NULL;
	uint64_t n = ns ? strtoull(ns, NULL, 10) : DEFAULT_SEEDS, bad = 0, acks = 0, kills = 0, done = 0, fo = 0;
	uint64_t fetched = 0, faults[IXF_NFAULTS] = {0};
	if (one) {
		TAP_EQ(run(strtoull(one, NULL, 10), tr), 0);
		return;
	}
	for (uint64_t s = 1; s <= n; s++) {
		if (run(s, 0))
			bad++;
		acks += S.acks;
		kills += S.kills;
		done += S.searches_done;
		fo += S.failovers;
		fetched += S.fetched;
		for (int i = 0; i < IXF_NFAULTS; i++)
			faults[i] += S.fetch_faults[i];
		if (bad >= 5)
			break;
	}
	printf("# %" PRIu64 " schedules: %" PRIu64 " acknowledged writes, %" PRIu64 " kills, %" PRIu64
	       " failovers, %" PRIu64 " searches checked\n", n, acks, kills, fo, done);
	printf("# %" PRIu64 " halves derived by fetching; pages refused: %" PRIu64 " unreachable, %" PRIu64
	       " short, %" PRIu64 " bad, %" PRIu64 " root\n", fetched, faults[IXF_UNREACHABLE], faults[IXF_SHORT],
	       faults[IXF_BAD], faults[IXF_ROOT]);
	TAP_EQ(bad, 0);
	TAP_CHECK(acks > n * 20 && done > n * 5);
	/* every way of lying was met and caught */
	TAP_CHECK(n < 50 || (fetched > n / 4 && faults[IXF_SHORT] && faults[IXF_BAD] && faults[IXF_ROOT]));
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	const char *b = getenv("MURI_SIM_BUG");
	if (b) {
		bug = !strcmp(b, "seal") ? BUG_SEAL : !strcmp(b, "gate") ? BUG_GATE : !strcmp(b, "early") ? BUG_EARLY
			: !strcmp(b, "cell") ? BUG_CELL : !strcmp(b, "root") ? BUG_ROOT : BUG_NONE;
		TAP_RUN(test_schedules);
		return tap_done();
	}
	TAP_RUN(test_schedules);
	TAP_RUN(test_bugs_caught);
	return tap_done();
}
