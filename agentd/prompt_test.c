/* SPDX-License-Identifier: MIT */
/* prompt_test.c - cmocka tests for the sampling request (prompt.c, codex-behaviour.md §13.1): the
 * body's fields and their order, the headers (the bearer and account id only when they apply), the
 * wipe of the token on free, the context messages a thread starts with, and the sandbox mode names.
 * The engine's turn_add_history() and tools_definitions() are doubles here; realloc and free are
 * wrapped (-Wl,--wrap=realloc,--wrap=free) to fail allocations and to look at what is freed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "prompt.h"
#include "tools.h"
#include "turn_internal.h"

/* ---- realloc and free, wrapped ------------------------------------------------------------------- */

void *__real_realloc(void *ptr, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
void __real_free(void *ptr);
void __wrap_free(void *ptr);

static size_t realloc_calls;
static size_t realloc_fail_at; /* the call, counting from 1, that fails; 0: none */

void *__wrap_realloc(void *ptr, size_t size)
{
	realloc_calls++;
	if (realloc_fail_at && realloc_calls == realloc_fail_at)
		return NULL;
	return __real_realloc(ptr, size);
}

/* Buffers whose contents are checked as they are freed. */
typedef struct Watched {
	const void *ptr;
	size_t len;
	bool is_freed;
	bool was_zero;
} Watched;

static Watched watched[64];
static size_t watched_count;
static const char *secret; /* while set, a freed buffer still holding it is counted */
static size_t secret_freed;

static bool buffer_starts_with(const char *buf, const char *prefix)
{
	/* stops at the first difference, so never reads past a shorter string's NUL */
	for (; *prefix; buf++, prefix++) {
		if (*buf != *prefix)
			return false;
	}
	return true;
}

void __wrap_free(void *ptr)
{
	if (ptr) {
		for (size_t i = 0; i < watched_count; i++) {
			if (watched[i].ptr != ptr)
				continue;
			const unsigned char *b = ptr;
			watched[i].is_freed = true;
			watched[i].was_zero = true;
			for (size_t k = 0; k < watched[i].len; k++)
				watched[i].was_zero &= b[k] == 0;
		}
		if (secret && (buffer_starts_with(ptr, secret) || buffer_starts_with(ptr, "Bearer ")))
			secret_freed++;
	}
	__real_free(ptr);
}

/* ---- the engine's doubles ------------------------------------------------------------------------- */

static size_t history_adds;
static const Thread *tools_thread;

void turn_add_history(Turn *turn, json_t *item)
{
	history_adds++;
	assert_int_equal(json_array_append(turn->thread->history, item), 0);
}

json_t *tools_definitions(const Thread *thread)
{
	tools_thread = thread;
	return json_pack("[{s:s,s:s},{s:s,s:s}]", "type", "function", "name", "exec_command", "type",
			 "custom", "name", "apply_patch");
}

/* ---- a thread and its turn ------------------------------------------------------------------------- */

#define THREAD_ID "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d"
#define TURN_ID "01970f3d-0000-7abc-9def-0123456789ab"

typedef struct Fixture {
	Thread thread;
	Turn turn;
	Provider provider;
	ProviderHeader provider_headers[2];
} Fixture;

static int fixture_new(void **state)
{
	Fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->thread.id, sizeof(f->thread.id), "%s", THREAD_ID);
	f->thread.cwd = "/repo";
	f->thread.model = "gpt-5.1-codex";
	f->thread.approval = APPROVAL_ON_REQUEST;
	f->thread.sandbox = json_pack("{s:s,s:b}", "type", "workspaceWrite", "networkAccess", 0);
	f->thread.history = json_array();
	f->provider_headers[0] = (ProviderHeader){ "X-Provider", "one" };
	f->provider_headers[1] = (ProviderHeader){ "OpenAI-Organization", "org-1" };
	f->provider.id = "openai";
	f->provider.headers = f->provider_headers;
	f->provider.n_headers = 2;
	f->turn.thread = &f->thread;
	snprintf(f->turn.id, sizeof(f->turn.id), "%s", TURN_ID);
	snprintf(f->turn.originator, sizeof(f->turn.originator), "codex_vscode");
	snprintf(f->turn.user_agent, sizeof(f->turn.user_agent),
		 "codex_vscode/0.169.0 (Linux 6.8; x86_64) vscode/1.99");
	snprintf(f->turn.bearer, sizeof(f->turn.bearer), "sk-test-123");
	f->turn.auth_mode = PROVIDER_AUTH_API_KEY;
	f->turn.provider = &f->provider;
	f->turn.started_at_ms = INT64_C(1780000000123);
	history_adds = 0;
	tools_thread = NULL;
	realloc_calls = realloc_fail_at = 0;
	watched_count = 0;
	secret = NULL;
	secret_freed = 0;
	assert_int_equal(setenv("TZ", "UTC", 1), 0);
	tzset();
	*state = f;
	return 0;
}

