/* SPDX-License-Identifier: MIT */
/* proto.h - the client method allow-list: every method agentd answers is a row here. */
#ifndef AGENTD_PROTO_H
#define AGENTD_PROTO_H

#include <jansson.h>
#include <stdbool.h>

#include "conn.h"

/* The codex app-server version whose protocol agentd speaks: the VERSION of every userAgent. */
#define PROTO_COMPAT_VERSION "0.169.0"

/* The model when neither a request nor config.toml names one (threads, model/list). */
#define PROTO_DEFAULT_MODEL "gpt-5.5"

typedef enum ProtoParams {
	PROTO_PARAMS_REQUIRED, /* an object must be present */
	PROTO_PARAMS_OPTIONAL, /* absent, null or an object */
} ProtoParams;

/* Answers (now or later) with conn_reply()/conn_reply_error(). @params is an object or NULL. */
typedef void (*ProtoHandler)(Conn *conn, json_t *id, json_t *params);

typedef struct ProtoMethod {
	const char *name;
	bool is_allowed_before_initialize;
	ProtoParams params;
	ProtoHandler handler;
} ProtoMethod;

/** proto_find_method() - the row for @name, or NULL. */
const ProtoMethod *proto_find_method(const char *name);

/** proto_on_notification() - a client notification ("initialized", …); unknown ones are ignored. */
void proto_on_notification(Conn *conn, const char *method, json_t *params);

/** proto_format_user_agent() - "<originator>/<version> (<os>; <arch>) <terminal> (<client>; <version>)". */
void proto_format_user_agent(const char *originator, const char *client_name, const char *client_version,
			     char *ua, size_t ua_len);

/* Handlers, one file per area. */
void proto_initialize(Conn *conn, json_t *id, json_t *params);
void proto_health(Conn *conn, json_t *id, json_t *params);
void proto_fs_watch(Conn *conn, json_t *id, json_t *params);
void proto_fs_unwatch(Conn *conn, json_t *id, json_t *params);
/* fs/readFile ... fs/copy (proto_fs.c): checked here, done by execd's fs.* methods. */
void proto_fs_read_file(Conn *conn, json_t *id, json_t *params);
void proto_fs_write_file(Conn *conn, json_t *id, json_t *params);
void proto_fs_create_directory(Conn *conn, json_t *id, json_t *params);
void proto_fs_get_metadata(Conn *conn, json_t *id, json_t *params);
void proto_fs_read_directory(Conn *conn, json_t *id, json_t *params);
void proto_fs_remove(Conn *conn, json_t *id, json_t *params);
void proto_fs_copy(Conn *conn, json_t *id, json_t *params);

void proto_command_exec(Conn *conn, json_t *id, json_t *params);
void proto_command_exec_write(Conn *conn, json_t *id, json_t *params);
void proto_command_exec_resize(Conn *conn, json_t *id, json_t *params);
void proto_command_exec_terminate(Conn *conn, json_t *id, json_t *params);

/** proto_exec_on_event() - execd's exec.output or exec.closed event. */
void proto_exec_on_event(Agentd *server, const Envelope *env);
/** proto_exec_on_conn_closed() - forget the connection's command/exec runs (execd kills them). */
void proto_exec_on_conn_closed(Agentd *server, uint64_t conn_id);
/** proto_exec_on_execd_lost() - execd went down: every running command/exec gets an error. */
void proto_exec_on_execd_lost(Agentd *server);
/** proto_exec_remote_on_notification() / _on_disconnected() - the remote exec-server's events. */
void proto_exec_remote_on_notification(void *ctx, const char *method, json_t *params);
void proto_exec_remote_on_disconnected(void *ctx, const char *why);
/** proto_exec_environment_missing() - answer the -32603 of CODEX_EXEC_SERVER_URL=none; true if so. */
bool proto_exec_environment_missing(Conn *conn, json_t *id);

/* account/read, getAuthStatus, account/login/start, account/login/cancel, account/logout: authd. */
void proto_account_read(Conn *conn, json_t *id, json_t *params);
void proto_get_auth_status(Conn *conn, json_t *id, json_t *params);
void proto_account_login_start(Conn *conn, json_t *id, json_t *params);
void proto_account_login_cancel(Conn *conn, json_t *id, json_t *params);
void proto_account_logout(Conn *conn, json_t *id, json_t *params);
/** proto_account_on_event() - authd's auth.updated or auth.login.completed, for every client. */
void proto_account_on_event(Agentd *server, const Envelope *env);

/* What a client asks before its first turn (proto_catalog.c, proto_config.c). */
void proto_model_list(Conn *conn, json_t *id, json_t *params);
void proto_collaboration_mode_list(Conn *conn, json_t *id, json_t *params);
void proto_skills_list(Conn *conn, json_t *id, json_t *params);
void proto_hooks_list(Conn *conn, json_t *id, json_t *params);
void proto_plugin_installed(Conn *conn, json_t *id, json_t *params);
void proto_bedrock_govcloud(Conn *conn, json_t *id, json_t *params);
/** proto_catalog_stop() - at shutdown, before the model client goes: drop the model/list fetches. */
void proto_catalog_stop(Agentd *server);
void proto_config_read(Conn *conn, json_t *id, json_t *params);
void proto_config_requirements_read(Conn *conn, json_t *id, json_t *params);

/* The thread and turn methods (proto_thread.c). */
void proto_thread_read_state_update(Conn *conn, json_t *id, json_t *params);
void proto_thread_start(Conn *conn, json_t *id, json_t *params);
void proto_thread_resume(Conn *conn, json_t *id, json_t *params);
void proto_thread_read(Conn *conn, json_t *id, json_t *params);
void proto_thread_list(Conn *conn, json_t *id, json_t *params);
void proto_thread_loaded_list(Conn *conn, json_t *id, json_t *params);
void proto_thread_turns_list(Conn *conn, json_t *id, json_t *params);
void proto_thread_archive(Conn *conn, json_t *id, json_t *params);
void proto_thread_unarchive(Conn *conn, json_t *id, json_t *params);
void proto_thread_name_set(Conn *conn, json_t *id, json_t *params);
void proto_thread_unsubscribe(Conn *conn, json_t *id, json_t *params);
void proto_thread_shell_command(Conn *conn, json_t *id, json_t *params);
void proto_turn_start(Conn *conn, json_t *id, json_t *params);
void proto_turn_steer(Conn *conn, json_t *id, json_t *params);
void proto_turn_interrupt(Conn *conn, json_t *id, json_t *params);

/** proto_fs_on_changed() - watchd's fs.changed event: an fs/changed notification for its connection. */
void proto_fs_on_changed(Agentd *server, const Envelope *env);

#endif
