/* SPDX-License-Identifier: MIT */
/* providers.c - resolve config.toml's model provider: built-in "openai" or [model_providers.*]. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "providers.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

static int fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- a growing string ----------------------------------------------------------------------- */

typedef struct StrBuf {
	char *s;
	size_t len, cap;
	bool is_oom;
} StrBuf;

static void sb_add(StrBuf *sb, const char *p, size_t n)
{
	if (sb->is_oom)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 64;
		while (cap < sb->len + n + 1)
			cap *= 2;
		char *s = realloc(sb->s, cap);
		if (!s) {
			sb->is_oom = true;
			return;
		}
		sb->s = s;
		sb->cap = cap;
	}
	memcpy(sb->s + sb->len, p, n);
	sb->len += n;
	sb->s[sb->len] = '\0';
}

static void sb_puts(StrBuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

/* RFC 3986 §2.3: everything but the unreserved characters is percent-encoded. */
static void sb_put_encoded(StrBuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool is_unreserved = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
				     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
				     *p == '~';
		if (is_unreserved) {
			sb_add(sb, (const char *)p, 1);
		} else {
			char enc[3] = { '%', hex[*p >> 4], hex[*p & 0xf] };
			sb_add(sb, enc, 3);
		}
	}
}

/* Returns the string (owned by the caller), or NULL when an allocation failed. */
static char *sb_take(StrBuf *sb)
{
	if (sb->is_oom || !sb->s) {
		free(sb->s);
		return sb->is_oom ? NULL : strdup("");
	}
	return sb->s;
}

/* ---- header checks (RFC 9110 §5.1, §5.5) ---------------------------------------------------- */

static bool is_header_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

/* A value a libcurl header line can carry unchanged: no CR, LF or other control bytes. */
static bool is_header_value(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static bool is_blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

/* ---- the provider ---------------------------------------------------------------------------- */

void provider_free(Provider *p)
{
	if (!p)
		return;
	free(p->id);
	free(p->name);
	free(p->model);
	for (size_t i = 0; i < 2; i++) {
		free(p->base_url[i]);
		free(p->responses_url[i]);
	}
	for (size_t i = 0; i < p->n_headers; i++) {
		free(p->headers[i].name);
		free(p->headers[i].value);
	}
	free(p->headers);
	free(p->env_key);
	free(p->env_key_instructions);
	free(p);
}

const char *provider_base_url(const Provider *p, ProviderAuthMode mode)
{
	return p->base_url[mode == PROVIDER_AUTH_CHATGPT];
}

const char *provider_responses_url(const Provider *p, ProviderAuthMode mode)
{
	return p->responses_url[mode == PROVIDER_AUTH_CHATGPT];
}

const char *provider_header(const Provider *p, const char *name)
{
	for (size_t i = 0; i < p->n_headers; i++)
		if (strcasecmp(p->headers[i].name, name) == 0)
			return p->headers[i].value;
	return NULL;
}

/* Adds a header, replacing one of the same name (as the reference's HeaderMap::insert does). */
static int provider_set_header(Provider *p, const char *name, const char *value)
{
	char *v = strdup(value);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_headers; i++) {
		if (strcasecmp(p->headers[i].name, name) == 0) {
			free(p->headers[i].value);
			p->headers[i].value = v;
			return 0;
		}
	}
	ProviderHeader *h = realloc(p->headers, (p->n_headers + 1) * sizeof(*h));
	char *n = strdup(name);
	if (h)
		p->headers = h;
	if (!h || !n) {
		free(n);
		free(v);
		return -ENOMEM;
	}
	p->headers[p->n_headers++] = (ProviderHeader){ .name = n, .value = v };
	return 0;
}