static int fixture_free(void **state)
{
	Fixture *f = *state;
	json_decref(f->thread.sandbox);
	json_decref(f->thread.history);
	free(f);
	return 0;
}

/* ---- the body ------------------------------------------------------------------------------------- */

static json_t *build_body(const Fixture *f, char **text_out)
{
	char *text = prompt_build_request(&f->thread, &f->turn);
	assert_non_null(text);
	json_error_t jerr;
	json_t *body = json_loads(text, 0, &jerr);
	if (!body)
		fail_msg("body is not JSON (%s): %s", jerr.text, text);
	if (text_out)
		*text_out = text;
	else
		free(text);
	return body;
}

static void test_body_output_schema(void **state)
{
	Fixture *f = *state;
	json_t *body = build_body(f, NULL);
	assert_null(json_object_get(body, "text")); /* no schema: the default text format */
	json_decref(body);

	json_t *schema = json_pack("{s:s,s:{s:{s:s}},s:[s]}", "type", "object", "properties", "title", "type",
				   "string", "required", "title");
	f->turn.output_schema = schema;
	body = build_body(f, NULL);
	json_t *format = json_object_get(json_object_get(body, "text"), "format");
	assert_string_equal(json_string_value(json_object_get(format, "type")), "json_schema");
	assert_true(json_is_true(json_object_get(format, "strict")));
	assert_string_equal(json_string_value(json_object_get(format, "name")), "codex_output_schema");
	assert_true(json_equal(json_object_get(format, "schema"), schema));
	f->turn.output_schema = NULL;
	json_decref(schema);
	json_decref(body);
}

static void test_body_fields(void **state)
{
	Fixture *f = *state;
	json_array_append_new(f->thread.history,
			      json_pack("{s:s,s:s,s:[{s:s,s:s}]}", "type", "message", "role", "user",
					"content", "type", "input_text", "text", "Run tests"));
	json_array_append_new(f->thread.history,
			      json_pack("{s:s,s:s,s:s,s:s}", "type", "function_call", "call_id", "call_1",
					"name", "exec_command", "arguments", "{\"cmd\":\"make check\"}"));
	json_array_append_new(f->thread.history, json_pack("{s:s,s:s,s:s}", "type", "function_call_output",
							   "call_id", "call_1", "output", "Exit code: 0"));
	f->thread.base_instructions = "You are the thread's own agent.";
	f->thread.reasoning_effort = "high";
	json_t *body = build_body(f, NULL);

	assert_string_equal(json_string_value(json_object_get(body, "model")), "gpt-5.1-codex");
	assert_string_equal(json_string_value(json_object_get(body, "instructions")),
			    "You are the thread's own agent.");
	/* the whole history, resent as it is */
	assert_true(json_equal(json_object_get(body, "input"), f->thread.history));
	/* the tools of this thread */
	assert_ptr_equal(tools_thread, &f->thread);
	json_t *tools = json_object_get(body, "tools");
	assert_int_equal(json_array_size(tools), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
			    "exec_command");
	assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 1), "name")),
			    "apply_patch");
	assert_string_equal(json_string_value(json_object_get(body, "tool_choice")), "auto");
	assert_true(json_is_false(json_object_get(body, "parallel_tool_calls")));
	assert_true(json_is_true(json_object_get(body, "stream")));
	assert_true(json_is_false(json_object_get(body, "store")));
	json_t *include = json_object_get(body, "include");
	assert_int_equal(json_array_size(include), 1);
	assert_string_equal(json_string_value(json_array_get(include, 0)), "reasoning.encrypted_content");
	assert_string_equal(json_string_value(json_object_get(body, "prompt_cache_key")), THREAD_ID);
	json_t *reasoning = json_object_get(body, "reasoning");
	assert_true(json_is_object(reasoning));
	assert_string_equal(json_string_value(json_object_get(reasoning, "effort")), "high");
	assert_string_equal(json_string_value(json_object_get(reasoning, "summary")), "auto");
	json_decref(body);

	/* the body holds no reference on the thread's history once built */
	assert_int_equal(f->thread.history->refcount, 1);
}

