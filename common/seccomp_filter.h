/* SPDX-License-Identifier: MIT */
/* seccomp_filter.h - the system-call allow-list every helper daemon installs before its loop runs. */
#ifndef AGENTD_SECCOMP_FILTER_H
#define AGENTD_SECCOMP_FILTER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct SeccompProfile {
	/* Syscalls this daemon's duty needs beyond the common base (names as in libseccomp). */
	const char *const *extra_syscalls;
	size_t extra_count;
	/* socket(2) beyond AF_UNIX: only a daemon that talks to the network (authd) sets this. */
	bool allows_inet_sockets;
	/* open(2)/openat(2) only without O_WRONLY, O_RDWR, O_CREAT, O_TRUNC and O_APPEND (watchd). */
	bool is_read_only;
} SeccompProfile;

/**
 * seccomp_filter_apply() - install the base allow-list plus @profile's additions for this
 * process and every thread it creates afterwards (and sets no_new_privs, which seccomp needs).
 * Anything else fails with EPERM instead of running: the daemon sees an error it can report,
 * never a silent success.
 * Return: 0 or a negative errno.
 */
int seccomp_filter_apply(const char *name, const SeccompProfile *profile);

#endif
