/* SPDX-License-Identifier: MIT */
/* tools.c - the model's tool calls: items, approvals, and the runs behind them. */
#include "tools.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec_format.h"
#include "log.h"
#include "patch.h"
#include "paths.h"
#include "prompt.h"
#include "tool_exec.h"
#include "turn_internal.h"
#include "unified_exec.h"
#include "uuid.h"

#ifndef LIBEXECDIR
#define LIBEXECDIR "/usr/local/libexec"
#endif

/* What the model reads when the user declined (the reference's words). */
#define TOOLS_COMMAND_DECLINED "exec_command failed: CreateProcess { message: \"Rejected(\\\"rejected by user\\\")\" }"
#define TOOLS_PATCH_DECLINED "patch rejected by user"
/* A file larger than this is not shown in a fileChange diff. */
#define TOOLS_MAX_DIFF_SOURCE_BYTES ((size_t)8 << 20)

typedef enum ToolKind {
	TOOL_EXEC_COMMAND,
	TOOL_WRITE_STDIN,
	TOOL_SHELL_COMMAND,
	TOOL_SHELL,
	TOOL_APPLY_PATCH,
	TOOL_USER_SHELL, /* thread/shellCommand: the user's own command, not the model's */
} ToolKind;

/* One call in flight. A command's run may outlive its call (a session): it then lives on until
 * the process ends, holding its turn. */
struct ToolRun {
	ToolRun *prev, *next; /* the thread's runs */
	Turn *turn;
	ToolKind kind;
	char *call_id;
	bool is_custom;	   /* answered with custom_tool_call_output */
	json_t *args;	   /* the parsed arguments (function calls) */
	json_t *item;	   /* the commandExecution / fileChange item, or NULL */
	char *command;	   /* exec_command / shell_command: the script */
	char *workdir;	   /* absolute */
	char *patch_text;  /* apply_patch */
	bool is_escalated; /* runs without the sandbox (approved) */
	bool is_retry;	   /* on-failure: the second, unsandboxed run */
	bool is_answered;  /* the output went to the model */
	bool has_ended;	   /* the process ended (its item completed) */
	bool is_detached;  /* the turn let go of it (it ended) */
	bool is_call_pending; /* a ux_* call has not given its on_result yet */
	bool is_proc_running; /* its process has not given its on_end yet */
	char *pending_output; /* on_result came before on_end for a run that exited */
	int64_t started_ms;
	/* apply_patch's run */
	ToolExec *exec;
	XfBuf patch_out;
};

/* --- definitions --------------------------------------------------------------------------------- */

static json_t *tool_function(const char *name, const char *description, json_t *properties, json_t *required)
{
	return json_pack("{s:s,s:s,s:s,s:b,s:{s:s,s:o,s:o,s:b}}", "type", "function", "name", name, "description",
			 description, "strict", 0, "parameters", "type", "object", "properties", properties, "required",
			 required, "additionalProperties", 0);
}

static json_t *prop(const char *type, const char *description)
{
	return json_pack("{s:s,s:s}", "type", type, "description", description);
}

/* The apply_patch format as a Lark grammar: what a freeform tool's input must match. */
static const char tools_patch_grammar[] =
	"start: begin_patch hunk+ end_patch\n"
	"begin_patch: \"*** Begin Patch\" LF\n"
	"end_patch: \"*** End Patch\" LF?\n"
	"\n"
	"hunk: add_hunk | delete_hunk | update_hunk\n"
	"add_hunk: \"*** Add File: \" filename LF add_line+\n"
	"delete_hunk: \"*** Delete File: \" filename LF\n"
	"update_hunk: \"*** Update File: \" filename LF change_move? change?\n"
	"\n"
	"filename: /(.+)/\n"
	"add_line: \"+\" /(.*)/ LF -> line\n"
	"\n"
	"change_move: \"*** Move to: \" filename LF\n"
	"change: (change_context | change_line)+ eof_line?\n"
	"change_context: (\"@@\" | \"@@ \" /(.+)/) LF\n"
	"change_line: (\"+\" | \"-\" | \" \") /(.*)/ LF\n"
	"eof_line: \"*** End of File\" LF\n"
	"\n"
	"%import common.LF\n";

json_t *tools_definitions(const Thread *thread)
{
	(void)thread;
	json_t *exec_props = json_pack(
		"{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "cmd", prop("string", "Shell command to execute."), "workdir",
		prop("string", "Working directory for the command. Defaults to the turn cwd."), "tty",
		prop("boolean", "True allocates a PTY for the command; false or omitted uses plain pipes."),
		"yield_time_ms",
		prop("number", "Wait before yielding output. Defaults to 10000 ms; effective range is 250-30000 ms."),
		"max_output_tokens", prop("number", "Output token budget. Defaults to 10000 tokens."), "shell",
		prop("string", "Shell binary to launch. Defaults to the user's default shell."), "login",
		prop("boolean", "True runs the shell with -l semantics; false disables them. Defaults to true."),
		"sandbox_permissions",
		json_pack("{s:s,s:s,s:[s,s]}", "type", "string", "description",
			  "Per-command sandbox override. Defaults to `use_default`; use `require_escalated` to ask "
			  "the user to run it outside the sandbox.",
			  "enum", "use_default", "require_escalated"),
		"justification", prop("string", "User-facing approval question for `require_escalated`; omit otherwise."));
	json_t *stdin_props = json_pack(
		"{s:o,s:o,s:o,s:o}", "session_id", prop("number", "Identifier of the running unified exec session."),
		"chars", prop("string", "Bytes to write to stdin. Defaults to empty, which polls without writing."),
		"yield_time_ms",
		prop("number", "Wait before yielding output. Non-empty writes default to 250 ms; empty polls wait 5000 ms "
			       "or more."),
		"max_output_tokens", prop("number", "Output token budget. Defaults to 10000 tokens."));
	return json_pack(
		"[o,o,{s:s,s:s,s:s,s:{s:s,s:s,s:s}}]",
		tool_function("exec_command",
			      "Runs a command in a PTY, returning output or a session ID for ongoing interaction.",
			      exec_props, json_pack("[s]", "cmd")),
		tool_function("write_stdin",
			      "Writes characters to an existing unified exec session and returns recent output.",
			      stdin_props, json_pack("[s]", "session_id")),
		"type", "custom", "name", "apply_patch", "description",
		"Use the `apply_patch` tool to edit files. This is a FREEFORM tool, so do not wrap the patch in JSON.",
		"format", "type", "grammar", "syntax", "lark", "definition", tools_patch_grammar);
}

