/* SPDX-License-Identifier: MIT */
/*
 * proto_account.c - account/read, getAuthStatus, account/login/start|cancel, account/logout and
 * their notifications: client JSON <-> authd's internal methods. agentd never reads auth.json;
 * the only credential it handles is the token getAuthStatus {includeToken} passes through.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp.h"
#include "mpjson.h"
#include "proto.h"
#include "rpc.h"

#define ACCOUNT_MAX_API_KEY_BYTES 4096u
#define ACCOUNT_UUID_LEN 36u
/* How long agentd waits for authd: longer than authd's worst refresh with its default options
 * (a lock wait, then three tries with their back-off), so a slow issuer still gets the client
 * the stale token rather than a timeout. */
#define ACCOUNT_AUTHD_DEADLINE_MS 60000u

typedef enum AccountCallKind {
	ACCOUNT_READ,
	ACCOUNT_AUTH_STATUS,
	ACCOUNT_LOGIN_START,
	ACCOUNT_LOGIN_CANCEL,
	ACCOUNT_LOGOUT,
} AccountCallKind;

typedef struct AccountCall {
	Agentd *server;
	uint64_t conn_id;
	json_t *id;
	AccountCallKind kind;
	bool requires_openai_auth;
} AccountCall;

/* The schema's PlanType values; a claim outside them is "unknown". */
static const char *const account_plan_types[] = {
	"free",
	"go",
	"plus",
	"pro",
	"prolite",
	"promax",
	"team",
	"self_serve_business_prolite",
	"self_serve_business_usage_based",
	"business",
	"ent26",
	"enterprise_cbp_automation",
	"enterprise_cbp_usage_based",
	"enterprise",
	"edu",
	"edu_plus",
	"edu_pro",
	"sci",
	"sci_plus",
};

/* Claim values the reference maps onto another plan (case matters, as there). */
static const char *const account_plan_aliases[][2] = {
	{ "hc", "enterprise" },
	{ "education", "edu" },
};

static const char *account_plan_type(const char *claim)
{
	for (size_t i = 0; claim && i < sizeof(account_plan_types) / sizeof(account_plan_types[0]); i++) {
		if (strcmp(claim, account_plan_types[i]) == 0)
			return account_plan_types[i];
	}
	for (size_t i = 0; claim && i < sizeof(account_plan_aliases) / sizeof(account_plan_aliases[0]); i++) {
		if (strcmp(claim, account_plan_aliases[i][0]) == 0)
			return account_plan_aliases[i][1];
	}
	return "unknown";
}

/*
 * Whether the configured model provider signs in with OpenAI credentials: the built-in "openai"
 * does; a [model_providers.NAME] table says so with requires_openai_auth; the other built-ins
 * (oss, ollama, lmstudio) do not.
 */
static bool account_requires_openai_auth(const Config *cfg)
{
	const char *provider;
	if (config_get_string(cfg, "model_provider", "openai", &provider) < 0)
		provider = "openai";
	if (strcmp(provider, "openai") == 0)
		return true; /* a built-in provider: a user table of the same name does not replace it */
	json_t *table = json_object_get(config_lookup(cfg, "model_providers"), provider);
	return json_is_object(table) && json_is_true(json_object_get(table, "requires_openai_auth"));
}

static void account_call_free(AccountCall *call)
{
	json_decref(call->id);
	free(call);
}

static json_t *account_string_or_null(const msgpack_object *map, const char *key)
{
	const char *text;
	size_t len;
	if (mp_get_str(map, key, 64 * 1024, &text, &len) < 0)
		return json_null();
	return json_stringn(text, len);
}

/*
 * {account, userId, requiresOpenaiAuth}, in the reference's order. A credential whose refresh
 * failed for good is no account (the reference filters it out), and no provider that signs in
 * elsewhere has one.
 */
