/* SPDX-License-Identifier: MIT */
/* providers_test.c - cmocka tests for the model provider resolver: built-in openai, custom
 * providers (URLs, query params, headers from config and from the environment), and a table of
 * configurations that must be refused with a message naming the key. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers.h"

static const char *const env_vars[] = {
	"OPENAI_BASE_URL",	 "OPENAI_ORGANIZATION",	 "OPENAI_PROJECT",
	"PROVIDERS_TEST_TENANT", "PROVIDERS_TEST_BLANK",
};

static int clear_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
		unsetenv(env_vars[i]);
	return 0;
}

/* Resolves @toml; on success the provider, else NULL with @rc and @err set. */
static Provider *resolve(const char *toml, int *rc, char *err, size_t err_len)
{
	Config cfg = { 0 };
	char perr[256] = "";
	Provider *p = NULL;
	assert_int_equal(config_load_text(&cfg, "test.toml", toml, strlen(toml), perr, sizeof(perr)), 0);
	*rc = provider_resolve(&cfg, &p, err, err_len);
	config_free(&cfg);
	if (*rc < 0)
		assert_null(p);
	else
		assert_non_null(p);
	return p;
}

static Provider *resolve_ok(const char *toml)
{
	char err[256] = "";
	int rc;
	Provider *p = resolve(toml, &rc, err, sizeof(err));
	if (rc < 0)
		fail_msg("provider_resolve: %d: %s", rc, err);
	return p;
}

static void test_default_openai(void **state)
{
	(void)state;
	Provider *p = resolve_ok("");
	assert_string_equal(p->id, "openai");
	assert_string_equal(p->name, "OpenAI");
	assert_null(p->model);
	assert_true(p->is_builtin);
	assert_true(p->requires_openai_auth);
	assert_null(p->env_key);
	assert_string_equal(provider_base_url(p, PROVIDER_AUTH_API_KEY), "https://api.openai.com/v1");
	assert_string_equal(provider_responses_url(p, PROVIDER_AUTH_API_KEY),
			    "https://api.openai.com/v1/responses");
	assert_string_equal(provider_base_url(p, PROVIDER_AUTH_CHATGPT),
			    "https://chatgpt.com/backend-api/codex");
	assert_string_equal(provider_responses_url(p, PROVIDER_AUTH_CHATGPT),
			    "https://chatgpt.com/backend-api/codex/responses");
	/* the reference's "version" header; organization/project only when set */
	assert_non_null(provider_header(p, "version"));
	assert_null(provider_header(p, "OpenAI-Organization"));
	assert_int_equal(p->n_headers, 1);
	assert_int_equal(p->request_max_retries, 4);
	assert_int_equal(p->stream_max_retries, 5);
	assert_int_equal(p->stream_idle_timeout_ms, 300000);
	provider_free(p);

	p = resolve_ok("model = \"gpt-5-codex\"\nmodel_provider = \"openai\"\n");
	assert_string_equal(p->model, "gpt-5-codex");
	assert_string_equal(p->id, "openai");
	provider_free(p);
}

static void test_openai_env(void **state)
{
	(void)state;
	setenv("OPENAI_ORGANIZATION", "org-1", 1);
	setenv("OPENAI_PROJECT", "   ", 1); /* blank: not sent */
	setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/", 1);
	Provider *p = resolve_ok("");
	assert_string_equal(provider_header(p, "openai-organization"), "org-1");
	assert_null(provider_header(p, "OpenAI-Project"));
	/* an override applies to both auth modes; its trailing '/' is dropped */
	assert_string_equal(provider_responses_url(p, PROVIDER_AUTH_API_KEY),
			    "http://127.0.0.1:9/v1/responses");
	assert_string_equal(provider_responses_url(p, PROVIDER_AUTH_CHATGPT),
			    "http://127.0.0.1:9/v1/responses");
	provider_free(p);

	/* the config key wins over the variable */
	p = resolve_ok("openai_base_url = \"https://proxy.example/v1\"\n");
	assert_string_equal(provider_base_url(p, PROVIDER_AUTH_API_KEY), "https://proxy.example/v1");
	provider_free(p);

	setenv("OPENAI_BASE_URL", "api.example/v1", 1);
	char err[256] = "";
	int rc;
	assert_null(resolve("", &rc, err, sizeof(err)));
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err, "OPENAI_BASE_URL must be an http:// or https:// URL");

	setenv("OPENAI_BASE_URL", "  ", 1); /* blank counts as unset */
	p = resolve_ok("");
	assert_string_equal(provider_base_url(p, PROVIDER_AUTH_API_KEY), "https://api.openai.com/v1");
	provider_free(p);
	clear_env(NULL);
}

