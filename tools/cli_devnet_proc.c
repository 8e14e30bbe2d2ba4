/* A devnet's folder and its processes: keys, the port table and the genesis
 * written once and reopened on every start; starting a service in the
 * background or the foreground; telling whether a recorded pid is still the
 * process this devnet started. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cli.h"
#include "cli_devnet.h"
#include "cm_err.h"
#include "cm_rpc.h"
#include "vectorstore.pb-c.h"

extern char **environ;

#define DN_LEASE_MS "2000"
#define DN_SUSPECT_MS "6000"
#define DN_CHALLENGE_DEADLINE 20000 /* blocks: minutes at the devnet's pace */
#define DN_CHALLENGE_INTERVAL 200
#define DN_FRAGMENTS_DEFAULT 4

/* A free port below the ephemeral range: the genesis fixes the addresses
 * before the processes bind them, and a port the kernel may hand to an
 * outgoing connection (one service dialling another) could be taken by then. */
static int free_port(void)
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
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
		if (s >= 0)
			close(s);
		if (ok)
			return port;
	}
	return -1;
}

/* build/tools/muri -> build */
static int bin_dir(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	for (int up = 0; up < 2; up++) {
		char *slash = strrchr(self, '/');
		if (!slash)
			return -1;
		*slash = '\0';
	}
	return (size_t)snprintf(out, len, "%s", self) >= len ? -1 : 0;
}

/* The devnet's genesis: its ledger replicas, its indexers registered and
 * staked, its gateway, and a demo account holding MURI. */
static int write_genesis(const dn_net *net)
{
	char tmp[DN_PATH + 32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", net->genesis);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	char hex[2 * CM_PK_BYTES + 1];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	fprintf(f, "# written by muri devnet\nchain_id = muri-devnet\ngenesis_time_ms = %lld\n",
		(long long)now.tv_sec * 1000);
	/* blocks come tens a second on an idle loopback network: challenges
	 * counted in blocks get a window a loaded machine can meet (with 20 or
	 * even 2,000 blocks, a 60,000-row import left every indexer jailed for
	 * unanswered challenges within minutes, and fragments with no replica);
	 * a collection takes 4 fragments unless it asks for more */
	fprintf(f, "param.challenge_deadline = %d\nparam.challenge_interval = %d\nparam.fragments_default = %d\n",
		DN_CHALLENGE_DEADLINE, DN_CHALLENGE_INTERVAL, DN_FRAGMENTS_DEFAULT);
	for (int i = 0; i < net->n; i++)
		if (!strcmp(net->nodes[i].service, "ledger")) {
			cm_hex(hex, net->nodes[i].key.pk, CM_PK_BYTES);
			fprintf(f, "replica = %s 127.0.0.1:%d\n", hex, net->nodes[i].listen_port);
		}
	cm_hex(hex, net->demo.pk, CM_PK_BYTES);
	fprintf(f, "account = %s 1000000000000\n", hex);
	for (int i = 0; i < net->n; i++)
		if (!strcmp(net->nodes[i].service, "indexer")) {
			cm_hex(hex, net->nodes[i].key.pk, CM_PK_BYTES);
			fprintf(f, "account = %s 1000000\n", hex);
			fprintf(f, "indexer = %s 127.0.0.1:%d %llu 100000\n", hex, net->nodes[i].listen_port,
				(unsigned long long)(1ull << 40));
		}
	for (int i = 0; i < net->n; i++) /* may read indexers' proofs (spot checks) */
		if (!strcmp(net->nodes[i].service, "gateway")) {
			cm_hex(hex, net->nodes[i].key.pk, CM_PK_BYTES);
			fprintf(f, "gateway = %s\n", hex);
		}
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, net->genesis);
}

