/* SPDX-License-Identifier: MIT */
/* patch_test.c - cmocka tests for the apply_patch format: every hunk kind and parse error as the
 * reference words it, the heredoc wrapper, seek_sequence's fuzz levels, deriving updates, and the
 * unified diff as the similar crate prints it (expected texts recorded from similar 2.7.0). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patch.h"

#define CWD "/work/proj"

static struct patch *parse_ok(const char *text)
{
	struct patch *p = NULL;
	struct patch_error err;
	int rc = patch_parse(text, strlen(text), CWD, &p, &err);
	if (rc != 0)
		fail_msg("parse failed (%d): line %zu: %s", rc, err.line_number,
			 err.message ? err.message : "");
	assert_null(err.message);
	return p;
}

/* Parse @text, expect failure, and compare the reference's two renderings of the error. */
static void expect_error(const char *text, const char *display, const char *cli)
{
	struct patch *p = (struct patch *)1;
	struct patch_error err;
	assert_int_equal(patch_parse(text, strlen(text), CWD, &p, &err), -EINVAL);
	assert_null(p);
	char *d = patch_error_format(&err), *c = patch_error_format_cli(&err);
	assert_string_equal(d, display);
	assert_string_equal(c, cli);
	free(d);
	free(c);
	patch_error_clear(&err);
	assert_null(err.message);
}

/* ---- parsing ----------------------------------------------------------------------------------- */

static void test_parse_every_hunk_kind(void **state)
{
	(void)state;
	struct patch *p = parse_ok("*** Begin Patch\n"
				   "*** Add File: path/add.py\n"
				   "+abc\n"
				   "+def\n"
				   "*** Delete File: path/delete.py\n"
				   "*** Update File: path/update.py\n"
				   "*** Move to: path/update2.py\n"
				   "@@ def f():\n"
				   "-    pass\n"
				   "+    return 123\n"
				   "*** End Patch");
	assert_int_equal(p->n_hunks, 3);

	const struct patch_hunk *add = &p->hunks[0];
	assert_int_equal(add->kind, PATCH_HUNK_ADD);
	assert_string_equal(add->path, "path/add.py");
	assert_string_equal(add->abs_path, CWD "/path/add.py");
	assert_string_equal(add->contents, "abc\ndef\n");
	assert_int_equal(add->contents_len, 8);

	const struct patch_hunk *del = &p->hunks[1];
	assert_int_equal(del->kind, PATCH_HUNK_DELETE);
	assert_string_equal(del->path, "path/delete.py");
	assert_string_equal(del->abs_path, CWD "/path/delete.py");

	const struct patch_hunk *up = &p->hunks[2];
	assert_int_equal(up->kind, PATCH_HUNK_UPDATE);
	assert_string_equal(up->path, "path/update.py");
	assert_string_equal(up->move_path, "path/update2.py");
	assert_string_equal(up->abs_move_path, CWD "/path/update2.py");
	assert_int_equal(up->n_chunks, 1);
	assert_string_equal(up->chunks[0].change_context, "def f():");
	assert_int_equal(up->chunks[0].n_old, 1);
	assert_string_equal(up->chunks[0].old_lines[0], "    pass");
	assert_int_equal(up->chunks[0].n_new, 1);
	assert_string_equal(up->chunks[0].new_lines[0], "    return 123");
	assert_false(up->chunks[0].is_end_of_file);
	assert_string_equal(p->text, "*** Begin Patch\n*** Add File: path/add.py\n+abc\n+def\n"
				     "*** Delete File: path/delete.py\n*** Update File: path/update.py\n"
				     "*** Move to: path/update2.py\n@@ def f():\n-    pass\n+    return 123\n"
				     "*** End Patch");
	patch_free(p);
}

