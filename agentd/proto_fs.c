/* SPDX-License-Identifier: MIT */
/* proto_fs.c - fs/readFile, writeFile, createDirectory, getMetadata, readDirectory, remove and copy:
 * client JSON checked and worded as the reference does, execd's fs.* methods doing the work. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "exec_call.h"
#include "log.h"
#include "mp.h"
#include "paths.h"
#include "proto.h"
#include "remote.h"
#include "rpc.h"

/*
 * What fits in one envelope (agentd-ipc(7), "fs.*"; execd enforces the same numbers): the
 * content fs/readFile can return and fs/writeFile can carry.
 */
#define FS_READ_MAX_BYTES (ENVELOPE_MAX_BODY_BYTES - 64u)
#define FS_WRITE_MAX_BYTES (ENVELOPE_MAX_BODY_BYTES - AGENTD_PATH_MAX - 64u)
/* A copy or removal of a large tree may take a while; the rest answers in milliseconds. */
#define FS_TREE_TIMEOUT_MS (10u * 60u * 1000u)

typedef enum FsFieldType {
	FS_FIELD_PATH,	   /* AbsolutePathBuf */
	FS_FIELD_STRING,   /* String */
	FS_FIELD_OPT_BOOL, /* Option<bool>: null is absent */
	FS_FIELD_BOOL,	   /* bool with a default: null is a type error */
} FsFieldType;

typedef struct FsField {
	const char *name;
	FsFieldType type;
	bool is_required;
} FsField;

#define FS_MAX_FIELDS 3

/* One client method: its params as the reference's struct declares them, and execd's method. */
typedef struct FsMethod {
	const char *name;
	const char *ipc_method;
	uint32_t timeout_ms;
	FsField fields[FS_MAX_FIELDS];
} FsMethod;

enum {
	FS_READ_FILE,
	FS_WRITE_FILE,
	FS_CREATE_DIRECTORY,
	FS_GET_METADATA,
	FS_READ_DIRECTORY,
	FS_REMOVE,
	FS_COPY,
};

static const FsMethod fs_methods[] = {
	[FS_READ_FILE] = { "fs/readFile", "fs.read", 0, { { "path", FS_FIELD_PATH, true } } },
	[FS_WRITE_FILE] = { "fs/writeFile",
			    "fs.write",
			    0,
			    { { "path", FS_FIELD_PATH, true }, { "dataBase64", FS_FIELD_STRING, true } } },
	[FS_CREATE_DIRECTORY] = { "fs/createDirectory",
				  "fs.mkdir",
				  0,
				  { { "path", FS_FIELD_PATH, true },
				    { "recursive", FS_FIELD_OPT_BOOL, false } } },
	[FS_GET_METADATA] = { "fs/getMetadata", "fs.stat", 0, { { "path", FS_FIELD_PATH, true } } },
	[FS_READ_DIRECTORY] = { "fs/readDirectory", "fs.readdir", 0, { { "path", FS_FIELD_PATH, true } } },
	[FS_REMOVE] = { "fs/remove",
			"fs.remove",
			FS_TREE_TIMEOUT_MS,
			{ { "path", FS_FIELD_PATH, true },
			  { "recursive", FS_FIELD_OPT_BOOL, false },
			  { "force", FS_FIELD_OPT_BOOL, false } } },
	[FS_COPY] = { "fs/copy",
		      "fs.copy",
		      FS_TREE_TIMEOUT_MS,
		      { { "sourcePath", FS_FIELD_PATH, true },
			{ "destinationPath", FS_FIELD_PATH, true },
			{ "recursive", FS_FIELD_BOOL, false } } },
};

typedef struct FsCall {
	Agentd *server;
	uint64_t conn_id;
	json_t *id;
	const FsMethod *method;
} FsCall;

static int fs_pack_write(void *data, const char *buf, size_t len)
{
	return msgpack_sbuffer_write(data, buf, len);
}

/* --- text ------------------------------------------------------------------------------------------ */

