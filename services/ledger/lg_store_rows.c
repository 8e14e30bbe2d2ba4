/* The store's rows of accounts and their unbonding stake, indexers,
 * governance (proposals and votes), parameters, counters, ledger replicas
 * and gateways, and the tx index: typed get/put/list over cached statements,
 * every write joining the block's write set. */
#include "lg_store_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- tx index ---- */

int lg_store_tx_put(lg_store *s, const lg_txrec *t)
{
	col c[] = {cb(t->hash, CM_HASH_BYTES), cu(t->height), cu(t->index), cu((uint64_t)t->state),
		   ct(t->message)};
	return ls_write_row(s, T_TXS, S_TX_PUT, c, 1, 5);
}

static int tx_row(sqlite3_stmt *st, void *dst)
{
	lg_txrec *t = dst;
	t->height = ls_col_u64(st, 0);
	t->index = (uint32_t)ls_col_u64(st, 1);
	t->state = (int)ls_col_u64(st, 2);
	return ls_col_text(st, 3, t->message, sizeof(t->message));
}

int lg_store_tx_get(lg_store *s, const uint8_t hash[CM_HASH_BYTES], lg_txrec *out)
{
	col k[] = {cb(hash, CM_HASH_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_TX_GET, k, 1);
	lg_txrec t;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_get_row(s, st, tx_row, &t)) != CM_OK)
		return rc;
	memcpy(t.hash, hash, CM_HASH_BYTES);
	*out = t;
	return CM_OK;
}

/* ---- accounts and unbonding ---- */

static int account_row(sqlite3_stmt *st, void *dst)
{
	lg_account *a = dst;
	a->balance = ls_col_u64(st, 0);
	a->nonce = ls_col_u64(st, 1);
	a->staked = ls_col_u64(st, 2);
	a->unbonding = ls_col_u64(st, 3);
	return 1;
}

int lg_store_account_get(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_account *out)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_ACCOUNT_GET, k, 1);
	lg_account a;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_get_row(s, st, account_row, &a)) != CM_OK)
		return rc;
	memcpy(a.pk, pk, LG_KEY_BYTES);
	*out = a;
	return CM_OK;
}

int lg_store_account_put(lg_store *s, const lg_account *a)
{
	col c[] = {cb(a->pk, LG_KEY_BYTES), cu(a->balance), cu(a->nonce), cu(a->staked),
		   cu(a->unbonding)};
	return ls_write_row(s, T_ACCOUNTS, S_ACCOUNT_PUT, c, 1, 5);
}

static int unbond_row(sqlite3_stmt *st, void *dst)
{
	lg_unbond *u = dst;
	u->release_height = ls_col_u64(st, 0);
	u->amount = ls_col_u64(st, 2);
	return ls_col_fixed(st, 1, u->pk, LG_KEY_BYTES);
}

int ls_amount_row(sqlite3_stmt *st, void *dst)
{
	*(uint64_t *)dst = ls_col_u64(st, 0);
	return 1;
}

int lg_store_unbond_set(lg_store *s, const lg_unbond *u)
{
	col c[] = {cu(u->release_height), cb(u->pk, LG_KEY_BYTES), cu(u->amount)};
	if (u->amount == 0)
		return ls_delete_row(s, T_UNBONDING, S_UNBOND_DEL, c, 2);
	return ls_write_row(s, T_UNBONDING, S_UNBOND_PUT, c, 2, 3);
}

int lg_store_unbond_add(lg_store *s, uint64_t release_height, const uint8_t pk[LG_KEY_BYTES],
			uint64_t amount)
{
	col k[] = {cu(release_height), cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_UNBOND_GET, k, 2);
	lg_unbond u = {release_height, {0}, 0};
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = ls_get_row(s, st, ls_amount_row, &u.amount);
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
		return rc;
	if (u.amount > UINT64_MAX - amount)
		return ls_err(s, CM_ERR_RANGE, "unbonding amount overflows");
	memcpy(u.pk, pk, LG_KEY_BYTES);
	u.amount += amount;
	return lg_store_unbond_set(s, &u);
}

