/* SPDX-License-Identifier: MIT */
/* model_client.c - libcurl's multi interface on agentd's loop: one easy handle per stream. */
#include "model_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "curl_dl.h"
#include "log.h"

/*
 * libcurl forbids calling back into a multi handle from inside its callbacks (header, write),
 * which is where on_response and on_body run. So while libcurl is on the stack (in_curl) a
 * stream started is only marked PENDING and one cancelled only CANCELLED; mc_settle() adds and
 * removes them once curl_multi_socket_action() returns, then reports finished transfers, whose
 * on_done therefore runs with nothing of libcurl's on the stack and may do anything.
 */

typedef enum StreamState {
	STREAM_PENDING,	  /* started from inside libcurl: joins the multi handle once it returns */
	STREAM_RUNNING,	  /* in the multi handle */
	STREAM_CANCELLED, /* cancelled from inside libcurl: removed once it returns */
	STREAM_FINISHING, /* out of the multi handle, its on_done running */
} StreamState;

typedef struct ModelSocket ModelSocket;

/* A socket libcurl asked to watch. */
struct ModelSocket {
	uv_poll_t poll;
	ModelClient *mc;
	curl_socket_t fd;
	ModelSocket *prev, *next;
};

struct ModelClient {
	uv_loop_t *loop;
	const CurlDl *curl; /* NULL until the first stream loads libcurl */
	CURLM *multi;
	uv_timer_t curl_timer; /* libcurl's own timeouts (CURLMOPT_TIMERFUNCTION) */
	uv_timer_t idle_timer; /* the earliest idle deadline of the streams */
	ModelStream *streams;
	ModelSocket *sockets;
	unsigned in_curl;      /* depth of curl_multi_socket_action() calls on the stack */
	unsigned open_handles; /* uv handles not yet through their close callback */
	bool is_freed;
};

struct ModelStream {
	ModelClient *mc;
	ModelStream *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	ModelStreamEvents ev;
	void *ctx;
	StreamState state;
	uint32_t idle_timeout_ms;
	uint64_t last_byte_ms; /* uv_now() when the last byte arrived, or when started */
	long status;	       /* of the latest status line */
	bool has_response;     /* the final response's header block ended */
	/* The header block being read, as name\0value\0 pairs; hdr_items point into it once it ended. */
	char *hdr_buf;
	size_t hdr_len, hdr_cap, hdr_count;
	ModelHeader *hdr_items;
	ModelHeaders hdrs;
	char *error_body; /* a non-2xx body, MODEL_MAX_ERROR_BODY_BYTES at most, NUL-terminated */
	size_t error_body_len, error_body_cap;
	bool is_error_body_truncated;
	/* Why a callback of ours stopped the transfer: the caller's callback's value, or a bound. */
	int stop_error;
	const char *stop_message;
	char detail[CURL_ERROR_SIZE];
	char message[CURL_ERROR_SIZE];
};

static void mc_settle(ModelClient *mc);
static void mc_idle_schedule(ModelClient *mc);

/* ---- headers ------------------------------------------------------------------------------------ */

