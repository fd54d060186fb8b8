/* SPDX-License-Identifier: MIT */
/*
 * proto_catalog.c - what a client asks about before its first turn: model/list,
 * collaborationMode/list, skills/list, hooks/list, plugin/installed and
 * account/bedrock/checkGovCloudRequirements.
 *
 * Models come from the provider when its table names a `model_catalog_url` (its /models
 * endpoint: codex's {"models":[…]} or the OpenAI list {"data":[{"id"}]}), fetched on each call
 * through the turns' HTTP client; else (or when that fetch fails) from `model_catalog_json` (the
 * reference's catalog file format). The configured `model` is the default and is listed even
 * when no catalog describes it. agentd has no skills, hooks or plugins, so those lists are empty
 * for every directory asked about — the truthful answer, in the reference's shapes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "model_client.h"
#include "proto.h"
#include "rpc.h"

/* A provider's model list is small; a larger body is refused rather than buffered. */
#define CATALOG_MAX_BODY_BYTES ((size_t)4 << 20)
#define CATALOG_FETCH_TIMEOUT_MS 10000u

static const char *catalog_config_string(const Agentd *server, const char *key)
{
	return json_string_value(config_lookup(&server->config, key));
}

static const char *catalog_default_model(const Agentd *server)
{
	const char *model = catalog_config_string(server, "model");
	return model ? model : PROTO_DEFAULT_MODEL;
}

/* The reasoning efforts of a catalog entry, or the three every Responses model accepts. */
static json_t *catalog_efforts(json_t *levels)
{
	json_t *out = json_array();
	size_t i;
	json_t *level;
	json_array_foreach (levels, i, level) {
		const char *effort = json_string_value(json_object_get(level, "effort"));
		const char *text = json_string_value(json_object_get(level, "description"));
		if (effort && *effort)
			json_array_append_new(out, json_pack("{s:s,s:s}", "reasoningEffort", effort,
							     "description", text ? text : ""));
	}
	if (json_array_size(out) > 0)
		return out;
	static const char *const fallback[][2] = {
		{ "low", "Fast responses with lighter reasoning" },
		{ "medium", "Balances speed and reasoning depth for everyday tasks" },
		{ "high", "Greater reasoning depth for complex problems" },
	};
	for (size_t j = 0; j < sizeof(fallback) / sizeof(fallback[0]); j++)
		json_array_append_new(out, json_pack("{s:s,s:s}", "reasoningEffort", fallback[j][0],
						     "description", fallback[j][1]));
	return out;
}

static json_t *catalog_string_or_null(json_t *entry, const char *key)
{
	json_t *v = json_object_get(entry, key);
	return json_is_string(v) ? json_incref(v) : json_null();
}

/* One v2 Model from a catalog entry (ModelInfo fields, snake_case) or from a bare slug. */
static json_t *catalog_model_json(const char *slug, json_t *entry, bool is_default)
{
	const char *display = json_string_value(json_object_get(entry, "display_name"));
	const char *description = json_string_value(json_object_get(entry, "description"));
	const char *effort = json_string_value(json_object_get(entry, "default_reasoning_level"));
	const char *visibility = json_string_value(json_object_get(entry, "visibility"));
	json_t *modalities = json_object_get(entry, "input_modalities");
	json_t *tiers = json_object_get(entry, "service_tiers");
	json_t *speed = json_object_get(entry, "additional_speed_tiers");
	json_t *model = json_object();
	json_object_set_new(model, "id", json_string(slug));
	json_object_set_new(model, "model", json_string(slug));
	json_object_set_new(model, "upgrade", json_null());
	json_object_set_new(model, "upgradeInfo", json_null());
	json_object_set_new(model, "availabilityNux", json_null());
	json_object_set_new(model, "displayName", json_string(display ? display : slug));
	json_object_set_new(model, "description", json_string(description ? description : ""));
	json_object_set_new(model, "modelSpecialty", json_null());
	json_object_set_new(model, "hidden", json_boolean(visibility && strcmp(visibility, "list") != 0));
	json_object_set_new(model, "supportedReasoningEfforts",
			    catalog_efforts(json_object_get(entry, "supported_reasoning_levels")));
	json_object_set_new(model, "defaultReasoningEffort",
			    json_string(effort && *effort ? effort : "medium"));
	json_object_set_new(model, "inputModalities",
			    json_is_array(modalities) ? json_incref(modalities) : json_pack("[s]", "text"));
	json_object_set_new(model, "supportsPersonality", json_false());
	json_object_set_new(model, "multiAgentVersion", catalog_string_or_null(entry, "multi_agent_version"));
	json_object_set_new(model, "additionalSpeedTiers",
			    json_is_array(speed) ? json_incref(speed) : json_array());
	json_object_set_new(model, "serviceTiers", json_is_array(tiers) ? json_incref(tiers) : json_array());
	json_object_set_new(model, "defaultServiceTier",
			    catalog_string_or_null(entry, "default_service_tier"));
	json_object_set_new(model, "availableAccessPrograms", json_null());
	json_object_set_new(model, "isDefault", json_boolean(is_default));
	return model;
}

