/* SPDX-License-Identifier: MIT */
/*
 * authd - holds the credentials: the only process that reads or writes $CODEX_HOME/auth.json,
 * refreshes tokens (one request in flight, shared by every caller), and runs the sign-in flows.
 * agentd asks it through the internal methods below; a bearer token leaves authd only in the
 * answers to auth.token, auth.recover and auth.status {includeToken}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "creds.h"
#include "daemon.h"
#include "log.h"
#include "login.h"
#include "mpjson.h"

#define AUTHD_DEFAULT_ISSUER "https://auth.openai.com"
#define AUTHD_CLIENT_ID "app_EMoamEEZ73f0CkXaXp7hrann"
#define AUTHD_MAX_API_KEY_BYTES 4096u
#define AUTHD_MAX_ID_BYTES 128u

typedef struct Authd {
	Daemon *daemon;
	StorePaths paths;
	Creds *creds;
	Login *login;
} Authd;

static Authd authd;

/* A request answered once a refresh (or a store write) is done. */
typedef enum AuthdCallKind {
	AUTHD_CALL_STATUS,
	AUTHD_CALL_TOKEN,
	AUTHD_CALL_RECOVER,
	AUTHD_CALL_LOGIN_API_KEY,
	AUTHD_CALL_LOGOUT,
} AuthdCallKind;

typedef struct AuthdCall {
	Authd *a;
	Envelope req; /* a copy without its body: enough to answer */
	AuthdCallKind kind;
	bool include_token;
} AuthdCall;

static void authd_pack_kv_str_or_nil(msgpack_packer *pk, const char *key, const char *value)
{
	mp_pack_cstr(pk, key);
	if (value)
		mp_pack_cstr(pk, value);
	else
		msgpack_pack_nil(pk);
}