const char *model_headers_get(const ModelHeaders *h, const char *name)
{
	if (!h || !name)
		return NULL;
	for (size_t i = 0; i < h->count; i++)
		if (strcasecmp(h->items[i].name, name) == 0)
			return h->items[i].value;
	return NULL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int stream_hdr_reserve(ModelStream *s, size_t more)
{
	if (s->hdr_len + more > MODEL_MAX_HEADER_BYTES)
		return -EMSGSIZE;
	if (s->hdr_len + more <= s->hdr_cap)
		return 0;
	size_t cap = s->hdr_cap ? s->hdr_cap : 1024;
	while (cap < s->hdr_len + more)
		cap *= 2;
	char *grown = realloc(s->hdr_buf, cap);
	if (!grown)
		return -ENOMEM;
	s->hdr_buf = grown;
	s->hdr_cap = cap;
	return 0;
}

/* One header line of the block being read, without its line end. */
static int stream_hdr_add(ModelStream *s, const char *line, size_t len)
{
	if (memchr(line, '\0', len))
		return -EPROTO;
	if (is_blank(line[0])) {
		/* obs-fold: the line continues the last value, which ends the buffer */
		size_t start = 0;
		while (start < len && is_blank(line[start]))
			start++;
		if (s->hdr_count == 0 || start == len)
			return 0;
		int rc = stream_hdr_reserve(s, len - start + 1);
		if (rc < 0)
			return rc;
		s->hdr_buf[s->hdr_len - 1] = ' ';
		memcpy(s->hdr_buf + s->hdr_len, line + start, len - start);
		s->hdr_len += len - start;
		s->hdr_buf[s->hdr_len++] = '\0';
		return 0;
	}
	const char *colon = memchr(line, ':', len);
	if (!colon)
		return 0; /* not a header; libcurl let it through, we have no use for it */
	size_t name_len = (size_t)(colon - line);
	while (name_len && is_blank(line[name_len - 1]))
		name_len--;
	const char *value = colon + 1, *end = line + len;
	while (value < end && is_blank(*value))
		value++;
	while (end > value && is_blank(end[-1]))
		end--;
	if (name_len == 0)
		return 0;
	if (s->hdr_count >= MODEL_MAX_HEADERS)
		return -EMSGSIZE;
	size_t value_len = (size_t)(end - value);
	int rc = stream_hdr_reserve(s, name_len + value_len + 2);
	if (rc < 0)
		return rc;
	memcpy(s->hdr_buf + s->hdr_len, line, name_len);
	s->hdr_len += name_len;
	s->hdr_buf[s->hdr_len++] = '\0';
	memcpy(s->hdr_buf + s->hdr_len, value, value_len);
	s->hdr_len += value_len;
	s->hdr_buf[s->hdr_len++] = '\0';
	s->hdr_count++;
	return 0;
}

static int stream_hdr_seal(ModelStream *s)
{
	if (s->hdr_count) {
		s->hdr_items = calloc(s->hdr_count, sizeof(*s->hdr_items));
		if (!s->hdr_items)
			return -ENOMEM;
	}
	const char *p = s->hdr_buf;
	for (size_t i = 0; i < s->hdr_count; i++) {
		s->hdr_items[i].name = p;
		p += strlen(p) + 1;
		s->hdr_items[i].value = p;
		p += strlen(p) + 1;
	}
	s->hdrs = (ModelHeaders){ s->hdr_items, s->hdr_count };
	return 0;
}

/* "HTTP/1.1 429 Too Many Requests", "HTTP/2 200": the status, or 0 when there is none. */
static long parse_status(const char *line, size_t len)
{
	size_t i = 5;
	while (i < len && !is_blank(line[i]))
		i++;
	while (i < len && is_blank(line[i]))
		i++;
	long status = 0;
	for (size_t digits = 0; digits < 3; digits++, i++) {
		if (i >= len || line[i] < '0' || line[i] > '9')
			return 0;
		status = status * 10 + (line[i] - '0');
	}
	return status;
}

static bool is_success(long status)
{
	return status >= 200 && status < 300;
}

/* ---- libcurl's callbacks of a stream (libcurl is on the stack) ------------------------------------ */

static size_t stream_stop(ModelStream *s, int error, const char *message)
{
	s->stop_error = error;
	s->stop_message = message;
	return 0; /* any count but the one given fails the transfer */
}

static size_t stream_on_header(char *line, size_t size, size_t nitems, void *userdata)
{
	ModelStream *s = userdata;
	size_t n = size * nitems, len = n;
	if (s->state != STREAM_RUNNING)
		return 0;
	s->last_byte_ms = uv_now(s->mc->loop);
	if (s->has_response)
		return n; /* trailers */
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		/* a status line: an interim response's headers before it are forgotten */
		s->status = parse_status(line, len);
		s->hdr_len = s->hdr_count = 0;
		return n;
	}
	if (len) {
		int rc = stream_hdr_add(s, line, len);
		if (rc == -EMSGSIZE)
			return stream_stop(s, rc, "response headers too large");
		if (rc == -EPROTO)
			return stream_stop(s, rc, "invalid response header");
		if (rc < 0)
			return stream_stop(s, rc, "out of memory");
		return n;
	}
	if (s->status < 200)
		return n; /* the end of a 1xx response's headers */
	if (stream_hdr_seal(s) < 0)
		return stream_stop(s, -ENOMEM, "out of memory");
	s->has_response = true;
	if (s->ev.on_response) {
		int rc = s->ev.on_response(s->ctx, s->status, &s->hdrs);
		if (rc < 0)
			return stream_stop(s, rc, "stopped by the caller");
	}
	return s->state == STREAM_RUNNING ? n : 0; /* on_response may cancel the stream */
}

