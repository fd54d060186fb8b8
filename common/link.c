/* SPDX-License-Identifier: MIT */
/* link.c - nng pair0 sockets polled from the libuv loop through their notification fds. */
#include "link.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <nng/transport/ipc/ipc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Messages drained per readable event, so one busy link cannot starve the rest of the loop. */
#define LINK_RECV_BATCH 64

typedef struct LinkQueued {
	struct LinkQueued *next;
	nng_msg *msg;
} LinkQueued;

struct Link {
	uv_loop_t *loop;
	nng_socket sock;
	bool is_socket_open;
	char url[512];
	LinkEvents events;
	void *ctx;
	uv_poll_t recv_poll;
	uv_poll_t send_poll;
	uv_async_t peer_async;
	bool is_send_polling;
	int open_handles;
	/* Written by nng's pipe callbacks on nng threads, read on the loop thread. */
	atomic_int peer_count;
	atomic_int peer_pid;
	bool was_connected;
	nng_pipe last_pipe; /* the pipe the envelope being handled came from */
	/* Abandoned at exit: nng's threads may still call back, so nothing may be signalled or freed. */
	atomic_bool is_abandoned;
	struct Link *next_abandoned;
	LinkQueued *queue_head, *queue_tail;
	size_t queue_len;
	uid_t allowed_uid;
};

static int errno_from_nng(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_EAGAIN:
		return -EAGAIN;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_EPERM:
		return -EPERM;
	case NNG_ECLOSED:
		return -EBADF;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

int link_url_for_service(const char *runtime_dir, const char *service, char *out, size_t out_len)
{
	int n = snprintf(out, out_len, "ipc://%s/%s.sock", runtime_dir, service);
	return (n < 0 || (size_t)n >= out_len) ? -ENAMETOOLONG : 0;
}

/* nng thread: refuse peers of another user before they can send anything. */
static void link_pipe_added_pre(nng_pipe pipe, Link *link)
{
	uint64_t uid = UINT64_MAX;
	uint64_t pid = 0;
	if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &uid) != 0 ||
	    (uid != (uint64_t)link->allowed_uid && uid != 0)) {
		log_warn("link %s: refusing peer with uid %lld", link->url,
			 uid == UINT64_MAX ? -1LL : (long long)uid);
		nng_pipe_close(pipe);
		return;
	}
	if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &pid) == 0)
		atomic_store(&link->peer_pid, (int)pid);
}

static void link_pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	Link *link = arg;
	if (atomic_load(&link->is_abandoned))
		return;
	switch (ev) {
	case NNG_PIPE_EV_ADD_PRE:
		link_pipe_added_pre(pipe, link);
		return;
	case NNG_PIPE_EV_ADD_POST:
		atomic_fetch_add(&link->peer_count, 1);
		break;
	case NNG_PIPE_EV_REM_POST:
		/* REM_POST also fires for pipes refused in ADD_PRE, which were never counted. */
		if (atomic_load(&link->peer_count) > 0)
			atomic_fetch_sub(&link->peer_count, 1);
		break;
	default:
		return;
	}
	uv_async_send(&link->peer_async);
}

static void link_deliver(Link *link, nng_msg *msg)
{
	Envelope env;
	int rc = envelope_decode(nng_msg_body(msg), nng_msg_len(msg), &env);
	if (rc < 0) {
		log_warn("link %s: dropping malformed envelope (%zu bytes): %s", link->url, nng_msg_len(msg),
			 strerror(-rc));
		return;
	}
	link->last_pipe = nng_msg_get_pipe(msg);
	link->events.on_envelope(link, &env, link->ctx);
}

void link_cut_off(Link *link)
{
	if (nng_pipe_id(link->last_pipe) > 0)
		nng_pipe_close(link->last_pipe);
}

static void link_on_readable(uv_poll_t *poll, int status, int events)
{
	Link *link = poll->data;
	for (int i = 0; i < LINK_RECV_BATCH && link->is_socket_open; i++) {
		nng_msg *msg;
		if (nng_recvmsg(link->sock, &msg, NNG_FLAG_NONBLOCK) != 0)
			break;
		link_deliver(link, msg);
		nng_msg_free(msg);
	}
}

