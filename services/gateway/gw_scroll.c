/* Scroll: a page of a collection's live records in ascending id order,
 * merged across its fragments (those the split map's plan asks: a frozen
 * parent standing in for a half not live yet contributes only the ids of
 * the half's cell). Every fragment is asked in parallel, at
 * consistency ONE (one replica, in the node ranks' order, the next one when
 * it fails or its page does not check out), for its first records above the
 * cursor's id (at most page_size, and 2 * page_size / fragments + 16: ids
 * spread evenly, so that fills a page while a call holds about twice a
 * page, not a page per fragment), at or after the log size this gateway was
 * acknowledged at (read your writes). A page checks out when it is signed
 * by the replica asked over the request (common/cm_scroll.h) and every hit
 * is a UUIDv4 of this fragment, above the cursor, in ascending order, below
 * the page's log size, of the collection's dimension when vectors were
 * asked, with valid metadata that satisfies the filter.
 *
 * The merge: a fragment that did not reach its end vouches for the ids up
 * to the last one it examined; the lowest such id over the fragments is
 * the frontier, and every hit at or below it, in id order, is complete
 * there. The page is the first page_size of those; the next cursor is the
 * last id returned when the page is full, else the frontier (or "" when
 * every fragment reached its end). A cursor is "c1" and the hex of an id:
 * the next page starts above it. */
#include "gw.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_scroll.h"
#include "cm_time.h"
#include "ix_filter.h"
#include "ix_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCROLL_PAGE_DEFAULT 100
#define SCROLL_FRAG_SLACK 16 /* records a fragment is asked for beyond its even share of two pages */
#define CURSOR_TAG "c1"
#define CURSOR_CHARS (2 + 2 * IX_ID_BYTES)

/* One fragment's part of a page. */
struct sfrag {
	uint32_t fragment;
	int code;                              /* gRPC status of the last failure (0: answered) */
	char msg[600];
	Muri__V1__LocalScrollResponse *page;   /* the accepted page (kept by the call) */
	uint8_t last[IX_ID_BYTES];             /* !page->done: the ids up to this one were examined */
};

struct sjob {
	gw_ctx *g;
	const gw_coll *m;
	uint64_t deadline;
	const Muri__V1__ScrollRequest *req;
	uint32_t limit;                        /* the page size */
	uint32_t frag_limit;                   /* records asked of each fragment */
	const uint8_t *after;                  /* NULL: from the first id */
	const ix_filter *filter;
	gw_owned *keep;
	struct sfrag *f;
};

static int id_cmp(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, IX_ID_BYTES);
}

/* Whether page r, signed by node, answers q for fragment k of m; why names
 * the first fault. */
