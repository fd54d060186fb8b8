/* SPDX-License-Identifier: MIT */
/* lines_test.c - cmocka tests for the bounded LineReader: every case is fed whole, one byte at a
 * time and in chunks of every size, and must produce the same events with the buffer never
 * growing past max_bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"

/* ---- event recorder -------------------------------------------------------------------------- */

#define MAX_EVENTS 16

typedef struct Event {
	char kind; /* 'L' line, 'O' oversize */
	char *text;
	size_t len;
} Event;

typedef struct Recorder {
	Event ev[MAX_EVENTS];
	size_t n;
	size_t stop_after; /* should_stop() answers true once this many events arrived; 0: never */
	size_t stop_polls;
	const LineReader *reader;
	char last_head[LINE_HEAD_BYTES];
	size_t last_head_len;
} Recorder;

static void record(Recorder *rec, char kind, const char *text, size_t len)
{
	if (rec->n >= MAX_EVENTS)
		fail_msg("more than %d events", MAX_EVENTS);
	Event *e = &rec->ev[rec->n++];
	e->kind = kind;
	e->len = len;
	e->text = NULL;
	if (text) {
		e->text = malloc(len + 1);
		assert_non_null(e->text);
		memcpy(e->text, text, len);
		e->text[len] = '\0';
	}
}

static void on_line(void *ctx, const char *line, size_t len)
{
	Recorder *rec = ctx;
	assert_true(len > 0); /* empty lines are never delivered */
	assert_true(len <= rec->reader->max_bytes);
	record(rec, 'L', line, len);
}

static void on_oversize(void *ctx, size_t len, const char *head, size_t head_len)
{
	Recorder *rec = ctx;
	assert_true(len > rec->reader->max_bytes);
	/* The head is the line's own start, never more than the line or LINE_HEAD_BYTES. */
	assert_true(head_len <= LINE_HEAD_BYTES && head_len <= len);
	rec->last_head_len = head_len;
	memcpy(rec->last_head, head, head_len);
	record(rec, 'O', NULL, len);
}

static bool should_stop(void *ctx)
{
	Recorder *rec = ctx;
	rec->stop_polls++;
	return rec->stop_after && rec->n >= rec->stop_after;
}

static void recorder_clear(Recorder *rec)
{
	for (size_t i = 0; i < rec->n; i++)
		free(rec->ev[i].text);
	memset(rec, 0, sizeof(*rec));
}

static const LineReaderEvents events = { on_line, on_oversize };

/* ---- table ----------------------------------------------------------------------------------- */

typedef struct Expect {
	char kind;
	const char *text; /* 'L': the line's bytes */
	size_t len;	  /* 'L': its length (text may hold NUL); 'O': the reported length */
} Expect;

typedef struct LineCase {
	const char *name;
	size_t max_bytes;
	const char *input;
	size_t input_len; /* 0: strlen(input) */
	size_t stop_after;
	Expect want[8];
	size_t n_want;
	const char *note; /* the bug this case once caught, if any */
} LineCase;

#define L(s)                                                                                                 \
	{                                                                                                    \
		'L', s, sizeof(s) - 1                                                                        \
	}
#define O(n)                                                                                                 \
	{                                                                                                    \
		'O', NULL, n                                                                                 \
	}

