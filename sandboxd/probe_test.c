/* SPDX-License-Identifier: MIT */
/*
 * probe_test.c - cmocka tests for launcher selection with fake bwraps: one whose --help lists
 * --argv0 and --perms, one lacking --argv0, one lacking --perms, none at all; one planted under
 * the cwd; and the user-namespace trial's error strings. Each fake is written to a closed file
 * before anything executes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe.h"

#define HELP_FULL "    --argv0 VALUE  Set argv[0]\n    --perms OCTAL  Set permissions\n"
#define HELP_NO_ARGV0 "    --perms OCTAL  Set permissions\n    --chdir DIR\n"
#define HELP_NO_PERMS "    --argv0 VALUE  Set argv[0]\n    --chdir DIR\n"

typedef struct Scratch {
	char dir[64];
	char path_env[1024];
} Scratch;

static int scratch_setup(void **state)
{
	Scratch *s = calloc(1, sizeof(*s));
	char tmpl[] = "/tmp/probe_test.XXXXXX", real[PATH_MAX];
	if (!s || !mkdtemp(tmpl) || !realpath(tmpl, real) || strlen(real) >= sizeof(s->dir))
		return -1;
	snprintf(s->dir, sizeof(s->dir), "%s", real);
	*state = s;
	return 0;
}

static int scratch_teardown(void **state)
{
	Scratch *s = *state;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	int rc = system(cmd);
	free(s);
	return rc == 0 ? 0 : -1;
}

/*
 * A fake bwrap in @s->dir/@sub: --help prints @help; the user-namespace trial prints @trial_error
 * and fails when it is set. Written, closed, then made executable: never ETXTBSY.
 */
static void write_fake(const Scratch *s, const char *sub, const char *help, const char *trial_error, char *out)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/%s", s->dir, sub);
	mkdir(dir, 0755);
	snprintf(out, PATH_MAX, "%s/bwrap", dir);
	FILE *f = fopen(out, "w");
	assert_non_null(f);
	fprintf(f,
		"#!/bin/sh\n"
		"if [ \"$1\" = --help ]; then printf '%%s' '%s'; exit 0; fi\n"
		"%s\n",
		help, trial_error ? "echo 'bwrap: setting up uid map: Permission denied' >&2; exit 1" : "exit 0");
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(out, 0755), 0);
}

static bool has_warning(const Probe *p, const char *needle)
{
	for (size_t i = 0; i < p->warning_count; i++)
		if (strstr(p->warnings[i], needle))
			return true;
	return false;
}

static void probe_with(const Scratch *s, const char *fixed, const char *forced, Probe *p, int expected_rc)
{
	ProbeOptions opts = { .fixed_bwrap = fixed, .path_env = s->path_env, .cwd = "/", .forced = forced };
	assert_int_equal(probe_run(p, &opts), expected_rc);
}

static void test_prefers_system_bwrap_when_help_lists_argv0(void **state)
{
	Scratch *s = *state;
	char fake[PATH_MAX];
	write_fake(s, "full", HELP_FULL, NULL, fake);
	Probe p;
	probe_with(s, fake, NULL, &p, 0);
	assert_true(p.has_bwrap);
	assert_string_equal(p.bwrap, fake);
	assert_true(p.bwrap_has_argv0);
	assert_true(p.bwrap_has_perms);
	assert_int_equal(p.launcher, LAUNCHER_SYSTEM);
	assert_true(p.has_user_namespaces);
	assert_int_equal(p.warning_count, 0);
}

/* bubblewrap < 0.9: still the system launcher, through the compatibility path, with a warning. */
static void test_prefers_system_bwrap_when_it_lacks_argv0(void **state)
{
	Scratch *s = *state;
	char fake[PATH_MAX];
	write_fake(s, "old", HELP_NO_ARGV0, NULL, fake);
	Probe p;
	probe_with(s, fake, NULL, &p, 0);
	assert_true(p.has_bwrap);
	assert_false(p.bwrap_has_argv0);
	assert_int_equal(p.launcher, LAUNCHER_SYSTEM);
	assert_true(has_warning(&p, "has no --argv0"));
}

static void test_ignores_system_bwrap_without_perms(void **state)
{
	Scratch *s = *state;
	char fake[PATH_MAX];
	write_fake(s, "ancient", HELP_NO_PERMS, NULL, fake);
	Probe p;
	probe_with(s, fake, NULL, &p, 0);
	assert_false(p.has_bwrap);
	assert_int_equal(p.launcher, LAUNCHER_BUILTIN);
	assert_true(has_warning(&p, "too old (it has no --perms)"));
}

