/* The console's JSON endpoints: the network (the poller's view of every
 * node, the routing table, the gateway's rank table and the health the
 * mascot shows), the collections, recent blocks, a node's record and a
 * search that goes through the gateway's own VectorStore Search. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_err.h"
#include "cm_time.h"
#include "gw_console.h"

static const char *metric_name(int m)
{
	return m == MURI__V1__METRIC__L2            ? "l2"
	       : m == MURI__V1__METRIC__DOT_PRODUCT ? "dot"
	       : m == MURI__V1__METRIC__HAMMING     ? "hamming"
						    : "cosine";
}

static const char *index_name(int k)
{
	return k == MURI__V1__INDEX_KIND__FLAT ? "flat" : k == MURI__V1__INDEX_KIND__IVF ? "ivf" : "hnsw";
}

static const char *challenge_name(int s)
{
	switch (s) {
	case MURI__V1__CHALLENGE_STATE__CHALLENGE_OPEN: return "open";
	case MURI__V1__CHALLENGE_STATE__CHALLENGE_PASSED: return "passed";
	case MURI__V1__CHALLENGE_STATE__CHALLENGE_FAILED: return "failed";
	case MURI__V1__CHALLENGE_STATE__CHALLENGE_CANCELLED: return "cancelled";
	default: return "none";
	}
}

void gw_json_str(FILE *f, const char *s)
{
	cm_json_str(f, s ? s : "");
}

void gw_json_hex(FILE *f, const uint8_t *b, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
	fputc('"', f);
}

void gw_api_error(FILE *f, const char *msg)
{
	fputs("{\"error\":", f);
	gw_json_str(f, msg);
	fputc('}', f);
}

static void json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

/* How many of a fragment's replicas answer their Status. */
static uint32_t replicas_up(const gw_frag *fr, const gw_console_node *nodes, size_t n)
{
	uint32_t up = 0;
	for (uint32_t r = 0; r < fr->nrep; r++)
		for (size_t i = 0; i < n; i++)
			if (!nodes[i].ledger && memcmp(nodes[i].pk, fr->rep[r].pk, CM_PK_BYTES) == 0) {
				up += nodes[i].up || !nodes[i].polled;
				break;
			}
	return up;
}

/* ok: every replica up; degraded: QUORUM still reachable; lost: not. */
static const char *frag_state(const gw_frag *fr, uint32_t up)
{
	if (fr->nrep == 0 || up < fr->nrep / 2 + 1)
		return "lost";
	return up < fr->nrep ? "degraded" : "ok";
}

static void rank_json(gw_console_api *a, FILE *f, const uint8_t *pk)
{
	gw_rank_entry e;
	pthread_mutex_lock(&a->g->rank_mu);
	int rc = gw_ranks_get(&a->g->ranks, pk, &e);
	double score = gw_ranks_score(&a->g->ranks, pk);
	pthread_mutex_unlock(&a->g->rank_mu);
	if (rc != CM_OK) {
		fputs("null", f);
		return;
	}
	fputs("{\"score\":", f);
	json_num(f, score);
	fputs(",\"share\":", f);
	json_num(f, e.share);
	fputs(",\"latency_ms\":", f);
	json_num(f, e.latency_ms);
	fputs(",\"fail\":", f);
	json_num(f, e.fail);
	fprintf(f, ",\"merges\":%llu,\"answers\":%llu,\"lies\":%llu}", (unsigned long long)e.merges,
		(unsigned long long)e.answers, (unsigned long long)e.lies);
}

/* This gateway (up: it answers this page), then every other gateway the
 * genesis lists, with its latest settled receipt on chain; their health is
 * unknown (the genesis gives no address to ask). */