static const LineCase line_cases[] = {
	/* delivered */
	{ "single line", 64, "hello\n", 0, 0, { L("hello") }, 1, NULL },
	{ "two lines", 64, "a\nbc\n", 0, 0, { L("a"), L("bc") }, 2, NULL },
	{ "CRLF stripped", 64, "one\r\ntwo\r\n", 0, 0, { L("one"), L("two") }, 2, NULL },
	{ "LF and CRLF mixed", 64, "a\r\nb\nc\r\n", 0, 0, { L("a"), L("b"), L("c") }, 3, NULL },
	{ "empty lines skipped", 64, "\n\n\nx\n\n", 0, 0, { L("x") }, 1, NULL },
	{ "CRLF-only lines skipped", 64, "\r\n\r\nx\r\n\r\n", 0, 0, { L("x") }, 1, NULL },
	{ "only one CR stripped", 64, "a\r\r\n", 0, 0, { L("a\r") }, 1, NULL },
	{ "inner CR kept", 64, "a\rb\n", 0, 0, { L("a\rb") }, 1, NULL },
	{ "NUL bytes kept", 64, "a\0b\n", 4, 0, { L("a\0b") }, 1, NULL },
	{ "unterminated tail held back", 64, "a\nbcd", 0, 0, { L("a") }, 1, NULL },
	{ "line exactly max_bytes", 8, "12345678\n", 0, 0, { L("12345678") }, 1, NULL },
	{ "lines exactly max_bytes back to back",
	  4,
	  "abcd\nefgh\nij\n",
	  0,
	  0,
	  { L("abcd"), L("efgh"), L("ij") },
	  3,
	  NULL },
	{ "max_bytes 1", 1, "a\nb\n\nc\n", 0, 0, { L("a"), L("b"), L("c") }, 3, NULL },
	/* oversize */
	{ "max_bytes + 1", 8, "123456789\n", 0, 0, { O(9) }, 1, NULL },
	{ "max_bytes + 1, then a line", 8, "123456789\nok\n", 0, 0, { O(9), L("ok") }, 2, NULL },
	{ "line after oversize exactly max", 4, "abcdefgh\nwxyz\n", 0, 0, { O(8), L("wxyz") }, 2, NULL },
	{ "oversize between lines", 3, "ab\nabcdef\ncd\n", 0, 0, { L("ab"), O(6), L("cd") }, 3, NULL },
	{ "two oversize in a row", 4, "aaaaa\nbbbbbb\nc\n", 0, 0, { O(5), O(6), L("c") }, 3, NULL },
	{ "oversize with max_bytes 1", 1, "ab\nc\n", 0, 0, { O(2), L("c") }, 2, NULL },
	{ "unterminated oversize not reported yet", 4, "ok\nabcdefgh", 0, 0, { L("ok") }, 1, NULL },
	{ "oversize NUL-filled line", 2, "\0\0\0\nz\n", 6, 0, { O(3), L("z") }, 2, NULL },
	{ "oversize, empty lines, then a line", 3, "abcd\n\n\nxy\n", 0, 0, { O(4), L("xy") }, 2, NULL },
	{ "oversize by many with max_bytes 1", 1, "abcdefghij\n", 0, 0, { O(10) }, 1, NULL },
	{ "two oversize then a line exactly max",
	  2,
	  "abc\ndef\ngh\n",
	  0,
	  0,
	  { O(3), O(3), L("gh") },
	  3,
	  NULL },
	{ "oversize then an unterminated tail", 2, "abc\nde", 0, 0, { O(3) }, 1, NULL },
	{ "empty-line flood then oversize", 2, "\n\n\n\nabc\n", 0, 0, { O(3) }, 1, NULL },
	{ "line exactly max then one over", 3, "abc\nabcd\n", 0, 0, { L("abc"), O(4) }, 2, NULL },
	{ "oversize of 2 * max + 1", 4, "123456789\n", 0, 0, { O(9) }, 1, NULL },
	{ "oversize with max_bytes 1, empty, line", 1, "xy\n\nz\n", 0, 0, { O(2), L("z") }, 2, NULL },
	/* should_stop */
	{ "stop after first line", 64, "a\nb\nc\n", 0, 1, { L("a") }, 1, NULL },
	{ "stop after second line", 64, "a\nb\nc\n", 0, 2, { L("a"), L("b") }, 2, NULL },
	{ "stop after oversize", 2, "abc\nd\n", 0, 1, { O(3) }, 1, NULL },
	{ "stop after a line and an oversize", 3, "a\nbcdef\nz\n", 0, 2, { L("a"), O(5) }, 2, NULL },
	{ "stop after line following empties", 64, "\n\na\nb\n", 0, 1, { L("a") }, 1, NULL },
	/* CR handling at the bound: only the CR of a final CRLF is not part of the line */
	{ "CR then content past the bound", 4, "abcd\rx\n", 0, 0, { O(6) }, 1, NULL },
	{ "inner CR counts toward the bound", 4, "ab\rcd\n", 0, 0, { O(5) }, 1, NULL },
	{ "CRLF line exactly max_bytes",
	  8,
	  "12345678\r\n",
	  0,
	  0,
	  { L("12345678") },
	  1,
	  "the CR of a CRLF is counted against max_bytes" },
	{ "CRLF lines exactly max_bytes back to back",
	  4,
	  "abcd\r\nefgh\r\n",
	  0,
	  0,
	  { L("abcd"), L("efgh") },
	  2,
	  "the CR of a CRLF is counted against max_bytes" },
	{ "line ending in CR, CRLF-terminated, exactly max",
	  4,
	  "abc\r\r\n",
	  0,
	  0,
	  { L("abc\r") },
	  1,
	  "the CR of a CRLF is counted against max_bytes" },
	{ "CRLF oversize length excludes the CR",
	  8,
	  "123456789\r\nok\r\n",
	  0,
	  0,
	  { O(9), L("ok") },
	  2,
	  "on_oversize's length includes the CR of a CRLF" },
};

