/* SPDX-License-Identifier: MIT */
/* transport_ws.c - websocket clients: our own HTTP upgrade (health, Origin, auth) then RFC 6455 frames. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "log.h"
#include "transport.h"
#include "ws.h"
#include "ws_auth.h"

typedef enum WsPhase { WS_PHASE_HANDSHAKE, WS_PHASE_OPEN, WS_PHASE_CLOSING } WsPhase;

/* How long a client may take to send its HTTP request head before it is cut off. */
#define WS_HANDSHAKE_TIMEOUT_MS 10000u
/* Pongs and close frames queued for a client that is not reading: past this it is cut off. */
#define WS_CONTROL_QUEUE_MAX_BYTES (64u * 1024u)

typedef struct WsConn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;	/* ws://IP:PORT */
		uv_pipe_t pipe; /* unix://PATH, when the client speaks websocket there */
	} h;
	uv_timer_t handshake_timer;
	int open_handles;
	size_t control_queued_bytes;
	Agentd *server;
	/* What the client must present at the upgrade; NULL on a unix socket, whose permissions
	 * already decide who may connect (the reference checks no credentials there either). */
	const WsAuth *auth;
	Conn *conn; /* exists once the upgrade succeeded */
	WsPhase phase;
	char head[WS_HANDSHAKE_MAX_BYTES];
	size_t head_len;
	WsDecoder *decoder;
} WsConn;

typedef struct WsWrite {
	uv_write_t req;
	WsConn *wc;
	size_t payload_len;
	size_t control_len; /* bytes of a control frame or HTTP answer, counted against the bound */
	bool is_final;	    /* close the socket once this is written */
	uint8_t header[10];
	char data[];
} WsWrite;

static void ws_on_closed(uv_handle_t *handle)
{
	WsConn *wc = handle->data;
	if (--wc->open_handles > 0)
		return;
	ws_decoder_free(wc->decoder);
	if (wc->conn)
		conn_free(wc->conn);
	free(wc);
}

static void ws_close_socket(WsConn *wc)
{
	if (uv_is_closing(&wc->h.handle))
		return;
	wc->phase = WS_PHASE_CLOSING;
	if (wc->conn)
		wc->conn->is_closing = true;
	uv_close(&wc->h.handle, ws_on_closed);
	uv_close((uv_handle_t *)&wc->handshake_timer, ws_on_closed);
}

static void ws_on_write(uv_write_t *req, int status)
{
	WsWrite *w = (WsWrite *)req;
	WsConn *wc = w->wc;
	if (wc->conn && w->payload_len)
		conn_on_written(wc->conn, w->payload_len);
	wc->control_queued_bytes -= w->control_len;
	if (w->is_final || (status < 0 && status != UV_ECANCELED))
		ws_close_socket(wc);
	free(w);
}

/* Queue raw bytes (an HTTP response) or one frame when @opcode is set. */
static int ws_queue(WsConn *wc, int opcode, const char *data, size_t len, bool is_final)
{
	WsWrite *w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	w->wc = wc;
	w->is_final = is_final;
	w->payload_len = opcode == WS_OP_TEXT ? len : 0;
	w->control_len = opcode == WS_OP_TEXT ? 0 : len;
	memcpy(w->data, data, len);
	uv_buf_t bufs[2];
	unsigned n = 0;
	if (opcode >= 0)
		bufs[n++] = uv_buf_init((char *)w->header,
					(unsigned)ws_frame_header(w->header, (unsigned)opcode, len));
	bufs[n++] = uv_buf_init(w->data, (unsigned)len);
	int rc = uv_write(&w->req, &wc->h.stream, bufs, n, ws_on_write);
	if (rc < 0) {
		free(w);
		return rc;
	}
	wc->control_queued_bytes += w->control_len;
	return 0;
}

static void ws_http_reply(WsConn *wc, const char *status, const char *body)
{
	char response[512];
	int n = snprintf(response, sizeof(response),
			 "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n%s",
			 status, strlen(body), body);
	wc->phase = WS_PHASE_CLOSING;
	if (ws_queue(wc, -1, response, (size_t)n, true) < 0)
		ws_close_socket(wc);
}

static int ws_conn_write(Conn *conn, const char *data, size_t len)
{
	WsConn *wc = conn->transport;
	if (wc->phase != WS_PHASE_OPEN)
		return -EPIPE;
	return ws_queue(wc, WS_OP_TEXT, data, len, false);
}

static void ws_send_close(WsConn *wc, uint16_t code)
{
	char payload[2] = { (char)(code >> 8), (char)(code & 0xff) };
	if (wc->phase == WS_PHASE_CLOSING)
		return;
	wc->phase = WS_PHASE_CLOSING;
	/* Nothing more may be queued behind the close frame. */
	if (wc->conn)
		wc->conn->is_closing = true;
	if (ws_queue(wc, WS_OP_CLOSE, payload, sizeof(payload), true) < 0)
		ws_close_socket(wc);
}

