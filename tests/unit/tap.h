/* A minimal TAP producer for muri's C tests: meson reads the "ok N" /
 * "not ok N" lines (protocol: 'tap'). A failed check prints the file, line
 * and expression, and the test goes on; the exit status is 1 if any failed. */
#ifndef MURI_TAP_H
#define MURI_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed, tap_case_failed;
static const char *tap_case;

#define TAP_CHECK(expr)                                                          \
	do {                                                                     \
		if (!(expr)) {                                                   \
			tap_case_failed = 1;                                     \
			printf("# %s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
			fflush(stdout);                                          \
		}                                                                \
	} while (0)

/* Like TAP_CHECK for two integers, printing both values on failure. */
#define TAP_EQ(a, b)                                                             \
	do {                                                                     \
		long long tap_a_ = (long long)(a), tap_b_ = (long long)(b);      \
		if (tap_a_ != tap_b_) {                                          \
			tap_case_failed = 1;                                     \
			printf("# %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, \
			       __LINE__, #a, #b, tap_a_, tap_b_);                \
			fflush(stdout);                                          \
		}                                                                \
	} while (0)

#define TAP_STREQ(a, b)                                                          \
	do {                                                                     \
		const char *tap_a_ = (a), *tap_b_ = (b);                         \
		if (!tap_a_ || !tap_b_ || strcmp(tap_a_, tap_b_) != 0) {         \
			tap_case_failed = 1;                                     \
			printf("# %s:%d: %s == %s failed: \"%s\" != \"%s\"\n",   \
			       __FILE__, __LINE__, #a, #b, tap_a_ ? tap_a_ : "(null)", \
			       tap_b_ ? tap_b_ : "(null)");                      \
			fflush(stdout);                                          \
		}                                                                \
	} while (0)

static inline void tap_begin(const char *name)
{
	tap_case = name;
	tap_case_failed = 0;
}

static inline void tap_end(void)
{
	tap_n++;
	if (tap_case_failed)
		tap_failed++;
	printf("%sok %d - %s\n", tap_case_failed ? "not " : "", tap_n, tap_case);
	fflush(stdout);
}

/* Runs fn as one TAP test case named after it. */
#define TAP_RUN(fn)                                                              \
	do {                                                                     \
		tap_begin(#fn);                                                  \
		fn();                                                            \
		tap_end();                                                       \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
