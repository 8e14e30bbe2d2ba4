/* Fetching a split parent's frozen log (ix_split_fetch.h): pages from one
 * replica at a time, each record checked to be the next of the log, its
 * leaf folded into a Merkle frontier (RFC 9162 MTH of the prefix, as
 * common/cm_merkle computes it), the cell's records staged; at the frozen
 * size the frontier's root must be the frozen root. Any fault drops what
 * was staged and moves to the next replica, from seq 0: a prefix is
 * verified only as a whole, so nothing a replica sent is taken before its
 * root matched. */
#include "ix_split_fetch.h"
#include "cm_err.h"

#include <string.h>

static const char *const fault_names[IXF_NFAULTS] = {"ok", "unreachable", "short", "bad", "root", "stage"};

const char *ixf_fault_name(int fault)
{
	return fault >= 0 && fault < IXF_NFAULTS ? fault_names[fault] : "?";
}

static void restart(ixf *x)
{
	x->next = 0;
	x->staged = 0;
	x->errors = 0;
	x->outstanding = 0;
}

int ixf_init(ixf *x, const ixf_opts *o, const ixf_io *io)
{
	if (o->npeers < 1 || o->npeers > IXF_MAX_PEERS)
		return CM_ERR_INVALID;
	if (o->page > 10000)
		return CM_ERR_INVALID;
	memset(x, 0, sizeof(*x));
	x->o = *o;
	if (!x->o.page)
		x->o.page = IXF_PAGE_DEFAULT;
	x->io = *io;
	restart(x);
	if (x->io.stage_reset(x->io.arg) != CM_OK)
		x->faults[IXF_STAGE]++;
	return CM_OK;
}

/* The root of the next leaves folded so far (the empty tree's for none). */
static void frontier_root(const ixf *x, uint8_t out[CM_MERKLE_HASH_BYTES])
{
	const cm_merkle_hash *h = &cm_merkle_blake2b;
	int have = 0;
	for (int k = 0; k < 64; k++) {
		if (!(x->next >> k & 1))
			continue;
		if (!have)
			memcpy(out, x->frontier[k], CM_MERKLE_HASH_BYTES);
		else
			h->node(out, x->frontier[k], out);
		have = 1;
	}
	if (!have)
		h->empty(out);
}

static void frontier_add(ixf *x, const uint8_t leaf[CM_MERKLE_HASH_BYTES])
{
	uint8_t carry[CM_MERKLE_HASH_BYTES];
	memcpy(carry, leaf, sizeof(carry));
	int k = 0;
	while (x->next >> k & 1) {
		cm_merkle_blake2b.node(carry, x->frontier[k], carry);
		k++;
	}
	memcpy(x->frontier[k], carry, sizeof(carry));
	x->next++;
}

/* cur failed: drop its records, the next replica not failed this round. */
static int fault(ixf *x, int why)
{
	x->faults[why]++;
	x->failed[x->cur] = 1;
	restart(x);
	if (x->io.stage_reset(x->io.arg) != CM_OK)
		x->faults[IXF_STAGE]++;
	for (uint32_t i = 1; i <= x->o.npeers; i++) {
		uint32_t p = (x->cur + i) % x->o.npeers;
		if (!x->failed[p]) {
			x->cur = p;
			break;
		}
	}
	return why;
}

int ixf_next(ixf *x, ixf_req *req)
{
	if (x->done)
		return IXF_DONE;
	if (x->next >= x->o.size) {
		uint8_t root[CM_MERKLE_HASH_BYTES];
		frontier_root(x, root);
		if (!x->o.skip_root_check && memcmp(root, x->o.root, CM_MERKLE_HASH_BYTES) != 0) {
			fault(x, IXF_ROOT);
			return ixf_next(x, req);
		}
		x->done = 1;
		return IXF_DONE;
	}
	if (x->failed[x->cur])
		return IXF_WAIT;
	uint64_t left = x->o.size - x->next;
	req->peer = x->cur;
	req->from = x->next;
	req->max = left < x->o.page ? (uint32_t)left : x->o.page;
	x->outstanding = 1;
	return IXF_FETCH;
}

int ixf_on_page(ixf *x, uint32_t peer, const ixf_entry *e, size_t n, uint64_t log_size)
{
	if (x->done || !x->outstanding || peer != x->cur)
		return IXF_OK; /* an answer to a request given up on: ignored */
	x->outstanding = 0;
	x->errors = 0;
	x->pages++;
	uint64_t want = x->o.size - x->next;
	if (want > x->o.page)
		want = x->o.page;
	if (log_size < x->o.size || n == 0)
		return fault(x, IXF_SHORT);
	if (n > want)
		return fault(x, IXF_BAD);
	for (size_t i = 0; i < n; i++) {
		if (e[i].seq != x->next || !e[i].id || !e[i].data)
			return fault(x, IXF_BAD);
		uint8_t leaf[CM_MERKLE_HASH_BYTES];
		cm_merkle_blake2b.leaf(leaf, e[i].data, e[i].len);
		frontier_add(x, leaf);
		if (cm_cell_contains_h(&x->o.cell, x->o.cell.base, cm_cell_hash(e[i].id))) {
			if (x->io.stage_append(x->io.arg, &e[i]) != CM_OK)
				return fault(x, IXF_STAGE);
			x->staged++;
		}
	}
	return IXF_OK;
}

void ixf_on_error(ixf *x, uint32_t peer)
{
	if (x->done || !x->outstanding || peer != x->cur)
		return;
	x->outstanding = 0;
	if (++x->errors > x->o.retries)
		fault(x, IXF_UNREACHABLE);
}

void ixf_on_bad(ixf *x, uint32_t peer, int why)
{
	if (!x->done && x->outstanding && peer == x->cur)
		fault(x, why > IXF_OK && why < IXF_NFAULTS ? why : IXF_BAD);
}

void ixf_round(ixf *x)
{
	memset(x->failed, 0, sizeof(x->failed));
}

uint64_t ixf_staged(const ixf *x)
{
	return x->staged;
}
