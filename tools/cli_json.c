/* The gateway's Filter messages built from JSON (cm_json.c reads it), and
 * Metadata and Value messages printed back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* One field's condition: a bare value is $eq. */
static int condition(const cm_json *j, Muri__V1__Condition *c, char *err, size_t errlen)
{
	muri__v1__condition__init(c);
	if (j->type != CM_JSON_OBJ) {
		c->eq__case = MURI__V1__CONDITION__EQ__EQ;
		c->eq = calloc(1, sizeof(*c->eq));
		return c->eq && cm_json_value(j, c->eq) == 0 ? 0 : -1;
	}
	for (const cm_json *o = j->child; o; o = o->next) {
		double x = o->num;
		if (!strcmp(o->key, "$eq")) {
			c->eq__case = MURI__V1__CONDITION__EQ__EQ;
			c->eq = calloc(1, sizeof(*c->eq));
			if (!c->eq || cm_json_value(o, c->eq) != 0)
				return -1;
		} else if (!strcmp(o->key, "$in") && o->type == CM_JSON_ARR) {
			c->in = calloc(1, sizeof(*c->in));
			muri__v1__value_list__init(c->in);
			c->in->values = calloc(o->n ? o->n : 1, sizeof(*c->in->values));
			for (const cm_json *v = o->child; v; v = v->next) {
				Muri__V1__Value *vv = calloc(1, sizeof(*vv));
				c->in->values[c->in->n_values++] = vv;
				if (!vv || cm_json_value(v, vv) != 0)
					return -1;
			}
		} else if (o->type == CM_JSON_NUM && !strcmp(o->key, "$gt")) {
			c->gt__case = MURI__V1__CONDITION__GT__GT;
			c->gt = x;
		} else if (o->type == CM_JSON_NUM && !strcmp(o->key, "$gte")) {
			c->gte__case = MURI__V1__CONDITION__GTE__GTE;
			c->gte = x;
		} else if (o->type == CM_JSON_NUM && !strcmp(o->key, "$lt")) {
			c->lt__case = MURI__V1__CONDITION__LT__LT;
			c->lt = x;
		} else if (o->type == CM_JSON_NUM && !strcmp(o->key, "$lte")) {
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
		cm_json_value_clear(c->eq);
		free(c->eq);
	}
	if (c->in) {
		for (size_t i = 0; i < c->in->n_values; i++) {
			cm_json_value_clear(c->in->values[i]);
			free(c->in->values[i]);
		}
		free(c->in->values);
		free(c->in);
	}
}

Muri__V1__Filter *cli_filter(const cm_json *j, char *err, size_t errlen)
{
	if (!j || j->type != CM_JSON_OBJ) {
		snprintf(err, errlen, "filter must be a JSON object");
		return NULL;
	}
	Muri__V1__Filter *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	muri__v1__filter__init(f);
	f->conditions = calloc(j->n ? j->n : 1, sizeof(*f->conditions));
	for (const cm_json *m = j->child; m && f->conditions; m = m->next) {
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
			cm_json_str(f, v->string_value);
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
			cm_json_str(f, m->fields[i]->key);
			fputs(": ", f);
		} else {
			fprintf(f, "%s=", m->fields[i]->key);
		}
		cli_print_value(f, m->fields[i]->value, json);
	}
	fputc('}', f);
}