/* The `models` of the configured catalog file, or NULL when there is none (a broken one is logged). */
static json_t *catalog_load(const Agentd *server)
{
	const char *path = catalog_config_string(server, "model_catalog_json");
	if (!path)
		return NULL;
	json_error_t err;
	json_t *doc = json_load_file(path, 0, &err);
	json_t *models = json_object_get(doc, "models");
	if (!json_is_array(models)) {
		log_warn("model_catalog_json %s: %s", path, doc ? "no \"models\" array" : err.text);
		json_decref(doc);
		return NULL;
	}
	json_incref(models);
	json_decref(doc);
	return models;
}

/* Every model of @catalog (ModelInfo entries), the configured default first when it lacks it. */
static json_t *catalog_models(const Agentd *server, json_t *catalog, bool include_hidden)
{
	const char *default_slug = catalog_default_model(server);
	json_t *out = json_array();
	bool is_default_listed = false;
	size_t i;
	json_t *entry;
	json_array_foreach (catalog, i, entry) {
		const char *slug = json_string_value(json_object_get(entry, "slug"));
		if (!slug || !*slug)
			continue;
		bool is_default = strcmp(slug, default_slug) == 0;
		json_t *model = catalog_model_json(slug, entry, is_default);
		is_default_listed |= is_default;
		if (!is_default && !include_hidden && json_is_true(json_object_get(model, "hidden")))
			json_decref(model);
		else
			json_array_append_new(out, model);
	}
	if (!is_default_listed)
		json_array_insert_new(out, 0, catalog_model_json(default_slug, NULL, true));
	return out;
}

/* A cursor is the decimal index of the next entry, as the reference's. */
static bool catalog_page_bounds(Conn *conn, json_t *id, json_t *params, size_t total, size_t *start,
				size_t *end)
{
	json_t *cursor = json_object_get(params, "cursor");
	json_t *limit = json_object_get(params, "limit");
	*start = 0;
	*end = total;
	if (cursor && !json_is_null(cursor)) {
		const char *text = json_string_value(cursor);
		char *stop = NULL;
		unsigned long long at = text ? strtoull(text, &stop, 10) : 0;
		if (!text || !*text || *stop || at > total) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "invalid cursor: %s",
					 text ? text : "not a string");
			return false;
		}
		*start = (size_t)at;
	}
	if (limit && !json_is_null(limit)) {
		if (!json_is_integer(limit) || json_integer_value(limit) < 0) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST,
					 "Invalid request: `limit` must be a non-negative integer");
			return false;
		}
		json_int_t n = json_integer_value(limit);
		if (n > 0 && (size_t)n < total - *start)
			*end = *start + (size_t)n;
	}
	return true;
}

/* The page of @catalog's models that @params asks for, or NULL (answered with an error). */
static json_t *catalog_page(Conn *conn, json_t *id, json_t *params, json_t *catalog)
{
	json_t *models =
		catalog_models(conn->server, catalog, json_is_true(json_object_get(params, "includeHidden")));
	size_t start, end;
	if (!catalog_page_bounds(conn, id, params, json_array_size(models), &start, &end)) {
		json_decref(models);
		return NULL;
	}
	json_t *data = json_array();
	for (size_t i = start; i < end; i++)
		json_array_append(data, json_array_get(models, i));
	char next[24];
	snprintf(next, sizeof(next), "%zu", end);
	json_t *page = json_pack("{s:o,s:o}", "data", data, "nextCursor",
				 end < json_array_size(models) ? json_string(next) : json_null());
	json_decref(models);
	return page;
}

static void catalog_reply(Conn *conn, json_t *id, json_t *params, json_t *catalog)
{
	json_t *page = catalog_page(conn, id, params, catalog);
	if (page)
		conn_reply(conn, id, page);
}

/* A model/list waiting for the provider's /models; listed in server->catalog_fetches. */
typedef struct CatalogFetch {
	struct CatalogFetch *prev, *next;
	Agentd *server;
	ModelStream *stream;
	uint64_t conn_id;
	json_t *id;
	json_t *params;
	char *body;
	size_t body_len;
	bool is_too_big;
} CatalogFetch;

static void catalog_fetch_free(CatalogFetch *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else if (f->server->catalog_fetches == f)
		f->server->catalog_fetches = f->next;
	if (f->next)
		f->next->prev = f->prev;
	json_decref(f->id);
	json_decref(f->params);
	free(f->body);
	free(f);
}