static void gateways_json(gw_console_api *a, FILE *f)
{
	gw_console_gateway *gws = NULL;
	size_t n = 0;
	if (gw_console_poll_gateways(a->poll, &gws, &n) != CM_OK)
		n = 0;
	uint64_t height = gw_chain_height(a->g->chain);
	int self_listed = 0;
	for (size_t i = 0; i < n; i++)
		self_listed |= a->has_self_pk && memcmp(gws[i].pk, a->self_pk, CM_PK_BYTES) == 0;
	fputs("[{\"role\":\"gateway\",\"self\":true,\"up\":true,\"health\":\"up\",\"node\":", f);
	if (a->has_self_pk)
		gw_json_hex(f, a->self_pk, CM_PK_BYTES);
	else
		fputs("null", f);
	fprintf(f, ",\"in_genesis\":%s,\"rpc_port\":%d", self_listed ? "true" : "false", a->rpc_port);
	for (size_t i = 0; i < n; i++)
		if (a->has_self_pk && memcmp(gws[i].pk, a->self_pk, CM_PK_BYTES) == 0 && gws[i].last_settle_height)
			fprintf(f, ",\"last_settle_height\":%llu", (unsigned long long)gws[i].last_settle_height);
	fputc('}', f);
	for (size_t i = 0; i < n; i++) {
		if (a->has_self_pk && memcmp(gws[i].pk, a->self_pk, CM_PK_BYTES) == 0)
			continue;
		fputs(",{\"role\":\"gateway\",\"self\":false,\"up\":null,\"health\":\"unknown\",\"in_genesis\":true,\"node\":", f);
		gw_json_hex(f, gws[i].pk, CM_PK_BYTES);
		if (gws[i].checked && gws[i].last_settle_height)
			fprintf(f, ",\"last_settle_height\":%llu,\"blocks_since_settle\":%llu",
				(unsigned long long)gws[i].last_settle_height,
				(unsigned long long)(height > gws[i].last_settle_height ? height - gws[i].last_settle_height : 0));
		fputc('}', f);
	}
	fputc(']', f);
	free(gws);
}