static size_t stream_keep_error_body(ModelStream *s, const char *data, size_t n)
{
	size_t room = MODEL_MAX_ERROR_BODY_BYTES - s->error_body_len;
	if (n > room) {
		s->is_error_body_truncated = true;
		n = room;
	}
	if (!n)
		return 0;
	if (s->error_body_len + n + 1 > s->error_body_cap) {
		size_t cap = s->error_body_cap ? s->error_body_cap : 4096;
		while (cap < s->error_body_len + n + 1)
			cap *= 2;
		if (cap > MODEL_MAX_ERROR_BODY_BYTES + 1)
			cap = MODEL_MAX_ERROR_BODY_BYTES + 1;
		char *grown = realloc(s->error_body, cap);
		if (!grown)
			return (size_t)-1;
		s->error_body = grown;
		s->error_body_cap = cap;
	}
	memcpy(s->error_body + s->error_body_len, data, n);
	s->error_body_len += n;
	s->error_body[s->error_body_len] = '\0';
	return n;
}

static size_t stream_on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	ModelStream *s = userdata;
	size_t n = size * nmemb;
	if (s->state != STREAM_RUNNING)
		return 0;
	s->last_byte_ms = uv_now(s->mc->loop);
	if (!s->has_response)
		return stream_stop(s, -EPROTO, "response body without headers");
	if (!is_success(s->status)) {
		/* read on past the bound (and drop it) so the connection stays reusable */
		if (stream_keep_error_body(s, data, n) == (size_t)-1)
			return stream_stop(s, -ENOMEM, "out of memory");
		return n;
	}
	if (s->ev.on_body && n) {
		int rc = s->ev.on_body(s->ctx, data, n);
		if (rc < 0)
			return stream_stop(s, rc, "stopped by the caller");
	}
	return s->state == STREAM_RUNNING ? n : 0; /* on_body may cancel the stream */
}

/* ---- a stream's end --------------------------------------------------------------------------------- */

static void stream_destroy(ModelStream *s)
{
	ModelClient *mc = s->mc;
	if (s->easy) {
		if (s->state == STREAM_RUNNING || s->state == STREAM_CANCELLED)
			mc->curl->multi_remove_handle(mc->multi, s->easy); /* closes its connection if busy */
		mc->curl->easy_cleanup(s->easy);
	}
	if (s->headers)
		mc->curl->slist_free_all(s->headers);
	if (s->prev)
		s->prev->next = s->next;
	else
		mc->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s->hdr_buf);
	free(s->hdr_items);
	free(s->error_body);
	free(s);
}

/* Take @s out of libcurl, tell its owner, free it. libcurl must not be on the stack. */
static void stream_finish(ModelStream *s, int error, const char *message)
{
	ModelClient *mc = s->mc;
	if (s->state == STREAM_RUNNING)
		mc->curl->multi_remove_handle(mc->multi, s->easy);
	s->state = STREAM_FINISHING;
	if (message && message != s->message)
		snprintf(s->message, sizeof(s->message), "%s", message);
	ModelResult result = {
		.error = error,
		.status = s->has_response ? s->status : 0,
		.message = error ? s->message : "",
		.detail = s->detail,
		.headers = s->has_response ? &s->hdrs : NULL,
	};
	if (s->has_response && !is_success(s->status)) {
		result.error_body = s->error_body ? s->error_body : "";
		result.error_body_len = s->error_body_len;
		result.is_error_body_truncated = s->is_error_body_truncated;
	}
	s->ev.on_done(s->ctx, &result);
	stream_destroy(s);
}

