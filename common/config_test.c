/* SPDX-License-Identifier: MIT */
/* config_test.c - cmocka tests for config_load() from a scratch CODEX_HOME, the typed lookups,
 * and the "<path>:<line>:<column>: <message>" syntax error report. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

typedef struct Home {
	char dir[64];
	char toml[128];
	char *saved_codex_home;
	char *saved_home;
} Home;

static int home_setup(void **state)
{
	Home *h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	strcpy(h->dir, "/tmp/config_test.XXXXXX");
	if (!mkdtemp(h->dir)) {
		free(h);
		return -1;
	}
	snprintf(h->toml, sizeof(h->toml), "%s/config.toml", h->dir);
	const char *v = getenv("CODEX_HOME");
	h->saved_codex_home = v ? strdup(v) : NULL;
	v = getenv("HOME");
	h->saved_home = v ? strdup(v) : NULL;
	setenv("CODEX_HOME", h->dir, 1);
	*state = h;
	return 0;
}

static int home_teardown(void **state)
{
	Home *h = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	int rc = system(cmd);
	if (h->saved_codex_home)
		setenv("CODEX_HOME", h->saved_codex_home, 1);
	else
		unsetenv("CODEX_HOME");
	if (h->saved_home)
		setenv("HOME", h->saved_home, 1);
	else
		unsetenv("HOME");
	free(h->saved_codex_home);
	free(h->saved_home);
	free(h);
	return rc == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* ---- loading --------------------------------------------------------------------------------- */

static void test_missing_file_is_empty(void **state)
{
	Home *h = *state;
	Config cfg;
	char err[256] = "";
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.codex_home, h->dir);
	assert_string_equal(cfg.path, h->toml);
	assert_true(json_is_object(cfg.root));
	assert_int_equal(json_object_size(cfg.root), 0);
	int64_t v = 0;
	assert_int_equal(config_get_int(&cfg, "agentd.max_message_bytes", 1024, 1 << 30, 777, &v), 0);
	assert_int_equal(v, 777);
	const char *fallback = "info", *s = NULL;
	assert_int_equal(config_get_string(&cfg, "agentd.log_level", fallback, &s), 0);
	assert_ptr_equal(s, fallback);
	assert_null(config_lookup(&cfg, "agentd"));
	config_free(&cfg);
	assert_null(cfg.root);
}

static void test_empty_file_is_empty(void **state)
{
	Home *h = *state;
	write_file(h->toml, "");
	Config cfg;
	char err[256] = "";
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	assert_true(json_is_object(cfg.root));
	assert_int_equal(json_object_size(cfg.root), 0);
	config_free(&cfg);
}

static void test_codex_home_trailing_slash(void **state)
{
	Home *h = *state;
	char with_slash[80];
	snprintf(with_slash, sizeof(with_slash), "%s//", h->dir);
	setenv("CODEX_HOME", with_slash, 1);
	write_file(h->toml, "[agentd]\nmax_message_bytes = 2048\n");
	Config cfg;
	char err[256] = "";
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.path, h->toml);
	int64_t v = 0;
	assert_int_equal(config_get_int(&cfg, "agentd.max_message_bytes", 0, 1 << 20, 1, &v), 0);
	assert_int_equal(v, 2048);
	config_free(&cfg);
}

static void test_codex_home_from_home(void **state)
{
	Home *h = *state;
	char codex[96];
	snprintf(codex, sizeof(codex), "%s/.codex", h->dir);
	assert_int_equal(mkdir(codex, 0700), 0);
	char toml[128];
	snprintf(toml, sizeof(toml), "%s/config.toml", codex);
	write_file(toml, "[agentd]\nlog_level = \"warn\"\n");
	unsetenv("CODEX_HOME");
	setenv("HOME", h->dir, 1);
	Config cfg;
	char err[256] = "";
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.path, toml);
	const char *s = NULL;
	assert_int_equal(config_get_string(&cfg, "agentd.log_level", "info", &s), 0);
	assert_string_equal(s, "warn");
	config_free(&cfg);
}

