/* The ledger's SQLite store. Every state row is written through ls_write_row()
 * or ls_delete_row(), which bind typed columns to a cached prepared statement
 * and append the same columns, canonically encoded, to the block's write set;
 * the state root hashes that write set (see lg_state.c). Statements are
 * prepared once per connection. Unsigned 64-bit values are stored as SQLite
 * INTEGERs with the same bits; no query orders by a value that may exceed
 * 2^63 (heights, ids and positions never do). This file holds the
 * connection, the block transaction and its write set, blocks, roots and
 * effects by height, read snapshots and the digest; the rows of the state
 * are in lg_store_rows.c, lg_store_magu.c and lg_store_settle.c, the SQL in
 * lg_store_sql.c. */
#include "lg_store_int.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 2
#define WS_MIN 4096            /* initial write-set buffer */

/* ---- errors and statements ---- */

int ls_err(lg_store *s, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return rc;
}

int ls_db_err(lg_store *s, const char *what)
{
	return ls_err(s, CM_ERR_IO, "%s: %s", what, sqlite3_errmsg(s->db));
}

/* The cached statement, reset and unbound, or NULL (error set). */
sqlite3_stmt *ls_stmt(lg_store *s, enum stmt_id id)
{
	if (!s->st[id]) {
		if (sqlite3_prepare_v3(s->db, lg_store_stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->st[id],
				       NULL) != SQLITE_OK) {
			ls_db_err(s, "prepare");
			return NULL;
		}
	}
	return s->st[id];
}

void ls_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Calls the fault hook before a write; CM_ERR_IO if it asks for a failure. */
int ls_fault_point(lg_store *s)
{
	s->step++;
	if (s->fault && s->fault(s->fault_arg, s->step))
		return ls_err(s, CM_ERR_IO, "injected fault at step %llu", (unsigned long long)s->step);
	return CM_OK;
}

/* Runs a statement that returns no rows. */
int ls_exec(lg_store *s, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = ls_stmt(s, id);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	ls_done(st);
	return rc == SQLITE_DONE ? CM_OK : ls_db_err(s, what);
}

/* ---- typed columns: bound to statements and encoded into the write set ---- */

static int bind_cols(sqlite3_stmt *st, const col *c, size_t n)
{
	int rc = SQLITE_OK;
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		int k = (int)i + 1;
		switch (c[i].t) {
		case 'u': rc = sqlite3_bind_int64(st, k, (sqlite3_int64)c[i].u); break;
		case 'b': rc = sqlite3_bind_blob(st, k, c[i].n ? c[i].p : "", (int)c[i].n, SQLITE_STATIC); break;
		case 't': rc = sqlite3_bind_text(st, k, c[i].p, (int)c[i].n, SQLITE_STATIC); break;
		default: rc = sqlite3_bind_null(st, k); break;
		}
	}
	return rc;
}

static size_t enc_size(const col *c, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += 1 + (c[i].t == 'u' ? 8 : c[i].t == 'n' ? 0 : 4 + c[i].n);
	return len;
}

/* Canonical encoding of columns: a type byte, then 8 bytes big-endian for an
 * integer, or a 4-byte big-endian length and the bytes for blob and text. */
static uint8_t *enc_cols(uint8_t *p, const col *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*p++ = (uint8_t)c[i].t;
		if (c[i].t == 'u') {
			cm_put_be64(p, c[i].u);
			p += 8;
		} else if (c[i].t != 'n') {
			uint32_t len = (uint32_t)c[i].n;
			cm_put_be32(p, len);
			if (c[i].n)
				memcpy(p + 4, c[i].p, c[i].n);
			p += 4 + c[i].n;
		}
	}
	return p;
}

/* Appends (table, key columns) -> value columns, or a deletion when vals is
 * NULL, to the write set. Outside a block transaction writes are not logged. */
