/* The state machine's hand-overs: an indexer that unstakes below min_stake
 * leaves each of its fragments only after the replicas that took its place
 * caught up. When its seat moves (lg_st_magu.c), a fragment that gets new
 * replicas keeps the leaver as well, in the configuration of epoch + 1, so
 * the set holds every acknowledged write while the new replicas fetch the
 * log from the primary in verified chunks; the leaver keeps its role (a
 * leaving primary stays the primary until it is removed). Each new replica
 * signals that it holds the log by its first root vote (CommitRoot) of that
 * epoch: a replica signs a root only over what it took from the epoch's
 * primary. Once every new replica voted, or handover_deadline blocks after
 * the start, the leaver is removed at epoch + 1, and its unbonding stake is
 * released only after its last hand-over ended. A leaver is never removed
 * while it is the primary: its role moves first, by a failover of its
 * epoch that picks a replica that stays (lg_st_magu.c handover_choice). */
#include "lg_state_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int in_keys(const uint8_t (*l)[LG_KEY_BYTES], uint32_t n, const uint8_t *pk)
{
	for (uint32_t i = 0; i < n; i++)
		if (lg_st_key_eq(l[i], pk))
			return 1;
	return 0;
}

int lg_st_handover_keep(lg_state *st, const lg_fragment *f, const uint8_t *keep, uint8_t repl[][LG_KEY_BYTES],
			uint32_t *n)
{
	const uint8_t(*old)[LG_KEY_BYTES] = (const uint8_t(*)[LG_KEY_BYTES])f->replicas;
	lg_handover *h = NULL;
	size_t nh;
	uint32_t placed = *n;
	int rc;

	if (placed == 0) /* no seat has a holder: the fragment keeps its replicas (lg_st_reconfigure) */
		return CM_OK;
	if ((rc = lg_store_handovers(st->store, f->magu, f->fragment, &h, &nh)) != CM_OK)
		return rc;
	/* leavers already handing over stay while they are replicas and fit */
	for (size_t i = 0; i < nh && rc == CM_OK; i++) {
		if (keep && lg_st_key_eq(h[i].leaver, keep))
			continue;
		if (!in_keys(old, f->nreplicas, h[i].leaver) || *n >= LG_MAX_REPLICAS) {
			rc = lg_store_handover_del(st->store, f->magu, f->fragment, h[i].leaver);
			continue;
		}
		if (!in_keys((const uint8_t(*)[LG_KEY_BYTES])repl, *n, h[i].leaver))
			memcpy(repl[(*n)++], h[i].leaver, LG_KEY_BYTES);
		/* pending: those still placed, and any replica new in this placement */
		lg_handover nx = h[i];
		nx.npending = 0;
		for (uint32_t j = 0; j < h[i].npending; j++)
			if (in_keys((const uint8_t(*)[LG_KEY_BYTES])repl, placed, h[i].pending[j]))
				memcpy(nx.pending[nx.npending++], h[i].pending[j], LG_KEY_BYTES);
		for (uint32_t j = 0; j < placed; j++)
			if (!in_keys(old, f->nreplicas, repl[j]) &&
			    !in_keys((const uint8_t(*)[LG_KEY_BYTES])nx.pending, nx.npending, repl[j]))
				memcpy(nx.pending[nx.npending++], repl[j], LG_KEY_BYTES);
		if (nx.npending != h[i].npending || memcmp(nx.pending, h[i].pending, (size_t)nx.npending * LG_KEY_BYTES))
			rc = lg_store_handover_put(st->store, &nx);
	}
	free(h);
	if (rc != CM_OK || !keep || !in_keys(old, f->nreplicas, keep) ||
	    in_keys((const uint8_t(*)[LG_KEY_BYTES])repl, *n, keep))
		return rc;
	lg_handover nw;
	memset(&nw, 0, sizeof(nw));
	for (uint32_t i = 0; i < placed; i++)
		if (!in_keys(old, f->nreplicas, repl[i]))
			memcpy(nw.pending[nw.npending++], repl[i], LG_KEY_BYTES);
	if (nw.npending == 0 || *n >= LG_MAX_REPLICAS)
		return CM_OK; /* nothing to hand over to, or no room: removed at once */
	memcpy(repl[(*n)++], keep, LG_KEY_BYTES);
	snprintf(nw.magu, sizeof(nw.magu), "%s", f->magu);
	nw.fragment = f->fragment;
	memcpy(nw.leaver, keep, LG_KEY_BYTES);
	nw.start_height = lg_st_height(st);
	return lg_store_handover_put(st->store, &nw);
}

/* 1 if h's leaver is its fragment's primary, 0 if not, or an error. */
static int leaver_is_primary(lg_state *st, const lg_handover *h)
{
	lg_fragment f;
	int rc = lg_store_fragment_get(st->store, h->magu, h->fragment, &f);
	if (rc == CM_ERR_NOTFOUND)
		return 0;
	return rc != CM_OK ? rc : lg_st_key_eq(f.primary, h->leaver);
}

/* Ends h: the leaver leaves the fragment's replica set at epoch + 1; not
 * while it is the primary (the caller waits, except when it is the last
 * holder of the fragment's data). */
static int finish(lg_state *st, const lg_handover *h)
{
	lg_fragment f;
	uint8_t repl[LG_MAX_REPLICAS][LG_KEY_BYTES];
	uint32_t n = 0;
	int rc;

	if ((rc = lg_store_handover_del(st->store, h->magu, h->fragment, h->leaver)) != CM_OK)
		return rc;
	if ((rc = lg_store_fragment_get(st->store, h->magu, h->fragment, &f)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? CM_OK : rc;
	for (uint32_t i = 0; i < f.nreplicas; i++)
		if (!lg_st_key_eq(f.replicas[i], h->leaver))
			memcpy(repl[n++], f.replicas[i], LG_KEY_BYTES);
	if (n == f.nreplicas || n == 0)
		return CM_OK;
	return lg_st_reconfigure(st, &f, (const uint8_t(*)[LG_KEY_BYTES])repl, n);
}

int lg_st_handover_signed(lg_state *st, const char *magu, uint32_t fragment, const uint8_t *signer)
{
	lg_handover *h = NULL;
	size_t nh;
	int rc = lg_store_handovers(st->store, magu, fragment, &h, &nh);

	for (size_t i = 0; i < nh && rc == CM_OK; i++) {
		uint32_t k = 0;
		for (uint32_t j = 0; j < h[i].npending; j++)
			if (!lg_st_key_eq(h[i].pending[j], signer))
				memmove(h[i].pending[k++], h[i].pending[j], LG_KEY_BYTES);
		if (k == h[i].npending)
			continue;
		h[i].npending = k;
		rc = k || leaver_is_primary(st, &h[i]) != 0 ? lg_store_handover_put(st->store, &h[i]) : finish(st, &h[i]);
	}
	free(h);
	return rc;
}

int lg_st_handover_expire(lg_state *st)
{
	lg_handover *h = NULL;
	size_t nh;
	uint64_t deadline = lg_st_pu(st, P_HANDOVER_DEADLINE);
	int rc = lg_store_handovers(st->store, NULL, 0, &h, &nh);

	for (size_t i = 0; i < nh && rc == CM_OK; i++) {
		int p = leaver_is_primary(st, &h[i]);
		if (p < 0)
			rc = p;
		else if (!p && (h[i].npending == 0 || lg_st_height(st) >= h[i].start_height + deadline))
			rc = finish(st, &h[i]);
	}
	free(h);
	return rc;
}
