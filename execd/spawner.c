/* SPDX-License-Identifier: MIT */
/* spawner.c - execd's unfiltered spawner: receives spawn requests, posix_spawns, reaps, reports. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "spawner.h"

#define SPAWNER_FD 3
#define SPAWN_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* Process groups the spawner started that may still have members (grandchildren outlive leaders). */
typedef struct SpawnerState {
	pid_t *groups;
	size_t count, capacity;
} SpawnerState;

static int spawner_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, -1);
			continue;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int spawner_read_all(int fd, void *data, size_t len)
{
	char *p = data;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void spawner_finish(SpawnerState *state);

static void spawner_reply(SpawnerState *state, int sock, uint32_t type, uint32_t tag, pid_t pid, int32_t value)
{
	SpawnReply reply = { .type = type, .tag = tag, .pid = pid, .value = value };
	if (spawner_write_all(sock, &reply, sizeof(reply)) < 0)
		spawner_finish(state); /* execd is gone: what it started goes too */
}

int spawner_find_program(const char *program, const char *path_env, const char *cwd, char *out, size_t out_size)
{
	if (!*program)
		return -ENOENT;
	if (strchr(program, '/')) {
		if ((size_t)snprintf(out, out_size, "%s", program) >= out_size)
			return -ENAMETOOLONG;
		return 0;
	}
	const char *dirs = path_env && *path_env ? path_env : SPAWN_DEFAULT_PATH;
	int failure = -ENOENT;
	while (*dirs) {
		const char *end = strchrnul(dirs, ':');
		int dir_len = (int)(end - dirs);
		int n;
		/* An empty PATH element means the current directory, the command's cwd here. */
		if (dir_len == 0)
			n = snprintf(out, out_size, "%s/%s", cwd, program);
		else if (dirs[0] != '/')
			n = snprintf(out, out_size, "%s/%.*s/%s", cwd, dir_len, dirs, program);
		else
			n = snprintf(out, out_size, "%.*s/%s", dir_len, dirs, program);
		struct stat st;
		if (n > 0 && (size_t)n < out_size && stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(out, X_OK) == 0)
				return 0;
			failure = -EACCES;
		}
		dirs = *end ? end + 1 : end;
	}
	return failure;
}

/* Splits the payload into its strings; every count and terminator is checked. */
static int spawner_parse_payload(char *payload, size_t len, const SpawnRequest *req, const char **cwd,
				 const char **tty_path, char **argv, char **envp)
{
	size_t count = 2 + (size_t)req->argc + req->envc, at = 0;
	for (size_t i = 0; i < count; i++) {
		char *text = payload + at;
		char *nul = memchr(text, '\0', len - at);
		if (!nul)
			return -EINVAL;
		at = (size_t)(nul - payload) + 1;
		if (i == 0)
			*cwd = text;
		else if (i == 1)
			*tty_path = text;
		else if (i < 2 + req->argc)
			argv[i - 2] = text;
		else
			envp[i - 2 - req->argc] = text;
	}
	argv[req->argc] = NULL;
	envp[req->envc] = NULL;
	return at == len ? 0 : -EINVAL;
}

static int spawner_file_actions(posix_spawn_file_actions_t *actions, const SpawnRequest *req, const char *cwd,
				const char *tty_path, const int *fds)
{
	int rc = posix_spawn_file_actions_init(actions);
	if (rc)
		return -rc;
	if (req->flags & SPAWN_TTY) {
		/* Opened after setsid(), the terminal becomes the child's controlling terminal. */
		rc = posix_spawn_file_actions_addopen(actions, 0, tty_path, O_RDWR, 0);
		if (!rc)
			rc = posix_spawn_file_actions_adddup2(actions, 0, 1);
		if (!rc)
			rc = posix_spawn_file_actions_adddup2(actions, 0, 2);
	} else {
		for (int i = 0; i < 3 && !rc; i++)
			rc = posix_spawn_file_actions_adddup2(actions, fds[i], i);
	}
	if (!rc)
		rc = posix_spawn_file_actions_addchdir_np(actions, cwd);
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(actions, 3);
	if (rc)
		posix_spawn_file_actions_destroy(actions);
	return -rc;
}