/* Makes the node's folder and key (kept if they exist). */
static int prepare_node(dn_node *nd, const char *root)
{
	if ((size_t)snprintf(nd->dir, sizeof(nd->dir), "%s/%s", root, nd->name) >= sizeof(nd->dir))
		return -1;
	if (mkdir(nd->dir, 0700) != 0 && errno != EEXIST)
		return -1;
	snprintf(nd->key_file, sizeof(nd->key_file), "%s/node.key", nd->dir);
	snprintf(nd->port_file, sizeof(nd->port_file), "%s/ports", nd->dir);
	if (cm_key_load(&nd->key, nd->key_file) == CM_OK)
		return 0;
	cm_keypair_generate(&nd->key);
	return cm_key_save(&nd->key, nd->key_file) == CM_OK ? 0 : -1;
}

static void add_node(dn_net *net, const char *name, const char *service, int port)
{
	dn_node *nd = &net->nodes[net->n++];
	memset(nd, 0, sizeof(*nd));
	snprintf(nd->name, sizeof(nd->name), "%s", name);
	nd->service = !strcmp(service, "ledger") ? "ledger" : !strcmp(service, "indexer") ? "indexer" : "gateway";
	nd->listen_port = port;
	net->ledgers += nd->service[0] == 'l';
	net->indexers += nd->service[0] == 'i';
}

int dn_prepare(dn_net *net, const char *root, int ledgers, int indexers, int base_port, char *err, size_t errlen)
{
	memset(net, 0, sizeof(*net));
	if (ledgers < 1 || indexers < 1 || ledgers + indexers + 1 > DN_MAX || base_port < 0 ||
	    base_port > 65535 - 2 * DN_MAX) {
		snprintf(err, errlen, "--ledgers and --indexers must be >= 1 and at most %d processes in all", DN_MAX);
		return CM_ERR_INVALID;
	}
	snprintf(net->root, sizeof(net->root), "%s", root);
	if (bin_dir(net->bindir, sizeof(net->bindir)) != 0) {
		snprintf(err, errlen, "cannot find the build folder");
		return CM_ERR_IO;
	}
	/* mkdir -p */
	char path[DN_PATH + 64];
	snprintf(path, sizeof(path), "%s", root);
	for (char *p = path + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0700);
			*p = '/';
		}
	if (mkdir(root, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", root, strerror(errno));
		return CM_ERR_IO;
	}
	snprintf(net->genesis, sizeof(net->genesis), "%s/genesis.txt", root);
	snprintf(net->demo_key, sizeof(net->demo_key), "%s/demo.key", root);
	if (cm_key_load(&net->demo, net->demo_key) != CM_OK) {
		cm_keypair_generate(&net->demo);
		if (cm_key_save(&net->demo, net->demo_key) != CM_OK) {
			snprintf(err, errlen, "cannot write %s", net->demo_key);
			return CM_ERR_IO;
		}
	}
	snprintf(path, sizeof(path), "%s/nodes.txt", root);
	FILE *f = fopen(path, "r");
	if (f) { /* an existing devnet: its processes and ports */
		char line[256], name[32], svc[16];
		int port;
		while (fgets(line, sizeof(line), f))
			if (net->n < DN_MAX && sscanf(line, "%31s %15s %d", name, svc, &port) == 3)
				add_node(net, name, svc, port);
		fclose(f);
	} else {
		char name[32];
		for (int i = 0; i < ledgers; i++) {
			snprintf(name, sizeof(name), "ledger-%d", i);
			add_node(net, name, "ledger", 0);
		}
		for (int i = 0; i < indexers; i++) {
			snprintf(name, sizeof(name), "indexer-%d", i);
			add_node(net, name, "indexer", 0);
		}
		add_node(net, "gateway", "gateway", 0);
		for (int i = 0; i < net->n; i++) {
			net->nodes[i].listen_port = base_port ? base_port + i : free_port();
			if (net->nodes[i].listen_port <= 0) {
				snprintf(err, errlen, "no free port on 127.0.0.1");
				return CM_ERR_IO;
			}
		}
	}
	for (int i = 0; i < net->n; i++)
		if (prepare_node(&net->nodes[i], root) != 0) {
			snprintf(err, errlen, "cannot prepare %s/%s (folder and key)", root, net->nodes[i].name);
			return CM_ERR_IO;
		}
	int rc = dn_tls_prepare(net, err, errlen);
	if (rc != CM_OK)
		return rc;
	struct stat st;
	if (stat(net->genesis, &st) != 0 && write_genesis(net) != 0) { /* kept: the chain's identity */
		snprintf(err, errlen, "cannot write %s", net->genesis);
		return CM_ERR_IO;
	}
	if (!f) { /* written last: a folder with nodes.txt is complete */
		char tmp[DN_PATH + 80];
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		FILE *o = fopen(tmp, "w");
		for (int i = 0; o && i < net->n; i++)
			fprintf(o, "%s %s %d\n", net->nodes[i].name, net->nodes[i].service, net->nodes[i].listen_port);
		if (!o || fclose(o) != 0 || rename(tmp, path) != 0) {
			snprintf(err, errlen, "cannot write %s", path);
			return CM_ERR_IO;
		}
	}
	return CM_OK;
}

