/* The verified follower (cm_fcore), fed blocks a hostile ledger node could
 * serve: the input is a sequence of Block messages, each behind a
 * little-endian u16 length. The genesis names four replicas whose secret
 * keys no input knows. Oracles: no block is ever accepted (a block needs a
 * commit certificate of three of those keys), each refusal names a reason
 * and says why, and nothing becomes final. */
#include <string.h>

#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_follower.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static uint8_t pks[4][CM_PK_BYTES];
	if (!ready) {
		FUZZ_CHECK(cm_crypto_init() == CM_OK);
		for (int i = 0; i < 4; i++) {
			cm_keypair kp;
			cm_keypair_generate(&kp);
			memcpy(pks[i], kp.pk, CM_PK_BYTES);
			cm_keypair_wipe(&kp);
		}
		ready = 1;
	}
	cm_follower_genesis g = {.chain_id = "muri-fuzz", .n = 4, .pks = (const uint8_t(*)[CM_PK_BYTES])pks};
	cm_fcore_opts o = {.genesis = &g, .max_pending = 8, .max_claims = 8};
	cm_fcore c;
	FUZZ_CHECK(cm_fcore_init(&c, &o) == CM_OK);
	size_t off = 0;
	while (size - off >= 2) {
		size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
		off += 2;
		if (len > size - off)
			len = size - off;
		Muri__V1__Block *b = muri__v1__block__unpack(NULL, len, data + off);
		off += len;
		if (!b)
			continue;
		int reason = CM_FV_OK;
		c.why[0] = '\0';
		int rc = cm_fcore_add(&c, b, 1, &reason);
		FUZZ_CHECK(rc != CM_OK);
		FUZZ_CHECK(reason != CM_FV_OK && c.why[0] != '\0');
		muri__v1__block__free_unpacked(b, NULL);
	}
	Muri__V1__Block *out = NULL;
	FUZZ_CHECK(cm_fcore_pop(&c, &out) == 0);
	FUZZ_CHECK(cm_fcore_verified_through(&c) == 0);
	cm_fcore_clear(&c);
	return 0;
}