static int ws_record(lg_store *s, enum table t, const col *keys, size_t nkeys, const col *vals,
		     size_t nvals)
{
	size_t klen = 1 + enc_size(keys, nkeys), vlen = 1 + (vals ? enc_size(vals, nvals) : 0);
	uint8_t *p;

	if (!s->in_block)
		return CM_OK;
	if (s->wlen + klen + vlen > s->wcap) {
		size_t cap = s->wcap ? s->wcap : WS_MIN;
		while (cap < s->wlen + klen + vlen)
			cap *= 2;
		uint8_t *nb = realloc(s->wbuf, cap);
		if (!nb)
			return ls_err(s, CM_ERR_NOMEM, "write set: out of memory");
		s->wbuf = nb;
		s->wcap = cap;
	}
	if (s->nents == s->ecap) {
		size_t cap = s->ecap ? 2 * s->ecap : 256;
		ws_entry *ne = realloc(s->ents, cap * sizeof(*ne));
		if (!ne)
			return ls_err(s, CM_ERR_NOMEM, "write set: out of memory");
		s->ents = ne;
		s->ecap = cap;
	}
	p = s->wbuf + s->wlen;
	*p++ = (uint8_t)t;
	p = enc_cols(p, keys, nkeys);
	*p++ = vals ? 1 : 0;
	if (vals)
		enc_cols(p, vals, nvals);
	s->ents[s->nents] = (ws_entry){s->wlen, NULL, (uint32_t)klen, (uint32_t)vlen, s->nents};
	s->nents++;
	s->wlen += klen + vlen;
	return CM_OK;
}

/* Runs statement id once with cols bound as ?1.. (after the fault point);
 * what names the step in the error. */
static int step_bound(lg_store *s, enum stmt_id id, const col *cols, size_t ncols, const char *what)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = ls_fault_point(s)) != CM_OK)
		return rc;
	if (!(st = ls_stmt(s, id)))
		return CM_ERR_IO;
	if (bind_cols(st, cols, ncols) != SQLITE_OK) {
		ls_done(st);
		return ls_db_err(s, "bind");
	}
	rc = sqlite3_step(st);
	ls_done(st);
	return rc == SQLITE_DONE ? CM_OK : ls_db_err(s, what);
}

/* Inserts or replaces a row: cols[0..nkeys) are the key, bound as ?1.. in
 * column order with the rest. */
int ls_write_row(lg_store *s, enum table t, enum stmt_id id, const col *cols, size_t nkeys,
		     size_t ncols)
{
	int rc = step_bound(s, id, cols, ncols, "write");
	return rc != CM_OK ? rc : ws_record(s, t, cols, nkeys, cols + nkeys, ncols - nkeys);
}

int ls_delete_row(lg_store *s, enum table t, enum stmt_id id, const col *keys, size_t nkeys)
{
	int rc = step_bound(s, id, keys, nkeys, "delete");
	return rc != CM_OK ? rc : ws_record(s, t, keys, nkeys, NULL, 0);
}

/* ---- reading columns ---- */

uint64_t ls_col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t)sqlite3_column_int64(st, i);
}

/* Copies a blob column of exactly n bytes; 0 if its size differs. */
int ls_col_fixed(sqlite3_stmt *st, int i, void *dst, size_t n)
{
	const void *p = sqlite3_column_blob(st, i);
	if ((size_t)sqlite3_column_bytes(st, i) != n || (n && !p))
		return 0;
	if (n)
		memcpy(dst, p, n);
	return 1;
}

/* Copies a text column into a buffer of cap bytes (with NUL); 0 if too long. */
int ls_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
	const unsigned char *p = sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (n >= cap)
		return 0;
	if (n)
		memcpy(dst, p, n);
	dst[n] = '\0';
	return 1;
}

/* Copies a blob column into a malloc'd buffer; 0 on allocation failure. */
int ls_col_dup(sqlite3_stmt *st, int i, uint8_t **dst, size_t *n)
{
	const void *p = sqlite3_column_blob(st, i);
	size_t len = (size_t)sqlite3_column_bytes(st, i);
	*dst = malloc(len ? len : 1);
	if (!*dst)
		return 0;
	if (len)
		memcpy(*dst, p, len);
	*n = len;
	return 1;
}


