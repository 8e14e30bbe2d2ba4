/* The background indexer of a fragment: adds each batch of the log to the
 * FAISS index, trains and rebuilds it when the log says so, saves it, and
 * pauses for truncations. One thread per fragment; see ix_fragment_int.h. */
#include "ix_fragment_int.h"
#include "cm_time.h"
#include "cm_err.h"
#include "cm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void ix_indexer_pause(ix_fragment *f)
{
	pthread_mutex_lock(&f->imu);
	f->pause_req++;
	pthread_cond_broadcast(&f->icv);
	while (f->thr_running && !f->paused)
		pthread_cond_wait(&f->icv, &f->imu);
	pthread_mutex_unlock(&f->imu);
}

void ix_indexer_resume(ix_fragment *f)
{
	pthread_mutex_lock(&f->imu);
	f->pause_req--;
	f->kick = 1;
	f->idle_at = IX_NONE;
	pthread_cond_broadcast(&f->icv);
	pthread_mutex_unlock(&f->imu);
}

void ix_indexer_kick(ix_fragment *f)
{
	pthread_mutex_lock(&f->imu);
	f->kick = 1;
	f->idle_at = IX_NONE;
	pthread_cond_broadcast(&f->icv);
	pthread_mutex_unlock(&f->imu);
}

/* 1 if the indexer should drop what it is doing. */
static int indexer_yield(ix_fragment *f)
{
	pthread_mutex_lock(&f->imu);
	int y = f->stop || f->pause_req;
	pthread_mutex_unlock(&f->imu);
	return y;
}

static void index_fail(ix_fragment *f, const char *what, const char *why)
{
	pthread_mutex_lock(&f->imu);
	f->index_failed = 1;
	snprintf(f->index_error, sizeof(f->index_error), "%.40s: %.200s", what, why);
	pthread_cond_broadcast(&f->icv);
	pthread_mutex_unlock(&f->imu);
}

/* Adds batch [P, P+B): an HNSW over exact storage in blocks of
 * IX_INDEX_BLOCK, each planned without the lock (only this thread changes the
 * index; searches go on) and committed under the write lock; another HNSW
 * vector by vector, a few per hold of the write lock (the part added so far
 * is excluded from the exact tail); others at once. */
static int add_batch(ix_fragment *f)
{
	char why[IX_ERRLEN];
	uint64_t P = f->P, end = P + f->batch;
	size_t d = ix_spec_row(&f->spec), n = 0;
	int delta = 0, rc = CM_OK;
	float *x = malloc((size_t)f->batch * d * sizeof(float));
	int64_t *labels = malloc(f->batch * sizeof(int64_t));
	if (!x || !labels) {
		free(x);
		free(labels);
		index_fail(f, "adding a batch", "out of memory");
		return CM_ERR_NOMEM;
	}
	pthread_rwlock_rdlock(&f->lk);
	for (uint64_t s = P; s < end; s++) {
		const ix_pend *e = ix_pend_at(f, s);
		delta += e->delta;
		/* Superseded inside its own batch: never indexed. Later kills are
		 * tombstones (decided below, under the write lock). */
		if (e->kind != IX_P_UPSERT || e->killed_by < end)
			continue;
		memcpy(x + n * d, ix_pvec_row(f, e->row), d * sizeof(float));
		labels[n++] = (int64_t)s;
	}
	pthread_rwlock_unlock(&f->lk);
	int blocks = ix_index_blocks(f->index);
	int one_by_one = !blocks && f->spec.kind == IX_HNSW && !ix_index_is_stand_in(f->index);
	size_t i = 0;
	do {
		size_t pm = blocks ? (n - i < IX_INDEX_BLOCK ? n - i : IX_INDEX_BLOCK) : 0;
		if (pm)
			rc = ix_index_prepare(f->index, pm, x + i * d, f->seed, why, sizeof(why));
		pthread_rwlock_wrlock(&f->lk);
		long long t0 = (long long)cm_now_us();
		if (rc == CM_OK)
			rc = ix_pos_reserve(f, ix_index_size(f->index) + (n - i));
		while (rc == CM_OK && i < n) {
			size_t m = blocks ? pm : one_by_one ? 1 : n - i, base = ix_index_size(f->index);
			rc = blocks ? ix_index_commit(f->index, labels + i, why, sizeof(why))
				    : ix_index_add(f->index, m, x + i * d, labels + i, f->seed, why, sizeof(why));
			if (rc != CM_OK)
				break;
			for (size_t j = 0; j < m; j++) {
				uint64_t k = ix_pend_at(f, (uint64_t)labels[i + j])->killed_by;
				ix_pos_set(f, base + j, k);
				f->ndead += k != IX_NONE;
			}
			i += m;
			f->part_last = (uint64_t)labels[i - 1];
			if (blocks || (long long)cm_now_us() - t0 >= IX_HOLD_US)
				break;
		}
		if (rc == CM_OK && i == n) {
			f->live_at_P = (uint64_t)((int64_t)f->live_at_P + delta);
			f->part_last = IX_NONE;
			ix_view_trim(f, end);
		}
		pthread_rwlock_unlock(&f->lk);
	} while (rc == CM_OK && i < n);
	free(x);
	free(labels);
	if (rc != CM_OK)
		index_fail(f, "adding a batch", rc == CM_ERR_NOMEM ? "out of memory" : why);
	return rc;
}