static int page_ok(const struct sjob *j, uint32_t k, const uint8_t *node, const Muri__V1__LocalScrollRequest *q,
		   const Muri__V1__LocalScrollResponse *r, uint8_t last[IX_ID_BYTES], char *why, size_t whylen)
{
	int rc = cm_scroll_verify(node, q, r);
	if (rc != CM_OK) {
		snprintf(why, whylen, "%s", rc == CM_ERR_PERM ? "signed by another node" : "signature does not verify");
		return 0;
	}
	if (r->n_hits > j->frag_limit) {
		snprintf(why, whylen, "%zu hits, %u asked", r->n_hits, j->frag_limit);
		return 0;
	}
	if (r->log_size < q->min_size) {
		snprintf(why, whylen, "log size %llu below the acknowledged %llu", (unsigned long long)r->log_size,
			 (unsigned long long)q->min_size);
		return 0;
	}
	uint8_t prev[IX_ID_BYTES] = {0};
	int has_prev = j->after != NULL;
	if (has_prev)
		memcpy(prev, j->after, IX_ID_BYTES);
	cm_arena a;
	cm_arena_init(&a, 0);
	int ok = 1;
	for (size_t i = 0; ok && i < r->n_hits; i++) {
		const Muri__V1__Hit *h = r->hits[i];
		uint8_t id[IX_ID_BYTES];
		ix_field *fields = NULL;
		uint32_t nf = 0;
		char err[256];
		if (!h || ix_uuid_parse(h->id, id) != CM_OK)
			snprintf(why, whylen, "hits[%zu]: not a UUIDv4", i), ok = 0;
		else if (!cm_cell_contains(&j->m->map->f[k].cell, id, j->m->nbase)) /* its own cell, halves and all */
			snprintf(why, whylen, "hits[%zu]: %s belongs to another fragment", i, h->id), ok = 0;
		else if (has_prev && id_cmp(id, prev) <= 0)
			snprintf(why, whylen, "hits[%zu]: %s out of order", i, h->id), ok = 0;
		else if (h->seq >= r->log_size)
			snprintf(why, whylen, "hits[%zu]: seq %llu beyond the log size", i, (unsigned long long)h->seq), ok = 0;
		else if (j->req->include_vectors &&
			 (!h->vector || (j->m->metric == MURI__V1__METRIC__HAMMING
						 ? h->vector->binary.len != j->m->dim / 8 || h->vector->n_values
						 : h->vector->n_values != j->m->dim || h->vector->binary.len)))
			snprintf(why, whylen, "hits[%zu]: no vector of dimension %u", i, j->m->dim), ok = 0;
		else if (ix_meta_from_pb(h->metadata, &a, "metadata", &fields, &nf, err, sizeof(err)) != CM_OK)
			snprintf(why, whylen, "hits[%zu]: %s", i, err), ok = 0;
		else if (j->filter->n && !ix_filter_match(j->filter, fields, nf))
			snprintf(why, whylen, "hits[%zu]: does not satisfy the filter", i), ok = 0;
		memcpy(prev, id, IX_ID_BYTES);
		has_prev = 1;
	}
	cm_arena_free(&a);
	if (!ok)
		return 0;
	if (!r->done) {
		/* it vouches for the ids up to last_id: at or above every hit, above the cursor */
		if (!r->last_id || ix_uuid_parse(r->last_id, last) != CM_OK) {
			snprintf(why, whylen, "last_id: not a UUIDv4 on an unfinished page");
			return 0;
		}
		if ((has_prev && id_cmp(last, prev) < 0) || (j->after && id_cmp(last, j->after) <= 0)) {
			snprintf(why, whylen, "last_id: %s below its own hits or the cursor", r->last_id);
			return 0;
		}
	}
	return 1;
}

static void scroll_one(void *arg, size_t i)
{
	struct sjob *j = arg;
	struct sfrag *sf = &j->f[i];
	gw_frag fr;
	if (sf->page) { /* not in the plan (split, or a half read from its parent) */
		sf->code = GRPC_STATUS_OK;
		return;
	}
	sf->code = GRPC_STATUS_UNAVAILABLE;
	snprintf(sf->msg, sizeof(sf->msg), "fragment %u: no replica answered", sf->fragment);
	if (gw_chain_frag(j->g->chain, j->m->name, j->m->gen, sf->fragment, &fr) != CM_OK) {
		sf->code = GRPC_STATUS_NOT_FOUND;
		snprintf(sf->msg, sizeof(sf->msg), "collection: \"%s\" was dropped", j->m->name);
		return;
	}
	char after[IX_UUID_CHARS + 1] = "";
	if (j->after)
		ix_uuid_format(j->after, after);
	Muri__V1__LocalScrollRequest q = MURI__V1__LOCAL_SCROLL_REQUEST__INIT;
	q.magu = (char *)j->m->name;
	q.fragment = sf->fragment;
	q.after_id = after;
	q.limit = j->frag_limit;
	q.filter = j->req->filter;
	q.include_vectors = j->req->include_vectors;
	q.min_size = fr.acked_size;
	uint32_t order[GW_MAX_REPLICAS];
	gw_replica_order(j->g, &fr, order);
	for (uint32_t pos = 0; pos < fr.nrep; pos++) {
		const gw_replica *rep = &fr.rep[order[pos]];
		uint64_t now = cm_now_ms();
		if (now >= j->deadline) {
			sf->code = GRPC_STATUS_DEADLINE_EXCEEDED;
			snprintf(sf->msg, sizeof(sf->msg), "fragment %u: no page before the deadline", sf->fragment);
			return;
		}
		cm_rpc_client *cl = gw_clients_get(j->g->clients, rep->addr, rep->pk);
		if (!cl)
			continue;
		uint64_t budget = j->deadline - now;
		if (pos + 1 < fr.nrep && budget > (uint64_t)j->g->cfg->try_timeout_ms)
			budget = (uint64_t)j->g->cfg->try_timeout_ms;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		int rc = cm_rpc_unary(cl, "/muri.v1.Indexer/Scroll", &q.base, &muri__v1__local_scroll_response__descriptor,
				      &resp, (int)budget, &st);
		if (rc != CM_OK) {
			sf->code = st.code;
			snprintf(sf->msg, sizeof(sf->msg), "fragment %u at %s: %s", sf->fragment, rep->addr, st.message);
			if (st.code == GRPC_STATUS_INVALID_ARGUMENT)
				return;
			continue;
		}
		if (gw_owned_add(j->keep, resp) != CM_OK) {
			sf->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			snprintf(sf->msg, sizeof(sf->msg), "out of memory");
			return;
		}
		Muri__V1__LocalScrollResponse *r = (Muri__V1__LocalScrollResponse *)resp;
		char why[300];
		if (!page_ok(j, sf->fragment, rep->pk, &q, r, sf->last, why, sizeof(why))) {
			cm_warn("gw_scroll_refused", "collection=%s fragment=%u node=%s why=\"%s\"", j->m->name, sf->fragment,
				rep->addr, why);
			sf->code = GRPC_STATUS_UNAVAILABLE;
			snprintf(sf->msg, sizeof(sf->msg), "fragment %u at %s: a page that does not check out (%s)",
				 sf->fragment, rep->addr, why);
			continue;
		}
		sf->page = r;
		sf->code = GRPC_STATUS_OK;
		return;
	}
}

