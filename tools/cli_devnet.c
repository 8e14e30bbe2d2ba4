/* muri devnet up | down | status: a local network in the background.
 *   up      starts what is not running (each process in a session of its
 *           own, its pid in D/NAME/pid), waits until every process answers
 *           Status and the gateway has followed the chain to where the
 *           ledger was, prints the endpoints and returns. A running
 *           network is left alone (exit 0).
 *   down    SIGTERM to each recorded process that is still this devnet's
 *           (its command line names the node's key file), SIGKILL to what
 *           is left after the grace period. Nothing else is touched.
 *   status  each process's pid and answer, ledger heights and the leader,
 *           indexers' fragments, the gateway's collections and fragment
 *           health; --json: {"dir", "nodes": [{name, role, rpc, metrics,
 *           pid, status, details}], "collections": [...]}.
 * `muri devnet` alone (or `devnet run`) is the foreground network with its
 * demo (cli_demo.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_devnet.h"
#include "cm_api_key.h"
#include "ledger.pb-c.h"

#include <fcntl.h>
#include "cm_err.h"
#include "cm_time.h"

#define DN_UP_TIMEOUT_S 120
#define DN_GRACE_S 30

static int have_devnet(const char *root)
{
	char path[DN_PATH + 16];
	struct stat st;
	snprintf(path, sizeof(path), "%s/nodes.txt", root);
	return stat(path, &st) == 0;
}

static long long detail_num(const char *details, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "%s=", key);
	for (const char *p = details; p && (p = strstr(p, pat)); p++)
		if (p == details || p[-1] == ' ')
			return atoll(p + strlen(pat));
	return -1;
}

static void print_endpoints(const dn_net *net)
{
	printf("%-12s %-8s %-18s %-18s %-8s\n", "node", "role", "rpc", "metrics", "pid");
	for (int i = 0; i < net->n; i++) {
		const dn_node *nd = &net->nodes[i];
		printf("%-12s %-8s 127.0.0.1:%-8d 127.0.0.1:%-8d %-8ld\n", nd->name, nd->service, nd->rpc_port,
		       nd->metrics_port, (long)nd->pid);
	}
	const dn_node *gw = &net->nodes[net->n - 1];
	printf("\ngateway   127.0.0.1:%d  (muri collection list --dir %s)\n", gw->rpc_port, net->root);
	printf("admin key %s/admin.apikey  (an admin API key of the demo account; muri commands on this devnet\n"
	       "          send it; other clients: authorization: Bearer <key>)\n", net->root);
	printf("ledger    ");
	for (int i = 0; i < net->ledgers; i++)
		printf("%s127.0.0.1:%d", i ? "," : "", net->nodes[i].rpc_port);
	char path[DN_PATH + 32], url[300] = "";
	snprintf(path, sizeof(path), "%s/console_url", gw->dir);
	FILE *f = fopen(path, "r");
	if (f && fgets(url, sizeof(url), f)) {
		url[strcspn(url, "\n")] = '\0';
		printf("\nconsole   %s  (it asks for an API key: paste the contents of %s/admin.apikey)", url,
		       net->root);
	}
	if (f)
		fclose(f);
	printf("\nstop it:  muri devnet down --dir %s\n", net->root);
}

/* The devnet's admin API key: made once, by a CreateApiKey of the demo
 * account, and kept in D/admin.apikey (0600), which client commands on
 * this devnet read. 0, or -1 after printing why not. */
