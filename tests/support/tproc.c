/* Child-process helpers for integration tests; see tproc.h. */
#include "tproc.h"
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 64

long long tproc_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

const char *tproc_build_path(const char *rel, char *buf, size_t len)
{
	const char *root = getenv("MURI_BUILD_ROOT");
	snprintf(buf, len, "%s/%s", root ? root : ".", rel);
	return buf;
}

static int read_ports(tproc *p)
{
	FILE *f = fopen(p->port_file, "r");
	if (!f)
		return -1;
	int rpc = -1, met = -1;
	char line[128];
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "rpc_port=%d", &rpc);
		sscanf(line, "metrics_port=%d", &met);
	}
	fclose(f);
	if (rpc <= 0)
		return -1;
	p->rpc_port = rpc;
	p->metrics_port = met;
	snprintf(p->target, sizeof(p->target), "127.0.0.1:%d", rpc);
	return 0;
}

int tproc_start(tproc *p, const char *name, const char *exe, const char *const *args, int timeout_ms)
{
	const char *const *a;
	const char *argv[MAX_ARGS];
	int n = 0;
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	const char *root = getenv("MURI_BUILD_ROOT");
	char base[TPROC_PATH / 2];
	snprintf(base, sizeof(base), "%s/test-tmp", root ? root : "/tmp");
	mkdir(base, 0755);
	snprintf(p->dir, sizeof(p->dir) - 16, "%s/%.60s-XXXXXX", base, name);
	if (!mkdtemp(p->dir))
		return -1;
	snprintf(p->log, sizeof(p->log), "%.*s/log", TPROC_PATH - 8, p->dir);
	snprintf(p->port_file, sizeof(p->port_file), "%.*s/ports", TPROC_PATH - 8, p->dir);
	argv[n++] = exe;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--metrics-listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--port-file";
	argv[n++] = p->port_file;
	for (a = args; a && *a && n < MAX_ARGS - 1; a++)
		argv[n++] = *a;
	argv[n] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(exe, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	p->pid = pid;
	long long until = tproc_now_ms() + timeout_ms;
	while (tproc_now_ms() < until) {
		if (read_ports(p) == 0)
			return 0;
		if (!tproc_alive(p))
			return -1;
		usleep(5000);
	}
	return -1;
}

int tproc_alive(tproc *p)
{
	if (p->pid <= 0)
		return 0;
	int st;
	pid_t r = waitpid(p->pid, &st, WNOHANG);
	if (r == p->pid) {
		p->pid = -st - 1; /* remember the status, marked as reaped */
		return 0;
	}
	return r == 0;
}

int tproc_stop(tproc *p, int sig, int timeout_ms)
{
	if (p->pid < 0)
		return -p->pid - 1;
	if (p->pid == 0)
		return -1;
	kill(p->pid, sig);
	long long until = tproc_now_ms() + timeout_ms;
	int st;
	while (tproc_now_ms() < until) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->pid = 0;
			return st;
		}
		usleep(2000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &st, 0);
	p->pid = 0;
	return -1;
}

void tproc_cleanup(tproc *p, int failed)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
	if (!p->dir[0])
		return;
	if (!failed && getenv("MURI_KEEP_LOGS")) {
		printf("# %s: log kept in %s (MURI_KEEP_LOGS)\n", p->name, p->dir);
		return;
	}
	if (failed) {
		printf("# %s: log kept in %s\n", p->name, p->dir);
		FILE *f = fopen(p->log, "r");
		char line[1024];
		int lines = 0;
		while (f && fgets(line, sizeof(line), f) && lines++ < 200)
			printf("#   %s", line);
		if (f)
			fclose(f);
		fflush(stdout);
		return;
	}
	char cmd[TPROC_PATH + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", p->dir);
}

int tproc_free_port(void)
{
	int lo = 32768;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%d", &lo) != 1)
			lo = 32768;
		fclose(f);
	}
	if (lo <= 11000)
		lo = 32768;
	static unsigned seed;
	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (int tries = 0; tries < 200; tries++) {
		int port = 10000 + (int)(rand_r(&seed) % (unsigned)(lo - 10000));
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			return -1;
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(s);
		if (ok)
			return port;
	}
	return -1;
}
