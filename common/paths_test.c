/* SPDX-License-Identifier: MIT */
/* paths_test.c - cmocka tests for lexical path normalisation, the environment lookups of the
 * runtime and CODEX_HOME directories, and paths_ensure_private_dir() on a scratch tree. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"

/* ---- path_normalize -------------------------------------------------------------------------- */

typedef struct NormalizeCase {
	const char *name;
	const char *base;
	const char *path;
	size_t out_len; /* 0: AGENTD_PATH_MAX */
	int rc;
	const char *want; /* when rc == 0 */
} NormalizeCase;

static const NormalizeCase normalize_cases[] = {
	/* happy */
	{ "root", NULL, "/", 0, 0, "/" },
	{ "already normal", NULL, "/a/b", 0, 0, "/a/b" },
	{ "relative joined onto base", "/base", "rel", 0, 0, "/base/rel" },
	{ "relative multi-component", "/srv/www", "x/y/z", 0, 0, "/srv/www/x/y/z" },
	{ "base and path with trailing slashes", "/base/", "rel/", 0, 0, "/base/rel" },
	{ "dotdot onto base", "/a/b", "..", 0, 0, "/a" },
	{ "dotdot then name", "/a/b", "../c", 0, 0, "/a/c" },
	{ "dot components", NULL, "/a/./b/.", 0, 0, "/a/b" },
	{ "dot alone onto base", "/a", ".", 0, 0, "/a" },
	{ "double slashes", NULL, "//a//b///", 0, 0, "/a/b" },
	{ "trailing slash", NULL, "/a/b/", 0, 0, "/a/b" },
	{ "only slashes", NULL, "////", 0, 0, "/" },
	{ "dotdot at root", NULL, "/..", 0, 0, "/" },
	{ "dotdot past root then name", NULL, "/../../x", 0, 0, "/x" },
	{ "relative dotdot past root", "/a", "../../..", 0, 0, "/" },
	{ "dotdot in the middle", NULL, "/a/b/../../c/d/..", 0, 0, "/c" },
	{ "base is normalised too", "/a//b/../", "./c", 0, 0, "/a/c" },
	{ "absolute path ignores relative base", "not/absolute", "/abs", 0, 0, "/abs" },
	{ "absolute path ignores NULL base", NULL, "/abs/x", 0, 0, "/abs/x" },
	{ "three dots is a name", NULL, "/.../x", 0, 0, "/.../x" },
	{ "dot-prefixed names kept", NULL, "/a/..b/.c/c.", 0, 0, "/a/..b/.c/c." },
	{ "exact fit: root in 2", NULL, "/", 2, 0, "/" },
	{ "exact fit: /abc in 5", NULL, "/abc", 5, 0, "/abc" },
	{ "exact fit: /a/b in 5", NULL, "/a/b", 5, 0, "/a/b" },
	{ "exact fit: joined /base/rel in 10", "/base", "rel", 10, 0, "/base/rel" },
	{ "exact fit after collapsing", NULL, "//a/./b//", 5, 0, "/a/b" },
	/* failures */
	{ "empty path", NULL, "", 0, -EINVAL, NULL },
	{ "empty path with base", "/base", "", 0, -EINVAL, NULL },
	{ "NULL path", "/base", NULL, 0, -EINVAL, NULL },
	{ "relative path, NULL base", NULL, "rel", 0, -EINVAL, NULL },
	{ "relative path, relative base", "base", "rel", 0, -EINVAL, NULL },
	{ "relative path, dot base", "./base", "rel", 0, -EINVAL, NULL },
	{ "relative path, empty base", "", "rel", 0, -EINVAL, NULL },
	{ "dot path, relative base", "base", ".", 0, -EINVAL, NULL },
	{ "one short: /abc in 4", NULL, "/abc", 4, -ENAMETOOLONG, NULL },
	{ "one short: /a/b in 4", NULL, "/a/b", 4, -ENAMETOOLONG, NULL },
	{ "one short: joined in 9", "/base", "rel", 9, -ENAMETOOLONG, NULL },
	{ "base alone too long", "/basename", "x", 6, -ENAMETOOLONG, NULL },
	{ "one short: /a in 2", NULL, "/a", 2, -ENAMETOOLONG, NULL },
	{ "root in 1", NULL, "/", 1, -ENAMETOOLONG, NULL },
	{ "dotdot to root in 1", NULL, "/a/..", 1, -ENAMETOOLONG, NULL },
	{ "one short after collapsing", NULL, "//a/./b//", 4, -ENAMETOOLONG, NULL },
	{ "one short: long component", NULL, "/abcdefgh", 9, -ENAMETOOLONG, NULL },
	{ "one short: joined with slashes", "/a/", "b/", 4, -ENAMETOOLONG, NULL },
	{ "one short: joined dotdot result", "/abc/def", "../x", 6, -ENAMETOOLONG, NULL },
	{ "NULL path and NULL base", NULL, NULL, 0, -EINVAL, NULL },
	{ "empty path, relative base", "base", "", 0, -EINVAL, NULL },
	{ "relative path, dotdot base", "..", "x", 0, -EINVAL, NULL },
	{ "relative dotdot path, relative base", "a/b", "../c", 0, -EINVAL, NULL },
	{ "relative path, tilde base", "~", "x", 0, -EINVAL, NULL },
	{ "relative path, base that collapses", "x/..", "y", 0, -EINVAL, NULL },
	{ "dotdot path, NULL base", NULL, "..", 0, -EINVAL, NULL },
};

