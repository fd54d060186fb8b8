/* SPDX-License-Identifier: MIT */
/* proto_exec_remote.c - command/exec on a remote exec-server (CODEX_EXEC_SERVER_URL=ws://…): the
 * client's run mapped onto process/start, process/write and process/terminate, and the server's
 * process/output, process/exited and process/closed mapped back onto outputDelta and the response. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "exec_call.h"
#include "log.h"
#include "proto.h"
#include "remote.h"
#include "rpc.h"

/* How long the exec-server may take to start a process or answer a control request. */
#define REMOTE_CONTROL_TIMEOUT_MS 30000u

/* A control request that came before process/start was answered: sent once it is. */
typedef struct RemotePending {
	struct RemotePending *next;
	char method[32];
	json_t *params;
	struct RemoteAnswer *answer;
} RemotePending;

struct ExecRemote {
	ExecCall *call;
	char process_id[48]; /* the exec-server's name for the run: agentd-exec-<execId> */
	uv_timer_t *timer;   /* the command's timeout, or NULL */
	bool is_running;     /* process/start succeeded and process/closed has not come */
	bool timed_out;
	bool has_exited;
	int64_t exit_code;
	uint64_t delivered[2];
	bool capped[2];
	uint64_t next_write_id;
	RemotePending *pending, *pending_tail;
};

/* The answer to one client control request (write, terminate), kept apart from the call it names. */
typedef struct RemoteAnswer {
	Agentd *server;
	uint64_t conn_id;
	json_t *id;
	char *process_id_json;
} RemoteAnswer;

static void remote_ignore_reply(void *ctx, json_t *result, json_t *error)
{
	(void)ctx;
	(void)result;
	(void)error;
}

static ExecCall *remote_find(Agentd *server, const char *process_id)
{
	for (ExecCall *c = server->exec_calls; c; c = c->next)
		if (c->remote && strcmp(c->remote->process_id, process_id) == 0)
			return c;
	return NULL;
}

static const char *remote_error_message(json_t *error)
{
	const char *message = json_string_value(json_object_get(error, "message"));
	return message ? message : "the exec-server failed";
}

char *exec_remote_file_uri(const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	char *uri = malloc(strlen(path) * 3 + 8);
	if (!uri)
		return NULL;
	char *at = stpcpy(uri, "file://");
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("/-._~!$&'()*+,;=:@", *p)) {
			*at++ = (char)*p;
		} else {
			*at++ = '%';
			*at++ = hex[*p >> 4];
			*at++ = hex[*p & 15];
		}
	}
	*at = '\0';
	return uri;
}

/* The exec-server takes the environment exactly, as an object. */
static json_t *remote_env_object(json_t *pairs)
{
	json_t *env = json_object();
	size_t i;
	json_t *item;
	json_array_foreach (pairs, i, item) {
		const char *text = json_string_value(item), *eq = strchr(text, '=');
		char name[512];
		if (!eq || (size_t)(eq - text) >= sizeof(name))
			continue;
		memcpy(name, text, (size_t)(eq - text));
		name[eq - text] = '\0';
		json_object_set_new(env, name, json_string(eq + 1));
	}
	return env;
}

/* --- answers to control requests ---------------------------------------------------------------- */

static RemoteAnswer *remote_answer_new(Conn *conn, json_t *id, const ExecCall *call)
{
	RemoteAnswer *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->server = conn->server;
	a->conn_id = conn->id;
	a->id = json_incref(id);
	a->process_id_json = strdup(call->process_id_json ? call->process_id_json : "\"\"");
	conn_call_started(conn);
	return a;
}

static void remote_answer_free(RemoteAnswer *a)
{
	Conn *conn = conn_find(a->server, a->conn_id);
	if (conn)
		conn_call_finished(conn);
	json_decref(a->id);
	free(a->process_id_json);
	free(a);
}

static void remote_on_control_reply(void *ctx, json_t *result, json_t *error)
{
	RemoteAnswer *a = ctx;
	Conn *conn = conn_find(a->server, a->conn_id);
	const char *status = json_string_value(json_object_get(result, "status"));
	if (!conn)
		;
	else if (error)
		conn_reply_error(conn, a->id, RPC_INTERNAL_ERROR, "%s", remote_error_message(error));
	else if (status && strcmp(status, "stdinClosed") == 0)
		conn_reply_error(conn, a->id, RPC_INVALID_REQUEST, "stdin is already closed");
	else if (status && strcmp(status, "unknownProcess") == 0)
		conn_reply_error(conn, a->id, RPC_INVALID_REQUEST, "command/exec %s is no longer running",
				 a->process_id_json);
	else if (status && strcmp(status, "accepted") != 0)
		conn_reply_error(conn, a->id, RPC_INTERNAL_ERROR, "the exec-server did not take the input: %s", status);
	else
		conn_reply(conn, a->id, json_object());
	remote_answer_free(a);
}

