/* Pending consensus blocks in SQLite; see lg_blocks.h. synchronous=NORMAL:
 * in WAL mode a write is atomic but reaches the disk at the next checkpoint,
 * not at every block. Safety does not rest on these blocks: it rests on the
 * safety state (last voted view, locked QC), which lg_store fsyncs before a
 * vote leaves. A block lost in a crash is fetched again from the replicas
 * that formed its QC (at least f+1 of them are honest). */
#include "lg_blocks.h"
#include "cm_err.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lg_blocks {
	sqlite3 *db;
	pthread_mutex_t mu;
	sqlite3_stmt *put, *get, *above, *prune;
};

int lg_blocks_open(const char *path, lg_blocks **out, char *err, size_t errlen)
{
	lg_blocks *b = calloc(1, sizeof(*b));
	if (!b)
		return CM_ERR_NOMEM;
	pthread_mutex_init(&b->mu, NULL);
	if (sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK ||
	    sqlite3_exec(b->db,
			 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			 "CREATE TABLE IF NOT EXISTS blocks(hash BLOB PRIMARY KEY, height INTEGER NOT NULL,"
			 " bytes BLOB NOT NULL) WITHOUT ROWID;"
			 "CREATE INDEX IF NOT EXISTS blocks_height ON blocks(height);",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(b->db, "INSERT OR IGNORE INTO blocks(hash, height, bytes) VALUES(?,?,?)", -1,
			       &b->put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(b->db, "SELECT bytes FROM blocks WHERE hash = ?", -1, &b->get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(b->db, "SELECT bytes FROM blocks WHERE height > ? ORDER BY height, hash", -1,
			       &b->above, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(b->db, "DELETE FROM blocks WHERE height <= ?", -1, &b->prune, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, b->db ? sqlite3_errmsg(b->db) : "cannot open");
		lg_blocks_close(b);
		return CM_ERR_IO;
	}
	*out = b;
	return CM_OK;
}

void lg_blocks_close(lg_blocks *b)
{
	if (!b)
		return;
	sqlite3_finalize(b->put);
	sqlite3_finalize(b->get);
	sqlite3_finalize(b->above);
	sqlite3_finalize(b->prune);
	sqlite3_close(b->db);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

int lg_blocks_put(lg_blocks *b, const uint8_t hash[CM_HASH_BYTES], uint64_t height, const uint8_t *bytes,
		  size_t len)
{
	pthread_mutex_lock(&b->mu);
	sqlite3_bind_blob(b->put, 1, hash, CM_HASH_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(b->put, 2, (sqlite3_int64)height);
	sqlite3_bind_blob(b->put, 3, bytes, (int)len, SQLITE_STATIC);
	int rc = sqlite3_step(b->put) == SQLITE_DONE ? CM_OK : CM_ERR_IO;
	sqlite3_reset(b->put);
	sqlite3_clear_bindings(b->put);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

int lg_blocks_get(lg_blocks *b, const uint8_t hash[CM_HASH_BYTES], uint8_t **bytes, size_t *len)
{
	int rc = CM_ERR_NOTFOUND;
	pthread_mutex_lock(&b->mu);
	sqlite3_bind_blob(b->get, 1, hash, CM_HASH_BYTES, SQLITE_STATIC);
	int step = sqlite3_step(b->get);
	if (step == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(b->get, 0);
		uint8_t *p = malloc(n ? n : 1);
		if (!p) {
			rc = CM_ERR_NOMEM;
		} else {
			memcpy(p, sqlite3_column_blob(b->get, 0), n);
			*bytes = p;
			*len = n;
			rc = CM_OK;
		}
	} else if (step != SQLITE_DONE) {
		rc = CM_ERR_IO;
	}
	sqlite3_reset(b->get);
	sqlite3_clear_bindings(b->get);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

int lg_blocks_each_above(lg_blocks *b, uint64_t height,
			 void (*fn)(void *arg, const uint8_t *bytes, size_t len), void *arg)
{
	int rc = CM_OK, step;
	pthread_mutex_lock(&b->mu);
	sqlite3_bind_int64(b->above, 1, (sqlite3_int64)height);
	while ((step = sqlite3_step(b->above)) == SQLITE_ROW)
		fn(arg, sqlite3_column_blob(b->above, 0), (size_t)sqlite3_column_bytes(b->above, 0));
	if (step != SQLITE_DONE)
		rc = CM_ERR_IO;
	sqlite3_reset(b->above);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

int lg_blocks_prune(lg_blocks *b, uint64_t height)
{
	pthread_mutex_lock(&b->mu);
	sqlite3_bind_int64(b->prune, 1, (sqlite3_int64)height);
	int rc = sqlite3_step(b->prune) == SQLITE_DONE ? CM_OK : CM_ERR_IO;
	sqlite3_reset(b->prune);
	pthread_mutex_unlock(&b->mu);
	return rc;
}
