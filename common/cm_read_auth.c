/* The digest and signature of a signed read (cm_read_auth.h). */
#include "cm_read_auth.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

static const ProtobufCFieldDescriptor *auth_field(const ProtobufCMessage *req)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "auth");
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED ||
	    f->descriptor != &muri__v1__read_auth__descriptor)
		return NULL;
	return f;
}

int cm_read_auth_digest(uint8_t out[CM_HASH_BYTES], const char *method, const char *chain_id,
			const ProtobufCMessage *req)
{
	const ProtobufCFieldDescriptor *f = auth_field(req);
	if (!f)
		return CM_ERR_INVALID;
	Muri__V1__ReadAuth *const *slot = (Muri__V1__ReadAuth *const *)((const char *)req + f->offset);
	if (!*slot)
		return CM_ERR_INVALID;
	/* a shallow copy of the request whose auth has no signature */
	size_t sz = req->descriptor->sizeof_message;
	char *copy = malloc(sz);
	if (!copy)
		return CM_ERR_NOMEM;
	memcpy(copy, req, sz);
	Muri__V1__ReadAuth a = **slot;
	a.signature.data = NULL;
	a.signature.len = 0;
	*(Muri__V1__ReadAuth **)(copy + f->offset) = &a;
	size_t n = protobuf_c_message_get_packed_size((const ProtobufCMessage *)copy);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		free(copy);
		return CM_ERR_NOMEM;
	}
	protobuf_c_message_pack((const ProtobufCMessage *)copy, buf);
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_READ);
	cm_hasher_update(&h, method, strlen(method) + 1);
	cm_hasher_update(&h, chain_id ? chain_id : "", chain_id ? strlen(chain_id) + 1 : 1);
	cm_hasher_update(&h, buf, n);
	cm_hasher_final(&h, out);
	free(buf);
	free(copy);
	return CM_OK;
}

int cm_read_auth_sign(ProtobufCMessage *req, Muri__V1__ReadAuth *auth, uint8_t sig[CM_SIG_BYTES],
		      const cm_keypair *key, const char *method, const char *chain_id, uint64_t wall_ms)
{
	const ProtobufCFieldDescriptor *f = auth_field(req);
	if (!f)
		return CM_ERR_INVALID;
	muri__v1__read_auth__init(auth);
	auth->requester.data = (uint8_t *)key->pk;
	auth->requester.len = CM_PK_BYTES;
	auth->wall_ms = wall_ms;
	*(Muri__V1__ReadAuth **)((char *)req + f->offset) = auth;
	uint8_t d[CM_HASH_BYTES];
	int rc = cm_read_auth_digest(d, method, chain_id, req);
	if (rc != CM_OK)
		return rc;
	cm_sign(key, sig, d, sizeof(d));
	auth->signature.data = sig;
	auth->signature.len = CM_SIG_BYTES;
	return CM_OK;
}
