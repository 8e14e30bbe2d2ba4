/* RPC layer tests with real processes on loopback: the C client against the
 * Echo test server (muri-echo-server) on ports chosen at run time. Checks
 * what a caller observes: replies, status codes and messages, deadlines,
 * message limits, streams, TLS, and a clean stop on SIGTERM. */
#include "tap.h"
#include "tproc.h"
#include "cm_err.h"
#include "cm_rpc.h"
#include "cm_tls_id.h"
#include "echo.pb-c.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define SAY "/muri.test.Echo/Say"
#define COUNT "/muri.test.Echo/Count"

static char server_exe[512];
static char tmpdir[] = "/tmp/muri-test-rpc-XXXXXX";

static cm_rpc_client *client_for(const tproc *p, const char *ca, const char *name)
{
	cm_rpc_client *c = NULL;
	char err[256];
	cm_rpc_client_opts o = {.target = p->target, .tls_ca_file = ca, .tls_server_name = name};
	if (cm_rpc_client_new(&o, &c, err, sizeof(err)) != CM_OK)
		printf("# client: %s\n", err);
	return c;
}

/* One Say call; returns the cm_err code, fills st and (if reply) the reply. */
static int say(cm_rpc_client *c, const Muri__Test__EchoRequest *req, int timeout_ms,
	       cm_rpc_status *st, Muri__Test__EchoReply **reply)
{
	ProtobufCMessage *resp = NULL;
	int rc = cm_rpc_unary(c, SAY, &req->base, &muri__test__echo_reply__descriptor, &resp,
			      timeout_ms, st);
	if (rc == CM_OK && reply)
		*reply = (Muri__Test__EchoReply *)resp;
	else if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

static int start_echo(tproc *p, const char *name, const char *const *args)
{
	if (tproc_start(p, name, server_exe, args, 10000) != 0) {
		printf("# %s did not start\n", name);
		tproc_cleanup(p, 1);
		return -1;
	}
	return 0;
}

static tproc main_srv;
static cm_rpc_client *main_cli;

static void test_unary_roundtrip(void)
{
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	Muri__Test__EchoReply *r = NULL;
	req.payload.data = (uint8_t *)"hello";
	req.payload.len = 5;
	TAP_EQ(say(main_cli, &req, 5000, &st, &r), CM_OK);
	TAP_EQ(st.code, GRPC_STATUS_OK);
	TAP_CHECK(r && r->payload.len == 5 && memcmp(r->payload.data, "hello", 5) == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	/* 8 MiB each way */
	size_t n = 8u << 20;
	uint8_t *big = malloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 7 + 3);
	req.payload.data = big;
	req.payload.len = n;
	r = NULL;
	TAP_EQ(say(main_cli, &req, 20000, &st, &r), CM_OK);
	TAP_CHECK(r && r->payload.len == n && memcmp(r->payload.data, big, n) == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	free(big);
}

static void test_status_code_and_message(void)
{
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	req.fail_code = GRPC_STATUS_INVALID_ARGUMENT;
	req.fail_message = "vectors[3]: dimension 12, expected 128";
	TAP_EQ(say(main_cli, &req, 5000, &st, NULL), CM_ERR_INVALID);
	TAP_EQ(st.code, GRPC_STATUS_INVALID_ARGUMENT);
	TAP_STREQ(st.message, "vectors[3]: dimension 12, expected 128");
	req.fail_code = GRPC_STATUS_NOT_FOUND;
	req.fail_message = "collection \"x\" does not exist";
	TAP_EQ(say(main_cli, &req, 5000, &st, NULL), CM_ERR_NOTFOUND);
	TAP_EQ(st.code, GRPC_STATUS_NOT_FOUND);
	TAP_STREQ(st.message, "collection \"x\" does not exist");
}

static void test_deadline_exceeded(void)
{
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	req.sleep_ms = 3000;
	long long t0 = tproc_now_ms();
	TAP_EQ(say(main_cli, &req, 150, &st, NULL), CM_ERR_TIMEOUT);
	long long took = tproc_now_ms() - t0;
	TAP_EQ(st.code, GRPC_STATUS_DEADLINE_EXCEEDED);
	TAP_CHECK(took >= 140 && took < 2500);
	/* the server is still fine afterwards */
	req.sleep_ms = 0;
	TAP_EQ(say(main_cli, &req, 5000, &st, NULL), CM_OK);
}

static void test_unknown_method(void)
{
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	ProtobufCMessage *resp = NULL;
	int rc = cm_rpc_unary(main_cli, "/muri.test.Echo/Nope", &req.base,
			      &muri__test__echo_reply__descriptor, &resp, 5000, &st);
	TAP_CHECK(rc != CM_OK);
	TAP_EQ(st.code, GRPC_STATUS_UNIMPLEMENTED);
	TAP_CHECK(strstr(st.message, "/muri.test.Echo/Nope") != NULL);
	rc = cm_rpc_unary(main_cli, "/muri.v1.Ledger/Status", &req.base,
			  &muri__test__echo_reply__descriptor, &resp, 5000, &st);
	TAP_EQ(st.code, GRPC_STATUS_UNIMPLEMENTED);
	TAP_CHECK(resp == NULL);
}

static void test_message_limit(void)
{
	tproc p;
	const char *args[] = {"--rpc-max-message", "1M", NULL};
	if (start_echo(&p, "echo-small", args) != 0) {
		TAP_CHECK(0);
		return;
	}
	cm_rpc_client *c = client_for(&p, NULL, NULL);
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	uint8_t *buf = calloc(1, 2u << 20);
	req.payload.data = buf;
	req.payload.len = 512u << 10;
	TAP_EQ(say(c, &req, 5000, &st, NULL), CM_OK);
	req.payload.len = 2u << 20;
	TAP_EQ(say(c, &req, 5000, &st, NULL), CM_ERR_TOOBIG);
	TAP_EQ(st.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
	printf("# oversized request: %s\n", st.message);
	/* a reply over the server's limit fails the same way */
	req.payload.len = 0;
	req.reply_bytes = 2u << 20;
	TAP_EQ(say(c, &req, 5000, &st, NULL), CM_ERR_TOOBIG);
	TAP_EQ(st.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
	/* and the server goes on serving */
	req.reply_bytes = 0;
	TAP_EQ(say(c, &req, 5000, &st, NULL), CM_OK);
	free(buf);
	cm_rpc_client_free(c);
	TAP_EQ(tproc_stop(&p, SIGTERM, 10000), 0);
	tproc_cleanup(&p, tap_case_failed);
}

static void test_server_stream(void)
{
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	cm_rpc_stream *s = NULL;
	req.count = 100;
	TAP_EQ(cm_rpc_stream_open(main_cli, COUNT, &req.base, &muri__test__echo_reply__descriptor,
				  10000, &s, &st), CM_OK);
	uint64_t expect = 0;
	int rc;
	ProtobufCMessage *m;
	while ((rc = cm_rpc_stream_next(s, &m, 5000, &st)) == 1) {
		TAP_EQ(((Muri__Test__EchoReply *)m)->seq, expect);
		expect++;
		protobuf_c_message_free_unpacked(m, NULL);
	}
	TAP_EQ(expect, 100);
	TAP_EQ(rc, CM_ERR_STATE);
	TAP_EQ(st.code, GRPC_STATUS_OK);
	cm_rpc_stream_close(s);
}

static void test_stream_cancel_and_wait(void)
{
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	cm_rpc_stream *s = NULL;
	ProtobufCMessage *m;
	req.count = 0;
	req.interval_ms = 200;
	TAP_EQ(cm_rpc_stream_open(main_cli, COUNT, &req.base, &muri__test__echo_reply__descriptor,
				  0, &s, &st), CM_OK);
	TAP_EQ(cm_rpc_stream_next(s, &m, 5000, &st), 1); /* seq 0 at once */
	protobuf_c_message_free_unpacked(m, NULL);
	TAP_EQ(cm_rpc_stream_next(s, &m, 20, &st), 0); /* nothing within 20 ms */
	TAP_EQ(cm_rpc_stream_next(s, &m, 5000, &st), 1); /* seq 1 after ~200 ms */
	TAP_EQ(((Muri__Test__EchoReply *)m)->seq, 1);
	protobuf_c_message_free_unpacked(m, NULL);
	cm_rpc_stream_close(s);
	/* the server still answers */
	req.count = 0;
	req.interval_ms = 0;
	TAP_EQ(say(main_cli, &req, 5000, &st, NULL), CM_OK);
}

struct load {
	cm_rpc_client *c;
	int calls, ok, intact;
	int id;
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	char buf[64];
	for (int i = 0; i < l->calls; i++) {
		Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
		int n = snprintf(buf, sizeof(buf), "thread %d call %d", l->id, i);
		req.payload.data = (uint8_t *)buf;
		req.payload.len = (size_t)n;
		cm_rpc_status st;
		Muri__Test__EchoReply *r = NULL;
		if (say(l->c, &req, 10000, &st, &r) == CM_OK) {
			l->ok++;
			if (r->payload.len == (size_t)n && memcmp(r->payload.data, buf, (size_t)n) == 0)
				l->intact++;
			protobuf_c_message_free_unpacked(&r->base, NULL);
		}
	}
	return NULL;
}

static void test_concurrent_clients(void)
{
	pthread_t t[8];
	struct load l[8];
	for (int i = 0; i < 8; i++) {
		l[i] = (struct load){.c = main_cli, .calls = 300, .id = i};
		pthread_create(&t[i], NULL, load_main, &l[i]);
	}
	int ok = 0, intact = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		ok += l[i].ok;
		intact += l[i].intact;
	}
	TAP_EQ(ok, 8 * 300);
	TAP_EQ(intact, 8 * 300);
}

static int make_cert(const char *dir, const char *name)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout %s/%s.key -out %s/%s.crt -days 2 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 && chmod 600 %s/%s.key",
		 dir, name, dir, name, dir, name);
	return system(cmd);
}

static void test_tls(void)
{
	char crt[600], key[600], other[600];
	TAP_EQ(make_cert(tmpdir, "srv"), 0);
	TAP_EQ(make_cert(tmpdir, "other"), 0);
	snprintf(crt, sizeof(crt), "%s/srv.crt", tmpdir);
	snprintf(key, sizeof(key), "%s/srv.key", tmpdir);
	snprintf(other, sizeof(other), "%s/other.crt", tmpdir);
	tproc p;
	const char *args[] = {"--tls-cert", crt, "--tls-key", key, NULL};
	if (start_echo(&p, "echo-tls", args) != 0) {
		TAP_CHECK(0);
		return;
	}
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	Muri__Test__EchoReply *r = NULL;
	req.payload.data = (uint8_t *)"secret";
	req.payload.len = 6;
	cm_rpc_client *c = client_for(&p, crt, "localhost");
	TAP_EQ(say(c, &req, 5000, &st, &r), CM_OK);
	TAP_CHECK(r && r->payload.len == 6);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	cm_rpc_client_free(c);
	/* verified by IP address in the certificate, without a name override */
	c = client_for(&p, crt, NULL);
	TAP_EQ(say(c, &req, 5000, &st, NULL), CM_OK);
	cm_rpc_client_free(c);
	/* a plaintext client cannot talk to a TLS server */
	c = client_for(&p, NULL, NULL);
	TAP_EQ(say(c, &req, 3000, &st, NULL), CM_ERR_UNAVAILABLE);
	TAP_EQ(st.code, GRPC_STATUS_UNAVAILABLE);
	cm_rpc_client_free(c);
	/* nor a client that trusts another CA */
	c = client_for(&p, other, "localhost");
	TAP_EQ(say(c, &req, 3000, &st, NULL), CM_ERR_UNAVAILABLE);
	cm_rpc_client_free(c);
	TAP_EQ(tproc_stop(&p, SIGTERM, 10000), 0);
	tproc_cleanup(&p, tap_case_failed);
}

/* DIR/NAME.{key,crt}: a self-signed certificate bound to node (cm_tls_id.h). */
static int make_bound_cert(const char *dir, const char *name, const cm_keypair *node)
{
	char cmd[2048], key[600], why[256], uri[CM_TLS_ID_URI_MAX];
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	snprintf(cmd, sizeof(cmd),
		 "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out %s >/dev/null 2>&1 && "
		 "chmod 600 %s", key, key);
	if (system(cmd) != 0)
		return -1;
	uint8_t *spki = NULL;
	size_t n = 0;
	if (cm_tls_id_spki_of_key_file(key, &spki, &n, why, sizeof(why)) != CM_OK)
		return -1;
	cm_tls_id_uri(node, spki, n, uri);
	free(spki);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -new -key %s -out %s/%s.crt -days 2 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost,IP:127.0.0.1,URI:%s >/dev/null 2>&1",
		 key, dir, name, uri);
	return system(cmd);
}

