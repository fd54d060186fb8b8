/* SPDX-License-Identifier: MIT */
/*
 * turn_auth.c - what a sampling request needs besides its body: the bearer token (authd's for
 * providers that require OpenAI auth, else the provider's env_key), the 401 recovery, and what
 * the response tells about usage and rate limits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "log.h"
#include "mp.h"
#include "turn_internal.h"

/* authd's answer to auth.token / auth.recover: {authMode, token, accountId}. */
static void turn_on_token(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	Turn *turn = ctx;
	if (turn->is_finished) {
		turn_release(turn);
		return;
	}
	MpBody parsed;
	bool has_body = mp_body_parse(body, body_len, &parsed) == 0;
	const char *text;
	size_t len;
	if (status != 0) {
		char message[600];
		if (has_body && mp_get_str(parsed.map, "message", 500, &text, &len) == 0)
			snprintf(message, sizeof(message), "%.*s", (int)len, text);
		else if (status == ENVELOPE_STATUS_UNAVAILABLE)
			snprintf(message, sizeof(message), "service authd is unavailable");
		else
			snprintf(message, sizeof(message), "%s", strerror(status < 0 ? -status : EIO));
		if (status == -ENOENT)
			snprintf(message, sizeof(message),
				 "You are not signed in. Sign in with ChatGPT or an API key (account/login/start) to use "
				 "model provider `%s`.",
				 turn->provider->id);
		if (has_body)
			mp_body_free(&parsed);
		turn_fail(turn, message, json_string("unauthorized"), NULL);
		turn_release(turn);
		return;
	}
	turn->bearer[0] = turn->account_id[0] = '\0';
	turn->auth_mode = PROVIDER_AUTH_API_KEY;
	if (has_body && mp_get_str(parsed.map, "token", sizeof(turn->bearer) - 1, &text, &len) == 0) {
		memcpy(turn->bearer, text, len);
		turn->bearer[len] = '\0';
	}
	if (has_body && mp_get_str(parsed.map, "accountId", sizeof(turn->account_id) - 1, &text, &len) == 0) {
		memcpy(turn->account_id, text, len);
		turn->account_id[len] = '\0';
	}
	if (has_body && mp_get_str(parsed.map, "authMode", 32, &text, &len) == 0 && len == 7 &&
	    memcmp(text, "chatgpt", 7) == 0)
		turn->auth_mode = PROVIDER_AUTH_CHATGPT;
	if (has_body)
		mp_body_free(&parsed);
	turn->bearer_is_authd = true;
	turn_send_request(turn);
	turn_release(turn);
}

static void turn_ask_authd(Turn *turn, const char *method)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	if (strcmp(method, "auth.recover") == 0) {
		msgpack_pack_map(&pk, 1);
		mp_pack_kv_str(&pk, "token", turn->bearer);
	} else {
		msgpack_pack_map(&pk, 0);
	}
	turn_hold(turn);
	int rc = broker_call(turn->thread->server->broker, "authd", method, 0, sbuf.data, sbuf.size,
			     BROKER_CALL_TIMEOUT_MS, turn_on_token, turn);
	msgpack_sbuffer_destroy(&sbuf);
	if (rc < 0) {
		turn_release(turn);
		turn_fail(turn, "cannot ask authd for a token", json_string("unauthorized"), NULL);
	}
}

void turn_authenticate(Turn *turn)
{
	const Provider *p = turn->provider;
	turn->bearer_is_authd = false;
	if (p->env_key) {
		const char *key = getenv(p->env_key);
		if (!key || !key[0]) {
			char message[700];
			snprintf(message, sizeof(message), "Missing environment variable: `%s`.%s%s", p->env_key,
				 p->env_key_instructions ? " " : "", p->env_key_instructions ? p->env_key_instructions : "");
			turn_fail(turn, message, json_string("unauthorized"), NULL);
			return;
		}
		snprintf(turn->bearer, sizeof(turn->bearer), "%s", key);
		turn->auth_mode = PROVIDER_AUTH_API_KEY;
		turn_send_request(turn);
		return;
	}
	if (p->requires_openai_auth && turn->thread->server->broker) {
		turn_ask_authd(turn, "auth.token");
		return;
	}
	turn->bearer[0] = '\0';
	turn->auth_mode = PROVIDER_AUTH_API_KEY;
	turn_send_request(turn);
}

void turn_recover_auth(Turn *turn)
{
	turn_ask_authd(turn, "auth.recover");
}

/* --- what the response tells ---------------------------------------------------------------------- */

