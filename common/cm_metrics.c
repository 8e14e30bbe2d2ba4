/* A metrics registry rendered in the Prometheus text exposition format
 * (version 0.0.4), and its HTTP endpoints /metrics and /healthz served by
 * libmicrohttpd on its own thread. Registering takes the registry's mutex;
 * updating a metric is a few relaxed atomic operations and never locks. */
#include "cm_metrics.h"
#include "cm_http.h"
#include "cm_err.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "metric updates must be lock-free");

#define RENDER_INITIAL 4096
#define NUM_MAX 32 /* a formatted double: "-1.2345678901234567e-308" */
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct cm_counter {
	_Atomic uint64_t v;
};

/* A double kept as its bit pattern, so it can be loaded, stored and
 * compare-and-swapped as one 64-bit atomic. */
struct cm_gauge {
	_Atomic uint64_t bits;
};

/* Bucket i counts observations in (bounds[i-1], bounds[i]]; bucket nbounds
 * is (bounds[nbounds-1], +Inf). They are summed into cumulative buckets only
 * when rendered, and _count is their total, so it always equals le="+Inf". */
struct cm_histogram {
	size_t nbounds;
	double bounds[CM_METRICS_BUCKETS_MAX];
	_Atomic uint64_t buckets[CM_METRICS_BUCKETS_MAX + 1];
	_Atomic uint64_t sum_bits;
};

/* One label set of a metric; never moves once allocated. */
struct series {
	struct series *next;
	char *labels; /* "" when there are none */
	union {
		cm_counter counter;
		cm_gauge gauge;
		cm_histogram hist;
	} m;
};

/* All series sharing a name, and so one HELP and TYPE. */
struct family {
	struct family *next;
	char *name;
	char *help;
	enum metric_type type;
	struct series *first, *last;
};

struct cm_metrics {
	pthread_mutex_t mu; /* guards the lists, nseries and daemon */
	struct family *first, *last;
	size_t nseries;
	struct MHD_Daemon *daemon;
	cm_health_fn health, ready;
	void *health_arg, *ready_arg;
};

/* A growing text buffer that refuses to pass CM_METRICS_RENDER_MAX. */
struct render_buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static uint64_t double_bits(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof(u));
	return u;
}

static double bits_double(uint64_t u)
{
	double v;
	memcpy(&v, &u, sizeof(v));
	return v;
}

/* Adds v to the double stored in *bits with a compare-and-swap loop. */
static void atomic_add_double(_Atomic uint64_t *bits, double v)
{
	uint64_t old = atomic_load_explicit(bits, memory_order_relaxed), sum;
	do {
		sum = double_bits(bits_double(old) + v);
	} while (!atomic_compare_exchange_weak_explicit(bits, &old, sum, memory_order_relaxed,
							memory_order_relaxed));
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static bool valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > CM_METRICS_NAME_MAX || is_digit(s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != ':')
			return false;
	return true;
}

/* name="value"(,name="value")* with values escaped as the format wants
 * (\\, \" and \n only); le is refused when the le label is added later. */
static bool valid_labels(const char *s, bool forbid_le)
{
	const char *p = s, *start;
	if (strlen(s) > CM_METRICS_LABELS_MAX)
		return false;
	if (*p == '\0')
		return true;
	for (;;) {
		start = p;
		if (!is_alpha(*p))
			return false;
		while (is_alpha(*p) || is_digit(*p))
			p++;
		if (forbid_le && p - start == 2 && strncmp(start, "le", 2) == 0)
			return false;
		if (*p++ != '=' || *p++ != '"')
			return false;
		while (*p != '"') {
			if (*p == '\0' || *p == '\n')
				return false;
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return false;
			}
			p++;
		}
		p++;
		if (*p == '\0')
			return true;
		if (*p++ != ',')
			return false;
	}
}

