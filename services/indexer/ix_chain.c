/* The indexer's follower of the ledger: final blocks from cm_follower are
 * queued until a certified pin vouches for their effects (height <=
 * verified_through), then applied in height order: every FragmentConfig that
 * names this indexer, or names a fragment it holds, goes through
 * ixr_apply_config (a new fragment's schema is read from the Magu, at a
 * snapshot no older than the block), every committed root of a held
 * fragment raises its floor (ix_repl_on_commit_root), and the follow point
 * (height, hash, state root) is replaced atomically in data_dir. A
 * submitter thread turns the replicas' failover requests into FailoverRequest
 * transactions through the ledger client (the new epoch comes back by the
 * feed) and submits roots (ix_chain_proofs.c); challenges addressed to this
 * node are queued as their blocks are applied and answered by an answerer
 * thread, so the ledger round trips of the answers never hold back the
 * blocks behind them (a fragment's new configuration among them: its
 * backups, which applied it, would start suspecting a primary that had not
 * yet learned it is one). */
#include "ix_chain.h"
#include "ix_service_int.h"
#include "ix_split.h"
#include "cm_err.h"
#include "cm_follower.h"
#include "cm_genesis.h"
#include "cm_log.h"
#include "cm_time.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAGU_READ_TRIES 50      /* GetMagu until a replica has the block: 50 x 100 ms */
#define FAILOVER_QUEUE 16       /* failover requests waiting for the submitter */
#define CHALLENGE_QUEUE 64      /* challenges waiting for the answerer; beyond, answered in line */

struct failover {
	char magu[IX_MAGU_MAX + 1];
	uint32_t fragment;
	ix_failover_report r;
};

struct pending {
	uint64_t height;
	uint8_t hash[CM_HASH_BYTES];
	uint8_t root[CM_HASH_BYTES];
	Muri__V1__BlockEffects *eff; /* owned (a copy) */
};

