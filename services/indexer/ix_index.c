/* Index specs and the FAISS index of a fragment through the faiss C API
 * (factory strings, training, adds, persistence), with ix_faiss_ext for
 * selector searches and deterministic HNSW levels. */
#include "ix_index.h"
#include "ix_faiss_ext.h"
#include "ix_faiss_binary.h"
#include "ix_record.h"
#include "cm_answer.h"
#include "cm_err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>

struct ix_index {
	FaissIndex *fi; /* IndexIDMap over the sub-index; NULL for HAMMING */
	ix_bin_index *bin; /* HAMMING: the binary index (ix_faiss_binary) */
	ix_faiss_adder *adder;
	ix_spec spec;
	int stand_in;
};

static int faiss_fail(char *err, size_t errlen, const char *what)
{
	const char *m = faiss_get_last_error();
	return ix_errf(CM_ERR_INTERNAL, err, errlen, "faiss %s: %s", what, m ? m : "unknown error");
}

/* ---- specs ---- */

#define RANGE(field, v, lo, hi)                                                              \
	do {                                                                                 \
		if ((v) < (lo) || (v) > (hi))                                                \
			return ix_errf(CM_ERR_INVALID, err, errlen, "schema.%s: %u not in %u..%u", \
				       field, (unsigned)(v), (unsigned)(lo), (unsigned)(hi));   \
	} while (0)

int ix_spec_normalize(ix_spec *s, char *err, size_t errlen)
{
	ix_spec t = *s;
	if (t.metric == 0)
		t.metric = IX_COSINE;
	if (t.metric != IX_COSINE && t.metric != IX_L2 && t.metric != IX_DOT && t.metric != IX_HAMMING)
		return ix_errf(CM_ERR_INVALID, err, errlen, "schema.metric: unknown metric %d", t.metric);
	if (t.metric == IX_HAMMING) {
		/* binary vectors: the dimension counts bits; faiss's binary
		 * indexes are flat or HNSW, never quantized */
		RANGE("dimension", t.dim, 8, IX_BITS_MAX);
		if (t.dim % 8)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "schema.dimension: %u bits under HAMMING, not a multiple of 8", t.dim);
		if (t.kind == IX_IVF || t.quantizer != IX_Q_NONE)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "schema.index.kind: HAMMING takes FLAT or HNSW without a quantizer");
	} else {
		RANGE("dimension", t.dim, 1, IX_DIM_MAX);
	}
	if (t.kind == 0)
		t.kind = IX_HNSW;
	if (t.kind != IX_FLAT && t.kind != IX_HNSW && t.kind != IX_IVF)
		return ix_errf(CM_ERR_INVALID, err, errlen, "schema.index.kind: unknown kind %d", t.kind);
	if (t.quantizer != IX_Q_NONE && t.quantizer != IX_Q_SQ8 && t.quantizer != IX_Q_PQ)
		return ix_errf(CM_ERR_INVALID, err, errlen, "schema.index.quantizer: unknown quantizer %d",
			       t.quantizer);
	if (t.kind == IX_HNSW) {
		if (!t.hnsw_m)
			t.hnsw_m = IX_DEFAULT_HNSW_M;
		if (!t.ef_construction)
			t.ef_construction = IX_DEFAULT_EF_CONSTRUCTION;
		if (!t.ef_search)
			t.ef_search = IX_DEFAULT_EF_SEARCH;
		RANGE("index.hnsw_m", t.hnsw_m, 4, 128);
		RANGE("index.hnsw_ef_construction", t.ef_construction, 8, 4096);
		RANGE("index.hnsw_ef_search", t.ef_search, 1, 4096);
	} else {
		t.hnsw_m = t.ef_construction = t.ef_search = 0;
	}
	if (t.kind == IX_IVF) {
		if (!t.nlist)
			t.nlist = IX_DEFAULT_NLIST;
		RANGE("index.ivf_nlist", t.nlist, 1, 65536);
		if (!t.nprobe)
			t.nprobe = t.nlist / IX_DEFAULT_NPROBE_DIV ? t.nlist / IX_DEFAULT_NPROBE_DIV : 1;
		RANGE("index.ivf_nprobe", t.nprobe, 1, t.nlist);
	} else {
		t.nlist = t.nprobe = 0;
	}
	if (t.quantizer == IX_Q_PQ) {
		if (t.kind != IX_IVF)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "schema.index.quantizer: PQ needs kind IVF (faiss 1.7.3's HNSW-PQ "
				       "ignores the metric and its flat PQ takes no id selector)");
		if (!t.pq_m)
			t.pq_m = t.dim % 4 == 0 ? t.dim / 4 : t.dim % 2 == 0 ? t.dim / 2 : t.dim;
		RANGE("index.pq_m", t.pq_m, 1, t.dim);
		if (t.dim % t.pq_m != 0)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "schema.index.pq_m: %u does not divide the dimension %u", t.pq_m, t.dim);
	} else {
		t.pq_m = 0;
	}
	*s = t;
	return CM_OK;
}

