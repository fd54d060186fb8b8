/* SPDX-License-Identifier: MIT */
/* plan.h - compile a policy for one cwd into a launch plan, and render it for a launcher. */
#ifndef SANDBOXD_PLAN_H
#define SANDBOXD_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

/* One step of building the sandbox's filesystem, in bubblewrap's vocabulary and order. */
typedef enum PlanOpKind {
	OP_RO_BIND,	/* --ro-bind src dest (recursive, read-only) */
	OP_BIND,	/* --bind src dest (recursive, writable) */
	OP_TMPFS,	/* [--perms P] --tmpfs dest */
	OP_DEV,		/* --dev dest: a minimal /dev */
	OP_PROC,	/* --proc dest: the new pid namespace's /proc */
	OP_REMOUNT_RO,	/* --remount-ro dest (that mount only) */
	OP_SYMLINK,	/* --symlink target dest (in an empty root: /lib64 -> usr/lib64 and the like) */
	OP_RO_BIND_TRY, /* --ro-bind-try src dest: as OP_RO_BIND, nothing when src is gone by launch time */
	OP_BIND_TRY,	/* --bind-try src dest: as OP_BIND, likewise */
} PlanOpKind;

typedef struct PlanOp {
	PlanOpKind kind;
	int perms; /* OP_TMPFS: the mode of its root, -1 for the default 0755 */
	char *src; /* the binds; OP_SYMLINK: the link's text */
	char *dest;
} PlanOp;

typedef struct StrVec {
	char **items; /* NULL-terminated while count < capacity */
	size_t count;
	size_t capacity;
} StrVec;

/* Where the compiler finds the host files it binds over hidden paths. */
typedef struct PlanEnv {
	const char *empty_file;		 /* empty, mode 0000: masks a denied file */
	const char *empty_readable_file; /* empty, mode 0444: masks a missing read-only path */
	const char *const *hidden_paths; /* always denied: the runtime directory, auth.json, ... */
	size_t hidden_count;
	const char *stage_dir; /* where the in-sandbox stage is exec'd from (system bwrap), or NULL */
	/*
	 * $CODEX_HOME, or NULL: masked whole by an empty read-only directory, what it holds bound back
	 * with the policy's access, but for the credential files (see plan.c, the credential home).
	 */
	const char *credential_home;
} PlanEnv;

typedef struct Plan {
	bool is_unwrapped;	  /* full access: run the command as it is */
	bool is_network_isolated; /* new network namespace + the seccomp network filter */
	char cwd[4096];		  /* canonical */
	PlanOp *ops;
	size_t op_count;
	size_t op_capacity;
	/*
	 * Host paths the launcher holds as mount points (see supervise.h): masks of missing paths, which
	 * it creates, and empty ones at a mask's place, maybe another sandbox's. A sandbox's are
	 * removed by the last one out.
	 */
	StrVec created;
} Plan;

/* How the command re-enters sandboxd inside the sandbox. */
typedef struct LaunchTarget {
	const char *bwrap;	 /* system bwrap's path, or NULL for the built-in launcher */
	bool bwrap_has_argv0;	 /* pass --argv0 and re-enter through @helper_exe */
	const char *helper_exe;	 /* sandboxd's full path (with --argv0) */
	const char *helper_link; /* full path whose basename dispatches the inner stage (compat, built-in) */
	const char *lock_dir;	 /* where launchers lock the masks' mount points (see supervise.h) */
} LaunchTarget;

#define INNER_STAGE_NAME "agentd-sandbox"

/*
 * The most entries the credential home may hold: each is a mount of every sandbox. A usual
 * CODEX_HOME holds a score of them; beyond this bound plans are refused, never left unmasked.
 */
#define PLAN_HOME_MAX_ENTRIES 256

void strvec_free(StrVec *v);
int strvec_push(StrVec *v, const char *s);

void plan_free(Plan *plan);

/** plan_add_op() - append one step (@src NULL where the kind takes none). Return: 0 or -ENOMEM. */
int plan_add_op(Plan *plan, PlanOpKind kind, int perms, const char *src, const char *dest);

/**
 * plan_compile() - turn @policy and @cwd into the ordered mount list of a sandbox.
 * Shapes the launchers cannot enforce exactly are refused, never weakened.
 * Return: 0; -EINVAL with @err naming the path (a read-only or deny path crossing a writable
 * symlink, a missing cwd, a missing writable carve-out under a read-only parent, a credential home
 * that cannot be listed or holds more than PLAN_HOME_MAX_ENTRIES entries); -ENOMEM.
 */
int plan_compile(Plan *plan, const Policy *policy, const char *cwd, const PlanEnv *env, char *err,
		 size_t err_len);

/**
 * plan_render() - the argv that runs @command under @plan through @target: bwrap's command line
 * (behind "agentd-sandbox --supervise" when the plan creates mount points on the host), the
 * built-in launcher's (same vocabulary), or @command itself for an unwrapped plan.
 * Return: 0 or -ENOMEM; @argv is the caller's (strvec_free).
 */
int plan_render(const Plan *plan, const LaunchTarget *target, char *const *command, StrVec *argv);

/** plan_op_flag() - the bwrap flag of @kind ("--ro-bind", ...). */
const char *plan_op_flag(PlanOpKind kind);

#endif
