/* The in-memory view of a fragment: the pending records (from the index's
 * batch boundary P to the log size) with their prepared vectors, the
 * tombstones of the index's positions, the metadata postings of filters, and
 * loading them from SQLite and the saved index at open or after a
 * truncation. See ix_fragment_int.h. */
#include "ix_fragment_int.h"
#include "cm_err.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ix_pend *ix_pend_at(ix_fragment *f, uint64_t seq)
{
	return &f->pend[f->pend_start + (seq - f->P)];
}

size_t ix_pend_len(const ix_fragment *f)
{
	return (size_t)(f->size - f->P);
}

const float *ix_pvec_row(const ix_fragment *f, uint64_t row)
{
	return f->pvec + (size_t)(row - f->pvec_base) * ix_spec_row(&f->spec);
}

/* Room for n more pending records and nv more vector rows, recorded so
 * that ix_view_trim keeps it until the pushes fill it. */
int ix_view_reserve(ix_fragment *f, size_t n, size_t nv)
{
	size_t len = ix_pend_len(f);
	f->resv_pend = f->resv_rows = 0;
	if (f->pend_start && f->pend_start + len + n > f->pend_cap) {
		memmove(f->pend, f->pend + f->pend_start, len * sizeof(*f->pend));
		f->pend_start = 0;
	}
	if (len + n > f->pend_cap) {
		size_t cap = f->pend_cap ? f->pend_cap : 1024;
		while (cap < len + n)
			cap *= 2;
		ix_pend *p = realloc(f->pend, cap * sizeof(*p));
		if (!p)
			return CM_ERR_NOMEM;
		f->pend = p;
		f->pend_cap = cap;
	}
	size_t rows = (size_t)(f->pvec_end - f->pvec_first), skip = (size_t)(f->pvec_first - f->pvec_base);
	size_t d = ix_spec_row(&f->spec);
	if (skip && skip + rows + nv > f->pvec_cap) {
		memmove(f->pvec, f->pvec + skip * d, rows * d * sizeof(float));
		f->pvec_base = f->pvec_first;
		skip = 0;
	}
	if (rows + nv > f->pvec_cap) {
		size_t cap = f->pvec_cap ? f->pvec_cap : 256;
		while (cap < rows + nv)
			cap *= 2;
		float *p = realloc(f->pvec, cap * d * sizeof(float));
		if (!p)
			return CM_ERR_NOMEM;
		f->pvec = p;
		f->pvec_cap = cap;
	}
	f->resv_pend = n;
	f->resv_rows = nv;
	return CM_OK;
}

int ix_pos_reserve(ix_fragment *f, size_t n)
{
	if (n <= f->pos_cap)
		return CM_OK;
	size_t cap = f->pos_cap ? f->pos_cap : 1024;
	while (cap < n)
		cap *= 2;
	uint64_t *d = realloc(f->dead_at, cap * sizeof(*d));
	if (!d)
		return CM_ERR_NOMEM;
	f->dead_at = d;
	size_t had = f->livebits ? f->pos_cap / 8 + 1 : 0;
	uint8_t *b = realloc(f->livebits, cap / 8 + 1);
	if (!b)
		return CM_ERR_NOMEM;
	memset(b + had, 0, cap / 8 + 1 - had);
	f->livebits = b;
	f->pos_cap = cap;
	return CM_OK;
}

void ix_pos_set(ix_fragment *f, size_t pos, uint64_t dead_at)
{
	f->dead_at[pos] = dead_at;
	if (dead_at == IX_NONE)
		f->livebits[pos / 8] |= (uint8_t)(1u << (pos % 8));
	else
		f->livebits[pos / 8] &= (uint8_t)~(1u << (pos % 8));
}

/* The first position from lo on whose label is at least seq (nt if none):
 * an exponential probe from lo, then a binary search of the last step, so a
 * sorted run of seqs costs O(log gap) each, not O(log ntotal). */
