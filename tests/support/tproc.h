/* Test support: start a muri server binary as a child process on 127.0.0.1
 * with a port chosen at run time (it writes a port file), stop it with a
 * signal, and keep its log when the test fails. */
#ifndef MURI_TPROC_H
#define MURI_TPROC_H

#include <sys/types.h>

#define TPROC_PATH 512

typedef struct tproc {
	pid_t pid;
	char name[64];
	char dir[TPROC_PATH];      /* per-process scratch folder */
	char log[TPROC_PATH];      /* stdout + stderr of the child */
	char port_file[TPROC_PATH];
	int rpc_port, metrics_port;
	char target[64];           /* "127.0.0.1:rpc_port" */
} tproc;

/* Starts exe with args (NULL-terminated) plus --listen 127.0.0.1:0
 * --metrics-listen 127.0.0.1:0 --port-file F, waits up to timeout_ms for the
 * port file. 0 on success; -1 if it exited or timed out (log kept). */
int tproc_start(tproc *p, const char *name, const char *exe, const char *const *args, int timeout_ms);
/* Sends sig and waits up to timeout_ms; returns the exit status as
 * waitpid gives it, or -1 on timeout (then it is killed with SIGKILL). */
int tproc_stop(tproc *p, int sig, int timeout_ms);
/* 1 while the child runs. */
int tproc_alive(tproc *p);
/* Removes the scratch folder, or keeps it and prints its log when failed. */
void tproc_cleanup(tproc *p, int failed);
/* A loopback TCP port free now, chosen below the kernel's ephemeral range
 * (so no client's outgoing connection takes it before a server binds it,
 * as a port 0 choice could); -1 if none was found. */
int tproc_free_port(void);
/* Path of a built binary: $MURI_BUILD_ROOT/rel. */
const char *tproc_build_path(const char *rel, char *buf, size_t len);
/* Milliseconds on the monotonic clock. */
long long tproc_now_ms(void);

#endif
