/* Search and SearchBatch: each query goes to every fragment at the level's
 * number of replicas (ONE: 1, QUORUM: a majority of the fragment's replica
 * set, ALL: every one), all calls in parallel on the fan-out pool under the
 * request's deadline. A call slot that fails moves on to the fragment's next
 * replica not yet asked (the primary first, then the ledger's order), so a
 * dead replica costs one failed call, not the level; while others are left,
 * a call gets at most try_timeout_ms, so a node that drops packets does not
 * hold the request to its deadline. The answers, with
 * their vectors, are merged per query (gw_search_merge) into the global
 * top k; the metrics say how many nodes were asked and answered and which
 * level every fragment reached. */
#include "gw.h"
#include "gw_recent.h"
#include "cm_err.h"
#include "cm_time.h"
#include "ix_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cell {                  /* one (query, fragment) */
	pthread_mutex_t mu;
	uint32_t next;             /* next position in the fragment's replica order */
	uint32_t answered;
};

struct sjob {
	gw_ctx *g;
	const gw_coll *m;
	uint64_t deadline;
	Muri__V1__Vector **queries;
	size_t nq;
	uint32_t top_k;            /* asked of each fragment */
	uint32_t user_k;           /* the request's top_k */
	Muri__V1__Filter *filter;
	uint32_t per_query;        /* call slots per query: sum of want over fragments */
	uint32_t *slot_frag;       /* per_query: the fragment of each slot */
	uint32_t *want;            /* per fragment */
	uint32_t (*order)[GW_MAX_REPLICAS]; /* replica order per group of per_call queries and fragment */
	struct cell *cells;        /* nq * nfrag */
	size_t per_call;           /* queries one Search call carries (queries_per_call) */
	struct cell *gcells;       /* first round: ngroups * nfrag, a group being per_call queries */
	gw_search_answer *ans;     /* nq * per_query */
	gw_search_answer *more;    /* answers of follow-up rounds (their q set) */
	size_t more_off;           /* the current round's first */
	gw_owned *keep;
	atomic_uint *asked_mask;   /* per fragment: replicas asked, bit per replica index */
	atomic_uint *answered_mask;
	int last_code;
	char last_msg[1024];
	pthread_mutex_t mu;
};

/* Asks the fragment f for queries q0..q0+n at its next replica not yet
 * asked (cell c), moving on when one fails: one Search call carries them all
 * (LocalSearchRequest.queries when n > 1) and the answer of query q0+i goes
 * to out[i * stride]. The answers' resp stay NULL when no replica answered. */