static void test_mock_provider(void **state)
{
	(void)state;
	/* the reference's app-server test configuration (§13.4) */
	Provider *p = resolve_ok("model = \"mock-model\"\n"
				 "approval_policy = \"never\"\n"
				 "sandbox_mode = \"read-only\"\n"
				 "model_provider = \"mock_provider\"\n"
				 "[model_providers.mock_provider]\n"
				 "name = \"Mock provider for test\"\n"
				 "base_url = \"http://127.0.0.1:4321/v1\"\n"
				 "wire_api = \"responses\"\n"
				 "request_max_retries = 0\n"
				 "stream_max_retries = 0\n"
				 "supports_websockets = false\n");
	assert_string_equal(p->id, "mock_provider");
	assert_string_equal(p->name, "Mock provider for test");
	assert_string_equal(p->model, "mock-model");
	assert_false(p->is_builtin);
	assert_false(p->requires_openai_auth);
	assert_false(p->supports_websockets);
	assert_string_equal(provider_responses_url(p, PROVIDER_AUTH_API_KEY),
			    "http://127.0.0.1:4321/v1/responses");
	assert_string_equal(provider_responses_url(p, PROVIDER_AUTH_CHATGPT),
			    "http://127.0.0.1:4321/v1/responses");
	assert_int_equal(p->request_max_retries, 0);
	assert_int_equal(p->stream_max_retries, 0);
	assert_int_equal(p->stream_idle_timeout_ms, 300000);
	assert_int_equal(p->n_headers, 0);
	provider_free(p);
}

static void test_custom_query_params_and_headers(void **state)
{
	(void)state;
	Provider *p = resolve_ok("model_provider = \"azure\"\n"
				 "[model_providers.azure]\n"
				 "name = \"Azure\"\n"
				 "base_url = \"https://x.openai.azure.com/openai\"\n"
				 "env_key = \"AZURE_OPENAI_API_KEY\"\n"
				 "env_key_instructions = \"set AZURE_OPENAI_API_KEY\"\n"
				 "query_params = { api-version = \"2025-04-01 preview\", q = \"a&b=c/d\" }\n"
				 "http_headers = { X-Feature = \"on\", \"X-Two\" = \"2\" }\n"
				 "stream_idle_timeout_ms = 1500\n"
				 "request_max_retries = 1000\n");
	assert_string_equal(p->env_key, "AZURE_OPENAI_API_KEY");
	assert_string_equal(p->env_key_instructions, "set AZURE_OPENAI_API_KEY");
	assert_string_equal(provider_base_url(p, PROVIDER_AUTH_API_KEY), "https://x.openai.azure.com/openai");
	assert_string_equal(provider_responses_url(p, PROVIDER_AUTH_API_KEY),
			    "https://x.openai.azure.com/openai/responses"
			    "?api-version=2025-04-01%20preview&q=a%26b%3Dc%2Fd");
	assert_int_equal(p->n_headers, 2);
	assert_string_equal(provider_header(p, "x-feature"), "on");
	assert_string_equal(provider_header(p, "X-Two"), "2");
	assert_int_equal(p->stream_idle_timeout_ms, 1500);
	assert_int_equal(p->request_max_retries, 100); /* capped as the reference does */
	provider_free(p);
}