void dn_close(dn_net *net)
{
	cm_keypair_wipe(&net->demo);
	for (int i = 0; i < net->n; i++)
		cm_keypair_wipe(&net->nodes[i].key);
}

int dn_read_ports(dn_node *nd)
{
	FILE *f = fopen(nd->port_file, "r");
	if (!f)
		return -1;
	char line[128];
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "rpc_port=%d", &nd->rpc_port);
		sscanf(line, "metrics_port=%d", &nd->metrics_port);
	}
	fclose(f);
	return nd->rpc_port > 0 ? 0 : -1;
}

int dn_alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

pid_t dn_running(const dn_node *nd)
{
	char path[DN_PATH + 32];
	snprintf(path, sizeof(path), "%s/pid", nd->dir);
	FILE *f = fopen(path, "r");
	long pid = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0)
		return 0;
	/* alive, not a zombie, and started with this node's key file */
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	char buf[512];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	static char cmd[65536];
	n = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	int mine = 0;
	for (size_t i = 0; i < n; i += strlen(cmd + i) + 1)
		if (!strcmp(cmd + i, nd->key_file))
			mine = 1;
	return mine ? (pid_t)pid : 0;
}

int dn_spawn(dn_net *net, dn_node *nd, int detach)
{
	char exe[DN_PATH + 64], listen[64], mlisten[64], log[DN_PATH + 16], data[DN_PATH + 16];
	snprintf(exe, sizeof(exe), "%s/services/%s/muri-%s", net->bindir, nd->service, nd->service);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", nd->listen_port);
	snprintf(mlisten, sizeof(mlisten), "127.0.0.1:0");
	snprintf(log, sizeof(log), "%s/log", nd->dir);
	snprintf(data, sizeof(data), "%s/data", nd->dir);
	unlink(nd->port_file);
	nd->rpc_port = nd->metrics_port = 0;
	int gateway = !strcmp(nd->service, "gateway");
	/* every service takes the genesis: the ledger's replicas; the indexers and the
	 * gateway follow the chain; the gateway pays for collections from the demo account */
	char *argv[32] = {exe, "--listen", listen, "--metrics-listen", mlisten, "--key-file", nd->key_file,
			  "--data-dir", data, "--port-file", nd->port_file, "--genesis", net->genesis,
			  /* TLS on its port; the CA verifies every other process it calls */
			  "--tls-cert", nd->tls_cert, "--tls-key", nd->tls_key, "--tls-ca", net->tls_ca};
	int argn = 19;
	char curl[DN_PATH + 32];
	snprintf(curl, sizeof(curl), "%s/console_url", nd->dir);
	if (gateway) {
		argv[argn++] = "--payer-key-file";
		argv[argn++] = net->demo_key;
		/* callers prove an account: the devnet's admin key is D/admin.apikey */
		argv[argn++] = "--auth";
		argv[argn++] = "true";
		/* the console on loopback, any free port; its URL in D/gateway/console_url */
		argv[argn++] = "--console-listen";
		argv[argn++] = "127.0.0.1:0";
		argv[argn++] = "--console-url-file";
		argv[argn++] = curl;
	} else if (!strcmp(nd->service, "indexer")) {
		/* a laptop's devnet shares its cores with everything else: a lease
		 * and failure detection that a busy second does not break */
		argv[argn++] = "--lease-ms";
		argv[argn++] = DN_LEASE_MS;
		argv[argn++] = "--suspect-ms";
		argv[argn++] = DN_SUSPECT_MS;
	}
	argv[argn] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (detach)
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	/* the service starts with no signal blocked and INT, TERM, HUP at their
	 * defaults, whatever this process does with them (a shell may have
	 * started it with SIGINT ignored). In the foreground it stays in this
	 * process group, so Ctrl-C reaches it even if this process is gone; in
	 * the background it gets a session of its own, away from the terminal. */
	posix_spawnattr_t at;
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (detach ? POSIX_SPAWN_SETSID : 0));
	if (cli_quiet_grpc)
		unsetenv("GRPC_VERBOSITY");
	int rc = posix_spawn(&nd->pid, exe, &fa, &at, argv, environ);
	if (cli_quiet_grpc)
		setenv("GRPC_VERBOSITY", "NONE", 1);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr, "muri devnet: cannot start %s: %s\n", exe, strerror(rc));
		return -1;
	}
	char path[DN_PATH + 16];
	snprintf(path, sizeof(path), "%s/pid", nd->dir);
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "%ld\n", (long)nd->pid);
		fclose(f);
	}
	return 0;
}

