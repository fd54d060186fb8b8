/* SPDX-License-Identifier: MIT */
/* proc.c - execd's process table (see proc.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "spawner.h"

typedef struct ProcStream {
	Proc *proc;
	int index;
	int fd; /* -1 once finished */
	uv_poll_t poll;
	bool has_poll, is_polling;
	bool is_in_flight;  /* a chunk is out and not granted back */
	bool is_capped;	    /* the cap was reached: read and drop the rest */
	bool is_draining;   /* the drain after exit ran out: read what is there, then finish */
	uint64_t delivered; /* bytes counted against the cap */
} ProcStream;

typedef struct ProcWrite {
	struct ProcWrite *next;
	size_t len, offset;
	bool close_after;
	ProcWriteFn done;
	void *ctx;
	uint8_t data[];
} ProcWrite;

typedef enum ProcState {
	PROC_STARTING,
	PROC_RUNNING,
	PROC_EXITED, /* reaped; streams may still be open */
	PROC_FAILED, /* never ran */
} ProcState;

struct Proc {
	ProcTable *table;
	Proc *prev, *next;
	uint32_t tag;
	pid_t pid;
	ProcState state;
	const ProcSink *sink; /* NULL once the owner let go */
	void *ctx;
	ProcStream streams[PROC_STREAMS];
	size_t stream_count;
	int stdin_fd; /* pipe or a dup of the PTY master; -1 when none or closed */
	bool stdin_writable;
	bool stdin_close_queued;
	uv_poll_t stdin_poll;
	bool has_stdin_poll, is_stdin_polling;
	ProcWrite *writes, *writes_tail;
	int master_fd; /* PTY master, the same open file as streams[0].fd; -1 without a tty */
	uv_timer_t timeout, drain;
	bool has_timers;
	int64_t timeout_ms;
	uint64_t cap_bytes;
	bool timed_out;
	int exit_code;
	bool is_closed; /* on_closed ran (or the owner let go) */
	unsigned open_handles;
};

struct ProcTable {
	uv_loop_t *loop;
	int sock;
	uv_poll_t sock_poll;
	uint8_t reply_buf[sizeof(SpawnReply)];
	size_t reply_len;
	Proc *procs;
	size_t count;
	uint32_t next_tag;
	void (*on_spawner_lost)(void *ctx);
	void *lost_ctx;
	uint8_t chunk[PROC_CHUNK_MAX]; /* one chunk is read, handed on and forgotten at a time */
};

int proc_exit_code(int wait_status)
{
	if (WIFEXITED(wait_status))
		return WEXITSTATUS(wait_status);
	if (WIFSIGNALED(wait_status))
		return 128 + WTERMSIG(wait_status);
	return -1;
}

static void proc_check_closed(Proc *p);
static void proc_stream_on_readable(uv_poll_t *handle, int status, int events);

/* --- freeing --------------------------------------------------------------------------------------- */

static void proc_unlink(Proc *p)
{
	ProcTable *t = p->table;
	if (p->prev)
		p->prev->next = p->next;
	else if (t->procs == p)
		t->procs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	t->count--;
}

static void proc_fail_writes(Proc *p, int status)
{
	while (p->writes) {
		ProcWrite *w = p->writes;
		p->writes = w->next;
		if (w->done)
			w->done(w->ctx, status);
		free(w);
	}
	p->writes_tail = NULL;
}

static void proc_maybe_free(Proc *p)
{
	if (p->open_handles == 0 && p->sink == NULL && p->state != PROC_RUNNING && p->state != PROC_STARTING)
		free(p);
}

static void proc_on_handle_closed(uv_handle_t *handle)
{
	Proc *p = handle->data;
	p->open_handles--;
	proc_maybe_free(p);
}

static void proc_close_handle(Proc *p, uv_handle_t *handle)
{
	if (!uv_is_closing(handle)) {
		handle->data = p; /* stream polls point at their stream until now */
		p->open_handles++;
		uv_close(handle, proc_on_handle_closed);
	}
}

