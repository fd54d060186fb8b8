/* SPDX-License-Identifier: MIT */
/* proto_thread.c - the thread and turn methods: threads started, resumed, read, listed and steered. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"
#include "proto.h"
#include "rollout.h"
#include "rpc.h"
#include "thread.h"
#include "turn.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

/* --- parameters ---------------------------------------------------------------------------------- */

/* A string member, absent or null allowed (*out NULL). False (answered) when it has another type. */
static bool param_string(Conn *conn, json_t *id, json_t *params, const char *key, const char **out)
{
	json_t *v = json_object_get(params, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `%s` must be a string", key);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

static bool param_required_string(Conn *conn, json_t *id, json_t *params, const char *key, const char **out)
{
	if (!param_string(conn, id, params, key, out))
		return false;
	if (!*out) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `%s`", key);
		return false;
	}
	return true;
}

/* The reference parses thread ids as UUIDs and says so in its error. */
static bool param_thread_id(Conn *conn, json_t *id, json_t *params, const char *label, const char **out)
{
	if (!param_required_string(conn, id, params, "threadId", out))
		return false;
	if (!uuid_is_valid(*out)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "invalid %s id: invalid character: expected an optional prefix of `urn:uuid:` "
				 "followed by [0-9a-fA-F-]",
				 label);
		return false;
	}
	return true;
}

/* UserInput[]: each an object with a string "type"; text parts carry a string "text". */
static bool param_input(Conn *conn, json_t *id, json_t *params, json_t **out)
{
	json_t *input = json_object_get(params, "input");
	if (!input) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `input`");
		return false;
	}
	if (!json_is_array(input)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `input` must be an array");
		return false;
	}
	size_t i;
	json_t *part;
	json_array_foreach (input, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		if (!type) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST,
					 "Invalid request: input[%zu] must be an object with a string `type`", i);
			return false;
		}
		if (strcmp(type, "text") == 0 && !json_is_string(json_object_get(part, "text"))) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: input[%zu] missing field `text`",
					 i);
			return false;
		}
	}
	*out = input;
	return true;
}

/* SandboxMode (kebab-case) → the v2 SandboxPolicy object. */
static json_t *sandbox_policy_for_mode(const char *mode)
{
	if (strcmp(mode, "danger-full-access") == 0)
		return json_pack("{s:s}", "type", "dangerFullAccess");
	if (strcmp(mode, "workspace-write") == 0)
		return json_pack("{s:s,s:[],s:b,s:b,s:b}", "type", "workspaceWrite", "writableRoots", "networkAccess", 0,
				 "excludeTmpdirEnvVar", 0, "excludeSlashTmp", 0);
	if (strcmp(mode, "read-only") == 0)
		return json_pack("{s:s,s:b}", "type", "readOnly", "networkAccess", 0);
	return NULL;
}

static const char *config_string(const Agentd *server, const char *key)
{
	json_t *v = config_lookup(&server->config, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* cwd made absolute against agentd's own and normalised (the reference accepts relative ones). */
static bool thread_resolve_cwd(Conn *conn, json_t *id, const char *cwd, char *out, size_t out_len)
{
	char base[PATH_MAX], joined[PATH_MAX * 2];
	if (!cwd || !cwd[0]) {
		if (!getcwd(base, sizeof(base)))
			snprintf(base, sizeof(base), "/");
		cwd = base;
	} else if (cwd[0] != '/') {
		if (!getcwd(base, sizeof(base)))
			snprintf(base, sizeof(base), "/");
		snprintf(joined, sizeof(joined), "%s/%s", base, cwd);
		cwd = joined;
	}
	if (path_normalize(NULL, cwd, out, out_len) < 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: cwd is not a valid path");
		return false;
	}
	return true;
}

/* Settings a request may override: thread/start and thread/resume share them. */
typedef struct ThreadSettings {
	const char *model, *model_provider, *approval, *sandbox_mode, *base_instructions, *developer_instructions;
	const char *cwd;
} ThreadSettings;

static bool thread_read_settings(Conn *conn, json_t *id, json_t *params, ThreadSettings *s)
{
	*s = (ThreadSettings){ 0 };
	return param_string(conn, id, params, "model", &s->model) &&
	       param_string(conn, id, params, "modelProvider", &s->model_provider) &&
	       param_string(conn, id, params, "approvalPolicy", &s->approval) &&
	       param_string(conn, id, params, "sandbox", &s->sandbox_mode) &&
	       param_string(conn, id, params, "baseInstructions", &s->base_instructions) &&
	       param_string(conn, id, params, "developerInstructions", &s->developer_instructions) &&
	       param_string(conn, id, params, "cwd", &s->cwd);
}

static void replace_string(char **slot, const char *value)
{
	if (!value)
		return;
	free(*slot);
	*slot = strdup(value);
}

/* Apply @s over what @thread has (its defaults or its restored state). False (answered) on a bad value. */
static bool thread_apply_settings(Conn *conn, json_t *id, Thread *thread, const ThreadSettings *s)
{
	if (s->approval && approval_policy_parse(s->approval, &thread->approval) < 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: unknown variant `%s`, expected one of "
				 "`untrusted`, `on-failure`, `on-request`, `never`", s->approval);
		return false;
	}
	if (s->sandbox_mode) {
		json_t *policy = sandbox_policy_for_mode(s->sandbox_mode);
		if (!policy) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: unknown variant `%s`, expected one "
					 "of `read-only`, `workspace-write`, `danger-full-access`", s->sandbox_mode);
			return false;
		}
		json_decref(thread->sandbox);
		thread->sandbox = policy;
	}
	if (s->cwd) {
		char cwd[PATH_MAX];
		if (!thread_resolve_cwd(conn, id, s->cwd, cwd, sizeof(cwd)))
			return false;
		replace_string(&thread->cwd, cwd);
	}
	replace_string(&thread->model, s->model);
	replace_string(&thread->model_provider, s->model_provider);
	replace_string(&thread->base_instructions, s->base_instructions);
	replace_string(&thread->developer_instructions, s->developer_instructions);
	return true;
}

