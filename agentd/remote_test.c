/* SPDX-License-Identifier: MIT */
/* remote_test.c - the exec-server client against a small websocket server on loopback, in the same loop. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "log.h"
#include "remote.h"
#include "ws.h"

/* ------------------------------------------------------------------ */
/* Loop helpers                                                        */
/* ------------------------------------------------------------------ */

static uv_loop_t loop;

static void guard_expired(uv_timer_t *timer)
{
	*(bool *)timer->data = true;
}

static void guard_closed(uv_handle_t *handle)
{
	(void)handle;
}

/* Run the loop until @done says so or @timeout_ms passes. Return: what @done says at the end. */
static bool run_until(bool (*done)(void *), void *arg, uint64_t timeout_ms)
{
	uv_timer_t guard;
	bool expired = false;

	uv_timer_init(&loop, &guard);
	guard.data = &expired;
	/* Repeating: a guard that fires at the top of an iteration must not leave the poll unbounded. */
	uv_timer_start(&guard, guard_expired, timeout_ms, 1);
	while (!(done && done(arg)) && !expired)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, guard_closed);
	uv_run(&loop, UV_RUN_NOWAIT);
	return done && done(arg);
}

static void run_for(uint64_t ms)
{
	run_until(NULL, NULL, ms);
}

/* ------------------------------------------------------------------ */
/* Test server: RFC 6455 server end from common/ws, scripted by method */
/* ------------------------------------------------------------------ */

typedef enum UpgradeMode { UPGRADE_OK, UPGRADE_401, UPGRADE_BAD_ACCEPT, UPGRADE_NEVER } UpgradeMode;

typedef struct TestServer TestServer;

typedef struct TestPeer {
	uv_tcp_t tcp;
	TestServer *server;
	struct TestPeer *next;
	char head[WS_HANDSHAKE_MAX_BYTES];
	size_t head_len;
	bool is_upgraded;
	bool is_closing;
	WsDecoder *dec;
	json_t *slow_id; /* id of a "slow" request, answered by server_answer_slow() */
} TestPeer;

struct TestServer {
	uv_tcp_t listener;
	bool is_listening;
	int port;
	TestPeer *peers;
	int connections; /* accepted so far */
	UpgradeMode upgrade;
	bool forget_sessions; /* every resumeSessionId is unknown */
	int session_count;
	char session[64];
	/* what the client sent */
	json_t *received; /* every message, in order */
	char authorization[4096];
	bool had_authorization;
	char path[512];
	char host[256];
	int pongs;
	char pong[128];
	int close_code;	     /* of the last CLOSE from the client; 0 = none */
	int protocol_errors; /* frames the server decoder refused (an unmasked client frame would) */
};

static TestServer server;

typedef struct TestWrite {
	uv_write_t req;
	char data[];
} TestWrite;

static void peer_on_write(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void peer_write(TestPeer *peer, const void *data, size_t len)
{
	TestWrite *w = malloc(sizeof(*w) + len);

	assert_non_null(w);
	memcpy(w->data, data, len);
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);

	if (peer->is_closing || uv_write(&w->req, (uv_stream_t *)&peer->tcp, &buf, 1, peer_on_write) < 0)
		free(w);
}

/* One unmasked server frame. */
static void peer_send_frame(TestPeer *peer, unsigned opcode, const void *data, size_t len)
{
	uint8_t header[10];
	size_t n = ws_frame_header(header, opcode, len);
	char *frame = malloc(n + len + 1);

	assert_non_null(frame);
	memcpy(frame, header, n);
	if (len)
		memcpy(frame + n, data, len);
	peer_write(peer, frame, n + len);
	free(frame);
}

static void peer_send_json(TestPeer *peer, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);

	assert_non_null(text);
	peer_send_frame(peer, WS_OP_TEXT, text, strlen(text));
	free(text);
	json_decref(msg);
}

static void peer_on_closed(uv_handle_t *handle)
{
	TestPeer *peer = handle->data;
	TestPeer **p = &server.peers;

	while (*p && *p != peer)
		p = &(*p)->next;
	if (*p)
		*p = peer->next;
	ws_decoder_free(peer->dec);
	json_decref(peer->slow_id);
	free(peer);
}

static void peer_close(TestPeer *peer)
{
	if (peer->is_closing)
		return;
	peer->is_closing = true;
	uv_close((uv_handle_t *)&peer->tcp, peer_on_closed);
}

static void peer_reply(TestPeer *peer, json_t *id, json_t *result)
{
	peer_send_json(peer, json_pack("{s:O,s:o}", "id", id, "result", result));
}

static void peer_on_initialize(TestPeer *peer, json_t *id, json_t *params)
{
	const char *resume = json_string_value(json_object_get(params, "resumeSessionId"));

	if (resume && (server.forget_sessions || strcmp(resume, server.session) != 0)) {
		peer_send_json(peer, json_pack("{s:{s:i,s:s+},s:O}", "error", "code", -32600, "message",
					       "unknown session id ", resume, "id", id));
		return;
	}
	if (!resume)
		snprintf(server.session, sizeof(server.session), "session-%d", ++server.session_count);
	server.forget_sessions = false;
	peer_reply(peer, id,
		   json_pack("{s:s,s:{s:{s:s},s:s}}", "sessionId", server.session, "environmentInfo", "shell",
			     "name", "bash", "cwd", "file:///tmp"));
}

