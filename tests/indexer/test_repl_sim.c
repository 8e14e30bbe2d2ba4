/* Tests of the replication core (services/indexer/ix_repl): deterministic
 * cases, then seeded simulations of 3-5 replicas of one fragment and a
 * model of the ledger as configuration manager, in the manner of
 * TigerBeetle's VOPR: one seed drives everything and picks its own fault
 * rates (delay, loss, duplication, reordering, symmetric and one-way
 * partitions, a primary cut off but alive, kills and restarts from exactly
 * what was persisted) and an adversary (forged signatures, appends from
 * non-primaries and old-epoch primaries, replays). Invariants are checked
 * after every step; then the network heals and the replicas must converge.
 * Membership: a world of up to NMAX nodes, n of them the replica set and
 * the others spares; a primary reports a backup silent for drop_ms and the
 * ledger model replaces it with a spare (a fresh node, or one dropped before
 * with its stale log) at epoch + 1; the spare must catch up, and a majority
 * of the new set must hold every acknowledged write when it is committed.
 * Hand-off: in some schedules the ledger marks the current primary leaving
 * (an indexer that unstaked); its core then hands the role over
 * (ix_repl_handoff: no more writes, ship until a backup that stays holds the
 * whole log, give the epoch up) and the ledger model never picks a leaving
 * replica while one that stays reported the same log; without one it waits
 * until the hand-over's deadline, after which the leaver may be picked by
 * the ordinary rule. Every commit checks that the new primary holds every
 * write acknowledged at QUORUM.
 * MURI_SIM_SEEDS sets the number of schedules (default 2000),
 * MURI_SIM_SEED=<n> replays one, MURI_SIM_TRACE=1 prints its events, and
 * MURI_SIM_BUG=pick|longest|nosig|clock|handoff runs with a known-bad ledger rule
 * (the configurer's choice; the longest log regardless of its last epoch;
 * during a hand-off the first reporter that stays, whatever its log),
 * without signature checks, or with a cut-off primary whose clock stops (so
 * its lease never lapses), to show the invariants catch what they guard. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "ix_repl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NMAX 5
#define ADV NMAX                /* the adversary's node id */
#define LEDGER (NMAX + 1)       /* the ledger's node id */
#define NODES (NMAX + 2)
#define TICK_MS 10
#define BATCH 32
#define DATA_BYTES 24           /* write id, seq, epoch */
#define LOG_MAX 2048            /* entries per log */
#define POOL 2048               /* packets in flight */
#define WRITES_MAX 1024
#define EPOCHS_MAX 512
#define CAPTURE 64              /* appends the adversary remembers */
#define SAFETY_MS 8000
#define LIVE_MS 9000
#define QUIET_MS 3000           /* no writes at the end: replicas must converge */
#define DEFAULT_SEEDS 2000

/* ---- randomness and fake signatures ------------------------------------------ */

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

/* probability in parts per million */
static int chance(uint32_t ppm)
{
	return below(1000000) < ppm;
}

static uint8_t FRAG[CM_HASH_BYTES] = {0x66, 0x72};

static void node_pk(int i, uint8_t pk[CM_PK_BYTES])
{
	for (int k = 0; k < 4; k++) {
		uint64_t w = mix64(0x706b ^ ((uint64_t)i << 8) ^ (uint64_t)k);
		memcpy(pk + 8 * k, &w, 8);
	}
}

/* A keyed tag per node: only code holding node i's "secret" (the sim on
 * behalf of node i, or the adversary for its own) can make node i's. */
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
	h = mix64(h);
	memcpy(sig + 8, &h, 8);
}

/* ---- the simulated world ------------------------------------------------------ */

struct dentry {
	uint64_t seq, epoch;
	uint8_t leaf[CM_HASH_BYTES];
	uint8_t data[DATA_BYTES];
};

struct node {
	int id;
	uint8_t pk[CM_PK_BYTES];
	struct dentry *log;       /* the disk: survives kills */
	uint64_t size;
	cm_merkle *mk;
	ix_repl_persist st;       /* the disk */
	int has_st;
	ix_repl *core;            /* NULL while down */
	uint64_t up_at;           /* restart time while down */
	int root_valid;
	uint8_t root[CM_HASH_BYTES];
	uint32_t clock_skew;      /* ms this node's clock is behind */
	uint64_t frozen_at;       /* MURI_SIM_BUG=clock: the clock stopped here (0: runs) */
	uint64_t sig_epoch, sig_size; /* the largest signable prefix seen in sig_epoch, and its root */
	uint8_t sig_root[CM_HASH_BYTES];
	uint64_t ntrunc, sig_ntrunc;  /* truncations, and how many the last check saw */
};

enum pkt_kind { PK_MSG = 1, PK_FAILOVER = 2, PK_FEED = 3, PK_DROP = 4 };

struct pkt {
	int used;
	uint64_t at;
	int from, to, origin;     /* origin: who really made it */
	int kind;
	ix_repl_msg m;
	struct dentry ents[BATCH];
	ix_repl_failover f;
	ix_repl_config cfg;
	uint64_t commit_size;
	uint8_t commit_root[CM_HASH_BYTES];
	uint64_t drop_epoch;      /* PK_DROP: the epoch and the backup */
	uint8_t drop_pk[CM_PK_BYTES];
};

struct write {
	int node;
	uint64_t epoch, first, end;
	int level;
	uint8_t leaf[3][CM_HASH_BYTES];
};

struct acked_slot {
	int set;
	uint8_t leaf[CM_HASH_BYTES];
};

typedef struct sim {
	uint64_t seed;
	int bug_pick, bug_nosig, bug_longest, bug_clock, bug_handoff;
	int trace;
	int direct;                   /* clients write only to the ledger's primary */
	uint64_t now;
	uint32_t n;                   /* replicas in a configuration */
	uint32_t world;               /* nodes 0..world-1 (>= n): the others are spares */
	uint32_t drop_ms;             /* the primaries' drop_ms (0: no drops) */
	uint32_t root_every, root_ms; /* the primaries' naming of root sizes */
	uint32_t root_hold_ms;        /* ... and how long a named size not committed yet stays named */
	struct node node[NMAX + 1];   /* + the adversary's identity */
	struct pkt *pool;
	/* fault rates, ppm */
	uint32_t loss, dup, kill, adv, write_rate, part_rate;
	uint32_t delay_min, delay_jitter;
	uint32_t lease_ms, suspect_ms, heartbeat_ms, feed_ms;
	uint32_t start_grace_ms;      /* a backup's extra wait for a primary silent since the epoch began */
	int blocked[NODES][NODES];
	int cut_primary;              /* node id cut off from replicas and ledger, -1 */
	uint32_t handoff_rate;        /* ppm per tick: the ledger marks the primary leaving */
	int leaving;                  /* the node marked leaving, -1 */
	uint64_t leaving_until;       /* the mark lapses then (the hand-over's deadline) */
	/* the ledger model */
	ix_repl_config cfg;
	int primary_of[EPOCHS_MAX];
	int by_drop[EPOCHS_MAX];      /* the epoch replaced a backup; the primary stayed */
	ix_repl_failover reports[IX_REPL_MAX];
	int nreports;
	uint64_t commit_size;
	uint8_t commit_root[CM_HASH_BYTES];
	uint64_t last_feed, last_commit;
	/* clients and the oracle */
	struct write w[WRITES_MAX];
	uint32_t nw;
	struct acked_slot acked[LOG_MAX];
	int acker_of[EPOCHS_MAX];
	uint64_t acks_q, acks_one, last_q_ack;
	/* adversary */
	struct pkt capture[CAPTURE];
	uint32_t ncapture;
	/* the message being delivered */
	int deliver_origin, delivering;
	int writing, writer;          /* a client write's ix_repl_write runs on node writer */
	/* results */
	int failed;
	char why[512];
	uint64_t failovers, kills, msgs, adv_moves, truncs, drops, handoffs;
	uint64_t during_append;       /* messages delivered to a primary inside its client write's append */
} sim;

static int sim_drops; /* the random schedules replace silent backups */
static int64_t sim_grace = -1; /* >= 0: every node's start_grace_ms, not the seed's */

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
	for (int i = 0; i <= NMAX; i++)
		if (memcmp(S.node[i].pk, pk, CM_PK_BYTES) == 0)
			return i;
	return -1;
}

static int majority(void)
{
	return (int)S.n / 2 + 1;
}

/* The node holding replica index i of the ledger's configuration. */
static int cfg_node(uint32_t i)
{
	return node_of_pk(S.cfg.replicas[i]);
}

static int primary_node(void)
{
	return cfg_node(S.cfg.primary);
}