static void ws_conn_close(Conn *conn, ConnCloseMode mode)
{
	WsConn *wc = conn->transport;
	if (mode == CONN_CLOSE_FLUSH && wc->phase == WS_PHASE_OPEN)
		ws_send_close(wc, 1001);
	else
		ws_close_socket(wc);
}

static const ConnOps ws_ops = { "ws", ws_conn_write, ws_conn_close };

static void ws_on_message(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	WsConn *wc = ctx;
	if (wc->phase == WS_PHASE_OPEN)
		conn_on_message(wc->conn, (const char *)data, len);
}

static void ws_on_oversize(void *ctx, uint64_t total_len, const uint8_t *head, size_t head_len)
{
	WsConn *wc = ctx;
	if (wc->phase == WS_PHASE_OPEN)
		conn_on_oversize(wc->conn, (size_t)total_len, (const char *)head, head_len);
}

static void ws_on_control(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	WsConn *wc = ctx;
	if (wc->phase != WS_PHASE_OPEN)
		return;
	if (opcode == WS_OP_PING) {
		/* Pongs are owed, but a client that pings without reading cannot make us hold them. */
		if (wc->control_queued_bytes > WS_CONTROL_QUEUE_MAX_BYTES) {
			conn_close(wc->conn, "client sends pings without reading the pongs");
			return;
		}
		ws_queue(wc, WS_OP_PONG, (const char *)data, len, false);
	} else if (opcode == WS_OP_CLOSE) {
		uint16_t code = len >= 2 ? (uint16_t)((data[0] << 8) | data[1]) : 1000;
		/* 1005/1006/1015 must never be sent on the wire; answer a plain normal closure. */
		ws_send_close(wc, code == 1005 || code == 1006 || code == 1015 ? 1000 : code);
	}
}

static void ws_feed(WsConn *wc, const uint8_t *data, size_t len)
{
	if (len == 0 || wc->phase != WS_PHASE_OPEN)
		return;
	if (ws_decoder_feed(wc->decoder, data, len) < 0) {
		log_info("connection %llu: websocket protocol error", (unsigned long long)wc->conn->id);
		ws_send_close(wc, ws_decoder_close_code(wc->decoder));
	}
}

static bool ws_is_health_path(const char *path)
{
	return strcmp(path, "/readyz") == 0 || strcmp(path, "/healthz") == 0;
}

/* "IP:PORT" of a TCP client, for log lines about it. */
static void ws_peer_name(WsConn *wc, char *out, size_t len)
{
	struct sockaddr_storage addr;
	int addr_len = sizeof(addr);
	char ip[64] = "?";
	int port = 0;
	if (uv_tcp_getpeername(&wc->h.tcp, (struct sockaddr *)&addr, &addr_len) == 0) {
		if (addr.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&addr, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&addr, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
		}
	}
	snprintf(out, len, "%s:%d", ip, port);
}

/*
 * The credentials are checked once, before the upgrade: frames never carry them. The answer to
 * a refused client is the reason alone (never anything it sent), and so is the log line.
 */
static bool ws_is_authorized(WsConn *wc, const WsRequest *req)
{
	if (!wc->auth)
		return true;
	const char *refusal = ws_auth_check(wc->auth, req->has_authorization ? req->authorization : NULL,
					    (int64_t)time(NULL));
	if (!refusal)
		return true;
	char peer[96];
	ws_peer_name(wc, peer, sizeof(peer));
	log_info("websocket client %s refused at the upgrade: %s", peer, refusal);
	ws_http_reply(wc, "401 Unauthorized", refusal);
	return false;
}

static int ws_upgrade(WsConn *wc, const WsRequest *req)
{
	char accept[29];
	if (ws_accept_key(req->key, accept) < 0) {
		ws_http_reply(wc, "400 Bad Request", "invalid Sec-WebSocket-Key");
		return -EINVAL;
	}
	static const WsDecoderEvents events = { ws_on_message, ws_on_oversize, ws_on_control };
	wc->decoder = ws_decoder_new(wc->server->max_message_bytes, &events, wc);
	wc->conn = wc->decoder ? conn_new(wc->server, &ws_ops, wc) : NULL;
	if (!wc->conn) {
		ws_http_reply(wc, "503 Service Unavailable", "out of memory");
		return -ENOMEM;
	}
	uv_timer_stop(&wc->handshake_timer);
	char response[320];
	/* The reference announces its message bound in this header; clients may size their frames by it. */
	int n = snprintf(
		response, sizeof(response),
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Accept: %s\r\nx-codex-websocket-max-unfragmented-message-bytes: %zu\r\n\r\n",
		accept, wc->server->max_message_bytes);
	wc->phase = WS_PHASE_OPEN;
	return ws_queue(wc, -1, response, (size_t)n, false);
}

