/* SPDX-License-Identifier: MIT */
/* transport_stream.c - newline-delimited JSON over stdio and over unix sockets. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "fdio.h"
#include "lines.h"
#include "log.h"
#include "transport.h"

typedef union StreamHandle {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_pipe_t pipe;
	uv_tty_t tty;
} StreamHandle;

typedef struct StreamConn {
	Conn *conn;
	Listener *listener;
	StreamHandle in;
	StreamHandle out; /* stdio only: unix sockets read and write one handle */
	bool has_separate_out;
	bool is_stdio;
	int out_file_fd; /* stdout redirected to a regular file: written synchronously, -1 otherwise */
	int open_handles;
	LineReader reader;
} StreamConn;

typedef struct StreamWrite {
	uv_write_t req;
	StreamConn *sc;
	size_t len;
	char data[];
} StreamWrite;

static void stream_on_write(uv_write_t *req, int status)
{
	StreamWrite *w = (StreamWrite *)req;
	StreamConn *sc = w->sc;
	conn_on_written(sc->conn, w->len);
	if (status < 0 && status != UV_ECANCELED)
		conn_close(sc->conn, uv_strerror(status));
	free(w);
}

static uv_stream_t *stream_out(StreamConn *sc)
{
	return sc->has_separate_out ? &sc->out.stream : &sc->in.stream;
}

static int stream_write(Conn *conn, const char *data, size_t len)
{
	StreamConn *sc = conn->transport;
	if (sc->out_file_fd >= 0) {
		/* A regular file never blocks for long and epoll cannot watch it: plain write(2). */
		int rc = fd_write_all(sc->out_file_fd, data, len);
		if (rc == 0)
			rc = fd_write_all(sc->out_file_fd, "\n", 1);
		if (rc == 0)
			conn_on_written(conn, len);
		return rc;
	}
	StreamWrite *w = malloc(sizeof(*w) + len + 1);
	if (!w)
		return -ENOMEM;
	memcpy(w->data, data, len);
	w->data[len] = '\n';
	w->len = len;
	w->sc = sc;
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)(len + 1));
	int rc = uv_write(&w->req, stream_out(sc), &buf, 1, stream_on_write);
	if (rc < 0) {
		free(w);
		return rc;
	}
	return 0;
}

static void stream_on_closed(uv_handle_t *handle)
{
	StreamConn *sc = handle->data;
	if (--sc->open_handles > 0)
		return;
	bool was_stdio = sc->is_stdio;
	Agentd *server = sc->conn->server;
	line_reader_free(&sc->reader);
	conn_free(sc->conn);
	free(sc);
	if (was_stdio)
		agentd_on_stdio_closed(server);
}

static void stream_close_handles(StreamConn *sc)
{
	if (!uv_is_closing(&sc->in.handle))
		uv_close(&sc->in.handle, stream_on_closed);
	if (sc->has_separate_out && !uv_is_closing(&sc->out.handle))
		uv_close(&sc->out.handle, stream_on_closed);
}

/* Also runs with UV_ECANCELED when a NOW close overtook the flush: the handles are closing then. */
static void stream_on_shutdown(uv_shutdown_t *req, int status)
{
	StreamConn *sc = req->data;
	free(req);
	stream_close_handles(sc);
}

/* FLUSH: answers already queued still reach the client; shut the write side down after them. */
static void stream_close(Conn *conn, ConnCloseMode mode)
{
	StreamConn *sc = conn->transport;
	if (uv_is_closing(&sc->in.handle))
		return;
	uv_read_stop(&sc->in.stream);
	uv_stream_t *out = stream_out(sc);
	if (mode == CONN_CLOSE_FLUSH && sc->out_file_fd < 0 && uv_is_writable(out)) {
		uv_shutdown_t *req = malloc(sizeof(*req));
		if (req) {
			req->data = sc;
			if (uv_shutdown(req, out, stream_on_shutdown) == 0)
				return;
			free(req);
		}
	}
	stream_close_handles(sc);
}

static const ConnOps stdio_ops = { "stdio", stream_write, stream_close };
static const ConnOps unix_ops = { "unix", stream_write, stream_close };

static void stream_on_line(void *ctx, const char *line, size_t len)
{
	StreamConn *sc = ctx;
	conn_on_message(sc->conn, line, len);
}

static void stream_on_oversize(void *ctx, size_t len, const char *head, size_t head_len)
{
	StreamConn *sc = ctx;
	conn_on_oversize(sc->conn, len, head, head_len);
}

static bool stream_should_stop(void *ctx)
{
	StreamConn *sc = ctx;
	return sc->conn->is_closing;
}

