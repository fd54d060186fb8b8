/* SPDX-License-Identifier: MIT */
/* responses_test.c - cmocka tests for the Responses stream decoder: each callback writes a line
 * to a log that the test compares whole; then usage, failures and their codes, malformed data,
 * unknown events, a cut stream, the bounds, and raw SSE bytes through sse.c into the decoder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "responses.h"
#include "sse.h"

/* ---- a log of the callbacks ------------------------------------------------------------------- */

typedef struct Log {
	char text[16384];
	size_t len;
	RespUsage usage;
	bool has_usage;
	RespError error;
	char error_code[64];
	char error_message[256];
	int stop_rc; /* what every callback answers */
} Log;

static void log_line(Log *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l->text + l->len, sizeof(l->text) - l->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(l->text) - l->len);
	l->len += (size_t)n;
}

static const char *or_dash(const char *s)
{
	return s ? s : "-";
}

static int cb_created(void *ctx, const char *response_id)
{
	Log *l = ctx;
	log_line(l, "created %s\n", or_dash(response_id));
	return l->stop_rc;
}

static void log_item(Log *l, const char *what, const RespItem *it)
{
	log_line(l, "%s %d %s id=%s name=%s call_id=%s", what, (int)it->kind, it->type, or_dash(it->id),
		 or_dash(it->name), or_dash(it->call_id));
	if (it->arguments) {
		assert_int_equal(strlen(it->arguments), it->arguments_len);
		log_line(l, " args=%s", it->arguments);
	}
	if (it->text) {
		assert_int_equal(strlen(it->text), it->text_len);
		log_line(l, " text=%s", it->text);
	}
	log_line(l, "\n");
}

static int cb_added(void *ctx, const RespItem *it)
{
	log_item(ctx, "added", it);
	return ((Log *)ctx)->stop_rc;
}

static int cb_done(void *ctx, const RespItem *it)
{
	log_item(ctx, "done", it);
	return ((Log *)ctx)->stop_rc;
}

static void log_delta(Log *l, const char *what, const RespDelta *d)
{
	assert_int_equal(strlen(d->delta), d->delta_len);
	assert_int_equal(strlen(d->accumulated), d->accumulated_len);
	log_line(l, "%s %s [%" PRId64 "] '%s' acc='%s'\n", what, or_dash(d->item_id), d->index, d->delta,
		 d->accumulated);
}

static int cb_text(void *ctx, const RespDelta *d)
{
	log_delta(ctx, "text", d);
	return ((Log *)ctx)->stop_rc;
}

static int cb_reasoning(void *ctx, RespReasoningKind kind, const RespDelta *d)
{
	static const char *const names[] = { "summary", "summary_part", "reasoning" };
	log_delta(ctx, names[kind], d);
	return ((Log *)ctx)->stop_rc;
}

static int cb_arguments(void *ctx, const RespDelta *d)
{
	log_delta(ctx, "args", d);
	return ((Log *)ctx)->stop_rc;
}

static int cb_completed(void *ctx, const char *response_id, const RespUsage *usage)
{
	Log *l = ctx;
	log_line(l, "completed %s usage=%s\n", or_dash(response_id), usage ? "yes" : "no");
	if (usage) {
		l->usage = *usage;
		l->has_usage = true;
	}
	return l->stop_rc;
}

static int cb_failed(void *ctx, const RespError *e)
{
	Log *l = ctx;
	log_line(l, "failed %s %d %s\n", e->event, (int)e->kind, or_dash(e->code));
	l->error = *e;
	snprintf(l->error_code, sizeof(l->error_code), "%s", or_dash(e->code));
	snprintf(l->error_message, sizeof(l->error_message), "%s", or_dash(e->message));
	l->error.code = l->error_code;
	l->error.message = l->error_message;
	return l->stop_rc;
}

static const ResponsesCallbacks all_callbacks = {
	.on_created = cb_created,
	.on_item_added = cb_added,
	.on_item_done = cb_done,
	.on_text_delta = cb_text,
	.on_reasoning_delta = cb_reasoning,
	.on_arguments_delta = cb_arguments,
	.on_completed = cb_completed,
	.on_failed = cb_failed,
};

/* ---- feeding ------------------------------------------------------------------------------------ */

