/* Parsing, validation and canonical formatting of the genesis file of
 * lg_genesis.h. The parser is line-based and strict: a value is either an
 * unsigned decimal, a 64-char hex key, a host:port or a name, separated by
 * single runs of spaces or tabs. */
#include "lg_genesis.h"
#include "lg_state.h"
#include "cm_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 1000000 /* of each kind */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void lg_genesis_free(lg_genesis *g)
{
	if (!g)
		return;
	free(g->replicas);
	free(g->accounts);
	free(g->indexers);
	free(g->gateways);
	free(g->params);
	free(g);
}

/* Grows *arr (of elem-sized entries, *n used) by one zeroed entry. */
static void *grow(void **arr, size_t *n, size_t elem)
{
	uint8_t *na;
	if (*n >= MAX_ENTRIES)
		return NULL;
	/* capacity doubles at powers of two */
	if ((*n & (*n - 1)) == 0) {
		na = realloc(*arr, (*n ? 2 * *n : 1) * elem);
		if (!na)
			return NULL;
		*arr = na;
	}
	na = (uint8_t *)*arr + *n * elem;
	memset(na, 0, elem);
	(*n)++;
	return na;
}

/* Splits s in place into at most max space-separated fields. */
static size_t split(char *s, char **f, size_t max)
{
	size_t n = 0;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		if (n == max)
			return max + 1;
		f[n++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		if (*s)
			*s++ = '\0';
	}
	return n;
}

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s || (s[0] == '0' && s[1]))
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 1;
}

static int parse_i64(const char *s, int64_t *out)
{
	uint64_t v;
	int neg = *s == '-';
	if (!parse_u64(s + neg, &v) || v > (uint64_t)INT64_MAX + (uint64_t)neg)
		return 0;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 1;
}

static int chain_id_valid(const char *s)
{
	size_t n = strlen(s);
	/* the same alphabet as Magu names */
	return n >= 1 && n <= LG_CHAIN_ID_MAX && lg_name_valid(s);
}

static int key_cmp(const void *a, const void *b, size_t off)
{
	return memcmp((const uint8_t *)a + off, (const uint8_t *)b + off, CM_PK_BYTES);
}