/*
 * The UTF-8 sequence at @s (at most @n bytes): its length when it is well-formed, else 0 with
 * *@prefix the length of its longest prefix that could have begun a valid sequence (at least 1).
 */
static size_t fs_utf8_sequence(const uint8_t *s, size_t n, size_t *prefix)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	*prefix = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (size_t i = 1; i < len; i++) {
		if (i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf)) {
			*prefix = i;
			return 0;
		}
	}
	return len;
}

/*
 * @n bytes as a JSON string; ill-formed UTF-8 (a file name is just bytes) becomes one U+FFFD per
 * maximal ill-formed subpart, as Rust's String::from_utf8_lossy (the reference) does.
 */
static json_t *fs_json_lossy(const char *text, size_t n)
{
	json_t *valid = json_stringn(text, n);
	if (valid)
		return valid;
	const uint8_t *s = (const uint8_t *)text;
	char *out = malloc(n * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t prefix, len = fs_utf8_sequence(s + i, n - i, &prefix);
		if (len > 0) {
			memcpy(o, s + i, len);
			o += len;
			i += len;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i += prefix;
		}
	}
	json_t *json = json_stringn(out, (size_t)(o - out));
	free(out);
	return json;
}

/* An error answer whose message may be longer than conn_reply_error() formats (paths). */
static void fs_reply_error_text(Conn *conn, json_t *id, int code, const char *message)
{
	json_t *text = fs_json_lossy(message, strlen(message));
	json_t *msg = text ? json_pack("{s:{s:i,s:o}}", "error", "code", code, "message", text) : NULL;
	if (!msg) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	json_object_set_new(msg, "id", id ? json_incref(id) : json_null());
	conn_send(conn, msg);
}

/* serde's wording of an unexpected JSON value ("integer `5`", "string \"x\"", "null"). */
static void fs_unexpected(const json_t *value, char *out, size_t out_len)
{
	switch (json_typeof(value)) {
	case JSON_STRING: {
		/* Rust's Debug form: quoted, with quotes, backslashes and controls escaped. */
		const char *s = json_string_value(value);
		size_t len = json_string_length(value), o = 0;
		if (out_len < 16)
			break;
		o += (size_t)snprintf(out, out_len, "string \"");
		for (size_t i = 0; i < len && o + 12 < out_len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '"' || c == '\\')
				o += (size_t)snprintf(out + o, out_len - o, "\\%c", c);
			else if (c == '\n')
				o += (size_t)snprintf(out + o, out_len - o, "\\n");
			else if (c == '\t')
				o += (size_t)snprintf(out + o, out_len - o, "\\t");
			else if (c == '\r')
				o += (size_t)snprintf(out + o, out_len - o, "\\r");
			else if (c < 0x20 || c == 0x7f)
				o += (size_t)snprintf(out + o, out_len - o, "\\u{%x}", c);
			else
				out[o++] = (char)c;
		}
		snprintf(out + o, out_len - o, "\"");
		return;
	}
	case JSON_INTEGER:
		snprintf(out, out_len, "integer `%" JSON_INTEGER_FORMAT "`", json_integer_value(value));
		return;
	case JSON_REAL: {
		char num[64];
		snprintf(num, sizeof(num), "%.17g", json_real_value(value));
		if (!strpbrk(num, ".eEin"))
			strcat(num, ".0");
		snprintf(out, out_len, "floating point `%s`", num);
		return;
	}
	case JSON_TRUE:
	case JSON_FALSE:
		snprintf(out, out_len, "boolean `%s`", json_is_true(value) ? "true" : "false");
		return;
	case JSON_NULL:
		snprintf(out, out_len, "null");
		return;
	case JSON_ARRAY:
		snprintf(out, out_len, "sequence");
		return;
	case JSON_OBJECT:
		snprintf(out, out_len, "map");
		return;
	}
	snprintf(out, out_len, "value");
}

/* --- params ------------------------------------------------------------------------------------------ */