/* --- the call's life ----------------------------------------------------------------------------- */

static void tools_free_run(ToolRun *run)
{
	Turn *turn = run->turn;
	Thread *thread = turn->thread;
	if (turn->tool == run)
		turn->tool = NULL;
	if (run->prev)
		run->prev->next = run->next;
	else
		thread->runs = run->next;
	if (run->next)
		run->next->prev = run->prev;
	json_decref(run->args);
	json_decref(run->item);
	free(run->call_id);
	free(run->command);
	free(run->workdir);
	free(run->patch_text);
	free(run->pending_output);
	xf_buf_free(&run->patch_out);
	free(run);
	turn_release(turn);
}

/* Free @run once nothing needs it: the model was answered and its process (if any) ended. */
static void tools_maybe_free(ToolRun *run)
{
	if ((run->is_answered || run->is_detached) && !run->is_call_pending && !run->is_proc_running && !run->exec)
		tools_free_run(run);
}

static json_t *tools_output_item(const ToolRun *run, const char *text)
{
	return json_pack("{s:s,s:s,s:s}", "type", run->is_custom ? "custom_tool_call_output" : "function_call_output",
			 "call_id", run->call_id, "output", text);
}

/* The model gets @text for the call, and the turn goes on. */
static void tools_answer(ToolRun *run, const char *text)
{
	if (run->is_answered)
		return;
	run->is_answered = true;
	Turn *turn = run->turn;
	if (turn->tool == run)
		turn->tool = NULL;
	if (run->kind == TOOL_USER_SHELL)
		turn_shell_result(turn, text);
	else if (!run->is_detached)
		turn_tool_output(turn, tools_output_item(run, text));
}

static void tools_complete_item(ToolRun *run, const char *status)
{
	if (!run->item || run->has_ended)
		return;
	run->has_ended = true;
	json_object_set_new(run->item, "status", json_string(status));
	turn_item_completed(run->turn, run->item);
}

/* --- approvals ----------------------------------------------------------------------------------- */

static bool tools_has_shell_syntax(const char *cmd)
{
	return strpbrk(cmd, ";|&<>`$()\n\\*?") != NULL;
}

/* Commands `untrusted` runs without asking: reads of a few well-known tools, no shell syntax. */
static bool tools_is_known_safe(const char *cmd)
{
	static const char *const safe[] = { "ls", "cat", "pwd", "echo", "grep", "rg", "head", "tail", "wc", "true",
					    "false", "which", "whoami", "date", "uname", "id", "stat", "file", NULL };
	while (*cmd == ' ')
		cmd++;
	if (!*cmd || tools_has_shell_syntax(cmd))
		return false;
	size_t len = strcspn(cmd, " \t");
	for (size_t i = 0; safe[i]; i++) {
		if (strlen(safe[i]) == len && strncmp(cmd, safe[i], len) == 0)
			return true;
	}
	return strncmp(cmd, "git status", 10) == 0 || strncmp(cmd, "git log", 7) == 0 ||
	       strncmp(cmd, "git diff", 8) == 0 || strncmp(cmd, "git show", 8) == 0;
}

/* Whether a command needs the client's decision before it runs. */
static bool tools_command_needs_approval(const ToolRun *run)
{
	const Thread *thread = run->turn->thread;
	switch (thread->approval) {
	case APPROVAL_UNTRUSTED:
		return !tools_is_known_safe(run->command);
	case APPROVAL_ON_REQUEST:
		return run->is_escalated;
	default:
		return false;
	}
}

/* What a failed command's output looks like when the sandbox, not the command, refused. */
static bool tools_looks_sandbox_denied(int64_t exit_code, const char *output)
{
	if (exit_code == 0 || !output)
		return false;
	return strstr(output, "Read-only file system") || strstr(output, "Permission denied") ||
	       strstr(output, "Operation not permitted");
}

/* --- commands ------------------------------------------------------------------------------------ */

static void tools_start_command(ToolRun *run);


static char *tools_quote(const char *text)
{
	XfBuf b = { 0 };
	const char *argv[] = { text };
	if (xf_shlex_join(argv, 1, &b) < 0) {
		xf_buf_free(&b);
		return NULL;
	}
	char *out = strdup(xf_buf_text(&b));
	xf_buf_free(&b);
	return out;
}

