/* An indexer's fill from the state (lg_fill.h). */
#include "lg_fill.h"
#include "cm_err.h"
#include "ledger.pb-c.h"

#include <stdlib.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

uint64_t lg_fill_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t lg_fill_mul(uint64_t a, uint64_t b)
{
	return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

uint64_t lg_fill_record_bytes(uint32_t dimension, uint32_t metric, uint64_t overhead)
{
	uint64_t v = metric == MURI__V1__METRIC__HAMMING ? ((uint64_t)dimension + 7) / 8 : (uint64_t)dimension * 4;
	return lg_fill_add(v, overhead);
}

void lg_fill_free(lg_fill_table *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

static size_t find(const lg_fill_table *t, const uint8_t *pk, int *found)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(t->e[mid].pk, pk, LG_KEY_BYTES);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

int lg_fill_charge(lg_fill_table *t, const uint8_t *pk, uint64_t bytes)
{
	int found;
	size_t i = find(t, pk, &found);
	if (found) {
		t->e[i].used = lg_fill_add(t->e[i].used, bytes);
		return CM_OK;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		lg_fill_entry *e = realloc(t->e, cap * sizeof(*e));
		if (!e)
			return CM_ERR_NOMEM;
		t->e = e;
		t->cap = cap;
	}
	memmove(&t->e[i + 1], &t->e[i], (t->n - i) * sizeof(*t->e));
	memcpy(t->e[i].pk, pk, LG_KEY_BYTES);
	t->e[i].used = bytes;
	t->n++;
	return CM_OK;
}

uint64_t lg_fill_used(const lg_fill_table *t, const uint8_t *pk)
{
	int found;
	size_t i = find(t, pk, &found);
	return found ? t->e[i].used : 0;
}

/* Adds the fragments of one Magu to t (only those pk replicates when pk is
 * not NULL). */
static int add_magu(lg_store *s, const char *name, uint64_t overhead, const uint8_t *pk, lg_fill_table *t)
{
	lg_magu m;
	lg_fragment *fr = NULL;
	size_t nf;
	int rc;

	if ((rc = lg_store_magu_get(s, name, &m)) != CM_OK ||
	    (rc = lg_store_fragments_of(s, name, &fr, &nf)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? CM_OK : rc;
	uint64_t rec = lg_fill_record_bytes(m.dimension, m.metric, overhead);
	for (size_t i = 0; i < nf && rc == CM_OK; i++) {
		lg_cell c;
		uint64_t size = fr[i].committed_size;
		if ((rc = lg_store_cell_get(s, name, fr[i].fragment, &c)) == CM_ERR_NOTFOUND) {
			rc = CM_OK;
			c.state = LG_CELL_SERVING;
			c.has_parent = 0;
		}
		if (rc != CM_OK)
			break;
		if (c.state == LG_CELL_RETIRED)
			continue; /* its replicas are free to drop it */
		if (c.has_parent && !c.derived && size < c.src_size / 2 + c.src_size % 2)
			size = c.src_size / 2 + c.src_size % 2; /* a half still deriving: half its parent's frozen log */
		if (size == 0)
			continue;
		uint64_t bytes = lg_fill_mul(size, rec);
		for (uint32_t j = 0; j < fr[i].nreplicas && rc == CM_OK; j++)
			if (!pk || memcmp(pk, fr[i].replicas[j], LG_KEY_BYTES) == 0)
				rc = lg_fill_charge(t, fr[i].replicas[j], bytes);
	}
	free(fr);
	return rc;
}

static int build(lg_store *s, uint64_t overhead, const uint8_t *pk, lg_fill_table *t)
{
	char(*names)[LG_NAME_MAX + 1] = NULL;
	size_t nn;
	int rc;

	memset(t, 0, sizeof(*t));
	if ((rc = lg_store_magu_names(s, &names, &nn)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nn && rc == CM_OK; i++)
		rc = add_magu(s, names[i], overhead, pk, t);
	free(names);
	if (rc != CM_OK)
		lg_fill_free(t);
	return rc;
}

int lg_fill_build(lg_store *s, uint64_t overhead, lg_fill_table *t)
{
	return build(s, overhead, NULL, t);
}

int lg_fill_used_of(lg_store *s, uint64_t overhead, const uint8_t *pk, uint64_t *used)
{
	lg_fill_table t;
	int rc = build(s, overhead, pk, &t);
	if (rc == CM_OK)
		*used = lg_fill_used(&t, pk);
	lg_fill_free(&t);
	return rc;
}

uint32_t lg_fill_permille(uint64_t used, uint64_t capacity)
{
	if (capacity == 0)
		return 0;
	u128 p = (u128)used * LG_FILL_SCALE / capacity;
	return p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
}

int lg_fill_fits(uint64_t used, uint64_t add, uint64_t capacity, uint64_t max_fill)
{
	if (capacity == 0)
		return 1;
	u128 after = (u128)lg_fill_add(used, add) * LG_FILL_SCALE;
	return after < (u128)capacity * max_fill;
}