static void test_relative_codex_home_refused(void **state)
{
	(void)state;
	setenv("CODEX_HOME", "relative/codex", 1);
	Config cfg;
	char err[256] = "";
	assert_int_equal(config_load(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "CODEX_HOME"));
	config_free(&cfg);
}

static void test_directory_in_place_of_file(void **state)
{
	Home *h = *state;
	assert_int_equal(mkdir(h->toml, 0700), 0);
	Config cfg;
	char err[256] = "";
	int rc = config_load(&cfg, err, sizeof(err));
	assert_true(rc < 0);
	/* the message names the file */
	assert_int_equal(strncmp(err, h->toml, strlen(h->toml)), 0);
	config_free(&cfg);
}

static void test_oversized_file_refused(void **state)
{
	Home *h = *state;
	int fd = open(h->toml, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 5 * 1024 * 1024), 0); /* sparse: over the 4 MiB bound */
	close(fd);
	Config cfg;
	char err[256] = "";
	assert_int_equal(config_load(&cfg, err, sizeof(err)), -EFBIG);
	assert_int_equal(strncmp(err, h->toml, strlen(h->toml)), 0);
	config_free(&cfg);
}

/* ---- typed lookups --------------------------------------------------------------------------- */

static const char lookup_toml[] = "top = 1\n"
				  "[agentd]\n"
				  "max_message_bytes = 4096\n"
				  "log_level = \"debug\"\n"
				  "ratio = 1.5\n"
				  "whole_float = 4096.0\n"
				  "enabled = true\n"
				  "negative = -5\n"
				  "huge = 9223372036854775807\n"
				  "list = [1, 2]\n"
				  "quoted_number = \"4096\"\n"
				  "[agentd.nested]\n"
				  "depth = 2\n";

typedef struct IntCase {
	const char *name;
	const char *key;
	int64_t min, max, fallback;
	int rc;
	int64_t want;
} IntCase;

static const IntCase int_cases[] = {
	/* happy */
	{ "in range", "agentd.max_message_bytes", 1024, 1 << 30, 1, 0, 4096 },
	{ "equal to min", "agentd.max_message_bytes", 4096, 1 << 30, 1, 0, 4096 },
	{ "equal to max", "agentd.max_message_bytes", 0, 4096, 1, 0, 4096 },
	{ "negative in range", "agentd.negative", -10, 0, 1, 0, -5 },
	{ "INT64_MAX", "agentd.huge", 0, INT64_MAX, 1, 0, INT64_MAX },
	{ "top-level key", "top", 0, 10, 5, 0, 1 },
	{ "nested table", "agentd.nested.depth", 0, 10, 5, 0, 2 },
	{ "absent key: fallback", "agentd.max_write_queue_bytes", 0, 10, 7, 0, 7 },
	{ "absent table: fallback", "execd.max", 0, 10, -3, 0, -3 },
	/* failures */
	{ "one above max", "agentd.max_message_bytes", 0, 4095, 1, -EINVAL, 0 },
	{ "one below min", "agentd.max_message_bytes", 4097, 1 << 30, 1, -EINVAL, 0 },
	{ "negative below min 0", "agentd.negative", 0, 100, 1, -EINVAL, 0 },
	{ "INT64_MAX above max", "agentd.huge", 0, INT64_MAX - 1, 1, -EINVAL, 0 },
	{ "string", "agentd.log_level", 0, 100, 1, -EINVAL, 0 },
	{ "numeric string", "agentd.quoted_number", 0, 1 << 30, 1, -EINVAL, 0 },
	{ "float", "agentd.ratio", 0, 100, 1, -EINVAL, 0 },
	{ "float with integral value", "agentd.whole_float", 0, 1 << 30, 1, -EINVAL, 0 },
	{ "boolean", "agentd.enabled", 0, 100, 1, -EINVAL, 0 },
	{ "array", "agentd.list", 0, 100, 1, -EINVAL, 0 },
	{ "table", "agentd", 0, 100, 1, -EINVAL, 0 },
};

typedef struct StringCase {
	const char *name;
	const char *key;
	const char *fallback;
	int rc;
	const char *want; /* NULL: expect the fallback pointer */
} StringCase;

