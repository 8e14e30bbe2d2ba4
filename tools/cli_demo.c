/* The foreground `muri devnet`: starts a whole network in this process
 * group, runs a demo straight on the indexers (a transfer committed, a Magu
 * created by a transaction and placed by the ledger, 2,000 vectors written at
 * QUORUM to the primary it chose and found on a backup) and stops everything
 * on Ctrl-C. scripts and tests that want a network and a prompt back use
 * `muri devnet up` instead (cli_devnet.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cm_ledger_client.h"
#include "cli_devnet.h"
#include "cm_err.h"
#include "indexer.pb-c.h"
#include "ledger.pb-c.h"

static const char *demo_ca; /* the devnet's CA: every process serves TLS */

static cm_rpc_client *client_to(int port)
{
	char target[32], err[256];
	cm_rpc_client *c = NULL;
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	cm_rpc_client_opts o = {.target = target, .tls_ca_file = demo_ca};
	return cm_rpc_client_new(&o, &c, err, sizeof(err)) == CM_OK ? c : NULL;
}

static int unary(cm_rpc_client *c, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *d, ProtobufCMessage **resp, const char *what)
{
	cm_rpc_status st;
	ProtobufCMessage *r = NULL;
	if (cm_rpc_unary(c, method, req, d, &r, 30000, &st) != CM_OK) {
		printf("demo: %s failed: %s %s\n", what, cm_rpc_code_name(st.code), st.message);
		return -1;
	}
	if (resp)
		*resp = r;
	else
		protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

/* Demo data on the indexers: Magu "demo" created by a transaction of the
 * demo account, its one fragment placed by the ledger on every indexer (the
 * indexers take the configuration from the chain they follow), 2,000 vectors
 * of 32 dimensions written at QUORUM to the primary the ledger chose, then a
 * search near row 42 through a backup's Search RPC. */
#define DEMO_ROWS 2000
#define DEMO_DIM 32
#define DEMO_WAIT_TRIES 300 /* x 100 ms: the indexers apply the block */

/* Creates Magu "demo" unless it exists; *cfg gets fragment 0's configuration
 * from the ledger (the caller frees *info). */
static int demo_magu(cm_ledger_client *lc, int nix, Muri__V1__FragmentInfo **info)
{
	Muri__V1__MaguRequest mr = MURI__V1__MAGU_REQUEST__INIT;
	mr.name = "demo";
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	char err[600];
	if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetMagu", &mr.base, &muri__v1__magu_info__descriptor, &resp,
				  &st) == CM_OK) {
		protobuf_c_message_free_unpacked(resp, NULL);
		printf("demo: Magu demo exists already\n");
	} else {
		Muri__V1__IndexSpec spec = MURI__V1__INDEX_SPEC__INIT;
		spec.kind = MURI__V1__INDEX_KIND__HNSW;
		Muri__V1__CreateMagu cm = MURI__V1__CREATE_MAGU__INIT;
		cm.name = "demo";
		cm.dimension = DEMO_DIM;
		cm.metric = MURI__V1__METRIC__L2;
		cm.index = &spec;
		cm.fragments = 1;
		cm.replication = (uint32_t)nix;
		cm.deposit = 1000;
		Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU;
		t.create_magu = &cm;
		cm_ledger_result res;
		if (cm_ledger_client_submit(lc, &t, CM_LC_WAIT, &res, err, sizeof(err)) != CM_OK) {
			printf("demo: CreateMagu failed: %s\n", err);
			return -1;
		}
		printf("demo: Magu demo created by transaction at height %llu\n", (unsigned long long)res.height);
	}
	Muri__V1__FragmentRequest fr = MURI__V1__FRAGMENT_REQUEST__INIT;
	fr.magu = "demo";
	fr.fragment = 0;
	resp = NULL;
	if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetFragment", &fr.base, &muri__v1__fragment_info__descriptor,
				  &resp, &st) != CM_OK) {
		printf("demo: GetFragment failed: %s %s\n", cm_rpc_code_name(st.code), st.message);
		return -1;
	}
	*info = (Muri__V1__FragmentInfo *)resp;
	if (!(*info)->config || (*info)->config->primary.len != CM_PK_BYTES) {
		printf("demo: fragment demo/0 has no primary\n");
		return -1;
	}
	return 0;
}

