/* Tests of common/cm_config: defaults, then file, environment and flags each
 * overriding the previous, every value type with its bounds, unknown keys
 * from every source, the file format, the check callback, --help and the
 * exact error messages. Environment variables use the prefix CMTEST_. */
#include "tap.h"
#include "cm_config.h"
#include "cm_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX "CMTEST_"
#define MAX_ARGS 16
#define ERR_MAX 512
#define OUT_MAX 8192

struct tcfg {
	char *host;
	int64_t port;
	bool verbose;
	double ratio;
	uint64_t cache;
	char *data_dir;
	int64_t offset;    /* no bounds */
	uint64_t max_bytes; /* no bounds */
};

static int check_set(const void *field, char *err, size_t len)
{
	const char *s = *(char *const *)field;
	if (*s)
		return 0;
	snprintf(err, len, "must be set");
	return -1;
}

static int check_silent(const void *field, char *err, size_t len)
{
	CM_UNUSED(err);
	CM_UNUSED(len);
	return *(const int64_t *)field == 13 ? -1 : 0;
}

static const cm_config_key keys[] = {
	{"rpc_host", CM_CFG_STR, offsetof(struct tcfg, host), "127.0.0.1", 0, 0, "address to listen on", NULL},
	{"rpc_port", CM_CFG_INT, offsetof(struct tcfg, port), "7001", 1, 65535, "port to listen on", NULL},
	{"verbose", CM_CFG_BOOL, offsetof(struct tcfg, verbose), NULL, 0, 0, "log more", NULL},
	{"ratio", CM_CFG_DOUBLE, offsetof(struct tcfg, ratio), "0.5", 0, 1, "a fraction", NULL},
	{"cache_size", CM_CFG_SIZE, offsetof(struct tcfg, cache), "64M", 0, 4294967296.0, "cache bytes", NULL},
	{"data_dir", CM_CFG_STR, offsetof(struct tcfg, data_dir), "/var/lib/muri", 0, 0, "where data lives", check_set},
	{"offset", CM_CFG_INT, offsetof(struct tcfg, offset), NULL, 0, 0, "unbounded integer", check_silent},
	{"max_bytes", CM_CFG_SIZE, offsetof(struct tcfg, max_bytes), NULL, 0, 0, "unbounded size", NULL},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char tmpdir[] = "/tmp/muri-test-config-XXXXXX";
static char err[ERR_MAX];
static char *argv_buf[MAX_ARGS + 2];

/* Loads with argv = {"prog", args..., NULL}; args ends with NULL. */
static int load(struct tcfg *c, const char *const *args)
{
	int argc = 0;
	argv_buf[argc++] = "prog";
	for (; args && *args && argc <= MAX_ARGS; args++)
		argv_buf[argc++] = (char *)*args;
	argv_buf[argc] = NULL;
	err[0] = '\0';
	return cm_config_load(keys, NKEYS, c, PREFIX, argc, argv_buf, err, sizeof(err));
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return path;
	fputs(text, f);
	fclose(f);
	return path;
}

/* Expects load to fail with rc and the message want. */
static void expect_fail(const char *const *args, int rc, const char *want)
{
	struct tcfg c = {0};
	TAP_EQ(load(&c, args), rc);
	TAP_STREQ(err, want);
	TAP_CHECK(c.host == NULL && c.port == 0); /* untouched */
}

static void test_defaults(void)
{
	struct tcfg c = {0};
	TAP_EQ(load(&c, NULL), CM_OK);
	TAP_STREQ(err, "");
	TAP_STREQ(c.host, "127.0.0.1");
	TAP_EQ(c.port, 7001);
	TAP_EQ(c.verbose, false);
	TAP_CHECK(c.ratio == 0.5);
	TAP_EQ(c.cache, 64ULL << 20);
	TAP_STREQ(c.data_dir, "/var/lib/muri");
	TAP_EQ(c.offset, 0);
	TAP_EQ(c.max_bytes, 0);
	TAP_CHECK(argv_buf[1] == NULL);
	cm_config_free(keys, NKEYS, &c);
	TAP_CHECK(c.host == NULL && c.data_dir == NULL);
	cm_config_free(keys, NKEYS, &c); /* twice is harmless */
	cm_config_free(keys, NKEYS, NULL);
}

static void test_sources_override(void)
{
	struct tcfg c = {0};
	char cfgflag[300];
	const char *path = write_file("prio.conf", "rpc_port = 7100\nrpc_host = 10.0.0.1\nratio = 0.25\n");
	snprintf(cfgflag, sizeof(cfgflag), "--config=%s", path);

	/* the file over the defaults */
	TAP_EQ(load(&c, ARGS(cfgflag)), CM_OK);
	TAP_EQ(c.port, 7100);
	TAP_STREQ(c.host, "10.0.0.1");
	TAP_EQ(c.cache, 64ULL << 20);
	cm_config_free(keys, NKEYS, &c);

	/* the environment over the file */
	setenv(PREFIX "RPC_PORT", "7200", 1);
	setenv(PREFIX "VERBOSE", "yes", 1);
	TAP_EQ(load(&c, ARGS(cfgflag)), CM_OK);
	TAP_EQ(c.port, 7200);
	TAP_STREQ(c.host, "10.0.0.1");
	TAP_EQ(c.verbose, true);
	TAP_CHECK(c.ratio == 0.25);
	cm_config_free(keys, NKEYS, &c);

	/* flags over the environment; the last of a repeated flag wins */
	TAP_EQ(load(&c, ARGS("--config", path, "--rpc-port", "7300", "--verbose=off",
			     "--ratio=0.75", "--ratio=1")), CM_OK);
	TAP_EQ(c.port, 7300);
	TAP_EQ(c.verbose, false);
	TAP_CHECK(c.ratio == 1.0);
	TAP_STREQ(c.host, "10.0.0.1");
	cm_config_free(keys, NKEYS, &c);

	/* the environment over the defaults without a file */
	TAP_EQ(load(&c, NULL), CM_OK);
	TAP_EQ(c.port, 7200);
	TAP_STREQ(c.host, "127.0.0.1");
	cm_config_free(keys, NKEYS, &c);
	unsetenv(PREFIX "RPC_PORT");
	unsetenv(PREFIX "VERBOSE");
}

static void test_flag_forms(void)
{
	struct tcfg c = {0};

	TAP_EQ(load(&c, ARGS("--rpc_port=1", "--rpc-host", "::1", "--cache-size", "1k")), CM_OK);
	TAP_EQ(c.port, 1);
	TAP_STREQ(c.host, "::1");
	TAP_EQ(c.cache, 1024);
	cm_config_free(keys, NKEYS, &c);

	/* a BOOL flag alone means true and never takes the next argument;
	 * the arguments that are not flags stay in argv, in order */
	TAP_EQ(load(&c, ARGS("import", "--verbose", "file.fvecs", "--offset", "-5", "-h2")), CM_OK);
	TAP_EQ(c.verbose, true);
	TAP_EQ(c.offset, -5);
	TAP_STREQ(argv_buf[0], "prog");
	TAP_STREQ(argv_buf[1], "import");
	TAP_STREQ(argv_buf[2], "file.fvecs");
	TAP_STREQ(argv_buf[3], "-h2");
	TAP_CHECK(argv_buf[4] == NULL);
	cm_config_free(keys, NKEYS, &c);

	/* "--" ends the flags; a value may start with "--" */
	TAP_EQ(load(&c, ARGS("--data-dir", "--odd", "--", "--rpc-port=9", "x")), CM_OK);
	TAP_STREQ(c.data_dir, "--odd");
	TAP_EQ(c.port, 7001);
	TAP_STREQ(argv_buf[1], "--rpc-port=9");
	TAP_STREQ(argv_buf[2], "x");
	TAP_CHECK(argv_buf[3] == NULL);
	cm_config_free(keys, NKEYS, &c);

	/* an empty string value is allowed for strings */
	TAP_EQ(load(&c, ARGS("--rpc-host=")), CM_OK);
	TAP_STREQ(c.host, "");
	cm_config_free(keys, NKEYS, &c);

	expect_fail(ARGS("--rpc-port"), CM_ERR_INVALID, "rpc_port: missing value (flag --rpc-port)");
	expect_fail(ARGS("--config"), CM_ERR_INVALID, "config: missing value (flag --config)");
	expect_fail(ARGS("--verbose=maybe"), CM_ERR_INVALID,
		    "verbose: \"maybe\" is not a boolean (true/false, yes/no, on/off, 1/0) (flag --verbose)");
	expect_fail(ARGS("--rpc-port="), CM_ERR_INVALID,
		    "rpc_port: \"\" is not an integer (flag --rpc-port)");
}

static void test_types(void)
{
	static const struct {
		const char *text;
		uint64_t want;
	} sizes[] = {
		{"0", 0}, {"17", 17}, {"1k", 1024}, {"2K", 2048}, {"3m", 3ULL << 20},
		{"4M", 4ULL << 20}, {"1g", 1ULL << 30}, {"5G", 5ULL << 30},
		{"18446744073709551615", UINT64_MAX}, {"17179869183G", 17179869183ULL << 30},
	};
	static const struct {
		const char *text;
		bool want;
	} bools[] = {
		{"true", true}, {"TRUE", true}, {"1", true}, {"yes", true}, {"on", true},
		{"false", false}, {"0", false}, {"no", false}, {"Off", false},
	};
	struct tcfg c = {0};
	char flag[128];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(flag, sizeof(flag), "--max-bytes=%s", sizes[i].text);
		TAP_EQ(load(&c, ARGS(flag)), CM_OK);
		TAP_CHECK(c.max_bytes == sizes[i].want);
		cm_config_free(keys, NKEYS, &c);
	}
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		snprintf(flag, sizeof(flag), "--verbose=%s", bools[i].text);
		TAP_EQ(load(&c, ARGS(flag)), CM_OK);
		TAP_EQ(c.verbose, bools[i].want);
		cm_config_free(keys, NKEYS, &c);
	}

	TAP_EQ(load(&c, ARGS("--offset=9223372036854775807", "--ratio=1e-3")), CM_OK);
	TAP_EQ(c.offset, INT64_MAX);
	TAP_CHECK(c.ratio == 0.001);
	cm_config_free(keys, NKEYS, &c);
	TAP_EQ(load(&c, ARGS("--offset=-9223372036854775808", "--ratio", "0")), CM_OK);
	TAP_EQ(c.offset, INT64_MIN);
	TAP_CHECK(c.ratio == 0.0);
	cm_config_free(keys, NKEYS, &c);

	expect_fail(ARGS("--offset=9223372036854775808"), CM_ERR_INVALID,
		    "offset: 9223372036854775808 is out of range for a 64-bit integer (flag --offset)");
	expect_fail(ARGS("--offset=12x"), CM_ERR_INVALID, "offset: \"12x\" is not an integer (flag --offset)");
	expect_fail(ARGS("--offset= 5"), CM_ERR_INVALID, "offset: \" 5\" is not an integer (flag --offset)");
	expect_fail(ARGS("--offset=1.5"), CM_ERR_INVALID, "offset: \"1.5\" is not an integer (flag --offset)");
	expect_fail(ARGS("--max-bytes=18446744073709551616"), CM_ERR_INVALID,
		    "max_bytes: 18446744073709551616 is out of range for a 64-bit size (flag --max-bytes)");
	expect_fail(ARGS("--max-bytes=17179869184G"), CM_ERR_INVALID,
		    "max_bytes: 17179869184G is out of range for a 64-bit size (flag --max-bytes)");
	const char *bad_sizes[] = {"", "1.5G", "-1", "1T", "1kb", "k", " 1", "1 k", "+1"};
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		char want[ERR_MAX];
		snprintf(flag, sizeof(flag), "--max-bytes=%s", bad_sizes[i]);
		snprintf(want, sizeof(want),
			 "max_bytes: \"%s\" is not a size (a number of bytes with an optional k, m or g suffix) (flag --max-bytes)",
			 bad_sizes[i]);
		expect_fail(ARGS(flag), CM_ERR_INVALID, want);
	}
	expect_fail(ARGS("--ratio=abc"), CM_ERR_INVALID, "ratio: \"abc\" is not a number (flag --ratio)");
	expect_fail(ARGS("--ratio=nan"), CM_ERR_INVALID, "ratio: \"nan\" is not a finite number (flag --ratio)");
	expect_fail(ARGS("--ratio=1e999"), CM_ERR_INVALID,
		    "ratio: 1e999 is out of range for a double (flag --ratio)");
}

