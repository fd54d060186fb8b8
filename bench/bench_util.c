/* SPDX-License-Identifier: MIT */
/* bench_util.c - what the benchmarks share: clocks, the temp dir, child processes, agentd and its socket. */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILDREN_MAX 4u

extern char **environ;

static const char runtime_dir_var[] = "AGENTD_RUNTIME_DIR=";
static const char codex_home_var[] = "CODEX_HOME=";

/* Everything that must be undone on any exit path, error or not. */
static struct {
	pid_t children[CHILDREN_MAX];
	size_t child_count;
	char tmpdir[64];
} cleanup_state;

static const char *die_prefix = "bench";

void die_prefix_set(const char *prefix)
{
	die_prefix = prefix;
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", die_prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	children_stop();
	tmpdir_remove();
	exit(1);
}

double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

double now_ms(void)
{
	return now_us() / 1e3;
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the temp dir ---- */

void tmpdir_create(void)
{
	snprintf(cleanup_state.tmpdir, sizeof(cleanup_state.tmpdir), "/tmp/agentd-bench-XXXXXX");
	if (!mkdtemp(cleanup_state.tmpdir)) {
		cleanup_state.tmpdir[0] = '\0';
		die("mkdtemp: %s", strerror(errno));
	}
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

void tmpdir_remove(void)
{
	if (cleanup_state.tmpdir[0])
		nftw(cleanup_state.tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	cleanup_state.tmpdir[0] = '\0';
}

const char *tmpdir_path(void)
{
	return cleanup_state.tmpdir;
}

void tmpdir_join(const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", cleanup_state.tmpdir, name);
}

void tmpdir_sub(const char *name, char *out, size_t len)
{
	tmpdir_join(name, out, len);
	if (mkdir(out, 0700) < 0)
		die("mkdir %s: %s", out, strerror(errno));
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void doubles_sort(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
}

double percentile_sorted(const double *v, size_t n, unsigned pct)
{
	size_t rank = n * pct / 100;
	return v[rank < n ? rank : n - 1];
}

/* ---- child processes ---- */

char **env_with(const char *runtime_dir, const char *codex_home)
{
	size_t count = 0;
	while (environ[count])
		count++;
	char **envp = calloc(count + 3, sizeof(*envp));
	if (!envp)
		die("out of memory");
	size_t k = 0;
	for (size_t i = 0; i < count; i++) {
		if (strncmp(environ[i], runtime_dir_var, sizeof(runtime_dir_var) - 1) != 0 &&
		    strncmp(environ[i], codex_home_var, sizeof(codex_home_var) - 1) != 0)
			envp[k++] = environ[i];
	}
	if ((runtime_dir && asprintf(&envp[k++], "%s%s", runtime_dir_var, runtime_dir) < 0) ||
	    (codex_home && asprintf(&envp[k++], "%s%s", codex_home_var, codex_home) < 0))
		die("out of memory");
	return envp;
}

/* env_with() dropped both variables from the copy of environ, so every one left is its own. */
void env_free(char **envp)
{
	for (size_t k = 0; envp[k]; k++) {
		if (strncmp(envp[k], runtime_dir_var, sizeof(runtime_dir_var) - 1) == 0 ||
		    strncmp(envp[k], codex_home_var, sizeof(codex_home_var) - 1) == 0)
			free(envp[k]);
	}
	free(envp);
}

pid_t spawn(char *const argv[], char *const envp[], int in_fd, int out_fd)
{
	if (cleanup_state.child_count == CHILDREN_MAX)
		die("more than %u children", CHILDREN_MAX);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		die("posix_spawn %s: %s", argv[0], strerror(rc));
	cleanup_state.children[cleanup_state.child_count++] = pid;
	return pid;
}

bool child_exited_within(pid_t pid, int ms, int *status)
{
	for (int waited = 0; waited <= ms; waited++) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return true;
		sleep_ms(1);
	}
	return false;
}

int child_reap(pid_t pid, int ms)
{
	int status = 0;
	if (child_exited_within(pid, ms, &status))
		return status;
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return status;
}

void child_forget(pid_t pid)
{
	for (size_t i = 0; i < cleanup_state.child_count; i++) {
		if (cleanup_state.children[i] == pid)
			cleanup_state.children[i] = cleanup_state.children[--cleanup_state.child_count];
	}
}

int child_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	int status = child_reap(pid, 5000);
	child_forget(pid);
	return status;
}

void children_stop(void)
{
	while (cleanup_state.child_count > 0)
		child_stop(cleanup_state.children[cleanup_state.child_count - 1]);
}

/* ---- agentd ---- */

char **agentd_env(void)
{
	char runtime_dir[80], codex_home[80];
	tmpdir_sub("rt", runtime_dir, sizeof(runtime_dir));
	tmpdir_sub("home", codex_home, sizeof(codex_home));
	return env_with(runtime_dir, codex_home);
}

pid_t agentd_spawn(const char *agentd, const char *sock_path, char *const envp[])
{
	char listen[112];
	snprintf(listen, sizeof(listen), "unix://%s", sock_path);
	char *argv[] = { (char *)agentd, "--listen", listen, NULL };
	return spawn(argv, envp, -1, -1);
}

/* agentd listens only once every helper registered: retry until it accepts. */
int agentd_connect(pid_t pid, const char *sock_path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	double deadline = now_ms() + IO_TIMEOUT_MS;
	while (now_ms() < deadline) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			return fd;
		close(fd);
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			child_forget(pid);
			die("agentd exited before listening");
		}
		usleep(250);
	}
	die("agentd did not listen on %s within %d ms", sock_path, IO_TIMEOUT_MS);
}