static ResponsesDecoder *decoder(const ResponsesLimits *limits, Log *l)
{
	ResponsesDecoder *d = NULL;
	assert_int_equal(responses_decoder_new(limits, &all_callbacks, l, &d), 0);
	assert_non_null(d);
	return d;
}

/* Feeds each data payload as an exactly-sized heap copy (so ASan sees a read past it); the
 * first failing event ends the feed and its value is returned. */
static int feed_all(ResponsesDecoder *d, const char *const *events, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(events[i]);
		char *copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, events[i], len);
		int rc = responses_decoder_event(d, "message", copy, len);
		free(copy);
		if (rc)
			return rc;
	}
	return 0;
}

#define FEED(d, ...)                                                                                         \
	feed_all((d), (const char *const[]){ __VA_ARGS__ },                                                  \
		 sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *))

#define CREATED "{\"type\":\"response.created\",\"response\":{\"id\":\"resp-1\"}}"
#define COMPLETED "{\"type\":\"response.completed\",\"response\":{\"id\":\"resp-1\"}}"

/* ---- the tests -------------------------------------------------------------------------------- */

static void test_text_in_many_deltas(void **state)
{
	(void)state;
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(
		FEED(d, CREATED,
		     "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":"
		     "\"message\","
		     "\"id\":\"msg-1\",\"role\":\"assistant\",\"content\":[]}}",
		     "{\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"content_index\":0,"
		     "\"delta\":\"He\"}",
		     "{\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"content_index\":0,"
		     "\"delta\":\"llo\"}",
		     "{\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"content_index\":0,"
		     "\"delta\":\", \"}",
		     "{\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"content_index\":0,"
		     "\"delta\":\"w\"}",
		     "{\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"content_index\":0,"
		     "\"delta\":\"orld\"}",
		     /* codex's fixtures: no item_id, so the newest open item */
		     "{\"type\":\"response.output_text.delta\",\"delta\":\"!\"}",
		     "{\"type\":\"response.output_text.done\",\"item_id\":\"msg-1\",\"text\":\"Hello, "
		     "world!\"}",
		     "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"id\":\"msg-"
		     "1\","
		     "\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello, \"},"
		     "{\"type\":\"output_text\",\"text\":\"world!\"}]}}",
		     COMPLETED),
		0);
	assert_string_equal(l.text, "created resp-1\n"
				    "added 1 message id=msg-1 name=- call_id=- text=\n"
				    "text msg-1 [0] 'He' acc='He'\n"
				    "text msg-1 [0] 'llo' acc='Hello'\n"
				    "text msg-1 [0] ', ' acc='Hello, '\n"
				    "text msg-1 [0] 'w' acc='Hello, w'\n"
				    "text msg-1 [0] 'orld' acc='Hello, world'\n"
				    "text msg-1 [-1] '!' acc='Hello, world!'\n"
				    "done 1 message id=msg-1 name=- call_id=- text=Hello, world!\n"
				    "completed resp-1 usage=no\n");
	assert_int_equal(responses_decoder_finish(d), 0);
	assert_string_equal(responses_decoder_response_id(d), "resp-1");
	json_t *items = responses_decoder_output_items(d);
	assert_int_equal(json_array_size(items), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")), "msg-1");
	/* the history outlives the decoder when the caller takes a reference */
	json_incref(items);
	responses_decoder_free(d);
	assert_int_equal(json_array_size(items), 1);
	json_decref(items);
}

static void test_reasoning_and_function_call(void **state)
{
	(void)state;
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(
		FEED(d, CREATED,
		     "{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"reasoning\",\"id\":\"rs-"
		     "1\","
		     "\"summary\":[]}}",
		     "{\"type\":\"response.reasoning_summary_part.added\",\"item_id\":\"rs-1\",\"summary_"
		     "index\":0}",
		     "{\"type\":\"response.reasoning_summary_text.delta\",\"item_id\":\"rs-1\",\"summary_"
		     "index\":0,"
		     "\"delta\":\"Think\"}",
		     "{\"type\":\"response.reasoning_summary_text.delta\",\"item_id\":\"rs-1\",\"summary_"
		     "index\":0,"
		     "\"delta\":\"ing\"}",
		     "{\"type\":\"response.reasoning_text.delta\",\"item_id\":\"rs-1\",\"content_index\":2,"
		     "\"delta\":\"raw\"}",
		     "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"reasoning\",\"id\":\"rs-"
		     "1\","
		     "\"summary\":[{\"type\":\"summary_text\",\"text\":\"Thinking\"}],\"encrypted_content\":"
		     "\"enc\"}}",
		     "{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\",\"id\":"
		     "\"fc-1\","
		     "\"call_id\":\"call_1\",\"name\":\"shell_command\",\"arguments\":\"\"}}",
		     "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\",\"delta\":\"{"
		     "\\\"com\"}",
		     "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\",\"delta\":"
		     "\"mand\\\"\"}",
		     "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\",\"delta\":\":"
		     "\\\"ec\"}",
		     "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\",\"delta\":"
		     "\"ho h\"}",
		     "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\",\"delta\":"
		     "\"i\\\"}\"}",
		     "{\"type\":\"response.function_call_arguments.done\",\"item_id\":\"fc-1\","
		     "\"arguments\":\"{\\\"command\\\":\\\"echo hi\\\"}\"}",
		     /* the done item's own arguments win over the streamed */
		     "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"function_call\",\"id\":"
		     "\"fc-1\","
		     "\"call_id\":\"call_1\",\"name\":\"shell_command\",\"arguments\":\"{\\\"command\\\":"
		     "\\\"ls\\\"}\"}}",
		     /* a done item without arguments takes the streamed ones, matched by call_id */
		     "{\"type\":\"response.custom_tool_call_input.delta\",\"call_id\":\"call_2\",\"delta\":"
		     "\"*** Begin\"}",
		     "{\"type\":\"response.custom_tool_call_input.delta\",\"call_id\":\"call_2\",\"delta\":"
		     "\" Patch\"}",
		     "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"custom_tool_call\",\"id\":"
		     "\"ctc-2\","
		     "\"call_id\":\"call_2\",\"name\":\"apply_patch\"}}",
		     "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"web_search_call\",\"id\":"
		     "\"ws-1\"}}",
		     COMPLETED),
		0);
	assert_string_equal(
		l.text,
		"created resp-1\n"
		"added 2 reasoning id=rs-1 name=- call_id=- text=\n"
		"summary_part rs-1 [0] '' acc=''\n"
		"summary rs-1 [0] 'Think' acc='Think'\n"
		"summary rs-1 [0] 'ing' acc='Thinking'\n"
		"reasoning rs-1 [2] 'raw' acc='Thinkingraw'\n"
		"done 2 reasoning id=rs-1 name=- call_id=- text=Thinking\n"
		"added 3 function_call id=fc-1 name=shell_command call_id=call_1 args=\n"
		"args fc-1 [-1] '{\"com' acc='{\"com'\n"
		"args fc-1 [-1] 'mand\"' acc='{\"command\"'\n"
		"args fc-1 [-1] ':\"ec' acc='{\"command\":\"ec'\n"
		"args fc-1 [-1] 'ho h' acc='{\"command\":\"echo h'\n"
		"args fc-1 [-1] 'i\"}' acc='{\"command\":\"echo hi\"}'\n"
		"done 3 function_call id=fc-1 name=shell_command call_id=call_1 args={\"command\":\"ls\"}\n"
		"args call_2 [-1] '*** Begin' acc='*** Begin'\n"
		"args call_2 [-1] ' Patch' acc='*** Begin Patch'\n"
		"done 4 custom_tool_call id=ctc-2 name=apply_patch call_id=call_2 args=*** Begin Patch\n"
		"done 0 web_search_call id=ws-1 name=- call_id=-\n"
		"completed resp-1 usage=no\n");
	json_t *items = responses_decoder_output_items(d);
	assert_int_equal(json_array_size(items), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "encrypted_content")),
			    "enc");
	assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1), "call_id")),
			    "call_1");
	assert_int_equal(responses_decoder_finish(d), 0);
	responses_decoder_free(d);
}

