/* Who may read a fragment's log and proofs: a signed read (ReadAuth,
 * common/cm_read_auth.h) is answered only within a time window of this
 * indexer's clock, once (a bounded cache of answered signatures), and only
 * for a key the chain says may read. The keys beyond a fragment's replicas
 * (ledger replicas and genesis gateways) are set by the chain follower. */
#ifndef IX_READ_AUTH_H
#define IX_READ_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"

typedef struct ix_read_auth ix_read_auth;

/* window_ms: a request's wall_ms at most this far from ours; replay_max:
 * answered signatures remembered (when more arrive within the window, the
 * oldest is forgotten and requests no newer than it are refused). */
int ix_read_auth_new(uint32_t window_ms, uint32_t replay_max, ix_read_auth **out);
void ix_read_auth_free(ix_read_auth *a);
uint32_t ix_read_auth_window(const ix_read_auth *a);

/* Replaces the keys that may read proofs of every fragment. */
int ix_read_auth_set_readers(ix_read_auth *a, const uint8_t (*pks)[CM_PK_BYTES], size_t n);
int ix_read_auth_is_reader(ix_read_auth *a, const uint8_t pk[CM_PK_BYTES]);

/* Remembers a signature answered at wall_ms, now being our wall clock:
 * CM_OK; CM_ERR_EXISTS when it was answered already; CM_ERR_RANGE when
 * wall_ms is no newer than a signature forgotten while still in the window. */
int ix_read_auth_once(ix_read_auth *a, const uint8_t sig[CM_SIG_BYTES], uint64_t wall_ms, uint64_t now);

#endif
