/* The state machine's Magus and placement: creation (members drawn by
 * stake from the beacon, fragments placed on member slots), drop, the
 * membership changes that follow an indexer's activity, a primary's request to
 * drop a backup (failover reports: lg_st_failover.c), and the fill limit.
 *
 * Membership. A Magu has `slots` member seats, min(fragments x replication,
 * magu_max_members) but at least replication, filled at creation by a
 * stake-weighted draw without replacement among the active indexers, seeded
 * by the beacon. Fragments are placed by weighted rendezvous hashing
 * (cm_ring) on the seats, not on the indexers: when a member leaves (unstaked
 * below min_stake, or jailed after max_failures failed challenges), a
 * stake-weighted draw among active non-members takes its seat over and
 * exactly its fragments move; with no candidate the seat is vacated and only
 * its fragments move, to the next-ranked seats. An indexer that becomes
 * active fills the first vacant seat of every Magu and takes only the
 * fragments that rank that seat among their top replication. A changed
 * replica set bumps the fragment's epoch; the primary stays if it is still a
 * replica, else the first replica that was one before takes over.
 *
 * Hand-over. A member that unstakes (not one jailed or dropped) stays a
 * replica of each of its fragments that got a new replica, marked leaving
 * (lg_st_handover.c), until the new replicas signed a root of the hand-over
 * epoch or handover_deadline blocks passed; only then is it removed.
 *
 * Fill (lg_fill.h). No placement takes an indexer to max_fill (per mille of
 * its registered capacity) by the state's own estimate of its used bytes:
 * CreateMagu draws its members among the active indexers below max_fill (and
 * fails, naming capacity, with fewer than replication of them); a
 * replacement member is drawn among the candidates that can take the
 * leaver's fragments; a joining indexer at max_fill takes no seat; and a
 * fragment's new replicas are its best-ranked seats whose holders can take
 * its expected bytes (its committed size, a split half's half of the
 * parent's) or hold it already. When fewer than replication seats qualify,
 * the best-ranked others make up the set, in ring order after those that
 * qualify (a fragment is never left without replicas). With every indexer
 * below max_fill every step is the plain rendezvous placement above. */
#include "lg_state_int.h"
#include "cm_fragment.h"
#include "cm_ring.h"
#include "lg_fill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(LG_MAX_REPLICAS <= CM_FRAGMENT_MAX_REPLICAS, "a replica set must fit the shared rule");

#define KEY_MAX 256               /* bytes of a placement key */

/* ---- placement: members by stake, fragments on member slots ---- */

/* A placement key: label, NUL, name, NUL, then extra bytes. */
typedef struct pkey {
	uint8_t b[KEY_MAX];
	size_t n;
} pkey;

static void pkey_init(pkey *k, const char *label, const char *name)
{
	size_t a = strlen(label) + 1, b = strlen(name) + 1;
	memcpy(k->b, label, a);
	memcpy(k->b + a, name, b);
	k->n = a + b;
}

static void pkey_add(pkey *k, const void *p, size_t n)
{
	if (k->n + n <= KEY_MAX) {
		memcpy(k->b + k->n, p, n);
		k->n += n;
	}
}

/* Picks up to count distinct entries of cands, weighted by stake
 * (Efraimidis-Spirakis sampling via cm_ring's weighted rendezvous scores,
 * top-r taken 64 at a time), writing indices into out in draw order.
 * *got <= count; CM_ERR_NOMEM. */
static int draw_by_stake(const lg_staked *cands, size_t n, const pkey *key, size_t count,
			 size_t *out, size_t *got)
{
	cm_ring_node *nodes;
	size_t have = 0, idx[CM_RING_MAX_R], c;
	int rc = CM_OK;

	*got = 0;
	if (n == 0 || count == 0)
		return CM_OK;
	if (!(nodes = malloc(n * sizeof(*nodes))))
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(nodes[i].id, cands[i].pk, CM_RING_ID_BYTES);
		nodes[i].weight = cands[i].stake;
	}
	while (have < count) {
		size_t r = count - have < CM_RING_MAX_R ? count - have : CM_RING_MAX_R;
		if ((rc = cm_ring_place(nodes, n, key->b, key->n, r, idx, &c)) != CM_OK || c == 0)
			break;
		for (size_t j = 0; j < c; j++) {
			out[have++] = idx[j];
			nodes[idx[j]].weight = 0; /* without replacement */
		}
		if (c < r)
			break;
	}
	free(nodes);
	*got = have;
	return rc;
}

