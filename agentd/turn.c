/* SPDX-License-Identifier: MIT */
/* turn.c - the turn engine: sampling, streaming items, tool calls, retries, interrupts. */
#include "turn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "model_client.h"
#include "mp.h"
#include "prompt.h"
#include "proto.h"
#include "providers.h"
#include "responses.h"
#include "sse.h"
#include "tools.h"
#include "turn_internal.h"
#include "usage_limit.h"

/* Backoff between retries: 200 ms doubling, capped (the reference's shape). */
#define TURN_RETRY_BASE_MS 200u
#define TURN_RETRY_CAP_MS 10000u
/* How long a sampling request may take to connect. */
#define TURN_CONNECT_TIMEOUT_MS 30000u

static void turn_sample(Turn *turn);
static void turn_pick_originator(Turn *turn, const Conn *conn);
static void turn_flush_streamed(Turn *turn);
static void turn_finish(Turn *turn, const char *status, json_t *error);

/* --- life ---------------------------------------------------------------------------------------- */

void turn_hold(Turn *turn)
{
	turn->refs++;
}

static void turn_destroy(Turn *turn)
{
	json_decref(turn->input);
	json_decref(turn->output_schema);
	json_decref(turn->items);
	json_decref(turn->steered);
	json_decref(turn->injected);
	json_decref(turn->open_items);
	json_decref(turn->attempt_output);
	json_decref(turn->calls);
	json_decref(turn->error);
	json_decref(turn->interrupt_replies);
	json_decref(turn->last_usage);
	free(turn->last_agent_message);
	free(turn->streamed);
	free(turn->turn_state);
	provider_free(turn->provider);
	free(turn);
}

void turn_release(Turn *turn)
{
	if (--turn->refs == 0)
		turn_destroy(turn);
}

static void turn_on_timer_closed(uv_handle_t *handle)
{
	free(handle);
}

static void turn_stop_timer(Turn *turn)
{
	if (!turn->retry_timer)
		return;
	uv_timer_stop(turn->retry_timer);
	uv_close((uv_handle_t *)turn->retry_timer, turn_on_timer_closed);
	turn->retry_timer = NULL;
	turn_release(turn);
}

static void turn_stop_stream(Turn *turn)
{
	if (turn->stream) {
		model_stream_cancel(turn->stream);
		turn->stream = NULL;
		turn_release(turn);
	}
	sse_parser_free(turn->sse);
	turn->sse = NULL;
	responses_decoder_free(turn->decoder);
	turn->decoder = NULL;
}

Turn *turn_new(Thread *thread, Conn *conn, json_t *input)
{
	Turn *turn = calloc(1, sizeof(*turn));
	if (!turn)
		return NULL;
	turn->refs = 1;
	turn->thread = thread;
	turn->input = json_deep_copy(input);
	turn->items = json_array();
	turn->steered = json_array();
	turn->injected = json_array();
	turn->open_items = json_object();
	turn->attempt_output = json_array();
	turn->interrupt_replies = json_array();
	if (!turn->input || !turn->items || !turn->steered || !turn->injected || !turn->open_items || !turn->attempt_output ||
	    !turn->interrupt_replies || uuid_v7(turn->id) < 0) {
		turn_destroy(turn);
		return NULL;
	}
	turn->conn_id = conn ? conn->id : 0;
	turn_pick_originator(turn, conn);
	turn->started_at_ms = thread_now_ms();
	thread->turn = turn;
	return turn;
}

/*
 * The originator of the turn's requests: the client's clientInfo.name, except the exempt names
 * and "codex-tui", a legacy client that gets the default (codex_cli_rs);
 * CODEX_INTERNAL_ORIGINATOR_OVERRIDE wins over both.
 */
static void turn_pick_originator(Turn *turn, const Conn *conn)
{
	static const char *const defaulted[] = { "codex-tui", "codex_app_server_daemon", "codex-backend", "" };
	const char *name = conn ? conn->client_name : "";
	const char *override = getenv("CODEX_INTERNAL_ORIGINATOR_OVERRIDE");
	const char *originator = name;
	for (size_t i = 0; i < sizeof(defaulted) / sizeof(defaulted[0]); i++) {
		if (strcmp(name, defaulted[i]) == 0)
			originator = "codex_cli_rs";
	}
	if (override && override[0])
		originator = override;
	snprintf(turn->originator, sizeof(turn->originator), "%s", originator);
	proto_format_user_agent(turn->originator, name[0] ? name : "agentd", conn ? conn->client_version : "",
				turn->user_agent, sizeof(turn->user_agent));
}

const char *turn_id(const Turn *turn)
{
	return turn->id;
}

bool turn_is_waiting_on_approval(const Turn *turn)
{
	return turn->approval_conn != 0;
}

json_t *turn_json(const Turn *turn, bool with_items)
{
	json_t *items = with_items ? json_deep_copy(turn->items) : json_array();
	bool is_running = !turn->is_finished;
	json_t *obj = json_pack("{s:s,s:s,s:o,s:s,s:s,s:O}", "id", turn->id, "rootTurnId", turn->id, "items", items,
				"itemsView", with_items ? "full" : "notLoaded", "status",
				is_running ? "inProgress" : turn->status, "error",
				turn->error ? turn->error : json_null());
	json_object_set_new(obj, "startedAt", turn->is_announced ? json_integer(turn->started_at_ms / 1000) : json_null());
	json_object_set_new(obj, "completedAt", is_running ? json_null() : json_integer(turn->completed_at_ms / 1000));
	json_object_set_new(obj, "durationMs",
			    is_running ? json_null() : json_integer(turn->completed_at_ms - turn->started_at_ms));
	return obj;
}

/* --- notifications ------------------------------------------------------------------------------- */

void turn_notify(Turn *turn, const char *method, json_t *params)
{
	if (!turn->is_abandoned)
		thread_notify(turn->thread, method, params);
	else
		json_decref(params);
}

static void turn_notify_status(Turn *turn)
{
	turn_notify(turn, "thread/status/changed",
		    json_pack("{s:s,s:o}", "threadId", turn->thread->id, "status", thread_status_json(turn->thread)));
}

