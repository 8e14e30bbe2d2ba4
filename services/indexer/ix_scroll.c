/* A fragment's live records in id order, a page at a time (the Indexer's
 * Scroll, for the gateway's Scroll and the console's data browser). The
 * page is read from one SQLite snapshot whose log size equals the in-memory
 * view's, taken under the view lock, so the log size and Merkle root the
 * answer carries are exactly those of the state it lists. The state table
 * is keyed by id, so a page is a range read from the id it starts after;
 * each live id's current record is decoded from the log and checked
 * against the filter by the record-by-record rule (ix_filter_match). */
#include "ix_fragment_int.h"
#include "cm_err.h"

#include <string.h>
#include <time.h>

/* An append or truncation makes its SQLite commit durable before it takes
 * the view lock to publish it: a snapshot begun in between is one step
 * ahead (or behind) of the view. Such a window lasts microseconds; the
 * scan begins again after a pause, this many times at most. */
#define SNAPSHOT_TRIES 200
#define SNAPSHOT_PAUSE_US 500

static const char *const SQL_SIZE = "SELECT COALESCE(MAX(seq) + 1, 0) FROM log";
static const char *const SQL_PAGE = "SELECT id, seq FROM state WHERE deleted = 0 AND id > ?1 ORDER BY id";

/* Begins rd's snapshot at a log size equal to the view's, and reads the
 * root there. CM_ERR_TIMEOUT when writes kept the two apart. */
static int snapshot(ix_fragment *f, ix_reader *rd, sqlite3_stmt *size_st, uint64_t *size,
		    uint8_t root[CM_MERKLE_HASH_BYTES], char *err, size_t errlen)
{
	for (int t = 0; t < SNAPSHOT_TRIES; t++) {
		int rc = CM_OK, same = 0;
		pthread_rwlock_rdlock(&f->lk);
		if (f->broken) {
			rc = ix_fragment_broken(f, err, errlen);
		} else if (ix_reader_begin(rd) != CM_OK) {
			rc = ix_sql_fail(rd->db, err, errlen, "begin");
		} else if (sqlite3_step(size_st) != SQLITE_ROW) {
			rc = ix_sql_fail(rd->db, err, errlen, "log size");
		} else {
			uint64_t n = (uint64_t)sqlite3_column_int64(size_st, 0);
			same = n == f->size;
			if (same) {
				*size = n;
				rc = cm_merkle_root(f->merkle, n, root) == CM_OK
					     ? CM_OK
					     : ix_errf(CM_ERR_STATE, err, errlen, "no Merkle root at %llu", (unsigned long long)n);
			}
		}
		sqlite3_reset(size_st);
		pthread_rwlock_unlock(&f->lk);
		if (rc != CM_OK || same) {
			if (rc != CM_OK)
				ix_reader_end(rd);
			return rc;
		}
		ix_reader_end(rd);
		struct timespec ts = {.tv_sec = 0, .tv_nsec = SNAPSHOT_PAUSE_US * 1000L};
		nanosleep(&ts, NULL);
	}
	return ix_errf(CM_ERR_TIMEOUT, err, errlen, "the log kept changing under the scroll's snapshot; try again");
}

/* Walks the state table from q->after on within rd's snapshot. */
static int walk(ix_fragment *f, ix_reader *rd, sqlite3_stmt *page, const ix_scroll_query *q, cm_arena *a,
		ix_scroll_result *out, char *err, size_t errlen)
{
	static const uint8_t none[1] = {0};
	if (q->after)
		sqlite3_bind_blob(page, 1, q->after, IX_ID_BYTES, SQLITE_STATIC);
	else
		sqlite3_bind_blob(page, 1, none, 0, SQLITE_STATIC); /* every id sorts above the empty blob */
	uint32_t examined = 0;
	int rc = CM_OK, step;
	out->done = 1;
	while ((step = sqlite3_step(page)) == SQLITE_ROW) {
		if (out->n == q->limit || examined == q->scan_max) {
			out->done = 0; /* a live record remains after out->last */
			break;
		}
		const void *id = sqlite3_column_blob(page, 0);
		if (sqlite3_column_bytes(page, 0) != IX_ID_BYTES || !id) {
			rc = ix_errf(CM_ERR_STATE, err, errlen, "state row with an id of %d bytes",
				     sqlite3_column_bytes(page, 0));
			break;
		}
		uint64_t seq = (uint64_t)sqlite3_column_int64(page, 1);
		examined++;
		memcpy(out->last, id, IX_ID_BYTES);
		out->has_last = 1;
		ix_record r;
		if ((rc = ix_read_leaf(rd, seq, a, &r)) != CM_OK) {
			ix_errf(rc, err, errlen, "reading record %llu of %s", (unsigned long long)seq, f->dir);
			break;
		}
		if (q->filter && q->filter->n && !ix_filter_match(q->filter, r.fields, r.nfields))
			continue;
		ix_hit *h = &out->hits[out->n++];
		memcpy(h->id, r.id, IX_ID_BYTES);
		h->distance = 0;
		h->version = r.version;
		h->seq = seq;
		h->dim = q->include_vectors ? r.dim : 0;
		h->vec = q->include_vectors ? r.vec : NULL;
		h->bin = q->include_vectors ? r.bin : NULL;
		h->nfields = r.nfields;
		h->fields = r.fields;
	}
	if (rc == CM_OK && step != SQLITE_ROW && step != SQLITE_DONE)
		rc = ix_sql_fail(rd->db, err, errlen, "state scan");
	sqlite3_reset(page);
	return rc;
}

int ix_fragment_scroll(ix_fragment *f, const ix_scroll_query *q, cm_arena *a, ix_scroll_result *out, char *err,
		       size_t errlen)
{
	if (q->limit < 1 || q->limit > f->opt.max_get)
		return ix_errf(CM_ERR_INVALID, err, errlen, "limit: %u, expected 1..%u", q->limit, f->opt.max_get);
	if (q->scan_max < 1)
		return ix_errf(CM_ERR_INVALID, err, errlen, "scan_max: 0, expected at least 1");
	memset(out, 0, sizeof(*out));
	out->hits = cm_arena_alloc(a, q->limit * sizeof(*out->hits));
	if (!out->hits)
		return CM_ERR_NOMEM;
	ix_reader *rd = ix_reader_get(f, err, errlen);
	if (!rd)
		return CM_ERR_IO;
	sqlite3_stmt *size_st = NULL, *page = NULL;
	int rc = CM_OK;
	if (sqlite3_prepare_v2(rd->db, SQL_SIZE, -1, &size_st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(rd->db, SQL_PAGE, -1, &page, NULL) != SQLITE_OK)
		rc = ix_sql_fail(rd->db, err, errlen, "preparing the scroll");
	if (rc == CM_OK && (rc = snapshot(f, rd, size_st, &out->log_size, out->root, err, errlen)) == CM_OK) {
		rc = walk(f, rd, page, q, a, out, err, errlen);
		ix_reader_end(rd);
	}
	sqlite3_finalize(size_st);
	sqlite3_finalize(page);
	ix_reader_put(f, rd);
	return rc;
}