/*
 * Checks in the reference's order: Origin first (browsers), then health (never authenticated,
 * so a load balancer needs no token), then the upgrade itself, and its credentials last.
 */
static void ws_handle_request(WsConn *wc, const WsRequest *req, size_t consumed)
{
	if (req->has_origin) {
		ws_http_reply(wc, "403 Forbidden", "requests with an Origin header are not allowed");
		return;
	}
	if (ws_is_health_path(req->path) && !req->is_upgrade) {
		ws_http_reply(wc, "200 OK", wc->server->is_stopping ? "stopping" : "ok");
		return;
	}
	if (strcmp(req->method, "GET") != 0 || !req->is_upgrade) {
		ws_http_reply(wc, "400 Bad Request", "expected a websocket upgrade request");
		return;
	}
	if (req->version != 13) {
		ws_http_reply(wc, "426 Upgrade Required", "unsupported Sec-WebSocket-Version (need 13)");
		return;
	}
	if (!ws_is_authorized(wc, req))
		return;
	if (ws_upgrade(wc, req) < 0)
		return;
	/* A client may pipeline its first frames right behind the request head. */
	ws_feed(wc, (const uint8_t *)wc->head + consumed, wc->head_len - consumed);
}

static void ws_handshake_bytes(WsConn *wc, const char *data, size_t len)
{
	size_t take;
	WsRequest req;
	int rc = ws_head_take(wc->head, sizeof(wc->head), &wc->head_len, data, len, &take, &req);
	if (rc == 0)
		return;
	if (rc == -E2BIG) {
		ws_http_reply(wc, "431 Request Header Fields Too Large", "request head too large");
		return;
	}
	if (rc < 0) {
		ws_http_reply(wc, "400 Bad Request", "malformed HTTP request");
		return;
	}
	ws_handle_request(wc, &req, (size_t)rc);
	if (wc->phase == WS_PHASE_OPEN && take < len)
		ws_feed(wc, (const uint8_t *)data + take, len - take);
}

static void ws_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	static char chunk[64 * 1024];
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static void ws_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	WsConn *wc = stream->data;
	if (nread < 0) {
		if (wc->conn)
			log_debug("connection %llu: %s", (unsigned long long)wc->conn->id,
				  uv_strerror((int)nread));
		ws_close_socket(wc);
		return;
	}
	if (wc->phase == WS_PHASE_HANDSHAKE)
		ws_handshake_bytes(wc, buf->base, (size_t)nread);
	else
		ws_feed(wc, (const uint8_t *)buf->base, (size_t)nread);
}

static void ws_on_handshake_timeout(uv_timer_t *timer)
{
	WsConn *wc = timer->data;
	if (wc->phase == WS_PHASE_HANDSHAKE)
		ws_close_socket(wc);
}

static WsConn *ws_conn_new(Agentd *server)
{
	WsConn *wc = calloc(1, sizeof(*wc));
	if (!wc)
		return NULL;
	wc->server = server;
	uv_timer_init(server->loop, &wc->handshake_timer);
	wc->handshake_timer.data = wc;
	wc->open_handles = 2;
	return wc;
}

static void ws_conn_start(WsConn *wc)
{
	wc->h.handle.data = wc;
	uv_timer_start(&wc->handshake_timer, ws_on_handshake_timeout, WS_HANDSHAKE_TIMEOUT_MS, 0);
	if (uv_read_start(&wc->h.stream, ws_alloc, ws_on_read) < 0)
		ws_close_socket(wc);
}

static void ws_on_connection(uv_stream_t *server_stream, int status)
{
	Listener *listener = server_stream->data;
	if (status < 0) {
		log_warn("ws transport: accept failed: %s", uv_strerror(status));
		return;
	}
	WsConn *wc = ws_conn_new(listener->server);
	if (!wc)
		return;
	wc->auth = &listener->server->ws_auth;
	uv_tcp_init(listener->server->loop, &wc->h.tcp);
	wc->h.handle.data = wc;
	if (uv_accept(server_stream, &wc->h.stream) < 0) {
		ws_close_socket(wc);
		return;
	}
	uv_tcp_nodelay(&wc->h.tcp, 1);
	ws_conn_start(wc);
}

int transport_ws_adopt_unix_fd(Agentd *server, uv_os_fd_t fd, const char *initial, size_t initial_len)
{
	WsConn *wc = ws_conn_new(server);
	if (!wc)
		return -ENOMEM;
	uv_pipe_init(server->loop, &wc->h.pipe, 0);
	wc->h.handle.data = wc;
	int rc = uv_pipe_open(&wc->h.pipe, fd);
	if (rc < 0) {
		ws_close_socket(wc);
		return rc;
	}
	ws_conn_start(wc);
	if (initial_len > 0 && wc->phase == WS_PHASE_HANDSHAKE)
		ws_handshake_bytes(wc, initial, initial_len);
	return 0;
}