/* A client told which node key to expect takes answers only from a server
 * whose certificate is bound to it. */
static void test_tls_expected_node(void)
{
	cm_keypair node, other;
	cm_keypair_generate(&node);
	cm_keypair_generate(&other);
	char crt[600], key[600], plain[600], err[256];
	TAP_EQ(make_bound_cert(tmpdir, "bound", &node), 0);
	TAP_EQ(make_cert(tmpdir, "plain"), 0);
	snprintf(crt, sizeof(crt), "%s/bound.crt", tmpdir);
	snprintf(key, sizeof(key), "%s/bound.key", tmpdir);
	snprintf(plain, sizeof(plain), "%s/plain.crt", tmpdir);
	tproc p;
	const char *args[] = {"--tls-cert", crt, "--tls-key", key, NULL};
	if (start_echo(&p, "echo-bound", args) != 0) {
		TAP_CHECK(0);
		return;
	}
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	const uint8_t *expect[] = {node.pk, other.pk};
	for (int i = 0; i < 2; i++) {
		cm_rpc_client *c = NULL;
		cm_rpc_client_opts o = {.target = p.target, .tls_ca_file = crt, .tls_expect_node = expect[i]};
		TAP_EQ(cm_rpc_client_new(&o, &c, err, sizeof(err)), CM_OK);
		int rc = say(c, &req, 5000, &st, NULL);
		if (i == 0) {
			TAP_EQ(rc, CM_OK);
		} else {
			TAP_EQ(rc, CM_ERR_PERM);
			TAP_EQ(st.code, GRPC_STATUS_UNAUTHENTICATED);
			TAP_CHECK(strstr(st.message, "is not node") != NULL);
		}
		/* a refusal: the expected node's is passed on; another's is not */
		Muri__Test__EchoRequest fail = MURI__TEST__ECHO_REQUEST__INIT;
		fail.fail_code = GRPC_STATUS_NOT_FOUND;
		fail.fail_message = "no such fragment";
		rc = say(c, &fail, 5000, &st, NULL);
		TAP_EQ(st.code, i == 0 ? GRPC_STATUS_NOT_FOUND : GRPC_STATUS_UNAUTHENTICATED);
		TAP_CHECK(strstr(st.message, i == 0 ? "no such fragment" : "is not node") != NULL);
		/* a server stream: the expected node's messages are read; another's
		 * stream ends at its first message, none handed on */
		Muri__Test__EchoRequest sreq = MURI__TEST__ECHO_REQUEST__INIT;
		sreq.count = 3;
		cm_rpc_stream *s = NULL;
		ProtobufCMessage *m = NULL;
		int got = 0;
		TAP_EQ(cm_rpc_stream_open(c, COUNT, &sreq.base, &muri__test__echo_reply__descriptor, 5000, &s, &st), CM_OK);
		while (s && (rc = cm_rpc_stream_next(s, &m, 5000, &st)) == 1) {
			got++;
			protobuf_c_message_free_unpacked(m, NULL);
		}
		TAP_EQ(got, i == 0 ? 3 : 0);
		if (i == 0) {
			TAP_EQ(st.code, GRPC_STATUS_OK);
		} else {
			TAP_EQ(rc, CM_ERR_PERM);
			TAP_EQ(st.code, GRPC_STATUS_UNAUTHENTICATED);
			TAP_CHECK(strstr(st.message, "is not node") != NULL);
			/* and stays ended */
			TAP_EQ(cm_rpc_stream_next(s, &m, 100, &st), CM_ERR_PERM);
		}
		cm_rpc_stream_close(s);
		cm_rpc_client_free(c);
	}
	TAP_EQ(tproc_stop(&p, SIGTERM, 10000), 0);
	tproc_cleanup(&p, tap_case_failed);
	/* a server whose certificate names no node key */
	snprintf(key, sizeof(key), "%s/plain.key", tmpdir);
	const char *args2[] = {"--tls-cert", plain, "--tls-key", key, NULL};
	if (start_echo(&p, "echo-plain", args2) != 0) {
		TAP_CHECK(0);
		return;
	}
	cm_rpc_client *c = NULL;
	cm_rpc_client_opts o = {.target = p.target, .tls_ca_file = plain, .tls_expect_node = node.pk};
	TAP_EQ(cm_rpc_client_new(&o, &c, err, sizeof(err)), CM_OK);
	TAP_EQ(say(c, &req, 5000, &st, NULL), CM_ERR_PERM);
	TAP_CHECK(strstr(st.message, "names no node key") != NULL);
	cm_rpc_client_free(c);
	TAP_EQ(tproc_stop(&p, SIGTERM, 10000), 0);
	tproc_cleanup(&p, tap_case_failed);
	cm_keypair_wipe(&node);
	cm_keypair_wipe(&other);
}

