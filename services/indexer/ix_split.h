/* A split's half on this indexer (ix_split.c): derivation of its first
 * records from the parent's frozen log (this node's, or fetched from the
 * parent's replicas), whether it takes writes and appends, and who may
 * FetchLog a split parent. For services/indexer only; never inside a core
 * call. ixp_derive runs under the fragment's cfg_mu; ixp_fetch takes it
 * itself (the root submitter's thread); ixp_note_child runs on the chain's
 * thread and ixp_child_reader in any handler (both under the parent's mu);
 * ixp_takes_appends and ixp_takes_writes under the core lock. */
#ifndef IX_SPLIT_H
#define IX_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "types.pb-c.h"

struct frag;
typedef struct ix_service ix_service;
typedef struct cm_ledger_client cm_ledger_client;

/* Reads f's marker (derived, size, live) from its folder, if any. */
void ixp_load(struct frag *f);
/* f is a half (its configuration has a source) not derived yet: appends
 * the parent's records of its cell, verified against the frozen root.
 * CM_ERR_UNAVAILABLE (err says why) when this node does not hold the
 * parent's frozen log, CM_ERR_STATE when f's log is not empty. */
int ixp_derive(ix_service *s, struct frag *f, char *err, size_t errlen);
/* f is a half not derived, whose parent this node does not hold at the
 * frozen root: one pass of fetching the parent's frozen log from the
 * parent's replicas (named by the ledger through lc), at most
 * split_fetch_pass_ms long; the fetch goes on in the next pass. CM_OK once
 * the fetched log had the frozen root and f derived from it (or f needs no
 * derivation); CM_ERR_UNAVAILABLE while fetching or when every replica
 * failed (err says which way). Takes f's cfg_mu itself (not held during
 * the calls); only the root submitter's thread calls it. */
int ixp_fetch(ix_service *s, struct frag *f, cm_ledger_client *lc, char *err, size_t errlen);
/* Releases f's fetch in progress, if any. */
void ixp_free(struct frag *f);
/* A configuration of a half, delivered by the chain: when this node holds
 * the parent, remembers (and persists with it) the half's replicas, who may
 * FetchLog the parent. */
void ixp_note_child(ix_service *s, const Muri__V1__FragmentConfig *cfg);
/* 1 when pk is a replica of a half of f (a split parent) as last noted. */
int ixp_child_reader(struct frag *f, const uint8_t pk[CM_PK_BYTES]);
/* After f's configuration changed: records that the ledger declared it live. */
void ixp_config(struct frag *f);
/* Whether f takes a primary's appends: not a half before it derived (its
 * first records come from the parent's frozen log only, fetched or not). */
int ixp_takes_appends(const struct frag *f);
/* Whether f takes writes: not a sealing, split or retired fragment, and a
 * half only once derived and live. */
int ixp_takes_writes(const struct frag *f);

#endif
