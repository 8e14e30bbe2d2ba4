/* The state machine's staking: indexer registration, stake, unstake with
 * its unbonding delay and the release of due stake at begin-block (not
 * while the indexer still hands a fragment over, lg_st_handover.c), and
 * slashing (stake then unbonding stake, failures, jail). */
#include "lg_state_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- slashing ---- */

/* Takes up to want from pk's stake, then from its unbonding stake (latest
 * release first, so unstaking does not escape a pending challenge), counts a
 * failure and jails the indexer at max_failures (or at once with jail). The
 * slashed amount is burned (the caller may pay part of it out). *slashed
 * receives the amount taken; the penalty joins the block's effects. */
int lg_st_penalize(lg_state *st, const uint8_t *pk, uint64_t want, int jail, const char *reason,
		   uint64_t *slashed)
{
	lg_account a;
	lg_indexer ix;
	lg_unbond *ub = NULL;
	size_t nub;
	uint64_t take;
	int rc, was_jailed;

	*slashed = 0;
	if ((rc = lg_st_account(st, pk, &a)) != CM_OK)
		return rc;
	take = want < a.staked ? want : a.staked;
	a.staked -= take;
	*slashed = take;
	if (take && (rc = lg_st_add_counter(st, C_TOTAL_STAKED, 0, take)) != CM_OK)
		return rc;
	if (*slashed < want) {
		if ((rc = lg_store_unbond_of(st->store, pk, &ub, &nub)) != CM_OK)
			return rc;
		for (size_t i = 0; i < nub && *slashed < want && rc == CM_OK; i++) {
			uint64_t t = want - *slashed < ub[i].amount ? want - *slashed : ub[i].amount;
			ub[i].amount -= t;
			a.unbonding -= t;
			*slashed += t;
			rc = lg_store_unbond_set(st->store, &ub[i]);
		}
		free(ub);
		if (rc != CM_OK)
			return rc;
	}
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK)
		return rc;
	if ((rc = lg_store_indexer_get(st->store, pk, &ix)) == CM_ERR_NOTFOUND)
		return lg_st_fx_penalty(st, pk, *slashed, 0, reason);
	if (rc != CM_OK)
		return rc;
	was_jailed = ix.jailed;
	ix.failures++;
	if (jail || ix.failures >= lg_st_pu(st, P_MAX_FAILURES))
		ix.jailed = 1;
	if ((rc = lg_store_indexer_put(st->store, &ix)) != CM_OK ||
	    (rc = lg_st_fx_penalty(st, pk, *slashed, ix.jailed && !was_jailed, reason)) != CM_OK)
		return rc;
	return lg_st_refresh_indexer(st, pk);
}

int lg_st_register(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__RegisterIndexer *r = t->register_indexer;
	lg_indexer ix;
	int rc = lg_store_indexer_get(st->store, t->sender.data, &ix);

	if (rc == CM_OK) {
		if (ix.jailed)
			return lg_st_fail(st, "register_indexer: this indexer was jailed after %llu failed challenges",
				       (unsigned long long)ix.failures);
		snprintf(ix.address, sizeof(ix.address), "%s", r->address);
		ix.capacity = r->capacity_bytes;
		if ((rc = lg_store_indexer_put(st->store, &ix)) != CM_OK)
			return rc;
		return lg_st_note(st, "indexer updated: %s", ix.address);
	}
	if (rc != CM_ERR_NOTFOUND)
		return rc;
	memset(&ix, 0, sizeof(ix));
	memcpy(ix.pk, t->sender.data, LG_KEY_BYTES);
	snprintf(ix.address, sizeof(ix.address), "%s", r->address);
	ix.capacity = r->capacity_bytes;
	ix.registered_height = lg_st_height(st);
	if ((rc = lg_store_indexer_put(st->store, &ix)) != CM_OK ||
	    (rc = lg_st_refresh_indexer(st, ix.pk)) != CM_OK)
		return rc;
	return lg_st_note(st, "indexer registered: %s", ix.address);
}

int lg_st_stake(lg_state *st, const Muri__V1__Transaction *t)
{
	uint64_t amount = t->stake->amount;
	lg_indexer ix;
	lg_account a;
	int rc = lg_store_indexer_get(st->store, t->sender.data, &ix);

	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "stake: register as an indexer first (RegisterIndexer)");
	if (rc != CM_OK)
		return rc;
	if (ix.jailed)
		return lg_st_fail(st, "stake: this indexer is jailed");
	if ((rc = lg_st_account(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.balance < amount)
		return lg_st_fail(st, "stake.amount: insufficient balance: %llu available after the fee, %llu asked",
			       (unsigned long long)a.balance, (unsigned long long)amount);
	a.balance -= amount;
	a.staked += amount;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK ||
	    (rc = lg_st_add_counter(st, C_TOTAL_STAKED, amount, 0)) != CM_OK ||
	    (rc = lg_st_refresh_indexer(st, a.pk)) != CM_OK)
		return rc;
	return lg_st_note(st, "staked %llu, %llu in total", (unsigned long long)amount,
		    (unsigned long long)a.staked);
}

int lg_st_unstake(lg_state *st, const Muri__V1__Transaction *t)
{
	uint64_t amount = t->unstake->amount, release = lg_st_height(st) + lg_st_pu(st, P_UNBONDING_DELAY);
	lg_account a;
	int rc;

	if ((rc = lg_st_account(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.staked < amount)
		return lg_st_fail(st, "unstake.amount: %llu exceeds the stake %llu", (unsigned long long)amount,
			       (unsigned long long)a.staked);
	a.staked -= amount;
	a.unbonding += amount;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK ||
	    (rc = lg_store_unbond_add(st->store, release, a.pk, amount)) != CM_OK ||
	    (rc = lg_st_add_counter(st, C_TOTAL_STAKED, 0, amount)) != CM_OK ||
	    (rc = lg_st_refresh_indexer(st, a.pk)) != CM_OK)
		return rc;
	return lg_st_note(st, "unbonding %llu until height %llu", (unsigned long long)amount,
		    (unsigned long long)release);
}

/* ---- begin-block and end-block ---- */

int lg_st_release_unbonded(lg_state *st)
{
	lg_unbond *due = NULL;
	size_t n;
	int rc;

	if ((rc = lg_store_unbond_due(st->store, lg_st_height(st), &due, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		lg_account a;
		/* a node handing fragments over keeps its stake bonded until it left them */
		if ((rc = lg_store_is_leaving(st->store, due[i].pk)) != 0) {
			rc = rc == 1 ? CM_OK : rc;
			continue;
		}
		if ((rc = lg_st_account(st, due[i].pk, &a)) != CM_OK)
			break;
		a.unbonding -= due[i].amount < a.unbonding ? due[i].amount : a.unbonding;
		a.balance += due[i].amount;
		due[i].amount = 0;
		if ((rc = lg_store_account_put(st->store, &a)) == CM_OK)
			rc = lg_store_unbond_set(st->store, &due[i]);
	}
	free(due);
	return rc;
}