static int catalog_fetch_on_body(void *ctx, const char *data, size_t len)
{
	CatalogFetch *f = ctx;
	if (f->body_len + len > CATALOG_MAX_BODY_BYTES) {
		f->is_too_big = true;
		return -EMSGSIZE;
	}
	char *grown = realloc(f->body, f->body_len + len + 1);
	if (!grown)
		return -ENOMEM;
	memcpy(grown + f->body_len, data, len);
	f->body = grown;
	f->body_len += len;
	f->body[f->body_len] = '\0';
	return 0;
}

/* ModelInfo entries from a /models body: codex's {"models":[…]} or OpenAI's {"data":[{"id"}]}. */
static json_t *catalog_parse_remote(const char *body, size_t len)
{
	json_t *doc = json_loadb(body, len, 0, NULL);
	json_t *models = json_object_get(doc, "models");
	json_t *out = NULL;
	if (json_is_array(models)) {
		out = json_incref(models);
	} else if (json_is_array(json_object_get(doc, "data"))) {
		out = json_array();
		size_t i;
		json_t *entry;
		json_array_foreach (json_object_get(doc, "data"), i, entry) {
			json_t *slug = json_object_get(entry, "id");
			if (json_is_string(slug))
				json_array_append_new(out, json_pack("{s:O}", "slug", slug));
		}
	}
	json_decref(doc);
	return out;
}

static void catalog_fetch_on_done(void *ctx, const ModelResult *result)
{
	CatalogFetch *f = ctx;
	Conn *conn = conn_find(f->server, f->conn_id);
	json_t *remote = NULL;
	if (result->error == 0 && result->status / 100 == 2 && f->body)
		remote = catalog_parse_remote(f->body, f->body_len);
	if (!remote)
		log_warn("model/list: the provider's model list is unavailable (%s); answering from the "
			 "configuration",
			 result->error	 ? result->message
			 : f->is_too_big ? "body too large"
					 : "no model list in the answer");
	if (conn) {
		json_t *fallback = remote ? NULL : catalog_load(f->server);
		catalog_reply(conn, f->id, f->params, remote ? remote : fallback);
		json_decref(fallback);
	}
	json_decref(remote);
	catalog_fetch_free(f);
}

/* "Name: value" request headers: the provider's static http_headers and its env_key's bearer. */
static size_t catalog_fetch_headers(json_t *table, char lines[][1024], size_t max)
{
	size_t n = 0;
	const char *env_key = json_string_value(json_object_get(table, "env_key"));
	const char *key = env_key ? getenv(env_key) : NULL;
	if (key && *key && n < max)
		snprintf(lines[n++], sizeof(lines[0]), "Authorization: Bearer %s", key);
	const char *name;
	json_t *value;
	json_object_foreach (json_object_get(table, "http_headers"), name, value) {
		if (json_is_string(value) && n < max)
			snprintf(lines[n++], sizeof(lines[0]), "%s: %s", name, json_string_value(value));
	}
	return n;
}

/* Starts the GET of @url; false when it cannot start (the caller answers from the configuration). */
static bool catalog_fetch_start(Conn *conn, json_t *id, json_t *params, const char *url, json_t *table)
{
	enum { MAX_HEADERS = 32 };
	char lines[MAX_HEADERS][1024];
	const char *headers[MAX_HEADERS + 1];
	size_t n = catalog_fetch_headers(table, lines, MAX_HEADERS);
	for (size_t i = 0; i < n; i++)
		headers[i] = lines[i];
	headers[n++] = "Accept: application/json";
	CatalogFetch *f = calloc(1, sizeof(*f));
	if (!f) {
		explicit_bzero(lines, sizeof(lines));
		return false;
	}
	f->server = conn->server;
	f->conn_id = conn->id;
	f->id = json_incref(id);
	f->params = params ? json_incref(params) : json_object();
	ModelRequest req = { .url = url,
			     .method = "GET",
			     .headers = headers,
			     .n_headers = n,
			     .connect_timeout_ms = CATALOG_FETCH_TIMEOUT_MS,
			     .idle_timeout_ms = CATALOG_FETCH_TIMEOUT_MS };
	static const ModelStreamEvents events = { .on_body = catalog_fetch_on_body,
						  .on_done = catalog_fetch_on_done };
	char err[256];
	int rc = model_stream_start(conn->server->model_client, &req, &events, f, &f->stream, err,
				    sizeof(err));
	/* libcurl copied the lines; the API key does not stay on the stack. */
	explicit_bzero(lines, sizeof(lines));
	if (rc < 0) {
		log_warn("model/list: cannot fetch %s: %s", url, err);
		catalog_fetch_free(f);
		return false;
	}
	f->next = conn->server->catalog_fetches;
	if (f->next)
		f->next->prev = f;
	conn->server->catalog_fetches = f;
	return true;
}