static json_t *tools_command_item(ToolRun *run, const char *shown)
{
	return json_pack("{s:s,s:s,s:n,s:n,s:s,s:s,s:n,s:s,s:s,s:[{s:s,s:s}],s:n,s:n,s:n}", "type", "commandExecution",
			 "id", run->call_id, "pluginId", "scriptPath", "command", shown, "cwd", run->workdir,
			 "processId", "source", "agent", "status", "inProgress", "commandActions", "type", "unknown",
			 "command", run->command, "aggregatedOutput", "exitCode", "durationMs");
}

static void tools_on_started(void *ctx, int64_t session_id, const char *command_line)
{
	ToolRun *run = ctx;
	(void)command_line;
	char pid[32];
	snprintf(pid, sizeof(pid), "%lld", (long long)session_id);
	if (run->item && session_id >= 0)
		json_object_set_new(run->item, "processId", json_string(pid));
}

static void tools_on_output(void *ctx, const char *text, size_t len)
{
	ToolRun *run = ctx;
	if (!run->item || run->has_ended)
		return;
	turn_notify(run->turn, "item/commandExecution/outputDelta",
		    json_pack("{s:s,s:s,s:s,s:s%}", "threadId", run->turn->thread->id, "turnId", run->turn->id, "itemId",
			      run->call_id, "delta", text, len));
}

static void tools_on_end(void *ctx, const UxEnd *e)
{
	ToolRun *run = ctx;
	run->is_proc_running = false;
	if (run->item && !run->has_ended) {
		const char *source = run->kind == TOOL_EXEC_COMMAND  ? "unifiedExecStartup"
				     : run->kind == TOOL_USER_SHELL ? "userShell"
								    : "agent";
		json_object_set_new(run->item, "source", json_string(source));
		json_object_set_new(run->item, "exitCode", e->exit_code >= 0 ? json_integer(e->exit_code) : json_null());
		json_object_set_new(run->item, "aggregatedOutput",
				    json_stringn(e->aggregated_output ? e->aggregated_output : "",
						 e->aggregated_output ? e->aggregated_len : 0));
		json_object_set_new(run->item, "durationMs", json_integer((json_int_t)e->duration_ms));
		tools_complete_item(run, e->exit_code == 0 ? "completed" : "failed");
	}
	run->has_ended = true;
	if (run->pending_output) {
		char *text = run->pending_output;
		run->pending_output = NULL;
		tools_answer(run, text);
		free(text);
	}
	tools_maybe_free(run);
}

/* The on-failure policy's second chance: the client decides whether it runs again unsandboxed. */
static void tools_on_retry_decision(Turn *turn, const char *decision, void *ctx);

/* What the model reads of a user's shell command (the reference's contextual message). */
static char *tools_user_shell_message(const ToolRun *run, const UxResult *r)
{
	XfBuf out = { 0 }, truncated = { 0 };
	const char *output = r->output ? r->output : r->text;
	size_t output_len = r->output ? r->output_len : strlen(r->text);
	if (xf_truncate_text(output, output_len, XF_DEFAULT_POLICY, &truncated) < 0)
		xf_buf_free(&truncated);
	xf_buf_printf(&out,
		      "<user_shell_command>\n<command>\n%s\n</command>\n<result>\nExit code: %lld\nDuration: %.4f "
		      "seconds\nOutput:\n%s\n</result>\n</user_shell_command>",
		      run->command, (long long)(r->has_exit_code ? r->exit_code : -1), (double)r->wall_time_ms / 1000.0,
		      xf_buf_text(&truncated));
	xf_buf_free(&truncated);
	char *text = out.data ? out.data : strdup("");
	return text;
}

static void tools_on_result_text(ToolRun *run, const UxResult *r);

static void tools_on_result(void *ctx, const UxResult *r)
{
	ToolRun *run = ctx;
	if (run->kind != TOOL_USER_SHELL) {
		tools_on_result_text(run, r);
		return;
	}
	char *text = tools_user_shell_message(run, r);
	UxResult shown = *r;
	shown.text = text ? text : r->text;
	tools_on_result_text(run, &shown);
	free(text);
}

static void tools_on_result_text(ToolRun *run, const UxResult *r)
{
	run->is_call_pending = false;
	Thread *thread = run->turn->thread;
	if (!run->is_detached && !run->is_retry && thread->approval == APPROVAL_ON_FAILURE && r->has_exit_code &&
	    tools_looks_sandbox_denied(r->exit_code, r->output) && run->kind != TOOL_WRITE_STDIN &&
	    run->kind != TOOL_USER_SHELL) {
		json_t *params = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s}", "kind", "command", "threadId", thread->id,
					   "turnId", run->turn->id, "startedAtMs", (json_int_t)run->started_ms, "itemId",
					   run->call_id, "reason", "command failed in the sandbox; retry without it?",
					   "command", run->command, "cwd", run->workdir);
		run->pending_output = strdup(r->text);
		if (turn_request_approval(run->turn, "item/commandExecution/requestApproval", params,
					  tools_on_retry_decision, run) == 0)
			return;
	}
	if (r->is_error && !r->has_exit_code && run->kind != TOOL_WRITE_STDIN) {
		/* It never ran (no plan, no spawn, execd away): no end will come. */
		run->is_proc_running = false;
		if (run->item && !run->has_ended) {
			json_object_set_new(run->item, "aggregatedOutput", json_string(r->text));
			tools_complete_item(run, "failed");
		}
		tools_answer(run, r->text);
		tools_maybe_free(run);
		return;
	}
	if (r->is_running || run->has_ended || !run->item) {
		tools_answer(run, r->text);
		tools_maybe_free(run);
		return;
	}
	/* It exited but its item is not complete yet: the answer waits for on_end. */
	free(run->pending_output);
	run->pending_output = strdup(r->text);
	if (!run->pending_output) {
		tools_answer(run, r->text);
		tools_maybe_free(run);
	}
}

