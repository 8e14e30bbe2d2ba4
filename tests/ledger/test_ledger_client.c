/* The ledger client against 4 real muri-ledger replicas: transfers it signs
 * commit and move balances; concurrent submitters get consecutive nonces;
 * a second client with the same key makes the first one's nonce stale and it
 * recovers; refusals come back with the ledger's reason and leave no nonce
 * gap; with the first replica killed, submissions go through the others; two
 * clients of one key racing for a nonce both commit. And the chain's height
 * as f + 1 replicas vouch for it, against fake replicas, one of them lying. */
#include "tap.h"
#include "tnet.h"
#include "cm_err.h"
#include "cm_ledger_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define N 4
#define CHAIN "lclient-net"
#define THREADS 4
#define PER_THREAD 5

static cm_keypair sender, receiver;
static tnet net;

static int start_net(const char *dir)
{
	cm_keypair_generate(&sender);
	cm_keypair_generate(&receiver);
	if (tnet_start(&net, dir, "ledger-lclient", CHAIN, N, sender.pk, 1000000000) != 0)
		return -1;
	return 0;
}

static cm_ledger_client *client(const char *const *a, size_t n)
{
	cm_ledger_client_opts o = {.chain_id = CHAIN, .n = n, .addrs = a, .key = &sender, .fee = 1,
				   .call_timeout_ms = 3000, .commit_timeout_ms = 30000};
	cm_ledger_client *c = NULL;
	char err[256];
	if (cm_ledger_client_new(&o, &c, err, sizeof(err)) != CM_OK)
		printf("# client: %s\n", err);
	return c;
}

static int transfer(cm_ledger_client *c, uint64_t amount, unsigned flags, cm_ledger_result *res, char *err,
		    size_t errlen)
{
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
	tr.to.data = receiver.pk;
	tr.to.len = CM_PK_BYTES;
	tr.amount = amount;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	return cm_ledger_client_submit(c, &t, flags, res, err, errlen);
}

/* An account's (balance, nonce) as the ledger reports it; 0, 0 when unknown. */
static void account(cm_ledger_client *c, const uint8_t *pk, uint64_t *balance, uint64_t *nonce)
{
	Muri__V1__AccountRequest req = MURI__V1__ACCOUNT_REQUEST__INIT;
	req.address.data = (uint8_t *)pk;
	req.address.len = CM_PK_BYTES;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	*balance = *nonce = 0;
	if (cm_ledger_client_call(c, "/muri.v1.Ledger/GetAccount", &req.base, &muri__v1__account__descriptor, &resp,
				  &st) == CM_OK) {
		*balance = ((Muri__V1__Account *)resp)->balance;
		*nonce = ((Muri__V1__Account *)resp)->nonce;
		protobuf_c_message_free_unpacked(resp, NULL);
	} else {
		printf("# GetAccount: %s: %s\n", cm_rpc_code_name(st.code), st.message);
	}
}

static cm_ledger_client *shared;
static int thread_failures;
static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;

static void *submitter(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		cm_ledger_result res;
		char err[256];
		int rc = transfer(shared, 1, CM_LC_WAIT, &res, err, sizeof(err));
		if (rc != CM_OK || res.state != MURI__V1__TX_STATE__TX_COMMITTED) {
			printf("# concurrent transfer: %s\n", err);
			pthread_mutex_lock(&fmu);
			thread_failures++;
			pthread_mutex_unlock(&fmu);
		}
	}
	return NULL;
}

static void test_options(void)
{
	cm_ledger_client *c = NULL;
	char err[256] = "";
	cm_ledger_client_opts o = {.chain_id = CHAIN, .n = 0, .addrs = net.addrp, .key = &sender};
	TAP_EQ(cm_ledger_client_new(&o, &c, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "replicas") != NULL);
	o.n = 1;
	o.chain_id = "";
	TAP_EQ(cm_ledger_client_new(&o, &c, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "chain_id") != NULL);
	o.chain_id = CHAIN;
	o.key = NULL;
	TAP_EQ(cm_ledger_client_new(&o, &c, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "key") != NULL);
	TAP_CHECK(c == NULL);
}