static const StringCase string_cases[] = {
	{ "present", "agentd.log_level", "info", 0, "debug" },
	{ "numeric text stays text", "agentd.quoted_number", NULL, 0, "4096" },
	{ "absent: fallback", "agentd.missing", "info", 0, NULL },
	{ "absent: NULL fallback", "agentd.missing", NULL, 0, NULL },
	{ "absent table: fallback", "nope.log_level", "warn", 0, NULL },
	{ "integer", "agentd.max_message_bytes", "info", -EINVAL, NULL },
	{ "float", "agentd.ratio", "info", -EINVAL, NULL },
	{ "boolean", "agentd.enabled", "info", -EINVAL, NULL },
	{ "array", "agentd.list", "info", -EINVAL, NULL },
	{ "table", "agentd.nested", "info", -EINVAL, NULL },
};

static void test_typed_lookups(void **state)
{
	Home *h = *state;
	write_file(h->toml, lookup_toml);
	Config cfg;
	char err[256] = "";
	if (config_load(&cfg, err, sizeof(err)) != 0)
		fail_msg("config_load: %s", err);
	for (size_t i = 0; i < sizeof(int_cases) / sizeof(int_cases[0]); i++) {
		const IntCase *c = &int_cases[i];
		int64_t v = INT64_MIN + 1;
		int rc = config_get_int(&cfg, c->key, c->min, c->max, c->fallback, &v);
		if (rc != c->rc)
			fail_msg("int %s: rc %d, want %d", c->name, rc, c->rc);
		if (rc == 0 && v != c->want)
			fail_msg("int %s: %lld, want %lld", c->name, (long long)v, (long long)c->want);
	}
	for (size_t i = 0; i < sizeof(string_cases) / sizeof(string_cases[0]); i++) {
		const StringCase *c = &string_cases[i];
		const char *s = "untouched";
		int rc = config_get_string(&cfg, c->key, c->fallback, &s);
		if (rc != c->rc)
			fail_msg("string %s: rc %d, want %d", c->name, rc, c->rc);
		if (rc != 0)
			continue;
		if (c->want) {
			assert_non_null(s);
			if (strcmp(s, c->want) != 0)
				fail_msg("string %s: \"%s\", want \"%s\"", c->name, s, c->want);
		} else if (s != c->fallback) {
			fail_msg("string %s: did not return the fallback", c->name);
		}
	}
	config_free(&cfg);
}

typedef struct LookupCase {
	const char *key;
	json_type type; /* JSON_NULL: expect no value */
} LookupCase;

static const LookupCase lookup_cases[] = {
	{ "agentd", JSON_OBJECT },
	{ "agentd.nested", JSON_OBJECT },
	{ "agentd.list", JSON_ARRAY },
	{ "agentd.ratio", JSON_REAL },
	{ "agentd.enabled", JSON_TRUE },
	{ "agentd.nope", JSON_NULL },
	{ "agentd.max_message_bytes.deeper", JSON_NULL }, /* a scalar has no children */
	{ "agentd.log_level.x", JSON_NULL },
	{ "agent", JSON_NULL },	 /* a prefix of a table name */
	{ "AGENTD", JSON_NULL }, /* keys are case-sensitive */
	{ "top.x", JSON_NULL },
};

static void test_lookup_paths(void **state)
{
	(void)state;
	Config cfg = { 0 };
	char err[256] = "";
	cfg.root = json_object();
	int rc = config_load_text(&cfg, "inline", lookup_toml, strlen(lookup_toml), err, sizeof(err));
	assert_int_equal(rc, 0);
	for (size_t i = 0; i < sizeof(lookup_cases) / sizeof(lookup_cases[0]); i++) {
		const LookupCase *c = &lookup_cases[i];
		json_t *v = config_lookup(&cfg, c->key);
		if (c->type == JSON_NULL) {
			if (v)
				fail_msg("lookup %s: found a value", c->key);
		} else if (!v || json_typeof(v) != c->type) {
			fail_msg("lookup %s: wrong or missing value", c->key);
		}
	}
	config_free(&cfg);
}

/* ---- syntax errors --------------------------------------------------------------------------- */