static size_t gallop(const int64_t *lab, size_t lo, size_t nt, uint64_t seq)
{
	size_t step = 1, hi = lo;
	while (hi < nt && (uint64_t)lab[hi] < seq) {
		lo = hi + 1;
		hi = lo + step - 1;
		step *= 2;
	}
	if (hi > nt)
		hi = nt;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((uint64_t)lab[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The position labelled seq, or -1. */
long long ix_pos_find(const ix_fragment *f, uint64_t seq)
{
	const int64_t *lab = ix_index_labels(f->index);
	size_t nt = ix_index_size(f->index), p = gallop(lab, 0, nt, seq);
	return p < nt && (uint64_t)lab[p] == seq ? (long long)p : -1;
}

/* Seqs below this have their positions in the index (if they have one);
 * the pending records from it on are searched exactly. */
uint64_t ix_indexed_end(const ix_fragment *f)
{
	return f->part_last == IX_NONE ? f->P : f->part_last + 1;
}

/* Record t superseded or deleted the live version written by s. When
 * loading, positions were marked dead from the current state; the kill by t
 * then says when. */
static void view_kill(ix_fragment *f, uint64_t s, uint64_t t)
{
	if (s >= f->P) {
		ix_pend_at(f, s)->killed_by = t;
		if (s >= ix_indexed_end(f))
			return;
	}
	long long pos = ix_pos_find(f, s);
	if (pos < 0)
		return;
	if (f->dead_at[pos] == IX_NONE)
		f->ndead++;
	ix_pos_set(f, (size_t)pos, t);
}

/* 1 if the version written by seq is current in the view. */
static int view_seq_live(void *arg, uint64_t seq)
{
	const ix_fragment *f = arg;
	if (seq >= f->size)
		return 0;
	if (seq >= f->P) {
		const ix_pend *e = &f->pend[f->pend_start + (seq - f->P)];
		return e->kind == IX_P_UPSERT && e->killed_by == IX_NONE;
	}
	long long pos = ix_pos_find(f, seq);
	return pos >= 0 && f->dead_at[pos] == IX_NONE;
}

size_t ix_view_positions(const ix_fragment *f, const uint64_t *seqs, size_t n, size_t *pos)
{
	const int64_t *lab = ix_index_labels(f->index);
	size_t ntotal = ix_index_size(f->index), npos = 0, p = 0;
	uint64_t end = ix_indexed_end(f);
	for (size_t i = 0; i < n && seqs[i] < end && p < ntotal; i++) {
		p = gallop(lab, p, ntotal, seqs[i]);
		if (p < ntotal && (uint64_t)lab[p] == seqs[i] && f->dead_at[p] == IX_NONE)
			pos[npos++] = p;
	}
	return npos;
}

/* Adds pending record seq == size (the caller reserved room) and applies
 * its kill; vec is the record's vector, prepared here. An upsert's fields
 * go into the postings; the superseded version's stay there (searches check
 * liveness) until enough pile up to compact them away. */
void ix_view_push(ix_fragment *f, uint64_t seq, int kind, int delta, uint64_t prev, int prev_live,
		      const float *vec, const uint8_t *bin, const ix_field *fields, uint32_t nfields)
{
	assert(f->pend_start + ix_pend_len(f) < f->pend_cap);
	ix_pend *e = &f->pend[f->pend_start + ix_pend_len(f)];
	if (f->resv_pend)
		f->resv_pend--;
	e->killed_by = IX_NONE;
	e->kind = (int8_t)kind;
	e->delta = (int8_t)delta;
	e->row = IX_NONE;
	if (kind == IX_P_UPSERT) {
		assert(f->pvec_end - f->pvec_base < f->pvec_cap);
		float *dst = f->pvec + (size_t)(f->pvec_end - f->pvec_base) * ix_spec_row(&f->spec);
		ix_vec_row(&f->spec, vec, bin, dst);
		ix_vec_prepare(&f->spec, dst, 1);
		e->row = f->pvec_end++;
		if (f->resv_rows)
			f->resv_rows--;
	}
	f->size = seq + 1;
	if (kind == IX_P_UPSERT && nfields)
		ix_postings_add(f->post, seq, fields, nfields);
	if (prev_live) {
		view_kill(f, prev, seq);
		ix_postings_kill(f->post, prev);
		if (ix_postings_note_stale(f->post, 1))
			ix_postings_compact(f->post, view_seq_live, f);
	}
}

/* Drops pending entries below the new P (the caller has just covered them),
 * and gives memory back once the tail is much smaller than its buffers (as
 * after replaying a whole log at open). The room an append reserved counts
 * as used: the append fills it after its durable write, without checking. */
void ix_view_trim(ix_fragment *f, uint64_t newP)
{
	f->pend_start += (size_t)(newP - f->P);
	f->P = newP;
	f->pvec_first = f->pvec_end;
	for (size_t i = 0; i < ix_pend_len(f); i++)
		if (f->pend[f->pend_start + i].kind == IX_P_UPSERT) {
			f->pvec_first = f->pend[f->pend_start + i].row;
			break;
		}
	size_t len = ix_pend_len(f), rows = (size_t)(f->pvec_end - f->pvec_first), d = ix_spec_row(&f->spec);
	size_t need = len + f->resv_pend, need_rows = rows + f->resv_rows;
	if (f->pend_cap > 4096 && 4 * need < f->pend_cap) {
		memmove(f->pend, f->pend + f->pend_start, len * sizeof(*f->pend));
		f->pend_start = 0;
		ix_pend *p = realloc(f->pend, (2 * need + 1) * sizeof(*p));
		if (p) {
			f->pend = p;
			f->pend_cap = 2 * need + 1;
		}
	}
	if (f->pvec_cap > 4096 && 4 * need_rows < f->pvec_cap) {
		memmove(f->pvec, f->pvec + (size_t)(f->pvec_first - f->pvec_base) * d, rows * d * sizeof(float));
		f->pvec_base = f->pvec_first;
		float *v = realloc(f->pvec, (2 * need_rows + 1) * d * sizeof(float));
		if (v) {
			f->pvec = v;
			f->pvec_cap = 2 * need_rows + 1;
		}
	}
}

/* Forgets the records from n on (n >= P) and the kills they made. */
void ix_view_cut(ix_fragment *f, uint64_t n)
{
	uint64_t new_end = f->pvec_end;
	for (uint64_t s = n; s < f->size; s++)
		if (ix_pend_at(f, s)->kind == IX_P_UPSERT) {
			new_end = ix_pend_at(f, s)->row;
			break;
		}
	f->pvec_end = new_end;
	f->size = n;
	for (size_t i = 0; i < ix_pend_len(f); i++) {
		ix_pend *e = &f->pend[f->pend_start + i];
		if (e->killed_by != IX_NONE && e->killed_by >= n)
			e->killed_by = IX_NONE;
	}
	size_t np = ix_index_size(f->index);
	for (size_t i = 0; i < np; i++)
		if (f->dead_at[i] != IX_NONE && f->dead_at[i] >= n) {
			ix_pos_set(f, i, IX_NONE);
			f->ndead--;
		}
	/* Compactions may have dropped versions the cut revives: reload, and
	 * keep the live ones (so the live counts are the running view's). On an
	 * error the postings stay disabled and filters read the tables. */
	if (ix_postings_load(f->post, f->wdb, NULL, 0) == CM_OK)
		ix_postings_compact(f->post, view_seq_live, f);
}

void ix_view_free(ix_fragment *f)
{
	ix_index_free(f->index);
	f->index = NULL;
	ix_postings_free(f->post);
	f->post = NULL;
	free(f->dead_at);
	free(f->livebits);
	free(f->pend);
	free(f->pvec);
	f->dead_at = NULL;
	f->livebits = NULL;
	f->pend = NULL;
	f->pvec = NULL;
	f->pos_cap = f->pend_cap = f->pvec_cap = 0;
	f->pend_start = f->resv_pend = f->resv_rows = 0;
	f->ndead = 0;
	f->pvec_base = f->pvec_first = f->pvec_end = 0;
	f->P = f->live_at_P = 0;
	f->part_last = IX_NONE;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Loads the saved index if it is consistent with the first f->size records;
 * CM_ERR_NOTFOUND if there is none or it does not fit. */
static int view_load_saved(ix_fragment *f)
{
	int64_t P, ntotal, live, stand_in;
	char name[PATH_MAX], path[2 * PATH_MAX];
	if (ix_kv_get_text(f->wdb, "index_file", name, sizeof(name)) != CM_OK ||
	    ix_kv_get_int(f->wdb, "index_seq", &P) != CM_OK || ix_kv_get_int(f->wdb, "index_ntotal", &ntotal) != CM_OK ||
	    ix_kv_get_int(f->wdb, "index_live", &live) != CM_OK ||
	    ix_kv_get_int(f->wdb, "index_stand_in", &stand_in) != CM_OK)
		return CM_ERR_NOTFOUND;
	if ((uint64_t)P > f->size || P % f->batch != 0)
		return CM_ERR_NOTFOUND;
	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	ix_index *ix = NULL;
	if (ix_index_load(&f->spec, path, (int)stand_in, &ix, NULL, 0) != CM_OK)
		return CM_ERR_NOTFOUND;
	size_t n = ix_index_size(ix);
	const int64_t *lab = ix_index_labels(ix);
	int ok = n == (size_t)ntotal && live >= 0 && (uint64_t)live <= n;
	for (size_t i = 0; ok && i < n; i++)
		ok = lab[i] >= 0 && lab[i] < P && (i == 0 || lab[i] > lab[i - 1]);
	if (!ok) {
		ix_index_free(ix);
		return CM_ERR_NOTFOUND;
	}
	f->index = ix;
	f->P = (uint64_t)P;
	f->live_at_P = (uint64_t)live;
	f->saved_P = (uint64_t)P;
	return CM_OK;
}

/* Marks positions live when their label is a current version (below P). */
static int view_mark_positions(ix_fragment *f)
{
	size_t n = ix_index_size(f->index), nlive = 0, cap = 1024;
	uint64_t *live = malloc(cap * sizeof(*live));
	sqlite3_stmt *s = NULL;
	int rc = CM_OK;
	if (!live)
		return CM_ERR_NOMEM;
	if (ix_pos_reserve(f, n) != CM_OK) {
		free(live);
		return CM_ERR_NOMEM;
	}
	if (sqlite3_prepare_v2(f->wdb, "SELECT seq FROM state WHERE deleted = 0 AND seq < ?1", -1, &s, NULL) !=
	    SQLITE_OK) {
		free(live);
		return CM_ERR_IO;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)f->P);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (nlive == cap) {
			uint64_t *t = realloc(live, 2 * cap * sizeof(*t));
			if (!t) {
				rc = SQLITE_NOMEM;
				break;
			}
			live = t;
			cap *= 2;
		}
		live[nlive++] = (uint64_t)sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		free(live);
		return rc == SQLITE_NOMEM ? CM_ERR_NOMEM : CM_ERR_IO;
	}
	qsort(live, nlive, sizeof(*live), u64_cmp);
	const int64_t *lab = ix_index_labels(f->index);
	size_t j = 0;
	f->ndead = 0;
	for (size_t i = 0; i < n; i++) {
		while (j < nlive && live[j] < (uint64_t)lab[i])
			j++;
		int alive = j < nlive && live[j] == (uint64_t)lab[i];
		ix_pos_set(f, i, alive ? IX_NONE : 0);
		f->ndead += !alive;
	}
	free(live);
	return CM_OK;
}

/* Reads the records from P to size into the pending view, replaying kills. */
static int view_load_pending(ix_fragment *f)
{
	sqlite3_stmt *s = NULL;
	cm_arena a;
	int rc;
	uint64_t end = f->size;
	f->size = f->P;
	if (ix_view_reserve(f, (size_t)(end - f->P), (size_t)(end - f->P)) != CM_OK)
		return CM_ERR_NOMEM;
	if (sqlite3_prepare_v2(f->wdb, "SELECT seq, applied, prev, delta, leaf FROM log WHERE seq >= ?1 ORDER BY seq",
			       -1, &s, NULL) != SQLITE_OK)
		return CM_ERR_IO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)f->P);
	cm_arena_init(&a, 0);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(s, 0);
		int applied = sqlite3_column_int(s, 1);
		uint64_t prev = sqlite3_column_type(s, 2) == SQLITE_NULL ? IX_NONE : (uint64_t)sqlite3_column_int64(s, 2);
		int delta = sqlite3_column_int(s, 3);
		ix_record r;
		cm_arena_reset(&a);
		if (seq != f->size || ix_record_decode(sqlite3_column_blob(s, 4), (size_t)sqlite3_column_bytes(s, 4),
						       &a, &r, NULL, 0) != CM_OK) {
			rc = SQLITE_CORRUPT;
			break;
		}
		int upsert = r.op != IX_OP_DELETE;
		int kind = !applied ? IX_P_IGNORED : upsert ? IX_P_UPSERT : IX_P_DELETE;
		int prev_live = applied && prev != IX_NONE && (upsert ? delta == 0 : delta == -1);
		ix_view_push(f, seq, kind, delta, prev, prev_live, r.vec, r.bin, NULL, 0);
	}
	sqlite3_finalize(s);
	cm_arena_free(&a);
	if (rc != SQLITE_DONE || f->size != end)
		return CM_ERR_IO;
	return CM_OK;
}

