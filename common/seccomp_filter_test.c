/* SPDX-License-Identifier: MIT */
/* seccomp_filter_test.c - the allow-list really refuses what it leaves out (checked in a child). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp_filter.h"

/* Each probe runs in a forked child (the filter cannot be removed) and exits 0 on the expected outcome. */
typedef int (*Probe)(void);

static int probe_execve_refused(void)
{
	char *argv[] = { "/bin/true", NULL };
	execve("/bin/true", argv, NULL);
	return errno == EPERM ? 0 : 1;
}

static int probe_inet_socket_refused(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	return fd < 0 && errno == EPERM ? 0 : 1;
}

static int probe_unix_socket_allowed(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	return fd >= 0 ? 0 : 1;
}

static int probe_listen_refused(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	return fd >= 0 && listen(fd, 1) < 0 && errno == EPERM ? 0 : 1;
}

static int probe_config_read_allowed(void)
{
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	char buf[64];
	return fd >= 0 && read(fd, buf, sizeof(buf)) > 0 ? 0 : 1;
}

static int probe_no_new_privs_set(void)
{
	return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : 1;
}

static int probe_inet_allowed_with_profile(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	return fd >= 0 ? 0 : 1;
}

static void run_in_filtered_child(const SeccompProfile *profile, Probe probe)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (seccomp_filter_apply("test", profile) < 0)
			_exit(2);
		_exit(probe());
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_base_refuses_execve(void **state)
{
	run_in_filtered_child(NULL, probe_execve_refused);
}

static void test_base_refuses_inet_sockets(void **state)
{
	run_in_filtered_child(NULL, probe_inet_socket_refused);
}

static void test_base_allows_unix_sockets(void **state)
{
	run_in_filtered_child(NULL, probe_unix_socket_allowed);
}

static void test_base_refuses_listen(void **state)
{
	run_in_filtered_child(NULL, probe_listen_refused);
}

static void test_base_allows_reading_files(void **state)
{
	run_in_filtered_child(NULL, probe_config_read_allowed);
}

static void test_filter_sets_no_new_privs(void **state)
{
	run_in_filtered_child(NULL, probe_no_new_privs_set);
}

static void test_profile_adds_inet(void **state)
{
	SeccompProfile profile = { .allows_inet_sockets = true };
	run_in_filtered_child(&profile, probe_inet_allowed_with_profile);
}

static int probe_kill_refused(void)
{
	return kill(getpid(), 0) < 0 && errno == EPERM ? 0 : 1;
}

static int probe_kill_allowed(void)
{
	return kill(getpid(), 0) == 0 ? 0 : 1;
}

static int probe_read_only_refuses_writes(void)
{
	int rd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	int wr = open("/tmp/seccomp_filter_test.created", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	int wr_errno = errno;
	int rw = open("/dev/null", O_RDWR | O_CLOEXEC);
	int rw_errno = errno;
	return rd >= 0 && wr < 0 && wr_errno == EPERM && rw < 0 && rw_errno == EPERM ? 0 : 1;
}

static int probe_writable_opens_allowed(void)
{
	int rw = open("/dev/null", O_RDWR | O_CLOEXEC);
	return rw >= 0 ? 0 : 1;
}

static void test_read_only_profile_refuses_write_opens(void **state)
{
	SeccompProfile profile = { .is_read_only = true };
	unlink("/tmp/seccomp_filter_test.created");
	run_in_filtered_child(&profile, probe_read_only_refuses_writes);
	assert_int_equal(access("/tmp/seccomp_filter_test.created", F_OK), -1);
}

static void test_base_allows_write_opens(void **state)
{
	run_in_filtered_child(NULL, probe_writable_opens_allowed);
}

static void test_base_refuses_kill(void **state)
{
	run_in_filtered_child(NULL, probe_kill_refused);
}

static void test_profile_adds_syscalls(void **state)
{
	static const char *const extra[] = { "kill" };
	SeccompProfile profile = { .extra_syscalls = extra, .extra_count = 1 };
	run_in_filtered_child(&profile, probe_kill_allowed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_refuses_execve),
		cmocka_unit_test(test_base_refuses_inet_sockets),
		cmocka_unit_test(test_base_allows_unix_sockets),
		cmocka_unit_test(test_base_refuses_listen),
		cmocka_unit_test(test_base_allows_reading_files),
		cmocka_unit_test(test_filter_sets_no_new_privs),
		cmocka_unit_test(test_profile_adds_inet),
		cmocka_unit_test(test_base_refuses_kill),
		cmocka_unit_test(test_profile_adds_syscalls),
		cmocka_unit_test(test_read_only_profile_refuses_write_opens),
		cmocka_unit_test(test_base_allows_write_opens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
