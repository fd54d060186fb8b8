/* SPDX-License-Identifier: MIT */
/* unified_exec.h - the model's shell tools for one agent thread: exec_command and write_stdin (the
 * reference's unified exec: sessions that outlive a call) and the one-shot shell_command and shell,
 * on top of tool_exec. The answers are the reference's text, byte for byte (exec_format.h). */
#ifndef AGENTD_UNIFIED_EXEC_H
#define AGENTD_UNIFIED_EXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentd.h"
#include "exec_format.h"

typedef struct UnifiedExec UnifiedExec;

/* The reference's bounds (codex-rs/core/src/unified_exec/mod.rs). */
#define UX_MIN_YIELD_TIME_MS 250
#define UX_MAX_YIELD_TIME_MS 30000
#define UX_MIN_EMPTY_YIELD_TIME_MS 5000 /* an empty write_stdin is a poll: it waits at least this */
#define UX_MAX_EMPTY_YIELD_TIME_MS 300000
#define UX_DEFAULT_EXEC_YIELD_TIME_MS 10000
#define UX_DEFAULT_WRITE_YIELD_TIME_MS 250
#define UX_MAX_PROCESSES 64 /* kept sessions; storing one more prunes one */
#define UX_WARNING_PROCESSES 60
#define UX_OUTPUT_MAX_BYTES (1024u * 1024u) /* output kept per session between calls (head and tail) */
#define UX_DEFAULT_TIMEOUT_MS 10000	    /* shell_command / shell */

/* One tool call. Strings and JSON are borrowed for the duration of the ux_* call. */
typedef struct UxRequest {
	const char *cmd;	   /* exec_command: "cmd"; shell_command: "command" (a shell script) */
	json_t *argv;		   /* shell: "command", the argv array (cmd unused) */
	const char *workdir;	   /* "workdir": absolute, or relative to cwd; NULL or "": cwd */
	const char *cwd;	   /* the turn's working directory (absolute); NULL: agentd's */
	const char *shell;	   /* exec_command "shell": a shell to use instead of the user's */
	int login;		   /* "login": 1, 0, or -1 when absent (then a login shell) */
	bool tty;		   /* exec_command "tty" */
	int64_t yield_time_ms;	   /* exec_command / write_stdin; negative: absent */
	int64_t max_output_tokens; /* exec_command / write_stdin; negative: absent */
	int64_t timeout_ms;	   /* shell_command / shell; negative: absent */
	int64_t session_id;	   /* write_stdin "session_id" */
	const char *chars;	   /* write_stdin "chars" (NULL: ""); may hold NUL bytes: chars_len */
	size_t chars_len;
	XfPolicy truncation;	/* the turn's truncation policy (model family); XF_DEFAULT_POLICY */
	json_t *sandbox_policy; /* a v2 SandboxPolicy object, or NULL: sandboxd's default profile */
	json_t *env;		/* object of extra variables (CODEX_THREAD_ID, …; null unsets), or NULL */
	const char *tmpdir;	/* the command's TMPDIR for the sandbox, or NULL */
	const char *workspace; /* what the policy's workspace grants name (the thread's cwd), or NULL: the workdir */
} UxRequest;

/* The answer to one call: what goes back to the model as function_call_output. */
typedef struct UxResult {
	const char *text;   /* the output text, or the error text when is_error */
	bool is_error;	    /* the tool failed (the reference's RespondToModel error) */
	bool success;	    /* the function_call_output's success flag */
	int64_t session_id; /* the process id this call is about (also for one that exited); -1: none */
	bool is_running;    /* still running: write_stdin continues it */
	bool has_exit_code;
	int64_t exit_code;
	const char *output; /* this call's output (lossy UTF-8), untruncated */
	size_t output_len;
	uint64_t wall_time_ms;
	const char *warning; /* a model warning to record (too many sessions), or NULL */
} UxResult;

/* A process ended (the commandExecution item completes). */
typedef struct UxEnd {
	int64_t session_id;	       /* -1 for shell_command / shell */
	int64_t exit_code;	       /* -1: unknown (execd lost) */
	const char *aggregated_output; /* everything it wrote (UTF-8; head and tail past 1 MiB) */
	size_t aggregated_len;
	uint64_t duration_ms;
} UxEnd;

/* Callbacks run on the loop thread, never from inside the ux_* call that caused them. */
typedef struct UxCallbacks {
	/* The process started (exec_command: with its session id; the item/started point). May be NULL. */
	void (*on_started)(void *ctx, int64_t session_id, const char *command_line);
	/* Output as it comes, complete UTF-8 (the outputDelta); for the lifetime of the process. May be NULL.
	 */
	void (*on_output)(void *ctx, const char *text, size_t len);
	/* The call's answer: exactly once per ux_* call that returned 0. */
	void (*on_result)(void *ctx, const UxResult *r);
	/* The process ended: once, before or after on_result (a session ends later). May be NULL. */
	void (*on_end)(void *ctx, const UxEnd *e);
} UxCallbacks;

/** ux_new() - the shell tools of thread @owner (its processes run under tool_exec's @owner). */
UnifiedExec *ux_new(Agentd *server, uint64_t owner);

/**
 * ux_exec_command() - exec_command: run [shell, "-lc" or "-c", cmd], collect output until it exits or
 * yield_time_ms (clamped 250–30000) passes; still running, it becomes a session. @cb's on_output and
 * on_end belong to the process (also after later write_stdin calls). Return 0 or -ENOMEM.
 */
int ux_exec_command(UnifiedExec *ux, const UxRequest *req, const UxCallbacks *cb, void *ctx);

/**
 * ux_write_stdin() - write_stdin: write chars to session_id's PTY (empty: a poll of at least 5 s),
 * then collect what it wrote since the last call until it exits or the yield passes. Only on_result
 * is used from @cb. Return 0 or -ENOMEM.
 */
int ux_write_stdin(UnifiedExec *ux, const UxRequest *req, const UxCallbacks *cb, void *ctx);

/**
 * ux_run_once() - shell_command (@is_structured false: req->cmd through the shell, freeform text) or
 * shell (@is_structured true: req->argv, JSON text): run to completion or timeout_ms (default 10 s,
 * then killed). Return 0 or -ENOMEM.
 */
int ux_run_once(UnifiedExec *ux, const UxRequest *req, bool is_structured, const UxCallbacks *cb, void *ctx);

/** ux_cancel() - the calls of @ctx are abandoned: no more callbacks to @ctx; runs only they wanted are
 * killed. */
void ux_cancel(UnifiedExec *ux, void *ctx);

/** ux_kill_all() - kill every process of the thread (sessions forgotten); pending calls answer as they end.
 */
void ux_kill_all(UnifiedExec *ux);

/** ux_free() - kill everything, no more callbacks, free. NULL-safe. */
void ux_free(UnifiedExec *ux);

/** ux_set_deterministic_ids() - session ids 1000, 1001, … instead of random ones (tests). */
void ux_set_deterministic_ids(UnifiedExec *ux, bool is_deterministic);

#endif
