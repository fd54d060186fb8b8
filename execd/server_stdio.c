/* SPDX-License-Identifier: MIT */
/* server_stdio.c - the exec-server on stdin/stdout: one JSON-RPC message per line, one client. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

/*
 * Newline-delimited JSON as the reference's stdio transport reads it: empty lines are skipped,
 * a trailing CR is dropped. At the end of input the queued answers are flushed, then the server
 * stops (its processes with it), as the reference's does.
 */

typedef union EsStdioHandle {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_pipe_t pipe;
	uv_tty_t tty;
} EsStdioHandle;

typedef struct EsStdio {
	EsServer *server;
	EsClient *client;
	EsStdioHandle in, out;
	uv_shutdown_t shutdown;
	int open_handles;
	bool is_closing;
	bool is_reading;
	bool is_discarding; /* inside a line that went over ES_MESSAGE_MAX_BYTES */
	size_t discarded;
	char *line;
	size_t line_len, line_cap;
} EsStdio;

typedef struct EsStdioWrite {
	uv_write_t req;
	EsStdio *io;
	size_t len;
	char data[];
} EsStdioWrite;

static int es_stdio_open(EsServer *s, EsStdioHandle *h, int fd, bool is_input)
{
	uv_handle_type type = uv_guess_handle(fd);
	if (type == UV_TTY)
		return uv_tty_init(s->loop, &h->tty, fd, is_input);
	if (type != UV_NAMED_PIPE && type != UV_TCP) {
		log_error("stdio transport: %s must be a pipe, a socket or a terminal",
			  is_input ? "stdin" : "stdout");
		return -EINVAL;
	}
	int rc = uv_pipe_init(s->loop, &h->pipe, 0);
	if (rc == 0)
		rc = uv_pipe_open(&h->pipe, fd);
	return rc;
}

static void es_stdio_on_closed(uv_handle_t *handle)
{
	EsStdio *io = handle->data;
	if (--io->open_handles > 0)
		return;
	EsClient *c = io->client;
	free(io->line);
	free(io);
	if (c)
		es_client_gone(c);
}

static void es_stdio_close_handles(EsStdio *io)
{
	uv_close(&io->in.handle, es_stdio_on_closed);
	uv_close(&io->out.handle, es_stdio_on_closed);
}

static void es_stdio_on_shutdown(uv_shutdown_t *req, int status)
{
	(void)status; /* a pipe has no write-side shutdown; what matters is that the writes went out */
	es_stdio_close_handles(req->data);
}

/* Flush what is queued for the client, then close both ends. */
static void es_stdio_finish(EsStdio *io)
{
	if (io->is_closing)
		return;
	io->is_closing = true;
	if (io->client)
		io->client->is_closing = true;
	uv_read_stop(&io->in.stream);
	io->shutdown.data = io;
	if (uv_shutdown(&io->shutdown, &io->out.stream, es_stdio_on_shutdown) < 0)
		es_stdio_close_handles(io);
}

static void es_stdio_on_write(uv_write_t *req, int status)
{
	EsStdioWrite *w = (EsStdioWrite *)req;
	EsStdio *io = w->io;
	if (io->client)
		es_client_on_written(io->client, w->len);
	if (status < 0 && status != UV_ECANCELED)
		es_stdio_finish(io);
	free(w);
}

static int es_stdio_write(EsClient *c, const char *data, size_t len)
{
	EsStdio *io = c->transport;
	if (io->is_closing)
		return -EPIPE;
	EsStdioWrite *w = malloc(sizeof(*w) + len + 1);
	if (!w)
		return -ENOMEM;
	w->io = io;
	w->len = len;
	memcpy(w->data, data, len);
	w->data[len] = '\n';
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)len + 1);
	int rc = uv_write(&w->req, &io->out.stream, &buf, 1, es_stdio_on_write);
	if (rc < 0)
		free(w);
	return rc;
}

static void es_stdio_close(EsClient *c)
{
	es_stdio_finish(c->transport);
}

static void es_stdio_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void es_stdio_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void es_stdio_set_reading(EsClient *c, bool is_reading)
{
	EsStdio *io = c->transport;
	if (io->is_closing || io->is_reading == is_reading)
		return;
	io->is_reading = is_reading;
	if (is_reading)
		uv_read_start(&io->in.stream, es_stdio_alloc, es_stdio_on_read);
	else
		uv_read_stop(&io->in.stream);
}

static const EsClientOps es_stdio_ops = { es_stdio_write, es_stdio_close, es_stdio_set_reading };

static void es_stdio_line(EsStdio *io, const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0 || !io->client)
		return;
	es_client_on_message(io->client, line, len);
}

static void es_stdio_bytes(EsStdio *io, const char *data, size_t len)
{
	while (len > 0 && !io->is_closing) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (io->is_discarding) {
			io->discarded += take;
		} else if (io->line_len + take > ES_MESSAGE_MAX_BYTES) {
			io->is_discarding = true;
			io->discarded = io->line_len + take;
			io->line_len = 0;
		} else if (nl && io->line_len == 0) {
			es_stdio_line(io, data, take); /* the whole line is in this read: no copy */
		} else {
			if (io->line_len + take > io->line_cap) {
				size_t cap = io->line_cap ? io->line_cap : 4096;
				while (cap < io->line_len + take)
					cap *= 2;
				char *grown = realloc(io->line, cap);
				if (!grown) {
					es_stdio_finish(io);
					return;
				}
				io->line = grown;
				io->line_cap = cap;
			}
			memcpy(io->line + io->line_len, data, take);
			io->line_len += take;
			if (nl) {
				es_stdio_line(io, io->line, io->line_len);
				io->line_len = 0;
			}
		}
		if (nl && io->is_discarding) {
			io->is_discarding = false;
			if (io->client)
				es_client_on_oversize(io->client, io->discarded);
		}
		if (!nl)
			return;
		data = nl + 1;
		len -= take + 1;
	}
}

static void es_stdio_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	static char chunk[64 * 1024];
	(void)handle;
	(void)suggested;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static void es_stdio_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	EsStdio *io = stream->data;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_warn("stdio transport: %s", uv_strerror((int)nread));
		es_stdio_finish(io);
		return;
	}
	es_stdio_bytes(io, buf->base, (size_t)nread);
}

int es_stdio_start(EsServer *s)
{
	EsStdio *io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	io->server = s;
	int rc = es_stdio_open(s, &io->in, STDIN_FILENO, true);
	if (rc < 0) {
		free(io);
		return rc;
	}
	rc = es_stdio_open(s, &io->out, STDOUT_FILENO, false);
	if (rc < 0) {
		io->in.handle.data = io;
		io->open_handles = 1;
		uv_close(&io->in.handle, es_stdio_on_closed);
		return rc;
	}
	io->in.handle.data = io->out.handle.data = io;
	io->open_handles = 2;
	io->client = es_client_new(s, &es_stdio_ops, io,
				   "failed to parse JSON-RPC message from exec-server stdio");
	if (!io->client) {
		es_stdio_close_handles(io);
		return -ENOMEM;
	}
	io->is_reading = true;
	rc = uv_read_start(&io->in.stream, es_stdio_alloc, es_stdio_on_read);
	if (rc < 0)
		es_stdio_finish(io);
	return rc;
}
