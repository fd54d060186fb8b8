/* SPDX-License-Identifier: MIT */
/* proto_exec.c - command/exec and its write, resize and terminate: client JSON <-> sandboxd's plan and
 * execd's exec.* methods, output deltas with credit back to execd once written to the client. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "exec_call.h"
#include "exec_ipc.h"
#include "tool_exec.h"
#include "log.h"
#include "mp.h"
#include "paths.h"
#include "proto.h"
#include "rpc.h"

extern char **environ;

/* The reference's defaults (codex-behaviour.md §3.3). */
#define EXEC_DEFAULT_TIMEOUT_MS 10000
#define EXEC_DEFAULT_CAP_BYTES (1024u * 1024u)
/* Largest stdin piece per exec.write (execd's EXECD_MAX_WRITE_BYTES). */
#define EXEC_WRITE_PIECE (1024u * 1024u)
#define EXEC_PROCESS_ID_MAX 1024u

static void exec_on_control_reply(void *ctx, int32_t status, const uint8_t *body, size_t body_len);
static void exec_fail_deferred(ExecCall *call);
static void exec_send_deferred(ExecCall *call);

/* --- the call list ------------------------------------------------------------------------------- */

static ExecCall *exec_find_by_id(Agentd *server, uint64_t conn_id, uint64_t exec_id)
{
	for (ExecCall *c = server->exec_calls; c; c = c->next)
		if (c->exec_id == exec_id && c->conn_id == conn_id)
			return c;
	return NULL;
}

static ExecCall *exec_find_by_process_id(Agentd *server, uint64_t conn_id, const char *process_id)
{
	for (ExecCall *c = server->exec_calls; c; c = c->next)
		if (c->conn_id == conn_id && c->process_id && strcmp(c->process_id, process_id) == 0)
			return c;
	return NULL;
}

void exec_call_free(ExecCall *call)
{
	Agentd *server = call->server;
	if (call->prev)
		call->prev->next = call->next;
	else if (server->exec_calls == call)
		server->exec_calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	exec_fail_deferred(call);
	if (call->remote)
		exec_remote_release(call);
	json_decref(call->rpc_id);
	json_decref(call->env);
	free(call->process_id);
	free(call->process_id_json);
	free(call->out[0].data);
	free(call->out[1].data);
	free(call);
}

/* Ends the client's request (if its connection is still there) and forgets the call. */
void exec_finish_call(ExecCall *call)
{
	Conn *conn = conn_find(call->server, call->conn_id);
	if (conn)
		conn_call_finished(conn);
	exec_call_free(call);
}

void exec_fail(ExecCall *call, int code, const char *fmt, const char *detail)
{
	Conn *conn = conn_find(call->server, call->conn_id);
	if (conn)
		conn_reply_error(conn, call->rpc_id, code, fmt, detail);
	exec_finish_call(call);
}

/* --- buffered output as text ---------------------------------------------------------------------- */

static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
	if (len == 0 || len > n || (len == 2 && c < 0xC2))
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if (len == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0)))
		return 0; /* overlong, or a surrogate */
	if (len == 4 && ((c == 0xF0 && s[1] < 0x90) || c > 0xF4 || (c == 0xF4 && s[1] >= 0x90)))
		return 0;
	return len;
}

static bool exec_is_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0, len; i < n; i += len)
		if (!(len = utf8_sequence_len(s + i, n - i)))
			return false;
	return true;
}

/* windows-1252 as WHATWG decodes it: 0x80-0x9F are its punctuation (undefined ones stay C1 controls),
 * the rest is Latin-1. */
static const uint16_t exec_cp1252_high[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
	0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
	0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static size_t exec_put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	out[0] = (char)(0xE0 | (cp >> 12));
	out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[2] = (char)(0x80 | (cp & 0x3F));
	return 3;
}

/*
 * Valid UTF-8 as it is. Otherwise the reference guesses the encoding (chardetng); agentd takes
 * windows-1252, the guess for Western text (e.g. "caf\xe9" -> "café"), so every byte survives
 * as a character instead of turning into U+FFFD.
 */
static json_t *exec_output_string(const ExecBuffer *b)
{
	const unsigned char *s = (const unsigned char *)b->data;
	if (exec_is_utf8(s, b->len))
		return json_stringn_nocheck(b->len ? b->data : "", b->len);
	char *out = malloc(b->len * 3 + 1);
	size_t at = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < b->len; i++)
		at += exec_put_utf8(out + at, s[i] >= 0x80 && s[i] < 0xA0 ? exec_cp1252_high[s[i] - 0x80] : s[i]);
	json_t *text = json_stringn_nocheck(out, at);
	free(out);
	return text;
}

