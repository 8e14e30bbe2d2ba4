/* The read handlers of the MurIndexer: Search (a signed answer over the
 * canonical digest of common/cm_answer.h, with the log size and root it was
 * computed at), Get and Scroll (a signed page of records in id order,
 * common/cm_scroll.h). All honour min_size (read your writes): they answer
 * once this replica's log holds at least that many records, waiting up to
 * read_wait_ms, and UNAVAILABLE after that so the caller asks another
 * replica. Built with -Dtest_faults=true, an indexer configured with
 * test_lie tampers with its answers (ix_lie.h) for the Byzantine tests. */
#include "ix_service_int.h"
#include "cm_answer.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "cm_scroll.h"
#include "cm_time.h"
#include "ix_sign.h"
#ifdef MURI_TEST_FAULTS
#include "ix_lie.h"
#endif

#include <stdio.h>
#include <string.h>
#include <time.h>

#define ERR_MAX 256
#define POLL_MIN_US 200
#define POLL_MAX_US 5000

/* Waits until fragment (magu, fragment) has a store holding at least
 * min_size records; on success *fo and *st are set (*st NULL when the node
 * is a member holding nothing yet and min_size is 0). Fails the call. */
static int wait_size(ix_service *s, cm_rpc_call *call, const char *magu, uint32_t fragment, uint64_t min_size,
		     struct frag **fo, ix_fragment **st)
{
	uint64_t start = cm_now_ms();
	long pause_us = POLL_MIN_US;
	for (;;) {
		struct frag *f = ixs_find_frag(s, magu, fragment);
		ix_fragment *x = f ? ixs_store_of(f) : NULL;
		if (!f || (!x && !ix_replica_is_member(f)))
			return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s/%u holds no data on this indexer", magu,
					   fragment);
		uint64_t size = x ? ix_fragment_size(x) : 0;
		if (size >= min_size) {
			*fo = f;
			*st = x;
			return GRPC_STATUS_OK;
		}
		uint64_t waited = cm_now_ms() - start;
		if (waited >= s->o.read_wait_ms || cm_rpc_deadline_left_ms(call) <= 0 || cm_rpc_cancelled(call))
			return cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE,
					   "min_size: this replica of %s/%u holds %llu records, %llu asked (waited %llu ms)",
					   magu, fragment, (unsigned long long)size, (unsigned long long)min_size,
					   (unsigned long long)waited);
		struct timespec t = {.tv_sec = 0, .tv_nsec = pause_us * 1000L};
		nanosleep(&t, NULL);
		pause_us = pause_us * 2 > POLL_MAX_US ? POLL_MAX_US : pause_us * 2;
	}
}

/* Signs r for the query digest over the canonical answer digest, with the
 * answers of other searches ready at the same time (ix_sign.h). */
