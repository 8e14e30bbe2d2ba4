/* The console's view of every node: a thread that asks each ledger replica
 * (from the genesis file) and each indexer (from the genesis file and the
 * routing table) for its Status once per poll period, with a timeout per
 * call, and now and then reads each indexer's record and challenges from
 * the ledger. The handlers read a copy (gw_console_poll_nodes). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"
#include "cm_genesis.h"
#include "cm_log.h"
#include "cm_time.h"
#include "gw_console.h"

#define CHAIN_EVERY 5 /* polls between reads of the indexers' records on the ledger */

struct gw_console_poll {
	gw_ctx *g;
	int poll_ms;
	char chain_id[65];
	pthread_t th;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	gw_console_node *nodes;          /* under mu */
	size_t n;
	cm_rpc_client **clients;         /* the poller thread's own, one per node */
	gw_console_gateway gws[CM_GENESIS_GATEWAYS_MAX]; /* the genesis's gateways, under mu */
	uint32_t ngws;
};

static int find(gw_console_poll *p, int ledger, const uint8_t *pk)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->nodes[i].ledger == ledger && memcmp(p->nodes[i].pk, pk, CM_PK_BYTES) == 0)
			return (int)i;
	return -1;
}

/* Adds an indexer (under mu); its address is updated when it moved. */
static void add_indexer(gw_console_poll *p, const uint8_t *pk, const char *addr)
{
	int i = find(p, 0, pk);
	if (i >= 0) {
		if (addr && addr[0] && strcmp(p->nodes[i].addr, addr) != 0) {
			snprintf(p->nodes[i].addr, sizeof(p->nodes[i].addr), "%s", addr);
			cm_rpc_client_free(p->clients[i]);
			p->clients[i] = NULL;
		}
		return;
	}
	if (p->n >= GW_CONSOLE_NODES_MAX)
		return;
	gw_console_node *x = &p->nodes[p->n++];
	memset(x, 0, sizeof(*x));
	memcpy(x->pk, pk, CM_PK_BYTES);
	snprintf(x->addr, sizeof(x->addr), "%s", addr ? addr : "");
}

/* `indexer = <hex key> <host:port> ...` lines of the genesis file. */
static void genesis_indexers(gw_console_poll *p, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[CM_GENESIS_LINE_MAX];
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char hex[2 * CM_PK_BYTES + 8], addr[GW_ADDR_MAX];
		uint8_t pk[CM_PK_BYTES];
		if (sscanf(line, " indexer = %70s %255s", hex, addr) == 2 && strlen(hex) == 2 * CM_PK_BYTES &&
		    cm_unhex(pk, CM_PK_BYTES, hex) == CM_OK)
			add_indexer(p, pk, addr);
	}
	fclose(f);
}

static void routing_indexers(gw_console_poll *p)
{
	gw_coll **cs = NULL;
	size_t nc = 0;
	if (!p->g->chain || gw_chain_list(p->g->chain, &cs, &nc) != CM_OK)
		return;
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < nc; i++)
		for (uint32_t f = 0; f < cs[i]->nfrag; f++)
			for (uint32_t r = 0; r < cs[i]->frags[f].nrep; r++)
				add_indexer(p, cs[i]->frags[f].rep[r].pk, cs[i]->frags[f].rep[r].addr);
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < nc; i++)
		gw_coll_free(cs[i]);
	free(cs);
}

static uint64_t detail(const Muri__V1__StatusResponse *s, const char *key)
{
	for (size_t i = 0; i < s->n_details; i++)
		if (strcmp(s->details[i]->key, key) == 0)
			return strtoull(s->details[i]->value, NULL, 10);
	return 0;
}

/* Asks node i for its Status (outside mu: the node's fields are read into
 * locals and written back under it). */
static void poll_one(gw_console_poll *p, size_t i)
{
	gw_console_node x;
	pthread_mutex_lock(&p->mu);
	x = p->nodes[i];
	pthread_mutex_unlock(&p->mu);
	if (!p->clients[i] && x.addr[0]) {
		const char *ca = p->g->cfg->tls_ca;
		/* the node the chain names there, not whoever serves the address */
		cm_rpc_client_opts o = {.target = x.addr, .tls_ca_file = ca && ca[0] ? ca : NULL, .tls_expect_node = x.pk};
		char err[256];
		if (cm_rpc_client_new(&o, &p->clients[i], err, sizeof(err)) != CM_OK)
			p->clients[i] = NULL;
	}
	Muri__V1__StatusRequest req = MURI__V1__STATUS_REQUEST__INIT;
	Muri__V1__StatusResponse *s = NULL;
	cm_rpc_status st = {0};
	int rc = p->clients[i] ? cm_rpc_unary(p->clients[i], x.ledger ? "/muri.v1.Ledger/Status" : "/muri.v1.Indexer/Status",
					      &req.base, &muri__v1__status_response__descriptor, (ProtobufCMessage **)&s,
					      GW_CONSOLE_CALL_MS, &st)
			       : CM_ERR_IO;
	uint64_t now = cm_now_ms();
	pthread_mutex_lock(&p->mu);
	gw_console_node *n = &p->nodes[i];
	n->polled = 1;
	if (rc == CM_OK && s) {
		n->up = 1;
		n->last_ok_ms = now;
		n->error[0] = '\0';
		if (n->ledger) {
			uint64_t h = detail(s, "height");
			if (h != n->height || n->height_ms == 0)
				n->height_ms = now;
			n->height = h;
			n->view = detail(s, "view");
		} else {
			n->fragments = detail(s, "fragments");
			n->primary_of = detail(s, "primary_of");
			n->log_records = detail(s, "log_records");
			n->live_vectors = detail(s, "live_vectors");
			n->leases_held = detail(s, "leases_held");
			n->lease_ms = detail(s, "lease_ms");
		}
	} else {
		n->up = 0;
		snprintf(n->error, sizeof(n->error), "%.150s", st.message[0] ? st.message : "no answer");
	}
	pthread_mutex_unlock(&p->mu);
	if (s)
		protobuf_c_message_free_unpacked(&s->base, NULL);
}

