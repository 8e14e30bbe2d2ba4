/* A fragment's replication rules shared by the ledger and its indexers
 * (DESIGN.md "Fragments"): the fragment's id in every replication digest,
 * the failover report a replica sends when it gives up on an epoch and the
 * digest it signs, and the ledger's choice of the next primary from the
 * reports of a majority. Pure functions, no I/O. */
#ifndef CM_FRAGMENT_H
#define CM_FRAGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"

#define CM_FRAGMENT_MAX_REPLICAS 16 /* replicas of one fragment */

/* A replica's failover report: "I gave up on the primary of epoch; my log
 * is size entries with Merkle root root, its last entry assigned in
 * last_epoch (0 when the log is empty)". sig: the sender over
 * cm_fragment_report_digest. */
typedef struct cm_fragment_report {
	uint64_t epoch;
	uint64_t size;
	uint8_t root[CM_HASH_BYTES];
	uint64_t last_epoch;
	uint8_t sender[CM_PK_BYTES];
	uint8_t sig[CM_SIG_BYTES];
} cm_fragment_report;

/* The id of fragment `fragment` of the Magu named magu (NUL-terminated):
 * BLAKE2b-256 under CM_DOM_REPL_APPEND of the name with its NUL and the
 * fragment number big-endian in 4 bytes. */
void cm_fragment_id(const char *magu, uint32_t fragment, uint8_t out[CM_HASH_BYTES]);

/* The digest a report's sig is over: CM_DOM_REPL_FAILOVER, the fragment
 * id, epoch, size, root, last_epoch (integers big-endian in 8 bytes) and
 * the sender's key. sig is not read. */
void cm_fragment_report_digest(const uint8_t fragment[CM_HASH_BYTES], const cm_fragment_report *r,
			       uint8_t out[CM_HASH_BYTES]);

/* Replicas a majority of n needs: n / 2 + 1. */
uint32_t cm_fragment_majority(uint32_t n);

/* The next primary of a fragment whose epoch is `epoch` and whose replica
 * set is replicas[0..n): among the reports of that epoch from members
 * (each member counted once, its first report in the array; others
 * ignored), once they come from a majority, the most up to date log wins:
 * the highest last_epoch, then the largest size, then the lowest replica
 * index. Every write a majority acknowledged is in that log (any majority
 * holds one of its replicas, and a log of a later last_epoch or the same
 * one and longer holds every entry of that epoch's primary). Signatures
 * are the caller's to check. Returns the replica index (>= 0), CM_ERR_STATE
 * while the reports are fewer than a majority, CM_ERR_INVALID when n is
 * not in 1..CM_FRAGMENT_MAX_REPLICAS. */
int cm_fragment_choose_primary(uint64_t epoch, const uint8_t (*replicas)[CM_PK_BYTES], uint32_t n,
			       const cm_fragment_report *reports, size_t nreports);

#endif
