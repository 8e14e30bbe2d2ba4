/* Insert, Upsert, Update and Delete. The whole request is checked first
 * (the indexer's own record rules, ix_record.c, so nothing is refused half
 * way), then its records are grouped by fragment (the split map,
 * gw_split_route) and each group goes to its fragment's primary as one
 * FragmentWriteRequest at the requested level, all fragments in parallel.
 * A record whose fragment seals or whose half is not live yet waits, and a
 * group whose fragment stops taking writes (the indexer's UNAVAILABLE
 * naming the halves, or the chain saying so) is routed again by the map as
 * the chain moves, until the deadline. A group whose primary refuses
 * (another epoch, no lease yet, gone) is sent again, with the same ids and
 * versions, to the primary the chain names next, until the deadline: a
 * record re-sent that way replaces itself at the indexer (one record per
 * id, last version wins), so a retry never duplicates. While a primary
 * holds a write, the chain is watched: a primary that stopped answering
 * (failed over, or its replica set changed) does not keep the write to the
 * deadline; the attempt is cancelled once the fragment's epoch moves. The
 * acknowledged log size of each fragment is remembered for reads that
 * follow. */
#include "gw.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_merkle.h"
#include "cm_time.h"
#include "cm_uuid.h"
#include "ix_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_WAIT_MS 100 /* wait for the chain to move before sending again */
#define RETRY_MIN_MS 10   /* and at least this long */
#define WATCH_MS 100      /* how often a write in flight looks at the chain */

struct wfrag {
	uint32_t fragment;
	size_t n;
	Muri__V1__LogRecord **recs;
	int code;                     /* 0 once acknowledged at the level */
	char msg[1024];
	uint64_t log_size;
	uint8_t root[CM_HASH_BYTES];
	uint32_t nacked;
	char acked[GW_MAX_REPLICAS][GW_ADDR_MAX];
	uint32_t tries;
	size_t *idx;                  /* the records' indexes in the request */
	int reroute;                  /* the fragment stopped taking writes: route its records again */
};

struct wjob {
	gw_ctx *g;
	const gw_coll *m;
	Muri__V1__FragmentSchema *schema;
	int level;
	uint64_t deadline;
	struct wfrag *f;
};

static int retryable(int code)
{
	return code == GRPC_STATUS_FAILED_PRECONDITION || code == GRPC_STATUS_UNAVAILABLE ||
	       code == GRPC_STATUS_NOT_FOUND || code == GRPC_STATUS_DEADLINE_EXCEEDED || code == GRPC_STATUS_ABORTED ||
	       code == GRPC_STATUS_CANCELLED || code == GRPC_STATUS_UNKNOWN;
}

/* What an attempt watches while the primary holds the write: the
 * fragment's configuration on chain. Once it is no longer the one the
 * write was sent under (a new epoch: failover, a replica set changed; a
 * seal; a drop), the primary asked can no longer acknowledge the write, or
 * should not: the attempt is cancelled and write_one's loop routes the
 * records again, with the same ids and versions. */
struct watch {
	gw_ctx *g;
	const gw_coll *m;
	uint32_t fragment;
	uint64_t epoch, ver;
};

static int moved(void *arg, char *why, size_t whylen)
{
	struct watch *w = arg;
	uint64_t ver = gw_chain_version(w->g->chain);
	if (ver == w->ver)
		return 0;
	w->ver = ver;
	gw_frag fr;
	if (gw_chain_frag(w->g->chain, w->m->name, w->m->gen, w->fragment, &fr) == CM_OK && fr.epoch == w->epoch &&
	    gw_split_writable(&fr))
		return 0;
	snprintf(why, whylen, "the fragment's configuration changed while the write waited");
	return 1;
}

