/* The life of a muri service process, shared by ledger, indexer, gateway and
 * test servers: configuration, logging, node key, metrics and health over
 * HTTP, the RPC server, a port file for supervisors and tests, and a clean
 * stop on SIGTERM/SIGINT, whichever thread the kernel hands them to (the
 * handler only writes to a pipe; a signal thread acts, so no gRPC call ever
 * runs in signal context). A second one while stopping is logged, ignored. */
#ifndef CM_SERVICE_H
#define CM_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "cm_config.h"
#include "cm_crypto.h"
#include "cm_metrics.h"
#include "cm_rpc.h"
#include "cm_time.h"
#include "types.pb-c.h"

#ifndef MURI_VERSION
#define MURI_VERSION "0.0.0"
#endif

/* Settings every service has; embed it in the service's config struct. */
typedef struct cm_service_config {
	char *listen;             /* RPC address host:port (port 0: any free one) */
	char *metrics_listen;     /* HTTP address host:port of /metrics and /healthz; "" = off */
	int64_t rpc_workers;
	int64_t rpc_accepts;
	uint64_t rpc_max_message;
	int64_t rpc_max_streams;
	int64_t rpc_conn_calls;
	int64_t rpc_idle_ms;
	int64_t rpc_conn_age_ms;
	int64_t rpc_conn_age_grace_ms;
	uint64_t rpc_memory;
	uint64_t rpc_call_memory;
	char *tls_cert;
	char *tls_key;
	char *log_level;
	int64_t grace_ms;
	char *port_file;          /* written once listening: rpc_port=N, metrics_port=M */
	char *data_dir;
	char *key_file;           /* ed25519 node key; created (0600) if missing */
} cm_service_config;

/* Config-table rows for cm_service_config embedded as field F of struct T,
 * with the given default RPC and metrics ports. */
#define CM_SERVICE_CONFIG_KEYS(T, F, RPC_PORT, METRICS_PORT)                                          \
	{"listen", CM_CFG_STR, offsetof(T, F.listen), "127.0.0.1:" #RPC_PORT, 0, 0,                   \
	 "RPC listen address host:port (port 0 picks a free port)", NULL},                            \
	{"metrics_listen", CM_CFG_STR, offsetof(T, F.metrics_listen), "127.0.0.1:" #METRICS_PORT, 0, 0, \
	 "HTTP address of /metrics and /healthz; empty turns it off", NULL},                          \
	{"rpc_workers", CM_CFG_INT, offsetof(T, F.rpc_workers), "4", 1, 256,                          \
	 "RPC worker threads, each with its own completion queue", NULL},                             \
	{"rpc_accepts", CM_CFG_INT, offsetof(T, F.rpc_accepts), "2", 1, 64,                           \
	 "outstanding accepts per method and worker", NULL},                                          \
	{"rpc_max_message", CM_CFG_SIZE, offsetof(T, F.rpc_max_message), "128M", 1024, 2147483647.0,  \
	 "largest RPC message in bytes, either direction", NULL},                                     \
	{"rpc_max_streams", CM_CFG_INT, offsetof(T, F.rpc_max_streams), "64", 0, 100000,              \
	 "concurrent server streams", NULL},                                                          \
	{"rpc_conn_calls", CM_CFG_INT, offsetof(T, F.rpc_conn_calls), "256", 1, 100000,               \
	 "concurrent calls one connection may hold open (HTTP/2 streams)", NULL},                     \
	{"rpc_idle_ms", CM_CFG_INT, offsetof(T, F.rpc_idle_ms), "300000", 0, 86400000,                \
	 "a connection without a call for this long is closed; 0 = never", NULL},                     \
	{"rpc_conn_age_ms", CM_CFG_INT, offsetof(T, F.rpc_conn_age_ms), "0", 0, 604800000,            \
	 "a connection is asked to go away after this long (clients reconnect); 0 = never", NULL},    \
	{"rpc_conn_age_grace_ms", CM_CFG_INT, offsetof(T, F.rpc_conn_age_grace_ms), "60000", 0,       \
	 86400000, "after rpc_conn_age_ms, how long its calls may still run before it is closed",     \
	 NULL},                                                                                       \
	{"rpc_memory", CM_CFG_SIZE, offsetof(T, F.rpc_memory), "1G", 1048576, 1099511627776.0,        \
	 "bytes the RPC transport may hold for all connections together", NULL},                     \
	{"rpc_call_memory", CM_CFG_SIZE, offsetof(T, F.rpc_call_memory), "512M", 1048576,              \
	 1099511627776.0, "bytes one call may hold: its decoded request and its response", NULL},     \
	{"tls_cert", CM_CFG_STR, offsetof(T, F.tls_cert), "", 0, 0,                                   \
	 "PEM certificate chain; with tls_key turns TLS on", NULL},                                   \
	{"tls_key", CM_CFG_STR, offsetof(T, F.tls_key), "", 0, 0, "PEM private key", NULL},          \
	{"log_level", CM_CFG_STR, offsetof(T, F.log_level), "info", 0, 0,                             \
	 "debug, info, warn, error or off", cm_service_check_log_level},                              \
	{"grace_ms", CM_CFG_INT, offsetof(T, F.grace_ms), "5000", 0, 600000,                          \
	 "on SIGTERM, how long calls in flight may take before they are cancelled", NULL},            \
	{"port_file", CM_CFG_STR, offsetof(T, F.port_file), "", 0, 0,                                 \
	 "file to write the bound ports to once listening", NULL},                                    \
	{"data_dir", CM_CFG_STR, offsetof(T, F.data_dir), "", 0, 0, "folder for persistent state", NULL}, \
	{"key_file", CM_CFG_STR, offsetof(T, F.key_file), "", 0, 0,                                   \
	 "ed25519 node key file; created with mode 0600 if missing", NULL}

