/* An indexer's fill: the bytes its replicas are estimated to take, from the
 * state alone, against the capacity it registered (issue 16).
 *
 * used(pk) = sum over the fragments pk replicates (a split's retired parent
 * no longer counts) of committed_size (for a split's half not derived yet,
 * at least half its parent's frozen size) x record_bytes(Magu), where
 * record_bytes = dimension x 4 (float32), or dimension / 8 for HAMMING, plus
 * the governed record_overhead (index and metadata per record). It is a
 * deterministic estimate, not a figure the indexer reports: every replica of
 * the ledger computes the same one from committed roots, and an indexer's
 * own claim about its disk or memory could not be checked. Integer
 * arithmetic only, saturating; state-machine code and queries share it. */
#ifndef LG_FILL_H
#define LG_FILL_H

#include "lg_store.h"

#include <stddef.h>
#include <stdint.h>

#define LG_FILL_SCALE 1000 /* fill and max_fill are per mille of capacity */

/* The estimated bytes of one record of a Magu. */
uint64_t lg_fill_record_bytes(uint32_t dimension, uint32_t metric, uint64_t overhead);
/* a + b, or UINT64_MAX on overflow; a x b likewise. */
uint64_t lg_fill_add(uint64_t a, uint64_t b);
uint64_t lg_fill_mul(uint64_t a, uint64_t b);

/* The used bytes of every indexer that replicates something, sorted by key. */
typedef struct lg_fill_entry {
	uint8_t pk[LG_KEY_BYTES];
	uint64_t used;
} lg_fill_entry;

typedef struct lg_fill_table {
	lg_fill_entry *e;
	size_t n, cap;
} lg_fill_table;

/* Builds the table from the store's fragments; CM_OK or a store error. */
int lg_fill_build(lg_store *s, uint64_t overhead, lg_fill_table *t);
void lg_fill_free(lg_fill_table *t);
/* pk's used bytes (0 if it replicates nothing). */
uint64_t lg_fill_used(const lg_fill_table *t, const uint8_t *pk);
/* Adds bytes to pk's used bytes (a placement just given it a fragment). */
int lg_fill_charge(lg_fill_table *t, const uint8_t *pk, uint64_t bytes);
/* used / capacity in per mille, rounded down, capped at UINT32_MAX; 0 when
 * no capacity is recorded. */
uint32_t lg_fill_permille(uint64_t used, uint64_t capacity);
/* 1 if an indexer at used bytes can take add more and stay below max_fill
 * per mille of capacity (strictly: at max_fill it is full); capacity 0 (none
 * recorded) always fits. */
int lg_fill_fits(uint64_t used, uint64_t add, uint64_t capacity, uint64_t max_fill);
/* One indexer's used bytes, read from the store (for queries). */
int lg_fill_used_of(lg_store *s, uint64_t overhead, const uint8_t *pk, uint64_t *used);

#endif
