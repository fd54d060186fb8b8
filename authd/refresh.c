/* SPDX-License-Identifier: MIT */
/* refresh.c - the refresh-token grant against the issuer, classified as the reference does (§6.2). */
#include "refresh.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"

#define REFRESH_DETAIL_MAX 200

static const char REFRESH_ACCOUNT_CHANGED_MESSAGE[] =
	"Your access token could not be refreshed because you have since logged out or signed in to "
	"another account. Please sign in again.";

const char *refresh_reason_message(RefreshReason reason)
{
	switch (reason) {
	case REFRESH_REASON_EXPIRED:
		return "Your access token could not be refreshed because your refresh token has expired. "
		       "Please log out and sign in again.";
	case REFRESH_REASON_EXHAUSTED:
		return "Your access token could not be refreshed because your refresh token was already "
		       "used. Please log out and sign in again.";
	case REFRESH_REASON_REVOKED:
		return "Your access token could not be refreshed because your refresh token was revoked. "
		       "Please log out and sign in again.";
	case REFRESH_REASON_OTHER:
		break;
	}
	return "Your access token could not be refreshed. Please log out and sign in again.";
}

const char *refresh_message(RefreshOutcome outcome)
{
	return outcome == REFRESH_ACCOUNT_CHANGED ? REFRESH_ACCOUNT_CHANGED_MESSAGE
						  : refresh_reason_message(REFRESH_REASON_OTHER);
}

bool refresh_same_account(const char *a, const char *b)
{
	if (!a || !b)
		return !a && !b;
	return strcmp(a, b) == 0;
}

/* The error code of an OAuth error body: error.code, error (a string), or code. */
static const char *refresh_error_code(json_t *body)
{
	json_t *error = json_object_get(body, "error");
	if (json_is_object(error) && json_is_string(json_object_get(error, "code")))
		return json_string_value(json_object_get(error, "code"));
	if (json_is_string(error))
		return json_string_value(error);
	return json_string_value(json_object_get(body, "code"));
}