static int demo_vectors(dn_node *ix, int nix, dn_node *ledgers, int nledgers, const cm_keypair *demo)
{
	const char *addrs[DN_MAX];
	char addrbuf[DN_MAX][32];
	for (int i = 0; i < nledgers; i++) {
		snprintf(addrbuf[i], sizeof(addrbuf[i]), "127.0.0.1:%d", ledgers[i].rpc_port);
		addrs[i] = addrbuf[i];
	}
	cm_ledger_client *lc = NULL;
	char err[256];
	cm_ledger_client_opts lo = {.chain_id = "muri-devnet", .n = (size_t)nledgers, .addrs = addrs, .key = demo,
				    .fee = 1, .tls_ca_file = demo_ca};
	if (cm_ledger_client_new(&lo, &lc, err, sizeof(err)) != CM_OK) {
		printf("demo: ledger client: %s\n", err);
		return -1;
	}
	Muri__V1__FragmentInfo *info = NULL;
	int rc = demo_magu(lc, nix, &info);
	cm_ledger_client_free(lc);
	int prim = -1, back = -1;
	uint64_t epoch = 0;
	for (int i = 0; rc == 0 && i < nix; i++) {
		if (memcmp(ix[i].key.pk, info->config->primary.data, CM_PK_BYTES) == 0)
			prim = i;
		else
			for (size_t k = 0; k < info->config->n_replicas; k++)
				if (info->config->replicas[k]->pubkey.len == CM_PK_BYTES &&
				    memcmp(ix[i].key.pk, info->config->replicas[k]->pubkey.data, CM_PK_BYTES) == 0)
					back = back < 0 ? i : back;
	}
	if (info) {
		epoch = info->config->epoch;
		if (rc == 0)
			printf("demo: the ledger placed fragment demo/0 on %zu indexers, primary %s, epoch %llu\n",
			       info->config->n_replicas, prim >= 0 ? ix[prim].name : "(none of ours)",
			       (unsigned long long)epoch);
		protobuf_c_message_free_unpacked(&info->base, NULL);
	}
	if (rc != 0 || prim < 0 || back < 0)
		return -1;
	cm_rpc_client *c = client_to(ix[prim].rpc_port);
	if (!c)
		return -1;
	static float vecs[DEMO_ROWS][DEMO_DIM];
	static char ids[DEMO_ROWS][37];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < DEMO_ROWS; i++) {
		for (int j = 0; j < DEMO_DIM; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			vecs[i][j] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
		}
		uint8_t u[16];
		randombytes_buf(u, sizeof(u));
		u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
		u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
		snprintf(ids[i], 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
			 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	}
	Muri__V1__LogRecord *recs = calloc(DEMO_ROWS, sizeof(*recs));
	Muri__V1__LogRecord **rr = calloc(DEMO_ROWS, sizeof(*rr));
	Muri__V1__Vector *vv = calloc(DEMO_ROWS, sizeof(*vv));
	for (int i = 0; i < DEMO_ROWS; i++) {
		muri__v1__log_record__init(&recs[i]);
		muri__v1__vector__init(&vv[i]);
		vv[i].values = vecs[i];
		vv[i].n_values = DEMO_DIM;
		recs[i].id = ids[i];
		recs[i].version = 1;
		recs[i].vector = &vv[i];
		rr[i] = &recs[i];
	}
	Muri__V1__IndexSpec spec = MURI__V1__INDEX_SPEC__INIT;
	spec.kind = MURI__V1__INDEX_KIND__HNSW;
	Muri__V1__FragmentSchema schema = MURI__V1__FRAGMENT_SCHEMA__INIT;
	schema.dimension = DEMO_DIM;
	schema.metric = MURI__V1__METRIC__L2;
	schema.index = &spec;
	Muri__V1__FragmentWriteRequest w = MURI__V1__FRAGMENT_WRITE_REQUEST__INIT;
	w.magu = "demo";
	w.epoch = epoch;
	w.records = rr;
	w.n_records = DEMO_ROWS;
	w.schema = &schema;
	w.consistency_level = MURI__V1__CONSISTENCY_LEVEL__QUORUM;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status wst;
	int wrc = CM_ERR_STATE;
	/* the primary takes writes once it applied the block that configured it */
	for (int attempt = 0; attempt < DEMO_WAIT_TRIES; attempt++) {
		wrc = cm_rpc_unary(c, "/muri.v1.Indexer/Write", &w.base, &muri__v1__fragment_write_response__descriptor,
				   &resp, 30000, &wst);
		if (wrc == CM_OK || (wst.code != GRPC_STATUS_NOT_FOUND && wst.code != GRPC_STATUS_FAILED_PRECONDITION &&
				     wst.code != GRPC_STATUS_UNAVAILABLE && wst.code != GRPC_STATUS_DEADLINE_EXCEEDED))
			break;
		usleep(100000);
	}
	if (wrc != CM_OK)
		printf("demo: Write failed: %s %s\n", cm_rpc_code_name(wst.code), wst.message);
	if (rc == 0 && wrc == CM_OK) {
		Muri__V1__FragmentWriteResponse *r = (Muri__V1__FragmentWriteResponse *)resp;
		printf("demo: wrote %d vectors to fragment demo/0, acknowledged by %zu of %d replicas (log size %llu)\n",
		       DEMO_ROWS, r->n_acked_by, nix, (unsigned long long)r->log_size);
		protobuf_c_message_free_unpacked(resp, NULL);
	} else {
		rc = -1;
	}
	/* search near row 42 on the last indexer: a backup */
	float q[DEMO_DIM];
	for (int j = 0; j < DEMO_DIM; j++)
		q[j] = vecs[42][j] + 0.001f;
	Muri__V1__Vector qv = MURI__V1__VECTOR__INIT;
	qv.values = q;
	qv.n_values = DEMO_DIM;
	Muri__V1__LocalSearchRequest sr = MURI__V1__LOCAL_SEARCH_REQUEST__INIT;
	sr.magu = "demo";
	sr.query = &qv;
	sr.top_k = 3;
	cm_rpc_client *cb = client_to(ix[back].rpc_port);
	resp = NULL;
	for (int attempt = 0; rc == 0 && cb && attempt < 50; attempt++) {
		if (unary(cb, "/muri.v1.Indexer/Search", &sr.base, &muri__v1__local_search_response__descriptor, &resp,
			  "Search") != 0) {
			rc = -1;
			break;
		}
		Muri__V1__LocalSearchResponse *r = (Muri__V1__LocalSearchResponse *)resp;
		if (r->log_size == DEMO_ROWS || attempt == 49) { /* the backup has caught up */
			printf("demo: search near row 42 on %s (a backup) answered at log size %llu:\n", ix[back].name,
			       (unsigned long long)r->log_size);
			for (size_t i = 0; i < r->n_hits; i++)
				printf("  %zu. %s distance %.6f%s\n", i + 1, r->hits[i]->id, r->hits[i]->distance,
				       strcmp(r->hits[i]->id, ids[42]) == 0 ? "  <- row 42" : "");
			if (!r->n_hits || strcmp(r->hits[0]->id, ids[42]) != 0)
				rc = -1;
			protobuf_c_message_free_unpacked(resp, NULL);
			break;
		}
		protobuf_c_message_free_unpacked(resp, NULL);
		usleep(100000);
	}
	cm_rpc_client_free(cb);
	cm_rpc_client_free(c);
	free(recs);
	free(rr);
	free(vv);
	return rc;
}

