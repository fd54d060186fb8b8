/* SPDX-License-Identifier: MIT */
/* providers.h - the effective model provider from config.toml (codex's ModelProviderInfo). */
#ifndef AGENTD_PROVIDERS_H
#define AGENTD_PROVIDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/*
 * config.toml names the provider with top-level `model_provider` (default "openai") and may
 * define more in `[model_providers.<id>]` tables. The built-in "openai" provider is always there
 * and a user table with that id does not replace it (the reference merges built-ins first and
 * keeps them). Only the Responses API is spoken, so `wire_api` other than "responses" is refused.
 *
 * The resolver does no I/O beyond getenv(): it reads OPENAI_BASE_URL (built-in openai base URL
 * when the top-level `openai_base_url` is unset) and the variables named in env_http_headers.
 * The API key itself is read by the caller from env_key, when the provider has one; the
 * per-request headers (Authorization, originator, User-Agent, session-id, ...) are the caller's.
 */

/* Defaults and caps of the reference (model-provider-info). */
#define PROVIDER_DEFAULT_REQUEST_MAX_RETRIES 4
#define PROVIDER_DEFAULT_STREAM_MAX_RETRIES 5
#define PROVIDER_MAX_RETRIES_CAP 100
#define PROVIDER_DEFAULT_STREAM_IDLE_TIMEOUT_MS 300000

#define PROVIDER_OPENAI_ID "openai"
#define PROVIDER_OPENAI_API_BASE_URL "https://api.openai.com/v1"
#define PROVIDER_CHATGPT_BASE_URL "https://chatgpt.com/backend-api/codex"

/* How the request is authenticated; a provider without its own base_url picks by it. */
typedef enum ProviderAuthMode {
	PROVIDER_AUTH_API_KEY = 0, /* an API key (env_key, or authd's stored key) */
	PROVIDER_AUTH_CHATGPT = 1, /* ChatGPT tokens from authd */
} ProviderAuthMode;

typedef struct ProviderHeader {
	char *name;
	char *value;
} ProviderHeader;

typedef struct Provider {
	char *id;    /* the model_providers key ("openai", "mock_provider") */
	char *name;  /* display name ("OpenAI") */
	char *model; /* top-level `model`, or NULL when unset (the caller's default applies) */
	/* Indexed by ProviderAuthMode; both equal when base_url (or an override) was given. No
	 * trailing '/'. responses_url is base_url + "/responses" + "?k=v&..." (percent-encoded). */
	char *base_url[2];
	char *responses_url[2];
	ProviderHeader *headers; /* http_headers, then env_http_headers whose variable is set and
				  * not blank (replacing a static one of the same name) */
	size_t n_headers;
	char *env_key;		    /* variable holding the API key, or NULL */
	char *env_key_instructions; /* shown when env_key is unset, or NULL */
	bool requires_openai_auth;  /* authenticate through authd (API key or ChatGPT) */
	bool supports_websockets;
	bool is_builtin;
	int64_t request_max_retries; /* capped at PROVIDER_MAX_RETRIES_CAP */
	int64_t stream_max_retries;  /* capped at PROVIDER_MAX_RETRIES_CAP */
	int64_t stream_idle_timeout_ms;
} Provider;

/**
 * provider_resolve() - the provider @cfg selects, with every field resolved. Every
 * `[model_providers.*]` table is checked, as the reference's config load does, even when
 * another is selected.
 * Return: 0 with *@out set (free with provider_free()); -EINVAL with a message naming the key in
 * @err ("[model_providers.x] base_url must be a string", "unknown model_provider `x`");
 * -ENOMEM.
 */
int provider_resolve(const Config *cfg, Provider **out, char *err, size_t err_len);

/**
 * provider_resolve_id() - the same for provider @id (a thread's own) instead of the one
 * `model_provider` selects; NULL selects that one. Every table is checked all the same.
 */
int provider_resolve_id(const Config *cfg, const char *id, Provider **out, char *err, size_t err_len);

/** provider_free() - release @p and its strings. NULL is a no-op. */
void provider_free(Provider *p);

/** provider_base_url() / provider_responses_url() - for @mode. Borrowed from @p. */
const char *provider_base_url(const Provider *p, ProviderAuthMode mode);
const char *provider_responses_url(const Provider *p, ProviderAuthMode mode);

/** provider_header() - the value of header @name (case-insensitive), or NULL. Borrowed. */
const char *provider_header(const Provider *p, const char *name);

#endif
