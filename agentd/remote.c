/* SPDX-License-Identifier: MIT */
/* remote.c - exec-server client: ws:// URL, TCP, HTTP/1.1 upgrade, masked frames, initialize, pending calls.
 */
#include "remote.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "base64.h"
#include "log.h"
#include "ws.h"

/*
 * One Remote lives as long as its owner wants the exec-server; each attempt
 * to reach the server is a RemoteConn. When a connection drops (or the owner
 * frees the Remote) its RemoteConn is detached and finishes closing on its
 * own: libuv still calls back into it after that, so it is freed only when the
 * last of its handles and requests has called back. The Remote itself is freed
 * in its timer's close callback, which lets every callback into the owner be
 * followed by a check of r->is_freed.
 */

#define REMOTE_HOST_MAX_BYTES 254
#define REMOTE_PATH_MAX_BYTES 2048
#define REMOTE_TOKEN_MAX_BYTES 4096
/* How much of a refused upgrade's body goes into the error message. */
#define REMOTE_BODY_SNIPPET_BYTES 200

typedef enum RemoteState {
	REMOTE_IDLE,	     /* no connection; the next call starts one */
	REMOTE_CONNECTING,   /* resolving the name or connecting TCP */
	REMOTE_UPGRADING,    /* upgrade request sent, waiting for 101 */
	REMOTE_INITIALIZING, /* initialize sent, waiting for its result */
	REMOTE_OPEN,	     /* initialized: messages go straight out */
} RemoteState;

typedef struct RemoteCall RemoteCall;
struct RemoteCall {
	RemoteCall *prev, *next;
	uint64_t id; /* 0 for a queued notification */
	char *method;
	char *text; /* the serialized message until it is handed to the socket, then NULL */
	size_t text_len;
	uint64_t deadline_ms; /* uv_now() time of the timeout, 0 = none */
	uint32_t timeout_ms;
	RemoteReplyFn fn;
	void *ctx;
};

typedef struct RemoteCallList {
	RemoteCall *head, *tail;
	size_t count;
} RemoteCallList;

typedef struct RemoteConn RemoteConn;

/* One TCP attempt; a name may resolve to several addresses, tried in turn. */
typedef struct RemoteSocket {
	uv_tcp_t tcp;
	uv_connect_t connect;
	RemoteConn *conn;
	bool is_closing;
} RemoteSocket;

struct RemoteConn {
	Remote *remote; /* NULL once detached */
	uv_loop_t *loop;
	int refs; /* sockets not yet closed and a resolve not yet called back */
	uv_getaddrinfo_t resolve;
	bool is_resolving;
	struct addrinfo *addrs;
	struct addrinfo *next_addr;
	RemoteSocket *sock; /* the current attempt, then the connection */
	char last_error[128];
	bool is_upgraded;
	bool is_resuming; /* initialize carries resumeSessionId */
	char accept[29];  /* the Sec-WebSocket-Accept the server must answer */
	char head[WS_HANDSHAKE_MAX_BYTES];
	size_t head_len;
	WsDecoder *decoder;
	uint64_t initialize_id;
};

struct Remote {
	uv_loop_t *loop;
	uv_timer_t timer;      /* call deadlines, the connect deadline, a deferred drop */
	uint64_t timer_due_ms; /* when the timer is set to fire, 0 = stopped */
	RemoteEvents events;
	void *ctx;
	char *url;
	char host[REMOTE_HOST_MAX_BYTES + 1]; /* without an IPv6 literal's brackets */
	bool is_ipv6_literal;
	uint16_t port;
	char port_text[8];
	char *path; /* request target: path and query */
	char *host_header;
	char *client_name;
	char *token; /* CODEX_EXEC_SERVER_TOKEN, or NULL */
	RemoteState state;
	RemoteConn *conn;
	uint64_t connect_deadline_ms;
	char drop_later[160]; /* why, when a drop waits for the timer (no callbacks inside remote_call) */
	bool is_freed;
	uint64_t next_id;
	RemoteCallList calls; /* queued and in flight, in id order */
	size_t unsent_bytes;  /* text bytes of calls not yet handed to the socket */
	char *session_id;
	json_t *server_info;
};