/*
 * Check @params as serde would deserialize the reference's struct: members in the order the
 * client sent them (the first bad one is reported), unknown members ignored, then the first
 * missing required field in declaration order. Every failure is -32600 "Invalid request: ...".
 * Return: true with values[] set (NULL for absent or null optional fields), or false answered.
 */
static bool fs_check_params(Conn *conn, json_t *id, const FsMethod *m, json_t *params,
			    json_t *values[FS_MAX_FIELDS])
{
	const char *key;
	json_t *value;
	char unexpected[256];
	for (size_t i = 0; i < FS_MAX_FIELDS; i++)
		values[i] = NULL;
	json_object_foreach (params, key, value) {
		for (size_t i = 0; i < FS_MAX_FIELDS && m->fields[i].name; i++) {
			const FsField *f = &m->fields[i];
			const char *expected = NULL;
			if (strcmp(f->name, key) != 0)
				continue;
			switch (f->type) {
			case FS_FIELD_PATH:
				if (!json_is_string(value)) {
					expected = "path string";
				} else if (json_string_value(value)[0] != '/') {
					/* The reference's AbsolutePathBuf wording, "" included. */
					conn_reply_error(conn, id, RPC_INVALID_REQUEST,
							 "Invalid request: AbsolutePathBuf deserialized "
							 "without a base "
							 "path");
					return false;
				}
				break;
			case FS_FIELD_STRING:
				if (!json_is_string(value))
					expected = "a string";
				break;
			case FS_FIELD_OPT_BOOL:
				if (json_is_null(value))
					value = NULL;
				else if (!json_is_boolean(value))
					expected = "a boolean";
				break;
			case FS_FIELD_BOOL:
				if (!json_is_boolean(value))
					expected = "a boolean";
				break;
			}
			if (expected) {
				fs_unexpected(value, unexpected, sizeof(unexpected));
				conn_reply_error(conn, id, RPC_INVALID_REQUEST,
						 "Invalid request: invalid type: %s, expected %s", unexpected,
						 expected);
				return false;
			}
			values[i] = value;
		}
	}
	for (size_t i = 0; i < FS_MAX_FIELDS && m->fields[i].name; i++) {
		if (m->fields[i].is_required && !values[i]) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `%s`",
					 m->fields[i].name);
			return false;
		}
	}
	return true;
}

/* The normalised form of path @value into @out, or false with the client answered. */
static bool fs_path(Conn *conn, json_t *id, json_t *value, char out[AGENTD_PATH_MAX])
{
	const char *text = json_string_value(value);
	if (strlen(text) != json_string_length(value)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "file name contained an unexpected NUL byte");
		return false;
	}
	if (path_normalize(NULL, text, out, AGENTD_PATH_MAX) < 0) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "File name too long (os error %d)",
				 ENAMETOOLONG);
		return false;
	}
	return true;
}

/* --- execd's answer -------------------------------------------------------------------------------- */

static void fs_call_free(FsCall *call)
{
	json_decref(call->id);
	free(call);
}

static void fs_reply_failure(Conn *conn, FsCall *call, int32_t status, const uint8_t *body, size_t body_len)
{
	MpBody parsed;
	const char *kind = NULL, *message = NULL;
	size_t kind_len = 0, message_len = 0;
	if (status == ENVELOPE_STATUS_UNAVAILABLE) {
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "service execd is unavailable");
		return;
	}
	if (status == -ETIMEDOUT && body_len == 0) {
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "execd did not answer %s in time",
				 call->method->name);
		return;
	}
	if (body_len == 0 || mp_body_parse(body, body_len, &parsed) < 0) {
		/* execd refused the request itself: agentd built it wrong. */
		log_warn("execd refused %s: %s", call->method->ipc_method,
			 strerror(status < 0 ? -status : status));
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "execd refused %s: %s",
				 call->method->ipc_method, strerror(status < 0 ? -status : status));
		return;
	}
	if (mp_get_str(parsed.map, "kind", 16, &kind, &kind_len) < 0 ||
	    mp_get_str(parsed.map, "message", 65536, &message, &message_len) < 0) {
		mp_body_free(&parsed);
		log_warn("execd: malformed %s failure dropped", call->method->ipc_method);
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "execd answered %s malformed",
				 call->method->ipc_method);
		return;
	}
	/* "refused": the request (the reference's -32600); "busy": try later; "os": the system call failed.
	 */
	int code = RPC_INTERNAL_ERROR;
	if (kind_len == 7 && memcmp(kind, "refused", 7) == 0)
		code = RPC_INVALID_REQUEST;
	else if (kind_len == 4 && memcmp(kind, "busy", 4) == 0)
		code = RPC_SERVER_OVERLOADED;
	char *text = strndup(message, message_len);
	if (text)
		fs_reply_error_text(conn, call->id, code, text);
	else
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "out of memory");
	free(text);
	mp_body_free(&parsed);
}