static void peer_send_big(TestPeer *peer)
{
	size_t len = (size_t)REMOTE_MAX_MESSAGE_BYTES + 1;
	char *payload = malloc(len);

	assert_non_null(payload);
	memset(payload, ' ', len);
	payload[0] = '{';
	payload[len - 1] = '}';
	peer_send_frame(peer, WS_OP_TEXT, payload, len);
	free(payload);
}

/* What the server does for each method the tests use. */
static void peer_on_request(TestPeer *peer, const char *method, json_t *id, json_t *params)
{
	if (strcmp(method, "initialize") == 0) {
		peer_on_initialize(peer, id, params);
	} else if (strcmp(method, "echo") == 0) {
		peer_reply(peer, id, json_pack("{s:O?}", "echo", params));
	} else if (strcmp(method, "error") == 0) {
		peer_send_json(peer, json_pack("{s:{s:i,s:s},s:O}", "error", "code", -32000, "message",
					       "boom", "id", id));
	} else if (strcmp(method, "badError") == 0) {
		peer_send_json(peer, json_pack("{s:O,s:s}", "id", id, "error", "just a string"));
	} else if (strcmp(method, "neither") == 0) {
		peer_send_json(peer, json_pack("{s:O}", "id", id));
	} else if (strcmp(method, "notify") == 0) {
		peer_send_json(peer,
			       json_pack("{s:s,s:{s:i}}", "method", "process/output", "params", "seq", 1));
		peer_send_json(peer, json_pack("{s:s}", "method", "bare"));
		peer_reply(peer, id, json_object());
	} else if (strcmp(method, "slow") == 0) {
		json_decref(peer->slow_id);
		peer->slow_id = json_incref(id);
	} else if (strcmp(method, "drop") == 0) {
		peer_close(peer);
	} else if (strcmp(method, "closeFrame") == 0) {
		peer_send_frame(peer, WS_OP_CLOSE, "\x03\xe9", 2); /* 1001 */
	} else if (strcmp(method, "big") == 0) {
		peer_send_big(peer);
	} else if (strcmp(method, "masked") == 0) {
		static const uint8_t frame[] = { 0x81, 0x82, 1, 2, 3, 4, '{' ^ 1, '}' ^ 2 };

		peer_write(peer, frame, sizeof(frame));
	} else if (strcmp(method, "garbage") == 0) {
		peer_send_frame(peer, WS_OP_TEXT, "not json", 8);
	} else if (strcmp(method, "serverRequest") == 0) {
		peer_send_json(peer,
			       json_pack("{s:s,s:s,s:{}}", "id", "s1", "method", "client/hello", "params"));
		peer_reply(peer, id, json_object());
	} else if (strcmp(method, "ping") == 0) {
		peer_send_frame(peer, WS_OP_PING, "xy", 2);
		peer_reply(peer, id, json_object());
	}
	/* "silent" and anything else: no answer */
}

static void peer_on_message(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	TestPeer *peer = ctx;
	json_t *msg = json_loadb((const char *)data, len, 0, NULL);

	(void)opcode;
	assert_non_null(msg);
	json_array_append(server.received, msg);
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *id = json_object_get(msg, "id");

	if (method && id)
		peer_on_request(peer, method, id, json_object_get(msg, "params"));
	json_decref(msg);
}

static void peer_on_control(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	TestPeer *peer = ctx;

	if (opcode == WS_OP_PONG) {
		server.pongs++;
		snprintf(server.pong, sizeof(server.pong), "%.*s", (int)len, (const char *)data);
	} else if (opcode == WS_OP_CLOSE) {
		server.close_code = len >= 2 ? data[0] << 8 | data[1] : 1005;
		peer_close(peer);
	}
}

static void peer_upgrade(TestPeer *peer, const WsRequest *req, size_t consumed)
{
	static const WsDecoderEvents events = { .on_message = peer_on_message,
						.on_control = peer_on_control };
	char accept[29], response[512];
	const char *host = strcasestr(peer->head, "\r\nHost: ");

	snprintf(server.path, sizeof(server.path), "%s", req->path);
	server.had_authorization = req->has_authorization;
	snprintf(server.authorization, sizeof(server.authorization), "%s", req->authorization);
	if (host)
		snprintf(server.host, sizeof(server.host), "%.*s", (int)strcspn(host + 8, "\r"), host + 8);
	assert_int_equal(ws_accept_key(req->key, accept), 0);
	switch (server.upgrade) {
	case UPGRADE_NEVER:
		return;
	case UPGRADE_401:
		snprintf(response, sizeof(response),
			 "HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n\r\ninvalid token");
		peer_write(peer, response, strlen(response));
		return;
	case UPGRADE_BAD_ACCEPT:
		snprintf(accept, sizeof(accept), "dGhlIHNhbXBsZSBub25jZQ==xxxx");
		break;
	case UPGRADE_OK:
		break;
	}
	snprintf(response, sizeof(response),
		 "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
		 "sec-websocket-accept: %s\r\n\r\n",
		 accept);
	peer_write(peer, response, strlen(response));
	peer->dec = ws_decoder_new(REMOTE_MAX_MESSAGE_BYTES, &events, peer);
	assert_non_null(peer->dec);
	peer->is_upgraded = true;
	if (peer->head_len > consumed &&
	    ws_decoder_feed(peer->dec, (const uint8_t *)peer->head + consumed, peer->head_len - consumed) < 0)
		server.protocol_errors++;
}

