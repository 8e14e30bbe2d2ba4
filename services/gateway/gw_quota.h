/* Per-account quotas (I/O-free; the clock is a parameter): a token bucket
 * of requests and one of vectors written per account, the account's calls
 * in flight, and per-request caps on bytes and on queries x top_k. The
 * accounts live in a bounded table shared by every thread of the gateway,
 * split into lock stripes; when a stripe is full the least recently seen
 * account without a call in flight is forgotten (it comes back with full
 * buckets). gw_quota_call.c binds it to the gateway's calls. */
#ifndef GW_QUOTA_H
#define GW_QUOTA_H

#include <stddef.h>
#include <stdint.h>

/* A table key: one byte of kind (GW_QUOTA_ANONYMOUS, GW_QUOTA_ACCOUNT),
 * then the 32-byte account (zeros for the anonymous caller). */
#define GW_QUOTA_KEY_BYTES 33
#define GW_QUOTA_ANONYMOUS 0
#define GW_QUOTA_ACCOUNT 1
#define GW_QUOTA_STRIPES 16

/* Every limit 0: none. */
typedef struct gw_quota_limits {
	double requests_per_second;  /* refill rate of the request bucket */
	double requests_burst;       /* its size (0: max(1, requests_per_second)) */
	double vectors_per_second;   /* refill rate of the vector bucket (writes) */
	double vectors_burst;        /* its size (0: max(1, vectors_per_second)); a larger write never passes */
	uint64_t concurrent_calls;   /* calls of one account in flight at once */
	uint64_t request_bytes;      /* bytes of one request message */
	uint64_t top_k_batch;        /* queries x top_k of one search */
} gw_quota_limits;

/* What one request asks for. */
typedef struct gw_quota_ask {
	uint64_t bytes;              /* its message's size */
	uint64_t vectors;            /* vectors it writes */
	uint64_t queries, top_k;     /* a search: its query vectors and top_k (0: not a search) */
} gw_quota_ask;

/* Why a request was refused: the limit's config key and value, what the
 * request asked (0 for the buckets and calls in flight), and how long to
 * wait before it would pass (0: waiting alone does not help). */
typedef struct gw_quota_refusal {
	const char *limit;
	double value;
	uint64_t asked;
	uint64_t wait_ms;
} gw_quota_refusal;

typedef struct gw_quota gw_quota;
typedef struct gw_quota_slot gw_quota_slot;

/* A table of at most accounts entries (>= GW_QUOTA_STRIPES); the caller owns
 * *out (gw_quota_free). */
int gw_quota_new(const gw_quota_limits *l, size_t accounts, gw_quota **out);
void gw_quota_free(gw_quota *q);
/* Replaces the limits (any thread): buckets keep their tokens, capped at
 * the new sizes; calls in flight stay counted. */
void gw_quota_set_limits(gw_quota *q, const gw_quota_limits *l);
void gw_quota_get_limits(gw_quota *q, gw_quota_limits *l);

/* Admits one request of key at now_us (a monotonic clock): CM_OK with *held
 * set (a call in flight, ended by gw_quota_release); CM_ERR_RANGE with *why
 * when a limit refuses it, and then nothing is taken from any bucket;
 * CM_ERR_TOOBIG when the key's stripe is full of accounts with calls in
 * flight (why->limit "quota_accounts"). Checks in order: request_bytes,
 * top_k_batch, vectors_burst, concurrent_calls, the request bucket, the
 * vector bucket. */
int gw_quota_admit(gw_quota *q, const uint8_t key[GW_QUOTA_KEY_BYTES], uint64_t now_us, const gw_quota_ask *ask,
		   gw_quota_slot **held, gw_quota_refusal *why);
/* Takes n vectors from key's vector bucket alone (the batches of a call
 * admitted already, such as an Import's): CM_OK, or CM_ERR_RANGE with *why
 * (quota_vectors_per_second and the wait, or quota_vectors_burst) and
 * nothing taken; CM_ERR_TOOBIG as for gw_quota_admit. */
int gw_quota_take_vectors(gw_quota *q, const uint8_t key[GW_QUOTA_KEY_BYTES], uint64_t now_us, uint64_t n,
			  gw_quota_refusal *why);
/* Ends a call gw_quota_admit admitted. Accepts NULL. */
void gw_quota_release(gw_quota *q, gw_quota_slot *held);
/* Accounts in the table. */
size_t gw_quota_accounts(gw_quota *q);

#endif