static void test_parse_update_then_add(void **state)
{
	(void)state;
	struct patch *p =
		parse_ok("*** Begin Patch\n*** Update File: file.py\n@@\n+line\n*** Add File: other.py\n"
			 "+content\n*** End Patch");
	assert_int_equal(p->n_hunks, 2);
	assert_null(p->hunks[0].chunks[0].change_context);
	assert_int_equal(p->hunks[0].chunks[0].n_old, 0);
	assert_string_equal(p->hunks[0].chunks[0].new_lines[0], "line");
	assert_int_equal(p->hunks[1].kind, PATCH_HUNK_ADD);
	assert_string_equal(p->hunks[1].contents, "content\n");
	patch_free(p);
}

/* The first chunk may start without "@@"; later ones need it. Blank lines between chunks and an
 * empty line inside one (an empty context line) are both accepted. */
static void test_parse_chunks(void **state)
{
	(void)state;
	struct patch *p = parse_ok("*** Begin Patch\n*** Update File: file2.py\n import foo\n+bar\n"
				   "\n"
				   "@@ change_context\n\n context\n-remove\n+add\n context2\n"
				   "@@\n+tail\n*** End of File\n"
				   "*** End Patch");
	const struct patch_hunk *h = &p->hunks[0];
	assert_int_equal(h->n_chunks, 3);
	/* The blank line after chunk one belongs to it (an empty context line), as in the reference. */
	assert_null(h->chunks[0].change_context);
	assert_int_equal(h->chunks[0].n_old, 2);
	assert_string_equal(h->chunks[0].old_lines[0], "import foo");
	assert_string_equal(h->chunks[0].old_lines[1], "");
	assert_int_equal(h->chunks[0].n_new, 3);
	assert_string_equal(h->chunks[0].new_lines[1], "bar");

	const struct patch_chunk *c = &h->chunks[1];
	assert_string_equal(c->change_context, "change_context");
	assert_int_equal(c->n_old, 4);
	assert_string_equal(c->old_lines[0], "");
	assert_string_equal(c->old_lines[1], "context");
	assert_string_equal(c->old_lines[2], "remove");
	assert_string_equal(c->old_lines[3], "context2");
	assert_int_equal(c->n_new, 4);
	assert_string_equal(c->new_lines[2], "add");

	assert_true(h->chunks[2].is_end_of_file);
	assert_int_equal(h->chunks[2].n_new, 1);
	patch_free(p);
}

static void test_parse_empty_patch_and_padding(void **state)
{
	(void)state;
	struct patch *p = parse_ok("*** Begin Patch\n*** End Patch");
	assert_int_equal(p->n_hunks, 0);
	patch_free(p);

	/* Whitespace around the markers and the hunk headers, CRLF line ends, surrounding blanks. */
	p = parse_ok("\n  *** Begin Patch \r\n  *** Add File: foo\r\n+hi\r\n *** End Patch\n\n");
	assert_int_equal(p->n_hunks, 1);
	assert_string_equal(p->hunks[0].path, "foo");
	assert_string_equal(p->hunks[0].contents, "hi\n");
	patch_free(p);

	/* A non-breaking space trims like Rust's str::trim. */
	p = parse_ok("\xc2\xa0*** Begin Patch\n*** Delete File: x\n*** End Patch\xe3\x80\x80");
	assert_int_equal(p->n_hunks, 1);
	patch_free(p);
}

static void test_parse_paths(void **state)
{
	(void)state;
	struct patch *p = parse_ok("*** Begin Patch\n*** Delete File: /abs/olddir/../gone.txt\n"
				   "*** Add File: ./a//b/../c.txt\n+x\n*** End Patch");
	assert_string_equal(p->hunks[0].path, "/abs/olddir/../gone.txt");
	assert_string_equal(p->hunks[0].abs_path, "/abs/gone.txt");
	assert_string_equal(p->hunks[1].path, "./a//b/../c.txt");
	assert_string_equal(p->hunks[1].abs_path, CWD "/a/c.txt");
	patch_free(p);

	struct patch_error err;
	const char *empty_move =
		"*** Begin Patch\n*** Update File: a\n*** Move to: \n@@\n-x\n+y\n*** End Patch";
	assert_int_equal(patch_parse(empty_move, strlen(empty_move), CWD, &p, &err), -EINVAL);
	assert_int_equal(err.line_number, 3);
	patch_error_clear(&err);
	assert_int_equal(patch_parse("x", 1, "relative", &p, &err), -EINVAL);
}