void turn_item_started(Turn *turn, json_t *item)
{
	int64_t now = thread_now_ms();
	json_object_set_new(item, "startedAtMs", json_integer(now));
	json_object_set_new(item, "completedAtMs", json_null());
	turn_notify(turn, "item/started",
		    json_pack("{s:O,s:s,s:s,s:I}", "item", item, "threadId", turn->thread->id, "turnId", turn->id,
			      "startedAtMs", (json_int_t)now));
}

void turn_item_completed(Turn *turn, json_t *item)
{
	int64_t now = thread_now_ms();
	if (!json_object_get(item, "startedAtMs"))
		json_object_set_new(item, "startedAtMs", json_integer(now));
	json_object_set_new(item, "completedAtMs", json_integer(now));
	json_array_append(turn->items, item);
	turn_notify(turn, "item/completed",
		    json_pack("{s:O,s:s,s:s,s:n,s:I}", "item", item, "threadId", turn->thread->id, "turnId", turn->id,
			      "contentTokenCount", "completedAtMs", (json_int_t)now));
	thread_record(turn->thread, "event_msg",
		      json_pack("{s:s,s:s,s:s,s:O}", "type", "item_completed", "thread_id", turn->thread->id, "turn_id",
				turn->id, "item", item));
}

void turn_warning(Turn *turn, const char *message)
{
	turn_notify(turn, "warning", json_pack("{s:s,s:s}", "threadId", turn->thread->id, "message", message));
}

/* Input the model sees, and a history item recorded for the next requests and the rollout. */
void turn_add_history(Turn *turn, json_t *item)
{
	json_array_append(turn->thread->history, item);
	thread_record(turn->thread, "response_item", json_incref(item));
}

/* --- the user's input ---------------------------------------------------------------------------- */

/* UserInput as the userMessage item shows it: text_elements defaulted as the reference does. */
static json_t *turn_display_input(json_t *input)
{
	json_t *content = json_deep_copy(input);
	size_t i;
	json_t *part;
	json_array_foreach (content, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		if (type && strcmp(type, "text") == 0 && !json_object_get(part, "text_elements"))
			json_object_set_new(part, "text_elements", json_array());
	}
	return content;
}

static char *turn_input_text(json_t *input)
{
	size_t i, len = 0;
	json_t *part;
	json_array_foreach (input, i, part) {
		const char *text = json_string_value(json_object_get(part, "text"));
		if (text)
			len += strlen(text) + 1;
	}
	char *out = calloc(1, len + 1);
	if (!out)
		return NULL;
	json_array_foreach (input, i, part) {
		const char *text = json_string_value(json_object_get(part, "text"));
		if (!text)
			continue;
		if (out[0])
			strcat(out, "\n");
		strcat(out, text);
	}
	return out;
}

/* The user's input as a userMessage item, shown at once. */
static void turn_show_user_input(Turn *turn, json_t *input)
{
	char id[UUID_TEXT_LEN + 1];
	if (uuid_v7(id) < 0)
		snprintf(id, sizeof(id), "%s", turn->id);
	json_t *item = json_pack("{s:s,s:s,s:n,s:o}", "type", "userMessage", "id", id, "clientId", "content",
				 turn_display_input(input));
	turn_item_started(turn, item);
	turn_item_completed(turn, item);
	json_decref(item);
}

/* The user's input as a user message of the model's history (and the thread's preview). */
static void turn_record_user_input(Turn *turn, json_t *input)
{
	char *text = turn_input_text(input);
	json_t *content = json_array();
	size_t i;
	json_t *part;
	json_array_foreach (input, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		const char *value = json_string_value(json_object_get(part, "text"));
		if (type && strcmp(type, "text") == 0 && value)
			json_array_append_new(content, json_pack("{s:s,s:s}", "type", "input_text", "text", value));
		else if (type && strcmp(type, "image") == 0 && json_is_string(json_object_get(part, "url")))
			json_array_append_new(content, json_pack("{s:s,s:O}", "type", "input_image", "image_url",
								 json_object_get(part, "url")));
	}
	json_t *message = json_pack("{s:s,s:s,s:o}", "type", "message", "role", "user", "content", content);
	turn_add_history(turn, message);
	json_decref(message);
	Thread *thread = turn->thread;
	if (text && (!thread->preview || !thread->preview[0])) {
		free(thread->preview);
		thread->preview = strdup(text);
	}
	thread_record(thread, "event_msg",
		      json_pack("{s:s,s:s,s:[]}", "type", "user_message", "message", text ? text : "", "images"));
	free(text);
}

/* The SandboxPolicy type as the reference's rollouts spell it (kebab-case). */
static const char *turn_sandbox_kebab(const json_t *policy)
{
	static const char *const names[][2] = { { "readOnly", "read-only" },
						{ "workspaceWrite", "workspace-write" },
						{ "dangerFullAccess", "danger-full-access" },
						{ "externalSandbox", "external-sandbox" } };
	const char *type = json_string_value(json_object_get(policy, "type"));
	for (size_t i = 0; type && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(type, names[i][0]) == 0)
			return names[i][1];
	}
	return "read-only";
}

/*
 * The settings this turn runs with, as the reference's turn_context line; the last one is what a
 * resume after a restart restores, so turn/start's overrides outlive agentd. agentd's own exact
 * sandbox policy rides along under "agentd".
 */
static json_t *turn_context_json(const Turn *turn)
{
	const Thread *thread = turn->thread;
	return json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s,s:{s:s},s:{s:O,s:s?}}", "turn_id", turn->id, "cwd",
			 thread->cwd, "approval_policy", approval_policy_name(thread->approval), "model", thread->model,
			 "effort", thread->reasoning_effort, "summary",
			 thread->reasoning_summary ? thread->reasoning_summary : "auto", "sandbox_policy", "type",
			 turn_sandbox_kebab(thread->sandbox), "agentd", "sandbox", thread->sandbox,
			 "reasoning_summary", thread->reasoning_summary);
}

