/* SPDX-License-Identifier: MIT */
/* server_ws.c - the exec-server's websocket listener: our own HTTP upgrade, then RFC 6455 frames. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "log.h"
#include "server.h"
#include "ws.h"

/*
 * The upgrade is checked in the reference's order, and answered in its words: any Origin header
 * is a browser (403, before anything else); /readyz and /healthz answer 200 on the same port;
 * every other path but "/" is 404; then the websocket headers; then the credentials (401 with a
 * plain-text reason). Frames flow only after all of that. Every answer other than the upgrade
 * closes the connection.
 */

/* How long a client may take to send its request head. */
#define ES_WS_HANDSHAKE_TIMEOUT_MS 10000u
/* Connections at once; more are closed as they arrive (each holds buffers and a descriptor). */
#define ES_WS_MAX_CONNECTIONS 256u
/* Pongs and close frames queued for a client that does not read: past this it is cut off. */
#define ES_WS_CONTROL_QUEUE_MAX_BYTES (64u * 1024u)

typedef enum EsWsPhase { ES_WS_HANDSHAKE, ES_WS_OPEN, ES_WS_CLOSING } EsWsPhase;

typedef struct EsWsListener {
	EsServer *server;
	uv_tcp_t tcp;
	struct EsWsConn *conns;
	size_t conn_count;
	bool is_closed;
} EsWsListener;

typedef struct EsWsConn {
	struct EsWsConn *prev, *next;
	EsWsListener *listener;
	uv_tcp_t tcp;
	uv_timer_t handshake_timer;
	int open_handles;
	EsWsPhase phase;
	char peer[64];
	char head[WS_HANDSHAKE_MAX_BYTES];
	size_t head_len;
	WsDecoder *decoder;
	EsClient *client;
	size_t control_queued_bytes;
	bool is_reading;
} EsWsConn;

typedef struct EsWsWrite {
	uv_write_t req;
	EsWsConn *conn;
	size_t payload_len; /* counted against the client's output queue */
	size_t control_len;
	bool is_final;
	uint8_t header[10];
	char data[];
} EsWsWrite;

static void es_ws_on_closed(uv_handle_t *handle)
{
	EsWsConn *conn = handle->data;
	if (--conn->open_handles > 0)
		return;
	EsWsListener *l = conn->listener;
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		l->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	l->conn_count--;
	ws_decoder_free(conn->decoder);
	EsClient *client = conn->client;
	conn->client = NULL;
	free(conn);
	if (client)
		es_client_gone(client);
	if (l->is_closed && !l->conns)
		free(l);
}

static void es_ws_close(EsWsConn *conn)
{
	if (uv_is_closing((uv_handle_t *)&conn->tcp))
		return;
	conn->phase = ES_WS_CLOSING;
	if (conn->client)
		conn->client->is_closing = true;
	uv_close((uv_handle_t *)&conn->tcp, es_ws_on_closed);
	uv_close((uv_handle_t *)&conn->handshake_timer, es_ws_on_closed);
}

static void es_ws_on_write(uv_write_t *req, int status)
{
	EsWsWrite *w = (EsWsWrite *)req;
	EsWsConn *conn = w->conn;
	conn->control_queued_bytes -= w->control_len;
	if (conn->client && w->payload_len)
		es_client_on_written(conn->client, w->payload_len);
	if (w->is_final || (status < 0 && status != UV_ECANCELED))
		es_ws_close(conn);
	free(w);
}

/* Raw bytes (an HTTP answer) when @opcode < 0, else one frame. */
static int es_ws_queue(EsWsConn *conn, int opcode, const char *data, size_t len, bool is_final)
{
	if (uv_is_closing((uv_handle_t *)&conn->tcp))
		return -EPIPE;
	EsWsWrite *w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	w->conn = conn;
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
	int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, bufs, n, es_ws_on_write);
	if (rc < 0) {
		free(w);
		return rc;
	}
	conn->control_queued_bytes += w->control_len;
	return 0;
}

