/* Reading records by id: the ids are grouped by fragment and each group is
 * read from one replica (the primary first, then the others in the ledger's
 * order when one fails), all fragments in parallel under the deadline. A
 * replica answers at or after the log size this gateway was last
 * acknowledged at (read your writes). Get, and the existence checks of
 * Update and Delete. */
#include "gw.h"
#include "cm_err.h"
#include "cm_time.h"
#include "ix_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rfrag {
	uint32_t fragment;
	size_t n;
	size_t *idx;            /* request positions of this fragment's ids */
	char **ids;             /* their strings, for the request */
	int code;               /* gRPC status of the last failure (0: answered) */
	char msg[1024];
};

struct rjob {
	gw_ctx *g;
	const gw_coll *m;
	uint64_t deadline;
	int include_vectors;
	struct rfrag *f;
	gw_owned *keep;
	char **ids;
	Muri__V1__Hit **hits;   /* by request position */
	pthread_mutex_t mu;
};

static void read_one(void *arg, size_t k)
{
	struct rjob *j = arg;
	struct rfrag *rf = &j->f[k];
	gw_frag fr;
	rf->code = GRPC_STATUS_UNAVAILABLE;
	snprintf(rf->msg, sizeof(rf->msg), "fragment %u: no replica answered", rf->fragment);
	if (gw_chain_frag(j->g->chain, j->m->name, j->m->gen, rf->fragment, &fr) != CM_OK) {
		rf->code = GRPC_STATUS_NOT_FOUND;
		snprintf(rf->msg, sizeof(rf->msg), "collection: \"%s\" was dropped", j->m->name);
		return;
	}
	Muri__V1__LocalGetRequest req = MURI__V1__LOCAL_GET_REQUEST__INIT;
	req.magu = (char *)j->m->name;
	req.fragment = rf->fragment;
	req.ids = rf->ids;
	req.n_ids = rf->n;
	req.include_vectors = j->include_vectors;
	req.min_size = fr.acked_size; /* read your writes */
	for (uint32_t pos = 0; pos < fr.nrep; pos++) {
		/* the primary first, then the others in order */
		uint32_t r = fr.primary < 0 ? pos : pos == 0 ? (uint32_t)fr.primary : pos <= (uint32_t)fr.primary ? pos - 1 : pos;
		uint64_t now = cm_now_ms();
		if (now >= j->deadline) {
			rf->code = GRPC_STATUS_DEADLINE_EXCEEDED;
			snprintf(rf->msg, sizeof(rf->msg), "fragment %u: no answer before the deadline", rf->fragment);
			return;
		}
		cm_rpc_client *cl = gw_clients_get(j->g->clients, fr.rep[r].addr, fr.rep[r].pk);
		if (!cl)
			continue;
		/* as searches do: while other replicas are left, one that does not
		 * answer costs try_timeout_ms, not the request's deadline */
		uint64_t budget = j->deadline - now;
		if (pos + 1 < fr.nrep && budget > (uint64_t)j->g->cfg->try_timeout_ms)
			budget = (uint64_t)j->g->cfg->try_timeout_ms;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		int rc = cm_rpc_unary(cl, "/muri.v1.Indexer/Get", &req.base, &muri__v1__local_get_response__descriptor,
				      &resp, (int)budget, &st);
		if (rc != CM_OK) {
			rf->code = st.code;
			snprintf(rf->msg, sizeof(rf->msg), "fragment %u at %s: %s", rf->fragment, fr.rep[r].addr, st.message);
			if (st.code == GRPC_STATUS_INVALID_ARGUMENT)
				return;
			continue;
		}
		if (gw_owned_add(j->keep, resp) != CM_OK) {
			rf->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			snprintf(rf->msg, sizeof(rf->msg), "out of memory");
			return;
		}
		Muri__V1__LocalGetResponse *g = (Muri__V1__LocalGetResponse *)resp;
		size_t cur = 0; /* hits usually come in request order: look from the last match on */
		for (size_t h = 0; h < g->n_hits && rf->n; h++) {
			if (!g->hits[h] || !g->hits[h]->id)
				continue;
			for (size_t t = 0; t < rf->n; t++) {
				size_t i = (cur + t) % rf->n;
				if (strcasecmp(rf->ids[i], g->hits[h]->id) == 0) {
					Muri__V1__Hit **slot = &j->hits[rf->idx[i]];
					if (!*slot || (*slot)->version < g->hits[h]->version)
						*slot = g->hits[h];
					cur = i + 1;
					break;
				}
			}
		}
		rf->code = GRPC_STATUS_OK;
		return;
	}
}

