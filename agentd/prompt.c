/* SPDX-License-Identifier: MIT */
/* prompt.c - what a sampling request carries, and the context messages a thread starts with. */
#include "prompt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools.h"
#include "turn_internal.h"

/* agentd's own base instructions, used unless the thread brings its own. */
static const char prompt_base_instructions[] =
	"You are a coding agent running in agentd, a privilege-separated backend for coding agents. You "
	"work in the user's workspace through the tools you are given: run shell commands with "
	"`exec_command` (and `write_stdin` for commands that keep running), and edit files with "
	"`apply_patch`.\n\n"
	"- Be precise, safe and helpful. Keep answers short and concrete; say what you did and what is left.\n"
	"- Before running commands, say in one sentence what you are about to do.\n"
	"- Prefer `rg` to search text and `rg --files` to list files.\n"
	"- Edit files with `apply_patch`, never by echoing into them.\n"
	"- Commands run in a sandbox. When one fails because the sandbox forbids it, say so instead of "
	"working around it.\n"
	"- Follow the instructions of AGENTS.md files in scope of the files you change.\n";

const char *prompt_sandbox_mode(const json_t *sandbox)
{
	const char *type = json_string_value(json_object_get(sandbox, "type"));
	if (type && strcmp(type, "dangerFullAccess") == 0)
		return "danger-full-access";
	if (type && strcmp(type, "workspaceWrite") == 0)
		return "workspace-write";
	return "read-only";
}

static const char *prompt_sandbox_text(const json_t *sandbox)
{
	const char *mode = prompt_sandbox_mode(sandbox);
	if (strcmp(mode, "danger-full-access") == 0)
		return "`sandbox_mode` is `danger-full-access`: No filesystem sandboxing - all commands are permitted.";
	if (strcmp(mode, "workspace-write") == 0)
		return "`sandbox_mode` is `workspace-write`: The sandbox permits reading files, and editing files in "
		       "`cwd` and `writable_roots`. Editing files in other directories requires approval.";
	return "`sandbox_mode` is `read-only`: The sandbox only permits reading files.";
}

static const char *prompt_approval_text(ApprovalPolicy policy)
{
	switch (policy) {
	case APPROVAL_NEVER:
		return "Approval policy is currently never. Do not provide the `sandbox_permissions` for any reason, "
		       "commands will be rejected.";
	case APPROVAL_UNTRUSTED:
		return "Approval policy is currently untrusted. Commands other than a few known-safe reads are shown "
		       "to the user for approval before they run.";
	case APPROVAL_ON_FAILURE:
		return "Approval policy is currently on-failure. Commands run in the sandbox; when one fails because "
		       "of it, the user is asked whether to run it again without the sandbox.";
	case APPROVAL_ON_REQUEST:
	default:
		return "Approval policy is currently on-request. Commands run in the sandbox; to run one outside it, "
		       "set `sandbox_permissions` to `require_escalated` with a short `justification`, and the user "
		       "decides.";
	}
}

static bool prompt_has_network(const json_t *sandbox)
{
	const char *mode = prompt_sandbox_mode(sandbox);
	return strcmp(mode, "danger-full-access") == 0 || json_is_true(json_object_get(sandbox, "networkAccess"));
}

static json_t *prompt_message(const char *role, json_t *content)
{
	return json_pack("{s:s,s:s,s:o}", "type", "message", "role", role, "content", content);
}

static json_t *prompt_text_part(const char *text)
{
	return json_pack("{s:s,s:s}", "type", "input_text", "text", text);
}

static char *prompt_environment_context(const Thread *thread)
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	char date[16];
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	const char *tz = getenv("TZ");
	const char *shell = getenv("SHELL");
	const char *base = shell ? strrchr(shell, '/') : NULL;
	char *out = NULL;
	if (asprintf(&out,
		     "<environment_context>\n  <cwd>%s</cwd>\n  <shell>%s</shell>\n  <current_date>%s</current_date>\n"
		     "  <timezone>%s</timezone>\n  <sandbox_mode>%s</sandbox_mode>\n  <network_access>%s</network_access>\n"
		     "</environment_context>",
		     thread->cwd, base ? base + 1 : "bash", date, tz && tz[0] ? tz : "Etc/UTC",
		     prompt_sandbox_mode(thread->sandbox), prompt_has_network(thread->sandbox) ? "enabled" : "restricted") <
	    0)
		return NULL;
	return out;
}

void prompt_add_context(Thread *thread, Turn *turn)
{
	if (thread->has_context)
		return;
	thread->has_context = true;
	char *permissions = NULL;
	if (asprintf(&permissions,
		     "<permissions instructions>\nFilesystem sandboxing defines which files can be read or written. "
		     "%s Network access is %s.\n%s\n</permissions instructions>",
		     prompt_sandbox_text(thread->sandbox), prompt_has_network(thread->sandbox) ? "enabled" : "restricted",
		     prompt_approval_text(thread->approval)) < 0)
		permissions = NULL;
	json_t *content = json_array();
	if (permissions)
		json_array_append_new(content, prompt_text_part(permissions));
	if (thread->developer_instructions && thread->developer_instructions[0])
		json_array_append_new(content, prompt_text_part(thread->developer_instructions));
	json_t *developer = prompt_message("developer", content);
	turn_add_history(turn, developer);
	json_decref(developer);
	free(permissions);

	char *environment = prompt_environment_context(thread);
	if (environment) {
		json_t *user = prompt_message("user", json_pack("[o]", prompt_text_part(environment)));
		turn_add_history(turn, user);
		json_decref(user);
		free(environment);
	}
}