/* Runs a bound statement expected to give at most one row and decodes it
 * with fn. CM_ERR_NOTFOUND if none. */
int ls_get_row(lg_store *s, sqlite3_stmt *st, row_fn fn, void *dst)
{
	int rc = sqlite3_step(st), out;
	if (rc == SQLITE_ROW)
		out = fn(st, dst) ? CM_OK : ls_err(s, CM_ERR_INTERNAL, "corrupt row in the store");
	else if (rc == SQLITE_DONE)
		out = CM_ERR_NOTFOUND;
	else
		out = ls_db_err(s, "read");
	ls_done(st);
	return out;
}

/* Runs a bound statement and decodes every row with fn into a malloc'd array
 * of elem-sized entries, owned by the caller. */
int ls_list_rows(lg_store *s, sqlite3_stmt *st, size_t elem, row_fn fn, void **out, size_t *n)
{
	uint8_t *arr = NULL;
	size_t len = 0, cap = 0;
	int rc, res = CM_OK;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			uint8_t *na = realloc(arr, ncap * elem);
			if (!na) {
				res = ls_err(s, CM_ERR_NOMEM, "out of memory");
				break;
			}
			arr = na;
			cap = ncap;
		}
		memset(arr + len * elem, 0, elem);
		if (!fn(st, arr + len * elem)) {
			res = ls_err(s, CM_ERR_INTERNAL, "corrupt row in the store");
			break;
		}
		len++;
	}
	if (res == CM_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		res = ls_db_err(s, "read");
	ls_done(st);
	if (res != CM_OK) {
		free(arr);
		return res;
	}
	*out = arr;
	*n = len;
	return CM_OK;
}

/* Binds columns to a cached statement for a read; NULL on failure. */
sqlite3_stmt *ls_prep(lg_store *s, enum stmt_id id, const col *c, size_t n)
{
	sqlite3_stmt *st = ls_stmt(s, id);
	if (st && bind_cols(st, c, n) != SQLITE_OK) {
		ls_done(st);
		ls_db_err(s, "bind");
		return NULL;
	}
	return st;
}

/* ---- open and close ---- */

int lg_store_open(lg_store **out, const char *path, unsigned flags, char *err, size_t errlen)
{
	lg_store *s = calloc(1, sizeof(*s));
	int oflags, version = 0;
	sqlite3_stmt *st;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return CM_ERR_NOMEM;
	}
	s->readonly = (flags & LG_STORE_READONLY) != 0;
	oflags = s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
		lg_store_close(s);
		return CM_ERR_IO;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (!s->readonly) {
		char *msg = NULL;
		if (sqlite3_exec(s->db,
				 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
				 " PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;",
				 NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(s->db, lg_store_schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "prepare %s: %s", path, msg ? msg : sqlite3_errmsg(s->db));
			sqlite3_free(msg);
			lg_store_close(s);
			return CM_ERR_IO;
		}
	}
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	if (version == 0 && !s->readonly) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", SCHEMA_VERSION);
		if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK)
			version = SCHEMA_VERSION;
	}
	if (version != SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d, this build reads %d", path, version,
			 SCHEMA_VERSION);
		lg_store_close(s);
		return CM_ERR_INVALID;
	}
	*out = s;
	return CM_OK;
}

void lg_store_close(lg_store *s)
{
	if (!s)
		return;
	if (s->in_block)
		lg_store_rollback(s);
	for (int i = 0; i < S_HEAD_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s->wbuf);
	free(s->ents);
	free(s);
}

const char *lg_store_errmsg(const lg_store *s)
{
	return s->err;
}

void lg_store_set_fault(lg_store *s, lg_store_fault_fn fn, void *arg)
{
	s->fault = fn;
	s->fault_arg = arg;
	s->step = 0;
}

