/* Tests of the chained HotStuff core (services/ledger/lg_hotstuff): the
 * encodings and certificates, then a deterministic simulated cluster of 4
 * replicas (f = 1) in this process -- simulated clock, a network with seeded
 * delays, drops, duplicates, reordering, corruption and healing partitions,
 * crashes that keep only what was persisted, and one Byzantine replica that
 * equivocates. Every commit is checked against a global map (safety); after
 * the network heals every honest running replica must commit again within a
 * bounded simulated time (liveness). MURI_HS_SCHEDULES sets the number of
 * random schedules, MURI_HS_SEED replays one. */
#include "tap.h"
#include "cm_bytes.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "lg_hotstuff.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 4
#define F 1
#define TICK_MS 10
#define BASE_TIMEOUT 100
#define MAX_TIMEOUT 1600
#define MAX_PAYLOAD 256
#define POISON 0xee           /* first payload byte the app rejects */
/* the chain tag every digest in these tests carries */
static const uint8_t CHAIN[CM_HASH_BYTES] = {0xc4, 0x1a};
#define LIVE_BOUND_MS 20000   /* after healing commits resume within this: a dozen maximal timeouts */
#define DEFAULT_SCHEDULES 2000
/* BLAKE2b-256 of the genesis header: fixed for the life of the chain */
#define GENESIS_HEX "a385ede4c7fab4778bb9eccdc1d5fccf8302c864666d580a6077fd065cd2e979"

/* ---- deterministic randomness and fake signatures ---- */

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A keyed 128-bit tag per replica: cheap, and unforgeable by the simulated
 * Byzantine replica, which only ever signs with its own key. */
static void fake_sign(uint32_t who, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
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

static int fake_verify(uint32_t who, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES])
{
	uint8_t s[CM_SIG_BYTES];
	fake_sign(who, d, s);
	return memcmp(s, sig, CM_SIG_BYTES) == 0 ? CM_OK : CM_ERR_VERIFY;
}

/* ---- a replica's disk: safety state, stored blocks, committed chain ---- */

typedef struct sblock {
	uint8_t hash[CM_HASH_BYTES];
	uint64_t height;
	uint8_t *bytes;
	size_t len;
} sblock;

typedef struct bstore {
	sblock *v;
	size_t n, cap;
	int32_t *idx;
	size_t icap;
} bstore;

static uint64_t h64(const uint8_t *h)
{
	uint64_t x;
	memcpy(&x, h, 8);
	return x;
}

static int32_t bstore_find(const bstore *s, const uint8_t *hash)
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

static void bstore_add(bstore *s, const cm_block *b)
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

static void bstore_free(bstore *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].bytes);
	free(s->v);
	free(s->idx);
	memset(s, 0, sizeof(*s));
}

typedef struct hashlist {
	uint8_t (*h)[CM_HASH_BYTES];
	size_t n, cap;
} hashlist;

static void hl_set(hashlist *l, size_t i, const uint8_t *hash)
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

static const uint8_t zero_hash[CM_HASH_BYTES];

/* ---- the simulated cluster ---- */

enum { EV_MSG, EV_FETCH_REQ, EV_FETCH_RESP };

typedef struct event {
	uint64_t t, seq, arg;
	uint8_t kind, from, to;
	uint8_t *data;
	size_t len;
} event;

struct sim;

typedef struct replica {
	struct sim *sim;
	uint32_t id;
	lg_hs *hs;                  /* NULL while crashed */
	int byz, persist_fail, commit_fail;
	uint8_t *safety;            /* disk: last persisted safety state */
	size_t safety_len;
	uint64_t persisted_view;
	bstore store;               /* disk: blocks */
	hashlist committed;         /* disk: the app's committed chain; [0] genesis */
	hashlist voted;             /* observer: what this replica voted for, by view */
	uint64_t votes_out;         /* distinct votes (proposals included) that left */
	uint64_t restarts;
} replica;

typedef struct sim {
	uint64_t seed, rng, now, seq;
	replica r[N];
	event *heap;
	size_t nheap, capheap;
	uint32_t drop_ppm, dup_ppm, corrupt_ppm, dmin, dmax;
	int group[N];
	hashlist chain;             /* the one committed block per height, first seen */
	int failed;
	char why[400];
	int byz;                    /* index of the Byzantine replica, or -1 */
	int drop_votes_mod3;        /* lose every vote of a view divisible by 3 */
	uint32_t equiv_ppm, silent_ppm, poison_ppm, voteall_ppm, junk_ppm, fork_ppm, lie_ppm;
	struct seen_qc {            /* QCs the Byzantine replica saw, and their block heights */
		cm_qc qc;
		uint64_t height;
	} seen[16];
	size_t nseen;
	uint64_t conflicts;         /* conflicting proposals the Byzantine replica sent */
	hashlist poison;            /* blocks with rejected payloads (unordered) */
	int use_ed25519;
	cm_keypair kp[N];
	lg_hs_config cfg;
	uint64_t msgs, events;
	int trace;
} sim;

