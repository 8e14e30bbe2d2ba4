/* Configuration as a table (in the manner of nginx's ngx_command_t): each
 * key has a type, the offset of its field in the service's config struct, a
 * default, bounds and help. Values come from, in rising priority: defaults,
 * a config file (--config PATH; "key = value" lines, # comments), the
 * environment (PREFIX + KEY in upper case, e.g. MURI_INDEXER_RPC_PORT) and
 * command-line flags (--key=value or --key value; '-' and '_' alike).
 * An unknown key (in the file, in a flag, or an env var with the prefix) or
 * an invalid value fails with a message naming the key and its source. */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits: the longest config file line (newline excluded), the longest
 * string value from any source, and the longest key name. */
#define CM_CONFIG_LINE_MAX 4096
#define CM_CONFIG_VALUE_MAX 4096
#define CM_CONFIG_NAME_MAX 64

enum cm_cfg_type {
	CM_CFG_STR,    /* char * (heap copy; freed by cm_config_free) */
	CM_CFG_INT,    /* int64_t, within [min, max] */
	CM_CFG_BOOL,   /* bool: true/false/1/0/yes/no/on/off */
	CM_CFG_DOUBLE, /* double, within [min, max] */
	CM_CFG_SIZE,   /* uint64_t bytes: a number with optional k/K, m/M, g/G suffix (powers of 1024), within [min, max] */
};

typedef struct cm_config_key {
	const char *name;     /* snake_case, e.g. "rpc_port" */
	enum cm_cfg_type type;
	size_t offset;        /* offsetof(struct your_config, field) */
	const char *def;      /* default as text; NULL means "" for strings, 0 otherwise */
	double min, max;      /* bounds for INT, DOUBLE and SIZE; ignored when min == max == 0 */
	const char *help;
	/* Optional extra check on the parsed value; returns 0 or writes why into err. */
	int (*check)(const void *field, char *err, size_t errlen);
} cm_config_key;

/* Fills cfg from all sources. argv's recognised flags are consumed; any
 * other argument starting with "--" is an error, except "--help", which
 * makes it return 1 after printing the usage to stdout. On failure returns
 * CM_ERR_INVALID (or CM_ERR_IO / CM_ERR_NOTFOUND for the file) with a
 * message naming the key in err. The caller owns cfg's strings afterwards
 * and releases them with cm_config_free. */
int cm_config_load(const cm_config_key *keys, size_t nkeys, void *cfg,
		   const char *env_prefix, int argc, char **argv,
		   char *err, size_t errlen);

/* Frees the strings cm_config_load allocated in cfg. Accepts NULL. */
void cm_config_free(const cm_config_key *keys, size_t nkeys, void *cfg);

/* Prints every key with its type, default and help. */
void cm_config_usage(FILE *out, const char *prog, const cm_config_key *keys,
		     size_t nkeys, const char *env_prefix);

#endif