/* A new thread's settings from config.toml (before the request's overrides). */
static void thread_defaults(Agentd *server, Thread *thread, Conn *conn)
{
	const char *model = config_string(server, "model");
	const char *provider = config_string(server, "model_provider");
	const char *approval = config_string(server, "approval_policy");
	const char *mode = config_string(server, "sandbox_mode");
	const char *effort = config_string(server, "model_reasoning_effort");
	const char *summary = config_string(server, "model_reasoning_summary");
	thread->model = strdup(model ? model : PROTO_DEFAULT_MODEL);
	thread->model_provider = strdup(provider ? provider : "openai");
	if (!approval || approval_policy_parse(approval, &thread->approval) < 0)
		thread->approval = APPROVAL_ON_REQUEST;
	thread->sandbox = sandbox_policy_for_mode(mode ? mode : "read-only");
	if (!thread->sandbox)
		thread->sandbox = sandbox_policy_for_mode("read-only");
	thread->reasoning_effort = effort ? strdup(effort) : NULL;
	thread->reasoning_summary = summary ? strdup(summary) : NULL;
	thread->source = strdup("vscode");
	thread->originator = strdup(server->has_originator ? server->originator
				    : conn->client_name[0]   ? conn->client_name
							     : "codex_cli_rs");
	thread->preview = strdup("");
}

/* --- rollouts ------------------------------------------------------------------------------------ */

/* The reference's session_meta fields, and agentd's own settings under "agentd" (resume restores them). */
static json_t *thread_session_meta(const Thread *thread)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:O,s:s?,s:s?,s:s?,s:s?}}", "id", thread->id,
			 "session_id", thread->id, "cwd", thread->cwd, "originator", thread->originator, "cli_version",
			 PACKAGE_VERSION, "source", thread->source, "model_provider", thread->model_provider, "agentd",
			 "model", thread->model, "approval_policy", approval_policy_name(thread->approval), "sandbox",
			 thread->sandbox, "reasoning_effort", thread->reasoning_effort, "reasoning_summary",
			 thread->reasoning_summary, "base_instructions", thread->base_instructions,
			 "developer_instructions", thread->developer_instructions);
}

static int thread_create_rollout(Thread *thread, char *err, size_t err_len)
{
	json_t *meta = thread_session_meta(thread);
	if (!meta) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	int rc = rollout_create(thread->server->config.codex_home, thread->id, thread_now_ms(), meta,
				&thread->rollout, err, err_len);
	json_decref(meta);
	if (rc == 0)
		thread->path = strdup(rollout_path(thread->rollout));
	return rc;
}

/* --- thread/start -------------------------------------------------------------------------------- */

void proto_thread_start(Conn *conn, json_t *id, json_t *params)
{
	Agentd *server = conn->server;
	ThreadSettings s;
	json_t *ephemeral = json_object_get(params, "ephemeral");
	if (!thread_read_settings(conn, id, params, &s))
		return;
	if (ephemeral && !json_is_null(ephemeral) && !json_is_boolean(ephemeral)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `ephemeral` must be a boolean");
		return;
	}
	char thread_id[UUID_TEXT_LEN + 1];
	if (uuid_v7(thread_id) < 0) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "cannot make a thread id");
		return;
	}
	Thread *thread = thread_new(server, thread_id);
	if (!thread) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	thread_defaults(server, thread, conn);
	char cwd[PATH_MAX];
	if (!thread_resolve_cwd(conn, id, s.cwd, cwd, sizeof(cwd))) {
		thread_free(thread);
		return;
	}
	thread->cwd = strdup(cwd);
	s.cwd = NULL;
	if (!thread_apply_settings(conn, id, thread, &s)) {
		thread_free(thread);
		return;
	}
	thread->is_ephemeral = json_is_true(ephemeral);
	thread->created_at = thread->updated_at = thread_now_ms() / 1000;
	char err[512];
	if (!thread->is_ephemeral && thread_create_rollout(thread, err, sizeof(err)) < 0) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "failed to create the thread's rollout: %s", err);
		thread_free(thread);
		return;
	}
	thread_subscribe(thread, conn->id);
	conn_reply(conn, id, thread_response_json(thread, false));
	thread_notify(thread, "thread/started", json_pack("{s:o}", "thread", thread_json(thread, false)));
}

/* --- restoring a thread from its rollout --------------------------------------------------------- */

typedef struct Restore {
	Thread *thread;
	json_t *turn; /* the turn being read back, or NULL */
	bool has_meta;
} Restore;

