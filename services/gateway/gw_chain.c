/* The gateway's view of the chain: a verified follower (cm_follower) from the
 * genesis replicas hands over every final block; its effects keep the
 * routing table current: a created Magu is read once (GetMagu, at a snapshot
 * no older than the block) for its schema, fragment configurations and
 * committed roots; later FragmentConfigs replace a fragment's epoch, primary,
 * replicas and split fields (a split's halves add fragment numbers: every
 * copy handed out carries the split map, gw_split.c); committed roots its
 * committed size and root; a dropped Magu
 * leaves the table. The gateway only routes by this table (a wrong entry
 * makes a call fail at the indexer, which checks epochs), so it applies a
 * final block at once rather than waiting for a pin to vouch for its effects
 * as the indexer does before acting on them. The table lives in memory and
 * is rebuilt from genesis at each start. Every change to it moves a version
 * counter that waiters (CreateCollection, writes retrying after a failover)
 * watch.
 *
 * Until the table has caught up with the chain, a collection it lacks may
 * well exist: at start a probe asks the replicas their committed height
 * (the one f + 1 of them vouch for, cm_ledger_client_height) until enough
 * answer, and the gateway is ready once it has applied that height. Before,
 * lookups that miss say UNAVAILABLE rather than NOT_FOUND (gw_no_collection)
 * and /healthz says how far it is. */
#include "gw.h"
#include "cm_err.h"
#include "cm_follower.h"
#include "cm_genesis.h"
#include "cm_log.h"
#include "cm_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAGU_READ_TRIES 50 /* GetMagu until a replica has the block: 50 x 100 ms */
#define PROBE_MS 500 /* the start's height probe: again after this while fewer than f + 1 answer */
#define MAGU_ABSENT_TRIES 10 /* NOT_FOUND this often: dropped since (a final block is applied by
			      * n - f replicas, so a lagging one is rare and brief) */

struct gw_chain {
	gw_chain_opts o;
	cm_genesis_replicas gen;
	cm_ledger_client *lc;
	cm_follower *f;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	gw_coll **colls;
	size_t n, cap;
	uint64_t version, next_gen, height;
	uint64_t target;                 /* the chain's height at start, as f + 1 replicas vouch */
	int target_known, ready, stop, probing;
	pthread_t probe;
};

void gw_coll_free(gw_coll *m)
{
	if (!m)
		return;
	free(m->frags);
	free(m->map);
	free(m->plan);
	free(m);
}

static gw_coll *coll_copy(const gw_coll *m)
{
	gw_coll *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	*c = *m;
	c->frags = calloc(m->nfrag ? m->nfrag : 1, sizeof(*c->frags));
	if (!c->frags) {
		free(c);
		return NULL;
	}
	memcpy(c->frags, m->frags, m->nfrag * sizeof(*c->frags));
	c->map = NULL;
	c->plan = NULL;
	if (gw_split_plan(c) != CM_OK) {
		gw_coll_free(c);
		return NULL;
	}
	return c;
}

