/* SPDX-License-Identifier: MIT */
/* sse_test.c - cmocka tests for the event-stream parser: the spec's examples and the edge cases
 * of its processing model, each fed whole, byte by byte, split at every position and at random
 * positions, which must all give the same events; then the bounds, the callback's stop, the end
 * of a stream and what allocation a steady stream costs (realloc is wrapped to count it). */
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

#include "sse.h"

/* ---- realloc, counted (linked with -Wl,--wrap=realloc) ----------------------------------------- */

void *__real_realloc(void *ptr, size_t size);
void *__wrap_realloc(void *ptr, size_t size);

static size_t realloc_calls;
static size_t realloc_max_bytes;
static size_t realloc_fail_at; /* the call, counting from 1, that fails; 0: none */

void *__wrap_realloc(void *ptr, size_t size)
{
	realloc_calls++;
	if (size > realloc_max_bytes)
		realloc_max_bytes = size;
	if (realloc_fail_at && realloc_calls == realloc_fail_at)
		return NULL;
	return __real_realloc(ptr, size);
}

static void realloc_count_reset(void)
{
	realloc_calls = realloc_max_bytes = realloc_fail_at = 0;
}

/* ---- what a parse produced ----------------------------------------------------------------------- */

typedef struct Got {
	char *type;
	size_t type_len;
	char *data;
	size_t data_len;
	char *id;
} Got;

typedef struct Outcome {
	Got *ev;
	size_t n, cap;
	size_t stop_after; /* the callback answers stop_rc once this many events arrived; 0: never */
	int stop_rc;
	int feed_rc; /* the first non-zero feed, or 0 */
	int finish_rc;
	bool has_retry;
	uint64_t retry_ms;
	char *last_id;
} Outcome;

static char *dup_bytes(const char *bytes, size_t len)
{
	char *copy = malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, bytes, len);
	copy[len] = '\0';
	return copy;
}

static int on_event(void *ctx, const SseEvent *e)
{
	Outcome *o = ctx;
	/* the parser's promises about every event */
	assert_true(e->type_len > 0);
	assert_int_equal(e->type[e->type_len], '\0');
	assert_int_equal(e->data[e->data_len], '\0');
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->ev = __real_realloc(o->ev, o->cap * sizeof(*o->ev));
		assert_non_null(o->ev);
	}
	Got *g = &o->ev[o->n++];
	g->type = dup_bytes(e->type, e->type_len);
	g->type_len = e->type_len;
	g->data = dup_bytes(e->data, e->data_len);
	g->data_len = e->data_len;
	g->id = dup_bytes(e->last_id, strlen(e->last_id));
	return o->stop_after && o->n >= o->stop_after ? o->stop_rc : 0;
}

static void outcome_free(Outcome *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->ev[i].type);
		free(o->ev[i].data);
		free(o->ev[i].id);
	}
	free(o->ev);
	free(o->last_id);
	o->ev = NULL;
	o->n = o->cap = 0;
	o->last_id = NULL;
}

/* Feeds @input cut at the @n_cuts ascending offsets in @cuts, each piece an exactly-sized heap
 * copy so ASan sees a read past it, then finishes. The first failing feed ends the stream. */
static void parse_cut(const SseLimits *limits, const char *input, size_t len, const size_t *cuts,
		      size_t n_cuts, Outcome *o)
{
	SseParser *p = NULL;
	assert_int_equal(sse_parser_new(limits, on_event, o, &p), 0);
	size_t from = 0;
	for (size_t i = 0; i <= n_cuts && o->feed_rc == 0; i++) {
		size_t to = i < n_cuts ? cuts[i] : len;
		size_t n = to - from;
		char *piece = malloc(n ? n : 1);
		assert_non_null(piece);
		memcpy(piece, input + from, n);
		o->feed_rc = sse_parser_feed(p, piece, n);
		free(piece);
		from = to;
	}
	o->has_retry = sse_parser_retry_ms(p, &o->retry_ms);
	const char *last_id = sse_parser_last_id(p);
	o->last_id = dup_bytes(last_id, strlen(last_id));
	o->finish_rc = sse_parser_finish(p);
	sse_parser_free(p);
}

static void parse_whole(const SseLimits *limits, const char *input, size_t len, Outcome *o)
{
	parse_cut(limits, input, len, NULL, 0, o);
}

static void parse_bytewise(const SseLimits *limits, const char *input, size_t len, Outcome *o)
{
	size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	parse_cut(limits, input, len, cuts, len ? len - 1 : 0, o);
	free(cuts);
}

/* xorshift64*: the random cuts are the same on every run, so a failure names its seed. */
static uint64_t rng_next(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ull;
}

/* Up to 8 random cuts, ascending; repeats make empty feeds, which must change nothing. */
static size_t random_cuts(uint64_t *rng, size_t len, size_t cuts[8])
{
	size_t n = (size_t)(rng_next(rng) % 9);
	for (size_t i = 0; i < n; i++)
		cuts[i] = len ? (size_t)(rng_next(rng) % (len + 1)) : 0;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			size_t t = cuts[j];
			cuts[j] = cuts[j - 1];
			cuts[j - 1] = t;
		}
	return n;
}

