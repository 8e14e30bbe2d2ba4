/* The queries the Ledger service answers, over any lg_store (a read-only
 * one included). Each fills a protobuf-c message of ledger.proto in a fresh
 * allocation owned by the caller, released with
 * protobuf_c_message_free_unpacked(msg, NULL); every row of one answer comes
 * from one read snapshot, and the answer's `at` says which (head height and
 * state root). CM_ERR_NOTFOUND when the thing asked for does not exist;
 * CM_ERR_RANGE for a limit above its maximum, CM_ERR_INVALID for a page
 * token that is not one of the query's. */
#ifndef LG_QUERY_H
#define LG_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "ledger.pb-c.h"
#include "lg_store.h"

/* Page limits: 0 asks for the default. */
#define LG_QUERY_MAGUS_DEFAULT 20
#define LG_QUERY_MAGUS_MAX 100
#define LG_QUERY_MAGUS_CONFIGS_MAX 4096 /* fragment configurations in one page */
#define LG_QUERY_CHALLENGES_DEFAULT 100
#define LG_QUERY_CHALLENGES_MAX 1000
#define LG_QUERY_RECEIPTS_DEFAULT 100
#define LG_QUERY_RECEIPTS_MAX 1000

int lg_query_account(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__Account **out);
int lg_query_indexer(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__IndexerInfo **out);
int lg_query_magu(lg_store *s, const char *name, Muri__V1__MaguInfo **out);
int lg_query_tx(lg_store *s, const uint8_t hash[CM_HASH_BYTES], Muri__V1__TxStatus **out);
int lg_query_params(lg_store *s, Muri__V1__Params **out);
int lg_query_proposal(lg_store *s, uint64_t id, Muri__V1__ProposalInfo **out);

/* Magus by name, limit per page (0: 20, at most 100), after the page token
 * (empty: from the first); next_page_token is set when more follow. A page
 * ends early, after at least one Magu, rather than hold more than
 * LG_QUERY_MAGUS_CONFIGS_MAX fragment configurations. */
int lg_query_magus_page(lg_store *s, uint32_t limit, const uint8_t *token, size_t token_len,
			Muri__V1__ListMagusResponse **out);
/* The first page of lg_query_magus_page (max 0: the default, above 100: 100). */
int lg_query_magus(lg_store *s, size_t max, Muri__V1__ListMagusResponse **out);

/* The indexer's challenges, newest first, limit per page (0: 100, at most
 * 1000), after the page token. */
int lg_query_challenges_page(lg_store *s, const uint8_t indexer[CM_PK_BYTES], int open_only,
			     uint32_t limit, const uint8_t *token, size_t token_len,
			     Muri__V1__ChallengesResponse **out);
/* The first page, max 1..1000 (else CM_ERR_RANGE). */
int lg_query_challenges(lg_store *s, const uint8_t indexer[CM_PK_BYTES], int open_only, size_t max,
			Muri__V1__ChallengesResponse **out);

/* One fragment: its configuration (replicas with addresses) and committed root. */
int lg_query_fragment(lg_store *s, const char *magu, uint32_t fragment, Muri__V1__FragmentInfo **out);
/* Settled receipts of the request's searcher, gateway or node, newest first,
 * paged. CM_ERR_INVALID with err naming the field for a bad request. */
int lg_query_receipts(lg_store *s, const Muri__V1__ReceiptsRequest *req,
		      Muri__V1__ReceiptsResponse **out, char *err, size_t errlen);
/* What node earned from settled receipts (zeros for a node never paid). */
int lg_query_earnings(lg_store *s, const uint8_t node[CM_PK_BYTES], Muri__V1__Earnings **out);
/* The effects of the committed block at height (BlockEffects, with its own
 * height and state root); CM_ERR_NOTFOUND for a height not committed, or
 * committed by a build that did not record effects. */
int lg_query_effects(lg_store *s, uint64_t height, Muri__V1__BlockEffects **out);
/* lg_query_access.c: an account's API keys by hash (at most 1000), and a
 * Magu's access lists (CM_ERR_NOTFOUND: no such Magu). */
int lg_query_api_keys(lg_store *s, const uint8_t account[CM_PK_BYTES], Muri__V1__ApiKeysResponse **out);
int lg_query_access(lg_store *s, const char *magu, Muri__V1__AccessInfo **out);
/* Where a query would read now: the head height and state root. */
int lg_query_read_at(lg_store *s, Muri__V1__ReadAt **out);

/* Message builders shared with the state machine's effects: *out is set
 * as soon as it is allocated, so on failure the caller frees it. */
/* Message field builders for messages freed with
 * protobuf_c_message_free_unpacked: a malloc'd copy of n bytes at p (one
 * byte allocated when n is 0) or of a string, written into the field; 0 or
 * CM_ERR_NOMEM (the field untouched). */
int lg_query_dup_bytes(ProtobufCBinaryData *b, const void *p, size_t n);
int lg_query_dup_str(char **dst, const char *s);
int lg_query_fill_config(lg_store *s, const lg_fragment *f, Muri__V1__FragmentConfig **out);
int lg_query_fill_challenge(const lg_challenge *c, Muri__V1__Challenge **out);

#endif
