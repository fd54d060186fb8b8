/* SPDX-License-Identifier: MIT */
/* link.h - one nng pair0 socket between agentd's broker and one helper, driven by libuv. */
#ifndef AGENTD_LINK_H
#define AGENTD_LINK_H

#include <stdbool.h>
#include <uv.h>

#include "envelope.h"

typedef struct Link Link;

typedef struct LinkEvents {
	/* One decoded, validated envelope. The envelope and its body live only during the call. */
	void (*on_envelope)(Link *link, const Envelope *env, void *ctx);
	/* The peer came (true) or went (false). */
	void (*on_peer)(Link *link, bool is_connected, void *ctx);
} LinkEvents;

typedef enum LinkMode { LINK_LISTEN, LINK_DIAL } LinkMode;

/*
 * Messages queued in the link while nng's own send buffer is full. Beyond this, link_send()
 * answers -EAGAIN and the caller decides (the broker turns it into an error response).
 */
#define LINK_QUEUE_MAX 1024u
/* nng's send buffer, in messages; together with LINK_QUEUE_MAX the per-link bound. */
#define LINK_NNG_SENDBUF 128

/**
 * link_open() - listen on or dial @url ("ipc:///run/agentd/execd.sock").
 * Dialers reconnect on their own with backoff (2 ms doubling to 1 s). Peers whose uid is
 * neither ours nor root are refused before their first message.
 * Return: 0 and *out, or a negative errno.
 */
int link_open(uv_loop_t *loop, LinkMode mode, const char *url, const LinkEvents *events, void *ctx,
	      Link **out);

/**
 * link_send() - encode and send @env without blocking.
 * Return: 0; -EAGAIN when the link's queue is full; an envelope validation error.
 */
int link_send(Link *link, const Envelope *env);

/**
 * link_cut_off() - close the connection of the peer whose envelope is being handled: a sibling
 * that sends something outside the allow-list is disconnected, never "handled" (it reconnects
 * and says hello again, or its supervisor restarts it).
 */
void link_cut_off(Link *link);

/** link_is_connected() - whether a peer is attached right now. */
bool link_is_connected(const Link *link);

/** link_peer_pid() - pid of the attached peer as the kernel reports it, or 0. */
int link_peer_pid(const Link *link);

/** link_url() - the url the link was opened with. */
const char *link_url(const Link *link);

/** link_free() - close the socket, drop queued messages, release the loop handles. NULL-safe. */
void link_free(Link *link);

/**
 * link_abandon() - for a process about to exit: stop using the link and release its loop
 * handles, but leave the nng socket to the kernel. nng 1.5.2's nng_close() can deadlock in its
 * pipe reaper (nanomsg/nng#1543), which would turn an orderly exit into a SIGKILL.
 */
void link_abandon(Link *link);

/** link_url_for_service() - "ipc://<runtime dir>/<service>.sock". Return 0 or -ENAMETOOLONG. */
int link_url_for_service(const char *runtime_dir, const char *service, char *out, size_t out_len);

#endif
