/* SPDX-License-Identifier: MIT */
/* unified_exec_test.c - cmocka tests for the shell tools' model-facing text (exec_format.c): the
 * expected strings are the reference's, some copied from captured function_call_output items. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_format.h"

#define TOKENS(n) ((XfPolicy){ XF_POLICY_TOKENS, (n) })
#define BYTES(n) ((XfPolicy){ XF_POLICY_BYTES, (n) })

static void expect_text(const XfBuf *b, const char *expected)
{
	assert_int_equal(b->len, strlen(expected));
	assert_string_equal(xf_buf_text(b), expected);
}

/* ---- UTF-8 ---------------------------------------------------------------------------------------- */

typedef struct LossyCase {
	const char *name;
	const char *in;
	size_t in_len;
	const char *out;
} LossyCase;

static const LossyCase lossy_cases[] = {
	{ "ascii", "hello", 5, "hello" },
	{ "latin1 byte", "caf\xe9", 4, "caf\xEF\xBF\xBD" },
	{ "valid emoji", "\xF0\x9F\x98\x80", 4, "\xF0\x9F\x98\x80" },
	{ "cut at the end", "ab\xE2\x82", 4, "ab\xEF\xBF\xBD" },
	{ "cut in the middle", "\xE2\x82x", 3, "\xEF\xBF\xBDx" },
	{ "surrogate", "\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" },
	{ "overlong", "\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD" },
	{ "beyond U+10FFFF", "\xF4\x90\x80\x80", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" },
	{ "lone continuation", "a\x80z", 3, "a\xEF\xBF\xBDz" },
	{ "NUL kept", "a\0b", 3, NULL },
};

static void test_utf8_lossy(void **state)
{
	for (size_t i = 0; i < sizeof(lossy_cases) / sizeof(lossy_cases[0]); i++) {
		const LossyCase *c = &lossy_cases[i];
		XfBuf out = { 0 };
		assert_int_equal(xf_utf8_lossy((const uint8_t *)c->in, c->in_len, &out), 0);
		if (c->out) {
			expect_text(&out, c->out);
		} else {
			assert_int_equal(out.len, 3);
			assert_memory_equal(out.data, "a\0b", 3);
		}
		xf_buf_free(&out);
	}
}

static void test_utf8_complete_len(void **state)
{
	assert_int_equal(xf_utf8_complete_len((const uint8_t *)"ab\xE2\x82", 4), 2);
	assert_int_equal(xf_utf8_complete_len((const uint8_t *)"ab\xE2\x82\xAC", 5), 5);
	assert_int_equal(xf_utf8_complete_len((const uint8_t *)"ab\xF0", 3), 2);
	assert_int_equal(xf_utf8_complete_len((const uint8_t *)"ab\xF5", 3), 3); /* invalid, not cut */
	assert_int_equal(xf_utf8_complete_len((const uint8_t *)"\x80", 1), 1);
	assert_int_equal(xf_utf8_complete_len((const uint8_t *)"\xE2\x28", 2), 2); /* broken, not cut */
	assert_int_equal(xf_utf8_complete_len((const uint8_t *)"", 0), 0);
}

/* ---- counting ------------------------------------------------------------------------------------- */

static void test_count_lines_and_tokens(void **state)
{
	assert_int_equal(xf_count_lines("", 0), 0);
	assert_int_equal(xf_count_lines("a", 1), 1);
	assert_int_equal(xf_count_lines("a\n", 2), 1);
	assert_int_equal(xf_count_lines("a\nb", 3), 2);
	assert_int_equal(xf_count_lines("\n", 1), 1);
	assert_int_equal(xf_count_lines("\n\n", 2), 2);
	assert_int_equal(xf_approx_tokens(0), 0);
	assert_int_equal(xf_approx_tokens(1), 1);
	assert_int_equal(xf_approx_tokens(4), 1);
	assert_int_equal(xf_approx_tokens(5), 2);
	assert_int_equal(xf_policy_token_budget(BYTES(10000)), 2500);
	assert_int_equal(xf_policy_token_budget(BYTES(10001)), 2501);
	assert_int_equal(xf_policy_byte_budget(TOKENS(10000)), 40000);
}

/* ---- truncation ------------------------------------------------------------------------------------ */

typedef struct TruncCase {
	const char *name;
	const char *in;
	XfPolicy policy;
	bool is_formatted;
	const char *out;
} TruncCase;

static const TruncCase trunc_cases[] = {
	{ "fits in bytes", "abcdefghij", { XF_POLICY_BYTES, 10 }, false, "abcdefghij" },
	{ "bytes: chars marker",
	  "abcdefghij",
	  { XF_POLICY_BYTES, 4 },
	  false,
	  "ab\xE2\x80\xA6"
	  "6 chars truncated\xE2\x80\xA6ij" },
	{ "tokens: tokens marker",
	  "aaaaaaaaaaaaaaaaaaaa",
	  { XF_POLICY_TOKENS, 2 },
	  false,
	  "aaaa\xE2\x80\xA6"
	  "3 tokens truncated\xE2\x80\xA6"
	  "aaaa" },
	{ "zero tokens",
	  "abcde",
	  { XF_POLICY_TOKENS, 0 },
	  false,
	  "\xE2\x80\xA6"
	  "2 tokens truncated\xE2\x80\xA6" },
	{ "zero bytes",
	  "abcde",
	  { XF_POLICY_BYTES, 0 },
	  false,
	  "\xE2\x80\xA6"
	  "5 chars truncated\xE2\x80\xA6" },
	{ "empty", "", { XF_POLICY_TOKENS, 0 }, false, "" },
	{ "character boundaries",
	  "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9",
	  { XF_POLICY_BYTES, 5 },
	  false,
	  "\xC3\xA9\xE2\x80\xA6"
	  "3 chars truncated\xE2\x80\xA6\xC3\xA9" },
	{ "formatted within budget",
	  "aaaaaaaaaaaaaaaaaaaa",
	  { XF_POLICY_TOKENS, 5 },
	  true,
	  "aaaaaaaaaaaaaaaaaaaa" },
	{ "formatted with header",
	  "line1\nline2\nline3\n",
	  { XF_POLICY_TOKENS, 2 },
	  true,
	  "Warning: truncated output (original token count: 5)\nTotal output lines: 3\n\n"
	  "line\xE2\x80\xA6"
	  "3 tokens truncated\xE2\x80\xA6ne3\n" },
};

static void test_truncation(void **state)
{
	for (size_t i = 0; i < sizeof(trunc_cases) / sizeof(trunc_cases[0]); i++) {
		const TruncCase *c = &trunc_cases[i];
		XfBuf out = { 0 };
		int rc = c->is_formatted ? xf_formatted_truncate_text(c->in, strlen(c->in), c->policy, &out)
					 : xf_truncate_text(c->in, strlen(c->in), c->policy, &out);
		assert_int_equal(rc, 0);
		if (strcmp(xf_buf_text(&out), c->out) != 0)
			fail_msg("%s: got \"%s\"", c->name, xf_buf_text(&out));
		xf_buf_free(&out);
	}
}

/* ---- exec_command / write_stdin ------------------------------------------------------------------- */

static void test_unified_exec_exited(void **state)
{
	/* s02_exec: exec_command {"cmd":"echo hello; echo err >&2"} */
	XfUnifiedExec r = {
		.chunk_id = "7e17d3",
		.wall_time_ns = 20000, /* a few µs: the command was over within the early-exit grace */
		.has_exit_code = true,
		.exit_code = 0,
		.output = "hello\nerr\n",
		.output_len = 10,
		.max_output_tokens = -1,
		.policy = XF_DEFAULT_POLICY,
	};
	XfBuf out = { 0 };
	assert_int_equal(xf_unified_exec_text(&r, &out), 0);
	expect_text(&out, "Chunk ID: 7e17d3\nWall time: 0.0000 seconds\nProcess exited with code 0\n"
			  "Original token count: 3\nOutput:\nhello\nerr\n");
	xf_buf_free(&out);
}

static void test_unified_exec_running_and_poll(void **state)
{
	/* s02b_exec_poll: exec_command {"cmd":"sleep 2; echo done","yield_time_ms":500}, then a poll. */
	XfUnifiedExec running = {
		.chunk_id = "e50a6c",
		.wall_time_ns = 501700000,
		.has_session_id = true,
		.session_id = 47979,
		.output = "",
		.max_output_tokens = -1,
		.policy = XF_DEFAULT_POLICY,
	};
	XfBuf out = { 0 };
	assert_int_equal(xf_unified_exec_text(&running, &out), 0);
	expect_text(&out,
		    "Chunk ID: e50a6c\nWall time: 0.5017 seconds\nProcess running with session ID 47979\n"
		    "Original token count: 0\nOutput:\n");
	xf_buf_free(&out);

	XfUnifiedExec polled = {
		.chunk_id = "cb301f",
		.wall_time_ns = 1346200000,
		.has_exit_code = true,
		.output = "done\n",
		.output_len = 5,
		.max_output_tokens = -1,
		.policy = XF_DEFAULT_POLICY,
	};
	assert_int_equal(xf_unified_exec_text(&polled, &out), 0);
	expect_text(&out, "Chunk ID: cb301f\nWall time: 1.3462 seconds\nProcess exited with code 0\n"
			  "Original token count: 2\nOutput:\ndone\n");
	xf_buf_free(&out);
}

static void test_unified_exec_truncated(void **state)
{
	/* No max_output_tokens and a 10000-byte turn policy: min(10000, 2500) tokens = 10000 bytes. */
	size_t len = 10001;
	char *big = malloc(len + 1);
	assert_non_null(big);
	memset(big, 'x', len);
	big[len] = '\0';
	XfUnifiedExec r = {
		.chunk_id = "",
		.wall_time_ns = 1000000000,
		.has_exit_code = true,
		.exit_code = 1,
		.output = big,
		.output_len = len,
		.max_output_tokens = -1,
		.policy = XF_DEFAULT_POLICY,
	};
	XfBuf out = { 0 };
	assert_int_equal(xf_unified_exec_text(&r, &out), 0);
	const char *head =
		"Wall time: 1.0000 seconds\nProcess exited with code 1\nOriginal token count: 2501\n"
		"Output:\nWarning: truncated output (original token count: 2501)\nTotal output lines: 1\n\n";
	assert_int_equal(strncmp(xf_buf_text(&out), head, strlen(head)), 0);
	assert_non_null(strstr(xf_buf_text(&out), "\xE2\x80\xA6"
						  "1 tokens truncated\xE2\x80\xA6"));
	/* 5000 bytes either side of the marker. */
	assert_int_equal(out.len, strlen(head) + 10000 +
					  strlen("\xE2\x80\xA6"
						 "1 tokens truncated\xE2\x80\xA6"));
	xf_buf_free(&out);

	/* A smaller max_output_tokens wins over the turn's policy. */
	r.max_output_tokens = 1;
	r.output = "abcdefgh";
	r.output_len = 8;
	assert_int_equal(xf_unified_exec_text(&r, &out), 0);
	assert_non_null(strstr(xf_buf_text(&out),
			       "Output:\nWarning: truncated output (original token count: 2)\n"
			       "Total output lines: 1\n\nab\xE2\x80\xA6"
			       "1 tokens truncated\xE2\x80\xA6gh"));
	xf_buf_free(&out);
	free(big);
}

/* ---- shell_command / shell ------------------------------------------------------------------------ */

static void test_freeform(void **state)
{
	XfExecOutput r = { .exit_code = 0,
			   .duration_ns = 100000000,
			   .output = "hi\n",
			   .output_len = 3,
			   .policy = XF_DEFAULT_POLICY };
	XfBuf out = { 0 };
	assert_int_equal(xf_freeform_text(&r, &out), 0);
	expect_text(&out, "Exit code: 0\nWall time: 0.1 seconds\nOutput:\nhi\n");
	xf_buf_free(&out);

	r.exit_code = 3;
	r.duration_ns = 1020000000; /* 1.02 s rounds to 1.0, printed as Rust prints an f32: "1" */
	r.output = "";
	r.output_len = 0;
	assert_int_equal(xf_freeform_text(&r, &out), 0);
	expect_text(&out, "Exit code: 3\nWall time: 1 seconds\nOutput:\n");
	xf_buf_free(&out);

	r.exit_code = 124;
	r.duration_ns = 10003000000u;
	r.is_timed_out = true;
	r.output = "partial\n";
	r.output_len = 8;
	assert_int_equal(xf_freeform_text(&r, &out), 0);
	expect_text(
		&out,
		"Exit code: 124\nWall time: 10 seconds\nOutput:\ncommand timed out after 10003 milliseconds\n"
		"partial\n");
	xf_buf_free(&out);
}

static void test_freeform_truncated(void **state)
{
	XfExecOutput r = { .exit_code = 0,
			   .duration_ns = 2340000000u,
			   .output = "line1\nline2\nline3\n",
			   .output_len = 18,
			   .policy = BYTES(8) };
	XfBuf out = { 0 };
	assert_int_equal(xf_freeform_text(&r, &out), 0);
	expect_text(&out, "Exit code: 0\nWall time: 2.3 seconds\nTotal output lines: 3\nOutput:\n"
			  "line\xE2\x80\xA6"
			  "10 chars truncated\xE2\x80\xA6ne3\n");
	xf_buf_free(&out);
}

static void test_structured(void **state)
{
	XfExecOutput r = { .exit_code = 0,
			   .duration_ns = 100000000,
			   .output = "hi \"x\"\t\x01\n",
			   .output_len = 9,
			   .policy = XF_DEFAULT_POLICY };
	XfBuf out = { 0 };
	assert_int_equal(xf_structured_text(&r, &out), 0);
	expect_text(&out, "{\"output\":\"hi \\\"x\\\"\\t\\u0001\\n\",\"metadata\":{\"exit_code\":0,"
			  "\"duration_seconds\":0.1}}");
	xf_buf_free(&out);

	r.exit_code = 1;
	r.duration_ns = 1000000000;
	r.output = "/a\xC3\xA9";
	r.output_len = 4;
	assert_int_equal(xf_structured_text(&r, &out), 0);
	expect_text(&out,
		    "{\"output\":\"/a\xC3\xA9\",\"metadata\":{\"exit_code\":1,\"duration_seconds\":1.0}}");
	xf_buf_free(&out);
}

/* ---- quoting -------------------------------------------------------------------------------------- */

static void test_shlex_and_debug(void **state)
{
	const char *argv[] = { "/bin/bash", "-lc", "sleep 2; echo done" };
	XfBuf out = { 0 };
	assert_int_equal(xf_shlex_join(argv, 3, &out), 0);
	expect_text(&out, "/bin/bash -lc 'sleep 2; echo done'"); /* the commandExecution item's command */
	xf_buf_free(&out);

	const char *quote[] = { "echo", "it's", "" };
	assert_int_equal(xf_shlex_join(quote, 3, &out), 0);
	expect_text(&out, "echo 'it'\\''s' ''");
	xf_buf_free(&out);

	assert_int_equal(xf_rust_debug_str("No such file \"x\"\n", &out), 0);
	expect_text(&out, "\"No such file \\\"x\\\"\\n\"");
	xf_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_lossy),
		cmocka_unit_test(test_utf8_complete_len),
		cmocka_unit_test(test_count_lines_and_tokens),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_unified_exec_exited),
		cmocka_unit_test(test_unified_exec_running_and_poll),
		cmocka_unit_test(test_unified_exec_truncated),
		cmocka_unit_test(test_freeform),
		cmocka_unit_test(test_freeform_truncated),
		cmocka_unit_test(test_structured),
		cmocka_unit_test(test_shlex_and_debug),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