static int cfg_index(int node)
{
	for (uint32_t i = 0; i < S.cfg.n; i++)
		if (memcmp(S.cfg.replicas[i], S.node[node].pk, CM_PK_BYTES) == 0)
			return (int)i;
	return -1;
}

/* Whether node's log holds every write acknowledged so far. */
static int holds_acked(int node)
{
	struct node *p = &S.node[node];
	for (uint64_t s = 0; s < LOG_MAX; s++)
		if (S.acked[s].set && (s >= p->size || memcmp(p->log[s].leaf, S.acked[s].leaf, CM_HASH_BYTES) != 0))
			return 0;
	return 1;
}

/* ---- a node's disk ---------------------------------------------------------- */

static const uint8_t *node_root(struct node *nd)
{
	if (!nd->root_valid) {
		cm_merkle_root(nd->mk, nd->size, nd->root);
		nd->root_valid = 1;
	}
	return nd->root;
}

static void make_data(uint8_t data[DATA_BYTES], uint64_t id, uint64_t seq, uint64_t epoch)
{
	memcpy(data, &id, 8);
	memcpy(data + 8, &seq, 8);
	memcpy(data + 16, &epoch, 8);
}

/* ---- io callbacks (ctx: the node) --------------------------------------------- */

static uint64_t io_log_size(void *ctx)
{
	return ((struct node *)ctx)->size;
}

static int io_log_entry(void *ctx, uint64_t seq, ix_repl_entry *out)
{
	struct node *nd = ctx;
	if (seq >= nd->size)
		return CM_ERR_RANGE;
	out->seq = seq;
	out->epoch = nd->log[seq].epoch;
	memcpy(out->leaf, nd->log[seq].leaf, CM_HASH_BYTES);
	out->data = nd->log[seq].data;
	out->len = DATA_BYTES;
	return 0;
}

static int io_log_leaf(void *ctx, uint64_t seq, uint8_t out[CM_HASH_BYTES])
{
	struct node *nd = ctx;
	if (seq >= nd->size)
		return CM_ERR_RANGE;
	memcpy(out, nd->log[seq].leaf, CM_HASH_BYTES);
	return 0;
}

static int io_log_read(void *ctx, uint64_t from, uint32_t max, ix_repl_entry *out, uint32_t *n)
{
	struct node *nd = ctx;
	uint32_t k = 0;
	for (uint64_t s = from; s < nd->size && k < max; s++, k++)
		io_log_entry(ctx, s, &out[k]);
	*n = k;
	return 0;
}

static int io_log_root(void *ctx, uint64_t size, uint8_t out[CM_HASH_BYTES])
{
	struct node *nd = ctx;
	if (size > nd->size)
		return CM_ERR_RANGE;
	if (size == nd->size) {
		memcpy(out, node_root(nd), CM_HASH_BYTES);
		return 0;
	}
	return cm_merkle_root(nd->mk, size, out);
}

static void deliver_due_to(int to);

static int io_log_append(void *ctx, const ix_repl_entry *e, uint32_t n)
{
	struct node *nd = ctx;
	if (nd->size + n > LOG_MAX)
		return CM_ERR_TOOBIG;
	if (S.delivering) {
		/* records only ever come from the ledger's primary of the epoch */
		const ix_repl_config *c = ix_repl_config_get(nd->core);
		int want = c->epoch < EPOCHS_MAX ? S.primary_of[c->epoch] : -2;
		if (S.deliver_origin != want)
			fail("node %d appended records from node %d, not the primary %d of epoch %" PRIu64, nd->id,
			     S.deliver_origin, want, c->epoch);
	}
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].seq != nd->size || e[i].len != DATA_BYTES) {
			fail("node %d: append out of order", nd->id);
			return CM_ERR_RANGE;
		}
		if (nd->size && e[i].epoch < nd->log[nd->size - 1].epoch)
			fail("node %d: epochs decrease in the log", nd->id);
		struct dentry *d = &nd->log[nd->size];
		d->seq = e[i].seq;
		d->epoch = e[i].epoch;
		memcpy(d->leaf, e[i].leaf, CM_HASH_BYTES);
		memcpy(d->data, e[i].data, DATA_BYTES);
		cm_merkle_append_hash(nd->mk, d->leaf);
		nd->size++;
	}
	nd->root_valid = 0;
	/* a client write's append may let other calls in while it goes to disk
	 * (ix_repl_io): deliver what is due to this node before it returns */
	if (S.writing && S.writer == nd->id && chance(300000)) {
		S.writing = 0;
		deliver_due_to(nd->id);
		S.writing = 1;
	}
	return 0;
}

static int io_log_truncate(void *ctx, uint64_t size)
{
	struct node *nd = ctx;
	if (size > nd->size)
		return CM_ERR_RANGE;
	if (size < nd->st.floor)
		fail("node %d truncates to %" PRIu64 " below its committed floor %" PRIu64, nd->id, size, nd->st.floor);
	for (uint64_t s = size; s < nd->size; s++)
		if (S.acked[s].set && memcmp(S.acked[s].leaf, nd->log[s].leaf, CM_HASH_BYTES) == 0)
			fail("node %d truncates an acknowledged write at seq %" PRIu64, nd->id, s);
	trace("node %d truncates %" PRIu64 " -> %" PRIu64, nd->id, nd->size, size);
	S.truncs++;
	nd->ntrunc++;
	cm_merkle_truncate(nd->mk, size);
	nd->size = size;
	nd->root_valid = 0;
	return 0;
}

static int io_persist(void *ctx, const ix_repl_persist *st)
{
	struct node *nd = ctx;
	if (st->floor > nd->st.floor) {
		uint8_t r[CM_HASH_BYTES];
		if (st->floor > nd->size || cm_merkle_root(nd->mk, st->floor, r) != CM_OK)
			fail("node %d: floor %" PRIu64 " beyond its log", nd->id, st->floor);
		else if (st->floor == S.commit_size && memcmp(r, S.commit_root, CM_HASH_BYTES) != 0)
			fail("node %d: floor at a root the ledger did not commit", nd->id);
	}
	if (nd->has_st && st->cfg.epoch < nd->st.cfg.epoch)
		fail("node %d: persisted epoch goes down", nd->id);
	nd->st = *st;
	nd->has_st = 1;
	return 0;
}

static uint64_t delay(void)
{
	return S.delay_min + below(S.delay_jitter + 1);
}

static struct pkt *pkt_new(int from, int to, int origin, int kind)
{
	for (int tries = 0; tries < 4; tries++) {
		struct pkt *p = &S.pool[below(POOL)];
		if (!p->used) {
			memset(p, 0, offsetof(struct pkt, ents));
			p->used = 1;
			p->from = from;
			p->to = to;
			p->origin = origin;
			p->kind = kind;
			p->at = S.now + delay();
			return p;
		}
	}
	return NULL; /* the network is full: dropped */
}

static void copy_msg(struct pkt *p, const ix_repl_msg *m)
{
	p->m = *m;
	if (m->type == IX_REPL_APPEND) {
		for (uint32_t i = 0; i < m->u.append.n; i++) {
			const ix_repl_entry *e = &m->u.append.entries[i];
			p->ents[i].seq = e->seq;
			p->ents[i].epoch = e->epoch;
			memcpy(p->ents[i].leaf, e->leaf, CM_HASH_BYTES);
			memcpy(p->ents[i].data, e->data, DATA_BYTES);
		}
		p->m.u.append.entries = NULL;
	}
}

static int link_up(int from, int to)
{
	return !S.blocked[from][to];
}

static void net_send(int from, int to, int origin, const ix_repl_msg *m)
{
	S.msgs++;
	if (!link_up(from, to) || chance(S.loss))
		return;
	int copies = chance(S.dup) ? 2 : 1;
	for (int c = 0; c < copies; c++) {
		struct pkt *p = pkt_new(from, to, origin, PK_MSG);
		if (!p)
			return;
		copy_msg(p, m);
		if (m->type == IX_REPL_APPEND && (S.ncapture < CAPTURE || chance(100000)))
			S.capture[S.ncapture < CAPTURE ? S.ncapture++ : below(CAPTURE)] = *p;
	}
}

static void io_send(void *ctx, const uint8_t to[CM_PK_BYTES], const ix_repl_msg *m)
{
	struct node *nd = ctx;
	int t = node_of_pk(to);
	if (t < 0 || t >= (int)S.world)
		return;
	net_send(nd->id, t, nd->id, m);
}