/* One of two clients of the same key racing: its transfer, waited for. */
struct racer {
	cm_ledger_client *c;
	uint64_t amount;
	pthread_barrier_t *go;
	int rc;
	uint64_t nonce;
	char err[256];
};

static void *race(void *arg)
{
	struct racer *r = arg;
	cm_ledger_result res;
	pthread_barrier_wait(r->go);
	r->rc = transfer(r->c, r->amount, CM_LC_WAIT, &res, r->err, sizeof(r->err));
	r->nonce = res.nonce;
	return NULL;
}

static void test_client(void)
{
	char dir[] = "/tmp/muri-lclient-XXXXXX";
	TAP_CHECK(mkdtemp(dir) != NULL);
	int ok = start_net(dir) == 0;
	TAP_CHECK(ok);
	cm_ledger_client *c = ok ? client(net.addrp, N) : NULL;
	TAP_CHECK(c != NULL);
	if (c) {
		cm_ledger_result res;
		char err[256] = "";
		uint64_t bal, nonce;
		/* one transfer, waited for */
		TAP_EQ(transfer(c, 7, CM_LC_WAIT, &res, err, sizeof(err)), CM_OK);
		TAP_EQ(res.state, MURI__V1__TX_STATE__TX_COMMITTED);
		TAP_CHECK(res.height > 0);
		TAP_EQ(res.nonce, 0);
		account(c, receiver.pk, &bal, &nonce);
		TAP_EQ(bal, 7);
		/* concurrent submitters: consecutive nonces, all commit */
		shared = c;
		pthread_t th[THREADS];
		for (int i = 0; i < THREADS; i++)
			pthread_create(&th[i], NULL, submitter, NULL);
		for (int i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
		TAP_EQ(thread_failures, 0);
		account(c, receiver.pk, &bal, &nonce);
		TAP_EQ(bal, 7 + THREADS * PER_THREAD);
		account(c, sender.pk, &bal, &nonce);
		TAP_EQ(nonce, 1 + THREADS * PER_THREAD);
		int known = 0;
		TAP_EQ(cm_ledger_client_next_nonce(c, &known), 1 + THREADS * PER_THREAD);
		TAP_EQ(known, 1);
		/* another client with the same key: c's nonce goes stale and recovers */
		cm_ledger_client *other = client(net.addrp, N);
		TAP_CHECK(other != NULL);
		if (other) {
			/* amounts differ from c's, so that no body is byte-identical */
			TAP_EQ(transfer(other, 2, CM_LC_WAIT, &res, err, sizeof(err)), CM_OK);
			TAP_EQ(transfer(other, 2, CM_LC_WAIT, &res, err, sizeof(err)), CM_OK);
			TAP_EQ(res.nonce, 2 + THREADS * PER_THREAD);
			cm_ledger_client_free(other);
		}
		TAP_EQ(transfer(c, 1, CM_LC_WAIT, &res, err, sizeof(err)), CM_OK);
		TAP_EQ(res.nonce, 3 + THREADS * PER_THREAD);
		TAP_EQ(res.state, MURI__V1__TX_STATE__TX_COMMITTED);
		/* refusals: the ledger's reason, no nonce used */
		TAP_EQ(transfer(c, 5000000000ull, CM_LC_WAIT, &res, err, sizeof(err)),
		       cm_rpc_code_to_err(GRPC_STATUS_FAILED_PRECONDITION));
		TAP_EQ(res.code, GRPC_STATUS_FAILED_PRECONDITION);
		TAP_CHECK(strstr(err, "insufficient balance") != NULL);
		printf("# refusal: %s\n", err);
		Muri__V1__Transaction empty = MURI__V1__TRANSACTION__INIT;
		TAP_EQ(cm_ledger_client_submit(c, &empty, 0, &res, err, sizeof(err)), CM_ERR_INVALID);
		TAP_CHECK(strstr(err, "payload") != NULL);
		/* no wait: accepted as pending, then waited for by hash */
		TAP_EQ(transfer(c, 1, 0, &res, err, sizeof(err)), CM_OK);
		TAP_EQ(res.nonce, 4 + THREADS * PER_THREAD);
		uint8_t h[CM_HASH_BYTES];
		memcpy(h, res.tx_hash, CM_HASH_BYTES);
		TAP_EQ(cm_ledger_client_wait(c, h, 0, &res, err, sizeof(err)), CM_OK);
		TAP_EQ(res.state, MURI__V1__TX_STATE__TX_COMMITTED);
		/* the first replica dies: the others take the transactions */
		tproc_stop(&net.procs[0], SIGKILL, 5000);
		for (int i = 0; i < 3; i++) {
			TAP_EQ(transfer(c, 1, CM_LC_WAIT, &res, err, sizeof(err)), CM_OK);
			if (res.state != MURI__V1__TX_STATE__TX_COMMITTED)
				printf("# after the kill: %s\n", err);
		}
		/* a fresh client whose first address is the dead replica */
		cm_ledger_client *late = client(net.addrp, N);
		TAP_CHECK(late != NULL);
		if (late) {
			TAP_EQ(transfer(late, 1, CM_LC_WAIT, &res, err, sizeof(err)), CM_OK);
			TAP_EQ(res.nonce, 8 + THREADS * PER_THREAD);
			cm_ledger_client_free(late);
		}
		account(c, receiver.pk, &bal, &nonce);
		TAP_EQ(bal, 7 + THREADS * PER_THREAD + 4 + 1 + 1 + 3 + 1);
		/* two fresh clients of one key at once, each asking another replica
		 * first: both read the same nonce, each replica admits its own, one
		 * commits and the ledger drops the other; its client must sign
		 * again with a fresh nonce rather than wait out its timeout (the
		 * devnet's demo transfer raced the gateway's Approve this way) */
		uint64_t before = bal, same = 0;
		const char *fwd[] = {net.addrp[1], net.addrp[2], net.addrp[3]};
		const char *rev[] = {net.addrp[3], net.addrp[2], net.addrp[1]};
		for (int round = 0; round < 4; round++) {
			pthread_barrier_t go;
			pthread_barrier_init(&go, NULL, 2);
			struct racer rr[2] = {{.c = client(fwd, 3), .amount = 100, .go = &go},
					      {.c = client(rev, 3), .amount = 1000, .go = &go}};
			pthread_t rt[2];
			for (int i = 0; i < 2; i++)
				pthread_create(&rt[i], NULL, race, &rr[i]);
			for (int i = 0; i < 2; i++)
				pthread_join(rt[i], NULL);
			pthread_barrier_destroy(&go);
			for (int i = 0; i < 2; i++) {
				TAP_EQ(rr[i].rc, CM_OK);
				if (rr[i].rc != CM_OK)
					printf("# racing client %d: %s\n", i, rr[i].err);
				cm_ledger_client_free(rr[i].c);
			}
			TAP_CHECK(rr[0].nonce != rr[1].nonce);
			same += rr[0].nonce + 1 == rr[1].nonce || rr[1].nonce + 1 == rr[0].nonce;
		}
		/* c reads from a replica of its own, which may be a block behind
		 * the racers' last commit: read until it catches up (or 10 s) */
		for (int i = 0; i < 100; i++) {
			account(c, receiver.pk, &bal, &nonce);
			if (bal >= before + 4 * 1100)
				break;
			usleep(100000);
		}
		TAP_EQ(bal, before + 4 * 1100);
		printf("# 4 rounds of two racing clients of one key: their nonces adjacent in %llu\n",
		       (unsigned long long)same);
		cm_ledger_client_free(c);
	}
	int failed = tap_case_failed;
	tnet_stop(&net, failed);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

/* ---- the chain's height as f + 1 replicas vouch for it ----
 * Four servers answering Status with a height each: one lies high, one
 * answers without a height, some are stopped. */
struct fake_status {
	cm_rpc_server *srv;
	int port;
	const char *height; /* NULL: no "height" entry */
};

static int h_fake_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
	struct fake_status *f = arg;
	(void)req;
	Muri__V1__StatusResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__StatusResponse__DetailsEntry **d = cm_rpc_alloc(call, sizeof(*d));
	Muri__V1__StatusResponse__DetailsEntry *e = cm_rpc_alloc(call, sizeof(*e));
	if (!r || !d || !e)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__status_response__init(r);
	muri__v1__status_response__details_entry__init(e);
	r->service = "ledger";
	e->key = f->height ? "height" : "view";
	e->value = f->height ? (char *)f->height : "7";
	d[0] = e;
	r->details = d;
	r->n_details = 1;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static void test_height(void)
{
	struct fake_status fs[N] = {{.height = "12"}, {.height = "11"}, {.height = "1000000"}, {.height = "10"}};
	char addrs[N][32], err[512];
	const char *ap[N];
	cm_rpc_handler h = {"Status", h_fake_status, NULL};
	for (int i = 0; i < N; i++) {
		cm_rpc_server_opts o = {.listen = "127.0.0.1:0", .workers = 1, .requests_per_worker = 1, .max_streams = 1};
		TAP_EQ(cm_rpc_server_new(&o, &fs[i].srv, err, sizeof(err)), CM_OK);
		TAP_EQ(cm_rpc_server_add(fs[i].srv, &muri__v1__ledger__descriptor, &h, 1, &fs[i]), CM_OK);
		TAP_EQ(cm_rpc_server_start(fs[i].srv, &fs[i].port, err, sizeof(err)), CM_OK);
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", fs[i].port);
		ap[i] = addrs[i];
	}
	cm_ledger_client_opts o = {.chain_id = CHAIN, .n = N, .addrs = ap, .key = &sender, .call_timeout_ms = 2000};
	cm_ledger_client *c = NULL;
	TAP_EQ(cm_ledger_client_new(&o, &c, err, sizeof(err)), CM_OK);
	uint64_t height = 0;
	/* f = 1: the second highest; the liar's million is not it */
	TAP_EQ(cm_ledger_client_height(c, &height, err, sizeof(err)), CM_OK);
	TAP_EQ(height, 11 + 1);
	/* one answers without a height, one is down: two answers still vouch */
	fs[0].height = NULL;
	cm_rpc_server_shutdown(fs[3].srv, 0);
	TAP_EQ(cm_ledger_client_height(c, &height, err, sizeof(err)), CM_OK);
	TAP_EQ(height, 11);
	TAP_CHECK(strstr(err, "no height in its Status") != NULL);
	/* the liar alone cannot vouch */
	cm_rpc_server_shutdown(fs[1].srv, 0);
	height = 5;
	TAP_EQ(cm_ledger_client_height(c, &height, err, sizeof(err)), CM_ERR_UNAVAILABLE);
	TAP_EQ(height, 5);
	TAP_CHECK(strstr(err, addrs[0]) && strstr(err, addrs[1]) && strstr(err, addrs[3]) && !strstr(err, addrs[2]));
	printf("# unavailable: %s\n", err);
	cm_ledger_client_free(c);
	for (int i = 0; i < N; i++) {
		cm_rpc_server_shutdown(fs[i].srv, 0);
		cm_rpc_server_free(fs[i].srv);
	}
}

int main(void)
{
	cm_crypto_init();
	signal(SIGPIPE, SIG_IGN);
	TAP_RUN(test_options);
	cm_keypair_generate(&sender);
	TAP_RUN(test_height);
	TAP_RUN(test_client);
	return tap_done();
}