static int errno_or(long os_errno, int fallback)
{
	return os_errno > 0 ? -(int)os_errno : -fallback;
}

/* libcurl's verdict on a transfer as a negative errno, with the words for people in s->message. */
static int stream_transport_error(ModelStream *s, CURLcode code)
{
	const CurlDl *curl = s->mc->curl;
	long os_errno = 0;
	curl->easy_getinfo(s->easy, CURLINFO_OS_ERRNO, &os_errno);
	if (!s->detail[0])
		snprintf(s->detail, sizeof(s->detail), "%s", curl->easy_strerror(code));
	const char *text;
	int error;
	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		error = -EHOSTUNREACH;
		text = "cannot resolve the host name";
		break;
	case CURLE_COULDNT_CONNECT:
		error = errno_or(os_errno, ECONNREFUSED);
		if (error == -ECONNREFUSED) {
			text = "connection refused";
		} else {
			snprintf(s->message, sizeof(s->message), "cannot connect: %s", strerror(-error));
			return error;
		}
		break;
	case CURLE_OPERATION_TIMEDOUT:
		error = -ETIMEDOUT;
		text = "connect timed out";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
		error = -EPROTO;
		text = "TLS certificate verification failed";
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		error = -EPROTO;
		text = "TLS handshake failed";
		break;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		error = errno_or(os_errno, ECONNRESET);
		text = "connection reset";
		break;
	case CURLE_PARTIAL_FILE:
		error = -ECONNRESET;
		text = "connection closed before the response ended";
		break;
	case CURLE_GOT_NOTHING:
		error = -ECONNRESET;
		text = "connection closed before a response";
		break;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_UNSUPPORTED_PROTOCOL:
		error = -EPROTO;
		text = "invalid HTTP response";
		break;
	case CURLE_URL_MALFORMAT:
		error = -EINVAL;
		text = "malformed URL";
		break;
	case CURLE_OUT_OF_MEMORY:
		error = -ENOMEM;
		text = "out of memory";
		break;
	default:
		error = -EIO;
		text = s->detail;
		break;
	}
	snprintf(s->message, sizeof(s->message), "%s", text);
	return error;
}

static void stream_on_transfer_done(ModelStream *s, CURLcode code)
{
	if (code == CURLE_OK)
		stream_finish(s, 0, NULL);
	else if (s->stop_error)
		stream_finish(s, s->stop_error, s->stop_message);
	else
		stream_finish(s, stream_transport_error(s, code), s->message);
}

/* ---- the multi handle on the loop ------------------------------------------------------------------- */

static void mc_on_handle_closed(ModelClient *mc)
{
	if (--mc->open_handles == 0 && mc->is_freed)
		free(mc);
}

static void mc_on_timer_closed(uv_handle_t *handle)
{
	mc_on_handle_closed(handle->data);
}

static void mc_on_socket_closed(uv_handle_t *handle)
{
	ModelSocket *sock = handle->data;
	ModelClient *mc = sock->mc;
	free(sock);
	mc_on_handle_closed(mc);
}

static void mc_socket_close(ModelSocket *sock)
{
	ModelClient *mc = sock->mc;
	if (sock->prev)
		sock->prev->next = sock->next;
	else
		mc->sockets = sock->next;
	if (sock->next)
		sock->next->prev = sock->prev;
	/* uv_close() stops the watch now, before libcurl closes the fd (and reuses its number) */
	uv_close((uv_handle_t *)&sock->poll, mc_on_socket_closed);
}

static void mc_drive(ModelClient *mc, curl_socket_t fd, int flags)
{
	int running = 0;
	mc->in_curl++;
	CURLMcode code = mc->curl->multi_socket_action(mc->multi, fd, flags, &running);
	mc->in_curl--;
	if (code != CURLM_OK)
		log_warn("model client: curl_multi_socket_action: %s", mc->curl->multi_strerror(code));
	mc_settle(mc);
}

