/* Client credentials for a gateway. An API key is a random string
 * ("muri_" and 64 hex characters) whose hash H(CM_DOM_API_KEY || key) is
 * what the chain and the gateways keep; the key itself stays with its
 * holder. A signed call carries, instead of a key, the account's ed25519
 * signature over H(CM_DOM_CALL || method || 0 || chain_id || 0 || H(body)
 * || timestamp_ms (8 bytes, big-endian) || nonce), body being the request
 * message exactly as sent. */
#ifndef CM_API_KEY_H
#define CM_API_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"

#define CM_API_KEY_PREFIX "muri_"
#define CM_API_KEY_CHARS (5 + 64)     /* a key cm_api_key_new makes, without NUL */
#define CM_API_KEY_MAX 256            /* the longest key a gateway hashes */
#define CM_CALL_NONCE_MAX 64          /* bytes of a signed call's nonce */

/* A fresh random key into out (CM_API_KEY_CHARS + 1 bytes). The caller
 * wipes it (cm_wipe) once it is stored or shown. */
void cm_api_key_new(char out[CM_API_KEY_CHARS + 1]);
/* The on-chain hash of a key of len bytes. */
void cm_api_key_hash(const void *key, size_t len, uint8_t out[CM_HASH_BYTES]);
/* The digest a signed call's signature covers. */
void cm_call_digest(uint8_t out[CM_HASH_BYTES], const char *method, const char *chain_id, const void *body,
		    size_t body_len, uint64_t timestamp_ms, const void *nonce, size_t nonce_len);

#endif
