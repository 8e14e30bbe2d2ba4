/* The gateway's split map (README "Fragments that split"): each fragment's
 * phase, cell, halves and parent as the ledger's FragmentConfigs say
 * (gw_split_set, applied by gw_chain.c), and in each copy of a collection
 * the map (common/cm_splitmap.h) and its search plan: which fragments a
 * search, a Get or a Scroll asks, and which of their hits it keeps (a
 * frozen parent standing in for a half not live yet answers only for the
 * half's cell). Writes route by the map (gw_write.c). */
#include "gw.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

void gw_split_set(gw_frag *fr, uint32_t fragment, const Muri__V1__FragmentConfig *cfg)
{
	cm_splitfrag *x = &fr->split;
	x->present = 1;
	int ph = (int)cfg->phase;
	x->phase = ph >= 0 && ph <= CM_PHASE_RETIRED ? ph : CM_PHASE_SERVING;
	if (cfg->cell_depth == 0) {
		x->cell = cm_cell_root(fragment);
	} else {
		x->cell.base = cfg->cell_base;
		x->cell.depth = cfg->cell_depth > CM_CELL_DEPTH_MAX ? CM_CELL_DEPTH_MAX : cfg->cell_depth;
		x->cell.path = cfg->cell_path;
	}
	x->children[0] = cfg->n_children > 0 ? cfg->children[0] : UINT32_MAX;
	x->children[1] = cfg->n_children > 1 ? cfg->children[1] : UINT32_MAX;
	x->has_parent = cfg->source != NULL;
	x->parent = cfg->source ? cfg->source->fragment : 0;
	x->live = cfg->source ? cfg->live : 1;
}

int gw_split_plan(gw_coll *m)
{
	m->map = calloc(1, sizeof(*m->map));
	m->plan = calloc(m->nfrag ? m->nfrag : 1, sizeof(*m->plan));
	if (!m->map || !m->plan)
		return CM_ERR_NOMEM;
	m->map->nbase = m->nbase;
	m->map->n = m->nfrag < CM_SPLITMAP_MAX ? m->nfrag : CM_SPLITMAP_MAX;
	for (uint32_t f = 0; f < m->map->n; f++) {
		m->map->f[f] = m->frags[f].split;
		if (f < m->nbase && !m->map->f[f].present) {
			/* an initial fragment without a configuration yet is unsplit */
			m->map->f[f].present = 1;
			m->map->f[f].phase = CM_PHASE_SERVING;
			m->map->f[f].cell = cm_cell_root(f);
			m->map->f[f].live = 1;
		}
	}
	m->plan_rc = cm_splitmap_plan(m->map, m->plan, m->nfrag, &m->nplan);
	if (m->plan_rc != CM_OK) {
		/* a map the gateway cannot read whole yet: ask the initial fragments */
		m->nplan = 0;
		for (uint32_t f = 0; f < m->nbase && f < m->nfrag; f++) {
			m->plan[m->nplan].fragment = f;
			m->plan[m->nplan].restrict_cell = 0;
			m->plan[m->nplan++].cell = cm_cell_root(f);
		}
	}
	for (uint32_t f = 0; f < m->nfrag; f++)
		m->frags[f].ask = 0;
	for (size_t i = 0; i < m->nplan; i++)
		if (m->plan[i].fragment < m->nfrag)
			m->frags[m->plan[i].fragment].ask = 1;
	return CM_OK;
}

int gw_split_route(const gw_coll *m, const uint8_t id[16], uint32_t *fragment)
{
	int rc = cm_splitmap_route(m->map, id, fragment);
	if (rc == CM_OK && *fragment >= m->nfrag)
		return CM_ERR_NOTFOUND;
	return rc;
}

int gw_split_writable(const gw_frag *fr)
{
	if (!fr->split.present)
		return 1;
	return fr->split.phase == CM_PHASE_SERVING && (!fr->split.has_parent || fr->split.live);
}

uint32_t gw_split_reader(const gw_coll *m, const uint8_t id[16])
{
	for (size_t i = 0; i < m->nplan; i++)
		if (cm_cell_contains(&m->plan[i].cell, id, m->nbase))
			return m->plan[i].fragment;
	return cm_cell_base(id, m->nbase);
}

int gw_split_keeps(const gw_coll *m, uint32_t f, const uint8_t id[16])
{
	for (size_t i = 0; i < m->nplan; i++)
		if (m->plan[i].fragment == f && cm_cell_contains(&m->plan[i].cell, id, m->nbase))
			return 1;
	return 0;
}

const char *gw_split_state(const gw_frag *fr)
{
	const cm_splitfrag *x = &fr->split;
	if (x->present && x->has_parent && !x->live && x->phase == CM_PHASE_SERVING)
		return "deriving";
	switch (x->present ? x->phase : CM_PHASE_SERVING) {
	case CM_PHASE_SEALING:
		return "sealing";
	case CM_PHASE_SPLIT:
		return "split";
	case CM_PHASE_RETIRED:
		return "retired";
	default:
		return "serving";
	}
}
