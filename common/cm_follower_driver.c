/* The follower's driver (see cm_follower.h): one thread reads FollowBlocks
 * from one genesis replica at a time, feeds the verification core, hands
 * final blocks to the caller, and moves round-robin to the next replica
 * when the current one ends its stream, fails, stalls, or serves something
 * the core refuses (then it is skipped for refuse_ms). */
#include "cm_follower.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_rpc.h"
#include "cm_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 100 /* longest wait before the stop flag is looked at */

struct cm_follower {
	cm_follower_opts o;
	uint8_t (*pks)[CM_PK_BYTES];
	char **addrs;
	cm_fcore core;
	cm_rpc_client **clients;
	uint64_t *refused_until;   /* per replica, cm_now_ms() */
	pthread_t thread;
	int started;
	atomic_int stop;
	pthread_mutex_t mu;        /* guards cur, st, done */
	pthread_cond_t cv;
	cm_rpc_stream *cur;
	cm_follower_stats st;
	int done;
};

static void sleep_ms(cm_follower *f, uint64_t ms)
{
	pthread_mutex_lock(&f->mu);
	uint64_t end = cm_now_ms() + ms;
	while (!atomic_load(&f->stop)) {
		uint64_t now = cm_now_ms();
		if (now >= end)
			break;
		cm_cond_wait_ms(&f->cv, &f->mu, end - now);
	}
	pthread_mutex_unlock(&f->mu);
}

/* The next replica after r that is not being refused, or -1. */
static int pick(cm_follower *f, int r)
{
	uint64_t now = cm_now_ms();
	uint32_t n = f->o.genesis.n;
	for (uint32_t k = 1; k <= n; k++) {
		int c = (int)((uint32_t)(r + (int)k) % n);
		if (f->refused_until[c] <= now)
			return c;
	}
	return -1;
}

static void refuse_replica(cm_follower *f, int r, const char *why)
{
	f->refused_until[r] = cm_now_ms() + (uint64_t)f->o.refuse_ms;
	cm_warn("follower_refused", "replica=%d target=%s height=%llu reason=\"%s\"", r, f->addrs[r],
		(unsigned long long)cm_fcore_next_height(&f->core), why);
	pthread_mutex_lock(&f->mu);
	f->st.refusals++;
	snprintf(f->st.last_refusal, sizeof(f->st.last_refusal), "replica %d (%s): %s", r, f->addrs[r], why);
	pthread_mutex_unlock(&f->mu);
}

static int deliver(cm_follower *f)
{
	Muri__V1__Block *b;
	while (cm_fcore_pop(&f->core, &b) == 1) {
		pthread_mutex_lock(&f->mu);
		f->st.height = f->core.final_height;
		memcpy(f->st.hash, f->core.final_hash, CM_HASH_BYTES);
		if (f->core.final_root_known)
			memcpy(f->st.root, f->core.final_root, CM_HASH_BYTES);
		else
			memset(f->st.root, 0, CM_HASH_BYTES);
		f->st.verified_through = cm_fcore_verified_through(&f->core);
		pthread_mutex_unlock(&f->mu);
		int stop = f->o.on_block(f->o.arg, b);
		protobuf_c_message_free_unpacked(&b->base, NULL);
		pthread_mutex_lock(&f->mu);
		f->st.blocks++;
		pthread_mutex_unlock(&f->mu);
		if (stop)
			return 1;
	}
	return 0;
}

enum { END_SWITCH, END_REFUSED, END_STOP, END_FATAL };

