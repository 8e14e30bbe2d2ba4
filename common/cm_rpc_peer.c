/* Who is at the other end of a call (cm_rpc.h, cm_rpc_peer_node; a
 * client's tls_expect_node): the peer's verified certificate from the
 * call's gRPC auth context, and the node key it is bound to (cm_tls_id.h). A connection's calls all carry the same
 * certificate, so the last few certificates checked are remembered by their
 * hash (a signature check per call would cost ~50 us). */
#include "cm_rpc_int.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_tls_id.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <grpc/grpc_security.h>

#define PEER_CACHE 64 /* certificates remembered, round robin */

static struct {
	pthread_mutex_t mu;
	uint8_t cert[PEER_CACHE][CM_HASH_BYTES];
	uint8_t pk[PEER_CACHE][CM_PK_BYTES];
	int n, next;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int cache_get(const uint8_t h[CM_HASH_BYTES], uint8_t pk[CM_PK_BYTES])
{
	int hit = 0;
	pthread_mutex_lock(&cache.mu);
	for (int i = 0; i < cache.n && !hit; i++)
		if (memcmp(cache.cert[i], h, CM_HASH_BYTES) == 0) {
			memcpy(pk, cache.pk[i], CM_PK_BYTES);
			hit = 1;
		}
	pthread_mutex_unlock(&cache.mu);
	return hit;
}

static void cache_put(const uint8_t h[CM_HASH_BYTES], const uint8_t pk[CM_PK_BYTES])
{
	pthread_mutex_lock(&cache.mu);
	memcpy(cache.cert[cache.next], h, CM_HASH_BYTES);
	memcpy(cache.pk[cache.next], pk, CM_PK_BYTES);
	cache.next = (cache.next + 1) % PEER_CACHE;
	if (cache.n < PEER_CACHE)
		cache.n++;
	pthread_mutex_unlock(&cache.mu);
}

int cm_rpc_peer_node(cm_rpc_call *call, uint8_t pk[CM_PK_BYTES], char *why, size_t whylen)
{
	return cm_rpc_node_of_call(cm_rpc_call_grpc(call), pk, why, whylen);
}

int cm_rpc_node_of_call(grpc_call *gc, uint8_t pk[CM_PK_BYTES], char *why, size_t whylen)
{
	grpc_auth_context *ctx = grpc_call_auth_context(gc);
	if (!ctx) {
		snprintf(why, whylen, "the call did not come over TLS");
		return CM_ERR_NOTFOUND;
	}
	grpc_auth_property_iterator it =
		grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
	const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
	int rc;
	if (!p || !p->value || p->value_length == 0) {
		snprintf(why, whylen,
			 "the peer presented no TLS certificate (a node calls with its tls_cert and tls_key, "
			 "verified against the other's tls_ca)");
		rc = CM_ERR_NOTFOUND;
	} else {
		uint8_t h[CM_HASH_BYTES];
		cm_hash(h, CM_DOM_TLS_ID, p->value, p->value_length);
		if (cache_get(h, pk)) {
			rc = CM_OK;
		} else {
			rc = cm_tls_id_of_cert(p->value, p->value_length, pk, why, whylen);
			if (rc == CM_OK)
				cache_put(h, pk);
		}
	}
	grpc_auth_context_release(ctx);
	return rc;
}
