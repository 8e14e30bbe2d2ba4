/* The store's rows of settlement and evidence: allowances searchers give
 * gateways, settled receipts with their payouts, what each node earned, and
 * the double-root and answer-fraud evidence already punished. */
#include "lg_store_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- settlement: allowances, receipts, earnings ---- */

static int allowance_row(sqlite3_stmt *st, void *dst)
{
	lg_allowance *a = dst;
	a->amount = ls_col_u64(st, 0);
	a->expiry = ls_col_u64(st, 1);
	return 1;
}

int lg_store_allowance_get(lg_store *s, const uint8_t searcher[LG_KEY_BYTES],
			   const uint8_t gateway[LG_KEY_BYTES], lg_allowance *out)
{
	col k[] = {cb(searcher, LG_KEY_BYTES), cb(gateway, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_ALLOW_GET, k, 2);
	lg_allowance a;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_get_row(s, st, allowance_row, &a)) != CM_OK)
		return rc;
	memcpy(a.searcher, searcher, LG_KEY_BYTES);
	memcpy(a.gateway, gateway, LG_KEY_BYTES);
	*out = a;
	return CM_OK;
}

int lg_store_allowance_put(lg_store *s, const lg_allowance *a)
{
	col c[] = {cb(a->searcher, LG_KEY_BYTES), cb(a->gateway, LG_KEY_BYTES), cu(a->amount),
		   cu(a->expiry)};
	if (a->amount == 0)
		return ls_delete_row(s, T_ALLOWANCES, S_ALLOW_DEL, c, 2);
	return ls_write_row(s, T_ALLOWANCES, S_ALLOW_PUT, c, 2, 4);
}

int lg_store_receipt_seen(lg_store *s, const uint8_t gateway[LG_KEY_BYTES], const uint8_t *id, size_t len)
{
	col k[] = {cb(gateway, LG_KEY_BYTES), cb(id, len)};
	sqlite3_stmt *st = ls_prep(s, S_RCPT_HAS, k, 2);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = ls_get_row(s, st, ls_one_row, NULL);
	return rc == CM_OK ? 1 : rc == CM_ERR_NOTFOUND ? 0 : rc;
}

int lg_store_receipt_put(lg_store *s, const lg_receipt *r)
{
	uint8_t pay[LG_RANKED_MAX * (LG_KEY_BYTES + 8)];
	int rc;
	if (r->id_len > LG_RECEIPT_ID_MAX_BYTES || r->npayouts > LG_RANKED_MAX)
		return ls_err(s, CM_ERR_INVALID, "receipt: id or payouts too long");
	for (uint32_t i = 0; i < r->npayouts; i++) {
		memcpy(pay + i * (LG_KEY_BYTES + 8), r->payouts[i].node, LG_KEY_BYTES);
		cm_put_be64(pay + i * (LG_KEY_BYTES + 8) + LG_KEY_BYTES, r->payouts[i].amount);
	}
	col c[] = {cb(r->gateway, LG_KEY_BYTES), cb(r->id, r->id_len), cu(r->seq), ct(r->magu),
		   cb(r->searcher, LG_KEY_BYTES), cu(r->fee),
		   cb(pay, (size_t)r->npayouts * (LG_KEY_BYTES + 8)), cu(r->height),
		   cb(r->tx_hash, CM_HASH_BYTES)};
	if ((rc = ls_write_row(s, T_RECEIPTS, S_RCPT_PUT, c, 2, 9)) != CM_OK)
		return rc;
	for (uint32_t i = 0; i < r->npayouts && rc == CM_OK; i++) {
		col p[] = {cb(r->payouts[i].node, LG_KEY_BYTES), cu(r->seq), cu(r->payouts[i].amount)};
		rc = ls_write_row(s, T_PAYOUTS, S_PAYOUT_PUT, p, 2, 3);
	}
	return rc;
}

