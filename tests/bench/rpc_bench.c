/* RPC benchmark: unary round trips on loopback with a small message,
 * through muri's RPC layer (muri-echo-server + cm_rpc client) and, in the
 * same run, against a minimal gRPC core server (raw-echo-server) as the
 * baseline. Reports sequential p50/p99 and calls/s with N client threads.
 *   rpc-bench [--seq N] [--seconds S] [--threads T] [--workers W] */
#include "tproc.h"
#include "cm_err.h"
#include "cm_rpc.h"
#include "echo.pb-c.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static int one_call(cm_rpc_client *c)
{
	static const uint8_t payload[16] = "0123456789abcdef";
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	req.payload.data = (uint8_t *)payload;
	req.payload.len = sizeof(payload);
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	int rc = cm_rpc_unary(c, "/muri.test.Echo/Say", &req.base, &muri__test__echo_reply__descriptor,
			      &resp, 10000, &st);
	if (rc == CM_OK)
		protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

struct load {
	cm_rpc_client *c;
	long long until;
	long calls, errors;
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	while (now_ns() < l->until) {
		if (one_call(l->c) == CM_OK)
			l->calls++;
		else
			l->errors++;
	}
	return NULL;
}

struct result {
	double p50_us, p99_us, mean_us, qps;
	long errors;
};

static int run(const char *name, const char *exe, int workers, int seq, double seconds, int threads,
	       struct result *r)
{
	tproc p;
	char w[16];
	snprintf(w, sizeof(w), "%d", workers);
	const char *args[] = {"--rpc-workers", w, "--log-level", "warn", NULL};
	if (tproc_start(&p, name, exe, args, 10000) != 0) {
		fprintf(stderr, "%s did not start\n", name);
		tproc_cleanup(&p, 1);
		return -1;
	}
	cm_rpc_client *c = NULL;
	char err[256];
	cm_rpc_client_opts o = {.target = p.target};
	if (cm_rpc_client_new(&o, &c, err, sizeof(err)) != CM_OK)
		return -1;
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < 2000; i++)
		one_call(c);
	long long *lat = malloc(sizeof(*lat) * (size_t)seq);
	long long sum = 0;
	for (int i = 0; i < seq; i++) {
		long long t0 = now_ns();
		if (one_call(c) != CM_OK)
			r->errors++;
		lat[i] = now_ns() - t0;
		sum += lat[i];
	}
	qsort(lat, (size_t)seq, sizeof(*lat), cmp_ll);
	r->p50_us = (double)lat[seq / 2] / 1000.0;
	r->p99_us = (double)lat[(size_t)seq * 99 / 100] / 1000.0;
	r->mean_us = (double)sum / seq / 1000.0;
	free(lat);
	pthread_t *t = calloc((size_t)threads, sizeof(*t));
	struct load *l = calloc((size_t)threads, sizeof(*l));
	long long t0 = now_ns();
	for (int i = 0; i < threads; i++) {
		l[i] = (struct load){.c = c, .until = t0 + (long long)(seconds * 1e9)};
		pthread_create(&t[i], NULL, load_main, &l[i]);
	}
	long calls = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		calls += l[i].calls;
		r->errors += l[i].errors;
	}
	r->qps = (double)calls / ((double)(now_ns() - t0) / 1e9);
	free(t);
	free(l);
	cm_rpc_client_free(c);
	tproc_stop(&p, SIGTERM, 10000);
	tproc_cleanup(&p, r->errors > 0);
	return 0;
}

int main(int argc, char **argv)
{
	int seq = 20000, threads = 8, workers = 2;
	double seconds = 5;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--seq") == 0)
			seq = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--threads") == 0)
			threads = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--workers") == 0)
			workers = atoi(argv[i + 1]);
	}
	if (seq < 100 || threads < 1 || workers < 1 || seconds <= 0) {
		fprintf(stderr, "usage: rpc-bench [--seq N>=100] [--seconds S] [--threads T] [--workers W]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char muri[512], raw[512];
	tproc_build_path("tests/rpc/muri-echo-server", muri, sizeof(muri));
	tproc_build_path("tests/bench/raw-echo-server", raw, sizeof(raw));
	struct result rm, rr;
	if (run("raw-echo", raw, workers, seq, seconds, threads, &rr) != 0 ||
	    run("muri-echo", muri, workers, seq, seconds, threads, &rm) != 0)
		return 1;
	printf("RPC unary round trip, 16-byte payload, loopback; server workers %d; "
	       "%d sequential calls; %d client threads for %.0f s\n", workers, seq, threads, seconds);
	printf("%-28s %10s %10s %10s %12s %8s\n", "server", "p50 us", "p99 us", "mean us", "calls/s", "errors");
	printf("%-28s %10.1f %10.1f %10.1f %12.0f %8ld\n", "gRPC core minimal (baseline)", rr.p50_us,
	       rr.p99_us, rr.mean_us, rr.qps, rr.errors);
	printf("%-28s %10.1f %10.1f %10.1f %12.0f %8ld\n", "muri cm_rpc", rm.p50_us, rm.p99_us,
	       rm.mean_us, rm.qps, rm.errors);
	printf("muri / baseline: p50 %.2fx, calls/s %.2fx\n", rm.p50_us / rr.p50_us, rm.qps / rr.qps);
	return rm.errors || rr.errors ? 1 : 0;
}
