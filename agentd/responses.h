/* SPDX-License-Identifier: MIT */
/* responses.h - decoder for a Responses API event stream: SSE events in, typed callbacks out. */
#ifndef AGENTD_RESPONSES_H
#define AGENTD_RESPONSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sse.h"

/*
 * The model client feeds the events sse.c dispatches (responses_decoder_on_sse is an SseEventFn)
 * and gets one callback per event that matters, following codex-behaviour.md §13.3. The event is
 * keyed on the JSON "type" field of its data (the SSE event name only when the JSON has none);
 * unknown types are ignored. Unlike codex, data that is not a JSON object is an error: the caller
 * treats the stream as failed. Deltas are accumulated per output item (function-call arguments,
 * custom-tool input, message text, reasoning text) under a byte bound; a done item's own
 * arguments/input/text win over what was streamed. Every done item's JSON is kept, in order, for
 * the next request's input history. After response.completed or a failure, events are ignored.
 * Nothing here does I/O. Errors are negative errno values and stick until responses_decoder_free().
 */

/* All items' streamed bytes buffered at once (deltas of the items not yet done). */
#define RESPONSES_DEFAULT_MAX_STREAMED_BYTES ((size_t)8 << 20)
/* Items added or streamed to and not yet done. */
#define RESPONSES_DEFAULT_MAX_OPEN_ITEMS ((size_t)256)
/* Done items kept for the history of one response. */
#define RESPONSES_DEFAULT_MAX_DONE_ITEMS ((size_t)4096)

/* responses_decoder_finish() outcomes besides 0 (response.completed arrived): a failure event
 * (response.failed, response.incomplete, error) arrived; the stream ended before either ("stream
 * closed before response.completed", which codex retries). */
#define RESPONSES_E_FAILED 1
#define RESPONSES_E_INCOMPLETE 2

typedef struct ResponsesLimits {
	size_t max_streamed_bytes; /* 0: RESPONSES_DEFAULT_MAX_STREAMED_BYTES */
	size_t max_open_items;	   /* 0: RESPONSES_DEFAULT_MAX_OPEN_ITEMS */
	size_t max_done_items;	   /* 0: RESPONSES_DEFAULT_MAX_DONE_ITEMS */
} ResponsesLimits;

typedef enum RespItemKind {
	RESP_ITEM_OTHER = 0, /* local_shell_call, web_search_call, ...: see type and json */
	RESP_ITEM_MESSAGE,
	RESP_ITEM_REASONING,
	RESP_ITEM_FUNCTION_CALL,
	RESP_ITEM_CUSTOM_TOOL_CALL,
} RespItemKind;

/* An output item, from response.output_item.added or .done. Strings are NULL when the item has
 * no such string field; everything is valid only during the callback (json_incref to keep json). */
typedef struct RespItem {
	RespItemKind kind;
	const char *type; /* item.type; "" when absent */
	const char *id;
	const char *role; /* message */
	const char *name; /* function_call, custom_tool_call */
	const char *call_id;
	/* function_call: arguments; custom_tool_call: input. Done: the item's own when it has the
	 * field, else the streamed deltas; added: the item's own or "". NULL for other kinds. */
	const char *arguments;
	size_t arguments_len;
	/* message: its output_text parts joined; reasoning: its summary_text parts joined. Done: from
	 * the item when it has any, else the streamed deltas; added: "". NULL for other kinds. */
	const char *text;
	size_t text_len;
	const json_t *json; /* the whole item */
} RespItem;

/* A delta event. item_id is the event's item_id (or call_id), else the newest open item's id,
 * else NULL; accumulated is everything streamed to that item so far, this delta included (a
 * reasoning item's summary and raw text deltas share one accumulation). */
typedef struct RespDelta {
	const char *item_id;
	const char *delta;
	size_t delta_len;
	int64_t index; /* summary_index or content_index; -1 when absent */
	const char *accumulated;
	size_t accumulated_len;
} RespDelta;

typedef enum RespReasoningKind {
	RESP_REASONING_SUMMARY_TEXT, /* response.reasoning_summary_text.delta */
	RESP_REASONING_SUMMARY_PART, /* response.reasoning_summary_part.added; delta is "" */
	RESP_REASONING_TEXT,	     /* response.reasoning_text.delta */
} RespReasoningKind;

/* response.completed's response.usage; a details object that is absent or null counts 0. */
typedef struct RespUsage {
	int64_t input_tokens;
	int64_t cached_tokens; /* input_tokens_details.cached_tokens */
	int64_t output_tokens;
	int64_t reasoning_tokens; /* output_tokens_details.reasoning_tokens */
	int64_t total_tokens;
} RespUsage;

