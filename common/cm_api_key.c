/* Client credentials for a gateway: API keys and their on-chain hash, and
 * the digest of a signed call (cm_api_key.h). */
#include "cm_api_key.h"

#include <string.h>

void cm_api_key_new(char out[CM_API_KEY_CHARS + 1])
{
	uint8_t r[32];
	randombytes_buf(r, sizeof(r));
	memcpy(out, CM_API_KEY_PREFIX, 5);
	cm_hex(out + 5, r, sizeof(r));
	cm_wipe(r, sizeof(r));
}

void cm_api_key_hash(const void *key, size_t len, uint8_t out[CM_HASH_BYTES])
{
	cm_hash(out, CM_DOM_API_KEY, key, len);
}

void cm_call_digest(uint8_t out[CM_HASH_BYTES], const char *method, const char *chain_id, const void *body,
		    size_t body_len, uint64_t timestamp_ms, const void *nonce, size_t nonce_len)
{
	uint8_t bh[CM_HASH_BYTES], ts[8], zero = 0;
	cm_hasher h;
	cm_hash(bh, CM_DOM_CALL, body, body_len);
	for (int i = 0; i < 8; i++)
		ts[i] = (uint8_t)(timestamp_ms >> (56 - 8 * i));
	cm_hasher_init(&h, CM_DOM_CALL);
	cm_hasher_update(&h, method, strlen(method));
	cm_hasher_update(&h, &zero, 1);
	cm_hasher_update(&h, chain_id, strlen(chain_id));
	cm_hasher_update(&h, &zero, 1);
	cm_hasher_update(&h, bh, sizeof(bh));
	cm_hasher_update(&h, ts, sizeof(ts));
	cm_hasher_update(&h, nonce, nonce_len);
	cm_hasher_final(&h, out);
}
