/* SPDX-License-Identifier: MIT */
/* model_client_test.c - cmocka tests for the model client over real sockets: a small HTTP server
 * on 127.0.0.1 runs one thread per connection, each following a script (a chunked event stream
 * in many small writes, a 429, a cut body, silence, two streams in lock-step), while the test
 * runs agentd's kind of uv loop; then the failure cases: refused, idle, cancelled (by the loop,
 * by the stream's own callback, by another stream's), a callback's error, a free in flight. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "model_client.h"
#include "responses.h"
#include "sse.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the scripted HTTP server ------------------------------------------------------------------- */

#define MAX_CONNS 8
#define MAX_REQUESTS 8

typedef struct Server Server;

typedef struct ServerConn {
	Server *srv;
	int fd;
	int index; /* in accept order */
	pthread_t thread;
} ServerConn;

typedef void (*ServerScript)(ServerConn *c);

typedef struct Recorded {
	char *head; /* request line and headers, NUL-terminated */
	char *body;
	size_t body_len;
} Recorded;

struct Server {
	int fd;
	int port;
	pthread_t thread;
	ServerScript script;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	ServerConn conns[MAX_CONNS];
	int n_conns;
	Recorded requests[MAX_REQUESTS];
	int n_requests;
	int n_closes; /* connections the client closed */
	/* lock-step: the next write's turn, and body bytes sent by the server and seen by the client */
	int turn;
	size_t sent_total, received_total;
};

static void *server_conn_main(void *arg)
{
	ServerConn *c = arg;
	c->srv->script(c);
	close(c->fd);
	return NULL;
}

static void *server_main(void *arg)
{
	Server *srv = arg;
	for (;;) {
		int fd = accept(srv->fd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			break; /* shut down */
		}
		struct timeval tv = { 5, 0 }; /* no script waits longer for the client */
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_mutex_lock(&srv->lock);
		if (srv->n_conns == MAX_CONNS) {
			pthread_mutex_unlock(&srv->lock);
			close(fd);
			continue;
		}
		ServerConn *c = &srv->conns[srv->n_conns];
		c->srv = srv;
		c->fd = fd;
		c->index = srv->n_conns++;
		pthread_cond_broadcast(&srv->cond);
		pthread_mutex_unlock(&srv->lock);
		if (pthread_create(&c->thread, NULL, server_conn_main, c) != 0)
			abort();
	}
	return NULL;
}

static void server_start(Server *srv, ServerScript script)
{
	memset(srv, 0, sizeof(*srv));
	srv->script = script;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->cond, NULL);
	srv->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(srv->fd >= 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(srv->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(srv->fd, 16), 0);
	socklen_t len = sizeof(addr);
	assert_int_equal(getsockname(srv->fd, (struct sockaddr *)&addr, &len), 0);
	srv->port = ntohs(addr.sin_port);
	assert_int_equal(pthread_create(&srv->thread, NULL, server_main, srv), 0);
}

static void server_stop(Server *srv)
{
	shutdown(srv->fd, SHUT_RDWR); /* wakes accept() */
	pthread_join(srv->thread, NULL);
	close(srv->fd);
	for (int i = 0; i < srv->n_conns; i++)
		pthread_join(srv->conns[i].thread, NULL);
	for (int i = 0; i < srv->n_requests; i++) {
		free(srv->requests[i].head);
		free(srv->requests[i].body);
	}
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->cond);
}

