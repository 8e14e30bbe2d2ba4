/* A signed read request (proto/indexer.proto ReadAuth): the caller's node
 * key over H(CM_DOM_READ || method || 0 || chain_id || 0 || the request
 * packed with auth.signature empty), so a signature names one method, one
 * chain and one request (its requester and wall clock included). Indexers
 * check it (services/indexer/ix_read_auth.h); indexers catching up,
 * gateways' spot checks and tests sign with it. */
#ifndef CM_READ_AUTH_H
#define CM_READ_AUTH_H

#include <stdint.h>

#include "cm_crypto.h"
#include "indexer.pb-c.h"

/* The digest of req, a message with a ReadAuth field named auth (set).
 * CM_ERR_INVALID when req has no such field or it is unset, CM_ERR_NOMEM. */
int cm_read_auth_digest(uint8_t out[CM_HASH_BYTES], const char *method, const char *chain_id,
			const ProtobufCMessage *req);

/* Points req's auth at *auth, filled with key's public key and wall_ms, and
 * signs it into sig (the caller keeps auth and sig alive while req is). */
int cm_read_auth_sign(ProtobufCMessage *req, Muri__V1__ReadAuth *auth, uint8_t sig[CM_SIG_BYTES],
		      const cm_keypair *key, const char *method, const char *chain_id, uint64_t wall_ms);

#endif
