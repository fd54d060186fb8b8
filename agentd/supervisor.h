/* SPDX-License-Identifier: MIT */
/* supervisor.h - spawns the helper daemons, restarts the ones that die, stops them all on shutdown. */
#ifndef AGENTD_SUPERVISOR_H
#define AGENTD_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct Supervisor Supervisor;

typedef struct SupervisorEvents {
	/* A helper process exited (before any restart is scheduled). */
	void (*on_exit)(void *ctx, const char *service, int64_t exit_status, int term_signal);
	/* Every helper has exited after supervisor_stop(). */
	void (*on_stopped)(void *ctx);
} SupervisorEvents;

/* Restart backoff: first retry after this, doubling per quick death, capped. */
#define SUPERVISOR_BACKOFF_MIN_MS 100u
#define SUPERVISOR_BACKOFF_MAX_MS 10000u
/* A helper that ran this long is healthy again: the next death restarts at the minimum. */
#define SUPERVISOR_STABLE_MS 10000u
/* How long helpers get to exit after SIGTERM before SIGKILL. */
#define SUPERVISOR_STOP_GRACE_MS 3000u

/**
 * supervisor_new() - prepare to run @services, finding each binary next to agentd in the
 * build tree (<agentd dir>/../<name>/<name>), else in @libexec_dir.
 * Return: 0 and *out, or a negative errno (-ENOENT naming the missing binary in the log).
 */
int supervisor_new(uv_loop_t *loop, const char *const *services, size_t service_count,
		   const char *libexec_dir, bool is_debug, const SupervisorEvents *events, void *ctx,
		   Supervisor **out);

/** supervisor_start() - spawn every helper. Return 0 or the first spawn error. */
int supervisor_start(Supervisor *sup);

/** supervisor_stop() - stop restarting, SIGTERM every helper, SIGKILL after the grace period. */
void supervisor_stop(Supervisor *sup);

/** supervisor_restarts() - how many times @service was restarted. */
/** supervisor_signal() - send @signum to every running helper (SIGHUP: reload with agentd). */
void supervisor_signal(Supervisor *sup, int signum);

unsigned supervisor_restarts(const Supervisor *sup, const char *service);

/** supervisor_pid() - the helper's current pid, or 0 when not running. */
int supervisor_pid(const Supervisor *sup, const char *service);

/** supervisor_free() - release everything; helpers must have been stopped. NULL-safe. */
void supervisor_free(Supervisor *sup);

#endif
