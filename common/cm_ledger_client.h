/* A client of the ledger for processes that are not the ledger: it builds a
 * Transaction for one signing key (chain id, sender, nonce, fee), signs it as
 * the ledger checks it (ed25519 over H(CM_DOM_TX || encoded body)), keeps the
 * account's next nonce, and submits through the genesis replicas in turn,
 * optionally waiting for the commit. Queries go through the same failover. */
#ifndef CM_LEDGER_CLIENT_H
#define CM_LEDGER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "cm_rpc.h"
#include "ledger.pb-c.h"

#define CM_LC_CALL_TIMEOUT_DEFAULT 5000     /* ms per attempt at one replica */
#define CM_LC_COMMIT_TIMEOUT_DEFAULT 20000  /* ms waited for a commit */
#define CM_LC_POLL_DEFAULT 50               /* ms between GetTransaction polls */
#define CM_LC_NONCE_RETRIES 4               /* re-signs after a nonce conflict */
#define CM_LC_MAX_REPLICAS 64
#define CM_LC_MSG_MAX CM_RPC_STATUS_MAX     /* bytes of a result message */
#define CM_LC_TX_MAX_BYTES (1u << 20)       /* the ledger's bound on an encoded body */

typedef struct cm_ledger_client cm_ledger_client;

typedef struct cm_ledger_client_opts {
	const char *chain_id;            /* required */
	size_t n;                        /* replicas, 1..CM_LC_MAX_REPLICAS */
	const char *const *addrs;        /* n "host:port", genesis order */
	const cm_keypair *key;           /* the signing key; copied (wiped at free) */
	uint64_t fee;                    /* fee of a transaction that names none */
	int call_timeout_ms;             /* 0: CM_LC_CALL_TIMEOUT_DEFAULT */
	int commit_timeout_ms;           /* 0: CM_LC_COMMIT_TIMEOUT_DEFAULT */
	int poll_ms;                     /* 0: CM_LC_POLL_DEFAULT */
	int max_attempts;                /* replicas tried per call; 0: 2 * n */
	size_t max_message;              /* 0: CM_RPC_MSG_MAX_DEFAULT */
	const char *tls_ca_file;         /* PEM roots to verify the replicas over TLS; NULL: plaintext */
	const uint8_t (*pks)[CM_PK_BYTES]; /* with TLS: n node keys in genesis order; replica i answers only
					    * over a certificate bound to pks[i] (cm_rpc.h tls_expect_node).
					    * NULL: any certificate the CA signed */
} cm_ledger_client_opts;

/* What became of one submitted transaction. */
typedef struct cm_ledger_result {
	uint8_t tx_hash[CM_HASH_BYTES];
	uint64_t nonce;                  /* the nonce it was signed with */
	int state;                       /* Muri__V1__TxState: PENDING unless waited for */
	uint64_t height;                 /* the block that holds it, once committed */
	int code;                        /* gRPC status of the last refusal (0: none) */
	char message[CM_LC_MSG_MAX];     /* the ledger's message (why it failed, if it did) */
} cm_ledger_result;

enum cm_lc_flags {
	CM_LC_WAIT = 1u << 0,            /* wait until the transaction is in a final block */
};

/* Creates the client (no network traffic yet: the nonce is read by the first
 * submit). The caller owns *out (cm_ledger_client_free). On failure returns
 * a negative code and writes why into err, naming the field. */
int cm_ledger_client_new(const cm_ledger_client_opts *opts, cm_ledger_client **out, char *err,
			 size_t errlen);
/* Frees the channels and wipes the key. Accepts NULL. No call may be in flight. */
void cm_ledger_client_free(cm_ledger_client *c);

/* Submits one transaction whose payload the caller set (payload_case and its
 * member); the client fills chain_id, sender and nonce, and fee when tx->fee
 * is 0. tx is not changed. Thread-safe: submissions from many threads get
 * consecutive nonces. A replica that is UNAVAILABLE or misses the deadline
 * is skipped for the next one (at most max_attempts); a nonce conflict (used
 * already, or another transaction pending with it) re-reads the account
 * (GetAccount) and signs again (at most CM_LC_NONCE_RETRIES times).
 * With CM_LC_WAIT, a transaction whose nonce another transaction of the
 * account took while it waited (another client with the same key; the
 * ledger then drops ours) is signed again with a fresh nonce (at most
 * CM_LC_NONCE_RETRIES times; CM_ERR_EXISTS after that).
 * Returns CM_OK once a replica accepted it (and, with CM_LC_WAIT, once it is
 * committed: state TX_COMMITTED); CM_ERR_STATE when it committed but failed
 * (state TX_FAILED, message says why); CM_ERR_TIMEOUT when the commit did not
 * come within commit_timeout_ms (it may still commit); otherwise the refusal
 * mapped by cm_rpc_code_to_err. res (may be NULL) receives the outcome; err
 * a sentence naming the replica or field. */
int cm_ledger_client_submit(cm_ledger_client *c, const Muri__V1__Transaction *tx, unsigned flags,
			    cm_ledger_result *res, char *err, size_t errlen);

/* Waits until the transaction with tx_hash is committed or failed, polling
 * GetTransaction, for at most timeout_ms (0: commit_timeout_ms). Same
 * returns and res as cm_ledger_client_submit with CM_LC_WAIT. */
int cm_ledger_client_wait(cm_ledger_client *c, const uint8_t tx_hash[CM_HASH_BYTES], int timeout_ms,
			  cm_ledger_result *res, char *err, size_t errlen);

/* One unary query ("/muri.v1.Ledger/GetMagu") with the same replica failover
 * as submit. Returns as cm_rpc_unary does: *resp owned by the caller. */
int cm_ledger_client_call(cm_ledger_client *c, const char *method, const ProtobufCMessage *req,
			  const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
			  cm_rpc_status *st);

/* The chain's height as the replicas vouch for it: each is asked its
 * committed height once (Status, details "height"), and *height is the
 * (f + 1)-th highest answer (f = (n - 1) / 3), a height at least one honest
 * replica has committed, so no f liars can raise it. CM_OK, or
 * CM_ERR_UNAVAILABLE (err names the replicas that did not answer) when fewer
 * than f + 1 answered. */
int cm_ledger_client_height(cm_ledger_client *c, uint64_t *height, char *err, size_t errlen);

/* The signing key's public half (the account address). */
const uint8_t *cm_ledger_client_pubkey(const cm_ledger_client *c);
/* The next nonce the client will use; 0 and *known = 0 before the first read. */
uint64_t cm_ledger_client_next_nonce(cm_ledger_client *c, int *known);

#endif
