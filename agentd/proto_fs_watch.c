/* SPDX-License-Identifier: MIT */
/* proto_fs_watch.c - fs/watch, fs/unwatch and fs/changed: client JSON <-> watchd's internal methods. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp.h"
#include "paths.h"
#include "proto.h"
#include "rpc.h"

/* Bounds agentd enforces before anything reaches watchd (agentd-ipc(7): watch.add). */
#define FS_WATCH_ID_MAX 256u

typedef struct FsWatchCall {
	Agentd *server;
	uint64_t conn_id;
	json_t *id;
	char *path;
	char *watch_id;
	bool is_unwatch;
} FsWatchCall;

static int fs_pack_write(void *data, const char *buf, size_t len)
{
	return msgpack_sbuffer_write(data, buf, len);
}

static void fs_call_free(FsWatchCall *call)
{
	json_decref(call->id);
	free(call->path);
	free(call->watch_id);
	free(call);
}

static void fs_reply_watch_error(Conn *conn, FsWatchCall *call, int32_t status)
{
	if (status == -EEXIST)
		conn_reply_error(conn, call->id, RPC_INVALID_REQUEST, "watchId already exists: %s",
				 call->watch_id);
	else if (status == -ENOSPC)
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR,
				 "cannot watch %s: the inotify watch limit is reached (raise "
				 "fs.inotify.max_user_watches)",
				 call->path);
	else if (status == ENVELOPE_STATUS_UNAVAILABLE)
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "service watchd is unavailable");
	else
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "cannot watch %s: %s", call->path,
				 strerror(status < 0 ? -status : status));
}

static void fs_on_reply(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	FsWatchCall *call = ctx;
	Conn *conn = conn_find(call->server, call->conn_id);
	if (conn) {
		if (status != 0 && !call->is_unwatch)
			fs_reply_watch_error(conn, call, status);
		else if (status != 0 && status != ENVELOPE_STATUS_UNAVAILABLE)
			conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "cannot unwatch: %s",
					 strerror(status < 0 ? -status : status));
		else if (call->is_unwatch)
			conn_reply(conn, call->id, json_object()); /* watchd gone: its watches are gone too */
		else
			conn_reply(conn, call->id, json_pack("{s:s}", "path", call->path));
		conn_call_finished(conn);
	}
	fs_call_free(call);
}

static int fs_call_watchd(Conn *conn, FsWatchCall *call, const char *method)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, fs_pack_write);
	msgpack_pack_map(&pk, call->is_unwatch ? 1 : 2);
	mp_pack_kv_str(&pk, "watchId", call->watch_id);
	if (!call->is_unwatch)
		mp_pack_kv_str(&pk, "path", call->path);
	conn_call_started(conn);
	int rc = broker_call(conn->server->broker, "watchd", method, conn->id, sbuf.data, sbuf.size, 0,
			     fs_on_reply, call);
	msgpack_sbuffer_destroy(&sbuf);
	if (rc < 0)
		conn_call_finished(conn);
	return rc;
}

/* watchId: a non-empty string of bounded size; anything else is the client's params error. */
static const char *fs_watch_id(Conn *conn, json_t *id, json_t *params)
{
	json_t *watch_id = json_object_get(params, "watchId");
	if (!watch_id) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `watchId`");
		return NULL;
	}
	if (!json_is_string(watch_id) || json_string_length(watch_id) > FS_WATCH_ID_MAX ||
	    strlen(json_string_value(watch_id)) != json_string_length(watch_id)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: watchId must be a string of at most %u bytes",
				 FS_WATCH_ID_MAX);
		return NULL;
	}
	return json_string_value(watch_id);
}

static FsWatchCall *fs_call_new(Conn *conn, json_t *id, const char *watch_id, const char *path)
{
	FsWatchCall *call = calloc(1, sizeof(*call));
	if (!call)
		return NULL;
	call->server = conn->server;
	call->conn_id = conn->id;
	call->id = json_incref(id);
	call->watch_id = strdup(watch_id);
	call->path = path ? strdup(path) : NULL;
	if (!call->watch_id || (path && !call->path)) {
		fs_call_free(call);
		return NULL;
	}
	return call;
}

