/* Small pieces every handler uses: routing an id to its fragment, versions,
 * deadlines, statuses, the collection's fragment schema. */
#include "gw.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_time.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/time.h>

uint32_t gw_route_id(const uint8_t id[16], uint32_t nfrag)
{
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | id[i];
	return nfrag ? (uint32_t)(x % nfrag) : 0;
}

uint64_t gw_next_version(gw_ctx *g)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t now = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	uint64_t last = atomic_load(&g->last_version);
	for (;;) {
		uint64_t v = now > last ? now : last + 1;
		if (atomic_compare_exchange_weak(&g->last_version, &last, v))
			return v;
	}
}

uint64_t gw_deadline(gw_ctx *g, cm_rpc_call *call, uint32_t timeout_ms)
{
	uint64_t t = timeout_ms ? timeout_ms : (uint64_t)g->cfg->default_timeout_ms;
	if (t > GW_MAX_TIMEOUT_MS)
		t = GW_MAX_TIMEOUT_MS;
	int64_t left = call ? cm_rpc_deadline_left_ms(call) : INT64_MAX;
	if (left >= 0 && (uint64_t)left < t)
		t = (uint64_t)left;
	return cm_now_ms() + t;
}

int gw_fail(cm_rpc_call *call, int code, const char *msg)
{
	return cm_rpc_fail(call, code, "%s", msg);
}

int gw_coll_get(gw_ctx *g, cm_rpc_call *call, const char *field, const char *name, gw_coll **out)
{
	*out = NULL;
	int rc = gw_chain_get(g->chain, name, out);
	if (rc == CM_OK)
		return GRPC_STATUS_OK;
	if (rc == CM_ERR_NOMEM)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	uint64_t height = 0, target = 0;
	int known = 0;
	if (gw_chain_ready(g->chain, &height, &target, &known))
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s: no collection \"%s\"", field, name);
	/* it may exist in a block the gateway has not applied yet: try again */
	if (known)
		return cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE,
				   "%s: no collection \"%s\" yet: the gateway is catching up with the ledger "
				   "(at height %llu of %llu)", field, name, (unsigned long long)height,
				   (unsigned long long)target);
	return cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE,
			   "%s: no collection \"%s\" yet: the gateway is catching up with the ledger "
			   "(at height %llu; no f + 1 replicas have told their height yet)", field, name,
			   (unsigned long long)height);
}

char *gw_hex(cm_rpc_call *call, const uint8_t *b, size_t n)
{
	char *s = cm_rpc_alloc(call, 2 * n + 1);
	if (s)
		cm_hex(s, b, n);
	return s;
}

const char *gw_frag_addr(const gw_frag *f, const uint8_t *pk)
{
	for (uint32_t i = 0; i < f->nrep; i++)
		if (memcmp(f->rep[i].pk, pk, CM_PK_BYTES) == 0)
			return f->rep[i].addr;
	return NULL;
}

Muri__V1__FragmentSchema *gw_schema(cm_rpc_call *call, const gw_coll *m)
{
	Muri__V1__FragmentSchema *s = cm_rpc_alloc(call, sizeof(*s));
	Muri__V1__IndexSpec *ix = cm_rpc_alloc(call, sizeof(*ix));
	if (!s || !ix)
		return NULL;
	muri__v1__fragment_schema__init(s);
	*ix = m->index;
	s->dimension = m->dim;
	s->metric = m->metric;
	s->index = ix;
	return s;
}

struct owned {
	size_t n, cap;
	ProtobufCMessage **v;
	pthread_mutex_t mu;
};

static void owned_free(void *arg)
{
	struct owned *o = arg;
	for (size_t i = 0; i < o->n; i++)
		protobuf_c_message_free_unpacked(o->v[i], NULL);
	free(o->v);
	pthread_mutex_destroy(&o->mu);
}

gw_owned *gw_owned_new(cm_rpc_call *call)
{
	struct owned *o = cm_rpc_alloc(call, sizeof(*o));
	if (!o)
		return NULL;
	pthread_mutex_init(&o->mu, NULL);
	if (cm_rpc_on_done(call, owned_free, o) != CM_OK)
		return NULL; /* owned_free ran already */
	return (gw_owned *)o;
}

int gw_owned_add(gw_owned *w, ProtobufCMessage *m)
{
	struct owned *o = (struct owned *)w;
	pthread_mutex_lock(&o->mu);
	if (o->n == o->cap) {
		size_t cap = o->cap ? 2 * o->cap : 16;
		ProtobufCMessage **v = realloc(o->v, cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&o->mu);
			protobuf_c_message_free_unpacked(m, NULL);
			return CM_ERR_NOMEM;
		}
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = m;
	pthread_mutex_unlock(&o->mu);
	return CM_OK;
}

void gw_note_tally(gw_ctx *g, const char *collection, const gw_tally *t)
{
	for (size_t i = 0; g->metrics && i < t->n; i++) {
		char hex[2 * CM_PK_BYTES + 1], labels[2 * CM_PK_BYTES + 16];
		cm_hex(hex, t->nodes[i].pk, CM_PK_BYTES);
		snprintf(labels, sizeof(labels), "node=\"%s\"", hex);
		static const char *names[] = {"muri_gateway_node_topk_hits_total", "muri_gateway_node_topk_expected_total",
					      "muri_gateway_node_answers_total", "muri_gateway_node_lies_total"};
		static const char *helps[] = {
			"hits of this node in final top-k results (its rank: this over expected)",
			"final top-k hits from the fragments this node was asked for",
			"answers of this node taken into a merge",
			"answers of this node in which the gateway proved a lie"};
		uint64_t v[] = {t->nodes[i].contributed, t->nodes[i].expected, t->nodes[i].answered, t->nodes[i].lies};
		for (int k = 0; k < 4; k++) {
			cm_counter *c = cm_metrics_counter(g->metrics, names[k], labels, helps[k]);
			if (c && v[k])
				cm_counter_add(c, v[k]);
		}
	}
	for (size_t i = 0; i < t->nlies; i++)
		cm_warn("gw_lie", "magu=%s %s", collection, t->lies[i]);
}

void gw_replica_order(gw_ctx *g, const gw_frag *fr, uint32_t *order)
{
	uint8_t pks[GW_MAX_REPLICAS][CM_PK_BYTES];
	size_t chosen[GW_MAX_REPLICAS];
	for (uint32_t r = 0; r < fr->nrep; r++)
		memcpy(pks[r], fr->rep[r].pk, CM_PK_BYTES);
	uint64_t salt = atomic_fetch_add(&g->salt, 1);
	pthread_mutex_lock(&g->rank_mu);
	size_t n = gw_pick(&g->ranks, (const uint8_t(*)[CM_PK_BYTES])pks, fr->nrep, MURI__V1__CONSISTENCY_LEVEL__ALL,
			   salt, chosen);
	pthread_mutex_unlock(&g->rank_mu);
	for (size_t i = 0; i < n && i < fr->nrep; i++)
		order[i] = (uint32_t)chosen[i];
}
