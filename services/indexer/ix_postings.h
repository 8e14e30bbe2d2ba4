/* In-memory postings of a fragment's metadata, for filtered searches: per
 * (field, value) the sorted seqs of the record versions carrying it, per
 * field its numeric values in order (for ranges) and a column giving each
 * seq's value (its posting; 4 bytes per log record per field). They mirror
 * the metadata tables (ix_filter.h) and answer ix_filter_seqs's question
 * without SQLite in two ways: as a set (equality looks one posting up, $in
 * unites several, a range unites the postings between its bounds,
 * conditions intersect), for filters that match few records; or compiled
 * into a test of one seq (a column read and a comparison per condition,
 * no work per matching record), which a graph search applies to the
 * positions it visits, for filters that match many.
 *
 * Like the tables, postings may hold seqs of versions that were superseded
 * or deleted since: callers check liveness on the view (as search does), and
 * ix_postings_compact drops them once they pile up. Memory is bounded by a
 * cap: an add that would pass it frees everything and disables the postings
 * (a warning is logged and ix_postings_stats counts it) until the next
 * ix_postings_load; callers then read the tables instead. Not thread-safe:
 * the fragment's view lock guards it. */
#ifndef IX_POSTINGS_H
#define IX_POSTINGS_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#include "ix_filter.h"
#include "ix_record.h"

typedef struct ix_postings ix_postings;

typedef struct ix_postings_stats {
	int enabled;
	size_t bytes;      /* allocated by the postings */
	size_t entries;    /* (value, seq) pairs held */
	size_t values;     /* distinct (field, value) pairs */
	size_t stale;      /* entries known superseded since the last compaction */
	uint64_t disabled; /* times the cap disabled them */
	uint64_t compactions;
} ix_postings_stats;

/* Empty and enabled, with a memory cap in bytes (0: no cap). NULL if out of
 * memory. */
ix_postings *ix_postings_new(size_t max_bytes);
void ix_postings_free(ix_postings *p);

/* Forgets every entry and rebuilds from the metadata tables on db (the
 * rows of every indexed record version); enables the postings again when
 * they fit the cap. CM_ERR_IO on an SQLite failure (the postings are then
 * left disabled). */
int ix_postings_load(ix_postings *p, sqlite3 *db, char *err, size_t errlen);

/* Adds the fields of the record version at seq. Appends come in increasing
 * seq order, which costs O(1) per field. Never fails: past the cap or out of
 * memory the postings become disabled. */
void ix_postings_add(ix_postings *p, uint64_t seq, const ix_field *fields, uint32_t nfields);

/* The record version at seq was superseded or deleted: its postings count
 * one live version less (what ix_postings_compile estimates from). */
void ix_postings_kill(ix_postings *p, uint64_t seq);

/* Notes that n entries' versions were superseded; returns 1 when the stale
 * share makes a compaction worth it. */
int ix_postings_note_stale(ix_postings *p, size_t nfields);

/* Keeps only the seqs live() says are still current. */
typedef int (*ix_live_fn)(void *arg, uint64_t seq);
void ix_postings_compact(ix_postings *p, ix_live_fn live, void *arg);

int ix_postings_enabled(const ix_postings *p);
void ix_postings_stats_get(const ix_postings *p, ix_postings_stats *out);

/* The seqs that satisfy a non-empty filter, sorted and unique, all below
 * size; *seqs is a heap array the caller frees (NULL when *n is 0).
 * CM_ERR_STATE if the postings are disabled (read the tables instead),
 * CM_ERR_NOMEM. */
int ix_postings_seqs(const ix_postings *p, const ix_filter *f, uint64_t size, uint64_t **seqs, size_t *n);

/* A filter compiled against the postings; valid while they do not change
 * (the caller holds the view lock). */
typedef struct ix_pfilter ix_pfilter;

/* Compiles a non-empty filter, in time independent of how many records it
 * matches (a range spanning more than 1024 values is estimated, not
 * summed). *est estimates the live versions that match: the narrowest
 * condition's count of live versions (ix_postings_kill) among its admitted
 * postings, an upper bound unless a range spans more than 1024 values. It
 * depends only on the records and which of them are live, not on when the
 * postings were loaded or compacted, so replicas at the same log size
 * estimate alike (after ix_postings_load, compact against liveness). CM_ERR_STATE if the postings are disabled, CM_ERR_NOMEM.
 * Free with ix_pfilter_free. */
int ix_postings_compile(const ix_postings *p, const ix_filter *f, ix_pfilter **out, size_t *est);
/* 1 if the record version at seq satisfies the filter: the seqs below size
 * it admits are exactly those ix_postings_seqs gives. */
int ix_pfilter_match(const ix_pfilter *pf, uint64_t seq);
void ix_pfilter_free(ix_pfilter *pf);

#endif
