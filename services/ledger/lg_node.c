/* A ledger replica: the glue between the consensus core and everything
 * with I/O. One thread owns the core (lg_hs is not thread-safe) and the
 * writer side of the state; RPC threads hand it messages through a bounded
 * inbox, add transactions to the mempool, and answer queries from a pool of
 * read-only SQLite connections. A fetch thread fetches missing blocks from
 * peers so the core never blocks on the network. This file: the life cycle,
 * the read pool, the inbox and the two threads. */
#include "lg_node_int.h"

lg_store *lg_node_reader_get(lg_node *n)
{
	pthread_mutex_lock(&n->pool_mu);
	for (;;) {
		for (uint32_t i = 0; i < n->nreaders; i++)
			if (!n->reader_busy[i]) {
				n->reader_busy[i] = 1;
				pthread_mutex_unlock(&n->pool_mu);
				return n->readers[i];
			}
		pthread_cond_wait(&n->pool_cv, &n->pool_mu);
	}
}

void lg_node_reader_put(lg_node *n, lg_store *s)
{
	pthread_mutex_lock(&n->pool_mu);
	for (uint32_t i = 0; i < n->nreaders; i++)
		if (n->readers[i] == s)
			n->reader_busy[i] = 0;
	pthread_cond_signal(&n->pool_cv);
	pthread_mutex_unlock(&n->pool_mu);
}

uint64_t lg_node_sig_checks(lg_node *n)
{
	return atomic_load(&n->sig_checks);
}

int lg_node_replica_of(lg_node *n, const uint8_t pk[CM_PK_BYTES])
{
	for (uint32_t i = 0; i < n->n; i++)
		if (memcmp(n->pks[i], pk, CM_PK_BYTES) == 0)
			return (int)i;
	return -1;
}

/* ---- inbox and threads ------------------------------------------------------ */

void lg_node_enqueue(lg_node *n, int kind, uint32_t from, const uint8_t *bytes, size_t len)
{
	struct item *it = malloc(sizeof(*it) + len);
	if (!it)
		return;
	it->next = NULL;
	it->kind = kind;
	it->from = from;
	it->len = len;
	memcpy(it->bytes, bytes, len);
	pthread_mutex_lock(&n->qmu);
	if (n->qlen >= n->o.inbox_max) {
		n->inbox_dropped++;
		pthread_mutex_unlock(&n->qmu);
		free(it);
		return;
	}
	if (n->qtail)
		n->qtail->next = it;
	else
		n->qhead = it;
	n->qtail = it;
	n->qlen++;
	pthread_cond_signal(&n->qcv);
	pthread_mutex_unlock(&n->qmu);
}

/* On an RPC thread: a proposal's transactions are verified here, in
 * parallel, before the consensus thread sees it (only a proposal that
 * passes the cheap checks first: lg_node_preverify). */
static void on_net_message(void *arg, uint32_t from, const uint8_t *msg, size_t len)
{
	lg_node *n = arg;
	if (!atomic_load(&n->diverged))
		lg_node_preverify(n, msg, len);
	lg_node_enqueue(n, ITEM_MSG, from, msg, len);
}

static void *consensus_main(void *arg)
{
	lg_node *n = arg;
	uint64_t next_tick = cm_now_ms();
	while (!atomic_load(&n->stopping)) {
		pthread_mutex_lock(&n->qmu);
		while (!n->qhead && !atomic_load(&n->stopping) && !atomic_load(&n->poke)) {
			uint64_t now = cm_now_ms();
			if (now >= next_tick)
				break;
			cm_cond_wait_ms(&n->qcv, &n->qmu, next_tick - now);
		}
		struct item *list = n->qhead;
		n->qhead = n->qtail = NULL;
		n->qlen = 0;
		pthread_mutex_unlock(&n->qmu);
		/* a diverged replica takes part in nothing: no vote, no proposal, no commit */
		int stopped = atomic_load(&n->diverged);
		while (list) {
			struct item *it = list;
			list = it->next;
			if (stopped) {
				/* dropped */
			} else if (it->kind == ITEM_MSG) {
				lg_hs_on_message_bytes(n->hs, it->from, it->bytes, it->len);
			} else {
				cm_block b;
				if (cm_block_decode(it->bytes, it->len, &b) == CM_OK)
					lg_hs_on_block(n->hs, &b);
			}
			free(it);
		}
		uint64_t now = cm_now_ms();
		if (atomic_load(&n->diverged)) {
			next_tick = now + n->o.tick_ms;
			continue;
		}
		if (now >= next_tick || atomic_exchange(&n->poke, 0)) {
			lg_hs_tick(n->hs, now);
			next_tick = now + n->o.tick_ms;
			pthread_mutex_lock(&n->cmu);
			n->view = lg_hs_view(n->hs);
			pthread_mutex_unlock(&n->cmu);
			cm_gauge_set(n->m_view, (double)n->view);
			cm_gauge_set(n->m_mempool, (double)lg_mempool_count(n->mp));
			if (now - n->last_requeue >= REQUEUE_EVERY_MS) {
				lg_mempool_requeue_stale(n->mp, now, STALE_MS, lg_node_committed_nonce, n);
				n->last_requeue = now;
			}
		}
	}
	return NULL;
}

