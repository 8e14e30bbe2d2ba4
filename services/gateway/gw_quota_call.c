/* Per-account quotas on the gateway's calls (gw_quota.h does the counting):
 * which account a call is charged to, the RESOURCE_EXHAUSTED a refused call
 * gets (the account, the limit, how long to wait, and a retry-after-ms
 * trailer), Import batches paced by the vector bucket, and the SIGHUP
 * reload of the quota_* keys.
 *
 * With auth on a call is charged to the ledger account it proved; calls
 * without a credential (auth_anonymous_reads) share the anonymous account.
 * With auth off every caller is the anonymous account: one shared bucket
 * (a peer address is no identity behind NAT, a proxy or the console). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"
#include "cm_log.h"
#include "cm_time.h"
#include "gw.h"

static const char *const limit_names[] = {
	"quota_requests_per_second", "quota_vectors_per_second", "quota_vectors_burst", "quota_concurrent_calls",
	"quota_request_bytes", "quota_top_k_batch", "quota_accounts",
};
#define NLIMITS (sizeof(limit_names) / sizeof(limit_names[0]))

static void limits_of(const gw_config *c, gw_quota_limits *l)
{
	*l = (gw_quota_limits){
		.requests_per_second = c->quota_requests_per_second,
		.requests_burst = c->quota_requests_burst,
		.vectors_per_second = c->quota_vectors_per_second,
		.vectors_burst = c->quota_vectors_burst,
		.concurrent_calls = (uint64_t)c->quota_concurrent_calls,
		.request_bytes = c->quota_request_bytes,
		.top_k_batch = (uint64_t)c->quota_top_k_batch,
	};
}

static void log_limits(const char *event, const gw_quota_limits *l)
{
	cm_info(event,
		"requests_per_second=%g requests_burst=%g vectors_per_second=%g vectors_burst=%g "
		"concurrent_calls=%llu request_bytes=%llu top_k_batch=%llu",
		l->requests_per_second, l->requests_burst, l->vectors_per_second, l->vectors_burst,
		(unsigned long long)l->concurrent_calls, (unsigned long long)l->request_bytes,
		(unsigned long long)l->top_k_batch);
}

int gw_quota_start(gw_ctx *g, char *err, size_t errlen)
{
	gw_quota_limits l;
	limits_of(g->cfg, &l);
	int rc = gw_quota_new(&l, (size_t)g->cfg->quota_accounts, &g->quota);
	if (rc != CM_OK) {
		snprintf(err, errlen, "quota_accounts: cannot make a table of %lld: %s", (long long)g->cfg->quota_accounts,
			 cm_strerror(rc));
		return rc;
	}
	for (size_t i = 0; g->metrics && i < NLIMITS; i++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "limit=\"%s\"", limit_names[i] + strlen("quota_"));
		g->quota_refused[i] = cm_metrics_counter(g->metrics, "muri_gateway_quota_refused_total", labels,
							 "calls refused by a per-account quota, by limit");
	}
	log_limits("gw_quota", &l);
	return CM_OK;
}

void gw_quota_reload(void *ctx)
{
	gw_ctx *g = ctx;
	gw_config c;
	char err[512] = "";
	memset(&c, 0, sizeof(c));
	if (!g->quota)
		return;
	int rc = cm_service_reload_config(g->svc, &c, err, sizeof(err));
	if (rc != CM_OK) {
		cm_warn("gw_quota_reload", "result=kept error=\"%s\"", err[0] ? err : cm_strerror(rc));
		return;
	}
	gw_quota_limits l;
	limits_of(&c, &l);
	gw_quota_set_limits(g->quota, &l);
	if (c.quota_accounts != g->cfg->quota_accounts)
		cm_warn("gw_quota_reload", "key=quota_accounts message=\"changes on restart only\"");
	cm_config_free(g->svc->keys, g->svc->nkeys, &c);
	log_limits("gw_quota_reload", &l);
}

static void key_of(const gw_caller *who, uint8_t key[GW_QUOTA_KEY_BYTES])
{
	memset(key, 0, GW_QUOTA_KEY_BYTES);
	if (who->open || who->anonymous)
		return; /* GW_QUOTA_ANONYMOUS */
	key[0] = GW_QUOTA_ACCOUNT;
	memcpy(key + 1, who->account, CM_PK_BYTES);
}