/* Rebuilds the index from the vectors live as of P (training it if it is
 * trainable and enough are live). Returns CM_ERR_CANCELLED if interrupted. */
static int rebuild(ix_fragment *f)
{
	char why[IX_ERRLEN] = "out of memory";
	uint64_t P = f->P;
	size_t d = ix_spec_row(&f->spec), n = 0;
	uint64_t *seqs = NULL;
	float *x = NULL;
	ix_index *nx = NULL;
	cm_arena a;
	int rc = CM_OK;

	pthread_rwlock_rdlock(&f->lk);
	size_t total = ix_index_size(f->index);
	const int64_t *lab = ix_index_labels(f->index);
	seqs = malloc((total ? total : 1) * sizeof(*seqs));
	if (seqs)
		for (size_t i = 0; i < total; i++)
			if (f->dead_at[i] >= P)
				seqs[n++] = (uint64_t)lab[i];
	pthread_rwlock_unlock(&f->lk);
	if (!seqs)
		goto fail;
	x = malloc((n ? n : 1) * d * sizeof(float));
	if (!x)
		goto fail;
	cm_arena_init(&a, 0);
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		ix_record r;
		cm_arena_reset(&a);
		rc = ix_read_leaf(f->idb, seqs[i], &a, &r);
		if (rc == CM_OK && r.dim == f->spec.dim && (r.bin != NULL) == (f->spec.metric == IX_HAMMING))
			ix_vec_row(&f->spec, r.vec, r.bin, x + i * d);
		else if (rc == CM_OK)
			rc = CM_ERR_INTERNAL;
		if (i % 4096 == 0 && indexer_yield(f))
			rc = CM_ERR_CANCELLED;
	}
	cm_arena_free(&a);
	if (rc != CM_OK) {
		snprintf(why, sizeof(why), "reading vectors from the log failed");
		goto fail;
	}
	ix_vec_prepare(&f->spec, x, n);
	int stand_in = ix_spec_needs_training(&f->spec) && n < f->train_min;
	if ((rc = ix_index_create(&f->spec, stand_in, &nx, why, sizeof(why))) != CM_OK)
		goto fail;
	if (!stand_in && ix_spec_needs_training(&f->spec)) {
		/* A strided sample, so that the same live set trains the same. */
		size_t m = n < f->opt.train_max ? n : f->opt.train_max;
		float *t = m == n ? x : malloc(m * d * sizeof(float));
		if (!t) {
			rc = CM_ERR_NOMEM;
			goto fail;
		}
		if (t != x)
			for (size_t i = 0; i < m; i++)
				memcpy(t + i * d, x + (size_t)((double)i * n / m) * d, d * sizeof(float));
		rc = ix_index_train(nx, m, t, why, sizeof(why));
		if (t != x)
			free(t);
		if (rc != CM_OK)
			goto fail;
	}
	for (size_t i = 0; i < n && rc == CM_OK; i += f->batch) {
		size_t m = n - i < f->batch ? n - i : f->batch;
		int64_t *labels = malloc(m * sizeof(*labels));
		if (!labels) {
			rc = CM_ERR_NOMEM;
			break;
		}
		for (size_t j = 0; j < m; j++)
			labels[j] = (int64_t)seqs[i + j];
		rc = ix_index_add(nx, m, x + i * d, labels, f->seed, why, sizeof(why));
		free(labels);
		if (rc == CM_OK && indexer_yield(f))
			rc = CM_ERR_CANCELLED;
	}
	if (rc != CM_OK)
		goto fail;
	if (n != f->live_at_P) {
		snprintf(why, sizeof(why), "%zu vectors live as of seq %llu, the log says %llu", n,
			 (unsigned long long)P, (unsigned long long)f->live_at_P);
		rc = CM_ERR_INTERNAL;
		goto fail;
	}
	/* Swap: carry each kept position's tombstone over from the old index. */
	pthread_rwlock_wrlock(&f->lk);
	uint64_t *dead = malloc((n ? n : 1) * sizeof(*dead));
	uint8_t *bits = calloc(n / 8 + 1, 1);
	if (!dead || !bits) {
		pthread_rwlock_unlock(&f->lk);
		free(dead);
		free(bits);
		rc = CM_ERR_NOMEM;
		goto fail;
	}
	lab = ix_index_labels(f->index);
	size_t j = 0, ndead = 0;
	for (size_t i = 0; i < n; i++) {
		while ((uint64_t)lab[j] < seqs[i])
			j++;
		dead[i] = f->dead_at[j];
		if (dead[i] == IX_NONE)
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
		else
			ndead++;
	}
	ix_index *old = f->index;
	f->index = nx;
	free(f->dead_at);
	free(f->livebits);
	f->dead_at = dead;
	f->livebits = bits;
	f->pos_cap = n ? n : 1; /* dead_at holds pos_cap, livebits pos_cap / 8 + 1 */
	f->ndead = ndead;
	f->rebuilds++;
	pthread_rwlock_unlock(&f->lk);
	ix_index_free(old);
	free(seqs);
	free(x);
	return CM_OK;
