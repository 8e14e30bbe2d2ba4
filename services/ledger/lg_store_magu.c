/* The store's rows of Magus: the Magu, its member slots, its fragments and
 * their configurations, root votes, failover requests, and the challenges
 * of fragment roots. */
#include "lg_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Magus, slots, fragments ---- */

static int magu_row(sqlite3_stmt *st, void *dst)
{
	lg_magu *m = dst;
	size_t n = (size_t)sqlite3_column_bytes(st, 6);
	m->dimension = (uint32_t)ls_col_u64(st, 1);
	m->metric = (uint32_t)ls_col_u64(st, 2);
	m->fragments = (uint32_t)ls_col_u64(st, 3);
	m->replication = (uint32_t)ls_col_u64(st, 4);
	m->slots = (uint32_t)ls_col_u64(st, 5);
	m->deposit = ls_col_u64(st, 7);
	m->created_height = ls_col_u64(st, 8);
	if (n > LG_INDEX_SPEC_MAX || !ls_col_fixed(st, 6, m->index_spec, n))
		return 0;
	m->index_spec_len = n;
	return ls_col_fixed(st, 0, m->owner, LG_KEY_BYTES);
}

int lg_store_magu_get(lg_store *s, const char *name, lg_magu *out)
{
	col k[] = {ct(name)};
	sqlite3_stmt *st = ls_prep(s, S_MAGU_GET, k, 1);
	lg_magu m;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_get_row(s, st, magu_row, &m)) != CM_OK)
		return rc;
	snprintf(m.name, sizeof(m.name), "%s", name);
	*out = m;
	return CM_OK;
}

int lg_store_magu_put(lg_store *s, const lg_magu *m)
{
	col c[] = {ct(m->name), cb(m->owner, LG_KEY_BYTES), cu(m->dimension), cu(m->metric),
		   cu(m->fragments), cu(m->replication), cu(m->slots),
		   cb(m->index_spec, m->index_spec_len), cu(m->deposit), cu(m->created_height)};
	return ls_write_row(s, T_MAGUS, S_MAGU_PUT, c, 1, 10);
}

int ls_name_row(sqlite3_stmt *st, void *dst)
{
	return ls_col_text(st, 0, dst, LG_NAME_MAX + 1);
}

int lg_store_magu_names(lg_store *s, char (**out)[LG_NAME_MAX + 1], size_t *n)
{
	sqlite3_stmt *st = ls_stmt(s, S_MAGU_NAMES);
	return st ? ls_list_rows(s, st, LG_NAME_MAX + 1, ls_name_row, (void **)out, n) : CM_ERR_IO;
}

static int slot_row(sqlite3_stmt *st, void *dst)
{
	lg_slot *sl = dst;
	sl->slot = (uint32_t)ls_col_u64(st, 1);
	sl->filled = sqlite3_column_type(st, 2) != SQLITE_NULL;
	if (sl->filled && !ls_col_fixed(st, 2, sl->holder, LG_KEY_BYTES))
		return 0;
	return ls_col_text(st, 0, sl->magu, sizeof(sl->magu));
}

int lg_store_slot_put(lg_store *s, const lg_slot *sl)
{
	col c[] = {ct(sl->magu), cu(sl->slot), sl->filled ? cb(sl->holder, LG_KEY_BYTES) : cnull()};
	return ls_write_row(s, T_SLOTS, S_SLOT_PUT, c, 2, 3);
}

int lg_store_slots_of_magu(lg_store *s, const char *magu, lg_slot **out, size_t *n)
{
	col k[] = {ct(magu)};
	sqlite3_stmt *st = ls_prep(s, S_SLOTS_MAGU, k, 1);
	return st ? ls_list_rows(s, st, sizeof(lg_slot), slot_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_slots_of_holder(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_slot **out, size_t *n)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_SLOTS_HOLDER, k, 1);
	return st ? ls_list_rows(s, st, sizeof(lg_slot), slot_row, (void **)out, n) : CM_ERR_IO;
}

/* Copies a blob of k 32-byte keys (k <= max) into keys; 0 if malformed. */
static int col_keys(sqlite3_stmt *st, int i, uint8_t (*keys)[LG_KEY_BYTES], uint32_t *k, size_t max)
{
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (n % LG_KEY_BYTES || n / LG_KEY_BYTES > max)
		return 0;
	*k = (uint32_t)(n / LG_KEY_BYTES);
	return ls_col_fixed(st, i, keys, n);
}