/* status active, turn/started: what every turn begins with. */
static void turn_announce(Turn *turn)
{
	Thread *thread = turn->thread;
	turn->is_announced = true;
	thread->updated_at = turn->started_at_ms / 1000;
	thread_record(thread, "event_msg",
		      json_pack("{s:s,s:s,s:I}", "type", "task_started", "turn_id", turn->id, "started_at",
				(json_int_t)(turn->started_at_ms / 1000)));
	thread_record(thread, "turn_context", turn_context_json(turn));
	turn_notify_status(turn);
	turn_notify(turn, "turn/started", json_pack("{s:s,s:o}", "threadId", thread->id, "turn", turn_json(turn, false)));
}

void turn_run(Turn *turn)
{
	turn_announce(turn);
	prompt_add_context(turn->thread, turn);
	turn_show_user_input(turn, turn->input);
	turn_record_user_input(turn, turn->input);
	turn_sample(turn);
}

int turn_run_shell(Turn *turn, const char *command, int64_t timeout_ms)
{
	turn->is_shell_only = true;
	turn_announce(turn);
	int rc = tools_run_user_shell(turn, command, timeout_ms);
	if (rc < 0)
		turn_fail(turn, "failed to start shell command: out of memory", json_string("other"), NULL);
	return rc;
}

int turn_add_shell(Turn *turn, const char *command, int64_t timeout_ms)
{
	return tools_run_user_shell(turn, command, timeout_ms);
}

void turn_shell_result(Turn *turn, const char *text)
{
	json_t *message = json_pack("{s:s,s:s,s:[{s:s,s:s}]}", "type", "message", "role", "user", "content", "type",
				    "input_text", "text", text);
	if (!message)
		return;
	if (turn->is_finished || turn->is_shell_only) {
		/* The next request of the thread sees it. */
		turn_add_history(turn, message);
		if (turn->is_shell_only && !turn->is_finished)
			turn_finish(turn, "completed", NULL);
	} else {
		json_array_append(turn->injected, message);
	}
	json_decref(message);
}

int turn_steer(Turn *turn, json_t *input)
{
	json_t *copy = json_deep_copy(input);
	if (!copy || json_array_append_new(turn->steered, copy) < 0)
		return -ENOMEM;
	/* Shown at once, as the reference does; in the history with the next request, after what
	 * the model is streaming now. */
	turn_show_user_input(turn, input);
	return 0;
}

/* --- the end ------------------------------------------------------------------------------------- */

static void turn_answer_interrupts(Turn *turn)
{
	size_t i;
	json_t *pair;
	json_array_foreach (turn->interrupt_replies, i, pair) {
		Conn *conn = conn_find(turn->thread->server, (uint64_t)json_integer_value(json_array_get(pair, 0)));
		if (conn) {
			conn_reply(conn, json_array_get(pair, 1), json_object());
			conn_call_finished(conn);
		}
	}
	json_array_clear(turn->interrupt_replies);
}

/* turn/completed carries the final answer only (the reference's "summary" view). */
static json_t *turn_completed_json(Turn *turn)
{
	json_t *obj = turn_json(turn, false);
	json_t *items = json_object_get(obj, "items");
	json_t *last = NULL;
	size_t i;
	json_t *item;
	if (strcmp(turn->status, "completed") == 0) {
		json_array_foreach (turn->items, i, item) {
			const char *type = json_string_value(json_object_get(item, "type"));
			if (type && strcmp(type, "agentMessage") == 0)
				last = item;
		}
	}
	if (last) {
		json_array_append(items, last);
		json_object_set_new(obj, "itemsView", json_string("summary"));
	}
	return obj;
}

static void turn_finish(Turn *turn, const char *status, json_t *error)
{
	if (turn->is_finished) {
		json_decref(error);
		return;
	}
	Thread *thread = turn->thread;
	turn->is_finished = true;
	turn->status = status;
	turn->error = error;
	turn->completed_at_ms = thread_now_ms();
	turn_stop_stream(turn);
	turn_stop_timer(turn);
	tools_stop(turn);
	/* Items that were streaming end with what they have. */
	const char *key;
	json_t *open;
	void *tmp;
	turn_flush_streamed(turn);
	json_object_foreach_safe (turn->open_items, tmp, key, open)
		turn_item_completed(turn, open);
	json_object_clear(turn->open_items);

	/* The model hears of an interrupt in the next turn, as the reference tells it. */
	if (strcmp(status, "interrupted") == 0 && !turn->is_abandoned) {
		json_t *aborted = json_pack("{s:s,s:s,s:[{s:s,s:s}]}", "type", "message", "role", "user", "content",
					    "type", "input_text", "text",
					    "<turn_aborted>\nThe user interrupted the previous turn on purpose. Any running "
					    "commands were stopped. Do not continue it unless asked to.\n</turn_aborted>");
		turn_add_history(turn, aborted);
		json_decref(aborted);
	}
	json_array_append_new(thread->turns, turn_json(turn, true));
	thread_record(thread, "event_msg",
		      json_pack("{s:s,s:s,s:s?,s:I,s:I,s:s,s:O}", "type", "task_complete", "turn_id", turn->id,
				"last_agent_message", turn->last_agent_message, "started_at",
				(json_int_t)(turn->started_at_ms / 1000), "completed_at",
				(json_int_t)(turn->completed_at_ms / 1000), "status", status, "error",
				error ? error : json_null()));
	thread_sync(thread);
	thread->updated_at = turn->completed_at_ms / 1000;
	thread->turn = NULL;
	if (turn->is_abandoned) {
		turn_release(turn);
		return;
	}
	json_t *completed = turn_completed_json(turn);
	if (strcmp(status, "interrupted") == 0)
		turn_answer_interrupts(turn);
	/* The finished turn is unread until a client says otherwise (thread/readState/update). */
	thread_set_unread(thread, json_pack("{s:s,s:s}", "type", "turn", "turnId", turn->id), true);
	if (error) {
		turn_notify(turn, "thread/status/changed",
			    json_pack("{s:s,s:{s:s}}", "threadId", thread->id, "status", "type", "systemError"));
		turn_notify(turn, "error",
			    json_pack("{s:O,s:b,s:s,s:s}", "error", error, "willRetry", 0, "threadId", thread->id,
				      "turnId", turn->id));
	} else {
		turn_notify_status(turn);
	}
	turn_notify(turn, "turn/completed", json_pack("{s:s,s:o}", "threadId", thread->id, "turn", completed));
	turn_answer_interrupts(turn);
	turn_release(turn);
}