static void test_normalize(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(normalize_cases) / sizeof(normalize_cases[0]); i++) {
		const NormalizeCase *c = &normalize_cases[i];
		size_t out_len = c->out_len ? c->out_len : AGENTD_PATH_MAX;
		/* An exactly-sized heap buffer: ASan reports any write past out_len. */
		char *out = malloc(out_len);
		assert_non_null(out);
		int rc = path_normalize(c->base, c->path, out, out_len);
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->name, rc, c->rc);
		if (rc == 0) {
			if (strcmp(out, c->want) != 0)
				fail_msg("%s: got \"%s\", want \"%s\"", c->name, out, c->want);
			/* what path_normalize() returns is by definition normal */
			assert_true(path_is_normal_absolute(out));
		}
		free(out);
	}
}

static void test_normalize_long(void **state)
{
	(void)state;
	/* A component run longer than AGENTD_PATH_MAX does not fit the standard buffer. */
	size_t n = AGENTD_PATH_MAX + 10;
	char *path = malloc(n + 1);
	assert_non_null(path);
	path[0] = '/';
	memset(path + 1, 'x', n - 1);
	path[n] = '\0';
	char out[AGENTD_PATH_MAX];
	assert_int_equal(path_normalize(NULL, path, out, sizeof(out)), -ENAMETOOLONG);
	/* The longest that fits: '/' + 4094 chars + NUL = 4096 bytes. */
	path[AGENTD_PATH_MAX - 1] = '\0';
	assert_int_equal(path_normalize(NULL, path, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), AGENTD_PATH_MAX - 1);
	free(path);
}

typedef struct NormalCase {
	const char *path;
	int normal;
} NormalCase;

static const NormalCase normal_cases[] = {
	{ "/", 1 },	 { "/a", 1 },	   { "/a/b/c", 1 }, { "/.../x", 1 }, { "/a/.b", 1 }, { NULL, 0 },
	{ "", 0 },	 { "a/b", 0 },	   { "./a", 0 },    { "/a/", 0 },    { "//a", 0 },   { "/a//b", 0 },
	{ "/a/./b", 0 }, { "/a/../b", 0 }, { "/..", 0 },    { "/.", 0 },     { "/a/.", 0 },
};

static void test_is_normal_absolute(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(normal_cases) / sizeof(normal_cases[0]); i++) {
		const NormalCase *c = &normal_cases[i];
		int got = path_is_normal_absolute(c->path) != 0;
		if (got != c->normal)
			fail_msg("path_is_normal_absolute(%s%s%s) = %d", c->path ? "\"" : "",
				 c->path ? c->path : "NULL", c->path ? "\"" : "", got);
	}
}

/* ---- environment lookups --------------------------------------------------------------------- */

static const char *const env_names[] = { "AGENTD_RUNTIME_DIR", "XDG_RUNTIME_DIR", "CODEX_HOME", "HOME" };
static char *saved_env[4];

static int save_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		const char *v = getenv(env_names[i]);
		saved_env[i] = v ? strdup(v) : NULL;
	}
	return 0;
}

static int restore_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		if (saved_env[i])
			setenv(env_names[i], saved_env[i], 1);
		else
			unsetenv(env_names[i]);
		free(saved_env[i]);
		saved_env[i] = NULL;
	}
	return 0;
}

static void set_or_unset(const char *name, const char *value)
{
	if (value)
		assert_int_equal(setenv(name, value, 1), 0);
	else
		assert_int_equal(unsetenv(name), 0);
}