static int fragment_row(sqlite3_stmt *st, void *dst)
{
	lg_fragment *f = dst;
	f->fragment = (uint32_t)ls_col_u64(st, 1);
	f->epoch = ls_col_u64(st, 2);
	f->committed_size = ls_col_u64(st, 5);
	f->committed_height = ls_col_u64(st, 7);
	return ls_col_text(st, 0, f->magu, sizeof(f->magu)) && ls_col_fixed(st, 3, f->primary, LG_KEY_BYTES) &&
	       col_keys(st, 4, f->replicas, &f->nreplicas, LG_MAX_REPLICAS) &&
	       ls_col_fixed(st, 6, f->committed_root, LG_ROOT_BYTES) &&
	       col_keys(st, 8, f->signers, &f->nsigners, LG_MAX_REPLICAS);
}

int lg_store_fragment_get(lg_store *s, const char *magu, uint32_t fragment, lg_fragment *out)
{
	col k[] = {ct(magu), cu(fragment)};
	sqlite3_stmt *st = ls_prep(s, S_FRAG_GET, k, 2);
	return st ? ls_get_row(s, st, fragment_row, out) : CM_ERR_IO;
}

int lg_store_fragment_put(lg_store *s, const lg_fragment *f)
{
	col c[] = {ct(f->magu), cu(f->fragment), cu(f->epoch), cb(f->primary, LG_KEY_BYTES),
		   cb(f->replicas, (size_t)f->nreplicas * LG_KEY_BYTES), cu(f->committed_size),
		   cb(f->committed_root, LG_ROOT_BYTES), cu(f->committed_height),
		   cb(f->signers, (size_t)f->nsigners * LG_KEY_BYTES)};
	return ls_write_row(s, T_FRAGMENTS, S_FRAG_PUT, c, 2, 9);
}