/* The function call spread over 5 deltas, done without arguments: the accumulation is the answer. */
static void test_arguments_accumulated_when_done_has_none(void **state)
{
	(void)state;
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(FEED(d,
			      "{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\","
			      "\"id\":\"fc-1\","
			      "\"call_id\":\"c\",\"name\":\"f\"}}",
			      "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\","
			      "\"delta\":\"{\"}",
			      "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\","
			      "\"delta\":\"\\\"a\\\"\"}",
			      "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\","
			      "\"delta\":\":\"}",
			      "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\","
			      "\"delta\":\"1\"}",
			      "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc-1\","
			      "\"delta\":\"}\"}",
			      "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"function_call\","
			      "\"id\":\"fc-1\","
			      "\"call_id\":\"c\",\"name\":\"f\"}}"),
			 0);
	assert_non_null(strstr(l.text, "done 3 function_call id=fc-1 name=f call_id=c args={\"a\":1}\n"));
	/* ended without response.completed */
	assert_int_equal(responses_decoder_finish(d), RESPONSES_E_INCOMPLETE);
	responses_decoder_free(d);
}

static void test_usage(void **state)
{
	(void)state;
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(FEED(d,
			      "{\"type\":\"response.completed\",\"response\":{\"id\":\"resp-9\",\"usage\":{"
			      "\"input_tokens\":1200,\"input_tokens_details\":{\"cached_tokens\":1000},"
			      "\"output_tokens\":300,\"output_tokens_details\":{\"reasoning_tokens\":120},"
			      "\"total_tokens\":1500}}}"),
			 0);
	assert_true(l.has_usage);
	assert_int_equal(l.usage.input_tokens, 1200);
	assert_int_equal(l.usage.cached_tokens, 1000);
	assert_int_equal(l.usage.output_tokens, 300);
	assert_int_equal(l.usage.reasoning_tokens, 120);
	assert_int_equal(l.usage.total_tokens, 1500);
	assert_string_equal(responses_decoder_response_id(d), "resp-9");
	assert_int_equal(responses_decoder_finish(d), 0);
	/* events after the end are ignored */
	assert_int_equal(FEED(d, "{\"type\":\"response.created\",\"response\":{\"id\":\"x\"}}", "not json"),
			 0);
	assert_string_equal(l.text, "completed resp-9 usage=yes\n");
	responses_decoder_free(d);

	/* codex's fixture: null details count 0 */
	Log l2 = { 0 };
	d = decoder(NULL, &l2);
	assert_int_equal(FEED(d,
			      "{\"type\":\"response.completed\",\"response\":{\"id\":\"resp-1\",\"usage\":{"
			      "\"input_tokens\":7,\"input_tokens_details\":null,\"output_tokens\":3,"
			      "\"output_tokens_details\":null,\"total_tokens\":10}}}"),
			 0);
	assert_true(l2.has_usage);
	assert_int_equal(l2.usage.input_tokens, 7);
	assert_int_equal(l2.usage.cached_tokens, 0);
	assert_int_equal(l2.usage.output_tokens, 3);
	assert_int_equal(l2.usage.reasoning_tokens, 0);
	assert_int_equal(l2.usage.total_tokens, 10);
	responses_decoder_free(d);
}

