/* SPDX-License-Identifier: MIT */
/*
 * turn.h - the turn engine: one user request worked to its end.
 *
 * A turn samples the model (a streamed Responses request built from the thread's history), shows
 * what streams as items, runs the tool calls of a completed response one after another (asking
 * the client first where the approval policy says so), sends their outputs back in the next
 * request, and ends when a response calls no tool: completed, failed (after the bounded retries)
 * or interrupted. Every wait (authd, the model, a command, an approval) holds a reference on the
 * turn, so whatever answers after the turn ended finds it finished and only lets go.
 */
#ifndef AGENTD_TURN_H
#define AGENTD_TURN_H

#include <jansson.h>
#include <stdbool.h>

#include "conn.h"
#include "thread.h"

/** turn_new() - a turn of @thread for @input (UserInput array, copied), started by connection @conn. */
Turn *turn_new(Thread *thread, Conn *conn, json_t *input);
/** turn_set_output_schema() - the JSON Schema the model's final answer must follow (borrowed, kept). */
void turn_set_output_schema(Turn *turn, json_t *schema);
/** turn_run() - announce it (status, turn/started, the user message) and sample the model. */
void turn_run(Turn *turn);
/**
 * turn_run_shell() - the standalone turn of thread/shellCommand: announce it and run @command
 * (inside the thread's sandbox) as a userShell commandExecution item. Return 0 or -ENOMEM.
 */
int turn_run_shell(Turn *turn, const char *command, int64_t timeout_ms);
/** turn_add_shell() - run @command in the running turn (no new turn). Return 0 or -ENOMEM. */
int turn_add_shell(Turn *turn, const char *command, int64_t timeout_ms);
/** turn_steer() - add @input to the running turn: sent with the next model request. Return 0 or -ENOMEM. */
int turn_steer(Turn *turn, json_t *input);
/**
 * turn_interrupt() - stop the turn: the stream is cut, its commands are killed, a pending approval
 * is withdrawn, and it ends "interrupted". A request @id on @conn (both may be NULL) is answered {}
 * with it; turn/interrupt answers its own request first, as the reference does.
 */
void turn_interrupt(Turn *turn, Conn *conn, json_t *id);
/** turn_abandon() - the thread goes away: stop everything, send nothing more. */
void turn_abandon(Turn *turn);

/** turn_id() - its UUIDv7. */
const char *turn_id(const Turn *turn);
/** turn_json() - the v2 Turn object; @with_items lists its items so far. */
json_t *turn_json(const Turn *turn, bool with_items);
/** turn_is_waiting_on_approval() - a client's decision is awaited. */
bool turn_is_waiting_on_approval(const Turn *turn);

#endif
