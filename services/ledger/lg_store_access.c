/* The store's rows of access control: API keys (by the hash of the key,
 * never the key) with their account, scope, expiry and collections, and
 * each Magu's access owner, readers, writers and public-read flag. */
#include "lg_store_int.h"

#include <stdlib.h>
#include <string.h>

static int key_row(sqlite3_stmt *st, void *dst)
{
	lg_api_key *k = dst;
	memset(k, 0, sizeof(*k));
	k->scope = (uint32_t)ls_col_u64(st, 2);
	k->expiry = ls_col_u64(st, 3);
	k->created_height = ls_col_u64(st, 6);
	k->revoked_height = ls_col_u64(st, 7);
	return ls_col_fixed(st, 0, k->hash, CM_HASH_BYTES) && ls_col_fixed(st, 1, k->account, LG_KEY_BYTES) &&
	       ls_col_text(st, 4, k->collections, sizeof(k->collections)) &&
	       ls_col_text(st, 5, k->label, sizeof(k->label));
}

int lg_store_api_key_get(lg_store *s, const uint8_t hash[CM_HASH_BYTES], lg_api_key *out)
{
	col k[] = {cb(hash, CM_HASH_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_KEY_GET, k, 1);
	return st ? ls_get_row(s, st, key_row, out) : CM_ERR_IO;
}

int lg_store_api_key_put(lg_store *s, const lg_api_key *k)
{
	col c[] = {cb(k->hash, CM_HASH_BYTES), cb(k->account, LG_KEY_BYTES), cu(k->scope), cu(k->expiry),
		   ct(k->collections), ct(k->label), cu(k->created_height), cu(k->revoked_height)};
	return ls_write_row(s, T_API_KEYS, S_KEY_PUT, c, 1, 8);
}

int lg_store_api_keys_of(lg_store *s, const uint8_t account[LG_KEY_BYTES], size_t max, lg_api_key **out,
			 size_t *n)
{
	col k[] = {cb(account, LG_KEY_BYTES), cu(max)};
	sqlite3_stmt *st = ls_prep(s, S_KEYS_OF, k, 2);
	return st ? ls_list_rows(s, st, sizeof(lg_api_key), key_row, (void **)out, n) : CM_ERR_IO;
}

/* n keys packed into a blob column: its length must be a multiple of 32. */
static int keys_col(sqlite3_stmt *st, int i, uint8_t (*dst)[LG_KEY_BYTES], uint32_t *n)
{
	int len = sqlite3_column_bytes(st, i);
	const void *p = sqlite3_column_blob(st, i);
	if (len < 0 || len % LG_KEY_BYTES || len / LG_KEY_BYTES > LG_ACCESS_LIST_MAX)
		return 0;
	if (len)
		memcpy(dst, p, (size_t)len);
	*n = (uint32_t)(len / LG_KEY_BYTES);
	return 1;
}

static int access_row(sqlite3_stmt *st, void *dst)
{
	lg_access *a = dst;
	a->public_read = ls_col_u64(st, 4) != 0;
	a->changed_height = ls_col_u64(st, 5);
	return ls_col_text(st, 0, a->magu, sizeof(a->magu)) && ls_col_fixed(st, 1, a->owner, LG_KEY_BYTES) &&
	       keys_col(st, 2, a->readers, &a->nreaders) && keys_col(st, 3, a->writers, &a->nwriters);
}

int lg_store_access_get(lg_store *s, const char *magu, lg_access *out)
{
	col k[] = {ct(magu)};
	sqlite3_stmt *st = ls_prep(s, S_ACCESS_GET, k, 1);
	return st ? ls_get_row(s, st, access_row, out) : CM_ERR_IO;
}

int lg_store_access_put(lg_store *s, const lg_access *a)
{
	if (a->nreaders > LG_ACCESS_LIST_MAX || a->nwriters > LG_ACCESS_LIST_MAX)
		return ls_err(s, CM_ERR_INVALID, "access: a list is longer than %d", LG_ACCESS_LIST_MAX);
	col c[] = {ct(a->magu), cb(a->owner, LG_KEY_BYTES), cb(a->readers, (size_t)a->nreaders * LG_KEY_BYTES),
		   cb(a->writers, (size_t)a->nwriters * LG_KEY_BYTES), cu(a->public_read ? 1 : 0),
		   cu(a->changed_height)};
	return ls_write_row(s, T_ACCESS, S_ACCESS_PUT, c, 1, 6);
}

int lg_store_access_del(lg_store *s, const char *magu)
{
	col k[] = {ct(magu)};
	return ls_delete_row(s, T_ACCESS, S_ACCESS_DEL, k, 1);
}