static void peer_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	static char chunk[64 * 1024];

	(void)handle;
	(void)suggested;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static void peer_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	TestPeer *peer = stream->data;

	if (nread < 0) {
		peer_close(peer);
		return;
	}
	if (peer->is_closing || nread == 0)
		return;
	if (peer->is_upgraded) {
		if (ws_decoder_feed(peer->dec, (const uint8_t *)buf->base, (size_t)nread) < 0) {
			server.protocol_errors++;
			peer_close(peer);
		}
		return;
	}
	assert_true(peer->head_len + (size_t)nread <= sizeof(peer->head) - 1);
	memcpy(peer->head + peer->head_len, buf->base, (size_t)nread);
	peer->head_len += (size_t)nread;
	peer->head[peer->head_len] = '\0';

	WsRequest req;
	int rc = ws_request_parse(peer->head, peer->head_len, &req);

	assert_true(rc >= 0);
	if (rc > 0) {
		assert_true(req.is_upgrade);
		assert_int_equal(req.version, 13);
		assert_false(req.has_origin);
		peer_upgrade(peer, &req, (size_t)rc);
	}
}

static void server_on_connection(uv_stream_t *listener, int status)
{
	TestPeer *peer = calloc(1, sizeof(*peer));

	assert_int_equal(status, 0);
	assert_non_null(peer);
	peer->server = &server;
	uv_tcp_init(&loop, &peer->tcp);
	peer->tcp.data = peer;
	assert_int_equal(uv_accept(listener, (uv_stream_t *)&peer->tcp), 0);
	peer->next = server.peers;
	server.peers = peer;
	server.connections++;
	uv_read_start((uv_stream_t *)&peer->tcp, peer_alloc, peer_on_read);
}

/* Listen on @host (port 0). Return: 0, or the libuv error (no IPv6 on this host, say). */
static int server_start(const char *host)
{
	struct sockaddr_storage addr;
	int len = sizeof(addr), rc;

	if (strchr(host, ':'))
		rc = uv_ip6_addr(host, 0, (struct sockaddr_in6 *)&addr);
	else
		rc = uv_ip4_addr(host, 0, (struct sockaddr_in *)&addr);
	assert_int_equal(rc, 0);
	uv_tcp_init(&loop, &server.listener);
	server.is_listening = true;
	rc = uv_tcp_bind(&server.listener, (struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&server.listener, 16, server_on_connection);
	if (rc < 0)
		return rc;
	uv_tcp_getsockname(&server.listener, (struct sockaddr *)&addr, &len);
	server.port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
						       : ((struct sockaddr_in *)&addr)->sin_port);
	return 0;
}

static void server_drop_all(void)
{
	for (TestPeer *peer = server.peers; peer; peer = peer->next)
		peer_close(peer);
}

static void server_answer_slow(void)
{
	for (TestPeer *peer = server.peers; peer; peer = peer->next) {
		if (peer->slow_id) {
			peer_reply(peer, peer->slow_id, json_pack("{s:b}", "late", 1));
			json_decref(peer->slow_id);
			peer->slow_id = NULL;
		}
	}
}

static void server_stop_listening(void)
{
	if (server.is_listening)
		uv_close((uv_handle_t *)&server.listener, NULL);
	server.is_listening = false;
}

/* The n-th message the server received (0-based). */
static json_t *received(size_t n)
{
	json_t *msg = json_array_get(server.received, n);

	assert_non_null(msg);
	return msg;
}

static const char *received_method(size_t n)
{
	return json_string_value(json_object_get(received(n), "method"));
}

/* ------------------------------------------------------------------ */
/* Client side: everything the Remote reports, as JSON                 */
/* ------------------------------------------------------------------ */

typedef struct Client Client;

typedef struct CallCtx {
	Client *client;
	char tag[32];
	bool free_remote; /* remote_free() from inside this reply */
} CallCtx;

#define CALLS_MAX 16

struct Client {
	Remote *r;
	json_t *events; /* ["reply", tag, result, error] | ["note", method, params] | ["disconnected", why] */
	CallCtx calls[CALLS_MAX];
	size_t call_count;
	int call_after_free_rc; /* what remote_call() returned from inside a freeing reply */
};

