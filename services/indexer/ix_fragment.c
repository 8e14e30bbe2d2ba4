/* A fragment on disk: the write log, leaf hashes, state and metadata in
 * SQLite (WAL, synchronous=FULL), the Merkle log in memory, open and close,
 * appends, truncation, proofs and gets. SQLite itself is ix_store.c; the
 * in-memory view, search and the background indexer live in ix_view.c,
 * ix_search.c and ix_indexer.c; the design is described in
 * ix_fragment_int.h. */
#include "ix_fragment_int.h"
#include "cm_time.h"
#include "cm_crypto.h"
#include "cm_err.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FORMAT_VERSION 1

void ix_options_default(ix_options *o)
{
	memset(o, 0, sizeof(*o));
	o->batch = 256;
	o->tombstone_share = 0.2;
	o->exact_threshold = 4096;
	o->exact_share = 0.02;
	o->max_k = 1000;
	o->max_append = 10000;
	o->max_get = 10000;
	o->persist_interval_ms = 60000;
	o->readers = 8;
	o->rerank = 4;
	o->seed = 0x6d757269; /* "muri" */
	o->postings_max_bytes = 256u << 20;
	o->trim_interval_ms = 1000;
}

#define SHAPE_RANGE(field, v, lo, hi)                                                                    \
	if ((v) && ((uint64_t)(v) < (lo) || (uint64_t)(v) > (hi)))                                       \
		return ix_errf(CM_ERR_INVALID, err, errlen, "schema.index.%s: %llu is out of range %llu..%llu", \
			       field, (unsigned long long)(v), (unsigned long long)(lo), (unsigned long long)(hi))

int ix_options_shape_from_pb(const Muri__V1__IndexSpec *pb, ix_options *o, char *err, size_t errlen)
{
	ix_options d;
	ix_options_default(&d);
	Muri__V1__IndexSpec none = MURI__V1__INDEX_SPEC__INIT;
	if (!pb)
		pb = &none;
	SHAPE_RANGE("index_batch", pb->index_batch, 1, 1000000);
	SHAPE_RANGE("tombstone_permille", pb->tombstone_permille, 10, 990);
	SHAPE_RANGE("train_min", pb->train_min, 1, 100000000);
	SHAPE_RANGE("train_max", pb->train_max, 1, 100000000);
	SHAPE_RANGE("exact_threshold", pb->exact_threshold, 1, 100000000);
	SHAPE_RANGE("exact_permille", pb->exact_permille, 1, 1000);
	SHAPE_RANGE("rerank", pb->rerank, 1, 64);
	if (pb->train_min && pb->train_max && pb->train_max < pb->train_min)
		return ix_errf(CM_ERR_INVALID, err, errlen, "schema.index.train_max: %u is below train_min %u",
			       pb->train_max, pb->train_min);
	o->batch = pb->index_batch ? pb->index_batch : d.batch;
	o->seed = pb->seed ? pb->seed : d.seed;
	o->tombstone_share = pb->tombstone_permille ? pb->tombstone_permille / 1000.0 : d.tombstone_share;
	o->train_min = pb->train_min;
	o->train_max = pb->train_max;
	o->exact_threshold = pb->exact_threshold ? pb->exact_threshold : d.exact_threshold;
	o->exact_share = pb->exact_permille ? pb->exact_permille / 1000.0 : d.exact_share;
	o->rerank = pb->rerank ? pb->rerank : d.rerank;
	return CM_OK;
}
#undef SHAPE_RANGE

static uint32_t permille(double share)
{
	return (uint32_t)(share * 1000.0 + 0.5);
}

/* Deletes the metadata rows of versions superseded by earlier appends. */
static int gc_flush(ix_fragment *f)
{
	int rc;
	while ((rc = sqlite3_step(f->ws.gc_list)) == SQLITE_ROW)
		if (ix_meta_delete(&f->ws.meta, (uint64_t)sqlite3_column_int64(f->ws.gc_list, 0)) != CM_OK) {
			sqlite3_reset(f->ws.gc_list);
			return CM_ERR_IO;
		}
	sqlite3_reset(f->ws.gc_list);
	if (rc != SQLITE_DONE)
		return CM_ERR_IO;
	return ix_sql_step(f->ws.gc_clear);
}

/* Reads log row seq on the writer connection and decodes its leaf into a. */
typedef struct logrow {
	uint64_t epoch, prev;
	int applied, delta;
	ix_record rec;
} logrow;