typedef struct SyntaxCase {
	const char *name;
	const char *toml;
	int line;
} SyntaxCase;

static const SyntaxCase syntax_cases[] = {
	{ "missing value", "[agentd]\nmax_message_bytes = 4096\nlog_level =\n", 3 },
	{ "unclosed table header", "a = 1\n[agentd\n", 2 },
	{ "bare word value", "[agentd]\nlog_level = debug\n", 2 },
	{ "duplicate key", "[agentd]\nx = 1\n\n# comment\nx = 2\n", 5 },
	{ "unterminated string", "a = \"open\n", 1 },
	{ "key without value on line 1", "= 1\n", 1 },
	{ "duplicate table", "[agentd]\n[execd]\n[agentd]\n", 3 },
};

/* err must read "<name>:<line>:<column>: <message>" with the given name and line, a column >= 1
 * and a non-empty message. */
static void assert_error_location(const char *err, const char *name, int line)
{
	size_t n = strlen(name);
	if (strncmp(err, name, n) != 0 || err[n] != ':')
		fail_msg("error \"%s\" does not start with \"%s:\"", err, name);
	const char *p = err + n + 1;
	char *end;
	long got_line = strtol(p, &end, 10);
	if (end == p || *end != ':' || got_line != line)
		fail_msg("error \"%s\": want line %d", err, line);
	p = end + 1;
	long column = strtol(p, &end, 10);
	if (end == p || *end != ':' || column < 1)
		fail_msg("error \"%s\": no column", err);
	if (end[1] != ' ' || end[2] == '\0')
		fail_msg("error \"%s\": no message", err);
}

static void test_syntax_errors(void **state)
{
	Home *h = *state;
	for (size_t i = 0; i < sizeof(syntax_cases) / sizeof(syntax_cases[0]); i++) {
		const SyntaxCase *c = &syntax_cases[i];
		print_message("syntax error: %s\n", c->name);
		write_file(h->toml, c->toml);
		Config cfg;
		char err[512] = "";
		assert_int_equal(config_load(&cfg, err, sizeof(err)), -EINVAL);
		assert_error_location(err, h->toml, c->line);
		config_free(&cfg);

		/* config_load_text reports the name it is given the same way */
		Config text_cfg = { 0 };
		text_cfg.root = json_object();
		char err2[512] = "";
		assert_int_equal(config_load_text(&text_cfg, "inline.toml", c->toml, strlen(c->toml), err2,
						  sizeof(err2)),
				 -EINVAL);
		assert_error_location(err2, "inline.toml", c->line);
		config_free(&text_cfg);
	}
}

/* ---- reload ---------------------------------------------------------------------------------- */

static int adopt_calls;

static int adopt_only_small(const Config *fresh, void *ctx)
{
	int64_t v = 0;
	adopt_calls++;
	if (config_get_int(fresh, "agentd.max_message_bytes", 0, 4096, 0, &v) < 0)
		return -EINVAL;
	*(int64_t *)ctx = v;
	return 0;
}

static int64_t reloaded_value(const Config *cfg)
{
	int64_t v = -1;
	assert_int_equal(config_get_int(cfg, "agentd.max_message_bytes", 0, INT64_MAX, -1, &v), 0);
	return v;
}

static void test_reload_replaces_on_success(void **state)
{
	Home *h = *state;
	Config cfg;
	char err[256];
	int64_t adopted = 0;
	write_file(h->toml, "[agentd]\nmax_message_bytes = 1024\n");
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	write_file(h->toml, "[agentd]\nmax_message_bytes = 2048\n");
	adopt_calls = 0;
	assert_int_equal(config_reload(&cfg, adopt_only_small, &adopted), 0);
	assert_int_equal(adopt_calls, 1);
	assert_int_equal(adopted, 2048);
	assert_int_equal(reloaded_value(&cfg), 2048);
	config_free(&cfg);
}