static void tools_on_retry_decision(Turn *turn, const char *decision, void *ctx)
{
	ToolRun *run = ctx;
	(void)turn;
	if (strcmp(decision, "accept") == 0 || strcmp(decision, "acceptForSession") == 0) {
		free(run->pending_output);
		run->pending_output = NULL;
		run->is_retry = true;
		run->is_escalated = true;
		run->has_ended = false;
		json_object_set_new(run->item, "status", json_string("inProgress"));
		tools_start_command(run);
		return;
	}
	char *text = run->pending_output;
	run->pending_output = NULL;
	if (!run->has_ended)
		run->pending_output = text; /* answered when the process ends */
	else {
		tools_answer(run, text ? text : TOOLS_COMMAND_DECLINED);
		free(text);
	}
	tools_maybe_free(run);
}

static const UxCallbacks tools_ux_callbacks = {
	.on_started = tools_on_started,
	.on_output = tools_on_output,
	.on_result = tools_on_result,
	.on_end = tools_on_end,
};

static UnifiedExec *tools_ux(Thread *thread)
{
	if (!thread->ux)
		thread->ux = ux_new(thread->server, thread->owner);
	return thread->ux;
}

static int64_t tools_int_arg(const json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return -1;
}

static void tools_start_command(ToolRun *run)
{
	Thread *thread = run->turn->thread;
	json_t *full = json_pack("{s:s}", "type", "dangerFullAccess");
	json_t *env = json_pack("{s:s}", "CODEX_THREAD_ID", thread->id);
	const char *mode = prompt_sandbox_mode(run->is_escalated ? full : thread->sandbox);
	if (strcmp(mode, "danger-full-access") != 0 && !json_is_true(json_object_get(thread->sandbox, "networkAccess")))
		json_object_set_new(env, "CODEX_SANDBOX_NETWORK_DISABLED", json_string("1"));
	json_t *login = json_object_get(run->args, "login");
	UxRequest req = {
		.cmd = run->command,
		.argv = run->kind == TOOL_SHELL ? json_object_get(run->args, "command") : NULL,
		.workdir = run->workdir,
		.cwd = thread->cwd,
		.shell = json_string_value(json_object_get(run->args, "shell")),
		.login = json_is_boolean(login) ? json_is_true(login) : -1,
		.tty = json_is_true(json_object_get(run->args, "tty")),
		.yield_time_ms = tools_int_arg(run->args, "yield_time_ms"),
		.max_output_tokens = tools_int_arg(run->args, "max_output_tokens"),
		.timeout_ms = tools_int_arg(run->args, "timeout_ms"),
		.truncation = XF_DEFAULT_POLICY,
		.sandbox_policy = run->is_escalated ? full : thread->sandbox,
		/* The policy's workspace is the thread's cwd, wherever the model runs the command:
		 * a workdir the model picks must not become writable by being the working directory. */
		.workspace = thread->cwd,
		.env = env,
	};
	run->started_ms = thread_now_ms();
	if (run->item && !run->is_retry)
		turn_item_started(run->turn, run->item);
	UnifiedExec *ux = tools_ux(thread);
	run->is_call_pending = run->is_proc_running = true;
	int rc = !ux ? -ENOMEM
	       : run->kind == TOOL_EXEC_COMMAND
		       ? ux_exec_command(ux, &req, &tools_ux_callbacks, run)
		       : ux_run_once(ux, &req, run->kind == TOOL_SHELL, &tools_ux_callbacks, run);
	json_decref(full);
	json_decref(env);
	if (rc < 0) {
		run->is_call_pending = run->is_proc_running = false;
		tools_complete_item(run, "failed");
		tools_answer(run, "failed to start the command: out of memory");
		tools_maybe_free(run);
	}
}

static void tools_on_command_decision(Turn *turn, const char *decision, void *ctx)
{
	ToolRun *run = ctx;
	if (strcmp(decision, "accept") == 0 || strcmp(decision, "acceptForSession") == 0 ||
	    strcmp(decision, "acceptWithExecpolicyAmendment") == 0) {
		if (strcmp(decision, "accept") != 0)
			json_object_set_new(turn->thread->approved_commands, run->command, json_true());
		tools_start_command(run);
		return;
	}
	tools_complete_item(run, "declined");
	run->has_ended = true;
	if (strcmp(decision, "cancel") == 0 && !turn->is_finished) {
		run->is_detached = true;
		tools_maybe_free(run);
		turn_interrupt(turn, NULL, NULL);
		return;
	}
	tools_answer(run, TOOLS_COMMAND_DECLINED);
	tools_maybe_free(run);
}