static Client client;

static void client_on_reply(void *ctx, json_t *result, json_t *error)
{
	CallCtx *call = ctx;

	assert_true((result == NULL) != (error == NULL));
	if (error) {
		assert_true(json_is_integer(json_object_get(error, "code")));
		assert_true(json_is_string(json_object_get(error, "message")));
	}
	json_array_append_new(client.events, json_pack("[s,s,O?,O?]", "reply", call->tag, result, error));
	if (call->free_remote) {
		remote_free(client.r);
		client.call_after_free_rc = remote_call(client.r, "echo", NULL, 0, client_on_reply, call);
	}
}

static void client_on_notification(void *ctx, const char *method, json_t *params)
{
	assert_ptr_equal(ctx, &client);
	json_array_append_new(client.events, json_pack("[s,s,O?]", "note", method, params));
}

static void client_on_disconnected(void *ctx, const char *why)
{
	assert_ptr_equal(ctx, &client);
	json_array_append_new(client.events, json_pack("[s,s]", "disconnected", why));
}

static const RemoteEvents client_events = { client_on_notification, client_on_disconnected };

static void client_open_url(const char *url)
{
	assert_int_equal(remote_new(&loop, url, "agentd-test", &client_events, &client, &client.r), 0);
	assert_false(remote_is_connected(client.r));
	assert_null(remote_session_id(client.r));
}

static void client_open(void)
{
	char url[64];

	snprintf(url, sizeof(url), "ws://127.0.0.1:%d", server.port);
	client_open_url(url);
}

static CallCtx *call_ctx(const char *tag)
{
	assert_true(client.call_count < CALLS_MAX);
	CallCtx *call = &client.calls[client.call_count++];

	snprintf(call->tag, sizeof(call->tag), "%s", tag);
	return call;
}

/* Return: remote_call()'s result. */
static int client_call(const char *tag, const char *method, json_t *params, uint32_t timeout_ms)
{
	return remote_call(client.r, method, params, timeout_ms, client_on_reply, call_ctx(tag));
}

static bool events_at_least(void *arg)
{
	return json_array_size(client.events) >= (size_t)(uintptr_t)arg;
}

static void wait_events(size_t n)
{
	assert_true(run_until(events_at_least, (void *)(uintptr_t)n, 5000));
}

static json_t *event(size_t n)
{
	json_t *ev = json_array_get(client.events, n);

	assert_non_null(ev);
	return ev;
}

static const char *event_kind(size_t n)
{
	return json_string_value(json_array_get(event(n), 0));
}

/* The n-th event is a reply with this tag; Return: its result (NULL for an error). */
static json_t *event_result(size_t n, const char *tag)
{
	assert_string_equal(event_kind(n), "reply");
	assert_string_equal(json_string_value(json_array_get(event(n), 1)), tag);
	json_t *result = json_array_get(event(n), 2);

	return json_is_null(result) ? NULL : result;
}

/* The n-th event is an error reply with this tag; Return: its message. */
static const char *event_error(size_t n, const char *tag)
{
	assert_null(event_result(n, tag));
	return json_string_value(json_object_get(json_array_get(event(n), 3), "message"));
}