/* ---- meta and head ---- */

int lg_store_meta_get(lg_store *s, const char *key, void *buf, size_t cap, size_t *len)
{
	col k[] = {ct(key)};
	sqlite3_stmt *st = ls_prep(s, S_META_GET, k, 1);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		const void *p = sqlite3_column_blob(st, 0);
		if (n)
			memcpy(buf, p, n < cap ? n : cap);
		*len = n;
		rc = CM_OK;
	} else {
		rc = rc == SQLITE_DONE ? CM_ERR_NOTFOUND : ls_db_err(s, "meta");
	}
	ls_done(st);
	return rc;
}

int lg_store_meta_put(lg_store *s, const char *key, const void *val, size_t len)
{
	col c[] = {ct(key), cb(val, len)};
	sqlite3_stmt *st;
	int rc;
	if ((rc = ls_fault_point(s)) != CM_OK)
		return rc;
	if (!(st = ls_prep(s, S_META_PUT, c, 2)))
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	ls_done(st);
	return rc == SQLITE_DONE ? CM_OK : ls_db_err(s, "meta");
}

int lg_store_head(lg_store *s, uint64_t *height, uint8_t root[LG_ROOT_BYTES])
{
	uint8_t h[8], r[LG_ROOT_BYTES];
	size_t n;
	int rc;
	if ((rc = lg_store_meta_get(s, "height", h, sizeof(h), &n)) != CM_OK)
		return rc;
	if (n != 8)
		return ls_err(s, CM_ERR_INTERNAL, "corrupt head height");
	if ((rc = lg_store_meta_get(s, "state_root", r, sizeof(r), &n)) != CM_OK)
		return rc;
	if (n != LG_ROOT_BYTES)
		return ls_err(s, CM_ERR_INTERNAL, "corrupt head root");
	*height = cm_get_be64(h);
	memcpy(root, r, LG_ROOT_BYTES);
	return CM_OK;
}

/* ---- the block transaction ---- */

int lg_store_begin(lg_store *s)
{
	int rc;
	if (s->in_block)
		return ls_err(s, CM_ERR_STATE, "a block transaction is open already");
	if (s->readonly)
		return ls_err(s, CM_ERR_PERM, "the store is read-only");
	if ((rc = ls_exec(s, S_BEGIN, "begin")) != CM_OK)
		return rc;
	s->in_block = 1;
	s->sp_depth = 0;
	s->nents = 0;
	s->wlen = 0;
	return CM_OK;
}

int lg_store_in_block(const lg_store *s)
{
	return s->in_block;
}

int lg_store_savepoint(lg_store *s)
{
	int rc;
	if (!s->in_block || s->sp_depth == SP_MAX)
		return ls_err(s, CM_ERR_STATE, "savepoint outside a block or nested too deep");
	if ((rc = ls_exec(s, S_SAVEPOINT, "savepoint")) != CM_OK)
		return rc;
	s->marks[s->sp_depth].nents = s->nents;
	s->marks[s->sp_depth].wlen = s->wlen;
	s->sp_depth++;
	return CM_OK;
}

int lg_store_release(lg_store *s)
{
	int rc;
	if (!s->in_block || s->sp_depth == 0)
		return ls_err(s, CM_ERR_STATE, "no savepoint to release");
	if ((rc = ls_exec(s, S_RELEASE, "release")) != CM_OK)
		return rc;
	s->sp_depth--;
	return CM_OK;
}

int lg_store_rollback_to(lg_store *s)
{
	int rc;
	if (!s->in_block || s->sp_depth == 0)
		return ls_err(s, CM_ERR_STATE, "no savepoint to roll back to");
	if ((rc = ls_exec(s, S_ROLLBACK_TO, "rollback to")) != CM_OK ||
	    (rc = ls_exec(s, S_RELEASE, "release")) != CM_OK)
		return rc;
	s->sp_depth--;
	s->nents = s->marks[s->sp_depth].nents;
	s->wlen = s->marks[s->sp_depth].wlen;
	return CM_OK;
}

