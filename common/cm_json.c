/* A small JSON reader for what a person types or a .jsonl line holds
 * (vectors, metadata, filters), and the Metadata and Value messages built
 * from it: the muri command and the gateway's Import share it. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"

#define CM_JSON_DEPTH_MAX 64

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

static cm_json *fail(jp *p, const char *what)
{
	if (p->err && !p->err[0])
		snprintf(p->err, p->errlen, "bad JSON: %s near '%.12s'", what, p->s);
	return NULL;
}

void cm_json_free(cm_json *j)
{
	while (j) {
		cm_json *next = j->next;
		cm_json_free(j->child);
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

static cm_json *value(jp *p)
{
	ws(p);
	if (++p->depth > CM_JSON_DEPTH_MAX)
		return fail(p, "nested too deeply");
	cm_json *j = calloc(1, sizeof(*j));
	if (!j)
		return fail(p, "out of memory");
	char c = *p->s;
	if (c == '{' || c == '[') {
		j->type = c == '{' ? CM_JSON_OBJ : CM_JSON_ARR;
		p->s++;
		ws(p);
		cm_json **tail = &j->child;
		if (*p->s == (c == '{' ? '}' : ']')) {
			p->s++;
			p->depth--;
			return j;
		}
		for (;;) {
			char *key = NULL;
			if (j->type == CM_JSON_OBJ) {
				ws(p);
				if (!(key = parse_string(p))) {
					cm_json_free(j);
					return fail(p, "expected a string key");
				}
				ws(p);
				if (*p->s != ':') {
					free(key);
					cm_json_free(j);
					return fail(p, "expected ':'");
				}
				p->s++;
			}
			cm_json *m = value(p);
			if (!m) {
				free(key);
				cm_json_free(j);
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
			cm_json_free(j);
			return fail(p, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
		}
	} else if (c == '"') {
		j->type = CM_JSON_STR;
		if (!(j->str = parse_string(p))) {
			cm_json_free(j);
			return fail(p, "bad string");
		}
	} else if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
		j->type = CM_JSON_BOOL;
		j->num = *p->s == 't';
		p->s += *p->s == 't' ? 4 : 5;
	} else if (!strncmp(p->s, "null", 4)) {
		j->type = CM_JSON_NULL;
		p->s += 4;
	} else {
		char *end;
		j->type = CM_JSON_NUM;
		j->num = strtod(p->s, &end);
		if (end == p->s) {
			cm_json_free(j);
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

cm_json *cm_json_parse(const char *text, char *err, size_t errlen)
{
	jp p = {.s = text, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	cm_json *j = value(&p);
	if (!j)
		return NULL;
	ws(&p);
	if (*p.s) {
		cm_json_free(j);
		return fail(&p, "text after the value");
	}
	return j;
}

const cm_json *cm_json_get(const cm_json *obj, const char *key)
{
	if (!obj || obj->type != CM_JSON_OBJ)
		return NULL;
	for (const cm_json *m = obj->child; m; m = m->next)
		if (!strcmp(m->key, key))
			return m;
	return NULL;
}

void cm_json_str(FILE *f, const char *s)
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

int cm_json_floats(const cm_json *j, float **out, size_t *n, char *err, size_t errlen)
{
	if (!j || j->type != CM_JSON_ARR || !j->n) {
		snprintf(err, errlen, "a vector must be a non-empty JSON array of numbers");
		return -1;
	}
	float *v = malloc(j->n * sizeof(*v));
	if (!v)
		return -1;
	size_t i = 0;
	for (const cm_json *m = j->child; m; m = m->next, i++) {
		if (m->type != CM_JSON_NUM || !isfinite(m->num)) {
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

int cm_json_value(const cm_json *j, Muri__V1__Value *v)
{
	muri__v1__value__init(v);
	switch (j->type) {
	case CM_JSON_STR:
		v->kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
		v->string_value = strdup(j->str);
		return v->string_value ? 0 : -1;
	case CM_JSON_BOOL:
		v->kind_case = MURI__V1__VALUE__KIND_BOOL_VALUE;
		v->bool_value = j->num != 0;
		return 0;
	case CM_JSON_NUM:
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

Muri__V1__Metadata *cm_json_metadata(const cm_json *j, char *err, size_t errlen)
{
	if (!j || j->type != CM_JSON_OBJ) {
		snprintf(err, errlen, "metadata must be a JSON object");
		return NULL;
	}
	Muri__V1__Metadata *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	muri__v1__metadata__init(m);
	m->fields = calloc(j->n ? j->n : 1, sizeof(*m->fields));
	for (const cm_json *f = j->child; f && m->fields; f = f->next) {
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
		if (cm_json_value(f, v) != 0) {
			snprintf(err, errlen, "metadata field %s: must be a string, number or boolean", f->key);
			cm_json_metadata_free(m);
			return NULL;
		}
	}
	return m;
}

void cm_json_value_clear(Muri__V1__Value *v)
{
	if (v && v->kind_case == MURI__V1__VALUE__KIND_STRING_VALUE)
		free(v->string_value);
}

void cm_json_metadata_free(Muri__V1__Metadata *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_fields; i++) {
		cm_json_value_clear(m->fields[i]->value);
		free(m->fields[i]->value);
		free(m->fields[i]->key);
		free(m->fields[i]);
	}
	free(m->fields);
	free(m);
}

