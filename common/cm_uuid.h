/* UUIDv4 (RFC 9562 section 5.4): random ids for vectors and requests,
 * generated from libsodium's CSPRNG, formatted as the 36-character lower-case
 * string and parsed strictly (only well-formed version-4 UUIDs pass). */
#ifndef CM_UUID_H
#define CM_UUID_H

#include <stdint.h>

#define CM_UUID_BYTES 16
#define CM_UUID_CHARS 36 /* "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx", no NUL */

typedef struct cm_uuid {
	uint8_t b[CM_UUID_BYTES];
} cm_uuid;

/* A fresh random UUID: 122 random bits, version 4, variant 10xx. Call
 * cm_crypto_init() once first. */
void cm_uuid_v4(cm_uuid *out);
/* The lower-case string form into out, which holds CM_UUID_CHARS + 1 chars
 * (NUL-terminated). */
void cm_uuid_format(const cm_uuid *u, char out[CM_UUID_CHARS + 1]);
/* Parses exactly CM_UUID_CHARS chars of hex digits (either case) and dashes at
 * positions 8, 13, 18, 23, with version nibble 4 and variant 10xx (8, 9, a or
 * b); CM_ERR_INVALID for anything else, including NULL. out may be NULL to
 * only check; it is written only on success. */
int cm_uuid_parse(cm_uuid *out, const char *s);
/* CM_OK if s is a well-formed UUIDv4 as cm_uuid_parse accepts, CM_ERR_INVALID if not. */
int cm_uuid_validate(const char *s);

#endif
