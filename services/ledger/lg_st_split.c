/* The state machine's fragment splits (DESIGN.md "Fragments", issue 16):
 * a fragment splits in two when its Magu's owner asks (SplitFragment) or when
 * a committed root's size reaches the governed parameter split_size.
 *
 * The life of a split, all of it decided on chain so every replica, indexer
 * and gateway sees the same steps (types.proto FragmentPhase):
 *  1. SEALING: the fragment moves to epoch + 1 with the same replicas (root
 *     votes and failover reports of the old epoch dropped); the numbers of
 *     its two children are reserved. Replicas of a sealing epoch take no
 *     writes; the primary signs the root of its whole log.
 *  2. SPLIT: the sealing epoch's primary's vote on a committed (size, root),
 *     committed by a majority with it or before it, freezes the fragment at
 *     that root: it takes no more roots, and the two children are created,
 *     each a new fragment of epoch 1 placed on the Magu's seats like any
 *     other, owning one half of the parent's cell (common/cm_cell.h) and
 *     deriving its first records from the parent's log up to the frozen size
 *     (FragmentConfig.source). A failover of the sealing epoch keeps the seal:
 *     the new primary votes instead.
 *  3. A child's first committed root (size 0 with the empty root is accepted
 *     then, for a half that got no records) marks it derived; once both are,
 *     the parent is RETIRED: no longer challenged, its open challenges
 *     cancelled, its replicas free to drop it. */
#include "lg_state_int.h"
#include "cm_cell.h"
#include "cm_fragment.h"
#include "cm_merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *state_name(uint32_t s)
{
	return s == LG_CELL_SEALING ? "sealing" : s == LG_CELL_SPLIT ? "split" : s == LG_CELL_RETIRED ? "retired"
										      : "serving";
}

/* The next free fragment number of the Magu: above every fragment and every
 * number a sealing fragment reserved. */
static int next_number(lg_state *st, const char *magu, uint32_t *next)
{
	lg_fragment *fr = NULL;
	size_t nf;
	uint32_t n = 0;
	int rc = lg_store_fragments_of(st->store, magu, &fr, &nf);
	for (size_t i = 0; i < nf && rc == CM_OK; i++) {
		lg_cell c;
		if (fr[i].fragment + 1 > n)
			n = fr[i].fragment + 1;
		rc = lg_store_cell_get(st->store, magu, fr[i].fragment, &c);
		if (rc == CM_ERR_NOTFOUND)
			rc = CM_OK;
		for (uint32_t k = 0; rc == CM_OK && k < c.nchildren; k++)
			if (c.children[k] + 1 > n)
				n = c.children[k] + 1;
	}
	free(fr);
	if (rc == CM_OK)
		*next = n;
	return rc;
}

/* Why f (with cell c) cannot start a split, or NULL if it can. */
static int refuse_split(lg_state *st, const lg_fragment *f, const lg_cell *c, char *why, size_t n)
{
	uint32_t next;
	int rc;
	if (c->state != LG_CELL_SERVING) {
		snprintf(why, n, "fragment %u of \"%s\" is %s already", f->fragment, f->magu, state_name(c->state));
		return 1;
	}
	if (c->has_parent && !c->derived) {
		snprintf(why, n, "fragment %u of \"%s\" has not committed its first root since its parent %u split",
			 f->fragment, f->magu, c->parent);
		return 1;
	}
	if (c->depth >= CM_CELL_DEPTH_MAX) {
		snprintf(why, n, "fragment %u of \"%s\" is %u splits deep, the most there can be", f->fragment,
			 f->magu, c->depth);
		return 1;
	}
	if ((rc = next_number(st, f->magu, &next)) != CM_OK)
		return rc;
	if (next + 2 > LG_FRAGMENTS_MAX) {
		snprintf(why, n, "\"%s\" has %u fragment numbers in use; a split needs 2 more and %d is the most",
			 f->magu, next, LG_FRAGMENTS_MAX);
		return 1;
	}
	return 0;
}

/* Starts the split of f (cell c): SEALING in epoch + 1, children reserved. */
static int seal(lg_state *st, lg_fragment *f, lg_cell *c)
{
	uint32_t next;
	int rc = next_number(st, f->magu, &next);
	if (rc != CM_OK)
		return rc;
	c->state = LG_CELL_SEALING;
	c->nchildren = 2;
	c->children[0] = next;
	c->children[1] = next + 1;
	f->epoch++;
	if ((rc = lg_store_failovers_clear(st->store, f->magu, f->fragment)) != CM_OK ||
	    (rc = lg_store_root_votes_clear(st->store, f->magu, f->fragment)) != CM_OK ||
	    (rc = lg_store_fragment_put(st->store, f)) != CM_OK || (rc = lg_store_cell_put(st->store, c)) != CM_OK)
		return rc;
	return lg_st_fx_fragment(st, f->magu, f->fragment);
}

