/* A bump allocator: many small allocations freed at once. The RPC layer gives
 * each call one, decodes the request into it and lets handlers build the
 * response in it, so a call's memory is released in one step. */
#ifndef CM_ARENA_H
#define CM_ARENA_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#define CM_ARENA_CHUNK 16384 /* bytes in a chunk unless an allocation needs more */

typedef struct cm_arena_chunk cm_arena_chunk;

typedef struct cm_arena {
	cm_arena_chunk *head;   /* newest chunk first */
	size_t used;            /* bytes taken from head */
	size_t total;           /* bytes in all chunks */
	size_t limit;           /* 0 = none; allocations beyond it fail */
	int over_limit;         /* an allocation failed because of limit */
	ProtobufCAllocator pb;  /* protobuf-c allocator drawing from this arena */
} cm_arena;

/* Prepares an empty arena that may hold at most limit bytes (0: no limit). */
void cm_arena_init(cm_arena *a, size_t limit);
/* Zeroed memory owned by the arena, 16-byte aligned; NULL when out of memory
 * or over the limit. */
void *cm_arena_alloc(cm_arena *a, size_t n);
/* A copy of s owned by the arena; NULL as cm_arena_alloc. */
char *cm_arena_strdup(cm_arena *a, const char *s);
/* Frees all allocations; keeps the first chunk for reuse. */
void cm_arena_reset(cm_arena *a);
/* Frees everything. Accepts NULL. */
void cm_arena_free(cm_arena *a);

#endif
