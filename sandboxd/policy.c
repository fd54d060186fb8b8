/* SPDX-License-Identifier: MIT */
/* policy.c - parse SandboxPolicy JSON and config permission profiles into absolute-path rules. */
#include "policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "arena.h"
#include "glob.h"
#include "paths.h"

/* Deepest "extends" chain we follow; longer ones are almost certainly cycles we missed. */
#define PROFILE_MAX_DEPTH 16

static const char *const minimal_read_roots[] = {
	"/bin", "/sbin", "/usr", "/etc", "/lib", "/lib64", "/nix/store", "/run/current-system/sw",
};

int policy_fail(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void policy_init(Policy *policy)
{
	memset(policy, 0, sizeof(*policy));
}

void policy_free(Policy *policy)
{
	if (!policy)
		return;
	for (size_t i = 0; i < policy->rule_count; i++)
		free(policy->rules[i].path);
	free(policy->rules);
	for (size_t i = 0; i < policy->glob_count; i++) {
		free(policy->globs[i].base);
		free(policy->globs[i].pattern);
	}
	free(policy->globs);
	policy_init(policy);
}

const char *policy_access_name(Access access)
{
	switch (access) {
	case ACCESS_READ:
		return "read";
	case ACCESS_WRITE:
		return "write";
	case ACCESS_DENY:
		return "none";
	}
	return "?";
}

/* Codex's tie rule for two rules on one path: deny > write > read. */
static int access_rank(Access access)
{
	return access == ACCESS_DENY ? 2 : access == ACCESS_WRITE ? 1 : 0;
}

static PolicyRule *policy_find(Policy *policy, const char *path)
{
	for (size_t i = 0; i < policy->rule_count; i++)
		if (strcmp(policy->rules[i].path, path) == 0)
			return &policy->rules[i];
	return NULL;
}

/* @replace: a later layer (a profile over the one it extends) overrides instead of tying. */
static int policy_put(Policy *policy, const PolicyContext *pc, const char *path, Access access, bool replace)
{
	char normal[AGENTD_PATH_MAX];
	int rc = path_normalize(pc->cwd, path, normal, sizeof(normal));
	if (rc < 0)
		return rc;
	PolicyRule *existing = policy_find(policy, normal);
	if (existing) {
		if (replace || access_rank(access) > access_rank(existing->access))
			existing->access = access;
		return 0;
	}
	PolicyRule *rules = array_grow(policy->rules, &policy->rule_capacity, policy->rule_count + 1, sizeof(*rules));
	if (!rules)
		return -ENOMEM;
	policy->rules = rules;
	char *copy = strdup(normal);
	if (!copy)
		return -ENOMEM;
	policy->rules[policy->rule_count++] = (PolicyRule){ .path = copy, .access = access };
	return 0;
}

int policy_add(Policy *policy, const PolicyContext *pc, const char *path, Access access)
{
	return policy_put(policy, pc, path, access, false);
}

static int parse_access(const char *text, Access *out)
{
	if (strcmp(text, "read") == 0)
		*out = ACCESS_READ;
	else if (strcmp(text, "write") == 0)
		*out = ACCESS_WRITE;
	else if (strcmp(text, "none") == 0 || strcmp(text, "deny") == 0)
		*out = ACCESS_DENY;
	else
		return -EINVAL;
	return 0;
}

static bool is_project_root_token(const char *token)
{
	return strcmp(token, ":cwd") == 0 || strcmp(token, ":project_roots") == 0 ||
	       strcmp(token, ":workspace_roots") == 0;
}

static bool has_glob_characters(const char *path)
{
	return glob_has_wildcards(path);
}

int policy_add_glob(Policy *policy, const PolicyContext *pc, const char *pattern, Access access, char *err,
		    size_t err_len)
{
	char normal[AGENTD_PATH_MAX];
	if (path_normalize(pc->cwd, pattern, normal, sizeof(normal)) < 0)
		return policy_fail(err, err_len, "bad glob pattern \"%s\"", pattern);
	/* The base: every leading component without a wildcard. */
	size_t base_len = 0;
	for (const char *c = normal + 1; *c;) {
		size_t n = strcspn(c, "/");
		if (memchr(c, '*', n) || memchr(c, '?', n) || memchr(c, '[', n))
			break;
		base_len = (size_t)(c - normal) + n;
		c += n + (c[n] == '/');
	}
	const char *rest = normal + base_len + (normal[base_len] == '/');
	char base[AGENTD_PATH_MAX];
	snprintf(base, sizeof(base), "%.*s", base_len ? (int)base_len : 1, base_len ? normal : "/");
	if (strcmp(rest, "**") == 0)
		return policy_put(policy, pc, base, access, false); /* a whole subtree: just the path */
	if (access != ACCESS_DENY)
		return policy_fail(err, err_len, "glob pattern \"%s\" can only deny (\"none\")", pattern);
	PolicyGlob *globs = array_grow(policy->globs, &policy->glob_capacity, policy->glob_count + 1, sizeof(*globs));
	if (!globs)
		return -ENOMEM;
	policy->globs = globs;
	PolicyGlob g = { strdup(base), strdup(rest) };
	if (!g.base || !g.pattern) {
		free(g.base);
		free(g.pattern);
		return -ENOMEM;
	}
	policy->globs[policy->glob_count++] = g;
	return 0;
}

/* @subpath: relative to the root the token names (scoped tables), or NULL for the root itself. */
static int add_special(Policy *policy, const PolicyContext *pc, const char *token, const char *subpath,
		       Access access, bool replace, char *err, size_t err_len)
{
	char path[AGENTD_PATH_MAX];
	const char *root = NULL;
	if (strcmp(token, ":root") == 0)
		root = "/";
	else if (is_project_root_token(token))
		root = pc->cwd;
	else if (strcmp(token, ":slash_tmp") == 0)
		root = "/tmp";
	else if (strcmp(token, ":tmpdir") == 0) {
		if (!pc->tmpdir || pc->tmpdir[0] != '/')
			return 0; /* no TMPDIR: nothing to grant */
		root = pc->tmpdir;
	} else if (strcmp(token, ":minimal") == 0) {
		struct stat st;
		for (size_t i = 0; i < sizeof(minimal_read_roots) / sizeof(minimal_read_roots[0]); i++)
			if (stat(minimal_read_roots[i], &st) == 0) {
				int rc = policy_put(policy, pc, minimal_read_roots[i], access, replace);
				if (rc < 0)
					return rc;
			}
		return 0;
	} else {
		return 0; /* unknown special: kept for forward compatibility and ignored, as codex does */
	}
	if (subpath && strcmp(subpath, ".") != 0) {
		if (subpath[0] == '/')
			return policy_fail(err, err_len, "subpath \"%s\" under %s must be relative", subpath, token);
		if (path_normalize(root, subpath, path, sizeof(path)) < 0)
			return policy_fail(err, err_len, "bad subpath \"%s\" under %s", subpath, token);
		if (has_glob_characters(subpath))
			return policy_add_glob(policy, pc, path, access, err, err_len);
		root = path;
	}
	int rc = policy_put(policy, pc, root, access, replace);
	return rc == -EINVAL ? policy_fail(err, err_len, "bad path for %s", token) : rc;
}

/* --- request JSON ------------------------------------------------------------------------------ */

static int json_bool_field(const json_t *obj, const char *key, bool fallback, bool *out, char *err,
			   size_t err_len)
{
	const json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		*out = fallback;
		return 0;
	}
	if (!json_is_boolean(v))
		return policy_fail(err, err_len, "sandboxPolicy.%s must be a boolean", key);
	*out = json_is_true(v);
	return 0;
}

