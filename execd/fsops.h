/* SPDX-License-Identifier: MIT */
/* fsops.h - the file operations execd performs for clients, independent of how the request arrived. */
#ifndef EXECD_FSOPS_H
#define EXECD_FSOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paths.h"

/*
 * Every operation takes an absolute path (normalised lexically first: "." and ".." components,
 * repeated and trailing slashes), returns 0 or a negative errno, and on failure fills an FsError:
 *
 *   is_refusal false: the system call failed. message is the reference's wording of the errno,
 *                     "No such file or directory (os error 2)" (codex: JSON-RPC -32603; its
 *                     exec-server answers -32004 for ENOENT).
 *   is_refusal true:  the request itself is refused (codex: -32600); message is complete, e.g.
 *                     "path `/x` is not a file", "fs/copy requires recursive: true when
 *                     sourcePath is a directory". The errno says which kind (see each function).
 *
 * The functions are reentrant (no static state): execd runs them on a worker thread.
 */

/* Largest file fsops_read_file() reads when the caller passes no smaller bound. */
#define FSOPS_READ_MAX_BYTES (512u * 1024u * 1024u)
/* Deepest directory nesting fsops_copy() and fsops_remove() walk (each level holds a descriptor). */
#define FSOPS_MAX_DEPTH 256u
/* Most entries fsops_read_directory() returns. */
#define FSOPS_MAX_DIR_ENTRIES (1u << 20)
/* Room for a message naming two paths. */
#define FSOPS_MESSAGE_MAX (2u * AGENTD_PATH_MAX + 256u)

typedef struct FsError {
	bool is_refusal;
	char message[FSOPS_MESSAGE_MAX];
} FsError;

/*
 * An optional restriction (the exec-server's `sandbox` parameter): absolute, canonical roots
 * (no symlinks, no trailing slash; "/" allowed). When an FsScope is given, each operation first
 * resolves its path to its real location - every symlink followed, dangling ones into their
 * targets, missing components kept - and refuses (-EACCES, is_refusal) a location outside the
 * roots: reads need a readable or writable root, writes (write, mkdir, remove, copy's
 * destination) a writable one. It then opens that real location one component at a time
 * without following symlinks, so a symlink swapped in after the check fails the operation
 * (ENOTDIR/ELOOP) instead of leading outside. Operations that act on a symlink itself (remove,
 * copy of a symlink, getMetadata's isSymlink) check where the link is, not where it points.
 * A NULL scope means no restriction: paths are used as given, symlinks followed as the kernel does.
 */
typedef struct FsScope {
	const char *const *readable_roots;
	size_t readable_count;
	const char *const *writable_roots;
	size_t writable_count;
} FsScope;

typedef struct FsMetadata {
	bool is_directory;	/* of what the path resolves to */
	bool is_file;		/* a regular file, resolved */
	bool is_symlink;	/* the path itself */
	int64_t created_at_ms;	/* statx birth time, 0 when the file system does not record it */
	int64_t modified_at_ms; /* 0 before 1970 */
	uint64_t size;		/* bytes, of what the path resolves to */
} FsMetadata;

typedef struct FsDirEntry {
	char *file_name; /* raw bytes of the name, NUL-terminated (not necessarily UTF-8) */
	bool is_directory;
	bool is_file;
} FsDirEntry;

/**
 * fsops_read_file() - the whole content of the regular file @path (symlinks followed).
 * @max_bytes: refuse larger files (0: FSOPS_READ_MAX_BYTES; larger values are clamped to it).
 * Return: 0 and *@data (malloc'd, free() it; never NULL) and *@len; refusals: -EINVAL "path `P` is
 * not a file" (a directory, FIFO, device...), -EFBIG over @max_bytes, -EACCES outside @scope.
 */
int fsops_read_file(const FsScope *scope, const char *path, size_t max_bytes, uint8_t **data, size_t *len,
		    FsError *err);

/**
 * fsops_write_file() - create or truncate @path (symlinks followed, mode 0666 & ~umask when
 * created) and write @len bytes of @data. Opening never blocks (a FIFO without reader: ENXIO).
 * Return: 0, an OS error (EISDIR onto a directory, ENOENT without parent), or -EACCES outside @scope.
 */
int fsops_write_file(const FsScope *scope, const char *path, const uint8_t *data, size_t len, FsError *err);

/**
 * fsops_create_directory() - mkdir @path; @recursive creates missing parents and accepts an
 * existing directory (or symlink to one), like `mkdir -p`.
 * Return: 0 or an OS error (EEXIST for an existing non-directory, or any existing path when not
 * @recursive; ENOENT/ENOTDIR for a missing/non-directory parent), or -EACCES outside @scope.
 */
int fsops_create_directory(const FsScope *scope, const char *path, bool recursive, FsError *err);

/**
 * fsops_get_metadata() - what @path is (following symlinks) and whether it is itself a symlink.
 * Return: 0 and *@md; an OS error (ENOENT, also for a dangling symlink); -EACCES outside @scope.
 */
int fsops_get_metadata(const FsScope *scope, const char *path, FsMetadata *md, FsError *err);

/**
 * fsops_read_directory() - the entries of directory @path in the order the file system lists
 * them, without "." and "..". Each entry's type is that of its resolution; entries that do not
 * resolve (dangling symlinks) are left out, as are, under @scope, symlinks leading outside it.
 * Return: 0 and *@entries / *@count (free with fsops_dir_entries_free()); an OS error (ENOTDIR,
 * ENOENT); refusals -E2BIG over FSOPS_MAX_DIR_ENTRIES, -EACCES outside @scope.
 */
int fsops_read_directory(const FsScope *scope, const char *path, FsDirEntry **entries, size_t *count,
			 FsError *err);

/** fsops_dir_entries_free() - free what fsops_read_directory() returned. NULL-safe. */
void fsops_dir_entries_free(FsDirEntry *entries, size_t count);

/**
 * fsops_remove() - remove @path: a file, a symlink (never its target), or a directory (with its
 * whole tree when @recursive; only when empty otherwise). @force: a missing @path is success.
 * Return: 0 or an OS error (ENOENT when not @force, ENOTEMPTY, ENOTDIR for a path through a file);
 * refusals -EPERM for "/", -ELOOP deeper than FSOPS_MAX_DEPTH, -EACCES outside @scope.
 */
int fsops_remove(const FsScope *scope, const char *path, bool recursive, bool force, FsError *err);

/**
 * fsops_copy() - copy @source to @destination. A regular file is copied onto the destination
 * (created or truncated, following a symlink there; permission bits copied; copying a file onto
 * itself changes nothing). A symlink is copied as a symlink with the same target (EEXIST when the
 * destination exists). A directory needs @recursive: its tree is merged into the destination
 * (created when missing), symlinks in it copied as symlinks, FIFOs, sockets and devices skipped.
 * Return: 0 or an OS error; refusals: -EISDIR a directory without @recursive, -EINVAL a directory
 * onto itself or into its own descendant (resolved through symlinks), -EOPNOTSUPP a FIFO, socket or
 * device as @source, -ELOOP deeper than FSOPS_MAX_DEPTH, -EACCES outside @scope.
 */
int fsops_copy(const FsScope *scope, const char *source, const char *destination, bool recursive,
	       FsError *err);

#endif