/* Owned copy of an optional string, or NULL: *@out stays NULL when @s is NULL. */
static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int get_string(const json_t *table, const char *id, const char *key, bool is_required,
		      const char **out, char *err, size_t err_len)
{
	json_t *v = json_object_get(table, key);
	*out = NULL;
	if (!v) {
		if (is_required)
			return fail(err, err_len, "[model_providers.%s] %s is missing", id, key);
		return 0;
	}
	if (!json_is_string(v))
		return fail(err, err_len, "[model_providers.%s] %s must be a string", id, key);
	*out = json_string_value(v);
	return 0;
}

static int get_bool(const json_t *table, const char *id, const char *key, bool *out, char *err,
		    size_t err_len)
{
	json_t *v = json_object_get(table, key);
	*out = false;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return fail(err, err_len, "[model_providers.%s] %s must be a boolean", id, key);
	*out = json_is_true(v);
	return 0;
}

static int get_count(const json_t *table, const char *id, const char *key, int64_t fallback, int64_t cap,
		     int64_t *out, char *err, size_t err_len)
{
	json_t *v = json_object_get(table, key);
	*out = fallback;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return fail(err, err_len, "[model_providers.%s] %s must be a non-negative integer", id, key);
	*out = json_integer_value(v);
	if (cap > 0 && *out > cap)
		*out = cap;
	return 0;
}

/* A table whose values are all strings (query_params, http_headers, env_http_headers). */
static int get_string_table(const json_t *table, const char *id, const char *key, json_t **out, char *err,
			    size_t err_len)
{
	json_t *v = json_object_get(table, key);
	const char *k;
	json_t *item;
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return fail(err, err_len, "[model_providers.%s] %s must be a table", id, key);
	json_object_foreach (v, k, item) {
		if (!json_is_string(item))
			return fail(err, err_len, "[model_providers.%s] %s.%s must be a string", id, key, k);
	}
	*out = v;
	return 0;
}

