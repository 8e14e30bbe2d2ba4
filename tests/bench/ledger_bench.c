/* Ledger benchmark: 4 muri-ledger replicas on loopback (ports chosen at run
 * time) and this load generator, all on one machine. Pre-signs transfers
 * (or, with --noop, Noop transactions without signatures, on a chain whose
 * genesis sets unsigned_noops), submits them round-robin to the replicas from
 * T threads without waiting, and follows the committed blocks on replica 0
 * to time each transaction from submission to commit. For each block size
 * limit (the genesis parameter block_max_txs) it prints committed
 * transactions/s and commit latency p50/p99, and first the cost of one
 * signature verification on this machine with the bound it sets: every
 * replica verifies every transaction once, so 4 verifications per
 * transaction over the cores. It also prints the CPU time the four
 * replicas spent per committed transaction (from /proc, start to end, so
 * it includes start-up and admission): on a machine shared with other work
 * this says how close to the verification bound the replicas are, even
 * when the wall-clock rate cannot.
 * With --rate the load is offered at a fixed rate, so latency is measured
 * below saturation rather than behind a queue.
 * --batch sets the transactions per SubmitTransactions call (default 250);
 * a round of 4 such calls leaves at once, so with --rate a smaller batch
 * offers the load more evenly.
 *   ledger-bench [--txs N] [--senders S] [--threads T] [--blocks 500,2000,8000] [--rate R] [--batch B] [--noop] */
#include "bench_util.h"
#include "tproc.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_rpc.h"
#include "consensus.pb-c.h"
#include "ledger.pb-c.h"
#include "types.pb-c.h"
#include "lg_tx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define N_REPLICAS 4

static size_t ntx = 100000;
static int nsenders = 64, nthreads = 8, noop;
static double rate;      /* offered load in transactions/s; 0: as fast as possible */
static double load_t0;

struct tx {
	Muri__V1__SignedTransaction stx;
	uint8_t hash[CM_HASH_BYTES];
	double sent, committed;
};

static struct tx *txs;
static uint64_t *order; /* (hash64 << 24 | index) sorted, to find a tx by hash */
static char addrs[N_REPLICAS][32];
static atomic_size_t next_tx, committed_count, submit_errors, blocks_seen;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t h40(const uint8_t *h)
{
	uint64_t v = 0;
	for (int i = 0; i < 5; i++)
		v = v << 8 | h[i];
	return v;
}

static long find_tx(const uint8_t *h)
{
	uint64_t key = h40(h);
	size_t lo = 0, hi = ntx;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		uint64_t k = order[mid] >> 24;
		if (k < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < ntx && order[i] >> 24 == key; i++) {
		size_t idx = order[i] & 0xffffff;
		if (memcmp(txs[idx].hash, h, CM_HASH_BYTES) == 0)
			return (long)idx;
	}
	return -1;
}

#define BATCH_MAX 1000
static int batch_size = 250; /* transactions per SubmitTransactions call to one replica (--batch) */