static void remote_drop(Remote *r, uint16_t close_code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void remote_conn_try_next(RemoteConn *conn);

/* ------------------------------------------------------------------ */
/* Calls                                                               */
/* ------------------------------------------------------------------ */

static void remote_list_append(RemoteCallList *list, RemoteCall *c)
{
	c->next = NULL;
	c->prev = list->tail;
	if (list->tail)
		list->tail->next = c;
	else
		list->head = c;
	list->tail = c;
	list->count++;
}

static void remote_list_remove(RemoteCallList *list, RemoteCall *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		list->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		list->tail = c->prev;
	c->prev = c->next = NULL;
	list->count--;
}

static void remote_call_free(RemoteCall *c)
{
	if (!c)
		return;
	free(c->method);
	free(c->text);
	free(c);
}

static json_t *remote_error_new(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *remote_error_new(const char *fmt, ...)
{
	char message[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	return json_pack("{s:i,s:s}", "code", REMOTE_ERROR_CODE, "message", message);
}

/* The reply a caller is owed when none will come; a failed allocation still answers (a queued
 * notification has nobody to answer). */
static void remote_call_fail(RemoteCall *c, json_t *error)
{
	static json_t *fallback;

	if (c->fn && !error && !fallback)
		fallback = json_pack("{s:i,s:s}", "code", REMOTE_ERROR_CODE, "message",
				     "exec-server request failed");
	if (c->fn && (error || fallback))
		c->fn(c->ctx, NULL, error ? error : fallback);
	json_decref(error);
	remote_call_free(c);
}

/* Fail every call of a list already taken out of the Remote, so callbacks that queue new calls
 * (or free the Remote) never see it. */
static void remote_fail_list(RemoteCallList *list, const char *prefix, const char *why)
{
	RemoteCall *c;

	while ((c = list->head) != NULL) {
		remote_list_remove(list, c);
		remote_call_fail(c, c->fn ? remote_error_new("%s%s", prefix, why) : NULL);
	}
}

static RemoteCall *remote_find_sent(Remote *r, uint64_t id)
{
	for (RemoteCall *c = r->calls.head; c; c = c->next)
		if (c->id == id && !c->text)
			return c;
	return NULL;
}

/* {"id":…,"method":…,"params":…} without a "jsonrpc" member, as the exec-server speaks. Steals params. */
static int remote_message_dump(uint64_t id, const char *method, json_t *params, char **text, size_t *len)
{
	json_t *msg = json_object();
	int rc = 0;

	if (!msg) {
		json_decref(params);
		return -ENOMEM;
	}
	if (id && json_object_set_new(msg, "id", json_integer((json_int_t)id)) < 0)
		rc = -ENOMEM;
	if (rc == 0 && json_object_set_new(msg, "method", json_string(method)) < 0)
		rc = -EINVAL; /* not UTF-8 */
	if (params && json_object_set_new(msg, "params", params) < 0)
		rc = rc ? rc : -ENOMEM;
	*text = rc == 0 ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	if (rc == 0 && !*text)
		rc = -EINVAL; /* e.g. a NaN */
	*len = *text ? strlen(*text) : 0;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Timer                                                               */
/* ------------------------------------------------------------------ */

static void remote_on_timer(uv_timer_t *timer);

static void remote_timer_note(Remote *r, uint64_t due_ms)
{
	uint64_t now = uv_now(r->loop);

	if (r->is_freed || (r->timer_due_ms && r->timer_due_ms <= due_ms))
		return;
	r->timer_due_ms = due_ms;
	uv_timer_start(&r->timer, remote_on_timer, due_ms > now ? due_ms - now : 0, 0);
}

static void remote_timer_rearm(Remote *r)
{
	uint64_t due = r->connect_deadline_ms;

	if (r->is_freed)
		return;
	r->timer_due_ms = 0;
	uv_timer_stop(&r->timer);
	if (r->drop_later[0])
		due = uv_now(r->loop);
	for (RemoteCall *c = r->calls.head; c; c = c->next)
		if (c->deadline_ms && (!due || c->deadline_ms < due))
			due = c->deadline_ms;
	if (due)
		remote_timer_note(r, due);
}

/* For failures found inside remote_call(), which must not run callbacks: the timer drops soon. */
static void remote_drop_later(Remote *r, const char *why)
{
	if (!r->drop_later[0])
		snprintf(r->drop_later, sizeof(r->drop_later), "%s", why);
	remote_timer_note(r, uv_now(r->loop));
}

static const char *remote_state_waiting_for(RemoteState state)
{
	switch (state) {
	case REMOTE_CONNECTING:
		return "connecting";
	case REMOTE_UPGRADING:
		return "waiting for the websocket upgrade";
	case REMOTE_INITIALIZING:
		return "waiting for initialize";
	default:
		return "connected";
	}
}

static void remote_on_timer(uv_timer_t *timer)
{
	Remote *r = timer->data;
	uint64_t now = uv_now(r->loop);
	RemoteCallList expired = { 0 };
	RemoteCall *c, *next;

	r->timer_due_ms = 0;
	if (r->drop_later[0]) {
		char why[sizeof(r->drop_later)];

		memcpy(why, r->drop_later, sizeof(why));
		r->drop_later[0] = '\0';
		remote_drop(r, 0, "%s", why);
		if (r->is_freed)
			return;
	}
	if (r->connect_deadline_ms && now >= r->connect_deadline_ms) {
		remote_drop(r, WS_CLOSE_NORMAL, "no answer within %u ms (%s)", REMOTE_CONNECT_TIMEOUT_MS,
			    remote_state_waiting_for(r->state));
		if (r->is_freed)
			return;
	}
	for (c = r->calls.head; c; c = next) {
		next = c->next;
		if (!c->deadline_ms || c->deadline_ms > now)
			continue;
		remote_list_remove(&r->calls, c);
		if (c->text)
			r->unsent_bytes -= c->text_len;
		remote_list_append(&expired, c);
	}
	while ((c = expired.head) != NULL) {
		remote_list_remove(&expired, c);
		log_debug("exec-server %s: request %llu `%s` timed out after %u ms", r->url,
			  (unsigned long long)c->id, c->method, c->timeout_ms);
		remote_call_fail(c, remote_error_new("exec-server request `%s` timed out after %u ms",
						     c->method, c->timeout_ms));
	}
	remote_timer_rearm(r);
}

/* ------------------------------------------------------------------ */
/* Connection: sockets, writes, teardown                               */
/* ------------------------------------------------------------------ */

typedef struct RemoteWrite {
	uv_write_t req;
	RemoteConn *conn;
	char *payload; /* owned */
	uint8_t header[14];
} RemoteWrite;

static void remote_conn_maybe_free(RemoteConn *conn)
{
	if (conn->remote || conn->refs > 0)
		return;
	if (conn->addrs)
		uv_freeaddrinfo(conn->addrs);
	ws_decoder_free(conn->decoder);
	free(conn);
}

static void remote_on_socket_closed(uv_handle_t *handle)
{
	RemoteSocket *sock = handle->data;
	RemoteConn *conn = sock->conn;

	if (conn->sock == sock)
		conn->sock = NULL;
	free(sock);
	conn->refs--;
	remote_conn_maybe_free(conn);
}

static void remote_socket_close(RemoteSocket *sock)
{
	if (sock->is_closing)
		return;
	sock->is_closing = true;
	uv_close((uv_handle_t *)&sock->tcp, remote_on_socket_closed);
}

static void remote_on_write(uv_write_t *req, int status)
{
	RemoteWrite *w = (RemoteWrite *)req;
	RemoteConn *conn = w->conn;

	free(w->payload);
	free(w);
	/* A detached connection's writes are cancelled by its close; only a live one reports. */
	if (status < 0 && status != UV_ECANCELED && conn->remote)
		remote_drop(conn->remote, 0, "write failed: %s", uv_strerror(status));
}

/* Queue header + payload on the socket; the payload is taken over in every case. */
static int remote_conn_write(RemoteConn *conn, const uint8_t *header, size_t header_len, char *payload,
			     size_t len)
{
	RemoteSocket *sock = conn->sock;
	RemoteWrite *w;
	uv_buf_t bufs[2];
	unsigned n = 0;
	int rc;

	if (!sock || sock->is_closing) {
		free(payload);
		return -EPIPE;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		free(payload);
		return -ENOMEM;
	}
	w->conn = conn;
	w->payload = payload;
	if (header_len) {
		memcpy(w->header, header, header_len);
		bufs[n++] = uv_buf_init((char *)w->header, (unsigned)header_len);
	}
	bufs[n++] = uv_buf_init(payload, (unsigned)len);
	rc = uv_write(&w->req, (uv_stream_t *)&sock->tcp, bufs, n, remote_on_write);
	if (rc < 0) {
		free(payload);
		free(w);
	}
	return rc;
}

/* One masked frame (RFC 6455 section 5.3: a fresh unpredictable key per frame); the payload is
 * masked in place and taken over. */
static int remote_conn_send_frame(RemoteConn *conn, unsigned opcode, char *payload, size_t len)
{
	uint8_t mask[4], header[14];

	if (RAND_bytes(mask, sizeof(mask)) != 1) {
		free(payload);
		return -EIO;
	}
	ws_payload_mask((uint8_t *)payload, len, mask);
	return remote_conn_write(conn, header, ws_frame_header_masked(header, opcode, len, mask), payload,
				 len);
}

static int remote_conn_send_control(RemoteConn *conn, unsigned opcode, const uint8_t *data, size_t len)
{
	char *copy = malloc(len ? len : 1);

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	return remote_conn_send_frame(conn, opcode, copy, len);
}

/*
 * Cut the connection loose from its Remote. A CLOSE frame is queued when the
 * websocket is up and a code is given; uv_write() writes at once when it can,
 * so it usually reaches the server before the socket closes.
 */
static void remote_conn_detach(RemoteConn *conn, uint16_t close_code)
{
	conn->remote = NULL;
	if (conn->is_resolving)
		uv_cancel((uv_req_t *)&conn->resolve);
	if (conn->sock && !conn->sock->is_closing) {
		if (conn->is_upgraded && close_code) {
			uint8_t payload[2] = { (uint8_t)(close_code >> 8), (uint8_t)(close_code & 0xff) };

			remote_conn_send_control(conn, WS_OP_CLOSE, payload, sizeof(payload));
		}
		remote_socket_close(conn->sock);
	}
	remote_conn_maybe_free(conn);
}

/*
 * Fail everything and forget the connection. Calls that were in flight on an
 * initialized connection are "lost"; calls that never got that far found the
 * server "unavailable". on_disconnected runs last, for an initialized one.
 */
static void remote_drop(Remote *r, uint16_t close_code, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	bool was_open = r->state == REMOTE_OPEN;
	RemoteCallList calls = r->calls;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (r->conn)
		remote_conn_detach(r->conn, close_code);
	r->conn = NULL;
	r->state = REMOTE_IDLE;
	r->connect_deadline_ms = 0;
	json_decref(r->server_info);
	r->server_info = NULL;
	r->calls = (RemoteCallList){ 0 };
	r->unsent_bytes = 0;
	if (was_open)
		log_warn("exec-server %s: connection lost: %s", r->url, why);
	else
		log_warn("exec-server %s: unavailable: %s", r->url, why);
	remote_fail_list(&calls,
			 was_open ? "exec-server connection lost: " : "exec-server unavailable: ", why);
	if (was_open && !r->is_freed && r->events.on_disconnected)
		r->events.on_disconnected(r->ctx, why);
	remote_timer_rearm(r);
}

/* ------------------------------------------------------------------ */
/* Connecting                                                          */
/* ------------------------------------------------------------------ */

static void remote_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void remote_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	/* Single-threaded, and every read is consumed before the next: one buffer serves all. */
	static char chunk[64 * 1024];

	(void)handle;
	(void)suggested;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static int remote_send_upgrade(RemoteConn *conn)
{
	Remote *r = conn->remote;
	uint8_t nonce[16];
	char key[25];
	char *request = NULL;
	int n;

	/* RFC 6455 section 4.1: the key is 16 random bytes, base64; the answer proves the server read it. */
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return -EIO;
	base64_encode(nonce, sizeof(nonce), key);
	if (ws_accept_key(key, conn->accept) < 0)
		return -EIO;
	n = asprintf(&request,
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
		     r->path, r->host_header, key, r->token ? "Authorization: Bearer " : "",
		     r->token ? r->token : "", r->token ? "\r\n" : "");
	if (n < 0)
		return -ENOMEM;
	return remote_conn_write(conn, NULL, 0, request, (size_t)n);
}

static void remote_on_connect(uv_connect_t *req, int status)
{
	RemoteSocket *sock = req->data;
	RemoteConn *conn = sock->conn;
	Remote *r = conn->remote;
	int rc;

	if (!r || sock->is_closing)
		return;
	if (status < 0) {
		snprintf(conn->last_error, sizeof(conn->last_error), "%s", uv_strerror(status));
		remote_socket_close(sock);
		remote_conn_try_next(conn);
		return;
	}
	uv_tcp_nodelay(&sock->tcp, 1);
	r->state = REMOTE_UPGRADING;
	rc = uv_read_start((uv_stream_t *)&sock->tcp, remote_alloc, remote_on_read);
	if (rc == 0)
		rc = remote_send_upgrade(conn);
	if (rc < 0)
		remote_drop(r, 0, "cannot start the websocket upgrade: %s", uv_strerror(rc));
}

static int remote_conn_try(RemoteConn *conn, const struct sockaddr *addr)
{
	RemoteSocket *sock = calloc(1, sizeof(*sock));
	int rc;

	if (!sock)
		return -ENOMEM;
	rc = uv_tcp_init(conn->loop, &sock->tcp);
	if (rc < 0) {
		free(sock);
		return rc;
	}
	sock->conn = conn;
	sock->tcp.data = sock;
	sock->connect.data = sock;
	conn->sock = sock;
	conn->refs++;
	rc = uv_tcp_connect(&sock->connect, &sock->tcp, addr, remote_on_connect);
	if (rc < 0)
		remote_socket_close(sock);
	return rc;
}

/* The next resolved address, after the previous one failed; none left ends the attempt. */
static void remote_conn_try_next(RemoteConn *conn)
{
	Remote *r = conn->remote;

	while (conn->next_addr) {
		struct addrinfo *ai = conn->next_addr;
		int rc;

		conn->next_addr = ai->ai_next;
		rc = remote_conn_try(conn, ai->ai_addr);
		if (rc == 0)
			return;
		snprintf(conn->last_error, sizeof(conn->last_error), "%s", uv_strerror(rc));
	}
	remote_drop(r, 0, "cannot connect to %s: %s", r->host_header,
		    conn->last_error[0] ? conn->last_error : "no address");
}

static void remote_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	RemoteConn *conn = req->data;
	Remote *r = conn->remote;

	conn->is_resolving = false;
	conn->refs--;
	conn->addrs = res;
	if (!r) {
		remote_conn_maybe_free(conn);
		return;
	}
	if (status < 0) {
		remote_drop(r, 0, "cannot resolve %s: %s", r->host, uv_strerror(status));
		return;
	}
	conn->next_addr = res;
	remote_conn_try_next(conn);
}

/*
 * Start a connection; state IDLE means no calls are queued, so a failure here
 * has nobody to call back. A literal address is connected at once, a name is
 * resolved first (in libuv's thread pool).
 */
static int remote_connect_start(Remote *r)
{
	RemoteConn *conn = calloc(1, sizeof(*conn));
	int rc;

	if (!conn)
		return -ENOMEM;
	conn->remote = r;
	conn->loop = r->loop;
	conn->is_resuming = r->session_id != NULL;
	r->conn = conn;
	r->state = REMOTE_CONNECTING;

	struct sockaddr_storage addr;

	if (uv_ip4_addr(r->host, r->port, (struct sockaddr_in *)&addr) == 0 ||
	    uv_ip6_addr(r->host, r->port, (struct sockaddr_in6 *)&addr) == 0) {
		rc = remote_conn_try(conn, (struct sockaddr *)&addr);
	} else {
		struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };

		conn->resolve.data = conn;
		rc = uv_getaddrinfo(r->loop, &conn->resolve, remote_on_resolved, r->host, r->port_text,
				    &hints);
		if (rc == 0) {
			conn->is_resolving = true;
			conn->refs++;
		}
	}
	if (rc < 0) {
		log_warn("exec-server %s: cannot start connecting: %s", r->url, uv_strerror(rc));
		r->conn = NULL;
		r->state = REMOTE_IDLE;
		remote_conn_detach(conn, 0);
		return rc;
	}
	log_debug("exec-server %s: connecting%s", r->url,
		  conn->is_resuming ? " (to resume the session)" : "");
	r->connect_deadline_ms = uv_now(r->loop) + REMOTE_CONNECT_TIMEOUT_MS;
	remote_timer_note(r, r->connect_deadline_ms);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Upgrade response                                                    */
/* ------------------------------------------------------------------ */

typedef struct RemoteSpan {
	const char *ptr;
	size_t len;
} RemoteSpan;

static RemoteSpan remote_span_trim(RemoteSpan s)
{
	while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
		s.ptr++;
		s.len--;
	}
	while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
		s.len--;
	return s;
}

static bool remote_span_is(RemoteSpan s, const char *text)
{
	return s.len == strlen(text) && strncasecmp(s.ptr, text, s.len) == 0;
}

/* Whether a comma-separated header value holds @token, as "Connection: keep-alive, Upgrade" does. */
static bool remote_span_has_token(RemoteSpan list, const char *token)
{
	while (list.len) {
		const char *comma = memchr(list.ptr, ',', list.len);
		size_t n = comma ? (size_t)(comma - list.ptr) : list.len;

		if (remote_span_is(remote_span_trim((RemoteSpan){ list.ptr, n }), token))
			return true;
		if (!comma)
			break;
		list.ptr += n + 1;
		list.len -= n + 1;
	}
	return false;
}

/* A refused upgrade's first body bytes, printable, for the error message (a 401 says why). */
static void remote_body_snippet(const char *body, size_t len, char *out, size_t out_len)
{
	size_t n = 0;

	if (len > REMOTE_BODY_SNIPPET_BYTES)
		len = REMOTE_BODY_SNIPPET_BYTES;
	for (size_t i = 0; i < len && n + 1 < out_len; i++)
		out[n++] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : ' ';
	out[n] = '\0';
}

/* Check the response head (@head_len bytes, through the blank line). Return: 0, or -1 with @why set. */
static int remote_check_upgrade_response(RemoteConn *conn, size_t head_len, char *why, size_t why_len)
{
	RemoteSpan rest = { conn->head, head_len - 2 }; /* without the final CRLF */
	bool has_upgrade = false, has_connection = false, has_accept = false;
	int status = 0;

	const char *eol = memmem(rest.ptr, rest.len, "\r\n", 2);
	RemoteSpan line = { rest.ptr, (size_t)(eol - rest.ptr) };

	rest.ptr = eol + 2;
	rest.len -= line.len + 2;
	if (line.len < 12 || strncmp(line.ptr, "HTTP/1.1 ", 9) != 0 || line.ptr[9] < '1' ||
	    line.ptr[9] > '5' || line.ptr[10] < '0' || line.ptr[10] > '9' || line.ptr[11] < '0' ||
	    line.ptr[11] > '9' || (line.len > 12 && line.ptr[12] != ' ')) {
		snprintf(why, why_len, "malformed HTTP status line in the upgrade response");
		return -1;
	}
	status = (line.ptr[9] - '0') * 100 + (line.ptr[10] - '0') * 10 + (line.ptr[11] - '0');
	if (status != 101) {
		char body[REMOTE_BODY_SNIPPET_BYTES + 1];
		RemoteSpan reason = remote_span_trim((RemoteSpan){ line.ptr + 12, line.len - 12 });

		remote_body_snippet(conn->head + head_len, conn->head_len - head_len, body, sizeof(body));
		snprintf(why, why_len, "the websocket upgrade was refused: HTTP %d %.*s%s%s", status,
			 (int)(reason.len > 64 ? 64 : reason.len), reason.ptr, body[0] ? ": " : "", body);
		return -1;
	}
	while (rest.len) {
		eol = memmem(rest.ptr, rest.len, "\r\n", 2);
		line = (RemoteSpan){ rest.ptr, eol ? (size_t)(eol - rest.ptr) : rest.len };
		rest.ptr += line.len + (eol ? 2 : 0);
		rest.len -= line.len + (eol ? 2 : 0);

		const char *colon = memchr(line.ptr, ':', line.len);

		if (!colon) {
			snprintf(why, why_len, "malformed header in the upgrade response");
			return -1;
		}
		RemoteSpan name = { line.ptr, (size_t)(colon - line.ptr) };
		RemoteSpan value = remote_span_trim((RemoteSpan){ colon + 1, line.len - name.len - 1 });

		if (remote_span_is(name, "upgrade"))
			has_upgrade = has_upgrade || remote_span_has_token(value, "websocket");
		else if (remote_span_is(name, "connection"))
			has_connection = has_connection || remote_span_has_token(value, "upgrade");
		else if (remote_span_is(name, "sec-websocket-accept"))
			has_accept = has_accept || remote_span_is(value, conn->accept);
		else if (remote_span_is(name, "sec-websocket-extensions") ||
			 remote_span_is(name, "sec-websocket-protocol")) {
			/* Section 4.1: neither was asked for, so the client must fail the connection. */
			snprintf(why, why_len, "the upgrade response selects an extension or subprotocol");
			return -1;
		}
	}
	if (!has_upgrade || !has_connection) {
		snprintf(why, why_len,
			 "the upgrade response lacks Upgrade: websocket or Connection: upgrade");
		return -1;
	}
	if (!has_accept) {
		snprintf(why, why_len, "the upgrade response has a wrong or no Sec-WebSocket-Accept");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static int remote_send_initialize(RemoteConn *conn);
static void remote_connection_ready(Remote *r, json_t *result);

/* Hand every queued message to the socket, in order; notifications are done once written. */
static void remote_flush(Remote *r)
{
	RemoteCall *c, *next;

	for (c = r->calls.head; c && r->state == REMOTE_OPEN; c = next) {
		next = c->next;
		if (!c->text)
			continue;
		char *text = c->text;
		int rc;

		c->text = NULL;
		r->unsent_bytes -= c->text_len;
		rc = remote_conn_send_frame(r->conn, WS_OP_TEXT, text, c->text_len);
		if (!c->id) {
			remote_list_remove(&r->calls, c);
			remote_call_free(c);
		}
		if (rc < 0) {
			remote_drop(r, 0, "write failed: %s", uv_strerror(rc));
			return;
		}
	}
}

/* A resumed session that the server no longer knows: the processes are gone either way, so
 * start a new session on a fresh connection (a server may allow one initialize per connection). */
static void remote_restart_fresh(Remote *r, const char *why)
{
	int rc;

	log_warn("exec-server %s: cannot resume session %s (%s); starting a new session", r->url,
		 r->session_id, why);
	free(r->session_id);
	r->session_id = NULL;
	remote_conn_detach(r->conn, WS_CLOSE_NORMAL);
	r->conn = NULL;
	r->state = REMOTE_IDLE;
	rc = remote_connect_start(r);
	if (rc < 0)
		remote_drop(r, 0, "cannot reconnect: %s", uv_strerror(rc));
}

static void remote_on_initialize_reply(Remote *r, RemoteConn *conn, json_t *result, json_t *error)
{
	conn->initialize_id = 0;
	if (error || !json_is_object(result)) {
		const char *message = json_string_value(json_object_get(error, "message"));

		if (!message)
			message = error ? "malformed error" : "no result";
		if (conn->is_resuming) {
			remote_restart_fresh(r, message);
			return;
		}
		remote_drop(r, WS_CLOSE_NORMAL, "initialize failed: %s", message);
		return;
	}
	remote_connection_ready(r, result);
}

/* initialize answered: remember the session, send `initialized`, then everything that waited. */
static void remote_connection_ready(Remote *r, json_t *result)
{
	const char *session = json_string_value(json_object_get(result, "sessionId"));
	bool is_resumed = session && r->session_id && strcmp(session, r->session_id) == 0;
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!session || !*session) {
		remote_drop(r, WS_CLOSE_PROTOCOL_ERROR, "initialize result has no sessionId");
		return;
	}
	char *copy = strdup(session);

	if (!copy) {
		remote_drop(r, WS_CLOSE_NORMAL, "out of memory");
		return;
	}
	free(r->session_id);
	r->session_id = copy;
	json_decref(r->server_info);
	r->server_info = json_incref(result);
	rc = remote_message_dump(0, "initialized", json_object(), &text, &len);
	if (rc == 0)
		rc = remote_conn_send_frame(r->conn, WS_OP_TEXT, text, len);
	if (rc < 0) {
		remote_drop(r, 0, "cannot send initialized: %s", uv_strerror(rc));
		return;
	}
	r->state = REMOTE_OPEN;
	r->connect_deadline_ms = 0;
	log_info("exec-server %s: connected, session %s%s", r->url, r->session_id,
		 is_resumed ? " (resumed)" : "");
	remote_flush(r);
	remote_timer_rearm(r);
}

/* A request from the server: the exec-server protocol has none for its client, so it is refused. */
static void remote_refuse_server_request(Remote *r, json_t *id, const char *method)
{
	json_t *reply = json_pack("{s:O,s:{s:i,s:s+}}", "id", id, "error", "code", -32601, "message",
				  "agentd does not handle server requests: ", method);
	char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

	json_decref(reply);
	log_warn("exec-server %s: refused server request `%s`", r->url, method);
	if (text)
		remote_conn_send_frame(r->conn, WS_OP_TEXT, text, strlen(text));
}

/* A well-formed JSON-RPC error object, or one made up that says what came instead. */
static json_t *remote_error_checked(json_t *error)
{
	if (json_is_object(error) && json_is_integer(json_object_get(error, "code")) &&
	    json_is_string(json_object_get(error, "message")))
		return json_incref(error);
	if (!error)
		return remote_error_new("exec-server sent a reply with neither result nor error");

	char *text = json_dumps(error, JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *made = remote_error_new("exec-server sent a malformed error: %.200s", text ? text : "?");

	free(text);
	return made;
}

static void remote_handle_message(Remote *r, RemoteConn *conn, json_t *msg)
{
	json_t *method = json_object_get(msg, "method");
	json_t *id = json_object_get(msg, "id");

	if (json_is_string(method)) {
		if (id) {
			remote_refuse_server_request(r, id, json_string_value(method));
			return;
		}
		if (r->events.on_notification)
			r->events.on_notification(r->ctx, json_string_value(method),
						  json_object_get(msg, "params"));
		return;
	}
	json_t *result = json_object_get(msg, "result");
	json_t *error = json_object_get(msg, "error");

	if (json_is_null(error))
		error = NULL;

	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		/* The reference answers a message it cannot parse with id -1. */
		log_warn("exec-server %s: reply without a request id: %s", r->url,
			 json_string_value(json_object_get(error, "message"))
				 ? json_string_value(json_object_get(error, "message"))
				 : "(no error message)");
		return;
	}
	uint64_t id_value = (uint64_t)json_integer_value(id);

	if (conn->initialize_id && id_value == conn->initialize_id) {
		remote_on_initialize_reply(r, conn, result, error);
		return;
	}
	RemoteCall *c = remote_find_sent(r, id_value);

	if (!c) {
		log_debug("exec-server %s: reply to request %llu, which is no longer waiting (timed out)",
			  r->url, (unsigned long long)id_value);
		return;
	}
	remote_list_remove(&r->calls, c);
	if (error || !result) {
		json_t *checked = remote_error_checked(error);

		remote_call_fail(c, checked);
		return;
	}
	c->fn(c->ctx, result, NULL);
	remote_call_free(c);
}

static void remote_on_ws_message(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	RemoteConn *conn = ctx;
	Remote *r = conn->remote;
	json_error_t err;

	/* The reference accepts JSON in binary frames too; so does this end. */
	(void)opcode;
	if (!r)
		return;
	json_t *msg = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);

	if (!json_is_object(msg)) {
		json_decref(msg);
		remote_drop(r, WS_CLOSE_INVALID_DATA,
			    "exec-server sent a message that is not a JSON object (%s)",
			    msg ? "not an object" : err.text);
		return;
	}
	remote_handle_message(r, conn, msg);
	json_decref(msg);
}

static void remote_on_ws_oversize(void *ctx, uint64_t total_len, const uint8_t *head, size_t head_len)
{
	RemoteConn *conn = ctx;

	(void)head;
	(void)head_len;
	if (conn->remote)
		remote_drop(conn->remote, 1009 /* message too big */,
			    "exec-server sent a message of %llu bytes, over the %u-byte limit",
			    (unsigned long long)total_len, REMOTE_MAX_MESSAGE_BYTES);
}

static void remote_on_ws_control(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	RemoteConn *conn = ctx;
	uint16_t code = WS_CLOSE_NO_STATUS;
	int rc;

	if (!conn->remote)
		return;
	if (opcode == WS_OP_PING) {
		rc = remote_conn_send_control(conn, WS_OP_PONG, data, len);
		if (rc < 0)
			remote_drop(conn->remote, 0, "cannot answer a ping: %s", uv_strerror(rc));
	} else if (opcode == WS_OP_CLOSE) {
		ws_close_payload_parse(data, len, &code);
		/* Echo the code (section 5.5.1); 1005 only means "none given" and never goes on the wire. */
		remote_drop(conn->remote, code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : code,
			    "exec-server closed the websocket (code %u)", code);
	}
}

static int remote_send_initialize(RemoteConn *conn)
{
	Remote *r = conn->remote;
	json_t *params = json_pack("{s:s}", "clientName", r->client_name);
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!params)
		return -ENOMEM;
	if (conn->is_resuming &&
	    json_object_set_new(params, "resumeSessionId", json_string(r->session_id)) < 0) {
		json_decref(params);
		return -ENOMEM;
	}
	conn->initialize_id = r->next_id++;
	rc = remote_message_dump(conn->initialize_id, "initialize", params, &text, &len);
	if (rc < 0)
		return rc;
	r->state = REMOTE_INITIALIZING;
	return remote_conn_send_frame(conn, WS_OP_TEXT, text, len);
}

static void remote_conn_feed(RemoteConn *conn, const uint8_t *data, size_t len)
{
	int rc = ws_decoder_feed(conn->decoder, data, len);

	/* A callback may have dropped the connection meanwhile; the decoder lives until the conn is freed. */
	if (rc < 0 && conn->remote)
		remote_drop(conn->remote, ws_decoder_close_code(conn->decoder),
			    "websocket protocol error from the exec-server (%s)", strerror(-rc));
}

static void remote_on_upgrade_bytes(RemoteConn *conn, const char *data, size_t len)
{
	static const WsDecoderEvents events = { remote_on_ws_message, remote_on_ws_oversize,
						remote_on_ws_control };
	Remote *r = conn->remote;
	size_t room = sizeof(conn->head) - conn->head_len;
	size_t take = len < room ? len : room;
	char why[512];

	memcpy(conn->head + conn->head_len, data, take);
	conn->head_len += take;

	const char *end = memmem(conn->head, conn->head_len, "\r\n\r\n", 4);

	if (!end) {
		if (conn->head_len == sizeof(conn->head))
			remote_drop(r, 0, "upgrade response head over %zu bytes", sizeof(conn->head));
		return;
	}
	size_t head_len = (size_t)(end - conn->head) + 4;

	if (remote_check_upgrade_response(conn, head_len, why, sizeof(why)) < 0) {
		remote_drop(r, 0, "%s", why);
		return;
	}
	conn->decoder = ws_client_decoder_new(REMOTE_MAX_MESSAGE_BYTES, &events, conn);
	if (!conn->decoder) {
		remote_drop(r, 0, "out of memory");
		return;
	}
	conn->is_upgraded = true;
	int rc = remote_send_initialize(conn);

	if (rc < 0) {
		remote_drop(r, WS_CLOSE_NORMAL, "cannot send initialize: %s", uv_strerror(rc));
		return;
	}
	/* Frames may follow the head in the same read. */
	if (conn->head_len > head_len)
		remote_conn_feed(conn, (const uint8_t *)conn->head + head_len, conn->head_len - head_len);
	if (conn->remote && take < len)
		remote_conn_feed(conn, (const uint8_t *)data + take, len - take);
}

static void remote_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	RemoteSocket *sock = stream->data;
	RemoteConn *conn = sock->conn;
	Remote *r = conn->remote;

	if (!r || sock->is_closing || nread == 0)
		return;
	if (nread < 0) {
		if (nread == UV_EOF)
			remote_drop(r, 0, "the exec-server closed the connection");
		else
			remote_drop(r, 0, "read failed: %s", uv_strerror((int)nread));
		return;
	}
	if (!conn->is_upgraded)
		remote_on_upgrade_bytes(conn, buf->base, (size_t)nread);
	else
		remote_conn_feed(conn, (const uint8_t *)buf->base, (size_t)nread);
}

