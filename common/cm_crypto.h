/* Identities and hashing over libsodium: ed25519 key pairs and key files,
 * BLAKE2b-256 with one-byte domain separation, hex, constant-time
 * comparison and wiping of secrets. Call cm_crypto_init() once first. */
#ifndef CM_CRYPTO_H
#define CM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <sodium.h>

#define CM_HASH_BYTES 32                          /* BLAKE2b-256 */
#define CM_PK_BYTES crypto_sign_PUBLICKEYBYTES    /* 32 */
#define CM_SK_BYTES crypto_sign_SECRETKEYBYTES    /* 64 */
#define CM_SEED_BYTES crypto_sign_SEEDBYTES       /* 32 */
#define CM_SIG_BYTES crypto_sign_BYTES            /* 64 */
#define CM_ADDR_CHARS (2 * CM_PK_BYTES)           /* hex address, no NUL */

/* One-byte prefixes that keep the hashes of different kinds of object apart. */
enum cm_domain {
	CM_DOM_LEAF = 0x00,      /* Merkle leaf (RFC 6962) */
	CM_DOM_NODE = 0x01,      /* Merkle interior node (RFC 6962) */
	CM_DOM_BLOCK = 0x02,     /* ledger block header */
	CM_DOM_TX = 0x03,        /* transaction */
	CM_DOM_VOTE = 0x04,      /* consensus vote */
	CM_DOM_BEACON = 0x05,    /* randomness beacon */
	CM_DOM_ANSWER = 0x06,    /* an indexer's signed search answer */
	CM_DOM_CHALLENGE = 0x07, /* proof-of-replication response */
	CM_DOM_STATE = 0x08,     /* ledger state root */
	CM_DOM_ROOT = 0x09,      /* signed fragment root */
	CM_DOM_RECORD = 0x0a,    /* fragment write record */
	CM_DOM_CONSENSUS = 0x0b, /* a consensus message envelope */
	CM_DOM_REPL_APPEND = 0x10, /* a primary's signed append to its backups */
	CM_DOM_REPL_ACK = 0x11,  /* a backup's signed answer to an append */
	CM_DOM_REPL_FAILOVER = 0x12, /* a replica's signed failover request */
	CM_DOM_READ = 0x13,      /* a signed read request: FetchLog, proofs, challenges (cm_read_auth.h) */
	CM_DOM_TLS_ID = 0x14,    /* a node key naming its TLS key (cm_tls_id.h) */
	CM_DOM_API_KEY = 0x15,   /* the on-chain hash of a client API key (cm_api_key.h) */
	CM_DOM_CALL = 0x16,      /* a client's signed gateway call (cm_api_key.h) */
	CM_DOM_SCROLL = 0x17,    /* an indexer's signed page of records (cm_scroll.h) */
	CM_DOM_SPLIT = 0x18,     /* an id's split bits: which half of a split fragment (cm_cell.h) */
	CM_DOM_ANSWER_BATCH = 0x1b, /* the root of search answers signed together (cm_answer.h) */
	CM_DOM_TEST = 0xff,      /* tests only */
};

typedef struct cm_keypair {
	uint8_t pk[CM_PK_BYTES];
	uint8_t sk[CM_SK_BYTES]; /* secret: wipe with cm_keypair_wipe() */
} cm_keypair;

typedef struct cm_hasher {
	crypto_generichash_state st;
} cm_hasher;

/* Initializes libsodium; safe to call more than once. */
int cm_crypto_init(void);

/* out = BLAKE2b-256(domain || data). */
void cm_hash(uint8_t out[CM_HASH_BYTES], uint8_t domain, const void *data, size_t len);
/* Incremental form of cm_hash: init with the domain, update, final. */
void cm_hasher_init(cm_hasher *h, uint8_t domain);
void cm_hasher_update(cm_hasher *h, const void *data, size_t len);
void cm_hasher_final(cm_hasher *h, uint8_t out[CM_HASH_BYTES]);

/* Fresh random key pair, or one derived from a 32-byte seed. */
void cm_keypair_generate(cm_keypair *kp);
void cm_keypair_from_seed(cm_keypair *kp, const uint8_t seed[CM_SEED_BYTES]);
void cm_keypair_wipe(cm_keypair *kp);

/* Writes the key pair's seed to path, created with mode 0600; fails with
 * CM_ERR_EXISTS if the file exists. */
int cm_key_save(const cm_keypair *kp, const char *path);
/* Loads a key file written by cm_key_save. CM_ERR_PERM if the file can be
 * read or written by group or others, CM_ERR_INVALID if malformed. */
int cm_key_load(cm_keypair *kp, const char *path);

void cm_sign(const cm_keypair *kp, uint8_t sig[CM_SIG_BYTES], const void *msg, size_t len);
/* 0 if sig is pk's signature over msg, CM_ERR_VERIFY otherwise. */
int cm_verify(const uint8_t pk[CM_PK_BYTES], const uint8_t sig[CM_SIG_BYTES],
	      const void *msg, size_t len);

/* Lower-case hex of n bytes into out, which holds 2n+1 chars (NUL-terminated). */
void cm_hex(char *out, const uint8_t *in, size_t n);
/* Parses exactly 2n hex chars (either case) into out; CM_ERR_INVALID otherwise. */
int cm_unhex(uint8_t *out, size_t n, const char *hex);

/* 1 if the n bytes at a and b are equal, 0 if not, in time independent of where they differ. */
int cm_ct_equal(const void *a, const void *b, size_t n);
/* Overwrites n bytes with zeros in a way the compiler cannot drop. */
void cm_wipe(void *p, size_t n);

#endif
