/* Search receipts and the bounded queue they wait in (gw_receipt.h). */
#include "gw_receipt.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

gw_receipt *gw_receipt_new(size_t n)
{
	if (n < 1 || n > GW_RECEIPT_NODES_MAX)
		return NULL;
	gw_receipt *r = calloc(1, sizeof(*r) + n * sizeof(r->nodes[0]));
	if (r)
		r->nnodes = (uint32_t)n;
	return r;
}

size_t gw_receipt_drop_node(gw_receipt *r, size_t j)
{
	if (j < r->nnodes) {
		memmove(r->nodes[j], r->nodes[j + 1], (r->nnodes - j - 1) * sizeof(r->nodes[0]));
		r->nnodes--;
	}
	return r->nnodes;
}

size_t gw_receipts_drop_node(gw_receipt *const *v, size_t n, const char *magu, const uint8_t node[CM_PK_BYTES])
{
	size_t named = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i]->magu, magu) != 0)
			continue;
		for (size_t j = v[i]->nnodes; j-- > 0;)
			if (memcmp(v[i]->nodes[j], node, CM_PK_BYTES) == 0) {
				gw_receipt_drop_node(v[i], j);
				named++;
			}
	}
	return named;
}

int gw_rqueue_init(gw_rqueue *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	q->v = calloc(cap ? cap : 1, sizeof(*q->v));
	if (!q->v)
		return CM_ERR_NOMEM;
	q->cap = cap ? cap : 1;
	return CM_OK;
}

void gw_rqueue_free(gw_rqueue *q)
{
	for (size_t i = 0; q->v && i < q->n; i++)
		free(q->v[(q->head + i) % q->cap]);
	free(q->v);
	memset(q, 0, sizeof(*q));
}

int gw_rqueue_push(gw_rqueue *q, gw_receipt *r)
{
	if (q->n == q->cap)
		return CM_ERR_TOOBIG;
	q->v[(q->head + q->n++) % q->cap] = r;
	return CM_OK;
}

size_t gw_rqueue_take(gw_rqueue *q, gw_receipt **out, size_t max)
{
	size_t k = 0;
	for (; k < max && q->n; k++, q->n--) {
		out[k] = q->v[q->head];
		q->v[q->head] = NULL;
		q->head = (q->head + 1) % q->cap;
	}
	return k;
}