static void proc_stream_finish(ProcStream *s)
{
	Proc *p = s->proc;
	if (s->has_poll) {
		s->has_poll = false;
		s->is_polling = false;
		proc_close_handle(p, (uv_handle_t *)&s->poll);
	}
	if (s->fd >= 0 && s->fd != p->master_fd)
		close(s->fd);
	s->fd = -1;
}

static void proc_close_stdin(Proc *p)
{
	if (p->has_stdin_poll) {
		p->has_stdin_poll = false;
		p->is_stdin_polling = false;
		proc_close_handle(p, (uv_handle_t *)&p->stdin_poll);
	}
	if (p->stdin_fd >= 0)
		close(p->stdin_fd);
	p->stdin_fd = -1;
}

/* Everything of @p that needs the loop goes; the struct itself once the handles closed. */
static void proc_release(Proc *p)
{
	for (size_t i = 0; i < p->stream_count; i++)
		proc_stream_finish(&p->streams[i]);
	proc_close_stdin(p);
	proc_fail_writes(p, -EPIPE);
	if (p->master_fd >= 0) {
		close(p->master_fd);
		p->master_fd = -1;
	}
	if (p->has_timers) {
		p->has_timers = false;
		proc_close_handle(p, (uv_handle_t *)&p->timeout);
		proc_close_handle(p, (uv_handle_t *)&p->drain);
	}
}

/* --- output -------------------------------------------------------------------------------------- */

static void proc_stream_poll(ProcStream *s, bool on)
{
	if (!s->has_poll || s->is_polling == on)
		return;
	if (on)
		uv_poll_start(&s->poll, UV_READABLE | UV_DISCONNECT, proc_stream_on_readable);
	else
		uv_poll_stop(&s->poll);
	s->is_polling = on;
}

/* Applies the cap to @len fresh bytes and hands the chunk on; a capped stream drops what it reads. */
static void proc_stream_deliver(ProcStream *s, const uint8_t *data, size_t len)
{
	Proc *p = s->proc;
	if (s->is_capped || len == 0)
		return;
	uint64_t room = p->cap_bytes - s->delivered;
	bool cap_reached = len >= room; /* as the reference: reaching the cap exactly counts */
	size_t take = cap_reached ? (size_t)room : len;
	s->delivered += take;
	if (cap_reached)
		s->is_capped = true;
	if (!p->sink) /* nobody listens any more: the bytes go nowhere, no credit is needed */
		return;
	s->is_in_flight = true;
	proc_stream_poll(s, false);
	p->sink->on_output(p, s->index, data, take, cap_reached, p->ctx);
}

/* Reads up to one chunk without blocking; @eof when the stream ended (or a drained stream ran dry). */
static size_t proc_stream_read(ProcStream *s, uint8_t *buf, bool *eof)
{
	size_t len = 0;
	*eof = false;
	while (len < PROC_CHUNK_MAX) {
		ssize_t n = read(s->fd, buf + len, PROC_CHUNK_MAX - len);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			*eof = s->is_draining;
			break;
		}
		*eof = true; /* 0, or EIO from a PTY whose last slave closed */
		break;
	}
	return len;
}

/* One chunk per wake-up: a stream that never runs dry cannot keep execd from its other work. */
static void proc_stream_pump(ProcStream *s)
{
	Proc *p = s->proc;
	bool eof;
	if (s->fd < 0 || s->is_in_flight)
		return;
	size_t len = proc_stream_read(s, p->table->chunk, &eof);
	proc_stream_deliver(s, p->table->chunk, len);
	if (eof) {
		proc_stream_finish(s);
		proc_check_closed(p);
		return;
	}
	proc_stream_poll(s, !s->is_in_flight);
}

static void proc_stream_on_readable(uv_poll_t *handle, int status, int events)
{
	ProcStream *s = handle->data;
	(void)events;
	if (status < 0) {
		proc_stream_finish(s);
		proc_check_closed(s->proc);
		return;
	}
	proc_stream_pump(s);
}

