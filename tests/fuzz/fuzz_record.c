/* The canonical record bytes an indexer stores, replicates, serves from
 * FetchLog and proves leaves of. Oracles: what ix_record_decode accepts
 * passes ix_record_validate and encodes back to exactly the input; the
 * answer-leaf parser the gateway and the ledger use agrees on its seq,
 * epoch, op, id, version and dimension. */
#include <string.h>

#include "cm_answer.h"
#include "cm_arena.h"
#include "cm_err.h"
#include "fuzz.h"
#include "ix_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cm_arena a;
	cm_arena_init(&a, 1u << 26);
	ix_record r;
	char err[512] = "";
	if (ix_record_decode(data, size, &a, &r, err, sizeof err) != CM_OK) {
		FUZZ_CHECK(err[0] != '\0');
		cm_arena_free(&a);
		return 0;
	}
	FUZZ_CHECK(ix_record_validate(&r, 0, err, sizeof err) == CM_OK);
	size_t n = ix_record_encoded_size(&r);
	FUZZ_CHECK(n == size);
	uint8_t *out = malloc(n ? n : 1);
	FUZZ_CHECK(out && ix_record_encode(&r, out) == n);
	FUZZ_CHECK(memcmp(out, data, n) == 0);
	free(out);

	cm_answer_leaf l;
	FUZZ_CHECK(cm_answer_leaf_parse(data, size, &l) == CM_OK);
	FUZZ_CHECK(l.seq == r.seq && l.epoch == r.epoch && l.op == (uint8_t)r.op);
	FUZZ_CHECK(memcmp(l.id, r.id, sizeof l.id) == 0);
	FUZZ_CHECK(l.version == r.version && l.dim == r.dim);
	cm_arena_free(&a);
	return 0;
}
