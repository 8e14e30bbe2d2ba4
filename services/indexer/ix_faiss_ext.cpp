// The one C++ file of the indexer: what faiss 1.7.3's C API does not offer.
// Search with an IDSelector: IndexIDMap refuses SearchParameters, HNSW and
// IVF apply a selector to positions of the sub-index, and a search with
// parameters takes efSearch / nprobe from them (not from the index), so they
// are copied from the index here. An HNSW over flat storage is walked by
// ix_hnsw.c (filtered or not: faster than faiss's search, the same on every
// CPU); over other storage a filtered search is walked by a loop here that
// keeps its recall as the filter narrows. HNSW adds: IndexHNSW::add
// initializes a lock per existing node and a visited table on every call,
// draws levels from an unsaved generator and is not deterministic on several
// threads; here levels depend on the position, and a flat-storage HNSW takes
// blocks planned in parallel by ix_hnsw.c (deterministic), other storage
// vertex by vertex with state kept between calls.
//
// It builds against faiss 1.7.3 and 1.11.0 (scripts/setup.sh,
// MURI_FAISS_VERSION). 1.11's C API has per-call SearchParameters (a
// selector), SearchParametersIVF (selector, nprobe, max_codes) and the
// IDSelectors Range, Batch, Bitmap (the bit order of ix_select's bitmap),
// Not, And, Or. They could carry the IVF and flat branches of search_sub
// where the selector is a bitmap alone, searched on the id map's sub-index
// (1.11's IndexIDMap applies a selector to external labels; ours selects
// positions) with the labels mapped after, and give the same answers: the
// same faiss code runs. They offer no HNSW parameters, no selector over a
// callback (ix_postings' compiled filters), nothing for the graph arrays
// ix_hnsw.c walks nor for deterministic adds; so this file stays with
// either version.
#include "ix_faiss_ext.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <queue>
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

#include <faiss/utils/distances.h>

#include "cm_err.h"
#include "ix_hnsw.h"

// faiss's index type: Index::idx_t in 1.7.3, faiss::idx_t from 1.7.4 on.
typedef int64_t fidx;

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

// f's result, with faiss's exceptions as error codes: an invalid argument
// as CM_ERR_INVALID, anything else as CM_ERR_INTERNAL.
template <class F> int guarded(char *err, size_t errlen, F &&f)
{
	try {
		return f();
	} catch (const std::invalid_argument &e) {
		return fail(CM_ERR_INVALID, err, errlen, e.what());
	} catch (const std::exception &e) {
		return fail(CM_ERR_INTERNAL, err, errlen, e.what());
	} catch (...) {
		return fail(CM_ERR_INTERNAL, err, errlen, "unknown exception");
	}
}

// An ix_select as faiss's selector (for searches faiss's own code runs).
struct select_ids : faiss::IDSelector {
	const ix_select *s;
	explicit select_ids(const ix_select *sel) : s(sel) {}
	bool is_member(fidx id) const override { return ix_select_admits(s, (size_t)id); }
};

std::atomic<double> scan_factor{IX_FAISS_SCAN_FACTOR}, post_factor{IX_FAISS_POST_FACTOR};

// How much wider a search under a selector must look: ntotal / admitted
// (1 without a selector or when the count is not known).
double widen(const faiss::Index *sub, const faiss::IDSelector *sel, size_t admitted)
{
	if (!sel || admitted == 0 || (fidx)admitted >= sub->ntotal)
		return 1.0;
	return (double)sub->ntotal / (double)admitted;
}

// A visited table per thread, reused across queries (a fresh one costs a
// pass over ntotal bytes).
faiss::VisitedTable &visited_for(size_t ntotal)
{
	thread_local std::unique_ptr<faiss::VisitedTable> vt;
	if (!vt || vt->visited.size() < ntotal)
		vt.reset(new faiss::VisitedTable((int)std::max(ntotal, (size_t)1024)));
	else
		vt->advance();
	return *vt;
}