static int server_count(Server *srv, const int *field)
{
	pthread_mutex_lock(&srv->lock);
	int n = *field;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

static bool conn_send(ServerConn *c, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool conn_send_str(ServerConn *c, const char *text)
{
	return conn_send(c, text, strlen(text));
}

static bool conn_send_chunk(ServerConn *c, const char *data, size_t len)
{
	char frame[4096];
	assert_true(len + 32 < sizeof(frame));
	int n = snprintf(frame, sizeof(frame), "%zx\r\n", len);
	memcpy(frame + n, data, len);
	memcpy(frame + n + len, "\r\n", 2);
	return conn_send(c, frame, (size_t)n + len + 2);
}

/* One request, recorded. Return: 0, or -1 when the client closed (or 5 s passed) first. */
static int conn_read_request(ServerConn *c)
{
	static const size_t cap = 256 * 1024;
	char *buf = malloc(cap);
	size_t len = 0;
	char *end;
	assert_non_null(buf);
	while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
		ssize_t n = len < cap ? recv(c->fd, buf + len, cap - len, 0) : -1;
		if (n <= 0) {
			free(buf);
			return -1;
		}
		len += (size_t)n;
	}
	size_t head_len = (size_t)(end - buf) + 4, body_len = 0;
	for (char *p = buf; p < end; p++)
		if (strncasecmp(p, "\r\ncontent-length:", 17) == 0)
			body_len = strtoul(p + 17, NULL, 10);
	assert_true(head_len + body_len <= cap);
	while (len < head_len + body_len) {
		ssize_t n = recv(c->fd, buf + len, head_len + body_len - len, 0);
		if (n <= 0) {
			free(buf);
			return -1;
		}
		len += (size_t)n;
	}
	Recorded r = { strndup(buf, head_len), malloc(body_len + 1), body_len };
	memcpy(r.body, buf + head_len, body_len);
	r.body[body_len] = '\0';
	free(buf);
	pthread_mutex_lock(&c->srv->lock);
	if (c->srv->n_requests < MAX_REQUESTS) {
		c->srv->requests[c->srv->n_requests++] = r;
		r.head = r.body = NULL;
	}
	pthread_cond_broadcast(&c->srv->cond);
	pthread_mutex_unlock(&c->srv->lock);
	free(r.head);
	free(r.body);
	return 0;
}

static void conn_count_close(ServerConn *c)
{
	pthread_mutex_lock(&c->srv->lock);
	c->srv->n_closes++;
	pthread_cond_broadcast(&c->srv->cond);
	pthread_mutex_unlock(&c->srv->lock);
}

/* Read until the client closes; count it when it does. */
static void conn_wait_close(ServerConn *c)
{
	char buf[4096];
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		if (n == 0 || errno == ECONNRESET)
			conn_count_close(c);
		return;
	}
}

/* ---- scripts ----------------------------------------------------------------------------------------- */

static const char sse_body[] =
	"event: response.created\n"
	"data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp-1\"}}\n\n"
	": keep-alive comment\n\n"
	"event: response.output_text.delta\n"
	"data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"delta\":\"Hel\"}\n\n"
	"event: response.output_text.delta\r\n"
	"data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg-1\",\"delta\":\"lo\"}\r\n\r\n"
	"event: response.output_item.done\n"
	"data: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"role\":\"assistant\","
	"\"id\":\"msg-1\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello\"}]}}\n\n"
	"event: response.completed\n"
	"data: "
	"{\"type\":\"response.completed\",\"response\":{\"id\":\"resp-1\",\"usage\":{\"input_tokens\":3,"
	"\"input_tokens_details\":null,\"output_tokens\":2,\"output_tokens_details\":null,\"total_tokens\":5}"
	"}}\n\n";

static const char sse_head[] = "HTTP/1.1 200 OK\r\n"
			       "Content-Type: text/event-stream\r\n"
			       "Transfer-Encoding: chunked\r\n"
			       "x-request-id: req-42\r\n"
			       "X-Codex-Turn-State: sticky-7\r\n"
			       "x-codex-primary-used-percent:   12.5  \r\n"
			       "\r\n";

/* The event stream in chunks of 1 to 7 bytes, the chunk framing itself split now and then. */
static bool conn_send_sse(ServerConn *c)
{
	if (!conn_send_str(c, sse_head))
		return false;
	size_t len = strlen(sse_body), off = 0;
	for (unsigned i = 0; off < len; i++) {
		size_t n = 1 + i % 7;
		if (n > len - off)
			n = len - off;
		if (i % 5 == 0) {
			char size_line[16];
			snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
			if (!conn_send_str(c, size_line) || !conn_send(c, sse_body + off, n) ||
			    !conn_send_str(c, "\r\n"))
				return false;
		} else if (!conn_send_chunk(c, sse_body + off, n)) {
			return false;
		}
		off += n;
		if (i % 8 == 0)
			usleep(1000); /* so the client sees many reads, not one */
	}
	return conn_send_str(c, "0\r\n\r\n");
}

/* Every request on the connection gets the event stream; the connection stays open. */
static void script_sse(ServerConn *c)
{
	while (conn_read_request(c) == 0)
		if (!conn_send_sse(c))
			return;
	conn_count_close(c);
}

static const char rate_limit_body[] =
	"{\"error\":{\"type\":\"usage_limit_reached\",\"plan_type\":\"plus\",\"resets_at\":1700000000}}";

static void script_429(ServerConn *c)
{
	char head[512];
	if (conn_read_request(c) < 0)
		return;
	snprintf(head, sizeof(head),
		 "HTTP/1.1 429 Too Many Requests\r\n"
		 "Content-Type: application/json\r\n"
		 "Retry-After: 7\r\n"
		 "x-codex-primary-used-percent: 100\r\n"
		 "x-codex-primary-window-minutes: 300\r\n"
		 "Content-Length: %zu\r\n\r\n",
		 strlen(rate_limit_body));
	if (conn_send_str(c, head))
		conn_send_str(c, rate_limit_body);
	conn_wait_close(c);
}

