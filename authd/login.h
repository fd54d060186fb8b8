/* SPDX-License-Identifier: MIT */
/* login.h - the ChatGPT sign-in flows (browser with PKCE and a loopback callback, device code), revoke. */
#ifndef AUTHD_LOGIN_H
#define AUTHD_LOGIN_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "creds.h"

typedef struct LoginOptions {
	char issuer[1024];    /* https://auth.openai.com; authorize, token, device code, revoke live under it */
	char token_url[2048]; /* the code exchange's token endpoint: <issuer>/oauth/token */
	char revoke_url[2048]; /* logout's revoke endpoint: <issuer>/oauth/revoke unless overridden */
	char client_id[128];
	int port;	       /* the browser flow's callback port (1455); 0 = any free port */
	int timeout_s;	       /* the browser flow gives up after this (600) */
	int device_timeout_s;  /* the device-code flow gives up after this (900) */
	int request_timeout_ms;
} LoginOptions;

typedef struct Login Login;

/*
 * A login attempt ended: @login_id is the attempt's id, @error NULL on success. On success the
 * credential is already stored (through creds_replace()).
 */
typedef void (*LoginCompletedFn)(void *ctx, const char *login_id, bool success, const char *error);

/*
 * The answer to login_start(): @status 0 with @result the client's LoginAccountResponse shape
 * ({"type":"chatgpt","loginId","authUrl"} or {"type":"chatgptDeviceCode","loginId",
 * "verificationUrl","userCode"}; borrowed for the call), or a negative errno with @message.
 */
typedef void (*LoginStartedFn)(void *ctx, int status, json_t *result, const char *message);

/** login_new() - the login state; nothing runs until login_start(). Return: 0 and *@out, or -ENOMEM. */
int login_new(uv_loop_t *loop, Creds *creds, const LoginOptions *opts, LoginCompletedFn on_completed,
	      void *ctx, Login **out);

/** login_set_options() - options for the next attempt (SIGHUP). */
void login_set_options(Login *login, const LoginOptions *opts);

/**
 * login_start() - cancel the active attempt (it completes with success false) and start a new one
 * of @type, "chatgpt" or "chatgptDeviceCode". @originator goes into the authorize URL. @started
 * runs exactly once.
 */
void login_start(Login *login, const char *type, const char *originator, LoginStartedFn started, void *ctx);

/** login_cancel() - cancel the attempt @login_id. Return: true when it was the active one. */
bool login_cancel(Login *login, const char *login_id);

/** login_cancel_active() - cancel whatever attempt is active (a new login, logout, shutdown);
 * its port is closed before this returns. */
void login_cancel_active(Login *login);

/** login_revoke() - tell the issuer to revoke @snap's tokens; best effort, in the background. */
void login_revoke(Login *login, const AuthSnapshot *snap);

/** login_stop() - cancel everything; freed once its handles and workers are done. */
void login_stop(Login *login);

#endif
