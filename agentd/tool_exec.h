/* SPDX-License-Identifier: MIT */
/* tool_exec.h - commands the agent runs for itself (its shell tools), through the same sandboxd plan
 * and execd exec.* methods as a client's command/exec, but owned by an agent thread instead of a
 * client connection. */
#ifndef AGENTD_TOOL_EXEC_H
#define AGENTD_TOOL_EXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentd.h"
#include "envelope.h"

/*
 * execd keys runs by connection id. An owner's runs use TOOL_EXEC_CONN_BIT | owner, a range no client
 * connection reaches (those count up from 1), so execd's events for them come back here and a
 * conn.closed for that id kills all of the owner's processes at once. Owner ids are below the bit.
 */
#define TOOL_EXEC_CONN_BIT (UINT64_C(1) << 62)

typedef struct ToolExec ToolExec;

typedef struct ToolExecSpec {
	json_t *argv;		/* array of str: the command line (borrowed for the call) */
	const char *cwd;	/* absolute; NULL: agentd's working directory */
	json_t *sandbox_policy; /* a v2 SandboxPolicy object, or NULL for sandboxd's default profile */
	json_t *env;		/* array of "K=V", the whole environment, or NULL: agentd's own */
	int64_t timeout_ms;	/* execd kills the group after this long (exit 124); negative: none */
	uint64_t cap_bytes;	/* output cap per stream; UINT64_MAX: none */
	bool tty;		/* run on a pseudo-terminal (24x80), stdout and stderr merged */
	bool pipe_stdin;	/* without tty: stdin is a pipe for tool_exec_write(), else /dev/null */
	const char *tmpdir;	/* the command's TMPDIR, for the sandbox's grant; NULL: none */
	const char *workspace;	/* the directory the policy's workspace grants name; NULL: cwd */
} ToolExecSpec;

/* Every callback runs on the loop thread, never from inside the tool_exec_* call that caused it. */
typedef struct ToolExecEvents {
	/* execd spawned it. */
	void (*on_started)(void *ctx, int pid);
	/* A chunk of stream 0 (stdout, or the PTY) or 1 (stderr); execd gets its credit when this returns. */
	void (*on_output)(void *ctx, int stream, const uint8_t *data, size_t len);
	/* It exited (137 when killed, 124 at execd's timeout): the last callback. */
	void (*on_exit)(void *ctx, int64_t exit_code);
	/* It never ran (plan refused, spawn failed, helper unavailable) or execd went away while it ran:
	 * the last callback. @is_sandbox_refusal: sandboxd refused the policy (or the profile). */
	void (*on_error)(void *ctx, const char *message, bool is_sandbox_refusal);
} ToolExecEvents;

/**
 * tool_exec_start() - plan @spec with sandboxd and start it with execd, on behalf of @owner (< the bit).
 * The handle stays the caller's until tool_exec_detach(), which must follow exactly once, also after
 * the last callback. @spec is copied. Return: the handle, or NULL when out of memory.
 */
ToolExec *tool_exec_start(Agentd *server, uint64_t owner, const ToolExecSpec *spec, const ToolExecEvents *ev,
			  void *ctx);

/**
 * tool_exec_write() - queue @data for its stdin (the PTY's input with tty), then close stdin when
 * @close_stdin. Held until execd started it. Return: 0; -EPIPE when stdin is closed already; -EBADF
 * when it has no stdin; -ESRCH when it is over; -ENOMEM.
 */
int tool_exec_write(ToolExec *x, const uint8_t *data, size_t len, bool close_stdin);

/** tool_exec_kill() - SIGKILL its process group (exec.terminate); on_exit(137) follows. NULL-safe. */
void tool_exec_kill(ToolExec *x);

/**
 * tool_exec_detach() - the caller is done with @x: no more callbacks; a run still going is killed.
 * Its memory goes once execd and sandboxd have answered everything about it. NULL-safe.
 */
void tool_exec_detach(ToolExec *x);

/** tool_exec_kill_owner() - kill every process of @owner (conn.closed for its id); each ends in on_exit(137).
 */
void tool_exec_kill_owner(Agentd *server, uint64_t owner);

/** tool_exec_is_tool_conn() - whether @connection_id is an owner's pseudo id. */
static inline bool tool_exec_is_tool_conn(uint64_t connection_id)
{
	return (connection_id & TOOL_EXEC_CONN_BIT) != 0;
}

/** tool_exec_on_event() - exec.output or exec.closed from execd for an owner's pseudo id. */
void tool_exec_on_event(Agentd *server, const Envelope *env);

/** tool_exec_on_execd_lost() - execd went down: every started run ends in on_error. */
void tool_exec_on_execd_lost(Agentd *server);

/**
 * tool_exec_environment() - agentd's environment with @overrides (object of str, or null to unset)
 * merged in, as an array of "K=V" (new reference), or NULL when out of memory.
 */
json_t *tool_exec_environment(json_t *overrides);

#endif
