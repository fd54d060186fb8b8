/* SPDX-License-Identifier: MIT */
/* store.h - $CODEX_HOME/auth.json: the reference's format, its lock, atomic writes, token claims. */
#ifndef AUTHD_STORE_H
#define AUTHD_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Largest auth.json read; the reference's files are a few kilobytes. */
#define STORE_MAX_FILE_BYTES (1024u * 1024u)

typedef enum AuthMode {
	AUTH_MODE_NONE = 0,
	AUTH_MODE_APIKEY,
	AUTH_MODE_CHATGPT,
	AUTH_MODE_PERSONAL_ACCESS_TOKEN,
	AUTH_MODE_AGENT_IDENTITY,
} AuthMode;

/*
 * One parsed auth.json. @doc is the file's object as read, so a rewrite keeps fields we do not
 * know; the string fields point into it. @identity is the canonical text of @doc: two snapshots
 * are the same credential exactly when their identities are equal (the reference compares the
 * whole file for ChatGPT auth).
 */
typedef struct AuthSnapshot {
	json_t *doc;
	char *identity;
	AuthMode mode;
	const char *api_key;
	const char *personal_access_token;
	const char *id_token;
	const char *access_token;
	const char *refresh_token;
	const char *account_id; /* tokens.account_id, else the id token's chatgpt_account_id */
	/* From the id token's claims (NULL when absent). */
	char *email;
	char *plan_type; /* the raw chatgpt_plan_type claim */
	char *user_id;
	char *claim_account_id; /* owns account_id when it came from the claims */
	int64_t access_exp_s;	  /* the access token's exp claim; 0 when it has none */
	int64_t last_refresh_s;	  /* last_refresh; 0 when absent or unreadable */
} AuthSnapshot;

/* Where a store lives: the credential file, its lock, and the directory for temp files. */
typedef struct StorePaths {
	char dir[4096];
	char file[4096];
	char lock[4096];
} StorePaths;

/** store_paths() - the paths under @codex_home. Return: 0, or -ENAMETOOLONG. */
int store_paths(const char *codex_home, StorePaths *out);

/**
 * store_load() - read and parse the credential file. A missing file is no credential (mode
 * AUTH_MODE_NONE, 0). A file that is not the reference's format fails with -EINVAL and a message
 * naming the file in @err. @st receives the file's stat when it exists (zeroed otherwise).
 * Return: 0 with *@out filled (store_snapshot_clear() it), or a negative errno.
 */
int store_load(const StorePaths *paths, AuthSnapshot *out, struct stat *st, char *err, size_t err_len);

/**
 * store_snapshot_from_doc() - parse @doc (reference taken) as auth.json content.
 * Return: 0, or -EINVAL with the reason in @err.
 */
int store_snapshot_from_doc(json_t *doc, AuthSnapshot *out, char *err, size_t err_len);

/** store_snapshot_clear() - free what a snapshot holds and zero it. NULL-safe. */
void store_snapshot_clear(AuthSnapshot *snap);

/** store_snapshot_copy() - a deep copy of @src into @dst. Return: 0 or -ENOMEM. */
int store_snapshot_copy(const AuthSnapshot *src, AuthSnapshot *dst);

/** store_snapshot_equal() - whether two snapshots are the same credential. */
bool store_snapshot_equal(const AuthSnapshot *a, const AuthSnapshot *b);

/**
 * store_write() - replace the credential file with @doc, atomically: a 0600 temp file in the same
 * directory, written, fsync'd, renamed over the file, and the directory fsync'd. A reader sees the
 * old file or the new one, never a part. Call with the lock held.
 * Return: 0 or a negative errno.
 */
int store_write(const StorePaths *paths, json_t *doc);

/** store_remove() - delete the credential file (absent is fine); lock held. Return: 0 or -errno. */
int store_remove(const StorePaths *paths);

/**
 * store_lock() - take the advisory lock on the store (flock(2) LOCK_EX on auth.json.lock, the
 * lock every process sharing the CODEX_HOME takes around read → token request → write). Waits at
 * most @timeout_ms, returning early with -ECANCELED when *@cancel becomes true.
 * Return: the lock's file descriptor (give it to store_unlock()), or a negative errno.
 */
int store_lock(const StorePaths *paths, int timeout_ms, const volatile bool *cancel);

/** store_unlock() - release and close the lock. */
void store_unlock(int fd);

/** store_remove_stale_temps() - delete temp files a killed writer left; lock held. */
void store_remove_stale_temps(const StorePaths *paths);

/** store_mode_name() - the wire name of @mode ("apikey", "chatgpt", ...), or NULL for none. */
const char *store_mode_name(AuthMode mode);

/** store_format_time() - @ns (Unix nanoseconds) as the reference's RFC 3339 UTC text. */
void store_format_time(int64_t ns, char *out, size_t out_len);

/** store_parse_time() - RFC 3339 text to Unix seconds. Return: 0, or -EINVAL. */
int store_parse_time(const char *text, int64_t *out_s);

/**
 * store_jwt_claims() - the payload of a JWT as a JSON object (signature not checked: the token
 * came from our own issuer over TLS, and is only read for display and expiry). Return it, or NULL.
 */
json_t *store_jwt_claims(const char *jwt);

#endif