static json_t *fs_result_read(const msgpack_object *map)
{
	const msgpack_object *data = mp_map_find(map, "data");
	if (!data || data->type != MSGPACK_OBJECT_BIN)
		return NULL;
	char *text = malloc(base64_encoded_len(data->via.bin.size) + 1);
	if (!text)
		return NULL;
	base64_encode((const uint8_t *)data->via.bin.ptr, data->via.bin.size, text);
	json_t *encoded = json_stringn_nocheck(text, base64_encoded_len(data->via.bin.size));
	free(text);
	return encoded ? json_pack("{s:o}", "dataBase64", encoded) : NULL;
}

static int fs_get_i64(const msgpack_object *map, const char *key, int64_t *out)
{
	const msgpack_object *v = mp_map_find(map, key);
	if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
		*out = (int64_t)v->via.u64;
	else if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*out = v->via.i64;
	else
		return -EINVAL;
	return 0;
}

static json_t *fs_result_stat(const msgpack_object *map)
{
	bool is_dir, is_file, is_link;
	int64_t created, modified;
	if (mp_get_bool(map, "isDirectory", &is_dir) < 0 || mp_get_bool(map, "isFile", &is_file) < 0 ||
	    mp_get_bool(map, "isSymlink", &is_link) < 0 || fs_get_i64(map, "createdAtMs", &created) < 0 ||
	    fs_get_i64(map, "modifiedAtMs", &modified) < 0)
		return NULL;
	/* The reference's member order. */
	return json_pack("{s:b,s:b,s:b,s:I,s:I}", "isDirectory", is_dir, "isFile", is_file, "isSymlink",
			 is_link, "createdAtMs", (json_int_t)created, "modifiedAtMs", (json_int_t)modified);
}