static void es_ws_http_date(char *out, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* An HTTP answer that ends the connection; @body NULL means no content type and no body. */
static void es_ws_http_reply(EsWsConn *conn, const char *status, const char *extra_headers, const char *body)
{
	char date[64], response[1024];
	es_ws_http_date(date, sizeof(date));
	int n = snprintf(response, sizeof(response),
			 "HTTP/1.1 %s\r\n%s%scontent-length: %zu\r\nconnection: close\r\ndate: %s\r\n\r\n%s",
			 status, body ? "content-type: text/plain; charset=utf-8\r\n" : "",
			 extra_headers ? extra_headers : "", body ? strlen(body) : 0, date, body ? body : "");
	conn->phase = ES_WS_CLOSING;
	if (n < 0 || (size_t)n >= sizeof(response) || es_ws_queue(conn, -1, response, (size_t)n, true) < 0)
		es_ws_close(conn);
}

/* --- the client's side of the core -----------------------------------------------------------------------
 */

static int es_ws_client_write(EsClient *c, const char *data, size_t len)
{
	EsWsConn *conn = c->transport;
	if (conn->phase != ES_WS_OPEN)
		return -EPIPE;
	return es_ws_queue(conn, WS_OP_TEXT, data, len, false);
}

static void es_ws_client_close(EsClient *c)
{
	/* Cut, without a close frame: the reference drops such a connection the same way. */
	es_ws_close(c->transport);
}

static void es_ws_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void es_ws_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void es_ws_client_set_reading(EsClient *c, bool is_reading)
{
	EsWsConn *conn = c->transport;
	if (conn->phase != ES_WS_OPEN || conn->is_reading == is_reading)
		return;
	conn->is_reading = is_reading;
	if (is_reading)
		uv_read_start((uv_stream_t *)&conn->tcp, es_ws_alloc, es_ws_on_read);
	else
		uv_read_stop((uv_stream_t *)&conn->tcp);
}

static const EsClientOps es_ws_client_ops = { es_ws_client_write, es_ws_client_close,
					      es_ws_client_set_reading };

/* --- frames ------------------------------------------------------------------------------------------------
 */

static void es_ws_send_close(EsWsConn *conn, uint16_t code)
{
	char payload[2] = { (char)(code >> 8), (char)(code & 0xff) };
	if (conn->phase == ES_WS_CLOSING)
		return;
	conn->phase = ES_WS_CLOSING;
	if (conn->client)
		conn->client->is_closing = true;
	if (es_ws_queue(conn, WS_OP_CLOSE, payload, sizeof(payload), true) < 0)
		es_ws_close(conn);
}

/* Text and binary messages alike carry one JSON-RPC message. */
static void es_ws_on_message(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	EsWsConn *conn = ctx;
	if (conn->phase == ES_WS_OPEN && conn->client)
		es_client_on_message(conn->client, (const char *)data, len);
}

static void es_ws_on_oversize(void *ctx, uint64_t total_len, const uint8_t *head, size_t head_len)
{
	EsWsConn *conn = ctx;
	if (conn->phase == ES_WS_OPEN && conn->client)
		es_client_on_oversize(conn->client, (size_t)total_len);
}

static void es_ws_on_control(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	EsWsConn *conn = ctx;
	if (conn->phase != ES_WS_OPEN)
		return;
	if (opcode == WS_OP_PING) {
		if (conn->control_queued_bytes > ES_WS_CONTROL_QUEUE_MAX_BYTES) {
			es_ws_close(conn); /* pings without reading the pongs */
			return;
		}
		es_ws_queue(conn, WS_OP_PONG, (const char *)data, len, false);
	} else if (opcode == WS_OP_CLOSE) {
		uint16_t code = len >= 2 ? (uint16_t)((data[0] << 8) | data[1]) : 1000;
		es_ws_send_close(conn, code == 1005 || code == 1006 || code == 1015 ? 1000 : code);
	}
}

static void es_ws_feed(EsWsConn *conn, const uint8_t *data, size_t len)
{
	if (len == 0 || conn->phase != ES_WS_OPEN)
		return;
	if (ws_decoder_feed(conn->decoder, data, len) < 0) {
		log_info("websocket %s: protocol error", conn->peer);
		es_ws_send_close(conn, ws_decoder_close_code(conn->decoder));
	}
}

/* --- the upgrade -------------------------------------------------------------------------------------------
 */

/* Whether header @name of the raw request head contains @token (comma-separated, any case). */
static bool es_ws_header_has_token(const char *head, size_t head_len, const char *name, const char *token)
{
	size_t name_len = strlen(name), token_len = strlen(token);
	const char *end = head + head_len;
	const char *nl = memchr(head, '\n', head_len);
	const char *p = nl ? nl + 1 : end; /* past the request line */
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		const char *line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
		if ((size_t)(line_end - p) > name_len && p[name_len] == ':' &&
		    strncasecmp(p, name, name_len) == 0) {
			for (const char *v = p + name_len + 1; v < line_end;) {
				const char *comma = memchr(v, ',', (size_t)(line_end - v));
				const char *a = v, *b = comma ? comma : line_end;
				while (a < b && (*a == ' ' || *a == '\t'))
					a++;
				while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
					b--;
				if ((size_t)(b - a) == token_len && strncasecmp(a, token, token_len) == 0)
					return true;
				if (!comma)
					break;
				v = comma + 1;
			}
		}
		p = eol + 1;
	}
	return false;
}

