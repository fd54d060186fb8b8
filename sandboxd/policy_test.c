/* SPDX-License-Identifier: MIT */
/* policy_test.c - cmocka tests for SandboxPolicy JSON, filesystem policies and config profiles. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "policy.h"

static const PolicyContext ctx = { .cwd = "/work/repo", .tmpdir = "/var/tmp/me", .home = "/home/me" };

/* The access of the rule for exactly @path, or -1 when there is none. */
static int rule_access(const Policy *p, const char *path)
{
	for (size_t i = 0; i < p->rule_count; i++)
		if (strcmp(p->rules[i].path, path) == 0)
			return (int)p->rules[i].access;
	return -1;
}

static int parse_json(Policy *p, const char *text, char *err, size_t err_len)
{
	json_error_t jerr;
	json_t *json = json_loads(text, 0, &jerr);
	assert_non_null(json);
	policy_init(p);
	int rc = policy_from_json(p, &ctx, json, err, err_len);
	json_decref(json);
	return rc;
}

static int parse_profile(Policy *p, const char *toml, const char *name, char *err, size_t err_len)
{
	Config cfg = { 0 };
	char cfg_err[256];
	assert_int_equal(config_load_text(&cfg, "test.toml", toml, strlen(toml), cfg_err, sizeof(cfg_err)), 0);
	policy_init(p);
	int rc = policy_from_profile(p, &ctx, cfg.root, name, err, err_len);
	config_free(&cfg);
	return rc;
}

static void test_read_only(void **state)
{
	Policy p;
	char err[256];
	assert_int_equal(parse_json(&p, "{\"type\":\"readOnly\"}", err, sizeof(err)), 0);
	assert_false(p.is_unrestricted);
	assert_false(p.is_network_enabled);
	assert_int_equal(p.rule_count, 1);
	assert_int_equal(rule_access(&p, "/"), ACCESS_READ);
	policy_free(&p);
	assert_int_equal(parse_json(&p, "{\"type\":\"readOnly\",\"networkAccess\":true}", err, sizeof(err)), 0);
	assert_true(p.is_network_enabled);
	policy_free(&p);
}

static void test_workspace_write_defaults(void **state)
{
	Policy p;
	char err[256];
	assert_int_equal(parse_json(&p, "{\"type\":\"workspaceWrite\",\"writableRoots\":[\"/data/out/\"]}", err,
				    sizeof(err)),
			 0);
	assert_int_equal(rule_access(&p, "/"), ACCESS_READ);
	assert_int_equal(rule_access(&p, "/work/repo"), ACCESS_WRITE);
	assert_int_equal(rule_access(&p, "/tmp"), ACCESS_WRITE);
	assert_int_equal(rule_access(&p, "/var/tmp/me"), ACCESS_WRITE);
	assert_int_equal(rule_access(&p, "/data/out"), ACCESS_WRITE); /* normalised */
	assert_int_equal(p.rule_count, 5);
	policy_free(&p);
}

static void test_workspace_write_exclusions(void **state)
{
	Policy p;
	char err[256];
	assert_int_equal(parse_json(&p,
				    "{\"type\":\"workspaceWrite\",\"excludeTmpdirEnvVar\":true,"
				    "\"excludeSlashTmp\":true,\"networkAccess\":true}",
				    err, sizeof(err)),
			 0);
	assert_int_equal(rule_access(&p, "/tmp"), -1);
	assert_int_equal(rule_access(&p, "/var/tmp/me"), -1);
	assert_true(p.is_network_enabled);
	policy_free(&p);
}

static void test_bad_sandbox_policies(void **state)
{
	static const struct {
		const char *json;
		const char *message;
	} cases[] = {
		{ "{\"type\":\"bogus\"}", "unknown sandboxPolicy type \"bogus\"" },
		{ "{\"type\":\"workspaceWrite\",\"writableRoots\":[\"rel/dir\"]}", "writableRoots[0] must be an absolute" },
		{ "{\"type\":\"workspaceWrite\",\"writableRoots\":\"/x\"}", "writableRoots must be an array" },
		{ "{\"type\":\"readOnly\",\"networkAccess\":\"yes\"}", "networkAccess must be a boolean" },
		{ "{\"neither\":1}", "needs a \"type\"" },
		{ "[]", "must be a JSON object" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Policy p;
		char err[256] = "";
		assert_int_equal(parse_json(&p, cases[i].json, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].message))
			fail_msg("%s: got \"%s\"", cases[i].json, err);
		policy_free(&p);
	}
}