static void restore_meta(Restore *r, json_t *payload, const char *timestamp)
{
	Thread *t = r->thread;
	const char *cwd = json_string_value(json_object_get(payload, "cwd"));
	const char *provider = json_string_value(json_object_get(payload, "model_provider"));
	const char *originator = json_string_value(json_object_get(payload, "originator"));
	json_t *source = json_object_get(payload, "source");
	json_t *ours = json_object_get(payload, "agentd");
	replace_string(&t->cwd, cwd);
	replace_string(&t->model_provider, provider);
	replace_string(&t->originator, originator);
	if (json_is_string(source))
		replace_string(&t->source, json_string_value(source));
	if (json_is_object(ours)) {
		const char *approval = json_string_value(json_object_get(ours, "approval_policy"));
		json_t *sandbox = json_object_get(ours, "sandbox");
		replace_string(&t->model, json_string_value(json_object_get(ours, "model")));
		if (approval)
			approval_policy_parse(approval, &t->approval);
		if (json_is_object(sandbox)) {
			json_decref(t->sandbox);
			t->sandbox = json_incref(sandbox);
		}
		replace_string(&t->reasoning_effort, json_string_value(json_object_get(ours, "reasoning_effort")));
		replace_string(&t->reasoning_summary, json_string_value(json_object_get(ours, "reasoning_summary")));
		replace_string(&t->base_instructions, json_string_value(json_object_get(ours, "base_instructions")));
		replace_string(&t->developer_instructions,
			       json_string_value(json_object_get(ours, "developer_instructions")));
	}
	(void)timestamp;
	r->has_meta = true;
}

static void restore_end_turn(Restore *r, const char *status, json_t *error, json_t *completed_at)
{
	if (!r->turn)
		return;
	json_object_set_new(r->turn, "status", json_string(status));
	json_object_set(r->turn, "error", error ? error : json_null());
	json_object_set(r->turn, "completedAt", completed_at ? completed_at : json_null());
	json_int_t started = json_integer_value(json_object_get(r->turn, "startedAt"));
	json_object_set_new(r->turn, "durationMs",
			    json_is_integer(completed_at) ? json_integer((json_integer_value(completed_at) - started) * 1000)
							  : json_null());
	json_array_append_new(r->thread->turns, r->turn);
	r->turn = NULL;
}

static void restore_event(Restore *r, json_t *payload)
{
	const char *type = json_string_value(json_object_get(payload, "type"));
	if (!type)
		return;
	if (strcmp(type, "task_started") == 0) {
		const char *turn_id = json_string_value(json_object_get(payload, "turn_id"));
		restore_end_turn(r, "interrupted", NULL, NULL);
		if (!turn_id)
			return;
		r->turn = json_pack("{s:s,s:s,s:[],s:s,s:s,s:n,s:O}", "id", turn_id, "rootTurnId", turn_id, "items",
				    "itemsView", "full", "status", "inProgress", "error", "startedAt",
				    json_object_get(payload, "started_at") ? json_object_get(payload, "started_at")
									   : json_null());
	} else if (strcmp(type, "item_completed") == 0 && r->turn) {
		json_t *item = json_object_get(payload, "item");
		const char *item_type = json_string_value(json_object_get(item, "type"));
		/* v2 items (ours) start lowercase; the reference's core items do not. */
		if (item_type && item_type[0] >= 'a' && item_type[0] <= 'z')
			json_array_append(json_object_get(r->turn, "items"), item);
	} else if (strcmp(type, "task_complete") == 0 && r->turn) {
		const char *status = json_string_value(json_object_get(payload, "status"));
		json_t *error = json_object_get(payload, "error");
		restore_end_turn(r, status ? status : "completed", json_is_object(error) ? error : NULL,
				 json_object_get(payload, "completed_at"));
	} else if (strcmp(type, "user_message") == 0) {
		const char *text = json_string_value(json_object_get(payload, "message"));
		if (text && (!r->thread->preview || !r->thread->preview[0]))
			replace_string(&r->thread->preview, text);
	} else if (strcmp(type, "token_count") == 0) {
		json_t *total = json_object_get(json_object_get(payload, "info"), "total_token_usage");
		if (json_is_object(total)) {
			json_decref(r->thread->usage_total);
			r->thread->usage_total = json_deep_copy(total);
		}
	}
}

/* A turn_context line (the reference's or ours): the settings of that turn, the thread's since. */
static void restore_turn_context(Restore *r, json_t *payload)
{
	Thread *t = r->thread;
	const char *approval = json_string_value(json_object_get(payload, "approval_policy"));
	const char *mode = json_string_value(json_object_get(json_object_get(payload, "sandbox_policy"), "type"));
	json_t *ours = json_object_get(payload, "agentd");
	json_t *exact = json_object_get(ours, "sandbox");
	json_t *effort = json_object_get(payload, "effort");
	replace_string(&t->cwd, json_string_value(json_object_get(payload, "cwd")));
	replace_string(&t->model, json_string_value(json_object_get(payload, "model")));
	if (approval)
		approval_policy_parse(approval, &t->approval);
	json_t *policy = json_is_object(exact) ? json_incref(exact) : mode ? sandbox_policy_for_mode(mode) : NULL;
	if (policy) {
		json_decref(t->sandbox);
		t->sandbox = policy;
	}
	if (effort) {
		free(t->reasoning_effort);
		t->reasoning_effort = json_is_string(effort) ? strdup(json_string_value(effort)) : NULL;
	}
	/* The reference's "summary" may be "none", which is no request value: only agentd's own counts. */
	replace_string(&t->reasoning_summary, json_string_value(json_object_get(ours, "reasoning_summary")));
}

static int restore_line(void *ctx, const RolloutLine *line)
{
	Restore *r = ctx;
	if (strcmp(line->type, "session_meta") == 0)
		restore_meta(r, line->payload, line->timestamp);
	else if (strcmp(line->type, "turn_context") == 0)
		restore_turn_context(r, line->payload);
	else if (strcmp(line->type, "response_item") == 0)
		json_array_append(r->thread->history, line->payload);
	else if (strcmp(line->type, "event_msg") == 0)
		restore_event(r, line->payload);
	return 0;
}

