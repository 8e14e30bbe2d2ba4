/* The state machine's settlement of search receipts.
 *
 * Trust. Settle is accepted from the gateways named in the genesis only: a
 * receipt does not carry the searcher's signature, so the gateway is trusted
 * to bill searchers for searches they made. */
#include "lg_state_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPLIT_SCALE 720720u       /* lcm(1..16): rank weights 1/(rank+1) exact to rank 15 */

/* a * w / total without overflow, for w <= total < 2^32. */
static uint64_t share_of(uint64_t a, uint64_t w, uint64_t total)
{
	return (a / total) * w + (a % total) * w / total;
}

/* Settles one receipt; 1 if paid, 0 with why if skipped, negative on error. */
static int settle_one(lg_state *st, const Muri__V1__SearchReceipt *r, char *why, size_t whylen)
{
	uint64_t w[LG_RANKED_MAX], total = 0, paid = 0;
	lg_magu m;
	lg_account a;
	lg_indexer ix;
	int rc = lg_store_magu_get(st->store, r->magu, &m);

	if (rc == CM_ERR_NOTFOUND) {
		snprintf(why, whylen, "no Magu \"%s\"", r->magu);
		return 0;
	}
	if (rc != CM_OK)
		return rc;
	if (r->fee < lg_st_pu(st, P_SEARCH_FEE)) {
		snprintf(why, whylen, "fee %llu is below search_fee %llu", (unsigned long long)r->fee,
			 (unsigned long long)lg_st_pu(st, P_SEARCH_FEE));
		return 0;
	}
	for (size_t j = 0; j < r->n_ranked_nodes; j++) {
		if ((rc = lg_store_indexer_get(st->store, r->ranked_nodes[j].data, &ix)) == CM_ERR_NOTFOUND) {
			snprintf(why, whylen, "ranked_nodes[%zu] is not an indexer", j);
			return 0;
		}
		if (rc != CM_OK)
			return rc;
	}
	if ((rc = lg_st_account(st, r->searcher.data, &a)) != CM_OK)
		return rc;
	if (a.balance < r->fee) {
		snprintf(why, whylen, "searcher %s has %llu, fee %llu", lg_st_kh(a.pk).s,
			 (unsigned long long)a.balance, (unsigned long long)r->fee);
		return 0;
	}
	a.balance -= r->fee;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK)
		return rc;
	/* rank j earns fee * (S / (j+1)) / sum; what rounding leaves goes to rank 0 */
	for (size_t j = 0; j < r->n_ranked_nodes; j++)
		total += w[j] = SPLIT_SCALE / (j + 1);
	for (size_t j = r->n_ranked_nodes; j-- > 0;) {
		uint64_t s = j ? share_of(r->fee, w[j], total) : r->fee - paid;
		paid += s;
		if (!s)
			continue;
		if ((rc = lg_st_account(st, r->ranked_nodes[j].data, &a)) != CM_OK)
			return rc;
		a.balance += s;
		if ((rc = lg_store_account_put(st->store, &a)) != CM_OK)
			return rc;
	}
	return 1;
}

int lg_st_settle(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__Settle *s = t->settle;
	char why[160] = "", first[200] = "";
	size_t paid = 0;
	int rc = lg_store_is_gateway(st->store, t->sender.data);

	if (rc < 0)
		return rc;
	if (rc == 0)
		return lg_st_fail(st, "settle: the sender is not a gateway of this chain");
	for (size_t i = 0; i < s->n_receipts; i++) {
		if ((rc = settle_one(st, s->receipts[i], why, sizeof(why))) < 0)
			return rc;
		if (rc)
			paid++;
		else if (!first[0])
			snprintf(first, sizeof(first), "receipts[%zu]: %s", i, why);
	}
	if (!paid)
		return lg_st_fail(st, "settle: no receipt could be settled; %s", first);
	if (first[0])
		return lg_st_note(st, "settled %zu of %zu receipts; %s", paid, s->n_receipts, first);
	return lg_st_note(st, "settled %zu receipts", paid);
}