void proto_fs_watch(Conn *conn, json_t *id, json_t *params)
{
	const char *watch_id = fs_watch_id(conn, id, params);
	if (!watch_id)
		return;
	json_t *path = json_object_get(params, "path");
	char normal[AGENTD_PATH_MAX];
	if (!path) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `path`");
		return;
	}
	if (!json_is_string(path) || strlen(json_string_value(path)) != json_string_length(path)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: path must be a string");
		return;
	}
	/* The reference's AbsolutePathBuf wording, so clients matching on it keep working. */
	if (json_string_value(path)[0] != '/') {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: AbsolutePathBuf deserialized without a base path");
		return;
	}
	if (path_normalize(NULL, json_string_value(path), normal, sizeof(normal)) < 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: path is too long");
		return;
	}
	if (conn->server->environment == AGENTD_ENV_NONE) {
		/* CODEX_EXEC_SERVER_URL=none: no file system to watch, as the reference answers. */
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "local filesystem is not configured");
		return;
	}
	FsWatchCall *call = fs_call_new(conn, id, watch_id, normal);
	if (!call) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	conn->has_watches = true;
	int rc = fs_call_watchd(conn, call, "watch.add");
	if (rc < 0) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "cannot reach watchd: %s", strerror(-rc));
		fs_call_free(call);
	}
}

void proto_fs_unwatch(Conn *conn, json_t *id, json_t *params)
{
	const char *watch_id = fs_watch_id(conn, id, params);
	if (!watch_id)
		return;
	if (!conn->has_watches) {
		conn_reply(conn, id, json_object()); /* nothing of this connection is watched */
		return;
	}
	FsWatchCall *call = fs_call_new(conn, id, watch_id, NULL);
	if (!call) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	call->is_unwatch = true;
	int rc = fs_call_watchd(conn, call, "watch.remove");
	if (rc < 0) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "cannot reach watchd: %s", strerror(-rc));
		fs_call_free(call);
	}
}

/* Credit for one watch goes back to watchd once its notification left for the client. */
typedef struct FsCredit {
	Agentd *server;
	uint64_t conn_id;
	char watch_id[];
} FsCredit;

static void fs_on_notification_flushed(void *ctx, bool is_written)
{
	FsCredit *credit = ctx;
	if (is_written && credit->server->broker) {
		msgpack_sbuffer sbuf;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sbuf);
		msgpack_packer_init(&pk, &sbuf, fs_pack_write);
		msgpack_pack_map(&pk, 1);
		mp_pack_kv_str(&pk, "watchId", credit->watch_id);
		broker_send_credit(credit->server->broker, "watchd", credit->conn_id, sbuf.data, sbuf.size);
		msgpack_sbuffer_destroy(&sbuf);
	}
	free(credit);
}

static json_t *fs_changed_params(const msgpack_object *map, const char **watch_id)
{
	const char *text;
	size_t len;
	const msgpack_object *paths = mp_map_find(map, "paths");
	if (mp_get_str(map, "watchId", FS_WATCH_ID_MAX, &text, &len) < 0 || !paths ||
	    paths->type != MSGPACK_OBJECT_ARRAY)
		return NULL;
	json_t *changed = json_array();
	for (uint32_t i = 0; changed && i < paths->via.array.size; i++) {
		const msgpack_object *p = &paths->via.array.ptr[i];
		if (p->type != MSGPACK_OBJECT_STR) {
			json_decref(changed);
			return NULL;
		}
		json_array_append_new(changed, json_stringn(p->via.str.ptr, p->via.str.size));
	}
	json_t *params = json_pack("{s:s%,s:o}", "watchId", text, len, "changedPaths", changed);
	*watch_id = params ? json_string_value(json_object_get(params, "watchId")) : NULL;
	return params;
}

void proto_fs_on_changed(Agentd *server, const Envelope *env)
{
	MpBody body;
	const char *watch_id = NULL;
	if (mp_body_parse(env->body, env->body_len, &body) < 0) {
		log_warn("watchd: malformed fs.changed dropped");
		return;
	}
	json_t *params = fs_changed_params(body.map, &watch_id);
	mp_body_free(&body);
	Conn *conn = conn_find(server, env->connection_id);
	if (!params || !conn) {
		if (!params)
			log_warn("watchd: malformed fs.changed dropped");
		json_decref(params);
		return;
	}
	FsCredit *credit = malloc(sizeof(*credit) + strlen(watch_id) + 1);
	if (!credit) {
		json_decref(params);
		return;
	}
	credit->server = server;
	credit->conn_id = conn->id;
	strcpy(credit->watch_id, watch_id);
	conn_notify_tracked(conn, "fs/changed", params, fs_on_notification_flushed, credit);
}