static void mc_on_poll(uv_poll_t *poll, int status, int events)
{
	ModelSocket *sock = poll->data;
	int flags = 0;
	if (status < 0)
		flags |= CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	mc_drive(sock->mc, sock->fd, flags);
}

static int mc_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	ModelClient *mc = userp;
	ModelSocket *sock = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (sock)
			mc_socket_close(sock);
		return 0;
	}
	if (!sock) {
		sock = calloc(1, sizeof(*sock));
		if (!sock)
			return -1;
		int rc = uv_poll_init_socket(mc->loop, &sock->poll, fd);
		if (rc < 0) {
			log_warn("model client: cannot watch socket %d: %s", (int)fd, uv_strerror(rc));
			free(sock);
			return -1;
		}
		sock->poll.data = sock;
		sock->mc = mc;
		sock->fd = fd;
		sock->next = mc->sockets;
		if (mc->sockets)
			mc->sockets->prev = sock;
		mc->sockets = sock;
		mc->open_handles++;
		mc->curl->multi_assign(mc->multi, fd, sock);
	}
	int events = 0;
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	int rc = uv_poll_start(&sock->poll, events, mc_on_poll);
	if (rc < 0) {
		log_warn("model client: cannot watch socket %d: %s", (int)fd, uv_strerror(rc));
		return -1;
	}
	return 0;
}

