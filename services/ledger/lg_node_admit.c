/* A ledger replica's transaction admission: SubmitTransaction and
 * SubmitTransactions check a signed transaction's form, signature, nonce and
 * balance against committed state, put it in the mempool, relay it to the
 * other replicas and wake the consensus thread; SubmitTransaction can wait
 * for the commit. Transactions relayed by a peer go through the same checks
 * and are not relayed again. */
#include "lg_node_int.h"

/* Admits one signed transaction to the mempool: checks form, signature,
 * nonce and balance against committed state; one that is new here and did
 * not come by relay is queued for the other replicas. Returns a gRPC status
 * code and writes why into msg; hash receives the tx hash once it is known. */
static int admit(lg_node *n, const Muri__V1__SignedTransaction *stx, int relayed, uint8_t hash[CM_HASH_BYTES],
		 char *msg, size_t msglen)
{
	lg_tx tx;
	char err[ERR_MAX];
	uint8_t th[CM_HASH_BYTES], key[CM_HASH_BYTES];
	int rc;
	/* the memo of the full check (lg_node_check_tx), keyed on the whole
	 * signed transaction: a hit still decodes, without the signature */
	lg_tx_hash(stx->body.data, stx->body.len, th);
	memcpy(hash, th, CM_HASH_BYTES);
	if (atomic_load(&n->diverged)) {
		snprintf(msg, msglen, "this replica stopped: its state diverged from the chain's (see Status)");
		return GRPC_STATUS_UNAVAILABLE;
	}
	lg_node_signed_key(th, &stx->signature, key);
	if (lg_node_vcache_has(n, key)) {
		rc = lg_tx_open(stx, n->genesis->chain_id, LG_TX_SKIP_SIG, &tx, err, sizeof(err));
	} else {
		rc = lg_node_open_tx(n, stx, &tx, err, sizeof(err));
		if (rc == CM_OK)
			lg_node_vcache_add(n, key);
	}
	if (rc != CM_OK) {
		snprintf(msg, msglen, "%.400s", err);
		return rc == CM_ERR_VERIFY ? GRPC_STATUS_UNAUTHENTICATED
		       : rc == CM_ERR_TOOBIG ? GRPC_STATUS_RESOURCE_EXHAUSTED
					     : GRPC_STATUS_INVALID_ARGUMENT;
	}
	memcpy(hash, tx.hash, CM_HASH_BYTES);
	const Muri__V1__Transaction *t = tx.body;
	lg_store *rd = lg_node_reader_get(n);
	lg_account acct;
	memset(&acct, 0, sizeof(acct));
	int have = lg_store_account_get(rd, t->sender.data, &acct) == CM_OK;
	lg_node_reader_put(n, rd);
	uint64_t need = t->fee;
	if (t->payload_case == MURI__V1__TRANSACTION__PAYLOAD_TRANSFER && t->transfer)
		need += t->transfer->amount;
	char who[65];
	cm_hex(who, t->sender.data, 32);
	int code = GRPC_STATUS_OK;
	if (t->nonce < acct.nonce) {
		code = GRPC_STATUS_FAILED_PRECONDITION;
		snprintf(msg, msglen, "nonce: %llu was already used by %s (next is %llu)", (unsigned long long)t->nonce, who,
			 (unsigned long long)acct.nonce);
	} else if (need > 0 && (!have || acct.balance < need)) {
		code = GRPC_STATUS_FAILED_PRECONDITION;
		snprintf(msg, msglen, "insufficient balance: %s has %llu, the transaction needs %llu", who,
			 (unsigned long long)acct.balance, (unsigned long long)need);
	}
	if (code == GRPC_STATUS_OK) {
		size_t len = protobuf_c_message_get_packed_size(&stx->base);
		uint8_t *bytes = malloc(len ? len : 1);
		if (!bytes) {
			code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			snprintf(msg, msglen, "out of memory");
		} else {
			protobuf_c_message_pack(&stx->base, bytes);
			rc = lg_mempool_add(n->mp, tx.hash, t->sender.data, t->nonce, bytes, len, acct.nonce);
			free(bytes);
			if (rc == CM_OK && !relayed)
				lg_net_relay(n->net, &stx->body, &stx->signature);
			if (rc == CM_ERR_EXISTS) {
				code = GRPC_STATUS_ALREADY_EXISTS;
				snprintf(msg, msglen,
					 "duplicate: a transaction with this hash, or with nonce %llu from this sender, is pending",
					 (unsigned long long)t->nonce);
			} else if (rc == CM_ERR_STATE) {
				code = GRPC_STATUS_FAILED_PRECONDITION;
				snprintf(msg, msglen, "nonce: already used");
			} else if (rc == CM_ERR_TOOBIG) {
				code = GRPC_STATUS_RESOURCE_EXHAUSTED;
				snprintf(msg, msglen, "mempool full (mempool_max_txs, mempool_max_bytes or mempool_per_sender)");
			} else if (rc != CM_OK) {
				code = GRPC_STATUS_INTERNAL;
				snprintf(msg, msglen, "mempool: %s", cm_strerror(rc));
			}
		}
	}
	lg_tx_close(&tx);
	return code;
}