char *prompt_build_request(const Thread *thread, const Turn *turn)
{
	json_t *reasoning = json_object();
	if (thread->reasoning_effort)
		json_object_set_new(reasoning, "effort", json_string(thread->reasoning_effort));
	json_object_set_new(reasoning, "summary", json_string(thread->reasoning_summary ? thread->reasoning_summary : "auto"));
	json_t *body = json_pack("{s:s,s:s,s:O,s:o,s:s,s:b,s:o,s:b,s:b,s:[s],s:s}", "model", thread->model,
				 "instructions",
				 thread->base_instructions ? thread->base_instructions : prompt_base_instructions, "input",
				 thread->history, "tools", tools_definitions(thread), "tool_choice", "auto",
				 "parallel_tool_calls", 0, "reasoning", reasoning, "store", 0, "stream", 1, "include",
				 "reasoning.encrypted_content", "prompt_cache_key", thread->id);
	if (!body)
		return NULL;
	/* Structured output, as the reference asks for it (the TUI's title turn uses it). */
	if (turn->output_schema)
		json_object_set_new(body, "text",
				    json_pack("{s:{s:s,s:b,s:O,s:s}}", "format", "type", "json_schema", "strict", 1,
					      "schema", turn->output_schema, "name", "codex_output_schema"));
	json_object_set_new(body, "client_metadata", json_pack("{s:s}", "x-codex-turn-id", turn->id));
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	return text;
}

static int prompt_add_header(PromptHeaders *h, const char *name, const char *value)
{
	char **grown = realloc(h->lines, (h->count + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	h->lines = grown;
	if (asprintf(&h->lines[h->count], "%s: %s", name, value) < 0)
		return -ENOMEM;
	h->count++;
	return 0;
}

static char *prompt_turn_metadata(const Thread *thread, const Turn *turn)
{
	json_t *meta = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "session_id", thread->id, "thread_id", thread->id,
				 "turn_id", turn->id, "request_kind", "turn", "sandbox_mode",
				 prompt_sandbox_mode(thread->sandbox), "model", thread->model,
				 "turn_started_at_unix_ms", (json_int_t)turn->started_at_ms);
	char *text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	json_decref(meta);
	return text;
}

int prompt_build_headers(const Thread *thread, const Turn *turn, PromptHeaders *out)
{
	*out = (PromptHeaders){ 0 };
	int rc = 0;
	char *bearer = NULL;
	if (turn->bearer[0] && asprintf(&bearer, "Bearer %s", turn->bearer) < 0)
		return -ENOMEM;
	char *metadata = prompt_turn_metadata(thread, turn);
	const Provider *p = turn->provider;
	for (size_t i = 0; rc == 0 && i < p->n_headers; i++)
		rc = prompt_add_header(out, p->headers[i].name, p->headers[i].value);
	if (rc == 0 && bearer)
		rc = prompt_add_header(out, "Authorization", bearer);
	if (rc == 0 && turn->auth_mode == PROVIDER_AUTH_CHATGPT && turn->account_id[0])
		rc = prompt_add_header(out, "ChatGPT-Account-ID", turn->account_id);
	if (rc == 0)
		rc = prompt_add_header(out, "originator", turn->originator);
	if (rc == 0)
		rc = prompt_add_header(out, "User-Agent", turn->user_agent);
	if (rc == 0)
		rc = prompt_add_header(out, "session-id", thread->id);
	if (rc == 0)
		rc = prompt_add_header(out, "thread-id", thread->id);
	if (rc == 0)
		rc = prompt_add_header(out, "x-client-request-id", thread->id);
	if (rc == 0 && metadata)
		rc = prompt_add_header(out, "x-codex-turn-metadata", metadata);
	if (rc == 0 && turn->turn_state)
		rc = prompt_add_header(out, "x-codex-turn-state", turn->turn_state);
	if (rc == 0)
		rc = prompt_add_header(out, "Accept", "text/event-stream");
	if (rc == 0)
		rc = prompt_add_header(out, "Content-Type", "application/json");
	if (bearer) {
		explicit_bzero(bearer, strlen(bearer));
		free(bearer);
	}
	free(metadata);
	if (rc < 0)
		prompt_headers_free(out);
	return rc;
}

void prompt_headers_free(PromptHeaders *h)
{
	for (size_t i = 0; i < h->count; i++) {
		explicit_bzero(h->lines[i], strlen(h->lines[i]));
		free(h->lines[i]);
	}
	free(h->lines);
	*h = (PromptHeaders){ 0 };
}
