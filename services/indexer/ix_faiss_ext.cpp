// The one C++ file of the indexer: what faiss 1.7.3's C API does not offer.
// Search with an IDSelector: IndexIDMap refuses SearchParameters, HNSW and
// IVF apply a selector to positions of the sub-index, and a search with
// parameters takes efSearch / nprobe from them (not from the index), so they
// are copied from the index here. Incremental HNSW adds: IndexHNSW::add
// initializes a lock per existing node and a visited table on every call
// and draws levels from an unsaved generator; this inserts vertex by vertex
// with state kept between calls and levels that depend on the position.
#include "ix_faiss_ext.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <vector>

#include <omp.h>

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexPQ.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/NSG.h> // faiss::nsg::storage_distance_computer: the same as IndexHNSW.cpp's private one

#include "cm_err.h"

namespace {

// Runs the calling thread's OpenMP regions on one thread while alive: a
// single query gains nothing from a team, and HNSW allocates a visited table
// per team member.
struct one_thread {
	int saved;
	one_thread() : saved(omp_get_max_threads()) { omp_set_num_threads(1); }
	~one_thread() { omp_set_num_threads(saved); }
};

int fail(int code, char *err, size_t errlen, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "faiss: %s", what);
	return code;
}

void search_sub(const faiss::Index *sub, size_t nq, const float *x, int64_t k, int exhaustive,
		faiss::IDSelector *sel, float *dist, int64_t *labels)
{
	if (auto hnsw = dynamic_cast<const faiss::IndexHNSW *>(sub)) {
		if (exhaustive) {
			faiss::SearchParameters p;
			p.sel = sel;
			hnsw->storage->search((faiss::Index::idx_t)nq, x, k, dist, labels, sel ? &p : nullptr);
			return;
		}
		faiss::SearchParametersHNSW p;
		p.sel = sel;
		p.efSearch = std::max(hnsw->hnsw.efSearch, (int)k);
		p.check_relative_distance = hnsw->hnsw.check_relative_distance;
		hnsw->search((faiss::Index::idx_t)nq, x, k, dist, labels, &p);
		return;
	}
	if (auto ivf = dynamic_cast<const faiss::IndexIVF *>(sub)) {
		faiss::SearchParametersIVF p;
		p.sel = sel;
		p.nprobe = exhaustive ? ivf->nlist : ivf->nprobe;
		p.max_codes = ivf->max_codes;
		ivf->search((faiss::Index::idx_t)nq, x, k, dist, labels, &p);
		return;
	}
	if (sel && dynamic_cast<const faiss::IndexPQ *>(sub))
		throw std::invalid_argument("IndexPQ cannot search with a selector in faiss 1.7.3");
	faiss::SearchParameters p;
	p.sel = sel;
	sub->search((faiss::Index::idx_t)nq, x, k, dist, labels, sel ? &p : nullptr);
}

} // namespace

extern "C" int ix_faiss_search(const FaissIndex *index, size_t nq, const float *x, int64_t k,
			       int exhaustive, const uint8_t *bitmap, size_t nbytes, float *distances,
			       int64_t *labels, char *err, size_t errlen)
{
	try {
		one_thread guard;
		auto idx = reinterpret_cast<const faiss::Index *>(index);
		auto idmap = dynamic_cast<const faiss::IndexIDMap *>(idx);
		const faiss::Index *sub = idmap ? idmap->index : idx;
		faiss::IDSelectorBitmap bm(nbytes, bitmap);
		search_sub(sub, nq, x, k, exhaustive, bitmap ? &bm : nullptr, distances, labels);
		if (idmap) {
			const auto &map = idmap->id_map;
			for (size_t i = 0; i < nq * (size_t)k; i++)
				if (labels[i] >= 0)
					labels[i] = labels[i] < (int64_t)map.size() ? map[labels[i]] : -1;
		}
		return CM_OK;
	} catch (const std::invalid_argument &e) {
		return fail(CM_ERR_INVALID, err, errlen, e.what());
	} catch (const std::exception &e) {
		return fail(CM_ERR_INTERNAL, err, errlen, e.what());
	} catch (...) {
		return fail(CM_ERR_INTERNAL, err, errlen, "unknown exception");
	}
}

struct ix_faiss_adder {
	std::vector<omp_lock_t> locks; // one per HNSW node, as add_with_locks wants
	faiss::VisitedTable vt{0};
	~ix_faiss_adder()
	{
		for (auto &l : locks)
			omp_destroy_lock(&l);
	}
};

namespace {

uint64_t mix(uint64_t z)
{
	z += UINT64_C(0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void hnsw_add(faiss::IndexHNSW *h, ix_faiss_adder &a, size_t n, const float *x, uint64_t seed)
{
	faiss::HNSW &hnsw = h->hnsw;
	size_t n0 = (size_t)h->ntotal;
	FAISS_THROW_IF_NOT(h->is_trained && hnsw.levels.size() == n0);
	for (size_t i = 0; i < n; i++) {
		hnsw.rng = faiss::RandomGenerator((int64_t)(mix(seed ^ (n0 + i)) >> 1));
		hnsw.levels.push_back(hnsw.random_level() + 1);
	}
	h->storage->add((faiss::Index::idx_t)n, x);
	h->ntotal = h->storage->ntotal;
	hnsw.prepare_level_tab(n, true);
	size_t nt = (size_t)h->ntotal, had = a.locks.size();
	if (had < nt) {
		a.locks.resize(std::max(nt, 2 * had)); // all unlocked: moving them is fine
		for (size_t i = had; i < a.locks.size(); i++)
			omp_init_lock(&a.locks[i]);
	}
	if (a.vt.visited.size() < nt)
		a.vt.visited.resize(std::max(nt, 2 * a.vt.visited.size()));
	std::unique_ptr<faiss::DistanceComputer> dis(faiss::nsg::storage_distance_computer(h->storage));
	for (size_t i = 0; i < n; i++) {
		dis->set_query(x + i * (size_t)h->d);
		hnsw.add_with_locks(*dis, hnsw.levels[n0 + i] - 1, (int)(n0 + i), a.locks, a.vt);
	}
}

} // namespace

extern "C" int ix_faiss_add(FaissIndex *index, ix_faiss_adder **adder, size_t n, const float *x,
			    const int64_t *labels, uint64_t seed, char *err, size_t errlen)
{
	try {
		one_thread guard;
		auto idx = reinterpret_cast<faiss::Index *>(index);
		auto idmap = dynamic_cast<faiss::IndexIDMap *>(idx);
		auto hnsw = dynamic_cast<faiss::IndexHNSW *>(idmap ? idmap->index : idx);
		if (!hnsw) {
			if (idmap)
				idmap->add_with_ids((faiss::Index::idx_t)n, x, labels);
			else
				idx->add((faiss::Index::idx_t)n, x);
			return CM_OK;
		}
		if (!*adder)
			*adder = new ix_faiss_adder();
		hnsw_add(hnsw, **adder, n, x, seed);
		if (idmap) {
			idmap->id_map.insert(idmap->id_map.end(), labels, labels + n);
			idmap->ntotal = hnsw->ntotal;
		}
		return CM_OK;
	} catch (const std::exception &e) {
		return fail(CM_ERR_INTERNAL, err, errlen, e.what());
	} catch (...) {
		return fail(CM_ERR_INTERNAL, err, errlen, "unknown exception");
	}
}

extern "C" void ix_faiss_adder_free(ix_faiss_adder *adder)
{
	delete adder;
}