/* Sec-WebSocket-Accept for any key, as the reference computes it (no check of the key's form). */
static int es_ws_accept(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char joined[sizeof(((WsRequest *)0)->key) + sizeof(guid)];
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	int n = snprintf(joined, sizeof(joined), "%s%s", key, guid);
	if (n < 0 || EVP_Digest(joined, (size_t)n, digest, &digest_len, EVP_sha1(), NULL) != 1 ||
	    digest_len != 20)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len);
	return 0;
}

static void es_ws_upgrade(EsWsConn *conn, const WsRequest *req)
{
	EsServer *s = conn->listener->server;
	char accept[29], date[64], prefix[160], response[320];
	static const WsDecoderEvents events = { es_ws_on_message, es_ws_on_oversize, es_ws_on_control };
	snprintf(prefix, sizeof(prefix),
		 "failed to parse websocket JSON-RPC message from exec-server websocket %s", conn->peer);
	if (es_ws_accept(req->key, accept) < 0 ||
	    !(conn->decoder = ws_decoder_new(ES_MESSAGE_MAX_BYTES, &events, conn)) ||
	    !(conn->client = es_client_new(s, &es_ws_client_ops, conn, prefix))) {
		es_ws_http_reply(conn, "500 Internal Server Error", NULL, NULL);
		return;
	}
	uv_timer_stop(&conn->handshake_timer);
	es_ws_http_date(date, sizeof(date));
	int n = snprintf(response, sizeof(response),
			 "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
			 "sec-websocket-accept: %s\r\ndate: %s\r\n\r\n",
			 accept, date);
	conn->phase = ES_WS_OPEN;
	if (es_ws_queue(conn, -1, response, (size_t)n, false) < 0)
		es_ws_close(conn);
	log_debug("websocket %s: connected", conn->peer);
}