static bool is_connected(void *arg)
{
	(void)arg;
	return remote_is_connected(client.r);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

static int setup(void **state)
{
	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	memset(&server, 0, sizeof(server));
	server.received = json_array();
	memset(&client, 0, sizeof(client));
	client.events = json_array();
	unsetenv("CODEX_EXEC_SERVER_TOKEN");
	return 0;
}

/* Everything must close: a handle the client forgot would keep uv_loop_close() from succeeding. */
static int teardown(void **state)
{
	(void)state;
	remote_free(client.r);
	server_drop_all();
	server_stop_listening();
	for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref(server.received);
	json_decref(client.events);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void test_new_refuses_bad_urls(void **state)
{
	static const char *const bad[] = {
		"",
		"http://127.0.0.1:1",
		"ws://",
		"ws://:80",
		"ws://h:0",
		"ws://h:65536",
		"ws://h:12a",
		"ws://h:",
		"ws://user@h:1",
		"ws://[::1:1",
		"ws://[zz::1]:1",
		"ws://[::1]x",
		"ws://h:1/a b",
		"ws://h:1/#frag",
		"ws://h%41:1",
		"ws://a:b:1",
	};
	Remote *r = (Remote *)&r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(remote_new(&loop, bad[i], "t", NULL, NULL, &r), -EINVAL);
		assert_null(r);
	}
	assert_int_equal(remote_new(&loop, "wss://127.0.0.1:1", "t", NULL, NULL, &r), -EPROTONOSUPPORT);
	assert_int_equal(remote_new(&loop, "WSS://h", "t", NULL, NULL, &r), -EPROTONOSUPPORT);
	assert_int_equal(remote_new(&loop, "ws://h:1", "", NULL, NULL, &r), -EINVAL);
	assert_int_equal(remote_new(&loop, "ws://h:1", NULL, NULL, NULL, &r), -EINVAL);
	assert_int_equal(remote_new(NULL, "ws://h:1", "t", NULL, NULL, &r), -EINVAL);
	setenv("CODEX_EXEC_SERVER_TOKEN", "two words", 1);
	assert_int_equal(remote_new(&loop, "ws://h:1", "t", NULL, NULL, &r), -EINVAL);
	setenv("CODEX_EXEC_SERVER_TOKEN", "line\r\nX-Injected: 1", 1);
	assert_int_equal(remote_new(&loop, "ws://h:1", "t", NULL, NULL, &r), -EINVAL);
	unsetenv("CODEX_EXEC_SERVER_TOKEN");

	static const char *const good[] = {
		"ws://127.0.0.1:1",	    "ws://localhost", "ws://[::1]:8080/x?y=1",
		"WS://Example.COM:65535/p", "ws://h?q",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(remote_new(&loop, good[i], "t", NULL, NULL, &r), 0);
		assert_false(remote_is_connected(r));
		assert_null(remote_server_info(r));
		remote_free(r);
	}
	remote_free(NULL);
}

/* Calls made before the connection exists wait for initialize + initialized and then go out in
 * order, shaped as the exec-server expects (no "jsonrpc", params omitted when NULL). */
static void test_calls_queue_behind_initialize(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("a", "echo", json_pack("{s:i}", "n", 1), 0), 0);
	assert_int_equal(client_call("b", "echo", NULL, 1000), 0);
	assert_int_equal(remote_notify(client.r, "custom/notice", json_pack("{s:b}", "x", 1)), 0);
	assert_false(remote_is_connected(client.r));
	wait_events(2);

	json_t *result = event_result(0, "a");

	assert_int_equal(json_integer_value(json_object_get(json_object_get(result, "echo"), "n")), 1);
	assert_true(json_is_null(json_object_get(event_result(1, "b"), "echo")));
	assert_true(remote_is_connected(client.r));
	assert_string_equal(remote_session_id(client.r), "session-1");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(remote_server_info(client.r), "environmentInfo"),
					"shell"),
			"name")),
		"bash");

	assert_int_equal(json_array_size(server.received), 5);
	assert_string_equal(received_method(0), "initialize");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(received(0), "params"), "clientName")),
		"agentd-test");
	assert_null(json_object_get(json_object_get(received(0), "params"), "resumeSessionId"));
	assert_string_equal(received_method(1), "initialized");
	assert_null(json_object_get(received(1), "id"));
	assert_true(json_is_object(json_object_get(received(1), "params")));
	assert_string_equal(received_method(2), "echo");
	assert_string_equal(received_method(3), "echo");
	assert_null(json_object_get(received(3), "params"));
	assert_string_equal(received_method(4), "custom/notice");
	assert_null(json_object_get(received(4), "id"));
	for (size_t i = 0; i < json_array_size(server.received); i++)
		assert_null(json_object_get(received(i), "jsonrpc"));
	assert_true(json_integer_value(json_object_get(received(2), "id")) <
		    json_integer_value(json_object_get(received(3), "id")));
	assert_string_equal(server.path, "/");
	assert_false(server.had_authorization);
	assert_int_equal(server.protocol_errors, 0); /* every client frame was masked */

	/* Once connected, a call goes straight out. */
	assert_int_equal(client_call("c", "echo", json_pack("{s:s}", "k", "v"), 0), 0);
	wait_events(3);
	assert_non_null(event_result(2, "c"));
	assert_int_equal(server.connections, 1);
	assert_int_equal(server.protocol_errors, 0);
}

static void test_notifications_come_in_wire_order(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("n", "notify", json_object(), 0), 0);
	wait_events(3);
	assert_string_equal(event_kind(0), "note");
	assert_string_equal(json_string_value(json_array_get(event(0), 1)), "process/output");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(event(0), 2), "seq")), 1);
	assert_string_equal(event_kind(1), "note");
	assert_string_equal(json_string_value(json_array_get(event(1), 1)), "bare");
	assert_true(json_is_null(json_array_get(event(1), 2))); /* no params: NULL */
	assert_non_null(event_result(2, "n"));
}

static void test_error_replies(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("e", "error", NULL, 0), 0);
	assert_int_equal(client_call("bad", "badError", NULL, 0), 0);
	assert_int_equal(client_call("none", "neither", NULL, 0), 0);
	wait_events(3);
	assert_string_equal(event_error(0, "e"), "boom");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(event(0), 3), "code")), -32000);
	assert_non_null(strstr(event_error(1, "bad"), "malformed error"));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(event(1), 3), "code")),
			 REMOTE_ERROR_CODE);
	assert_non_null(strstr(event_error(2, "none"), "neither result nor error"));
	assert_true(remote_is_connected(client.r));
}

