/* SPDX-License-Identifier: MIT */
/* arena.c - a bump allocator over blocks, the first one the owner's. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

void arena_init(Arena *arena, max_align_t *first, size_t first_bytes)
{
	*arena = (Arena){ .room = (char *)first, .room_bytes = first_bytes };
}

void arena_free(Arena *arena)
{
	for (ArenaBlock *b = arena->blocks, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	arena->blocks = NULL;
	arena->room_bytes = 0;
}

void *arena_alloc(Arena *arena, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (arena->room_bytes < n) {
		size_t size = n > ARENA_BLOCK_BYTES ? n : ARENA_BLOCK_BYTES;
		ArenaBlock *b = malloc(sizeof(*b) + size);
		if (!b)
			return NULL;
		b->next = arena->blocks;
		arena->blocks = b;
		arena->room = (char *)b->data;
		arena->room_bytes = size;
	}
	void *p = arena->room;
	arena->room += n;
	arena->room_bytes -= n;
	return p;
}

char *arena_strdup(Arena *arena, const char *s, size_t len)
{
	char *copy = arena_alloc(arena, len + 1);
	if (copy) {
		memcpy(copy, s, len);
		copy[len] = '\0';
	}
	return copy;
}

void *array_grow(void *items, size_t *capacity, size_t needed, size_t item_size)
{
	if (needed <= *capacity)
		return items;
	size_t grown = *capacity ? *capacity : 8;
	while (grown < needed)
		grown *= 2;
	void *moved = realloc(items, grown * item_size);
	if (moved)
		*capacity = grown;
	return moved;
}