/* The indexer's record and its latest decided challenge, from the ledger. */
static void chain_one(gw_console_poll *p, size_t i)
{
	cm_ledger_client *lc = p->g->chain ? gw_chain_client(p->g->chain) : NULL;
	uint8_t pk[CM_PK_BYTES];
	if (!lc)
		return;
	pthread_mutex_lock(&p->mu);
	memcpy(pk, p->nodes[i].pk, CM_PK_BYTES);
	pthread_mutex_unlock(&p->mu);
	Muri__V1__IndexerRequest ir = MURI__V1__INDEXER_REQUEST__INIT;
	ir.pubkey.data = pk;
	ir.pubkey.len = CM_PK_BYTES;
	Muri__V1__IndexerInfo *info = NULL;
	cm_rpc_status st;
	int rc = cm_ledger_client_call(lc, "/muri.v1.Ledger/GetIndexer", &ir.base, &muri__v1__indexer_info__descriptor,
				       (ProtobufCMessage **)&info, &st);
	Muri__V1__ChallengesRequest cr = MURI__V1__CHALLENGES_REQUEST__INIT;
	cr.indexer.data = pk;
	cr.indexer.len = CM_PK_BYTES;
	cr.max = 1000;
	Muri__V1__ChallengesResponse *ch = NULL;
	int rc2 = cm_ledger_client_call(lc, "/muri.v1.Ledger/GetChallenges", &cr.base,
					&muri__v1__challenges_response__descriptor, (ProtobufCMessage **)&ch, &st);
	pthread_mutex_lock(&p->mu);
	gw_console_node *n = &p->nodes[i];
	if (rc == CM_OK && info) {
		n->known_on_chain = 1;
		n->stake = info->stake;
		n->failures = info->failures;
		n->active = info->active;
		n->jailed = info->jailed;
	}
	if (rc2 == CM_OK && ch) {
		uint64_t best = 0, failed = 0;
		int state = 0;
		for (size_t k = 0; k < ch->n_challenges; k++) {
			const Muri__V1__Challenge *c = ch->challenges[k];
			failed += c->state == MURI__V1__CHALLENGE_STATE__CHALLENGE_FAILED;
			if (c->state != MURI__V1__CHALLENGE_STATE__CHALLENGE_OPEN && c->id >= best) {
				best = c->id;
				state = c->state;
			}
		}
		n->challenge_id = best;
		n->challenge_state = state;
		n->challenges_failed = failed;
	}
	pthread_mutex_unlock(&p->mu);
	if (info)
		protobuf_c_message_free_unpacked(&info->base, NULL);
	if (ch)
		protobuf_c_message_free_unpacked(&ch->base, NULL);
}

/* A genesis gateway's latest settled receipt, from the ledger: its sign of
 * life on chain (gateways are listed by key only, without an address). */
