/* The ledger transport: signed envelopes, a sender thread and a bounded
 * queue per peer, and the Consensus service handlers. The envelope
 * signature is over H(CM_DOM_CONSENSUS || chain_id || 0 || sender (4 bytes,
 * big-endian) || message), so a message cannot be replayed on another chain
 * or attributed to another replica. */
#include "lg_net.h"
#include "cm_err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qmsg {
	struct qmsg *next;
	size_t len;
	uint8_t bytes[];
};

/* A transaction waiting for a Relay batch: body then signature. */
struct rtx {
	struct rtx *next;
	size_t body_len, sig_len;
	uint8_t bytes[];
};

struct peer {
	lg_net *net;
	uint32_t index;
	char address[LG_NET_ADDR_MAX]; /* under mu; "" until known */
	int address_changed;           /* under mu: the client must be remade */
	cm_rpc_client *client;         /* sender thread only (and fetch, under fetch_mu) */
	pthread_mutex_t fetch_mu;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct qmsg *head, *tail;
	size_t queued;
	struct rtx *rhead, *rtail; /* under mu */
	size_t rqueued;
};

struct lg_net {
	char *chain_id;
	uint32_t self, n;
	uint8_t pubkeys[LG_NET_MAX_REPLICAS][CM_PK_BYTES];
	cm_keypair key;
	size_t queue_max, message_max, relay_queue_max, relay_batch;
	int send_timeout_ms;
	char *tls_ca_file;
	struct peer peers[LG_NET_MAX_REPLICAS];
	lg_net_deliver_fn deliver;
	lg_net_fetch_fn fetch;
	lg_net_relay_fn relay;
	void *arg;
	atomic_int stopping;
	atomic_uint_fast64_t sent, send_failed, dropped, received, rejected;
	atomic_uint_fast64_t relay_calls, relayed_txs, relay_dropped, relay_received;
};

static void envelope_digest(uint8_t out[CM_HASH_BYTES], const char *chain_id, uint32_t sender,
			    const uint8_t *msg, size_t len)
{
	cm_hasher h;
	uint8_t zero = 0, s[4] = {(uint8_t)(sender >> 24), (uint8_t)(sender >> 16),
				  (uint8_t)(sender >> 8), (uint8_t)sender};
	cm_hasher_init(&h, CM_DOM_CONSENSUS);
	cm_hasher_update(&h, chain_id, strlen(chain_id));
	cm_hasher_update(&h, &zero, 1);
	cm_hasher_update(&h, s, sizeof(s));
	cm_hasher_update(&h, msg, len);
	cm_hasher_final(&h, out);
}

static void put_u64(cm_hasher *h, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	cm_hasher_update(h, b, sizeof(b));
}

/* What a Relay's signature covers (consensus.proto RelayRequest). */
static void relay_digest(uint8_t out[CM_HASH_BYTES], const char *chain_id, uint32_t sender,
			 Muri__V1__SignedTransaction *const *txs, size_t n)
{
	cm_hasher h;
	uint8_t zero = 0, s[4] = {(uint8_t)(sender >> 24), (uint8_t)(sender >> 16),
				  (uint8_t)(sender >> 8), (uint8_t)sender};
	cm_hasher_init(&h, CM_DOM_CONSENSUS);
	cm_hasher_update(&h, chain_id, strlen(chain_id));
	cm_hasher_update(&h, &zero, 1);
	cm_hasher_update(&h, s, sizeof(s));
	cm_hasher_update(&h, "relay", 5);
	for (size_t i = 0; i < n; i++) {
		put_u64(&h, txs[i]->body.len);
		cm_hasher_update(&h, txs[i]->body.data, txs[i]->body.len);
		put_u64(&h, txs[i]->signature.len);
		cm_hasher_update(&h, txs[i]->signature.data, txs[i]->signature.len);
	}
	cm_hasher_final(&h, out);
}

/* A channel to replica peer: with TLS it takes answers only over a
 * certificate bound to that replica's genesis key. */