static void write_one(void *arg, size_t k)
{
	struct wjob *j = arg;
	struct wfrag *wf = &j->f[k];
	if (wf->code != -1)
		return; /* failed when routed (no fragment owns its ids) */
	wf->code = GRPC_STATUS_DEADLINE_EXCEEDED;
	snprintf(wf->msg, sizeof(wf->msg), "fragment %u: no primary before the deadline", wf->fragment);
	for (;;) {
		uint64_t ver = gw_chain_version(j->g->chain), now = cm_now_ms();
		if (now >= j->deadline) {
			wf->code = GRPC_STATUS_DEADLINE_EXCEEDED;
			return;
		}
		gw_frag fr;
		if (gw_chain_frag(j->g->chain, j->m->name, j->m->gen, wf->fragment, &fr) != CM_OK) {
			wf->code = GRPC_STATUS_NOT_FOUND;
			snprintf(wf->msg, sizeof(wf->msg), "collection: \"%s\" was dropped", j->m->name);
			return;
		}
		if (!gw_split_writable(&fr)) {
			/* sealing or split since it was routed: the caller routes again */
			wf->reroute = 1;
			return;
		}
		cm_rpc_client *cl = fr.primary >= 0 ? gw_clients_get(j->g->clients, fr.rep[fr.primary].addr, fr.rep[fr.primary].pk) : NULL;
		if (!cl) {
			gw_chain_wait(j->g->chain, ver, RETRY_WAIT_MS);
			continue;
		}
		Muri__V1__FragmentWriteRequest req = MURI__V1__FRAGMENT_WRITE_REQUEST__INIT;
		req.magu = (char *)j->m->name;
		req.fragment = wf->fragment;
		req.epoch = fr.epoch;
		req.records = wf->recs;
		req.n_records = wf->n;
		req.consistency_level = j->level;
		req.timeout_ms = (uint32_t)(j->deadline - now);
		req.schema = j->schema;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		wf->tries++;
		if (wf->tries > 1 && j->g->m.retries)
			cm_counter_add(j->g->m.retries, 1);
		struct watch w = {.g = j->g, .m = j->m, .fragment = wf->fragment, .epoch = fr.epoch, .ver = ver};
		int rc = cm_rpc_unary_watch(cl, "/muri.v1.Indexer/Write", &req.base,
					    &muri__v1__fragment_write_response__descriptor, &resp, (int)(j->deadline - now),
					    &st, moved, &w, WATCH_MS);
		if (rc == CM_OK) {
			Muri__V1__FragmentWriteResponse *r = (Muri__V1__FragmentWriteResponse *)resp;
			wf->log_size = r->log_size;
			if (r->root.len == CM_HASH_BYTES)
				memcpy(wf->root, r->root.data, CM_HASH_BYTES);
			for (size_t i = 0; i < r->n_acked_by && wf->nacked < GW_MAX_REPLICAS; i++) {
				const char *a = r->acked_by[i].len == CM_PK_BYTES ? gw_frag_addr(&fr, r->acked_by[i].data) : NULL;
				if (a)
					snprintf(wf->acked[wf->nacked++], GW_ADDR_MAX, "%s", a);
			}
			int got = r->level_achieved;
			protobuf_c_message_free_unpacked(resp, NULL);
			gw_chain_note_acked(j->g->chain, j->m->name, j->m->gen, wf->fragment, wf->log_size);
			if (got >= j->level) {
				wf->code = GRPC_STATUS_OK;
				wf->msg[0] = 0;
			} else {
				wf->code = GRPC_STATUS_UNAVAILABLE;
				snprintf(wf->msg, sizeof(wf->msg), "fragment %u: acknowledged by %u replicas, short of the level",
					 wf->fragment, wf->nacked);
			}
			return;
		}
		wf->code = st.code;
		snprintf(wf->msg, sizeof(wf->msg), "fragment %u at %s (epoch %llu): %s", wf->fragment,
			 fr.rep[fr.primary].addr, (unsigned long long)fr.epoch, st.message);
		if (!retryable(st.code))
			return;
		if (cm_now_ms() + 1 >= j->deadline)
			return;
		/* a new configuration may be on its way; at least a short pause either way */
		gw_chain_wait(j->g->chain, ver, RETRY_WAIT_MS);
		struct timespec ts = {.tv_sec = 0, .tv_nsec = RETRY_MIN_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static int level_of(int pb)
{
	return pb == MURI__V1__CONSISTENCY_LEVEL__CONSISTENCY_UNSPECIFIED ? MURI__V1__CONSISTENCY_LEVEL__QUORUM : pb;
}

static const char *level_name(int level)
{
	return level == MURI__V1__CONSISTENCY_LEVEL__ONE ? "ONE" : level == MURI__V1__CONSISTENCY_LEVEL__ALL ? "ALL" : "QUORUM";
}

/* Routes the records not yet sent (pending) by m's split map into new
 * groups appended to *f (*nf of *cap): *waiting counts those whose fragment
 * seals or whose half is not live (wait_frag: one of them); a record no
 * fragment owns fails at once in a group of its own. CM_ERR_NOMEM. */
static int route_round(cm_rpc_call *call, const gw_coll *m, Muri__V1__LogRecord **recs, const uint8_t (*raw)[16],
		       size_t n, uint8_t *pending, struct wfrag **f, size_t *nf, size_t *cap, size_t *waiting,
		       uint32_t *wait_frag)
{
	uint32_t *dst = calloc(n, sizeof(*dst));
	uint32_t *cnt = calloc(m->nfrag + 1, sizeof(*cnt));
	uint32_t *slot = calloc(m->nfrag + 1, sizeof(*slot));
	int rc = dst && cnt && slot ? CM_OK : CM_ERR_NOMEM;
	*waiting = 0;
	for (size_t i = 0; rc == CM_OK && i < n; i++) {
		if (!pending[i])
			continue;
		uint32_t fr = 0;
		int r = gw_split_route(m, raw[i], &fr);
		if (r == CM_ERR_UNAVAILABLE) {
			dst[i] = UINT32_MAX;
			(*waiting)++;
			*wait_frag = fr;
			continue;
		}
		dst[i] = r == CM_OK ? fr : m->nfrag; /* m->nfrag: no owner */
		cnt[dst[i]]++;
	}
	for (uint32_t k = 0; rc == CM_OK && k <= m->nfrag; k++) {
		if (!cnt[k])
			continue;
		if (*nf == *cap) {
			size_t c2 = *cap ? 2 * *cap : 8;
			struct wfrag *x = realloc(*f, c2 * sizeof(*x));
			if (!x) {
				rc = CM_ERR_NOMEM;
				break;
			}
			*f = x;
			*cap = c2;
		}
		struct wfrag *w = &(*f)[*nf];
		memset(w, 0, sizeof(*w));
		w->fragment = k;
		w->recs = cm_rpc_alloc(call, cnt[k] * sizeof(*w->recs));
		w->idx = cm_rpc_alloc(call, cnt[k] * sizeof(*w->idx));
		if (!w->recs || !w->idx) {
			rc = CM_ERR_NOMEM;
			break;
		}
		if (k == m->nfrag) {
			w->code = GRPC_STATUS_UNAVAILABLE;
			snprintf(w->msg, sizeof(w->msg), "no fragment of \"%s\" owns the ids' cell (its split map has a hole)",
				 m->name);
		}
		slot[k] = (uint32_t)(*nf)++;
	}
	for (size_t i = 0; rc == CM_OK && i < n; i++)
		if (pending[i] && dst[i] != UINT32_MAX) {
			struct wfrag *w = &(*f)[slot[dst[i]]];
			w->idx[w->n] = i;
			w->recs[w->n++] = recs[i];
			pending[i] = 0;
		}
	free(dst);
	free(cnt);
	free(slot);
	return rc;
}

/* The outcome of a write of recs[0..n) (raw ids alongside): sends, then
 * fills out (status, storage nodes, consistency hash, timestamp). Returns
 * the gRPC status for the call. Rounds: route what is pending by the
 * current split map, send those groups in parallel, take back the records
 * of groups whose fragment stopped taking writes, and wait for the chain to
 * move while records wait for a sealing fragment or a half not live yet. */
static int send_groups(gw_ctx *g, cm_rpc_call *call, const gw_coll *m0, Muri__V1__LogRecord **recs,
		       const uint8_t (*raw)[16], size_t n, int level, uint64_t deadline, Muri__V1__WriteResponse *out)
{
	uint64_t t0 = cm_now_ms();
	struct wfrag *f = NULL;
	size_t nf = 0, cap = 0;
	uint8_t *pending = malloc(n ? n : 1);
	gw_coll *fresh = NULL;
	const gw_coll *m = m0;
	Muri__V1__FragmentSchema *schema = gw_schema(call, m0);
	if (!pending || !schema)
		goto nomem;
	memset(pending, 1, n);
	for (;;) {
		uint64_t ver = gw_chain_version(g->chain);
		size_t waiting = 0, first = nf;
		uint32_t wait_frag = 0;
		if (route_round(call, m, recs, raw, n, pending, &f, &nf, &cap, &waiting, &wait_frag) != CM_OK)
			goto nomem;
		size_t sent = 0;
		for (size_t k = first; k < nf; k++)
			sent += f[k].code == 0;
		if (sent) {
			/* the groups of this round: a no-owner group has its code set and is skipped */
			struct wjob j = {.g = g, .m = m, .schema = schema, .level = level, .deadline = deadline,
					 .f = f + first};
			size_t cnt = nf - first;
			for (size_t k = first; k < nf; k++)
				if (f[k].code == 0)
					f[k].code = -1; /* to send */
			if (gw_pool_run(g->pool, cnt, write_one, &j) != CM_OK) {
				if (first == 0) {
					free(pending);
					free(f);
					return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
							   "the gateway has max_fanout calls to indexers queued; nothing was "
							   "written, try again");
				}
				for (size_t k = first; k < nf; k++)
					if (f[k].code == -1) {
						f[k].code = GRPC_STATUS_RESOURCE_EXHAUSTED;
						snprintf(f[k].msg, sizeof(f[k].msg), "fragment %u: max_fanout calls queued",
							 f[k].fragment);
					}
			}
		}
		/* records of a fragment that stopped taking writes go round again */
		for (size_t k = first; k < nf; k++)
			if (f[k].reroute) {
				for (size_t r = 0; r < f[k].n; r++)
					pending[f[k].idx[r]] = 1;
				waiting += f[k].n;
				f[k].n = 0; /* sent again in a later group */
				f[k].code = GRPC_STATUS_OK;
				f[k].nacked = 0;
			}
		if (!waiting)
			break;
		if (cm_now_ms() + 1 >= deadline) {
			/* what still waits fails as one group */
			struct wfrag *x = realloc(f, (nf + 1) * sizeof(*x));
			if (!x)
				goto nomem;
			f = x;
			memset(&f[nf], 0, sizeof(f[nf]));
			f[nf].fragment = wait_frag;
			f[nf].code = GRPC_STATUS_DEADLINE_EXCEEDED;
			snprintf(f[nf].msg, sizeof(f[nf].msg), "%zu records wait for a split of \"%s\" to complete "
				 "(fragment %u seals, or its half is not live yet) past the deadline", waiting, m->name,
				 wait_frag);
			nf++;
			break;
		}
		if (g->m.retries)
			cm_counter_add(g->m.retries, 1);
		gw_chain_wait(g->chain, ver, RETRY_WAIT_MS);
		struct timespec ts = {.tv_sec = 0, .tv_nsec = RETRY_MIN_MS * 1000000L};
		nanosleep(&ts, NULL);
		gw_coll *c2 = NULL;
		if (gw_chain_get(g->chain, m0->name, &c2) != CM_OK || c2->gen != m0->gen) {
			gw_coll_free(c2);
			free(pending);
			free(f);
			gw_coll_free(fresh);
			return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "collection: \"%s\" was dropped", m0->name);
		}
		gw_coll_free(fresh);
		fresh = c2;
		m = fresh;
	}
	/* storage nodes, consistency hash over (fragment, size, root) of each acknowledged fragment */
	char **nodes = cm_rpc_alloc(call, (nf * GW_MAX_REPLICAS + 1) * sizeof(*nodes));
	cm_merkle *ml = NULL;
	if (!nodes || cm_merkle_new(&ml, &cm_merkle_blake2b) != CM_OK)
		goto nomem;
	size_t ok = 0, groups = 0;
	int code = GRPC_STATUS_OK;
	char msg[GW_ERR_MAX] = "";
	for (size_t k = 0; k < nf; k++) {
		struct wfrag *w = &f[k];
		if (w->n == 0 && w->code == GRPC_STATUS_OK && w->reroute)
			continue; /* its records went to a later group */
		groups++;
		if (w->code == GRPC_STATUS_OK) {
			ok++;
			uint8_t leaf[4 + 8 + CM_HASH_BYTES];
			for (int b = 0; b < 4; b++)
				leaf[b] = (uint8_t)(w->fragment >> (24 - 8 * b));
			for (int b = 0; b < 8; b++)
				leaf[4 + b] = (uint8_t)(w->log_size >> (56 - 8 * b));
			memcpy(leaf + 12, w->root, CM_HASH_BYTES);
			cm_merkle_append(ml, leaf, sizeof(leaf));
		} else {
			if (code == GRPC_STATUS_OK || code == GRPC_STATUS_UNAVAILABLE)
				code = w->code == GRPC_STATUS_DEADLINE_EXCEEDED ? GRPC_STATUS_DEADLINE_EXCEEDED
				       : w->code == GRPC_STATUS_INVALID_ARGUMENT || w->code == GRPC_STATUS_NOT_FOUND
					       ? w->code
					       : GRPC_STATUS_UNAVAILABLE;
			size_t l = strlen(msg);
			if (l + 8 < sizeof(msg))
				snprintf(msg + l, sizeof(msg) - l, "%s%s", l ? "; " : "", w->msg);
		}
		for (uint32_t a = 0; a < w->nacked; a++) {
			size_t s = 0;
			while (s < out->n_storage_nodes && strcmp(nodes[s], w->acked[a]) != 0)
				s++;
			if (s == out->n_storage_nodes)
				nodes[out->n_storage_nodes++] = cm_rpc_strdup(call, w->acked[a]);
		}
	}
	out->storage_nodes = nodes;
	if (ok) {
		uint8_t root[CM_HASH_BYTES];
		cm_merkle_root(ml, cm_merkle_size(ml), root);
		out->consistency_hash = gw_hex(call, root, CM_HASH_BYTES);
	}
	cm_merkle_free(ml);
	out->timestamp_ms = cm_wall_ms();
	out->status = ok == groups ? MURI__V1__WRITE_STATUS__SUCCESS
		      : ok ? MURI__V1__WRITE_STATUS__PARTIAL
			   : MURI__V1__WRITE_STATUS__FAILED;
	if (g->m.writes) {
		cm_counter_add(g->m.writes, 1);
		cm_counter_add(g->m.write_records, n);
		cm_histogram_observe(g->m.write_ms, (double)(cm_now_ms() - t0));
		if (ok != groups)
			cm_counter_add(g->m.partial, 1);
	}
	free(pending);
	free(f);
	gw_coll_free(fresh);
	if (code != GRPC_STATUS_OK)
		return cm_rpc_fail(call, code, "%s: %zu of %zu fragments acknowledged at %s: %s",
				   ok ? "PARTIAL" : "FAILED", ok, groups, level_name(level), msg);
	return GRPC_STATUS_OK;
nomem:
	free(pending);
	free(f);
	gw_coll_free(fresh);
	return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

/* W_IMPORT: an Upsert that is one batch of an Import (admitted already:
 * its vectors are paced rather than refused). */
enum wkind { W_INSERT, W_UPSERT, W_UPDATE, W_IMPORT };

static int do_write(gw_ctx *g, cm_rpc_call *call, enum wkind kind, const char *collection, char **ids, size_t n_ids,
		    Muri__V1__Vector **vecs, size_t n, Muri__V1__Metadata **meta, size_t n_meta, int level_in,
		    uint32_t timeout_ms, ProtobufCMessage **resp)
{
	char err[GW_ERR_MAX] = "";
	if (gw_valid_name(collection, "collection", err, sizeof(err)) != CM_OK ||
	    gw_valid_level(level_in, "consistency_level", err, sizeof(err)) != CM_OK ||
	    gw_valid_timeout(timeout_ms, "timeout_ms", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_caller who;
	gw_quota_ask ask = {.vectors = n};
	int ac = kind == W_IMPORT ? gw_authenticate(g, call, NULL, collection, GW_NEED_WRITE, &who)
				  : gw_authorize_ask(g, call, collection, GW_NEED_WRITE, &ask, NULL, &who);
	if (ac == GRPC_STATUS_OK && kind == W_IMPORT)
		ac = gw_quota_pace(g, call, &who, n);
	if (ac != GRPC_STATUS_OK)
		return ac;
	if (n < 1 || n > (size_t)g->cfg->max_batch)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "vectors: %zu, expected 1..%lld", n,
				   (long long)g->cfg->max_batch);
	if (n_meta != 0 && n_meta != n)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "metadata: %zu entries for %zu vectors (none, or one per vector)", n_meta, n);
	if (kind != W_INSERT && n_ids != n)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "ids: %zu ids for %zu vectors (one per vector)",
				   n_ids, n);
	uint8_t(*raw)[16] = cm_rpc_alloc(call, n * 16);
	char **idv = cm_rpc_alloc(call, n * sizeof(*idv));
	Muri__V1__LogRecord **recs = cm_rpc_alloc(call, n * sizeof(*recs));
	Muri__V1__LogRecord *rv = cm_rpc_alloc(call, n * sizeof(*rv));
	if (!raw || !idv || !recs || !rv)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (kind != W_INSERT) {
		if (gw_parse_ids(ids, n, raw, err, sizeof(err)) != CM_OK)
			return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
		for (size_t i = 0; i < n; i++)
			idv[i] = ids[i];
	} else {
		for (size_t i = 0; i < n; i++) {
			cm_uuid u;
			cm_uuid_v4(&u);
			memcpy(raw[i], u.b, 16);
			idv[i] = cm_rpc_alloc(call, CM_UUID_CHARS + 1);
			if (!idv[i])
				return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
			cm_uuid_format(&u, idv[i]);
		}
	}
	gw_coll *m = NULL;
	if ((ac = gw_coll_get(g, call, "collection", collection, &m)) != GRPC_STATUS_OK)
		return ac;
	cm_arena *a = cm_rpc_arena(call);
	int code = GRPC_STATUS_OK;
	for (size_t i = 0; i < n && code == GRPC_STATUS_OK; i++) {
		char field[48];
		snprintf(field, sizeof(field), "vectors[%zu]", i);
		if (gw_valid_vector(vecs[i], m->dim, m->metric, field, err, sizeof(err)) != CM_OK) {
			code = GRPC_STATUS_INVALID_ARGUMENT;
			break;
		}
		if (n_meta && meta[i]) {
			ix_field *fl;
			uint32_t nf;
			char e2[GW_ERR_MAX - 16];
			snprintf(field, sizeof(field), "metadata[%zu]", i);
			if (ix_meta_from_pb(meta[i], a, field, &fl, &nf, e2, sizeof(e2)) != CM_OK) {
				snprintf(err, sizeof(err), "%s", e2);
				code = GRPC_STATUS_INVALID_ARGUMENT;
				break;
			}
		}
	}
	if (code != GRPC_STATUS_OK) {
		gw_coll_free(m);
		return gw_fail(call, code, err);
	}
	uint64_t deadline = gw_deadline(g, call, timeout_ms);
	if (kind == W_UPDATE) {
		Muri__V1__Hit **hits = cm_rpc_alloc(call, n * sizeof(*hits));
		if (!hits) {
			gw_coll_free(m);
			return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		}
		code = gw_read_ids(g, call, m, idv, (const uint8_t(*)[16])raw, n, 0, deadline, hits, err, sizeof(err));
		for (size_t i = 0; code == GRPC_STATUS_OK && i < n; i++)
			if (!hits[i]) {
				code = GRPC_STATUS_NOT_FOUND;
				snprintf(err, sizeof(err), "ids[%zu]: \"%s\" is not in \"%s\" (Update changes existing ids only; "
					 "use Upsert); nothing was written", i, idv[i], m->name);
			}
		if (code != GRPC_STATUS_OK) {
			gw_coll_free(m);
			return gw_fail(call, code, err);
		}
	}
	uint64_t version = gw_next_version(g);
	for (size_t i = 0; i < n; i++) {
		muri__v1__log_record__init(&rv[i]);
		rv[i].op = kind == W_INSERT ? MURI__V1__RECORD_OP__OP_INSERT : MURI__V1__RECORD_OP__OP_UPDATE;
		rv[i].id = idv[i];
		rv[i].version = version;
		rv[i].vector = vecs[i];
		rv[i].metadata = n_meta ? meta[i] : NULL;
		recs[i] = &rv[i];
	}
	Muri__V1__WriteResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r) {
		gw_coll_free(m);
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	}
	muri__v1__write_response__init(r);
	r->vector_ids = idv;
	r->n_vector_ids = n;
	code = send_groups(g, call, m, recs, (const uint8_t(*)[16])raw, n, level_of(level_in), deadline, r);
	gw_coll_free(m);
	if (code == GRPC_STATUS_OK)
		*resp = &r->base;
	return code;
}

