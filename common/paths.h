/* SPDX-License-Identifier: MIT */
/* paths.h - absolute-path normalisation and the suite's well-known directories. */
#ifndef AGENTD_PATHS_H
#define AGENTD_PATHS_H

#include <stddef.h>

#define AGENTD_PATH_MAX 4096

/**
 * path_normalize() - make @path absolute and lexically normal.
 * A relative @path is joined onto @base (which must itself be absolute). "." and empty
 * components are dropped, ".." removes the previous component (and stops at "/"), repeated
 * slashes collapse, and no trailing slash remains (except for "/"). Symlinks are not resolved:
 * the result names the same file the caller meant, spelled one way.
 * Return: 0; -EINVAL for an empty path, a relative @base or a NUL byte; -ENAMETOOLONG when the
 * result does not fit in @out_len bytes.
 */
int path_normalize(const char *base, const char *path, char *out, size_t out_len);

/** path_is_normal_absolute() - whether @path is already what path_normalize() would return. */
int path_is_normal_absolute(const char *path);

/**
 * paths_runtime_dir() - $AGENTD_RUNTIME_DIR, else $XDG_RUNTIME_DIR/agentd, else /run/agentd.
 * Return: 0 or -ENAMETOOLONG / -EINVAL (a relative value from the environment).
 */
int paths_runtime_dir(char *out, size_t out_len);

/**
 * paths_ensure_private_dir() - create @dir (and missing parents) and insist it is mode 0700
 * and owned by us, so that no other user can plant or read our sockets.
 * Return: 0 or a negative errno; -EPERM when it exists with another owner.
 */
int paths_ensure_private_dir(const char *dir);

/** paths_codex_home() - $CODEX_HOME, else $HOME/.codex (the reference's lookup). */
int paths_codex_home(char *out, size_t out_len);

/** paths_join() - "@dir/@name" into @out. Return 0 or -ENAMETOOLONG. */
int paths_join(const char *dir, const char *name, char *out, size_t out_len);

#endif