static void es_ws_handle_request(EsWsConn *conn, const WsRequest *req, size_t consumed)
{
	EsServer *s = conn->listener->server;
	if (req->has_origin) {
		es_ws_http_reply(conn, "403 Forbidden", NULL, NULL);
		return;
	}
	if (strcmp(req->path, "/readyz") == 0 || strcmp(req->path, "/healthz") == 0) {
		if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
			es_ws_http_reply(conn, s->is_stopping ? "503 Service Unavailable" : "200 OK", NULL,
					 NULL);
		else
			es_ws_http_reply(conn, "405 Method Not Allowed", "allow: GET,HEAD\r\n", NULL);
		return;
	}
	if (strcmp(req->path, "/") != 0) {
		es_ws_http_reply(conn, "404 Not Found", NULL, NULL);
		return;
	}
	if (strcmp(req->method, "GET") != 0) {
		es_ws_http_reply(conn, "405 Method Not Allowed", NULL, "Request method must be `GET`");
		return;
	}
	if (!es_ws_header_has_token(conn->head, consumed, "connection", "upgrade")) {
		es_ws_http_reply(conn, "400 Bad Request", NULL,
				 "Connection header did not include 'upgrade'");
		return;
	}
	if (!es_ws_header_has_token(conn->head, consumed, "upgrade", "websocket")) {
		es_ws_http_reply(conn, "400 Bad Request", NULL,
				 "`Upgrade` header did not include 'websocket'");
		return;
	}
	if (req->version != 13) {
		es_ws_http_reply(conn, "400 Bad Request", NULL,
				 "`Sec-WebSocket-Version` header did not include '13'");
		return;
	}
	if (req->key[0] == '\0') {
		es_ws_http_reply(conn, "400 Bad Request", NULL, "`Sec-WebSocket-Key` header missing");
		return;
	}
	/* The credentials are checked here, once: frames never carry them. */
	const char *refusal = ws_auth_check(&s->auth, req->has_authorization ? req->authorization : NULL,
					    (int64_t)time(NULL));
	if (refusal) {
		log_info("websocket %s: refused: %s", conn->peer, refusal);
		es_ws_http_reply(conn, "401 Unauthorized", NULL, refusal);
		return;
	}
	if (s->is_stopping) {
		es_ws_http_reply(conn, "503 Service Unavailable", NULL, NULL);
		return;
	}
	es_ws_upgrade(conn, req);
	if (conn->phase == ES_WS_OPEN)
		es_ws_feed(conn, (const uint8_t *)conn->head + consumed, conn->head_len - consumed);
}

static void es_ws_handshake_bytes(EsWsConn *conn, const char *data, size_t len)
{
	size_t take;
	WsRequest req;
	int rc = ws_head_take(conn->head, sizeof(conn->head), &conn->head_len, data, len, &take, &req);
	if (rc == 0)
		return;
	if (rc == -E2BIG) {
		es_ws_http_reply(conn, "431 Request Header Fields Too Large", NULL, NULL);
		return;
	}
	if (rc < 0) {
		es_ws_http_reply(conn, "400 Bad Request", NULL, NULL);
		return;
	}
	es_ws_handle_request(conn, &req, (size_t)rc);
	if (conn->phase == ES_WS_OPEN && take < len)
		es_ws_feed(conn, (const uint8_t *)data + take, len - take);
}

static void es_ws_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	static char chunk[64 * 1024];
	(void)handle;
	(void)suggested;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static void es_ws_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	EsWsConn *conn = stream->data;
	if (nread < 0) {
		log_debug("websocket %s: %s", conn->peer, uv_strerror((int)nread));
		es_ws_close(conn);
		return;
	}
	if (conn->phase == ES_WS_HANDSHAKE)
		es_ws_handshake_bytes(conn, buf->base, (size_t)nread);
	else
		es_ws_feed(conn, (const uint8_t *)buf->base, (size_t)nread);
}

static void es_ws_on_handshake_timeout(uv_timer_t *timer)
{
	EsWsConn *conn = timer->data;
	if (conn->phase == ES_WS_HANDSHAKE)
		es_ws_close(conn);
}

