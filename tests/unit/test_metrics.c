/* Tests of common/cm_metrics: the rendered text format line by line,
 * registration rules, exact sums under concurrent updates from 4 threads,
 * histogram buckets, and an HTTP round trip on 127.0.0.1 (port 0) with a
 * plain socket client: /metrics, /healthz healthy and not, 404, 405. */
#include "tap.h"
#include "cm_metrics.h"
#include "cm_err.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define THREADS 4
#define UPDATES 100000
#define HTTP_MAX 65536
#define HTTP_TIMEOUT_S 5

static void test_render_format(void)
{
	cm_metrics *m = cm_metrics_new();
	const double bounds[] = {0.005, 0.125, 1};

	cm_counter *search = cm_metrics_counter(m, "muri_requests_total", "method=\"search\"",
						"Requests served.");
	cm_counter *insert = cm_metrics_counter(m, "muri_requests_total", "method=\"insert\"",
						"another help, ignored");
	cm_gauge *frag = cm_metrics_gauge(m, "muri_fragments", NULL, "Fragments held.");
	cm_histogram *lat = cm_metrics_histogram(m, "muri_latency_seconds", "method=\"search\"",
						 "Latency.", bounds, 3);
	cm_histogram *plain = cm_metrics_histogram(m, "muri_plain_seconds", NULL, "Back\\slash\nnewline.",
						   bounds, 1);
	cm_counter *nohelp = cm_metrics_counter(m, "muri_nohelp_total", "a=\"x\\\"y\",b=\"2\"", NULL);
	TAP_CHECK(search && insert && frag && lat && plain && nohelp && search != insert);

	cm_counter_add(search, 2);
	cm_counter_add(search, 1);
	cm_counter_add(nohelp, 7);
	cm_gauge_set(frag, 4);
	cm_gauge_add(frag, -1.5);
	cm_histogram_observe(lat, 0.00390625); /* exact binary fractions keep _sum exact */
	cm_histogram_observe(lat, 0.0625);
	cm_histogram_observe(lat, 0.125); /* on a bound: le is inclusive */
	cm_histogram_observe(lat, 4);
	cm_histogram_observe(plain, 0.5);

	char *text = cm_metrics_render(m);
	TAP_STREQ(text,
		  "# HELP muri_requests_total Requests served.\n"
		  "# TYPE muri_requests_total counter\n"
		  "muri_requests_total{method=\"search\"} 3\n"
		  "muri_requests_total{method=\"insert\"} 0\n"
		  "# HELP muri_fragments Fragments held.\n"
		  "# TYPE muri_fragments gauge\n"
		  "muri_fragments 2.5\n"
		  "# HELP muri_latency_seconds Latency.\n"
		  "# TYPE muri_latency_seconds histogram\n"
		  "muri_latency_seconds_bucket{method=\"search\",le=\"0.005\"} 1\n"
		  "muri_latency_seconds_bucket{method=\"search\",le=\"0.125\"} 3\n"
		  "muri_latency_seconds_bucket{method=\"search\",le=\"1\"} 3\n"
		  "muri_latency_seconds_bucket{method=\"search\",le=\"+Inf\"} 4\n"
		  "muri_latency_seconds_sum{method=\"search\"} 4.19140625\n"
		  "muri_latency_seconds_count{method=\"search\"} 4\n"
		  "# HELP muri_plain_seconds Back\\\\slash\\nnewline.\n"
		  "# TYPE muri_plain_seconds histogram\n"
		  "muri_plain_seconds_bucket{le=\"0.005\"} 0\n"
		  "muri_plain_seconds_bucket{le=\"+Inf\"} 1\n"
		  "muri_plain_seconds_sum 0.5\n"
		  "muri_plain_seconds_count 1\n"
		  "# TYPE muri_nohelp_total counter\n"
		  "muri_nohelp_total{a=\"x\\\"y\",b=\"2\"} 7\n");
	free(text);
	cm_metrics_free(m);
}

