/* SPDX-License-Identifier: MIT */
/* supervise.h - the launcher's parent: holds the masks' mount points while a sandbox runs, removes them after. */
#ifndef SANDBOXD_SUPERVISE_H
#define SANDBOXD_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * A mask of a missing path needs a mount point on the host, which every sandbox masking the same
 * path shares, whichever agentd instance planned it. Removing it detaches the mask inside every
 * other sandbox still using it, and makes a launch whose plan saw it fail; so each launcher holds
 * a shared lock per mount point while its sandbox runs, and only one that gets the lock
 * exclusively may remove it.
 *
 * The locks live in one directory per user that every instance agrees on, CREATED_LOCK_DIR_FORMAT
 * (mode 0700, ours, never through a symbolic link; hidden in every sandbox, so that no command can
 * take, hold or remove a lock). A mount point's lock file is named by the identity of its parent
 * directory (st_dev, st_ino) and a hash of its name, so that two spellings of one directory agree.
 * A lock file of one byte says that a launcher found the mount point missing (it is a sandbox's,
 * to be removed when empty); an empty one, that it was there before (someone's own empty file or
 * directory, never removed).
 */
#define CREATED_LOCK_DIR_FORMAT "/tmp/agentd-locks-%u" /* the effective uid */
#define CREATED_LOCK_NAME_MAX 64

typedef struct CreatedSet {
	const char *lock_dir;
	char *const *paths;
	size_t count;
	/* Filled in by created_hold(): */
	int dir_fd;    /* the lock directory */
	int *lock_fds; /* a shared lock per path, -1 when not held */
	char (*lock_names)[CREATED_LOCK_NAME_MAX];
} CreatedSet;

/** created_lock_dir_path() - CREATED_LOCK_DIR_FORMAT for our uid. Return: 0 or -ENAMETOOLONG. */
int created_lock_dir_path(char *out, size_t out_len);

/**
 * created_lock_dir_check() - whether @dir can hold locks: a directory of ours, mode 0700 or
 * stricter, not a symbolic link; created (mode 0700) when missing and @may_create.
 * Return: 0; -ENOENT; -ENOTDIR, -EPERM (another owner) or -EACCES (open to others): unusable.
 */
int created_lock_dir_check(const char *dir, bool may_create);

/**
 * created_lock_name() - the lock file name (in the lock directory) of mount point @path, absolute.
 * Return: 0, or a negative errno when @path's parent cannot be stat()ed.
 */
int created_lock_name(const char *path, char *out, size_t out_len);

/**
 * created_hold() - take the shared locks of @set (blocking only while a last one out removes a
 * mount point), marking those found missing as a sandbox's. The lock directory must exist
 * (created_lock_dir_check()): a launcher never creates it, or a sandbox planned before it existed
 * would see it. Return: 0 or a negative errno; created_release() in either case.
 */
int created_hold(CreatedSet *set);

/** created_release() - drop them; remove each sandbox-made mount point nobody holds, if still empty. */
void created_release(CreatedSet *set);

/** supervise_forward_signals() - pass SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2 on to @pid. */
void supervise_forward_signals(pid_t pid);

/** supervise_wait() - wait for @pid; its exit status, or 128+N for signal N. */
int supervise_wait(pid_t pid);

/**
 * supervise_main() - "agentd-sandbox --supervise --lock-dir DIR [--created PATH]... -- LAUNCHER...":
 * hold, run LAUNCHER (system bwrap) as a child, wait, release.
 * Return: LAUNCHER's exit status; 126 when it could not be started; 2 for bad arguments.
 */
int supervise_main(int argc, char **argv);

#endif
