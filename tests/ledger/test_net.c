/* Tests of the ledger transport: three replicas in one process, each with an
 * RPC server on a loopback port chosen at run time. Messages arrive intact
 * and attributed to their sender; forged, foreign-chain and oversized
 * envelopes are refused with a status naming what is wrong; relayed
 * transactions arrive whole, in batches of at most relay_batch, and a
 * peer's relay queue holds at most relay_queue_max. */
#include "tap.h"
#include "cm_err.h"
#include "cm_rpc.h"
#include "lg_net.h"

#include <pthread.h>
#include <unistd.h>

#define N 3

struct replica {
	cm_rpc_server *srv;
	lg_net *net;
	int port;
	pthread_mutex_t mu;
	int got;
	uint32_t last_from;
	uint8_t last[64];
	size_t last_len;
	int relay_calls, relay_txs, relay_biggest, relay_from;
	uint8_t relay_first[8];
};

static struct replica reps[N];
static cm_keypair keys[N];
static uint8_t pubs[N][CM_PK_BYTES];
static char addr_buf[N][32];

static void deliver(void *arg, uint32_t from, const uint8_t *msg, size_t len)
{
	struct replica *r = arg;
	pthread_mutex_lock(&r->mu);
	r->got++;
	r->last_from = from;
	r->last_len = len < sizeof(r->last) ? len : sizeof(r->last);
	memcpy(r->last, msg, r->last_len);
	pthread_mutex_unlock(&r->mu);
}

static void relay(void *arg, uint32_t from, Muri__V1__SignedTransaction *const *txs, size_t n)
{
	struct replica *r = arg;
	pthread_mutex_lock(&r->mu);
	if (!r->relay_txs && n && txs[0]->body.len >= 8)
		memcpy(r->relay_first, txs[0]->body.data, 8);
	r->relay_calls++;
	r->relay_txs += (int)n;
	r->relay_from = (int)from;
	if ((int)n > r->relay_biggest)
		r->relay_biggest = (int)n;
	for (size_t i = 0; i < n; i++)
		if (txs[i]->signature.len != 64 || txs[i]->signature.data[0] != txs[i]->body.data[0])
			r->relay_txs = -1000000; /* not as sent */
	pthread_mutex_unlock(&r->mu);
}

static int fetch(void *arg, cm_rpc_call *call, const Muri__V1__FetchBlocksRequest *req,
		 Muri__V1__FetchBlocksResponse *resp)
{
	(void)arg;
	resp->n_blocks = req->max_blocks;
	resp->blocks = cm_rpc_alloc(call, sizeof(*resp->blocks) * req->max_blocks);
	for (uint32_t i = 0; i < req->max_blocks; i++) {
		resp->blocks[i].data = cm_rpc_alloc(call, 8);
		memcpy(resp->blocks[i].data, &req->from_height, 8);
		resp->blocks[i].data[0] += (uint8_t)i;
		resp->blocks[i].len = 8;
	}
	return GRPC_STATUS_OK;
}

static int wait_got(struct replica *r, int n)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&r->mu);
		int got = r->got;
		pthread_mutex_unlock(&r->mu);
		if (got >= n)
			return got;
		usleep(10000);
	}
	return -1;
}

static int setup(void)
{
	char err[256];
	for (int i = 0; i < N; i++) {
		cm_keypair_generate(&keys[i]);
		memcpy(pubs[i], keys[i].pk, CM_PK_BYTES);
		pthread_mutex_init(&reps[i].mu, NULL);
	}
	/* nets first (addresses unknown), then servers on port 0, then addresses */
	for (int i = 0; i < N; i++) {
		cm_rpc_server_opts o = {.listen = "127.0.0.1:0", .workers = 2, .requests_per_worker = 2,
					.max_streams = 4};
		lg_net_opts no = {.chain_id = "test-chain", .self = (uint32_t)i, .n = N,
				  .pubkeys = (const uint8_t(*)[CM_PK_BYTES])pubs, .key = &keys[i],
				  .queue_max = 4, .message_max = 1024, .send_timeout_ms = 2000,
				  .relay_queue_max = 64, .relay_batch = 4};
		if (cm_rpc_server_new(&o, &reps[i].srv, err, sizeof(err)) != CM_OK ||
		    lg_net_new(&no, deliver, fetch, &reps[i], &reps[i].net) != CM_OK ||
		    (lg_net_on_relay(reps[i].net, relay), 0) ||
		    lg_net_register(reps[i].net, reps[i].srv) != CM_OK ||
		    cm_rpc_server_start(reps[i].srv, &reps[i].port, err, sizeof(err)) != CM_OK)
			return -1;
		snprintf(addr_buf[i], sizeof(addr_buf[i]), "127.0.0.1:%d", reps[i].port);
	}
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++)
			if (i != j && lg_net_set_address(reps[i].net, (uint32_t)j, addr_buf[j]) != CM_OK)
				return -1;
	return 0;
}