/* What to quote of an error body: its message when it has one, else the text itself, bounded. */
static void refresh_error_detail(json_t *parsed, const char *body, char *out, size_t out_len)
{
	json_t *error = json_object_get(parsed, "error");
	const char *text = json_string_value(json_object_get(error, "message"));
	if (!text)
		text = json_string_value(json_object_get(parsed, "error_description"));
	if (!text)
		text = json_string_value(json_object_get(parsed, "message"));
	if (!text)
		text = body ? body : "";
	snprintf(out, out_len, "%.*s", REFRESH_DETAIL_MAX, text);
	for (char *p = out; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
}

RefreshOutcome refresh_classify(long status, const char *body, char *message, size_t message_len)
{
	json_t *parsed = body ? json_loads(body, 0, NULL) : NULL;
	const char *code = json_is_object(parsed) ? refresh_error_code(parsed) : NULL;
	RefreshOutcome outcome = REFRESH_TRANSIENT;
	RefreshReason reason = REFRESH_REASON_OTHER;
	if (code && strcasecmp(code, "refresh_token_expired") == 0)
		reason = REFRESH_REASON_EXPIRED;
	else if (code && strcasecmp(code, "refresh_token_reused") == 0)
		reason = REFRESH_REASON_EXHAUSTED;
	else if (code && strcasecmp(code, "refresh_token_invalidated") == 0)
		reason = REFRESH_REASON_REVOKED;
	if (status == 401 || reason != REFRESH_REASON_OTHER) {
		outcome = REFRESH_PERMANENT;
		snprintf(message, message_len, "%s", refresh_reason_message(reason));
	} else {
		char detail[REFRESH_DETAIL_MAX + 1];
		refresh_error_detail(parsed, body, detail, sizeof(detail));
		snprintf(message, message_len, "Failed to refresh token: %ld: %s", status, detail);
	}
	json_decref(parsed);
	return outcome;
}

char *refresh_request_body(const char *client_id, const char *reason, const char *refresh_token)
{
	json_t *body = json_pack("{s:s,s:s,s:s,s:s}", "client_id", client_id, "grant_type", "refresh_token",
				 "refresh_reason", reason, "refresh_token", refresh_token);
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(body);
	return text;
}

/* A token field of the answer: absent/null keeps the stored one, a string replaces it. */
static int refresh_take_token(json_t *answer, json_t *tokens, const char *key)
{
	json_t *value = json_object_get(answer, key);
	if (!value || json_is_null(value))
		return 0;
	if (!json_is_string(value))
		return -EINVAL;
	return json_object_set(tokens, key, value);
}

json_t *refresh_apply(const AuthSnapshot *snap, const char *body, long long now_ns, char *message,
		      size_t message_len)
{
	json_error_t jerr;
	json_t *answer = json_loads(body, 0, &jerr);
	if (!json_is_object(answer)) {
		snprintf(message, message_len, "Failed to refresh token: invalid response: %s",
			 answer ? "not a JSON object" : jerr.text);
		json_decref(answer);
		return NULL;
	}
	json_t *doc = json_deep_copy(snap->doc);
	json_t *tokens = doc ? json_object_get(doc, "tokens") : NULL;
	char when[64];
	store_format_time(now_ns, when, sizeof(when));
	if (!json_is_object(tokens) || refresh_take_token(answer, tokens, "id_token") < 0 ||
	    refresh_take_token(answer, tokens, "access_token") < 0 ||
	    refresh_take_token(answer, tokens, "refresh_token") < 0 ||
	    json_object_set_new(doc, "last_refresh", json_string(when)) < 0) {
		snprintf(message, message_len, "Failed to refresh token: invalid response: bad token fields");
		json_decref(doc);
		doc = NULL;
	}
	json_decref(answer);
	return doc;
}

void refresh_endpoint(const AuthSnapshot *snap, const char *url, const char *client_id, bool may_follow_provenance,
		      char *url_out, size_t url_len, char *client_out, size_t client_len)
{
	json_t *provenance = json_object_get(json_object_get(snap->doc, "tokens"), "oauth_provenance");
	const char *issuer = json_string_value(json_object_get(provenance, "issuer"));
	const char *client = json_string_value(json_object_get(provenance, "client_id"));
	bool is_web = issuer && (strncmp(issuer, "https://", 8) == 0 || strncmp(issuer, "http://", 7) == 0);
	if (may_follow_provenance && is_web && strlen(issuer) + 16 < url_len) {
		size_t len = strlen(issuer);
		while (len > 0 && issuer[len - 1] == '/')
			len--;
		snprintf(url_out, url_len, "%.*s/oauth/token", (int)len, issuer);
		snprintf(client_out, client_len, "%s", client && *client ? client : client_id);
		return;
	}
	snprintf(url_out, url_len, "%s", url);
	snprintf(client_out, client_len, "%s", client_id);
}

static long long refresh_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Another writer that ignores our lock may have rotated the token while we asked: if the file
 * changed, its tokens are the current ones, and our "reused" answer is no verdict on them. */
static bool refresh_disk_changed(const StorePaths *paths, const AuthSnapshot *snap)
{
	AuthSnapshot disk;
	struct stat st;
	char err[64];
	if (store_load(paths, &disk, &st, err, sizeof(err)) < 0)
		return false;
	bool changed = !store_snapshot_equal(&disk, snap);
	store_snapshot_clear(&disk);
	return changed;
}

static void refresh_store(const AuthSnapshot *snap, const StorePaths *paths, const HttpResponse *resp,
			  RefreshOutcome *outcome, char *message, size_t message_len)
{
	json_t *doc = refresh_apply(snap, resp->body, refresh_now_ns(), message, message_len);
	if (!doc) {
		*outcome = REFRESH_TRANSIENT;
		return;
	}
	int rc = store_write(paths, doc);
	json_decref(doc);
	if (rc < 0) {
		/* The old refresh token is spent: say so loudly, the user will have to sign in again. */
		*outcome = REFRESH_STORE_ERROR;
		snprintf(message, message_len, "refreshed tokens could not be written to %s: %s", paths->file,
			 strerror(-rc));
		return;
	}
	*outcome = REFRESH_REFRESHED;
}

void refresh_run(const AuthSnapshot *snap, const StorePaths *paths, const char *url, const char *client_id,
		 const char *reason, int timeout_ms, const volatile bool *cancel, RefreshOutcome *outcome,
		 char *message, size_t message_len)
{
	char *body = refresh_request_body(client_id, reason, snap->refresh_token);
	HttpResponse resp;
	if (!body) {
		*outcome = REFRESH_TRANSIENT;
		snprintf(message, message_len, "Failed to refresh token: out of memory");
		return;
	}
	int rc = http_request("POST", url, "application/json", body, strlen(body), timeout_ms, cancel, &resp);
	free(body);
	if (rc == -ECANCELED) {
		*outcome = REFRESH_CANCELLED;
		return;
	}
	if (rc < 0) {
		*outcome = REFRESH_TRANSIENT;
		snprintf(message, message_len, "Failed to refresh token: %s",
			 rc == -ETIMEDOUT ? "the token endpoint did not answer in time" : resp.error);
		return;
	}
	if (resp.status >= 200 && resp.status < 300)
		refresh_store(snap, paths, &resp, outcome, message, message_len);
	else
		*outcome = refresh_classify(resp.status, resp.body, message, message_len);
	if (*outcome == REFRESH_PERMANENT && refresh_disk_changed(paths, snap))
		*outcome = REFRESH_ADOPTED;
	http_response_clear(&resp);
}