/* Builds the view of the first f->size records: the saved index if it fits,
 * else an empty one that the indexer fills batch by batch. */
int ix_view_load(ix_fragment *f, char *err, size_t errlen)
{
	uint64_t size = f->size;
	int rc, fresh = 0;
	ix_view_free(f);
	f->saved_P = IX_NONE;
	if (view_load_saved(f) != CM_OK) {
	fresh_view:
		fresh = 1;
		ix_view_free(f);
		f->saved_P = IX_NONE;
		f->size = size;
		rc = ix_index_create(&f->spec, ix_spec_needs_training(&f->spec), &f->index, err, errlen);
		if (rc)
			return rc;
	}
	rc = view_mark_positions(f);
	if (rc == CM_OK)
		rc = view_load_pending(f);
	if (rc != CM_OK)
		return ix_errf(rc, err, errlen, "loading the fragment's state failed");
	/* The saved index must agree with the log: as many positions dead as of
	 * P as the live count says. */
	size_t n = ix_index_size(f->index), dead_P = 0;
	for (size_t i = 0; i < n; i++)
		dead_P += f->dead_at[i] < f->P;
	if (!fresh && (uint64_t)(n - dead_P) != f->live_at_P)
		goto fresh_view;
	/* The postings of every indexed version, from the metadata tables. */
	f->post = ix_postings_new((size_t)f->opt.postings_max_bytes);
	if (!f->post)
		return ix_errf(CM_ERR_NOMEM, err, errlen, "out of memory for the filter postings");
	/* on an error filters read the tables; the live ones kept, as above */
	if (ix_postings_load(f->post, f->wdb, NULL, 0) == CM_OK)
		ix_postings_compact(f->post, view_seq_live, f);
	return CM_OK;
}

/* The log size the view holds. */
uint64_t ix_fragment_size(ix_fragment *f)
{
	pthread_rwlock_rdlock(&f->lk);
	uint64_t n = f->size;
	pthread_rwlock_unlock(&f->lk);
	return n;
}

uint64_t ix_fragment_backlog(ix_fragment *f)
{
	pthread_rwlock_rdlock(&f->lk);
	uint64_t whole = f->size / f->batch * f->batch, done = ix_indexed_end(f);
	pthread_rwlock_unlock(&f->lk);
	return whole > done ? whole - done : 0;
}