static void tools_ask_command(ToolRun *run)
{
	Thread *thread = run->turn->thread;
	const char *reason = json_string_value(json_object_get(run->args, "justification"));
	turn_item_started(run->turn, run->item);
	json_t *params = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s?,s:O,s:O,s:O}", "kind", "command", "threadId", thread->id,
				   "turnId", run->turn->id, "itemId", run->call_id, "startedAtMs",
				   json_integer_value(json_object_get(run->item, "startedAtMs")), "reason", reason,
				   "command", json_object_get(run->item, "command"), "cwd",
				   json_object_get(run->item, "cwd"), "commandActions",
				   json_object_get(run->item, "commandActions"));
	json_object_set_new(params, "availableDecisions", json_pack("[s,s,s,s]", "accept", "acceptForSession", "decline",
								    "cancel"));
	if (turn_request_approval(run->turn, "item/commandExecution/requestApproval", params, tools_on_command_decision,
				  run) < 0) {
		/* Nobody can be asked: as a decline. */
		tools_complete_item(run, "declined");
		run->has_ended = true;
		tools_answer(run, TOOLS_COMMAND_DECLINED);
		tools_maybe_free(run);
	}
}

/* --- apply_patch --------------------------------------------------------------------------------- */

/* agentd-apply-patch: beside the build tree's agentd (execd/), else in LIBEXECDIR. */
static int tools_patch_program(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char candidate[PATH_MAX + 64], normal[PATH_MAX];
			snprintf(candidate, sizeof(candidate), "%s/../execd/agentd-apply-patch", exe);
			if (access(candidate, X_OK) == 0 && path_normalize(NULL, candidate, normal, sizeof(normal)) == 0) {
				snprintf(out, len, "%s", normal);
				return 0;
			}
		}
	}
	snprintf(out, len, "%s/agentd-apply-patch", LIBEXECDIR);
	return access(out, X_OK) == 0 ? 0 : -ENOENT;
}

static char *tools_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	XfBuf b = { 0 };
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b.len + n > TOOLS_MAX_DIFF_SOURCE_BYTES || xf_buf_append(&b, chunk, n) < 0) {
			xf_buf_free(&b);
			fclose(f);
			return NULL;
		}
	}
	fclose(f);
	*len = b.len;
	return b.data ? b.data : strdup("");
}

/* The fileChange item's changes, or NULL with *@error (malloc'd) saying why the patch cannot apply. */
static json_t *tools_patch_changes(const struct patch *patch, char **error)
{
	json_t *changes = json_array();
	for (size_t i = 0; i < patch->n_hunks; i++) {
		const struct patch_hunk *h = &patch->hunks[i];
		size_t old_len = 0;
		char *old = h->kind == PATCH_HUNK_ADD ? NULL : tools_read_file(h->abs_path, &old_len);
		json_t *kind;
		char *diff = NULL;
		if (h->kind != PATCH_HUNK_ADD && !old) {
			if (asprintf(error, "Failed to read file to %s %s: %s (os error %d)",
				     h->kind == PATCH_HUNK_DELETE ? "delete" : "update", h->abs_path, strerror(errno),
				     errno) < 0)
				*error = NULL;
			json_decref(changes);
			return NULL;
		}
		if (patch_change_diff(h, old, old_len, &diff, error) < 0) {
			free(old);
			json_decref(changes);
			return NULL;
		}
		if (h->kind == PATCH_HUNK_ADD)
			kind = json_pack("{s:s}", "type", "add");
		else if (h->kind == PATCH_HUNK_DELETE)
			kind = json_pack("{s:s}", "type", "delete");
		else
			kind = json_pack("{s:s,s:o}", "type", "update", "move_path",
					 h->abs_move_path ? json_string(h->abs_move_path) : json_null());
		free(old);
		json_array_append_new(changes, json_pack("{s:s,s:o,s:s}", "path", h->abs_path, "kind", kind, "diff",
							 diff ? diff : ""));
		free(diff);
	}
	return changes;
}

/* @path is @root or below it (both normalised). */
static bool tools_is_within(const char *path, const char *root)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return true;
	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* A path outside what the sandbox lets the thread write: on-request asks before such a patch. */
static bool tools_patch_leaves_roots(const Thread *thread, const struct patch *patch)
{
	const char *mode = prompt_sandbox_mode(thread->sandbox);
	if (strcmp(mode, "danger-full-access") == 0)
		return false;
	if (strcmp(mode, "read-only") == 0)
		return true;
	json_t *roots = json_object_get(thread->sandbox, "writableRoots");
	for (size_t i = 0; i < patch->n_hunks; i++) {
		const char *paths[2] = { patch->hunks[i].abs_path, patch->hunks[i].abs_move_path };
		for (int k = 0; k < 2; k++) {
			if (!paths[k])
				continue;
			bool inside = tools_is_within(paths[k], thread->cwd);
			size_t j;
			json_t *root;
			json_array_foreach (roots, j, root) {
				if (json_is_string(root) && tools_is_within(paths[k], json_string_value(root)))
					inside = true;
			}
			if (!inside)
				return true;
		}
	}
	return false;
}

static void tools_patch_on_started(void *ctx, int pid)
{
	(void)ctx;
	(void)pid;
}

static void tools_patch_on_output(void *ctx, int stream, const uint8_t *data, size_t len)
{
	ToolRun *run = ctx;
	(void)stream;
	xf_utf8_lossy(data, len, &run->patch_out);
}

