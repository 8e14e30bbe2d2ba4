/* A small JSON reader (what a person types, a .jsonl line) and the
 * Metadata and Value messages built from it. */
#ifndef CM_JSON_H
#define CM_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "types.pb-c.h"

enum cm_json_type { CM_JSON_NULL, CM_JSON_BOOL, CM_JSON_NUM, CM_JSON_STR, CM_JSON_ARR, CM_JSON_OBJ };

typedef struct cm_json {
	int type;
	double num;
	int is_int;           /* a number written without fraction or exponent */
	int64_t ival;
	char *str;            /* CM_JSON_STR; also the key of an object member */
	char *key;
	struct cm_json *child, *next;
	size_t n;             /* members */
} cm_json;

/* Parses text (NUL-terminated); NULL with a message in err on bad input. */
cm_json *cm_json_parse(const char *text, char *err, size_t errlen);
void cm_json_free(cm_json *j);
const cm_json *cm_json_get(const cm_json *obj, const char *key);
/* Writes s as a JSON string literal. */
void cm_json_str(FILE *f, const char *s);

/* A JSON array of numbers into *out (malloc'd floats). */
int cm_json_floats(const cm_json *j, float **out, size_t *n, char *err, size_t errlen);
/* A JSON object into a Metadata message (heap; free with cm_json_metadata_free). */
Muri__V1__Metadata *cm_json_metadata(const cm_json *j, char *err, size_t errlen);
void cm_json_metadata_free(Muri__V1__Metadata *m);
/* One JSON string, number or boolean into v (a string is strdup'ed: free
 * with cm_json_value_clear); -1 for anything else. */
int cm_json_value(const cm_json *j, Muri__V1__Value *v);
void cm_json_value_clear(Muri__V1__Value *v);
#endif
