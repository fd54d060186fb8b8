/* SPDX-License-Identifier: MIT */
/* transport.h - the client listeners: stdio://, unix://PATH and ws://IP:PORT, as codex app-server. */
#ifndef AGENTD_TRANSPORT_H
#define AGENTD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "agentd.h"

typedef enum ListenKind { LISTEN_STDIO, LISTEN_UNIX, LISTEN_WS } ListenKind;

typedef struct ListenSpec {
	ListenKind kind;
	char path[AGENTD_PATH_MAX]; /* unix */
	char host[64];		    /* ws: numeric IPv4 or IPv6 address */
	int port;		    /* ws */
	bool is_loopback;	    /* ws */
} ListenSpec;

/**
 * listen_spec_parse() - parse a --listen value. "unix://" alone means <runtime dir>/agentd.sock.
 * Return: 0, or -EINVAL with a message for the operator in @err.
 */
int listen_spec_parse(const char *url, const char *runtime_dir, ListenSpec *out, char *err, size_t err_len);

/** listener_start() - start accepting clients as @spec says. Return 0 and *out, or negative errno. */
int listener_start(Agentd *server, const ListenSpec *spec, Listener **out);

/** listener_free() - stop accepting (existing connections are closed separately). NULL-safe. */
void listener_free(Listener *listener);

/* Per-transport starters, used by listener_start(). */
int transport_stdio_start(Agentd *server, Listener *listener);
int transport_unix_start(Agentd *server, Listener *listener);
int transport_ws_start(Agentd *server, Listener *listener);
/**
 * transport_ws_check_listener() - whether a ws:// listener on @spec may start with the server's
 * websocket auth: a non-loopback address needs an auth mode, unless the operator allowed it
 * unauthenticated (--ws-allow-unauthenticated-remote). Checked before any helper starts.
 * Return: 0, or -EACCES with the reference's refusal in @err.
 */
int transport_ws_check_listener(const Agentd *server, const ListenSpec *spec, char *err, size_t err_len);
/**
 * transport_ws_adopt_unix_fd() - serve an accepted unix-socket client that opened with an HTTP
 * upgrade (as the reference's clients do), taking over @fd and the bytes already read from it.
 */
int transport_ws_adopt_unix_fd(Agentd *server, uv_os_fd_t fd, const char *initial, size_t initial_len);

struct Listener {
	Agentd *server;
	ListenSpec spec;
	uv_handle_t *handle; /* the accepting handle, NULL for stdio */
	void (*free_transport)(Listener *listener);
	void *transport;
};

#endif