static void tools_patch_finish(ToolRun *run, int64_t exit_code, const char *error)
{
	tool_exec_detach(run->exec);
	run->exec = NULL;
	if (error) {
		xf_buf_printf(&run->patch_out, "%s", error);
		exit_code = 1;
	}
	tools_complete_item(run, exit_code == 0 ? "completed" : "failed");
	XfExecOutput out = {
		.exit_code = exit_code,
		.duration_ns = (uint64_t)(thread_now_ms() - run->started_ms) * 1000000u,
		.output = xf_buf_text(&run->patch_out),
		.output_len = run->patch_out.len,
		.policy = XF_DEFAULT_POLICY,
	};
	XfBuf text = { 0 };
	xf_freeform_text(&out, &text);
	tools_answer(run, xf_buf_text(&text));
	xf_buf_free(&text);
	tools_maybe_free(run);
}

static void tools_patch_on_exit(void *ctx, int64_t exit_code)
{
	tools_patch_finish(ctx, exit_code, NULL);
}

static void tools_patch_on_error(void *ctx, const char *message, bool is_sandbox_refusal)
{
	(void)is_sandbox_refusal;
	tools_patch_finish(ctx, 1, message);
}

static const ToolExecEvents tools_patch_events = {
	.on_started = tools_patch_on_started,
	.on_output = tools_patch_on_output,
	.on_exit = tools_patch_on_exit,
	.on_error = tools_patch_on_error,
};

/* Apply the patch with agentd-apply-patch, run by execd under the thread's sandbox. */
static void tools_apply_patch(ToolRun *run)
{
	Thread *thread = run->turn->thread;
	char program[PATH_MAX];
	run->started_ms = thread_now_ms();
	if (tools_patch_program(program, sizeof(program)) < 0) {
		tools_patch_finish(run, 1, "agentd-apply-patch is not installed");
		return;
	}
	json_t *full = json_pack("{s:s}", "type", "dangerFullAccess");
	json_t *argv = json_pack("[s]", program);
	/* A sanitizer build's LeakSanitizer cannot work inside the sandbox's pid namespace (it
	 * needs to ptrace): there the program is checked for memory errors; its leaks are checked
	 * by its own tests outside. Other builds ignore the variable. */
	json_t *overrides = json_pack("{s:s}", "ASAN_OPTIONS", "detect_leaks=0");
	json_t *env = tool_exec_environment(overrides);
	json_decref(overrides);
	ToolExecSpec spec = {
		.argv = argv,
		.cwd = thread->cwd,
		.sandbox_policy = run->is_escalated ? full : thread->sandbox,
		.workspace = thread->cwd,
		.env = env,
		.timeout_ms = 60000,
		.cap_bytes = 1u << 20,
		.pipe_stdin = true,
	};
	run->exec = tool_exec_start(thread->server, thread->owner, &spec, &tools_patch_events, run);
	json_decref(full);
	json_decref(argv);
	json_decref(env);
	if (!run->exec) {
		tools_patch_finish(run, 1, "out of memory");
		return;
	}
	tool_exec_write(run->exec, (const uint8_t *)run->patch_text, strlen(run->patch_text), true);
}

static void tools_on_patch_decision(Turn *turn, const char *decision, void *ctx)
{
	ToolRun *run = ctx;
	if (strcmp(decision, "accept") == 0 || strcmp(decision, "acceptForSession") == 0) {
		tools_apply_patch(run);
		return;
	}
	tools_complete_item(run, "declined");
	if (strcmp(decision, "cancel") == 0 && !turn->is_finished) {
		run->is_detached = true;
		tools_maybe_free(run);
		turn_interrupt(turn, NULL, NULL);
		return;
	}
	tools_answer(run, TOOLS_PATCH_DECLINED);
	tools_maybe_free(run);
}

static void tools_run_patch(ToolRun *run)
{
	Thread *thread = run->turn->thread;
	struct patch *patch = NULL;
	struct patch_error perr = { 0 };
	char *error = NULL;
	if (patch_parse(run->patch_text, strlen(run->patch_text), thread->cwd, &patch, &perr) < 0) {
		char *shown = patch_error_format(&perr);
		patch_error_clear(&perr);
		char *text = NULL;
		if (asprintf(&text, "apply_patch verification failed: %s", shown ? shown : "invalid patch") < 0)
			text = NULL;
		free(shown);
		tools_answer(run, text ? text : "apply_patch verification failed");
		free(text);
		tools_maybe_free(run);
		return;
	}
	json_t *changes = tools_patch_changes(patch, &error);
	if (!changes) {
		char *text = NULL;
		if (asprintf(&text, "apply_patch verification failed: %s", error ? error : "cannot read a file") < 0)
			text = NULL;
		free(error);
		patch_free(patch);
		tools_answer(run, text ? text : "apply_patch verification failed");
		free(text);
		tools_maybe_free(run);
		return;
	}
	bool leaves_roots = tools_patch_leaves_roots(thread, patch);
	patch_free(patch);
	run->item = json_pack("{s:s,s:s,s:o,s:s}", "type", "fileChange", "id", run->call_id, "changes", changes,
			      "status", "inProgress");
	turn_item_started(run->turn, run->item);
	bool ask = thread->approval == APPROVAL_UNTRUSTED || (thread->approval == APPROVAL_ON_REQUEST && leaves_roots);
	if (!ask) {
		tools_apply_patch(run);
		return;
	}
	/* Approved writes outside the writable roots are made without the sandbox. */
	run->is_escalated = leaves_roots;
	json_t *params = json_pack("{s:s,s:s,s:s,s:I,s:n,s:n}", "threadId", thread->id, "turnId", run->turn->id,
				   "itemId", run->call_id, "startedAtMs",
				   json_integer_value(json_object_get(run->item, "startedAtMs")), "reason", "grantRoot");
	if (turn_request_approval(run->turn, "item/fileChange/requestApproval", params, tools_on_patch_decision, run) <
	    0) {
		tools_complete_item(run, "declined");
		tools_answer(run, TOOLS_PATCH_DECLINED);
		tools_maybe_free(run);
	}
}