static int log_row(ix_fragment *f, uint64_t seq, cm_arena *a, logrow *out)
{
	sqlite3_stmt *s = f->ws.log_get;
	int rc = CM_ERR_NOTFOUND;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	if (sqlite3_step(s) == SQLITE_ROW) {
		out->epoch = (uint64_t)sqlite3_column_int64(s, 0);
		out->applied = sqlite3_column_int(s, 1);
		out->prev = sqlite3_column_type(s, 2) == SQLITE_NULL ? IX_NONE : (uint64_t)sqlite3_column_int64(s, 2);
		out->delta = sqlite3_column_int(s, 3);
		rc = ix_record_decode(sqlite3_column_blob(s, 4), (size_t)sqlite3_column_bytes(s, 4), a, &out->rec,
				      NULL, 0);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

/* ---- open and close ---- */

static int spec_store(ix_fragment *f)
{
	ix_wstmts *w = &f->ws;
	int rc = CM_OK;
	rc |= ix_kv_put_int(w, "format", FORMAT_VERSION);
	rc |= ix_kv_put_int(w, "dim", f->spec.dim);
	rc |= ix_kv_put_int(w, "metric", f->spec.metric);
	rc |= ix_kv_put_int(w, "kind", f->spec.kind);
	rc |= ix_kv_put_int(w, "hnsw_m", f->spec.hnsw_m);
	rc |= ix_kv_put_int(w, "ef_construction", f->spec.ef_construction);
	rc |= ix_kv_put_int(w, "ef_search", f->spec.ef_search);
	rc |= ix_kv_put_int(w, "nlist", f->spec.nlist);
	rc |= ix_kv_put_int(w, "nprobe", f->spec.nprobe);
	rc |= ix_kv_put_int(w, "quantizer", f->spec.quantizer);
	rc |= ix_kv_put_int(w, "pq_m", f->spec.pq_m);
	rc |= ix_kv_put_int(w, "batch", f->batch);
	rc |= ix_kv_put_int(w, "seed", (int64_t)f->seed);
	rc |= ix_kv_put_int(w, "tombstone_permille", permille(f->opt.tombstone_share));
	rc |= ix_kv_put_int(w, "train_min", f->opt.train_min);
	rc |= ix_kv_put_int(w, "train_max", f->opt.train_max);
	rc |= ix_kv_put_int(w, "exact_threshold", f->opt.exact_threshold);
	rc |= ix_kv_put_int(w, "exact_permille", permille(f->opt.exact_share));
	rc |= ix_kv_put_int(w, "rerank", f->opt.rerank);
	return rc ? CM_ERR_IO : CM_OK;
}

void ix_fragment_shape_to_pb(const ix_fragment *f, Muri__V1__IndexSpec *i)
{
	i->index_batch = f->batch;
	i->seed = f->seed;
	i->tombstone_permille = permille(f->opt.tombstone_share);
	i->train_min = f->opt.train_min;
	i->train_max = f->opt.train_max;
	i->exact_threshold = f->opt.exact_threshold;
	i->exact_permille = permille(f->opt.exact_share);
	i->rerank = f->opt.rerank;
}

/* The shaping options stored with the fragment replace the given ones (a
 * store written before they were stored keeps the given ones). */
static void shape_load(ix_fragment *f)
{
	int64_t v;
	if (ix_kv_get_int(f->wdb, "tombstone_permille", &v) == CM_OK && v > 0)
		f->opt.tombstone_share = (double)v / 1000.0;
	if (ix_kv_get_int(f->wdb, "train_min", &v) == CM_OK)
		f->opt.train_min = (uint32_t)v;
	if (ix_kv_get_int(f->wdb, "train_max", &v) == CM_OK)
		f->opt.train_max = (uint32_t)v;
	if (ix_kv_get_int(f->wdb, "exact_threshold", &v) == CM_OK && v > 0)
		f->opt.exact_threshold = (uint32_t)v;
	if (ix_kv_get_int(f->wdb, "exact_permille", &v) == CM_OK && v > 0)
		f->opt.exact_share = (double)v / 1000.0;
	if (ix_kv_get_int(f->wdb, "rerank", &v) == CM_OK && v > 0)
		f->opt.rerank = (uint32_t)v;
}

static int spec_load(ix_fragment *f, const ix_spec *given, char *err, size_t errlen)
{
	int64_t v[13];
	static const char *keys[] = {"format", "dim", "metric", "kind", "hnsw_m", "ef_construction", "ef_search",
				     "nlist", "nprobe", "quantizer", "pq_m", "batch", "seed"};
	for (int i = 0; i < 13; i++)
		if (ix_kv_get_int(f->wdb, keys[i], &v[i]) != CM_OK)
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s: stored schema lacks %s", f->dir, keys[i]);
	if (v[0] != FORMAT_VERSION)
		return ix_errf(CM_ERR_INVALID, err, errlen, "%s: unknown format %lld", f->dir, (long long)v[0]);
	ix_spec s = {.dim = (uint32_t)v[1], .metric = (int)v[2], .kind = (int)v[3], .hnsw_m = (uint32_t)v[4],
		     .ef_construction = (uint32_t)v[5], .ef_search = (uint32_t)v[6], .nlist = (uint32_t)v[7],
		     .nprobe = (uint32_t)v[8], .quantizer = (int)v[9], .pq_m = (uint32_t)v[10]};
	if (ix_spec_normalize(&s, err, errlen) != CM_OK)
		return CM_ERR_INVALID;
	f->batch = (uint32_t)v[11];
	f->seed = (uint64_t)v[12];
	if (f->batch < 1)
		return ix_errf(CM_ERR_INVALID, err, errlen, "%s: stored batch size is 0", f->dir);
	if (given) {
#define SAME(field, name)                                                                            \
		if (given->field != s.field)                                                         \
			return ix_errf(CM_ERR_INVALID, err, errlen, "schema.%s: %lld differs from the stored %lld", \
				       name, (long long)given->field, (long long)s.field);
		SAME(dim, "dimension")
		SAME(metric, "metric")
		SAME(kind, "index.kind")
		SAME(hnsw_m, "index.hnsw_m")
		SAME(ef_construction, "index.hnsw_ef_construction")
		SAME(nlist, "index.ivf_nlist")
		SAME(quantizer, "index.quantizer")
		SAME(pq_m, "index.pq_m")
#undef SAME
		s.ef_search = given->ef_search;
		s.nprobe = given->nprobe;
	}
	f->spec = s;
	shape_load(f);
	return CM_OK;
}

/* Removes saved index files other than keep (a file name or ""). */
static void remove_stale_indexes(const ix_fragment *f, const char *keep)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	char path[2 * PATH_MAX];
	if (!d)
		return;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, IX_INDEX_PREFIX, strlen(IX_INDEX_PREFIX)) == 0 && strcmp(e->d_name, keep) != 0) {
			snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
			unlink(path);
		}
	closedir(d);
}