static void sim_fail(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_fail(sim *s, const char *fmt, ...)
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

static uint64_t rnd(sim *s)
{
	s->rng = mix64(s->rng);
	return s->rng;
}

static uint64_t below(sim *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

static int chance(sim *s, uint32_t ppm)
{
	return ppm && below(s, 1000000) < ppm;
}

static void sim_sign(sim *s, uint32_t who, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
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

static uint64_t delay(sim *s)
{
	return s->dmin + below(s, s->dmax - s->dmin + 1);
}

/* One hop from -> to: partitions, loss, duplication, corruption, delay. */
static void link_send(sim *s, int kind, uint32_t from, uint32_t to, const uint8_t *b, size_t len,
		      uint64_t arg)
{
	if (s->group[from] != s->group[to] || chance(s, s->drop_ppm))
		return;
	if (s->drop_votes_mod3 && kind == EV_MSG && len == LG_HS_VOTE_BYTES && b[0] == LG_HS_MSG_VOTE &&
	    cm_get_be64(b + 1) % 3 == 0)
		return;
	int copies = 1 + chance(s, s->dup_ppm);
	for (int c = 0; c < copies; c++) {
		event e = {.t = s->now + delay(s), .arg = arg, .kind = (uint8_t)kind,
			   .from = (uint8_t)from, .to = (uint8_t)to, .len = len};
		e.data = malloc(len ? len : 1);
		memcpy(e.data, b, len);
		if (kind == EV_MSG && len && chance(s, s->corrupt_ppm))
			e.data[below(s, len)] ^= (uint8_t)(1u << below(s, 8));
		ev_push(s, e);
		s->msgs++;
	}
}

static void net_bytes(sim *s, uint32_t from, int to, const uint8_t *b, size_t len)
{
	for (uint32_t d = 0; d < N; d++) {
		if (d != from && (to < 0 || (uint32_t)to == d))
			link_send(s, EV_MSG, from, d, b, len, 0);
	}
}

static void net_msg(sim *s, uint32_t from, int to, const lg_hs_msg *m)
{
	size_t need = lg_hs_msg_size(m), len;
	uint8_t *buf = malloc(need);
	if (lg_hs_msg_encode(m, buf, need, &len) != CM_OK || len != need)
		sim_fail(s, "replica %u: encoding its own message failed", from);
	else
		net_bytes(s, from, to, buf, len);
	free(buf);
}

static int is_poison(const sim *s, const uint8_t *hash)
{
	for (size_t i = 0; i < s->poison.n; i++)
		if (memcmp(s->poison.h[i], hash, CM_HASH_BYTES) == 0)
			return 1;
	return 0;
}

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

static void byz_vote(sim *s, uint64_t view, const uint8_t *hash, int to_all)
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
	payload[0] = first;
	b->payload = payload;
	b->payload_len = len;
	cm_block_hash(b);
	uint8_t d[CM_HASH_BYTES];
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	sim_sign(s, (uint32_t)s->byz, d, out->u.proposal.sig);
}

/* The Byzantine replica keeps the last QCs it saw, to fork from old ones. */
static void remember_qc(sim *s, const cm_block *b)
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
	b->payload_len = 20;
	for (int i = 0; i < 20; i++)
		payload[i] = (uint8_t)rnd(s);
	payload[0] = 0x46;
	b->payload = payload;
	cm_block_hash(b);
	uint8_t d[CM_HASH_BYTES];
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	sim_sign(s, (uint32_t)s->byz, d, out->u.proposal.sig);
	return 1;
}

/* What the Byzantine replica does with the messages its own (honest) core
 * wants to send: equivocate, withhold, propose rejected payloads, vote
 * twice, claim far-away views, send garbage. It signs only with its key. */
static void byz_send(replica *r, int to, const lg_hs_msg *m)
{
	sim *s = r->sim;
	if (chance(s, s->junk_ppm)) {
		uint8_t junk[64];
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)rnd(s);
		junk[0] = (uint8_t)(1 + below(s, 3));
		net_bytes(s, r->id, LG_HS_BROADCAST, junk, 1 + below(s, sizeof(junk)));
	}
	if (m->type == LG_HS_MSG_PROPOSAL) {
		static lg_hs_msg alt;
		uint8_t payload[MAX_PAYLOAD + 1];
		if (chance(s, s->silent_ppm))
			return;
		remember_qc(s, &m->u.proposal.block);
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

static int io_persist(void *ctx, const lg_hs_safety *st)
{
	replica *r = ctx;
	if (r->persist_fail)
		return CM_ERR_IO;
	if (st->last_voted_view < r->persisted_view)
		sim_fail(r->sim, "replica %u: last voted view went back", r->id);
	size_t need = lg_hs_safety_size(st), len;
	r->safety = realloc(r->safety, need);
	if (lg_hs_safety_encode(st, r->safety, need, &len) != CM_OK)
		sim_fail(r->sim, "safety encoding failed");
	r->safety_len = len;
	r->persisted_view = st->last_voted_view;
	return CM_OK;
}

static int io_store(void *ctx, const cm_block *b)
{
	replica *r = ctx;
	bstore_add(&r->store, b);
	return CM_OK;
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
	hl_set(&r->committed, r->committed.n, b->hash);
	if (s->trace)
		printf("# %6" PRIu64 " r%u commits height %" PRIu64 " (view %" PRIu64 ")\n", s->now, r->id, h, b->view);
	return CM_OK;
}

static int io_make_payload(void *ctx, const cm_block *parent, uint64_t height, uint64_t view,
			   uint8_t *buf, size_t cap, size_t *len)
{
	replica *r = ctx;
	(void)parent;
	size_t n = 18 + below(r->sim, 24);
	if (n > cap)
		return CM_ERR_TOOBIG;
	memset(buf, 0, n);
	buf[0] = 0x50;
	buf[1] = (uint8_t)r->id;
	memcpy(buf + 2, &height, 8);
	memcpy(buf + 10, &view, 8);
	*len = n;
	return CM_OK;
}

static int io_validate(void *ctx, const cm_block *parent, const cm_block *b)
{
	(void)ctx;
	(void)parent;
	return b->payload_len > 0 && b->payload[0] == POISON ? CM_ERR_INVALID : CM_OK;
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
	return ((replica *)ctx)->sim->now;
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

static const lg_hs_io sim_io = {
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

static void deliver(sim *s, event *e)
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

/* ---- cluster life cycle ---- */

static void replica_config(sim *s, uint32_t i, lg_hs_config *cfg)
{
	*cfg = s->cfg;
	cfg->self = i;
}

static void start_replica(sim *s, uint32_t i)
{
	replica *r = &s->r[i];
	lg_hs_config cfg;
	lg_hs_io io = sim_io;
	replica_config(s, i, &cfg);
	io.ctx = r;
	if (lg_hs_create(&cfg, &io, &r->hs) != CM_OK || lg_hs_start(r->hs) != CM_OK)
		sim_fail(s, "replica %u did not start", i);
}

static void crash(sim *s, uint32_t i)
{
	lg_hs_destroy(s->r[i].hs);
	s->r[i].hs = NULL;
}

/* A restart keeps only the disk: safety state, stored blocks, committed chain. */
static void restart(sim *s, uint32_t i)
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
	r->restarts++;
	free(st);
	free(bl);
	free(ptr);
}

static void sim_init(sim *s, uint64_t seed)
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
	for (uint32_t i = 0; i < N; i++) {
		s->r[i].sim = s;
		s->r[i].id = i;
		hl_set(&s->r[i].committed, 0, genesis);
	}
}

static void sim_start(sim *s)
{
	for (uint32_t i = 0; i < N; i++) {
		s->r[i].byz = (int)i == s->byz;
		start_replica(s, i);
	}
}

static void sim_free(sim *s)
{
	for (uint32_t i = 0; i < N; i++) {
		replica *r = &s->r[i];
		lg_hs_destroy(r->hs);
		free(r->safety);
		bstore_free(&r->store);
		free(r->committed.h);
		free(r->voted.h);
	}
	while (s->nheap) {
		event e = ev_pop(s);
		free(e.data);
	}
	free(s->heap);
	free(s->chain.h);
	free(s->poison.h);
}

static uint64_t committed_height(const sim *s, uint32_t i)
{
	return s->r[i].committed.n - 1;
}

typedef int (*stop_fn)(sim *s, void *arg);

/* Advances the simulation to `until` (or until stop says so). */
static void run(sim *s, uint64_t until, stop_fn stop, void *arg)
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
			deliver(s, &e);
		}
		if (s->now == next_tick) {
			for (uint32_t i = 0; i < N; i++)
				if (s->r[i].hs)
					lg_hs_tick(s->r[i].hs, s->now);
			next_tick += TICK_MS;
			if (stop && stop(s, arg))
				break;
		}
	}
}

static void set_network(sim *s, uint32_t drop, uint32_t dup, uint32_t corrupt, uint32_t dmin, uint32_t dmax)
{
	s->drop_ppm = drop;
	s->dup_ppm = dup;
	s->corrupt_ppm = corrupt;
	s->dmin = dmin;
	s->dmax = dmax;
}

static void heal(sim *s)
{
	set_network(s, 0, 0, 0, 1, 20);
	for (int i = 0; i < N; i++)
		s->group[i] = 0;
}

/* Replica state, printed when one seed is replayed and fails. */
static void dump(sim *s)
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
typedef struct live_goal {
	uint64_t target;
} live_goal;

static int reached(sim *s, void *arg)
{
	const live_goal *g = arg;
	for (uint32_t i = 0; i < N; i++) {
		if (s->r[i].hs && !s->r[i].byz && committed_height(s, i) < g->target)
			return 0;
	}
	return 1;
}

static uint64_t max_honest_height(const sim *s)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < N; i++)
		if (!s->r[i].byz && committed_height(s, i) > m)
			m = committed_height(s, i);
	return m;
}

/* Runs until all honest running replicas commit `more` blocks past the
 * highest honest height now; fails the simulation if that takes too long. */
static void expect_progress(sim *s, uint64_t more, uint64_t bound_ms, const char *when)
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
		if (getenv("MURI_HS_SEED"))
			dump(s);
	}
}

/* ---- encodings and certificates ---- */

static void make_qc(cm_qc *qc, uint64_t view, const uint8_t *hash, uint64_t signers)
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

static int verify_cb(void *ctx, uint32_t who, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES])
{
	(void)ctx;
	return fake_verify(who, d, sig);
}

static int qc_equal(const cm_qc *a, const cm_qc *b)
{
	if (a->view != b->view || a->signers != b->signers || memcmp(a->block_hash, b->block_hash, CM_HASH_BYTES))
		return 0;
	for (int i = 0; i < CM_CHAIN_MAX_REPLICAS; i++)
		if ((a->signers >> i & 1) && memcmp(a->sigs[i], b->sigs[i], CM_SIG_BYTES))
			return 0;
	return 1;
}

