/* Table-driven configuration: every key of a cm_config_key table is set from
 * its default, then the config file, the environment and the flags, each
 * value parsed and bounds-checked as it arrives. Values are built in a
 * scratch copy of the struct and reach the caller's only on success. */
#include "cm_config.h"
#include "cm_err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h> /* environ, with _GNU_SOURCE */

#define CFG_SRC_MAX 512   /* "file PATH line N", "env NAME" or "flag --name" */
#define CFG_WHY_MAX 256   /* what a check callback may say */
#define CFG_NUM_MAX 64    /* a formatted bound or default */
#define CFG_KIB 1024ULL

/* The state of one cm_config_load call. */
struct cfg_state {
	const cm_config_key *keys;
	size_t nkeys;
	char *scratch;              /* laid out like the caller's struct */
	char (*src)[CFG_SRC_MAX];   /* where each key's current value came from */
	int *file_line;             /* the file line that set each key, 0 if none */
	char *err;
	size_t errlen;
};

/* One recognised flag, kept until the file and environment are loaded. */
struct cfg_flag {
	size_t key;
	const char *value;          /* points into argv */
	const char *as_written;     /* "--rpc-port" part of argv[i] */
	int as_written_len;
};

static int fail(struct cfg_state *st, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct cfg_state *st, int rc, const char *fmt, ...)
{
	va_list ap;
	if (st->err && st->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(st->err, st->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static size_t field_size(enum cm_cfg_type t)
{
	switch (t) {
	case CM_CFG_STR: return sizeof(char *);
	case CM_CFG_INT: return sizeof(int64_t);
	case CM_CFG_BOOL: return sizeof(bool);
	case CM_CFG_DOUBLE: return sizeof(double);
	case CM_CFG_SIZE: return sizeof(uint64_t);
	}
	return 0;
}

static const char *type_word(enum cm_cfg_type t)
{
	switch (t) {
	case CM_CFG_STR: return "STRING";
	case CM_CFG_INT: return "INT";
	case CM_CFG_BOOL: return "BOOL";
	case CM_CFG_DOUBLE: return "NUMBER";
	case CM_CFG_SIZE: return "SIZE";
	}
	return "?";
}

/* Key names match with '-' and '_' alike and ASCII case ignored. */
static int name_match(const char *key, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i] == '-' ? '_' : (char)tolower((unsigned char)s[i]);
		if (key[i] == '\0' || key[i] != c)
			return 0;
	}
	return key[n] == '\0';
}

static int find_key(const struct cfg_state *st, const char *s, size_t n)
{
	for (size_t k = 0; k < st->nkeys; k++)
		if (name_match(st->keys[k].name, s, n))
			return (int)k;
	return -1;
}

/* The key name as a user spelt it, made snake_case, for messages. */
static void normalize_name(char *out, size_t outlen, const char *s, size_t n)
{
	size_t i;
	for (i = 0; i < n && i + 1 < outlen; i++)
		out[i] = s[i] == '-' ? '_' : (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

static bool has_bounds(const cm_config_key *key)
{
	return !(key->min == 0 && key->max == 0);
}

/* A size in bytes, with the largest suffix that divides it exactly. */
static void format_size(char *out, size_t n, double v)
{
	static const char suffix[] = "GMK";
	uint64_t u = (uint64_t)v;
	for (int i = 0; i < 3; i++) {
		uint64_t unit = CFG_KIB << (10 * (2 - i));
		if (u >= unit && u % unit == 0) {
			snprintf(out, n, "%llu%c", (unsigned long long)(u / unit), suffix[i]);
			return;
		}
	}
	snprintf(out, n, "%llu", (unsigned long long)u);
}

static void format_bound(char *out, size_t n, enum cm_cfg_type t, double v)
{
	if (t == CM_CFG_SIZE)
		format_size(out, n, v);
	else if (t == CM_CFG_INT)
		snprintf(out, n, "%.0f", v);
	else
		snprintf(out, n, "%g", v);
}

static int check_bounds(struct cfg_state *st, const cm_config_key *key, double v,
			const char *text, const char *src)
{
	char b[CFG_NUM_MAX];
	if (!has_bounds(key))
		return CM_OK;
	if (v < key->min) {
		format_bound(b, sizeof(b), key->type, key->min);
		return fail(st, CM_ERR_INVALID, "%s: %s is below the minimum %s (%s)",
			    key->name, text, b, src);
	}
	if (v > key->max) {
		format_bound(b, sizeof(b), key->type, key->max);
		return fail(st, CM_ERR_INVALID, "%s: %s is above the maximum %s (%s)",
			    key->name, text, b, src);
	}
	return CM_OK;
}

static int parse_int(struct cfg_state *st, const cm_config_key *key, const char *text,
		     const char *src, int64_t *out)
{
	char *end;
	long long v;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (end == text || *end != '\0' || isspace((unsigned char)text[0]))
		return fail(st, CM_ERR_INVALID, "%s: \"%s\" is not an integer (%s)",
			    key->name, text, src);
	if (errno == ERANGE)
		return fail(st, CM_ERR_INVALID, "%s: %s is out of range for a 64-bit integer (%s)",
			    key->name, text, src);
	int rc = check_bounds(st, key, (double)v, text, src);
	if (rc == CM_OK)
		*out = (int64_t)v;
	return rc;
}

static int parse_double(struct cfg_state *st, const cm_config_key *key, const char *text,
			const char *src, double *out)
{
	char *end;
	double v;
	errno = 0;
	v = strtod(text, &end);
	if (end == text || *end != '\0' || isspace((unsigned char)text[0]))
		return fail(st, CM_ERR_INVALID, "%s: \"%s\" is not a number (%s)",
			    key->name, text, src);
	if (errno == ERANGE && isinf(v))
		return fail(st, CM_ERR_INVALID, "%s: %s is out of range for a double (%s)",
			    key->name, text, src);
	if (!isfinite(v))
		return fail(st, CM_ERR_INVALID, "%s: \"%s\" is not a finite number (%s)",
			    key->name, text, src);
	int rc = check_bounds(st, key, v, text, src);
	if (rc == CM_OK)
		*out = v;
	return rc;
}

/* Digits with an optional k/K, m/M or g/G suffix, in powers of 1024. */
static int parse_size(struct cfg_state *st, const cm_config_key *key, const char *text,
		      const char *src, uint64_t *out)
{
	const char *p = text;
	uint64_t v = 0, mult = 1;

	if (!isdigit((unsigned char)*p))
		goto not_size;
	for (; isdigit((unsigned char)*p); p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			goto too_big;
		v = v * 10 + d;
	}
	switch (*p) {
	case '\0': break;
	case 'k': case 'K': mult = CFG_KIB; p++; break;
	case 'm': case 'M': mult = CFG_KIB * CFG_KIB; p++; break;
	case 'g': case 'G': mult = CFG_KIB * CFG_KIB * CFG_KIB; p++; break;
	default: goto not_size;
	}
	if (*p != '\0')
		goto not_size;
	if (v > UINT64_MAX / mult)
		goto too_big;
	v *= mult;
	int rc = check_bounds(st, key, (double)v, text, src);
	if (rc == CM_OK)
		*out = v;
	return rc;
not_size:
	return fail(st, CM_ERR_INVALID,
		    "%s: \"%s\" is not a size (a number of bytes with an optional k, m or g suffix) (%s)",
		    key->name, text, src);
too_big:
	return fail(st, CM_ERR_INVALID, "%s: %s is out of range for a 64-bit size (%s)",
		    key->name, text, src);
}

static int parse_bool(struct cfg_state *st, const cm_config_key *key, const char *text,
		      const char *src, bool *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return CM_OK;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return CM_OK;
		}
	}
	return fail(st, CM_ERR_INVALID,
		    "%s: \"%s\" is not a boolean (true/false, yes/no, on/off, 1/0) (%s)",
		    key->name, text, src);
}

/* Parses text for key k into the scratch struct and records its source; a
 * string value is copied, the scratch struct owns the copy and the one it
 * replaces is freed. */
static int set_value(struct cfg_state *st, size_t k, const char *text, const char *src)
{
	const cm_config_key *key = &st->keys[k];
	void *field = st->scratch + key->offset;
	int rc = CM_OK;

	if (strlen(text) > CM_CONFIG_VALUE_MAX)
		return fail(st, CM_ERR_INVALID, "%s: value longer than %d bytes (%s)",
			    key->name, CM_CONFIG_VALUE_MAX, src);
	switch (key->type) {
	case CM_CFG_STR: {
		char *copy = strdup(text);
		if (!copy)
			return fail(st, CM_ERR_NOMEM, "%s: out of memory (%s)", key->name, src);
		free(*(char **)field);
		*(char **)field = copy;
		break;
	}
	case CM_CFG_INT: {
		int64_t v = 0;
		if ((rc = parse_int(st, key, text, src, &v)) == CM_OK)
			memcpy(field, &v, sizeof(v));
		break;
	}
	case CM_CFG_BOOL: {
		bool v = false;
		if ((rc = parse_bool(st, key, text, src, &v)) == CM_OK)
			memcpy(field, &v, sizeof(v));
		break;
	}
	case CM_CFG_DOUBLE: {
		double v = 0;
		if ((rc = parse_double(st, key, text, src, &v)) == CM_OK)
			memcpy(field, &v, sizeof(v));
		break;
	}
	case CM_CFG_SIZE: {
		uint64_t v = 0;
		if ((rc = parse_size(st, key, text, src, &v)) == CM_OK)
			memcpy(field, &v, sizeof(v));
		break;
	}
	}
	if (rc == CM_OK)
		snprintf(st->src[k], CFG_SRC_MAX, "%s", src);
	return rc;
}

/* Checks the table itself: a bad table is the programmer's error, but it
 * is reported like any other so that the service fails at start. */
static int check_table(struct cfg_state *st)
{
	for (size_t k = 0; k < st->nkeys; k++) {
		const cm_config_key *key = &st->keys[k];
		const char *n = key->name;
		if (!n || !*n || strlen(n) > CM_CONFIG_NAME_MAX || field_size(key->type) == 0 ||
		    key->min > key->max)
			return fail(st, CM_ERR_INVALID, "config table: entry %zu is invalid", k);
		for (const char *p = n; *p; p++)
			if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
				return fail(st, CM_ERR_INVALID,
					    "config table: key \"%s\" is not snake_case", n);
		if (strcmp(n, "config") == 0 || strcmp(n, "help") == 0)
			return fail(st, CM_ERR_INVALID, "config table: key \"%s\" is reserved", n);
		for (size_t j = 0; j < k; j++)
			if (strcmp(st->keys[j].name, n) == 0)
				return fail(st, CM_ERR_INVALID,
					    "config table: key \"%s\" appears twice", n);
	}
	return CM_OK;
}

static int load_defaults(struct cfg_state *st)
{
	for (size_t k = 0; k < st->nkeys; k++) {
		const cm_config_key *key = &st->keys[k];
		const char *def = key->def;
		if (!def)
			def = key->type == CM_CFG_STR ? "" : "0";
		int rc = set_value(st, k, def, "default");
		if (rc != CM_OK)
			return rc;
	}
	return CM_OK;
}

static char *trim(char *s)
{
	char *end;
	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Unquotes a value that starts with '"' into out (at least strlen(v) + 1
 * bytes); \" and \\ are escapes, after the closing quote only blanks or a
 * comment may follow. */
static int unquote(struct cfg_state *st, const cm_config_key *key, const char *v,
		   char *out, const char *src)
{
	const char *p = v + 1;
	size_t n = 0;
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		out[n++] = *p;
	}
	out[n] = '\0';
	if (*p != '"')
		return fail(st, CM_ERR_INVALID, "%s: unterminated quoted value (%s)", key->name, src);
	for (p++; isspace((unsigned char)*p); p++)
		;
	if (*p != '\0' && *p != '#')
		return fail(st, CM_ERR_INVALID, "%s: unexpected text after the closing quote (%s)",
			    key->name, src);
	return CM_OK;
}

/* Applies one non-blank, non-comment line "key = value". */
static int apply_line(struct cfg_state *st, char *line, const char *path, int lineno)
{
	char src[CFG_SRC_MAX], unq[CM_CONFIG_LINE_MAX + 1];
	char *eq = strchr(line, '='), *name, *value;
	int k;

	snprintf(src, sizeof(src), "file %s line %d", path, lineno);
	if (!eq)
		return fail(st, CM_ERR_INVALID, "malformed line, expected \"key = value\" (%s)", src);
	*eq = '\0';
	name = trim(line);
	value = trim(eq + 1);
	if (!*name)
		return fail(st, CM_ERR_INVALID, "malformed line, expected \"key = value\" (%s)", src);
	k = find_key(st, name, strlen(name));
	if (k < 0)
		return fail(st, CM_ERR_INVALID, "unknown key \"%s\" (%s)", name, src);
	if (st->file_line[k])
		return fail(st, CM_ERR_INVALID, "%s: set twice (%s, first at line %d)",
			    st->keys[k].name, src, st->file_line[k]);
	st->file_line[k] = lineno;
	if (*value == '"') {
		int rc = unquote(st, &st->keys[k], value, unq, src);
		if (rc != CM_OK)
			return rc;
		value = unq;
	} else {
		/* an unquoted value ends at a '#' that follows a blank */
		for (char *p = value; *p; p++) {
			if (*p == '#' && p > value && isspace((unsigned char)p[-1])) {
				*p = '\0';
				value = trim(value);
				break;
			}
		}
	}
	return set_value(st, (size_t)k, value, src);
}

static int load_file(struct cfg_state *st, const char *path, const char *via)
{
	char line[CM_CONFIG_LINE_MAX + 1];
	int lineno = 0, rc = CM_OK, c = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return fail(st, errno == ENOENT ? CM_ERR_NOTFOUND : CM_ERR_IO,
			    "config: cannot open %s: %s (%s)", path, strerror(errno), via);
	while (rc == CM_OK && c != EOF) {
		size_t n = 0;
		lineno++;
		while ((c = getc(f)) != EOF && c != '\n') {
			if (c == '\0') {
				rc = fail(st, CM_ERR_INVALID, "line contains a NUL byte (file %s line %d)",
					  path, lineno);
				break;
			}
			if (n == CM_CONFIG_LINE_MAX) {
				rc = fail(st, CM_ERR_INVALID, "line longer than %d bytes (file %s line %d)",
					  CM_CONFIG_LINE_MAX, path, lineno);
				break;
			}
			line[n++] = (char)c;
		}
		if (rc != CM_OK)
			break;
		if (c == EOF && ferror(f)) {
			rc = fail(st, CM_ERR_IO, "config: cannot read %s: %s (%s)", path,
				  strerror(errno), via);
			break;
		}
		line[n] = '\0';
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		rc = apply_line(st, s, path, lineno);
	}
	fclose(f);
	return rc;
}

static int load_env(struct cfg_state *st, const char *prefix)
{
	char src[CFG_SRC_MAX], name[CM_CONFIG_NAME_MAX + 1];
	size_t plen;

	if (!prefix || !*prefix || !environ)
		return CM_OK;
	plen = strlen(prefix);
	for (char **e = environ; *e; e++) {
		const char *rest, *eq;
		if (strncmp(*e, prefix, plen) != 0)
			continue;
		rest = *e + plen;
		eq = strchr(rest, '=');
		if (!eq)
			continue;
		snprintf(src, sizeof(src), "env %.*s", (int)(eq - *e), *e);
		int k = find_key(st, rest, (size_t)(eq - rest));
		if (k < 0) {
			normalize_name(name, sizeof(name), rest, (size_t)(eq - rest));
			return fail(st, CM_ERR_INVALID, "unknown key \"%s\" (%s)", name, src);
		}
		int rc = set_value(st, (size_t)k, eq + 1, src);
		if (rc != CM_OK)
			return rc;
	}
	return CM_OK;
}

static int run_checks(struct cfg_state *st)
{
	char why[CFG_WHY_MAX];
	for (size_t k = 0; k < st->nkeys; k++) {
		const cm_config_key *key = &st->keys[k];
		if (!key->check)
			continue;
		why[0] = '\0';
		if (key->check(st->scratch + key->offset, why, sizeof(why)) != 0) {
			why[sizeof(why) - 1] = '\0';
			return fail(st, CM_ERR_INVALID, "%s: %s (%s)", key->name,
				    why[0] ? why : "invalid value", st->src[k]);
		}
	}
	return CM_OK;
}

static void free_strings(const cm_config_key *keys, size_t nkeys, char *base)
{
	for (size_t k = 0; k < nkeys; k++) {
		if (keys[k].type != CM_CFG_STR)
			continue;
		char **p = (char **)(void *)(base + keys[k].offset);
		free(*p);
		*p = NULL;
	}
}

/* Splits argv into recognised flags (flags), the config file path and the
 * remaining arguments (their indexes in pos). Returns 1 for --help. */
static int scan_args(struct cfg_state *st, int argc, char **argv, struct cfg_flag *flags,
		     size_t *nflags, int *pos, int *npos, const char **config,
		     char *config_via, size_t vialen)
{
	char name[CM_CONFIG_NAME_MAX + 1];
	bool positional_only = false;

	for (int i = 1; i < argc && argv[i]; i++) {
		const char *a = argv[i], *flag, *eq, *value;
		size_t len;
		int k;

		if (positional_only || strncmp(a, "--", 2) != 0) {
			if (!positional_only && strcmp(a, "-h") == 0)
				return 1;
			pos[(*npos)++] = i;
			continue;
		}
		if (a[2] == '\0') {
			positional_only = true;
			continue;
		}
		flag = a + 2;
		eq = strchr(flag, '=');
		len = eq ? (size_t)(eq - flag) : strlen(flag);
		if (!eq && strcmp(flag, "help") == 0)
			return 1;
		k = name_match("config", flag, len) ? -2 : find_key(st, flag, len);
		if (k == -1) {
			normalize_name(name, sizeof(name), flag, len);
			return fail(st, CM_ERR_INVALID, "unknown key \"%s\" (flag %.*s)", name,
				    (int)(len + 2), a);
		}
		if (eq)
			value = eq + 1;
		else if (k >= 0 && st->keys[k].type == CM_CFG_BOOL)
			value = "true";
		else if (i + 1 < argc && argv[i + 1])
			value = argv[++i];
		else
			return fail(st, CM_ERR_INVALID, "%s: missing value (flag %.*s)",
				    k >= 0 ? st->keys[k].name : "config", (int)(len + 2), a);
		if (k == -2) {
			*config = value;
			snprintf(config_via, vialen, "flag %.*s", (int)(len + 2), a);
			continue;
		}
		flags[*nflags].key = (size_t)k;
		flags[*nflags].value = value;
		flags[*nflags].as_written = a;
		flags[*nflags].as_written_len = (int)(len + 2);
		(*nflags)++;
	}
	return CM_OK;
}

static size_t scratch_size(const cm_config_key *keys, size_t nkeys)
{
	size_t n = 1;
	for (size_t k = 0; k < nkeys; k++) {
		size_t end = keys[k].offset + field_size(keys[k].type);
		if (end > n)
			n = end;
	}
	return n;
}

/* On success the caller owns the strings copied into cfg (release them with
 * cm_config_free) and argv holds argv[0], then the arguments that were not
 * flags, then NULL; on failure or --help cfg and argv are left untouched. */
int cm_config_load(const cm_config_key *keys, size_t nkeys, void *cfg,
		   const char *env_prefix, int argc, char **argv,
		   char *err, size_t errlen)
{
	struct cfg_state st = {.keys = keys, .nkeys = nkeys, .err = err, .errlen = errlen};
	struct cfg_flag *flags = NULL;
	int *pos = NULL, npos = 0, rc;
	size_t nflags = 0;
	const char *config = NULL;
	char config_via[CFG_SRC_MAX], src[CFG_SRC_MAX];

	if (err && errlen)
		err[0] = '\0';
	if (!cfg || (nkeys && !keys) || argc < 0 || (argc > 0 && !argv))
		return fail(&st, CM_ERR_INVALID, "config: invalid arguments");
	if ((rc = check_table(&st)) != CM_OK)
		return rc;

	st.scratch = calloc(1, scratch_size(keys, nkeys));
	st.src = calloc(nkeys ? nkeys : 1, sizeof(*st.src));
	st.file_line = calloc(nkeys ? nkeys : 1, sizeof(*st.file_line));
	flags = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*flags));
	pos = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*pos));
	if (!st.scratch || !st.src || !st.file_line || !flags || !pos) {
		rc = fail(&st, CM_ERR_NOMEM, "config: out of memory");
		goto out;
	}

	rc = scan_args(&st, argc, argv, flags, &nflags, pos, &npos, &config, config_via,
		       sizeof(config_via));
	if (rc == 1) {
		cm_config_usage(stdout, argc > 0 ? argv[0] : NULL, keys, nkeys, env_prefix);
		fflush(stdout);
		goto out;
	}
	if (rc != CM_OK)
		goto out;
	if ((rc = load_defaults(&st)) != CM_OK)
		goto out;
	if (config && (rc = load_file(&st, config, config_via)) != CM_OK)
		goto out;
	if ((rc = load_env(&st, env_prefix)) != CM_OK)
		goto out;
	for (size_t i = 0; i < nflags; i++) {
		snprintf(src, sizeof(src), "flag %.*s", flags[i].as_written_len, flags[i].as_written);
		if ((rc = set_value(&st, flags[i].key, flags[i].value, src)) != CM_OK)
			goto out;
	}
	if ((rc = run_checks(&st)) != CM_OK)
		goto out;

	/* success: move the values to the caller and drop the consumed flags */
	for (size_t k = 0; k < nkeys; k++)
		memcpy((char *)cfg + keys[k].offset, st.scratch + keys[k].offset,
		       field_size(keys[k].type));
	if (argc > 0) {
		for (int j = 0; j < npos; j++)
			argv[1 + j] = argv[pos[j]];
		argv[1 + npos] = NULL;
	}
	free(st.scratch);
	st.scratch = NULL;