static int admin_key(const dn_net *net)
{
	char path[DN_PATH + 32], key[CM_API_KEY_CHARS + 1];
	uint8_t h[CM_HASH_BYTES];
	snprintf(path, sizeof(path), "%s/admin.apikey", net->root);
	if (access(path, F_OK) == 0)
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return cli_fail(CLI_FAIL, "devnet up", "%s: %s", path, strerror(errno)), -1;
	cm_api_key_new(key);
	cm_api_key_hash(key, strlen(key), h);
	size_t len = strlen(key);
	int ok = write(fd, key, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
	cm_wipe(key, sizeof(key));
	if (close(fd) != 0 || !ok) {
		unlink(path);
		return cli_fail(CLI_FAIL, "devnet up", "cannot write %s", path), -1;
	}
	cli_conn c = {.dir = net->root};
	cm_ledger_client *lc = cli_ledger("devnet up", &c);
	if (!lc) {
		unlink(path);
		return -1;
	}
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__CreateApiKey ck = MURI__V1__CREATE_API_KEY__INIT;
	ck.key_hash = (ProtobufCBinaryData){CM_HASH_BYTES, h};
	ck.scope = MURI__V1__KEY_SCOPE__SCOPE_ADMIN;
	ck.label = "devnet admin";
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY;
	t.create_api_key = &ck;
	cm_ledger_result res;
	char err[600];
	int rc = cm_ledger_client_submit(lc, &t, CM_LC_WAIT, &res, err, sizeof(err));
	cm_ledger_client_free(lc);
	if (rc != CM_OK) {
		unlink(path);
		return cli_fail(CLI_FAIL, "devnet up", "the admin API key: %s", rc == CM_ERR_STATE ? res.message : err), -1;
	}
	return 0;
}

static int cmd_up(int argc, char **argv)
{
	long ledgers = 4, indexers = 3, base_port = 0, timeout = DN_UP_TIMEOUT_S;
	const char *dir = NULL;
	const cli_opt opts[] = {{"--dir", CLI_STR, &dir},         {"--ledgers", CLI_INT, &ledgers},
				{"--indexers", CLI_INT, &indexers}, {"--base-port", CLI_INT, &base_port},
				{"--timeout", CLI_INT, &timeout},   {NULL, 0, NULL}};
	static const char help[] =
		"usage: muri devnet up [--dir D] [--ledgers N] [--indexers N] [--base-port P] [--timeout S]\n"
		"Starts a local network in the background (4 ledger replicas, 3 indexers and a gateway by default),\n"
		"waits until every process answers and the gateway serves, prints the endpoints and returns.\n"
		"Keys, genesis and data stay in D (default $MURI_DEVNET or ~/.muri/devnet) from one up to the next;\n"
		"the counts and --base-port apply to a new folder only.\n"
		"  --timeout S    seconds to wait for the network (default 120)\n";
	char *pos[1];
	int npos, prc = cli_parse("devnet up", help, argc, argv, opts, pos, 0, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	char root[DN_PATH], err[512];
	cli_devnet_dir(dir, root, sizeof(root));
	static dn_net net;
	if (dn_prepare(&net, root, (int)ledgers, (int)indexers, (int)base_port, err, sizeof(err)) != CM_OK) {
		dn_close(&net);
		return cli_fail(strstr(err, "--") ? CLI_USAGE : CLI_FAIL, "devnet up", "%s", err);
	}
	int running = 0, started = 0, failed = 0;
	for (int i = 0; i < net.n; i++) {
		dn_node *nd = &net.nodes[i];
		if ((nd->pid = dn_running(nd)) > 0) {
			running++;
			continue;
		}
		if (dn_spawn(&net, nd, 1) != 0) {
			failed = 1;
			break;
		}
		started++;
	}
	if (!failed && running == net.n) {
		for (int i = 0; i < net.n; i++)
			dn_read_ports(&net.nodes[i]);
		printf("muri devnet: already running in %s\n", root);
		print_endpoints(&net);
		dn_close(&net);
		return 0;
	}
	if (running)
		printf("muri devnet: %d of %d processes were running; started the other %d\n", running, net.n, started);
	/* every process answers Status */
	uint64_t end = cm_now_us() + (uint64_t)timeout * 1000000;
	char det[1024];
	int ready = 0;
	while (!failed && cm_now_us() < end) {
		ready = 0;
		for (int i = 0; i < net.n; i++) {
			dn_node *nd = &net.nodes[i];
			int st;
			if (waitpid(nd->pid, &st, WNOHANG) == nd->pid) {
				cli_fail(CLI_FAIL, "devnet up", "%s exited at start; see %s/log (muri devnet down --dir %s stops the rest)",
					 nd->name, nd->dir, root);
				failed = 1;
				break;
			}
			char target[32];
			snprintf(target, sizeof(target), "127.0.0.1:%d", nd->rpc_port);
			ready += (nd->rpc_port || dn_read_ports(nd) == 0) &&
				 dn_status_of(target, net.tls_ca, nd->service, 1, NULL, 0) == 0;
		}
		if (ready == net.n)
			break;
		usleep(100000);
	}
	if (!failed && ready == net.n && admin_key(&net) != 0)
		failed = 1;
	/* the gateway has followed the chain to where the ledger stood, so a
	 * restarted network shows its collections (and knows the admin key) as
	 * soon as up returns */
	long long lheight = -1, gheight = -1;
	for (int i = 0; !failed && ready == net.n && i < net.ledgers; i++) {
		char target[32];
		snprintf(target, sizeof(target), "127.0.0.1:%d", net.nodes[i].rpc_port);
		if (dn_status_of(target, net.tls_ca, "ledger", 1, det, sizeof(det)) == 0) {
			long long h = detail_num(det, "height");
			lheight = lheight < 0 || h < lheight ? h : lheight;
		}
	}
	while (!failed && ready == net.n && cm_now_us() < end) {
		char target[32];
		snprintf(target, sizeof(target), "127.0.0.1:%d", net.nodes[net.n - 1].rpc_port);
		if (dn_status_of(target, net.tls_ca, "gateway", 1, det, sizeof(det)) == 0 &&
		    (gheight = detail_num(det, "chain_height")) >= lheight)
			break;
		usleep(100000);
	}
	if (!failed && (ready != net.n || gheight < lheight)) {
		for (int i = 0; i < net.n; i++) {
			char target[32];
			snprintf(target, sizeof(target), "127.0.0.1:%d", net.nodes[i].rpc_port);
			if (!net.nodes[i].rpc_port || dn_status_of(target, net.tls_ca, net.nodes[i].service, 1, NULL, 0) != 0)
				fprintf(stderr, "muri devnet up: %s does not answer; see %s/log\n", net.nodes[i].name,
					net.nodes[i].dir);
		}
		cli_fail(CLI_FAIL, "devnet up",
			 ready != net.n ? "not every process answered within %ld s (muri devnet down --dir %s stops it)"
					: "the gateway did not catch up with the chain within %ld s (muri devnet down --dir "
					  "%s stops it)",
			 timeout, root);
		failed = 1;
	}
	if (!failed) {
		printf("muri devnet: running in %s (chain height %lld)\n", root, lheight);
		print_endpoints(&net);
	}
	dn_close(&net);
	return failed ? CLI_FAIL : 0;
}

static int cmd_down(int argc, char **argv)
{
	long grace = DN_GRACE_S;
	const char *dir = NULL;
	const cli_opt opts[] = {{"--dir", CLI_STR, &dir}, {"--grace", CLI_INT, &grace}, {NULL, 0, NULL}};
	static const char help[] = "usage: muri devnet down [--dir D] [--grace S]\n"
				   "Stops the processes `muri devnet up` started in D: SIGTERM, then SIGKILL to any\n"
				   "still running after the grace period (default 30 s). Data stays in D.\n";
	char *pos[1];
	int npos, prc = cli_parse("devnet down", help, argc, argv, opts, pos, 0, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	char root[DN_PATH], err[512];
	cli_devnet_dir(dir, root, sizeof(root));
	if (!have_devnet(root))
		return cli_fail(CLI_FAIL, "devnet down", "no devnet in %s", root);
	static dn_net net;
	if (dn_prepare(&net, root, 4, 3, 0, err, sizeof(err)) != CM_OK) {
		dn_close(&net);
		return cli_fail(CLI_FAIL, "devnet down", "%s", err);
	}
	int sent = 0, killed = 0;
	for (int i = net.n - 1; i >= 0; i--) /* the gateway first, the ledgers last */
		if ((net.nodes[i].pid = dn_running(&net.nodes[i])) > 0 && kill(net.nodes[i].pid, SIGTERM) == 0)
			sent++;
	uint64_t end = cm_now_us() + (uint64_t)grace * 1000000;
	for (;;) {
		int left = 0;
		for (int i = 0; i < net.n; i++) {
			dn_node *nd = &net.nodes[i];
			if (nd->pid <= 0)
				continue;
			if (dn_alive(nd->pid)) { /* verified as ours when signalled */
				left++;
			} else {
				printf("stopped %s\n", nd->name);
				nd->pid = 0;
			}
		}
		if (!left)
			break;
		if (cm_now_us() >= end) {
			for (int i = 0; i < net.n; i++)
				if (net.nodes[i].pid > 0 && dn_running(&net.nodes[i]) == net.nodes[i].pid) {
					kill(net.nodes[i].pid, SIGKILL);
					printf("killed %s (still running after %ld s)\n", net.nodes[i].name, grace);
					killed++;
					net.nodes[i].pid = 0;
				}
			break;
		}
		usleep(50000);
	}
	for (int i = 0; i < net.n; i++) {
		char path[DN_PATH + 16];
		snprintf(path, sizeof(path), "%s/pid", net.nodes[i].dir);
		if (!dn_running(&net.nodes[i]))
			unlink(path);
	}
	if (!sent)
		printf("muri devnet: nothing running in %s\n", root);
	else
		printf("muri devnet: stopped %d processes in %s%s\n", sent, root, killed ? " (some killed)" : "");
	dn_close(&net);
	return 0;
}

static void json_details(const char *det)
{
	printf("{");
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", det);
	int first = 1;
	for (char *save, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(t, '=');
		if (!eq)
			continue;
		*eq = '\0';
		printf("%s", first ? "" : ", ");
		cm_json_str(stdout, t);
		printf(": ");
		cm_json_str(stdout, eq + 1);
		first = 0;
	}
	printf("}");
}

static void print_collections(const Muri__V1__ListCollectionsResponse *l, int json)
{
	if (json)
		printf(",\n  \"collections\": [");
	else
		printf("\ncollections: %zu\n", l ? l->n_collections : 0);
	for (size_t i = 0; l && i < l->n_collections; i++) {
		const Muri__V1__CollectionInfo *c = l->collections[i];
		if (json) {
			printf("%s\n    {\"name\": ", i ? "," : "");
			cm_json_str(stdout, c->name);
			printf(", \"dimension\": %u, \"metric\": \"%s\", \"vectors\": %llu, \"fragments\": [", c->dimension,
			       cli_metric_name(c->metric), (unsigned long long)c->vector_count);
		} else {
			printf("  %s: %u-d %s, %llu vectors, %u fragments x %u replicas\n", c->name, c->dimension,
			       cli_metric_name(c->metric), (unsigned long long)c->vector_count, c->fragments,
			       c->replication);
		}
		for (size_t f = 0; f < c->n_fragment_states; f++) {
			const Muri__V1__FragmentState *s = c->fragment_states[f];
			if (json)
				printf("%s{\"fragment\": %u, \"epoch\": %llu, \"primary\": \"%s\", \"available\": %s, "
				       "\"log_size\": %llu, \"committed_size\": %llu}",
				       f ? ", " : "", s->fragment, (unsigned long long)s->epoch, s->primary,
				       s->available ? "true" : "false", (unsigned long long)s->log_size,
				       (unsigned long long)s->committed_size);
			else
				printf("    fragment %u: epoch %llu, primary %s %s, log %llu, committed %llu\n", s->fragment,
				       (unsigned long long)s->epoch, s->primary, s->available ? "serving" : "NOT ANSWERING",
				       (unsigned long long)s->log_size, (unsigned long long)s->committed_size);
		}
		if (json)
			printf("]}");
	}
	if (json)
		printf("%s]", l && l->n_collections ? "\n  " : "");
}

static int cmd_status(int argc, char **argv)
{
	int json = 0;
	const char *dir = NULL;
	const cli_opt opts[] = {{"--dir", CLI_STR, &dir}, {"--json", CLI_FLAG, &json}, {NULL, 0, NULL}};
	static const char help[] =
		"usage: muri devnet status [--dir D] [--json]\n"
		"Each process of the devnet in D (pid, rpc and metrics addresses, whether it answers), the\n"
		"ledger's heights and leader, the indexers' fragments, the collections and their fragments'\n"
		"health. Exit status 0 when every process answers, 1 otherwise.\n"
		"  --json   {\"dir\", \"nodes\": [{name, role, rpc, metrics, pid, status, details}], \"collections\"}\n";
	char *pos[1];
	int npos, prc = cli_parse("devnet status", help, argc, argv, opts, pos, 0, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	char root[DN_PATH], err[512];
	cli_devnet_dir(dir, root, sizeof(root));
	if (!have_devnet(root))
		return cli_fail(CLI_FAIL, "devnet status", "no devnet in %s (muri devnet up --dir %s starts one)", root,
				root);
	static dn_net net;
	if (dn_prepare(&net, root, 4, 3, 0, err, sizeof(err)) != CM_OK) {
		dn_close(&net);
		return cli_fail(CLI_FAIL, "devnet status", "%s", err);
	}
	int serving = 0;
	if (json) {
		printf("{\n  \"dir\": ");
		cm_json_str(stdout, root);
		printf(",\n  \"nodes\": [");
	} else {
		printf("devnet %s\n%-12s %-8s %-16s %-16s %-8s %-14s %s\n", root, "node", "role", "rpc", "metrics", "pid",
		       "status", "details");
	}
	for (int i = 0; i < net.n; i++) {
		dn_node *nd = &net.nodes[i];
		char det[1024] = "", rpc[32] = "-", met[32] = "-";
		nd->pid = dn_running(nd);
		const char *status = "stopped";
		if (nd->pid > 0) {
			status = "not answering";
			if (dn_read_ports(nd) == 0) {
				snprintf(rpc, sizeof(rpc), "127.0.0.1:%d", nd->rpc_port);
				snprintf(met, sizeof(met), "127.0.0.1:%d", nd->metrics_port);
				if (dn_status_of(rpc, net.tls_ca, nd->service, 1, det, sizeof(det)) == 0) {
					status = "serving";
					serving++;
				}
			}
		}
		if (!strcmp(nd->service, "ledger") && det[0]) { /* the leader of the replica's current view */
			long long view = detail_num(det, "view");
			size_t used = strlen(det);
			if (view >= 0)
				snprintf(det + used, sizeof(det) - used, " leader=ledger-%lld", view % net.ledgers);
		}
		if (json) {
			printf("%s\n    {\"name\": \"%s\", \"role\": \"%s\", \"rpc\": \"%s\", \"metrics\": \"%s\", "
			       "\"pid\": %ld, \"status\": \"%s\", \"details\": ",
			       i ? "," : "", nd->name, nd->service, rpc, met, (long)nd->pid, status);
			json_details(det);
			printf("}");
		} else {
			printf("%-12s %-8s %-16s %-16s %-8ld %-14s %s\n", nd->name, nd->service, rpc, met, (long)nd->pid,
			       status, det);
		}
	}
	if (json)
		printf("\n  ]");
	dn_node *gw = &net.nodes[net.n - 1];
	Muri__V1__ListCollectionsResponse *l = NULL;
	if (gw->rpc_port > 0) {
		char target[32];
		snprintf(target, sizeof(target), "127.0.0.1:%d", gw->rpc_port);
		cli_conn c = {.gateway = target, .tls_ca = net.tls_ca, .timeout_ms = 10000, .dir = net.root};
		cm_rpc_client *cl = cli_gateway("devnet status", &c);
		Muri__V1__ListCollectionsRequest req = MURI__V1__LIST_COLLECTIONS_REQUEST__INIT;
		if (cl)
			cm_rpc_unary(cl, "/muri.v1.VectorStore/ListCollections", &req.base,
				     &muri__v1__list_collections_response__descriptor, (ProtobufCMessage **)&l, 10000, NULL);
		cm_rpc_client_free(cl);
	}
	print_collections(l, json);
	if (l)
		protobuf_c_message_free_unpacked(&l->base, NULL);
	if (json)
		printf(",\n  \"serving\": %d,\n  \"processes\": %d\n}\n", serving, net.n);
	else
		printf("\n%d of %d processes serving\n", serving, net.n);
	dn_close(&net);
	return serving == net.n ? 0 : CLI_FAIL;
}

int cli_cmd_devnet(int argc, char **argv)
{
	static const char help[] =
		"usage: muri devnet up | down | status | run [options]   (muri devnet SUB --help)\n"
		"  up       start a local network in the background and return\n"
		"  down     stop it\n"
		"  status   what runs, heights, collections (--json)\n"
		"  run      a network in the foreground with a demo; Ctrl-C stops it (the default)\n";
	if (argc >= 1 && !strcmp(argv[0], "up"))
		return cmd_up(argc - 1, argv + 1);
	if (argc >= 1 && !strcmp(argv[0], "down"))
		return cmd_down(argc - 1, argv + 1);
	if (argc >= 1 && !strcmp(argv[0], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (argc >= 1 && !strcmp(argv[0], "run"))
		return dn_foreground(argc - 1, argv + 1);
	if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		printf("%s", help);
		return 0;
	}
	if (argc >= 1 && argv[0][0] != '-')
		return cli_fail(CLI_USAGE, "devnet", "unknown subcommand %s (up, down, status, run)", argv[0]);
	return dn_foreground(argc, argv);
}
