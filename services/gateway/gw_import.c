/* Import: the gateway reads a source itself (an http(s):// or s3:// URL,
 * and file:// when the operator allows it: import_schemes) in fvecs, npy
 * or jsonl, streams it in batches of batch_size rows (never the whole
 * source) through the write path every Upsert takes (gw_write.c) at the
 * requested consistency level, and sends an ImportProgress after each
 * acknowledged batch, then one with the summary.
 *
 * No duplicates, no loss: row r gets the id the muri command's import gives
 * it (cm_import_row_id of the collection, the source's file name and r; a
 * jsonl row may name its own), so writing a batch again replaces the same
 * records. The rows done per (collection generation, source, format) are
 * remembered after each acknowledged batch, in memory and for at most
 * import_resume_max imports: the same Import called again after an
 * interruption (a cancelled stream, a failed batch) resumes there; one the
 * gateway forgot (restarted) starts again at row 0 and rewrites the same
 * ids. Each stream runs on a thread of its own; the RPC server's
 * rpc_max_streams bounds how many run at once. The call's memory is
 * released after every batch, so a stream holds one batch at a time. */
#include "gw.h"
#include "cm_arena.h"
#include "cm_err.h"
#include "cm_formats.h"
#include "cm_json.h"
#include "cm_log.h"
#include "cm_time.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GW_IMPORT_BATCH_DEFAULT 1000
#define GW_IMPORT_BATCH_MAX 10000
#define GW_IMPORT_SOURCE_MAX 4096 /* bytes of a source URL */

/* ---- where interrupted imports stopped ---- */

struct resume {
	uint8_t key[16];
	uint64_t rows, byte, used_ms;
};

/* import_resume_max entries, made on first use and kept for the process */
static struct resume *resumes;
static size_t nresumes;
static pthread_mutex_t resume_mu = PTHREAD_MUTEX_INITIALIZER;

static void resume_key(uint8_t key[16], const char *collection, uint64_t gen, const char *source, int fmt)
{
	crypto_generichash_state st;
	uint8_t g[8] = {0}, f = (uint8_t)fmt;
	for (int i = 0; i < 8; i++)
		g[i] = (uint8_t)(gen >> (56 - 8 * i));
	crypto_generichash_init(&st, NULL, 0, 16);
	crypto_generichash_update(&st, (const uint8_t *)collection, strlen(collection) + 1);
	crypto_generichash_update(&st, g, sizeof(g));
	crypto_generichash_update(&st, (const uint8_t *)source, strlen(source) + 1);
	crypto_generichash_update(&st, &f, 1);
	crypto_generichash_final(&st, key, 16);
}

/* Under resume_mu: the table, made on first use; 0 when out of memory
 * (imports then start at row 0, which is still correct). */
static size_t resume_table(const gw_ctx *g)
{
	if (!resumes && (resumes = calloc((size_t)g->cfg->import_resume_max, sizeof(*resumes))))
		nresumes = (size_t)g->cfg->import_resume_max;
	return nresumes;
}

static void resume_get(const gw_ctx *g, const uint8_t key[16], uint64_t *rows, uint64_t *byte)
{
	pthread_mutex_lock(&resume_mu);
	*rows = *byte = 0;
	for (size_t i = 0, n = resume_table(g); i < n; i++)
		if (resumes[i].used_ms && !memcmp(resumes[i].key, key, 16)) {
			*rows = resumes[i].rows;
			*byte = resumes[i].byte;
		}
	pthread_mutex_unlock(&resume_mu);
}

/* rows 0: forget it (the import completed). The oldest entry makes room. */
static void resume_put(const gw_ctx *g, const uint8_t key[16], uint64_t rows, uint64_t byte)
{
	pthread_mutex_lock(&resume_mu);
	size_t n = resume_table(g), at = n, oldest = 0;
	for (size_t i = 0; i < n; i++) {
		if (resumes[i].used_ms && !memcmp(resumes[i].key, key, 16))
			at = i;
		if (resumes[i].used_ms < resumes[oldest].used_ms)
			oldest = i;
	}
	if (!rows) {
		if (at < n)
			memset(&resumes[at], 0, sizeof(resumes[at]));
	} else if (n) {
		if (at == n)
			at = oldest;
		memcpy(resumes[at].key, key, 16);
		resumes[at].rows = rows;
		resumes[at].byte = byte;
		resumes[at].used_ms = cm_now_ms() | 1;
	}
	pthread_mutex_unlock(&resume_mu);
}