static json_t *account_read_result(const AccountCall *call, const msgpack_object *body)
{
	const char *mode = NULL;
	size_t mode_len = 0;
	bool poisoned = false;
	mp_get_str(body, "authMode", 64, &mode, &mode_len);
	mp_get_bool(body, "poisoned", &poisoned);
	if (poisoned || !call->requires_openai_auth)
		mode = NULL;
	json_t *account = json_null();
	json_t *user_id = NULL;
	if (mode && mode_len == 6 && memcmp(mode, "apikey", 6) == 0) {
		account = json_pack("{s:s}", "type", "apiKey");
	} else if (mode && mode_len == 7 && memcmp(mode, "chatgpt", 7) == 0) {
		json_t *plan = account_string_or_null(body, "planType");
		account = json_pack("{s:s,s:o,s:s,s:n}", "type", "chatgpt", "email",
				    account_string_or_null(body, "email"), "planType",
				    account_plan_type(json_string_value(plan)), "workspaceName");
		json_decref(plan);
		user_id = account_string_or_null(body, "userId");
	}
	return json_pack("{s:o,s:o,s:b}", "account", account, "userId", user_id ? user_id : json_null(),
			 "requiresOpenaiAuth", call->requires_openai_auth);
}

static json_t *account_auth_status_result(const msgpack_object *body)
{
	return json_pack("{s:o,s:o,s:b}", "authMethod", account_string_or_null(body, "authMode"), "authToken",
			 account_string_or_null(body, "token"), "requiresOpenaiAuth", true);
}

static json_t *account_result(const AccountCall *call, const msgpack_object *body)
{
	switch (call->kind) {
	case ACCOUNT_READ:
		return account_read_result(call, body);
	case ACCOUNT_AUTH_STATUS:
		return account_auth_status_result(body);
	case ACCOUNT_LOGIN_START:
		return mpjson_from_object(body);
	case ACCOUNT_LOGIN_CANCEL:
		return json_pack("{s:o}", "status", account_string_or_null(body, "status"));
	case ACCOUNT_LOGOUT:
		break;
	}
	return json_object();
}

static void account_reply_failure(Conn *conn, AccountCall *call, int32_t status, const msgpack_object *body)
{
	const char *message = NULL;
	size_t len = 0;
	if (status == ENVELOPE_STATUS_UNAVAILABLE) {
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "service authd is unavailable");
		return;
	}
	if (!body || mp_get_str(body, "message", 4096, &message, &len) < 0) {
		message = NULL;
		len = 0;
	}
	const char *reason = message ? message : strerror(status < 0 ? -status : status);
	int reason_len = message ? (int)len : (int)strlen(reason);
	/* authd's -EINVAL for a login is the client's mistake (device code not enabled on this
	 * issuer, say): the reference answers those as invalid requests. */
	if (call->kind == ACCOUNT_LOGIN_START && status == -EINVAL && message)
		conn_reply_error(conn, call->id, RPC_INVALID_REQUEST, "%.*s", (int)len, message);
	else if (call->kind == ACCOUNT_LOGOUT)
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "logout failed: %.*s", reason_len, reason);
	else if (message)
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "%.*s", reason_len, reason);
	else
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "authd: %s", reason);
}

static void account_on_reply(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	AccountCall *call = ctx;
	Conn *conn = conn_find(call->server, call->conn_id);
	MpBody parsed;
	bool has_body = body_len > 0 && mp_body_parse(body, body_len, &parsed) == 0;
	if (conn) {
		if (status != 0) {
			account_reply_failure(conn, call, status, has_body ? parsed.map : NULL);
		} else if (!has_body) {
			conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "authd sent a malformed answer");
		} else {
			json_t *result = account_result(call, parsed.map);
			if (result)
				conn_reply(conn, call->id, result);
			else
				conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "out of memory");
		}
		conn_call_finished(conn);
	}
	if (has_body)
		mp_body_free(&parsed);
	account_call_free(call);
}