int lg_store_unbond_due(lg_store *s, uint64_t height, lg_unbond **out, size_t *n)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = ls_prep(s, S_UNBOND_DUE, k, 1);
	return st ? ls_list_rows(s, st, sizeof(lg_unbond), unbond_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_unbond_of(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_unbond **out, size_t *n)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_UNBOND_OF, k, 1);
	return st ? ls_list_rows(s, st, sizeof(lg_unbond), unbond_row, (void **)out, n) : CM_ERR_IO;
}

/* ---- indexers ---- */

static int indexer_row(sqlite3_stmt *st, void *dst)
{
	lg_indexer *ix = dst;
	ix->capacity = ls_col_u64(st, 1);
	ix->failures = ls_col_u64(st, 2);
	ix->jailed = (int)ls_col_u64(st, 3);
	ix->active = (int)ls_col_u64(st, 4);
	ix->registered_height = ls_col_u64(st, 5);
	return ls_col_text(st, 0, ix->address, sizeof(ix->address));
}

int lg_store_indexer_get(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_indexer *out)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_INDEXER_GET, k, 1);
	lg_indexer ix;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_get_row(s, st, indexer_row, &ix)) != CM_OK)
		return rc;
	memcpy(ix.pk, pk, LG_KEY_BYTES);
	*out = ix;
	return CM_OK;
}

int lg_store_indexer_put(lg_store *s, const lg_indexer *ix)
{
	col c[] = {cb(ix->pk, LG_KEY_BYTES), ct(ix->address), cu(ix->capacity), cu(ix->failures),
		   cu(ix->jailed ? 1 : 0), cu(ix->active ? 1 : 0), cu(ix->registered_height)};
	return ls_write_row(s, T_INDEXERS, S_INDEXER_PUT, c, 1, 7);
}

static int key_row(sqlite3_stmt *st, void *dst)
{
	return ls_col_fixed(st, 0, dst, LG_KEY_BYTES);
}

int lg_store_indexer_keys(lg_store *s, uint8_t (**out)[LG_KEY_BYTES], size_t *n)
{
	sqlite3_stmt *st = ls_stmt(s, S_INDEXER_KEYS);
	return st ? ls_list_rows(s, st, LG_KEY_BYTES, key_row, (void **)out, n) : CM_ERR_IO;
}

static int staked_row(sqlite3_stmt *st, void *dst)
{
	lg_staked *x = dst;
	x->stake = ls_col_u64(st, 1);
	return ls_col_fixed(st, 0, x->pk, LG_KEY_BYTES);
}

int lg_store_indexer_active(lg_store *s, lg_staked **out, size_t *n)
{
	sqlite3_stmt *st = ls_stmt(s, S_INDEXER_ACTIVE);
	return st ? ls_list_rows(s, st, sizeof(lg_staked), staked_row, (void **)out, n) : CM_ERR_IO;
}

/* ---- governance ---- */

static int proposal_row(sqlite3_stmt *st, void *dst)
{
	lg_proposal *p = dst;
	p->id = ls_col_u64(st, 0);
	p->value = sqlite3_column_int64(st, 3);
	p->apply_height = ls_col_u64(st, 4);
	p->created_height = ls_col_u64(st, 5);
	p->yes_stake = ls_col_u64(st, 6);
	p->total_stake = ls_col_u64(st, 7);
	p->status = (int)ls_col_u64(st, 8);
	return ls_col_fixed(st, 1, p->proposer, LG_KEY_BYTES) && ls_col_text(st, 2, p->param, sizeof(p->param));
}

int lg_store_proposal_get(lg_store *s, uint64_t id, lg_proposal *out)
{
	col k[] = {cu(id)};
	sqlite3_stmt *st = ls_prep(s, S_PROP_GET, k, 1);
	return st ? ls_get_row(s, st, proposal_row, out) : CM_ERR_IO;
}

int lg_store_proposal_put(lg_store *s, const lg_proposal *p)
{
	col c[] = {cu(p->id), cb(p->proposer, LG_KEY_BYTES), ct(p->param), cu((uint64_t)p->value),
		   cu(p->apply_height), cu(p->created_height), cu(p->yes_stake), cu(p->total_stake),
		   cu((uint64_t)p->status)};
	return ls_write_row(s, T_PROPOSALS, S_PROP_PUT, c, 1, 9);
}