json_t *turn_error_json(const char *message, json_t *info, const char *details)
{
	return json_pack("{s:s,s:o,s:s?,s:n}", "message", message, "codexErrorInfo", info ? info : json_null(),
			 "additionalDetails", details, "misalignment");
}

void turn_fail(Turn *turn, const char *message, json_t *info, const char *details)
{
	turn_finish(turn, "failed", turn_error_json(message, info, details));
}

void turn_interrupt(Turn *turn, Conn *conn, json_t *id)
{
	if (conn && id) {
		json_array_append_new(turn->interrupt_replies, json_pack("[I,O]", (json_int_t)conn->id, id));
		conn_call_started(conn);
	}
	turn_withdraw_approval(turn);
	turn_finish(turn, "interrupted", NULL);
}

void turn_abandon(Turn *turn)
{
	turn->is_abandoned = true;
	turn_withdraw_approval(turn);
	turn_finish(turn, "interrupted", NULL);
}

/* --- approvals ----------------------------------------------------------------------------------- */

/* Who is asked: the client that started the turn, else any subscriber still connected. */
static Conn *turn_approver(Turn *turn)
{
	Agentd *server = turn->thread->server;
	Conn *conn = conn_find(server, turn->conn_id);
	if (conn && conn->is_initialized && thread_is_subscribed(turn->thread, conn->id))
		return conn;
	for (size_t i = 0; i < turn->thread->subscriber_count; i++) {
		conn = conn_find(server, turn->thread->subscribers[i]);
		if (conn && conn->is_initialized)
			return conn;
	}
	return NULL;
}

static void turn_on_approval(void *ctx, json_t *result, json_t *error)
{
	Turn *turn = ctx;
	(void)error;
	TurnApprovalFn fn = turn->approval_fn;
	void *fn_ctx = turn->approval_ctx;
	int64_t request_id = turn->approval_id;
	turn->approval_conn = 0;
	turn->approval_fn = NULL;
	if (turn->is_finished) {
		turn_release(turn);
		return;
	}
	const char *decision = NULL;
	json_t *value = result ? json_object_get(result, "decision") : NULL;
	if (json_is_string(value))
		decision = json_string_value(value);
	else if (json_is_object(value) && json_object_size(value) == 1)
		decision = json_object_iter_key(json_object_iter(value)); /* {acceptWithExecpolicyAmendment:…} */
	/* A client that went, answered an error or something unreadable declines. */
	if (!decision)
		decision = "decline";
	turn_notify(turn, "serverRequest/resolved",
		    json_pack("{s:s,s:I}", "threadId", turn->thread->id, "requestId", (json_int_t)request_id));
	turn_notify_status(turn);
	fn(turn, decision, fn_ctx);
	turn_release(turn);
}

int turn_request_approval(Turn *turn, const char *method, json_t *params, TurnApprovalFn fn, void *ctx)
{
	Conn *conn = turn_approver(turn);
	if (!conn) {
		json_decref(params);
		return -ENOTCONN;
	}
	turn->approval_conn = conn->id;
	turn->approval_fn = fn;
	turn->approval_ctx = ctx;
	turn_notify_status(turn);
	turn_hold(turn);
	int64_t id = conn_request(conn, method, params, turn_on_approval, turn);
	if (id < 0) {
		turn->approval_conn = 0;
		turn->approval_fn = NULL;
		turn_release(turn);
		turn_notify_status(turn);
		return (int)id;
	}
	turn->approval_id = id;
	return 0;
}

/* The turn ends while a decision is awaited: the request is withdrawn, its waiter told "cancel". */
void turn_withdraw_approval(Turn *turn)
{
	if (!turn->approval_conn)
		return;
	Conn *conn = conn_find(turn->thread->server, turn->approval_conn);
	TurnApprovalFn fn = turn->approval_fn;
	void *fn_ctx = turn->approval_ctx;
	turn->approval_conn = 0;
	turn->approval_fn = NULL;
	if (conn && conn_request_forget(conn, turn->approval_id))
		turn_release(turn);
	turn_notify(turn, "serverRequest/resolved",
		    json_pack("{s:s,s:I}", "threadId", turn->thread->id, "requestId", (json_int_t)turn->approval_id));
	if (fn)
		fn(turn, "cancel", fn_ctx);
}

/* --- tool calls ---------------------------------------------------------------------------------- */

static void turn_run_next_call(Turn *turn)
{
	if (turn->is_finished)
		return;
	if (turn->next_call < json_array_size(turn->calls)) {
		json_t *call = json_array_get(turn->calls, turn->next_call++);
		tools_run(turn, call);
		return;
	}
	json_decref(turn->calls);
	turn->calls = NULL;
	turn_sample(turn);
}

void turn_tool_output(Turn *turn, json_t *output_item)
{
	if (turn->is_finished) {
		json_decref(output_item);
		return;
	}
	turn_add_history(turn, output_item);
	json_decref(output_item);
	turn_run_next_call(turn);
}

/* --- the model's stream -------------------------------------------------------------------------- */

static json_t *turn_agent_message_item(const char *id, const char *phase)
{
	return json_pack("{s:s,s:n,s:s,s:s,s:s?,s:n,s:n,s:n}", "type", "agentMessage", "moderation", "id", id, "text",
			 "", "phase", phase, "memoryCitation", "delivery", "questions");
}

static json_t *turn_reasoning_item(const char *id)
{
	return json_pack("{s:s,s:s,s:[],s:[]}", "type", "reasoning", "id", id, "summary", "content");
}

