/* SPDX-License-Identifier: MIT */
/*
 * exec_ipc.h - the bodies agentd sends for a run: sandboxd's `plan` and execd's `exec.start`
 * (agentd-ipc(7)). A client's command/exec (proto_exec.c) and the agent's own commands
 * (tool_exec.c) pack them the same way.
 */
#ifndef AGENTD_EXEC_IPC_H
#define AGENTD_EXEC_IPC_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ExecPlanBody {
	const char *cwd;
	json_t *command;	 /* array of str */
	const char *policy_text; /* a SandboxPolicy's JSON text, or NULL */
	const char *profile;	 /* or NULL */
	const char *tmpdir;	 /* or NULL */
	const char *workspace;	 /* or NULL: cwd */
} ExecPlanBody;

typedef struct ExecStartBody {
	uint64_t exec_id;
	const msgpack_object *argv; /* the plan's argv */
	const char *cwd;	    /* the plan's cwd */
	json_t *env;		    /* array of "K=V" */
	bool tty;
	bool pipe_stdin;
	int64_t timeout_ms; /* negative: none */
	uint64_t cap_bytes; /* UINT64_MAX: none */
	uint16_t rows, cols; /* with tty */
} ExecStartBody;

/** exec_ipc_pack_plan() / exec_ipc_pack_start() - one body each into @pk. */
void exec_ipc_pack_plan(msgpack_packer *pk, const ExecPlanBody *b);
void exec_ipc_pack_start(msgpack_packer *pk, const ExecStartBody *b);

#endif
