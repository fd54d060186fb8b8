/* SPDX-License-Identifier: MIT */
/* remote.h - agentd's client for a remote exec-server (CODEX_EXEC_SERVER_URL=ws://…): one websocket,
 * JSON-RPC. */
#ifndef AGENTD_REMOTE_H
#define AGENTD_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

/*
 * The exec-server speaks JSON-RPC without a "jsonrpc" field, one message per
 * websocket text frame. A connection starts with initialize {clientName,
 * resumeSessionId?} -> {sessionId, environmentInfo} and the `initialized`
 * notification; only then are calls sent. This module knows nothing of the
 * methods themselves: the caller (proto_exec.c) builds their params.
 *
 * Everything runs on the caller's libuv loop; no callback ever runs from
 * inside remote_call() or remote_notify().
 */

/* Largest JSON message sent or accepted; a bigger one from the server closes the connection. */
#define REMOTE_MAX_MESSAGE_BYTES (64u * 1024u * 1024u)
/* Calls waiting for their reply (queued or sent); past this remote_call() refuses with -ENOBUFS. */
#define REMOTE_MAX_PENDING_CALLS 4096u
/* Serialized messages not yet on the socket (queued while connecting, or in libuv's write queue),
 * so a stalled server bounds what agentd holds for it: past this remote_call() refuses with -ENOBUFS. */
#define REMOTE_SEND_QUEUE_MAX_BYTES (2u * REMOTE_MAX_MESSAGE_BYTES)
/* Resolve, TCP connect, HTTP upgrade and initialize together may take this long. */
#define REMOTE_CONNECT_TIMEOUT_MS 10000u
/* JSON-RPC code of the errors this module makes up itself (connection lost, timeout). */
#define REMOTE_ERROR_CODE (-32603)

typedef struct Remote Remote;

/*
 * Result or error of one request: exactly one of @result/@error is non-NULL,
 * both borrowed for the call (json_incref to keep). @error is the server's
 * error object, or one made up here, always {"code": int, "message": str}:
 *   "exec-server connection lost: …"   the connection dropped with the call in flight or queued
 *   "exec-server unavailable: …"       connecting, the upgrade or initialize failed
 *   "exec-server request `M` timed out after N ms"
 */
typedef void (*RemoteReplyFn)(void *ctx, json_t *result, json_t *error);

typedef struct RemoteEvents {
	/* A server notification (process/output, process/exited, process/closed, …), in wire order
	 * with the replies. @params is borrowed, NULL when the message had none. */
	void (*on_notification)(void *ctx, const char *method, json_t *params);
	/* An initialized connection dropped; every pending call has already been failed. Not called
	 * for a connection that never got through initialize, nor from remote_free(). */
	void (*on_disconnected)(void *ctx, const char *why);
} RemoteEvents;

/**
 * remote_new() - a client for the exec-server at @url; nothing is connected yet.
 * @loop: the loop every handle and callback runs on.
 * @url: ws://HOST[:PORT][/path] with HOST an IPv4 literal, a name (resolved with
 *       uv_getaddrinfo, every address tried in turn) or a bracketed IPv6 literal; PORT defaults to 80.
 * @client_name: sent as initialize's clientName.
 * @events: callbacks (copied; either may be NULL); may be NULL.
 * @ctx: passed to the events.
 * @out: receives the client.
 *
 * If the environment variable CODEX_EXEC_SERVER_TOKEN is set (read here, once),
 * every upgrade request carries "Authorization: Bearer <token>".
 *
 * Return: 0; -EPROTONOSUPPORT for wss:// (TLS is not supported; logged); -EINVAL
 * for a malformed URL, an empty client name or a token with control characters;
 * -ENOMEM.
 */
int remote_new(uv_loop_t *loop, const char *url, const char *client_name, const RemoteEvents *events,
	       void *ctx, Remote **out);

/**
 * remote_free() - fail every pending call, close the connection, release the client. NULL-safe.
 *
 * Pending calls get "exec-server connection lost: client closed" before this
 * returns; on_disconnected is not called. The memory goes once libuv has
 * closed the handles (so run the loop afterwards). May be called from any of
 * the client's own callbacks.
 */
void remote_free(Remote *r);

/**
 * remote_call() - send one request; @fn gets its result or error exactly once.
 * @method: the exec-server method ("process/start", "fs/readFile", …).
 * @params: stolen, even on failure; NULL sends no "params" member.
 * @timeout_ms: fail the call with a timeout error after this long, counted from now, connecting
 *              included; 0 = no limit. A reply arriving later is dropped.
 * @fn: called later, never from inside remote_call().
 *
 * Not connected: connects (again, after a drop, asking initialize to resume the
 * previous session, and starting a new session if the server no longer knows it)
 * and queues the call until initialize has completed.
 *
 * Return: 0 (then @fn will run); -EINVAL for NULL arguments or unserializable
 * params; -EMSGSIZE for a request over REMOTE_MAX_MESSAGE_BYTES; -ENOBUFS past
 * REMOTE_MAX_PENDING_CALLS or REMOTE_SEND_QUEUE_MAX_BYTES; -ESHUTDOWN once remote_free() ran;
 * a negative libuv code when connecting cannot even start. @fn does not run on failure.
 */
int remote_call(Remote *r, const char *method, json_t *params, uint32_t timeout_ms, RemoteReplyFn fn,
		void *ctx);

/**
 * remote_notify() - send one notification (no reply). @params as for remote_call().
 *
 * Sent at once when connected, queued behind initialize while connecting. The
 * reference exec-server drops the connection on any notification it does not
 * know, so there is little to send besides what this module sends itself.
 *
 * Return: 0; -ENOTCONN when not connected or connecting (nothing is worth a
 * connection for a notification); otherwise as remote_call().
 */
int remote_notify(Remote *r, const char *method, json_t *params);

/** remote_is_connected() - whether initialize has completed on a live connection. */
bool remote_is_connected(const Remote *r);

/**
 * remote_session_id() - the session of the current or last connection.
 *
 * Return: the id (borrowed, valid until the next reconnect), or NULL before the first initialize.
 */
const char *remote_session_id(const Remote *r);

/**
 * remote_server_info() - initialize's result on the current connection
 * ({sessionId, environmentInfo: {shell, cwd, platformOs, …}}).
 *
 * Return: borrowed, or NULL when not connected.
 */
json_t *remote_server_info(const Remote *r);

#endif