/* The streaming item @id; when there is none yet, @fresh (stolen, else dropped) is started as it. */
static json_t *turn_open_item(Turn *turn, const char *id, json_t *fresh)
{
	json_t *open = json_object_get(turn->open_items, id);
	if (open || !fresh) {
		json_decref(fresh);
		return open;
	}
	turn_item_started(turn, fresh);
	json_object_set_new(turn->open_items, id, fresh);
	return fresh;
}

/* The item @id leaves the streaming ones (a new reference), started from @fresh if it never streamed. */
static json_t *turn_close_item(Turn *turn, const char *id, json_t *fresh)
{
	json_t *shown = json_incref(turn_open_item(turn, id, fresh));
	json_object_del(turn->open_items, id);
	return shown;
}

static int turn_on_item_added(void *ctx, const RespItem *item)
{
	Turn *turn = ctx;
	if (!item->id)
		return 0;
	if (item->kind == RESP_ITEM_MESSAGE)
		turn_open_item(turn, item->id,
			       turn_agent_message_item(item->id, json_string_value(json_object_get(item->json, "phase"))));
	else if (item->kind == RESP_ITEM_REASONING)
		turn_open_item(turn, item->id, turn_reasoning_item(item->id));
	return 0;
}

static void turn_stream_text(Turn *turn, const RespDelta *delta)
{
	if (strncmp(turn->streamed_id, delta->item_id, sizeof(turn->streamed_id)) != 0) {
		snprintf(turn->streamed_id, sizeof(turn->streamed_id), "%s", delta->item_id);
		turn->streamed_len = 0;
	}
	size_t need = turn->streamed_len + delta->delta_len + 1;
	if (need > turn->streamed_capacity) {
		size_t capacity = turn->streamed_capacity ? turn->streamed_capacity : 4096;
		while (capacity < need)
			capacity *= 2;
		char *grown = realloc(turn->streamed, capacity);
		if (!grown)
			return;
		turn->streamed = grown;
		turn->streamed_capacity = capacity;
	}
	memcpy(turn->streamed + turn->streamed_len, delta->delta, delta->delta_len);
	turn->streamed_len += delta->delta_len;
}

/* Open items end with what was streamed to them (a failed attempt, an interrupt). */
static void turn_flush_streamed(Turn *turn)
{
	json_t *open = turn->streamed_id[0] ? json_object_get(turn->open_items, turn->streamed_id) : NULL;
	if (open && turn->streamed)
		json_object_set_new(open, "text", json_stringn(turn->streamed, turn->streamed_len));
	turn->streamed_id[0] = '\0';
	turn->streamed_len = 0;
}

static int turn_on_text_delta(void *ctx, const RespDelta *delta)
{
	Turn *turn = ctx;
	if (!delta->item_id)
		return 0;
	if (!json_object_get(turn->open_items, delta->item_id)) /* a delta before (or without) its item */
		turn_open_item(turn, delta->item_id, turn_agent_message_item(delta->item_id, NULL));
	turn_stream_text(turn, delta);
	turn_notify(turn, "item/agentMessage/delta",
		    json_pack("{s:s,s:s,s:s,s:s%}", "threadId", turn->thread->id, "turnId", turn->id, "itemId",
			      delta->item_id, "delta", delta->delta, delta->delta_len));
	return 0;
}

static int turn_on_reasoning_delta(void *ctx, RespReasoningKind kind, const RespDelta *delta)
{
	Turn *turn = ctx;
	if (!delta->item_id)
		return 0;
	int64_t index = delta->index < 0 ? 0 : delta->index;
	if (!json_object_get(turn->open_items, delta->item_id))
		turn_open_item(turn, delta->item_id, turn_reasoning_item(delta->item_id));
	if (kind == RESP_REASONING_SUMMARY_PART) {
		turn_notify(turn, "item/reasoning/summaryPartAdded",
			    json_pack("{s:s,s:s,s:s,s:I}", "threadId", turn->thread->id, "turnId", turn->id, "itemId",
				      delta->item_id, "summaryIndex", (json_int_t)index));
		return 0;
	}
	bool is_summary = kind == RESP_REASONING_SUMMARY_TEXT;
	turn_notify(turn, is_summary ? "item/reasoning/summaryTextDelta" : "item/reasoning/textDelta",
		    json_pack("{s:s,s:s,s:s,s:s%,s:I}", "threadId", turn->thread->id, "turnId", turn->id, "itemId",
			      delta->item_id, "delta", delta->delta, delta->delta_len,
			      is_summary ? "summaryIndex" : "contentIndex", (json_int_t)index));
	return 0;
}

static json_t *turn_text_parts(const json_t *list, const char *part_type)
{
	json_t *out = json_array();
	size_t i;
	json_t *part;
	json_array_foreach (list, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		const char *text = json_string_value(json_object_get(part, "text"));
		if (type && text && strcmp(type, part_type) == 0)
			json_array_append_new(out, json_string(text));
	}
	return out;
}

static void turn_complete_message(Turn *turn, const RespItem *item)
{
	const char *id = item->id ? item->id : "msg";
	json_t *shown =
		turn_close_item(turn, id, turn_agent_message_item(id, json_string_value(json_object_get(item->json, "phase"))));
	if (!shown)
		return;
	json_object_set_new(shown, "text", json_stringn(item->text ? item->text : "", item->text ? item->text_len : 0));
	free(turn->last_agent_message);
	turn->last_agent_message = item->text ? strndup(item->text, item->text_len) : strdup("");
	turn_item_completed(turn, shown);
	json_decref(shown);
}

static void turn_complete_reasoning(Turn *turn, const RespItem *item)
{
	const char *id = item->id ? item->id : "rs";
	json_t *shown = turn_close_item(turn, id, turn_reasoning_item(id));
	if (!shown)
		return;
	json_object_set_new(shown, "summary", turn_text_parts(json_object_get(item->json, "summary"), "summary_text"));
	json_object_set_new(shown, "content", turn_text_parts(json_object_get(item->json, "content"), "reasoning_text"));
	turn_item_completed(turn, shown);
	json_decref(shown);
}

