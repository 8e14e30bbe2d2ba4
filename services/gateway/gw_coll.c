/* Collections: CreateCollection submits CreateMagu (signed by the payer
 * account) and returns once it is committed, the gateway's follower has it,
 * and every fragment's primary answers a probe (an empty Write of its
 * epoch); DropCollection submits DropMagu and returns once the follower has
 * seen the drop; Describe and List read the routing table and ask each
 * fragment's primary, by probe, for its log size and live count. */
#include "gw.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct probe {
	uint32_t fragment;
	gw_frag fr;               /* as routed when the probe went out */
	int code;
	char msg[1024];
	uint64_t log_size, live;
};

struct pjob {
	gw_ctx *g;
	const gw_coll *m;
	uint64_t deadline;
	struct probe *p;
	int wait_ready;           /* retry until the primary answers or the deadline */
};

static void probe_one(void *arg, size_t k)
{
	struct pjob *j = arg;
	struct probe *p = &j->p[k];
	p->code = GRPC_STATUS_UNAVAILABLE;
	snprintf(p->msg, sizeof(p->msg), "fragment %u: no configuration", p->fragment);
	for (;;) {
		uint64_t ver = gw_chain_version(j->g->chain), now = cm_now_ms();
		if (now >= j->deadline)
			return;
		if (gw_chain_frag(j->g->chain, j->m->name, j->m->gen, p->fragment, &p->fr) != CM_OK) {
			p->code = GRPC_STATUS_NOT_FOUND;
			snprintf(p->msg, sizeof(p->msg), "collection: \"%s\" was dropped", j->m->name);
			return;
		}
		const gw_replica *pr = p->fr.primary >= 0 ? &p->fr.rep[p->fr.primary] : NULL;
		cm_rpc_client *cl = pr ? gw_clients_get(j->g->clients, pr->addr, pr->pk) : NULL;
		if (cl) {
			Muri__V1__FragmentWriteRequest req = MURI__V1__FRAGMENT_WRITE_REQUEST__INIT;
			req.magu = (char *)j->m->name;
			req.fragment = p->fragment;
			req.epoch = p->fr.epoch;
			ProtobufCMessage *resp = NULL;
			cm_rpc_status st;
			int rc = cm_rpc_unary(cl, "/muri.v1.Indexer/Write", &req.base,
					      &muri__v1__fragment_write_response__descriptor, &resp, (int)(j->deadline - now), &st);
			if (rc == CM_OK) {
				Muri__V1__FragmentWriteResponse *r = (Muri__V1__FragmentWriteResponse *)resp;
				p->log_size = r->log_size;
				p->live = r->live_count;
				p->code = GRPC_STATUS_OK;
				protobuf_c_message_free_unpacked(resp, NULL);
				return;
			}
			p->code = st.code;
			snprintf(p->msg, sizeof(p->msg), "fragment %u at %s: %s", p->fragment, p->fr.rep[p->fr.primary].addr,
				 st.message);
		}
		if (!j->wait_ready)
			return;
		gw_chain_wait(j->g->chain, ver, 100);
	}
}

static const char *metric_name(int m)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&muri__v1__metric__descriptor, m);
	return v ? v->name : "?";
}

