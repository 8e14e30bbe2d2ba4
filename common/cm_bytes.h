/* Fixed-width big-endian fields and protobuf varints: the one place byte
 * order is written. Every canonical encoding (blocks, votes, write sets,
 * digests, records) builds on these. */
#ifndef CM_BYTES_H
#define CM_BYTES_H

#include <stddef.h>
#include <stdint.h>

#define CM_VARINT_MAX_BYTES 10

static inline void cm_put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline void cm_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint32_t cm_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t cm_get_be64(const uint8_t *p)
{
	return (uint64_t)cm_get_be32(p) << 32 | cm_get_be32(p + 4);
}

/* Writes v as a protobuf varint at p (room for CM_VARINT_MAX_BYTES);
 * returns the bytes written. */
static inline size_t cm_put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

#endif
