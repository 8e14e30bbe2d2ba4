/* The follower against real replicas: 4 muri-ledger processes on loopback,
 * transfers committing, a cm_follower reading them. Killing the replica it
 * follows makes it switch with no gap and no duplicate; stopping it and
 * starting again from the last (height, hash, state root) it handed out
 * resumes there; every committed transaction is seen exactly once; every
 * block's effects content is recomputed into the state root chain (no
 * refusal from honest replicas) and certified pins vouch for it
 * (verified_through advances to within a few heights of the tip). GetBlock's header_bytes and
 * payload re-hash to Block.hash and its commit_qc verifies. */
#include "tap.h"
#include "tnet.h"
#include "cm_err.h"
#include "cm_follower.h"
#include "cm_rpc.h"
#include "lg_tx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define N 4
#define CHAIN "follow-net"
#define MAX_TX 4096
#define WAIT_MS 90000 /* liveness bound only: a healthy run takes seconds */

static cm_keypair sender, receiver;
static tnet net;
static cm_rpc_client *clients[N];

/* what the followers saw */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t seen_height;          /* last height handed out */
static uint8_t seen_hash[CM_HASH_BYTES];
static uint8_t seen_root[CM_HASH_BYTES]; /* effects.state_root of the last block handed out */
static int order_errors, effects_errors;
static uint8_t (*seen_txs)[CM_HASH_BYTES];
static size_t nseen;
/* what was submitted */
static uint8_t sent_txs[MAX_TX][CM_HASH_BYTES];
static atomic_size_t nsent;
static atomic_int submit_stop;

static int on_block(void *arg, const Muri__V1__Block *b)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	if (!b->header || b->header->height != seen_height + 1 || b->header->parent_hash.len != CM_HASH_BYTES ||
	    memcmp(b->header->parent_hash.data, seen_hash, CM_HASH_BYTES) != 0) {
		printf("# block %llu after %llu: gap, duplicate or broken link\n",
		       b->header ? (unsigned long long)b->header->height : 0ull, (unsigned long long)seen_height);
		order_errors++;
	}
	if (!b->effects || b->effects->height != b->header->height || b->effects->state_root.len != CM_HASH_BYTES ||
	    b->effects->write_set_hash.len != CM_HASH_BYTES ||
	    b->effects->n_outcomes != b->n_txs) /* the state machine's effects: one outcome per tx */
		effects_errors++;
	else
		memcpy(seen_root, b->effects->state_root.data, CM_HASH_BYTES);
	seen_height = b->header ? b->header->height : seen_height;
	memcpy(seen_hash, b->hash.data, CM_HASH_BYTES);
	for (size_t i = 0; i < b->n_txs; i++) {
		seen_txs = realloc(seen_txs, (nseen + 1) * CM_HASH_BYTES);
		lg_tx_hash(b->txs[i]->body.data, b->txs[i]->body.len, seen_txs[nseen++]);
	}
	pthread_mutex_unlock(&mu);
	return 0;
}

static uint64_t seen(void)
{
	pthread_mutex_lock(&mu);
	uint64_t h = seen_height;
	pthread_mutex_unlock(&mu);
	return h;
}

/* Transfers from one sender, each waited for, to replicas 1..3 in turn
 * (replica 0 is the one killed). */
static void *submit_main(void *arg)
{
	(void)arg;
	for (uint64_t nonce = 0; !atomic_load(&submit_stop) && nonce < MAX_TX; nonce++) {
		Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
		Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
		t.chain_id = CHAIN;
		t.sender.data = sender.pk;
		t.sender.len = CM_PK_BYTES;
		t.nonce = nonce;
		t.fee = 1;
		tr.to.data = receiver.pk;
		tr.to.len = CM_PK_BYTES;
		tr.amount = 1;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
		t.transfer = &tr;
		Muri__V1__SignedTransaction stx = MURI__V1__SIGNED_TRANSACTION__INIT;
		uint8_t hash[CM_HASH_BYTES];
		if (lg_tx_sign(&t, &sender, &stx, hash) != CM_OK)
			break;
		Muri__V1__SubmitRequest req = MURI__V1__SUBMIT_REQUEST__INIT;
		req.tx = &stx;
		req.wait_commit = 1;
		req.timeout_ms = 20000;
		int committed = 0;
		for (int attempt = 0; attempt < 6 && !committed; attempt++) {
			ProtobufCMessage *resp = NULL;
			cm_rpc_status st;
			int r = 1 + (int)((nonce + (uint64_t)attempt) % 3);
			if (cm_rpc_unary(clients[r], "/muri.v1.Ledger/SubmitTransaction", &req.base,
					 &muri__v1__submit_response__descriptor, &resp, 25000, &st) == CM_OK) {
				Muri__V1__SubmitResponse *sr = (Muri__V1__SubmitResponse *)resp;
				committed = sr->state == MURI__V1__TX_STATE__TX_COMMITTED;
				protobuf_c_message_free_unpacked(resp, NULL);
			} else if (st.code == GRPC_STATUS_ALREADY_EXISTS) {
				committed = 1;
			}
		}
		free(stx.body.data);
		free(stx.signature.data);
		if (!committed) {
			printf("# transaction %llu did not commit\n", (unsigned long long)nonce);
			break;
		}
		memcpy(sent_txs[atomic_load(&nsent)], hash, CM_HASH_BYTES);
		atomic_fetch_add(&nsent, 1);
	}
	return NULL;
}