static int add_workspace_write(Policy *policy, const PolicyContext *pc, const json_t *json, char *err,
			       size_t err_len)
{
	bool exclude_tmpdir = false, exclude_slash_tmp = false;
	int rc = json_bool_field(json, "excludeTmpdirEnvVar", false, &exclude_tmpdir, err, err_len);
	if (rc == 0)
		rc = json_bool_field(json, "excludeSlashTmp", false, &exclude_slash_tmp, err, err_len);
	if (rc < 0)
		return rc;
	if ((rc = policy_add(policy, pc, "/", ACCESS_READ)) < 0 || (rc = policy_add(policy, pc, pc->cwd, ACCESS_WRITE)) < 0)
		return rc;
	if (!exclude_slash_tmp && (rc = policy_add(policy, pc, "/tmp", ACCESS_WRITE)) < 0)
		return rc;
	if (!exclude_tmpdir && pc->tmpdir && pc->tmpdir[0] == '/' &&
	    (rc = policy_add(policy, pc, pc->tmpdir, ACCESS_WRITE)) < 0)
		return rc;
	const json_t *roots = json_object_get(json, "writableRoots");
	if (roots && !json_is_null(roots) && !json_is_array(roots))
		return policy_fail(err, err_len, "sandboxPolicy.writableRoots must be an array of absolute paths");
	size_t i;
	const json_t *root;
	json_array_foreach(roots, i, root) {
		const char *text = json_string_value(root);
		if (!text || text[0] != '/')
			return policy_fail(err, err_len, "sandboxPolicy.writableRoots[%zu] must be an absolute path", i);
		if ((rc = policy_add(policy, pc, text, ACCESS_WRITE)) < 0)
			return policy_fail(err, err_len, "sandboxPolicy.writableRoots[%zu] is not a usable path", i);
	}
	return 0;
}

