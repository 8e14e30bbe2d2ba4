/* The gateway's memory of batch signatures it verified (cm_answer_seen):
 * answers an indexer signed under one root (a SearchBatch call's) cost one
 * ed25519 check, the others only their path to the root. A fixed table of
 * keys (signer, signed message, signature bytes: cm_answer_verify_seen),
 * each slot overwritten by the next key that hashes to it; thread-safe. */
#ifndef GW_SEEN_H
#define GW_SEEN_H

#include <stddef.h>
#include <stdint.h>

#include "cm_answer.h"

typedef struct gw_seen gw_seen;

/* A table of slots keys (0: none remembered, *out NULL). CM_ERR_NOMEM. */
int gw_seen_new(size_t slots, gw_seen **out);
void gw_seen_free(gw_seen *s);
/* The callbacks over s (s may be NULL: nothing is remembered). */
cm_answer_seen gw_seen_cb(gw_seen *s);

#endif