static void outcome_expect_same(const Outcome *want, const Outcome *got, const char *what)
{
	if (got->n != want->n)
		fail_msg("%s: %zu events, want %zu", what, got->n, want->n);
	for (size_t i = 0; i < want->n; i++) {
		const Got *w = &want->ev[i], *g = &got->ev[i];
		if (g->type_len != w->type_len || memcmp(g->type, w->type, w->type_len) != 0 ||
		    g->data_len != w->data_len || memcmp(g->data, w->data, w->data_len) != 0 ||
		    strcmp(g->id, w->id) != 0)
			fail_msg("%s: event %zu is %s/%zu/%s, want %s/%zu/%s", what, i, g->type, g->data_len,
				 g->id, w->type, w->data_len, w->id);
	}
	if (got->feed_rc != want->feed_rc || got->finish_rc != want->finish_rc)
		fail_msg("%s: feed %d finish %d, want %d %d", what, got->feed_rc, got->finish_rc,
			 want->feed_rc, want->finish_rc);
	if (got->has_retry != want->has_retry || (want->has_retry && got->retry_ms != want->retry_ms))
		fail_msg("%s: retry %d/%" PRIu64 ", want %d/%" PRIu64, what, got->has_retry, got->retry_ms,
			 want->has_retry, want->retry_ms);
	if (strcmp(got->last_id, want->last_id) != 0)
		fail_msg("%s: last id \"%s\", want \"%s\"", what, got->last_id, want->last_id);
}

/* Every way of cutting @input into feeds gives @want: byte by byte, at each single position, and
 * @n_random random cuttings. */
static void expect_every_cutting(const SseLimits *limits, const char *input, size_t len, const Outcome *want,
				 const char *name, uint64_t seed, size_t n_random)
{
	char what[160];
	Outcome got = { .stop_after = want->stop_after, .stop_rc = want->stop_rc };
	parse_bytewise(limits, input, len, &got);
	snprintf(what, sizeof(what), "%s, byte by byte", name);
	outcome_expect_same(want, &got, what);
	outcome_free(&got);
	for (size_t cut = 0; cut <= len; cut++) {
		Outcome split = { .stop_after = want->stop_after, .stop_rc = want->stop_rc };
		parse_cut(limits, input, len, &cut, 1, &split);
		snprintf(what, sizeof(what), "%s, cut at %zu", name, cut);
		outcome_expect_same(want, &split, what);
		outcome_free(&split);
	}
	uint64_t rng = seed;
	for (size_t k = 0; k < n_random; k++) {
		size_t cuts[8];
		size_t n = random_cuts(&rng, len, cuts);
		Outcome random = { .stop_after = want->stop_after, .stop_rc = want->stop_rc };
		parse_cut(limits, input, len, cuts, n, &random);
		snprintf(what, sizeof(what), "%s, random cutting %zu (seed %#" PRIx64 ")", name, k, seed);
		outcome_expect_same(want, &random, what);
		outcome_free(&random);
	}
}

/* ---- the table --------------------------------------------------------------------------------- */

typedef struct Want {
	const char *type; /* NULL ends the list */
	size_t type_len;
	const char *data;
	size_t data_len;
	const char *id;
} Want;

typedef struct SseCase {
	const char *name;
	const char *input;
	size_t input_len;
	int finish_rc;
	bool has_retry;
	uint64_t retry_ms;
	const char *last_id; /* after the stream; NULL: "" */
	Want want[8];
} SseCase;

#define IN(s) .input = (s), .input_len = sizeof(s) - 1
#define EV(type, data, id)                                                                                   \
	{                                                                                                    \
		type, sizeof(type) - 1, data, sizeof(data) - 1, id                                           \
	}
#define RETRY(ms) .has_retry = true, .retry_ms = (ms)
#define FFFD "\xEF\xBF\xBD"
#define BOM "\xEF\xBB\xBF"

