/* SPDX-License-Identifier: MIT */
/* fsops_test.c - cmocka tests for execd's file operations on a scratch tree: each operation's happy
 * paths and failures (worded as the reference words them), symlinks, and the sandbox scope. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsops.h"

/* ---- scratch tree ---------------------------------------------------------------------------- */

static char base_dir[256];

/* "@base_dir/@rel" in one of a few rotating buffers, so a test can hold several at once. */
static const char *at(const char *rel)
{
	static char ring[8][AGENTD_PATH_MAX];
	static unsigned next;
	char *out = ring[next++ % 8];
	snprintf(out, AGENTD_PATH_MAX, "%s/%s", base_dir, rel);
	return out;
}

static void put(const char *rel, const void *data, size_t len)
{
	int fd = open(at(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void put_text(const char *rel, const char *text)
{
	put(rel, text, strlen(text));
}

/* The content of @rel, NUL-terminated, in a static buffer; NULL when it cannot be read. */
static const char *get_text(const char *rel)
{
	static char buf[4096];
	int fd = open(at(rel), O_RDONLY);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static void mk(const char *rel)
{
	assert_int_equal(mkdir(at(rel), 0755), 0);
}

static void ln(const char *target, const char *rel)
{
	assert_int_equal(symlink(target, at(rel)), 0);
}

static bool exists(const char *rel)
{
	struct stat st;
	return lstat(at(rel), &st) == 0;
}

static bool is_link(const char *rel)
{
	struct stat st;
	return lstat(at(rel), &st) == 0 && S_ISLNK(st.st_mode);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup(void **state)
{
	(void)state;
	snprintf(base_dir, sizeof(base_dir), "/tmp/fsops-test-XXXXXX");
	if (!mkdtemp(base_dir))
		return -1;
	/* The scope tests compare with canonical roots: /tmp may itself be a symlink somewhere. */
	char real[AGENTD_PATH_MAX];
	if (!realpath(base_dir, real) || strlen(real) >= sizeof(base_dir))
		return -1;
	strcpy(base_dir, real);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#define assert_os_error(rc, err, errnum, text)                                                               \
	do {                                                                                                 \
		assert_int_equal((rc), -(errnum));                                                           \
		assert_false((err).is_refusal);                                                              \
		assert_string_equal((err).message, (text));                                                  \
	} while (0)

#define assert_refusal(rc, err, errnum, text)                                                                \
	do {                                                                                                 \
		assert_int_equal((rc), -(errnum));                                                           \
		assert_true((err).is_refusal);                                                               \
		assert_string_equal((err).message, (text));                                                  \
	} while (0)

#define ENOENT_TEXT "No such file or directory (os error 2)"
#define ENOTDIR_TEXT "Not a directory (os error 20)"
#define EEXIST_TEXT "File exists (os error 17)"
#define EISDIR_TEXT "Is a directory (os error 21)"

/* ---- fsops_read_file ------------------------------------------------------------------------- */

static void test_read_binary_exact(void **state)
{
	(void)state;
	uint8_t want[3 * 256 + 7];
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)(i * 7 + (i >> 8));
	put("bin", want, sizeof(want));
	FsError err;
	uint8_t *data = NULL;
	size_t len = 0;
	assert_int_equal(fsops_read_file(NULL, at("bin"), 0, &data, &len, &err), 0);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(data, want, len);
	free(data);

	put("empty", "", 0);
	assert_int_equal(fsops_read_file(NULL, at("empty"), 0, &data, &len, &err), 0);
	assert_non_null(data);
	assert_int_equal(len, 0);
	free(data);
}

static void test_read_through_symlink_and_spelling(void **state)
{
	(void)state;
	put_text("f", "hello");
	ln(at("f"), "link");
	mk("d");
	FsError err;
	uint8_t *data;
	size_t len;
	assert_int_equal(fsops_read_file(NULL, at("link"), 0, &data, &len, &err), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(data, "hello", 5);
	free(data);
	assert_int_equal(fsops_read_file(NULL, at("d/../f"), 0, &data, &len, &err), 0);
	free(data);
}

static void test_read_refusals(void **state)
{
	(void)state;
	char want[AGENTD_PATH_MAX + 64];
	FsError err;
	uint8_t *data;
	size_t len;
	mk("dir");
	assert_int_equal(mkfifo(at("fifo"), 0644), 0);
	put_text("f", "0123456789");

	/* Named as normalised, as the reference's AbsolutePathBuf does. */
	snprintf(want, sizeof(want), "path `%s` is not a file", at("dir"));
	assert_refusal(fsops_read_file(NULL, at("dir/./"), 0, &data, &len, &err), err, EINVAL, want);
	snprintf(want, sizeof(want), "path `%s` is not a file", at("fifo"));
	assert_refusal(fsops_read_file(NULL, at("fifo"), 0, &data, &len, &err), err, EINVAL, want);
	assert_refusal(fsops_read_file(NULL, "/dev/null", 0, &data, &len, &err), err, EINVAL,
		       "path `/dev/null` is not a file");
	snprintf(want, sizeof(want), "path `%s` is too large to read: 10 bytes, the limit is 9 bytes",
		 at("f"));
	assert_refusal(fsops_read_file(NULL, at("f"), 9, &data, &len, &err), err, EFBIG, want);
	assert_int_equal(fsops_read_file(NULL, at("f"), 10, &data, &len, &err), 0);
	free(data);
	assert_refusal(fsops_read_file(NULL, "rel/x", 0, &data, &len, &err), err, EINVAL,
		       "path `rel/x` is not absolute");
}

static void test_read_os_errors(void **state)
{
	(void)state;
	FsError err;
	uint8_t *data;
	size_t len;
	put_text("f", "x");
	ln(at("nowhere"), "dangling");
	assert_os_error(fsops_read_file(NULL, at("missing"), 0, &data, &len, &err), err, ENOENT, ENOENT_TEXT);
	assert_os_error(fsops_read_file(NULL, at("dangling"), 0, &data, &len, &err), err, ENOENT,
			ENOENT_TEXT);
	assert_os_error(fsops_read_file(NULL, at("f/x"), 0, &data, &len, &err), err, ENOTDIR, ENOTDIR_TEXT);
	assert_os_error(fsops_read_file(NULL, at("no/such/dir/f"), 0, &data, &len, &err), err, ENOENT,
			ENOENT_TEXT);
}

/* ---- fsops_write_file ------------------------------------------------------------------------ */

static void test_write_create_and_truncate(void **state)
{
	(void)state;
	FsError err;
	uint8_t bytes[] = { 0, 255, 10, 13, 0, 128, 'x' };
	mode_t mask = umask(022);
	assert_int_equal(fsops_write_file(NULL, at("new"), bytes, sizeof(bytes), &err), 0);
	umask(mask);
	struct stat st;
	assert_int_equal(stat(at("new"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(st.st_size, sizeof(bytes));
	uint8_t *data;
	size_t len;
	assert_int_equal(fsops_read_file(NULL, at("new"), 0, &data, &len, &err), 0);
	assert_int_equal(len, sizeof(bytes));
	assert_memory_equal(data, bytes, len);
	free(data);

	put_text("long", "a much longer old content");
	chmod(at("long"), 0600);
	assert_int_equal(fsops_write_file(NULL, at("long"), (const uint8_t *)"hi", 2, &err), 0);
	assert_string_equal(get_text("long"), "hi");
	assert_int_equal(stat(at("long"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* an existing file keeps its mode */

	assert_int_equal(fsops_write_file(NULL, at("long"), NULL, 0, &err), 0);
	assert_string_equal(get_text("long"), "");
}

static void test_write_through_symlink(void **state)
{
	(void)state;
	FsError err;
	put_text("target", "old");
	ln(at("target"), "link");
	assert_int_equal(fsops_write_file(NULL, at("link"), (const uint8_t *)"new", 3, &err), 0);
	assert_true(is_link("link"));
	assert_string_equal(get_text("target"), "new");
}

static void test_write_errors(void **state)
{
	(void)state;
	FsError err;
	mk("dir");
	put_text("f", "x");
	assert_int_equal(mkfifo(at("fifo"), 0644), 0);
	assert_os_error(fsops_write_file(NULL, at("dir"), (const uint8_t *)"x", 1, &err), err, EISDIR,
			EISDIR_TEXT);
	assert_os_error(fsops_write_file(NULL, at("nope/w"), (const uint8_t *)"x", 1, &err), err, ENOENT,
			ENOENT_TEXT);
	assert_os_error(fsops_write_file(NULL, at("f/w"), (const uint8_t *)"x", 1, &err), err, ENOTDIR,
			ENOTDIR_TEXT);
	/* No reader: fails at once rather than hanging the worker. */
	assert_os_error(fsops_write_file(NULL, at("fifo"), (const uint8_t *)"x", 1, &err), err, ENXIO,
			"No such device or address (os error 6)");
}

/* ---- fsops_create_directory ------------------------------------------------------------------ */

static void test_mkdir_recursive(void **state)
{
	(void)state;
	FsError err;
	struct stat st;
	assert_int_equal(fsops_create_directory(NULL, at("a/b/c"), true, &err), 0);
	assert_int_equal(stat(at("a/b/c"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(fsops_create_directory(NULL, at("a/b/c"), true, &err), 0); /* existing is fine */
	mk("real");
	ln(at("real"), "dlink");
	assert_int_equal(fsops_create_directory(NULL, at("dlink"), true, &err), 0);
	assert_int_equal(fsops_create_directory(NULL, at("dlink/new/deeper"), true, &err), 0);
	assert_int_equal(stat(at("real/new/deeper"), &st), 0);
	assert_int_equal(fsops_create_directory(NULL, "/", true, &err), 0);
}

static void test_mkdir_errors(void **state)
{
	(void)state;
	FsError err;
	put_text("f", "x");
	ln(at("nowhere"), "dangling");
	mk("d");
	assert_os_error(fsops_create_directory(NULL, at("d"), false, &err), err, EEXIST, EEXIST_TEXT);
	assert_os_error(fsops_create_directory(NULL, at("x/y"), false, &err), err, ENOENT, ENOENT_TEXT);
	assert_os_error(fsops_create_directory(NULL, at("f"), true, &err), err, EEXIST, EEXIST_TEXT);
	assert_os_error(fsops_create_directory(NULL, at("f"), false, &err), err, EEXIST, EEXIST_TEXT);
	assert_os_error(fsops_create_directory(NULL, at("f/x/y"), true, &err), err, ENOTDIR, ENOTDIR_TEXT);
	assert_os_error(fsops_create_directory(NULL, at("dangling"), true, &err), err, EEXIST, EEXIST_TEXT);
	assert_false(exists("nowhere"));
	assert_int_equal(fsops_create_directory(NULL, at("d/fresh"), false, &err), 0);
}

/* ---- fsops_get_metadata ---------------------------------------------------------------------- */

static void test_metadata(void **state)
{
	(void)state;
	FsError err;
	FsMetadata md;
	put_text("f", "hello");
	mk("d");
	ln(at("f"), "flink");
	ln(at("d"), "dlink");
	ln(at("nowhere"), "dangling");
	assert_int_equal(mkfifo(at("fifo"), 0644), 0);
	int64_t now_ms = (int64_t)time(NULL) * 1000;

	assert_int_equal(fsops_get_metadata(NULL, at("f"), &md, &err), 0);
	assert_true(md.is_file);
	assert_false(md.is_directory);
	assert_false(md.is_symlink);
	assert_int_equal(md.size, 5);
	assert_true(md.modified_at_ms > now_ms - 60000 && md.modified_at_ms < now_ms + 60000);
	assert_true(md.created_at_ms == 0 ||
		    (md.created_at_ms > now_ms - 60000 && md.created_at_ms < now_ms + 60000));

	assert_int_equal(fsops_get_metadata(NULL, at("d/"), &md, &err), 0);
	assert_true(md.is_directory);
	assert_false(md.is_file);
	assert_false(md.is_symlink);

	assert_int_equal(fsops_get_metadata(NULL, at("flink"), &md, &err), 0);
	assert_true(md.is_file);
	assert_true(md.is_symlink);
	assert_int_equal(fsops_get_metadata(NULL, at("dlink"), &md, &err), 0);
	assert_true(md.is_directory);
	assert_true(md.is_symlink);

	assert_int_equal(fsops_get_metadata(NULL, at("fifo"), &md, &err), 0);
	assert_false(md.is_file);
	assert_false(md.is_directory);

	assert_int_equal(fsops_get_metadata(NULL, "/", &md, &err), 0);
	assert_true(md.is_directory);

	assert_os_error(fsops_get_metadata(NULL, at("dangling"), &md, &err), err, ENOENT, ENOENT_TEXT);
	assert_os_error(fsops_get_metadata(NULL, at("missing"), &md, &err), err, ENOENT, ENOENT_TEXT);
	assert_os_error(fsops_get_metadata(NULL, at("f/x"), &md, &err), err, ENOTDIR, ENOTDIR_TEXT);
}

/* ---- fsops_read_directory -------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const FsDirEntry *)a)->file_name, ((const FsDirEntry *)b)->file_name);
}

/* "name:dir|file|other" of each entry, sorted, joined with spaces. */
static const char *listing(const FsScope *scope, const char *path)
{
	static char out[FSOPS_MESSAGE_MAX + 64];
	FsDirEntry *entries = NULL;
	size_t count = 0;
	FsError err;
	int rc = fsops_read_directory(scope, path, &entries, &count, &err);
	if (rc < 0) {
		snprintf(out, sizeof(out), "error %d: %s", rc, err.message);
		return out;
	}
	if (count > 0)
		qsort(entries, count, sizeof(*entries), entry_cmp);
	out[0] = '\0';
	for (size_t i = 0; i < count; i++) {
		const char *kind = entries[i].is_directory ? "dir" : entries[i].is_file ? "file" : "other";
		size_t n = strlen(out);
		snprintf(out + n, sizeof(out) - n, "%s%s:%s", i ? " " : "", entries[i].file_name, kind);
	}
	fsops_dir_entries_free(entries, count);
	return out;
}

static void test_read_directory(void **state)
{
	(void)state;
	mk("d");
	mk("d/sub");
	put_text("d/f", "x");
	ln(at("d/f"), "d/flink");
	ln(at("d/sub"), "d/dlink");
	ln(at("nowhere"), "d/dangling");
	assert_int_equal(mkfifo(at("d/fifo"), 0644), 0);
	put_text("d/\xff\xfe", "raw");
	mk("empty");
	put_text("file", "x");
	/* Symlinks typed by their targets; the dangling one left out, as the reference does. */
	assert_string_equal(listing(NULL, at("d")),
			    "dlink:dir f:file fifo:other flink:file sub:dir \xff\xfe:file");
	assert_string_equal(listing(NULL, at("d/dlink")), "");
	assert_string_equal(listing(NULL, at("empty")), "");
	assert_string_equal(listing(NULL, at("file")), "error -20: " ENOTDIR_TEXT);
	assert_string_equal(listing(NULL, at("missing")), "error -2: " ENOENT_TEXT);
}

/* ---- fsops_remove ---------------------------------------------------------------------------- */

static void test_remove(void **state)
{
	(void)state;
	FsError err;
	put_text("f", "x");
	assert_int_equal(fsops_remove(NULL, at("f"), true, true, &err), 0);
	assert_false(exists("f"));

	mk("tree");
	mk("tree/a");
	mk("tree/a/b");
	put_text("tree/a/b/deep", "x");
	put_text("tree/top", "x");
	mk("outside");
	put_text("outside/keep", "k");
	ln(at("outside"), "tree/a/link-out"); /* removal must not go through it */
	assert_int_equal(mkfifo(at("tree/fifo"), 0644), 0);
	assert_int_equal(fsops_remove(NULL, at("tree"), true, true, &err), 0);
	assert_false(exists("tree"));
	assert_string_equal(get_text("outside/keep"), "k");

	/* A symlink goes, its target stays (also when spelled with a trailing slash). */
	ln(at("outside"), "dlink");
	assert_int_equal(fsops_remove(NULL, at("dlink/"), true, true, &err), 0);
	assert_false(exists("dlink"));
	assert_string_equal(get_text("outside/keep"), "k");

	mk("empty");
	assert_int_equal(fsops_remove(NULL, at("empty"), false, true, &err), 0);
	assert_false(exists("empty"));
	put_text("plain", "x");
	assert_int_equal(fsops_remove(NULL, at("plain"), false, false, &err), 0);
}

static void test_remove_errors(void **state)
{
	(void)state;
	FsError err;
	mk("full");
	put_text("full/x", "x");
	put_text("f", "x");
	assert_os_error(fsops_remove(NULL, at("full"), false, true, &err), err, ENOTEMPTY,
			"Directory not empty (os error 39)");
	assert_true(exists("full/x"));
	assert_int_equal(fsops_remove(NULL, at("missing"), true, true, &err), 0);
	assert_int_equal(fsops_remove(NULL, at("no/such/parent"), true, true, &err), 0);
	assert_os_error(fsops_remove(NULL, at("missing"), true, false, &err), err, ENOENT, ENOENT_TEXT);
	/* force forgives a missing path, not a path through a file. */
	assert_os_error(fsops_remove(NULL, at("f/x"), true, true, &err), err, ENOTDIR, ENOTDIR_TEXT);
	assert_refusal(fsops_remove(NULL, "/", true, true, &err), err, EPERM, "refusing to remove `/`");
	assert_refusal(fsops_remove(NULL, "//.", true, true, &err), err, EPERM, "refusing to remove `/`");
}

/* Trees nested deeper than FSOPS_MAX_DEPTH are refused, not walked with ever more descriptors. */
static void test_too_deep(void **state)
{
	(void)state;
	FsError err;
	char want[AGENTD_PATH_MAX + 128];
	mk("deep");
	int fd = open(at("deep"), O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	for (unsigned i = 0; i < FSOPS_MAX_DEPTH + 1; i++) {
		assert_int_equal(mkdirat(fd, "d", 0755), 0);
		int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
		close(fd);
		assert_true(next >= 0);
		fd = next;
	}
	close(fd);
	snprintf(want, sizeof(want), "path `%s` nests directories more than %u deep", at("deep"),
		 FSOPS_MAX_DEPTH);
	assert_refusal(fsops_copy(NULL, at("deep"), at("deep-copy"), true, &err), err, ELOOP, want);
	assert_refusal(fsops_remove(NULL, at("deep"), true, true, &err), err, ELOOP, want);
	/* FSOPS_MAX_DEPTH directories in all are fine. */
	assert_int_equal(fsops_remove(NULL, at("deep/d/d"), true, true, &err), 0);
	assert_int_equal(fsops_remove(NULL, at("deep"), true, true, &err), 0);
	assert_false(exists("deep"));
}

/* ---- fsops_copy ------------------------------------------------------------------------------ */

static void test_copy_file(void **state)
{
	(void)state;
	FsError err;
	uint8_t bytes[70000];
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i ^ (i >> 9));
	put("src", bytes, sizeof(bytes));
	chmod(at("src"), 0751);
	assert_int_equal(fsops_copy(NULL, at("src"), at("dst"), false, &err), 0);
	uint8_t *data;
	size_t len;
	assert_int_equal(fsops_read_file(NULL, at("dst"), 0, &data, &len, &err), 0);
	assert_int_equal(len, sizeof(bytes));
	assert_memory_equal(data, bytes, len);
	free(data);
	struct stat st;
	assert_int_equal(stat(at("dst"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0751);

	put_text("small", "new");
	put_text("existing", "a longer old content");
	assert_int_equal(fsops_copy(NULL, at("small"), at("existing"), true, &err),
			 0); /* recursive ignored */
	assert_string_equal(get_text("existing"), "new");

	/* Onto itself, directly or through a symlink: nothing changes (the reference empties it). */
	ln(at("small"), "small-link");
	assert_int_equal(fsops_copy(NULL, at("small"), at("small"), false, &err), 0);
	assert_int_equal(fsops_copy(NULL, at("small"), at("small-link"), false, &err), 0);
	assert_string_equal(get_text("small"), "new");

	/* Onto a symlink to a file: written through it. */
	put_text("t2", "t2");
	ln(at("t2"), "t2-link");
	assert_int_equal(fsops_copy(NULL, at("small"), at("t2-link"), false, &err), 0);
	assert_true(is_link("t2-link"));
	assert_string_equal(get_text("t2"), "new");
}

static void test_copy_symlink(void **state)
{
	(void)state;
	FsError err;
	char target[256];
	mk("d");
	ln("relative/target", "link");
	ln(at("d"), "dlink");
	assert_int_equal(fsops_copy(NULL, at("link"), at("copy"), false, &err), 0);
	assert_true(is_link("copy"));
	ssize_t n = readlink(at("copy"), target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "relative/target");
	/* A symlink to a directory is a symlink: no recursive needed, nothing copied below it. */
	assert_int_equal(fsops_copy(NULL, at("dlink"), at("dlink2"), false, &err), 0);
	assert_true(is_link("dlink2"));
	assert_os_error(fsops_copy(NULL, at("link"), at("copy"), false, &err), err, EEXIST, EEXIST_TEXT);
}

static void test_copy_tree(void **state)
{
	(void)state;
	FsError err;
	mk("src");
	mk("src/sub");
	mk("src/sub/deeper");
	put_text("src/a", "A");
	put_text("src/sub/deeper/b", "B");
	ln("a", "src/rel-link");
	assert_int_equal(mkfifo(at("src/fifo"), 0644), 0);
	assert_int_equal(fsops_copy(NULL, at("src"), at("dst"), true, &err), 0);
	assert_string_equal(get_text("dst/a"), "A");
	assert_string_equal(get_text("dst/sub/deeper/b"), "B");
	assert_true(is_link("dst/rel-link"));
	assert_string_equal(get_text("dst/rel-link"), "A");
	assert_false(exists("dst/fifo")); /* skipped inside a tree */

	/* Onto an existing directory: merged, files overwritten, others kept. */
	mk("merge");
	put_text("merge/a", "OLD");
	put_text("merge/keep", "K");
	assert_int_equal(fsops_copy(NULL, at("src"), at("merge"), true, &err), 0);
	assert_string_equal(get_text("merge/a"), "A");
	assert_string_equal(get_text("merge/keep"), "K");
	assert_string_equal(get_text("merge/sub/deeper/b"), "B");

	/* A sibling whose name merely starts with the source's is no descendant. */
	assert_int_equal(fsops_copy(NULL, at("src"), at("srcx"), true, &err), 0);
	assert_string_equal(get_text("srcx/a"), "A");
}

static void test_copy_refusals(void **state)
{
	(void)state;
	FsError err;
	static const char descendant[] =
		"fs/copy cannot copy a directory to itself or one of its descendants";
	mk("dir");
	mk("dir/sub");
	put_text("dir/f", "x");
	ln(at("dir"), "dlink");
	put_text("plain", "p");
	assert_int_equal(mkfifo(at("fifo"), 0644), 0);

	assert_refusal(fsops_copy(NULL, at("dir"), at("dir2"), false, &err), err, EISDIR,
		       "fs/copy requires recursive: true when sourcePath is a directory");
	assert_false(exists("dir2"));
	assert_refusal(fsops_copy(NULL, at("dir"), at("dir"), true, &err), err, EINVAL, descendant);
	assert_refusal(fsops_copy(NULL, at("dir"), at("dir/sub/inner"), true, &err), err, EINVAL, descendant);
	assert_refusal(fsops_copy(NULL, at("dir"), at("dir/sub/.."), true, &err), err, EINVAL, descendant);
	assert_refusal(fsops_copy(NULL, at("dir"), at("dlink/sub/y"), true, &err), err, EINVAL, descendant);
	assert_refusal(fsops_copy(NULL, at("dir"), at("dlink"), true, &err), err, EINVAL, descendant);
	assert_refusal(fsops_copy(NULL, at("dir"), at("dir/f"), true, &err), err, EINVAL, descendant);
	assert_false(exists("dir/sub/inner"));
	assert_refusal(fsops_copy(NULL, at("fifo"), at("fifo2"), false, &err), err, EOPNOTSUPP,
		       "fs/copy only supports regular files, directories, and symlinks");
	assert_refusal(fsops_copy(NULL, "/dev/null", at("null2"), false, &err), err, EOPNOTSUPP,
		       "fs/copy only supports regular files, directories, and symlinks");
	assert_os_error(fsops_copy(NULL, at("missing"), at("m2"), true, &err), err, ENOENT, ENOENT_TEXT);
	assert_os_error(fsops_copy(NULL, at("dir"), at("plain"), true, &err), err, EEXIST, EEXIST_TEXT);
	assert_os_error(fsops_copy(NULL, at("plain"), at("dir"), false, &err), err, EISDIR, EISDIR_TEXT);
	assert_os_error(fsops_copy(NULL, at("plain"), at("nope/x"), false, &err), err, ENOENT, ENOENT_TEXT);
	assert_string_equal(get_text("plain"), "p");
}

/* ---- the sandbox scope ----------------------------------------------------------------------- */

/*
 * ro/ readable, rw/ writable, out/ neither. rw/ holds symlinks out of the scope (to a file, a
 * directory, a dangling name, and through "..") and one that stays inside.
 */
static FsScope scope_setup(char roots[2][AGENTD_PATH_MAX], const char **readable, const char **writable)
{
	mk("ro");
	mk("rw");
	mk("rw/inner");
	mk("out");
	mk("rwother");
	put_text("ro/f", "ro");
	put_text("rw/f", "rw");
	put_text("out/secret", "secret");
	put_text("rwother/f", "other");
	ln(at("out/secret"), "rw/file-out");
	ln(at("out"), "rw/dir-out");
	ln(at("out/new-file"), "rw/dangling-out");
	ln("../out", "rw/up-out");
	ln("inner", "rw/inner-link");
	ln(at("ro/f"), "rw/ro-link");
	snprintf(roots[0], AGENTD_PATH_MAX, "%s", at("ro"));
	snprintf(roots[1], AGENTD_PATH_MAX, "%s", at("rw"));
	readable[0] = roots[0];
	writable[0] = roots[1];
	return (FsScope){ readable, 1, writable, 1 };
}

static void test_scope_reads(void **state)
{
	(void)state;
	char roots[2][AGENTD_PATH_MAX], want[3 * AGENTD_PATH_MAX];
	const char *readable[1], *writable[1];
	FsScope scope = scope_setup(roots, readable, writable);
	FsError err;
	uint8_t *data;
	size_t len;
	FsMetadata md;

	assert_int_equal(fsops_read_file(&scope, at("ro/f"), 0, &data, &len, &err), 0);
	free(data);
	assert_int_equal(fsops_read_file(&scope, at("rw/f"), 0, &data, &len, &err), 0); /* writable reads */
	free(data);
	assert_int_equal(fsops_read_file(&scope, at("rw/ro-link"), 0, &data, &len, &err), 0);
	assert_memory_equal(data, "ro", 2);
	free(data);

	snprintf(want, sizeof(want), "path `%s` is outside the sandbox's readable roots", at("out/secret"));
	assert_refusal(fsops_read_file(&scope, at("out/secret"), 0, &data, &len, &err), err, EACCES, want);
	snprintf(want, sizeof(want), "path `%s` is outside the sandbox's readable roots", at("rwother/f"));
	assert_refusal(fsops_read_file(&scope, at("rwother/f"), 0, &data, &len, &err), err, EACCES, want);
	snprintf(want, sizeof(want),
		 "path `%s` resolves through a symlink to `%s`, outside the sandbox's readable roots",
		 at("rw/file-out"), at("out/secret"));
	assert_refusal(fsops_read_file(&scope, at("rw/file-out"), 0, &data, &len, &err), err, EACCES, want);
	assert_int_equal(fsops_read_file(&scope, at("rw/dir-out/secret"), 0, &data, &len, &err), -EACCES);
	assert_int_equal(fsops_read_file(&scope, at("rw/up-out/secret"), 0, &data, &len, &err), -EACCES);
	/* A lexical ".." out of the roots is just outside. */
	assert_int_equal(fsops_read_file(&scope, at("rw/../out/secret"), 0, &data, &len, &err), -EACCES);

	assert_int_equal(fsops_get_metadata(&scope, at("rw/inner-link"), &md, &err), 0);
	assert_true(md.is_symlink);
	assert_true(md.is_directory);
	assert_int_equal(fsops_get_metadata(&scope, at("rw/file-out"), &md, &err), -EACCES);
	assert_true(err.is_refusal);
	assert_int_equal(fsops_get_metadata(&scope, at("out"), &md, &err), -EACCES);

	/* Listing: links leading out are not shown; those inside are. */
	assert_string_equal(listing(&scope, at("rw")), "f:file inner:dir inner-link:dir ro-link:file");
	assert_int_equal(strncmp(listing(&scope, at("rw/dir-out")), "error -13: ", 11), 0);
}

static void test_scope_writes(void **state)
{
	(void)state;
	char roots[2][AGENTD_PATH_MAX], want[3 * AGENTD_PATH_MAX];
	const char *readable[1], *writable[1];
	FsScope scope = scope_setup(roots, readable, writable);
	FsError err;
	const uint8_t *x = (const uint8_t *)"x";

	assert_int_equal(fsops_write_file(&scope, at("rw/new"), x, 1, &err), 0);
	assert_int_equal(fsops_write_file(&scope, at("rw/inner-link/new"), x, 1, &err), 0);
	assert_string_equal(get_text("rw/inner/new"), "x");

	snprintf(want, sizeof(want), "path `%s` is outside the sandbox's writable roots", at("ro/f"));
	assert_refusal(fsops_write_file(&scope, at("ro/f"), x, 1, &err), err, EACCES, want);
	assert_string_equal(get_text("ro/f"), "ro");
	assert_int_equal(fsops_write_file(&scope, at("rw/ro-link"), x, 1, &err), -EACCES);
	assert_int_equal(fsops_write_file(&scope, at("rw/file-out"), x, 1, &err), -EACCES);
	assert_string_equal(get_text("out/secret"), "secret");
	snprintf(want, sizeof(want),
		 "path `%s` resolves through a symlink to `%s`, outside the sandbox's writable roots",
		 at("rw/dangling-out"), at("out/new-file"));
	assert_refusal(fsops_write_file(&scope, at("rw/dangling-out"), x, 1, &err), err, EACCES, want);
	assert_false(exists("out/new-file"));
	assert_int_equal(fsops_write_file(&scope, at("rw/dir-out/planted"), x, 1, &err), -EACCES);
	assert_int_equal(fsops_write_file(&scope, at("rw/up-out/planted"), x, 1, &err), -EACCES);
	assert_false(exists("out/planted"));

	assert_int_equal(fsops_create_directory(&scope, at("rw/a/b"), true, &err), 0);
	assert_int_equal(fsops_create_directory(&scope, at("rw/dir-out/sub"), true, &err), -EACCES);
	assert_int_equal(fsops_create_directory(&scope, at("rw/dir-out/sub"), false, &err), -EACCES);
	assert_false(exists("out/sub"));
	assert_int_equal(fsops_create_directory(&scope, at("rw/dangling-out"), true, &err), -EACCES);
	assert_false(exists("out/new-file"));
	/* A dangling link inside the scope is in the way, as it is without a scope. */
	ln(at("rw/not-yet"), "rw/dangling-in");
	assert_os_error(fsops_create_directory(&scope, at("rw/dangling-in"), true, &err), err, EEXIST,
			EEXIST_TEXT);
	assert_false(exists("rw/not-yet"));

	/* Removing a link out of the scope is a write where the link is: allowed, target untouched. */
	assert_int_equal(fsops_remove(&scope, at("rw/dir-out/secret"), true, true, &err), -EACCES);
	assert_int_equal(fsops_remove(&scope, at("ro/f"), true, true, &err), -EACCES);
	assert_int_equal(fsops_remove(&scope, at("rw/file-out"), true, true, &err), 0);
	assert_int_equal(fsops_remove(&scope, at("rw/dir-out"), true, true, &err), 0);
	assert_string_equal(get_text("out/secret"), "secret");
	assert_false(exists("rw/file-out"));

	assert_int_equal(fsops_copy(&scope, at("ro/f"), at("rw/copied"), false, &err), 0);
	assert_string_equal(get_text("rw/copied"), "ro");
	assert_int_equal(fsops_copy(&scope, at("out/secret"), at("rw/stolen"), false, &err), -EACCES);
	assert_false(exists("rw/stolen"));
	assert_int_equal(fsops_copy(&scope, at("ro/f"), at("rw/up-out/leaked"), false, &err), -EACCES);
	assert_int_equal(fsops_copy(&scope, at("rw/inner"), at("ro/inner2"), true, &err), -EACCES);
	assert_false(exists("out/leaked"));
	assert_false(exists("ro/inner2"));
	/* A copied tree keeps its links as links: nothing is followed out of the scope. */
	ln(at("out"), "rw/inner/escape");
	assert_int_equal(fsops_copy(&scope, at("rw/inner"), at("rw/inner-copy"), true, &err), 0);
	assert_true(is_link("rw/inner-copy/escape"));
}

/* A root "/" allows everything; a root spelled with a trailing slash still matches its children. */
static void test_scope_roots(void **state)
{
	(void)state;
	FsError err;
	uint8_t *data;
	size_t len;
	put_text("f", "x");
	const char *everything[] = { "/" };
	FsScope all = { everything, 1, NULL, 0 };
	assert_int_equal(fsops_read_file(&all, at("f"), 0, &data, &len, &err), 0);
	free(data);
	assert_int_equal(fsops_write_file(&all, at("g"), (const uint8_t *)"x", 1, &err), -EACCES);
	char slashed[AGENTD_PATH_MAX];
	snprintf(slashed, sizeof(slashed), "%s/", base_dir);
	const char *writable[] = { slashed };
	FsScope mine = { NULL, 0, writable, 1 };
	assert_int_equal(fsops_write_file(&mine, at("g"), (const uint8_t *)"x", 1, &err), 0);
	FsScope none = { NULL, 0, NULL, 0 };
	assert_int_equal(fsops_read_file(&none, at("f"), 0, &data, &len, &err), -EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_binary_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_through_symlink_and_spelling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_os_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_create_and_truncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_through_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_recursive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_deep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_roots, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
