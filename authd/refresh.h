/* SPDX-License-Identifier: MIT */
/* refresh.h - one token request to the issuer, its classification, and the rewrite of auth.json. */
#ifndef AUTHD_REFRESH_H
#define AUTHD_REFRESH_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

typedef enum RefreshOutcome {
	REFRESH_REFRESHED,	 /* new tokens were stored */
	REFRESH_ADOPTED,	 /* the store already held newer tokens: no request was made */
	REFRESH_ACCOUNT_CHANGED, /* logged out or another account on disk: permanent */
	REFRESH_PERMANENT,	 /* 401 or refresh_token_expired|reused|invalidated */
	REFRESH_TRANSIENT,	 /* 5xx, other statuses, the network, an unreadable answer */
	REFRESH_CANCELLED,
	REFRESH_STORE_ERROR, /* the file could not be read, locked or written */
} RefreshOutcome;

/* Why a permanent failure happened, as the reference words it to the user. */
typedef enum RefreshReason {
	REFRESH_REASON_EXPIRED,
	REFRESH_REASON_EXHAUSTED, /* refresh_token_reused */
	REFRESH_REASON_REVOKED,	  /* refresh_token_invalidated */
	REFRESH_REASON_OTHER,	  /* any other 401 */
} RefreshReason;

/** refresh_message() - the reference's message for a permanent failure or account change. */
const char *refresh_message(RefreshOutcome outcome);
/** refresh_reason_message() - the reference's message for a permanent failure's @reason. */
const char *refresh_reason_message(RefreshReason reason);

/** refresh_same_account() - whether two account ids (NULL: none) are the same account. */
bool refresh_same_account(const char *a, const char *b);

/**
 * refresh_classify() - sort the issuer's answer (@status, @body) into permanent or transient, and
 * word it in @message as the reference does ("Failed to refresh token: 500: ..." for transient).
 * Return: REFRESH_PERMANENT or REFRESH_TRANSIENT (never called for a 2xx).
 */
RefreshOutcome refresh_classify(long status, const char *body, char *message, size_t message_len);

/**
 * refresh_request_body() - the token request's JSON body for @refresh_token, with the reference's
 * refresh_reason ("forced", "proactive_expiry", "scheduled", "unauthorized_recovery").
 * Return: malloc'd text.
 */
char *refresh_request_body(const char *client_id, const char *reason, const char *refresh_token);

/**
 * refresh_apply() - the issuer's 2xx @body merged into a copy of @snap's document (present tokens
 * replace stored ones, last_refresh = @now_ns). Return: the new document, or NULL with @message set.
 */
json_t *refresh_apply(const AuthSnapshot *snap, const char *body, long long now_ns, char *message,
		      size_t message_len);

/**
 * refresh_endpoint() - where @snap's refresh goes: the issuer and client id its login recorded in
 * tokens.oauth_provenance (as 0.169 does) when @may_follow_provenance, else @url and @client_id.
 */
void refresh_endpoint(const AuthSnapshot *snap, const char *url, const char *client_id, bool may_follow_provenance,
		      char *url_out, size_t url_len, char *client_out, size_t client_len);

/**
 * refresh_run() - POST the refresh to @url and, on success, write the new tokens to the store
 * (the caller holds the store's lock and has checked @snap is what is on disk).
 */
void refresh_run(const AuthSnapshot *snap, const StorePaths *paths, const char *url, const char *client_id,
		 const char *reason, int timeout_ms, const volatile bool *cancel, RefreshOutcome *outcome, char *message,
		 size_t message_len);

#endif