int lg_store_proposals_due(lg_store *s, uint64_t height, lg_proposal **out, size_t *n)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = ls_prep(s, S_PROP_DUE, k, 1);
	return st ? ls_list_rows(s, st, sizeof(lg_proposal), proposal_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_vote_put(lg_store *s, uint64_t proposal, const uint8_t voter[LG_KEY_BYTES], int yes)
{
	col c[] = {cu(proposal), cb(voter, LG_KEY_BYTES), cu(yes ? 1 : 0)};
	return ls_write_row(s, T_VOTES, S_VOTE_PUT, c, 2, 3);
}

int lg_store_yes_voters(lg_store *s, uint64_t proposal, uint8_t (**out)[LG_KEY_BYTES], size_t *n)
{
	col k[] = {cu(proposal)};
	sqlite3_stmt *st = ls_prep(s, S_VOTE_YES, k, 1);
	return st ? ls_list_rows(s, st, LG_KEY_BYTES, key_row, (void **)out, n) : CM_ERR_IO;
}

/* ---- parameters, counters, replicas, gateways ---- */

int lg_store_param_put(lg_store *s, const char *name, int64_t value)
{
	col c[] = {ct(name), cu((uint64_t)value)};
	return ls_write_row(s, T_PARAMS, S_PARAM_PUT, c, 1, 2);
}

static int named_row(sqlite3_stmt *st, void *dst)
{
	lg_named *p = dst;
	p->value = sqlite3_column_int64(st, 1);
	return ls_col_text(st, 0, p->name, sizeof(p->name));
}

int lg_store_params(lg_store *s, lg_named **out, size_t *n)
{
	sqlite3_stmt *st = ls_stmt(s, S_PARAMS);
	return st ? ls_list_rows(s, st, sizeof(lg_named), named_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_counter_get(lg_store *s, const char *name, uint64_t *out)
{
	col k[] = {ct(name)};
	sqlite3_stmt *st = ls_prep(s, S_COUNTER_GET, k, 1);
	uint64_t v = 0;
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = ls_get_row(s, st, ls_amount_row, &v);
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
		return rc;
	*out = v;
	return CM_OK;
}

int lg_store_counter_put(lg_store *s, const char *name, uint64_t value)
{
	col c[] = {ct(name), cu(value)};
	return ls_write_row(s, T_COUNTERS, S_COUNTER_PUT, c, 1, 2);
}

int lg_store_replica_put(lg_store *s, const lg_replica *r)
{
	col c[] = {cu(r->position), cb(r->pk, LG_KEY_BYTES), ct(r->address)};
	return ls_write_row(s, T_REPLICAS, S_REPLICA_PUT, c, 1, 3);
}

static int replica_row(sqlite3_stmt *st, void *dst)
{
	lg_replica *r = dst;
	r->position = (uint32_t)ls_col_u64(st, 0);
	return ls_col_fixed(st, 1, r->pk, LG_KEY_BYTES) && ls_col_text(st, 2, r->address, sizeof(r->address));
}

int lg_store_replicas(lg_store *s, lg_replica **out, size_t *n)
{
	sqlite3_stmt *st = ls_stmt(s, S_REPLICAS);
	return st ? ls_list_rows(s, st, sizeof(lg_replica), replica_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_gateway_put(lg_store *s, const uint8_t pk[LG_KEY_BYTES])
{
	col c[] = {cb(pk, LG_KEY_BYTES)};
	return ls_write_row(s, T_GATEWAYS, S_GATEWAY_PUT, c, 1, 1);
}

int ls_one_row(sqlite3_stmt *st, void *dst)
{
	(void)st;
	(void)dst;
	return 1;
}

int lg_store_is_gateway(lg_store *s, const uint8_t pk[LG_KEY_BYTES])
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_GATEWAY_GET, k, 1);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = ls_get_row(s, st, ls_one_row, NULL);
	return rc == CM_OK ? 1 : rc == CM_ERR_NOTFOUND ? 0 : rc;
}