/* "apply_patch <<'EOF'\n…\nEOF" (or applypatch) through a shell tool: the patch, or NULL. */
static char *tools_heredoc_patch(const char *cmd)
{
	while (*cmd == ' ')
		cmd++;
	if (strncmp(cmd, "apply_patch", 11) != 0 && strncmp(cmd, "applypatch", 10) != 0)
		return NULL;
	const char *begin = strstr(cmd, "*** Begin Patch");
	const char *end = begin ? strstr(begin, "*** End Patch") : NULL;
	if (!end)
		return NULL;
	return strndup(begin, (size_t)(end - begin) + strlen("*** End Patch"));
}

/* --- dispatch ------------------------------------------------------------------------------------ */

static int tools_resolve_workdir(ToolRun *run, const char *workdir)
{
	const char *cwd = run->turn->thread->cwd;
	char joined[PATH_MAX * 2], normal[PATH_MAX];
	if (!workdir || !workdir[0])
		workdir = cwd;
	else if (workdir[0] != '/') {
		snprintf(joined, sizeof(joined), "%s/%s", cwd, workdir);
		workdir = joined;
	}
	if (path_normalize(NULL, workdir, normal, sizeof(normal)) < 0)
		return -EINVAL;
	run->workdir = strdup(normal);
	return run->workdir ? 0 : -ENOMEM;
}

static ToolRun *tools_new_run(Turn *turn, const json_t *call)
{
	ToolRun *run = calloc(1, sizeof(*run));
	if (!run)
		return NULL;
	const char *call_id = json_string_value(json_object_get(call, "call_id"));
	run->call_id = strdup(call_id ? call_id : "call");
	run->turn = turn;
	turn_hold(turn);
	turn->tool = run;
	Thread *thread = turn->thread;
	run->next = thread->runs;
	if (thread->runs)
		thread->runs->prev = run;
	thread->runs = run;
	return run;
}

static void tools_fail_call(ToolRun *run, const char *text)
{
	tools_answer(run, text);
	tools_maybe_free(run);
}

static void tools_run_command(ToolRun *run, const char *cmd)
{
	char *patch = tools_heredoc_patch(cmd);
	if (patch) {
		run->patch_text = patch;
		tools_run_patch(run);
		return;
	}
	run->command = strdup(cmd);
	const char *perm = json_string_value(json_object_get(run->args, "sandbox_permissions"));
	run->is_escalated = perm && strcmp(perm, "require_escalated") == 0;
	/* acceptForSession granted this command (its escalation too) for the rest of the thread. */
	bool is_granted = json_object_get(run->turn->thread->approved_commands, cmd) != NULL;
	bool ask = !is_granted && tools_command_needs_approval(run);
	/* Escalation is the client's to grant: without a grant, commands stay in the sandbox. */
	if (!ask && !is_granted)
		run->is_escalated = false;
	char *quoted = tools_quote(cmd);
	char shown[PATH_MAX + 64];
	snprintf(shown, sizeof(shown), "/bin/bash -lc %s", quoted ? quoted : cmd);
	free(quoted);
	run->item = tools_command_item(run, shown);
	if (ask)
		tools_ask_command(run);
	else
		tools_start_command(run);
}

static void tools_run_write_stdin(ToolRun *run)
{
	json_t *chars = json_object_get(run->args, "chars");
	UxRequest req = {
		.session_id = tools_int_arg(run->args, "session_id"),
		.chars = json_string_value(chars),
		.chars_len = json_is_string(chars) ? json_string_length(chars) : 0,
		.yield_time_ms = tools_int_arg(run->args, "yield_time_ms"),
		.max_output_tokens = tools_int_arg(run->args, "max_output_tokens"),
		.truncation = XF_DEFAULT_POLICY,
	};
	UnifiedExec *ux = tools_ux(run->turn->thread);
	run->is_call_pending = true;
	if (!ux || ux_write_stdin(ux, &req, &tools_ux_callbacks, run) < 0) {
		run->is_call_pending = false;
		tools_fail_call(run, "write_stdin failed: out of memory");
	}
}

