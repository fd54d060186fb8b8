/* SPDX-License-Identifier: MIT */
/* thread.c - the registry of loaded threads, their subscribers, and the Thread objects of the wire. */
#include "thread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "rollout.h"
#include "tool_exec.h"
#include "tools.h"
#include "turn.h"
#include "unified_exec.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

static const char *const approval_names[] = {
	[APPROVAL_UNTRUSTED] = "untrusted",
	[APPROVAL_ON_FAILURE] = "on-failure",
	[APPROVAL_ON_REQUEST] = "on-request",
	[APPROVAL_NEVER] = "never",
};

int approval_policy_parse(const char *text, ApprovalPolicy *out)
{
	for (size_t i = 0; i < sizeof(approval_names) / sizeof(approval_names[0]); i++) {
		if (strcmp(text, approval_names[i]) == 0) {
			*out = (ApprovalPolicy)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *approval_policy_name(ApprovalPolicy policy)
{
	return approval_names[policy];
}

int64_t thread_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Thread *thread_new(Agentd *server, const char *id)
{
	Thread *thread = calloc(1, sizeof(*thread));
	if (!thread)
		return NULL;
	thread->history = json_array();
	thread->turns = json_array();
	thread->approved_commands = json_object();
	if (!thread->history || !thread->turns || !thread->approved_commands) {
		json_decref(thread->history);
		json_decref(thread->turns);
		json_decref(thread->approved_commands);
		free(thread);
		return NULL;
	}
	thread->server = server;
	thread->owner = ++server->next_thread_owner;
	snprintf(thread->id, sizeof(thread->id), "%s", id);
	thread->approval = APPROVAL_ON_REQUEST;
	thread->next = server->threads;
	if (server->threads)
		server->threads->prev = thread;
	server->threads = thread;
	return thread;
}

void thread_free(Thread *thread)
{
	if (!thread)
		return;
	Agentd *server = thread->server;
	if (thread->turn)
		turn_abandon(thread->turn);
	if (thread->ux)
		ux_free(thread->ux);
	thread->ux = NULL;
	tools_abandon(thread);
	tool_exec_kill_owner(server, thread->owner);
	if (thread->rollout) {
		rollout_sync(thread->rollout);
		rollout_close(thread->rollout);
	}
	if (thread->prev)
		thread->prev->next = thread->next;
	else
		server->threads = thread->next;
	if (thread->next)
		thread->next->prev = thread->prev;
	free(thread->cwd);
	free(thread->model);
	free(thread->model_provider);
	free(thread->reasoning_effort);
	free(thread->reasoning_summary);
	free(thread->base_instructions);
	free(thread->developer_instructions);
	free(thread->name);
	free(thread->preview);
	free(thread->source);
	free(thread->originator);
	free(thread->path);
	json_decref(thread->sandbox);
	json_decref(thread->history);
	json_decref(thread->turns);
	json_decref(thread->approved_commands);
	json_decref(thread->usage_total);
	json_decref(thread->first_unread);
	free(thread->subscribers);
	free(thread);
}

json_t *thread_read_state_json(const Thread *thread)
{
	if (!thread->read_revision[0])
		return NULL;
	return json_pack("{s:O,s:s}", "firstUnread", thread->first_unread ? thread->first_unread : json_null(),
			 "revision", thread->read_revision);
}

void thread_set_unread(Thread *thread, json_t *position, bool only_if_read)
{
	if (thread->is_ephemeral) {
		json_decref(position);
		return;
	}
	if (only_if_read && thread->first_unread) {
		json_decref(position);
	} else {
		json_decref(thread->first_unread);
		thread->first_unread = position;
	}
	if (uuid_v7(thread->read_revision) < 0)
		snprintf(thread->read_revision, sizeof(thread->read_revision), "%016llx",
			 (unsigned long long)thread_now_ms());
	thread_notify(thread, "thread/readState/changed",
		      json_pack("{s:s,s:o}", "threadId", thread->id, "readState", thread_read_state_json(thread)));
}

Thread *thread_find(Agentd *server, const char *id)
{
	for (Thread *t = server->threads; t; t = t->next) {
		if (strcmp(t->id, id) == 0)
			return t;
	}
	return NULL;
}

void thread_free_all(Agentd *server)
{
	while (server->threads)
		thread_free(server->threads);
}

/* --- subscribers --------------------------------------------------------------------------------- */

bool thread_is_subscribed(const Thread *thread, uint64_t conn_id)
{
	for (size_t i = 0; i < thread->subscriber_count; i++) {
		if (thread->subscribers[i] == conn_id)
			return true;
	}
	return false;
}

int thread_subscribe(Thread *thread, uint64_t conn_id)
{
	if (thread_is_subscribed(thread, conn_id))
		return 0;
	if (thread->subscriber_count == thread->subscriber_capacity) {
		size_t capacity = thread->subscriber_capacity ? 2 * thread->subscriber_capacity : 4;
		uint64_t *grown = realloc(thread->subscribers, capacity * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		thread->subscribers = grown;
		thread->subscriber_capacity = capacity;
	}
	thread->subscribers[thread->subscriber_count++] = conn_id;
	return 0;
}

bool thread_unsubscribe(Thread *thread, uint64_t conn_id)
{
	for (size_t i = 0; i < thread->subscriber_count; i++) {
		if (thread->subscribers[i] == conn_id) {
			thread->subscribers[i] = thread->subscribers[--thread->subscriber_count];
			return true;
		}
	}
	return false;
}

void thread_on_conn_closed(Agentd *server, uint64_t conn_id)
{
	for (Thread *t = server->threads; t; t = t->next)
		thread_unsubscribe(t, conn_id);
}

void thread_notify(Thread *thread, const char *method, json_t *params)
{
	if (!params)
		return;
	for (size_t i = 0; i < thread->subscriber_count; i++) {
		Conn *conn = conn_find(thread->server, thread->subscribers[i]);
		if (conn && conn->is_initialized)
			conn_notify(conn, method, json_incref(params));
	}
	json_decref(params);
}

/* --- wire objects -------------------------------------------------------------------------------- */

json_t *thread_status_json(const Thread *thread)
{
	if (!thread->turn)
		return json_pack("{s:s}", "type", "idle");
	json_t *flags = json_array();
	if (turn_is_waiting_on_approval(thread->turn))
		json_array_append_new(flags, json_string("waitingOnApproval"));
	return json_pack("{s:s,s:o}", "type", "active", "activeFlags", flags);
}

static json_t *json_string_or_null(const char *text)
{
	return text ? json_string(text) : json_null();
}

json_t *thread_json(const Thread *thread, bool with_turns)
{
	json_t *turns = with_turns ? json_deep_copy(thread->turns) : json_array();
	if (with_turns && thread->turn)
		json_array_append_new(turns, turn_json(thread->turn, true));
	json_t *obj = json_object();
	json_object_set_new(obj, "id", json_string(thread->id));
	json_object_set_new(obj, "sessionId", json_string(thread->id));
	json_object_set_new(obj, "forkedFromId", json_null());
	json_object_set_new(obj, "parentThreadId", json_null());
	json_object_set_new(obj, "preview", json_string(thread->preview ? thread->preview : ""));
	json_object_set_new(obj, "ephemeral", json_boolean(thread->is_ephemeral));
	json_object_set_new(obj, "projectId", json_null());
	json_object_set_new(obj, "modelProvider", json_string(thread->model_provider));
	json_object_set_new(obj, "model", json_string(thread->model));
	json_object_set_new(obj, "reasoningEffort", json_string_or_null(thread->reasoning_effort));
	json_object_set_new(obj, "createdAt", json_integer(thread->created_at));
	json_object_set_new(obj, "updatedAt", json_integer(thread->updated_at));
	json_object_set_new(obj, "recencyAt", json_integer(thread->updated_at));
	json_object_set_new(obj, "status", thread_status_json(thread));
	json_object_set_new(obj, "path", json_string_or_null(thread->path));
	json_object_set_new(obj, "cwd", json_string(thread->cwd));
	json_object_set_new(obj, "cliVersion", json_string(PACKAGE_VERSION));
	json_object_set_new(obj, "originator", json_string_or_null(thread->originator));
	json_object_set_new(obj, "source", json_string(thread->source ? thread->source : "vscode"));
	json_object_set_new(obj, "threadSource", json_null());
	json_object_set_new(obj, "agentNickname", json_null());
	json_object_set_new(obj, "agentRole", json_null());
	json_object_set_new(obj, "gitInfo", json_null());
	json_object_set_new(obj, "name", json_string_or_null(thread->name));
	json_object_set_new(obj, "turns", turns);
	return obj;
}

json_t *thread_response_json(const Thread *thread, bool with_turns)
{
	return json_pack("{s:o,s:s,s:s,s:n,s:[],s:s,s:[],s:s,s:s,s:O,s:o}", "thread", thread_json(thread, with_turns),
			 "model", thread->model, "modelProvider", thread->model_provider, "serviceTier",
			 "disabledPluginIds", "cwd", thread->cwd, "instructionSources", "approvalPolicy",
			 approval_policy_name(thread->approval), "approvalsReviewer", "user", "sandbox",
			 thread->sandbox, "reasoningEffort", json_string_or_null(thread->reasoning_effort));
}

/* --- persistence --------------------------------------------------------------------------------- */

void thread_record(Thread *thread, const char *type, json_t *payload)
{
	if (thread->rollout && payload && rollout_append(thread->rollout, type, payload) < 0)
		log_warn("thread %s: cannot append to %s", thread->id, thread->path ? thread->path : "its rollout");
	json_decref(payload);
}

void thread_sync(Thread *thread)
{
	if (thread->rollout && rollout_sync(thread->rollout) < 0)
		log_warn("thread %s: cannot sync %s", thread->id, thread->path ? thread->path : "its rollout");
}
