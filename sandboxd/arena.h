/* SPDX-License-Identifier: MIT */
/* arena.h - memory that lives exactly as long as one compile, given back at once. */
#ifndef SANDBOXD_ARENA_H
#define SANDBOXD_ARENA_H

#include <stddef.h>

/*
 * What lives exactly as long as one compile (its rules' paths, its answers about the file system)
 * is carved from blocks and given back at once. The first block is the owner's own, on
 * plan_compile()'s stack: a usual compile calls malloc() for none of it.
 */
#define ARENA_BLOCK_BYTES 16384

typedef struct ArenaBlock {
	struct ArenaBlock *next;
	max_align_t data[];
} ArenaBlock;

typedef struct Arena {
	char *room; /* the unused end of the newest block */
	size_t room_bytes;
	ArenaBlock *blocks; /* the ones from malloc(), newest first */
} Arena;

void arena_init(Arena *arena, max_align_t *first, size_t first_bytes);

void arena_free(Arena *arena);

void *arena_alloc(Arena *arena, size_t n);

char *arena_strdup(Arena *arena, const char *s, size_t len);

/**
 * array_grow() - room for @needed items of @item_size in @items (holding *@capacity), doubling.
 * Return: the array, moved or not (*@capacity updated); NULL when out of memory (@items intact).
 */
void *array_grow(void *items, size_t *capacity, size_t needed, size_t item_size);

#endif