int exec_buffer_append(ExecBuffer *b, const void *data, size_t len)
{
	if (len == 0)
		return 0; /* a capped stream's last, empty chunk: nothing to keep (and no buffer yet) */
	if (b->len + len > b->capacity) {
		size_t capacity = b->capacity ? b->capacity : 4096;
		while (capacity < b->len + len)
			capacity *= 2;
		char *grown = realloc(b->data, capacity);
		if (!grown)
			return -ENOMEM;
		b->data = grown;
		b->capacity = capacity;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

/* --- events from execd ----------------------------------------------------------------------------- */

typedef struct ExecCredit {
	Agentd *server;
	uint64_t conn_id;
	uint64_t exec_id;
	int stream;
} ExecCredit;

static void exec_send_credit(Agentd *server, uint64_t conn_id, uint64_t exec_id, int stream)
{
	if (!server->broker)
		return;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_u64(&pk, "execId", exec_id);
	mp_pack_kv_u64(&pk, "stream", (uint64_t)stream);
	broker_send_credit(server->broker, "execd", conn_id, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

/* The delta reached the client's socket: execd may read the next chunk of that stream. */
static void exec_on_delta_written(void *ctx, bool is_written)
{
	ExecCredit *credit = ctx;
	if (is_written)
		exec_send_credit(credit->server, credit->conn_id, credit->exec_id, credit->stream);
	free(credit);
}

/* {"processId":…,"stream":…,"deltaBase64":…,"capReached":…} written straight as text: base64 and
 * the quoted id need no escaping, and a 64 KiB chunk skips two tree copies and a scan. */
void exec_send_delta(Conn *conn, ExecCall *call, int stream, const uint8_t *data, size_t len, bool cap_reached,
		     ConnFlushedFn fn, void *ctx)
{
	/* The whole notification in one buffer, the base64 written straight into it: output is the
	 * bulk of what agentd sends, so it skips jansson and every intermediate copy. */
	size_t b64 = base64_encoded_len(len);
	size_t size = strlen(call->process_id_json) + b64 + 192;
	char *text = malloc(size);
	if (!text) {
		if (fn)
			fn(ctx, false);
		conn_close(conn, "out of memory for command output");
		return;
	}
	int at = snprintf(text, size,
			  "{\"method\":\"command/exec/outputDelta\",\"params\":{\"processId\":%s,\"stream\":\"%s\","
			  "\"deltaBase64\":\"",
			  call->process_id_json, stream == 0 ? "stdout" : "stderr");
	base64_encode(data, len, text + at);
	at += (int)b64;
	at += snprintf(text + at, size - (size_t)at, "\",\"capReached\":%s},\"emittedAtMs\":%lld}",
		       cap_reached ? "true" : "false", (long long)conn_now_ms());
	conn_notify_message_tracked(conn, "command/exec/outputDelta", text, (size_t)at, fn, ctx);
}

static void exec_forward_delta(Conn *conn, ExecCall *call, int stream, const msgpack_object *data, bool cap_reached)
{
	ExecCredit *credit = malloc(sizeof(*credit));
	if (!credit) {
		conn_close(conn, "out of memory for command output");
		return;
	}
	*credit = (ExecCredit){ conn->server, conn->id, call->exec_id, stream };
	exec_send_delta(conn, call, stream, (const uint8_t *)data->via.bin.ptr, data->via.bin.size, cap_reached,
			exec_on_delta_written, credit);
}

/* exec.output {execId, stream, data, capReached}. */
static void exec_on_output(Agentd *server, const Envelope *env, const msgpack_object *map)
{
	uint64_t exec_id, stream;
	bool cap_reached = false;
	const msgpack_object *data = mp_map_find(map, "data");
	if (mp_get_u64(map, "execId", &exec_id) < 0 || mp_get_u64(map, "stream", &stream) < 0 || stream > 1 ||
	    !data || data->type != MSGPACK_OBJECT_BIN || mp_get_bool(map, "capReached", &cap_reached) < 0) {
		log_warn("execd: malformed exec.output dropped");
		return;
	}
	ExecCall *call = exec_find_by_id(server, env->connection_id, exec_id);
	Conn *conn = call ? conn_find(server, call->conn_id) : NULL;
	if (!conn)
		return; /* the connection is gone; execd hears of it and drops the process */
	if (call->streams_output) {
		exec_forward_delta(conn, call, (int)stream, data, cap_reached);
		return;
	}
	if (exec_buffer_append(&call->out[stream], data->via.bin.ptr, data->via.bin.size) < 0) {
		conn_close(conn, "out of memory for command output");
		return;
	}
	exec_send_credit(server, env->connection_id, exec_id, (int)stream);
}

/* exec.closed {execId, exitCode}: every delta is written by now; the response goes last. */
static void exec_on_closed(Agentd *server, const Envelope *env, const msgpack_object *map)
{
	uint64_t exec_id;
	const msgpack_object *code = mp_map_find(map, "exitCode");
	if (mp_get_u64(map, "execId", &exec_id) < 0 || !code ||
	    (code->type != MSGPACK_OBJECT_POSITIVE_INTEGER && code->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
		log_warn("execd: malformed exec.closed dropped");
		return;
	}
	ExecCall *call = exec_find_by_id(server, env->connection_id, exec_id);
	if (!call)
		return;
	exec_reply_exited(call, code->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)code->via.u64 : code->via.i64);
}

void exec_reply_exited(ExecCall *call, int64_t exit_code)
{
	Conn *conn = conn_find(call->server, call->conn_id);
	if (conn) {
		json_t *out = exec_output_string(&call->out[0]), *err = exec_output_string(&call->out[1]);
		conn_reply(conn, call->rpc_id, json_pack("{s:I,s:o,s:o}", "exitCode", (json_int_t)exit_code,
							 "stdout", out ? out : json_string(""), "stderr",
							 err ? err : json_string("")));
	}
	exec_finish_call(call);
}

void proto_exec_on_event(Agentd *server, const Envelope *env)
{
	MpBody body;
	if (mp_body_parse(env->body, env->body_len, &body) < 0) {
		log_warn("execd: malformed %s dropped", env->method);
		return;
	}
	if (strcmp(env->method, "exec.output") == 0)
		exec_on_output(server, env, body.map);
	else
		exec_on_closed(server, env, body.map);
	mp_body_free(&body);
}

void proto_exec_on_conn_closed(Agentd *server, uint64_t conn_id)
{
	ExecCall *call = server->exec_calls;
	while (call) {
		ExecCall *next = call->next;
		if (call->conn_id == conn_id && call->is_awaiting)
			call->is_orphaned = true;
		else if (call->conn_id == conn_id)
			exec_call_free(call);
		call = next;
	}
}

void proto_exec_on_execd_lost(Agentd *server)
{
	ExecCall *call = server->exec_calls;
	while (call) {
		ExecCall *next = call->next;
		/* Calls still waiting on sandboxd or on exec.start get their broker error instead. */
		if (call->is_started)
			exec_fail(call, RPC_INTERNAL_ERROR, "command/exec failed: %s",
				  "execd exited while the command was running");
		call = next;
	}
}

/* --- starting ------------------------------------------------------------------------------------ */


/* A broker answer for @call came: false when the call's connection went meanwhile (then it is freed). */
bool exec_is_still_wanted(ExecCall *call)
{
	call->is_awaiting = false;
	if (!call->is_orphaned)
		return true;
	exec_call_free(call);
	return false;
}

static void exec_on_started(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	ExecCall *call = ctx;
	if (!exec_is_still_wanted(call))
		return;
	if (status == 0) {
		call->is_started = true;
		exec_send_deferred(call);
		return;
	}
	char message[512] = "";
	MpBody parsed;
	const char *text;
	size_t len;
	if (status == ENVELOPE_STATUS_UNAVAILABLE) {
		snprintf(message, sizeof(message), "service execd is unavailable");
	} else if (mp_body_parse(body, body_len, &parsed) == 0) {
		if (mp_get_str(parsed.map, "message", 400, &text, &len) == 0)
			snprintf(message, sizeof(message), "%.*s (os error %d)", (int)len, text, -status);
		mp_body_free(&parsed);
	}
	if (!message[0])
		snprintf(message, sizeof(message), "%s (os error %d)", strerror(status < 0 ? -status : EIO),
			 status < 0 ? -status : EIO);
	exec_fail(call, RPC_INTERNAL_ERROR, "failed to spawn command: %s", message);
}

static void exec_start_process(ExecCall *call, const msgpack_object *plan_argv, const char *cwd)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	exec_ipc_pack_start(&pk, &(ExecStartBody){ .exec_id = call->exec_id,
						  .argv = plan_argv,
						  .cwd = cwd,
						  .env = call->env,
						  .tty = call->is_tty,
						  .pipe_stdin = call->streams_stdin && !call->is_tty,
						  .timeout_ms = call->timeout_ms,
						  .cap_bytes = call->cap_bytes,
						  .rows = call->rows,
						  .cols = call->cols });
	call->is_awaiting = true;
	int rc = broker_call(call->server->broker, "execd", "exec.start", call->conn_id, sbuf.data, sbuf.size,
			     BROKER_CALL_TIMEOUT_MS, exec_on_started, call);
	msgpack_sbuffer_destroy(&sbuf);
	if (rc < 0)
		call->is_awaiting = false;
	if (rc < 0)
		exec_fail(call, RPC_INTERNAL_ERROR, "failed to spawn command: %s", strerror(-rc));
}

/* sandboxd's answer: {launcher, cwd, argv}, or why the policy cannot be enforced. */
static void exec_on_plan(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	ExecCall *call = ctx;
	MpBody parsed;
	const char *text = NULL;
	size_t len = 0;
	if (!exec_is_still_wanted(call))
		return;
	bool has_body = mp_body_parse(body, body_len, &parsed) == 0;
	if (status != 0) {
		char message[1200];
		if (has_body && mp_get_str(parsed.map, "message", 1024, &text, &len) == 0)
			snprintf(message, sizeof(message), "%.*s", (int)len, text);
		else
			snprintf(message, sizeof(message), "%s",
				 status == ENVELOPE_STATUS_UNAVAILABLE ? "service sandboxd is unavailable"
								       : strerror(status < 0 ? -status : EIO));
		if (has_body)
			mp_body_free(&parsed);
		if (status == ENVELOPE_STATUS_UNAVAILABLE || strncmp(message, "sandbox cwd ", 12) == 0)
			exec_fail(call, RPC_INTERNAL_ERROR, "failed to spawn command: %s", message);
		else
			exec_fail(call, RPC_INVALID_REQUEST,
				  call->has_profile ? "invalid permission profile: %s" : "invalid sandbox policy: %s",
				  message);
		return;
	}
	const msgpack_object *argv = has_body ? mp_map_find(parsed.map, "argv") : NULL;
	char cwd[AGENTD_PATH_MAX];
	if (!argv || argv->type != MSGPACK_OBJECT_ARRAY || argv->via.array.size == 0 ||
	    mp_get_str(parsed.map, "cwd", sizeof(cwd) - 1, &text, &len) < 0) {
		if (has_body)
			mp_body_free(&parsed);
		exec_fail(call, RPC_INTERNAL_ERROR, "exec failed: %s", "sandboxd sent a malformed plan");
		return;
	}
	memcpy(cwd, text, len);
	cwd[len] = '\0';
	exec_start_process(call, argv, cwd);
	mp_body_free(&parsed);
}

static int exec_ask_plan(ExecCall *call, json_t *command, json_t *policy, const char *profile)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	char *policy_text = policy ? json_dumps(policy, JSON_COMPACT) : NULL;
	if (policy && !policy_text)
		return -ENOMEM;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	exec_ipc_pack_plan(&pk, &(ExecPlanBody){ .cwd = call->cwd, .command = command, .policy_text = policy_text,
						.profile = profile });
	free(policy_text);
	call->is_awaiting = true;
	int rc = broker_call(call->server->broker, "sandboxd", "plan", call->conn_id, sbuf.data, sbuf.size, 0,
			     exec_on_plan, call);
	msgpack_sbuffer_destroy(&sbuf);
	if (rc < 0)
		call->is_awaiting = false;
	return rc;
}

/* CODEX_EXEC_SERVER_URL=none: there is no environment to run anything in. */
bool proto_exec_environment_missing(Conn *conn, json_t *id)
{
	if (conn->server->environment != AGENTD_ENV_NONE)
		return false;
	conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "local environment is not configured");
	return true;
}

/* --- validating command/exec ----------------------------------------------------------------------- */

typedef struct ExecParams {
	json_t *command, *process_id, *size, *cwd, *env, *cap, *timeout, *policy, *profile;
	bool tty, stream_stdin, stream_output, disable_cap, disable_timeout;
	uint16_t rows, cols;
} ExecParams;

static bool exec_get_bool(Conn *conn, json_t *id, json_t *params, const char *key, bool *out)
{
	json_t *value = json_object_get(params, key);
	*out = false;
	if (!value || json_is_null(value))
		return true;
	if (!json_is_boolean(value)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: %s must be a boolean", key);
		return false;
	}
	*out = json_is_true(value);
	return true;
}

static json_t *exec_get_optional(json_t *params, const char *key)
{
	json_t *value = json_object_get(params, key);
	return value && !json_is_null(value) ? value : NULL;
}

static bool exec_is_string_array(json_t *array)
{
	size_t i;
	json_t *item;
	if (!json_is_array(array))
		return false;
	json_array_foreach (array, i, item)
		if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item))
			return false;
	return true;
}

