/* Tests of common/cm_uuid: generated ids are unique, version 4 variant 10xx
 * and random in every other position; format and parse round-trip; known
 * values; every kind of malformed string is rejected. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_uuid.h"

#define COUNT 10000

static int cmp_uuid(const void *a, const void *b)
{
	return memcmp(a, b, CM_UUID_BYTES);
}

static void test_generate_unique_and_v4(void)
{
	static cm_uuid ids[COUNT];
	static char str[COUNT][CM_UUID_CHARS + 1];
	unsigned seen[CM_UUID_CHARS] = {0}; /* bit v set when hex digit v seen at a position */
	size_t bad_shape = 0, bad_roundtrip = 0, dups = 0;

	for (size_t i = 0; i < COUNT; i++) {
		cm_uuid back;
		cm_uuid_v4(&ids[i]);
		cm_uuid_format(&ids[i], str[i]);
		bad_shape += (ids[i].b[6] >> 4) != 4 || (ids[i].b[8] >> 6) != 2;
		bad_shape += strlen(str[i]) != CM_UUID_CHARS || str[i][14] != '4' ||
			     !strchr("89ab", str[i][19]) || str[i][8] != '-' || str[i][13] != '-' ||
			     str[i][18] != '-' || str[i][23] != '-';
		for (size_t c = 0; c < CM_UUID_CHARS; c++) {
			const char *d = strchr("0123456789abcdef", str[i][c]);
			if (d && str[i][c])
				seen[c] |= 1u << (d - "0123456789abcdef");
		}
		if (cm_uuid_parse(&back, str[i]) != CM_OK ||
		    memcmp(back.b, ids[i].b, CM_UUID_BYTES) != 0)
			bad_roundtrip++;
		bad_roundtrip += cm_uuid_validate(str[i]) != CM_OK;
	}
	TAP_EQ(bad_shape, 0);
	TAP_EQ(bad_roundtrip, 0);

	qsort(ids, COUNT, sizeof(ids[0]), cmp_uuid);
	for (size_t i = 1; i < COUNT; i++)
		dups += memcmp(ids[i - 1].b, ids[i].b, CM_UUID_BYTES) == 0;
	TAP_EQ(dups, 0);

	/* the 30 random hex positions take all 16 values, the variant position
	 * all of 8 9 a b, and the version position only 4 */
	for (size_t c = 0; c < CM_UUID_CHARS; c++) {
		if (c == 8 || c == 13 || c == 18 || c == 23)
			TAP_EQ(seen[c], 0);
		else if (c == 14)
			TAP_EQ(seen[c], 1u << 4);
		else if (c == 19)
			TAP_EQ(seen[c], 0xf00u);
		else
			TAP_EQ(seen[c], 0xffffu);
	}
}

static void test_known_values(void)
{
	static const uint8_t want[CM_UUID_BYTES] = {0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b,
						    0x42, 0xd3, 0xa4, 0x56, 0x42, 0x66,
						    0x14, 0x17, 0x40, 0x00};
	char s[CM_UUID_CHARS + 1];
	cm_uuid u;

	TAP_EQ(cm_uuid_parse(&u, "123e4567-e89b-42d3-a456-426614174000"), CM_OK);
	TAP_CHECK(memcmp(u.b, want, CM_UUID_BYTES) == 0);
	cm_uuid_format(&u, s);
	TAP_STREQ(s, "123e4567-e89b-42d3-a456-426614174000");

	/* upper case and mixed case parse; formatting is lower case */
	memset(&u, 0, sizeof(u));
	TAP_EQ(cm_uuid_parse(&u, "123E4567-E89B-42D3-A456-426614174000"), CM_OK);
	TAP_CHECK(memcmp(u.b, want, CM_UUID_BYTES) == 0);
	TAP_EQ(cm_uuid_parse(&u, "123e4567-E89b-42D3-a456-426614174000"), CM_OK);
	cm_uuid_format(&u, s);
	TAP_STREQ(s, "123e4567-e89b-42d3-a456-426614174000");

	/* every variant digit 8 9 a b and the extremes of the random bits */
	TAP_EQ(cm_uuid_validate("00000000-0000-4000-8000-000000000000"), CM_OK);
	TAP_EQ(cm_uuid_validate("ffffffff-ffff-4fff-9fff-ffffffffffff"), CM_OK);
	TAP_EQ(cm_uuid_validate("FFFFFFFF-FFFF-4FFF-AFFF-FFFFFFFFFFFF"), CM_OK);
	TAP_EQ(cm_uuid_validate("01234567-89ab-4cde-bf01-23456789abcd"), CM_OK);
	TAP_EQ(cm_uuid_validate("00000000-0000-4000-B000-000000000000"), CM_OK);
}

