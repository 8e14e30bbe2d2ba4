/* A small JSON reader for what a person types or a .jsonl line holds
 * (vectors, metadata, filters), and the gateway's Metadata, Value and Filter
 * messages built from it and printed back. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CJ_DEPTH_MAX 64

typedef struct jp {
	const char *s;
	char *err;
	size_t errlen;
	int depth;
} jp;

static void ws(jp *p)
{
	while (*p->s && isspace((unsigned char)*p->s))
		p->s++;
}

static cli_json *fail(jp *p, const char *what)
{
	if (p->err && !p->err[0])
		snprintf(p->err, p->errlen, "bad JSON: %s near '%.12s'", what, p->s);
	return NULL;
}

void cli_json_free(cli_json *j)
{
	while (j) {
		cli_json *next = j->next;
		cli_json_free(j->child);
		free(j->str);
		free(j->key);
		free(j);
		j = next;
	}
}

static char *parse_string(jp *p)
{
	if (*p->s != '"')
		return NULL;
	p->s++;
	size_t cap = 16, n = 0;
	char *out = malloc(cap);
	while (out && *p->s && *p->s != '"') {
		if (n + 8 > cap) {
			char *o2 = realloc(out, cap *= 2);
			if (!o2) {
				free(out);
				return NULL;
			}
			out = o2;
		}
		char ch = *p->s++;
		if ((unsigned char)ch < 0x20) {
			free(out);
			return NULL;
		}
		if (ch != '\\') {
			out[n++] = ch;
			continue;
		}
		ch = *p->s++;
		switch (ch) {
		case 'n': out[n++] = '\n'; break;
		case 't': out[n++] = '\t'; break;
		case 'r': out[n++] = '\r'; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case '"': case '\\': case '/': out[n++] = ch; break;
		case 'u': {
			unsigned cp = 0;
			for (int i = 0; i < 4; i++) {
				char h = *p->s++;
				if (!isxdigit((unsigned char)h)) {
					free(out);
					return NULL;
				}
				cp = cp * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
			}
			if (cp < 0x80) {
				out[n++] = (char)cp;
			} else if (cp < 0x800) {
				out[n++] = (char)(0xc0 | (cp >> 6));
				out[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				out[n++] = (char)(0xe0 | (cp >> 12));
				out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[n++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			free(out);
			return NULL;
		}
	}
	if (!out || *p->s != '"') {
		free(out);
		return NULL;
	}
	p->s++;
	out[n] = '\0';
	return out;
}

static cli_json *value(jp *p)
{
	ws(p);
	if (++p->depth > CJ_DEPTH_MAX)
		return fail(p, "nested too deeply");
	cli_json *j = calloc(1, sizeof(*j));
	if (!j)
		return fail(p, "out of memory");
	char c = *p->s;
	if (c == '{' || c == '[') {
		j->type = c == '{' ? CJ_OBJ : CJ_ARR;
		p->s++;
		ws(p);
		cli_json **tail = &j->child;
		if (*p->s == (c == '{' ? '}' : ']')) {
			p->s++;
			p->depth--;
			return j;
		}
		for (;;) {
			char *key = NULL;
			if (j->type == CJ_OBJ) {
				ws(p);
				if (!(key = parse_string(p))) {
					cli_json_free(j);
					return fail(p, "expected a string key");
				}
				ws(p);
				if (*p->s != ':') {
					free(key);
					cli_json_free(j);
					return fail(p, "expected ':'");
				}
				p->s++;
			}
			cli_json *m = value(p);
			if (!m) {
				free(key);
				cli_json_free(j);
				return NULL;
			}
			m->key = key;
			*tail = m;
			tail = &m->next;
			j->n++;
			ws(p);
			if (*p->s == ',') {
				p->s++;
				continue;
			}
			if (*p->s == (c == '{' ? '}' : ']')) {
				p->s++;
				break;
			}
			cli_json_free(j);
			return fail(p, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
		}
	} else if (c == '"') {
		j->type = CJ_STR;
		if (!(j->str = parse_string(p))) {
			cli_json_free(j);
			return fail(p, "bad string");
		}
	} else if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
		j->type = CJ_BOOL;
		j->num = *p->s == 't';
		p->s += *p->s == 't' ? 4 : 5;
	} else if (!strncmp(p->s, "null", 4)) {
		j->type = CJ_NULL;
		p->s += 4;
	} else {
		char *end;
		j->type = CJ_NUM;
		j->num = strtod(p->s, &end);
		if (end == p->s) {
			cli_json_free(j);
			return fail(p, "expected a value");
		}
		j->is_int = !memchr(p->s, '.', (size_t)(end - p->s)) && !memchr(p->s, 'e', (size_t)(end - p->s)) &&
			    !memchr(p->s, 'E', (size_t)(end - p->s)) && fabs(j->num) < 9e18;
		if (j->is_int)
			j->ival = strtoll(p->s, NULL, 10);
		p->s = end;
	}
	p->depth--;
	return j;
}

cli_json *cli_json_parse(const char *text, char *err, size_t errlen)
{
	jp p = {.s = text, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	cli_json *j = value(&p);
	if (!j)
		return NULL;
	ws(&p);
	if (*p.s) {
		cli_json_free(j);
		return fail(&p, "text after the value");
	}
	return j;
}

const cli_json *cli_json_get(const cli_json *obj, const char *key)
{
	if (!obj || obj->type != CJ_OBJ)
		return NULL;
	for (const cli_json *m = obj->child; m; m = m->next)
		if (!strcmp(m->key, key))
			return m;
	return NULL;
}

void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

int cli_json_floats(const cli_json *j, float **out, size_t *n, char *err, size_t errlen)
{
	if (!j || j->type != CJ_ARR || !j->n) {
		snprintf(err, errlen, "a vector must be a non-empty JSON array of numbers");
		return -1;
	}
	float *v = malloc(j->n * sizeof(*v));
	if (!v)
		return -1;
	size_t i = 0;
	for (const cli_json *m = j->child; m; m = m->next, i++) {
		if (m->type != CJ_NUM || !isfinite(m->num)) {
			free(v);
			snprintf(err, errlen, "vector element %zu is not a finite number", i);
			return -1;
		}
		v[i] = (float)m->num;
	}
	*out = v;
	*n = j->n;
	return 0;
}

static int to_value(const cli_json *j, Muri__V1__Value *v)
{
	muri__v1__value__init(v);
	switch (j->type) {
	case CJ_STR:
		v->kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
		v->string_value = strdup(j->str);
		return v->string_value ? 0 : -1;
	case CJ_BOOL:
		v->kind_case = MURI__V1__VALUE__KIND_BOOL_VALUE;
		v->bool_value = j->num != 0;
		return 0;
	case CJ_NUM:
		if (j->is_int) {
			v->kind_case = MURI__V1__VALUE__KIND_INT_VALUE;
			v->int_value = j->ival;
		} else {
			v->kind_case = MURI__V1__VALUE__KIND_NUMBER_VALUE;
			v->number_value = j->num;
		}
		return 0;
	default:
		return -1;
	}
}

Muri__V1__Metadata *cli_metadata(const cli_json *j, char *err, size_t errlen)
{
	if (!j || j->type != CJ_OBJ) {
		snprintf(err, errlen, "metadata must be a JSON object");
		return NULL;
	}
	Muri__V1__Metadata *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	muri__v1__metadata__init(m);
	m->fields = calloc(j->n ? j->n : 1, sizeof(*m->fields));
	for (const cli_json *f = j->child; f && m->fields; f = f->next) {
		Muri__V1__Metadata__FieldsEntry *e = calloc(1, sizeof(*e));
		Muri__V1__Value *v = calloc(1, sizeof(*v));
		if (!e || !v) {
			free(e);
			free(v);
			break;
		}
		muri__v1__metadata__fields_entry__init(e);
		e->key = strdup(f->key);
		e->value = v;
		m->fields[m->n_fields++] = e;
		if (to_value(f, v) != 0) {
			snprintf(err, errlen, "metadata field %s: must be a string, number or boolean", f->key);
			cli_metadata_free(m);
			return NULL;
		}
	}
	return m;
}

static void value_clear(Muri__V1__Value *v)
{
	if (v && v->kind_case == MURI__V1__VALUE__KIND_STRING_VALUE)
		free(v->string_value);
}

void cli_metadata_free(Muri__V1__Metadata *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_fields; i++) {
		value_clear(m->fields[i]->value);
		free(m->fields[i]->value);
		free(m->fields[i]->key);
		free(m->fields[i]);
	}
	free(m->fields);
	free(m);
}

/* One field's condition: a bare value is $eq. */
static int condition(const cli_json *j, Muri__V1__Condition *c, char *err, size_t errlen)
{
	muri__v1__condition__init(c);
	if (j->type != CJ_OBJ) {
		c->eq__case = MURI__V1__CONDITION__EQ__EQ;
		c->eq = calloc(1, sizeof(*c->eq));
		return c->eq && to_value(j, c->eq) == 0 ? 0 : -1;
	}
	for (const cli_json *o = j->child; o; o = o->next) {
		double x = o->num;
		if (!strcmp(o->key, "$eq")) {
			c->eq__case = MURI__V1__CONDITION__EQ__EQ;
			c->eq = calloc(1, sizeof(*c->eq));
			if (!c->eq || to_value(o, c->eq) != 0)
				return -1;
		} else if (!strcmp(o->key, "$in") && o->type == CJ_ARR) {
			c->in = calloc(1, sizeof(*c->in));
			muri__v1__value_list__init(c->in);
			c->in->values = calloc(o->n ? o->n : 1, sizeof(*c->in->values));
			for (const cli_json *v = o->child; v; v = v->next) {
				Muri__V1__Value *vv = calloc(1, sizeof(*vv));
				c->in->values[c->in->n_values++] = vv;
				if (!vv || to_value(v, vv) != 0)
					return -1;
			}
		} else if (o->type == CJ_NUM && !strcmp(o->key, "$gt")) {
			c->gt__case = MURI__V1__CONDITION__GT__GT;
			c->gt = x;
		} else if (o->type == CJ_NUM && !strcmp(o->key, "$gte")) {
			c->gte__case = MURI__V1__CONDITION__GTE__GTE;
			c->gte = x;
		} else if (o->type == CJ_NUM && !strcmp(o->key, "$lt")) {
			c->lt__case = MURI__V1__CONDITION__LT__LT;
			c->lt = x;
		} else if (o->type == CJ_NUM && !strcmp(o->key, "$lte")) {
			c->lte__case = MURI__V1__CONDITION__LTE__LTE;
			c->lte = x;
		} else {
			snprintf(err, errlen, "filter: unknown or malformed operator %s (use $eq, $in, $gt, $gte, $lt, $lte)",
				 o->key);
			return -1;
		}
	}
	return 0;
}

