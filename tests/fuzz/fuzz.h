/* What every libFuzzer target of tests/fuzz/ shares: the entry point's
 * declaration and a check that aborts (so libFuzzer keeps the input as a
 * crash) when an oracle is broken, naming it. */
#ifndef MURI_FUZZ_H
#define MURI_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: oracle broken: %s\n", __FILE__, __LINE__, \
				#cond);                                               \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* Targets that hold two decoders: the input's first byte picks one (its
 * lowest bit), the rest is the encoding. Returns 0 for an empty input. */
static inline int fuzz_pick(const uint8_t *data, size_t size, int *which, const uint8_t **p, size_t *n)
{
	if (size < 1)
		return 0;
	*which = data[0] & 1;
	*p = data + 1;
	*n = size - 1;
	return 1;
}

/* Oracle of a canonical encoding: enc wrote len bytes into out (room for
 * n), the same n bytes as the input p. */
#define FUZZ_REENCODES(size_fn_result, enc_call, out, len, p, n)                   \
	do {                                                                       \
		FUZZ_CHECK((size_fn_result) == (n));                              \
		FUZZ_CHECK((enc_call) == CM_OK);                                   \
		FUZZ_CHECK((len) == (n) && memcmp((out), (p), (n)) == 0);          \
	} while (0)

#endif
