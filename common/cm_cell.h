/* Which fragment owns an id once fragments split (DESIGN.md "Fragments",
 * issue 16): a fragment owns a cell (base, depth, path). base is the id's
 * first 8 bytes, big-endian, mod the Magu's initial fragment count (the
 * routing every Magu had before splits, so unsplit fragments keep their
 * ids); a split adds one bit, taken from a hash of the id so that ids a
 * client chose still spread evenly. Pure functions, no I/O. */
#ifndef CM_CELL_H
#define CM_CELL_H

#include <stdint.h>

#define CM_CELL_ID_BYTES 16
#define CM_CELL_DEPTH_MAX 32 /* splits along one line of descent */

typedef struct cm_cell {
	uint32_t base;  /* < the Magu's initial fragment count */
	uint32_t depth; /* 0..CM_CELL_DEPTH_MAX */
	uint64_t path;  /* < 2^depth: the low depth bits of cm_cell_hash */
} cm_cell;

/* The base fragment of id among nfrag initial fragments (0 when nfrag is 0). */
uint32_t cm_cell_base(const uint8_t id[CM_CELL_ID_BYTES], uint32_t nfrag);
/* The split bits of id: the first 8 bytes, big-endian, of
 * BLAKE2b-256(CM_DOM_SPLIT || id); bit i picks the half at depth i + 1. */
uint64_t cm_cell_hash(const uint8_t id[CM_CELL_ID_BYTES]);
/* 1 if c owns id (nfrag the Magu's initial fragment count), else 0. */
int cm_cell_contains(const cm_cell *c, const uint8_t id[CM_CELL_ID_BYTES], uint32_t nfrag);
/* The same with the id's base and hash computed already. */
int cm_cell_contains_h(const cm_cell *c, uint32_t base, uint64_t hash);
/* The two halves of c (c->depth < CM_CELL_DEPTH_MAX): out[b] has split bit b. */
void cm_cell_children(const cm_cell *c, cm_cell out[2]);
/* The cell of an unsplit initial fragment. */
cm_cell cm_cell_root(uint32_t fragment);

#endif