/* Probes every fragment of m; fills info (call memory). */
static int describe(gw_ctx *g, cm_rpc_call *call, const gw_coll *m, uint64_t deadline, int wait_ready,
		    Muri__V1__CollectionInfo **out, char *err, size_t errlen)
{
	struct probe *p = calloc(m->nfrag ? m->nfrag : 1, sizeof(*p));
	Muri__V1__CollectionInfo *ci = cm_rpc_alloc(call, sizeof(*ci));
	Muri__V1__IndexSpec *ix = cm_rpc_alloc(call, sizeof(*ix));
	Muri__V1__FragmentState **fs = cm_rpc_alloc(call, (m->nfrag ? m->nfrag : 1) * sizeof(*fs));
	if (!p || !ci || !ix || !fs) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	for (uint32_t k = 0; k < m->nfrag; k++)
		p[k].fragment = k;
	struct pjob j = {.g = g, .m = m, .deadline = deadline, .p = p, .wait_ready = wait_ready};
	if (gw_pool_run(g->pool, m->nfrag, probe_one, &j) != CM_OK) {
		free(p);
		snprintf(err, errlen, "the gateway has max_fanout calls to indexers queued; try again");
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	muri__v1__collection_info__init(ci);
	*ix = m->index;
	ci->name = cm_rpc_strdup(call, m->name);
	ci->dimension = m->dim;
	ci->metric = m->metric;
	ci->index = ix;
	ci->replication = m->repl;
	ci->fragments = m->nbase; /* fragment_states lists the halves of splits too */
	ci->owner = gw_hex(call, m->owner, CM_PK_BYTES);
	ci->created_height = m->created_height;
	ci->fragment_states = fs;
	int code = GRPC_STATUS_OK;
	for (uint32_t k = 0; k < m->nfrag; k++) {
		const gw_frag *fr = p[k].fr.epoch ? &p[k].fr : &m->frags[k];
		Muri__V1__FragmentState *s = cm_rpc_alloc(call, sizeof(*s));
		char **addrs = cm_rpc_alloc(call, (fr->nrep ? fr->nrep : 1) * sizeof(char *));
		char **keys = cm_rpc_alloc(call, (fr->nrep ? fr->nrep : 1) * sizeof(char *));
		if (!s || !addrs || !keys) {
			free(p);
			snprintf(err, errlen, "out of memory");
			return GRPC_STATUS_RESOURCE_EXHAUSTED;
		}
		muri__v1__fragment_state__init(s);
		s->fragment = k;
		s->epoch = fr->epoch;
		s->primary = fr->primary >= 0 ? cm_rpc_strdup(call, fr->rep[fr->primary].addr) : "";
		for (uint32_t r = 0; r < fr->nrep; r++) {
			addrs[r] = cm_rpc_strdup(call, fr->rep[r].addr);
			keys[r] = gw_hex(call, fr->rep[r].pk, CM_PK_BYTES);
		}
		s->replicas = addrs;
		s->n_replicas = fr->nrep;
		s->replica_keys = keys;
		s->n_replica_keys = fr->nrep;
		s->committed_size = fr->committed_size;
		s->committed_root = fr->committed_size ? gw_hex(call, fr->committed_root, CM_HASH_BYTES) : "";
		s->available = p[k].code == GRPC_STATUS_OK;
		s->state = (char *)gw_split_state(&m->frags[k]);
		s->searched = m->frags[k].ask;
		s->log_size = p[k].log_size;
		s->vector_count = p[k].live;
		if (m->frags[k].ask) /* a retired parent holds what its halves hold */
			ci->vector_count += p[k].live;
		fs[k] = s;
		if (p[k].code != GRPC_STATUS_OK && code == GRPC_STATUS_OK) {
			code = p[k].code;
			snprintf(err, errlen, "%s", p[k].msg);
		}
	}
	ci->n_fragment_states = m->nfrag;
	free(p);
	*out = ci;
	return code;
}

int gw_h_describe(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	const Muri__V1__DescribeCollectionRequest *q = (const Muri__V1__DescribeCollectionRequest *)msg;
	char err[GW_ERR_MAX] = "";
	if (gw_valid_name(q->name, "name", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_caller who;
	int ac = gw_authorize(g, call, NULL, q->name, GW_NEED_READ, &who);
	if (ac != GRPC_STATUS_OK)
		return ac;
	gw_coll *m = NULL;
	if ((ac = gw_coll_get(g, call, "name", q->name, &m)) != GRPC_STATUS_OK)
		return ac;
	Muri__V1__CollectionInfo *ci = NULL;
	int code = describe(g, call, m, gw_deadline(g, call, 0), 0, &ci, err, sizeof(err));
	gw_coll_free(m);
	if (!ci)
		return gw_fail(call, code, err);
	/* a fragment whose primary does not answer shows available = false */
	*resp = &ci->base;
	return GRPC_STATUS_OK;
}

int gw_h_list(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	(void)msg;
	gw_coll **v = NULL;
	size_t n = 0;
	gw_caller who;
	int ac = gw_auth_caller(g->auth, call, gw_chain_id(g->chain), &who);
	if (ac != GRPC_STATUS_OK)
		return ac;
	if (who.anonymous && !g->cfg->auth_anonymous_reads)
		return gw_authorize(g, call, NULL, NULL, GW_NEED_READ, &who); /* says no credential */
	gw_quota_ask none = {0};
	if ((ac = gw_admit(g, call, &who, &none, NULL)) != GRPC_STATUS_OK)
		return ac;
	if (gw_chain_list(g->chain, &v, &n) != CM_OK)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	size_t kept = 0; /* a collection the caller may not read is not listed */
	for (size_t i = 0; i < n; i++) {
		if (gw_auth_visible(g->auth, &who, v[i]->name))
			v[kept++] = v[i];
		else
			gw_coll_free(v[i]);
	}
	n = kept;
	Muri__V1__ListCollectionsResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__CollectionInfo **cs = cm_rpc_alloc(call, (n ? n : 1) * sizeof(*cs));
	int code = r && cs ? GRPC_STATUS_OK : GRPC_STATUS_RESOURCE_EXHAUSTED;
	char err[GW_ERR_MAX] = "out of memory";
	uint64_t deadline = gw_deadline(g, call, 0);
	for (size_t i = 0; i < n && code == GRPC_STATUS_OK; i++) {
		Muri__V1__CollectionInfo *ci = NULL;
		describe(g, call, v[i], deadline, 0, &ci, err, sizeof(err));
		if (!ci)
			code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		else
			cs[i] = ci;
	}
	for (size_t i = 0; i < n; i++)
		gw_coll_free(v[i]);
	free(v);
	if (code != GRPC_STATUS_OK)
		return gw_fail(call, code, err);
	muri__v1__list_collections_response__init(r);
	r->collections = cs;
	r->n_collections = n;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int gw_h_create(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	const Muri__V1__CreateCollectionRequest *q = (const Muri__V1__CreateCollectionRequest *)msg;
	char err[GW_ERR_MAX + 128] = "";
	if (gw_valid_name(q->name, "name", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_caller who;
	int ac = gw_authorize(g, call, NULL, NULL, GW_NEED_ADMIN, &who);
	if (ac != GRPC_STATUS_OK)
		return ac;
	if (q->metric < MURI__V1__METRIC__METRIC_UNSPECIFIED || q->metric > MURI__V1__METRIC__HAMMING)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "metric: unknown metric %d (COSINE, L2, DOT_PRODUCT or HAMMING)", q->metric);
	if (q->metric == MURI__V1__METRIC__HAMMING) {
		/* binary vectors: the dimension counts bits, sent packed in bytes */
		if (q->dimension < 8 || q->dimension > GW_MAX_BITS || q->dimension % 8)
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
					   "dimension: %u bits under HAMMING, expected a multiple of 8 in 8..%d",
					   q->dimension, GW_MAX_BITS);
		if (q->index && q->index->kind == MURI__V1__INDEX_KIND__IVF)
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "index.kind: HAMMING takes FLAT or HNSW");
		if (q->index && (q->index->quantizer || q->index->pq_m))
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
					   "index.quantizer: HAMMING vectors are not quantized");
	} else if (q->dimension < 1 || q->dimension > GW_MAX_DIM) {
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "dimension: %u, expected 1..%d", q->dimension,
				   GW_MAX_DIM);
	}
	if (q->index && (q->index->kind < MURI__V1__INDEX_KIND__INDEX_UNSPECIFIED || q->index->kind > MURI__V1__INDEX_KIND__IVF))
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "index.kind: unknown index %d (FLAT, HNSW or IVF)",
				   q->index->kind);
	if (q->index && (q->index->quantizer < MURI__V1__QUANTIZER__QUANTIZER_NONE || q->index->quantizer > MURI__V1__QUANTIZER__PQ))
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "index.quantizer: unknown quantizer %d",
				   q->index->quantizer);
	if (q->replication > GW_MAX_REPLICAS)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "replication: %u, expected 1..%d (0: the default)",
				   q->replication, GW_MAX_REPLICAS);
	if (q->fragments > GW_MAX_FRAGMENTS)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "fragments: %u, expected 1..%d (0: the default)",
				   q->fragments, GW_MAX_FRAGMENTS);
	gw_coll *m = NULL;
	if (gw_chain_get(g->chain, q->name, &m) == CM_OK) {
		gw_coll_free(m);
		return cm_rpc_fail(call, GRPC_STATUS_ALREADY_EXISTS, "name: a collection \"%s\" exists already", q->name);
	}
	if (!g->has_payer)
		return gw_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
			       "this gateway has no payer account (payer_key_file) to create collections with");
	uint64_t deadline = cm_now_ms() + (uint64_t)g->cfg->create_timeout_ms;
	int64_t left = cm_rpc_deadline_left_ms(call);
	if (left >= 0 && cm_now_ms() + (uint64_t)left < deadline)
		deadline = cm_now_ms() + (uint64_t)left;
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__CreateMagu cm = MURI__V1__CREATE_MAGU__INIT;
	cm.name = q->name;
	cm.dimension = q->dimension;
	cm.metric = q->metric ? q->metric : MURI__V1__METRIC__COSINE;
	cm.index = q->index;
	/* HNSW over float vectors gets the gateway's M unless the request sets
	 * one; it goes on chain explicitly, so every replica builds with it
	 * whatever its own default (a Magu holding 0 keeps the indexer's) */
	Muri__V1__IndexSpec tuned;
	int kind = q->index ? q->index->kind : MURI__V1__INDEX_KIND__INDEX_UNSPECIFIED;
	if (g->cfg->collection_hnsw_m && cm.metric != MURI__V1__METRIC__HAMMING &&
	    (kind == MURI__V1__INDEX_KIND__INDEX_UNSPECIFIED || kind == MURI__V1__INDEX_KIND__HNSW) &&
	    !(q->index && q->index->hnsw_m)) {
		if (q->index)
			tuned = *q->index;
		else
			muri__v1__index_spec__init(&tuned);
		tuned.hnsw_m = (uint32_t)g->cfg->collection_hnsw_m;
		cm.index = &tuned;
	}
	cm.fragments = q->fragments;
	cm.replication = q->replication;
	cm.deposit = (uint64_t)g->cfg->create_deposit;
	if (!who.open) { /* the caller owns the collection's access lists; the payer its deposit */
		cm.access_owner.data = who.account;
		cm.access_owner.len = CM_PK_BYTES;
	}
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU;
	t.create_magu = &cm;
	cm_ledger_result res;
	memset(&res, 0, sizeof(res));
	int rc = cm_ledger_client_submit(gw_chain_client(g->chain), &t, CM_LC_WAIT, &res, err, sizeof(err));
	if (rc == CM_ERR_STATE) {
		int exists = strstr(res.message, "exists already") != NULL;
		return cm_rpc_fail(call, exists ? GRPC_STATUS_ALREADY_EXISTS : GRPC_STATUS_FAILED_PRECONDITION,
				   "the ledger refused CreateMagu: %s", res.message);
	}
	if (rc != CM_OK)
		return cm_rpc_fail(call,
				   res.code ? res.code : rc == CM_ERR_TIMEOUT ? GRPC_STATUS_DEADLINE_EXCEEDED
									       : GRPC_STATUS_UNAVAILABLE,
				   "CreateMagu: %s", err);
	cm_info("gw_create", "magu=%s height=%llu", q->name, (unsigned long long)res.height);
	/* the follower brings it; then every primary must answer */
	for (;;) {
		uint64_t ver = gw_chain_version(g->chain);
		if (gw_chain_get(g->chain, q->name, &m) == CM_OK && m->created_height >= res.height)
			break;
		gw_coll_free(m);
		m = NULL;
		if (cm_now_ms() >= deadline)
			return cm_rpc_fail(call, GRPC_STATUS_DEADLINE_EXCEEDED,
					   "CreateMagu committed at height %llu, but the gateway's follower has not seen it yet",
					   (unsigned long long)res.height);
		gw_chain_wait(g->chain, ver, 200);
	}
	Muri__V1__CollectionInfo *ci = NULL;
	int code = describe(g, call, m, deadline, 1, &ci, err, sizeof(err));
	gw_coll_free(m);
	if (code != GRPC_STATUS_OK)
		return cm_rpc_fail(call, code == GRPC_STATUS_RESOURCE_EXHAUSTED ? code : GRPC_STATUS_DEADLINE_EXCEEDED,
				   "collection \"%s\" committed at height %llu, but not every fragment's primary serves yet: %s",
				   q->name, (unsigned long long)res.height, err);
	cm_info("gw_created", "magu=%s metric=%s fragments=%u", q->name, metric_name(ci->metric), ci->fragments);
	*resp = &ci->base;
	return GRPC_STATUS_OK;
}