/* ------------------------------------------------------------------ */
/* URL                                                                 */
/* ------------------------------------------------------------------ */

static bool remote_host_char_ok(char c, bool is_ipv6)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
	    c == '.')
		return true;
	if (is_ipv6)
		return false;
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

/* ws://HOST[:PORT][/path][?query]; no userinfo, no fragment. */
static int remote_url_parse(Remote *r, const char *url)
{
	const char *p, *end, *host, *host_end, *after;
	struct in6_addr in6;

	if (strncasecmp(url, "wss://", 6) == 0)
		return -EPROTONOSUPPORT;
	if (strncasecmp(url, "ws://", 5) != 0)
		return -EINVAL;
	p = url + 5;
	end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(end - p)))
		return -EINVAL;
	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));

		if (!close)
			return -EINVAL;
		host = p + 1;
		host_end = close;
		after = close + 1;
		r->is_ipv6_literal = true;
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));

		host = p;
		host_end = colon ? colon : end;
		after = host_end;
	}
	size_t host_len = (size_t)(host_end - host);

	if (host_len == 0 || host_len > REMOTE_HOST_MAX_BYTES)
		return -EINVAL;
	for (size_t i = 0; i < host_len; i++)
		if (!remote_host_char_ok(host[i], r->is_ipv6_literal) ||
		    (!r->is_ipv6_literal && host[i] == ':'))
			return -EINVAL;
	memcpy(r->host, host, host_len);
	r->host[host_len] = '\0';
	if (r->is_ipv6_literal && uv_inet_pton(AF_INET6, r->host, &in6) != 0)
		return -EINVAL;

	unsigned long port = 80;

	if (after < end) {
		if (*after != ':' || end - after < 2 || end - after > 6)
			return -EINVAL;
		port = 0;
		for (const char *d = after + 1; d < end; d++) {
			if (*d < '0' || *d > '9')
				return -EINVAL;
			port = port * 10 + (unsigned long)(*d - '0');
		}
		if (port == 0 || port > 65535)
			return -EINVAL;
	}
	r->port = (uint16_t)port;
	snprintf(r->port_text, sizeof(r->port_text), "%lu", port);

	size_t path_len = strlen(end);

	if (strchr(end, '#') || path_len > REMOTE_PATH_MAX_BYTES)
		return -EINVAL;
	for (size_t i = 0; i < path_len; i++)
		if ((unsigned char)end[i] <= 0x20 || (unsigned char)end[i] >= 0x7f)
			return -EINVAL;
	if (asprintf(&r->path, "%s%s", *end == '/' ? "" : "/", end) < 0) {
		r->path = NULL;
		return -ENOMEM;
	}
	if (asprintf(&r->host_header, r->is_ipv6_literal ? "[%s]:%u" : "%s:%u", r->host, (unsigned)r->port) <
	    0) {
		r->host_header = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* API                                                                 */
/* ------------------------------------------------------------------ */

static void remote_release(Remote *r)
{
	free(r->url);
	free(r->path);
	free(r->host_header);
	free(r->client_name);
	free(r->token);
	free(r->session_id);
	json_decref(r->server_info);
	free(r);
}

static void remote_on_timer_closed(uv_handle_t *handle)
{
	remote_release(handle->data);
}

/* The token goes into a header line: anything but visible ASCII could end it early. */
static bool remote_token_is_valid(const char *token)
{
	size_t len = strlen(token);

	if (len > REMOTE_TOKEN_MAX_BYTES)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f)
			return false;
	return true;
}

