/* SPDX-License-Identifier: MIT */
/* transport.c - --listen parsing and listener lifetime. */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int listen_parse_ws(const char *rest, ListenSpec *out, char *err, size_t err_len)
{
	const char *colon = strrchr(rest, ':');
	char host[64];
	if (!colon || colon == rest || (size_t)(colon - rest) >= sizeof(host)) {
		snprintf(err, err_len, "ws listen address must be ws://IP:PORT");
		return -EINVAL;
	}
	memcpy(host, rest, (size_t)(colon - rest));
	host[colon - rest] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || colon[1] == '\0' || port < 0 || port > 65535) {
		snprintf(err, err_len, "invalid port in ws://%s", rest);
		return -EINVAL;
	}
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, host, &v4) == 1) {
		out->is_loopback = (ntohl(v4.s_addr) >> 24) == 127;
	} else if (inet_pton(AF_INET6, host, &v6) == 1) {
		out->is_loopback = IN6_IS_ADDR_LOOPBACK(&v6);
	} else {
		snprintf(err, err_len, "ws listen address must be a numeric IP, not %s", host);
		return -EINVAL;
	}
	snprintf(out->host, sizeof(out->host), "%s", host);
	out->port = (int)port;
	out->kind = LISTEN_WS;
	return 0;
}

int listen_spec_parse(const char *url, const char *runtime_dir, ListenSpec *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(url, "stdio://") == 0 || strcmp(url, "stdio") == 0) {
		out->kind = LISTEN_STDIO;
		return 0;
	}
	if (strncmp(url, "unix://", 7) == 0) {
		const char *path = url + 7;
		out->kind = LISTEN_UNIX;
		if (*path == '\0')
			return paths_join(runtime_dir, "agentd.sock", out->path, sizeof(out->path));
		if (path[0] != '/') {
			snprintf(err, err_len, "unix socket path must be absolute: %s", path);
			return -EINVAL;
		}
		return path_normalize(NULL, path, out->path, sizeof(out->path));
	}
	if (strncmp(url, "ws://", 5) == 0)
		return listen_parse_ws(url + 5, out, err, err_len);
	snprintf(err, err_len, "unsupported listen URL %s (expected stdio://, unix://PATH or ws://IP:PORT)",
		 url);
	return -EINVAL;
}

int listener_start(Agentd *server, const ListenSpec *spec, Listener **out)
{
	Listener *listener = calloc(1, sizeof(*listener));
	if (!listener)
		return -ENOMEM;
	listener->server = server;
	listener->spec = *spec;
	int rc;
	switch (spec->kind) {
	case LISTEN_STDIO:
		rc = transport_stdio_start(server, listener);
		break;
	case LISTEN_UNIX:
		rc = transport_unix_start(server, listener);
		break;
	default:
		rc = transport_ws_start(server, listener);
		break;
	}
	if (rc < 0) {
		listener_free(listener);
		return rc;
	}
	*out = listener;
	return 0;
}

void listener_free(Listener *listener)
{
	if (!listener)
		return;
	if (listener->free_transport)
		listener->free_transport(listener);
	else
		free(listener);
}
