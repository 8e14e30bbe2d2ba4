/* What an indexer proves and signs: the digest signed messages are signed
 * over, H(domain || the message packed with its signature field empty);
 * GetRoot (a signed root at a size the replica may sign), InclusionProof,
 * ConsistencyProof and Challenge (leaves, RFC 9162 paths and tags, signed;
 * answered only to a signed read by a replica of the fragment, a ledger
 * replica or a genesis gateway, ix_read_auth.h).
 * Search answers are signed over the canonical answer digest instead
 * (ix_read_rpc.c, common/cm_answer.h). */
#include "ix_service_int.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

#include "indexer.pb-c.h"

#define CHALLENGE_LEAVES_MAX 64

void ix_signed_digest(uint8_t out[CM_HASH_BYTES], uint8_t domain, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);
	cm_hasher h;
	cm_hasher_init(&h, domain);
	if (buf) {
		protobuf_c_message_pack(msg, buf);
		cm_hasher_update(&h, buf, n);
		free(buf);
	}
	cm_hasher_final(&h, out);
}

/* Signs msg whose bytes-field `sig` is empty now; points sig at a signature
 * allocated in the call. */
static int sign_into(ix_service *s, cm_rpc_call *call, uint8_t domain, ProtobufCMessage *msg,
		     ProtobufCBinaryData *signer, ProtobufCBinaryData *sig)
{
	signer->data = (uint8_t *)s->key.pk;
	signer->len = CM_PK_BYTES;
	sig->data = NULL;
	sig->len = 0;
	uint8_t d[CM_HASH_BYTES];
	ix_signed_digest(d, domain, msg);
	uint8_t *out = cm_rpc_alloc(call, CM_SIG_BYTES);
	if (!out)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	cm_sign(&s->key, out, d, sizeof(d));
	sig->data = out;
	sig->len = CM_SIG_BYTES;
	return GRPC_STATUS_OK;
}

static uint8_t *copy_hash(cm_rpc_call *call, const uint8_t *h)
{
	uint8_t *p = cm_rpc_alloc(call, CM_HASH_BYTES);
	if (p)
		memcpy(p, h, CM_HASH_BYTES);
	return p;
}

/* Points a bytes field at a copy of a 32-byte hash in the call's memory
 * (left empty when out of memory). */
void ixs_set_hash(cm_rpc_call *call, ProtobufCBinaryData *field, const uint8_t *h)
{
	field->data = copy_hash(call, h);
	field->len = field->data ? CM_HASH_BYTES : 0;
}

static int data_of(ix_service *s, cm_rpc_call *call, const char *magu, uint32_t fragment, struct frag **fo,
		   ix_fragment **st)
{
	struct frag *f = *fo ? *fo : ixs_find_frag(s, magu, fragment);
	*st = f ? ixs_store_of(f) : NULL;
	*fo = f;
	if (!*st)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s/%u holds no data on this indexer", magu, fragment);
	return GRPC_STATUS_OK;
}

/* A read's checks (ixs_read_check: the caller's role and signed read) and
 * then the fragment's data, for the proof RPCs. */
static int checked_data(ix_service *s, cm_rpc_call *call, const char *method, const ProtobufCMessage *msg,
			const Muri__V1__ReadAuth *auth, const char *magu, uint32_t fragment, ix_fragment **st)
{
	struct frag *f = ixs_find_frag(s, magu, fragment);
	int code = ixs_read_check(s, call, method, msg, auth, magu, fragment, f, 1);
	return code != GRPC_STATUS_OK ? code : data_of(s, call, magu, fragment, &f, st);
}