static void test_missing_bwrap_selects_builtin(void **state)
{
	Scratch *s = *state;
	char missing[256];
	snprintf(missing, sizeof(missing), "%s/nowhere/bwrap", s->dir);
	snprintf(s->path_env, sizeof(s->path_env), "%s/empty-a::relative/bin:%s/empty-b", s->dir, s->dir);
	Probe p;
	probe_with(s, missing, NULL, &p, 0);
	assert_false(p.has_bwrap);
	assert_int_equal(p.launcher, LAUNCHER_BUILTIN);
	assert_true(has_warning(&p, "could not find bubblewrap on PATH"));
	/* Forcing the system launcher where there is none is refused, and says why first. */
	probe_with(s, missing, "system", &p, -EINVAL);
	assert_non_null(strstr(p.warnings[0], "[sandboxd] launcher = \"system\""));
	/* Forcing the built-in launcher skips the bwrap search altogether. */
	char fake[PATH_MAX];
	write_fake(s, "full", HELP_FULL, NULL, fake);
	probe_with(s, fake, "builtin", &p, 0);
	assert_int_equal(p.launcher, LAUNCHER_BUILTIN);
	assert_false(p.has_bwrap);
}

/* PATH is searched in order when the fixed path is absent; a bwrap under the cwd never counts. */
static void test_skips_bwrap_under_cwd_in_search_path(void **state)
{
	Scratch *s = *state;
	char planted[PATH_MAX], good[PATH_MAX], found[PATH_MAX], cwd[256];
	write_fake(s, "repo", HELP_FULL, NULL, planted);
	write_fake(s, "system", HELP_FULL, NULL, good);
	snprintf(cwd, sizeof(cwd), "%s/repo", s->dir);
	snprintf(s->path_env, sizeof(s->path_env), "%s/repo:%s/system", s->dir, s->dir);
	assert_int_equal(probe_find_bwrap(NULL, s->path_env, cwd, found, sizeof(found)), 0);
	assert_string_equal(found, good);
	/* The same PATH from elsewhere: the first entry is fine. */
	assert_int_equal(probe_find_bwrap(NULL, s->path_env, "/", found, sizeof(found)), 0);
	assert_string_equal(found, planted);
	/* With only the planted one on PATH there is no system bwrap at all. */
	snprintf(s->path_env, sizeof(s->path_env), "%s/repo", s->dir);
	assert_int_equal(probe_find_bwrap(NULL, s->path_env, cwd, found, sizeof(found)), -ENOENT);
}

/* A candidate that is not an executable regular file is passed over. */
static void test_rejects_non_executable_candidates(void **state)
{
	Scratch *s = *state;
	char dir[256], found[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/dir", s->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/dir/bwrap", s->dir);
	assert_int_equal(mkdir(dir, 0755), 0); /* a directory named bwrap */
	write_fake(s, "plain", HELP_FULL, NULL, found);
	assert_int_equal(chmod(found, 0644), 0);
	snprintf(s->path_env, sizeof(s->path_env), "%s/dir:%s/plain", s->dir, s->dir);
	assert_int_equal(probe_find_bwrap(NULL, s->path_env, "/", found, sizeof(found)), -ENOENT);
}

static void test_user_namespace_failure_warns(void **state)
{
	Scratch *s = *state;
	char fake[PATH_MAX];
	write_fake(s, "nouserns", HELP_FULL, "uid map", fake);
	Probe p;
	probe_with(s, fake, NULL, &p, 0);
	assert_false(p.has_user_namespaces);
	assert_true(p.is_user_namespace_refused);
	assert_non_null(strstr(p.user_namespace_error, "setting up uid map: Permission denied"));
	assert_true(has_warning(&p, "needs access to create user namespaces"));
}