#define BIG_ERROR_BODY_BYTES (200u * 1024u)

static void script_big_500(ServerConn *c)
{
	char head[256];
	if (conn_read_request(c) < 0)
		return;
	snprintf(head, sizeof(head), "HTTP/1.1 500 Internal Server Error\r\nContent-Length: %u\r\n\r\n",
		 BIG_ERROR_BODY_BYTES);
	char *body = malloc(BIG_ERROR_BODY_BYTES);
	assert_non_null(body);
	memset(body, 'x', BIG_ERROR_BODY_BYTES);
	if (conn_send_str(c, head))
		conn_send(c, body, BIG_ERROR_BODY_BYTES);
	free(body);
	conn_wait_close(c);
}

static const char cut_prefix[] = "event: response.created\ndata: {\"type\":\"response.created\"";

/* Headers, part of a chunk, then the connection goes away. */
static void script_cut(ServerConn *c)
{
	char frame[128];
	if (conn_read_request(c) < 0 || !conn_send_str(c, sse_head))
		return;
	snprintf(frame, sizeof(frame), "%zx\r\n%s", strlen(cut_prefix) + 40, cut_prefix);
	conn_send_str(c, frame);
	usleep(50 * 1000);
}

/* Takes the request and never answers. */
static void script_silent(ServerConn *c)
{
	if (conn_read_request(c) == 0)
		conn_wait_close(c);
}

/* Starts the stream and then waits for the client to go away. */
static void script_first_chunk_then_wait(ServerConn *c)
{
	if (conn_read_request(c) < 0 || !conn_send_str(c, sse_head))
		return;
	conn_send_chunk(c, cut_prefix, strlen(cut_prefix));
	conn_wait_close(c);
}

#define TRICKLE_CHUNKS 4
#define TRICKLE_GAP_MS 100

/* A chunk every 100 ms, four times, then silence. */
static void script_trickle(ServerConn *c)
{
	if (conn_read_request(c) < 0 || !conn_send_str(c, sse_head))
		return;
	for (int i = 0; i < TRICKLE_CHUNKS; i++) {
		usleep(TRICKLE_GAP_MS * 1000);
		if (!conn_send_chunk(c, ": tick\n\n", 8))
			return;
	}
	conn_wait_close(c);
}

/* Every request on the connection gets a small complete answer; the connection stays open. */
static void script_keepalive(ServerConn *c)
{
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				     "Content-Length: 12\r\n\r\ndata: done\n\n";
	while (conn_read_request(c) == 0)
		if (!conn_send_str(c, answer))
			return;
	conn_count_close(c);
}

#define LOCKSTEP_CHUNKS 6

/* Two connections take turns: a connection writes its next chunk only when it is its turn and
 * the client has read every byte written so far, so the client's reads alternate. */
static void script_lockstep(ServerConn *c)
{
	Server *srv = c->srv;
	if (conn_read_request(c) < 0 || !conn_send_str(c, sse_head))
		return;
	for (int i = 0; i < LOCKSTEP_CHUNKS; i++) {
		char data[64];
		int n = snprintf(data, sizeof(data), "data: conn %d chunk %d\n\n", c->index, i);
		pthread_mutex_lock(&srv->lock);
		uint64_t deadline = now_ms() + 5000;
		while (!(srv->turn == 2 * i + c->index && srv->received_total == srv->sent_total) &&
		       now_ms() < deadline) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&srv->cond, &srv->lock, &ts);
		}
		srv->sent_total += (size_t)n;
		srv->turn++;
		pthread_cond_broadcast(&srv->cond);
		pthread_mutex_unlock(&srv->lock);
		if (!conn_send_chunk(c, data, (size_t)n))
			return;
	}
	conn_send_str(c, "0\r\n\r\n");
	conn_wait_close(c);
}

/* ---- what a stream reported ---------------------------------------------------------------------- */

typedef struct Got Got;
struct Got {
	ModelClient *mc;
	ModelStream *stream;
	char *body;
	size_t body_len;
	long response_status;
	long done_status;
	char *done_error_body;
	size_t done_error_body_len;
	uint64_t done_at_ms;
	/* what the callbacks do */
	ModelStream **cancel_on_response; /* on_response cancels this stream */
	Got *start_on_body;		  /* on_body starts this one (once) */
	Got *start_on_done;		  /* on_done starts this one */
	Server *lockstep;		  /* on_body counts bytes for script_lockstep */
	SseParser *sse;			  /* on_body feeds it */
	int response_rc;		  /* on_response's answer */
	int sse_rc;
	int id;
	int n_response, n_body, n_done;
	int done_error;
	char request_id[64], turn_state[64], used_percent[64], retry_after[64];
	char done_message[256];
	char done_retry_after[64];
	char url[128];
	bool done_is_truncated;
	bool done_has_headers;
	bool cancels_self_on_body; /* on_body cancels its own stream at the first bytes */
};