struct ix_chain {
	ix_chain_opts o;
	char *data_dir;
	char chain_id[65];
	uint32_t n;
	uint8_t pks[CM_CHAIN_MAX_REPLICAS][CM_PK_BYTES];
	char addrs[CM_CHAIN_MAX_REPLICAS][IX_ADDR_MAX];
	const char *addrp[CM_CHAIN_MAX_REPLICAS];
	cm_ledger_client *lc;
	_Atomic(cm_follower *) f;
	/* the follower's thread only */
	struct pending *q;
	size_t nq, qmax;
	atomic_uint_least64_t applied;
	/* failover requests to submit, newest per fragment */
	pthread_mutex_t fmu;
	pthread_cond_t fcv;
	struct failover fq[FAILOVER_QUEUE];
	size_t nfq;
	int fstop, fthread;
	pthread_t submitter;
	/* challenges to answer (copies), oldest first; under fmu */
	pthread_cond_t acv;
	Muri__V1__Challenge *aq[CHALLENGE_QUEUE];
	size_t naq;
	int athread;
	pthread_t answerer;
	uint64_t failovers_sent, failovers_refused, failovers_dropped;
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Reads chain_id, the replica and the gateway lines of the ledger's genesis
 * file (common/cm_genesis.h; the other keys are the ledger's business): the
 * ledger replicas (the challengers) and the gateways (spot checks) may read
 * every fragment's proofs. */
static int read_genesis(ix_chain *c, const char *path, char *err, size_t errlen)
{
	cm_genesis_replicas g;
	_Static_assert(CM_GENESIS_ADDR_MAX <= IX_ADDR_MAX, "a genesis address fits");
	int rc = cm_genesis_read_replicas(path, &g, err, errlen);
	if (rc != CM_OK)
		return rc;
	snprintf(c->chain_id, sizeof(c->chain_id), "%s", g.chain_id);
	c->n = g.n;
	for (uint32_t i = 0; i < g.n; i++) {
		memcpy(c->pks[i], g.pks[i], CM_PK_BYTES);
		snprintf(c->addrs[i], IX_ADDR_MAX, "%s", g.addrs[i]);
		c->addrp[i] = c->addrs[i];
	}
	uint8_t(*readers)[CM_PK_BYTES] = malloc((g.n + g.ngateways) * CM_PK_BYTES);
	if (!readers)
		return fail(err, errlen, CM_ERR_NOMEM, "out of memory");
	memcpy(readers, g.pks, g.n * CM_PK_BYTES);
	memcpy(readers + g.n, g.gateways, g.ngateways * CM_PK_BYTES);
	rc = ix_service_set_readers(c->o.svc, (const uint8_t(*)[CM_PK_BYTES])readers, g.n + g.ngateways);
	free(readers);
	if (rc != CM_OK)
		return fail(err, errlen, rc, "out of memory");
	return CM_OK;
}

/* The persisted follow point; CM_ERR_NOTFOUND when there is none yet. */
static int load_point(ix_chain *c, uint64_t *height, uint8_t hash[CM_HASH_BYTES], uint8_t root[CM_HASH_BYTES],
		      char *err, size_t errlen)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", c->data_dir, IX_CHAIN_STATE_FILE);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return errno == ENOENT ? CM_ERR_NOTFOUND
				       : fail(err, errlen, CM_ERR_IO, "%s: %s", path, strerror(errno));
	unsigned long long h = 0;
	char hx[2 * CM_HASH_BYTES + 1], rx[2 * CM_HASH_BYTES + 1];
	int k = fscanf(fp, "%llu %64s %64s", &h, hx, rx);
	fclose(fp);
	if (k != 3 || cm_unhex(hash, CM_HASH_BYTES, hx) != CM_OK || cm_unhex(root, CM_HASH_BYTES, rx) != CM_OK)
		return fail(err, errlen, CM_ERR_INVALID, "%s: expected \"<height> <hex hash> <hex state root>\"", path);
	*height = h;
	return CM_OK;
}

/* Replaces the follow point: a temporary file, fsync, rename. */
static int save_point(ix_chain *c, const struct pending *p)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], hx[2 * CM_HASH_BYTES + 1], rx[2 * CM_HASH_BYTES + 1];
	snprintf(path, sizeof(path), "%s/%s", c->data_dir, IX_CHAIN_STATE_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cm_hex(hx, p->hash, CM_HASH_BYTES);
	cm_hex(rx, p->root, CM_HASH_BYTES);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return CM_ERR_IO;
	char buf[200];
	int n = snprintf(buf, sizeof(buf), "%llu %s %s\n", (unsigned long long)p->height, hx, rx);
	int ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return CM_ERR_IO;
	}
	return CM_OK;
}

/* The fragment schema of a Magu from a ledger snapshot at or above height.
 * The caller frees *info (protobuf_c_message_free_unpacked). */
static int read_magu(ix_chain *c, const char *magu, uint64_t height, Muri__V1__MaguInfo **info)
{
	Muri__V1__MaguRequest req = MURI__V1__MAGU_REQUEST__INIT;
	req.name = (char *)magu;
	int rc = CM_ERR_UNAVAILABLE;
	for (int i = 0; i < MAGU_READ_TRIES; i++) {
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		rc = cm_ledger_client_call(c->lc, "/muri.v1.Ledger/GetMagu", &req.base, &muri__v1__magu_info__descriptor,
					   &resp, &st);
		if (rc == CM_OK) {
			Muri__V1__MaguInfo *m = (Muri__V1__MaguInfo *)resp;
			if (m->at && m->at->height >= height) {
				*info = m;
				return CM_OK;
			}
			/* this replica has not applied the block yet */
			protobuf_c_message_free_unpacked(resp, NULL);
			rc = CM_ERR_STATE;
		} else {
			cm_warn("chain_magu", "magu=%s height=%llu code=%s message=\"%s\"", magu,
				(unsigned long long)height, cm_rpc_code_name(st.code), st.message);
		}
		cm_sleep_ms((uint64_t)100);
	}
	return rc;
}

