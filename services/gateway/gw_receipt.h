/* Search receipts without I/O: the receipt a search leaves (the Magu, the
 * queries it carried, the nodes it pays, best first), the bounded queue
 * receipts wait in until a Settle carries them (gw_receipt_queue.c), and
 * what a failed Settle's message asks of the gateway (gw_receipt_fault.c).
 * The settling itself (the ledger, the allowance, the metrics) is
 * gw_receipts.c. */
#ifndef GW_RECEIPT_H
#define GW_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"

#define GW_RECEIPT_ID_BYTES 16       /* random; the ledger takes 16..32 */
#define GW_RECEIPT_NODES_MAX 64      /* the ledger's bound on ranked_nodes */
#define GW_SETTLE_MAX 1024           /* the ledger's bound on receipts per Settle */
#define GW_RECEIPT_MAGU_MAX 128

typedef struct gw_receipt {
	char magu[GW_RECEIPT_MAGU_MAX + 1];
	uint8_t id[GW_RECEIPT_ID_BYTES];
	uint64_t queries;            /* query vectors searched: the fee is queries x search_fee */
	int has_searcher;            /* the caller's account pays (its allowance); else the payer */
	uint8_t searcher[CM_PK_BYTES];
	uint32_t nnodes;             /* 1..GW_RECEIPT_NODES_MAX */
	uint8_t nodes[][CM_PK_BYTES]; /* best first */
} gw_receipt;

/* A receipt with room for n nodes (nnodes = n, the rest zeroed); NULL when
 * out of memory or n is not 1..GW_RECEIPT_NODES_MAX. Freed with free(). */
gw_receipt *gw_receipt_new(size_t n);
/* Removes node j (later nodes move up one rank); 0 when none is left. */
size_t gw_receipt_drop_node(gw_receipt *r, size_t j);

/* Removes node from every receipt of magu among v[0..n) (a node that left
 * the Magu is paid by none of them); returns how many receipts named it.
 * A receipt may be left with no node: the caller gives it up. */
size_t gw_receipts_drop_node(gw_receipt *const *v, size_t n, const char *magu, const uint8_t node[CM_PK_BYTES]);

/* A FIFO of at most cap receipts. Not thread-safe: the caller locks. */
typedef struct gw_rqueue {
	gw_receipt **v;
	size_t cap, head, n;
} gw_rqueue;

int gw_rqueue_init(gw_rqueue *q, size_t cap);
/* Frees the receipts still queued. Accepts a zeroed queue. */
void gw_rqueue_free(gw_rqueue *q);
/* Queues r (the queue owns it), or CM_ERR_TOOBIG when full: r is not taken
 * (the caller still owns it). A full queue refuses the newest receipt and
 * keeps the older ones: they settle in the order the searches were served. */
int gw_rqueue_push(gw_rqueue *q, gw_receipt *r);
/* Moves up to max of the oldest receipts into out (the caller owns them). */
size_t gw_rqueue_take(gw_rqueue *q, gw_receipt **out, size_t max);

/* What a Settle's failure message asks for. The ledger checks a Settle's
 * receipts in order and fails the whole transaction at the first bad one,
 * naming it ("settle.receipts[3].ranked_nodes[1]: ... is not a member"). */
typedef enum gw_fault_kind {
	GW_FAULT_RETRY = 0,          /* nothing named (unreachable, nonce): send the same again later */
	GW_FAULT_DROP_NODE,          /* receipts[i].ranked_nodes[j] is no member now: drop that node */
	GW_FAULT_DROP_RECEIPT,       /* receipts[i] cannot settle (its Magu is gone, malformed) */
	GW_FAULT_SETTLED,            /* receipts[i]'s id settled already (a Settle thought lost committed) */
	GW_FAULT_FEE,                /* receipts[i].fee is below search_fee: read the parameter again */
	GW_FAULT_ALLOWANCE,          /* the allowance is missing, expired or too small: Approve again */
	GW_FAULT_BALANCE,            /* the searcher cannot pay receipts[i]: it and those after stay unsettled */
	GW_FAULT_GAS,                /* the gateway's own account cannot pay the transaction fee */
} gw_fault_kind;

typedef struct gw_fault {
	gw_fault_kind kind;
	size_t receipt, node;        /* indices the message named (receipt for every per-receipt kind) */
} gw_fault;

/* Reads a ledger message about a Settle that failed (in a block, or refused
 * at admission) into *f. nreceipts: the Settle's receipts; an index at or
 * beyond it reads as GW_FAULT_RETRY. */
void gw_fault_parse(const char *msg, size_t nreceipts, gw_fault *f);
const char *gw_fault_name(gw_fault_kind k);

#endif