static void test_gauge_values(void)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{0, "muri_g 0\n"},          {-0.5, "muri_g -0.5\n"},
		{0.1, "muri_g 0.1\n"},      {1e21, "muri_g 1e+21\n"},
		{1.0 / 3, "muri_g 0.33333333333333331\n"},
		{INFINITY, "muri_g +Inf\n"}, {-INFINITY, "muri_g -Inf\n"}, {NAN, "muri_g NaN\n"},
	};
	cm_metrics *m = cm_metrics_new();
	cm_gauge *g = cm_metrics_gauge(m, "muri_g", "", "");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cm_gauge_set(g, cases[i].v);
		char *text = cm_metrics_render(m);
		char want[128];
		/* an empty help gives no HELP line */
		snprintf(want, sizeof(want), "# TYPE muri_g gauge\n%s", cases[i].want);
		TAP_STREQ(text, want);
		free(text);
	}
	cm_gauge_set(g, 10);
	cm_gauge_add(g, 0.25);
	TAP_CHECK(cm_gauge_value(g) == 10.25);
	cm_metrics_free(m);
}

static void test_registration_rules(void)
{
	cm_metrics *m = cm_metrics_new();
	const double b1[] = {1, 2}, b2[] = {1, 3}, bad[] = {2, 1}, inf[] = {1, INFINITY};
	cm_counter *c = cm_metrics_counter(m, "muri_x_total", "k=\"v\"", "x");

	TAP_CHECK(c != NULL);
	TAP_CHECK(cm_metrics_counter(m, "muri_x_total", "k=\"v\"", "x") == c);
	TAP_CHECK(cm_metrics_counter(m, "muri_x_total", "k=\"w\"", "x") != c);
	/* a name keeps its type */
	TAP_CHECK(cm_metrics_gauge(m, "muri_x_total", "k=\"z\"", "x") == NULL);
	/* invalid names and label sets */
	TAP_CHECK(cm_metrics_counter(m, "9lives", NULL, "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "has-dash", NULL, "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "", NULL, "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, NULL, NULL, "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "ok_total", "k=v", "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "ok_total", "k=\"v\",", "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "ok_total", "k=\"v\" ", "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "ok_total", "{k=\"v\"}", "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "ok_total", "k=\"a\\x\"", "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "ok_total", "k=\"open", "") == NULL);
	TAP_CHECK(cm_metrics_counter(m, "ns:ok_total", "k=\"v\",_j2=\"\"", "") != NULL);
	/* histograms: same bounds give the same one; le is reserved */
	cm_histogram *h = cm_metrics_histogram(m, "muri_h", NULL, "", b1, 2);
	TAP_CHECK(h != NULL);
	TAP_CHECK(cm_metrics_histogram(m, "muri_h", NULL, "", b1, 2) == h);
	TAP_CHECK(cm_metrics_histogram(m, "muri_h", NULL, "", b2, 2) == NULL);
	TAP_CHECK(cm_metrics_histogram(m, "muri_h", NULL, "", b1, 1) == NULL);
	TAP_CHECK(cm_metrics_histogram(m, "muri_h2", NULL, "", bad, 2) == NULL);
	TAP_CHECK(cm_metrics_histogram(m, "muri_h2", NULL, "", inf, 2) == NULL);
	TAP_CHECK(cm_metrics_histogram(m, "muri_h2", "le=\"1\"", "", b1, 2) == NULL);
	TAP_CHECK(cm_metrics_histogram(m, "muri_h2", NULL, "", b1, CM_METRICS_BUCKETS_MAX + 1) == NULL);
	TAP_CHECK(cm_metrics_histogram(m, "muri_h3", NULL, "", NULL, 0) != NULL);
	/* updates through NULL (a failed registration) are ignored */
	cm_counter_add(NULL, 1);
	cm_gauge_set(NULL, 1);
	cm_gauge_add(NULL, 1);
	cm_histogram_observe(NULL, 1);
	TAP_CHECK(cm_metrics_counter(NULL, "a", NULL, "") == NULL);
	TAP_CHECK(cm_metrics_render(NULL) == NULL);
	cm_metrics_free(m);
	cm_metrics_free(NULL);
}

static void test_histogram_buckets(void)
{
	cm_metrics *m = cm_metrics_new();
	const double bounds[] = {-1, 0, 10, 100};
	cm_histogram *h = cm_metrics_histogram(m, "muri_b", "s=\"1\"", "b", bounds, 4);
	const double obs[] = {-5, -1, -0.5, 0, 0, 3, 10, 10.5, 99, 100, 1000, NAN};
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]) - 1; i++)
		cm_histogram_observe(h, obs[i]);
	TAP_EQ(cm_histogram_count(h), 11);
	TAP_CHECK(cm_histogram_sum(h) == 1216);
	char *text = cm_metrics_render(m);
	TAP_CHECK(text && strstr(text,
		"muri_b_bucket{s=\"1\",le=\"-1\"} 2\n"
		"muri_b_bucket{s=\"1\",le=\"0\"} 5\n"
		"muri_b_bucket{s=\"1\",le=\"10\"} 7\n"
		"muri_b_bucket{s=\"1\",le=\"100\"} 10\n"
		"muri_b_bucket{s=\"1\",le=\"+Inf\"} 11\n"
		"muri_b_sum{s=\"1\"} 1216\n"
		"muri_b_count{s=\"1\"} 11\n"));
	free(text);
	/* NaN lands in +Inf only and makes the sum NaN, as in other clients */
	cm_histogram_observe(h, obs[11]);
	text = cm_metrics_render(m);
	TAP_CHECK(text && strstr(text, "muri_b_bucket{s=\"1\",le=\"100\"} 10\n"
				       "muri_b_bucket{s=\"1\",le=\"+Inf\"} 12\n"
				       "muri_b_sum{s=\"1\"} NaN\n"));
	free(text);
	cm_metrics_free(m);
}