static int parse_sandbox_policy(Policy *policy, const PolicyContext *pc, const json_t *json, char *err,
				size_t err_len)
{
	const char *type = json_string_value(json_object_get(json, "type"));
	if (strcmp(type, "dangerFullAccess") == 0) {
		policy->is_unrestricted = true;
		policy->is_network_enabled = true;
		return 0;
	}
	if (strcmp(type, "externalSandbox") == 0) {
		const char *net = json_string_value(json_object_get(json, "networkAccess"));
		policy->is_unrestricted = true;
		policy->is_network_enabled = net && strcmp(net, "enabled") == 0;
		return 0;
	}
	int rc = json_bool_field(json, "networkAccess", false, &policy->is_network_enabled, err, err_len);
	if (rc < 0)
		return rc;
	if (strcmp(type, "readOnly") == 0)
		return policy_add(policy, pc, "/", ACCESS_READ);
	if (strcmp(type, "workspaceWrite") == 0)
		return add_workspace_write(policy, pc, json, err, err_len);
	return policy_fail(err, err_len, "unknown sandboxPolicy type \"%s\"", type);
}

static int parse_entry_path(Policy *policy, const PolicyContext *pc, const json_t *path, Access access,
			    size_t index, char *err, size_t err_len)
{
	const char *type = json_string_value(json_object_get(path, "type"));
	if (type && strcmp(type, "path") == 0) {
		const char *text = json_string_value(json_object_get(path, "path"));
		if (!text || text[0] != '/')
			return policy_fail(err, err_len, "entries[%zu].path.path must be an absolute path", index);
		return policy_add(policy, pc, text, access);
	}
	if (type && strcmp(type, "special") == 0) {
		const json_t *value = json_object_get(path, "value");
		const char *kind = json_string_value(json_object_get(value, "kind"));
		const char *subpath = json_string_value(json_object_get(value, "subpath"));
		if (!kind)
			return policy_fail(err, err_len, "entries[%zu].path.value.kind must be a string", index);
		char token[64];
		if (strcmp(kind, "current_working_directory") == 0)
			kind = "cwd";
		snprintf(token, sizeof(token), ":%s", kind);
		return add_special(policy, pc, token, subpath, access, false, err, err_len);
	}
	if (type && strcmp(type, "glob_pattern") == 0) {
		const char *pattern = json_string_value(json_object_get(path, "pattern"));
		if (!pattern || !*pattern)
			return policy_fail(err, err_len, "entries[%zu].path.pattern must be a glob pattern", index);
		return policy_add_glob(policy, pc, pattern, access, err, err_len);
	}
	return policy_fail(err, err_len, "entries[%zu].path.type must be path, special or glob_pattern", index);
}