/* ---- the request ---- */

/* 1 when scheme is in the comma-separated list. */
static int scheme_allowed(const char *list, const char *scheme)
{
	size_t n = strlen(scheme);
	for (const char *p = list; p && *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t l = strcspn(p, ", ");
		if (l == n && !strncasecmp(p, scheme, n))
			return 1;
		p += l;
	}
	return 0;
}

/* The source URL's scheme into scheme; the gRPC status for a bad one. */
static int check_source(gw_ctx *g, cm_rpc_call *call, const char *src)
{
	if (!src || !*src)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "source: empty; expected an http://, https://, s3:// or file:// URL");
	if (strlen(src) > GW_IMPORT_SOURCE_MAX)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "source: longer than %d bytes", GW_IMPORT_SOURCE_MAX);
	const char *sep = strstr(src, "://");
	char scheme[16] = "";
	if (sep && sep > src && (size_t)(sep - src) < sizeof(scheme))
		memcpy(scheme, src, (size_t)(sep - src));
	if (!scheme[0] || !sep[3])
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "source: \"%.200s\" is not a URL (expected http://, https://, s3:// or file://)", src);
	if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https") && strcasecmp(scheme, "s3") &&
	    strcasecmp(scheme, "file"))
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "source: unsupported scheme %s (http, https, s3 or file)", scheme);
	if (!scheme_allowed(g->cfg->import_schemes, scheme))
		return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
				   "source: this gateway does not import from %s:// URLs (its import_schemes: %s)", scheme,
				   g->cfg->import_schemes);
	return GRPC_STATUS_OK;
}

typedef struct imp {
	char collection[GW_NAME_MAX + 1];
	char source[GW_IMPORT_SOURCE_MAX + 1];
	char ns[1024];
	int level;
	size_t batch;
	cm_reader r;
	float *vecs;
	char (*ids)[37];
	char **idp;
	Muri__V1__Vector *vv, **vp;
	Muri__V1__Metadata **mp;
} imp;

static void imp_free(imp *m)
{
	cm_reader_close(&m->r);
	for (size_t i = 0; m->mp && i < m->batch; i++)
		cm_json_metadata_free(m->mp[i]);
	free(m->vecs);
	free(m->ids);
	free(m->idp);
	free(m->vv);
	free(m->vp);
	free(m->mp);
	free(m);
}

static int progress(cm_rpc_call *call, uint64_t done, uint64_t total, Muri__V1__WriteResponse *summary)
{
	Muri__V1__ImportProgress p = MURI__V1__IMPORT_PROGRESS__INIT;
	p.imported = done;
	p.total = total;
	p.summary = summary;
	return cm_rpc_stream_send(call, &p.base);
}