struct shared {
	cm_metrics *m;
	atomic_int ready;
};

static void *update_thread(void *arg)
{
	struct shared *sh = arg;
	const double bounds[] = {1, 2};
	/* registering from every thread returns the same metrics */
	cm_counter *c = cm_metrics_counter(sh->m, "muri_c_total", NULL, "c");
	cm_gauge *g = cm_metrics_gauge(sh->m, "muri_g", NULL, "g");
	cm_histogram *h = cm_metrics_histogram(sh->m, "muri_h", NULL, "h", bounds, 2);
	atomic_fetch_add(&sh->ready, 1);
	while (atomic_load(&sh->ready) < THREADS)
		;
	for (int i = 0; i < UPDATES; i++) {
		cm_counter_add(c, 1);
		cm_gauge_add(g, (i & 1) ? 1.5 : -0.5);
		cm_histogram_observe(h, (double)(i % 3) + 0.5); /* 0.5, 1.5, 2.5 */
	}
	return NULL;
}

static void test_concurrent_updates(void)
{
	struct shared sh = {.m = cm_metrics_new()};
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		TAP_EQ(pthread_create(&th[i], NULL, update_thread, &sh), 0);
	/* rendering meanwhile must not disturb the updates */
	for (int i = 0; i < 20; i++)
		free(cm_metrics_render(sh.m));
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);

	const double bounds[] = {1, 2};
	cm_counter *c = cm_metrics_counter(sh.m, "muri_c_total", NULL, "c");
	cm_gauge *g = cm_metrics_gauge(sh.m, "muri_g", NULL, "g");
	cm_histogram *h = cm_metrics_histogram(sh.m, "muri_h", NULL, "h", bounds, 2);
	TAP_EQ(cm_counter_value(c), (uint64_t)THREADS * UPDATES);
	TAP_CHECK(cm_gauge_value(g) == THREADS * (UPDATES / 2) * 1.0);
	TAP_EQ(cm_histogram_count(h), (uint64_t)THREADS * UPDATES);

	char *text = cm_metrics_render(sh.m);
	char want[512];
	int per = UPDATES / 3; /* UPDATES = 3k+1: one more 0.5 */
	snprintf(want, sizeof(want),
		 "muri_h_bucket{le=\"1\"} %d\nmuri_h_bucket{le=\"2\"} %d\nmuri_h_bucket{le=\"+Inf\"} %d\n",
		 THREADS * (per + 1), THREADS * (2 * per + 1), THREADS * UPDATES);
	TAP_CHECK(text && strstr(text, want));
	snprintf(want, sizeof(want), "muri_h_sum %.15g\n",
		 THREADS * ((per + 1) * 0.5 + per * 1.5 + per * 2.5));
	TAP_CHECK(text && strstr(text, want));
	snprintf(want, sizeof(want), "muri_c_total %d\n", THREADS * UPDATES);
	TAP_CHECK(text && strstr(text, want));
	free(text);
	cm_metrics_free(sh.m);
}