static void test_bounds(void)
{
	struct tcfg c = {0};
	TAP_EQ(load(&c, ARGS("--rpc-port=65535", "--cache-size=4G", "--ratio=0")), CM_OK);
	TAP_EQ(c.port, 65535);
	TAP_EQ(c.cache, 4ULL << 30);
	cm_config_free(keys, NKEYS, &c);

	expect_fail(ARGS("--rpc-port=70000"), CM_ERR_INVALID,
		    "rpc_port: 70000 is above the maximum 65535 (flag --rpc-port)");
	expect_fail(ARGS("--rpc-port", "0"), CM_ERR_INVALID,
		    "rpc_port: 0 is below the minimum 1 (flag --rpc-port)");
	expect_fail(ARGS("--rpc-port=-1"), CM_ERR_INVALID,
		    "rpc_port: -1 is below the minimum 1 (flag --rpc-port)");
	expect_fail(ARGS("--ratio=1.5"), CM_ERR_INVALID,
		    "ratio: 1.5 is above the maximum 1 (flag --ratio)");
	expect_fail(ARGS("--cache-size=4194305k"), CM_ERR_INVALID,
		    "cache_size: 4194305k is above the maximum 4G (flag --cache-size)");

	setenv(PREFIX "RPC_PORT", "99999", 1);
	expect_fail(NULL, CM_ERR_INVALID, "rpc_port: 99999 is above the maximum 65535 (env CMTEST_RPC_PORT)");
	/* a bad value fails even when a later source would override it */
	expect_fail(ARGS("--rpc-port=80"), CM_ERR_INVALID,
		    "rpc_port: 99999 is above the maximum 65535 (env CMTEST_RPC_PORT)");
	unsetenv(PREFIX "RPC_PORT");

	const char *path = write_file("bounds.conf", "\n\nratio = 2\n");
	char want[ERR_MAX];
	snprintf(want, sizeof(want), "ratio: 2 is above the maximum 1 (file %s line 3)", path);
	expect_fail(ARGS("--config", path), CM_ERR_INVALID, want);
}