/* An error answer: @status with {message}. */
static void authd_reply_error(Daemon *d, const Envelope *req, int status, const char *message)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "message", message ? message : strerror(status < 0 ? -status : status));
	daemon_reply(d, req, status, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

/* The bearer token of @snap for model requests: the API key, the ChatGPT access token, or the
 * personal access token. */
static const char *authd_bearer(const AuthSnapshot *snap)
{
	if (snap->mode == AUTH_MODE_APIKEY)
		return snap->api_key;
	if (snap->mode == AUTH_MODE_CHATGPT)
		return snap->access_token;
	if (snap->mode == AUTH_MODE_PERSONAL_ACCESS_TOKEN)
		return snap->personal_access_token;
	return NULL;
}

/* What getAuthStatus {includeToken} may show: never a personal access token (the reference). */
static const char *authd_status_token(const AuthSnapshot *snap)
{
	return snap->mode == AUTH_MODE_PERSONAL_ACCESS_TOKEN ? NULL : authd_bearer(snap);
}

/*
 * auth.status's answer: {authMode, email, planType, userId, accountId, poisoned, token}. The
 * token only when asked for and not poisoned (the reference omits it after a permanent failure).
 */
static void authd_reply_status(Authd *a, const Envelope *req, bool include_token)
{
	const AuthSnapshot *snap = creds_current(a->creds);
	const char *poison = creds_poison(a->creds);
	const char *token = include_token && !poison ? authd_status_token(snap) : NULL;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 7);
	authd_pack_kv_str_or_nil(&pk, "authMode", store_mode_name(snap->mode));
	authd_pack_kv_str_or_nil(&pk, "email", snap->email);
	authd_pack_kv_str_or_nil(&pk, "planType", snap->plan_type);
	authd_pack_kv_str_or_nil(&pk, "userId", snap->user_id);
	authd_pack_kv_str_or_nil(&pk, "accountId", snap->mode == AUTH_MODE_CHATGPT ? snap->account_id : NULL);
	mp_pack_kv_bool(&pk, "poisoned", poison != NULL);
	authd_pack_kv_str_or_nil(&pk, "token", token);
	daemon_reply(a->daemon, req, 0, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

/* auth.token / auth.recover's answer: {authMode, token, accountId}, or why there is none. */
static void authd_reply_token(Authd *a, const Envelope *req, int status, const char *message)
{
	const AuthSnapshot *snap = creds_current(a->creds);
	const char *poison = creds_poison(a->creds);
	const char *token = authd_bearer(snap);
	if (creds_load_error(a->creds)) {
		authd_reply_error(a->daemon, req, CREDS_ERR_STORE, creds_load_error(a->creds));
		return;
	}
	if (poison || status == CREDS_ERR_PERMANENT) {
		authd_reply_error(a->daemon, req, CREDS_ERR_PERMANENT, poison ? poison : message);
		return;
	}
	if (!token) {
		authd_reply_error(a->daemon, req, -ENOENT, "not logged in");
		return;
	}
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	authd_pack_kv_str_or_nil(&pk, "authMode", store_mode_name(snap->mode));
	mp_pack_kv_str(&pk, "token", token);
	authd_pack_kv_str_or_nil(&pk, "accountId", snap->mode == AUTH_MODE_CHATGPT ? snap->account_id : NULL);
	daemon_reply(a->daemon, req, 0, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

/* auth.updated {authMode, planType}: for every client (connection 0), as account/updated. */
static void authd_send_updated(Authd *a)
{
	const AuthSnapshot *snap = creds_current(a->creds);
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	authd_pack_kv_str_or_nil(&pk, "authMode", store_mode_name(snap->mode));
	authd_pack_kv_str_or_nil(&pk, "planType", snap->mode == AUTH_MODE_CHATGPT ? snap->plan_type : NULL);
	daemon_send_event(a->daemon, 0, "auth.updated", sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

/* auth.login.completed {loginId, success, error}: for every client, as account/login/completed. */
static void authd_send_completed(Authd *a, const char *login_id, bool success, const char *error)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	authd_pack_kv_str_or_nil(&pk, "loginId", login_id);
	mp_pack_kv_bool(&pk, "success", success);
	authd_pack_kv_str_or_nil(&pk, "error", error);
	daemon_send_event(a->daemon, 0, "auth.login.completed", sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

static void authd_on_login_completed(void *ctx, const char *login_id, bool success, const char *error)
{
	Authd *a = ctx;
	authd_send_completed(a, login_id, success, error);
	if (success)
		authd_send_updated(a);
}

static AuthdCall *authd_call_new(Authd *a, const Envelope *req, AuthdCallKind kind)
{
	AuthdCall *call = calloc(1, sizeof(*call));
	if (!call)
		return NULL;
	call->a = a;
	call->req = *req;
	call->req.body = NULL;
	call->req.body_len = 0;
	call->kind = kind;
	return call;
}

static void authd_on_call_done(void *ctx, int status, const char *message)
{
	AuthdCall *call = ctx;
	Authd *a = call->a;
	if (!a->creds) {
		/* Stopping: the state and the link are gone; agentd answers its clients itself. */
		free(call);
		return;
	}
	switch (call->kind) {
	case AUTHD_CALL_STATUS:
		/* A failed refresh is no failure of the read: the reference logs it and answers. */
		if (status < 0 && status != CREDS_ERR_STORE)
			log_info("refresh before auth.status failed: %s", message ? message : "?");
		if (creds_load_error(a->creds))
			authd_reply_error(a->daemon, &call->req, CREDS_ERR_STORE, creds_load_error(a->creds));
		else
			authd_reply_status(a, &call->req, call->include_token);
		break;
	case AUTHD_CALL_TOKEN:
	case AUTHD_CALL_RECOVER:
		authd_reply_token(a, &call->req, status, message);
		break;
	case AUTHD_CALL_LOGIN_API_KEY:
	case AUTHD_CALL_LOGOUT:
		if (status < 0) {
			authd_reply_error(a->daemon, &call->req, status, message);
		} else {
			/* {"type":"apiKey"} for a login, {} for logout: the client's shapes already. */
			if (call->kind == AUTHD_CALL_LOGIN_API_KEY)
				daemon_reply(a->daemon, &call->req, 0, "\x81\xa4" "type" "\xa6" "apiKey", 13);
			else
				daemon_reply(a->daemon, &call->req, 0, "\x80", 1);
			if (call->kind == AUTHD_CALL_LOGIN_API_KEY)
				authd_send_completed(a, NULL, true, NULL);
			authd_send_updated(a);
		}
		break;
	}
	free(call);
}

/* auth.status {refresh?, includeToken?}: account/read and getAuthStatus. */
static int authd_status(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Authd *a = ctx;
	bool refresh = false, include_token = false;
	if (mp_map_find(params, "refresh") && mp_get_bool(params, "refresh", &refresh) < 0)
		return -EINVAL;
	if (mp_map_find(params, "includeToken") && mp_get_bool(params, "includeToken", &include_token) < 0)
		return -EINVAL;
	AuthdCall *call = authd_call_new(a, req, AUTHD_CALL_STATUS);
	if (!call)
		return -ENOMEM;
	call->include_token = include_token;
	/* Without an explicit refresh, a due token is still refreshed first, as the reference's auth(). */
	creds_refresh(a->creds, refresh ? CREDS_REFRESH_REQUESTED : CREDS_REFRESH_DUE, authd_on_call_done,
		      call);
	return 0;
}

/* auth.token {}: the bearer token for a model request, refreshed first when due. */
static int authd_token(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Authd *a = ctx;
	AuthdCall *call = authd_call_new(a, req, AUTHD_CALL_TOKEN);
	if (!call)
		return -ENOMEM;
	creds_refresh(a->creds, CREDS_REFRESH_DUE, authd_on_call_done, call);
	return 0;
}

/*
 * auth.recover {token}: the model API answered 401 for @token. Reload; if the credential is still
 * that token, refresh it once (the reference's unauthorized recovery); answer the current token.
 */
static int authd_recover(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Authd *a = ctx;
	const char *seen;
	size_t seen_len;
	if (mp_get_str(params, "token", 64 * 1024, &seen, &seen_len) < 0)
		return -EINVAL;
	AuthdCall *call = authd_call_new(a, req, AUTHD_CALL_RECOVER);
	if (!call)
		return -ENOMEM;
	creds_sync(a->creds);
	const char *current = authd_bearer(creds_current(a->creds));
	bool is_same = current && strlen(current) == seen_len && memcmp(current, seen, seen_len) == 0;
	if (!is_same || creds_current(a->creds)->mode != AUTH_MODE_CHATGPT)
		authd_on_call_done(call, 0, NULL); /* already another token (or one refresh cannot fix) */
	else
		creds_refresh(a->creds, CREDS_REFRESH_UNAUTHORIZED, authd_on_call_done, call);
	return 0;
}

static int authd_refuse_over_corrupt_store(Authd *a, const Envelope *req)
{
	if (creds_sync(a->creds) == 0)
		return 0;
	char message[1024];
	snprintf(message, sizeof(message), "%s: fix or remove it first (account/logout removes it)",
		 creds_load_error(a->creds));
	authd_reply_error(a->daemon, req, CREDS_ERR_STORE, message);
	return 1;
}

static int authd_login_api_key(Authd *a, const Envelope *req, const msgpack_object *params)
{
	const char *key;
	size_t key_len;
	if (mp_get_str(params, "apiKey", AUTHD_MAX_API_KEY_BYTES, &key, &key_len) < 0 ||
	    memchr(key, '\0', key_len))
		return -EINVAL;
	if (authd_refuse_over_corrupt_store(a, req))
		return 0;
	json_t *doc = json_pack("{s:s,s:s%}", "auth_mode", "apikey", "OPENAI_API_KEY", key, key_len);
	AuthdCall *call = doc ? authd_call_new(a, req, AUTHD_CALL_LOGIN_API_KEY) : NULL;
	if (!call) {
		json_decref(doc);
		return -ENOMEM;
	}
	login_cancel_active(a->login);
	creds_replace(a->creds, doc, authd_on_call_done, call);
	return 0;
}

typedef struct AuthdLoginCall {
	Authd *a;
	Envelope req;
} AuthdLoginCall;

static void authd_on_login_started(void *ctx, int status, json_t *result, const char *message)
{
	AuthdLoginCall *call = ctx;
	if (status < 0) {
		authd_reply_error(call->a->daemon, &call->req, status, message);
	} else {
		msgpack_sbuffer sbuf;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sbuf);
		msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
		if (mpjson_pack(&pk, result) == 0)
			daemon_reply(call->a->daemon, &call->req, 0, sbuf.data, sbuf.size);
		else
			authd_reply_error(call->a->daemon, &call->req, -ENOMEM, "out of memory");
		msgpack_sbuffer_destroy(&sbuf);
	}
	free(call);
}

/* auth.login.start {type, apiKey?, originator?}: account/login/start. */
static int authd_login_start(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Authd *a = ctx;
	const char *type, *originator = "codex_cli_rs";
	size_t type_len, originator_len;
	char type_text[32], originator_text[AUTHD_MAX_ID_BYTES + 1];
	if (mp_get_str(params, "type", sizeof(type_text) - 1, &type, &type_len) < 0)
		return -EINVAL;
	memcpy(type_text, type, type_len);
	type_text[type_len] = '\0';
	if (strcmp(type_text, "apiKey") == 0)
		return authd_login_api_key(a, req, params);
	if (strcmp(type_text, "chatgpt") != 0 && strcmp(type_text, "chatgptDeviceCode") != 0)
		return -EINVAL;
	if (mp_map_find(params, "originator")) {
		if (mp_get_str(params, "originator", AUTHD_MAX_ID_BYTES, &originator, &originator_len) < 0)
			return -EINVAL;
		memcpy(originator_text, originator, originator_len);
		originator_text[originator_len] = '\0';
		originator = originator_text;
	}
	if (authd_refuse_over_corrupt_store(a, req))
		return 0;
	AuthdLoginCall *call = calloc(1, sizeof(*call));
	if (!call)
		return -ENOMEM;
	call->a = a;
	call->req = *req;
	call->req.body = NULL;
	call->req.body_len = 0;
	login_start(a->login, type_text, originator, authd_on_login_started, call);
	return 0;
}

/* auth.login.cancel {loginId} → {status: "canceled"|"notFound"}. */
static int authd_login_cancel(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Authd *a = ctx;
	const char *id;
	size_t id_len;
	char id_text[AUTHD_MAX_ID_BYTES + 1];
	if (mp_get_str(params, "loginId", AUTHD_MAX_ID_BYTES, &id, &id_len) < 0)
		return -EINVAL;
	memcpy(id_text, id, id_len);
	id_text[id_len] = '\0';
	bool canceled = login_cancel(a->login, id_text);
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "status", canceled ? "canceled" : "notFound");
	int rc = daemon_reply(d, req, 0, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
	return rc;
}

/* auth.logout {}: cancel the active login, revoke (best effort), delete the credential. */
static int authd_logout(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Authd *a = ctx;
	AuthdCall *call = authd_call_new(a, req, AUTHD_CALL_LOGOUT);
	if (!call)
		return -ENOMEM;
	login_cancel_active(a->login);
	if (creds_sync(a->creds) == 0)
		login_revoke(a->login, creds_current(a->creds));
	creds_replace(a->creds, NULL, authd_on_call_done, call);
	return 0;
}

/* Events about client connections: authd keeps no per-connection state. */
static int authd_conn_closed(Daemon *d, const Envelope *env, const msgpack_object *params, void *ctx)
{
	return 0;
}

static int authd_health(Daemon *d, msgpack_packer *pk, void *ctx)
{
	Authd *a = ctx;
	const AuthSnapshot *snap = creds_current(a->creds);
	authd_pack_kv_str_or_nil(pk, "authMode", store_mode_name(snap->mode));
	mp_pack_kv_bool(pk, "poisoned", creds_poison(a->creds) != NULL);
	mp_pack_kv_u64(pk, "refreshRequests", creds_refresh_calls(a->creds));
	return 0;
}

/* -------------------------------------------------------------------------------------------
 * Configuration: the [authd] table of config.toml */

/* "authd.login_port" as the other helpers word their keys: "login_port" of "[authd]". */
static const char *authd_key_name(const char *key)
{
	return strncmp(key, "authd.", 6) == 0 ? key + 6 : key;
}

static int authd_get_int(const Config *cfg, const char *key, int64_t min, int64_t max, int64_t fallback,
			 int *out)
{
	int64_t value;
	if (config_get_int(cfg, key, min, max, fallback, &value) < 0) {
		log_error("%s: [authd] %s must be an integer in %lld..%lld", cfg->path, authd_key_name(key),
			  (long long)min, (long long)max);
		return -EINVAL;
	}
	*out = (int)value;
	return 0;
}

static int authd_get_bool(const Config *cfg, const char *key, bool fallback, bool *out)
{
	json_t *value = config_lookup(cfg, key);
	if (!value) {
		*out = fallback;
		return 0;
	}
	if (!json_is_boolean(value)) {
		log_error("%s: [authd] %s must be true or false", cfg->path, authd_key_name(key));
		return -EINVAL;
	}
	*out = json_is_true(value);
	return 0;
}

static int authd_get_url(const Config *cfg, const char *key, const char *fallback, char *out, size_t out_len)
{
	const char *text;
	if (config_get_string(cfg, key, fallback, &text) < 0 ||
	    (strncmp(text, "https://", 8) != 0 && strncmp(text, "http://", 7) != 0) ||
	    strlen(text) >= out_len) {
		log_error("%s: [authd] %s must be an http(s) URL", cfg->path, authd_key_name(key));
		return -EINVAL;
	}
	snprintf(out, out_len, "%s", text);
	/* The issuer is a base: its paths are appended. */
	size_t len = strlen(out);
	while (len > 0 && out[len - 1] == '/')
		out[--len] = '\0';
	return 0;
}

static bool authd_is_web_url(const char *text)
{
	return strncmp(text, "https://", 8) == 0 || strncmp(text, "http://", 7) == 0;
}

/* An http(s) URL from the environment variable @name into @out; 0 when unset. */
static int authd_env_url(const char *name, char *out, size_t out_len, bool *is_set)
{
	const char *env = getenv(name);
	*is_set = env && *env;
	if (!*is_set)
		return 0;
	if (!authd_is_web_url(env) || strlen(env) >= out_len) {
		log_error("%s must be an http(s) URL of fewer than %zu bytes", name, out_len);
		return -EINVAL;
	}
	snprintf(out, out_len, "%s", env);
	return 0;
}

/*
 * Where refreshes go: CODEX_REFRESH_TOKEN_URL_OVERRIDE (the reference's override), else
 * [authd] refresh_token_url, else the configured issuer's token endpoint. The configuration is
 * checked even when the environment overrides it.
 */
static int authd_refresh_url(const Config *cfg, const char *config_issuer, char *out, size_t out_len,
			     bool *is_default)
{
	char fallback[2048];
	const char *text;
	bool is_env;
	snprintf(fallback, sizeof(fallback), "%s/oauth/token", config_issuer);
	if (config_get_string(cfg, "authd.refresh_token_url", fallback, &text) < 0 || !authd_is_web_url(text) ||
	    strlen(text) >= out_len) {
		log_error("%s: [authd] refresh_token_url must be an http(s) URL", cfg->path);
		return -EINVAL;
	}
	snprintf(out, out_len, "%s", text);
	int rc = authd_env_url("CODEX_REFRESH_TOKEN_URL_OVERRIDE", out, out_len, &is_env);
	*is_default = !is_env && !config_lookup(cfg, "authd.refresh_token_url");
	return rc;
}

/*
 * The issuer of logins: CODEX_APP_SERVER_LOGIN_ISSUER (the reference's override), else [authd]
 * issuer. Refreshes keep the configured one (@config_issuer), as the reference's do: a login made
 * at another issuer records it (oauth_provenance), and its refreshes follow that record.
 */
static int authd_issuer(const Config *cfg, char *out, size_t out_len, char *config_issuer, size_t config_len)
{
	bool is_env;
	int rc = authd_get_url(cfg, "authd.issuer", AUTHD_DEFAULT_ISSUER, config_issuer, config_len);
	if (rc == 0) {
		snprintf(out, out_len, "%s", config_issuer);
		rc = authd_env_url("CODEX_APP_SERVER_LOGIN_ISSUER", out, out_len, &is_env);
	}
	size_t len = strlen(out);
	while (len > 0 && out[len - 1] == '/')
		out[--len] = '\0';
	return rc;
}

/*
 * Where logout revokes: CODEX_REVOKE_TOKEN_URL_OVERRIDE; else, when the refresh endpoint is
 * overridden, /oauth/revoke on that endpoint's origin (as the reference derives it); else the
 * issuer's.
 */
static int authd_revoke_url(const char *config_issuer, char *out, size_t out_len)
{
	bool is_env;
	const char *refresh = getenv("CODEX_REFRESH_TOKEN_URL_OVERRIDE");
	const char *scheme_end = refresh ? strstr(refresh, "://") : NULL;
	if (scheme_end) {
		size_t origin_len = strcspn(scheme_end + 3, "/?#") + (size_t)(scheme_end + 3 - refresh);
		snprintf(out, out_len, "%.*s/oauth/revoke", (int)origin_len, refresh);
	} else {
		snprintf(out, out_len, "%s/oauth/revoke", config_issuer);
	}
	return authd_env_url("CODEX_REVOKE_TOKEN_URL_OVERRIDE", out, out_len, &is_env);
}

static int authd_options(const Config *cfg, CredsOptions *creds, LoginOptions *login)
{
	memset(creds, 0, sizeof(*creds));
	memset(login, 0, sizeof(*login));
	char config_issuer[sizeof(login->issuer)];
	int rc = authd_issuer(cfg, login->issuer, sizeof(login->issuer), config_issuer, sizeof(config_issuer));
	if (rc == 0)
		rc = authd_refresh_url(cfg, config_issuer, creds->refresh_url, sizeof(creds->refresh_url),
				       &creds->is_refresh_url_default);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.request_timeout_ms", 100, 600000, 10000,
				   &creds->request_timeout_ms);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.lock_timeout_ms", 100, 3600000, 20000,
				   &creds->lock_timeout_ms);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.refresh_attempts", 1, 10, 3, &creds->refresh_attempts);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.retry_base_ms", 1, 60000, 500, &creds->retry_base_ms);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.background_retry_max_ms", 1000, 86400000, 900000,
				   &creds->background_retry_max_ms);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.coalesce_s", 0, 3600, 30, &creds->coalesce_s);
	if (rc == 0)
		rc = authd_get_bool(cfg, "authd.background_refresh", true, &creds->background_refresh);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.login_port", 0, 65535, 1455, &login->port);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.login_timeout_s", 1, 86400, 600, &login->timeout_s);
	if (rc == 0)
		rc = authd_get_int(cfg, "authd.device_code_timeout_s", 1, 86400, 900,
				   &login->device_timeout_s);
	if (rc < 0)
		return rc;
	snprintf(creds->client_id, sizeof(creds->client_id), "%s", AUTHD_CLIENT_ID);
	snprintf(login->client_id, sizeof(login->client_id), "%s", AUTHD_CLIENT_ID);
	snprintf(login->token_url, sizeof(login->token_url), "%s/oauth/token", login->issuer);
	if (authd_revoke_url(config_issuer, login->revoke_url, sizeof(login->revoke_url)) < 0)
		return -EINVAL;
	login->request_timeout_ms = creds->request_timeout_ms;
	return 0;
}

static int authd_adopt_config(Daemon *d, const Config *fresh, void *ctx)
{
	Authd *a = ctx;
	CredsOptions creds;
	LoginOptions login;
	int rc = authd_options(fresh, &creds, &login);
	if (rc == 0 && a->creds) {
		creds_set_options(a->creds, &creds);
		login_set_options(a->login, &login);
	}
	return rc;
}

static void authd_on_creds_changed(void *ctx)
{
	log_info("the credential changed");
}

/* CODEX_HOME is created private when missing; an existing one is the user's to arrange. */
static int authd_ensure_home(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (stat(dir, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int authd_start(Authd *a, Daemon *d)
{
	CredsOptions creds;
	LoginOptions login;
	const Config *cfg = daemon_config(d);
	int rc = authd_options(cfg, &creds, &login);
	if (rc == 0 && store_paths(cfg->codex_home, &a->paths) < 0) {
		log_error("CODEX_HOME %s is too long", cfg->codex_home);
		rc = -ENAMETOOLONG;
	}
	if (rc == 0 && (rc = authd_ensure_home(a->paths.dir)) < 0)
		log_error("cannot use CODEX_HOME %s: %s", a->paths.dir, strerror(-rc));
	if (rc == 0) {
		/* A writer killed mid-write leaves its temp file; nobody writes while we hold the lock.
		 * One try: a lock held elsewhere means a live writer, whose temp file is not stale. */
		int fd = store_lock(&a->paths, 0, NULL);
		if (fd >= 0) {
			store_remove_stale_temps(&a->paths);
			store_unlock(fd);
		}
	}
	if (rc == 0)
		rc = creds_new(daemon_loop(d), &a->paths, &creds, authd_on_creds_changed, a, &a->creds);
	if (rc == 0)
		rc = login_new(daemon_loop(d), a->creds, &login, authd_on_login_completed, a, &a->login);
	return rc;
}

static int authd_setup(Daemon *d, void *ctx)
{
	Authd *a = ctx;
	a->daemon = d;
	/* authd reads and writes files owned by the service user and talks to the issuer over the
	 * network: neither needs a capability. libcurl is loaded by the first request (http.c). */
	int rc = daemon_drop_privileges("authd");
	if (rc == 0)
		rc = authd_start(a, d);
	return rc;
}

static void authd_teardown(Daemon *d, void *ctx)
{
	Authd *a = ctx;
	login_stop(a->login);
	creds_stop(a->creds);
	a->login = NULL;
	a->creds = NULL;
}

static const DaemonMethod authd_methods[] = {
	{ "auth.status", 256, authd_status },
	{ "auth.token", 64, authd_token },
	{ "auth.recover", 80 * 1024, authd_recover },
	{ "auth.login.start", 8192, authd_login_start },
	{ "auth.login.cancel", 512, authd_login_cancel },
	{ "auth.logout", 64, authd_logout },
	{ "conn.closed", 64, authd_conn_closed },
};

/* Beyond the common base: the store's lock and atomic replace (temp file, fsync, rename), the
 * browser login's loopback callback server, and name resolution for the issuer. */
static const char *const authd_syscalls[] = { "flock",	 "fchmod",   "fsync",	 "fdatasync", "rename",
					      "renameat", "renameat2", "unlink",	 "unlinkat",  "mkdir",
					      "mkdirat",  "bind",	 "listen",	 "accept",    "accept4",
					      /* glibc's resolver asks A and AAAA at once */
					      "sendmmsg", "recvmmsg" };

static const DaemonSpec authd_spec = {
	.name = "authd",
	.summary = "holds the credentials (auth.json, token refresh, login flows)",
	.methods = authd_methods,
	.method_count = sizeof(authd_methods) / sizeof(authd_methods[0]),
	.ctx = &authd,
	.health_fields = authd_health,
	.health_field_count = 3,
	.setup = authd_setup,
	.teardown = authd_teardown,
	.adopt_config = authd_adopt_config,
	.seccomp = { authd_syscalls, sizeof(authd_syscalls) / sizeof(authd_syscalls[0]), true, false },
};

int main(int argc, char **argv)
{
	return daemon_main(&authd_spec, argc, argv);
}