/* A transfer from the demo account to the first indexer, waited for:
 * shows the chain committing. Through the ledger client, which signs with
 * the account's next free nonce (the gateway spends from the same account
 * at its start: its receipts' Approve and top-up). */
static int demo_transfer(const dn_node *ledgers, int n, const cm_keypair *demo, const uint8_t to[CM_PK_BYTES])
{
	char addr[CM_LC_MAX_REPLICAS][32];
	const char *addrs[CM_LC_MAX_REPLICAS];
	for (int i = 0; i < n && i < CM_LC_MAX_REPLICAS; i++) {
		snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", ledgers[i].rpc_port);
		addrs[i] = addr[i];
	}
	cm_ledger_client_opts o = {.chain_id = "muri-devnet", .n = (size_t)(n < CM_LC_MAX_REPLICAS ? n : CM_LC_MAX_REPLICAS),
				   .addrs = addrs, .key = demo, .fee = 1, .commit_timeout_ms = 15000,
				   .tls_ca_file = demo_ca};
	cm_ledger_client *c = NULL;
	char err[512];
	if (cm_ledger_client_new(&o, &c, err, sizeof(err)) != CM_OK) {
		printf("demo: transfer not committed: %s\n", err);
		return -1;
	}
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
	tr.to.data = (uint8_t *)to;
	tr.to.len = CM_PK_BYTES;
	tr.amount = 1000;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	cm_ledger_result res;
	int rc = cm_ledger_client_submit(c, &t, CM_LC_WAIT, &res, err, sizeof(err));
	if (rc == CM_OK) {
		char hex[2 * CM_HASH_BYTES + 1];
		cm_hex(hex, res.tx_hash, CM_HASH_BYTES);
		printf("demo: transfer of 1000 MURI %s at height %llu (tx %.16s...)\n",
		       res.state == MURI__V1__TX_STATE__TX_COMMITTED ? "committed" : "failed",
		       (unsigned long long)res.height, hex);
	} else {
		printf("demo: transfer not committed: %s\n", err);
	}
	cm_ledger_client_free(c);
	return rc == CM_OK ? 0 : -1;
}

