/* The state machine's settlement of search receipts, with the searcher's
 * consent.
 *
 * Consent. A searcher grants a gateway an allowance (Approve: an amount and
 * an expiry height; a later Approve replaces it). A gateway settles receipts
 * (Settle) only against the allowances its searchers gave it: each receipt's
 * fee is debited from the searcher and spent from the allowance, refused
 * after the expiry height, and split among the receipt's ranked nodes, each
 * of which must hold a member seat of the receipt's Magu. A receipt's id is
 * recorded when it settles, and a receipt with a recorded id fails: a
 * receipt is paid once. A Settle is all or nothing: one bad receipt fails
 * the whole tx (the fee is still paid) and no receipt of it settles. Any
 * account may act as a gateway; the searcher's allowance is the authority. */
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

int lg_st_approve(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__Approve *ap = t->approve;
	lg_allowance a;
	int rc;

	if (ap->amount && ap->expiry_height < lg_st_height(st))
		return lg_st_fail(st, "approve.expiry_height: %llu is below the current height %llu",
				  (unsigned long long)ap->expiry_height,
				  (unsigned long long)lg_st_height(st));
	memcpy(a.searcher, t->sender.data, LG_KEY_BYTES);
	memcpy(a.gateway, ap->gateway.data, LG_KEY_BYTES);
	a.amount = ap->amount;
	a.expiry = ap->expiry_height;
	if ((rc = lg_store_allowance_put(st->store, &a)) != CM_OK)
		return rc;
	if (!ap->amount)
		return lg_st_note(st, "allowance of gateway %s revoked", lg_st_kh(a.gateway).s);
	return lg_st_note(st, "gateway %s may settle up to %llu until height %llu", lg_st_kh(a.gateway).s,
			  (unsigned long long)a.amount, (unsigned long long)a.expiry);
}

/* 1 if pk holds a member seat of the Magu whose seats are slots. */
static int is_member(const lg_slot *slots, size_t n, const uint8_t *pk)
{
	for (size_t i = 0; i < n; i++)
		if (slots[i].filled && lg_st_key_eq(slots[i].holder, pk))
			return 1;
	return 0;
}

/* Credits a payout to node: its balance and its earnings. */
static int pay_node(lg_state *st, const uint8_t *node, uint64_t amount)
{
	lg_account a;
	lg_earnings e;
	int rc;
	if ((rc = lg_st_account(st, node, &a)) != CM_OK)
		return rc;
	if (a.balance > UINT64_MAX - amount)
		return lg_st_err(st, CM_ERR_INTERNAL, "settle: a balance would overflow");
	a.balance += amount;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK ||
	    (rc = lg_store_earnings_get(st->store, node, &e)) != CM_OK)
		return rc;
	e.total += amount;
	e.receipts++;
	return lg_store_earnings_put(st->store, &e);
}

/* Settles receipt i of a Settle sent by gateway: TX_OK, TX_FAIL naming the
 * field, or a negative error. */
