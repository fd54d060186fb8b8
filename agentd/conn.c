/* SPDX-License-Identifier: MIT */
/* conn.c - connection registry and the JSON shapes agentd sends (no "jsonrpc" field, as the reference). */
#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "rpc.h"
#include "thread.h"

static void conn_run_waiters(Conn *conn, bool is_closing);
static void conn_fail_server_requests(Conn *conn);

Conn *conn_new(Agentd *server, const ConnOps *ops, void *transport)
{
	Conn *conn = calloc(1, sizeof(*conn));
	if (!conn)
		return NULL;
	conn->server = server;
	conn->ops = ops;
	conn->transport = transport;
	conn->id = ++server->next_conn_id;
	conn->next = server->conns;
	if (server->conns)
		server->conns->prev = conn;
	server->conns = conn;
	server->conn_count++;
	log_info("connection %llu (%s) opened", (unsigned long long)conn->id, ops->kind);
	return conn;
}

void conn_free(Conn *conn)
{
	if (!conn)
		return;
	Agentd *server = conn->server;
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		server->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	server->conn_count--;
	log_info("connection %llu (%s) closed", (unsigned long long)conn->id, conn->ops->kind);
	conn_run_waiters(conn, true);
	conn_fail_server_requests(conn);
	thread_on_conn_closed(server, conn->id);
	if (conn->has_watches && server->broker)
		broker_send_event(server->broker, "watchd", "conn.closed", conn->id, "\x80", 1);
	if (conn->has_execs) {
		proto_exec_on_conn_closed(server, conn->id);
		if (server->broker)
			broker_send_event(server->broker, "execd", "conn.closed", conn->id, "\x80", 1);
	}
	json_decref(conn->opted_out);
	free(conn);
}

Conn *conn_find(Agentd *server, uint64_t id)
{
	for (Conn *c = server->conns; c; c = c->next) {
		if (c->id == id)
			return c->is_closing ? NULL : c;
	}
	return NULL;
}

void conn_close(Conn *conn, const char *why)
{
	if (conn->is_closing && !conn->is_flushing)
		return;
	log_info("connection %llu: closing: %s", (unsigned long long)conn->id, why);
	conn->is_closing = true;
	conn->is_flushing = false;
	conn->ops->close(conn, CONN_CLOSE_NOW);
}

void conn_finish(Conn *conn, const char *why)
{
	if (conn->is_closing)
		return;
	log_info("connection %llu: finishing: %s", (unsigned long long)conn->id, why);
	conn->is_closing = true;
	conn->is_flushing = true;
	conn->flush_deadline_ms = uv_now(conn->server->loop) + CONN_FLUSH_DEADLINE_MS;
	conn->ops->close(conn, CONN_CLOSE_FLUSH);
}

void conn_sweep(Agentd *server)
{
	uint64_t now = uv_now(server->loop);
	for (Conn *c = server->conns; c; c = c->next) {
		if (c->is_flushing && now >= c->flush_deadline_ms)
			conn_close(c, "client did not read its last messages in time");
	}
}

static void conn_run_waiters(Conn *conn, bool is_closing)
{
	while (conn->waiters && (is_closing || conn->waiters->seq <= conn->written_messages)) {
		ConnFlushWaiter *w = conn->waiters;
		conn->waiters = w->next;
		if (!conn->waiters)
			conn->waiters_tail = NULL;
		w->fn(w->ctx, !is_closing);
		free(w);
	}
}

static int conn_add_waiter(Conn *conn, uint64_t seq, ConnFlushedFn fn, void *ctx)
{
	ConnFlushWaiter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->seq = seq;
	w->fn = fn;
	w->ctx = ctx;
	if (conn->waiters_tail)
		conn->waiters_tail->next = w;
	else
		conn->waiters = w;
	conn->waiters_tail = w;
	return 0;
}

/* The waiter is registered before the write: a synchronous transport completes inside it.
 * @fn runs exactly once, whatever happens here. Takes @text (NULL: out of memory). */