int cm_service_check_log_level(const void *field, char *err, size_t errlen);

typedef struct cm_service cm_service;

/* What a service gets at init: the pieces it registers its handlers and
 * metrics with, and its identity. */
typedef struct cm_service_env {
	cm_rpc_server *rpc;
	cm_metrics *metrics;
	const cm_service_config *base;
	const cm_keypair *key;    /* NULL when no key_file is configured */
	cm_service *svc;
} cm_service_env;

struct cm_service {
	const char *name;               /* "ledger": log svc= and Status.service */
	const char *env_prefix;         /* "MURI_LEDGER_" */
	const cm_config_key *keys;
	size_t nkeys;
	void *cfg;                      /* the service's config struct */
	size_t base_offset;             /* offsetof(struct, its cm_service_config) */
	void *ctx;                      /* the service's context, passed to the hooks */
	/* Registers handlers; may start background threads. */
	int (*init)(void *ctx, const cm_service_env *env, char *err, size_t errlen);
	/* After the RPC server is listening (ports known). Optional. */
	int (*started)(void *ctx, int rpc_port, char *err, size_t errlen);
	/* On the first SIGTERM/SIGINT, before the RPC server drains: wake streams, stop loops. Optional. */
	void (*stopping)(void *ctx);
	/* After the RPC server stopped: release everything. Optional. */
	void (*fini)(void *ctx);
	/* Health for /healthz. Optional (always healthy). */
	cm_health_fn health;
	/* Readiness for /readyz, beyond health (cm_metrics_set_ready). Optional. */
	cm_health_fn ready;
	/* Extra Status details. Optional. */
	void (*status_details)(void *ctx, cm_rpc_call *call, Muri__V1__StatusResponse *resp);
	/* On SIGHUP, on the signal thread, between init and fini: applies what
	 * may change without a restart (cm_service_reload_config reads the
	 * configuration again). Optional: without it SIGHUP is logged and ignored. */
	void (*reload)(void *ctx);
	/* filled by cm_service_main */
	int argc;
	char **argv;                    /* a copy of main's arguments, as they were */
	uint64_t start_ms;
	cm_keypair key;
	int has_key;
};

/* Runs the service until SIGTERM/SIGINT; returns the process exit code
 * (0 after a clean stop, 2 for bad configuration, 1 for other failures).
 * Call it from main() before starting any thread: it blocks SIGTERM, SIGINT
 * and SIGHUP in the calling thread, so that every thread started after it
 * inherits the block, and installs their handler for the whole process. */
int cm_service_main(cm_service *svc, int argc, char **argv);

/* Loads the configuration again from the sources it came from at start (the
 * --config file as it is now, the environment, the command line) into cfg,
 * a zeroed struct of the service's config type that the caller frees with
 * cm_config_free. CM_OK, or an error with err naming the key. */
int cm_service_reload_config(cm_service *svc, void *cfg, char *err, size_t errlen);

/* Fills a Status response (service, version, node id, uptime, details) in
 * the call's memory; for the services' Status handlers. */
int cm_service_status(cm_service *svc, cm_rpc_call *call, Muri__V1__StatusResponse **out);


#endif
