/* The replication RPCs, thin over the core (ix_replica.c): Write,
 * Replicate, FetchLog and SetConfig decode the request, call the core under
 * the fragment's core lock, and encode its answer; FetchLog answers only a
 * fragment's replicas (ix_read_auth.h). SetConfig is how a
 * configuration arrives when allowed (allow_set_config); the ledger's feed
 * (ix_chain.c) drives the same path, ixr_apply_config. */
#include "ix_service_int.h"
#include "ix_split.h"
#include "cm_cell.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- handlers ------------------------------------------------------------------------- */

int ixr_apply_config(ix_service *s, const Muri__V1__FragmentConfig *cfg, const Muri__V1__FragmentSchema *schema,
		     int *changed_out, char *err, size_t errlen)
{
	const char *why = ixr_check_config(cfg);
	if (why) {
		snprintf(err, errlen, "%s", why);
		return CM_ERR_INVALID;
	}
	struct frag *f = NULL;
	int rc = ixs_get_or_add_frag(s, cfg->magu, cfg->fragment, &f);
	if (rc != CM_OK) {
		snprintf(err, errlen, "%s", rc == CM_ERR_TOOBIG ? "this indexer holds max_fragments already"
							  : "cannot create the fragment folder");
		return rc;
	}
	ix_repl_config c;
	ixr_config_from_pb(cfg, &c);
	Muri__V1__FragmentConfig *copy = (Muri__V1__FragmentConfig *)cm_pb_dup(&cfg->base);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return CM_ERR_NOMEM;
	}
	pthread_mutex_lock(&f->cfg_mu);
	ix_replica_stop(f);
	ixr_core_enter(f);
	if (!f->core)
		rc = ixr_core_new(f, NULL);
	uint64_t before = f->core ? ix_repl_epoch(f->core) : 0;
	if (rc == CM_OK) {
		f->cfg_in = cfg;
		rc = ix_repl_on_config(f->core, &c, err, errlen);
		f->cfg_in = NULL;
	} else {
		snprintf(err, errlen, "cannot start replication: %s", cm_strerror(rc));
	}
	int changed = rc == CM_OK && ix_repl_epoch(f->core) != before;
	/* the same epoch may come again with a new split phase (SPLIT, RETIRED):
	 * keep the latest configuration */
	if (changed || (rc == CM_OK && f->cfg && f->cfg->epoch == cfg->epoch)) {
		if (f->cfg)
			muri__v1__fragment_config__free_unpacked(f->cfg, NULL);
		f->cfg = copy;
		copy = NULL;
		ixp_config(f);
	}
	/* a schema known from the ledger opens the store before any write */
	if (rc == CM_OK && schema && !f->store && ix_repl_is_member(f->core, s->key.pk))
		rc = ixr_ensure_store(f, schema, err, errlen);
	int primary = f->core && ix_repl_is_primary(f->core);
	int member = f->core && ix_repl_is_member(f->core, s->key.pk);
	ixr_core_leave(f);
	ixr_start_senders(f);
	pthread_mutex_unlock(&f->cfg_mu);
	if (copy)
		muri__v1__fragment_config__free_unpacked(copy, NULL);
	if (changed)
		cm_info("config", "magu=%s fragment=%u epoch=%llu replicas=%zu role=%s", cfg->magu, cfg->fragment,
			(unsigned long long)cfg->epoch, cfg->n_replicas,
			primary ? "primary" : member ? "backup" : "none");
	if (changed_out)
		*changed_out = changed;
	return rc;
}

int ix_h_set_config(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__FragmentConfig *cfg = (const Muri__V1__FragmentConfig *)msg;
	if (s->o.deny_set_config)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "SetConfig is disabled: this indexer takes its fragment configurations from the "
				   "ledger (set allow_set_config = 1 to allow it)");
	char err[IX_ERR_MAX] = "";
	int rc = ixr_apply_config(s, cfg, NULL, NULL, err, sizeof(err));
	if (rc != CM_OK)
		return ixs_fail_from(call, rc, err);
	Muri__V1__SetConfigResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__set_config_response__init(r);
	r->epoch = cfg->epoch;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int pb_level(int core_level)
{
	return core_level >= IX_REPL_ALL ? MURI__V1__CONSISTENCY_LEVEL__ALL
	       : core_level == IX_REPL_QUORUM ? MURI__V1__CONSISTENCY_LEVEL__QUORUM
					      : MURI__V1__CONSISTENCY_LEVEL__ONE;
}

