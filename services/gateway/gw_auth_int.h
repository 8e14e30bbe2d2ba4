/* Private to gw_auth.c and gw_auth_call.c: the mirror's tables. */
#ifndef GW_AUTH_INT_H
#define GW_AUTH_INT_H

#include <pthread.h>

#include "gw_auth.h"

#define GW_AUTH_NAME_MAX 128

typedef struct gw_key {
	uint8_t hash[CM_HASH_BYTES];
	uint8_t account[CM_PK_BYTES];
	int scope;
	uint64_t expiry, revoked;   /* heights; 0: none */
	char *collections;          /* joined by '\n'; NULL: any */
} gw_key;

typedef struct gw_acl {
	char name[GW_AUTH_NAME_MAX + 1];
	uint8_t owner[CM_PK_BYTES];
	uint8_t (*readers)[CM_PK_BYTES], (*writers)[CM_PK_BYTES];
	size_t nreaders, nwriters;
	int public_read;
} gw_acl;

typedef struct gw_allow {
	uint8_t searcher[CM_PK_BYTES];
	uint64_t amount, expiry, spent;
} gw_allow;

typedef struct gw_nonce {
	uint8_t id[CM_HASH_BYTES];  /* H(account || nonce); all zero: free */
	uint64_t expires_ms;        /* wall clock */
} gw_nonce;

struct gw_auth {
	gw_auth_opts o;
	uint8_t node_pk[CM_PK_BYTES];
	int has_node_pk;
	pthread_mutex_t mu;
	uint64_t height;
	gw_key *keys;               /* by hash */
	size_t nkeys, keys_cap;
	gw_acl *colls;
	size_t ncolls, colls_cap;
	gw_allow *allow;
	size_t nallow, allow_cap;
	gw_nonce *nonces;           /* open addressing, nonce_cap a power of two */
	size_t nnonces, nonce_cap;
};

/* Lookups; the caller holds mu. */
gw_key *gw_auth_key_find(gw_auth *a, const uint8_t hash[CM_HASH_BYTES]);
gw_acl *gw_auth_acl_find(gw_auth *a, const char *name);
gw_allow *gw_auth_allow_find(gw_auth *a, const uint8_t *searcher, int create);

#endif