static const SseCase sse_cases[] = {
	/* the examples of WHATWG HTML §9.2.6 */
	{ "spec: three data lines", IN("data: YHOO\ndata: +2\ndata: 10\n\n"),
	  .want = { EV("message", "YHOO\n+2\n10", "") } },
	{ "spec: four blocks with ids",
	  IN(": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"),
	  .want = { EV("message", "first event", "1"), EV("message", "second event", ""),
		    EV("message", " third event", "") } },
	{ "spec: empty data, and a last block cut off", IN("data\n\ndata\ndata\n\ndata:"),
	  .finish_rc = SSE_E_TRUNCATED, .want = { EV("message", "", ""), EV("message", "\n", "") } },
	{ "spec: one space after the colon is dropped", IN("data:test\n\ndata: test\n\n"),
	  .want = { EV("message", "test", ""), EV("message", "test", "") } },
	{ "spec: event types",
	  IN("event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"),
	  .want = { EV("add", "73857293", ""), EV("remove", "2153", ""), EV("add", "113411", "") } },
	/* line ends */
	{ "CRLF", IN("data: a\r\ndata: b\r\n\r\n"), .want = { EV("message", "a\nb", "") } },
	{ "CR alone", IN("data: a\rdata: b\r\r"), .want = { EV("message", "a\nb", "") } },
	{ "LF, CR and CRLF mixed", IN("data: a\ndata: b\rdata: c\r\n\r\n"),
	  .want = { EV("message", "a\nb\nc", "") } },
	{ "CR CR is two line ends", IN("data: a\r\rdata: b\r\r"),
	  .want = { EV("message", "a", ""), EV("message", "b", "") } },
	{ "LF CR is two line ends", IN("data: a\n\rdata: b\n\n"),
	  .want = { EV("message", "a", ""), EV("message", "b", "") } },
	{ "CRLF then CR", IN("data: a\r\n\rdata: b\r\n\r\n"),
	  .want = { EV("message", "a", ""), EV("message", "b", "") } },
	{ "CR LF LF dispatches", IN("data: a\r\n\n"), .want = { EV("message", "a", "") } },
	{ "blank lines alone dispatch nothing", IN("\n\r\n\r\n\r\r"), .want = { { NULL } } },
	{ "empty stream", IN(""), .want = { { NULL } } },
	/* the BOM */
	{ "leading BOM skipped", IN(BOM "data: x\n\n"), .want = { EV("message", "x", "") } },
	{ "BOM before a comment", IN(BOM ": hi\ndata: x\n\n"), .want = { EV("message", "x", "") } },
	{ "BOM before a blank line", IN(BOM "\ndata: x\n\n"), .want = { EV("message", "x", "") } },
	{ "only one BOM skipped", IN(BOM BOM "data: x\n\ndata: y\n\n"), .want = { EV("message", "y", "") } },
	{ "BOM later is data", IN("data: x\n\ndata: " BOM "y\n\n"),
	  .want = { EV("message", "x", ""), EV("message", BOM "y", "") } },
	{ "BOM at the start of a later line is part of the name", IN("data: x\n" BOM "data: y\n\n"),
	  .want = { EV("message", "x", "") } },
	{ "half a BOM is a broken sequence",
	  IN("\xEF\xBB"
	     "data: x\n\ndata: y\n\n"),
	  .want = { EV("message", "y", "") } },
	{ "BOM alone", IN(BOM), .want = { { NULL } } },
	/* comments and fields */
	{ "comments between fields", IN(":c1\ndata: a\n: c2\ndata: b\n:\n\n"),
	  .want = { EV("message", "a\nb", "") } },
	{ "comments alone", IN(": keep-alive\n\n: keep-alive\n"), .want = { { NULL } } },
	{ "a line without colon is a field without value", IN("data\ndata\n\n"),
	  .want = { EV("message", "\n", "") } },
	{ "event without value is message", IN("event\ndata: x\n\n"), .want = { EV("message", "x", "") } },
	{ "event with empty value is message", IN("event:\ndata: x\n\n"),
	  .want = { EV("message", "x", "") } },
	{ "only one space dropped", IN("data:   x \n\n"), .want = { EV("message", "  x ", "") } },
	{ "a lone space is dropped", IN("data: \ndata:  \n\n"), .want = { EV("message", "\n ", "") } },
	{ "a tab is kept", IN("data:\tx\n\n"), .want = { EV("message", "\tx", "") } },
	{ "colons after the first are value", IN("data: a:b\ndata::c\n\n"),
	  .want = { EV("message", "a:b\n:c", "") } },
	{ "field names are case-sensitive", IN("Data: x\nDATA: y\nEvent: e\n\ndata: z\n\n"),
	  .want = { EV("message", "z", "") } },
	{ "space before the colon makes another name", IN("data : x\n data: y\n\n"), .want = { { NULL } } },
	{ "unknown fields ignored", IN("foo: bar\ndata: x\nbaz\n\n"), .want = { EV("message", "x", "") } },
	{ "event type is per event", IN("event: a\ndata: 1\n\ndata: 2\n\n"),
	  .want = { EV("a", "1", ""), EV("message", "2", "") } },
	{ "last event field wins", IN("event: a\nevent: b\ndata: 1\n\n"), .want = { EV("b", "1", "") } },
	{ "event without data is dropped, type with it", IN("event: a\n\ndata: 2\n\n"),
	  .want = { EV("message", "2", "") } },
	{ "NUL in data kept", IN("data: a\0b\n\n"), .want = { EV("message", "a\0b", "") } },
	{ "NUL in an event type kept, type_len says so", IN("event: a\0b\ndata: x\n\n"),
	  .want = { EV("a\0b", "x", "") } },
	/* id */
	{ "id persists across events", IN("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"),
	  .want = { EV("message", "a", "1"), EV("message", "b", "1"), EV("message", "c", "") } },
	{ "id after data in the same block", IN("data: a\nid: 9\n\n"), .last_id = "9",
	  .want = { EV("message", "a", "9") } },
	{ "id with NUL ignored", IN("id: 1\ndata: a\n\nid: 2\0003\ndata: b\n\n"), .last_id = "1",
	  .want = { EV("message", "a", "1"), EV("message", "b", "1") } },
	{ "id committed by a block without data", IN("id: 7\n\n"), .last_id = "7", .want = { { NULL } } },
	{ "id not committed without a blank line", IN("id: 1\ndata: a\n\nid: 2\n"),
	  .finish_rc = SSE_E_TRUNCATED, .last_id = "1", .want = { EV("message", "a", "1") } },
	{ "id keeps its spaces but one", IN("id:  a b \ndata: x\n\n"), .last_id = " a b ",
	  .want = { EV("message", "x", " a b ") } },
	/* retry */
	{ "retry", IN("retry: 1500\n\n"), RETRY(1500), .want = { { NULL } } },
	{ "retry zero", IN("retry:0\n\n"), RETRY(0), .want = { { NULL } } },
	{ "retry with leading zeros", IN("retry: 007\n\n"), RETRY(7), .want = { { NULL } } },
	{ "retry largest", IN("retry: 18446744073709551615\n\n"), RETRY(UINT64_MAX), .want = { { NULL } } },
	{ "retry overflowing ignored", IN("retry: 18446744073709551616\n\n"), .want = { { NULL } } },
	{ "retry not digits ignored", IN("retry: 15x\n\nretry: -1\n\nretry: 1.5\n\nretry:  2\n\n"),
	  .want = { { NULL } } },
	{ "retry empty ignored", IN("retry\n\nretry:\n\n"), .want = { { NULL } } },
	{ "retry later wins, an invalid one leaves it", IN("retry: 10\nretry: 20\nretry: x\n\n"), RETRY(20),
	  .want = { { NULL } } },
	{ "retry needs no blank line", IN("data: a\n\nretry: 5\n"), RETRY(5), .finish_rc = SSE_E_TRUNCATED,
	  .want = { EV("message", "a", "") } },
	/* UTF-8: valid sequences pass, each broken one becomes one U+FFFD and never eats a line end */
	{ "UTF-8 passes", IN("data: h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\n\n"),
	  .want = { EV("message", "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "") } },
	{ "invalid byte",
	  IN("data: a\xFF"
	     "b\n\n"),
	  .want = { EV("message", "a" FFFD "b", "") } },
	{ "lone continuation bytes", IN("data: \x80\xBF\n\n"), .want = { EV("message", FFFD FFFD, "") } },
	{ "sequence cut by a line end", IN("data: \xE2\x82\n\n"), .want = { EV("message", FFFD, "") } },
	{ "sequence cut by CR", IN("data: \xF0\x9F\x98\rdata: b\r\r"),
	  .want = { EV("message", FFFD "\nb", "") } },
	{ "sequence cut by ASCII", IN("data: \xE2\x82x\n\n"), .want = { EV("message", FFFD "x", "") } },
	{ "sequence cut by another lead", IN("data: \xE2\xC3\xA9\n\n"),
	  .want = { EV("message", FFFD "\xC3\xA9", "") } },
	{ "overlong", IN("data: \xC0\xAF\xE0\x80\xAF\n\n"),
	  .want = { EV("message", FFFD FFFD FFFD FFFD FFFD, "") } },
	{ "surrogate", IN("data: \xED\xA0\x80\n\n"), .want = { EV("message", FFFD FFFD FFFD, "") } },
	{ "past U+10FFFF", IN("data: \xF4\x90\x80\x80\n\n"),
	  .want = { EV("message", FFFD FFFD FFFD FFFD, "") } },
	{ "largest code point", IN("data: \xF4\x8F\xBF\xBF\n\n"),
	  .want = { EV("message", "\xF4\x8F\xBF\xBF", "") } },
	{ "broken sequence in a field name",
	  IN("dat\xE1"
	     "a: x\n\n"),
	  .want = { { NULL } } },
	/* the end of the stream */
	{ "cut inside a data line", IN("data: a\n\ndata: b"), .finish_rc = SSE_E_TRUNCATED,
	  .want = { EV("message", "a", "") } },
	{ "cut after a data line", IN("data: a\n\ndata: b\n"), .finish_rc = SSE_E_TRUNCATED,
	  .want = { EV("message", "a", "") } },
	{ "cut after a CR", IN("data: a\r"), .finish_rc = SSE_E_TRUNCATED, .want = { { NULL } } },
	{ "cut after an unknown field", IN("foo\n"), .finish_rc = SSE_E_TRUNCATED, .want = { { NULL } } },
	{ "cut inside a sequence", IN("\xE2\x82"), .finish_rc = SSE_E_TRUNCATED, .want = { { NULL } } },
	{ "cut inside a comment is no event", IN("data: a\n\n: keep"), .want = { EV("message", "a", "") } },
	{ "ends with CR after a blank line", IN("data: a\r\r"), .want = { EV("message", "a", "") } },
};

/* The table's expectation in the form parse_cut() records. */
static void outcome_from_case(const SseCase *c, Outcome *o)
{
	memset(o, 0, sizeof(*o));
	for (const Want *w = c->want; w->type; w++) {
		SseEvent e = { w->type, w->type_len, w->data, w->data_len, w->id };
		on_event(o, &e);
	}
	o->finish_rc = c->finish_rc;
	o->has_retry = c->has_retry;
	o->retry_ms = c->retry_ms;
	o->last_id = dup_bytes(c->last_id ? c->last_id : "", strlen(c->last_id ? c->last_id : ""));
}

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(sse_cases) / sizeof(sse_cases[0]); i++) {
		const SseCase *c = &sse_cases[i];
		Outcome want, whole = { 0 };
		outcome_from_case(c, &want);
		parse_whole(NULL, c->input, c->input_len, &whole);
		outcome_expect_same(&want, &whole, c->name);
		expect_every_cutting(NULL, c->input, c->input_len, &want, c->name, 0x5EED0000u + i, 64);
		outcome_free(&whole);
		outcome_free(&want);
	}
}

/* A CR that ends one feed and the LF that starts the next are one line end: were they two, the
 * empty line between would dispatch "a" alone. */
static void test_cr_and_lf_in_two_feeds_are_one_line_end(void **state)
{
	(void)state;
	static const char *const feeds[] = { "data: a\r", "\ndata: b\r", "\n" };
	Outcome o = { 0 };
	SseParser *p = NULL;
	assert_int_equal(sse_parser_new(NULL, on_event, &o, &p), 0);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(sse_parser_feed(p, feeds[i], strlen(feeds[i])), 0);
		assert_int_equal(o.n, 0);
	}
	assert_int_equal(sse_parser_feed(p, "\r", 1), 0); /* the blank line */
	assert_int_equal(o.n, 1);
	assert_string_equal(o.ev[0].data, "a\nb");
	assert_int_equal(sse_parser_feed(p, "\n", 1), 0); /* the rest of its CRLF */
	assert_int_equal(o.n, 1);
	assert_int_equal(sse_parser_finish(p), 0);
	sse_parser_free(p);
	outcome_free(&o);
}