static void *submit_main(void *arg)
{
	cm_rpc_client **clients = arg;
	Muri__V1__SignedTransaction *batch[BATCH_MAX];
	const size_t BATCH = (size_t)batch_size;
	for (;;) {
		size_t start = atomic_fetch_add(&next_tx, (size_t)N_REPLICAS * BATCH);
		if (start >= ntx)
			return NULL;
		size_t end = start + (size_t)N_REPLICAS * BATCH < ntx ? start + (size_t)N_REPLICAS * BATCH : ntx;
		if (rate > 0) { /* paced: chunk `start` goes out at load_t0 + start / rate */
			double wait = load_t0 + (double)start / rate - now_s();
			if (wait > 0)
				usleep((useconds_t)(wait * 1e6));
		}
		for (int r = 0; r < N_REPLICAS; r++) {
			size_t k = 0;
			double t = now_s();
			for (size_t i = start + (size_t)r; i < end; i += N_REPLICAS) {
				batch[k++] = &txs[i].stx;
				txs[i].sent = t;
			}
			if (!k)
				continue;
			Muri__V1__SubmitBatchRequest req = MURI__V1__SUBMIT_BATCH_REQUEST__INIT;
			req.txs = batch;
			req.n_txs = k;
			ProtobufCMessage *resp = NULL;
			cm_rpc_status st;
			for (int attempt = 0; attempt < 1000; attempt++) {
				if (cm_rpc_unary(clients[r], "/muri.v1.Ledger/SubmitTransactions", &req.base,
						 &muri__v1__submit_batch_response__descriptor, &resp, 30000, &st) != CM_OK) {
					atomic_fetch_add(&submit_errors, 1);
					fprintf(stderr, "submit: %s %s\n", cm_rpc_code_name(st.code), st.message);
					break;
				}
				/* resubmit what a full mempool turned away, keep the rest */
				Muri__V1__SubmitBatchResponse *br = (Muri__V1__SubmitBatchResponse *)resp;
				size_t again = 0;
				for (size_t j = 0; j < br->n_results; j++) {
					if (br->results[j]->code == GRPC_STATUS_RESOURCE_EXHAUSTED)
						batch[again++] = req.txs[j];
					else if (br->results[j]->code != GRPC_STATUS_OK &&
						 atomic_fetch_add(&submit_errors, 1) < 5)
						fprintf(stderr, "submit: %s\n", br->results[j]->message);
				}
				protobuf_c_message_free_unpacked(resp, NULL);
				if (!again)
					break;
				req.n_txs = again;
				usleep(5000);
			}
		}
	}
}

