/* SPDX-License-Identifier: MIT */
/* spawner.h - the one unfiltered process of execd: posix_spawn and reaping on execd's behalf. */
#ifndef EXECD_SPAWNER_H
#define EXECD_SPAWNER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * execd installs a seccomp allow-list, and a filter is inherited across exec: a command started
 * by execd itself could not run bwrap, mount or anything else off the list. So before the filter
 * goes on, execd forks this spawner. It holds no capability (CAP_SETFCAP alone when run as root,
 * which mapping uid 0 into a sandbox's user namespace needs), speaks only the fixed messages below
 * over a unix stream socket, is the subreaper of everything it starts, and kills every process
 * group it started when execd's end of the socket closes.
 */

enum {
	SPAWN_MSG_SPAWN = 1,   /* execd -> spawner: header, payload, fds */
	SPAWN_MSG_STARTED = 2, /* spawner -> execd: tag, pid */
	SPAWN_MSG_FAILED = 3,  /* spawner -> execd: tag, errno */
	SPAWN_MSG_EXITED = 4,  /* spawner -> execd: pid, wait status */
};

/* SPAWN_MSG_SPAWN flags. */
enum {
	SPAWN_TTY = 1u << 0, /* no fds: open the payload's tty path as 0, 1, 2 after setsid */
};

/* Bounds on one spawn request (argv + environment + paths). */
#define SPAWN_MAX_PAYLOAD (4u * 1024u * 1024u)
#define SPAWN_MAX_ARGS 65535u
#define SPAWN_MAX_ENV 65535u

/*
 * Request header. The payload that follows is cwd, tty path ("" without SPAWN_TTY), then argc
 * argument strings and envc "KEY=VALUE" strings, each NUL-terminated. Without SPAWN_TTY the
 * message carries three fds (SCM_RIGHTS): the child's stdin, stdout and stderr.
 */
typedef struct SpawnRequest {
	uint32_t type;
	uint32_t tag;
	uint32_t flags;
	uint32_t argc;
	uint32_t envc;
	uint32_t payload_len;
} SpawnRequest;

/* Every message from the spawner: STARTED {tag, pid}, FAILED {tag, value=errno}, EXITED {pid, value=status}. */
typedef struct SpawnReply {
	uint32_t type;
	uint32_t tag;
	int32_t pid;
	int32_t value;
} SpawnReply;

/**
 * spawner_start() - fork the spawner. Call before the seccomp filter and before any thread.
 * Return: 0 with *sock (execd's end, non-blocking, close-on-exec) and *pid, or a negative errno.
 */
int spawner_start(int *sock, pid_t *pid);

/**
 * spawner_send() - send one spawn request (blocking until the spawner took it whole).
 * @fds: three fds, or NULL with SPAWN_TTY. Return: 0 or a negative errno.
 */
int spawner_send(int sock, uint32_t tag, uint32_t flags, const char *cwd, const char *tty_path,
		 const char *const *argv, uint32_t argc, const char *const *envp, uint32_t envc, const int *fds);

/**
 * spawner_find_program() - where @program would be run from under @path_env (a PATH value or
 * NULL for the default), as execvpe() would search: @out holds it. Return 0 or -ENOENT/-EACCES.
 */
int spawner_find_program(const char *program, const char *path_env, const char *cwd, char *out, size_t out_size);

#endif
