/* Single-query Search answers signed together: an answer ready to be signed
 * joins the others ready at the same moment, and one ed25519 signature goes
 * over the Merkle root of their digests (common/cm_answer.h, batch_size),
 * each answer carrying its path. The first answer to arrive leads and signs
 * what is queued, up to group_max answers (with group_wait_us above 0 it
 * first waits, at most that long, for the searches still running on this
 * indexer, entered and not yet queued); answers that arrive meanwhile wait
 * for its signature and the next of them leads. A search that runs alone
 * is signed alone at once (batch_size 0). Thread-safe. */
#ifndef IX_SIGN_H
#define IX_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "indexer.pb-c.h"

typedef struct ix_signer ix_signer;

/* A signer with key kp (kept by the caller); group_max 1 signs every
 * answer alone. CM_ERR_NOMEM. */
int ix_signer_new(const cm_keypair *kp, uint32_t group_max, uint32_t group_wait_us, ix_signer **out);
void ix_signer_free(ix_signer *s);

/* A search started, that will sign (enter) or ended, signed or not (leave). */
void ix_signer_enter(ix_signer *s);
void ix_signer_leave(ix_signer *s);

/* Signs r, whose answer digest is d, with the answers ready with it: sets
 * r's signer, signature (into sig, CM_SIG_BYTES) and batch fields (the path
 * into path, ix_signer_path_bytes(s) bytes); the caller keeps sig and path
 * alive with r. CM_ERR_NOMEM. */
int ix_signer_sign(ix_signer *s, const uint8_t d[CM_HASH_BYTES], Muri__V1__LocalSearchResponse *r,
		   uint8_t sig[CM_SIG_BYTES], uint8_t *path);
size_t ix_signer_path_bytes(const ix_signer *s);

#endif
