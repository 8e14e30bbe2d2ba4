/* A fragment's SQLite store, shared by ix_fragment.c (writes), ix_view.c
 * (loading the view) and ix_indexer.c (reading leaves): opening a database
 * (WAL, synchronous=FULL; readers query_only), the schema, the writer's
 * prepared statements, the kv table and the pool of read connections. It
 * calls none of them: the dependencies run one way, from the fragment, the
 * view and the indexer down to the store. */
#include "ix_fragment_int.h"
#include "cm_err.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQLite helpers ---- */

int ix_sql_fail(sqlite3 *db, char *err, size_t errlen, const char *what)
{
	return ix_errf(CM_ERR_IO, err, errlen, "sqlite: %s: %s", what, db ? sqlite3_errmsg(db) : "?");
}

int ix_sql_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = ix_errf(CM_ERR_IO, err, errlen, "sqlite: %.60s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return rc;
	}
	return CM_OK;
}

int ix_sql_step(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? CM_OK : CM_ERR_IO;
}

int ix_db_open(const char *path, int readonly, sqlite3 **out, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (readonly ? 0 : SQLITE_OPEN_CREATE);
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		int rc = ix_sql_fail(db, err, errlen, path);
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, 10000);
	/* Readers look leaves and states up by key (filters are in memory):
	 * 1 MiB of page cache each keeps a large log's interior pages, instead
	 * of SQLite's 2 MiB default times opt.readers connections. */
	if (ix_sql_exec(db, readonly ? "PRAGMA query_only=1; PRAGMA cache_size=-1024"
				     : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
		 err, errlen) != CM_OK) {
		sqlite3_close(db);
		return CM_ERR_IO;
	}
	*out = db;
	return CM_OK;
}

