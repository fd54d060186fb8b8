/* SPDX-License-Identifier: MIT */
/* server_fs.c - the exec-server's fs methods, on fsops.h, run on libuv's worker threads. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "fsops.h"
#include "log.h"
#include "paths.h"
#include "server.h"

/*
 * Paths arrive as file URIs. The file system work itself (fsops.c) runs on a worker thread so
 * that a slow disk holds only the connection that asked. Errors are the reference's: a refusal
 * of the request is -32600, a missing file -32004 (its exec-server's "not found"), any other
 * system error -32603, each with the message fsops worded.
 */

/* Largest file fs/readFile returns: its base64 answer is 4/3 of it, built in memory. */
#define ES_FS_READ_MAX_BYTES (64u * 1024u * 1024u)

typedef enum EsFsOp {
	ES_FS_READ,
	ES_FS_WRITE,
	ES_FS_MKDIR,
	ES_FS_METADATA,
	ES_FS_LIST,
	ES_FS_REMOVE,
	ES_FS_COPY,
	ES_FS_CANONICALIZE,
} EsFsOp;

typedef struct EsFsWork {
	uv_work_t work;
	EsRequest *req; /* NULL once the client went away */
	EsFsOp op;
	char path[AGENTD_PATH_MAX];
	char path2[AGENTD_PATH_MAX];
	bool is_recursive, is_forced;
	uint8_t *data;
	size_t len;
	int rc;
	FsError err;
	FsMetadata md;
	FsDirEntry *entries;
	size_t count;
	char resolved[AGENTD_PATH_MAX];
} EsFsWork;

static void es_fs_run(uv_work_t *work)
{
	EsFsWork *w = work->data;
	switch (w->op) {
	case ES_FS_READ:
		w->rc = fsops_read_file(NULL, w->path, ES_FS_READ_MAX_BYTES, &w->data, &w->len, &w->err);
		break;
	case ES_FS_WRITE:
		w->rc = fsops_write_file(NULL, w->path, w->data, w->len, &w->err);
		break;
	case ES_FS_MKDIR:
		w->rc = fsops_create_directory(NULL, w->path, w->is_recursive, &w->err);
		break;
	case ES_FS_METADATA:
		w->rc = fsops_get_metadata(NULL, w->path, &w->md, &w->err);
		break;
	case ES_FS_LIST:
		w->rc = fsops_read_directory(NULL, w->path, &w->entries, &w->count, &w->err);
		break;
	case ES_FS_REMOVE:
		w->rc = fsops_remove(NULL, w->path, w->is_recursive, w->is_forced, &w->err);
		break;
	case ES_FS_COPY:
		w->rc = fsops_copy(NULL, w->path, w->path2, w->is_recursive, &w->err);
		break;
	case ES_FS_CANONICALIZE:
		if (realpath(w->path, w->resolved)) {
			w->rc = 0;
		} else {
			int e = errno;
			w->rc = -e;
			w->err.is_refusal = false;
			snprintf(w->err.message, sizeof(w->err.message), "%s (os error %d)", strerror(e), e);
		}
		break;
	}
}

static json_t *es_fs_result(EsFsWork *w)
{
	json_t *result = json_object();
	switch (w->op) {
	case ES_FS_READ: {
		char *text = malloc(base64_encoded_len(w->len) + 1);
		if (!text) {
			json_decref(result);
			return NULL;
		}
		base64_encode(w->data, w->len, text);
		json_object_set_new(result, "dataBase64",
				    json_stringn_nocheck(text, base64_encoded_len(w->len)));
		free(text);
		break;
	}
	case ES_FS_METADATA:
		json_object_set_new(result, "isDirectory", json_boolean(w->md.is_directory));
		json_object_set_new(result, "isFile", json_boolean(w->md.is_file));
		json_object_set_new(result, "isSymlink", json_boolean(w->md.is_symlink));
		json_object_set_new(result, "size", json_integer((json_int_t)w->md.size));
		json_object_set_new(result, "createdAtMs", json_integer(w->md.created_at_ms));
		json_object_set_new(result, "modifiedAtMs", json_integer(w->md.modified_at_ms));
		break;
	case ES_FS_LIST: {
		json_t *entries = json_array();
		for (size_t i = 0; i < w->count; i++) {
			json_t *e = json_object();
			const char *name = w->entries[i].file_name;
			json_object_set_new(e, "fileName", es_json_string_lossy(name, strlen(name)));
			json_object_set_new(e, "isDirectory", json_boolean(w->entries[i].is_directory));
			json_object_set_new(e, "isFile", json_boolean(w->entries[i].is_file));
			json_array_append_new(entries, e);
		}
		json_object_set_new(result, "entries", entries);
		break;
	}
	case ES_FS_CANONICALIZE: {
		char *uri = es_path_to_uri(w->resolved);
		json_object_set_new(result, "path", uri ? json_string(uri) : json_null());
		free(uri);
		break;
	}
	case ES_FS_WRITE:
	case ES_FS_MKDIR:
	case ES_FS_REMOVE:
	case ES_FS_COPY:
		break;
	}
	return result;
}