/* A hit of the merge, by its id. */
struct mhit {
	uint8_t id[IX_ID_BYTES];
	const Muri__V1__Hit *h;
};

static int mhit_cmp(const void *a, const void *b)
{
	return id_cmp(((const struct mhit *)a)->id, ((const struct mhit *)b)->id);
}

static int parse_cursor(const char *s, uint8_t out[IX_ID_BYTES])
{
	if (strlen(s) != CURSOR_CHARS || strncmp(s, CURSOR_TAG, 2) != 0)
		return CM_ERR_INVALID;
	for (size_t i = 0; i < IX_ID_BYTES; i++) {
		unsigned v;
		char two[3] = {s[2 + 2 * i], s[3 + 2 * i], 0};
		if (!strchr("0123456789abcdef", two[0]) || !strchr("0123456789abcdef", two[1]) ||
		    sscanf(two, "%2x", &v) != 1)
			return CM_ERR_INVALID;
		out[i] = (uint8_t)v;
	}
	return ix_uuid_is_v4(out) ? CM_OK : CM_ERR_INVALID;
}

static char *cursor_of(cm_rpc_call *call, const uint8_t id[IX_ID_BYTES])
{
	char *c = cm_rpc_alloc(call, CURSOR_CHARS + 1);
	if (!c)
		return NULL;
	memcpy(c, CURSOR_TAG, 2);
	for (size_t i = 0; i < IX_ID_BYTES; i++)
		snprintf(c + 2 + 2 * i, 3, "%02x", id[i]);
	return c;
}

/* Builds the page from the fragments' accepted parts (see the top). */
static int merge(cm_rpc_call *call, const struct sjob *j, Muri__V1__ScrollResponse *out)
{
	const uint8_t *frontier = NULL; /* NULL: every fragment reached its end */
	size_t total = 0;
	for (uint32_t k = 0; k < j->m->nfrag; k++) {
		const struct sfrag *sf = &j->f[k];
		total += sf->page->n_hits;
		if (!sf->page->done && (!frontier || id_cmp(sf->last, frontier) < 0))
			frontier = sf->last;
	}
	struct mhit *all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		return CM_ERR_NOMEM;
	size_t n = 0;
	for (uint32_t k = 0; k < j->m->nfrag; k++)
		for (size_t i = 0; i < j->f[k].page->n_hits; i++) {
			const Muri__V1__Hit *h = j->f[k].page->hits[i];
			ix_uuid_parse(h->id, all[n].id); /* checked by page_ok */
			if (frontier && id_cmp(all[n].id, frontier) > 0)
				continue;
			/* a frozen parent answers only for the cells the plan reads there */
			if (!gw_split_keeps(j->m, k, all[n].id))
				continue;
			all[n++].h = h;
		}
	qsort(all, n, sizeof(*all), mhit_cmp);
	size_t take = n < j->limit ? n : j->limit;
	int rc = CM_OK;
	out->records = cm_rpc_alloc(call, (take ? take : 1) * sizeof(*out->records));
	if (!out->records)
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; rc == CM_OK && i < take; i++) {
		Muri__V1__Record *x = cm_rpc_alloc(call, sizeof(*x));
		if (!x) {
			rc = CM_ERR_NOMEM;
			break;
		}
		muri__v1__record__init(x);
		x->id = all[i].h->id;
		x->vector = j->req->include_vectors ? all[i].h->vector : NULL;
		x->metadata = all[i].h->metadata;
		x->version = all[i].h->version;
		out->records[out->n_records++] = x;
	}
	if (rc == CM_OK) {
		const uint8_t *next = n > take ? all[take - 1].id : frontier;
		out->next_cursor = next ? cursor_of(call, next) : (char *)"";
		if (!out->next_cursor)
			rc = CM_ERR_NOMEM;
	}
	free(all);
	return rc;
}