static ssize_t find(const gw_chain *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->colls[i]->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static void changed(gw_chain *c)
{
	c->version++;
	pthread_cond_broadcast(&c->cv);
}

static void set_config(gw_frag *f, const Muri__V1__FragmentConfig *cfg)
{
	if (cfg->epoch < f->epoch)
		return;
	gw_split_set(f, cfg->fragment, cfg);
	f->epoch = cfg->epoch;
	f->primary = -1;
	f->nrep = 0;
	for (size_t i = 0; i < cfg->n_replicas && f->nrep < GW_MAX_REPLICAS; i++) {
		const Muri__V1__Replica *r = cfg->replicas[i];
		if (!r || r->pubkey.len != CM_PK_BYTES)
			continue;
		gw_replica *x = &f->rep[f->nrep];
		memcpy(x->pk, r->pubkey.data, CM_PK_BYTES);
		snprintf(x->addr, sizeof(x->addr), "%s", r->address ? r->address : "");
		if (cfg->primary.len == CM_PK_BYTES && memcmp(cfg->primary.data, x->pk, CM_PK_BYTES) == 0)
			f->primary = (int)f->nrep;
		f->nrep++;
	}
}

static void set_root(gw_frag *f, const Muri__V1__SignedRoot *r)
{
	if (r->root.len != CM_HASH_BYTES || r->size < f->committed_size)
		return;
	f->committed_size = r->size;
	memcpy(f->committed_root, r->root.data, CM_HASH_BYTES);
}

/* The Magu from a ledger snapshot at or above height; CM_ERR_NOTFOUND once
 * a replica at that height does not have it (dropped since). */
static int read_magu(gw_chain *c, const char *name, uint64_t height, Muri__V1__MaguInfo **out)
{
	Muri__V1__MaguRequest req = MURI__V1__MAGU_REQUEST__INIT;
	req.name = (char *)name;
	int rc = CM_ERR_UNAVAILABLE, absent = 0;
	for (int i = 0; i < MAGU_READ_TRIES && absent < MAGU_ABSENT_TRIES; i++) {
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		rc = cm_ledger_client_call(c->lc, "/muri.v1.Ledger/GetMagu", &req.base, &muri__v1__magu_info__descriptor,
					   &resp, &st);
		if (rc == CM_OK) {
			Muri__V1__MaguInfo *m = (Muri__V1__MaguInfo *)resp;
			if (m->at && m->at->height >= height) {
				*out = m;
				return CM_OK;
			}
			protobuf_c_message_free_unpacked(resp, NULL);
		} else if (st.code == GRPC_STATUS_NOT_FOUND) {
			absent++; /* the replica may lag behind the block that created it */
		} else {
			cm_warn("gw_chain_magu", "magu=%s code=%s message=\"%s\"", name, cm_rpc_code_name(st.code),
				st.message);
		}
		cm_sleep_ms((uint64_t)100);
	}
	return rc == CM_OK ? CM_ERR_TIMEOUT : rc;
}

/* Makes room for fragment numbers 0..n-1 (a split's halves); 0 on success. */
static int grow(gw_coll *c, uint32_t n)
{
	if (n <= c->nfrag)
		return 0;
	if (n > GW_MAX_FRAGMENTS)
		return -1;
	gw_frag *f = realloc(c->frags, n * sizeof(*f));
	if (!f)
		return -1;
	memset(f + c->nfrag, 0, (n - c->nfrag) * sizeof(*f));
	for (uint32_t i = c->nfrag; i < n; i++)
		f[i].primary = -1;
	c->frags = f;
	c->nfrag = n;
	return 0;
}

static gw_coll *coll_from(const Muri__V1__MaguInfo *m, uint64_t gen)
{
	if (!m->name || strlen(m->name) > GW_NAME_MAX || m->fragments == 0 || m->fragments > GW_MAX_FRAGMENTS)
		return NULL;
	gw_coll *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->frags = calloc(m->fragments, sizeof(*c->frags));
	if (!c->frags) {
		free(c);
		return NULL;
	}
	snprintf(c->name, sizeof(c->name), "%s", m->name);
	c->gen = gen;
	c->dim = m->dimension;
	c->metric = m->metric;
	muri__v1__index_spec__init(&c->index);
	if (m->index) {
		Muri__V1__IndexSpec s = *m->index;
		s.base = c->index.base;
		c->index = s;
	}
	c->nfrag = m->fragments;
	c->nbase = m->fragments;
	c->repl = m->replication;
	if (m->owner.len == CM_PK_BYTES)
		memcpy(c->owner, m->owner.data, CM_PK_BYTES);
	c->created_height = m->created_height;
	for (uint32_t i = 0; i < c->nfrag; i++)
		c->frags[i].primary = -1;
	for (size_t i = 0; i < m->n_configs; i++)
		if (m->configs[i] && m->configs[i]->fragment < GW_MAX_FRAGMENTS && grow(c, m->configs[i]->fragment + 1) == 0)
			set_config(&c->frags[m->configs[i]->fragment], m->configs[i]);
	for (size_t i = 0; i < m->n_committed_roots; i++)
		if (m->committed_roots[i] && m->committed_roots[i]->fragment < c->nfrag)
			set_root(&c->frags[m->committed_roots[i]->fragment], m->committed_roots[i]);
	return c;
}

static void remove_at(gw_chain *c, size_t i)
{
	gw_coll_free(c->colls[i]);
	memmove(c->colls + i, c->colls + i + 1, (c->n - i - 1) * sizeof(*c->colls));
	c->n--;
}

static void created(gw_chain *c, uint64_t height, const char *name)
{
	Muri__V1__MaguInfo *m = NULL;
	int rc = read_magu(c, name, height, &m);
	if (rc != CM_OK) {
		cm_warn("gw_chain_magu", "height=%llu magu=%s error=\"%s\" (not routed)", (unsigned long long)height,
			name, cm_strerror(rc));
		return;
	}
	pthread_mutex_lock(&c->mu);
	gw_coll *x = coll_from(m, ++c->next_gen);
	ssize_t at = find(c, name);
	if (x && at >= 0)
		remove_at(c, (size_t)at);
	if (x && c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		gw_coll **nc = realloc(c->colls, cap * sizeof(*nc));
		if (nc) {
			c->colls = nc;
			c->cap = cap;
		}
	}
	if (x && c->n < c->cap) {
		c->colls[c->n++] = x;
		changed(c);
		cm_info("gw_collection", "height=%llu magu=%s fragments=%u replication=%u dim=%u", (unsigned long long)height,
			name, x->nfrag, x->repl, x->dim);
	} else {
		gw_coll_free(x);
		cm_warn("gw_chain_magu", "height=%llu magu=%s error=\"cannot hold it\"", (unsigned long long)height, name);
	}
	pthread_mutex_unlock(&c->mu);
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

static int on_block(void *arg, const Muri__V1__Block *b)
{
	gw_chain *c = arg;
	const Muri__V1__BlockEffects *e = b->effects;
	uint64_t h = b->header ? b->header->height : 0;
	if (c->o.auth)
		gw_auth_apply_block(c->o.auth, b);
	if (e) {
		for (size_t i = 0; i < e->n_magus_created; i++)
			if (e->magus_created[i])
				created(c, h, e->magus_created[i]);
	}
	pthread_mutex_lock(&c->mu);
	int moved = e && (e->n_magus_created || e->n_magus_dropped || e->n_configs || e->n_roots);
	for (size_t i = 0; e && i < e->n_magus_dropped; i++) {
		ssize_t at = e->magus_dropped[i] ? find(c, e->magus_dropped[i]) : -1;
		if (at >= 0) {
			remove_at(c, (size_t)at);
			cm_info("gw_collection_dropped", "height=%llu magu=%s", (unsigned long long)h, e->magus_dropped[i]);
		}
	}
	for (size_t i = 0; e && i < e->n_configs; i++) {
		const Muri__V1__FragmentConfig *cfg = e->configs[i];
		ssize_t at = cfg && cfg->magu ? find(c, cfg->magu) : -1;
		/* a split's halves are new fragment numbers */
		if (at >= 0 && cfg->fragment < GW_MAX_FRAGMENTS && grow(c->colls[at], cfg->fragment + 1) == 0)
			set_config(&c->colls[at]->frags[cfg->fragment], cfg);
	}
	for (size_t i = 0; e && i < e->n_roots; i++) {
		const Muri__V1__SignedRoot *r = e->roots[i];
		ssize_t at = r && r->magu ? find(c, r->magu) : -1;
		if (at >= 0 && r->fragment < c->colls[at]->nfrag)
			set_root(&c->colls[at]->frags[r->fragment], r);
	}
	c->height = h;
	if (c->target_known && !c->ready && h >= c->target) {
		c->ready = 1;
		pthread_cond_broadcast(&c->cv);
		cm_info("gw_ready", "height=%llu target=%llu", (unsigned long long)h, (unsigned long long)c->target);
	}
	if (moved) /* waiters care about routing, not every empty block */
		changed(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* Asks the replicas their height until f + 1 answer; the target is then
 * fixed (later blocks do not move it: the gateway that reached it has read
 * every collection created before it started). */
static void *probe_main(void *arg)
{
	gw_chain *c = arg;
	char err[512];
	for (unsigned tries = 0;; tries++) {
		uint64_t h = 0;
		int rc = cm_ledger_client_height(c->lc, &h, err, sizeof(err));
		pthread_mutex_lock(&c->mu);
		if (rc == CM_OK) {
			c->target = h;
			c->target_known = 1;
			if (c->height >= h) {
				c->ready = 1;
				pthread_cond_broadcast(&c->cv);
			}
			cm_info("gw_chain_target", "target=%llu height=%llu ready=%d", (unsigned long long)h,
				(unsigned long long)c->height, c->ready);
		} else if (tries % 20 == 0) {
			cm_warn("gw_chain_target", "error=\"no f + 1 replicas told their height: %s\"", err);
		}
		for (uint64_t until = cm_now_ms() + PROBE_MS, now = cm_now_ms(); rc != CM_OK && !c->stop && now < until;
		     now = cm_now_ms())
			cm_cond_wait_ms(&c->cv, &c->mu, until - now);
		int done = rc == CM_OK || c->stop;
		pthread_mutex_unlock(&c->mu);
		if (done)
			return NULL;
	}
}

int gw_chain_ready(gw_chain *c, uint64_t *height, uint64_t *target, int *known)
{
	pthread_mutex_lock(&c->mu);
	int ready = c->ready;
	if (height)
		*height = c->height;
	if (target)
		*target = c->target;
	if (known)
		*known = c->target_known;
	pthread_mutex_unlock(&c->mu);
	return ready;
}

int gw_chain_wait_ready(gw_chain *c, uint64_t ms)
{
	uint64_t until = cm_now_ms() + ms;
	pthread_mutex_lock(&c->mu);
	for (uint64_t now = cm_now_ms(); !c->ready && now < until; now = cm_now_ms())
		cm_cond_wait_ms(&c->cv, &c->mu, until - now);
	int ready = c->ready;
	pthread_mutex_unlock(&c->mu);
	return ready;
}

int gw_chain_start(const gw_chain_opts *o, gw_chain **out, char *err, size_t errlen)
{
	*out = NULL;
	gw_chain *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return CM_ERR_NOMEM;
	}
	c->o = *o;
	pthread_mutex_init(&c->mu, NULL);
	cm_cond_init(&c->cv);
	int rc = cm_genesis_read_replicas(o->genesis_file, &c->gen, err, errlen);
	if (rc == CM_OK) {
		cm_ledger_client_opts lo = {.chain_id = c->gen.chain_id, .n = c->gen.n, .addrs = c->gen.addrp,
					    .key = o->key, .fee = o->fee, .tls_ca_file = o->tls_ca_file,
					    .pks = (const uint8_t(*)[CM_PK_BYTES])c->gen.pks};
		rc = cm_ledger_client_new(&lo, &c->lc, err, errlen);
	}
	if (rc == CM_OK) {
		cm_follower_opts fo = {
			.genesis = {.chain_id = c->gen.chain_id, .n = c->gen.n,
				    .pks = (const uint8_t(*)[CM_PK_BYTES])c->gen.pks, .addrs = c->gen.addrp},
			.on_block = on_block,
			.arg = c,
			.stall_ms = o->stall_ms,
			.tls_ca_file = o->tls_ca_file,
		};
		rc = cm_follower_start(&fo, &c->f, err, errlen);
	}
	if (rc == CM_OK) {
		if (pthread_create(&c->probe, NULL, probe_main, c) != 0) {
			snprintf(err, errlen, "cannot start the height probe");
			rc = CM_ERR_NOMEM;
		} else {
			c->probing = 1;
		}
	}
	if (rc != CM_OK) {
		gw_chain_free(c);
		return rc;
	}
	cm_info("gw_chain", "chain_id=%s replicas=%u", c->gen.chain_id, c->gen.n);
	*out = c;
	return CM_OK;
}

void gw_chain_free(gw_chain *c)
{
	if (!c)
		return;
	if (c->probing) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->probe, NULL);
	}
	cm_follower_free(c->f);
	cm_ledger_client_free(c->lc);
	for (size_t i = 0; i < c->n; i++)
		gw_coll_free(c->colls[i]);
	free(c->colls);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

cm_ledger_client *gw_chain_client(gw_chain *c)
{
	return c->lc;
}

int gw_chain_get(gw_chain *c, const char *name, gw_coll **out)
{
	pthread_mutex_lock(&c->mu);
	ssize_t at = find(c, name);
	int rc = CM_ERR_NOTFOUND;
	if (at >= 0) {
		*out = coll_copy(c->colls[at]);
		rc = *out ? CM_OK : CM_ERR_NOMEM;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(gw_coll *const *)a)->name, (*(gw_coll *const *)b)->name);
}

int gw_chain_list(gw_chain *c, gw_coll ***out, size_t *n)
{
	pthread_mutex_lock(&c->mu);
	gw_coll **v = calloc(c->n ? c->n : 1, sizeof(*v));
	size_t k = 0;
	int rc = v ? CM_OK : CM_ERR_NOMEM;
	for (size_t i = 0; rc == CM_OK && i < c->n; i++) {
		v[k] = coll_copy(c->colls[i]);
		if (v[k])
			k++;
		else
			rc = CM_ERR_NOMEM;
	}
	pthread_mutex_unlock(&c->mu);
	if (rc != CM_OK) {
		for (size_t i = 0; i < k; i++)
			gw_coll_free(v[i]);
		free(v);
		return rc;
	}
	qsort(v, k, sizeof(*v), by_name);
	*out = v;
	*n = k;
	return CM_OK;
}

int gw_chain_frag(gw_chain *c, const char *name, uint64_t gen, uint32_t fragment, gw_frag *out)
{
	pthread_mutex_lock(&c->mu);
	ssize_t at = find(c, name);
	int rc = CM_ERR_NOTFOUND;
	if (at >= 0 && c->colls[at]->gen == gen && fragment < c->colls[at]->nfrag) {
		*out = c->colls[at]->frags[fragment];
		rc = CM_OK;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void gw_chain_note_acked(gw_chain *c, const char *name, uint64_t gen, uint32_t fragment, uint64_t size)
{
	pthread_mutex_lock(&c->mu);
	ssize_t at = find(c, name);
	if (at >= 0 && c->colls[at]->gen == gen && fragment < c->colls[at]->nfrag &&
	    c->colls[at]->frags[fragment].acked_size < size)
		c->colls[at]->frags[fragment].acked_size = size;
	pthread_mutex_unlock(&c->mu);
}

uint64_t gw_chain_version(gw_chain *c)
{
	pthread_mutex_lock(&c->mu);
	uint64_t v = c->version;
	pthread_mutex_unlock(&c->mu);
	return v;
}

void gw_chain_wait(gw_chain *c, uint64_t seen, uint64_t ms)
{
	uint64_t until = cm_now_ms() + ms;
	pthread_mutex_lock(&c->mu);
	for (uint64_t now = cm_now_ms(); c->version == seen && now < until; now = cm_now_ms())
		cm_cond_wait_ms(&c->cv, &c->mu, until - now);
	pthread_mutex_unlock(&c->mu);
}

const char *gw_chain_id(gw_chain *c)
{
	return c->gen.chain_id;
}

uint64_t gw_chain_height(gw_chain *c)
{
	pthread_mutex_lock(&c->mu);
	uint64_t h = c->height;
	pthread_mutex_unlock(&c->mu);
	return h;
}