static bool has_http_scheme(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

/* base + "/responses" + "?k=v&..." with keys and values percent-encoded. */
static char *responses_url(const char *base, const json_t *query_params)
{
	StrBuf sb = { 0 };
	const char *k;
	json_t *v;
	bool is_first = true;
	sb_puts(&sb, base);
	sb_puts(&sb, "/responses");
	json_object_foreach ((json_t *)query_params, k, v) {
		sb_puts(&sb, is_first ? "?" : "&");
		sb_put_encoded(&sb, k);
		sb_puts(&sb, "=");
		sb_put_encoded(&sb, json_string_value(v));
		is_first = false;
	}
	return sb_take(&sb);
}

/* A base URL without its trailing slashes, so "/responses" joins cleanly. */
static char *base_url_dup(const char *url)
{
	size_t len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		len--;
	return strndup(url, len);
}

/*
 * One provider table into a Provider (without its model). The built-in openai provider goes
 * through here too, described as the table the reference's built-in would be.
 */
static int provider_from_table(const char *id, const json_t *table, bool is_builtin, Provider **out,
			       char *err, size_t err_len)
{
	const char *name, *base_url, *env_key, *env_key_instructions, *wire_api;
	json_t *query_params, *http_headers, *env_http_headers;
	Provider *p = NULL;
	int rc;

	*out = NULL;
	if (!json_is_object(table))
		return fail(err, err_len, "[model_providers.%s] must be a table", id);
	if ((rc = get_string(table, id, "name", true, &name, err, err_len)) < 0 ||
	    (rc = get_string(table, id, "base_url", false, &base_url, err, err_len)) < 0 ||
	    (rc = get_string(table, id, "env_key", false, &env_key, err, err_len)) < 0 ||
	    (rc = get_string(table, id, "env_key_instructions", false, &env_key_instructions, err, err_len)) <
		    0 ||
	    (rc = get_string(table, id, "wire_api", false, &wire_api, err, err_len)) < 0 ||
	    (rc = get_string_table(table, id, "query_params", &query_params, err, err_len)) < 0 ||
	    (rc = get_string_table(table, id, "http_headers", &http_headers, err, err_len)) < 0 ||
	    (rc = get_string_table(table, id, "env_http_headers", &env_http_headers, err, err_len)) < 0)
		return rc;
	if (wire_api && strcmp(wire_api, "responses") != 0)
		return fail(err, err_len,
			    "[model_providers.%s] wire_api `%s` is not supported: agentd speaks only "
			    "the Responses API (wire_api = \"responses\")",
			    id, wire_api);
	if (base_url && !has_http_scheme(base_url))
		return fail(err, err_len, "[model_providers.%s] base_url must be an http:// or https:// URL",
			    id);
	if (env_key && !*env_key)
		return fail(err, err_len, "[model_providers.%s] env_key must not be empty", id);

	const char *hname;
	json_t *hval;
	json_object_foreach (http_headers, hname, hval) {
		if (!is_header_name(hname))
			return fail(err, err_len,
				    "[model_providers.%s] http_headers: `%s` is not a valid header name", id,
				    hname);
		if (!is_header_value(json_string_value(hval)))
			return fail(err, err_len,
				    "[model_providers.%s] http_headers.%s must not hold control "
				    "characters",
				    id, hname);
	}
	json_object_foreach (env_http_headers, hname, hval) {
		if (!is_header_name(hname))
			return fail(err, err_len,
				    "[model_providers.%s] env_http_headers: `%s` is not a valid header "
				    "name",
				    id, hname);
	}

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->is_builtin = is_builtin;
	if ((rc = get_bool(table, id, "requires_openai_auth", &p->requires_openai_auth, err, err_len)) < 0 ||
	    (rc = get_bool(table, id, "supports_websockets", &p->supports_websockets, err, err_len)) < 0 ||
	    (rc = get_count(table, id, "request_max_retries", PROVIDER_DEFAULT_REQUEST_MAX_RETRIES,
			    PROVIDER_MAX_RETRIES_CAP, &p->request_max_retries, err, err_len)) < 0 ||
	    (rc = get_count(table, id, "stream_max_retries", PROVIDER_DEFAULT_STREAM_MAX_RETRIES,
			    PROVIDER_MAX_RETRIES_CAP, &p->stream_max_retries, err, err_len)) < 0 ||
	    (rc = get_count(table, id, "stream_idle_timeout_ms", PROVIDER_DEFAULT_STREAM_IDLE_TIMEOUT_MS, 0,
			    &p->stream_idle_timeout_ms, err, err_len)) < 0)
		goto out;

	rc = -ENOMEM;
	p->id = strdup(id);
	p->name = strdup(name);
	if (!p->id || !p->name || dup_opt(env_key, &p->env_key) < 0 ||
	    dup_opt(env_key_instructions, &p->env_key_instructions) < 0)
		goto out;
	/* Without a base_url the reference picks the OpenAI URL for the auth mode, for any id. */
	p->base_url[PROVIDER_AUTH_API_KEY] = base_url_dup(base_url ? base_url : PROVIDER_OPENAI_API_BASE_URL);
	p->base_url[PROVIDER_AUTH_CHATGPT] = base_url_dup(base_url ? base_url : PROVIDER_CHATGPT_BASE_URL);
	for (size_t i = 0; i < 2; i++) {
		if (!p->base_url[i] || !(p->responses_url[i] = responses_url(p->base_url[i], query_params)))
			goto out;
	}

	json_object_foreach (http_headers, hname, hval) {
		if (provider_set_header(p, hname, json_string_value(hval)) < 0)
			goto out;
	}
	/* A variable that is unset, blank or not a valid header value adds nothing (reference). */
	json_object_foreach (env_http_headers, hname, hval) {
		const char *value = getenv(json_string_value(hval));
		if (!value || is_blank(value) || !is_header_value(value))
			continue;
		if (provider_set_header(p, hname, value) < 0)
			goto out;
	}
	*out = p;
	return 0;
out:
	if (rc == -ENOMEM)
		fail(err, err_len, "[model_providers.%s]: out of memory", id);
	provider_free(p);
	return rc;
}

/* The reference's built-in "openai" provider, as a table. */
static json_t *openai_builtin_table(const char *base_url)
{
	json_t *t = json_pack("{s:s, s:{s:s}, s:{s:s, s:s}, s:b, s:b}", "name", "OpenAI", "http_headers",
			      "version", PACKAGE_VERSION, "env_http_headers", "OpenAI-Organization",
			      "OPENAI_ORGANIZATION", "OpenAI-Project", "OPENAI_PROJECT",
			      "requires_openai_auth", 1, "supports_websockets", 1);
	if (t && base_url && json_object_set_new(t, "base_url", json_string(base_url)) < 0) {
		json_decref(t);
		return NULL;
	}
	return t;
}

static int top_string(const Config *cfg, const char *key, const char **out, char *err, size_t err_len)
{
	json_t *v = json_object_get(cfg->root, key);
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return fail(err, err_len, "%s must be a string", key);
	*out = json_string_value(v);
	return 0;
}

int provider_resolve(const Config *cfg, Provider **out, char *err, size_t err_len)
{
	return provider_resolve_id(cfg, NULL, out, err, err_len);
}

int provider_resolve_id(const Config *cfg, const char *id_wanted, Provider **out, char *err, size_t err_len)
{
	const char *model, *selected, *openai_base_url;
	json_t *tables = json_object_get(cfg->root, "model_providers");
	Provider *p = NULL;
	int rc;

	*out = NULL;
	if ((rc = top_string(cfg, "model", &model, err, err_len)) < 0 ||
	    (rc = top_string(cfg, "model_provider", &selected, err, err_len)) < 0 ||
	    (rc = top_string(cfg, "openai_base_url", &openai_base_url, err, err_len)) < 0)
		return rc;
	if (id_wanted)
		selected = id_wanted;
	if (!selected)
		selected = PROVIDER_OPENAI_ID;
	if (tables && !json_is_object(tables))
		return fail(err, err_len, "model_providers must be a table");
	/* The config key wins over the variable; a blank one counts as unset (reference). */
	if (openai_base_url && is_blank(openai_base_url))
		openai_base_url = NULL;
	const char *base_url_source = "openai_base_url";
	if (!openai_base_url) {
		openai_base_url = getenv("OPENAI_BASE_URL");
		base_url_source = "OPENAI_BASE_URL";
		if (openai_base_url && is_blank(openai_base_url))
			openai_base_url = NULL;
	}
	if (openai_base_url && !has_http_scheme(openai_base_url))
		return fail(err, err_len, "%s must be an http:// or https:// URL", base_url_source);

	/* Every user table is checked; one named like a built-in is checked and then ignored. */
	const char *id;
	json_t *table;
	json_object_foreach (tables, id, table) {
		Provider *candidate;
		if ((rc = provider_from_table(id, table, false, &candidate, err, err_len)) < 0)
			goto out;
		if (strcmp(id, selected) == 0 && strcmp(id, PROVIDER_OPENAI_ID) != 0)
			p = candidate;
		else
			provider_free(candidate);
	}
	if (strcmp(selected, PROVIDER_OPENAI_ID) == 0) {
		json_t *builtin = openai_builtin_table(openai_base_url);
		if (!builtin) {
			rc = -ENOMEM;
			goto out;
		}
		rc = provider_from_table(PROVIDER_OPENAI_ID, builtin, true, &p, err, err_len);
		json_decref(builtin);
		if (rc < 0)
			goto out;
	}
	if (!p) {
		rc = fail(err, err_len, "unknown model_provider `%s`", selected);
		goto out;
	}
	if (dup_opt(model, &p->model) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	*out = p;
	return 0;
out:
	provider_free(p);
	if (rc == -ENOMEM)
		fail(err, err_len, "model provider: out of memory");
	return rc;
}