/* Follows replica r until it must be left; returns why, and whether it made progress. */
static int follow_one(cm_follower *f, int r, int *progress)
{
	*progress = 0;
	if (!f->clients[r]) {
		char err[256];
		cm_rpc_client_opts co = {.target = f->addrs[r], .max_message = f->o.max_message,
					 .tls_ca_file = f->o.tls_ca_file,
					 /* blocks are taken only from the genesis replica's own certificate */
					 .tls_expect_node = f->o.genesis.pks[r]};
		if (cm_rpc_client_new(&co, &f->clients[r], err, sizeof(err)) != CM_OK) {
			cm_warn("follower_connect", "replica=%d target=%s error=\"%s\"", r, f->addrs[r], err);
			return END_SWITCH;
		}
	}
	Muri__V1__FollowRequest req = MURI__V1__FOLLOW_REQUEST__INIT;
	req.from_height = cm_fcore_next_height(&f->core);
	cm_rpc_stream *s = NULL;
	cm_rpc_status st;
	if (cm_rpc_stream_open(f->clients[r], "/muri.v1.Ledger/FollowBlocks", &req.base,
			       &muri__v1__block__descriptor, 0, &s, &st) != CM_OK) {
		cm_warn("follower_stream", "replica=%d target=%s status=%s message=\"%s\"", r, f->addrs[r],
			cm_rpc_code_name(st.code), st.message);
		return END_SWITCH;
	}
	pthread_mutex_lock(&f->mu);
	f->cur = s;
	f->st.replica = r;
	pthread_mutex_unlock(&f->mu);
	cm_info("follower_following", "replica=%d target=%s from=%llu", r, f->addrs[r],
		(unsigned long long)req.from_height);
	uint64_t last = cm_now_ms();
	int end = END_SWITCH;
	while (!atomic_load(&f->stop)) {
		ProtobufCMessage *m = NULL;
		int rc = cm_rpc_stream_next(s, &m, POLL_MS, &st);
		if (rc == 0) {
			if (cm_now_ms() - last >= (uint64_t)f->o.stall_ms) {
				cm_warn("follower_stalled", "replica=%d target=%s ms=%d", r, f->addrs[r], f->o.stall_ms);
				break;
			}
			continue;
		}
		if (rc < 0) {
			if (!atomic_load(&f->stop))
				cm_warn("follower_stream_end", "replica=%d target=%s status=%s message=\"%s\"", r,
					f->addrs[r], cm_rpc_code_name(st.code), st.message);
			break;
		}
		int reason = 0;
		rc = cm_fcore_add(&f->core, (Muri__V1__Block *)m, (uint32_t)r, &reason);
		if (rc != CM_OK) {
			protobuf_c_message_free_unpacked(m, NULL);
			if (reason == CM_FV_PENDING_FULL) {
				/* not the replica's fault: the chain has a longer run of
				 * blocks without a three-chain than max_pending holds;
				 * start again from the last final block (with backoff) */
				cm_error("follower_pending_full", "replica=%d max_pending=%zu reason=\"%s\"", r,
					 f->core.max_pending, f->core.why);
				end = END_SWITCH;
				break;
			}
			if (reason == CM_FV_STATE_ROOT && f->core.blame == CM_FCORE_SOURCE_START) {
				/* the caller's start_root is not the chain's */
				cm_error("follower_false_start", "reason=\"%s\"", f->core.why);
				pthread_mutex_lock(&f->mu);
				snprintf(f->st.last_refusal, sizeof(f->st.last_refusal), "start_root: %.490s", f->core.why);
				pthread_mutex_unlock(&f->mu);
				end = END_FATAL;
				break;
			}
			if (reason == CM_FV_STATE_ROOT) {
				int liar = (int)f->core.blame;
				refuse_replica(f, liar, f->core.why);
				if (f->core.blame_delivered) {
					/* effects already handed out were false: the caller must know */
					cm_error("follower_false_effects", "replica=%d reason=\"%s\"", liar, f->core.why);
					end = END_FATAL;
					break;
				}
				end = liar == r ? END_REFUSED : END_SWITCH;
			} else {
				refuse_replica(f, r, f->core.why);
				end = END_REFUSED;
			}
			break;
		}
		last = cm_now_ms();
		*progress = 1;
		pthread_mutex_lock(&f->mu);
		f->st.verified_through = cm_fcore_verified_through(&f->core);
		pthread_mutex_unlock(&f->mu);
		if (deliver(f)) {
			end = END_STOP;
			break;
		}
	}
	if (atomic_load(&f->stop))
		end = END_STOP;
	pthread_mutex_lock(&f->mu);
	f->cur = NULL;
	pthread_mutex_unlock(&f->mu);
	cm_rpc_stream_close(s);
	return end;
}