static void *follow_main(void *arg)
{
	cm_rpc_client *c = arg;
	Muri__V1__FollowRequest req = MURI__V1__FOLLOW_REQUEST__INIT;
	req.from_height = 1;
	cm_rpc_stream *s = NULL;
	cm_rpc_status st;
	if (cm_rpc_stream_open(c, "/muri.v1.Ledger/FollowBlocks", &req.base, &muri__v1__block__descriptor, 0, &s, &st) !=
	    CM_OK)
		return NULL;
	double last_progress = now_s();
	size_t seen = 0;
	while (atomic_load(&committed_count) < ntx && now_s() - last_progress < 30) {
		if (atomic_load(&committed_count) != seen) {
			seen = atomic_load(&committed_count);
			last_progress = now_s();
		}
		ProtobufCMessage *m = NULL;
		int rc = cm_rpc_stream_next(s, &m, 1000, &st);
		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		double t = now_s();
		Muri__V1__Block *b = (Muri__V1__Block *)m;
		if (b->n_txs)
			atomic_fetch_add(&blocks_seen, 1);
		for (size_t i = 0; i < b->n_txs; i++) {
			uint8_t h[CM_HASH_BYTES];
			lg_tx_hash(b->txs[i]->body.data, b->txs[i]->body.len, h);
			long idx = find_tx(h);
			if (idx >= 0 && txs[idx].committed == 0) {
				txs[idx].committed = t;
				atomic_fetch_add(&committed_count, 1);
			}
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	cm_rpc_stream_close(s);
	return NULL;
}

static int write_genesis(const char *path, cm_keypair *reps, cm_keypair *senders, int block_max)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	char hex[65];
	fprintf(f, "chain_id = bench\ngenesis_time_ms = 1700000000000\n");
	for (int i = 0; i < N_REPLICAS; i++) {
		cm_hex(hex, reps[i].pk, CM_PK_BYTES);
		fprintf(f, "replica = %s %s\n", hex, addrs[i]);
	}
	for (int i = 0; i < nsenders; i++) {
		cm_hex(hex, senders[i].pk, CM_PK_BYTES);
		fprintf(f, "account = %s 1000000000000\n", hex);
	}
	fprintf(f, "param.allow_noop = %d\nparam.unsigned_noops = %d\nparam.block_max_txs = %d\n", noop, noop,
		block_max);
	return fclose(f);
}

/* utime + stime of a process, in seconds (0 if unreadable). */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command may hold spaces */
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int run(int block_max, double *tps, double *p50, double *p99, double *mean_block, double *checks_per_tx,
	       double *cpu_us_per_tx)
{
	char dir[] = "/tmp/muri-ledger-bench-XXXXXX";
	if (!mkdtemp(dir))
		return -1;
	cm_keypair reps[N_REPLICAS];
	cm_keypair *senders = calloc((size_t)nsenders, sizeof(*senders));
	char path[600], genesis[600];
	for (int i = 0; i < N_REPLICAS; i++) {
		cm_keypair_generate(&reps[i]);
		snprintf(path, sizeof(path), "%s/ledger%d.key", dir, i);
		cm_key_save(&reps[i], path);
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", tproc_free_port());
	}
	for (int i = 0; i < nsenders; i++)
		cm_keypair_generate(&senders[i]);
	snprintf(genesis, sizeof(genesis), "%s/genesis.txt", dir);
	if (write_genesis(genesis, reps, senders, block_max) != 0)
		return -1;
	/* pre-sign */
	txs = calloc(ntx, sizeof(*txs));
	order = calloc(ntx, sizeof(*order));
	for (size_t i = 0; i < ntx; i++) {
		int s = (int)(i % (size_t)nsenders);
		Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
		t.chain_id = "bench";
		t.sender.data = senders[s].pk;
		t.sender.len = CM_PK_BYTES;
		t.nonce = i / (size_t)nsenders;
		Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
		Muri__V1__Noop no = MURI__V1__NOOP__INIT;
		uint8_t data[8];
		memcpy(data, &i, sizeof(data));
		if (noop) {
			/* a no-op touches no account and uses no nonce: each gets a
			 * sender tag of its own, so the mempool's per-sender nonce
			 * order never holds one back */
			uint8_t tag[CM_PK_BYTES];
			cm_hash(tag, CM_DOM_TEST, &i, sizeof(i));
			t.sender.data = tag;
			t.nonce = 0;
			no.data.data = data;
			no.data.len = sizeof(data);
			t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_NOOP;
			t.noop = &no;
			size_t len = protobuf_c_message_get_packed_size(&t.base);
			muri__v1__signed_transaction__init(&txs[i].stx);
			txs[i].stx.body.data = malloc(len);
			txs[i].stx.body.len = len;
			protobuf_c_message_pack(&t.base, txs[i].stx.body.data);
			txs[i].stx.signature.data = calloc(1, CM_SIG_BYTES); /* not checked in this mode */
			txs[i].stx.signature.len = CM_SIG_BYTES;
			lg_tx_hash(txs[i].stx.body.data, len, txs[i].hash);
		} else {
			tr.to.data = senders[(s + 1) % nsenders].pk;
			tr.to.len = CM_PK_BYTES;
			tr.amount = 1;
			t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
			t.transfer = &tr;
			muri__v1__signed_transaction__init(&txs[i].stx);
			lg_tx_sign(&t, &senders[s], &txs[i].stx, txs[i].hash);
		}
		order[i] = h40(txs[i].hash) << 24 | i;
	}
	qsort(order, ntx, sizeof(*order), cmp_u64);
	/* start the replicas */
	tproc procs[N_REPLICAS];
	char exe[512];
	tproc_build_path("services/ledger/muri-ledger", exe, sizeof(exe));
	int started = 0;
	for (int i = 0; i < N_REPLICAS; i++) {
		char key[600], data[600];
		snprintf(key, sizeof(key), "%s/ledger%d.key", dir, i);
		snprintf(data, sizeof(data), "%s/data%d", dir, i);
		const char *args[] = {"--listen", addrs[i], "--genesis", genesis, "--key-file", key, "--data-dir", data,
				      "--log-level", "warn", "--rpc-workers", "4", NULL};
		if (tproc_start(&procs[i], "ledger-bench", exe, args, 20000) != 0) {
			fprintf(stderr, "replica %d did not start\n", i);
			tproc_cleanup(&procs[i], 1);
			break;
		}
		started++;
	}
	int rc = started == N_REPLICAS ? 0 : -1;
	if (rc == 0) {
		cm_rpc_client *clients[N_REPLICAS];
		char err[256];
		for (int i = 0; i < N_REPLICAS; i++) {
			cm_rpc_client_opts o = {.target = addrs[i]};
			cm_rpc_client_new(&o, &clients[i], err, sizeof(err));
		}
		atomic_store(&next_tx, 0);
		atomic_store(&committed_count, 0);
		atomic_store(&submit_errors, 0);
		atomic_store(&blocks_seen, 0);
		pthread_t follower, *workers = calloc((size_t)nthreads, sizeof(*workers));
		pthread_create(&follower, NULL, follow_main, clients[0]);
		double t0 = now_s();
		load_t0 = t0;
		for (int i = 0; i < nthreads; i++)
			pthread_create(&workers[i], NULL, submit_main, clients);
		for (int i = 0; i < nthreads; i++)
			pthread_join(workers[i], NULL);
		pthread_join(follower, NULL);
		double last = 0;
		double *lat = malloc(ntx * sizeof(double));
		size_t nl = 0;
		for (size_t i = 0; i < ntx; i++)
			if (txs[i].committed > 0) {
				lat[nl++] = (txs[i].committed - txs[i].sent) * 1e3;
				if (txs[i].committed > last)
					last = txs[i].committed;
			}
		qsort(lat, nl, sizeof(double), cmp_d);
		*tps = nl ? (double)nl / (last - t0) : 0;
		*p50 = nl ? lat[nl / 2] : 0;
		*p99 = nl ? lat[nl * 99 / 100] : 0;
		*mean_block = atomic_load(&blocks_seen) ? (double)nl / (double)atomic_load(&blocks_seen) : 0;
		/* signature checks made by the replicas, per committed transaction */
		uint64_t checks = 0;
		for (int i = 0; i < N_REPLICAS; i++) {
			Muri__V1__StatusRequest sr = MURI__V1__STATUS_REQUEST__INIT;
			ProtobufCMessage *m = NULL;
			cm_rpc_status st;
			if (cm_rpc_unary(clients[i], "/muri.v1.Ledger/Status", &sr.base, &muri__v1__status_response__descriptor,
					 &m, 5000, &st) != CM_OK)
				continue;
			Muri__V1__StatusResponse *r = (Muri__V1__StatusResponse *)m;
			for (size_t j = 0; j < r->n_details; j++)
				if (!strcmp(r->details[j]->key, "sig_checks"))
					checks += strtoull(r->details[j]->value, NULL, 10);
			protobuf_c_message_free_unpacked(m, NULL);
		}
		*checks_per_tx = nl ? (double)checks / (double)nl : 0;
		double cpu = 0;
		for (int i = 0; i < N_REPLICAS; i++)
			cpu += proc_cpu_s(procs[i].pid);
		*cpu_us_per_tx = nl ? cpu * 1e6 / (double)nl : 0;
		if (nl < ntx) {
			fprintf(stderr, "only %zu of %zu transactions committed (%zu submit errors); replicas:", nl, ntx,
				atomic_load(&submit_errors));
			for (int i = 0; i < N_REPLICAS; i++) {
				Muri__V1__StatusRequest sr = MURI__V1__STATUS_REQUEST__INIT;
				ProtobufCMessage *m = NULL;
				cm_rpc_status st;
				if (cm_rpc_unary(clients[i], "/muri.v1.Ledger/Status", &sr.base,
						 &muri__v1__status_response__descriptor, &m, 5000, &st) != CM_OK)
					continue;
				Muri__V1__StatusResponse *r = (Muri__V1__StatusResponse *)m;
				fprintf(stderr, " [%d", i);
				for (size_t j = 0; j < r->n_details; j++)
					if (!strcmp(r->details[j]->key, "height") || !strcmp(r->details[j]->key, "mempool") ||
					    !strcmp(r->details[j]->key, "view"))
						fprintf(stderr, " %s=%s", r->details[j]->key, r->details[j]->value);
				fprintf(stderr, "]");
				protobuf_c_message_free_unpacked(m, NULL);
			}
			fprintf(stderr, "\n");
			rc = -1;
		}
		free(lat);
		free(workers);
		for (int i = 0; i < N_REPLICAS; i++)
			cm_rpc_client_free(clients[i]);
	}
	for (int i = 0; i < started; i++) {
		tproc_stop(&procs[i], SIGTERM, 30000);
		tproc_cleanup(&procs[i], rc != 0);
	}
	for (size_t i = 0; i < ntx; i++) {
		if (noop) {
			free(txs[i].stx.body.data);
			free(txs[i].stx.signature.data);
		} else {
			lg_tx_signed_clear(&txs[i].stx);
		}
	}
	free(txs);
	free(order);
	for (int i = 0; i < N_REPLICAS; i++)
		cm_keypair_wipe(&reps[i]);
	for (int i = 0; i < nsenders; i++)
		cm_keypair_wipe(&senders[i]);
	free(senders);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return rc;
}

int main(int argc, char **argv)
{
	int blocks[8] = {500, 2000, 8000}, nblocks = 3;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--noop"))
			noop = 1;
		else if (i + 1 < argc && !strcmp(argv[i], "--txs"))
			ntx = (size_t)atol(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--senders"))
			nsenders = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--rate"))
			rate = atof(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--batch"))
			batch_size = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--threads"))
			nthreads = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--blocks")) {
			nblocks = 0;
			for (char *p = strtok(argv[++i], ","); p && nblocks < 8; p = strtok(NULL, ","))
				blocks[nblocks++] = atoi(p);
		} else {
			fprintf(stderr, "usage: ledger-bench [--txs N] [--senders S] [--threads T] [--blocks a,b,c] [--rate R] [--batch B] [--noop]\n");
			return 2;
		}
	}
	if (ntx < 1000 || ntx > (1u << 24) || nsenders < 1 || nthreads < 1 || nthreads > 256 || batch_size < 1 ||
	    batch_size > BATCH_MAX) {
		fprintf(stderr, "--txs 1000..16M, --senders >= 1, --threads 1..256, --batch 1..1000\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	cm_crypto_init();
	printf("4 replicas + load generator on this machine; %zu %s from %d senders, %d submit threads, offered %s\n",
	       ntx, noop ? "unsigned no-op transactions" : "signed transfers", nsenders, nthreads,
	       rate > 0 ? "at a fixed rate" : "as fast as accepted");
	if (rate > 0)
		printf("offered load: %.0f transactions/s in rounds of %d x %d\n", rate, N_REPLICAS, batch_size);
	/* one signature verification, measured here and now */
	{
		cm_keypair k;
		cm_keypair_generate(&k);
		uint8_t msg[CM_HASH_BYTES] = {1}, sig[CM_SIG_BYTES];
		cm_sign(&k, sig, msg, sizeof(msg));
		/* CPU time of this thread: what one check costs, whatever else
		 * runs on the machine */
		int reps = 4000, bad = 0;
		struct timespec c0, c1;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		for (int i = 0; i < reps; i++)
			bad += cm_verify(k.pk, sig, msg, sizeof(msg)) != CM_OK;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		double us = ((double)(c1.tv_sec - c0.tv_sec) * 1e6 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e3) / reps;
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		double la[1] = {0};
		if (getloadavg(la, 1) < 1)
			la[0] = -1;
		printf("one ed25519 verification: %.1f us of CPU%s; %ld cores; bound of 4 verifications per transaction: "
		       "%.0f transactions/s; load average before the runs: %.2f\n",
		       us, bad ? " (FAILED)" : "", cores, cores * 1e6 / (4 * us), la[0]);
		cm_keypair_wipe(&k);
	}
	printf("%12s %14s %12s %12s %16s %18s %20s\n", "block max", "committed/s", "p50 ms", "p99 ms", "txs per block",
	       "sig checks per tx", "replica CPU us/tx");
	int failed = 0;
	for (int i = 0; i < nblocks; i++) {
		double tps, p50, p99, mb, cpt, cpu;
		if (run(blocks[i], &tps, &p50, &p99, &mb, &cpt, &cpu) != 0) {
			printf("%12d %14s\n", blocks[i], "failed");
			failed = 1;
			continue;
		}
		printf("%12d %14.0f %12.1f %12.1f %16.0f %18.2f %20.0f\n", blocks[i], tps, p50, p99, mb, cpt, cpu);
		fflush(stdout);
	}
	return failed;
}