static int sign_answer(ix_service *s, cm_rpc_call *call, const uint8_t *qd, const char *magu, uint32_t fragment,
		       Muri__V1__LocalSearchResponse *r)
{
	uint8_t d[CM_HASH_BYTES];
	uint8_t *sig = cm_rpc_alloc(call, CM_SIG_BYTES);
	uint8_t *path = cm_rpc_alloc(call, ix_signer_path_bytes(s->signer));
	if (!sig || !path)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (cm_answer_digest(d, qd, magu, fragment, r) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot encode the answer digest");
	if (ix_signer_sign(s->signer, d, r, sig, path) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory signing the answer");
	return GRPC_STATUS_OK;
}

/* ---- stage histograms ------------------------------------------------------ */

enum { ST_VALIDATE, ST_WAIT, ST_SEARCH, ST_HITS, ST_SIGN, ST_BUILD };
static const char *const stage_name[IX_SEARCH_STAGES] = {"validate", "wait", "search", "hits", "sign", "build"};

void ixs_read_metrics(ix_service *s)
{
	static const double bounds[] = {0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
					0.001,    0.0025,  0.005,    0.01,    0.05,   0.25,    1};
	for (int i = 0; i < IX_SEARCH_STAGES && s->o.metrics; i++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "stage=\"%s\"", stage_name[i]);
		s->stage[i] = cm_metrics_histogram(
			s->o.metrics, "muri_indexer_search_stage_seconds", labels,
			"time of one Search answer by stage: validate (query checks and digest), wait (min_size), search "
			"(the index and pending records), hits (reading the hits' records), sign (answer digest and "
			"signature), build (the response message); request decoding and response encoding are "
			"muri_rpc_decode_seconds and muri_rpc_encode_seconds",
			bounds, sizeof(bounds) / sizeof(bounds[0]));
	}
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void observe(ix_service *s, int stage, double seconds)
{
	if (s->stage[stage])
		cm_histogram_observe(s->stage[stage], seconds);
}

/* ---- Search ------------------------------------------------------------------ */

#define SEARCH_BATCH_DEFAULT 256

/* What every answer of one call shares. */
struct sreq {
	ix_service *s;
	cm_rpc_call *call;
	const Muri__V1__LocalSearchRequest *req;
	struct frag *f;
	ix_fragment *st;
	ix_filter filter;
};

/* Answers one query vector v (field names it in messages) into *out,
 * signed; or, with qd_out set (a batch, signed at once by the caller), not
 * signed yet: its query digest into qd_out and the lie it tells (test builds)
 * into *lie_out. */
static int answer_one(struct sreq *c, const Muri__V1__Vector *v, const char *field, Muri__V1__LocalSearchResponse **out,
		      uint8_t *qd_out, int *lie_out)
{
	ix_service *s = c->s;
	cm_rpc_call *call = c->call;
	const Muri__V1__LocalSearchRequest *req = c->req;
	cm_arena *a = cm_rpc_arena(call);
	char err[ERR_MAX];
	uint8_t qd[CM_HASH_BYTES];
	double t = now_s(), t1;
	/* the digest binds the query's bytes: its floats, or a binary vector's packed bytes */
	if (cm_answer_query_digest_pb(qd, v, req->top_k, req->filter) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "filter: a duplicate or empty key");
	observe(s, ST_VALIDATE, (t1 = now_s()) - t);
	Muri__V1__LocalSearchResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__local_search_response__init(r);
	int code;
	if (!c->st) {
		/* assigned here, nothing received yet: an empty log answers, at size 0 */
		uint8_t root[CM_HASH_BYTES];
		cm_merkle_blake2b.empty(root);
		ixs_set_hash(call, &r->root, root);
		if (!r->root.data)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		if (qd_out) {
			memcpy(qd_out, qd, CM_HASH_BYTES);
			*lie_out = 0;
			*out = r;
			return GRPC_STATUS_OK;
		}
		code = sign_answer(s, call, qd, req->magu, req->fragment, r);
		if (code == GRPC_STATUS_OK)
			*out = r;
		return code;
	}
	ix_query q = {.vec = v->binary.len ? NULL : v->values,
		      .dim = v->binary.len ? (uint32_t)v->binary.len * 8 : (uint32_t)v->n_values,
		      .bin = v->binary.len ? v->binary.data : NULL, .k = req->top_k,
		      .filter = &c->filter, .include_vectors = req->include_vectors};
	int lie = 0;
#ifdef MURI_TEST_FAULTS
	lie = ix_lie_next(s->lie);
	if (lie == IX_LIE_DROP_NN && q.k < 1000)
		q.k++; /* one more, to fill the place of the one dropped */
#endif
	ix_result res;
	int rc = ix_fragment_search(c->st, &q, a, &res, err, sizeof(err));
	if (rc != CM_OK) {
		/* name the batch's element in place of the single query's field */
		if (rc == CM_ERR_INVALID && strncmp(err, "query.", 6) == 0 && strcmp(field, "query") != 0)
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s%s", field, err + 5);
		return ixs_fail_from(call, rc, err);
	}
	observe(s, ST_SEARCH, res.search_s);
	observe(s, ST_HITS, res.hits_s);
	t = now_s();
	Muri__V1__Hit **hits = cm_rpc_alloc(call, (res.n ? res.n : 1) * sizeof(*hits));
	if (!hits)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < res.n; i++)
		if (ix_hit_to_pb(&res.hits[i], a, &hits[i]) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	r->hits = hits;
	r->n_hits = res.n;
	r->log_size = res.log_size;
	ixs_set_hash(call, &r->root, res.root);
	if (!r->root.data)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
#ifdef MURI_TEST_FAULTS
	if (lie && ix_lie_tamper(lie, &c->f->spec, v, req->top_k, r, a) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
#endif
	observe(s, ST_BUILD, (t1 = now_s()) - t);
	if (qd_out) {
		memcpy(qd_out, qd, CM_HASH_BYTES);
		*lie_out = lie;
		*out = r;
		return GRPC_STATUS_OK;
	}
	code = sign_answer(s, call, qd, req->magu, req->fragment, r);
	observe(s, ST_SIGN, now_s() - t1);
#ifdef MURI_TEST_FAULTS
	if (code == GRPC_STATUS_OK && lie == IX_LIE_REPLAY)
		r = ix_lie_replay(s->lie, req->magu, req->fragment, r, a);
#endif
	(void)lie;
	if (code == GRPC_STATUS_OK)
		*out = r;
	return code;
}

int ix_h_search(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__LocalSearchRequest *req = (const Muri__V1__LocalSearchRequest *)msg;
	struct sreq c = {.s = s, .call = call, .req = req};
	cm_arena *a = cm_rpc_arena(call);
	char err[ERR_MAX];
	size_t maxb = s->o.max_search_batch ? s->o.max_search_batch : SEARCH_BATCH_DEFAULT;
	double t = now_s();
	if (req->query && req->n_queries)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "queries: %zu vectors and query set too; send one or the other", req->n_queries);
	if (!req->query && !req->n_queries)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "query: required (or 1..%zu in queries)", maxb);
	if (req->n_queries > maxb)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "queries: %zu, expected 1..%zu", req->n_queries,
				   maxb);
	for (size_t i = 0; i < req->n_queries; i++)
		if (!req->queries[i])
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "queries[%zu]: required", i);
	if (req->filter && ix_filter_from_pb(req->filter, a, &c.filter, err, sizeof(err)) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
	observe(s, ST_VALIDATE, now_s() - t);
	t = now_s();
	int code = ixs_peer_check(s, call, "Search", req->magu, req->fragment, ixs_find_frag(s, req->magu, req->fragment), 1);
	if (code != GRPC_STATUS_OK)
		return code;
	code = wait_size(s, call, req->magu, req->fragment, req->min_size, &c.f, &c.st);
	if (code != GRPC_STATUS_OK)
		return code;
	if (req->min_size)
		observe(s, ST_WAIT, now_s() - t);
	if (req->query) {
		Muri__V1__LocalSearchResponse *r = NULL;
		ix_signer_enter(s->signer);
		code = answer_one(&c, req->query, "query", &r, NULL, NULL);
		ix_signer_leave(s->signer);
		if (code == GRPC_STATUS_OK)
			*resp = &r->base;
		return code;
	}
	size_t n = req->n_queries;
	Muri__V1__LocalSearchResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__LocalSearchResponse **ans = cm_rpc_alloc(call, n * sizeof(*ans));
	uint8_t(*qds)[CM_HASH_BYTES] = cm_rpc_alloc(call, n * CM_HASH_BYTES);
	int *lies = cm_rpc_alloc(call, n * sizeof(*lies));
	uint8_t *sig = cm_rpc_alloc(call, CM_SIG_BYTES);
	uint8_t *paths = cm_rpc_alloc(call, n * CM_ANSWER_PATH_MAX(n) * CM_HASH_BYTES);
	if (!r || !ans || !qds || !lies || !sig || !paths)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__local_search_response__init(r);
	for (size_t i = 0; i < n; i++) {
		char field[32];
		snprintf(field, sizeof(field), "queries[%zu]", i);
		if ((code = answer_one(&c, req->queries[i], field, &ans[i], qds[i], &lies[i])) != GRPC_STATUS_OK)
			return code;
	}
	/* one signature for the call: every answer carries its path to the root signed */
	t = now_s();
	if (cm_answer_sign_batch(&s->key, (const uint8_t(*)[CM_HASH_BYTES])qds, req->magu, req->fragment, ans, n, sig,
				 paths) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot encode the answer digests");
	observe(s, ST_SIGN, (now_s() - t) / (double)n);
#ifdef MURI_TEST_FAULTS
	for (size_t i = 0; i < n; i++)
		if (lies[i] == IX_LIE_REPLAY)
			ans[i] = ix_lie_replay(s->lie, req->magu, req->fragment, ans[i], a);
#endif
	r->answers = ans;
	r->n_answers = req->n_queries;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int ix_h_get(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__LocalGetRequest *req = (const Muri__V1__LocalGetRequest *)msg;
	struct frag *f;
	ix_fragment *st;
	int code = ixs_peer_check(s, call, "Get", req->magu, req->fragment, ixs_find_frag(s, req->magu, req->fragment), 1);
	if (code != GRPC_STATUS_OK)
		return code;
	if (req->n_ids < 1 || req->n_ids > s->o.frag.max_get)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "ids: %zu, expected 1..%u", req->n_ids,
				   s->o.frag.max_get);
	cm_arena *a = cm_rpc_arena(call);
	uint8_t(*ids)[IX_ID_BYTES] = cm_arena_alloc(a, req->n_ids * IX_ID_BYTES);
	if (!ids)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < req->n_ids; i++)
		if (ix_uuid_parse(req->ids[i], ids[i]) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "ids[%zu]: \"%.40s\" is not a UUIDv4", i,
					   req->ids[i]);
	code = wait_size(s, call, req->magu, req->fragment, req->min_size, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	Muri__V1__LocalGetResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__local_get_response__init(r);
	if (!st) {
		*resp = &r->base; /* a member holding nothing yet: none of the ids */
		return GRPC_STATUS_OK;
	}
	/* the get reflects at least this size */
	r->log_size = ix_fragment_size(st);
	ix_hit *hits = NULL;
	size_t n = 0;
	char err[ERR_MAX];
	int rc = ix_fragment_get(st, (const uint8_t(*)[IX_ID_BYTES])ids, req->n_ids, req->include_vectors, a, &hits,
				 &n, err, sizeof(err));
	if (rc != CM_OK)
		return ixs_fail_from(call, rc, err);
	Muri__V1__Hit **pbs = cm_rpc_alloc(call, (n ? n : 1) * sizeof(*pbs));
	if (!pbs)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (ix_hit_to_pb(&hits[i], a, &pbs[i]) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	r->hits = pbs;
	r->n_hits = n;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

/* ---- Scroll ------------------------------------------------------------------ */

#define SCROLL_SCAN_DEFAULT 100000

/* A page of the fragment's live records in id order (ix_fragment_scroll),
 * signed over cm_scroll_digest. A member that holds nothing yet answers an
 * empty, finished page at size 0. */
int ix_h_scroll(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__LocalScrollRequest *req = (const Muri__V1__LocalScrollRequest *)msg;
	/* a page is a fragment's records: under mutual TLS, only the roles that
	 * may Search and Get may read it */
	int code = ixs_peer_check(s, call, "Scroll", req->magu, req->fragment, ixs_find_frag(s, req->magu, req->fragment), 1);
	if (code != GRPC_STATUS_OK)
		return code;
	cm_arena *a = cm_rpc_arena(call);
	char err[ERR_MAX];
	uint32_t scan_cap = s->o.max_scroll_scan ? s->o.max_scroll_scan : SCROLL_SCAN_DEFAULT;
	if (req->limit < 1 || req->limit > s->o.frag.max_get)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "limit: %u, expected 1..%u", req->limit,
				   s->o.frag.max_get);
	if (req->scan_max > scan_cap)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "scan_max: %u, expected 0..%u (max_scroll_scan)",
				   req->scan_max, scan_cap);
	uint8_t after[IX_ID_BYTES];
	int has_after = req->after_id && req->after_id[0];
	if (has_after && ix_uuid_parse(req->after_id, after) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "after_id: \"%.40s\" is not a UUIDv4",
				   req->after_id);
	ix_filter filter = {0};
	if (req->filter && ix_filter_from_pb(req->filter, a, &filter, err, sizeof(err)) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
	struct frag *f;
	ix_fragment *st;
	code = wait_size(s, call, req->magu, req->fragment, req->min_size, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	Muri__V1__LocalScrollResponse *r = cm_rpc_alloc(call, sizeof(*r));
	uint8_t *sig = cm_rpc_alloc(call, CM_SIG_BYTES);
	if (!r || !sig)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__local_scroll_response__init(r);
	if (!st) {
		uint8_t root[CM_HASH_BYTES];
		cm_merkle_blake2b.empty(root);
		ixs_set_hash(call, &r->root, root);
		r->done = 1;
	} else {
		ix_scroll_query q = {.after = has_after ? after : NULL, .limit = req->limit,
				     .scan_max = req->scan_max ? req->scan_max : scan_cap, .filter = &filter,
				     .include_vectors = req->include_vectors};
		ix_scroll_result res;
		int rc = ix_fragment_scroll(st, &q, a, &res, err, sizeof(err));
		if (rc != CM_OK)
			return ixs_fail_from(call, rc, err);
		Muri__V1__Hit **hits = cm_rpc_alloc(call, (res.n ? res.n : 1) * sizeof(*hits));
		char *last = cm_rpc_alloc(call, IX_UUID_CHARS + 1);
		if (!hits || !last)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		for (size_t i = 0; i < res.n; i++)
			if (ix_hit_to_pb(&res.hits[i], a, &hits[i]) != CM_OK)
				return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		r->hits = hits;
		r->n_hits = res.n;
		r->log_size = res.log_size;
		r->done = res.done;
		last[0] = '\0';
		if (res.has_last)
			ix_uuid_format(res.last, last);
		r->last_id = last;
		ixs_set_hash(call, &r->root, res.root);
	}
	if (!r->root.data)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (cm_scroll_sign(&s->key, req, r, sig) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot encode the page digest");
	*resp = &r->base;
	return GRPC_STATUS_OK;
}