size_t lg_store_writeset_len(const lg_store *s)
{
	return s->nents;
}

static int ws_cmp(const void *a, const void *b)
{
	const ws_entry *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->p, y->p, n);
	if (c)
		return c;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void lg_store_writeset_hash(lg_store *s, uint8_t out[CM_HASH_BYTES])
{
	cm_hasher h;
	uint8_t len[8];

	/* sort by (table, key), then write order; keep each key's last entry */
	for (size_t i = 0; i < s->nents; i++)
		s->ents[i].p = s->wbuf + s->ents[i].off;
	if (s->nents) /* qsort's array may not be NULL, even empty (an empty block) */
		qsort(s->ents, s->nents, sizeof(*s->ents), ws_cmp);
	cm_hasher_init(&h, CM_DOM_STATE);
	for (size_t i = 0; i < s->nents; i++) {
		const ws_entry *e = &s->ents[i];
		if (i + 1 < s->nents && e->klen == s->ents[i + 1].klen &&
		    memcmp(e->p, s->ents[i + 1].p, e->klen) == 0)
			continue;
		cm_put_be64(len, (uint64_t)e->klen << 32 | e->vlen);
		cm_hasher_update(&h, len, sizeof(len));
		cm_hasher_update(&h, e->p, (size_t)e->klen + e->vlen);
	}
	cm_hasher_final(&h, out);
	/* restore write order so that later entries still win after more writes */
	for (size_t i = 0; i < s->nents; i++)
		while (s->ents[i].seq != i) {
			ws_entry t = s->ents[s->ents[i].seq];
			s->ents[s->ents[i].seq] = s->ents[i];
			s->ents[i] = t;
		}
}

/* Keeps the state root of every height (outside the write set). */
static int root_put(lg_store *s, uint64_t height, const uint8_t root[LG_ROOT_BYTES])
{
	col c[] = {cu(height), cb(root, LG_ROOT_BYTES)};
	sqlite3_stmt *st;
	int rc;
	if ((rc = ls_fault_point(s)) != CM_OK)
		return rc;
	if (!(st = ls_prep(s, S_ROOT_PUT, c, 2)))
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	ls_done(st);
	return rc == SQLITE_DONE ? CM_OK : ls_db_err(s, "store root");
}

int lg_store_commit(lg_store *s, uint64_t height, const uint8_t root[LG_ROOT_BYTES])
{
	uint8_t h[8];
	int rc;

	if (!s->in_block)
		return ls_err(s, CM_ERR_STATE, "no block transaction to commit");
	cm_put_be64(h, height);
	if ((rc = lg_store_meta_put(s, "height", h, sizeof(h))) != CM_OK ||
	    (rc = lg_store_meta_put(s, "state_root", root, LG_ROOT_BYTES)) != CM_OK ||
	    (rc = root_put(s, height, root)) != CM_OK ||
	    (rc = ls_fault_point(s)) != CM_OK || (rc = ls_exec(s, S_COMMIT, "commit")) != CM_OK) {
		lg_store_rollback(s);
		return rc;
	}
	s->in_block = 0;
	s->sp_depth = 0;
	return CM_OK;
}

void lg_store_rollback(lg_store *s)
{
	if (!s->in_block)
		return;
	if (sqlite3_get_autocommit(s->db) == 0)
		ls_exec(s, S_ROLLBACK, "rollback");
	s->in_block = 0;
	s->sp_depth = 0;
	s->nents = 0;
	s->wlen = 0;
}

/* ---- blocks ---- */

