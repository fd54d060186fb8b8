/* SPDX-License-Identifier: MIT */
/* inner.c - the last step before the user's command runs inside a sandbox. */
#include "inner.h"

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Ways to read or steer another process, or to do I/O seccomp cannot see. */
static const char *const always_denied[] = {
	"ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup", "io_uring_enter", "io_uring_register",
};

/* With the network restricted. recvfrom stays: cargo and others use it on pipes-as-sockets. */
static const char *const network_denied[] = {
	"connect",     "accept", "accept4",  "bind",	 "listen",     "getpeername", "getsockname",
	"shutdown",    "sendto", "sendmmsg", "recvmmsg", "getsockopt", "setsockopt",
};

static int deny_names(scmp_filter_ctx ctx, const char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int install_seccomp(bool is_network_restricted)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -ENOMEM;
	int rc = deny_names(ctx, always_denied, sizeof(always_denied) / sizeof(always_denied[0]));
	if (rc == 0 && is_network_restricted) {
		rc = deny_names(ctx, network_denied, sizeof(network_denied) / sizeof(network_denied[0]));
		if (rc == 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
					      SCMP_A0(SCMP_CMP_NE, AF_UNIX));
		if (rc == 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socketpair), 1,
					      SCMP_A0(SCMP_CMP_NE, AF_UNIX));
	}
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	return rc;
}

/* Bounding set first: dropping it needs CAP_SETPCAP, which the cap_clear below takes away. */
static int drop_capabilities(void)
{
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
		if (CAP_IS_SUPPORTED(c) && cap_get_bound(c) == 1 && cap_drop_bound(c) < 0 && errno != EPERM)
			return -errno;
	if (cap_reset_ambient() < 0 && errno != EINVAL)
		return -errno;
	cap_t none = cap_init();
	if (!none)
		return -ENOMEM;
	int rc = cap_set_proc(none) < 0 ? -errno : 0;
	cap_free(none);
	return rc;
}

int inner_restrict(bool is_network_restricted)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	int rc = drop_capabilities();
	return rc < 0 ? rc : install_seccomp(is_network_restricted);
}

static int usage(void)
{
	fprintf(stderr, "usage: agentd-sandbox --seccomp restricted|base -- COMMAND [ARG...]\n");
	return 2;
}

int inner_stage_main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[1], "--seccomp") != 0 || strcmp(argv[3], "--") != 0)
		return usage();
	bool is_restricted = strcmp(argv[2], "restricted") == 0;
	if (!is_restricted && strcmp(argv[2], "base") != 0)
		return usage();
	int rc = inner_restrict(is_restricted);
	if (rc < 0) {
		fprintf(stderr, "agentd-sandbox: cannot restrict the sandbox: %s\n", strerror(-rc));
		return 126;
	}
	execvp(argv[4], argv + 4);
	int saved = errno;
	fprintf(stderr, "agentd-sandbox: %s: %s\n", argv[4], strerror(saved));
	/* Under our own seccomp filter now: leave without the exit handlers (a leak checker's
	 * ptrace would be refused and turn the status into its own). */
	fflush(NULL);
	_exit(saved == ENOENT ? 127 : 126);
}