static void io_ledger_submit(void *ctx, const ix_repl_failover *f)
{
	struct node *nd = ctx;
	trace("node %d asks for failover of epoch %" PRIu64 " size %" PRIu64 " last_epoch %" PRIu64, nd->id,
	      f->epoch, f->size, f->last_epoch);
	if (!link_up(nd->id, LEDGER) || chance(S.loss))
		return;
	struct pkt *p = pkt_new(nd->id, LEDGER, nd->id, PK_FAILOVER);
	if (p)
		p->f = *f;
}

static void io_ledger_drop(void *ctx, uint64_t epoch, const uint8_t pk[CM_PK_BYTES])
{
	struct node *nd = ctx;
	trace("node %d asks to drop node %d in epoch %" PRIu64, nd->id, node_of_pk(pk), epoch);
	if (!link_up(nd->id, LEDGER) || chance(S.loss))
		return;
	struct pkt *p = pkt_new(nd->id, LEDGER, nd->id, PK_DROP);
	if (p) {
		p->drop_epoch = epoch;
		memcpy(p->drop_pk, pk, CM_PK_BYTES);
	}
}

/* Whether every epoch after epoch up to the ledger's replaced a backup and
 * kept node as primary: its acknowledgements in epoch are then still on a
 * majority of the current set (the core stops counting a backup once it
 * asks for its replacement). */
static int kept_primary(uint64_t epoch, int node)
{
	for (uint64_t e = epoch + 1; e <= S.cfg.epoch; e++)
		if (e >= EPOCHS_MAX || !S.by_drop[e] || S.primary_of[e] != node)
			return 0;
	return 1;
}

static void io_write_done(void *ctx, uint64_t token, int rc, uint64_t first, uint64_t end, int level)
{
	struct node *nd = ctx;
	if (token >= S.nw)
		return fail("unknown write token");
	struct write *w = &S.w[token];
	if (level < 0)
		return; /* nothing promised */
	if (rc != CM_OK && rc != CM_ERR_TIMEOUT)
		return fail("write %" PRIu64 ": a level with rc %d", token, rc);
	if (first != w->first || end != w->end)
		fail("write %" PRIu64 " acknowledged for another range", token);
	if (rc != CM_OK && level >= IX_REPL_QUORUM)
		goto durable; /* held by a majority: survives whatever the ledger did since */
	if (w->epoch != S.cfg.epoch && !kept_primary(w->epoch, nd->id))
		fail("node %d acknowledged a write in epoch %" PRIu64 " while the ledger is at %" PRIu64, nd->id, w->epoch,
		     S.cfg.epoch);
	if (w->epoch < EPOCHS_MAX) {
		if (S.acker_of[w->epoch] >= 0 && S.acker_of[w->epoch] != nd->id)
			fail("two nodes acknowledged writes in epoch %" PRIu64, w->epoch);
		S.acker_of[w->epoch] = nd->id;
	}
	if (rc == CM_OK && level < w->level)
		fail("write acknowledged below its level");
durable:
	trace("node %d acks write %" PRIu64 " [%" PRIu64 ",%" PRIu64 ") rc %d level %d", nd->id, token, first, end,
	      rc, level);
	if (level >= IX_REPL_QUORUM) {
		S.acks_q++;
		S.last_q_ack = S.now;
		for (uint64_t s = first; s < end; s++) {
			struct acked_slot *a = &S.acked[s];
			if (a->set && memcmp(a->leaf, w->leaf[s - first], CM_HASH_BYTES) != 0)
				fail("two acknowledged writes at seq %" PRIu64, s);
			a->set = 1;
			memcpy(a->leaf, w->leaf[s - first], CM_HASH_BYTES);
		}
	} else {
		S.acks_one++;
	}
}

static void io_sign(void *ctx, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	fake_sign(((struct node *)ctx)->id, d, sig);
}

static int verify_any(const uint8_t pk[CM_PK_BYTES], const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES])
{
	if (S.bug_nosig)
		return 0;
	int who = node_of_pk(pk);
	if (who < 0)
		return CM_ERR_VERIFY;
	uint8_t want[CM_SIG_BYTES];
	fake_sign(who, d, want);
	return memcmp(want, sig, CM_SIG_BYTES) == 0 ? 0 : CM_ERR_VERIFY;
}

static int io_verify(void *ctx, const uint8_t pk[CM_PK_BYTES], const uint8_t d[CM_HASH_BYTES],
		     const uint8_t sig[CM_SIG_BYTES])
{
	(void)ctx;
	return verify_any(pk, d, sig);
}

static uint64_t io_now(void *ctx)
{
	struct node *nd = ctx;
	uint64_t t = nd->frozen_at ? nd->frozen_at : S.now;
	return t + 100000 - nd->clock_skew;
}

static void node_start(struct node *nd)
{
	ix_repl_opts o;
	memset(&o, 0, sizeof(o));
	memcpy(o.fragment, FRAG, CM_HASH_BYTES);
	memcpy(o.self, nd->pk, CM_PK_BYTES);
	o.batch = BATCH;
	o.max_pending = 64;
	o.heartbeat_ms = S.heartbeat_ms;
	o.lease_ms = S.lease_ms;
	o.suspect_ms = S.suspect_ms;
	o.start_grace_ms = S.start_grace_ms;
	o.drop_ms = S.drop_ms;
	o.root_every = S.root_every;
	o.root_ms = S.root_ms;
	o.root_hold_ms = S.root_hold_ms;
	ix_repl_io io = {
		.ctx = nd, .log_size = io_log_size, .log_entry = io_log_entry, .log_read = io_log_read,
		.log_root = io_log_root, .log_append = io_log_append, .log_truncate = io_log_truncate,
		/* odd nodes compare held entries by leaf alone, even ones read them */
		.log_leaf = nd->id % 2 ? io_log_leaf : NULL,
		.persist = io_persist, .send = io_send, .ledger_submit = io_ledger_submit,
		.ledger_drop = io_ledger_drop,
		.write_done = io_write_done, .sign = io_sign, .verify = io_verify, .now_ms = io_now,
	};
	if (ix_repl_create(&o, &io, nd->has_st ? &nd->st : NULL, &nd->core) != CM_OK)
		fail("node %d cannot start", nd->id);
}

/* ---- the ledger model -------------------------------------------------------- */

static void ledger_commit_failover(void)
{
	int pick;
	if (S.bug_pick) { /* the old way: whoever configures names a replica (here: the first that reported) */
		pick = node_of_pk(S.reports[0].sender);
	} else if (S.bug_longest) { /* the longest log, whatever its last epoch */
		pick = node_of_pk(S.reports[0].sender);
		uint64_t best = S.reports[0].size;
		for (int i = 1; i < S.nreports; i++)
			if (S.reports[i].size > best) {
				best = S.reports[i].size;
				pick = node_of_pk(S.reports[i].sender);
			}
	} else {
		pick = ix_repl_choose_primary(&S.cfg, S.reports, (size_t)S.nreports);
	}
	int from_leaver = S.leaving >= 0 && primary_node() == S.leaving;
	if (pick >= 0 && S.leaving >= 0 && !S.bug_pick && !S.bug_longest && cfg_node((uint32_t)pick) == S.leaving) {
		/* never the leaver: one that stays and reported the same log, else wait */
		const ix_repl_failover *best = NULL;
		for (int i = 0; i < S.nreports && !best; i++)
			if (node_of_pk(S.reports[i].sender) == S.leaving)
				best = &S.reports[i];
		pick = -1;
		for (int i = 0; i < S.nreports && best; i++) {
			int who = node_of_pk(S.reports[i].sender);
			if (who == S.leaving || cfg_index(who) < 0)
				continue;
			if (S.bug_handoff || (S.reports[i].last_epoch == best->last_epoch && S.reports[i].size == best->size &&
					      memcmp(S.reports[i].root, best->root, CM_HASH_BYTES) == 0)) {
				pick = cfg_index(who);
				break;
			}
		}
		if (pick < 0 && S.now < S.leaving_until) {
			trace("ledger waits: the longest log is the leaving node %d's", S.leaving);
			return;
		}
		if (pick < 0) /* past the deadline: the ordinary rule */
			pick = cfg_index(S.leaving);
	}
	if (pick < 0)
		return;
	if (S.bug_pick || S.bug_longest) /* those picked a node */
		pick = cfg_index(pick);
	if (pick < 0)
		return;
	S.cfg.epoch++;
	S.cfg.primary = (uint32_t)pick;
	int pn = primary_node();
	if (S.cfg.epoch < EPOCHS_MAX)
		S.primary_of[S.cfg.epoch] = pn;
	S.nreports = 0;
	S.failovers++;
	if (from_leaver && pn != S.leaving) {
		S.handoffs++;
		S.leaving = -1; /* handed over: the rest of the hand-over is the ledger's (lg_st_handover.c) */
	}
	trace("ledger commits epoch %" PRIu64 " primary %d", S.cfg.epoch, pn);
	/* the new primary's log holds every write acknowledged at QUORUM */
	if (!holds_acked(pn))
		fail("epoch %" PRIu64 ": the new primary %d lacks an acknowledged write", S.cfg.epoch, pn);
}

