/* UUIDv4 generation, formatting and strict parsing (RFC 9562). The layout:
 * 16 bytes in network order; byte 6's high nibble is the version (4), byte
 * 8's two high bits the variant (10). */
#include "cm_uuid.h"
#include "cm_err.h"

#include <sodium.h>
#include <string.h>

#define VERSION_BYTE 6
#define VARIANT_BYTE 8
#define VERSION_4 0x40
#define VARIANT_RFC 0x80 /* the two high bits 10 */

/* 1 at the string positions that hold a dash. */
static int is_dash_pos(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void cm_uuid_v4(cm_uuid *out)
{
	randombytes_buf(out->b, CM_UUID_BYTES);
	out->b[VERSION_BYTE] = (uint8_t)((out->b[VERSION_BYTE] & 0x0f) | VERSION_4);
	out->b[VARIANT_BYTE] = (uint8_t)((out->b[VARIANT_BYTE] & 0x3f) | VARIANT_RFC);
}

void cm_uuid_format(const cm_uuid *u, char out[CM_UUID_CHARS + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t j = 0;
	for (size_t i = 0; i < CM_UUID_BYTES; i++) {
		if (is_dash_pos(j))
			out[j++] = '-';
		out[j++] = digits[u->b[i] >> 4];
		out[j++] = digits[u->b[i] & 15];
	}
	out[j] = '\0';
}

int cm_uuid_parse(cm_uuid *out, const char *s)
{
	cm_uuid u;
	size_t n = 0;

	if (!s)
		return CM_ERR_INVALID;
	/* a bounded length check: never reads past CM_UUID_CHARS + 1 */
	while (n <= CM_UUID_CHARS && s[n])
		n++;
	if (n != CM_UUID_CHARS)
		return CM_ERR_INVALID;
	for (size_t i = 0, b = 0; i < CM_UUID_CHARS; i++) {
		if (is_dash_pos(i)) {
			if (s[i] != '-')
				return CM_ERR_INVALID;
			continue;
		}
		int v = hexval(s[i]);
		if (v < 0)
			return CM_ERR_INVALID;
		if (b % 2 == 0)
			u.b[b / 2] = (uint8_t)(v << 4);
		else
			u.b[b / 2] |= (uint8_t)v;
		b++;
	}
	if ((u.b[VERSION_BYTE] & 0xf0) != VERSION_4 || (u.b[VARIANT_BYTE] & 0xc0) != VARIANT_RFC)
		return CM_ERR_INVALID;
	if (out)
		*out = u;
	return CM_OK;
}

int cm_uuid_validate(const char *s)
{
	return cm_uuid_parse(NULL, s);
}