static void test_custom_without_base_url(void **state)
{
	(void)state;
	/* a provider without base_url uses the OpenAI URL of the auth mode, as the reference does */
	Provider *p = resolve_ok("model_provider = \"corp\"\n"
				 "[model_providers.corp]\n"
				 "name = \"OpenAI\"\n"
				 "requires_openai_auth = true\n");
	assert_true(p->requires_openai_auth);
	assert_string_equal(provider_base_url(p, PROVIDER_AUTH_API_KEY), "https://api.openai.com/v1");
	assert_string_equal(provider_base_url(p, PROVIDER_AUTH_CHATGPT),
			    "https://chatgpt.com/backend-api/codex");
	provider_free(p);
}

static void test_env_headers(void **state)
{
	(void)state;
	const char *toml = "model_provider = \"p\"\n"
			   "[model_providers.p]\n"
			   "name = \"P\"\n"
			   "base_url = \"http://localhost:1/v1\"\n"
			   "http_headers = { X-Tenant = \"static\" }\n"
			   "env_http_headers = { X-Tenant = \"PROVIDERS_TEST_TENANT\", "
			   "X-Blank = \"PROVIDERS_TEST_BLANK\", X-Unset = \"PROVIDERS_TEST_UNSET\" }\n";
	Provider *p = resolve_ok(toml);
	assert_int_equal(p->n_headers, 1);
	assert_string_equal(provider_header(p, "X-Tenant"), "static");
	provider_free(p);

	setenv("PROVIDERS_TEST_TENANT", "from-env", 1);
	setenv("PROVIDERS_TEST_BLANK", "", 1);
	p = resolve_ok(toml);
	assert_int_equal(p->n_headers, 1); /* replaced, not added */
	assert_string_equal(provider_header(p, "x-tenant"), "from-env");
	assert_null(provider_header(p, "X-Blank"));
	assert_null(provider_header(p, "X-Unset"));
	provider_free(p);

	setenv("PROVIDERS_TEST_TENANT", "a\r\nInjected: 1", 1); /* not a header value: skipped */
	p = resolve_ok(toml);
	assert_string_equal(provider_header(p, "X-Tenant"), "static");
	provider_free(p);
	clear_env(NULL);
}

static void test_user_openai_does_not_replace_builtin(void **state)
{
	(void)state;
	Provider *p = resolve_ok("[model_providers.openai]\n"
				 "name = \"Mine\"\n"
				 "base_url = \"http://evil.example/v1\"\n"
				 "requires_openai_auth = false\n");
	assert_true(p->is_builtin);
	assert_string_equal(p->name, "OpenAI");
	assert_true(p->requires_openai_auth);
	assert_string_equal(provider_base_url(p, PROVIDER_AUTH_API_KEY), "https://api.openai.com/v1");
	provider_free(p);
}

typedef struct ErrorCase {
	const char *what;
	const char *toml;
	const char *message; /* a substring of the error */
} ErrorCase;

#define SEL "model_provider = \"x\"\n[model_providers.x]\nname = \"X\"\n"