/* Feeds @c in chunks of @chunk bytes (0: all at once), checking the buffer bound after each. */
static void run_case(const LineCase *c, size_t chunk)
{
	size_t len = c->input_len ? c->input_len : strlen(c->input);
	Recorder rec;
	memset(&rec, 0, sizeof(rec));
	rec.stop_after = c->stop_after;
	LineReader r;
	line_reader_init(&r, c->max_bytes, &events, &rec);
	rec.reader = &r;
	size_t step = chunk ? chunk : len;
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		/* an exactly-sized heap copy, so ASan sees any read past the chunk */
		char *copy = malloc(n);
		assert_non_null(copy);
		memcpy(copy, c->input + off, n);
		int rc = line_reader_feed(&r, copy, n, should_stop);
		free(copy);
		if (rc != 0)
			fail_msg("%s (chunk %zu): feed returned %d", c->name, chunk, rc);
		if (r.cap > c->max_bytes || r.len > c->max_bytes)
			fail_msg("%s (chunk %zu): cap %zu len %zu past max %zu", c->name, chunk, r.cap, r.len,
				 c->max_bytes);
		if (c->stop_after && rec.n >= c->stop_after)
			break; /* the connection would be closed: nothing more is fed */
	}
	if (rec.n != c->n_want)
		fail_msg("%s (chunk %zu): %zu events, want %zu", c->name, chunk, rec.n, c->n_want);
	for (size_t i = 0; i < c->n_want; i++) {
		const Expect *w = &c->want[i];
		const Event *e = &rec.ev[i];
		if (e->kind != w->kind || e->len != w->len ||
		    (w->kind == 'L' && memcmp(e->text, w->text, w->len) != 0))
			fail_msg("%s (chunk %zu): event %zu is %c/%zu, want %c/%zu", c->name, chunk, i,
				 e->kind, e->len, w->kind, w->len);
	}
	if (c->stop_after)
		assert_true(rec.stop_polls > 0);
	line_reader_free(&r);
	assert_null(r.buf);
	recorder_clear(&rec);
}

static void test_line_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		const LineCase *c = &line_cases[i];
		size_t len = c->input_len ? c->input_len : strlen(c->input);
		run_case(c, 0); /* whole */
		for (size_t chunk = 1; chunk <= len; chunk++)
			run_case(c, chunk); /* every chunk size, 1 byte at a time first */
	}
}

/* A line far beyond the bound is counted, never held: the buffer stays within max_bytes. */
static void test_huge_oversize_never_buffered(void **state)
{
	(void)state;
	static const size_t maxes[] = { 16, 5000, 70000 };
	static const size_t chunks[] = { 1, 7, 4096, 65536, 0 };
	const size_t line_len = 200000;
	size_t total = line_len + 1 + 5;
	char *input = malloc(total);
	assert_non_null(input);
	memset(input, 'x', line_len);
	memcpy(input + line_len, "\nnext\n", 6);
	for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
		for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			Recorder rec;
			memset(&rec, 0, sizeof(rec));
			LineReader r;
			line_reader_init(&r, maxes[m], &events, &rec);
			rec.reader = &r;
			size_t step = chunks[k] ? chunks[k] : total;
			for (size_t off = 0; off < total; off += step) {
				size_t n = total - off < step ? total - off : step;
				assert_int_equal(line_reader_feed(&r, input + off, n, NULL), 0);
				assert_true(r.cap <= maxes[m]);
				assert_true(r.len <= maxes[m]);
			}
			assert_int_equal(rec.n, 2);
			assert_int_equal(rec.ev[0].kind, 'O');
			assert_int_equal(rec.ev[0].len, line_len);
			assert_int_equal(rec.ev[1].kind, 'L');
			assert_int_equal(rec.ev[1].len, 4);
			assert_memory_equal(rec.ev[1].text, "next", 4);
			line_reader_free(&r);
			recorder_clear(&rec);
		}
	}
	free(input);
}

/* A line of exactly max_bytes above the initial allocation is delivered whole, and the buffer
 * grows no further than the bound. */