fail:
	ix_index_free(nx);
	free(seqs);
	free(x);
	if (rc == CM_ERR_CANCELLED)
		return rc;
	index_fail(f, "rebuilding the index", why);
	return rc ? rc : CM_ERR_NOMEM;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return CM_ERR_IO;
	int rc = fsync(fd) == 0 ? CM_OK : CM_ERR_IO;
	close(fd);
	return rc;
}

/* Saves the index with the seq it covers. Called by the indexer thread, or
 * with the indexer stopped or paused. */
int ix_indexer_save(ix_fragment *f, char *err, size_t errlen)
{
	char name[64], path[2 * PATH_MAX], tmp[2 * PATH_MAX + 8], old[2 * PATH_MAX];
	uint64_t P = f->P;
	snprintf(name, sizeof(name), IX_INDEX_PREFIX "%llu" IX_INDEX_SUFFIX, (unsigned long long)P);
	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int rc = ix_index_save(f->index, tmp, err, errlen);
	if (rc == CM_OK && (rename(tmp, path) != 0 || fsync_dir(f->dir) != CM_OK))
		rc = ix_errf(CM_ERR_IO, err, errlen, "%s: %s", path, strerror(errno));
	if (rc != CM_OK) {
		unlink(tmp);
		return rc;
	}
	pthread_mutex_lock(&f->wmu);
	snprintf(old, sizeof(old), "%s/%s", f->dir, f->index_file);
	int had_old = f->index_file[0] && strcmp(f->index_file, name) != 0;
	if (ix_sql_exec(f->wdb, "BEGIN IMMEDIATE", NULL, 0) != CM_OK || ix_kv_put_text(&f->ws, "index_file", name) != CM_OK ||
	    ix_kv_put_int(&f->ws, "index_seq", (int64_t)P) != CM_OK ||
	    ix_kv_put_int(&f->ws, "index_ntotal", (int64_t)ix_index_size(f->index)) != CM_OK ||
	    ix_kv_put_int(&f->ws, "index_live", (int64_t)f->live_at_P) != CM_OK ||
	    ix_kv_put_int(&f->ws, "index_stand_in", ix_index_is_stand_in(f->index)) != CM_OK ||
	    ix_sql_exec(f->wdb, "COMMIT", NULL, 0) != CM_OK) {
		ix_sql_exec(f->wdb, "ROLLBACK", NULL, 0);
		pthread_mutex_unlock(&f->wmu);
		unlink(path);
		return ix_errf(CM_ERR_IO, err, errlen, "sqlite: recording the saved index failed");
	}
	snprintf(f->index_file, sizeof(f->index_file), "%s", name);
	pthread_mutex_lock(&f->imu);
	f->saved_P = P;
	pthread_mutex_unlock(&f->imu);
	pthread_mutex_unlock(&f->wmu);
	if (had_old)
		unlink(old);
	f->last_save_ms = (long long)cm_now_ms();
	return CM_OK;
}

enum step { STEP_IDLE, STEP_WORK };

static enum step indexer_step(ix_fragment *f, uint64_t *observed)
{
	pthread_rwlock_rdlock(&f->lk);
	uint64_t size = f->size, P = f->P;
	size_t ntotal = ix_index_size(f->index);
	int train = ix_index_is_stand_in(f->index) && ix_spec_needs_training(&f->spec) &&
		    f->live_at_P >= f->train_min;
	uint64_t dead_P = ntotal - f->live_at_P;
	int tomb = ntotal > 0 && dead_P > 0 && (double)dead_P > f->opt.tombstone_share * (double)ntotal;
	int broken = f->broken;
	pthread_rwlock_unlock(&f->lk);
	*observed = size;
	if (broken || f->index_failed)
		return STEP_IDLE;
	if (train || tomb)
		return rebuild(f) == CM_OK ? STEP_WORK : STEP_IDLE;
	if (f->opt.persist_interval_ms && P != f->saved_P && P > 0 &&
	    (long long)cm_now_ms() - f->last_save_ms >= f->opt.persist_interval_ms) {
		if (ix_indexer_save(f, NULL, 0) != CM_OK)
			f->last_save_ms = (long long)cm_now_ms(); /* retry after another interval */
		return STEP_WORK;
	}
	if (size >= P + f->batch)
		return add_batch(f) == CM_OK ? STEP_WORK : STEP_IDLE;
	return STEP_IDLE;
}