static void test_full_access_kinds(void **state)
{
	Policy p;
	char err[256];
	assert_int_equal(parse_json(&p, "{\"type\":\"dangerFullAccess\"}", err, sizeof(err)), 0);
	assert_true(p.is_unrestricted);
	assert_true(p.is_network_enabled);
	policy_free(&p);
	assert_int_equal(parse_json(&p, "{\"type\":\"externalSandbox\",\"networkAccess\":\"restricted\"}", err,
				    sizeof(err)),
			 0);
	assert_true(p.is_unrestricted);
	assert_false(p.is_network_enabled);
	policy_free(&p);
	assert_int_equal(parse_json(&p, "{\"kind\":\"unrestricted\",\"network\":\"enabled\"}", err, sizeof(err)), 0);
	assert_true(p.is_unrestricted);
	assert_true(p.is_network_enabled);
	policy_free(&p);
}

static void test_filesystem_policy_entries(void **state)
{
	Policy p;
	char err[256];
	const char *json = "{\"kind\":\"restricted\",\"network\":\"restricted\",\"entries\":["
			   "{\"path\":{\"type\":\"special\",\"value\":{\"kind\":\"root\"}},\"access\":\"read\"},"
			   "{\"path\":{\"type\":\"special\",\"value\":{\"kind\":\"project_roots\"}},\"access\":\"write\"},"
			   "{\"path\":{\"type\":\"special\",\"value\":{\"kind\":\"current_working_directory\","
			   "\"subpath\":\"secrets\"}},\"access\":\"none\"},"
			   "{\"path\":{\"type\":\"special\",\"value\":{\"kind\":\"tmpdir\"}},\"access\":\"write\"},"
			   "{\"path\":{\"type\":\"special\",\"value\":{\"kind\":\"future_thing\"}},\"access\":\"write\"},"
			   "{\"path\":{\"type\":\"path\",\"path\":\"/opt/tool\"},\"access\":\"deny\"}]}";
	assert_int_equal(parse_json(&p, json, err, sizeof(err)), 0);
	assert_int_equal(rule_access(&p, "/"), ACCESS_READ);
	assert_int_equal(rule_access(&p, "/work/repo"), ACCESS_WRITE);
	assert_int_equal(rule_access(&p, "/work/repo/secrets"), ACCESS_DENY);
	assert_int_equal(rule_access(&p, "/var/tmp/me"), ACCESS_WRITE);
	assert_int_equal(rule_access(&p, "/opt/tool"), ACCESS_DENY);
	assert_int_equal(p.rule_count, 5); /* the unknown special is ignored */
	policy_free(&p);
}

static void test_filesystem_policy_refusals(void **state)
{
	static const char *const cases[] = {
		"{\"kind\":\"restricted\",\"entries\":[{\"path\":{\"type\":\"glob_pattern\",\"pattern\":\"/a/**/*.env\"},"
		"\"access\":\"read\"}]}",
		"{\"kind\":\"restricted\",\"glob_scan_max_depth\":0,\"entries\":[]}",
		"{\"kind\":\"restricted\",\"entries\":[{\"path\":{\"type\":\"path\",\"path\":\"rel\"},\"access\":\"read\"}]}",
		"{\"kind\":\"restricted\",\"entries\":[{\"path\":{\"type\":\"path\",\"path\":\"/a\"},\"access\":\"all\"}]}",
		"{\"kind\":\"restricted\",\"entries\":[{\"path\":{\"type\":\"special\",\"value\":{\"kind\":\"root\","
		"\"subpath\":\"x/*.pem\"}},\"access\":\"write\"}]}",
		"{\"kind\":\"restricted\",\"network\":\"maybe\",\"entries\":[]}",
		"{\"kind\":\"weird\",\"entries\":[]}",
		"{\"kind\":\"restricted\"}",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Policy p;
		char err[256] = "";
		if (parse_json(&p, cases[i], err, sizeof(err)) != -EINVAL)
			fail_msg("accepted: %s", cases[i]);
		assert_true(err[0] != '\0');
		policy_free(&p);
	}
}

