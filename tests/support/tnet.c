/* A ledger network for multi-process tests; see tnet.h. */
#include "tnet.h"
#include "cm_err.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static int write_genesis(tnet *t, const char *dir, const char *chain, const uint8_t *funded_pk, uint64_t balance)
{
	char hex[2 * CM_PK_BYTES + 1];
	snprintf(t->genesis, sizeof(t->genesis), "%s/genesis.txt", dir);
	FILE *g = fopen(t->genesis, "w");
	if (!g)
		return -1;
	fprintf(g, "chain_id = %s\ngenesis_time_ms = 1700000000000\n", chain);
	for (int i = 0; i < t->n; i++) {
		cm_hex(hex, t->pks[i], CM_PK_BYTES);
		fprintf(g, "replica = %s %s\n", hex, t->addrs[i]);
	}
	cm_hex(hex, funded_pk, CM_PK_BYTES);
	fprintf(g, "account = %s %llu\n", hex, (unsigned long long)balance);
	return fclose(g) == 0 ? 0 : -1;
}

int tnet_start(tnet *t, const char *dir, const char *name, const char *chain, int n, const uint8_t *funded_pk,
	       uint64_t balance)
{
	char path[700], data[700], exe[512];
	memset(t, 0, sizeof(*t));
	if (n < 1 || n > TNET_MAX)
		return -1;
	t->n = n;
	for (int i = 0; i < n; i++) {
		cm_keypair_generate(&t->reps[i]);
		memcpy(t->pks[i], t->reps[i].pk, CM_PK_BYTES);
		snprintf(path, sizeof(path), "%s/ledger%d.key", dir, i);
		if (cm_key_save(&t->reps[i], path) != CM_OK)
			return -1;
		int port = tproc_free_port();
		if (port < 0)
			return -1;
		snprintf(t->addrs[i], sizeof(t->addrs[i]), "127.0.0.1:%d", port);
		t->addrp[i] = t->addrs[i];
	}
	if (write_genesis(t, dir, chain, funded_pk, balance) != 0)
		return -1;
	tproc_build_path("services/ledger/muri-ledger", exe, sizeof(exe));
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/ledger%d.key", dir, i);
		snprintf(data, sizeof(data), "%s/data%d", dir, i);
		const char *args[] = {"--listen", t->addrs[i], "--genesis", t->genesis, "--key-file", path,
				      "--data-dir", data, "--grace-ms", "500", NULL};
		if (tproc_start(&t->procs[i], name, exe, args, 20000) != 0) {
			printf("# replica %d did not start\n", i);
			return -1;
		}
	}
	return 0;
}

void tnet_stop(tnet *t, int failed)
{
	for (int i = 0; i < t->n; i++) {
		if (t->procs[i].pid > 0 && tproc_alive(&t->procs[i]))
			tproc_stop(&t->procs[i], SIGTERM, 20000);
		tproc_cleanup(&t->procs[i], failed);
		cm_keypair_wipe(&t->reps[i]);
	}
}
