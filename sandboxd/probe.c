/* SPDX-License-Identifier: MIT */
/* probe.c - find system bwrap, learn its flags, and try the kernel features a sandbox needs. */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HELP_TIMEOUT_MS 2000
#define USERNS_TIMEOUT_MS 500 /* codex's: a slow trial means no warning, not a wrong one */
#define CAPTURE_MAX (64 * 1024)

extern char **environ;

static const char *const user_namespace_errors[] = {
	"loopback: Failed RTM_NEWADDR",
	"loopback: Failed RTM_NEWLINK",
	"setting up uid map: Permission denied",
	"No permissions to create a new namespace",
};

const char *probe_launcher_name(Launcher launcher)
{
	return launcher == LAUNCHER_SYSTEM ? "system" : "builtin";
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Run @argv with stdout and stderr into @out (NUL-terminated, truncated to @out_len - 1).
 * Return: 0 with *status set; -ETIMEDOUT (the child killed and reaped); a negative errno.
 */
static int run_capture(char *const *argv, int timeout_ms, char *out, size_t out_len, int *status)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	pid_t pid;
	int rc = -posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc < 0) {
		close(pipefd[0]);
		return rc;
	}
	size_t used = 0;
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			rc = -ETIMEDOUT;
			kill(pid, SIGKILL);
			break;
		}
		char buf[4096];
		ssize_t n = read(pipefd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = (size_t)n < out_len - 1 - used ? (size_t)n : out_len - 1 - used;
		memcpy(out + used, buf, take);
		used += take;
	}
	out[used] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return rc;
}

static bool is_executable_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static bool is_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strcmp(dir, "/") != 0 && strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int accept_candidate(const char *candidate, const char *cwd_real, char *out, size_t out_len)
{
	char real[PATH_MAX];
	if (!realpath(candidate, real) || !is_executable_file(real))
		return -ENOENT;
	/* A repository must not be able to plant ./bin/bwrap and have it run with our privileges. */
	if (cwd_real[0] && is_under(real, cwd_real))
		return -ENOENT;
	return snprintf(out, out_len, "%s", real) < (int)out_len ? 0 : -ENAMETOOLONG;
}

int probe_find_bwrap(const char *fixed, const char *path_env, const char *cwd, char *out, size_t out_len)
{
	char cwd_real[PATH_MAX] = "";
	if (cwd && !realpath(cwd, cwd_real))
		snprintf(cwd_real, sizeof(cwd_real), "%s", cwd);
	if (fixed && accept_candidate(fixed, cwd_real, out, out_len) == 0)
		return 0;
	const char *p = path_env ? path_env : "";
	while (*p) {
		size_t n = strcspn(p, ":");
		char candidate[PATH_MAX];
		/* An empty entry means the current directory: never a place to find bwrap. */
		if (n > 0 && p[0] == '/' && n + sizeof("/bwrap") < sizeof(candidate)) {
			snprintf(candidate, sizeof(candidate), "%.*s/bwrap", (int)n, p);
			if (accept_candidate(candidate, cwd_real, out, out_len) == 0)
				return 0;
		}
		p += n + (p[n] == ':');
	}
	return -ENOENT;
}

int probe_bwrap_features(const char *bwrap, bool *has_argv0, bool *has_perms)
{
	char *argv[] = { (char *)bwrap, "--help", NULL };
	char *out = malloc(CAPTURE_MAX);
	int status = 0;
	if (!out)
		return -ENOMEM;
	int rc = run_capture(argv, HELP_TIMEOUT_MS, out, CAPTURE_MAX, &status);
	if (rc == 0) {
		*has_argv0 = strstr(out, "--argv0") != NULL;
		*has_perms = strstr(out, "--perms") != NULL;
	}
	free(out);
	return rc;
}

bool probe_is_user_namespace_failure(const char *text)
{
	for (size_t i = 0; i < sizeof(user_namespace_errors) / sizeof(user_namespace_errors[0]); i++)
		if (strstr(text, user_namespace_errors[i]))
			return true;
	return false;
}

static void add_warning(Probe *p, const char *text)
{
	if (p->warning_count < PROBE_MAX_WARNINGS)
		snprintf(p->warnings[p->warning_count++], sizeof(p->warnings[0]), "%s", text);
}