static void mc_on_curl_timeout(uv_timer_t *timer)
{
	mc_drive(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

/* libcurl may not be re-entered from here: a zero timeout runs on the next loop iteration. */
static int mc_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	ModelClient *mc = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&mc->curl_timer);
	else
		uv_timer_start(&mc->curl_timer, mc_on_curl_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

static int mc_add(ModelClient *mc, ModelStream *s)
{
	CURLMcode code = mc->curl->multi_add_handle(mc->multi, s->easy);
	if (code != CURLM_OK) {
		snprintf(s->detail, sizeof(s->detail), "%s", mc->curl->multi_strerror(code));
		return code == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	s->state = STREAM_RUNNING;
	return 0;
}

/* libcurl has returned: carry out what its callbacks asked for, then report finished transfers. */
static void mc_settle(ModelClient *mc)
{
	ModelStream *s, *next;
	if (mc->in_curl)
		return;
	for (s = mc->streams; s; s = next) {
		next = s->next;
		if (s->state == STREAM_CANCELLED)
			stream_destroy(s); /* also drops its message, if it had finished */
	}
restart:
	for (s = mc->streams; s; s = s->next) {
		if (s->state != STREAM_PENDING)
			continue;
		int rc = mc_add(mc, s);
		if (rc < 0) {
			/* its on_done may change the list */
			stream_finish(s, rc, "cannot start the request");
			goto restart;
		}
	}
	CURLMsg *msg;
	int queued;
	/* Read one message at a time: an on_done that cancels another stream drops its message. */
	while ((msg = mc->curl->multi_info_read(mc->multi, &queued))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		CURLcode code = msg->data.result;
		mc->curl->easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		if (priv)
			stream_on_transfer_done((ModelStream *)(void *)priv, code);
	}
}

static void mc_on_idle_timeout(uv_timer_t *timer)
{
	ModelClient *mc = timer->data;
	uint64_t now = uv_now(mc->loop);
restart:
	for (ModelStream *s = mc->streams; s; s = s->next) {
		bool is_live = s->state == STREAM_RUNNING || s->state == STREAM_PENDING;
		if (is_live && s->idle_timeout_ms && now >= s->last_byte_ms + s->idle_timeout_ms) {
			snprintf(s->detail, sizeof(s->detail), "no byte for %u ms", s->idle_timeout_ms);
			stream_finish(s, -ETIMEDOUT, "idle timeout waiting for SSE");
			goto restart;
		}
	}
	mc_idle_schedule(mc);
}

/* Deadlines only move later, so the timer may fire early: it then looks again. */
static void mc_idle_schedule(ModelClient *mc)
{
	uint64_t now = uv_now(mc->loop), first = UINT64_MAX;
	for (ModelStream *s = mc->streams; s; s = s->next) {
		bool is_live = s->state == STREAM_RUNNING || s->state == STREAM_PENDING;
		if (is_live && s->idle_timeout_ms && s->last_byte_ms + s->idle_timeout_ms < first)
			first = s->last_byte_ms + s->idle_timeout_ms;
	}
	if (first == UINT64_MAX)
		uv_timer_stop(&mc->idle_timer);
	else
		uv_timer_start(&mc->idle_timer, mc_on_idle_timeout, first > now ? first - now : 0, 0);
}

/* libcurl and the multi handle, on the first stream. */
static int mc_prepare(ModelClient *mc, char *err, size_t err_len)
{
	if (mc->multi)
		return 0;
	const CurlDl *curl = curl_dl_load();
	if (!curl) {
		snprintf(err, err_len, "%s", curl_dl_error());
		return -EIO;
	}
	const curl_version_info_data *info = curl->version_info(CURLVERSION_NOW);
	if (info && !(info->features & CURL_VERSION_ASYNCHDNS))
		log_warn("model client: libcurl %s resolves host names on the calling thread: a slow DNS "
			 "server stalls agentd",
			 info->version);
	CURLM *multi = curl->multi_init();
	if (!multi) {
		snprintf(err, err_len, "cannot set up libcurl");
		return -EIO;
	}
	curl->multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, mc_on_socket);
	curl->multi_setopt(multi, CURLMOPT_SOCKETDATA, mc);
	curl->multi_setopt(multi, CURLMOPT_TIMERFUNCTION, mc_on_curl_timer);
	curl->multi_setopt(multi, CURLMOPT_TIMERDATA, mc);
	mc->curl = curl;
	mc->multi = multi;
	return 0;
}

/* ---- the public side -------------------------------------------------------------------------------- */

int model_client_new(uv_loop_t *loop, ModelClient **out)
{
	ModelClient *mc = calloc(1, sizeof(*mc));
	if (!mc)
		return -ENOMEM;
	mc->loop = loop;
	uv_timer_init(loop, &mc->curl_timer);
	uv_timer_init(loop, &mc->idle_timer);
	mc->curl_timer.data = mc;
	mc->idle_timer.data = mc;
	mc->open_handles = 2;
	*out = mc;
	return 0;
}

void model_client_free(ModelClient *mc)
{
	if (!mc || mc->is_freed)
		return;
	for (ModelStream *s = mc->streams, *next; s; s = next) {
		next = s->next;
		stream_destroy(s);
	}
	if (mc->multi)
		mc->curl->multi_cleanup(mc->multi); /* closes the cached connections */
	mc->multi = NULL;
	while (mc->sockets)
		mc_socket_close(mc->sockets);
	mc->is_freed = true;
	uv_close((uv_handle_t *)&mc->curl_timer, mc_on_timer_closed);
	uv_close((uv_handle_t *)&mc->idle_timer, mc_on_timer_closed);
}

size_t model_client_stream_count(const ModelClient *mc)
{
	size_t n = 0;
	for (const ModelStream *s = mc ? mc->streams : NULL; s; s = s->next)
		if (s->state == STREAM_PENDING || s->state == STREAM_RUNNING)
			n++;
	return n;
}

static bool has_header(const ModelRequest *req, const char *prefix)
{
	size_t len = strlen(prefix);
	for (size_t i = 0; i < req->n_headers; i++)
		if (req->headers[i] && strncasecmp(req->headers[i], prefix, len) == 0)
			return true;
	return false;
}

static int stream_set_request(ModelStream *s, const ModelRequest *req)
{
	const CurlDl *curl = s->mc->curl;
	CURL *easy = s->easy;
	struct curl_slist *list = NULL;
	for (size_t i = 0; i < req->n_headers; i++) {
		if (!req->headers[i])
			continue;
		struct curl_slist *grown = curl->slist_append(list, req->headers[i]);
		if (!grown)
			goto nomem;
		list = grown;
	}
	/* the Responses API answers at once: a 100-continue round trip would only add latency */
	struct curl_slist *grown = curl->slist_append(list, "Expect:");
	if (!grown)
		goto nomem;
	list = grown;
	if (req->body && !has_header(req, "content-type:")) {
		grown = curl->slist_append(list, "Content-Type: application/json");
		if (!grown)
			goto nomem;
		list = grown;
	}
	s->headers = list;

	bool failed = false;
#define SETOPT(option, value) (failed |= curl->easy_setopt(easy, option, value) != CURLE_OK)
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_HTTPHEADER, list);
	SETOPT(CURLOPT_PRIVATE, (void *)s);
	SETOPT(CURLOPT_ERRORBUFFER, s->detail);
	SETOPT(CURLOPT_NOSIGNAL, 1L); /* the threaded resolver needs no SIGALRM; agentd owns its signals */
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L); /* a proxy's CONNECT answer is no response */
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);	      /* a stream may be quiet for minutes */
	SETOPT(CURLOPT_HEADERFUNCTION, stream_on_header);
	SETOPT(CURLOPT_HEADERDATA, (void *)s);
	SETOPT(CURLOPT_WRITEFUNCTION, stream_on_write);
	SETOPT(CURLOPT_WRITEDATA, (void *)s);
	if (req->connect_timeout_ms)
		SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
	const char *method = req->method ? req->method : req->body ? "POST" : "GET";
	if (req->body || strcmp(method, "POST") == 0) {
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
		SETOPT(CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
	}
	if (strcmp(method, req->body ? "POST" : "GET") != 0)
		SETOPT(CURLOPT_CUSTOMREQUEST, method);
#undef SETOPT
	return failed ? -EIO : 0;
nomem:
	curl->slist_free_all(list);
	return -ENOMEM;
}

