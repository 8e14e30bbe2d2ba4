/* What every libFuzzer target of tests/fuzz/ shares: the entry point's
 * declaration and a check that aborts (so libFuzzer keeps the input as a
 * crash) when an oracle is broken, naming it. */
#ifndef MURI_FUZZ_H
#define MURI_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: oracle broken: %s\n", __FILE__, __LINE__, \
				#cond);                                               \
			abort();                                                      \
		}                                                                     \
	} while (0)

#endif