/* A timed-out call fails on time; its late reply is dropped and the connection lives on. */
static void test_call_timeout(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	uint64_t start = uv_now(&loop);

	assert_int_equal(client_call("slow", "slow", NULL, 100), 0);
	assert_int_equal(client_call("silent", "silent", NULL, 300), 0);
	wait_events(1);
	uv_update_time(&loop);
	assert_true(uv_now(&loop) - start >= 100);
	assert_string_equal(event_error(0, "slow"), "exec-server request `slow` timed out after 100 ms");
	server_answer_slow();
	assert_int_equal(client_call("echo", "echo", NULL, 1000), 0);
	wait_events(2);
	assert_non_null(event_result(1, "echo"));
	wait_events(3);
	assert_string_equal(event_error(2, "silent"), "exec-server request `silent` timed out after 300 ms");
	assert_true(remote_is_connected(client.r));
	assert_int_equal(server.connections, 1);
}

/* The timeout counts while connecting too: a server that never answers the upgrade. */
static void test_timeout_while_connecting(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	server.upgrade = UPGRADE_NEVER;
	client_open();
	assert_int_equal(client_call("t", "echo", NULL, 150), 0);
	wait_events(1);
	assert_non_null(strstr(event_error(0, "t"), "timed out after 150 ms"));
	assert_false(remote_is_connected(client.r));
}

static bool dropped_and_reported(void *arg)
{
	(void)arg;
	return json_array_size(client.events) >= 3;
}

/* The server goes away mid-call: pending calls fail first, then on_disconnected; a later call
 * reconnects and resumes the session. */
static void test_drop_fails_pending_then_reconnect_resumes(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("one", "silent", NULL, 0), 0);
	assert_int_equal(client_call("two", "silent", NULL, 5000), 0);
	assert_true(run_until(is_connected, NULL, 5000));
	run_for(50);
	server_drop_all();
	assert_true(run_until(dropped_and_reported, NULL, 5000));
	assert_non_null(strstr(event_error(0, "one"), "exec-server connection lost: "));
	assert_non_null(strstr(event_error(1, "two"), "exec-server connection lost: "));
	assert_string_equal(event_kind(2), "disconnected");
	assert_false(remote_is_connected(client.r));
	assert_int_equal(remote_notify(client.r, "x", NULL), -ENOTCONN);
	assert_string_equal(remote_session_id(client.r), "session-1");

	size_t before = json_array_size(server.received);

	assert_int_equal(client_call("again", "echo", NULL, 5000), 0);
	wait_events(4);
	assert_non_null(event_result(3, "again"));
	assert_int_equal(server.connections, 2);
	json_t *init = received(before);

	assert_string_equal(json_string_value(json_object_get(init, "method")), "initialize");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(init, "params"), "resumeSessionId")),
		"session-1");
	assert_string_equal(remote_session_id(client.r), "session-1");
	assert_int_equal(json_array_size(client.events), 4); /* no second disconnect */
}

/* A server that no longer knows the session: a fresh session on a fresh connection, the queued
 * call still succeeds. */
static void test_resume_refused_starts_a_new_session(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("first", "echo", NULL, 0), 0);
	wait_events(1);
	server_drop_all();
	wait_events(2);
	assert_string_equal(event_kind(1), "disconnected");
	server.forget_sessions = true;
	assert_int_equal(client_call("second", "echo", NULL, 5000), 0);
	wait_events(3);
	assert_non_null(event_result(2, "second"));
	assert_string_equal(remote_session_id(client.r), "session-2");
	assert_int_equal(server.connections, 3);

	size_t n = json_array_size(server.received);

	/* ... initialize(resume) refused, initialize, initialized, echo */
	assert_string_equal(received_method(n - 1), "echo");
	assert_string_equal(received_method(n - 2), "initialized");
	assert_string_equal(received_method(n - 3), "initialize");
	assert_null(json_object_get(json_object_get(received(n - 3), "params"), "resumeSessionId"));
	assert_string_equal(received_method(n - 4), "initialize");
	assert_string_equal(json_string_value(json_object_get(json_object_get(received(n - 4), "params"),
							      "resumeSessionId")),
			    "session-1");
}

static void test_connection_refused(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	int port = server.port;

	server_stop_listening();
	run_for(10);

	char url[64];

	snprintf(url, sizeof(url), "ws://127.0.0.1:%d", port);
	client_open_url(url);
	assert_int_equal(client_call("x", "echo", NULL, 0), 0);
	assert_int_equal(client_call("y", "echo", NULL, 0), 0);
	wait_events(2);
	assert_non_null(strstr(event_error(0, "x"), "exec-server unavailable: cannot connect to 127.0.0.1:"));
	assert_non_null(strstr(event_error(1, "y"), "connection refused"));
	run_for(20);
	assert_int_equal(json_array_size(client.events), 2); /* never connected: no on_disconnected */
}

/* RFC 6761: .invalid never resolves, with or without a DNS server. */
static void test_unresolvable_name(void **state)
{
	(void)state;
	client_open_url("ws://no-such-host.invalid:1");
	assert_int_equal(client_call("x", "echo", NULL, 5000), 0);
	wait_events(1);
	assert_non_null(strstr(event_error(0, "x"),
			       "exec-server unavailable: cannot resolve no-such-host.invalid: "));
	assert_false(remote_is_connected(client.r));
}