/* Sends @method with the msgpack @sbuf to authd; the answer goes to @id. */
static void account_call_authd(Conn *conn, json_t *id, AccountCallKind kind, const char *method,
			       msgpack_sbuffer *sbuf)
{
	AccountCall *call = calloc(1, sizeof(*call));
	if (!call) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	call->server = conn->server;
	call->conn_id = conn->id;
	call->id = json_incref(id);
	call->kind = kind;
	call->requires_openai_auth = account_requires_openai_auth(&conn->server->config);
	conn_call_started(conn);
	int rc = conn->server->broker ? broker_call(conn->server->broker, "authd", method, conn->id, sbuf->data,
						    sbuf->size, ACCOUNT_AUTHD_DEADLINE_MS, account_on_reply, call)
				      : -ENOTCONN;
	if (rc < 0) {
		conn_call_finished(conn);
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "service authd is unavailable");
		account_call_free(call);
	}
}

/* An optional boolean field: absent and null are @fallback; another type is the client's error. */
static int account_bool_param(Conn *conn, json_t *id, json_t *params, const char *key, bool *out)
{
	json_t *value = json_object_get(params, key);
	*out = false;
	if (!value || json_is_null(value))
		return 0;
	if (!json_is_boolean(value)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: invalid type: %s, expected a boolean",
				 key);
		return -EINVAL;
	}
	*out = json_is_true(value);
	return 0;
}

static void account_status_call(Conn *conn, json_t *id, AccountCallKind kind, bool refresh, bool include_token)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_bool(&pk, "refresh", refresh);
	mp_pack_kv_bool(&pk, "includeToken", include_token);
	account_call_authd(conn, id, kind, "auth.status", &sbuf);
	msgpack_sbuffer_destroy(&sbuf);
}

void proto_account_read(Conn *conn, json_t *id, json_t *params)
{
	bool refresh;
	if (account_bool_param(conn, id, params, "refreshToken", &refresh) < 0)
		return;
	account_status_call(conn, id, ACCOUNT_READ, refresh, false);
}

void proto_get_auth_status(Conn *conn, json_t *id, json_t *params)
{
	bool include_token, refresh;
	if (account_bool_param(conn, id, params, "includeToken", &include_token) < 0 ||
	    account_bool_param(conn, id, params, "refreshToken", &refresh) < 0)
		return;
	if (!account_requires_openai_auth(&conn->server->config)) {
		/* The provider signs in some other way: nothing of OpenAI's applies. */
		conn_reply(conn, id,
			   json_pack("{s:n,s:n,s:b}", "authMethod", "authToken", "requiresOpenaiAuth", false));
		return;
	}
	account_status_call(conn, id, ACCOUNT_AUTH_STATUS, refresh, include_token);
}

static const char *account_originator(const Agentd *server)
{
	return server->has_originator ? server->originator : "codex_cli_rs";
}

void proto_account_login_start(Conn *conn, json_t *id, json_t *params)
{
	json_t *type = json_object_get(params, "type");
	if (!json_is_string(type)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `type`");
		return;
	}
	const char *kind = json_string_value(type);
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	if (strcmp(kind, "apiKey") == 0) {
		json_t *key = json_object_get(params, "apiKey");
		if (!json_is_string(key)) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `apiKey`");
			goto out;
		}
		if (json_string_length(key) > ACCOUNT_MAX_API_KEY_BYTES ||
		    strlen(json_string_value(key)) != json_string_length(key)) {
			conn_reply_error(conn, id, RPC_INVALID_REQUEST,
					 "Invalid request: apiKey must be a string of at most %u bytes",
					 ACCOUNT_MAX_API_KEY_BYTES);
			goto out;
		}
		msgpack_pack_map(&pk, 2);
		mp_pack_kv_str(&pk, "type", "apiKey");
		mp_pack_kv_str(&pk, "apiKey", json_string_value(key));
	} else if (strcmp(kind, "chatgpt") == 0 || strcmp(kind, "chatgptDeviceCode") == 0) {
		msgpack_pack_map(&pk, 2);
		mp_pack_kv_str(&pk, "type", kind);
		mp_pack_kv_str(&pk, "originator", account_originator(conn->server));
	} else if (strcmp(kind, "chatgptAuthTokens") == 0 || strcmp(kind, "amazonBedrock") == 0 ||
		   strcmp(kind, "amazonBedrockAccessKeys") == 0) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "%s login is not supported by agentd", kind);
		goto out;
	} else {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST,
				 "Invalid request: unknown variant `%s`, expected one of `apiKey`, `chatgpt`, "
				 "`chatgptDeviceCode`, `chatgptAuthTokens`, `amazonBedrock`, "
				 "`amazonBedrockAccessKeys`",
				 kind);
		goto out;
	}
	account_call_authd(conn, id, ACCOUNT_LOGIN_START, "auth.login.start", &sbuf);
