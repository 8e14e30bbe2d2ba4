/* Weighted placement of keys on nodes: weighted rendezvous (highest random
 * weight) hashing in integer arithmetic only, so every machine and every
 * replica of the ledger's state machine places a key on the same nodes.
 * Used to map Magu fragments to indexers and by the gateway to route. */
#ifndef CM_RING_H
#define CM_RING_H

#include <stddef.h>
#include <stdint.h>

#define CM_RING_ID_BYTES 32 /* a node's id: its ed25519 public key */
#define CM_RING_MAX_R 64    /* most nodes one call places a key on */

typedef struct cm_ring_node {
	uint8_t id[CM_RING_ID_BYTES];
	uint64_t weight; /* e.g. stake; 0 = never chosen */
} cm_ring_node;

/* Places key on the r nodes of nodes[0..n) with the highest scores, best
 * first, writing their indices into nodes to out[0..*count). A node's score
 * for a key is weight / -ln(u), u uniform in (0, 1] from a hash of (key, id),
 * so a node is first for a share of keys proportional to its weight, and
 * adding or removing a node moves only keys to or from that node; ties break
 * by lower id, then lower index. Ids should be distinct. When fewer than r
 * nodes have a positive weight, all of those are returned and *count < r
 * (not an error); *count is 0 when none has. CM_ERR_INVALID for r = 0,
 * r > CM_RING_MAX_R or NULL pointers. Costs n hashes. */
int cm_ring_place(const cm_ring_node *nodes, size_t n, const void *key, size_t key_len,
		  size_t r, size_t *out, size_t *count);

#endif