/* Types first, as the reference's deserializer checks them; nothing is interpreted yet. */
static bool exec_parse_types(Conn *conn, json_t *id, json_t *params, ExecParams *p)
{
	memset(p, 0, sizeof(*p));
	p->command = json_object_get(params, "command");
	if (!p->command) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `command`");
		return false;
	}
	if (!exec_is_string_array(p->command)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: command must be an array of strings");
		return false;
	}
	p->process_id = exec_get_optional(params, "processId");
	p->size = exec_get_optional(params, "size");
	p->cwd = exec_get_optional(params, "cwd");
	p->env = exec_get_optional(params, "env");
	p->cap = exec_get_optional(params, "outputBytesCap");
	p->timeout = exec_get_optional(params, "timeoutMs");
	p->policy = exec_get_optional(params, "sandboxPolicy");
	p->profile = exec_get_optional(params, "permissionProfile");
	const char *bad = NULL;
	if (p->process_id && (!json_is_string(p->process_id) || json_string_length(p->process_id) > EXEC_PROCESS_ID_MAX ||
			      strlen(json_string_value(p->process_id)) != json_string_length(p->process_id)))
		bad = "processId must be a string";
	else if (p->cwd && (!json_is_string(p->cwd) || strlen(json_string_value(p->cwd)) != json_string_length(p->cwd)))
		bad = "cwd must be a string";
	else if (p->env && !json_is_object(p->env))
		bad = "env must be an object of strings or nulls";
	else if (p->cap && (!json_is_integer(p->cap) || json_integer_value(p->cap) < 0))
		bad = "outputBytesCap must be a non-negative integer";
	else if (p->timeout && !json_is_integer(p->timeout))
		bad = "timeoutMs must be an integer";
	else if (p->policy && !json_is_object(p->policy))
		bad = "sandboxPolicy must be an object";
	else if (p->profile && (!json_is_string(p->profile) || json_string_length(p->profile) > 256))
		bad = "permissionProfile must be a string";
	if (!bad && p->env) {
		const char *key;
		json_t *value;
		json_object_foreach (p->env, key, value)
			if ((!json_is_string(value) && !json_is_null(value)) || !key[0] || strchr(key, '=') ||
			    (json_is_string(value) && strlen(json_string_value(value)) != json_string_length(value)))
				bad = "env must map variable names to strings or nulls";
	}
	if (!bad && p->size) {
		json_t *rows = json_object_get(p->size, "rows"), *cols = json_object_get(p->size, "cols");
		if (!json_is_object(p->size) || !json_is_integer(rows) || !json_is_integer(cols) ||
		    json_integer_value(rows) < 0 || json_integer_value(rows) > UINT16_MAX ||
		    json_integer_value(cols) < 0 || json_integer_value(cols) > UINT16_MAX)
			bad = "size must be {rows, cols} with 16-bit unsigned integers";
		else {
			p->rows = (uint16_t)json_integer_value(rows);
			p->cols = (uint16_t)json_integer_value(cols);
		}
	}
	if (bad) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: %s", bad);
		return false;
	}
	return exec_get_bool(conn, id, params, "tty", &p->tty) &&
	       exec_get_bool(conn, id, params, "streamStdin", &p->stream_stdin) &&
	       exec_get_bool(conn, id, params, "streamStdoutStderr", &p->stream_output) &&
	       exec_get_bool(conn, id, params, "disableOutputCap", &p->disable_cap) &&
	       exec_get_bool(conn, id, params, "disableTimeout", &p->disable_timeout);
}