void proc_grant(Proc *p, int stream)
{
	if (stream < 0 || (size_t)stream >= p->stream_count)
		return;
	ProcStream *s = &p->streams[stream];
	if (!s->is_in_flight)
		return;
	s->is_in_flight = false;
	if (s->fd >= 0)
		proc_stream_pump(s);
	else
		proc_check_closed(p);
}

static bool proc_streams_done(const Proc *p)
{
	for (size_t i = 0; i < p->stream_count; i++)
		if (p->streams[i].fd >= 0 || p->streams[i].is_in_flight)
			return false;
	return true;
}

static void proc_check_closed(Proc *p)
{
	if (p->state != PROC_EXITED || p->is_closed || !proc_streams_done(p))
		return;
	p->is_closed = true;
	const ProcSink *sink = p->sink;
	proc_release(p);
	if (sink)
		sink->on_closed(p, p->exit_code, p->ctx); /* the owner proc_free()s it, here or later */
	else
		proc_maybe_free(p);
}

/* --- stdin ------------------------------------------------------------------------------------------- */

static void proc_stdin_on_writable(uv_poll_t *handle, int status, int events);

static void proc_stdin_flush(Proc *p)
{
	while (p->writes && p->stdin_fd >= 0) {
		ProcWrite *w = p->writes;
		while (w->offset < w->len) {
			ssize_t n = write(p->stdin_fd, w->data + w->offset, w->len - w->offset);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				if (p->has_stdin_poll && !p->is_stdin_polling) {
					uv_poll_start(&p->stdin_poll, UV_WRITABLE, proc_stdin_on_writable);
					p->is_stdin_polling = true;
				}
				return;
			}
			if (n < 0) {
				proc_close_stdin(p);
				proc_fail_writes(p, -EPIPE);
				return;
			}
			w->offset += (size_t)n;
		}
		p->writes = w->next;
		if (!p->writes)
			p->writes_tail = NULL;
		if (w->close_after) {
			if (p->master_fd >= 0 && p->stdin_fd >= 0) {
				/* A PTY has no write side to close: end-of-file is the terminal's EOF character. */
				struct termios tio;
				char eof = tcgetattr(p->master_fd, &tio) == 0 ? (char)tio.c_cc[VEOF] : 4;
				(void)!write(p->stdin_fd, &eof, 1);
			}
			proc_close_stdin(p);
		}
		if (w->done)
			w->done(w->ctx, 0);
		free(w);
	}
	if (p->is_stdin_polling) {
		uv_poll_stop(&p->stdin_poll);
		p->is_stdin_polling = false;
	}
}

static void proc_stdin_on_writable(uv_poll_t *handle, int status, int events)
{
	Proc *p = handle->data;
	(void)events;
	if (status < 0) {
		proc_close_stdin(p);
		proc_fail_writes(p, -EPIPE);
		return;
	}
	proc_stdin_flush(p);
}

int proc_write(Proc *p, const void *data, size_t len, bool close_stdin, ProcWriteFn done, void *ctx)
{
	if (!p->stdin_writable)
		return -EBADF;
	if (p->state != PROC_RUNNING)
		return -ESRCH;
	if (p->stdin_close_queued || p->stdin_fd < 0)
		return -EPIPE;
	ProcWrite *w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	*w = (ProcWrite){ .len = len, .close_after = close_stdin, .done = done, .ctx = ctx };
	if (len)
		memcpy(w->data, data, len);
	if (p->writes_tail)
		p->writes_tail->next = w;
	else
		p->writes = w;
	p->writes_tail = w;
	p->stdin_close_queued = close_stdin;
	if (!p->is_stdin_polling)
		proc_stdin_flush(p);
	return 0;
}

/* --- control -------------------------------------------------------------------------------------- */

int proc_signal(Proc *p, int signo)
{
	if (p->pid <= 0 || p->is_closed)
		return -ESRCH;
	/* The group outlives its leader while grandchildren run; it is gone once they are. */
	if (kill(-p->pid, signo) < 0 && p->state == PROC_RUNNING)
		kill(p->pid, signo);
	return 0;
}

int proc_kill(Proc *p)
{
	return proc_signal(p, SIGKILL);
}