/* A minimal HTTP/1.1 client: sends one request with "Connection: close"
 * and reads the answer to EOF. Returns the status, or -1. */
static int http_request(int port, const char *method, const char *path, char *headers,
			size_t hlen, char *body, size_t blen)
{
	static char resp[HTTP_MAX];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = HTTP_TIMEOUT_S};
	char req[256];
	size_t got = 0;
	int fd, status = -1;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", method, path);
	if (write(fd, req, (size_t)n) != n)
		goto out;
	for (;;) {
		ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	resp[got] = '\0';
	char *end = strstr(resp, "\r\n\r\n");
	if (!end || sscanf(resp, "HTTP/1.1 %d ", &status) != 1)
		goto out;
	size_t hl = (size_t)(end - resp) + 2, bl = got - hl - 2; /* headers keep one CRLF */
	if (hl + 1 > hlen || bl + 1 > blen) {
		status = -1;
		goto out;
	}
	memcpy(headers, resp, hl);
	headers[hl] = '\0';
	memcpy(body, end + 4, bl);
	body[bl] = '\0';
out:
	close(fd);
	return status;
}

struct health {
	atomic_int healthy;
	const char *why; /* the reason when not */
};

static int health_check(void *arg, char *reason, size_t len)
{
	struct health *h = arg;
	if (atomic_load(&h->healthy))
		return 1;
	snprintf(reason, len, "%s", h->why);
	return 0;
}