static void wake_consensus(lg_node *n)
{
	atomic_store(&n->poke, 1);
	pthread_mutex_lock(&n->qmu);
	pthread_cond_signal(&n->qcv);
	pthread_mutex_unlock(&n->qmu);
}

int lg_node_h_submit_batch(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__SubmitBatchRequest *req = (const Muri__V1__SubmitBatchRequest *)msg;
	if (req->n_txs < 1 || req->n_txs > 10000)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "txs: %zu, expected 1..10000", req->n_txs);
	Muri__V1__SubmitBatchResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__SubmitResult **res = cm_rpc_alloc(call, req->n_txs * sizeof(*res));
	if (!r || !res)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__submit_batch_response__init(r);
	/* the signatures in parallel first; admit() then finds them checked */
	uint8_t(*hashes)[CM_HASH_BYTES] = cm_rpc_alloc(call, req->n_txs * CM_HASH_BYTES);
	if (hashes && req->n_txs > 1)
		lg_node_check_txs(n, req->txs, req->n_txs, hashes);
	for (size_t i = 0; i < req->n_txs; i++) {
		Muri__V1__SubmitResult *x = cm_rpc_alloc(call, sizeof(*x));
		uint8_t *h = cm_rpc_alloc(call, CM_HASH_BYTES);
		char why[ERR_MAX] = "";
		if (!x || !h)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		muri__v1__submit_result__init(x);
		x->code = (uint32_t)admit(n, req->txs[i], 0, h, why, sizeof(why));
		x->tx_hash.data = h;
		x->tx_hash.len = CM_HASH_BYTES;
		x->message = cm_rpc_strdup(call, why);
		res[i] = x;
	}
	r->results = res;
	r->n_results = req->n_txs;
	wake_consensus(n);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int lg_node_h_submit(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__SubmitRequest *req = (const Muri__V1__SubmitRequest *)msg;
	if (!req->tx)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "tx: required");
	if (req->timeout_ms > n->o.max_wait_ms)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "timeout_ms: %u is above the maximum %u",
				   req->timeout_ms, n->o.max_wait_ms);
	uint8_t hash[CM_HASH_BYTES];
	char why[ERR_MAX] = "";
	int code = admit(n, req->tx, 0, hash, why, sizeof(why));
	if (code != GRPC_STATUS_OK)
		return cm_rpc_fail(call, code, "%s", why);
	wake_consensus(n);

	Muri__V1__SubmitResponse *r = cm_rpc_alloc(call, sizeof(*r));
	uint8_t *h = cm_rpc_alloc(call, CM_HASH_BYTES);
	if (!r || !h)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__submit_response__init(r);
	memcpy(h, hash, CM_HASH_BYTES);
	r->tx_hash.data = h;
	r->tx_hash.len = CM_HASH_BYTES;
	r->state = MURI__V1__TX_STATE__TX_PENDING;
	if (req->wait_commit) {
		struct waiter w;
		memset(&w, 0, sizeof(w));
		memcpy(w.hash, hash, CM_HASH_BYTES);
		uint64_t until = cm_now_ms() + (req->timeout_ms ? req->timeout_ms : 10000);
		uint64_t t0 = cm_now_ms();
		pthread_mutex_lock(&n->cmu);
		w.next = n->waiters;
		n->waiters = &w;
		while (!w.done && !atomic_load(&n->stopping) && cm_now_ms() < until && !cm_rpc_cancelled(call)) {
			cm_cond_wait_ms(&n->ccv, &n->cmu, 20);
		}
		for (struct waiter **p = &n->waiters; *p; p = &(*p)->next)
			if (*p == &w) {
				*p = w.next;
				break;
			}
		pthread_mutex_unlock(&n->cmu);
		if (w.done) {
			cm_histogram_observe(n->m_commit_wait, (double)(cm_now_ms() - t0) / 1000.0);
			r->state = w.state;
			r->height = w.height;
			r->message = cm_rpc_strdup(call, w.message);
		} else {
			return cm_rpc_fail(call, GRPC_STATUS_DEADLINE_EXCEEDED,
					   "the transaction is pending; it did not commit within %u ms",
					   req->timeout_ms ? req->timeout_ms : 10000);
		}
	}
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