static void es_fs_done(uv_work_t *work, int status)
{
	EsFsWork *w = work->data;
	EsRequest *req = w->req;
	if (req) {
		req->cancel = NULL;
		if (status < 0) {
			es_reply_error(req, ES_INTERNAL_ERROR, "%s", uv_strerror(status));
		} else if (w->rc < 0) {
			int code = w->err.is_refusal ? ES_INVALID_REQUEST
						     : (w->rc == -ENOENT ? ES_NOT_FOUND : ES_INTERNAL_ERROR);
			es_reply_error(req, code, "%s", w->err.message);
		} else {
			json_t *result = es_fs_result(w);
			if (result)
				es_reply_result(req, result);
			else
				es_reply_error(req, ES_INTERNAL_ERROR, "out of memory");
		}
	}
	free(w->data);
	fsops_dir_entries_free(w->entries, w->count);
	free(w);
}

static void es_fs_cancel(EsRequest *req)
{
	EsFsWork *w = req->pending;
	w->req = NULL; /* the worker finishes; es_fs_done() frees what it made */
}

static void es_fs_submit(EsRequest *req, EsFsWork *w)
{
	w->req = req;
	w->work.data = w;
	int rc = uv_queue_work(req->client->server->loop, &w->work, es_fs_run, es_fs_done);
	if (rc < 0) {
		free(w->data);
		free(w);
		es_reply_error(req, ES_INTERNAL_ERROR, "%s", uv_strerror(rc));
		return;
	}
	req->pending = w;
	req->cancel = es_fs_cancel;
}

/* A URI the decoder accepted, as a local path; a foreign host is refused (-32600) here. */
static bool es_fs_path(EsRequest *req, json_t *uri, char *path)
{
	char err[AGENTD_PATH_MAX + 64];
	if (es_path_from_uri(json_string_value(uri), path, AGENTD_PATH_MAX, err, sizeof(err)) == ES_PATH_OK)
		return true;
	es_reply_error(req, ES_INVALID_REQUEST, "%s", err);
	return false;
}

/*
 * A restricting `sandbox` (a FileSystemSandboxContext) would confine the operation to the roots
 * of its permission profile. That translation is not done here: rather than run a restricted
 * request unrestricted, it is refused. Unconfined contexts run as if there were none.
 */
static bool es_fs_sandbox_is_supported(EsRequest *req, json_t *sandbox)
{
	if (es_sandbox_is_unconfined(sandbox))
		return true;
	es_reply_error(req, ES_INVALID_REQUEST,
		       "this exec-server does not enforce sandboxes: refusing a file system request under a "
		       "restricted "
		       "sandbox policy");
	return false;
}

#define ES_FS_PATH_FIELD(n)                                                                                  \
	{                                                                                                    \
		.name = (n), .type = ES_T_PATH, .is_required = true                                          \
	}
#define ES_FS_SANDBOX_FIELD                                                                                  \
	{                                                                                                    \
		.name = "sandbox", .type = ES_T_STRUCT, .is_nullable = true,                                 \
		.nested = &es_sandbox_context_spec                                                           \
	}

static const EsField es_path_sandbox_fields[] = { ES_FS_PATH_FIELD("path"), ES_FS_SANDBOX_FIELD };
static const EsStruct es_read_file_params = { "struct WireFsReadFileParams", es_path_sandbox_fields, 2 };
static const EsStruct es_get_metadata_params = { "struct WireFsGetMetadataParams", es_path_sandbox_fields,
						 2 };