static void stream_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	static char chunk[64 * 1024];
	/* One loop thread and the data is consumed before the next read: a static buffer is enough. */
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static void stream_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	StreamConn *sc = stream->data;
	if (nread == UV_EOF) {
		uv_read_stop(stream);
		conn_on_input_end(sc->conn);
		return;
	}
	if (nread < 0) {
		conn_close(sc->conn, uv_strerror((int)nread));
		return;
	}
	if (sc->conn->is_closing)
		return;
	if (line_reader_feed(&sc->reader, buf->base, (size_t)nread, stream_should_stop) < 0)
		conn_close(sc->conn, "out of memory");
}

static StreamConn *stream_conn_new(Agentd *server, Listener *listener, const ConnOps *ops)
{
	StreamConn *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->conn = conn_new(server, ops, sc);
	if (!sc->conn) {
		free(sc);
		return NULL;
	}
	sc->listener = listener;
	sc->is_stdio = ops == &stdio_ops;
	sc->out_file_fd = -1;
	static const LineReaderEvents events = { stream_on_line, stream_on_oversize };
	line_reader_init(&sc->reader, server->max_message_bytes, &events, sc);
	return sc;
}

/* What agentd asks of a stdout pipe; an unprivileged process gets up to /proc/sys/fs/pipe-max-size. */
#define STREAM_PIPE_BYTES (1024 * 1024)

static int stream_open_fd(uv_loop_t *loop, StreamHandle *h, int fd, bool is_readable)
{
	uv_handle_type type = uv_guess_handle(fd);
	int rc;
	if (type == UV_TTY) {
		rc = uv_tty_init(loop, &h->tty, fd, is_readable);
	} else if (type == UV_NAMED_PIPE || type == UV_TCP) {
		/*
		 * A 64 KiB pipe cannot take one 64 KiB output delta (base64 makes it 87 KiB) until the
		 * client reads: with room for several, a write completes at once and the credit for
		 * the next chunk goes back to execd without waiting for the client's turn.
		 */
		if (!is_readable)
			(void)fcntl(fd, F_SETPIPE_SZ, STREAM_PIPE_BYTES);
		rc = uv_pipe_init(loop, &h->pipe, 0);
		if (rc == 0 && (rc = uv_pipe_open(&h->pipe, fd)) < 0)
			uv_close(&h->handle, NULL);
	} else {
		log_error("stdio transport: fd %d is neither a pipe, a socket nor a terminal", fd);
		return -ENOTSUP;
	}
	return rc;
}

/* A thread copies a regular-file (or /dev/null) stdin into a pipe, so the loop reads a pipe as always. */
static void stdio_pump(void *arg)
{
	int out = (int)(intptr_t)arg;
	char buf[64 * 1024];
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				goto done;
			off += w;
		}
	}
done:
	close(out);
}