void proto_catalog_stop(Agentd *server)
{
	while (server->catalog_fetches) {
		CatalogFetch *f = server->catalog_fetches;
		model_stream_cancel(f->stream);
		catalog_fetch_free(f);
	}
}

void proto_model_list(Conn *conn, json_t *id, json_t *params)
{
	json_t *provider = json_object_get(params, "modelProvider");
	if (provider && !json_is_null(provider) && !json_is_string(provider)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: `modelProvider` must be a string");
		return;
	}
	const char *provider_id = json_string_value(provider);
	if (!provider_id)
		provider_id = catalog_config_string(conn->server, "model_provider");
	json_t *table =
		provider_id ? json_object_get(json_object_get(conn->server->config.root, "model_providers"),
					      provider_id)
			    : NULL;
	const char *url = json_string_value(json_object_get(table, "model_catalog_url"));
	/* Paging is checked before anything is fetched, so a bad cursor costs no request. */
	size_t start, end;
	if (!catalog_page_bounds(conn, id, params, SIZE_MAX, &start, &end))
		return;
	if (url && conn->server->model_client && catalog_fetch_start(conn, id, params, url, table))
		return;
	json_t *catalog = catalog_load(conn->server);
	catalog_reply(conn, id, params, catalog);
	json_decref(catalog);
}

void proto_collaboration_mode_list(Conn *conn, json_t *id, json_t *params)
{
	(void)params;
	conn_reply(conn, id,
		   json_pack("{s:[{s:s,s:s,s:n,s:s},{s:s,s:s,s:n,s:n}]}", "data", "name", "Plan", "mode",
			     "plan", "model", "reasoning_effort", "medium", "name", "Default", "mode",
			     "default", "model", "reasoning_effort"));
}

/*
 * The directories a per-directory list answers for: params.cwds, else (absent or empty) agentd's
 * working directory, as the reference. NULL (answered) when cwds is not an array of strings.
 */
static json_t *catalog_cwds(Conn *conn, json_t *id, json_t *params)
{
	json_t *cwds = json_object_get(params, "cwds");
	if (!cwds || json_is_null(cwds) || (json_is_array(cwds) && json_array_size(cwds) == 0)) {
		char here[4096];
		if (!getcwd(here, sizeof(here)))
			snprintf(here, sizeof(here), "/");
		return json_pack("[s]", here);
	}
	size_t i;
	json_t *cwd;
	bool is_valid = json_is_array(cwds);
	json_array_foreach (cwds, i, cwd)
		is_valid &= json_is_string(cwd);
	if (!is_valid) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: `cwds` must be an array of strings");
		return NULL;
	}
	return json_incref(cwds);
}

/* {"data":[{"cwd":…,"<list>":[],…}]} for every directory asked about. */
static void catalog_reply_per_cwd(Conn *conn, json_t *id, json_t *params, const char *list_key,
				  bool has_warnings)
{
	json_t *cwds = catalog_cwds(conn, id, params);
	if (!cwds)
		return;
	json_t *data = json_array();
	size_t i;
	json_t *cwd;
	json_array_foreach (cwds, i, cwd) {
		json_t *entry = json_pack("{s:O,s:[],s:[]}", "cwd", cwd, list_key, "errors");
		if (has_warnings)
			json_object_set_new(entry, "warnings", json_array());
		json_array_append_new(data, entry);
	}
	json_decref(cwds);
	conn_reply(conn, id, json_pack("{s:o}", "data", data));
}

void proto_skills_list(Conn *conn, json_t *id, json_t *params)
{
	catalog_reply_per_cwd(conn, id, params, "skills", false);
}

void proto_hooks_list(Conn *conn, json_t *id, json_t *params)
{
	catalog_reply_per_cwd(conn, id, params, "hooks", true);
}

void proto_plugin_installed(Conn *conn, json_t *id, json_t *params)
{
	json_t *cwds = catalog_cwds(conn, id, params);
	if (!cwds)
		return;
	json_decref(cwds);
	conn_reply(conn, id, json_pack("{s:[],s:[]}", "marketplaces", "marketplaceLoadErrors"));
}

/* agentd talks to no Bedrock endpoint, so it is never in a GovCloud region. */
void proto_bedrock_govcloud(Conn *conn, json_t *id, json_t *params)
{
	(void)params;
	conn_reply(conn, id, json_pack("{s:b,s:b}", "isGovCloud", 0, "shouldWarn", 0));
}