int gw_read_ids(gw_ctx *g, cm_rpc_call *call, const gw_coll *m, char **ids, const uint8_t (*raw)[16], size_t n,
		int include_vectors, uint64_t deadline, Muri__V1__Hit **hits, char *err, size_t errlen)
{
	uint32_t *cnt = calloc(m->nfrag, sizeof(*cnt));
	uint32_t *slot = calloc(m->nfrag, sizeof(*slot));
	struct rfrag *f = NULL;
	size_t nf = 0;
	int code = GRPC_STATUS_OK;
	if (!cnt || !slot) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		cnt[gw_split_reader(m, raw[i])]++;
	for (uint32_t k = 0; k < m->nfrag; k++)
		nf += cnt[k] > 0;
	f = calloc(nf ? nf : 1, sizeof(*f));
	if (!f) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto out;
	}
	size_t at = 0;
	for (uint32_t k = 0; k < m->nfrag; k++)
		if (cnt[k]) {
			f[at].fragment = k;
			f[at].idx = cm_rpc_alloc(call, cnt[k] * sizeof(size_t));
			f[at].ids = cm_rpc_alloc(call, cnt[k] * sizeof(char *));
			if (!f[at].idx || !f[at].ids) {
				code = GRPC_STATUS_RESOURCE_EXHAUSTED;
				goto out;
			}
			slot[k] = (uint32_t)at++;
		}
	for (size_t i = 0; i < n; i++) {
		struct rfrag *rf = &f[slot[gw_split_reader(m, raw[i])]];
		rf->idx[rf->n] = i;
		rf->ids[rf->n++] = ids[i];
	}
	struct rjob j = {.g = g, .m = m, .deadline = deadline, .include_vectors = include_vectors, .f = f,
			 .keep = gw_owned_new(call), .ids = ids, .hits = hits};
	if (!j.keep) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto out;
	}
	memset(hits, 0, n * sizeof(*hits));
	if (gw_pool_run(g->pool, nf, read_one, &j) != CM_OK) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(err, errlen, "the gateway has max_fanout calls to indexers queued; try again");
		goto out;
	}
	for (size_t k = 0; k < nf; k++)
		if (f[k].code != GRPC_STATUS_OK) {
			code = f[k].code;
			snprintf(err, errlen, "%s", f[k].msg);
			break;
		}
out:
	if (code == GRPC_STATUS_RESOURCE_EXHAUSTED && !err[0])
		snprintf(err, errlen, "out of memory");
	free(cnt);
	free(slot);
	free(f);
	return code;
}

/* Checks ids[0..n) as UUIDv4 strings without repeats; raw receives their bytes. */
int gw_parse_ids(char **ids, size_t n, uint8_t (*raw)[16], char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (ix_uuid_parse(ids[i], raw[i]) != CM_OK) {
			snprintf(err, errlen, "ids[%zu]: \"%.40s\" is not a UUIDv4", i, ids[i] ? ids[i] : "");
			return CM_ERR_INVALID;
		}
	/* repeats: sort positions by id */
	size_t *ord = malloc((n ? n : 1) * sizeof(*ord));
	if (!ord) {
		snprintf(err, errlen, "out of memory");
		return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		ord[i] = i;
	/* insertion into a sorted prefix would be quadratic; a shell sort is enough here */
	for (size_t gap = n / 2; gap > 0; gap /= 2)
		for (size_t i = gap; i < n; i++)
			for (size_t k = i; k >= gap && memcmp(raw[ord[k - gap]], raw[ord[k]], 16) > 0; k -= gap) {
				size_t t = ord[k];
				ord[k] = ord[k - gap];
				ord[k - gap] = t;
			}
	int rc = CM_OK;
	for (size_t i = 1; i < n && rc == CM_OK; i++)
		if (memcmp(raw[ord[i - 1]], raw[ord[i]], 16) == 0) {
			size_t a = ord[i - 1] < ord[i] ? ord[i - 1] : ord[i], b = ord[i - 1] < ord[i] ? ord[i] : ord[i - 1];
			snprintf(err, errlen, "ids[%zu]: repeats ids[%zu]", b, a);
			rc = CM_ERR_INVALID;
		}
	free(ord);
	return rc;
}

int gw_h_get(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	const Muri__V1__GetRequest *req = (const Muri__V1__GetRequest *)msg;
	char err[GW_ERR_MAX] = "";
	if (gw_valid_name(req->collection, "collection", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_caller who;
	int ac = gw_authorize(g, call, NULL, req->collection, GW_NEED_READ, &who);
	if (ac != GRPC_STATUS_OK)
		return ac;
	if (req->n_ids < 1 || req->n_ids > (size_t)g->cfg->max_batch)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "ids: %zu, expected 1..%lld", req->n_ids,
				   (long long)g->cfg->max_batch);
	uint8_t(*raw)[16] = cm_rpc_alloc(call, req->n_ids * 16);
	Muri__V1__Hit **hits = cm_rpc_alloc(call, req->n_ids * sizeof(*hits));
	if (!raw || !hits)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (gw_parse_ids(req->ids, req->n_ids, raw, err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_coll *m = NULL;
	if ((ac = gw_coll_get(g, call, "collection", req->collection, &m)) != GRPC_STATUS_OK)
		return ac;
	if (req->include_vectors && gw_valid_vectors_fit(req->n_ids, GW_WIRE_DIM(m), g->cfg->base.rpc_max_message, "ids",
							 "records", err, sizeof(err)) != CM_OK) {
		gw_coll_free(m);
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	}
	int code = gw_read_ids(g, call, m, req->ids, (const uint8_t(*)[16])raw, req->n_ids, req->include_vectors,
			       gw_deadline(g, call, 0), hits, err, sizeof(err));
	gw_coll_free(m);
	if (code != GRPC_STATUS_OK)
		return gw_fail(call, code, err);
	Muri__V1__GetResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__Record **recs = cm_rpc_alloc(call, req->n_ids * sizeof(*recs));
	if (!r || !recs)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__get_response__init(r);
	r->records = recs;
	for (size_t i = 0; i < req->n_ids; i++) {
		if (!hits[i])
			continue;
		Muri__V1__Record *x = cm_rpc_alloc(call, sizeof(*x));
		if (!x)
			return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		muri__v1__record__init(x);
		x->id = hits[i]->id;
		x->vector = req->include_vectors ? hits[i]->vector : NULL;
		x->metadata = hits[i]->metadata;
		x->version = hits[i]->version;
		recs[r->n_records++] = x;
	}
	if (r->n_records == 0)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "ids: none of the %zu ids is in \"%s\"", req->n_ids,
				   req->collection);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}