/* The rules of codex-behaviour.md §3.2, in the reference's order. */
static bool exec_check_rules(Conn *conn, json_t *id, const ExecParams *p)
{
	if (json_array_size(p->command) == 0)
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "command must not be empty");
	else if (p->policy && p->profile)
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "`permissionProfile` cannot be combined with `sandboxPolicy`");
	else if (p->size && !p->tty)
		conn_reply_error(conn, id, RPC_INVALID_PARAMS, "command/exec size requires tty: true");
	else if (p->size && (p->rows == 0 || p->cols == 0))
		conn_reply_error(conn, id, RPC_INVALID_PARAMS, "command/exec size rows and cols must be greater than 0");
	else if (p->cap && p->disable_cap)
		conn_reply_error(conn, id, RPC_INVALID_PARAMS,
				 "command/exec cannot set both outputBytesCap and disableOutputCap");
	else if (p->timeout && p->disable_timeout)
		conn_reply_error(conn, id, RPC_INVALID_PARAMS, "command/exec cannot set both timeoutMs and disableTimeout");
	else if (p->timeout && json_integer_value(p->timeout) < 0)
		conn_reply_error(conn, id, RPC_INVALID_PARAMS, "command/exec timeoutMs must be non-negative, got %lld",
				 (long long)json_integer_value(p->timeout));
	else if ((p->tty || p->stream_stdin || p->stream_output) && !p->process_id)
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "command/exec tty or streaming requires a client-supplied processId");
	else
		return true;
	return false;
}

