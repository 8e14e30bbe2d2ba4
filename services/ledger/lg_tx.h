/* Ledger transactions (ledger.proto Transaction / SignedTransaction): signing
 * a body, decoding and verifying a signed one, and the stateless checks of
 * every payload. The tx hash is H(CM_DOM_TX || body) and is what the sender
 * signs. Error messages name the offending field, e.g.
 * "create_magu.dimension: 5000 is out of range 1..4096". */
#ifndef LG_TX_H
#define LG_TX_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "ledger.pb-c.h"

#define LG_TX_MAX_BYTES (1u << 20)  /* encoded body */
#define LG_CHAIN_ID_MAX 64           /* bytes of a chain id */
#define LG_NAME_MAX 128              /* bytes of a Magu name: [A-Za-z0-9_.-] */
#define LG_ADDRESS_MAX 255           /* bytes of a host:port */
#define LG_DIM_MAX 4096
#define LG_BITS_MAX 65536 /* HAMMING: bits of a binary vector (a multiple of 8) */
#define LG_FRAGMENTS_MAX 1024
#define LG_REPLICATION_MAX 16
#define LG_LEAVES_MAX 64             /* leaves of one challenge */
#define LG_RECEIPTS_MAX 1024         /* receipts of one Settle */
#define LG_RANKED_MAX 64             /* ranked nodes of one receipt */
#define LG_RECEIPT_ID_MIN_BYTES 16
#define LG_RECEIPT_ID_MAX_BYTES 32   /* a receipt id: unique on the chain */
#define LG_NOOP_MAX 1024             /* bytes of a Noop payload */
#define LG_PARAM_NAME_MAX 48
#define LG_MSG_MAX 256               /* an error or outcome message, with its NUL */
#define LG_KEY_COLLECTIONS_MAX 64    /* collections an API key names */
#define LG_KEY_LABEL_MAX 64          /* bytes of an API key's label */
#define LG_ACCESS_LIST_MAX 256       /* accounts in a Magu's readers or writers */

/* A decoded, checked transaction. */
typedef struct lg_tx {
	uint8_t hash[CM_HASH_BYTES];  /* H(CM_DOM_TX || body) */
	size_t size;                  /* bytes of the encoded body */
	Muri__V1__Transaction *body;  /* owned; released by lg_tx_close() */
} lg_tx;

enum lg_tx_flags {
	LG_TX_SKIP_SIG = 1u,  /* the signature was verified before (mempool entry) */
};

/* hash = H(CM_DOM_TX || body). */
void lg_tx_hash(const uint8_t *body, size_t len, uint8_t hash[CM_HASH_BYTES]);

/* Encodes tx (its sender must be kp's public key) and signs it with kp into
 * out, whose body and signature are then malloc'd and owned by the caller,
 * released by lg_tx_signed_clear(). hash receives the tx hash unless NULL.
 * CM_ERR_INVALID if the sender is not kp's key, CM_ERR_TOOBIG if the body
 * exceeds LG_TX_MAX_BYTES. */
int lg_tx_sign(const Muri__V1__Transaction *tx, const cm_keypair *kp,
	       Muri__V1__SignedTransaction *out, uint8_t hash[CM_HASH_BYTES]);
/* Frees what lg_tx_sign() allocated in stx and resets it; accepts NULL. */
void lg_tx_signed_clear(Muri__V1__SignedTransaction *stx);

/* Decodes and checks a signed transaction: body size (CM_ERR_TOOBIG), body
 * encoding, chain id, sender and payload (CM_ERR_INVALID), then, unless
 * flags has LG_TX_SKIP_SIG, the signature (CM_ERR_VERIFY). On success out
 * owns the decoded body (release with lg_tx_close()); on failure err holds a
 * message naming the field and out is untouched. */
int lg_tx_open(const Muri__V1__SignedTransaction *stx, const char *chain_id, unsigned flags,
	       lg_tx *out, char *err, size_t errlen);
/* Releases the decoded body; accepts NULL and a closed tx. */
void lg_tx_close(lg_tx *tx);

/* The stateless checks of lg_tx_open() for a decoded body: sender length,
 * a payload present, every payload field's length and range. */
int lg_tx_check(const Muri__V1__Transaction *tx, char *err, size_t errlen);

/* 1 if name is a valid Magu name: 1..LG_NAME_MAX bytes of [A-Za-z0-9_.-]. */
int lg_name_valid(const char *name);
/* 1 if addr is host:port with a non-empty printable host and a port 1..65535,
 * at most LG_ADDRESS_MAX bytes. */
int lg_address_valid(const char *addr);

/* A fragment root (types.proto SignedRoot) is signed over
 * H(CM_DOM_ROOT || encoding of the root with signature unset); this computes
 * that digest. CM_ERR_NOMEM on allocation failure. */
int lg_root_digest(const Muri__V1__SignedRoot *root, uint8_t out[CM_HASH_BYTES]);
/* CM_OK if root->signature is root->signer's signature over the digest,
 * CM_ERR_VERIFY if not, CM_ERR_INVALID for wrong field sizes. */
int lg_root_verify(const Muri__V1__SignedRoot *root);

#endif