int lg_st_split_fragment(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__SplitFragment *q = t->split_fragment;
	lg_magu m;
	lg_fragment f;
	lg_cell c;
	lg_access *a;
	char why[LG_MSG_MAX];
	int rc = lg_store_magu_get(st->store, q->magu, &m), owner;

	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "split_fragment.magu: no Magu \"%s\"", q->magu);
	if (rc != CM_OK)
		return rc;
	if (!(a = malloc(sizeof(*a))))
		return CM_ERR_NOMEM;
	rc = lg_st_access_of(st, q->magu, a);
	owner = rc == CM_OK && (lg_st_key_eq(a->owner, t->sender.data) || lg_st_key_eq(m.owner, t->sender.data));
	free(a);
	if (rc != CM_OK)
		return rc;
	if (!owner)
		return lg_st_fail(st, "split_fragment: only the owner of \"%s\" may split its fragments", q->magu);
	rc = lg_store_fragment_get(st->store, q->magu, q->fragment, &f);
	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "split_fragment.fragment: no fragment %u in Magu \"%s\"", q->fragment, q->magu);
	if (rc != CM_OK || ((rc = lg_store_cell_get(st->store, q->magu, q->fragment, &c)) != CM_OK &&
			    rc != CM_ERR_NOTFOUND))
		return rc;
	if ((rc = refuse_split(st, &f, &c, why, sizeof(why))) < 0)
		return rc;
	if (rc)
		return lg_st_fail(st, "split_fragment.fragment: %s", why);
	if ((rc = seal(st, &f, &c)) != CM_OK)
		return rc;
	return lg_st_note(st, "fragment %u of \"%s\" sealing in epoch %llu to split into %u and %u", f.fragment,
			  f.magu, (unsigned long long)f.epoch, c.children[0], c.children[1]);
}

int lg_st_split_vote_check(lg_state *st, const lg_fragment *f, const Muri__V1__SignedRoot *r, int *same)
{
	lg_cell c;
	uint8_t empty[LG_ROOT_BYTES];
	int rc = lg_store_cell_get(st->store, f->magu, f->fragment, &c);

	*same = 0;
	if (rc == CM_ERR_NOTFOUND)
		return TX_OK;
	if (rc != CM_OK)
		return rc;
	if (c.state == LG_CELL_SPLIT || c.state == LG_CELL_RETIRED)
		return lg_st_fail(st, "commit_root.root.fragment: fragment %u of \"%s\" is %s into %u and %u; its log is "
				  "frozen at size %llu", f->fragment, f->magu, state_name(c.state), c.children[0],
				  c.children[1], (unsigned long long)f->committed_size);
	cm_merkle_blake2b.empty(empty);
	if (c.state == LG_CELL_SEALING && lg_st_key_eq(r->signer.data, f->primary) && r->size == f->committed_size &&
	    memcmp(r->root.data, f->committed_size ? f->committed_root : empty, LG_ROOT_BYTES) == 0)
		*same = 1; /* the sealing primary confirms the committed root is its whole log */
	if (c.has_parent && !c.derived && f->committed_size == 0 && r->size == 0) {
		if (memcmp(r->root.data, empty, LG_ROOT_BYTES) != 0)
			return lg_st_fail(st, "commit_root.root.root: not the empty tree's root at size 0");
		*same = 2; /* a half the parent's log gave no records: counted as a vote */
	}
	return TX_OK;
}

/* Cancels the open challenges of one fragment (it retired). */
static int cancel_challenges(lg_state *st, const char *magu, uint32_t fragment)
{
	lg_challenge *ch = NULL;
	size_t nch;
	int rc = lg_store_challenges_of_magu(st->store, magu, &ch, &nch);
	for (size_t i = 0; i < nch && rc == CM_OK; i++) {
		if (ch[i].fragment != fragment)
			continue;
		ch[i].status = LG_CH_CANCELLED;
		if ((rc = lg_store_challenge_put(st->store, &ch[i])) == CM_OK)
			rc = lg_st_fx_challenge(st, ch[i].id, 1);
	}
	free(ch);
	return rc;
}

/* f froze at its committed root: the parent goes SPLIT and its reserved
 * children are created, each on its own replicas. */
