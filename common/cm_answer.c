/* The canonical digest of a search answer (cm_answer.h): sorted filter and
 * metadata encodings, the hit and answer digests, signing and verification,
 * and the fields of a canonical record a spot check compares a hit with. */
#include "cm_answer.h"
#include "cm_bytes.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "cm_uuid.h"

#include <stdlib.h>
#include <string.h>

#define LEAF_FORMAT 1
#define LEAF_FORMAT_BINARY 2 /* a HAMMING collection's inserts and updates */
#define LEAF_HEADER (1 + 8 + 8 + 1 + CM_ANSWER_ID_BYTES + 8 + 4)
#define META_KEY_MAX 255
#define META_STRING_MAX 65535

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void hash_u8(cm_hasher *h, uint8_t v)
{
	cm_hasher_update(h, &v, 1);
}

static void hash_be32(cm_hasher *h, uint32_t v)
{
	uint8_t b[4];
	cm_put_be32(b, v);
	cm_hasher_update(h, b, 4);
}

static void hash_be64(cm_hasher *h, uint64_t v)
{
	uint8_t b[8];
	cm_put_be64(b, v);
	cm_hasher_update(h, b, 8);
}

static uint64_t f64_bits(double d)
{
	uint64_t b;
	memcpy(&b, &d, 8);
	return b;
}

static uint32_t f32_bits(float f)
{
	uint32_t b;
	memcpy(&b, &f, 4);
	return b;
}

/* ---- vectors -------------------------------------------------------------- */

void cm_answer_vector_digest(uint8_t out[CM_HASH_BYTES], const float *v, uint32_t dim)
{
	cm_hasher h;
	uint8_t buf[256];
	size_t n = 0;
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_VECTOR);
	hash_be32(&h, dim);
	for (uint32_t i = 0; i < dim; i++) {
		put_le32(buf + n, f32_bits(v[i]));
		n += 4;
		if (n == sizeof(buf)) {
			cm_hasher_update(&h, buf, n);
			n = 0;
		}
	}
	cm_hasher_update(&h, buf, n);
	cm_hasher_final(&h, out);
}

void cm_answer_vector_digest_le(uint8_t out[CM_HASH_BYTES], const uint8_t *le, uint32_t dim)
{
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_VECTOR);
	hash_be32(&h, dim);
	cm_hasher_update(&h, le, (size_t)dim * 4);
	cm_hasher_final(&h, out);
}

void cm_answer_binary_digest(uint8_t out[CM_HASH_BYTES], const uint8_t *b, uint32_t nbytes)
{
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_BINARY);
	hash_be32(&h, nbytes);
	cm_hasher_update(&h, b, nbytes);
	cm_hasher_final(&h, out);
}

void cm_answer_pb_vector_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__Vector *v)
{
	if (v && v->binary.len)
		cm_answer_binary_digest(out, v->binary.data, (uint32_t)v->binary.len);
	else if (v)
		cm_answer_vector_digest(out, v->values, (uint32_t)v->n_values);
	else
		cm_answer_vector_digest(out, NULL, 0);
}

/* ---- sorting map entries by key bytes -------------------------------------- */

uint32_t cm_answer_hamming(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	uint32_t d = 0;
	size_t i = 0;
	for (; i + 8 <= nbytes; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		d += (uint32_t)__builtin_popcountll(x ^ y);
	}
	for (; i < nbytes; i++)
		d += (uint32_t)__builtin_popcount((unsigned)(a[i] ^ b[i]));
	return d;
}

static int key_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int c = memcmp(a, b, la < lb ? la : lb);
	return c ? c : la < lb ? -1 : la > lb ? 1 : 0;
}

static int meta_entry_cmp(const void *x, const void *y)
{
	const Muri__V1__Metadata__FieldsEntry *const *a = x, *const *b = y;
	return key_cmp((*a)->key, (*b)->key);
}

static int cond_entry_cmp(const void *x, const void *y)
{
	const Muri__V1__Filter__ConditionsEntry *const *a = x, *const *b = y;
	return key_cmp((*a)->key, (*b)->key);
}

