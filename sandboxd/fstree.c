/* SPDX-License-Identifier: MIT */
/* fstree.c - realpath(), lstat(), stat() and access() answered from a tree of paths looked at once. */
#include "fstree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"

/*
 * snprintf(@out, @out_len, "%s%s%s", @a, @b, @c) without printf's cost: what fits is copied.
 * Return: 0, or -ENAMETOOLONG when it was cut short.
 */
int path_concat(char *out, size_t out_len, const char *a, const char *b, const char *c)
{
	const char *parts[] = { a, b, c };
	size_t used = 0, room = out_len - 1;
	int rc = 0;
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(parts[i]);
		if (n > room - used) {
			n = room - used;
			rc = -ENAMETOOLONG;
		}
		memcpy(out + used, parts[i], n);
		used += n;
	}
	out[used] = '\0';
	return rc;
}

/* snprintf(@out, @out_len, "%s", @src), likewise. */
int path_copy(char *out, size_t out_len, const char *src)
{
	size_t n = strlen(src), fit = n < out_len ? n : out_len - 1;
	memcpy(out, src, fit);
	out[fit] = '\0';
	return fit == n ? 0 : -ENAMETOOLONG;
}

/* lstat() and readlink() @path (@name_len: its last component) now. NULL: out of memory. */
static FsNode *fs_node_new(FsCache *fs, FsNode *parent, const char *path, size_t path_len, size_t name_len)
{
	char link[PATH_MAX];
	struct stat st;
	ssize_t link_len = -1;
	int error = lstat(path, &st) < 0 ? errno : 0, link_error = 0;
	if (error == 0 && S_ISLNK(st.st_mode) && (link_len = readlink(path, link, sizeof(link))) < 0)
		link_error = errno;
	if (link_len >= (ssize_t)sizeof(link)) { /* cannot happen on Linux: texts fit in PATH_MAX - 1 */
		link_len = -1;
		link_error = ENAMETOOLONG;
	}
	size_t text_bytes = link_len >= 0 ? (size_t)link_len + 1 : 0;
	FsNode *node = arena_alloc(&fs->nodes, sizeof(*node) + path_len + 1 + text_bytes);
	if (!node)
		return NULL;
	*node = (FsNode){ .parent = parent ? parent : node, .error = error, .mode = error ? 0 : st.st_mode,
			  .link_error = link_error, .path_len = path_len, .name_len = name_len };
	memcpy(node->path, path, path_len + 1);
	if (link_len >= 0) {
		char *text = node->path + path_len + 1;
		memcpy(text, link, (size_t)link_len);
		text[link_len] = '\0';
		node->link = text;
	}
	if (parent) {
		node->next = parent->children;
		parent->children = node;
	}
	return node;
}

void fs_cache_init(FsCache *fs)
{
	arena_init(&fs->nodes, fs->first_block, sizeof(fs->first_block));
	/* "/" itself is never lstat()ed: a walk asks only about what is below it. */
	fs->root = arena_alloc(&fs->nodes, sizeof(*fs->root) + 2); /* from the first block: cannot fail */
	*fs->root = (FsNode){ .parent = fs->root, .mode = S_IFDIR, .path_len = 1 };
	memcpy(fs->root->path, "/", 2);
	fs->trail.count = 0;
}

void fs_cache_free(FsCache *fs)
{
	arena_free(&fs->nodes);
}

/*
 * The name @name (@len bytes) in @dir, lstat()ed the first time it is asked for. @dir's path and
 * the name must fit in PATH_MAX. NULL: out of memory.
 */
static FsNode *fs_child(FsCache *fs, FsNode *dir, const char *name, size_t len)
{
	for (FsNode *c = dir->children; c; c = c->next)
		if (c->name_len == len && memcmp(c->path + c->path_len - len, name, len) == 0)
			return c;
	char path[PATH_MAX];
	size_t n = dir->path_len;
	memcpy(path, dir->path, n);
	if (n > 1)
		path[n++] = '/';
	memcpy(path + n, name, len);
	path[n + len] = '\0';
	return fs_node_new(fs, dir, path, n + len, len);
}

/*
 * Whether what follows a component makes realpath() insist that it is a directory: past any "."
 * components, the end after a slash, or a "..". As glibc decides it (suffix_requires_dir_check).
 */
static bool suffix_requires_dir(const char *rest)
{
	while (*rest == '/') {
		while (*rest == '/')
			rest++;
		char c = *rest++;
		if (c == '\0')
			return true;
		if (c != '.')
			return false;
		if (*rest == '\0' || (rest[0] == '.' && (rest[1] == '\0' || rest[1] == '/')))
			return true;
	}
	return false;
}