static void test_unknown_keys(void)
{
	char want[ERR_MAX];
	const char *path = write_file("unknown.conf", "# settings\nrpc_port = 7001\nrpc_prot = 7002\n");
	snprintf(want, sizeof(want), "unknown key \"rpc_prot\" (file %s line 3)", path);
	expect_fail(ARGS("--config", path), CM_ERR_INVALID, want);

	setenv(PREFIX "RPC_PROT", "1", 1);
	expect_fail(NULL, CM_ERR_INVALID, "unknown key \"rpc_prot\" (env CMTEST_RPC_PROT)");
	unsetenv(PREFIX "RPC_PROT");

	expect_fail(ARGS("--rpc-prot=1"), CM_ERR_INVALID, "unknown key \"rpc_prot\" (flag --rpc-prot)");
	expect_fail(ARGS("--rpc-prot", "1"), CM_ERR_INVALID, "unknown key \"rpc_prot\" (flag --rpc-prot)");
	expect_fail(ARGS("--help=1"), CM_ERR_INVALID, "unknown key \"help\" (flag --help)");
}

static void test_file_format(void)
{
	struct tcfg c = {0};
	char want[ERR_MAX];
	const char *path = write_file("good.conf",
		"# a comment\n"
		"\n"
		"   \t\n"
		"  # an indented comment\n"
		"rpc_host = \"my host # not a comment\"   # a comment\r\n"
		"data-dir=\"/srv/a \\\"b\\\" c\\\\d\"\n"
		"rpc_port=7005 # trailing comment\n"
		"  cache_size   =   2g  \n"
		"offset = a#b"); /* no final newline; '#' without a blank before is kept */
	TAP_EQ(load(&c, ARGS("--config", path)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "offset: \"a#b\" is not an integer") != NULL);

	path = write_file("good.conf",
		"# a comment\n"
		"\n"
		"   \t\n"
		"  # an indented comment\n"
		"rpc_host = \"my host # not a comment\"   # a comment\r\n"
		"data-dir=\"/srv/a \\\"b\\\" c\\\\d\"\n"
		"rpc_port=7005 # trailing comment\n"
		"  cache_size   =   2g  \n"
		"verbose = on");
	TAP_EQ(load(&c, ARGS("--config", path)), CM_OK);
	TAP_STREQ(c.host, "my host # not a comment");
	TAP_STREQ(c.data_dir, "/srv/a \"b\" c\\d");
	TAP_EQ(c.port, 7005);
	TAP_EQ(c.cache, 2ULL << 30);
	TAP_EQ(c.verbose, true);
	cm_config_free(keys, NKEYS, &c);

	static const struct {
		const char *text, *fmt;
	} bad[] = {
		{"rpc_port 7001\n", "malformed line, expected \"key = value\" (file %s line 1)"},
		{"\n= 5\n", "malformed line, expected \"key = value\" (file %s line 2)"},
		{"rpc_host = \"open\n", "rpc_host: unterminated quoted value (file %s line 1)"},
		{"rpc_host = \"a\" b\n", "rpc_host: unexpected text after the closing quote (file %s line 1)"},
		{"rpc_port = 1\n#\nrpc_port = 2\n", "rpc_port: set twice (file %s line 3, first at line 1)"},
		{"rpc_port = 8x\n", "rpc_port: \"8x\" is not an integer (file %s line 1)"},
		{"rpc_port = \n", "rpc_port: \"\" is not an integer (file %s line 1)"},
		{"a = b\0c\n", "line contains a NUL byte (file %s line 1)"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		path = write_file("bad.conf", bad[i].text);
		if (i == sizeof(bad) / sizeof(bad[0]) - 1) {
			FILE *f = fopen(path, "w");
			fwrite("a = b\0c\n", 1, 8, f); /* fputs stops at the NUL */
			fclose(f);
		}
		snprintf(want, sizeof(want), bad[i].fmt, path);
		expect_fail(ARGS("--config", path), CM_ERR_INVALID, want);
	}

	/* a line of CM_CONFIG_LINE_MAX bytes is read, one more byte is refused */
	static char big[CM_CONFIG_LINE_MAX + 32];
	size_t head = strlen("rpc_host = ");
	memcpy(big, "rpc_host = ", head);
	memset(big + head, 'h', CM_CONFIG_LINE_MAX - head);
	strcpy(big + CM_CONFIG_LINE_MAX, "\n");
	path = write_file("long.conf", big);
	TAP_EQ(load(&c, ARGS("--config", path)), CM_OK);
	TAP_EQ(strlen(c.host), CM_CONFIG_LINE_MAX - head);
	cm_config_free(keys, NKEYS, &c);
	strcpy(big + CM_CONFIG_LINE_MAX, "h\n");
	path = write_file("long.conf", big);
	snprintf(want, sizeof(want), "line longer than %d bytes (file %s line 1)", CM_CONFIG_LINE_MAX, path);
	expect_fail(ARGS("--config", path), CM_ERR_INVALID, want);

	/* a missing file, and a path that is not a readable file */
	char missing[64];
	snprintf(missing, sizeof(missing), "%s/missing.conf", tmpdir);
	snprintf(want, sizeof(want),
		 "config: cannot open %s: No such file or directory (flag --config)", missing);
	expect_fail(ARGS("--config", missing), CM_ERR_NOTFOUND, want);
	snprintf(missing, sizeof(missing), "--config=%s", tmpdir);
	snprintf(want, sizeof(want), "config: cannot read %s: Is a directory (flag --config)", tmpdir);
	expect_fail(ARGS(missing), CM_ERR_IO, want);
}

static void test_check_callback(void)
{
	struct tcfg c = {0};
	char want[ERR_MAX];

	expect_fail(ARGS("--data-dir="), CM_ERR_INVALID, "data_dir: must be set (flag --data-dir)");
	setenv(PREFIX "DATA_DIR", "", 1);
	expect_fail(NULL, CM_ERR_INVALID, "data_dir: must be set (env CMTEST_DATA_DIR)");
	/* the check sees the final value, so a later source can fix an earlier one */
	TAP_EQ(load(&c, ARGS("--data-dir=/d")), CM_OK);
	TAP_STREQ(c.data_dir, "/d");
	cm_config_free(keys, NKEYS, &c);
	unsetenv(PREFIX "DATA_DIR");

	const char *path = write_file("check.conf", "offset = 13\n");
	snprintf(want, sizeof(want), "offset: invalid value (file %s line 1)", path);
	expect_fail(ARGS("--config", path), CM_ERR_INVALID, want);
}

static void test_help(void)
{
	struct tcfg c = {0};
	char out[OUT_MAX];
	char path[300];
	snprintf(path, sizeof(path), "%s/help.out", tmpdir);

	fflush(stdout);
	int saved = dup(1);
	FILE *f = fopen(path, "w+");
	TAP_CHECK(f != NULL);
	if (!f)
		return;
	dup2(fileno(f), 1);
	int rc = load(&c, ARGS("--rpc-port=1", "--help", "--bogus"));
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	size_t n = (size_t)pread(fileno(f), out, sizeof(out) - 1, 0);
	fclose(f);
	out[n < sizeof(out) ? n : 0] = '\0';

	TAP_EQ(rc, 1);
	TAP_CHECK(c.host == NULL && c.port == 0);
	TAP_CHECK(strncmp(out, "usage: prog [--config PATH] [--key=value ...]\n", 46) == 0);
	TAP_CHECK(strstr(out, "  --rpc-port INT\n\tport to listen on (default 7001, range 1..65535, env CMTEST_RPC_PORT)\n") != NULL);
	TAP_CHECK(strstr(out, "  --verbose[=BOOL]\n\tlog more (default false, env CMTEST_VERBOSE)\n") != NULL);
	TAP_CHECK(strstr(out, "  --cache-size SIZE\n\tcache bytes (default 64M, range 0..4G, env CMTEST_CACHE_SIZE)\n") != NULL);
	TAP_CHECK(strstr(out, "  --rpc-host STRING\n\taddress to listen on (default \"127.0.0.1\", env CMTEST_RPC_HOST)\n") != NULL);
	TAP_CHECK(strstr(out, "--help") != NULL);

	/* -h too; an unknown flag before --help is still an error */
	fflush(stdout);
	saved = dup(1);
	int null = open("/dev/null", O_WRONLY);
	dup2(null, 1);
	rc = load(&c, ARGS("-h"));
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(null);
	TAP_EQ(rc, 1);
	expect_fail(ARGS("--bogus", "--help"), CM_ERR_INVALID, "unknown key \"bogus\" (flag --bogus)");
}

static void test_failure_keeps_cfg(void)
{
	struct tcfg c = {.host = "keep", .port = 42};
	const char *path = write_file("partial.conf", "rpc_host = \"from file\"\ndata_dir = /x\n");
	/* the file's strings were allocated before the flag failed: nothing leaks
	 * (the sanitizer build checks) and cfg is untouched */
	TAP_EQ(load(&c, ARGS("--config", path, "--rpc-port=x")), CM_ERR_INVALID);
	TAP_STREQ(c.host, "keep");
	TAP_EQ(c.port, 42);
	TAP_STREQ(argv_buf[1], "--config"); /* argv untouched too */
}

static void test_bad_table(void)
{
	struct tcfg c = {0};
	cm_config_key bad[] = {
		{"Rpc-Port", CM_CFG_INT, offsetof(struct tcfg, port), "1", 0, 0, "", NULL},
	};
	TAP_EQ(cm_config_load(bad, 1, &c, NULL, 0, NULL, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "config table: key \"Rpc-Port\" is not snake_case");
	bad[0].name = "config";
	TAP_EQ(cm_config_load(bad, 1, &c, NULL, 0, NULL, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "config table: key \"config\" is reserved");
	/* an invalid default is reported like any other value */
	cm_config_key def[] = {
		{"port", CM_CFG_INT, offsetof(struct tcfg, port), NULL, 1, 10, "", NULL},
	};
	TAP_EQ(cm_config_load(def, 1, &c, NULL, 0, NULL, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "port: 0 is below the minimum 1 (default)");
	/* no env prefix and no argv: defaults only */
	def[0].def = "3";
	TAP_EQ(cm_config_load(def, 1, &c, NULL, 0, NULL, NULL, 0), CM_OK);
	TAP_EQ(c.port, 3);
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 1;
	TAP_RUN(test_defaults);
	TAP_RUN(test_sources_override);
	TAP_RUN(test_flag_forms);
	TAP_RUN(test_types);
	TAP_RUN(test_bounds);
	TAP_RUN(test_unknown_keys);
	TAP_RUN(test_file_format);
	TAP_RUN(test_check_callback);
	TAP_RUN(test_help);
	TAP_RUN(test_failure_keeps_cfg);
	TAP_RUN(test_bad_table);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
