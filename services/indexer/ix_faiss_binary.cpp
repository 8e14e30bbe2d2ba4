// Binary indexes for the HAMMING metric over faiss's C++ API (the 1.7.3 C
// API searches, saves and loads an IndexBinary but has no constructor for
// one): an IndexBinaryIDMap over IndexBinaryFlat or IndexBinaryHNSW. Adds
// run on one thread (HNSW's insertion order then fixes the graph); a
// search with a position bitmap scans the admitted codes exactly.
#include "ix_faiss_binary.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <utility>
#include <vector>

#include <omp.h>
#include <unistd.h>

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/HNSW.h>
#include <faiss/index_io.h>

extern "C" {
#include "cm_answer.h"
#include "cm_err.h"
}

// faiss's index type: Index::idx_t in 1.7.3, faiss::idx_t from 1.7.4 on.
typedef int64_t fidx;

struct ix_bin_index {
	faiss::IndexBinaryIDMap *map; // owns its sub-index
	int kind;
	uint32_t bits;
	// ix_bin_add_seeded's HNSW insertion state, kept between calls so a call
	// costs what its vectors cost, not the index's size
	std::vector<omp_lock_t> locks{};
	faiss::VisitedTable vt{0};
	~ix_bin_index()
	{
		for (auto &l : locks)
			omp_destroy_lock(&l);
	}
};

