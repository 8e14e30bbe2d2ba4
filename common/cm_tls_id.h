/* A node's TLS certificate bound to its ed25519 node key, whoever issued the
 * certificate: the certificate carries the URI subject alternative name
 *   muri:node:<node public key, 64 hex>:<signature, 128 hex>
 * where the signature is the node key's over H(CM_DOM_TLS_ID || the
 * certificate's SubjectPublicKeyInfo, DER). A peer that completes the TLS
 * handshake holds the certificate's private key, and the signature says the
 * node key chose that TLS key: the peer speaks for the node key, which the
 * chain then says holds a role or not. A CA (the devnet's, or an operator's
 * own) only vouches for the certificate as usual; it cannot make a
 * certificate speak for a node key it does not hold. */
#ifndef CM_TLS_ID_H
#define CM_TLS_ID_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"

#define CM_TLS_ID_PREFIX "muri:node:"
/* "muri:node:" + 64 hex + ":" + 128 hex, and a NUL */
#define CM_TLS_ID_URI_MAX (sizeof(CM_TLS_ID_PREFIX) + 2 * CM_PK_BYTES + 1 + 2 * CM_SIG_BYTES + 1)

/* The URI that binds the TLS public key spki (DER SubjectPublicKeyInfo) to
 * key, into out (CM_TLS_ID_URI_MAX bytes). */
void cm_tls_id_uri(const cm_keypair *key, const uint8_t *spki, size_t spki_len, char out[CM_TLS_ID_URI_MAX]);

/* Checks uri against spki: CM_OK with the node key in pk, or CM_ERR_INVALID
 * (malformed) / CM_ERR_VERIFY (a signature over another TLS key, or by
 * another node key) with why. */
int cm_tls_id_check_uri(const char *uri, const uint8_t *spki, size_t spki_len, uint8_t pk[CM_PK_BYTES],
			char *why, size_t whylen);

/* The node key a PEM certificate (its first) is bound to: CM_OK with pk;
 * CM_ERR_NOTFOUND when it carries no muri:node URI; CM_ERR_INVALID or
 * CM_ERR_VERIFY otherwise; why says which. */
int cm_tls_id_of_cert(const char *pem, size_t len, uint8_t pk[CM_PK_BYTES], char *why, size_t whylen);

/* The DER SubjectPublicKeyInfo of the private key in a PEM file (for making
 * the URI before a certificate is requested), into a heap buffer the caller
 * frees. CM_ERR_PERM when the file is readable by group or others. */
int cm_tls_id_spki_of_key_file(const char *path, uint8_t **spki, size_t *len, char *why, size_t whylen);

/* Reads a secret file (a private key) into a NUL-terminated heap string the
 * caller wipes and frees: refused (CM_ERR_PERM, why says chmod 600) when its
 * mode gives group or others any access; at most max bytes. */
int cm_read_secret_file(const char *path, size_t max, char **out, size_t *len, char *why, size_t whylen);

#endif