static void test_body_defaults(void **state)
{
	Fixture *f = *state;
	json_t *body = build_body(f, NULL);
	/* agentd's own instructions when the thread has none */
	const char *instructions = json_string_value(json_object_get(body, "instructions"));
	assert_non_null(instructions);
	assert_true(strlen(instructions) > 100);
	assert_non_null(strstr(instructions, "agentd"));
	/* an empty history is an empty input, not null */
	json_t *input = json_object_get(body, "input");
	assert_true(json_is_array(input));
	assert_int_equal(json_array_size(input), 0);
	/* no effort unless the thread sets one */
	json_t *reasoning = json_object_get(body, "reasoning");
	assert_null(json_object_get(reasoning, "effort"));
	assert_string_equal(json_string_value(json_object_get(reasoning, "summary")), "auto");
	json_decref(body);

	f->thread.reasoning_summary = "detailed";
	f->thread.reasoning_effort = "low";
	body = build_body(f, NULL);
	reasoning = json_object_get(body, "reasoning");
	assert_string_equal(json_string_value(json_object_get(reasoning, "effort")), "low");
	assert_string_equal(json_string_value(json_object_get(reasoning, "summary")), "detailed");
	json_decref(body);
}

/* §13.1 gives the body "field order as serialized". */
static void test_body_field_order(void **state)
{
	Fixture *f = *state;
	f->thread.reasoning_effort = "medium";
	char *text = NULL;
	json_t *body = build_body(f, &text);
	static const char *const order[] = {
		"\"model\":",	  "\"instructions\":",	  "\"input\":",
		"\"tools\":",	  "\"tool_choice\":",	  "\"parallel_tool_calls\":",
		"\"reasoning\":", "\"store\":",		  "\"stream\":",
		"\"include\":",	  "\"prompt_cache_key\":"
	};
	const char *at = text;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *next = strstr(at, order[i]);
		if (!next)
			fail_msg("%s missing or out of order in %s", order[i], text);
		at = next + strlen(order[i]);
	}
	json_decref(body);
	free(text);
}

/* ---- the headers ----------------------------------------------------------------------------------- */

/* How many lines are "@name: …" (the name case-insensitive), and the value of the last. */
static size_t header_count(const PromptHeaders *h, const char *name, const char **value)
{
	size_t n = 0, len = strlen(name);
	for (size_t i = 0; i < h->count; i++) {
		const char *line = h->lines[i];
		if (strncasecmp(line, name, len) == 0 && line[len] == ':') {
			assert_int_equal(line[len + 1], ' ');
			if (value)
				*value = line + len + 2;
			n++;
		}
	}
	return n;
}

static const char *header_value(const PromptHeaders *h, const char *name)
{
	const char *value = NULL;
	size_t n = header_count(h, name, &value);
	if (n != 1)
		fail_msg("header %s appears %zu times", name, n);
	return value;
}

