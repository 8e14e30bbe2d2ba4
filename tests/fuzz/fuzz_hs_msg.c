/* The consensus envelope a peer sends (lg_hs_msg: proposal, vote,
 * NEW-VIEW) and the safety state read back from disk. The first byte picks
 * the decoder. Oracle: the encodings are canonical, so whatever decodes
 * encodes back to exactly the input. */
#include <string.h>

#include "cm_err.h"
#include "fuzz.h"
#include "lg_hotstuff.h"

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
		lg_hs_safety st;
		if (lg_hs_safety_decode(p, n, &st) == CM_OK) {
			FUZZ_REENCODES(lg_hs_safety_size(&st), lg_hs_safety_encode(&st, out, n, &len), out, len, p, n);
		}
	} else {
		lg_hs_msg m;
		if (lg_hs_msg_decode(p, n, &m) == CM_OK) {
			FUZZ_REENCODES(lg_hs_msg_size(&m), lg_hs_msg_encode(&m, out, n, &len), out, len, p, n);
		}
	}
	free(out);
	return 0;
}