static int order[256]; /* the ids of the streams, one per on_body call */
static size_t n_order;

static void copy_text(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

static void got_start(Got *g);

static int got_on_response(void *ctx, long status, const ModelHeaders *headers)
{
	Got *g = ctx;
	g->n_response++;
	g->response_status = status;
	copy_text(g->request_id, sizeof(g->request_id), model_headers_get(headers, "X-Request-Id"));
	copy_text(g->turn_state, sizeof(g->turn_state), model_headers_get(headers, "x-codex-turn-state"));
	copy_text(g->used_percent, sizeof(g->used_percent),
		  model_headers_get(headers, "x-codex-primary-used-percent"));
	copy_text(g->retry_after, sizeof(g->retry_after), model_headers_get(headers, "retry-after"));
	if (g->cancel_on_response) {
		model_stream_cancel(*g->cancel_on_response);
		*g->cancel_on_response = NULL;
	}
	return g->response_rc;
}

static int got_on_body(void *ctx, const char *data, size_t len)
{
	Got *g = ctx;
	g->n_body++;
	g->body = realloc(g->body, g->body_len + len + 1);
	assert_non_null(g->body);
	memcpy(g->body + g->body_len, data, len);
	g->body_len += len;
	g->body[g->body_len] = '\0';
	if (n_order < sizeof(order) / sizeof(order[0]))
		order[n_order++] = g->id;
	if (g->sse && g->sse_rc == 0)
		g->sse_rc = sse_parser_feed(g->sse, data, len);
	if (g->lockstep) {
		pthread_mutex_lock(&g->lockstep->lock);
		g->lockstep->received_total += len;
		pthread_cond_broadcast(&g->lockstep->cond);
		pthread_mutex_unlock(&g->lockstep->lock);
	}
	if (g->start_on_body) {
		got_start(g->start_on_body);
		g->start_on_body = NULL;
	}
	if (g->cancels_self_on_body) {
		model_stream_cancel(g->stream);
		g->stream = NULL;
	}
	return 0;
}

static void got_on_done(void *ctx, const ModelResult *r)
{
	Got *g = ctx;
	g->n_done++;
	g->done_error = r->error;
	g->done_status = r->status;
	g->done_at_ms = now_ms();
	copy_text(g->done_message, sizeof(g->done_message), r->message);
	assert_non_null(r->message);
	assert_non_null(r->detail);
	if (r->error_body) {
		g->done_error_body = malloc(r->error_body_len + 1);
		memcpy(g->done_error_body, r->error_body, r->error_body_len + 1);
		g->done_error_body_len = r->error_body_len;
	}
	g->done_is_truncated = r->is_error_body_truncated;
	g->done_has_headers = r->headers != NULL;
	copy_text(g->done_retry_after, sizeof(g->done_retry_after),
		  model_headers_get(r->headers, "Retry-After"));
	model_stream_cancel(g->stream); /* inside its own on_done: nothing happens */
	g->stream = NULL;
	if (g->start_on_done)
		got_start(g->start_on_done);
}

static const ModelStreamEvents got_events = { got_on_response, got_on_body, got_on_done };

static const char request_body[] = "{\"model\":\"mock-model\",\"input\":[],\"stream\":true}";
static const char *const request_headers[] = {
	"Authorization: Bearer sk-test", "Accept: text/event-stream",	  "Content-Type: application/json",
	"originator: agentd_test",	 "User-Agent: agentd_test/0.1.0", "session-id: 0190-thread",
};

static ModelRequest got_request(Got *g, uint32_t idle_timeout_ms)
{
	return (ModelRequest){
		.url = g->url,
		.headers = request_headers,
		.n_headers = sizeof(request_headers) / sizeof(request_headers[0]),
		.body = request_body,
		.body_len = strlen(request_body),
		.connect_timeout_ms = 2000,
		.idle_timeout_ms = idle_timeout_ms,
	};
}

static uint32_t got_idle_ms = 5000;

static void got_start(Got *g)
{
	char err[200] = "";
	ModelRequest req = got_request(g, got_idle_ms);
	int rc = model_stream_start(g->mc, &req, &got_events, g, &g->stream, err, sizeof(err));
	assert_int_equal(rc, 0);
	assert_non_null(g->stream);
	/* nothing is called back from inside model_stream_start() */
	assert_int_equal(g->n_response + g->n_body + g->n_done, 0);
}

static void got_init(Got *g, int id, ModelClient *mc, int port)
{
	memset(g, 0, sizeof(*g));
	g->id = id;
	g->mc = mc;
	snprintf(g->url, sizeof(g->url), "http://127.0.0.1:%d/v1/responses", port);
}

static void got_clear(Got *g)
{
	free(g->body);
	free(g->done_error_body);
	sse_parser_free(g->sse);
}

/* ---- the loop ------------------------------------------------------------------------------------------ */

typedef struct Fixture {
	uv_loop_t loop;
	ModelClient *mc;
	Server srv;
	bool has_server;
} Fixture;

static void fixture_start(Fixture *f, ServerScript script)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(model_client_new(&f->loop, &f->mc), 0);
	if (script) {
		server_start(&f->srv, script);
		f->has_server = true;
	}
	n_order = 0;
	got_idle_ms = 5000;
}