/* A sorted copy of n entry pointers (free()d by the caller); CM_ERR_INVALID
 * on a duplicate or empty key. */
static int sorted_entries(void *const *entries, size_t n, int (*cmp)(const void *, const void *),
			  const char *(*key)(const void *), void ***out)
{
	void **s = malloc((n ? n : 1) * sizeof(*s));
	if (!s)
		return CM_ERR_NOMEM;
	if (n)
		memcpy(s, entries, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp);
	for (size_t i = 0; i < n; i++)
		if (!key(s[i]) || !*key(s[i]) || (i > 0 && cmp(&s[i - 1], &s[i]) == 0)) {
			free(s);
			return CM_ERR_INVALID;
		}
	*out = s;
	return CM_OK;
}

static const char *meta_key(const void *e)
{
	return ((const Muri__V1__Metadata__FieldsEntry *)e)->key;
}

static const char *cond_key(const void *e)
{
	return ((const Muri__V1__Filter__ConditionsEntry *)e)->key;
}

/* ---- metadata ---------------------------------------------------------------- */

int cm_answer_metadata_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__Metadata *m)
{
	size_t n = m ? m->n_fields : 0;
	void **s = NULL;
	if (n > 0xffff)
		return CM_ERR_INVALID;
	int rc = sorted_entries((void *const *)(m ? m->fields : NULL), n, meta_entry_cmp, meta_key, &s);
	if (rc != CM_OK)
		return rc;
	cm_hasher h;
	uint8_t b[8];
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_METADATA);
	b[0] = (uint8_t)n;
	b[1] = (uint8_t)(n >> 8);
	cm_hasher_update(&h, b, 2);
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		const Muri__V1__Metadata__FieldsEntry *e = s[i];
		size_t kl = strlen(e->key);
		const Muri__V1__Value *v = e->value;
		if (kl > META_KEY_MAX || !v) {
			rc = CM_ERR_INVALID;
			break;
		}
		hash_u8(&h, (uint8_t)kl);
		cm_hasher_update(&h, e->key, kl);
		hash_u8(&h, (uint8_t)v->kind_case);
		switch (v->kind_case) {
		case MURI__V1__VALUE__KIND_STRING_VALUE: {
			size_t sl = v->string_value ? strlen(v->string_value) : 0;
			if (sl > META_STRING_MAX) {
				rc = CM_ERR_INVALID;
				break;
			}
			b[0] = (uint8_t)sl;
			b[1] = (uint8_t)(sl >> 8);
			cm_hasher_update(&h, b, 2);
			cm_hasher_update(&h, v->string_value, sl);
			break;
		}
		case MURI__V1__VALUE__KIND_NUMBER_VALUE:
			put_le64(b, f64_bits(v->number_value));
			cm_hasher_update(&h, b, 8);
			break;
		case MURI__V1__VALUE__KIND_BOOL_VALUE:
			hash_u8(&h, v->bool_value ? 1 : 0);
			break;
		case MURI__V1__VALUE__KIND_INT_VALUE:
			put_le64(b, (uint64_t)v->int_value);
			cm_hasher_update(&h, b, 8);
			break;
		default:
			rc = CM_ERR_INVALID;
			break;
		}
	}
	free(s);
	if (rc == CM_OK)
		cm_hasher_final(&h, out);
	return rc;
}

void cm_answer_metadata_digest_le(uint8_t out[CM_HASH_BYTES], const uint8_t *fields, size_t len)
{
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_METADATA);
	cm_hasher_update(&h, fields, len);
	cm_hasher_final(&h, out);
}

/* ---- filters ------------------------------------------------------------------ */