out:
	if (st.scratch)
		free_strings(keys, nkeys, st.scratch);
	free(st.scratch);
	free(st.src);
	free(st.file_line);
	free(flags);
	free(pos);
	return rc;
}

/* Frees every string field of cfg and sets it to NULL, so a second call is
 * harmless. */
void cm_config_free(const cm_config_key *keys, size_t nkeys, void *cfg)
{
	if (!keys || !cfg)
		return;
	free_strings(keys, nkeys, cfg);
}

static void print_default(FILE *out, const cm_config_key *key)
{
	if (key->type == CM_CFG_STR)
		fprintf(out, "\"%s\"", key->def ? key->def : "");
	else if (key->type == CM_CFG_BOOL && !key->def)
		fputs("false", out);
	else
		fputs(key->def ? key->def : "0", out);
}

void cm_config_usage(FILE *out, const char *prog, const cm_config_key *keys,
		     size_t nkeys, const char *env_prefix)
{
	char lo[CFG_NUM_MAX], hi[CFG_NUM_MAX];

	fprintf(out, "usage: %s [--config PATH] [--key=value ...]\n\n", prog ? prog : "muri");
	fprintf(out, "Settings come from, in rising priority: defaults, the config file\n"
		     "(\"key = value\" lines), %s%s and flags.\n\n",
		env_prefix && *env_prefix ? env_prefix : "",
		env_prefix && *env_prefix ? "KEY environment variables" : "no environment");
	fprintf(out, "  --config PATH\n\tread settings from PATH\n");
	for (size_t k = 0; k < nkeys; k++) {
		const cm_config_key *key = &keys[k];
		fputs("  --", out);
		for (const char *p = key->name; *p; p++)
			fputc(*p == '_' ? '-' : *p, out);
		if (key->type == CM_CFG_BOOL)
			fputs("[=BOOL]", out);
		else
			fprintf(out, " %s", type_word(key->type));
		fprintf(out, "\n\t%s (default ", key->help ? key->help : "");
		print_default(out, key);
		if (has_bounds(key) && key->type != CM_CFG_STR && key->type != CM_CFG_BOOL) {
			format_bound(lo, sizeof(lo), key->type, key->min);
			format_bound(hi, sizeof(hi), key->type, key->max);
			fprintf(out, ", range %s..%s", lo, hi);
		}
		if (env_prefix && *env_prefix) {
			fprintf(out, ", env %s", env_prefix);
			for (const char *p = key->name; *p; p++)
				fputc(toupper((unsigned char)*p), out);
		}
		fputs(")\n", out);
	}
	fprintf(out, "  --help\n\tprint this help and exit\n");
}
