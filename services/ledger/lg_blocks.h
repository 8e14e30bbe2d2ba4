/* The consensus block tree on disk: blocks a replica has stored but not yet
 * committed, so a restarted replica rebuilds its tree. Committed blocks move
 * to lg_store with their state; they are pruned here. SQLite, WAL; safe to
 * use from several threads. */
#ifndef LG_BLOCKS_H
#define LG_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"

typedef struct lg_blocks lg_blocks;

/* The caller owns *out (lg_blocks_close). */
int lg_blocks_open(const char *path, lg_blocks **out, char *err, size_t errlen);
void lg_blocks_close(lg_blocks *b);
/* Stores an encoded block durably; storing it again is a no-op. */
int lg_blocks_put(lg_blocks *b, const uint8_t hash[CM_HASH_BYTES], uint64_t height, const uint8_t *bytes,
		  size_t len);
/* The encoded block with this hash in a heap buffer the caller frees;
 * CM_ERR_NOTFOUND if it is not held. */
int lg_blocks_get(lg_blocks *b, const uint8_t hash[CM_HASH_BYTES], uint8_t **bytes, size_t *len);
/* Calls fn for every block above height, lowest first; bytes are valid
 * during the call only. */
int lg_blocks_each_above(lg_blocks *b, uint64_t height,
			 void (*fn)(void *arg, const uint8_t *bytes, size_t len), void *arg);
/* Forgets blocks at or below height. */
int lg_blocks_prune(lg_blocks *b, uint64_t height);

#endif