/* ---- a Responses API stream -------------------------------------------------------------------- */

#define RESP_CREATED "{\"type\":\"response.created\",\"response\":{\"id\":\"resp-1\"}}"
#define RESP_ADDED                                                                                           \
	"{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"message\",\"role\":\"assistant\","    \
	"\"id\":\"msg-1\",\"content\":[]}}"
#define RESP_DELTA1 "{\"type\":\"response.output_text.delta\",\"delta\":\"Hel\"}"
#define RESP_DELTA2 "{\"type\":\"response.output_text.delta\",\"delta\":\"lo, w\\u00f6rld \xE2\x82\xAC\\n\"}"
#define RESP_DONE                                                                                            \
	"{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"role\":\"assistant\","     \
	"\"id\":\"msg-1\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello, w\\u00f6rld "             \
	"\xE2\x82\xAC\\n\"}]}}"
#define RESP_COMPLETED                                                                                       \
	"{\"type\":\"response.completed\",\"response\":{\"id\":\"resp-1\",\"usage\":{\"input_tokens\":12,"   \
	"\"input_tokens_details\":null,\"output_tokens\":5,\"output_tokens_details\":null,\"total_tokens\":" \
	"17}}}"

/* As codex's mock server frames it (event line, data line, blank line), with the keep-alive
 * comment and CRLF line ends a proxy may add. */