static void test_failed_usage_limit(void **state)
{
	(void)state;
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(
		FEED(d, CREATED,
		     "{\"type\":\"response.failed\",\"response\":{\"id\":\"resp-1\",\"error\":{"
		     "\"code\":\"usage_limit_reached\",\"message\":\"You've hit your usage limit.\"}}}",
		     COMPLETED),
		0);
	assert_string_equal(l.text, "created resp-1\nfailed response.failed 3 usage_limit_reached\n");
	assert_int_equal(l.error.kind, RESP_ERR_USAGE_LIMIT);
	assert_string_equal(l.error.message, "You've hit your usage limit.");
	assert_int_equal(l.error.retry_after_ms, -1);
	assert_false(responses_error_is_retryable(l.error.kind));
	assert_int_equal(responses_decoder_finish(d), RESPONSES_E_FAILED);
	responses_decoder_free(d);
}

static void test_failed_codes(void **state)
{
	(void)state;
	static const struct {
		const char *code;
		RespErrorKind kind;
		bool is_retryable;
	} cases[] = {
		{ "context_length_exceeded", RESP_ERR_CONTEXT_LENGTH, false },
		{ "insufficient_quota", RESP_ERR_INSUFFICIENT_QUOTA, false },
		{ "usage_not_included", RESP_ERR_USAGE_NOT_INCLUDED, false },
		{ "invalid_prompt", RESP_ERR_INVALID_PROMPT, false },
		{ "cyber_policy", RESP_ERR_CYBER_POLICY, false },
		{ "server_is_overloaded", RESP_ERR_SERVER_OVERLOADED, false },
		{ "slow_down", RESP_ERR_SERVER_OVERLOADED, false },
		{ "rate_limit_exceeded", RESP_ERR_RATE_LIMIT, true },
		{ "server_error", RESP_ERR_OTHER, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char ev[512];
		snprintf(ev, sizeof(ev),
			 "{\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"%s\",\"message\":"
			 "\"Rate limit reached. Please try again in 11.054s. Visit ...\"}}}",
			 cases[i].code);
		Log l = { 0 };
		ResponsesDecoder *d = decoder(NULL, &l);
		assert_int_equal(FEED(d, ev), 0);
		assert_int_equal(l.error.kind, cases[i].kind);
		assert_string_equal(l.error.code, cases[i].code);
		assert_int_equal(l.error.retry_after_ms, 11054);
		assert_int_equal(responses_error_is_retryable(l.error.kind), cases[i].is_retryable);
		assert_int_equal(responses_decoder_finish(d), RESPONSES_E_FAILED);
		responses_decoder_free(d);
	}

	/* response.incomplete */
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(FEED(d, "{\"type\":\"response.incomplete\",\"response\":{\"incomplete_details\":{"
				 "\"reason\":\"max_output_tokens\"}}}"),
			 0);
	assert_int_equal(l.error.kind, RESP_ERR_INCOMPLETE);
	assert_string_equal(l.error.code, "max_output_tokens");
	assert_int_equal(responses_decoder_finish(d), RESPONSES_E_FAILED);
	responses_decoder_free(d);
}

static void test_error_event(void **state)
{
	(void)state;
	/* the Responses API's top-level shape */
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(
		FEED(d, CREATED,
		     "{\"type\":\"error\",\"code\":\"context_length_exceeded\",\"message\":\"Your input "
		     "exceeds the context window\",\"param\":null}"),
		0);
	assert_string_equal(l.text, "created resp-1\nfailed error 2 context_length_exceeded\n");
	assert_string_equal(l.error.message, "Your input exceeds the context window");
	assert_int_equal(responses_decoder_finish(d), RESPONSES_E_FAILED);
	responses_decoder_free(d);

	/* a nested error with only a type (the 429 body's shape) */
	Log l2 = { 0 };
	d = decoder(NULL, &l2);
	assert_int_equal(FEED(d,
			      "{\"type\":\"error\",\"error\":{\"type\":\"usage_limit_reached\",\"plan_type\":"
			      "\"plus\",\"resets_at\":1700000000,\"message\":\"try again in 250ms\"}}"),
			 0);
	assert_int_equal(l2.error.kind, RESP_ERR_USAGE_LIMIT);
	assert_string_equal(l2.error.code, "usage_limit_reached");
	assert_int_equal(l2.error.retry_after_ms, 250);
	responses_decoder_free(d);

	/* no code at all */
	Log l3 = { 0 };
	d = decoder(NULL, &l3);
	assert_int_equal(FEED(d, "{\"type\":\"error\"}"), 0);
	assert_string_equal(l3.text, "failed error 0 -\n");
	assert_int_equal(responses_decoder_finish(d), RESPONSES_E_FAILED);
	responses_decoder_free(d);
}

static void test_malformed_data(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"{\"type\":\"response.output_text.delta\",\"delta\":", /* cut */
		"not json",
		"",
		"[1,2]", /* not an object */
		"\"response.completed\"",
		"{\"type\":\"response.created\"} trailing",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		Log l = { 0 };
		ResponsesDecoder *d = decoder(NULL, &l);
		assert_int_equal(FEED(d, CREATED, bad[i]), -EBADMSG);
		/* sticks */
		assert_int_equal(FEED(d, COMPLETED), -EBADMSG);
		assert_int_equal(responses_decoder_finish(d), -EBADMSG);
		assert_string_equal(l.text, "created resp-1\n");
		responses_decoder_free(d);
	}
	/* NUL inside the data */
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	static const char with_nul[] = "{\"type\":\"response.created\",\"response\":{\"id\":\"a\0b\"}}";
	assert_int_equal(responses_decoder_event(d, NULL, with_nul, sizeof(with_nul) - 1), -EBADMSG);
	responses_decoder_free(d);

	/* wrongly typed fields are absent fields, not crashes */
	Log l2 = { 0 };
	d = decoder(NULL, &l2);
	assert_int_equal(FEED(d, "{\"type\":\"response.created\",\"response\":[]}",
			      "{\"type\":\"response.output_item.added\",\"item\":7}",
			      "{\"type\":\"response.output_item.done\",\"item\":{\"type\":3,\"id\":{},"
			      "\"content\":\"x\"}}",
			      "{\"type\":\"response.output_text.delta\",\"item_id\":5,\"delta\":[]}",
			      "{\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":"
			      "\"many\"}}}"),
			 0);
	assert_string_equal(l2.text, "created -\n"
				     "done 0  id=- name=- call_id=-\n"
				     "text - [-1] '' acc=''\n"
				     "completed - usage=yes\n");
	assert_int_equal(l2.usage.input_tokens, 0);
	responses_decoder_free(d);
}

