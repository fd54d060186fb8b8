/* SPDX-License-Identifier: MIT */
/* seccomp_filter.c - libseccomp allow-list: the event loop, nng's threads and sockets, config reads, logs. */
#include "seccomp_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

/*
 * What every helper needs to run its libuv loop, nng's worker threads and AF_UNIX links, read
 * config.toml again on SIGHUP and write its log. Notably absent: execve, ptrace, mount,
 * unshare/setns, bind/listen/accept, kill, bpf, io_uring, process_vm_*, keyctl, perf_event_open, module
 * loading.
 */
static const char *const seccomp_base_syscalls[] = {
	"read",
	"readv",
	"write",
	"writev",
	"pread64",
	"close",
	"close_range",
	"newfstatat",
	"fstat",
	"stat",
	"lstat",
	"statx",
	"lseek",
	"access",
	"faccessat",
	"faccessat2",
	"readlink",
	"readlinkat",
	"getcwd",
	"fcntl",
	"ioctl",
	"dup",
	"dup2",
	"dup3",
	"pipe2",
	"mmap",
	"munmap",
	"mprotect",
	"mremap",
	"madvise",
	"brk",
	"futex",
	"clone",
	"clone3",
	"set_robust_list",
	"get_robust_list",
	"rseq",
	"set_tid_address",
	"sched_yield",
	"sched_getaffinity",
	"membarrier",
	"rt_sigaction",
	"rt_sigprocmask",
	"rt_sigreturn",
	"rt_sigtimedwait",
	"sigaltstack",
	"restart_syscall",
	"exit",
	"exit_group",
	"getpid",
	"gettid",
	"getppid",
	"getuid",
	"geteuid",
	"getgid",
	"getegid",
	"tgkill",
	"prctl",
	"prlimit64",
	"getrlimit",
	"uname",
	"capget",
	"getrandom",
	"clock_gettime",
	"clock_getres",
	"clock_nanosleep",
	"nanosleep",
	"gettimeofday",
	"time",
	"epoll_create1",
	"epoll_ctl",
	"epoll_wait",
	"epoll_pwait",
	"epoll_pwait2",
	"eventfd2",
	"poll",
	"ppoll",
	"select",
	"pselect6",
	"timerfd_create",
	"timerfd_settime",
	"connect",
	"sendmsg",
	"recvmsg",
	"sendto",
	"recvfrom",
	"getsockopt",
	"setsockopt",
	"getsockname",
	"getpeername",
	"shutdown",
	"socketpair",
#if defined(__SANITIZE_ADDRESS__)
	/* LeakSanitizer stops the world with ptrace from a tracer thread and lists /proc/self/task
	 * with the old getdents(2) at exit. */
	"ptrace",
	"wait4",
	"waitid",
	"process_vm_readv",
	"sched_setaffinity",
	"getdents",
	"getdents64",
	"tkill",
#endif
};

static int seccomp_allow_by_name(scmp_filter_ctx ctx, const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return 0; /* not a syscall on this architecture (e.g. "open" on arm64) */
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

static int seccomp_allow_sockets(scmp_filter_ctx ctx, bool allows_inet)
{
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	if (rc == 0 && allows_inet)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_EQ, AF_INET));
	if (rc == 0 && allows_inet)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_EQ, AF_INET6));
	return rc;
}

/* Which flags make an open a write: refused outright for a read-only daemon. */
#define SECCOMP_WRITE_OPEN_FLAGS (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)

static int seccomp_allow_opens(scmp_filter_ctx ctx, bool is_read_only)
{
	if (!is_read_only) {
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 0);
		return rc == 0 ? seccomp_allow_by_name(ctx, "open") : rc;
	}
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				  SCMP_A2(SCMP_CMP_MASKED_EQ, SECCOMP_WRITE_OPEN_FLAGS, 0));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
				      SCMP_A1(SCMP_CMP_MASKED_EQ, SECCOMP_WRITE_OPEN_FLAGS, 0));
	return rc;
}

int seccomp_filter_apply(const char *name, const SeccompProfile *profile)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(seccomp_base_syscalls) / sizeof(seccomp_base_syscalls[0]);
	     i++)
		rc = seccomp_allow_by_name(ctx, seccomp_base_syscalls[i]);
	for (size_t i = 0; rc == 0 && profile && i < profile->extra_count; i++)
		rc = seccomp_allow_by_name(ctx, profile->extra_syscalls[i]);
	if (rc == 0)
		rc = seccomp_allow_sockets(ctx, profile && profile->allows_inet_sockets);
	if (rc == 0)
		rc = seccomp_allow_opens(ctx, profile && profile->is_read_only);
	/* TSYNC: nng may already have started threads; they get the same filter. */
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0)
		log_error("%s: cannot install the seccomp allow-list: %s", name, strerror(-rc));
	return rc;
}