static int freeze(lg_state *st, const lg_fragment *f, lg_cell *c, char *what, size_t n)
{
	cm_cell cell = {c->base, c->depth, c->path}, halves[2];
	lg_magu m;
	int rc = lg_store_magu_get(st->store, f->magu, &m);
	if (rc != CM_OK)
		return rc;
	cm_cell_children(&cell, halves);
	for (int b = 0; b < 2; b++) {
		lg_fragment kid;
		lg_cell kc;
		if ((rc = lg_st_place(st, &m, c->children[b], f->committed_size / 2 + f->committed_size % 2, &kid)) !=
		    CM_OK)
			return rc;
		memset(&kc, 0, sizeof(kc));
		snprintf(kc.magu, sizeof(kc.magu), "%s", f->magu);
		kc.fragment = c->children[b];
		kc.state = LG_CELL_SERVING;
		kc.base = halves[b].base;
		kc.depth = halves[b].depth;
		kc.path = halves[b].path;
		kc.has_parent = 1;
		kc.parent = f->fragment;
		kc.src_size = f->committed_size;
		if (f->committed_size)
			memcpy(kc.src_root, f->committed_root, LG_ROOT_BYTES);
		else
			cm_merkle_blake2b.empty(kc.src_root);
		if ((rc = lg_store_fragment_put(st->store, &kid)) != CM_OK ||
		    (rc = lg_store_cell_put(st->store, &kc)) != CM_OK ||
		    (rc = lg_st_fx_fragment(st, kid.magu, kid.fragment)) != CM_OK)
			return rc;
	}
	c->state = LG_CELL_SPLIT;
	if ((rc = lg_store_cell_put(st->store, c)) != CM_OK || (rc = lg_st_fx_fragment(st, f->magu, f->fragment)) != CM_OK)
		return rc;
	snprintf(what, n, "; split at size %llu into %u and %u", (unsigned long long)f->committed_size,
		 c->children[0], c->children[1]);
	return CM_OK;
}

/* A child c committed its first root: derived; the parent retires once
 * its other child is too. */
static int derived(lg_state *st, lg_cell *c, char *what, size_t n)
{
	lg_cell p, sib;
	int rc;
	c->derived = 1;
	if ((rc = lg_store_cell_put(st->store, c)) != CM_OK ||
	    (rc = lg_st_fx_fragment(st, c->magu, c->fragment)) != CM_OK ||
	    (rc = lg_store_cell_get(st->store, c->magu, c->parent, &p)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? lg_st_err(st, CM_ERR_INTERNAL, "split child of a parent without a cell")
					     : rc;
	if (p.state != LG_CELL_SPLIT || p.nchildren != 2)
		return lg_st_err(st, CM_ERR_INTERNAL, "split child of a %s parent", state_name(p.state));
	uint32_t other = p.children[0] == c->fragment ? p.children[1] : p.children[0];
	if ((rc = lg_store_cell_get(st->store, c->magu, other, &sib)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? lg_st_err(st, CM_ERR_INTERNAL, "split child without its sibling") : rc;
	if (!sib.derived) {
		snprintf(what, n, "; derived from %u", c->parent);
		return CM_OK;
	}
	p.state = LG_CELL_RETIRED;
	if ((rc = lg_store_cell_put(st->store, &p)) != CM_OK ||
	    (rc = lg_st_fx_fragment(st, p.magu, p.fragment)) != CM_OK ||
	    (rc = cancel_challenges(st, p.magu, p.fragment)) != CM_OK)
		return rc;
	snprintf(what, n, "; derived from %u, which retires", c->parent);
	return CM_OK;
}

int lg_st_split_committed(lg_state *st, lg_fragment *f, int primary_vote, char *what, size_t n)
{
	lg_cell c;
	char why[LG_MSG_MAX];
	int rc = lg_store_cell_get(st->store, f->magu, f->fragment, &c);
	uint64_t limit = lg_st_pu(st, P_SPLIT_SIZE);

	what[0] = 0;
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
		return rc;
	if (c.state == LG_CELL_SEALING) {
		int signed_it = primary_vote;
		for (uint32_t i = 0; i < f->nsigners && !signed_it; i++)
			signed_it = lg_st_key_eq(f->signers[i], f->primary);
		return signed_it ? freeze(st, f, &c, what, n) : CM_OK;
	}
	if (c.state != LG_CELL_SERVING)
		return CM_OK;
	if (c.has_parent && !c.derived && (rc = derived(st, &c, what, n)) != CM_OK)
		return rc;
	if (limit == 0 || f->committed_size < limit)
		return CM_OK;
	if ((rc = refuse_split(st, f, &c, why, sizeof(why))) < 0)
		return rc;
	if (rc) {
		size_t k = strlen(what);
		snprintf(what + k, n - k, "; not split at split_size %llu: %s", (unsigned long long)limit, why);
		return CM_OK;
	}
	if ((rc = seal(st, f, &c)) != CM_OK)
		return rc;
	size_t k = strlen(what);
	snprintf(what + k, n - k, "; size reached split_size %llu: sealing in epoch %llu to split into %u and %u",
		 (unsigned long long)limit, (unsigned long long)f->epoch, c.children[0], c.children[1]);
	return CM_OK;
}

int lg_st_split_retired(lg_state *st, const char *magu, uint32_t fragment, int *retired)
{
	lg_cell c;
	int rc = lg_store_cell_get(st->store, magu, fragment, &c);
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
		return rc;
	*retired = c.state == LG_CELL_RETIRED;
	return CM_OK;
}