static void test_unknown_events_ignored(void **state)
{
	(void)state;
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(FEED(d, CREATED, "{\"type\":\"response.in_progress\",\"response\":{}}",
			      "{\"type\":\"response.metadata\",\"metadata\":{\"x\":1}}",
			      "{\"type\":\"response.content_part.added\",\"part\":{}}",
			      "{\"type\":\"response.something_new\",\"delta\":\"zzz\"}", "{\"no_type\":true}",
			      COMPLETED),
			 0);
	assert_string_equal(l.text, "created resp-1\ncompleted resp-1 usage=no\n");
	responses_decoder_free(d);

	/* without a JSON type, the SSE event name decides */
	Log l2 = { 0 };
	d = decoder(NULL, &l2);
	static const char data[] = "{\"response\":{\"id\":\"r\"}}";
	assert_int_equal(responses_decoder_event(d, "response.created", data, sizeof(data) - 1), 0);
	assert_int_equal(responses_decoder_event(d, NULL, data, sizeof(data) - 1), 0);
	assert_string_equal(l2.text, "created r\n");
	responses_decoder_free(d);

	/* no callbacks at all */
	d = NULL;
	assert_int_equal(responses_decoder_new(NULL, NULL, NULL, &d), 0);
	assert_int_equal(
		FEED(d, CREATED,
		     "{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"message\",\"id\":\"m\"}}",
		     "{\"type\":\"response.output_text.delta\",\"delta\":\"x\"}",
		     "{\"type\":\"response.reasoning_summary_part.added\",\"item_id\":\"m\"}",
		     "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"id\":\"m\"}}",
		     COMPLETED),
		0);
	assert_int_equal(responses_decoder_finish(d), 0);
	assert_int_equal(json_array_size(responses_decoder_output_items(d)), 1);
	responses_decoder_free(d);
}