int ix_h_get_root(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__RootRequest *req = (const Muri__V1__RootRequest *)msg;
	struct frag *f = NULL;
	ix_fragment *st;
	int code = data_of(s, call, req->magu, req->fragment, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	/* signed only within the prefix this epoch cannot truncate, bound to
	 * the chain and the epoch (read together under the core lock) */
	uint8_t root[CM_HASH_BYTES];
	char *chain = cm_rpc_alloc(call, IX_CHAIN_ID_MAX + 1);
	if (!chain)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	ixs_chain_id(s, chain);
	ixr_core_enter(f);
	uint64_t L = ix_fragment_size(st);
	uint64_t epoch = f->core ? ix_repl_epoch(f->core) : 0;
	uint64_t can = f->core ? ix_repl_signable(f->core) : L;
	uint64_t size = req->size ? req->size : can; /* 0: as far as it can vouch */
	int rc = size <= can ? ix_fragment_root(st, size, root) : CM_ERR_STATE;
	ixr_core_leave(f);
	if (size > L)
		return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE, "size: %llu is beyond the log size %llu",
				   (unsigned long long)size, (unsigned long long)L);
	if (rc == CM_ERR_STATE)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "size: %llu is beyond what this replica can vouch for in epoch %llu (%llu)",
				   (unsigned long long)size, (unsigned long long)epoch, (unsigned long long)can);
	if (rc != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "size: %s", cm_strerror(rc));
	Muri__V1__SignedRoot *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__signed_root__init(r);
	r->chain_id = chain;
	r->epoch = epoch;
	r->magu = f->magu;
	r->fragment = f->fragment;
	r->size = size;
	ixs_set_hash(call, &r->root, root);
	code = sign_into(s, call, CM_DOM_ROOT, &r->base, &r->signer, &r->signature);
	if (code == GRPC_STATUS_OK)
		*resp = &r->base;
	return code;
}

/* Copies a path into an array of bytes fields in the call's memory. */
static int path_to_pb(cm_rpc_call *call, const cm_merkle_path *p, ProtobufCBinaryData **out, size_t *n)
{
	ProtobufCBinaryData *v = cm_rpc_alloc(call, (p->len ? p->len : 1) * sizeof(*v));
	if (!v)
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < p->len; i++) {
		ixs_set_hash(call, &v[i], p->hash + i * CM_HASH_BYTES);
		if (!v[i].data)
			return CM_ERR_NOMEM;
	}
	*out = v;
	*n = p->len;
	return CM_OK;
}