/* A slot's identity on the ring: fixed for the life of the Magu, whoever
 * holds it, so that replacing a member moves exactly its fragments. */
static void slot_id(uint8_t out[CM_RING_ID_BYTES], const char *magu, uint32_t slot)
{
	cm_hasher h;
	uint8_t sb[4];
	cm_put_be32(sb, slot);
	cm_hasher_init(&h, CM_DOM_STATE);
	cm_hasher_update(&h, "muri.slot", 10);
	cm_hasher_update(&h, magu, strlen(magu) + 1);
	cm_hasher_update(&h, sb, sizeof(sb));
	cm_hasher_final(&h, out);
}

/* The filled slots of a Magu as ring nodes (weight 1) with their holders. */
typedef struct slot_ring {
	cm_ring_node *nodes;
	uint8_t (*holders)[LG_KEY_BYTES];
	size_t n;
} slot_ring;

static void slot_ring_free(slot_ring *sr)
{
	free(sr->nodes);
	free(sr->holders);
	memset(sr, 0, sizeof(*sr));
}

static int slot_ring_build(slot_ring *sr, const char *magu, const lg_slot *slots, size_t n)
{
	memset(sr, 0, sizeof(*sr));
	sr->nodes = malloc((n ? n : 1) * sizeof(*sr->nodes));
	sr->holders = malloc((n ? n : 1) * LG_KEY_BYTES);
	if (!sr->nodes || !sr->holders) {
		slot_ring_free(sr);
		return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!slots[i].filled)
			continue;
		slot_id(sr->nodes[sr->n].id, magu, slots[i].slot);
		sr->nodes[sr->n].weight = 1;
		memcpy(sr->holders[sr->n], slots[i].holder, LG_KEY_BYTES);
		sr->n++;
	}
	return CM_OK;
}

/* ---- fill: who can take how many more bytes ---- */

typedef struct fit {
	lg_fill_table t;
	uint64_t max_fill, overhead;
} fit;

static int fit_open(lg_state *st, fit *ft)
{
	ft->max_fill = lg_st_pu(st, P_MAX_FILL);
	ft->overhead = lg_st_pu(st, P_RECORD_OVERHEAD);
	return lg_fill_build(st->store, ft->overhead, &ft->t);
}

/* *ok: pk can take add more bytes and stay below max_fill. */
static int fit_ok(lg_state *st, const fit *ft, const uint8_t *pk, uint64_t add, int *ok)
{
	lg_indexer ix;
	int rc = lg_store_indexer_get(st->store, pk, &ix);
	if (rc == CM_ERR_NOTFOUND) {
		*ok = 1;
		return CM_OK;
	}
	if (rc == CM_OK)
		*ok = lg_fill_fits(lg_fill_used(&ft->t, pk), add, ix.capacity, ft->max_fill);
	return rc;
}

/* The estimated bytes of records records of m. */
static uint64_t fit_bytes(const fit *ft, const lg_magu *m, uint64_t records)
{
	return lg_fill_mul(records, lg_fill_record_bytes(m->dimension, m->metric, ft->overhead));
}

/* All of sr's slots in ring order for key k (ties as cm_ring_place). */
static int rank_all(const slot_ring *sr, const pkey *k, size_t *order, size_t *got)
{
	cm_ring_node *nodes = malloc(sr->n * sizeof(*nodes));
	size_t have = 0, idx[CM_RING_MAX_R], c;
	int rc = CM_OK;
	if (!nodes)
		return CM_ERR_NOMEM;
	memcpy(nodes, sr->nodes, sr->n * sizeof(*nodes));
	while (have < sr->n) {
		if ((rc = cm_ring_place(nodes, sr->n, k->b, k->n, CM_RING_MAX_R, idx, &c)) != CM_OK || c == 0)
			break;
		for (size_t j = 0; j < c; j++) {
			order[have++] = idx[j];
			nodes[idx[j]].weight = 0;
		}
	}
	free(nodes);
	*got = have;
	return rc;
}

