/* SPDX-License-Identifier: MIT */
/* proc_test.c - execd's process table with a real spawner: output under credit, caps, timeouts,
 * stdin, PTYs, process groups, the drain after exit. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc.h"
#include "spawner.h"

extern char **environ;

typedef struct Run {
	Proc *proc;
	int started;
	bool closed;
	int exit_code;
	bool grant_at_once;   /* else the test grants by hand */
	bool pending[PROC_STREAMS];
	size_t chunks;
	size_t max_chunk;
	bool cap_flags[64];
	char out[PROC_STREAMS][1 << 20];
	size_t out_len[PROC_STREAMS];
	size_t total[PROC_STREAMS]; /* bytes delivered, also past what out[] keeps */
} Run;

static uv_loop_t loop;
static ProcTable *table;
static pid_t spawner_pid;

static void on_started(Proc *p, int status, void *ctx)
{
	Run *r = ctx;
	r->started = status == 0 ? 1 : status;
}

static void on_output(Proc *p, int stream, const uint8_t *data, size_t len, bool cap_reached, void *ctx)
{
	Run *r = ctx;
	assert_false(r->pending[stream]); /* never a second chunk of a stream before its credit */
	if (r->chunks < 64)
		r->cap_flags[r->chunks] = cap_reached;
	r->chunks++;
	if (len > r->max_chunk)
		r->max_chunk = len;
	size_t room = sizeof(r->out[stream]) - r->out_len[stream];
	size_t take = len < room ? len : room;
	memcpy(r->out[stream] + r->out_len[stream], data, take);
	r->out_len[stream] += take;
	r->total[stream] += len;
	if (r->grant_at_once)
		proc_grant(p, stream);
	else
		r->pending[stream] = true;
}

static void on_closed(Proc *p, int exit_code, void *ctx)
{
	Run *r = ctx;
	r->closed = true;
	r->exit_code = exit_code;
	proc_free(p);
	r->proc = NULL;
}

static const ProcSink sink = { .on_started = on_started, .on_output = on_output, .on_closed = on_closed };

static int setup(void **state)
{
	int sock;
	assert_int_equal(spawner_start(&sock, &spawner_pid), 0);
	uv_loop_init(&loop);
	assert_int_equal(proc_table_new(&loop, sock, &table), 0);
	return 0;
}

static int teardown(void **state)
{
	proc_table_free(table);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&loop), 0);
	int status;
	assert_int_equal(waitpid(spawner_pid, &status, 0), spawner_pid);
	return 0;
}

static uint32_t env_count(void)
{
	uint32_t n = 0;
	while (environ[n])
		n++;
	return n;
}

static void start(Run *r, const char *const *argv, uint32_t argc, ProcSpec spec)
{
	spec.argv = argv;
	spec.argc = argc;
	spec.envp = (const char *const *)environ;
	spec.envc = env_count();
	if (!spec.cwd)
		spec.cwd = "/";
	if (!spec.cap_bytes)
		spec.cap_bytes = PROC_NO_CAP;
	assert_int_equal(proc_start(table, &spec, &sink, r, &r->proc), 0);
}

static void run_until(bool *flag)
{
	for (int i = 0; i < 20000 && !*flag; i++)
		uv_run(&loop, UV_RUN_ONCE);
	assert_true(*flag);
}

static void run_until_started(Run *r)
{
	while (!r->started)
		uv_run(&loop, UV_RUN_ONCE);
}

static Run *run_new(void)
{
	Run *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->grant_at_once = true;
	return r;
}

static void test_output_and_exit_code(void **state)
{
	Run *r = run_new();
	const char *argv[] = { "sh", "-c", "printf out; printf err >&2; exit 7" };
	start(r, argv, 3, (ProcSpec){ .timeout_ms = PROC_NO_TIMEOUT });
	run_until(&r->closed);
	assert_int_equal(r->started, 1);
	assert_int_equal(r->exit_code, 7);
	assert_int_equal(r->out_len[PROC_STDOUT], 3);
	assert_memory_equal(r->out[PROC_STDOUT], "out", 3);
	assert_memory_equal(r->out[PROC_STDERR], "err", 3);
	free(r);
}

static void test_spawn_failure_is_reported(void **state)
{
	Run *r = run_new();
	const char *argv[] = { "/no/such/program" };
	start(r, argv, 1, (ProcSpec){ .timeout_ms = PROC_NO_TIMEOUT });
	run_until_started(r);
	assert_int_equal(r->started, -ENOENT);
	proc_free(r->proc);
	free(r);
}