int lg_store_put_block(lg_store *s, const lg_block_rec *b)
{
	col c[] = {cu(b->height), cb(b->hash, CM_HASH_BYTES), cb(b->state_root, LG_ROOT_BYTES),
		   cu(b->ntxs), cb(b->header, b->header_len), cb(b->payload, b->payload_len),
		   cb(b->qc, b->qc_len)};
	sqlite3_stmt *st;
	int rc;
	if ((rc = ls_fault_point(s)) != CM_OK)
		return rc;
	if (!(st = ls_prep(s, S_BLOCK_PUT, c, 7)))
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	ls_done(st);
	return rc == SQLITE_DONE ? CM_OK : ls_db_err(s, "store block");
}

static int block_row(sqlite3_stmt *st, void *dst)
{
	lg_block_rec *b = dst;
	memset(b, 0, sizeof(*b));
	b->height = ls_col_u64(st, 0);
	b->ntxs = (uint32_t)ls_col_u64(st, 3);
	if (!ls_col_fixed(st, 1, b->hash, CM_HASH_BYTES) || !ls_col_fixed(st, 2, b->state_root, LG_ROOT_BYTES))
		return 0;
	uint8_t *h = NULL, *p = NULL, *q = NULL;
	if (!ls_col_dup(st, 4, &h, &b->header_len) || !ls_col_dup(st, 5, &p, &b->payload_len) ||
	    !ls_col_dup(st, 6, &q, &b->qc_len)) {
		free(h);
		free(p);
		free(q);
		return 0;
	}
	b->header = h;
	b->payload = p;
	b->qc = q;
	return 1;
}

int lg_store_get_block(lg_store *s, uint64_t height, lg_block_rec *out)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = ls_prep(s, S_BLOCK_GET, k, 1);
	return st ? ls_get_row(s, st, block_row, out) : CM_ERR_IO;
}

int lg_store_get_block_by_hash(lg_store *s, const uint8_t hash[CM_HASH_BYTES], lg_block_rec *out)
{
	col k[] = {cb(hash, CM_HASH_BYTES)};
	sqlite3_stmt *st = ls_prep(s, S_BLOCK_GET_HASH, k, 1);
	return st ? ls_get_row(s, st, block_row, out) : CM_ERR_IO;
}

void lg_block_rec_clear(lg_block_rec *b)
{
	if (!b)
		return;
	free((void *)b->header); /* malloc'd by lg_store_get_block */
	free((void *)b->payload);
	free((void *)b->qc);
	b->header = b->payload = b->qc = NULL;
	b->header_len = b->payload_len = b->qc_len = 0;
}

/* ---- safety state ---- */

int lg_store_put_safety(lg_store *s, const void *data, size_t len)
{
	col c[] = {cb(data, len)};
	sqlite3_stmt *st;
	int rc;
	if (s->in_block)
		return ls_err(s, CM_ERR_STATE, "safety state written inside a block transaction");
	if ((rc = ls_fault_point(s)) != CM_OK)
		return rc;
	if (!(st = ls_prep(s, S_SAFETY_PUT, c, 1)))
		return CM_ERR_IO;
	rc = sqlite3_step(st); /* autocommit: one fsync'd WAL commit */
	ls_done(st);
	return rc == SQLITE_DONE ? CM_OK : ls_db_err(s, "store safety state");
}


int ls_bytes_row(sqlite3_stmt *st, void *dst)
{
	bytes_out *o = dst;
	return ls_col_dup(st, 0, &o->p, &o->n);
}

int lg_store_get_safety(lg_store *s, uint8_t **data, size_t *len)
{
	bytes_out o;
	sqlite3_stmt *st = ls_stmt(s, S_SAFETY_GET);
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_get_row(s, st, ls_bytes_row, &o)) != CM_OK)
		return rc;
	*data = o.p;
	*len = o.n;
	return CM_OK;
}

/* ---- whole-state digest ---- */