/* Parses one "key = value" line into g. */
static int parse_line(lg_genesis *g, char *key, char *val, unsigned line, int *have_chain,
		      int *have_time, char *err, size_t errlen)
{
	char *f[6];
	size_t n = split(val, f, 5);
	uint8_t pk[CM_PK_BYTES];

	if (strcmp(key, "chain_id") == 0) {
		if (*have_chain)
			return fail(err, errlen, CM_ERR_INVALID, "line %u: chain_id given twice", line);
		if (n != 1 || !chain_id_valid(f[0]))
			return fail(err, errlen, CM_ERR_INVALID,
				    "line %u: chain_id must be 1..%d bytes of [A-Za-z0-9_.-]", line, LG_CHAIN_ID_MAX);
		snprintf(g->chain_id, sizeof(g->chain_id), "%s", f[0]);
		*have_chain = 1;
		return CM_OK;
	}
	if (strcmp(key, "genesis_time_ms") == 0) {
		if (*have_time)
			return fail(err, errlen, CM_ERR_INVALID, "line %u: genesis_time_ms given twice", line);
		if (n != 1 || !parse_u64(f[0], &g->genesis_time_ms))
			return fail(err, errlen, CM_ERR_INVALID, "line %u: genesis_time_ms must be an unsigned integer", line);
		*have_time = 1;
		return CM_OK;
	}
	if (strncmp(key, "param.", 6) == 0) {
		const lg_param_def *d = lg_param_find(key + 6);
		lg_genesis_param *p;
		int64_t v;
		if (!d)
			return fail(err, errlen, CM_ERR_INVALID, "line %u: unknown parameter \"%.48s\"", line, key + 6);
		if (n != 1 || !parse_i64(f[0], &v))
			return fail(err, errlen, CM_ERR_INVALID, "line %u: %s must be an integer", line, key);
		if (v < d->min || v > d->max)
			return fail(err, errlen, CM_ERR_INVALID, "line %u: %s = %lld is out of range %lld..%lld",
				    line, key, (long long)v, (long long)d->min, (long long)d->max);
		for (size_t i = 0; i < g->nparams; i++)
			if (strcmp(g->params[i].name, d->name) == 0)
				return fail(err, errlen, CM_ERR_INVALID, "line %u: %s given twice", line, key);
		if (!(p = grow((void **)&g->params, &g->nparams, sizeof(*p))))
			return fail(err, errlen, CM_ERR_NOMEM, "line %u: out of memory", line);
		snprintf(p->name, sizeof(p->name), "%s", d->name);
		p->value = v;
		return CM_OK;
	}
	if (n < 1 || cm_unhex(pk, sizeof(pk), f[0]) != CM_OK)
		return fail(err, errlen, CM_ERR_INVALID,
			    "line %u: %s needs a public key of 64 hex characters first", line, key);
	if (strcmp(key, "replica") == 0) {
		lg_genesis_replica *r;
		if (n != 2 || !lg_address_valid(f[1]))
			return fail(err, errlen, CM_ERR_INVALID, "line %u: replica = <hex pubkey> <host:port>", line);
		if (!(r = grow((void **)&g->replicas, &g->nreplicas, sizeof(*r))))
			return fail(err, errlen, CM_ERR_NOMEM, "line %u: out of memory", line);
		memcpy(r->pk, pk, sizeof(pk));
		snprintf(r->address, sizeof(r->address), "%s", f[1]);
		return CM_OK;
	}
	if (strcmp(key, "account") == 0) {
		lg_genesis_account *a;
		uint64_t bal;
		if (n != 2 || !parse_u64(f[1], &bal))
			return fail(err, errlen, CM_ERR_INVALID, "line %u: account = <hex pubkey> <balance>", line);
		if (!(a = grow((void **)&g->accounts, &g->naccounts, sizeof(*a))))
			return fail(err, errlen, CM_ERR_NOMEM, "line %u: out of memory", line);
		memcpy(a->pk, pk, sizeof(pk));
		a->balance = bal;
		return CM_OK;
	}
	if (strcmp(key, "indexer") == 0) {
		lg_genesis_indexer *x;
		uint64_t cap, stake;
		if (n != 4 || !lg_address_valid(f[1]) || !parse_u64(f[2], &cap) || cap == 0 ||
		    !parse_u64(f[3], &stake))
			return fail(err, errlen, CM_ERR_INVALID,
				    "line %u: indexer = <hex pubkey> <host:port> <capacity bytes > 0> <stake>", line);
		if (!(x = grow((void **)&g->indexers, &g->nindexers, sizeof(*x))))
			return fail(err, errlen, CM_ERR_NOMEM, "line %u: out of memory", line);
		memcpy(x->pk, pk, sizeof(pk));
		snprintf(x->address, sizeof(x->address), "%s", f[1]);
		x->capacity = cap;
		x->stake = stake;
		return CM_OK;
	}
	if (strcmp(key, "gateway") == 0) {
		uint8_t(*gw)[CM_PK_BYTES];
		if (n != 1)
			return fail(err, errlen, CM_ERR_INVALID, "line %u: gateway = <hex pubkey>", line);
		if (!(gw = grow((void **)&g->gateways, &g->ngateways, CM_PK_BYTES)))
			return fail(err, errlen, CM_ERR_NOMEM, "line %u: out of memory", line);
		memcpy(*gw, pk, sizeof(pk));
		return CM_OK;
	}
	return fail(err, errlen, CM_ERR_INVALID, "line %u: unknown key \"%.48s\"", line, key);
}

/* Line numbers of entries, to name the second of two duplicates. */
typedef struct seen {
	uint8_t pk[CM_PK_BYTES];
	unsigned line;
	char kind; /* 'r' replica, 'a' account, 'i' indexer, 'g' gateway */
} seen;

