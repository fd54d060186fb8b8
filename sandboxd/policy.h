/* SPDX-License-Identifier: MIT */
/* policy.h - sandbox policies (request JSON and config profiles) resolved to absolute-path rules. */
#ifndef SANDBOXD_POLICY_H
#define SANDBOXD_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum Access { ACCESS_READ, ACCESS_WRITE, ACCESS_DENY } Access;

/* One filesystem rule, its path absolute and lexically normal (symlinks not yet resolved). */
typedef struct PolicyRule {
	char *path;
	Access access;
	bool is_protected; /* implied .git/.codex/.agents under a writable root, not written by the user */
} PolicyRule;

/* A deny glob: what it matches under @base when a plan is made is denied. */
typedef struct PolicyGlob {
	char *base;    /* absolute, normal: the glob's leading components without wildcards */
	char *pattern; /* the rest, relative to @base: "**", then "*.env", say */
} PolicyGlob;

typedef struct Policy {
	bool is_unrestricted; /* dangerFullAccess: no filesystem rules at all */
	bool is_network_enabled;
	PolicyRule *rules;
	size_t rule_count;
	size_t rule_capacity;
	PolicyGlob *globs;
	size_t glob_count;
	size_t glob_capacity;
	int glob_max_depth; /* glob_scan_max_depth; 0: unset */
} Policy;

/* What the special tokens (":cwd", ":tmpdir", ...) stand for in one request. */
typedef struct PolicyContext {
	const char *cwd;    /* absolute, normal: :cwd, :project_roots, :workspace_roots, relative paths */
	const char *tmpdir; /* $TMPDIR of the command, or NULL */
	const char *home;   /* for "~" in config paths, or NULL */
} PolicyContext;

void policy_init(Policy *policy);
void policy_free(Policy *policy);

/**
 * policy_add() - add a rule for @path (absolute, or relative to the context's cwd). When a rule
 * for the same path exists, deny beats write beats read (codex's tie rule).
 * Return: 0, -ENOMEM, or -EINVAL for a path that cannot be normalised.
 */
int policy_add(Policy *policy, const PolicyContext *pc, const char *path, Access access);

/**
 * policy_add_glob() - a glob rule for @pattern (absolute, or relative to the context's cwd).
 * Globs can only deny; a whole subtree ("<path>" then "/" and "**") is the same as <path> for any access.
 * Return: 0, -ENOMEM, or -EINVAL (with @err) for another glob that reads or writes.
 */
int policy_add_glob(Policy *policy, const PolicyContext *pc, const char *pattern, Access access, char *err,
		    size_t err_len);

/**
 * policy_from_json() - parse a request's policy: the app-server's SandboxPolicy
 * ({"type":"readOnly"|"workspaceWrite"|"dangerFullAccess"|"externalSandbox", ...}) or a
 * FileSystemSandboxPolicy ({"kind":"restricted","entries":[...]}, with an optional
 * "network":"restricted"|"enabled").
 * Return: 0, or -EINVAL with a message in @err naming the offending field.
 */
int policy_from_json(Policy *policy, const PolicyContext *pc, const json_t *json, char *err, size_t err_len);

/**
 * policy_from_profile() - a built-in profile (":read-only", ":workspace", ":danger-full-access")
 * or [permissions.<name>] of @config_root (the whole config.toml tree), following "extends".
 * Return: 0, -ENOENT for an unknown profile, -EINVAL for a malformed one (@err says where).
 */
int policy_from_profile(Policy *policy, const PolicyContext *pc, const json_t *config_root, const char *name,
			char *err, size_t err_len);

/** policy_fail() - format a refusal into @err. Return: -EINVAL, for `return policy_fail(...)`. */
int policy_fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** policy_access_name() - "read", "write" or "none". */
const char *policy_access_name(Access access);

#endif