int model_stream_start(ModelClient *mc, const ModelRequest *req, const ModelStreamEvents *ev, void *ctx,
		       ModelStream **out, char *err, size_t err_len)
{
	if (out)
		*out = NULL;
	if (!mc || !req || !ev || !ev->on_done || !out || mc->is_freed) {
		snprintf(err, err_len, "invalid model request");
		return -EINVAL;
	}
	if (!req->url ||
	    (strncasecmp(req->url, "http://", 7) != 0 && strncasecmp(req->url, "https://", 8) != 0)) {
		snprintf(err, err_len, "model request URL must be http:// or https://");
		return -EINVAL;
	}
	if (req->n_headers && !req->headers) {
		snprintf(err, err_len, "invalid model request headers");
		return -EINVAL;
	}
	int rc = mc_prepare(mc, err, err_len);
	if (rc < 0)
		return rc;
	ModelStream *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	s->mc = mc;
	s->ev = *ev;
	s->ctx = ctx;
	s->state = STREAM_PENDING;
	s->idle_timeout_ms = req->idle_timeout_ms;
	s->last_byte_ms = uv_now(mc->loop);
	s->next = mc->streams;
	if (mc->streams)
		mc->streams->prev = s;
	mc->streams = s;
	s->easy = mc->curl->easy_init();
	rc = s->easy ? stream_set_request(s, req) : -ENOMEM;
	if (rc == 0 && !mc->in_curl)
		rc = mc_add(mc, s); /* only arms libcurl's timer: the transfer starts from the loop */
	if (rc < 0) {
		snprintf(err, err_len, "%s", rc == -ENOMEM ? "out of memory" : "libcurl refused the request");
		stream_destroy(s);
		return rc;
	}
	mc_idle_schedule(mc);
	*out = s;
	return 0;
}

void model_stream_cancel(ModelStream *s)
{
	if (!s || s->state == STREAM_FINISHING || s->state == STREAM_CANCELLED)
		return;
	if (s->mc->in_curl && s->state == STREAM_RUNNING) {
		s->state = STREAM_CANCELLED; /* its callbacks now fail the transfer; mc_settle() frees it */
		return;
	}
	stream_destroy(s);
}