static void test_user_namespace_error_strings(void **state)
{
	static const char *const refused[] = {
		"bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted",
		"bwrap: loopback: Failed RTM_NEWLINK: Operation not permitted",
		"bwrap: setting up uid map: Permission denied",
		"bwrap: No permissions to create a new namespace, likely because the kernel does not allow",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_true(probe_is_user_namespace_failure(refused[i]));
	assert_false(probe_is_user_namespace_failure("bwrap: execvp /bin/true: No such file or directory"));
	assert_false(probe_is_user_namespace_failure("bwrap: setting up uid map: Operation not permitted"));
}

static void test_probe_json_shape(void **state)
{
	Scratch *s = *state;
	char fake[PATH_MAX];
	write_fake(s, "old", HELP_NO_ARGV0, NULL, fake);
	Probe p;
	probe_with(s, fake, NULL, &p, 0);
	json_t *json = probe_to_json(&p);
	assert_non_null(json);
	assert_string_equal(json_string_value(json_object_get(json, "launcher")), "system");
	json_t *bwrap = json_object_get(json, "bwrap");
	assert_string_equal(json_string_value(json_object_get(bwrap, "path")), fake);
	assert_true(json_is_false(json_object_get(bwrap, "argv0")));
	assert_true(json_is_true(json_object_get(bwrap, "perms")));
	assert_int_equal(json_array_size(json_object_get(json, "warnings")), p.warning_count);
	json_decref(json);
}

/* SIGHUP's probe runs nothing: a new bwrap is learnt from its binary, the old one kept as it was. */
static void test_refresh_notices_a_new_or_replaced_bwrap(void **state)
{
	Scratch *s = *state;
	char fake[PATH_MAX], missing[256];
	snprintf(missing, sizeof(missing), "%s/later/bwrap", s->dir);
	snprintf(s->path_env, sizeof(s->path_env), "%s/empty", s->dir);
	Probe p;
	ProbeOptions opts = { .fixed_bwrap = missing, .path_env = s->path_env, .cwd = "/" };
	assert_int_equal(probe_run(&p, &opts), 0);
	assert_int_equal(p.launcher, LAUNCHER_BUILTIN);
	write_fake(s, "later", HELP_NO_ARGV0, NULL, fake);
	assert_int_equal(probe_refresh(&p, &opts), 0);
	assert_int_equal(p.launcher, LAUNCHER_SYSTEM);
	assert_false(p.bwrap_has_argv0);
	assert_true(has_warning(&p, "has no --argv0"));
	assert_false(has_warning(&p, "could not find"));
	/* Replaced by one without --perms (a new file): learnt again, and refused. */
	assert_int_equal(unlink(fake), 0);
	write_fake(s, "later", HELP_NO_PERMS, NULL, fake);
	assert_int_equal(probe_refresh(&p, &opts), 0);
	assert_int_equal(p.launcher, LAUNCHER_BUILTIN);
	assert_true(has_warning(&p, "too old (it has no --perms)"));
	/* Forcing the built-in launcher on reload silences bwrap's warnings. */
	opts.forced = "builtin";
	assert_int_equal(probe_refresh(&p, &opts), 0);
	assert_int_equal(p.warning_count, 0);
}

static void test_scan_finds_flags_in_the_real_bwrap(void **state)
{
	bool argv0, perms, scanned_argv0, scanned_perms;
	if (access("/usr/bin/bwrap", X_OK) < 0)
		skip();
	assert_int_equal(probe_bwrap_features("/usr/bin/bwrap", &argv0, &perms), 0);
	assert_int_equal(probe_scan_bwrap_binary("/usr/bin/bwrap", &scanned_argv0, &scanned_perms), 0);
	assert_int_equal(scanned_argv0, argv0);
	assert_int_equal(scanned_perms, perms);
}

#define SCRATCH_TEST(fn) cmocka_unit_test_setup_teardown(fn, scratch_setup, scratch_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		SCRATCH_TEST(test_prefers_system_bwrap_when_help_lists_argv0),
		SCRATCH_TEST(test_prefers_system_bwrap_when_it_lacks_argv0),
		SCRATCH_TEST(test_ignores_system_bwrap_without_perms),
		SCRATCH_TEST(test_missing_bwrap_selects_builtin),
		SCRATCH_TEST(test_skips_bwrap_under_cwd_in_search_path),
		SCRATCH_TEST(test_rejects_non_executable_candidates),
		SCRATCH_TEST(test_user_namespace_failure_warns),
		SCRATCH_TEST(test_user_namespace_error_strings),
		SCRATCH_TEST(test_probe_json_shape),
		SCRATCH_TEST(test_refresh_notices_a_new_or_replaced_bwrap),
		SCRATCH_TEST(test_scan_finds_flags_in_the_real_bwrap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
