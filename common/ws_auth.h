/* SPDX-License-Identifier: MIT */
/* ws_auth.h - websocket client credentials checked at the HTTP upgrade (capability token, HS256 JWT). */
#ifndef AGENTD_WS_AUTH_H
#define AGENTD_WS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What the reference's `--ws-auth` family does, shared by every websocket listener we run
 * (execd's exec-server, agentd's front door). Configuration reads the secret files once; the
 * capability token is kept only as its SHA-256 digest. A check needs no allocation beyond the
 * JWT's decoded parts and never logs or returns the credential.
 */

typedef enum WsAuthMode {
	WS_AUTH_NONE = 0,
	WS_AUTH_CAPABILITY_TOKEN,
	WS_AUTH_SIGNED_BEARER_TOKEN,
} WsAuthMode;

/* The signed-bearer-token secret's minimum length, after trimming. */
#define WS_AUTH_MIN_SECRET_BYTES 32u
/* The default of --ws-max-clock-skew-seconds. */
#define WS_AUTH_DEFAULT_CLOCK_SKEW_S 30
/* Largest secret file read (tokens and shared secrets are short). */
#define WS_AUTH_MAX_SECRET_FILE_BYTES (64u * 1024u)
/* Largest Authorization header value looked at (ws.h keeps at most 4095 bytes). */
#define WS_AUTH_MAX_HEADER_BYTES 4096u

/* The command-line values as given: NULL when the flag is absent. */
typedef struct WsAuthOptions {
	const char *mode;		/* --ws-auth */
	const char *token_file;		/* --ws-token-file */
	const char *token_sha256;	/* --ws-token-sha256 */
	const char *shared_secret_file; /* --ws-shared-secret-file */
	const char *issuer;		/* --ws-issuer */
	const char *audience;		/* --ws-audience */
	const char *max_clock_skew_s;	/* --ws-max-clock-skew-seconds */
	/* agentd (as codex app-server) wants absolute paths; the exec-server resolves relative ones. */
	bool requires_absolute_paths;
} WsAuthOptions;

typedef struct WsAuth {
	WsAuthMode mode;
	uint8_t token_digest[32]; /* capability token: SHA-256 of the token */
	uint8_t *secret;	  /* signed bearer: the shared secret (wiped on clear) */
	size_t secret_len;
	char *issuer; /* NULL: not checked */
	char *audience;
	int64_t max_clock_skew_s;
} WsAuth;

/**
 * ws_auth_configure() - validate @opts and load the secrets, as the reference does at start-up.
 * @err receives the reference's message on failure ("`--ws-token-file` or `--ws-token-sha256`
 * is required when `--ws-auth capability-token` is set", "signed websocket bearer secret P must
 * be at least 32 bytes", ...). Without any flag the result is WS_AUTH_NONE.
 * Return: 0 with *@out filled (ws_auth_clear() it), or -EINVAL.
 */
int ws_auth_configure(const WsAuthOptions *opts, WsAuth *out, char *err, size_t err_len);

/** ws_auth_clear() - wipe and free what ws_auth_configure() loaded. NULL-safe, idempotent. */
void ws_auth_clear(WsAuth *auth);

/**
 * ws_auth_check() - decide an upgrade request.
 * @authorization: the Authorization header's value (trimmed), or NULL when there is none.
 * @now_s: the current Unix time in seconds.
 * Return: NULL when the request may upgrade, else the plain-text reason for the HTTP 401
 * ("missing websocket bearer token", "invalid authorization header", "invalid websocket bearer
 * token", "invalid websocket jwt", "expired websocket jwt", "websocket jwt is not valid yet",
 * "websocket jwt issuer mismatch", "websocket jwt audience mismatch").
 */
const char *ws_auth_check(const WsAuth *auth, const char *authorization, int64_t now_s);

/** ws_auth_is_loopback() - whether the numeric IPv4/IPv6 address @host is a loopback address. */
bool ws_auth_is_loopback(const char *host);

/**
 * ws_auth_check_listener() - refuse a non-loopback listener without an auth mode. @addr is the
 * listen address as the operator wrote it (e.g. "0.0.0.0:8080").
 * Return: 0, or -EACCES with the reference's refusal in @err.
 */
int ws_auth_check_listener(const WsAuth *auth, const char *host, const char *addr, char *err, size_t err_len);

#endif
