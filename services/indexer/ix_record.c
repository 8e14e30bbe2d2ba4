/* Canonical bytes of a fragment write record (the Merkle leaf), their
 * validating decoder, UUIDv4 text, and conversion to and from protobuf-c. */
#include "ix_record.h"
#include "cm_err.h"
#include "cm_uuid.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ix_errf(int code, char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

int ix_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t extra;
		uint32_t cp, min;
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			extra = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			extra = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			extra = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i <= extra)
			return 0;
		for (size_t j = 1; j <= extra; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += extra + 1;
	}
	return 1;
}

/* ---- UUIDs: byte-array views of common/cm_uuid ---- */

int ix_uuid_is_v4(const uint8_t id[IX_ID_BYTES])
{
	return (id[6] & 0xf0) == 0x40 && (id[8] & 0xc0) == 0x80;
}

int ix_uuid_parse(const char *s, uint8_t out[IX_ID_BYTES])
{
	cm_uuid u;
	if (!s || cm_uuid_parse(&u, s) != CM_OK)
		return CM_ERR_INVALID;
	memcpy(out, u.b, IX_ID_BYTES);
	return CM_OK;
}

void ix_uuid_format(const uint8_t id[IX_ID_BYTES], char out[IX_UUID_CHARS + 1])
{
	cm_uuid u;
	memcpy(u.b, id, IX_ID_BYTES);
	cm_uuid_format(&u, out);
}

/* ---- validation ---- */

static int key_cmp(const ix_field *a, const ix_field *b)
{
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, n);
	if (c)
		return c;
	return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

static int value_check(const ix_value *v, const char *what, const char *key, char *err, size_t errlen)
{
	switch (v->type) {
	case IX_V_STRING:
		if (!v->u.str.s || v->u.str.len > IX_META_STRING_MAX)
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s[\"%s\"]: string of %u bytes (max %d)",
				       what, key, v->u.str.len, IX_META_STRING_MAX);
		if (!ix_utf8_valid(v->u.str.s, v->u.str.len))
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s[\"%s\"]: string is not UTF-8 (or holds NUL)",
				       what, key);
		return CM_OK;
	case IX_V_NUMBER:
		if (!isfinite(v->u.num))
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s[\"%s\"]: number is not finite", what, key);
		return CM_OK;
	case IX_V_BOOL:
		if (v->u.b != 0 && v->u.b != 1)
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s[\"%s\"]: bool is not 0 or 1", what, key);
		return CM_OK;
	case IX_V_INT:
		return CM_OK;
	}
	return ix_errf(CM_ERR_INVALID, err, errlen, "%s[\"%s\"]: value has no type", what, key);
}

static int fields_check(const ix_field *f, uint32_t n, char *err, size_t errlen)
{
	if (n > IX_META_FIELDS_MAX)
		return ix_errf(CM_ERR_INVALID, err, errlen, "metadata: %u fields (max %d)", n, IX_META_FIELDS_MAX);
	for (uint32_t i = 0; i < n; i++) {
		if (!f[i].key || f[i].key_len < 1 || f[i].key_len > IX_META_KEY_MAX ||
		    !ix_utf8_valid(f[i].key, f[i].key_len))
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "metadata: key %u must be 1..%d bytes of UTF-8", i, IX_META_KEY_MAX);
		if (i > 0 && key_cmp(&f[i - 1], &f[i]) >= 0)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "metadata: keys not sorted or duplicated at \"%s\"", f[i].key);
		int rc = value_check(&f[i].v, "metadata", f[i].key, err, errlen);
		if (rc)
			return rc;
	}
	return CM_OK;
}