// HNSW search under a selector, one query. faiss 1.7.3 keeps its beam at the
// index's efSearch whatever the parameters say (HNSW::search sizes the
// candidate heap from the index) and only filters what the beam finds, so a
// filter admitting 5% finds about 5% of a beam. This walks the graph as
// faiss does (greedy on the upper levels, a best-first beam on level 0), but
// the ef best it keeps are admitted vertices only, and it goes on while a
// candidate is nearer than the worst of them or fewer than ef are found:
// the work grows as the filter narrows, the recall does not fall.
// Deterministic: the same graph and query give the same answer.
void hnsw_filtered(const faiss::IndexHNSW *h, const float *x, int64_t k, int ef, const faiss::IDSelector *sel,
		   float *dist, int64_t *labels)
{
	typedef std::pair<float, faiss::HNSW::storage_idx_t> node;
	const faiss::HNSW &g = h->hnsw;
	for (int64_t i = 0; i < k; i++) {
		dist[i] = std::numeric_limits<float>::infinity();
		labels[i] = -1;
	}
	if (g.entry_point < 0)
		return;
	std::unique_ptr<faiss::DistanceComputer> dc(faiss::nsg::storage_distance_computer(h->storage));
	dc->set_query(x);
	faiss::HNSW::storage_idx_t ep = g.entry_point;
	float dep = (*dc)(ep);
	for (int level = g.max_level; level >= 1; level--) {
		for (bool moved = true; moved;) {
			moved = false;
			size_t b, e;
			g.neighbor_range(ep, level, &b, &e);
			for (size_t j = b; j < e && g.neighbors[j] >= 0; j++) {
				float d = (*dc)(g.neighbors[j]);
				if (d < dep) {
					dep = d;
					ep = g.neighbors[j];
					moved = true;
				}
			}
		}
	}
	faiss::VisitedTable &vt = visited_for((size_t)h->ntotal);
	std::priority_queue<node, std::vector<node>, std::greater<node>> cand; // nearest first
	std::priority_queue<node> best;                                         // admitted, worst first
	size_t want = (size_t)std::max<int64_t>(ef, k);
	cand.emplace(dep, ep);
	vt.set(ep);
	if (sel->is_member(ep))
		best.emplace(dep, ep);
	while (!cand.empty()) {
		node c = cand.top();
		if (best.size() >= want && c.first > best.top().first)
			break;
		cand.pop();
		size_t b, e;
		g.neighbor_range(c.second, 0, &b, &e);
		for (size_t j = b; j < e && g.neighbors[j] >= 0; j++) {
			faiss::HNSW::storage_idx_t v = g.neighbors[j];
			if (vt.get(v))
				continue;
			vt.set(v);
			float d = (*dc)(v);
			if (best.size() < want || d < best.top().first) {
				cand.emplace(d, v);
				if (sel->is_member(v)) {
					best.emplace(d, v);
					if (best.size() > want)
						best.pop();
				}
			}
		}
	}
	while (best.size() > (size_t)k)
		best.pop();
	for (int64_t i = (int64_t)best.size() - 1; i >= 0; i--) {
		dist[i] = best.top().first;
		labels[i] = best.top().second;
		best.pop();
	}
	if (h->metric_type == faiss::METRIC_INNER_PRODUCT) // as IndexHNSW::search gives them
		for (int64_t i = 0; i < k; i++)
			dist[i] = -dist[i];
}

// The flat storage of an HNSW whose metric the walk of ix_hnsw.c knows, or
// NULL (other storages go through faiss's distance computers).
const faiss::IndexFlat *flat_storage(const faiss::IndexHNSW *h)
{
	auto f = dynamic_cast<const faiss::IndexFlat *>(h->storage);
	if (!f || (h->metric_type != faiss::METRIC_INNER_PRODUCT && h->metric_type != faiss::METRIC_L2) ||
	    f->metric_type != h->metric_type)
		return nullptr;
	return f;
}