static void test_parse_heredoc(void **state)
{
	(void)state;
	static const char body[] =
		"*** Begin Patch\n*** Update File: file2.py\n import foo\n+bar\n*** End Patch";
	static const char *const opens[] = { "<<EOF", "<<'EOF'", "<<\"EOF\"" };
	for (size_t i = 0; i < 3; i++) {
		char text[256];
		snprintf(text, sizeof(text), "%s\n%s\nEOF\n", opens[i], body);
		struct patch *p = parse_ok(text);
		assert_int_equal(p->n_hunks, 1);
		assert_string_equal(p->text, body);
		assert_string_equal(p->hunks[0].chunks[0].new_lines[1], "bar");
		patch_free(p);
	}
	char text[256];
	snprintf(text, sizeof(text), "<<\"EOF'\n%s\nEOF\n", body);
	expect_error(text, "invalid patch: The first line of the patch must be '*** Begin Patch'",
		     "Invalid patch: The first line of the patch must be '*** Begin Patch'");
	expect_error("<<EOF\n*** Begin Patch\n*** Update File: file2.py\nEOF\n",
		     "invalid patch: The last line of the patch must be '*** End Patch'",
		     "Invalid patch: The last line of the patch must be '*** End Patch'");
}

static void test_parse_errors(void **state)
{
	(void)state;
	expect_error("bad", "invalid patch: The first line of the patch must be '*** Begin Patch'",
		     "Invalid patch: The first line of the patch must be '*** Begin Patch'");
	expect_error("", "invalid patch: The last line of the patch must be '*** End Patch'",
		     "Invalid patch: The last line of the patch must be '*** End Patch'");
	expect_error("*** Begin Patch\nbad",
		     "invalid patch: The last line of the patch must be '*** End Patch'",
		     "Invalid patch: The last line of the patch must be '*** End Patch'");
	expect_error("*** Begin Patch\n*** Update File: test.py\n*** End Patch",
		     "invalid hunk at line 2, Update file hunk for path 'test.py' is empty",
		     "Invalid patch hunk on line 2: Update file hunk for path 'test.py' is empty");
	expect_error(
		"*** Begin Patch\n*** Frobnicate File: foo\n*** End Patch",
		"invalid hunk at line 2, '*** Frobnicate File: foo' is not a valid hunk header. Valid hunk "
		"headers: '*** Add File: {path}', '*** Delete File: {path}', '*** Update File: {path}'",
		"Invalid patch hunk on line 2: '*** Frobnicate File: foo' is not a valid hunk header. Valid "
		"hunk headers: '*** Add File: {path}', '*** Delete File: {path}', '*** Update File: {path}'");
	expect_error("*** Begin Patch\n*** Update File: a\n@@\n*** End Patch",
		     "invalid hunk at line 4, Update hunk does not contain any lines",
		     "Invalid patch hunk on line 4: Update hunk does not contain any lines");
	expect_error("*** Begin Patch\n*** Update File: a\n@@\n*** End of File\n*** End Patch",
		     "invalid hunk at line 4, Update hunk does not contain any lines",
		     "Invalid patch hunk on line 4: Update hunk does not contain any lines");
	expect_error("*** Begin Patch\n*** Update File: a\n@@\nbad\n*** End Patch",
		     "invalid hunk at line 4, Unexpected line found in update hunk: 'bad'. Every line should "
		     "start with ' ' (context line), '+' (added line), or '-' (removed line)",
		     "Invalid patch hunk on line 4: Unexpected line found in update hunk: 'bad'. Every line "
		     "should start with ' ' (context line), '+' (added line), or '-' (removed line)");
	expect_error(
		"*** Begin Patch\n*** Update File: a\n@@\n+x\nbad\n*** End Patch",
		"invalid hunk at line 5, Expected update hunk to start with a @@ context marker, got: 'bad'",
		"Invalid patch hunk on line 5: Expected update hunk to start with a @@ context marker, got: "
		"'bad'");
	/* A line that is not a hunk header after an add hunk's '+' lines. */
	expect_error(
		"*** Begin Patch\n*** Add File: a\n+x\nstray\n*** End Patch",
		"invalid hunk at line 4, 'stray' is not a valid hunk header. Valid hunk headers: '*** Add "
		"File: {path}', '*** Delete File: {path}', '*** Update File: {path}'",
		"Invalid patch hunk on line 4: 'stray' is not a valid hunk header. Valid hunk headers: '*** "
		"Add File: {path}', '*** Delete File: {path}', '*** Update File: {path}'");

	struct patch *p;
	struct patch_error err;
	assert_int_equal(patch_parse("*** Begin Patch\n\0*** End Patch", 30, CWD, &p, &err), -EINVAL);
	patch_error_clear(&err);
}