/* Two rules for one path: deny beats write beats read, whatever the order. */
static void test_same_path_tie_rule(void **state)
{
	Policy p;
	policy_init(&p);
	assert_int_equal(policy_add(&p, &ctx, "/a", ACCESS_READ), 0);
	assert_int_equal(policy_add(&p, &ctx, "/a/", ACCESS_WRITE), 0);
	assert_int_equal(rule_access(&p, "/a"), ACCESS_WRITE);
	assert_int_equal(policy_add(&p, &ctx, "/a/./", ACCESS_DENY), 0);
	assert_int_equal(policy_add(&p, &ctx, "/a", ACCESS_WRITE), 0);
	assert_int_equal(rule_access(&p, "/a"), ACCESS_DENY);
	assert_int_equal(p.rule_count, 1);
	assert_int_equal(policy_add(&p, &ctx, "sub", ACCESS_READ), 0); /* relative to the cwd */
	assert_int_equal(rule_access(&p, "/work/repo/sub"), ACCESS_READ);
	policy_free(&p);
}

static void test_profile_split_filesystem(void **state)
{
	const char *toml = "[permissions.dev.filesystem]\n"
			   "\":root\" = \"read\"\n"
			   "\"/opt/cache\" = \"write\"\n"
			   "\"~/.ssh\" = \"none\"\n"
			   "glob_scan_max_depth = 2\n"
			   "[permissions.dev.filesystem.\":workspace_roots\"]\n"
			   "\".\" = \"write\"\n"
			   "\".env\" = \"none\"\n"
			   "\"build/out\" = \"read\"\n"
			   "[permissions.dev.network]\n"
			   "enabled = true\n";
	Policy p;
	char err[256];
	assert_int_equal(parse_profile(&p, toml, "dev", err, sizeof(err)), 0);
	assert_int_equal(rule_access(&p, "/"), ACCESS_READ);
	assert_int_equal(rule_access(&p, "/opt/cache"), ACCESS_WRITE);
	assert_int_equal(rule_access(&p, "/home/me/.ssh"), ACCESS_DENY);
	assert_int_equal(rule_access(&p, "/work/repo"), ACCESS_WRITE);
	assert_int_equal(rule_access(&p, "/work/repo/.env"), ACCESS_DENY);
	assert_int_equal(rule_access(&p, "/work/repo/build/out"), ACCESS_READ);
	assert_true(p.is_network_enabled);
	assert_false(p.is_unrestricted);
	policy_free(&p);
}

/* A profile overrides what it extends, path by path: the child's word wins even when weaker. */
static void test_profile_extends(void **state)
{
	const char *toml = "[permissions.base.filesystem]\n"
			   "\":root\" = \"read\"\n"
			   "\"/data\" = \"none\"\n"
			   "[permissions.child]\n"
			   "extends = \"base\"\n"
			   "[permissions.child.filesystem]\n"
			   "\"/data\" = \"read\"\n"
			   "\":cwd\" = \"write\"\n";
	Policy p;
	char err[256];
	assert_int_equal(parse_profile(&p, toml, "child", err, sizeof(err)), 0);
	assert_int_equal(rule_access(&p, "/"), ACCESS_READ);
	assert_int_equal(rule_access(&p, "/data"), ACCESS_READ);
	assert_int_equal(rule_access(&p, "/work/repo"), ACCESS_WRITE);
	policy_free(&p);
}

static void test_builtin_profiles(void **state)
{
	Policy p;
	char err[256];
	assert_int_equal(parse_profile(&p, "", ":read-only", err, sizeof(err)), 0);
	assert_int_equal(rule_access(&p, "/"), ACCESS_READ);
	assert_int_equal(p.rule_count, 1);
	policy_free(&p);
	assert_int_equal(parse_profile(&p, "", ":workspace", err, sizeof(err)), 0);
	assert_int_equal(rule_access(&p, "/work/repo"), ACCESS_WRITE);
	policy_free(&p);
	assert_int_equal(parse_profile(&p, "", ":danger-full-access", err, sizeof(err)), 0);
	assert_true(p.is_unrestricted);
	policy_free(&p);
	assert_int_equal(parse_profile(&p, "", ":root-shell", err, sizeof(err)), -ENOENT);
	policy_free(&p);
	assert_int_equal(parse_profile(&p, "", "nobody", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "\"nobody\" is not defined"));
	policy_free(&p);
}