static void remote_send_control(Agentd *server, const char *method, json_t *params, RemoteAnswer *a)
{
	if (remote_call(server->exec_server, method, params, REMOTE_CONTROL_TIMEOUT_MS, remote_on_control_reply, a) < 0) {
		json_t *error = json_pack("{s:i,s:s}", "code", RPC_INTERNAL_ERROR, "message", "exec-server unavailable");
		remote_on_control_reply(a, NULL, error);
		json_decref(error);
	}
}

/* Before process/start is answered, control requests wait; afterwards they go out in order. */
static void remote_control(ExecCall *call, const char *method, json_t *params, RemoteAnswer *a)
{
	ExecRemote *r = call->remote;
	if (r->is_running) {
		remote_send_control(call->server, method, params, a);
		return;
	}
	RemotePending *p = calloc(1, sizeof(*p));
	if (!p) {
		json_decref(params);
		json_t *error = json_pack("{s:i,s:s}", "code", RPC_INTERNAL_ERROR, "message", "out of memory");
		remote_on_control_reply(a, NULL, error);
		json_decref(error);
		return;
	}
	snprintf(p->method, sizeof(p->method), "%s", method);
	p->params = params;
	p->answer = a;
	if (r->pending_tail)
		r->pending_tail->next = p;
	else
		r->pending = p;
	r->pending_tail = p;
}

static void remote_flush_pending(ExecCall *call, bool is_started)
{
	ExecRemote *r = call->remote;
	while (r->pending) {
		RemotePending *p = r->pending;
		r->pending = p->next;
		if (is_started) {
			remote_send_control(call->server, p->method, p->params, p->answer);
		} else {
			json_decref(p->params);
			json_t *result = json_pack("{s:s}", "status", "unknownProcess");
			remote_on_control_reply(p->answer, result, NULL);
			json_decref(result);
		}
		free(p);
	}
	r->pending_tail = NULL;
}