static void *fetch_main(void *arg)
{
	lg_node *n = arg;
	for (;;) {
		pthread_mutex_lock(&n->fmu);
		int slot = -1;
		while (!atomic_load(&n->stopping)) {
			for (int i = 0; i < FETCH_SLOTS && slot < 0; i++)
				if (n->freq[i].used)
					slot = i;
			if (slot >= 0)
				break;
			pthread_cond_wait(&n->fcv, &n->fmu);
		}
		if (atomic_load(&n->stopping)) {
			pthread_mutex_unlock(&n->fmu);
			return NULL;
		}
		struct fetch_req r = n->freq[slot];
		pthread_mutex_unlock(&n->fmu);

		/* committed blocks from have+1 on, then the wanted block and its
		 * ancestors by hash (lowest first to the core) */
		Muri__V1__FetchBlocksRequest req = MURI__V1__FETCH_BLOCKS_REQUEST__INIT;
		req.chain_id = n->genesis->chain_id;
		req.from_height = r.have + 1;
		req.max_blocks = FETCH_BATCH;
		Muri__V1__FetchBlocksResponse *resp = NULL;
		int found = 0;
		if (lg_net_fetch(n->net, r.peer, &req, &resp, 5000) == CM_OK) {
			for (size_t i = 0; i < resp->n_blocks; i++) {
				lg_node_enqueue(n, ITEM_BLOCK, r.peer, resp->blocks[i].data, resp->blocks[i].len);
				cm_block b;
				if (cm_block_decode(resp->blocks[i].data, resp->blocks[i].len, &b) == CM_OK &&
				    memcmp(b.hash, r.hash, CM_HASH_BYTES) == 0)
					found = 1;
			}
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
		if (!found) {
			req.from_height = 0;
			req.block_hash.data = r.hash;
			req.block_hash.len = CM_HASH_BYTES;
			resp = NULL;
			if (lg_net_fetch(n->net, r.peer, &req, &resp, 5000) == CM_OK) {
				for (size_t i = resp->n_blocks; i-- > 0;)
					lg_node_enqueue(n, ITEM_BLOCK, r.peer, resp->blocks[i].data, resp->blocks[i].len);
				protobuf_c_message_free_unpacked(&resp->base, NULL);
			}
		}
		pthread_mutex_lock(&n->fmu);
		n->freq[slot].used = 0;
		pthread_mutex_unlock(&n->fmu);
		/* the core asks again on its ticks if something is still missing */
	}
}

/* ---- life cycle -------------------------------------------------------------------- */

struct restore_ctx {
	cm_block **blocks;
	uint8_t **bufs;
	size_t n, cap;
};

static void collect_block(void *arg, const uint8_t *bytes, size_t len)
{
	struct restore_ctx *r = arg;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		cm_block **b = realloc(r->blocks, cap * sizeof(*b));
		uint8_t **u = b ? realloc(r->bufs, cap * sizeof(*u)) : NULL;
		if (b)
			r->blocks = b;
		if (!u)
			return;
		r->bufs = u;
		r->cap = cap;
	}
	uint8_t *copy = malloc(len);
	cm_block *blk = malloc(sizeof(*blk));
	if (!copy || !blk || (memcpy(copy, bytes, len), cm_block_decode(copy, len, blk)) != CM_OK) {
		free(copy);
		free(blk);
		return;
	}
	r->bufs[r->n] = copy;
	r->blocks[r->n++] = blk;
}