static void test_delivery_and_sender(void)
{
	lg_net_send(reps[0].net, 2, (const uint8_t *)"vote", 4);
	TAP_EQ(wait_got(&reps[2], 1), 1);
	TAP_EQ(reps[2].last_from, 0);
	TAP_CHECK(reps[2].last_len == 4 && memcmp(reps[2].last, "vote", 4) == 0);
	TAP_EQ(reps[1].got, 0);
	/* broadcast reaches every other replica, not the sender */
	lg_net_send(reps[1].net, -1, (const uint8_t *)"proposal", 8);
	TAP_EQ(wait_got(&reps[0], 1), 1);
	TAP_EQ(wait_got(&reps[2], 2), 2);
	TAP_EQ(reps[0].last_from, 1);
	TAP_EQ(reps[2].last_from, 1);
	TAP_EQ(reps[1].got, 0);
}

static int raw_deliver(int to, const char *chain, uint32_t sender, const cm_keypair *signer,
		       const uint8_t *msg, size_t len, cm_rpc_status *st)
{
	cm_rpc_client *c = NULL;
	char err[128];
	cm_rpc_client_opts o = {.target = addr_buf[to]};
	cm_rpc_client_new(&o, &c, err, sizeof(err));
	/* sign as lg_net does, but with the given key and claimed sender */
	cm_hasher h;
	uint8_t zero = 0, s[4] = {0, 0, 0, (uint8_t)sender}, d[CM_HASH_BYTES], sig[CM_SIG_BYTES];
	cm_hasher_init(&h, CM_DOM_CONSENSUS);
	cm_hasher_update(&h, chain, strlen(chain));
	cm_hasher_update(&h, &zero, 1);
	cm_hasher_update(&h, s, 4);
	cm_hasher_update(&h, msg, len);
	cm_hasher_final(&h, d);
	cm_sign(signer, sig, d, sizeof(d));
	Muri__V1__ConsensusEnvelope env = MURI__V1__CONSENSUS_ENVELOPE__INIT;
	env.chain_id = (char *)chain;
	env.sender = sender;
	env.message.data = (uint8_t *)msg;
	env.message.len = len;
	env.signature.data = sig;
	env.signature.len = sizeof(sig);
	ProtobufCMessage *resp = NULL;
	int rc = cm_rpc_unary(c, "/muri.v1.Consensus/Deliver", &env.base, &muri__v1__consensus_ack__descriptor,
			      &resp, 5000, st);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	cm_rpc_client_free(c);
	return rc;
}

static void test_forgeries_refused(void)
{
	cm_rpc_status st;
	int before = reps[2].got;
	/* the right key and sender: accepted */
	TAP_EQ(raw_deliver(2, "test-chain", 1, &keys[1], (const uint8_t *)"ok", 2, &st), CM_OK);
	/* replica 0 claims to be replica 1 */
	TAP_CHECK(raw_deliver(2, "test-chain", 1, &keys[0], (const uint8_t *)"forged", 6, &st) != CM_OK);
	TAP_EQ(st.code, GRPC_STATUS_UNAUTHENTICATED);
	TAP_STREQ(st.message, "signature: does not verify for the sender");
	TAP_CHECK(raw_deliver(2, "other-chain", 1, &keys[1], (const uint8_t *)"x", 1, &st) != CM_OK);
	TAP_EQ(st.code, GRPC_STATUS_INVALID_ARGUMENT);
	TAP_STREQ(st.message, "chain_id: not this chain");
	TAP_CHECK(raw_deliver(2, "test-chain", 7, &keys[1], (const uint8_t *)"x", 1, &st) != CM_OK);
	TAP_STREQ(st.message, "sender: not a peer replica index");
	uint8_t big[2000] = {0};
	TAP_CHECK(raw_deliver(2, "test-chain", 1, &keys[1], big, sizeof(big), &st) != CM_OK);
	TAP_STREQ(st.message, "message: empty or larger than the limit");
	TAP_EQ(reps[2].got, before + 1);
	lg_net_stats s;
	lg_net_get_stats(reps[2].net, &s);
	TAP_EQ(s.rejected, 4);
}