int lg_store_state_digest(lg_store *s, uint8_t out[CM_HASH_BYTES])
{
	cm_hasher h;
	char sql[160];
	uint8_t be[8];

	cm_hasher_init(&h, CM_DOM_STATE);
	for (size_t t = 0; t < lg_store_state_table_count; t++) {
		sqlite3_stmt *st;
		int rc;
		snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY %s", lg_store_state_tables[t].name,
			 lg_store_state_tables[t].order);
		if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
			return ls_db_err(s, "digest");
		cm_hasher_update(&h, lg_store_state_tables[t].name, strlen(lg_store_state_tables[t].name) + 1);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int n = sqlite3_column_count(st);
			for (int i = 0; i < n; i++) {
				uint8_t type = (uint8_t)sqlite3_column_type(st, i);
				cm_hasher_update(&h, &type, 1);
				if (type == SQLITE_INTEGER) {
					cm_put_be64(be, (uint64_t)sqlite3_column_int64(st, i));
					cm_hasher_update(&h, be, 8);
				} else if (type == SQLITE_BLOB || type == SQLITE_TEXT) {
					const void *p = type == SQLITE_BLOB ? sqlite3_column_blob(st, i)
									     : (const void *)sqlite3_column_text(st, i);
					size_t len = (size_t)sqlite3_column_bytes(st, i);
					cm_put_be64(be, len);
					cm_hasher_update(&h, be, 8);
					if (len)
						cm_hasher_update(&h, p, len);
				}
			}
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return ls_db_err(s, "digest");
	}
	cm_hasher_final(&h, out);
	return CM_OK;
}

/* ---- read snapshots ---- */

int lg_store_read_begin(lg_store *s)
{
	int rc;
	if (s->read_depth++ > 0)
		return CM_OK;
	s->read_open = 0;
	if (s->in_block || sqlite3_get_autocommit(s->db) == 0)
		return CM_OK; /* inside a transaction already: its view is the snapshot */
	if ((rc = ls_exec(s, S_READ_BEGIN, "begin read")) != CM_OK) {
		s->read_depth--;
		return rc;
	}
	s->read_open = 1;
	return CM_OK;
}

void lg_store_read_end(lg_store *s)
{
	if (s->read_depth == 0 || --s->read_depth > 0)
		return;
	if (s->read_open && sqlite3_get_autocommit(s->db) == 0)
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL); /* a read: nothing to lose */
	s->read_open = 0;
}

/* ---- roots and effects by height ---- */

static int root_row(sqlite3_stmt *st, void *dst)
{
	return ls_col_fixed(st, 0, dst, LG_ROOT_BYTES);
}

int lg_store_root_at(lg_store *s, uint64_t height, uint8_t root[LG_ROOT_BYTES])
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = ls_prep(s, S_ROOT_GET, k, 1);
	uint8_t r[LG_ROOT_BYTES];
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = ls_get_row(s, st, root_row, r);
	if (rc == CM_ERR_NOTFOUND) { /* a store written before the roots table */
		if (!(st = ls_prep(s, S_ROOT_GET_BLOCK, k, 1)))
			return CM_ERR_IO;
		rc = ls_get_row(s, st, root_row, r);
	}
	if (rc == CM_OK)
		memcpy(root, r, LG_ROOT_BYTES);
	return rc;
}

int lg_store_effects_put(lg_store *s, uint64_t height, const uint8_t *data, size_t len)
{
	col c[] = {cu(height), cb(data, len)};
	sqlite3_stmt *st;
	int rc;
	if ((rc = ls_fault_point(s)) != CM_OK)
		return rc;
	if (!(st = ls_prep(s, S_EFFECTS_PUT, c, 2)))
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	ls_done(st);
	return rc == SQLITE_DONE ? CM_OK : ls_db_err(s, "store effects");
}

int lg_store_effects_get(lg_store *s, uint64_t height, uint8_t **data, size_t *len)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = ls_prep(s, S_EFFECTS_GET, k, 1);
	bytes_out o;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = ls_get_row(s, st, ls_bytes_row, &o)) != CM_OK)
		return rc;
	*data = o.p;
	*len = o.n;
	return CM_OK;
}