/*
 * Read @path back into a new thread @thread_id (registered: the caller frees it when it only
 * wanted to read it). *@warning says what of the file was skipped. NULL with @err on failure.
 */
static Thread *thread_restore(Conn *conn, const char *thread_id, const char *path, bool is_archived, char *warning,
			      size_t warning_len, char *err, size_t err_len)
{
	Agentd *server = conn->server;
	Thread *thread = thread_new(server, thread_id);
	if (!thread) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	thread_defaults(server, thread, conn);
	thread->cwd = strdup("/");
	Restore r = { .thread = thread };
	int rc = rollout_load(path, restore_line, &r, warning, warning_len);
	restore_end_turn(&r, "interrupted", NULL, NULL);
	if (rc < 0 || !r.has_meta) {
		snprintf(err, err_len, "failed to load rollout `%s`: %s", path, warning[0] ? warning : strerror(-rc));
		thread_free(thread);
		return NULL;
	}
	thread->path = strdup(path);
	thread->is_archived = is_archived;
	thread->has_context = json_array_size(thread->history) > 0;
	json_t *first = json_array_get(thread->turns, 0);
	struct stat st;
	thread->created_at = first ? json_integer_value(json_object_get(first, "startedAt")) : 0;
	thread->updated_at = stat(path, &st) == 0 ? (int64_t)st.st_mtime : thread->created_at;
	if (!thread->created_at)
		thread->created_at = thread->updated_at;
	char *name = NULL;
	if (rollout_name_get(server->config.codex_home, thread_id, &name) == 0 && name) {
		free(thread->name);
		thread->name = name;
	}
	return thread;
}

/* The thread, loaded or read from disk into a temporary one (*@is_temporary: free it after). */
static Thread *thread_lookup(Conn *conn, json_t *id, const char *thread_id, bool *is_temporary)
{
	*is_temporary = false;
	Thread *thread = thread_find(conn->server, thread_id);
	if (thread)
		return thread;
	char path[PATH_MAX], warning[512] = "", err[800];
	bool is_archived = false;
	if (rollout_find(conn->server->config.codex_home, thread_id, true, path, sizeof(path), &is_archived) < 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "thread not loaded: %s", thread_id);
		return NULL;
	}
	thread = thread_restore(conn, thread_id, path, is_archived, warning, sizeof(warning), err, sizeof(err));
	if (!thread) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "%s", err);
		return NULL;
	}
	*is_temporary = true;
	return thread;
}

/* --- thread/resume ------------------------------------------------------------------------------- */

void proto_thread_resume(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id;
	ThreadSettings s;
	if (!param_thread_id(conn, id, params, "session", &thread_id) || !thread_read_settings(conn, id, params, &s))
		return;
	json_t *exclude = json_object_get(params, "excludeTurns");
	Thread *thread = thread_find(conn->server, thread_id);
	if (!thread) {
		char path[PATH_MAX], warning[512] = "", err[800];
		bool is_archived = false;
		if (rollout_find(conn->server->config.codex_home, thread_id, false, path, sizeof(path), &is_archived) <
		    0) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "no rollout found for thread id %s", thread_id);
			return;
		}
		thread = thread_restore(conn, thread_id, path, false, warning, sizeof(warning), err, sizeof(err));
		if (!thread) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "%s", err);
			return;
		}
		/* A thread resumed runs with today's configuration, as a new one would: its provider is the
		 * configured one unless the request names one (the rollout's is only a record). */
		if (!s.model_provider) {
			const char *configured = config_string(conn->server, "model_provider");
			replace_string(&thread->model_provider, configured ? configured : "openai");
		}
		char rollout_err[400];
		if (rollout_open(path, &thread->rollout, rollout_err, sizeof(rollout_err)) < 0)
			log_warn("thread %s: resumed without persistence: %s", thread_id, rollout_err);
		if (warning[0]) {
			thread_subscribe(thread, conn->id);
			thread_notify(thread, "warning",
				      json_pack("{s:s,s:s}", "threadId", thread->id, "message", warning));
			thread_unsubscribe(thread, conn->id);
		}
	}
	if (!thread_apply_settings(conn, id, thread, &s))
		return;
	thread_subscribe(thread, conn->id);
	conn_reply(conn, id, thread_response_json(thread, !json_is_true(exclude)));
}

/* --- thread/read, thread/turns/list, thread/loaded/list ------------------------------------------- */

void proto_thread_read(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id;
	if (!param_thread_id(conn, id, params, "thread", &thread_id))
		return;
	bool is_temporary;
	Thread *thread = thread_lookup(conn, id, thread_id, &is_temporary);
	if (!thread)
		return;
	json_t *obj = thread_json(thread, json_is_true(json_object_get(params, "includeTurns")));
	if (is_temporary) {
		json_object_set_new(obj, "status", json_pack("{s:s}", "type", "notLoaded"));
		thread_free(thread);
	}
	conn_reply(conn, id, json_pack("{s:o}", "thread", obj));
}

/* An opaque cursor over a list: the index of the next entry, as a decimal string. */
static bool list_cursor(Conn *conn, json_t *id, json_t *params, size_t *start, size_t *limit, size_t fallback)
{
	const char *cursor;
	json_t *lim = json_object_get(params, "limit");
	if (!param_string(conn, id, params, "cursor", &cursor))
		return false;
	*start = 0;
	if (cursor) {
		char *end;
		unsigned long long v = strtoull(cursor, &end, 10);
		if (!cursor[0] || *end) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "invalid cursor: %s", cursor);
			return false;
		}
		*start = (size_t)v;
	}
	*limit = fallback;
	if (lim && !json_is_null(lim)) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 0) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `limit` must be a non-negative integer");
			return false;
		}
		*limit = json_integer_value(lim) ? (size_t)json_integer_value(lim) : fallback;
	}
	return true;
}