static int restore(lg_node *n, const lg_hs_config *cfg, const lg_hs_io *io, char *err, size_t errlen)
{
	lg_store *st = lg_state_store(n->state);
	uint64_t h = lg_state_height(n->state);
	lg_block_rec rec;
	memset(&rec, 0, sizeof(rec));
	cm_block committed;
	int has_committed = 0;
	if (h > 0) {
		if (lg_store_get_block(st, h, &rec) != CM_OK ||
		    cm_block_decode(rec.header, rec.header_len, &committed) != CM_OK) {
			snprintf(err, errlen, "cannot read the committed block at height %llu", (unsigned long long)h);
			lg_block_rec_clear(&rec);
			return CM_ERR_IO;
		}
		has_committed = 1;
	}
	uint8_t *sbytes = NULL;
	size_t slen = 0;
	lg_hs_safety safety;
	int has_safety = lg_store_get_safety(st, &sbytes, &slen) == CM_OK &&
			 lg_hs_safety_decode(sbytes, slen, &safety) == CM_OK;
	free(sbytes);
	struct restore_ctx r = {0};
	lg_blocks_each_above(n->blocks, h, collect_block, &r);
	int rc = lg_hs_restore(cfg, io, has_safety ? &safety : NULL, has_committed ? &committed : NULL,
			       (const cm_block *const *)r.blocks, r.n, &n->hs);
	if (rc != CM_OK)
		snprintf(err, errlen, "cannot restore consensus: %s", cm_strerror(rc));
	else
		cm_info("restored", "height=%llu pending_blocks=%zu safety=%s", (unsigned long long)h, r.n,
			has_safety ? "yes" : "none");
	for (size_t i = 0; i < r.n; i++) {
		free(r.blocks[i]);
		free(r.bufs[i]);
	}
	free(r.blocks);
	free(r.bufs);
	lg_block_rec_clear(&rec);
	return rc;
}