int lg_store_fragments_of(lg_store *s, const char *magu, lg_fragment **out, size_t *n)
{
	col k[] = {ct(magu)};
	sqlite3_stmt *st = ls_prep(s, S_FRAGS_OF, k, 1);
	return st ? ls_list_rows(s, st, sizeof(lg_fragment), fragment_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_fragment_committed_count(lg_store *s, uint64_t *n)
{
	sqlite3_stmt *st = ls_stmt(s, S_FRAG_COUNT);
	return st ? ls_get_row(s, st, ls_amount_row, n) : CM_ERR_IO;
}

int lg_store_fragment_committed_nth(lg_store *s, uint64_t i, lg_fragment *out)
{
	col k[] = {cu(i)};
	sqlite3_stmt *st = ls_prep(s, S_FRAG_NTH, k, 1);
	return st ? ls_get_row(s, st, fragment_row, out) : CM_ERR_IO;
}

/* ---- cells of split fragments ---- */

static int cell_row(sqlite3_stmt *st, void *dst)
{
	lg_cell *c = dst;
	size_t n = (size_t)sqlite3_column_bytes(st, 7);
	const uint8_t *p = sqlite3_column_blob(st, 7);
	c->state = (uint32_t)ls_col_u64(st, 0);
	c->base = (uint32_t)ls_col_u64(st, 1);
	c->depth = (uint32_t)ls_col_u64(st, 2);
	c->path = ls_col_u64(st, 3);
	c->has_parent = sqlite3_column_type(st, 4) != SQLITE_NULL;
	c->parent = c->has_parent ? (uint32_t)ls_col_u64(st, 4) : 0;
	c->src_size = ls_col_u64(st, 5);
	c->derived = (int)ls_col_u64(st, 8);
	if (n % 4 || n / 4 > 2)
		return 0;
	c->nchildren = (uint32_t)(n / 4);
	for (uint32_t i = 0; i < c->nchildren; i++)
		c->children[i] = cm_get_be32(p + 4 * i);
	return ls_col_fixed(st, 6, c->src_root, LG_ROOT_BYTES);
}

int lg_store_cell_get(lg_store *s, const char *magu, uint32_t fragment, lg_cell *out)
{
	col k[] = {ct(magu), cu(fragment)};
	sqlite3_stmt *st = ls_prep(s, S_CELL_GET, k, 2);
	lg_cell c;
	int rc;
	if (!st)
		return CM_ERR_IO;
	memset(&c, 0, sizeof(c));
	snprintf(c.magu, sizeof(c.magu), "%s", magu);
	c.fragment = fragment;
	if ((rc = ls_get_row(s, st, cell_row, &c)) == CM_ERR_NOTFOUND) {
		memset(&c, 0, sizeof(c));
		snprintf(c.magu, sizeof(c.magu), "%s", magu);
		c.fragment = fragment;
		c.base = fragment;
	} else if (rc != CM_OK) {
		return rc;
	}
	*out = c;
	return rc;
}

int lg_store_cell_put(lg_store *s, const lg_cell *c)
{
	uint8_t kids[8];
	for (uint32_t i = 0; i < c->nchildren && i < 2; i++)
		cm_put_be32(kids + 4 * i, c->children[i]);
	col cols[] = {ct(c->magu), cu(c->fragment), cu(c->state), cu(c->base), cu(c->depth), cu(c->path),
		      c->has_parent ? cu(c->parent) : cnull(), cu(c->src_size), cb(c->src_root, LG_ROOT_BYTES),
		      cb(kids, (size_t)(c->nchildren > 2 ? 2 : c->nchildren) * 4), cu((uint64_t)c->derived)};
	return ls_write_row(s, T_CELLS, S_CELL_PUT, cols, 2, 11);
}

/* Deletes a fragment's cell row if it has one (a fragment never split
 * writes nothing). */
static int cell_clear(lg_store *s, const char *magu, uint32_t fragment)
{
	lg_cell c;
	col d[] = {ct(magu), cu(fragment)};
	int rc = lg_store_cell_get(s, magu, fragment, &c);
	if (rc == CM_ERR_NOTFOUND)
		return CM_OK;
	return rc == CM_OK ? ls_delete_row(s, T_CELLS, S_CELL_DEL, d, 2) : rc;
}

/* ---- root votes and failover requests ---- */

int lg_store_root_vote_put(lg_store *s, const char *magu, uint32_t fragment, uint64_t size,
			   const uint8_t signer[LG_KEY_BYTES], const uint8_t root[LG_ROOT_BYTES])
{
	col c[] = {ct(magu), cu(fragment), cu(size), cb(signer, LG_KEY_BYTES), cb(root, LG_ROOT_BYTES)};
	return ls_write_row(s, T_ROOT_VOTES, S_RVOTE_PUT, c, 4, 5);
}

static int rvote_row(sqlite3_stmt *st, void *dst)
{
	lg_root_vote *v = dst;
	return ls_col_fixed(st, 0, v->signer, LG_KEY_BYTES) && ls_col_fixed(st, 1, v->root, LG_ROOT_BYTES);
}

int lg_store_root_votes(lg_store *s, const char *magu, uint32_t fragment, uint64_t size,
			lg_root_vote **out, size_t *n)
{
	col k[] = {ct(magu), cu(fragment), cu(size)};
	sqlite3_stmt *st = ls_prep(s, S_RVOTES, k, 3);
	return st ? ls_list_rows(s, st, sizeof(lg_root_vote), rvote_row, (void **)out, n) : CM_ERR_IO;
}

typedef struct sized_key {
	uint64_t size;
	uint8_t key[LG_KEY_BYTES];
} sized_key;

static int sized_key_row(sqlite3_stmt *st, void *dst)
{
	sized_key *k = dst;
	k->size = ls_col_u64(st, 0);
	return ls_col_fixed(st, 1, k->key, LG_KEY_BYTES);
}

int lg_store_root_votes_clear(lg_store *s, const char *magu, uint32_t fragment)
{
	col k[] = {ct(magu), cu(fragment)};
	sqlite3_stmt *st = ls_prep(s, S_RVOTE_KEYS, k, 2);
	sized_key *keys;
	size_t n;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_list_rows(s, st, sizeof(*keys), sized_key_row, (void **)&keys, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		col d[] = {ct(magu), cu(fragment), cu(keys[i].size), cb(keys[i].key, LG_KEY_BYTES)};
		rc = ls_delete_row(s, T_ROOT_VOTES, S_RVOTE_DEL, d, 4);
	}
	free(keys);
	return rc;
}

int lg_store_failover_put(lg_store *s, const char *magu, uint32_t fragment, const lg_failover *f)
{
	col c[] = {ct(magu), cu(fragment), cb(f->requester, LG_KEY_BYTES), cu(f->epoch), cu(f->log_size),
		   cu(f->last_epoch), cb(f->root, LG_ROOT_BYTES)};
	return ls_write_row(s, T_FAILOVERS, S_FAILOVER_PUT, c, 3, 7);
}

static int failover_row(sqlite3_stmt *st, void *dst)
{
	lg_failover *f = dst;
	f->epoch = ls_col_u64(st, 1);
	f->log_size = ls_col_u64(st, 2);
	f->last_epoch = ls_col_u64(st, 3);
	return ls_col_fixed(st, 0, f->requester, LG_KEY_BYTES) && ls_col_fixed(st, 4, f->root, LG_ROOT_BYTES);
}

int lg_store_failovers(lg_store *s, const char *magu, uint32_t fragment, uint64_t epoch,
		       lg_failover **out, size_t *n)
{
	col k[] = {ct(magu), cu(fragment), cu(epoch)};
	sqlite3_stmt *st = ls_prep(s, S_FAILOVERS, k, 3);
	return st ? ls_list_rows(s, st, sizeof(lg_failover), failover_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_failovers_clear(lg_store *s, const char *magu, uint32_t fragment)
{
	col k[] = {ct(magu), cu(fragment)};
	sqlite3_stmt *st = ls_prep(s, S_FAILOVER_KEYS, k, 2);
	lg_failover *f;
	size_t n;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_list_rows(s, st, sizeof(*f), failover_row, (void **)&f, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		col d[] = {ct(magu), cu(fragment), cb(f[i].requester, LG_KEY_BYTES)};
		rc = ls_delete_row(s, T_FAILOVERS, S_FAILOVER_DEL, d, 3);
	}
	free(f);
	return rc;
}

/* ---- hand-overs ---- */

int lg_store_handover_put(lg_store *s, const lg_handover *h)
{
	col c[] = {ct(h->magu), cu(h->fragment), cb(h->leaver, LG_KEY_BYTES), cu(h->start_height),
		   cb(h->pending, (size_t)h->npending * LG_KEY_BYTES)};
	return ls_write_row(s, T_HANDOVERS, S_HO_PUT, c, 3, 5);
}

int lg_store_handover_del(lg_store *s, const char *magu, uint32_t fragment, const uint8_t *leaver)
{
	col d[] = {ct(magu), cu(fragment), cb(leaver, LG_KEY_BYTES)};
	return ls_delete_row(s, T_HANDOVERS, S_HO_DEL, d, 3);
}

static int handover_row(sqlite3_stmt *st, void *dst)
{
	lg_handover *h = dst;
	h->fragment = (uint32_t)ls_col_u64(st, 1);
	h->start_height = ls_col_u64(st, 3);
	return ls_col_text(st, 0, h->magu, sizeof(h->magu)) && ls_col_fixed(st, 2, h->leaver, LG_KEY_BYTES) &&
	       col_keys(st, 4, h->pending, &h->npending, LG_MAX_REPLICAS);
}

int lg_store_handovers(lg_store *s, const char *magu, uint32_t fragment, lg_handover **out, size_t *n)
{
	col k[] = {ct(magu ? magu : ""), cu(fragment)};
	sqlite3_stmt *st = magu ? ls_prep(s, S_HO_OF, k, 2) : ls_stmt(s, S_HO_ALL);
	return st ? ls_list_rows(s, st, sizeof(lg_handover), handover_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_is_leaving(lg_store *s, const uint8_t *pk)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_HO_LEAVER, k, 1);
	if (!st)
		return CM_ERR_IO;
	int rc = ls_get_row(s, st, ls_one_row, NULL);
	return rc == CM_OK ? 1 : rc == CM_ERR_NOTFOUND ? 0 : rc;
}

static int handovers_clear(lg_store *s, const char *magu, uint32_t fragment)
{
	lg_handover *h = NULL;
	size_t n;
	int rc = lg_store_handovers(s, magu, fragment, &h, &n);
	for (size_t i = 0; i < n && rc == CM_OK; i++)
		rc = lg_store_handover_del(s, magu, fragment, h[i].leaver);
	free(h);
	return rc;
}

int lg_store_magu_del(lg_store *s, const char *name)
{
	lg_slot *sl = NULL;
	lg_fragment *fr = NULL;
	size_t ns = 0, nf = 0;
	col k[] = {ct(name)};
	int rc;

	if ((rc = lg_store_slots_of_magu(s, name, &sl, &ns)) != CM_OK ||
	    (rc = lg_store_fragments_of(s, name, &fr, &nf)) != CM_OK)
		goto out;
	for (size_t i = 0; i < ns && rc == CM_OK; i++) {
		col d[] = {ct(name), cu(sl[i].slot)};
		rc = ls_delete_row(s, T_SLOTS, S_SLOT_DEL, d, 2);
	}
	for (size_t i = 0; i < nf && rc == CM_OK; i++) {
		col d[] = {ct(name), cu(fr[i].fragment)};
		if ((rc = lg_store_root_votes_clear(s, name, fr[i].fragment)) == CM_OK &&
		    (rc = lg_store_failovers_clear(s, name, fr[i].fragment)) == CM_OK &&
		    (rc = handovers_clear(s, name, fr[i].fragment)) == CM_OK &&
		    (rc = cell_clear(s, name, fr[i].fragment)) == CM_OK)
			rc = ls_delete_row(s, T_FRAGMENTS, S_FRAG_DEL, d, 2);
	}
	if (rc == CM_OK)
		rc = ls_delete_row(s, T_MAGUS, S_MAGU_DEL, k, 1);
out:
	free(sl);
	free(fr);
	return rc;
}

/* ---- challenges ---- */

static int challenge_row(sqlite3_stmt *st, void *dst)
{
	lg_challenge *c = dst;
	size_t n = (size_t)sqlite3_column_bytes(st, 7);
	const uint8_t *p = sqlite3_column_blob(st, 7);
	c->id = ls_col_u64(st, 0);
	c->fragment = (uint32_t)ls_col_u64(st, 2);
	c->size = ls_col_u64(st, 5);
	c->issued_height = ls_col_u64(st, 8);
	c->deadline = ls_col_u64(st, 9);
	c->status = (int)ls_col_u64(st, 10);
	if (n % 8 || n / 8 > LG_LEAVES_MAX)
		return 0;
	c->nleaves = (uint32_t)(n / 8);
	for (uint32_t i = 0; i < c->nleaves; i++)
		c->leaves[i] = cm_get_be64(p + 8 * i);
	return ls_col_text(st, 1, c->magu, sizeof(c->magu)) && ls_col_fixed(st, 3, c->indexer, LG_KEY_BYTES) &&
	       ls_col_fixed(st, 4, c->beacon, CM_HASH_BYTES) && ls_col_fixed(st, 6, c->root, LG_ROOT_BYTES);
}

int lg_store_challenge_get(lg_store *s, uint64_t id, lg_challenge *out)
{
	col k[] = {cu(id)};
	sqlite3_stmt *st = ls_prep(s, S_CH_GET, k, 1);
	return st ? ls_get_row(s, st, challenge_row, out) : CM_ERR_IO;
}

int lg_store_challenge_put(lg_store *s, const lg_challenge *c)
{
	uint8_t leaves[LG_LEAVES_MAX * 8];
	for (uint32_t i = 0; i < c->nleaves && i < LG_LEAVES_MAX; i++)
		cm_put_be64(leaves + 8 * i, c->leaves[i]);
	col cols[] = {cu(c->id), ct(c->magu), cu(c->fragment), cb(c->indexer, LG_KEY_BYTES),
		      cb(c->beacon, CM_HASH_BYTES), cu(c->size), cb(c->root, LG_ROOT_BYTES),
		      cb(leaves, (size_t)c->nleaves * 8), cu(c->issued_height), cu(c->deadline),
		      cu((uint64_t)c->status)};
	return ls_write_row(s, T_CHALLENGES, S_CH_PUT, cols, 1, 11);
}

int lg_store_challenges_due(lg_store *s, uint64_t height, lg_challenge **out, size_t *n)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = ls_prep(s, S_CH_DUE, k, 1);
	return st ? ls_list_rows(s, st, sizeof(lg_challenge), challenge_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_challenges_of_magu(lg_store *s, const char *magu, lg_challenge **out, size_t *n)
{
	col k[] = {ct(magu)};
	sqlite3_stmt *st = ls_prep(s, S_CH_MAGU, k, 1);
	return st ? ls_list_rows(s, st, sizeof(lg_challenge), challenge_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_challenges_of(lg_store *s, const uint8_t indexer[LG_KEY_BYTES], int open_only,
			   size_t max, lg_challenge **out, size_t *n)
{
	return lg_store_challenges_page(s, indexer, open_only, UINT64_MAX, max, out, n);
}

int lg_store_challenges_page(lg_store *s, const uint8_t indexer[LG_KEY_BYTES], int open_only,
			     uint64_t before_id, size_t max, lg_challenge **out, size_t *n)
{
	/* ids are below 2^63: clamp so that the signed comparison holds */
	col k[] = {cb(indexer, LG_KEY_BYTES), cu(max), cu(before_id > INT64_MAX ? INT64_MAX : before_id)};
	sqlite3_stmt *st = ls_prep(s, open_only ? S_CH_OF_OPEN : S_CH_OF, k, 3);
	return st ? ls_list_rows(s, st, sizeof(lg_challenge), challenge_row, (void **)out, n) : CM_ERR_IO;
}


int lg_store_magu_names_after(lg_store *s, const char *after, size_t limit,
			      char (**out)[LG_NAME_MAX + 1], size_t *n)
{
	col k[] = {ct(after ? after : ""), cu(limit)};
	sqlite3_stmt *st = ls_prep(s, S_MAGU_NAMES_AFTER, k, 2);
	return st ? ls_list_rows(s, st, LG_NAME_MAX + 1, ls_name_row, (void **)out, n) : CM_ERR_IO;
}