static void link_flush_queue(Link *link)
{
	while (link->queue_head) {
		LinkQueued *q = link->queue_head;
		if (nng_sendmsg(link->sock, q->msg, NNG_FLAG_NONBLOCK) != 0)
			return;
		link->queue_head = q->next;
		if (!link->queue_head)
			link->queue_tail = NULL;
		link->queue_len--;
		free(q);
	}
	if (link->is_send_polling) {
		uv_poll_stop(&link->send_poll);
		link->is_send_polling = false;
	}
}

static void link_on_writable(uv_poll_t *poll, int status, int events)
{
	link_flush_queue(poll->data);
}

static void link_on_peer_change(uv_async_t *async)
{
	Link *link = async->data;
	bool is_connected = atomic_load(&link->peer_count) > 0;
	if (is_connected == link->was_connected)
		return;
	link->was_connected = is_connected;
	if (!is_connected)
		atomic_store(&link->peer_pid, 0);
	if (link->events.on_peer)
		link->events.on_peer(link, is_connected, link->ctx);
}

static int link_msg_write(void *ctx, const char *data, size_t len)
{
	return nng_msg_append(ctx, data, len) == 0 ? 0 : -1;
}

static int link_enqueue(Link *link, nng_msg *msg)
{
	if (link->queue_len >= LINK_QUEUE_MAX)
		return -EAGAIN;
	LinkQueued *q = malloc(sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->msg = msg;
	q->next = NULL;
	if (link->queue_tail)
		link->queue_tail->next = q;
	else
		link->queue_head = q;
	link->queue_tail = q;
	link->queue_len++;
	if (!link->is_send_polling) {
		uv_poll_start(&link->send_poll, UV_READABLE, link_on_writable);
		link->is_send_polling = true;
	}
	return 0;
}

int link_send(Link *link, const Envelope *env)
{
	nng_msg *msg;
	int rc = envelope_validate(env);
	if (rc < 0)
		return rc;
	if (nng_msg_alloc(&msg, 0) != 0)
		return -ENOMEM;
	/* One allocation sized for the whole envelope: the body is copied exactly once. */
	if (nng_msg_reserve(msg, env->body_len + 192) != 0 ||
	    (rc = envelope_encode(env, link_msg_write, msg)) < 0) {
		nng_msg_free(msg);
		return rc < 0 ? rc : -ENOMEM;
	}
	if (!link->queue_head && nng_sendmsg(link->sock, msg, NNG_FLAG_NONBLOCK) == 0)
		return 0;
	rc = link_enqueue(link, msg);
	if (rc < 0)
		nng_msg_free(msg);
	return rc;
}

bool link_is_connected(const Link *link)
{
	return link->was_connected;
}

int link_peer_pid(const Link *link)
{
	return atomic_load(&((Link *)link)->peer_pid);
}

const char *link_url(const Link *link)
{
	return link->url;
}

static int link_configure(Link *link)
{
	int rv;
	if ((rv = nng_socket_set_size(link->sock, NNG_OPT_RECVMAXSZ, ENVELOPE_MAX_BYTES)) != 0 ||
	    (rv = nng_socket_set_int(link->sock, NNG_OPT_SENDBUF, LINK_NNG_SENDBUF)) != 0 ||
	    (rv = nng_socket_set_int(link->sock, NNG_OPT_RECVBUF, LINK_NNG_SENDBUF)) != 0 ||
	    (rv = nng_socket_set_ms(link->sock, NNG_OPT_RECONNMINT, 2)) != 0 ||
	    (rv = nng_socket_set_ms(link->sock, NNG_OPT_RECONNMAXT, 1000)) != 0)
		return errno_from_nng(rv);
	for (int ev = NNG_PIPE_EV_ADD_PRE; ev <= NNG_PIPE_EV_REM_POST; ev++) {
		if ((rv = nng_pipe_notify(link->sock, (nng_pipe_ev)ev, link_pipe_event, link)) != 0)
			return errno_from_nng(rv);
	}
	return 0;
}

static int link_start_listener(Link *link)
{
	nng_listener listener;
	const char *path = link->url + strlen("ipc://");
	/* A socket file left by a previous run would make the bind fail; the directory is ours. */
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	int rv = nng_listener_create(&listener, link->sock, link->url);
	if (rv == 0)
		rv = nng_listener_set_int(listener, NNG_OPT_IPC_PERMISSIONS, 0600);
	if (rv == 0)
		rv = nng_listener_start(listener, 0);
	return errno_from_nng(rv);
}

static int link_start(Link *link, LinkMode mode)
{
	int rv = nng_pair0_open(&link->sock);
	if (rv != 0)
		return errno_from_nng(rv);
	link->is_socket_open = true;
	int rc = link_configure(link);
	if (rc < 0)
		return rc;
	if (mode == LINK_LISTEN)
		rc = link_start_listener(link);
	else
		rc = errno_from_nng(nng_dial(link->sock, link->url, NULL, NNG_FLAG_NONBLOCK));
	if (rc < 0)
		return rc;
	int recv_fd, send_fd;
	if ((rv = nng_socket_get_int(link->sock, NNG_OPT_RECVFD, &recv_fd)) != 0 ||
	    (rv = nng_socket_get_int(link->sock, NNG_OPT_SENDFD, &send_fd)) != 0)
		return errno_from_nng(rv);
	if ((rc = uv_poll_init(link->loop, &link->recv_poll, recv_fd)) < 0)
		return rc;
	link->open_handles++;
	if ((rc = uv_poll_init(link->loop, &link->send_poll, send_fd)) < 0)
		return rc;
	link->open_handles++;
	return uv_poll_start(&link->recv_poll, UV_READABLE, link_on_readable);
}

int link_open(uv_loop_t *loop, LinkMode mode, const char *url, const LinkEvents *events, void *ctx,
	      Link **out)
{
	if (strncmp(url, "ipc://", 6) != 0 || strlen(url) >= sizeof(((Link *)0)->url))
		return -EINVAL;
	Link *link = calloc(1, sizeof(*link));
	if (!link)
		return -ENOMEM;
	link->loop = loop;
	link->events = *events;
	link->ctx = ctx;
	link->allowed_uid = geteuid();
	snprintf(link->url, sizeof(link->url), "%s", url);
	link->recv_poll.data = link->send_poll.data = link->peer_async.data = link;
	int rc = uv_async_init(loop, &link->peer_async, link_on_peer_change);
	if (rc < 0) {
		free(link);
		return rc;
	}
	link->open_handles = 1;
	rc = link_start(link, mode);
	if (rc < 0) {
		log_error("link %s: cannot %s: %s", url, mode == LINK_LISTEN ? "listen" : "dial",
			  strerror(-rc));
		link_free(link);
		return rc;
	}
	*out = link;
	return 0;
}

/* Abandoned links stay reachable (and valid for nng's threads) until the process exits. */
static Link *link_abandoned;

static void link_on_handle_closed(uv_handle_t *handle)
{
	Link *link = handle->data;
	if (--link->open_handles == 0 && !atomic_load(&link->is_abandoned))
		free(link);
}

void link_abandon(Link *link)
{
	if (!link)
		return;
	atomic_store(&link->is_abandoned, true);
	link->next_abandoned = link_abandoned;
	link_abandoned = link;
	/* Queued messages are dropped; the socket itself stays open until exit. */
	link->is_socket_open = false;
	link_free(link);
}

void link_free(Link *link)
{
	if (!link)
		return;
	/* Stop watching nng's fds before nng closes them, so the loop never polls a stale fd. */
	if (link->open_handles > 1)
		uv_poll_stop(&link->recv_poll);
	if (link->open_handles > 2)
		uv_poll_stop(&link->send_poll);
	if (link->is_socket_open) {
		/* nng_close() waits for pipe callbacks, so none can touch the async handle after it. */
		nng_close(link->sock);
		link->is_socket_open = false;
	}
	while (link->queue_head) {
		LinkQueued *q = link->queue_head;
		link->queue_head = q->next;
		nng_msg_free(q->msg);
		free(q);
	}
	link->queue_tail = NULL;
	link->queue_len = 0;
	uv_handle_t *handles[] = { (uv_handle_t *)&link->peer_async, (uv_handle_t *)&link->recv_poll,
				   (uv_handle_t *)&link->send_poll };
	int to_close = link->open_handles;
	for (int i = 0; i < to_close; i++)
		uv_close(handles[i], link_on_handle_closed);
}