typedef struct RuntimeCase {
	const char *name;
	const char *agentd; /* AGENTD_RUNTIME_DIR, NULL: unset */
	const char *xdg;    /* XDG_RUNTIME_DIR, NULL: unset */
	size_t out_len;	    /* 0: AGENTD_PATH_MAX */
	int rc;
	const char *want;
} RuntimeCase;

static const RuntimeCase runtime_cases[] = {
	{ "AGENTD_RUNTIME_DIR wins over XDG", "/srv/agentd", "/run/user/1000", 0, 0, "/srv/agentd" },
	{ "AGENTD_RUNTIME_DIR normalised", "/srv//x/../agentd/", NULL, 0, 0, "/srv/agentd" },
	{ "XDG_RUNTIME_DIR/agentd", NULL, "/run/user/1000", 0, 0, "/run/user/1000/agentd" },
	{ "XDG with trailing slash", NULL, "/run/user/1000/", 0, 0, "/run/user/1000/agentd" },
	{ "empty AGENTD_RUNTIME_DIR is unset", "", "/xdg", 0, 0, "/xdg/agentd" },
	{ "neither set", NULL, NULL, 0, 0, "/run/agentd" },
	{ "both empty", "", "", 0, 0, "/run/agentd" },
	{ "exact fit of /run/agentd", NULL, NULL, 12, 0, "/run/agentd" },
	{ "relative AGENTD_RUNTIME_DIR", "run/agentd", "/run/user/1000", 0, -EINVAL, NULL },
	{ "dot AGENTD_RUNTIME_DIR", ".", NULL, 0, -EINVAL, NULL },
	{ "relative XDG_RUNTIME_DIR", NULL, "run/user/1000", 0, -EINVAL, NULL },
	{ "tilde XDG_RUNTIME_DIR", NULL, "~/run", 0, -EINVAL, NULL },
	{ "relative AGENTD_RUNTIME_DIR with no XDG", "x", NULL, 0, -EINVAL, NULL },
	{ "default does not fit", NULL, NULL, 11, -ENAMETOOLONG, NULL },
	{ "XDG join does not fit", NULL, "/run/user/1000", 21, -ENAMETOOLONG, NULL },
	{ "AGENTD_RUNTIME_DIR does not fit", "/srv/agentd", NULL, 8, -ENAMETOOLONG, NULL },
};

static void test_runtime_dir(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(runtime_cases) / sizeof(runtime_cases[0]); i++) {
		const RuntimeCase *c = &runtime_cases[i];
		set_or_unset("AGENTD_RUNTIME_DIR", c->agentd);
		set_or_unset("XDG_RUNTIME_DIR", c->xdg);
		size_t out_len = c->out_len ? c->out_len : AGENTD_PATH_MAX;
		char *out = malloc(out_len);
		assert_non_null(out);
		int rc = paths_runtime_dir(out, out_len);
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->name, rc, c->rc);
		if (rc == 0 && strcmp(out, c->want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", c->name, out, c->want);
		free(out);
	}
}

static void test_runtime_dir_env_too_long(void **state)
{
	(void)state;
	char value[AGENTD_PATH_MAX + 20];
	value[0] = '/';
	memset(value + 1, 'r', sizeof(value) - 2);
	value[sizeof(value) - 1] = '\0';
	set_or_unset("AGENTD_RUNTIME_DIR", value);
	char out[AGENTD_PATH_MAX];
	assert_int_equal(paths_runtime_dir(out, sizeof(out)), -ENAMETOOLONG);
	set_or_unset("AGENTD_RUNTIME_DIR", NULL);
	set_or_unset("XDG_RUNTIME_DIR", value);
	assert_int_equal(paths_runtime_dir(out, sizeof(out)), -ENAMETOOLONG);
}

typedef struct CodexCase {
	const char *name;
	const char *codex_home;
	const char *home;
	int rc;
	const char *want; /* NULL with rc 0: the passwd entry's directory + "/.codex" */
} CodexCase;