int ix_spec_from_pb(const Muri__V1__FragmentSchema *pb, ix_spec *out, char *err, size_t errlen)
{
	ix_spec s = {0};
	if (!pb)
		return ix_errf(CM_ERR_INVALID, err, errlen, "schema: missing");
	s.dim = pb->dimension;
	s.metric = (int)pb->metric;
	if (pb->index) {
		const Muri__V1__IndexSpec *i = pb->index;
		s.kind = (int)i->kind;
		s.hnsw_m = i->hnsw_m;
		s.ef_construction = i->hnsw_ef_construction;
		s.ef_search = i->hnsw_ef_search;
		s.nlist = i->ivf_nlist;
		s.nprobe = i->ivf_nprobe;
		s.quantizer = (int)i->quantizer;
		s.pq_m = i->pq_m;
	}
	int rc = ix_spec_normalize(&s, err, errlen);
	if (rc)
		return rc;
	*out = s;
	return CM_OK;
}

int ix_spec_to_pb(const ix_spec *s, cm_arena *a, Muri__V1__FragmentSchema **out)
{
	Muri__V1__FragmentSchema *pb = cm_arena_alloc(a, sizeof(*pb));
	Muri__V1__IndexSpec *i = cm_arena_alloc(a, sizeof(*i));
	if (!pb || !i)
		return CM_ERR_NOMEM;
	muri__v1__fragment_schema__init(pb);
	muri__v1__index_spec__init(i);
	pb->dimension = s->dim;
	pb->metric = (Muri__V1__Metric)s->metric;
	i->kind = (Muri__V1__IndexKind)s->kind;
	i->hnsw_m = s->hnsw_m;
	i->hnsw_ef_construction = s->ef_construction;
	i->hnsw_ef_search = s->ef_search;
	i->ivf_nlist = s->nlist;
	i->ivf_nprobe = s->nprobe;
	i->quantizer = (Muri__V1__Quantizer)s->quantizer;
	i->pq_m = s->pq_m;
	pb->index = i;
	*out = pb;
	return CM_OK;
}

int ix_spec_needs_training(const ix_spec *s)
{
	return s->kind == IX_IVF || s->quantizer != IX_Q_NONE;
}

uint32_t ix_spec_train_min(const ix_spec *s)
{
	uint32_t n = 0;
	if (s->kind == IX_IVF)
		n = 39 * s->nlist;
	if (s->quantizer == IX_Q_PQ && n < 39 * 256)
		n = 39 * 256;
	if (s->quantizer == IX_Q_SQ8 && n < 1000)
		n = 1000;
	return n;
}

uint32_t ix_spec_row(const ix_spec *s)
{
	return s->metric == IX_HAMMING ? (s->dim / 8 + 3) / 4 : s->dim;
}

void ix_spec_factory(const ix_spec *s, int stand_in, char out[IX_FACTORY_MAX])
{
	char q[24] = "Flat";
	if (s->metric == IX_HAMMING) {
		if (s->kind == IX_HNSW)
			snprintf(out, IX_FACTORY_MAX, "BIDMap,BHNSW%u", s->hnsw_m);
		else
			snprintf(out, IX_FACTORY_MAX, "BIDMap,BFlat");
		return;
	}
	if (s->quantizer == IX_Q_SQ8)
		snprintf(q, sizeof(q), "SQ8");
	else if (s->quantizer == IX_Q_PQ)
		snprintf(q, sizeof(q), "PQ%unp", s->pq_m); /* no polysemous training: we never use it */
	if (stand_in)
		snprintf(out, IX_FACTORY_MAX, "IDMap,Flat");
	else if (s->kind == IX_FLAT)
		snprintf(out, IX_FACTORY_MAX, "IDMap,%s", q);
	else if (s->kind == IX_HNSW)
		snprintf(out, IX_FACTORY_MAX, "IDMap,HNSW%u%s%s", s->hnsw_m,
			 s->quantizer == IX_Q_NONE ? "" : "_", s->quantizer == IX_Q_NONE ? "" : q);
	else
		snprintf(out, IX_FACTORY_MAX, "IDMap,IVF%u,%s", s->nlist, q);
}