int lg_node_open(const lg_node_opts *o, lg_node **out, char *err, size_t errlen)
{
	lg_node *n = calloc(1, sizeof(*n));
	if (!n || !(n->data_dir = strdup(o->data_dir))) {
		free(n);
		return CM_ERR_NOMEM;
	}
	n->o = *o;
	n->o.data_dir = n->data_dir;
	n->key = *o->key;
	n->o.key = &n->key;
	pthread_mutex_init(&n->pool_mu, NULL);
	cm_cond_init(&n->pool_cv);
	pthread_mutex_init(&n->qmu, NULL);
	cm_cond_init(&n->qcv);
	pthread_mutex_init(&n->fmu, NULL);
	cm_cond_init(&n->fcv);
	pthread_mutex_init(&n->cmu, NULL);
	cm_cond_init(&n->ccv);
	pthread_mutex_init(&n->vmu, NULL);
	pthread_mutex_init(&n->rmu, NULL);
	pthread_mutex_init(&n->pvmu, NULL);
	pthread_cond_init(&n->rcv, NULL);
	int rc = lg_genesis_load(o->genesis_path, &n->genesis, err, errlen);
	if (rc != CM_OK)
		goto fail;
	n->n = (uint32_t)n->genesis->nreplicas;
	if (n->n < 1 || n->n > CM_CHAIN_MAX_REPLICAS || n->n > LG_NET_MAX_REPLICAS) {
		snprintf(err, errlen, "genesis: %u replicas; 1..%d are supported", n->n, CM_CHAIN_MAX_REPLICAS);
		rc = CM_ERR_INVALID;
		goto fail;
	}
	n->f = (n->n - 1) / 3;
	n->pks = calloc(n->n, CM_PK_BYTES);
	n->vcache = calloc(VCACHE_SLOTS, CM_HASH_BYTES);
	if (!n->pks || !n->vcache) {
		rc = CM_ERR_NOMEM;
		goto fail;
	}
	rc = lg_node_verifiers_start(n, o->verifier_threads);
	if (rc != CM_OK) {
		snprintf(err, errlen, "cannot start the signature verifiers");
		goto fail;
	}
	const char **addrs = calloc(n->n, sizeof(*addrs));
	for (uint32_t i = 0; i < n->n; i++) {
		memcpy(n->pks[i], n->genesis->replicas[i].pk, CM_PK_BYTES);
		if (addrs)
			addrs[i] = n->genesis->replicas[i].address;
	}
	int self = lg_node_replica_of(n, n->key.pk);
	if (self < 0 || !addrs) {
		char hex[65];
		cm_hex(hex, n->key.pk, 32);
		snprintf(err, errlen, "key_file: this node's key %s is not a replica in the genesis file", hex);
		free(addrs);
		rc = CM_ERR_INVALID;
		goto fail;
	}
	n->self = (uint32_t)self;
	uint8_t gd[CM_HASH_BYTES];
	lg_genesis_digest(n->genesis, gd);
	cm_hash(n->genesis_beacon, CM_DOM_BEACON, gd, sizeof(gd));

	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/ledger.db", o->data_dir);
	rc = lg_state_open(&n->state, path, n->genesis, err, errlen);
	if (rc == CM_OK) {
		snprintf(path, sizeof(path), "%s/blocks.db", o->data_dir);
		rc = lg_blocks_open(path, &n->blocks, err, errlen);
	}
	if (rc != CM_OK) {
		free(addrs);
		goto fail;
	}
	lg_state_set_observer(n->state, lg_node_observe_tx, n);
	n->height = lg_state_height(n->state);
	n->last_txs_height = n->height; /* not known to be final: idle only after a three-chain above it */
	lg_state_root(n->state, n->root);
	n->unsigned_noops = lg_state_param(n->state, "unsigned_noops") != 0;
	n->nreaders = o->readers ? o->readers : 4;
	n->readers = calloc(n->nreaders, sizeof(*n->readers));
	n->reader_busy = calloc(n->nreaders, 1);
	snprintf(path, sizeof(path), "%s/ledger.db", o->data_dir);
	for (uint32_t i = 0; rc == CM_OK && i < n->nreaders; i++)
		rc = !n->readers ? CM_ERR_NOMEM : lg_store_open(&n->readers[i], path, LG_STORE_READONLY, err, errlen);
	lg_mempool_opts mo = {.max_txs = o->mempool_max_txs, .max_bytes = o->mempool_max_bytes,
			      .max_per_sender = o->mempool_per_sender};
	if (rc == CM_OK)
		rc = lg_mempool_new(&mo, &n->mp);
	lg_net_opts no = {.chain_id = n->genesis->chain_id, .self = n->self, .n = n->n, .addresses = addrs,
			  .pubkeys = (const uint8_t(*)[CM_PK_BYTES])n->pks, .key = &n->key, .queue_max = o->net_queue,
			  .message_max = o->max_payload_bytes + (1u << 20), .send_timeout_ms = 2000,
			  .tls_ca_file = o->tls_ca_file, .relay_queue_max = o->relay_queue, .relay_batch = o->relay_batch};
	if (rc == CM_OK)
		rc = lg_net_new(&no, on_net_message, lg_node_serve_fetch, n, &n->net);
	if (rc == CM_OK)
		lg_net_on_relay(n->net, lg_node_on_relay);
	free(addrs);
	if (rc != CM_OK) {
		if (!err[0])
			snprintf(err, errlen, "cannot open the ledger: %s", cm_strerror(rc));
		goto fail;
	}
	lg_hs_config cfg = {.n = n->n, .f = n->f, .self = n->self, .base_timeout_ms = o->base_timeout_ms,
			    .max_timeout_ms = o->max_timeout_ms, .max_payload_bytes = o->max_payload_bytes,
			    .max_future_views = FUTURE_VIEWS};
	cm_chain_tag(cfg.chain, n->genesis->chain_id);
	memcpy(n->chain_tag, cfg.chain, CM_HASH_BYTES);
	lg_hs_io io;
	lg_node_io_init(n, &io);
	rc = restore(n, &cfg, &io, err, errlen);
	if (rc != CM_OK)
		goto fail;
	if (o->metrics) {
		n->m_blocks = cm_metrics_counter(o->metrics, "muri_ledger_blocks_committed_total", NULL, "blocks committed");
		n->m_txs = cm_metrics_counter(o->metrics, "muri_ledger_txs_committed_total", NULL,
					      "transactions in committed blocks (executed or failed)");
		n->m_rejected = cm_metrics_counter(o->metrics, "muri_ledger_payloads_rejected_total", NULL,
						   "proposals whose payload did not validate");
		n->m_height = cm_metrics_gauge(o->metrics, "muri_ledger_height", NULL, "committed height");
		n->m_view = cm_metrics_gauge(o->metrics, "muri_ledger_view", NULL, "current consensus view");
		n->m_mempool = cm_metrics_gauge(o->metrics, "muri_ledger_mempool_txs", NULL, "transactions waiting");
		n->m_diverged = cm_metrics_gauge(o->metrics, "muri_ledger_diverged", NULL,
						 "1 once this replica's state root differed from a certified block's; it stopped");
		static const double b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
		n->m_commit_wait = cm_metrics_histogram(o->metrics, "muri_ledger_commit_wait_seconds", NULL,
							"SubmitTransaction with wait_commit: time to commit", b,
							sizeof(b) / sizeof(b[0]));
	}
	*out = n;
	return CM_OK;
fail:
	lg_node_close(n);
	return rc ? rc : CM_ERR_INVALID;
}