int gw_h_insert(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	const Muri__V1__InsertRequest *q = (const Muri__V1__InsertRequest *)msg;
	return do_write(arg, call, W_INSERT, q->collection, NULL, 0, q->vectors, q->n_vectors, q->metadata,
			q->n_metadata, q->consistency_level, q->timeout_ms, resp);
}

int gw_h_upsert(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	const Muri__V1__UpsertRequest *q = (const Muri__V1__UpsertRequest *)msg;
	return do_write(arg, call, W_UPSERT, q->collection, q->ids, q->n_ids, q->vectors, q->n_vectors, q->metadata,
			q->n_metadata, q->consistency_level, q->timeout_ms, resp);
}

int gw_import_upsert(gw_ctx *g, cm_rpc_call *call, const Muri__V1__UpsertRequest *q, ProtobufCMessage **resp)
{
	return do_write(g, call, W_IMPORT, q->collection, q->ids, q->n_ids, q->vectors, q->n_vectors, q->metadata,
			q->n_metadata, q->consistency_level, q->timeout_ms, resp);
}

int gw_h_update(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	const Muri__V1__UpsertRequest *q = (const Muri__V1__UpsertRequest *)msg;
	return do_write(arg, call, W_UPDATE, q->collection, q->ids, q->n_ids, q->vectors, q->n_vectors, q->metadata,
			q->n_metadata, q->consistency_level, q->timeout_ms, resp);
}