static void test_headers_api_key(void **state)
{
	Fixture *f = *state;
	snprintf(f->turn.account_id, sizeof(f->turn.account_id), "acct-1"); /* not sent with an API key */
	PromptHeaders h;
	assert_int_equal(prompt_build_headers(&f->thread, &f->turn, &h), 0);
	for (size_t i = 0; i < h.count; i++) {
		assert_null(strchr(h.lines[i], '\n'));
		assert_null(strchr(h.lines[i], '\r'));
	}
	assert_string_equal(header_value(&h, "X-Provider"), "one");
	assert_string_equal(header_value(&h, "OpenAI-Organization"), "org-1");
	assert_string_equal(header_value(&h, "Authorization"), "Bearer sk-test-123");
	assert_int_equal(header_count(&h, "ChatGPT-Account-ID", NULL), 0);
	assert_string_equal(header_value(&h, "originator"), "codex_vscode");
	assert_string_equal(header_value(&h, "User-Agent"),
			    "codex_vscode/0.169.0 (Linux 6.8; x86_64) vscode/1.99");
	assert_string_equal(header_value(&h, "session-id"), THREAD_ID);
	assert_string_equal(header_value(&h, "thread-id"), THREAD_ID);
	assert_string_equal(header_value(&h, "x-client-request-id"), THREAD_ID);
	assert_int_equal(header_count(&h, "x-codex-turn-state", NULL), 0);
	assert_string_equal(header_value(&h, "Accept"), "text/event-stream");
	assert_string_equal(header_value(&h, "Content-Type"), "application/json");

	json_error_t jerr;
	json_t *meta = json_loads(header_value(&h, "x-codex-turn-metadata"), 0, &jerr);
	if (!meta)
		fail_msg("x-codex-turn-metadata is not JSON: %s", jerr.text);
	assert_string_equal(json_string_value(json_object_get(meta, "turn_id")), TURN_ID);
	assert_string_equal(json_string_value(json_object_get(meta, "thread_id")), THREAD_ID);
	assert_string_equal(json_string_value(json_object_get(meta, "sandbox_mode")), "workspace-write");
	json_decref(meta);
	prompt_headers_free(&h);
}

static void test_headers_chatgpt(void **state)
{
	Fixture *f = *state;
	f->turn.auth_mode = PROVIDER_AUTH_CHATGPT;
	snprintf(f->turn.bearer, sizeof(f->turn.bearer), "eyJhbGciOi.access.token");
	snprintf(f->turn.account_id, sizeof(f->turn.account_id), "acct-1");
	f->turn.turn_state = "ts-opaque-42";
	PromptHeaders h;
	assert_int_equal(prompt_build_headers(&f->thread, &f->turn, &h), 0);
	assert_string_equal(header_value(&h, "Authorization"), "Bearer eyJhbGciOi.access.token");
	assert_string_equal(header_value(&h, "ChatGPT-Account-ID"), "acct-1");
	assert_string_equal(header_value(&h, "x-codex-turn-state"), "ts-opaque-42");
	prompt_headers_free(&h);

	/* ChatGPT tokens without an account id: no empty header */
	f->turn.account_id[0] = '\0';
	assert_int_equal(prompt_build_headers(&f->thread, &f->turn, &h), 0);
	assert_int_equal(header_count(&h, "ChatGPT-Account-ID", NULL), 0);
	assert_string_equal(header_value(&h, "Authorization"), "Bearer eyJhbGciOi.access.token");
	prompt_headers_free(&h);
}

static void test_headers_without_bearer(void **state)
{
	Fixture *f = *state;
	f->turn.bearer[0] = '\0';
	f->provider.n_headers = 0;
	PromptHeaders h;
	assert_int_equal(prompt_build_headers(&f->thread, &f->turn, &h), 0);
	/* no "Authorization: Bearer " with nothing after it */
	assert_int_equal(header_count(&h, "Authorization", NULL), 0);
	assert_int_equal(header_count(&h, "X-Provider", NULL), 0);
	assert_string_equal(header_value(&h, "originator"), "codex_vscode");
	assert_string_equal(header_value(&h, "thread-id"), THREAD_ID);
	prompt_headers_free(&h);
}