static void tools_run_function(ToolRun *run, const char *name, const char *arguments)
{
	json_error_t jerr;
	run->args = json_loads(arguments ? arguments : "{}", 0, &jerr);
	if (!json_is_object(run->args)) {
		char text[400];
		snprintf(text, sizeof(text), "failed to parse function arguments: %s at line %d column %d", jerr.text,
			 jerr.line, jerr.column);
		tools_fail_call(run, text);
		return;
	}
	const char *workdir = json_string_value(json_object_get(run->args, "workdir"));
	if (tools_resolve_workdir(run, workdir) < 0) {
		tools_fail_call(run, "invalid workdir");
		return;
	}
	if (strcmp(name, "exec_command") == 0 || strcmp(name, "shell_command") == 0) {
		const char *cmd = json_string_value(json_object_get(run->args, name[0] == 'e' ? "cmd" : "command"));
		if (!cmd) {
			tools_fail_call(run, name[0] == 'e' ? "failed to parse function arguments: missing field `cmd`"
							    : "failed to parse function arguments: missing field `command`");
			return;
		}
		run->kind = name[0] == 'e' ? TOOL_EXEC_COMMAND : TOOL_SHELL_COMMAND;
		tools_run_command(run, cmd);
	} else if (strcmp(name, "write_stdin") == 0) {
		run->kind = TOOL_WRITE_STDIN;
		tools_run_write_stdin(run);
	} else if (strcmp(name, "shell") == 0 || strcmp(name, "container.exec") == 0) {
		json_t *argv = json_object_get(run->args, "command");
		if (!json_is_array(argv) || json_array_size(argv) == 0) {
			tools_fail_call(run, "failed to parse function arguments: `command` must be a non-empty array");
			return;
		}
		XfBuf line = { 0 };
		const char *words[256];
		size_t n = 0;
		size_t i;
		json_t *w;
		json_array_foreach (argv, i, w) {
			if (n < 256 && json_is_string(w))
				words[n++] = json_string_value(w);
		}
		xf_shlex_join(words, n, &line);
		run->kind = TOOL_SHELL;
		run->command = strdup(xf_buf_text(&line));
		xf_buf_free(&line);
		char *patch = n >= 2 && strcmp(words[0], "apply_patch") == 0 ? strdup(words[1]) : NULL;
		if (patch) {
			run->patch_text = patch;
			tools_run_patch(run);
			return;
		}
		run->item = tools_command_item(run, run->command);
		if (tools_command_needs_approval(run))
			tools_ask_command(run);
		else
			tools_start_command(run);
	} else if (strcmp(name, "apply_patch") == 0) {
		const char *input = json_string_value(json_object_get(run->args, "input"));
		run->patch_text = strdup(input ? input : "");
		run->kind = TOOL_APPLY_PATCH;
		tools_run_patch(run);
	} else {
		char text[300];
		snprintf(text, sizeof(text), "unsupported call: %s", name);
		tools_fail_call(run, text);
	}
}

void tools_run(Turn *turn, json_t *call)
{
	ToolRun *run = tools_new_run(turn, call);
	if (!run) {
		turn_fail(turn, "out of memory running a tool call", json_string("other"), NULL);
		return;
	}
	const char *type = json_string_value(json_object_get(call, "type"));
	const char *name = json_string_value(json_object_get(call, "name"));
	if (type && strcmp(type, "custom_tool_call") == 0) {
		run->is_custom = true;
		const char *input = json_string_value(json_object_get(call, "input"));
		if (name && strcmp(name, "apply_patch") == 0) {
			run->kind = TOOL_APPLY_PATCH;
			run->patch_text = strdup(input ? input : "");
			tools_run_patch(run);
			return;
		}
		char text[300];
		snprintf(text, sizeof(text), "unsupported custom tool call: %s", name ? name : "");
		tools_fail_call(run, text);
		return;
	}
	if (type && strcmp(type, "local_shell_call") == 0) {
		json_t *action = json_object_get(call, "action");
		json_t *args = json_pack("{s:O}", "command", json_object_get(action, "command"));
		char *text = json_dumps(args, JSON_COMPACT);
		json_decref(args);
		tools_run_function(run, "shell", text);
		free(text);
		return;
	}
	tools_run_function(run, name ? name : "", json_string_value(json_object_get(call, "arguments")));
}

int tools_run_user_shell(Turn *turn, const char *command, int64_t timeout_ms)
{
	ToolRun *run = calloc(1, sizeof(*run));
	char id[UUID_TEXT_LEN + 1];
	if (!run || uuid_v7(id) < 0) {
		free(run);
		return -ENOMEM;
	}
	run->turn = turn;
	run->kind = TOOL_USER_SHELL;
	run->call_id = strdup(id);
	run->command = strdup(command);
	run->args = json_pack("{s:I}", "timeout_ms", (json_int_t)timeout_ms);
	turn_hold(turn);
	Thread *thread = turn->thread;
	run->next = thread->runs;
	if (thread->runs)
		thread->runs->prev = run;
	thread->runs = run;
	if (!run->call_id || !run->command || !run->args || tools_resolve_workdir(run, NULL) < 0) {
		run->is_answered = true;
		tools_free_run(run);
		return -ENOMEM;
	}
	char *quoted = tools_quote(command);
	char shown[PATH_MAX + 64];
	snprintf(shown, sizeof(shown), "/bin/bash -lc %s", quoted ? quoted : command);
	free(quoted);
	run->item = tools_command_item(run, shown);
	json_object_set_new(run->item, "source", json_string("userShell"));
	tools_start_command(run);
	return 0;
}

void tools_stop(Turn *turn)
{
	ToolRun *run = turn->tool;
	Thread *thread = turn->thread;
	bool is_interrupted = turn->status && strcmp(turn->status, "interrupted") == 0;
	if (is_interrupted && thread->ux)
		ux_kill_all(thread->ux);
	if (!run)
		return;
	turn->tool = NULL;
	run->is_detached = true;
	if (run->exec && is_interrupted)
		tool_exec_kill(run->exec);
	if (run->item && !run->has_ended && !run->exec && is_interrupted && !thread->ux) {
		run->has_ended = true;
	}
	tools_maybe_free(run);
}

void tools_abandon(Thread *thread)
{
	while (thread->runs) {
		ToolRun *run = thread->runs;
		if (run->exec) {
			tool_exec_detach(run->exec);
			run->exec = NULL;
		}
		tools_free_run(run);
	}
}