int gw_h_drop(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	const Muri__V1__DropCollectionRequest *q = (const Muri__V1__DropCollectionRequest *)msg;
	char err[GW_ERR_MAX + 128] = "";
	if (gw_valid_name(q->name, "name", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_caller who;
	int ac = gw_authorize(g, call, NULL, q->name, GW_NEED_ADMIN, &who);
	if (ac != GRPC_STATUS_OK)
		return ac;
	gw_coll *m = NULL;
	if ((ac = gw_coll_get(g, call, "name", q->name, &m)) != GRPC_STATUS_OK)
		return ac;
	uint64_t gen = m->gen;
	gw_coll_free(m);
	if (!g->has_payer)
		return gw_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
			       "this gateway has no payer account (payer_key_file) to drop collections with");
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__DropMagu dm = MURI__V1__DROP_MAGU__INIT;
	dm.name = q->name;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU;
	t.drop_magu = &dm;
	cm_ledger_result res;
	memset(&res, 0, sizeof(res));
	int rc = cm_ledger_client_submit(gw_chain_client(g->chain), &t, CM_LC_WAIT, &res, err, sizeof(err));
	if (rc == CM_ERR_STATE)
		return cm_rpc_fail(call, strstr(res.message, "no Magu") ? GRPC_STATUS_NOT_FOUND
				   : strstr(res.message, "only the owner") ? GRPC_STATUS_PERMISSION_DENIED
									   : GRPC_STATUS_FAILED_PRECONDITION,
				   "the ledger refused DropMagu: %s", res.message);
	if (rc != CM_OK)
		return cm_rpc_fail(call, res.code ? res.code : GRPC_STATUS_UNAVAILABLE, "DropMagu: %s", err);
	uint64_t deadline = gw_deadline(g, call, 0);
	for (;;) {
		uint64_t ver = gw_chain_version(g->chain);
		gw_frag fr;
		if (gw_chain_frag(g->chain, q->name, gen, 0, &fr) != CM_OK)
			break;
		if (cm_now_ms() >= deadline)
			break; /* committed; the follower will catch up */
		gw_chain_wait(g->chain, ver, 200);
	}
	Muri__V1__DropCollectionResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__drop_collection_response__init(r);
	r->dropped = 1;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}