int proc_resize(Proc *p, uint16_t rows, uint16_t cols)
{
	if (p->master_fd < 0)
		return -ENOTTY;
	if (p->state != PROC_RUNNING)
		return -ESRCH;
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	return ioctl(p->master_fd, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

bool proc_is_running(const Proc *p)
{
	return p->state == PROC_RUNNING;
}

bool proc_has_tty(const Proc *p)
{
	return p->master_fd >= 0 || (p->stream_count == 1);
}

pid_t proc_pid(const Proc *p)
{
	return p->pid;
}

void proc_free(Proc *p)
{
	if (!p)
		return;
	p->sink = NULL;
	if (p->state == PROC_RUNNING || (p->state == PROC_EXITED && !p->is_closed))
		proc_signal(p, SIGKILL);
	if (p->state == PROC_EXITED && !p->is_closed) {
		p->is_closed = true;
		proc_release(p);
	} else if (p->state == PROC_FAILED) {
		proc_release(p);
	}
	/* A running one is reaped later (proc_on_exited), which finishes the job. */
	if (p->state != PROC_RUNNING && p->state != PROC_STARTING) {
		if (p->prev || p->next || p->table->procs == p)
			proc_unlink(p);
		proc_maybe_free(p);
	}
}

/* --- timers -------------------------------------------------------------------------------------- */

static void proc_on_timeout(uv_timer_t *timer)
{
	Proc *p = timer->data;
	if (p->state != PROC_RUNNING)
		return;
	p->timed_out = true;
	proc_signal(p, SIGKILL);
}

/* The drain ran out: take what the pipes hold now, and stop waiting for whoever keeps them open. */
static void proc_on_drain_expired(uv_timer_t *timer)
{
	Proc *p = timer->data;
	for (size_t i = 0; i < p->stream_count; i++) {
		ProcStream *s = &p->streams[i];
		if (s->fd < 0)
			continue;
		s->is_draining = true;
		if (!s->is_in_flight)
			proc_stream_pump(s);
	}
	proc_check_closed(p);
}

/* --- spawning -------------------------------------------------------------------------------------- */

static Proc *proc_find_tag(ProcTable *t, uint32_t tag)
{
	for (Proc *p = t->procs; p; p = p->next)
		if (p->state == PROC_STARTING && p->tag == tag)
			return p;
	return NULL;
}

static Proc *proc_find_pid(ProcTable *t, pid_t pid)
{
	for (Proc *p = t->procs; p; p = p->next)
		if (p->state == PROC_RUNNING && p->pid == pid)
			return p;
	return NULL;
}

static void proc_init_poll(Proc *p, uv_poll_t *poll, int fd, bool *has)
{
	if (uv_poll_init(p->table->loop, poll, fd) == 0) {
		poll->data = NULL;
		*has = true;
	}
}

static void proc_on_started(ProcTable *t, const SpawnReply *reply)
{
	Proc *p = proc_find_tag(t, reply->tag);
	if (!p)
		return;
	if (reply->type == SPAWN_MSG_FAILED) {
		p->state = PROC_FAILED;
		const ProcSink *sink = p->sink;
		if (sink)
			sink->on_started(p, -reply->value, p->ctx);
		else
			proc_free(p);
		return;
	}
	p->pid = reply->pid;
	p->state = PROC_RUNNING;
	for (size_t i = 0; i < p->stream_count; i++) {
		ProcStream *s = &p->streams[i];
		proc_init_poll(p, &s->poll, s->fd, &s->has_poll);
		s->poll.data = s;
	}
	if (p->stdin_fd >= 0) {
		proc_init_poll(p, &p->stdin_poll, p->stdin_fd, &p->has_stdin_poll);
		p->stdin_poll.data = p;
	}
	if (p->timeout_ms >= 0)
		uv_timer_start(&p->timeout, proc_on_timeout, (uint64_t)p->timeout_ms, 0);
	if (p->sink)
		p->sink->on_started(p, 0, p->ctx);
	else
		proc_signal(p, SIGKILL);
	for (size_t i = 0; i < p->stream_count; i++)
		proc_stream_poll(&p->streams[i], !p->streams[i].is_in_flight);
}

static void proc_on_exited(ProcTable *t, const SpawnReply *reply)
{
	Proc *p = proc_find_pid(t, reply->pid);
	if (!p)
		return; /* a grandchild reparented to the spawner, or one we never knew */
	p->state = PROC_EXITED;
	p->exit_code = p->timed_out ? PROC_TIMEOUT_EXIT_CODE : proc_exit_code(reply->value);
	uv_timer_stop(&p->timeout);
	proc_close_stdin(p);
	proc_fail_writes(p, -EPIPE);
	if (!p->sink) {
		/* Nobody listens: kill what is left of the group and free the rest. */
		kill(-p->pid, SIGKILL);
		p->is_closed = true;
		proc_release(p);
		proc_unlink(p);
		proc_maybe_free(p);
		return;
	}
	if (p->sink->on_exited)
		p->sink->on_exited(p, p->exit_code, p->ctx);
	if (!proc_streams_done(p))
		uv_timer_start(&p->drain, proc_on_drain_expired, PROC_DRAIN_MS, 0);
	proc_check_closed(p);
}

static void proc_on_spawner_readable(uv_poll_t *handle, int status, int events)
{
	ProcTable *t = handle->data;
	(void)events;
	for (;;) {
		ssize_t n = status < 0 ? -1 : read(t->sock, t->reply_buf + t->reply_len, sizeof(t->reply_buf) - t->reply_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && status >= 0)
			return;
		if (n <= 0) {
			log_error("the spawner is gone: execd cannot run commands any more");
			uv_poll_stop(&t->sock_poll);
			if (t->on_spawner_lost)
				t->on_spawner_lost(t->lost_ctx);
			return;
		}
		t->reply_len += (size_t)n;
		if (t->reply_len < sizeof(SpawnReply))
			continue;
		SpawnReply reply;
		memcpy(&reply, t->reply_buf, sizeof(reply));
		t->reply_len = 0;
		if (reply.type == SPAWN_MSG_EXITED)
			proc_on_exited(t, &reply);
		else if (reply.type == SPAWN_MSG_STARTED || reply.type == SPAWN_MSG_FAILED)
			proc_on_started(t, &reply);
	}
}

static int proc_open_pty(Proc *p, const ProcSpec *spec, char *slave, size_t slave_size)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return -errno;
	struct winsize ws = { .ws_row = spec->rows ? spec->rows : PROC_DEFAULT_ROWS,
			      .ws_col = spec->cols ? spec->cols : PROC_DEFAULT_COLS };
	int rc = 0;
	if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, slave, slave_size) != 0 ||
	    ioctl(master, TIOCSWINSZ, &ws) < 0)
		rc = errno ? -errno : -EIO;
	int input = rc == 0 ? fcntl(master, F_DUPFD_CLOEXEC, 3) : -1;
	if (rc == 0 && input < 0)
		rc = -errno;
	if (rc < 0) {
		close(master);
		return rc;
	}
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	p->master_fd = master;
	p->streams[0].fd = master;
	p->stream_count = 1;
	p->stdin_fd = input; /* shares the master's open file: non-blocking too */
	p->stdin_writable = true;
	return 0;
}