static int conn_send_text_tracked(Conn *conn, char *text, size_t len, ConnFlushedFn fn, void *ctx)
{
	int rc = 0;
	if (!text)
		rc = -ENOMEM;
	else if (conn->is_closing)
		rc = -EPIPE;
	if (rc == 0 && conn->queued_bytes + len > conn->server->max_write_queue_bytes) {
		conn_close(conn, "client is not reading its messages");
		rc = -ENOBUFS;
	}
	if (rc == 0 && fn)
		rc = conn_add_waiter(conn, conn->sent_messages + 1, fn, ctx);
	if (rc < 0) {
		free(text);
		if (fn)
			fn(ctx, false);
		return rc;
	}
	conn->sent_messages++;
	conn->queued_bytes += len;
	rc = conn->ops->write(conn, text, len);
	free(text);
	if (rc < 0)
		conn_close(conn, "write failed");
	return rc;
}

static int conn_send_tracked(Conn *conn, json_t *msg, ConnFlushedFn fn, void *ctx)
{
	char *text = msg ? json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
	json_decref(msg);
	return conn_send_text_tracked(conn, text, text ? strlen(text) : 0, fn, ctx);
}

int64_t conn_now_ms(void)
{
	uv_timeval64_t now;
	return uv_gettimeofday(&now) == 0 ? now.tv_sec * 1000 + now.tv_usec / 1000 : 0;
}

int conn_notify_message_tracked(Conn *conn, const char *method, char *message, size_t len, ConnFlushedFn fn,
				void *ctx)
{
	if (conn->opted_out && json_object_get(conn->opted_out, method)) {
		free(message);
		if (fn)
			fn(ctx, true);
		return 0;
	}
	return conn_send_text_tracked(conn, message, len, fn, ctx);
}

int conn_notify_text_tracked(Conn *conn, const char *method, const char *params, size_t params_len,
			     ConnFlushedFn fn, void *ctx)
{
	if (conn->opted_out && json_object_get(conn->opted_out, method)) {
		if (fn)
			fn(ctx, true);
		return 0;
	}
	/* method names are ours (plain ASCII): no escaping needed around them */
	size_t size = strlen(method) + params_len + 64;
	char *text = malloc(size);
	int len = text ? snprintf(text, size, "{\"method\":\"%s\",\"params\":%.*s,\"emittedAtMs\":%lld}", method,
				  (int)params_len, params, (long long)conn_now_ms())
		       : 0;
	return conn_send_text_tracked(conn, text, len > 0 ? (size_t)len : 0, fn, ctx);
}

int conn_send(Conn *conn, json_t *msg)
{
	return conn_send_tracked(conn, msg, NULL, NULL);
}

void conn_on_written(Conn *conn, size_t len)
{
	conn->queued_bytes = len > conn->queued_bytes ? 0 : conn->queued_bytes - len;
	conn->written_messages++;
	conn_run_waiters(conn, false);
}

int conn_reply(Conn *conn, json_t *id, json_t *result)
{
	json_t *msg = json_object();
	if (!msg || !result) {
		json_decref(msg);
		json_decref(result);
		return -ENOMEM;
	}
	json_object_set(msg, "id", id);
	json_object_set_new(msg, "result", result);
	return conn_send(conn, msg);
}