static const EsStruct es_read_directory_params = { "struct WireFsReadDirectoryParams", es_path_sandbox_fields,
						   2 };
static const EsStruct es_canonicalize_params = { "struct WireFsCanonicalizeParams", es_path_sandbox_fields,
						 2 };

static const EsField es_write_file_fields[] = {
	ES_FS_PATH_FIELD("path"),
	{ .name = "dataBase64", .type = ES_T_STRING, .is_required = true },
	ES_FS_SANDBOX_FIELD,
};
static const EsStruct es_write_file_params = { "struct WireFsWriteFileParams", es_write_file_fields, 3 };

static const EsField es_create_directory_fields[] = {
	ES_FS_PATH_FIELD("path"),
	{ .name = "recursive", .type = ES_T_BOOL, .is_nullable = true },
	ES_FS_SANDBOX_FIELD,
};
static const EsStruct es_create_directory_params = { "struct WireFsCreateDirectoryParams",
						     es_create_directory_fields, 3 };

static const EsField es_remove_fields[] = {
	ES_FS_PATH_FIELD("path"),
	{ .name = "recursive", .type = ES_T_BOOL, .is_nullable = true },
	{ .name = "force", .type = ES_T_BOOL, .is_nullable = true },
	ES_FS_SANDBOX_FIELD,
};
static const EsStruct es_remove_params = { "struct WireFsRemoveParams", es_remove_fields, 4 };

static const EsField es_copy_fields[] = {
	ES_FS_PATH_FIELD("sourcePath"),
	ES_FS_PATH_FIELD("destinationPath"),
	{ .name = "recursive", .type = ES_T_BOOL, .is_required = true },
	ES_FS_SANDBOX_FIELD,
};
static const EsStruct es_copy_params = { "struct WireFsCopyParams", es_copy_fields, 4 };