/* Every line is wiped before it is freed, and so is the "Bearer …" scratch copy. */
static void test_headers_free_wipes(void **state)
{
	Fixture *f = *state;
	secret = "sk-test-123";
	PromptHeaders h;
	assert_int_equal(prompt_build_headers(&f->thread, &f->turn, &h), 0);
	assert_int_equal(secret_freed, 0); /* the scratch "Bearer sk-…" was wiped before its free */
	assert_true(h.count > 0 && h.count <= sizeof(watched) / sizeof(watched[0]));
	for (size_t i = 0; i < h.count; i++)
		watched[watched_count++] = (Watched){ .ptr = h.lines[i], .len = strlen(h.lines[i]) };
	prompt_headers_free(&h);
	assert_null(h.lines);
	assert_int_equal(h.count, 0);
	for (size_t i = 0; i < watched_count; i++) {
		assert_true(watched[i].is_freed);
		if (!watched[i].was_zero)
			fail_msg("header line %zu was freed without being wiped", i);
	}
	assert_int_equal(secret_freed, 0);
	watched_count = 0;
	secret = NULL;

	/* freeing twice, or a zeroed set, is harmless */
	prompt_headers_free(&h);
	PromptHeaders none = { 0 };
	prompt_headers_free(&none);
}

/* Out of memory at any header: -ENOMEM and nothing left behind (ASan's leak check in the sanitizer build). */
static void test_headers_out_of_memory(void **state)
{
	Fixture *f = *state;
	f->turn.auth_mode = PROVIDER_AUTH_CHATGPT;
	snprintf(f->turn.account_id, sizeof(f->turn.account_id), "acct-1");
	f->turn.turn_state = "ts";
	PromptHeaders h;
	realloc_calls = 0;
	assert_int_equal(prompt_build_headers(&f->thread, &f->turn, &h), 0);
	size_t calls = realloc_calls;
	assert_true(calls > 0);
	prompt_headers_free(&h);
	for (size_t at = 1; at <= calls; at++) {
		realloc_calls = 0;
		realloc_fail_at = at;
		h = (PromptHeaders){ .lines = (char **)1, .count = 99 }; /* garbage the call must overwrite */
		assert_int_equal(prompt_build_headers(&f->thread, &f->turn, &h), -ENOMEM);
		assert_null(h.lines);
		assert_int_equal(h.count, 0);
	}
	realloc_fail_at = 0;
}

/* ---- the context messages ---------------------------------------------------------------------------- */

static const char *part_text(const json_t *message, size_t i)
{
	const json_t *part = json_array_get(json_object_get(message, "content"), i);
	assert_string_equal(json_string_value(json_object_get(part, "type")), "input_text");
	const char *text = json_string_value(json_object_get(part, "text"));
	assert_non_null(text);
	return text;
}

static void expect_contains(const char *text, const char *needle)
{
	if (!strstr(text, needle))
		fail_msg("\"%s\" not in:\n%s", needle, text);
}

static void expect_lacks(const char *text, const char *needle)
{
	if (strstr(text, needle))
		fail_msg("\"%s\" unexpectedly in:\n%s", needle, text);
}

static bool ends_with(const char *text, const char *suffix)
{
	size_t n = strlen(text), k = strlen(suffix);
	return n >= k && strcmp(text + n - k, suffix) == 0;
}

static void today(char out[16])
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(out, 16, "%Y-%m-%d", &tm);
}

