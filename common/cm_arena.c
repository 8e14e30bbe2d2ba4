/* Bump allocator in chunks, with a protobuf-c allocator view so messages can
 * be unpacked straight into it (frees are no-ops until reset). */
#include "cm_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 16

struct cm_arena_chunk {
	cm_arena_chunk *next;
	size_t size;
	_Alignas(ALIGN) unsigned char data[];
};

static void *pb_alloc(void *arg, size_t n)
{
	return cm_arena_alloc(arg, n);
}

static void pb_free(void *arg, void *p)
{
	(void)arg;
	(void)p;
}

void cm_arena_init(cm_arena *a, size_t limit)
{
	memset(a, 0, sizeof(*a));
	a->limit = limit;
	a->pb.alloc = pb_alloc;
	a->pb.free = pb_free;
	a->pb.allocator_data = a;
}

void *cm_arena_alloc(cm_arena *a, size_t n)
{
	size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	if (need < n)
		return NULL;
	if (need == 0)
		need = ALIGN;
	if (!a->head || a->head->size - a->used < need) {
		size_t size = need > CM_ARENA_CHUNK ? need : CM_ARENA_CHUNK;
		if (a->limit && a->total + size > a->limit) {
			a->over_limit = 1;
			return NULL;
		}
		cm_arena_chunk *c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->size = size;
		a->total += size;
		if (a->head && size > CM_ARENA_CHUNK) {
			/* a big one-off: slot it behind head so head keeps its free space */
			c->next = a->head->next;
			a->head->next = c;
			memset(c->data, 0, need);
			return c->data;
		}
		c->next = a->head;
		a->head = c;
		a->used = 0;
	}
	void *p = a->head->data + a->used;
	a->used += need;
	memset(p, 0, need);
	return p;
}

char *cm_arena_strdup(cm_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = cm_arena_alloc(a, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void cm_arena_reset(cm_arena *a)
{
	cm_arena_chunk *keep = NULL, *next;
	for (cm_arena_chunk *c = a->head; c; c = next) {
		next = c->next;
		if (!keep && c->size == CM_ARENA_CHUNK)
			keep = c;
		else
			free(c);
	}
	if (keep)
		keep->next = NULL;
	a->head = keep;
	a->used = 0;
	a->total = keep ? keep->size : 0;
	a->over_limit = 0;
}

void cm_arena_free(cm_arena *a)
{
	if (!a)
		return;
	cm_arena_chunk *c = a->head;
	while (c) {
		cm_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->used = a->total = 0;
}
