/* SPDX-License-Identifier: MIT */
/*
 * proto_config.c - config/read and configRequirements/read.
 *
 * agentd's configuration has two layers: $CODEX_HOME/config.toml (the reference's "user" layer)
 * and the -c/--enable/--disable flags on top ("sessionFlags"). config/read answers the effective
 * table — the file with the flags applied, exactly what agentd runs with — plus, for every
 * setting, the layer it came from, and on request the layers themselves, highest precedence
 * first as the reference lists them. Versions are "sha256:<hex>" of a layer's bytes so that a
 * client can tell when a layer changed.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "rpc.h"

/* The Config keys the schema names: present in every answer, null when nothing sets them. */
static const char *const config_schema_keys[] = {
	"model",
	"review_model",
	"model_context_window",
	"model_auto_compact_token_limit",
	"model_auto_compact_token_limit_scope",
	"model_provider",
	"approval_policy",
	"approvals_reviewer",
	"sandbox_mode",
	"sandbox_workspace_write",
	"forced_chatgpt_workspace_id",
	"forced_login_method",
	"web_search",
	"client_search_provider",
	"tools",
	"instructions",
	"developer_instructions",
	"compact_prompt",
	"model_reasoning_effort",
	"model_reasoning_summary",
	"model_verbosity",
	"service_tier",
	"analytics",
	"browser_use",
	"computer_use",
	"desktop",
};

typedef struct ConfigLayer {
	json_t *name;	  /* ConfigLayerSource */
	char version[80]; /* "sha256:<hex>" */
	json_t *config;	  /* the layer's own table */
} ConfigLayer;

static void config_layer_version(const void *bytes, size_t len, char *out, size_t out_len)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	if (EVP_Digest(bytes, len, digest, &digest_len, EVP_sha256(), NULL) != 1)
		digest_len = 0;
	int at = snprintf(out, out_len, "sha256:");
	for (unsigned int i = 0; i < digest_len && at + 2 < (int)out_len; i++)
		at += snprintf(out + at, out_len - (size_t)at, "%02x", digest[i]);
}

/* The user layer: config.toml as it is on disk now; an absent file is an empty layer. */
static int config_user_layer(const Agentd *server, ConfigLayer *layer)
{
	char *text = NULL;
	size_t len = 0;
	int rc = config_read_file(server->config.path, &text, &len);
	layer->name = json_pack("{s:s,s:s,s:n}", "type", "user", "file", server->config.path, "profile");
	if (rc == -ENOENT) {
		layer->config = json_object();
		config_layer_version("", 0, layer->version, sizeof(layer->version));
		return 0;
	}
	if (rc < 0)
		return rc;
	Config parsed;
	char err[512];
	memset(&parsed, 0, sizeof(parsed));
	rc = config_load_text(&parsed, server->config.path, text, len, err, sizeof(err));
	config_layer_version(text, len, layer->version, sizeof(layer->version));
	free(text);
	if (rc < 0) {
		log_warn("config/read: %s", err);
		config_free(&parsed);
		return rc;
	}
	layer->config = parsed.root;
	return 0;
}

/* The -c flags, or false when agentd was started without any. */
static bool config_flags_layer(ConfigLayer *layer)
{
	json_t *flags = config_overrides_json();
	if (!flags)
		return false;
	char *dump = json_dumps(flags, JSON_COMPACT | JSON_SORT_KEYS);
	config_layer_version(dump ? dump : "", dump ? strlen(dump) : 0, layer->version,
			     sizeof(layer->version));
	free(dump);
	layer->name = json_pack("{s:s}", "type", "sessionFlags");
	layer->config = flags;
	return true;
}

static json_t *config_layer_metadata(const ConfigLayer *layer)
{
	return json_pack("{s:O,s:s}", "name", layer->name, "version", layer->version);
}

/* Every leaf (a value that is not a table) of @table under @prefix gets @layer as its origin. */
static void config_add_origins(json_t *origins, const char *prefix, json_t *table, const ConfigLayer *layer)
{
	const char *key;
	json_t *value;
	json_object_foreach (table, key, value) {
		char path[1024];
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", key);
		if (json_is_object(value) && json_object_size(value) > 0)
			config_add_origins(origins, path, value, layer);
		else
			json_object_set_new(origins, path, config_layer_metadata(layer));
	}
}

static json_t *config_effective(const Agentd *server)
{
	json_t *config = json_deep_copy(server->config.root);
	for (size_t i = 0; i < sizeof(config_schema_keys) / sizeof(config_schema_keys[0]); i++) {
		if (!json_object_get(config, config_schema_keys[i]))
			json_object_set_new(config, config_schema_keys[i], json_null());
	}
	return config;
}

void proto_config_read(Conn *conn, json_t *id, json_t *params)
{
	json_t *include = json_object_get(params, "includeLayers");
	json_t *cwd = json_object_get(params, "cwd");
	if ((include && !json_is_boolean(include)) || (cwd && !json_is_null(cwd) && !json_is_string(cwd))) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: `includeLayers` must be a boolean and `cwd` a string");
		return;
	}
	ConfigLayer layers[2];
	size_t n = 0;
	memset(layers, 0, sizeof(layers));
	int rc = config_user_layer(conn->server, &layers[n]);
	if (rc < 0) {
		json_decref(layers[0].name);
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "failed to read %s: %s",
				 conn->server->config.path, rc == -EINVAL ? "invalid TOML" : strerror(-rc));
		return;
	}
	n++;
	if (config_flags_layer(&layers[n]))
		n++;
	/* Lowest precedence first, so that a higher layer's origin replaces a lower one's. */
	json_t *origins = json_object();
	for (size_t i = 0; i < n; i++)
		config_add_origins(origins, "", layers[i].config, &layers[i]);
	json_t *result = json_pack("{s:o,s:o}", "config", config_effective(conn->server), "origins", origins);
	if (json_is_true(include)) {
		json_t *list = json_array();
		for (size_t i = n; i-- > 0;)
			json_array_append_new(list, json_pack("{s:O,s:s,s:O,s:n}", "name", layers[i].name,
							      "version", layers[i].version, "config",
							      layers[i].config, "disabledReason"));
		json_object_set_new(result, "layers", list);
	}
	for (size_t i = 0; i < n; i++) {
		json_decref(layers[i].name);
		json_decref(layers[i].config);
	}
	conn_reply(conn, id, result);
}

/* agentd reads no requirements.toml or managed policy: nothing is required ("null"). */
void proto_config_requirements_read(Conn *conn, json_t *id, json_t *params)
{
	(void)params;
	conn_reply(conn, id, json_pack("{s:b,s:n}", "supportsIndependentSpeedModes", 1, "requirements"));
}