unsigned gw_api_network(gw_console_api *a, FILE *f)
{
	gw_console_node *nodes = NULL;
	size_t n = 0;
	gw_coll **cs = NULL;
	size_t nc = 0;
	if (gw_console_poll_nodes(a->poll, &nodes, &n) != CM_OK || gw_chain_list(a->g->chain, &cs, &nc) != CM_OK) {
		free(nodes);
		gw_api_error(f, "out of memory");
		return 500;
	}
	uint64_t now = cm_now_ms();
	/* the leader: of the highest view any replica reports, view mod n */
	uint64_t top_view = 0;
	uint32_t nledger = 0, ledgers_up = 0;
	for (size_t i = 0; i < n; i++)
		if (nodes[i].ledger) {
			nledger++;
			ledgers_up += nodes[i].up || !nodes[i].polled; /* not asked yet: not counted down */
			if (nodes[i].up && nodes[i].view > top_view)
				top_view = nodes[i].view;
		}
	int64_t leader = nledger && ledgers_up ? (int64_t)(top_view % nledger) : -1;
	fputs("{\"chain_id\":", f);
	gw_json_str(f, gw_console_poll_chain_id(a->poll));
	fprintf(f, ",\"height\":%llu,\"leader\":%lld,\"poll_ms\":%lld,\"ledgers\":[",
		(unsigned long long)gw_chain_height(a->g->chain), (long long)leader,
		(long long)a->g->cfg->console_poll_ms);
	int first = 1;
	for (size_t i = 0; i < n; i++) {
		const gw_console_node *x = &nodes[i];
		if (!x->ledger)
			continue;
		fprintf(f, "%s{\"index\":%u,\"node\":", first ? "" : ",", x->index);
		first = 0;
		gw_json_hex(f, x->pk, CM_PK_BYTES);
		fputs(",\"addr\":", f);
		gw_json_str(f, x->addr);
		fprintf(f, ",\"role\":\"ledger\",\"up\":%s,\"height\":%llu,\"view\":%llu,\"leader\":%s", x->up ? "true" : "false",
			(unsigned long long)x->height, (unsigned long long)x->view,
			(int64_t)x->index == leader ? "true" : "false");
		if (x->height_ms)
			fprintf(f, ",\"since_commit_ms\":%llu", (unsigned long long)(now - x->height_ms));
		if (x->polled && !x->up) {
			fputs(",\"error\":", f);
			gw_json_str(f, x->error);
		}
		fputc('}', f);
	}
	fputs("],\"indexers\":[", f);
	first = 1;
	for (size_t i = 0; i < n; i++) {
		const gw_console_node *x = &nodes[i];
		if (x->ledger)
			continue;
		fprintf(f, "%s{\"node\":", first ? "" : ",");
		first = 0;
		gw_json_hex(f, x->pk, CM_PK_BYTES);
		fputs(",\"addr\":", f);
		gw_json_str(f, x->addr);
		fprintf(f,
			",\"role\":\"indexer\",\"up\":%s,\"stake\":%llu,\"active\":%s,\"jailed\":%s,\"failures\":%llu,"
			"\"log_records\":%llu,\"live_vectors\":%llu",
			x->up ? "true" : "false", (unsigned long long)x->stake, x->active ? "true" : "false",
			x->jailed ? "true" : "false", (unsigned long long)x->failures, (unsigned long long)x->log_records,
			(unsigned long long)x->live_vectors);
		if (x->last_ok_ms)
			fprintf(f, ",\"last_seen_ms\":%llu", (unsigned long long)(now - x->last_ok_ms));
		if (x->polled && !x->up) {
			fputs(",\"error\":", f);
			gw_json_str(f, x->error);
		}
		fprintf(f, ",\"lease\":{\"primaries\":%llu,\"held\":%llu,\"lease_ms\":%llu}",
			(unsigned long long)x->primary_of, (unsigned long long)x->leases_held,
			(unsigned long long)x->lease_ms);
		fprintf(f, ",\"last_challenge\":{\"id\":%llu,\"result\":\"%s\"},\"challenges_failed\":%llu,\"rank\":",
			(unsigned long long)x->challenge_id, challenge_name(x->challenge_state),
			(unsigned long long)x->challenges_failed);
		rank_json(a, f, x->pk);
		fputs(",\"fragments\":[", f);
		int ff = 1;
		for (size_t c = 0; c < nc; c++)
			for (uint32_t k = 0; k < cs[c]->nfrag; k++) {
				const gw_frag *fr = &cs[c]->frags[k];
				for (uint32_t r = 0; r < fr->nrep; r++)
					if (memcmp(fr->rep[r].pk, x->pk, CM_PK_BYTES) == 0) {
						fprintf(f, "%s{\"collection\":", ff ? "" : ",");
						ff = 0;
						gw_json_str(f, cs[c]->name);
						fprintf(f, ",\"fragment\":%u,\"epoch\":%llu,\"role\":\"%s\"}", k,
							(unsigned long long)fr->epoch, (int)r == fr->primary ? "primary" : "backup");
					}
			}
		fputs("]}", f);
	}
	fputs("],\"gateways\":", f);
	gateways_json(a, f);
	fputs(",\"fragments\":[", f);
	uint32_t nok = 0, ndeg = 0, nlost = 0;
	first = 1;
	for (size_t c = 0; c < nc; c++)
		for (uint32_t k = 0; k < cs[c]->nfrag; k++) {
			const gw_frag *fr = &cs[c]->frags[k];
			uint32_t up = replicas_up(fr, nodes, n);
			const char *st = frag_state(fr, up);
			nok += st[0] == 'o';
			ndeg += st[0] == 'd';
			nlost += st[0] == 'l';
			fprintf(f, "%s{\"collection\":", first ? "" : ",");
			first = 0;
			gw_json_str(f, cs[c]->name);
			fprintf(f, ",\"fragment\":%u,\"epoch\":%llu,\"state\":\"%s\",\"up\":%u,\"primary\":", k,
				(unsigned long long)fr->epoch, st, up);
			if (fr->primary >= 0)
				gw_json_hex(f, fr->rep[fr->primary].pk, CM_PK_BYTES);
			else
				fputs("null", f);
			fputs(",\"replicas\":[", f);
			for (uint32_t r = 0; r < fr->nrep; r++) {
				if (r)
					fputc(',', f);
				gw_json_hex(f, fr->rep[r].pk, CM_PK_BYTES);
			}
			fputs("]}", f);
		}
	/* the mascot: alarmed when a fragment cannot reach QUORUM or the ledger
	 * has no quorum (2f+1 of n), worried when anything is degraded or down */
	uint32_t f_tol = nledger ? (nledger - 1) / 3 : 0;
	int ledger_lost = nledger && ledgers_up < nledger - f_tol;
	int any_down = ledgers_up < nledger;
	for (size_t i = 0; i < n; i++)
		any_down |= !nodes[i].ledger && nodes[i].polled && !nodes[i].up;
	const char *mood = nlost || ledger_lost ? "alarmed" : ndeg || any_down ? "worried" : "content";
	fprintf(f,
		"],\"health\":{\"mood\":\"%s\",\"fragments_ok\":%u,\"fragments_degraded\":%u,\"fragments_lost\":%u,"
		"\"ledgers_up\":%u,\"ledgers\":%u}}",
		mood, nok, ndeg, nlost, ledgers_up, nledger);
	for (size_t c = 0; c < nc; c++)
		gw_coll_free(cs[c]);
	free(cs);
	free(nodes);
	return 200;
}