static void *run(void *arg)
{
	cm_follower *f = arg;
	int r = -1, delay = f->o.retry_min_ms, error = CM_OK;
	while (!atomic_load(&f->stop)) {
		int next = pick(f, r < 0 ? (int)f->o.genesis.n - 1 : r);
		if (next < 0) { /* every replica is refused for now */
			sleep_ms(f, (uint64_t)delay);
			delay = delay * 2 > f->o.retry_max_ms ? f->o.retry_max_ms : delay * 2;
			continue;
		}
		if (r >= 0 && next != r) {
			pthread_mutex_lock(&f->mu);
			f->st.switches++;
			pthread_mutex_unlock(&f->mu);
		}
		r = next;
		/* blocks not yet final may be a replica's certified fork: fetch them again */
		cm_fcore_rollback(&f->core);
		int progress = 0;
		int end = follow_one(f, r, &progress);
		if (end == END_STOP)
			break;
		if (end == END_FATAL) {
			error = CM_ERR_VERIFY;
			break;
		}
		if (progress) {
			delay = f->o.retry_min_ms;
		} else if (end == END_SWITCH) {
			sleep_ms(f, (uint64_t)delay);
			delay = delay * 2 > f->o.retry_max_ms ? f->o.retry_max_ms : delay * 2;
		}
	}
	pthread_mutex_lock(&f->mu);
	f->st.running = 0;
	f->st.replica = -1;
	f->st.error = error;
	f->done = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static void destroy(cm_follower *f)
{
	if (!f)
		return;
	cm_fcore_clear(&f->core);
	for (uint32_t i = 0; f->clients && i < f->o.genesis.n; i++)
		cm_rpc_client_free(f->clients[i]);
	for (uint32_t i = 0; f->addrs && i < f->o.genesis.n; i++)
		free(f->addrs[i]);
	free(f->clients);
	free(f->addrs);
	free(f->pks);
	free(f->refused_until);
	free((char *)f->o.genesis.chain_id);
	free((char *)f->o.tls_ca_file);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

int cm_follower_start(const cm_follower_opts *o, cm_follower **out, char *err, size_t errlen)
{
	const cm_follower_genesis *g = &o->genesis;
	if (!g->chain_id || !g->pks || !g->addrs || g->n == 0 || g->n > CM_CHAIN_MAX_REPLICAS || !o->on_block) {
		snprintf(err, errlen, "genesis (chain_id, n, pks, addrs) and on_block are required");
		return CM_ERR_INVALID;
	}
	cm_follower *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return CM_ERR_NOMEM;
	}
	f->o = *o;
	pthread_mutex_init(&f->mu, NULL);
	cm_cond_init(&f->cv);
	uint32_t n = g->n;
	f->o.genesis.chain_id = strdup(g->chain_id);
	f->o.tls_ca_file = o->tls_ca_file ? strdup(o->tls_ca_file) : NULL;
	f->pks = malloc((size_t)n * CM_PK_BYTES);
	f->addrs = calloc(n, sizeof(*f->addrs));
	f->clients = calloc(n, sizeof(*f->clients));
	f->refused_until = calloc(n, sizeof(*f->refused_until));
	int rc = f->o.genesis.chain_id && f->pks && f->addrs && f->clients && f->refused_until &&
			 (!o->tls_ca_file || f->o.tls_ca_file) ? CM_OK : CM_ERR_NOMEM;
	for (uint32_t i = 0; rc == CM_OK && i < n; i++) {
		if (!g->addrs[i] || !*g->addrs[i]) {
			snprintf(err, errlen, "genesis.addrs[%u]: empty", i);
			rc = CM_ERR_INVALID;
		} else if (!(f->addrs[i] = strdup(g->addrs[i]))) {
			rc = CM_ERR_NOMEM;
		}
	}
	if (rc == CM_OK) {
		memcpy(f->pks, g->pks, (size_t)n * CM_PK_BYTES);
		f->o.genesis.pks = (const uint8_t(*)[CM_PK_BYTES])f->pks;
		f->o.genesis.addrs = (const char *const *)f->addrs;
		f->o.stall_ms = o->stall_ms > 0 ? o->stall_ms : 10000;
		f->o.refuse_ms = o->refuse_ms > 0 ? o->refuse_ms : 60000;
		f->o.retry_min_ms = o->retry_min_ms > 0 ? o->retry_min_ms : 100;
		f->o.retry_max_ms = o->retry_max_ms > 0 ? o->retry_max_ms : 5000;
		if (f->o.retry_max_ms < f->o.retry_min_ms)
			f->o.retry_max_ms = f->o.retry_min_ms;
		cm_fcore_opts co = {.genesis = &f->o.genesis, .height = o->start_height, .hash = o->start_hash,
				    .root = o->start_root, .max_pending = o->max_pending, .max_claims = o->max_claims,
				    .effects_optional = o->effects_optional};
		rc = cm_fcore_init(&f->core, &co);
		if (rc == CM_ERR_INVALID)
			snprintf(err, errlen, "start_hash and start_root: required with a start_height above 0");
	}
	if (rc == CM_OK) {
		f->st.height = o->start_height;
		memcpy(f->st.hash, f->core.final_hash, CM_HASH_BYTES);
		if (f->core.final_root_known)
			memcpy(f->st.root, f->core.final_root, CM_HASH_BYTES);
		f->st.running = 1;
		f->st.replica = -1;
		if (pthread_create(&f->thread, NULL, run, f) != 0) {
			snprintf(err, errlen, "cannot start the follower thread");
			rc = CM_ERR_INTERNAL;
		} else {
			f->started = 1;
		}
	} else if (rc == CM_ERR_NOMEM) {
		snprintf(err, errlen, "out of memory");
	}
	if (rc != CM_OK) {
		destroy(f);
		return rc;
	}
	*out = f;
	return CM_OK;
}

void cm_follower_stop(cm_follower *f)
{
	atomic_store(&f->stop, 1);
	pthread_mutex_lock(&f->mu);
	if (f->cur)
		cm_rpc_stream_cancel(f->cur);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

int cm_follower_wait(cm_follower *f, int ms)
{
	pthread_mutex_lock(&f->mu);
	uint64_t end = cm_now_ms() + (uint64_t)(ms < 0 ? 0 : ms);
	while (!f->done) {
		if (ms < 0) {
			pthread_cond_wait(&f->cv, &f->mu);
			continue;
		}
		uint64_t now = cm_now_ms();
		if (now >= end)
			break;
		cm_cond_wait_ms(&f->cv, &f->mu, end - now);
	}
	int done = f->done;
	pthread_mutex_unlock(&f->mu);
	return done;
}

uint64_t cm_follower_verified_through(cm_follower *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t v = f->st.verified_through;
	pthread_mutex_unlock(&f->mu);
	return v;
}

void cm_follower_get_stats(cm_follower *f, cm_follower_stats *out)
{
	pthread_mutex_lock(&f->mu);
	*out = f->st;
	pthread_mutex_unlock(&f->mu);
}

void cm_follower_free(cm_follower *f)
{
	if (!f)
		return;
	if (f->started) {
		cm_follower_stop(f);
		pthread_join(f->thread, NULL);
	}
	destroy(f);
}