static void test_profile_errors(void **state)
{
	static const struct {
		const char *toml;
		const char *message;
	} cases[] = {
		{ "[permissions.a]\nextends = \"b\"\n[permissions.b]\nextends = \"a\"\n", "cycle" },
		{ "[permissions.a]\nextends = \"ghost\"\n", "extends undefined profile \"ghost\"" },
		{ "[permissions.\":mine\"]\n", "reserved built-in profile prefix" },
		{ "[permissions.a.filesystem]\n\"relative/dir\" = \"read\"\n", "must be absolute" },
		{ "[permissions.a.filesystem]\n\"/x\" = \"execute\"\n", "must be read, write or none" },
		{ "[permissions.a.filesystem.\":root\"]\n\"x\" = \"read\"\n", "does not support nested entries" },
		{ "[permissions.a.filesystem]\n\"/s/**/*.pem\" = \"read\"\n", "can only deny" },
		{ "[permissions.a.filesystem]\nglob_scan_max_depth = 0\n", "glob_scan_max_depth must be >= 1" },
		{ "[permissions.a.network]\nenabled = true\nmode = \"limited\"\n", "managed network proxy" },
		{ "[permissions.a.network]\nenabled = \"yes\"\n", "enabled must be a boolean" },
		{ "[permissions.a.filesystem.\"/abs\"]\n\"/nested\" = \"read\"\n", "cannot use subpath" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Policy p;
		char err[256] = "";
		assert_int_equal(parse_profile(&p, cases[i].toml, "a", err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].message))
			fail_msg("case %zu: got \"%s\", wanted \"%s\"", i, err, cases[i].message);
		policy_free(&p);
	}
}

static const char *glob_at(const Policy *p, size_t i, const char **pattern)
{
	assert_true(i < p->glob_count);
	*pattern = p->globs[i].pattern;
	return p->globs[i].base;
}

/* Deny globs keep their wildcard-free start as a base; a whole subtree is just its path. */
static void test_globs(void **state)
{
	Policy p;
	char err[256];
	const char *pattern;
	const char *json = "{\"kind\":\"restricted\",\"glob_scan_max_depth\":3,\"entries\":["
			   "{\"path\":{\"type\":\"glob_pattern\",\"pattern\":\"/srv/app/**/*.env\"},\"access\":\"deny\"},"
			   "{\"path\":{\"type\":\"glob_pattern\",\"pattern\":\"/data/**\"},\"access\":\"read\"},"
			   "{\"path\":{\"type\":\"special\",\"value\":{\"kind\":\"project_roots\",\"subpath\":"
			   "\"keys/*.pem\"}},\"access\":\"deny\"}]}";
	assert_int_equal(parse_json(&p, json, err, sizeof(err)), 0);
	assert_int_equal(p.glob_max_depth, 3);
	assert_int_equal(p.glob_count, 2);
	assert_string_equal(glob_at(&p, 0, &pattern), "/srv/app");
	assert_string_equal(pattern, "**/*.env");
	assert_string_equal(glob_at(&p, 1, &pattern), "/work/repo/keys");
	assert_string_equal(pattern, "*.pem");
	assert_int_equal(rule_access(&p, "/data"), ACCESS_READ);
	policy_free(&p);
	const char *toml = "[permissions.g.filesystem]\n"
			   "\":root\" = \"read\"\n"
			   "\"/etc/*.key\" = \"none\"\n"
			   "glob_scan_max_depth = 2\n"
			   "[permissions.g.filesystem.\":workspace_roots\"]\n"
			   "\".\" = \"write\"\n"
			   "\"**/*.env\" = \"none\"\n";
	assert_int_equal(parse_profile(&p, toml, "g", err, sizeof(err)), 0);
	assert_int_equal(p.glob_max_depth, 2);
	assert_int_equal(p.glob_count, 2);
	assert_string_equal(glob_at(&p, 0, &pattern), "/etc");
	assert_string_equal(pattern, "*.key");
	assert_string_equal(glob_at(&p, 1, &pattern), "/work/repo");
	assert_string_equal(pattern, "**/*.env");
	policy_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_workspace_write_defaults),
		cmocka_unit_test(test_workspace_write_exclusions),
		cmocka_unit_test(test_bad_sandbox_policies),
		cmocka_unit_test(test_full_access_kinds),
		cmocka_unit_test(test_filesystem_policy_entries),
		cmocka_unit_test(test_filesystem_policy_refusals),
		cmocka_unit_test(test_same_path_tie_rule),
		cmocka_unit_test(test_profile_split_filesystem),
		cmocka_unit_test(test_profile_extends),
		cmocka_unit_test(test_builtin_profiles),
		cmocka_unit_test(test_profile_errors),
		cmocka_unit_test(test_globs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
