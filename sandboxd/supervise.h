/* SPDX-License-Identifier: MIT */
/* supervise.h - the launcher's parent: holds the masks' mount points while a sandbox runs, removes them after. */
#ifndef SANDBOXD_SUPERVISE_H
#define SANDBOXD_SUPERVISE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * A mask of a missing path needs a mount point on the host, which two sandboxes on one workspace
 * share. Removing it detaches the mask inside every other sandbox still using it, so each
 * launcher holds a shared lock per mount point while its sandbox runs, and only one that gets the
 * lock exclusively may remove it.
 */
typedef struct CreatedSet {
	const char *lock_dir;
	char *const *paths;
	size_t count;
	int *lock_fds;
} CreatedSet;

/** created_hold() - take the shared locks of @set (blocking). Return: 0 or a negative errno. */
int created_hold(CreatedSet *set);

/** created_release() - drop them; remove each mount point nobody else holds (if still empty). */
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
