/* SPDX-License-Identifier: MIT */
/* login.h - the ChatGPT sign-in flows (browser with PKCE and a loopback callback, device code), revoke. */
#ifndef AUTHD_LOGIN_H
#define AUTHD_LOGIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "creds.h"

typedef struct LoginOptions {
	char issuer[1024]; /* https://auth.openai.com; authorize, token, device code, revoke live under it */
	char token_url[2048];  /* the code exchange's token endpoint: <issuer>/oauth/token */
	char revoke_url[2048]; /* logout's revoke endpoint: <issuer>/oauth/revoke unless overridden */
	char client_id[128];
	int port;	      /* the browser flow's callback port (1455); 0 = any free port */
	int timeout_s;	      /* the browser flow gives up after this (600) */
	int device_timeout_s; /* the device-code flow gives up after this (900) */
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

/* -------------------------------------------------------------------------------------------
 * The flows' pure pieces, exposed for login_test.c */

#define LOGIN_ID_LEN 36	       /* a UUID v4 in its hyphenated form */
#define LOGIN_CHALLENGE_LEN 43 /* base64url of a SHA-256 digest, unpadded */

/** login_pkce_challenge() - the S256 code_challenge of @verifier: base64url(SHA-256(@verifier)),
 * unpadded, into @out (room for LOGIN_CHALLENGE_LEN + 1). Return: 0, or -EIO. */
int login_pkce_challenge(const char *verifier, char *out, size_t out_len);

/** login_authorize_url() - <issuer>/oauth/authorize with the reference's parameters, in its order,
 * each percent-encoded. Return: malloc'd text, or NULL. */
char *login_authorize_url(const char *issuer, const char *client_id, const char *redirect_uri,
			  const char *challenge, const char *state, const char *originator);

/* The request line of a callback request: pointers into the head it was parsed from. */
typedef struct LoginRequest {
	const char *path;
	size_t path_len;
	const char *query; /* after '?', without it; empty when there is none */
	size_t query_len;
} LoginRequest;

/** login_parse_request() - the request line of @head ("GET /path?query HTTP/1.1\r\n...").
 * Return: 0; -EOPNOTSUPP for a well-formed request that is not GET; -EINVAL otherwise. */
int login_parse_request(const char *head, size_t len, LoginRequest *out);

/** login_query_param() - the value of the last @key in @query (@len bytes, no '?'), decoded as a
 * form decodes it ('+' is a space, %XX a byte), into @out. Return: 1 when present, 0 when absent,
 * -EINVAL for a broken escape or an encoded NUL, -ENOBUFS when it does not fit. */
int login_query_param(const char *query, size_t len, const char *key, char *out, size_t out_len);

/* The issuer's answer to a device-code request. */
typedef struct LoginDeviceCode {
	char *device_auth_id;
	char *user_code;
	unsigned interval_s; /* 0 when the issuer gave none */
} LoginDeviceCode;

/** login_parse_device_code() - @body of /deviceauth/usercode: device_auth_id, user_code (or
 * usercode), interval as a string or a number. Return: 0 (login_device_code_clear() it), or
 * -EINVAL with the reason in @err. */
int login_parse_device_code(const char *body, LoginDeviceCode *out, char *err, size_t err_len);

/** login_device_code_clear() - free what login_parse_device_code() filled in. NULL-safe. */
void login_device_code_clear(LoginDeviceCode *code);

/** login_callback_error_message() - the reference's words for a callback's error=@code with an
 * optional error_description @description. */
void login_callback_error_message(const char *code, const char *description, char *out, size_t out_len);

/** login_token_error_detail() - what a failed code exchange's @body says, as the reference
 * picks it: error_description, error.message, the error code, else the body itself. */
void login_token_error_detail(const char *body, char *out, size_t out_len);

/** login_status_text() - "400 Bad Request": an HTTP status as the reference prints one. */
void login_status_text(long status, char *out, size_t out_len);

#endif