/* Gives the heap's free memory back to the system, at most once per
 * interval_ms in the process (every fragment's indexer shares it); 1 if it
 * did or never will (interval 0). A large Write leaves tens of MiB free in
 * glibc's arenas (its records' buffers, fragmented between live blocks),
 * which glibc keeps resident: only the top of an arena is trimmed on free. */
static int trim_heap(uint32_t interval_ms)
{
	static _Atomic long long last;
	if (!interval_ms)
		return 1;
	long long now = (long long)cm_now_ms(), was = atomic_load(&last);
	if (now - was < (long long)interval_ms || !atomic_compare_exchange_strong(&last, &was, now))
		return 0;
	malloc_trim(0);
	return 1;
}

void *ix_indexer_main(void *arg)
{
	ix_fragment *f = arg;
	/* One OpenMP thread for faiss's adds and training (faiss's HNSW built
	 * by several is not deterministic); an HNSW block is planned on
	 * ix_index_build_threads() threads, deterministically. This sets only
	 * this thread's OpenMP team size. */
	omp_set_num_threads(1);
	/* background work: the build threads this thread starts inherit it */
	if (f->opt.index_nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), (int)f->opt.index_nice) != 0)
		cm_warn("index_nice", "value=%u err=\"%s\"", f->opt.index_nice, strerror(errno));
	int worked = 0; /* since the last trim */
	pthread_mutex_lock(&f->imu);
	for (;;) {
		if (f->stop)
			break;
		if (f->pause_req) {
			f->paused = 1;
			pthread_cond_broadcast(&f->icv);
			while (f->pause_req && !f->stop)
				pthread_cond_wait(&f->icv, &f->imu);
			f->paused = 0;
			continue;
		}
		f->kick = 0;
		pthread_mutex_unlock(&f->imu);
		uint64_t observed = IX_NONE;
		enum step s = indexer_step(f, &observed);
		pthread_mutex_lock(&f->imu);
		if (s == STEP_WORK) {
			worked = 1;
			pthread_cond_broadcast(&f->icv);
			continue;
		}
		if (worked && !f->kick) {
			/* caught up: what the writes and the build freed goes back */
			pthread_mutex_unlock(&f->imu);
			worked = !trim_heap(f->opt.trim_interval_ms);
			pthread_mutex_lock(&f->imu);
		}
		if (!f->kick) {
			f->idle_at = observed;
			pthread_cond_broadcast(&f->icv);
			uint64_t until = cm_now_ms() + 1000;
			while (!f->kick && !f->stop && !f->pause_req) {
				uint64_t now = cm_now_ms();
				if (now >= until || cm_cond_wait_ms(&f->icv, &f->imu, until - now) != 0)
					break;
			}
			f->idle_at = IX_NONE;
		}
	}
	f->paused = 1;
	pthread_cond_broadcast(&f->icv);
	pthread_mutex_unlock(&f->imu);
	return NULL;
}

int ix_fragment_wait_indexed(ix_fragment *f, int timeout_ms)
{
	long long deadline = (long long)cm_now_ms() + timeout_ms;
	pthread_mutex_lock(&f->imu);
	for (;;) {
		if (f->index_failed) {
			pthread_mutex_unlock(&f->imu);
			return CM_ERR_STATE;
		}
		uint64_t idle = f->idle_at;
		if (idle != IX_NONE) {
			pthread_mutex_unlock(&f->imu);
			uint64_t size = ix_fragment_size(f);
			pthread_mutex_lock(&f->imu);
			if (f->idle_at == size)
				break;
		}
		long long left = deadline - (long long)cm_now_ms();
		if (left <= 0) {
			pthread_mutex_unlock(&f->imu);
			return CM_ERR_TIMEOUT;
		}
		cm_cond_wait_ms(&f->icv, &f->imu, (uint64_t)(left < 50 ? left : 50));
	}
	pthread_mutex_unlock(&f->imu);
	return CM_OK;
}

int ix_fragment_save_index(ix_fragment *f, char *err, size_t errlen)
{
	int rc = CM_OK;
	ix_indexer_pause(f);
	if (f->broken)
		rc = ix_fragment_broken(f, err, errlen);
	else if (f->index_failed)
		rc = ix_errf(CM_ERR_STATE, err, errlen, "the indexer stopped: %s", f->index_error);
	else if (f->P != f->saved_P && f->P > 0)
		rc = ix_indexer_save(f, err, errlen);
	ix_indexer_resume(f);
	return rc;
}