void lg_node_relay_admit(lg_node *n, uint32_t from, Muri__V1__SignedTransaction *const *txs, size_t count)
{
	if (atomic_load(&n->diverged))
		return;
	/* skip what is already here, check the rest in parallel, then admit */
	if (!count)
		return;
	Muri__V1__SignedTransaction **fresh = calloc(count, sizeof(*fresh));
	uint8_t(*hashes)[CM_HASH_BYTES] = malloc(count * CM_HASH_BYTES);
	if (!fresh || !hashes) {
		free(fresh);
		free(hashes);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < count; i++) {
		uint8_t h[CM_HASH_BYTES];
		lg_tx_hash(txs[i]->body.data, txs[i]->body.len, h);
		if (!lg_mempool_contains(n->mp, h))
			fresh[k++] = txs[i];
	}
	lg_node_check_txs(n, fresh, k, hashes);
	size_t added = 0, refused = 0;
	for (size_t i = 0; i < k; i++) {
		char why[ERR_MAX];
		uint8_t h[CM_HASH_BYTES];
		int code = admit(n, fresh[i], 1, h, why, sizeof(why));
		if (code == GRPC_STATUS_OK)
			added++;
		else if (code != GRPC_STATUS_ALREADY_EXISTS && code != GRPC_STATUS_FAILED_PRECONDITION && !refused++)
			cm_warn("relay_refused", "from=%u reason=\"%s\"", from, why);
	}
	free(fresh);
	free(hashes);
	if (added)
		wake_consensus(n);
}

/* ---- the relay inbox: Relay calls are answered at once, their
 * transactions admitted by a thread of their own, so that a peer's sender
 * thread (which carries its consensus messages too) never waits for them ---- */

struct relay_item {
	struct relay_item *next;
	uint32_t from;
	size_t count;
	Muri__V1__SignedTransaction **ptrs; /* into this allocation */
	Muri__V1__SignedTransaction *txs;
	uint8_t bytes[];
};

void lg_node_on_relay(void *arg, uint32_t from, Muri__V1__SignedTransaction *const *txs, size_t count)
{
	lg_node *n = arg;
	if (atomic_load(&n->diverged) || !count)
		return;
	size_t data = 0;
	for (size_t i = 0; i < count; i++)
		data += txs[i]->body.len + txs[i]->signature.len;
	size_t head = sizeof(struct relay_item) + count * (sizeof(Muri__V1__SignedTransaction *) +
							     sizeof(Muri__V1__SignedTransaction));
	struct relay_item *it = malloc(head + data);
	if (!it)
		return;
	it->next = NULL;
	it->from = from;
	it->count = count;
	it->ptrs = (Muri__V1__SignedTransaction **)(void *)((uint8_t *)it + sizeof(*it));
	it->txs = (Muri__V1__SignedTransaction *)(void *)(it->ptrs + count);
	uint8_t *p = (uint8_t *)it + head;
	for (size_t i = 0; i < count; i++) {
		Muri__V1__SignedTransaction *t = &it->txs[i];
		muri__v1__signed_transaction__init(t);
		t->body.data = p;
		t->body.len = txs[i]->body.len;
		memcpy(p, txs[i]->body.data, t->body.len);
		p += t->body.len;
		t->signature.data = p;
		t->signature.len = txs[i]->signature.len;
		memcpy(p, txs[i]->signature.data, t->signature.len);
		p += t->signature.len;
		it->ptrs[i] = t;
	}
	pthread_mutex_lock(&n->rmu);
	if (n->rlen >= n->o.relay_inbox) {
		n->relay_inbox_dropped++;
		pthread_mutex_unlock(&n->rmu);
		free(it);
		return;
	}
	if (n->rtail)
		n->rtail->next = it;
	else
		n->rhead = it;
	n->rtail = it;
	n->rlen++;
	pthread_cond_signal(&n->rcv);
	pthread_mutex_unlock(&n->rmu);
}

static void *relay_main(void *arg)
{
	lg_node *n = arg;
	pthread_mutex_lock(&n->rmu);
	for (;;) {
		while (!n->rhead && !atomic_load(&n->stopping))
			pthread_cond_wait(&n->rcv, &n->rmu);
		if (atomic_load(&n->stopping))
			break;
		struct relay_item *it = n->rhead;
		n->rhead = it->next;
		if (!n->rhead)
			n->rtail = NULL;
		n->rlen--;
		pthread_mutex_unlock(&n->rmu);
		lg_node_relay_admit(n, it->from, it->ptrs, it->count);
		free(it);
		pthread_mutex_lock(&n->rmu);
	}
	pthread_mutex_unlock(&n->rmu);
	return NULL;
}

int lg_node_relay_start(lg_node *n)
{
	if (pthread_create(&n->rthread, NULL, relay_main, n) != 0)
		return CM_ERR_NOMEM;
	n->rstarted = 1;
	return CM_OK;
}

void lg_node_relay_stop(lg_node *n)
{
	pthread_mutex_lock(&n->rmu);
	pthread_cond_broadcast(&n->rcv);
	pthread_mutex_unlock(&n->rmu);
	if (n->rstarted) {
		pthread_join(n->rthread, NULL);
		n->rstarted = 0;
	}
	for (struct relay_item *it = n->rhead, *next; it; it = next) {
		next = it->next;
		free(it);
	}
	n->rhead = n->rtail = NULL;
	n->rlen = 0;
}