static int lists_me(const ix_chain *c, const Muri__V1__FragmentConfig *cfg)
{
	for (size_t i = 0; i < cfg->n_replicas; i++)
		if (cfg->replicas[i] && cfg->replicas[i]->pubkey.len == CM_PK_BYTES &&
		    memcmp(cfg->replicas[i]->pubkey.data, c->o.key->pk, CM_PK_BYTES) == 0)
			return 1;
	return 0;
}

static void apply_config(ix_chain *c, uint64_t height, const Muri__V1__FragmentConfig *cfg)
{
	if (!cfg || !cfg->magu)
		return;
	ixp_note_child(c->o.svc, cfg); /* a half's replicas may fetch the parent held here */
	int held = ixs_find_frag(c->o.svc, cfg->magu, cfg->fragment) != NULL;
	if (!held && !lists_me(c, cfg))
		return;
	Muri__V1__MaguInfo *m = NULL;
	Muri__V1__FragmentSchema schema = MURI__V1__FRAGMENT_SCHEMA__INIT, *sp = NULL;
	struct frag *f = ixs_find_frag(c->o.svc, cfg->magu, cfg->fragment);
	if (!f || !ixs_store_of(f)) {
		int rc = read_magu(c, cfg->magu, height, &m);
		if (rc == CM_OK) {
			schema.dimension = m->dimension;
			schema.metric = m->metric;
			schema.index = m->index;
			sp = &schema;
		} else {
			cm_warn("chain_magu", "magu=%s height=%llu error=\"%s\" the store opens with the first write",
				cfg->magu, (unsigned long long)height, cm_strerror(rc));
		}
	}
	char err[IX_ERR_MAX] = "";
	int changed = 0;
	int rc = ixr_apply_config(c->o.svc, cfg, sp, &changed, err, sizeof(err));
	if (rc != CM_OK)
		cm_warn("chain_config", "height=%llu magu=%s fragment=%u epoch=%llu error=\"%s\"",
			(unsigned long long)height, cfg->magu, cfg->fragment, (unsigned long long)cfg->epoch, err);
	else if (cfg->source && lists_me(c, cfg))
		ixc_derive(c->o.svc, ixs_find_frag(c->o.svc, cfg->magu, cfg->fragment), NULL);
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void apply_root(ix_chain *c, uint64_t height, const Muri__V1__SignedRoot *r)
{
	if (!r || !r->magu || r->root.len != CM_HASH_BYTES)
		return;
	struct frag *f = ixs_find_frag(c->o.svc, r->magu, r->fragment);
	if (!f)
		return;
	ixr_core_enter(f);
	int rc = f->core ? ix_repl_on_commit_root(f->core, r->size, r->root.data) : CM_ERR_STATE;
	ixr_core_leave(f);
	if (rc != CM_OK)
		cm_warn("chain_root", "height=%llu magu=%s fragment=%u size=%llu error=\"%s\"", (unsigned long long)height,
			r->magu, r->fragment, (unsigned long long)r->size, cm_strerror(rc));
}

/* Hands a challenge addressed to this node to the answerer; answers it
 * here when the answerer is not running or is CHALLENGE_QUEUE behind (a
 * challenge is never dropped: an unanswered one costs the node its stake). */
static void queue_challenge(ix_chain *c, const Muri__V1__Challenge *ch)
{
	if (!ch || ch->indexer.len != CM_PK_BYTES || memcmp(ch->indexer.data, c->o.key->pk, CM_PK_BYTES) != 0)
		return;
	Muri__V1__Challenge *x = NULL;
	pthread_mutex_lock(&c->fmu);
	if (c->athread && c->naq < CHALLENGE_QUEUE && (x = (Muri__V1__Challenge *)cm_pb_dup(&ch->base)) != NULL) {
		c->aq[c->naq++] = x;
		pthread_cond_signal(&c->acv);
	}
	pthread_mutex_unlock(&c->fmu);
	if (!x)
		ixc_answer_challenge(c->o.svc, c->lc, ch);
}

static void apply(ix_chain *c, const struct pending *p)
{
	const Muri__V1__BlockEffects *e = p->eff;
	for (size_t i = 0; e && i < e->n_configs; i++)
		apply_config(c, p->height, e->configs[i]);
	for (size_t i = 0; e && i < e->n_roots; i++)
		apply_root(c, p->height, e->roots[i]);
	for (size_t i = 0; e && i < e->n_challenges; i++)
		queue_challenge(c, e->challenges[i]);
	if (save_point(c, p) != CM_OK)
		cm_warn("chain_state", "height=%llu error=\"cannot write %s/%s\"", (unsigned long long)p->height,
			c->data_dir, IX_CHAIN_STATE_FILE);
	atomic_store(&c->applied, p->height);
}

/* On the follower's thread: queue the block, then apply every queued block
 * the chain vouches for. Blocks above verified_through wait here for a later
 * block's pin (the ledger makes an empty block at least every
 * empty_block_ms, so they do not wait forever). */
static int on_block(void *arg, const Muri__V1__Block *b)
{
	ix_chain *c = arg;
	if (!b->header || !b->effects || b->effects->state_root.len != CM_HASH_BYTES || b->hash.len != CM_HASH_BYTES)
		return 0; /* the follower verifies effects; a ledger without them configures nothing */
	if (c->nq == c->qmax) {
		cm_error("chain_queue", "height=%llu queued=%zu error=\"no pin vouched for the queued blocks; "
			 "stopping the follower (raise chain_queue_max)\"", (unsigned long long)b->header->height, c->nq);
		return 1;
	}
	struct pending *p = &c->q[c->nq];
	p->eff = (Muri__V1__BlockEffects *)cm_pb_dup(&b->effects->base);
	if (!p->eff)
		return 1;
	p->height = b->header->height;
	memcpy(p->hash, b->hash.data, CM_HASH_BYTES);
	memcpy(p->root, b->effects->state_root.data, CM_HASH_BYTES);
	c->nq++;
	cm_follower *f = atomic_load(&c->f);
	uint64_t vt = f ? cm_follower_verified_through(f) : 0;
	size_t done = 0;
	while (done < c->nq && c->q[done].height <= vt) {
		apply(c, &c->q[done]);
		muri__v1__block_effects__free_unpacked(c->q[done].eff, NULL);
		done++;
	}
	if (done) {
		memmove(c->q, c->q + done, (c->nq - done) * sizeof(*c->q));
		c->nq -= done;
	}
	return 0;
}

/* The failover sink (ix_service_set_failover_sink): queues without blocking;
 * a newer request for the same fragment replaces the queued one. */
static void on_failover(void *arg, const char *magu, uint32_t fragment, const ix_failover_report *r)
{
	ix_chain *c = arg;
	pthread_mutex_lock(&c->fmu);
	size_t i = 0;
	while (i < c->nfq && !(c->fq[i].fragment == fragment && strcmp(c->fq[i].magu, magu) == 0 &&
			       c->fq[i].r.has_drop == r->has_drop &&
			       (!r->has_drop || memcmp(c->fq[i].r.drop, r->drop, CM_PK_BYTES) == 0)))
		i++;
	if (i == c->nfq && c->nfq == FAILOVER_QUEUE) {
		c->failovers_dropped++;
	} else {
		if (i == c->nfq)
			c->nfq++;
		snprintf(c->fq[i].magu, sizeof(c->fq[i].magu), "%s", magu);
		c->fq[i].fragment = fragment;
		c->fq[i].r = *r;
		pthread_cond_signal(&c->fcv);
	}
	pthread_mutex_unlock(&c->fmu);
}

/* Submits queued failover requests as FailoverRequest transactions, without
 * waiting for the commit (the new epoch arrives through the feed). */
static void *submitter_main(void *arg)
{
	ix_chain *c = arg;
	uint64_t period = c->o.root_interval_ms > 0 ? (uint64_t)c->o.root_interval_ms : 1000;
	uint64_t next_roots = cm_now_ms() + period;
	pthread_mutex_lock(&c->fmu);
	for (;;) {
		for (uint64_t now = cm_now_ms(); !c->fstop && c->nfq == 0 && now < next_roots; now = cm_now_ms())
			cm_cond_wait_ms(&c->fcv, &c->fmu, next_roots - now);
		if (c->fstop)
			break;
		if (cm_now_ms() >= next_roots) {
			pthread_mutex_unlock(&c->fmu);
			if (c->o.root_every)
				ixc_commit_roots(c->o.svc, c->lc, c->chain_id);
			next_roots = cm_now_ms() + period;
			pthread_mutex_lock(&c->fmu);
			continue;
		}
		struct failover x = c->fq[0];
		memmove(c->fq, c->fq + 1, (c->nfq - 1) * sizeof(*c->fq));
		c->nfq--;
		pthread_mutex_unlock(&c->fmu);
		Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
		Muri__V1__FailoverRequest fr = MURI__V1__FAILOVER_REQUEST__INIT;
		fr.magu = x.magu;
		fr.fragment = x.fragment;
		fr.epoch = x.r.epoch;
		fr.log_size = x.r.size;
		fr.root.data = x.r.root;
		fr.root.len = CM_HASH_BYTES;
		fr.last_epoch = x.r.last_epoch;
		if (x.r.has_drop) {
			fr.drop.data = x.r.drop;
			fr.drop.len = CM_PK_BYTES;
		}
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_FAILOVER;
		t.failover = &fr;
		cm_ledger_result res;
		char err[CM_LC_MSG_MAX + 128] = "";
		int rc = cm_ledger_client_submit(c->lc, &t, 0, &res, err, sizeof(err));
		if (rc == CM_OK)
			cm_info("failover_submitted", "magu=%s fragment=%u epoch=%llu size=%llu last_epoch=%llu drop=%d nonce=%llu",
				x.magu, x.fragment, (unsigned long long)x.r.epoch, (unsigned long long)x.r.size,
				(unsigned long long)x.r.last_epoch, x.r.has_drop, (unsigned long long)res.nonce);
		else
			cm_warn("failover_refused", "magu=%s fragment=%u epoch=%llu error=\"%s\"", x.magu, x.fragment,
				(unsigned long long)x.r.epoch, err);
		pthread_mutex_lock(&c->fmu);
		if (rc == CM_OK)
			c->failovers_sent++;
		else
			c->failovers_refused++;
	}
	pthread_mutex_unlock(&c->fmu);
	return NULL;
}

/* Answers queued challenges in their order. */
static void *answerer_main(void *arg)
{
	ix_chain *c = arg;
	pthread_mutex_lock(&c->fmu);
	for (;;) {
		while (!c->fstop && c->naq == 0)
			cm_cond_wait_ms(&c->acv, &c->fmu, 1000);
		if (c->fstop)
			break;
		Muri__V1__Challenge *ch = c->aq[0];
		memmove(c->aq, c->aq + 1, (c->naq - 1) * sizeof(*c->aq));
		c->naq--;
		pthread_mutex_unlock(&c->fmu);
		ixc_answer_challenge(c->o.svc, c->lc, ch);
		muri__v1__challenge__free_unpacked(ch, NULL);
		pthread_mutex_lock(&c->fmu);
	}
	pthread_mutex_unlock(&c->fmu);
	return NULL;
}

int ix_chain_start(const ix_chain_opts *o, ix_chain **out, char *err, size_t errlen)
{
	if (!o || !out || !o->genesis_file || !o->data_dir || !o->key || !o->svc)
		return fail(err, errlen, CM_ERR_INVALID, "genesis: missing options");
	*out = NULL;
	ix_chain *c = calloc(1, sizeof(*c));
	if (!c)
		return fail(err, errlen, CM_ERR_NOMEM, "out of memory");
	c->o = *o;
	pthread_mutex_init(&c->fmu, NULL);
	cm_cond_init(&c->fcv);
	cm_cond_init(&c->acv);
	c->qmax = o->queue_max ? o->queue_max : IX_CHAIN_QUEUE_DEFAULT;
	c->data_dir = strdup(o->data_dir);
	c->q = calloc(c->qmax, sizeof(*c->q));
	if (!c->data_dir || !c->q) {
		ix_chain_free(c);
		return fail(err, errlen, CM_ERR_NOMEM, "out of memory");
	}
	int rc = read_genesis(c, o->genesis_file, err, errlen);
	if (rc != CM_OK) {
		ix_chain_free(c);
		return rc;
	}
	cm_ledger_client_opts lo = {.chain_id = c->chain_id, .n = c->n, .addrs = c->addrp, .key = o->key,
				    .fee = o->fee, .tls_ca_file = o->tls_ca_file,
				    .pks = (const uint8_t(*)[CM_PK_BYTES])c->pks};
	rc = cm_ledger_client_new(&lo, &c->lc, err, errlen);
	if (rc != CM_OK) {
		ix_chain_free(c);
		return rc;
	}
	uint64_t height = 0;
	uint8_t hash[CM_HASH_BYTES], root[CM_HASH_BYTES];
	rc = load_point(c, &height, hash, root, err, errlen);
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND) {
		ix_chain_free(c);
		return rc;
	}
	int have = rc == CM_OK;
	atomic_store(&c->applied, height);
	cm_follower_opts fo = {
		.genesis = {.chain_id = c->chain_id, .n = c->n, .pks = (const uint8_t(*)[CM_PK_BYTES])c->pks,
			    .addrs = c->addrp},
		.start_height = have ? height : 0,
		.start_hash = have && height ? hash : NULL,
		.start_root = have && height ? root : NULL,
		.on_block = on_block,
		.arg = c,
		.stall_ms = o->stall_ms,
		.tls_ca_file = o->tls_ca_file,
	};
	/* before the follower's first block, which may hold a challenge */
	if (pthread_create(&c->answerer, NULL, answerer_main, c) != 0) {
		ix_chain_free(c);
		return fail(err, errlen, CM_ERR_NOMEM, "cannot start the challenge answerer");
	}
	pthread_mutex_lock(&c->fmu);
	c->athread = 1;
	pthread_mutex_unlock(&c->fmu);
	cm_follower *f = NULL;
	rc = cm_follower_start(&fo, &f, err, errlen);
	if (rc != CM_OK) {
		ix_chain_free(c);
		return rc;
	}
	atomic_store(&c->f, f);
	if (pthread_create(&c->submitter, NULL, submitter_main, c) != 0) {
		ix_chain_free(c);
		return fail(err, errlen, CM_ERR_NOMEM, "cannot start the failover submitter");
	}
	c->fthread = 1;
	ix_service_set_failover_sink(o->svc, on_failover, c);
	ixs_set_chain_id(o->svc, c->chain_id);
	cm_info("chain", "chain_id=%s replicas=%u from_height=%llu", c->chain_id, c->n, (unsigned long long)height);
	*out = c;
	return CM_OK;
}