static json_t *turn_usage_breakdown(int64_t input, int64_t cached, int64_t output, int64_t reasoning, int64_t total)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "totalTokens", (json_int_t)total, "inputTokens", (json_int_t)input,
			 "cachedInputTokens", (json_int_t)cached, "cacheWriteInputTokens", (json_int_t)0, "outputTokens",
			 (json_int_t)output, "reasoningOutputTokens", (json_int_t)reasoning);
}

static int64_t turn_usage_field(const json_t *breakdown, const char *key)
{
	return json_integer_value(json_object_get(breakdown, key));
}

void turn_record_usage(Turn *turn, const RespUsage *usage)
{
	Thread *thread = turn->thread;
	json_t *last = turn_usage_breakdown(usage->input_tokens, usage->cached_tokens, usage->output_tokens,
					    usage->reasoning_tokens, usage->total_tokens);
	const json_t *prev = thread->usage_total;
	json_t *total = turn_usage_breakdown(
		turn_usage_field(prev, "inputTokens") + usage->input_tokens,
		turn_usage_field(prev, "cachedInputTokens") + usage->cached_tokens,
		turn_usage_field(prev, "outputTokens") + usage->output_tokens,
		turn_usage_field(prev, "reasoningOutputTokens") + usage->reasoning_tokens,
		turn_usage_field(prev, "totalTokens") + usage->total_tokens);
	json_decref(thread->usage_total);
	thread->usage_total = total;
	json_decref(turn->last_usage);
	turn->last_usage = json_incref(last);
	turn_notify(turn, "thread/tokenUsage/updated",
		    json_pack("{s:s,s:s,s:{s:O,s:o,s:n}}", "threadId", thread->id, "turnId", turn->id, "tokenUsage",
			      "total", total, "last", last, "modelContextWindow"));
	thread_record(thread, "event_msg",
		      json_pack("{s:s,s:{s:O,s:O}}", "type", "token_count", "info", "total_token_usage", total,
				"last_token_usage", turn->last_usage));
}

/* A rate-limit window from x-codex-<which>-used-percent / -window-minutes / -reset-at, or null. */
static json_t *turn_rate_window(const ModelHeaders *headers, const char *which)
{
	char name[96];
	snprintf(name, sizeof(name), "x-codex-%s-used-percent", which);
	const char *used = model_headers_get(headers, name);
	if (!used)
		return json_null();
	snprintf(name, sizeof(name), "x-codex-%s-window-minutes", which);
	const char *minutes = model_headers_get(headers, name);
	snprintf(name, sizeof(name), "x-codex-%s-reset-at", which);
	const char *reset = model_headers_get(headers, name);
	json_t *w = json_pack("{s:I}", "usedPercent", (json_int_t)strtoll(used, NULL, 10));
	json_object_set_new(w, "windowDurationMins", minutes ? json_integer(strtoll(minutes, NULL, 10)) : json_null());
	json_object_set_new(w, "resetsAt", reset ? json_integer(strtoll(reset, NULL, 10)) : json_null());
	return w;
}

static json_t *turn_header_bool(const ModelHeaders *headers, const char *name)
{
	const char *v = model_headers_get(headers, name);
	if (!v)
		return json_null();
	return json_boolean(strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

void turn_note_rate_limits(Turn *turn, const ModelHeaders *headers)
{
	bool has_any = false;
	for (size_t i = 0; headers && i < headers->count; i++) {
		if (strncasecmp(headers->items[i].name, "x-codex-", 8) == 0)
			has_any = true;
	}
	if (!has_any)
		return;
	json_t *credits = json_null();
	const char *has_credits = model_headers_get(headers, "x-codex-credits-has-credits");
	if (has_credits) {
		const char *balance = model_headers_get(headers, "x-codex-credits-balance");
		credits = json_pack("{s:o,s:o,s:o}", "hasCredits", turn_header_bool(headers, "x-codex-credits-has-credits"),
				    "unlimited", turn_header_bool(headers, "x-codex-credits-unlimited"), "balance",
				    balance ? json_string(balance) : json_null());
	}
	const char *reached = model_headers_get(headers, "x-codex-rate-limit-reached-type");
	json_t *limits = json_pack("{s:s,s:n,s:o,s:o,s:o,s:n}", "limitId", "codex", "limitName", "primary",
				   turn_rate_window(headers, "primary"), "secondary",
				   turn_rate_window(headers, "secondary"), "credits", credits, "planType");
	json_object_set_new(limits, "rateLimitReachedType", reached ? json_string(reached) : json_null());
	turn_notify(turn, "account/rateLimits/updated", json_pack("{s:o}", "rateLimits", limits));
}
