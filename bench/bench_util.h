/* SPDX-License-Identifier: MIT */
/* bench_util.h - what the benchmarks share: clocks, the temp dir, child processes, agentd and its socket. */
#ifndef AGENTD_BENCH_UTIL_H
#define AGENTD_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How long any wait on a peer (listening, answering) may take before the benchmark gives up. */
#define IO_TIMEOUT_MS 10000

/* Splits what arrives on @fd into lines; @peer names the other end in error messages. */
typedef struct LineReader {
	int fd;
	const char *peer;
	size_t off, len;
	char buf[1 << 16];
} LineReader;

/** die_prefix_set() - what die() puts before its message, e.g. "bench/broker". */
void die_prefix_set(const char *prefix);

/** die() - print the message to stderr, stop the children, remove the temp dir and exit 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/** now_us() - the monotonic clock in microseconds. */
double now_us(void);

/** now_ms() - the monotonic clock in milliseconds. */
double now_ms(void);

/** sleep_ms() - sleep @ms milliseconds, resuming after signals. */
void sleep_ms(int ms);

/** tmpdir_create() - make a fresh /tmp/agentd-bench-XXXXXX, removed again on any exit through die(). */
void tmpdir_create(void);

/** tmpdir_remove() - remove the temp dir and everything in it; nothing when there is none. */
void tmpdir_remove(void);

/** tmpdir_path() - the temp dir made by tmpdir_create(). */
const char *tmpdir_path(void);

/** tmpdir_join() - "<tmpdir>/@name" into @out. */
void tmpdir_join(const char *name, char *out, size_t len);

/** tmpdir_sub() - "<tmpdir>/@name" into @out, created as a directory with mode 0700. */
void tmpdir_sub(const char *name, char *out, size_t len);

/** doubles_sort() - sort @v ascending. */
void doubles_sort(double *v, size_t n);

/** percentile_sorted() - the value at @pct percent of the sorted @v (nearest rank below). */
double percentile_sorted(const double *v, size_t n, unsigned pct);

/** env_with() - environ with AGENTD_RUNTIME_DIR and CODEX_HOME set as given (NULL: left out). */
char **env_with(const char *runtime_dir, const char *codex_home);

/** env_free() - free what env_with() returned. */
void env_free(char **envp);

/** spawn() - start argv[0] with stdin/stdout from @in_fd/@out_fd (-1: /dev/null), stderr to /dev/null. */
pid_t spawn(char *const argv[], char *const envp[], int in_fd, int out_fd);

/** child_exited_within() - whether @pid exited (and was reaped, status in *status) within @ms. */
bool child_exited_within(pid_t pid, int ms, int *status);

/** child_reap() - wait up to @ms for @pid, then SIGKILL and reap it. Return its wait status. */
int child_reap(pid_t pid, int ms);

/** child_forget() - @pid was reaped elsewhere: die() no longer stops it. */
void child_forget(pid_t pid);

/** child_stop() - SIGTERM and reap @pid. Return its wait status. */
int child_stop(pid_t pid);

/** children_stop() - stop every child spawn() started and nobody reaped yet. */
void children_stop(void);

/** agentd_env() - fresh <tmpdir>/rt and <tmpdir>/home, and env_with() them as runtime dir and home. */
char **agentd_env(void);

/** agentd_spawn() - start @agentd with @envp, listening on the unix socket @sock_path. */
pid_t agentd_spawn(const char *agentd, const char *sock_path, char *const envp[]);

/** agentd_connect() - connect to @sock_path, retrying until agentd (@pid) listens. Return the fd. */
int agentd_connect(pid_t pid, const char *sock_path);

/** agentd_locate() - @arg, or ../agentd/agentd beside this binary when NULL; dies unless executable. */
void agentd_locate(const char *arg, char *out, size_t len);

/** self_path() - the absolute path of this binary. */
void self_path(char *out, size_t len);

/** send_all() - write all of @data to @fd. */
void send_all(int fd, const char *data, size_t len);

/** initialize_send() - send the initialize request, with id 0, to @fd. */
void initialize_send(int fd);

/** line_reader_init() - start reading lines from @fd, which @peer writes. */
void line_reader_init(LineReader *r, int fd, const char *peer);

/** line_take() - the next complete line already buffered, or NULL (the buffer is compacted). */
char *line_take(LineReader *r);

/** line_next() - the next line (NUL-terminated, without its newline); valid until the next call. */
char *line_next(LineReader *r);

#endif