/* Whether the component at @c (just after a slash) is "", "." or "..": not a name. */
static bool is_dot_or_empty(const char *c)
{
	bool is_dot = c[0] == '.' && (c[1] == '\0' || c[1] == '/');
	bool is_dot_dot = c[0] == '.' && c[1] == '.' && (c[2] == '\0' || c[2] == '/');
	return c[0] == '\0' || c[0] == '/' || is_dot || is_dot_dot;
}

/*
 * How far along the trail @path (@len bytes) can start: the deepest of its nodes whose stretch
 * @path spells too, followed by the end or by another name (a "/.." after it would make glibc
 * check it is a directory, which the trail does not promise). Return: its index, or -1.
 */
static ptrdiff_t fs_trail_find(const FsTrail *trail, const char *path, size_t len)
{
	for (size_t k = trail->count; k-- > 0;) {
		size_t end = trail->ends[k];
		if (end <= len && memcmp(path, trail->text, end) == 0 &&
		    (end == len || (path[end] == '/' && !is_dot_or_empty(path + end + 1))))
			return (ptrdiff_t)k;
	}
	return -1;
}

/*
 * realpath() of the first @len bytes of the absolute @path, in glibc's steps over the tree: each
 * component looked up in what is resolved so far, a symlink's text spliced in front of what is
 * left, ".." the parent of what is resolved. Same answer, same errno. Return: 0 with @out set, a
 * negative errno, or 1 when glibc itself has to answer (a relative path, a huge one).
 */
static int fs_walk(FsCache *fs, const char *path, size_t len, FsNode **out)
{
	char name[FS_NAME_MAX];
	if (path[0] != '/' || len >= sizeof(name))
		return 1;
	memcpy(name, path, len);
	name[len] = '\0';
	FsTrail *trail = &fs->trail;
	ptrdiff_t k = fs_trail_find(trail, path, len);
	FsNode *dest = k < 0 ? fs->root : trail->nodes[k];
	char *p = name + (k < 0 ? 0 : trail->ends[k]);
	bool is_plain = len < sizeof(trail->text); /* still on plain names: the trail grows */
	if (p < name + len) {
		trail->count = (size_t)(k + 1);
		if (is_plain)
			memcpy(trail->text, path, len);
	}
	int links = 0;
	while (*p) {
		while (*p == '/')
			p++;
		char *start = p;
		p = strchrnul(p, '/');
		size_t n = (size_t)(p - start);
		if (n == 0 || (n == 1 && start[0] == '.')) {
			is_plain = false;
			continue;
		}
		if (n == 2 && start[0] == '.' && start[1] == '.') {
			is_plain = false;
			dest = dest->parent;
			continue;
		}
		if (dest->path_len + 1 + n >= PATH_MAX)
			return -ENAMETOOLONG; /* what the kernel says of a path this long */
		FsNode *node = fs_child(fs, dest, start, n);
		if (!node)
			return -ENOMEM;
		if (node->error == 0 && S_ISLNK(node->mode)) {
			is_plain = false;
			if (!node->link)
				return -node->link_error;
			if (++links > FS_SYMLINK_MAX)
				return -ELOOP;
			size_t link_len = strlen(node->link), rest_len = strlen(p);
			if (link_len + rest_len >= sizeof(name))
				return 1; /* glibc grows its buffer; let it */
			memmove(name + link_len, p, rest_len + 1);
			memcpy(name, node->link, link_len);
			p = name;
			if (node->link[0] == '/')
				dest = fs->root;
			continue;
		}
		if (suffix_requires_dir(p) ? node->error != 0 || !S_ISDIR(node->mode) : node->error != 0)
			return -(node->error ? node->error : ENOTDIR);
		dest = node;
		if (is_plain && trail->count < FS_TRAIL_MAX) {
			trail->ends[trail->count] = (size_t)(p - name);
			trail->nodes[trail->count++] = node;
		}
	}
	*out = dest;
	return 0;
}

/* What the tree does not answer (a relative path, a huge one): glibc's realpath() itself. */
static int realpath_uncached(const char *path, size_t len, char *out, size_t out_len)
{
	char copy[PATH_MAX], resolved[PATH_MAX];
	if (path[len] != '\0') {
		memcpy(copy, path, len);
		copy[len] = '\0';
		path = copy;
	}
	if (!realpath(path, resolved)) /* a relative one: against the process's cwd */
		return -errno;
	return path_copy(out, out_len, resolved);
}

