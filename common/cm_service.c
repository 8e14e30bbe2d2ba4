/* The service process skeleton: config -> log -> key -> metrics -> RPC
 * server -> port file -> wait for SIGTERM/SIGINT -> drain -> release.
 * main() of every service is a call to cm_service_main. */
#include "cm_service.h"
#include "cm_err.h"
#include "cm_log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ERR_MAX 512

int cm_service_check_log_level(const void *field, char *err, size_t errlen)
{
	enum cm_log_level l;
	const char *s = *(char *const *)field;
	if (cm_log_parse_level(s ? s : "", &l) != CM_OK) {
		snprintf(err, errlen, "\"%s\" is not one of debug, info, warn, error, off", s ? s : "");
		return CM_ERR_INVALID;
	}
	return CM_OK;
}

static int split_host_port(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
		return CM_ERR_INVALID;
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p < 0 || p > 65535)
		return CM_ERR_INVALID;
	size_t n = (size_t)(colon - s);
	if (s[0] == '[' && n >= 2 && s[n - 1] == ']') { /* [::1]:port */
		memcpy(host, s + 1, n - 2);
		host[n - 2] = '\0';
	} else {
		memcpy(host, s, n);
		host[n] = '\0';
	}
	*port = (int)p;
	return CM_OK;
}

static int write_port_file(const char *path, int rpc_port, int metrics_port)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return CM_ERR_INVALID;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return CM_ERR_IO;
	fprintf(f, "rpc_port=%d\nmetrics_port=%d\npid=%ld\n", rpc_port, metrics_port, (long)getpid());
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return CM_ERR_IO;
	}
	return CM_OK;
}

static int load_or_create_key(cm_service *svc, const char *path)
{
	int rc = cm_key_load(&svc->key, path);
	if (rc == CM_ERR_NOTFOUND) {
		cm_keypair_generate(&svc->key);
		rc = cm_key_save(&svc->key, path);
		if (rc == CM_OK) {
			char hex[2 * CM_PK_BYTES + 1];
			cm_hex(hex, svc->key.pk, CM_PK_BYTES);
			cm_info("key_created", "path=%s node_id=%s", path, hex);
		}
	}
	if (rc != CM_OK) {
		cm_error("config", "key=key_file path=%s error=\"%s%s\"", path, cm_strerror(rc),
			 rc == CM_ERR_PERM ? ": readable by group or others; chmod 600 it" : "");
		cm_keypair_wipe(&svc->key);
		return rc;
	}
	svc->has_key = 1;
	return CM_OK;
}

int cm_service_status(cm_service *svc, cm_rpc_call *call, Muri__V1__StatusResponse **out)
{
	Muri__V1__StatusResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__status_response__init(r);
	r->service = (char *)svc->name;
	r->version = (char *)MURI_VERSION;
	r->uptime_ms = cm_now_ms() - svc->start_ms;
	if (svc->has_key) {
		r->node_id = cm_rpc_alloc(call, 2 * CM_PK_BYTES + 1);
		if (!r->node_id)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		cm_hex(r->node_id, svc->key.pk, CM_PK_BYTES);
	}
	if (svc->status_details)
		svc->status_details(svc->ctx, call, r);
	*out = r;
	return GRPC_STATUS_OK;
}

static int health_default(void *arg, char *reason, size_t len)
{
	(void)arg;
	snprintf(reason, len, "ok");
	return 1;
}