static int turn_on_item_done(void *ctx, const RespItem *item)
{
	Turn *turn = ctx;
	json_t *copy = json_deep_copy(item->json);
	if (!copy)
		return -ENOMEM;
	/* The arguments as streamed when the done item lacks them: the history must carry them. */
	if (item->kind == RESP_ITEM_FUNCTION_CALL && item->arguments && !json_object_get(copy, "arguments"))
		json_object_set_new(copy, "arguments", json_stringn(item->arguments, item->arguments_len));
	if (item->kind == RESP_ITEM_CUSTOM_TOOL_CALL && item->arguments && !json_object_get(copy, "input"))
		json_object_set_new(copy, "input", json_stringn(item->arguments, item->arguments_len));
	json_array_append_new(turn->attempt_output, copy);
	if (item->kind == RESP_ITEM_MESSAGE)
		turn_complete_message(turn, item);
	else if (item->kind == RESP_ITEM_REASONING)
		turn_complete_reasoning(turn, item);
	return 0;
}

static int turn_on_completed(void *ctx, const char *response_id, const RespUsage *usage)
{
	Turn *turn = ctx;
	(void)response_id;
	if (usage)
		turn_record_usage(turn, usage);
	return 0;
}

static int turn_on_failed(void *ctx, const RespError *error)
{
	Turn *turn = ctx;
	turn->failure_kind = error->kind;
	turn->failure_retry_after_ms = error->retry_after_ms;
	snprintf(turn->failure_code, sizeof(turn->failure_code), "%s", error->code ? error->code : "");
	snprintf(turn->failure_message, sizeof(turn->failure_message), "%s", error->message ? error->message : "");
	return 0;
}

static const ResponsesCallbacks turn_decoder_callbacks = {
	.on_item_added = turn_on_item_added,
	.on_item_done = turn_on_item_done,
	.on_text_delta = turn_on_text_delta,
	.on_reasoning_delta = turn_on_reasoning_delta,
	.on_completed = turn_on_completed,
	.on_failed = turn_on_failed,
};

static int turn_on_response(void *ctx, long status, const ModelHeaders *headers)
{
	Turn *turn = ctx;
	turn->http_status = status;
	const char *state = model_headers_get(headers, "x-codex-turn-state");
	if (state && !turn->turn_state)
		turn->turn_state = strdup(state);
	turn_note_rate_limits(turn, headers);
	return 0;
}

static int turn_on_body(void *ctx, const char *data, size_t len)
{
	Turn *turn = ctx;
	int rc = sse_parser_feed(turn->sse, data, len);
	return rc < 0 ? rc : 0;
}

/* --- retries ------------------------------------------------------------------------------------- */

static void turn_on_retry_timer(uv_timer_t *timer)
{
	Turn *turn = timer->data;
	uv_close((uv_handle_t *)timer, turn_on_timer_closed);
	turn->retry_timer = NULL;
	if (!turn->is_finished)
		turn_sample(turn);
	turn_release(turn);
}

static uint64_t turn_backoff_ms(unsigned attempt, int64_t hint_ms)
{
	if (hint_ms >= 0)
		return (uint64_t)hint_ms;
	uint64_t ms = TURN_RETRY_BASE_MS;
	for (unsigned i = 1; i < attempt && ms < TURN_RETRY_CAP_MS; i++)
		ms *= 2;
	return ms < TURN_RETRY_CAP_MS ? ms : TURN_RETRY_CAP_MS;
}

/* turn_sample() again after @delay_ms (at once when no timer can be had). */
static void turn_sample_later(Turn *turn, uint64_t delay_ms)
{
	uv_timer_t *timer = malloc(sizeof(*timer));
	if (!timer || uv_timer_init(turn->thread->server->loop, timer) < 0) {
		free(timer);
		turn_sample(turn);
		return;
	}
	timer->data = turn;
	turn->retry_timer = timer;
	turn_hold(turn);
	uv_timer_start(timer, turn_on_retry_timer, delay_ms, 0);
}

/*
 * A request that got no usable answer (a 5xx, or no response at all) is sent again first
 * without a word, up to request_max_retries times, as the reference's HTTP layer does; only when
 * those are spent does the attempt fail and turn_retry() announce the next. False when spent.
 */
static bool turn_retry_request(Turn *turn, int64_t hint_ms)
{
	int64_t max = turn->provider ? turn->provider->request_max_retries : 0;
	if (turn->request_attempt >= max) {
		turn->request_attempt = 0; /* the next attempt has its own */
		return false;
	}
	turn->request_attempt++;
	turn_sample_later(turn, turn_backoff_ms(turn->request_attempt, hint_ms));
	return true;
}

/* Discard what the failed attempt streamed (the retry streams it again), then try once more. */
static bool turn_retry(Turn *turn, json_t *info, const char *details, int64_t hint_ms)
{
	int64_t max = turn->provider ? turn->provider->stream_max_retries : 0;
	if (turn->attempt >= max) {
		json_decref(info);
		return false;
	}
	turn->attempt++;
	const char *key;
	json_t *open;
	void *tmp;
	turn_flush_streamed(turn);
	json_object_foreach_safe (turn->open_items, tmp, key, open)
		turn_item_completed(turn, open);
	json_object_clear(turn->open_items);
	json_array_clear(turn->attempt_output);
	char message[64];
	snprintf(message, sizeof(message), "Reconnecting... %u/%lld", turn->attempt, (long long)max);
	turn_notify(turn, "error",
		    json_pack("{s:o,s:b,s:s,s:s}", "error", turn_error_json(message, info, details), "willRetry", 1,
			      "threadId", turn->thread->id, "turnId", turn->id));
	turn_sample_later(turn, turn_backoff_ms(turn->attempt, hint_ms));
	return true;
}

static json_t *turn_stream_info(const char *kind, long status)
{
	return json_pack("{s:{s:o}}", kind, "httpStatusCode", status > 0 ? json_integer(status) : json_null());
}