ix_hnsw_graph graph_of(const faiss::IndexHNSW *h, const faiss::IndexFlat *f)
{
	const faiss::HNSW &g = h->hnsw;
	ix_hnsw_graph v;
	v.neighbors = g.neighbors.data();
	v.offsets = g.offsets.data();
	v.cum = g.cum_nneighbor_per_level.data();
	v.ncum = (int)g.cum_nneighbor_per_level.size();
	v.levels = g.levels.data();
	v.entry = g.entry_point;
	v.max_level = g.max_level;
	v.x = f->get_xb();
	v.d = (size_t)h->d;
	v.ntotal = (size_t)h->ntotal;
	v.ip = h->metric_type == faiss::METRIC_INNER_PRODUCT;
	return v;
}

struct scratch_holder {
	ix_hnsw_scratch *s = nullptr;
	~scratch_holder() { ix_hnsw_scratch_free(s); }
};

ix_hnsw_scratch *thread_scratch()
{
	thread_local scratch_holder h;
	if (!h.s && !(h.s = ix_hnsw_scratch_new()))
		throw std::bad_alloc();
	return h.s;
}

// One query through ix_hnsw_search. The k found are given faiss's values
// (its kernels, as IndexHNSW::search and ix_distances give them) and
// ordered by them, ties by position.
void hnsw_walk(const faiss::IndexHNSW *h, const faiss::IndexFlat *f, const float *x, int64_t k, int ef,
	       const ix_select *sel, int post, float *dist, int64_t *labels)
{
	ix_hnsw_graph g = graph_of(h, f);
	long n = ix_hnsw_search(&g, thread_scratch(), x, (size_t)k, (size_t)ef, sel, post, dist, labels);
	if (n < 0)
		throw std::bad_alloc();
	const float *xb = f->get_xb();
	thread_local std::vector<std::pair<float, int64_t>> r;
	r.resize((size_t)n);
	for (long i = 0; i < n; i++) {
		const float *y = xb + (size_t)labels[i] * (size_t)h->d;
		r[i].first = g.ip ? -faiss::fvec_inner_product(x, y, (size_t)h->d)
				  : faiss::fvec_L2sqr(x, y, (size_t)h->d);
		r[i].second = labels[i];
	}
	std::sort(r.begin(), r.end());
	for (int64_t i = 0; i < k; i++) {
		dist[i] = i < n ? (g.ip ? -r[i].first : r[i].first) : std::numeric_limits<float>::infinity();
		labels[i] = i < n ? r[i].second : -1;
	}
}

// The beam search_sub walks an HNSW index with for k results under a filter
// admitting 1/w of it: efSearch (at least k); when the walk runs unfiltered
// and keeps the admitted of what it finds (post), wide enough to find
// postf * k admitted, at most every position.
double hnsw_beam(const faiss::IndexHNSW *hnsw, int64_t k, double w, int post, double postf)
{
	double ef = std::max((double)hnsw->hnsw.efSearch, (double)k);
	if (post) {
		double want = std::ceil(postf * (double)k * w);
		if (want > ef)
			ef = std::min(want, (double)hnsw->ntotal);
	}
	return ef;
}