static int wait_height(cm_follower *f, uint64_t h)
{
	long long until = tproc_now_ms() + WAIT_MS;
	while (seen() < h && tproc_now_ms() < until) {
		cm_follower_stats st;
		cm_follower_get_stats(f, &st);
		if (!st.running)
			return -1;
		usleep(20000);
	}
	return seen() >= h ? 0 : -1;
}

/* Waits until at least k transactions committed (the submitter is alive). */
static void wait_sent(size_t k)
{
	long long until = tproc_now_ms() + WAIT_MS;
	while (atomic_load(&nsent) < k && tproc_now_ms() < until)
		usleep(20000);
	TAP_CHECK(atomic_load(&nsent) >= k);
}

static cm_follower *follow_from(uint64_t height, const uint8_t *hash, const uint8_t *root)
{
	cm_follower_opts o = {
		.genesis = {.chain_id = CHAIN, .n = N, .pks = (const uint8_t(*)[CM_PK_BYTES])net.pks, .addrs = net.addrp},
		.start_height = height,
		.start_hash = hash,
		.start_root = root,
		.on_block = on_block,
		.stall_ms = 3000,
		.refuse_ms = 60000,
		.retry_min_ms = 50,
		.retry_max_ms = 1000,
	};
	cm_follower *f = NULL;
	char err[256];
	int rc = cm_follower_start(&o, &f, err, sizeof(err));
	if (rc != CM_OK)
		printf("# follower: %s\n", err);
	return f;
}

static int verify_sig(void *ctx, uint32_t r, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES])
{
	(void)ctx;
	return r < N ? cm_verify(net.pks[r], sig, d, CM_HASH_BYTES) : CM_ERR_VERIFY;
}

/* GetBlock from a client's side: re-hash and verify the commit QC by hand. */
static void check_get_block(int r, uint64_t height)
{
	Muri__V1__BlockRequest req = MURI__V1__BLOCK_REQUEST__INIT;
	req.height = height;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	TAP_EQ(cm_rpc_unary(clients[r], "/muri.v1.Ledger/GetBlock", &req.base, &muri__v1__block__descriptor, &resp,
			    10000, &st), CM_OK);
	if (!resp)
		return;
	Muri__V1__Block *b = (Muri__V1__Block *)resp;
	size_t len = b->header_bytes.len + b->payload.len;
	uint8_t *enc = malloc(len);
	memcpy(enc, b->header_bytes.data, b->header_bytes.len);
	memcpy(enc + b->header_bytes.len, b->payload.data, b->payload.len);
	cm_block d;
	TAP_EQ(cm_block_decode(enc, len, &d), CM_OK);
	TAP_EQ(d.height, height);
	TAP_CHECK(b->hash.len == CM_HASH_BYTES && memcmp(d.hash, b->hash.data, CM_HASH_BYTES) == 0);
	TAP_CHECK(b->commit_qc != NULL);
	if (b->commit_qc) {
		cm_qc q;
		memset(&q, 0, sizeof(q));
		q.view = b->commit_qc->view;
		TAP_EQ(b->commit_qc->block_hash.len, CM_HASH_BYTES);
		memcpy(q.block_hash, b->commit_qc->block_hash.data, CM_HASH_BYTES);
		TAP_CHECK(memcmp(q.block_hash, d.hash, CM_HASH_BYTES) == 0);
		TAP_EQ(q.view, d.view);
		for (size_t i = 0; i < b->commit_qc->n_signers && i < b->commit_qc->n_signatures; i++)
			for (int k = 0; k < N; k++)
				if (b->commit_qc->signers[i].len == CM_PK_BYTES &&
				    memcmp(b->commit_qc->signers[i].data, net.pks[k], CM_PK_BYTES) == 0 &&
				    b->commit_qc->signatures[i].len == CM_SIG_BYTES) {
					q.signers |= 1ull << k;
					memcpy(q.sigs[k], b->commit_qc->signatures[i].data, CM_SIG_BYTES);
				}
		uint8_t tag[CM_HASH_BYTES];
		cm_chain_tag(tag, CHAIN);
		TAP_CHECK(cm_qc_count(&q) >= 3);
		TAP_EQ(cm_qc_verify(&q, tag, N, 1, verify_sig, NULL), CM_OK);
	}
	TAP_CHECK(b->effects && b->effects->height == height && b->effects->state_root.len == CM_HASH_BYTES);
	free(enc);
	protobuf_c_message_free_unpacked(resp, NULL);
}

static int start_net(const char *dir)
{
	cm_keypair_generate(&sender);
	cm_keypair_generate(&receiver);
	if (tnet_start(&net, dir, "ledger-follow", CHAIN, N, sender.pk, 1000000000) != 0)
		return -1;
	for (int i = 0; i < N; i++) {
		char err[256];
		cm_rpc_client_opts co = {.target = net.addrs[i]};
		if (cm_rpc_client_new(&co, &clients[i], err, sizeof(err)) != CM_OK)
			return -1;
	}
	return 0;
}

