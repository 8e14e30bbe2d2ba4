/* Queries of access control: an account's API keys (hashes only) and a
 * Magu's access lists, each read at one snapshot that the answer names. */
#include "lg_query.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

#define KEYS_LIST_MAX 1000 /* the most keys an account may hold (lg_st_access.c) */

static int key_info(const lg_api_key *k, Muri__V1__ApiKeyInfo **out)
{
	Muri__V1__ApiKeyInfo *m = calloc(1, sizeof(*m));
	if (!(*out = m))
		return CM_ERR_NOMEM;
	muri__v1__api_key_info__init(m);
	m->scope = (Muri__V1__KeyScope)k->scope;
	m->expiry_height = k->expiry;
	m->created_height = k->created_height;
	m->revoked_height = k->revoked_height;
	if (lg_query_dup_bytes(&m->key_hash, k->hash, CM_HASH_BYTES) != CM_OK ||
	    lg_query_dup_bytes(&m->account, k->account, LG_KEY_BYTES) != CM_OK ||
	    lg_query_dup_str(&m->label, k->label) != CM_OK)
		return CM_ERR_NOMEM;
	size_t n = 0;
	for (const char *p = k->collections; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		n++;
	if (n && !(m->collections = calloc(n, sizeof(char *))))
		return CM_ERR_NOMEM;
	for (const char *p = k->collections; *p && m->n_collections < n;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *s = malloc(len + 1);
		if (!s)
			return CM_ERR_NOMEM;
		memcpy(s, p, len);
		s[len] = '\0';
		m->collections[m->n_collections++] = s;
		p += len + (e ? 1 : 0);
	}
	return CM_OK;
}

int lg_query_api_keys(lg_store *s, const uint8_t account[CM_PK_BYTES], Muri__V1__ApiKeysResponse **out)
{
	Muri__V1__ApiKeysResponse *r = calloc(1, sizeof(*r));
	lg_api_key *keys = NULL;
	size_t n = 0;
	int rc;
	if (!r)
		return CM_ERR_NOMEM;
	muri__v1__api_keys_response__init(r);
	if ((rc = lg_store_read_begin(s)) != CM_OK) {
		free(r);
		return rc;
	}
	rc = lg_query_read_at(s, &r->at);
	if (rc == CM_OK)
		rc = lg_store_api_keys_of(s, account, KEYS_LIST_MAX, &keys, &n);
	if (rc == CM_OK && n && !(r->keys = calloc(n, sizeof(*r->keys))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; rc == CM_OK && i < n; i++) {
		rc = key_info(&keys[i], &r->keys[i]);
		if (r->keys[i])
			r->n_keys++;
	}
	lg_store_read_end(s);
	free(keys);
	if (rc != CM_OK) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return rc;
	}
	*out = r;
	return CM_OK;
}

static int keys_out(ProtobufCBinaryData **dst, size_t *n, const uint8_t (*keys)[LG_KEY_BYTES], uint32_t count)
{
	if (count && !(*dst = calloc(count, sizeof(**dst))))
		return CM_ERR_NOMEM;
	for (uint32_t i = 0; i < count; i++) {
		if (lg_query_dup_bytes(&(*dst)[i], keys[i], LG_KEY_BYTES) != CM_OK)
			return CM_ERR_NOMEM;
		(*n)++;
	}
	return CM_OK;
}

int lg_query_access(lg_store *s, const char *magu, Muri__V1__AccessInfo **out)
{
	Muri__V1__AccessInfo *r = calloc(1, sizeof(*r));
	lg_access *a = calloc(1, sizeof(*a));
	lg_magu m;
	int rc;
	if (!r || !a) {
		free(r);
		free(a);
		return CM_ERR_NOMEM;
	}
	muri__v1__access_info__init(r);
	if ((rc = lg_store_read_begin(s)) != CM_OK) {
		free(r);
		free(a);
		return rc;
	}
	rc = lg_query_read_at(s, &r->at);
	if (rc == CM_OK)
		rc = lg_store_magu_get(s, magu, &m);
	if (rc == CM_OK) {
		rc = lg_store_access_get(s, magu, a);
		if (rc == CM_ERR_NOTFOUND) { /* never changed: the creator owns it, no lists */
			memset(a, 0, sizeof(*a));
			memcpy(a->owner, m.owner, LG_KEY_BYTES);
			a->changed_height = m.created_height;
			rc = CM_OK;
		}
	}
	if (rc == CM_OK) {
		r->public_read = a->public_read;
		r->changed_height = a->changed_height;
		if (lg_query_dup_str(&r->magu, magu) != CM_OK || lg_query_dup_bytes(&r->owner, a->owner, LG_KEY_BYTES) != CM_OK ||
		    keys_out(&r->readers, &r->n_readers, (const uint8_t(*)[LG_KEY_BYTES])a->readers, a->nreaders) != CM_OK ||
		    keys_out(&r->writers, &r->n_writers, (const uint8_t(*)[LG_KEY_BYTES])a->writers, a->nwriters) != CM_OK)
			rc = CM_ERR_NOMEM;
	}
	lg_store_read_end(s);
	free(a);
	if (rc != CM_OK) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return rc;
	}
	*out = r;
	return CM_OK;
}