static void test_large_line_exactly_max(void **state)
{
	(void)state;
	static const size_t maxes[] = { 4097, 10000, 100000 };
	for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
		size_t max = maxes[m];
		char *input = malloc(max + 1);
		assert_non_null(input);
		for (size_t i = 0; i < max; i++)
			input[i] = (char)('a' + i % 26);
		input[max] = '\n';
		static const size_t chunks[] = { 1, 1000, 0 };
		for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			Recorder rec;
			memset(&rec, 0, sizeof(rec));
			LineReader r;
			line_reader_init(&r, max, &events, &rec);
			rec.reader = &r;
			size_t step = chunks[k] ? chunks[k] : max + 1;
			for (size_t off = 0; off < max + 1; off += step) {
				size_t n = max + 1 - off < step ? max + 1 - off : step;
				assert_int_equal(line_reader_feed(&r, input + off, n, NULL), 0);
				assert_true(r.cap <= max);
			}
			assert_int_equal(rec.n, 1);
			assert_int_equal(rec.ev[0].kind, 'L');
			assert_int_equal(rec.ev[0].len, max);
			assert_memory_equal(rec.ev[0].text, input, max);
			line_reader_free(&r);
			recorder_clear(&rec);
		}
		/* one byte more is oversize */
		char *over = malloc(max + 2);
		assert_non_null(over);
		memset(over, 'q', max + 1);
		over[max + 1] = '\n';
		Recorder rec;
		memset(&rec, 0, sizeof(rec));
		LineReader r;
		line_reader_init(&r, max, &events, &rec);
		rec.reader = &r;
		assert_int_equal(line_reader_feed(&r, over, max + 2, NULL), 0);
		assert_true(r.cap <= max);
		assert_int_equal(rec.n, 1);
		assert_int_equal(rec.ev[0].kind, 'O');
		assert_int_equal(rec.ev[0].len, max + 1);
		line_reader_free(&r);
		recorder_clear(&rec);
		free(over);
		free(input);
	}
}

/* should_stop() halts the feed at once: a callback that closes the connection sees nothing more
 * from the same chunk, and a NULL should_stop delivers everything. */
static void test_should_stop_polled_per_line(void **state)
{
	(void)state;
	Recorder rec;
	memset(&rec, 0, sizeof(rec));
	LineReader r;
	line_reader_init(&r, 64, &events, &rec);
	rec.reader = &r;
	assert_int_equal(line_reader_feed(&r, "a\nb\nc\n", 6, NULL), 0);
	assert_int_equal(rec.n, 3);
	recorder_clear(&rec);
	rec.reader = &r;
	rec.stop_after = 1;
	assert_int_equal(line_reader_feed(&r, "d\ne\n", 4, should_stop), 0);
	assert_int_equal(rec.n, 1);
	assert_string_equal(rec.ev[0].text, "d");
	assert_int_equal(rec.stop_polls, 1); /* polled once, after "d": "e" never reached */
	line_reader_free(&r);
	line_reader_free(&r); /* idempotent */
	recorder_clear(&rec);
}

/* The start of an oversized line survives, in any chunking, so its request id can be answered. */
static void test_oversize_keeps_the_line_head(void **state)
{
	char line[600];
	memset(line, 'x', sizeof(line));
	memcpy(line, "{\"id\":42,", 9);
	line[sizeof(line) - 1] = '\n';
	for (size_t chunk = 1; chunk <= sizeof(line); chunk = chunk * 2 + 1) {
		Recorder rec = { 0 };
		LineReader r;
		line_reader_init(&r, 64, &events, &rec);
		rec.reader = &r;
		for (size_t off = 0; off < sizeof(line); off += chunk) {
			size_t n = sizeof(line) - off < chunk ? sizeof(line) - off : chunk;
			assert_int_equal(line_reader_feed(&r, line + off, n, NULL), 0);
		}
		assert_int_equal(rec.n, 1);
		assert_int_equal(rec.last_head_len, LINE_HEAD_BYTES);
		assert_memory_equal(rec.last_head, line, LINE_HEAD_BYTES);
		line_reader_free(&r);
		recorder_clear(&rec);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_cases),
		cmocka_unit_test(test_huge_oversize_never_buffered),
		cmocka_unit_test(test_large_line_exactly_max),
		cmocka_unit_test(test_should_stop_polled_per_line),
		cmocka_unit_test(test_oversize_keeps_the_line_head),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
