/* A split's half on this indexer (services/ledger/lg_st_split.c, DESIGN.md
 * "Fragments"): its first records are derived from the parent's frozen log
 * (FragmentConfig.source) as held on this node, verified against the
 * frozen root: the records whose ids fall in the half's cell, in log order,
 * renumbered from 0 in epoch 1, so every replica of the half derives the
 * same log and signs the same root. A marker file in the half's folder
 * records that it derived (and how many records), and that the ledger
 * declared it live; only then does it take writes. */
#include "ix_service_int.h"
#include "ix_split.h"
#include "cm_cell.h"
#include "cm_err.h"
#include "cm_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DERIVED_FILE "derived"
#define DERIVE_BATCH 256

static void marker_path(const struct frag *f, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", f->dir, DERIVED_FILE);
}

void ixp_load(struct frag *f)
{
	char path[PATH_MAX];
	unsigned long long size = 0;
	int live = 0;
	marker_path(f, path, sizeof(path));
	FILE *fp = fopen(path, "r");
	if (!fp)
		return;
	if (fscanf(fp, "%llu %d", &size, &live) >= 1) {
		f->derived = 1;
		f->derived_size = size;
		f->split_live = live == 1;
	}
	fclose(fp);
}

static int marker_save(struct frag *f)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	marker_path(f, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *fp = fopen(tmp, "w");
	if (!fp)
		return CM_ERR_IO;
	int ok = fprintf(fp, "%llu %d\n", (unsigned long long)f->derived_size, f->split_live) > 0;
	ok &= fflush(fp) == 0;
	ok &= fclose(fp) == 0;
	if (!ok || rename(tmp, path) != 0)
		return CM_ERR_IO;
	return CM_OK;
}

int ixp_derive(ix_service *s, struct frag *f, char *err, size_t errlen)
{
	const Muri__V1__FragmentConfig *c = f->cfg;
	if (!c || !c->source || f->derived)
		return CM_OK;
	const Muri__V1__FragmentSource *src = c->source;
	struct frag *p = ixs_find_frag(s, f->magu, src->fragment);
	ix_fragment *pst = p ? ixs_store_of(p) : NULL;
	uint8_t root[CM_HASH_BYTES];
	if (!pst || ix_fragment_size(pst) < src->size || ix_fragment_root(pst, src->size, root) != CM_OK ||
	    src->root.len != CM_HASH_BYTES || memcmp(root, src->root.data, CM_HASH_BYTES) != 0) {
		snprintf(err, errlen, "this indexer does not hold fragment %u's log at its frozen root (size %llu)",
			 src->fragment, (unsigned long long)src->size);
		return CM_ERR_UNAVAILABLE;
	}
	if (!f->store || ix_fragment_size(f->store) != 0) {
		snprintf(err, errlen, "%s/%u: %s", f->magu, f->fragment,
			 f->store ? "its log is not empty" : "its store is not open yet");
		return CM_ERR_STATE;
	}
	cm_cell cell = {c->cell_base, c->cell_depth, c->cell_path};
	cm_arena a;
	cm_arena_init(&a, 0);
	ix_record *out = malloc(DERIVE_BATCH * sizeof(*out));
	int rc = out ? CM_OK : CM_ERR_NOMEM;
	uint64_t next = 0;
	for (uint64_t from = 0; rc == CM_OK && from < src->size;) {
		ix_record *recs = NULL;
		size_t n = 0, k = 0;
		uint64_t want = src->size - from < DERIVE_BATCH ? src->size - from : DERIVE_BATCH;
		cm_arena_reset(&a);
		if ((rc = ix_fragment_read(pst, from, (uint32_t)want, &a, &recs, &n)) != CM_OK)
			break;
		if (n == 0) {
			rc = CM_ERR_IO;
			break;
		}
		for (size_t i = 0; i < n && from + i < src->size; i++) {
			if (!cm_cell_contains_h(&cell, cell.base, cm_cell_hash(recs[i].id)))
				continue;
			out[k] = recs[i];
			out[k].seq = next + k;
			out[k].epoch = 1;
			k++;
		}
		from += n;
		if (k) {
			ixr_core_enter(f);
			rc = ix_fragment_append(f->store, out, k, err, errlen);
			ixr_core_leave(f);
			next += k;
		}
	}
	free(out);
	cm_arena_free(&a);
	if (rc != CM_OK) {
		if (!err[0])
			snprintf(err, errlen, "%s", cm_strerror(rc));
		return rc;
	}
	f->derived = 1;
	f->derived_size = next;
	f->split_live = c->live; /* a replica derives late when it lagged: the ledger may have said so already */
	if ((rc = marker_save(f)) != CM_OK) {
		snprintf(err, errlen, "cannot write %s/%s", f->dir, DERIVED_FILE);
		return rc;
	}
	cm_info("split_derived", "magu=%s fragment=%u parent=%u records=%llu of=%llu", f->magu, f->fragment,
		src->fragment, (unsigned long long)next, (unsigned long long)src->size);
	return CM_OK;
}

void ixp_config(struct frag *f)
{
	if (f->cfg && f->cfg->source && f->cfg->live && f->derived && !f->split_live) {
		f->split_live = 1;
		if (marker_save(f) != CM_OK)
			cm_warn("split_marker", "magu=%s fragment=%u error=\"cannot write %s/%s\"", f->magu, f->fragment,
				f->dir, DERIVED_FILE);
	}
}

int ixp_takes_writes(const struct frag *f)
{
	const Muri__V1__FragmentConfig *c = f->cfg;
	if (!c)
		return 1;
	if (c->phase != MURI__V1__FRAGMENT_PHASE__FRAGMENT_PHASE_SERVING)
		return 0;
	return !c->source || (f->derived && (c->live || f->split_live));
}