void search_sub(const faiss::Index *sub, size_t nq, const float *x, int64_t k, int exhaustive,
		const ix_select *xs, faiss::IDSelector *sel, size_t admitted, float *dist, int64_t *labels)
{
	double w = widen(sub, sel, admitted);
	if (auto hnsw = dynamic_cast<const faiss::IndexHNSW *>(sub)) {
		double scan, postf, nt = (double)sub->ntotal;
		ix_faiss_filter_rules(&scan, &postf);
		/* ix_faiss_set_filter_rules says why */
		const faiss::IndexFlat *flat = flat_storage(hnsw);
		int post = flat && sel && w > 1.0 && postf > 0; /* hnsw_filtered keeps ef admitted */
		int ef = (int)hnsw_beam(hnsw, k, w, post, postf);
		if (post) {
			if (!exhaustive && nt / w + nt / IX_FAISS_TEST_COST <= (double)ef * scan)
				exhaustive = 1;
		} else if (!exhaustive && sel && (double)ef * scan * w * w >= nt) {
			exhaustive = 1;
		}
		if (exhaustive) {
			faiss::SearchParameters p;
			p.sel = sel;
			hnsw->storage->search((fidx)nq, x, k, dist, labels, sel ? &p : nullptr);
			return;
		}
		if (flat) {
			for (size_t i = 0; i < nq; i++)
				hnsw_walk(hnsw, flat, x + i * hnsw->d, k, ef, xs, post, dist + i * k, labels + i * k);
			return;
		}
		if (sel) {
			for (size_t i = 0; i < nq; i++)
				hnsw_filtered(hnsw, x + i * hnsw->d, k, ef, sel, dist + i * k, labels + i * k);
			return;
		}
		faiss::SearchParametersHNSW p;
		p.efSearch = ef;
		p.check_relative_distance = hnsw->hnsw.check_relative_distance;
		hnsw->search((fidx)nq, x, k, dist, labels, &p);
		return;
	}
	if (auto ivf = dynamic_cast<const faiss::IndexIVF *>(sub)) {
		faiss::SearchParametersIVF p;
		p.sel = sel;
		p.nprobe = exhaustive ? ivf->nlist
				      : std::min(ivf->nlist, (size_t)std::ceil((double)ivf->nprobe * w));
		p.max_codes = ivf->max_codes;
		ivf->search((fidx)nq, x, k, dist, labels, &p);
		return;
	}
	if (sel && dynamic_cast<const faiss::IndexPQ *>(sub))
		throw std::invalid_argument("IndexPQ cannot search with a selector (faiss refuses one)");
	faiss::SearchParameters p;
	p.sel = sel;
	sub->search((fidx)nq, x, k, dist, labels, sel ? &p : nullptr);
}

// The storage of an index that keeps its vectors exactly, in muri's two
// kernels: a flat index, or an HNSW over flat storage.
const faiss::IndexFlat *exact_flat(const faiss::Index *sub)
{
	if (auto h = dynamic_cast<const faiss::IndexHNSW *>(sub))
		return flat_storage(h);
	auto f = dynamic_cast<const faiss::IndexFlat *>(sub);
	if (!f || (f->metric_type != faiss::METRIC_INNER_PRODUCT && f->metric_type != faiss::METRIC_L2))
		return nullptr;
	return f;
}

const faiss::Index *sub_of(const faiss::Index *idx, const faiss::IndexIDMap **idmap)
{
	*idmap = dynamic_cast<const faiss::IndexIDMap *>(idx);
	return *idmap ? (*idmap)->index : idx;
}

} // namespace

extern "C" void ix_faiss_set_filter_rules(double scan, double post)
{
	scan_factor.store(scan > 0 ? scan : IX_FAISS_SCAN_FACTOR);
	post_factor.store(post >= 0 ? post : IX_FAISS_POST_FACTOR);
}

extern "C" void ix_faiss_filter_rules(double *scan, double *post)
{
	*scan = scan_factor.load(std::memory_order_relaxed);
	*post = post_factor.load(std::memory_order_relaxed);
}

