/* The split map: routing of writes and the plan of searches over split
 * fragments (cm_splitmap.h). */
#include "cm_splitmap.h"
#include "cm_err.h"

/* The fragment whose cell holds id and that has not been split into live
 * children: walk down from the base fragment. *readable: the fragment to
 * read (the parent when the owner is a child not live yet). */
static int owner_of(const cm_splitmap *m, uint32_t base, uint64_t h, uint32_t *own, uint32_t *read)
{
	uint32_t f = base;
	if (base >= m->n || !m->f[base].present)
		return CM_ERR_NOTFOUND;
	*read = f;
	for (uint32_t depth = 0; depth <= CM_CELL_DEPTH_MAX; depth++) {
		const cm_splitfrag *x = &m->f[f];
		if (x->phase == CM_PHASE_SERVING || x->phase == CM_PHASE_SEALING) {
			*own = f;
			if (!x->has_parent || x->live)
				*read = f;
			return CM_OK;
		}
		/* SPLIT or RETIRED: one child holds id */
		uint32_t c = x->children[(h >> x->cell.depth) & 1];
		if (c >= m->n || !m->f[c].present)
			return CM_ERR_NOTFOUND;
		if (x->phase == CM_PHASE_SPLIT)
			*read = f;
		f = c;
		if (m->f[c].live || !m->f[c].has_parent)
			*read = c;
	}
	return CM_ERR_NOTFOUND;
}

int cm_splitmap_route(const cm_splitmap *m, const uint8_t id[CM_CELL_ID_BYTES], uint32_t *fragment)
{
	uint32_t own, read;
	int rc = owner_of(m, cm_cell_base(id, m->nbase), cm_cell_hash(id), &own, &read);
	if (rc != CM_OK)
		return rc;
	*fragment = own;
	const cm_splitfrag *x = &m->f[own];
	if (x->phase == CM_PHASE_SEALING || (x->has_parent && !x->live))
		return CM_ERR_UNAVAILABLE;
	return CM_OK;
}

static int push(cm_split_target *out, size_t max, size_t *n, uint32_t f, int restrict_cell, const cm_cell *c)
{
	if (*n >= max)
		return CM_ERR_TOOBIG;
	out[*n].fragment = f;
	out[*n].restrict_cell = restrict_cell;
	out[*n].cell = *c;
	(*n)++;
	return CM_OK;
}

/* The targets for the cell of fragment f (a subtree), reading through
 * parent (the nearest split ancestor that is readable, or none). */
static int plan_of(const cm_splitmap *m, uint32_t f, int has_reader, uint32_t reader, cm_split_target *out,
		   size_t max, size_t *n, int depth)
{
	const cm_splitfrag *x;
	if (f >= m->n || !m->f[f].present || depth > CM_CELL_DEPTH_MAX)
		return CM_ERR_NOTFOUND;
	x = &m->f[f];
	int self_readable = !x->has_parent || x->live;
	if (self_readable && x->phase != CM_PHASE_RETIRED) {
		has_reader = 1;
		reader = f;
	}
	if (x->phase == CM_PHASE_SERVING || x->phase == CM_PHASE_SEALING) {
		if (!has_reader)
			return CM_ERR_NOTFOUND;
		return push(out, max, n, reader, reader != f, &x->cell);
	}
	for (int b = 0; b < 2; b++) {
		int rc = plan_of(m, x->children[b], has_reader, reader, out, max, n, depth + 1);
		if (rc != CM_OK)
			return rc;
	}
	return CM_OK;
}

int cm_splitmap_plan(const cm_splitmap *m, cm_split_target *out, size_t max, size_t *n)
{
	*n = 0;
	for (uint32_t b = 0; b < m->nbase; b++) {
		int rc = plan_of(m, b, 0, 0, out, max, n, 0);
		if (rc != CM_OK)
			return rc;
	}
	return CM_OK;
}

int cm_split_target_keeps(const cm_splitmap *m, const cm_split_target *t, const uint8_t id[CM_CELL_ID_BYTES])
{
	if (!t->restrict_cell)
		return 1;
	return cm_cell_contains(&t->cell, id, m->nbase);
}