static json_t *fs_result_readdir(const msgpack_object *map)
{
	const msgpack_object *entries = mp_map_find(map, "entries");
	if (!entries || entries->type != MSGPACK_OBJECT_ARRAY)
		return NULL;
	json_t *list = json_array();
	for (uint32_t i = 0; list && i < entries->via.array.size; i++) {
		const msgpack_object *e = &entries->via.array.ptr[i];
		const msgpack_object *f =
			e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 3 ? e->via.array.ptr : NULL;
		json_t *name = NULL, *entry = NULL;
		if (f && f[0].type == MSGPACK_OBJECT_BIN && f[1].type == MSGPACK_OBJECT_BOOLEAN &&
		    f[2].type == MSGPACK_OBJECT_BOOLEAN &&
		    (name = fs_json_lossy(f[0].via.bin.ptr, f[0].via.bin.size)))
			entry = json_pack("{s:o,s:b,s:b}", "fileName", name, "isDirectory", f[1].via.boolean,
					  "isFile", f[2].via.boolean);
		if (!entry || json_array_append_new(list, entry) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list ? json_pack("{s:o}", "entries", list) : NULL;
}

static void fs_on_reply(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	FsCall *call = ctx;
	Conn *conn = conn_find(call->server, call->conn_id);
	if (!conn) {
		fs_call_free(call);
		return;
	}
	if (status != 0) {
		fs_reply_failure(conn, call, status, body, body_len);
	} else {
		MpBody parsed;
		json_t *result = NULL;
		if (mp_body_parse(body, body_len, &parsed) == 0) {
			if (call->method == &fs_methods[FS_READ_FILE])
				result = fs_result_read(parsed.map);
			else if (call->method == &fs_methods[FS_GET_METADATA])
				result = fs_result_stat(parsed.map);
			else if (call->method == &fs_methods[FS_READ_DIRECTORY])
				result = fs_result_readdir(parsed.map);
			else
				result = json_object();
			mp_body_free(&parsed);
		}
		if (result) {
			conn_reply(conn, call->id, result);
		} else {
			log_warn("execd: malformed %s answer", call->method->ipc_method);
			conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "execd answered %s malformed",
					 call->method->ipc_method);
		}
	}
	conn_call_finished(conn);
	fs_call_free(call);
}

/* Send the packed request in @sbuf to execd; the answer comes through fs_on_reply(). */
static void fs_call_execd(Conn *conn, json_t *id, const FsMethod *m, msgpack_sbuffer *sbuf)
{
	FsCall *call = calloc(1, sizeof(*call));
	if (!call) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	call->server = conn->server;
	call->conn_id = conn->id;
	call->id = json_incref(id);
	call->method = m;
	conn_call_started(conn);
	int rc = broker_call(conn->server->broker, "execd", m->ipc_method, conn->id, sbuf->data, sbuf->size,
			     m->timeout_ms, fs_on_reply, call);
	if (rc < 0) {
		conn_call_finished(conn);
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "cannot reach execd: %s", strerror(-rc));
		fs_call_free(call);
	}
}

/* --- the methods ---------------------------------------------------------------------------------------- */

/* --- the remote environment: the same method on the exec-server, paths as file:// URIs ------------ */

typedef struct FsRemoteCall {
	Agentd *server;
	uint64_t conn_id;
	json_t *id;
	bool is_metadata;
} FsRemoteCall;

static void fs_on_remote_reply(void *ctx, json_t *result, json_t *error)
{
	FsRemoteCall *call = ctx;
	Conn *conn = conn_find(call->server, call->conn_id);
	if (conn && error) {
		json_int_t code = json_integer_value(json_object_get(error, "code"));
		const char *message = json_string_value(json_object_get(error, "message"));
		/* The exec-server's not-found is -32004; the app-server words every OS error as -32603. */
		conn_reply_error(conn, call->id, code == -32004 || code == 0 ? RPC_INTERNAL_ERROR : (int)code, "%s",
				 message ? message : "the exec-server failed");
	} else if (conn && call->is_metadata) {
		/* Only the schema's fields: the exec-server adds "size". */
		conn_reply(conn, call->id,
			   json_pack("{s:O,s:O,s:O,s:O,s:O}", "isDirectory", json_object_get(result, "isDirectory"),
				     "isFile", json_object_get(result, "isFile"), "isSymlink",
				     json_object_get(result, "isSymlink"), "createdAtMs",
				     json_object_get(result, "createdAtMs"), "modifiedAtMs",
				     json_object_get(result, "modifiedAtMs")));
	} else if (conn) {
		conn_reply(conn, call->id, json_incref(result));
	}
	if (conn)
		conn_call_finished(conn);
	json_decref(call->id);
	free(call);
}