static void test_fetch(void)
{
	Muri__V1__FetchBlocksRequest req = MURI__V1__FETCH_BLOCKS_REQUEST__INIT;
	req.chain_id = "test-chain";
	req.from_height = 40;
	req.max_blocks = 3;
	Muri__V1__FetchBlocksResponse *resp = NULL;
	TAP_EQ(lg_net_fetch(reps[0].net, 1, &req, &resp, 5000), CM_OK);
	TAP_CHECK(resp && resp->n_blocks == 3 && resp->blocks[2].data[0] == 42);
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	req.max_blocks = 0;
	resp = NULL;
	TAP_EQ(lg_net_fetch(reps[0].net, 1, &req, &resp, 5000), CM_ERR_INVALID);
	TAP_EQ(lg_net_fetch(reps[0].net, 0, &req, &resp, 5000), CM_ERR_INVALID); /* self */
}

static void test_unreachable_peer_drops_not_blocks(void)
{
	/* stop replica 1's server: sends to it fail or queue, and sends to
	 * replica 2 keep flowing */
	cm_rpc_server_shutdown(reps[1].srv, 0);
	int before = reps[2].got;
	int arrived = 0;
	for (int i = 0; i < 20; i++) {
		lg_net_send(reps[0].net, -1, (const uint8_t *)"tick", 4);
		arrived += wait_got(&reps[2], before + i + 1) == before + i + 1;
	}
	TAP_EQ(arrived, 20);
	for (int i = 0; i < 100; i++) {
		lg_net_stats s;
		lg_net_get_stats(reps[0].net, &s);
		if (s.send_failed + s.dropped >= 20)
			break;
		usleep(20000);
	}
	lg_net_stats s;
	lg_net_get_stats(reps[0].net, &s);
	TAP_CHECK(s.send_failed + s.dropped >= 20);
}

static int relay_seen(struct replica *r, int n)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&r->mu);
		int got = r->relay_txs;
		pthread_mutex_unlock(&r->mu);
		if (got >= n || got < 0)
			return got;
		usleep(10000);
	}
	return -1;
}

static void make_rtx(uint8_t body[16], uint8_t sig[64], int i, ProtobufCBinaryData *b, ProtobufCBinaryData *s)
{
	memset(body, 0, 16);
	memcpy(body, &i, sizeof(i));
	memset(sig, body[0], 64); /* the receiver checks that it came as sent */
	b->data = body;
	b->len = 16;
	s->data = sig;
	s->len = 64;
}

static void test_relay_batches(void)
{
	for (int i = 0; i < 10; i++) {
		uint8_t body[16], sig[64];
		ProtobufCBinaryData b, s;
		make_rtx(body, sig, i + 1, &b, &s);
		lg_net_relay(reps[0].net, &b, &s);
	}
	TAP_EQ(relay_seen(&reps[1], 10), 10);
	TAP_EQ(relay_seen(&reps[2], 10), 10);
	int first = 1;
	TAP_CHECK(memcmp(reps[1].relay_first, &first, sizeof(first)) == 0);
	TAP_EQ(reps[1].relay_from, 0);
	TAP_CHECK(reps[1].relay_biggest >= 1 && reps[1].relay_biggest <= 4); /* relay_batch */
	TAP_CHECK(reps[1].relay_calls >= 3);
	TAP_EQ(reps[0].relay_txs, 0); /* never to itself */
	/* the sender counts a batch once its call returns, which may come after
	 * the receivers have taken the batch: wait for the count */
	lg_net_stats st;
	for (int i = 0; i < 500; i++) {
		lg_net_get_stats(reps[0].net, &st);
		if (st.relayed_txs >= 20)
			break;
		usleep(10000);
	}
	TAP_EQ(st.relayed_txs, 20);
	TAP_EQ(st.relay_dropped, 0);
}

