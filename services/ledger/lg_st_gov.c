/* The state machine's governance: proposals to change a governable
 * parameter at a future height, stake-weighted votes, and their decision
 * (more than 2/3 of all stake) at begin-block of the apply height. */
#include "lg_state_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lg_st_propose(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__Propose *p = t->propose;
	const lg_param_def *d = lg_param_find(p->param);
	lg_account a;
	lg_proposal pr;
	uint64_t id;
	int rc;

	if ((rc = lg_st_account(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.staked == 0)
		return lg_st_fail(st, "propose: only accounts with stake can propose");
	if (p->apply_height <= lg_st_height(st))
		return lg_st_fail(st, "propose.apply_height: %llu is not after the current height %llu",
			       (unsigned long long)p->apply_height, (unsigned long long)lg_st_height(st));
	if (p->apply_height - lg_st_height(st) > lg_st_pu(st, P_PROPOSAL_MAX_DELAY))
		return lg_st_fail(st, "propose.apply_height: more than proposal_max_delay = %llu blocks ahead",
			       (unsigned long long)lg_st_pu(st, P_PROPOSAL_MAX_DELAY));
	if ((rc = lg_store_counter_get(st->store, C_NEXT_PROPOSAL, &id)) != CM_OK ||
	    (rc = lg_store_counter_put(st->store, C_NEXT_PROPOSAL, ++id)) != CM_OK)
		return rc;
	memset(&pr, 0, sizeof(pr));
	pr.id = id;
	memcpy(pr.proposer, a.pk, LG_KEY_BYTES);
	snprintf(pr.param, sizeof(pr.param), "%s", d->name);
	pr.value = p->value;
	pr.apply_height = p->apply_height;
	pr.created_height = lg_st_height(st);
	pr.status = LG_PROP_OPEN;
	if ((rc = lg_store_proposal_put(st->store, &pr)) != CM_OK)
		return rc;
	return lg_st_note(st, "proposal %llu: %s = %lld at height %llu", (unsigned long long)id, pr.param,
		    (long long)pr.value, (unsigned long long)pr.apply_height);
}

int lg_st_vote(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__VoteProposal *v = t->vote;
	lg_proposal p;
	lg_account a;
	int rc = lg_store_proposal_get(st->store, v->proposal_id, &p);

	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "vote.proposal_id: no proposal %llu", (unsigned long long)v->proposal_id);
	if (rc != CM_OK)
		return rc;
	if (p.status != LG_PROP_OPEN || p.apply_height <= lg_st_height(st))
		return lg_st_fail(st, "vote: proposal %llu is decided already", (unsigned long long)p.id);
	if ((rc = lg_st_account(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.staked == 0)
		return lg_st_fail(st, "vote: only accounts with stake can vote");
	if ((rc = lg_store_vote_put(st->store, p.id, a.pk, v->yes)) != CM_OK)
		return rc;
	return lg_st_note(st, "voted %s on proposal %llu", v->yes ? "yes" : "no", (unsigned long long)p.id);
}

/* 1 if yes > 2/3 of total, exactly, without overflow (yes <= total < 2^63). */
static int two_thirds(uint64_t yes, uint64_t total)
{
	uint64_t q = total / 3, r = total % 3;
	return total > 0 && yes > 2 * q && 3 * (yes - 2 * q) > 2 * r;
}

/* A proposal passes when the stake that voted yes, counted at its apply
 * height, is more than 2/3 of all stake then; the parameter changes before
 * that block's transactions. Proposals for one height apply in id order. */
int lg_st_decide_proposals(lg_state *st)
{
	lg_proposal *due = NULL;
	size_t n;
	int rc;

	if ((rc = lg_store_proposals_due(st->store, lg_st_height(st), &due, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		lg_proposal *p = &due[i];
		uint8_t(*yes)[LG_KEY_BYTES] = NULL;
		size_t ny;
		uint64_t ys = 0, total;
		const lg_param_def *d = lg_param_find(p->param);
		if ((rc = lg_store_yes_voters(st->store, p->id, &yes, &ny)) != CM_OK ||
		    (rc = lg_store_counter_get(st->store, C_TOTAL_STAKED, &total)) != CM_OK) {
			free(yes);
			break;
		}
		for (size_t j = 0; j < ny && rc == CM_OK; j++) {
			lg_account a;
			if ((rc = lg_st_account(st, yes[j], &a)) == CM_OK)
				ys += a.staked;
		}
		free(yes);
		if (rc != CM_OK)
			break;
		p->yes_stake = ys;
		p->total_stake = total;
		p->status = d && two_thirds(ys, total) ? LG_PROP_PASSED : LG_PROP_REJECTED;
		if ((rc = lg_store_proposal_put(st->store, p)) != CM_OK || p->status != LG_PROP_PASSED)
			continue;
		if ((rc = lg_store_param_put(st->store, d->name, p->value)) != CM_OK)
			break;
		st->param[d - lg_param_at(0)] = p->value;
		if (d - lg_param_at(0) == P_MIN_STAKE) {
			uint8_t(*keys)[LG_KEY_BYTES] = NULL;
			size_t nk;
			if ((rc = lg_store_indexer_keys(st->store, &keys, &nk)) != CM_OK)
				break;
			for (size_t j = 0; j < nk && rc == CM_OK; j++)
				rc = lg_st_refresh_indexer(st, keys[j]);
			free(keys);
		}
	}
	free(due);
	return rc;
}

