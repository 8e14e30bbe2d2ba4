/* Metrics in the Prometheus text format, and the /metrics, /healthz and
 * /readyz HTTP endpoints (libmicrohttpd, its own thread). Counters, gauges and
 * histograms are lock-free to update from any thread. */
#ifndef CM_METRICS_H
#define CM_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Limits: a metric name, a label set and a help text (longer help is cut),
 * the number of series and of histogram bounds, the rendered text, and the
 * HTTP server's connections, idle timeout and health reason. */
#define CM_METRICS_NAME_MAX 128
#define CM_METRICS_LABELS_MAX 1024
#define CM_METRICS_HELP_MAX 512
#define CM_METRICS_SERIES_MAX 10000
#define CM_METRICS_BUCKETS_MAX 64
#define CM_METRICS_RENDER_MAX (16 * 1024 * 1024)
#define CM_METRICS_HTTP_CONN_MAX 32
#define CM_METRICS_HTTP_TIMEOUT_S 10
#define CM_METRICS_REASON_MAX 256

typedef struct cm_metrics cm_metrics;
typedef struct cm_counter cm_counter;
typedef struct cm_gauge cm_gauge;
typedef struct cm_histogram cm_histogram;

/* Returns 1 if the process is healthy, 0 if not; may write a short reason
 * (served as the body of /healthz: "ok" or the reason). */
typedef int (*cm_health_fn)(void *arg, char *reason, size_t len);

/* A new, empty registry; NULL if out of memory. Free with cm_metrics_free. */
cm_metrics *cm_metrics_new(void);
/* Stops the server if running and frees every metric. Accepts NULL. */
void cm_metrics_free(cm_metrics *m);

/* Registers a metric. name is a Prometheus name; labels is NULL or a label
 * set without braces ("method=\"/muri.v1.Indexer/Search\""). Metrics with the
 * same name and different labels share one HELP/TYPE. The registry owns the
 * result. Registering the same name+labels twice returns the same metric.
 * NULL if out of memory or the name is invalid. */
cm_counter *cm_metrics_counter(cm_metrics *m, const char *name, const char *labels, const char *help);
cm_gauge *cm_metrics_gauge(cm_metrics *m, const char *name, const char *labels, const char *help);
/* bounds: nbounds ascending upper bounds (the +Inf bucket is implied). */
cm_histogram *cm_metrics_histogram(cm_metrics *m, const char *name, const char *labels,
				   const char *help, const double *bounds, size_t nbounds);

void cm_counter_add(cm_counter *c, uint64_t n);
void cm_gauge_set(cm_gauge *g, double v);
void cm_gauge_add(cm_gauge *g, double v);
void cm_histogram_observe(cm_histogram *h, double v);

/* Current values (for tests and for code that reads its own metrics). */
uint64_t cm_counter_value(const cm_counter *c);
double cm_gauge_value(const cm_gauge *g);
uint64_t cm_histogram_count(const cm_histogram *h);
double cm_histogram_sum(const cm_histogram *h);

/* The whole registry in the text format; the caller frees the string. */
char *cm_metrics_render(cm_metrics *m);

/* Serves GET /metrics, /healthz and /readyz on bind_addr:port (port 0 picks
 * a free one, written to *bound_port). health may be NULL (always healthy).
 * /readyz is healthy and, with a ready function set, ready: a process alive
 * but not yet able to serve (liveness probes read /healthz, readiness probes
 * /readyz). Other paths get 404. Returns CM_ERR_IO if the port cannot be
 * bound. */
int cm_metrics_serve(cm_metrics *m, const char *bind_addr, int port, int *bound_port,
		     cm_health_fn health, void *health_arg);
/* Sets /readyz's function (same contract as health: 1 ready, else 0 and a
 * reason); before cm_metrics_serve only. NULL: ready whenever healthy. */
void cm_metrics_set_ready(cm_metrics *m, cm_health_fn ready, void *ready_arg);
/* Stops serving; idempotent. */
void cm_metrics_stop(cm_metrics *m);

#endif