int ix_record_validate(const ix_record *r, uint32_t dim, char *err, size_t errlen)
{
	if (r->op != IX_OP_INSERT && r->op != IX_OP_UPDATE && r->op != IX_OP_DELETE)
		return ix_errf(CM_ERR_INVALID, err, errlen, "op: unknown operation %d", r->op);
	if (!ix_uuid_is_v4(r->id))
		return ix_errf(CM_ERR_INVALID, err, errlen, "id: not a UUIDv4");
	if (r->op == IX_OP_DELETE) {
		if (r->dim != 0 || r->nfields != 0)
			return ix_errf(CM_ERR_INVALID, err, errlen, "vector: a delete carries no vector or metadata");
		return CM_OK;
	}
	if (r->bin) {
		if (r->vec || r->dim < 8 || r->dim > IX_BITS_MAX || r->dim % 8)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "vector.binary: %u bits (need a multiple of 8 in 8..%d, and no values)", r->dim,
				       IX_BITS_MAX);
		if (dim && r->dim != dim)
			return ix_errf(CM_ERR_INVALID, err, errlen,
				       "vector.binary: %u bytes, the fragment's dimension is %u bits (%u bytes)",
				       r->dim / 8, dim, dim / 8);
		return fields_check(r->fields, r->nfields, err, errlen);
	}
	if (r->dim < 1 || r->dim > IX_DIM_MAX || !r->vec)
		return ix_errf(CM_ERR_INVALID, err, errlen, "vector: %u values (need 1..%d)", r->dim, IX_DIM_MAX);
	if (dim && r->dim != dim)
		return ix_errf(CM_ERR_INVALID, err, errlen, "vector: %u values, the fragment's dimension is %u",
			       r->dim, dim);
	for (uint32_t i = 0; i < r->dim; i++)
		if (!isfinite(r->vec[i]))
			return ix_errf(CM_ERR_INVALID, err, errlen, "vector: value %u is not finite", i);
	return fields_check(r->fields, r->nfields, err, errlen);
}

/* ---- encoding ---- */

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 8;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 4;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	return p + 2;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

size_t ix_record_encoded_size(const ix_record *r)
{
	size_t n = IX_RECORD_HEADER_BYTES + (r->bin ? (size_t)r->dim / 8 : 4 * (size_t)r->dim);
	for (uint32_t i = 0; i < r->nfields; i++) {
		n += 1 + r->fields[i].key_len + 1;
		switch (r->fields[i].v.type) {
		case IX_V_STRING: n += 2 + r->fields[i].v.u.str.len; break;
		case IX_V_BOOL: n += 1; break;
		default: n += 8; break;
		}
	}
	return n;
}

size_t ix_record_encode(const ix_record *r, uint8_t *buf)
{
	uint8_t *p = buf;
	*p++ = r->bin ? IX_RECORD_FORMAT_BINARY : IX_RECORD_FORMAT;
	p = put_u64(p, r->seq);
	p = put_u64(p, r->epoch);
	*p++ = (uint8_t)r->op;
	memcpy(p, r->id, IX_ID_BYTES);
	p += IX_ID_BYTES;
	p = put_u64(p, r->version);
	p = put_u32(p, r->dim);
	if (r->bin) {
		memcpy(p, r->bin, r->dim / 8);
		p += r->dim / 8;
	}
	for (uint32_t i = 0; !r->bin && i < r->dim; i++) {
		uint32_t bits;
		memcpy(&bits, &r->vec[i], 4);
		p = put_u32(p, bits);
	}
	p = put_u16(p, (uint16_t)r->nfields);
	for (uint32_t i = 0; i < r->nfields; i++) {
		const ix_field *f = &r->fields[i];
		uint64_t bits;
		*p++ = (uint8_t)f->key_len;
		memcpy(p, f->key, f->key_len);
		p += f->key_len;
		*p++ = (uint8_t)f->v.type;
		switch (f->v.type) {
		case IX_V_STRING:
			p = put_u16(p, (uint16_t)f->v.u.str.len);
			memcpy(p, f->v.u.str.s, f->v.u.str.len);
			p += f->v.u.str.len;
			break;
		case IX_V_NUMBER:
			memcpy(&bits, &f->v.u.num, 8);
			p = put_u64(p, bits);
			break;
		case IX_V_BOOL:
			*p++ = (uint8_t)f->v.u.b;
			break;
		default:
			p = put_u64(p, (uint64_t)f->v.u.i);
			break;
		}
	}
	return (size_t)(p - buf);
}

void ix_record_leaf_hash(const uint8_t *buf, size_t len, uint8_t out[CM_MERKLE_HASH_BYTES])
{
	cm_merkle_blake2b.leaf(out, buf, len);
}

/* ---- decoding ---- */

typedef struct rd {
	const uint8_t *p, *end;
} rd;

static int need(rd *r, size_t n)
{
	return (size_t)(r->end - r->p) >= n;
}

#define DEC_FAIL(...) ix_errf(CM_ERR_INVALID, err, errlen, "record bytes: " __VA_ARGS__)

