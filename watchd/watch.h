/* SPDX-License-Identifier: MIT */
/* watch.h - connection-scoped, non-recursive file watches on one inotify instance, with coalescing. */
#ifndef WATCHD_WATCH_H
#define WATCHD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct WatchTable WatchTable;

/*
 * Delivers one coalesced batch: sorted, de-duplicated absolute paths in the client's spelling.
 * Return 0 when it went out; the watch then waits for watch_table_grant() before the next.
 */
typedef int (*WatchEmitFn)(void *ctx, uint64_t conn_id, const char *watch_id, const char *const *paths,
			   size_t count);

/* Paths held per watch while it waits (debounce or credit); past this it collapses to its root. */
#define WATCH_PENDING_MAX 1024u
#define WATCH_ID_MAX 256u

/** watch_table_new() - open the inotify instance and start reading it. Return 0 or negative errno. */
int watch_table_new(uv_loop_t *loop, uint32_t debounce_ms, WatchEmitFn emit, void *ctx, WatchTable **out);
/** watch_table_free() - drop every watch and close inotify. NULL-safe. */
void watch_table_free(WatchTable *table);
/** watch_table_set_debounce() - the window used for batches that start from now on. */
void watch_table_set_debounce(WatchTable *table, uint32_t debounce_ms);

/**
 * watch_table_add() - watch @path (absolute, normalised) as @watch_id of connection @conn_id.
 * Return: 0; -EEXIST for a watch id the connection already uses; -ENOSPC when the inotify
 * watch limit (fs.inotify.max_user_watches) is reached; -ENOMEM.
 */
int watch_table_add(WatchTable *table, uint64_t conn_id, const char *watch_id, const char *path);
/** watch_table_remove() - stop one watch; unknown ids are ignored. Nothing more is emitted for it. */
void watch_table_remove(WatchTable *table, uint64_t conn_id, const char *watch_id);
/** watch_table_drop_connection() - stop every watch of @conn_id (it closed). */
void watch_table_drop_connection(WatchTable *table, uint64_t conn_id);
/** watch_table_drop_all() - stop every watch (agentd went away: its connections are gone). */
void watch_table_drop_all(WatchTable *table);
/** watch_table_grant() - the last batch of this watch reached its client: the next may go. */
void watch_table_grant(WatchTable *table, uint64_t conn_id, const char *watch_id);

/** watch_table_counts() - subscriptions and kernel watches held, for health. */
void watch_table_counts(const WatchTable *table, size_t *subscriptions, size_t *inotify_watches);

#endif