static const char responses_stream[] = "event: response.created\r\ndata: " RESP_CREATED "\r\n\r\n"
				       ": keep-alive\r\n\r\n"
				       "event: response.output_item.added\r\ndata: " RESP_ADDED "\r\n\r\n"
				       "event: response.output_text.delta\r\ndata: " RESP_DELTA1 "\r\n\r\n"
				       "event: response.output_text.delta\r\ndata: " RESP_DELTA2 "\r\n\r\n"
				       "event: response.output_item.done\r\ndata: " RESP_DONE "\r\n\r\n"
				       "event: response.completed\r\ndata: " RESP_COMPLETED "\r\n\r\n";

static const SseCase responses_case = {
	"Responses API stream",
	IN(responses_stream),
	.want = { EV("response.created", RESP_CREATED, ""), EV("response.output_item.added", RESP_ADDED, ""),
		  EV("response.output_text.delta", RESP_DELTA1, ""),
		  EV("response.output_text.delta", RESP_DELTA2, ""),
		  EV("response.output_item.done", RESP_DONE, ""),
		  EV("response.completed", RESP_COMPLETED, "") },
};

static void test_responses_stream(void **state)
{
	(void)state;
	Outcome want, whole = { 0 };
	outcome_from_case(&responses_case, &want);
	parse_whole(NULL, responses_case.input, responses_case.input_len, &whole);
	outcome_expect_same(&want, &whole, responses_case.name);
	expect_every_cutting(NULL, responses_case.input, responses_case.input_len, &want, responses_case.name,
			     0xC0DE5u, 256);
	outcome_free(&whole);
	outcome_free(&want);
}

/* The stream cut after every byte. Each block ends in "\r\n\r\n" and its event is dispatched at
 * the CR of the blank line; finish() says "truncated" exactly when the cut fell inside an event
 * block before that CR, never inside the keep-alive comment block. */
static void test_responses_stream_cut_anywhere(void **state)
{
	(void)state;
	const char *s = responses_case.input;
	size_t len = responses_case.input_len;
	for (size_t cut = 0; cut <= len; cut++) {
		size_t want_events = 0;
		int want_finish = 0;
		for (size_t start = 0, end; start < len; start = end) {
			end = (size_t)(strstr(s + start, "\r\n\r\n") - s) + 4;
			bool is_comment = s[start] == ':';
			if (!is_comment && cut >= end - 1)
				want_events++;
			if (!is_comment && cut > start && cut < end - 1)
				want_finish = SSE_E_TRUNCATED;
		}
		Outcome o = { 0 };
		parse_whole(NULL, s, cut, &o);
		if (o.n != want_events || o.feed_rc != 0 || o.finish_rc != want_finish)
			fail_msg("cut at %zu: %zu events, finish %d; want %zu, %d", cut, o.n, o.finish_rc,
				 want_events, want_finish);
		outcome_free(&o);
	}
}

/* ---- random streams ----------------------------------------------------------------------------- */

/* Pieces that meet at every interesting seam: names, colons, spaces, line ends of each kind, NUL,
 * the BOM and whole, partial and invalid UTF-8. */
static const char *const fuzz_tokens[] = {
	"data",		"event",  "id",		  "retry", ":",	   " ",	   "x",
	"yz",		"9",	  "\r",		  "\n",	   "\r\n", "\n\n", "\r\r",
	"\0",		BOM,	  "\xE2\x82\xAC", "\xE2",  "\x82", "\xFF", "\xF0\x9F\x98\x80",
	"\xED\xA0\x80", "data: ", "\n:c\n",
};