int ix_record_decode(const uint8_t *buf, size_t len, cm_arena *a, ix_record *out, char *err, size_t errlen)
{
	rd r = {buf, buf + len};
	ix_record rec = {0};
	if (!need(&r, IX_RECORD_HEADER_BYTES))
		return DEC_FAIL("%zu bytes, shorter than a header", len);
	int binary = *r.p == IX_RECORD_FORMAT_BINARY;
	if (*r.p != IX_RECORD_FORMAT && !binary)
		return DEC_FAIL("unknown format %u", buf[0]);
	r.p++;
	rec.seq = get_u64(r.p), r.p += 8;
	rec.epoch = get_u64(r.p), r.p += 8;
	rec.op = *r.p++;
	memcpy(rec.id, r.p, IX_ID_BYTES), r.p += IX_ID_BYTES;
	rec.version = get_u64(r.p), r.p += 8;
	rec.dim = get_u32(r.p), r.p += 4;
	if (binary) {
		/* a binary vector: dim bits in dim / 8 bytes (never a delete) */
		if (rec.dim < 8 || rec.dim > IX_BITS_MAX || rec.dim % 8 || !need(&r, (size_t)rec.dim / 8 + 2))
			return DEC_FAIL("binary vector of %u bits does not fit", rec.dim);
		uint8_t *b = cm_arena_alloc(a, rec.dim / 8);
		if (!b)
			return CM_ERR_NOMEM;
		memcpy(b, r.p, rec.dim / 8);
		r.p += rec.dim / 8;
		rec.bin = b;
	} else if (rec.dim > IX_DIM_MAX || !need(&r, 4 * (size_t)rec.dim + 2))
		return DEC_FAIL("vector of %u values does not fit", rec.dim);
	if (rec.dim && !binary) {
		float *v = cm_arena_alloc(a, 4 * (size_t)rec.dim);
		if (!v)
			return CM_ERR_NOMEM;
		for (uint32_t i = 0; i < rec.dim; i++) {
			uint32_t bits = get_u32(r.p);
			memcpy(&v[i], &bits, 4);
			r.p += 4;
		}
		rec.vec = v;
	}
	rec.nfields = get_u16(r.p), r.p += 2;
	if (rec.nfields > IX_META_FIELDS_MAX)
		return DEC_FAIL("%u metadata fields", rec.nfields);
	if (rec.nfields) {
		ix_field *f = cm_arena_alloc(a, rec.nfields * sizeof(*f));
		if (!f)
			return CM_ERR_NOMEM;
		for (uint32_t i = 0; i < rec.nfields; i++) {
			if (!need(&r, 2))
				return DEC_FAIL("field %u truncated", i);
			uint32_t kl = *r.p++;
			if (kl < 1 || !need(&r, kl + 1))
				return DEC_FAIL("field %u key truncated", i);
			char *key = cm_arena_alloc(a, kl + 1);
			if (!key)
				return CM_ERR_NOMEM;
			memcpy(key, r.p, kl);
			r.p += kl;
			f[i].key = key;
			f[i].key_len = kl;
			f[i].v.type = *r.p++;
			switch (f[i].v.type) {
			case IX_V_STRING: {
				if (!need(&r, 2))
					return DEC_FAIL("field %u truncated", i);
				uint32_t sl = get_u16(r.p);
				r.p += 2;
				if (!need(&r, sl))
					return DEC_FAIL("field %u string truncated", i);
				char *s = cm_arena_alloc(a, sl + 1);
				if (!s)
					return CM_ERR_NOMEM;
				memcpy(s, r.p, sl);
				r.p += sl;
				f[i].v.u.str.s = s;
				f[i].v.u.str.len = sl;
				break;
			}
			case IX_V_NUMBER: {
				if (!need(&r, 8))
					return DEC_FAIL("field %u truncated", i);
				uint64_t bits = get_u64(r.p);
				r.p += 8;
				memcpy(&f[i].v.u.num, &bits, 8);
				break;
			}
			case IX_V_BOOL:
				if (!need(&r, 1))
					return DEC_FAIL("field %u truncated", i);
				f[i].v.u.b = *r.p++;
				break;
			case IX_V_INT:
				if (!need(&r, 8))
					return DEC_FAIL("field %u truncated", i);
				f[i].v.u.i = (int64_t)get_u64(r.p);
				r.p += 8;
				break;
			default:
				return DEC_FAIL("field %u has unknown type %d", i, f[i].v.type);
			}
		}
		rec.fields = f;
	}
	if (r.p != r.end)
		return DEC_FAIL("%zu bytes after the record", (size_t)(r.end - r.p));
	char why[200];
	if (ix_record_validate(&rec, 0, why, sizeof(why)) != CM_OK)
		return DEC_FAIL("%s", why);
	*out = rec;
	return CM_OK;
}

/* ---- protobuf-c ---- */

