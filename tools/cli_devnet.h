/* A devnet's folder and processes, shared by `muri devnet up|down|status`
 * (background processes, cli_devnet.c) and the foreground `muri devnet`
 * with its demo (cli_demo.c).
 *
 * The folder D holds: genesis.txt (the chain: replicas, indexers, the demo
 * account), demo.key, nodes.txt (each process's name, role and the listen
 * port the genesis names, kept so a restart serves the same addresses), and
 * per process D/NAME/{node.key, tls.crt, tls.key, data/, log, ports, pid};
 * D/tls/ca.pem is the CA every process and client verifies TLS against
 * (cli_devnet_tls.c). */
#ifndef CLI_DEVNET_H
#define CLI_DEVNET_H

#include <limits.h>
#include <sys/types.h>

#include "cm_crypto.h"

#define DN_MAX 32            /* processes a devnet may start */
#define DN_PATH 1024

typedef struct dn_node {
	char name[32];
	const char *service;     /* ledger, indexer, gateway */
	char dir[DN_PATH];
	char port_file[DN_PATH + 16];
	char key_file[DN_PATH + 16];
	char tls_cert[DN_PATH + 16], tls_key[DN_PATH + 16];
	cm_keypair key;
	pid_t pid;
	int listen_port;         /* fixed: the genesis names the addresses */
	int rpc_port, metrics_port; /* as the process wrote them */
} dn_node;

typedef struct dn_net {
	char root[DN_PATH];
	char bindir[DN_PATH];
	char genesis[DN_PATH + 16];
	char demo_key[DN_PATH + 16];
	char tls_ca[DN_PATH + 16];
	cm_keypair demo;
	dn_node nodes[DN_MAX];
	int n, ledgers, indexers;
} dn_net;

/* Creates or reopens the devnet in root: folders, keys, the port table and
 * the genesis (an existing folder keeps its counts, keys and ports; ledgers,
 * indexers and base_port apply to a new one). err says why on failure. */
int dn_prepare(dn_net *net, const char *root, int ledgers, int indexers, int base_port, char *err, size_t errlen);
/* The CA and every process's certificate and key, made once
 * (cli_devnet_tls.c); dn_prepare calls it. */
int dn_tls_prepare(dn_net *net, char *err, size_t errlen);
/* Wipes the keys. */
void dn_close(dn_net *net);
/* Starts one process: detached in a session of its own (background) or in
 * this process group (foreground). Writes D/NAME/pid. */
int dn_spawn(dn_net *net, dn_node *nd, int detach);
/* Reads D/NAME/ports into rpc_port and metrics_port; 0 when written. */
int dn_read_ports(dn_node *nd);
/* The pid in D/NAME/pid if that process is alive and is this node's
 * (its command line names the node's key file); 0 otherwise. */
pid_t dn_running(const dn_node *nd);
/* The process exists and has not exited (a zombie has); one that is
 * exiting has lost its command line already but is still alive. */
int dn_alive(pid_t pid);
/* Status RPC, over TLS verified with ca (a PEM file) unless ca is NULL;
 * prints it unless quiet; details (may be NULL) receive "key=value " pairs.
 * 0 when the service answered. */
int dn_status_of(const char *target, const char *ca, const char *service, int quiet, char *details, size_t dlen);

/* The foreground devnet with its demo (cli_demo.c). */
int dn_foreground(int argc, char **argv);

#endif