static size_t fuzz_stream(uint64_t *rng, char *out, size_t cap)
{
	size_t len = 0;
	size_t n_tokens = 1 + (size_t)(rng_next(rng) % 48);
	for (size_t i = 0; i < n_tokens; i++) {
		size_t t = (size_t)(rng_next(rng) % (sizeof(fuzz_tokens) / sizeof(fuzz_tokens[0])));
		const char *tok = fuzz_tokens[t];
		size_t tok_len = tok[0] ? strlen(tok) : 1; /* the "\0" token is one NUL byte */
		if (len + tok_len > cap)
			break;
		memcpy(out + len, tok, tok_len);
		len += tok_len;
	}
	return len;
}

/* Random streams under small bounds, so some end in -EMSGSIZE and some in a stop from the
 * callback: every cutting must give what the whole stream gave, error and all. */
static void test_random_streams_any_cutting(void **state)
{
	(void)state;
	const uint64_t seed = 0xF00DFACEu;
	uint64_t rng = seed;
	char stream[512];
	for (size_t k = 0; k < 400; k++) {
		size_t len = fuzz_stream(&rng, stream, sizeof(stream));
		SseLimits limits = { .max_event_bytes = 8 + (size_t)(rng_next(&rng) % 40),
				     .max_line_bytes = 8 + (size_t)(rng_next(&rng) % 40) };
		Outcome whole = { 0 };
		if (k % 5 == 0) {
			whole.stop_after = 1 + (size_t)(rng_next(&rng) % 3);
			whole.stop_rc = k % 10 == 0 ? 1 : -EIO;
		}
		parse_whole(&limits, stream, len, &whole);
		char name[64];
		snprintf(name, sizeof(name), "random stream %zu of seed %#" PRIx64, k, seed);
		expect_every_cutting(&limits, stream, len, &whole, name, rng_next(&rng), 16);
		outcome_free(&whole);
	}
}

/* ---- bounds -------------------------------------------------------------------------------------- */

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A line of exactly the bound is read; one byte more fails, the failure sticks until finish(),
 * and after it the parser reads a new stream. */
static void test_line_bound(void **state)
{
	(void)state;
	const SseLimits limits = { .max_event_bytes = 100, .max_line_bytes = 16 };
	Outcome o = { 0 };
	SseParser *p = NULL;
	assert_int_equal(sse_parser_new(&limits, on_event, &o, &p), 0);
	assert_int_equal(sse_parser_feed(p, "data: 0123456789\n\n", 18), 0); /* 16 bytes */
	assert_int_equal(o.n, 1);
	assert_int_equal(sse_parser_feed(p, ": 3456789abcdefg", 16), 0);
	assert_int_equal(sse_parser_feed(p, "h", 1), -EMSGSIZE); /* comments are bounded too */
	assert_int_equal(sse_parser_feed(p, "\n\ndata: x\n\n", 11), -EMSGSIZE);
	assert_int_equal(o.n, 1);
	assert_int_equal(sse_parser_finish(p), -EMSGSIZE);
	assert_int_equal(sse_parser_feed(p, "data: x\n\n", 9), 0);
	assert_int_equal(o.n, 2);
	assert_int_equal(sse_parser_finish(p), 0);
	sse_parser_free(p);
	outcome_free(&o);

	/* a U+FFFD is three bytes of the line */
	o = (Outcome){ 0 };
	const SseLimits tight = { .max_line_bytes = 8 };
	assert_int_equal(sse_parser_new(&tight, on_event, &o, &p), 0);
	assert_int_equal(sse_parser_feed(p, "data:\xFF", 6), 0);
	assert_int_equal(sse_parser_feed(p, "\xFF", 1), -EMSGSIZE);
	sse_parser_free(p);
	outcome_free(&o);
}

/* The data of an event is bounded across its lines; the "\n" after the last line does not count. */
static void test_event_bound(void **state)
{
	(void)state;
	const SseLimits limits = { .max_event_bytes = 10, .max_line_bytes = 64 };
	static const char fits[] = "data: 12345\ndata: 6789\n\n";	/* "12345\n6789": 10 */
	static const char over[] = "data: 12345\ndata: 6789\ndata\n\n"; /* one "\n" more: 11 */
	Outcome o = { 0 };
	parse_whole(&limits, fits, sizeof(fits) - 1, &o);
	assert_int_equal(o.feed_rc, 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.ev[0].data_len, 10);
	outcome_free(&o);
	Outcome want = { .feed_rc = -EMSGSIZE, .finish_rc = -EMSGSIZE, .last_id = dup_bytes("", 0) };
	expect_every_cutting(&limits, over, sizeof(over) - 1, &want, "event one byte over", 0xB16u, 32);
	outcome_free(&want);
}

