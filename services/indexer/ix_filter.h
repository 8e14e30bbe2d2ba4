/* Metadata filters (muri.v1.Filter: per field equality, $in, and numeric
 * ranges; fields ANDed) and the SQLite tables that index metadata for them:
 * meta_num (numbers and ints) and meta_tag (strings and bools), each row
 * (key, value, seq of the record version that carries it). */
#ifndef IX_FILTER_H
#define IX_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#include "cm_arena.h"
#include "ix_record.h"
#include "types.pb-c.h"

#define IX_FILTER_MAX_CONDITIONS 16
#define IX_FILTER_MAX_IN 1024

/* What one field must satisfy; every part present must hold. Numbers and
 * ints compare numerically with each other (5 equals 5.0); strings and bools
 * only equal their own type; ranges match numbers and ints only. */
typedef struct ix_cond {
	const char *key;
	int has_eq;
	ix_value eq;
	uint32_t nin; /* 0: no $in part */
	ix_value *in;
	int has_gt, has_gte, has_lt, has_lte;
	double gt, gte, lt, lte;
} ix_cond;

typedef struct ix_filter {
	uint32_t n; /* 0: no filter */
	ix_cond *conds;
} ix_filter;

/* Validates and converts a Filter (NULL or empty: no filter) into arrays
 * allocated in a; strings are borrowed from pb. Checks at most 16
 * conditions, keys of 1..128 bytes, at least one part per condition, $in of
 * at most 1024 values, finite bounds; errors name the field, as in
 * filter.conditions["year"].in[3]. */
int ix_filter_from_pb(const Muri__V1__Filter *pb, cm_arena *a, ix_filter *out, char *err, size_t errlen);

/* 1 if a record's metadata satisfies the filter (the same rules as the
 * tables; for checks and tests). */
int ix_filter_match(const ix_filter *f, const ix_field *fields, uint32_t nfields);

/* Creates the metadata tables if missing. */
int ix_meta_schema(sqlite3 *db, char *err, size_t errlen);

/* Prepared statements of one connection for writing the tables. */
typedef struct ix_meta_stmts {
	sqlite3_stmt *ins_num, *ins_tag, *del_num, *del_tag;
} ix_meta_stmts;

int ix_meta_prepare(sqlite3 *db, ix_meta_stmts *st);
/* Accepts a zeroed or partly prepared set. */
void ix_meta_finalize(ix_meta_stmts *st);
/* Indexes the fields of the record version at seq; removes them. CM_ERR_IO
 * on an SQLite failure. */
int ix_meta_insert(ix_meta_stmts *st, uint64_t seq, const ix_field *fields, uint32_t nfields);
int ix_meta_delete(ix_meta_stmts *st, uint64_t seq);

/* The seqs of indexed record versions that satisfy a non-empty filter,
 * sorted and unique, read on db (the caller's transaction, if any). *seqs is
 * a heap array the caller frees (NULL when *n is 0). */
/* Keeps in a (na sorted, unique values) those also in b (nb, sorted);
 * returns how many. */
size_t ix_seqs_intersect(uint64_t *a, size_t na, const uint64_t *b, size_t nb);

int ix_filter_seqs(sqlite3 *db, const ix_filter *f, uint64_t **seqs, size_t *n, char *err, size_t errlen);

#endif