static int parse_filesystem_policy(Policy *policy, const PolicyContext *pc, const json_t *json, char *err,
				   size_t err_len)
{
	const char *kind = json_string_value(json_object_get(json, "kind"));
	const char *network = json_string_value(json_object_get(json, "network"));
	if (network && strcmp(network, "enabled") != 0 && strcmp(network, "restricted") != 0)
		return policy_fail(err, err_len, "network must be \"restricted\" or \"enabled\"");
	policy->is_network_enabled = network && strcmp(network, "enabled") == 0;
	if (strcmp(kind, "unrestricted") == 0 || strcmp(kind, "external-sandbox") == 0) {
		policy->is_unrestricted = true;
		return 0;
	}
	if (strcmp(kind, "restricted") != 0)
		return policy_fail(err, err_len, "unknown filesystem policy kind \"%s\"", kind);
	const json_t *depth = json_object_get(json, "glob_scan_max_depth");
	if (depth && !json_is_null(depth) && (!json_is_integer(depth) || json_integer_value(depth) < 1 ||
					      json_integer_value(depth) > 1024))
		return policy_fail(err, err_len, "glob_scan_max_depth must be an integer >= 1");
	policy->glob_max_depth = depth && json_is_integer(depth) ? (int)json_integer_value(depth) : 0;
	const json_t *entries = json_object_get(json, "entries");
	if (!json_is_array(entries))
		return policy_fail(err, err_len, "entries must be an array");
	size_t i;
	const json_t *entry;
	json_array_foreach(entries, i, entry) {
		Access access;
		const char *text = json_string_value(json_object_get(entry, "access"));
		if (!text || parse_access(text, &access) < 0)
			return policy_fail(err, err_len, "entries[%zu].access must be read, write or deny", i);
		int rc = parse_entry_path(policy, pc, json_object_get(entry, "path"), access, i, err, err_len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int policy_from_json(Policy *policy, const PolicyContext *pc, const json_t *json, char *err, size_t err_len)
{
	if (!json_is_object(json))
		return policy_fail(err, err_len, "sandbox policy must be a JSON object");
	if (json_is_string(json_object_get(json, "type")))
		return parse_sandbox_policy(policy, pc, json, err, err_len);
	if (json_is_string(json_object_get(json, "kind")))
		return parse_filesystem_policy(policy, pc, json, err, err_len);
	return policy_fail(err, err_len, "sandbox policy needs a \"type\" (SandboxPolicy) or \"kind\" (filesystem policy)");
}

/* --- config profiles --------------------------------------------------------------------------- */

static int expand_home(const PolicyContext *pc, const char *key, char *out, size_t out_len)
{
	if (key[0] != '~')
		return snprintf(out, out_len, "%s", key) < (int)out_len ? 0 : -ENAMETOOLONG;
	if (!pc->home || (key[1] != '\0' && key[1] != '/'))
		return -EINVAL;
	return snprintf(out, out_len, "%s%s", pc->home, key + 1) < (int)out_len ? 0 : -ENAMETOOLONG;
}

/* A scoped table: keys are paths relative to what @key names (":workspace_roots" or an absolute path). */
static int add_scoped_table(Policy *policy, const PolicyContext *pc, const char *profile, const char *key,
			    const json_t *table, char *err, size_t err_len)
{
	bool is_special = key[0] == ':';
	if (is_special && !is_project_root_token(key) &&
	    (strcmp(key, ":root") == 0 || strcmp(key, ":minimal") == 0 || strcmp(key, ":tmpdir") == 0 ||
	     strcmp(key, ":slash_tmp") == 0))
		return policy_fail(err, err_len, "permissions.%s: filesystem path `%s` does not support nested entries",
			    profile, key);
	char base[AGENTD_PATH_MAX];
	if (!is_special && (expand_home(pc, key, base, sizeof(base)) < 0 || base[0] != '/'))
		return policy_fail(err, err_len, "permissions.%s: filesystem path \"%s\" must be absolute", profile, key);
	const char *sub;
	const json_t *value;
	json_object_foreach((json_t *)table, sub, value) {
		Access access;
		if (!json_is_string(value) || parse_access(json_string_value(value), &access) < 0)
			return policy_fail(err, err_len, "permissions.%s.filesystem.\"%s\".\"%s\" must be read, write or none",
				    profile, key, sub);
		int rc;
		if (is_special) {
			rc = add_special(policy, pc, key, sub, access, true, err, err_len);
		} else {
			char path[AGENTD_PATH_MAX];
			if (sub[0] == '/' || path_normalize(base, sub, path, sizeof(path)) < 0)
				return policy_fail(err, err_len, "permissions.%s: cannot use subpath \"%s\" under \"%s\"",
					    profile, sub, key);
			rc = has_glob_characters(sub) ? policy_add_glob(policy, pc, path, access, err, err_len)
						      : policy_put(policy, pc, path, access, true);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int add_filesystem_key(Policy *policy, const PolicyContext *pc, const char *profile, const char *key,
			      const json_t *value, char *err, size_t err_len)
{
	if (strcmp(key, "glob_scan_max_depth") == 0) {
		if (!json_is_integer(value) || json_integer_value(value) < 1 || json_integer_value(value) > 1024)
			return policy_fail(err, err_len, "permissions.%s.filesystem.glob_scan_max_depth must be >= 1", profile);
		policy->glob_max_depth = (int)json_integer_value(value);
		return 0;
	}
	if (json_is_object(value))
		return add_scoped_table(policy, pc, profile, key, value, err, err_len);
	Access access;
	if (!json_is_string(value) || parse_access(json_string_value(value), &access) < 0)
		return policy_fail(err, err_len, "permissions.%s.filesystem.\"%s\" must be read, write or none", profile, key);
	if (key[0] == ':')
		return add_special(policy, pc, key, NULL, access, true, err, err_len);
	char path[AGENTD_PATH_MAX];
	if (expand_home(pc, key, path, sizeof(path)) < 0 || path[0] != '/')
		return policy_fail(err, err_len, "permissions.%s: filesystem path \"%s\" must be absolute", profile, key);
	if (has_glob_characters(key))
		return policy_add_glob(policy, pc, path, access, err, err_len);
	int rc = policy_put(policy, pc, path, access, true);
	return rc == -EINVAL ? policy_fail(err, err_len, "permissions.%s: bad path \"%s\"", profile, key) : rc;
}

static int add_network(Policy *policy, const char *profile, const json_t *network, char *err, size_t err_len)
{
	if (!network)
		return 0;
	if (!json_is_object(network))
		return policy_fail(err, err_len, "permissions.%s.network must be a table", profile);
	const char *key;
	const json_t *value;
	json_object_foreach((json_t *)network, key, value) {
		if (strcmp(key, "enabled") != 0)
			/* A managed proxy we do not run must not quietly become "network on". */
			return policy_fail(err, err_len, "permissions.%s.network.%s: managed network proxy settings are not supported",
				    profile, key);
		if (!json_is_boolean(value))
			return policy_fail(err, err_len, "permissions.%s.network.enabled must be a boolean", profile);
		policy->is_network_enabled = json_is_true(value);
	}
	return 0;
}

static int add_builtin_profile(Policy *policy, const PolicyContext *pc, const char *name, char *err,
			       size_t err_len)
{
	json_t *json;
	if (strcmp(name, ":read-only") == 0)
		json = json_pack("{s:s}", "type", "readOnly");
	else if (strcmp(name, ":workspace") == 0)
		json = json_pack("{s:s}", "type", "workspaceWrite");
	else if (strcmp(name, ":danger-full-access") == 0)
		json = json_pack("{s:s}", "type", "dangerFullAccess");
	else
		return policy_fail(err, err_len, "unknown built-in permission profile \"%s\"", name), -ENOENT;
	if (!json)
		return -ENOMEM;
	int rc = parse_sandbox_policy(policy, pc, json, err, err_len);
	json_decref(json);
	return rc;
}

static int add_profile(Policy *policy, const PolicyContext *pc, const json_t *profiles, const char *name,
		       int depth, char *err, size_t err_len)
{
	if (name[0] == ':')
		return add_builtin_profile(policy, pc, name, err, err_len);
	if (depth >= PROFILE_MAX_DEPTH)
		return policy_fail(err, err_len, "permissions.%s: \"extends\" chain is a cycle or too deep", name);
	const json_t *profile = json_object_get(profiles, name);
	if (!profile)
		return policy_fail(err, err_len, "permission profile \"%s\" is not defined", name), -ENOENT;
	if (!json_is_object(profile))
		return policy_fail(err, err_len, "permissions.%s must be a table", name);
	const json_t *extends = json_object_get(profile, "extends");
	if (extends) {
		if (!json_is_string(extends))
			return policy_fail(err, err_len, "permissions.%s.extends must be a profile name", name);
		int rc = add_profile(policy, pc, profiles, json_string_value(extends), depth + 1, err, err_len);
		if (rc == -ENOENT)
			return policy_fail(err, err_len, "permissions.%s extends undefined profile \"%s\"", name,
				    json_string_value(extends));
		if (rc < 0)
			return rc;
	}
	const json_t *filesystem = json_object_get(profile, "filesystem");
	if (filesystem && !json_is_object(filesystem))
		return policy_fail(err, err_len, "permissions.%s.filesystem must be a table", name);
	const char *key;
	const json_t *value;
	json_object_foreach((json_t *)filesystem, key, value) {
		int rc = add_filesystem_key(policy, pc, name, key, value, err, err_len);
		if (rc < 0)
			return rc;
	}
	if (filesystem)
		policy->is_unrestricted = false;
	return add_network(policy, name, json_object_get(profile, "network"), err, err_len);
}

int policy_from_profile(Policy *policy, const PolicyContext *pc, const json_t *config_root, const char *name,
			char *err, size_t err_len)
{
	const json_t *profiles = json_object_get(config_root, "permissions");
	const char *key;
	const json_t *value;
	json_object_foreach((json_t *)profiles, key, value)
		if (key[0] == ':')
			return policy_fail(err, err_len, "permissions.\"%s\" uses a reserved built-in profile prefix", key);
	return add_profile(policy, pc, profiles, name, 0, err, err_len);
}