static void test_context_added_once(void **state)
{
	Fixture *f = *state;
	f->thread.developer_instructions = "Always run the linter.";
	assert_int_equal(setenv("SHELL", "/usr/bin/zsh", 1), 0);
	/* something already in the history stays first */
	json_array_append_new(f->thread.history, json_pack("{s:s}", "type", "marker"));
	char day_before[16], day_after[16];
	today(day_before);
	prompt_add_context(&f->thread, &f->turn);
	today(day_after);
	assert_true(f->thread.has_context);
	assert_int_equal(history_adds, 2);
	assert_int_equal(json_array_size(f->thread.history), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(f->thread.history, 0), "type")),
			    "marker");

	const json_t *developer = json_array_get(f->thread.history, 1);
	assert_string_equal(json_string_value(json_object_get(developer, "type")), "message");
	assert_string_equal(json_string_value(json_object_get(developer, "role")), "developer");
	assert_int_equal(json_array_size(json_object_get(developer, "content")), 2);
	const char *permissions = part_text(developer, 0);
	assert_int_equal(strncmp(permissions, "<permissions instructions>", 26), 0);
	assert_true(ends_with(permissions, "</permissions instructions>"));
	expect_contains(permissions, "`sandbox_mode` is `workspace-write`");
	expect_contains(permissions, "Network access is restricted");
	expect_contains(permissions, "Approval policy is currently on-request");
	assert_string_equal(part_text(developer, 1), "Always run the linter.");

	const json_t *user = json_array_get(f->thread.history, 2);
	assert_string_equal(json_string_value(json_object_get(user, "type")), "message");
	assert_string_equal(json_string_value(json_object_get(user, "role")), "user");
	assert_int_equal(json_array_size(json_object_get(user, "content")), 1);
	const char *env = part_text(user, 0);
	assert_int_equal(strncmp(env, "<environment_context>\n", 22), 0);
	assert_true(ends_with(env, "</environment_context>"));
	expect_contains(env, "\n  <cwd>/repo</cwd>\n");
	expect_contains(env, "\n  <shell>zsh</shell>\n");
	expect_contains(env, "\n  <timezone>UTC</timezone>\n");
	expect_contains(env, "\n  <sandbox_mode>workspace-write</sandbox_mode>\n");
	expect_contains(env, "\n  <network_access>restricted</network_access>\n");
	char date_tag[64], date_tag_after[64];
	snprintf(date_tag, sizeof(date_tag), "<current_date>%s</current_date>", day_before);
	snprintf(date_tag_after, sizeof(date_tag_after), "<current_date>%s</current_date>", day_after);
	assert_true(strstr(env, date_tag) || strstr(env, date_tag_after));

	/* the second turn finds them there */
	json_t *before = json_deep_copy(f->thread.history);
	prompt_add_context(&f->thread, &f->turn);
	assert_int_equal(history_adds, 2);
	assert_true(json_equal(before, f->thread.history));
	json_decref(before);
}

static void test_context_already_there(void **state)
{
	Fixture *f = *state;
	f->thread.has_context = true; /* a resumed thread */
	prompt_add_context(&f->thread, &f->turn);
	assert_int_equal(history_adds, 0);
	assert_int_equal(json_array_size(f->thread.history), 0);
}

static void test_context_without_developer_instructions(void **state)
{
	Fixture *f = *state;
	const char *cases[] = { NULL, "" };
	for (size_t i = 0; i < 2; i++) {
		f->thread.developer_instructions = cases[i] ? (char *)cases[i] : NULL;
		f->thread.has_context = false;
		json_array_clear(f->thread.history);
		prompt_add_context(&f->thread, &f->turn);
		assert_int_equal(json_array_size(f->thread.history), 2);
		const json_t *developer = json_array_get(f->thread.history, 0);
		assert_string_equal(json_string_value(json_object_get(developer, "role")), "developer");
		/* the permissions alone: no empty part */
		assert_int_equal(json_array_size(json_object_get(developer, "content")), 1);
	}
}

typedef struct SandboxCase {
	const char *json; /* the v2 SandboxPolicy, or NULL for none */
	const char *mode;
	const char *sandbox_text;
	bool has_network;
} SandboxCase;

static const SandboxCase sandbox_cases[] = {
	{ "{\"type\":\"readOnly\"}", "read-only", "`sandbox_mode` is `read-only`", false },
	{ "{\"type\":\"readOnly\",\"networkAccess\":true}", "read-only", "`sandbox_mode` is `read-only`",
	  true },
	{ "{\"type\":\"workspaceWrite\",\"writableRoots\":[\"/tmp\"]}", "workspace-write",
	  "`sandbox_mode` is `workspace-write`", false },
	{ "{\"type\":\"workspaceWrite\",\"networkAccess\":true}", "workspace-write",
	  "`sandbox_mode` is `workspace-write`", true },
	{ "{\"type\":\"dangerFullAccess\"}", "danger-full-access", "`sandbox_mode` is `danger-full-access`",
	  true },
	{ "{}", "read-only", "`sandbox_mode` is `read-only`", false },
	{ NULL, "read-only", "`sandbox_mode` is `read-only`", false },
};

typedef struct ApprovalCase {
	ApprovalPolicy policy;
	const char *text;
} ApprovalCase;