static void test_codec(void)
{
	static cm_block b, d;
	static lg_hs_msg m, m2;
	static lg_hs_safety st, st2;
	static uint8_t buf[8192];
	uint8_t payload[40], parent[CM_HASH_BYTES];
	size_t len;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	memset(parent, 0xab, sizeof(parent));
	memset(&b, 0, sizeof(b));
	b.height = 7;
	b.view = 9;
	memcpy(b.parent, parent, CM_HASH_BYTES);
	make_qc(&b.justify, 8, parent, 0x0b);
	b.proposer = 1;
	b.payload = payload;
	b.payload_len = sizeof(payload);
	cm_block_hash(&b);

	TAP_EQ(cm_block_encode(&b, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(len, cm_block_size(&b));
	TAP_EQ(len, CM_BLOCK_HEADER_BYTES + CM_QC_HEADER_BYTES + 3 * CM_SIG_BYTES + sizeof(payload));
	TAP_EQ(cm_block_decode(buf, len, &d), CM_OK);
	TAP_EQ(d.height, 7);
	TAP_EQ(d.view, 9);
	TAP_EQ(d.proposer, 1);
	TAP_EQ(d.payload_len, sizeof(payload));
	TAP_CHECK(memcmp(d.payload, payload, sizeof(payload)) == 0);
	TAP_CHECK(qc_equal(&d.justify, &b.justify));
	TAP_CHECK(memcmp(d.hash, b.hash, CM_HASH_BYTES) == 0);
	/* every strict prefix and any trailing byte are rejected */
	int bad = 0;
	for (size_t k = 0; k < len; k++)
		bad += cm_block_decode(buf, k, &d) == CM_ERR_INVALID;
	TAP_EQ(bad, len);
	TAP_EQ(cm_block_decode(buf, len + 1, &d), CM_ERR_INVALID);
	TAP_EQ(cm_block_encode(&b, buf, len - 1, &len), CM_ERR_TOOBIG);
	/* the hash covers every header field and the payload */
	cm_block_encode(&b, buf, sizeof(buf), &len);
	buf[0] = 2; /* unknown version */
	TAP_EQ(cm_block_decode(buf, len, &d), CM_ERR_INVALID);
	int changed = 0;
	for (size_t k = 1; k < len; k++) {
		cm_block_encode(&b, buf, sizeof(buf), &len);
		buf[k] ^= 0x10;
		if (cm_block_decode(buf, len, &d) == CM_OK)
			changed += memcmp(d.hash, b.hash, CM_HASH_BYTES) != 0;
		else
			changed++;
	}
	TAP_EQ(changed, len - 1);
	/* a payload length beyond the limit */
	cm_block_encode(&b, buf, sizeof(buf), &len);
	size_t off = len - sizeof(payload) - 4;
	buf[off] = 0x7f;
	TAP_EQ(cm_block_decode(buf, len, &d), CM_ERR_INVALID);

	/* messages */
	m.type = LG_HS_MSG_PROPOSAL;
	m.u.proposal.block = b;
	memset(m.u.proposal.sig, 0x5a, CM_SIG_BYTES);
	TAP_EQ(lg_hs_msg_encode(&m, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(len, lg_hs_msg_size(&m));
	TAP_EQ(lg_hs_msg_decode(buf, len, &m2), CM_OK);
	TAP_EQ(m2.type, LG_HS_MSG_PROPOSAL);
	TAP_CHECK(memcmp(m2.u.proposal.block.hash, b.hash, CM_HASH_BYTES) == 0);
	TAP_CHECK(memcmp(m2.u.proposal.sig, m.u.proposal.sig, CM_SIG_BYTES) == 0);
	TAP_EQ(lg_hs_msg_decode(buf, len - 1, &m2), CM_ERR_INVALID);

	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_VOTE;
	m.u.vote.view = 1234567890123ULL;
	memset(m.u.vote.block_hash, 3, CM_HASH_BYTES);
	m.u.vote.voter = 2;
	memset(m.u.vote.sig, 4, CM_SIG_BYTES);
	TAP_EQ(lg_hs_msg_encode(&m, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(len, LG_HS_VOTE_BYTES);
	TAP_EQ(lg_hs_msg_decode(buf, len, &m2), CM_OK);
	TAP_EQ(m2.u.vote.view, 1234567890123ULL);
	TAP_EQ(m2.u.vote.voter, 2);
	TAP_EQ(lg_hs_msg_decode(buf, len + 1, &m2), CM_ERR_INVALID);

	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_NEWVIEW;
	m.u.newview.view = 77;
	make_qc(&m.u.newview.high_qc, 70, parent, 0x0e);
	m.u.newview.sender = 3;
	TAP_EQ(lg_hs_msg_encode(&m, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(lg_hs_msg_decode(buf, len, &m2), CM_OK);
	TAP_EQ(m2.u.newview.view, 77);
	TAP_EQ(m2.u.newview.sender, 3);
	TAP_CHECK(qc_equal(&m2.u.newview.high_qc, &m.u.newview.high_qc));
	bad = 0;
	for (size_t k = 0; k < len; k++)
		bad += lg_hs_msg_decode(buf, k, &m2) == CM_ERR_INVALID;
	TAP_EQ(bad, len);
	buf[0] = 9;
	TAP_EQ(lg_hs_msg_decode(buf, len, &m2), CM_ERR_INVALID);
	m.type = 0;
	TAP_EQ(lg_hs_msg_encode(&m, buf, sizeof(buf), &len), CM_ERR_INVALID);

	/* safety state */
	st.last_voted_view = 99;
	make_qc(&st.locked_qc, 97, parent, 0x07);
	make_qc(&st.high_qc, 98, payload, 0x0d);
	TAP_EQ(lg_hs_safety_encode(&st, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(lg_hs_safety_decode(buf, len, &st2), CM_OK);
	TAP_EQ(st2.last_voted_view, 99);
	TAP_CHECK(qc_equal(&st2.locked_qc, &st.locked_qc));
	TAP_CHECK(qc_equal(&st2.high_qc, &st.high_qc));
	TAP_EQ(lg_hs_safety_decode(buf, len - 1, &st2), CM_ERR_INVALID);
	TAP_EQ(lg_hs_safety_decode(buf, len + 1, &st2), CM_ERR_INVALID);
}

static void test_genesis_and_qc(void)
{
	cm_block g;
	static cm_qc gq, qc;
	char hex[2 * CM_HASH_BYTES + 1];
	cm_block_genesis(&g);
	cm_qc_genesis(&gq);
	cm_hex(hex, g.hash, CM_HASH_BYTES);
	/* the well-known genesis hash: changing it is a new chain */
	TAP_STREQ(hex, GENESIS_HEX);
	TAP_EQ(g.height, 0);
	TAP_CHECK(memcmp(gq.block_hash, g.hash, CM_HASH_BYTES) == 0);
	TAP_EQ(cm_qc_verify(&gq, CHAIN, N, F, verify_cb, NULL), CM_OK);
	qc = gq;
	qc.block_hash[0] ^= 1;
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_INVALID);

	uint8_t h[CM_HASH_BYTES];
	memset(h, 0x11, sizeof(h));
	make_qc(&qc, 5, h, 0x07);
	TAP_EQ(cm_qc_count(&qc), 3);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_OK);
	make_qc(&qc, 5, h, 0x0f); /* more than 2f+1 is fine */
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_OK);
	make_qc(&qc, 5, h, 0x05); /* 2 < 2f+1 */
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_VERIFY);
	make_qc(&qc, 5, h, 0x13); /* replica 4 does not exist */
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_INVALID);
	make_qc(&qc, 5, h, 0x07);
	qc.sigs[1][3] ^= 1;
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_VERIFY);
	make_qc(&qc, 5, h, 0x07);
	qc.view = 6; /* signatures were over view 5 */
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_VERIFY);
	make_qc(&qc, 5, h, 0x07);
	qc.sigs[0][0] = qc.sigs[1][0]; /* one replica's signature reused as another's */
	memcpy(qc.sigs[0], qc.sigs[1], CM_SIG_BYTES);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_VERIFY);
	make_qc(&qc, CM_CHAIN_MAX_VIEW + 1, h, 0x07);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_INVALID);
	make_qc(&qc, 5, h, 0x07);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, 3, 1, verify_cb, NULL), CM_ERR_INVALID); /* n < 3f+1 */
	/* 7 replicas, f = 2: n-f = 5 signatures */
	make_qc(&qc, 5, h, 0x1f);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, 7, 2, verify_cb, NULL), CM_OK);
	make_qc(&qc, 5, h, 0x1e);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, 7, 2, verify_cb, NULL), CM_ERR_VERIFY);

	/* vote and NEW-VIEW digests never coincide, and bind every field */
	uint8_t d1[CM_HASH_BYTES], d2[CM_HASH_BYTES];
	cm_vote_digest(d1, CHAIN, 5, h);
	lg_hs_newview_digest(d2, CHAIN, 5, &qc);
	TAP_CHECK(memcmp(d1, d2, CM_HASH_BYTES) != 0);
	cm_vote_digest(d2, CHAIN, 6, h);
	TAP_CHECK(memcmp(d1, d2, CM_HASH_BYTES) != 0);
}