struct inflight {
	cm_rpc_client *c;
	unsigned sleep_ms;
	int rc, code;
	long long took;
};

static void *inflight_main(void *arg)
{
	struct inflight *f = arg;
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	req.sleep_ms = f->sleep_ms;
	long long t0 = tproc_now_ms();
	f->rc = say(f->c, &req, 30000, &st, NULL);
	f->code = st.code;
	__atomic_store_n(&f->took, tproc_now_ms() - t0, __ATOMIC_SEQ_CST);
	return NULL;
}

static int log_contains(const tproc *p, const char *needle)
{
	FILE *f = fopen(p->log, "r");
	char line[2048];
	int found = 0;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void test_sigterm_lets_calls_finish(void)
{
	tproc p;
	const char *args[] = {"--grace-ms", "5000", NULL};
	if (start_echo(&p, "echo-term", args) != 0) {
		TAP_CHECK(0);
		return;
	}
	cm_rpc_client *c = client_for(&p, NULL, NULL);
	pthread_t t[4];
	struct inflight f[4];
	for (int i = 0; i < 4; i++) {
		f[i] = (struct inflight){.c = c, .sleep_ms = 600};
		pthread_create(&t[i], NULL, inflight_main, &f[i]);
	}
	usleep(200 * 1000);
	long long t0 = tproc_now_ms();
	int status = tproc_stop(&p, SIGTERM, 10000);
	long long took = tproc_now_ms() - t0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		TAP_EQ(f[i].rc, CM_OK); /* in flight at SIGTERM, finished within the grace */
	}
	TAP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TAP_CHECK(took < 4000);
	TAP_CHECK(log_contains(&p, "event=stopping"));
	TAP_CHECK(log_contains(&p, "event=stopped"));
	/* nothing listens any more */
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	TAP_EQ(say(c, &req, 2000, &st, NULL), CM_ERR_UNAVAILABLE);
	cm_rpc_client_free(c);
	tproc_cleanup(&p, tap_case_failed);
}