/* The message of an error body {"error":{"message":…}}, else the body itself. */
static char *turn_error_body_message(const ModelResult *r)
{
	if (!r->error_body)
		return strdup("");
	json_t *body = json_loadb(r->error_body, r->error_body_len, 0, NULL);
	const char *message = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
	char *out = strdup(message ? message : r->error_body);
	json_decref(body);
	return out;
}

/* Retry-After in seconds (the HTTP-date form is not used by model APIs), else -1. */
static int64_t turn_retry_after_ms(const ModelHeaders *headers)
{
	const char *value = model_headers_get(headers, "retry-after");
	char *end;
	double seconds = value ? strtod(value, &end) : -1;
	if (!value || end == value || seconds < 0)
		return -1;
	return seconds > (double)TURN_RETRY_CAP_MS / 1000.0 ? (int64_t)TURN_RETRY_CAP_MS : (int64_t)(seconds * 1000.0);
}

/* What the reference says of a 5xx whose body is an API error: the load, not the body. */
#define TURN_HIGH_DEMAND_TEXT "We\u2019re currently experiencing high demand, which may cause temporary errors."

/* The reason phrase of @status, as the reference's "unexpected status" text names it. */
static const char *turn_status_reason(long status)
{
	switch (status) {
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "";
	}
}

/*
 * A 5xx: retried (silently first, then announced) and at last the turn's failure. With an API
 * error body the reference speaks of high demand and reports no status in the retry's info;
 * with anything else it quotes the status, the body and the URL.
 */
static void turn_on_server_error(Turn *turn, const ModelResult *r, json_t *err, const char *message)
{
	const char *code = json_string_value(json_object_get(err, "code"));
	int64_t hint_ms = turn_retry_after_ms(r->headers);
	if (turn_retry_request(turn, hint_ms))
		return;
	if (json_is_object(err)) {
		if (turn_retry(turn, turn_stream_info("responseStreamDisconnected", 0), TURN_HIGH_DEMAND_TEXT, hint_ms))
			return;
		bool is_overloaded = code && (strcmp(code, "server_is_overloaded") == 0 || strcmp(code, "slow_down") == 0);
		turn_fail(turn, TURN_HIGH_DEMAND_TEXT, json_string(is_overloaded ? "serverOverloaded" : "internalServerError"),
			  NULL);
		return;
	}
	char details[1200];
	snprintf(details, sizeof(details), "unexpected status %ld %s: %s, url: %s", r->status,
		 turn_status_reason(r->status), message, provider_responses_url(turn->provider, turn->auth_mode));
	if (!turn_retry(turn, turn_stream_info("responseStreamDisconnected", r->status), details, hint_ms))
		turn_fail(turn, details, json_string("internalServerError"), NULL);
}

static void turn_on_http_error(Turn *turn, const ModelResult *r)
{
	long status = r->status;
	json_t *body = r->error_body ? json_loadb(r->error_body, r->error_body_len, 0, NULL) : NULL;
	json_t *err = json_object_get(body, "error");
	const char *type = json_string_value(json_object_get(err, "type"));
	const char *code = json_string_value(json_object_get(err, "code"));
	char *message = turn_error_body_message(r);
	if (status == 401 && !turn->did_recover_auth && turn->bearer_is_authd) {
		json_decref(body);
		free(message);
		turn->did_recover_auth = true;
		turn_recover_auth(turn);
		return;
	}
	if (status == 429 && type && strcmp(type, "usage_limit_reached") == 0) {
		char text[1024];
		usage_limit_message(err, r->headers, time(NULL), text, sizeof(text));
		turn_fail(turn, text, json_string("usageLimitExceeded"), NULL);
	} else if (status == 429) {
		/* The reference gives up on a 429 at once (captured from 0.169, with and without Retry-After). */
		turn_fail(turn, "exceeded retry limit, last status: 429 Too Many Requests",
			  json_pack("{s:{s:i}}", "responseTooManyFailedAttempts", "httpStatusCode", 429), NULL);
	} else if (status >= 500) {
		turn_on_server_error(turn, r, err, message);
	} else if (status == 400 && code && strcmp(code, "context_length_exceeded") == 0) {
		turn_fail(turn, message, json_string("contextWindowExceeded"), NULL);
	} else if (status == 401) {
		turn_fail(turn, message[0] ? message : "unauthorized", json_string("unauthorized"), NULL);
	} else if (status == 400) {
		turn_fail(turn, message, json_string("badRequest"), NULL);
	} else {
		char text[160];
		snprintf(text, sizeof(text), "unexpected status %ld: %s", status, message);
		turn_fail(turn, text, turn_stream_info("httpConnectionFailed", status), NULL);
	}
	json_decref(body);
	free(message);
}

static void turn_on_stream_failed(Turn *turn)
{
	const char *message = turn->failure_message[0] ? turn->failure_message : "response.failed";
	switch (turn->failure_kind) {
	case RESP_ERR_CONTEXT_LENGTH:
		turn_fail(turn, message, json_string("contextWindowExceeded"), NULL);
		return;
	case RESP_ERR_USAGE_LIMIT:
	case RESP_ERR_USAGE_NOT_INCLUDED:
	case RESP_ERR_INSUFFICIENT_QUOTA:
		turn_fail(turn, message, json_string("usageLimitExceeded"), NULL);
		return;
	case RESP_ERR_INVALID_PROMPT:
		turn_fail(turn, message, json_string("badRequest"), NULL);
		return;
	case RESP_ERR_CYBER_POLICY:
		turn_fail(turn, message, json_string("cyberPolicy"), NULL);
		return;
	case RESP_ERR_INCOMPLETE: {
		char text[400];
		snprintf(text, sizeof(text), "Incomplete response returned, reason: %s", turn->failure_code);
		turn_fail(turn, text, json_string("other"), NULL);
		return;
	}
	default:
		break;
	}
	if (!turn_retry(turn, turn_stream_info("responseStreamDisconnected", 0), message, turn->failure_retry_after_ms))
		turn_fail(turn, message,
			  json_string(turn->failure_kind == RESP_ERR_SERVER_OVERLOADED ? "serverOverloaded" : "other"),
			  NULL);
}