static void fixture_stop(Fixture *f)
{
	model_client_free(f->mc);
	uv_run(&f->loop, UV_RUN_DEFAULT); /* the client's handles close */
	assert_int_equal(uv_loop_close(&f->loop), 0);
	if (f->has_server)
		server_stop(&f->srv);
}

typedef bool (*Cond)(void *arg);

static bool run_until(Fixture *f, Cond cond, void *arg, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	while (!cond(arg)) {
		if (now_ms() > deadline)
			return false;
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(500);
	}
	return true;
}

static void run_for(Fixture *f, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	while (now_ms() < deadline) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(500);
	}
}

static bool is_done(void *arg)
{
	return ((Got *)arg)->n_done > 0;
}

static bool has_body(void *arg)
{
	return ((Got *)arg)->body_len > 0;
}

static bool server_saw_close(void *arg)
{
	Server *srv = arg;
	return server_count(srv, &srv->n_closes) > 0;
}

static bool server_has_two_requests(void *arg)
{
	Server *srv = arg;
	return server_count(srv, &srv->n_requests) >= 2;
}

/* ---- tests ----------------------------------------------------------------------------------------------
 */

static bool is_libcurl_mapped(void)
{
	char line[512];
	bool found = false;
	FILE *maps = fopen("/proc/self/maps", "r");
	assert_non_null(maps);
	while (fgets(line, sizeof(line), maps))
		if (strstr(line, "libcurl"))
			found = true;
	fclose(maps);
	return found;
}

/* First of all: a client with no stream does not load libcurl (an idle agentd stays small). */
static void test_idle_client_does_not_map_libcurl(void **state)
{
	Fixture f;
	fixture_start(&f, NULL);
	assert_int_equal(model_client_stream_count(f.mc), 0);
	run_for(&f, 10);
	assert_false(is_libcurl_mapped());
	fixture_stop(&f);
	assert_false(is_libcurl_mapped());
}

static int count_text_delta(void *ctx, const RespDelta *delta)
{
	(*(int *)ctx)++;
	return 0;
}

static void test_streams_chunked_event_stream(void **state)
{
	Fixture f;
	Got g;
	int deltas = 0;
	fixture_start(&f, script_sse);
	got_init(&g, 1, f.mc, f.srv.port);
	ResponsesCallbacks rcb = { .on_text_delta = count_text_delta };
	ResponsesDecoder *dec = NULL;
	assert_int_equal(responses_decoder_new(NULL, &rcb, &deltas, &dec), 0);
	assert_int_equal(sse_parser_new(NULL, responses_decoder_on_sse, dec, &g.sse), 0);

	got_start(&g);
	assert_int_equal(model_client_stream_count(f.mc), 1);
	assert_true(is_libcurl_mapped()); /* the first stream loaded it */
	assert_true(run_until(&f, is_done, &g, 5000));

	assert_int_equal(g.n_done, 1);
	assert_int_equal(g.done_error, 0);
	assert_string_equal(g.done_message, "");
	assert_int_equal(g.done_status, 200);
	assert_null(g.done_error_body);
	assert_true(g.done_has_headers);
	assert_int_equal(g.n_response, 1);
	assert_int_equal(g.response_status, 200);
	assert_string_equal(g.request_id, "req-42");
	assert_string_equal(g.turn_state, "sticky-7");
	assert_string_equal(g.used_percent, "12.5"); /* blanks around a value are not part of it */
	/* the body passed through whole, in many pieces */
	assert_int_equal(g.body_len, strlen(sse_body));
	assert_memory_equal(g.body, sse_body, g.body_len);
	assert_true(g.n_body > 5);
	/* and it is the event stream the decoder wants */
	assert_int_equal(g.sse_rc, 0);
	assert_int_equal(sse_parser_finish(g.sse), 0);
	assert_int_equal(responses_decoder_finish(dec), 0);
	assert_string_equal(responses_decoder_response_id(dec), "resp-1");
	assert_int_equal(deltas, 2);
	assert_int_equal(model_client_stream_count(f.mc), 0);

	/* what the server received: the request as given */
	assert_int_equal(f.srv.n_requests, 1);
	const Recorded *r = &f.srv.requests[0];
	assert_true(strncmp(r->head, "POST /v1/responses HTTP/1.1\r\n", 29) == 0);
	for (size_t i = 0; i < sizeof(request_headers) / sizeof(request_headers[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "\r\n%s\r\n", request_headers[i]);
		assert_non_null(strstr(r->head, line));
	}
	char length[64];
	snprintf(length, sizeof(length), "\r\nContent-Length: %zu\r\n", strlen(request_body));
	assert_non_null(strstr(r->head, length));
	assert_null(strcasestr(r->head, "\r\nExpect:"));
	assert_null(strstr(r->head, "x-www-form-urlencoded"));
	assert_int_equal(r->body_len, strlen(request_body));
	assert_memory_equal(r->body, request_body, r->body_len);

	got_clear(&g);
	responses_decoder_free(dec);
	fixture_stop(&f);
}

static void test_rate_limited_status_and_body(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, script_429);
	got_init(&g, 1, f.mc, f.srv.port);
	got_start(&g);
	assert_true(run_until(&f, is_done, &g, 5000));

	assert_int_equal(g.n_response, 1);
	assert_int_equal(g.response_status, 429);
	assert_string_equal(g.retry_after, "7");
	assert_string_equal(g.used_percent, "100");
	assert_int_equal(g.n_body, 0); /* an error body is not streamed */
	assert_int_equal(g.done_error, 0);
	assert_int_equal(g.done_status, 429);
	assert_non_null(g.done_error_body);
	assert_int_equal(g.done_error_body_len, strlen(rate_limit_body));
	assert_string_equal(g.done_error_body, rate_limit_body);
	assert_false(g.done_is_truncated);
	assert_string_equal(g.done_retry_after, "7"); /* the headers reach on_done too */
	got_clear(&g);
	fixture_stop(&f);
}