void exec_remote_write(Conn *conn, json_t *id, ExecCall *call, const uint8_t *data, size_t len, bool close_stdin)
{
	ExecRemote *r = call->remote;
	char *chunk = malloc(base64_encoded_len(len) + 1);
	RemoteAnswer *a = chunk ? remote_answer_new(conn, id, call) : NULL;
	if (!a) {
		free(chunk);
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	base64_encode(data ? data : (const uint8_t *)"", len, chunk);
	char write_id[32];
	snprintf(write_id, sizeof(write_id), "w%llu", (unsigned long long)++r->next_write_id);
	/* closeStdin is our exec-server's extension; a stock one ignores the member. */
	json_t *params = json_pack("{s:s,s:s,s:s,s:b}", "processId", r->process_id, "chunk", chunk, "writeId",
				   write_id, "closeStdin", close_stdin);
	free(chunk);
	remote_control(call, "process/write", params, a);
}

void exec_remote_terminate(Conn *conn, json_t *id, ExecCall *call)
{
	RemoteAnswer *a = remote_answer_new(conn, id, call);
	if (!a) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	remote_control(call, "process/terminate", json_pack("{s:s}", "processId", call->remote->process_id), a);
}

/* --- the run --------------------------------------------------------------------------------------- */

static void remote_terminate_quietly(Agentd *server, const char *process_id)
{
	if (server->exec_server)
		remote_call(server->exec_server, "process/terminate", json_pack("{s:s}", "processId", process_id),
			    REMOTE_CONTROL_TIMEOUT_MS, remote_ignore_reply, NULL);
}

static void remote_on_timer_closed(uv_handle_t *handle)
{
	free(handle);
}

static void remote_on_timeout(uv_timer_t *timer)
{
	ExecCall *call = timer->data;
	call->remote->timed_out = true;
	remote_terminate_quietly(call->server, call->remote->process_id);
}

void exec_remote_release(ExecCall *call)
{
	ExecRemote *r = call->remote;
	if (r->timer) {
		uv_timer_stop(r->timer);
		uv_close((uv_handle_t *)r->timer, remote_on_timer_closed);
	}
	if (r->is_running)
		remote_terminate_quietly(call->server, r->process_id);
	remote_flush_pending(call, false);
	free(r);
	call->remote = NULL;
}

static void remote_on_started(void *ctx, json_t *result, json_t *error)
{
	ExecCall *call = ctx;
	if (!error)
		call->remote->is_running = true; /* so a call whose client left terminates it when freed */
	if (!exec_is_still_wanted(call))
		return;
	if (error) {
		exec_fail(call, RPC_INTERNAL_ERROR, "failed to spawn command: %s", remote_error_message(error));
		return;
	}
	call->is_started = true;
	if (call->timeout_ms >= 0) {
		call->remote->timer = malloc(sizeof(*call->remote->timer));
		if (call->remote->timer) {
			uv_timer_init(call->server->loop, call->remote->timer);
			call->remote->timer->data = call;
			uv_timer_start(call->remote->timer, remote_on_timeout, (uint64_t)call->timeout_ms, 0);
		}
	}
	remote_flush_pending(call, true);
}

void exec_remote_start(ExecCall *call, json_t *command, bool is_unsandboxed)
{
	/* The exec-server runs what it is given: only a policy that asks for no sandbox is enforced
	 * exactly there. Anything else is refused rather than silently run unsandboxed. */
	if (!is_unsandboxed) {
		exec_fail(call, RPC_INVALID_REQUEST,
			  call->has_profile ? "invalid permission profile: %s" : "invalid sandbox policy: %s",
			  "commands on a remote exec-server (CODEX_EXEC_SERVER_URL) run as they are, so only "
			  "dangerFullAccess can be enforced there");
		return;
	}
	ExecRemote *r = calloc(1, sizeof(*r));
	char *cwd = exec_remote_file_uri(call->cwd);
	if (!r || !cwd) {
		free(r);
		free(cwd);
		exec_fail(call, RPC_INTERNAL_ERROR, "exec failed: %s", "out of memory");
		return;
	}
	r->call = call;
	snprintf(r->process_id, sizeof(r->process_id), "agentd-exec-%llu", (unsigned long long)call->exec_id);
	call->remote = r;
	json_t *params = json_pack("{s:s,s:O,s:s,s:o,s:b,s:b}", "processId", r->process_id, "argv", command, "cwd", cwd,
				   "env", remote_env_object(call->env), "tty", call->is_tty, "pipeStdin",
				   call->streams_stdin && !call->is_tty);
	free(cwd);
	call->is_awaiting = true;
	if (remote_call(call->server->exec_server, "process/start", params, REMOTE_CONTROL_TIMEOUT_MS, remote_on_started,
			call) < 0) {
		call->is_awaiting = false;
		exec_fail(call, RPC_INTERNAL_ERROR, "failed to spawn command: %s", "exec-server unavailable");
	}
}

/* --- the exec-server's notifications ---------------------------------------------------------------- */

/* The cap is agentd's to apply here: the exec-server streams everything. */
static void remote_on_output(ExecCall *call, json_t *params)
{
	ExecRemote *r = call->remote;
	const char *stream_name = json_string_value(json_object_get(params, "stream"));
	const char *chunk = json_string_value(json_object_get(params, "chunk"));
	if (!stream_name || !chunk)
		return;
	int stream = strcmp(stream_name, "stderr") == 0 ? 1 : 0; /* "pty" is all stdout, as for a local PTY */
	if (r->capped[stream])
		return;
	size_t len = 0, text_len = strlen(chunk);
	uint8_t *data = malloc(base64_decoded_max(text_len) + 1);
	if (!data || base64_decode(chunk, text_len, data, &len) < 0) {
		free(data);
		log_warn("exec-server: process/output with bad base64 dropped");
		return;
	}
	uint64_t room = call->cap_bytes - r->delivered[stream];
	bool cap_reached = len >= room && call->cap_bytes != UINT64_MAX;
	size_t take = cap_reached ? (size_t)room : len;
	r->delivered[stream] += take;
	r->capped[stream] = cap_reached;
	Conn *conn = conn_find(call->server, call->conn_id);
	if (conn && (take || cap_reached)) {
		if (call->streams_output)
			exec_send_delta(conn, call, stream, data, take, cap_reached, NULL, NULL);
		else if (exec_buffer_append(&call->out[stream], data, take) < 0)
			conn_close(conn, "out of memory for command output");
	}
	free(data);
}

void proto_exec_remote_on_notification(void *ctx, const char *method, json_t *params)
{
	Agentd *server = ctx;
	const char *process_id = json_string_value(json_object_get(params, "processId"));
	ExecCall *call = process_id ? remote_find(server, process_id) : NULL;
	if (!call)
		return;
	ExecRemote *r = call->remote;
	if (strcmp(method, "process/output") == 0) {
		remote_on_output(call, params);
	} else if (strcmp(method, "process/exited") == 0) {
		json_t *code = json_object_get(params, "exitCode");
		r->has_exited = true;
		r->exit_code = json_is_integer(code) ? json_integer_value(code) : -1;
	} else if (strcmp(method, "process/closed") == 0) {
		r->is_running = false;
		exec_reply_exited(call, r->timed_out ? 124 : r->has_exited ? r->exit_code : -1);
	}
}

void proto_exec_remote_on_disconnected(void *ctx, const char *why)
{
	Agentd *server = ctx;
	ExecCall *call = server->exec_calls;
	log_warn("exec-server connection lost: %s", why);
	while (call) {
		ExecCall *next = call->next;
		if (call->remote && call->remote->is_running) {
			call->remote->is_running = false; /* its process went with the connection's session */
			exec_fail(call, RPC_INTERNAL_ERROR, "command/exec failed: %s", "exec-server connection lost");
		}
		call = next;
	}
}
