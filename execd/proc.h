/* SPDX-License-Identifier: MIT */
/* proc.h - execd's process table: spawning through the spawner, pipes and PTYs, output with credit,
 * timeouts, output caps, the drain after exit. Shared by the broker methods and the remote listener. */
#ifndef EXECD_PROC_H
#define EXECD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct ProcTable ProcTable;
typedef struct Proc Proc;

enum {
	PROC_STDOUT = 0, /* a PTY's output arrives here too */
	PROC_STDERR = 1,
	PROC_STREAMS = 2,
};

/* One chunk of output: reads are coalesced up to this size before they leave execd. */
#define PROC_CHUNK_MAX (64u * 1024u)
/* After the process exits, how long its streams may stay open (grandchildren holding the pipes). */
#define PROC_DRAIN_MS 2000u
/* What execd asks of each output pipe (the kernel may grant less: /proc/sys/fs/pipe-max-size). */
#define PROC_PIPE_BYTES (1024 * 1024)
#define PROC_NO_CAP UINT64_MAX
#define PROC_NO_TIMEOUT (-1)
#define PROC_TIMEOUT_EXIT_CODE 124
#define PROC_DEFAULT_ROWS 24
#define PROC_DEFAULT_COLS 80

typedef struct ProcSink {
	/* The spawner answered: 0 (running) or a negative errno (the process never ran; proc_free() it). */
	void (*on_started)(Proc *p, int status, void *ctx);
	/*
	 * A chunk of @stream's output (@len may be 0 only with @cap_reached). The stream reads nothing
	 * more until proc_grant(p, stream): that is the whole back-pressure contract. @cap_reached marks
	 * the stream's last chunk (the cap is reached, exactly or by truncation): later output is read
	 * and dropped.
	 */
	void (*on_output)(Proc *p, int stream, const uint8_t *data, size_t len, bool cap_reached, void *ctx);
	/* The process was reaped (output may still follow until on_closed). May be NULL. */
	void (*on_exited)(Proc *p, int exit_code, void *ctx);
	/* Reaped, every stream finished and every chunk granted back: the last call for @p. */
	void (*on_closed)(Proc *p, int exit_code, void *ctx);
} ProcSink;

typedef struct ProcSpec {
	const char *const *argv;
	uint32_t argc;
	const char *const *envp;
	uint32_t envc;
	const char *cwd; /* absolute */
	bool tty;	 /* a PTY as stdin, stdout and stderr */
	uint16_t rows, cols;
	bool pipe_stdin;    /* without a tty: a pipe for proc_write(), else /dev/null */
	int64_t timeout_ms; /* PROC_NO_TIMEOUT or >= 0: then the group is killed and the exit code is 124 */
	uint64_t cap_bytes; /* per stream, or PROC_NO_CAP */
} ProcSpec;

/* A stdin write finished: 0, or -EPIPE when stdin closed before all of it went in. */
typedef void (*ProcWriteFn)(void *ctx, int status);

/** proc_table_new() - a table spawning through @spawner_sock (its end, owned by the table). */
int proc_table_new(uv_loop_t *loop, int spawner_sock, ProcTable **out);
/** proc_table_free() - kill every process group and free the table (at exit). NULL-safe. */
void proc_table_free(ProcTable *t);
/** proc_table_count() - processes not yet closed. */
size_t proc_table_count(const ProcTable *t);
/** proc_table_set_on_spawner_lost() - @fn runs if the spawner dies (execd cannot go on then). */
void proc_table_set_on_spawner_lost(ProcTable *t, void (*fn)(void *ctx), void *ctx);

/**
 * proc_start() - ask the spawner for @spec's process; the sink's on_started tells how it went.
 * Return: 0 with *out, or a negative errno (nothing started, no callback).
 */
int proc_start(ProcTable *t, const ProcSpec *spec, const ProcSink *sink, void *ctx, Proc **out);
/** proc_grant() - the consumer is done with @stream's chunk: read the next one. */
void proc_grant(Proc *p, int stream);
/**
 * proc_write() - queue bytes for stdin, then close it when @close_stdin. @done runs once.
 * Return: 0, -EBADF (no writable stdin), -EPIPE (already closed), -ESRCH (no longer running).
 */
int proc_write(Proc *p, const void *data, size_t len, bool close_stdin, ProcWriteFn done, void *ctx);
/** proc_resize() - new PTY size. Return 0, -ENOTTY (no PTY), -ESRCH or another negative errno. */
int proc_resize(Proc *p, uint16_t rows, uint16_t cols);
/** proc_signal() - @signo to the whole process group. Return 0 or -ESRCH. */
int proc_signal(Proc *p, int signo);
/** proc_kill() - SIGKILL to the whole process group. Return 0 or -ESRCH. */
int proc_kill(Proc *p);
/** proc_is_running() - started and not yet reaped. */
bool proc_is_running(const Proc *p);
/** proc_has_tty() - spawned on a PTY. */
bool proc_has_tty(const Proc *p);
/** proc_pid() - the process (and group) id, 0 before it started. */
pid_t proc_pid(const Proc *p);
/**
 * proc_free() - the owner lets go: no sink call follows. A running process group is killed; the
 * table reaps it and frees the rest itself.
 */
void proc_free(Proc *p);

/** proc_exit_code() - the code a wait status maps to: the exit status, or 128 + signal. */
int proc_exit_code(int wait_status);

#endif
