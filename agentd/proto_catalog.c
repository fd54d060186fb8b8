/* SPDX-License-Identifier: MIT */
/*
 * proto_catalog.c - what a client asks about before its first turn: model/list,
 * collaborationMode/list, skills/list, hooks/list, plugin/installed and
 * account/bedrock/checkGovCloudRequirements.
 *
 * Models come from what agentd is configured with: the entries of `model_catalog_json` (the
 * reference's catalog format) and the configured `model`, which is the default and is listed even
 * when no catalog describes it. agentd has no skills, hooks or plugins, so those lists are empty
 * for every directory asked about — the truthful answer, in the reference's shapes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "rpc.h"

/* The model when neither the request nor config.toml names one (as thread/start). */
#define CATALOG_DEFAULT_MODEL "gpt-5.5"

static const char *catalog_config_string(const Agentd *server, const char *key)
{
	return json_string_value(config_lookup(&server->config, key));
}

static const char *catalog_default_model(const Agentd *server)
{
	const char *model = catalog_config_string(server, "model");
	return model ? model : CATALOG_DEFAULT_MODEL;
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
			json_array_append_new(out, json_pack("{s:s,s:s}", "reasoningEffort", effort, "description",
							     text ? text : ""));
	}
	if (json_array_size(out) > 0)
		return out;
	static const char *const fallback[][2] = {
		{ "low", "Fast responses with lighter reasoning" },
		{ "medium", "Balances speed and reasoning depth for everyday tasks" },
		{ "high", "Greater reasoning depth for complex problems" },
	};
	for (size_t j = 0; j < sizeof(fallback) / sizeof(fallback[0]); j++)
		json_array_append_new(out, json_pack("{s:s,s:s}", "reasoningEffort", fallback[j][0], "description",
						     fallback[j][1]));
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
	json_object_set_new(model, "defaultReasoningEffort", json_string(effort && *effort ? effort : "medium"));
	json_object_set_new(model, "inputModalities",
			    json_is_array(modalities) ? json_incref(modalities) : json_pack("[s]", "text"));
	json_object_set_new(model, "supportsPersonality", json_false());
	json_object_set_new(model, "multiAgentVersion", catalog_string_or_null(entry, "multi_agent_version"));
	json_object_set_new(model, "additionalSpeedTiers", json_is_array(speed) ? json_incref(speed) : json_array());
	json_object_set_new(model, "serviceTiers", json_is_array(tiers) ? json_incref(tiers) : json_array());
	json_object_set_new(model, "defaultServiceTier", catalog_string_or_null(entry, "default_service_tier"));
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

/* Every model agentd can run, the configured default first when no catalog lists it. */
static json_t *catalog_models(const Agentd *server, bool include_hidden)
{
	const char *default_slug = catalog_default_model(server);
	json_t *catalog = catalog_load(server);
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
	json_decref(catalog);
	return out;
}

/* A cursor is the decimal index of the next entry, as the reference's. */
static bool catalog_page_bounds(Conn *conn, json_t *id, json_t *params, size_t total, size_t *start, size_t *end)
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
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "invalid cursor: %s", text ? text : "not a string");
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

void proto_model_list(Conn *conn, json_t *id, json_t *params)
{
	json_t *provider = json_object_get(params, "modelProvider");
	if (provider && !json_is_null(provider) && !json_is_string(provider)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `modelProvider` must be a string");
		return;
	}
	json_t *models = catalog_models(conn->server, json_is_true(json_object_get(params, "includeHidden")));
	size_t start, end;
	if (!catalog_page_bounds(conn, id, params, json_array_size(models), &start, &end)) {
		json_decref(models);
		return;
	}
	json_t *data = json_array();
	for (size_t i = start; i < end; i++)
		json_array_append(data, json_array_get(models, i));
	char next[24];
	snprintf(next, sizeof(next), "%zu", end);
	conn_reply(conn, id,
		   json_pack("{s:o,s:o}", "data", data, "nextCursor",
			     end < json_array_size(models) ? json_string(next) : json_null()));
	json_decref(models);
}

void proto_collaboration_mode_list(Conn *conn, json_t *id, json_t *params)
{
	(void)params;
	conn_reply(conn, id,
		   json_pack("{s:[{s:s,s:s,s:n,s:s},{s:s,s:s,s:n,s:n}]}", "data", "name", "Plan", "mode", "plan",
			     "model", "reasoning_effort", "medium", "name", "Default", "mode", "default", "model",
			     "reasoning_effort"));
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
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: `cwds` must be an array of strings");
		return NULL;
	}
	return json_incref(cwds);
}

/* {"data":[{"cwd":…,"<list>":[],…}]} for every directory asked about. */
static void catalog_reply_per_cwd(Conn *conn, json_t *id, json_t *params, const char *list_key, bool has_warnings)
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