/* The replicas of fragment of m, best first: the holders of the r best
 * slots that can take add bytes (or are in cur, a replica set that holds it
 * already; NULL for a new fragment), then, when fewer qualify, the best of
 * the others (*over counts them). New replicas are charged add in ft. With
 * every holder able, this is the plain top r of the ring. */
static int place_fragment(lg_state *st, fit *ft, const slot_ring *sr, const lg_magu *m, uint32_t fragment,
			  uint64_t add, const lg_fragment *cur, uint8_t out[][LG_KEY_BYTES], uint32_t *n,
			  uint32_t *over)
{
	pkey k;
	uint8_t fb[4];
	size_t idx[CM_RING_MAX_R], c = 0, *order = NULL, no = 0, sel[LG_MAX_REPLICAS], ns = 0;
	uint32_t r = m->replication, nok = 0;
	int rc, *ok = NULL;

	*n = 0;
	*over = 0;
	if (sr->n == 0)
		return CM_OK;
	pkey_init(&k, "muri.fragment", m->name);
	cm_put_be32(fb, fragment);
	pkey_add(&k, fb, sizeof(fb));
	if ((rc = cm_ring_place(sr->nodes, sr->n, k.b, k.n, r, idx, &c)) != CM_OK)
		return rc;
	if (!(ok = calloc(sr->n, sizeof(*ok))) || !(order = malloc(sr->n * sizeof(*order)))) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < c && rc == CM_OK; i++) {
		const uint8_t *h = sr->holders[idx[i]];
		if (!(ok[idx[i]] = cur && lg_st_replica_index(cur, h) >= 0))
			rc = fit_ok(st, ft, h, add, &ok[idx[i]]);
		nok += ok[idx[i]] ? 1 : 0;
		sel[ns++] = idx[i];
	}
	if (rc == CM_OK && nok < c) { /* some of the best cannot take it: walk the whole ring */
		if ((rc = rank_all(sr, &k, order, &no)) != CM_OK)
			goto out;
		ns = 0;
		for (size_t i = 0; i < no && ns < r && rc == CM_OK; i++) {
			const uint8_t *h = sr->holders[order[i]];
			if (!(ok[order[i]] = cur && lg_st_replica_index(cur, h) >= 0))
				rc = fit_ok(st, ft, h, add, &ok[order[i]]);
			if (ok[order[i]])
				sel[ns++] = order[i];
		}
		for (size_t i = 0; i < no && ns < r && rc == CM_OK; i++)
			if (!ok[order[i]]) { /* fewer qualify than r: the best of the rest */
				sel[ns++] = order[i];
				(*over)++;
			}
	}
	for (size_t i = 0; i < ns && rc == CM_OK; i++) {
		memcpy(out[i], sr->holders[sel[i]], LG_KEY_BYTES);
		if (add && !(cur && lg_st_replica_index(cur, out[i]) >= 0))
			rc = lg_fill_charge(&ft->t, out[i], add);
	}
	if (rc == CM_OK)
		*n = (uint32_t)ns;
out:
	free(order);
	free(ok);
	return rc;
}

static int in_list(const uint8_t (*list)[LG_KEY_BYTES], uint32_t n, const uint8_t *pk)
{
	for (uint32_t i = 0; i < n; i++)
		if (lg_st_key_eq(list[i], pk))
			return 1;
	return 0;
}

/* Gives fragment f the replica set repl (ring order). If it differs, the
 * epoch goes up by one, pending failover requests are dropped, and the
 * primary stays if it is still a replica, else becomes the first replica
 * that was one before (it has the data), else the first. */