static void ws_on_listener_closed(uv_handle_t *handle)
{
	Listener *listener = handle->data;
	free(listener->transport);
	free(listener);
}

static void ws_free(Listener *listener)
{
	uv_close(listener->handle, ws_on_listener_closed);
}

static int ws_bound_port(uv_tcp_t *tcp)
{
	struct sockaddr_storage addr;
	int len = sizeof(addr);
	if (uv_tcp_getsockname(tcp, (struct sockaddr *)&addr, &len) < 0)
		return -1;
	if (addr.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&addr)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
}

/* The banner's last line: what protects this listener. */
static const char *ws_banner_note(const Agentd *server, const ListenSpec *spec)
{
	if (ws_auth_is_loopback(spec->host))
		return "binds localhost only (use SSH port-forwarding for remote access)";
	if (server->ws_auth.mode != WS_AUTH_NONE)
		return "websocket auth is required for non-localhost listeners";
	return "websocket auth is NOT configured: configure `--ws-auth capability-token` or `--ws-auth "
	       "signed-bearer-token` before real remote use";
}

static void ws_banner(const Listener *listener, int port)
{
	const ListenSpec *spec = &listener->spec;
	const char *open = strchr(spec->host, ':') ? "[" : "", *close = strchr(spec->host, ':') ? "]" : "";
	fprintf(stderr,
		"agentd (WebSockets)\n  listening on: ws://%s%s%s:%d\n  readyz: http://%s%s%s:%d/readyz\n"
		"  healthz: http://%s%s%s:%d/healthz\n  note: %s\n",
		open, spec->host, close, port, open, spec->host, close, port, open, spec->host, close, port,
		ws_banner_note(listener->server, spec));
	fflush(stderr);
}

/* "IP:PORT" as the operator wrote it (IPv6 in brackets), for the refusal and the warning. */
static void ws_listen_addr(const ListenSpec *spec, char *out, size_t len)
{
	if (strchr(spec->host, ':'))
		snprintf(out, len, "[%s]:%d", spec->host, spec->port);
	else
		snprintf(out, len, "%s:%d", spec->host, spec->port);
}

int transport_ws_check_listener(const Agentd *server, const ListenSpec *spec, char *err, size_t err_len)
{
	char addr[96];
	ws_listen_addr(spec, addr, sizeof(addr));
	int rc = ws_auth_check_listener(&server->ws_auth, spec->host, addr, err, err_len);
	/* The operator asked for it by name; transport_ws_start() says so loudly. */
	if (rc == -EACCES && server->allows_unauthenticated_remote)
		return 0;
	return rc;
}

static void ws_warn_unauthenticated(const ListenSpec *spec)
{
	char shown[96];
	ws_listen_addr(spec, shown, sizeof(shown));
	log_warn("websocket listener %s has NO client authentication (--ws-allow-unauthenticated-remote): "
		 "anyone who can reach it can run commands as this user; configure `--ws-auth "
		 "capability-token` or `--ws-auth signed-bearer-token` before real remote use",
		 shown);
}

int transport_ws_start(Agentd *server, Listener *listener)
{
	const ListenSpec *spec = &listener->spec;
	char err[256];
	/* Fail closed: main() checked already, but no listener starts without this check. */
	if (transport_ws_check_listener(server, spec, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -EACCES;
	}
	if (!ws_auth_is_loopback(spec->host) && server->ws_auth.mode == WS_AUTH_NONE)
		ws_warn_unauthenticated(spec);
	struct sockaddr_storage addr;
	int rc = strchr(spec->host, ':') ? uv_ip6_addr(spec->host, spec->port, (struct sockaddr_in6 *)&addr)
					 : uv_ip4_addr(spec->host, spec->port, (struct sockaddr_in *)&addr);
	if (rc < 0)
		return rc;
	uv_tcp_t *tcp = calloc(1, sizeof(*tcp));
	if (!tcp)
		return -ENOMEM;
	uv_tcp_init(server->loop, tcp);
	tcp->data = listener;
	listener->transport = tcp;
	listener->handle = (uv_handle_t *)tcp;
	listener->free_transport = ws_free;
	rc = uv_tcp_bind(tcp, (struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)tcp, 128, ws_on_connection);
	if (rc < 0) {
		log_error("ws transport: cannot listen on %s:%d: %s", spec->host, spec->port,
			  uv_strerror(rc));
		return rc;
	}
	int port = ws_bound_port(tcp);
	log_info("listening on ws://%s:%d", spec->host, port);
	ws_banner(listener, port);
	return 0;
}