/* ---- the index ---- */

static FaissMetricType faiss_metric(int metric)
{
	return metric == IX_L2 ? METRIC_L2 : METRIC_INNER_PRODUCT;
}

static int apply_params(ix_index *ix, char *err, size_t errlen)
{
	FaissParameterSpace *ps = NULL;
	int rc = CM_OK;
	if (ix->stand_in)
		return CM_OK;
	if (faiss_ParameterSpace_new(&ps) != 0)
		return faiss_fail(err, errlen, "parameter space");
	if (ix->spec.kind == IX_HNSW) {
		if (faiss_ParameterSpace_set_index_parameter(ps, ix->fi, "efConstruction",
							     ix->spec.ef_construction) != 0 ||
		    faiss_ParameterSpace_set_index_parameter(ps, ix->fi, "efSearch", ix->spec.ef_search) != 0)
			rc = faiss_fail(err, errlen, "HNSW parameters");
	} else if (ix->spec.kind == IX_IVF) {
		if (faiss_ParameterSpace_set_index_parameter(ps, ix->fi, "nprobe", ix->spec.nprobe) != 0)
			rc = faiss_fail(err, errlen, "IVF parameters");
	}
	faiss_ParameterSpace_free(ps);
	return rc;
}

int ix_index_create(const ix_spec *s, int stand_in, ix_index **out, char *err, size_t errlen)
{
	char desc[IX_FACTORY_MAX];
	ix_index *ix = calloc(1, sizeof(*ix));
	if (!ix)
		return CM_ERR_NOMEM;
	ix->spec = *s;
	ix->stand_in = stand_in;
	if (s->metric == IX_HAMMING) {
		int rc = ix_bin_create(s->kind == IX_HNSW ? IX_BIN_HNSW : IX_BIN_FLAT, s->dim, s->hnsw_m,
				       s->ef_construction, s->ef_search, &ix->bin, err, errlen);
		if (rc != CM_OK) {
			free(ix);
			return rc;
		}
		ix->stand_in = 0;
		*out = ix;
		return CM_OK;
	}
	ix_spec_factory(s, stand_in, desc);
	if (faiss_index_factory(&ix->fi, (int)s->dim, desc, faiss_metric(s->metric)) != 0) {
		int rc = faiss_fail(err, errlen, desc);
		free(ix);
		return rc;
	}
	int rc = apply_params(ix, err, errlen);
	if (rc) {
		ix_index_free(ix);
		return rc;
	}
	*out = ix;
	return CM_OK;
}

int ix_index_set_search_params(ix_index *ix, uint32_t ef_search, uint32_t nprobe, char *err, size_t errlen)
{
	if (ix->spec.kind == IX_HNSW && ef_search)
		ix->spec.ef_search = ef_search;
	if (ix->spec.kind == IX_IVF && nprobe)
		ix->spec.nprobe = nprobe;
	if (ix->bin)
		return ix->spec.kind == IX_HNSW ? ix_bin_set_ef_search(ix->bin, ix->spec.ef_search, err, errlen) : CM_OK;
	return apply_params(ix, err, errlen);
}

void ix_index_free(ix_index *ix)
{
	if (!ix)
		return;
	if (ix->fi)
		faiss_Index_free(ix->fi);
	ix_bin_free(ix->bin);
	ix_faiss_adder_free(ix->adder);
	free(ix);
}

int ix_index_is_stand_in(const ix_index *ix)
{
	return ix->stand_in;
}

int ix_index_is_exact(const ix_index *ix)
{
	/* binary indexes keep the codes, and a selector search scans them */
	return ix->stand_in || ix->spec.quantizer == IX_Q_NONE || ix->bin;
}

