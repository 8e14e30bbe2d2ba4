/* Cells of split fragments: an id's base fragment and split bits, and the
 * halves of a cell (cm_cell.h). */
#include "cm_cell.h"
#include "cm_crypto.h"

#include <assert.h>

uint32_t cm_cell_base(const uint8_t id[CM_CELL_ID_BYTES], uint32_t nfrag)
{
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | id[i];
	return nfrag ? (uint32_t)(x % nfrag) : 0;
}

uint64_t cm_cell_hash(const uint8_t id[CM_CELL_ID_BYTES])
{
	uint8_t h[CM_HASH_BYTES];
	uint64_t x = 0;
	cm_hash(h, CM_DOM_SPLIT, id, CM_CELL_ID_BYTES);
	for (int i = 0; i < 8; i++)
		x = x << 8 | h[i];
	return x;
}

static uint64_t mask(uint32_t depth)
{
	return depth >= 64 ? UINT64_MAX : (UINT64_C(1) << depth) - 1;
}

int cm_cell_contains_h(const cm_cell *c, uint32_t base, uint64_t hash)
{
	return c->base == base && (hash & mask(c->depth)) == c->path;
}

int cm_cell_contains(const cm_cell *c, const uint8_t id[CM_CELL_ID_BYTES], uint32_t nfrag)
{
	if (cm_cell_base(id, nfrag) != c->base)
		return 0;
	return c->depth == 0 || cm_cell_contains_h(c, c->base, cm_cell_hash(id));
}

void cm_cell_children(const cm_cell *c, cm_cell out[2])
{
	assert(c->depth < CM_CELL_DEPTH_MAX && (c->path & ~mask(c->depth)) == 0);
	for (int b = 0; b < 2; b++) {
		out[b].base = c->base;
		out[b].depth = c->depth + 1;
		out[b].path = c->path | ((uint64_t)b << c->depth);
	}
}

cm_cell cm_cell_root(uint32_t fragment)
{
	cm_cell c = {fragment, 0, 0};
	return c;
}