static void test_malformed_rejected(void)
{
	static const char *const bad[] = {
		"",
		"123e4567-e89b-42d3-a456-42661417400",    /* 35 chars */
		"123e4567-e89b-42d3-a456-4266141740000",  /* 37 chars */
		"123e4567-e89b-42d3-a456-426614174000\n", /* trailing newline */
		" 123e4567-e89b-42d3-a456-426614174000",  /* leading space */
		"123e4567e89b42d3a456426614174000",       /* no dashes */
		"123e4567e-89b-42d3-a456-426614174000",   /* dash moved */
		"123e4567-e89b-42d3-a4564-26614174000",   /* dash moved */
		"123e4567_e89b_42d3_a456_426614174000",   /* not dashes */
		"123e4567-e89b-42d3-a456-42661417400g",   /* non-hex */
		"123e4567-e89b-42d3-a456-42661417400 ",   /* space */
		"z23e4567-e89b-42d3-a456-426614174000",   /* non-hex */
		"123e4567-e89b-42d3-a456--26614174000",   /* dash for a digit */
		"+23e4567-e89b-42d3-a456-426614174000",   /* sign */
		"{23e4567-e89b-42d3-a456-42661417400}",   /* braces */
		"123e4567-e89b-12d3-a456-426614174000",   /* version 1 */
		"123e4567-e89b-52d3-a456-426614174000",   /* version 5 */
		"123e4567-e89b-72d3-a456-426614174000",   /* version 7 */
		"00000000-0000-0000-0000-000000000000",   /* nil */
		"ffffffff-ffff-ffff-ffff-ffffffffffff",   /* max */
		"123e4567-e89b-42d3-7456-426614174000",   /* variant 0xxx (NCS) */
		"123e4567-e89b-42d3-c456-426614174000",   /* variant 110x (Microsoft) */
		"123e4567-e89b-42d3-f456-426614174000",   /* variant 111x */
		"urn:uuid:123e4567-e89b-42d3-a456-426614174000",
	};
	cm_uuid u, keep;
	memset(&keep, 0x5a, sizeof(keep));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		u = keep;
		TAP_EQ(cm_uuid_parse(&u, bad[i]), CM_ERR_INVALID);
		TAP_EQ(cm_uuid_validate(bad[i]), CM_ERR_INVALID);
		TAP_CHECK(memcmp(&u, &keep, sizeof(u)) == 0); /* untouched on failure */
		if (cm_uuid_validate(bad[i]) != CM_ERR_INVALID)
			printf("# accepted: \"%s\"\n", bad[i]);
	}
	TAP_EQ(cm_uuid_parse(&u, NULL), CM_ERR_INVALID);
	TAP_EQ(cm_uuid_validate(NULL), CM_ERR_INVALID);

	/* an embedded NUL makes the string short */
	char s[CM_UUID_CHARS + 1];
	memcpy(s, "123e4567-e89b-42d3-a456-426614174000", sizeof(s));
	s[20] = '\0';
	TAP_EQ(cm_uuid_validate(s), CM_ERR_INVALID);

	/* every single-character substitution by a non-hex character fails */
	size_t accepted = 0;
	for (size_t i = 0; i < CM_UUID_CHARS; i++) {
		memcpy(s, "123e4567-e89b-42d3-a456-426614174000", sizeof(s));
		s[i] = (s[i] == '-') ? '0' : 'x';
		accepted += cm_uuid_validate(s) != CM_ERR_INVALID;
	}
	TAP_EQ(accepted, 0);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_generate_unique_and_v4);
	TAP_RUN(test_known_values);
	TAP_RUN(test_malformed_rejected);
	return tap_done();
}