/* ---- scenarios on the simulated cluster ---- */

static void report(sim *s)
{
	if (s->failed)
		printf("# seed 0x%016" PRIx64 ": %s\n", s->seed, s->why);
}

static int chains_agree(sim *s)
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

static void test_happy_path(void)
{
	static sim s;
	sim_init(&s, 1);
	set_network(&s, 0, 0, 0, 2, 8);
	sim_start(&s);
	run(&s, 3000, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	lg_hs_stats st;
	for (uint32_t i = 0; i < N; i++) {
		/* about one view per two hops of ~5 ms; a block commits three views later */
		TAP_CHECK(committed_height(&s, i) > 150);
		TAP_CHECK(committed_height(&s, i) + 6 > lg_hs_view(s.r[i].hs));
		TAP_EQ(lg_hs_timeout_ms(s.r[i].hs), BASE_TIMEOUT);
		lg_hs_get_stats(s.r[i].hs, &st);
		TAP_EQ(st.timeouts, 0);
		TAP_EQ(st.bad_msgs + st.bad_sigs, 0);
		TAP_CHECK(st.blocks_in_memory <= 8);
		TAP_EQ(lg_hs_committed(s.r[i].hs, NULL), committed_height(&s, i));
		/* the lock is a QC the replica holds, below its highest QC */
		TAP_CHECK(lg_hs_locked_qc(s.r[i].hs)->view < lg_hs_high_qc(s.r[i].hs)->view);
		TAP_EQ(lg_hs_last_voted_view(s.r[i].hs) + 1 >= lg_hs_view(s.r[i].hs), 1);
	}
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* The same cluster with the real ed25519 signatures of production. */
static void test_ed25519(void)
{
	static sim s;
	sim_init(&s, 2);
	s.use_ed25519 = 1;
	for (uint32_t i = 0; i < N; i++) {
		uint8_t seed[CM_SEED_BYTES] = {(uint8_t)i, 42};
		cm_keypair_from_seed(&s.kp[i], seed);
	}
	set_network(&s, 20000, 0, 0, 2, 20);
	sim_start(&s);
	run(&s, 1500, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	for (uint32_t i = 0; i < N; i++)
		TAP_CHECK(committed_height(&s, i) > 10);
	TAP_CHECK(chains_agree(&s));
	for (uint32_t i = 0; i < N; i++)
		cm_keypair_wipe(&s.kp[i]);
	sim_free(&s);
}

static int current_leader(sim *s)
{
	for (uint32_t i = 0; i < N; i++)
		if (s->r[i].hs && !s->r[i].byz)
			return (int)lg_hs_leader(s->r[i].hs, lg_hs_view(s->r[i].hs));
	return 0;
}

/* kill -9 the leader: the others commit again; it restarts, fetches what
 * it missed, commits the same blocks and votes again. */
static void test_leader_crash_recovery(void)
{
	static sim s;
	sim_init(&s, 3);
	set_network(&s, 0, 0, 0, 2, 15);
	sim_start(&s);
	run(&s, 500, NULL, NULL);
	uint32_t dead = (uint32_t)current_leader(&s);
	uint64_t before = committed_height(&s, dead);
	uint64_t voted = lg_hs_last_voted_view(s.r[dead].hs);
	crash(&s, dead);
	expect_progress(&s, 10, 3000, "leader down");
	TAP_CHECK(!s.failed);
	TAP_CHECK(max_honest_height(&s) >= before + 10);
	run(&s, s.now + 2000, NULL, NULL); /* a long way ahead */
	uint64_t others = max_honest_height(&s);
	lg_hs_stats st;
	restart(&s, dead);
	expect_progress(&s, 3, 5000, "after the restart");
	report(&s);
	TAP_CHECK(!s.failed);
	TAP_CHECK(committed_height(&s, dead) >= others);
	TAP_CHECK(lg_hs_last_voted_view(s.r[dead].hs) > voted);
	lg_hs_get_stats(s.r[dead].hs, &st);
	TAP_CHECK(st.blocks_requested > 0);     /* it caught up by fetching */
	TAP_CHECK(st.votes_sent + st.proposals > 0); /* and votes again */
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

static void test_byzantine_equivocation(void)
{
	for (uint64_t seed = 10; seed < 14; seed++) {
		static sim s;
		sim_init(&s, seed);
		s.byz = (int)(seed % N);
		s.equiv_ppm = 1000000;  /* always two blocks for its views */
		s.voteall_ppm = 1000000; /* and votes for everything it sees */
		s.junk_ppm = 20000;
		set_network(&s, 0, 0, 0, 1, 20);
		sim_start(&s);
		expect_progress(&s, 40, 20000, "byzantine leader");
		report(&s);
		TAP_CHECK(!s.failed);
		TAP_CHECK(s.conflicts > 3);
		TAP_CHECK(chains_agree(&s));
		uint64_t eq = 0;
		for (uint32_t i = 0; i < N; i++) {
			lg_hs_stats st;
			lg_hs_get_stats(s.r[i].hs, &st);
			if (!s.r[i].byz)
				eq += st.equivocations + st.dup_votes;
		}
		TAP_CHECK(eq > 0); /* the honest ones saw the double votes */
		sim_free(&s);
	}
}

/* A leader whose payloads the app rejects gets no honest vote. */
static void test_rejected_payload(void)
{
	static sim s;
	sim_init(&s, 20);
	s.byz = 2;
	s.poison_ppm = 1000000;
	set_network(&s, 0, 0, 0, 1, 10);
	sim_start(&s);
	expect_progress(&s, 20, 20000, "poisoning leader");
	report(&s);
	TAP_CHECK(!s.failed); /* watch_vote fails on any honest vote for poison */
	TAP_CHECK(s.poison.n > 3);
	uint64_t rejected = 0;
	for (uint32_t i = 0; i < N; i++) {
		lg_hs_stats st;
		lg_hs_get_stats(s.r[i].hs, &st);
		rejected += st.rejected_payloads;
	}
	TAP_CHECK(rejected > 3);
	sim_free(&s);
}

static void test_persist_failure_means_no_vote(void)
{
	static sim s;
	sim_init(&s, 30);
	set_network(&s, 0, 0, 0, 2, 10);
	sim_start(&s);
	run(&s, 300, NULL, NULL);
	replica *r = &s.r[2];
	uint64_t votes = r->votes_out, h = committed_height(&s, 0);
	r->persist_fail = 1;
	run(&s, 1300, NULL, NULL);
	/* watch_vote would have failed the run had a vote left */
	TAP_EQ(r->votes_out, votes);
	lg_hs_stats st;
	lg_hs_get_stats(r->hs, &st);
	TAP_CHECK(st.persist_failures > 0);
	TAP_CHECK(strstr(lg_hs_errmsg(r->hs), "not voting") != NULL);
	/* three replicas are a quorum: the chain goes on without its votes */
	TAP_CHECK(committed_height(&s, 0) > h + 10);
	r->persist_fail = 0;
	run(&s, 1800, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	TAP_CHECK(r->votes_out > votes + 10);
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* A failed commit is retried on the tick, in order, exactly once. */
static void test_commit_failure_retried(void)
{
	static sim s;
	sim_init(&s, 31);
	set_network(&s, 0, 0, 0, 2, 10);
	sim_start(&s);
	run(&s, 300, NULL, NULL);
	s.r[1].commit_fail = 1;
	uint64_t h = committed_height(&s, 1);
	run(&s, 600, NULL, NULL);
	TAP_EQ(committed_height(&s, 1), h);
	TAP_CHECK(strstr(lg_hs_errmsg(s.r[1].hs), "commit of block") != NULL);
	s.r[1].commit_fail = 0;
	run(&s, 1000, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	TAP_CHECK(committed_height(&s, 1) + 6 > committed_height(&s, 0));
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* During a partition no quorum exists: timeouts double up to the cap; once
 * it heals and blocks commit they are back at the base. */
static void test_pacemaker_backoff(void)
{
	static sim s;
	sim_init(&s, 40);
	set_network(&s, 0, 0, 0, 2, 10);
	sim_start(&s);
	run(&s, 300, NULL, NULL);
	uint64_t h[N];
	for (uint32_t i = 0; i < N; i++) {
		h[i] = committed_height(&s, i);
		s.group[i] = i < 2;
	}
	run(&s, 1000, NULL, NULL);
	uint32_t t1 = lg_hs_timeout_ms(s.r[0].hs);
	TAP_CHECK(t1 >= 2 * BASE_TIMEOUT);
	run(&s, 6000, NULL, NULL);
	for (uint32_t i = 0; i < N; i++) {
		TAP_EQ(lg_hs_timeout_ms(s.r[i].hs), MAX_TIMEOUT);
		TAP_CHECK(committed_height(&s, i) <= h[i] + 3); /* what was in flight, at most */
	}
	TAP_CHECK(lg_hs_timeout_ms(s.r[0].hs) > t1);
	heal(&s);
	expect_progress(&s, 5, 10000, "after the partition");
	run(&s, s.now + 500, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	for (uint32_t i = 0; i < N; i++)
		TAP_EQ(lg_hs_timeout_ms(s.r[i].hs), BASE_TIMEOUT);
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* Bytes from the network are input: garbage, forgeries, out-of-range
 * fields and far-future views are counted and ignored. */
static void test_untrusted_input(void)
{
	static sim s;
	static lg_hs_msg m;
	static uint8_t buf[4096];
	sim_init(&s, 50);
	set_network(&s, 0, 0, 0, 2, 10);
	sim_start(&s);
	run(&s, 200, NULL, NULL);
	lg_hs *hs = s.r[0].hs;
	uint64_t view = lg_hs_view(hs), h = committed_height(&s, 0);
	lg_hs_stats before, after;
	lg_hs_get_stats(hs, &before);

	uint64_t rng = 99;
	for (int k = 0; k < 20000; k++) {
		size_t len = (size_t)(mix64(rng++) % 600);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)mix64(rng++);
		if (len)
			buf[0] = (uint8_t)(1 + k % 3);
		lg_hs_on_message_bytes(hs, (uint32_t)(k % 7), buf, len);
	}
	uint8_t hash[CM_HASH_BYTES], d[CM_HASH_BYTES];
	memset(hash, 7, sizeof(hash));
	/* a vote from a replica that does not exist, and a forged one */
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_VOTE;
	m.u.vote.view = view;
	memcpy(m.u.vote.block_hash, hash, CM_HASH_BYTES);
	m.u.vote.voter = 9;
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_INVALID);
	m.u.vote.voter = 1;
	m.u.vote.view = view;
	while (lg_hs_leader(hs, m.u.vote.view) != 0 && lg_hs_leader(hs, m.u.vote.view + 1) != 0)
		m.u.vote.view++; /* a view whose votes replica 0 collects */
	cm_vote_digest(d, CHAIN, m.u.vote.view, hash);
	fake_sign(3, d, m.u.vote.sig); /* somebody else's signature */
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_VERIFY);
	/* a vote far in the future */
	m.u.vote.view += 1000 * N;
	cm_vote_digest(d, CHAIN, m.u.vote.view, hash);
	fake_sign(1, d, m.u.vote.sig);
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_RANGE);
	/* a proposal by a replica that does not lead that view */
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_PROPOSAL;
	cm_block *b = &m.u.proposal.block;
	cm_qc_genesis(&b->justify);
	memcpy(b->parent, b->justify.block_hash, CM_HASH_BYTES);
	b->height = 1;
	b->view = view + 1000 * N + 1;
	b->proposer = (uint32_t)((b->view + 1) % N);
	cm_block_hash(b);
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_INVALID);
	/* properly signed by its leader, but far ahead with an old QC */
	b->proposer = (uint32_t)(b->view % N);
	cm_block_hash(b);
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_RANGE);
	/* a QC naming a replica that does not exist */
	b->view = view + 1;
	b->proposer = (uint32_t)(b->view % N);
	make_qc(&b->justify, view, hash, 0x31);
	memcpy(b->parent, hash, CM_HASH_BYTES);
	b->height = h + 5;
	cm_block_hash(b);
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	TAP_CHECK(lg_hs_on_message(hs, 1, &m) != CM_OK);
	/* parent and justify disagree */
	make_qc(&b->justify, view, hash, 0x07);
	b->parent[0] ^= 1;
	cm_block_hash(b);
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_INVALID);
	/* a NEW-VIEW whose QC is not older than its view, and one for a huge view */
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_NEWVIEW;
	m.u.newview.sender = 2;
	m.u.newview.view = 5;
	make_qc(&m.u.newview.high_qc, 5, hash, 0x07);
	TAP_EQ(lg_hs_on_message(hs, 2, &m), CM_ERR_INVALID);
	m.u.newview.view = CM_CHAIN_MAX_VIEW + 1;
	TAP_EQ(lg_hs_on_message(hs, 2, &m), CM_ERR_INVALID);
	/* f = 1 replica alone claiming a far view moves nobody */
	m.u.newview.view = view + 100000;
	cm_qc_genesis(&m.u.newview.high_qc);
	lg_hs_newview_digest(d, CHAIN, m.u.newview.view, &m.u.newview.high_qc);
	fake_sign(2, d, m.u.newview.sig);
	TAP_EQ(lg_hs_on_message(hs, 2, &m), CM_OK);
	TAP_CHECK(lg_hs_view(hs) < view + 1000);
	/* a fetched block that is too big */
	static cm_block big;
	static uint8_t bigp[MAX_PAYLOAD + 1];
	cm_qc_genesis(&big.justify);
	memcpy(big.parent, big.justify.block_hash, CM_HASH_BYTES);
	big.height = 1;
	big.view = 1;
	big.proposer = 1;
	big.payload = bigp;
	big.payload_len = sizeof(bigp);
	TAP_EQ(lg_hs_on_block(hs, &big), CM_ERR_INVALID);

	lg_hs_get_stats(hs, &after);
	TAP_CHECK(after.bad_msgs > before.bad_msgs + 10000);
	TAP_CHECK(after.bad_sigs > before.bad_sigs);
	TAP_CHECK(after.future_msgs > before.future_msgs);
	/* and the cluster goes on, with the same chain everywhere */
	expect_progress(&s, 10, 5000, "after garbage");
	report(&s);
	TAP_CHECK(!s.failed);
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* ---- the rules, one replica at a time ----
 * Replica 0 runs alone; the test plays the other three, whose keys it has,
 * and feeds hand-made chains. Leaders are view mod 4, so the views used
 * avoid multiples of 4 (replica 0's own). */

static cm_block mk_block(const cm_block *parent, uint64_t view)
{
	cm_block b;
	memset(&b, 0, sizeof(b));
	b.height = parent->height + 1;
	b.view = view;
	b.proposer = (uint32_t)(view % N);
	memcpy(b.parent, parent->hash, CM_HASH_BYTES);
	if (parent->height == 0)
		cm_qc_genesis(&b.justify);
	else
		make_qc(&b.justify, parent->view, parent->hash, 0x0e); /* replicas 1, 2, 3 */
	cm_block_hash(&b);
	return b;
}

static int feed(lg_hs *hs, const cm_block *b)
{
	static lg_hs_msg m;
	uint8_t d[CM_HASH_BYTES];
	m.type = LG_HS_MSG_PROPOSAL;
	m.u.proposal.block = *b;
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	return lg_hs_on_message(hs, b->proposer, &m);
}

/* Replicas 1 and 2 ask for `view`: replica 0 joins, and with its own that is n-f. */
static void feed_newviews(lg_hs *hs, uint64_t view, const cm_qc *qc)
{
	static lg_hs_msg m;
	uint8_t d[CM_HASH_BYTES];
	for (uint32_t i = 1; i <= 2; i++) {
		m.type = LG_HS_MSG_NEWVIEW;
		m.u.newview.view = view;
		m.u.newview.high_qc = *qc;
		m.u.newview.sender = i;
		lg_hs_newview_digest(d, CHAIN, view, qc);
		fake_sign(i, d, m.u.newview.sig);
		lg_hs_on_message(hs, i, &m);
	}
}

static void solo_init(sim *s, uint64_t seed)
{
	sim_init(s, seed);
	start_replica(s, 0);
}

/* Three-chain commit (sec. 5): b <- b' <- b'' with QC(b'') commits b only if
 * the three views are consecutive ("direct parents" with dummy nodes). */
static void test_three_chain_rule(void)
{
	static sim s;
	cm_block g, a, b, b1, b2, w;
	cm_block_genesis(&g);

	/* a gap between b' and b'': 1, 2, 5 then QC(5) */
	solo_init(&s, 60);
	b = mk_block(&g, 1), b1 = mk_block(&b, 2), b2 = mk_block(&b1, 5), w = mk_block(&b2, 6);
	feed(s.r[0].hs, &b), feed(s.r[0].hs, &b1), feed(s.r[0].hs, &b2), feed(s.r[0].hs, &w);
	TAP_EQ(lg_hs_committed(s.r[0].hs, NULL), 0);
	TAP_EQ(lg_hs_high_qc(s.r[0].hs)->view, 5);
	TAP_EQ(lg_hs_locked_qc(s.r[0].hs)->view, 2);
	TAP_CHECK(!s.failed);
	sim_free(&s);

	/* a gap between b and b': 3, 6, 7 then QC(7) */
	solo_init(&s, 61);
	b = mk_block(&g, 3), b1 = mk_block(&b, 6), b2 = mk_block(&b1, 7), w = mk_block(&b2, 9);
	feed(s.r[0].hs, &b), feed(s.r[0].hs, &b1), feed(s.r[0].hs, &b2), feed(s.r[0].hs, &w);
	TAP_EQ(lg_hs_committed(s.r[0].hs, NULL), 0);
	TAP_EQ(lg_hs_locked_qc(s.r[0].hs)->view, 6);
	TAP_CHECK(!s.failed);
	sim_free(&s);

	/* consecutive: 5, 6, 7 over a block of view 1, then QC(7): commits
	 * both, lowest first, and nothing above */
	solo_init(&s, 62);
	a = mk_block(&g, 1), b = mk_block(&a, 5), b1 = mk_block(&b, 6), b2 = mk_block(&b1, 7);
	w = mk_block(&b2, 9);
	feed(s.r[0].hs, &a), feed(s.r[0].hs, &b), feed(s.r[0].hs, &b1), feed(s.r[0].hs, &b2);
	TAP_EQ(lg_hs_committed(s.r[0].hs, NULL), 0);
	feed(s.r[0].hs, &w);
	uint8_t h[CM_HASH_BYTES];
	TAP_EQ(lg_hs_committed(s.r[0].hs, h), 2);
	TAP_CHECK(memcmp(h, b.hash, CM_HASH_BYTES) == 0);
	TAP_EQ(s.r[0].committed.n, 3);
	TAP_CHECK(memcmp(s.r[0].committed.h[1], a.hash, CM_HASH_BYTES) == 0);
	TAP_EQ(lg_hs_view(s.r[0].hs), 8); /* QC(7) ends view 7; the view-9 block waits */
	TAP_CHECK(!s.failed);
	sim_free(&s);
}

/* safeNode (sec. 4.2): a block that neither extends the locked block nor
 * carries a newer QC than the lock gets no vote; and the lock survives a
 * restart, since it was persisted with the vote. */
static void test_lock_rule(void)
{
	static sim s;
	static cm_qc gqc;
	cm_block g, a, b, c, f, h, k;
	cm_block_genesis(&g);
	cm_qc_genesis(&gqc);
	solo_init(&s, 70);
	replica *r = &s.r[0];
	a = mk_block(&g, 1), b = mk_block(&a, 2), c = mk_block(&b, 3);
	feed(r->hs, &a), feed(r->hs, &b), feed(r->hs, &c);
	TAP_EQ(lg_hs_locked_qc(r->hs)->view, 1); /* QC(c's grandparent a) */
	TAP_EQ(lg_hs_last_voted_view(r->hs), 3);
	uint64_t votes = r->votes_out;

	/* view 5, by NEW-VIEWs; a fork from genesis: older than the lock */
	feed_newviews(r->hs, 5, &gqc);
	TAP_EQ(lg_hs_view(r->hs), 5);
	f = mk_block(&g, 5);
	feed(r->hs, &f);
	TAP_EQ(r->votes_out, votes);
	TAP_EQ(lg_hs_last_voted_view(r->hs), 3);

	/* the same fork after a restart: the lock came back from disk */
	crash(&s, 0);
	restart(&s, 0);
	TAP_EQ(lg_hs_locked_qc(r->hs)->view, 1);
	feed_newviews(r->hs, 5, &gqc);
	feed(r->hs, &f);
	TAP_EQ(r->votes_out, votes);

	/* a child of the fork carrying QC(f) of view 5 > the lock's view: vote */
	h = mk_block(&f, 6);
	feed(r->hs, &h);
	TAP_EQ(r->votes_out, votes + 1);
	TAP_EQ(lg_hs_last_voted_view(r->hs), 6);

	/* extending the locked block, with a QC no newer than the lock: vote */
	feed_newviews(r->hs, 7, lg_hs_high_qc(r->hs));
	k = mk_block(&a, 7);
	TAP_EQ(k.justify.view, lg_hs_locked_qc(r->hs)->view);
	feed(r->hs, &k);
	TAP_EQ(r->votes_out, votes + 2);
	/* a second block for view 7: never a second vote */
	k.payload_len = 1;
	k.payload = (const uint8_t *)"x";
	cm_block_hash(&k);
	feed(r->hs, &k);
	TAP_EQ(r->votes_out, votes + 2);

	/* the blocks are lost, the safety state is not: the lock alone keeps a
	 * fork from genesis unvoted */
	crash(&s, 0);
	bstore_free(&r->store);
	restart(&s, 0);
	TAP_EQ(lg_hs_locked_qc(r->hs)->view, 1);
	TAP_EQ(lg_hs_last_voted_view(r->hs), 7);
	feed_newviews(r->hs, 9, &gqc);
	TAP_EQ(lg_hs_view(r->hs), 9);
	f = mk_block(&g, 9);
	feed(r->hs, &f);
	TAP_EQ(r->votes_out, votes + 2);
	TAP_CHECK(!s.failed);
	report(&s);
	sim_free(&s);
}

/* ---- forged and replayed QCs (a QC is nothing but its signatures) ---- */

enum { FORGE_NONE, FORGE_FEW, FORGE_VIEW, FORGE_BLOCK, FORGE_CHAIN, FORGE_FLIP, FORGE_EXTRA_BIT,
       FORGE_EXTRA_SIGNER, FORGE_KINDS };
static const char *const forge_name[FORGE_KINDS] = {
	"no signers", "too few signers", "signatures of another view", "signatures of another block",
	"signatures of another chain", "one signature flipped", "a signer bit past n",
	"an extra signer without a signature"};

static void make_qc_on(cm_qc *qc, const uint8_t *chain, uint64_t view, const uint8_t *hash, uint64_t signers)
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
static void forge_qc(cm_qc *qc, int kind, uint64_t view, const uint8_t *hash)
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

/* Replica 0 holds the valid QC(b) (view 2); every forged copy of it --
 * as a block's justify in a proposal, as a NEW-VIEW's high QC -- is refused
 * and never stored or voted for, while the real QC still works. */
static void test_forged_qcs(void)
{
	static sim s;
	static cm_qc bad;
	static lg_hs_msg m;
	cm_block g, a, b, c, d;
	cm_block_genesis(&g);
	for (int kind = 0; kind < FORGE_KINDS; kind++) {
		solo_init(&s, 80 + (uint64_t)kind);
		replica *r = &s.r[0];
		a = mk_block(&g, 1), b = mk_block(&a, 2), c = mk_block(&b, 3);
		feed(r->hs, &a), feed(r->hs, &b), feed(r->hs, &c);
		TAP_EQ(lg_hs_high_qc(r->hs)->view, 2);
		feed_newviews(r->hs, 5, lg_hs_high_qc(r->hs));
		TAP_EQ(lg_hs_view(r->hs), 5);
		uint64_t votes = r->votes_out;
		lg_hs_stats st0, st1;
		lg_hs_get_stats(r->hs, &st0);

		forge_qc(&bad, kind, b.view, b.hash);
		TAP_CHECK(cm_qc_verify(&bad, CHAIN, N, F, verify_cb, NULL) != CM_OK);
		d = mk_block(&b, 5);
		d.justify = bad;
		cm_block_hash(&d);
		int rc = feed(r->hs, &d);
		if (rc == CM_OK || bstore_find(&r->store, d.hash) >= 0 || r->votes_out != votes)
			printf("# a block whose justify QC has %s was taken\n", forge_name[kind]);
		TAP_CHECK(rc == CM_ERR_VERIFY || rc == CM_ERR_INVALID);
		TAP_CHECK(bstore_find(&r->store, d.hash) < 0);
		TAP_EQ(r->votes_out, votes);
		/* the same forged block fetched rather than proposed */
		TAP_CHECK(lg_hs_on_block(r->hs, &d) != CM_OK);
		TAP_CHECK(bstore_find(&r->store, d.hash) < 0);

		/* a NEW-VIEW carrying it, correctly signed by its sender */
		uint8_t dg[CM_HASH_BYTES];
		m.type = LG_HS_MSG_NEWVIEW;
		m.u.newview.view = 6;
		m.u.newview.high_qc = bad;
		m.u.newview.sender = 1;
		lg_hs_newview_digest(dg, CHAIN, 6, &bad);
		fake_sign(1, dg, m.u.newview.sig);
		rc = lg_hs_on_message(r->hs, 1, &m);
		if (rc == CM_OK)
			printf("# a NEW-VIEW whose high QC has %s was taken\n", forge_name[kind]);
		TAP_CHECK(rc == CM_ERR_VERIFY || rc == CM_ERR_INVALID);
		lg_hs_get_stats(r->hs, &st1);
		TAP_CHECK(st1.bad_sigs >= st0.bad_sigs + 3);
		TAP_CHECK(cm_qc_verify(lg_hs_high_qc(r->hs), CHAIN, N, F, verify_cb, NULL) == CM_OK);
		TAP_CHECK(cm_qc_verify(lg_hs_locked_qc(r->hs), CHAIN, N, F, verify_cb, NULL) == CM_OK);

		/* the real QC(b): stored and voted for */
		d = mk_block(&b, 5);
		TAP_EQ(feed(r->hs, &d), CM_OK);
		TAP_CHECK(bstore_find(&r->store, d.hash) >= 0);
		TAP_EQ(r->votes_out, votes + 1);
		TAP_CHECK(!s.failed);
		report(&s);
		sim_free(&s);
	}
}

/* What a restart reads back is verified in full too: a stored block whose
 * justify QC is forged (here: written to the disk behind the core's back)
 * teaches nothing, and neither does a safety state with a forged lock. */
static void test_forged_qc_on_restore(void)
{
	static sim s;
	static cm_qc bad;
	cm_block g, a, b, c;
	cm_block_genesis(&g);
	for (int kind = 0; kind < FORGE_KINDS; kind++) {
		solo_init(&s, 90 + (uint64_t)kind);
		replica *r = &s.r[0];
		a = mk_block(&g, 1), b = mk_block(&a, 2);
		feed(r->hs, &a), feed(r->hs, &b);
		TAP_EQ(lg_hs_high_qc(r->hs)->view, 1);
		forge_qc(&bad, kind, b.view, b.hash);
		c = mk_block(&b, 3);
		c.justify = bad;
		cm_block_hash(&c);
		bstore_add(&r->store, &c);
		crash(&s, 0);
		restart(&s, 0);
		TAP_CHECK(r->hs != NULL);
		if (!r->hs)
			break;
		if (lg_hs_high_qc(r->hs)->view != 1)
			printf("# a stored justify QC with %s became the high QC\n", forge_name[kind]);
		TAP_EQ(lg_hs_high_qc(r->hs)->view, 1);
		TAP_CHECK(cm_qc_verify(lg_hs_high_qc(r->hs), CHAIN, N, F, verify_cb, NULL) == CM_OK);
		TAP_CHECK(cm_qc_verify(lg_hs_locked_qc(r->hs), CHAIN, N, F, verify_cb, NULL) == CM_OK);
		TAP_CHECK(!s.failed);
		sim_free(&s);
	}
	/* a persisted lock that does not verify: restore refuses the state */
	solo_init(&s, 99);
	lg_hs_config cfg;
	lg_hs_io io = sim_io;
	replica_config(&s, 0, &cfg);
	io.ctx = &s.r[0];
	static lg_hs_safety st;
	uint8_t h[CM_HASH_BYTES];
	memset(h, 0x33, sizeof(h));
	for (int kind = 0; kind < FORGE_KINDS; kind++) {
		lg_hs *hs = NULL;
		memset(&st, 0, sizeof(st));
		st.last_voted_view = 9;
		cm_qc_genesis(&st.high_qc);
		forge_qc(&st.locked_qc, kind, 7, h);
		TAP_EQ(lg_hs_restore(&cfg, &io, &st, NULL, NULL, 0, &hs), CM_ERR_INVALID);
		lg_hs_destroy(hs);
	}
	sim_free(&s);
}

/* Votes and NEW-VIEWs are bound to the chain: the same message signed for
 * another chain's tag is refused, the one for this chain is taken. */
static void test_other_chain_refused(void)
{
	static const uint8_t other_chain[CM_HASH_BYTES] = {0x0c, 0x4a};
	static sim s;
	static lg_hs_msg m;
	static cm_qc gqc;
	uint8_t h[CM_HASH_BYTES], d[CM_HASH_BYTES];
	cm_qc_genesis(&gqc);
	memset(h, 0x21, sizeof(h));
	solo_init(&s, 95);
	lg_hs *hs = s.r[0].hs;
	/* votes of view 3 go to leader(3) = 3 and leader(4) = 0 */
	for (int pass = 0; pass < 2; pass++) {
		const uint8_t *chain = pass == 0 ? other_chain : CHAIN;
		m.type = LG_HS_MSG_VOTE;
		m.u.vote.view = 3;
		memcpy(m.u.vote.block_hash, h, CM_HASH_BYTES);
		m.u.vote.voter = 1;
		cm_vote_digest(d, chain, 3, h);
		fake_sign(1, d, m.u.vote.sig);
		TAP_EQ(lg_hs_on_message(hs, 1, &m), pass == 0 ? CM_ERR_VERIFY : CM_OK);
		m.type = LG_HS_MSG_NEWVIEW;
		m.u.newview.view = 2;
		m.u.newview.high_qc = gqc;
		m.u.newview.sender = 2;
		lg_hs_newview_digest(d, chain, 2, &gqc);
		fake_sign(2, d, m.u.newview.sig);
		TAP_EQ(lg_hs_on_message(hs, 2, &m), pass == 0 ? CM_ERR_VERIFY : CM_OK);
	}
	lg_hs_stats st;
	lg_hs_get_stats(hs, &st);
	TAP_EQ(st.bad_sigs, 2);
	TAP_CHECK(!s.failed);
	sim_free(&s);
}

/* The block tree must not wedge: before GST the votes of every third view
 * are lost, so QCs form but never three in consecutive views and nothing
 * commits, for many times max_blocks blocks; after GST the cluster commits
 * again within the usual bound. */
static void test_no_three_chain_then_gst(void)
{
	static sim s;
	sim_init(&s, 100);
	s.cfg.max_blocks = 16;
	set_network(&s, 0, 0, 0, 1, 10);
	s.drop_votes_mod3 = 1;
	sim_start(&s);
	uint64_t views = 0;
	while (!s.failed && views < 12 * 16 && s.now < 3600000) {
		run(&s, s.now + 1000, NULL, NULL);
		views = lg_hs_view(s.r[0].hs);
	}
	TAP_CHECK(views >= 12 * 16);
	TAP_EQ(max_honest_height(&s), 0);  /* the schedule did what it says */
	uint64_t highest = 0;
	for (uint32_t i = 0; i < N; i++)
		if (lg_hs_high_qc(s.r[i].hs)->view > highest)
			highest = lg_hs_high_qc(s.r[i].hs)->view;
	TAP_CHECK(highest > 8 * 16);       /* QCs kept forming */
	lg_hs_stats st;
	lg_hs_get_stats(s.r[0].hs, &st);
	TAP_CHECK(st.blocks_in_memory > 16); /* the locked branch outgrew max_blocks and was kept */
	s.drop_votes_mod3 = 0;
	expect_progress(&s, 5, LIVE_BOUND_MS, "GST after a long run without a three-chain");
	report(&s);
	TAP_CHECK(max_honest_height(&s) > 100); /* the long branch committed at once */
	lg_hs_get_stats(s.r[0].hs, &st);
	TAP_CHECK(st.blocks_in_memory <= 16);
	TAP_CHECK(!s.failed);
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* ---- random schedules ---- */

typedef struct schedule_info {
	uint64_t msgs, commits, crashes, partitions, byz, rounds;
	uint64_t worst_recovery_ms, worst_seed;
} schedule_info;

/* A random network for one phase of chaos: from nearly fine to very lossy. */
static void random_network(sim *s)
{
	switch (below(s, 4)) {
	case 0: /* good, as after healing */
		set_network(s, 0, 0, 0, 1, 20);
		break;
	case 1: /* slow: delays around the base timeout */
		set_network(s, (uint32_t)below(s, 50000), (uint32_t)below(s, 50000), 0, 1,
			    50 + (uint32_t)below(s, 2 * BASE_TIMEOUT));
		break;
	default: /* lossy, duplicating, corrupting */
		set_network(s, (uint32_t)below(s, 400000), (uint32_t)below(s, 150000),
			    (uint32_t)below(s, 20000), 1, 5 + (uint32_t)below(s, 300));
	}
}

static void random_partition(sim *s, schedule_info *info)
{
	uint64_t kind = below(s, 3);
	for (int i = 0; i < N; i++)
		s->group[i] = 0;
	if (kind == 0) {                /* one replica cut off */
		s->group[below(s, N)] = 1;
	} else if (kind == 1) {         /* two and two */
		uint32_t a = (uint32_t)below(s, N), b = (a + 1 + (uint32_t)below(s, N - 1)) % N;
		s->group[a] = s->group[b] = 1;
	} else {                        /* any split */
		for (int i = 0; i < N; i++)
			s->group[i] = (int)below(s, 2);
	}
	info->partitions++;
}

/* One seeded schedule: rounds of chaos -- changing networks, partitions,
 * crashes and restarts (of the leader too) -- each followed by a healed
 * network in which every honest running replica must commit again. 0 if
 * every check held. */
static int run_schedule(uint64_t seed, schedule_info *info)
{
	static sim s;
	sim_init(&s, seed);
	s.trace = getenv("MURI_HS_TRACE") != NULL;
	if (below(&s, 2)) {
		s.byz = (int)below(&s, N);
		s.equiv_ppm = (uint32_t)below(&s, 1000000);
		s.silent_ppm = (uint32_t)below(&s, 300000);
		s.poison_ppm = (uint32_t)below(&s, 200000);
		s.voteall_ppm = (uint32_t)below(&s, 1000000);
		s.junk_ppm = (uint32_t)below(&s, 30000);
		s.fork_ppm = (uint32_t)below(&s, 1000000);
		s.lie_ppm = (uint32_t)below(&s, 1000000);
		info->byz++;
	}
	sim_start(&s);
	int rounds = 1 + (int)below(&s, 3);
	for (int round = 0; round < rounds && !s.failed; round++) {
		uint64_t end = s.now + 500 + below(&s, 4000);
		/* chaos: every 50-800 ms something changes */
		while (s.now < end && !s.failed) {
			uint64_t k = below(&s, 10);
			if (k < 3) {
				random_network(&s);
			} else if (k < 5) {
				random_partition(&s, info);
			} else if (k < 6) {
				for (int i = 0; i < N; i++)
					s.group[i] = 0;
			} else if (k < 8) {
				/* crash an honest replica (often the leader), unless it is the
				 * only one of its kind left */
				int v = below(&s, 2) ? current_leader(&s) : (int)below(&s, N);
				int up = 0;
				for (int i = 0; i < N; i++)
					up += s.r[i].hs != NULL;
				if (v != s.byz && s.r[v].hs && up > 1) {
					crash(&s, (uint32_t)v);
					info->crashes++;
				}
			} else {
				int v = (int)below(&s, N);
				if (!s.r[v].hs)
					restart(&s, (uint32_t)v);
			}
			uint64_t next = s.now + 50 + below(&s, 750);
			run(&s, next < end ? next : end, NULL, NULL);
		}
		/* heal: no loss, short delays; restart the crashed, except that with
		 * no Byzantine replica one may stay down (f = 1 faulty) */
		heal(&s);
		int keep_down = s.byz < 0 && below(&s, 3) == 0 ? (int)below(&s, N) : -1;
		for (int i = 0; i < N; i++) {
			if (!s.r[i].hs && i != keep_down)
				restart(&s, (uint32_t)i);
		}
		if (keep_down >= 0 && s.r[keep_down].hs)
			crash(&s, (uint32_t)keep_down);
		uint64_t healed = s.now;
		if (s.trace)
			printf("# %6" PRIu64 " healed; byzantine %d; up:%s%s%s%s\n", s.now, s.byz, s.r[0].hs ? " 0" : "",
			       s.r[1].hs ? " 1" : "", s.r[2].hs ? " 2" : "", s.r[3].hs ? " 3" : "");
		expect_progress(&s, 3 + below(&s, 10), LIVE_BOUND_MS, "after healing");
		if (s.now - healed > info->worst_recovery_ms) {
			info->worst_recovery_ms = s.now - healed;
			info->worst_seed = seed;
		}
		info->rounds++;
	}
	if (!s.failed && !chains_agree(&s))
		sim_fail(&s, "committed chains differ");
	info->msgs += s.msgs;
	info->commits += max_honest_height(&s);
	int failed = s.failed;
	report(&s);
	sim_free(&s);
	return failed;
}

static uint64_t schedule_seed(uint64_t k)
{
	return mix64(0x686f7473747566ULL + k); /* "hotstuf" */
}

static void test_random_schedules(void)
{
	const char *env = getenv("MURI_HS_SCHEDULES"), *one = getenv("MURI_HS_SEED");
	long count = env ? atol(env) : DEFAULT_SCHEDULES;
	schedule_info info = {0};
	int failures = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (one) {
		uint64_t seed = strtoull(one, NULL, 0);
		failures += run_schedule(seed, &info);
		count = 1;
	} else {
		for (long k = 0; k < count && failures < 5; k++)
			failures += run_schedule(schedule_seed((uint64_t)k), &info);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# %ld schedules (%" PRIu64 " heal rounds, %" PRIu64 " with a Byzantine replica, %" PRIu64
	       " crashes, %" PRIu64 " partitions): %" PRIu64 " messages, %" PRIu64
	       " blocks committed, %d failed, %.1f s\n", count, info.rounds, info.byz, info.crashes,
	       info.partitions, info.msgs, info.commits, failures, secs);
	printf("# slowest recovery after healing: %" PRIu64 " simulated ms (seed 0x%016" PRIx64 ")\n",
	       info.worst_recovery_ms, info.worst_seed);
	TAP_EQ(failures, 0);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_codec);
	TAP_RUN(test_genesis_and_qc);
	TAP_RUN(test_three_chain_rule);
	TAP_RUN(test_lock_rule);
	TAP_RUN(test_forged_qcs);
	TAP_RUN(test_forged_qc_on_restore);
	TAP_RUN(test_other_chain_refused);
	TAP_RUN(test_no_three_chain_then_gst);
	TAP_RUN(test_happy_path);
	TAP_RUN(test_ed25519);
	TAP_RUN(test_leader_crash_recovery);
	TAP_RUN(test_byzantine_equivocation);
	TAP_RUN(test_rejected_payload);
	TAP_RUN(test_persist_failure_means_no_vote);
	TAP_RUN(test_commit_failure_retried);
	TAP_RUN(test_pacemaker_backoff);
	TAP_RUN(test_untrusted_input);
	TAP_RUN(test_random_schedules);
	return tap_done();
}