/* Decode, check the initialize rules and the sandbox, and make the work item for @op. */
static EsFsWork *es_fs_begin(EsRequest *req, const EsStruct *spec, json_t *params, json_t **v, EsFsOp op)
{
	char err[2 * AGENTD_PATH_MAX];
	if (es_params_decode(spec, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return NULL;
	}
	if (!es_request_is_allowed(req))
		return NULL;
	if (!es_fs_sandbox_is_supported(req, v[spec->count - 1]))
		return NULL;
	EsFsWork *w = calloc(1, sizeof(*w));
	if (!w) {
		es_reply_error(req, ES_INTERNAL_ERROR, "out of memory");
		return NULL;
	}
	w->op = op;
	if (!es_fs_path(req, v[0], w->path)) {
		free(w);
		return NULL;
	}
	return w;
}

void es_method_fs_read_file(EsRequest *req, json_t *params)
{
	json_t *v[2];
	EsFsWork *w = es_fs_begin(req, &es_read_file_params, params, v, ES_FS_READ);
	if (w)
		es_fs_submit(req, w);
}

void es_method_fs_write_file(EsRequest *req, json_t *params)
{
	json_t *v[3];
	EsFsWork *w = es_fs_begin(req, &es_write_file_params, params, v, ES_FS_WRITE);
	if (!w)
		return;
	const char *text = json_string_value(v[1]);
	size_t text_len = json_string_length(v[1]);
	w->data = malloc(base64_decoded_max(text_len) + 1);
	if (!w->data) {
		free(w);
		es_reply_error(req, ES_INTERNAL_ERROR, "out of memory");
		return;
	}
	if (base64_decode(text, text_len, w->data, &w->len) < 0) {
		char why[128];
		base64_describe_error(text, text_len, why, sizeof(why));
		free(w->data);
		free(w);
		es_reply_error(req, ES_INVALID_REQUEST, "fs/writeFile requires valid base64 dataBase64: %s",
			       why);
		return;
	}
	es_fs_submit(req, w);
}

void es_method_fs_create_directory(EsRequest *req, json_t *params)
{
	json_t *v[3];
	EsFsWork *w = es_fs_begin(req, &es_create_directory_params, params, v, ES_FS_MKDIR);
	if (!w)
		return;
	w->is_recursive = !v[1] || json_is_true(v[1]);
	es_fs_submit(req, w);
}

void es_method_fs_get_metadata(EsRequest *req, json_t *params)
{
	json_t *v[2];
	EsFsWork *w = es_fs_begin(req, &es_get_metadata_params, params, v, ES_FS_METADATA);
	if (w)
		es_fs_submit(req, w);
}

void es_method_fs_read_directory(EsRequest *req, json_t *params)
{
	json_t *v[2];
	EsFsWork *w = es_fs_begin(req, &es_read_directory_params, params, v, ES_FS_LIST);
	if (w)
		es_fs_submit(req, w);
}

void es_method_fs_remove(EsRequest *req, json_t *params)
{
	json_t *v[4];
	EsFsWork *w = es_fs_begin(req, &es_remove_params, params, v, ES_FS_REMOVE);
	if (!w)
		return;
	w->is_recursive = !v[1] || json_is_true(v[1]);
	w->is_forced = !v[2] || json_is_true(v[2]);
	es_fs_submit(req, w);
}

void es_method_fs_copy(EsRequest *req, json_t *params)
{
	json_t *v[4];
	EsFsWork *w = es_fs_begin(req, &es_copy_params, params, v, ES_FS_COPY);
	if (!w)
		return;
	if (!es_fs_path(req, v[1], w->path2)) {
		free(w);
		return;
	}
	w->is_recursive = json_is_true(v[2]);
	es_fs_submit(req, w);
}

void es_method_fs_canonicalize(EsRequest *req, json_t *params)
{
	json_t *v[2];
	EsFsWork *w = es_fs_begin(req, &es_canonicalize_params, params, v, ES_FS_CANONICALIZE);
	if (w)
		es_fs_submit(req, w);
}

/* --- fs/join and fs/parent: lexical, no file system access
 * ------------------------------------------------------- */

static const EsField es_join_fields[] = {
	ES_FS_PATH_FIELD("basePath"),
	{ .name = "path", .type = ES_T_STRING, .is_required = true },
};
static const EsStruct es_join_params = { "struct FsJoinParams", es_join_fields, 2 };

static void es_fs_reply_path(EsRequest *req, const char *path)
{
	json_t *result = json_object();
	char *uri = path ? es_path_to_uri(path) : NULL;
	json_object_set_new(result, "path", uri ? json_string(uri) : json_null());
	free(uri);
	es_reply_result(req, result);
}

/* basePath joined with path (itself a URI or an absolute path replaces it, a relative one is appended). */
void es_method_fs_join(EsRequest *req, json_t *params)
{
	json_t *v[2];
	char err[2 * AGENTD_PATH_MAX], base[AGENTD_PATH_MAX], joined[AGENTD_PATH_MAX],
		normal[AGENTD_PATH_MAX];
	if (es_params_decode(&es_join_params, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (!es_request_is_allowed(req) || !es_fs_path(req, v[0], base))
		return;
	const char *rel = json_string_value(v[1]);
	if (strncmp(rel, "file:", 5) == 0) {
		if (!es_fs_path(req, v[1], joined))
			return;
	} else if (rel[0] == '/') {
		snprintf(joined, sizeof(joined), "%s", rel);
	} else if (snprintf(joined, sizeof(joined), "%s/%s", base, rel) >= (int)sizeof(joined)) {
		es_reply_error(req, ES_INVALID_PARAMS, "joined path is too long");
		return;
	}
	int rc = path_normalize(NULL, joined, normal, sizeof(normal));
	if (rc < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s (os error %d)", strerror(-rc), -rc);
		return;
	}
	es_fs_reply_path(req, normal);
}

static const EsField es_parent_fields[] = { ES_FS_PATH_FIELD("path") };
static const EsStruct es_parent_params = { "struct FsParentParams", es_parent_fields, 1 };

/* The parent directory, or null for "/". */
void es_method_fs_parent(EsRequest *req, json_t *params)
{
	json_t *v[1];
	char err[2 * AGENTD_PATH_MAX], path[AGENTD_PATH_MAX];
	if (es_params_decode(&es_parent_params, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (!es_request_is_allowed(req) || !es_fs_path(req, v[0], path))
		return;
	if (strcmp(path, "/") == 0) {
		es_fs_reply_path(req, NULL);
		return;
	}
	char *slash = strrchr(path, '/');
	if (slash == path)
		slash[1] = '\0';
	else
		*slash = '\0';
	es_fs_reply_path(req, path);
}