int lg_st_reconfigure(lg_state *st, lg_fragment *f, const uint8_t (*repl)[LG_KEY_BYTES], uint32_t n)
{
	const uint8_t *primary = NULL;
	int rc;

	if (n == f->nreplicas && memcmp(repl, f->replicas, (size_t)n * LG_KEY_BYTES) == 0)
		return CM_OK;
	/* No seat of the Magu has a holder (every member left or was jailed and
	 * no active indexer could take a seat): the fragment keeps the replicas
	 * it has, the only ones holding its data, rather than a configuration
	 * with none, which no indexer could serve. It moves when a seat fills. */
	if (n == 0)
		return CM_OK;
	if (in_list(repl, n, f->primary))
		primary = f->primary;
	for (uint32_t i = 0; !primary && i < n; i++)
		if (in_list((const uint8_t(*)[LG_KEY_BYTES])f->replicas, f->nreplicas, repl[i]))
			primary = repl[i];
	if (!primary && n)
		primary = repl[0];
	if (primary)
		memmove(f->primary, primary, LG_KEY_BYTES);
	else
		memset(f->primary, 0, LG_KEY_BYTES);
	memcpy(f->replicas, repl, (size_t)n * LG_KEY_BYTES);
	f->nreplicas = n;
	f->epoch++;
	if ((rc = lg_store_failovers_clear(st->store, f->magu, f->fragment)) != CM_OK ||
	    (rc = lg_store_root_votes_clear(st->store, f->magu, f->fragment)) != CM_OK ||
	    (rc = lg_store_fragment_put(st->store, f)) != CM_OK)
		return rc;
	return lg_st_fx_fragment(st, f->magu, f->fragment);
}

/* Re-places the fragments of a Magu over its current slots: every fragment
 * when only_with is NULL (a slot was filled), else only the fragments that
 * have only_with as a replica (its slot was vacated or handed over); by the
 * rendezvous property no other fragment can change. keep (may be NULL): a
 * leaver that hands its fragments over; leavers still handing over stay. */
static int replace_fragments(lg_state *st, fit *ft, const lg_magu *m, const uint8_t *only_with,
			     const uint8_t *keep)
{
	lg_slot *slots = NULL;
	lg_fragment *fr = NULL;
	size_t ns, nf;
	slot_ring sr = {0};
	uint8_t repl[LG_MAX_REPLICAS][LG_KEY_BYTES];
	uint32_t n, over;
	int rc;

	if ((rc = lg_store_slots_of_magu(st->store, m->name, &slots, &ns)) != CM_OK ||
	    (rc = lg_store_fragments_of(st->store, m->name, &fr, &nf)) != CM_OK ||
	    (rc = slot_ring_build(&sr, m->name, slots, ns)) != CM_OK)
		goto out;
	for (size_t i = 0; i < nf && rc == CM_OK; i++) {
		int retired = 0;
		if (only_with && !in_list((const uint8_t(*)[LG_KEY_BYTES])fr[i].replicas, fr[i].nreplicas,
					  only_with))
			continue;
		if ((rc = lg_st_split_retired(st, m->name, fr[i].fragment, &retired)) != CM_OK || retired)
			continue; /* a retired fragment of a split needs no replicas */
		if ((rc = place_fragment(st, ft, &sr, m, fr[i].fragment, fit_bytes(ft, m, fr[i].committed_size),
					 &fr[i], repl, &n, &over)) == CM_OK &&
		    (rc = lg_st_handover_keep(st, &fr[i], keep, repl, &n)) == CM_OK)
			rc = lg_st_reconfigure(st, &fr[i], (const uint8_t(*)[LG_KEY_BYTES])repl, n);
	}
out:
	slot_ring_free(&sr);
	free(slots);
	free(fr);
	return rc;
}

int lg_st_place(lg_state *st, const lg_magu *m, uint32_t fragment, uint64_t records, lg_fragment *out)
{
	lg_slot *slots = NULL;
	size_t ns;
	slot_ring sr = {0};
	lg_fragment f;
	fit ft;
	uint32_t over = 0;
	int rc;

	memset(&f, 0, sizeof(f));
	snprintf(f.magu, sizeof(f.magu), "%s", m->name);
	f.fragment = fragment;
	f.epoch = 1;
	if ((rc = fit_open(st, &ft)) != CM_OK)
		return rc;
	if ((rc = lg_store_slots_of_magu(st->store, m->name, &slots, &ns)) == CM_OK &&
	    (rc = slot_ring_build(&sr, m->name, slots, ns)) == CM_OK &&
	    (rc = place_fragment(st, &ft, &sr, m, fragment, fit_bytes(&ft, m, records), NULL, f.replicas,
				 &f.nreplicas, &over)) == CM_OK) {
		if (f.nreplicas)
			memcpy(f.primary, f.replicas[0], LG_KEY_BYTES);
		*out = f;
	}
	lg_fill_free(&ft.t);
	slot_ring_free(&sr);
	free(slots);
	return rc;
}

