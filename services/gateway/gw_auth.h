/* Who is calling and what they may do (gw_auth.c, gw_auth_call.c).
 *
 * The gateway mirrors, from the blocks its follower hands over, the API keys
 * (by hash), each collection's access owner, readers, writers and public
 * flag, and the allowances searchers approved to this gateway's node key.
 * A call proves its account with `authorization: Bearer <key>` or
 * `api-key: <key>`, or with a signature of the account (x-muri-account,
 * x-muri-timestamp, x-muri-nonce, x-muri-signature; cm_api_key.h). With
 * auth off (the `auth` key) every call is let through as before. */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "cm_rpc.h"
#include "ledger.pb-c.h"

typedef struct gw_auth gw_auth;

typedef struct gw_auth_opts {
	int enabled;                 /* auth: off lets every call through */
	int anonymous_reads;         /* calls without a credential may read public collections */
	uint64_t window_ms;          /* a signed call's timestamp within this of the gateway's clock */
	size_t nonce_cache;          /* signed calls remembered (replay protection) */
	size_t keys_max;             /* API keys mirrored at most */
	const uint8_t *node_pk;      /* the gateway's node key (allowances to it), or NULL */
} gw_auth_opts;

enum gw_need { GW_NEED_READ = 1, GW_NEED_WRITE = 2, GW_NEED_ADMIN = 3 };

/* The caller of one call, as authenticated. */
typedef struct gw_caller {
	int open;                    /* auth off: may do anything, pays nothing itself */
	int anonymous;               /* no credential */
	uint8_t account[CM_PK_BYTES];
	int scope;                   /* enum gw_need: what the credential allows */
	int signed_call;             /* by signature rather than API key */
	char collections[1024];      /* the key's collections joined by '\n'; "" = any (truncated lists deny) */
} gw_caller;

/* The caller owns *out (gw_auth_free). */
int gw_auth_new(const gw_auth_opts *o, gw_auth **out);
void gw_auth_free(gw_auth *a);
int gw_auth_enabled(const gw_auth *a);

/* Applies a final block: committed CreateApiKey, RevokeApiKey, CreateMagu,
 * SetAccess, DropMagu and Approve (to node_pk) transactions. */
void gw_auth_apply_block(gw_auth *a, const Muri__V1__Block *b);
/* The chain height the follower has applied (keys expire by it). */
void gw_auth_set_height(gw_auth *a, uint64_t height);

/* Authenticates call (gw_auth_call.c): GRPC_STATUS_OK with *out set (an
 * anonymous caller when it sent no credential), or UNAUTHENTICATED with a
 * message saying what is wrong with the credential (unknown, expired,
 * revoked, a bad or replayed signature). chain_id: the signed calls' chain. */
int gw_auth_caller(gw_auth *a, cm_rpc_call *call, const char *chain_id, gw_caller *out);
/* Authenticates an API key given without a gRPC call (the console's
 * `Authorization: Bearer <key>`), by the same rules: GRPC_STATUS_OK with
 * *out set, or UNAUTHENTICATED with why saying whether the key is empty, too
 * long, unknown, revoked or expired (never the key). The caller wipes key. */
int gw_auth_key(gw_auth *a, const char *key, gw_caller *out, char *why, size_t whylen);
/* May c do need on collection (NULL: an action on no collection, such as
 * CreateCollection)? GRPC_STATUS_OK, UNAUTHENTICATED for an anonymous
 * caller who may not, or PERMISSION_DENIED naming the collection and the
 * permission missing. method names the call in messages. */
int gw_auth_allow(gw_auth *a, cm_rpc_call *call, const gw_caller *c, const char *method, const char *collection,
		  enum gw_need need);
/* 1 if c may read collection (ListCollections shows only those). */
int gw_auth_visible(gw_auth *a, const gw_caller *c, const char *collection);

/* Search allowances: what searcher approved this gateway, minus the fees
 * of searches served since (spend reserves fee; CM_ERR_RANGE when what is
 * left is below fee, with *left set). */
int gw_auth_spend(gw_auth *a, const uint8_t searcher[CM_PK_BYTES], uint64_t fee, uint64_t *left);
/* Gives back fee that gw_auth_spend reserved (a search that failed). */
void gw_auth_refund(gw_auth *a, const uint8_t searcher[CM_PK_BYTES], uint64_t fee);

#endif