/* However much arrives without a line end, memory stops at the bound. */
static void test_bound_never_buffers_past_it(void **state)
{
	(void)state;
	static const size_t bounds[] = { 1, 255, 256, 4096, 100000 };
	const size_t total = 1 << 20;
	char *flood = repeat('x', total);
	for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++) {
		for (size_t chunk = 1; chunk <= total; chunk *= 64) {
			const SseLimits limits = { .max_line_bytes = bounds[b] };
			SseParser *p = NULL;
			Outcome o = { 0 };
			assert_int_equal(sse_parser_new(&limits, on_event, &o, &p), 0);
			realloc_count_reset();
			int rc = 0;
			size_t fed = 0;
			for (size_t off = 0; off < total && rc == 0; off += chunk, fed += chunk)
				rc = sse_parser_feed(p, flood + off,
						     chunk < total - off ? chunk : total - off);
			assert_int_equal(rc, -EMSGSIZE);
			assert_true(fed <= bounds[b] + chunk); /* it failed at the feed that crossed */
			assert_true(realloc_max_bytes <= bounds[b] + 1);
			sse_parser_free(p);
		}
	}
	/* and a data event over its bound, in long lines that each fit */
	const SseLimits limits = { .max_event_bytes = 5000, .max_line_bytes = 1000 };
	SseParser *p = NULL;
	Outcome o = { 0 };
	assert_int_equal(sse_parser_new(&limits, on_event, &o, &p), 0);
	realloc_count_reset();
	char line[1000];
	memcpy(line, "data:", 5);
	memset(line + 5, 'y', sizeof(line) - 6);
	line[sizeof(line) - 1] = '\n';
	int rc = 0;
	for (size_t i = 0; i < 100 && rc == 0; i++)
		rc = sse_parser_feed(p, line, sizeof(line));
	assert_int_equal(rc, -EMSGSIZE);
	assert_true(realloc_max_bytes <= 5002); /* the data buffer: the bound, a final "\n", a NUL */
	assert_int_equal(o.n, 0);
	sse_parser_free(p);
	free(flood);
}

/* @lines data lines of @value_len bytes, the last @extra longer, then the blank line. */
static char *data_lines(size_t lines, size_t value_len, size_t extra, size_t *len)
{
	char *s = malloc(lines * (value_len + 6) + extra + 2); /* the last line's extra, the blank line */
	assert_non_null(s);
	*len = 0;
	for (size_t i = 0; i < lines; i++) {
		size_t n = value_len + (i + 1 == lines ? extra + 1 : 0);
		memcpy(s + *len, "data:", 5);
		memset(s + *len + 5, 'q', n);
		s[*len + 5 + n] = '\n';
		*len += n + 6;
	}
	s[(*len)++] = '\n';
	return s;
}

/* With no limits given an event may hold 16 MiB, and its one data line then may not: the line
 * bound counts the "data: " too. */
static void test_default_bounds(void **state)
{
	(void)state;
	const size_t max = SSE_DEFAULT_MAX_EVENT_BYTES;
	char *big = malloc(max + 8);
	assert_non_null(big);
	memcpy(big, "data:", 5);
	memset(big + 5, 'z', max - 5);
	memcpy(big + max, "\n\n", 2);
	Outcome o = { 0 };
	parse_whole(NULL, big, max + 2, &o); /* a line of exactly the bound */
	assert_int_equal(o.feed_rc, 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.ev[0].data_len, max - 5);
	outcome_free(&o);
	big[max] = 'z'; /* one byte longer */
	memcpy(big + max + 1, "\n\n", 2);
	o = (Outcome){ 0 };
	parse_whole(NULL, big, max + 3, &o);
	assert_int_equal(o.feed_rc, -EMSGSIZE);
	outcome_free(&o);
	/* 16 MiB over 1024 data lines (each "\n" between them is data) is an event; a byte more is not */
	for (size_t extra = 0; extra <= 1; extra++) {
		size_t len = 0;
		char *many = data_lines(1024, max / 1024 - 1, extra, &len);
		o = (Outcome){ 0 };
		parse_whole(NULL, many, len, &o);
		assert_int_equal(o.feed_rc, extra ? -EMSGSIZE : 0);
		assert_int_equal(o.n, extra ? 0 : 1);
		if (!extra)
			assert_int_equal(o.ev[0].data_len, max);
		outcome_free(&o);
		free(many);
	}
	free(big);
}

/* ---- allocation ------------------------------------------------------------------------------- */

/* Once the buffers fit the biggest event, a long stream of events allocates nothing more. */
static void test_steady_state_allocates_nothing(void **state)
{
	(void)state;
	static const char event[] =
		"event: response.output_text.delta\nid: 12\n"
		"data: {\"type\":\"response.output_text.delta\",\"delta\":\"chunk of text\"}\n\n";
	Outcome o = { 0 };
	SseParser *p = NULL;
	assert_int_equal(sse_parser_new(NULL, on_event, &o, &p), 0);
	assert_int_equal(sse_parser_feed(p, event, sizeof(event) - 1), 0);
	assert_int_equal(sse_parser_feed(p, ": warm\n", 7), 0);
	realloc_count_reset();
	for (size_t i = 0; i < 1000; i++) {
		assert_int_equal(sse_parser_feed(p, event, sizeof(event) - 1), 0);
		assert_int_equal(sse_parser_feed(p, ": keep-alive\n", 13), 0);
	}
	assert_int_equal(realloc_calls, 0);
	assert_int_equal(o.n, 1001);
	assert_int_equal(sse_parser_finish(p), 0);
	sse_parser_free(p);
	outcome_free(&o);
}

