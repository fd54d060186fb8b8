/* SPDX-License-Identifier: MIT */
/*
 * tools.h - the tools the model is offered and what a call of each does: exec_command and
 * write_stdin (unified_exec.c), the classic shell_command and shell, and apply_patch, which
 * agentd-apply-patch applies inside the thread's sandbox. Each call shows as an item
 * (commandExecution, fileChange), asks the client first where the approval policy says so, and
 * ends with its output item for the model (turn_tool_output()).
 */
#ifndef AGENTD_TOOLS_H
#define AGENTD_TOOLS_H

#include <jansson.h>

#include "thread.h"
#include "turn.h"

/** tools_definitions() - the "tools" array of a request (new reference). */
json_t *tools_definitions(const Thread *thread);

/** tools_run() - run the call @call (a function_call / custom_tool_call / local_shell_call item). */
void tools_run(Turn *turn, json_t *call);

/**
 * tools_run_user_shell() - thread/shellCommand: @command through the user's login shell in the
 * thread's sandbox, shown as a commandExecution item of source userShell; its result goes to
 * turn_shell_result(). Return 0 or -ENOMEM.
 */
int tools_run_user_shell(Turn *turn, const char *command, int64_t timeout_ms);

/** tools_stop() - the turn ended: the call in flight is dropped; an interrupted turn's processes die. */
void tools_stop(Turn *turn);

/** tools_abandon() - the thread goes (its processes and sessions already dropped): free every run left. */
void tools_abandon(Thread *thread);

#endif