static const CodexCase codex_cases[] = {
	{ "CODEX_HOME wins over HOME", "/etc/codex", "/home/u", 0, "/etc/codex" },
	{ "CODEX_HOME normalised", "/etc//codex/./", "/home/u", 0, "/etc/codex" },
	{ "HOME/.codex", NULL, "/home/u", 0, "/home/u/.codex" },
	{ "empty CODEX_HOME is unset", "", "/home/u", 0, "/home/u/.codex" },
	{ "HOME with trailing slash", NULL, "/home/u/", 0, "/home/u/.codex" },
	{ "HOME is root", NULL, "/", 0, "/.codex" },
	{ "neither set: passwd entry", NULL, NULL, 0, NULL },
	{ "relative CODEX_HOME", "codex", "/home/u", -EINVAL, NULL },
	{ "tilde CODEX_HOME", "~/.codex", "/home/u", -EINVAL, NULL },
	{ "relative HOME", NULL, "home/u", -EINVAL, NULL },
	{ "dot HOME", "", ".", -EINVAL, NULL },
	{ "empty CODEX_HOME, relative HOME", "", "rel", -EINVAL, NULL },
	{ "dot CODEX_HOME", ".", "/home/u", -EINVAL, NULL },
	{ "dot-slash CODEX_HOME", "./codex", "/home/u", -EINVAL, NULL },
};

static void test_codex_home(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(codex_cases) / sizeof(codex_cases[0]); i++) {
		const CodexCase *c = &codex_cases[i];
		set_or_unset("CODEX_HOME", c->codex_home);
		set_or_unset("HOME", c->home);
		char want[AGENTD_PATH_MAX];
		if (c->rc == 0 && !c->want) {
			struct passwd *pw = getpwuid(getuid());
			if (!pw)
				skip();
			char joined[AGENTD_PATH_MAX];
			snprintf(joined, sizeof(joined), "%s/.codex", pw->pw_dir);
			assert_int_equal(path_normalize(NULL, joined, want, sizeof(want)), 0);
		} else if (c->want) {
			strcpy(want, c->want);
		}
		char out[AGENTD_PATH_MAX];
		int rc = paths_codex_home(out, sizeof(out));
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->name, rc, c->rc);
		if (rc == 0 && strcmp(out, want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", c->name, out, want);
	}
}

static void test_codex_home_too_small(void **state)
{
	(void)state;
	set_or_unset("CODEX_HOME", NULL);
	set_or_unset("HOME", "/home/u");
	char out[15]; /* "/home/u/.codex" is 14 + NUL */
	assert_int_equal(paths_codex_home(out, sizeof(out)), 0);
	assert_string_equal(out, "/home/u/.codex");
	assert_int_equal(paths_codex_home(out, sizeof(out) - 1), -ENAMETOOLONG);
}

/* ---- paths_join ------------------------------------------------------------------------------ */

