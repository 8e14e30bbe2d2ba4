/* A fragment's write record and its canonical bytes, the leaf of the
 * fragment's Merkle log: encoding, decoding with full validation, and
 * conversion to and from the protobuf-c LogRecord / Metadata / Value types. */
#ifndef IX_RECORD_H
#define IX_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "cm_arena.h"
#include "cm_merkle.h"
#include "indexer.pb-c.h"
#include "types.pb-c.h"

#define IX_RECORD_FORMAT 1        /* first byte of every encoded record... */
#define IX_RECORD_FORMAT_BINARY 2 /* ...but an insert or update of a binary vector (HAMMING) */
#define IX_ID_BYTES 16            /* a UUIDv4 */
#define IX_UUID_CHARS 36          /* 8-4-4-4-12 hex, no NUL */
#define IX_DIM_MAX 4096
#define IX_BITS_MAX 65536         /* bits of a binary vector (a multiple of 8) */
#define IX_META_FIELDS_MAX 64
#define IX_META_KEY_MAX 128
#define IX_META_STRING_MAX 4096
/* Fixed part: format, seq, epoch, op, id, version, dim, nfields. */
#define IX_RECORD_HEADER_BYTES (1 + 8 + 8 + 1 + IX_ID_BYTES + 8 + 4 + 2)
/* The largest encoded record: full vector and 64 fields of maximal size. */
#define IX_RECORD_MAX_BYTES                                                    \
	(IX_RECORD_HEADER_BYTES + 4 * IX_DIM_MAX +                             \
	 IX_META_FIELDS_MAX * (1 + IX_META_KEY_MAX + 1 + 2 + IX_META_STRING_MAX))

enum ix_op {
	IX_OP_INSERT = 0, /* same numbers as muri.v1.RecordOp */
	IX_OP_UPDATE = 1,
	IX_OP_DELETE = 2,
};

/* Metadata value types, numbered as the oneof cases of muri.v1.Value. */
enum ix_vtype {
	IX_V_STRING = 1,
	IX_V_NUMBER = 2, /* double, finite */
	IX_V_BOOL = 3,
	IX_V_INT = 4,    /* int64 */
};

typedef struct ix_value {
	int type; /* enum ix_vtype */
	union {
		struct {
			const char *s; /* NUL-terminated, valid UTF-8 without NUL */
			uint32_t len;  /* bytes, <= IX_META_STRING_MAX */
		} str;
		double num;
		int b; /* 0 or 1 */
		int64_t i;
	} u;
} ix_value;

typedef struct ix_field {
	const char *key; /* 1..IX_META_KEY_MAX bytes of UTF-8, no NUL */
	uint32_t key_len;
	ix_value v;
} ix_field;

/* One write. Pointers are borrowed: from the decoded bytes' arena, the
 * protobuf message, or the caller. Fields are sorted by key (bytewise) and
 * unique; inserts and updates carry a vector, deletes carry neither vector
 * nor fields. */
typedef struct ix_record {
	uint64_t seq;
	uint64_t epoch;
	int op; /* enum ix_op */
	uint8_t id[IX_ID_BYTES];
	uint64_t version;
	uint32_t dim;       /* 0 for a delete; bits of a binary vector */
	const float *vec;   /* dim values, finite; NULL for a binary vector */
	const uint8_t *bin; /* a binary vector (HAMMING): dim / 8 bytes, else NULL */
	uint32_t nfields;
	const ix_field *fields;
} ix_record;

/* Checks everything the encoding requires: op, a UUIDv4 id, dim == the
 * fragment's dimension for inserts and updates (0 and no fields for deletes),
 * finite values, metadata limits, sorted unique keys, UTF-8. dim 0 skips the
 * dimension check. CM_ERR_INVALID with a message naming the field. */
int ix_record_validate(const ix_record *r, uint32_t dim, char *err, size_t errlen);

/* The size of the canonical encoding of a valid record. */
size_t ix_record_encoded_size(const ix_record *r);
/* Writes the canonical bytes of a valid record (ix_record_validate first)
 * into buf, which holds ix_record_encoded_size(r) bytes; returns that size.
 * Layout, little-endian: u8 format 1 | u64 seq | u64 epoch | u8 op |
 * 16 id | u64 version | u32 dim | dim x f32 | u16 nfields | per field in key
 * order: u8 key_len | key | u8 type | string: u16 len + bytes; number: f64;
 * bool: u8; int: i64. A binary vector's record is format 2, the same but
 * for u32 bits | bits / 8 bytes in place of the floats. */
size_t ix_record_encode(const ix_record *r, uint8_t *buf);
/* Parses canonical bytes, accepting exactly what ix_record_encode produces
 * for a valid record (so decode then encode gives the same bytes). Strings,
 * fields and the vector are allocated in a, which must outlive *out.
 * CM_ERR_INVALID with a message, CM_ERR_NOMEM. */
int ix_record_decode(const uint8_t *buf, size_t len, cm_arena *a, ix_record *out,
		     char *err, size_t errlen);
/* The Merkle leaf hash of canonical bytes: BLAKE2b-256(0x00 || bytes). */
void ix_record_leaf_hash(const uint8_t *buf, size_t len, uint8_t out[CM_MERKLE_HASH_BYTES]);

/* UUIDv4 text (either case) to 16 bytes; CM_ERR_INVALID unless it is a
 * well-formed version-4, RFC 4122 variant UUID. */
int ix_uuid_parse(const char *s, uint8_t out[IX_ID_BYTES]);
/* Lower-case 8-4-4-4-12 form into out (IX_UUID_CHARS + 1 chars). */
void ix_uuid_format(const uint8_t id[IX_ID_BYTES], char out[IX_UUID_CHARS + 1]);
/* 1 if the 16 bytes are a version-4, RFC 4122 variant UUID. */
int ix_uuid_is_v4(const uint8_t id[IX_ID_BYTES]);

/* Fills *out from a LogRecord, validated as ix_record_validate with dim. The
 * vector and strings are borrowed from pb; the sorted field array is
 * allocated in a. A missing vector is an error for inserts and updates. */
int ix_record_from_pb(const Muri__V1__LogRecord *pb, uint32_t dim, cm_arena *a, ix_record *out,
		      char *err, size_t errlen);
/* Builds a LogRecord in a (every message, string and array) that refers to
 * r's vector without copying it; r must outlive the message. */
int ix_record_to_pb(const ix_record *r, cm_arena *a, Muri__V1__LogRecord **out);

/* Metadata alone, as in ix_record_from_pb / ix_record_to_pb. field_prefix
 * names the message in errors ("metadata", "records[3].metadata"). pb may be
 * NULL (no fields). */
int ix_meta_from_pb(const Muri__V1__Metadata *pb, cm_arena *a, const char *field_prefix,
		    ix_field **fields, uint32_t *nfields, char *err, size_t errlen);
int ix_meta_to_pb(const ix_field *fields, uint32_t nfields, cm_arena *a, Muri__V1__Metadata **out);
/* One value: from_pb checks type and limits, naming field_name in errors. */
int ix_value_from_pb(const Muri__V1__Value *pb, const char *field_name, ix_value *out,
		     char *err, size_t errlen);
int ix_value_to_pb(const ix_value *v, cm_arena *a, Muri__V1__Value **out);

/* 1 if the n bytes are valid UTF-8 without NUL. */
int ix_utf8_valid(const char *s, size_t n);
/* Formats into err (if not NULL) and returns code: the pattern of every
 * error path of the indexer library. */
int ix_errf(int code, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
