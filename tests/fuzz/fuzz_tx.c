/* A signed transaction as SubmitTransaction and a peer's relay bring it:
 * protobuf-c decoding, then every stateless check of lg_tx_open (body
 * size, encoding, chain id, sender, each payload field). Oracles: a refusal
 * always says why; what lg_tx_open accepts passes lg_tx_check again and
 * hashes to the hash of its body. */
#include <string.h>

#include "cm_err.h"
#include "fuzz.h"
#include "lg_tx.h"
#include "ledger.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Muri__V1__SignedTransaction *stx = muri__v1__signed_transaction__unpack(NULL, size, data);
	if (!stx)
		return 0;
	for (unsigned flags = 0; flags <= LG_TX_SKIP_SIG; flags += LG_TX_SKIP_SIG) {
		lg_tx tx;
		memset(&tx, 0, sizeof tx);
		char err[256] = "";
		int rc = lg_tx_open(stx, "muri-fuzz", flags, &tx, err, sizeof err);
		if (rc != CM_OK) {
			FUZZ_CHECK(err[0] != '\0');
			continue;
		}
		char err2[256] = "";
		FUZZ_CHECK(lg_tx_check(tx.body, err2, sizeof err2) == CM_OK);
		uint8_t h[CM_HASH_BYTES];
		lg_tx_hash(stx->body.data, stx->body.len, h);
		FUZZ_CHECK(memcmp(h, tx.hash, sizeof h) == 0);
		lg_tx_close(&tx);
	}
	muri__v1__signed_transaction__free_unpacked(stx, NULL);
	return 0;
}