static void fs_call_remote(Conn *conn, json_t *id, const FsMethod *m, json_t *values[FS_MAX_FIELDS],
			   char paths[2][AGENTD_PATH_MAX])
{
	json_t *params = json_object();
	FsRemoteCall *call = calloc(1, sizeof(*call));
	for (size_t i = 0, p = 0; params && i < FS_MAX_FIELDS && m->fields[i].name; i++) {
		const FsField *f = &m->fields[i];
		if (f->type == FS_FIELD_PATH) {
			char *uri = exec_remote_file_uri(paths[p++]);
			json_object_set_new(params, f->name, uri ? json_string(uri) : json_null());
			free(uri);
		} else if (values[i] && !json_is_null(values[i])) {
			json_object_set(params, f->name, values[i]);
		}
	}
	/* The exec-server requires fs/copy's recursive; the app-server defaults it to false. */
	if (params && m == &fs_methods[FS_COPY] && !json_object_get(params, "recursive"))
		json_object_set_new(params, "recursive", json_false());
	if (!params || !call) {
		json_decref(params);
		free(call);
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	call->server = conn->server;
	call->conn_id = conn->id;
	call->id = json_incref(id);
	call->is_metadata = m == &fs_methods[FS_GET_METADATA];
	conn_call_started(conn);
	if (remote_call(conn->server->exec_server, m->name, params, m->timeout_ms ? m->timeout_ms : 30000,
			fs_on_remote_reply, call) < 0) {
		json_t *error = json_pack("{s:i,s:s}", "code", RPC_INTERNAL_ERROR, "message", "exec-server unavailable");
		fs_on_remote_reply(call, NULL, error);
		json_decref(error);
	}
}

/* Check params, normalise the paths, and begin the request body with them. */
static bool fs_begin(Conn *conn, json_t *id, json_t *params, const FsMethod *m, json_t *values[FS_MAX_FIELDS],
		     char paths[2][AGENTD_PATH_MAX])
{
	if (!fs_check_params(conn, id, m, params, values))
		return false;
	for (size_t i = 0, p = 0; i < FS_MAX_FIELDS && m->fields[i].name; i++)
		if (m->fields[i].type == FS_FIELD_PATH && !fs_path(conn, id, values[i], paths[p++]))
			return false;
	if (conn->server->environment == AGENTD_ENV_NONE) {
		/* CODEX_EXEC_SERVER_URL=none: no environment, so no file system either (the reference's words). */
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "local filesystem is not configured");
		return false;
	}
	if (conn->server->environment == AGENTD_ENV_REMOTE) {
		fs_call_remote(conn, id, m, values, paths);
		return false;
	}
	return true;
}

static void fs_pack_flag(msgpack_packer *pk, const char *key, json_t *value, bool fallback)
{
	mp_pack_kv_bool(pk, key, value ? json_is_true(value) : fallback);
}

/* fs/readFile, fs/getMetadata, fs/readDirectory: {path} -> execd's {path}. */
static void fs_path_only(Conn *conn, json_t *id, json_t *params, const FsMethod *m)
{
	json_t *values[FS_MAX_FIELDS];
	char paths[2][AGENTD_PATH_MAX];
	if (!fs_begin(conn, id, params, m, values, paths))
		return;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, fs_pack_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "path", paths[0]);
	fs_call_execd(conn, id, m, &sbuf);
	msgpack_sbuffer_destroy(&sbuf);
}

void proto_fs_read_file(Conn *conn, json_t *id, json_t *params)
{
	fs_path_only(conn, id, params, &fs_methods[FS_READ_FILE]);
}

void proto_fs_get_metadata(Conn *conn, json_t *id, json_t *params)
{
	fs_path_only(conn, id, params, &fs_methods[FS_GET_METADATA]);
}

void proto_fs_read_directory(Conn *conn, json_t *id, json_t *params)
{
	fs_path_only(conn, id, params, &fs_methods[FS_READ_DIRECTORY]);
}

