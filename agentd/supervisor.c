/* SPDX-License-Identifier: MIT */
/* supervisor.c - helper processes as libuv children: spawn, reap, back off, restart, stop. */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"

typedef struct SupervisedChild {
	Supervisor *sup;
	char name[32];
	char path[AGENTD_PATH_MAX];
	pid_t pid;
	uv_timer_t restart_timer;
	bool is_running;
	uint64_t started_ms;
	uint32_t backoff_ms;
	unsigned restarts;
} SupervisedChild;

struct Supervisor {
	uv_loop_t *loop;
	SupervisedChild *children;
	size_t child_count;
	SupervisorEvents events;
	void *ctx;
	bool is_debug;
	bool is_stopping;
	uv_timer_t kill_timer;
	uv_signal_t sigchld;
	int open_handles;
};

extern char **environ;

static SupervisedChild *supervisor_find(const Supervisor *sup, const char *name)
{
	for (size_t i = 0; i < sup->child_count; i++) {
		if (strcmp(sup->children[i].name, name) == 0)
			return &sup->children[i];
	}
	return NULL;
}

static int supervisor_self_dir(char *out, size_t out_len)
{
	char exe[AGENTD_PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	return snprintf(out, out_len, "%s", exe) < (int)out_len ? 0 : -ENAMETOOLONG;
}

/* The build tree first (agentd/agentd next to execd/execd), so tests never run an installed copy. */
static int supervisor_locate(const char *name, const char *libexec_dir, char *out, size_t out_len)
{
	char self_dir[AGENTD_PATH_MAX];
	char candidate[AGENTD_PATH_MAX * 2];
	if (supervisor_self_dir(self_dir, sizeof(self_dir)) == 0) {
		snprintf(candidate, sizeof(candidate), "%s/../%s/%s", self_dir, name, name);
		if (access(candidate, X_OK) == 0)
			return path_normalize(NULL, candidate, out, out_len);
	}
	snprintf(candidate, sizeof(candidate), "%s/%s", libexec_dir, name);
	if (access(candidate, X_OK) == 0)
		return path_normalize(NULL, candidate, out, out_len);
	log_error("cannot find the %s binary (looked beside agentd and in %s)", name, libexec_dir);
	return -ENOENT;
}

/* The child starts with default dispositions, an empty mask, /dev/null for stdin and stdout
 * (stdout may be a client's stdio transport) and only stderr inherited. */
static int supervisor_spawn_attrs(posix_spawnattr_t *attr, posix_spawn_file_actions_t *actions)
{
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	int rc = posix_spawnattr_init(attr);
	if (rc == 0)
		rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	if (rc == 0)
		rc = posix_spawnattr_setsigdefault(attr, &all);
	if (rc == 0)
		rc = posix_spawnattr_setsigmask(attr, &none);
	if (rc == 0)
		rc = posix_spawn_file_actions_init(actions);
	if (rc == 0)
		rc = posix_spawn_file_actions_addopen(actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_addopen(actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_addclosefrom_np(actions, STDERR_FILENO + 1);
	return -rc;
}

/* posix_spawn is vfork-based in glibc: no copy of agentd's page tables, the parent waits only until exec. */
static int supervisor_spawn(SupervisedChild *child)
{
	Supervisor *sup = child->sup;
	char *args[4];
	int argc = 0;
	args[argc++] = child->path;
	args[argc++] = "--supervised";
	if (sup->is_debug)
		args[argc++] = "-d";
	args[argc] = NULL;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t actions;
	int rc = supervisor_spawn_attrs(&attr, &actions);
	if (rc == 0)
		rc = -posix_spawn(&child->pid, child->path, &actions, &attr, args, environ);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	if (rc < 0) {
		log_error("cannot spawn %s: %s", child->path, strerror(-rc));
		return rc;
	}
	child->is_running = true;
	child->started_ms = uv_now(sup->loop);
	log_info("spawned %s (pid %d)", child->name, (int)child->pid);
	return 0;
}

static void supervisor_on_restart_timer(uv_timer_t *timer)
{
	SupervisedChild *child = timer->data;
	if (child->sup->is_stopping || child->is_running)
		return;
	child->restarts++;
	if (supervisor_spawn(child) < 0) {
		child->backoff_ms = child->backoff_ms * 2 > SUPERVISOR_BACKOFF_MAX_MS
					    ? SUPERVISOR_BACKOFF_MAX_MS
					    : child->backoff_ms * 2;
		uv_timer_start(&child->restart_timer, supervisor_on_restart_timer, child->backoff_ms, 0);
	}
}

static bool supervisor_all_exited(const Supervisor *sup)
{
	for (size_t i = 0; i < sup->child_count; i++) {
		if (sup->children[i].is_running)
			return false;
	}
	return true;
}

static void supervisor_schedule_restart(SupervisedChild *child)
{
	Supervisor *sup = child->sup;
	uint64_t lived_ms = uv_now(sup->loop) - child->started_ms;
	if (lived_ms >= SUPERVISOR_STABLE_MS || child->backoff_ms == 0)
		child->backoff_ms = SUPERVISOR_BACKOFF_MIN_MS;
	else
		child->backoff_ms = child->backoff_ms * 2 > SUPERVISOR_BACKOFF_MAX_MS
					    ? SUPERVISOR_BACKOFF_MAX_MS
					    : child->backoff_ms * 2;
	log_warn("%s: restarting in %u ms (restart #%u)", child->name, child->backoff_ms,
		 child->restarts + 1);
	uv_timer_start(&child->restart_timer, supervisor_on_restart_timer, child->backoff_ms, 0);
}

static void supervisor_on_exit(SupervisedChild *child, int wait_status)
{
	Supervisor *sup = child->sup;
	int exit_status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 0;
	int term_signal = WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : 0;
	child->is_running = false;
	if (term_signal)
		log_warn("%s (pid %d) killed by signal %d", child->name, (int)child->pid, term_signal);
	else
		log_info("%s (pid %d) exited with status %d", child->name, (int)child->pid, exit_status);
	child->pid = 0;
	if (sup->events.on_exit)
		sup->events.on_exit(sup->ctx, child->name, exit_status, term_signal);
	if (!sup->is_stopping) {
		supervisor_schedule_restart(child);
		return;
	}
	if (supervisor_all_exited(sup)) {
		uv_timer_stop(&sup->kill_timer);
		if (sup->events.on_stopped)
			sup->events.on_stopped(sup->ctx);
	}
}

static SupervisedChild *supervisor_child_by_pid(Supervisor *sup, pid_t pid)
{
	for (size_t i = 0; i < sup->child_count; i++)
		if (sup->children[i].is_running && sup->children[i].pid == pid)
			return &sup->children[i];
	return NULL;
}

/*
 * agentd is the subreaper of what it starts: a helper's own children (execd's spawner) that
 * outlive it come to agentd, not to a PID 1 that may never reap them.
 */
static void supervisor_reap_orphans(Supervisor *sup)
{
	for (;;) {
		siginfo_t info = { 0 };
		if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0)
			return;
		int wait_status;
		if (waitpid(info.si_pid, &wait_status, WNOHANG) != info.si_pid)
			return;
		SupervisedChild *child = supervisor_child_by_pid(sup, info.si_pid);
		if (child)
			supervisor_on_exit(child, wait_status);
	}
}

/* Signals coalesce: one SIGCHLD may stand for several exits, so every child is polled. */
static void supervisor_on_sigchld(uv_signal_t *sig, int signum)
{
	Supervisor *sup = sig->data;
	for (size_t i = 0; i < sup->child_count; i++) {
		SupervisedChild *child = &sup->children[i];
		int wait_status;
		if (!child->is_running)
			continue;
		pid_t pid = waitpid(child->pid, &wait_status, WNOHANG);
		if (pid == child->pid)
			supervisor_on_exit(child, wait_status);
	}
	supervisor_reap_orphans(sup);
}

int supervisor_start(Supervisor *sup)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (size_t i = 0; i < sup->child_count; i++) {
		int rc = supervisor_spawn(&sup->children[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void supervisor_on_kill_timer(uv_timer_t *timer)
{
	Supervisor *sup = timer->data;
	for (size_t i = 0; i < sup->child_count; i++) {
		SupervisedChild *child = &sup->children[i];
		if (child->is_running) {
			log_warn("%s did not stop within %u ms: SIGKILL", child->name,
				 SUPERVISOR_STOP_GRACE_MS);
			kill(child->pid, SIGKILL);
		}
	}
}

void supervisor_stop(Supervisor *sup)
{
	if (sup->is_stopping)
		return;
	sup->is_stopping = true;
	for (size_t i = 0; i < sup->child_count; i++) {
		SupervisedChild *child = &sup->children[i];
		uv_timer_stop(&child->restart_timer);
		if (child->is_running)
			kill(child->pid, SIGTERM);
	}
	if (supervisor_all_exited(sup)) {
		if (sup->events.on_stopped)
			sup->events.on_stopped(sup->ctx);
		return;
	}
	uv_timer_start(&sup->kill_timer, supervisor_on_kill_timer, SUPERVISOR_STOP_GRACE_MS, 0);
}

void supervisor_signal(Supervisor *sup, int signum)
{
	for (size_t i = 0; i < sup->child_count; i++)
		if (sup->children[i].is_running)
			kill(sup->children[i].pid, signum);
}

unsigned supervisor_restarts(const Supervisor *sup, const char *service)
{
	const SupervisedChild *child = supervisor_find(sup, service);
	return child ? child->restarts : 0;
}

int supervisor_pid(const Supervisor *sup, const char *service)
{
	const SupervisedChild *child = supervisor_find(sup, service);
	return child && child->is_running ? (int)child->pid : 0;
}

int supervisor_new(uv_loop_t *loop, const char *const *services, size_t service_count,
		   const char *libexec_dir, bool is_debug, const SupervisorEvents *events, void *ctx,
		   Supervisor **out)
{
	Supervisor *sup = calloc(1, sizeof(*sup));
	if (!sup)
		return -ENOMEM;
	sup->children = calloc(service_count, sizeof(*sup->children));
	if (!sup->children) {
		free(sup);
		return -ENOMEM;
	}
	sup->loop = loop;
	sup->events = *events;
	sup->ctx = ctx;
	sup->is_debug = is_debug;
	uv_timer_init(loop, &sup->kill_timer);
	sup->kill_timer.data = sup;
	sup->open_handles++;
	uv_signal_init(loop, &sup->sigchld);
	sup->sigchld.data = sup;
	sup->open_handles++;
	int rc = uv_signal_start(&sup->sigchld, supervisor_on_sigchld, SIGCHLD);
	if (rc < 0) {
		supervisor_free(sup);
		return rc;
	}
	for (size_t i = 0; i < service_count; i++) {
		SupervisedChild *child = &sup->children[i];
		child->sup = sup;
		snprintf(child->name, sizeof(child->name), "%s", services[i]);
		rc = supervisor_locate(services[i], libexec_dir, child->path, sizeof(child->path));
		if (rc < 0) {
			supervisor_free(sup);
			return rc;
		}
		sup->child_count = i + 1;
		uv_timer_init(loop, &child->restart_timer);
		child->restart_timer.data = child;
		sup->open_handles++;
	}
	*out = sup;
	return 0;
}

static void supervisor_release(Supervisor *sup)
{
	if (--sup->open_handles == 0) {
		free(sup->children);
		free(sup);
	}
}

static void supervisor_on_handle_closed(uv_handle_t *handle)
{
	supervisor_release(handle->data);
}

static void supervisor_on_child_timer_closed(uv_handle_t *handle)
{
	SupervisedChild *child = handle->data;
	supervisor_release(child->sup);
}

void supervisor_free(Supervisor *sup)
{
	if (!sup)
		return;
	for (size_t i = 0; i < sup->child_count; i++)
		uv_close((uv_handle_t *)&sup->children[i].restart_timer, supervisor_on_child_timer_closed);
	uv_close((uv_handle_t *)&sup->kill_timer, supervisor_on_handle_closed);
	uv_close((uv_handle_t *)&sup->sigchld, supervisor_on_handle_closed);
}