/* Return: a descriptor the loop can read stdin's bytes from (fd 0 itself when it can). */
static int stdio_input_fd(void)
{
	uv_handle_type type = uv_guess_handle(STDIN_FILENO);
	if (type == UV_TTY || type == UV_NAMED_PIPE || type == UV_TCP)
		return STDIN_FILENO;
	int fds[2];
	uv_thread_t pump;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	int rc = uv_thread_create(&pump, stdio_pump, (void *)(intptr_t)fds[1]);
	if (rc < 0) {
		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	return fds[0];
}

int transport_stdio_start(Agentd *server, Listener *listener)
{
	StreamConn *sc = stream_conn_new(server, listener, &stdio_ops);
	if (!sc)
		return -ENOMEM;
	int in_fd = stdio_input_fd();
	int rc = in_fd < 0 ? in_fd : stream_open_fd(server->loop, &sc->in, in_fd, true);
	if (rc < 0)
		goto fail;
	sc->in.handle.data = sc;
	sc->open_handles = 1;
	if (uv_guess_handle(STDOUT_FILENO) == UV_FILE) {
		sc->out_file_fd = STDOUT_FILENO;
	} else {
		rc = stream_open_fd(server->loop, &sc->out, STDOUT_FILENO, false);
		if (rc < 0) {
			conn_close(sc->conn, "cannot open stdout");
			return rc;
		}
		sc->out.handle.data = sc;
		sc->has_separate_out = true;
		sc->open_handles = 2;
	}
	if ((rc = uv_read_start(&sc->in.stream, stream_alloc, stream_on_read)) < 0) {
		conn_close(sc->conn, "cannot read stdin");
		return rc;
	}
	/* The stdio connection belongs to the process; the listener holds nothing to free. */
	listener->free_transport = NULL;
	return 0;
fail:
	conn_free(sc->conn);
	free(sc);
	return rc;
}

/* Another user on a shared dev box must not drive our agent through the socket. */
static bool unix_peer_is_allowed(uv_pipe_t *client)
{
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (uv_fileno((uv_handle_t *)client, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	if (cred.uid == geteuid() || cred.uid == 0)
		return true;
	log_warn("unix transport: refusing client uid %u (pid %d)", (unsigned)cred.uid, (int)cred.pid);
	return false;
}

/* A unix client is served in newline-delimited JSON, or over websocket when its first byte
 * starts an HTTP request ("GET"), as the reference's unix listener speaks. JSON never starts
 * with 'G'. */
typedef struct UnixSniff {
	uv_pipe_t pipe;
	Listener *listener;
} UnixSniff;

static void unix_sniff_on_closed(uv_handle_t *handle)
{
	free(handle->data);
}

static int unix_adopt_lines(Listener *listener, uv_os_fd_t fd, const char *initial, size_t initial_len)
{
	Agentd *server = listener->server;
	StreamConn *sc = stream_conn_new(server, listener, &unix_ops);
	if (!sc)
		return -ENOMEM;
	uv_pipe_init(server->loop, &sc->in.pipe, 0);
	sc->in.handle.data = sc;
	sc->open_handles = 1;
	int rc = uv_pipe_open(&sc->in.pipe, fd);
	if (rc == 0)
		rc = uv_read_start(&sc->in.stream, stream_alloc, stream_on_read);
	if (rc < 0) {
		conn_close(sc->conn, "cannot read");
		return rc;
	}
	if (line_reader_feed(&sc->reader, initial, initial_len, stream_should_stop) < 0)
		conn_close(sc->conn, "out of memory");
	return 0;
}

static void unix_sniff_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	UnixSniff *sniff = stream->data;
	if (nread == 0)
		return;
	uv_read_stop(stream);
	uv_os_fd_t fd = -1;
	/* The first bytes decide; the descriptor moves to the connection that serves them. */
	if (nread > 0 && uv_fileno((uv_handle_t *)stream, &fd) == 0)
		fd = dup(fd);
	uv_close((uv_handle_t *)stream, unix_sniff_on_closed);
	if (nread < 0 || fd < 0)
		return;
	int rc = buf->base[0] == 'G'
			 ? transport_ws_adopt_unix_fd(sniff->listener->server, fd, buf->base, (size_t)nread)
			 : unix_adopt_lines(sniff->listener, fd, buf->base, (size_t)nread);
	if (rc < 0)
		log_warn("unix transport: cannot serve a client: %s", uv_strerror(rc));
}

static void unix_on_connection(uv_stream_t *server_stream, int status)
{
	Listener *listener = server_stream->data;
	if (status < 0) {
		log_warn("unix transport: accept failed: %s", uv_strerror(status));
		return;
	}
	UnixSniff *sniff = calloc(1, sizeof(*sniff));
	if (!sniff)
		return;
	sniff->listener = listener;
	uv_pipe_init(listener->server->loop, &sniff->pipe, 0);
	sniff->pipe.data = sniff;
	if (uv_accept(server_stream, (uv_stream_t *)&sniff->pipe) < 0 ||
	    !unix_peer_is_allowed(&sniff->pipe) ||
	    uv_read_start((uv_stream_t *)&sniff->pipe, stream_alloc, unix_sniff_on_read) < 0)
		uv_close((uv_handle_t *)&sniff->pipe, unix_sniff_on_closed);
}

static void unix_on_listener_closed(uv_handle_t *handle)
{
	Listener *listener = handle->data;
	unlink(listener->spec.path);
	free(listener->transport);
	free(listener);
}

static void unix_free(Listener *listener)
{
	uv_close(listener->handle, unix_on_listener_closed);
}

int transport_unix_start(Agentd *server, Listener *listener)
{
	struct stat st;
	/* Replace a stale socket, never a regular file someone pointed us at. */
	if (lstat(listener->spec.path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("unix transport: %s exists and is not a socket", listener->spec.path);
			return -EEXIST;
		}
		unlink(listener->spec.path);
	}
	uv_pipe_t *pipe = calloc(1, sizeof(*pipe));
	if (!pipe)
		return -ENOMEM;
	uv_pipe_init(server->loop, pipe, 0);
	pipe->data = listener;
	listener->transport = pipe;
	listener->handle = (uv_handle_t *)pipe;
	listener->free_transport = unix_free;
	mode_t old_mask = umask(0177);
	int rc = uv_pipe_bind(pipe, listener->spec.path);
	umask(old_mask);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)pipe, 128, unix_on_connection);
	if (rc < 0) {
		log_error("unix transport: cannot listen on %s: %s", listener->spec.path, uv_strerror(rc));
		return rc;
	}
	log_info("listening on unix://%s", listener->spec.path);
	return 0;
}
