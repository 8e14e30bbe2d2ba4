/* The service process skeleton: config -> log -> key -> metrics -> RPC
 * server -> port file -> wait for SIGTERM/SIGINT -> drain -> release.
 * main() of every service is a call to cm_service_main; the stop signals
 * are taken by a signal thread, whichever thread the kernel gives them to. */
#include "cm_service.h"
#include "cm_err.h"
#include "cm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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

/* ---- stop signals ---------------------------------------------------
 * SIGTERM and SIGINT stop the service, once: a second one while it stops is
 * logged and ignored (the drain is bounded by grace_ms already, and what
 * follows it, such as saving indexes, must not be cut short; SIGKILL is the
 * way to end a process at once). SIGHUP runs the service's reload hook
 * once it is up (and until it stops); without one it is logged and ignored.
 *
 * Every thread of ours blocks the three signals: cm_service_main blocks
 * them before it starts any thread, and threads inherit the mask. Threads
 * that libraries start from their constructors, before main runs, do not
 * (OpenBLAS's pool in the indexer, which links faiss). The kernel gives a
 * process-directed signal to the main thread only when that thread is ready
 * to take it; otherwise (it is busy stopping after a first signal, or a
 * first signal is still pending for it) to any thread that does not block
 * it, and with the default action that thread ends the whole process at
 * once: no drain, no saved index, the process dies of the signal. This is
 * what Ctrl-C under `muri devnet` did to every indexer: SIGINT from the
 * terminal, then SIGTERM from the devnet a moment later. So the signals get a
 * handler, which only writes the signal number to a pipe, whichever thread
 * runs it, and the signal thread reads the pipe, with the signals unblocked
 * only while it waits in ppoll (so a signal all other threads block comes
 * to it). The pipe is process-wide state because a handler cannot be given
 * any other; it is made once and never closed (one service per process). */

static int sig_pipe[2] = {-1, -1};
static pthread_once_t sig_once = PTHREAD_ONCE_INIT;
static int sig_setup_errno;

static void on_stop_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	ssize_t n = write(sig_pipe[1], &b, 1); /* full pipe: enough bytes are waiting already */
	(void)n;
	errno = saved;
}