static cm_rpc_client *connect_peer(lg_net *net, uint32_t peer, const char *address)
{
	cm_rpc_client *c = NULL;
	char err[256];
	if (!address[0])
		return NULL;
	cm_rpc_client_opts co = {.target = address, .tls_ca_file = net->tls_ca_file,
				 .max_message = net->message_max + (1u << 20), .tls_expect_node = net->pubkeys[peer]};
	if (cm_rpc_client_new(&co, &c, err, sizeof(err)) != CM_OK)
		return NULL;
	return c;
}

int lg_net_set_address(lg_net *net, uint32_t peer, const char *address)
{
	if (peer >= net->n || strlen(address) >= LG_NET_ADDR_MAX)
		return CM_ERR_INVALID;
	struct peer *p = &net->peers[peer];
	pthread_mutex_lock(&p->mu);
	snprintf(p->address, sizeof(p->address), "%s", address);
	p->address_changed = 1;
	pthread_mutex_unlock(&p->mu);
	return CM_OK;
}

/* Sends one Relay call with the batch in list (freed here). */
static void send_relay(struct peer *p, struct rtx *list, size_t n)
{
	lg_net *net = p->net;
	Muri__V1__SignedTransaction *stx = calloc(n ? n : 1, sizeof(*stx));
	Muri__V1__SignedTransaction **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	size_t k = 0;
	for (struct rtx *r = list; r && stx && ptrs; r = r->next, k++) {
		muri__v1__signed_transaction__init(&stx[k]);
		stx[k].body.data = r->bytes;
		stx[k].body.len = r->body_len;
		stx[k].signature.data = r->bytes + r->body_len;
		stx[k].signature.len = r->sig_len;
		ptrs[k] = &stx[k];
	}
	if (stx && ptrs && p->client) {
		uint8_t digest[CM_HASH_BYTES], sig[CM_SIG_BYTES];
		relay_digest(digest, net->chain_id, net->self, ptrs, k);
		cm_sign(&net->key, sig, digest, sizeof(digest));
		Muri__V1__RelayRequest req = MURI__V1__RELAY_REQUEST__INIT;
		req.chain_id = net->chain_id;
		req.sender = net->self;
		req.txs = ptrs;
		req.n_txs = k;
		req.signature.data = sig;
		req.signature.len = sizeof(sig);
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		if (cm_rpc_unary(p->client, "/muri.v1.Consensus/Relay", &req.base, &muri__v1__consensus_ack__descriptor,
				 &resp, net->send_timeout_ms, &st) == CM_OK) {
			atomic_fetch_add(&net->relay_calls, 1);
			atomic_fetch_add(&net->relayed_txs, k);
			protobuf_c_message_free_unpacked(resp, NULL);
		} else {
			atomic_fetch_add(&net->send_failed, 1);
		}
	} else {
		atomic_fetch_add(&net->relay_dropped, n);
	}
	free(stx);
	free(ptrs);
	for (struct rtx *r = list, *next; r; r = next) {
		next = r->next;
		free(r);
	}
}