static void test_cut_before_completed(void **state)
{
	(void)state;
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(responses_decoder_finish(d), RESPONSES_E_INCOMPLETE); /* nothing at all */
	assert_int_equal(
		FEED(d, CREATED,
		     "{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"message\",\"id\":\"m\"}}",
		     "{\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"delta\":\"partial\"}"),
		0);
	assert_int_equal(responses_decoder_finish(d), RESPONSES_E_INCOMPLETE);
	/* finish does not end the decoder: a late completed still counts */
	assert_int_equal(FEED(d, COMPLETED), 0);
	assert_int_equal(responses_decoder_finish(d), 0);
	responses_decoder_free(d); /* the open item's buffer freed with it */
}

static void test_size_caps(void **state)
{
	(void)state;
	ResponsesLimits limits = { .max_streamed_bytes = 10 };
	Log l = { 0 };
	ResponsesDecoder *d = decoder(&limits, &l);
	assert_int_equal(
		FEED(d,
		     "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"a\","
		     "\"delta\":\"123456\"}",
		     "{\"type\":\"response.output_text.delta\",\"item_id\":\"b\",\"delta\":\"1234\"}"),
		0);
	/* the bound is on all open items together: one more byte is over it */
	assert_int_equal(
		FEED(d, "{\"type\":\"response.output_text.delta\",\"item_id\":\"b\",\"delta\":\"5\"}"),
		-EMSGSIZE);
	assert_int_equal(FEED(d, COMPLETED), -EMSGSIZE);
	assert_int_equal(responses_decoder_finish(d), -EMSGSIZE);
	responses_decoder_free(d);

	/* a done item releases its bytes */
	Log l2 = { 0 };
	d = decoder(&limits, &l2);
	for (int i = 0; i < 5; i++)
		assert_int_equal(FEED(d,
				      "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":"
				      "\"a\",\"delta\":"
				      "\"1234567890\"}",
				      "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"function_"
				      "call\",\"id\":\"a\"}}"),
				 0);
	assert_int_equal(json_array_size(responses_decoder_output_items(d)), 5);
	responses_decoder_free(d);

	/* open and done item counts */
	ResponsesLimits few = { .max_open_items = 2, .max_done_items = 2 };
	Log l3 = { 0 };
	d = decoder(&few, &l3);
	assert_int_equal(FEED(d,
			      "{\"type\":\"response.output_text.delta\",\"item_id\":\"a\",\"delta\":\"x\"}",
			      "{\"type\":\"response.output_text.delta\",\"item_id\":\"b\",\"delta\":\"x\"}",
			      "{\"type\":\"response.output_text.delta\",\"item_id\":\"c\",\"delta\":\"x\"}"),
			 -EMSGSIZE);
	responses_decoder_free(d);
	Log l4 = { 0 };
	d = decoder(&few, &l4);
	assert_int_equal(FEED(d, "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\"}}",
			      "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\"}}",
			      "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\"}}"),
			 -EMSGSIZE);
	responses_decoder_free(d);

	/* the default: 8 MiB of deltas fit, one byte more does not */
	d = NULL;
	assert_int_equal(responses_decoder_new(NULL, NULL, NULL, &d), 0);
	size_t chunk = (size_t)1 << 20;
	char *ev = malloc(chunk + 128);
	assert_non_null(ev);
	int n = snprintf(
		ev, 128,
		"{\"type\":\"response.custom_tool_call_input.delta\",\"item_id\":\"p\",\"delta\":\"");
	memset(ev + n, 'x', chunk);
	strcpy(ev + n + chunk, "\"}");
	for (int i = 0; i < 8; i++)
		assert_int_equal(responses_decoder_event(d, NULL, ev, strlen(ev)), 0);
	static const char one[] =
		"{\"type\":\"response.custom_tool_call_input.delta\",\"item_id\":\"p\",\"delta\":\"y\"}";
	assert_int_equal(responses_decoder_event(d, NULL, one, sizeof(one) - 1), -EMSGSIZE);
	free(ev);
	responses_decoder_free(d);
}