/* A call that holds its worker (a handler sleeping 5 s) delays no other
 * call: with 2 workers, 20 quick calls made one after another all return
 * while the slow one is still in flight (each worker used to drain a queue
 * of its own, so calls given to the busy worker's queue waited for it). */
static void test_busy_worker_blocks_no_call(void)
{
	tproc p;
	const char *args[] = {"--rpc-workers", "2", NULL};
	if (start_echo(&p, "echo-busy", args) != 0) {
		TAP_CHECK(0);
		return;
	}
	cm_rpc_client *c = client_for(&p, NULL, NULL);
	struct inflight slow = {.c = c, .sleep_ms = 5000, .took = -1};
	pthread_t t;
	pthread_create(&t, NULL, inflight_main, &slow);
	usleep(300 * 1000);
	Muri__Test__EchoRequest req = MURI__TEST__ECHO_REQUEST__INIT;
	cm_rpc_status st;
	int ok = 0;
	for (int i = 0; i < 20; i++)
		ok += say(c, &req, 30000, &st, NULL) == CM_OK;
	long long slow_took = __atomic_load_n(&slow.took, __ATOMIC_SEQ_CST);
	TAP_EQ(ok, 20);
	TAP_EQ(slow_took, -1); /* every quick call returned before the slow one */
	pthread_join(t, NULL);
	TAP_EQ(slow.rc, CM_OK);
	cm_rpc_client_free(c);
	TAP_EQ(tproc_stop(&p, SIGTERM, 10000), 0);
	tproc_cleanup(&p, tap_case_failed);
}

