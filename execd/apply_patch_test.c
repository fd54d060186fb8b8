/* SPDX-License-Identifier: MIT */
/* apply_patch_test.c - cmocka tests that run the built agentd-apply-patch in scratch directories:
 * the reference's CLI scenarios (tests/suite/tool.rs, tests/fixtures/scenarios) with their exact
 * stdout, stderr and exit status, and the files left behind. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char binary[PATH_MAX];
static char dir[PATH_MAX];

/* "@dir/@rel" in one of a few rotating buffers. */
static const char *at(const char *rel)
{
	static char ring[8][PATH_MAX + 64];
	static unsigned next;
	char *out = ring[next++ % 8];
	snprintf(out, sizeof(ring[0]), "%s/%s", dir, rel);
	return out;
}

static void put(const char *rel, const char *data)
{
	int fd = open(at(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

/* The file's content (static buffer), or NULL when it does not exist. */
static const char *get(const char *rel)
{
	static char buf[8192];
	int fd = open(at(rel), O_RDONLY);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

struct run {
	int status;
	char out[8192], err[8192];
};

static void slurp(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;
	while (n + 1 < cap && (r = read(fd, buf + n, cap - n - 1)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
}

/*
 * Run the program in @dir with @patch on stdin (@as_arg false) or as argv[1], optionally under
 * @prefix (argv of a wrapper such as bwrap, NULL-terminated). Output is small, so reading stdout
 * to its end before stderr cannot deadlock.
 */
static void run_in(struct run *r, const char *patch, bool as_arg, const char *const *prefix)
{
	int in[2], out[2], err[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(err), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		for (int fd = 3; fd < 64; fd++)
			close(fd);
		if (chdir(dir) < 0)
			_exit(126);
		const char *argv[32];
		size_t n = 0;
		for (; prefix && prefix[n]; n++)
			argv[n] = prefix[n];
		argv[n++] = binary;
		if (as_arg)
			argv[n++] = patch;
		argv[n] = NULL;
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (!as_arg && patch)
		assert_int_equal(write(in[1], patch, strlen(patch)), (ssize_t)strlen(patch));
	close(in[1]);
	slurp(out[0], r->out, sizeof(r->out));
	slurp(err[0], r->err, sizeof(r->err));
	close(out[0]);
	close(err[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void run(struct run *r, const char *patch)
{
	run_in(r, patch, true, NULL);
}

static void expect_success(const char *patch, const char *stdout_text)
{
	struct run r;
	run(&r, patch);
	assert_string_equal(r.err, "");
	assert_string_equal(r.out, stdout_text);
	assert_int_equal(r.status, 0);
}

/* Expect exit 1, nothing on stdout, and @fmt (with "%s" for the scratch dir, if any) on stderr. */
static void expect_failure(const char *patch, const char *fmt)
{
	struct run r;
	char want[4096];
	run(&r, patch);
	snprintf(want, sizeof(want), fmt, dir, dir);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, want);
	assert_int_equal(r.status, 1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	chmod(path, 0755);
	return remove(path);
}

static int setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/apply_patch_test.XXXXXX";
	if (!mkdtemp(tmpl))
		return -1;
	/* The reference prints resolved absolute paths; resolve /tmp once here. */
	return realpath(tmpl, dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	chmod(dir, 0755);
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- success ----------------------------------------------------------------------------------- */

static void test_multiple_operations(void **state)
{
	(void)state;
	put("modify.txt", "line1\nline2\n");
	put("delete.txt", "obsolete\n");
	expect_success(
		"*** Begin Patch\n*** Add File: nested/new.txt\n+created\n*** Delete File: delete.txt\n"
		"*** Update File: modify.txt\n@@\n-line2\n+changed\n*** End Patch",
		"Success. Updated the following files:\nA nested/new.txt\nM modify.txt\nD delete.txt\n");
	assert_string_equal(get("nested/new.txt"), "created\n");
	assert_string_equal(get("modify.txt"), "line1\nchanged\n");
	assert_null(get("delete.txt"));
}

static void test_patch_on_stdin(void **state)
{
	(void)state;
	struct run r;
	run_in(&r, "*** Begin Patch\n*** Add File: bar.md\n+This is a new file\n*** End Patch\n", false,
	       NULL);
	assert_string_equal(r.out, "Success. Updated the following files:\nA bar.md\n");
	assert_int_equal(r.status, 0);
	assert_string_equal(get("bar.md"), "This is a new file\n");
}

static void test_multiple_chunks_and_eof(void **state)
{
	(void)state;
	put("multi.txt", "line1\nline2\nline3\nline4\n");
	expect_success(
		"*** Begin Patch\n*** Update File: multi.txt\n@@\n-line2\n+changed2\n@@\n-line4\n+changed4\n"
		"*** End Patch",
		"Success. Updated the following files:\nM multi.txt\n");
	assert_string_equal(get("multi.txt"), "line1\nchanged2\nline3\nchanged4\n");

	put("tail.txt", "first\nsecond\n");
	expect_success(
		"*** Begin Patch\n*** Update File: tail.txt\n@@\n-second\n+second updated\n*** End of File\n"
		"*** End Patch",
		"Success. Updated the following files:\nM tail.txt\n");
	assert_string_equal(get("tail.txt"), "first\nsecond updated\n");
}

static void test_move_to_new_directory(void **state)
{
	(void)state;
	assert_int_equal(mkdir(at("old"), 0755), 0);
	put("old/name.txt", "old content\n");
	put("old/other.txt", "unrelated file\n");
	expect_success(
		"*** Begin Patch\n*** Update File: old/name.txt\n*** Move to: renamed/dir/name.txt\n@@\n"
		"-old content\n+new content\n*** End Patch",
		"Success. Updated the following files:\nM renamed/dir/name.txt\n");
	assert_null(get("old/name.txt"));
	assert_string_equal(get("renamed/dir/name.txt"), "new content\n");
	assert_string_equal(get("old/other.txt"), "unrelated file\n");

	/* Over an existing destination. */
	put("old/name.txt", "from\n");
	expect_success(
		"*** Begin Patch\n*** Update File: old/name.txt\n*** Move to: renamed/dir/name.txt\n@@\n"
		"-from\n+new\n*** End Patch",
		"Success. Updated the following files:\nM renamed/dir/name.txt\n");
	assert_string_equal(get("renamed/dir/name.txt"), "new\n");
}

static void test_add_overwrites_and_keeps_mode(void **state)
{
	(void)state;
	put("duplicate.txt", "old content\n");
	assert_int_equal(chmod(at("duplicate.txt"), 0751), 0);
	expect_success("*** Begin Patch\n*** Add File: duplicate.txt\n+new content\n*** End Patch",
		       "Success. Updated the following files:\nA duplicate.txt\n");
	assert_string_equal(get("duplicate.txt"), "new content\n");
	struct stat st;
	assert_int_equal(stat(at("duplicate.txt"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
}

/* A symlink is written through: the link stays, its target changes. */
static void test_update_through_symlink(void **state)
{
	(void)state;
	put("target.txt", "a\n");
	assert_int_equal(symlink("target.txt", at("link.txt")), 0);
	expect_success("*** Begin Patch\n*** Update File: link.txt\n@@\n-a\n+b\n*** End Patch",
		       "Success. Updated the following files:\nM link.txt\n");
	struct stat st;
	assert_int_equal(lstat(at("link.txt"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_string_equal(get("target.txt"), "b\n");
}

static void test_update_details(void **state)
{
	(void)state;
	put("no_newline.txt", "no newline at end");
	expect_success(
		"*** Begin Patch\n*** Update File: no_newline.txt\n@@\n-no newline at end\n+first line\n"
		"+second line\n*** End Patch",
		"Success. Updated the following files:\nM no_newline.txt\n");
	assert_string_equal(get("no_newline.txt"), "first line\nsecond line\n");

	put("input.txt", "line1\nline2\n");
	expect_success("*** Begin Patch\n*** Update File: input.txt\n@@\n+added line 1\n+added line 2\n*** "
		       "End Patch",
		       "Success. Updated the following files:\nM input.txt\n");
	assert_string_equal(get("input.txt"), "line1\nline2\nadded line 1\nadded line 2\n");

	put("lines.txt", "line1\nline2\nline3\n");
	expect_success(
		"*** Begin Patch\n*** Update File: lines.txt\n@@\n line1\n-line2\n line3\n*** End Patch",
		"Success. Updated the following files:\nM lines.txt\n");
	assert_string_equal(get("lines.txt"), "line1\nline3\n");

	put("foo.txt", "old\n");
	expect_success("*** Begin Patch\n  *** Update File: foo.txt\n@@\n-old\n+new\n*** End Patch",
		       "Success. Updated the following files:\nM foo.txt\n");
	assert_string_equal(get("foo.txt"), "new\n");

	put("file.txt", "one\n");
	expect_success("*** Begin Patch \n*** Update File: file.txt\n@@\n-one\n+two\n *** End Patch",
		       "Success. Updated the following files:\nM file.txt\n");
	assert_string_equal(get("file.txt"), "two\n");

	put("uni.txt", "line1\nnaïve café\nline3\n");
	expect_success("*** Begin Patch\n*** Update File: uni.txt\n@@\n line1\n-naïve café\n+naïve café ✅\n"
		       "*** End Patch ",
		       "Success. Updated the following files:\nM uni.txt\n");
	assert_string_equal(get("uni.txt"), "line1\nnaïve café ✅\nline3\n");
}

/* ---- failures ---------------------------------------------------------------------------------- */

static void test_rejections(void **state)
{
	(void)state;
	put("foo.txt", "stable\n");
	expect_failure("*** Begin Patch\n*** End Patch", "No files were modified.\n");
	expect_failure("*** Begin Patch\n*** Delete File: missing.txt\n*** End Patch",
		       "Failed to delete file %s/missing.txt\n");
	expect_failure("*** Begin Patch\n*** Update File: foo.txt\n*** End Patch",
		       "Invalid patch hunk on line 2: Update file hunk for path 'foo.txt' is empty\n");
	expect_failure(
		"*** Begin Patch\n*** Update File: missing.txt\n@@\n-old\n+new\n*** End Patch",
		"Failed to read file to update %s/missing.txt: No such file or directory (os error 2)\n");
	expect_failure(
		"*** Begin Patch\n*** Frobnicate File: foo\n*** End Patch",
		"Invalid patch hunk on line 2: '*** Frobnicate File: foo' is not a valid hunk header. Valid "
		"hunk headers: '*** Add File: {path}', '*** Delete File: {path}', '*** Update File: "
		"{path}'\n");
	expect_failure("not a patch",
		       "Invalid patch: The first line of the patch must be '*** Begin Patch'\n");
	assert_int_equal(mkdir(at("dir"), 0755), 0);
	expect_failure("*** Begin Patch\n*** Delete File: dir\n*** End Patch",
		       "Failed to delete file %s/dir\n");
	assert_string_equal(get("foo.txt"), "stable\n");
}

static void test_missing_context_leaves_file(void **state)
{
	(void)state;
	put("modify.txt", "line1\nline2\n");
	expect_failure("*** Begin Patch\n*** Update File: modify.txt\n@@\n-missing\n+changed\n*** End Patch",
		       "Failed to find expected lines in %s/modify.txt:\nmissing\n");
	assert_string_equal(get("modify.txt"), "line1\nline2\n");
	expect_failure("*** Begin Patch\n*** Update File: modify.txt\n@@ def nope\n-line1\n+x\n*** End Patch",
		       "Failed to find context 'def nope' in %s/modify.txt\n");
	assert_string_equal(get("modify.txt"), "line1\nline2\n");
	/* No temporary file is left behind. */
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_nlink, 2);
}

/* Earlier hunks stay applied when a later one fails (the reference's fixture 015). */
static void test_failure_after_partial_success(void **state)
{
	(void)state;
	expect_failure(
		"*** Begin Patch\n*** Add File: created.txt\n+hello\n*** Update File: missing.txt\n@@\n"
		"-old\n+new\n*** End Patch",
		"Failed to read file to update %s/missing.txt: No such file or directory (os error 2)\n");
	assert_string_equal(get("created.txt"), "hello\n");
}

static void test_usage(void **state)
{
	(void)state;
	struct run r;
	run_in(&r, "", false, NULL);
	assert_int_equal(r.status, 2);
	assert_string_equal(r.err, "Usage: apply_patch [--preserve-crlf] 'PATCH'\n"
				   "       echo 'PATCH' | apply_patch [--preserve-crlf]\n");
	run_in(&r, "\xff\xfe", false, NULL);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.err,
			    "Error: Failed to read PATCH from stdin.\nstream did not contain valid UTF-8\n");
}

/*
 * A directory the process may not write: as another user a mode-0555 directory does it; as root
 * the directory is bound read-only with bubblewrap (the sandbox this runs in), when it works.
 */
static void test_read_only_directory(void **state)
{
	(void)state;
	static const char patch[] =
		"*** Begin Patch\n*** Add File: new.txt\n+x\n*** Update File: keep.txt\n@@\n"
		"-a\n+b\n*** End Patch";
	put("keep.txt", "a\n");
	struct run r;
	char want[PATH_MAX + 64];
	if (geteuid() != 0) {
		assert_int_equal(chmod(dir, 0555), 0);
		run_in(&r, patch, true, NULL);
		chmod(dir, 0755);
	} else {
		const char *const bwrap[] = { "/usr/bin/bwrap", "--dev-bind", "/", "/", "--ro-bind", dir, dir,
					      "--chdir",	dir,	      NULL };
		if (access(bwrap[0], X_OK) != 0)
			skip();
		run_in(&r, patch, true, bwrap);
		if (strncmp(r.err, "Failed", 6) != 0)
			skip(); /* bubblewrap itself could not run here */
	}
	snprintf(want, sizeof(want), "Failed to write file %s/new.txt\n", dir);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, want);
	assert_int_equal(r.status, 1);
	assert_null(get("new.txt"));
	assert_string_equal(get("keep.txt"), "a\n");
}

int main(void)
{
	const char *builddir = getenv("AGENTD_BUILDDIR");
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/execd/agentd-apply-patch", builddir ? builddir : ".");
	if (!realpath(path, binary)) {
		fprintf(stderr, "apply_patch_test: %s: %s (build it first)\n", path, strerror(errno));
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_multiple_operations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patch_on_stdin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiple_chunks_and_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_to_new_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_overwrites_and_keeps_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_through_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_details, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_context_leaves_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_after_partial_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_directory, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