static json_t *list_next_cursor(size_t next, size_t total)
{
	if (next >= total)
		return json_null();
	char text[32];
	snprintf(text, sizeof(text), "%zu", next);
	return json_string(text);
}

void proto_thread_turns_list(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id, *direction;
	size_t start, limit;
	if (!param_thread_id(conn, id, params, "thread", &thread_id) ||
	    !param_string(conn, id, params, "sortDirection", &direction) ||
	    !list_cursor(conn, id, params, &start, &limit, 25))
		return;
	bool is_temporary;
	Thread *thread = thread_lookup(conn, id, thread_id, &is_temporary);
	if (!thread)
		return;
	/* The reference's two refusals: nothing is stored for either (the TUI expects both). */
	if (thread->is_ephemeral || (json_array_size(thread->turns) == 0 && !thread->turn)) {
		if (thread->is_ephemeral)
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "ephemeral threads do not support thread/turns/list");
		else
			conn_reply_error(conn, id, RPC_INVALID_REQUEST,
					 "thread %s is not materialized yet; thread/turns/list is unavailable before "
					 "first user message",
					 thread->id);
		if (is_temporary)
			thread_free(thread);
		return;
	}
	json_t *all = json_deep_copy(thread->turns);
	if (thread->turn)
		json_array_append_new(all, turn_json(thread->turn, true));
	bool is_ascending = direction && strcmp(direction, "asc") == 0;
	size_t total = json_array_size(all);
	json_t *data = json_array();
	for (size_t i = start; i < total && json_array_size(data) < limit; i++)
		json_array_append(data, json_array_get(all, is_ascending ? i : total - 1 - i));
	size_t next = start + json_array_size(data);
	conn_reply(conn, id,
		   json_pack("{s:o,s:o,s:o}", "data", data, "nextCursor", list_next_cursor(next, total), "backwardsCursor",
			     start > 0 ? json_sprintf("%zu", start > limit ? start - limit : 0) : json_null()));
	json_decref(all);
	if (is_temporary)
		thread_free(thread);
}

void proto_thread_loaded_list(Conn *conn, json_t *id, json_t *params)
{
	size_t start, limit;
	if (!list_cursor(conn, id, params, &start, &limit, SIZE_MAX))
		return;
	json_t *ids = json_array();
	for (Thread *t = conn->server->threads; t; t = t->next)
		json_array_insert_new(ids, 0, json_string(t->id)); /* oldest first */
	size_t total = json_array_size(ids);
	json_t *data = json_array();
	for (size_t i = start; i < total && json_array_size(data) < limit; i++)
		json_array_append(data, json_array_get(ids, i));
	size_t next = start + json_array_size(data);
	conn_reply(conn, id, json_pack("{s:o,s:o}", "data", data, "nextCursor", list_next_cursor(next, total)));
	json_decref(ids);
}

/* --- thread/list --------------------------------------------------------------------------------- */

static bool list_strings(Conn *conn, json_t *id, json_t *params, const char *key, const char ***out, size_t *n,
			 bool *is_given)
{
	json_t *v = json_object_get(params, key);
	*out = NULL;
	*n = 0;
	if (is_given)
		*is_given = false;
	if (!v || json_is_null(v))
		return true;
	if (json_is_string(v) && is_given) { /* cwd: one path or a list */
		*out = calloc(1, sizeof(char *));
		(*out)[0] = json_string_value(v);
		*n = 1;
		*is_given = true;
		return true;
	}
	if (!json_is_array(v)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `%s` must be an array", key);
		return false;
	}
	*out = calloc(json_array_size(v) + 1, sizeof(char *));
	size_t i;
	json_t *item;
	json_array_foreach (v, i, item) {
		if (!json_is_string(item)) {
			free(*out);
			*out = NULL;
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `%s` must hold strings", key);
			return false;
		}
		(*out)[(*n)++] = json_string_value(item);
	}
	if (is_given)
		*is_given = true;
	return true;
}

static json_t *summary_thread_json(Agentd *server, const RolloutSummary *s)
{
	Thread *loaded = thread_find(server, s->thread_id);
	if (loaded) {
		json_t *obj = thread_json(loaded, false);
		return obj;
	}
	const json_t *meta = s->session_meta;
	json_t *model = json_object_get(json_object_get(meta, "agentd"), "model");
	const char *source = json_string_value(json_object_get(meta, "source"));
	json_t *obj = json_object();
	json_object_set_new(obj, "id", json_string(s->thread_id));
	json_object_set_new(obj, "sessionId", json_string(s->thread_id));
	json_object_set_new(obj, "forkedFromId", json_null());
	json_object_set_new(obj, "parentThreadId", json_null());
	json_object_set_new(obj, "preview", json_string(s->preview ? s->preview : ""));
	json_object_set_new(obj, "ephemeral", json_false());
	json_object_set_new(obj, "projectId", json_null());
	json_object_set_new(obj, "modelProvider", json_string(s->model_provider ? s->model_provider : ""));
	json_object_set(obj, "model", json_is_string(model) ? model : json_null());
	json_object_set_new(obj, "reasoningEffort", json_null());
	json_object_set_new(obj, "createdAt", json_integer(s->created_at));
	json_object_set_new(obj, "updatedAt", json_integer(s->updated_at));
	json_object_set_new(obj, "recencyAt", json_integer(s->updated_at));
	json_object_set_new(obj, "status", json_pack("{s:s}", "type", "notLoaded"));
	json_object_set_new(obj, "path", json_string(s->path));
	json_object_set_new(obj, "cwd", json_string(s->cwd ? s->cwd : ""));
	json_object_set(obj, "cliVersion",
			json_is_string(json_object_get(meta, "cli_version")) ? json_object_get(meta, "cli_version")
									      : json_string(""));
	json_object_set(obj, "originator",
			json_is_string(json_object_get(meta, "originator")) ? json_object_get(meta, "originator")
									     : json_null());
	json_object_set_new(obj, "source", json_string(source ? source : "vscode"));
	json_object_set_new(obj, "threadSource", json_null());
	json_object_set_new(obj, "agentNickname", json_null());
	json_object_set_new(obj, "agentRole", json_null());
	json_object_set_new(obj, "gitInfo", json_null());
	json_object_set_new(obj, "name", s->name ? json_string(s->name) : json_null());
	json_object_set_new(obj, "turns", json_array());
	return obj;
}