static void test_join(void **state)
{
	(void)state;
	char out[12];
	assert_int_equal(paths_join("/a", "b.sock", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b.sock");
	assert_int_equal(paths_join("/run/x", "sock", out, sizeof(out)), 0); /* 11 + NUL */
	assert_string_equal(out, "/run/x/sock");
	assert_int_equal(paths_join("/run/x", "socks", out, sizeof(out)), -ENAMETOOLONG);
	assert_int_equal(paths_join("/run/xyz", "sock", out, sizeof(out)), -ENAMETOOLONG);
}

/* ---- paths_ensure_private_dir ---------------------------------------------------------------- */

typedef struct Scratch {
	char root[64];
} Scratch;

static int scratch_setup(void **state)
{
	Scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	strcpy(s->root, "/tmp/paths_test.XXXXXX");
	if (!mkdtemp(s->root)) {
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

static int scratch_teardown(void **state)
{
	Scratch *s = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->root);
	int rc = system(cmd);
	free(s);
	return rc == 0 ? 0 : -1;
}

static void scratch_path(const Scratch *s, const char *rel, char *out, size_t out_len)
{
	assert_true((size_t)snprintf(out, out_len, "%s/%s", s->root, rel) < out_len);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode;
}

static void assert_private_dir(const char *path)
{
	mode_t m = mode_of(path);
	assert_true(S_ISDIR(m));
	assert_int_equal(m & 07777, 0700);
}

static void test_private_dir_creates_nested(void **state)
{
	Scratch *s = *state;
	char dir[256], parent[256];
	scratch_path(s, "a/b/c", dir, sizeof(dir));
	assert_int_equal(paths_ensure_private_dir(dir), 0);
	assert_private_dir(dir);
	scratch_path(s, "a/b", parent, sizeof(parent));
	assert_true(S_ISDIR(mode_of(parent)));
	/* A second call on what now exists succeeds and keeps it private. */
	assert_int_equal(paths_ensure_private_dir(dir), 0);
	assert_private_dir(dir);
}

static void test_private_dir_trailing_slash(void **state)
{
	Scratch *s = *state;
	char dir[256];
	scratch_path(s, "t/", dir, sizeof(dir));
	assert_int_equal(paths_ensure_private_dir(dir), 0);
	assert_private_dir(dir);
}

static void test_private_dir_fixes_mode(void **state)
{
	Scratch *s = *state;
	static const mode_t modes[] = { 0755, 0777, 0500, 01777, 02700 };
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char dir[256], rel[16];
		snprintf(rel, sizeof(rel), "m%zu", i);
		scratch_path(s, rel, dir, sizeof(dir));
		assert_int_equal(mkdir(dir, 0700), 0);
		assert_int_equal(chmod(dir, modes[i]), 0);
		assert_int_equal(mode_of(dir) & 07777, modes[i]);
		assert_int_equal(paths_ensure_private_dir(dir), 0);
		assert_private_dir(dir);
	}
}

static void test_private_dir_despite_umask(void **state)
{
	Scratch *s = *state;
	char dir[256];
	/* One level only: under umask 0777 a created parent would be mode 0, unusable to non-root. */
	scratch_path(s, "u", dir, sizeof(dir));
	mode_t old = umask(0777);
	int rc = paths_ensure_private_dir(dir);
	umask(old);
	assert_int_equal(rc, 0);
	assert_private_dir(dir);
}

static void test_private_dir_refuses_file(void **state)
{
	Scratch *s = *state;
	char file[256];
	scratch_path(s, "file", file, sizeof(file));
	int fd = open(file, O_CREAT | O_WRONLY | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(paths_ensure_private_dir(file), -ENOTDIR);
	/* the file is left as it was */
	assert_true(S_ISREG(mode_of(file)));
	assert_int_equal(mode_of(file) & 07777, 0644);
}

static void test_private_dir_refuses_file_parent(void **state)
{
	Scratch *s = *state;
	char file[256], dir[256];
	scratch_path(s, "plain", file, sizeof(file));
	int fd = open(file, O_CREAT | O_WRONLY | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	scratch_path(s, "plain/sub", dir, sizeof(dir));
	assert_int_equal(paths_ensure_private_dir(dir), -ENOTDIR);
}

static void test_private_dir_refuses_symlink(void **state)
{
	Scratch *s = *state;
	char target[256], link_path[256];
	scratch_path(s, "target", target, sizeof(target));
	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(chmod(target, 0755), 0);
	scratch_path(s, "link", link_path, sizeof(link_path));
	assert_int_equal(symlink(target, link_path), 0);
	/* a symlink could point anywhere: not our private directory */
	assert_int_equal(paths_ensure_private_dir(link_path), -ENOTDIR);
	assert_int_equal(mode_of(target) & 07777, 0755); /* not chmod'ed through the link */
}

static void test_private_dir_refuses_foreign_owner(void **state)
{
	Scratch *s = *state;
	if (geteuid() != 0)
		skip(); /* only root can hand a directory to someone else */
	char dir[256];
	scratch_path(s, "foreign", dir, sizeof(dir));
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_int_equal(paths_ensure_private_dir(dir), -EPERM);
	assert_int_equal(mode_of(dir) & 07777, 0755); /* left alone */
}

static void test_private_dir_too_long(void **state)
{
	(void)state;
	char dir[AGENTD_PATH_MAX + 8];
	dir[0] = '/';
	memset(dir + 1, 'd', sizeof(dir) - 2);
	dir[sizeof(dir) - 1] = '\0';
	assert_int_equal(paths_ensure_private_dir(dir), -ENAMETOOLONG);
}

int main(void)
{
#define SCRATCH(f) cmocka_unit_test_setup_teardown(f, scratch_setup, scratch_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_normalize_long),
		cmocka_unit_test(test_is_normal_absolute),
		cmocka_unit_test_setup_teardown(test_runtime_dir, save_env, restore_env),
		cmocka_unit_test_setup_teardown(test_runtime_dir_env_too_long, save_env, restore_env),
		cmocka_unit_test_setup_teardown(test_codex_home, save_env, restore_env),
		cmocka_unit_test_setup_teardown(test_codex_home_too_small, save_env, restore_env),
		cmocka_unit_test(test_join),
		SCRATCH(test_private_dir_creates_nested),
		SCRATCH(test_private_dir_trailing_slash),
		SCRATCH(test_private_dir_fixes_mode),
		SCRATCH(test_private_dir_despite_umask),
		SCRATCH(test_private_dir_refuses_file),
		SCRATCH(test_private_dir_refuses_file_parent),
		SCRATCH(test_private_dir_refuses_symlink),
		SCRATCH(test_private_dir_refuses_foreign_owner),
		cmocka_unit_test(test_private_dir_too_long),
	};
#undef SCRATCH
	return cmocka_run_group_tests(tests, NULL, NULL);
}
