/* SPDX-License-Identifier: MIT */
/* supervise.c - masks' mount points, shared across instances: held while in use, removed by the last one. */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plan.h"

static pid_t forward_target;

static void forward_signal(int signum)
{
	if (forward_target > 0)
		kill(forward_target, signum);
}

void supervise_forward_signals(pid_t pid)
{
	static const int signals[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	struct sigaction sa = { .sa_handler = forward_signal };
	forward_target = pid;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		sigaction(signals[i], &sa, NULL);
}

int supervise_wait(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 126;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int created_lock_dir_path(char *out, size_t out_len)
{
	int n = snprintf(out, out_len, CREATED_LOCK_DIR_FORMAT, (unsigned)geteuid());
	return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}

/* @dir opened for locking in: ours, a directory reached without following a final symlink, and
 * closed to everyone else (a lock file others could open could be held against us). */
static int lock_dir_open(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	struct stat st;
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	if (rc == 0 && st.st_uid != geteuid())
		rc = -EPERM;
	else if (rc == 0 && (st.st_mode & 077) != 0)
		rc = -EACCES;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int created_lock_dir_check(const char *dir, bool may_create)
{
	int fd = lock_dir_open(dir);
	if (fd == -ENOENT && may_create) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		fd = lock_dir_open(dir);
	}
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/*
 * "<st_dev>-<st_ino>-<hash>": the parent directory as the kernel knows it (two spellings of one
 * directory, through a bind mount say, name one lock), and the 64-bit FNV-1a hash of the name (a
 * collision only keeps a mount point longer).
 */
int created_lock_name(const char *path, char *out, size_t out_len)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (path[0] != '/' || !slash || !slash[1])
		return -EINVAL;
	size_t parent_len = slash == path ? 1 : (size_t)(slash - path);
	if (parent_len >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, path, parent_len);
	parent[parent_len] = '\0';
	struct stat st;
	if (stat(parent, &st) < 0)
		return -errno;
	uint64_t hash = 14695981039346656037ULL;
	for (const unsigned char *p = (const unsigned char *)slash + 1; *p; p++)
		hash = (hash ^ *p) * 1099511628211ULL;
	int n = snprintf(out, out_len, "%jx-%jx-%016llx", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino,
			 (unsigned long long)hash);
	return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}

/*
 * flock the lock file @name in @dir_fd with @op; retried when the file was unlinked or replaced
 * under us (a last one out won the race). Without @may_create a missing file is -ENOENT.
 */
static int lock_open(int dir_fd, const char *name, int op, bool may_create)
{
	for (;;) {
		int flags = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (may_create ? O_CREAT : 0);
		int fd = openat(dir_fd, name, flags, 0600);
		if (fd < 0)
			return -errno;
		struct stat held, named;
		if (fstat(fd, &held) < 0 || !S_ISREG(held.st_mode)) {
			close(fd);
			return -EINVAL; /* nothing but our own lock files is made in there */
		}
		int rc;
		while ((rc = flock(fd, op)) < 0 && errno == EINTR)
			;
		if (rc < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		if (fstatat(dir_fd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 && held.st_ino == named.st_ino &&
		    held.st_dev == named.st_dev)
			return fd;
		close(fd);
	}
}

/* A lock file of one byte: a launcher found the mount point missing, so it is a sandbox's. */
static bool is_sandbox_made(int lock_fd)
{
	struct stat st;
	return fstat(lock_fd, &st) == 0 && st.st_size > 0;
}

static int mark_sandbox_made(int lock_fd)
{
	if (is_sandbox_made(lock_fd))
		return 0;
	ssize_t n = pwrite(lock_fd, "1", 1, 0);
	return n == 1 ? 0 : n < 0 ? -errno : -EIO;
}

int created_hold(CreatedSet *set)
{
	set->dir_fd = -1;
	set->lock_fds = NULL;
	set->lock_names = NULL;
	if (set->count == 0)
		return 0;
	set->lock_fds = malloc(set->count * sizeof(*set->lock_fds));
	set->lock_names = calloc(set->count, sizeof(*set->lock_names));
	if (!set->lock_fds || !set->lock_names) {
		free(set->lock_fds);
		free(set->lock_names);
		set->lock_fds = NULL;
		set->lock_names = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < set->count; i++)
		set->lock_fds[i] = -1;
	set->dir_fd = lock_dir_open(set->lock_dir);
	int rc = set->dir_fd < 0 ? set->dir_fd : 0;
	for (size_t i = 0; rc == 0 && i < set->count; i++) {
		rc = created_lock_name(set->paths[i], set->lock_names[i], sizeof(set->lock_names[i]));
		int fd = rc < 0 ? rc : lock_open(set->dir_fd, set->lock_names[i], LOCK_SH, true);
		if (fd < 0) {
			rc = fd;
			break;
		}
		set->lock_fds[i] = fd;
		/* Held: nobody removes it now. Missing, the launcher makes it; there, it is another
		 * sandbox's (marked already) or someone's own (never removed). */
		struct stat st;
		if (lstat(set->paths[i], &st) < 0 && errno == ENOENT)
			rc = mark_sandbox_made(fd);
	}
	return rc;
}

static void remove_if_empty(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0 || st.st_uid != geteuid())
		return;
	if (S_ISDIR(st.st_mode))
		rmdir(path); /* fails, and keeps it, when something was put inside */
	else if (S_ISREG(st.st_mode) && st.st_size == 0)
		unlink(path);
}

void created_release(CreatedSet *set)
{
	for (size_t i = set->count; set->lock_fds && i > 0; i--) {
		if (set->lock_fds[i - 1] < 0)
			continue;
		close(set->lock_fds[i - 1]);
		set->lock_fds[i - 1] = -1;
		int fd = lock_open(set->dir_fd, set->lock_names[i - 1], LOCK_EX | LOCK_NB, false);
		/* Another sandbox still uses it (the last one out removes it), or one removed it. */
		if (fd < 0)
			continue;
		/* The mount point first, then its lock: one who finds the lock gone finds it gone too. */
		if (is_sandbox_made(fd))
			remove_if_empty(set->paths[i - 1]);
		unlinkat(set->dir_fd, set->lock_names[i - 1], 0);
		close(fd);
	}
	if (set->lock_fds && set->dir_fd >= 0)
		close(set->dir_fd);
	set->dir_fd = -1;
	free(set->lock_fds);
	set->lock_fds = NULL;
	free(set->lock_names);
	set->lock_names = NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: " INNER_STAGE_NAME " --supervise --lock-dir DIR [--created PATH]... -- LAUNCHER...\n");
	return 2;
}

int supervise_main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[2], "--lock-dir") != 0)
		return usage();
	char **paths = calloc((size_t)argc, sizeof(*paths));
	CreatedSet set = { .lock_dir = argv[3], .paths = paths };
	int i = 4;
	for (; paths && i + 1 < argc && strcmp(argv[i], "--created") == 0; i += 2)
		paths[set.count++] = argv[i + 1];
	if (!paths || i >= argc - 1 || strcmp(argv[i], "--") != 0 || argv[i + 1][0] != '/') {
		free(paths);
		return usage();
	}
	int status = 126;
	int rc = created_hold(&set);
	if (rc < 0) {
		fprintf(stderr, INNER_STAGE_NAME ": locking the sandbox's mount points in %s: %s\n", set.lock_dir,
			strerror(-rc));
	} else {
		pid_t pid = fork();
		if (pid == 0) {
			execv(argv[i + 1], argv + i + 1);
			fprintf(stderr, INNER_STAGE_NAME ": %s: %s\n", argv[i + 1], strerror(errno));
			_exit(126);
		}
		if (pid > 0) {
			supervise_forward_signals(pid);
			status = supervise_wait(pid);
		}
	}
	created_release(&set);
	free(paths);
	return status;
}