static int hash_value(cm_hasher *h, const Muri__V1__Value *v)
{
	if (!v)
		return CM_ERR_INVALID;
	hash_u8(h, (uint8_t)v->kind_case);
	switch (v->kind_case) {
	case MURI__V1__VALUE__KIND_STRING_VALUE: {
		size_t sl = v->string_value ? strlen(v->string_value) : 0;
		hash_be32(h, (uint32_t)sl);
		cm_hasher_update(h, v->string_value, sl);
		return CM_OK;
	}
	case MURI__V1__VALUE__KIND_NUMBER_VALUE: hash_be64(h, f64_bits(v->number_value)); return CM_OK;
	case MURI__V1__VALUE__KIND_BOOL_VALUE: hash_u8(h, v->bool_value ? 1 : 0); return CM_OK;
	case MURI__V1__VALUE__KIND_INT_VALUE: hash_be64(h, (uint64_t)v->int_value); return CM_OK;
	default: return CM_ERR_INVALID;
	}
}

int cm_answer_filter_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__Filter *f)
{
	size_t n = f ? f->n_conditions : 0;
	void **s = NULL;
	int rc = sorted_entries((void *const *)(f ? f->conditions : NULL), n, cond_entry_cmp, cond_key, &s);
	if (rc != CM_OK)
		return rc;
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_FILTER);
	hash_be32(&h, (uint32_t)n);
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		const Muri__V1__Filter__ConditionsEntry *e = s[i];
		const Muri__V1__Condition *c = e->value;
		size_t kl = strlen(e->key);
		hash_be32(&h, (uint32_t)kl);
		cm_hasher_update(&h, e->key, kl);
		if (!c) {
			hash_u8(&h, 0);
			continue;
		}
		int has_in = c->in && c->in->n_values > 0;
		uint8_t mask = (uint8_t)((c->eq__case == MURI__V1__CONDITION__EQ__EQ ? 1 : 0) | (has_in ? 2 : 0) |
					 (c->gt__case == MURI__V1__CONDITION__GT__GT ? 4 : 0) |
					 (c->gte__case == MURI__V1__CONDITION__GTE__GTE ? 8 : 0) |
					 (c->lt__case == MURI__V1__CONDITION__LT__LT ? 16 : 0) |
					 (c->lte__case == MURI__V1__CONDITION__LTE__LTE ? 32 : 0));
		hash_u8(&h, mask);
		if (mask & 1)
			rc = hash_value(&h, c->eq);
		if (rc == CM_OK && has_in) {
			hash_be32(&h, (uint32_t)c->in->n_values);
			for (size_t j = 0; j < c->in->n_values && rc == CM_OK; j++)
				rc = hash_value(&h, c->in->values[j]);
		}
		if (mask & 4)
			hash_be64(&h, f64_bits(c->gt));
		if (mask & 8)
			hash_be64(&h, f64_bits(c->gte));
		if (mask & 16)
			hash_be64(&h, f64_bits(c->lt));
		if (mask & 32)
			hash_be64(&h, f64_bits(c->lte));
	}
	free(s);
	if (rc == CM_OK)
		cm_hasher_final(&h, out);
	return rc;
}

/* ---- query, hits, answers ------------------------------------------------------ */

static int query_digest(uint8_t out[CM_HASH_BYTES], const uint8_t vd[CM_HASH_BYTES], uint32_t dim, uint32_t k,
			const Muri__V1__Filter *filter)
{
	uint8_t fd[CM_HASH_BYTES];
	int rc = cm_answer_filter_digest(fd, filter);
	if (rc != CM_OK)
		return rc;
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_QUERY);
	hash_be32(&h, dim);
	cm_hasher_update(&h, vd, CM_HASH_BYTES);
	hash_be32(&h, k);
	cm_hasher_update(&h, fd, sizeof(fd));
	cm_hasher_final(&h, out);
	return CM_OK;
}

int cm_answer_query_digest(uint8_t out[CM_HASH_BYTES], const float *v, uint32_t dim, uint32_t k,
			   const Muri__V1__Filter *filter)
{
	uint8_t vd[CM_HASH_BYTES];
	cm_answer_vector_digest(vd, v, dim);
	return query_digest(out, vd, dim, k, filter);
}

int cm_answer_query_digest_bin(uint8_t out[CM_HASH_BYTES], const uint8_t *b, uint32_t nbytes, uint32_t k,
			       const Muri__V1__Filter *filter)
{
	uint8_t vd[CM_HASH_BYTES];
	cm_answer_binary_digest(vd, b, nbytes);
	return query_digest(out, vd, nbytes * 8, k, filter);
}