static int load_log(ix_fragment *f, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int rc;
	uint64_t n = 0;
	if (cm_merkle_new(&f->merkle, &cm_merkle_blake2b) != CM_OK)
		return CM_ERR_NOMEM;
	if (sqlite3_prepare_v2(f->wdb, "SELECT seq, hash FROM hashes ORDER BY seq", -1, &s, NULL) != SQLITE_OK)
		return ix_sql_fail(f->wdb, err, errlen, "reading leaf hashes");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((uint64_t)sqlite3_column_int64(s, 0) != n || sqlite3_column_bytes(s, 1) != CM_MERKLE_HASH_BYTES) {
			sqlite3_finalize(s);
			return ix_errf(CM_ERR_IO, err, errlen, "%s: leaf hash %llu missing or malformed", f->dir,
				       (unsigned long long)n);
		}
		if (cm_merkle_append_hash(f->merkle, sqlite3_column_blob(s, 1)) != CM_OK) {
			sqlite3_finalize(s);
			return CM_ERR_NOMEM;
		}
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return ix_sql_fail(f->wdb, err, errlen, "reading leaf hashes");
	int64_t last = -1;
	if (sqlite3_prepare_v2(f->wdb, "SELECT MAX(seq) FROM log", -1, &s, NULL) != SQLITE_OK)
		return ix_sql_fail(f->wdb, err, errlen, "reading the log");
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		last = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if ((uint64_t)(last + 1) != n)
		return ix_errf(CM_ERR_IO, err, errlen, "%s: %llu leaf hashes for %lld records", f->dir,
			       (unsigned long long)n, (long long)(last + 1));
	f->size = n;
	if (n) {
		/* The last leaf must hash to its stored hash. */
		cm_arena a;
		logrow r;
		uint8_t h[CM_MERKLE_HASH_BYTES], want[CM_MERKLE_HASH_BYTES];
		cm_arena_init(&a, 0);
		rc = log_row(f, n - 1, &a, &r);
		cm_arena_free(&a);
		if (rc != CM_OK)
			return ix_errf(CM_ERR_IO, err, errlen, "%s: record %llu does not decode", f->dir,
				       (unsigned long long)(n - 1));
		f->last_epoch = r.epoch;
		sqlite3_stmt *g = NULL;
		if (sqlite3_prepare_v2(f->wdb, "SELECT leaf FROM log WHERE seq = ?1", -1, &g, NULL) != SQLITE_OK)
			return CM_ERR_IO;
		sqlite3_bind_int64(g, 1, (sqlite3_int64)(n - 1));
		rc = sqlite3_step(g);
		if (rc == SQLITE_ROW)
			ix_record_leaf_hash(sqlite3_column_blob(g, 0), (size_t)sqlite3_column_bytes(g, 0), h);
		sqlite3_finalize(g);
		cm_merkle_leaf_hash(f->merkle, n - 1, want);
		if (rc != SQLITE_ROW || memcmp(h, want, sizeof(h)) != 0)
			return ix_errf(CM_ERR_IO, err, errlen, "%s: the last record does not match its leaf hash",
				       f->dir);
	}
	return CM_OK;
}

static int options_fill(ix_options *o, const ix_options *given, char *err, size_t errlen)
{
	ix_options d;
	ix_options_default(&d);
	if (given)
		*o = *given;
	else
		*o = d;
#define DEF(field) if (!o->field) o->field = d.field
	DEF(batch);
	DEF(tombstone_share);
	DEF(exact_threshold);
	DEF(exact_share);
	DEF(max_k);
	DEF(max_append);
	DEF(max_get);
	DEF(readers);
	DEF(rerank);
	DEF(seed);
	DEF(postings_max_bytes);
#undef DEF
	if (o->tombstone_share <= 0 || o->tombstone_share > 1)
		return ix_errf(CM_ERR_INVALID, err, errlen, "options.tombstone_share: %g not in (0, 1]",
			       o->tombstone_share);
	if (o->max_k > 100000)
		return ix_errf(CM_ERR_INVALID, err, errlen, "options.max_k: %u (max 100000)", o->max_k);
	if (o->batch > 1000000)
		return ix_errf(CM_ERR_INVALID, err, errlen, "options.batch: %u (max 1000000)", o->batch);
	return CM_OK;
}