void proto_thread_list(Conn *conn, json_t *id, json_t *params)
{
	Agentd *server = conn->server;
	RolloutListQuery q = { 0 };
	const char *sort_key, *direction, *search;
	const char **providers = NULL, **cwds = NULL, **kinds = NULL, **excluded = NULL;
	size_t n_kinds = 0;
	json_t *lim = params ? json_object_get(params, "limit") : NULL;
	if (!param_string(conn, id, params, "cursor", &q.cursor) || !param_string(conn, id, params, "sortKey", &sort_key) ||
	    !param_string(conn, id, params, "sortDirection", &direction) ||
	    !param_string(conn, id, params, "searchTerm", &search))
		return;
	if (lim && !json_is_null(lim) && (!json_is_integer(lim) || json_integer_value(lim) < 0)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `limit` must be a non-negative integer");
		return;
	}
	if (!list_strings(conn, id, params, "modelProviders", &providers, &q.n_model_providers, NULL) ||
	    !list_strings(conn, id, params, "cwd", &cwds, &q.n_cwds, &q.has_cwd_filter) ||
	    !list_strings(conn, id, params, "sourceKinds", &kinds, &n_kinds, NULL) ||
	    !list_strings(conn, id, params, "excludedThreadIds", &excluded, &q.n_excluded_ids, NULL))
		goto out;
	q.limit = json_is_integer(lim) ? (size_t)json_integer_value(lim) : 0;
	json_t *section = json_object_get(params, "sectionId");
	bool is_section_sort = sort_key && strcmp(sort_key, "section_position") == 0;
	if (is_section_sort && (!section || json_is_null(section))) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "section-position sorting requires a section filter");
		goto out;
	}
	/* agentd keeps no sections, so no thread is in the one asked for. */
	if (section && !json_is_null(section)) {
		conn_reply(conn, id,
			   json_pack("{s:[],s:{},s:n,s:n}", "data", "readStates", "nextCursor", "backwardsCursor"));
		goto out;
	}
	q.sort_key = sort_key && (strcmp(sort_key, "updated_at") == 0 || strcmp(sort_key, "recency_at") == 0)
			     ? ROLLOUT_SORT_UPDATED_AT
			     : ROLLOUT_SORT_CREATED_AT;
	q.is_ascending = direction && strcmp(direction, "asc") == 0;
	q.is_archived = json_is_true(json_object_get(params, "archived"));
	q.search_term = search;
	q.model_providers = providers;
	q.cwds = cwds;
	q.excluded_ids = excluded;
	const char *default_provider = config_string(server, "model_provider");
	q.default_provider = default_provider ? default_provider : "openai";
	for (size_t i = 0; i < n_kinds; i++) {
		unsigned mask = rollout_source_kind_mask(kinds[i]);
		if (!mask) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: unknown variant `%s`", kinds[i]);
			goto out;
		}
		q.source_mask |= mask;
	}
	RolloutListPage page;
	char err[400];
	if (rollout_list(server->config.codex_home, &q, &page, err, sizeof(err)) < 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "%s", err);
		goto out;
	}
	json_t *data = json_array(), *read_states = json_object();
	for (size_t i = 0; i < page.count; i++) {
		json_array_append_new(data, summary_thread_json(server, &page.items[i]));
		Thread *loaded = thread_find(server, page.items[i].thread_id);
		json_t *state = loaded ? thread_read_state_json(loaded) : NULL;
		if (state)
			json_object_set_new(read_states, loaded->id, state);
	}
	conn_reply(conn, id,
		   json_pack("{s:o,s:o,s:o,s:o}", "data", data, "readStates", read_states, "nextCursor",
			     page.next_cursor ? json_string(page.next_cursor) : json_null(), "backwardsCursor",
			     page.backwards_cursor ? json_string(page.backwards_cursor) : json_null()));
	rollout_list_page_free(&page);
out:
	free(providers);
	free(cwds);
	free(kinds);
	free(excluded);
}

/* --- archive, unarchive, name, unsubscribe -------------------------------------------------------- */

void proto_thread_archive(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id;
	if (!param_thread_id(conn, id, params, "thread", &thread_id))
		return;
	char err[400];
	int rc = rollout_archive(conn->server->config.codex_home, thread_id, err, sizeof(err));
	if (rc < 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "%s", err);
		return;
	}
	Thread *thread = thread_find(conn->server, thread_id);
	conn_reply(conn, id, json_object());
	json_t *note = json_pack("{s:s}", "threadId", thread_id);
	if (thread) {
		thread->is_archived = true;
		char path[PATH_MAX];
		if (rollout_find(conn->server->config.codex_home, thread_id, true, path, sizeof(path), NULL) == 0)
			replace_string(&thread->path, path);
		if (!thread_is_subscribed(thread, conn->id))
			conn_notify(conn, "thread/archived", json_incref(note));
		thread_notify(thread, "thread/archived", note);
	} else {
		conn_notify(conn, "thread/archived", note);
	}
}

