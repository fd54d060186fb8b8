/* SPDX-License-Identifier: MIT */
/* daemon.h - the shape every helper daemon shares: flags, link to the broker, allow-list dispatch. */
#ifndef AGENTD_DAEMON_H
#define AGENTD_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/capability.h>
#include <uv.h>

#include "config.h"
#include "envelope.h"
#include "mp.h"
#include "seccomp_filter.h"

typedef struct Daemon Daemon;

/*
 * Handler for one allowed internal method. It answers with daemon_reply() now or later
 * (keeping a copy of what it needs from @req). Return 0, or a negative errno to have the
 * caller answer with that status.
 */
typedef int (*DaemonHandler)(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx);

/*
 * One allow-listed internal method. Requests are answered through daemon_reply(); events
 * (agentd telling the daemon something, e.g. "conn.closed") use the same table and are
 * never answered.
 */
typedef struct DaemonMethod {
	const char *name;
	size_t max_body_bytes; /* larger bodies are refused before parsing */
	DaemonHandler handler;
} DaemonMethod;

typedef struct DaemonSpec {
	const char *name; /* service name, also the socket name */
	const char *summary;
	const DaemonMethod *methods; /* the allow-list; "health" is built in */
	size_t method_count;
	void *ctx;
	/* Adds fields to the health reply (a map being packed: call msgpack_pack_* key/value pairs). */
	int (*health_fields)(Daemon *d, msgpack_packer *pk, void *ctx);
	size_t health_field_count;
	/* Set-up after flags and logging, before the link: privilege drops live here. */
	int (*setup)(Daemon *d, void *ctx);
	/* The daemon's additions to the common seccomp allow-list, installed right after setup. */
	SeccompProfile seccomp;
	/* Validates and applies the daemon's own keys of a configuration (start-up and SIGHUP);
	 * a negative errno refuses it. */
	int (*adopt_config)(Daemon *d, const Config *fresh, void *ctx);
	/* The link to the broker dropped: every client connection we knew of is gone. */
	void (*on_broker_lost)(Daemon *d, void *ctx);
	/* A credit envelope: the consumer of one of our streams returned credit (@params: its body). */
	void (*on_credit)(Daemon *d, const Envelope *env, const msgpack_object *params, void *ctx);
	/* Called on SIGTERM/SIGINT before the loop stops. */
	void (*teardown)(Daemon *d, void *ctx);
} DaemonSpec;

/** daemon_main() - run a helper from argv to exit. Return: the process exit status. */
int daemon_main(const DaemonSpec *spec, int argc, char **argv);

/** daemon_reply() - answer @req with @status and a msgpack @body (may be NULL/0). Return 0 or negative errno.
 */
int daemon_reply(Daemon *d, const Envelope *req, int32_t status, const void *body, size_t body_len);

/** daemon_send_event() - send event @method about client @connection_id to agentd. Return 0 or negative
 * errno. */
int daemon_send_event(Daemon *d, uint64_t connection_id, const char *method, const void *body,
		      size_t body_len);

/** daemon_config() - the daemon's current configuration (replaced on SIGHUP). */
const Config *daemon_config(const Daemon *d);

/** daemon_loop() - the daemon's libuv loop. */
uv_loop_t *daemon_loop(Daemon *d);

/** daemon_keep_capabilities() - clear every capability but @keep from all sets. Return 0 or negative errno.
 */
int daemon_keep_capabilities(const char *name, const cap_value_t *keep, size_t keep_count);

/**
 * daemon_confine() - no_new_privs, and every capability but @keep gone from every set (bounding
 * and ambient included). Return: 0 or negative errno.
 */
int daemon_confine(const char *name, const cap_value_t *keep, size_t keep_count);

/** daemon_drop_privileges() - daemon_confine() keeping nothing. */
int daemon_drop_privileges(const char *name);

#endif