static void test_error_body_is_bounded(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, script_big_500);
	got_init(&g, 1, f.mc, f.srv.port);
	got_start(&g);
	assert_true(run_until(&f, is_done, &g, 5000));
	assert_int_equal(g.done_error, 0);
	assert_int_equal(g.done_status, 500);
	assert_int_equal(g.done_error_body_len, MODEL_MAX_ERROR_BODY_BYTES);
	assert_true(g.done_is_truncated);
	assert_int_equal(g.done_error_body[0], 'x');
	assert_int_equal(g.done_error_body[g.done_error_body_len], '\0');
	got_clear(&g);
	fixture_stop(&f);
}

static void test_connection_closed_mid_body(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, script_cut);
	got_init(&g, 1, f.mc, f.srv.port);
	got_start(&g);
	assert_true(run_until(&f, is_done, &g, 5000));
	assert_int_equal(g.n_response, 1);
	assert_int_equal(g.done_status, 200);
	assert_int_equal(g.done_error, -ECONNRESET);
	assert_string_equal(g.done_message, "connection closed before the response ended");
	assert_int_equal(g.body_len, strlen(cut_prefix)); /* what came before the cut was passed on */
	assert_memory_equal(g.body, cut_prefix, g.body_len);
	got_clear(&g);
	fixture_stop(&f);
}

static void test_idle_timeout_without_response(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, script_silent);
	got_init(&g, 1, f.mc, f.srv.port);
	got_idle_ms = 200;
	uint64_t started = now_ms();
	got_start(&g);
	assert_true(run_until(&f, is_done, &g, 5000));
	assert_int_equal(g.done_error, -ETIMEDOUT);
	assert_string_equal(g.done_message, "idle timeout waiting for SSE");
	assert_int_equal(g.done_status, 0);
	assert_false(g.done_has_headers);
	assert_int_equal(g.n_response, 0);
	assert_true(g.done_at_ms - started >= 190);
	assert_true(g.done_at_ms - started < 2000);
	assert_true(run_until(&f, server_saw_close, &f.srv, 3000)); /* and the connection was closed */
	got_clear(&g);
	fixture_stop(&f);
}

/* Bytes 100 ms apart keep a 250 ms bound from firing; the silence after them does not. */
static void test_idle_timeout_counts_from_last_byte(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, script_trickle);
	got_init(&g, 1, f.mc, f.srv.port);
	got_idle_ms = 250;
	uint64_t started = now_ms();
	got_start(&g);
	assert_true(run_until(&f, is_done, &g, 5000));
	assert_int_equal(g.done_error, -ETIMEDOUT);
	assert_string_equal(g.done_message, "idle timeout waiting for SSE");
	assert_int_equal(g.done_status, 200);
	assert_int_equal(g.body_len, TRICKLE_CHUNKS * 8);
	assert_true(g.done_at_ms - started >= TRICKLE_CHUNKS * TRICKLE_GAP_MS + 240);
	got_clear(&g);
	fixture_stop(&f);
}