/* Dispositions and mask back to defaults in the child: nothing of execd's signal set-up leaks. */
static int spawner_attrs(posix_spawnattr_t *attr)
{
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	int rc = posix_spawnattr_init(attr);
	if (!rc)
		rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(attr, &all);
	if (!rc)
		rc = posix_spawnattr_setsigmask(attr, &none);
	return -rc;
}

static void spawner_remember(SpawnerState *state, pid_t pid)
{
	if (state->count == state->capacity) {
		size_t capacity = state->capacity ? state->capacity * 2 : 64;
		pid_t *grown = realloc(state->groups, capacity * sizeof(*grown));
		if (!grown)
			return; /* only the kill at shutdown misses it: the leader is still reaped */
		state->groups = grown;
		state->capacity = capacity;
	}
	state->groups[state->count++] = pid;
}

/* A group is forgotten once it is empty: its leader reaped and no member left to signal. */
static void spawner_prune(SpawnerState *state)
{
	for (size_t i = 0; i < state->count;) {
		pid_t pgid = state->groups[i];
		if (kill(-pgid, 0) < 0 && errno == ESRCH)
			state->groups[i] = state->groups[--state->count];
		else
			i++;
	}
}

static int spawner_run(SpawnerState *state, const SpawnRequest *req, char *payload, const int *fds, pid_t *pid)
{
	const char *cwd = "/", *tty_path = "";
	char **argv = calloc((size_t)req->argc + 1, sizeof(*argv));
	char **envp = calloc((size_t)req->envc + 1, sizeof(*envp));
	int rc = argv && envp ? spawner_parse_payload(payload, req->payload_len, req, &cwd, &tty_path, argv, envp)
			      : -ENOMEM;
	if (rc == 0 && (req->argc == 0 || cwd[0] != '/'))
		rc = -EINVAL;
	const char *path_env = NULL;
	for (uint32_t i = 0; rc == 0 && i < req->envc; i++)
		if (strncmp(envp[i], "PATH=", 5) == 0)
			path_env = envp[i] + 5;
	char program[4096];
	if (rc == 0)
		rc = spawner_find_program(argv[0], path_env, cwd, program, sizeof(program));
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	if (rc == 0)
		rc = spawner_file_actions(&actions, req, cwd, tty_path, fds);
	if (rc == 0) {
		rc = spawner_attrs(&attr);
		if (rc == 0) {
			rc = -posix_spawn(pid, program, &actions, &attr, argv, envp);
			posix_spawnattr_destroy(&attr);
		}
		posix_spawn_file_actions_destroy(&actions);
	}
	if (rc == 0)
		spawner_remember(state, *pid);
	free(argv);
	free(envp);
	return rc;
}

/* Reads one request with its fds; returns -EPIPE when execd closed its end. */
static int spawner_serve_one(SpawnerState *state, int sock)
{
	SpawnRequest req;
	int fds[3] = { -1, -1, -1 };
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -EPIPE;
	if (n != (ssize_t)sizeof(req) || (msg.msg_flags & MSG_CTRUNC))
		return -EPROTO;
	size_t nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
		}
	}
	bool is_tty = req.flags & SPAWN_TTY;
	if (req.type != SPAWN_MSG_SPAWN || req.payload_len > SPAWN_MAX_PAYLOAD || req.argc > SPAWN_MAX_ARGS ||
	    req.envc > SPAWN_MAX_ENV || nfds != (is_tty ? 0u : 3u))
		return -EPROTO;
	char *payload = malloc(req.payload_len ? req.payload_len : 1);
	int rc = payload ? spawner_read_all(sock, payload, req.payload_len) : -ENOMEM;
	pid_t pid = 0;
	if (rc == 0)
		rc = spawner_run(state, &req, payload, fds, &pid);
	free(payload);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	if (rc == -EPIPE)
		return rc;
	if (rc < 0)
		spawner_reply(state, sock, SPAWN_MSG_FAILED, req.tag, 0, -rc);
	else
		spawner_reply(state, sock, SPAWN_MSG_STARTED, req.tag, pid, 0);
	return 0;
}

static void spawner_reap(SpawnerState *state, int sock)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		spawner_reply(state, sock, SPAWN_MSG_EXITED, 0, pid, status);
	spawner_prune(state);
}