int ix_index_train(ix_index *ix, size_t n, const float *x, char *err, size_t errlen)
{
	if (ix->bin)
		return ix_errf(CM_ERR_STATE, err, errlen, "binary indexes are not trained");
	if (faiss_Index_train(ix->fi, (idx_t)n, x) != 0)
		return faiss_fail(err, errlen, "train");
	return CM_OK;
}

static int bin_add(ix_index *ix, size_t n, const float *x, const int64_t *labels, uint64_t seed, char *err,
		   size_t errlen);

static _Atomic int build_threads = 1;

void ix_index_set_build_threads(int n)
{
	build_threads = n < 1 ? 1 : n > 64 ? 64 : n;
}

int ix_index_build_threads(void)
{
	return build_threads;
}

FaissIndex *ix_index_faiss(const ix_index *ix)
{
	return ix->fi;
}

int ix_index_blocks(const ix_index *ix)
{
	return ix->spec.kind == IX_HNSW && !ix->stand_in && ix->spec.quantizer == IX_Q_NONE && !ix->bin;
}

int ix_index_prepare(ix_index *ix, size_t n, const float *x, uint64_t seed, char *err, size_t errlen)
{
	return ix_faiss_block_prepare(ix->fi, &ix->adder, n, x, seed, ix_index_build_threads(), err, errlen);
}

int ix_index_commit(ix_index *ix, const int64_t *labels, char *err, size_t errlen)
{
	return ix_faiss_block_commit(ix->fi, ix->adder, labels, err, errlen);
}

int ix_index_add(ix_index *ix, size_t n, const float *x, const int64_t *labels, uint64_t seed, char *err,
		 size_t errlen)
{
	if (n == 0)
		return CM_OK;
	if (ix->bin)
		return bin_add(ix, n, x, labels, seed, err, errlen);
	return ix_faiss_add(ix->fi, &ix->adder, n, x, labels, seed, ix_index_build_threads(), err, errlen);
}

size_t ix_index_size(const ix_index *ix)
{
	return ix->bin ? ix_bin_size(ix->bin) : (size_t)faiss_Index_ntotal(ix->fi);
}

const int64_t *ix_index_labels(const ix_index *ix)
{
	if (ix->bin)
		return ix_bin_labels(ix->bin);
	idx_t *map = NULL;
	size_t n = 0;
	faiss_IndexIDMap_id_map((FaissIndexIDMap *)ix->fi, &map, &n);
	return map;
}

static float to_distance(int metric, float faiss_value)
{
	switch (metric) {
	case IX_COSINE: return 1.0f - faiss_value;
	case IX_DOT: return -faiss_value;
	default: return faiss_value;
	}
}

/* The found of k faiss results moved to the front, in muri distances. */
static size_t found_of(const ix_index *ix, uint32_t k, float *dist, int64_t *labels)
{
	size_t m = 0;
	for (uint32_t i = 0; i < k; i++) {
		if (labels[i] < 0)
			continue;
		labels[m] = labels[i];
		dist[m] = to_distance(ix->spec.metric, dist[i]);
		m++;
	}
	return m;
}

/* ---- binary indexes (HAMMING) ---- */

/* Rows of ix_spec_row floats hold the codes in their first dim / 8 bytes. */
static int bin_add(ix_index *ix, size_t n, const float *x, const int64_t *labels, uint64_t seed, char *err,
		   size_t errlen)
{
	size_t cs = ix->spec.dim / 8, row = (size_t)ix_spec_row(&ix->spec) * sizeof(float);
	if (cs == row)
		return ix_bin_add_seeded(ix->bin, n, (const uint8_t *)x, labels, seed, err, errlen);
	uint8_t *codes = malloc(n * cs);
	if (!codes)
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		memcpy(codes + i * cs, (const uint8_t *)x + i * row, cs);
	int rc = ix_bin_add_seeded(ix->bin, n, codes, labels, seed, err, errlen);
	free(codes);
	return rc;
}

static int sel_admits(const ix_select *sel, size_t p)
{
	if (!sel)
		return 1;
	if (sel->bitmap && (p / 8 >= sel->nbytes || !(sel->bitmap[p / 8] >> (p % 8) & 1)))
		return 0;
	return !sel->admit || sel->admit(sel->arg, p);
}

