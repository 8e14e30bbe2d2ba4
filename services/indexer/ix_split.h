/* A split's half on this indexer (ix_split.c): derivation of its first
 * records from the parent's frozen log, and whether it takes writes. For
 * services/indexer only; every function runs under the fragment's cfg_mu or
 * on the chain's thread, never inside a core call. */
#ifndef IX_SPLIT_H
#define IX_SPLIT_H

#include <stddef.h>

struct frag;
typedef struct ix_service ix_service;

/* Reads f's marker (derived, size, live) from its folder, if any. */
void ixp_load(struct frag *f);
/* f is a half (its configuration has a source) not derived yet: appends
 * the parent's records of its cell, verified against the frozen root.
 * CM_ERR_UNAVAILABLE (err says why) when this node does not hold the
 * parent's frozen log, CM_ERR_STATE when f's log is not empty. */
int ixp_derive(ix_service *s, struct frag *f, char *err, size_t errlen);
/* After f's configuration changed: records that the ledger declared it live. */
void ixp_config(struct frag *f);
/* Whether f takes writes: not a sealing, split or retired fragment, and a
 * half only once derived and live. */
int ixp_takes_writes(const struct frag *f);

#endif