static void *sender_main(void *arg)
{
	struct peer *p = arg;
	lg_net *net = p->net;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->head && !p->rhead && !atomic_load(&net->stopping))
			pthread_cond_wait(&p->cv, &p->mu);
		if (atomic_load(&net->stopping)) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		/* consensus messages first; a relay batch when none waits */
		struct qmsg *m = p->head;
		struct rtx *batch = NULL;
		size_t nbatch = 0;
		if (m) {
			p->head = m->next;
			if (!p->head)
				p->tail = NULL;
			p->queued--;
		} else {
			batch = p->rhead;
			struct rtx *last = batch;
			size_t bytes = batch->body_len + batch->sig_len;
			nbatch = 1;
			while (last->next && nbatch < net->relay_batch &&
			       bytes + last->next->body_len + last->next->sig_len + 16 <= net->message_max) {
				last = last->next;
				bytes += last->body_len + last->sig_len + 16;
				nbatch++;
			}
			p->rhead = last->next;
			if (!p->rhead)
				p->rtail = NULL;
			last->next = NULL;
			p->rqueued -= nbatch;
		}
		char address[LG_NET_ADDR_MAX];
		int changed = p->address_changed;
		p->address_changed = 0;
		memcpy(address, p->address, sizeof(address));
		pthread_mutex_unlock(&p->mu);
		if (changed || !p->client) {
			pthread_mutex_lock(&p->fetch_mu);
			cm_rpc_client_free(p->client);
			p->client = connect_peer(net, (uint32_t)(p - net->peers), address);
			pthread_mutex_unlock(&p->fetch_mu);
		}
		if (batch) {
			send_relay(p, batch, nbatch);
			continue;
		}
		if (!p->client) {
			atomic_fetch_add(&net->send_failed, 1);
			free(m);
			continue;
		}

		uint8_t digest[CM_HASH_BYTES], sig[CM_SIG_BYTES];
		envelope_digest(digest, net->chain_id, net->self, m->bytes, m->len);
		cm_sign(&net->key, sig, digest, sizeof(digest));
		Muri__V1__ConsensusEnvelope env = MURI__V1__CONSENSUS_ENVELOPE__INIT;
		env.chain_id = net->chain_id;
		env.sender = net->self;
		env.message.data = m->bytes;
		env.message.len = m->len;
		env.signature.data = sig;
		env.signature.len = sizeof(sig);
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		if (cm_rpc_unary(p->client, "/muri.v1.Consensus/Deliver", &env.base,
				 &muri__v1__consensus_ack__descriptor, &resp, net->send_timeout_ms, &st) == CM_OK) {
			atomic_fetch_add(&net->sent, 1);
			protobuf_c_message_free_unpacked(resp, NULL);
		} else {
			atomic_fetch_add(&net->send_failed, 1);
		}
		free(m);
	}
}