/* Whether the run asks for no sandbox at all: all a remote exec-server can enforce exactly. */
static bool exec_is_unsandboxed(Agentd *server, const ExecParams *p)
{
	const char *type = json_string_value(json_object_get(p->policy, "type"));
	if (p->policy)
		return type && (strcmp(type, "dangerFullAccess") == 0 || strcmp(type, "externalSandbox") == 0);
	if (p->profile)
		return strcmp(json_string_value(p->profile), ":danger-full-access") == 0;
	const char *profile = NULL, *mode = NULL;
	config_get_string(&server->config, "default_permissions", NULL, &profile);
	config_get_string(&server->config, "sandbox_mode", NULL, &mode);
	return profile ? strcmp(profile, ":danger-full-access") == 0 : mode && strcmp(mode, "danger-full-access") == 0;
}

/* cwd: absolute as given, relative joined onto the server's, default the server's. */
static int exec_resolve_cwd(json_t *cwd, char *out, size_t size)
{
	char here[AGENTD_PATH_MAX];
	if (!getcwd(here, sizeof(here)))
		return -errno;
	if (!cwd)
		return path_normalize(NULL, here, out, size);
	const char *text = json_string_value(cwd);
	return path_normalize(text[0] == '/' ? NULL : here, text, out, size);
}