static void condition_clear(Muri__V1__Condition *c)
{
	if (c->eq) {
		value_clear(c->eq);
		free(c->eq);
	}
	if (c->in) {
		for (size_t i = 0; i < c->in->n_values; i++) {
			value_clear(c->in->values[i]);
			free(c->in->values[i]);
		}
		free(c->in->values);
		free(c->in);
	}
}

Muri__V1__Filter *cli_filter(const cli_json *j, char *err, size_t errlen)
{
	if (!j || j->type != CJ_OBJ) {
		snprintf(err, errlen, "filter must be a JSON object");
		return NULL;
	}
	Muri__V1__Filter *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	muri__v1__filter__init(f);
	f->conditions = calloc(j->n ? j->n : 1, sizeof(*f->conditions));
	for (const cli_json *m = j->child; m && f->conditions; m = m->next) {
		Muri__V1__Filter__ConditionsEntry *e = calloc(1, sizeof(*e));
		Muri__V1__Condition *c = calloc(1, sizeof(*c));
		if (!e || !c) {
			free(e);
			free(c);
			break;
		}
		muri__v1__filter__conditions_entry__init(e);
		e->key = strdup(m->key);
		e->value = c;
		f->conditions[f->n_conditions++] = e;
		err[0] = '\0';
		if (condition(m, c, err, errlen) != 0) {
			if (!err[0])
				snprintf(err, errlen, "filter field %s: values must be strings, numbers or booleans", m->key);
			cli_filter_free(f);
			return NULL;
		}
	}
	return f;
}