typedef enum RespErrorKind {
	RESP_ERR_OTHER = 0,	     /* retryable, after retry_after_ms when the message gives it */
	RESP_ERR_RATE_LIMIT,	     /* rate_limit_exceeded: retryable */
	RESP_ERR_CONTEXT_LENGTH,     /* context_length_exceeded: ContextWindowExceeded, no retry */
	RESP_ERR_USAGE_LIMIT,	     /* usage_limit_reached: §12.3's message, no retry */
	RESP_ERR_USAGE_NOT_INCLUDED, /* usage_not_included */
	RESP_ERR_INSUFFICIENT_QUOTA, /* insufficient_quota */
	RESP_ERR_INVALID_PROMPT,     /* invalid_prompt */
	RESP_ERR_CYBER_POLICY,	     /* cyber_policy */
	RESP_ERR_SERVER_OVERLOADED,  /* server_is_overloaded, slow_down */
	RESP_ERR_INCOMPLETE,	     /* response.incomplete; code is incomplete_details.reason */
} RespErrorKind;

/* A failure: response.failed {response:{error:{code,message}}}, an error event ({code, message}
 * or {error:{code|type, message}}), or response.incomplete. Strings are NULL when absent. */
typedef struct RespError {
	RespErrorKind kind;
	const char *event; /* "response.failed", "error" or "response.incomplete" */
	const char *code;  /* error.code, else error.type */
	const char *message;
	int64_t retry_after_ms; /* from "Please try again in 11.054s" / "in 250ms"; -1 when none */
} RespError;

/* Every callback may be NULL. Return 0 to go on; a negative value stops the decode and is
 * returned (and sticks); a positive one does so as -ECANCELED. A callback must not call back
 * into the decoder. */
typedef struct ResponsesCallbacks {
	int (*on_created)(void *ctx, const char *response_id); /* NULL when response.id is absent */
	int (*on_item_added)(void *ctx, const RespItem *item);
	int (*on_item_done)(void *ctx, const RespItem *item);
	int (*on_text_delta)(void *ctx, const RespDelta *delta);
	int (*on_reasoning_delta)(void *ctx, RespReasoningKind kind, const RespDelta *delta);
	/* response.function_call_arguments.delta and response.custom_tool_call_input.delta */
	int (*on_arguments_delta)(void *ctx, const RespDelta *delta);
	/* @usage is NULL when the response had none (or it was null) */
	int (*on_completed)(void *ctx, const char *response_id, const RespUsage *usage);
	int (*on_failed)(void *ctx, const RespError *error);
} ResponsesCallbacks;

typedef struct ResponsesDecoder ResponsesDecoder;

/**
 * responses_decoder_new() - a decoder at the start of one response stream.
 * @limits: the bounds; NULL for the defaults.
 * @callbacks: copied; NULL for none.
 * @out: receives the decoder.
 *
 * Return: 0; -EINVAL without @out; -ENOMEM.
 */
int responses_decoder_new(const ResponsesLimits *limits, const ResponsesCallbacks *callbacks, void *ctx,
			  ResponsesDecoder **out);

/** responses_decoder_free() - free @d and everything it holds; NULL is allowed. */
void responses_decoder_free(ResponsesDecoder *d);

/**
 * responses_decoder_event() - decode one event: @sse_type is the SSE event name (may be NULL),
 * @data its data, @data_len bytes of it.
 *
 * Return: 0 (also for ignored events); -EBADMSG when @data is not a JSON object; -EMSGSIZE when
 * the streamed bytes, open items or done items would pass their bound; -ENOMEM; a callback's
 * error (above). Once one is returned, every later call returns it without decoding.
 */
int responses_decoder_event(ResponsesDecoder *d, const char *sse_type, const char *data, size_t data_len);

/** responses_decoder_on_sse() - responses_decoder_event() as an SseEventFn, @ctx the decoder. */
int responses_decoder_on_sse(void *ctx, const SseEvent *event);

/**
 * responses_decoder_finish() - the stream ended; report how.
 *
 * Return: 0 after response.completed; RESPONSES_E_FAILED after a failure event;
 * RESPONSES_E_INCOMPLETE when neither arrived; the error an event returned, if one did.
 */
int responses_decoder_finish(const ResponsesDecoder *d);

/** responses_decoder_response_id() - response.created's (or completed's) id; NULL until one. */
const char *responses_decoder_response_id(const ResponsesDecoder *d);

/** responses_decoder_output_items() - the done items so far, in order, as a JSON array owned by
 * @d (json_incref it to keep it past responses_decoder_free()). */
json_t *responses_decoder_output_items(const ResponsesDecoder *d);

/** responses_error_is_retryable() - whether codex retries a stream that failed with @kind. */
bool responses_error_is_retryable(RespErrorKind kind);

#endif