extern "C" int ix_faiss_scan(const FaissIndex *index, const float *x, int64_t k, const size_t *pos, size_t n,
			     float *distances, int64_t *labels, char *err, size_t errlen)
{
	return guarded(err, errlen, [&]() -> int {
		const faiss::IndexIDMap *idmap;
		const faiss::Index *sub = sub_of(reinterpret_cast<const faiss::Index *>(index), &idmap);
		const faiss::IndexFlat *f = exact_flat(sub);
		if (!f)
			return fail(CM_ERR_STATE, err, errlen, "the index keeps no exact vectors to scan by position");
		bool ip = f->metric_type == faiss::METRIC_INNER_PRODUCT;
		const float *xb = f->get_xb();
		size_t d = (size_t)f->d, nt = (size_t)f->ntotal;
		// the k best as a max-heap on (key, position), key = -similarity or L2
		thread_local std::vector<std::pair<float, int64_t>> heap;
		heap.clear();
		// positions are scattered over the storage: ask for every cache line
		// of the vector a few positions ahead, so its misses overlap this one
		const size_t ahead = 4, lines = (d * sizeof(float) + 63) / 64;
		for (size_t i = 0; i < n; i++) {
			if (pos[i] >= nt)
				throw std::invalid_argument("a position past the index");
			if (i + ahead < n && pos[i + ahead] < nt) {
				const char *nx = reinterpret_cast<const char *>(xb + pos[i + ahead] * d);
				for (size_t l = 0; l < lines; l++)
					__builtin_prefetch(nx + 64 * l);
			}
			const float *y = xb + pos[i] * d;
			std::pair<float, int64_t> c(ip ? -faiss::fvec_inner_product(x, y, d) : faiss::fvec_L2sqr(x, y, d),
						     (int64_t)pos[i]);
			if ((int64_t)heap.size() < k) {
				heap.push_back(c);
				std::push_heap(heap.begin(), heap.end());
			} else if (k > 0 && c < heap.front()) {
				std::pop_heap(heap.begin(), heap.end());
				heap.back() = c;
				std::push_heap(heap.begin(), heap.end());
			}
		}
		std::sort_heap(heap.begin(), heap.end());
		for (int64_t i = 0; i < k; i++) {
			bool got = i < (int64_t)heap.size();
			distances[i] = got ? (ip ? -heap[i].first : heap[i].first)
					   : (ip ? -std::numeric_limits<float>::infinity()
						 : std::numeric_limits<float>::infinity());
			int64_t p = got ? heap[i].second : -1;
			if (p >= 0 && idmap)
				p = p < (int64_t)idmap->id_map.size() ? idmap->id_map[p] : -1;
			labels[i] = p;
		}
		return CM_OK;
	});
}

extern "C" int ix_faiss_scan_cheaper(const FaissIndex *index, int64_t k, size_t admitted)
{
	const faiss::IndexIDMap *idmap;
	const faiss::Index *sub = sub_of(reinterpret_cast<const faiss::Index *>(index), &idmap);
	const faiss::IndexFlat *f = exact_flat(sub);
	if (!f || sub->ntotal <= 0)
		return 0;
	double nt = (double)sub->ntotal, a = admitted ? (double)admitted : 1.0, cost = a * (1.0 + IX_FAISS_GATHER_COST);
	auto hnsw = dynamic_cast<const faiss::IndexHNSW *>(sub);
	if (!hnsw) // a flat index tests every position and computes the admitted
		return cost <= a + nt / IX_FAISS_TEST_COST;
	double scan, postf, w = a < nt ? nt / a : 1.0;
	ix_faiss_filter_rules(&scan, &postf);
	double ef = hnsw_beam(hnsw, k, w, postf > 0, postf);
	if (postf > 0) // search_sub's unfiltered beam, which visits at most every position
		return cost <= std::min(nt, ef) * scan;
	return cost <= ef * scan * w; // a beam of ef admitted visits about ef * w
}

extern "C" int ix_faiss_search(const FaissIndex *index, size_t nq, const float *x, int64_t k,
			       int exhaustive, const ix_select *sel, size_t admitted,
			       float *distances, int64_t *labels, char *err, size_t errlen)
{
	return guarded(err, errlen, [&]() -> int {
		one_thread guard;
		auto idx = reinterpret_cast<const faiss::Index *>(index);
		auto idmap = dynamic_cast<const faiss::IndexIDMap *>(idx);
		const faiss::Index *sub = idmap ? idmap->index : idx;
		select_ids ids(sel);
		search_sub(sub, nq, x, k, exhaustive, sel, sel ? &ids : nullptr, admitted, distances, labels);
		if (idmap) {
			const auto &map = idmap->id_map;
			for (size_t i = 0; i < nq * (size_t)k; i++)
				if (labels[i] >= 0)
					labels[i] = labels[i] < (int64_t)map.size() ? map[labels[i]] : -1;
		}
		return CM_OK;
	});
}

