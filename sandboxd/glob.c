/* SPDX-License-Identifier: MIT */
/* glob.c - walk a directory tree along a glob's components. */
#include "glob.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paths.h"

#define GLOB_MAX_COMPONENTS 64

typedef struct Walk {
	const char *components[GLOB_MAX_COMPONENTS];
	size_t count;
	int max_depth;
	size_t matches;
	GlobMatchFn fn;
	void *ctx;
} Walk;

int glob_has_wildcards(const char *text)
{
	return strpbrk(text, "*?[") != NULL;
}

static int walk_from(Walk *w, const char *dir, size_t next, int depth);

static int found(Walk *w, const char *path)
{
	if (++w->matches > GLOB_MAX_MATCHES)
		return -E2BIG;
	return w->fn(path, w->ctx);
}

static bool is_directory(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode); /* a symlink is not descended into */
}

static int join(const char *dir, const char *name, char *out)
{
	int n = snprintf(out, AGENTD_PATH_MAX, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, name);
	return n < AGENTD_PATH_MAX ? 0 : -ENAMETOOLONG;
}

/* One entry of @dir matched component @next: the last one is a match, else go on below it. */
static int step_into(Walk *w, const char *dir, const char *name, size_t next, int depth)
{
	char path[AGENTD_PATH_MAX];
	if (join(dir, name, path) < 0 || depth + 1 > w->max_depth)
		return 0;
	if (next + 1 == w->count)
		return found(w, path);
	return is_directory(path) ? walk_from(w, path, next + 1, depth + 1) : 0;
}

/* "**" at @next: nothing (the rest matches here), or one more directory and "**" again. */
static int walk_any_depth(Walk *w, const char *dir, size_t next, int depth, DIR *d)
{
	int rc = next + 1 == w->count ? 0 : walk_from(w, dir, next + 1, depth);
	for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
		char path[AGENTD_PATH_MAX];
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || join(dir, e->d_name, path) < 0)
			continue;
		if (next + 1 == w->count && depth + 1 <= w->max_depth)
			rc = found(w, path); /* a trailing "**": everything below */
		if (rc == 0 && depth + 1 < w->max_depth && is_directory(path))
			rc = walk_from(w, path, next, depth + 1);
	}
	return rc;
}

static int walk_from(Walk *w, const char *dir, size_t next, int depth)
{
	const char *component = w->components[next];
	if (!glob_has_wildcards(component)) {
		struct stat st;
		char path[AGENTD_PATH_MAX];
		if (join(dir, component, path) < 0 || lstat(path, &st) < 0)
			return 0;
		return step_into(w, dir, component, next, depth);
	}
	DIR *d = opendir(dir);
	if (!d)
		return 0; /* unreadable or gone: nothing of it can be matched, nor read by the command */
	int rc = 0;
	if (strcmp(component, "**") == 0) {
		rc = walk_any_depth(w, dir, next, depth, d);
	} else {
		for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
			    fnmatch(component, e->d_name, 0) == 0)
				rc = step_into(w, dir, e->d_name, next, depth);
	}
	closedir(d);
	return rc;
}

int glob_expand(const char *base, const char *pattern, int max_depth, GlobMatchFn fn, void *ctx)
{
	Walk w = { .max_depth = max_depth > 0 ? max_depth : GLOB_DEFAULT_MAX_DEPTH, .fn = fn, .ctx = ctx };
	char *copy = strdup(pattern);
	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (w.count == GLOB_MAX_COMPONENTS) {
			free(copy);
			return -ENAMETOOLONG;
		}
		w.components[w.count++] = c;
	}
	int rc = w.count ? walk_from(&w, base, 0, 0) : 0;
	free(copy);
	return rc;
}