int cm_answer_query_digest_pb(uint8_t out[CM_HASH_BYTES], const Muri__V1__Vector *v, uint32_t k,
			      const Muri__V1__Filter *filter)
{
	if (v && v->binary.len)
		return cm_answer_query_digest_bin(out, v->binary.data, (uint32_t)v->binary.len, k, filter);
	return cm_answer_query_digest(out, v ? v->values : NULL, v ? (uint32_t)v->n_values : 0, k, filter);
}

int cm_answer_hit_digest(uint8_t out[CM_HASH_BYTES], const Muri__V1__Hit *hit)
{
	cm_uuid id;
	uint8_t vd[CM_HASH_BYTES], md[CM_HASH_BYTES];
	if (!hit || cm_uuid_parse(&id, hit->id) != CM_OK)
		return CM_ERR_INVALID;
	int rc = cm_answer_metadata_digest(md, hit->metadata);
	if (rc != CM_OK)
		return rc;
	cm_answer_pb_vector_digest(vd, hit->vector);
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_HIT);
	cm_hasher_update(&h, id.b, CM_UUID_BYTES);
	hash_be64(&h, hit->version);
	hash_be64(&h, hit->seq);
	/* -0 as +0: protobuf (proto3) leaves a zero float out, whatever its sign */
	hash_be32(&h, hit->distance == 0.0f ? 0 : f32_bits(hit->distance));
	cm_hasher_update(&h, vd, sizeof(vd));
	cm_hasher_update(&h, md, sizeof(md));
	cm_hasher_final(&h, out);
	return CM_OK;
}

int cm_answer_digest(uint8_t out[CM_HASH_BYTES], const uint8_t query[CM_HASH_BYTES], const char *magu,
		     uint32_t fragment, const Muri__V1__LocalSearchResponse *r)
{
	size_t ml = magu ? strlen(magu) : 0;
	if (!r || !magu || ml > CM_ANSWER_MAGU_MAX || r->root.len != CM_HASH_BYTES ||
	    r->n_hits > CM_ANSWER_HITS_MAX)
		return CM_ERR_INVALID;
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_ANSWER);
	hash_u8(&h, CM_ANSWER_K_ANSWER);
	cm_hasher_update(&h, query, CM_HASH_BYTES);
	hash_be32(&h, (uint32_t)ml);
	cm_hasher_update(&h, magu, ml);
	hash_be32(&h, fragment);
	hash_be64(&h, r->log_size);
	cm_hasher_update(&h, r->root.data, CM_HASH_BYTES);
	hash_be32(&h, (uint32_t)r->n_hits);
	for (size_t i = 0; i < r->n_hits; i++) {
		uint8_t hd[CM_HASH_BYTES];
		int rc = cm_answer_hit_digest(hd, r->hits[i]);
		if (rc != CM_OK)
			return rc;
		cm_hasher_update(&h, hd, sizeof(hd));
	}
	cm_hasher_final(&h, out);
	return CM_OK;
}

int cm_answer_sign(const cm_keypair *kp, const uint8_t query[CM_HASH_BYTES], const char *magu,
		   uint32_t fragment, Muri__V1__LocalSearchResponse *r, uint8_t sig[CM_SIG_BYTES])
{
	uint8_t d[CM_HASH_BYTES];
	int rc = cm_answer_digest(d, query, magu, fragment, r);
	if (rc != CM_OK)
		return rc;
	cm_sign(kp, sig, d, sizeof(d));
	r->batch_size = 0; /* signed alone */
	r->batch_index = 0;
	r->batch_path.data = NULL;
	r->batch_path.len = 0;
	r->signer.data = (uint8_t *)kp->pk;
	r->signer.len = CM_PK_BYTES;
	r->signature.data = sig;
	r->signature.len = CM_SIG_BYTES;
	return CM_OK;
}

void cm_answer_batch_message(uint8_t msg[CM_HASH_BYTES], uint64_t n, const uint8_t root[CM_HASH_BYTES])
{
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_ANSWER_BATCH);
	hash_u8(&h, 'S');
	hash_be64(&h, n);
	cm_hasher_update(&h, root, CM_HASH_BYTES);
	cm_hasher_final(&h, msg);
}