/* An HNSW walk unrestricted (for a selector admitting most positions:
 * tombstones), over a widened k, keeping the admitted; otherwise, and with
 * exhaustive, the admitted codes exactly (ix_bin_search with a bitmap). */
static int bin_search(const ix_index *ix, const uint8_t *q, uint32_t k, int exhaustive, const ix_select *sel,
		      size_t admitted, float *dist, int64_t *labels, size_t *n, char *err, size_t errlen)
{
	size_t ntotal = ix_bin_size(ix->bin), m = 0;
	const int64_t *lab = ix_bin_labels(ix->bin);
	int hnsw = ix->spec.kind == IX_HNSW, rc = CM_OK;
	int walk = hnsw && !exhaustive && (!sel || (!sel->admit && admitted * 2 >= ntotal));
	uint8_t *bm = NULL;
	uint32_t kk = k;
	if (walk && sel) {
		size_t w = (size_t)k * ntotal / (admitted ? admitted : 1) + 16;
		kk = (uint32_t)(w < ntotal ? w : ntotal);
	}
	if (!walk && (sel || hnsw)) {
		size_t nb = ntotal / 8 + 1;
		if (!(bm = calloc(nb, 1)))
			return CM_ERR_NOMEM;
		for (size_t p = 0; p < ntotal; p++)
			if (sel_admits(sel, p))
				bm[p / 8] |= (uint8_t)(1u << (p % 8));
	}
	int32_t *d = malloc((size_t)kk * sizeof(*d));
	int64_t *l = malloc((size_t)kk * sizeof(*l));
	if (!d || !l) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	if ((rc = ix_bin_search(ix->bin, 1, q, kk, bm, bm ? ntotal / 8 + 1 : 0, d, l, err, errlen)) != CM_OK)
		goto out;
	/* labels are seqs, increasing with positions: find a label's position */
	for (uint32_t i = 0; i < kk && m < k; i++) {
		if (l[i] < 0)
			continue;
		if (walk && sel) {
			size_t lo = 0, hi = ntotal;
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;
				if (lab[mid] < l[i])
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo >= ntotal || lab[lo] != l[i] || !sel_admits(sel, lo))
				continue;
		}
		labels[m] = l[i];
		dist[m] = (float)d[i];
		m++;
	}
	*n = m;
out:
	free(bm);
	free(d);
	free(l);
	return rc;
}

int ix_index_search(const ix_index *ix, const float *q, uint32_t k, int exhaustive, const ix_select *sel,
		    size_t admitted, float *dist, int64_t *labels, size_t *n, char *err,
		    size_t errlen)
{
	if (ix_index_size(ix) == 0) {
		*n = 0;
		return CM_OK;
	}
	if (ix->bin)
		return bin_search(ix, (const uint8_t *)q, k, exhaustive, sel, admitted, dist, labels, n, err, errlen);
	int rc = ix_faiss_search(ix->fi, 1, q, k, exhaustive, sel, admitted, dist, labels, err, errlen);
	if (rc)
		return rc;
	*n = found_of(ix, k, dist, labels);
	return CM_OK;
}

int ix_index_scan(const ix_index *ix, const float *q, uint32_t k, const size_t *pos, size_t npos, float *dist,
		  int64_t *labels, size_t *n, char *err, size_t errlen)
{
	if (ix->bin)
		return ix_errf(CM_ERR_STATE, err, errlen, "binary indexes are scanned through a selector");
	int rc = ix_faiss_scan(ix->fi, q, k, pos, npos, dist, labels, err, errlen);
	if (rc)
		return rc;
	*n = found_of(ix, k, dist, labels);
	return CM_OK;
}

int ix_index_scan_cheaper(const ix_index *ix, uint32_t k, size_t admitted)
{
	return !ix->bin && ix_faiss_scan_cheaper(ix->fi, k, admitted);
}