static void test_http(void)
{
	static char headers[HTTP_MAX], body[HTTP_MAX];
	struct health health = {.healthy = 1, .why = "ledger unreachable for 12s"},
		      ready = {.healthy = 0, .why = "catching up with the ledger: at height 3 of 90"};
	cm_metrics *m = cm_metrics_new();
	cm_counter *c = cm_metrics_counter(m, "muri_hits_total", NULL, "Hits.");
	int port = 0;

	cm_counter_add(c, 41);
	cm_metrics_set_ready(m, health_check, &ready);
	TAP_EQ(cm_metrics_serve(m, "127.0.0.1", 0, &port, health_check, &health), CM_OK);
	TAP_CHECK(port > 0 && port < 65536);
	TAP_EQ(cm_metrics_serve(m, "127.0.0.1", 0, NULL, NULL, NULL), CM_ERR_STATE);

	cm_counter_add(c, 1);
	TAP_EQ(http_request(port, "GET", "/metrics", headers, sizeof(headers), body, sizeof(body)), 200);
	TAP_CHECK(strstr(headers, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	TAP_STREQ(body, "# HELP muri_hits_total Hits.\n# TYPE muri_hits_total counter\nmuri_hits_total 42\n");

	TAP_EQ(http_request(port, "GET", "/metrics?x=1", headers, sizeof(headers), body, sizeof(body)), 200);

	/* alive but not ready: /healthz ok, /readyz says why not; then ready */
	TAP_EQ(http_request(port, "GET", "/healthz", headers, sizeof(headers), body, sizeof(body)), 200);
	TAP_STREQ(body, "ok");
	TAP_EQ(http_request(port, "GET", "/readyz", headers, sizeof(headers), body, sizeof(body)), 503);
	TAP_STREQ(body, "catching up with the ledger: at height 3 of 90");
	atomic_store(&ready.healthy, 1);
	TAP_EQ(http_request(port, "GET", "/readyz", headers, sizeof(headers), body, sizeof(body)), 200);
	TAP_STREQ(body, "ok");
	/* unhealthy is not ready either, for the health's reason */
	atomic_store(&health.healthy, 0);
	TAP_EQ(http_request(port, "GET", "/healthz", headers, sizeof(headers), body, sizeof(body)), 503);
	TAP_STREQ(body, "ledger unreachable for 12s");
	TAP_EQ(http_request(port, "GET", "/readyz", headers, sizeof(headers), body, sizeof(body)), 503);
	TAP_STREQ(body, "ledger unreachable for 12s");

	TAP_EQ(http_request(port, "GET", "/", headers, sizeof(headers), body, sizeof(body)), 404);
	TAP_EQ(http_request(port, "GET", "/metricsx", headers, sizeof(headers), body, sizeof(body)), 404);
	TAP_EQ(http_request(port, "POST", "/metrics", headers, sizeof(headers), body, sizeof(body)), 405);
	TAP_CHECK(strstr(headers, "\r\nAllow: GET, HEAD\r\n"));
	TAP_EQ(http_request(port, "HEAD", "/metrics", headers, sizeof(headers), body, sizeof(body)), 200);
	TAP_STREQ(body, "");

	/* stop is idempotent; the port is closed afterwards; serving again works */
	cm_metrics_stop(m);
	cm_metrics_stop(m);
	TAP_EQ(http_request(port, "GET", "/metrics", headers, sizeof(headers), body, sizeof(body)), -1);
	int port2 = 0;
	cm_metrics_set_ready(m, NULL, NULL);
	TAP_EQ(cm_metrics_serve(m, "127.0.0.1", 0, &port2, NULL, NULL), CM_OK);
	TAP_EQ(http_request(port2, "GET", "/healthz", headers, sizeof(headers), body, sizeof(body)), 200);
	TAP_STREQ(body, "ok");
	TAP_EQ(http_request(port2, "GET", "/readyz", headers, sizeof(headers), body, sizeof(body)), 200);
	TAP_STREQ(body, "ok");
	cm_metrics_free(m); /* stops the server */
}

static void test_bind_errors(void)
{
	static char headers[HTTP_MAX], body[HTTP_MAX];
	cm_metrics *m = cm_metrics_new();
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int port = 12345;

	/* a port someone else is listening on */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	TAP_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	TAP_EQ(listen(fd, 1), 0);
	TAP_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	TAP_EQ(cm_metrics_serve(m, "127.0.0.1", ntohs(sa.sin_port), &port, NULL, NULL), CM_ERR_IO);
	TAP_EQ(port, 12345); /* untouched on failure */
	close(fd);
	/* an address this host does not have (TEST-NET-1, RFC 5737) */
	TAP_EQ(cm_metrics_serve(m, "192.0.2.1", 0, &port, NULL, NULL), CM_ERR_IO);
	/* not an address at all, or a port out of range */
	TAP_EQ(cm_metrics_serve(m, "localhost:80", 0, &port, NULL, NULL), CM_ERR_INVALID);
	TAP_EQ(cm_metrics_serve(m, NULL, 0, &port, NULL, NULL), CM_ERR_INVALID);
	TAP_EQ(cm_metrics_serve(m, "127.0.0.1", 65536, &port, NULL, NULL), CM_ERR_INVALID);
	TAP_EQ(cm_metrics_serve(m, "127.0.0.1", -1, &port, NULL, NULL), CM_ERR_INVALID);
	TAP_EQ(port, 12345);
	/* "localhost" is loopback; IPv6 loopback works where the host has it */
	TAP_EQ(cm_metrics_serve(m, "localhost", 0, &port, NULL, NULL), CM_OK);
	TAP_CHECK(port > 0 && port != 12345);
	TAP_EQ(http_request(port, "GET", "/healthz", headers, sizeof(headers), body, sizeof(body)), 200);
	cm_metrics_stop(m);
	if (cm_metrics_serve(m, "::1", 0, &port, NULL, NULL) == CM_OK)
		TAP_CHECK(port > 0 && port != 12345);
	cm_metrics_free(m);
}

int main(void)
{
	TAP_RUN(test_render_format);
	TAP_RUN(test_gauge_values);
	TAP_RUN(test_registration_rules);
	TAP_RUN(test_histogram_buckets);
	TAP_RUN(test_concurrent_updates);
	TAP_RUN(test_http);
	TAP_RUN(test_bind_errors);
	return tap_done();
}