int remote_new(uv_loop_t *loop, const char *url, const char *client_name, const RemoteEvents *events,
	       void *ctx, Remote **out)
{
	Remote *r;
	int rc;

	if (out)
		*out = NULL;
	if (!loop || !url || !client_name || !*client_name || !out)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->ctx = ctx;
	r->next_id = 1;
	if (events)
		r->events = *events;
	r->url = strdup(url);
	r->client_name = strdup(client_name);
	if (!r->url || !r->client_name) {
		remote_release(r);
		return -ENOMEM;
	}
	rc = remote_url_parse(r, url);
	if (rc == -EPROTONOSUPPORT)
		log_error("exec-server %s: wss:// (TLS) is not supported; use a ws:// URL on loopback or "
			  "through "
			  "an SSH tunnel",
			  url);
	else if (rc < 0)
		log_error("exec-server URL %s is not ws://HOST[:PORT][/PATH]", url);
	if (rc < 0) {
		remote_release(r);
		return rc;
	}
	/* An exec-server that wants a credential gets it from here; the reference's listener has none. */
	const char *token = getenv("CODEX_EXEC_SERVER_TOKEN");

	if (token && *token) {
		if (!remote_token_is_valid(token)) {
			log_error("CODEX_EXEC_SERVER_TOKEN is not a bearer token (spaces, control characters "
				  "or "
				  "over %u bytes)",
				  REMOTE_TOKEN_MAX_BYTES);
			remote_release(r);
			return -EINVAL;
		}
		r->token = strdup(token);
		if (!r->token) {
			remote_release(r);
			return -ENOMEM;
		}
	}
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	*out = r;
	return 0;
}