int ix_value_from_pb(const Muri__V1__Value *pb, const char *field_name, ix_value *out, char *err, size_t errlen)
{
	ix_value v = {0};
	if (!pb)
		return ix_errf(CM_ERR_INVALID, err, errlen, "%s: value missing", field_name);
	switch (pb->kind_case) {
	case MURI__V1__VALUE__KIND_STRING_VALUE: {
		size_t n = pb->string_value ? strlen(pb->string_value) : 0;
		if (n > IX_META_STRING_MAX)
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s: string of %zu bytes (max %d)", field_name,
				       n, IX_META_STRING_MAX);
		if (!ix_utf8_valid(pb->string_value ? pb->string_value : "", n))
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s: string is not UTF-8", field_name);
		v.type = IX_V_STRING;
		v.u.str.s = pb->string_value ? pb->string_value : "";
		v.u.str.len = (uint32_t)n;
		break;
	}
	case MURI__V1__VALUE__KIND_NUMBER_VALUE:
		if (!isfinite(pb->number_value))
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s: number is not finite", field_name);
		v.type = IX_V_NUMBER;
		v.u.num = pb->number_value;
		break;
	case MURI__V1__VALUE__KIND_BOOL_VALUE:
		v.type = IX_V_BOOL;
		v.u.b = pb->bool_value ? 1 : 0;
		break;
	case MURI__V1__VALUE__KIND_INT_VALUE:
		v.type = IX_V_INT;
		v.u.i = pb->int_value;
		break;
	default:
		return ix_errf(CM_ERR_INVALID, err, errlen, "%s: value has no kind set", field_name);
	}
	*out = v;
	return CM_OK;
}

static int field_qsort_cmp(const void *a, const void *b)
{
	return key_cmp(a, b);
}

int ix_meta_from_pb(const Muri__V1__Metadata *pb, cm_arena *a, const char *prefix, ix_field **fields,
		    uint32_t *nfields, char *err, size_t errlen)
{
	char name[IX_META_KEY_MAX + 64];
	size_t n = pb ? pb->n_fields : 0;
	ix_field *f = NULL;
	if (n > IX_META_FIELDS_MAX)
		return ix_errf(CM_ERR_INVALID, err, errlen, "%s: %zu fields (max %d)", prefix, n,
			       IX_META_FIELDS_MAX);
	if (n) {
		f = cm_arena_alloc(a, n * sizeof(*f));
		if (!f)
			return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const Muri__V1__Metadata__FieldsEntry *e = pb->fields[i];
		size_t kl = e && e->key ? strlen(e->key) : 0;
		if (kl < 1 || kl > IX_META_KEY_MAX || !ix_utf8_valid(e->key, kl))
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s: key %zu must be 1..%d bytes of UTF-8",
				       prefix, i, IX_META_KEY_MAX);
		snprintf(name, sizeof(name), "%s[\"%s\"]", prefix, e->key);
		int rc = ix_value_from_pb(e->value, name, &f[i].v, err, errlen);
		if (rc)
			return rc;
		f[i].key = e->key;
		f[i].key_len = (uint32_t)kl;
	}
	if (n > 1)
		qsort(f, n, sizeof(*f), field_qsort_cmp);
	for (size_t i = 1; i < n; i++)
		if (key_cmp(&f[i - 1], &f[i]) == 0)
			return ix_errf(CM_ERR_INVALID, err, errlen, "%s[\"%s\"]: duplicate key", prefix, f[i].key);
	*fields = f;
	*nfields = (uint32_t)n;
	return CM_OK;
}