void lg_net_relay(lg_net *net, const ProtobufCBinaryData *body, const ProtobufCBinaryData *signature)
{
	for (uint32_t i = 0; i < net->n; i++) {
		if (i == net->self)
			continue;
		struct peer *p = &net->peers[i];
		struct rtx *r = malloc(sizeof(*r) + body->len + signature->len);
		if (!r) {
			atomic_fetch_add(&net->relay_dropped, 1);
			continue;
		}
		r->next = NULL;
		r->body_len = body->len;
		r->sig_len = signature->len;
		memcpy(r->bytes, body->data, body->len);
		memcpy(r->bytes + body->len, signature->data, signature->len);
		pthread_mutex_lock(&p->mu);
		if (p->rqueued >= net->relay_queue_max) {
			pthread_mutex_unlock(&p->mu);
			free(r);
			atomic_fetch_add(&net->relay_dropped, 1);
			continue;
		}
		if (p->rtail)
			p->rtail->next = r;
		else
			p->rhead = r;
		p->rtail = r;
		p->rqueued++;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
}

void lg_net_send(lg_net *net, int to, const uint8_t *msg, size_t len)
{
	for (uint32_t i = 0; i < net->n; i++) {
		if (i == net->self || (to >= 0 && (uint32_t)to != i))
			continue;
		struct peer *p = &net->peers[i];
		struct qmsg *m = malloc(sizeof(*m) + len);
		if (!m) {
			atomic_fetch_add(&net->dropped, 1);
			continue;
		}
		m->next = NULL;
		m->len = len;
		memcpy(m->bytes, msg, len);
		struct qmsg *old = NULL;
		pthread_mutex_lock(&p->mu);
		if (p->queued >= net->queue_max) {
			old = p->head;
			p->head = old->next;
			if (!p->head)
				p->tail = NULL;
			p->queued--;
		}
		if (p->tail)
			p->tail->next = m;
		else
			p->head = m;
		p->tail = m;
		p->queued++;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (old) {
			free(old);
			atomic_fetch_add(&net->dropped, 1);
		}
	}
}

/* With mutual TLS on: GRPC_STATUS_OK only when the caller's certificate is
 * bound to another replica's node key (cm_tls_id.h); the failed status. */
static int peer_replica(lg_net *net, cm_rpc_call *call, const char *method)
{
	if (!cm_rpc_peer_checked(call))
		return GRPC_STATUS_OK;
	uint8_t pk[CM_PK_BYTES];
	char why[256], hex[2 * CM_PK_BYTES + 1];
	if (cm_rpc_peer_node(call, pk, why, sizeof(why)) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_UNAUTHENTICATED,
				   "tls: %s answers only a ledger replica whose certificate is bound to its node key: %s",
				   method, why);
	for (uint32_t i = 0; i < net->n; i++)
		if (i != net->self && memcmp(net->pubkeys[i], pk, CM_PK_BYTES) == 0)
			return GRPC_STATUS_OK;
	cm_hex(hex, pk, CM_PK_BYTES);
	return cm_rpc_fail(call, GRPC_STATUS_PERMISSION_DENIED,
			   "tls: the caller's certificate is node %.16s, not a ledger replica of chain \"%s\"; %s refused",
			   hex, net->chain_id, method);
}

/* A refused consensus or relay message: counted, and failed with why. */
static int rejected(lg_net *net, cm_rpc_call *call, int code, const char *why)
{
	atomic_fetch_add(&net->rejected, 1);
	return cm_rpc_fail(call, code, "%s", why);
}

/* The empty ConsensusAck of a delivered message. */
static int acked(cm_rpc_call *call, ProtobufCMessage **resp)
{
	Muri__V1__ConsensusAck *ack = cm_rpc_alloc(call, sizeof(*ack));
	if (!ack)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__consensus_ack__init(ack);
	*resp = &ack->base;
	return GRPC_STATUS_OK;
}

static int on_deliver(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_net *net = arg;
	int denied = peer_replica(net, call, "Deliver");
	if (denied != GRPC_STATUS_OK)
		return denied;
	const Muri__V1__ConsensusEnvelope *env = (const Muri__V1__ConsensusEnvelope *)msg;
	uint8_t digest[CM_HASH_BYTES];
	const char *why = NULL;
	int code = GRPC_STATUS_INVALID_ARGUMENT;
	if (strcmp(env->chain_id, net->chain_id) != 0)
		why = "chain_id: not this chain";
	else if (env->sender >= net->n || env->sender == net->self)
		why = "sender: not a peer replica index";
	else if (env->message.len == 0 || env->message.len > net->message_max)
		why = "message: empty or larger than the limit";
	else if (env->signature.len != CM_SIG_BYTES)
		why = "signature: must be 64 bytes";
	if (!why) {
		envelope_digest(digest, net->chain_id, env->sender, env->message.data, env->message.len);
		if (cm_verify(net->pubkeys[env->sender], env->signature.data, digest, sizeof(digest)) != CM_OK) {
			why = "signature: does not verify for the sender";
			code = GRPC_STATUS_UNAUTHENTICATED;
		}
	}
	if (why)
		return rejected(net, call, code, why);
	atomic_fetch_add(&net->received, 1);
	net->deliver(net->arg, env->sender, env->message.data, env->message.len);
	return acked(call, resp);
}

static int on_relay(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_net *net = arg;
	int denied = peer_replica(net, call, "Relay");
	if (denied != GRPC_STATUS_OK)
		return denied;
	const Muri__V1__RelayRequest *req = (const Muri__V1__RelayRequest *)msg;
	uint8_t digest[CM_HASH_BYTES];
	const char *why = NULL;
	int code = GRPC_STATUS_INVALID_ARGUMENT;
	if (!net->relay)
		return cm_rpc_fail(call, GRPC_STATUS_UNIMPLEMENTED, "this replica takes no relayed transactions");
	if (strcmp(req->chain_id, net->chain_id) != 0)
		why = "chain_id: not this chain";
	else if (req->sender >= net->n || req->sender == net->self)
		why = "sender: not a peer replica index";
	else if (req->n_txs == 0 || req->n_txs > LG_NET_RELAY_MAX)
		why = "txs: empty or more than LG_NET_RELAY_MAX";
	else if (req->signature.len != CM_SIG_BYTES)
		why = "signature: must be 64 bytes";
	if (!why) {
		relay_digest(digest, net->chain_id, req->sender, req->txs, req->n_txs);
		if (cm_verify(net->pubkeys[req->sender], req->signature.data, digest, sizeof(digest)) != CM_OK) {
			why = "signature: does not verify for the sender";
			code = GRPC_STATUS_UNAUTHENTICATED;
		}
	}
	if (why)
		return rejected(net, call, code, why);
	atomic_fetch_add(&net->relay_received, req->n_txs);
	net->relay(net->arg, req->sender, req->txs, req->n_txs);
	return acked(call, resp);
}

static int on_fetch(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_net *net = arg;
	int denied = peer_replica(net, call, "FetchBlocks");
	if (denied != GRPC_STATUS_OK)
		return denied;
	const Muri__V1__FetchBlocksRequest *req = (const Muri__V1__FetchBlocksRequest *)msg;
	if (strcmp(req->chain_id, net->chain_id) != 0)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "chain_id: not this chain");
	if (req->max_blocks < 1 || req->max_blocks > 1000)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "max_blocks: %u is not in 1..1000",
				   req->max_blocks);
	Muri__V1__FetchBlocksResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__fetch_blocks_response__init(r);
	int code = net->fetch(net->arg, call, req, r);
	if (code == GRPC_STATUS_OK)
		*resp = &r->base;
	return code;
}