static const ErrorCase error_cases[] = {
	{ "unknown provider", "model_provider = \"nope\"\n", "unknown model_provider `nope`" },
	{ "unknown with other tables", "model_provider = \"nope\"\n[model_providers.x]\nname = \"X\"\n",
	  "unknown model_provider `nope`" },
	{ "model not a string", "model = 5\n", "model must be a string" },
	{ "model_provider not a string", "model_provider = true\n", "model_provider must be a string" },
	{ "openai_base_url not a string", "openai_base_url = 1\n", "openai_base_url must be a string" },
	{ "openai_base_url not http", "openai_base_url = \"ftp://x\"\n", "openai_base_url must be an http" },
	{ "model_providers not a table", "model_providers = 3\n", "model_providers must be a table" },
	{ "provider not a table", "model_providers = { x = 1 }\n", "[model_providers.x] must be a table" },
	{ "name missing", "model_provider = \"x\"\n[model_providers.x]\nbase_url = \"http://h\"\n",
	  "[model_providers.x] name is missing" },
	{ "base_url type", SEL "base_url = 1\n", "[model_providers.x] base_url must be a string" },
	{ "base_url scheme", SEL "base_url = \"localhost:1/v1\"\n",
	  "[model_providers.x] base_url must be an http:// or https:// URL" },
	{ "env_key type", SEL "env_key = []\n", "[model_providers.x] env_key must be a string" },
	{ "env_key empty", SEL "env_key = \"\"\n", "[model_providers.x] env_key must not be empty" },
	{ "env_key_instructions type", SEL "env_key_instructions = 1\n",
	  "[model_providers.x] env_key_instructions must be a string" },
	{ "wire_api chat", SEL "wire_api = \"chat\"\n",
	  "[model_providers.x] wire_api `chat` is not supported: agentd speaks only the Responses API" },
	{ "wire_api type", SEL "wire_api = 1\n", "[model_providers.x] wire_api must be a string" },
	{ "query_params type", SEL "query_params = \"a=b\"\n",
	  "[model_providers.x] query_params must be a table" },
	{ "query_params value", SEL "query_params = { v = 1 }\n",
	  "[model_providers.x] query_params.v must be a string" },
	{ "http_headers value", SEL "http_headers = { A = true }\n",
	  "[model_providers.x] http_headers.A must be a string" },
	{ "http_headers name", SEL "http_headers = { \"Bad Name\" = \"v\" }\n",
	  "[model_providers.x] http_headers: `Bad Name` is not a valid header name" },
	{ "http_headers value CRLF", SEL "http_headers = { A = \"v\\r\\nB: c\" }\n",
	  "[model_providers.x] http_headers.A must not hold control characters" },
	{ "env_http_headers value", SEL "env_http_headers = { A = 2 }\n",
	  "[model_providers.x] env_http_headers.A must be a string" },
	{ "env_http_headers name", SEL "env_http_headers = { \"A:B\" = \"V\" }\n",
	  "[model_providers.x] env_http_headers: `A:B` is not a valid header name" },
	{ "request_max_retries type", SEL "request_max_retries = \"4\"\n",
	  "[model_providers.x] request_max_retries must be a non-negative integer" },
	{ "stream_max_retries negative", SEL "stream_max_retries = -1\n",
	  "[model_providers.x] stream_max_retries must be a non-negative integer" },
	{ "stream_idle_timeout_ms float", SEL "stream_idle_timeout_ms = 1.5\n",
	  "[model_providers.x] stream_idle_timeout_ms must be a non-negative integer" },
	{ "requires_openai_auth type", SEL "requires_openai_auth = \"yes\"\n",
	  "[model_providers.x] requires_openai_auth must be a boolean" },
	{ "supports_websockets type", SEL "supports_websockets = 1\n",
	  "[model_providers.x] supports_websockets must be a boolean" },
	/* every table is checked, the selected one or not, a shadowed "openai" included */
	{ "unselected table", "[model_providers.y]\nname = 1\n",
	  "[model_providers.y] name must be a string" },
	{ "shadowed openai", "[model_providers.openai]\nname = \"O\"\nwire_api = \"chat\"\n",
	  "[model_providers.openai] wire_api `chat` is not supported" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const ErrorCase *c = &error_cases[i];
		char err[256] = "";
		int rc;
		Provider *p = resolve(c->toml, &rc, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("%s: rc %d", c->what, rc);
		if (!strstr(err, c->message))
			fail_msg("%s: error `%s` lacks `%s`", c->what, err, c->message);
		provider_free(p);
	}
}

static void test_free_null(void **state)
{
	(void)state;
	provider_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_default_openai, clear_env),
		cmocka_unit_test_setup(test_openai_env, clear_env),
		cmocka_unit_test_setup(test_mock_provider, clear_env),
		cmocka_unit_test_setup(test_custom_query_params_and_headers, clear_env),
		cmocka_unit_test_setup(test_custom_without_base_url, clear_env),
		cmocka_unit_test_setup(test_env_headers, clear_env),
		cmocka_unit_test_setup(test_user_openai_does_not_replace_builtin, clear_env),
		cmocka_unit_test_setup(test_errors, clear_env),
		cmocka_unit_test(test_free_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