/* ---- seek_sequence ------------------------------------------------------------------------------ */

static void test_seek_sequence(void **state)
{
	(void)state;
	char *lines[] = { "foo", "bar", "baz" };
	char *bar_baz[] = { "bar", "baz" };
	assert_int_equal(patch_seek_sequence(lines, 3, bar_baz, 2, 0, false), 1);
	assert_int_equal(patch_seek_sequence(lines, 3, bar_baz, 2, 2, false), -1);
	assert_int_equal(patch_seek_sequence(lines, 3, NULL, 0, 2, false), 2);

	char *padded_right[] = { "foo   ", "bar\t\t" };
	char *foo_bar[] = { "foo", "bar" };
	assert_int_equal(patch_seek_sequence(padded_right, 2, foo_bar, 2, 0, false), 0);

	char *padded[] = { "    foo   ", "   bar\t" };
	assert_int_equal(patch_seek_sequence(padded, 2, foo_bar, 2, 0, false), 0);

	char *one[] = { "just one line" };
	char *three[] = { "too", "many", "lines" };
	assert_int_equal(patch_seek_sequence(one, 1, three, 3, 0, false), -1);

	/* Typographic punctuation in the file, ASCII in the patch. */
	char *fancy[] = { "x", "import asyncio  # local import \xe2\x80\x93 avoids top\xe2\x80\x91level dep",
			  "say \xe2\x80\x9chi\xe2\x80\x9d it\xe2\x80\x99s",
			  "a\xc2\xa0"
			  "b" };
	char *plain[] = { "import asyncio  # local import - avoids top-level dep", "say \"hi\" it's", "a b" };
	assert_int_equal(patch_seek_sequence(fancy, 4, plain, 3, 0, false), 1);

	/* An exact match later wins over a fuzzy one earlier: passes run one after another. */
	char *both[] = { "key ", "key" };
	char *key[] = { "key" };
	assert_int_equal(patch_seek_sequence(both, 2, key, 1, 0, false), 1);

	/* eof: only the window ending at the last line. */
	char *repeated[] = { "a", "b", "a", "b", "c" };
	char *ab[] = { "a", "b" };
	char *bc[] = { "b", "c" };
	assert_int_equal(patch_seek_sequence(repeated, 5, ab, 2, 0, false), 0);
	assert_int_equal(patch_seek_sequence(repeated, 5, ab, 2, 0, true), -1);
	assert_int_equal(patch_seek_sequence(repeated, 5, bc, 2, 0, true), 3);
}

/* ---- deriving updates -------------------------------------------------------------------------- */

/* Parse a one-hunk update patch around @body and apply it to @old; return the new text or the
 * error message (malloc'd either way), with *@rc the result. */