/* Reads and writes batches from m->r.start_row; the gRPC status. */
static int run(gw_ctx *g, cm_rpc_call *call, imp *m, const uint8_t key[16], uint64_t *done)
{
	cm_reader *r = &m->r;
	uint64_t total = r->total;
	for (;;) {
		size_t n = 0, with_meta = 0;
		int rd = 1;
		while (n < m->batch) {
			rd = cm_reader_next(r, *done + n, m->vecs + n * r->dim, m->ids[n], &m->mp[n]);
			if (rd <= 0)
				break;
			if (!m->ids[n][0])
				cm_import_row_id(m->ids[n], m->collection, m->ns, *done + n);
			with_meta += m->mp[n] != NULL;
			n++;
		}
		if (rd < 0)
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "source: %s (rows before it were imported)",
					   r->err);
		int code = GRPC_STATUS_OK;
		if (n) {
			Muri__V1__Metadata empty = MURI__V1__METADATA__INIT;
			for (size_t i = 0; i < n; i++) {
				muri__v1__vector__init(&m->vv[i]);
				m->vv[i].values = m->vecs + i * r->dim;
				m->vv[i].n_values = r->dim;
				m->vp[i] = &m->vv[i];
				m->idp[i] = m->ids[i];
				if (!m->mp[i] && with_meta)
					m->mp[i] = &empty;
			}
			Muri__V1__UpsertRequest u = MURI__V1__UPSERT_REQUEST__INIT;
			u.collection = m->collection;
			u.ids = m->idp;
			u.n_ids = n;
			u.vectors = m->vp;
			u.n_vectors = n;
			u.metadata = with_meta ? m->mp : NULL;
			u.n_metadata = with_meta ? n : 0;
			u.consistency_level = m->level;
			u.timeout_ms = (uint32_t)g->cfg->import_batch_timeout_ms;
			ProtobufCMessage *resp = NULL;
			code = gw_import_upsert(g, call, &u, &resp);
			for (size_t i = 0; i < n; i++) {
				if (m->mp[i] != &empty)
					cm_json_metadata_free(m->mp[i]);
				m->mp[i] = NULL;
			}
			/* what the batch allocated in the call goes with it (the request
			 * was copied out before the first batch) */
			cm_arena_reset(cm_rpc_arena(call));
			if (code != GRPC_STATUS_OK)
				return code; /* the write path's status names the fragments */
			*done += n;
			resume_put(g, key, *done, r->byte);
			if (progress(call, *done, total, NULL) != CM_OK || cm_rpc_cancelled(call))
				return cm_rpc_fail(call, GRPC_STATUS_CANCELLED, "the import was cancelled after row %llu",
						   (unsigned long long)*done);
		}
		if (rd == 0 || !n)
			return GRPC_STATUS_OK;
	}
}