int ix_h_inclusion(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__InclusionProofRequest *req = (const Muri__V1__InclusionProofRequest *)msg;
	ix_fragment *st;
	int code = checked_data(s, call, "InclusionProof", msg, req->auth, req->magu, req->fragment, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	uint64_t L = ix_fragment_size(st);
	if (req->size > L || req->index >= req->size)
		return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE,
				   "index %llu and size %llu: need index < size <= log size %llu",
				   (unsigned long long)req->index, (unsigned long long)req->size, (unsigned long long)L);
	Muri__V1__InclusionProofResponse *r = cm_rpc_alloc(call, sizeof(*r));
	cm_merkle_path *path = cm_rpc_alloc(call, sizeof(*path));
	uint8_t root[CM_HASH_BYTES];
	if (!r || !path)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__inclusion_proof_response__init(r);
	if (ix_fragment_inclusion(st, req->index, req->size, path) != CM_OK ||
	    ix_fragment_root(st, req->size, root) != CM_OK ||
	    ix_fragment_leaf(st, req->index, cm_rpc_arena(call), &r->leaf.data, &r->leaf.len) != CM_OK ||
	    path_to_pb(call, path, &r->path, &r->n_path) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot build the proof");
	ixs_set_hash(call, &r->root, root);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int ix_h_consistency(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__ConsistencyProofRequest *req = (const Muri__V1__ConsistencyProofRequest *)msg;
	ix_fragment *st;
	int code = checked_data(s, call, "ConsistencyProof", msg, req->auth, req->magu, req->fragment, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	uint64_t L = ix_fragment_size(st);
	if (req->old_size > req->new_size || req->new_size > L)
		return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE,
				   "old_size %llu and new_size %llu: need old_size <= new_size <= log size %llu",
				   (unsigned long long)req->old_size, (unsigned long long)req->new_size,
				   (unsigned long long)L);
	Muri__V1__ConsistencyProofResponse *r = cm_rpc_alloc(call, sizeof(*r));
	cm_merkle_path *path = cm_rpc_alloc(call, sizeof(*path));
	uint8_t o[CM_HASH_BYTES], n[CM_HASH_BYTES];
	if (!r || !path)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__consistency_proof_response__init(r);
	if (ix_fragment_consistency(st, req->old_size, req->new_size, path) != CM_OK ||
	    ix_fragment_root(st, req->old_size, o) != CM_OK || ix_fragment_root(st, req->new_size, n) != CM_OK ||
	    path_to_pb(call, path, &r->path, &r->n_path) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot build the proof");
	ixs_set_hash(call, &r->old_root, o);
	ixs_set_hash(call, &r->new_root, n);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

int ix_h_challenge(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__ChallengeRequest *req = (const Muri__V1__ChallengeRequest *)msg;
	ix_fragment *st;
	int code = checked_data(s, call, "Challenge", msg, req->auth, req->magu, req->fragment, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	if (req->beacon.len != CM_HASH_BYTES)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "beacon: must be 32 bytes");
	if (req->n_leaf_indices < 1 || req->n_leaf_indices > CHALLENGE_LEAVES_MAX)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "leaf_indices: %zu, expected 1..%d",
				   req->n_leaf_indices, CHALLENGE_LEAVES_MAX);
	uint64_t L = ix_fragment_size(st);
	if (req->size < 1 || req->size > L)
		return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE, "size: %llu, this indexer's log has %llu",
				   (unsigned long long)req->size, (unsigned long long)L);
	for (size_t i = 0; i < req->n_leaf_indices; i++)
		if (req->leaf_indices[i] >= req->size)
			return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE, "leaf_indices[%zu]: %llu is not below size %llu",
					   i, (unsigned long long)req->leaf_indices[i], (unsigned long long)req->size);
	cm_arena *a = cm_rpc_arena(call);
	Muri__V1__ChallengeResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__ChallengeAnswer **ans = cm_rpc_alloc(call, req->n_leaf_indices * sizeof(*ans));
	cm_merkle_path *path = cm_rpc_alloc(call, sizeof(*path));
	uint8_t root[CM_HASH_BYTES];
	if (!r || !ans || !path)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__challenge_response__init(r);
	for (size_t i = 0; i < req->n_leaf_indices; i++) {
		Muri__V1__ChallengeAnswer *x = cm_rpc_alloc(call, sizeof(*x));
		if (!x)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		muri__v1__challenge_answer__init(x);
		x->index = req->leaf_indices[i];
		if (ix_fragment_leaf(st, x->index, a, &x->leaf.data, &x->leaf.len) != CM_OK ||
		    ix_fragment_inclusion(st, x->index, req->size, path) != CM_OK ||
		    path_to_pb(call, path, &x->path, &x->n_path) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot read leaf %llu",
					   (unsigned long long)x->index);
		uint8_t tag[CM_HASH_BYTES];
		cm_hasher h;
		cm_hasher_init(&h, CM_DOM_CHALLENGE);
		cm_hasher_update(&h, req->beacon.data, CM_HASH_BYTES);
		cm_hasher_update(&h, s->key.pk, CM_PK_BYTES);
		cm_hasher_update(&h, x->leaf.data, x->leaf.len);
		cm_hasher_final(&h, tag);
		ixs_set_hash(call, &x->tag, tag);
		ans[i] = x;
	}
	if (ix_fragment_root(st, req->size, root) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot compute the root");
	r->answers = ans;
	r->n_answers = req->n_leaf_indices;
	ixs_set_hash(call, &r->root, root);
	code = sign_into(s, call, CM_DOM_CHALLENGE, &r->base, &r->signer, &r->signature);
	if (code == GRPC_STATUS_OK)
		*resp = &r->base;
	return code;
}