static void first_line(const char *text, char *out, size_t out_len)
{
	snprintf(out, out_len, "%.*s", (int)strcspn(text, "\n"), text);
}

/* The reference's trial: can bwrap make a user and a network namespace here? */
static void try_bwrap_user_namespace(Probe *p)
{
	char *argv[] = { p->bwrap, "--unshare-user", "--unshare-net", "--ro-bind", "/", "/", "/bin/true", NULL };
	char out[4096];
	int status = 0;
	int rc = run_capture(argv, USERNS_TIMEOUT_MS, out, sizeof(out), &status);
	if (rc < 0) {
		/* A slow or unstartable trial says nothing about namespaces: no warning, as in codex. */
		p->has_user_namespaces = true;
		return;
	}
	p->has_user_namespaces = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!p->has_user_namespaces) {
		first_line(out, p->user_namespace_error, sizeof(p->user_namespace_error));
		p->is_user_namespace_refused = probe_is_user_namespace_failure(out);
	}
}

/* The built-in launcher's trial: the same two namespaces, made by a child of ours. */
static void try_builtin_user_namespace(Probe *p)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		int err = unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0 ? errno : 0;
		if (err)
			dprintf(pipefd[1], "No permissions to create a new namespace: %s", strerror(err));
		_exit(err ? 1 : 0);
	}
	close(pipefd[1]);
	int status = 0;
	ssize_t n = pid > 0 ? read(pipefd[0], p->user_namespace_error, sizeof(p->user_namespace_error) - 1) : -1;
	p->user_namespace_error[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	p->has_user_namespaces = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	p->is_user_namespace_refused = !p->has_user_namespaces;
}

static int landlock_abi(void)
{
#ifdef SYS_landlock_create_ruleset
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */);
	return abi > 0 ? (int)abi : 0;
#else
	return 0;
#endif
}

/* Which file a bwrap path names: a changed identity means its flags must be learnt again. */
static void remember_identity(Probe *p)
{
	struct stat st;
	if (stat(p->bwrap, &st) == 0) {
		p->bwrap_dev = st.st_dev;
		p->bwrap_ino = st.st_ino;
		p->bwrap_size = st.st_size;
		p->bwrap_mtime = st.st_mtime;
	}
}

static bool has_same_identity(const Probe *p, const Probe *old)
{
	return strcmp(p->bwrap, old->bwrap) == 0 && p->bwrap_dev == old->bwrap_dev && p->bwrap_ino == old->bwrap_ino &&
	       p->bwrap_size == old->bwrap_size && p->bwrap_mtime == old->bwrap_mtime;
}

