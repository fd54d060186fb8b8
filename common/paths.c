/* SPDX-License-Identifier: MIT */
/* paths.c - lexical path normalisation and the runtime/CODEX_HOME directory lookups. */
#include "paths.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Appends one component, or pops one for "..", keeping @out normal at every step. */
static int path_push_component(char *out, size_t *used, size_t out_len, const char *comp, size_t comp_len)
{
	if (comp_len == 0 || (comp_len == 1 && comp[0] == '.'))
		return 0;
	if (comp_len == 2 && comp[0] == '.' && comp[1] == '.') {
		while (*used > 1 && out[*used - 1] != '/')
			(*used)--;
		if (*used > 1)
			(*used)--;
		out[*used] = '\0';
		return 0;
	}
	size_t need = *used + (*used > 1 ? 1 : 0) + comp_len + 1;
	if (need > out_len)
		return -ENAMETOOLONG;
	if (*used > 1)
		out[(*used)++] = '/';
	memcpy(out + *used, comp, comp_len);
	*used += comp_len;
	out[*used] = '\0';
	return 0;
}

static int path_push_all(char *out, size_t *used, size_t out_len, const char *path)
{
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *start = p;
		while (*p && *p != '/')
			p++;
		int rc = path_push_component(out, used, out_len, start, (size_t)(p - start));
		if (rc < 0)
			return rc;
	}
	return 0;
}

int path_normalize(const char *base, const char *path, char *out, size_t out_len)
{
	if (!path || !*path)
		return -EINVAL;
	if (out_len < 2) /* not even "/" fits */
		return -ENAMETOOLONG;
	out[0] = '/';
	out[1] = '\0';
	size_t used = 1;
	if (path[0] != '/') {
		if (!base || base[0] != '/')
			return -EINVAL;
		int rc = path_push_all(out, &used, out_len, base);
		if (rc < 0)
			return rc;
	}
	return path_push_all(out, &used, out_len, path);
}

int path_is_normal_absolute(const char *path)
{
	char normal[AGENTD_PATH_MAX];
	if (!path || path[0] != '/')
		return 0;
	if (path_normalize(NULL, path, normal, sizeof(normal)) < 0)
		return 0;
	return strcmp(normal, path) == 0;
}

int paths_join(const char *dir, const char *name, char *out, size_t out_len)
{
	int n = snprintf(out, out_len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= out_len)
		return -ENAMETOOLONG;
	return 0;
}

static int paths_from_env(const char *value, const char *suffix, char *out, size_t out_len)
{
	char joined[AGENTD_PATH_MAX];
	if (value[0] != '/')
		return -EINVAL;
	int n = snprintf(joined, sizeof(joined), "%s%s", value, suffix);
	if (n < 0 || (size_t)n >= sizeof(joined))
		return -ENAMETOOLONG;
	return path_normalize(NULL, joined, out, out_len);
}

int paths_runtime_dir(char *out, size_t out_len)
{
	const char *explicit_dir = getenv("AGENTD_RUNTIME_DIR");
	if (explicit_dir && *explicit_dir)
		return paths_from_env(explicit_dir, "", out, out_len);
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg)
		return paths_from_env(xdg, "/agentd", out, out_len);
	return paths_from_env("/run/agentd", "", out, out_len);
}

int paths_codex_home(char *out, size_t out_len)
{
	const char *home = getenv("CODEX_HOME");
	if (home && *home)
		return paths_from_env(home, "", out, out_len);
	home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home)
		return -ENOENT;
	return paths_from_env(home, "/.codex", out, out_len);
}

static int paths_mkdir_parents(const char *dir)
{
	char partial[AGENTD_PATH_MAX];
	size_t len = strlen(dir);
	if (len >= sizeof(partial))
		return -ENAMETOOLONG;
	memcpy(partial, dir, len + 1);
	for (size_t i = 1; i < len; i++) {
		if (partial[i] != '/')
			continue;
		partial[i] = '\0';
		if (mkdir(partial, 0755) < 0 && errno != EEXIST)
			return -errno;
		partial[i] = '/';
	}
	return 0;
}

int paths_ensure_private_dir(const char *dir)
{
	int rc = paths_mkdir_parents(dir);
	if (rc < 0)
		return rc;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != geteuid())
		return -EPERM;
	if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) < 0)
		return -errno;
	return 0;
}