void proto_fs_write_file(Conn *conn, json_t *id, json_t *params)
{
	const FsMethod *m = &fs_methods[FS_WRITE_FILE];
	json_t *values[FS_MAX_FIELDS];
	char paths[2][AGENTD_PATH_MAX];
	char why[128];
	if (!fs_check_params(conn, id, m, params, values))
		return;
	/* The reference decodes before it touches the path (a NUL in it is found later). */
	const char *text = json_string_value(values[1]);
	size_t text_len = json_string_length(values[1]);
	if (text_len > base64_encoded_len(FS_WRITE_MAX_BYTES)) {
		base64_describe_error(text, text_len, why, sizeof(why));
		if (why[0])
			conn_reply_error(conn, id, RPC_INVALID_REQUEST,
					 "fs/writeFile requires valid base64 dataBase64: %s", why);
		else /* valid: its size follows from its length and padding, no need to decode it */
			conn_reply_error(
				conn, id, RPC_INVALID_REQUEST,
				"fs/writeFile dataBase64 decodes to %zu bytes, more than the %u bytes agentd "
				"can write in one request",
				text_len / 4 * 3 - (text[text_len - 1] == '=') - (text[text_len - 2] == '='),
				FS_WRITE_MAX_BYTES);
		return;
	}
	uint8_t *data = malloc(base64_decoded_max(text_len) + 1);
	size_t len = 0;
	if (!data) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	if (base64_decode(text, text_len, data, &len) < 0) {
		base64_describe_error(text, text_len, why, sizeof(why));
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "fs/writeFile requires valid base64 dataBase64: %s", why);
	} else if (len > FS_WRITE_MAX_BYTES) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "fs/writeFile dataBase64 decodes to %zu bytes, more than the %u bytes "
				 "agentd can write "
				 "in one request",
				 len, FS_WRITE_MAX_BYTES);
	} else if (fs_path(conn, id, values[0], paths[0])) {
		msgpack_sbuffer sbuf;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sbuf);
		msgpack_packer_init(&pk, &sbuf, fs_pack_write);
		msgpack_pack_map(&pk, 2);
		mp_pack_kv_str(&pk, "path", paths[0]);
		mp_pack_cstr(&pk, "data");
		msgpack_pack_bin(&pk, len);
		msgpack_pack_bin_body(&pk, data, len);
		fs_call_execd(conn, id, m, &sbuf);
		msgpack_sbuffer_destroy(&sbuf);
	}
	free(data);
}

void proto_fs_create_directory(Conn *conn, json_t *id, json_t *params)
{
	const FsMethod *m = &fs_methods[FS_CREATE_DIRECTORY];
	json_t *values[FS_MAX_FIELDS];
	char paths[2][AGENTD_PATH_MAX];
	if (!fs_begin(conn, id, params, m, values, paths))
		return;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, fs_pack_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "path", paths[0]);
	fs_pack_flag(&pk, "recursive", values[1], true);
	fs_call_execd(conn, id, m, &sbuf);
	msgpack_sbuffer_destroy(&sbuf);
}

void proto_fs_remove(Conn *conn, json_t *id, json_t *params)
{
	const FsMethod *m = &fs_methods[FS_REMOVE];
	json_t *values[FS_MAX_FIELDS];
	char paths[2][AGENTD_PATH_MAX];
	if (!fs_begin(conn, id, params, m, values, paths))
		return;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, fs_pack_write);
	msgpack_pack_map(&pk, 3);
	mp_pack_kv_str(&pk, "path", paths[0]);
	fs_pack_flag(&pk, "recursive", values[1], true);
	fs_pack_flag(&pk, "force", values[2], true);
	fs_call_execd(conn, id, m, &sbuf);
	msgpack_sbuffer_destroy(&sbuf);
}

void proto_fs_copy(Conn *conn, json_t *id, json_t *params)
{
	const FsMethod *m = &fs_methods[FS_COPY];
	json_t *values[FS_MAX_FIELDS];
	char paths[2][AGENTD_PATH_MAX];
	if (!fs_begin(conn, id, params, m, values, paths))
		return;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, fs_pack_write);
	msgpack_pack_map(&pk, 3);
	mp_pack_kv_str(&pk, "sourcePath", paths[0]);
	mp_pack_kv_str(&pk, "destinationPath", paths[1]);
	fs_pack_flag(&pk, "recursive", values[2], false);
	fs_call_execd(conn, id, m, &sbuf);
	msgpack_sbuffer_destroy(&sbuf);
}