static void test_upgrade_refused(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	server.upgrade = UPGRADE_401;
	client_open();
	assert_int_equal(client_call("x", "echo", NULL, 0), 0);
	wait_events(1);
	assert_string_equal(
		event_error(0, "x"),
		"exec-server unavailable: the websocket upgrade was refused: HTTP 401 Unauthorized: "
		"invalid token");

	server.upgrade = UPGRADE_BAD_ACCEPT;
	assert_int_equal(client_call("y", "echo", NULL, 0), 0);
	wait_events(2);
	assert_non_null(strstr(event_error(1, "y"), "Sec-WebSocket-Accept"));
	assert_int_equal(json_array_size(server.received), 0);
}

/* CODEX_EXEC_SERVER_TOKEN becomes a bearer credential; path and Host as in the URL. */
static void test_token_path_and_host(void **state)
{
	char url[96], host[64];

	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	setenv("CODEX_EXEC_SERVER_TOKEN", "s3cr3t-t0ken", 1);
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/exec?x=1", server.port);
	client_open_url(url);
	unsetenv("CODEX_EXEC_SERVER_TOKEN"); /* read once, at remote_new() */
	assert_int_equal(client_call("x", "echo", NULL, 0), 0);
	wait_events(1);
	assert_non_null(event_result(0, "x"));
	assert_true(server.had_authorization);
	assert_string_equal(server.authorization, "Bearer s3cr3t-t0ken");
	assert_string_equal(server.path, "/exec");
	snprintf(host, sizeof(host), "127.0.0.1:%d", server.port);
	assert_string_equal(server.host, host);
}

static bool got_pong(void *arg)
{
	(void)arg;
	return server.pongs > 0;
}

static void test_ping_is_answered(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("p", "ping", NULL, 0), 0);
	wait_events(1);
	assert_true(run_until(got_pong, NULL, 5000));
	assert_string_equal(server.pong, "xy");
	assert_int_equal(server.protocol_errors, 0);
}

static bool server_saw_close(void *arg)
{
	(void)arg;
	return server.close_code != 0;
}

static void test_server_close_frame_is_echoed(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("c", "closeFrame", NULL, 0), 0);
	wait_events(2);
	assert_string_equal(event_error(0, "c"),
			    "exec-server connection lost: exec-server closed the websocket (code "
			    "1001)");
	assert_string_equal(event_kind(1), "disconnected");
	assert_true(run_until(server_saw_close, NULL, 5000));
	assert_int_equal(server.close_code, 1001);
}

/* A message over 64 MiB closes the connection with 1009, without the client buffering it. */
static void test_oversized_message_closes(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("big", "big", NULL, 0), 0);
	wait_events(2);
	assert_non_null(strstr(event_error(0, "big"), "over the 67108864-byte limit"));
	assert_string_equal(event_kind(1), "disconnected");
	assert_true(run_until(server_saw_close, NULL, 5000));
	assert_int_equal(server.close_code, 1009);
}

/* Violations by the server end the connection: a masked frame (RFC 6455 section 5.1), a message
 * that is not JSON. */
static void test_server_violations_close(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("m", "masked", NULL, 0), 0);
	wait_events(2);
	assert_non_null(strstr(event_error(0, "m"), "websocket protocol error"));
	assert_true(run_until(server_saw_close, NULL, 5000));
	assert_int_equal(server.close_code, 1002);

	server.close_code = 0;
	assert_int_equal(client_call("g", "garbage", NULL, 0), 0);
	wait_events(4);
	assert_non_null(strstr(event_error(2, "g"), "not a JSON object"));
	assert_string_equal(event_kind(3), "disconnected");
	assert_true(run_until(server_saw_close, NULL, 5000));
	assert_int_equal(server.close_code, 1007);
}

static bool server_got_answer(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < json_array_size(server.received); i++)
		if (json_is_string(json_object_get(received(i), "id")))
			return true;
	return false;
}

static void test_server_request_is_refused(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("s", "serverRequest", NULL, 0), 0);
	wait_events(1);
	assert_true(run_until(server_got_answer, NULL, 5000));

	json_t *answer = received(json_array_size(server.received) - 1);

	assert_string_equal(json_string_value(json_object_get(answer, "id")), "s1");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(answer, "error"), "code")),
			 -32601);
	assert_true(remote_is_connected(client.r));
}

/* remote_free() fails every pending call at once, does not report a disconnect, and may be
 * called from a reply; later calls on the freed client are refused. */