/* The caller owns the registry and frees it with cm_metrics_free. */
cm_metrics *cm_metrics_new(void)
{
	cm_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

/* Frees the registry and every metric it handed out; pointers to them die. */
void cm_metrics_free(cm_metrics *m)
{
	struct family *f, *fnext;
	struct series *s, *snext;

	if (!m)
		return;
	cm_metrics_stop(m);
	for (f = m->first; f; f = fnext) {
		fnext = f->next;
		for (s = f->first; s; s = snext) {
			snext = s->next;
			free(s->labels);
			free(s);
		}
		free(f->name);
		free(f->help);
		free(f);
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static struct family *find_family(cm_metrics *m, const char *name)
{
	for (struct family *f = m->first; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static struct series *find_series(struct family *f, const char *labels)
{
	for (struct series *s = f->first; s; s = s->next)
		if (strcmp(s->labels, labels) == 0)
			return s;
	return NULL;
}

/* Finds or creates the series name{labels} of the given type, under the
 * mutex; a histogram's bounds are copied in before the series is published,
 * and an existing histogram with other bounds is refused. The registry owns
 * what this allocates. */
static struct series *get_series(cm_metrics *m, const char *name, const char *labels,
				 const char *help, enum metric_type type,
				 const double *bounds, size_t nbounds)
{
	struct family *f;
	struct series *s = NULL;

	if (!m || !valid_name(name))
		return NULL;
	if (!labels)
		labels = "";
	if (!valid_labels(labels, type == METRIC_HISTOGRAM))
		return NULL;

	pthread_mutex_lock(&m->mu);
	f = find_family(m, name);
	if (f && f->type != type)
		goto out;
	if (f && (s = find_series(f, labels)) != NULL) {
		if (type == METRIC_HISTOGRAM &&
		    (s->m.hist.nbounds != nbounds ||
		     (nbounds && memcmp(s->m.hist.bounds, bounds, nbounds * sizeof(double)) != 0)))
			s = NULL;
		goto out;
	}
	if (m->nseries >= CM_METRICS_SERIES_MAX)
		goto out;
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			goto out;
		f->name = strdup(name);
		f->help = strndup(help ? help : "", CM_METRICS_HELP_MAX);
		f->type = type;
		if (!f->name || !f->help) {
			free(f->name);
			free(f->help);
			free(f);
			goto out;
		}
		if (m->last)
			m->last->next = f;
		else
			m->first = f;
		m->last = f;
	}
	s = calloc(1, sizeof(*s));
	if (s && !(s->labels = strdup(labels))) {
		free(s);
		s = NULL;
	}
	if (!s)
		goto out; /* an empty family stays; it renders nothing */
	if (type == METRIC_HISTOGRAM) {
		s->m.hist.nbounds = nbounds;
		if (nbounds)
			memcpy(s->m.hist.bounds, bounds, nbounds * sizeof(double));
	}
	if (f->last)
		f->last->next = s;
	else
		f->first = s;
	f->last = s;
	m->nseries++;
out:
	pthread_mutex_unlock(&m->mu);
	return s;
}

/* The registry owns the result. */
cm_counter *cm_metrics_counter(cm_metrics *m, const char *name, const char *labels, const char *help)
{
	struct series *s = get_series(m, name, labels, help, METRIC_COUNTER, NULL, 0);
	return s ? &s->m.counter : NULL;
}

/* The registry owns the result. */
cm_gauge *cm_metrics_gauge(cm_metrics *m, const char *name, const char *labels, const char *help)
{
	struct series *s = get_series(m, name, labels, help, METRIC_GAUGE, NULL, 0);
	return s ? &s->m.gauge : NULL;
}

/* The registry owns the result. Registering name+labels again with other
 * bounds returns NULL; so do bounds that are not finite and ascending. */
cm_histogram *cm_metrics_histogram(cm_metrics *m, const char *name, const char *labels,
				   const char *help, const double *bounds, size_t nbounds)
{
	struct series *s;

	if (nbounds > CM_METRICS_BUCKETS_MAX || (nbounds && !bounds))
		return NULL;
	for (size_t i = 0; i < nbounds; i++)
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			return NULL;
	s = get_series(m, name, labels, help, METRIC_HISTOGRAM, bounds, nbounds);
	return s ? &s->m.hist : NULL;
}

void cm_counter_add(cm_counter *c, uint64_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

void cm_gauge_set(cm_gauge *g, double v)
{
	if (g)
		atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

void cm_gauge_add(cm_gauge *g, double v)
{
	if (g)
		atomic_add_double(&g->bits, v);
}

void cm_histogram_observe(cm_histogram *h, double v)
{
	size_t i = 0;
	if (!h)
		return;
	while (i < h->nbounds && !(v <= h->bounds[i]))
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_add_double(&h->sum_bits, v);
}

uint64_t cm_counter_value(const cm_counter *c)
{
	return c ? atomic_load_explicit(&((cm_counter *)c)->v, memory_order_relaxed) : 0;
}

double cm_gauge_value(const cm_gauge *g)
{
	return g ? bits_double(atomic_load_explicit(&((cm_gauge *)g)->bits, memory_order_relaxed)) : 0;
}

uint64_t cm_histogram_count(const cm_histogram *h)
{
	uint64_t n = 0;
	if (!h)
		return 0;
	for (size_t i = 0; i <= h->nbounds; i++)
		n += atomic_load_explicit(&((cm_histogram *)h)->buckets[i], memory_order_relaxed);
	return n;
}

double cm_histogram_sum(const cm_histogram *h)
{
	return h ? bits_double(atomic_load_explicit(&((cm_histogram *)h)->sum_bits, memory_order_relaxed)) : 0;
}

/* The shortest of %.15g and %.17g that reads back as v; +Inf, -Inf, NaN
 * as the format spells them. */
static void format_double(char *out, size_t n, double v)
{
	if (isnan(v)) {
		snprintf(out, n, "NaN");
	} else if (isinf(v)) {
		snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
	} else {
		snprintf(out, n, "%.15g", v);
		if (strtod(out, NULL) != v)
			snprintf(out, n, "%.17g", v);
	}
}

static void buf_printf(struct render_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void buf_printf(struct render_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = cap <= CM_METRICS_RENDER_MAX ? realloc(b->p, cap) : NULL;
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* HELP text escapes backslash and newline. */
static void render_help(struct render_buf *b, const struct family *f)
{
	buf_printf(b, "# HELP %s ", f->name);
	for (const char *p = f->help; *p; p++) {
		if (*p == '\\')
			buf_printf(b, "\\\\");
		else if (*p == '\n')
			buf_printf(b, "\\n");
		else
			buf_printf(b, "%c", *p);
	}
	buf_printf(b, "\n");
}

static void render_histogram(struct render_buf *b, const struct family *f,
			     const struct series *s)
{
	const cm_histogram *h = &s->m.hist;
	const char *sep = s->labels[0] ? "," : "";
	char num[NUM_MAX];
	uint64_t cum = 0;

	for (size_t i = 0; i <= h->nbounds; i++) {
		cum += atomic_load_explicit(&((cm_histogram *)h)->buckets[i], memory_order_relaxed);
		if (i < h->nbounds)
			format_double(num, sizeof(num), h->bounds[i]);
		else
			snprintf(num, sizeof(num), "+Inf");
		buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep, num,
			   (unsigned long long)cum);
	}
	format_double(num, sizeof(num), cm_histogram_sum(h));
	if (s->labels[0]) {
		buf_printf(b, "%s_sum{%s} %s\n", f->name, s->labels, num);
		buf_printf(b, "%s_count{%s} %llu\n", f->name, s->labels, (unsigned long long)cum);
	} else {
		buf_printf(b, "%s_sum %s\n", f->name, num);
		buf_printf(b, "%s_count %llu\n", f->name, (unsigned long long)cum);
	}
}

static void render_series(struct render_buf *b, const struct family *f, const struct series *s)
{
	char num[NUM_MAX];
	const char *open = s->labels[0] ? "{" : "", *close = s->labels[0] ? "}" : "";

	switch (f->type) {
	case METRIC_COUNTER:
		buf_printf(b, "%s%s%s%s %llu\n", f->name, open, s->labels, close,
			   (unsigned long long)cm_counter_value(&s->m.counter));
		break;
	case METRIC_GAUGE:
		format_double(num, sizeof(num), cm_gauge_value(&s->m.gauge));
		buf_printf(b, "%s%s%s%s %s\n", f->name, open, s->labels, close, num);
		break;
	case METRIC_HISTOGRAM:
		render_histogram(b, f, s);
		break;
	}
}

/* The caller owns (and frees) the returned string; NULL if out of memory or
 * if the text would pass CM_METRICS_RENDER_MAX. */
char *cm_metrics_render(cm_metrics *m)
{
	static const char *const type_names[] = {
		[METRIC_COUNTER] = "counter",
		[METRIC_GAUGE] = "gauge",
		[METRIC_HISTOGRAM] = "histogram",
	};
	struct render_buf b = {.cap = RENDER_INITIAL};

	if (!m)
		return NULL;
	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	pthread_mutex_lock(&m->mu);
	for (const struct family *f = m->first; f && !b.failed; f = f->next) {
		if (!f->first)
			continue;
		if (f->help[0])
			render_help(&b, f);
		buf_printf(&b, "# TYPE %s %s\n", f->name, type_names[f->type]);
		for (const struct series *s = f->first; s; s = s->next)
			render_series(&b, f, s);
	}
	pthread_mutex_unlock(&m->mu);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* Queues a response; MHD copies body, or with owned takes it and frees it. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
			     const char *type, const char *body, bool owned)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(body), (void *)body,
					    owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
	if (!r) {
		if (owned)
			free((void *)body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Answers on the first call for a request: there is no body to wait for,
 * and MHD discards (and closes after) any body a client sends anyway. */
static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **con_cls)
{
	cm_metrics *m = cls;
	char reason[CM_METRICS_REASON_MAX];

	CM_UNUSED(version);
	CM_UNUSED(upload_data);
	CM_UNUSED(upload_data_size);
	CM_UNUSED(con_cls);

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, CONTENT_TYPE_TEXT,
			     "method not allowed\n", false);
	if (strcmp(url, "/metrics") == 0) {
		char *text = cm_metrics_render(m);
		if (!text)
			return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, CONTENT_TYPE_TEXT,
				     "cannot render metrics\n", false);
		return reply(conn, MHD_HTTP_OK, CONTENT_TYPE_METRICS, text, true);
	}
	int ready = strcmp(url, "/readyz") == 0;
	if (ready || strcmp(url, "/healthz") == 0) {
		reason[0] = '\0';
		int ok = !m->health || m->health(m->health_arg, reason, sizeof(reason));
		if (ok && ready && m->ready)
			ok = m->ready(m->ready_arg, reason, sizeof(reason));
		reason[sizeof(reason) - 1] = '\0';
		if (ok)
			return reply(conn, MHD_HTTP_OK, CONTENT_TYPE_TEXT, "ok", false);
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, CONTENT_TYPE_TEXT,
			     reason[0] ? reason : ready ? "not ready" : "unhealthy", false);
	}
	return reply(conn, MHD_HTTP_NOT_FOUND, CONTENT_TYPE_TEXT, "not found\n", false);
}

void cm_metrics_set_ready(cm_metrics *m, cm_health_fn ready, void *ready_arg)
{
	pthread_mutex_lock(&m->mu);
	m->ready = ready;
	m->ready_arg = ready_arg;
	pthread_mutex_unlock(&m->mu);
}

/* bind_addr is a numeric IPv4 or IPv6 address, or "localhost" for
 * 127.0.0.1; names are not resolved (no DNS at start). Serve and stop are meant to
 * be called from one thread (main); health runs on the server's thread. */
int cm_metrics_serve(cm_metrics *m, const char *bind_addr, int port, int *bound_port,
		     cm_health_fn health, void *health_arg)
{
	struct sockaddr_storage ss;
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	int actual;

	if (!m || !bind_addr || port < 0 || port > 65535)
		return CM_ERR_INVALID;
	{
		socklen_t sl;
		int ipv6;
		if (cm_http_sockaddr(bind_addr, port, &ss, &sl, &ipv6) != CM_OK)
			return CM_ERR_INVALID;
		if (ipv6)
			flags |= MHD_USE_IPv6;
	}

	pthread_mutex_lock(&m->mu);
	if (m->daemon) {
		pthread_mutex_unlock(&m->mu);
		return CM_ERR_STATE;
	}
	/* set before the server thread starts, which orders them for it */
	m->health = health;
	m->health_arg = health_arg;
	d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle_request, m,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CM_METRICS_HTTP_CONN_MAX,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CM_METRICS_HTTP_TIMEOUT_S,
			     MHD_OPTION_END);
	if (!d) {
		pthread_mutex_unlock(&m->mu);
		return CM_ERR_IO;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	actual = info ? info->port : 0;
	if (actual == 0) {
		pthread_mutex_unlock(&m->mu);
		MHD_stop_daemon(d);
		return CM_ERR_IO;
	}
	m->daemon = d;
	pthread_mutex_unlock(&m->mu);
	if (bound_port)
		*bound_port = actual;
	return CM_OK;
}

void cm_metrics_stop(cm_metrics *m)
{
	struct MHD_Daemon *d;
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	d = m->daemon;
	m->daemon = NULL;
	pthread_mutex_unlock(&m->mu);
	/* outside the mutex: a request being answered may be rendering */
	if (d)
		MHD_stop_daemon(d);
}