int lg_node_start(lg_node *n, char *err, size_t errlen)
{
	int rc = lg_hs_start(n->hs);
	if (rc != CM_OK) {
		snprintf(err, errlen, "cannot start consensus: %s", lg_hs_errmsg(n->hs));
		return rc;
	}
	if (pthread_create(&n->cthread, NULL, consensus_main, n) != 0) {
		snprintf(err, errlen, "cannot start the consensus thread");
		return CM_ERR_NOMEM;
	}
	if (pthread_create(&n->fthread, NULL, fetch_main, n) != 0) {
		atomic_store(&n->stopping, 1);
		pthread_cond_broadcast(&n->qcv);
		pthread_join(n->cthread, NULL);
		snprintf(err, errlen, "cannot start the fetch thread");
		return CM_ERR_NOMEM;
	}
	if (lg_node_relay_start(n) != CM_OK) {
		atomic_store(&n->stopping, 1);
		pthread_cond_broadcast(&n->qcv);
		pthread_cond_broadcast(&n->fcv);
		pthread_join(n->cthread, NULL);
		pthread_join(n->fthread, NULL);
		snprintf(err, errlen, "cannot start the relay thread");
		return CM_ERR_NOMEM;
	}
	n->started = 1;
	return CM_OK;
}

void lg_node_stop(lg_node *n)
{
	if (!n || atomic_exchange(&n->stopping, 1))
		return;
	pthread_mutex_lock(&n->qmu);
	pthread_cond_broadcast(&n->qcv);
	pthread_mutex_unlock(&n->qmu);
	pthread_mutex_lock(&n->fmu);
	pthread_cond_broadcast(&n->fcv);
	pthread_mutex_unlock(&n->fmu);
	pthread_mutex_lock(&n->cmu);
	pthread_cond_broadcast(&n->ccv);
	pthread_mutex_unlock(&n->cmu);
	if (n->started) {
		pthread_join(n->cthread, NULL);
		pthread_join(n->fthread, NULL);
		n->started = 0;
	}
	lg_node_relay_stop(n);
	if (n->net)
		lg_net_stop(n->net);
}

void lg_node_close(lg_node *n)
{
	if (!n)
		return;
	lg_node_stop(n);
	lg_node_relay_stop(n); /* Relay calls that came after the stop */
	lg_node_verifiers_stop(n);
	lg_hs_destroy(n->hs);
	lg_net_free(n->net);
	lg_mempool_free(n->mp);
	for (uint32_t i = 0; n->readers && i < n->nreaders; i++)
		lg_store_close(n->readers[i]);
	free(n->readers);
	free(n->reader_busy);
	lg_blocks_close(n->blocks);
	lg_state_close(n->state);
	lg_genesis_free(n->genesis);
	for (struct item *it = n->qhead, *next; it; it = next) {
		next = it->next;
		free(it);
	}
	free(n->pks);
	free(n->vcache);
	cm_keypair_wipe(&n->key);
	free(n->data_dir);
	free(n);
}