int ix_record_from_pb(const Muri__V1__LogRecord *pb, uint32_t dim, cm_arena *a, ix_record *out, char *err,
		      size_t errlen)
{
	ix_record r = {0};
	r.seq = pb->seq;
	r.epoch = pb->epoch;
	r.op = (int)pb->op;
	r.version = pb->version;
	if (ix_uuid_parse(pb->id, r.id) != CM_OK)
		return ix_errf(CM_ERR_INVALID, err, errlen, "id: \"%.40s\" is not a UUIDv4", pb->id ? pb->id : "");
	if (r.op == IX_OP_DELETE) {
		if ((pb->vector && (pb->vector->n_values || pb->vector->binary.len)) ||
		    (pb->metadata && pb->metadata->n_fields))
			return ix_errf(CM_ERR_INVALID, err, errlen, "vector: a delete carries no vector or metadata");
	} else if (pb->vector && pb->vector->binary.len) {
		if (pb->vector->n_values)
			return ix_errf(CM_ERR_INVALID, err, errlen, "vector: both values and binary given");
		if (pb->vector->binary.len > IX_BITS_MAX / 8)
			return ix_errf(CM_ERR_INVALID, err, errlen, "vector.binary: %zu bytes (max %d)",
				       pb->vector->binary.len, IX_BITS_MAX / 8);
		r.dim = (uint32_t)pb->vector->binary.len * 8;
		r.bin = pb->vector->binary.data;
		ix_field *f = NULL;
		int rc = ix_meta_from_pb(pb->metadata, a, "metadata", &f, &r.nfields, err, errlen);
		if (rc)
			return rc;
		r.fields = f;
	} else {
		if (!pb->vector || pb->vector->n_values == 0)
			return ix_errf(CM_ERR_INVALID, err, errlen, "vector: missing");
		if (pb->vector->n_values > IX_DIM_MAX)
			return ix_errf(CM_ERR_INVALID, err, errlen, "vector: %zu values (max %d)",
				       pb->vector->n_values, IX_DIM_MAX);
		r.dim = (uint32_t)pb->vector->n_values;
		r.vec = pb->vector->values;
		ix_field *f = NULL;
		int rc = ix_meta_from_pb(pb->metadata, a, "metadata", &f, &r.nfields, err, errlen);
		if (rc)
			return rc;
		r.fields = f;
	}
	int rc = ix_record_validate(&r, dim, err, errlen);
	if (rc)
		return rc;
	*out = r;
	return CM_OK;
}

int ix_value_to_pb(const ix_value *v, cm_arena *a, Muri__V1__Value **out)
{
	Muri__V1__Value *pv = cm_arena_alloc(a, sizeof(*pv));
	if (!pv)
		return CM_ERR_NOMEM;
	muri__v1__value__init(pv);
	switch (v->type) {
	case IX_V_STRING:
		pv->kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
		pv->string_value = (char *)v->u.str.s;
		break;
	case IX_V_NUMBER:
		pv->kind_case = MURI__V1__VALUE__KIND_NUMBER_VALUE;
		pv->number_value = v->u.num;
		break;
	case IX_V_BOOL:
		pv->kind_case = MURI__V1__VALUE__KIND_BOOL_VALUE;
		pv->bool_value = v->u.b;
		break;
	case IX_V_INT:
		pv->kind_case = MURI__V1__VALUE__KIND_INT_VALUE;
		pv->int_value = v->u.i;
		break;
	default:
		return CM_ERR_INVALID;
	}
	*out = pv;
	return CM_OK;
}

int ix_meta_to_pb(const ix_field *fields, uint32_t n, cm_arena *a, Muri__V1__Metadata **out)
{
	Muri__V1__Metadata *m = cm_arena_alloc(a, sizeof(*m));
	if (!m)
		return CM_ERR_NOMEM;
	muri__v1__metadata__init(m);
	if (n) {
		m->fields = cm_arena_alloc(a, n * sizeof(*m->fields));
		if (!m->fields)
			return CM_ERR_NOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		Muri__V1__Metadata__FieldsEntry *e = cm_arena_alloc(a, sizeof(*e));
		if (!e)
			return CM_ERR_NOMEM;
		muri__v1__metadata__fields_entry__init(e);
		e->key = (char *)fields[i].key;
		int rc = ix_value_to_pb(&fields[i].v, a, &e->value);
		if (rc)
			return rc;
		m->fields[i] = e;
	}
	m->n_fields = n;
	*out = m;
	return CM_OK;
}

int ix_record_to_pb(const ix_record *r, cm_arena *a, Muri__V1__LogRecord **out)
{
	Muri__V1__LogRecord *pb = cm_arena_alloc(a, sizeof(*pb));
	char *id = cm_arena_alloc(a, IX_UUID_CHARS + 1);
	if (!pb || !id)
		return CM_ERR_NOMEM;
	muri__v1__log_record__init(pb);
	pb->seq = r->seq;
	pb->epoch = r->epoch;
	pb->op = (Muri__V1__RecordOp)r->op;
	ix_uuid_format(r->id, id);
	pb->id = id;
	pb->version = r->version;
	if (r->op != IX_OP_DELETE) {
		Muri__V1__Vector *v = cm_arena_alloc(a, sizeof(*v));
		if (!v)
			return CM_ERR_NOMEM;
		muri__v1__vector__init(v);
		if (r->bin) {
			v->binary.len = r->dim / 8;
			v->binary.data = (uint8_t *)r->bin;
		} else {
			v->n_values = r->dim;
			v->values = (float *)r->vec;
		}
		pb->vector = v;
		int rc = ix_meta_to_pb(r->fields, r->nfields, a, &pb->metadata);
		if (rc)
			return rc;
	}
	*out = pb;
	return CM_OK;
}