/* The primary of the current epoch asks that a backup be replaced: a spare
 * (a node outside the set, chosen by the seed) takes its index at epoch + 1,
 * the primary stays. A majority of the new set must hold every write
 * acknowledged so far. Without a spare the request is refused. */
static void ledger_on_drop(int from, uint64_t epoch, const uint8_t pk[CM_PK_BYTES])
{
	int d = node_of_pk(pk), di = d >= 0 ? cfg_index(d) : -1;
	if (epoch != S.cfg.epoch || from != primary_node() || di < 0 || d == from)
		return;
	int spares[NMAX], ns = 0;
	for (uint32_t i = 0; i < S.world; i++)
		if (cfg_index((int)i) < 0)
			spares[ns++] = (int)i;
	if (!ns)
		return;
	int sp = spares[below((uint64_t)ns)];
	memcpy(S.cfg.replicas[di], S.node[sp].pk, CM_PK_BYTES);
	S.cfg.epoch++;
	if (S.cfg.epoch < EPOCHS_MAX) {
		S.primary_of[S.cfg.epoch] = from;
		S.by_drop[S.cfg.epoch] = 1;
	}
	S.nreports = 0;
	S.drops++;
	trace("ledger commits epoch %" PRIu64 ": node %d replaces node %d", S.cfg.epoch, sp, d);
	int have = 0;
	for (uint32_t i = 0; i < S.cfg.n; i++)
		have += holds_acked(cfg_node(i));
	if (have < majority())
		fail("epoch %" PRIu64 ": %d of the new replica set hold every acknowledged write, %d needed", S.cfg.epoch,
		     have, majority());
}

static void ledger_on_failover(const ix_repl_failover *f)
{
	uint8_t d[CM_HASH_BYTES];
	ix_repl_failover_digest(FRAG, f, d);
	int who = node_of_pk(f->sender);
	if (who < 0 || cfg_index(who) < 0 || f->epoch != S.cfg.epoch || verify_any(f->sender, d, f->sig) != 0)
		return;
	int i = 0;
	while (i < S.nreports && memcmp(S.reports[i].sender, f->sender, CM_PK_BYTES) != 0)
		i++;
	if (i < S.nreports && S.leaving < 0) {
		if (S.nreports >= majority())
			ledger_commit_failover();
		return;
	}
	S.reports[i] = *f; /* during a hand-off a later report replaces one (as the ledger's do) */
	if (i == S.nreports)
		S.nreports++;
	if (S.nreports >= majority())
		ledger_commit_failover();
}

/* The ledger commits the largest acknowledged (QUORUM) prefix's root, as
 * the primary signed it. */
static void ledger_commit_root(void)
{
	uint64_t end = 0;
	for (uint64_t s = 0; s < LOG_MAX; s++)
		if (S.acked[s].set)
			end = s + 1;
	struct node *p = &S.node[primary_node()];
	if (end <= S.commit_size || end > p->size)
		return;
	uint8_t r[CM_HASH_BYTES];
	cm_merkle_root(p->mk, end, r);
	S.commit_size = end;
	memcpy(S.commit_root, r, CM_HASH_BYTES);
	trace("ledger commits root at %" PRIu64, end);
}

static void ledger_feed(void)
{
	for (uint32_t i = 0; i < S.world; i++) {
		if (!link_up(LEDGER, (int)i) || chance(S.loss))
			continue;
		struct pkt *p = pkt_new(LEDGER, (int)i, LEDGER, PK_FEED);
		if (!p)
			continue;
		p->cfg = S.cfg;
		p->commit_size = S.commit_size;
		memcpy(p->commit_root, S.commit_root, CM_HASH_BYTES);
	}
}

/* ---- delivery ---------------------------------------------------------------- */

static void deliver_msg(int to, int origin, ix_repl_msg *m, struct dentry *ents)
{
	struct node *nd = &S.node[to];
	if (!nd->core)
		return;
	ix_repl_entry e[BATCH];
	if (m->type == IX_REPL_APPEND) {
		for (uint32_t i = 0; i < m->u.append.n && i < BATCH; i++) {
			e[i].seq = ents[i].seq;
			e[i].epoch = ents[i].epoch;
			memcpy(e[i].leaf, ents[i].leaf, CM_HASH_BYTES);
			e[i].data = ents[i].data;
			e[i].len = DATA_BYTES;
		}
		m->u.append.entries = e;
	}
	uint64_t before = ix_repl_epoch(nd->core);
	S.delivering = m->type == IX_REPL_APPEND;
	S.deliver_origin = origin;
	int rc = ix_repl_on_message(nd->core, m);
	S.delivering = 0;
	if (m->type == IX_REPL_APPEND && rc == CM_OK) {
		int want = m->u.append.epoch < EPOCHS_MAX ? S.primary_of[m->u.append.epoch] : -2;
		if (origin != want || m->u.append.epoch != before)
			fail("node %d accepted an append of epoch %" PRIu64 " from node %d (primary %d)", to,
			     m->u.append.epoch, origin, want);
	}
	m->u.append.entries = NULL;
}

static void deliver(struct pkt *p)
{
	struct node *nd = p->to < NMAX ? &S.node[p->to] : NULL;
	if (!link_up(p->from, p->to) && p->origin != ADV)
		return; /* a partition that came up while it was in flight */
	switch (p->kind) {
	case PK_MSG: deliver_msg(p->to, p->origin, &p->m, p->ents); break;
	case PK_FAILOVER: ledger_on_failover(&p->f); break;
	case PK_DROP: ledger_on_drop(p->origin, p->drop_epoch, p->drop_pk); break;
	case PK_FEED:
		if (nd && nd->core) {
			char err[128];
			uint64_t before = ix_repl_epoch(nd->core);
			int rc = ix_repl_on_config(nd->core, &p->cfg, err, sizeof(err));
			if (rc == CM_OK && p->cfg.epoch > before)
				trace("node %d takes epoch %" PRIu64 " (primary %u)", p->to, p->cfg.epoch, p->cfg.primary);
			if (p->commit_size)
				ix_repl_on_commit_root(nd->core, p->commit_size, p->commit_root);
		}
		break;
	}
}

/* What reaches one node (acks, appends, configurations) within the next
 * 50 ms, delivered now: while its append goes to disk. */
static void deliver_due_to(int to)
{
	for (int i = 0; i < POOL; i++) {
		struct pkt *p = &S.pool[i];
		if (!p->used || p->at > S.now + 50 || p->to != to || (p->kind != PK_MSG && p->kind != PK_FEED))
			continue;
		p->at = UINT64_MAX;
		S.during_append++;
		deliver(p);
		p->used = 0;
	}
}

static void deliver_due(void)
{
	for (int round = 0; round < 4; round++) {
		int any = 0;
		for (int i = 0; i < POOL; i++) {
			struct pkt *p = &S.pool[i];
			if (!p->used || p->at > S.now)
				continue;
			p->at = UINT64_MAX; /* kept (not reused) while delivered */
			deliver(p);
			p->used = 0;
			any = 1;
		}
		if (!any)
			break;
	}
}

/* ---- faults, clients, the adversary ------------------------------------------- */

static void heal(void)
{
	for (int i = 0; i <= NMAX; i++)
		S.node[i].frozen_at = 0;
	memset(S.blocked, 0, sizeof(S.blocked));
	S.cut_primary = -1;
}

static void partition(void)
{
	heal();
	int kind = (int)below(4);
	if (kind == 0)
		return;
	int a = (int)below(S.world);
	if (kind == 1) { /* a primary cut off but alive: clients still reach it */
		a = primary_node();
		S.cut_primary = a;
		if (S.bug_clock) /* and its clock stops (a paused VM): its lease never runs out */
			S.node[a].frozen_at = S.now;
	}
	for (int b = 0; b < NODES; b++) {
		if (b == a || b == ADV)
			continue;
		S.blocked[a][b] = 1;
		if (kind != 3) /* 3: one-way */
			S.blocked[b][a] = 1;
	}
	trace("partition kind %d around node %d", kind, a);
}