int cm_service_main(cm_service *svc, int argc, char **argv)
{
	char err[ERR_MAX] = "";
	sigset_t sigs;
	int rc, exit_code = 1, rpc_port = 0, metrics_port = 0;
	cm_metrics *metrics = NULL;
	cm_rpc_server *rpc = NULL;
	int inited = 0;

	/* Signals are blocked in every thread and taken by sigwait below. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	svc->start_ms = cm_now_ms();
	cm_log_set_service(svc->name);
	if (cm_crypto_init() != CM_OK) {
		fprintf(stderr, "muri-%s: cannot initialize libsodium\n", svc->name);
		return 1;
	}

	rc = cm_config_load(svc->keys, svc->nkeys, svc->cfg, svc->env_prefix, argc, argv, err, sizeof(err));
	if (rc == 1) {
		cm_config_free(svc->keys, svc->nkeys, svc->cfg);
		return 0;
	}
	if (rc != CM_OK) {
		fprintf(stderr, "muri-%s: %s\n", svc->name, err);
		cm_config_free(svc->keys, svc->nkeys, svc->cfg);
		return 2;
	}
	const cm_service_config *base = (const cm_service_config *)((char *)svc->cfg + svc->base_offset);
	enum cm_log_level level = CM_LOG_INFO;
	cm_log_parse_level(base->log_level, &level);
	cm_log_set_level(level);
	if ((!base->tls_cert || !*base->tls_cert) != (!base->tls_key || !*base->tls_key)) {
		fprintf(stderr, "muri-%s: tls_cert and tls_key must be given together\n", svc->name);
		cm_config_free(svc->keys, svc->nkeys, svc->cfg);
		return 2;
	}
	if (base->data_dir && *base->data_dir && mkdir(base->data_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "muri-%s: data_dir: cannot create %s: %s\n", svc->name, base->data_dir,
			strerror(errno));
		cm_config_free(svc->keys, svc->nkeys, svc->cfg);
		return 2;
	}
	if (base->key_file && *base->key_file && load_or_create_key(svc, base->key_file) != CM_OK) {
		cm_config_free(svc->keys, svc->nkeys, svc->cfg);
		return 2;
	}

	metrics = cm_metrics_new();
	cm_rpc_server_opts opts = {
		.listen = base->listen,
		.workers = (int)base->rpc_workers,
		.requests_per_worker = (int)base->rpc_accepts,
		.max_message = (size_t)base->rpc_max_message,
		.max_streams = (int)base->rpc_max_streams,
		.tls_cert_file = base->tls_cert && *base->tls_cert ? base->tls_cert : NULL,
		.tls_key_file = base->tls_key && *base->tls_key ? base->tls_key : NULL,
		.metrics = metrics,
	};
	if (!metrics || cm_rpc_server_new(&opts, &rpc, err, sizeof(err)) != CM_OK) {
		cm_error("start_failed", "error=\"%s\"", err[0] ? err : "out of memory");
		goto out;
	}
	cm_service_env env = {
		.rpc = rpc, .metrics = metrics, .base = base,
		.key = svc->has_key ? &svc->key : NULL, .svc = svc,
	};
	if (svc->init && (rc = svc->init(svc->ctx, &env, err, sizeof(err))) != CM_OK) {
		cm_error("start_failed", "error=\"%s\"", err[0] ? err : cm_strerror(rc));
		exit_code = rc == CM_ERR_INVALID ? 2 : 1;
		goto out;
	}
	inited = 1;
	if (cm_rpc_server_start(rpc, &rpc_port, err, sizeof(err)) != CM_OK) {
		cm_error("start_failed", "key=listen error=\"%s\"", err);
		goto out;
	}
	if (base->metrics_listen && *base->metrics_listen) {
		char host[256];
		int port;
		if (split_host_port(base->metrics_listen, host, sizeof(host), &port) != CM_OK) {
			cm_error("start_failed", "key=metrics_listen error=\"%s is not host:port\"",
				 base->metrics_listen);
			exit_code = 2;
			goto out;
		}
		if (cm_metrics_serve(metrics, host, port, &metrics_port, svc->health ? svc->health : health_default,
				     svc->ctx) != CM_OK) {
			cm_error("start_failed", "key=metrics_listen error=\"cannot listen on %s\"",
				 base->metrics_listen);
			goto out;
		}
	}
	if (svc->started && (rc = svc->started(svc->ctx, rpc_port, err, sizeof(err))) != CM_OK) {
		cm_error("start_failed", "error=\"%s\"", err[0] ? err : cm_strerror(rc));
		goto out;
	}
	if (base->port_file && *base->port_file &&
	    write_port_file(base->port_file, rpc_port, metrics_port) != CM_OK) {
		cm_error("start_failed", "key=port_file error=\"cannot write %s\"", base->port_file);
		goto out;
	}
	cm_info("listening", "rpc_port=%d metrics_port=%d tls=%s version=%s", rpc_port, metrics_port,
		opts.tls_cert_file ? "on" : "off", MURI_VERSION);

	for (;;) {
		int sig = 0;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			cm_info("signal", "sig=HUP action=ignored");
			continue;
		}
		cm_info("stopping", "sig=%s grace_ms=%lld", sig == SIGTERM ? "TERM" : "INT",
			(long long)base->grace_ms);
		break;
	}
	exit_code = 0;
out:
	if (inited && svc->stopping)
		svc->stopping(svc->ctx);
	if (rpc)
		cm_rpc_server_shutdown(rpc, (int)base->grace_ms);
	if (inited && svc->fini)
		svc->fini(svc->ctx);
	cm_rpc_server_free(rpc);
	cm_metrics_free(metrics);
	if (exit_code == 0)
		cm_info("stopped", "uptime_ms=%llu", (unsigned long long)(cm_now_ms() - svc->start_ms));
	cm_keypair_wipe(&svc->key);
	cm_config_free(svc->keys, svc->nkeys, svc->cfg);
	return exit_code;
}