out:
	msgpack_sbuffer_destroy(&sbuf);
}

/* 8-4-4-4-12 hex digits: the only login ids authd hands out. */
static bool account_is_uuid(const char *text, size_t len)
{
	if (len != ACCOUNT_UUID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool is_dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = text[i];
		bool is_hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
		if (is_dash ? c != '-' : !is_hex)
			return false;
	}
	return true;
}

void proto_account_login_cancel(Conn *conn, json_t *id, json_t *params)
{
	json_t *login_id = json_object_get(params, "loginId");
	if (!json_is_string(login_id)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `loginId`");
		return;
	}
	const char *text = json_string_value(login_id);
	size_t len = json_string_length(login_id);
	if (!account_is_uuid(text, len)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "invalid login id: %.*s", len > 200 ? 200 : (int)len,
				 text);
		return;
	}
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "loginId", text);
	account_call_authd(conn, id, ACCOUNT_LOGIN_CANCEL, "auth.login.cancel", &sbuf);
	msgpack_sbuffer_destroy(&sbuf);
}

void proto_account_logout(Conn *conn, json_t *id, json_t *params)
{
	msgpack_sbuffer sbuf = { .data = "\x80", .size = 1 };
	account_call_authd(conn, id, ACCOUNT_LOGOUT, "auth.logout", &sbuf);
}

/* Copies authd's event fields into the notification's, keeping nulls. */
static json_t *account_event_params(const msgpack_object *body, const char *const *keys, size_t count)
{
	json_t *params = json_object();
	for (size_t i = 0; params && i < count; i++) {
		const msgpack_object *value = mp_map_find(body, keys[i]);
		json_t *copy = value ? mpjson_from_object(value) : json_null();
		if (!copy || json_object_set_new(params, keys[i], copy) < 0) {
			json_decref(params);
			return NULL;
		}
	}
	return params;
}

static void account_broadcast(Agentd *server, const char *method, json_t *params)
{
	for (Conn *conn = server->conns; conn; conn = conn->next) {
		if (conn->is_initialized && !conn->is_closing)
			conn_notify(conn, method, json_deep_copy(params));
	}
	json_decref(params);
}

void proto_account_on_event(Agentd *server, const Envelope *env)
{
	static const char *const updated_keys[] = { "authMode", "planType" };
	static const char *const completed_keys[] = { "loginId", "success", "error" };
	MpBody body;
	if (mp_body_parse(env->body, env->body_len, &body) < 0) {
		log_warn("authd: malformed %s dropped", env->method);
		return;
	}
	json_t *params = NULL;
	const char *method = NULL;
	if (strcmp(env->method, "auth.updated") == 0) {
		method = "account/updated";
		params = account_event_params(body.map, updated_keys, 2);
		const char *plan = params ? json_string_value(json_object_get(params, "planType")) : NULL;
		if (plan)
			json_object_set_new(params, "planType", json_string(account_plan_type(plan)));
	} else {
		method = "account/login/completed";
		params = account_event_params(body.map, completed_keys, 3);
		if (params)
			json_object_set_new(params, "onboardingEntrypoint", json_null());
	}
	mp_body_free(&body);
	if (params)
		account_broadcast(server, method, params);
}