static void client_write(void)
{
	if (S.nw >= WRITES_MAX)
		return;
	/* mostly to the ledger's primary, sometimes to anyone who thinks it is one */
	int t = primary_node();
	if (!S.direct && chance(250000))
		t = (int)below(S.world);
	struct node *nd = &S.node[t];
	if (!nd->core || !ix_repl_is_primary(nd->core))
		return;
	uint32_t k = 1 + (uint32_t)below(3);
	if (nd->size + k > LOG_MAX - BATCH)
		return;
	struct write *w = &S.w[S.nw];
	w->node = t;
	w->epoch = ix_repl_epoch(nd->core);
	w->first = nd->size;
	w->end = nd->size + k;
	w->level = (int)below(3);
	uint8_t data[3][DATA_BYTES];
	ix_repl_entry e[3];
	for (uint32_t i = 0; i < k; i++) {
		make_data(data[i], S.nw * 4 + i + 1, w->first + i, w->epoch);
		e[i].seq = w->first + i;
		e[i].epoch = w->epoch;
		e[i].data = data[i];
		e[i].len = DATA_BYTES;
		cm_merkle_blake2b.leaf(w->leaf[i], data[i], DATA_BYTES);
	}
	uint64_t first = 0, token = S.nw++;
	S.writing = 1;
	S.writer = t;
	int rc = ix_repl_write(nd->core, e, k, w->level, io_now(nd) + 200 + below(1500), token, &first);
	S.writing = 0;
	if (rc == CM_OK && memcmp(e[0].leaf, w->leaf[0], CM_HASH_BYTES) != 0)
		fail("the core's leaf differs from the record's");
}

static void adv_sign_append(int as, ix_repl_append *a)
{
	uint8_t d[CM_HASH_BYTES];
	ix_repl_append_digest(FRAG, a, d);
	fake_sign(as, d, a->sig);
}

/* One adversarial move against a random running replica. Every forged
 * message must be refused; replays must be harmless. */
static void adversary(void)
{
	int to = (int)below(S.world);
	if (!S.node[to].core)
		return;
	S.adv_moves++;
	uint64_t cur = S.cfg.epoch;
	int move = (int)below(6);
	struct pkt p;
	memset(&p, 0, offsetof(struct pkt, ents));
	p.origin = ADV;
	ix_repl_append *a = &p.m.u.append;
	p.m.type = IX_REPL_APPEND;
	a->epoch = cur;
	a->n = 1 + (uint32_t)below(4);
	a->prev_size = 0;
	a->ts = S.now;
	a->req = rnd();
	for (uint32_t i = 0; i < a->n; i++) {
		make_data(p.ents[i].data, rnd(), i, cur);
		p.ents[i].seq = i;
		p.ents[i].epoch = cur;
		cm_merkle_blake2b.leaf(p.ents[i].leaf, p.ents[i].data, DATA_BYTES);
	}
	a->primary_size = a->n;
	cm_merkle_blake2b.empty(a->prev_root);
	ix_repl_entry e[BATCH];
	for (uint32_t i = 0; i < a->n; i++) {
		e[i].seq = p.ents[i].seq;
		e[i].epoch = p.ents[i].epoch;
		memcpy(e[i].leaf, p.ents[i].leaf, CM_HASH_BYTES);
		e[i].data = p.ents[i].data;
		e[i].len = DATA_BYTES;
	}
	a->entries = e;
	switch (move) {
	case 0: /* claims to be the primary, signs with its own key */
		memcpy(a->sender, S.node[primary_node()].pk, CM_PK_BYTES);
		adv_sign_append(ADV, a);
		break;
	case 1: /* an outsider, honestly signed */
		memcpy(a->sender, S.node[ADV].pk, CM_PK_BYTES);
		adv_sign_append(ADV, a);
		break;
	case 2: { /* a member that is not the primary (a compromised backup) */
		int b = cfg_node((uint32_t)((S.cfg.primary + 1 + below(S.n - 1)) % S.n));
		memcpy(a->sender, S.node[b].pk, CM_PK_BYTES);
		adv_sign_append(b, a);
		break;
	}
	case 3: { /* an old epoch's primary (compromised), validly signed, to
		   * a replica that has left that epoch */
		uint64_t te = ix_repl_epoch(S.node[to].core);
		if (te < 2)
			return;
		a->epoch = te - 1 - below(te - 1);
		for (uint32_t i = 0; i < a->n; i++)
			e[i].epoch = p.ents[i].epoch = a->epoch;
		memcpy(a->sender, S.node[S.primary_of[a->epoch]].pk, CM_PK_BYTES);
		adv_sign_append(S.primary_of[a->epoch], a);
		break;
	}
	case 4: { /* the primary's real message with its records changed */
		if (!S.ncapture)
			return;
		struct pkt *c = &S.capture[below(S.ncapture)];
		if (!c->m.u.append.n)
			return;
		p.m = c->m;
		memcpy(p.ents, c->ents, sizeof(p.ents));
		p.ents[0].data[0] ^= 1;
		cm_merkle_blake2b.leaf(p.ents[0].leaf, p.ents[0].data, DATA_BYTES);
		break;
	}
	default: { /* a replay of a real message, of any epoch */
		if (!S.ncapture)
			return;
		struct pkt *c = &S.capture[below(S.ncapture)];
		p.m = c->m;
		memcpy(p.ents, c->ents, sizeof(p.ents));
		p.origin = c->origin;
		break;
	}
	}
	trace("adversary move %d to node %d", move, to);
	if (move >= 4) {
		a->entries = NULL;
		deliver_msg(to, p.origin, &p.m, p.ents);
		return;
	}
	/* forged: must be refused */
	int before = S.failed;
	uint64_t size = S.node[to].size;
	S.delivering = 1;
	S.deliver_origin = ADV;
	int rc = ix_repl_on_message(S.node[to].core, &p.m);
	S.delivering = 0;
	if (!before && rc == CM_OK)
		fail("node %d accepted forged append (move %d)", to, move);
	if (S.node[to].size != size && !S.failed)
		fail("node %d's log changed on a forged append (move %d)", to, move);
}

/* ---- invariants ---------------------------------------------------------------- */

static void check_step(void)
{
	for (uint32_t i = 0; i < S.world; i++) {
		struct node *x = &S.node[i];
		for (uint32_t j = i + 1; j < S.world; j++) {
			struct node *y = &S.node[j];
			if (x->size != y->size || !x->size || x->log[x->size - 1].epoch != y->log[y->size - 1].epoch)
				continue;
			if (memcmp(node_root(x), node_root(y), CM_HASH_BYTES) != 0)
				fail("nodes %u and %u: size %" PRIu64 " ending in the same epoch, different roots", i, j,
				     x->size);
		}
		if (x->st.floor > x->size)
			fail("node %u: floor above the log", i);
		if (x->core) { /* a signable prefix stays as it is for the rest of its epoch */
			uint64_t e = ix_repl_epoch(x->core), sz = ix_repl_signable(x->core);
			uint8_t r[CM_HASH_BYTES];
			uint64_t rs = ix_repl_root_size(x->core);
			if (sz > x->size)
				fail("node %u: signable size %" PRIu64 " above its log %" PRIu64, i, sz, x->size);
			else if (rs > sz)
				fail("node %u: root size %" PRIu64 " above its signable size %" PRIu64, i, rs, sz);
			else if (e == x->sig_epoch && x->sig_size && x->ntrunc != x->sig_ntrunc &&
				 (x->sig_size > x->size || cm_merkle_root(x->mk, x->sig_size, r) != CM_OK ||
				  memcmp(r, x->sig_root, CM_HASH_BYTES) != 0))
				fail("node %u: the root it could sign at %" PRIu64 " in epoch %" PRIu64 " changed", i,
				     x->sig_size, e);
			x->sig_ntrunc = x->ntrunc;
			if (!S.failed && (e != x->sig_epoch || sz > x->sig_size)) {
				x->sig_epoch = e;
				x->sig_size = sz;
				cm_merkle_root(x->mk, sz, x->sig_root);
			}
		}
		if (x->core) {
			ix_repl_stats st;
			ix_repl_stats_get(x->core, &st);
			if (st.floor_refusals)
				fail("node %u was asked to truncate below its floor", i);
		}
	}
}

/* After the network heals and writes stop: every replica holds the
 * primary's log, which holds every acknowledged write. */
static void check_converged(void)
{
	int pn = primary_node();
	struct node *p = &S.node[pn];
	if (!holds_acked(pn))
		return fail("the primary %d lost an acknowledged write", pn);
	for (uint32_t k = 0; k < S.cfg.n; k++) {
		int i = cfg_node(k);
		struct node *x = &S.node[i];
		if (x->size != p->size || memcmp(node_root(x), node_root(p), CM_HASH_BYTES) != 0)
			return fail("no convergence: node %d has %" PRIu64 " entries, the primary %d has %" PRIu64, i,
				    x->size, pn, p->size);
		if (ix_repl_epoch(x->core) != S.cfg.epoch)
			return fail("no convergence: node %d is at epoch %" PRIu64 ", the ledger at %" PRIu64, i,
				    ix_repl_epoch(x->core), S.cfg.epoch);
	}
	if (S.last_q_ack < SAFETY_MS + 1)
		fail("no write was acknowledged at QUORUM after the network healed");
}

