/* The state machine's accounts: transfers between balances, and the
 * block's fees paid to its proposer at end-block. */
#include "lg_state_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- transaction handlers: TX_OK, TX_FAIL or a negative store error ---- */

int lg_st_transfer(lg_state *st, const Muri__V1__Transaction *t, lg_account *sender)
{
	uint64_t amount = t->transfer->amount;
	lg_account to;
	int rc;

	if (sender->balance < amount) {
		if ((rc = lg_store_account_put(st->store, sender)) != CM_OK)
			return rc;
		return lg_st_fail(st, "transfer.amount: insufficient balance: %llu available after the fee, %llu asked",
			       (unsigned long long)sender->balance, (unsigned long long)amount);
	}
	if (lg_st_key_eq(t->transfer->to.data, sender->pk))
		return lg_store_account_put(st->store, sender);
	if ((rc = lg_st_account(st, t->transfer->to.data, &to)) != CM_OK)
		return rc;
	if (to.balance > UINT64_MAX - amount) {
		if ((rc = lg_store_account_put(st->store, sender)) != CM_OK)
			return rc;
		return lg_st_fail(st, "transfer.amount: the recipient's balance would overflow");
	}
	sender->balance -= amount;
	to.balance += amount;
	if ((rc = lg_store_account_put(st->store, sender)) != CM_OK)
		return rc;
	return lg_store_account_put(st->store, &to);
}

int lg_st_pay_fees(lg_state *st)
{
	static const uint8_t zero[CM_PK_BYTES];
	lg_account a;
	int rc;
	if (st->fees == 0 || memcmp(st->blk->proposer, zero, CM_PK_BYTES) == 0)
		return CM_OK; /* burned */
	if ((rc = lg_st_account(st, st->blk->proposer, &a)) != CM_OK)
		return rc;
	a.balance += st->fees;
	return lg_store_account_put(st->store, &a);
}

