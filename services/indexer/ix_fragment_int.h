/* Private to the fragment's own files, as SQLite's btreeInt.h is to its
 * b-tree: the fragment's struct and what ix_fragment.c (storage, log, writes,
 * proofs), ix_store.c (SQLite: schema, statements, kv, read connections),
 * ix_view.c (the in-memory view), ix_search.c and ix_indexer.c (the
 * background indexer) share. Calls run one way: ix_fragment.c calls the
 * indexer, the view and the store; the indexer and search call the view and
 * the store; the view calls the store; the store calls none of them.
 *
 * The index view, as of a batch boundary P (a multiple of the batch size B):
 * every record below P that changed the state and was not superseded inside
 * its own batch has a position in the FAISS index, labelled with its seq;
 * dead_at[pos] is the seq of the record that superseded or deleted it (or
 * IX_NONE). Records from P on are "pending": kept in memory (prepared vectors)
 * and searched exactly. The indexer adds batch [P, P+B) once the log holds
 * it, then checks two triggers that depend only on the log prefix: train a
 * trainable index once enough vectors are live, and rebuild when the dead
 * share passes the limit. HNSW over flat storage adds in blocks of
 * IX_INDEX_BLOCK (ix_hnsw.c): a block is planned against the graph before it
 * on index_threads threads, without the write lock, then committed under
 * it; levels come from (seed, position) and the plan does not depend on the
 * thread count, so equal log prefixes (added in the same aligned batches)
 * give equal indexes. Other HNSW storage adds one vector at a time, other
 * indexes a batch at once.
 *
 * Locks: wmu serializes writers (append, truncate, floor, saved-index
 * bookkeeping); lk (a writer-preferring rwlock) guards the in-memory view:
 * searches hold it shared, appends and the indexer's adds and swaps hold it
 * exclusively for short steps (one block's commit, or at most IX_HOLD_US of
 * one-at-a-time HNSW adds per hold). The FAISS index is changed only by the indexer thread
 * (or by a truncation while the indexer is paused). A search reads SQLite in
 * one transaction begun under lk, so its snapshot holds every record the view
 * knows; metadata rows of superseded versions are removed one append later
 * (table gc), when no view can consider them live. */
#ifndef IX_FRAGMENT_INT_H
#define IX_FRAGMENT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdint.h>

#include "ix_fragment.h"
#include "ix_postings.h"

#define IX_NONE UINT64_MAX
#define IX_DB_FILE "fragment.db"
#define IX_INDEX_PREFIX "index-"
#define IX_INDEX_SUFFIX ".faiss"
#define IX_ERRLEN 256
/* The indexer holds the write lock at most about this long while adding
 * HNSW vectors one at a time (HNSW over storage the block build does not
 * cover, such as SQ8). */
#define IX_HOLD_US 2000

enum ix_pend_kind { IX_P_IGNORED = 0, IX_P_UPSERT = 1, IX_P_DELETE = 2 };

/* A record from P on, not yet covered by the index. */
typedef struct ix_pend {
	uint64_t killed_by; /* seq of the record that superseded it, or IX_NONE */
	uint64_t row;       /* absolute vector row, for upserts */
	int8_t kind;        /* enum ix_pend_kind */
	int8_t delta;       /* change of the live count: -1, 0, +1 */
} ix_pend;

/* A read connection with its prepared statements. */
typedef struct ix_reader {
	sqlite3 *db;
	sqlite3_stmt *leaf, *begin, *commit, *state;
} ix_reader;

/* Prepared statements of the writer connection. */
typedef struct ix_wstmts {
	sqlite3_stmt *state_get, *state_put, *state_del, *log_put, *log_get, *hash_put, *gc_put, *gc_list,
		*gc_clear, *kv_put, *kv_del;
	ix_meta_stmts meta;
} ix_wstmts;

struct ix_fragment {
	char dir[PATH_MAX];
	ix_spec spec;
	ix_options opt;
	uint32_t batch;
	uint64_t seed;
	uint32_t train_min;

	/* writers */
	pthread_mutex_t wmu;
	sqlite3 *wdb;
	ix_wstmts ws;
	char index_file[PATH_MAX]; /* the saved index named in kv, "" if none */

	/* reader connections */
	pthread_mutex_t rmu;
	pthread_cond_t rcv;
	ix_reader **rdb; /* the free ones */
	size_t nrdb, nfree;

	/* the in-memory view, under lk */
	pthread_rwlock_t lk;
	uint64_t size, last_epoch, floor;
	cm_merkle *merkle;
	ix_index *index;
	uint64_t P, live_at_P;
	uint64_t part_last; /* last seq of batch [P, P+B) added so far, or IX_NONE */
	uint64_t *dead_at;
	uint8_t *livebits;
	size_t pos_cap, ndead;
	ix_pend *pend;
	size_t pend_start, pend_cap; /* entry of seq s: pend[pend_start + s - P], s < size */
	float *pvec;
	uint64_t pvec_base, pvec_first, pvec_end; /* rows stored: [pvec_base, pvec_end) */
	size_t pvec_cap;                          /* rows */
	/* Room an append reserved before its durable write and has not filled
	 * yet (pending entries, vector rows): lk is released in between, and
	 * ix_view_trim must not shrink the buffers below it. */
	size_t resv_pend, resv_rows;
	ix_postings *post; /* metadata postings of the first size records (NULL before a load) */
	_Atomic uint64_t filter_compiled, filter_sets; /* filtered searches by path (ix_fragment_info) */
	int broken;
	char broken_msg[IX_ERRLEN];