int cm_answer_signed_message(uint8_t msg[CM_HASH_BYTES], const uint8_t d[CM_HASH_BYTES],
			     const Muri__V1__LocalSearchResponse *r)
{
	if (r->batch_size == 0) {
		if (r->batch_index || r->batch_path.len)
			return CM_ERR_INVALID;
		memcpy(msg, d, CM_HASH_BYTES);
		return CM_OK;
	}
	if (r->batch_size > CM_ANSWER_BATCH_MAX || r->batch_index >= r->batch_size ||
	    r->batch_path.len % CM_HASH_BYTES || (r->batch_path.len && !r->batch_path.data))
		return CM_ERR_INVALID;
	uint8_t leaf[CM_HASH_BYTES], root[CM_HASH_BYTES];
	cm_merkle_blake2b.leaf(leaf, d, CM_HASH_BYTES);
	int rc = cm_merkle_root_from_path(&cm_merkle_blake2b, leaf, r->batch_index, r->batch_size, r->batch_path.data,
					  r->batch_path.len / CM_HASH_BYTES, root);
	if (rc != CM_OK)
		return rc == CM_ERR_INVALID ? CM_ERR_VERIFY : rc;
	cm_answer_batch_message(msg, r->batch_size, root);
	return CM_OK;
}

int cm_answer_sign_batch(const cm_keypair *kp, const uint8_t (*queries)[CM_HASH_BYTES], const char *magu,
			 uint32_t fragment, Muri__V1__LocalSearchResponse **r, size_t n, uint8_t sig[CM_SIG_BYTES],
			 uint8_t *paths)
{
	if (n < 1 || n > CM_ANSWER_BATCH_MAX)
		return CM_ERR_INVALID;
	if (n == 1)
		return cm_answer_sign(kp, queries[0], magu, fragment, r[0], sig);
	cm_merkle *t = NULL;
	int rc = cm_merkle_new(&t, &cm_merkle_blake2b);
	for (size_t i = 0; rc == CM_OK && i < n; i++) {
		uint8_t d[CM_HASH_BYTES];
		rc = cm_answer_digest(d, queries[i], magu, fragment, r[i]);
		if (rc == CM_OK)
			rc = cm_merkle_append(t, d, sizeof(d));
	}
	uint8_t root[CM_HASH_BYTES], msg[CM_HASH_BYTES];
	if (rc == CM_OK)
		rc = cm_merkle_root(t, n, root);
	size_t depth = CM_ANSWER_PATH_MAX(n);
	for (size_t i = 0; rc == CM_OK && i < n; i++) {
		cm_merkle_path p;
		rc = cm_merkle_inclusion(t, i, n, &p);
		if (rc == CM_OK && p.len > depth)
			rc = CM_ERR_INTERNAL;
		if (rc != CM_OK)
			break;
		uint8_t *at = paths + i * depth * CM_HASH_BYTES;
		memcpy(at, p.hash, p.len * CM_HASH_BYTES);
		r[i]->batch_size = n;
		r[i]->batch_index = i;
		r[i]->batch_path.data = at;
		r[i]->batch_path.len = p.len * CM_HASH_BYTES;
	}
	cm_merkle_free(t);
	if (rc != CM_OK)
		return rc;
	cm_answer_batch_message(msg, n, root);
	cm_sign(kp, sig, msg, sizeof(msg));
	for (size_t i = 0; i < n; i++) {
		r[i]->signer.data = (uint8_t *)kp->pk;
		r[i]->signer.len = CM_PK_BYTES;
		r[i]->signature.data = sig;
		r[i]->signature.len = CM_SIG_BYTES;
	}
	return CM_OK;
}

