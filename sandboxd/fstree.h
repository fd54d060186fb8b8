/* SPDX-License-Identifier: MIT */
/* fstree.h - the file system as one compile sees it: each path looked at once. */
#ifndef SANDBOXD_FSTREE_H
#define SANDBOXD_FSTREE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "arena.h"

/*
 * A compile asks about the same few directories over and over: every rule resolves each of its
 * prefixes, the symlink check lstat()s them again, and each writable root looks for its protected
 * names and for repositories above it. So the compile keeps a small tree of the paths it has
 * looked at, each lstat()ed (and a symlink's text read) once, and answers realpath(), stat(),
 * lstat() and access(F_OK) from it as glibc and the kernel would have. It lives for one
 * plan_compile(): a plan is a picture of the file system as it was when it was compiled.
 */
#define FS_SYMLINK_MAX 40 /* glibc's realpath() fails with ELOOP past this many (__eloop_threshold) */
#define FS_NAME_MAX (2 * PATH_MAX) /* what is left to resolve, symlink texts spliced in */

/* One canonical path: what lstat() (and for a symlink, readlink()) said of it. */
typedef struct FsNode {
	struct FsNode *parent;	 /* the directory it was looked up in; "/" is its own */
	struct FsNode *children; /* the names looked up in it so far */
	struct FsNode *next;	 /* the parent's next child */
	int error;		 /* 0, or lstat()'s errno */
	mode_t mode;
	int link_error;	  /* a symlink whose readlink() failed: its errno */
	const char *link; /* a symlink's text, else NULL */
	size_t path_len;
	size_t name_len;
	char path[]; /* no symlink above its last component; then the link's text */
} FsNode;

/*
 * Where the last walk went while its path was plain names (no symlink, no ".."): a walk that
 * shares a stretch of it starts where that stretch ended. Walks come in runs (a root, then its
 * .git, .codex and .agents; a rule's prefixes one after another), so most take a step or two.
 */
#define FS_TRAIL_MAX 64

typedef struct FsTrail {
	char text[PATH_MAX];		  /* the last walk's path (valid up to its last end) */
	size_t ends[FS_TRAIL_MAX];	  /* where each of its plain components ends in it */
	FsNode *nodes[FS_TRAIL_MAX]; /* and the node it reached there */
	size_t count;
} FsTrail;

typedef struct FsCache {
	FsNode *root;
	FsTrail trail;
	Arena nodes;
	max_align_t first_block[8192 / sizeof(max_align_t)]; /* a usual compile looks at 30-odd paths */
} FsCache;

void fs_cache_init(FsCache *fs);

void fs_cache_free(FsCache *fs);

/* realpath(@path) from the tree. Return: 0 or a negative errno (-ENOMEM: out of memory). */
int fs_realpath(FsCache *fs, const char *path, char *out, size_t out_len);

FsNode *fs_lstat(FsCache *fs, const char *path);

FsNode *fs_stat_resolved(FsCache *fs, const char *path);

/* access(@path, F_OK) from the tree: whether it resolves. Return: 1, 0, or -ENOMEM. */
int fs_exists(FsCache *fs, const char *path);

int canonicalize(FsCache *fs, const char *path, char *out, size_t out_len, bool *exists);

/*
 * snprintf(@out, @out_len, "%s%s%s", @a, @b, @c) without printf's cost: what fits is copied.
 * Return: 0, or -ENAMETOOLONG when it was cut short.
 */
int path_concat(char *out, size_t out_len, const char *a, const char *b, const char *c);

/* snprintf(@out, @out_len, "%s", @src), likewise. */
int path_copy(char *out, size_t out_len, const char *src);

#endif