void proto_thread_unarchive(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id;
	if (!param_thread_id(conn, id, params, "thread", &thread_id))
		return;
	char err[400], path[PATH_MAX];
	if (rollout_unarchive(conn->server->config.codex_home, thread_id, path, sizeof(path), err, sizeof(err)) < 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "%s", err);
		return;
	}
	Thread *thread = thread_find(conn->server, thread_id);
	if (thread) {
		thread->is_archived = false;
		replace_string(&thread->path, path);
		conn_reply(conn, id, json_pack("{s:o}", "thread", thread_json(thread, false)));
	} else {
		bool is_temporary;
		thread = thread_lookup(conn, id, thread_id, &is_temporary);
		if (!thread)
			return;
		json_t *obj = thread_json(thread, false);
		json_object_set_new(obj, "status", json_pack("{s:s}", "type", "notLoaded"));
		if (is_temporary)
			thread_free(thread);
		conn_reply(conn, id, json_pack("{s:o}", "thread", obj));
	}
	conn_notify(conn, "thread/unarchived", json_pack("{s:s}", "threadId", thread_id));
}

void proto_thread_name_set(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id, *name;
	if (!param_thread_id(conn, id, params, "thread", &thread_id) ||
	    !param_required_string(conn, id, params, "name", &name))
		return;
	Agentd *server = conn->server;
	char path[PATH_MAX];
	if (!thread_find(server, thread_id) &&
	    rollout_find(server->config.codex_home, thread_id, true, path, sizeof(path), NULL) < 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "no rollout found for thread id %s", thread_id);
		return;
	}
	if (rollout_name_set(server->config.codex_home, thread_id, name, thread_now_ms()) < 0) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "failed to record the thread's name");
		return;
	}
	Thread *thread = thread_find(server, thread_id);
	conn_reply(conn, id, json_object());
	json_t *note = json_pack("{s:s,s:s}", "threadId", thread_id, "threadName", name);
	if (thread) {
		replace_string(&thread->name, name);
		if (!thread_is_subscribed(thread, conn->id))
			conn_notify(conn, "thread/name/updated", json_incref(note));
		thread_notify(thread, "thread/name/updated", note);
	} else {
		conn_notify(conn, "thread/name/updated", note);
	}
}

void proto_thread_unsubscribe(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id;
	if (!param_thread_id(conn, id, params, "thread", &thread_id))
		return;
	Thread *thread = thread_find(conn->server, thread_id);
	const char *status = !thread ? "notLoaded" : thread_unsubscribe(thread, conn->id) ? "unsubscribed" : "notSubscribed";
	conn_reply(conn, id, json_pack("{s:s}", "status", status));
}

/* The position an "unread" mark sets: the newest turn, or the thread's start when it has none. */
static json_t *read_state_unread_position(const Thread *thread)
{
	json_t *last = json_array_get(thread->turns, json_array_size(thread->turns) - 1);
	const char *turn_id = json_string_value(json_object_get(last, "id"));
	if (turn_id)
		return json_pack("{s:s,s:s}", "type", "turn", "turnId", turn_id);
	return json_pack("{s:s}", "type", "threadStart");
}

void proto_thread_read_state_update(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id, *revision;
	if (!param_thread_id(conn, id, params, "thread", &thread_id))
		return;
	const char *operation = json_string_value(json_object_get(json_object_get(params, "operation"), "type"));
	if (!operation || (strcmp(operation, "read") != 0 && strcmp(operation, "unread") != 0)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: `operation` must be {\"type\":\"read\"} or {\"type\":\"unread\"}");
		return;
	}
	if (!param_required_string(conn, id, params, "expectedRevision", &revision))
		return;
	Thread *thread = thread_find(conn->server, thread_id);
	if (!thread || !thread->read_revision[0]) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "thread read state unavailable");
		return;
	}
	/* The revision guards against marks made without seeing the latest activity. */
	if (strcmp(revision, thread->read_revision) != 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "thread read state revision mismatch: expected %s, current %s", revision,
				 thread->read_revision);
		return;
	}
	bool is_subscribed = thread_is_subscribed(thread, conn->id);
	thread_set_unread(thread, strcmp(operation, "read") == 0 ? NULL : read_state_unread_position(thread), false);
	json_t *state = thread_read_state_json(thread);
	if (!is_subscribed)
		conn_notify(conn, "thread/readState/changed",
			    json_pack("{s:s,s:O}", "threadId", thread->id, "readState", state));
	conn_reply(conn, id, json_pack("{s:o}", "readState", state));
}

/* --- turns --------------------------------------------------------------------------------------- */

static Thread *turn_thread(Conn *conn, json_t *id, json_t *params)
{
	const char *thread_id;
	if (!param_thread_id(conn, id, params, "thread", &thread_id))
		return NULL;
	Thread *thread = thread_find(conn->server, thread_id);
	if (!thread)
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "thread not found: %s", thread_id);
	return thread;
}

