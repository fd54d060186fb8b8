/* SPDX-License-Identifier: MIT */
/* probe.h - what this host offers a sandbox: system bwrap and its flags, user namespaces, landlock, seccomp. */
#ifndef SANDBOXD_PROBE_H
#define SANDBOXD_PROBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PROBE_MAX_WARNINGS 4

typedef enum Launcher { LAUNCHER_SYSTEM, LAUNCHER_BUILTIN } Launcher;

typedef struct Probe {
	bool has_bwrap;	      /* a usable system bwrap (found, and has --perms) */
	char bwrap[4096];     /* its canonical path */
	dev_t bwrap_dev;      /* and which file that was, to notice a replaced bwrap */
	ino_t bwrap_ino;
	off_t bwrap_size;
	time_t bwrap_mtime;
	bool bwrap_has_argv0; /* bubblewrap >= 0.9.0 */
	bool bwrap_has_perms;
	bool has_user_namespaces;	/* the trial run worked */
	bool is_user_namespace_refused; /* it failed for want of user namespaces: warned about */
	char user_namespace_error[256]; /* the trial run's stderr line when it failed */
	int landlock_abi;		/* 0: none */
	bool has_seccomp;
	Launcher launcher; /* what plans use: system bwrap when usable, else built-in */
	char warnings[PROBE_MAX_WARNINGS][4096 + 512];
	size_t warning_count;
} Probe;

typedef struct ProbeOptions {
	const char *fixed_bwrap; /* tried before PATH ("/usr/bin/bwrap"); NULL: PATH only */
	const char *path_env;	 /* $PATH to search */
	const char *cwd;	 /* candidates under it are never used */
	const char *forced;	 /* "system", "builtin" or NULL/"auto" */
} ProbeOptions;

/**
 * probe_find_bwrap() - the system bwrap: @fixed first, then the first executable "bwrap" on
 * @path_env, canonicalised, skipping any candidate under @cwd (unless @cwd is "/").
 * Return: 0 with @out set, or -ENOENT.
 */
int probe_find_bwrap(const char *fixed, const char *path_env, const char *cwd, char *out, size_t out_len);

/**
 * probe_bwrap_features() - run "@bwrap --help" and look for --argv0 and --perms in what it prints.
 * Return: 0, or a negative errno when it could not be run.
 */
int probe_bwrap_features(const char *bwrap, bool *has_argv0, bool *has_perms);

/**
 * probe_run() - probe the host. A system bwrap without --perms counts as absent. Never fails:
 * what is missing is recorded, with the warnings clients are shown.
 * Return: 0, or -EINVAL when @opts->forced names a launcher this host cannot provide
 * (the reason is the first warning).
 */
int probe_run(Probe *p, const ProbeOptions *opts);

/**
 * probe_refresh() - probe again without running anything (for a process whose seccomp list
 * forbids exec): find bwrap anew; a bwrap other than the one probed before has its binary scanned
 * for the flags; the user-namespace verdict is kept. Same result and errors as probe_run().
 */
int probe_refresh(Probe *p, const ProbeOptions *opts);

/** probe_scan_bwrap_binary() - whether bwrap's embedded usage text lists --argv0 and --perms. */
int probe_scan_bwrap_binary(const char *bwrap, bool *has_argv0, bool *has_perms);

/** probe_user_namespace_warning() - whether trial-run stderr @text is codex's "no user namespaces" case. */
bool probe_is_user_namespace_failure(const char *text);

/** probe_to_json() - the probe as the health field and `sandboxd --probe` print it. */
json_t *probe_to_json(const Probe *p);

const char *probe_launcher_name(Launcher launcher);

#endif