/* Ctrl-C at a terminal sends SIGINT to the whole foreground process group:
 * to this process and to every service it started, which all stop on it.
 * This process also sends each service SIGTERM (the only signal they get when
 * the devnet alone is told to stop); a service takes whichever comes first
 * and logs the other as ignored. A second Ctrl-C changes nothing: the
 * services finish within their grace period. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	if (stop_requested) {
		static const char msg[] = "muri devnet: already stopping; the services finish within their grace period\n";
		ssize_t n = write(2, msg, sizeof(msg) - 1);
		(void)n;
	}
	stop_requested = 1;
}

int dn_foreground(int argc, char **argv)
{
	long ledgers = 4, indexers = 3, base_port = 0;
	int check = 0;
	const char *dir = NULL;
	const cli_opt opts[] = {{"--dir", CLI_STR, &dir},
				{"--ledgers", CLI_INT, &ledgers},
				{"--indexers", CLI_INT, &indexers},
				{"--base-port", CLI_INT, &base_port},
				{"--check", CLI_FLAG, &check},
				{NULL, 0, NULL}};
	static const char help[] =
		"usage: muri devnet run [--dir D] [--ledgers N] [--indexers N] [--base-port P] [--check]\n"
		"Runs a local network in the foreground with a demo on the indexers; Ctrl-C stops it.\n"
		"  --dir D        folder (default: a new one under /tmp)\n"
		"  --check        stop after the demo instead of waiting for Ctrl-C\n";
	char *pos[1];
	int npos, prc = cli_parse("devnet", help, argc, argv, opts, pos, 0, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	char root[DN_PATH] = "";
	if (!dir) {
		snprintf(root, sizeof(root), "/tmp/muri-devnet-XXXXXX");
		if (!mkdtemp(root))
			return cli_fail(CLI_FAIL, "devnet", "mkdtemp: %s", strerror(errno));
	} else {
		snprintf(root, sizeof(root), "%s", dir);
	}
	static dn_net net;
	char err[512];
	if (dn_prepare(&net, root, (int)ledgers, (int)indexers, (int)base_port, err, sizeof(err)) != CM_OK) {
		dn_close(&net);
		return cli_fail(strstr(err, "--") ? CLI_USAGE : CLI_FAIL, "devnet", "%s", err);
	}
	demo_ca = net.tls_ca;
	/* the demo writes and searches straight on the indexers as the devnet's
	 * gateway: with its certificate (mutual TLS; indexers answer Write and
	 * Search only to fragment replicas, ledger replicas and the genesis
	 * gateway) */
	for (int i = 0; i < net.n; i++)
		if (!strcmp(net.nodes[i].service, "gateway") &&
		    cm_rpc_client_set_identity(net.nodes[i].tls_cert, net.nodes[i].tls_key, err, sizeof(err)) != CM_OK) {
			dn_close(&net);
			return cli_fail(CLI_FAIL, "devnet", "%s", err);
		}
	for (int i = 0; i < net.n; i++)
		if (dn_running(&net.nodes[i])) {
			dn_close(&net);
			return cli_fail(CLI_FAIL, "devnet", "a devnet is running in %s (muri devnet down --dir %s stops it)",
					root, root);
		}
	dn_node *nodes = net.nodes;
	int n = net.n;

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int failed = 0;
	for (int i = 0; i < n && !failed; i++)
		failed = dn_spawn(&net, &nodes[i], 0) != 0;
	/* wait for every port file */
	for (int t = 0; t < 1000 && !failed && !stop_requested; t++) {
		int ready = 0;
		for (int i = 0; i < n; i++) {
			ready += dn_read_ports(&nodes[i]) == 0;
			int st;
			if (nodes[i].pid > 0 && waitpid(nodes[i].pid, &st, WNOHANG) == nodes[i].pid) {
				fprintf(stderr, "muri devnet: %s exited; see %s/log\n", nodes[i].name, nodes[i].dir);
				nodes[i].pid = 0;
				failed = 1;
			}
		}
		if (ready == n)
			break;
		usleep(10000);
	}
	/* a Ctrl-C while starting skips what is left of the demo; a demo step
	 * that fails because the services are stopping is not a failure */
	if (!failed && !stop_requested) {
		printf("muri devnet in %s\n", root);
		printf("%-12s %-22s %-22s %s\n", "node", "rpc", "metrics", "status");
		for (int i = 0; i < n; i++) {
			char rpc[32], met[32];
			snprintf(rpc, sizeof(rpc), "127.0.0.1:%d", nodes[i].rpc_port);
			snprintf(met, sizeof(met), "127.0.0.1:%d", nodes[i].metrics_port);
			int ok = dn_status_of(rpc, demo_ca, nodes[i].service, 1, NULL, 0) == 0;
			failed |= !ok && !stop_requested;
			printf("%-12s %-22s %-22s %s\n", nodes[i].name, rpc, met, ok ? "serving" : "NOT ANSWERING");
		}
		if (!failed && !stop_requested) {
			failed |= demo_transfer(nodes, net.ledgers, &net.demo, nodes[net.ledgers].key.pk) != 0 &&
				  !stop_requested;
		}
		if (!failed && !stop_requested)
			failed |= demo_vectors(&nodes[net.ledgers], net.indexers, nodes, net.ledgers, &net.demo) != 0 &&
				   !stop_requested;
		printf("\nThe ledger replicas run consensus and commit transactions; the\n"
		       "indexers follow the chain, take their fragments' configurations from\n"
		       "it, and store, replicate and search fragments; the gateway follows the\n"
		       "chain and serves the VectorStore API (try `muri devnet up` for a\n"
		       "network in the background and `muri --help` for what to do with it).\n");
		fflush(stdout);
	}
	if (!check && !failed) {
		printf("Ctrl-C stops the network.\n");
		fflush(stdout);
		/* blocked between the test and the wait, so a signal cannot slip in
		 * after the test and leave sigsuspend waiting for another */
		sigset_t stopsigs, old;
		sigemptyset(&stopsigs);
		sigaddset(&stopsigs, SIGINT);
		sigaddset(&stopsigs, SIGTERM);
		sigprocmask(SIG_BLOCK, &stopsigs, &old);
		while (!stop_requested)
			sigsuspend(&old);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	if (stop_requested) {
		printf("stopping\n");
		fflush(stdout);
	}
	for (int i = 0; i < n; i++)
		if (nodes[i].pid > 0)
			kill(nodes[i].pid, SIGTERM);
	for (int i = 0; i < n; i++) {
		int st = 0;
		pid_t got;
		if (nodes[i].pid <= 0)
			continue;
		while ((got = waitpid(nodes[i].pid, &st, 0)) < 0 && errno == EINTR)
			; /* another Ctrl-C: keep waiting */
		if (got != nodes[i].pid) {
			fprintf(stderr, "muri devnet: cannot wait for %s: %s\n", nodes[i].name, strerror(errno));
			failed = 1;
		} else if (WIFSIGNALED(st)) {
			fprintf(stderr, "muri devnet: %s was killed by signal %d; see %s/log\n", nodes[i].name,
				WTERMSIG(st), nodes[i].dir);
			failed = 1;
		} else if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			fprintf(stderr, "muri devnet: %s did not stop cleanly (exit status %d); see %s/log\n",
				nodes[i].name, WIFEXITED(st) ? WEXITSTATUS(st) : -1, nodes[i].dir);
			failed = 1;
		}
		nodes[i].pid = 0;
	}
	printf("stopped%s\n", failed ? " (with failures)" : "");
	dn_close(&net);
	return failed ? 1 : 0;
}