static char *exec_quote(const char *text)
{
	json_t *s = json_string(text);
	char *quoted = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
	json_decref(s);
	return quoted;
}

static ExecCall *exec_call_new(Conn *conn, json_t *id, const ExecParams *p)
{
	ExecCall *call = calloc(1, sizeof(*call));
	if (!call)
		return NULL;
	Agentd *server = conn->server;
	call->server = server;
	call->conn_id = conn->id;
	call->exec_id = ++server->next_exec_id;
	call->rpc_id = json_incref(id);
	call->is_tty = p->tty;
	call->streams_output = p->tty || p->stream_output;
	call->streams_stdin = p->tty || p->stream_stdin;
	call->timeout_ms = p->disable_timeout ? -1 : p->timeout ? json_integer_value(p->timeout) : EXEC_DEFAULT_TIMEOUT_MS;
	call->cap_bytes = p->disable_cap ? UINT64_MAX : p->cap ? (uint64_t)json_integer_value(p->cap) : EXEC_DEFAULT_CAP_BYTES;
	call->rows = p->size ? p->rows : 0;
	call->cols = p->size ? p->cols : 0;
	call->has_profile = p->profile != NULL;
	call->env = tool_exec_environment(p->env);
	if (p->process_id) {
		call->process_id = strdup(json_string_value(p->process_id));
		call->process_id_json = exec_quote(call->process_id);
	}
	call->next = server->exec_calls;
	if (server->exec_calls)
		server->exec_calls->prev = call;
	server->exec_calls = call;
	if (!call->env || (p->process_id && (!call->process_id || !call->process_id_json))) {
		exec_call_free(call);
		return NULL;
	}
	return call;
}

void proto_command_exec(Conn *conn, json_t *id, json_t *params)
{
	ExecParams p;
	if (!exec_parse_types(conn, id, params, &p) || !exec_check_rules(conn, id, &p))
		return;
	if (proto_exec_environment_missing(conn, id))
		return;
	if (p.process_id && exec_find_by_process_id(conn->server, conn->id, json_string_value(p.process_id))) {
		char *quoted = exec_quote(json_string_value(p.process_id));
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "duplicate active command/exec process id: %s",
				 quoted ? quoted : "?");
		free(quoted);
		return;
	}
	ExecCall *call = exec_call_new(conn, id, &p);
	if (!call) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	int rc = exec_resolve_cwd(p.cwd, call->cwd, sizeof(call->cwd));
	if (rc < 0) {
		conn_reply_error(conn, id, RPC_INVALID_PARAMS, "Invalid params: cwd: %s", strerror(-rc));
		exec_call_free(call);
		return;
	}
	conn->has_execs = true;
	conn_call_started(conn);
	if (conn->server->environment == AGENTD_ENV_REMOTE) {
		exec_remote_start(call, p.command, exec_is_unsandboxed(conn->server, &p));
		return;
	}
	rc = exec_ask_plan(call, p.command, p.policy, p.profile ? json_string_value(p.profile) : NULL);
	if (rc < 0)
		exec_fail(call, RPC_INTERNAL_ERROR, "exec failed: %s", strerror(-rc));
}

/* --- write, resize, terminate ------------------------------------------------------------------------ */

static void exec_send_deferred(ExecCall *call)
{
	while (call->deferred) {
		ExecDeferred *d = call->deferred;
		call->deferred = d->next;
		int rc = broker_call(call->server->broker, "execd", d->method, call->conn_id, d->body, d->len, 0,
				     exec_on_control_reply, d->ctl);
		if (rc < 0)
			exec_on_control_reply(d->ctl, rc, NULL, 0);
		free(d);
	}
	call->deferred_tail = NULL;
}

/* The process never ran (or is gone): what waited for it is answered as for a finished one. */
static void exec_fail_deferred(ExecCall *call)
{
	while (call->deferred) {
		ExecDeferred *d = call->deferred;
		call->deferred = d->next;
		exec_on_control_reply(d->ctl, -ESRCH, NULL, 0);
		free(d);
	}
	call->deferred_tail = NULL;
}