/* ---- one schedule ---------------------------------------------------------------- */

static void sim_init(uint64_t seed)
{
	struct pkt *pool = S.pool;
	for (int i = 0; i <= NMAX; i++) {
		ix_repl_destroy(S.node[i].core);
		cm_merkle_free(S.node[i].mk);
		free(S.node[i].log);
	}
	int bp = S.bug_pick, bn = S.bug_nosig, bl = S.bug_longest, bc = S.bug_clock, bh = S.bug_handoff, tr = S.trace;
	memset(&S, 0, sizeof(S));
	S.pool = pool;
	memset(S.pool, 0, sizeof(struct pkt) * POOL);
	S.bug_pick = bp;
	S.bug_nosig = bn;
	S.bug_longest = bl;
	S.bug_clock = bc;
	S.bug_handoff = bh;
	S.trace = tr;
	S.seed = seed;
	rng_state = seed;
	S.n = 3 + (uint32_t)below(3);
	S.world = S.n + (uint32_t)below(3);
	if (S.world > NMAX)
		S.world = NMAX;
	S.loss = (uint32_t)below(4) * 50000;          /* 0..15% */
	S.dup = (uint32_t)below(3) * 30000;           /* 0..6% */
	S.delay_min = 1 + (uint32_t)below(10);
	S.delay_jitter = (uint32_t)below(4) * 20;     /* up to 60 ms: reordering */
	S.kill = (uint32_t)below(3) * 1000;           /* per tick */
	S.adv = (uint32_t)below(3) * 20000;
	S.write_rate = 100000 + (uint32_t)below(300000);
	S.part_rate = (uint32_t)below(3) * 2000;
	S.heartbeat_ms = 30 + (uint32_t)below(40);
	S.lease_ms = 150 + (uint32_t)below(150);
	S.suspect_ms = S.lease_ms * 2 + (uint32_t)below(200);
	S.feed_ms = 30 + (uint32_t)below(100);
	S.drop_ms = sim_drops && below(3) ? S.suspect_ms + (uint32_t)below(1000) : 0;
	S.root_every = (uint32_t)below(3) * 8;
	S.root_ms = (uint32_t)below(3) * 200;
	/* from the seed but not its stream, so schedules without a hold stay as they were */
	S.root_hold_ms = (uint32_t)(mix64(seed ^ 0x484f4c44ULL) % 3) * 300;
	S.start_grace_ms = sim_grace >= 0 ? (uint32_t)sim_grace : (uint32_t)(mix64(seed ^ 0x47524143ULL) % 3) * 250;
	S.cut_primary = -1;
	/* from the seed but not its stream, so schedules without hand-offs stay as they were */
	S.handoff_rate = (uint32_t)(mix64(seed ^ 0x4a4e444f4646ULL) % 3) * 1000;
	S.leaving = -1;
	S.leaving_until = 0;
	S.cfg.epoch = 1;
	S.cfg.n = S.n;
	S.cfg.primary = (uint32_t)below(S.n);
	for (int e = 0; e < EPOCHS_MAX; e++) {
		S.primary_of[e] = -1;
		S.acker_of[e] = -1;
	}
	S.primary_of[1] = (int)S.cfg.primary;
	for (int i = 0; i <= NMAX; i++) {
		struct node *nd = &S.node[i];
		nd->id = i;
		node_pk(i, nd->pk);
		nd->log = calloc(LOG_MAX, sizeof(*nd->log));
		cm_merkle_new(&nd->mk, &cm_merkle_blake2b);
		/* clocks drift apart by less than suspect_ms - lease_ms */
		nd->clock_skew = (uint32_t)below((S.suspect_ms - S.lease_ms) / 4 + 1);
	}
	for (uint32_t i = 0; i < S.n; i++)
		memcpy(S.cfg.replicas[i], S.node[i].pk, CM_PK_BYTES);
	for (uint32_t i = 0; i < S.world; i++) {
		node_start(&S.node[i]);
		char err[128];
		if (i < S.n) /* the spares have no configuration yet */
			ix_repl_on_config(S.node[i].core, &S.cfg, err, sizeof(err));
	}
}

static void step(int safety)
{
	deliver_due();
	if (safety) {
		if (chance(S.part_rate))
			partition();
		for (uint32_t i = 0; i < S.world; i++) {
			struct node *nd = &S.node[i];
			int down = 0;
			for (uint32_t j = 0; j < S.world; j++)
				down += !S.node[j].core;
			if (nd->core && down < (int)S.n - 1 && chance(S.kill)) {
				trace("kill node %u", i);
				ix_repl_destroy(nd->core);
				nd->core = NULL;
				nd->up_at = S.now + 100 + below(2000);
				S.kills++;
			}
		}
		if (chance(S.adv))
			adversary();
		if (S.handoff_rate && S.leaving < 0 && primary_node() >= 0 && chance(S.handoff_rate)) {
			S.leaving = primary_node();
			S.leaving_until = S.now + 2000 + below(3000);
			trace("ledger marks node %d (the primary) leaving", S.leaving);
		}
	}
	if (S.leaving >= 0 && S.node[S.leaving].core && ix_repl_is_primary(S.node[S.leaving].core)) {
		uint8_t pk[1][CM_PK_BYTES];
		memcpy(pk[0], S.node[S.leaving].pk, CM_PK_BYTES);
		ix_repl_handoff(S.node[S.leaving].core, ix_repl_epoch(S.node[S.leaving].core),
				(const uint8_t(*)[CM_PK_BYTES])pk, 1);
	}
	for (uint32_t i = 0; i < S.world; i++) {
		struct node *nd = &S.node[i];
		if (!nd->core && S.now >= nd->up_at) {
			trace("restart node %u", i);
			node_start(nd);
		}
	}
	if (S.now < SAFETY_MS + LIVE_MS - QUIET_MS && chance(S.write_rate))
		client_write();
	if (S.now >= S.last_feed + S.feed_ms) {
		S.last_feed = S.now;
		ledger_feed();
	}
	if (S.now >= S.last_commit + 500) {
		S.last_commit = S.now;
		ledger_commit_root();
	}
	for (uint32_t i = 0; i < S.world; i++)
		if (S.node[i].core)
			ix_repl_tick(S.node[i].core);
	check_step();
}

static int run_schedule(uint64_t seed)
{
	sim_init(seed);
	for (; S.now < SAFETY_MS && !S.failed; S.now += TICK_MS)
		step(1);
	heal();
	for (uint32_t i = 0; i < S.world; i++)
		S.node[i].up_at = S.now;
	S.loss = 0;
	S.dup = 0;
	for (; S.now < SAFETY_MS + LIVE_MS && !S.failed; S.now += TICK_MS)
		step(0);
	if (!S.failed)
		check_converged();
	return S.failed;
}

/* ---- deterministic cases ----------------------------------------------------------- */

static void test_config_epochs(void)
{
	sim_init(1);
	struct node *nd = &S.node[0];
	char err[128];
	ix_repl_config c = S.cfg;
	TAP_EQ(ix_repl_on_config(nd->core, &c, err, sizeof(err)), CM_OK); /* the same: fine */
	c.primary = (c.primary + 1) % c.n;
	TAP_EQ(ix_repl_on_config(nd->core, &c, err, sizeof(err)), CM_ERR_STATE); /* same epoch, other primary */
	TAP_CHECK(strstr(err, "epoch: 1 is the current epoch") != NULL);
	c.epoch = 0;
	TAP_EQ(ix_repl_on_config(nd->core, &c, err, sizeof(err)), CM_ERR_INVALID);
	c.epoch = 3;
	TAP_EQ(ix_repl_on_config(nd->core, &c, err, sizeof(err)), CM_OK);
	c.epoch = 2;
	TAP_EQ(ix_repl_on_config(nd->core, &c, err, sizeof(err)), CM_ERR_STATE);
	TAP_CHECK(strstr(err, "older") != NULL);
	TAP_EQ(ix_repl_epoch(nd->core), 3);
	TAP_EQ(nd->st.cfg.epoch, 3); /* persisted before applied */
}

/* Review bug 1: an append of the old epoch that arrives (or was waiting)
 * after the configuration changed must not touch the new primary's log. */