int ix_fragment_open(const char *dir, const ix_spec *spec, const ix_options *opt, ix_fragment **out, char *err,
		     size_t errlen)
{
	ix_fragment *f;
	char path[PATH_MAX + 16];
	ix_spec given;
	int rc;
	if (strlen(dir) >= PATH_MAX - 64)
		return ix_errf(CM_ERR_INVALID, err, errlen, "dir: path too long");
	if (cm_crypto_init() != CM_OK)
		return ix_errf(CM_ERR_INTERNAL, err, errlen, "libsodium failed to initialize");
	if (spec) {
		given = *spec;
		if ((rc = ix_spec_normalize(&given, err, errlen)) != CM_OK)
			return rc;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return CM_ERR_NOMEM;
	snprintf(f->dir, sizeof(f->dir), "%s", dir);
	pthread_mutex_init(&f->wmu, NULL);
	pthread_mutex_init(&f->rmu, NULL);
	pthread_cond_init(&f->rcv, NULL);
	pthread_mutex_init(&f->imu, NULL);
	cm_cond_init(&f->icv);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&f->lk, &ra);
	pthread_rwlockattr_destroy(&ra);
	f->idle_at = IX_NONE;
	f->saved_P = IX_NONE;
	f->part_last = IX_NONE;
	if ((rc = options_fill(&f->opt, opt, err, errlen)) != CM_OK)
		goto fail;
	f->rdb = calloc(f->opt.readers, sizeof(*f->rdb));
	if (!f->rdb) {
		rc = CM_ERR_NOMEM;
		goto fail;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = ix_errf(CM_ERR_IO, err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, IX_DB_FILE);
	if ((rc = ix_db_open(path, 0, &f->wdb, err, errlen)) != CM_OK)
		goto fail;
	if ((rc = ix_sql_exec(f->wdb, IX_SCHEMA_SQL, err, errlen)) != CM_OK ||
	    (rc = ix_meta_schema(f->wdb, err, errlen)) != CM_OK ||
	    (rc = ix_wstmts_prepare(f->wdb, &f->ws, err, errlen)) != CM_OK)
		goto fail;
	int64_t v;
	if (ix_kv_get_int(f->wdb, "dim", &v) == CM_OK) {
		if ((rc = spec_load(f, spec ? &given : NULL, err, errlen)) != CM_OK)
			goto fail;
		if (spec && (ix_sql_exec(f->wdb, "BEGIN IMMEDIATE", NULL, 0) != CM_OK || spec_store(f) != CM_OK ||
			     ix_sql_exec(f->wdb, "COMMIT", NULL, 0) != CM_OK)) {
			ix_sql_exec(f->wdb, "ROLLBACK", NULL, 0);
			rc = ix_sql_fail(f->wdb, err, errlen, "storing the schema");
			goto fail;
		}
	} else {
		if (!spec) {
			rc = ix_errf(CM_ERR_NOTFOUND, err, errlen, "%s: no fragment there and no schema given", dir);
			goto fail;
		}
		f->spec = given;
		f->batch = f->opt.batch;
		f->seed = f->opt.seed;
		/* used as stored */
		f->opt.tombstone_share = permille(f->opt.tombstone_share) / 1000.0;
		f->opt.exact_share = permille(f->opt.exact_share) / 1000.0;
		if (ix_sql_exec(f->wdb, "BEGIN IMMEDIATE", NULL, 0) != CM_OK || spec_store(f) != CM_OK ||
		    ix_sql_exec(f->wdb, "COMMIT", NULL, 0) != CM_OK) {
			ix_sql_exec(f->wdb, "ROLLBACK", NULL, 0);
			rc = ix_sql_fail(f->wdb, err, errlen, "storing the schema");
			goto fail;
		}
	}
	f->train_min = f->opt.train_min ? f->opt.train_min : ix_spec_train_min(&f->spec);
	if (!f->opt.train_max)
		f->opt.train_max = f->spec.nlist ? 256 * f->spec.nlist : 65536;
	if (f->opt.train_max < f->train_min)
		f->opt.train_max = f->train_min;
	if (ix_kv_get_int(f->wdb, "floor", &v) == CM_OK)
		f->floor = (uint64_t)v;
	if (ix_sql_exec(f->wdb, "BEGIN IMMEDIATE", NULL, 0) != CM_OK || gc_flush(f) != CM_OK ||
	    ix_sql_exec(f->wdb, "COMMIT", NULL, 0) != CM_OK) {
		ix_sql_exec(f->wdb, "ROLLBACK", NULL, 0);
		rc = ix_sql_fail(f->wdb, err, errlen, "cleaning metadata");
		goto fail;
	}
	if ((rc = load_log(f, err, errlen)) != CM_OK || (rc = ix_view_load(f, err, errlen)) != CM_OK)
		goto fail;
	if (ix_kv_get_text(f->wdb, "index_file", f->index_file, sizeof(f->index_file)) != CM_OK ||
	    f->saved_P == IX_NONE)
		f->index_file[0] = '\0';
	remove_stale_indexes(f, f->index_file);
	f->last_save_ms = (long long)cm_now_ms();
	if (!(f->idb = ix_reader_open(f, err, errlen))) {
		rc = CM_ERR_IO;
		goto fail;
	}
	if (pthread_create(&f->thr, NULL, ix_indexer_main, f) != 0) {
		rc = ix_errf(CM_ERR_INTERNAL, err, errlen, "cannot start the indexer thread");
		goto fail;
	}
	f->thr_running = 1;
	*out = f;
	return CM_OK;
fail:
	ix_fragment_close(f);
	return rc;
}

void ix_fragment_close(ix_fragment *f)
{
	if (!f)
		return;
	if (f->thr_running) {
		pthread_mutex_lock(&f->imu);
		f->stop = 1;
		pthread_cond_broadcast(&f->icv);
		pthread_mutex_unlock(&f->imu);
		pthread_join(f->thr, NULL);
		f->thr_running = 0;
		if (!f->broken && !f->index_failed && f->index && f->P != f->saved_P && f->P > 0)
			ix_indexer_save(f, NULL, 0);
	}
	for (size_t i = 0; i < f->nfree; i++)
		ix_reader_close(f->rdb[i]);
	free(f->rdb);
	ix_reader_close(f->idb);
	ix_wstmts_finalize(&f->ws);
	sqlite3_close(f->wdb);
	ix_view_free(f);
	cm_merkle_free(f->merkle);
	pthread_rwlock_destroy(&f->lk);
	pthread_mutex_destroy(&f->wmu);
	pthread_mutex_destroy(&f->rmu);
	pthread_cond_destroy(&f->rcv);
	pthread_mutex_destroy(&f->imu);
	pthread_cond_destroy(&f->icv);
	free(f);
}

/* ---- appends ---- */

typedef struct decision {
	uint64_t prev;
	int applied, prev_live, delta;
} decision;

static int append_sql(ix_fragment *f, const ix_record *recs, size_t n, const uint8_t *const *leaves,
		      const size_t *lens, const uint8_t (*hashes)[CM_MERKLE_HASH_BYTES], decision *dec, char *err,
		      size_t errlen)
{
	ix_wstmts *w = &f->ws;
	if (ix_sql_exec(f->wdb, "BEGIN IMMEDIATE", err, errlen) != CM_OK)
		return CM_ERR_IO;
	if (gc_flush(f) != CM_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const ix_record *r = &recs[i];
		decision d = {.prev = IX_NONE};
		uint64_t pver = 0, pseq = IX_NONE;
		int found = 0, pdel = 0;
		sqlite3_bind_blob(w->state_get, 1, r->id, IX_ID_BYTES, SQLITE_STATIC);
		if (sqlite3_step(w->state_get) == SQLITE_ROW) {
			found = 1;
			pver = (uint64_t)sqlite3_column_int64(w->state_get, 0);
			pseq = (uint64_t)sqlite3_column_int64(w->state_get, 1);
			pdel = sqlite3_column_int(w->state_get, 2);
		}
		sqlite3_reset(w->state_get);
		sqlite3_clear_bindings(w->state_get);
		d.applied = !found || r->version >= pver;
		if (d.applied) {
			int upsert = r->op != IX_OP_DELETE;
			d.prev = found ? pseq : IX_NONE;
			d.prev_live = found && !pdel;
			d.delta = upsert ? (d.prev_live ? 0 : 1) : (d.prev_live ? -1 : 0);
			sqlite3_bind_blob(w->state_put, 1, r->id, IX_ID_BYTES, SQLITE_STATIC);
			sqlite3_bind_int64(w->state_put, 2, (sqlite3_int64)r->version);
			sqlite3_bind_int64(w->state_put, 3, (sqlite3_int64)r->seq);
			sqlite3_bind_int(w->state_put, 4, !upsert);
			if (ix_sql_step(w->state_put) != CM_OK)
				goto fail;
			if (upsert && ix_meta_insert(&w->meta, r->seq, r->fields, r->nfields) != CM_OK)
				goto fail;
			if (d.prev_live) {
				sqlite3_bind_int64(w->gc_put, 1, (sqlite3_int64)pseq);
				if (ix_sql_step(w->gc_put) != CM_OK)
					goto fail;
			}
		}
		sqlite3_bind_int64(w->log_put, 1, (sqlite3_int64)r->seq);
		sqlite3_bind_int64(w->log_put, 2, (sqlite3_int64)r->epoch);
		sqlite3_bind_int(w->log_put, 3, d.applied);
		if (d.prev != IX_NONE)
			sqlite3_bind_int64(w->log_put, 4, (sqlite3_int64)d.prev);
		else
			sqlite3_bind_null(w->log_put, 4);
		sqlite3_bind_int(w->log_put, 5, d.delta);
		sqlite3_bind_blob(w->log_put, 6, leaves[i], (int)lens[i], SQLITE_STATIC);
		if (ix_sql_step(w->log_put) != CM_OK)
			goto fail;
		sqlite3_bind_int64(w->hash_put, 1, (sqlite3_int64)r->seq);
		sqlite3_bind_blob(w->hash_put, 2, hashes[i], CM_MERKLE_HASH_BYTES, SQLITE_STATIC);
		if (ix_sql_step(w->hash_put) != CM_OK)
			goto fail;
		dec[i] = d;
	}
	if (ix_sql_exec(f->wdb, "COMMIT", err, errlen) != CM_OK)
		goto fail_quiet;
	return CM_OK;
fail:
	ix_sql_fail(f->wdb, err, errlen, "append");
fail_quiet:
	ix_sql_exec(f->wdb, "ROLLBACK", NULL, 0);
	return CM_ERR_IO;
}

static int append_leaves(ix_fragment *f, const ix_record *recs, size_t n, const uint8_t *const *leaves,
			 const size_t *lens, const uint8_t (*hashes)[CM_MERKLE_HASH_BYTES], char *err, size_t errlen);

/* Checks n records against f's schema and their order. */
static int append_check(ix_fragment *f, const ix_record *recs, size_t n, char *err, size_t errlen)
{
	char why[200];
	if (n > f->opt.max_append)
		return ix_errf(CM_ERR_INVALID, err, errlen, "records: %zu (max %u per append)", n,
			       f->opt.max_append);
	for (size_t i = 0; i < n; i++) {
		if (ix_record_validate(&recs[i], f->spec.dim, why, sizeof(why)) != CM_OK)
			return ix_errf(CM_ERR_INVALID, err, errlen, "records[%zu].%s", i, why);
		if (recs[i].op != IX_OP_DELETE && (recs[i].bin != NULL) != (f->spec.metric == IX_HAMMING))
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       f->spec.metric == IX_HAMMING
					       ? "records[%zu].vector.binary: missing, the collection holds binary vectors (HAMMING)"
					       : "records[%zu].vector.values: missing, the collection holds float vectors",
				       i);
		if (recs[i].op != IX_OP_DELETE && !recs[i].bin && !ix_vec_usable(&f->spec, recs[i].vec))
			return ix_errf(CM_ERR_INVALID, err, errlen, "records[%zu].vector: zero vector under COSINE", i);
		if (i && (recs[i].seq != recs[i - 1].seq + 1 || recs[i].epoch < recs[i - 1].epoch))
			return ix_errf(recs[i].seq != recs[i - 1].seq + 1 ? CM_ERR_RANGE : CM_ERR_STATE, err, errlen,
				       "records[%zu]: seq %llu epoch %llu after seq %llu epoch %llu", i,
				       (unsigned long long)recs[i].seq, (unsigned long long)recs[i].epoch,
				       (unsigned long long)recs[i - 1].seq, (unsigned long long)recs[i - 1].epoch);
	}
	return CM_OK;
}