static void chain_gateway(gw_console_poll *p, uint32_t i)
{
	cm_ledger_client *lc = p->g->chain ? gw_chain_client(p->g->chain) : NULL;
	uint8_t pk[CM_PK_BYTES];
	if (!lc)
		return;
	pthread_mutex_lock(&p->mu);
	memcpy(pk, p->gws[i].pk, CM_PK_BYTES);
	pthread_mutex_unlock(&p->mu);
	Muri__V1__ReceiptsRequest rq = MURI__V1__RECEIPTS_REQUEST__INIT;
	rq.gateway.data = pk;
	rq.gateway.len = CM_PK_BYTES;
	rq.limit = 1;
	Muri__V1__ReceiptsResponse *r = NULL;
	cm_rpc_status st;
	int rc = cm_ledger_client_call(lc, "/muri.v1.Ledger/GetReceipts", &rq.base,
				       &muri__v1__receipts_response__descriptor, (ProtobufCMessage **)&r, &st);
	pthread_mutex_lock(&p->mu);
	if (rc == CM_OK && r) {
		p->gws[i].checked = 1;
		p->gws[i].last_settle_height = r->n_receipts ? r->receipts[0]->height : 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void *run(void *arg)
{
	gw_console_poll *p = arg;
	for (uint64_t tick = 0;; tick++) {
		uint64_t t0 = cm_now_ms();
		routing_indexers(p);
		pthread_mutex_lock(&p->mu);
		size_t n = p->n;
		pthread_mutex_unlock(&p->mu);
		for (size_t i = 0; i < n; i++)
			poll_one(p, i);
		if (tick % CHAIN_EVERY == 0)
			for (size_t i = 0; i < n; i++) {
				pthread_mutex_lock(&p->mu);
				int ledger = p->nodes[i].ledger;
				pthread_mutex_unlock(&p->mu);
				if (!ledger)
					chain_one(p, i);
			}
		if (tick % CHAIN_EVERY == 0)
			for (uint32_t i = 0; i < p->ngws; i++)
				chain_gateway(p, i);
		pthread_mutex_lock(&p->mu);
		uint64_t wait = (uint64_t)p->poll_ms;
		uint64_t took = cm_now_ms() - t0;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ms = took >= wait ? 1 : wait - took;
		ts.tv_sec += (time_t)(ms / 1000);
		ts.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0)
			;
		int stop = p->stop;
		pthread_mutex_unlock(&p->mu);
		if (stop)
			return NULL;
	}
}

int gw_console_poll_start(gw_ctx *g, int poll_ms, gw_console_poll **out, char *err, size_t errlen)
{
	gw_console_poll *p = calloc(1, sizeof(*p));
	cm_genesis_replicas *gen = calloc(1, sizeof(*gen));
	if (!p || !gen) {
		free(p);
		free(gen);
		snprintf(err, errlen, "console: out of memory");
		return CM_ERR_NOMEM;
	}
	p->g = g;
	p->poll_ms = poll_ms;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->nodes = calloc(GW_CONSOLE_NODES_MAX, sizeof(*p->nodes));
	p->clients = calloc(GW_CONSOLE_NODES_MAX, sizeof(*p->clients));
	int rc = p->nodes && p->clients ? CM_OK : CM_ERR_NOMEM;
	if (rc == CM_OK)
		rc = cm_genesis_read_replicas(g->cfg->genesis, gen, err, errlen);
	if (rc == CM_OK) {
		snprintf(p->chain_id, sizeof(p->chain_id), "%s", gen->chain_id);
		for (uint32_t i = 0; i < gen->n && p->n < GW_CONSOLE_NODES_MAX; i++) {
			gw_console_node *x = &p->nodes[p->n++];
			x->ledger = 1;
			x->index = i;
			memcpy(x->pk, gen->pks[i], CM_PK_BYTES);
			snprintf(x->addr, sizeof(x->addr), "%s", gen->addrs[i]);
		}
		genesis_indexers(p, g->cfg->genesis);
		for (uint32_t i = 0; i < gen->ngateways && i < CM_GENESIS_GATEWAYS_MAX; i++)
			memcpy(p->gws[p->ngws++].pk, gen->gateways[i], CM_PK_BYTES);
		if (pthread_create(&p->th, NULL, run, p) != 0) {
			snprintf(err, errlen, "console: cannot start the poller thread");
			rc = CM_ERR_NOMEM;
		} else {
			p->started = 1;
		}
	}
	free(gen);
	if (rc != CM_OK) {
		gw_console_poll_free(p);
		return rc;
	}
	*out = p;
	return CM_OK;
}

void gw_console_poll_free(gw_console_poll *p)
{
	if (!p)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->th, NULL);
	}
	for (size_t i = 0; p->clients && i < p->n; i++)
		cm_rpc_client_free(p->clients[i]);
	free(p->clients);
	free(p->nodes);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

int gw_console_poll_nodes(gw_console_poll *p, gw_console_node **out, size_t *n)
{
	pthread_mutex_lock(&p->mu);
	*out = malloc((p->n ? p->n : 1) * sizeof(**out));
	if (!*out) {
		pthread_mutex_unlock(&p->mu);
		return CM_ERR_NOMEM;
	}
	memcpy(*out, p->nodes, p->n * sizeof(**out));
	*n = p->n;
	pthread_mutex_unlock(&p->mu);
	return CM_OK;
}

const char *gw_console_poll_chain_id(gw_console_poll *p)
{
	return p->chain_id;
}

int gw_console_poll_gateways(gw_console_poll *p, gw_console_gateway **out, size_t *n)
{
	pthread_mutex_lock(&p->mu);
	size_t k = p->ngws;
	gw_console_gateway *c = malloc((k ? k : 1) * sizeof(*c));
	if (c)
		memcpy(c, p->gws, k * sizeof(*c));
	pthread_mutex_unlock(&p->mu);
	if (!c)
		return CM_ERR_NOMEM;
	*out = c;
	*n = k;
	return CM_OK;
}