static void test_old_epoch_append_after_config(void)
{
	sim_init(2);
	S.write_rate = 0;
	S.direct = 1;
	int p1 = (int)S.cfg.primary, p2 = (p1 + 1) % (int)S.n;
	/* epoch 1: a write reaches everyone */
	for (int i = 0; i < 20; i++, S.now += TICK_MS)
		step(0);
	client_write();
	uint64_t first_end = S.w[0].end;
	for (int i = 0; i < 50; i++, S.now += TICK_MS)
		step(0);
	TAP_EQ(S.node[p2].size, first_end);
	/* capture an epoch-1 append the old primary sends with a new record */
	S.ncapture = 0;
	client_write();
	for (int i = 0; i < 100 && !S.ncapture; i++) {
		S.now += TICK_MS;
		ix_repl_tick(S.node[p1].core);
	}
	TAP_CHECK(S.ncapture > 0);
	/* the ledger moves to epoch 2 with p2 as primary; everyone learns it
	 * before the old append is delivered */
	memset(S.pool, 0, sizeof(struct pkt) * POOL);
	S.cfg.epoch = 2;
	S.cfg.primary = (uint32_t)p2;
	S.primary_of[2] = p2;
	char err[128];
	for (uint32_t i = 0; i < S.n; i++)
		TAP_EQ(ix_repl_on_config(S.node[i].core, &S.cfg, err, sizeof(err)), CM_OK);
	uint64_t before = S.node[p2].size;
	/* p2 writes in epoch 2 */
	client_write();
	TAP_EQ(S.node[p2].size, before + (S.w[2].end - S.w[2].first));
	uint64_t after = S.node[p2].size;
	/* now the stale append: to the new primary and to a backup */
	for (uint32_t k = 0; k < S.ncapture; k++) {
		struct pkt *c = &S.capture[k];
		if (c->m.u.append.epoch != 1)
			continue;
		for (uint32_t i = 0; i < S.n; i++) {
			if ((int)i == p1)
				continue;
			uint64_t sz = S.node[i].size;
			ix_repl_msg m = c->m;
			deliver_msg((int)i, p1, &m, c->ents);
			TAP_EQ(S.node[i].size, sz);
		}
	}
	TAP_EQ(S.node[p2].size, after);
	TAP_EQ(S.failed, 0);
}

/* A primary cut off from its backups and the ledger, still reached by
 * clients: once its lease lapses it acknowledges nothing, the backups fail
 * over, and every write it took after that is dropped when it rejoins. */
static void test_cut_off_primary(void)
{
	sim_init(3);
	S.trace = getenv("CUT_TRACE") != NULL;
	S.write_rate = 0;
	int p1 = (int)S.cfg.primary;
	for (int i = 0; i < 30; i++, S.now += TICK_MS)
		step(0);
	S.direct = 1;
	for (int i = 0; i < 5; i++) {
		client_write();
		for (int k = 0; k < 10; k++, S.now += TICK_MS)
			step(0);
	}
	TAP_CHECK(S.acks_q + S.acks_one > 0);
	for (int b = 0; b < NODES; b++)
		if (b != p1)
			S.blocked[p1][b] = S.blocked[b][p1] = 1;
	if (S.bug_clock) /* its clock stops too: the lease never lapses */
		S.node[p1].frozen_at = S.now;
	uint64_t acks_before = S.acks_q + S.acks_one;
	uint32_t first_old = S.nw;
	/* clients keep writing to the old primary (level ONE) */
	for (int i = 0; i < 300; i++, S.now += TICK_MS) {
		step(0);
		if (ix_repl_is_primary(S.node[p1].core) && ix_repl_epoch(S.node[p1].core) == 1 && i % 5 == 0) {
			struct node *nd = &S.node[p1];
			struct write *w = &S.w[S.nw];
			uint8_t data[DATA_BYTES];
			make_data(data, 7777 + S.nw, nd->size, 1);
			ix_repl_entry e = {.seq = nd->size, .epoch = 1, .data = data, .len = DATA_BYTES};
			w->node = p1;
			w->epoch = 1;
			w->first = nd->size;
			w->end = nd->size + 1;
			w->level = IX_REPL_ONE;
			cm_merkle_blake2b.leaf(w->leaf[0], data, DATA_BYTES);
			uint64_t first, token = S.nw++;
			ix_repl_write(nd->core, &e, 1, IX_REPL_ONE, io_now(nd) + 50, token, &first);
		}
	}
	TAP_CHECK(S.nw > first_old);
	TAP_CHECK(S.cfg.epoch >= 2);                   /* the backups failed over */
	TAP_CHECK((int)S.cfg.primary != p1);
	/* a few ONE writes may be acknowledged before the lease ran out, none
	 * after the ledger moved on (io_write_done checks) */
	TAP_CHECK(S.acks_q + S.acks_one - acks_before < S.nw - first_old);
	ix_repl_stats st;
	ix_repl_stats_get(S.node[p1].core, &st);
	TAP_CHECK(st.lease_lapses >= 1);
	uint64_t old_size = S.node[p1].size;
	heal();
	for (int i = 0; i < 300; i++, S.now += TICK_MS)
		step(0);
	TAP_EQ(ix_repl_epoch(S.node[p1].core), S.cfg.epoch);
	if ((int)S.cfg.primary != p1) /* its unacknowledged suffix went */
		TAP_CHECK(S.node[p1].size < old_size || S.node[p1].log[old_size - 1].epoch > 1);
	TAP_EQ(memcmp(node_root(&S.node[p1]), node_root(&S.node[S.cfg.primary]), CM_HASH_BYTES), 0);
	TAP_EQ(S.failed, 0);
	if (S.failed)
		printf("# %s\n", S.why);
}

/* A backup the primary reported for replacement comes back before the
 * ledger acts: it must not count towards a write any more, or a write held
 * by the primary and that backup alone would be acknowledged at QUORUM and
 * then sit on one replica of the next set (the primary), which the spare
 * and the lagging backup could fail over without. */
static void test_dropped_backup_does_not_count(void)
{
	uint64_t seed = 100;
	sim_drops = 1;
	for (;; seed++) {
		sim_init(seed);
		if (S.n == 3 && S.world >= 4 && S.drop_ms)
			break;
	}
	sim_drops = 0;
	S.trace = getenv("DROP_TRACE") != NULL;
	S.loss = S.dup = S.kill = S.adv = S.part_rate = S.write_rate = 0;
	S.direct = 1;
	int p = primary_node(), b = cfg_node((S.cfg.primary + 1) % 3), d = cfg_node((S.cfg.primary + 2) % 3);
	for (int i = 0; i < 30; i++, S.now += TICK_MS)
		step(0);
	for (int i = 0; i < 3; i++) {
		client_write();
		for (int k = 0; k < 10; k++, S.now += TICK_MS)
			step(0);
	}
	/* d's answers are lost (it still hears the primary, so it suspects
	 * nothing); the primary's drop request does not reach the ledger */
	S.blocked[d][p] = 1;
	S.blocked[p][LEDGER] = 1;
	ix_repl_stats st;
	for (int i = 0; i < 400; i++, S.now += TICK_MS) {
		step(0);
		ix_repl_stats_get(S.node[p].core, &st);
		if (st.drops_sent)
			break;
	}
	TAP_CHECK(st.drops_sent >= 1);
	/* d is back, b is cut off (and cannot report) */
	memset(S.blocked, 0, sizeof(S.blocked));
	S.blocked[p][LEDGER] = 1;
	for (int x = 0; x < NODES; x++)
		if (x != b)
			S.blocked[b][x] = S.blocked[x][b] = 1;
	uint64_t acks = S.acks_q;
	uint32_t w = S.nw;
	struct node *pn = &S.node[p];
	uint8_t data[DATA_BYTES];
	make_data(data, 4242, pn->size, S.cfg.epoch);
	ix_repl_entry e = {.seq = pn->size, .epoch = S.cfg.epoch, .data = data, .len = DATA_BYTES};
	S.w[w].node = p;
	S.w[w].epoch = S.cfg.epoch;
	S.w[w].first = pn->size;
	S.w[w].end = pn->size + 1;
	S.w[w].level = IX_REPL_QUORUM;
	cm_merkle_blake2b.leaf(S.w[w].leaf[0], data, DATA_BYTES);
	uint64_t first;
	S.nw++;
	TAP_EQ(ix_repl_write(pn->core, &e, 1, IX_REPL_QUORUM, io_now(pn) + 300, w, &first), CM_OK);
	for (int i = 0; i < 40; i++, S.now += TICK_MS)
		step(0);
	TAP_EQ(S.node[d].size, pn->size);   /* d holds it ... */
	TAP_EQ(S.acks_q, acks);              /* ... and still it does not count */
	/* now the ledger replaces d; a majority of the new set holds every
	 * acknowledged write (ledger_on_drop checks) */
	ledger_on_drop(p, S.cfg.epoch, S.node[d].pk);
	TAP_CHECK(S.by_drop[S.cfg.epoch]);
	TAP_EQ(S.failed, 0);
	if (S.failed)
		printf("# %s\n", S.why);
}