static void test_free_fails_pending(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(client_call("first", "silent", NULL, 0), 0);
	assert_true(run_until(is_connected, NULL, 5000));
	CallCtx *freeing = call_ctx("freeing");

	freeing->free_remote = true;
	assert_int_equal(remote_call(client.r, "slow", NULL, 0, client_on_reply, freeing), 0);
	assert_int_equal(client_call("third", "silent", NULL, 0), 0);
	remote_free(client.r);
	assert_int_equal(json_array_size(client.events), 3);
	assert_string_equal(event_error(0, "first"), "exec-server connection lost: client closed");
	assert_string_equal(event_error(1, "freeing"), "exec-server connection lost: client closed");
	assert_string_equal(event_error(2, "third"), "exec-server connection lost: client closed");
	assert_int_equal(client.call_after_free_rc, -ESHUTDOWN);
	client.r = NULL;
	run_for(20);
	assert_int_equal(json_array_size(client.events), 3);
}

/* Freeing from inside a reply delivered off the wire, with more messages behind it in the same read. */
static void test_free_from_reply_callback(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	CallCtx *freeing = call_ctx("freeing");

	freeing->free_remote = true;
	assert_int_equal(remote_call(client.r, "notify", NULL, 0, client_on_reply, freeing), 0);
	assert_int_equal(client_call("after", "echo", NULL, 0), 0);
	assert_int_equal(client_call("pending", "silent", NULL, 0), 0);
	wait_events(5);
	client.r = NULL;
	assert_string_equal(event_kind(0), "note");
	assert_string_equal(event_kind(1), "note");
	assert_non_null(event_result(2, "freeing"));
	assert_string_equal(event_error(3, "after"), "exec-server connection lost: client closed");
	assert_string_equal(event_error(4, "pending"), "exec-server connection lost: client closed");
	assert_int_equal(client.call_after_free_rc, -ESHUTDOWN);
	run_for(50);
	assert_int_equal(json_array_size(client.events), 5);
}

static void test_call_argument_errors(void **state)
{
	(void)state;
	assert_int_equal(server_start("127.0.0.1"), 0);
	client_open();
	assert_int_equal(remote_call(client.r, NULL, json_object(), 0, client_on_reply, NULL), -EINVAL);
	assert_int_equal(remote_call(client.r, "", NULL, 0, client_on_reply, NULL), -EINVAL);
	assert_int_equal(remote_call(client.r, "echo", NULL, 0, NULL, NULL), -EINVAL);
	assert_int_equal(remote_call(NULL, "echo", json_object(), 0, client_on_reply, NULL), -EINVAL);
	assert_int_equal(remote_notify(client.r, "idle", json_object()), -ENOTCONN);

	/* A request over the message bound is refused up front, and nothing connects for it. */
	size_t len = (size_t)REMOTE_MAX_MESSAGE_BYTES;
	char *huge = malloc(len + 1);

	assert_non_null(huge);
	memset(huge, 'a', len);
	huge[len] = '\0';
	assert_int_equal(client_call("huge", "echo", json_pack("{s:s}", "data", huge), 0), -EMSGSIZE);
	free(huge);
	run_for(20);
	assert_int_equal(server.connections, 0);
	assert_int_equal(json_array_size(client.events), 0);
}

/* Whether this host resolves "localhost" to 127.0.0.1 at all (some containers have no /etc/hosts). */
static bool localhost_resolves_to_ipv4(void)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = NULL;
	bool ok = getaddrinfo("localhost", "80", &hints, &res) == 0;

	if (res)
		freeaddrinfo(res);
	return ok;
}

/* A name goes through uv_getaddrinfo; an IPv6 literal in brackets connects over IPv6. */
static void test_localhost_and_ipv6(void **state)
{
	char url[64];
	size_t n = 0;

	(void)state;
	if (localhost_resolves_to_ipv4()) {
		assert_int_equal(server_start("127.0.0.1"), 0);
		snprintf(url, sizeof(url), "ws://localhost:%d", server.port);
		client_open_url(url);
		assert_int_equal(client_call("name", "echo", NULL, 5000), 0);
		wait_events(++n);
		assert_non_null(event_result(0, "name"));
		remote_free(client.r);
		client.r = NULL;
		server_drop_all();
		server_stop_listening();
		run_for(10);
	} else {
		print_message("localhost does not resolve here; name resolution not tried\n");
	}

	if (server_start("::1") < 0) {
		print_message("no IPv6 loopback here; [::1] not tried\n");
		return;
	}
	snprintf(url, sizeof(url), "ws://[::1]:%d", server.port);
	client_open_url(url);
	assert_int_equal(client_call("v6", "echo", NULL, 5000), 0);
	wait_events(n + 1);
	assert_non_null(event_result(n, "v6"));
	snprintf(url, sizeof(url), "[::1]:%d", server.port);
	assert_string_equal(server.host, url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_refuses_bad_urls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_calls_queue_behind_initialize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notifications_come_in_wire_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_while_connecting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_fails_pending_then_reconnect_resumes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_resume_refused_starts_a_new_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unresolvable_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_path_and_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_is_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_close_frame_is_echoed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_message_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_violations_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_request_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_fails_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_reply_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_argument_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localhost_and_ipv6, setup, teardown),
	};

	log_init("remote_test", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