int cm_answer_verify_seen(const uint8_t node[CM_PK_BYTES], const uint8_t query[CM_HASH_BYTES], const char *magu,
			  uint32_t fragment, const Muri__V1__LocalSearchResponse *r, const cm_answer_seen *seen)
{
	uint8_t d[CM_HASH_BYTES], msg[CM_HASH_BYTES], key[CM_HASH_BYTES];
	if (!r || r->signer.len != CM_PK_BYTES || r->signature.len != CM_SIG_BYTES)
		return CM_ERR_INVALID;
	if (memcmp(r->signer.data, node, CM_PK_BYTES) != 0)
		return CM_ERR_PERM;
	int rc = cm_answer_digest(d, query, magu, fragment, r);
	if (rc == CM_OK)
		rc = cm_answer_signed_message(msg, d, r);
	if (rc != CM_OK)
		return rc;
	int memo = seen && r->batch_size > 0;
	if (memo) {
		cm_hasher h;
		cm_hasher_init(&h, CM_DOM_ANSWER_BATCH);
		hash_u8(&h, 'K');
		cm_hasher_update(&h, node, CM_PK_BYTES);
		cm_hasher_update(&h, msg, CM_HASH_BYTES);
		cm_hasher_update(&h, r->signature.data, CM_SIG_BYTES);
		cm_hasher_final(&h, key);
		if (seen->known && seen->known(seen->arg, key))
			return CM_OK;
	}
	rc = cm_verify(node, r->signature.data, msg, sizeof(msg));
	if (rc == CM_OK && memo && seen->add)
		seen->add(seen->arg, key);
	return rc;
}

int cm_answer_verify(const uint8_t node[CM_PK_BYTES], const uint8_t query[CM_HASH_BYTES], const char *magu,
		     uint32_t fragment, const Muri__V1__LocalSearchResponse *r)
{
	return cm_answer_verify_seen(node, query, magu, fragment, r, NULL);
}

/* ---- canonical records ------------------------------------------------------------ */

int cm_answer_leaf_parse(const uint8_t *leaf, size_t len, cm_answer_leaf *out)
{
	cm_answer_leaf l;
	if (!leaf || len < LEAF_HEADER + 2 || (leaf[0] != LEAF_FORMAT && leaf[0] != LEAF_FORMAT_BINARY))
		return CM_ERR_INVALID;
	int binary = leaf[0] == LEAF_FORMAT_BINARY;
	const uint8_t *p = leaf + 1;
	l.seq = get_le64(p);
	l.epoch = get_le64(p + 8);
	l.op = p[16];
	memcpy(l.id, p + 17, CM_ANSWER_ID_BYTES);
	l.version = get_le64(p + 17 + CM_ANSWER_ID_BYTES);
	l.dim = get_le32(p + 25 + CM_ANSWER_ID_BYTES);
	/* format 2: dim counts bits, stored as dim / 8 packed bytes */
	size_t vbytes = binary ? l.dim / 8 : (size_t)l.dim * 4;
	if (l.op > 2 || (binary && l.dim % 8) || vbytes > len - LEAF_HEADER - 2)
		return CM_ERR_INVALID;
	const uint8_t *vec = leaf + LEAF_HEADER;
	const uint8_t *fields = vec + vbytes;
	size_t flen = len - (size_t)(fields - leaf);
	/* walk the fields so that the bytes end exactly after the last one */
	uint32_t nf = (uint32_t)fields[0] | (uint32_t)fields[1] << 8;
	size_t at = 2;
	for (uint32_t i = 0; i < nf; i++) {
		if (at + 1 > flen)
			return CM_ERR_INVALID;
		size_t kl = fields[at];
		at += 1 + kl;
		if (kl == 0 || at + 1 > flen)
			return CM_ERR_INVALID;
		uint8_t type = fields[at++];
		size_t vl;
		switch (type) {
		case MURI__V1__VALUE__KIND_STRING_VALUE:
			if (at + 2 > flen)
				return CM_ERR_INVALID;
			vl = 2 + ((size_t)fields[at] | (size_t)fields[at + 1] << 8);
			break;
		case MURI__V1__VALUE__KIND_BOOL_VALUE: vl = 1; break;
		case MURI__V1__VALUE__KIND_NUMBER_VALUE:
		case MURI__V1__VALUE__KIND_INT_VALUE: vl = 8; break;
		default: return CM_ERR_INVALID;
		}
		if (at + vl > flen)
			return CM_ERR_INVALID;
		at += vl;
	}
	if (at != flen)
		return CM_ERR_INVALID;
	if (binary)
		cm_answer_binary_digest(l.vector, vec, (uint32_t)vbytes);
	else
		cm_answer_vector_digest_le(l.vector, vec, l.dim);
	cm_answer_metadata_digest_le(l.metadata, fields, flen);
	*out = l;
	return CM_OK;
}

