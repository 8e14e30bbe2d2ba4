/* A Magu's fragments as a split map (DESIGN.md "Fragments", issue 16):
 * where a write of an id goes and which fragments a search asks, from the
 * fragments' phases and cells as the ledger committed them (FragmentConfig
 * phase, cell, children; a child is live once its first root committed).
 * Shared by the gateway and the replication simulation. Pure, no I/O. */
#ifndef CM_SPLITMAP_H
#define CM_SPLITMAP_H

#include <stddef.h>
#include <stdint.h>

#include "cm_cell.h"

#define CM_SPLITMAP_MAX 1024 /* fragment numbers of one Magu (LG_FRAGMENTS_MAX) */

enum cm_phase { CM_PHASE_SERVING = 0, CM_PHASE_SEALING = 1, CM_PHASE_SPLIT = 2, CM_PHASE_RETIRED = 3 };

typedef struct cm_splitfrag {
	int present;            /* the ledger created it */
	int phase;              /* enum cm_phase */
	cm_cell cell;
	uint32_t children[2];   /* SEALING (reserved), SPLIT, RETIRED */
	int has_parent;
	uint32_t parent;
	int live;               /* a child: its first root is committed (or no parent) */
} cm_splitfrag;

typedef struct cm_splitmap {
	uint32_t nbase;         /* the Magu's initial fragment count */
	uint32_t n;             /* fragment numbers 0..n-1 */
	cm_splitfrag f[CM_SPLITMAP_MAX];
} cm_splitmap;

/* One fragment a search asks; restrict: only the ids of cell count (a
 * split parent asked for a child that is not live yet). */
typedef struct cm_split_target {
	uint32_t fragment;
	int restrict_cell;
	cm_cell cell;
} cm_split_target;

/* The fragment that takes a write of id now: CM_OK and *fragment;
 * CM_ERR_UNAVAILABLE while its owner seals or its owning child is not live
 * yet (retry later, *fragment says which); CM_ERR_NOTFOUND if no fragment
 * owns it (a map with holes). */
int cm_splitmap_route(const cm_splitmap *m, const uint8_t id[CM_CELL_ID_BYTES], uint32_t *fragment);
/* The fragments a search asks so that every id is looked up in exactly one
 * place: each live unsplit fragment, and for a child not live yet its split
 * parent restricted to the child's cell. At most max targets; CM_ERR_TOOBIG
 * beyond, CM_ERR_NOTFOUND if a cell has no readable fragment. */
int cm_splitmap_plan(const cm_splitmap *m, cm_split_target *out, size_t max, size_t *n);
/* Whether a hit of id from target t belongs to the answer (its cell). */
int cm_split_target_keeps(const cm_splitmap *m, const cm_split_target *t, const uint8_t id[CM_CELL_ID_BYTES]);

#endif