void lg_net_on_relay(lg_net *net, lg_net_relay_fn fn)
{
	net->relay = fn;
}

int lg_net_register(lg_net *net, cm_rpc_server *srv)
{
	const cm_rpc_handler h[] = {
		{"Deliver", on_deliver, NULL}, {"FetchBlocks", on_fetch, NULL}, {"Relay", on_relay, NULL}};
	return cm_rpc_server_add(srv, &muri__v1__consensus__descriptor, h, 3, net);
}

int lg_net_fetch(lg_net *net, uint32_t peer, const Muri__V1__FetchBlocksRequest *req,
		 Muri__V1__FetchBlocksResponse **resp, int timeout_ms)
{
	if (peer >= net->n || peer == net->self)
		return CM_ERR_INVALID;
	struct peer *p = &net->peers[peer];
	ProtobufCMessage *m = NULL;
	cm_rpc_status st;
	char address[LG_NET_ADDR_MAX];
	pthread_mutex_lock(&p->mu);
	memcpy(address, p->address, sizeof(address));
	pthread_mutex_unlock(&p->mu);
	/* a client of its own: the sender thread may be remaking the shared one */
	cm_rpc_client *c = connect_peer(net, peer, address);
	if (!c)
		return CM_ERR_UNAVAILABLE;
	int rc = cm_rpc_unary(c, "/muri.v1.Consensus/FetchBlocks", &req->base,
			      &muri__v1__fetch_blocks_response__descriptor, &m, timeout_ms, &st);
	cm_rpc_client_free(c);
	if (rc == CM_OK)
		*resp = (Muri__V1__FetchBlocksResponse *)m;
	return rc;
}