static int settle_one(lg_state *st, const Muri__V1__SearchReceipt *r, size_t i, const uint8_t *gateway)
{
	uint64_t w[LG_RANKED_MAX], share[LG_RANKED_MAX], total = 0, paid = 0, seq;
	char idhex[2 * LG_RECEIPT_ID_MAX_BYTES + 1];
	lg_magu m;
	lg_account a;
	lg_allowance al;
	lg_slot *slots = NULL;
	size_t ns;
	lg_receipt *rec;
	int rc;

	cm_hex(idhex, r->id.data, r->id.len);
	if ((rc = lg_store_receipt_seen(st->store, gateway, r->id.data, r->id.len)) < 0)
		return rc;
	if (rc)
		return lg_st_fail(st, "settle.receipts[%zu].id: receipt %s of this gateway was settled already", i, idhex);
	if ((rc = lg_store_magu_get(st->store, r->magu, &m)) == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "settle.receipts[%zu].magu: no Magu \"%s\"", i, r->magu);
	if (rc != CM_OK)
		return rc;
	if (r->fee < lg_st_pu(st, P_SEARCH_FEE))
		return lg_st_fail(st, "settle.receipts[%zu].fee: %llu is below search_fee %llu", i,
				  (unsigned long long)r->fee, (unsigned long long)lg_st_pu(st, P_SEARCH_FEE));
	if ((rc = lg_store_slots_of_magu(st->store, m.name, &slots, &ns)) != CM_OK)
		return rc;
	for (size_t j = 0; j < r->n_ranked_nodes; j++)
		if (!is_member(slots, ns, r->ranked_nodes[j].data)) {
			free(slots);
			return lg_st_fail(st, "settle.receipts[%zu].ranked_nodes[%zu]: %s is not a member of Magu \"%s\"",
					  i, j, lg_st_kh(r->ranked_nodes[j].data).s, m.name);
		}
	free(slots);
	rc = lg_store_allowance_get(st->store, r->searcher.data, gateway, &al);
	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "settle.receipts[%zu].searcher: %s gave this gateway no allowance (Approve)",
				  i, lg_st_kh(r->searcher.data).s);
	if (rc != CM_OK)
		return rc;
	if (lg_st_height(st) > al.expiry)
		return lg_st_fail(st, "settle.receipts[%zu].searcher: the allowance of %s expired at height %llu",
				  i, lg_st_kh(r->searcher.data).s, (unsigned long long)al.expiry);
	if (r->fee > al.amount)
		return lg_st_fail(st, "settle.receipts[%zu].fee: %llu exceeds the allowance left, %llu", i,
				  (unsigned long long)r->fee, (unsigned long long)al.amount);
	if ((rc = lg_st_account(st, r->searcher.data, &a)) != CM_OK)
		return rc;
	if (a.balance < r->fee)
		return lg_st_fail(st, "settle.receipts[%zu].fee: searcher %s has %llu, fee %llu", i,
				  lg_st_kh(a.pk).s, (unsigned long long)a.balance, (unsigned long long)r->fee);
	a.balance -= r->fee;
	al.amount -= r->fee;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK ||
	    (rc = lg_store_allowance_put(st->store, &al)) != CM_OK ||
	    (rc = lg_store_counter_get(st->store, C_RECEIPT_SEQ, &seq)) != CM_OK ||
	    (rc = lg_store_counter_put(st->store, C_RECEIPT_SEQ, ++seq)) != CM_OK)
		return rc;
	if (!(rec = calloc(1, sizeof(*rec))))
		return CM_ERR_NOMEM;
	memcpy(rec->id, r->id.data, r->id.len);
	rec->id_len = (uint32_t)r->id.len;
	rec->seq = seq;
	snprintf(rec->magu, sizeof(rec->magu), "%s", m.name);
	memcpy(rec->searcher, r->searcher.data, LG_KEY_BYTES);
	memcpy(rec->gateway, gateway, LG_KEY_BYTES);
	rec->fee = r->fee;
	rec->height = lg_st_height(st);
	memcpy(rec->tx_hash, st->tx_hash, CM_HASH_BYTES);
	/* rank j earns fee * (S / (j+1)) / sum; what rounding leaves goes to rank 0 */
	for (size_t j = 0; j < r->n_ranked_nodes; j++)
		total += w[j] = SPLIT_SCALE / (j + 1);
	for (size_t j = 1; j < r->n_ranked_nodes; j++)
		paid += share[j] = share_of(r->fee, w[j], total);
	share[0] = r->fee - paid;
	for (size_t j = 0; j < r->n_ranked_nodes && rc == CM_OK; j++) {
		if (!share[j])
			continue;
		memcpy(rec->payouts[rec->npayouts].node, r->ranked_nodes[j].data, LG_KEY_BYTES);
		rec->payouts[rec->npayouts++].amount = share[j];
		rc = pay_node(st, r->ranked_nodes[j].data, share[j]);
	}
	if (rc == CM_OK)
		rc = lg_store_receipt_put(st->store, rec);
	free(rec);
	return rc;
}

int lg_st_settle(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__Settle *s = t->settle;
	uint64_t fees = 0;
	int rc;

	for (size_t i = 0; i < s->n_receipts; i++) {
		if ((rc = settle_one(st, s->receipts[i], i, t->sender.data)) != TX_OK)
			return rc; /* TX_FAIL: the savepoint undoes the receipts before it */
		fees += s->receipts[i]->fee;
	}
	return lg_st_note(st, "settled %zu receipts, %llu in fees", s->n_receipts, (unsigned long long)fees);
}
