/* SPDX-License-Identifier: MIT */
/* proto_initialize.c - the initialize handshake: client identity, opt-outs, the server's identity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "log.h"
#include "proto.h"
#include "rpc.h"

/* Clients that must never become the process-wide originator (the reference's exemptions). */
static const char *const proto_exempt_originators[] = { "codex_app_server_daemon", "codex-backend" };

/* An HTTP header value: visible ASCII, space and tab; no control characters. */
static bool proto_is_header_value(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	}
	return true;
}

static void proto_os_release(char *out, size_t out_len)
{
	char name[64] = "Linux", version[64] = "";
	FILE *f = fopen("/etc/os-release", "re");
	char line[256];
	while (f && fgets(line, sizeof(line), f)) {
		char *value = strchr(line, '=');
		if (!value)
			continue;
		*value++ = '\0';
		value[strcspn(value, "\n")] = '\0';
		if (*value == '"') {
			value++;
			value[strcspn(value, "\"")] = '\0';
		}
		if (strcmp(line, "NAME") == 0)
			snprintf(name, sizeof(name), "%.*s", (int)strcspn(value, " "), value);
		else if (strcmp(line, "VERSION_ID") == 0)
			snprintf(version, sizeof(version), "%s", value);
	}
	if (f)
		fclose(f);
	snprintf(out, out_len, "%s%s%s", name, version[0] ? " " : "", version);
}

static void proto_adopt_originator(Agentd *server, const char *client_name)
{
	const char *override = getenv("CODEX_INTERNAL_ORIGINATOR_OVERRIDE");
	if (override && *override) {
		snprintf(server->originator, sizeof(server->originator), "%s", override);
		server->has_originator = true;
		return;
	}
	if (server->has_originator)
		return;
	for (size_t i = 0; i < sizeof(proto_exempt_originators) / sizeof(proto_exempt_originators[0]); i++) {
		if (strcmp(client_name, proto_exempt_originators[i]) == 0)
			return;
	}
	snprintf(server->originator, sizeof(server->originator), "%s", client_name);
	server->has_originator = true;
}

void proto_format_user_agent(const char *originator, const char *client_name, const char *client_version,
			     char *ua, size_t ua_len)
{
	char os[160];
	struct utsname uts;
	proto_os_release(os, sizeof(os));
	if (uname(&uts) < 0)
		snprintf(uts.machine, sizeof(uts.machine), "unknown");
	const char *term = getenv("TERM_PROGRAM");
	if (!term || !*term)
		term = getenv("TERM");
	snprintf(ua, ua_len, "%s/%s (%s; %s) %s (%s; %s)", originator, PROTO_COMPAT_VERSION, os, uts.machine,
		 term && *term ? term : "unknown", client_name, client_version);
}

static json_t *proto_user_agent(const Agentd *server, const char *client_name, const char *client_version)
{
	char ua[768];
	proto_format_user_agent(server->has_originator ? server->originator : "codex_cli_rs", client_name,
				client_version, ua, sizeof(ua));
	return json_string(ua);
}

/* capabilities.optOutNotificationMethods: exact method names this connection never receives. */
static int proto_read_opt_outs(Conn *conn, json_t *capabilities, json_t *id)
{
	if (!capabilities || json_is_null(capabilities))
		return 0;
	if (!json_is_object(capabilities)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: capabilities must be an object");
		return -1;
	}
	static const char *const bool_fields[] = { "experimentalApi", "requestAttestation",
						   "requiredHumanApproval", "explicitGatewayOauth",
						   "mcpServerOpenaiFormElicitation" };
	for (size_t i = 0; i < sizeof(bool_fields) / sizeof(bool_fields[0]); i++) {
		json_t *v = json_object_get(capabilities, bool_fields[i]);
		if (v && !json_is_boolean(v)) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST,
					 "Invalid request: capabilities.%s must be a boolean", bool_fields[i]);
			return -1;
		}
	}
	json_t *methods = json_object_get(capabilities, "optOutNotificationMethods");
	if (!methods || json_is_null(methods))
		return 0;
	if (!json_is_array(methods)) {
		conn_reply_error(
			conn, id, RPC_INVALID_REQUEST,
			"Invalid request: capabilities.optOutNotificationMethods must be an array of strings");
		return -1;
	}
	json_t *set = json_object();
	size_t i;
	json_t *m;
	json_array_foreach (methods, i, m) {
		if (!json_is_string(m)) {
			json_decref(set);
			conn_reply_error(conn, id, RPC_INVALID_REQUEST,
					 "Invalid request: capabilities.optOutNotificationMethods must be an "
					 "array of strings");
			return -1;
		}
		json_object_set_new(set, json_string_value(m), json_true());
	}
	json_decref(conn->opted_out);
	conn->opted_out = set;
	return 0;
}

static const char *proto_client_field(Conn *conn, json_t *id, json_t *client_info, const char *field)
{
	json_t *v = json_object_get(client_info, field);
	if (!v) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `%s`", field);
		return NULL;
	}
	if (!json_is_string(v)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: clientInfo.%s must be a string", field);
		return NULL;
	}
	return json_string_value(v);
}

/* As the reference: startup warnings follow the initialize response, one notification each. */
static void proto_send_config_warnings(Conn *conn)
{
	size_t i;
	json_t *warning;
	json_array_foreach (conn->server->config_warnings, i, warning) {
		conn_notify(conn, "configWarning", json_deep_copy(warning));
	}
	json_array_foreach (conn->server->sandbox_warnings, i, warning) {
		conn_notify(conn, "configWarning", json_deep_copy(warning));
	}
}

void proto_initialize(Conn *conn, json_t *id, json_t *params)
{
	Agentd *server = conn->server;
	json_t *client_info = json_object_get(params, "clientInfo");
	if (!client_info) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `clientInfo`");
		return;
	}
	if (!json_is_object(client_info)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: clientInfo must be an object");
		return;
	}
	const char *name = proto_client_field(conn, id, client_info, "name");
	const char *version = name ? proto_client_field(conn, id, client_info, "version") : NULL;
	if (!name || !version)
		return;
	json_t *title = json_object_get(client_info, "title");
	if (title && !json_is_null(title) && !json_is_string(title)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: clientInfo.title must be a string");
		return;
	}
	if (conn->is_initialized) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Already initialized");
		return;
	}
	if (!proto_is_header_value(name)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid clientInfo.name: '%s'. Must be a valid HTTP header value.", name);
		return;
	}
	if (proto_read_opt_outs(conn, json_object_get(params, "capabilities"), id) < 0)
		return;
	snprintf(conn->client_name, sizeof(conn->client_name), "%s", name);
	snprintf(conn->client_version, sizeof(conn->client_version), "%s", version);
	proto_adopt_originator(server, name);
	json_t *result = json_object();
	json_object_set_new(result, "userAgent", proto_user_agent(server, name, version));
	json_object_set_new(result, "codexHome", json_string(server->config.codex_home));
	json_object_set_new(result, "platformFamily", json_string("unix"));
	json_object_set_new(result, "platformOs", json_string("linux"));
	conn->is_initialized = true;
	log_info("connection %llu: initialized by %s %s", (unsigned long long)conn->id, name, version);
	conn_reply(conn, id, result);
	proto_send_config_warnings(conn);
}