int ix_fragment_append_encoded(ix_fragment *f, const ix_record *recs, size_t n, const uint8_t *const *leaves,
			       const size_t *lens, const uint8_t (*hashes)[CM_MERKLE_HASH_BYTES], char *err,
			       size_t errlen)
{
	if (n == 0)
		return CM_OK;
	int rc = append_check(f, recs, n, err, errlen);
	return rc == CM_OK ? append_leaves(f, recs, n, leaves, lens, hashes, err, errlen) : rc;
}

int ix_fragment_append(ix_fragment *f, const ix_record *recs, size_t n, char *err, size_t errlen)
{
	if (n == 0)
		return CM_OK;
	int rc = append_check(f, recs, n, err, errlen);
	if (rc != CM_OK)
		return rc;
	uint8_t **leaves = calloc(n, sizeof(*leaves));
	size_t *lens = calloc(n, sizeof(*lens));
	uint8_t(*hashes)[CM_MERKLE_HASH_BYTES] = calloc(n, sizeof(*hashes));
	if (!leaves || !lens || !hashes) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		lens[i] = ix_record_encoded_size(&recs[i]);
		leaves[i] = malloc(lens[i]);
		if (!leaves[i]) {
			rc = CM_ERR_NOMEM;
			goto out;
		}
		ix_record_encode(&recs[i], leaves[i]);
		ix_record_leaf_hash(leaves[i], lens[i], hashes[i]);
	}
	rc = append_leaves(f, recs, n, (const uint8_t *const *)leaves, lens, (const uint8_t(*)[CM_MERKLE_HASH_BYTES])hashes,
			   err, errlen);
