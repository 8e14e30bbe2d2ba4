/* The state machine's failover: a replica's report of its log, the new
 * epoch and primary once a majority of the replica set reported (the shared
 * rule of common/cm_fragment.h), and a leaving replica's hand-over of the
 * primary role. A primary's request to drop a backup is lg_st_drop_replica
 * (lg_st_magu.c: it moves a member seat). */
#include "lg_state_int.h"
#include "cm_fragment.h"

#include <stdlib.h>
#include <string.h>

/* A leaving replica (lg_st_handover.c) is not made primary: when the shared
 * rule picks one, a replica that stays and reported the same log (last
 * epoch, size and root) takes its place; with none *k becomes
 * CM_ERR_UNAVAILABLE (later reports decide) until the hand-over's deadline,
 * after which the shared rule's pick stands (the leaver keeps its seat
 * while it is primary: lg_st_handover_expire). This is how a leaving
 * primary hands its role over: it stops taking writes, waits until a
 * backup holds its whole log, and gives the epoch up
 * (services/indexer/ix_repl.h ix_repl_handoff). */
static int handover_choice(lg_state *st, const lg_fragment *f, const cm_fragment_report *reps, size_t nr, int *k)
{
	lg_handover *h = NULL;
	size_t nh;
	int rc = lg_store_handovers(st->store, f->magu, f->fragment, &h, &nh), leaving = 0, past = 0;
	for (size_t i = 0; i < nh && rc == CM_OK; i++)
		if (lg_st_key_eq(h[i].leaver, f->replicas[*k])) {
			leaving = 1;
			past = lg_st_height(st) >= h[i].start_height + lg_st_pu(st, P_HANDOVER_DEADLINE);
		}
	if (rc != CM_OK || !leaving) {
		free(h);
		return rc;
	}
	const cm_fragment_report *best = NULL;
	for (size_t i = 0; i < nr && !best; i++)
		if (lg_st_key_eq(reps[i].sender, f->replicas[*k]) && reps[i].epoch == f->epoch)
			best = &reps[i];
	int pick = CM_ERR_UNAVAILABLE;
	for (size_t i = 0; best && i < nr && pick < 0; i++) {
		int j = lg_st_replica_index(f, reps[i].sender), left = 0;
		for (size_t x = 0; x < nh; x++)
			left |= lg_st_key_eq(h[x].leaver, reps[i].sender);
		if (j >= 0 && !left && reps[i].epoch == f->epoch && reps[i].last_epoch == best->last_epoch &&
		    reps[i].size == best->size && memcmp(reps[i].root, best->root, LG_ROOT_BYTES) == 0)
			pick = j;
	}
	free(h);
	if (pick >= 0 || !past)
		*k = pick;
	return CM_OK;
}

/* A replica's failover report: recorded per replica (a later one replaces
 * its earlier one); once reports of the current epoch from a majority of
 * the replica set are in, epoch + 1 begins with the primary the fragment's
 * shared rule picks (cm_fragment_choose_primary: the highest last epoch,
 * then the longest log, then the lowest replica index), so no write a
 * majority acknowledged is lost. The rows are read by requester key, and
 * the rule does not depend on their order. */
int lg_st_failover(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__FailoverRequest *q = t->failover;
	lg_fragment f;
	lg_failover req, *reqs = NULL;
	cm_fragment_report *reps = NULL;
	size_t nr = 0, count = 0;
	int k, rc = lg_store_fragment_get(st->store, q->magu, q->fragment, &f);

	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "failover: no fragment %u in Magu \"%s\"", q->fragment, q->magu);
	if (rc != CM_OK)
		return rc;
	if (q->epoch != f.epoch)
		return lg_st_fail(st, "failover.epoch: %llu is not the current epoch %llu",
			       (unsigned long long)q->epoch, (unsigned long long)f.epoch);
	if (lg_st_replica_index(&f, t->sender.data) < 0)
		return lg_st_fail(st, "failover: the sender is not a replica of fragment %u of \"%s\"",
			       q->fragment, q->magu);
	if (q->drop.len)
		return lg_st_drop_replica(st, t, &f);
	memset(&req, 0, sizeof(req));
	memcpy(req.requester, t->sender.data, LG_KEY_BYTES);
	req.epoch = q->epoch;
	req.log_size = q->log_size;
	req.last_epoch = q->last_epoch;
	memcpy(req.root, q->root.data, LG_ROOT_BYTES); /* 32 bytes: checked by lg_tx */
	if ((rc = lg_store_failover_put(st->store, f.magu, f.fragment, &req)) != CM_OK ||
	    (rc = lg_store_failovers(st->store, f.magu, f.fragment, f.epoch, &reqs, &nr)) != CM_OK)
		return rc;
	if (nr && !(reps = calloc(nr, sizeof(*reps)))) {
		free(reqs);
		return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < nr; i++) {
		reps[i].epoch = reqs[i].epoch;
		reps[i].size = reqs[i].log_size;
		reps[i].last_epoch = reqs[i].last_epoch;
		memcpy(reps[i].root, reqs[i].root, LG_ROOT_BYTES);
		memcpy(reps[i].sender, reqs[i].requester, LG_KEY_BYTES);
		if (lg_st_replica_index(&f, reqs[i].requester) >= 0)
			count++;
	}
	free(reqs);
	k = cm_fragment_choose_primary(f.epoch, (const uint8_t(*)[CM_PK_BYTES])f.replicas, f.nreplicas, reps, nr);
	if (k >= 0 && (rc = handover_choice(st, &f, reps, nr, &k)) != CM_OK) {
		free(reps);
		return rc;
	}
	free(reps);
	if (k == CM_ERR_STATE)
		return lg_st_note(st, "failover report recorded: %zu of %u replicas, %u needed", count,
				  f.nreplicas, cm_fragment_majority(f.nreplicas));
	if (k == CM_ERR_UNAVAILABLE)
		return lg_st_note(st, "failover report recorded: the longest log is a leaving replica's; waiting for "
				  "a replica that stays to report it");
	if (k < 0)
		return k;
	memcpy(f.primary, f.replicas[k], LG_KEY_BYTES);
	f.epoch++;
	if ((rc = lg_store_failovers_clear(st->store, f.magu, f.fragment)) != CM_OK ||
	    (rc = lg_store_root_votes_clear(st->store, f.magu, f.fragment)) != CM_OK ||
	    (rc = lg_store_fragment_put(st->store, &f)) != CM_OK ||
	    (rc = lg_st_fx_fragment(st, f.magu, f.fragment)) != CM_OK)
		return rc;
	return lg_st_note(st, "fragment %u of \"%s\": epoch %llu, primary %s", f.fragment, f.magu,
		    (unsigned long long)f.epoch, lg_st_kh(f.primary).s);
}

