/* SPDX-License-Identifier: MIT */
/* glob.h - deny globs ("**" and shell wildcards) expanded to the paths they match right now. */
#ifndef SANDBOXD_GLOB_H
#define SANDBOXD_GLOB_H

#include <stddef.h>

/* Most matches one glob may expand to (the reference's limit): more is refused, not cut. */
#define GLOB_MAX_MATCHES 8192
/* How deep "**" descends when the policy sets no glob_scan_max_depth. */
#define GLOB_DEFAULT_MAX_DEPTH 32

typedef int (*GlobMatchFn)(const char *path, void *ctx);

/** glob_has_wildcards() - whether @text has *, ? or [ in it. */
int glob_has_wildcards(const char *text);

/**
 * glob_expand() - call @fn for every existing path below @base (absolute) that @pattern
 * (components relative to @base; "**" is any number of directories, other components use
 * fnmatch(3) and match hidden names too) matches, at most @max_depth components below @base.
 * Symlinks are matched but never descended into.
 * Return: 0; -E2BIG past GLOB_MAX_MATCHES; @fn's negative return; -ENOMEM.
 */
int glob_expand(const char *base, const char *pattern, int max_depth, GlobMatchFn fn, void *ctx);

#endif
