/* Private to the postings' two files, ix_postings.c (the structure and its
 * maintenance) and ix_postings_eval.c (evaluating filters on it, as a set
 * or compiled into a per-seq test). See ix_postings.h. */
#ifndef IX_POSTINGS_INT_H
#define IX_POSTINGS_INT_H

#include "ix_postings.h"

/* Canonical value types: a number that is integral and fits int64 is an
 * int, so numerically equal numbers (5 and 5.0) share one posting. */
enum { PV_INT = 0, PV_DBL = 1, PV_STR = 2, PV_BOOL = 3 };

typedef struct pval {
	int type;
	int64_t i; /* PV_INT, PV_BOOL */
	double d;  /* PV_DBL */
	const char *s;
	uint32_t len;
} pval;

typedef struct posting {
	uint32_t field;
	pval v; /* s owned for PV_STR */
	uint64_t hash;
	uint64_t *seq;
	size_t n, cap;
	size_t live; /* of the n, versions not superseded or deleted (by ix_postings_kill) */
} posting;

typedef struct pfield {
	char *name;
	uint32_t len;
	uint64_t hash;
	uint32_t *num; /* numeric postings in value order */
	size_t nnum, capnum;
	uint32_t *col; /* col[seq]: the posting of seq's value + 1, 0 if none */
	size_t ncol;   /* seqs col has room for */
	size_t live; /* live entries of the field's postings */
} pfield;

struct ix_postings {
	size_t max_bytes, bytes;
	int enabled;
	posting *p;
	size_t np, capp;
	uint32_t *tab; /* open addressing: posting index + 1, 0 empty */
	size_t tabcap;
	pfield *fl;
	size_t nfl, capfl;
	uint32_t *ftab; /* field index + 1 */
	size_t ftabcap;
	size_t entries, stale;
	uint64_t disabled, compactions;
	int capped; /* the last failed grow hit the cap */
};

/* The seed of field-name hashes. */
#define IXP_FIELD_SALT 0x6669656c64ULL

uint64_t ixp_hash_bytes(const void *b, size_t n, uint64_t h);
/* A value in canonical form (numerically equal numbers alike). */
void ixp_canon(const ix_value *v, pval *out);
uint64_t ixp_pval_hash(uint32_t field, const pval *v);
int ixp_is_numeric(const pval *v);
/* A numeric value against a double, exactly: <0, 0, >0. */
int ixp_cmp_to_double(const pval *a, double b);
/* The field of that name (hash h), or -1. */
long ixp_find_field(const ix_postings *p, const char *name, size_t len, uint64_t h);
/* The posting of (field, v) (hash h), or -1. */
long ixp_find_posting(const ix_postings *p, uint32_t field, const pval *v, uint64_t h);

#endif