static void test_missing_cwd_fails(void **state)
{
	Run *r = run_new();
	const char *argv[] = { "true" };
	start(r, argv, 1, (ProcSpec){ .cwd = "/no/such/dir", .timeout_ms = PROC_NO_TIMEOUT });
	run_until_started(r);
	assert_int_equal(r->started, -ENOENT);
	proc_free(r->proc);
	free(r);
}

/* Without credit a stream delivers one chunk and stops; the writer blocks on its full pipe (more
 * than the pipe's PROC_PIPE_BYTES and the chunk in flight together). */
static void test_one_chunk_in_flight(void **state)
{
	Run *r = run_new();
	r->grant_at_once = false;
	const char *argv[] = { "head", "-c", "4000000", "/dev/zero" };
	start(r, argv, 4, (ProcSpec){ .timeout_ms = PROC_NO_TIMEOUT });
	while (r->chunks == 0)
		uv_run(&loop, UV_RUN_ONCE);
	for (int i = 0; i < 50; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	usleep(50000);
	for (int i = 0; i < 50; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(r->chunks, 1);
	assert_true(proc_is_running(r->proc));
	/* A grant may deliver the next chunk at once (the pipe is full): only wait when none is out. */
	while (!r->closed) {
		if (r->pending[PROC_STDOUT]) {
			r->pending[PROC_STDOUT] = false;
			proc_grant(r->proc, PROC_STDOUT);
		} else {
			uv_run(&loop, UV_RUN_ONCE);
		}
	}
	assert_int_equal(r->total[PROC_STDOUT], 4000000);
	assert_true(r->max_chunk <= PROC_CHUNK_MAX);
	assert_int_equal(r->exit_code, 0);
	free(r);
}

static void test_cap_truncates_and_marks_last_chunk(void **state)
{
	Run *r = run_new();
	const char *argv[] = { "sh", "-c", "printf abcdef; sleep 0.05; printf ghi; head -c 300000 /dev/zero" };
	start(r, argv, 3, (ProcSpec){ .timeout_ms = PROC_NO_TIMEOUT, .cap_bytes = 4 });
	run_until(&r->closed);
	assert_int_equal(r->out_len[PROC_STDOUT], 4);
	assert_memory_equal(r->out[PROC_STDOUT], "abcd", 4);
	assert_true(r->cap_flags[r->chunks - 1]);
	assert_int_equal(r->exit_code, 0); /* output past the cap is drained, not blocking the writer */
	free(r);
}

static void test_timeout_kills_with_124(void **state)
{
	Run *r = run_new();
	const char *argv[] = { "sleep", "30" };
	start(r, argv, 2, (ProcSpec){ .timeout_ms = 100 });
	run_until(&r->closed);
	assert_int_equal(r->exit_code, PROC_TIMEOUT_EXIT_CODE);
	free(r);
}

static void on_written(void *ctx, int status)
{
	*(int *)ctx = status == 0 ? 1 : status;
}

static void test_stdin_write_then_close(void **state)
{
	Run *r = run_new();
	int written = 0;
	const char *argv[] = { "cat" };
	start(r, argv, 1, (ProcSpec){ .timeout_ms = PROC_NO_TIMEOUT, .pipe_stdin = true });
	run_until_started(r);
	assert_int_equal(proc_write(r->proc, "piped", 5, true, on_written, &written), 0);
	assert_int_equal(proc_write(r->proc, "more", 4, false, NULL, NULL), -EPIPE);
	run_until(&r->closed);
	assert_int_equal(written, 1);
	assert_int_equal(r->out_len[PROC_STDOUT], 5);
	assert_memory_equal(r->out[PROC_STDOUT], "piped", 5);
	free(r);
}

static void test_write_without_pipe_is_refused(void **state)
{
	Run *r = run_new();
	const char *argv[] = { "sleep", "5" };
	start(r, argv, 2, (ProcSpec){ .timeout_ms = PROC_NO_TIMEOUT });
	run_until_started(r);
	assert_int_equal(proc_write(r->proc, "x", 1, false, NULL, NULL), -EBADF);
	assert_int_equal(proc_resize(r->proc, 10, 10), -ENOTTY);
	assert_int_equal(proc_kill(r->proc), 0);
	run_until(&r->closed);
	assert_int_equal(r->exit_code, 128 + SIGKILL);
	free(r);
}

static void test_tty_size_and_output(void **state)
{
	Run *r = run_new();
	const char *argv[] = { "sh", "-c", "test -t 0 && test -t 1 && test -t 2 && stty size" };
	start(r, argv, 3, (ProcSpec){ .timeout_ms = PROC_NO_TIMEOUT, .tty = true, .rows = 11, .cols = 42 });
	run_until(&r->closed);
	assert_int_equal(r->exit_code, 0);
	r->out[PROC_STDOUT][r->out_len[PROC_STDOUT]] = '\0';
	assert_string_equal(r->out[PROC_STDOUT], "11 42\r\n");
	assert_int_equal(r->out_len[PROC_STDERR], 0);
	free(r);
}

static bool pid_alive(pid_t pid)
{
	char path[64], stat[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	const char *close_paren = strrchr(stat, ')');
	return close_paren && close_paren[2] != 'Z';
}

/* A grandchild holding the pipes cannot keep the run open past the drain; killing takes the group. */
static void test_drain_then_group_kill(void **state)
{
	Run *r = run_new();
	char pidfile[] = "/tmp/proc_test_XXXXXX";
	int fd = mkstemp(pidfile);
	assert_true(fd >= 0);
	close(fd);
	char script[256];
	snprintf(script, sizeof(script), "sleep 30 & echo $! > %s; echo up", pidfile);
	const char *argv[] = { "sh", "-c", script };
	uint64_t t0 = uv_hrtime();
	start(r, argv, 3, (ProcSpec){ .timeout_ms = PROC_NO_TIMEOUT });
	run_until(&r->closed);
	double elapsed_ms = (double)(uv_hrtime() - t0) / 1e6;
	assert_true(elapsed_ms >= PROC_DRAIN_MS - 100 && elapsed_ms < PROC_DRAIN_MS + 3000);
	assert_int_equal(r->exit_code, 0);
	FILE *f = fopen(pidfile, "r");
	int grandchild = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &grandchild), 1);
	fclose(f);
	unlink(pidfile);
	assert_true(pid_alive(grandchild)); /* a normal exit leaves the group alone */
	kill(-grandchild, 0);
	free(r);
	/* The table's end (execd's exit) closes the spawner's socket: it kills what it started. */
	proc_table_free(table);
	table = NULL;
	int status;
	assert_int_equal(waitpid(spawner_pid, &status, 0), spawner_pid);
	spawner_pid = 0;
	for (int i = 0; i < 100 && pid_alive(grandchild); i++)
		usleep(10000);
	assert_false(pid_alive(grandchild));
	int sock;
	assert_int_equal(spawner_start(&sock, &spawner_pid), 0);
	assert_int_equal(proc_table_new(&loop, sock, &table), 0);
}

static void test_find_program(void **state)
{
	char out[256];
	assert_int_equal(spawner_find_program("sh", "/no/such:/bin", "/", out, sizeof(out)), 0);
	assert_string_equal(out, "/bin/sh");
	assert_int_equal(spawner_find_program("definitely-not-a-program", "/bin:/usr/bin", "/", out, sizeof(out)),
			 -ENOENT);
	assert_int_equal(spawner_find_program("./relative", NULL, "/", out, sizeof(out)), 0);
	assert_string_equal(out, "./relative");
	assert_int_equal(spawner_find_program("", NULL, "/", out, sizeof(out)), -ENOENT);
	/* A non-executable match is EACCES when nothing executable follows. */
	char dir[] = "/tmp/proc_test_dir_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char file[300];
	snprintf(file, sizeof(file), "%s/tool", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	chmod(file, 0644);
	/* access(2) refuses X_OK without any execute bit, even to root. */
	assert_int_equal(spawner_find_program("tool", dir, "/", out, sizeof(out)), -EACCES);
	chmod(file, 0755);
	assert_int_equal(spawner_find_program("tool", dir, "/", out, sizeof(out)), 0);
	assert_string_equal(out, file);
	unlink(file);
	rmdir(dir);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_and_exit_code),
		cmocka_unit_test(test_spawn_failure_is_reported),
		cmocka_unit_test(test_missing_cwd_fails),
		cmocka_unit_test(test_one_chunk_in_flight),
		cmocka_unit_test(test_cap_truncates_and_marks_last_chunk),
		cmocka_unit_test(test_timeout_kills_with_124),
		cmocka_unit_test(test_stdin_write_then_close),
		cmocka_unit_test(test_write_without_pipe_is_refused),
		cmocka_unit_test(test_tty_size_and_output),
		cmocka_unit_test(test_drain_then_group_kill),
		cmocka_unit_test(test_find_program),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