static void es_ws_peer_name(uv_tcp_t *tcp, char *out, size_t len)
{
	struct sockaddr_storage addr;
	int addr_len = sizeof(addr);
	char ip[INET6_ADDRSTRLEN] = "?";
	snprintf(out, len, "unknown");
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&addr, &addr_len) < 0)
		return;
	if (addr.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
		uv_ip6_name(a, ip, sizeof(ip));
		snprintf(out, len, "[%s]:%d", ip, ntohs(a->sin6_port));
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&addr;
		uv_ip4_name(a, ip, sizeof(ip));
		snprintf(out, len, "%s:%d", ip, ntohs(a->sin_port));
	}
}

static void es_ws_on_connection(uv_stream_t *server_stream, int status)
{
	EsWsListener *l = server_stream->data;
	if (status < 0) {
		log_warn("websocket listener: accept failed: %s", uv_strerror(status));
		return;
	}
	EsWsConn *conn = calloc(1, sizeof(*conn));
	if (!conn)
		return;
	conn->listener = l;
	uv_tcp_init(l->server->loop, &conn->tcp);
	uv_timer_init(l->server->loop, &conn->handshake_timer);
	conn->tcp.data = conn->handshake_timer.data = conn;
	conn->open_handles = 2;
	conn->next = l->conns;
	if (l->conns)
		l->conns->prev = conn;
	l->conns = conn;
	l->conn_count++;
	if (uv_accept(server_stream, (uv_stream_t *)&conn->tcp) < 0 ||
	    l->conn_count > ES_WS_MAX_CONNECTIONS || l->server->is_stopping) {
		es_ws_close(conn);
		return;
	}
	es_ws_peer_name(&conn->tcp, conn->peer, sizeof(conn->peer));
	uv_tcp_nodelay(&conn->tcp, 1);
	uv_timer_start(&conn->handshake_timer, es_ws_on_handshake_timeout, ES_WS_HANDSHAKE_TIMEOUT_MS, 0);
	conn->is_reading = true;
	if (uv_read_start((uv_stream_t *)&conn->tcp, es_ws_alloc, es_ws_on_read) < 0)
		es_ws_close(conn);
}

static void es_ws_on_listener_closed(uv_handle_t *handle)
{
	EsWsListener *l = handle->data;
	l->is_closed = true;
	if (!l->conns)
		free(l);
}

int es_ws_start(EsServer *s, const EsListen *listen)
{
	bool is_v6 = strchr(listen->host, ':') != NULL;
	struct sockaddr_storage addr;
	int rc = is_v6 ? uv_ip6_addr(listen->host, listen->port, (struct sockaddr_in6 *)&addr)
		       : uv_ip4_addr(listen->host, listen->port, (struct sockaddr_in *)&addr);
	if (rc < 0)
		return rc;
	EsWsListener *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->server = s;
	uv_tcp_init(s->loop, &l->tcp);
	l->tcp.data = l;
	s->listener = l;
	rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->tcp, 128, es_ws_on_connection);
	if (rc < 0) {
		log_error("cannot listen on ws://%s: %s", listen->addr, uv_strerror(rc));
		return rc;
	}
	struct sockaddr_storage bound;
	int bound_len = sizeof(bound);
	int port = listen->port;
	if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &bound_len) == 0)
		port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
							 : ((struct sockaddr_in *)&bound)->sin_port);
	/* One line on stdout, the bound URL, as the reference prints it: clients wait for it. */
	printf(is_v6 ? "ws://[%s]:%d\n" : "ws://%s:%d\n", listen->host, port);
	fflush(stdout);
	log_info("listening on ws://%s%s%s:%d (readyz and healthz on the same port)%s", is_v6 ? "[" : "",
		 listen->host, is_v6 ? "]" : "", port,
		 s->auth.mode == WS_AUTH_NONE ? ", without client authentication" : "");
	return 0;
}

void es_ws_stop(EsServer *s)
{
	EsWsListener *l = s->listener;
	if (!l)
		return;
	s->listener = NULL;
	for (EsWsConn *conn = l->conns; conn; conn = conn->next)
		es_ws_close(conn);
	uv_close((uv_handle_t *)&l->tcp, es_ws_on_listener_closed);
}
