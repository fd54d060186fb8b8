/* SPDX-License-Identifier: MIT */
/* creds.h - the credential state of one CODEX_HOME: cached snapshot, single-flight refresh, poison. */
#ifndef AUTHD_CREDS_H
#define AUTHD_CREDS_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store.h"

/* A refresh is due when the access token expires within this, as the reference decides. */
#define CREDS_EXPIRY_WINDOW_S (5 * 60)
/* ... or, for a token without exp, when the last refresh is older than this. */
#define CREDS_MAX_TOKEN_AGE_S (8 * 24 * 3600)

typedef struct CredsOptions {
	char refresh_url[2048]; /* the issuer's token endpoint */
	bool is_refresh_url_default; /* not overridden: a login's oauth_provenance may name another */
	char client_id[128];
	int request_timeout_ms;
	int lock_timeout_ms;
	int refresh_attempts;	  /* tries per refresh for transient failures */
	int retry_base_ms;	  /* backoff before the second try; doubles after */
	int background_retry_max_ms; /* cap of the background timer's backoff */
	int coalesce_s;		  /* a requested refresh of a token refreshed this recently is answered at once */
	bool background_refresh;  /* refresh due tokens on authd's own timer */
} CredsOptions;

/* Why a refresh is asked for: each decides differently whether the network is needed. */
typedef enum CredsWhy {
	CREDS_REFRESH_REQUESTED,    /* a client asked (refreshToken: true) */
	CREDS_REFRESH_DUE,	    /* a getter found the token near expiry */
	CREDS_REFRESH_UNAUTHORIZED, /* the model API refused the token: always try once */
} CredsWhy;

/* Statuses a refresh ends with (besides 0). */
#define CREDS_ERR_PERMANENT (-EKEYREVOKED) /* poisoned: sign in again */
#define CREDS_ERR_TRANSIENT (-EAGAIN)
#define CREDS_ERR_STORE (-EIO) /* the credential file cannot be read, locked or written */

typedef struct Creds Creds;

/* The end of an asynchronous call: @status 0 or a CREDS_ERR_*, @message the user-facing reason. */
typedef void (*CredsDoneFn)(void *ctx, int status, const char *message);
/* The cached credential changed (refresh, login, logout, or a new file on disk). */
typedef void (*CredsChangedFn)(void *ctx);

/**
 * creds_new() - the state for @paths, loaded now. Return: 0 and *@out, or a negative errno.
 */
int creds_new(uv_loop_t *loop, const StorePaths *paths, const CredsOptions *opts, CredsChangedFn on_changed,
	      void *ctx, Creds **out);

/** creds_set_options() - new options (SIGHUP); an in-flight refresh finishes with the old ones. */
void creds_set_options(Creds *c, const CredsOptions *opts);

/**
 * creds_stop() - cancel what is in flight (waiters get -ECANCELED) and stop the timers; the state
 * is freed once the worker threads are done (the loop must run for that).
 */
void creds_stop(Creds *c);

/**
 * creds_sync() - pick up a credential file changed on disk (compared by inode, size and mtime).
 * Return: 0, or the load error (creds_load_error() says it) when the file is corrupt.
 */
int creds_sync(Creds *c);

/** creds_current() - the cached snapshot (mode AUTH_MODE_NONE when there is none). */
const AuthSnapshot *creds_current(const Creds *c);
/** creds_load_error() - why the file on disk could not be used, or NULL. */
const char *creds_load_error(const Creds *c);
/** creds_poison() - the permanent failure recorded for the current snapshot, or NULL. */
const char *creds_poison(const Creds *c);
/** creds_is_due() - whether the current token should be refreshed before use. */
bool creds_is_due(const Creds *c, int64_t now_s);

/**
 * creds_refresh() - make the token fresh. Joins the refresh in flight when there is one (every
 * waiter gets its result); answers at once from the poison, or when there is nothing to refresh
 * (API key, no credential). @fn runs exactly once, maybe before this returns.
 */
void creds_refresh(Creds *c, CredsWhy why, CredsDoneFn fn, void *ctx);

/**
 * creds_replace() - store @doc (reference taken; NULL deletes the credential) under the lock, then
 * adopt it: logins and logout. @fn runs exactly once.
 */
void creds_replace(Creds *c, json_t *doc, CredsDoneFn fn, void *ctx);

/** creds_refresh_calls() - token requests sent by this process (for health and tests). */
uint64_t creds_refresh_calls(const Creds *c);

#endif
