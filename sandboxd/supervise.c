/* SPDX-License-Identifier: MIT */
/* supervise.c - shared mount points of masks: locked while in use, removed by the last user. */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
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

/* One lock file per mount point, named by a hash of its path (a collision only keeps a mask longer). */
static void lock_file_for(const char *lock_dir, const char *path, char *out, size_t out_len)
{
	uint64_t hash = 14695981039346656037ULL;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		hash = (hash ^ *p) * 1099511628211ULL;
	snprintf(out, out_len, "%s/%016llx", lock_dir, (unsigned long long)hash);
}

/* flock @file with @op; retried when the file was unlinked under us (a remover won the race). */
static int lock_open(const char *file, int op)
{
	for (;;) {
		int fd = open(file, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		if (flock(fd, op) < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		struct stat held, named;
		if (fstat(fd, &held) == 0 && stat(file, &named) == 0 && held.st_ino == named.st_ino &&
		    held.st_dev == named.st_dev)
			return fd;
		close(fd);
	}
}

int created_hold(CreatedSet *set)
{
	char file[4200];
	if (set->count == 0)
		return 0;
	if (mkdir(set->lock_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	set->lock_fds = calloc(set->count, sizeof(*set->lock_fds));
	if (!set->lock_fds)
		return -ENOMEM;
	for (size_t i = 0; i < set->count; i++) {
		lock_file_for(set->lock_dir, set->paths[i], file, sizeof(file));
		set->lock_fds[i] = lock_open(file, LOCK_SH);
		if (set->lock_fds[i] < 0)
			return set->lock_fds[i];
	}
	return 0;
}

static void remove_if_empty(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode))
		rmdir(path); /* fails, and keeps it, when the command put something inside */
	else if (S_ISREG(st.st_mode) && st.st_size == 0)
		unlink(path);
}

void created_release(CreatedSet *set)
{
	char file[4200];
	for (size_t i = set->count; set->lock_fds && i > 0; i--) {
		if (set->lock_fds[i - 1] < 0)
			continue;
		close(set->lock_fds[i - 1]);
		lock_file_for(set->lock_dir, set->paths[i - 1], file, sizeof(file));
		int fd = lock_open(file, LOCK_EX | LOCK_NB);
		if (fd < 0)
			continue; /* another sandbox still uses it: the last one out removes it */
		remove_if_empty(set->paths[i - 1]);
		unlink(file);
		close(fd);
	}
	free(set->lock_fds);
	set->lock_fds = NULL;
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
	if (created_hold(&set) < 0) {
		fprintf(stderr, INNER_STAGE_NAME ": locking the sandbox's mount points in %s: %s\n", set.lock_dir,
			strerror(errno));
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