static void test_cancel_mid_stream(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, script_first_chunk_then_wait);
	got_init(&g, 1, f.mc, f.srv.port);
	got_start(&g);
	assert_true(run_until(&f, has_body, &g, 5000));
	model_stream_cancel(g.stream);
	assert_int_equal(model_client_stream_count(f.mc), 0);
	assert_true(run_until(&f, server_saw_close, &f.srv, 3000));
	run_for(&f, 50);
	assert_int_equal(g.n_done, 0);
	model_stream_cancel(NULL);
	got_clear(&g);
	fixture_stop(&f);
}

static void test_cancel_from_own_callback(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, script_first_chunk_then_wait);
	got_init(&g, 1, f.mc, f.srv.port);
	g.cancels_self_on_body = true;
	got_start(&g);
	assert_true(run_until(&f, server_saw_close, &f.srv, 5000));
	run_for(&f, 50);
	assert_int_equal(g.n_body, 1);
	assert_int_equal(g.n_done, 0);
	assert_int_equal(model_client_stream_count(f.mc), 0);
	got_clear(&g);
	fixture_stop(&f);
}

static void test_callback_error_ends_stream(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, script_first_chunk_then_wait);
	got_init(&g, 1, f.mc, f.srv.port);
	g.response_rc = -EPERM;
	got_start(&g);
	assert_true(run_until(&f, is_done, &g, 5000));
	assert_int_equal(g.done_error, -EPERM);
	assert_int_equal(g.done_status, 200);
	assert_true(g.done_has_headers);
	assert_int_equal(g.n_body, 0);
	assert_true(run_until(&f, server_saw_close, &f.srv, 3000));
	got_clear(&g);
	fixture_stop(&f);
}

/*
 * Callbacks that reach into the client: A's on_response cancels B (running, on a server that
 * never answers), A's on_body starts C while libcurl is on the stack, and C's on_done starts D.
 * B is never heard of again and its connection closes; A, C and D finish.
 */
static void test_callbacks_start_and_cancel_streams(void **state)
{
	Fixture f;
	Server silent;
	Got a, b, c, d;
	fixture_start(&f, script_sse);
	server_start(&silent, script_silent);
	got_init(&a, 1, f.mc, f.srv.port);
	got_init(&b, 2, f.mc, silent.port);
	got_init(&c, 3, f.mc, f.srv.port);
	got_init(&d, 4, f.mc, f.srv.port);
	got_start(&b);
	got_start(&a);
	a.cancel_on_response = &b.stream;
	a.start_on_body = &c;
	c.start_on_done = &d;
	assert_true(run_until(&f, is_done, &d, 5000));
	assert_true(run_until(&f, server_saw_close, &silent, 3000));
	run_for(&f, 20);
	assert_int_equal(a.n_done, 1);
	assert_int_equal(a.done_error, 0);
	assert_null(b.stream);
	assert_int_equal(b.n_response + b.n_done, 0);
	assert_int_equal(c.n_done, 1);
	assert_int_equal(c.done_error, 0);
	assert_int_equal(c.body_len, strlen(sse_body));
	assert_int_equal(d.n_done, 1);
	assert_int_equal(d.done_error, 0);
	assert_int_equal(d.body_len, strlen(sse_body));
	assert_int_equal(model_client_stream_count(f.mc), 0);
	got_clear(&a);
	got_clear(&b);
	got_clear(&c);
	got_clear(&d);
	fixture_stop(&f);
	server_stop(&silent);
}

static void test_connection_refused(void **state)
{
	Fixture f;
	Got g;
	fixture_start(&f, NULL);
	/* a bound port nobody listens on: the kernel answers with a reset */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	got_init(&g, 1, f.mc, ntohs(addr.sin_port));
	got_start(&g);
	assert_true(run_until(&f, is_done, &g, 5000));
	assert_int_equal(g.done_error, -ECONNREFUSED);
	assert_string_equal(g.done_message, "connection refused");
	assert_int_equal(g.done_status, 0);
	assert_int_equal(g.n_response, 0);
	close(fd);
	got_clear(&g);
	fixture_stop(&f);
}

static bool both_done(void *arg)
{
	Got *g = arg;
	return g[0].n_done && g[1].n_done;
}