namespace {

struct one_thread {
	int saved;
	one_thread() : saved(omp_get_max_threads()) { omp_set_num_threads(1); }
	~one_thread() { omp_set_num_threads(saved); }
};

int fail(int code, char *err, size_t errlen, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", what);
	return code;
}

int faiss_fail(char *err, size_t errlen, const std::exception &e)
{
	if (err && errlen)
		snprintf(err, errlen, "faiss: %s", e.what());
	return CM_ERR_INTERNAL;
}

// The stored codes of the sub-index, position order.
const uint8_t *codes_of(const ix_bin_index *ix)
{
	const faiss::IndexBinary *sub = ix->map->index;
	if (ix->kind == IX_BIN_HNSW)
		sub = static_cast<const faiss::IndexBinaryHNSW *>(sub)->storage;
	return static_cast<const faiss::IndexBinaryFlat *>(sub)->xb.data();
}

int check_params(int kind, uint32_t bits, uint32_t m, uint32_t efc, uint32_t efs, char *err, size_t errlen)
{
	if (kind != IX_BIN_FLAT && kind != IX_BIN_HNSW)
		return fail(CM_ERR_INVALID, err, errlen, "index.kind: binary vectors take FLAT or HNSW");
	if (bits < 8 || bits > IX_BIN_BITS_MAX || bits % 8) {
		if (err && errlen)
			snprintf(err, errlen, "dimension: %u bits, expected a multiple of 8 in 8..%d", bits, IX_BIN_BITS_MAX);
		return CM_ERR_INVALID;
	}
	if (kind == IX_BIN_HNSW && (m < 4 || m > 128))
		return fail(CM_ERR_INVALID, err, errlen, "index.hnsw_m: expected 4..128");
	if (kind == IX_BIN_HNSW && (efc < 1 || efc > 4096))
		return fail(CM_ERR_INVALID, err, errlen, "index.hnsw_ef_construction: expected 1..4096");
	if (kind == IX_BIN_HNSW && (efs < 1 || efs > 4096))
		return fail(CM_ERR_INVALID, err, errlen, "index.hnsw_ef_search: expected 1..4096");
	return CM_OK;
}

uint64_t mix(uint64_t z)
{
	z += UINT64_C(0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

// The level (+1, faiss's convention) of the vector at position pos, drawn
// from (seed, pos) as ix_faiss_ext draws the float HNSW's.
int level_of(faiss::HNSW &hnsw, uint64_t seed, size_t pos)
{
	hnsw.rng = faiss::RandomGenerator((int64_t)(mix(seed ^ pos) >> 1));
	return hnsw.random_level() + 1;
}

// HNSW insertion vertex by vertex in position order, on this thread, with
// locks and a visited table kept in ix (faiss's add allocates both at the
// index's size on every call).
void hnsw_add_seeded(ix_bin_index *ix, size_t n, const uint8_t *codes, const int64_t *labels, uint64_t seed)
{
	auto *h = static_cast<faiss::IndexBinaryHNSW *>(ix->map->index);
	faiss::HNSW &hnsw = h->hnsw;
	size_t n0 = (size_t)h->ntotal, cs = ix->bits / 8;
	FAISS_THROW_IF_NOT(hnsw.levels.size() == n0 && (size_t)ix->map->ntotal == n0);
	for (size_t i = 0; i < n; i++)
		hnsw.levels.push_back(level_of(hnsw, seed, n0 + i));
	h->storage->add((fidx)n, codes);
	h->ntotal = h->storage->ntotal;
	hnsw.prepare_level_tab(n, true);
	size_t nt = (size_t)h->ntotal, had = ix->locks.size();
	if (had < nt) {
		ix->locks.resize(std::max(nt, 2 * had)); // all unlocked: moving them is fine
		for (size_t i = had; i < ix->locks.size(); i++)
			omp_init_lock(&ix->locks[i]);
	}
	if (ix->vt.visited.size() < nt)
		ix->vt.visited.resize(std::max(nt, 2 * ix->vt.visited.size()));
	std::unique_ptr<faiss::DistanceComputer> dis(h->get_distance_computer());
	for (size_t i = 0; i < n; i++) {
		// the binary distance computer takes the code through a float pointer
		dis->set_query(reinterpret_cast<const float *>(codes + i * cs));
		hnsw.add_with_locks(*dis, hnsw.levels[n0 + i] - 1, (int)(n0 + i), ix->locks, ix->vt);
	}
	for (size_t i = 0; i < n; i++)
		ix->map->id_map.push_back(labels[i]);
	ix->map->ntotal += (fidx)n;
}

// Sorts each query's k results by (distance, label), -1 labels last, so
// that answers do not depend on a heap's order among equal distances.
void order(size_t nq, uint32_t k, int32_t *d, int64_t *l)
{
	std::vector<std::pair<int32_t, int64_t>> v(k);
	for (size_t q = 0; q < nq; q++) {
		for (uint32_t i = 0; i < k; i++)
			v[i] = {l[q * k + i] < 0 ? INT32_MAX : d[q * k + i], l[q * k + i] < 0 ? INT64_MAX : l[q * k + i]};
		std::sort(v.begin(), v.end());
		for (uint32_t i = 0; i < k; i++) {
			d[q * k + i] = v[i].second == INT64_MAX ? INT32_MAX : v[i].first;
			l[q * k + i] = v[i].second == INT64_MAX ? -1 : v[i].second;
		}
	}
}

} // namespace

extern "C" int ix_bin_create(int kind, uint32_t bits, uint32_t m, uint32_t efc, uint32_t efs, ix_bin_index **out,
			     char *err, size_t errlen)
{
	int rc = check_params(kind, bits, m, efc, efs, err, errlen);
	if (rc != CM_OK)
		return rc;
	try {
		std::unique_ptr<faiss::IndexBinary> sub;
		if (kind == IX_BIN_HNSW) {
			auto *h = new faiss::IndexBinaryHNSW((int)bits, (int)m);
			h->hnsw.efConstruction = (int)efc;
			h->hnsw.efSearch = (int)efs;
			sub.reset(h);
		} else {
			sub.reset(new faiss::IndexBinaryFlat((int)bits));
		}
		auto *map = new faiss::IndexBinaryIDMap(sub.get());
		map->own_fields = true;
		sub.release();
		*out = new ix_bin_index{map, kind, bits};
		return CM_OK;
	} catch (const std::bad_alloc &) {
		return fail(CM_ERR_NOMEM, err, errlen, "out of memory");
	} catch (const std::exception &e) {
		return faiss_fail(err, errlen, e);
	}
}

extern "C" void ix_bin_free(ix_bin_index *ix)
{
	if (!ix)
		return;
	delete ix->map;
	delete ix;
}

extern "C" uint32_t ix_bin_bits(const ix_bin_index *ix)
{
	return ix->bits;
}

extern "C" size_t ix_bin_size(const ix_bin_index *ix)
{
	return (size_t)ix->map->ntotal;
}

extern "C" const int64_t *ix_bin_labels(const ix_bin_index *ix)
{
	return reinterpret_cast<const int64_t *>(ix->map->id_map.data());
}

extern "C" int ix_bin_set_ef_search(ix_bin_index *ix, uint32_t efs, char *err, size_t errlen)
{
	if (efs < 1 || efs > 4096)
		return fail(CM_ERR_INVALID, err, errlen, "index.hnsw_ef_search: expected 1..4096");
	if (ix->kind == IX_BIN_HNSW)
		static_cast<faiss::IndexBinaryHNSW *>(ix->map->index)->hnsw.efSearch = (int)efs;
	return CM_OK;
}

extern "C" int ix_bin_add(ix_bin_index *ix, size_t n, const uint8_t *codes, const int64_t *labels, char *err,
			  size_t errlen)
{
	try {
		one_thread t;
		ix->map->add_with_ids((fidx)n, codes, labels);
		return CM_OK;
	} catch (const std::bad_alloc &) {
		return fail(CM_ERR_NOMEM, err, errlen, "out of memory");
	} catch (const std::exception &e) {
		return faiss_fail(err, errlen, e);
	}
}

extern "C" int ix_bin_add_seeded(ix_bin_index *ix, size_t n, const uint8_t *codes, const int64_t *labels,
				 uint64_t seed, char *err, size_t errlen)
{
	if (ix->kind != IX_BIN_HNSW)
		return ix_bin_add(ix, n, codes, labels, err, errlen);
	try {
		hnsw_add_seeded(ix, n, codes, labels, seed);
		return CM_OK;
	} catch (const std::bad_alloc &) {
		return fail(CM_ERR_NOMEM, err, errlen, "out of memory");
	} catch (const std::exception &e) {
		return faiss_fail(err, errlen, e);
	}
}

extern "C" int ix_bin_search(const ix_bin_index *ix, size_t nq, const uint8_t *queries, uint32_t k,
			     const uint8_t *bitmap, size_t nbytes, int32_t *distances, int64_t *labels, char *err,
			     size_t errlen)
{
	if (k < 1)
		return fail(CM_ERR_INVALID, err, errlen, "top_k: expected 1 or more");
	size_t cs = ix->bits / 8, n = (size_t)ix->map->ntotal;
	try {
		if (!bitmap) {
			one_thread t;
			ix->map->search((fidx)nq, queries, (fidx)k, distances, labels);
			order(nq, k, distances, labels);
			return CM_OK;
		}
		const uint8_t *codes = codes_of(ix);
		const std::vector<fidx> &ids = ix->map->id_map;
		std::vector<std::pair<int32_t, size_t>> cand;
		for (size_t q = 0; q < nq; q++) {
			const uint8_t *x = queries + q * cs;
			cand.clear();
			for (size_t p = 0; p < n && p / 8 < nbytes; p++)
				if (bitmap[p / 8] >> (p % 8) & 1)
					cand.push_back({(int32_t)cm_answer_hamming(x, codes + p * cs, cs), p});
			size_t got = std::min(cand.size(), (size_t)k);
			std::partial_sort(cand.begin(), cand.begin() + (std::ptrdiff_t)got, cand.end());
			for (size_t i = 0; i < k; i++) {
				distances[q * k + i] = i < got ? cand[i].first : INT32_MAX;
				labels[q * k + i] = i < got ? ids[cand[i].second] : -1;
			}
		}
		return CM_OK;
	} catch (const std::bad_alloc &) {
		return fail(CM_ERR_NOMEM, err, errlen, "out of memory");
	} catch (const std::exception &e) {
		return faiss_fail(err, errlen, e);
	}
}

extern "C" int ix_bin_save(const ix_bin_index *ix, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "wb");
	if (!f) {
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot create", path);
		return CM_ERR_IO;
	}
	int rc = CM_OK;
	try {
		faiss::write_index_binary(ix->map, f);
	} catch (const std::exception &e) {
		rc = faiss_fail(err, errlen, e);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		if (rc == CM_OK && err && errlen)
			snprintf(err, errlen, "%s: cannot write", path);
		rc = rc == CM_OK ? CM_ERR_IO : rc;
	}
	fclose(f);
	return rc;
}

extern "C" int ix_bin_load(const char *path, int kind, uint32_t bits, uint32_t efs, ix_bin_index **out, char *err,
			   size_t errlen)
{
	int rc = check_params(kind, bits, 32, 1, efs, err, errlen);
	if (rc != CM_OK)
		return rc;
	try {
		std::unique_ptr<faiss::IndexBinary> idx(faiss::read_index_binary(path));
		auto *map = dynamic_cast<faiss::IndexBinaryIDMap *>(idx.get());
		bool ok = map && map->d == (int)bits &&
			  (kind == IX_BIN_HNSW ? dynamic_cast<faiss::IndexBinaryHNSW *>(map->index) != nullptr
					       : dynamic_cast<faiss::IndexBinaryFlat *>(map->index) != nullptr);
		if (!ok) {
			if (err && errlen)
				snprintf(err, errlen, "%s: not a %u-bit binary %s index", path, bits,
					 kind == IX_BIN_HNSW ? "HNSW" : "flat");
			return CM_ERR_INVALID;
		}
		idx.release();
		*out = new ix_bin_index{map, kind, bits};
		return ix_bin_set_ef_search(*out, efs, err, errlen);
	} catch (const std::bad_alloc &) {
		return fail(CM_ERR_NOMEM, err, errlen, "out of memory");
	} catch (const std::exception &e) {
		return faiss_fail(err, errlen, e);
	}
}