/* kv holds the schema, the floor and the saved index's description. */
int ix_kv_get_int(sqlite3 *db, const char *k, int64_t *v)
{
	sqlite3_stmt *s = NULL;
	int rc = CM_ERR_NOTFOUND;
	if (sqlite3_prepare_v2(db, "SELECT v FROM kv WHERE k = ?1", -1, &s, NULL) != SQLITE_OK)
		return CM_ERR_IO;
	sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		*v = sqlite3_column_int64(s, 0);
		rc = CM_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

int ix_kv_get_text(sqlite3 *db, const char *k, char *out, size_t n)
{
	sqlite3_stmt *s = NULL;
	int rc = CM_ERR_NOTFOUND;
	if (sqlite3_prepare_v2(db, "SELECT v FROM kv WHERE k = ?1", -1, &s, NULL) != SQLITE_OK)
		return CM_ERR_IO;
	sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT) {
		snprintf(out, n, "%s", (const char *)sqlite3_column_text(s, 0));
		rc = CM_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

int ix_kv_put_int(ix_wstmts *ws, const char *k, int64_t v)
{
	sqlite3_bind_text(ws->kv_put, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ws->kv_put, 2, v);
	return ix_sql_step(ws->kv_put);
}

int ix_kv_put_text(ix_wstmts *ws, const char *k, const char *v)
{
	sqlite3_bind_text(ws->kv_put, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_text(ws->kv_put, 2, v, -1, SQLITE_STATIC);
	return ix_sql_step(ws->kv_put);
}

int ix_kv_del(ix_wstmts *ws, const char *k)
{
	sqlite3_bind_text(ws->kv_del, 1, k, -1, SQLITE_STATIC);
	return ix_sql_step(ws->kv_del);
}

const char *const IX_SCHEMA_SQL =
	"CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS log(seq INTEGER PRIMARY KEY, epoch INTEGER NOT NULL,"
	" applied INTEGER NOT NULL, prev INTEGER, delta INTEGER NOT NULL, leaf BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS hashes(seq INTEGER PRIMARY KEY, hash BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS state(id BLOB PRIMARY KEY, version INTEGER NOT NULL,"
	" seq INTEGER NOT NULL, deleted INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS gc(seq INTEGER PRIMARY KEY);";

void ix_wstmts_finalize(ix_wstmts *ws)
{
	sqlite3_stmt **all[] = {&ws->state_get, &ws->state_put, &ws->state_del, &ws->log_put, &ws->log_get,
				&ws->hash_put, &ws->gc_put, &ws->gc_list, &ws->gc_clear, &ws->kv_put, &ws->kv_del};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		sqlite3_finalize(*all[i]);
		*all[i] = NULL;
	}
	ix_meta_finalize(&ws->meta);
}

int ix_wstmts_prepare(sqlite3 *db, ix_wstmts *ws, char *err, size_t errlen)
{
	struct {
		sqlite3_stmt **st;
		const char *sql;
	} t[] = {
		{&ws->state_get, "SELECT version, seq, deleted FROM state WHERE id = ?1"},
		{&ws->state_put, "INSERT OR REPLACE INTO state(id, version, seq, deleted) VALUES(?1, ?2, ?3, ?4)"},
		{&ws->state_del, "DELETE FROM state WHERE id = ?1"},
		{&ws->log_put, "INSERT INTO log(seq, epoch, applied, prev, delta, leaf) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
		{&ws->log_get, "SELECT epoch, applied, prev, delta, leaf FROM log WHERE seq = ?1"},
		{&ws->hash_put, "INSERT INTO hashes(seq, hash) VALUES(?1, ?2)"},
		{&ws->gc_put, "INSERT OR IGNORE INTO gc(seq) VALUES(?1)"},
		{&ws->gc_list, "SELECT seq FROM gc"},
		{&ws->gc_clear, "DELETE FROM gc"},
		{&ws->kv_put, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)"},
		{&ws->kv_del, "DELETE FROM kv WHERE k = ?1"},
	};
	memset(ws, 0, sizeof(*ws));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (sqlite3_prepare_v2(db, t[i].sql, -1, t[i].st, NULL) != SQLITE_OK) {
			int rc = ix_sql_fail(db, err, errlen, t[i].sql);
			ix_wstmts_finalize(ws);
			return rc;
		}
	if (ix_meta_prepare(db, &ws->meta) != CM_OK) {
		int rc = ix_sql_fail(db, err, errlen, "metadata statements");
		ix_wstmts_finalize(ws);
		return rc;
	}
	return CM_OK;
}

/* ---- reader connections ---- */

void ix_reader_close(ix_reader *r)
{
	if (!r)
		return;
	sqlite3_finalize(r->leaf);
	sqlite3_finalize(r->begin);
	sqlite3_finalize(r->commit);
	sqlite3_finalize(r->state);
	sqlite3_close(r->db);
	free(r);
}

ix_reader *ix_reader_open(const ix_fragment *f, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	ix_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", f->dir, IX_DB_FILE);
	if (ix_db_open(path, 1, &r->db, err, errlen) != CM_OK) {
		free(r);
		return NULL;
	}
	if (sqlite3_prepare_v2(r->db, "SELECT leaf FROM log WHERE seq = ?1", -1, &r->leaf, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "BEGIN", -1, &r->begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "COMMIT", -1, &r->commit, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "SELECT seq FROM state WHERE id = ?1 AND deleted = 0", -1, &r->state,
			       NULL) != SQLITE_OK) {
		ix_sql_fail(r->db, err, errlen, "preparing reads");
		ix_reader_close(r);
		return NULL;
	}
	return r;
}

/* A free read connection, opened on demand up to opt.readers; waits for
 * one beyond that. */
ix_reader *ix_reader_get(ix_fragment *f, char *err, size_t errlen)
{
	ix_reader *r;
	pthread_mutex_lock(&f->rmu);
	while (f->nfree == 0 && f->nrdb >= f->opt.readers)
		pthread_cond_wait(&f->rcv, &f->rmu);
	if (f->nfree) {
		r = f->rdb[--f->nfree];
		pthread_mutex_unlock(&f->rmu);
		return r;
	}
	f->nrdb++;
	pthread_mutex_unlock(&f->rmu);
	r = ix_reader_open(f, err, errlen);
	if (!r) {
		pthread_mutex_lock(&f->rmu);
		f->nrdb--;
		pthread_cond_signal(&f->rcv);
		pthread_mutex_unlock(&f->rmu);
	}
	return r;
}

void ix_reader_put(ix_fragment *f, ix_reader *r)
{
	pthread_mutex_lock(&f->rmu);
	f->rdb[f->nfree++] = r;
	pthread_cond_signal(&f->rcv);
	pthread_mutex_unlock(&f->rmu);
}

/* One snapshot for several reads. */
int ix_reader_begin(ix_reader *r)
{
	return ix_sql_step(r->begin);
}

void ix_reader_end(ix_reader *r)
{
	ix_sql_step(r->commit);
}

/* Reads and decodes the leaf of seq into a. */
int ix_read_leaf(ix_reader *r, uint64_t seq, cm_arena *a, ix_record *out)
{
	int rc = CM_ERR_NOTFOUND;
	sqlite3_bind_int64(r->leaf, 1, (sqlite3_int64)seq);
	if (sqlite3_step(r->leaf) == SQLITE_ROW)
		rc = ix_record_decode(sqlite3_column_blob(r->leaf, 0), (size_t)sqlite3_column_bytes(r->leaf, 0), a,
				      out, NULL, 0);
	sqlite3_reset(r->leaf);
	return rc;
}

int ix_fragment_broken(ix_fragment *f, char *err, size_t errlen)
{
	return ix_errf(CM_ERR_STATE, err, errlen, "fragment %s must be reopened: %s", f->dir, f->broken_msg);
}

/* The leaf hash of record seq, from the Merkle log in memory. */
int ix_fragment_leaf_hash(ix_fragment *f, uint64_t seq, uint8_t out[CM_MERKLE_HASH_BYTES])
{
	pthread_rwlock_rdlock(&f->lk);
	int rc = seq < f->size ? cm_merkle_leaf_hash(f->merkle, seq, out) : CM_ERR_RANGE;
	pthread_rwlock_unlock(&f->lk);
	return rc;
}