static const ApprovalCase approval_cases[] = {
	{ APPROVAL_UNTRUSTED, "Approval policy is currently untrusted." },
	{ APPROVAL_ON_FAILURE, "Approval policy is currently on-failure." },
	{ APPROVAL_ON_REQUEST, "Approval policy is currently on-request." },
	{ APPROVAL_NEVER, "Approval policy is currently never." },
};

static void test_context_sandbox_and_approval(void **state)
{
	Fixture *f = *state;
	json_decref(f->thread.sandbox);
	f->thread.sandbox = NULL;
	for (size_t s = 0; s < sizeof(sandbox_cases) / sizeof(sandbox_cases[0]); s++) {
		const SandboxCase *sc = &sandbox_cases[s];
		for (size_t a = 0; a < sizeof(approval_cases) / sizeof(approval_cases[0]); a++) {
			json_decref(f->thread.sandbox);
			f->thread.sandbox = sc->json ? json_loads(sc->json, 0, NULL) : NULL;
			assert_true(!sc->json || f->thread.sandbox);
			f->thread.approval = approval_cases[a].policy;
			f->thread.has_context = false;
			json_array_clear(f->thread.history);
			history_adds = 0;
			prompt_add_context(&f->thread, &f->turn);
			assert_int_equal(history_adds, 2);

			const char *permissions = part_text(json_array_get(f->thread.history, 0), 0);
			expect_contains(permissions, sc->sandbox_text);
			expect_contains(permissions, sc->has_network ? "Network access is enabled."
								     : "Network access is restricted.");
			expect_contains(permissions, approval_cases[a].text);
			/* exactly one approval policy is stated */
			for (size_t other = 0; other < sizeof(approval_cases) / sizeof(approval_cases[0]);
			     other++) {
				if (other != a)
					expect_lacks(permissions, approval_cases[other].text);
			}

			const char *env = part_text(json_array_get(f->thread.history, 1), 0);
			char tag[96];
			snprintf(tag, sizeof(tag), "<sandbox_mode>%s</sandbox_mode>", sc->mode);
			expect_contains(env, tag);
			snprintf(tag, sizeof(tag), "<network_access>%s</network_access>",
				 sc->has_network ? "enabled" : "restricted");
			expect_contains(env, tag);
		}
	}
}

/* ---- prompt_sandbox_mode ----------------------------------------------------------------------------- */

static void test_sandbox_mode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(sandbox_cases) / sizeof(sandbox_cases[0]); i++) {
		json_t *sandbox = sandbox_cases[i].json ? json_loads(sandbox_cases[i].json, 0, NULL) : NULL;
		assert_string_equal(prompt_sandbox_mode(sandbox), sandbox_cases[i].mode);
		json_decref(sandbox);
	}
	/* the wire's spelling only; anything else is the safe default */
	const char *read_only[] = { "{\"type\":\"DangerFullAccess\"}", "{\"type\":\"danger-full-access\"}",
				    "{\"type\":\"workspace-write\"}",  "{\"type\":7}",
				    "{\"mode\":\"dangerFullAccess\"}", "\"dangerFullAccess\"" };
	for (size_t i = 0; i < sizeof(read_only) / sizeof(read_only[0]); i++) {
		json_t *sandbox = json_loads(read_only[i], JSON_DECODE_ANY, NULL);
		assert_non_null(sandbox);
		assert_string_equal(prompt_sandbox_mode(sandbox), "read-only");
		json_decref(sandbox);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_body_fields, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_body_defaults, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_body_field_order, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_headers_api_key, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_headers_chatgpt, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_headers_without_bearer, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_headers_free_wipes, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_headers_out_of_memory, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_context_added_once, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_context_already_there, fixture_new, fixture_free),
		cmocka_unit_test_setup_teardown(test_context_without_developer_instructions, fixture_new,
						fixture_free),
		cmocka_unit_test_setup_teardown(test_context_sandbox_and_approval, fixture_new, fixture_free),
		cmocka_unit_test(test_sandbox_mode),
		cmocka_unit_test_setup_teardown(test_body_output_schema, fixture_new, fixture_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