int lg_net_new(const lg_net_opts *o, lg_net_deliver_fn deliver, lg_net_fetch_fn fetch, void *arg,
	       lg_net **out)
{
	if (o->n < 1 || o->n > LG_NET_MAX_REPLICAS || o->self >= o->n || !o->queue_max ||
	    !o->message_max || !o->chain_id)
		return CM_ERR_INVALID;
	lg_net *net = calloc(1, sizeof(*net));
	if (!net || !(net->chain_id = strdup(o->chain_id))) {
		free(net);
		return CM_ERR_NOMEM;
	}
	net->self = o->self;
	net->n = o->n;
	memcpy(net->pubkeys, o->pubkeys, (size_t)o->n * CM_PK_BYTES);
	net->key = *o->key;
	net->queue_max = o->queue_max;
	net->message_max = o->message_max;
	net->relay_queue_max = o->relay_queue_max ? o->relay_queue_max : 65536;
	net->relay_batch = o->relay_batch ? o->relay_batch : 256;
	if (net->relay_batch > LG_NET_RELAY_MAX)
		net->relay_batch = LG_NET_RELAY_MAX;
	net->send_timeout_ms = o->send_timeout_ms > 0 ? o->send_timeout_ms : 1000;
	net->deliver = deliver;
	net->fetch = fetch;
	net->arg = arg;
	if (o->tls_ca_file && !(net->tls_ca_file = strdup(o->tls_ca_file))) {
		lg_net_free(net);
		return CM_ERR_NOMEM;
	}
	for (uint32_t i = 0; i < o->n; i++) {
		struct peer *p = &net->peers[i];
		p->net = net;
		p->index = i;
		pthread_mutex_init(&p->mu, NULL);
		pthread_mutex_init(&p->fetch_mu, NULL);
		pthread_cond_init(&p->cv, NULL);
		if (o->addresses && o->addresses[i])
			snprintf(p->address, sizeof(p->address), "%s", o->addresses[i]);
	}
	for (uint32_t i = 0; i < o->n; i++) {
		struct peer *p = &net->peers[i];
		if (i == o->self)
			continue;
		if (pthread_create(&p->thread, NULL, sender_main, p) != 0) {
			lg_net_free(net);
			return CM_ERR_NOMEM;
		}
		p->started = 1;
	}
	*out = net;
	return CM_OK;
}

void lg_net_stop(lg_net *net)
{
	if (atomic_exchange(&net->stopping, 1))
		return;
	for (uint32_t i = 0; i < net->n; i++) {
		struct peer *p = &net->peers[i];
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	for (uint32_t i = 0; i < net->n; i++)
		if (net->peers[i].started) {
			pthread_join(net->peers[i].thread, NULL);
			net->peers[i].started = 0;
		}
}

void lg_net_free(lg_net *net)
{
	if (!net)
		return;
	lg_net_stop(net);
	for (uint32_t i = 0; i < net->n; i++) {
		struct peer *p = &net->peers[i];
		for (struct qmsg *m = p->head, *next; m; m = next) {
			next = m->next;
			free(m);
		}
		for (struct rtx *r = p->rhead, *next; r; r = next) {
			next = r->next;
			free(r);
		}
		cm_rpc_client_free(p->client);
		pthread_mutex_destroy(&p->mu);
		pthread_mutex_destroy(&p->fetch_mu);
		pthread_cond_destroy(&p->cv);
	}
	cm_keypair_wipe(&net->key);
	free(net->tls_ca_file);
	free(net->chain_id);
	free(net);
}

void lg_net_get_stats(lg_net *net, lg_net_stats *out)
{
	out->sent = atomic_load(&net->sent);
	out->send_failed = atomic_load(&net->send_failed);
	out->dropped = atomic_load(&net->dropped);
	out->received = atomic_load(&net->received);
	out->rejected = atomic_load(&net->rejected);
	out->relay_calls = atomic_load(&net->relay_calls);
	out->relayed_txs = atomic_load(&net->relayed_txs);
	out->relay_dropped = atomic_load(&net->relay_dropped);
	out->relay_received = atomic_load(&net->relay_received);
	out->relay_queued = 0;
	for (uint32_t i = 0; i < net->n; i++) {
		pthread_mutex_lock(&net->peers[i].mu);
		out->relay_queued += net->peers[i].rqueued;
		pthread_mutex_unlock(&net->peers[i].mu);
	}
}