static void proc_close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Pipes for stdout and stderr (and stdin when asked); @child gets the ends the command keeps. */
static int proc_open_pipes(Proc *p, const ProcSpec *spec, int child[3])
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, in[2] = { -1, -1 };
	int rc = 0;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		rc = -errno;
	if (rc == 0 && spec->pipe_stdin && pipe2(in, O_CLOEXEC) < 0)
		rc = -errno;
	if (rc == 0 && !spec->pipe_stdin && (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		rc = -errno;
	if (rc < 0) {
		int all[] = { out[0], out[1], err[0], err[1], in[0], in[1] };
		proc_close_fds(all, 6);
		return rc;
	}
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	/* Room for the command to go on writing while its previous chunk is on its way to the client:
	 * the pipe, not execd, holds what it wrote ahead (kernel memory, bounded by this size). */
	(void)fcntl(out[0], F_SETPIPE_SZ, PROC_PIPE_BYTES);
	(void)fcntl(err[0], F_SETPIPE_SZ, PROC_PIPE_BYTES);
	p->streams[PROC_STDOUT].fd = out[0];
	p->streams[PROC_STDERR].fd = err[0];
	p->stream_count = 2;
	if (spec->pipe_stdin) {
		fcntl(in[1], F_SETFL, O_NONBLOCK);
		p->stdin_fd = in[1];
		p->stdin_writable = true;
	}
	child[0] = in[0];
	child[1] = out[1];
	child[2] = err[1];
	return 0;
}

static Proc *proc_alloc(ProcTable *t, const ProcSpec *spec, const ProcSink *sink, void *ctx)
{
	Proc *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->table = t;
	p->sink = sink;
	p->ctx = ctx;
	p->stdin_fd = -1;
	p->master_fd = -1;
	p->timeout_ms = spec->timeout_ms;
	p->cap_bytes = spec->cap_bytes;
	p->exit_code = -1;
	for (size_t i = 0; i < PROC_STREAMS; i++)
		p->streams[i] = (ProcStream){ .proc = p, .index = (int)i, .fd = -1 };
	uv_timer_init(t->loop, &p->timeout);
	uv_timer_init(t->loop, &p->drain);
	p->timeout.data = p->drain.data = p;
	p->has_timers = true;
	return p;
}

int proc_start(ProcTable *t, const ProcSpec *spec, const ProcSink *sink, void *ctx, Proc **out)
{
	if (spec->argc == 0 || !spec->cwd || spec->cwd[0] != '/')
		return -EINVAL;
	Proc *p = proc_alloc(t, spec, sink, ctx);
	if (!p)
		return -ENOMEM;
	char slave[128] = "";
	int child[3] = { -1, -1, -1 };
	int rc = spec->tty ? proc_open_pty(p, spec, slave, sizeof(slave)) : proc_open_pipes(p, spec, child);
	p->tag = ++t->next_tag;
	if (rc == 0)
		rc = spawner_send(t->sock, p->tag, spec->tty ? SPAWN_TTY : 0, spec->cwd, slave, spec->argv, spec->argc,
				  spec->envp, spec->envc, spec->tty ? NULL : child);
	proc_close_fds(child, 3);
	if (rc < 0) {
		p->state = PROC_FAILED;
		p->sink = NULL;
		proc_release(p);
		proc_maybe_free(p);
		return rc;
	}
	p->state = PROC_STARTING;
	p->next = t->procs;
	if (t->procs)
		t->procs->prev = p;
	t->procs = p;
	t->count++;
	*out = p;
	return 0;
}

/* --- the table -------------------------------------------------------------------------------------- */

int proc_table_new(uv_loop_t *loop, int spawner_sock, ProcTable **out)
{
	ProcTable *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->sock = spawner_sock;
	int rc = uv_poll_init(loop, &t->sock_poll, spawner_sock);
	if (rc < 0) {
		free(t);
		return rc;
	}
	t->sock_poll.data = t;
	uv_poll_start(&t->sock_poll, UV_READABLE | UV_DISCONNECT, proc_on_spawner_readable);
	*out = t;
	return 0;
}

void proc_table_set_on_spawner_lost(ProcTable *t, void (*fn)(void *ctx), void *ctx)
{
	t->on_spawner_lost = fn;
	t->lost_ctx = ctx;
}

size_t proc_table_count(const ProcTable *t)
{
	return t->count;
}

static void proc_table_on_closed(uv_handle_t *handle)
{
	free(handle->data);
}

void proc_table_free(ProcTable *t)
{
	if (!t)
		return;
	while (t->procs) {
		Proc *p = t->procs;
		proc_signal(p, SIGKILL);
		p->state = PROC_EXITED;
		p->sink = NULL;
		p->is_closed = true;
		proc_release(p);
		proc_unlink(p);
		proc_maybe_free(p);
	}
	close(t->sock); /* the spawner sees the end and kills what it started */
	uv_close((uv_handle_t *)&t->sock_poll, proc_table_on_closed);
}