static void test_reload_keeps_old_on_syntax_error(void **state)
{
	Home *h = *state;
	Config cfg;
	char err[256];
	int64_t adopted = 0;
	write_file(h->toml, "[agentd]\nmax_message_bytes = 1024\n");
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	write_file(h->toml, "[agentd\nmax_message_bytes = 2048\n");
	adopt_calls = 0;
	assert_int_equal(config_reload(&cfg, adopt_only_small, &adopted), -EINVAL);
	assert_int_equal(adopt_calls, 0);
	assert_int_equal(reloaded_value(&cfg), 1024);
	config_free(&cfg);
}

static void test_reload_keeps_old_when_refused(void **state)
{
	Home *h = *state;
	Config cfg;
	char err[256];
	int64_t adopted = 0;
	write_file(h->toml, "[agentd]\nmax_message_bytes = 1024\n");
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	write_file(h->toml, "[agentd]\nmax_message_bytes = 999999\n");
	adopt_calls = 0;
	assert_int_equal(config_reload(&cfg, adopt_only_small, &adopted), -EINVAL);
	assert_int_equal(adopt_calls, 1);
	assert_int_equal(adopted, 0);
	assert_int_equal(reloaded_value(&cfg), 1024);
	config_free(&cfg);
}

/* ---- overrides (codex -c) ------------------------------------------------------------------- */

static void test_overrides_apply_on_every_load(void **state)
{
	Home *h = *state;
	static const char *const overrides[] = {
		"agentd.max_message_bytes=2048",     /* replaces a file value */
		"model=o3",                          /* not TOML: a literal string */
		"features.fast=true",                /* new nested table */
		"model_providers.mock.name=\"Mock\"", /* deeper, quoted TOML string */
		"agentd.log_level.x=1",              /* a non-table on the way is replaced by a table */
	};
	char err[256];
	Config cfg;
	write_file(h->toml, "[agentd]\nmax_message_bytes = 1024\nlog_level = \"info\"\n");
	assert_int_equal(config_set_overrides(overrides, 5, err, sizeof(err)), 0);
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	int64_t v = 0;
	assert_int_equal(config_get_int(&cfg, "agentd.max_message_bytes", 0, INT64_MAX, 0, &v), 0);
	assert_int_equal(v, 2048);
	const char *text = NULL;
	assert_int_equal(config_get_string(&cfg, "model", NULL, &text), 0);
	assert_string_equal(text, "o3");
	assert_true(json_is_true(config_lookup(&cfg, "features.fast")));
	assert_int_equal(config_get_string(&cfg, "model_providers.mock.name", NULL, &text), 0);
	assert_string_equal(text, "Mock");
	assert_int_equal(json_integer_value(config_lookup(&cfg, "agentd.log_level.x")), 1);
	/* A reload applies them again. */
	write_file(h->toml, "[agentd]\nmax_message_bytes = 4096\n");
	assert_int_equal(config_reload(&cfg, NULL, NULL), 0);
	assert_int_equal(config_get_int(&cfg, "agentd.max_message_bytes", 0, INT64_MAX, 0, &v), 0);
	assert_int_equal(v, 2048);
	config_free(&cfg);
	assert_int_equal(config_set_overrides(NULL, 0, err, sizeof(err)), 0);
}

static void test_overrides_refuse_malformed(void **state)
{
	static const char *const no_equals[] = { "model" };
	static const char *const empty_key[] = { "=1" };
	char err[256] = "";
	assert_int_equal(config_set_overrides(no_equals, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "model"));
	assert_int_equal(config_set_overrides(empty_key, 1, err, sizeof(err)), -EINVAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, home_setup, home_teardown)
	const struct CMUnitTest tests[] = {
		T(test_missing_file_is_empty),
		T(test_empty_file_is_empty),
		T(test_codex_home_trailing_slash),
		T(test_codex_home_from_home),
		T(test_relative_codex_home_refused),
		T(test_directory_in_place_of_file),
		T(test_oversized_file_refused),
		T(test_typed_lookups),
		T(test_lookup_paths),
		T(test_syntax_errors),
		T(test_reload_replaces_on_success),
		T(test_reload_keeps_old_on_syntax_error),
		T(test_reload_keeps_old_when_refused),
		T(test_overrides_apply_on_every_load),
		T(test_overrides_refuse_malformed),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
