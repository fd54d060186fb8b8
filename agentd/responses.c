/* SPDX-License-Identifier: MIT */
/* responses.c - Responses API stream decoder: JSON event payloads to typed callbacks (§13.3). */
#include "responses.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* An item added or streamed to and not yet done: what its deltas said so far. */
typedef struct OpenItem {
	char *id;      /* item_id, or NULL */
	char *call_id; /* or NULL */
	char *buf;     /* streamed bytes, NUL-terminated; NULL while none */
	size_t len, cap;
} OpenItem;

typedef enum DecoderState {
	STATE_STREAMING,
	STATE_COMPLETED,
	STATE_FAILED,
} DecoderState;

struct ResponsesDecoder {
	ResponsesLimits limits;
	ResponsesCallbacks cb;
	void *ctx;
	DecoderState state;
	int error; /* sticky negative errno, or 0 */
	char *response_id;
	OpenItem *open; /* in order of arrival; the last is the newest */
	size_t n_open, cap_open;
	size_t streamed_bytes; /* sum of open[].len */
	json_t *done_items;    /* array */
};

/* ---- small JSON helpers ----------------------------------------------------------------------- */

static const char *str_field(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static size_t str_field_len(const json_t *obj, const char *key)
{
	return json_string_length(json_object_get(obj, key));
}

static int64_t int_field(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return 0;
}

static int64_t index_field(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static int callback_rc(int rc)
{
	return rc < 0 ? rc : rc > 0 ? -ECANCELED : 0;
}

/* ---- open items ------------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static OpenItem *open_find(ResponsesDecoder *d, const char *id, const char *call_id)
{
	for (size_t i = d->n_open; i-- > 0;) {
		OpenItem *it = &d->open[i];
		if (str_eq(it->id, id) || str_eq(it->call_id, id) || str_eq(it->id, call_id) ||
		    str_eq(it->call_id, call_id))
			return it;
	}
	return NULL;
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int open_add(ResponsesDecoder *d, const char *id, const char *call_id, OpenItem **out)
{
	if (d->n_open >= d->limits.max_open_items)
		return -EMSGSIZE;
	if (d->n_open == d->cap_open) {
		size_t cap = d->cap_open ? d->cap_open * 2 : 4;
		OpenItem *grown = realloc(d->open, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		d->open = grown;
		d->cap_open = cap;
	}
	OpenItem it = { 0 };
	if (dup_opt(id, &it.id) < 0 || dup_opt(call_id, &it.call_id) < 0) {
		free(it.id);
		return -ENOMEM;
	}
	d->open[d->n_open] = it;
	*out = &d->open[d->n_open++];
	return 0;
}

static void open_item_release(OpenItem *it)
{
	free(it->id);
	free(it->call_id);
	free(it->buf);
}

static void open_remove(ResponsesDecoder *d, OpenItem *it)
{
	size_t i = (size_t)(it - d->open);
	d->streamed_bytes -= it->len;
	open_item_release(it);
	memmove(&d->open[i], &d->open[i + 1], (d->n_open - i - 1) * sizeof(*d->open));
	d->n_open--;
}

static int open_append(ResponsesDecoder *d, OpenItem *it, const char *bytes, size_t len)
{
	if (len > d->limits.max_streamed_bytes - d->streamed_bytes)
		return -EMSGSIZE;
	if (it->len + len + 1 > it->cap) {
		size_t cap = it->cap ? it->cap : 64;
		while (cap < it->len + len + 1)
			cap *= 2;
		char *grown = realloc(it->buf, cap);
		if (!grown)
			return -ENOMEM;
		it->buf = grown;
		it->cap = cap;
	}
	memcpy(it->buf + it->len, bytes, len);
	it->len += len;
	it->buf[it->len] = '\0';
	d->streamed_bytes += len;
	return 0;
}

/* ---- items ------------------------------------------------------------------------------------ */

static RespItemKind item_kind(const char *type)
{
	if (!type)
		return RESP_ITEM_OTHER;
	if (strcmp(type, "message") == 0)
		return RESP_ITEM_MESSAGE;
	if (strcmp(type, "reasoning") == 0)
		return RESP_ITEM_REASONING;
	if (strcmp(type, "function_call") == 0)
		return RESP_ITEM_FUNCTION_CALL;
	if (strcmp(type, "custom_tool_call") == 0)
		return RESP_ITEM_CUSTOM_TOOL_CALL;
	return RESP_ITEM_OTHER;
}

/* Joins the "text" of the @part_type entries of the array @key of @item into a new string;
 * *out stays NULL when there are none. */
static int join_parts(const json_t *item, const char *key, const char *part_type, char **out, size_t *out_len)
{
	json_t *parts = json_object_get(item, key), *part;
	size_t i, len = 0;
	bool has_any = false;
	*out = NULL;
	*out_len = 0;
	json_array_foreach (parts, i, part) {
		if (str_eq(str_field(part, "type"), part_type) && str_field(part, "text")) {
			len += str_field_len(part, "text");
			has_any = true;
		}
	}
	if (!has_any)
		return 0;
	char *s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	size_t at = 0;
	json_array_foreach (parts, i, part) {
		if (str_eq(str_field(part, "type"), part_type) && str_field(part, "text")) {
			size_t n = str_field_len(part, "text");
			memcpy(s + at, str_field(part, "text"), n);
			at += n;
		}
	}
	s[at] = '\0';
	*out = s;
	*out_len = at;
	return 0;
}

/* Fills @ri from @item; the arguments/text fall back to @streamed (NULL: ""). *joined receives
 * a string @ri points into, for the caller to free after the callback. */
static int item_describe(const json_t *item, const OpenItem *streamed, RespItem *ri, char **joined)
{
	static const char empty[] = "";
	const char *fallback = streamed && streamed->buf ? streamed->buf : empty;
	size_t fallback_len = streamed ? streamed->len : 0;

	*joined = NULL;
	*ri = (RespItem){ 0 };
	ri->json = item;
	ri->type = str_field(item, "type") ? str_field(item, "type") : empty;
	ri->kind = item_kind(str_field(item, "type"));
	ri->id = str_field(item, "id");
	ri->role = str_field(item, "role");
	ri->name = str_field(item, "name");
	ri->call_id = str_field(item, "call_id");

	const char *own_key = NULL;
	if (ri->kind == RESP_ITEM_FUNCTION_CALL)
		own_key = "arguments";
	else if (ri->kind == RESP_ITEM_CUSTOM_TOOL_CALL)
		own_key = "input";
	if (own_key) {
		ri->arguments = str_field(item, own_key);
		ri->arguments_len = str_field_len(item, own_key);
		if (!ri->arguments) {
			ri->arguments = fallback;
			ri->arguments_len = fallback_len;
		}
		return 0;
	}
	if (ri->kind != RESP_ITEM_MESSAGE && ri->kind != RESP_ITEM_REASONING)
		return 0;
	int rc = ri->kind == RESP_ITEM_MESSAGE
			 ? join_parts(item, "content", "output_text", joined, &ri->text_len)
			 : join_parts(item, "summary", "summary_text", joined, &ri->text_len);
	if (rc < 0)
		return rc;
	ri->text = *joined;
	if (!ri->text) {
		ri->text = fallback;
		ri->text_len = fallback_len;
	}
	return 0;
}

static int on_item_added(ResponsesDecoder *d, const json_t *ev)
{
	json_t *item = json_object_get(ev, "item");
	if (!json_is_object(item))
		return 0;
	const char *id = str_field(item, "id"), *call_id = str_field(item, "call_id");
	OpenItem *it = open_find(d, id, call_id);
	if (!it) {
		int rc = open_add(d, id, call_id, &it);
		if (rc < 0)
			return rc;
	}
	if (!d->cb.on_item_added)
		return 0;
	RespItem ri;
	char *joined = NULL;
	int rc = item_describe(item, NULL, &ri, &joined);
	if (rc == 0)
		rc = callback_rc(d->cb.on_item_added(d->ctx, &ri));
	free(joined);
	return rc;
}

static int on_item_done(ResponsesDecoder *d, const json_t *ev)
{
	json_t *item = json_object_get(ev, "item");
	if (!json_is_object(item))
		return 0;
	if (json_array_size(d->done_items) >= d->limits.max_done_items)
		return -EMSGSIZE;
	if (json_array_append(d->done_items, item) < 0)
		return -ENOMEM;
	const char *id = str_field(item, "id"), *call_id = str_field(item, "call_id");
	OpenItem *it = open_find(d, id, call_id);
	/* an item without ids (codex's fixtures) pairs with the newest open one that had none */
	for (size_t i = d->n_open; !it && !id && !call_id && i-- > 0;)
		if (!d->open[i].id && !d->open[i].call_id)
			it = &d->open[i];
	int rc = 0;
	if (d->cb.on_item_done) {
		RespItem ri;
		char *joined = NULL;
		rc = item_describe(item, it, &ri, &joined);
		if (rc == 0)
			rc = callback_rc(d->cb.on_item_done(d->ctx, &ri));
		free(joined);
	}
	if (it)
		open_remove(d, it);
	return rc;
}

/* ---- deltas ----------------------------------------------------------------------------------- */

typedef enum DeltaKind {
	DELTA_TEXT,
	DELTA_REASONING,
	DELTA_ARGUMENTS,
} DeltaKind;

static int on_delta(ResponsesDecoder *d, const json_t *ev, DeltaKind kind, RespReasoningKind reasoning,
		    const char *index_key)
{
	const char *item_id = str_field(ev, "item_id"), *call_id = str_field(ev, "call_id");
	const char *delta = str_field(ev, "delta");
	size_t delta_len = str_field_len(ev, "delta");
	if (!delta)
		delta = "";

	OpenItem *it = NULL;
	int rc;
	if (item_id || call_id) {
		it = open_find(d, item_id, call_id);
		if (!it && (rc = open_add(d, item_id, item_id ? NULL : call_id, &it)) < 0)
			return rc;
	} else if (d->n_open > 0) {
		it = &d->open[d->n_open - 1];
	}
	if (it && delta_len > 0 && (rc = open_append(d, it, delta, delta_len)) < 0)
		return rc;

	RespDelta rd = {
		.item_id = item_id ? item_id : call_id,
		.delta = delta,
		.delta_len = delta_len,
		.index = index_key ? index_field(ev, index_key) : -1,
		.accumulated = delta, /* an item no one named: this delta is all there is */
		.accumulated_len = delta_len,
	};
	if (it) {
		if (!rd.item_id)
			rd.item_id = it->id ? it->id : it->call_id;
		rd.accumulated = it->buf ? it->buf : "";
		rd.accumulated_len = it->len;
	}
	rc = 0;
	if (kind == DELTA_TEXT && d->cb.on_text_delta)
		rc = d->cb.on_text_delta(d->ctx, &rd);
	else if (kind == DELTA_REASONING && d->cb.on_reasoning_delta)
		rc = d->cb.on_reasoning_delta(d->ctx, reasoning, &rd);
	else if (kind == DELTA_ARGUMENTS && d->cb.on_arguments_delta)
		rc = d->cb.on_arguments_delta(d->ctx, &rd);
	return callback_rc(rc);
}

/* ---- the response's start and end ------------------------------------------------------------- */

static int remember_response_id(ResponsesDecoder *d, const json_t *response)
{
	const char *id = str_field(response, "id");
	if (!id || str_eq(id, d->response_id))
		return 0;
	char *copy = strdup(id);
	if (!copy)
		return -ENOMEM;
	free(d->response_id);
	d->response_id = copy;
	return 0;
}

static int on_created(ResponsesDecoder *d, const json_t *ev)
{
	json_t *response = json_object_get(ev, "response");
	int rc = remember_response_id(d, response);
	if (rc < 0)
		return rc;
	return d->cb.on_created ? callback_rc(d->cb.on_created(d->ctx, str_field(response, "id"))) : 0;
}

static int on_completed(ResponsesDecoder *d, const json_t *ev)
{
	json_t *response = json_object_get(ev, "response");
	int rc = remember_response_id(d, response);
	if (rc < 0)
		return rc;
	d->state = STATE_COMPLETED;
	json_t *usage = json_object_get(response, "usage");
	RespUsage u = { 0 };
	if (json_is_object(usage)) {
		u.input_tokens = int_field(usage, "input_tokens");
		u.cached_tokens = int_field(json_object_get(usage, "input_tokens_details"), "cached_tokens");
		u.output_tokens = int_field(usage, "output_tokens");
		u.reasoning_tokens =
			int_field(json_object_get(usage, "output_tokens_details"), "reasoning_tokens");
		u.total_tokens = int_field(usage, "total_tokens");
	}
	if (!d->cb.on_completed)
		return 0;
	return callback_rc(
		d->cb.on_completed(d->ctx, str_field(response, "id"), json_is_object(usage) ? &u : NULL));
}

static const struct {
	const char *code;
	RespErrorKind kind;
} error_codes[] = {
	{ "context_length_exceeded", RESP_ERR_CONTEXT_LENGTH },
	{ "usage_limit_reached", RESP_ERR_USAGE_LIMIT },
	{ "usage_not_included", RESP_ERR_USAGE_NOT_INCLUDED },
	{ "insufficient_quota", RESP_ERR_INSUFFICIENT_QUOTA },
	{ "invalid_prompt", RESP_ERR_INVALID_PROMPT },
	{ "cyber_policy", RESP_ERR_CYBER_POLICY },
	{ "server_is_overloaded", RESP_ERR_SERVER_OVERLOADED },
	{ "slow_down", RESP_ERR_SERVER_OVERLOADED },
	{ "rate_limit_exceeded", RESP_ERR_RATE_LIMIT },
};

static RespErrorKind error_kind(const char *code)
{
	for (size_t i = 0; code && i < sizeof(error_codes) / sizeof(error_codes[0]); i++)
		if (strcmp(code, error_codes[i].code) == 0)
			return error_codes[i].kind;
	return RESP_ERR_OTHER;
}

/* "... Please try again in 11.054s." / "in 250ms" / "in 3 seconds" → milliseconds; -1 when none. */
static int64_t retry_after_ms(const char *message)
{
	static const char marker[] = "try again in";
	if (!message)
		return -1;
	for (const char *p = message; *p; p++) {
		if (strncasecmp(p, marker, sizeof(marker) - 1) != 0)
			continue;
		const char *q = p + sizeof(marker) - 1;
		while (*q == ' ')
			q++;
		if (!isdigit((unsigned char)*q))
			return -1;
		char *end;
		double value = strtod(q, &end);
		while (*end == ' ')
			end++;
		if (strncmp(end, "ms", 2) == 0)
			return value < 9.0e15 ? (int64_t)value : -1;
		if (*end == 's')
			return value < 9.0e12 ? (int64_t)(value * 1000.0 + 0.5) : -1;
		return -1;
	}
	return -1;
}

/* @is_nested: @error is an error object, whose "type" may stand for a missing code; otherwise it
 * is the event itself, whose "type" is the event's. */
static int report_failure(ResponsesDecoder *d, const char *event, const json_t *error, bool is_nested,
			  RespErrorKind kind)
{
	const char *type = is_nested ? str_field(error, "type") : NULL;
	d->state = STATE_FAILED;
	RespError e = {
		.event = event,
		.code = str_field(error, "code") ? str_field(error, "code") : type,
		.message = str_field(error, "message"),
	};
	e.kind = kind == RESP_ERR_INCOMPLETE ? kind : error_kind(e.code);
	if (e.kind == RESP_ERR_OTHER && type)
		e.kind = error_kind(type); /* {"code":"x","type":"usage_limit_reached"} */
	e.retry_after_ms = retry_after_ms(e.message);
	return d->cb.on_failed ? callback_rc(d->cb.on_failed(d->ctx, &e)) : 0;
}

static int on_failed(ResponsesDecoder *d, const json_t *ev)
{
	json_t *response = json_object_get(ev, "response");
	int rc = remember_response_id(d, response);
	if (rc < 0)
		return rc;
	return report_failure(d, "response.failed", json_object_get(response, "error"), true, RESP_ERR_OTHER);
}

static int on_error(ResponsesDecoder *d, const json_t *ev)
{
	json_t *nested = json_object_get(ev, "error");
	if (json_is_object(nested))
		return report_failure(d, "error", nested, true, RESP_ERR_OTHER);
	return report_failure(d, "error", ev, false, RESP_ERR_OTHER);
}

static int on_incomplete(ResponsesDecoder *d, const json_t *ev)
{
	json_t *details = json_object_get(json_object_get(ev, "response"), "incomplete_details");
	json_t *error = json_pack("{s:s?}", "code", str_field(details, "reason"));
	if (!error)
		return -ENOMEM;
	int rc = report_failure(d, "response.incomplete", error, true, RESP_ERR_INCOMPLETE);
	json_decref(error);
	return rc;
}

/* ---- dispatch --------------------------------------------------------------------------------- */

static int dispatch(ResponsesDecoder *d, const char *type, const json_t *ev)
{
	if (strcmp(type, "response.created") == 0)
		return on_created(d, ev);
	if (strcmp(type, "response.output_item.added") == 0)
		return on_item_added(d, ev);
	if (strcmp(type, "response.output_item.done") == 0)
		return on_item_done(d, ev);
	if (strcmp(type, "response.output_text.delta") == 0)
		return on_delta(d, ev, DELTA_TEXT, 0, "content_index");
	if (strcmp(type, "response.reasoning_summary_text.delta") == 0)
		return on_delta(d, ev, DELTA_REASONING, RESP_REASONING_SUMMARY_TEXT, "summary_index");
	if (strcmp(type, "response.reasoning_summary_part.added") == 0) {
		if (!d->cb.on_reasoning_delta)
			return 0;
		const char *id = str_field(ev, "item_id");
		RespDelta rd = { .item_id = id,
				 .delta = "",
				 .index = index_field(ev, "summary_index"),
				 .accumulated = "" };
		OpenItem *it = id ? open_find(d, id, NULL) : NULL;
		if (it && it->buf) {
			rd.accumulated = it->buf;
			rd.accumulated_len = it->len;
		}
		return callback_rc(d->cb.on_reasoning_delta(d->ctx, RESP_REASONING_SUMMARY_PART, &rd));
	}
	if (strcmp(type, "response.reasoning_text.delta") == 0)
		return on_delta(d, ev, DELTA_REASONING, RESP_REASONING_TEXT, "content_index");
	if (strcmp(type, "response.function_call_arguments.delta") == 0 ||
	    strcmp(type, "response.custom_tool_call_input.delta") == 0)
		return on_delta(d, ev, DELTA_ARGUMENTS, 0, NULL);
	if (strcmp(type, "response.completed") == 0)
		return on_completed(d, ev);
	if (strcmp(type, "response.failed") == 0)
		return on_failed(d, ev);
	if (strcmp(type, "response.incomplete") == 0)
		return on_incomplete(d, ev);
	if (strcmp(type, "error") == 0)
		return on_error(d, ev);
	return 0; /* response.in_progress, response.metadata, *.done of parts, ...: nothing to do */
}

int responses_decoder_event(ResponsesDecoder *d, const char *sse_type, const char *data, size_t data_len)
{
	if (d->error)
		return d->error;
	if (d->state != STATE_STREAMING)
		return 0;
	json_t *ev = json_loadb(data, data_len, 0, NULL);
	int rc;
	if (!json_is_object(ev)) {
		rc = -EBADMSG;
	} else {
		const char *type = str_field(ev, "type");
		if (!type)
			type = sse_type ? sse_type : "";
		rc = dispatch(d, type, ev);
	}
	json_decref(ev);
	if (rc < 0)
		d->error = rc;
	return rc;
}

int responses_decoder_on_sse(void *ctx, const SseEvent *event)
{
	return responses_decoder_event(ctx, event->type, event->data, event->data_len);
}

/* ---- life cycle ------------------------------------------------------------------------------- */

int responses_decoder_new(const ResponsesLimits *limits, const ResponsesCallbacks *callbacks, void *ctx,
			  ResponsesDecoder **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	ResponsesDecoder *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	if (limits)
		d->limits = *limits;
	if (!d->limits.max_streamed_bytes)
		d->limits.max_streamed_bytes = RESPONSES_DEFAULT_MAX_STREAMED_BYTES;
	if (!d->limits.max_open_items)
		d->limits.max_open_items = RESPONSES_DEFAULT_MAX_OPEN_ITEMS;
	if (!d->limits.max_done_items)
		d->limits.max_done_items = RESPONSES_DEFAULT_MAX_DONE_ITEMS;
	if (callbacks)
		d->cb = *callbacks;
	d->ctx = ctx;
	d->done_items = json_array();
	if (!d->done_items) {
		free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void responses_decoder_free(ResponsesDecoder *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_open; i++)
		open_item_release(&d->open[i]);
	free(d->open);
	free(d->response_id);
	json_decref(d->done_items);
	free(d);
}

int responses_decoder_finish(const ResponsesDecoder *d)
{
	if (d->error)
		return d->error;
	switch (d->state) {
	case STATE_COMPLETED:
		return 0;
	case STATE_FAILED:
		return RESPONSES_E_FAILED;
	case STATE_STREAMING:
		break;
	}
	return RESPONSES_E_INCOMPLETE;
}

const char *responses_decoder_response_id(const ResponsesDecoder *d)
{
	return d->response_id;
}

json_t *responses_decoder_output_items(const ResponsesDecoder *d)
{
	return d->done_items;
}

bool responses_error_is_retryable(RespErrorKind kind)
{
	return kind == RESP_ERR_OTHER || kind == RESP_ERR_RATE_LIMIT;
}