out:
	if (leaves)
		for (size_t i = 0; i < n; i++)
			free(leaves[i]);
	free(leaves);
	free(lens);
	free(hashes);
	return rc;
}

/* Appends records whose canonical bytes and leaf hashes are given. */
static int append_leaves(ix_fragment *f, const ix_record *recs, size_t n, const uint8_t *const *leaves,
			 const size_t *lens, const uint8_t (*hashes)[CM_MERKLE_HASH_BYTES], char *err, size_t errlen)
{
	int rc = CM_OK;
	size_t nvec = 0;
	for (size_t i = 0; i < n; i++)
		nvec += recs[i].op != IX_OP_DELETE;
	decision *dec = calloc(n, sizeof(*dec));
	if (!dec)
		return CM_ERR_NOMEM;
	pthread_mutex_lock(&f->wmu);
	if (f->broken) {
		rc = ix_fragment_broken(f, err, errlen);
		goto unlock;
	}
	if (recs[0].seq != f->size) {
		rc = ix_errf(CM_ERR_RANGE, err, errlen, "records[0].seq: %llu, the log size is %llu",
			     (unsigned long long)recs[0].seq, (unsigned long long)f->size);
		goto unlock;
	}
	if (recs[0].epoch < f->last_epoch) {
		rc = ix_errf(CM_ERR_STATE, err, errlen, "records[0].epoch: %llu is older than the log's epoch %llu",
			     (unsigned long long)recs[0].epoch, (unsigned long long)f->last_epoch);
		goto unlock;
	}
	pthread_rwlock_wrlock(&f->lk);
	rc = ix_view_reserve(f, n, nvec);
	pthread_rwlock_unlock(&f->lk);
	if (rc != CM_OK)
		goto unlock;
	rc = append_sql(f, recs, n, leaves, lens, hashes, dec, err, errlen);
	if (rc != CM_OK)
		goto unlock;
	/* Durable: now make it visible. */
	pthread_rwlock_wrlock(&f->lk);
	for (size_t i = 0; i < n; i++) {
		const ix_record *r = &recs[i];
		if (cm_merkle_append_hash(f->merkle, hashes[i]) != CM_OK) {
			f->broken = 1;
			snprintf(f->broken_msg, sizeof(f->broken_msg), "out of memory after a durable append");
			break;
		}
		int kind = !dec[i].applied ? IX_P_IGNORED : r->op == IX_OP_DELETE ? IX_P_DELETE : IX_P_UPSERT;
		ix_view_push(f, r->seq, kind, dec[i].delta, dec[i].prev, dec[i].prev_live, r->vec, r->bin, r->fields,
			     r->nfields);
	}
	f->last_epoch = recs[n - 1].epoch;
	pthread_rwlock_unlock(&f->lk);
	if (f->broken)
		rc = ix_fragment_broken(f, err, errlen);
	else
		ix_indexer_kick(f);
unlock:
	pthread_mutex_unlock(&f->wmu);
	free(dec);
	return rc;
}

/* ---- truncation and the floor ---- */

