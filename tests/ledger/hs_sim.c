/* The simulated HotStuff cluster (see hs_sim.h): deterministic randomness
 * and fake signatures, the disks' data structures, the network (paths,
 * partitions, replays), the cluster's life cycle (start, kill, restart from
 * disk), the stepping loop with its per-step invariant checks, and the
 * liveness goal. The io table is in hs_sim_io.c, the Byzantine replica in
 * hs_sim_byz.c, the seeded runs in hs_sim_vopr.c. */
#include "hs_sim.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t CHAIN[CM_HASH_BYTES] = {0xc4, 0x1a};

/* ---- deterministic randomness and fake signatures ---- */

uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A keyed 128-bit tag per replica: cheap, and unforgeable by the simulated
 * Byzantine replica, which only ever signs with its own key. */
void fake_sign(uint32_t who, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	uint64_t h = mix64(0x6d757269ULL * (who + 1));
	for (int i = 0; i < 4; i++) {
		uint64_t w;
		memcpy(&w, d + 8 * i, 8);
		h = mix64(h ^ w);
	}
	memset(sig, 0, CM_SIG_BYTES);
	memcpy(sig, &h, 8);
	h = mix64(h);
	memcpy(sig + 8, &h, 8);
	memcpy(sig + 16, d, CM_HASH_BYTES);
}

int fake_verify(uint32_t who, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES])
{
	uint8_t s[CM_SIG_BYTES];
	fake_sign(who, d, s);
	return memcmp(s, sig, CM_SIG_BYTES) == 0 ? CM_OK : CM_ERR_VERIFY;
}

/* ---- a replica's disk: safety state, stored blocks, committed chain ---- */





static uint64_t h64(const uint8_t *h)
{
	uint64_t x;
	memcpy(&x, h, 8);
	return x;
}

int32_t bstore_find(const bstore *s, const uint8_t *hash)
{
	if (!s->icap)
		return -1;
	for (size_t i = h64(hash) & (s->icap - 1);; i = (i + 1) & (s->icap - 1)) {
		if (s->idx[i] < 0)
			return -1;
		if (memcmp(s->v[s->idx[i]].hash, hash, CM_HASH_BYTES) == 0)
			return s->idx[i];
	}
}

static void bstore_reindex(bstore *s, size_t icap)
{
	free(s->idx);
	s->icap = icap;
	s->idx = malloc(icap * sizeof(*s->idx));
	for (size_t i = 0; i < icap; i++)
		s->idx[i] = -1;
	for (size_t k = 0; k < s->n; k++) {
		size_t i = h64(s->v[k].hash) & (icap - 1);
		while (s->idx[i] >= 0)
			i = (i + 1) & (icap - 1);
		s->idx[i] = (int32_t)k;
	}
}

void bstore_add(bstore *s, const cm_block *b)
{
	if (bstore_find(s, b->hash) >= 0)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
	}
	sblock *e = &s->v[s->n++];
	memcpy(e->hash, b->hash, CM_HASH_BYTES);
	e->height = b->height;
	e->len = cm_block_size(b);
	e->bytes = malloc(e->len);
	size_t len;
	cm_block_encode(b, e->bytes, e->len, &len);
	if (2 * s->n > s->icap)
		bstore_reindex(s, s->icap ? 2 * s->icap : 128);
	else {
		size_t i = h64(e->hash) & (s->icap - 1);
		while (s->idx[i] >= 0)
			i = (i + 1) & (s->icap - 1);
		s->idx[i] = (int32_t)(s->n - 1);
	}
}

void bstore_free(bstore *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].bytes);
	free(s->v);
	free(s->idx);
	memset(s, 0, sizeof(*s));
}



void hl_set(hashlist *l, size_t i, const uint8_t *hash)
{
	if (i >= l->cap) {
		size_t cap = l->cap ? l->cap : 64;
		while (cap <= i)
			cap *= 2;
		l->h = realloc(l->h, cap * CM_HASH_BYTES);
		memset(l->h + l->cap, 0, (cap - l->cap) * CM_HASH_BYTES);
		l->cap = cap;
	}
	memcpy(l->h[i], hash, CM_HASH_BYTES);
	if (i >= l->n)
		l->n = i + 1;
}

const uint8_t zero_hash[CM_HASH_BYTES];

/* ---- the simulated cluster ---- */