static void stop_signals_add(sigset_t *set)
{
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

static void sig_setup(void)
{
	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		sig_setup_errno = errno;
		return;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	stop_signals_add(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
	    sigaction(SIGHUP, &sa, NULL) != 0)
		sig_setup_errno = errno;
}

static const char *sig_name(int sig)
{
	return sig == SIGTERM ? "TERM" : sig == SIGINT ? "INT" : sig == SIGHUP ? "HUP" : "?";
}

typedef struct sigwatch {
	pthread_t thread;
	int made;             /* mu and cv initialized */
	int running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop_sig;         /* the first SIGTERM/SIGINT; 0 until one came (mu) */
	int quit;             /* set when the service has stopped (mu) */
	int64_t grace_ms;
	sigset_t wait_mask;   /* the thread's mask with the stop signals open, for ppoll */
	cm_service *svc;      /* set while its reload hook may run (mu) */
} sigwatch;

static void sigwatch_take(sigwatch *w, int sig)
{
	if (sig == SIGHUP) {
		pthread_mutex_lock(&w->mu);
		cm_service *svc = w->svc;
		if (svc && svc->reload) {
			cm_info("signal", "sig=HUP action=reload");
			svc->reload(svc->ctx); /* under mu: the service cannot stop meanwhile */
		} else {
			cm_info("signal", "sig=HUP action=ignored");
		}
		pthread_mutex_unlock(&w->mu);
		return;
	}
	if (sig != SIGTERM && sig != SIGINT)
		return; /* 0: a wake-up from sigwatch_stop */
	pthread_mutex_lock(&w->mu);
	int first = w->stop_sig == 0;
	if (first) {
		w->stop_sig = sig;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	if (first)
		cm_info("stopping", "sig=%s grace_ms=%lld", sig_name(sig), (long long)w->grace_ms);
	else
		cm_info("signal", "sig=%s action=ignored reason=\"already stopping: calls in flight get "
			"grace_ms, then are cancelled; SIGKILL ends the process at once\"", sig_name(sig));
}

static void *sigwatch_main(void *arg)
{
	sigwatch *w = arg;
	for (;;) {
		struct pollfd p = {.fd = sig_pipe[0], .events = POLLIN};
		if (ppoll(&p, 1, NULL, &w->wait_mask) < 0 && errno != EINTR) {
			struct timespec ts = {0, 10 * 1000000L}; /* ENOMEM: try again shortly */
			nanosleep(&ts, NULL);
		}
		unsigned char buf[64];
		ssize_t n;
		while ((n = read(sig_pipe[0], buf, sizeof(buf))) > 0)
			for (ssize_t i = 0; i < n; i++)
				sigwatch_take(w, buf[i]);
		pthread_mutex_lock(&w->mu);
		int quit = w->quit;
		pthread_mutex_unlock(&w->mu);
		if (quit)
			return NULL;
	}
}

/* Starts the signal thread; signals that came before it are in the pipe
 * already (or pending, blocked). */
static int sigwatch_start(sigwatch *w, int64_t grace_ms)
{
	memset(w, 0, sizeof(*w));
	w->grace_ms = grace_ms;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->made = 1;
	pthread_sigmask(SIG_SETMASK, NULL, &w->wait_mask);
	sigdelset(&w->wait_mask, SIGTERM);
	sigdelset(&w->wait_mask, SIGINT);
	sigdelset(&w->wait_mask, SIGHUP);
	if (pthread_create(&w->thread, NULL, sigwatch_main, w) != 0)
		return CM_ERR_INTERNAL;
	w->running = 1;
	return CM_OK;
}

/* Blocks until SIGTERM or SIGINT. */
static void sigwatch_wait(sigwatch *w)
{
	pthread_mutex_lock(&w->mu);
	while (!w->stop_sig)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void sigwatch_stop(sigwatch *w)
{
	if (!w->made)
		return;
	if (w->running) {
		pthread_mutex_lock(&w->mu);
		w->quit = 1;
		pthread_mutex_unlock(&w->mu);
		unsigned char wake = 0;
		ssize_t n = write(sig_pipe[1], &wake, 1); /* a full pipe wakes it as well */
		(void)n;
		pthread_join(w->thread, NULL);
		w->running = 0;
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

/* Lets the reload hook run (svc) or not (NULL), after a reload under way ended. */
static void sigwatch_set_service(sigwatch *w, cm_service *svc)
{
	if (!w->made)
		return;
	pthread_mutex_lock(&w->mu);
	w->svc = svc;
	pthread_mutex_unlock(&w->mu);
}

int cm_service_reload_config(cm_service *svc, void *cfg, char *err, size_t errlen)
{
	char **argv = calloc((size_t)svc->argc + 1, sizeof(*argv));
	if (!argv)
		return CM_ERR_NOMEM;
	memcpy(argv, svc->argv, (size_t)svc->argc * sizeof(*argv)); /* cm_config_load reorders its argv */
	int rc = cm_config_load(svc->keys, svc->nkeys, cfg, svc->env_prefix, svc->argc, argv, err, errlen);
	free(argv);
	if (rc == 1) { /* --help cannot come back, but do not leave it half-done */
		cm_config_free(svc->keys, svc->nkeys, cfg);
		snprintf(err, errlen, "--help");
		return CM_ERR_INVALID;
	}
	return rc;
}

static int health_default(void *arg, char *reason, size_t len)
{
	(void)arg;
	snprintf(reason, len, "ok");
	return 1;
}

static int service_run(cm_service *svc, int argc, char **argv)
{
	char err[ERR_MAX] = "";
	sigset_t sigs;
	int rc, exit_code = 1, rpc_port = 0, metrics_port = 0;
	cm_metrics *metrics = NULL;
	cm_rpc_server *rpc = NULL;
	int inited = 0;
	sigwatch watch = {.made = 0};

	/* Blocked here before any thread of ours exists, so in all of them; the
	 * handler covers threads libraries started before main (see above). */
	sigemptyset(&sigs);
	stop_signals_add(&sigs);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_once(&sig_once, sig_setup);
	if (sig_setup_errno) {
		fprintf(stderr, "muri-%s: cannot set up signal handling: %s\n", svc->name, strerror(sig_setup_errno));
		return 1;
	}
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
	/* the TLS key is checked here, at start, and the process presents its
	 * certificate on every TLS channel it opens (mutual TLS) */
	if (base->tls_cert && *base->tls_cert &&
	    cm_rpc_client_set_identity(base->tls_cert, base->tls_key, err, sizeof(err)) != CM_OK) {
		fprintf(stderr, "muri-%s: tls_cert/tls_key: %s\n", svc->name, err);
		cm_error("config", "key=tls_cert/tls_key error=\"%s\"", err);
		cm_config_free(svc->keys, svc->nkeys, svc->cfg);
		return 2;
	}

	if (sigwatch_start(&watch, base->grace_ms) != CM_OK) {
		cm_error("start_failed", "error=\"cannot start the signal thread\"");
		goto out;
	}
	metrics = cm_metrics_new();
	cm_rpc_server_opts opts = {
		.listen = base->listen,
		.workers = (int)base->rpc_workers,
		.requests_per_worker = (int)base->rpc_accepts,
		.max_message = (size_t)base->rpc_max_message,
		.max_streams = (int)base->rpc_max_streams,
		.conn_streams = (int)base->rpc_conn_calls,
		.idle_ms = (int)base->rpc_idle_ms,
		.age_ms = (int)base->rpc_conn_age_ms,
		.age_grace_ms = (int)base->rpc_conn_age_grace_ms,
		.memory = (size_t)base->rpc_memory,
		.call_memory = (size_t)base->rpc_call_memory,
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
		cm_metrics_set_ready(metrics, svc->ready, svc->ctx);
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
	sigwatch_set_service(&watch, svc);

	sigwatch_wait(&watch); /* logs "stopping" */
	exit_code = 0;
out:
	sigwatch_set_service(&watch, NULL);
	if (inited && svc->stopping)
		svc->stopping(svc->ctx);
	if (rpc)
		cm_rpc_server_shutdown(rpc, (int)base->grace_ms);
	cm_metrics_stop(metrics); /* its health and ready functions read what fini frees */
	if (inited && svc->fini)
		svc->fini(svc->ctx);
	cm_rpc_server_free(rpc);
	cm_metrics_free(metrics);
	sigwatch_stop(&watch); /* signals until here were logged as ignored */
	if (exit_code == 0)
		cm_info("stopped", "uptime_ms=%llu", (unsigned long long)(cm_now_ms() - svc->start_ms));
	cm_keypair_wipe(&svc->key);
	cm_rpc_client_set_identity(NULL, NULL, err, sizeof(err));
	cm_config_free(svc->keys, svc->nkeys, svc->cfg);
	return exit_code;
}

int cm_service_main(cm_service *svc, int argc, char **argv)
{
	/* the arguments as given, for cm_service_reload_config (loading reorders argv) */
	svc->argc = argc > 0 ? argc : 0;
	svc->argv = calloc((size_t)svc->argc + 1, sizeof(*svc->argv));
	if (!svc->argv) {
		fprintf(stderr, "muri-%s: out of memory\n", svc->name);
		return 1;
	}
	memcpy(svc->argv, argv, (size_t)svc->argc * sizeof(*argv));
	int rc = service_run(svc, argc, argv);
	free(svc->argv);
	svc->argv = NULL;
	return rc;
}