static int truncate_sql(ix_fragment *f, uint64_t n, int drop_saved, char *err, size_t errlen)
{
	ix_wstmts *w = &f->ws;
	cm_arena a;
	int rc = CM_OK;
	cm_arena_init(&a, 0);
	if (ix_sql_exec(f->wdb, "BEGIN IMMEDIATE", err, errlen) != CM_OK) {
		cm_arena_free(&a);
		return CM_ERR_IO;
	}
	if (gc_flush(f) != CM_OK)
		goto fail;
	for (uint64_t t = f->size; t-- > n;) {
		logrow r, p;
		cm_arena_reset(&a);
		if (log_row(f, t, &a, &r) != CM_OK)
			goto fail;
		if (!r.applied)
			continue;
		if (r.rec.op != IX_OP_DELETE && ix_meta_delete(&w->meta, t) != CM_OK)
			goto fail;
		if (r.prev == IX_NONE) {
			sqlite3_bind_blob(w->state_del, 1, r.rec.id, IX_ID_BYTES, SQLITE_STATIC);
			if (ix_sql_step(w->state_del) != CM_OK)
				goto fail;
			continue;
		}
		if (log_row(f, r.prev, &a, &p) != CM_OK)
			goto fail;
		int pdel = p.rec.op == IX_OP_DELETE;
		sqlite3_bind_blob(w->state_put, 1, r.rec.id, IX_ID_BYTES, SQLITE_STATIC);
		sqlite3_bind_int64(w->state_put, 2, (sqlite3_int64)p.rec.version);
		sqlite3_bind_int64(w->state_put, 3, (sqlite3_int64)r.prev);
		sqlite3_bind_int(w->state_put, 4, pdel);
		if (ix_sql_step(w->state_put) != CM_OK)
			goto fail;
		if (!pdel && ix_meta_insert(&w->meta, r.prev, p.rec.fields, p.rec.nfields) != CM_OK)
			goto fail;
	}
	char sql[128];
	snprintf(sql, sizeof(sql), "DELETE FROM log WHERE seq >= %llu; DELETE FROM hashes WHERE seq >= %llu",
		 (unsigned long long)n, (unsigned long long)n);
	if (ix_sql_exec(f->wdb, sql, err, errlen) != CM_OK)
		goto fail_quiet;
	if (drop_saved && (ix_kv_del(w, "index_file") != CM_OK || ix_kv_del(w, "index_seq") != CM_OK))
		goto fail;
	if (ix_sql_exec(f->wdb, "COMMIT", err, errlen) != CM_OK)
		goto fail_quiet;
	cm_arena_free(&a);
	return rc;
fail:
	ix_sql_fail(f->wdb, err, errlen, "truncate");
fail_quiet:
	ix_sql_exec(f->wdb, "ROLLBACK", NULL, 0);
	cm_arena_free(&a);
	return CM_ERR_IO;
}

int ix_fragment_truncate(ix_fragment *f, uint64_t n, char *err, size_t errlen)
{
	int rc = CM_OK;
	ix_indexer_pause(f);
	pthread_mutex_lock(&f->wmu);
	if (f->broken) {
		rc = ix_fragment_broken(f, err, errlen);
		goto out;
	}
	if (n > f->size) {
		rc = ix_errf(CM_ERR_RANGE, err, errlen, "size: %llu is beyond the log's %llu", (unsigned long long)n,
			     (unsigned long long)f->size);
		goto out;
	}
	if (n < f->floor) {
		rc = ix_errf(CM_ERR_STATE, err, errlen, "size: %llu is below the floor %llu (a committed root)",
			     (unsigned long long)n, (unsigned long long)f->floor);
		goto out;
	}
	if (n == f->size)
		goto out;
	int drop_saved = f->saved_P != IX_NONE && f->saved_P > n;
	rc = truncate_sql(f, n, drop_saved, err, errlen);
	if (rc != CM_OK)
		goto out;
	if (drop_saved) {
		char path[2 * PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", f->dir, f->index_file);
		unlink(path);
		f->index_file[0] = '\0';
	}
	pthread_rwlock_wrlock(&f->lk);
	cm_merkle_truncate(f->merkle, n);
	f->last_epoch = 0;
	if (n) {
		cm_arena a;
		logrow r;
		cm_arena_init(&a, 0);
		if (log_row(f, n - 1, &a, &r) == CM_OK)
			f->last_epoch = r.epoch;
		cm_arena_free(&a);
	}
	if (f->P <= n) {
		/* Keep the index; forget the dropped records and their kills. */
		ix_view_cut(f, n);
	} else {
		f->size = n;
		rc = ix_view_load(f, err, errlen);
		if (rc != CM_OK) {
			f->broken = 1;
			snprintf(f->broken_msg, sizeof(f->broken_msg), "reloading after truncation failed");
		}
	}
	pthread_rwlock_unlock(&f->lk);
out:
	pthread_mutex_unlock(&f->wmu);
	ix_indexer_resume(f);
	return rc;
}

int ix_fragment_set_floor(ix_fragment *f, uint64_t min_size)
{
	int rc = CM_OK;
	pthread_mutex_lock(&f->wmu);
	if (min_size > f->size)
		rc = CM_ERR_RANGE;
	else if (min_size > f->floor) {
		if (ix_kv_put_int(&f->ws, "floor", (int64_t)min_size) != CM_OK)
			rc = CM_ERR_IO;
		else
			f->floor = min_size;
	}
	pthread_mutex_unlock(&f->wmu);
	return rc;
}

/* ---- the Merkle log ---- */

int ix_fragment_root(ix_fragment *f, uint64_t size, uint8_t out[CM_MERKLE_HASH_BYTES])
{
	pthread_rwlock_rdlock(&f->lk);
	int rc = cm_merkle_root(f->merkle, size, out);
	pthread_rwlock_unlock(&f->lk);
	return rc;
}

int ix_fragment_inclusion(ix_fragment *f, uint64_t index, uint64_t size, cm_merkle_path *path)
{
	pthread_rwlock_rdlock(&f->lk);
	int rc = cm_merkle_inclusion(f->merkle, index, size, path);
	pthread_rwlock_unlock(&f->lk);
	return rc;
}

int ix_fragment_consistency(ix_fragment *f, uint64_t old_size, uint64_t new_size, cm_merkle_path *path)
{
	pthread_rwlock_rdlock(&f->lk);
	int rc = cm_merkle_consistency(f->merkle, old_size, new_size, path);
	pthread_rwlock_unlock(&f->lk);
	return rc;
}

int ix_fragment_leaf(ix_fragment *f, uint64_t index, cm_arena *a, uint8_t **leaf, size_t *len)
{
	ix_reader *r = ix_reader_get(f, NULL, 0);
	int rc = CM_ERR_NOTFOUND;
	if (!r)
		return CM_ERR_IO;
	sqlite3_bind_int64(r->leaf, 1, (sqlite3_int64)index);
	if (sqlite3_step(r->leaf) == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(r->leaf, 0);
		uint8_t *p = cm_arena_alloc(a, n ? n : 1);
		if (!p)
			rc = CM_ERR_NOMEM;
		else {
			memcpy(p, sqlite3_column_blob(r->leaf, 0), n);
			*leaf = p;
			*len = n;
			rc = CM_OK;
		}
	}
	sqlite3_reset(r->leaf);
	ix_reader_put(f, r);
	return rc;
}

int ix_fragment_read(ix_fragment *f, uint64_t from, uint32_t max, cm_arena *a, ix_record **recs, size_t *n)
{
	ix_reader *r = ix_reader_get(f, NULL, 0);
	sqlite3_stmt *s = NULL;
	ix_record *out = NULL;
	size_t m = 0;
	int rc = CM_OK;
	if (!r)
		return CM_ERR_IO;
	if (max && !(out = cm_arena_alloc(a, max * sizeof(*out))))
		rc = CM_ERR_NOMEM;
	else if (sqlite3_prepare_v2(r->db, "SELECT leaf FROM log WHERE seq >= ?1 ORDER BY seq LIMIT ?2", -1, &s,
				    NULL) != SQLITE_OK)
		rc = CM_ERR_IO;
	else {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)from);
		sqlite3_bind_int64(s, 2, max);
		int st;
		while (rc == CM_OK && (st = sqlite3_step(s)) == SQLITE_ROW)
			rc = ix_record_decode(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), a,
					      &out[m++], NULL, 0);
	}
	sqlite3_finalize(s);
	ix_reader_put(f, r);
	if (rc == CM_OK) {
		*recs = out;
		*n = m;
	}
	return rc;
}

