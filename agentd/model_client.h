/* SPDX-License-Identifier: MIT */
/* model_client.h - streaming HTTP requests to the model's Responses API on agentd's loop. */
#ifndef AGENTD_MODEL_CLIENT_H
#define AGENTD_MODEL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/*
 * Every turn of every thread streams its sampling requests through one ModelClient, so they
 * share one libcurl multi handle (its connection cache keeps HTTP/1.1 connections alive and
 * multiplexes HTTP/2) and are driven by agentd's own libuv loop: libcurl's sockets are watched
 * with uv_poll_t and its timeouts run on a uv_timer_t, so no stream ever blocks the loop or needs
 * a thread of its own (names resolve on libcurl's resolver threads). libcurl is loaded on the
 * first stream, not by model_client_new(): an agentd with no turn running does not map it
 * (common/curl_dl.h).
 *
 * The client only moves bytes. The caller builds the request (URL, headers, JSON body) and feeds
 * the 2xx body to its own SSE parser and Responses decoder (sse.h, responses.h), which decide
 * whether the stream ended well ("stream closed before response.completed" is theirs). What the
 * client reports is the transport: the status and headers, the body of an error status (bounded),
 * and why a transfer failed ("connection refused", "idle timeout waiting for SSE").
 *
 * Callbacks run on the loop thread, never from inside model_stream_start() nor after
 * model_stream_cancel() returned. Any callback may start streams or cancel its own stream or
 * others; none may call model_client_free().
 */

/* An error status's body is kept up to this many bytes (the rest is read and dropped). */
#define MODEL_MAX_ERROR_BODY_BYTES ((size_t)64 << 10)
/* The response's header lines together (names and values), and their number; past either the
 * stream fails with -EMSGSIZE. */
#define MODEL_MAX_HEADER_BYTES ((size_t)64 << 10)
#define MODEL_MAX_HEADERS ((size_t)256)

typedef struct ModelClient ModelClient;
typedef struct ModelStream ModelStream;

/* One response header, name and value as sent, the value without surrounding blanks. */
typedef struct ModelHeader {
	const char *name;
	const char *value;
} ModelHeader;

/* The final response's headers in arrival order (interim 1xx responses' are dropped). */
typedef struct ModelHeaders {
	const ModelHeader *items;
	size_t count;
} ModelHeaders;

/**
 * model_headers_get() - the value of the first header called @name (ASCII case-insensitive:
 * "retry-after", "x-codex-turn-state", "x-request-id"), or NULL. @h may be NULL.
 * The rate-limit families (x-codex-primary-used-percent, x-<limit>-...) are read by walking
 * @h->items.
 */
const char *model_headers_get(const ModelHeaders *h, const char *name);

typedef struct ModelRequest {
	const char *url;    /* http:// or https:// */
	const char *method; /* NULL: "POST" when there is a body, else "GET" */
	/* "Name: value" lines, sent as given, User-Agent and Authorization included. Without a
	 * Content-Type, a body goes as application/json; "Expect: 100-continue" is never sent. */
	const char *const *headers;
	size_t n_headers;
	const char *body; /* copied by model_stream_start(); NULL for none */
	size_t body_len;
	uint32_t connect_timeout_ms; /* 0: libcurl's (300 s) */
	/* No byte received for this long, counted from the start (the request being sent, the wait
	 * for the status line, the body), fails the stream with -ETIMEDOUT and "idle timeout waiting
	 * for SSE". 0: no bound (providers' stream_idle_timeout_ms is the caller's default). */
	uint32_t idle_timeout_ms;
} ModelRequest;

/* How a stream ended; valid only during on_done. */
typedef struct ModelResult {
	/* 0: the response arrived whole (whatever its status). Else a negative errno:
	 * -ECONNREFUSED and other connect errnos, -EHOSTUNREACH (name not resolved), -ETIMEDOUT
	 * (connect or idle timeout), -ECONNRESET (closed or reset before the response ended),
	 * -EPROTO (TLS or HTTP failure), -EMSGSIZE (headers over their bound), -ENOMEM, -EIO, or the
	 * negative value an on_response / on_body callback returned. */
	int error;
	long status;		     /* the final HTTP status; 0 when none arrived */
	const char *message;	     /* error != 0: what failed, for people; "" otherwise */
	const char *detail;	     /* libcurl's own words, for the log; "" when none */
	const ModelHeaders *headers; /* NULL when no final response arrived */
	/* A non-2xx status's body, NUL-terminated, MODEL_MAX_ERROR_BODY_BYTES at most; NULL for 2xx. */
	const char *error_body;
	size_t error_body_len;
	bool is_error_body_truncated;
} ModelResult;

typedef struct ModelStreamEvents {
	/* The final status and headers arrived, before any body. A negative return ends the stream
	 * (on_done gets that value). May be NULL. */
	int (*on_response)(void *ctx, long status, const ModelHeaders *headers);
	/* Body bytes of a 2xx response, split anywhere, passed through as they arrive (nothing is
	 * kept). A negative return ends the stream as above. May be NULL. */
	int (*on_body)(void *ctx, const char *data, size_t len);
	/* The end, exactly once per stream unless it was cancelled; the stream is freed when it returns. */
	void (*on_done)(void *ctx, const ModelResult *result);
} ModelStreamEvents;

/**
 * model_client_new() - a client on @loop, holding no connection and no libcurl yet.
 * Return: 0 with *@out set; -ENOMEM.
 */
int model_client_new(uv_loop_t *loop, ModelClient **out);

/**
 * model_client_free() - cancel every stream (their callbacks do not run), close the connections
 * and release @mc. Its uv handles close asynchronously: the loop must run once more before
 * uv_loop_close(). NULL is allowed. Not from inside a callback.
 */
void model_client_free(ModelClient *mc);

/**
 * model_stream_start() - send @req and stream its response through @ev (copied), with @ctx.
 * Nothing is called back before this returns; the transfer starts on the next loop iteration.
 * Return: 0 with *@out set (valid until on_done returns or model_stream_cancel()); -EINVAL for
 * a request without a URL, with a scheme other than http/https, or without on_done; -EIO when
 * libcurl cannot be loaded or refuses the request; -ENOMEM. @err says why in each case.
 */
int model_stream_start(ModelClient *mc, const ModelRequest *req, const ModelStreamEvents *ev, void *ctx,
		       ModelStream **out, char *err, size_t err_len);

/**
 * model_stream_cancel() - drop @s: its connection is closed at once (when called from a
 * callback, as soon as that returns) and no callback of @s runs after this returns. @s is
 * freed. NULL is allowed, and so is @s inside its own on_done (nothing happens).
 */
void model_stream_cancel(ModelStream *s);

/** model_client_stream_count() - streams started and not yet done or cancelled. */
size_t model_client_stream_count(const ModelClient *mc);

#endif