static void test_sigterm_cancels_after_grace(void)
{
	tproc p;
	const char *args[] = {"--grace-ms", "300", NULL};
	if (start_echo(&p, "echo-grace", args) != 0) {
		TAP_CHECK(0);
		return;
	}
	cm_rpc_client *c = client_for(&p, NULL, NULL);
	/* an endless stream and a long unary call are in flight at SIGTERM */
	Muri__Test__EchoRequest sreq = MURI__TEST__ECHO_REQUEST__INIT;
	sreq.interval_ms = 50;
	cm_rpc_stream *s = NULL;
	cm_rpc_status st;
	TAP_EQ(cm_rpc_stream_open(c, COUNT, &sreq.base, &muri__test__echo_reply__descriptor, 0, &s, &st),
	       CM_OK);
	ProtobufCMessage *m = NULL;
	TAP_EQ(cm_rpc_stream_next(s, &m, 5000, &st), 1);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	pthread_t t;
	struct inflight f = {.c = c, .sleep_ms = 20000};
	pthread_create(&t, NULL, inflight_main, &f);
	usleep(200 * 1000);
	long long t0 = tproc_now_ms();
	int status = tproc_stop(&p, SIGTERM, 10000);
	long long took = tproc_now_ms() - t0;
	pthread_join(t, NULL);
	TAP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TAP_CHECK(took < 3000);
	TAP_CHECK(f.rc != CM_OK);
	TAP_CHECK(f.took < 5000);
	printf("# long call after grace: %s in %lld ms; server stopped in %lld ms\n",
	       cm_rpc_code_name(f.code), f.took, took);
	int rc;
	while ((rc = cm_rpc_stream_next(s, &m, 5000, &st)) == 1)
		protobuf_c_message_free_unpacked(m, NULL);
	TAP_CHECK(rc < 0 && st.code != GRPC_STATUS_OK);
	cm_rpc_stream_close(s);
	cm_rpc_client_free(c);
	tproc_cleanup(&p, tap_case_failed);
}