/* An allocation failure is an error of the stream like any other: reported, sticky, leak-free. */
static void test_allocation_failure(void **state)
{
	(void)state;
	static const char stream[] = "event: e\nid: 1\ndata: a\n\n";
	size_t fail_at;
	for (fail_at = 1;; fail_at++) {
		Outcome o = { 0 };
		SseParser *p = NULL;
		assert_int_equal(sse_parser_new(NULL, on_event, &o, &p), 0);
		realloc_count_reset();
		realloc_fail_at = fail_at;
		int rc = sse_parser_feed(p, stream, sizeof(stream) - 1);
		bool has_failed = realloc_calls >= fail_at;
		realloc_count_reset();
		if (!has_failed) {
			assert_int_equal(rc, 0);
			assert_int_equal(o.n, 1);
			sse_parser_free(p);
			outcome_free(&o);
			break;
		}
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(o.n, 0);
		assert_int_equal(sse_parser_feed(p, "\n", 1), -ENOMEM);
		assert_int_equal(sse_parser_finish(p), -ENOMEM);
		sse_parser_free(p);
		outcome_free(&o);
	}
	assert_true(fail_at > 5); /* line, type, id and data buffers, then the last event ID string */
}

/* ---- the callback, the end of a stream, the constructor ------------------------------------------ */

/* A stop ends the feed at that event: later events in the same bytes are not delivered. */
static void test_callback_stops_the_parse(void **state)
{
	(void)state;
	static const char three[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	static const int verdicts[] = { 1, 42, -EIO, -EPIPE };
	static const int feed_rcs[] = { -ECANCELED, -ECANCELED, -EIO, -EPIPE };
	for (size_t v = 0; v < sizeof(verdicts) / sizeof(verdicts[0]); v++) {
		Outcome o = { .stop_after = 2, .stop_rc = verdicts[v] };
		SseParser *p = NULL;
		assert_int_equal(sse_parser_new(NULL, on_event, &o, &p), 0);
		assert_int_equal(sse_parser_feed(p, three, sizeof(three) - 1), feed_rcs[v]);
		assert_int_equal(o.n, 2);
		assert_int_equal(sse_parser_feed(p, three, sizeof(three) - 1), feed_rcs[v]);
		assert_int_equal(o.n, 2);
		assert_int_equal(sse_parser_finish(p), feed_rcs[v]);
		sse_parser_free(p);
		outcome_free(&o);
	}
}

/* finish() readies the parser for a reconnection: the BOM is skipped again, nothing of the cut
 * event survives, and the last event ID and reconnection time carry over. */
static void test_finish_starts_the_next_stream(void **state)
{
	(void)state;
	Outcome o = { 0 };
	SseParser *p = NULL;
	assert_int_equal(sse_parser_new(NULL, on_event, &o, &p), 0);
	static const char first[] = BOM "retry: 250\nid: 5\ndata: a\n\nid: 6\nevent: x\ndata: b";
	assert_int_equal(sse_parser_feed(p, first, sizeof(first) - 1), 0);
	assert_string_equal(sse_parser_last_id(p), "5");
	assert_int_equal(sse_parser_finish(p), SSE_E_TRUNCATED);
	assert_string_equal(sse_parser_last_id(p), "5");
	static const char second[] = BOM "data: c\n\n";
	assert_int_equal(sse_parser_feed(p, second, sizeof(second) - 1), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(o.ev[1].type, "message");
	assert_string_equal(o.ev[1].data, "c");
	assert_string_equal(o.ev[1].id, "5"); /* the buffer was seeded with the last event ID */
	uint64_t retry_ms = 0;
	assert_true(sse_parser_retry_ms(p, &retry_ms));
	assert_int_equal(retry_ms, 250);
	assert_int_equal(sse_parser_finish(p), 0);
	assert_int_equal(sse_parser_finish(p), 0); /* an empty stream */
	sse_parser_free(p);
	outcome_free(&o);
}

static void test_new_and_free(void **state)
{
	(void)state;
	SseParser *p = NULL;
	Outcome o = { 0 };
	assert_int_equal(sse_parser_new(NULL, NULL, NULL, &p), -EINVAL);
	const SseLimits huge_event = { .max_event_bytes = SIZE_MAX };
	assert_int_equal(sse_parser_new(&huge_event, on_event, &o, &p), -EINVAL);
	const SseLimits huge_line = { .max_event_bytes = 10, .max_line_bytes = SIZE_MAX / 2 + 1 };
	assert_int_equal(sse_parser_new(&huge_line, on_event, &o, &p), -EINVAL);
	assert_null(p);
	sse_parser_free(NULL);
	assert_int_equal(sse_parser_new(NULL, on_event, &o, &p), 0);
	assert_string_equal(sse_parser_last_id(p), "");
	assert_false(sse_parser_retry_ms(p, NULL));
	assert_int_equal(sse_parser_feed(p, NULL, 0), 0);
	sse_parser_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_cr_and_lf_in_two_feeds_are_one_line_end),
		cmocka_unit_test(test_responses_stream),
		cmocka_unit_test(test_responses_stream_cut_anywhere),
		cmocka_unit_test(test_random_streams_any_cutting),
		cmocka_unit_test(test_line_bound),
		cmocka_unit_test(test_event_bound),
		cmocka_unit_test(test_bound_never_buffers_past_it),
		cmocka_unit_test(test_default_bounds),
		cmocka_unit_test(test_steady_state_allocates_nothing),
		cmocka_unit_test(test_allocation_failure),
		cmocka_unit_test(test_callback_stops_the_parse),
		cmocka_unit_test(test_finish_starts_the_next_stream),
		cmocka_unit_test(test_new_and_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