static const char *status_method(const char *service)
{
	if (strcmp(service, "ledger") == 0)
		return "/muri.v1.Ledger/Status";
	if (strcmp(service, "indexer") == 0)
		return "/muri.v1.Indexer/Status";
	if (strcmp(service, "gateway") == 0)
		return "/muri.v1.VectorStore/Status";
	return NULL;
}

int dn_status_of(const char *target, const char *ca, const char *service, int quiet, char *details, size_t dlen)
{
	const char *method = status_method(service);
	if (details && dlen)
		details[0] = '\0';
	if (!method) {
		fprintf(stderr, "muri status: --service must be ledger, indexer or gateway\n");
		return 2;
	}
	cm_rpc_client *c = NULL;
	char err[256];
	cm_rpc_client_opts o = {.target = target, .tls_ca_file = ca && *ca ? ca : NULL};
	if (cm_rpc_client_new(&o, &c, err, sizeof(err)) != CM_OK) {
		if (!quiet)
			fprintf(stderr, "muri status: %s\n", err);
		return 1;
	}
	Muri__V1__StatusRequest req = MURI__V1__STATUS_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	int rc = cm_rpc_unary(c, method, &req.base, &muri__v1__status_response__descriptor, &resp, 5000, &st);
	cm_rpc_client_free(c);
	if (rc != CM_OK) {
		if (!quiet)
			fprintf(stderr, "muri status: %s: %s: %s%s\n", target, cm_rpc_code_name(st.code), st.message,
				st.code == GRPC_STATUS_UNAVAILABLE ? cli_tls_hint(ca) : "");
		return 1;
	}
	Muri__V1__StatusResponse *s = (Muri__V1__StatusResponse *)resp;
	if (!quiet) {
		printf("service   %s\nversion   %s\nnode_id   %s\nuptime_ms %llu\n", s->service, s->version,
		       s->node_id[0] ? s->node_id : "-", (unsigned long long)s->uptime_ms);
		for (size_t i = 0; i < s->n_details; i++)
			printf("%-9s %s\n", s->details[i]->key, s->details[i]->value);
	}
	size_t used = 0;
	for (size_t i = 0; details && i < s->n_details && used < dlen; i++) {
		int w = snprintf(details + used, dlen - used, "%s%s=%s", used ? " " : "", s->details[i]->key,
				 s->details[i]->value);
		if (w > 0)
			used += (size_t)w;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}