int gw_h_delete(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	gw_ctx *g = arg;
	const Muri__V1__DeleteRequest *q = (const Muri__V1__DeleteRequest *)msg;
	char err[GW_ERR_MAX] = "";
	if (gw_valid_name(q->collection, "collection", err, sizeof(err)) != CM_OK ||
	    gw_valid_level(q->consistency_level, "consistency_level", err, sizeof(err)) != CM_OK ||
	    gw_valid_timeout(q->timeout_ms, "timeout_ms", err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_caller who;
	int ac = gw_authorize(g, call, NULL, q->collection, GW_NEED_WRITE, &who);
	if (ac != GRPC_STATUS_OK)
		return ac;
	size_t n = q->n_ids;
	if (n < 1 || n > (size_t)g->cfg->max_batch)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "ids: %zu, expected 1..%lld", n,
				   (long long)g->cfg->max_batch);
	uint8_t(*raw)[16] = cm_rpc_alloc(call, n * 16);
	Muri__V1__Hit **hits = cm_rpc_alloc(call, n * sizeof(*hits));
	Muri__V1__LogRecord **recs = cm_rpc_alloc(call, n * sizeof(*recs));
	Muri__V1__LogRecord *rv = cm_rpc_alloc(call, n * sizeof(*rv));
	uint8_t(*live)[16] = cm_rpc_alloc(call, n * 16);
	if (!raw || !hits || !recs || !rv || !live)
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (gw_parse_ids(q->ids, n, raw, err, sizeof(err)) != CM_OK)
		return gw_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err);
	gw_coll *m = NULL;
	if ((ac = gw_coll_get(g, call, "collection", q->collection, &m)) != GRPC_STATUS_OK)
		return ac;
	uint64_t deadline = gw_deadline(g, call, q->timeout_ms);
	int code = gw_read_ids(g, call, m, q->ids, (const uint8_t(*)[16])raw, n, 0, deadline, hits, err, sizeof(err));
	if (code != GRPC_STATUS_OK) {
		gw_coll_free(m);
		return gw_fail(call, code, err);
	}
	uint64_t version = gw_next_version(g);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!hits[i])
			continue;
		muri__v1__log_record__init(&rv[k]);
		rv[k].op = MURI__V1__RECORD_OP__OP_DELETE;
		rv[k].id = q->ids[i];
		rv[k].version = version;
		memcpy(live[k], raw[i], 16);
		recs[k] = &rv[k];
		k++;
	}
	Muri__V1__DeleteResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__WriteResponse w = MURI__V1__WRITE_RESPONSE__INIT;
	if (!r) {
		gw_coll_free(m);
		return gw_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	}
	muri__v1__delete_response__init(r);
	if (k) {
		code = send_groups(g, call, m, recs, (const uint8_t(*)[16])live, k, level_of(q->consistency_level), deadline,
				   &w);
		r->consistency_hash = w.consistency_hash;
	}
	gw_coll_free(m);
	if (code != GRPC_STATUS_OK)
		return code;
	r->status = MURI__V1__WRITE_STATUS__SUCCESS;
	r->deleted = k;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}