void sim_fail(sim *s, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = 1;
	va_list ap;
	va_start(ap, fmt);
	int k = snprintf(s->why, sizeof(s->why), "t=%" PRIu64 "ms: ", s->now);
	vsnprintf(s->why + k, sizeof(s->why) - (size_t)k, fmt, ap);
	va_end(ap);
}

uint64_t rnd(sim *s)
{
	s->rng = mix64(s->rng);
	return s->rng;
}

uint64_t below(sim *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

int chance(sim *s, uint32_t ppm)
{
	return ppm && below(s, 1000000) < ppm;
}

void sim_sign(sim *s, uint32_t who, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	if (s->use_ed25519)
		cm_sign(&s->kp[who], sig, d, CM_HASH_BYTES);
	else
		fake_sign(who, d, sig);
}

/* event heap ordered by (time, sequence): deterministic */
static int ev_less(const event *a, const event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void ev_push(sim *s, event e)
{
	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? 2 * s->capheap : 256;
		s->heap = realloc(s->heap, s->capheap * sizeof(*s->heap));
	}
	e.seq = s->seq++;
	size_t i = s->nheap++;
	while (i > 0 && ev_less(&e, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = e;
}

static event ev_pop(sim *s)
{
	event top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && ev_less(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!ev_less(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap)
		s->heap[i] = last;
	return top;
}

static uint64_t delay(sim *s, uint32_t from, uint32_t to)
{
	const net_path *p = &s->path[from][to];
	uint64_t lo = s->dmin > p->dmin ? s->dmin : p->dmin, hi = s->dmax > p->dmax ? s->dmax : p->dmax;
	return lo + below(s, hi - lo + 1);
}

static void push_copy(sim *s, int kind, uint32_t from, uint32_t to, const uint8_t *b, size_t len,
		      uint64_t arg)
{
	event e = {.t = s->now + delay(s, from, to), .arg = arg, .kind = (uint8_t)kind,
		   .from = (uint8_t)from, .to = (uint8_t)to, .len = len};
	e.data = malloc(len ? len : 1);
	memcpy(e.data, b, len);
	if (kind == EV_MSG && len && chance(s, s->corrupt_ppm))
		e.data[below(s, len)] ^= (uint8_t)(1u << below(s, 8));
	ev_push(s, e);
	s->msgs++;
}

/* Keeps a copy of a message that went out, for replays. */
static void replay_keep(sim *s, uint32_t from, const uint8_t *b, size_t len)
{
	struct replay *r = &s->replay[s->replay_next];
	s->replay_next = (s->replay_next + 1) % REPLAY_RING;
	free(r->data);
	r->data = malloc(len ? len : 1);
	memcpy(r->data, b, len);
	r->len = len;
	r->from = (uint8_t)from;
}

/* One hop from -> to: partitions (symmetric groups, cut directed paths),
 * loss, duplication, corruption, per-path delay (which reorders); and now
 * and then an old message delivered again. */
void link_send(sim *s, int kind, uint32_t from, uint32_t to, const uint8_t *b, size_t len,
		      uint64_t arg)
{
	const net_path *p = &s->path[from][to];
	if (kind == EV_MSG && chance(s, s->replay_ppm)) {
		const struct replay *r = &s->replay[below(s, REPLAY_RING)];
		if (r->data && r->from != to)
			push_copy(s, EV_MSG, r->from, to, r->data, r->len, 0);
	}
	if (s->group[from] != s->group[to] || p->cut || chance(s, s->drop_ppm) || chance(s, p->drop_ppm))
		return;
	if (s->drop_votes_mod3 && kind == EV_MSG && len == LG_HS_VOTE_BYTES && b[0] == LG_HS_MSG_VOTE &&
	    cm_get_be64(b + 1) % 3 == 0)
		return;
	if (kind == EV_MSG && s->replay_ppm)
		replay_keep(s, from, b, len);
	int copies = 1 + chance(s, s->dup_ppm) + chance(s, p->dup_ppm);
	for (int c = 0; c < copies; c++)
		push_copy(s, kind, from, to, b, len, arg);
}

void net_bytes(sim *s, uint32_t from, int to, const uint8_t *b, size_t len)
{
	for (uint32_t d = 0; d < N; d++) {
		if (d != from && (to < 0 || (uint32_t)to == d))
			link_send(s, EV_MSG, from, d, b, len, 0);
	}
}

void net_msg(sim *s, uint32_t from, int to, const lg_hs_msg *m)
{
	size_t need = lg_hs_msg_size(m), len;
	uint8_t *buf = malloc(need);
	if (lg_hs_msg_encode(m, buf, need, &len) != CM_OK || len != need)
		sim_fail(s, "replica %u: encoding its own message failed", from);
	else
		net_bytes(s, from, to, buf, len);
	free(buf);
}

int is_poison(const sim *s, const uint8_t *hash)
{
	for (size_t i = 0; i < s->poison.n; i++)
		if (memcmp(s->poison.h[i], hash, CM_HASH_BYTES) == 0)
			return 1;
	return 0;
}

/* ---- cluster life cycle ---- */

void replica_config(sim *s, uint32_t i, lg_hs_config *cfg)
{
	*cfg = s->cfg;
	cfg->self = i;
}

void start_replica(sim *s, uint32_t i)
{
	replica *r = &s->r[i];
	lg_hs_config cfg;
	lg_hs_io io = sim_io;
	replica_config(s, i, &cfg);
	io.ctx = r;
	if (lg_hs_create(&cfg, &io, &r->hs) != CM_OK || lg_hs_start(r->hs) != CM_OK)
		sim_fail(s, "replica %u did not start", i);
}

void crash(sim *s, uint32_t i)
{
	lg_hs_destroy(s->r[i].hs);
	s->r[i].hs = NULL;
}

static void check_replica(sim *s, uint32_t i);

/* A restart keeps only the disk: safety state, stored blocks, committed chain. */
void restart(sim *s, uint32_t i)
{
	replica *r = &s->r[i];
	if (r->hs)
		return;
	lg_hs_config cfg;
	lg_hs_io io = sim_io;
	replica_config(s, i, &cfg);
	io.ctx = r;
	lg_hs_safety *st = NULL;
	if (r->safety) {
		st = malloc(sizeof(*st));
		if (lg_hs_safety_decode(r->safety, r->safety_len, st) != CM_OK)
			sim_fail(s, "replica %u: persisted safety state does not decode", i);
	}
	cm_block tip, *committed = NULL;
	uint64_t ch = r->committed.n - 1;
	if (ch > 0) {
		int32_t k = bstore_find(&r->store, r->committed.h[ch]);
		if (k < 0 || cm_block_decode(r->store.v[k].bytes, r->store.v[k].len, &tip) != CM_OK)
			sim_fail(s, "replica %u: committed tip missing from its store", i);
		else
			committed = &tip;
	}
	cm_block *bl = malloc((r->store.n + 1) * sizeof(*bl));
	const cm_block **ptr = malloc((r->store.n + 1) * sizeof(*ptr));
	size_t nb = 0;
	for (size_t k = 0; k < r->store.n; k++) {
		if (r->store.v[k].height > ch &&
		    cm_block_decode(r->store.v[k].bytes, r->store.v[k].len, &bl[nb]) == CM_OK) {
			ptr[nb] = &bl[nb];
			nb++;
		}
	}
	int rc = lg_hs_restore(&cfg, &io, st, committed, ptr, nb, &r->hs);
	if (rc != CM_OK)
		sim_fail(s, "replica %u: restore failed: %s", i, cm_strerror(rc));
	else if (lg_hs_start(r->hs) != CM_OK)
		sim_fail(s, "replica %u: start after restore failed", i);
	r->checked_high = r->checked_lock = (uint64_t)-1;
	check_replica(s, i);
	r->restarts++;
	free(st);
	free(bl);
	free(ptr);
}

void sim_init(sim *s, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->seed = seed;
	s->rng = seed;
	s->dmin = 1;
	s->dmax = 10;
	s->byz = -1;
	s->cfg = (lg_hs_config){.n = N, .f = F, .base_timeout_ms = BASE_TIMEOUT,
				.max_timeout_ms = MAX_TIMEOUT, .max_payload_bytes = MAX_PAYLOAD,
				.max_blocks = 128, .max_future_views = 64};
	memcpy(s->cfg.chain, CHAIN, CM_HASH_BYTES);
	uint8_t genesis[CM_HASH_BYTES];
	cm_block g;
	cm_block_genesis(&g);
	memcpy(genesis, g.hash, CM_HASH_BYTES);
	hl_set(&s->chain, 0, genesis);
	uint8_t root0[CM_HASH_BYTES];
	app_root0(root0);
	hl_set(&s->roots, 0, root0);
	for (uint32_t i = 0; i < N; i++) {
		s->r[i].sim = s;
		s->r[i].id = i;
		hl_set(&s->r[i].committed, 0, genesis);
		hl_set(&s->r[i].roots, 0, root0);
	}
}

void sim_start(sim *s)
{
	for (uint32_t i = 0; i < N; i++) {
		s->r[i].byz = (int)i == s->byz;
		start_replica(s, i);
	}
}

void sim_free(sim *s)
{
	for (uint32_t i = 0; i < N; i++) {
		replica *r = &s->r[i];
		lg_hs_destroy(r->hs);
		free(r->safety);
		bstore_free(&r->store);
		free(r->committed.h);
		free(r->voted.h);
		free(r->roots.h);
	}
	while (s->nheap) {
		event e = ev_pop(s);
		free(e.data);
	}
	free(s->heap);
	free(s->chain.h);
	free(s->roots.h);
	for (int i = 0; i < REPLAY_RING; i++)
		free(s->replay[i].data);
	free(s->poison.h);
}

/* A replica's own clock: offset from the simulation's and drifting. */
uint64_t replica_clock(const replica *r)
{
	int64_t drift = (int64_t)r->sim->now * r->drift_ppm / 1000000;
	return r->sim->now + r->clock_offset_ms + (uint64_t)drift;
}

uint64_t committed_height(const sim *s, uint32_t i)
{
	return s->r[i].committed.n - 1;
}



/* Advances the simulation to `until` (or until stop says so). */
/* The invariants on one replica's state, checked after every step that
 * touched it (commits, votes, persists and stores are checked as they
 * happen, in the io table): the core's committed tip is the app's (so a
 * committed chain never changes under the app), and its high QC and lock
 * verify in full. */
static void check_replica(sim *s, uint32_t i)
{
	replica *r = &s->r[i];
	if (!r->hs || r->byz || s->failed)
		return;
	uint8_t tip[CM_HASH_BYTES];
	uint64_t h = lg_hs_committed(r->hs, tip);
	if (h != r->committed.n - 1 || memcmp(tip, r->committed.h[h < r->committed.n ? h : 0], CM_HASH_BYTES) != 0)
		sim_fail(s, "replica %u: the core's committed tip (height %" PRIu64 ") is not the app's (%zu)", i, h,
			 r->committed.n - 1);
	const cm_qc *hq = lg_hs_high_qc(r->hs), *lq = lg_hs_locked_qc(r->hs);
	if (hq->view != r->checked_high) {
		if (qc_ok(r, hq) != CM_OK)
			sim_fail(s, "replica %u holds a high QC (view %" PRIu64 ") that does not verify", i, hq->view);
		r->checked_high = hq->view;
	}
	if (lq->view != r->checked_lock) {
		if (qc_ok(r, lq) != CM_OK)
			sim_fail(s, "replica %u is locked on a QC (view %" PRIu64 ") that does not verify", i, lq->view);
		if (lq->view < r->checked_lock && lq->view < r->persisted_lock)
			sim_fail(s, "replica %u: its lock went back to view %" PRIu64, i, lq->view);
		r->checked_lock = lq->view;
	}
}

void run(sim *s, uint64_t until, stop_fn stop, void *arg)
{
	uint64_t next_tick = (s->now / TICK_MS + 1) * TICK_MS;
	while (!s->failed && s->now < until) {
		uint64_t t = next_tick;
		if (s->nheap && s->heap[0].t < t)
			t = s->heap[0].t;
		if (t > until) {
			s->now = until;
			break;
		}
		s->now = t;
		while (s->nheap && s->heap[0].t <= s->now && !s->failed) {
			event e = ev_pop(s);
			uint32_t to = e.to;
			deliver(s, &e);
			check_replica(s, to);
		}
		if (s->now == next_tick) {
			for (uint32_t i = 0; i < N; i++)
				if (s->r[i].hs) {
					lg_hs_tick(s->r[i].hs, replica_clock(&s->r[i]));
					check_replica(s, i);
					if (!s->failed && lg_hs_check(s->r[i].hs) != CM_OK)
						sim_fail(s, "replica %u: %s", i, lg_hs_errmsg(s->r[i].hs));
				}
			next_tick += TICK_MS;
			if (stop && stop(s, arg))
				break;
		}
	}
}

void set_network(sim *s, uint32_t drop, uint32_t dup, uint32_t corrupt, uint32_t dmin, uint32_t dmax)
{
	s->drop_ppm = drop;
	s->dup_ppm = dup;
	s->corrupt_ppm = corrupt;
	s->dmin = dmin;
	s->dmax = dmax;
}

void heal(sim *s)
{
	set_network(s, 0, 0, 0, 1, 20);
	memset(s->path, 0, sizeof(s->path));
	s->drop_votes_mod3 = 0;
	for (int i = 0; i < N; i++)
		s->group[i] = 0;
}

/* Replica state, printed when one seed is replayed and fails. */
void dump(sim *s)
{
	for (uint32_t i = 0; i < N; i++) {
		lg_hs *hs = s->r[i].hs;
		if (!hs)
			continue;
		lg_hs_stats st;
		lg_hs_get_stats(hs, &st);
		printf("# r%u view %" PRIu64 " voted %" PRIu64 " high %" PRIu64 " locked %" PRIu64
		       " committed %" PRIu64 " timeout %u | in %" PRIu64 " bad %" PRIu64 " badsig %" PRIu64
		       " stale %" PRIu64 " future %" PRIu64 " dup %" PRIu64 " full %" PRIu64 " rejected %" PRIu64
		       " votes %" PRIu64 " props %" PRIu64 " qcs %" PRIu64 " timeouts %" PRIu64 " nv %" PRIu64
		       " req %" PRIu64 " blocks %u orphans %u err '%s'\n",
		       i, lg_hs_view(hs), lg_hs_last_voted_view(hs), lg_hs_high_qc(hs)->view,
		       lg_hs_locked_qc(hs)->view, lg_hs_committed(hs, NULL), lg_hs_timeout_ms(hs), st.msgs_in,
		       st.bad_msgs, st.bad_sigs, st.stale_msgs, st.future_msgs, st.dup_votes, st.dropped_full,
		       st.rejected_payloads, st.votes_sent, st.proposals, st.qcs_formed, st.timeouts,
		       st.newviews_sent, st.blocks_requested, st.blocks_in_memory, st.orphans, lg_hs_errmsg(hs));
	}
}

/* Liveness: every honest running replica reaches target. */


static int reached(sim *s, void *arg)
{
	const live_goal *g = arg;
	for (uint32_t i = 0; i < N; i++) {
		if (s->r[i].hs && !s->r[i].byz && committed_height(s, i) < g->target)
			return 0;
	}
	return 1;
}

uint64_t max_honest_height(const sim *s)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < N; i++)
		if (!s->r[i].byz && committed_height(s, i) > m)
			m = committed_height(s, i);
	return m;
}

/* Runs until all honest running replicas commit `more` blocks past the
 * highest honest height now; fails the simulation if that takes too long. */
void expect_progress(sim *s, uint64_t more, uint64_t bound_ms, const char *when)
{
	live_goal g = {.target = max_honest_height(s) + more};
	uint64_t start = s->now;
	run(s, s->now + bound_ms, reached, &g);
	if (!s->failed && !reached(s, &g)) {
		char buf[200];
		int k = 0;
		for (uint32_t i = 0; i < N; i++)
			k += snprintf(buf + k, sizeof(buf) - (size_t)k, " r%u%s=%" PRIu64 "/v%" PRIu64, i,
				      s->r[i].hs ? (s->r[i].byz ? "(byz)" : "") : "(down)", committed_height(s, i),
				      s->r[i].hs ? lg_hs_view(s->r[i].hs) : 0);
		sim_fail(s, "LIVENESS (%s): target height %" PRIu64 " not reached within %" PRIu64
			 " ms after t=%" PRIu64 ":%s", when, g.target, bound_ms, start, buf);
		if (getenv("MURI_SIM_SEED"))
			dump(s);
	}
}

/* ---- checks and reports ---- */

void report(sim *s)
{
	if (s->failed)
		printf("# seed 0x%016" PRIx64 ": %s\n", s->seed, s->why);
}

int chains_agree(sim *s)
{
	for (uint32_t i = 0; i < N; i++) {
		if (s->r[i].byz)
			continue;
		for (size_t h = 0; h < s->r[i].committed.n; h++)
			if (memcmp(s->r[i].committed.h[h], s->chain.h[h], CM_HASH_BYTES) != 0)
				return 0;
	}
	return 1;
}

int current_leader(sim *s)
{
	for (uint32_t i = 0; i < N; i++)
		if (s->r[i].hs && !s->r[i].byz)
			return (int)lg_hs_leader(s->r[i].hs, lg_hs_view(s->r[i].hs));
	return 0;
}
