/* The files an operator hands a service: a config file (each key type the
 * services use, with bounds) and a genesis file, read both by the ledger's
 * parser and by the reader the indexer, gateway and command line use for
 * the replica list. The first byte picks which. Oracles: a refusal says
 * why; a loaded config holds every value within its key's bounds; a parsed
 * genesis formats to a canonical text that parses back to the same digest,
 * and the common reader, where it also accepts the file, finds the same
 * chain id. */
#include <stddef.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cm_config.h"
#include "cm_genesis.h"
#include "cm_err.h"
#include "fuzz.h"
#include "lg_genesis.h"

struct fuzz_cfg {
	char *name;
	int64_t port;
	bool flag;
	double ratio;
	uint64_t bytes;
};

static const cm_config_key keys[] = {
	{"name", CM_CFG_STR, offsetof(struct fuzz_cfg, name), "x", 0, 0, "a string"},
	{"port", CM_CFG_INT, offsetof(struct fuzz_cfg, port), "1", 1, 65535, "an int"},
	{"flag", CM_CFG_BOOL, offsetof(struct fuzz_cfg, flag), "false", 0, 0, "a bool"},
	{"ratio", CM_CFG_DOUBLE, offsetof(struct fuzz_cfg, ratio), "0.5", 0, 1, "a double"},
	{"bytes", CM_CFG_SIZE, offsetof(struct fuzz_cfg, bytes), "1k", 1, 1073741824, "a size"},
};

/* The input as a file: a memfd, named by its /proc path. */
static int as_file(const uint8_t *p, size_t n, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz", 0);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, p, n) == (ssize_t)n);
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

static void fuzz_config(const uint8_t *p, size_t n)
{
	char path[64];
	int fd = as_file(p, n, path, sizeof path);
	char *argv[] = {"fuzz", "--config", path, NULL};
	struct fuzz_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	char err[512] = "";
	int rc = cm_config_load(keys, sizeof keys / sizeof *keys, &cfg, "MURI_FUZZ_", 3, argv, err, sizeof err);
	if (rc == CM_OK) {
		FUZZ_CHECK(cfg.name != NULL);
		FUZZ_CHECK(cfg.port >= 1 && cfg.port <= 65535);
		FUZZ_CHECK(cfg.ratio >= 0 && cfg.ratio <= 1);
		FUZZ_CHECK(cfg.bytes >= 1 && cfg.bytes <= 1073741824);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	cm_config_free(keys, sizeof keys / sizeof *keys, &cfg);
	close(fd);
}

static void fuzz_genesis(const uint8_t *p, size_t n)
{
	lg_genesis *g = NULL;
	char err[512] = "";
	int rc = lg_genesis_parse((const char *)p, n, &g, err, sizeof err);
	if (rc != CM_OK) {
		FUZZ_CHECK(err[0] != '\0');
	} else {
		char *text = NULL;
		FUZZ_CHECK(lg_genesis_format(g, &text) == CM_OK);
		lg_genesis *g2 = NULL;
		FUZZ_CHECK(lg_genesis_parse(text, strlen(text), &g2, err, sizeof err) == CM_OK);
		uint8_t d1[CM_HASH_BYTES], d2[CM_HASH_BYTES];
		FUZZ_CHECK(lg_genesis_digest(g, d1) == CM_OK && lg_genesis_digest(g2, d2) == CM_OK);
		FUZZ_CHECK(memcmp(d1, d2, sizeof d1) == 0);
		free(text);
		lg_genesis_free(g2);
	}
	char path[64];
	int fd = as_file(p, n, path, sizeof path);
	static cm_genesis_replicas reps;
	char err2[512] = "";
	if (cm_genesis_read_replicas(path, &reps, err2, sizeof err2) == CM_OK) {
		FUZZ_CHECK(reps.n >= 1 && reps.n <= CM_CHAIN_MAX_REPLICAS);
		if (g)
			FUZZ_CHECK(strcmp(reps.chain_id, g->chain_id) == 0);
	} else {
		FUZZ_CHECK(err2[0] != '\0');
	}
	close(fd);
	lg_genesis_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int which;
	const uint8_t *p;
	size_t n;
	if (!fuzz_pick(data, size, &which, &p, &n))
		return 0;
	if (which)
		fuzz_genesis(p, n);
	else
		fuzz_config(p, n);
	return 0;
}