static int core_level(int pb)
{
	return pb == MURI__V1__CONSISTENCY_LEVEL__ONE ? IX_REPL_ONE
	       : pb == MURI__V1__CONSISTENCY_LEVEL__ALL ? IX_REPL_ALL
							: IX_REPL_QUORUM;
}

static void unlink_waiter(struct frag *f, struct waiter *w)
{
	for (struct waiter **p = &f->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			return;
		}
}

/* A write without records: the primary of the request's epoch answers its
 * log size, root and live count, and appends nothing. */
static int probe(ix_service *s, cm_rpc_call *call, struct frag *f, const Muri__V1__FragmentWriteRequest *req,
		 ProtobufCMessage **resp)
{
	(void)s;
	Muri__V1__FragmentWriteResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__fragment_write_response__init(r);
	ixr_core_enter(f);
	uint64_t epoch = f->core ? ix_repl_epoch(f->core) : 0;
	if (!f->core || !ix_repl_is_primary(f->core) || req->epoch != epoch) {
		ixr_core_leave(f);
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "epoch: the request has %llu; this indexer is %s of %s/%u in epoch %llu",
				   (unsigned long long)req->epoch,
				   f->core && ix_repl_is_primary(f->core) ? "the primary" : "not the primary", req->magu,
				   req->fragment, (unsigned long long)epoch);
	}
	ix_fragment *st = f->store;
	ixr_core_leave(f);
	if (st) {
		ix_fragment_info info;
		ix_fragment_info_get(st, &info);
		uint8_t root[CM_HASH_BYTES];
		r->log_size = info.size;
		r->live_count = info.live;
		if (ix_fragment_root(st, info.size, root) == CM_OK)
			ixs_set_hash(call, &r->root, root);
	}
	r->level_achieved = MURI__V1__CONSISTENCY_LEVEL__ONE;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int ix_h_write(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__FragmentWriteRequest *req = (const Muri__V1__FragmentWriteRequest *)msg;
	char err[IX_ERR_MAX] = "";
	struct frag *f = ixs_find_frag(s, req->magu, req->fragment);
	int code = ixs_peer_check(s, call, "Write", req->magu, req->fragment, f, 1);
	if (code != GRPC_STATUS_OK)
		return code;
	if (!f)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s/%u is not assigned to this indexer", req->magu,
				   req->fragment);
	if (req->n_records > s->o.frag.max_append)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "records: %zu, expected 0..%u", req->n_records,
				   s->o.frag.max_append);
	if (req->n_records == 0)
		return probe(s, call, f, req, resp);
	cm_arena *a = cm_rpc_arena(call);
	ix_record *recs = cm_arena_alloc(a, req->n_records * sizeof(*recs));
	ix_repl_entry *e = cm_arena_alloc(a, req->n_records * sizeof(*e));
	if (!recs || !e)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	uint64_t t_in = cm_now_us(), t_app = 0;
	uint64_t timeout = req->timeout_ms ? req->timeout_ms : s->o.write_timeout_ms;
	int64_t left = cm_rpc_deadline_left_ms(call);
	if (left >= 0 && (uint64_t)left < timeout)
		timeout = (uint64_t)left;

	pthread_mutex_lock(&f->write_mu);
	ixr_core_enter(f);
	uint64_t epoch = f->core ? ix_repl_epoch(f->core) : 0;
	if (!f->core || !ix_repl_is_primary(f->core)) {
		ixr_core_leave(f);
		pthread_mutex_unlock(&f->write_mu);
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "this indexer is not the primary of %s/%u in epoch %llu", req->magu, req->fragment,
				   (unsigned long long)epoch);
	}
	if (req->epoch != epoch) {
		ixr_core_leave(f);
		pthread_mutex_unlock(&f->write_mu);
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "epoch: the request has %llu, %s/%u is at %llu",
				   (unsigned long long)req->epoch, req->magu, req->fragment, (unsigned long long)epoch);
	}
	if (!ixp_takes_writes(f)) {
		/* a split (services/ledger/lg_st_split.c): a sealing fragment's log
		 * must stay its primary's whole log; a half takes writes only on
		 * its derived records, once the ledger committed their root */
		const Muri__V1__FragmentConfig *c = f->cfg;
		if (c->source)
			snprintf(err, sizeof(err), "%s/%u: a half of fragment %u, which split at size %llu, takes no "
				 "writes before its records are derived from it and their root is committed (%s)",
				 req->magu, req->fragment, c->source->fragment, (unsigned long long)c->source->size,
				 f->derived ? "derived here" : "not derived here yet");
		else
			snprintf(err, sizeof(err), "%s/%u is %s to split into %u and %u: it takes no more writes; "
				 "retry on the half that holds the id once the split is committed", req->magu,
				 req->fragment, c->phase == MURI__V1__FRAGMENT_PHASE__FRAGMENT_PHASE_SEALING ? "sealing" : "frozen",
				 c->n_children > 0 ? c->children[0] : 0, c->n_children > 1 ? c->children[1] : 0);
		ixr_core_leave(f);
		pthread_mutex_unlock(&f->write_mu);
		return cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE, "%s", err);
	}
	int rc = ixr_ensure_store(f, req->schema, err, sizeof(err));
	if (rc != CM_OK) {
		ixr_core_leave(f);
		pthread_mutex_unlock(&f->write_mu);
		return ixs_fail_from(call, rc, err);
	}
	/* Back-pressure: the unindexed tail is searched by brute force, so a
	 * write load that outruns the indexer would slow every search down. */
	uint64_t backlog = s->o.max_index_backlog ? ix_fragment_backlog(f->store) : 0;
	if (s->o.max_index_backlog && backlog >= s->o.max_index_backlog) {
		ixr_core_leave(f);
		pthread_mutex_unlock(&f->write_mu);
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "%s/%u: the index is %llu records behind the log (max_index_backlog %u); "
				   "retry once it catches up", req->magu, req->fragment, (unsigned long long)backlog,
				   s->o.max_index_backlog);
	}
	/* every record is checked before any is appended: bad input writes nothing */
	for (size_t i = 0; rc == CM_OK && i < req->n_records; i++) {
		char e2[IX_ERR_MAX - 32];
		if (ix_record_from_pb(req->records[i], f->spec.dim, a, &recs[i], e2, sizeof(e2)) != CM_OK) {
			snprintf(err, sizeof(err), "records[%zu]: %s", i, e2);
			rc = CM_ERR_INVALID;
		} else if (recs[i].op != IX_OP_DELETE && (recs[i].bin != NULL) != (f->spec.metric == IX_HAMMING)) {
			snprintf(err, sizeof(err), "records[%zu]: %s", i,
				 f->spec.metric == IX_HAMMING
					 ? "vector.binary: missing, the collection holds binary vectors (HAMMING)"
					 : "vector.values: missing, the collection holds float vectors (binary given)");
			rc = CM_ERR_INVALID;
		} else if (f->cfg && f->cfg->cell_depth) { /* a split's half holds only its cell's ids */
			cm_cell c = {f->cfg->cell_base, f->cfg->cell_depth, f->cfg->cell_path};
			if (!cm_cell_contains_h(&c, c.base, cm_cell_hash(recs[i].id))) {
				snprintf(err, sizeof(err), "records[%zu].id: not in the cell of %s/%u (a half of fragment "
					 "%u); write it to the half that holds it", i, req->magu, req->fragment,
					 f->cfg->source ? f->cfg->source->fragment : 0);
				rc = CM_ERR_INVALID;
			}
		}
	}
	/* A large write goes to the log in pieces of repl_batch records, the
	 * core lock released between them: the senders ship each piece as soon
	 * as it is durable here, so the backups append piece i while this node
	 * appends piece i + 1, instead of starting once the whole write is
	 * down. Only the last piece has a waiter: logs are prefixes, so the
	 * level it reaches every earlier piece reached too. A piece refused
	 * after earlier ones were appended fails the call; those records stay
	 * in the log, and a retry of the same ids overwrites them (upserts by
	 * id), so nothing is duplicated. */
	struct waiter w;
	memset(&w, 0, sizeof(w));
	uint64_t first = 0, first0 = 0;
	size_t piece = s->o.repl_batch ? s->o.repl_batch : req->n_records;
	for (size_t at = 0; rc == CM_OK && at < req->n_records; at += piece) {
		size_t n = req->n_records - at < piece ? req->n_records - at : piece;
		int last = at + n == req->n_records;
		if (at > 0) { /* let acks and senders in between pieces */
			ixr_core_leave(f);
			ixr_core_enter(f);
			if (!f->core || !ix_repl_is_primary(f->core) || ix_repl_epoch(f->core) != epoch) {
				snprintf(err, sizeof(err), "epoch: %llu ended after %zu of %zu records were appended; "
					 "send the write again", (unsigned long long)epoch, at, req->n_records);
				rc = CM_ERR_STATE;
				break;
			}
		}
		uint64_t size = ix_fragment_size(f->store);
		for (size_t i = at; rc == CM_OK && i < at + n; i++) {
			recs[i].seq = size + (i - at);
			recs[i].epoch = epoch;
			rc = ixr_entry_bytes(&recs[i], a, &e[i]);
		}
		if (rc != CM_OK)
			break;
		uint64_t token = ++f->next_token;
		if (last) {
			w.token = token;
			w.next = f->waiters;
			f->waiters = &w;
		}
		if (at == 0) {
			f->recent = e;
			f->recent_first = size;
		} else if (f->recent && size != f->recent_first + at) {
			f->recent = NULL; /* the log moved otherwise (cannot on a primary): read it */
		}
		f->recent_end = size + n;
		ixr_write_begin(f, a);
		rc = ix_repl_write(f->core, e + at, (uint32_t)n, core_level(req->consistency_level),
				   cm_now_ms() + timeout, token, &first);
		ixr_write_end(f);
		if (rc != CM_OK) {
			if (last)
				unlink_waiter(f, &w);
			snprintf(err, sizeof(err), "%s%s",
				 rc == CM_ERR_STATE ? "epoch: this primary asked for failover; wait for the next epoch"
				 : rc == CM_ERR_TOOBIG ? "too many writes wait for their level"
						       : "cannot append to the log",
				 at > 0 ? " (part of the records were appended; send the write again)" : "");
		} else if (at == 0) {
			first0 = first;
		}
	}
	f->recent = NULL; /* e lives in this call's arena */
	if (rc != CM_OK) {
		ixr_core_leave(f);
		pthread_mutex_unlock(&f->write_mu);
		return ixs_fail_from(call, rc, err);
	}
	/* appended: the next client write may append while this one waits for its level */
	pthread_mutex_unlock(&f->write_mu);
	t_app = cm_now_us();
	/* the core answers by the deadline (the ticker runs it) or when the
	 * epoch ends; the bound here only guards against a stopped ticker */
	uint64_t until = cm_now_ms() + timeout + 5000;
	while (!w.done && cm_now_ms() < until)
		cm_cond_wait_ms(&f->done_cv, &f->core_mu, 50);
	unlink_waiter(f, &w);
	ix_fragment *st = f->store;
	ixr_core_leave(f);
	cm_debug("write_stages", "magu=%s fragment=%u records=%zu append_us=%llu wait_us=%llu", req->magu, req->fragment,
		 req->n_records, (unsigned long long)(t_app - t_in), (unsigned long long)(cm_now_us() - t_app));
	if (!w.done || w.level < 0)
		return cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE,
				   "not acknowledged: the primary of %s/%u has no lease in epoch %llu (too few backups answer); "
				   "the records may be dropped", req->magu, req->fragment, (unsigned long long)epoch);
	if (w.rc == CM_ERR_STATE)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "epoch: %llu ended before the write was acknowledged", (unsigned long long)epoch);
	Muri__V1__FragmentWriteResponse *r = cm_rpc_alloc(call, sizeof(*r));
	ProtobufCBinaryData *acked = cm_rpc_alloc(call, sizeof(*acked) * IX_MAX_REPLICAS);
	if (!r || !acked)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__fragment_write_response__init(r);
	r->acked_by = acked;
	for (uint32_t i = 0; i < w.nacked; i++) {
		acked[i].data = cm_rpc_alloc(call, CM_PK_BYTES);
		if (!acked[i].data)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		memcpy(acked[i].data, w.acked[i], CM_PK_BYTES);
		acked[i].len = CM_PK_BYTES;
	}
	r->n_acked_by = w.nacked;
	r->first_seq = first0;
	r->log_size = w.end;
	uint8_t root[CM_HASH_BYTES];
	if (ix_fragment_root(st, w.end, root) == CM_OK)
		ixs_set_hash(call, &r->root, root);
	r->level_achieved = pb_level(w.level);
	if (st) {
		ix_fragment_info info;
		ix_fragment_info_get(st, &info);
		r->live_count = info.live;
	}
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int ix_h_replicate(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__ReplicateRequest *req = (const Muri__V1__ReplicateRequest *)msg;
	uint64_t t_in = cm_now_us();
	struct frag *f = ixs_find_frag(s, req->magu, req->fragment);
	int code = ixs_peer_check(s, call, "Replicate", req->magu, req->fragment, f, 0);
	if (code != GRPC_STATUS_OK)
		return code;
	if (!f)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "%s/%u has no configuration on this indexer",
				   req->magu, req->fragment);
	if (req->n_records > s->o.repl_batch)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "records: at most %u", s->o.repl_batch);
	cm_arena *a = cm_rpc_arena(call);
	ix_repl_entry *e = cm_arena_alloc(a, (req->n_records ? req->n_records : 1) * sizeof(*e));
	if (!e)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	char err[IX_ERR_MAX] = "";
	ixr_core_enter(f);
	uint64_t epoch = f->core ? ix_repl_epoch(f->core) : 0;
	if (!f->core || req->epoch != epoch) {
		ixr_core_leave(f);
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "epoch: the request has %llu, %s/%u is at %llu here",
				   (unsigned long long)req->epoch, req->magu, req->fragment, (unsigned long long)epoch);
	}
	if (req->sender.len != CM_PK_BYTES || req->signature.len != CM_SIG_BYTES) {
		ixr_core_leave(f);
		return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
				   "signature: a Replicate must carry the primary's key (sender) and signature");
	}
	if (req->prev_root.len != CM_HASH_BYTES) {
		ixr_core_leave(f);
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "prev_root: must be 32 bytes");
	}
	if (!ixp_takes_appends(f)) {
		uint32_t parent = f->cfg->source->fragment;
		ixr_core_leave(f);
		return cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE, "%s/%u: a half of fragment %u takes its first records "
				   "from the parent's frozen log, not derived here yet", req->magu, req->fragment, parent);
	}
	uint32_t dim = f->store ? f->spec.dim : req->schema ? req->schema->dimension : 0;
	int rc = CM_OK;
	for (size_t i = 0; rc == CM_OK && i < req->n_records; i++) {
		ix_record r;
		char e2[IX_ERR_MAX - 32];
		if (ix_record_from_pb(req->records[i], dim, a, &r, e2, sizeof(e2)) != CM_OK) {
			snprintf(err, sizeof(err), "records[%zu]: %s", i, e2);
			rc = CM_ERR_INVALID;
		} else {
			r.seq = req->records[i]->seq;
			r.epoch = req->records[i]->epoch;
			rc = ixr_entry_of(&r, a, &e[i]);
		}
	}
	uint64_t t_dec = cm_now_us();
	ix_repl_msg m;
	memset(&m, 0, sizeof(m));
	ix_repl_ack ack;
	memset(&ack, 0, sizeof(ack));
	if (rc == CM_OK) {
		m.type = IX_REPL_APPEND;
		ix_repl_append *ap = &m.u.append;
		ap->epoch = req->epoch;
		ap->prev_size = req->prev_size;
		memcpy(ap->prev_root, req->prev_root.data, CM_HASH_BYTES);
		ap->n = (uint32_t)req->n_records;
		ap->entries = e;
		ap->primary_size = req->primary_size;
		ap->root_size = req->root_size;
		ap->ts = req->ts;
		ap->req = req->req;
		ap->closing = req->closing;
		memcpy(ap->sender, req->sender.data, CM_PK_BYTES);
		memcpy(ap->sig, req->signature.data, CM_SIG_BYTES);
		f->schema_in = req->schema;
		f->ack_out = &ack;
		f->ack_set = 0;
		rc = ix_repl_on_message(f->core, &m);
		f->schema_in = NULL;
		f->ack_out = NULL;
	}
	int answered = f->ack_set;
	f->ack_set = 0;
	ixr_core_leave(f);
	cm_debug("replicate_stages", "magu=%s fragment=%u records=%zu prev=%llu decode_us=%llu core_us=%llu",
		 req->magu, req->fragment, req->n_records, (unsigned long long)req->prev_size,
		 (unsigned long long)(t_dec - t_in), (unsigned long long)(cm_now_us() - t_dec));
	if (!answered) {
		switch (rc) {
		case CM_ERR_PERM:
			return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
					   "sender: not the primary of %s/%u in epoch %llu", req->magu, req->fragment,
					   (unsigned long long)epoch);
		case CM_ERR_VERIFY:
			return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
					   "signature: not the primary's signature over this append");
		case CM_ERR_STATE:
			return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
					   "epoch: %s/%u refuses epoch %llu here", req->magu, req->fragment,
					   (unsigned long long)req->epoch);
		case CM_ERR_INVALID:
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s",
					   err[0] ? err : "records: not consecutive from prev_size, or epochs out of order");
		default:
			return ixs_fail_from(call, rc, err[0] ? err : "cannot apply the records");
		}
	}
	Muri__V1__ReplicateResponse *r = cm_rpc_alloc(call, sizeof(*r));
	uint8_t *mem = cm_rpc_alloc(call, CM_HASH_BYTES + CM_PK_BYTES + CM_SIG_BYTES);
	if (!r || !mem)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__replicate_response__init(r);
	r->log_size = ack.log_size;
	r->ok = ack.ok;
	r->refused = ack.refused;
	r->epoch = ack.epoch;
	r->ts = ack.ts;
	r->req = ack.req;
	r->root_size = ack.match;
	memcpy(mem, ack.match_root, CM_HASH_BYTES);
	memcpy(mem + CM_HASH_BYTES, ack.sender, CM_PK_BYTES);
	memcpy(mem + CM_HASH_BYTES + CM_PK_BYTES, ack.sig, CM_SIG_BYTES);
	if (ack.ok) {
		r->root.data = mem;
		r->root.len = CM_HASH_BYTES;
	}
	r->sender.data = mem + CM_HASH_BYTES;
	r->sender.len = CM_PK_BYTES;
	r->signature.data = mem + CM_HASH_BYTES + CM_PK_BYTES;
	r->signature.len = CM_SIG_BYTES;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int ix_h_fetch_log(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__FetchLogRequest *req = (const Muri__V1__FetchLogRequest *)msg;
	if (req->max_records < 1 || req->max_records > 10000)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "max_records: %u, expected 1..10000",
				   req->max_records);
	struct frag *f = ixs_find_frag(s, req->magu, req->fragment);
	int code = ixs_read_check(s, call, "FetchLog", msg, req->auth, req->magu, req->fragment, f, IXS_READ_LOG);
	if (code != GRPC_STATUS_OK)
		return code;
	ixr_core_enter(f);
	uint64_t epoch = f->core ? ix_repl_epoch(f->core) : 0;
	ixr_core_leave(f);
	ix_fragment *st = ixs_store_of(f);
	if (!st)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s/%u holds no data here", req->magu, req->fragment);
	cm_arena *a = cm_rpc_arena(call);
	ix_record *recs = NULL;
	size_t n = 0;
	int rc = ix_fragment_read(st, req->from_seq, req->max_records, a, &recs, &n);
	if (rc != CM_OK)
		return ixs_fail_from(call, rc, "from_seq: beyond the log");
	/* the answer fits in one message: wide records (high dimensions, large
	 * metadata) come fewer per call, at least one; log_size says what is left */
	uint64_t bytes = 0;
	for (size_t i = 0; s->o.max_message && i < n; i++) {
		bytes += ix_record_encoded_size(&recs[i]);
		if (i && bytes > s->o.max_message / 2) {
			n = i;
			break;
		}
	}
	Muri__V1__FetchLogResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__LogRecord **pbs = cm_rpc_alloc(call, (n ? n : 1) * sizeof(*pbs));
	if (!r || !pbs)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__fetch_log_response__init(r);
	for (size_t i = 0; i < n; i++)
		if (ix_record_to_pb(&recs[i], a, &pbs[i]) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	r->records = pbs;
	r->n_records = n;
	r->log_size = ix_fragment_size(st);
	r->epoch = epoch;
	pthread_mutex_lock(&f->mu);
	ix_spec spec = f->spec;
	pthread_mutex_unlock(&f->mu);
	ix_spec_to_pb(&spec, a, &r->schema);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}
