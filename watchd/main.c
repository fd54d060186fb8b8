/* SPDX-License-Identifier: MIT */
/* watchd - watches files for agentd's clients: inotify, connection-scoped watches, coalesced changes. */
#include <errno.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "paths.h"
#include "watch.h"

#define WATCHD_DEFAULT_DEBOUNCE_MS 200
#define WATCHD_MAX_DEBOUNCE_MS 60000

typedef struct Watchd {
	WatchTable *table;
	Daemon *daemon;
} Watchd;

static Watchd watchd;

static int watchd_pack_write(void *data, const char *buf, size_t len)
{
	return msgpack_sbuffer_write(data, buf, len);
}

/* fs.changed {watchId, paths}: one coalesced batch for one connection's watch. */
static int watchd_emit(void *ctx, uint64_t conn_id, const char *watch_id, const char *const *paths,
		       size_t count)
{
	Watchd *w = ctx;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, watchd_pack_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "watchId", watch_id);
	mp_pack_cstr(&pk, "paths");
	msgpack_pack_array(&pk, (uint32_t)count);
	for (size_t i = 0; i < count; i++)
		mp_pack_cstr(&pk, paths[i]);
	int rc = daemon_send_event(w->daemon, conn_id, "fs.changed", sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
	if (rc < 0)
		log_warn("cannot send changes of watch %s: %s", watch_id, strerror(-rc));
	return rc;
}

/* Copies a bounded string field; agentd validated it, a sibling that did not is refused.
 * A watchId may be empty (any client string is an id); a path may not. */
static int watchd_get_text(const msgpack_object *params, const char *key, size_t max, char *out)
{
	const char *text;
	size_t len;
	int rc = mp_get_str(params, key, max, &text, &len);
	if (rc < 0)
		return -EINVAL;
	if ((len == 0 && strcmp(key, "watchId") != 0) || (len && memchr(text, '\0', len)))
		return -EINVAL;
	if (len)
		memcpy(out, text, len);
	out[len] = '\0';
	return 0;
}

static int watchd_add(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Watchd *w = ctx;
	char watch_id[WATCH_ID_MAX + 1], path[AGENTD_PATH_MAX];
	if (watchd_get_text(params, "watchId", WATCH_ID_MAX, watch_id) < 0 ||
	    watchd_get_text(params, "path", AGENTD_PATH_MAX - 1, path) < 0 || !path_is_normal_absolute(path))
		return -EINVAL;
	int rc = watch_table_add(w->table, req->connection_id, watch_id, path);
	if (rc == -ENOSPC)
		log_warn("watch %s on %s: inotify watch limit reached (fs.inotify.max_user_watches)",
			 watch_id, path);
	if (rc < 0)
		return rc;
	return daemon_reply(d, req, 0, "\x80", 1);
}

static int watchd_remove(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Watchd *w = ctx;
	char watch_id[WATCH_ID_MAX + 1];
	if (watchd_get_text(params, "watchId", WATCH_ID_MAX, watch_id) < 0)
		return -EINVAL;
	watch_table_remove(w->table, req->connection_id, watch_id);
	return daemon_reply(d, req, 0, "\x80", 1);
}

/* Event: the client connection is gone, and with it every watch it owned. */
static int watchd_conn_closed(Daemon *d, const Envelope *env, const msgpack_object *params, void *ctx)
{
	Watchd *w = ctx;
	watch_table_drop_connection(w->table, env->connection_id);
	return 0;
}

static void watchd_on_credit(Daemon *d, const Envelope *env, const msgpack_object *params, void *ctx)
{
	Watchd *w = ctx;
	char watch_id[WATCH_ID_MAX + 1];
	if (watchd_get_text(params, "watchId", WATCH_ID_MAX, watch_id) == 0)
		watch_table_grant(w->table, env->connection_id, watch_id);
}

static void watchd_on_broker_lost(Daemon *d, void *ctx)
{
	Watchd *w = ctx;
	/* Whoever connects next has new client connections: nothing of the old ones survives. */
	watch_table_drop_all(w->table);
}

static int watchd_health(Daemon *d, msgpack_packer *pk, void *ctx)
{
	Watchd *w = ctx;
	size_t subscriptions, inotify_watches;
	watch_table_counts(w->table, &subscriptions, &inotify_watches);
	mp_pack_kv_u64(pk, "watches", subscriptions);
	mp_pack_kv_u64(pk, "inotifyWatches", inotify_watches);
	return 0;
}

static int watchd_debounce(const Config *cfg, uint32_t *out)
{
	int64_t value;
	if (config_get_int(cfg, "watchd.debounce_ms", 0, WATCHD_MAX_DEBOUNCE_MS, WATCHD_DEFAULT_DEBOUNCE_MS,
			   &value) < 0) {
		log_error("%s: [watchd] debounce_ms must be an integer in 0..%d", cfg->path,
			  WATCHD_MAX_DEBOUNCE_MS);
		return -EINVAL;
	}
	*out = (uint32_t)value;
	return 0;
}

static int watchd_adopt_config(Daemon *d, const Config *fresh, void *ctx)
{
	Watchd *w = ctx;
	uint32_t debounce_ms;
	int rc = watchd_debounce(fresh, &debounce_ms);
	if (rc == 0 && w->table)
		watch_table_set_debounce(w->table, debounce_ms);
	return rc;
}

static int watchd_setup(Daemon *d, void *ctx)
{
	Watchd *w = ctx;
	uint32_t debounce_ms;
	w->daemon = d;
	/* watchd only reads: inotify needs read access to the watched paths and no capability. */
	int rc = daemon_drop_privileges("watchd");
	if (rc == 0)
		rc = watchd_debounce(daemon_config(d), &debounce_ms);
	if (rc == 0)
		rc = watch_table_new(daemon_loop(d), debounce_ms, watchd_emit, w, &w->table);
	if (rc < 0)
		log_error("cannot start watching: %s", strerror(-rc));
	return rc;
}

static void watchd_teardown(Daemon *d, void *ctx)
{
	Watchd *w = ctx;
	watch_table_free(w->table);
	w->table = NULL;
}

static const DaemonMethod watchd_methods[] = {
	{ "watch.add", 8192, watchd_add },
	{ "watch.remove", 1024, watchd_remove },
	{ "conn.closed", 64, watchd_conn_closed },
};

/* Beyond the common base: the inotify calls, and opens only without any write flag. */
static const char *const watchd_syscalls[] = { "inotify_init1", "inotify_add_watch", "inotify_rm_watch" };

static const DaemonSpec watchd_spec = {
	.name = "watchd",
	.summary = "watches files for agentd's clients (inotify, coalescing)",
	.methods = watchd_methods,
	.method_count = sizeof(watchd_methods) / sizeof(watchd_methods[0]),
	.ctx = &watchd,
	.health_fields = watchd_health,
	.health_field_count = 2,
	.setup = watchd_setup,
	.teardown = watchd_teardown,
	.on_credit = watchd_on_credit,
	.on_broker_lost = watchd_on_broker_lost,
	.adopt_config = watchd_adopt_config,
	.seccomp = { watchd_syscalls, sizeof(watchd_syscalls) / sizeof(watchd_syscalls[0]), false, true },
};

int main(int argc, char **argv)
{
	return daemon_main(&watchd_spec, argc, argv);
}