/*
 * realpath() of the first @len bytes of @path (all of it, or a prefix shorter than PATH_MAX),
 * into @out. Return: 0 or a negative errno (-ENOMEM: out of memory).
 */
static int fs_realpath_len(FsCache *fs, const char *path, size_t len, char *out, size_t out_len)
{
	FsNode *node;
	int rc = fs_walk(fs, path, len, &node);
	if (rc == 1)
		return realpath_uncached(path, len, out, out_len);
	if (rc < 0)
		return rc;
	if (node->path_len >= out_len)
		return -ENAMETOOLONG;
	memcpy(out, node->path, node->path_len + 1);
	return 0;
}

/* realpath(@path) from the tree. Return: 0 or a negative errno (-ENOMEM: out of memory). */
int fs_realpath(FsCache *fs, const char *path, char *out, size_t out_len)
{
	return fs_realpath_len(fs, path, strlen(path), out, out_len);
}

/* An answer kept outside the tree: lstat() of a path the tree cannot place. NULL: out of memory. */
static FsNode *fs_lstat_as_is(FsCache *fs, const char *path)
{
	size_t len = strlen(path);
	return fs_node_new(fs, NULL, path, len, len);
}

/*
 * lstat(@path) from the tree. The kernel resolves everything before the last name as a directory
 * and looks the name up there, so that is where the tree looks it up: every spelling of one file
 * shares one lstat(). Return: the answer (->error is lstat()'s errno), NULL when out of memory.
 */
FsNode *fs_lstat(FsCache *fs, const char *path)
{
	const char *slash = strrchr(path, '/');
	if (path[0] != '/' || is_dot_or_empty(slash + 1))
		return fs_lstat_as_is(fs, path); /* "/", "x", "/a/..": as it is */
	FsNode *dir;
	size_t name_len = strlen(slash + 1);
	int rc = fs_walk(fs, path, slash == path ? 1 : (size_t)(slash - path), &dir);
	if (rc == -ENOMEM)
		return NULL;
	if (rc != 0 || dir->path_len + 1 + name_len >= PATH_MAX) /* lstat() fails, and says why */
		return fs_lstat_as_is(fs, path);
	return fs_child(fs, dir, slash + 1, name_len);
}

/*
 * stat(@path) of a path realpath() gave (no symlink in it, so its lstat() is its stat()), from the
 * tree. NULL: out of memory.
 */
FsNode *fs_stat_resolved(FsCache *fs, const char *path)
{
	FsNode *node;
	int rc = fs_walk(fs, path, strlen(path), &node);
	if (rc == -ENOMEM)
		return NULL;
	return rc == 0 && node != fs->root ? node : fs_lstat_as_is(fs, path);
}

/* access(@path, F_OK) from the tree: whether it resolves. Return: 1, 0, or -ENOMEM. */
int fs_exists(FsCache *fs, const char *path)
{
	char real[PATH_MAX];
	int rc = fs_realpath(fs, path, real, sizeof(real));
	return rc == -ENOMEM ? rc : rc == 0;
}

/*
 * The canonical spelling of @path: realpath() when it exists, else the realpath() of its longest
 * existing prefix with the missing rest appended.
 */
int canonicalize(FsCache *fs, const char *path, char *out, size_t out_len, bool *exists)
{
	char resolved[PATH_MAX];
	size_t len = strlen(path);
	int rc = fs_realpath_len(fs, path, len, resolved, sizeof(resolved));
	*exists = rc == 0;
	if (rc == 0)
		return path_copy(out, out_len, resolved);
	if (rc == -ENOMEM)
		return rc;
	/* Prefixes end at slashes, the longest first (of its first AGENTD_PATH_MAX - 1 bytes). */
	for (size_t n = len < AGENTD_PATH_MAX ? len : AGENTD_PATH_MAX - 1;;) {
		while (n > 0 && path[n - 1] != '/')
			n--;
		if (n == 0)
			return -EINVAL;
		size_t slash = n - 1;
		if (slash == 0)
			return path_copy(out, out_len, path);
		rc = fs_realpath_len(fs, path, slash, resolved, sizeof(resolved));
		if (rc == -ENOMEM)
			return rc;
		if (rc == 0) {
			const char *base = strcmp(resolved, "/") == 0 ? "" : resolved;
			return path_concat(out, out_len, base, path + slash, "");
		}
		n = slash;
	}
}