int ix_fragment_get(ix_fragment *f, const uint8_t (*ids)[IX_ID_BYTES], size_t nids, int include_vectors,
		    cm_arena *a, ix_hit **hits, size_t *n, char *err, size_t errlen)
{
	ix_hit *out;
	size_t m = 0;
	int rc = CM_OK;
	if (nids > f->opt.max_get)
		return ix_errf(CM_ERR_INVALID, err, errlen, "ids: %zu (max %u)", nids, f->opt.max_get);
	out = cm_arena_alloc(a, (nids ? nids : 1) * sizeof(*out));
	if (!out)
		return CM_ERR_NOMEM;
	ix_reader *rd = ix_reader_get(f, err, errlen);
	if (!rd)
		return CM_ERR_IO;
	if (ix_reader_begin(rd) != CM_OK)
		rc = CM_ERR_IO;
	for (size_t i = 0; rc == CM_OK && i < nids; i++) {
		sqlite3_bind_blob(rd->state, 1, ids[i], IX_ID_BYTES, SQLITE_STATIC);
		int found = sqlite3_step(rd->state) == SQLITE_ROW;
		uint64_t seq = found ? (uint64_t)sqlite3_column_int64(rd->state, 0) : 0;
		sqlite3_reset(rd->state);
		if (!found)
			continue;
		ix_record r;
		rc = ix_read_leaf(rd, seq, a, &r);
		if (rc != CM_OK)
			break;
		ix_hit *h = &out[m++];
		memcpy(h->id, r.id, IX_ID_BYTES);
		h->distance = 0;
		h->version = r.version;
		h->seq = seq;
		h->dim = include_vectors ? r.dim : 0;
		h->vec = include_vectors ? r.vec : NULL;
		h->bin = include_vectors ? r.bin : NULL;
		h->nfields = r.nfields;
		h->fields = r.fields;
	}
	ix_reader_end(rd);
	ix_reader_put(f, rd);
	if (rc != CM_OK)
		return ix_errf(rc, err, errlen, "reading the state failed");
	*hits = out;
	*n = m;
	return CM_OK;
}

void ix_fragment_info_get(ix_fragment *f, ix_fragment_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&f->lk);
	out->spec = f->spec;
	out->batch = f->batch;
	out->size = f->size;
	out->last_epoch = f->last_epoch;
	out->floor = f->floor;
	int64_t live = (int64_t)f->live_at_P;
	for (size_t i = 0; i < ix_pend_len(f); i++)
		live += f->pend[f->pend_start + i].delta;
	out->live = (uint64_t)live;
	out->indexed = f->P;
	out->index_vectors = f->index ? ix_index_size(f->index) : 0;
	out->index_dead = f->ndead;
	out->trained = f->index && !(ix_index_is_stand_in(f->index) && ix_spec_needs_training(&f->spec));
	out->rebuilds = f->rebuilds;
	ix_postings_stats ps;
	ix_postings_stats_get(f->post, &ps);
	out->postings_on = ps.enabled;
	out->postings_bytes = ps.bytes;
	out->postings_entries = ps.entries;
	out->filter_compiled = atomic_load(&f->filter_compiled);
	out->filter_sets = atomic_load(&f->filter_sets);
	pthread_rwlock_unlock(&f->lk);
	pthread_mutex_lock(&f->imu);
	out->saved = f->saved_P == IX_NONE ? 0 : f->saved_P;
	out->index_failed = f->index_failed;
	snprintf(out->index_error, sizeof(out->index_error), "%s", f->index_error);
	pthread_mutex_unlock(&f->imu);
}