/* Overrides for this turn and the ones after it. */
static bool turn_apply_overrides(Conn *conn, json_t *id, Thread *thread, json_t *params)
{
	ThreadSettings s = { 0 };
	const char *effort, *summary;
	if (!param_string(conn, id, params, "model", &s.model) || !param_string(conn, id, params, "cwd", &s.cwd) ||
	    !param_string(conn, id, params, "approvalPolicy", &s.approval) ||
	    !param_string(conn, id, params, "effort", &effort) || !param_string(conn, id, params, "summary", &summary))
		return false;
	json_t *policy = json_object_get(params, "sandboxPolicy");
	if (policy && !json_is_null(policy)) {
		const char *type = json_string_value(json_object_get(policy, "type"));
		if (!json_is_object(policy) || !type ||
		    (strcmp(type, "readOnly") && strcmp(type, "workspaceWrite") && strcmp(type, "dangerFullAccess") &&
		     strcmp(type, "externalSandbox"))) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: invalid `sandboxPolicy`");
			return false;
		}
	}
	if (!thread_apply_settings(conn, id, thread, &s))
		return false;
	if (policy && json_is_object(policy)) {
		json_decref(thread->sandbox);
		thread->sandbox = json_deep_copy(policy);
	}
	replace_string(&thread->reasoning_effort, effort);
	replace_string(&thread->reasoning_summary, summary);
	return true;
}

void proto_turn_start(Conn *conn, json_t *id, json_t *params)
{
	json_t *input;
	if (!param_input(conn, id, params, &input))
		return;
	Thread *thread = turn_thread(conn, id, params);
	if (!thread)
		return;
	if (thread->turn) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "a turn is already running on thread %s: steer it "
				 "(turn/steer) or interrupt it (turn/interrupt) first", thread->id);
		return;
	}
	json_t *schema = json_object_get(params, "outputSchema");
	if (schema && !json_is_null(schema) && !json_is_object(schema)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `outputSchema` must be an object");
		return;
	}
	if (!turn_apply_overrides(conn, id, thread, params))
		return;
	thread_subscribe(thread, conn->id);
	Turn *turn = turn_new(thread, conn, input);
	if (!turn) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	if (json_is_object(schema))
		turn_set_output_schema(turn, schema);
	conn_reply(conn, id, json_pack("{s:o}", "turn", turn_json(turn, false)));
	turn_run(turn);
}

void proto_turn_steer(Conn *conn, json_t *id, json_t *params)
{
	json_t *input;
	const char *expected;
	Thread *thread = turn_thread(conn, id, params);
	if (!thread || !param_input(conn, id, params, &input))
		return;
	if (!param_required_string(conn, id, params, "expectedTurnId", &expected))
		return;
	if (!thread->turn) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "no active turn to steer");
		return;
	}
	if (strcmp(expected, turn_id(thread->turn)) != 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "expected active turn id `%s` but found `%s`", expected,
				 turn_id(thread->turn));
		return;
	}
	if (turn_steer(thread->turn, input) < 0) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	conn_reply(conn, id, json_pack("{s:s}", "turnId", turn_id(thread->turn)));
}

void proto_turn_interrupt(Conn *conn, json_t *id, json_t *params)
{
	const char *turn;
	Thread *thread = turn_thread(conn, id, params);
	if (!thread || !param_required_string(conn, id, params, "turnId", &turn))
		return;
	if (!thread->turn) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "no active turn to interrupt");
		return;
	}
	if (strcmp(turn, turn_id(thread->turn)) != 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "expected active turn id `%s` but found `%s`", turn,
				 turn_id(thread->turn));
		return;
	}
	/* Answered first, as the reference does; turn/completed "interrupted" follows. */
	conn_reply(conn, id, json_object());
	turn_interrupt(thread->turn, NULL, NULL);
}

/* --- thread/shellCommand ------------------------------------------------------------------------- */

/* The reference's default: one hour. */
#define PROTO_SHELL_DEFAULT_TIMEOUT_MS (60 * 60 * 1000)

/*
 * The user's own command (the TUI's `!`). Unlike the reference, it runs inside the thread's
 * sandbox: the escape hatch is the sandbox policy the user chose, not a way around it.
 */
void proto_thread_shell_command(Conn *conn, json_t *id, json_t *params)
{
	const char *command;
	json_t *timeout = json_object_get(params, "timeoutMs");
	if (!param_required_string(conn, id, params, "command", &command))
		return;
	if (timeout && !json_is_null(timeout) && (!json_is_integer(timeout) || json_integer_value(timeout) < 0)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `timeoutMs` must be a non-negative integer");
		return;
	}
	while (*command == ' ' || *command == '\t' || *command == '\n')
		command++;
	size_t len = strlen(command);
	while (len && (command[len - 1] == ' ' || command[len - 1] == '\t' || command[len - 1] == '\n'))
		len--;
	if (!len) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "command must not be empty");
		return;
	}
	if (proto_exec_environment_missing(conn, id))
		return;
	Thread *thread = turn_thread(conn, id, params);
	if (!thread)
		return;
	char *trimmed = strndup(command, len);
	int64_t timeout_ms = json_is_integer(timeout) ? json_integer_value(timeout) : PROTO_SHELL_DEFAULT_TIMEOUT_MS;
	if (!trimmed) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "failed to start shell command: out of memory");
		return;
	}
	thread_subscribe(thread, conn->id);
	if (thread->turn) {
		if (turn_add_shell(thread->turn, trimmed, timeout_ms) < 0)
			conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "failed to start shell command: out of memory");
		else
			conn_reply(conn, id, json_object());
		free(trimmed);
		return;
	}
	json_t *input = json_array();
	Turn *turn = input ? turn_new(thread, conn, input) : NULL;
	json_decref(input);
	if (!turn) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "failed to start shell command: out of memory");
		free(trimmed);
		return;
	}
	conn_reply(conn, id, json_object());
	turn_run_shell(turn, trimmed, timeout_ms);
	free(trimmed);
}