/* The ledger's rule: the most up to date log of a majority. */
static void test_choose_primary(void)
{
	ix_repl_config c;
	memset(&c, 0, sizeof(c));
	c.epoch = 4;
	c.n = 3;
	for (int i = 0; i < 3; i++)
		node_pk(i, c.replicas[i]);
	ix_repl_failover r[3];
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 3; i++) {
		r[i].epoch = 4;
		memcpy(r[i].sender, c.replicas[i], CM_PK_BYTES);
	}
	r[0].size = 100, r[0].last_epoch = 2; /* an old primary's long unacknowledged suffix */
	r[1].size = 10, r[1].last_epoch = 4;
	r[2].size = 10, r[2].last_epoch = 4;
	TAP_EQ(ix_repl_choose_primary(&c, r, 1), -1);   /* not a majority */
	TAP_EQ(ix_repl_choose_primary(&c, r, 3), 1);    /* last epoch first, ties to the lower index */
	r[2].size = 11;
	TAP_EQ(ix_repl_choose_primary(&c, r, 3), 2);
	r[1].epoch = 3;                                   /* another epoch's request does not count */
	TAP_EQ(ix_repl_choose_primary(&c, r + 1, 2), -1);
}

/* A backup that did not run for 3 x suspect_ms (stopped by SIGSTOP, or
 * starved of CPU) must not take the primary's silence over that time for
 * the primary's failure on its first tick after: the primary was sending
 * all along. (It did, and its failover request closed a healthy epoch.) */
static void test_paused_backup_does_not_suspect(void)
{
	sim_init(4);
	S.write_rate = 0;
	int p = (int)S.cfg.primary, b = (p + 1) % (int)S.n;
	for (int i = 0; i < 50; i++, S.now += TICK_MS)
		step(0);
	uint64_t epoch = S.cfg.epoch;
	struct node *nd = &S.node[b];
	ix_repl *core = nd->core;
	nd->core = NULL; /* paused: no ticks, and what is sent to it meanwhile is lost */
	nd->up_at = UINT64_MAX;
	for (uint64_t end = S.now + 3 * (uint64_t)S.suspect_ms; S.now < end; S.now += TICK_MS)
		step(0);
	nd->core = core;
	nd->up_at = 0;
	ix_repl_stats st;
	ix_repl_tick(core); /* its first tick after the pause */
	ix_repl_stats_get(core, &st);
	TAP_EQ(st.failovers_sent, 0);
	TAP_CHECK(st.pauses >= 1);
	for (int i = 0; i < 100; i++, S.now += TICK_MS)
		step(0);
	ix_repl_stats_get(core, &st);
	TAP_EQ(st.failovers_sent, 0);
	TAP_EQ(S.cfg.epoch, epoch);
	TAP_EQ(S.failed, 0);
}

static uint64_t failovers_sent_by_backups(int p)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < S.n; i++) {
		ix_repl_stats st;
		if ((int)i == p || !S.node[i].core)
			continue;
		ix_repl_stats_get(S.node[i].core, &st);
		n += st.failovers_sent;
	}
	return n;
}

/* Each replica applies an epoch's configuration when its own follower of
 * the ledger gets there, seconds apart on a busy machine. Backups that
 * applied it before their primary did give a primary that has sent nothing
 * in the epoch start_grace_ms beyond suspect_ms before they ask for its
 * failover (they asked at suspect_ms, and a healthy primary lost its epoch
 * at once); once it has spoken, its silence counts from then, as before. */
static void test_start_grace(void)
{
	sim_grace = 1000;
	sim_init(4);
	sim_grace = -1;
	S.write_rate = 0;
	int p = (int)S.cfg.primary;
	struct node *pn = &S.node[p];
	ix_repl *core = pn->core;
	uint64_t epoch = S.cfg.epoch;
	pn->core = NULL; /* has not learned the configuration yet: sends nothing */
	pn->up_at = UINT64_MAX;
	for (int i = 0; i < POOL; i++) /* (what its core sent when configured above is not sent) */
		if (S.pool[i].used && S.pool[i].from == p)
			S.pool[i].used = 0;
	for (uint64_t end = S.now + S.suspect_ms + 500; S.now < end; S.now += TICK_MS)
		step(0);
	TAP_EQ(failovers_sent_by_backups(p), 0); /* past suspect_ms, within the grace */
	pn->core = core; /* now it has, and speaks */
	pn->up_at = 0;
	for (int i = 0; i < 50; i++, S.now += TICK_MS)
		step(0);
	TAP_EQ(failovers_sent_by_backups(p), 0);
	TAP_EQ(S.cfg.epoch, epoch);
	pn->core = NULL; /* silent again: failed over after suspect_ms, no grace */
	pn->up_at = UINT64_MAX;
	for (uint64_t end = S.now + S.suspect_ms + 4 * TICK_MS; S.now < end; S.now += TICK_MS)
		step(0);
	TAP_CHECK(failovers_sent_by_backups(p) >= 1);
	pn->core = core;
	pn->up_at = 0;
	TAP_EQ(S.failed, 0);
}

static void test_random_schedules(void)
{
	const char *env = getenv("MURI_SIM_SEEDS"), *one = getenv("MURI_SIM_SEED");
	const char *bug = getenv("MURI_SIM_BUG");
	long count = env ? atol(env) : DEFAULT_SEEDS;
	int failures = 0;
	uint64_t failovers = 0, kills = 0, msgs = 0, adv = 0, acks = 0, truncs = 0, drops = 0, handoffs = 0, during = 0;
	struct timespec t0, t1;
	sim_drops = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (one) {
		S.trace = getenv("MURI_SIM_TRACE") != NULL;
		count = 1;
	}
	for (long k = 0; k < count && failures < 5; k++) {
		uint64_t seed = one ? strtoull(one, NULL, 0) : mix64(0x5eed0000ULL + (uint64_t)k);
		if (run_schedule(seed)) {
			failures++;
			printf("# seed 0x%016" PRIx64 " failed: %s\n", seed, S.why);
			printf("# replay: MURI_SIM_SEED=0x%016" PRIx64 " MURI_SIM_TRACE=1%s%s %s\n", seed,
			       bug ? " MURI_SIM_BUG=" : "", bug ? bug : "", "build/tests/indexer/test_repl_sim");
		}
		failovers += S.failovers;
		kills += S.kills;
		msgs += S.msgs;
		adv += S.adv_moves;
		acks += S.acks_q;
		truncs += S.truncs;
		drops += S.drops;
		handoffs += S.handoffs;
		during += S.during_append;
	}
	sim_drops = 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# %ld schedules: %" PRIu64 " failovers, %" PRIu64 " kills, %" PRIu64 " adversary moves, %" PRIu64
	       " messages, %" PRIu64 " QUORUM acks, %" PRIu64 " truncations, %" PRIu64
	       " backups replaced by spares, %" PRIu64 " primaries handed off, %" PRIu64
	       " messages taken during a client write's append; %d failed, %.1f s\n",
	       count, failovers, kills, adv, msgs, acks, truncs, drops, handoffs, during, failures, secs);
	if (bug)
		printf("# MURI_SIM_BUG=%s: failures are expected\n", bug);
	else
		TAP_EQ(failures, 0);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	S.pool = calloc(POOL, sizeof(struct pkt));
	if (!S.pool)
		return 1;
	const char *bug = getenv("MURI_SIM_BUG");
	S.bug_pick = bug && strcmp(bug, "pick") == 0;
	S.bug_nosig = bug && strcmp(bug, "nosig") == 0;
	S.bug_longest = bug && strcmp(bug, "longest") == 0;
	S.bug_clock = bug && strcmp(bug, "clock") == 0;
	S.bug_handoff = bug && strcmp(bug, "handoff") == 0;
	TAP_RUN(test_choose_primary);
	TAP_RUN(test_config_epochs);
	TAP_RUN(test_old_epoch_append_after_config);
	TAP_RUN(test_cut_off_primary);
	TAP_RUN(test_dropped_backup_does_not_count);
	TAP_RUN(test_paused_backup_does_not_suspect);
	TAP_RUN(test_start_grace);
	TAP_RUN(test_random_schedules);
	sim_init(0);
	for (int i = 0; i <= NMAX; i++) {
		ix_repl_destroy(S.node[i].core);
		cm_merkle_free(S.node[i].mk);
		free(S.node[i].log);
	}
	free(S.pool);
	return tap_done();
}