int cm_answer_hit_matches_leaf(const Muri__V1__Hit *h, const cm_answer_leaf *l, const char **why)
{
	const char *w = NULL;
	cm_uuid id;
	uint8_t d[CM_HASH_BYTES];
	if (l->op == 2)
		w = "the record is a delete";
	else if (h->seq != l->seq)
		w = "seq differs";
	else if (cm_uuid_parse(&id, h->id) != CM_OK || memcmp(id.b, l->id, CM_UUID_BYTES) != 0)
		w = "id differs";
	else if (h->version != l->version)
		w = "version differs";
	if (!w && h->vector) {
		cm_answer_pb_vector_digest(d, h->vector);
		if (memcmp(d, l->vector, CM_HASH_BYTES) != 0)
			w = "vector differs";
	}
	if (!w && (cm_answer_metadata_digest(d, h->metadata) != CM_OK || memcmp(d, l->metadata, CM_HASH_BYTES) != 0))
		w = "metadata differs";
	if (why)
		*why = w;
	return w ? CM_ERR_VERIFY : CM_OK;
}

/* ---- evidence ------------------------------------------------------------------ */

int cm_answer_fraud(const cm_answer_evidence *e, const char **why)
{
	const char *w = NULL;
	int rc = CM_ERR_INVALID;
	const Muri__V1__LocalSearchResponse *r = e->answer;
	cm_answer_leaf l;
	uint8_t lh[CM_HASH_BYTES];
	if (!r || !e->node || !e->query || !e->magu || !e->committed_root)
		w = "evidence: incomplete";
	else if (cm_answer_verify(e->node, e->query, e->magu, e->fragment, r) != CM_OK)
		w = "answer.signature: not the accused's signature over this query, magu and fragment";
	else if (e->by_root) {
		if (r->log_size != e->committed_size)
			w = "answer.log_size: not the committed size, the roots cannot be compared";
		else if (memcmp(r->root.data, e->committed_root, CM_HASH_BYTES) == 0)
			w = "answer.root: equals the committed root", rc = CM_ERR_VERIFY;
		else
			w = "answer.root: differs from the root committed at its size", rc = CM_OK;
	} else if (e->hit >= r->n_hits) {
		w = "hit: beyond the answer's hits";
	} else if (r->hits[e->hit]->seq >= r->log_size) {
		w = "answer.hits: a seq at or beyond the answer's own log size", rc = CM_OK;
	} else if (r->hits[e->hit]->seq >= e->committed_size) {
		w = "answer.hits: the record is beyond the committed size";
	} else if (!e->leaf || !e->path || e->path_len > 64) {
		w = "leaf_path: missing or too long";
	} else {
		cm_merkle_blake2b.leaf(lh, e->leaf, e->leaf_len);
		if (cm_merkle_verify_inclusion(&cm_merkle_blake2b, lh, r->hits[e->hit]->seq, e->committed_size,
					       e->path, e->path_len, e->committed_root) != CM_OK)
			w = "leaf_path: does not prove the leaf at the hit's seq under the committed root";
		else if (cm_answer_leaf_parse(e->leaf, e->leaf_len, &l) != CM_OK)
			w = "leaf: not a canonical record", rc = CM_OK; /* the committed log holds no such record */
		else if (cm_answer_hit_matches_leaf(r->hits[e->hit], &l, &w) == CM_OK)
			w = "leaf: the hit is the committed record", rc = CM_ERR_VERIFY;
		else
			rc = CM_OK; /* w names the difference */
	}
	if (why)
		*why = w;
	return rc;
}