static void coll_head(FILE *f, const gw_coll *m)
{
	uint64_t committed = 0, log = 0;
	for (uint32_t k = 0; k < m->nfrag; k++) {
		const gw_frag *fr = &m->frags[k];
		committed += fr->committed_size;
		log += fr->acked_size > fr->committed_size ? fr->acked_size : fr->committed_size;
	}
	fputs("{\"name\":", f);
	gw_json_str(f, m->name);
	fprintf(f,
		",\"dimension\":%u,\"metric\":\"%s\",\"index\":\"%s\",\"fragments\":%u,\"replication\":%u,"
		"\"committed_records\":%llu,\"log_records\":%llu,\"created_height\":%llu,\"owner\":",
		m->dim, metric_name(m->metric), index_name(m->index.kind), m->nfrag, m->repl, (unsigned long long)committed,
		(unsigned long long)log,
		(unsigned long long)m->created_height);
	gw_json_hex(f, m->owner, CM_PK_BYTES);
}

unsigned gw_api_collections(gw_console_api *a, const gw_console_who *who, FILE *f)
{
	gw_coll **cs = NULL;
	size_t nc = 0;
	if (gw_chain_list(a->g->chain, &cs, &nc) != CM_OK) {
		gw_api_error(f, "out of memory");
		return 500;
	}
	fputs("{\"collections\":[", f);
	int first = 1;
	for (size_t c = 0; c < nc; c++) {
		if (who->c.open || gw_auth_visible(a->g->auth, &who->c, cs[c]->name)) {
			if (!first)
				fputc(',', f);
			first = 0;
			coll_head(f, cs[c]);
			fputc('}', f);
		}
		gw_coll_free(cs[c]);
	}
	free(cs);
	fputs("]}", f);
	return 200;
}

unsigned gw_api_collection(gw_console_api *a, const gw_console_who *who, const char *name, FILE *f)
{
	gw_coll *m = NULL;
	gw_console_node *nodes = NULL;
	size_t n = 0;
	if (gw_chain_get(a->g->chain, name, &m) != CM_OK) {
		gw_api_error(f, "collection: not found");
		return 404;
	}
	if (!gw_console_may_read(a, who, name, f)) {
		gw_coll_free(m);
		return 403;
	}
	if (gw_console_poll_nodes(a->poll, &nodes, &n) != CM_OK) {
		gw_coll_free(m);
		gw_api_error(f, "out of memory");
		return 500;
	}
	coll_head(f, m);
	fputs(",\"fragment_list\":[", f);
	for (uint32_t k = 0; k < m->nfrag; k++) {
		const gw_frag *fr = &m->frags[k];
		uint32_t up = replicas_up(fr, nodes, n);
		fprintf(f,
			"%s{\"fragment\":%u,\"epoch\":%llu,\"state\":\"%s\",\"acked_size\":%llu,\"committed_size\":%llu,"
			"\"committed_root\":",
			k ? "," : "", k, (unsigned long long)fr->epoch, frag_state(fr, up), (unsigned long long)fr->acked_size,
			(unsigned long long)fr->committed_size);
		if (fr->committed_size)
			gw_json_hex(f, fr->committed_root, CM_HASH_BYTES);
		else
			fputs("null", f);
		fputs(",\"replicas\":[", f);
		for (uint32_t r = 0; r < fr->nrep; r++) {
			int upn = 1;
			for (size_t i = 0; i < n; i++)
				if (!nodes[i].ledger && memcmp(nodes[i].pk, fr->rep[r].pk, CM_PK_BYTES) == 0)
					upn = nodes[i].up || !nodes[i].polled;
			fprintf(f, "%s{\"node\":", r ? "," : "");
			gw_json_hex(f, fr->rep[r].pk, CM_PK_BYTES);
			fputs(",\"addr\":", f);
			gw_json_str(f, fr->rep[r].addr);
			fprintf(f, ",\"role\":\"%s\",\"up\":%s}", (int)r == fr->primary ? "primary" : "backup",
				upn ? "true" : "false");
		}
		fputs("]}", f);
	}
	fputs("]}", f);
	free(nodes);
	gw_coll_free(m);
	return 200;
}