static void ask(struct sjob *j, size_t q0, size_t n, uint32_t f, struct cell *c, gw_search_answer *out,
		size_t stride)
{
	const gw_frag *fr = &j->m->frags[f];
	for (size_t i = 0; i < n; i++) {
		out[i * stride].fragment = f;
		out[i * stride].q = q0 + i;
	}
	Muri__V1__LocalSearchRequest req = MURI__V1__LOCAL_SEARCH_REQUEST__INIT;
	req.magu = (char *)j->m->name;
	req.fragment = f;
	if (n == 1) {
		req.query = j->queries[q0];
	} else {
		req.queries = &j->queries[q0];
		req.n_queries = n;
	}
	req.top_k = j->top_k;
	req.filter = j->filter;
	req.include_vectors = 1; /* every distance is checked against its vector */
	req.min_size = fr->acked_size; /* read your writes */
	for (;;) {
		pthread_mutex_lock(&c->mu);
		uint32_t pos = c->next < fr->nrep ? c->next++ : UINT32_MAX;
		pthread_mutex_unlock(&c->mu);
		if (pos == UINT32_MAX)
			return;
		uint32_t r = j->order[(q0 / j->per_call) * j->m->nfrag + f][pos];
		uint64_t now = cm_now_ms();
		if (now >= j->deadline) {
			pthread_mutex_lock(&j->mu);
			j->last_code = GRPC_STATUS_DEADLINE_EXCEEDED;
			snprintf(j->last_msg, sizeof(j->last_msg), "fragment %u: no answer before the deadline", f);
			pthread_mutex_unlock(&j->mu);
			return;
		}
		cm_rpc_client *cl = gw_clients_get(j->g->clients, fr->rep[r].addr, fr->rep[r].pk);
		if (!cl)
			continue;
		atomic_fetch_or(&j->asked_mask[f], 1u << r);
		/* While other replicas are left to ask, one that does not answer
		 * (a node that died without closing its connections, a partition
		 * that drops packets) costs try_timeout_ms, not the deadline. */
		uint64_t budget = j->deadline - now;
		/* at ALL every replica is asked at once: none is left over */
		pthread_mutex_lock(&c->mu);
		int others_left = c->next < fr->nrep && j->want[f] < fr->nrep;
		pthread_mutex_unlock(&c->mu);
		/* a call carrying n queries takes longer: each one past the first adds try_query_ms */
		uint64_t try_ms = (uint64_t)j->g->cfg->try_timeout_ms + (uint64_t)(n - 1) * (uint64_t)j->g->cfg->try_query_ms;
		if (others_left && budget > try_ms)
			budget = try_ms;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		int rc = cm_rpc_unary(cl, "/muri.v1.Indexer/Search", &req.base,
				      &muri__v1__local_search_response__descriptor, &resp, (int)budget, &st);
		uint64_t took = cm_now_ms() - now;
		int kept = rc == CM_OK && gw_owned_add(j->keep, resp) == CM_OK;
		Muri__V1__LocalSearchResponse *lr = kept ? (Muri__V1__LocalSearchResponse *)resp : NULL;
		int complete = lr && (n == 1 ? lr->n_answers == 0 : lr->n_answers == n);
		for (size_t i = 0; complete && n > 1 && i < n; i++)
			complete = lr->answers[i] && lr->answers[i]->n_answers == 0;
		if (complete) {
			for (size_t i = 0; i < n; i++) {
				gw_search_answer *a = &out[i * stride];
				a->resp = n == 1 ? lr : lr->answers[i];
				a->replica = r;
				a->latency_ms = took;
			}
			atomic_fetch_or(&j->answered_mask[f], 1u << r);
			pthread_mutex_lock(&c->mu);
			c->answered++;
			pthread_mutex_unlock(&c->mu);
			return;
		}
		pthread_mutex_lock(&j->mu);
		j->last_code = rc != CM_OK ? st.code : lr ? GRPC_STATUS_INTERNAL : GRPC_STATUS_RESOURCE_EXHAUSTED;
		if (rc != CM_OK)
			snprintf(j->last_msg, sizeof(j->last_msg), "fragment %u at %s: %s", f, fr->rep[r].addr, st.message);
		else if (lr)
			snprintf(j->last_msg, sizeof(j->last_msg), "fragment %u at %s: %zu answers to %zu queries", f,
				 fr->rep[r].addr, lr->n_answers, n);
		else
			snprintf(j->last_msg, sizeof(j->last_msg), "fragment %u at %s: out of memory", f,
				 fr->rep[r].addr);
		pthread_mutex_unlock(&j->mu);
		if ((rc == CM_OK && !lr) || (rc != CM_OK && st.code == GRPC_STATUS_INVALID_ARGUMENT))
			return;
	}
}

/* The first round: call slot s of the level's slots of every group of up to
 * per_call queries (task t: group t / per_query, slot t % per_query). */
static void search_one(void *arg, size_t t)
{
	struct sjob *j = arg;
	size_t g = t / j->per_query, s = t % j->per_query, q0 = g * j->per_call;
	size_t n = j->nq - q0 < j->per_call ? j->nq - q0 : j->per_call;
	uint32_t f = j->slot_frag[s];
	ask(j, q0, n, f, &j->gcells[g * j->m->nfrag + f], &j->ans[q0 * j->per_query + s], j->per_query);
}