void cli_filter_free(Muri__V1__Filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_conditions; i++) {
		condition_clear(f->conditions[i]->value);
		free(f->conditions[i]->value);
		free(f->conditions[i]->key);
		free(f->conditions[i]);
	}
	free(f->conditions);
	free(f);
}

void cli_print_value(FILE *f, const Muri__V1__Value *v, int json)
{
	switch (v ? v->kind_case : 0) {
	case MURI__V1__VALUE__KIND_STRING_VALUE:
		if (json)
			cli_json_str(f, v->string_value);
		else
			fputs(v->string_value, f);
		break;
	case MURI__V1__VALUE__KIND_NUMBER_VALUE:
		fprintf(f, "%.17g", v->number_value);
		break;
	case MURI__V1__VALUE__KIND_BOOL_VALUE:
		fputs(v->bool_value ? "true" : "false", f);
		break;
	case MURI__V1__VALUE__KIND_INT_VALUE:
		fprintf(f, "%lld", (long long)v->int_value);
		break;
	default:
		fputs("null", f);
	}
}

void cli_print_metadata(FILE *f, const Muri__V1__Metadata *m, int json)
{
	fputc('{', f);
	for (size_t i = 0; m && i < m->n_fields; i++) {
		if (i)
			fputs(json ? ", " : " ", f);
		if (json) {
			cli_json_str(f, m->fields[i]->key);
			fputs(": ", f);
		} else {
			fprintf(f, "%s=", m->fields[i]->key);
		}
		cli_print_value(f, m->fields[i]->value, json);
	}
	fputc('}', f);
}