static const char *who_name(cm_rpc_call *call, const gw_caller *who)
{
	if (who->open || who->anonymous)
		return "anonymous";
	char *h = gw_hex(call, who->account, CM_PK_BYTES);
	return h ? h : "?";
}

static void count_refusal(gw_ctx *g, const char *limit)
{
	for (size_t i = 0; i < NLIMITS; i++)
		if (strcmp(limit, limit_names[i]) == 0 && g->quota_refused[i])
			cm_counter_add(g->quota_refused[i], 1);
}

/* The RESOURCE_EXHAUSTED of a refusal, naming the account and the limit. */
static int refused(gw_ctx *g, cm_rpc_call *call, const gw_caller *who, const gw_quota_refusal *r,
		   const char *qfield)
{
	const char *acct = who_name(call, who);
	count_refusal(g, r->limit);
	if (r->wait_ms) {
		char v[24];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)r->wait_ms);
		cm_rpc_set_trailer(call, "retry-after-ms", v);
	}
	unsigned long long value = (unsigned long long)r->value, asked = (unsigned long long)r->asked,
			   wait = (unsigned long long)r->wait_ms;
	if (strcmp(r->limit, "quota_requests_per_second") == 0)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "account %s over %s=%g: retry in %llu ms", acct,
				   r->limit, r->value, wait);
	if (strcmp(r->limit, "quota_vectors_per_second") == 0)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "account %s over %s=%g (vectors: %llu in this write; nothing was written): retry in "
				   "%llu ms",
				   acct, r->limit, r->value, asked, wait);
	if (strcmp(r->limit, "quota_vectors_burst") == 0)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "account %s: vectors: %llu in one write, over %s=%llu (nothing was written; split the "
				   "write)",
				   acct, asked, r->limit, value);
	if (strcmp(r->limit, "quota_concurrent_calls") == 0)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "account %s over %s=%llu: that many calls in flight; retry when one ends", acct, r->limit,
				   value);
	if (strcmp(r->limit, "quota_request_bytes") == 0)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "account %s: the request message has %llu bytes, over %s=%llu", acct, asked, r->limit,
				   value);
	if (strcmp(r->limit, "quota_top_k_batch") == 0)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "account %s: %s x top_k is %llu, over %s=%llu (fewer %s or a smaller top_k)", acct,
				   qfield ? qfield : "queries", asked, r->limit, value, qfield ? qfield : "queries");
	return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
			   "the gateway tracks %s=%llu accounts, each with a call in flight: retry shortly", r->limit,
			   value);
}

struct held {
	gw_quota *q;
	gw_quota_slot *slot;
};

static void release(void *arg)
{
	struct held *h = arg;
	gw_quota_release(h->q, h->slot);
	free(h);
}

int gw_admit(gw_ctx *g, cm_rpc_call *call, const gw_caller *who, const gw_quota_ask *ask, const char *qfield)
{
	if (!g->quota)
		return GRPC_STATUS_OK;
	uint8_t key[GW_QUOTA_KEY_BYTES];
	key_of(who, key);
	gw_quota_ask a = *ask;
	a.bytes = cm_rpc_request_size(call);
	/* the call's memory may be reset before it ends (an Import's batches) */
	struct held *h = malloc(sizeof(*h));
	if (!h)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	gw_quota_refusal why;
	h->q = g->quota;
	if (gw_quota_admit(g->quota, key, cm_now_us(), &a, &h->slot, &why) != CM_OK) {
		free(h);
		return refused(g, call, who, &why, qfield);
	}
	cm_rpc_on_done(call, release, h); /* past its room, release runs at once */
	return GRPC_STATUS_OK;
}

int gw_quota_pace(gw_ctx *g, cm_rpc_call *call, const gw_caller *who, uint64_t n)
{
	if (!g->quota)
		return GRPC_STATUS_OK;
	uint8_t key[GW_QUOTA_KEY_BYTES];
	key_of(who, key);
	for (;;) {
		gw_quota_refusal why;
		int rc = gw_quota_take_vectors(g->quota, key, cm_now_us(), n, &why);
		if (rc == CM_OK)
			return GRPC_STATUS_OK;
		if (rc != CM_ERR_RANGE || !why.wait_ms)
			return refused(g, call, who, &why, NULL);
		if (cm_rpc_cancelled(call))
			return cm_rpc_fail(call, GRPC_STATUS_CANCELLED, "the import was cancelled while paced by %s",
					   why.limit);
		cm_sleep_ms(why.wait_ms < 100 ? why.wait_ms : 100);
	}
}