static int receipt_row(sqlite3_stmt *st, void *dst)
{
	lg_receipt *r = dst;
	size_t idn = (size_t)sqlite3_column_bytes(st, 0), pn = (size_t)sqlite3_column_bytes(st, 6);
	const uint8_t *pay = sqlite3_column_blob(st, 6);
	if (idn > LG_RECEIPT_ID_MAX_BYTES || pn % (LG_KEY_BYTES + 8) || pn / (LG_KEY_BYTES + 8) > LG_RANKED_MAX)
		return 0;
	r->id_len = (uint32_t)idn;
	r->seq = ls_col_u64(st, 1);
	r->fee = ls_col_u64(st, 5);
	r->height = ls_col_u64(st, 7);
	r->npayouts = (uint32_t)(pn / (LG_KEY_BYTES + 8));
	for (uint32_t i = 0; i < r->npayouts; i++) {
		memcpy(r->payouts[i].node, pay + i * (LG_KEY_BYTES + 8), LG_KEY_BYTES);
		r->payouts[i].amount = cm_get_be64(pay + i * (LG_KEY_BYTES + 8) + LG_KEY_BYTES);
	}
	return ls_col_fixed(st, 0, r->id, idn) && ls_col_text(st, 2, r->magu, sizeof(r->magu)) &&
	       ls_col_fixed(st, 3, r->searcher, LG_KEY_BYTES) && ls_col_fixed(st, 4, r->gateway, LG_KEY_BYTES) &&
	       ls_col_fixed(st, 8, r->tx_hash, CM_HASH_BYTES);
}

int lg_store_receipts(lg_store *s, enum lg_receipts_by by, const uint8_t key[LG_KEY_BYTES],
		      uint64_t before_seq, size_t limit, lg_receipt **out, size_t *n)
{
	enum stmt_id id = by == LG_RCPT_BY_SEARCHER ? S_RCPT_BY_SEARCHER
			  : by == LG_RCPT_BY_GATEWAY ? S_RCPT_BY_GATEWAY
						     : S_RCPT_BY_NODE;
	col k[] = {cb(key, LG_KEY_BYTES), cu(before_seq > INT64_MAX ? INT64_MAX : before_seq), cu(limit)};
	sqlite3_stmt *st = ls_prep(s, id, k, 3);
	return st ? ls_list_rows(s, st, sizeof(lg_receipt), receipt_row, (void **)out, n) : CM_ERR_IO;
}

static int earnings_row(sqlite3_stmt *st, void *dst)
{
	lg_earnings *e = dst;
	e->total = ls_col_u64(st, 0);
	e->receipts = ls_col_u64(st, 1);
	return 1;
}

int lg_store_earnings_get(lg_store *s, const uint8_t node[LG_KEY_BYTES], lg_earnings *out)
{
	col k[] = {cb(node, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_EARN_GET, k, 1);
	lg_earnings e = {{0}, 0, 0};
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = ls_get_row(s, st, earnings_row, &e);
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
		return rc;
	memcpy(e.node, node, LG_KEY_BYTES);
	*out = e;
	return CM_OK;
}

int lg_store_earnings_put(lg_store *s, const lg_earnings *e)
{
	col c[] = {cb(e->node, LG_KEY_BYTES), cu(e->total), cu(e->receipts)};
	return ls_write_row(s, T_EARNINGS, S_EARN_PUT, c, 1, 3);
}

/* ---- double-root evidence ---- */

int lg_store_double_root_seen(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const char *magu,
			      uint32_t fragment, uint64_t size)
{
	col k[] = {cb(signer, LG_KEY_BYTES), ct(magu), cu(fragment), cu(size)};
	sqlite3_stmt *st = ls_prep(s, S_DROOT_HAS, k, 4);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = ls_get_row(s, st, ls_one_row, NULL);
	return rc == CM_OK ? 1 : rc == CM_ERR_NOTFOUND ? 0 : rc;
}

int lg_store_double_root_put(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const char *magu,
			     uint32_t fragment, uint64_t size)
{
	col c[] = {cb(signer, LG_KEY_BYTES), ct(magu), cu(fragment), cu(size)};
	return ls_write_row(s, T_DOUBLE_ROOTS, S_DROOT_PUT, c, 4, 4);
}

/* ---- answer-fraud evidence ---- */

int lg_store_answer_fraud_seen(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const uint8_t digest[32])
{
	col k[] = {cb(signer, LG_KEY_BYTES), cb(digest, 32)};
	sqlite3_stmt *st = ls_prep(s, S_AFRAUD_HAS, k, 2);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = ls_get_row(s, st, ls_one_row, NULL);
	return rc == CM_OK ? 1 : rc == CM_ERR_NOTFOUND ? 0 : rc;
}

int lg_store_answer_fraud_put(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const uint8_t digest[32])
{
	col c[] = {cb(signer, LG_KEY_BYTES), cb(digest, 32)};
	return ls_write_row(s, T_ANSWER_FRAUDS, S_AFRAUD_PUT, c, 2, 2);
}