int gw_h_scroll(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	const Muri__V1__ScrollRequest *req = (const Muri__V1__ScrollRequest *)msg;
	char err[GW_ERR_MAX] = "";
	if (gw_valid_name(req->collection, "collection", err, sizeof(err)) != CM_OK ||
	    gw_valid_timeout(req->timeout_ms, "timeout_ms", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	/* paging through a collection reads it: the caller needs read permission, as for Get */
	gw_caller who;
	int ac = gw_authorize(g, call, NULL, req->collection, GW_NEED_READ, &who);
	if (ac != GRPC_STATUS_OK)
		return ac;
	uint32_t limit = req->page_size ? req->page_size
				       : SCROLL_PAGE_DEFAULT < g->cfg->max_scroll_page ? SCROLL_PAGE_DEFAULT
										      : (uint32_t)g->cfg->max_scroll_page;
	if (limit > (uint64_t)g->cfg->max_scroll_page)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "page_size: %u, expected 1..%lld (max_scroll_page)",
				   req->page_size, (long long)g->cfg->max_scroll_page);
	uint8_t after[IX_ID_BYTES];
	int has_after = req->cursor && req->cursor[0];
	if (has_after && parse_cursor(req->cursor, after) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "cursor: \"%.60s\" is not a cursor Scroll returned (\"\" starts at the first record)",
				   req->cursor);
	ix_filter filter = {0};
	if (req->filter && ix_filter_from_pb(req->filter, cm_rpc_arena(call), &filter, err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_coll *m = NULL;
	if ((ac = gw_coll_get(g, call, "collection", req->collection, &m)) != GRPC_STATUS_OK)
		return ac;
	struct sjob j = {.g = g, .m = m, .deadline = gw_deadline(g, call, req->timeout_ms), .req = req, .limit = limit,
			 .after = has_after ? after : NULL, .filter = &filter, .keep = gw_owned_new(call),
			 .f = calloc(m->nfrag, sizeof(struct sfrag))};
	int code = GRPC_STATUS_OK;
	if (!j.keep || !j.f) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	uint64_t share = 2 * (uint64_t)limit / (m->nplan ? m->nplan : 1) + SCROLL_FRAG_SLACK;
	j.frag_limit = share < limit ? (uint32_t)share : limit;
	Muri__V1__LocalScrollResponse none = MURI__V1__LOCAL_SCROLL_RESPONSE__INIT;
	none.done = 1; /* a fragment the plan does not ask has nothing to add */
	for (uint32_t k = 0; k < m->nfrag; k++) {
		j.f[k].fragment = k;
		j.f[k].page = m->frags[k].ask ? NULL : &none;
	}
	if (gw_pool_run(g->pool, m->nfrag, scroll_one, &j) != CM_OK) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(err, sizeof(err), "the gateway has max_fanout calls to indexers queued; try again");
		goto out;
	}
	for (uint32_t k = 0; k < m->nfrag; k++)
		if (j.f[k].code != GRPC_STATUS_OK) {
			code = j.f[k].code;
			snprintf(err, sizeof(err), "%s", j.f[k].msg);
			goto out;
		}
	Muri__V1__ScrollResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	muri__v1__scroll_response__init(r);
	if (merge(call, &j, r) != CM_OK) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	*resp = &r->base;
out:
	free(j.f);
	gw_coll_free(m);
	return code == GRPC_STATUS_OK ? GRPC_STATUS_OK : gw_fail(call, code, err);
}