void remote_free(Remote *r)
{
	RemoteCallList calls;

	if (!r || r->is_freed)
		return;
	r->is_freed = true;
	if (r->conn)
		remote_conn_detach(r->conn, 1001 /* going away */);
	r->conn = NULL;
	r->state = REMOTE_IDLE;
	calls = r->calls;
	r->calls = (RemoteCallList){ 0 };
	r->unsent_bytes = 0;
	remote_fail_list(&calls, "exec-server connection lost: ", "client closed");
	uv_close((uv_handle_t *)&r->timer, remote_on_timer_closed);
}

static size_t remote_queued_bytes(const Remote *r)
{
	size_t bytes = r->unsent_bytes;

	if (r->conn && r->conn->sock && !r->conn->sock->is_closing)
		bytes += uv_stream_get_write_queue_size((const uv_stream_t *)&r->conn->sock->tcp);
	return bytes;
}

/* Serialize, check the bounds and queue (connecting first if need be); sent at once when open. */
static int remote_submit(Remote *r, uint64_t id, const char *method, json_t *params, uint32_t timeout_ms,
			 RemoteReplyFn fn, void *ctx)
{
	RemoteCall *c = NULL;
	int rc = 0;

	if (r->is_freed)
		rc = -ESHUTDOWN;
	else if (!id && r->state == REMOTE_IDLE)
		rc = -ENOTCONN;
	else if (id && r->calls.count >= REMOTE_MAX_PENDING_CALLS)
		rc = -ENOBUFS;
	else if (!(c = calloc(1, sizeof(*c))) || !(c->method = strdup(method)))
		rc = -ENOMEM;
	if (rc < 0) {
		json_decref(params);
		remote_call_free(c);
		return rc;
	}
	c->id = id;
	c->fn = fn;
	c->ctx = ctx;
	c->timeout_ms = timeout_ms;
	rc = remote_message_dump(id, method, params, &c->text, &c->text_len);
	if (rc == 0 && c->text_len > REMOTE_MAX_MESSAGE_BYTES)
		rc = -EMSGSIZE;
	if (rc == 0 && remote_queued_bytes(r) + c->text_len > REMOTE_SEND_QUEUE_MAX_BYTES)
		rc = -ENOBUFS;
	if (rc == 0 && r->state == REMOTE_IDLE)
		rc = remote_connect_start(r);
	if (rc == 0 && r->state == REMOTE_OPEN) {
		char *text = c->text;

		c->text = NULL;
		rc = remote_conn_send_frame(r->conn, WS_OP_TEXT, text, c->text_len);
		if (rc < 0)
			remote_drop_later(r, "write failed");
	}
	if (rc < 0 || (!id && !c->text)) {
		remote_call_free(c); /* failed, or a notification already written */
		return rc;
	}
	if (c->text)
		r->unsent_bytes += c->text_len;
	remote_list_append(&r->calls, c);
	if (timeout_ms) {
		c->deadline_ms = uv_now(r->loop) + timeout_ms;
		remote_timer_note(r, c->deadline_ms);
	}
	return 0;
}

int remote_call(Remote *r, const char *method, json_t *params, uint32_t timeout_ms, RemoteReplyFn fn,
		void *ctx)
{
	if (!r || !method || !*method || !fn) {
		json_decref(params);
		return -EINVAL;
	}
	int rc = remote_submit(r, r->next_id, method, params, timeout_ms, fn, ctx);

	if (rc == 0)
		r->next_id++;
	return rc;
}

int remote_notify(Remote *r, const char *method, json_t *params)
{
	if (!r || !method || !*method) {
		json_decref(params);
		return -EINVAL;
	}
	return remote_submit(r, 0, method, params, 0, NULL, NULL);
}

bool remote_is_connected(const Remote *r)
{
	return r && r->state == REMOTE_OPEN;
}

const char *remote_session_id(const Remote *r)
{
	return r ? r->session_id : NULL;
}

json_t *remote_server_info(const Remote *r)
{
	return r && r->state == REMOTE_OPEN ? r->server_info : NULL;
}