/* The running call @params names by processId, or NULL after answering the client. */
static ExecCall *exec_target(Conn *conn, json_t *id, json_t *params)
{
	json_t *process_id = json_object_get(params, "processId");
	if (!process_id) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `processId`");
		return NULL;
	}
	if (!json_is_string(process_id) || strlen(json_string_value(process_id)) != json_string_length(process_id)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: processId must be a string");
		return NULL;
	}
	ExecCall *call = exec_find_by_process_id(conn->server, conn->id, json_string_value(process_id));
	if (!call) {
		char *quoted = exec_quote(json_string_value(process_id));
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "no active command/exec for process id %s",
				 quoted ? quoted : "?");
		free(quoted);
	}
	return call;
}

struct ExecControl {
	Agentd *server;
	uint64_t conn_id;
	json_t *id;
	char *process_id_json;
	unsigned pending;   /* exec.write pieces not yet answered */
	int32_t status;	    /* the first failure among them */
	bool is_resize;
};

static void exec_control_reply(ExecControl *ctl)
{
	Conn *conn = conn_find(ctl->server, ctl->conn_id);
	if (conn) {
		int32_t status = ctl->status;
		if (status == 0)
			conn_reply(conn, ctl->id, json_object());
		else if (status == -ESRCH || status == -ENOENT)
			conn_reply_error(conn, ctl->id, RPC_INVALID_REQUEST, "command/exec %s is no longer running",
					 ctl->process_id_json);
		else if (status == -EPIPE)
			conn_reply_error(conn, ctl->id, RPC_INVALID_REQUEST, "stdin is already closed");
		else if (status == -EBADF)
			conn_reply_error(conn, ctl->id, RPC_INVALID_REQUEST,
					 "stdin streaming is not enabled for this command/exec");
		else if (ctl->is_resize)
			conn_reply_error(conn, ctl->id, RPC_INVALID_REQUEST, "failed to resize PTY: %s",
					 status == -ENOTTY ? "process is not attached to a PTY" : strerror(-status));
		else if (status == ENVELOPE_STATUS_UNAVAILABLE)
			conn_reply_error(conn, ctl->id, RPC_INTERNAL_ERROR, "service execd is unavailable");
		else
			conn_reply_error(conn, ctl->id, RPC_INTERNAL_ERROR, "command/exec control failed: %s",
					 strerror(status < 0 ? -status : EIO));
		conn_call_finished(conn);
	}
	json_decref(ctl->id);
	free(ctl->process_id_json);
	free(ctl);
}

static void exec_on_control_reply(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	ExecControl *ctl = ctx;
	if (status != 0 && ctl->status == 0)
		ctl->status = status;
	if (--ctl->pending == 0)
		exec_control_reply(ctl);
}

static void exec_control_discard(ExecControl *ctl)
{
	json_decref(ctl->id);
	free(ctl->process_id_json);
	free(ctl);
}

static ExecControl *exec_control_new(Conn *conn, json_t *id, const ExecCall *call)
{
	ExecControl *ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return NULL;
	ctl->server = conn->server;
	ctl->conn_id = conn->id;
	ctl->id = json_incref(id);
	ctl->process_id_json = strdup(call->process_id_json);
	if (!ctl->process_id_json) {
		json_decref(ctl->id);
		free(ctl);
		return NULL;
	}
	return ctl;
}

/* One exec.* call on behalf of @ctl; a call that cannot even be formed counts as failed. */
static void exec_control_send(ExecCall *call, ExecControl *ctl, const char *method, const void *body, size_t len)
{
	ctl->pending++;
	if (!call->is_started) {
		ExecDeferred *d = malloc(sizeof(*d) + len);
		if (!d) {
			exec_on_control_reply(ctl, -ENOMEM, NULL, 0);
			return;
		}
		*d = (ExecDeferred){ .ctl = ctl, .method = method, .len = len };
		memcpy(d->body, body, len);
		if (call->deferred_tail)
			call->deferred_tail->next = d;
		else
			call->deferred = d;
		call->deferred_tail = d;
		return;
	}
	int rc = broker_call(ctl->server->broker, "execd", method, ctl->conn_id, body, len, 0, exec_on_control_reply,
			     ctl);
	if (rc < 0)
		exec_on_control_reply(ctl, rc, NULL, 0);
}

static void exec_control_simple(Conn *conn, json_t *id, ExecCall *call, const char *method, uint16_t rows,
				uint16_t cols)
{
	ExecControl *ctl = exec_control_new(conn, id, call);
	if (!ctl) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	ctl->is_resize = rows != 0;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, rows ? 3 : 1);
	mp_pack_kv_u64(&pk, "execId", call->exec_id);
	if (rows) {
		mp_pack_kv_u64(&pk, "rows", rows);
		mp_pack_kv_u64(&pk, "cols", cols);
	}
	conn_call_started(conn);
	ctl->pending = 1; /* held while sending: a synchronous failure must not reply early */
	exec_control_send(call, ctl, method, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
	exec_on_control_reply(ctl, 0, NULL, 0);
}

