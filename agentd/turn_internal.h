/* SPDX-License-Identifier: MIT */
/*
 * turn_internal.h - the turn's state and the engine's services, for the files that make up the
 * engine: turn.c (sampling, items, the end), turn_auth.c (bearer tokens, usage, rate limits),
 * prompt.c (the request) and tools.c (the tool calls).
 */
#ifndef AGENTD_TURN_INTERNAL_H
#define AGENTD_TURN_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "model_client.h"
#include "providers.h"
#include "responses.h"
#include "sse.h"
#include "thread.h"
#include "turn.h"

typedef struct ToolRun ToolRun;

/* A client's approval decision ("accept", "acceptForSession", "decline", "cancel", …). */
typedef void (*TurnApprovalFn)(Turn *turn, const char *decision, void *ctx);

struct Turn {
	Thread *thread;
	char id[UUID_TEXT_LEN + 1];
	unsigned refs; /* the turn's own, plus one per outstanding wait */
	bool is_announced;
	bool is_finished;
	bool is_abandoned; /* the thread is going: nothing is sent any more */
	const char *status; /* once finished: "completed", "failed", "interrupted" */
	json_t *error;	    /* TurnError when failed */
	uint64_t conn_id;   /* the client that started it: asked for approvals first */
	char originator[128];  /* the originator header of its requests */
	char user_agent[768];
	int64_t started_at_ms, completed_at_ms;
	json_t *input;	 /* the first UserInput array */
	json_t *output_schema; /* turn/start's outputSchema (a JSON Schema), or NULL */
	json_t *items;	 /* v2 items completed so far */
	json_t *steered; /* UserInput arrays for the next request */
	json_t *injected; /* history items for the next request (a user shell command's result) */
	bool is_shell_only; /* a standalone thread/shellCommand turn: no model request */
	json_t *interrupt_replies; /* [conn id, request id] pairs answered once it ended */
	char *last_agent_message;

	/* The current sampling request. */
	Provider *provider;
	ProviderAuthMode auth_mode;
	char bearer[8192]; /* "" for none; never logged */
	char account_id[128];
	bool bearer_is_authd;
	bool did_recover_auth;
	ModelStream *stream;
	SseParser *sse;
	ResponsesDecoder *decoder;
	long http_status;
	char *turn_state; /* x-codex-turn-state, echoed on the turn's later requests */
	json_t *open_items;	/* item id -> v2 item still streaming */
	/* The text streamed to the latest open message, kept here rather than in its item: setting
	 * the item's text per delta would copy (and UTF-8 check) the whole answer each time. */
	char *streamed;
	size_t streamed_len, streamed_capacity;
	char streamed_id[128];
	json_t *attempt_output; /* the done output items of this response */
	unsigned attempt;	/* announced retries made for this request (stream_max_retries) */
	unsigned request_attempt; /* silent retries of this attempt's HTTP request (request_max_retries) */
	uv_timer_t *retry_timer;
	RespErrorKind failure_kind;
	int64_t failure_retry_after_ms;
	char failure_code[128];
	char failure_message[1024];
	json_t *last_usage;

	/* Tool calls of the last completed response, run in order. */
	json_t *calls;
	size_t next_call;
	ToolRun *tool;

	/* The approval awaited, if any. */
	uint64_t approval_conn; /* 0: none */
	int64_t approval_id;
	TurnApprovalFn approval_fn;
	void *approval_ctx;
};

/** turn_hold() / turn_release() - a wait begins / ends; the last release frees the turn. */
void turn_hold(Turn *turn);
void turn_release(Turn *turn);

/** turn_notify() - a notification to the thread's subscribers (@params stolen). */
void turn_notify(Turn *turn, const char *method, json_t *params);
/** turn_item_started() / turn_item_completed() - item/started and item/completed for @item (borrowed,
 * its startedAtMs / completedAtMs set here); a completed item joins the turn's items and the rollout. */
void turn_item_started(Turn *turn, json_t *item);
void turn_item_completed(Turn *turn, json_t *item);
/** turn_warning() - a warning notification for the thread. */
void turn_warning(Turn *turn, const char *message);
/** turn_add_history() - @item (borrowed) joins the model's history and the rollout. */
void turn_add_history(Turn *turn, json_t *item);

/** turn_error_json() - a TurnError {message, codexErrorInfo (stolen, may be NULL), additionalDetails}. */
json_t *turn_error_json(const char *message, json_t *info, const char *details);
/** turn_fail() - end the turn "failed" with that error. */
void turn_fail(Turn *turn, const char *message, json_t *info, const char *details);

/** turn_tool_output() - a tool call is done: @output_item (stolen) goes to the model, the next call runs. */
void turn_tool_output(Turn *turn, json_t *output_item);

/**
 * turn_request_approval() - send server request @method with @params (stolen) to the client that
 * started the turn (else another subscriber); @fn gets the decision ("decline" when the client
 * goes or answers an error, "cancel" when the turn ends first). Return 0, or -ENOTCONN when no
 * client can be asked (then @fn does not run).
 */
int turn_request_approval(Turn *turn, const char *method, json_t *params, TurnApprovalFn fn, void *ctx);
/** turn_withdraw_approval() - the turn ends: forget the request, tell its waiter "cancel". */
void turn_withdraw_approval(Turn *turn);

/** turn_shell_result() - a user shell command ended: @text (its contextual message) reaches the model
 * with the next request of the running turn, or the thread's history. A shell-only turn then ends. */
void turn_shell_result(Turn *turn, const char *text);

/* turn_auth.c */
/** turn_authenticate() - find the bearer the provider needs (authd or env_key), then send. */
void turn_authenticate(Turn *turn);
/** turn_recover_auth() - the model refused the token (401): ask authd for another, then send again. */
void turn_recover_auth(Turn *turn);
/** turn_send_request() - build and stream the sampling request (turn.c). */
void turn_send_request(Turn *turn);
/** turn_record_usage() - usage of a completed response: thread/tokenUsage/updated. */
void turn_record_usage(Turn *turn, const RespUsage *usage);
/** turn_note_rate_limits() - x-codex-* rate-limit headers: account/rateLimits/updated. */
void turn_note_rate_limits(Turn *turn, const ModelHeaders *headers);

#endif