static void test_port_in_use(void)
{
	tproc p;
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", main_srv.rpc_port);
	/* later flags win, so this --listen overrides tproc's 127.0.0.1:0 */
	const char *args[] = {"--listen", listen, NULL};
	int started = tproc_start(&p, "echo-taken", server_exe, args, 5000);
	TAP_EQ(started, -1);
	int status = tproc_stop(&p, SIGTERM, 5000);
	TAP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	TAP_CHECK(log_contains(&p, "cannot listen on"));
	tproc_cleanup(&p, tap_case_failed);
}

static void test_bad_config_names_key(void)
{
	struct {
		const char *a, *b, *needle;
	} cases[] = {
		{"--rpc-workers", "0", "rpc_workers"},
		{"--rpc-max-message", "lots", "rpc_max_message"},
		{"--log-level", "loud", "log_level"},
		{"--bogus-key", "1", "bogus"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tproc p;
		const char *args[] = {cases[i].a, cases[i].b, NULL};
		TAP_EQ(tproc_start(&p, "echo-badcfg", server_exe, args, 5000), -1);
		int status = tproc_stop(&p, SIGTERM, 5000);
		TAP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
		TAP_CHECK(log_contains(&p, cases[i].needle));
		tproc_cleanup(&p, tap_case_failed);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	tproc_build_path("tests/rpc/muri-echo-server", server_exe, sizeof(server_exe));
	if (!mkdtemp(tmpdir))
		return 1;
	if (start_echo(&main_srv, "echo", NULL) != 0) {
		printf("Bail out! the echo server did not start\n");
		return 1;
	}
	main_cli = client_for(&main_srv, NULL, NULL);
	TAP_RUN(test_unary_roundtrip);
	TAP_RUN(test_status_code_and_message);
	TAP_RUN(test_deadline_exceeded);
	TAP_RUN(test_unknown_method);
	TAP_RUN(test_message_limit);
	TAP_RUN(test_server_stream);
	TAP_RUN(test_stream_cancel_and_wait);
	TAP_RUN(test_concurrent_clients);
	TAP_RUN(test_tls);
	TAP_RUN(test_tls_expected_node);
	TAP_RUN(test_port_in_use);
	TAP_RUN(test_bad_config_names_key);
	TAP_RUN(test_busy_worker_blocks_no_call);
	TAP_RUN(test_sigterm_lets_calls_finish);
	TAP_RUN(test_sigterm_cancels_after_grace);
	cm_rpc_client_free(main_cli);
	int status = tproc_stop(&main_srv, SIGTERM, 10000);
	tap_begin("main_server_stops_cleanly");
	TAP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	tproc_cleanup(&main_srv, tap_failed || tap_case_failed);
	tap_end();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