static void test_two_streams_interleave(void **state)
{
	Fixture f;
	Got g[2];
	fixture_start(&f, script_lockstep);
	for (int i = 0; i < 2; i++) {
		got_init(&g[i], i, f.mc, f.srv.port);
		g[i].lockstep = &f.srv;
		got_start(&g[i]);
	}
	assert_int_equal(model_client_stream_count(f.mc), 2);
	assert_true(run_until(&f, both_done, g, 10000));
	assert_int_equal(f.srv.n_conns, 2);
	/* each stream got one connection's body, whole */
	char expect[2][512];
	for (int k = 0; k < 2; k++) {
		size_t off = 0;
		for (int i = 0; i < LOCKSTEP_CHUNKS; i++)
			off += (size_t)snprintf(expect[k] + off, sizeof(expect[k]) - off,
						"data: conn %d chunk %d\n\n", k, i);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(g[i].done_error, 0);
		int k = strcmp(g[i].body, expect[0]) == 0 ? 0 : 1;
		assert_string_equal(g[i].body, expect[k]);
		assert_string_not_equal(g[0].body, g[1].body);
	}
	/* and the reads alternated between them */
	size_t switches = 0;
	for (size_t i = 1; i < n_order; i++)
		if (order[i] != order[i - 1])
			switches++;
	assert_true(switches >= 2 * LOCKSTEP_CHUNKS - 1);
	got_clear(&g[0]);
	got_clear(&g[1]);
	fixture_stop(&f);
}

static void test_keepalive_reuses_connection(void **state)
{
	Fixture f;
	Got g[2];
	fixture_start(&f, script_keepalive);
	got_init(&g[0], 0, f.mc, f.srv.port);
	got_init(&g[1], 1, f.mc, f.srv.port);
	g[0].start_on_done = &g[1]; /* the second request starts when the first ended */
	got_start(&g[0]);
	assert_true(run_until(&f, is_done, &g[1], 5000));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(g[i].done_error, 0);
		assert_string_equal(g[i].body, "data: done\n\n");
	}
	assert_int_equal(f.srv.n_requests, 2);
	assert_int_equal(server_count(&f.srv, &f.srv.n_conns), 1);
	got_clear(&g[0]);
	got_clear(&g[1]);
	fixture_stop(&f);
	assert_int_equal(f.srv.n_closes, 1); /* model_client_free() closed the cached connection */
}

static void test_free_with_streams_in_flight(void **state)
{
	Fixture f;
	Got g[2];
	fixture_start(&f, script_silent);
	for (int i = 0; i < 2; i++) {
		got_init(&g[i], i, f.mc, f.srv.port);
		got_start(&g[i]);
	}
	assert_true(run_until(&f, server_has_two_requests, &f.srv, 5000));
	model_client_free(f.mc);
	f.mc = NULL;
	uv_run(&f.loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(g[i].n_done, 0);
		got_clear(&g[i]);
	}
	server_stop(&f.srv); /* joins the connection threads, which saw the closes */
	f.has_server = false;
	assert_int_equal(f.srv.n_closes, 2);
	fixture_stop(&f);
}

static void test_start_refuses_bad_requests(void **state)
{
	Fixture f;
	ModelStream *s = (ModelStream *)&f; /* reset to NULL on failure */
	char err[200];
	fixture_start(&f, NULL);
	ModelRequest req = { .url = "ftp://127.0.0.1/x" };
	assert_int_equal(model_stream_start(f.mc, &req, &got_events, NULL, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_string_equal(err, "model request URL must be http:// or https://");
	req.url = NULL;
	assert_int_equal(model_stream_start(f.mc, &req, &got_events, NULL, &s, err, sizeof(err)), -EINVAL);
	req.url = "http://127.0.0.1:1/";
	ModelStreamEvents no_done = { got_on_response, got_on_body, NULL };
	assert_int_equal(model_stream_start(f.mc, &req, &no_done, NULL, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "invalid model request");
	assert_null(model_headers_get(NULL, "retry-after"));
	assert_int_equal(model_client_stream_count(f.mc), 0);
	fixture_stop(&f);
	model_client_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_client_does_not_map_libcurl), /* first: nothing loaded yet */
		cmocka_unit_test(test_streams_chunked_event_stream),
		cmocka_unit_test(test_rate_limited_status_and_body),
		cmocka_unit_test(test_error_body_is_bounded),
		cmocka_unit_test(test_connection_closed_mid_body),
		cmocka_unit_test(test_idle_timeout_without_response),
		cmocka_unit_test(test_idle_timeout_counts_from_last_byte),
		cmocka_unit_test(test_cancel_mid_stream),
		cmocka_unit_test(test_cancel_from_own_callback),
		cmocka_unit_test(test_callback_error_ends_stream),
		cmocka_unit_test(test_callbacks_start_and_cancel_streams),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_two_streams_interleave),
		cmocka_unit_test(test_keepalive_reuses_connection),
		cmocka_unit_test(test_free_with_streams_in_flight),
		cmocka_unit_test(test_start_refuses_bad_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