int ix_index_save(const ix_index *ix, const char *path, char *err, size_t errlen)
{
	if (ix->bin)
		return ix_bin_save(ix->bin, path, err, errlen);
	FILE *f = fopen(path, "wb");
	int rc = CM_OK;
	if (!f)
		return ix_errf(CM_ERR_IO, err, errlen, "%s: %s", path, strerror(errno));
	if (faiss_write_index(ix->fi, f) != 0)
		rc = faiss_fail(err, errlen, "write_index");
	else if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = ix_errf(CM_ERR_IO, err, errlen, "%s: %s", path, strerror(errno));
	if (fclose(f) != 0 && rc == CM_OK)
		rc = ix_errf(CM_ERR_IO, err, errlen, "%s: %s", path, strerror(errno));
	return rc;
}

int ix_index_load(const ix_spec *s, const char *path, int stand_in, ix_index **out, char *err, size_t errlen)
{
	ix_index *ix = calloc(1, sizeof(*ix));
	FaissIndexIDMap *idmap;
	if (!ix)
		return CM_ERR_NOMEM;
	ix->spec = *s;
	ix->stand_in = stand_in;
	if (s->metric == IX_HAMMING) {
		int rc = ix_bin_load(path, s->kind == IX_HNSW ? IX_BIN_HNSW : IX_BIN_FLAT, s->dim,
				     s->kind == IX_HNSW ? s->ef_search : 1, &ix->bin, err, errlen);
		if (rc != CM_OK || stand_in) {
			ix_index_free(ix);
			return rc != CM_OK ? rc : ix_errf(CM_ERR_INVALID, err, errlen, "%s: binary indexes have no stand-in", path);
		}
		*out = ix;
		return CM_OK;
	}
	if (faiss_read_index_fname(path, 0, &ix->fi) != 0) {
		int rc = faiss_fail(err, errlen, "read_index");
		free(ix);
		return rc;
	}
	idmap = faiss_IndexIDMap_cast(ix->fi);
	if (!idmap || faiss_Index_d(ix->fi) != (int)s->dim ||
	    faiss_Index_metric_type(ix->fi) != faiss_metric(s->metric)) {
		ix_index_free(ix);
		return ix_errf(CM_ERR_INVALID, err, errlen, "%s: not an index of this schema", path);
	}
	int rc = apply_params(ix, err, errlen);
	if (rc) {
		ix_index_free(ix);
		return rc;
	}
	*out = ix;
	return CM_OK;
}

/* ---- vectors ---- */

void ix_vec_prepare(const ix_spec *s, float *x, size_t n)
{
	/* faiss_fvec_renorm_L2's arithmetic without its OpenMP region, which
	 * costs a thread team per call (most calls are one vector). */
	if (s->metric != IX_COSINE)
		return;
	for (size_t i = 0; i < n; i++) {
		float *xi = x + i * s->dim;
		float nr = faiss_fvec_norm_L2sqr(xi, s->dim);
		if (nr > 0) {
			const float inv = (float)(1.0 / sqrtf(nr));
			for (size_t j = 0; j < s->dim; j++)
				xi[j] *= inv;
		}
	}
}

void ix_vec_row(const ix_spec *s, const float *vec, const uint8_t *bin, float *row)
{
	if (s->metric != IX_HAMMING) {
		memcpy(row, vec, s->dim * sizeof(float));
		return;
	}
	memset(row, 0, ix_spec_row(s) * sizeof(float));
	memcpy(row, bin, s->dim / 8);
}

int ix_vec_usable(const ix_spec *s, const float *x)
{
	if (s->metric == IX_HAMMING)
		return 1;
	if (s->metric != IX_COSINE)
		return 1;
	float n2 = faiss_fvec_norm_L2sqr(x, s->dim);
	return n2 > 0 && isfinite(n2);
}

void ix_distances(const ix_spec *s, const float *q, const float *rows, size_t n, float *out)
{
	if (n == 0)
		return;
	if (s->metric == IX_HAMMING) {
		size_t row = ix_spec_row(s);
		for (size_t i = 0; i < n; i++)
			out[i] = (float)cm_answer_hamming((const uint8_t *)q, (const uint8_t *)(rows + i * row),
							  s->dim / 8);
		return;
	}
	if (s->metric == IX_L2) {
		faiss_fvec_L2sqr_ny(out, q, rows, s->dim, n);
		return;
	}
	faiss_fvec_inner_products_ny(out, q, rows, s->dim, n);
	for (size_t i = 0; i < n; i++)
		out[i] = to_distance(s->metric, out[i]);
}