int gw_h_import(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg)
{
	gw_ctx *g = arg;
	const Muri__V1__ImportRequest *q = (const Muri__V1__ImportRequest *)msg;
	char err[GW_ERR_MAX] = "";
	if (gw_valid_name(q->collection, "collection", err, sizeof(err)) != CM_OK ||
	    gw_valid_level(q->consistency_level, "consistency_level", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_caller who;
	int code = gw_authorize(g, call, NULL, q->collection, GW_NEED_WRITE, &who);
	if (code != GRPC_STATUS_OK)
		return code;
	code = check_source(g, call, q->source);
	if (code != GRPC_STATUS_OK)
		return code;
	size_t bmax = (size_t)g->cfg->max_batch < GW_IMPORT_BATCH_MAX ? (size_t)g->cfg->max_batch : GW_IMPORT_BATCH_MAX;
	if (q->batch_size > bmax)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "batch_size: %u, expected 1..%zu (0: %d)", q->batch_size,
				   bmax, GW_IMPORT_BATCH_DEFAULT);
	uint32_t batch_asked = q->batch_size;
	imp *m = calloc(1, sizeof(*m));
	if (!m)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	/* the request lives in the call's memory, which each batch releases */
	snprintf(m->collection, sizeof(m->collection), "%s", q->collection);
	snprintf(m->source, sizeof(m->source), "%s", q->source);
	m->level = q->consistency_level;
	m->batch = q->batch_size ? q->batch_size : (GW_IMPORT_BATCH_DEFAULT < bmax ? GW_IMPORT_BATCH_DEFAULT : bmax);
	cm_src_name(m->source, m->ns, sizeof(m->ns));
	cm_reader *r = &m->r;
	r->source = m->source;
	r->chunk = (size_t)g->cfg->import_range_bytes;
	switch (q->format) {
	case MURI__V1__IMPORT_FORMAT__IMPORT_FORMAT_UNSPECIFIED:
		r->fmt = cm_fmt_guess(m->ns);
		if (r->fmt < 0) {
			code = cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
					   "format: cannot tell the format of \"%.200s\" from its name; give FVECS, NPY or JSONL",
					   m->ns);
			imp_free(m);
			return code;
		}
		break;
	case MURI__V1__IMPORT_FORMAT__FVECS:
		r->fmt = CM_FMT_FVECS;
		break;
	case MURI__V1__IMPORT_FORMAT__NPY:
		r->fmt = CM_FMT_NPY;
		break;
	case MURI__V1__IMPORT_FORMAT__JSONL:
		r->fmt = CM_FMT_JSONL;
		break;
	default:
		imp_free(m);
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "format: unknown format %d (FVECS, NPY or JSONL)",
				   (int)q->format);
	}
	q = NULL;
	gw_coll *c = NULL;
	if ((code = gw_coll_get(g, call, "collection", m->collection, &c)) != GRPC_STATUS_OK) {
		imp_free(m);
		return code;
	}
	uint32_t cdim = c->dim;
	if (c->metric == MURI__V1__METRIC__HAMMING) {
		code = cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "collection: \"%s\" holds binary vectors (HAMMING); Import reads float rows "
				   "(fvecs, npy, jsonl): write its codes with Insert or Upsert (Vector.binary)",
				   m->collection);
		gw_coll_free(c);
		imp_free(m);
		return code;
	}
	uint8_t key[16];
	resume_key(key, m->collection, c->gen, m->source, r->fmt);
	gw_coll_free(c);
	if (r->fmt != CM_FMT_JSONL && cm_reader_header(r) != 0) {
		code = cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "source: %s", r->err);
		imp_free(m);
		return code;
	}
	if (r->dim && r->dim != cdim) {
		code = cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "source: %zu-d rows, collection \"%s\" is %u-d",
				   r->dim, m->collection, cdim);
		imp_free(m);
		return code;
	}
	r->dim = cdim; /* jsonl rows must have it too */
	/* a batch goes to a fragment's primary in one message: the default
	 * shrinks to what fits at this dimension, a batch_size asked must fit */
	if (batch_asked && gw_valid_vectors_fit(batch_asked, cdim, g->cfg->base.rpc_max_message, "batch_size", "rows",
						err, sizeof(err)) != CM_OK) {
		imp_free(m);
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	}
	size_t fit = gw_vectors_per_message(cdim, g->cfg->base.rpc_max_message);
	if (m->batch > fit)
		m->batch = fit ? fit : 1;
	uint64_t start = 0, byte = 0;
	resume_get(g, key, &start, &byte);
	r->start_row = start;
	r->byte = byte;
	m->vecs = malloc(m->batch * cdim * sizeof(float) + 64);
	m->ids = malloc(m->batch * 37);
	m->idp = malloc(m->batch * sizeof(char *));
	m->vv = calloc(m->batch, sizeof(*m->vv));
	m->vp = calloc(m->batch, sizeof(*m->vp));
	m->mp = calloc(m->batch, sizeof(*m->mp));
	if (!m->vecs || !m->ids || !m->idp || !m->vv || !m->vp || !m->mp) {
		code = cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for batches of %zu rows", m->batch);
		imp_free(m);
		return code;
	}
	if (cm_reader_open(r, NULL) != 0) {
		code = cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "source: %s", r->err);
		imp_free(m);
		return code;
	}
	cm_info("import_start", "collection=%s source=\"%.200s\" resume_row=%llu batch=%zu", m->collection, m->ns,
		(unsigned long long)start, m->batch);
	uint64_t t0 = cm_now_ms(), done = start;
	code = run(g, call, m, key, &done);
	if (code == GRPC_STATUS_OK) {
		resume_put(g, key, 0, 0);
		char text[256];
		snprintf(text, sizeof(text), "imported %llu rows into %s in %.1f s", (unsigned long long)done,
			 m->collection, (double)(cm_now_ms() - t0) / 1000.0);
		if (start)
			snprintf(text + strlen(text), sizeof(text) - strlen(text), "; resumed after row %llu",
				 (unsigned long long)start);
		Muri__V1__WriteResponse s = MURI__V1__WRITE_RESPONSE__INIT;
		s.status = MURI__V1__WRITE_STATUS__SUCCESS;
		s.message = text;
		s.timestamp_ms = cm_wall_ms();
		if (progress(call, done, r->total ? r->total : done, &s) != CM_OK)
			code = cm_rpc_fail(call, GRPC_STATUS_CANCELLED, "the import was cancelled at its end");
	}
	cm_info("import_end", "collection=%s source=\"%.200s\" rows=%llu code=%d", m->collection, m->ns,
		(unsigned long long)done, code);
	imp_free(m);
	return code;
}