static int seen_cmp(const void *a, const void *b)
{
	const seen *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	int c = key_cmp(x, y, offsetof(seen, pk));
	if (c)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

static const char *kind_name(char k)
{
	return k == 'r' ? "replica" : k == 'a' ? "account" : k == 'i' ? "indexer" : "gateway";
}

int lg_genesis_parse(const char *text, size_t len, lg_genesis **out, char *err, size_t errlen)
{
	lg_genesis *g;
	char buf[LG_GENESIS_LINE_MAX + 2];
	seen *sn = NULL;
	size_t nseen = 0;
	unsigned line = 0;
	int have_chain = 0, have_time = 0, rc = CM_OK;
	uint64_t supply = 0;

	if (len > LG_GENESIS_MAX_BYTES)
		return fail(err, errlen, CM_ERR_TOOBIG, "genesis: %zu bytes, at most %u", len, LG_GENESIS_MAX_BYTES);
	if (!(g = calloc(1, sizeof(*g))))
		return fail(err, errlen, CM_ERR_NOMEM, "genesis: out of memory");
	for (size_t pos = 0; pos < len && rc == CM_OK;) {
		size_t end = pos, n;
		char *key, *val, *eq, *hash, *p;
		while (end < len && text[end] != '\n')
			end++;
		line++;
		n = end - pos;
		if (n > LG_GENESIS_LINE_MAX) {
			rc = fail(err, errlen, CM_ERR_INVALID, "line %u: longer than %d bytes", line, LG_GENESIS_LINE_MAX);
			break;
		}
		memcpy(buf, text + pos, n);
		buf[n] = '\0';
		pos = end + 1;
		if (memchr(buf, '\0', n)) {
			rc = fail(err, errlen, CM_ERR_INVALID, "line %u: contains a NUL byte", line);
			break;
		}
		if (n && buf[n - 1] == '\r')
			buf[--n] = '\0';
		if ((hash = strchr(buf, '#')))
			*hash = '\0';
		for (p = buf; *p == ' ' || *p == '\t'; p++)
			;
		if (!*p)
			continue;
		if (!(eq = strchr(p, '='))) {
			rc = fail(err, errlen, CM_ERR_INVALID, "line %u: expected key = value", line);
			break;
		}
		*eq = '\0';
		key = p;
		val = eq + 1;
		for (char *e = eq - 1; e >= key && (*e == ' ' || *e == '\t'); e--)
			*e = '\0';
		if (!*key) {
			rc = fail(err, errlen, CM_ERR_INVALID, "line %u: missing key before '='", line);
			break;
		}
		size_t before[4] = {g->nreplicas, g->naccounts, g->nindexers, g->ngateways};
		rc = parse_line(g, key, val, line, &have_chain, &have_time, err, errlen);
		if (rc != CM_OK)
			break;
		/* remember which line each keyed entry came from */
		const uint8_t *added = NULL;
		char kind = 0;
		if (g->nreplicas != before[0])
			added = g->replicas[g->nreplicas - 1].pk, kind = 'r';
		else if (g->naccounts != before[1])
			added = g->accounts[g->naccounts - 1].pk, kind = 'a';
		else if (g->nindexers != before[2])
			added = g->indexers[g->nindexers - 1].pk, kind = 'i';
		else if (g->ngateways != before[3])
			added = g->gateways[g->ngateways - 1], kind = 'g';
		if (added) {
			seen *e = grow((void **)&sn, &nseen, sizeof(*sn));
			if (!e) {
				rc = fail(err, errlen, CM_ERR_NOMEM, "line %u: out of memory", line);
				break;
			}
			memcpy(e->pk, added, CM_PK_BYTES);
			e->line = line;
			e->kind = kind;
		}
	}
	if (rc == CM_OK && !have_chain)
		rc = fail(err, errlen, CM_ERR_INVALID, "genesis: chain_id is missing");
	if (rc == CM_OK && g->nreplicas == 0)
		rc = fail(err, errlen, CM_ERR_INVALID, "genesis: no replica line: the ledger needs at least one replica");
	if (rc == CM_OK && nseen > 1) {
		qsort(sn, nseen, sizeof(*sn), seen_cmp);
		for (size_t i = 1; i < nseen; i++)
			if (sn[i].kind == sn[i - 1].kind && memcmp(sn[i].pk, sn[i - 1].pk, CM_PK_BYTES) == 0) {
				unsigned a = sn[i - 1].line, b = sn[i].line;
				rc = fail(err, errlen, CM_ERR_INVALID, "line %u: %s listed twice (first on line %u)",
					  a > b ? a : b, kind_name(sn[i].kind), a < b ? a : b);
				break;
			}
	}
	for (size_t i = 0; rc == CM_OK && i < g->naccounts + g->nindexers; i++) {
		uint64_t v = i < g->naccounts ? g->accounts[i].balance : g->indexers[i - g->naccounts].stake;
		if (v > (uint64_t)INT64_MAX - supply)
			rc = fail(err, errlen, CM_ERR_INVALID, "genesis: total supply exceeds 2^63 - 1");
		else
			supply += v;
	}
	free(sn);
	if (rc != CM_OK) {
		lg_genesis_free(g);
		return rc;
	}
	*out = g;
	return CM_OK;
}

int lg_genesis_load(const char *path, lg_genesis **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	int rc;

	if (!f)
		return fail(err, errlen, errno == ENOENT ? CM_ERR_NOTFOUND : CM_ERR_IO, "%s: %s", path,
			    strerror(errno));
	buf = malloc(LG_GENESIS_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		return fail(err, errlen, CM_ERR_NOMEM, "%s: out of memory", path);
	}
	n = fread(buf, 1, LG_GENESIS_MAX_BYTES + 1, f);
	if (ferror(f)) {
		rc = fail(err, errlen, CM_ERR_IO, "%s: read error", path);
	} else {
		char sub[LG_MSG_MAX];
		rc = lg_genesis_parse(buf, n, out, sub, sizeof(sub));
		if (rc != CM_OK)
			fail(err, errlen, rc, "%s: %s", path, sub);
	}
	free(buf);
	fclose(f);
	return rc;
}

/* ---- canonical form ---- */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = 2 * b->cap + (size_t)n + 1;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

static int account_cmp(const void *a, const void *b) { return key_cmp(a, b, 0); }
static int indexer_cmp(const void *a, const void *b) { return key_cmp(a, b, 0); }
static int gateway_cmp(const void *a, const void *b) { return key_cmp(a, b, 0); }
static int param_cmp(const void *a, const void *b)
{
	return strcmp(((const lg_genesis_param *)a)->name, ((const lg_genesis_param *)b)->name);
}

/* Sorted copies of n entries, or NULL (with n == 0 nothing to sort). */
static void *sorted(const void *arr, size_t n, size_t elem, int (*cmp)(const void *, const void *))
{
	void *c = malloc(n ? n * elem : 1);
	if (!c)
		return NULL;
	if (n) {
		memcpy(c, arr, n * elem);
		qsort(c, n, elem, cmp);
	}
	return c;
}

int lg_genesis_format(const lg_genesis *g, char **out)
{
	sbuf b = {malloc(4096), 0, 4096, 0};
	char hex[2 * CM_PK_BYTES + 1];
	lg_genesis_account *acc = sorted(g->accounts, g->naccounts, sizeof(*acc), account_cmp);
	lg_genesis_indexer *ix = sorted(g->indexers, g->nindexers, sizeof(*ix), indexer_cmp);
	uint8_t(*gw)[CM_PK_BYTES] = sorted(g->gateways, g->ngateways, CM_PK_BYTES, gateway_cmp);
	lg_genesis_param *pa = sorted(g->params, g->nparams, sizeof(*pa), param_cmp);

	if (!b.p || !acc || !ix || !gw || !pa)
		b.oom = 1;
	else
		b.p[0] = '\0';
	sb_printf(&b, "chain_id = %s\ngenesis_time_ms = %llu\n", g->chain_id,
		  (unsigned long long)g->genesis_time_ms);
	for (size_t i = 0; i < g->nreplicas && !b.oom; i++) {
		cm_hex(hex, g->replicas[i].pk, CM_PK_BYTES);
		sb_printf(&b, "replica = %s %s\n", hex, g->replicas[i].address);
	}
	for (size_t i = 0; i < g->naccounts && !b.oom; i++) {
		cm_hex(hex, acc[i].pk, CM_PK_BYTES);
		sb_printf(&b, "account = %s %llu\n", hex, (unsigned long long)acc[i].balance);
	}
	for (size_t i = 0; i < g->nindexers && !b.oom; i++) {
		cm_hex(hex, ix[i].pk, CM_PK_BYTES);
		sb_printf(&b, "indexer = %s %s %llu %llu\n", hex, ix[i].address,
			  (unsigned long long)ix[i].capacity, (unsigned long long)ix[i].stake);
	}
	for (size_t i = 0; i < g->ngateways && !b.oom; i++) {
		cm_hex(hex, gw[i], CM_PK_BYTES);
		sb_printf(&b, "gateway = %s\n", hex);
	}
	for (size_t i = 0; i < g->nparams && !b.oom; i++)
		sb_printf(&b, "param.%s = %lld\n", pa[i].name, (long long)pa[i].value);
	free(acc);
	free(ix);
	free(gw);
	free(pa);
	if (b.oom) {
		free(b.p);
		return CM_ERR_NOMEM;
	}
	*out = b.p;
	return CM_OK;
}

int lg_genesis_digest(const lg_genesis *g, uint8_t out[CM_HASH_BYTES])
{
	char *text;
	int rc = lg_genesis_format(g, &text);
	if (rc != CM_OK)
		return rc;
	cm_hash(out, CM_DOM_STATE, text, strlen(text));
	free(text);
	return CM_OK;
}