void self_path(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);
	if (n < 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	out[n] = '\0';
}

void agentd_locate(const char *arg, char *out, size_t len)
{
	if (arg) {
		snprintf(out, len, "%s", arg);
	} else {
		char dir[PATH_MAX];
		self_path(dir, sizeof(dir));
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		snprintf(out, len, "%s/../agentd/agentd", dir);
	}
	if (access(out, X_OK) < 0)
		die("%s: %s (build it first, or pass its path)", out, strerror(errno));
}

/* ---- line i/o ---- */

void send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write: %s", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
}

void initialize_send(int fd)
{
	/* Start-up warnings (this host's bubblewrap, say) are not what a benchmark measures. */
	static const char init_line[] = "{\"id\":0,\"method\":\"initialize\",\"params\":{\"clientInfo\":"
					"{\"name\":\"bench\",\"version\":\"1\"},\"capabilities\":"
					"{\"optOutNotificationMethods\":[\"configWarning\"]}}}\n";
	send_all(fd, init_line, sizeof(init_line) - 1);
}

void line_reader_init(LineReader *r, int fd, const char *peer)
{
	r->fd = fd;
	r->peer = peer;
	r->off = r->len = 0;
}

static void line_wait(LineReader *r)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	int rc;
	while ((rc = poll(&p, 1, IO_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (rc == 0)
		die("%s did not answer within %d ms", r->peer, IO_TIMEOUT_MS);
}

/* Read more into the buffer after what is there; die on EOF or error. */
static void line_fill(LineReader *r)
{
	ssize_t got;
	do {
		line_wait(r);
		got = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
	} while (got < 0 && errno == EINTR);
	if (got <= 0)
		die("%s closed the connection (%s)", r->peer, got < 0 ? strerror(errno) : "EOF");
	r->len += (size_t)got;
}

char *line_take(LineReader *r)
{
	char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);
	if (nl) {
		char *line = r->buf + r->off;
		*nl = '\0';
		r->off = (size_t)(nl - r->buf) + 1;
		return line;
	}
	memmove(r->buf, r->buf + r->off, r->len - r->off);
	r->len -= r->off;
	r->off = 0;
	if (r->len == sizeof(r->buf))
		die("line from %s longer than %zu bytes", r->peer, sizeof(r->buf));
	return NULL;
}

char *line_next(LineReader *r)
{
	for (;;) {
		char *line = line_take(r);
		if (line)
			return line;
		line_fill(r);
	}
}