/* A follow-up round: one more replica for each unsettled (query, fragment). */
static void search_more(void *arg, size_t t)
{
	struct sjob *j = arg;
	gw_search_answer *a = &j->more[j->more_off + t];
	ask(j, a->q, 1, a->fragment, &j->cells[a->q * j->m->nfrag + a->fragment], a, 1);
}

/* Merges query q over its first-round answers and those of follow-up rounds. */
static int merge_query(struct sjob *j, cm_rpc_call *call, size_t q, size_t nmore, int include_vectors,
		       gw_tally *tally, int final, uint8_t *uns, int *tallied, Muri__V1__SearchResult ***res,
		       size_t *nres, char *err, size_t errlen)
{
	size_t n = j->per_query;
	for (size_t e = 0; e < nmore; e++)
		n += j->more[e].q == q;
	gw_search_answer *all = malloc((n ? n : 1) * sizeof(*all));
	if (!all) {
		snprintf(err, errlen, "out of memory");
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	memcpy(all, &j->ans[q * j->per_query], j->per_query * sizeof(*all));
	for (size_t e = 0, w = j->per_query; e < nmore; e++)
		if (j->more[e].q == q)
			all[w++] = j->more[e];
	int code = gw_search_merge(j->g, call, j->m, j->queries[q], j->top_k, j->filter, include_vectors, all, n, tally, final,
				   uns, tallied, res, nres, err, errlen);
	if (code == GRPC_STATUS_OK && *nres > j->user_k)
		*nres = j->user_k; /* asked for more of a restricted parent (see run) */
	free(all);
	return code;
}

static int want_of(int level, uint32_t n)
{
	return level == MURI__V1__CONSISTENCY_LEVEL__ONE ? (n ? 1 : 0)
	       : level == MURI__V1__CONSISTENCY_LEVEL__ALL ? (int)n
							   : (int)cm_fragment_majority(n);
}

static int level_reached(uint32_t answered, uint32_t n)
{
	if (n && answered >= n)
		return MURI__V1__CONSISTENCY_LEVEL__ALL;
	if (n && answered >= cm_fragment_majority(n))
		return MURI__V1__CONSISTENCY_LEVEL__QUORUM;
	return answered ? MURI__V1__CONSISTENCY_LEVEL__ONE : MURI__V1__CONSISTENCY_LEVEL__CONSISTENCY_UNSPECIFIED;
}

/* Checks and runs a search of queries[0..nq); fills results[q] and metrics. */
static int run(gw_ctx *g, cm_rpc_call *call, const char *collection, Muri__V1__Vector **queries, size_t nq,
	       const char *qfield, uint32_t top_k, int metric, Muri__V1__Filter *filter, int level_in,
	       int include_vectors, uint32_t timeout_ms, Muri__V1__SearchResult ***results, size_t *nresults,
	       Muri__V1__SearchMetrics **metrics)
{
	uint64_t t0 = cm_now_ms();
	char err[GW_ERR_MAX] = "";
	if (gw_valid_name(collection, "collection", err, sizeof(err)) != CM_OK ||
	    gw_valid_level(level_in, "consistency_level", err, sizeof(err)) != CM_OK ||
	    gw_valid_timeout(timeout_ms, "timeout_ms", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_caller who;
	gw_quota_ask ask = {.queries = nq, .top_k = top_k};
	int ac = gw_authorize_ask(g, call, collection, GW_NEED_READ, &ask, qfield, &who);
	if (ac != GRPC_STATUS_OK)
		return ac;
	if (top_k < 1 || top_k > GW_MAX_TOP_K)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "top_k: %u, expected 1..%d", top_k, GW_MAX_TOP_K);
	if (metric < MURI__V1__METRIC__METRIC_UNSPECIFIED || metric > MURI__V1__METRIC__HAMMING)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "distance_metric: unknown metric %d (COSINE, L2, DOT_PRODUCT or HAMMING)", metric);
	ix_filter xf;
	if (filter && ix_filter_from_pb(filter, cm_rpc_arena(call), &xf, err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_coll *m = NULL;
	if ((ac = gw_coll_get(g, call, "collection", collection, &m)) != GRPC_STATUS_OK)
		return ac;
	int code = GRPC_STATUS_OK;
	if (metric && metric != m->metric) {
		code = cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "distance_metric: %s, the collection \"%s\" is searched by %s",
				   protobuf_c_enum_descriptor_get_value(&muri__v1__metric__descriptor, metric)->name, m->name,
				   protobuf_c_enum_descriptor_get_value(&muri__v1__metric__descriptor, m->metric)
					   ? protobuf_c_enum_descriptor_get_value(&muri__v1__metric__descriptor, m->metric)->name
					   : "?");
		gw_coll_free(m);
		return code;
	}
	for (size_t q = 0; q < nq; q++) {
		char field[48];
		if (nq == 1 && strcmp(qfield, "query_vector") == 0)
			snprintf(field, sizeof(field), "%s", qfield);
		else
			snprintf(field, sizeof(field), "%s[%zu]", qfield, q);
		if (gw_valid_vector(queries[q], m->dim, m->metric, field, err, sizeof(err)) != CM_OK) {
			gw_coll_free(m);
			return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
		}
	}
	/* a replica answers each query with its hits' vectors (the distances
	 * are checked against them), and the reply carries them if asked */
	uint64_t max_message = g->cfg->base.rpc_max_message;
	if (gw_valid_vectors_fit(top_k, GW_WIRE_DIM(m), max_message, "top_k", "hits", err, sizeof(err)) != CM_OK ||
	    (include_vectors &&
	     gw_valid_vectors_fit((uint64_t)nq * top_k, GW_WIRE_DIM(m), max_message, "include_vectors", "hits", err,
				  sizeof(err)) != CM_OK)) {
		gw_coll_free(m);
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	}
	int level = level_in ? level_in : MURI__V1__CONSISTENCY_LEVEL__QUORUM;
	int noted = 0; /* a receipt was left: the charge stands */
	if ((code = gw_charge(g, call, &who, nq)) != GRPC_STATUS_OK) {
		gw_coll_free(m);
		return code;
	}
	struct sjob *j = calloc(1, sizeof(*j));
	if (!j) {
		gw_coll_free(m);
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	}
	j->g = g;
	j->m = m;
	j->deadline = gw_deadline(g, call, timeout_ms);
	j->queries = queries;
	j->nq = nq;
	j->top_k = top_k;
	j->user_k = top_k;
	/* a frozen parent read for a half not live yet answers for its whole
	 * cell: ask it for twice as many, so that its top hits of the half's
	 * cell (about half of them) still fill top_k */
	for (size_t i = 0; i < m->nplan; i++)
		if (m->plan[i].restrict_cell) {
			uint64_t most = gw_vectors_per_message(GW_WIRE_DIM(m), max_message);
			uint64_t k2 = 2 * (uint64_t)top_k;
			if (k2 > GW_MAX_TOP_K)
				k2 = GW_MAX_TOP_K;
			if (k2 > most)
				k2 = most;
			if (k2 > top_k)
				j->top_k = (uint32_t)k2;
			break;
		}
	j->filter = filter;
	j->keep = gw_owned_new(call);
	pthread_mutex_init(&j->mu, NULL);
	j->per_call = g->cfg->queries_per_call > 0 ? (size_t)g->cfg->queries_per_call : 1;
	/* as many queries per call as their answers' vectors fit in one message */
	size_t fit = gw_vectors_per_message(GW_WIRE_DIM(m), max_message) / j->top_k;
	if (j->per_call > fit)
		j->per_call = fit ? fit : 1;
	size_t ngroups = (nq + j->per_call - 1) / j->per_call;
	j->want = calloc(m->nfrag, sizeof(*j->want));
	j->order = calloc(ngroups * m->nfrag, sizeof(*j->order));
	j->asked_mask = calloc(m->nfrag, sizeof(*j->asked_mask));
	j->answered_mask = calloc(m->nfrag, sizeof(*j->answered_mask));
	for (uint32_t f = 0; j->want && j->order && f < m->nfrag; f++) {
		const gw_frag *fr = &m->frags[f];
		/* the split map's plan: a split or retired fragment, or a half read from its parent, is not asked */
		j->want[f] = fr->ask ? (uint32_t)want_of(level, fr->nrep) : 0;
		j->per_query += j->want[f];
		/* by rank: suspected liars last, load spread over equally good
		 * nodes, each group of a batch drawn on its own */
		for (size_t gi = 0; gi < ngroups; gi++)
			gw_replica_order(g, fr, j->order[gi * m->nfrag + f]);
	}
	size_t ncalls = ngroups * j->per_query;
	j->slot_frag = calloc(j->per_query ? j->per_query : 1, sizeof(*j->slot_frag));
	j->cells = calloc(nq * m->nfrag, sizeof(*j->cells));
	j->gcells = calloc(ngroups * m->nfrag, sizeof(*j->gcells));
	j->ans = cm_rpc_alloc(call, (nq * j->per_query > 0 ? nq * j->per_query : 1) * sizeof(*j->ans));
	if (!j->keep || !j->want || !j->order || !j->asked_mask || !j->answered_mask || !j->slot_frag || !j->cells ||
	    !j->gcells || !j->ans) {
		code = cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (uint32_t f = 0, s = 0; f < m->nfrag; f++)
		for (uint32_t w = 0; w < j->want[f]; w++)
			j->slot_frag[s++] = f;
	for (size_t i = 0; i < nq * m->nfrag; i++)
		pthread_mutex_init(&j->cells[i].mu, NULL);
	for (size_t i = 0; i < ngroups * m->nfrag; i++)
		pthread_mutex_init(&j->gcells[i].mu, NULL);
	int pooled = gw_pool_run(g->pool, ncalls, search_one, j);
	/* every query of a group stands where its group's call left it */
	for (size_t q = 0; q < nq; q++)
		for (uint32_t f = 0; f < m->nfrag; f++) {
			const struct cell *gc = &j->gcells[(q / j->per_call) * m->nfrag + f];
			j->cells[q * m->nfrag + f].next = gc->next;
			j->cells[q * m->nfrag + f].answered = gc->answered;
		}
	for (size_t i = 0; i < ngroups * m->nfrag; i++)
		pthread_mutex_destroy(&j->gcells[i].mu);
	if (pooled != CM_OK) {
		code = cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "the gateway has max_fanout calls to indexers queued; try again");
		goto out_cells;
	}
	/* the level every fragment reached, over all queries */
	int achieved = MURI__V1__CONSISTENCY_LEVEL__ALL;
	uint32_t short_frag = UINT32_MAX;
	for (size_t q = 0; q < nq; q++)
		for (uint32_t f = 0; f < m->nfrag; f++) {
			const struct cell *c = &j->cells[q * m->nfrag + f];
			if (!m->frags[f].ask)
				continue;
			int l = level_reached(c->answered, m->frags[f].nrep);
			if (l < achieved)
				achieved = l;
			if (c->answered < j->want[f] || m->frags[f].nrep == 0)
				short_frag = f;
		}
	if (short_frag != UINT32_MAX) {
		int c = j->last_code == GRPC_STATUS_DEADLINE_EXCEEDED ? GRPC_STATUS_DEADLINE_EXCEEDED
			: j->last_code == GRPC_STATUS_INVALID_ARGUMENT ? GRPC_STATUS_INVALID_ARGUMENT
								       : GRPC_STATUS_UNAVAILABLE;
		code = cm_rpc_fail(call, c, "PARTIAL: fragment %u answered below the level asked (%s): %s", short_frag,
				   level == MURI__V1__CONSISTENCY_LEVEL__ONE ? "ONE"
				   : level == MURI__V1__CONSISTENCY_LEVEL__ALL ? "ALL"
									      : "QUORUM",
				   j->last_msg[0] ? j->last_msg : "no replica is configured");
		if (g->m.partial)
			cm_counter_add(g->m.partial, 1);
		goto out_cells;
	}
	gw_tally *tally = calloc(1, sizeof(*tally));
	uint8_t *uns = calloc(nq * m->nfrag, 1);
	int *tallied = calloc(nq, sizeof(*tallied));
	if (!tally || !uns || !tallied) {
		free(tally);
		free(uns);
		free(tallied);
		code = cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out_cells;
	}
	for (size_t q = 0; q < nq && code == GRPC_STATUS_OK; q++)
		code = merge_query(j, call, q, 0, include_vectors, tally, 0, &uns[q * m->nfrag], &tallied[q], &results[q],
				   &nresults[q], err, sizeof(err));
	/* follow-up rounds: a fragment whose answers tied or lied asks one more
	 * replica, until it is settled or every replica was asked */
	size_t nmore = 0;
	for (int round = 0; code == GRPC_STATUS_OK && round < GW_MAX_REPLICAS; round++) {
		size_t want = 0;
		for (size_t i = 0; i < nq * m->nfrag; i++)
			want += uns[i] && j->cells[i].next < m->frags[i % m->nfrag].nrep;
		if (want == 0)
			break;
		gw_search_answer *mo = realloc(j->more, (nmore + want) * sizeof(*mo));
		if (!mo) {
			code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			snprintf(err, sizeof(err), "out of memory");
			break;
		}
		j->more = mo;
		memset(mo + nmore, 0, want * sizeof(*mo));
		size_t at = nmore;
		for (size_t i = 0; i < nq * m->nfrag; i++)
			if (uns[i] && j->cells[i].next < m->frags[i % m->nfrag].nrep) {
				mo[at].q = i / m->nfrag;
				mo[at++].fragment = (uint32_t)(i % m->nfrag);
			}
		j->more_off = nmore; /* the round's tasks index from here */
		if (gw_pool_run(g->pool, want, search_more, j) != CM_OK) {
			code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			snprintf(err, sizeof(err), "the gateway has max_fanout calls to indexers queued; try again");
			break;
		}
		nmore += want;
		/* merge again the queries that got more answers */
		for (size_t q = 0; q < nq && code == GRPC_STATUS_OK; q++) {
			int again = 0;
			for (uint32_t f = 0; f < m->nfrag; f++)
				again |= uns[q * m->nfrag + f];
			if (!again)
				continue;
			int last = 1;
			for (uint32_t f = 0; f < m->nfrag; f++)
				last &= !uns[q * m->nfrag + f] || j->cells[q * m->nfrag + f].next >= m->frags[f].nrep;
			code = merge_query(j, call, q, nmore, include_vectors, tally, last, &uns[q * m->nfrag], &tallied[q],
					   &results[q], &nresults[q], err, sizeof(err));
		}
	}
	/* what stayed unsettled with every replica asked counts as it is */
	for (size_t q = 0; q < nq && code == GRPC_STATUS_OK; q++) {
		if (!tallied[q])
			code = merge_query(j, call, q, nmore, include_vectors, tally, 1, NULL, NULL, &results[q], &nresults[q],
					   err, sizeof(err));
	}
	free(uns);
	free(tallied);
	if (code != GRPC_STATUS_OK) {
		free(tally);
		code = gw_fail(call, code, err);
		goto out_cells;
	}
	gw_note_tally(g, m->name, tally);
	gw_recent_note(g->recent, m, j->queries, nq, j->top_k, level, j->ans, nq * j->per_query, j->more, nmore, tally);
	gw_receipt_note(g, m, tally, nq, !who.open && !who.anonymous ? who.account : NULL);
	noted = 1;
	free(tally);
	Muri__V1__SearchMetrics *mt = cm_rpc_alloc(call, sizeof(*mt));
	if (!mt) {
		code = cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out_cells;
	}
	muri__v1__search_metrics__init(mt);
	for (uint32_t f = 0; f < m->nfrag; f++) {
		mt->nodes_queried += (uint32_t)__builtin_popcount(atomic_load(&j->asked_mask[f]));
		mt->nodes_answered += (uint32_t)__builtin_popcount(atomic_load(&j->answered_mask[f]));
	}
	mt->consistency_level_achieved = achieved;
	mt->time_ms = (double)(cm_now_ms() - t0);
	*metrics = mt;
	if (g->m.searches) {
		cm_counter_add(g->m.searches, 1);
		cm_counter_add(g->m.queries, nq);
		cm_histogram_observe(g->m.search_ms, mt->time_ms);
	}
out_cells:
	for (size_t i = 0; i < nq * m->nfrag; i++)
		pthread_mutex_destroy(&j->cells[i].mu);
out:
	if (!noted)
		gw_uncharge(g, &who, nq);
	pthread_mutex_destroy(&j->mu);
	free(j->want);
	free(j->order);
	free((void *)j->asked_mask);
	free((void *)j->answered_mask);
	free(j->more);
	free(j->slot_frag);
	free(j->cells);
	free(j->gcells);
	free(j);
	gw_coll_free(m);
	return code;
}

int gw_h_search(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	const Muri__V1__SearchRequest *q = (const Muri__V1__SearchRequest *)msg;
	Muri__V1__SearchResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__SearchResult **res[1] = {NULL};
	size_t nres[1] = {0};
	if (!r)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__search_response__init(r);
	if (!q->query_vector)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "query_vector: required");
	Muri__V1__Vector *qv[1] = {q->query_vector};
	int code = run(arg, call, q->collection, qv, 1, "query_vector", q->top_k, q->distance_metric, q->filter,
		       q->consistency_level, q->include_vectors, q->timeout_ms, res, nres, &r->metrics);
	if (code != GRPC_STATUS_OK)
		return code;
	r->results = res[0];
	r->n_results = nres[0];
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int gw_h_search_batch(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	const Muri__V1__SearchBatchRequest *q = (const Muri__V1__SearchBatchRequest *)msg;
	size_t nq = q->n_query_vectors;
	if (nq < 1 || nq > (size_t)g->cfg->max_queries)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "query_vectors: %zu, expected 1..%lld", nq,
				   (long long)g->cfg->max_queries);
	Muri__V1__SearchBatchResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__SearchResult ***res = cm_rpc_alloc(call, nq * sizeof(*res));
	size_t *nres = cm_rpc_alloc(call, nq * sizeof(*nres));
	Muri__V1__QueryResults **qr = cm_rpc_alloc(call, nq * sizeof(*qr));
	Muri__V1__QueryResults *qrv = cm_rpc_alloc(call, nq * sizeof(*qrv));
	if (!r || !res || !nres || !qr || !qrv)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__search_batch_response__init(r);
	int code = run(g, call, q->collection, q->query_vectors, nq, "query_vectors", q->top_k, q->distance_metric,
		       q->filter, q->consistency_level, q->include_vectors, q->timeout_ms, res, nres, &r->metrics);
	if (code != GRPC_STATUS_OK)
		return code;
	for (size_t i = 0; i < nq; i++) {
		muri__v1__query_results__init(&qrv[i]);
		qrv[i].results = res[i];
		qrv[i].n_results = nres[i];
		qr[i] = &qrv[i];
	}
	r->results = qr;
	r->n_results = nq;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}
