/* The block and quorum-certificate codec (cm_chain.h) that every ledger
 * replica and follower runs on bytes from peers. The first byte picks the
 * decoder. Oracle: canonical encodings, so whatever decodes encodes back to
 * exactly the input, and a decoded block's hash is that of its bytes. */
#include <string.h>

#include "cm_chain.h"
#include "cm_err.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int which;
	const uint8_t *p;
	size_t n;
	if (!fuzz_pick(data, size, &which, &p, &n))
		return 0;
	uint8_t *out = malloc(n ? n : 1);
	if (!out)
		return 0;
	size_t len = 0;
	if (which) {
		cm_qc qc;
		if (cm_qc_decode(p, n, &qc) == CM_OK) {
			FUZZ_REENCODES(cm_qc_size(&qc), cm_qc_encode(&qc, out, n, &len), out, len, p, n);
			FUZZ_CHECK(cm_qc_get(p, n, &qc) == n);
		}
	} else {
		cm_block b;
		if (cm_block_decode(p, n, &b) == CM_OK) {
			FUZZ_REENCODES(cm_block_size(&b), cm_block_encode(&b, out, n, &len), out, len, p, n);
			cm_block again;
			FUZZ_CHECK(cm_block_decode(out, len, &again) == CM_OK);
			FUZZ_CHECK(memcmp(again.hash, b.hash, sizeof b.hash) == 0);
		}
	}
	free(out);
	return 0;
}