static void exec_send_write_piece(ExecCall *call, ExecControl *ctl, const uint8_t *data, size_t len,
				  bool close_stdin)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2 + (data != NULL));
	mp_pack_kv_u64(&pk, "execId", call->exec_id);
	if (data) {
		mp_pack_cstr(&pk, "data");
		msgpack_pack_bin(&pk, len);
		msgpack_pack_bin_body(&pk, data, len);
	}
	mp_pack_kv_bool(&pk, "closeStdin", close_stdin);
	exec_control_send(call, ctl, "exec.write", sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

void proto_command_exec_write(Conn *conn, json_t *id, json_t *params)
{
	json_t *delta = exec_get_optional(params, "deltaBase64");
	bool close_stdin;
	if (delta && !json_is_string(delta)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: deltaBase64 must be a string");
		return;
	}
	if (!exec_get_bool(conn, id, params, "closeStdin", &close_stdin))
		return;
	if (!delta && !close_stdin) {
		conn_reply_error(conn, id, RPC_INVALID_PARAMS, "command/exec/write requires deltaBase64 or closeStdin");
		return;
	}
	size_t len = 0;
	uint8_t *data = NULL;
	if (delta) {
		data = malloc(base64_decoded_max(json_string_length(delta)) + 1);
		if (!data || base64_decode(json_string_value(delta), json_string_length(delta), data, &len) < 0) {
			char why[128] = "out of memory";
			if (data)
				base64_describe_error(json_string_value(delta), json_string_length(delta), why,
						      sizeof(why));
			conn_reply_error(conn, id, RPC_INVALID_PARAMS, "invalid deltaBase64: %s", why);
			free(data);
			return;
		}
	}
	ExecCall *call = exec_target(conn, id, params);
	ExecControl *ctl = NULL;
	if (call && !call->streams_stdin)
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "stdin streaming is not enabled for this command/exec");
	else if (call && call->stdin_closed)
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "stdin is already closed");
	else if (call && !(ctl = exec_control_new(conn, id, call)))
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
	if (!ctl) {
		free(data);
		return;
	}
	call->stdin_closed = close_stdin;
	if (call->remote) {
		exec_control_discard(ctl);
		exec_remote_write(conn, id, call, data, len, close_stdin);
		free(data);
		return;
	}
	conn_call_started(conn);
	ctl->pending = 1;
	/* Pieces go out in order on one link; execd queues them in that order. */
	size_t offset = 0;
	do {
		size_t piece = len - offset > EXEC_WRITE_PIECE ? EXEC_WRITE_PIECE : len - offset;
		bool is_last = offset + piece == len;
		exec_send_write_piece(call, ctl, data ? data + offset : NULL, piece, is_last && close_stdin);
		offset += piece;
	} while (offset < len);
	free(data);
	exec_on_control_reply(ctl, 0, NULL, 0);
}

void proto_command_exec_resize(Conn *conn, json_t *id, json_t *params)
{
	json_t *size = json_object_get(params, "size");
	json_t *rows = json_object_get(size, "rows"), *cols = json_object_get(size, "cols");
	if (!size) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `size`");
		return;
	}
	if (!json_is_integer(rows) || !json_is_integer(cols) || json_integer_value(rows) < 0 ||
	    json_integer_value(rows) > UINT16_MAX || json_integer_value(cols) < 0 || json_integer_value(cols) > UINT16_MAX) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: size must be {rows, cols} with 16-bit unsigned integers");
		return;
	}
	if (json_integer_value(rows) == 0 || json_integer_value(cols) == 0) {
		conn_reply_error(conn, id, RPC_INVALID_PARAMS, "command/exec size rows and cols must be greater than 0");
		return;
	}
	ExecCall *call = exec_target(conn, id, params);
	if (!call)
		return;
	if (!call->is_tty) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "failed to resize PTY: %s",
				 "process is not attached to a PTY");
		return;
	}
	if (call->remote) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "failed to resize PTY: %s",
				 "the exec-server protocol has no PTY resize");
		return;
	}
	exec_control_simple(conn, id, call, "exec.resize", (uint16_t)json_integer_value(rows),
			    (uint16_t)json_integer_value(cols));
}

void proto_command_exec_terminate(Conn *conn, json_t *id, json_t *params)
{
	ExecCall *call = exec_target(conn, id, params);
	if (call && call->remote)
		exec_remote_terminate(conn, id, call);
	else if (call)
		exec_control_simple(conn, id, call, "exec.terminate", 0, 0);
}