/* execd is gone: nobody is left to ask for these commands' output, so they go too. */
static void spawner_finish(SpawnerState *state)
{
	for (size_t i = 0; i < state->count; i++)
		kill(-state->groups[i], SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	_exit(0);
}

static void spawner_main(int sock, int sigfd)
{
	SpawnerState state = { 0 };
	for (;;) {
		struct pollfd pfds[2] = { { .fd = sock, .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };
		if (poll(pfds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			spawner_finish(&state);
		}
		if (pfds[1].revents & POLLIN) {
			struct signalfd_siginfo info;
			while (read(sigfd, &info, sizeof(info)) == (ssize_t)sizeof(info))
				;
			spawner_reap(&state, sock);
		}
		if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int rc = spawner_serve_one(&state, sock);
			if (rc < 0) {
				if (rc != -EPIPE)
					log_error("spawner: malformed request from execd (%s)", strerror(-rc));
				spawner_finish(&state);
			}
		}
	}
}

/* In the forked child: only the socket survives, every signal is blocked but SIGCHLD read from an fd. */
static void spawner_child(int sock)
{
	static const cap_value_t root_keep[] = { CAP_SETFCAP };
	if (dup2(sock, SPAWNER_FD) < 0)
		_exit(1);
	close_range(SPAWNER_FD + 1, ~0u, 0);
	fcntl(SPAWNER_FD, F_SETFD, FD_CLOEXEC);
	prctl(PR_SET_NAME, "execd-spawner");
	/* Orphaned grandchildren come back to us, not to a PID 1 that may never reap them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigset_t chld, all;
	signal(SIGCHLD, SIG_DFL); /* an ignored SIGCHLD would reap behind our back */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	int sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0)
		_exit(1);
	/* Run as root, a sandbox maps uid 0 into its user namespace: the kernel asks CAP_SETFCAP for it. */
	if (daemon_confine("execd spawner", root_keep, geteuid() == 0 ? 1 : 0) < 0)
		_exit(1);
	spawner_main(SPAWNER_FD, sigfd);
}

int spawner_start(int *sock, pid_t *pid)
{
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		return -errno;
	/* Room for many small replies, so the spawner never blocks on a busy execd. */
	int size = 1 << 20;
	setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	pid_t child = fork();
	if (child < 0) {
		int rc = -errno;
		close(pair[0]);
		close(pair[1]);
		return rc;
	}
	if (child == 0) {
		close(pair[0]);
		spawner_child(pair[1]);
		_exit(1);
	}
	close(pair[1]);
	fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK);
	*sock = pair[0];
	*pid = child;
	return 0;
}

int spawner_send(int sock, uint32_t tag, uint32_t flags, const char *cwd, const char *tty_path,
		 const char *const *argv, uint32_t argc, const char *const *envp, uint32_t envc, const int *fds)
{
	size_t len = strlen(cwd) + 1 + strlen(tty_path ? tty_path : "") + 1;
	for (uint32_t i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	for (uint32_t i = 0; i < envc; i++)
		len += strlen(envp[i]) + 1;
	if (len > SPAWN_MAX_PAYLOAD || argc > SPAWN_MAX_ARGS || envc > SPAWN_MAX_ENV)
		return -E2BIG;
	char *payload = malloc(len), *at = payload;
	if (!payload)
		return -ENOMEM;
	at = stpcpy(at, cwd) + 1;
	at = stpcpy(at, tty_path ? tty_path : "") + 1;
	for (uint32_t i = 0; i < argc; i++)
		at = stpcpy(at, argv[i]) + 1;
	for (uint32_t i = 0; i < envc; i++)
		at = stpcpy(at, envp[i]) + 1;
	SpawnRequest req = { .type = SPAWN_MSG_SPAWN, .tag = tag, .flags = flags, .argc = argc, .envc = envc,
			     .payload_len = (uint32_t)len };
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fds) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(3 * sizeof(int));
		memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
	}
	ssize_t n;
	for (;;) {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = sock, .events = POLLOUT };
			poll(&pfd, 1, -1);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	int rc = n < 0 ? -errno : 0;
	/* A stream socket may take part of the header; the rest (and the payload) follows plainly. */
	if (rc == 0 && (size_t)n < sizeof(req))
		rc = spawner_write_all(sock, (const char *)&req + n, sizeof(req) - (size_t)n);
	if (rc == 0)
		rc = spawner_write_all(sock, payload, len);
	free(payload);
	return rc;
}