static void test_relay_forgeries_refused(void)
{
	cm_rpc_client *c = NULL;
	char err[128];
	cm_rpc_client_opts o = {.target = addr_buf[2]};
	cm_rpc_client_new(&o, &c, err, sizeof(err));
	uint8_t body[16], sig[64], rsig[CM_SIG_BYTES] = {0};
	Muri__V1__SignedTransaction stx = MURI__V1__SIGNED_TRANSACTION__INIT, *ptr = &stx;
	make_rtx(body, sig, 99, &stx.body, &stx.signature);
	Muri__V1__RelayRequest req = MURI__V1__RELAY_REQUEST__INIT;
	req.chain_id = "test-chain";
	req.sender = 1;
	req.txs = &ptr;
	req.n_txs = 1;
	req.signature.data = rsig;
	req.signature.len = sizeof(rsig);
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	int before = reps[2].relay_txs;
	TAP_CHECK(cm_rpc_unary(c, "/muri.v1.Consensus/Relay", &req.base, &muri__v1__consensus_ack__descriptor, &resp,
			       5000, &st) != CM_OK);
	TAP_EQ(st.code, GRPC_STATUS_UNAUTHENTICATED);
	TAP_STREQ(st.message, "signature: does not verify for the sender");
	req.n_txs = 0;
	TAP_CHECK(cm_rpc_unary(c, "/muri.v1.Consensus/Relay", &req.base, &muri__v1__consensus_ack__descriptor, &resp,
			       5000, &st) != CM_OK);
	TAP_EQ(st.code, GRPC_STATUS_INVALID_ARGUMENT);
	TAP_STREQ(st.message, "txs: empty or more than LG_NET_RELAY_MAX");
	TAP_EQ(reps[2].relay_txs, before);
	cm_rpc_client_free(c);
}

/* A stopped transport queues but never sends: the queue's bound shows. */
static void test_relay_queue_bound(void)
{
	lg_net *net = NULL;
	lg_net_opts no = {.chain_id = "test-chain", .self = 0, .n = N, .pubkeys = (const uint8_t(*)[CM_PK_BYTES])pubs,
			  .key = &keys[0], .queue_max = 4, .message_max = 1024, .send_timeout_ms = 2000,
			  .relay_queue_max = 8, .relay_batch = 4};
	TAP_EQ(lg_net_new(&no, deliver, fetch, &reps[0], &net), CM_OK);
	if (!net)
		return;
	lg_net_stop(net);
	for (int i = 0; i < 20; i++) {
		uint8_t body[16], sig[64];
		ProtobufCBinaryData b, s;
		make_rtx(body, sig, i, &b, &s);
		lg_net_relay(net, &b, &s);
	}
	lg_net_stats st;
	lg_net_get_stats(net, &st);
	TAP_EQ(st.relay_queued, 2 * 8);       /* two peers, 8 each */
	TAP_EQ(st.relay_dropped, 2 * (20 - 8));
	lg_net_free(net); /* frees what is queued */
}

int main(void)
{
	cm_crypto_init();
	if (setup() != 0) {
		printf("Bail out! setup failed\n");
		return 1;
	}
	TAP_RUN(test_delivery_and_sender);
	TAP_RUN(test_forgeries_refused);
	TAP_RUN(test_fetch);
	TAP_RUN(test_relay_batches);
	TAP_RUN(test_relay_forgeries_refused);
	TAP_RUN(test_relay_queue_bound);
	TAP_RUN(test_unreachable_peer_drops_not_blocks);
	for (int i = 0; i < N; i++) {
		lg_net_free(reps[i].net);
		cm_rpc_server_free(reps[i].srv);
		cm_keypair_wipe(&keys[i]);
	}
	return tap_done();
}