/* pk (now inactive) leaves the Magu where it holds slot sl: a stake-weighted
 * draw among active indexers that are not members takes the slot over, or
 * the slot is left vacant; only pk's fragments move. With handover, pk stays
 * a replica of them until their new replicas caught up. */
static int leave_magu(lg_state *st, const lg_slot *held, const uint8_t *pk, int handover)
{
	lg_magu m;
	lg_slot *slots = NULL, sl = *held;
	lg_staked *act = NULL, *cand = NULL;
	lg_fragment *fr = NULL;
	size_t ns, na, nc = 0, nf, pick[1], got = 0;
	uint64_t take = 0;
	fit ft = {0};
	pkey k;
	uint8_t sb[4], hb[8];
	int rc;

	if ((rc = lg_store_magu_get(st->store, held->magu, &m)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? lg_st_err(st, CM_ERR_INTERNAL, "slot of a missing Magu") : rc;
	if ((rc = fit_open(st, &ft)) != CM_OK || (rc = lg_store_slots_of_magu(st->store, m.name, &slots, &ns)) != CM_OK ||
	    (rc = lg_store_indexer_active(st->store, &act, &na)) != CM_OK ||
	    (rc = lg_store_fragments_of(st->store, m.name, &fr, &nf)) != CM_OK)
		goto out;
	for (size_t i = 0; i < nf && rc == CM_OK; i++) { /* what the seat's new holder takes over */
		int retired = 0;
		if (lg_st_replica_index(&fr[i], pk) >= 0 &&
		    (rc = lg_st_split_retired(st, m.name, fr[i].fragment, &retired)) == CM_OK && !retired)
			take = lg_fill_add(take, fit_bytes(&ft, &m, fr[i].committed_size));
	}
	if (rc != CM_OK)
		goto out;
	if (!(cand = malloc((na ? na : 1) * sizeof(*cand)))) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < na && rc == CM_OK; i++) {
		int member = 0, room = 0;
		for (size_t j = 0; j < ns && !member; j++)
			member = slots[j].filled && lg_st_key_eq(slots[j].holder, act[i].pk);
		if (member || lg_st_key_eq(act[i].pk, pk) || (rc = fit_ok(st, &ft, act[i].pk, take, &room)) != CM_OK)
			continue;
		if (room) /* one that would pass max_fill does not take the seat */
			cand[nc++] = act[i];
	}
	if (rc != CM_OK)
		goto out;
	pkey_init(&k, "muri.replace", m.name);
	cm_put_be32(sb, sl.slot);
	cm_put_be64(hb, lg_st_height(st));
	pkey_add(&k, sb, sizeof(sb));
	pkey_add(&k, st->blk->beacon, CM_HASH_BYTES);
	pkey_add(&k, hb, sizeof(hb));
	if ((rc = draw_by_stake(cand, nc, &k, 1, pick, &got)) != CM_OK)
		goto out;
	if (got) {
		memcpy(sl.holder, cand[pick[0]].pk, LG_KEY_BYTES);
		sl.filled = 1;
	} else {
		sl.filled = 0;
		memset(sl.holder, 0, LG_KEY_BYTES);
	}
	if ((rc = lg_store_slot_put(st->store, &sl)) == CM_OK &&
	    (rc = lg_st_fx_magu(st, LG_FX_MEMBERS, m.name)) == CM_OK)
		rc = replace_fragments(st, &ft, &m, pk, handover ? pk : NULL);
out:
	lg_fill_free(&ft.t);
	free(slots);
	free(act);
	free(cand);
	free(fr);
	return rc;
}

/* pk (now active) fills the first vacant slot of every Magu, by name, where
 * it is not a member yet, while it is below max_fill. */
static int join_magus(lg_state *st, const uint8_t *pk)
{
	char(*names)[LG_NAME_MAX + 1] = NULL;
	size_t nn;
	fit ft;
	int rc;

	if ((rc = fit_open(st, &ft)) != CM_OK)
		return rc;
	if ((rc = lg_store_magu_names(st->store, &names, &nn)) != CM_OK) {
		lg_fill_free(&ft.t);
		return rc;
	}
	for (size_t i = 0; i < nn && rc == CM_OK; i++) {
		lg_slot *slots = NULL;
		size_t ns, vacant = SIZE_MAX;
		int member = 0, room = 0;
		lg_magu m;
		if ((rc = fit_ok(st, &ft, pk, 0, &room)) != CM_OK || !room ||
		    (rc = lg_store_slots_of_magu(st->store, names[i], &slots, &ns)) != CM_OK)
			break;
		for (size_t j = 0; j < ns; j++) {
			if (!slots[j].filled && vacant == SIZE_MAX)
				vacant = j;
			if (slots[j].filled && lg_st_key_eq(slots[j].holder, pk))
				member = 1;
		}
		if (!member && vacant != SIZE_MAX) {
			slots[vacant].filled = 1;
			memcpy(slots[vacant].holder, pk, LG_KEY_BYTES);
			if ((rc = lg_store_slot_put(st->store, &slots[vacant])) == CM_OK &&
			    (rc = lg_st_fx_magu(st, LG_FX_MEMBERS, names[i])) == CM_OK &&
			    (rc = lg_store_magu_get(st->store, names[i], &m)) == CM_OK)
				rc = replace_fragments(st, &ft, &m, NULL, NULL);
		}
		free(slots);
	}
	lg_fill_free(&ft.t);
	free(names);
	return rc;
}

/* Brings an indexer's active flag in line with its stake and record, and
 * moves it out of or into Magus when the flag changes. */
int lg_st_refresh_indexer(lg_state *st, const uint8_t *pk)
{
	lg_indexer ix;
	lg_account a;
	lg_slot *held = NULL;
	size_t nh;
	int rc, want;

	if ((rc = lg_store_indexer_get(st->store, pk, &ix)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? CM_OK : rc;
	if ((rc = lg_st_account(st, pk, &a)) != CM_OK)
		return rc;
	want = !ix.jailed && a.staked >= lg_st_pu(st, P_MIN_STAKE);
	if (want == ix.active)
		return CM_OK;
	ix.active = want;
	if ((rc = lg_store_indexer_put(st->store, &ix)) != CM_OK)
		return rc;
	if (want)
		return join_magus(st, pk);
	if ((rc = lg_store_slots_of_holder(st->store, pk, &held, &nh)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nh && rc == CM_OK; i++)
		rc = leave_magu(st, &held[i], pk, !ix.jailed); /* a jailed node is not trusted to hand over */
	free(held);
	return rc;
}

int lg_st_create_magu(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__CreateMagu *c = t->create_magu;
	uint32_t F = c->fragments ? c->fragments : (uint32_t)lg_st_pu(st, P_FRAGMENTS_DEFAULT);
	uint32_t R = c->replication ? c->replication : (uint32_t)lg_st_pu(st, P_REPLICATION_DEFAULT);
	uint64_t target;
	lg_magu m;
	lg_account a;
	lg_staked *act = NULL;
	size_t na, nroom = 0, *pick = NULL, got = 0;
	lg_slot *slots = NULL;
	slot_ring sr = {0};
	fit ft = {0};
	uint32_t over;
	pkey k;
	int rc = lg_store_magu_get(st->store, c->name, &m);

	if (rc == CM_OK)
		return lg_st_fail(st, "create_magu.name: \"%s\" exists already", c->name);
	if (rc != CM_ERR_NOTFOUND)
		return rc;
	if (c->deposit < lg_st_pu(st, P_MIN_DEPOSIT))
		return lg_st_fail(st, "create_magu.deposit: %llu is below the minimum %llu",
			       (unsigned long long)c->deposit, (unsigned long long)lg_st_pu(st, P_MIN_DEPOSIT));
	if ((rc = lg_st_account(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.balance < c->deposit)
		return lg_st_fail(st, "create_magu.deposit: insufficient balance: %llu available after the fee, %llu asked",
			       (unsigned long long)a.balance, (unsigned long long)c->deposit);
	if ((rc = lg_store_indexer_active(st->store, &act, &na)) != CM_OK)
		return rc;
	if (na < R) {
		free(act);
		return lg_st_fail(st, "create_magu.replication: %u replicas need as many active indexers, %zu are active",
			       R, na);
	}
	if ((rc = fit_open(st, &ft)) != CM_OK) {
		free(act);
		return rc;
	}
	for (size_t i = 0; i < na && rc == CM_OK; i++) { /* members only among those below max_fill */
		int room = 0;
		if ((rc = fit_ok(st, &ft, act[i].pk, 0, &room)) == CM_OK && room)
			act[nroom++] = act[i];
	}
	if (rc != CM_OK)
		goto out;
	if (nroom < R) {
		rc = lg_st_fail(st, "create_magu.replication: capacity: %u replicas need as many active indexers below "
				"max_fill = %llu per mille of their registered capacity; %zu of %zu active are",
				R, (unsigned long long)ft.max_fill, nroom, na);
		goto out;
	}
	na = nroom;
	target = (uint64_t)F * R;
	if (target > lg_st_pu(st, P_MAGU_MAX_MEMBERS))
		target = lg_st_pu(st, P_MAGU_MAX_MEMBERS);
	if (target < R)
		target = R;

	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "%s", c->name);
	memcpy(m.owner, t->sender.data, LG_KEY_BYTES);
	m.dimension = c->dimension;
	m.metric = c->metric ? (uint32_t)c->metric : MURI__V1__METRIC__COSINE;
	m.fragments = F;
	m.replication = R;
	m.slots = (uint32_t)target;
	m.deposit = c->deposit;
	m.created_height = lg_st_height(st);
	if (c->index) {
		size_t len = muri__v1__index_spec__get_packed_size(c->index);
		if (len > LG_INDEX_SPEC_MAX) {
			free(act);
			return lg_st_fail(st, "create_magu.index: encoding too large");
		}
		m.index_spec_len = muri__v1__index_spec__pack(c->index, m.index_spec);
	}

	pick = malloc(target * sizeof(*pick));
	slots = calloc(target, sizeof(*slots));
	if (!pick || !slots) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	pkey_init(&k, "muri.members", m.name);
	pkey_add(&k, st->blk->beacon, CM_HASH_BYTES);
	if ((rc = draw_by_stake(act, na, &k, target, pick, &got)) != CM_OK)
		goto out;
	for (uint32_t i = 0; i < target; i++) {
		snprintf(slots[i].magu, sizeof(slots[i].magu), "%s", m.name);
		slots[i].slot = i;
		slots[i].filled = i < got;
		if (i < got)
			memcpy(slots[i].holder, act[pick[i]].pk, LG_KEY_BYTES);
		if ((rc = lg_store_slot_put(st->store, &slots[i])) != CM_OK)
			goto out;
	}
	if ((rc = slot_ring_build(&sr, m.name, slots, target)) != CM_OK)
		goto out;
	for (uint32_t f = 0; f < F; f++) {
		lg_fragment fr;
		memset(&fr, 0, sizeof(fr));
		snprintf(fr.magu, sizeof(fr.magu), "%s", m.name);
		fr.fragment = f;
		fr.epoch = 1;
		if ((rc = place_fragment(st, &ft, &sr, &m, f, 0, NULL, fr.replicas, &fr.nreplicas, &over)) != CM_OK)
			goto out;
		memcpy(fr.primary, fr.replicas[0], LG_KEY_BYTES);
		if ((rc = lg_store_fragment_put(st->store, &fr)) != CM_OK ||
		    (rc = lg_st_fx_fragment(st, fr.magu, fr.fragment)) != CM_OK)
			goto out;
	}
	a.balance -= c->deposit;
	if ((rc = lg_store_magu_put(st->store, &m)) != CM_OK ||
	    (rc = lg_store_account_put(st->store, &a)) != CM_OK ||
	    (rc = lg_st_fx_magu(st, LG_FX_CREATED, m.name)) != CM_OK ||
	    (rc = lg_st_fx_magu(st, LG_FX_MEMBERS, m.name)) != CM_OK)
		goto out;
	rc = lg_st_note(st, "Magu \"%s\" created: %u fragments x %u replicas over %zu members", m.name, F, R, got);
out:
	lg_fill_free(&ft.t);
	slot_ring_free(&sr);
	free(act);
	free(pick);
	free(slots);
	return rc;
}

int lg_st_drop_magu(lg_state *st, const Muri__V1__Transaction *t)
{
	const char *name = t->drop_magu->name;
	lg_magu m;
	lg_account a;
	lg_challenge *ch = NULL;
	size_t nch;
	int rc = lg_store_magu_get(st->store, name, &m);

	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "drop_magu.name: no Magu \"%s\"", name);
	if (rc != CM_OK)
		return rc;
	if (!lg_st_key_eq(m.owner, t->sender.data))
		return lg_st_fail(st, "drop_magu: only the owner of \"%s\" can drop it", name);
	if ((rc = lg_store_challenges_of_magu(st->store, name, &ch, &nch)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nch && rc == CM_OK; i++) {
		ch[i].status = LG_CH_CANCELLED;
		if ((rc = lg_store_challenge_put(st->store, &ch[i])) == CM_OK)
			rc = lg_st_fx_challenge(st, ch[i].id, 1);
	}
	free(ch);
	if (rc != CM_OK || (rc = lg_store_magu_del(st->store, name)) != CM_OK ||
	    (rc = lg_st_account(st, m.owner, &a)) != CM_OK)
		return rc;
	a.balance += m.deposit;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK ||
	    (rc = lg_st_fx_magu(st, LG_FX_DROPPED, name)) != CM_OK)
		return rc;
	return lg_st_note(st, "Magu \"%s\" dropped, deposit %llu returned", name, (unsigned long long)m.deposit);
}

/* The primary of the current epoch asks that a backup which stopped
 * answering be replaced: the backup gives its member seat of the Magu up
 * as if it had left (leave_magu: a stake-weighted draw among the active
 * non-members takes the seat, or it is left vacant), so exactly the
 * fragments it held move, each to epoch + 1 with its primary kept. The
 * backup stays an active indexer. */
int lg_st_drop_replica(lg_state *st, const Muri__V1__Transaction *t, const lg_fragment *f)
{
	const Muri__V1__FailoverRequest *q = t->failover;
	lg_slot *held = NULL;
	size_t nh;
	int rc, found = 0;

	if (!lg_st_key_eq(f->primary, t->sender.data))
		return lg_st_fail(st, "failover.drop: only the primary of fragment %u of \"%s\" may ask", q->fragment,
				  q->magu);
	if (lg_st_key_eq(q->drop.data, t->sender.data))
		return lg_st_fail(st, "failover.drop: the primary cannot drop itself");
	if (lg_st_replica_index(f, q->drop.data) < 0)
		return lg_st_fail(st, "failover.drop: %s is not a replica of fragment %u of \"%s\"",
				  lg_st_kh(q->drop.data).s, q->fragment, q->magu);
	if ((rc = lg_store_slots_of_holder(st->store, q->drop.data, &held, &nh)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nh && rc == CM_OK && !found; i++)
		if (strcmp(held[i].magu, f->magu) == 0) {
			found = 1;
			rc = leave_magu(st, &held[i], q->drop.data, 0);
		}
	free(held);
	if (rc != CM_OK)
		return rc;
	if (!found)
		return lg_st_fail(st, "failover.drop: %s holds no seat of \"%s\"", lg_st_kh(q->drop.data).s, q->magu);
	return lg_st_note(st, "%s dropped from \"%s\" at the request of fragment %u's primary",
			  lg_st_kh(q->drop.data).s, q->magu, q->fragment);
}