int probe_scan_bwrap_binary(const char *bwrap, bool *has_argv0, bool *has_perms)
{
	/* The usage text bwrap prints for --help is a string in its binary: look for the flags there. */
	int fd = open(bwrap, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char buf[65536 + 16];
	size_t kept = 0;
	*has_argv0 = *has_perms = false;
	for (;;) {
		ssize_t n = read(fd, buf + kept, sizeof(buf) - kept);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t len = kept + (size_t)n;
		*has_argv0 = *has_argv0 || memmem(buf, len, "--argv0", 7) != NULL;
		*has_perms = *has_perms || memmem(buf, len, "--perms", 7) != NULL;
		kept = len < 16 ? len : 16; /* a flag split across two reads is still found */
		memmove(buf, buf + len - kept, kept);
	}
	close(fd);
	return 0;
}

/* The warnings and the launcher follow from what was found; the same for a full probe and a refresh. */
static int compose(Probe *p, const ProbeOptions *opts)
{
	char text[sizeof(p->bwrap) + 256];
	bool wants_system = opts->forced && strcmp(opts->forced, "system") == 0;
	bool wants_builtin = opts->forced && strcmp(opts->forced, "builtin") == 0;
	p->warning_count = 0;
	p->has_bwrap = !wants_builtin && p->bwrap[0] && p->bwrap_has_perms;
	if (wants_system && !p->has_bwrap)
		add_warning(p, "[sandboxd] launcher = \"system\" but no usable system bubblewrap was found; sandboxed "
			       "commands are refused");
	if (!wants_builtin && !p->bwrap[0]) {
		add_warning(p, "agentd could not find bubblewrap on PATH. Install bubblewrap with your OS package "
			       "manager. See the sandbox prerequisites: "
			       "https://developers.openai.com/codex/concepts/sandboxing#prerequisites. agentd will "
			       "use its built-in sandbox launcher in the meantime.");
	} else if (!wants_builtin && !p->bwrap_has_perms) {
		snprintf(text, sizeof(text),
			 "The bubblewrap at %s is too old (it has no --perms). agentd will use its built-in sandbox "
			 "launcher instead.",
			 p->bwrap);
		add_warning(p, text);
	} else if (p->has_bwrap && !p->bwrap_has_argv0) {
		snprintf(text, sizeof(text),
			 "The bubblewrap at %s is older than 0.9.0 and has no --argv0. agentd re-enters its sandbox "
			 "helper through a full-path link instead (the compatibility path).",
			 p->bwrap);
		add_warning(p, text);
	}
	p->launcher = p->has_bwrap ? LAUNCHER_SYSTEM : LAUNCHER_BUILTIN;
	if (p->is_user_namespace_refused)
		add_warning(p, p->launcher == LAUNCHER_SYSTEM
				       ? "agentd's Linux sandbox uses bubblewrap and needs access to create user namespaces."
				       : "agentd's Linux sandbox needs access to create user namespaces.");
	p->landlock_abi = landlock_abi();
	p->has_seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 && access("/proc/sys/kernel/seccomp/actions_avail", R_OK) == 0;
	return wants_system && !p->has_bwrap ? -EINVAL : 0;
}

static void find_bwrap(Probe *p, const ProbeOptions *opts)
{
	bool wants_builtin = opts->forced && strcmp(opts->forced, "builtin") == 0;
	if (wants_builtin ||
	    probe_find_bwrap(opts->fixed_bwrap, opts->path_env, opts->cwd, p->bwrap, sizeof(p->bwrap)) < 0)
		p->bwrap[0] = '\0';
	else
		remember_identity(p);
}

int probe_run(Probe *p, const ProbeOptions *opts)
{
	memset(p, 0, sizeof(*p));
	find_bwrap(p, opts);
	if (p->bwrap[0] && probe_bwrap_features(p->bwrap, &p->bwrap_has_argv0, &p->bwrap_has_perms) < 0)
		p->bwrap_has_argv0 = p->bwrap_has_perms = false;
	int rc = compose(p, opts);
	if (p->launcher == LAUNCHER_SYSTEM)
		try_bwrap_user_namespace(p);
	else
		try_builtin_user_namespace(p);
	return p->is_user_namespace_refused ? compose(p, opts) : rc;
}

int probe_refresh(Probe *p, const ProbeOptions *opts)
{
	Probe old = *p;
	find_bwrap(p, opts);
	if (p->bwrap[0] && !has_same_identity(p, &old) &&
	    probe_scan_bwrap_binary(p->bwrap, &p->bwrap_has_argv0, &p->bwrap_has_perms) < 0)
		p->bwrap_has_argv0 = p->bwrap_has_perms = false;
	return compose(p, opts);
}

json_t *probe_to_json(const Probe *p)
{
	json_t *warnings = json_array();
	for (size_t i = 0; warnings && i < p->warning_count; i++)
		json_array_append_new(warnings, json_string(p->warnings[i]));
	return json_pack("{s:s, s:{s:b, s:s?, s:b, s:b}, s:b, s:s?, s:i, s:b, s:o}", "launcher",
			 probe_launcher_name(p->launcher), "bwrap", "found", p->has_bwrap, "path",
			 p->bwrap[0] ? p->bwrap : NULL, "argv0", p->bwrap_has_argv0, "perms", p->bwrap_has_perms,
			 "userNamespaces", p->has_user_namespaces, "userNamespaceError",
			 p->user_namespace_error[0] ? p->user_namespace_error : NULL, "landlockAbi", p->landlock_abi,
			 "seccomp", p->has_seccomp, "warnings", warnings ? warnings : json_array());
}