/* The response completed: its items join the history; tools run, or the turn ends. */
static void turn_on_response_completed(Turn *turn)
{
	json_t *calls = json_array();
	size_t i;
	json_t *item;
	json_array_foreach (turn->attempt_output, i, item) {
		turn_add_history(turn, item);
		const char *type = json_string_value(json_object_get(item, "type"));
		if (type && (strcmp(type, "function_call") == 0 || strcmp(type, "custom_tool_call") == 0 ||
			     strcmp(type, "local_shell_call") == 0))
			json_array_append(calls, item);
	}
	json_array_clear(turn->attempt_output);
	turn->attempt = 0;
	turn->request_attempt = 0;
	if (json_array_size(calls) > 0) {
		turn->calls = calls;
		turn->next_call = 0;
		turn_run_next_call(turn);
		return;
	}
	json_decref(calls);
	if (json_array_size(turn->steered) > 0) {
		turn_sample(turn);
		return;
	}
	turn_finish(turn, "completed", NULL);
}

static void turn_on_done(void *ctx, const ModelResult *r)
{
	Turn *turn = ctx;
	turn->stream = NULL;
	int decoded = turn->decoder ? responses_decoder_finish(turn->decoder) : RESPONSES_E_INCOMPLETE;
	int cut = turn->sse ? sse_parser_finish(turn->sse) : 0;
	(void)cut;
	sse_parser_free(turn->sse);
	turn->sse = NULL;
	responses_decoder_free(turn->decoder);
	turn->decoder = NULL;
	if (turn->is_finished) {
		turn_release(turn);
		return;
	}
	if (r->error == 0 && (r->status < 200 || r->status >= 300)) {
		turn_on_http_error(turn, r);
	} else if (decoded == 0) {
		turn_on_response_completed(turn);
	} else if (decoded == RESPONSES_E_FAILED) {
		turn_on_stream_failed(turn);
	} else {
		char details[600];
		if (r->error)
			snprintf(details, sizeof(details), "stream disconnected before completion: %s", r->message);
		else if (decoded < 0)
			snprintf(details, sizeof(details), "stream disconnected before completion: %s", strerror(-decoded));
		else
			snprintf(details, sizeof(details), "stream closed before response.completed");
		/* No response at all (refused, unreachable, reset before a status) is the request's to retry. */
		bool is_request_failure = r->error != 0 && r->status == 0;
		if (is_request_failure && turn_retry_request(turn, -1)) {
			turn_release(turn);
			return;
		}
		if (!turn_retry(turn, turn_stream_info("responseStreamDisconnected", r->status), details, -1))
			turn_fail(turn, details, turn_stream_info("responseStreamDisconnected", r->status), NULL);
	}
	turn_release(turn);
}

/* --- sampling ------------------------------------------------------------------------------------ */

static int turn_open_decoder(Turn *turn)
{
	if (responses_decoder_new(NULL, &turn_decoder_callbacks, turn, &turn->decoder) < 0)
		return -ENOMEM;
	if (sse_parser_new(NULL, responses_decoder_on_sse, turn->decoder, &turn->sse) < 0)
		return -ENOMEM;
	return 0;
}

/* Steered input waiting for a request goes into the history now. */
static void turn_take_steered(Turn *turn)
{
	size_t i;
	json_t *input;
	json_array_foreach (turn->steered, i, input)
		turn_record_user_input(turn, input);
	json_array_clear(turn->steered);
	json_array_foreach (turn->injected, i, input)
		turn_add_history(turn, input);
	json_array_clear(turn->injected);
}

void turn_send_request(Turn *turn)
{
	if (turn->is_finished)
		return;
	static const ModelStreamEvents events = {
		.on_response = turn_on_response,
		.on_body = turn_on_body,
		.on_done = turn_on_done,
	};
	char err[256] = "";
	char *body = prompt_build_request(turn->thread, turn);
	PromptHeaders headers;
	if (!body || prompt_build_headers(turn->thread, turn, &headers) < 0) {
		free(body);
		turn_fail(turn, "out of memory building the model request", json_string("other"), NULL);
		return;
	}
	ModelRequest req = {
		.url = provider_responses_url(turn->provider, turn->auth_mode),
		.headers = (const char *const *)headers.lines,
		.n_headers = headers.count,
		.body = body,
		.body_len = strlen(body),
		.connect_timeout_ms = TURN_CONNECT_TIMEOUT_MS,
		.idle_timeout_ms = (uint32_t)turn->provider->stream_idle_timeout_ms,
	};
	turn->http_status = 0;
	turn->failure_kind = RESP_ERR_OTHER;
	turn->failure_code[0] = turn->failure_message[0] = '\0';
	int rc = turn_open_decoder(turn);
	if (rc == 0)
		rc = model_stream_start(turn->thread->server->model_client, &req, &events, turn, &turn->stream, err,
					sizeof(err));
	prompt_headers_free(&headers);
	free(body);
	if (rc < 0) {
		sse_parser_free(turn->sse);
		turn->sse = NULL;
		responses_decoder_free(turn->decoder);
		turn->decoder = NULL;
		turn->stream = NULL;
		turn_fail(turn, err[0] ? err : strerror(-rc), turn_stream_info("httpConnectionFailed", 0), NULL);
		return;
	}
	turn_hold(turn);
}

static void turn_sample(Turn *turn)
{
	if (turn->is_finished)
		return;
	turn_take_steered(turn);
	if (!turn->provider) {
		char err[300];
		/* The thread's provider: chosen by thread/start or thread/resume, else the configured one. */
		if (provider_resolve_id(&turn->thread->server->config, turn->thread->model_provider, &turn->provider,
					err, sizeof(err)) < 0) {
			turn_fail(turn, err, json_string("other"), NULL);
			return;
		}
	}
	turn_authenticate(turn);
}

void turn_set_output_schema(Turn *turn, json_t *schema)
{
	json_decref(turn->output_schema);
	turn->output_schema = json_incref(schema);
}