int conn_reply_error(Conn *conn, json_t *id, int code, const char *fmt, ...)
{
	char message[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	json_t *msg = json_pack("{s:{s:i,s:s}}", "error", "code", code, "message", message);
	if (!msg)
		return -ENOMEM;
	json_object_set_new(msg, "id", id ? json_incref(id) : json_null());
	return conn_send(conn, msg);
}

int conn_notify_tracked(Conn *conn, const char *method, json_t *params, ConnFlushedFn fn, void *ctx)
{
	if (conn->opted_out && json_object_get(conn->opted_out, method)) {
		json_decref(params);
		if (fn)
			fn(ctx, true);
		return 0;
	}
	json_t *msg = json_pack("{s:s}", "method", method);
	if (!msg) {
		json_decref(params);
		if (fn)
			fn(ctx, false);
		return -ENOMEM;
	}
	if (params)
		json_object_set_new(msg, "params", params);
	/* The reference stamps every notification with its emission time (ServerNotification). */
	json_object_set_new(msg, "emittedAtMs", json_integer(conn_now_ms()));
	return conn_send_tracked(conn, msg, fn, ctx);
}

int conn_notify(Conn *conn, const char *method, json_t *params)
{
	return conn_notify_tracked(conn, method, params, NULL, NULL);
}

/* --- server requests ----------------------------------------------------------------------------- */

int64_t conn_request(Conn *conn, const char *method, json_t *params, ConnResponseFn fn, void *ctx)
{
	ConnServerRequest *req = calloc(1, sizeof(*req));
	if (!req || conn->is_closing) {
		free(req);
		json_decref(params);
		return req ? -ENOTCONN : -ENOMEM;
	}
	req->id = conn->next_server_request_id++;
	req->fn = fn;
	req->ctx = ctx;
	json_t *msg = json_pack("{s:I,s:s,s:o}", "id", (json_int_t)req->id, "method", method, "params",
				params ? params : json_object());
	int rc = msg ? conn_send(conn, msg) : -ENOMEM;
	if (rc < 0) {
		free(req);
		return rc;
	}
	req->next = conn->server_requests;
	conn->server_requests = req;
	return req->id;
}

static ConnServerRequest *conn_take_server_request(Conn *conn, int64_t id)
{
	for (ConnServerRequest **at = &conn->server_requests; *at; at = &(*at)->next) {
		ConnServerRequest *req = *at;
		if (req->id == id) {
			*at = req->next;
			return req;
		}
	}
	return NULL;
}

bool conn_request_forget(Conn *conn, int64_t id)
{
	ConnServerRequest *req = conn_take_server_request(conn, id);
	free(req);
	return req != NULL;
}

void conn_on_response(Conn *conn, json_t *id, json_t *result, json_t *error)
{
	ConnServerRequest *req = json_is_integer(id) ? conn_take_server_request(conn, json_integer_value(id)) : NULL;
	if (!req) {
		log_debug("connection %llu: ignoring response to unknown server request",
			  (unsigned long long)conn->id);
		return;
	}
	if (result && !error)
		req->fn(req->ctx, result, NULL);
	else
		req->fn(req->ctx, NULL, error);
	free(req);
}

/* The connection went: every request it left unanswered is answered "gone" (an approval declines). */
static void conn_fail_server_requests(Conn *conn)
{
	while (conn->server_requests) {
		ConnServerRequest *req = conn->server_requests;
		conn->server_requests = req->next;
		req->fn(req->ctx, NULL, NULL);
		free(req);
	}
}

void conn_on_message(Conn *conn, const char *text, size_t len)
{
	if (!conn->is_closing)
		rpc_handle_text(conn, text, len);
}

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

/* {"id": <integer or plain string>, …: the id of a message whose tail never arrived. */
static json_t *conn_head_id(const char *head, size_t head_len)
{
	const char *p = head, *end = head + head_len;
	p = skip_space(p, end);
	if (p == end || *p++ != '{')
		return NULL;
	p = skip_space(p, end);
	if ((size_t)(end - p) < 4 || memcmp(p, "\"id\"", 4) != 0)
		return NULL;
	p = skip_space(p + 4, end);
	if (p == end || *p++ != ':')
		return NULL;
	p = skip_space(p, end);
	const char *start = p;
	if (p < end && *p == '"') {
		start = ++p;
		while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			p++;
		return p < end && *p == '"' ? json_stringn(start, (size_t)(p - start)) : NULL;
	}
	if (p < end && *p == '-')
		p++;
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	if (p == start || p == end || (*p != ',' && *p != '}' && *p != ' '))
		return NULL;
	char digits[24];
	if ((size_t)(p - start) >= sizeof(digits))
		return NULL;
	memcpy(digits, start, (size_t)(p - start));
	digits[p - start] = '\0';
	errno = 0;
	long long value = strtoll(digits, NULL, 10);
	return errno ? NULL : json_integer(value);
}

void conn_on_oversize(Conn *conn, size_t len, const char *head, size_t head_len)
{
	log_warn("connection %llu: skipped a %zu-byte message over the %zu-byte limit",
		 (unsigned long long)conn->id, len, conn->server->max_message_bytes);
	json_t *id = head_len ? conn_head_id(head, head_len) : NULL;
	conn_reply_error(conn, id, RPC_INVALID_REQUEST,
			 "Invalid request: message of %zu bytes exceeds the limit of %zu bytes", len,
			 conn->server->max_message_bytes);
	json_decref(id);
}

void conn_on_input_end(Conn *conn)
{
	conn->is_input_done = true;
	if (conn->pending_calls == 0)
		conn_finish(conn, "end of input");
}

void conn_call_started(Conn *conn)
{
	conn->pending_calls++;
}

void conn_call_finished(Conn *conn)
{
	if (conn->pending_calls > 0)
		conn->pending_calls--;
	if (conn->is_input_done && conn->pending_calls == 0)
		conn_finish(conn, "end of input");
}