void ix_chain_free(ix_chain *c)
{
	if (!c)
		return;
	if (c->fthread)
		ix_service_set_failover_sink(c->o.svc, NULL, NULL);
	/* the follower first: its thread queues challenges */
	cm_follower *f = atomic_load(&c->f);
	if (f)
		cm_follower_free(f);
	pthread_mutex_lock(&c->fmu);
	c->fstop = 1;
	pthread_cond_signal(&c->fcv);
	pthread_cond_signal(&c->acv);
	pthread_mutex_unlock(&c->fmu);
	if (c->fthread)
		pthread_join(c->submitter, NULL);
	if (c->athread)
		pthread_join(c->answerer, NULL);
	for (size_t i = 0; i < c->naq; i++) /* not answered: the node stops */
		muri__v1__challenge__free_unpacked(c->aq[i], NULL);
	for (size_t i = 0; c->q && i < c->nq; i++)
		muri__v1__block_effects__free_unpacked(c->q[i].eff, NULL);
	free(c->q);
	cm_ledger_client_free(c->lc);
	free(c->data_dir);
	pthread_mutex_destroy(&c->fmu);
	pthread_cond_destroy(&c->fcv);
	pthread_cond_destroy(&c->acv);
	free(c);
}

cm_ledger_client *ix_chain_client(ix_chain *c)
{
	return c ? c->lc : NULL;
}

uint64_t ix_chain_applied(ix_chain *c)
{
	return c ? atomic_load(&c->applied) : 0;
}