static char *derive(const char *body, const char *old, int *rc)
{
	char text[2048];
	snprintf(text, sizeof(text), "*** Begin Patch\n*** Update File: f.txt\n%s\n*** End Patch", body);
	struct patch *p = parse_ok(text);
	char *out = NULL, *err = NULL;
	size_t out_len = 0;
	*rc = patch_derive_update(&p->hunks[0], old, strlen(old), &out, &out_len, &err);
	patch_free(p);
	if (*rc == 0) {
		assert_null(err);
		assert_int_equal(out_len, strlen(out));
		return out;
	}
	assert_null(out);
	return err;
}

static void expect_derive(const char *body, const char *old, const char *want)
{
	int rc;
	char *got = derive(body, old, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(got, want);
	free(got);
}

static void expect_derive_error(const char *body, const char *old, const char *want)
{
	int rc;
	char *got = derive(body, old, &rc);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(got, want);
	free(got);
}

static void test_derive_update(void **state)
{
	(void)state;
	expect_derive("@@\n foo\n-bar\n+baz", "foo\nbar\n", "foo\nbaz\n");
	/* Several chunks in one hunk. */
	expect_derive("@@\n foo\n-bar\n+BAR\n@@\n baz\n-qux\n+QUX", "foo\nbar\nbaz\nqux\n",
		      "foo\nBAR\nbaz\nQUX\n");
	expect_derive("@@\n-line2\n+changed2\n@@\n-line4\n+changed4", "line1\nline2\nline3\nline4\n",
		      "line1\nchanged2\nline3\nchanged4\n");
	/* Context anchoring: "@@ def b" skips the first identical body. */
	expect_derive("@@ def b():\n-    pass\n+    return 2", "def a():\n    pass\ndef b():\n    pass\n",
		      "def a():\n    pass\ndef b():\n    return 2\n");
	/* End of file: the last occurrence is replaced, not the first. */
	expect_derive("@@\n-x\n+y\n*** End of File", "x\nmid\nx\n", "x\nmid\ny\n");
	/* A pure addition goes at the end, whatever its context. */
	expect_derive("@@\n+added", "a\nb\n", "a\nb\nadded\n");
	/* Deletion only; deleting everything leaves an empty file. */
	expect_derive("@@\n keep\n-drop", "keep\ndrop\n", "keep\n");
	expect_derive("@@\n-only", "only\n", "");
	/* A file without a final newline gets one. */
	expect_derive("@@\n-no newline at end\n+first line\n+second line", "no newline at end",
		      "first line\nsecond line\n");
	/* A trailing empty old line stands for the final newline. */
	expect_derive("@@\n-last\n+LAST\n \n*** End of File", "first\nlast\n", "first\nLAST\n");
	/* Repeated lines keep the order the patch gives. */
	expect_derive("@@\n-a\n-b\n+b\n+b\n+a", "a\nb\n", "b\nb\na\n");
	/* Fuzzy matches: trailing whitespace in the file, unicode dashes. */
	expect_derive("@@\n-foo\n+FOO", "foo  \nbar\n", "FOO\nbar\n");
	expect_derive("@@\n-naïve café\n+naïve café ✅", "line1\nnaïve café\nline3\n",
		      "line1\nnaïve café ✅\nline3\n");
	/* A CRLF file matches through the trailing-whitespace pass; new lines are LF (historical). */
	expect_derive("@@\n-one\n+uno", "one\r\ntwo\r\n", "uno\ntwo\r\n");

	expect_derive_error("@@\n-missing\n+changed", "line1\nline2\n",
			    "Failed to find expected lines in " CWD "/f.txt:\nmissing");
	expect_derive_error("@@ class Nope\n-x\n+y", "x\n",
			    "Failed to find context 'class Nope' in " CWD "/f.txt");
	expect_derive_error("@@\n-a\n-b\n \n+c", "a\nx\n",
			    "Failed to find expected lines in " CWD "/f.txt:\na\nb\n");
}

/* ---- unified diff ------------------------------------------------------------------------------ */

static void expect_diff(const char *old, const char *new_text, size_t context, const char *want)
{
	char *got = patch_unified_diff(old, strlen(old), new_text, strlen(new_text), context);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_unified_diff(void **state)
{
	(void)state;
	expect_diff("a\nb\nc\n", "a\nb\nc\n", 1, "");
	expect_diff("a\nb\nc\n", "a\nB\nc\n", 1, "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
	expect_diff("", "x\n", 1, "@@ -0,0 +1 @@\n+x\n");
	expect_diff("x\n", "", 1, "@@ -1 +0,0 @@\n-x\n");
	expect_diff("a", "b", 1,
		    "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n");
	expect_diff("a\nb", "a\nb\n", 1, "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n");
	/* Far-apart changes make two hunks at context 1 and one at context 3. */
	const char *ten = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
	const char *ten2 = "1\nTWO\n3\n4\n5\n6\n7\nEIGHT\n9\n10\n";
	expect_diff(ten, ten2, 1, "@@ -1,3 +1,3 @@\n 1\n-2\n+TWO\n 3\n@@ -7,3 +7,3 @@\n 7\n-8\n+EIGHT\n 9\n");
	expect_diff(ten, ten2, 3,
		    "@@ -1,10 +1,10 @@\n 1\n-2\n+TWO\n 3\n 4\n 5\n 6\n 7\n-8\n+EIGHT\n 9\n 10\n");
	expect_diff(ten, ten2, 0, "@@ -2 +2 @@\n-2\n+TWO\n@@ -8 +8 @@\n-8\n+EIGHT\n");
	/* An insertion between lines. */
	expect_diff("a\nb\n", "a\nnew\nb\n", 1, "@@ -1,2 +1,3 @@\n a\n+new\n b\n");
	/* similar's compaction slides the insert past the equal line, and its headers then come out
	 * as the reference prints them, odd ranges included. */
	expect_diff("b\na\n", "a\na\n", 1, "@@ -1 +2 @@\n-b\n a\n+a\n");
	expect_diff("b\na\nd", "a\nx\nd\na\nb", 0,
		    "@@ -1 +3,0 @@\n-b\n@@ -3 +2,4 @@\n-d\n\\ No newline at end of file\n+x\n+d\n+a\n+b\n"
		    "\\ No newline at end of file\n");
}

static void test_change_diff(void **state)
{
	(void)state;
	struct patch *p =
		parse_ok("*** Begin Patch\n*** Add File: n.txt\n+hello\n*** Delete File: d.txt\n"
			 "*** Update File: u.txt\n*** Move to: sub/v.txt\n@@\n-old\n+new\n*** End Patch");
	char *out = NULL, *err = NULL;
	assert_int_equal(patch_change_diff(&p->hunks[0], NULL, 0, &out, &err), 0);
	assert_string_equal(out, "hello\n");
	free(out);
	assert_int_equal(patch_change_diff(&p->hunks[1], "gone\n", 5, &out, &err), 0);
	assert_string_equal(out, "gone\n");
	free(out);
	assert_int_equal(patch_change_diff(&p->hunks[2], "keep\nold\n", 9, &out, &err), 0);
	assert_string_equal(out, "@@ -1,2 +1,2 @@\n keep\n-old\n+new\n\n\nMoved to: " CWD "/sub/v.txt");
	free(out);
	assert_int_equal(patch_change_diff(&p->hunks[2], "other\n", 6, &out, &err), -EINVAL);
	assert_null(out);
	assert_string_equal(err, "Failed to find expected lines in " CWD "/u.txt:\nold");
	free(err);
	patch_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_every_hunk_kind),
		cmocka_unit_test(test_parse_update_then_add),
		cmocka_unit_test(test_parse_chunks),
		cmocka_unit_test(test_parse_empty_patch_and_padding),
		cmocka_unit_test(test_parse_paths),
		cmocka_unit_test(test_parse_heredoc),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_seek_sequence),
		cmocka_unit_test(test_derive_update),
		cmocka_unit_test(test_unified_diff),
		cmocka_unit_test(test_change_diff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