struct ix_faiss_adder {
	std::vector<omp_lock_t> locks; // one per HNSW node, as add_with_locks wants (storage not flat)
	faiss::VisitedTable vt{0};
	std::vector<ix_hnsw_scratch *> scr; // one per build thread
	// a prepared block: its plan, vectors and levels, against ntotal == n0
	ix_hnsw_plan plan{};
	bool planned = false;
	size_t n0 = 0;
	std::vector<float> x;
	std::vector<int> levels;
	~ix_faiss_adder()
	{
		for (auto &l : locks)
			omp_destroy_lock(&l);
		for (auto s : scr)
			ix_hnsw_scratch_free(s);
		ix_hnsw_plan_free(&plan);
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

// The level of the vector at position pos: drawn from (seed, pos).
int level_of(faiss::HNSW &hnsw, uint64_t seed, size_t pos)
{
	hnsw.rng = faiss::RandomGenerator((int64_t)(mix(seed ^ pos) >> 1));
	return hnsw.random_level() + 1;
}

// faiss's own insertion, vertex by vertex (storages the walk does not know).
void hnsw_add_faiss(faiss::IndexHNSW *h, ix_faiss_adder &a, size_t n, const float *x, uint64_t seed)
{
	faiss::HNSW &hnsw = h->hnsw;
	size_t n0 = (size_t)h->ntotal;
	FAISS_THROW_IF_NOT(h->is_trained && hnsw.levels.size() == n0);
	for (size_t i = 0; i < n; i++)
		hnsw.levels.push_back(level_of(hnsw, seed, n0 + i));
	h->storage->add((fidx)n, x);
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

// Plans the block of n (<= IX_FAISS_HNSW_BLOCK) vectors that follows the
// index, on `threads` threads; only reads the index.
void hnsw_prepare(faiss::IndexHNSW *h, const faiss::IndexFlat *f, ix_faiss_adder &a, size_t n, const float *x,
		  uint64_t seed, int threads)
{
	FAISS_THROW_IF_NOT(h->is_trained && h->hnsw.levels.size() == (size_t)h->ntotal);
	ix_hnsw_plan_free(&a.plan);
	a.planned = false;
	a.n0 = (size_t)h->ntotal;
	a.levels.resize(n);
	for (size_t i = 0; i < n; i++)
		a.levels[i] = level_of(h->hnsw, seed, a.n0 + i);
	a.x.assign(x, x + n * (size_t)h->d);
	threads = std::max(1, std::min(threads, 64));
	while (a.scr.size() < (size_t)threads) {
		ix_hnsw_scratch *s = ix_hnsw_scratch_new();
		if (!s)
			throw std::bad_alloc();
		a.scr.push_back(s);
	}
	ix_hnsw_graph g = graph_of(h, f);
	if (ix_hnsw_plan_block(&g, a.x.data(), n, a.levels.data(), (size_t)h->hnsw.efConstruction, threads,
			       a.scr.data(), &a.plan) != 0)
		throw std::bad_alloc();
	a.planned = true;
}

// Applies the prepared block: vectors, levels, links, entry point.
void hnsw_commit(faiss::IndexHNSW *h, ix_faiss_adder &a)
{
	faiss::HNSW &hnsw = h->hnsw;
	FAISS_THROW_IF_NOT_MSG(a.planned && a.n0 == (size_t)h->ntotal, "no block prepared for this index");
	size_t n = a.plan.n;
	hnsw.levels.insert(hnsw.levels.end(), a.levels.begin(), a.levels.end());
	h->storage->add((fidx)n, a.x.data());
	h->ntotal = h->storage->ntotal;
	hnsw.prepare_level_tab(n, true);
	for (size_t i = 0; i < n; i++)
		std::copy(a.plan.links + a.plan.loff[i], a.plan.links + a.plan.loff[i + 1],
			  hnsw.neighbors.begin() + (ptrdiff_t)hnsw.offsets[a.n0 + i]);
	const int *cum = hnsw.cum_nneighbor_per_level.data();
	size_t o = 0;
	for (size_t c = 0; c < a.plan.nchg; c++) {
		int l = a.plan.chg_level[c];
		size_t m = (size_t)(cum[l + 1] - cum[l]);
		std::copy(a.plan.chg_links + o, a.plan.chg_links + o + m,
			  hnsw.neighbors.begin() + (ptrdiff_t)(hnsw.offsets[a.plan.chg_node[c]] + cum[l]));
		o += m;
	}
	hnsw.entry_point = a.plan.entry;
	hnsw.max_level = a.plan.max_level;
	ix_hnsw_plan_free(&a.plan);
	a.planned = false;
}

struct target {
	faiss::IndexIDMap *idmap;
	faiss::IndexHNSW *hnsw;
	const faiss::IndexFlat *flat;
};

target target_of(FaissIndex *index)
{
	auto idx = reinterpret_cast<faiss::Index *>(index);
	auto idmap = dynamic_cast<faiss::IndexIDMap *>(idx);
	auto hnsw = dynamic_cast<faiss::IndexHNSW *>(idmap ? idmap->index : idx);
	return {idmap, hnsw, hnsw ? flat_storage(hnsw) : nullptr};
}

void add_labels(const target &t, size_t n, const int64_t *labels)
{
	if (t.idmap) {
		t.idmap->id_map.insert(t.idmap->id_map.end(), labels, labels + n);
		t.idmap->ntotal = t.hnsw->ntotal;
	}
}

} // namespace

extern "C" int ix_faiss_add(FaissIndex *index, ix_faiss_adder **adder, size_t n, const float *x,
			    const int64_t *labels, uint64_t seed, int threads, char *err, size_t errlen)
{
	try {
		one_thread guard;
		target t = target_of(index);
		if (!t.hnsw) {
			auto idx = reinterpret_cast<faiss::Index *>(index);
			if (t.idmap)
				t.idmap->add_with_ids((fidx)n, x, labels);
			else
				idx->add((fidx)n, x);
			return CM_OK;
		}
		if (!*adder)
			*adder = new ix_faiss_adder();
		if (!t.flat) {
			hnsw_add_faiss(t.hnsw, **adder, n, x, seed);
			add_labels(t, n, labels);
			return CM_OK;
		}
		for (size_t i = 0; i < n; i += IX_FAISS_HNSW_BLOCK) {
			size_t m = std::min(n - i, (size_t)IX_FAISS_HNSW_BLOCK);
			hnsw_prepare(t.hnsw, t.flat, **adder, m, x + i * (size_t)t.hnsw->d, seed, threads);
			hnsw_commit(t.hnsw, **adder);
			add_labels(t, m, labels + i);
		}
		return CM_OK;
	} catch (const std::bad_alloc &) {
		return fail(CM_ERR_NOMEM, err, errlen, "out of memory");
	} catch (const std::exception &e) {
		return fail(CM_ERR_INTERNAL, err, errlen, e.what());
	} catch (...) {
		return fail(CM_ERR_INTERNAL, err, errlen, "unknown exception");
	}
}

extern "C" int ix_faiss_block_prepare(FaissIndex *index, ix_faiss_adder **adder, size_t n, const float *x,
				      uint64_t seed, int threads, char *err, size_t errlen)
{
	try {
		target t = target_of(index);
		if (!t.flat || n > IX_FAISS_HNSW_BLOCK)
			return fail(CM_ERR_INVALID, err, errlen, "blocks are for HNSW over flat storage");
		if (!*adder)
			*adder = new ix_faiss_adder();
		hnsw_prepare(t.hnsw, t.flat, **adder, n, x, seed, threads);
		return CM_OK;
	} catch (const std::bad_alloc &) {
		return fail(CM_ERR_NOMEM, err, errlen, "out of memory");
	} catch (const std::exception &e) {
		return fail(CM_ERR_INTERNAL, err, errlen, e.what());
	} catch (...) {
		return fail(CM_ERR_INTERNAL, err, errlen, "unknown exception");
	}
}

extern "C" int ix_faiss_block_commit(FaissIndex *index, ix_faiss_adder *adder, const int64_t *labels, char *err,
				     size_t errlen)
{
	try {
		target t = target_of(index);
		if (!t.flat || !adder)
			return fail(CM_ERR_INVALID, err, errlen, "no block prepared");
		size_t n = adder->plan.n;
		hnsw_commit(t.hnsw, *adder);
		add_labels(t, n, labels);
		return CM_OK;
	} catch (const std::bad_alloc &) {
		return fail(CM_ERR_NOMEM, err, errlen, "out of memory");
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