static void test_follow(void)
{
	cm_block g;
	cm_block_genesis(&g);
	memcpy(seen_hash, g.hash, CM_HASH_BYTES); /* block 1's parent */
	char dir[] = "/tmp/muri-follow-XXXXXX";
	TAP_CHECK(mkdtemp(dir) != NULL);
	int ok = start_net(dir) == 0;
	TAP_CHECK(ok);
	pthread_t submitter;
	if (ok)
		pthread_create(&submitter, NULL, submit_main, NULL);
	cm_follower *f = ok ? follow_from(0, NULL, NULL) : NULL; /* root_0 from block 1's body */
	TAP_CHECK(f != NULL);
	cm_follower_stats st;
	if (f) {
		/* following replica 0 (the first in genesis order) */
		wait_sent(5);
		TAP_EQ(wait_height(f, 6), 0);
		cm_follower_get_stats(f, &st);
		TAP_EQ(st.replica, 0);
		uint64_t before = seen();
		check_get_block(1, before);
		/* kill it: the follower moves on with no gap and no duplicate */
		tproc_stop(&net.procs[0], SIGKILL, 5000);
		wait_sent(atomic_load(&nsent) + 5);
		TAP_EQ(wait_height(f, before + 8), 0);
		cm_follower_get_stats(f, &st);
		TAP_CHECK(st.switches >= 1);
		TAP_CHECK(st.replica != 0);
		TAP_EQ(st.refusals, 0);
		printf("# followed to %llu through %llu switches\n", (unsigned long long)st.height,
		       (unsigned long long)st.switches);
		/* stop from this thread, then resume from the last height handed out */
		cm_follower_stop(f);
		TAP_EQ(cm_follower_wait(f, 10000), 1);
		cm_follower_get_stats(f, &st);
		TAP_EQ(st.error, CM_OK);
		TAP_EQ(st.height, seen());
		uint64_t last = seen();
		uint8_t last_hash[CM_HASH_BYTES], last_root[CM_HASH_BYTES];
		memcpy(last_hash, st.hash, CM_HASH_BYTES);
		memcpy(last_root, st.root, CM_HASH_BYTES);
		TAP_CHECK(memcmp(last_hash, seen_hash, CM_HASH_BYTES) == 0);
		TAP_CHECK(memcmp(last_root, seen_root, CM_HASH_BYTES) == 0);
		/* pins vouched for the recomputed effects up to near the tip */
		printf("# verified_through %llu at height %llu\n", (unsigned long long)st.verified_through,
		       (unsigned long long)st.height);
		TAP_CHECK(st.verified_through >= 1 && st.verified_through + 8 >= st.height);
		cm_follower_free(f);
		f = follow_from(last, last_hash, NULL);
		TAP_CHECK(f == NULL); /* resuming needs the persisted root */
		cm_follower_free(f);
		f = follow_from(last, last_hash, last_root);
		TAP_CHECK(f != NULL);
		if (f) {
			TAP_EQ(wait_height(f, last + 6), 0);
			cm_follower_get_stats(f, &st);
			TAP_EQ(st.refusals, 0);
			TAP_CHECK(st.verified_through > last);
		}
		wait_sent(atomic_load(&nsent) + 5);
		atomic_store(&submit_stop, 1);
		pthread_join(submitter, NULL);
		ok = 0;
		/* every committed transaction, once: wait until the last one is out */
		size_t ns = atomic_load(&nsent);
		TAP_CHECK(ns > 0);
		long long until = tproc_now_ms() + WAIT_MS;
		int all = 0;
		while (!all && tproc_now_ms() < until) {
			pthread_mutex_lock(&mu);
			all = 1;
			for (size_t i = 0; i < ns && all; i++) {
				size_t k = 0;
				for (size_t j = 0; j < nseen; j++)
					k += memcmp(seen_txs[j], sent_txs[i], CM_HASH_BYTES) == 0;
				if (k > 1)
					printf("# transaction %zu seen %zu times\n", i, k);
				all = k == 1;
			}
			pthread_mutex_unlock(&mu);
			if (!all)
				usleep(50000);
		}
		TAP_CHECK(all);
		printf("# %zu transactions committed, %zu seen by the followers\n", ns, nseen);
		cm_follower_free(f);
		f = NULL;
	}
	if (ok) {
		atomic_store(&submit_stop, 1);
		pthread_join(submitter, NULL);
	}
	TAP_EQ(order_errors, 0);
	TAP_EQ(effects_errors, 0);
	int failed = tap_case_failed;
	tnet_stop(&net, failed);
	for (int i = 0; i < N; i++)
		cm_rpc_client_free(clients[i]);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(seen_txs);
}

int main(void)
{
	cm_crypto_init();
	signal(SIGPIPE, SIG_IGN);
	TAP_RUN(test_follow);
	return tap_done();
}