	/* the indexer thread */
	pthread_t thr;
	int thr_running;
	pthread_mutex_t imu;
	pthread_cond_t icv;
	int stop, pause_req, paused, kick;
	uint64_t idle_at;   /* the size the indexer last found nothing to do at, or IX_NONE */
	int index_failed;
	char index_error[IX_ERRLEN];
	uint64_t rebuilds;
	uint64_t saved_P;   /* P of the saved index, IX_NONE if none */
	long long last_save_ms;
	ix_reader *idb;
};

/* ---- ix_store.c ---- */

/* SQLite helpers: an error naming what failed; exec of a statement list;
 * step then reset (CM_OK on DONE or ROW); the kv table. */
int ix_sql_fail(sqlite3 *db, char *err, size_t errlen, const char *what);
int ix_sql_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
int ix_sql_step(sqlite3_stmt *s);
int ix_kv_get_int(sqlite3 *db, const char *k, int64_t *v);
int ix_kv_get_text(sqlite3 *db, const char *k, char *out, size_t n);
int ix_kv_put_int(ix_wstmts *ws, const char *k, int64_t v);
int ix_kv_put_text(ix_wstmts *ws, const char *k, const char *v);
int ix_kv_del(ix_wstmts *ws, const char *k);
/* A database opened read-write (WAL, synchronous=FULL) or query-only. */
int ix_db_open(const char *path, int readonly, sqlite3 **out, char *err, size_t errlen);
/* The tables every fragment database has. */
extern const char *const IX_SCHEMA_SQL;
/* The writer connection's prepared statements. */
int ix_wstmts_prepare(sqlite3 *db, ix_wstmts *ws, char *err, size_t errlen);
void ix_wstmts_finalize(ix_wstmts *ws);
/* Read connections: opened on demand up to opt.readers, then waited for. */
ix_reader *ix_reader_open(const ix_fragment *f, char *err, size_t errlen);
void ix_reader_close(ix_reader *r);
ix_reader *ix_reader_get(ix_fragment *f, char *err, size_t errlen);
void ix_reader_put(ix_fragment *f, ix_reader *r);
/* One snapshot for several reads. */
int ix_reader_begin(ix_reader *r);
void ix_reader_end(ix_reader *r);
/* Reads and decodes the leaf of seq into a. */
int ix_read_leaf(ix_reader *r, uint64_t seq, cm_arena *a, ix_record *out);
/* The error of every call on a fragment that must be reopened. */
int ix_fragment_broken(ix_fragment *f, char *err, size_t errlen);

/* ---- ix_view.c (callers hold lk exclusively, or are alone) ---- */

ix_pend *ix_pend_at(ix_fragment *f, uint64_t seq);
size_t ix_pend_len(const ix_fragment *f);
const float *ix_pvec_row(const ix_fragment *f, uint64_t row);
/* Seqs below this have their positions in the index (if they have one);
 * the pending records from it on are searched exactly. */
uint64_t ix_indexed_end(const ix_fragment *f);
/* Room for n more pending records and nv more vector rows, kept for the
 * next ix_view_push calls (which use it up) even if lk is released and the
 * indexer trims in between; a later reserve replaces it. */
int ix_view_reserve(ix_fragment *f, size_t n, size_t nv);
/* Room for n index positions. */
int ix_pos_reserve(ix_fragment *f, size_t n);
void ix_pos_set(ix_fragment *f, size_t pos, uint64_t dead_at);
/* The position labelled seq, or -1. */
long long ix_pos_find(const ix_fragment *f, uint64_t seq);
/* Adds pending record seq == size (the caller reserved room) and applies
 * its kill of prev; vec (or bin, HAMMING) is the record's vector, copied
 * into a row (ix_vec_row) and prepared here; an upsert's fields go into the
 * filter postings. */
void ix_view_push(ix_fragment *f, uint64_t seq, int kind, int delta, uint64_t prev, int prev_live,
		  const float *vec, const uint8_t *bin, const ix_field *fields, uint32_t nfields);
/* The index positions of the sorted seqs below the indexed end that are
 * live, in order, into pos (room for n); returns their count. */
size_t ix_view_positions(const ix_fragment *f, const uint64_t *seqs, size_t n, size_t *pos);
/* Drops pending entries below newP (the index has just covered them); may
 * shrink the buffers, never below the room reserved. */
void ix_view_trim(ix_fragment *f, uint64_t newP);
/* Forgets the records from n on (n >= P) and the kills they made. */
void ix_view_cut(ix_fragment *f, uint64_t n);
void ix_view_free(ix_fragment *f);
/* Builds the view of the first f->size records on the writer connection:
 * the saved index if it fits, else an empty one that the indexer fills
 * batch by batch. */
int ix_view_load(ix_fragment *f, char *err, size_t errlen);

/* ---- ix_indexer.c ---- */

void *ix_indexer_main(void *arg);
/* Stops the indexer between two steps (a rebuild is dropped) until resumed;
 * pauses nest. */
void ix_indexer_pause(ix_fragment *f);
void ix_indexer_resume(ix_fragment *f);
/* Tells the indexer that the log grew. */
void ix_indexer_kick(ix_fragment *f);
/* Saves the index with the seq it covers; from the indexer thread, or with
 * the indexer paused or stopped. */
int ix_indexer_save(ix_fragment *f, char *err, size_t errlen);

#endif