static void test_callback_stops(void **state)
{
	(void)state;
	Log l = { .stop_rc = -EPIPE };
	ResponsesDecoder *d = decoder(NULL, &l);
	assert_int_equal(FEED(d, CREATED, COMPLETED), -EPIPE);
	assert_string_equal(l.text, "created resp-1\n");
	assert_int_equal(responses_decoder_finish(d), -EPIPE);
	responses_decoder_free(d);

	Log l2 = { .stop_rc = 1 };
	d = decoder(NULL, &l2);
	assert_int_equal(FEED(d, "{\"type\":\"response.output_text.delta\",\"delta\":\"x\"}"), -ECANCELED);
	responses_decoder_free(d);
}

/* The full path: raw SSE bytes, cut at every position, through sse.c into the decoder. */
static void test_raw_sse_through_parser(void **state)
{
	(void)state;
	static const char stream[] =
		"event: response.created\n"
		"data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp-1\"}}\n\n"
		": keep-alive\n\n"
		"event: response.output_item.added\r\n"
		"data: "
		"{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"message\",\"id\":\"msg-1\"}}"
		"\r\n\r\n"
		"event: response.output_text.delta\n"
		"data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"delta\":\"Do\"}\n\n"
		"event: response.output_text.delta\n"
		"data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"delta\":\"ne "
		"\\u00e9\"}\n\n"
		"event: response.output_item.done\n"
		"data: "
		"{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"role\":"
		"\"assistant\","
		"\"id\":\"msg-1\",\"content\":[{\"type\":\"output_text\",\"text\":\"Done \xc3\xa9\"}]}}\n\n"
		"event: response.output_item.done\n"
		"data: "
		"{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"function_call\",\"call_id\":"
		"\"call1\","
		"\"name\":\"shell_command\",\"arguments\":\"{\\\"command\\\":\\\"echo "
		"hi\\\",\\\"workdir\\\":null}\"}}\n\n"
		"event: response.completed\n"
		"data: "
		"{\"type\":\"response.completed\",\"response\":{\"id\":\"resp-1\",\"usage\":{\"input_"
		"tokens\":5,"
		"\"input_tokens_details\":null,\"output_tokens\":2,\"output_tokens_details\":null,\"total_"
		"tokens\":7}}}\n\n";
	static const char expected[] = "created resp-1\n"
				       "added 1 message id=msg-1 name=- call_id=- text=\n"
				       "text msg-1 [-1] 'Do' acc='Do'\n"
				       "text msg-1 [-1] 'ne \xc3\xa9' acc='Done \xc3\xa9'\n"
				       "done 1 message id=msg-1 name=- call_id=- text=Done \xc3\xa9\n"
				       "done 3 function_call id=- name=shell_command call_id=call1 "
				       "args={\"command\":\"echo hi\",\"workdir\":null}\n"
				       "completed resp-1 usage=yes\n";
	size_t len = sizeof(stream) - 1;
	for (size_t cut = 0; cut <= len; cut++) {
		Log l = { 0 };
		ResponsesDecoder *d = decoder(NULL, &l);
		SseParser *p = NULL;
		assert_int_equal(sse_parser_new(NULL, responses_decoder_on_sse, d, &p), 0);
		assert_int_equal(sse_parser_feed(p, stream, cut), 0);
		if (cut < len)
			assert_int_equal(responses_decoder_finish(d), RESPONSES_E_INCOMPLETE);
		assert_int_equal(sse_parser_feed(p, stream + cut, len - cut), 0);
		assert_int_equal(sse_parser_finish(p), 0);
		assert_string_equal(l.text, expected);
		assert_int_equal(l.usage.total_tokens, 7);
		assert_int_equal(responses_decoder_finish(d), 0);
		assert_int_equal(json_array_size(responses_decoder_output_items(d)), 2);
		sse_parser_free(p);
		responses_decoder_free(d);
	}

	/* a stream cut inside an event: the parser drops it, the decoder says incomplete */
	Log l = { 0 };
	ResponsesDecoder *d = decoder(NULL, &l);
	SseParser *p = NULL;
	assert_int_equal(sse_parser_new(NULL, responses_decoder_on_sse, d, &p), 0);
	const char *at = strstr(stream, "event: response.completed");
	assert_int_equal(sse_parser_feed(p, stream, (size_t)(at - stream) + 40), 0);
	assert_int_equal(sse_parser_finish(p), SSE_E_TRUNCATED);
	assert_int_equal(responses_decoder_finish(d), RESPONSES_E_INCOMPLETE);
	sse_parser_free(p);
	responses_decoder_free(d);

	/* malformed data through the parser stops the feed with the decoder's error */
	Log l2 = { 0 };
	d = decoder(NULL, &l2);
	assert_int_equal(sse_parser_new(NULL, responses_decoder_on_sse, d, &p), 0);
	static const char bad[] = "data: {\"type\":\"response.created\"\n\n";
	assert_int_equal(sse_parser_feed(p, bad, sizeof(bad) - 1), -EBADMSG);
	assert_int_equal(sse_parser_finish(p), -EBADMSG);
	assert_int_equal(responses_decoder_finish(d), -EBADMSG);
	sse_parser_free(p);
	responses_decoder_free(d);
}

static void test_new_and_free(void **state)
{
	(void)state;
	assert_int_equal(responses_decoder_new(NULL, NULL, NULL, NULL), -EINVAL);
	responses_decoder_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_in_many_deltas),
		cmocka_unit_test(test_reasoning_and_function_call),
		cmocka_unit_test(test_arguments_accumulated_when_done_has_none),
		cmocka_unit_test(test_usage),
		cmocka_unit_test(test_failed_usage_limit),
		cmocka_unit_test(test_failed_codes),
		cmocka_unit_test(test_error_event),
		cmocka_unit_test(test_malformed_data),
		cmocka_unit_test(test_unknown_events_ignored),
		cmocka_unit_test(test_cut_before_completed),
		cmocka_unit_test(test_size_caps),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_raw_sse_through_parser),
		cmocka_unit_test(test_new_and_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
